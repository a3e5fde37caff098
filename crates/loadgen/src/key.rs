//! The client's side of each token request: the `private_key_jwt` client assertion (RFC 7523)
//! and the DPoP proof (RFC 9449), both signed afresh with a unique `jti` for every request, so
//! that the server has to verify two signatures and record two single-use `jti`s each time; the
//! PKCE pairs of the code flow; DPoP proofs for a protected resource (the admin API); the
//! self-signed certificate of a `self_signed_tls_client_auth` client (RFC 8705 §2.2) made from
//! its key; and fresh ES256 key pairs for `portcullis-load keygen`.
//!
//! Signing uses `jsonwebtoken` over aws-lc-rs, the same independent JOSE stack as the end-to-end
//! tests (`tests/e2e/oauth.rs`), not the server's own.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian as _, EcPrivateKeyBin};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

/// How long an assertion is valid: the server accepts at most 600 s ahead.
const ASSERTION_LIFETIME_SECS: u64 = 60;

/// The ES256 key of a client, loaded from the private JWK that `portcullis admin bootstrap`
/// writes, with the two headers it signs under prepared once.
#[derive(Clone)]
pub struct ClientKey {
    key: EncodingKey,
    /// The private key as PKCS#8 DER, for the self-signed certificate.
    pkcs8: Vec<u8>,
    /// The assertion's header: ES256 and the JWK's `kid`, if it has one.
    assertion_header: Header,
    /// The proof's header: `typ` `dpop+jwt`, ES256 and the public JWK (without `kid`).
    proof_header: Header,
    rng: SystemRandom,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of any output.
        f.debug_struct("ClientKey")
            .field("kid", &self.assertion_header.kid)
            .finish_non_exhaustive()
    }
}

impl ClientKey {
    /// Reads a private EC P-256 JWK (`kty` EC, `crv` P-256, `d`, `x`, `y`, optional `kid`).
    ///
    /// # Errors
    /// When the file cannot be read, is not such a JWK, or its members do not form a key pair.
    pub fn from_jwk_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let jwk: Value = serde_json::from_slice(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Self::from_private_jwk(&jwk).with_context(|| format!("the key in {}", path.display()))
    }

    /// The key of a private EC P-256 JWK.
    ///
    /// # Errors
    /// When it is not an EC P-256 private JWK or its members do not form a key pair.
    pub fn from_private_jwk(jwk: &Value) -> anyhow::Result<Self> {
        let kty = jwk.get("kty").and_then(Value::as_str);
        let crv = jwk.get("crv").and_then(Value::as_str);
        if (kty, crv) != (Some("EC"), Some("P-256")) {
            bail!(
                "only EC P-256 keys (ES256) are supported, got kty {kty:?} crv {crv:?}; \
                 bootstrap the client with --alg ES256"
            );
        }
        let member = |name: &str| -> anyhow::Result<Vec<u8>> {
            let text = jwk
                .get(name)
                .and_then(Value::as_str)
                .with_context(|| format!("the JWK has no {name}"))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .with_context(|| format!("the JWK's {name} is not base64url"))
        };
        let mut point = vec![0x04];
        point.extend(member("x")?);
        point.extend(member("y")?);
        let pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &member("d")?,
            &point,
        )
        .map_err(|e| anyhow::anyhow!("d, x and y are not a P-256 key pair: {e}"))?;
        let der = pair
            .to_pkcs8v1()
            .map_err(|e| anyhow::anyhow!("cannot encode the key as PKCS#8: {e}"))?;
        let key = EncodingKey::from_ec_der(der.as_ref());

        let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
        let mut assertion_header = Header::new(Algorithm::ES256);
        assertion_header.kid.clone_from(&kid);

        // RFC 9449 §4.2: the proof's header carries the public key; no private member may be in it.
        let public: Jwk = Jwk::from_encoding_key(&key, Algorithm::ES256)
            .context("cannot derive the public JWK")?;
        ensure!(
            serde_json::to_value(&public)?.get("d").is_none(),
            "the public JWK carries a private member"
        );
        let mut proof_header = Header::new(Algorithm::ES256);
        proof_header.typ = Some("dpop+jwt".into());
        proof_header.jwk = Some(public);

        Ok(Self {
            key,
            pkcs8: der.as_ref().to_vec(),
            assertion_header,
            proof_header,
            rng: SystemRandom::new(),
        })
    }

    /// A fresh random identifier (128 bits, base64url), for `jti`s, `state` and `nonce`.
    pub fn random_id(&self) -> anyhow::Result<String> {
        let mut bytes = [0_u8; 16];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A PKCE pair (RFC 7636 §4.1, §4.2): a fresh 43-character verifier from 256 random bits,
    /// and its S256 challenge.
    ///
    /// # Errors
    /// When the RNG fails.
    pub fn pkce(&self) -> anyhow::Result<(String, String)> {
        let mut bytes = [0_u8; 32];
        self.rng
            .fill(&mut bytes)
            .map_err(|_| anyhow::anyhow!("the system RNG failed"))?;
        let verifier = URL_SAFE_NO_PAD.encode(bytes);
        let challenge =
            URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
        Ok((verifier, challenge))
    }

    /// A client assertion (RFC 7523 §3) for `client_id`, addressed to `audience` (for FAPI 2.0:
    /// exactly the issuer), valid for a minute from now, with a fresh `jti`.
    ///
    /// # Errors
    /// When the RNG or signing fails.
    pub fn assertion(&self, client_id: &str, audience: &str) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "jti": self.random_id()?,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        jsonwebtoken::encode(&self.assertion_header, &claims, &self.key)
            .context("signing the client assertion")
    }

    /// A DPoP proof (RFC 9449 §4.2) for `POST url`, issued now with a fresh `jti`, and carrying
    /// `nonce` when the server asked for one (RFC 9449 §8).
    ///
    /// # Errors
    /// When the RNG or signing fails.
    pub fn dpop_proof(&self, url: &str, nonce: Option<&str>) -> anyhow::Result<String> {
        self.proof("POST", url, nonce, None)
    }

    /// A DPoP proof (RFC 9449 §4.2) for `method url` at a protected resource, presenting
    /// `access_token` (its hash is the proof's `ath`, §4.3), with a fresh `jti`.
    ///
    /// # Errors
    /// When the RNG or signing fails.
    pub fn resource_proof(
        &self,
        method: &str,
        url: &str,
        access_token: &str,
        nonce: Option<&str>,
    ) -> anyhow::Result<String> {
        self.proof(method, url, nonce, Some(access_token))
    }

    fn proof(
        &self,
        method: &str,
        url: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut claims = serde_json::Map::new();
        claims.insert("jti".into(), self.random_id()?.into());
        claims.insert("htm".into(), method.into());
        claims.insert("htu".into(), url.into());
        claims.insert("iat".into(), unix_now().into());
        if let Some(nonce) = nonce {
            claims.insert("nonce".into(), nonce.into());
        }
        if let Some(token) = access_token {
            let hash = digest::digest(&digest::SHA256, token.as_bytes());
            claims.insert("ath".into(), URL_SAFE_NO_PAD.encode(hash).into());
        }
        jsonwebtoken::encode(&self.proof_header, &claims, &self.key)
            .context("signing the DPoP proof")
    }

    /// A self-signed certificate for this key (ECDSA P-256 with SHA-256, subject
    /// `CN=portcullis-load`), and the key: the TLS client credentials of a
    /// `self_signed_tls_client_auth` client (RFC 8705 §2.2) whose registered JWK set holds this
    /// key's public JWK. The server matches the certificate by its key, so any certificate made
    /// from the key will do.
    ///
    /// # Errors
    /// When the certificate cannot be made.
    pub fn self_signed_certificate(
        &self,
    ) -> anyhow::Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
        let pkcs8 = PrivatePkcs8KeyDer::from(self.pkcs8.clone());
        let pair =
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ECDSA_P256_SHA256)
                .context("the key as an rcgen key pair")?;
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "portcullis-load");
        let certificate = params
            .self_signed(&pair)
            .context("making the self-signed certificate")?;
        Ok((certificate.der().clone(), PrivateKeyDer::Pkcs8(pkcs8)))
    }
}

/// A fresh ES256 key pair as JWKs: the private JWK (`kty`, `crv`, `x`, `y`, `d`, `kid`, `alg`,
/// `use`) and the public JWK Set holding only its public members. The `kid` is the key's
/// RFC 7638 thumbprint.
///
/// # Errors
/// When key generation or encoding fails.
pub fn generate_jwks() -> anyhow::Result<(Value, Value)> {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| anyhow::anyhow!("cannot generate a P-256 key"))?;
    let point = pair.public_key().as_ref();
    // The uncompressed point: 0x04, then x and y, 32 bytes each.
    let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
        bail!("the public key is not an uncompressed P-256 point");
    };
    let private: EcPrivateKeyBin<'_> = pair
        .private_key()
        .as_be_bytes()
        .map_err(|_| anyhow::anyhow!("cannot encode the private key"))?;
    let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
    // RFC 7638 §3.2: the required members only, in lexicographic order, without whitespace.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
    let public = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": x,
        "y": y,
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    });
    let mut private_jwk = public.clone();
    if let Some(members) = private_jwk.as_object_mut() {
        members.insert("d".into(), URL_SAFE_NO_PAD.encode(private.as_ref()).into());
    }
    Ok((private_jwk, json!({ "keys": [public] })))
}

/// Seconds since the Unix epoch by this machine's clock, which the server on the same machine
/// shares.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

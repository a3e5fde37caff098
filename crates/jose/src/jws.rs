//! Signing and verifying compact JWS. [`SigningKey`] is one of our own private keys (generated
//! here, stored encrypted by the caller); [`verify_jwt`] checks a token against a JWK set with an
//! explicit algorithm allowlist, before any key is touched, so `none`, RS256 and HMAC tokens never
//! reach a verifier.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{self, ES256, EdDSA, JwsHeader, JwsSigner, JwsVerifier, PS256};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::jwk::MIN_RSA_BITS;
use crate::{JoseError, Jwks, PublicJwk, SigningAlg, jwk_thumbprint_sha256};

/// One of the server's private signing keys. Its `kid` is the RFC 7638 thumbprint of its public
/// part, so `kid`s are unique by construction (SP 5.4.2).
pub struct SigningKey {
    alg: SigningAlg,
    kid: String,
    private_jwk: Jwk,
    signer: Box<dyn JwsSigner>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("private_jwk", &"[redacted]")
            .finish()
    }
}

fn internal(e: impl fmt::Display) -> JoseError {
    JoseError::Internal(e.to_string())
}

impl SigningKey {
    /// Generates a new key for `alg`. `rsa_bits` applies to PS256 and must be at least 2048.
    ///
    /// # Errors
    /// [`JoseError::WeakKey`] for too small an RSA size; [`JoseError::Internal`] if OpenSSL fails.
    pub fn generate(alg: SigningAlg, rsa_bits: u32) -> Result<Self, JoseError> {
        let private_jwk = match alg {
            SigningAlg::Ps256 => {
                if (rsa_bits as usize) < MIN_RSA_BITS {
                    return Err(JoseError::WeakKey(format!(
                        "RSA keys need at least {MIN_RSA_BITS} bits, not {rsa_bits}"
                    )));
                }
                PS256
                    .generate_key_pair(rsa_bits)
                    .map_err(internal)?
                    .to_jwk_key_pair()
            }
            SigningAlg::Es256 => ES256
                .generate_key_pair()
                .map_err(internal)?
                .to_jwk_key_pair(),
            SigningAlg::EdDsa => EdDSA
                .generate_key_pair(EdCurve::Ed25519)
                .map_err(internal)?
                .to_jwk_key_pair(),
        };
        Self::from_private_jwk(alg, private_jwk)
    }

    /// Loads a key from its private JWK, as [`SigningKey::private_jwk_json`] wrote it.
    ///
    /// # Errors
    /// [`JoseError::InvalidKey`] when the JSON is not a private key for `alg`, or
    /// [`JoseError::WeakKey`] when it is too weak.
    pub fn from_private_jwk_json(alg: SigningAlg, json: &[u8]) -> Result<Self, JoseError> {
        let jwk = Jwk::from_bytes(json).map_err(|e| JoseError::InvalidKey(e.to_string()))?;
        Self::from_private_jwk(alg, jwk)
    }

    fn from_private_jwk(alg: SigningAlg, mut private_jwk: Jwk) -> Result<Self, JoseError> {
        let public = public_members(&private_jwk);
        PublicJwk::parse(public.clone())?.check_strength(alg)?;
        let kid = jwk_thumbprint_sha256(&public)?;
        private_jwk.set_algorithm(alg.as_str());
        private_jwk.set_key_use("sig");
        // The signer is made before the JWK gets its kid: josekit would otherwise write that kid
        // into every header, and headers are ours to compose.
        let signer: Box<dyn JwsSigner> = match alg {
            SigningAlg::Ps256 => Box::new(PS256.signer_from_jwk(&private_jwk).map_err(invalid)?),
            SigningAlg::Es256 => Box::new(ES256.signer_from_jwk(&private_jwk).map_err(invalid)?),
            SigningAlg::EdDsa => Box::new(EdDSA.signer_from_jwk(&private_jwk).map_err(invalid)?),
        };
        private_jwk.set_key_id(kid.clone());
        Ok(Self {
            alg,
            kid,
            private_jwk,
            signer,
        })
    }

    /// The algorithm this key signs with.
    #[must_use]
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id: the RFC 7638 thumbprint of the public key.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The private JWK as JSON, for the caller to encrypt and store. Zeroed when dropped.
    ///
    /// # Errors
    /// [`JoseError::Internal`] if serialisation fails.
    pub fn private_jwk_json(&self) -> Result<Zeroizing<Vec<u8>>, JoseError> {
        serde_json::to_vec(self.private_jwk.as_ref())
            .map(Zeroizing::new)
            .map_err(internal)
    }

    /// The public JWK with `kid`, `alg` and `use`, as `/jwks` publishes it.
    ///
    /// # Errors
    /// Never in practice: the public part was checked when the key was loaded.
    pub fn public_jwk(&self) -> Result<PublicJwk, JoseError> {
        let mut members = public_members(&self.private_jwk);
        members.insert("kid".into(), self.kid.clone().into());
        members.insert("alg".into(), self.alg.as_str().into());
        members.insert("use".into(), "sig".into());
        PublicJwk::parse(members)
    }

    /// Signs `claims` as a compact JWS with this key's `kid` and the given `typ`.
    ///
    /// # Errors
    /// [`JoseError::Internal`] if serialisation or signing fails.
    pub fn sign_jwt(&self, typ: &str, claims: &Map<String, Value>) -> Result<String, JoseError> {
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(self.kid.clone());
        let payload = serde_json::to_vec(claims).map_err(internal)?;
        jws::serialize_compact(&payload, &header, self.signer.as_ref()).map_err(internal)
    }

    /// Signs `claims` with a caller-made protected header (for example a DPoP proof's `typ` and
    /// `jwk`, or a client's assertion). `alg` is always this key's; nothing else is added.
    ///
    /// # Errors
    /// [`JoseError::Malformed`] for a header josekit refuses; [`JoseError::Internal`] if signing fails.
    pub fn sign_jwt_with_header(
        &self,
        header: &Map<String, Value>,
        claims: &Map<String, Value>,
    ) -> Result<String, JoseError> {
        let mut jws_header =
            JwsHeader::from_map(header.clone()).map_err(|e| JoseError::Malformed(e.to_string()))?;
        jws_header.set_algorithm(self.alg.as_str());
        let payload = serde_json::to_vec(claims).map_err(internal)?;
        jws::serialize_compact(&payload, &jws_header, self.signer.as_ref()).map_err(internal)
    }
}

fn invalid(e: impl fmt::Display) -> JoseError {
    JoseError::InvalidKey(e.to_string())
}

/// The members of a JWK that a public key may carry: everything but the private ones.
fn public_members(jwk: &Jwk) -> Map<String, Value> {
    let mut members = jwk.as_ref().clone();
    for name in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        members.remove(name);
    }
    members
}

/// A JWS whose signature verified, with its protected header and JSON payload.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedJwt {
    /// The algorithm it was signed with.
    pub alg: SigningAlg,
    /// The protected header.
    pub header: Map<String, Value>,
    /// The payload's claims.
    pub claims: Map<String, Value>,
}

/// Reads the protected header of a compact JWS without verifying anything.
///
/// # Errors
/// [`JoseError::Malformed`] when the token is not three base64url parts with a JSON header.
pub fn decode_unverified_header(token: &str) -> Result<Map<String, Value>, JoseError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed("a compact JWS has three parts".into()));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| JoseError::Malformed("header is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| JoseError::Malformed("header is not a JSON object".into()))
}

/// Reads the payload of a compact JWS as JSON claims without verifying anything: only to choose
/// which keys then verify it (for example a software statement's `iss` names its directory).
///
/// # Errors
/// [`JoseError::Malformed`] when the token is not three base64url parts with a JSON payload.
pub fn decode_unverified_claims(token: &str) -> Result<Map<String, Value>, JoseError> {
    decode_unverified_header(token)?;
    let payload = token.split('.').nth(1).unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JoseError::Malformed("payload is not base64url".into()))?;
    serde_json::from_slice(&bytes)
        .map_err(|_| JoseError::Malformed("payload is not a JSON object".into()))
}

/// Verifies a compact JWS against `jwks`, accepting only the algorithms in `allowed`.
///
/// The header's `alg` is checked against the allowlist first; keys are then chosen by `kid` and
/// `kty`/`alg`/`use`/`crv` (SP 5.4.3), each checked for strength (SP 5.4.1-2/3), and the signature
/// must verify with one of them. Claims such as `exp` are the caller's to check.
///
/// # Errors
/// [`JoseError::UnsupportedAlgorithm`], [`JoseError::Malformed`], [`JoseError::KeyNotFound`],
/// [`JoseError::WeakKey`] or [`JoseError::BadSignature`].
pub fn verify_jwt(
    token: &str,
    jwks: &Jwks,
    allowed: &[SigningAlg],
) -> Result<VerifiedJwt, JoseError> {
    let (header, alg) = checked_header(token, allowed)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let candidates = jwks.candidates(kid, alg);
    if candidates.is_empty() {
        return Err(JoseError::KeyNotFound(format!(
            "no {alg} key{} in the key set",
            kid.map(|k| format!(" with kid {k:?}")).unwrap_or_default()
        )));
    }
    let mut last_error = JoseError::BadSignature;
    for key in candidates {
        match verify_with_key(token, alg, &header, key) {
            Ok(verified) => return Ok(verified),
            Err(JoseError::Malformed(m)) => return Err(JoseError::Malformed(m)),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Verifies a compact JWS against the public key in its own `jwk` header, as DPoP proofs carry
/// (RFC 9449 §4.2), accepting only the algorithms in `allowed`. The key must be a public key
/// (RFC 9449 §4.3 step 7) that suits the algorithm and is strong enough (SP 5.4.1-2/3).
///
/// # Errors
/// [`JoseError::UnsupportedAlgorithm`], [`JoseError::Malformed`], [`JoseError::InvalidKey`] (no
/// `jwk`, or one with private members), [`JoseError::WeakKey`] or [`JoseError::BadSignature`].
pub fn verify_with_embedded_jwk(
    token: &str,
    allowed: &[SigningAlg],
) -> Result<(VerifiedJwt, PublicJwk), JoseError> {
    let (header, alg) = checked_header(token, allowed)?;
    let members = header
        .get("jwk")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| JoseError::InvalidKey("the header has no jwk object".into()))?;
    let key = PublicJwk::parse(members)?;
    // A proof's key is new on every request: checked with aws-lc-rs directly, without making a
    // josekit key first (the kind and curve must suit the algorithm, which check_strength
    // checks; a point off the curve does not verify).
    key.check_strength(alg)?;
    let direct = DirectKey::new(alg, &key)?;
    let verified = verify_direct(token, alg, &header, &direct)?;
    Ok((verified, key))
}

/// The protected header, once its `alg` is on the allowlist and it asks for no extension we do
/// not understand (RFC 7515 §4.1.11: an unknown `crit` entry makes the JWS invalid; we know none).
fn checked_header(
    token: &str,
    allowed: &[SigningAlg],
) -> Result<(Map<String, Value>, SigningAlg), JoseError> {
    let header = decode_unverified_header(token)?;
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    let alg = SigningAlg::parse(alg_name)?;
    if !allowed.contains(&alg) {
        return Err(JoseError::UnsupportedAlgorithm(alg_name.to_owned()));
    }
    if header.contains_key("crit") {
        return Err(JoseError::Malformed(
            "critical header extensions are not supported".into(),
        ));
    }
    Ok((header, alg))
}

fn verify_with_key(
    token: &str,
    alg: SigningAlg,
    header: &Map<String, Value>,
    key: &PublicJwk,
) -> Result<VerifiedJwt, JoseError> {
    key.check_strength(alg)?;
    let verifier = verifier_for(alg, key)?;
    verify_with_verifier(token, alg, header, verifier.as_ref())
}

fn verify_with_verifier(
    token: &str,
    alg: SigningAlg,
    header: &Map<String, Value>,
    verifier: &dyn JwsVerifier,
) -> Result<VerifiedJwt, JoseError> {
    let (payload, _) =
        jws::deserialize_compact(token, verifier).map_err(|_| JoseError::BadSignature)?;
    let claims = serde_json::from_slice(&payload)
        .map_err(|_| JoseError::Malformed("payload is not a JSON object".into()))?;
    Ok(VerifiedJwt {
        alg,
        header: header.clone(),
        claims,
    })
}

/// A JWK set whose keys were each turned into a verifier once, for a party that checks many
/// tokens against one set (a resource server against the authorization server's JWKS): what
/// [`verify_jwt`] does for every token (the strength check, the JWK made into a key) happens here
/// once per key and algorithm, and signatures are then checked with aws-lc-rs directly.
/// [`verify_jwt_prepared`] gives the same answers as [`verify_jwt`] over [`PreparedJwks::jwks`]
/// (the fuzz targets hold the two to that).
#[derive(Debug)]
pub struct PreparedJwks {
    jwks: Jwks,
    /// Per key, in the set's order: per algorithm the key suits, its verifier or why it has none.
    prepared: Vec<Vec<PreparedKey>>,
}

/// One key made ready for one algorithm, or why it could not be.
type PreparedKey = (SigningAlg, Result<DirectKey, JoseError>);

/// A public key as aws-lc-rs verifies with it directly: what a prepared set checks signatures
/// with. (josekit, which [`verify_jwt`] uses, parses the header again and goes through
/// OpenSSL's generic interface on every token; this is the raw signature check.)
enum DirectKey {
    /// ES256 (the uncompressed P-256 point) or EdDSA (the Ed25519 public key).
    Unparsed(aws_lc_rs::signature::UnparsedPublicKey<Vec<u8>>),
    /// PS256: the modulus and exponent.
    Rsa(aws_lc_rs::signature::RsaPublicKeyComponents<Vec<u8>>),
}

impl fmt::Debug for DirectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DirectKey::Unparsed(_) => "DirectKey::Unparsed",
            DirectKey::Rsa(_) => "DirectKey::Rsa",
        })
    }
}

impl DirectKey {
    /// The key of `jwk` for `alg`, whose kind and curve `check_strength` has found suitable. A
    /// prepared set also makes a josekit verifier first, so that a key josekit refuses is refused
    /// with the same error by [`verify_jwt`] and [`verify_jwt_prepared`]; a DPoP proof's key is
    /// not, and one that is not a valid point or key simply does not verify.
    fn new(alg: SigningAlg, jwk: &PublicJwk) -> Result<Self, JoseError> {
        use aws_lc_rs::signature;
        let member = |name: &str| {
            jwk.members()
                .get(name)
                .and_then(Value::as_str)
                .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                .ok_or_else(|| JoseError::InvalidKey(format!("the key has no usable {name}")))
        };
        Ok(match alg {
            SigningAlg::Es256 => {
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(JoseError::InvalidKey(
                        "a P-256 key's x and y are 32 bytes each".into(),
                    ));
                }
                let mut point = Vec::with_capacity(65);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                DirectKey::Unparsed(signature::UnparsedPublicKey::new(
                    &signature::ECDSA_P256_SHA256_FIXED,
                    point,
                ))
            }
            SigningAlg::EdDsa => DirectKey::Unparsed(signature::UnparsedPublicKey::new(
                &signature::ED25519,
                member("x")?,
            )),
            SigningAlg::Ps256 => DirectKey::Rsa(signature::RsaPublicKeyComponents {
                n: member("n")?,
                e: member("e")?,
            }),
        })
    }

    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            DirectKey::Unparsed(key) => key.verify(message, signature).is_ok(),
            DirectKey::Rsa(key) => key
                .verify(
                    &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA256,
                    message,
                    signature,
                )
                .is_ok(),
        }
    }
}

/// Checks `token`'s signature with `key` and reads its claims, with the errors of
/// [`verify_with_verifier`]: whatever is wrong with the signature or the payload's encoding is
/// [`JoseError::BadSignature`]; a payload that is not a JSON object is malformed.
fn verify_direct(
    token: &str,
    alg: SigningAlg,
    header: &Map<String, Value>,
    key: &DirectKey,
) -> Result<VerifiedJwt, JoseError> {
    // `checked_header` made sure there are exactly three parts.
    let (signing_input, signature) = token.rsplit_once('.').ok_or(JoseError::BadSignature)?;
    let (_, payload) = signing_input
        .split_once('.')
        .ok_or(JoseError::BadSignature)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| JoseError::BadSignature)?;
    if !key.verifies(signing_input.as_bytes(), &signature) {
        return Err(JoseError::BadSignature);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| JoseError::BadSignature)?;
    let claims = serde_json::from_slice(&payload)
        .map_err(|_| JoseError::Malformed("payload is not a JSON object".into()))?;
    Ok(VerifiedJwt {
        alg,
        header: header.clone(),
        claims,
    })
}

impl PreparedJwks {
    /// Prepares every key of `jwks` for every algorithm it suits.
    #[must_use]
    pub fn new(jwks: Jwks) -> Self {
        let prepared = jwks
            .keys
            .iter()
            .map(|key| {
                SigningAlg::ALL
                    .iter()
                    .filter(|alg| key.suits(**alg))
                    .map(|alg| {
                        let direct = key
                            .check_strength(*alg)
                            .and_then(|()| verifier_for(*alg, key))
                            .and_then(|_| DirectKey::new(*alg, key));
                        (*alg, direct)
                    })
                    .collect()
            })
            .collect();
        Self { jwks, prepared }
    }

    /// The key set.
    #[must_use]
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }
}

/// [`verify_jwt`] against a [`PreparedJwks`]: the same checks in the same order (allowlist,
/// `crit`, key selection by `kid` and `kty`/`alg`/`use`/`crv`, key strength, signature) and the
/// same errors, without making the keys again.
///
/// # Errors
/// As [`verify_jwt`].
pub fn verify_jwt_prepared(
    token: &str,
    keys: &PreparedJwks,
    allowed: &[SigningAlg],
) -> Result<VerifiedJwt, JoseError> {
    let (header, alg) = checked_header(token, allowed)?;
    let kid = header.get("kid").and_then(Value::as_str);
    let mut last_error = None;
    for (key, prepared) in keys.jwks.keys.iter().zip(&keys.prepared) {
        if kid.is_some_and(|kid| key.kid() != Some(kid)) {
            continue;
        }
        let Some((_, verifier)) = prepared.iter().find(|(a, _)| *a == alg) else {
            continue;
        };
        let outcome = match verifier {
            Ok(direct) => verify_direct(token, alg, &header, direct),
            Err(e) => Err(e.clone()),
        };
        match outcome {
            Ok(verified) => return Ok(verified),
            Err(JoseError::Malformed(m)) => return Err(JoseError::Malformed(m)),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        JoseError::KeyNotFound(format!(
            "no {alg} key{} in the key set",
            kid.map(|k| format!(" with kid {k:?}")).unwrap_or_default()
        ))
    }))
}

fn verifier_for(alg: SigningAlg, key: &PublicJwk) -> Result<Box<dyn JwsVerifier>, JoseError> {
    let mut members = key.members().clone();
    // josekit refuses a key whose `alg` differs from the verifier's, and a header whose `kid`
    // differs from the key's; key selection by `kid` and `alg` happened before (SP 5.4.3).
    members.remove("alg");
    members.remove("kid");
    let jwk = Jwk::from_map(members).map_err(invalid)?;
    Ok(match alg {
        SigningAlg::Ps256 => Box::new(PS256.verifier_from_jwk(&jwk).map_err(invalid)?),
        SigningAlg::Es256 => Box::new(ES256.verifier_from_jwk(&jwk).map_err(invalid)?),
        SigningAlg::EdDsa => Box::new(EdDSA.verifier_from_jwk(&jwk).map_err(invalid)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Map<String, Value> {
        serde_json::from_str(r#"{"iss":"https://as.example","sub":"alice","exp":4102444800}"#)
            .unwrap()
    }

    #[test]
    fn signs_and_verifies_with_every_allowed_algorithm_and_survives_a_private_jwk_round_trip() {
        for alg in SigningAlg::ALL {
            let key = SigningKey::generate(alg, 2048).unwrap();
            let reloaded =
                SigningKey::from_private_jwk_json(alg, &key.private_jwk_json().unwrap()).unwrap();
            assert_eq!(reloaded.kid(), key.kid());
            let token = reloaded.sign_jwt("JWT", &claims()).unwrap();
            let jwks = Jwks {
                keys: vec![key.public_jwk().unwrap()],
            };
            let verified = verify_jwt(&token, &jwks, &SigningAlg::ALL).unwrap();
            assert_eq!(verified.alg, alg);
            assert_eq!(verified.claims, claims());
            assert_eq!(verified.header["kid"], key.kid());
            assert!(key.public_jwk().unwrap().members().get("d").is_none());
            assert_eq!(key.public_jwk().unwrap().thumbprint().unwrap(), key.kid());
        }
    }

    /// Our signatures checked by an independent JOSE implementation, so that a bug in ours cannot
    /// verify itself (DESIGN.md, JOSE).
    #[test]
    fn signatures_verify_with_jsonwebtoken() {
        for (alg, theirs) in [
            (SigningAlg::Ps256, jsonwebtoken::Algorithm::PS256),
            (SigningAlg::Es256, jsonwebtoken::Algorithm::ES256),
            (SigningAlg::EdDsa, jsonwebtoken::Algorithm::EdDSA),
        ] {
            let key = SigningKey::generate(alg, 2048).unwrap();
            let token = key.sign_jwt("JWT", &claims()).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk =
                serde_json::from_value(Value::Object(key.public_jwk().unwrap().into())).unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(theirs);
            validation.validate_aud = false;
            let data = jsonwebtoken::decode::<Value>(&token, &decoding, &validation).unwrap();
            assert_eq!(data.claims["sub"], "alice");
        }
    }

    #[test]
    fn verify_refuses_alg_none_and_algorithms_outside_the_allowlist() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk().unwrap()],
        };
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#)
        );
        assert_eq!(
            verify_jwt(&none, &jwks, &SigningAlg::ALL),
            Err(JoseError::UnsupportedAlgorithm("none".into()))
        );
        let token = key.sign_jwt("JWT", &claims()).unwrap();
        assert_eq!(
            verify_jwt(&token, &jwks, &[SigningAlg::Ps256]),
            Err(JoseError::UnsupportedAlgorithm("ES256".into()))
        );
    }

    #[test]
    fn verify_refuses_a_tampered_payload_and_an_unknown_kid() {
        let key = SigningKey::generate(SigningAlg::EdDsa, 2048).unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk().unwrap()],
        };
        let token = key.sign_jwt("JWT", &claims()).unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
        parts[1] = &forged;
        assert_eq!(
            verify_jwt(&parts.join("."), &jwks, &SigningAlg::ALL),
            Err(JoseError::BadSignature)
        );

        let other = SigningKey::generate(SigningAlg::EdDsa, 2048).unwrap();
        let token = other.sign_jwt("JWT", &claims()).unwrap();
        assert!(matches!(
            verify_jwt(&token, &jwks, &SigningAlg::ALL),
            Err(JoseError::KeyNotFound(_))
        ));
    }

    #[test]
    fn a_prepared_key_set_gives_the_same_answers_as_verify_jwt() {
        use serde_json::json;
        let keys: Vec<SigningKey> = SigningAlg::ALL
            .iter()
            .map(|alg| SigningKey::generate(*alg, 2048).unwrap())
            .collect();
        let jwks = Jwks {
            keys: keys.iter().map(|k| k.public_jwk().unwrap()).collect(),
        };
        let prepared = PreparedJwks::new(jwks.clone());
        let stranger = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let mut tokens: Vec<String> = keys
            .iter()
            .map(|k| k.sign_jwt("JWT", &claims()).unwrap())
            .collect();
        // Unknown kid; tampered payload; an algorithm outside the allowlist; alg none.
        tokens.push(stranger.sign_jwt("JWT", &claims()).unwrap());
        let mut parts: Vec<String> = tokens[0].split('.').map(str::to_owned).collect();
        parts[1] = URL_SAFE_NO_PAD.encode(br#"{"sub":"mallory"}"#);
        tokens.push(parts.join("."));
        tokens.push(forge(&keys[1], &json!({"alg": "RS256"}), &json!({})));
        tokens.push(format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(b"{}")
        ));
        // A key without kid in the token: every suitable key is tried.
        tokens.push(forge(&keys[2], &json!({}), &claims().into()));
        // For each algorithm: a flipped signature byte, a truncated signature, a signature that
        // is not base64url, and a payload that is not base64url under a good signature's input.
        for key in &keys {
            let good = key.sign_jwt("JWT", &claims()).unwrap();
            let (input, signature) = good.rsplit_once('.').unwrap();
            let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
            bytes[3] ^= 0x40;
            tokens.push(format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes)));
            tokens.push(format!(
                "{input}.{}",
                URL_SAFE_NO_PAD.encode(&bytes[..bytes.len() - 1])
            ));
            tokens.push(format!("{input}.!!{}", &signature[2..]));
            let (header, _) = input.split_once('.').unwrap();
            tokens.push(format!("{header}.*.{signature}"));
        }
        for allowed in [&SigningAlg::ALL[..], &[SigningAlg::Es256][..]] {
            for token in &tokens {
                assert_eq!(
                    verify_jwt_prepared(token, &prepared, allowed),
                    verify_jwt(token, &jwks, allowed),
                    "{token}"
                );
            }
        }
        for token in &tokens[..3] {
            assert!(verify_jwt_prepared(token, &prepared, &SigningAlg::ALL).is_ok());
        }
    }

    /// A JWS with the given header and payload, signed by `key` (which need not match the header).
    fn forge(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let mut jws_header = JwsHeader::from_map(header.as_object().unwrap().clone()).unwrap();
        jws_header.set_algorithm(key.alg().as_str());
        let payload = serde_json::to_vec(claims).unwrap();
        jws::serialize_compact(&payload, &jws_header, key.signer.as_ref()).unwrap()
    }

    #[test]
    fn embedded_jwk_verification_uses_the_header_key_and_refuses_private_or_missing_keys() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let public = Value::Object(key.public_jwk().unwrap().into());
        let token = forge(
            &key,
            &serde_json::json!({"typ": "dpop+jwt", "jwk": public}),
            &serde_json::json!({"jti": "1"}),
        );
        let (verified, jwk) = verify_with_embedded_jwk(&token, &SigningAlg::ALL).unwrap();
        assert_eq!(verified.claims["jti"], "1");
        assert_eq!(jwk.thumbprint().unwrap(), key.kid());

        let private = Value::Object(key.private_jwk.as_ref().clone());
        let token = forge(
            &key,
            &serde_json::json!({"jwk": private}),
            &serde_json::json!({}),
        );
        assert!(matches!(
            verify_with_embedded_jwk(&token, &SigningAlg::ALL),
            Err(JoseError::InvalidKey(_))
        ));

        let token = forge(&key, &serde_json::json!({}), &serde_json::json!({}));
        assert!(matches!(
            verify_with_embedded_jwk(&token, &SigningAlg::ALL),
            Err(JoseError::InvalidKey(_))
        ));

        // Signed by one key, claiming another's public key.
        let other = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let token = forge(
            &other,
            &serde_json::json!({"jwk": public}),
            &serde_json::json!({}),
        );
        assert_eq!(
            verify_with_embedded_jwk(&token, &SigningAlg::ALL).unwrap_err(),
            JoseError::BadSignature
        );
    }

    #[test]
    fn rfc_7515_unknown_critical_extensions_are_refused() {
        let key = SigningKey::generate(SigningAlg::EdDsa, 2048).unwrap();
        let jwks = Jwks {
            keys: vec![key.public_jwk().unwrap()],
        };
        let token = forge(
            &key,
            &serde_json::json!({"kid": key.kid(), "crit": ["exp"], "exp": 1}),
            &serde_json::json!({}),
        );
        assert!(matches!(
            verify_jwt(&token, &jwks, &SigningAlg::ALL),
            Err(JoseError::Malformed(_))
        ));
    }

    #[test]
    fn refuses_to_generate_small_rsa_keys() {
        assert!(matches!(
            SigningKey::generate(SigningAlg::Ps256, 1024),
            Err(JoseError::WeakKey(_))
        ));
    }

    #[test]
    fn debug_output_redacts_the_private_key() {
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let d = key
            .private_jwk
            .parameter("d")
            .and_then(Value::as_str)
            .unwrap()
            .to_owned();
        let printed = format!("{key:?}");
        assert!(!printed.contains(&d));
        assert!(printed.contains("redacted"));
    }
}

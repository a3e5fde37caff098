//! The fixed world every target runs in: an issuer, one client with a key of each FAPI
//! algorithm, a software-statement directory, a DPoP key and a moment in time. The keys are test
//! keys committed beside this file (`keys/*.json`), never used anywhere else, so that the seed
//! corpus signed with them keeps verifying and the fuzzer reaches the checks behind the signature.

use std::sync::OnceLock;

use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::{ClientId, ClientProfile};
use portcullis_jose::{Jwks, PreparedJwks, SigningAlg, SigningKey};
use serde_json::{Map, Value};
use time::OffsetDateTime;

/// The authorization server's issuer.
pub const ISSUER: &str = "https://as.example";
/// The client every request comes from.
pub const CLIENT_ID: &str = "tpp-1";
/// The software-statement directory's issuer.
pub const DIRECTORY: &str = "https://directory.example";
/// The resource server access tokens are for.
pub const RESOURCE: &str = "https://api.bank.example/accounts";
/// The token endpoint, as DPoP proofs name it (`htu`).
pub const TOKEN_URL: &str = "https://as.example/token";
/// The one DPoP nonce the server accepts in [`crate::dpop_proof`]'s nonce mode.
pub const DPOP_NONCE: &str = "n-1";
/// The access token DPoP proofs accompany in [`crate::dpop_proof`]'s `ath` mode.
pub const ACCESS_TOKEN: &str = "access-token-value";
/// The PKCE challenge of the code redeemed in [`crate::token_form`] (RFC 7636 appendix B).
pub const CODE_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// The `authorization_details` types the client is registered for.
pub const DETAILS_TYPES: [&str; 3] = [
    "account_information",
    "payment_initiation",
    "customer_information",
];
/// "Now", in seconds since the epoch, for every time check.
pub const NOW: i64 = 1_800_000_000;

/// "Now".
#[must_use]
pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The loaded fixture.
#[derive(Debug)]
pub struct Fixture {
    /// The client's keys: PS256, ES256 and EdDSA, in [`SigningAlg::ALL`] order.
    pub client_keys: Vec<SigningKey>,
    /// Their public halves.
    pub client_jwks: Jwks,
    /// The same set prepared, as a resource server holds the authorization server's keys.
    pub prepared: PreparedJwks,
    /// The directory's signing key.
    pub directory_key: SigningKey,
    /// Its public half.
    pub directory_jwks: Jwks,
    /// A client's DPoP key (not in any set: DPoP proofs carry their key).
    pub dpop_key: SigningKey,
    /// The client's identifier.
    pub client_id: ClientId,
    /// The client's registration: every grant, every `authorization_details` type above.
    pub metadata: ClientMetadata,
}

impl Fixture {
    /// The client key for a selector byte.
    #[must_use]
    pub fn client_key(&self, selector: u8) -> Option<&SigningKey> {
        self.client_keys
            .get(usize::from(selector) % self.client_keys.len().max(1))
    }
}

fn load(alg: SigningAlg, json: &str) -> Option<SigningKey> {
    SigningKey::from_private_jwk_json(alg, json.as_bytes()).ok()
}

fn build() -> Option<Fixture> {
    let client_keys = vec![
        load(SigningAlg::Ps256, include_str!("keys/ps256.json"))?,
        load(SigningAlg::Es256, include_str!("keys/es256.json"))?,
        load(SigningAlg::EdDsa, include_str!("keys/eddsa.json"))?,
    ];
    let client_jwks = Jwks {
        keys: client_keys
            .iter()
            .map(SigningKey::public_jwk)
            .collect::<Result<_, _>>()
            .ok()?,
    };
    let directory_key = load(SigningAlg::Es256, include_str!("keys/directory-es256.json"))?;
    let directory_jwks = Jwks {
        keys: vec![directory_key.public_jwk().ok()?],
    };
    let metadata = ClientMetadata::from_stored(
        serde_json::json!({
            "redirect_uris": ["https://tpp.example/cb"],
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": "openid accounts payments",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": Value::Object(serde_json::to_value(&client_jwks).ok()?.as_object()?.clone()),
            "authorization_details_types": DETAILS_TYPES,
            "require_pushed_authorization_requests": true,
        })
        .as_object()?
        .clone(),
    )
    .ok()?;
    metadata.validate(ClientProfile::Fapi2).ok()?;
    Some(Fixture {
        prepared: PreparedJwks::new(client_jwks.clone()),
        client_keys,
        client_jwks,
        directory_key,
        directory_jwks,
        dpop_key: load(SigningAlg::EdDsa, include_str!("keys/dpop-eddsa.json"))?,
        client_id: ClientId::parse(CLIENT_ID).ok()?,
        metadata,
    })
}

/// The fixture, loaded once per process; `None` only if the committed keys do not load, which
/// the corpus test treats as a failure.
#[must_use]
pub fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(build).as_ref()
}

/// How a JWT target reads its input. The first byte chooses:
///
/// - even: the rest is a compact JWS, given to the parser as it is (the header, the base64url,
///   the signature check, key selection);
/// - odd: the rest is a JSON array `[header, claims]`, signed by the fixture key the byte's
///   upper bits choose, then given to the parser, so that the checks behind the signature
///   (times, audiences, `jti`, nonces) are fuzzed too, which no mutated signature ever reaches.
#[derive(Debug)]
pub enum JwtInput {
    /// A token as it arrived.
    Raw(String),
    /// Header and claims to sign, and the selector of the key.
    Sign {
        /// The protected header (its `alg` is the key's).
        header: Map<String, Value>,
        /// The claims.
        claims: Map<String, Value>,
        /// The upper bits of the first byte.
        key: u8,
    },
}

impl JwtInput {
    /// Splits fuzz input into a token or header and claims; `None` for input that is neither
    /// (not UTF-8, not the JSON shape).
    #[must_use]
    pub fn read(data: &[u8]) -> Option<Self> {
        let (&mode, rest) = data.split_first()?;
        if mode & 1 == 0 {
            return std::str::from_utf8(rest)
                .ok()
                .map(|s| JwtInput::Raw(s.to_owned()));
        }
        let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(rest) else {
            return None;
        };
        let mut parts = parts.into_iter();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(Value::Object(header)), Some(Value::Object(claims)), None) => {
                Some(JwtInput::Sign {
                    header,
                    claims,
                    key: mode >> 1,
                })
            }
            _ => None,
        }
    }

    /// The token: as it arrived, or signed by `key` (which `None` skips).
    #[must_use]
    pub fn token(self, key: impl FnOnce(u8) -> Option<&'static SigningKey>) -> Option<String> {
        match self {
            JwtInput::Raw(token) => Some(token),
            JwtInput::Sign {
                header,
                claims,
                key: selector,
            } => key(selector)?.sign_jwt_with_header(&header, &claims).ok(),
        }
    }
}

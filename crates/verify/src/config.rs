//! What a resource server tells [`Verifier`](crate::Verifier) about itself and the authorization
//! server it trusts. The defaults are the safe ones: sender-constrained tokens only, the FAPI 2.0
//! algorithms, a small clock skew, and failing closed when the revocation feed falls behind.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use portcullis_jose::{SigningAlg, SigningKey};

use crate::dpop::DpopConfig;
use crate::http::ClientIdentityPem;

/// Why a [`Verifier`](crate::Verifier) could not be set up (or, with feature `cli`, what an
/// API's command line asks for: see [`cli`](crate::cli)).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct SetupError {
    what: String,
    reason: String,
}

impl SetupError {
    /// A setup failure of `what`.
    pub fn new(what: &str, reason: impl std::fmt::Display) -> Self {
        Self {
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// How this API authenticates to the authorization server as its own client (to introspect and
/// to read the revocation event feed). The client must be the one registered for this resource
/// server (`client_id` of the resource registration), with `client_credentials` among its grant
/// types and `revocation_events` in its scope when the feed is used.
#[derive(Clone)]
pub enum ClientAuth {
    /// `tls_client_auth` or `self_signed_tls_client_auth` (RFC 8705): the certificate is
    /// presented on the authorization server's mTLS endpoints, and the feed's token is bound to it.
    Certificate(ClientIdentityPem),
    /// `private_key_jwt` (RFC 7523): assertions signed with this key. The feed's token is then
    /// DPoP-bound to a key generated at start-up.
    PrivateKeyJwt(Arc<SigningKey>),
}

impl ClientAuth {
    /// `private_key_jwt` with a private JWK in JSON (RFC 7517). The algorithm is the key's `alg`,
    /// or else follows from its type: ES256 for P-256, EdDSA for Ed25519, PS256 for RSA.
    ///
    /// # Errors
    /// [`SetupError`] when the JWK is not a usable private signing key.
    pub fn private_key_jwt_from_jwk_json(json: &[u8]) -> Result<Self, SetupError> {
        let members: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(json).map_err(|e| SetupError::new("client JWK", e))?;
        let named = |m: &str| members.get(m).and_then(serde_json::Value::as_str);
        let alg = match (named("alg"), named("kty")) {
            (Some(alg), _) => {
                SigningAlg::parse(alg).map_err(|e| SetupError::new("client JWK", e))?
            }
            (None, Some("EC")) => SigningAlg::Es256,
            (None, Some("OKP")) => SigningAlg::EdDsa,
            (None, Some("RSA")) => SigningAlg::Ps256,
            _ => {
                return Err(SetupError::new(
                    "client JWK",
                    "neither alg nor a known kty (EC, OKP, RSA)",
                ));
            }
        };
        let key = SigningKey::from_private_jwk_json(alg, json)
            .map_err(|e| SetupError::new("client JWK", e))?;
        Ok(ClientAuth::PrivateKeyJwt(Arc::new(key)))
    }
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Certificate(identity) => {
                f.debug_tuple("Certificate").field(identity).finish()
            }
            ClientAuth::PrivateKeyJwt(key) => f
                .debug_tuple("PrivateKeyJwt")
                .field(&format_args!("kid {}", key.kid()))
                .finish(),
        }
    }
}

/// This API's own client at the authorization server.
#[derive(Debug, Clone)]
pub struct ClientCredentials {
    /// Its `client_id`.
    pub client_id: String,
    /// How it authenticates.
    pub auth: ClientAuth,
}

/// When tokens are introspected (RFC 7662) rather than only verified locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IntrospectionMode {
    /// Opaque tokens only; JWTs are verified locally against the JWKS. Needs
    /// [`VerifierConfig::client`] for opaque tokens to be accepted at all.
    #[default]
    OpaqueOnly,
    /// Every token, JWTs too, after their local checks (belt and braces). Answers are cached
    /// until the token's `exp` and dropped by the revocation feed.
    Always,
}

/// What to do when the revocation feed has not been heard from for longer than
/// [`FeedConfig::max_lag`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum LagPolicy {
    /// Stop trusting what was verified or cached before, and introspect each token at the
    /// authorization server (which knows every revocation). Refuses when that fails too.
    #[default]
    Introspect,
    /// Refuse every token with 503 until the feed is back.
    Refuse,
}

/// The RFC 8936 revocation event feed of the authorization server.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// How long the feed may be unreachable before cached answers stop being trusted. Must be
    /// longer than the authorization server's long-poll time (`events.long_poll_secs`, 20 s by
    /// default).
    pub max_lag: Duration,
    /// What happens then.
    pub on_lag: LagPolicy,
    /// The most events asked for in one poll.
    pub max_events: u32,
    /// The poll endpoint, when not the one the metadata names (`revocation_events_endpoint`, or
    /// its mTLS alias for a certificate client): for a route through an egress proxy.
    pub endpoint: Option<String>,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            max_lag: Duration::from_secs(45),
            on_lag: LagPolicy::Introspect,
            max_events: 100,
            endpoint: None,
        }
    }
}

/// How a [`Verifier`](crate::Verifier) works.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// The authorization server's issuer identifier; its metadata is read from
    /// `{issuer}/.well-known/oauth-authorization-server` and must name the same issuer
    /// (RFC 8414 §3.3).
    pub issuer: String,
    /// This API's resource identifier (RFC 8707): the `aud` its tokens must carry.
    pub resource: String,
    /// The `realm` of its challenges.
    pub realm: String,
    /// The signing algorithms accepted for access tokens (FAPI2 SP 5.4.1: PS256, ES256, EdDSA).
    pub algorithms: Vec<SigningAlg>,
    /// How far apart this API's clock and the authorization server's may be, in seconds.
    pub clock_skew_secs: i64,
    /// Whether tokens without `cnf` are accepted as plain bearer tokens. Off: FAPI 2.0 accepts
    /// only sender-constrained tokens (SP 5.3.2.1-4, SP 5.3.4).
    pub allow_unbound_tokens: bool,
    /// The shortest time between two JWKS fetches caused by an unknown `kid`.
    pub jwks_min_refresh: Duration,
    /// How often the JWKS is fetched anyway, so keys that left the set are dropped.
    pub jwks_max_age: Duration,
    /// Extra CAs to trust for the authorization server's TLS certificate (for a development
    /// CA); the Mozilla roots are always trusted.
    pub ca_files: Vec<PathBuf>,
    /// Time allowed for each call to the authorization server.
    pub http_timeout: Duration,
    /// This API's own client, for introspection and the revocation feed.
    pub client: Option<ClientCredentials>,
    /// When to introspect.
    pub introspection: IntrospectionMode,
    /// Ask for RFC 9701 signed introspection answers and verify them against the JWKS.
    pub signed_introspection: bool,
    /// How many introspection answers and revoked identifiers are remembered.
    pub cache_entries: usize,
    /// The revocation event feed; `None` leaves revocations unseen until tokens expire (unless
    /// every token is introspected).
    pub feed: Option<FeedConfig>,
    /// The longest access-token lifetime of the authorization server: how long a revoked grant is
    /// remembered, so every token of it is refused until it has expired.
    pub max_token_lifetime: Duration,
    /// DPoP proof checks at this API.
    pub dpop: DpopConfig,
}

impl VerifierConfig {
    /// The defaults for an API with resource identifier `resource` trusting `issuer`.
    #[must_use]
    pub fn new(issuer: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            resource: resource.into(),
            realm: "api".into(),
            algorithms: SigningAlg::ALL.to_vec(),
            clock_skew_secs: 10,
            allow_unbound_tokens: false,
            jwks_min_refresh: Duration::from_secs(5),
            jwks_max_age: Duration::from_secs(300),
            ca_files: Vec::new(),
            http_timeout: Duration::from_secs(10),
            client: None,
            introspection: IntrospectionMode::OpaqueOnly,
            signed_introspection: false,
            cache_entries: 100_000,
            feed: Some(FeedConfig::default()),
            max_token_lifetime: Duration::from_secs(3600),
            dpop: DpopConfig::default(),
        }
    }
}

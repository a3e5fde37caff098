//! Client authentication, used by every endpoint a client calls (token, PAR, introspection,
//! revocation): given what a request presented, find the client and check it by its registered
//! method, or refuse with `invalid_client` naming the rule (RFC 6749 §5.2, FAPI2 SP 5.3.2.1-6,
//! RFC 7523 §3, RFC 8705 §2).
//!
//! - `private_key_jwt`: [`portcullis_core::assertion`] checks the assertion; its `jti` is then
//!   recorded in the shared replay store until it expires, so it works once across replicas.
//! - `tls_client_auth`: the certificate chains to a configured trust anchor and carries the
//!   registered subject DN or SAN.
//! - `self_signed_tls_client_auth`: the certificate's key is in the client's JWK set.
//! - `client_secret_basic`/`_post` (`oauth` profile only): the secret's SHA-256 is compared in
//!   constant time.

pub mod x509;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use portcullis_core::assertion::{AssertionPolicy, verify_client_assertion};
use portcullis_core::client::metadata::{AuthMethod, ClientMetadata};
use portcullis_core::client::{Client, ClientId, ClientProfile};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{FirstUse, ReplayKey, ReplayKind, Store, StoreError};
use portcullis_core::{Clock, audit::SecurityEvent};
use portcullis_jose::{Jwks, SigningAlg, decode_unverified_header};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::UnixTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::Duration;

use crate::config::ConfigError;
use crate::form::Form;
use crate::jwks_fetch::JwksFetcher;
use crate::tls::client_cert::ClientCertificate;

/// The one assertion type OIDC Core §9 and RFC 7523 §2.2 define.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Client-authentication settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAuthConfig {
    /// PEM files of the CAs that issue certificates to `tls_client_auth` clients (RFC 8705
    /// §2.1). Without any, `tls_client_auth` clients cannot authenticate.
    pub trust_anchor_files: Vec<PathBuf>,
    /// How far ahead a client assertion's `exp` may be, in seconds: bounds how long a stolen
    /// assertion stays usable and how long its `jti` is stored.
    pub assertion_max_lifetime_secs: u64,
    /// Whether `oauth`-profile clients may also address their assertions to the endpoint URL they
    /// call, or an array containing the issuer (RFC 7523 §3). FAPI clients never may (SP
    /// 5.3.2.1-8).
    pub oauth_accept_endpoint_audiences: bool,
}

impl Default for ClientAuthConfig {
    fn default() -> Self {
        Self {
            trust_anchor_files: Vec::new(),
            assertion_max_lifetime_secs: 600,
            oauth_accept_endpoint_audiences: true,
        }
    }
}

impl ClientAuthConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(30..=3600).contains(&self.assertion_max_lifetime_secs) {
            return Err(ConfigError::new(
                "client_auth.assertion_max_lifetime_secs",
                "must be between 30 and 3600",
            ));
        }
        Ok(())
    }

    /// Loads the trust anchors.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file that cannot be read or holds no certificate.
    pub fn trust_anchors(&self) -> Result<RootCertStore, ConfigError> {
        load_trust_anchors("client_auth.trust_anchor_files", &self.trust_anchor_files)
    }
}

/// Loads the CA certificates in PEM `files` (configuration key `key`) as trust anchors.
///
/// # Errors
/// [`ConfigError`] naming the file that cannot be read or holds no certificate.
pub fn load_trust_anchors(key: &str, files: &[PathBuf]) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for path in files {
        let pem = std::fs::read(path)
            .map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
        let mut found = 0;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert =
                cert.map_err(|e| ConfigError::new(key, format!("{}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| {
                ConfigError::new(
                    key,
                    format!("{}: not a CA certificate: {e}", path.display()),
                )
            })?;
            found += 1;
        }
        if found == 0 {
            return Err(ConfigError::new(
                key,
                format!("{}: no PEM certificate in it", path.display()),
            ));
        }
    }
    Ok(roots)
}

/// A verifier of client certificates against `roots` (configuration key `key`), or `None` when
/// there are no roots.
///
/// # Errors
/// [`ConfigError`] if rustls refuses the roots.
pub fn certificate_verifier(
    key: &str,
    roots: RootCertStore,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, ConfigError> {
    if roots.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(Some)
        .map_err(|e| ConfigError::new(key, e.to_string()))
}

/// Whether `certificate`, with the intermediates it came with, chains to `trust` at `now`
/// (validity period, key usage for client authentication, signatures).
///
/// # Errors
/// What rustls found wrong.
pub fn verify_chain(
    trust: &dyn ClientCertVerifier,
    certificate: &ClientCertificate,
    now: time::OffsetDateTime,
) -> Result<(), rustls::Error> {
    let seconds = u64::try_from(now.unix_timestamp()).unwrap_or(0);
    trust
        .verify_client_cert(
            certificate.der(),
            certificate.intermediates(),
            UnixTime::since_unix_epoch(StdDuration::from_secs(seconds)),
        )
        .map(|_| ())
}

/// The endpoint a client is authenticating at: for `oauth`-profile assertion audiences and for
/// the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/token`.
    Token,
    /// `/par`.
    Par,
    /// `/introspect`.
    Introspect,
    /// `/revoke`.
    Revoke,
}

impl Endpoint {
    /// The path.
    #[must_use]
    pub const fn path(self) -> &'static str {
        match self {
            Endpoint::Token => "/token",
            Endpoint::Par => "/par",
            Endpoint::Introspect => "/introspect",
            Endpoint::Revoke => "/revoke",
        }
    }
}

/// What a request presented to authenticate its client.
#[derive(Debug, Clone, Copy)]
pub struct Presented<'a> {
    /// The form body.
    pub form: &'a Form,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    /// The client certificate, if any.
    pub certificate: Option<&'a ClientCertificate>,
}

/// A client that proved who it is.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    /// The client as registered.
    pub client: Client,
    /// Its parsed metadata.
    pub metadata: ClientMetadata,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The revocation epoch this request read to trust the cached registration, if it did: a
    /// later check in the same request (token liveness) may rely on it instead of reading again.
    pub epoch: Option<i64>,
}

/// Why authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientAuthError {
    /// The client is refused: `invalid_client` (or `invalid_request` for a malformed request),
    /// answered with 401 and, when HTTP Basic was tried, `WWW-Authenticate` (RFC 6749 §5.2).
    #[error("{}: {}", .error.error, .error.error_description)]
    Refused {
        /// The protocol error.
        error: OAuthError,
        /// Whether the client tried HTTP Basic.
        basic_attempted: bool,
        /// Why, as a bounded label (metrics, logs).
        reason: FailureReason,
        /// The client the request named, when it named one (which it did not prove to be).
        named: Option<ClientId>,
    },
    /// The store failed: `server_error`, logged.
    #[error("client authentication: {0}")]
    Store(#[from] StoreError),
}

impl ClientAuthError {
    /// The protocol error to answer with.
    #[must_use]
    pub fn to_oauth(&self) -> OAuthError {
        match self {
            ClientAuthError::Refused { error, .. } => error.clone(),
            ClientAuthError::Store(_) => OAuthError::new(
                ErrorCode::ServerError,
                "the server could not complete the request",
            ),
        }
    }
}

/// Why a client authentication was refused: a bounded set, the `reason` label of
/// `portcullis_client_auth_failures_total`. The `error_description` sent says more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// The credentials cannot be sorted out: none, several methods, malformed HTTP Basic, a
    /// wrong assertion type, or names that disagree (RFC 6749 §2.3, checklist #4, #14).
    Malformed,
    /// The client named is not registered.
    UnknownClient,
    /// Credentials of another method than the client registered.
    WrongMethod,
    /// A client secret from a FAPI client (FAPI2 SP 5.3.2.1-6).
    SecretNotAllowed,
    /// The client secret is not right.
    InvalidSecret,
    /// The client assertion does not verify: signature, algorithm, claims, lifetime (RFC 7523
    /// §3).
    InvalidAssertion,
    /// The client assertion's `jti` was used before (checklist #20).
    AssertionReplayed,
    /// The client's keys cannot be had: none registered, or its `jwks_uri` fails.
    KeysUnavailable,
    /// A certificate method without a client certificate (RFC 8705 §2).
    CertificateMissing,
    /// The client certificate does not chain, or does not match the registration (RFC 8705
    /// §2.1, §2.2).
    InvalidCertificate,
}

impl FailureReason {
    /// Every reason, in the order the README lists them.
    pub const ALL: [FailureReason; 10] = [
        FailureReason::Malformed,
        FailureReason::UnknownClient,
        FailureReason::WrongMethod,
        FailureReason::SecretNotAllowed,
        FailureReason::InvalidSecret,
        FailureReason::InvalidAssertion,
        FailureReason::AssertionReplayed,
        FailureReason::KeysUnavailable,
        FailureReason::CertificateMissing,
        FailureReason::InvalidCertificate,
    ];

    /// The label value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            FailureReason::Malformed => "malformed",
            FailureReason::UnknownClient => "unknown_client",
            FailureReason::WrongMethod => "wrong_method",
            FailureReason::SecretNotAllowed => "secret_not_allowed",
            FailureReason::InvalidSecret => "invalid_secret",
            FailureReason::InvalidAssertion => "invalid_assertion",
            FailureReason::AssertionReplayed => "assertion_replayed",
            FailureReason::KeysUnavailable => "keys_unavailable",
            FailureReason::CertificateMissing => "certificate_missing",
            FailureReason::InvalidCertificate => "invalid_certificate",
        }
    }
}

/// The credentials a request carried, sorted out.
enum Credentials {
    Assertion(String),
    Basic {
        secret: String,
    },
    Post {
        secret: String,
    },
    /// Only a `client_id`: the client must authenticate with its certificate.
    CertificateOnly,
}

/// Authenticates clients. One per process; cheap to share.
#[derive(Debug)]
pub struct ClientAuthenticator {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    jwks: Arc<JwksFetcher>,
    trust: Option<Arc<dyn ClientCertVerifier>>,
    issuer: String,
    endpoint_urls: Vec<(Endpoint, Vec<String>)>,
    config: ClientAuthConfig,
    /// Registered clients as last read, trusted only while the revocation epoch (which every
    /// client change moves) is unchanged; `None` reads the store every time.
    clients: Option<ClientCache>,
    /// Where refusals are counted by reason; `None` counts nothing.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

/// See [`ClientAuthenticator::with_client_cache`].
#[derive(Debug)]
struct ClientCache {
    epochs: Arc<crate::liveness::EpochReader>,
    entries: crate::liveness::EpochCache<ClientId, Arc<(Client, ClientMetadata)>>,
}

impl ClientAuthenticator {
    /// An authenticator for the issuer, whose endpoints live at `main_base` and `mtls_base`.
    ///
    /// # Errors
    /// [`ConfigError`] if the trust anchors cannot be loaded.
    pub fn new(
        config: &ClientAuthConfig,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        jwks: Arc<JwksFetcher>,
        issuer: &str,
        mtls_base: &str,
    ) -> Result<Self, ConfigError> {
        let trust =
            certificate_verifier("client_auth.trust_anchor_files", config.trust_anchors()?)?;
        let endpoint_urls = [
            Endpoint::Token,
            Endpoint::Par,
            Endpoint::Introspect,
            Endpoint::Revoke,
        ]
        .into_iter()
        .map(|e| {
            (
                e,
                vec![
                    format!("{issuer}{}", e.path()),
                    format!("{mtls_base}{}", e.path()),
                ],
            )
        })
        .collect();
        Ok(Self {
            store,
            clock,
            jwks,
            trust,
            issuer: issuer.to_owned(),
            endpoint_urls,
            config: config.clone(),
            clients: None,
            metrics: None,
        })
    }

    /// Counts refusals in `metrics` (`portcullis_client_auth_failures_total{reason}`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Keeps up to about `capacity` registered clients per replica, each read trusted while the
    /// revocation epoch read by `epochs` is unchanged: every change to a client moves the epoch
    /// in the same transaction, so a changed or removed client is never authenticated by its
    /// old registration, on any replica.
    #[must_use]
    pub fn with_client_cache(
        mut self,
        epochs: Arc<crate::liveness::EpochReader>,
        capacity: usize,
    ) -> Self {
        self.clients = Some(ClientCache {
            epochs,
            entries: crate::liveness::EpochCache::new(capacity),
        });
        self
    }

    /// The registered client and its parsed metadata, from the cache when it holds.
    async fn registered(
        &self,
        client_id: &ClientId,
    ) -> Result<(Option<Arc<(Client, ClientMetadata)>>, Option<i64>), ClientAuthError> {
        let epoch = match &self.clients {
            Some(cache) => {
                let epoch = cache.epochs.read().await?;
                if let Some(found) = cache.entries.get(epoch, client_id) {
                    return Ok((Some(found), Some(epoch)));
                }
                Some(epoch)
            }
            None => None,
        };
        let client = match self.store.clients().find_by_id(client_id).await {
            Ok(client) => client,
            Err(StoreError::NotFound) => return Ok((None, epoch)),
            Err(e) => return Err(e.into()),
        };
        let metadata = ClientMetadata::from_stored(client.metadata.clone()).map_err(|e| {
            tracing::error!(client_id = %client.client_id, error = %e.error_description, "stored client metadata does not parse");
            ClientAuthError::Store(StoreError::Corrupt("clients.metadata".into()))
        })?;
        let found = Arc::new((client, metadata));
        if let (Some(cache), Some(epoch)) = (&self.clients, epoch) {
            cache
                .entries
                .insert(epoch, client_id.clone(), Arc::clone(&found));
        }
        Ok((Some(found), epoch))
    }

    /// Records a refused client authentication in the security-event trail
    /// (`client_auth.failure`): the endpoint, the reason and the client the request named (which
    /// it did not prove to be), never a credential. Not recording it does not change the answer,
    /// which is a refusal either way; it is logged.
    async fn record_refusal(
        &self,
        named: Option<&ClientId>,
        endpoint: Endpoint,
        reason: FailureReason,
    ) {
        let mut details = serde_json::Map::new();
        details.insert("endpoint".into(), endpoint.path().into());
        details.insert("reason".into(), reason.as_str().into());
        // Under its own name, not `client_id`: the event's client column (what the admin API
        // filters by) holds only clients that proved who they are.
        if let Some(client_id) = &named {
            details.insert("named_client_id".into(), client_id.as_str().into());
        }
        let event = SecurityEvent::new(
            self.clock.now(),
            "unauthenticated",
            "client_auth.failure",
            named.map(|c| c.to_string()),
            details,
        );
        if let Err(e) = self.store.events().append(&event).await {
            tracing::warn!(error = %e, "could not record a refused client authentication");
        }
    }

    /// The verifier of `tls_client_auth` certificates, when trust anchors are configured.
    #[must_use]
    pub fn trust(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.trust.clone()
    }

    /// Authenticates the client of a form request at `endpoint`: the form's credentials, the
    /// `Authorization` header (HTTP Basic) and the connection's client certificate.
    ///
    /// # Errors
    /// As [`ClientAuthenticator::authenticate`].
    pub async fn authenticate_request(
        &self,
        form: &Form,
        headers: &http::HeaderMap,
        certificate: Option<&ClientCertificate>,
        endpoint: Endpoint,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let presented = Presented {
            form,
            authorization: headers
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok()),
            certificate,
        };
        self.authenticate(presented, endpoint).await
    }

    /// Authenticates the client of a request at `endpoint`. Once it has, its `client_id` is
    /// recorded on the request's span (`crate::app`), so every later log line of the request
    /// carries it; a refusal is counted by reason and logged without any credential.
    ///
    /// # Errors
    /// [`ClientAuthError::Refused`] with the protocol error, or [`ClientAuthError::Store`].
    pub async fn authenticate(
        &self,
        presented: Presented<'_>,
        endpoint: Endpoint,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let result = self.check(presented, endpoint).await;
        match &result {
            Ok(client) => {
                tracing::Span::current().record("client_id", client.client.client_id.as_str());
            }
            Err(ClientAuthError::Refused { reason, named, .. }) => {
                if let Some(metrics) = &self.metrics {
                    metrics.client_auth_failed(*reason);
                }
                tracing::info!(
                    reason = reason.as_str(),
                    endpoint = endpoint.path(),
                    "client authentication refused"
                );
                self.record_refusal(named.as_ref(), endpoint, *reason).await;
            }
            Err(ClientAuthError::Store(_)) => {}
        }
        result
    }

    async fn check(
        &self,
        presented: Presented<'_>,
        endpoint: Endpoint,
    ) -> Result<AuthenticatedClient, ClientAuthError> {
        let basic = basic_credentials(presented.authorization);
        let basic_attempted = basic.is_some();
        let (credentials, client_id) =
            sort_out(presented.form, basic).map_err(|error| ClientAuthError::Refused {
                error,
                basic_attempted,
                reason: FailureReason::Malformed,
                named: None,
            })?;
        // From here on every refusal names the client the request named.
        let refuse = |reason: FailureReason, error: OAuthError| ClientAuthError::Refused {
            error,
            basic_attempted,
            reason,
            named: Some(client_id.clone()),
        };
        let (registered, epoch) = self.registered(&client_id).await?;
        let Some(registered) = registered else {
            return Err(refuse(
                FailureReason::UnknownClient,
                invalid_client("the client is not registered"),
            ));
        };
        let (client, metadata) = (registered.0.clone(), registered.1.clone());
        let registered = metadata
            .token_endpoint_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic);
        let fapi = client.profile != ClientProfile::Oauth;

        match (registered, credentials) {
            (AuthMethod::PrivateKeyJwt, Credentials::Assertion(assertion)) => {
                self.check_assertion(&client, &metadata, &assertion, endpoint)
                    .await
                    .map_err(|e| match e {
                        ClientAuthError::Refused { error, reason, .. } => refuse(reason, error),
                        other => other,
                    })?;
            }
            (AuthMethod::ClientSecretBasic, Credentials::Basic { secret })
            | (AuthMethod::ClientSecretPost, Credentials::Post { secret }) => {
                let matches = client
                    .secret_hash
                    .as_ref()
                    .is_some_and(|hash| hash.matches(&secret));
                if !matches {
                    return Err(refuse(
                        FailureReason::InvalidSecret,
                        invalid_client("the client secret is not correct"),
                    ));
                }
            }
            (AuthMethod::TlsClientAuth, Credentials::CertificateOnly) => {
                let certificate = require_certificate(presented.certificate)
                    .map_err(|e| refuse(FailureReason::CertificateMissing, e))?;
                self.check_tls_client_auth(&metadata, certificate)
                    .map_err(|e| refuse(FailureReason::InvalidCertificate, e))?;
            }
            (AuthMethod::SelfSignedTlsClientAuth, Credentials::CertificateOnly) => {
                let certificate = require_certificate(presented.certificate)
                    .map_err(|e| refuse(FailureReason::CertificateMissing, e))?;
                self.check_self_signed(&metadata, certificate)
                    .await
                    .map_err(|e| refuse(FailureReason::InvalidCertificate, e))?;
            }
            (_, Credentials::Basic { .. } | Credentials::Post { .. }) if fapi => {
                // Checklist #15.
                return Err(refuse(
                    FailureReason::SecretNotAllowed,
                    invalid_client(format!(
                        "client secrets are not allowed for FAPI clients (FAPI2 SP 5.3.2.1-6); this client authenticates with {}",
                        registered.as_str()
                    )),
                ));
            }
            (AuthMethod::PrivateKeyJwt, Credentials::CertificateOnly) => {
                // Checklist #14.
                return Err(refuse(
                    FailureReason::WrongMethod,
                    invalid_client(
                        "client authentication is required: this client authenticates with private_key_jwt (client_assertion)",
                    ),
                ));
            }
            (_, _) => {
                return Err(refuse(
                    FailureReason::WrongMethod,
                    invalid_client(format!(
                        "this client authenticates with {}",
                        registered.as_str()
                    )),
                ));
            }
        }
        Ok(AuthenticatedClient {
            client,
            metadata,
            method: registered,
            epoch,
        })
    }

    /// The client's keys: its `jwks`, or its `jwks_uri` fetched (from cache), or refetched when
    /// `refresh` (an unknown `kid`).
    ///
    /// # Errors
    /// `invalid_client` when the client has no keys or its `jwks_uri` cannot be fetched.
    pub async fn client_keys(
        &self,
        metadata: &ClientMetadata,
        refresh: bool,
    ) -> Result<Arc<Jwks>, OAuthError> {
        if let Some(jwks) = &metadata.jwks {
            return Ok(Arc::new(jwks.clone()));
        }
        let Some(uri) = &metadata.jwks_uri else {
            return Err(invalid_client("the client has registered no keys"));
        };
        let fetched = if refresh {
            self.jwks.refresh(uri).await
        } else {
            self.jwks.get(uri).await
        };
        fetched.map_err(|e| invalid_client(format!("the client's jwks_uri: {}", e.describe())))
    }

    async fn check_assertion(
        &self,
        client: &Client,
        metadata: &ClientMetadata,
        assertion: &str,
        endpoint: Endpoint,
    ) -> Result<(), ClientAuthError> {
        let refuse = |reason: FailureReason| {
            move |error: OAuthError| ClientAuthError::Refused {
                error,
                basic_attempted: false,
                reason,
                // `check` names the client when it passes the refusal on.
                named: None,
            }
        };
        let mut policy = AssertionPolicy::fapi(&self.issuer);
        policy.max_lifetime = Duration::seconds(
            i64::try_from(self.config.assertion_max_lifetime_secs).unwrap_or(600),
        );
        if let Some(alg) = metadata.token_endpoint_auth_signing_alg {
            policy.algorithms = vec![alg];
        }
        if client.profile == ClientProfile::Oauth && self.config.oauth_accept_endpoint_audiences {
            if let Some((_, urls)) = self.endpoint_urls.iter().find(|(e, _)| *e == endpoint) {
                policy.audiences.extend(urls.iter().cloned());
            }
            policy.allow_audience_array = true;
        }
        let now = self.clock.now();
        let mut keys = self
            .client_keys(metadata, false)
            .await
            .map_err(refuse(FailureReason::KeysUnavailable))?;
        // An unknown kid may mean the client rotated its keys: refetch (rate-limited) once.
        if metadata.jwks_uri.is_some() && lacks_signing_key(assertion, &keys) {
            keys = self
                .client_keys(metadata, true)
                .await
                .map_err(refuse(FailureReason::KeysUnavailable))?;
        }
        let verified = verify_client_assertion(assertion, &client.client_id, &keys, &policy, now)
            .map_err(refuse(FailureReason::InvalidAssertion))?;
        // Checklist #20: once, across every replica.
        let key = ReplayKey {
            kind: ReplayKind::ClientAssertion,
            issuer: client.client_id.as_str(),
            id: &verified.jti,
        };
        match self
            .store
            .replay()
            .record(key, verified.expires_at, now)
            .await?
        {
            FirstUse::First => Ok(()),
            FirstUse::Replayed => {
                let event = SecurityEvent::new(
                    now,
                    client.client_id.as_str(),
                    "client_assertion.replayed",
                    Some(client.client_id.to_string()),
                    serde_json::Map::new(),
                );
                if let Err(e) = self.store.events().append(&event).await {
                    tracing::warn!(error = %e, "could not record a replayed client assertion");
                }
                Err(refuse(FailureReason::AssertionReplayed)(invalid_client(
                    "the client assertion has been used before: its jti is single-use (OIDC Core §9)",
                )))
            }
        }
    }

    fn check_tls_client_auth(
        &self,
        metadata: &ClientMetadata,
        certificate: &ClientCertificate,
    ) -> Result<(), OAuthError> {
        let Some(trust) = &self.trust else {
            return Err(invalid_client(
                "tls_client_auth is not available: no trust anchors are configured",
            ));
        };
        verify_chain(trust.as_ref(), certificate, self.clock.now()).map_err(|e| {
            invalid_client(format!(
                "the client certificate does not chain to a trusted CA (RFC 8705 §2.1): {e}"
            ))
        })?;
        let cert = x509::parse(certificate.der())
            .ok_or_else(|| invalid_client("the client certificate does not parse"))?;
        let registered = [
            (metadata.tls_client_auth_subject_dn.as_deref(), None),
            (
                metadata.tls_client_auth_san_dns.as_deref(),
                Some(x509::SanKind::Dns),
            ),
            (
                metadata.tls_client_auth_san_uri.as_deref(),
                Some(x509::SanKind::Uri),
            ),
            (
                metadata.tls_client_auth_san_ip.as_deref(),
                Some(x509::SanKind::Ip),
            ),
            (
                metadata.tls_client_auth_san_email.as_deref(),
                Some(x509::SanKind::Email),
            ),
        ];
        // RFC 8705 §2.1.2: exactly one is registered; validation ensures it.
        let Some((value, kind)) = registered
            .iter()
            .find_map(|(value, kind)| value.map(|v| (v, *kind)))
        else {
            return Err(invalid_client(
                "the client has no registered certificate subject",
            ));
        };
        let matched = match kind {
            None => x509::subject_matches(&cert, value),
            Some(kind) => x509::san_matches(&cert, kind, value),
        };
        if matched {
            Ok(())
        } else {
            // Checklist #26.
            Err(invalid_client(format!(
                "the client certificate does not carry the registered {} (RFC 8705 §2.1.2)",
                match kind {
                    None => "tls_client_auth_subject_dn",
                    Some(x509::SanKind::Dns) => "tls_client_auth_san_dns",
                    Some(x509::SanKind::Uri) => "tls_client_auth_san_uri",
                    Some(x509::SanKind::Ip) => "tls_client_auth_san_ip",
                    Some(x509::SanKind::Email) => "tls_client_auth_san_email",
                }
            )))
        }
    }

    async fn check_self_signed(
        &self,
        metadata: &ClientMetadata,
        certificate: &ClientCertificate,
    ) -> Result<(), OAuthError> {
        let cert = x509::parse(certificate.der())
            .ok_or_else(|| invalid_client("the client certificate does not parse"))?;
        let now = self.clock.now().unix_timestamp();
        let validity = cert.validity();
        if now < validity.not_before.timestamp() || now > validity.not_after.timestamp() {
            return Err(invalid_client(
                "the client certificate is outside its validity period",
            ));
        }
        let keys = self.client_keys(metadata, false).await?;
        if x509::key_in_jwks(certificate.der(), &cert, &keys) {
            return Ok(());
        }
        if metadata.jwks_uri.is_some() {
            let keys = self.client_keys(metadata, true).await?;
            if x509::key_in_jwks(certificate.der(), &cert, &keys) {
                return Ok(());
            }
        }
        // Checklist #27.
        Err(invalid_client(
            "the client certificate's key is not in the client's registered JWK set (RFC 8705 §2.2)",
        ))
    }
}

fn invalid_client(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClient, description)
}

fn require_certificate(
    certificate: Option<&ClientCertificate>,
) -> Result<&ClientCertificate, OAuthError> {
    certificate.ok_or_else(|| {
        invalid_client(
            "this client authenticates with a client certificate: call the mtls_endpoint_aliases endpoint with it (RFC 8705 §2)",
        )
    })
}

/// Decodes HTTP Basic credentials: base64 of `id:secret`, each form-urlencoded (RFC 6749
/// §2.3.1).
fn decode_basic(value: &str) -> Result<(String, String), OAuthError> {
    let bad = || invalid_client("the Authorization header is not valid HTTP Basic credentials");
    let decoded = STANDARD.decode(value).map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let decode = |part: &str| -> Result<String, OAuthError> {
        url::form_urlencoded::parse(format!("x={part}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or_else(bad)
    };
    Ok((decode(id)?, decode(secret)?))
}

/// The `sub` of an assertion, read without verifying it: only to find the client whose keys
/// then verify it.
fn assertion_subject(assertion: &str) -> Option<String> {
    let payload = assertion.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("sub").and_then(Value::as_str).map(str::to_owned)
}

/// The credentials of an `Authorization: Basic` header value, if that is its scheme.
fn basic_credentials(authorization: Option<&str>) -> Option<&str> {
    authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, value)| value.trim())
}

/// The client a request names, read from its form and `Authorization` header alone, before any
/// lookup: the parsing half of [`ClientAuthenticator::authenticate`] (one method only, every
/// name the same, HTTP Basic decoded, an assertion's `sub` read unverified). Public so that the
/// fuzz targets (`crates/fuzz-targets`) reach this parser of outside input.
///
/// # Errors
/// `invalid_request` for several methods, `invalid_client` for none or names that disagree.
pub fn presented_client(form: &Form, authorization: Option<&str>) -> Result<ClientId, OAuthError> {
    sort_out(form, basic_credentials(authorization)).map(|(_, client_id)| client_id)
}

/// Works out which method the request used and which client it names. More than one method is
/// `invalid_request` (RFC 6749 §2.3); names that disagree are `invalid_client` (checklist #4).
fn sort_out(form: &Form, basic: Option<&str>) -> Result<(Credentials, ClientId), OAuthError> {
    let assertion_type = form.get("client_assertion_type");
    let assertion = form.get("client_assertion");
    let post_secret = form.get("client_secret");
    let mut methods = 0;
    methods += usize::from(basic.is_some());
    methods += usize::from(post_secret.is_some());
    methods += usize::from(assertion.is_some() || assertion_type.is_some());
    if methods > 1 {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequest,
            "the request uses more than one client authentication method (RFC 6749 §2.3)",
        ));
    }
    let mut named: Vec<String> = Vec::new();
    if let Some(id) = form.get("client_id") {
        named.push(id.to_owned());
    }
    let credentials = if let Some(value) = basic {
        let (id, secret) = decode_basic(value)?;
        named.push(id);
        Credentials::Basic { secret }
    } else if let Some(secret) = post_secret {
        Credentials::Post {
            secret: secret.to_owned(),
        }
    } else if assertion.is_some() || assertion_type.is_some() {
        if assertion_type != Some(JWT_BEARER) {
            return Err(invalid_client(format!(
                "client_assertion_type must be {JWT_BEARER} (RFC 7523 §2.2)"
            )));
        }
        let assertion = assertion.ok_or_else(|| invalid_client("client_assertion is missing"))?;
        let subject = assertion_subject(assertion).ok_or_else(|| {
            invalid_client("client assertion has no sub naming the client (RFC 7523 §3)")
        })?;
        named.push(subject);
        Credentials::Assertion(assertion.to_owned())
    } else {
        Credentials::CertificateOnly
    };
    let Some(first) = named.first() else {
        // Checklist #14.
        return Err(invalid_client(
            "client authentication is required (FAPI2 SP 5.3.2.2-4)",
        ));
    };
    if named.iter().any(|other| other != first) {
        // Checklist #4.
        return Err(invalid_client(
            "the client_id parameter does not name the client that authenticated",
        ));
    }
    let client_id = ClientId::parse(first.clone())
        .map_err(|_| invalid_client("the client is not registered"))?;
    Ok((credentials, client_id))
}

/// Whether `keys` has no key that could have signed the JWS (by its header's `kid` and `alg`).
pub fn lacks_signing_key(jws: &str, keys: &Jwks) -> bool {
    let Ok(header) = decode_unverified_header(jws) else {
        return false;
    };
    let Some(Ok(alg)) = header
        .get("alg")
        .and_then(Value::as_str)
        .map(SigningAlg::parse)
    else {
        return false;
    };
    let kid = header.get("kid").and_then(Value::as_str);
    keys.candidates(kid, alg).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str) -> Form {
        Form::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn rfc_6749_2_3_one_method_only() {
        let basic = STANDARD.encode("c1:s");
        let e = sort_out(&form("client_secret=s&client_id=c1"), Some(&basic))
            .err()
            .unwrap();
        assert_eq!(e.error, ErrorCode::InvalidRequest);
    }

    #[test]
    fn checklist_4_client_id_must_name_the_authenticated_client() {
        let basic = STANDARD.encode("c1:s");
        let e = sort_out(&form("client_id=c2"), Some(&basic)).err().unwrap();
        assert_eq!(e.error, ErrorCode::InvalidClient);
        let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"c1","iss":"c1"}"#);
        let body = format!(
            "client_id=c2&client_assertion_type={}&client_assertion=e30.{claims}.sig",
            url::form_urlencoded::byte_serialize(JWT_BEARER.as_bytes()).collect::<String>()
        );
        let e = sort_out(&form(&body), None).err().unwrap();
        assert_eq!(e.error, ErrorCode::InvalidClient);
    }

    #[test]
    fn checklist_14_no_authentication_at_all_is_invalid_client() {
        let e = sort_out(&form("grant_type=client_credentials"), None)
            .err()
            .unwrap();
        assert_eq!(e.error, ErrorCode::InvalidClient);
        assert!(e.error_description.contains("required"));
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let value = STANDARD.encode("my%20client:p%3Ass");
        assert_eq!(
            decode_basic(&value).unwrap(),
            ("my client".to_owned(), "p:ss".to_owned())
        );
        assert!(decode_basic("!!!").is_err());
        assert!(decode_basic(&STANDARD.encode("nocolon")).is_err());
    }

    #[test]
    fn the_assertion_type_must_be_jwt_bearer() {
        let e = sort_out(
            &form("client_assertion_type=urn:other&client_assertion=a.b.c"),
            None,
        )
        .err()
        .unwrap();
        assert_eq!(e.error, ErrorCode::InvalidClient);
    }
}

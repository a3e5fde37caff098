//! Dynamic client registration's admission rules (RFC 7591, RFC 7592): who may register, with
//! which software statement, from which certificate, and what the request becomes once the
//! statement has been applied. The HTTP side is `routes::register`; storage goes through
//! [`crate::registry`] like every other change to the client registry.
//!
//! Closed by default: `/register` answers only once the operator configures a trusted directory
//! (`[[registration.directories]]`) or initial access tokens. With directories, every
//! registration carries a `software_statement` one of them signed (checklist #63); for FAPI
//! profiles it is made on the mTLS listener with a certificate that chains to the directory's CAs
//! and names the statement's software (checklist #64).

use std::path::PathBuf;
use std::sync::Arc;

use portcullis_core::Clock;
use portcullis_core::client::metadata::ClientMetadata;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::client::{Client, ClientProfile};
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::software_statement::{self, StatementPolicy, VerifiedStatement};
use portcullis_core::store::{FirstUse, ReplayKey, ReplayKind, Store, StoreError};
use portcullis_jose::{Jwks, SigningAlg, decode_unverified_claims, decode_unverified_header};
use rustls::server::danger::ClientCertVerifier;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use subtle::ConstantTimeEq as _;
use time::Duration;

use crate::client_auth::{self, x509};
use crate::config::ConfigError;
use crate::jwks_fetch::{JwksFetcher, parse_jwks};
use crate::tls::client_cert::ClientCertificate;

/// How far ahead of our clock a statement's `iat`/`nbf` may be.
const STATEMENT_SKEW_SECS: i64 = 30;

/// Dynamic registration settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationConfig {
    /// Directories whose software statements are trusted. With any, a statement is required.
    pub directories: Vec<DirectoryConfig>,
    /// Base64url SHA-256 hashes of the initial access tokens (RFC 7591 §3) that admit a
    /// registration (`portcullis registration initial-access-token` makes one). Without
    /// directories, one of them admits a registration without a statement; with directories, a
    /// statement is always required and `require_initial_access_token` asks for a token too.
    pub initial_access_token_sha256: Vec<String>,
    /// Whether registrations with a software statement must also present an initial access token.
    pub require_initial_access_token: bool,
    /// The profile of clients registered with an initial access token and no statement.
    pub profile: String,
    /// How long after its `iat` a software statement is accepted, in seconds (Open Finance
    /// Brasil: 300).
    pub statement_max_age_secs: u64,
}

impl Default for RegistrationConfig {
    fn default() -> Self {
        Self {
            directories: Vec::new(),
            initial_access_token_sha256: Vec::new(),
            require_initial_access_token: false,
            profile: "fapi2".into(),
            statement_max_age_secs: 300,
        }
    }
}

/// How a transport certificate is tied to the software a statement names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateMatch {
    /// The subject's `UID` (Open Finance Brasil) or `CN` (UK Open Banking) is the statement's
    /// `software_id`.
    #[default]
    SoftwareId,
    /// The certificate's public key is in the JWK set at the statement's `software_jwks_uri`.
    SoftwareJwks,
}

/// A trusted software-statement issuer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// The `iss` of its statements.
    pub issuer: String,
    /// Its public keys, in a JWK set file.
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// Its public keys, fetched over TLS (the same fetcher and limits as client `jwks_uri`s).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The algorithms it signs with (default: PS256, ES256, EdDSA).
    #[serde(default)]
    pub algorithms: Vec<SigningAlg>,
    /// The profile its software is registered under (default `fapi2`).
    #[serde(default)]
    pub profile: Option<String>,
    /// PEM files of the CAs that issue its software's transport certificates (default: the
    /// `client_auth.trust_anchor_files`).
    #[serde(default)]
    pub trust_anchor_files: Vec<PathBuf>,
    /// How a certificate is tied to the statement.
    #[serde(default)]
    pub certificate_match: CertificateMatch,
}

fn profile_named(key: &str, name: &str) -> Result<ClientProfile, ConfigError> {
    ClientProfile::parse(name)
        .ok_or_else(|| ConfigError::new(key, "must be fapi2, fapi2-message-signing or oauth"))
}

impl RegistrationConfig {
    /// Checks the values (files are read when the registrar is built).
    ///
    /// # Errors
    /// [`ConfigError`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        profile_named("registration.profile", &self.profile)?;
        if !(30..=3600).contains(&self.statement_max_age_secs) {
            return Err(ConfigError::new(
                "registration.statement_max_age_secs",
                "must be 30 to 3600",
            ));
        }
        for hash in &self.initial_access_token_sha256 {
            decode_hash(hash).ok_or_else(|| {
                ConfigError::new(
                    "registration.initial_access_token_sha256",
                    "each entry must be a base64url SHA-256 (43 characters)",
                )
            })?;
        }
        for (index, directory) in self.directories.iter().enumerate() {
            let key = |name: &str| format!("registration.directories[{index}].{name}");
            if !directory.issuer.starts_with("https://") {
                return Err(ConfigError::new(key("issuer"), "must be an https URL"));
            }
            if self
                .directories
                .iter()
                .take(index)
                .any(|d| d.issuer == directory.issuer)
            {
                return Err(ConfigError::new(key("issuer"), "is listed twice"));
            }
            match (&directory.jwks_file, &directory.jwks_uri) {
                (Some(_), None) => {}
                (None, Some(uri)) if uri.starts_with("https://") => {}
                (None, Some(_)) => {
                    return Err(ConfigError::new(key("jwks_uri"), "must be an https URL"));
                }
                _ => {
                    return Err(ConfigError::new(
                        key("jwks_file"),
                        "exactly one of jwks_file and jwks_uri is required",
                    ));
                }
            }
            if let Some(profile) = &directory.profile {
                profile_named(&key("profile"), profile)?;
            }
        }
        Ok(())
    }
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
}

/// Where a directory's keys come from.
#[derive(Debug)]
enum DirectoryKeys {
    Static(Arc<Jwks>),
    Uri(String),
}

/// A trusted directory, ready to verify.
#[derive(Debug)]
struct Directory {
    issuer: String,
    keys: DirectoryKeys,
    algorithms: Vec<SigningAlg>,
    profile: ClientProfile,
    trust: Option<Arc<dyn ClientCertVerifier>>,
    certificate_match: CertificateMatch,
}

/// What a registration request becomes once admitted.
#[derive(Debug)]
pub struct Admitted {
    /// RFC 7591 metadata with the statement applied and the verified statement kept in
    /// `software_statement`.
    pub metadata: Map<String, Value>,
    /// The profile the client is registered under.
    pub profile: ClientProfile,
    /// Who registers, for the security event: the directory and software, or the initial access
    /// token.
    pub actor: String,
}

/// Why a registration request was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// An RFC 7591 error (400).
    #[error(transparent)]
    Refused(OAuthError),
    /// A missing or wrong initial access token (401, RFC 6750 `invalid_token`).
    #[error(transparent)]
    Unauthorized(OAuthError),
    /// The store failed.
    #[error("registration: {0}")]
    Store(#[from] StoreError),
}

impl From<OAuthError> for AdmissionError {
    fn from(error: OAuthError) -> Self {
        AdmissionError::Refused(error)
    }
}

fn unapproved(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::UnapprovedSoftwareStatement, description)
}

fn invalid_statement(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidSoftwareStatement, description)
}

/// Admits or refuses registration requests. One per process.
#[derive(Debug)]
pub struct Registrar {
    directories: Vec<Directory>,
    initial_tokens: Vec<[u8; 32]>,
    require_initial_token: bool,
    profile: ClientProfile,
    max_age: Duration,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    jwks: Arc<JwksFetcher>,
}

impl Registrar {
    /// Builds the registrar: reads the directories' key files and trust anchors.
    /// `fallback_trust` is the `client_auth` verifier, for directories without CAs of their own.
    ///
    /// # Errors
    /// [`ConfigError`] for an unreadable file, or a FAPI directory without any CA to check
    /// certificates against.
    pub fn new(
        config: &RegistrationConfig,
        fallback_trust: Option<Arc<dyn ClientCertVerifier>>,
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        jwks: Arc<JwksFetcher>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        let mut directories = Vec::with_capacity(config.directories.len());
        for (index, directory) in config.directories.iter().enumerate() {
            let key = |name: &str| format!("registration.directories[{index}].{name}");
            let keys = match (&directory.jwks_file, &directory.jwks_uri) {
                (Some(path), _) => {
                    let bytes = std::fs::read(path).map_err(|e| {
                        ConfigError::new(key("jwks_file"), format!("{}: {e}", path.display()))
                    })?;
                    let jwks = parse_jwks(&bytes).map_err(|e| {
                        ConfigError::new(
                            key("jwks_file"),
                            format!("{}: {}", path.display(), e.describe()),
                        )
                    })?;
                    DirectoryKeys::Static(Arc::new(jwks))
                }
                (None, Some(uri)) => DirectoryKeys::Uri(uri.clone()),
                (None, None) => {
                    return Err(ConfigError::new(key("jwks_file"), "required"));
                }
            };
            let profile = match &directory.profile {
                Some(name) => profile_named(&key("profile"), name)?,
                None => ClientProfile::Fapi2,
            };
            let trust = if directory.trust_anchor_files.is_empty() {
                fallback_trust.clone()
            } else {
                let anchors_key = key("trust_anchor_files");
                client_auth::certificate_verifier(
                    &anchors_key,
                    client_auth::load_trust_anchors(&anchors_key, &directory.trust_anchor_files)?,
                )?
            };
            if profile != ClientProfile::Oauth && trust.is_none() {
                return Err(ConfigError::new(
                    key("trust_anchor_files"),
                    "a FAPI directory needs the CAs of its transport certificates (here or in client_auth.trust_anchor_files)",
                ));
            }
            directories.push(Directory {
                issuer: directory.issuer.clone(),
                keys,
                algorithms: if directory.algorithms.is_empty() {
                    SigningAlg::ALL.to_vec()
                } else {
                    directory.algorithms.clone()
                },
                profile,
                trust,
                certificate_match: directory.certificate_match,
            });
        }
        Ok(Self {
            directories,
            initial_tokens: config
                .initial_access_token_sha256
                .iter()
                .filter_map(|h| decode_hash(h))
                .collect(),
            require_initial_token: config.require_initial_access_token,
            profile: profile_named("registration.profile", &config.profile)?,
            max_age: Duration::seconds(i64::try_from(config.statement_max_age_secs).unwrap_or(300)),
            store,
            clock,
            jwks,
        })
    }

    fn directory(&self, issuer: &str) -> Option<&Directory> {
        self.directories.iter().find(|d| d.issuer == issuer)
    }

    /// Whether `/register` is open at all.
    #[must_use]
    pub fn is_open(&self) -> bool {
        !self.directories.is_empty() || !self.initial_tokens.is_empty()
    }

    /// Whether every registration needs a client certificate, so the endpoint lives on the mTLS
    /// listener only.
    #[must_use]
    pub fn certificate_always_required(&self) -> bool {
        !self.directories.is_empty()
            && self
                .directories
                .iter()
                .all(|d| d.profile != ClientProfile::Oauth)
    }

    /// Checks the initial access token of a `POST /register` (RFC 7591 §3, RFC 6750 §2.1).
    /// Returns whether one was presented and accepted.
    ///
    /// # Errors
    /// `invalid_token` when one is required and missing, or when the one presented is unknown.
    pub fn check_initial_access_token(
        &self,
        authorization: Option<&str>,
    ) -> Result<bool, AdmissionError> {
        let required = self.require_initial_token || self.directories.is_empty();
        let Some(authorization) = authorization else {
            if required {
                return Err(AdmissionError::Unauthorized(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "an initial access token is required (RFC 7591 §3): send it as a Bearer token",
                )));
            }
            return Ok(false);
        };
        let presented = bearer_token(authorization).ok_or_else(|| {
            AdmissionError::Unauthorized(OAuthError::new(
                ErrorCode::InvalidToken,
                "the Authorization header must be a Bearer token",
            ))
        })?;
        let hash = SecretHash::of(presented);
        // Constant time per candidate, and every candidate compared.
        let mut found = subtle::Choice::from(0);
        for token in &self.initial_tokens {
            found |= hash.as_bytes().ct_eq(token);
        }
        if bool::from(found) {
            Ok(true)
        } else {
            Err(AdmissionError::Unauthorized(OAuthError::new(
                ErrorCode::InvalidToken,
                "the initial access token is not valid",
            )))
        }
    }

    /// Admits a registration (`existing` is `None`) or an RFC 7592 update of `existing`: verifies
    /// the software statement and the certificate, applies the statement, and chooses the
    /// profile. `initial_token` says whether a valid initial access token came with a `POST`.
    ///
    /// # Errors
    /// [`AdmissionError::Refused`] with the RFC 7591 error; [`AdmissionError::Store`].
    pub async fn admit(
        &self,
        mut body: Map<String, Value>,
        certificate: Option<&ClientCertificate>,
        existing: Option<&Client>,
        initial_token: bool,
    ) -> Result<Admitted, AdmissionError> {
        let statement = match body.remove("software_statement") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                return Err(
                    invalid_statement("software_statement must be a compact JWT string").into(),
                );
            }
        };
        let registered_statement = existing.and_then(stored_statement_claims);
        let Some(statement) = statement else {
            // Without a statement: only on an initial access token where no directory is
            // configured (with directories a statement is always required), or an update of a
            // client that was registered that way.
            let allowed = match existing {
                None => initial_token && self.directories.is_empty(),
                Some(_) => registered_statement.is_none(),
            };
            if !allowed {
                // CS brazil-dcr-no-software-statement.
                return Err(invalid_statement(
                    "a software_statement signed by a trusted directory is required",
                )
                .into());
            }
            return Ok(Admitted {
                metadata: body,
                profile: existing.map_or(self.profile, |c| c.profile),
                actor: "registration:initial-access-token".into(),
            });
        };

        let issuer = software_statement::unverified_issuer(&statement)?;
        let directory = self.directory(&issuer).ok_or_else(|| {
            unapproved("the software_statement is not from a directory this server trusts")
        })?;
        let verified = self.verify(directory, &statement).await?;
        let software_id = verified.software_id().map(str::to_owned);

        if let Some(client) = existing {
            // An update carries a statement for the same software from the same directory.
            let same = registered_statement.as_ref().is_some_and(|claims| {
                claims.get("iss").and_then(Value::as_str) == Some(directory.issuer.as_str())
                    && software_statement::software_id(claims) == software_id.as_deref()
            });
            if !same && registered_statement.is_some() {
                return Err(unapproved(
                    "the software_statement is for other software than the one registered",
                )
                .into());
            }
            if registered_statement.is_none() && client.profile != directory.profile {
                return Err(unapproved(
                    "the software_statement's directory registers another profile than this client's",
                )
                .into());
            }
        }
        let profile = existing.map_or(directory.profile, |c| c.profile);
        if profile != ClientProfile::Oauth {
            self.check_certificate(directory, &verified.claims, certificate)
                .await?;
        }
        let mut metadata = software_statement::apply(body, &verified.claims)?;
        // Every rule the registry applies, checked before the statement is spent: a request
        // refused for its metadata can be corrected and sent again with the same statement.
        ClientMetadata::from_request(metadata.clone())?.validate(profile)?;

        // Single use, across replicas: by its jti, or by its hash when it has none.
        let id = match &verified.jti {
            Some(jti) => jti.clone(),
            None => format!("sha256:{}", statement_digest(&statement)),
        };
        let key = ReplayKey {
            kind: ReplayKind::SoftwareStatement,
            issuer: &directory.issuer,
            id: &id,
        };
        let now = self.clock.now();
        if self
            .store
            .replay()
            .record(key, verified.replay_until, now)
            .await?
            == FirstUse::Replayed
        {
            return Err(invalid_statement(
                "the software_statement has been used before: a statement registers or updates once",
            )
            .into());
        }
        metadata.insert("software_statement".into(), statement.into());
        Ok(Admitted {
            metadata,
            profile,
            actor: format!(
                "registration:{}:{}",
                directory.issuer,
                software_id.as_deref().unwrap_or("-")
            ),
        })
    }

    /// For RFC 7592 calls about a client registered with a statement under a FAPI profile: the
    /// caller presents the software's certificate again, as at registration (checklist #64).
    ///
    /// # Errors
    /// `unapproved_software_statement` when the certificate is missing or does not match.
    pub async fn check_management_certificate(
        &self,
        client: &Client,
        certificate: Option<&ClientCertificate>,
    ) -> Result<(), OAuthError> {
        if client.profile == ClientProfile::Oauth {
            return Ok(());
        }
        let Some(claims) = stored_statement_claims(client) else {
            return Ok(());
        };
        let issuer = claims
            .get("iss")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let directory = self.directory(issuer).ok_or_else(|| {
            unapproved("the directory this client registered under is no longer trusted")
        })?;
        self.check_certificate(directory, &claims, certificate)
            .await
    }

    async fn directory_keys(
        &self,
        directory: &Directory,
        refresh: bool,
    ) -> Result<Arc<Jwks>, OAuthError> {
        match &directory.keys {
            DirectoryKeys::Static(jwks) => Ok(jwks.clone()),
            DirectoryKeys::Uri(uri) => {
                let fetched = if refresh {
                    self.jwks.refresh(uri).await
                } else {
                    self.jwks.get(uri).await
                };
                fetched.map_err(|e| {
                    tracing::warn!(directory = %directory.issuer, error = %e.describe(), "directory keys unavailable");
                    OAuthError::new(
                        ErrorCode::TemporarilyUnavailable,
                        "the directory's keys cannot be fetched now; try again later",
                    )
                })
            }
        }
    }

    async fn verify(
        &self,
        directory: &Directory,
        statement: &str,
    ) -> Result<VerifiedStatement, OAuthError> {
        let policy = StatementPolicy {
            issuer: directory.issuer.clone(),
            algorithms: directory.algorithms.clone(),
            max_age: self.max_age,
            max_future_skew: Duration::seconds(STATEMENT_SKEW_SECS),
        };
        let mut keys = self.directory_keys(directory, false).await?;
        // An unknown kid may mean the directory rotated: refetch (rate-limited) once.
        if matches!(directory.keys, DirectoryKeys::Uri(_)) && lacks_kid(statement, &keys) {
            keys = self.directory_keys(directory, true).await?;
        }
        software_statement::verify(statement, &keys, &policy, self.clock.now())
    }

    /// Checklist #64: the certificate chains to the directory's CAs and belongs to the software.
    async fn check_certificate(
        &self,
        directory: &Directory,
        claims: &Map<String, Value>,
        certificate: Option<&ClientCertificate>,
    ) -> Result<(), OAuthError> {
        let Some(certificate) = certificate else {
            return Err(unapproved(
                "registration for this directory's software needs its transport certificate: call the mtls_endpoint_aliases registration_endpoint with it (CS brazil-dcr-no-mtls)",
            ));
        };
        let Some(trust) = &directory.trust else {
            return Err(unapproved(
                "no CA is configured for this directory's certificates",
            ));
        };
        client_auth::verify_chain(trust.as_ref(), certificate, self.clock.now()).map_err(|e| {
            unapproved(format!(
                "the client certificate does not chain to a CA of the directory: {e}"
            ))
        })?;
        let cert = x509::parse(certificate.der())
            .ok_or_else(|| unapproved("the client certificate does not parse"))?;
        let matched = match directory.certificate_match {
            CertificateMatch::SoftwareId => {
                let software_id = software_statement::software_id(claims).ok_or_else(|| {
                    invalid_statement("the software_statement has no software_id to match the certificate against")
                })?;
                x509::subject_has_attribute(&cert, "UID", software_id)
                    || x509::subject_has_attribute(&cert, "CN", software_id)
            }
            CertificateMatch::SoftwareJwks => {
                let uri = claims
                    .get("software_jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid_statement("the software_statement has no software_jwks_uri to match the certificate against")
                    })?;
                let keys =
                    self.jwks.get(uri).await.map_err(|e| {
                        unapproved(format!("the software_jwks_uri: {}", e.describe()))
                    })?;
                x509::key_in_jwks(certificate.der(), &cert, &keys)
            }
        };
        if matched {
            Ok(())
        } else {
            Err(unapproved(match directory.certificate_match {
                CertificateMatch::SoftwareId => {
                    "the client certificate's subject UID or CN is not the software_statement's software_id"
                }
                CertificateMatch::SoftwareJwks => {
                    "the client certificate's key is not in the software_statement's software_jwks_uri"
                }
            }))
        }
    }
}

/// The base64url SHA-256 of a statement, its replay identifier when it has no `jti`.
fn statement_digest(statement: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SecretHash::of(statement).as_bytes())
}

/// The claims of the statement a client registered with, as verified then.
fn stored_statement_claims(client: &Client) -> Option<Map<String, Value>> {
    client
        .metadata
        .get("software_statement")
        .and_then(Value::as_str)
        .and_then(|s| decode_unverified_claims(s).ok())
}

/// Whether the JWS names a `kid` the set lacks.
fn lacks_kid(jws: &str, keys: &Jwks) -> bool {
    decode_unverified_header(jws)
        .ok()
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
        .is_some_and(|kid| !keys.keys.iter().any(|k| k.kid() == Some(kid.as_str())))
}

/// The token of an `Authorization: Bearer` header (scheme case-insensitive, RFC 9110 §11.1).
#[must_use]
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(issuer: &str) -> DirectoryConfig {
        DirectoryConfig {
            issuer: issuer.into(),
            jwks_file: Some(PathBuf::from("/nonexistent/directory.jwks")),
            jwks_uri: None,
            algorithms: Vec::new(),
            profile: None,
            trust_anchor_files: Vec::new(),
            certificate_match: CertificateMatch::SoftwareId,
        }
    }

    fn refused_at(config: &RegistrationConfig) -> String {
        config.validate().unwrap_err().key
    }

    #[test]
    fn configuration_is_checked_key_by_key() {
        assert!(RegistrationConfig::default().validate().is_ok());
        let mut config = RegistrationConfig {
            profile: "fapi3".into(),
            ..RegistrationConfig::default()
        };
        assert_eq!(refused_at(&config), "registration.profile");
        config.profile = "oauth".into();
        config.statement_max_age_secs = 5;
        assert_eq!(refused_at(&config), "registration.statement_max_age_secs");
        config.statement_max_age_secs = 300;
        config.initial_access_token_sha256 = vec!["not-a-hash".into()];
        assert_eq!(
            refused_at(&config),
            "registration.initial_access_token_sha256"
        );
        config.initial_access_token_sha256.clear();

        config.directories = vec![directory("http://directory.example")];
        assert_eq!(refused_at(&config), "registration.directories[0].issuer");
        config.directories = vec![
            directory("https://directory.example"),
            directory("https://directory.example"),
        ];
        assert_eq!(refused_at(&config), "registration.directories[1].issuer");
        let mut both = directory("https://directory.example");
        both.jwks_uri = Some("https://directory.example/jwks".into());
        config.directories = vec![both];
        assert_eq!(refused_at(&config), "registration.directories[0].jwks_file");
        let mut neither = directory("https://directory.example");
        neither.jwks_file = None;
        config.directories = vec![neither.clone()];
        assert_eq!(refused_at(&config), "registration.directories[0].jwks_file");
        neither.jwks_uri = Some("http://directory.example/jwks".into());
        config.directories = vec![neither];
        assert_eq!(refused_at(&config), "registration.directories[0].jwks_uri");
        let mut bad_profile = directory("https://directory.example");
        bad_profile.profile = Some("any".into());
        config.directories = vec![bad_profile];
        assert_eq!(refused_at(&config), "registration.directories[0].profile");
    }

    #[tokio::test]
    async fn a_fapi_directory_needs_certificate_authorities() {
        let dir = tempfile::tempdir().unwrap();
        let jwks_file = dir.path().join("directory.jwks");
        std::fs::write(&jwks_file, br#"{"keys": []}"#).unwrap();
        let mut trusted = directory("https://directory.example");
        trusted.jwks_file = Some(jwks_file);
        let config = RegistrationConfig {
            directories: vec![trusted.clone()],
            ..RegistrationConfig::default()
        };
        let store = portcullis_store::connect_and_migrate(
            &format!("sqlite:{}", dir.path().join("t.db").display()),
            &portcullis_store::PoolOptions::default(),
        )
        .await
        .unwrap();
        let clock: Arc<dyn Clock> = Arc::new(portcullis_core::SystemClock);
        let fetcher = Arc::new(
            JwksFetcher::new(&crate::config::ClientJwksConfig::default(), clock.clone()).unwrap(),
        );
        let error = Registrar::new(&config, None, store.clone(), clock.clone(), fetcher.clone())
            .unwrap_err();
        assert_eq!(error.key, "registration.directories[0].trust_anchor_files");

        // An oauth-profile directory does not check certificates.
        trusted.profile = Some("oauth".into());
        let config = RegistrationConfig {
            directories: vec![trusted],
            ..RegistrationConfig::default()
        };
        let registrar = Registrar::new(&config, None, store, clock, fetcher).unwrap();
        assert!(registrar.is_open());
        assert!(!registrar.certificate_always_required());
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}

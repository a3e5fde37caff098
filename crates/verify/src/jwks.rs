//! The authorization server's metadata (RFC 8414) and its signing keys.
//!
//! The key set is fetched from the metadata's `jwks_uri` and cached. A token signed with a `kid`
//! the cache does not hold makes one fetch, at most once per
//! [`jwks_min_refresh`](crate::VerifierConfig::jwks_min_refresh) however many tokens name it, so
//! a rotation at the authorization server is followed at its first token and a flood of made-up
//! `kid`s cannot turn into a flood of fetches. The set is also fetched every
//! [`jwks_max_age`](crate::VerifierConfig::jwks_max_age). Keys stay as long as the authorization
//! server publishes them (it keeps a retired key until everything it signed has expired) and go
//! when they leave the set. A failed fetch keeps the set in hand.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_jose::{Jwks, PreparedJwks};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::SetupError;
use crate::http;

/// What this library reads of the authorization server's metadata.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Metadata {
    pub issuer: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub token_endpoint: Option<String>,
    #[serde(default)]
    pub introspection_endpoint: Option<String>,
    #[serde(default)]
    pub revocation_events_endpoint: Option<String>,
    #[serde(default)]
    pub mtls_endpoint_aliases: Map<String, Value>,
}

impl Metadata {
    /// The URL of `endpoint` (a metadata member name) for a client that authenticates with its
    /// certificate (`mtls`): its RFC 8705 §5 alias when there is one.
    pub fn endpoint(&self, name: &str, mtls: bool) -> Option<String> {
        let alias = mtls
            .then(|| self.mtls_endpoint_aliases.get(name))
            .flatten()
            .and_then(Value::as_str)
            .map(str::to_owned);
        alias.or_else(|| match name {
            "token_endpoint" => self.token_endpoint.clone(),
            "introspection_endpoint" => self.introspection_endpoint.clone(),
            "revocation_events_endpoint" => self.revocation_events_endpoint.clone(),
            _ => None,
        })
    }
}

/// The RFC 8414 §3.1 metadata URL of `issuer`: the well-known segment goes between the host and
/// the issuer's path.
pub(crate) fn metadata_url(issuer: &str) -> Result<String, SetupError> {
    let url = url::Url::parse(issuer).map_err(|e| SetupError::new("issuer", e))?;
    if url.scheme() != "https" || url.query().is_some() || url.fragment().is_some() {
        return Err(SetupError::new(
            "issuer",
            "must be an https URL without query or fragment (RFC 8414 §2)",
        ));
    }
    let path = url.path().trim_end_matches('/');
    let mut metadata = url.clone();
    metadata.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok(metadata.to_string())
}

/// Fetches and checks the metadata of `issuer`.
pub(crate) async fn discover(
    client: &reqwest::Client,
    issuer: &str,
    timeout: Duration,
) -> Result<Metadata, SetupError> {
    let url = metadata_url(issuer)?;
    let response = client
        .get(&url)
        .header("accept", "application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| SetupError::new("authorization server metadata", http::error_text(&e)))?;
    if !response.status().is_success() {
        return Err(SetupError::new(
            "authorization server metadata",
            format!("{url} answered {}", response.status()),
        ));
    }
    let body = http::body(response)
        .await
        .map_err(|e| SetupError::new("authorization server metadata", e))?;
    let metadata: Metadata = serde_json::from_slice(&body)
        .map_err(|e| SetupError::new("authorization server metadata", e))?;
    // RFC 8414 §3.3: the metadata must be about the issuer we asked for.
    if metadata.issuer != issuer {
        return Err(SetupError::new(
            "authorization server metadata",
            format!(
                "it names the issuer {:?}, not {issuer:?} (RFC 8414 §3.3)",
                metadata.issuer
            ),
        ));
    }
    Ok(metadata)
}

struct Fetched {
    /// The set, each key made into a verifier once (not once per token).
    jwks: Arc<PreparedJwks>,
    at: Instant,
    /// How long this set may be used before it is fetched again: the answer's
    /// `Cache-Control: max-age`, within the configured bounds.
    max_age: Duration,
}

/// The cached key set.
pub(crate) struct KeyCache {
    http: reqwest::Client,
    uri: String,
    timeout: Duration,
    min_refresh: Duration,
    max_age: Duration,
    current: ArcSwap<Fetched>,
    /// When the last fetch was tried; held while fetching, so one fetch serves everyone waiting.
    last_attempt: Mutex<Option<Instant>>,
    metrics: Arc<crate::metrics::Metrics>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("uri", &self.uri)
            .field("keys", &self.current.load().jwks.jwks().keys.len())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// Fetches the set once; setting up fails if it cannot be fetched.
    pub async fn load(
        http: reqwest::Client,
        uri: String,
        timeout: Duration,
        min_refresh: Duration,
        max_age: Duration,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, SetupError> {
        let (jwks, advertised) = fetch(&http, &uri, timeout)
            .await
            .map_err(|e| SetupError::new("JWKS", e))?;
        metrics.jwks_fetched();
        let now = Instant::now();
        Ok(Self {
            current: ArcSwap::from_pointee(Fetched {
                jwks: Arc::new(PreparedJwks::new(jwks)),
                at: now,
                max_age: bounded(advertised, min_refresh, max_age),
            }),
            http,
            uri,
            timeout,
            min_refresh,
            max_age,
            last_attempt: Mutex::new(Some(now)),
            metrics,
        })
    }

    /// The set in hand.
    pub fn current(&self) -> Arc<PreparedJwks> {
        self.current.load().jwks.clone()
    }

    /// Whether the set in hand is older than its maximum age.
    pub fn stale(&self) -> bool {
        let current = self.current.load();
        current.at.elapsed() >= current.max_age
    }

    /// How long until the set in hand is stale.
    pub fn fresh_for(&self) -> Duration {
        let current = self.current.load();
        current.max_age.saturating_sub(current.at.elapsed())
    }

    /// Verifies a JWS (a SET, a signed introspection answer) against the set in hand, fetching
    /// the set again once when it names a key the set does not hold.
    pub async fn verify(
        &self,
        jws: &str,
        algorithms: &[portcullis_jose::SigningAlg],
    ) -> Result<portcullis_jose::VerifiedJwt, portcullis_jose::JoseError> {
        match portcullis_jose::verify_jwt_prepared(jws, &self.current(), algorithms) {
            Err(portcullis_jose::JoseError::KeyNotFound(_)) => {
                portcullis_jose::verify_jwt_prepared(jws, &*self.refresh().await, algorithms)
            }
            other => other,
        }
    }

    /// Fetches the set again, unless a fetch was tried less than the minimum interval ago (then
    /// the set in hand, possibly just fetched by a concurrent caller, is returned).
    pub async fn refresh(&self) -> Arc<PreparedJwks> {
        let before = self.current.load().at;
        let mut last = self.last_attempt.lock().await;
        // Someone else fetched while this caller waited for the lock.
        if self.current.load().at != before {
            return self.current();
        }
        if last.is_some_and(|at| at.elapsed() < self.min_refresh) {
            return self.current();
        }
        *last = Some(Instant::now());
        match fetch(&self.http, &self.uri, self.timeout).await {
            Ok((jwks, advertised)) => {
                self.metrics.jwks_fetched();
                let kids: Vec<&str> = jwks.keys.iter().filter_map(|k| k.kid()).collect();
                tracing::debug!(keys = ?kids, "fetched the authorization server's JWKS");
                self.current.store(Arc::new(Fetched {
                    jwks: Arc::new(PreparedJwks::new(jwks)),
                    at: Instant::now(),
                    max_age: bounded(advertised, self.min_refresh, self.max_age),
                }));
            }
            Err(e) => {
                self.metrics.jwks_failed();
                tracing::warn!(error = %e, "could not fetch the authorization server's JWKS; keeping the keys in hand");
            }
        }
        self.current()
    }
}

/// The answer's max-age, no shorter than `min` and no longer than `max`.
fn bounded(advertised: Option<Duration>, min: Duration, max: Duration) -> Duration {
    advertised.unwrap_or(max).clamp(min, max.max(min))
}

/// `Cache-Control: max-age` (RFC 9111 §5.2.2.1), if the answer has one.
fn max_age(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("cache-control")?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        name.eq_ignore_ascii_case("max-age")
            .then(|| secs.trim_matches('"').parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

async fn fetch(
    http: &reqwest::Client,
    uri: &str,
    timeout: Duration,
) -> Result<(Jwks, Option<Duration>), String> {
    let response = http
        .get(uri)
        .header("accept", "application/jwk-set+json, application/json")
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| http::error_text(&e))?;
    if !response.status().is_success() {
        return Err(format!("the JWKS endpoint answered {}", response.status()));
    }
    let advertised = max_age(&response);
    let body = http::body(response).await?;
    let jwks: Jwks = serde_json::from_slice(&body).map_err(|e| format!("not a JWK set: {e}"))?;
    if jwks.has_duplicate_kids() {
        return Err("the JWK set has duplicate kids (FAPI2 SP 5.4.2)".into());
    }
    Ok((jwks, advertised))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_8414_3_1_the_well_known_segment_goes_before_the_issuer_path() {
        assert_eq!(
            metadata_url("https://as.example").unwrap(),
            "https://as.example/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://as.example/tenant/").unwrap(),
            "https://as.example/.well-known/oauth-authorization-server/tenant"
        );
        assert!(metadata_url("http://as.example").is_err());
        assert!(metadata_url("https://as.example?x=1").is_err());
    }

    #[test]
    fn mtls_aliases_win_for_certificate_clients() {
        let metadata: Metadata = serde_json::from_value(serde_json::json!({
            "issuer": "https://as.example",
            "jwks_uri": "https://as.example/jwks",
            "introspection_endpoint": "https://as.example/introspect",
            "mtls_endpoint_aliases": {"introspection_endpoint": "https://mtls.as.example/introspect"}
        }))
        .unwrap();
        assert_eq!(
            metadata.endpoint("introspection_endpoint", true).unwrap(),
            "https://mtls.as.example/introspect"
        );
        assert_eq!(
            metadata.endpoint("introspection_endpoint", false).unwrap(),
            "https://as.example/introspect"
        );
        assert_eq!(metadata.endpoint("token_endpoint", true), None);
    }
}

//! This API as a client of the authorization server: how it authenticates (its certificate on
//! the mTLS endpoints, or `private_key_jwt` assertions), the sender-constrained token with which
//! it reads the revocation event feed, and the introspection call (RFC 7662, optionally RFC 9701
//! signed).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_jose::{SigningAlg, SigningKey};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::clock::Clock;
use crate::config::{ClientAuth, ClientCredentials, SetupError};
use crate::http;
use crate::jwks::{KeyCache, Metadata};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The media type of an RFC 9701 signed introspection answer.
const INTROSPECTION_JWT: &str = "application/token-introspection+jwt";

/// A random URL-safe identifier of 128 bits.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    // aws-lc-rs's system RNG; it cannot fail on a supported platform, and if it did the
    // identifier would be refused as a replay by the server rather than accepted.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a call to the authorization server failed.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum CallError {
    /// Network, timeout, or an answer that is not what the protocol says.
    #[error("{0}")]
    Unavailable(String),
    /// The server refused us (401/403/400 with an OAuth error).
    #[error("{0}")]
    Refused(String),
}

/// A token of this API for the revocation feed.
#[derive(Clone)]
pub(crate) struct FeedToken {
    pub value: String,
    pub expires_at: i64,
    pub dpop: bool,
}

impl std::fmt::Debug for FeedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// This API's client at the authorization server.
pub(crate) struct AsClient {
    pub credentials: ClientCredentials,
    issuer: String,
    http: reqwest::Client,
    token_endpoint: Option<String>,
    introspection_endpoint: Option<String>,
    events_endpoint: Option<String>,
    /// The feed endpoint as the authorization server names it (a DPoP proof's `htu`), when the
    /// requests go elsewhere (a route through a proxy).
    events_htu: Option<String>,
    /// The key the feed token is DPoP-bound to, for `private_key_jwt` clients.
    dpop_key: Option<Arc<SigningKey>>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    /// The last DPoP nonce each endpoint handed out (RFC 9449 §8).
    nonces: Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for AsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsClient")
            .field("client_id", &self.credentials.client_id)
            .finish_non_exhaustive()
    }
}

impl AsClient {
    pub fn new(
        credentials: ClientCredentials,
        metadata: &Metadata,
        ca_files: &[std::path::PathBuf],
        timeout: Duration,
        clock: Arc<dyn Clock>,
        events_override: Option<String>,
    ) -> Result<Self, SetupError> {
        let (identity, mtls) = match &credentials.auth {
            ClientAuth::Certificate(identity) => (Some(identity), true),
            ClientAuth::PrivateKeyJwt(_) => (None, false),
        };
        let http = http::client(ca_files, identity, timeout)?;
        let dpop_key = match &credentials.auth {
            ClientAuth::Certificate(_) => None,
            ClientAuth::PrivateKeyJwt(_) => Some(Arc::new(
                SigningKey::generate(SigningAlg::Es256, 0)
                    .map_err(|e| SetupError::new("DPoP key", e))?,
            )),
        };
        let events_htu = metadata
            .endpoint("revocation_events_endpoint", mtls)
            .or_else(|| {
                // Portcullis serves the feed beside its token endpoint.
                metadata.endpoint("token_endpoint", mtls).and_then(|t| {
                    t.strip_suffix("/token")
                        .map(|base| format!("{base}/events"))
                })
            });
        let events_endpoint = events_override.or_else(|| events_htu.clone());
        Ok(Self {
            issuer: metadata.issuer.clone(),
            http,
            token_endpoint: metadata.endpoint("token_endpoint", mtls),
            introspection_endpoint: metadata.endpoint("introspection_endpoint", mtls),
            events_endpoint,
            events_htu,
            dpop_key,
            timeout,
            clock,
            credentials,
            nonces: Mutex::default(),
        })
    }

    pub fn has_introspection(&self) -> bool {
        self.introspection_endpoint.is_some()
    }

    pub fn has_feed(&self) -> bool {
        self.events_endpoint.is_some() && self.token_endpoint.is_some()
    }

    /// The client-authentication members of a form.
    fn authentication(&self) -> Result<Vec<(String, String)>, CallError> {
        let client_id = &self.credentials.client_id;
        let mut form = vec![("client_id".to_owned(), client_id.clone())];
        if let ClientAuth::PrivateKeyJwt(key) = &self.credentials.auth {
            let now = self.clock.now();
            let claims = json!({
                "iss": client_id, "sub": client_id, "aud": self.issuer,
                "jti": random_id(), "iat": now, "exp": now + 60,
            });
            let assertion = key
                .sign_jwt("JWT", claims.as_object().unwrap_or(&Map::new()))
                .map_err(|e| {
                    CallError::Unavailable(format!("signing the client assertion: {e}"))
                })?;
            form.push(("client_assertion_type".into(), JWT_BEARER.into()));
            form.push(("client_assertion".into(), assertion));
        }
        Ok(form)
    }

    async fn proof(&self, method: &str, url: &str, token: Option<&str>) -> Option<String> {
        let key = self.dpop_key.as_ref()?;
        let nonce = self.nonces.lock().await.get(url).cloned();
        portcullis_jose::dpop::make_proof(
            key,
            method,
            url,
            token,
            nonce.as_deref(),
            self.clock.now(),
            &random_id(),
        )
        .ok()
    }

    async fn remember_nonce(&self, url: &str, response: &reqwest::Response) -> bool {
        let Some(nonce) = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        self.nonces
            .lock()
            .await
            .insert(url.to_owned(), nonce.to_owned());
        true
    }

    /// A client-credentials token with scope `revocation_events` (bound to this API's
    /// certificate or DPoP key).
    pub async fn feed_token(&self) -> Result<FeedToken, CallError> {
        let url = self
            .token_endpoint
            .as_deref()
            .ok_or_else(|| CallError::Unavailable("no token endpoint in the metadata".into()))?;
        // One retry when the server asks for a DPoP nonce (RFC 9449 §8).
        for _ in 0..2 {
            let mut form = vec![
                ("grant_type".to_owned(), "client_credentials".to_owned()),
                ("scope".to_owned(), "revocation_events".to_owned()),
            ];
            form.extend(self.authentication()?);
            let mut request = self.http.post(url).form(&form).timeout(self.timeout);
            if let Some(proof) = self.proof("POST", url, None).await {
                request = request.header("DPoP", proof);
            }
            let response = request
                .send()
                .await
                .map_err(|e| CallError::Unavailable(http::error_text(&e)))?;
            let status = response.status();
            let fresh_nonce = self.remember_nonce(url, &response).await;
            let body = http::body(response).await.map_err(CallError::Unavailable)?;
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if status.is_success() {
                let value = body
                    .get("access_token")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        CallError::Unavailable("the token answer has no access_token".into())
                    })?;
                let expires_in = body.get("expires_in").and_then(Value::as_i64).unwrap_or(60);
                return Ok(FeedToken {
                    value: value.to_owned(),
                    expires_at: self.clock.now() + expires_in,
                    dpop: self.dpop_key.is_some(),
                });
            }
            let error = body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if error == "use_dpop_nonce" && fresh_nonce {
                continue;
            }
            return Err(refusal("token endpoint", status, &body));
        }
        Err(CallError::Refused(
            "the token endpoint kept asking for a DPoP nonce".into(),
        ))
    }

    /// One poll of the feed (RFC 8936 §2.4): acknowledges `ack`, asks for up to `max_events`,
    /// waiting at the server when `wait`.
    pub async fn poll(
        &self,
        token: &FeedToken,
        ack: &[String],
        max_events: u32,
        wait: bool,
        errs: &Map<String, Value>,
    ) -> Result<Value, CallError> {
        let url = self
            .events_endpoint
            .as_deref()
            .ok_or_else(|| CallError::Unavailable("no revocation events endpoint".into()))?;
        let mut body = Map::new();
        body.insert("ack".into(), json!(ack));
        body.insert("maxEvents".into(), max_events.into());
        body.insert("returnImmediately".into(), (!wait).into());
        if !errs.is_empty() {
            body.insert("setErrs".into(), Value::Object(errs.clone()));
        }
        for _ in 0..2 {
            // The server holds a long poll for its `events.long_poll_secs`; allow for that.
            let mut request = self
                .http
                .post(url)
                .json(&body)
                .timeout(self.timeout + Duration::from_secs(if wait { 60 } else { 0 }));
            let htu = self.events_htu.as_deref().unwrap_or(url);
            request = match self.proof("POST", htu, Some(&token.value)).await {
                Some(proof) if token.dpop => request
                    .header("Authorization", format!("DPoP {}", token.value))
                    .header("DPoP", proof),
                _ => request.header("Authorization", format!("Bearer {}", token.value)),
            };
            let response = request
                .send()
                .await
                .map_err(|e| CallError::Unavailable(http::error_text(&e)))?;
            let status = response.status();
            let fresh_nonce = self.remember_nonce(htu, &response).await;
            let www = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let answer = http::body(response).await.map_err(CallError::Unavailable)?;
            let answer: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
            if status.is_success() {
                return Ok(answer);
            }
            if www.contains("use_dpop_nonce") && fresh_nonce {
                continue;
            }
            return Err(if status == 401 || status == 403 {
                CallError::Refused(format!("the events endpoint answered {status} {www}"))
            } else {
                CallError::Unavailable(format!("the events endpoint answered {status}"))
            });
        }
        Err(CallError::Refused(
            "the events endpoint kept asking for a DPoP nonce".into(),
        ))
    }

    /// Introspects `token` (RFC 7662). `Ok(None)` when it is not active; with `signed`, asks
    /// for and verifies an RFC 9701 answer.
    pub async fn introspect(
        &self,
        token: &str,
        signed: Option<(&KeyCache, &[SigningAlg])>,
    ) -> Result<Option<Map<String, Value>>, CallError> {
        let url = self.introspection_endpoint.as_deref().ok_or_else(|| {
            CallError::Unavailable("no introspection endpoint in the metadata".into())
        })?;
        let mut form = vec![
            ("token".to_owned(), token.to_owned()),
            ("token_type_hint".to_owned(), "access_token".to_owned()),
        ];
        form.extend(self.authentication()?);
        let accept = if signed.is_some() {
            INTROSPECTION_JWT
        } else {
            "application/json"
        };
        let response = self
            .http
            .post(url)
            .header("accept", accept)
            .form(&form)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| CallError::Unavailable(http::error_text(&e)))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = http::body(response).await.map_err(CallError::Unavailable)?;
        if !status.is_success() {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            return Err(refusal("introspection endpoint", status, &body));
        }
        let answer: Map<String, Value> = match signed {
            Some((keys, algorithms)) => {
                if !content_type.starts_with(INTROSPECTION_JWT) {
                    return Err(CallError::Unavailable(format!(
                        "the introspection answer is {content_type:?}, not a signed JWT (RFC 9701 §5)"
                    )));
                }
                let text = std::str::from_utf8(&body).map_err(|_| {
                    CallError::Unavailable("the introspection answer is not text".into())
                })?;
                self.verify_signed_answer(text.trim(), keys, algorithms)
                    .await?
            }
            None => serde_json::from_slice(&body).map_err(|_| {
                CallError::Unavailable("the introspection answer is not a JSON object".into())
            })?,
        };
        match answer.get("active") {
            Some(Value::Bool(true)) => Ok(Some(answer)),
            Some(Value::Bool(false)) => Ok(None),
            _ => Err(CallError::Unavailable(
                "the introspection answer has no boolean active".into(),
            )),
        }
    }

    /// RFC 9701 §5: a JWT of type `token-introspection+jwt` from the issuer, for this client,
    /// with the answer in `token_introspection`.
    async fn verify_signed_answer(
        &self,
        jwt: &str,
        keys: &KeyCache,
        algorithms: &[SigningAlg],
    ) -> Result<Map<String, Value>, CallError> {
        let verified = keys.verify(jwt, algorithms).await.map_err(|e| {
            CallError::Unavailable(format!(
                "the signed introspection answer does not verify: {e}"
            ))
        })?;
        let typ = verified
            .header
            .get("typ")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !typ.eq_ignore_ascii_case("token-introspection+jwt")
            && !typ.eq_ignore_ascii_case(INTROSPECTION_JWT)
        {
            return Err(CallError::Unavailable(
                "the signed introspection answer has the wrong typ (RFC 9701 §5)".into(),
            ));
        }
        let claims = verified.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(CallError::Unavailable(
                "the signed introspection answer is from another issuer".into(),
            ));
        }
        let for_us = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.credentials.client_id,
            Some(Value::Array(a)) => a
                .iter()
                .any(|v| v.as_str() == Some(&self.credentials.client_id)),
            _ => false,
        };
        if !for_us {
            return Err(CallError::Unavailable(
                "the signed introspection answer is not for this client (aud)".into(),
            ));
        }
        claims
            .get("token_introspection")
            .and_then(Value::as_object)
            .cloned()
            .ok_or_else(|| {
                CallError::Unavailable(
                    "the signed introspection answer has no token_introspection".into(),
                )
            })
    }
}

fn refusal(endpoint: &str, status: reqwest::StatusCode, body: &Value) -> CallError {
    let error = body.get("error").and_then(Value::as_str).unwrap_or("?");
    let description = body
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let text = format!("the {endpoint} answered {status}: {error} {description}");
    if status.is_server_error() {
        CallError::Unavailable(text)
    } else {
        CallError::Refused(text)
    }
}

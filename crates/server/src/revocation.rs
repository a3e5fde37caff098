//! Revoking grants and access tokens, and announcing it.
//!
//! Whoever ends a consent or a token (the customer on `/account`, the client at `/revoke` or
//! `/grants/{grant_id}`, a resource server at `/revoke`, the operator, or the token endpoint on
//! a replayed code) comes through here. One store transaction marks what dies, bumps the
//! revocation epoch every replica's introspection cache is checked against, and enqueues a
//! signed Security Event Token (RFC 8417) for the resource servers concerned, which they fetch
//! from `/events` (RFC 8936 poll delivery). The change is also written to the security-event
//! trail.
//!
//! Event types: [`GRANT_REVOKED`] (a `grant_id` and the customer: every token under the grant
//! is dead) and [`TOKEN_REVOKED`] (one access token's `jti`). The subject is an RFC 9493
//! `opaque` identifier of the grant or the token, and the event carries `client_id`, `sub`
//! (when there is a customer), `grant_id`, `jti`, the reason and when it happened.

use portcullis_core::audit::SecurityEvent;
use portcullis_core::client::ClientId;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{Grant, NewFeedEvent, StoreError};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::app::AppState;
use crate::resources::Snapshot;

/// The SET event type of a revoked grant.
pub const GRANT_REVOKED: &str = "urn:portcullis:secevent:grant-revoked";
/// The SET event type of a revoked access token.
pub const TOKEN_REVOKED: &str = "urn:portcullis:secevent:token-revoked";
/// The media type of a SET (RFC 8417 §2.3).
pub const SET_TYP: &str = "secevent+jwt";

/// Who ended it, and why: in the event and in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The customer withdrew the consent.
    Customer,
    /// The client revoked it (RFC 7009 or Grant Management).
    Client(ClientId),
    /// A resource server's client revoked a token of its audience (RFC 7009).
    ResourceServer(ClientId),
    /// The operator, through the admin API.
    Operator(String),
    /// A code was redeemed twice (checklist #1).
    CodeReuse,
}

impl Reason {
    fn code(&self) -> &'static str {
        match self {
            Reason::Customer => "customer_withdrew",
            Reason::Client(_) => "client_revoked",
            Reason::ResourceServer(_) => "resource_server_revoked",
            Reason::Operator(_) => "operator_revoked",
            Reason::CodeReuse => "code_reused",
        }
    }

    fn actor(&self, subject: Option<&str>) -> String {
        match self {
            Reason::Customer => format!("user:{}", subject.unwrap_or("-")),
            Reason::Client(c) | Reason::ResourceServer(c) => format!("client:{c}"),
            Reason::Operator(who) => format!("admin:{who}"),
            Reason::CodeReuse => "system:token-endpoint".to_owned(),
        }
    }
}

/// A revocation that could not be carried out; logged by the caller, answered `server_error`.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The event could not be signed.
    #[error("signing the security event: {0}")]
    Signing(String),
}

/// Revokes a grant with every token issued under it. Returns whether this call revoked it
/// (`false`: it was revoked already, and nothing happened).
///
/// # Errors
/// [`RevocationError`] when the store or the signing key fails: nothing was revoked then.
pub async fn revoke_grant(
    state: &AppState,
    grant: &Grant,
    reason: &Reason,
) -> Result<bool, RevocationError> {
    let now = state.clock.now();
    let subject = grant.subject.to_string();
    let recipients = recipients(state, |snapshot| grant_audience(snapshot, &grant.content)).await?;
    let mut detail = Map::new();
    detail.insert("grant_id".into(), grant.grant_id.clone().into());
    detail.insert("client_id".into(), grant.client_id.as_str().into());
    detail.insert("sub".into(), subject.clone().into());
    let mut event = feed_event(
        state,
        GRANT_REVOKED,
        "grant-revoked",
        &grant.grant_id,
        detail,
        reason,
        recipients,
        now,
    )
    .await?;
    event.grant_id = Some(grant.grant_id.clone());
    let revoked = state
        .store
        .revocations()
        .revoke_grant(&grant.grant_id, now, &event)
        .await?;
    if revoked {
        state.feed.notify().await;
        audit(
            state,
            "grant.revoked",
            reason,
            Some(&subject),
            Some(grant.grant_id.clone()),
            json!({ "reason": reason.code(), "client_id": grant.client_id.as_str() }),
            now,
        )
        .await;
    }
    Ok(revoked)
}

/// Revokes one access token, given its claims (and its hash when it is an opaque reference):
/// its `jti` goes on the deny list until the token's `exp`. Returns whether this call revoked it.
///
/// # Errors
/// [`RevocationError`] when the store or the signing key fails: nothing was revoked then.
pub async fn revoke_access_token(
    state: &AppState,
    claims: &Map<String, Value>,
    handle: Option<&SecretHash>,
    reason: &Reason,
) -> Result<bool, RevocationError> {
    let now = state.clock.now();
    let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
        // Every access token we issue has a jti; one without is none of ours.
        return Ok(false);
    };
    let expires_at = claims
        .get("exp")
        .and_then(Value::as_i64)
        .and_then(|exp| OffsetDateTime::from_unix_timestamp(exp).ok())
        .unwrap_or(now);
    let audience: Vec<String> = crate::resources::audience(claims.get("aud"))
        .map(str::to_owned)
        .collect();
    let recipients = recipients(state, |_| audience.clone()).await?;
    let mut detail = Map::new();
    detail.insert("jti".into(), jti.into());
    for name in ["client_id", "sub", "grant_id"] {
        if let Some(value) = claims.get(name) {
            detail.insert(name.into(), value.clone());
        }
    }
    detail.insert("exp".into(), expires_at.unix_timestamp().into());
    let mut event = feed_event(
        state,
        TOKEN_REVOKED,
        "token-revoked",
        jti,
        detail,
        reason,
        recipients,
        now,
    )
    .await?;
    event.grant_id = claims
        .get("grant_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    event.token_jti = Some(jti.to_owned());
    let revoked = state
        .store
        .revocations()
        .deny_access_token(jti, handle, expires_at, now, &event)
        .await?;
    if revoked {
        state.feed.notify().await;
        let subject = claims.get("sub").and_then(Value::as_str);
        audit(
            state,
            "token.revoked",
            reason,
            subject,
            event.grant_id.clone(),
            json!({
                "reason": reason.code(),
                "jti": jti,
                "client_id": claims.get("client_id"),
            }),
            now,
        )
        .await;
    }
    Ok(revoked)
}

/// The resources a grant's tokens are for: the ones asked for, else every resource server
/// serving a granted scope or named by a detail's `locations` (as `/token` decides audiences).
fn grant_audience(snapshot: &Snapshot, content: &Map<String, Value>) -> Vec<String> {
    let strings = |name: &str| -> Vec<String> {
        content
            .get(name)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let mut audience = strings("resources");
    if audience.is_empty() {
        let scopes = strings("scopes");
        audience.extend(snapshot.serving(&scopes).map(|rs| rs.resource.clone()));
        for detail in content
            .get("authorization_details")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            audience.extend(
                detail
                    .get("locations")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
        }
    }
    audience
}

/// The clients of the resource servers among `audience`.
async fn recipients(
    state: &AppState,
    audience: impl FnOnce(&Snapshot) -> Vec<String>,
) -> Result<Vec<ClientId>, RevocationError> {
    let snapshot = state.resources.snapshot().await?;
    let audience = audience(&snapshot);
    let mut clients: Vec<ClientId> = Vec::new();
    for rs in snapshot.all() {
        if let Some(client) = &rs.client_id
            && audience.iter().any(|a| a == &rs.resource)
            && !clients.contains(client)
        {
            clients.push(client.clone());
        }
    }
    Ok(clients)
}

/// A signed SET: `iss`, `iat`, `jti`, `aud` (the recipients), `toe`, and one event whose
/// subject is the grant or token concerned.
#[allow(clippy::too_many_arguments)]
async fn feed_event(
    state: &AppState,
    event_type: &str,
    kind: &str,
    subject_id: &str,
    mut detail: Map<String, Value>,
    reason: &Reason,
    recipients: Vec<ClientId>,
    now: OffsetDateTime,
) -> Result<NewFeedEvent, RevocationError> {
    let jti = state
        .rng
        .token(16)
        .map_err(|e| RevocationError::Signing(e.to_string()))?;
    detail.insert(
        "subject".into(),
        json!({ "format": "opaque", "id": subject_id }),
    );
    detail.insert("reason".into(), reason.code().into());
    let mut claims = Map::new();
    claims.insert("iss".into(), state.urls.issuer.clone().into());
    claims.insert("iat".into(), now.unix_timestamp().into());
    claims.insert("jti".into(), jti.clone().into());
    claims.insert(
        "aud".into(),
        recipients
            .iter()
            .map(|c| Value::from(c.as_str()))
            .collect::<Vec<_>>()
            .into(),
    );
    claims.insert("toe".into(), now.unix_timestamp().into());
    let mut events = Map::new();
    events.insert(event_type.into(), Value::Object(detail));
    claims.insert("events".into(), Value::Object(events));
    let key = state
        .keys
        .signer(state.config.access_token_alg())
        .await
        .map_err(|e| RevocationError::Signing(e.to_string()))?;
    let set = key
        .sign_jwt(SET_TYP, &claims)
        .map_err(|e| RevocationError::Signing(e.to_string()))?;
    Ok(NewFeedEvent {
        jti,
        kind: kind.to_owned(),
        grant_id: None,
        token_jti: None,
        set,
        recipients,
        created_at: now,
    })
}

async fn audit(
    state: &AppState,
    kind: &str,
    reason: &Reason,
    subject: Option<&str>,
    target: Option<String>,
    detail: Value,
    now: OffsetDateTime,
) {
    let detail = detail.as_object().cloned().unwrap_or_default();
    let event = SecurityEvent::new(now, reason.actor(subject), kind, target, detail);
    if let Err(e) = state.store.events().append(&event).await {
        tracing::error!(error = %e, "could not record a revocation in the security-event trail");
    }
}

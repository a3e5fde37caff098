//! Security events: who did what to which thing, when, with the before/after of the change. The
//! store keeps them in one append-only table. Details must never hold secrets: the constructors
//! that build them from domain types leave secrets out, and [`SecurityEvent::new`] drops members
//! whose names say they are secret, as a last line of defence.
//!
//! Tamper evidence: every store instance (one per replica process) appends to a hash chain of its
//! own ([`chain`]), whose head is sealed at intervals with a MAC under a key derived from the
//! key-encryption key, which is never in the database ([`seal`]); [`verify`] walks chains and
//! seals and names the first break.

pub mod chain;
pub mod seal;
pub mod verify;

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// Member names that are never stored in event details, at any depth.
const SECRET_NAMES: [&str; 9] = [
    "client_secret",
    "password",
    "password_hash",
    "registration_access_token",
    "access_token",
    "refresh_token",
    "totp_secret",
    "totp_secret_encrypted",
    "private_key",
];

/// One security event.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEvent {
    /// When it happened.
    pub occurred_at: OffsetDateTime,
    /// Who did it: `admin-client:<client_id>`, `cli`, `user:<id>`, `system`.
    pub actor: String,
    /// What: `client.create`, `user.disable`, `keys.rotate`, ...
    pub action: String,
    /// To what: a client id, user id or key id.
    pub subject: Option<String>,
    /// Before/after and context, without secrets.
    pub details: Map<String, Value>,
    /// The request it came from.
    pub request_id: Option<String>,
    /// The OAuth client concerned, if any: set with [`SecurityEvent::with_client`], else taken
    /// from a string `details["client_id"]`.
    pub client_id: Option<String>,
}

impl SecurityEvent {
    /// An event; secret-named members are removed from `details` at every depth. Its
    /// `client_id` is `details["client_id"]` when that is a string.
    #[must_use]
    pub fn new(
        occurred_at: OffsetDateTime,
        actor: impl Into<String>,
        action: impl Into<String>,
        subject: Option<String>,
        mut details: Map<String, Value>,
    ) -> Self {
        scrub(&mut details);
        let client_id = client_of(&details);
        Self {
            occurred_at,
            actor: actor.into(),
            action: action.into(),
            subject,
            details,
            request_id: None,
            client_id,
        }
    }

    /// The same event, concerning the OAuth client `client_id`.
    #[must_use]
    pub fn with_client(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The same event, tagged with the request it came from.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }
}

/// The client an event's details name, when `client_id` is a string member.
pub(crate) fn client_of(details: &Map<String, Value>) -> Option<String> {
    details
        .get("client_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn scrub(map: &mut Map<String, Value>) {
    map.retain(|name, _| !SECRET_NAMES.contains(&name.as_str()));
    for value in map.values_mut() {
        scrub_value(value);
    }
}

fn scrub_value(value: &mut Value) {
    match value {
        Value::Object(map) => scrub(map),
        Value::Array(items) => items.iter_mut().for_each(scrub_value),
        _ => {}
    }
}

/// A stored event with its position in the trail.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Position: strictly increasing.
    pub seq: i64,
    /// The event.
    pub event: SecurityEvent,
    /// Its place in its hash chain; `None` for events written before chaining began.
    pub link: Option<chain::ChainLink>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_never_enter_event_details_at_any_depth() {
        let details = json!({
            "before": {"client_name": "A", "client_secret": "s3cret"},
            "after": {"client_name": "B", "nested": [{"password": "hunter2", "kept": 1}]},
            "registration_access_token": "rat",
        });
        let event = SecurityEvent::new(
            OffsetDateTime::UNIX_EPOCH,
            "admin-client:ops",
            "client.update",
            Some("tpp-1".into()),
            details.as_object().unwrap().clone(),
        );
        let text = serde_json::to_string(&event.details).unwrap();
        for secret in ["s3cret", "hunter2", "rat\"", "client_secret", "password"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(event.details["after"]["nested"][0]["kept"], 1);
        assert_eq!(
            event.with_request_id("req-1").request_id.as_deref(),
            Some("req-1")
        );
    }

    #[test]
    fn the_client_comes_from_the_details_unless_set() {
        let details = json!({"client_id": "tpp-1"}).as_object().unwrap().clone();
        let event = SecurityEvent::new(OffsetDateTime::UNIX_EPOCH, "a", "b", None, details);
        assert_eq!(event.client_id.as_deref(), Some("tpp-1"));
        assert_eq!(
            event.with_client("tpp-2").client_id.as_deref(),
            Some("tpp-2")
        );
        let numeric = json!({"client_id": 7}).as_object().unwrap().clone();
        let event = SecurityEvent::new(OffsetDateTime::UNIX_EPOCH, "a", "b", None, numeric);
        assert_eq!(event.client_id, None);
    }
}

//! The messages of a session: JSON text frames, each with a `type`. What a client sends is parsed
//! into [`ClientMessage`]; what the server answers is built by the functions here, so the shapes
//! are in one place (the README documents them).

use portcullis_verify::VerifyError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::market::Instrument;

/// A message from the client.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// `{"type": "subscribe", "instruments": ["EURUSD", …]}`.
    Subscribe {
        /// Instrument names.
        instruments: Vec<String>,
    },
    /// `{"type": "unsubscribe", "instruments": […]}`.
    Unsubscribe {
        /// Instrument names.
        instruments: Vec<String>,
    },
    /// `{"type": "renew", "access_token": "…", "dpop": "<proof>"}`: in-band renewal.
    Renew {
        /// The fresh access token. Never logged.
        access_token: String,
        /// For a DPoP-bound token, a proof for `GET <public-url>/stream` with its `ath`.
        #[serde(default)]
        dpop: Option<String>,
    },
}

// Hand-written so that a token never reaches a log.
impl std::fmt::Debug for ClientMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientMessage::Subscribe { instruments } => f
                .debug_struct("Subscribe")
                .field("instruments", instruments)
                .finish(),
            ClientMessage::Unsubscribe { instruments } => f
                .debug_struct("Unsubscribe")
                .field("instruments", instruments)
                .finish(),
            ClientMessage::Renew { dpop, .. } => f
                .debug_struct("Renew")
                .field("access_token", &"***")
                .field("dpop", &dpop.as_ref().map(|_| "***"))
                .finish(),
        }
    }
}

/// `{"type": "error", "error": code, "error_description": description}`.
#[must_use]
pub fn error(code: &str, description: impl Into<String>) -> Value {
    json!({"type": "error", "error": code, "error_description": description.into()})
}

/// The error of a frame that is not a message of this protocol.
#[must_use]
pub fn invalid_request(description: impl Into<String>) -> Value {
    error("invalid_request", description)
}

/// `{"type": kind, "instruments": [...]}` for `subscribed` and `unsubscribed`.
#[must_use]
pub fn instruments(kind: &str, instruments: &[Instrument]) -> Value {
    let names: Vec<&str> = instruments.iter().map(|i| i.as_str()).collect();
    json!({"type": kind, "instruments": names})
}

/// The refusal of subscriptions the token's scopes do not allow: `insufficient_scope`, with the
/// scopes needed in `scope` (as RFC 6750 §3 names them in a challenge).
#[must_use]
pub fn insufficient_scope(refused: &[Instrument]) -> Value {
    let scopes: Vec<String> = refused.iter().map(|i| i.scope()).collect();
    let scope = scopes.join(" ");
    json!({
        "type": "error",
        "error": "insufficient_scope",
        "error_description":
            format!("the access token lacks the scope {scope}; nothing was subscribed"),
        "scope": scope,
    })
}

/// `{"type": "renewed", "expires_at": exp}`, with the subscriptions the new token no longer
/// allows (and that were dropped) in `unsubscribed`, if any.
#[must_use]
pub fn renewed(expires_at: i64, dropped: &[Instrument]) -> Value {
    if dropped.is_empty() {
        return json!({"type": "renewed", "expires_at": expires_at});
    }
    let names: Vec<&str> = dropped.iter().map(|i| i.as_str()).collect();
    json!({"type": "renewed", "expires_at": expires_at, "unsubscribed": names})
}

/// The refusal of a renewal; the session goes on under its old token. The code is
/// `invalid_token` (the token is bad, expired, revoked, of another client or subject, or its
/// binding does not hold), `invalid_dpop_proof` (the proof is), `use_dpop_nonce` (with the nonce
/// in `dpop_nonce`, RFC 9449 §9) or `temporarily_unavailable` (the authorization server could not
/// be asked).
#[must_use]
pub fn renewal_refused(error_: &VerifyError) -> Value {
    let code = match error_ {
        VerifyError::InvalidDpopProof(_) => "invalid_dpop_proof",
        VerifyError::UseDpopNonce { .. } => "use_dpop_nonce",
        VerifyError::Unavailable(_) => "temporarily_unavailable",
        VerifyError::Missing
        | VerifyError::InvalidRequest(_)
        | VerifyError::InvalidToken { .. }
        | VerifyError::InsufficientScope { .. } => "invalid_token",
    };
    let description = error_.to_string();
    match error_ {
        VerifyError::UseDpopNonce { nonce } => json!({
            "type": "error",
            "error": code,
            "error_description": description,
            "dpop_nonce": nonce,
        }),
        _ => error(code, description),
    }
}

#[cfg(test)]
mod tests {
    use portcullis_verify::Scheme;

    use super::*;

    #[test]
    fn client_messages_parse_by_type() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"subscribe","instruments":["EURUSD"]}"#).unwrap();
        assert!(matches!(m, ClientMessage::Subscribe { instruments } if instruments == ["EURUSD"]));
        let m: ClientMessage =
            serde_json::from_str(r#"{"type":"renew","access_token":"secret-token"}"#).unwrap();
        assert!(matches!(&m, ClientMessage::Renew { dpop: None, .. }));
        assert!(!format!("{m:?}").contains("secret-token"));
        assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"buy"}"#).is_err());
        assert!(serde_json::from_str::<ClientMessage>(r#"{"instruments":[]}"#).is_err());
    }

    #[test]
    fn a_refused_renewal_says_invalid_token_unless_the_proof_or_the_server_is_the_problem() {
        let other = VerifyError::invalid_token(Scheme::Bearer, "another subject");
        assert_eq!(renewal_refused(&other)["error"], "invalid_token");
        let proof = VerifyError::InvalidDpopProof("htu".into());
        assert_eq!(renewal_refused(&proof)["error"], "invalid_dpop_proof");
        let nonce = VerifyError::UseDpopNonce { nonce: "n".into() };
        assert_eq!(renewal_refused(&nonce)["dpop_nonce"], "n");
        assert_eq!(renewal_refused(&other)["type"], "error");
    }

    #[test]
    fn insufficient_scope_names_the_scopes_needed() {
        let m = insufficient_scope(&[Instrument::GbpUsd, Instrument::XauUsd]);
        assert_eq!(m["error"], "insufficient_scope");
        assert_eq!(m["scope"], "ticks:GBPUSD ticks:XAUUSD");
        assert!(
            m["error_description"]
                .as_str()
                .unwrap()
                .contains("ticks:GBPUSD")
        );
    }
}

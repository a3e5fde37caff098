//! Who a verified token speaks for, and what it allows: the [`Principal`], with the checks an API
//! applies before it acts (scopes, RFC 9396 `authorization_details`).

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::binding::Binding;
use crate::error::{Scheme, VerifyError};

/// Where a principal's claims came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// A JWT access token verified against the JWKS (RFC 9068).
    Jwt,
    /// The authorization server's introspection answer (RFC 7662).
    Introspection,
}

/// A verified access token: who it is for, which client presented it, and what it allows.
#[derive(Debug, Clone)]
pub struct Principal {
    /// `sub`: the customer (or, for client credentials, the client).
    pub subject: String,
    /// `client_id`: the client the token was issued to.
    pub client_id: String,
    /// `scope`, split.
    pub scopes: Vec<String>,
    /// `authorization_details` (RFC 9396), as granted: the accounts the customer chose, the
    /// payment they approved.
    pub authorization_details: Vec<Value>,
    /// `grant_id` (Grant Management): the consent the token belongs to, if any.
    pub grant_id: Option<String>,
    /// `jti`, the token's identifier (for an opaque token without one, a hash of the token).
    pub token_id: String,
    /// `exp`, in seconds since the epoch.
    pub expires_at: i64,
    /// `iat`, in seconds since the epoch, if given.
    pub issued_at: Option<i64>,
    /// How the token is bound; `None` only when unbound tokens are allowed.
    pub binding: Option<Binding>,
    /// The scheme it was presented with.
    pub scheme: Scheme,
    /// `acr`, if given.
    pub acr: Option<String>,
    /// `auth_time`, if given.
    pub auth_time: Option<i64>,
    /// Where the claims came from.
    pub source: TokenSource,
    /// Every claim.
    pub claims: Arc<Map<String, Value>>,
}

/// What an `authorization_details` entry must allow: its `type`, and every one of the listed
/// `actions`, `locations` and accounts (RFC 9396 §2.2 common fields; `accounts` as Portcullis's
/// `account_information` type carries them).
#[derive(Debug, Clone, Default)]
pub struct DetailRequirement<'a> {
    /// The entry's `type`.
    pub kind: &'a str,
    /// Actions the entry must list in `actions`.
    pub actions: &'a [&'a str],
    /// Locations the entry must list in `locations` (an entry without `locations` allows none).
    pub locations: &'a [&'a str],
    /// Accounts the entry must list in `accounts`.
    pub accounts: &'a [&'a str],
}

impl<'a> DetailRequirement<'a> {
    /// An entry of type `kind`.
    #[must_use]
    pub fn of_type(kind: &'a str) -> Self {
        Self {
            kind,
            ..Self::default()
        }
    }

    /// …listing these actions.
    #[must_use]
    pub fn actions(mut self, actions: &'a [&'a str]) -> Self {
        self.actions = actions;
        self
    }

    /// …listing these locations.
    #[must_use]
    pub fn locations(mut self, locations: &'a [&'a str]) -> Self {
        self.locations = locations;
        self
    }

    /// …listing these accounts.
    #[must_use]
    pub fn accounts(mut self, accounts: &'a [&'a str]) -> Self {
        self.accounts = accounts;
        self
    }

    fn met_by(&self, entry: &Value) -> bool {
        let lists = |member: &str, wanted: &[&str]| {
            wanted.is_empty()
                || entry
                    .get(member)
                    .and_then(Value::as_array)
                    .is_some_and(|have| {
                        wanted
                            .iter()
                            .all(|w| have.iter().any(|h| h.as_str() == Some(w)))
                    })
        };
        entry.get("type").and_then(Value::as_str) == Some(self.kind)
            && lists("actions", self.actions)
            && lists("locations", self.locations)
            && lists("accounts", self.accounts)
    }
}

impl Principal {
    /// Whether the token has `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Requires every one of `scopes`.
    ///
    /// # Errors
    /// `insufficient_scope` (403) naming the scopes (RFC 6750 §3.1).
    pub fn require_scopes(&self, scopes: &[&str]) -> Result<(), VerifyError> {
        let missing: Vec<&str> = scopes
            .iter()
            .copied()
            .filter(|s| !self.has_scope(s))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(VerifyError::insufficient_scope(
            self.scheme,
            Some(scopes.join(" ")),
            format!("the access token lacks the scope {}", missing.join(" ")),
        ))
    }

    /// The `authorization_details` entries of type `kind`.
    pub fn details_of<'s>(&'s self, kind: &'s str) -> impl Iterator<Item = &'s Value> + 's {
        self.authorization_details
            .iter()
            .filter(move |d| d.get("type").and_then(Value::as_str) == Some(kind))
    }

    /// The first `authorization_details` entry that meets `requirement`.
    ///
    /// # Errors
    /// `insufficient_scope` (403) naming what no entry allows (RFC 9396 §6 leaves the error to
    /// the resource server; this is RFC 6750's).
    pub fn require_detail(
        &self,
        requirement: &DetailRequirement<'_>,
    ) -> Result<&Value, VerifyError> {
        self.authorization_details
            .iter()
            .find(|entry| requirement.met_by(entry))
            .ok_or_else(|| {
                let mut wanted = vec![format!("type {}", requirement.kind)];
                for (what, list) in [
                    ("actions", requirement.actions),
                    ("locations", requirement.locations),
                    ("accounts", requirement.accounts),
                ] {
                    if !list.is_empty() {
                        wanted.push(format!("{what} {}", list.join(", ")));
                    }
                }
                VerifyError::insufficient_scope(
                    self.scheme,
                    None,
                    format!(
                        "no authorization_details entry of the access token allows {} (RFC 9396)",
                        wanted.join("; ")
                    ),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(scopes: &[&str], details: Value) -> Principal {
        Principal {
            subject: "user".into(),
            client_id: "client".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            authorization_details: details.as_array().cloned().unwrap_or_default(),
            grant_id: None,
            token_id: "jti".into(),
            expires_at: 0,
            issued_at: None,
            binding: None,
            scheme: Scheme::Bearer,
            acr: None,
            auth_time: None,
            source: TokenSource::Jwt,
            claims: Arc::default(),
        }
    }

    #[test]
    fn rfc_6750_3_1_missing_scopes_are_insufficient_scope_naming_them() {
        let p = principal(&["openid", "accounts"], json!([]));
        assert!(p.require_scopes(&["accounts"]).is_ok());
        let err = p.require_scopes(&["accounts", "payments"]).unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(
            matches!(&err, VerifyError::InsufficientScope { scope: Some(s), .. } if s == "accounts payments")
        );
        assert!(err.to_string().contains("payments"));
        assert!(!err.to_string().contains("accounts payments"));
    }

    #[test]
    fn rfc_9396_a_detail_must_have_the_type_and_every_listed_action_and_account() {
        let p = principal(
            &[],
            json!([
                {"type": "account_information", "actions": ["read_balances", "list_accounts"], "accounts": ["acc-1"]},
                {"type": "payment_initiation", "instructedAmount": {"currency": "EUR", "amount": "10.00"}}
            ]),
        );
        let balances = DetailRequirement::of_type("account_information")
            .actions(&["read_balances"])
            .accounts(&["acc-1"]);
        assert!(p.require_detail(&balances).is_ok());
        let other_account = DetailRequirement::of_type("account_information")
            .actions(&["read_balances"])
            .accounts(&["acc-2"]);
        let err = p.require_detail(&other_account).unwrap_err();
        assert_eq!(err.status(), 403);
        assert!(err.to_string().contains("accounts acc-2"), "{err}");
        let transactions =
            DetailRequirement::of_type("account_information").actions(&["read_transactions"]);
        assert!(p.require_detail(&transactions).is_err());
        let located = DetailRequirement::of_type("account_information").locations(&["https://x"]);
        assert!(p.require_detail(&located).is_err());
        assert_eq!(p.details_of("payment_initiation").count(), 1);
    }
}

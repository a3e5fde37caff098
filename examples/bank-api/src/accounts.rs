//! `GET /accounts`, `GET /accounts/{id}`, `…/balances`, `…/transactions`: the customer's
//! accounts, as far as the consent behind the token reaches.
//!
//! Every route needs the `accounts` scope and an RFC 9396 `account_information` entry. Which
//! accounts a token sees is decided by the entry's `accounts` (the accounts the customer ticked
//! at consent), never by the client: `/accounts` lists only those; an account of the customer that
//! the consent does not name is `insufficient_scope` (403); an account that is not the
//! customer's (another customer's, or none at all) is `not_found` (404), exactly as an unknown
//! one, so that this API never confirms that someone else's account exists. Balances need the
//! entry's `read_balances` action and transactions `read_transactions`.

use std::collections::HashSet;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use portcullis_core::accounts::Account;
use portcullis_verify::axum::Authenticated;
use portcullis_verify::{DetailRequirement, Principal};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::app::AppState;
use crate::demo;
use crate::error::ApiError;

/// The scope of the account routes.
pub const SCOPE: &str = "accounts";
/// The `authorization_details` type of the account routes.
pub const ACCOUNT_INFORMATION: &str = "account_information";

/// The customer a token speaks for: its `sub`, when it is a customer's id (a UUID in its
/// canonical form). A client-credentials token's `sub` is the client's id, which has no
/// accounts.
#[must_use]
pub fn customer(principal: &Principal) -> Option<Uuid> {
    Uuid::try_parse(&principal.subject)
        .ok()
        .filter(|id| id.hyphenated().to_string() == principal.subject)
}

/// The accounts of the customer behind `principal` (none for a subject that is no customer).
///
/// # Errors
/// `server_error` when the directory does not answer.
pub async fn customer_accounts(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<Account>, ApiError> {
    let Some(customer) = customer(principal) else {
        return Ok(Vec::new());
    };
    state
        .directory
        .accounts_of(customer)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// The accounts that the token's `account_information` entries name.
#[must_use]
pub fn granted_account_ids(principal: &Principal) -> HashSet<&str> {
    principal
        .details_of(ACCOUNT_INFORMATION)
        .filter_map(|entry| entry.get("accounts").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Of `accounts`, those the token's consent names, in the directory's order.
#[must_use]
pub fn visible<'a>(principal: &Principal, accounts: &'a [Account]) -> Vec<&'a Account> {
    let granted = granted_account_ids(principal);
    accounts
        .iter()
        .filter(|a| granted.contains(a.id.as_str()))
        .collect()
}

/// An account as this API shows it.
#[must_use]
pub fn describe(account: &Account) -> Value {
    json!({
        "id": account.id,
        "name": account.name,
        "iban": account.iban,
        "currency": account.currency,
    })
}

/// `GET /accounts`: the accounts the consent names.
pub async fn list(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let principal = &verified.principal;
    principal
        .require_scopes(&[SCOPE])
        .map_err(|e| state.deny(e))?;
    principal
        .require_detail(&DetailRequirement::of_type(ACCOUNT_INFORMATION))
        .map_err(|e| state.deny(e))?;
    let accounts = customer_accounts(&state, principal).await?;
    let shown: Vec<Value> = visible(principal, &accounts)
        .into_iter()
        .map(describe)
        .collect();
    Ok(Json(json!({ "accounts": shown })))
}

/// The customer's account `id`, if the consent names it and its entry allows `actions`.
async fn granted_account(
    state: &AppState,
    principal: &Principal,
    id: Result<Path<String>, PathRejection>,
    actions: &[&str],
) -> Result<Account, ApiError> {
    principal
        .require_scopes(&[SCOPE])
        .map_err(|e| state.deny(e))?;
    let Path(id) = id.map_err(|e| ApiError::InvalidRequest(e.body_text()))?;
    let account = customer_accounts(state, principal)
        .await?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| ApiError::NotFound(format!("the customer has no account {id:?}")))?;
    principal
        .require_detail(
            &DetailRequirement::of_type(ACCOUNT_INFORMATION)
                .accounts(&[account.id.as_str()])
                .actions(actions),
        )
        .map_err(|e| state.deny(e))?;
    Ok(account)
}

/// `GET /accounts/{id}`: one account the consent names.
pub async fn get(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let account = granted_account(&state, &verified.principal, id, &[]).await?;
    Ok(Json(describe(&account)))
}

/// `GET /accounts/{id}/balances`: needs the `read_balances` action.
pub async fn balances(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let account = granted_account(&state, &verified.principal, id, &["read_balances"]).await?;
    Ok(Json(demo::balances(&account)))
}

/// `GET /accounts/{id}/transactions`: needs the `read_transactions` action.
pub async fn transactions(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let account = granted_account(&state, &verified.principal, id, &["read_transactions"]).await?;
    Ok(Json(demo::transactions(&account)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use portcullis_core::accounts::{AccountDirectory, DemoDirectory};
    use portcullis_verify::{Scheme, TokenSource};

    pub(crate) fn principal(subject: &str, scopes: &[&str], details: Value) -> Principal {
        Principal {
            subject: subject.into(),
            client_id: "tpp".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            authorization_details: details.as_array().cloned().unwrap_or_default(),
            grant_id: Some("grant-1".into()),
            token_id: "jti-1".into(),
            expires_at: i64::MAX,
            issued_at: None,
            binding: None,
            scheme: Scheme::Bearer,
            acr: None,
            auth_time: None,
            source: TokenSource::Jwt,
            claims: Arc::default(),
        }
    }

    const CUSTOMER: &str = "6f1c1d6e-5f7a-4c1b-9a59-2b8b7d0e9c11";

    #[tokio::test]
    async fn only_the_accounts_the_consent_names_are_visible() {
        let customer_id = Uuid::parse_str(CUSTOMER).unwrap();
        let accounts = DemoDirectory.accounts_of(customer_id).await.unwrap();
        let (current, savings) = (&accounts[0], &accounts[1]);
        let p = principal(
            CUSTOMER,
            &["accounts"],
            json!([
                {"type": "account_information", "actions": ["read_balances"], "accounts": [current.id, "acc-of-someone-else"]},
                {"type": "payment_initiation", "accounts": [savings.id]}
            ]),
        );
        let shown = visible(&p, &accounts);
        assert_eq!(shown, vec![current]);
        // Named in another type's entry does not count; no entry means nothing.
        let none = principal(
            CUSTOMER,
            &["accounts"],
            json!([{"type": "account_information", "actions": ["read_balances"]}]),
        );
        assert!(visible(&none, &accounts).is_empty());
    }

    #[test]
    fn only_a_canonical_uuid_subject_is_a_customer() {
        let p = |sub: &str| principal(sub, &[], json!([]));
        assert_eq!(customer(&p(CUSTOMER)), Uuid::parse_str(CUSTOMER).ok());
        assert_eq!(customer(&p("tpp-client-id")), None);
        assert_eq!(customer(&p(&CUSTOMER.to_uppercase())), None);
        assert_eq!(customer(&p(&CUSTOMER.replace('-', ""))), None);
        assert_eq!(customer(&p(&format!("urn:uuid:{CUSTOMER}"))), None);
    }
}

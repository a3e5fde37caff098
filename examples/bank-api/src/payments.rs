//! `POST /payments`: a payment initiated under the customer's `payment_initiation` consent
//! (RFC 9396). The token needs the `payments` scope and a `payment_initiation` entry; the
//! payment must be the consented one:
//!
//! - `instructedAmount.currency` equal to the consented currency, and `instructedAmount.amount`
//!   not more than the consented amount (exact decimal comparison in minor units, no floats);
//! - `creditorAccount.iban` equal to the consented IBAN (both in electronic form: spaces removed,
//!   upper-case) and `creditorName` equal to the consented name;
//! - `remittanceInformation`, when the consent names one, equal to it (omitted: the consented one
//!   is used).
//!
//! The account paid from is the entry's `debtorAccount.id`, the account the customer chose at
//! consent; the client cannot name another one. A consent pays once: see [`crate::ledger`].
//!
//! Answers: 201 with the payment; 400 `invalid_request` for a malformed body; 403
//! `insufficient_scope` without the scope or entry; 403 `payment_not_consented` for a payment
//! that differs from the consent; 403 `consent_used` for a second payment under one consent.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use portcullis_verify::axum::Authenticated;
use portcullis_verify::{DetailRequirement, Principal};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::accounts::customer_accounts;
use crate::app::AppState;
use crate::body::{self, JsonBytes};
use crate::error::ApiError;
use crate::iban::Iban;
use crate::ledger::ConsentKey;
use crate::money::{Currency, Money};

/// The scope of the payment route.
pub const SCOPE: &str = "payments";
/// The `authorization_details` type of the payment route.
pub const PAYMENT_INITIATION: &str = "payment_initiation";
/// The longest `creditorName` and `remittanceInformation` (as at consent).
const MAX_TEXT: usize = 140;

/// The body of `POST /payments`, as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PaymentRequest {
    instructed_amount: InstructedAmount,
    creditor_name: String,
    creditor_account: CreditorAccount,
    #[serde(default)]
    remittance_information: Option<String>,
}

/// `instructedAmount`: the amount is a decimal string, never a JSON number (no floats).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstructedAmount {
    currency: String,
    amount: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreditorAccount {
    iban: String,
}

/// A payment as this API understands it: parsed, not just validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    /// What is paid.
    pub amount: Money,
    /// To whom.
    pub creditor_name: String,
    /// To which account.
    pub creditor_iban: Iban,
    /// The reference for the creditor, if any.
    pub remittance_information: Option<String>,
}

fn text(value: &str, what: &str) -> Result<String, String> {
    if value.trim().is_empty() || value.chars().count() > MAX_TEXT {
        return Err(format!("{what} must have 1 to {MAX_TEXT} characters"));
    }
    Ok(value.to_owned())
}

impl Payment {
    /// The payment a request asks for.
    ///
    /// # Errors
    /// `invalid_request` naming the member that does not parse.
    fn from_request(request: PaymentRequest) -> Result<Self, ApiError> {
        let currency = Currency::parse(&request.instructed_amount.currency)
            .map_err(|e| ApiError::InvalidRequest(format!("instructedAmount.currency: {e}")))?;
        let amount = Money::parse_positive(&request.instructed_amount.amount, currency)
            .map_err(|e| ApiError::InvalidRequest(format!("instructedAmount.amount: {e}")))?;
        let creditor_iban = Iban::parse(&request.creditor_account.iban)
            .map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
        let creditor_name =
            text(&request.creditor_name, "creditorName").map_err(ApiError::InvalidRequest)?;
        let remittance_information = request
            .remittance_information
            .map(|r| {
                if r.chars().count() > MAX_TEXT {
                    Err(ApiError::InvalidRequest(format!(
                        "remittanceInformation must have at most {MAX_TEXT} characters"
                    )))
                } else {
                    Ok(r)
                }
            })
            .transpose()?;
        Ok(Self {
            amount,
            creditor_name,
            creditor_iban,
            remittance_information,
        })
    }
}

/// What the customer consented to: the payment's limits and the account to pay from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The most that may be paid, and in which currency.
    pub limit: Money,
    /// The creditor's name.
    pub creditor_name: String,
    /// The creditor's account.
    pub creditor_iban: Iban,
    /// The reference the consent fixed, if any.
    pub remittance_information: Option<String>,
    /// The customer's account chosen at consent (`debtorAccount.id`).
    pub debtor_account: String,
}

impl Consent {
    /// Reads a `payment_initiation` entry. The authorization server checked its schema at the
    /// pushed authorization request; anything unreadable still refuses the payment.
    ///
    /// # Errors
    /// `payment_not_consented` naming what the consent lacks.
    pub fn from_entry(entry: &Value) -> Result<Self, ApiError> {
        let unreadable = |what: &str| {
            ApiError::PaymentNotConsented(format!("the consent's {what} cannot be read"))
        };
        let str_at = |pointer: &str| entry.pointer(pointer).and_then(Value::as_str);
        let currency = str_at("/instructedAmount/currency")
            .and_then(|c| Currency::parse(c).ok())
            .ok_or_else(|| unreadable("instructedAmount.currency"))?;
        let limit = str_at("/instructedAmount/amount")
            .and_then(|a| Money::parse(a, currency).ok())
            .ok_or_else(|| unreadable("instructedAmount.amount"))?;
        let creditor_name = str_at("/creditorName")
            .ok_or_else(|| unreadable("creditorName"))?
            .to_owned();
        let creditor_iban = str_at("/creditorAccount/iban")
            .and_then(|i| Iban::parse(i).ok())
            .ok_or_else(|| unreadable("creditorAccount.iban"))?;
        let debtor_account = str_at("/debtorAccount/id")
            .ok_or_else(|| {
                ApiError::PaymentNotConsented(
                    "the consent names no account to pay from (debtorAccount)".into(),
                )
            })?
            .to_owned();
        Ok(Self {
            limit,
            creditor_name,
            creditor_iban,
            remittance_information: str_at("/remittanceInformation").map(str::to_owned),
            debtor_account,
        })
    }

    /// Whether `payment` is the consented one; the remittance information to use.
    ///
    /// # Errors
    /// `payment_not_consented` saying what differs.
    pub fn allows(&self, payment: &Payment) -> Result<Option<String>, ApiError> {
        payment
            .amount
            .within(&self.limit)
            .map_err(|e| ApiError::PaymentNotConsented(e.to_string()))?;
        if payment.creditor_iban != self.creditor_iban {
            return Err(ApiError::PaymentNotConsented(
                "creditorAccount.iban is not the consented creditor account".into(),
            ));
        }
        if payment.creditor_name != self.creditor_name {
            return Err(ApiError::PaymentNotConsented(
                "creditorName is not the consented creditor".into(),
            ));
        }
        match (
            &self.remittance_information,
            &payment.remittance_information,
        ) {
            (Some(consented), Some(asked)) if consented != asked => {
                Err(ApiError::PaymentNotConsented(
                    "remittanceInformation is not the consented one".into(),
                ))
            }
            (Some(consented), _) => Ok(Some(consented.clone())),
            (None, asked) => Ok(asked.clone()),
        }
    }
}

/// `POST /payments`. Counts the outcome in the API's metrics.
pub async fn post(
    State(state): State<AppState>,
    Authenticated(verified): Authenticated,
    body: JsonBytes,
) -> Response {
    let outcome = pay(&state, &verified.principal, &body).await;
    match &outcome {
        Ok(_) => state.counters.payment_accepted(),
        Err(e) => state.counters.payment_refused(e.code()),
    }
    outcome.into_response()
}

async fn pay(
    state: &AppState,
    principal: &Principal,
    body: &JsonBytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal
        .require_scopes(&[SCOPE])
        .map_err(|e| state.deny(e))?;
    let entry = principal
        .require_detail(&DetailRequirement::of_type(PAYMENT_INITIATION))
        .map_err(|e| state.deny(e))?;
    let request: PaymentRequest = body::parse(body)?;
    let payment = Payment::from_request(request)?;
    let consent = Consent::from_entry(entry)?;
    let remittance = consent.allows(&payment)?;
    // The consent's debtor must (still) be the customer's: the authorization server offered
    // only the customer's accounts, and the customer's accounts may have changed since.
    let debtor_is_theirs = customer_accounts(state, principal)
        .await?
        .iter()
        .any(|a| a.id == consent.debtor_account);
    if !debtor_is_theirs {
        return Err(ApiError::PaymentNotConsented(
            "the consented debtorAccount is not one of the customer's accounts".into(),
        ));
    }
    // The moment of paying: the one insert-if-absent that decides which payment goes through.
    if !state.ledger.consume(ConsentKey::of(principal)) {
        return Err(ApiError::ConsentUsed);
    }
    let payment_id = uuid::Uuid::new_v4().to_string();
    tracing::info!(
        payment_id,
        client_id = %principal.client_id,
        grant_id = principal.grant_id.as_deref().unwrap_or("-"),
        "payment accepted"
    );
    let mut creditor = Map::new();
    creditor.insert("name".into(), payment.creditor_name.into());
    creditor.insert("iban".into(), payment.creditor_iban.as_str().into());
    let mut answer = json!({
        "payment_id": payment_id,
        "status": "accepted",
        "debtor_account": consent.debtor_account,
        "instructed_amount": {
            "currency": payment.amount.currency().as_str(),
            "amount": payment.amount.amount_text(),
        },
        "creditor": creditor,
        "grant_id": principal.grant_id,
    });
    if let (Some(remittance), Some(object)) = (remittance, answer.as_object_mut()) {
        object.insert("remittance_information".into(), remittance.into());
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent() -> Consent {
        Consent::from_entry(&json!({
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "10.00"},
            "creditorName": "Merchant GmbH",
            "creditorAccount": {"iban": "DE89370400440532013000"},
            "debtorAccount": {"id": "acc-1"}
        }))
        .unwrap()
    }

    fn payment(body: Value) -> Result<Payment, ApiError> {
        let request: PaymentRequest =
            body::parse(&JsonBytes(serde_json::to_vec(&body).unwrap().into()))?;
        Payment::from_request(request)
    }

    fn request(amount: &str, currency: &str, iban: &str, name: &str) -> Value {
        json!({
            "instructedAmount": {"currency": currency, "amount": amount},
            "creditorName": name,
            "creditorAccount": {"iban": iban}
        })
    }

    #[test]
    fn the_consented_payment_and_smaller_ones_are_allowed() {
        let c = consent();
        assert_eq!(c.debtor_account, "acc-1");
        for (amount, iban) in [
            ("10.00", "DE89370400440532013000"),
            ("10", "de89 3704 0044 0532 0130 00"),
            ("0.01", "DE89 3704 0044 0532 0130 00"),
        ] {
            let p = payment(request(amount, "EUR", iban, "Merchant GmbH")).unwrap();
            assert_eq!(c.allows(&p).unwrap(), None, "{amount} {iban}");
        }
    }

    #[test]
    fn payments_beyond_the_consent_are_payment_not_consented() {
        let c = consent();
        for body in [
            request("10.01", "EUR", "DE89370400440532013000", "Merchant GmbH"),
            request("5.00", "USD", "DE89370400440532013000", "Merchant GmbH"),
            request("5.00", "EUR", "GB82WEST12345698765432", "Merchant GmbH"),
            request("5.00", "EUR", "DE89370400440532013000", "Someone Else"),
            request("5.00", "EUR", "DE89370400440532013000", "merchant gmbh"),
        ] {
            let p = payment(body.clone()).unwrap();
            let e = c.allows(&p).unwrap_err();
            assert_eq!(e.code(), "payment_not_consented", "{body}");
        }
    }

    #[test]
    fn malformed_payments_are_invalid_request() {
        for body in [
            request("-1.00", "EUR", "DE89370400440532013000", "Merchant GmbH"),
            request("1e1", "EUR", "DE89370400440532013000", "Merchant GmbH"),
            request("0.00", "EUR", "DE89370400440532013000", "Merchant GmbH"),
            request("1.001", "EUR", "DE89370400440532013000", "Merchant GmbH"),
            request("1.00", "eur", "DE89370400440532013000", "Merchant GmbH"),
            request("1.00", "EUR", "DE00370400440532013000", "Merchant GmbH"),
            request("1.00", "EUR", "DE89370400440532013000", " "),
            json!({"instructedAmount": {"currency": "EUR", "amount": 10.0}, "creditorName": "x", "creditorAccount": {"iban": "DE89370400440532013000"}}),
            json!({"instructedAmount": {"currency": "EUR", "amount": "1.00"}, "creditorName": "x"}),
            json!({"instructedAmount": {"currency": "EUR", "amount": "1.00"}, "creditorName": "x", "creditorAccount": {"iban": "DE89370400440532013000"}, "debtorAccount": {"id": "acc-2"}}),
        ] {
            let e = payment(body.clone()).unwrap_err();
            assert_eq!(e.code(), "invalid_request", "{body}");
        }
    }

    #[test]
    fn a_consented_remittance_is_kept_and_another_refused() {
        let mut entry = json!({
            "type": "payment_initiation",
            "instructedAmount": {"currency": "EUR", "amount": "10.00"},
            "creditorName": "Merchant GmbH",
            "creditorAccount": {"iban": "DE89370400440532013000"},
            "remittanceInformation": "Invoice 42",
            "debtorAccount": {"id": "acc-1"}
        });
        let c = Consent::from_entry(&entry).unwrap();
        let mut body = request("10.00", "EUR", "DE89370400440532013000", "Merchant GmbH");
        let p = payment(body.clone()).unwrap();
        assert_eq!(c.allows(&p).unwrap().as_deref(), Some("Invoice 42"));
        body["remittanceInformation"] = "Invoice 43".into();
        assert!(c.allows(&payment(body).unwrap()).is_err());
        // Without a debtor chosen at consent nothing can be paid.
        entry.as_object_mut().unwrap().remove("debtorAccount");
        assert_eq!(
            Consent::from_entry(&entry).unwrap_err().code(),
            "payment_not_consented"
        );
    }
}

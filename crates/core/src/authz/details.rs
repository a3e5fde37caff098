//! Rich authorization requests (RFC 9396): `authorization_details` is a JSON array of objects,
//! each with a `type` the client is registered for (`authorization_details_types`), and each
//! checked against the schema of its type. Two types have schemas of their own, the ones a bank's
//! consent page renders for a person:
//!
//! - `account_information`: `actions` from a fixed set, optional `accounts` (identifiers the
//!   customer may narrow at consent), optional `expires_at`;
//! - `payment_initiation`: `instructedAmount` (`currency` ISO 4217, `amount` a positive decimal
//!   string), `creditorName`, `creditorAccount` (`iban`), optional `remittanceInformation`.
//!
//! Any other type the client is registered for is held to RFC 9396 §2.2's common fields
//! (`locations`, `actions`, `datatypes`, `privileges`: arrays of strings; `identifier`: a
//! string). Everything is bounded in size, since it is stored and shown.

use serde_json::{Map, Value};

use crate::error::{ErrorCode, OAuthError};

/// At most this many entries in one request.
pub const MAX_ENTRIES: usize = 16;
/// At most this many bytes of JSON for the whole array.
pub const MAX_BYTES: usize = 16 * 1024;
/// At most this many levels of arrays and objects in one entry (the entry itself is one). The
/// entries are stored inside other documents (a pushed request, a code, a grant, an access
/// token's claims) that must read back under serde_json's nesting limit of 128.
pub const MAX_ENTRY_DEPTH: usize = 8;

/// The type a bank's account-information consent uses.
pub const ACCOUNT_INFORMATION: &str = "account_information";
/// The type of a payment consent.
pub const PAYMENT_INITIATION: &str = "payment_initiation";

/// The actions an `account_information` entry may ask for.
pub const ACCOUNT_ACTIONS: [&str; 4] = [
    "list_accounts",
    "read_balances",
    "read_transactions",
    "read_account_details",
];

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidAuthorizationDetails, description)
}

/// Parses and checks `authorization_details` (a JSON array, or its text as a form sends it)
/// against the types the client may use.
///
/// # Errors
/// `invalid_authorization_details` naming the entry and the rule.
pub fn validate(value: &Value, allowed_types: &[String]) -> Result<Vec<Value>, OAuthError> {
    let parsed;
    let value = match value {
        Value::String(text) => {
            if text.len() > MAX_BYTES {
                return Err(invalid(format!(
                    "authorization_details is longer than {MAX_BYTES} bytes"
                )));
            }
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|_| invalid("authorization_details is not JSON (RFC 9396 §2)"))?;
            &parsed
        }
        other => other,
    };
    let Value::Array(entries) = value else {
        return Err(invalid(
            "authorization_details must be a JSON array (RFC 9396 §2)",
        ));
    };
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "authorization_details must have 1 to {MAX_ENTRIES} entries"
        )));
    }
    if serde_json::to_vec(value).map_or(usize::MAX, |v| v.len()) > MAX_BYTES {
        return Err(invalid(format!(
            "authorization_details is larger than {MAX_BYTES} bytes"
        )));
    }
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| validate_entry(index, entry, allowed_types))
        .collect()
}

fn validate_entry(index: usize, entry: &Value, allowed: &[String]) -> Result<Value, OAuthError> {
    let Value::Object(members) = entry else {
        return Err(invalid(format!(
            "authorization_details[{index}] is not a JSON object"
        )));
    };
    let Some(kind) = members.get("type").and_then(Value::as_str) else {
        return Err(invalid(format!(
            "authorization_details[{index}] has no type (RFC 9396 §2)"
        )));
    };
    if !allowed.iter().any(|t| t == kind) {
        return Err(invalid(format!(
            "authorization_details[{index}]: type {kind} is not registered for the client (authorization_details_types)"
        )));
    }
    if crate::claims::nesting_depth(entry) > MAX_ENTRY_DEPTH {
        return Err(invalid(format!(
            "authorization_details[{index}] nests arrays and objects more than {MAX_ENTRY_DEPTH} levels deep"
        )));
    }
    let at = |field: &str| format!("authorization_details[{index}].{field}");
    common_fields(members, &at)?;
    match kind {
        ACCOUNT_INFORMATION => account_information(members, &at)?,
        PAYMENT_INITIATION => payment_initiation(members, &at)?,
        _ => {}
    }
    Ok(entry.clone())
}

fn string_array<'a>(
    members: &'a Map<String, Value>,
    name: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<Option<Vec<&'a str>>, OAuthError> {
    match members.get(name) {
        None => Ok(None),
        Some(Value::Array(items)) if items.len() <= 64 => items
            .iter()
            .map(|item| {
                item.as_str()
                    .filter(|s| !s.is_empty() && s.len() <= 256)
                    .ok_or_else(|| invalid(format!("{} must hold non-empty strings", at(name))))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid(format!(
            "{} must be an array of at most 64 strings",
            at(name)
        ))),
    }
}

/// RFC 9396 §2.2.
fn common_fields(
    members: &Map<String, Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), OAuthError> {
    for name in ["locations", "actions", "datatypes", "privileges"] {
        string_array(members, name, at)?;
    }
    if let Some(identifier) = members.get("identifier")
        && identifier
            .as_str()
            .is_none_or(|s| s.is_empty() || s.len() > 256)
    {
        return Err(invalid(format!(
            "{} must be a non-empty string",
            at("identifier")
        )));
    }
    if let Some(location) = string_array(members, "locations", at)?.and_then(|l| {
        l.into_iter()
            .find(|l| crate::resource::check_resource_identifier(l).is_err())
    }) {
        return Err(invalid(format!(
            "{}: {location} is not an https URI without fragment",
            at("locations")
        )));
    }
    Ok(())
}

fn allowed_members(
    members: &Map<String, Value>,
    allowed: &[&str],
    at: &dyn Fn(&str) -> String,
) -> Result<(), OAuthError> {
    match members.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!("{} is not a known member", at(unknown)))),
        None => Ok(()),
    }
}

fn account_information(
    members: &Map<String, Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), OAuthError> {
    allowed_members(
        members,
        &["type", "locations", "actions", "accounts", "expires_at"],
        at,
    )?;
    let actions = string_array(members, "actions", at)?
        .filter(|a| !a.is_empty())
        .ok_or_else(|| invalid(format!("{} is required", at("actions"))))?;
    if let Some(action) = actions.iter().find(|a| !ACCOUNT_ACTIONS.contains(a)) {
        return Err(invalid(format!(
            "{}: {action} is not one of {}",
            at("actions"),
            ACCOUNT_ACTIONS.join(", ")
        )));
    }
    string_array(members, "accounts", at)?;
    if let Some(expires) = members.get("expires_at")
        && expires.as_i64().is_none_or(|t| t <= 0)
    {
        return Err(invalid(format!(
            "{} must be a NumericDate",
            at("expires_at")
        )));
    }
    Ok(())
}

fn payment_initiation(
    members: &Map<String, Value>,
    at: &dyn Fn(&str) -> String,
) -> Result<(), OAuthError> {
    allowed_members(
        members,
        &[
            "type",
            "locations",
            "actions",
            "instructedAmount",
            "creditorName",
            "creditorAccount",
            "remittanceInformation",
        ],
        at,
    )?;
    let amount = members
        .get("instructedAmount")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{} is required", at("instructedAmount"))))?;
    allowed_members(amount, &["currency", "amount"], &|f| {
        at(&format!("instructedAmount.{f}"))
    })?;
    let currency = amount.get("currency").and_then(Value::as_str);
    if !currency.is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase())) {
        return Err(invalid(format!(
            "{} must be an ISO 4217 code such as EUR",
            at("instructedAmount.currency")
        )));
    }
    let value = amount.get("amount").and_then(Value::as_str);
    if !value.is_some_and(is_positive_decimal) {
        return Err(invalid(format!(
            "{} must be a positive decimal string such as \"123.50\"",
            at("instructedAmount.amount")
        )));
    }
    let creditor = members.get("creditorName").and_then(Value::as_str);
    if !creditor.is_some_and(|c| !c.trim().is_empty() && c.len() <= 140) {
        return Err(invalid(format!(
            "{} is required (1 to 140 characters)",
            at("creditorName")
        )));
    }
    let account = members
        .get("creditorAccount")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid(format!("{} is required", at("creditorAccount"))))?;
    allowed_members(account, &["iban"], &|f| at(&format!("creditorAccount.{f}")))?;
    if !account
        .get("iban")
        .and_then(Value::as_str)
        .is_some_and(is_iban)
    {
        return Err(invalid(format!(
            "{} is not a valid IBAN",
            at("creditorAccount.iban")
        )));
    }
    if let Some(info) = members.get("remittanceInformation")
        && info.as_str().is_none_or(|s| s.len() > 140)
    {
        return Err(invalid(format!(
            "{} must be a string of at most 140 characters",
            at("remittanceInformation")
        )));
    }
    Ok(())
}

/// `123`, `123.5`, `0.01`: digits, at most 2 decimals, not zero, at most 15 digits before the
/// point.
fn is_positive_decimal(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !whole.is_empty()
        && whole.len() <= 15
        && digits(whole)
        && (text.contains('.') != fraction.is_empty())
        && fraction.len() <= 2
        && digits(fraction)
        && text.bytes().any(|b| (b'1'..=b'9').contains(&b))
}

/// ISO 13616: country code, check digits, up to 30 alphanumerics, and the mod-97 check.
fn is_iban(text: &str) -> bool {
    let compact: String = text.chars().filter(|c| *c != ' ').collect();
    if !(15..=34).contains(&compact.len())
        || !compact
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        || !compact.bytes().take(2).all(|b| b.is_ascii_uppercase())
        || !compact.bytes().skip(2).take(2).all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let rearranged = compact.bytes().skip(4).chain(compact.bytes().take(4));
    let mut remainder: u32 = 0;
    for b in rearranged {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    remainder == 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn types() -> Vec<String> {
        vec![
            ACCOUNT_INFORMATION.into(),
            PAYMENT_INITIATION.into(),
            "customer_information".into(),
        ]
    }

    fn refused(value: Value, needle: &str) {
        let error = validate(&value, &types()).expect_err("must be refused");
        assert_eq!(error.error, ErrorCode::InvalidAuthorizationDetails);
        assert!(
            error.error_description.contains(needle),
            "{:?} should mention {needle:?}",
            error.error_description
        );
    }

    fn payment() -> Value {
        json!({
            "type": "payment_initiation",
            "locations": ["https://api.bank.example/payments"],
            "instructedAmount": {"currency": "EUR", "amount": "123.50"},
            "creditorName": "Merchant A",
            "creditorAccount": {"iban": "DE02120300000000202051"},
            "remittanceInformation": "Ref 42"
        })
    }

    #[test]
    fn rfc_9396_account_and_payment_entries_pass_and_come_back_as_sent() {
        let details = json!([
            {"type": "account_information", "actions": ["list_accounts", "read_balances"],
             "locations": ["https://api.bank.example/accounts"]},
            payment(),
            {"type": "customer_information", "actions": ["read"], "identifier": "c-1"}
        ]);
        let parsed = validate(&details, &types()).unwrap();
        assert_eq!(Value::Array(parsed.clone()), details);
        // A form sends the JSON as text.
        assert_eq!(
            validate(&Value::String(details.to_string()), &types()).unwrap(),
            parsed
        );
    }

    #[test]
    fn checklist_57_unknown_type_and_malformed_entries_are_invalid_authorization_details() {
        refused(json!([{"type": "loan_application"}]), "not registered");
        refused(json!({"type": "payment_initiation"}), "array");
        refused(json!([]), "1 to 16");
        refused(json!(["payment_initiation"]), "not a JSON object");
        refused(json!([{"actions": ["x"]}]), "no type");
        refused(Value::String("[{".into()), "not JSON");
        refused(
            json!([{"type": "customer_information", "locations": "https://x.example"}]),
            "locations",
        );
        refused(
            json!([{"type": "customer_information", "locations": ["http://x.example"]}]),
            "https",
        );
        refused(
            json!([{"type": "account_information", "actions": ["transfer_funds"]}]),
            "transfer_funds",
        );
        refused(
            json!([{"type": "account_information"}]),
            "actions is required",
        );
        refused(
            json!([{"type": "account_information", "actions": ["read_balances"], "admin": true}]),
            "admin",
        );
    }

    /// Found with the `authorization_details` fuzz target's storage invariant: an entry nested
    /// 120 levels deep was accepted, and the pushed request holding it could then not be read back from storage.
    #[test]
    fn deeply_nested_entries_are_refused() {
        let mut deep = json!("leaf");
        for _ in 0..120 {
            deep = json!([deep]);
        }
        refused(
            json!([{"type": "customer_information", "extra": deep}]),
            "levels deep",
        );
        let mut shallow = json!("leaf");
        for _ in 0..MAX_ENTRY_DEPTH - 1 {
            shallow = json!([shallow]);
        }
        assert!(
            validate(
                &json!([{"type": "customer_information", "extra": shallow}]),
                &types()
            )
            .is_ok()
        );
    }

    #[test]
    fn payment_amounts_currencies_and_ibans_are_checked() {
        let with = |path: &[&str], value: Value| {
            let mut entry = payment();
            let mut target = &mut entry;
            for step in &path[..path.len() - 1] {
                target = &mut target[*step];
            }
            target[path[path.len() - 1]] = value;
            json!([entry])
        };
        for amount in ["0", "0.00", "-5", "1.234", "1e3", "12.", ".5", "abc", ""] {
            refused(
                with(&["instructedAmount", "amount"], json!(amount)),
                "positive decimal",
            );
        }
        for amount in ["1", "0.01", "123.5", "999999999999999.99"] {
            assert!(
                validate(
                    &with(&["instructedAmount", "amount"], json!(amount)),
                    &types()
                )
                .is_ok(),
                "{amount}"
            );
        }
        refused(
            with(&["instructedAmount", "amount"], json!(12.5)),
            "positive decimal",
        );
        refused(
            with(&["instructedAmount", "currency"], json!("eur")),
            "ISO 4217",
        );
        refused(
            with(
                &["creditorAccount", "iban"],
                json!("DE02120300000000202052"),
            ),
            "IBAN",
        );
        assert!(
            validate(
                &with(
                    &["creditorAccount", "iban"],
                    json!("GB33BUKB20201555555555")
                ),
                &types()
            )
            .is_ok()
        );
        refused(with(&["creditorName"], json!("  ")), "creditorName");
        refused(
            with(&["remittanceInformation"], json!("x".repeat(141))),
            "140",
        );
        let mut missing = payment();
        missing.as_object_mut().unwrap().remove("instructedAmount");
        refused(json!([missing]), "instructedAmount is required");
    }
}

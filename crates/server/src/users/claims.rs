//! The claims an operator may give a user: the OIDC Core §5.1 standard claims, each of its JSON
//! type. They are released to clients by consent, so anything else (a bank's own account data,
//! a `sub` that is not the user's id) is refused rather than stored.

use portcullis_core::error::{ErrorCode, OAuthError};
use serde_json::{Map, Value};

/// The OIDC Core §5.1 standard claims an operator may set, with the JSON type each must have.
/// `sub` is not among them: it is the user's id, never settable.
const STANDARD_CLAIMS: [(&str, ClaimType); 19] = [
    ("name", ClaimType::String),
    ("given_name", ClaimType::String),
    ("family_name", ClaimType::String),
    ("middle_name", ClaimType::String),
    ("nickname", ClaimType::String),
    ("preferred_username", ClaimType::String),
    ("profile", ClaimType::String),
    ("picture", ClaimType::String),
    ("website", ClaimType::String),
    ("email", ClaimType::String),
    ("email_verified", ClaimType::Boolean),
    ("gender", ClaimType::String),
    ("birthdate", ClaimType::String),
    ("zoneinfo", ClaimType::String),
    ("locale", ClaimType::String),
    ("phone_number", ClaimType::String),
    ("phone_number_verified", ClaimType::Boolean),
    ("address", ClaimType::Address),
    ("updated_at", ClaimType::Timestamp),
];

/// The members of the OIDC Core §5.1.1 address claim, all strings.
const ADDRESS_MEMBERS: [&str; 6] = [
    "formatted",
    "street_address",
    "locality",
    "region",
    "postal_code",
    "country",
];

#[derive(Debug, Clone, Copy)]
enum ClaimType {
    String,
    Boolean,
    /// A JSON object of [`ADDRESS_MEMBERS`] (§5.1.1).
    Address,
    /// A non-negative JSON number: seconds since 1970-01-01T00:00:00Z.
    Timestamp,
}

/// Checks that every claim is an OIDC Core §5.1 standard claim of the right JSON type.
///
/// # Errors
/// `invalid_request` naming the first offending claim and the rule.
pub fn validate_claims(claims: &Map<String, Value>) -> Result<(), OAuthError> {
    let error = |description: String| OAuthError::new(ErrorCode::InvalidRequest, description);
    for (name, value) in claims {
        if name == "sub" {
            return Err(error(
                "claims.sub cannot be set: it is the user's identifier (OIDC Core §5.1)".into(),
            ));
        }
        let Some((_, kind)) = STANDARD_CLAIMS.iter().find(|(known, _)| known == name) else {
            return Err(error(format!(
                "claims.{name} is not an OIDC Core §5.1 standard claim"
            )));
        };
        let rule = |text: &str| Some(format!("claims.{name} {text}"));
        let problem = match (kind, value) {
            (ClaimType::String, Value::String(_)) | (ClaimType::Boolean, Value::Bool(_)) => None,
            (ClaimType::String, _) => rule("must be a string (OIDC Core §5.1)"),
            (ClaimType::Boolean, _) => rule("must be a boolean (OIDC Core §5.1)"),
            (ClaimType::Timestamp, Value::Number(n))
                if n.as_f64().is_some_and(|seconds| seconds >= 0.0) =>
            {
                None
            }
            (ClaimType::Timestamp, _) => rule(
                "must be a non-negative number of seconds since 1970-01-01T00:00:00Z (OIDC Core §5.1)",
            ),
            (ClaimType::Address, Value::Object(members)) => address_problem(members),
            (ClaimType::Address, _) => rule("must be a JSON object (OIDC Core §5.1.1)"),
        };
        if let Some(problem) = problem {
            return Err(error(problem));
        }
    }
    Ok(())
}

/// The first problem with the members of an `address` claim (OIDC Core §5.1.1).
fn address_problem(members: &Map<String, Value>) -> Option<String> {
    members.iter().find_map(|(member, value)| {
        if !ADDRESS_MEMBERS.contains(&member.as_str()) {
            Some(format!(
                "claims.address has an unknown member {member}: the members are {} (OIDC Core §5.1.1)",
                ADDRESS_MEMBERS.join(", ")
            ))
        } else if value.is_string() {
            None
        } else {
            Some(format!(
                "claims.address.{member} must be a string (OIDC Core §5.1.1)"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn refused(value: Value) -> String {
        validate_claims(&claims(value))
            .unwrap_err()
            .error_description
    }

    #[test]
    fn every_standard_claim_of_the_right_type_is_accepted() {
        let all = json!({
            "name": "Alice Example", "given_name": "Alice", "family_name": "Example",
            "middle_name": "B", "nickname": "al", "preferred_username": "alice",
            "profile": "https://bank.example/alice", "picture": "https://bank.example/a.png",
            "website": "https://alice.example", "email": "alice@bank.example",
            "email_verified": true, "gender": "female", "birthdate": "1990-01-31",
            "zoneinfo": "Europe/London", "locale": "en-GB", "phone_number": "+44 20 7946 0000",
            "phone_number_verified": false,
            "address": {"formatted": "1 High St\nLondon", "street_address": "1 High St",
                        "locality": "London", "region": "Greater London",
                        "postal_code": "EC1A 1AA", "country": "GB"},
            "updated_at": 1_800_000_000,
        });
        assert_eq!(all.as_object().unwrap().len(), STANDARD_CLAIMS.len());
        validate_claims(&claims(all)).unwrap();
        validate_claims(&Map::new()).unwrap();
        validate_claims(&claims(json!({"updated_at": 1.5}))).unwrap();
    }

    #[test]
    fn sub_is_never_settable() {
        let description = refused(json!({"sub": "someone-else"}));
        assert!(
            description.starts_with("claims.sub cannot be set"),
            "{description}"
        );
    }

    #[test]
    fn claims_outside_oidc_core_5_1_are_refused_by_name() {
        for name in ["account_number", "Email", "name#ja-Kana-JP", "password"] {
            let description = refused(json!({ name: "x" }));
            assert_eq!(
                description,
                format!("claims.{name} is not an OIDC Core §5.1 standard claim")
            );
        }
    }

    #[test]
    fn claims_of_the_wrong_type_are_refused_naming_the_type() {
        for (value, expected) in [
            (json!({"email": 42}), "claims.email must be a string"),
            (json!({"name": null}), "claims.name must be a string"),
            (
                json!({"email_verified": "true"}),
                "claims.email_verified must be a boolean",
            ),
            (
                json!({"phone_number_verified": 1}),
                "claims.phone_number_verified must be a boolean",
            ),
            (
                json!({"address": "1 High St"}),
                "claims.address must be a JSON object",
            ),
            (
                json!({"updated_at": "2027-01-15"}),
                "claims.updated_at must be a non-negative number",
            ),
            (
                json!({"updated_at": -1}),
                "claims.updated_at must be a non-negative number",
            ),
            (
                json!({"address": {"street": "1 High St"}}),
                "claims.address has an unknown member street",
            ),
            (
                json!({"address": {"country": 44}}),
                "claims.address.country must be a string",
            ),
        ] {
            let description = refused(value.clone());
            assert!(description.starts_with(expected), "{value}: {description}");
        }
    }
}

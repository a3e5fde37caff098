//! The claims userinfo returns (OIDC Core §5.3, §5.4): `sub`, the claims of the `profile`,
//! `email`, `address` and `phone` scopes that were granted, and those the `claims` request asked
//! for under `userinfo`.

use serde_json::{Map, Value};

/// OIDC Core §5.4: the claims each scope stands for.
#[must_use]
pub fn scope_claims(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &[
            "name",
            "family_name",
            "given_name",
            "middle_name",
            "nickname",
            "preferred_username",
            "profile",
            "picture",
            "website",
            "gender",
            "birthdate",
            "zoneinfo",
            "locale",
            "updated_at",
        ],
        "email" => &["email", "email_verified"],
        "address" => &["address"],
        "phone" => &["phone_number", "phone_number_verified"],
        _ => &[],
    }
}

/// The userinfo response for `subject` with `scopes` granted.
#[must_use]
pub fn claims(
    subject: &str,
    scopes: &[String],
    requested: Option<&Map<String, Value>>,
    user_claims: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), subject.into());
    let wanted = scopes
        .iter()
        .flat_map(|s| scope_claims(s).iter().map(|c| (*c).to_owned()))
        .chain(requested.into_iter().flat_map(|r| r.keys().cloned()));
    for name in wanted {
        if name == "sub" {
            continue;
        }
        if let Some(value) = user_claims.get(&name) {
            out.insert(name, value.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn oidc_core_5_4_scopes_and_requested_claims_only() {
        let user = json!({
            "name": "Alice", "email": "a@bank.example", "email_verified": true,
            "phone_number": "+44 20 7946 0000", "sub": "forged"
        });
        let requested = json!({"phone_number": null});
        let out = claims(
            "user-1",
            &["openid".into(), "email".into()],
            requested.as_object(),
            user.as_object().unwrap(),
        );
        assert_eq!(
            Value::Object(out),
            json!({"sub": "user-1", "email": "a@bank.example", "email_verified": true, "phone_number": "+44 20 7946 0000"})
        );
    }
}

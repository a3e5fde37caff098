//! Reading JWT claims that every verifier here shares.

use serde_json::{Map, Value};
use time::OffsetDateTime;

/// A NumericDate claim (RFC 7519 §2): `Ok(None)` when absent, `Err(())` when present but not an
/// integer number of seconds that is a representable date. Callers turn the error into their own
/// protocol error naming the claim.
#[allow(clippy::result_unit_err)]
pub fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<OffsetDateTime>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => v
            .as_i64()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .map(Some)
            .ok_or(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_dates_are_integers_in_range() {
        let claims = json!({"iat": 1_800_000_000, "exp": "soon", "nbf": 1.5, "big": i64::MAX});
        let claims = claims.as_object().unwrap();
        assert_eq!(
            numeric_date(claims, "iat"),
            Ok(Some(
                OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
            ))
        );
        assert_eq!(numeric_date(claims, "missing"), Ok(None));
        for bad in ["exp", "nbf", "big"] {
            assert_eq!(numeric_date(claims, bad), Err(()));
        }
    }
}

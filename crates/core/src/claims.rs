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

/// How deeply a JSON value nests: 0 for a scalar, 1 for an array or object of scalars, and so
/// on. Whatever the server stores from a request must nest well under serde_json's limit of 128
/// once it sits inside the stored document, or it is accepted and then cannot be read back
/// (found with the fuzz targets' storage invariant). Iterative, so any value is safe to measure.
#[must_use]
pub fn nesting_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 1)];
    while let Some((value, depth)) = pending.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(depth);
                pending.extend(items.iter().map(|child| (child, depth + 1)));
            }
            Value::Object(members) => {
                deepest = deepest.max(depth);
                pending.extend(members.values().map(|child| (child, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
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

    #[test]
    fn nesting_depth_counts_arrays_and_objects() {
        assert_eq!(nesting_depth(&json!("x")), 0);
        assert_eq!(nesting_depth(&json!([])), 1);
        assert_eq!(nesting_depth(&json!({"a": [1, {"b": null}], "c": 2})), 3);
        let mut deep = json!(1);
        for _ in 0..500 {
            deep = json!([deep]);
        }
        assert_eq!(nesting_depth(&deep), 500);
    }
}

//! `application/x-www-form-urlencoded` request bodies as OAuth reads them: a parameter may appear
//! once (RFC 6749 §3.1, §3.2), and a parameter sent without a value is treated as omitted.

use std::collections::HashMap;

use axum::body::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use portcullis_core::error::{ErrorCode, OAuthError};

/// The most parameters a form may carry.
const MAX_PARAMETERS: usize = 64;

/// A parsed form.
#[derive(Clone, Default)]
pub struct Form {
    values: HashMap<String, String>,
    repeated: HashMap<String, Vec<String>>,
}

impl std::fmt::Debug for Form {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Values carry secrets, assertions and codes: only the names are shown.
        let mut names: Vec<&str> = self
            .values
            .keys()
            .chain(self.repeated.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        f.debug_struct("Form").field("names", &names).finish()
    }
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, description)
}

impl Form {
    /// Parses a request body, checking the content type.
    ///
    /// # Errors
    /// `invalid_request` for another content type, a repeated parameter or too many parameters.
    pub fn from_request(headers: &HeaderMap, body: &Bytes) -> Result<Self, OAuthError> {
        Self::from_request_with(headers, body, &[])
    }

    /// As [`Form::from_request`], letting the parameters in `repeatable` appear more than once
    /// (RFC 8707 `resource`); read them with [`Form::get_all`].
    ///
    /// # Errors
    /// As [`Form::from_request`].
    pub fn from_request_with(
        headers: &HeaderMap,
        body: &Bytes,
        repeatable: &[&str],
    ) -> Result<Self, OAuthError> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if !content_type
            .is_some_and(|t| t.eq_ignore_ascii_case("application/x-www-form-urlencoded"))
        {
            return Err(invalid(
                "the request body must be application/x-www-form-urlencoded (RFC 6749 §3.2)",
            ));
        }
        Self::parse_with(body, repeatable)
    }

    /// Parses form-encoded bytes.
    ///
    /// # Errors
    /// `invalid_request` for a repeated parameter or too many parameters.
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        Self::parse_with(body, &[])
    }

    fn parse_with(body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        let mut values = HashMap::new();
        let mut repeated: HashMap<String, Vec<String>> = HashMap::new();
        for (count, (name, value)) in url::form_urlencoded::parse(body).enumerate() {
            if count >= MAX_PARAMETERS {
                return Err(invalid("too many parameters"));
            }
            if value.is_empty() {
                continue;
            }
            if repeatable.contains(&name.as_ref()) {
                repeated
                    .entry(name.into_owned())
                    .or_default()
                    .push(value.into_owned());
                continue;
            }
            if values
                .insert(name.to_string(), value.into_owned())
                .is_some()
            {
                return Err(invalid(format!(
                    "parameter {name} is repeated (RFC 6749 §3.2)"
                )));
            }
        }
        Ok(Self { values, repeated })
    }

    /// Every value of a repeatable parameter, in order.
    #[must_use]
    pub fn get_all(&self, name: &str) -> &[String] {
        self.repeated.get(name).map_or(&[], Vec::as_slice)
    }

    /// A parameter's value.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the parameter was sent (with a value).
    #[must_use]
    pub fn has(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Every parameter as JSON: single ones as strings, repeatable ones as arrays of strings, so
    /// that a form and a request object's claims read the same way.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map: serde_json::Map<String, serde_json::Value> = self
            .values
            .iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect();
        for (name, values) in &self.repeated {
            map.insert(name.clone(), values.clone().into());
        }
        map
    }

    /// A parameter that must be present.
    ///
    /// # Errors
    /// `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| invalid(format!("parameter {name} is required")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6749_3_2_repeated_parameters_are_refused_and_empty_ones_omitted() {
        let form = Form::parse(b"grant_type=client_credentials&scope=&x=a%20b").unwrap();
        assert_eq!(form.get("grant_type"), Some("client_credentials"));
        assert_eq!(form.get("scope"), None);
        assert_eq!(form.get("x"), Some("a b"));
        let e = Form::parse(b"scope=a&scope=b").unwrap_err();
        assert_eq!(e.error, ErrorCode::InvalidRequest);
        assert!(e.error_description.contains("scope"));
        let form = Form::parse_with(b"resource=a&resource=b", &["resource"]).unwrap();
        assert_eq!(form.get_all("resource"), ["a", "b"]);
        assert!(form.get_all("scope").is_empty());
        let many: String = (0..65).map(|i| format!("p{i}=v&")).collect();
        assert!(Form::parse(many.as_bytes()).is_err());
    }

    #[test]
    fn the_content_type_must_be_a_form_and_debug_hides_values() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(Form::from_request(&headers, &Bytes::from_static(b"a=b")).is_err());
        headers.insert(
            CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=UTF-8"
                .parse()
                .unwrap(),
        );
        let form =
            Form::from_request(&headers, &Bytes::from_static(b"client_secret=s3cr3t")).unwrap();
        assert!(!format!("{form:?}").contains("s3cr3t"));
    }
}

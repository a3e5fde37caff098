//! The form bodies of `/par` and `/token` (`application/x-www-form-urlencoded`), through the
//! server's own parser ([`portcullis_server::form::Form`]) and the parsing that follows it:
//! the client the request names, then the authorization request or the token request's
//! parameters.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue};
use portcullis_core::assertion::{AssertionPolicy, verify_client_assertion};
use portcullis_core::authz::{code, details, request_object};
use portcullis_core::client::ClientId;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::resource::{check_resource_identifier, is_scope_token};
use portcullis_jose::SigningAlg;
use portcullis_server::client_auth::presented_client;
use portcullis_server::form::Form;
use portcullis_server::routes::token::split_scope;
use serde_json::Value;
use time::Duration;

use crate::fixture::{self, CODE_CHALLENGE, ISSUER, now};
use crate::jwt::authorization_request;

/// Parses `body` as the server does a form request, with `resource` repeatable.
///
/// Invariants: every value is non-empty; the form written out again parses to the same form.
fn form(body: &[u8]) -> Option<Form> {
    let mut headers = HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    let parsed = Form::from_request_with(&headers, &Bytes::copy_from_slice(body), &["resource"]);
    let parsed = parsed.ok()?;
    let json = parsed.to_json();
    let mut written = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in &json {
        match value {
            Value::String(v) => {
                assert!(!v.is_empty(), "empty value kept for {name}");
                written.append_pair(name, v);
            }
            Value::Array(values) => {
                for v in values.iter().filter_map(Value::as_str) {
                    assert!(!v.is_empty(), "empty value kept for {name}");
                    written.append_pair(name, v);
                }
            }
            _ => {}
        }
    }
    let again = Form::from_request_with(
        &headers,
        &Bytes::from(written.finish().into_bytes()),
        &["resource"],
    );
    assert!(
        again.is_ok_and(|again| again.to_json() == json),
        "a form written out again does not parse to the same form"
    );
    Some(parsed)
}

/// A pushed authorization request's body: the form, the client it names, its request object
/// when it carries one, and the authorization request checked for every profile.
///
/// Invariants: those of the form, and an accepted request is stored and reads back.
pub fn par_form(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let Some(form) = form(data) else { return };
    let _ = presented_client(&form, None);
    let parameters = match form.get("request") {
        Some(jwt) => {
            let policy = request_object::RequestObjectPolicy {
                algorithms: SigningAlg::ALL.to_vec(),
                issuer: ISSUER.into(),
                max_future_skew: Duration::seconds(10),
            };
            match request_object::verify(jwt, &f.client_id, &f.client_jwks, &policy, now()) {
                Ok(verified) => verified.parameters,
                Err(_) => return,
            }
        }
        None => form.to_json(),
    };
    authorization_request(f, &parameters);
}

/// A token request: an optional first line is the `Authorization` header's value, the rest the
/// form. The form, the client it names (HTTP Basic, `client_secret`, or an assertion whose `sub`
/// is read unverified, then verified), `grant_type`, `scope`, `resource`,
/// `authorization_details`, the PKCE `code_verifier`, and the hashing of `code` and
/// `refresh_token`.
///
/// Invariants: those of the form; a client named by the request is a valid `client_id`; split
/// scopes are scope tokens without repeats.
pub fn token_form(data: &[u8]) {
    let Some(f) = fixture::fixture() else { return };
    let (authorization, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (data.get(..at), data.get(at + 1..).unwrap_or_default()),
        None => (None, data),
    };
    let authorization = authorization.and_then(|a| HeaderValue::from_bytes(a).ok());
    let authorization = authorization.as_ref().and_then(|a| a.to_str().ok());
    let Some(form) = form(body) else { return };

    if let Ok(client_id) = presented_client(&form, authorization) {
        assert!(
            ClientId::parse(client_id.as_str()).is_ok(),
            "an invalid client_id was accepted"
        );
        if let Some(assertion) = form.get("client_assertion")
            && client_id == f.client_id
        {
            let _ = verify_client_assertion(
                assertion,
                &client_id,
                &f.client_jwks,
                &AssertionPolicy::fapi(ISSUER),
                now(),
            );
        }
    }
    let _ = form.require("grant_type");
    if let Some(scope) = form.get("scope")
        && let Ok(scopes) = split_scope(scope)
    {
        assert!(
            scopes.iter().all(|s| is_scope_token(s)),
            "not a scope token"
        );
        let unique: std::collections::BTreeSet<&String> = scopes.iter().collect();
        assert_eq!(unique.len(), scopes.len(), "a scope repeated");
    }
    for resource in form.get_all("resource") {
        let _ = check_resource_identifier(resource);
    }
    if let Some(text) = form.get("authorization_details") {
        let types: Vec<String> = fixture::DETAILS_TYPES.map(str::to_owned).to_vec();
        let _ = details::validate(&Value::String(text.to_owned()), &types);
    }
    let _ = code::check_pkce(form.get("code_verifier"), CODE_CHALLENGE);
    for secret in ["code", "refresh_token", "client_secret"] {
        if let Some(value) = form.get(secret) {
            let _ = SecretHash::of(value);
        }
    }
}

//! The authorization request a client pushes (RFC 9126) — as form parameters or as the claims of
//! a verified request object (RFC 9101) — checked against the client's registration and the
//! FAPI 2.0 rules, and kept as a typed value until the authorization completes.
//!
//! The input is a JSON object so that both sources read the same way: a form gives strings (and
//! an array for a repeated `resource`), a request object gives JSON values (`max_age` a number,
//! `claims` an object, `authorization_details` an array). Unknown parameters are ignored (RFC
//! 6749 §3.1); known ones with the wrong shape are errors naming the rule.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::details;
use crate::client::metadata::{ClientMetadata, GrantType};
use crate::client::{ClientId, ClientProfile};
use crate::error::{ErrorCode, OAuthError};
use crate::resource::{check_resource_identifier, is_scope_token};

/// Longest `state` kept (FAPI2 SP note 4: it may exceed 1000 characters).
pub const MAX_STATE: usize = 4096;
/// Longest `nonce` kept; never truncated (SP 5.3.2.2-14: at least 64).
pub const MAX_NONCE: usize = 2048;
/// At most this many `resource` values.
pub const MAX_RESOURCES: usize = 16;
/// Longest OIDC `claims` request, as JSON text.
pub const MAX_CLAIMS_BYTES: usize = 8192;
/// At most this many levels of objects and arrays in the `claims` request: it is stored inside
/// the pushed request, which must read back under serde_json's nesting limit of 128.
pub const MAX_CLAIMS_DEPTH: usize = 8;

/// OIDC Core §3.1.2.1 `prompt` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// No interaction: fail if the customer would have to act.
    None,
    /// Log in again even with a session.
    Login,
    /// Ask for consent again.
    Consent,
    /// Let the customer choose an account.
    SelectAccount,
}

/// How the authorization response goes back (OAuth 2.0 Multiple Response Types, JARM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseMode {
    /// Query parameters on the redirect URI.
    #[serde(rename = "query")]
    Query,
    /// A signed JWT in the `response` query parameter (JARM `jwt` for the code flow).
    #[serde(rename = "jwt")]
    Jwt,
    /// The same, spelled out.
    #[serde(rename = "query.jwt")]
    QueryJwt,
}

impl ResponseMode {
    /// Whether the response is a signed JWT (JARM).
    #[must_use]
    pub fn is_jarm(self) -> bool {
        matches!(self, ResponseMode::Jwt | ResponseMode::QueryJwt)
    }
}

/// FAPI Grant Management `grant_management_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantAction {
    /// A new grant.
    Create,
    /// Add to the grant named by `grant_id`.
    Merge,
    /// Replace the grant named by `grant_id`.
    Replace,
}

/// A checked authorization request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    /// The client.
    pub client_id: ClientId,
    /// One of the client's registered redirect URIs, exactly.
    pub redirect_uri: String,
    /// Requested scopes, registered for the client, in request order without repeats.
    pub scopes: Vec<String>,
    /// Echoed to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Echoed in the ID token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// PKCE S256 challenge (RFC 7636 §4.2).
    pub code_challenge: String,
    /// OIDC `prompt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt: Vec<Prompt>,
    /// OIDC `max_age`, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
    /// OIDC `acr_values`, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub acr_values: Vec<String>,
    /// OIDC `claims` request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claims: Option<Map<String, Value>>,
    /// RFC 8707 resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// RFC 9396 entries, each checked against its type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details: Vec<Value>,
    /// How the response goes back.
    pub response_mode: ResponseMode,
    /// RFC 9449 §10: the DPoP key the code will be bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dpop_jkt: Option<String>,
    /// OIDC `login_hint`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
    /// Grant Management: the grant to merge into or replace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_id: Option<String>,
    /// Grant Management action.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grant_management_action: Option<GrantAction>,
}

impl AuthorizationRequest {
    /// Whether this is an OpenID Connect request.
    #[must_use]
    pub fn is_openid(&self) -> bool {
        self.scopes.iter().any(|s| s == "openid")
    }

    /// The request as stored.
    #[must_use]
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }

    /// Reads a stored request.
    ///
    /// # Errors
    /// A description of what does not read.
    pub fn from_map(map: Map<String, Value>) -> Result<Self, String> {
        serde_json::from_value(Value::Object(map)).map_err(|e| e.to_string())
    }
}

fn invalid(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequest, description)
}

/// A string parameter: absent, or a non-empty string.
fn string<'a>(params: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, OAuthError> {
    match params.get(name) {
        None => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(Value::String(_)) => Err(invalid(format!("{name} is empty"))),
        Some(_) => Err(invalid(format!("{name} must be a string"))),
    }
}

fn bounded<'a>(
    params: &'a Map<String, Value>,
    name: &str,
    max: usize,
) -> Result<Option<&'a str>, OAuthError> {
    match string(params, name)? {
        Some(s) if s.len() > max => Err(invalid(format!(
            "{name} is longer than {max} bytes (it is never truncated)"
        ))),
        other => Ok(other),
    }
}

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Checks a pushed authorization request of `client_id` (already authenticated) against its
/// registration.
///
/// # Errors
/// The RFC error naming the rule: `invalid_request`, `unsupported_response_type`,
/// `unauthorized_client`, `invalid_scope`, `invalid_target`, `invalid_authorization_details`.
pub fn check(
    params: &Map<String, Value>,
    client_id: &ClientId,
    metadata: &ClientMetadata,
    profile: ClientProfile,
) -> Result<AuthorizationRequest, OAuthError> {
    // Checklist #47: request_uri belongs to /authorize, never to the pushed request.
    if params.contains_key("request_uri") {
        return Err(invalid(
            "request_uri must not be sent to the pushed authorization request endpoint (RFC 9126 §2.1)",
        ));
    }
    if let Some(id) = string(params, "client_id")?
        && id != client_id.as_str()
    {
        return Err(invalid(
            "client_id is not the authenticated client (RFC 9126 §2.1)",
        ));
    }

    // Checklist #52: the code flow only.
    match string(params, "response_type")? {
        None => return Err(invalid("response_type is required")),
        Some("code") => {}
        Some(other) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                format!("response_type {other} is not supported: code only (FAPI2 SP 5.3.2.2-1)"),
            ));
        }
    }
    if !metadata.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client is not registered for the authorization_code grant",
        ));
    }

    // Checklist #53, #54: required, and exactly a registered one.
    let redirect_uri = string(params, "redirect_uri")?
        .ok_or_else(|| invalid("redirect_uri is required (FAPI2 SP 5.3.2.2-6)"))?;
    if !metadata.redirect_uris.iter().any(|r| r == redirect_uri) {
        return Err(invalid(
            "redirect_uri is not one the client registered (exact match, RFC 9700 §4.1.3)",
        ));
    }

    // Checklist #9, #10: PKCE with S256; an omitted method means plain.
    let code_challenge = string(params, "code_challenge")?.ok_or_else(|| {
        invalid("code_challenge is required: PKCE with S256 (FAPI2 SP 5.3.2.2-5)")
    })?;
    match string(params, "code_challenge_method")? {
        Some("S256") => {}
        Some(other) => {
            return Err(invalid(format!(
                "code_challenge_method {other} is not allowed: S256 only (FAPI2 SP 5.3.2.2-5)"
            )));
        }
        None => {
            return Err(invalid(
                "code_challenge_method is required and must be S256: omitted means plain (RFC 7636 §4.3, FAPI2 SP 5.3.2.2-5)",
            ));
        }
    }
    if code_challenge.len() != 43 || !is_base64url(code_challenge) {
        return Err(invalid(
            "code_challenge must be the 43-character base64url SHA-256 of the verifier (RFC 7636 §4.2)",
        ));
    }

    let scopes = scopes(params, metadata)?;
    let state = bounded(params, "state", MAX_STATE)?.map(str::to_owned);
    let nonce = bounded(params, "nonce", MAX_NONCE)?.map(str::to_owned);
    let prompt = prompt(params)?;
    let max_age = max_age(params)?;
    let acr_values = match bounded(params, "acr_values", 1024)? {
        None => Vec::new(),
        Some(values) => values
            .split(' ')
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect(),
    };
    let claims = claims(params)?;
    let resources = resources(params)?;
    let authorization_details = match params.get("authorization_details") {
        None => Vec::new(),
        Some(value) => details::validate(value, &metadata.authorization_details_types)?,
    };
    let response_mode = match string(params, "response_mode")? {
        None if profile == ClientProfile::Fapi2MessageSigning
            || metadata.authorization_signed_response_alg.is_some() =>
        {
            ResponseMode::Jwt
        }
        None | Some("query") => ResponseMode::Query,
        Some("jwt") => ResponseMode::Jwt,
        Some("query.jwt") => ResponseMode::QueryJwt,
        Some(other) => {
            return Err(invalid(format!(
                "response_mode {other} is not supported: query, jwt or query.jwt"
            )));
        }
    };
    if profile == ClientProfile::Fapi2MessageSigning && !response_mode.is_jarm() {
        return Err(invalid(
            "fapi2-message-signing clients receive signed authorization responses: response_mode jwt (JARM)",
        ));
    }
    let dpop_jkt = match string(params, "dpop_jkt")? {
        Some(jkt) if jkt.len() == 43 && is_base64url(jkt) => Some(jkt.to_owned()),
        Some(_) => {
            return Err(invalid(
                "dpop_jkt must be a base64url SHA-256 JWK thumbprint (RFC 9449 §10)",
            ));
        }
        None => None,
    };
    let login_hint = bounded(params, "login_hint", 256)?.map(str::to_owned);
    let (grant_id, grant_management_action) = grant_management(params)?;
    if scopes.is_empty() && authorization_details.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::InvalidScope,
            "the request asks for nothing: send scope or authorization_details",
        ));
    }
    Ok(AuthorizationRequest {
        client_id: client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scopes,
        state,
        nonce,
        code_challenge: code_challenge.to_owned(),
        prompt,
        max_age,
        acr_values,
        claims,
        resources,
        authorization_details,
        response_mode,
        dpop_jkt,
        login_hint,
        grant_id,
        grant_management_action,
    })
}

fn scopes(
    params: &Map<String, Value>,
    metadata: &ClientMetadata,
) -> Result<Vec<String>, OAuthError> {
    let Some(scope) = bounded(params, "scope", 4096)? else {
        return Ok(Vec::new());
    };
    let registered: BTreeSet<&str> = metadata
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect();
    let mut seen = BTreeSet::new();
    let mut scopes = Vec::new();
    for s in scope.split(' ').filter(|s| !s.is_empty()) {
        if !is_scope_token(s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope is not a space-separated list of scope tokens (RFC 6749 §3.3)",
            ));
        }
        if !registered.contains(s) {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                format!("scope {s} is not registered for the client"),
            ));
        }
        if seen.insert(s) {
            scopes.push(s.to_owned());
        }
    }
    Ok(scopes)
}

fn prompt(params: &Map<String, Value>) -> Result<Vec<Prompt>, OAuthError> {
    let Some(text) = bounded(params, "prompt", 256)? else {
        return Ok(Vec::new());
    };
    let mut prompts = BTreeSet::new();
    for value in text.split(' ').filter(|v| !v.is_empty()) {
        prompts.insert(match value {
            "none" => Prompt::None,
            "login" => Prompt::Login,
            "consent" => Prompt::Consent,
            "select_account" => Prompt::SelectAccount,
            other => {
                return Err(invalid(format!(
                    "prompt {other} is not supported: none, login, consent or select_account"
                )));
            }
        });
    }
    // Checklist #55.
    if prompts.contains(&Prompt::None) && prompts.len() > 1 {
        return Err(invalid(
            "prompt=none cannot be combined with other values (OIDC Core §3.1.2.1)",
        ));
    }
    Ok(prompts.into_iter().collect())
}

fn max_age(params: &Map<String, Value>) -> Result<Option<u32>, OAuthError> {
    let refuse = || invalid("max_age must be a non-negative integer number of seconds");
    match params.get("max_age") {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(refuse),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().map(Some).map_err(|_| refuse())
        }
        Some(_) => Err(refuse()),
    }
}

fn claims(params: &Map<String, Value>) -> Result<Option<Map<String, Value>>, OAuthError> {
    let refuse = |why: &str| invalid(format!("claims {why} (OIDC Core §5.5)"));
    let value = match params.get("claims") {
        None => return Ok(None),
        Some(Value::String(text)) if text.len() <= MAX_CLAIMS_BYTES => {
            serde_json::from_str::<Value>(text).map_err(|_| refuse("is not JSON"))?
        }
        Some(Value::String(_)) => {
            return Err(refuse(&format!("is longer than {MAX_CLAIMS_BYTES} bytes")));
        }
        // In a request object: the same bounds as the text a form sends.
        Some(other) => {
            if serde_json::to_vec(other).map_or(usize::MAX, |v| v.len()) > MAX_CLAIMS_BYTES {
                return Err(refuse(&format!("is longer than {MAX_CLAIMS_BYTES} bytes")));
            }
            other.clone()
        }
    };
    // Found with the `par_form` fuzz target's storage invariant: a deeply nested request was accepted, and then the
    // pushed request holding it could not be read back from storage.
    if crate::claims::nesting_depth(&value) > MAX_CLAIMS_DEPTH {
        return Err(refuse(&format!(
            "nests objects and arrays more than {MAX_CLAIMS_DEPTH} levels deep"
        )));
    }
    let Value::Object(request) = value else {
        return Err(refuse("must be a JSON object"));
    };
    for (member, requested) in &request {
        if member != "userinfo" && member != "id_token" {
            continue;
        }
        let Value::Object(entries) = requested else {
            return Err(refuse(&format!("{member} must be an object")));
        };
        for (claim, spec) in entries {
            let ok = match spec {
                Value::Null => true,
                Value::Object(spec) => {
                    spec.get("essential").is_none_or(Value::is_boolean)
                        && spec.get("values").is_none_or(Value::is_array)
                }
                _ => false,
            };
            if !ok {
                return Err(refuse(&format!(
                    "{member}.{claim} must be null or an object with essential, value or values"
                )));
            }
        }
    }
    Ok(Some(request))
}

fn resources(params: &Map<String, Value>) -> Result<Vec<String>, OAuthError> {
    let values: Vec<&Value> = match params.get("resource") {
        None => return Ok(Vec::new()),
        Some(Value::Array(values)) => values.iter().collect(),
        Some(single) => vec![single],
    };
    if values.len() > MAX_RESOURCES {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("at most {MAX_RESOURCES} resource values"),
        ));
    }
    let mut resources = Vec::new();
    for value in values {
        let Some(resource) = value.as_str() else {
            return Err(OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must be a string (RFC 8707 §2)",
            ));
        };
        check_resource_identifier(resource)
            .map_err(|e| OAuthError::new(ErrorCode::InvalidTarget, e.error_description))?;
        if !resources.iter().any(|r| r == resource) {
            resources.push(resource.to_owned());
        }
    }
    Ok(resources)
}

fn grant_management(
    params: &Map<String, Value>,
) -> Result<(Option<String>, Option<GrantAction>), OAuthError> {
    let action = match string(params, "grant_management_action")? {
        None => None,
        Some("create") => Some(GrantAction::Create),
        Some("merge") => Some(GrantAction::Merge),
        Some("replace") => Some(GrantAction::Replace),
        Some(other) => {
            return Err(invalid(format!(
                "grant_management_action {other} is not supported: create, merge or replace"
            )));
        }
    };
    let grant_id = bounded(params, "grant_id", 256)?.map(str::to_owned);
    match (action, &grant_id) {
        (Some(GrantAction::Merge | GrantAction::Replace), None) => Err(invalid(
            "grant_management_action merge and replace need a grant_id (FAPI Grant Management §5)",
        )),
        (Some(GrantAction::Create), Some(_)) | (None, Some(_)) => Err(invalid(
            "grant_id is only sent with grant_management_action merge or replace",
        )),
        _ => Ok((grant_id, action)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn client_id() -> ClientId {
        ClientId::parse("tpp-1").unwrap()
    }

    fn metadata() -> ClientMetadata {
        ClientMetadata::from_stored(
            json!({
                "redirect_uris": ["https://tpp.example/cb"],
                "grant_types": ["authorization_code", "refresh_token"],
                "scope": "openid accounts payments",
                "token_endpoint_auth_method": "private_key_jwt",
                "authorization_details_types": ["account_information", "payment_initiation"]
            })
            .as_object()
            .unwrap()
            .clone(),
        )
        .unwrap()
    }

    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    fn params() -> Map<String, Value> {
        json!({
            "response_type": "code",
            "client_id": "tpp-1",
            "redirect_uri": "https://tpp.example/cb",
            "scope": "openid accounts",
            "state": "s-1",
            "nonce": "n-1",
            "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
            "unknown_parameter": "ignored"
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn with(changes: Value) -> Map<String, Value> {
        let mut p = params();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                p.remove(k);
            } else {
                p.insert(k.clone(), v.clone());
            }
        }
        p
    }

    fn run(p: &Map<String, Value>) -> Result<AuthorizationRequest, OAuthError> {
        check(p, &client_id(), &metadata(), ClientProfile::Fapi2)
    }

    fn refused(changes: Value, code: ErrorCode, needle: &str) {
        let error = run(&with(changes)).expect_err("must be refused");
        assert_eq!(error.error, code, "{}", error.error_description);
        assert!(
            error.error_description.contains(needle),
            "{:?} should mention {needle:?}",
            error.error_description
        );
    }

    #[test]
    fn a_good_request_round_trips_through_storage() {
        let request = run(&with(json!({
            "prompt": "login consent",
            "max_age": "300",
            "acr_values": "urn:bank:sca urn:bank:pwd",
            "resource": ["https://api.bank.example/accounts", "https://api.bank.example/accounts"],
            "authorization_details": [{"type": "account_information", "actions": ["read_balances"]}],
            "claims": {"id_token": {"acr": {"essential": true, "values": ["urn:bank:sca"]}}},
            "dpop_jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I",
            "grant_management_action": "create"
        })))
        .unwrap();
        assert_eq!(request.scopes, ["openid", "accounts"]);
        assert_eq!(request.prompt, [Prompt::Login, Prompt::Consent]);
        assert_eq!(request.max_age, Some(300));
        assert_eq!(request.resources, ["https://api.bank.example/accounts"]);
        assert_eq!(request.response_mode, ResponseMode::Query);
        assert!(request.is_openid());
        let stored = AuthorizationRequest::from_map(request.to_map()).unwrap();
        assert_eq!(stored, request);
    }

    #[test]
    fn sp_5_3_2_2_checklist_9_10_47_52_53_54_the_rules_of_the_pushed_request() {
        refused(
            json!({"request_uri": "urn:x"}),
            ErrorCode::InvalidRequest,
            "RFC 9126 §2.1",
        );
        refused(
            json!({"response_type": "token"}),
            ErrorCode::UnsupportedResponseType,
            "code only",
        );
        refused(
            json!({"response_type": "code id_token"}),
            ErrorCode::UnsupportedResponseType,
            "code only",
        );
        refused(
            json!({"response_type": null}),
            ErrorCode::InvalidRequest,
            "response_type",
        );
        refused(
            json!({"redirect_uri": null}),
            ErrorCode::InvalidRequest,
            "redirect_uri is required",
        );
        refused(
            json!({"redirect_uri": "https://tpp.example/other"}),
            ErrorCode::InvalidRequest,
            "registered",
        );
        refused(
            json!({"redirect_uri": "http://tpp.example/cb"}),
            ErrorCode::InvalidRequest,
            "registered",
        );
        refused(
            json!({"code_challenge": null}),
            ErrorCode::InvalidRequest,
            "PKCE",
        );
        refused(
            json!({"code_challenge_method": "plain"}),
            ErrorCode::InvalidRequest,
            "S256 only",
        );
        refused(
            json!({"code_challenge_method": null}),
            ErrorCode::InvalidRequest,
            "omitted means plain",
        );
        refused(
            json!({"code_challenge": "short"}),
            ErrorCode::InvalidRequest,
            "43-character",
        );
        refused(
            json!({"client_id": "someone-else"}),
            ErrorCode::InvalidRequest,
            "client_id",
        );
        refused(
            json!({"scope": "openid admin"}),
            ErrorCode::InvalidScope,
            "admin",
        );
        refused(
            json!({"scope": null}),
            ErrorCode::InvalidScope,
            "asks for nothing",
        );
        refused(json!({"state": 5}), ErrorCode::InvalidRequest, "string");
    }

    /// Found with the `par_form` fuzz target's storage invariant: a `claims` request nested 125
    /// levels deep was accepted and could not be read back from storage; a request object's `claims` had no size
    /// bound at all.
    #[test]
    fn deeply_nested_or_oversized_claims_requests_are_refused() {
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(125), "]".repeat(125));
        refused(
            json!({"claims": deep}),
            ErrorCode::InvalidRequest,
            "levels deep",
        );
        let mut nested = json!(null);
        for _ in 0..=MAX_CLAIMS_DEPTH {
            nested = json!({"id_token": nested});
        }
        refused(
            json!({"claims": nested}),
            ErrorCode::InvalidRequest,
            "levels deep",
        );
        refused(
            json!({"claims": {"userinfo": {"email": {"values": ["x".repeat(MAX_CLAIMS_BYTES)]}}}}),
            ErrorCode::InvalidRequest,
            "longer than",
        );
        assert!(
            run(&with(
                json!({"claims": {"id_token": {"acr": {"essential": true, "values": ["a"]}}}})
            ))
            .is_ok()
        );
    }

    #[test]
    fn oidc_prompt_max_age_nonce_claims_and_resources() {
        refused(
            json!({"prompt": "none login"}),
            ErrorCode::InvalidRequest,
            "prompt=none",
        );
        refused(
            json!({"prompt": "sometimes"}),
            ErrorCode::InvalidRequest,
            "sometimes",
        );
        refused(
            json!({"max_age": "-1"}),
            ErrorCode::InvalidRequest,
            "max_age",
        );
        refused(
            json!({"max_age": 1.5}),
            ErrorCode::InvalidRequest,
            "max_age",
        );
        assert_eq!(run(&with(json!({"max_age": 0}))).unwrap().max_age, Some(0));
        // SP 5.3.2.2-14: long nonces are kept whole, or refused, never cut.
        let long = "n".repeat(384);
        assert_eq!(
            run(&with(json!({"nonce": long})))
                .unwrap()
                .nonce
                .unwrap()
                .len(),
            384
        );
        refused(
            json!({"nonce": "n".repeat(MAX_NONCE + 1)}),
            ErrorCode::InvalidRequest,
            "never truncated",
        );
        assert_eq!(
            run(&with(json!({"state": "s".repeat(2000)})))
                .unwrap()
                .state
                .unwrap()
                .len(),
            2000
        );
        refused(
            json!({"claims": "{"}),
            ErrorCode::InvalidRequest,
            "not JSON",
        );
        refused(
            json!({"claims": {"id_token": {"acr": 5}}}),
            ErrorCode::InvalidRequest,
            "id_token.acr",
        );
        refused(
            json!({"claims": {"id_token": {"acr": {"essential": "yes"}}}}),
            ErrorCode::InvalidRequest,
            "id_token.acr",
        );
        assert!(run(&with(json!({"claims": "{\"userinfo\":{\"email\":null}}"}))).is_ok());
        refused(
            json!({"resource": "http://api.bank.example/"}),
            ErrorCode::InvalidTarget,
            "https",
        );
        refused(
            json!({"resource": ["https://a.example/#x"]}),
            ErrorCode::InvalidTarget,
            "fragment",
        );
        refused(json!({"resource": 5}), ErrorCode::InvalidTarget, "string");
        refused(
            json!({"authorization_details": [{"type": "loan"}]}),
            ErrorCode::InvalidAuthorizationDetails,
            "not registered",
        );
        refused(
            json!({"dpop_jkt": "abc"}),
            ErrorCode::InvalidRequest,
            "thumbprint",
        );
        refused(
            json!({"response_mode": "fragment"}),
            ErrorCode::InvalidRequest,
            "response_mode",
        );
        refused(
            json!({"grant_management_action": "merge"}),
            ErrorCode::InvalidRequest,
            "need a grant_id",
        );
        refused(
            json!({"grant_id": "g-1"}),
            ErrorCode::InvalidRequest,
            "only sent with",
        );
        assert!(
            run(&with(
                json!({"grant_management_action": "replace", "grant_id": "g-1"})
            ))
            .is_ok()
        );
    }

    #[test]
    fn message_signing_clients_get_jarm_and_other_clients_may_ask_for_it() {
        let p = params();
        let ms = check(
            &p,
            &client_id(),
            &metadata(),
            ClientProfile::Fapi2MessageSigning,
        )
        .unwrap();
        assert_eq!(ms.response_mode, ResponseMode::Jwt);
        let query = with(json!({"response_mode": "query"}));
        assert!(
            check(
                &query,
                &client_id(),
                &metadata(),
                ClientProfile::Fapi2MessageSigning
            )
            .is_err()
        );
        assert_eq!(
            run(&with(json!({"response_mode": "query.jwt"})))
                .unwrap()
                .response_mode,
            ResponseMode::QueryJwt
        );
    }

    #[test]
    fn a_client_without_the_code_grant_is_unauthorized() {
        let mut m = metadata();
        m.grant_types = vec![GrantType::ClientCredentials];
        let error = check(&params(), &client_id(), &m, ClientProfile::Fapi2).unwrap_err();
        assert_eq!(error.error, ErrorCode::UnauthorizedClient);
    }
}

//! Handler tests of `POST /par` (RFC 9126): a pushed request is stored under the hash of a
//! one-time `request_uri` bound to the client, and every PAR attack case of the checklist that
//! does not need the authorization endpoint gets its error (#9, #10, #14, #17, #40, #47, #48,
//! #52–#54, #57, #58). The fixtures are the token endpoint's: same clients, assertions and proofs.

use portcullis_core::authz::request::AuthorizationRequest;
use portcullis_core::client::secret::SecretHash;

use super::*;

const PAR_URL: &str = "https://as.example/par";
pub(super) const REDIRECT: &str = "https://tpp.example/cb";
/// RFC 7636 appendix B's challenge.
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// A FAPI 2.0 client of the authorization code flow, authenticating with `private_key_jwt`.
pub(super) async fn code_client(h: &Harness, profile: ClientProfile) -> Tpp {
    code_client_with(h, profile, json!({})).await
}

/// [`code_client`] with the metadata members of `change` replacing its own.
pub(super) async fn code_client_with(h: &Harness, profile: ClientProfile, change: Value) -> Tpp {
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = json!({
        "client_name": "Example TPP",
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": jwks_of(&[public_jwk(&key)]),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [REDIRECT],
        "post_logout_redirect_uris": ["https://tpp.example/logged-out"],
        "scope": "openid accounts",
        "authorization_details_types": ["account_information"],
    });
    if profile == ClientProfile::Fapi2MessageSigning {
        metadata["require_signed_request_object"] = json!(true);
    }
    for (name, value) in change.as_object().unwrap() {
        metadata[name] = value.clone();
    }
    let registered = register(h, metadata, profile, ClientSettings::default()).await;
    Tpp {
        id: registered.client.client_id.to_string(),
        key,
    }
}

/// The parameters of a good pushed request.
pub(super) fn authorization_params() -> Vec<(&'static str, &'static str)> {
    vec![
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "openid accounts"),
        ("state", "state-1"),
        ("nonce", "nonce-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
}

pub(super) fn par_request(pairs: &[(&str, &str)], headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder =
        Request::post("/par").header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::from(form(pairs))).unwrap()
}

/// A pushed request by `tpp`: the good parameters, with `change` replacing or (empty value)
/// removing some, and `headers`.
pub(super) async fn push(
    h: &Harness,
    tpp: &Tpp,
    change: &[(&'static str, &'static str)],
    headers: &[(&str, &str)],
) -> Answer {
    let assertion = tpp.assertion(h);
    let mut pairs: Vec<(&str, &str)> = authorization_params()
        .into_iter()
        .filter(|(k, _)| !change.iter().any(|(c, _)| c == k))
        .collect();
    pairs.extend(change.iter().filter(|(_, v)| !v.is_empty()).copied());
    pairs.extend(with_assertion(&assertion, &[]));
    send(h, par_request(&pairs, headers)).await
}

/// The stored request behind a `request_uri`.
async fn stored(h: &Harness, request_uri: &str) -> (AuthorizationRequest, time::OffsetDateTime) {
    let token = request_uri
        .strip_prefix("urn:ietf:params:oauth:request_uri:")
        .expect("RFC 9126 §2.2 prefix");
    let pushed = h
        .state
        .store
        .pushed_requests()
        .find(&SecretHash::of(token), h.clock.now())
        .await
        .unwrap();
    (
        AuthorizationRequest::from_map(pushed.parameters).unwrap(),
        pushed.expires_at,
    )
}

#[tokio::test]
async fn rfc_9126_2_2_a_pushed_request_is_stored_behind_a_one_time_request_uri() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let answer = push(&h, &tpp, &[], &[]).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(answer.body["expires_in"], 90);
    let request_uri = answer.body["request_uri"].as_str().unwrap();
    // SP 5.4.1-4: at least 128 bits behind the prefix.
    assert!(request_uri.len() >= "urn:ietf:params:oauth:request_uri:".len() + 22);
    let (request, expires_at) = stored(&h, request_uri).await;
    assert_eq!(request.client_id.as_str(), tpp.id);
    assert_eq!(request.redirect_uri, REDIRECT);
    assert_eq!(request.scopes, ["openid", "accounts"]);
    assert_eq!(request.state.as_deref(), Some("state-1"));
    assert_eq!(request.code_challenge, CHALLENGE);
    assert_eq!(request.dpop_jkt, None);
    assert_eq!(
        expires_at.unix_timestamp(),
        (h.clock.now() + time::Duration::seconds(90)).unix_timestamp()
    );
    // Two pushes, two request_uris.
    let again = push(&h, &tpp, &[], &[]).await;
    assert_ne!(again.body["request_uri"], answer.body["request_uri"]);
}

#[tokio::test]
async fn checklist_14_17_48_par_needs_client_authentication_with_the_issuer_as_audience_and_post() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    // #14: no client authentication.
    let mut pairs = authorization_params();
    pairs.push(("client_id", &tpp.id));
    send(&h, par_request(&pairs, &[])).await.invalid_client("");
    // #17: the PAR endpoint URL as audience.
    let assertion = tpp.assertion_with(&h, json!({ "aud": PAR_URL }));
    let mut pairs = authorization_params();
    pairs.extend(with_assertion(&assertion, &[]));
    send(&h, par_request(&pairs, &[]))
        .await
        .invalid_client("issuer");
    // #48: only POST.
    for method in [http::Method::GET, http::Method::PUT] {
        let request = Request::builder()
            .method(method)
            .uri("/par")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&h, request).await.status,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}

/// Parameters to change, the expected error, and words of its description.
type Case = (
    &'static [(&'static str, &'static str)],
    &'static str,
    &'static str,
);

#[tokio::test]
async fn checklist_9_10_47_52_53_54_the_request_itself() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let cases: [Case; 9] = [
        (
            &[("request_uri", "urn:ietf:params:oauth:request_uri:x")],
            "invalid_request",
            "RFC 9126 §2.1",
        ),
        (
            &[("code_challenge_method", "plain")],
            "invalid_request",
            "S256",
        ),
        (
            &[("code_challenge_method", "")],
            "invalid_request",
            "omitted means plain",
        ),
        (&[("code_challenge", "")], "invalid_request", "PKCE"),
        (
            &[("response_type", "token")],
            "unsupported_response_type",
            "code only",
        ),
        (
            &[("response_type", "code id_token")],
            "unsupported_response_type",
            "code only",
        ),
        (
            &[("redirect_uri", "https://evil.example/cb")],
            "invalid_request",
            "registered",
        ),
        (
            &[("redirect_uri", "http://tpp.example/cb")],
            "invalid_request",
            "registered",
        ),
        (
            &[("redirect_uri", "")],
            "invalid_request",
            "redirect_uri is required",
        ),
    ];
    for (change, error, rule) in cases {
        push(&h, &tpp, change, &[])
            .await
            .refused(StatusCode::BAD_REQUEST, error, rule);
    }
    // RFC 9126 §2.1 with RFC 6749 §3.1: a parameter sent twice.
    let assertion = tpp.assertion(&h);
    let mut pairs = authorization_params();
    pairs.push(("state", "state-2"));
    pairs.extend(with_assertion(&assertion, &[]));
    send(&h, par_request(&pairs, &[])).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "repeated",
    );
}

impl Answer {
    #[track_caller]
    fn issued_or_created(&self) {
        assert_eq!(self.status, StatusCode::CREATED, "{}", self.body);
    }
}

#[tokio::test]
async fn checklist_57_resources_and_authorization_details_are_checked() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    push(
        &h,
        &tpp,
        &[("resource", "https://api.bank.example/nothing")],
        &[],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_target", "RFC 8707");
    let known = push(&h, &tpp, &[("resource", ACCOUNTS)], &[]).await;
    known.issued_or_created();
    let (request, _) = stored(&h, known.body["request_uri"].as_str().unwrap()).await;
    assert_eq!(request.resources, [ACCOUNTS]);
    push(
        &h,
        &tpp,
        &[(
            "authorization_details",
            r#"[{"type":"payment_initiation"}]"#,
        )],
        &[],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_authorization_details",
        "not registered",
    );
    let details = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
    let rich = push(&h, &tpp, &[("authorization_details", details)], &[]).await;
    rich.issued_or_created();
    let (request, _) = stored(&h, rich.body["request_uri"].as_str().unwrap()).await;
    assert_eq!(
        request.authorization_details[0]["actions"],
        json!(["read_balances"])
    );
}

#[tokio::test]
async fn checklist_40_rfc_9449_10_a_dpop_proof_at_par_binds_the_code_to_its_key() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let key = dpop_key();
    let proof = dpop_proof_at(&h, &key, "POST", PAR_URL, 0);
    let bound = push(&h, &tpp, &[], &[("dpop", &proof)]).await;
    bound.issued_or_created();
    let (request, _) = stored(&h, bound.body["request_uri"].as_str().unwrap()).await;
    assert_eq!(request.dpop_jkt, Some(thumbprint(&key)));

    // dpop_jkt alone binds too; with a proof it must name the proof's key.
    let jkt = thumbprint(&key);
    let by_parameter = push(&h, &tpp, &[("dpop_jkt", leak(&jkt))], &[]).await;
    by_parameter.issued_or_created();
    let other = thumbprint(&dpop_key());
    let proof = dpop_proof_at(&h, &key, "POST", PAR_URL, 0);
    push(&h, &tpp, &[("dpop_jkt", leak(&other))], &[("dpop", &proof)])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "RFC 9449 §10.1",
        );
    // A proof for another URL.
    let proof = dpop_proof_at(&h, &key, "POST", TOKEN_URL, 0);
    push(&h, &tpp, &[], &[("dpop", &proof)]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "htu",
    );
}

/// A `'static` copy of a test string, for the parameter tables.
fn leak(value: &str) -> &'static str {
    Box::leak(value.to_owned().into_boxed_str())
}

/// Request-object claims for `tpp` carrying the good parameters, valid from now for 5 minutes.
fn request_object_claims(h: &Harness, tpp: &Tpp) -> Value {
    let now = now(h);
    let mut claims = json!({
        "iss": tpp.id, "aud": ISSUER, "client_id": tpp.id,
        "nbf": now, "exp": now + 300, "jti": unique("ro"),
    });
    for (name, value) in authorization_params() {
        claims[name] = json!(value);
    }
    claims["state"] = json!("inner-state");
    claims
}

fn sign_request_object(tpp: &Tpp, claims: &Value) -> String {
    tpp.key
        .sign_jwt_with_header(
            json!({"typ": "oauth-authz-req+jwt", "kid": tpp.key.kid()})
                .as_object()
                .unwrap(),
            claims.as_object().unwrap(),
        )
        .unwrap()
}

/// A pushed request carrying only a request object (and the client's assertion).
async fn push_object(h: &Harness, tpp: &Tpp, object: &str, outer: &[(&str, &str)]) -> Answer {
    let assertion = tpp.assertion(h);
    let mut pairs = vec![("request", object)];
    pairs.extend_from_slice(outer);
    pairs.extend(with_assertion(&assertion, &[]));
    send(h, par_request(&pairs, &[])).await
}

#[tokio::test]
async fn checklist_58_message_signing_clients_must_sign_their_requests() {
    let h = harness().await;
    let ms = code_client(&h, ClientProfile::Fapi2MessageSigning).await;
    push(&h, &ms, &[], &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request", "MS 5.3.1-1");

    // MS 5.3.1: a signed object; only its parameters count (RFC 9101 §6.3).
    let object = sign_request_object(&ms, &request_object_claims(&h, &ms));
    let answer = push_object(&h, &ms, &object, &[("state", "outer-state")]).await;
    answer.issued_or_created();
    let (request, _) = stored(&h, answer.body["request_uri"].as_str().unwrap()).await;
    assert_eq!(request.state.as_deref(), Some("inner-state"));
    assert_eq!(
        request.response_mode,
        portcullis_core::authz::request::ResponseMode::Jwt,
        "message-signing clients get JARM"
    );
    // Its jti works once.
    push_object(&h, &ms, &object, &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_request_object",
        "used before",
    );
}

#[tokio::test]
async fn checklist_58_59_60_request_objects_are_verified_never_ignored() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    // alg none.
    push_object(&h, &tpp, "eyJhbGciOiJub25lIn0.e30.", &[])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_request_object",
            "algorithm",
        );
    // RS256 and HS256 are not FAPI algorithms (SP 5.4.1): refused before any key is tried.
    for alg in ["RS256", "HS256"] {
        let header = json!({"alg": alg, "typ": "oauth-authz-req+jwt"});
        let object = format!(
            "{}.c2lnbmF0dXJl",
            signing_input(&header, &request_object_claims(&h, &tpp))
        );
        push_object(&h, &tpp, &object, &[]).await.refused(
            StatusCode::BAD_REQUEST,
            "invalid_request_object",
            "algorithm",
        );
    }
    // Signed by another client's key.
    let other = code_client(&h, ClientProfile::Fapi2).await;
    let foreign = sign_request_object(&other, &request_object_claims(&h, &tpp));
    push_object(&h, &tpp, &foreign, &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_request_object",
        "of the client",
    );
    let now = now(&h);
    let cases = [
        (json!({"aud": "https://elsewhere.example"}), "aud"),
        (json!({"exp": Value::Null}), "exp is required"),
        (json!({"nbf": now - 3601, "exp": now + 60}), "60 minutes"),
        (json!({"client_id": other.id}), "client_id"),
        (
            json!({"request_uri": "urn:ietf:params:oauth:request_uri:x"}),
            "request_uri",
        ),
    ];
    for (change, rule) in cases {
        let mut claims = request_object_claims(&h, &tpp);
        for (name, value) in change.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        push_object(&h, &tpp, &sign_request_object(&tpp, &claims), &[])
            .await
            .refused(StatusCode::BAD_REQUEST, "invalid_request_object", rule);
    }
    // The rules of the request itself apply inside the object too.
    let mut plain = request_object_claims(&h, &tpp);
    plain["code_challenge_method"] = json!("plain");
    push_object(&h, &tpp, &sign_request_object(&tpp, &plain), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request", "S256");
}

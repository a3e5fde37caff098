//! Handler tests of the `authorization_code` grant at `/token`: the checklist cases of the token
//! endpoint that need a code (#1–#3, #5, #6, #8, #11, #41), and 20 concurrent redemptions of one
//! code. Codes are put in the store as the authorization endpoint will; the tokens are checked
//! with `jsonwebtoken`, not with our own JOSE code.

use std::sync::Arc;

use base64::Engine as _;
use portcullis_core::authz::code::CodeContent;
use portcullis_core::client::secret::SecretHash;
use portcullis_core::store::{Grant, StoredCode};
use portcullis_core::user::{PasswordHash, User, Username};
use uuid::Uuid;

use super::*;

const REDIRECT: &str = "https://tpp.example/cb";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

pub(super) struct Flow {
    pub(super) tpp: Tpp,
    pub(super) user: Uuid,
    pub(super) grant_id: String,
}

pub(super) async fn flow(h: &Harness) -> Flow {
    flow_of(h, ClientProfile::Fapi2).await
}

pub(super) async fn flow_of(h: &Harness, profile: ClientProfile) -> Flow {
    serve_accounts(h).await;
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let registered = register(
        h,
        json!({
            "client_name": "Example TPP",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": jwks_of(&[public_jwk(&key)]),
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT],
            "scope": "openid accounts",
            "id_token_signed_response_alg": "ES256",
        }),
        profile,
        ClientSettings::default(),
    )
    .await;
    let tpp = Tpp {
        id: registered.client.client_id.to_string(),
        key,
    };
    let user = User {
        id: Uuid::new_v4(),
        username: Username::parse("alice").unwrap(),
        password_hash: PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$x$y".into()),
        created_at: h.clock.now(),
        disabled_at: None,
        claims: json!({"email": "alice@bank.example", "name": "Alice"})
            .as_object()
            .unwrap()
            .clone(),
        totp_secret_encrypted: None,
        totp_last_step: None,
    };
    h.state.store.users().add(&user).await.unwrap();
    let grant_id = unique("grant");
    h.state
        .store
        .grants()
        .add(&Grant {
            grant_id: grant_id.clone(),
            client_id: registered.client.client_id.clone(),
            subject: user.id,
            content: json!({"scopes": ["openid", "accounts"]})
                .as_object()
                .unwrap()
                .clone(),
            created_at: h.clock.now(),
            updated_at: h.clock.now(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
    Flow {
        tpp,
        user: user.id,
        grant_id,
    }
}

/// Issues a code for the flow's grant, as the authorization endpoint does; returns it.
pub(super) async fn issue_code(h: &Harness, f: &Flow, dpop_jkt: Option<String>) -> String {
    let code = unique("code-0123456789abcdef0123456789abcdef");
    let content = CodeContent {
        subject: f.user,
        redirect_uri: REDIRECT.into(),
        code_challenge: CHALLENGE.into(),
        dpop_jkt,
        scopes: vec!["openid".into(), "accounts".into()],
        resources: vec![],
        authorization_details: vec![
            json!({"type": "account_information", "actions": ["read_balances"]}),
        ],
        nonce: Some("nonce-1".into()),
        claims: Some(
            json!({"id_token": {"email": null}})
                .as_object()
                .unwrap()
                .clone(),
        ),
        auth_time: now(h) - 20,
        acr: Some("urn:bank:sca".into()),
        amr: vec!["pwd".into(), "otp".into()],
    };
    h.state
        .store
        .codes()
        .add(&StoredCode {
            handle: SecretHash::of(&code),
            client_id: ClientId::parse(f.tpp.id.clone()).unwrap(),
            grant_id: f.grant_id.clone(),
            content: content.to_map(),
            created_at: h.clock.now(),
            expires_at: h.clock.now() + time::Duration::seconds(60),
        })
        .await
        .unwrap();
    code
}

use portcullis_core::client::ClientId;

/// A code redemption by `tpp` with a fresh assertion and a proof by `key`.
pub(super) async fn redeem(
    h: &Harness,
    tpp: &Tpp,
    code: &str,
    key: &SigningKey,
    change: &[(&str, &str)],
) -> Answer {
    let assertion = tpp.assertion(h);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    pairs.retain(|(k, _)| !change.iter().any(|(c, _)| c == k));
    pairs.extend(change.iter().filter(|(_, v)| !v.is_empty()).copied());
    pairs.extend([
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ]);
    let proof = dpop_proof(h, key);
    send(h, token_request(&pairs, &[("dpop", &proof)])).await
}

/// Verifies a JWT of ours with `jsonwebtoken` against `/jwks`.
pub(super) async fn verify_ours(h: &Harness, jwt: &str, audience: &str) -> Value {
    let (_, _, jwks) = crate::routes::tests::get(&h.router, "/jwks").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn a_code_gives_a_dpop_bound_access_token_with_its_grant_and_an_id_token() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let key = dpop_key();
    let answer = redeem(&h, &f.tpp, &code, &key, &[]).await;
    let access_token = answer.issued("DPoP", "openid accounts");
    assert_eq!(answer.body["grant_id"], f.grant_id);
    assert_eq!(
        answer.body["authorization_details"][0]["type"],
        "account_information"
    );

    let claims = verified_claims(&h, &access_token, ACCOUNTS).await;
    assert_eq!(claims["sub"], f.user.to_string());
    assert_eq!(claims["grant_id"], f.grant_id);
    assert_eq!(claims["cnf"], json!({ "jkt": thumbprint(&key) }));
    assert_eq!(
        claims["aud"],
        json!([ACCOUNTS, ISSUER]),
        "the resource, and userinfo"
    );
    assert_eq!(
        claims["authorization_details"][0]["actions"],
        json!(["read_balances"])
    );

    // OIDC Core §3.1.3.6, checked with jsonwebtoken.
    let id_token = answer.body["id_token"].as_str().unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(id_token).unwrap().alg,
        jsonwebtoken::Algorithm::ES256
    );
    let id = verify_ours(&h, id_token, &f.tpp.id).await;
    assert_eq!(id["sub"], f.user.to_string());
    assert_eq!(id["nonce"], "nonce-1");
    assert_eq!(id["acr"], "urn:bank:sca");
    assert_eq!(id["amr"], json!(["pwd", "otp"]));
    assert_eq!(id["auth_time"], now(&h) - 20);
    assert_eq!(
        id["email"], "alice@bank.example",
        "asked for in claims.id_token"
    );
    assert!(id.get("name").is_none(), "profile claims go to userinfo");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    assert_eq!(
        id["at_hash"],
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
    );
}

#[tokio::test]
async fn checklist_1_a_reused_code_is_invalid_grant_and_revokes_its_grant() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    redeem(&h, &f.tpp, &code, &dpop_key(), &[])
        .await
        .issued("DPoP", "openid accounts");
    redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "used before",
    );
    let grant = h.state.store.grants().find(&f.grant_id).await.unwrap();
    assert!(grant.revoked_at.is_some(), "the grant is revoked");
    // A new code of the revoked grant is worthless.
    let later = issue_code(&h, &f, None).await;
    redeem(&h, &f.tpp, &later, &dpop_key(), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "withdrawn",
    );
    let events = h.state.store.events().list(0, 100).await.unwrap();
    assert!(events.iter().any(|e| e.event.action == "code.reused"));
}

#[tokio::test]
async fn checklist_2_3_5_6_8_11_the_code_its_client_its_redirect_uri_and_pkce() {
    let h = harness().await;
    let f = flow(&h).await;
    let key = dpop_key();
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("code_verifier", "")], "code_verifier is required"),
        (
            &[(
                "code_verifier",
                "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj",
            )],
            "does not match",
        ),
        (&[("code_verifier", "too-short")], "43 to 128"),
        (
            &[("redirect_uri", "https://tpp.example/other")],
            "redirect_uri",
        ),
        (&[("redirect_uri", "")], "redirect_uri"),
        (&[("code", "no-such-code")], "not valid"),
    ];
    for (change, rule) in cases {
        let code = issue_code(&h, &f, None).await;
        redeem(&h, &f.tpp, &code, &key, change).await.refused(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            rule,
        );
    }
    // #3: another client.
    let other =
        private_key_jwt_client_with(&h, ClientProfile::Fapi2, ClientSettings::default()).await;
    let mut metadata = machine_client("private_key_jwt");
    metadata["grant_types"] = json!(["authorization_code"]);
    metadata["response_types"] = json!(["code"]);
    metadata["redirect_uris"] = json!([REDIRECT]);
    metadata["jwks"] = jwks_of(&[public_jwk(&other.key)]);
    let thief = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await;
    let thief = Tpp {
        id: thief.client.client_id.to_string(),
        key: other.key,
    };
    let code = issue_code(&h, &f, None).await;
    redeem(&h, &thief, &code, &key, &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "another client",
    );
    // #2: after 60 s.
    let code = issue_code(&h, &f, None).await;
    h.clock.advance(time::Duration::seconds(61));
    redeem(&h, &f.tpp, &code, &key, &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "60 s",
    );
}

#[tokio::test]
async fn checklist_41_a_code_bound_to_a_dpop_key_needs_that_key() {
    let h = harness().await;
    let f = flow(&h).await;
    let key = dpop_key();
    let code = issue_code(&h, &f, Some(thumbprint(&key))).await;
    redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "RFC 9449 §10",
    );
    let code = issue_code(&h, &f, Some(thumbprint(&key))).await;
    redeem(&h, &f.tpp, &code, &key, &[])
        .await
        .issued("DPoP", "openid accounts");
}

#[tokio::test]
async fn twenty_concurrent_redemptions_of_one_code_give_exactly_one_token() {
    let h = Arc::new(harness().await);
    let f = Arc::new(flow(&h).await);
    let code = Arc::new(issue_code(&h, &f, None).await);
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let (h, f, code) = (h.clone(), f.clone(), code.clone());
            tokio::spawn(async move { redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await.status })
        })
        .collect();
    let mut ok = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            StatusCode::OK => ok += 1,
            status => assert_eq!(status, StatusCode::BAD_REQUEST),
        }
    }
    assert_eq!(ok, 1);
}

/// A refresh request by `tpp` with a fresh assertion and a proof by `key`.
pub(super) async fn refresh(
    h: &Harness,
    tpp: &Tpp,
    token: &str,
    key: Option<&SigningKey>,
    extra: &[(&str, &str)],
) -> Answer {
    let assertion = tpp.assertion(h);
    let mut pairs: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", token),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let proof = key.map(|k| dpop_proof(h, k));
    let headers: Vec<(&str, &str)> = proof.iter().map(|p| ("dpop", p.as_str())).collect();
    send(h, token_request(&pairs, &headers)).await
}

#[tokio::test]
async fn sp_5_3_2_1_9_a_fapi_refresh_token_is_not_rotated_and_binds_the_new_token_to_the_key_presented()
 {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let first = redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await;
    first.issued("DPoP", "openid accounts");
    let refresh_token = first.body["refresh_token"].as_str().unwrap().to_owned();

    let key = dpop_key();
    let answer = refresh(&h, &f.tpp, &refresh_token, Some(&key), &[]).await;
    let access_token = answer.issued("DPoP", "openid accounts");
    assert!(
        answer.body.get("refresh_token").is_none(),
        "FAPI: not rotated"
    );
    let claims = verified_claims(&h, &access_token, ACCOUNTS).await;
    assert_eq!(claims["cnf"], json!({ "jkt": thumbprint(&key) }));
    assert_eq!(claims["grant_id"], f.grant_id);
    // The same token works again; a narrower scope is fine, a wider one is not.
    refresh(
        &h,
        &f.tpp,
        &refresh_token,
        Some(&dpop_key()),
        &[("scope", "accounts")],
    )
    .await
    .issued("DPoP", "accounts");
    refresh(
        &h,
        &f.tpp,
        &refresh_token,
        Some(&dpop_key()),
        &[("scope", "accounts payments")],
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "invalid_scope", "payments");
    // Checklist #44: no proof of possession.
    refresh(&h, &f.tpp, &refresh_token, None, &[])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "sender-constrained",
        );
    // Checklist #43: no client authentication.
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", f.tpp.id.as_str()),
    ];
    send(
        &h,
        token_request(&pairs, &[("dpop", &dpop_proof(&h, &dpop_key()))]),
    )
    .await
    .invalid_client("");
}

#[tokio::test]
async fn checklist_42_45_refresh_tokens_belong_to_their_client_and_die_with_their_grant() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let first = redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await;
    first.issued("DPoP", "openid accounts");
    let refresh_token = first.body["refresh_token"].as_str().unwrap().to_owned();
    // #42: another client, registered for refresh tokens too.
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["grant_types"] = json!(["authorization_code", "refresh_token"]);
    metadata["response_types"] = json!(["code"]);
    metadata["redirect_uris"] = json!([REDIRECT]);
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    let registered = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await;
    let other = Tpp {
        id: registered.client.client_id.to_string(),
        key,
    };
    refresh(&h, &other, &refresh_token, Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "another client");
    refresh(&h, &f.tpp, "no-such-token", Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "not valid");
    // #45: the grant is revoked.
    let grant = h.state.store.grants().find(&f.grant_id).await.unwrap();
    assert!(
        crate::revocation::revoke_grant(&h.state, &grant, &crate::revocation::Reason::Customer)
            .await
            .unwrap()
    );
    // Withdrawing the consent revokes its refresh tokens with it.
    refresh(&h, &f.tpp, &refresh_token, Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "revoked");
}

#[tokio::test]
async fn a_reused_code_revokes_the_refresh_tokens_of_its_grant() {
    let h = harness().await;
    let f = flow(&h).await;
    let code = issue_code(&h, &f, None).await;
    let first = redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await;
    let refresh_token = first.body["refresh_token"].as_str().unwrap().to_owned();
    redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "used before",
    );
    refresh(&h, &f.tpp, &refresh_token, Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "revoked");
}

#[tokio::test]
async fn oauth_refresh_tokens_rotate_with_a_grace_period() {
    let h = harness().await;
    let f = flow_of(&h, ClientProfile::Oauth).await;
    let code = issue_code(&h, &f, None).await;
    let first = redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await;
    let old = first.body["refresh_token"].as_str().unwrap().to_owned();
    let rotated = refresh(&h, &f.tpp, &old, Some(&dpop_key()), &[]).await;
    rotated.issued("DPoP", "openid accounts");
    let new = rotated.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    // Within the grace period the old one still works (and gives no further token).
    let retry = refresh(&h, &f.tpp, &old, Some(&dpop_key()), &[]).await;
    retry.issued("DPoP", "openid accounts");
    assert!(retry.body.get("refresh_token").is_none());
    h.clock.advance(time::Duration::seconds(61));
    refresh(&h, &f.tpp, &old, Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "replaced");
    refresh(&h, &f.tpp, &new, Some(&dpop_key()), &[])
        .await
        .issued("DPoP", "openid accounts");
}

#[tokio::test]
async fn opaque_access_tokens_for_a_resource_that_asks_for_them_work_at_userinfo_and_die_with_the_grant()
 {
    let h = harness().await;
    let f = flow(&h).await;
    // The accounts API accepts opaque tokens only.
    let mut rs = h
        .state
        .store
        .resource_servers()
        .find(ACCOUNTS)
        .await
        .unwrap();
    rs.metadata.token_format = portcullis_core::client::settings::TokenFormat::Opaque;
    h.state.store.resource_servers().update(&rs).await.unwrap();
    h.state.resources.invalidate();

    let code = issue_code(&h, &f, None).await;
    let key = dpop_key();
    let answer = redeem(&h, &f.tpp, &code, &key, &[]).await;
    let token = answer.issued("DPoP", "openid accounts");
    assert_eq!(token.split('.').count(), 1, "a reference, not a JWT");
    assert!(token.len() >= 43, "256 bits");
    let stored = h
        .state
        .store
        .access_tokens()
        .find(&SecretHash::of(&token))
        .await
        .unwrap();
    assert_eq!(stored.claims["sub"], f.user.to_string());
    assert_eq!(stored.claims["cnf"], json!({ "jkt": thumbprint(&key) }));
    assert_eq!(stored.grant_id.as_deref(), Some(f.grant_id.as_str()));
    // at_hash covers the reference itself.
    let id_token = answer.body["id_token"].as_str().unwrap();
    let id: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    assert_eq!(
        id["at_hash"],
        URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
    );

    // Userinfo takes it, with its DPoP proof.
    let userinfo = |token: String, key: &SigningKey| {
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            token.as_bytes(),
        ));
        let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
        let claims = json!({
            "jti": unique("dpop"), "htm": "GET", "htu": "https://as.example/userinfo",
            "iat": now(&h), "ath": ath
        });
        let proof = key
            .sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
            .unwrap();
        Request::get("/userinfo")
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let ok = send(&h, userinfo(token.clone(), &key)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["sub"], f.user.to_string());
    let forged = send(&h, userinfo("not-a-token-we-issued".into(), &key)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);

    // Checklist #1: a replay of the code revokes the opaque token at once.
    redeem(&h, &f.tpp, &code, &dpop_key(), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "used before",
    );
    let revoked = send(&h, userinfo(token, &key)).await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
}

/// Registers the client the accounts API introspects as.
pub(super) async fn resource_server_client(h: &Harness) -> Tpp {
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    let registered = register(h, metadata, ClientProfile::Fapi2, ClientSettings::default()).await;
    let mut rs = h
        .state
        .store
        .resource_servers()
        .find(ACCOUNTS)
        .await
        .unwrap();
    rs.client_id = Some(registered.client.client_id.clone());
    h.state.store.resource_servers().update(&rs).await.unwrap();
    h.state.resources.invalidate();
    Tpp {
        id: registered.client.client_id.to_string(),
        key,
    }
}

pub(super) async fn introspect(h: &Harness, caller: Option<&Tpp>, token: &str) -> Answer {
    let assertion = caller.map(|c| c.assertion(h));
    let mut pairs = vec![("token", token)];
    if let Some(assertion) = &assertion {
        pairs.extend([
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ]);
    }
    let request = Request::post("/introspect")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&pairs)))
        .unwrap();
    send(h, request).await
}

#[tokio::test]
async fn rfc_7662_a_resource_server_introspects_tokens_for_its_audience_only() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let code = issue_code(&h, &f, None).await;
    let key = dpop_key();
    let answer = redeem(&h, &f.tpp, &code, &key, &[]).await;
    let token = answer.issued("DPoP", "openid accounts");
    let refresh_token = answer.body["refresh_token"].as_str().unwrap().to_owned();

    let live = introspect(&h, Some(&rs), &token).await;
    assert_eq!(live.status, StatusCode::OK, "{}", live.body);
    assert_eq!(live.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(live.body["active"], true);
    assert_eq!(live.body["sub"], f.user.to_string());
    assert_eq!(live.body["client_id"], f.tpp.id);
    assert_eq!(live.body["grant_id"], f.grant_id);
    assert_eq!(live.body["token_type"], "DPoP");
    assert_eq!(live.body["cnf"], json!({ "jkt": thumbprint(&key) }));
    assert_eq!(live.body["scope"], "openid accounts");

    // RFC 7662 §2.2: unknown tokens are inactive and say nothing else.
    let unknown = introspect(&h, Some(&rs), "no-such-token").await;
    assert_eq!(unknown.body, json!({ "active": false }));
    // Checklist #61: no client authentication.
    let anonymous = introspect(&h, None, &token).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"], "invalid_client");
    // A client that is no resource server's learns nothing about access tokens…
    assert_eq!(
        introspect(&h, Some(&f.tpp), &token).await.body,
        json!({ "active": false })
    );
    // …but about its own refresh token, yes.
    let own = introspect(&h, Some(&f.tpp), &refresh_token).await;
    assert_eq!(own.body["active"], true, "{}", own.body);
    assert_eq!(own.body["token_type"], "refresh_token");
    assert_eq!(
        introspect(&h, Some(&rs), &refresh_token).await.body["active"],
        false
    );

    // A withdrawn consent makes both inactive at once.
    let grant = h.state.store.grants().find(&f.grant_id).await.unwrap();
    assert!(
        crate::revocation::revoke_grant(&h.state, &grant, &crate::revocation::Reason::Customer)
            .await
            .unwrap()
    );
    assert_eq!(
        introspect(&h, Some(&rs), &token).await.body,
        json!({ "active": false })
    );
    assert_eq!(
        introspect(&h, Some(&f.tpp), &refresh_token).await.body,
        json!({ "active": false })
    );
}

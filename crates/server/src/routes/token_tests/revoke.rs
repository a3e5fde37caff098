//! Handler tests of revocation (RFC 7009, checklist #62), of what a revocation does to
//! introspection, userinfo and refresh (at once, cache or not), of the revocation events it
//! queues, of RFC 9701 signed introspection, and of tampered tokens at introspection.

use serde_json::Map;

use super::code::{Flow, flow, introspect, issue_code, redeem, refresh, resource_server_client};
use super::*;

/// A code flow's tokens: the access token, its DPoP key, and the refresh token.
struct Issued {
    access: String,
    key: SigningKey,
    refresh: String,
}

async fn issue(h: &Harness, f: &Flow) -> Issued {
    let code = issue_code(h, f, None).await;
    let key = dpop_key();
    let answer = redeem(h, &f.tpp, &code, &key, &[]).await;
    let access = answer.issued("DPoP", "openid accounts");
    let refresh = answer.body["refresh_token"].as_str().unwrap().to_owned();
    Issued {
        access,
        key,
        refresh,
    }
}

async fn revoke(h: &Harness, caller: Option<&Tpp>, token: &str, hint: Option<&str>) -> Answer {
    let assertion = caller.map(|c| c.assertion(h));
    let mut pairs = vec![("token", token)];
    if let Some(hint) = hint {
        pairs.push(("token_type_hint", hint));
    }
    if let Some(assertion) = &assertion {
        pairs.extend([
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ]);
    }
    let request = Request::post("/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&pairs)))
        .unwrap();
    send(h, request).await
}

async fn userinfo(h: &Harness, token: &str, key: &SigningKey) -> Answer {
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
    let claims = json!({
        "jti": unique("dpop"), "htm": "GET", "htu": "https://as.example/userinfo",
        "iat": now(h), "ath": ath
    });
    let proof = key
        .sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap();
    let request = Request::get("/userinfo")
        .header(header::AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .unwrap();
    send(h, request).await
}

#[track_caller]
fn revoked_ok(answer: &Answer) {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.headers[header::CACHE_CONTROL], "no-store");
}

/// The events queued for a resource server's client.
async fn events_for(h: &Harness, rs: &Tpp) -> Vec<Value> {
    let recipient = portcullis_core::client::ClientId::parse(&rs.id).unwrap();
    let poll = h
        .state
        .store
        .revocations()
        .poll(&recipient, 100)
        .await
        .unwrap();
    let (_, _, jwks) = crate::routes::tests::get(&h.router, "/jwks").await;
    let jwks: portcullis_jose::Jwks = serde_json::from_value(jwks).unwrap();
    poll.events
        .iter()
        .map(|event| {
            let header = portcullis_jose::decode_unverified_header(&event.set).unwrap();
            assert_eq!(header["typ"], "secevent+jwt", "RFC 8417 §2.3");
            let verified =
                portcullis_jose::verify_jwt(&event.set, &jwks, &SigningAlg::ALL).unwrap();
            Value::Object(verified.claims)
        })
        .collect()
}

#[tokio::test]
async fn rfc_7009_a_revoked_access_token_is_dead_at_once_and_its_grant_lives_on() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;

    // Introspected once, so that a cached answer would be there to serve.
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body["active"],
        true
    );
    assert_eq!(userinfo(&h, &t.access, &t.key).await.status, StatusCode::OK);

    revoked_ok(&revoke(&h, Some(&f.tpp), &t.access, Some("access_token")).await);

    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body,
        json!({ "active": false })
    );
    let refused = userinfo(&h, &t.access, &t.key).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("revoked")
    );
    // Only that token: the grant and its refresh token live on.
    let fresh = refresh(&h, &f.tpp, &t.refresh, Some(&dpop_key()), &[])
        .await
        .issued("DPoP", "openid accounts");
    assert_eq!(introspect(&h, Some(&rs), &fresh).await.body["active"], true);

    // The resource server is told, with a signed SET naming the token.
    let events = events_for(&h, &rs).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let jti = verified_claims(&h, &t.access, ACCOUNTS).await["jti"].clone();
    let event = &events[0]["events"][crate::revocation::TOKEN_REVOKED];
    assert_eq!(event["jti"], jti);
    assert_eq!(event["grant_id"], f.grant_id);
    assert_eq!(event["sub"], f.user.to_string());
    assert_eq!(event["reason"], "client_revoked");
    assert_eq!(events[0]["iss"], "https://as.example");
    assert_eq!(events[0]["aud"], json!([rs.id]));

    // Revoking it again changes nothing and says nothing new.
    revoked_ok(&revoke(&h, Some(&f.tpp), &t.access, None).await);
    assert_eq!(events_for(&h, &rs).await.len(), 1);
}

#[tokio::test]
async fn rfc_7009_revoking_a_refresh_token_ends_its_grant_and_every_token_under_it() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body["active"],
        true
    );

    // The hint is wrong: it is a hint only (RFC 7009 §2.1).
    revoked_ok(&revoke(&h, Some(&f.tpp), &t.refresh, Some("access_token")).await);

    refresh(&h, &f.tpp, &t.refresh, Some(&dpop_key()), &[])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "");
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body,
        json!({ "active": false })
    );
    assert_eq!(
        userinfo(&h, &t.access, &t.key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let grant = h.state.store.grants().find(&f.grant_id).await.unwrap();
    assert!(grant.revoked_at.is_some());
    let events = events_for(&h, &rs).await;
    assert_eq!(events.len(), 1);
    let event = &events[0]["events"][crate::revocation::GRANT_REVOKED];
    assert_eq!(event["grant_id"], f.grant_id);
    assert_eq!(
        event["subject"],
        json!({"format": "opaque", "id": f.grant_id})
    );
    assert_eq!(event["client_id"], f.tpp.id);
}

#[tokio::test]
async fn checklist_62_a_client_cannot_revoke_another_clients_tokens() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;
    let intruder = private_key_jwt_client(&h).await;

    for (token, kind) in [(&t.access, "access token"), (&t.refresh, "refresh token")] {
        revoke(&h, Some(&intruder), token, None).await.refused(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            kind,
        );
    }
    // Both stay valid.
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body["active"],
        true
    );
    refresh(&h, &f.tpp, &t.refresh, Some(&dpop_key()), &[])
        .await
        .issued("DPoP", "openid accounts");
    assert!(events_for(&h, &rs).await.is_empty());
}

#[tokio::test]
async fn a_resource_server_revokes_a_token_of_its_audience() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;
    revoked_ok(&revoke(&h, Some(&rs), &t.access, None).await);
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body,
        json!({ "active": false })
    );
    let events = events_for(&h, &rs).await;
    assert_eq!(
        events[0]["events"][crate::revocation::TOKEN_REVOKED]["reason"],
        "resource_server_revoked"
    );
    // But not the client's refresh token: that is not the resource server's.
    revoke(&h, Some(&rs), &t.refresh, Some("refresh_token"))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "refresh token",
        );
}

#[tokio::test]
async fn rfc_7009_2_2_unknown_tokens_get_200_and_callers_must_authenticate() {
    let h = harness().await;
    let f = flow(&h).await;
    let t = issue(&h, &f).await;
    for token in [
        "no-such-token",
        "a.b.c",
        "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJ4In0.c2ln",
    ] {
        revoked_ok(&revoke(&h, Some(&f.tpp), token, None).await);
        revoked_ok(&revoke(&h, Some(&f.tpp), token, Some("refresh_token")).await);
    }
    // Unknown hint values are ignored.
    revoked_ok(&revoke(&h, Some(&f.tpp), "x", Some("bogus")).await);
    // No client authentication (RFC 7009 §2.1).
    let anonymous = revoke(&h, None, &t.access, None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"], "invalid_client");
    // No token parameter.
    let assertion = f.tpp.assertion(&h);
    let request = Request::post("/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form(&[
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ])))
        .unwrap();
    send(&h, request)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_request", "token");
    // Nothing of this touched the real token.
    assert_eq!(userinfo(&h, &t.access, &t.key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn rfc_9701_a_signed_introspection_answer_verifies_with_the_jwks() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;
    let signed = |token: String| {
        let assertion = rs.assertion(&h);
        let body = form(&[
            ("token", token.as_str()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion.as_str()),
        ]);
        Request::post("/introspect")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/token-introspection+jwt")
            .body(Body::from(body))
            .unwrap()
    };
    let response = h
        .router
        .clone()
        .oneshot(signed(t.access.clone()))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/token-introspection+jwt"
    );
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let jwt = body_text(response).await;
    let header = portcullis_jose::decode_unverified_header(&jwt).unwrap();
    assert_eq!(header["typ"], "token-introspection+jwt", "RFC 9701 §5");
    let (_, _, jwks) = crate::routes::tests::get(&h.router, "/jwks").await;
    let jwks: portcullis_jose::Jwks = serde_json::from_value(jwks).unwrap();
    let claims = portcullis_jose::verify_jwt(&jwt, &jwks, &SigningAlg::ALL)
        .unwrap()
        .claims;
    assert_eq!(claims["iss"], "https://as.example");
    assert_eq!(claims["aud"], rs.id);
    assert!(claims["iat"].is_i64());
    let answer = &claims["token_introspection"];
    assert_eq!(answer["active"], true);
    assert_eq!(answer["client_id"], f.tpp.id);
    assert_eq!(answer["grant_id"], f.grant_id);
    assert_eq!(answer["cnf"], json!({ "jkt": thumbprint(&t.key) }));
    assert!(answer["auth_time"].is_i64(), "{answer}");

    // An inactive answer is signed too, and says nothing else.
    let response = h
        .router
        .clone()
        .oneshot(signed("nope".into()))
        .await
        .unwrap();
    let jwt = body_text(response).await;
    let claims = portcullis_jose::verify_jwt(&jwt, &jwks, &SigningAlg::ALL)
        .unwrap()
        .claims;
    assert_eq!(claims["token_introspection"], json!({ "active": false }));
}

async fn body_text(response: http::Response<Body>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// Changes one claim of a JWT without signing it again.
fn tamper(jwt: &str, change: impl FnOnce(&mut Map<String, Value>)) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    let mut claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn tampered_tokens_are_inactive_at_introspection() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let t = issue(&h, &f).await;
    // Cached as live first: a tampered copy must not hit that entry.
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body["active"],
        true
    );

    let mut signature_flipped = t.access.clone();
    let last = signature_flipped.pop().unwrap();
    signature_flipped.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = [
        signature_flipped,
        tamper(&t.access, |c| {
            c.insert("exp".into(), (now(&h) + 86_400).into());
        }),
        tamper(&t.access, |c| {
            c.insert("aud".into(), "https://elsewhere.example".into());
        }),
        tamper(&t.access, |c| {
            c.insert("cnf".into(), json!({ "jkt": "someone-elses-key" }));
        }),
        tamper(&t.access, |c| {
            c.insert("scope".into(), "openid accounts payments".into());
        }),
    ];
    for token in &tampered {
        assert_eq!(
            introspect(&h, Some(&rs), token).await.body,
            json!({ "active": false }),
            "{token}"
        );
    }
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body["active"],
        true
    );
}

#[tokio::test]
async fn an_opaque_access_token_is_introspected_and_revoked_like_a_jwt() {
    let h = harness().await;
    let f = flow(&h).await;
    let rs = resource_server_client(&h).await;
    let mut server = h
        .state
        .store
        .resource_servers()
        .find(ACCOUNTS)
        .await
        .unwrap();
    server.metadata.token_format = portcullis_core::client::settings::TokenFormat::Opaque;
    h.state
        .store
        .resource_servers()
        .update(&server)
        .await
        .unwrap();
    h.state.resources.invalidate();
    let t = issue(&h, &f).await;
    assert_eq!(t.access.split('.').count(), 1, "a reference");

    let live = introspect(&h, Some(&rs), &t.access).await.body;
    assert_eq!(live["active"], true, "{live}");
    assert_eq!(live["token_type"], "DPoP");
    assert_eq!(live["cnf"], json!({ "jkt": thumbprint(&t.key) }));
    assert_eq!(live["grant_id"], f.grant_id);
    assert!(live["jti"].is_string() && live["auth_time"].is_i64());

    revoked_ok(&revoke(&h, Some(&f.tpp), &t.access, Some("access_token")).await);
    assert_eq!(
        introspect(&h, Some(&rs), &t.access).await.body,
        json!({ "active": false })
    );
    assert_eq!(
        userinfo(&h, &t.access, &t.key).await.status,
        StatusCode::UNAUTHORIZED
    );
    let events = events_for(&h, &rs).await;
    assert_eq!(
        events[0]["events"][crate::revocation::TOKEN_REVOKED]["jti"],
        live["jti"]
    );
}

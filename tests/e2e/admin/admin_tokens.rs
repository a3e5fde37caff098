//! The admin API as a resource server of its own tokens (checklist #29–#35): a DPoP-bound token
//! goes with the `DPoP` scheme and a fresh proof of its key covering it (`ath`), a
//! certificate-bound token with `Bearer` on the mTLS listener and its certificate; anything else
//! is 401.

use portcullis_testkit::app::App;
use portcullis_testkit::certs::ClientIdentity;
use reqwest::Method;
use serde_json::json;

use super::{Bank, m2m, mtls_token};
use crate::oauth::{AdminSession, ClientKey, Reply, claims_of, dpop_proof, server_now};

/// `GET url` with `Authorization: <authorization>`, the given `DPoP` header and certificate.
async fn get(
    app: &App,
    identity: Option<&ClientIdentity>,
    url: &str,
    authorization: &str,
    proof: Option<&str>,
) -> Reply {
    let mut request = app
        .client(identity)
        .get(url)
        .header("Authorization", authorization);
    if let Some(proof) = proof {
        request = request.header("DPoP", proof);
    }
    Reply::send(request).await
}

/// Asserts a 401 with `code` and a `WWW-Authenticate` challenge.
fn assert_unauthorized(reply: &Reply, code: &str) {
    reply.assert_error(401, code);
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.contains(code)),
        "{:?}",
        reply.headers
    );
}

#[tokio::test]
async fn checklist_30_35_a_dpop_bound_admin_token_works_only_with_a_proof_of_its_key() {
    let bank = Bank::start().await;
    let app = bank.app();
    let session = &bank.session;
    let url = app.url("/admin/v1/clients");
    let token = session.token.as_str();
    let dpop_auth = format!("DPoP {token}");

    let listed = session
        .call(app, Method::GET, "/admin/v1/clients", None)
        .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    assert!(
        listed.body["items"].as_array().unwrap().len() == 1,
        "{}",
        listed.body
    );

    // #35: a valid proof (with the right ath) by another key.
    let now = server_now(app).await;
    let other = ClientKey::es256(None);
    let proof = dpop_proof(&other, "GET", &url, Some(token), now);
    let reply = get(app, None, &url, &dpop_auth, Some(&proof)).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        ["invalid_token", "invalid_dpop_proof"].contains(&reply.body["error"].as_str().unwrap()),
        "{}",
        reply.body
    );

    // #30: as a Bearer token, without a proof and with one.
    let bearer = format!("Bearer {token}");
    let reply = get(app, None, &url, &bearer, None).await;
    assert_unauthorized(&reply, "invalid_token");
    assert!(
        reply.body["error_description"]
            .as_str()
            .unwrap()
            .contains("RFC 9449 §7.1"),
        "{}",
        reply.body
    );
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(token), now);
    let reply = get(app, None, &url, &bearer, Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_token");

    // The DPoP scheme without a proof.
    let reply = get(app, None, &url, &dpop_auth, None).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");

    // A forged token (our claims, another signature) is refused before any proof is looked at.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_signature = "A".repeat(parts[2].len());
    parts[2] = &forged_signature;
    let forged = parts.join(".");
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(&forged), now);
    let reply = get(app, None, &url, &format!("DPoP {forged}"), Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_token");

    // An expired token: move the server's clock past exp (the proof is dated by that clock).
    let exp = claims_of(token)["exp"].as_i64().unwrap();
    app.advance_clock(exp - now + 1).await;
    let reply = session
        .call(app, Method::GET, "/admin/v1/clients", None)
        .await;
    assert_unauthorized(&reply, "invalid_token");
    assert!(
        reply.body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{}",
        reply.body
    );
}

#[tokio::test]
async fn checklist_31_to_34_the_admin_api_refuses_replayed_or_mismatched_dpop_proofs() {
    let bank = Bank::start().await;
    let app = bank.app();
    let session = &bank.session;
    let url = app.url("/admin/v1/clients");
    let token = session.token.as_str();
    let auth = format!("DPoP {token}");
    let now = server_now(app).await;

    // #31: a proof works once.
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(token), now);
    let reply = get(app, None, &url, &auth, Some(&proof)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = get(app, None, &url, &auth, Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");

    // #32: htu names another URL: another path, or this path on the other listener.
    for htu in [
        app.url("/admin/v1/users"),
        app.mtls_url("/admin/v1/clients"),
    ] {
        let proof = dpop_proof(&session.dpop, "GET", &htu, Some(token), now);
        let reply = get(app, None, &url, &auth, Some(&proof)).await;
        assert_unauthorized(&reply, "invalid_dpop_proof");
    }
    // A query is not part of htu (RFC 9449 §4.3 step 9).
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(token), now);
    let reply = get(app, None, &format!("{url}?limit=1"), &auth, Some(&proof)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // #33: htm is not the request's method.
    let proof = dpop_proof(&session.dpop, "POST", &url, Some(token), now);
    let reply = get(app, None, &url, &auth, Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");

    // #34: ath missing, or the hash of another token.
    let proof = dpop_proof(&session.dpop, "GET", &url, None, now);
    let reply = get(app, None, &url, &auth, Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");
    let proof = dpop_proof(&session.dpop, "GET", &url, Some("another.token.value"), now);
    let reply = get(app, None, &url, &auth, Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");

    // #38 at the admin API: a proof from an hour ago or an hour ahead.
    for iat in [now - 3600, now + 3600] {
        let proof = dpop_proof(&session.dpop, "GET", &url, Some(token), iat);
        let reply = get(app, None, &url, &auth, Some(&proof)).await;
        assert_unauthorized(&reply, "invalid_dpop_proof");
    }
}

#[tokio::test]
async fn checklist_29_a_certificate_bound_admin_token_works_only_with_its_certificate() {
    let bank = Bank::start().await;
    let app = bank.app();
    let identity = ClientIdentity::self_signed("operator-console");
    let cert_key = ClientKey::from_identity(&identity, Some("console"));
    let console = bank
        .add_client(&m2m(
            "self_signed_tls_client_auth",
            &json!({
                "jwks": cert_key.jwks(),
                "tls_client_certificate_bound_access_tokens": true,
                "admin_scopes": ["admin:clients"],
            }),
        ))
        .await;
    assert_eq!(console["admin_scopes"], json!(["admin:clients"]));
    let console = console["client_id"].as_str().unwrap();

    // Only the admin scopes the operator granted.
    let reply = mtls_token(app, Some(&identity), console, "admin:users").await;
    reply.assert_error(400, "invalid_scope");

    let reply = mtls_token(app, Some(&identity), console, "admin:clients").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["token_type"], "Bearer");
    let token = reply.body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["aud"], format!("{}/admin/v1", app.issuer));
    assert_eq!(claims["cnf"], json!({"x5t#S256": identity.x5t_s256()}));

    let url = app.mtls_url("/admin/v1/clients");
    let bearer = format!("Bearer {token}");
    let reply = get(app, Some(&identity), &url, &bearer, None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // #29: another certificate, none on the mTLS listener, and the main listener (which never
    // asks for one).
    let other = ClientIdentity::self_signed("operator-console");
    let reply = get(app, Some(&other), &url, &bearer, None).await;
    assert_unauthorized(&reply, "invalid_token");
    let reply = get(app, None, &url, &bearer, None).await;
    assert_unauthorized(&reply, "invalid_token");
    let reply = get(
        app,
        Some(&identity),
        &app.url("/admin/v1/clients"),
        &bearer,
        None,
    )
    .await;
    assert_unauthorized(&reply, "invalid_token");

    // Not with the DPoP scheme either, even with a valid proof.
    let now = server_now(app).await;
    let key = ClientKey::es256(None);
    let proof = dpop_proof(&key, "GET", &url, Some(token), now);
    let reply = get(
        app,
        Some(&identity),
        &url,
        &format!("DPoP {token}"),
        Some(&proof),
    )
    .await;
    assert_unauthorized(&reply, "invalid_token");

    // Its scope is admin:clients only.
    let reply = get(
        app,
        Some(&identity),
        &app.mtls_url("/admin/v1/keys"),
        &bearer,
        None,
    )
    .await;
    reply.assert_error(403, "insufficient_scope");

    // Removing the grant takes effect at once, for a token already issued.
    let mut updated = bank
        .session
        .call(
            app,
            Method::GET,
            &format!("/admin/v1/clients/{console}"),
            None,
        )
        .await
        .body;
    updated["admin_scopes"] = json!([]);
    let reply = bank
        .session
        .call(
            app,
            Method::PUT,
            &format!("/admin/v1/clients/{console}"),
            Some(&updated),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = get(app, Some(&identity), &url, &bearer, None).await;
    reply.assert_error(403, "insufficient_scope");
}

/// A DPoP-bound admin token is also accepted on the mTLS listener, with a proof naming that
/// listener's URL.
#[tokio::test]
async fn a_dpop_bound_admin_token_works_on_the_mtls_listener_with_its_url_as_htu() {
    let bank = Bank::start().await;
    let app = bank.app();
    let session: &AdminSession = &bank.session;
    let url = app.mtls_url("/admin/v1/keys");
    let token = session.token.as_str();
    let now = server_now(app).await;
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(token), now);
    let reply = get(app, None, &url, &format!("DPoP {token}"), Some(&proof)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let proof = dpop_proof(
        &session.dpop,
        "GET",
        &app.url("/admin/v1/keys"),
        Some(token),
        now,
    );
    let reply = get(app, None, &url, &format!("DPoP {token}"), Some(&proof)).await;
    assert_unauthorized(&reply, "invalid_dpop_proof");
}

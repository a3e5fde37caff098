//! Token services over real TLS, on two server processes sharing one PostgreSQL database: a
//! resource server's client introspects a DPoP-bound and a certificate-bound token at the
//! second process (and gets their `cnf`), an RFC 9701 signed answer verifies with the JWKS, and a
//! refresh token revoked (RFC 7009) at the first process kills its grant's access tokens at the
//! second one at once, cache or not.

use portcullis_testkit::app::App;
use portcullis_testkit::certs::ClientIdentity;
use portcullis_testkit::db::Backend;
use serde_json::{Value, json};

use super::{Auth, Bank, Binding, Browser, Holder, PASSWORD, REDIRECT, Tpp};
use crate::oauth::{Reply, random_id, server_now};
use crate::support::verify_unexpiring;

/// The resource server's client: `tls_client_auth` with a CA-issued certificate, so that it
/// introspects on keep-alive connections without a per-request assertion.
struct ResourceClient {
    tpp: Tpp,
    cert: ClientIdentity,
}

impl ResourceClient {
    /// `POST /introspect` at `app`'s mTLS listener, as JSON or (`signed`) as an RFC 9701 JWT.
    async fn introspect(&self, app: &App, token: &str, signed: bool) -> (u16, String, String) {
        let mut request = app
            .client(Some(&self.cert))
            .post(app.mtls_url("/introspect"))
            .form(&[("token", token), ("client_id", self.tpp.id.as_str())]);
        if signed {
            request = request.header("Accept", "application/token-introspection+jwt");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (status, content_type, response.text().await.unwrap())
    }

    async fn introspect_json(&self, app: &App, token: &str) -> Value {
        let (status, _, body) = self.introspect(app, token, false).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }
}

/// A consent through the pages for `tpp`; the token response.
async fn consent(bank: &Bank, tpp: &Tpp, holder: &Holder) -> Reply {
    let app = bank.app();
    let username = format!("cust-{}", random_id().to_lowercase());
    bank.customer(&username).await;
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, holder, &[], None).await;
    let login = browser.get(&pushed.url).await;
    let consent = browser.log_in(app, &login, &username, PASSWORD).await;
    consent.assert_form("/authorize/consent");
    let account = consent.input("account");
    let redirect = browser
        .approve(app, &consent, &[&account])
        .await
        .redirect_to(REDIRECT);
    let reply = tpp.redeem(app, holder, &pushed, &redirect["code"]).await;
    assert_eq!(reply.status, 200, "token: {}", reply.body);
    reply
}

#[tokio::test]
async fn introspection_of_bound_tokens_and_a_revocation_seen_at_once_by_a_second_process() {
    let bank = Bank::start_on(Backend::Postgres).await;
    let app = bank.app();

    // The accounts API introspects as a client of its own.
    let tpp = bank
        .tpp_with(
            "Accounts API",
            Auth::TlsClientAuth,
            Binding::Certificate,
            "ES256",
            &json!({"introspection_signed_response_alg": "ES256"}),
        )
        .await;
    let rs = ResourceClient {
        cert: bank.holder(&tpp).cert,
        tpp,
    };
    bank.act_for_accounts_api(&rs.tpp).await;

    // Two providers, one with DPoP-bound tokens, one with certificate-bound ones.
    let dpop_tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let mtls_tpp = bank
        .tpp(Auth::TlsClientAuth, Binding::Certificate, "PS256")
        .await;
    let dpop_holder = bank.holder(&dpop_tpp);
    let mtls_holder = bank.holder(&mtls_tpp);
    let dpop_reply = consent(&bank, &dpop_tpp, &dpop_holder).await;
    let mtls_reply = consent(&bank, &mtls_tpp, &mtls_holder).await;

    // The second process starts now, so it has never seen any of this.
    let second = bank.replica().await;

    for (tpp, holder, reply) in [
        (&dpop_tpp, &dpop_holder, &dpop_reply),
        (&mtls_tpp, &mtls_holder, &mtls_reply),
    ] {
        let token = reply.body["access_token"].as_str().unwrap();
        let (cnf, token_type) = tpp.expected_binding(holder);
        for at in [app, &second] {
            let answer = rs.introspect_json(at, token).await;
            assert_eq!(answer["active"], true, "{answer}");
            assert_eq!(answer["cnf"], cnf, "RFC 8705 §3.2 / RFC 9449 §6.2");
            assert_eq!(answer["token_type"], token_type);
            assert_eq!(answer["client_id"], tpp.id.as_str());
            assert_eq!(answer["grant_id"], reply.body["grant_id"]);
            assert_eq!(answer["iss"], app.issuer.as_str());
            assert!(answer["acr"].is_string() && answer["auth_time"].is_i64());
        }
        // The provider itself is no resource server: it learns nothing.
        let refused = Reply::send(
            app.client(Some(&holder.cert))
                .post(app.mtls_url("/introspect"))
                .form(&[("token", token), ("client_id", tpp.id.as_str())]),
        )
        .await;
        if tpp.id == mtls_tpp.id {
            assert_eq!(refused.status, 200);
            assert_eq!(refused.body, json!({"active": false}));
        } else {
            // A private_key_jwt client without its assertion is no authenticated client.
            refused.assert_error(401, "invalid_client");
        }
    }

    // RFC 9701: a signed answer from the second process, verified with the JWKS.
    let token = dpop_reply.body["access_token"].as_str().unwrap();
    let (status, content_type, jwt) = rs.introspect(&second, token, true).await;
    assert_eq!(status, 200, "{jwt}");
    assert_eq!(content_type, "application/token-introspection+jwt");
    let header = crate::oauth::header_of(&jwt);
    assert_eq!(header["typ"], "token-introspection+jwt");
    assert_eq!(
        header["alg"], "ES256",
        "the client's introspection_signed_response_alg"
    );
    let (_, _, jwks) = app.get_json("/jwks").await;
    let claims = verify_unexpiring(&jwt, &jwks).unwrap();
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["aud"], rs.tpp.id.as_str());
    assert_eq!(claims["token_introspection"]["active"], true);
    assert_eq!(
        claims["token_introspection"]["cnf"],
        json!({"jkt": dpop_holder.dpop.thumbprint()})
    );

    // The DPoP provider revokes its refresh token at the first process (RFC 7009): the grant
    // ends, and the access token is inactive at the second process at once, although that
    // process answered about it (and cached the answer) a moment ago.
    let refresh_token = dpop_reply.body["refresh_token"].as_str().unwrap();
    let now = server_now(app).await;
    let mut form = vec![
        ("token".to_owned(), refresh_token.to_owned()),
        ("token_type_hint".to_owned(), "refresh_token".to_owned()),
    ];
    form.extend(dpop_tpp.authentication(app, now));
    let revoked = Reply::send(app.client(None).post(app.url("/revoke")).form(&form)).await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert_eq!(revoked.header("cache-control"), Some("no-store"));
    assert_eq!(
        rs.introspect_json(&second, token).await,
        json!({"active": false})
    );
    let (_, _, jwt) = rs.introspect(&second, token, true).await;
    let claims = verify_unexpiring(&jwt, &jwks).unwrap();
    assert_eq!(claims["token_introspection"], json!({"active": false}));
    assert_eq!(
        dpop_tpp.userinfo(&second, &dpop_holder, token).await.status,
        401
    );
    // The other provider's tokens are untouched.
    let other = mtls_reply.body["access_token"].as_str().unwrap();
    assert_eq!(rs.introspect_json(&second, other).await["active"], true);
}

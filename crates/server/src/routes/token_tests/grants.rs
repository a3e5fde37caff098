//! The Grant Management API (FAPI Grant Management -02 §6), in process: a consent made through
//! the pages, then queried and revoked at `/grants/{grant_id}` with client-credentials tokens
//! for `{issuer}/grants`, bound by DPoP or by a certificate. Only the grant's own client sees
//! it; everyone else gets the answer of an unknown grant.

use rcgen::{CertificateParams, KeyPair};
use rustls_pki_types::CertificateDer;

use super::flow::{VERIFIER, approved_code};
use super::par::{REDIRECT, code_client_with};
use super::*;
use crate::tls::client_cert::CertificateSource;

const DETAILS: &str = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
const BOTH: &str = "grant_management_query grant_management_revoke";

/// A code-flow client that may also use the Grant Management API.
async fn grant_client(h: &Harness) -> Tpp {
    code_client_with(
        h,
        ClientProfile::Fapi2,
        json!({
            "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
            "scope": format!("openid accounts {BOTH}"),
        }),
    )
    .await
}

/// What a token is bound to, and how its holder proves it.
enum Holder {
    Dpop(SigningKey),
    Certificate(CertificateDer<'static>),
}

fn self_signed() -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    CertificateParams::new(vec!["tpp.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap()
        .der()
        .clone()
}

fn presented(der: &CertificateDer<'static>) -> ClientCertificate {
    ClientCertificate::new(der.clone(), CertificateSource::Handshake).with_intermediates(&[])
}

/// A DPoP proof by `key` for `method` and `url`, covering `token` (RFC 9449 §4.2 `ath`).
fn resource_proof(h: &Harness, key: &SigningKey, method: &str, url: &str, token: &str) -> String {
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
    let claims = json!({
        "jti": unique("dpop"), "htm": method, "htu": url, "iat": now(h), "ath": ath
    });
    key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap()
}

/// A sender-constrained access token and what it is bound to.
struct Bound {
    token: String,
    holder: Holder,
}

impl Bound {
    /// A request to `uri` (`https://as.example{uri}`) with the token, proving possession: a DPoP
    /// proof on the main listener, or the certificate on the mTLS listener.
    fn request(&self, h: &Harness, method: &str, uri: &str) -> Request<Body> {
        let builder = Request::builder().method(method).uri(uri);
        match &self.holder {
            Holder::Dpop(key) => {
                let proof = resource_proof(h, key, method, &format!("{ISSUER}{uri}"), &self.token);
                builder
                    .header(header::AUTHORIZATION, format!("DPoP {}", self.token))
                    .header("dpop", proof)
                    .body(Body::empty())
                    .unwrap()
            }
            Holder::Certificate(der) => over_mtls(
                builder
                    .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
                    .body(Body::empty())
                    .unwrap(),
                Some(presented(der)),
            ),
        }
    }

    async fn call(&self, h: &Harness, method: &str, grant_id: &str) -> Answer {
        send(h, self.request(h, method, &format!("/grants/{grant_id}"))).await
    }
}

/// A client-credentials token for `scope`, bound to a fresh DPoP key or (over mTLS) a fresh
/// certificate.
async fn service_token(h: &Harness, tpp: &Tpp, scope: &str, dpop: bool) -> Bound {
    let assertion = tpp.assertion(h);
    let pairs = with_assertion(&assertion, &[("scope", scope)]);
    if dpop {
        let key = dpop_key();
        let answer = send(h, token_request(&pairs, &[("dpop", &dpop_proof(h, &key))])).await;
        let token = answer.issued("DPoP", scope);
        let audience = if scope.starts_with("grant_management_") {
            format!("{ISSUER}/grants")
        } else {
            ACCOUNTS.to_owned()
        };
        let claims = verified_claims(h, &token, &audience).await;
        assert_eq!(claims["aud"], audience, "{claims}");
        Bound {
            token,
            holder: Holder::Dpop(key),
        }
    } else {
        let der = self_signed();
        let answer = send(
            h,
            over_mtls(token_request(&pairs, &[]), Some(presented(&der))),
        )
        .await;
        Bound {
            token: answer.issued("Bearer", scope),
            holder: Holder::Certificate(der),
        }
    }
}

/// A consent by a new customer `username` to `tpp`, redeemed with a DPoP key: the customer, the
/// account chosen, the token response and the key its access token is bound to.
async fn consented(
    h: &Harness,
    tpp: &Tpp,
    username: &str,
    extra: &[(&'static str, &'static str)],
) -> (uuid::Uuid, String, Answer, SigningKey) {
    let (user, account, code) = approved_code(h, tpp, username, extra).await;
    let key = dpop_key();
    let assertion = tpp.assertion(h);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let answer = send(h, token_request(&pairs, &[("dpop", &dpop_proof(h, &key))])).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    (user, account, answer, key)
}

async fn refresh(h: &Harness, tpp: &Tpp, refresh_token: &str) -> Answer {
    let assertion = tpp.assertion(h);
    let pairs = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    send(
        h,
        token_request(&pairs, &[("dpop", &dpop_proof(h, &dpop_key()))]),
    )
    .await
}

fn grant_id(answer: &Answer) -> String {
    answer.body["grant_id"].as_str().unwrap().to_owned()
}

/// Asserts the one answer for a grant the caller may not see: 404 `invalid_grant_id`.
#[track_caller]
fn unknown_grant(answer: &Answer) {
    answer.refused(
        StatusCode::NOT_FOUND,
        "invalid_grant_id",
        "no such grant for this client",
    );
}

#[tokio::test]
async fn gm_6_4_the_owner_queries_what_was_consented() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let (_, account, answer, _) = consented(
        &h,
        &tpp,
        "gm-query",
        &[
            ("authorization_details", DETAILS),
            (
                "claims",
                r#"{"userinfo":{"email":null},"id_token":{"acr":null}}"#,
            ),
            ("resource", ACCOUNTS),
        ],
    )
    .await;
    let at = now(&h);

    for dpop in [true, false] {
        let query = service_token(&h, &tpp, "grant_management_query", dpop).await;
        let found = query.call(&h, "GET", &grant_id(&answer)).await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.body);
        assert_eq!(found.headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            found.body,
            json!({
                "scopes": [{"scope": "openid accounts", "resource": [ACCOUNTS]}],
                "claims": ["email", "acr"],
                "authorization_details": [{
                    "type": "account_information",
                    "actions": ["read_balances"],
                    "accounts": [account],
                }],
                "created_at": at,
                "last_updated": at,
            })
        );
    }
}

#[tokio::test]
async fn gm_6_5_the_owner_revokes_a_grant_and_every_token_under_it_dies() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let (_, _, answer, key) =
        consented(&h, &tpp, "gm-revoke", &[("authorization_details", DETAILS)]).await;
    let grant_id = grant_id(&answer);
    let access_token = answer.body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let at_userinfo = Bound {
        token: access_token,
        holder: Holder::Dpop(key),
    };
    let userinfo = at_userinfo.request(&h, "GET", "/userinfo");
    assert_eq!(send(&h, userinfo).await.status, StatusCode::OK);

    // A certificate-bound token with both scopes (the mTLS listener).
    let manage = service_token(&h, &tpp, BOTH, false).await;
    let revoked = manage.call(&h, "DELETE", &grant_id).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    assert_eq!(revoked.body, Value::Null, "an empty body");

    // GM §6.5: the refresh tokens die with it, and so do the access tokens.
    refresh(&h, &tpp, &refresh_token)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "");
    let userinfo = send(&h, at_userinfo.request(&h, "GET", "/userinfo")).await;
    assert_eq!(
        userinfo.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        userinfo.body
    );
    assert_eq!(userinfo.body["error"], "invalid_token");
    let grant = h.state.store.grants().find(&grant_id).await.unwrap();
    assert!(grant.revoked_at.is_some());

    // Gone for the API too, whatever is asked.
    unknown_grant(&manage.call(&h, "GET", &grant_id).await);
    unknown_grant(&manage.call(&h, "DELETE", &grant_id).await);
}

#[tokio::test]
async fn disabling_a_customer_revokes_their_grants_and_every_token_under_them() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let (user, _, answer, key) = consented(
        &h,
        &tpp,
        "gm-disabled",
        &[("authorization_details", DETAILS)],
    )
    .await;
    let grant_id = grant_id(&answer);
    let refresh_token = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let at_userinfo = Bound {
        token: answer.body["access_token"].as_str().unwrap().to_owned(),
        holder: Holder::Dpop(key),
    };
    assert_eq!(
        send(&h, at_userinfo.request(&h, "GET", "/userinfo"))
            .await
            .status,
        StatusCode::OK
    );

    // The operator disables the customer through the admin API.
    let settings = ClientSettings {
        admin_scopes: vec!["admin:users".into()],
        ..ClientSettings::default()
    };
    let operator = private_key_jwt_client_with(&h, ClientProfile::Fapi2, settings).await;
    let operator_key = dpop_key();
    let token = send(
        &h,
        token_request(
            &with_assertion(&operator.assertion(&h), &[("scope", "admin:users")]),
            &[("dpop", &dpop_proof(&h, &operator_key))],
        ),
    )
    .await
    .issued("DPoP", "admin:users");
    let admin = Bound {
        token,
        holder: Holder::Dpop(operator_key),
    };
    let disable = format!("/admin/v1/users/{user}/disable");
    let disabled = send(&h, admin.request(&h, "POST", &disable)).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert!(
        disabled.body["disabled_at"].is_string(),
        "{}",
        disabled.body
    );
    assert_eq!(disabled.body["grants_revoked"], 1);

    // The grant is revoked: the refresh token and the access token die with it.
    let grant = h.state.store.grants().find(&grant_id).await.unwrap();
    assert!(grant.revoked_at.is_some());
    refresh(&h, &tpp, &refresh_token)
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_grant", "");
    let userinfo = send(&h, at_userinfo.request(&h, "GET", "/userinfo")).await;
    assert_eq!(
        userinfo.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        userinfo.body
    );
    // Disabling again (a retry) is harmless and finds nothing more to revoke.
    let again = send(&h, admin.request(&h, "POST", &disable)).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["grants_revoked"], 0);
}

#[tokio::test]
async fn gm_6_6_another_clients_grant_is_as_unknown_as_no_grant() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let other = grant_client(&h).await;
    let (_, _, answer, _) =
        consented(&h, &tpp, "gm-other", &[("authorization_details", DETAILS)]).await;
    let grant_id = grant_id(&answer);

    let intruder = service_token(&h, &other, BOTH, true).await;
    let nothing = intruder.call(&h, "GET", "no-such-grant").await;
    unknown_grant(&nothing);
    for method in ["GET", "DELETE"] {
        let refused = intruder.call(&h, method, &grant_id).await;
        unknown_grant(&refused);
        assert_eq!(
            refused.body, nothing.body,
            "{method}: nothing to tell them apart"
        );
    }
    unknown_grant(&intruder.call(&h, "GET", &"x".repeat(300)).await);

    // The grant is untouched: its owner still sees it and still refreshes under it.
    let owner = service_token(&h, &tpp, "grant_management_query", true).await;
    assert_eq!(
        owner.call(&h, "GET", &grant_id).await.status,
        StatusCode::OK
    );
    let renewed = refresh(&h, &tpp, answer.body["refresh_token"].as_str().unwrap()).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    assert_eq!(renewed.body["grant_id"], grant_id.as_str());
}

#[tokio::test]
async fn rfc_6750_3_1_each_action_needs_its_scope_in_the_token_and_the_registration() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let (_, _, answer, _) =
        consented(&h, &tpp, "gm-scope", &[("authorization_details", DETAILS)]).await;
    let grant_id = grant_id(&answer);

    let query = service_token(&h, &tpp, "grant_management_query", true).await;
    let refused = query.call(&h, "DELETE", &grant_id).await;
    refused.refused(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "grant_management_revoke",
    );
    let challenge = refused.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("DPoP error=\"insufficient_scope\"")
            && challenge.contains("scope=\"grant_management_revoke\""),
        "{challenge}"
    );

    let revoke = service_token(&h, &tpp, "grant_management_revoke", false).await;
    let refused = revoke.call(&h, "GET", &grant_id).await;
    refused.refused(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "grant_management_query",
    );
    let challenge = refused.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\"")
            && challenge.contains("scope=\"grant_management_query\""),
        "{challenge}"
    );
    assert_eq!(
        query.call(&h, "GET", &grant_id).await.status,
        StatusCode::OK
    );

    // The operator takes the scope away: the token already issued stops working at once.
    let client_id = portcullis_core::client::ClientId::parse(&tpp.id).unwrap();
    let mut client = h
        .state
        .store
        .clients()
        .find_by_id(&client_id)
        .await
        .unwrap();
    client.metadata["scope"] = json!("openid accounts grant_management_revoke");
    h.state.store.clients().update(&client).await.unwrap();
    query.call(&h, "GET", &grant_id).await.refused(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "grant_management_query",
    );

    // A client that did not register the scopes gets no token for the API.
    let plain = code_client_with(
        &h,
        ClientProfile::Fapi2,
        json!({"grant_types": ["authorization_code", "refresh_token", "client_credentials"]}),
    )
    .await;
    let assertion = plain.assertion(&h);
    post_assertion(&h, &assertion, &[("scope", "grant_management_query")])
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_scope", "");
}

#[tokio::test]
async fn gm_6_6_no_token_or_a_token_for_another_audience_is_401() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = grant_client(&h).await;
    let (_, _, answer, key) = consented(
        &h,
        &tpp,
        "gm-audience",
        &[("authorization_details", DETAILS)],
    )
    .await;
    let grant_id = grant_id(&answer);
    let uri = format!("/grants/{grant_id}");

    // No token: a challenge without an error code (RFC 6750 §3.1).
    for method in ["GET", "DELETE"] {
        let none = send(
            &h,
            Request::builder()
                .method(method)
                .uri(&uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(none.status, StatusCode::UNAUTHORIZED, "{method}");
        let challenge = none.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.contains("DPoP") && challenge.contains("Bearer"),
            "{challenge}"
        );
    }

    // The grant's own access token (for the accounts API and userinfo).
    let code_token = Bound {
        token: answer.body["access_token"].as_str().unwrap().to_owned(),
        holder: Holder::Dpop(key),
    };
    // A client-credentials token for the accounts API.
    let accounts = service_token(&h, &tpp, "accounts", true).await;
    for bound in [&code_token, &accounts] {
        for method in ["GET", "DELETE"] {
            let refused = bound.call(&h, method, &grant_id).await;
            refused.refused(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is not for the grant management API",
            );
            assert!(
                refused.headers[header::WWW_AUTHENTICATE]
                    .to_str()
                    .unwrap()
                    .starts_with("DPoP error=\"invalid_token\"")
            );
        }
    }
    // A proof for another URL does not carry the token either (RFC 9449 §4.3).
    let query = service_token(&h, &tpp, "grant_management_query", true).await;
    let elsewhere = send(&h, query.request(&h, "GET", "/userinfo")).await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);
    let Holder::Dpop(key) = &query.holder else {
        unreachable!()
    };
    let misdirected = Request::get(&uri)
        .header(header::AUTHORIZATION, format!("DPoP {}", query.token))
        .header(
            "dpop",
            resource_proof(
                &h,
                key,
                "GET",
                &format!("{ISSUER}/grants/other"),
                &query.token,
            ),
        )
        .body(Body::empty())
        .unwrap();
    let refused = send(&h, misdirected).await;
    refused.refused(StatusCode::UNAUTHORIZED, "invalid_dpop_proof", "");

    // The grant stands after all that.
    assert_eq!(
        query.call(&h, "GET", &grant_id).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn gm_7_1_discovery_advertises_the_grant_management_api() {
    let h = harness().await;
    let (status, _, doc) =
        crate::routes::tests::get(&h.router, "/.well-known/openid-configuration").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc["grant_management_endpoint"],
        "https://as.example/grants"
    );
    assert_eq!(
        doc["mtls_endpoint_aliases"]["grant_management_endpoint"],
        "https://mtls.as.example/grants"
    );
    assert_eq!(
        doc["grant_management_actions_supported"],
        json!(["query", "revoke", "create", "merge", "replace"])
    );
    assert_eq!(doc["grant_management_action_required"], false);
    let scopes = doc["scopes_supported"].as_array().unwrap();
    for scope in ["grant_management_query", "grant_management_revoke"] {
        assert!(scopes.contains(&json!(scope)), "{scope}");
    }
}

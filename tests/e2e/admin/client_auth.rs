//! Client authentication at the token endpoint, over the wire, for clients registered through the
//! admin API: every attack of checklist #14–#28 gets its RFC error naming the rule, and a correct
//! request by the same client succeeds afterwards, so that each refusal is for the one defect.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_testkit::app::App;
use portcullis_testkit::certs::ClientIdentity;
use serde_json::{Value, json};

use super::{Bank, TLS_CLIENT_DN, m2m, mtls_token};
use crate::oauth::{
    ClientKey, Credentials, Reply, assertion_claims, assertion_form, client_credentials_form,
    dpop_proof, post_form, server_now,
};

/// A FAPI 2.0 `private_key_jwt` client with an EC and an RSA key, its tokens DPoP-bound.
struct AssertionClient {
    client_id: String,
    ec: ClientKey,
    rsa: ClientKey,
}

async fn assertion_client(bank: &Bank) -> AssertionClient {
    bank.add_resource().await;
    let ec = ClientKey::es256(Some("ec-1"));
    let rsa = ClientKey::ps256(Some("rsa-1"));
    let client_id = bank
        .add_client_id(&m2m(
            "private_key_jwt",
            &json!({
                "jwks": {"keys": [ec.public_jwk(), rsa.public_jwk()]},
                "dpop_bound_access_tokens": true,
            }),
        ))
        .await;
    AssertionClient { client_id, ec, rsa }
}

/// A client-credentials request on the main listener with `assertion` and a valid DPoP proof.
async fn with_assertion(app: &App, assertion: &str) -> Reply {
    let token_url = app.url("/token");
    let now = server_now(app).await;
    let mut form = client_credentials_form("accounts");
    form.extend(assertion_form(assertion));
    let credentials = Credentials {
        dpop: Some(dpop_proof(
            &ClientKey::es256(None),
            "POST",
            &token_url,
            None,
            now,
        )),
        basic: None,
    };
    post_form(&app.client(None), &token_url, &form, &credentials).await
}

/// Asserts 401 `invalid_client` whose description contains `rule`.
fn assert_invalid_client(reply: &Reply, rule: &str) {
    reply.assert_error(401, "invalid_client");
    let description = reply.body["error_description"].as_str().unwrap();
    assert!(
        description.contains(rule),
        "{description:?} does not name {rule:?}"
    );
}

/// The claims of a valid assertion of `client`, with `changes` applied (`null` removes).
async fn claims(app: &App, client: &AssertionClient, changes: &Value) -> Value {
    let now = server_now(app).await;
    let mut claims = assertion_claims(&client.client_id, &app.issuer, now);
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// An unsigned JWS (`alg` `none`, RFC 7519 §6).
fn unsecured(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };
    format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test]
async fn checklist_14_15_28_no_authentication_a_secret_for_a_fapi_client_or_no_proof_of_possession()
{
    let bank = Bank::start().await;
    let app = bank.app();
    let client = assertion_client(&bank).await;
    let http = app.client(None);
    let token_url = app.url("/token");

    // #14: no client authentication at all, or only a client_id for a private_key_jwt client.
    let form = client_credentials_form("accounts");
    let reply = post_form(&http, &token_url, &form, &Credentials::default()).await;
    assert_invalid_client(&reply, "required");
    let mut with_id = form.clone();
    with_id.push(("client_id".into(), client.client_id.clone()));
    let reply = post_form(&http, &token_url, &with_id, &Credentials::default()).await;
    assert_invalid_client(&reply, "private_key_jwt");

    // #15: client secrets are not for FAPI clients, in the header or in the body.
    let basic = Credentials {
        dpop: None,
        basic: Some((client.client_id.clone(), "guessed-secret".into())),
    };
    let reply = post_form(&http, &token_url, &form, &basic).await;
    assert_invalid_client(&reply, "SP 5.3.2.1-6");
    assert!(
        reply
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Basic")),
        "{:?}",
        reply.headers
    );
    let mut post = with_id.clone();
    post.push(("client_secret".into(), "guessed-secret".into()));
    let reply = post_form(&http, &token_url, &post, &Credentials::default()).await;
    assert_invalid_client(&reply, "SP 5.3.2.1-6");

    // #28: an authenticated client with neither a DPoP proof nor a certificate gets no token;
    // 400, as the client did authenticate.
    let now = server_now(app).await;
    let mut form = client_credentials_form("accounts");
    form.extend(assertion_form(&client.ec.sign(&assertion_claims(
        &client.client_id,
        &app.issuer,
        now,
    ))));
    let reply = post_form(&http, &token_url, &form, &Credentials::default()).await;
    reply.assert_error(400, "invalid_dpop_proof");
    let key = ClientKey::es256(Some("k"));
    let unbound = bank
        .add_client_id(&m2m("private_key_jwt", &json!({"jwks": key.jwks()})))
        .await;
    let mut form = client_credentials_form("accounts");
    form.extend(assertion_form(&key.sign(&assertion_claims(
        &unbound,
        &app.issuer,
        now,
    ))));
    let reply = post_form(&http, &token_url, &form, &Credentials::default()).await;
    reply.assert_error(400, "invalid_request");
    assert!(
        reply.body["error_description"]
            .as_str()
            .unwrap()
            .contains("SP 5.3.2.1-4"),
        "{}",
        reply.body
    );

    // Control: the same client with a proof.
    let reply = with_assertion(
        app,
        &client.ec.sign(&claims(app, &client, &json!({})).await),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn checklist_16_17_assertion_audience_must_be_the_issuer_as_a_single_string() {
    let bank = Bank::start().await;
    let app = bank.app();
    let client = assertion_client(&bank).await;

    // #16: another server.
    let other = claims(app, &client, &json!({"aud": "https://other-as.example"})).await;
    let reply = with_assertion(app, &client.ec.sign(&other)).await;
    assert_invalid_client(&reply, "SP 5.3.2.1-8");

    // #17: the token endpoint URL, or an array holding the issuer.
    let endpoint = claims(app, &client, &json!({"aud": app.url("/token")})).await;
    let reply = with_assertion(app, &client.ec.sign(&endpoint)).await;
    assert_invalid_client(&reply, "SP 5.3.2.1-8");
    let array = claims(app, &client, &json!({"aud": [app.issuer]})).await;
    let reply = with_assertion(app, &client.ec.sign(&array)).await;
    assert_invalid_client(&reply, "not an array");

    let good = claims(app, &client, &json!({})).await;
    assert_eq!(
        with_assertion(app, &client.ec.sign(&good)).await.status,
        200
    );
}

#[tokio::test]
async fn checklist_18_19_assertion_expired_or_dated_in_the_future_is_invalid_client() {
    let bank = Bank::start().await;
    let app = bank.app();
    let client = assertion_client(&bank).await;
    let now = server_now(app).await;

    // #18: exp in the past.
    let expired = claims(app, &client, &json!({"iat": now - 600, "exp": now - 300})).await;
    let reply = with_assertion(app, &client.ec.sign(&expired)).await;
    assert_invalid_client(&reply, "expired");

    // #19: nbf or iat two minutes ahead.
    for member in ["nbf", "iat"] {
        let ahead = claims(app, &client, &json!({member: now + 120, "exp": now + 180})).await;
        let reply = with_assertion(app, &client.ec.sign(&ahead)).await;
        assert_invalid_client(&reply, "SP 5.3.2.1-13");
    }
    // Eight seconds of skew must pass (SP 5.3.2.1-13).
    let skewed = claims(app, &client, &json!({"iat": now + 8, "nbf": now + 8})).await;
    let reply = with_assertion(app, &client.ec.sign(&skewed)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // A valid assertion expires when the server's clock passes its exp.
    let soon = client.ec.sign(&claims(app, &client, &json!({})).await);
    app.advance_clock(120).await;
    assert_invalid_client(&with_assertion(app, &soon).await, "expired");
}

#[tokio::test]
async fn checklist_20_a_replayed_assertion_is_invalid_client() {
    let bank = Bank::start().await;
    let app = bank.app();
    let client = assertion_client(&bank).await;
    let assertion = client.ec.sign(&claims(app, &client, &json!({})).await);
    let first = with_assertion(app, &assertion).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let replayed = with_assertion(app, &assertion).await;
    assert_invalid_client(&replayed, "OIDC Core §9");
    // The same assertion on the mTLS listener is a replay too: one store for both.
    let token_url = app.mtls_url("/token");
    let now = server_now(app).await;
    let mut form = client_credentials_form("accounts");
    form.extend(assertion_form(&assertion));
    let credentials = Credentials {
        dpop: Some(dpop_proof(
            &ClientKey::es256(None),
            "POST",
            &token_url,
            None,
            now,
        )),
        basic: None,
    };
    let reply = post_form(&app.client(None), &token_url, &form, &credentials).await;
    assert_invalid_client(&reply, "OIDC Core §9");
}

#[tokio::test]
async fn checklist_21_to_25_assertion_subject_algorithm_and_key_attacks_are_invalid_client() {
    let bank = Bank::start().await;
    let app = bank.app();
    let client = assertion_client(&bank).await;

    // #21: iss is not the client, or sub is missing.
    let wrong_iss = claims(app, &client, &json!({"iss": "someone-else"})).await;
    let reply = with_assertion(app, &client.ec.sign(&wrong_iss)).await;
    assert_invalid_client(&reply, "iss must be the client_id");
    let no_sub = claims(app, &client, &json!({"sub": null})).await;
    let reply = with_assertion(app, &client.ec.sign(&no_sub)).await;
    assert_invalid_client(&reply, "sub");

    // #22: alg none.
    let good = claims(app, &client, &json!({})).await;
    let reply = with_assertion(app, &unsecured(&good)).await;
    assert_invalid_client(&reply, "SP 5.4.1");

    // #23: HS256 keyed with the client's public key (algorithm confusion, RFC 8725 §2.1).
    let public = serde_json::to_vec(&client.ec.public_jwk()).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("ec-1".into());
    let hs256 = jsonwebtoken::encode(
        &header,
        &claims(app, &client, &json!({})).await,
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_invalid_client(&with_assertion(app, &hs256).await, "SP 5.4.1");

    // #24: RS256 with the client's registered RSA key.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let rs256 = client
        .rsa
        .sign_with_header(&header, &claims(app, &client, &json!({})).await);
    assert_invalid_client(&with_assertion(app, &rs256).await, "SP 5.4.1");

    // #25: a key outside the client's JWKS: an unknown kid, or a registered kid and another key.
    let stranger = ClientKey::es256(Some("unknown"));
    let reply = with_assertion(app, &stranger.sign(&claims(app, &client, &json!({})).await)).await;
    assert_invalid_client(&reply, "of the client");
    let impostor = ClientKey::es256(Some("ec-1"));
    let reply = with_assertion(app, &impostor.sign(&claims(app, &client, &json!({})).await)).await;
    assert_invalid_client(&reply, "does not verify");

    // Controls: both registered keys, with their FAPI algorithms.
    for key in [&client.ec, &client.rsa] {
        let reply = with_assertion(app, &key.sign(&claims(app, &client, &json!({})).await)).await;
        assert_eq!(reply.status, 200, "{:?}: {}", key.alg, reply.body);
    }
}

#[tokio::test]
async fn checklist_26_27_certificates_that_do_not_match_the_client_are_invalid_client() {
    let bank = Bank::start().await;
    let app = bank.app();
    bank.add_resource().await;
    let tls = bank
        .add_client_id(&m2m(
            "tls_client_auth",
            &json!({"tls_client_auth_subject_dn": TLS_CLIENT_DN}),
        ))
        .await;
    let registered = ClientIdentity::self_signed("tpp-self-signed");
    let self_signed = bank
        .add_client_id(&m2m(
            "self_signed_tls_client_auth",
            &json!({"jwks": ClientKey::from_identity(&registered, Some("cert")).jwks()}),
        ))
        .await;

    // #26: a certificate of the trusted CA for another subject; one with the right name that
    // does not chain to the CA; none at all (the main listener never asks for one).
    let other_subject = bank.ca.issue("Example TPP", "tpp-other");
    let reply = mtls_token(app, Some(&other_subject), &tls, "accounts").await;
    assert_invalid_client(&reply, "RFC 8705 §2.1.2");
    let untrusted = ClientIdentity::self_signed("tpp-mtls");
    let reply = mtls_token(app, Some(&untrusted), &tls, "accounts").await;
    assert_invalid_client(&reply, "does not chain to a trusted CA");
    let mut form = client_credentials_form("accounts");
    form.push(("client_id".into(), tls.clone()));
    let reply = post_form(
        &app.client(None),
        &app.url("/token"),
        &form,
        &Credentials::default(),
    )
    .await;
    assert_invalid_client(&reply, "mtls_endpoint_aliases");

    // #27: a self-signed certificate whose key is not in the client's JWKS, and a CA-issued one.
    for wrong in [
        ClientIdentity::self_signed("tpp-self-signed"),
        bank.ca.issue("Example TPP", "tpp-self-signed"),
    ] {
        let reply = mtls_token(app, Some(&wrong), &self_signed, "accounts").await;
        assert_invalid_client(&reply, "RFC 8705 §2.2");
    }

    // Controls: the right certificates.
    let right = bank.ca.issue("Example TPP", "tpp-mtls");
    let reply = mtls_token(app, Some(&right), &tls, "accounts").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = mtls_token(app, Some(&registered), &self_signed, "accounts").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

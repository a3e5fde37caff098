//! Discovery and JWKS over TLS, trusting only the generated development CA.

use base64::Engine as _;
use portcullis_testkit::db::Backend;

use crate::support::{Fixture, kids, sign, verify_independently};

#[tokio::test]
async fn discovery_names_exactly_the_issuer_over_tls_trusting_the_generated_ca() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (status, _, oidc) = f.app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    // OIDC Discovery §4.3 / RFC 8414 §3.3: the issuer is exactly the configured one.
    assert_eq!(oidc["issuer"], f.app.issuer.as_str());
    assert_eq!(oidc["jwks_uri"], f.app.url("/jwks"));
    let (_, _, oauth) = f
        .app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(oidc, oauth);
}

#[tokio::test]
async fn configured_issuer_is_published_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.args = vec!["--issuer".into(), "https://auth.bank.example".into()];
    let app = portcullis_testkit::app::App::spawn(options).await;
    // The server still listens on localhost; only the published identifier changes.
    let response = app
        .client(None)
        .get(format!(
            "https://localhost:{}/.well-known/openid-configuration",
            app.listen.port()
        ))
        .send()
        .await
        .unwrap();
    let doc: serde_json::Value = response.json().await.unwrap();
    assert_eq!(doc["issuer"], "https://auth.bank.example");
    assert_eq!(doc["jwks_uri"], "https://auth.bank.example/jwks");
}

#[tokio::test]
async fn sp_5_4_2_jwks_has_public_keys_only_unique_kids_and_cache_control() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (status, headers, jwks) = f.app.get_json("/jwks").await;
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    let keys = jwks["keys"].as_array().unwrap();
    let mut algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "PS256"]);
    let mut unique = kids(&jwks);
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "duplicate kid");
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} published: {key}"
            );
        }
        assert_eq!(key["use"], "sig");
        if key["kty"] == "RSA" {
            // SP 5.4.1-2: at least 2048 bits.
            let n = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(key["n"].as_str().unwrap())
                .unwrap();
            assert!(n.len() >= 256, "RSA modulus of {} bytes", n.len());
        }
    }
}

#[tokio::test]
async fn a_jwt_signed_by_the_active_key_verifies_with_the_published_jwks() {
    let f = Fixture::start(Backend::Sqlite).await;
    let (_, _, jwks) = f.app.get_json("/jwks").await;
    for alg in ["PS256", "ES256", "EdDSA"] {
        let (jwt, kid) = sign(&f.app, alg).await;
        assert!(kids(&jwks).contains(&kid));
        let claims = verify_independently(&jwt, &jwks).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(claims["sub"], "e2e");
    }
}

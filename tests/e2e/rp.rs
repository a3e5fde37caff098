//! The `openidconnect` crate as the relying party, for the steps it covers: discovery (the
//! provider metadata and the JWKS it names, fetched and validated by the crate over TLS trusting
//! only the development CA) and the verification of an ID token from the code flow (signature
//! against the discovered JWKS, `iss`, `aud`, `azp`, expiry, nonce, `at_hash`). The flow itself
//! is driven by the helpers of [`crate::flow`]: `openidconnect` sends neither PAR with
//! `private_key_jwt` nor DPoP proofs. Userinfo is not called through it for the same reason: its
//! `UserInfoRequest` only presents the access token as `Bearer`, and a FAPI 2.0 client's token
//! is DPoP- or certificate-bound ([`crate::flow`] covers userinfo).

use std::str::FromStr as _;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm, CoreProviderMetadata,
    CoreResponseType,
};
use openidconnect::{
    AccessToken, AccessTokenHash, ClaimsVerificationError, ClientId, IssuerUrl, JsonWebKey as _,
    Nonce, ResponseTypes,
};
use portcullis_testkit::app::App;
use portcullis_testkit::db::Backend;
use serde_json::Value;

use crate::flow::{
    ACR_PASSWORD, Auth, Bank, Binding, Browser, PASSWORD, REDIRECT, check_code_tokens,
};
use crate::oauth::random_id;
use crate::support::{Fixture, kids};

/// The HTTP client `openidconnect` uses: its own `reqwest`, trusting only the development CA,
/// HTTPS only, following no redirect (as the crate advises against SSRF).
fn rp_http(app: &App) -> openidconnect::reqwest::Client {
    let ca = openidconnect::reqwest::Certificate::from_pem(app.ca_pem.as_deref().unwrap()).unwrap();
    openidconnect::reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .https_only(true)
        .redirect(openidconnect::reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

/// OIDC Discovery through `openidconnect`: the metadata at the issuer's well-known URL, checked by
/// the crate against the issuer, and the JWKS at its `jwks_uri`.
async fn discover(app: &App) -> CoreProviderMetadata {
    let issuer = IssuerUrl::new(app.issuer.clone()).unwrap();
    CoreProviderMetadata::discover_async(issuer, &rp_http(app))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "openidconnect refuses the discovery of {}: {e:?}",
                app.issuer
            )
        })
}

#[tokio::test]
async fn openidconnect_accepts_the_discovery_document_and_the_jwks_it_names() {
    let f = Fixture::start(Backend::Sqlite).await;
    let app = &f.app;
    let (status, _, doc) = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(status, 200);
    let provider = discover(app).await;

    assert_eq!(provider.issuer().as_str(), app.issuer);
    assert_eq!(doc["issuer"], provider.issuer().as_str());
    assert_eq!(
        doc["authorization_endpoint"],
        provider.authorization_endpoint().as_str()
    );
    assert_eq!(
        provider.authorization_endpoint().as_str(),
        app.url("/authorize")
    );
    let token = provider.token_endpoint().unwrap();
    assert_eq!(doc["token_endpoint"], token.as_str());
    assert_eq!(token.as_str(), app.url("/token"));
    let userinfo = provider.userinfo_endpoint().unwrap();
    assert_eq!(doc["userinfo_endpoint"], userinfo.as_str());
    assert_eq!(userinfo.as_str(), app.url("/userinfo"));
    assert_eq!(doc["jwks_uri"], provider.jwks_uri().as_str());
    assert_eq!(provider.jwks_uri().as_str(), app.url("/jwks"));

    // FAPI 2.0: the code flow only.
    assert_eq!(
        provider.response_types_supported(),
        &vec![ResponseTypes::new(vec![CoreResponseType::Code])]
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    // The signing algorithms as the crate understood them, and as the document says.
    let algs = provider.id_token_signing_alg_values_supported();
    assert_eq!(
        serde_json::to_value(algs).unwrap(),
        doc["id_token_signing_alg_values_supported"]
    );
    for alg in [
        CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    ] {
        assert!(algs.contains(&alg), "{alg:?} is not in {algs:?}");
    }
    assert!(
        !algs.contains(&CoreJwsSigningAlgorithm::None),
        "unsigned ID tokens"
    );

    // The keys `discover_async` fetched from `jwks_uri` are those of /jwks.
    let (status, _, jwks) = app.get_json("/jwks").await;
    assert_eq!(status, 200);
    let discovered: Vec<String> = provider
        .jwks()
        .keys()
        .iter()
        .map(|k| k.key_id().unwrap().to_string())
        .collect();
    assert_eq!(discovered, kids(&jwks));
}

#[tokio::test]
async fn openidconnect_verifies_the_es256_id_token_of_the_code_flow_and_rejects_a_tampered_one() {
    let bank = Bank::start().await;
    let app = bank.app();
    let provider = discover(app).await;

    // The flow through the pages, by the e2e helpers: PAR (the code bound to the DPoP key),
    // login, consent choosing an account, the code at /token.
    let tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let username = format!("cust-{}", random_id().to_lowercase());
    let user = bank.customer(&username).await;
    let holder = bank.holder(&tpp);
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[], Some(&holder.dpop)).await;
    let login = browser.get(&pushed.url).await;
    login.assert_form("/authorize/login");
    let consent = browser.log_in(app, &login, &username, PASSWORD).await;
    consent.assert_form("/authorize/consent");
    let accounts = consent.inputs("account");
    let account = accounts.first().unwrap();
    let redirect = browser
        .approve(app, &consent, &[account])
        .await
        .redirect_to(REDIRECT);
    assert_eq!(redirect["state"], pushed.state);
    let reply = tpp.redeem(app, &holder, &pushed, &redirect["code"]).await;
    // (`check_code_tokens` verifies them with `jsonwebtoken`; below, `openidconnect` does.)
    let (access_token, id) =
        check_code_tokens(app, &tpp, &holder, &reply, &pushed, &user, account).await;
    let raw = reply.body["id_token"].as_str().unwrap();

    // The RP's verifier: the client's id, the discovered issuer and JWKS, ES256 only.
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(tpp.id.clone()),
        provider.issuer().clone(),
        provider.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let nonce = Nonce::new(pushed.nonce.clone());
    let id_token = CoreIdToken::from_str(raw).unwrap();
    let claims = id_token
        .claims(&verifier, &nonce)
        .unwrap_or_else(|e| panic!("openidconnect refuses {raw}: {e:?}"));
    assert_eq!(claims.issuer().as_str(), app.issuer);
    assert_eq!(claims.subject().as_str(), user);
    assert_eq!(
        claims
            .audiences()
            .iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>(),
        [tpp.id.as_str()]
    );
    assert_eq!(claims.authorized_party().unwrap().as_str(), tpp.id);
    assert_eq!(claims.nonce().unwrap().secret(), &pushed.nonce);
    assert_eq!(
        claims.auth_time().unwrap().timestamp(),
        id["auth_time"].as_i64().unwrap()
    );
    assert!(claims.auth_time().unwrap() <= claims.issue_time());
    assert_eq!(claims.auth_context_ref().unwrap().as_str(), ACR_PASSWORD);

    // at_hash (OIDC Core §3.1.3.8) as openidconnect computes it for the token's alg and key.
    let alg = id_token.signing_alg().unwrap();
    assert_eq!(*alg, CoreJwsSigningAlgorithm::EcdsaP256Sha256);
    let key = id_token.signing_key(&verifier).unwrap();
    let expected = AccessTokenHash::from_token(&AccessToken::new(access_token), alg, key).unwrap();
    assert_eq!(claims.access_token_hash(), Some(&expected));

    // Another nonce, or an allow-list without ES256, and the crate refuses the same token.
    assert!(matches!(
        id_token.claims(&verifier, &Nonce::new(random_id())),
        Err(ClaimsVerificationError::InvalidNonce(_))
    ));
    let ps256_only = CoreIdTokenVerifier::new_public_client(
        ClientId::new(tpp.id.clone()),
        provider.issuer().clone(),
        provider.jwks().clone(),
    )
    .set_allowed_algs([CoreJwsSigningAlgorithm::RsaSsaPssSha256]);
    assert!(matches!(
        id_token.claims(&ps256_only, &nonce),
        Err(ClaimsVerificationError::SignatureVerification(_))
    ));

    // One byte of the payload changed (the last character of the nonce, still valid JSON): the
    // signature no longer verifies.
    let tampered = tamper(raw, &pushed.nonce);
    let forged = CoreIdToken::from_str(&tampered).unwrap();
    let refused = forged.claims(&verifier, &nonce);
    assert!(
        matches!(
            refused,
            Err(ClaimsVerificationError::SignatureVerification(_))
        ),
        "{refused:?}"
    );
}

/// `jwt` with one byte of its payload changed: the last character of the `nonce` value.
fn tamper(jwt: &str, nonce: &str) -> String {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let mut payload = URL_SAFE_NO_PAD.decode(parts[1]).unwrap();
    let member = format!(r#""nonce":"{nonce}""#);
    let at = payload
        .windows(member.len())
        .position(|w| w == member.as_bytes())
        .unwrap_or_else(|| panic!("no {member} in the payload"));
    let last = at + member.len() - 2;
    payload[last] = if payload[last] == b'A' { b'B' } else { b'A' };
    let claims: Value = serde_json::from_slice(&payload).unwrap();
    assert_ne!(claims["nonce"], nonce);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(&payload),
        parts[2]
    )
}

//! Client authentication at `/token` by assertion (`private_key_jwt`, RFC 7523 §3 as FAPI2 SP
//! 5.3.2.1 restricts it) and by client secret (`oauth` profile only): checklist #4, #14–#25.

use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::STANDARD;

use super::*;

#[tokio::test]
async fn private_key_jwt_with_dpop_gets_a_dpop_bound_token_for_the_resource() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let answer = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &proof)],
        ),
    )
    .await;

    let token = answer.issued("DPoP", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &tpp.id,
        "accounts",
        &json!({ "jkt": thumbprint(&key) }),
    );
    assert_eq!(claims["aud"], ACCOUNTS);
    assert_eq!(claims["iat"], now(&h));
}

#[tokio::test]
async fn checklist_20_replayed_assertion_jti_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    post_assertion(&h, &assertion, &[])
        .await
        .issued("DPoP", "accounts");
    // A second later, with a fresh DPoP proof: the assertion itself is spent.
    h.clock.advance(time::Duration::seconds(1));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("single-use (OIDC Core §9)");
}

#[tokio::test]
async fn checklist_16_assertion_for_another_server_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion_with(&h, json!({ "aud": "https://other-bank.example" }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("aud must be the issuer identifier (FAPI2 SP 5.3.2.1-8)");
}

#[tokio::test]
async fn checklist_17_fapi_assertion_aud_is_the_issuer_string_not_an_endpoint_or_an_array() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    for aud in [
        json!(TOKEN_URL),
        json!(MTLS_TOKEN_URL),
        json!("https://as.example/par"),
    ] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .invalid_client("aud must be the issuer identifier (FAPI2 SP 5.3.2.1-8)");
    }
    for aud in [json!([ISSUER]), json!([ISSUER, TOKEN_URL])] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .invalid_client("not an array (FAPI2 SP 5.3.2.1-8)");
    }
}

/// The FAPI rule is the profile's: an `oauth`-profile client may address the token endpoint or
/// use an array (RFC 7523 §3), as `client_auth.oauth_accept_endpoint_audiences` allows by default.
#[tokio::test]
async fn oauth_profile_assertion_may_name_the_token_endpoint_or_an_array() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp =
        private_key_jwt_client_with(&h, ClientProfile::Oauth, ClientSettings::default()).await;
    for aud in [json!(TOKEN_URL), json!(["https://other.example", ISSUER])] {
        let assertion = tpp.assertion_with(&h, json!({ "aud": aud }));
        post_assertion(&h, &assertion, &[])
            .await
            .issued("DPoP", "accounts");
    }
    let assertion = tpp.assertion_with(&h, json!({ "aud": "https://other.example" }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("aud");
}

#[tokio::test]
async fn checklist_18_expired_assertion_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let t = now(&h);
    let assertion = tpp.assertion_with(&h, json!({ "iat": t - 360, "exp": t - 300 }));
    post_assertion(&h, &assertion, &[])
        .await
        .invalid_client("client assertion has expired");
}

#[tokio::test]
async fn checklist_19_assertion_iat_or_nbf_61_s_ahead_is_refused_and_8_s_ahead_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let t = now(&h);
    for claim in ["iat", "nbf"] {
        let ahead = tpp.assertion_with(&h, json!({ claim: t + 61, "exp": t + 120 }));
        post_assertion(&h, &ahead, &[])
            .await
            .invalid_client(&format!("{claim} is in the future (FAPI2 SP 5.3.2.1-13)"));
        let skewed = tpp.assertion_with(&h, json!({ claim: t + 8 }));
        post_assertion(&h, &skewed, &[])
            .await
            .issued("DPoP", "accounts");
    }
}

#[tokio::test]
async fn checklist_21_assertion_without_sub_or_naming_another_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let other = private_key_jwt_client(&h).await;

    let no_sub = tpp.assertion_with(&h, json!({ "sub": null }));
    post_assertion(&h, &no_sub, &[])
        .await
        .invalid_client("no sub naming the client (RFC 7523 §3)");
    post_assertion(&h, &no_sub, &[("client_id", &tpp.id)])
        .await
        .invalid_client("no sub naming the client (RFC 7523 §3)");

    // sub names another client than the one the request is for.
    let other_sub = tpp.assertion_with(&h, json!({ "sub": other.id }));
    post_assertion(&h, &other_sub, &[("client_id", &tpp.id)])
        .await
        .invalid_client("does not name the client that authenticated");
    // sub names another client, whose keys then do not know the signer.
    post_assertion(&h, &other_sub, &[])
        .await
        .invalid_client(&format!("no ES256 key with kid {:?}", tpp.key.kid()));

    let other_iss = tpp.assertion_with(&h, json!({ "iss": other.id }));
    post_assertion(&h, &other_iss, &[])
        .await
        .invalid_client("iss must be the client_id (RFC 7523 §3)");
}

#[tokio::test]
async fn checklist_22_alg_none_assertion_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let claims = assertion_claims(&h, &tpp.id);
    for header in [
        json!({ "alg": "none", "kid": tpp.key.kid() }),
        json!({ "alg": "none" }),
    ] {
        let unsigned = format!("{}.", signing_input(&header, &claims));
        post_assertion(&h, &unsigned, &[])
            .await
            .invalid_client("\"none\" is not allowed (FAPI2 SP 5.4.1");
    }
}

#[tokio::test]
async fn checklist_23_hs256_assertion_keyed_with_the_public_key_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let claims = assertion_claims(&h, &tpp.id);
    let header = json!({ "alg": "HS256", "kid": tpp.key.kid() });
    let input = signing_input(&header, &claims);
    // Algorithm confusion (RFC 8725 §2.1): the "secret" is the client's public key as registered.
    let secret = serde_json::to_vec(&public_jwk(&tpp.key)).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    post_assertion(&h, &forged, &[])
        .await
        .invalid_client("\"HS256\" is not allowed (FAPI2 SP 5.4.1");
}

#[tokio::test]
async fn checklist_24_rs256_assertion_is_invalid_client_though_ps256_with_the_same_key_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = rsa.public_key();
    let jwk = json!({
        "kty": "RSA",
        "kid": "rsa-1",
        "n": URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero()),
    });
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[jwk]);
    let client_id = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await
    .client
    .client_id
    .to_string();
    let rsa_sign = |alg: &str, padding: &'static dyn aws_lc_rs::signature::RsaEncoding| {
        let input = signing_input(
            &json!({ "alg": alg, "kid": "rsa-1" }),
            &assertion_claims(&h, &client_id),
        );
        let mut signature = vec![0; rsa.public_modulus_len()];
        rsa.sign(
            padding,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    };

    // The key is good: signed with PS256 it authenticates the client.
    let ps256 = rsa_sign("PS256", &aws_lc_rs::signature::RSA_PSS_SHA256);
    post_assertion(&h, &ps256, &[])
        .await
        .issued("DPoP", "accounts");
    let rs256 = rsa_sign("RS256", &aws_lc_rs::signature::RSA_PKCS1_SHA256);
    post_assertion(&h, &rs256, &[])
        .await
        .invalid_client("\"RS256\" is not allowed (FAPI2 SP 5.4.1");
}

#[tokio::test]
async fn checklist_25_assertion_from_a_key_outside_the_clients_jwks_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let stranger = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign(&stranger, &claims), &[])
        .await
        .invalid_client(&format!("no ES256 key with kid {:?}", stranger.kid()));
    // The client's kid on a stranger's signature.
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign_with_kid(&stranger, tpp.key.kid(), &claims), &[])
        .await
        .invalid_client("signature does not verify with the client's keys");
    // The client's own key under a kid it never registered.
    let claims = assertion_claims(&h, &tpp.id);
    post_assertion(&h, &sign_with_kid(&tpp.key, "unknown-kid", &claims), &[])
        .await
        .invalid_client("no ES256 key with kid \"unknown-kid\"");
}

#[tokio::test]
async fn checklist_4_client_id_other_than_the_assertions_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let other = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("client_id", &other.id)])
        .await
        .invalid_client("the client_id parameter does not name the client that authenticated");
    // The same request naming the right client passes.
    post_assertion(&h, &tpp.assertion(&h), &[("client_id", &tpp.id)])
        .await
        .issued("DPoP", "accounts");
}

#[tokio::test]
async fn checklist_14_request_without_client_authentication_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(&[("grant_type", "client_credentials")], &[("dpop", &proof)]),
    )
    .await;
    answer.invalid_client("client authentication is required (FAPI2 SP 5.3.2.2-4)");
    assert!(!answer.headers.contains_key(header::WWW_AUTHENTICATE));

    let proof = dpop_proof(&h, &dpop_key());
    send(
        &h,
        token_request(
            &[("grant_type", "client_credentials"), ("client_id", &tpp.id)],
            &[("dpop", &proof)],
        ),
    )
    .await
    .invalid_client("this client authenticates with private_key_jwt (client_assertion)");
}

#[tokio::test]
async fn checklist_15_client_secret_from_a_fapi_client_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let basic = format!("Basic {}", STANDARD.encode(format!("{}:guessed", tpp.id)));
    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &basic), ("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("client secrets are not allowed for FAPI clients (FAPI2 SP 5.3.2.1-6)");
    // RFC 6749 §5.2: the client tried the Authorization header, so it gets a challenge.
    let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");

    let proof = dpop_proof(&h, &dpop_key());
    let answer = send(
        &h,
        token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &tpp.id),
                ("client_secret", "guessed"),
            ],
            &[("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("client secrets are not allowed for FAPI clients (FAPI2 SP 5.3.2.1-6)");
}

// ---------------------------------------------------------------------------------------------
// oauth profile: client secrets
// ---------------------------------------------------------------------------------------------

fn basic(client_id: &str, secret: &str) -> String {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(client_id), encode(secret)))
    )
}

#[tokio::test]
async fn oauth_client_secret_basic_with_dpop_gets_a_dpop_bound_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let registered = register(
        &h,
        machine_client("client_secret_basic"),
        ClientProfile::Oauth,
        ClientSettings::default(),
    )
    .await;
    let client_id = registered.client.client_id.to_string();
    let secret = registered.secret.unwrap();
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let authorization = basic(&client_id, secret.expose());
    let token = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &authorization), ("dpop", &proof)],
        ),
    )
    .await
    .issued("DPoP", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "jkt": thumbprint(&key) }),
    );
}

#[tokio::test]
async fn oauth_client_with_a_wrong_secret_is_401_with_a_basic_challenge() {
    let h = harness().await;
    serve_accounts(&h).await;
    let registered = register(
        &h,
        machine_client("client_secret_basic"),
        ClientProfile::Oauth,
        ClientSettings::default(),
    )
    .await;
    let client_id = registered.client.client_id.to_string();
    let proof = dpop_proof(&h, &dpop_key());
    let authorization = basic(&client_id, "not-the-secret");
    let answer = send(
        &h,
        token_request(
            &[("grant_type", "client_credentials")],
            &[("authorization", &authorization), ("dpop", &proof)],
        ),
    )
    .await;
    answer.invalid_client("the client secret is not correct");
    let challenge = answer.headers[header::WWW_AUTHENTICATE].to_str().unwrap();
    assert!(challenge.starts_with("Basic "), "{challenge}");
}

//! The client-credentials grant itself once the client is authenticated: grant type, scope,
//! resource, form, admin scopes, and the proof of possession the token is bound to (checklist #12,
//! #13, #28, #31–#33, #36, #38).

use super::*;

#[tokio::test]
async fn checklist_12_password_grant_is_unsupported_grant_type() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    let proof = dpop_proof(&h, &dpop_key());
    let pairs = [
        ("grant_type", "password"),
        ("username", "alice"),
        ("password", "secret"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion),
    ];
    send(&h, token_request(&pairs, &[("dpop", &proof)]))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "the password grant is not supported (FAPI2 SP 5.3.2.1-2)",
        );
}

#[tokio::test]
async fn checklist_13_client_not_registered_for_client_credentials_is_unauthorized_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    metadata["grant_types"] = json!(["authorization_code"]);
    metadata["response_types"] = json!(["code"]);
    metadata["redirect_uris"] = json!(["https://tpp.example/cb"]);
    let registered = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await;
    let tpp = Tpp {
        id: registered.client.client_id.to_string(),
        key,
    };
    post_assertion(&h, &tpp.assertion(&h), &[]).await.refused(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        "not registered for the client_credentials grant (RFC 6749 §5.2)",
    );
}

#[tokio::test]
async fn checklist_28_token_request_without_dpop_or_certificate_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    send(&h, token_request(&with_assertion(&assertion, &[]), &[]))
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "sender-constrained",
        );
    // On the mTLS listener without a certificate it is the same.
    let assertion = tpp.assertion(&h);
    send(
        &h,
        over_mtls(token_request(&with_assertion(&assertion, &[]), &[]), None),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "(FAPI2 SP 5.3.2.1-4)",
    );
}

#[tokio::test]
async fn checklist_31_replayed_dpop_proof_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof(&h, &dpop_key());
    let first = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&first, &[]), &[("dpop", &proof)]),
    )
    .await
    .issued("DPoP", "accounts");
    let second = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&second, &[]), &[("dpop", &proof)]),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "single-use (RFC 9449 §11.1)",
    );
}

#[tokio::test]
async fn checklist_32_dpop_htu_of_another_url_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    for htu in [
        "https://as.example/par",
        "https://evil.example/token",
        // The mTLS alias is another URL than the one this request was sent to.
        MTLS_TOKEN_URL,
    ] {
        let proof = dpop_proof_at(&h, &key, "POST", htu, 0);
        let assertion = tpp.assertion(&h);
        send(
            &h,
            token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
        )
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_dpop_proof",
            "htu does not match the request URL (RFC 9449 §4.3 step 9)",
        );
    }
    // Query and fragment do not count.
    let proof = dpop_proof_at(&h, &key, "POST", "https://as.example/token?x=1#f", 0);
    let assertion = tpp.assertion(&h);
    send(
        &h,
        token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
    )
    .await
    .issued("DPoP", "accounts");
    // On the mTLS listener the proof names the alias.
    let proof = dpop_proof_at(&h, &key, "POST", MTLS_TOKEN_URL, 0);
    let assertion = tpp.assertion(&h);
    let request = over_mtls(
        token_request(&with_assertion(&assertion, &[]), &[("dpop", &proof)]),
        None,
    );
    send(&h, request).await.issued("DPoP", "accounts");
}

#[tokio::test]
async fn checklist_33_dpop_htm_get_is_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let proof = dpop_proof_at(&h, &dpop_key(), "GET", TOKEN_URL, 0);
    send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &proof)],
        ),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "htm does not match the request method (RFC 9449 §4.3 step 8)",
    );
}

#[tokio::test]
async fn checklist_36_two_dpop_headers_are_invalid_dpop_proof() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let (a, b) = (dpop_proof(&h, &dpop_key()), dpop_proof(&h, &dpop_key()));
    send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &a), ("dpop", &b)],
        ),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
        "more than one DPoP header (RFC 9449 §4.3 step 1)",
    );
}

#[tokio::test]
async fn checklist_38_dpop_proof_an_hour_off_is_invalid_and_10_s_either_way_passes() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    for (age, rule) in [
        (3600, "too old (RFC 9449 §11.1)"),
        (-3600, "in the future (FAPI2 SP 5.3.2.1-13)"),
    ] {
        let proof = dpop_proof_at(&h, &key, "POST", TOKEN_URL, age);
        send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_dpop_proof", rule);
    }
    for age in [10, -10] {
        let proof = dpop_proof_at(&h, &key, "POST", TOKEN_URL, age);
        send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await
        .issued("DPoP", "accounts");
    }
}

#[tokio::test]
async fn scope_not_registered_for_the_client_is_invalid_scope() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("scope", "accounts payments")])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "scope payments is not registered for the client",
        );
}

#[tokio::test]
async fn unknown_resource_is_invalid_target_and_a_known_one_is_the_audience() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("resource", "https://api.bank.example/unknown")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "resource names no registered resource server (RFC 8707 §2)",
    );
    let token = post_assertion(&h, &tpp.assertion(&h), &[("resource", ACCOUNTS)])
        .await
        .issued("DPoP", "accounts");
    assert_eq!(verified_claims(&h, &token, ACCOUNTS).await["aud"], ACCOUNTS);
}

#[tokio::test]
async fn repeated_parameter_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    // RFC 6749 §3.2 and STYLE.md: a duplicated grant_type must be rejected.
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("grant_type", "client_credentials")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "parameter grant_type is repeated (RFC 6749 §3.2)",
    );
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("scope", "accounts"), ("scope", "accounts")],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "parameter scope is repeated (RFC 6749 §3.2)",
    );
}

#[tokio::test]
async fn wrong_content_type_is_invalid_request() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let assertion = tpp.assertion(&h);
    let proof = dpop_proof(&h, &dpop_key());
    let body = json!({
        "grant_type": "client_credentials",
        "client_assertion_type": JWT_BEARER,
        "client_assertion": assertion,
    });
    let request = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header("dpop", proof)
        .body(Body::from(body.to_string()))
        .unwrap();
    send(&h, request).await.refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "must be application/x-www-form-urlencoded (RFC 6749 §3.2)",
    );
}

// ---------------------------------------------------------------------------------------------
// Admin scopes
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn admin_scope_granted_by_the_operator_gets_a_token_for_the_admin_api() {
    let h = harness().await;
    serve_accounts(&h).await;
    let settings = ClientSettings {
        admin_scopes: vec!["admin:clients".into()],
        ..ClientSettings::default()
    };
    let tpp = private_key_jwt_client_with(&h, ClientProfile::Fapi2, settings).await;
    let key = dpop_key();
    let proof = dpop_proof(&h, &key);
    let assertion = tpp.assertion(&h);
    let token = send(
        &h,
        token_request(
            &with_assertion(&assertion, &[("scope", "admin:clients")]),
            &[("dpop", &proof)],
        ),
    )
    .await
    .issued("DPoP", "admin:clients");
    let admin = "https://as.example/admin/v1";
    let claims = verified_claims(&h, &token, admin).await;
    assert_eq!(claims["aud"], admin);
    assert_client_token(
        &claims,
        &tpp.id,
        "admin:clients",
        &json!({ "jkt": thumbprint(&key) }),
    );
}

#[tokio::test]
async fn admin_scope_without_the_operators_grant_is_invalid_scope() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    post_assertion(&h, &tpp.assertion(&h), &[("scope", "admin:clients")])
        .await
        .refused(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "the client may not ask for admin:clients",
        );
}

/// A DPoP proof for `/token` carrying `nonce`.
fn dpop_proof_with_nonce(h: &Harness, key: &SigningKey, nonce: &str) -> String {
    let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
    let claims = json!({
        "jti": unique("dpop"), "htm": "POST", "htu": TOKEN_URL, "iat": now(h), "nonce": nonce
    });
    key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap()
}

#[tokio::test]
async fn rfc_9449_8_server_nonces_when_required() {
    let h = crate::routes::tests::harness_with(|config| config.dpop.require_nonce = true).await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();

    // No nonce: use_dpop_nonce, with one to use.
    let refused = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &dpop_proof(&h, &key))],
        ),
    )
    .await;
    refused.refused(StatusCode::BAD_REQUEST, "use_dpop_nonce", "nonce");
    let nonce = refused.headers["dpop-nonce"].to_str().unwrap().to_owned();

    // With it: a token, and the next nonce alongside.
    let issued = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &dpop_proof_with_nonce(&h, &key, &nonce))],
        ),
    )
    .await;
    assert!(issued.headers.contains_key("dpop-nonce"));
    issued.issued("DPoP", "accounts");

    // A made-up nonce, and the old one two windows later, are refused.
    send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &dpop_proof_with_nonce(&h, &key, "made-up"))],
        ),
    )
    .await
    .refused(StatusCode::BAD_REQUEST, "use_dpop_nonce", "nonce");
    h.clock.advance(time::Duration::seconds(120));
    let stale = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[]),
            &[("dpop", &dpop_proof_with_nonce(&h, &key, &nonce))],
        ),
    )
    .await;
    stale.refused(StatusCode::BAD_REQUEST, "use_dpop_nonce", "nonce");
    assert_ne!(stale.headers["dpop-nonce"].to_str().unwrap(), nonce);
}

#[tokio::test]
async fn rfc_9449_9_the_admin_api_asks_for_a_nonce_too() {
    let h = crate::routes::tests::harness_with(|config| config.dpop.require_nonce = true).await;
    let settings = ClientSettings {
        admin_scopes: vec!["admin:clients".into()],
        ..ClientSettings::default()
    };
    let tpp = private_key_jwt_client_with(&h, ClientProfile::Fapi2, settings).await;
    let key = dpop_key();
    let nonce = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[("scope", "admin:clients")]),
            &[("dpop", &dpop_proof(&h, &key))],
        ),
    )
    .await
    .headers["dpop-nonce"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer = send(
        &h,
        token_request(
            &with_assertion(&tpp.assertion(&h), &[("scope", "admin:clients")]),
            &[("dpop", &dpop_proof_with_nonce(&h, &key, &nonce))],
        ),
    )
    .await;
    let token = answer.issued("DPoP", "admin:clients");

    let url = "https://as.example/admin/v1/clients";
    let call = |proof: String| {
        Request::get("/admin/v1/clients")
            .header(header::AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap()
    };
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let proof = |nonce: Option<&str>| {
        let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(&key) });
        let mut claims = json!({
            "jti": unique("dpop"), "htm": "GET", "htu": url, "iat": now(&h), "ath": ath
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
            .unwrap()
    };
    let refused = send(&h, call(proof(None))).await;
    refused.refused(StatusCode::UNAUTHORIZED, "use_dpop_nonce", "nonce");
    assert!(
        refused.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"use_dpop_nonce\"")
    );
    let fresh = refused.headers["dpop-nonce"].to_str().unwrap().to_owned();
    let listed = send(&h, call(proof(Some(&fresh)))).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
}

#[tokio::test]
async fn rfc_9396_client_credentials_carry_checked_authorization_details() {
    let h = harness().await;
    serve_accounts(&h).await;
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    metadata["authorization_details_types"] = json!(["account_information"]);
    let registered = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await;
    let tpp = Tpp {
        id: registered.client.client_id.to_string(),
        key,
    };
    let details = r#"[{"type":"account_information","actions":["list_accounts"]}]"#;
    let answer = post_assertion(
        &h,
        &tpp.assertion(&h),
        &[("authorization_details", details)],
    )
    .await;
    let token = answer.issued("DPoP", "accounts");
    assert_eq!(
        answer.body["authorization_details"][0]["type"],
        "account_information"
    );
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_eq!(
        claims["authorization_details"][0]["actions"],
        json!(["list_accounts"])
    );
    post_assertion(
        &h,
        &tpp.assertion(&h),
        &[(
            "authorization_details",
            r#"[{"type":"payment_initiation"}]"#,
        )],
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_authorization_details",
        "not registered",
    );
}

#[tokio::test]
async fn a_client_set_to_opaque_gets_an_opaque_client_credentials_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let settings = ClientSettings {
        access_token_format: portcullis_core::client::settings::TokenFormat::Opaque,
        ..ClientSettings::default()
    };
    let tpp = private_key_jwt_client_with(&h, ClientProfile::Fapi2, settings).await;
    let token = post_assertion(&h, &tpp.assertion(&h), &[])
        .await
        .issued("DPoP", "accounts");
    assert_eq!(token.split('.').count(), 1);
    let stored = h
        .state
        .store
        .access_tokens()
        .find(&portcullis_core::client::secret::SecretHash::of(&token))
        .await
        .unwrap();
    assert_eq!(stored.claims["client_id"], tpp.id);
    assert_eq!(stored.claims["aud"], ACCOUNTS);
    assert_eq!(stored.grant_id, None);
}

#[tokio::test]
async fn checklist_37_dpop_proofs_with_none_hs256_a_bad_signature_or_a_private_jwk_are_invalid() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = private_key_jwt_client(&h).await;
    let key = dpop_key();
    let claims = json!({ "jti": unique("dpop"), "htm": "POST", "htu": TOKEN_URL, "iat": now(&h) });
    let mut cases = Vec::new();
    // alg none and HS256 (a symmetric key), with a well-formed public jwk.
    for alg in ["none", "HS256"] {
        let header = json!({ "typ": "dpop+jwt", "alg": alg, "jwk": public_jwk(&key) });
        cases.push((
            format!("{}.c2ln", signing_input(&header, &claims)),
            "algorithm",
        ));
    }
    // A real ES256 proof whose signature is another key's.
    let other = dpop_key();
    let genuine = dpop_proof(&h, &key);
    let forged = dpop_proof(&h, &other);
    let (head, _) = genuine.rsplit_once('.').unwrap();
    let (_, signature) = forged.rsplit_once('.').unwrap();
    cases.push((format!("{head}.{signature}"), "signature"));
    // A jwk carrying a private member (RFC 9449 §4.3 step 7).
    let mut private = public_jwk(&key);
    private["d"] = json!("AAAA");
    let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": private });
    cases.push((
        format!("{}.c2ln", signing_input(&header, &claims)),
        "private",
    ));
    for (proof, rule) in cases {
        send(
            &h,
            token_request(
                &with_assertion(&tpp.assertion(&h), &[]),
                &[("dpop", &proof)],
            ),
        )
        .await
        .refused(StatusCode::BAD_REQUEST, "invalid_dpop_proof", rule);
    }
}

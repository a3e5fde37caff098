//! The authorization code flow through the authorization endpoint and the customer's pages, in
//! process: PAR, `GET /authorize`, the login form (and the TOTP form), the consent form, the
//! redirect with `code`, `state` and `iss`, and the code at `/token`. Also the error pages that
//! must never redirect (#46, #49–#51), `prompt` and `max_age` (#55, #56), refusal, CSRF, JARM.

use portcullis_core::totp::{self, TotpSecret};
use zeroize::Zeroizing;

use super::par::{REDIRECT, authorization_params, code_client, par_request};
use super::*;

/// RFC 7636 appendix B.
pub(super) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

/// A browser: the cookies it holds.
#[derive(Default)]
pub(super) struct Browser {
    pub(super) cookies: Vec<(String, String)>,
}

pub(super) struct Page {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: String,
}

impl Page {
    /// The interaction id in the page's forms.
    pub(super) fn interaction(&self) -> String {
        let marker = r#"name="interaction" value=""#;
        let start = self.body.find(marker).expect("a form") + marker.len();
        let end = self.body[start..].find('"').unwrap() + start;
        self.body[start..end].to_owned()
    }

    /// The redirect's query parameters.
    pub(super) fn redirect(&self) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        let location = self.headers[header::LOCATION].to_str().unwrap();
        let (base, query) = location.split_once('?').unwrap();
        assert_eq!(base, REDIRECT);
        url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }
}

use std::collections::HashMap;

impl Browser {
    pub(super) fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, headers: &HeaderMap) {
        for value in headers.get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            assert!(
                value.contains("Secure")
                    && value.contains("HttpOnly")
                    && value.contains("SameSite=Lax")
            );
            let (pair, _) = value.split_once(';').unwrap();
            let (name, v) = pair.split_once('=').unwrap();
            assert!(name.starts_with("__Host-"));
            self.cookies.retain(|(k, _)| k != name);
            self.cookies.push((name.to_owned(), v.to_owned()));
        }
    }

    pub(super) async fn send(&mut self, h: &Harness, request: Request<Body>) -> Page {
        let response = h.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        self.keep(&headers);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Page {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub(super) async fn get(&mut self, h: &Harness, uri: &str) -> Page {
        let request = Request::get(uri)
            .header(header::COOKIE, self.cookie_header())
            .body(Body::empty())
            .unwrap();
        self.send(h, request).await
    }

    pub(super) async fn post(&mut self, h: &Harness, uri: &str, pairs: &[(&str, &str)]) -> Page {
        let request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::COOKIE, self.cookie_header())
            .body(Body::from(form(pairs)))
            .unwrap();
        self.send(h, request).await
    }
}

/// A customer with a password (and, if asked, a TOTP secret).
pub(super) async fn customer(
    h: &Harness,
    username: &str,
    with_totp: bool,
) -> (uuid::Uuid, Option<TotpSecret>) {
    let user = crate::users::create_user(
        h.state.store.as_ref(),
        &h.state.passwords,
        h.rng.as_ref(),
        h.clock.as_ref(),
        "test",
        username,
        Zeroizing::new("correct horse battery".into()),
        json!({"email": format!("{username}@bank.example")})
            .as_object()
            .unwrap()
            .clone(),
    )
    .await
    .unwrap();
    if !with_totp {
        return (user.id, None);
    }
    let secret = TotpSecret::generate(h.rng.as_ref()).unwrap();
    let sealed = totp::seal(&secret, user.id, &h.kek, h.rng.as_ref()).unwrap();
    h.state
        .store
        .users()
        .set_totp_secret(user.id, Some(&sealed))
        .await
        .unwrap();
    (user.id, Some(secret))
}

/// Pushes a request (with `extra` parameters) and returns the authorization URL.
pub(super) async fn pushed(
    h: &Harness,
    tpp: &Tpp,
    extra: &[(&'static str, &'static str)],
) -> String {
    let assertion = tpp.assertion(h);
    let mut pairs: Vec<(&str, &str)> = authorization_params()
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .collect();
    pairs.extend(extra.iter().copied());
    pairs.extend(with_assertion(&assertion, &[]));
    let answer = send(h, par_request(&pairs, &[])).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let request_uri = answer.body["request_uri"].as_str().unwrap();
    format!(
        "/authorize?client_id={}&request_uri={}",
        tpp.id,
        url::form_urlencoded::byte_serialize(request_uri.as_bytes()).collect::<String>()
    )
}

pub(super) async fn log_in(
    b: &mut Browser,
    h: &Harness,
    page: &Page,
    username: &str,
    password: &str,
) -> Page {
    let interaction = page.interaction();
    b.post(
        h,
        "/authorize/login",
        &[
            ("interaction", &interaction),
            ("username", username),
            ("password", password),
        ],
    )
    .await
}

pub(super) async fn approve(b: &mut Browser, h: &Harness, page: &Page, accounts: &[&str]) -> Page {
    let interaction = page.interaction();
    let mut pairs = vec![
        ("interaction", interaction.as_str()),
        ("decision", "approve"),
    ];
    pairs.extend(accounts.iter().map(|a| ("account", *a)));
    b.post(h, "/authorize/consent", &pairs).await
}

pub(super) async fn first_account(h: &Harness, user: uuid::Uuid) -> String {
    h.state.accounts.accounts_of(user).await.unwrap()[0]
        .id
        .clone()
}

/// A new customer `username` logs in and approves `tpp`'s request (its pushed parameters
/// changed by `extra`), choosing their first account: the customer, the account and the code.
pub(super) async fn approved_code(
    h: &Harness,
    tpp: &Tpp,
    username: &str,
    extra: &[(&'static str, &'static str)],
) -> (uuid::Uuid, String, String) {
    let (user, _) = customer(h, username, false).await;
    let mut b = Browser::default();
    let login = b.get(h, &pushed(h, tpp, extra).await).await;
    let consent = log_in(&mut b, h, &login, username, "correct horse battery").await;
    let account = first_account(h, user).await;
    let redirect = approve(&mut b, h, &consent, &[&account]).await.redirect();
    (user, account, redirect["code"].clone())
}

pub(super) async fn token_for(h: &Harness, tpp: &Tpp, code: &str) -> Answer {
    let assertion = tpp.assertion(h);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    send(
        h,
        token_request(&pairs, &[("dpop", &dpop_proof(h, &dpop_key()))]),
    )
    .await
}

#[tokio::test]
async fn the_whole_flow_pages_redirect_and_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let (user, _) = customer(&h, "alice", false).await;
    let mut b = Browser::default();
    let details = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
    let url = pushed(&h, &tpp, &[("authorization_details", details)]).await;

    let login = b.get(&h, &url).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    let csp = login.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"));
    assert_eq!(login.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(login.headers[header::X_FRAME_OPTIONS], "DENY");
    assert!(login.body.contains("Example TPP"));

    // A wrong password and an unknown user get the same answer.
    let wrong = log_in(&mut b, &h, &login, "alice", "wrong password").await;
    let unknown = log_in(&mut b, &h, &login, "mallory", "correct horse battery").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .body
            .contains("The username or password is not right.")
    );
    assert!(
        unknown
            .body
            .contains("The username or password is not right.")
    );

    let consent = log_in(&mut b, &h, &login, "alice", "correct horse battery").await;
    assert_eq!(consent.status, StatusCode::OK, "{}", consent.body);
    assert!(consent.body.contains("See your balances"));
    assert!(consent.body.contains("Confirm who you are"));
    assert!(
        b.cookies
            .iter()
            .any(|(k, _)| k == "__Host-portcullis-session")
    );

    let account = first_account(&h, user).await;
    let redirect = approve(&mut b, &h, &consent, &[&account]).await.redirect();
    assert_eq!(redirect["state"], "state-1");
    assert_eq!(redirect["iss"], ISSUER, "RFC 9207");
    let answer = token_for(&h, &tpp, &redirect["code"]).await;
    let access_token = answer.issued("DPoP", "openid accounts");
    let claims = verified_claims(&h, &access_token, ACCOUNTS).await;
    assert_eq!(claims["sub"], user.to_string());
    assert_eq!(
        claims["authorization_details"][0]["accounts"],
        json!([account])
    );
    let grant = h
        .state
        .store
        .grants()
        .find(answer.body["grant_id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(grant.subject, user);

    // Checklist #49: the request_uri is used up.
    let again = b.get(&h, &url).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST);
    assert!(again.headers.get(header::LOCATION).is_none());
}

#[tokio::test]
async fn checklist_46_49_50_51_bad_requests_get_a_page_never_a_redirect() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let other = code_client(&h, ClientProfile::Fapi2).await;
    let mut b = Browser::default();
    let url = pushed(&h, &tpp, &[]).await;
    let page_only = |page: &Page| {
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        assert!(page.headers.get(header::LOCATION).is_none());
    };
    // #46: not pushed.
    page_only(
        &b.get(
            &h,
            &format!(
                "/authorize?client_id={}&response_type=code&redirect_uri=https://tpp.example/cb",
                tpp.id
            ),
        )
        .await,
    );
    page_only(&b.get(&h, &format!("/authorize?client_id={}", tpp.id)).await);
    // Extra parameters beside the pushed request.
    page_only(&b.get(&h, &format!("{url}&scope=openid")).await);
    // #51: another client's request_uri.
    page_only(&b.get(&h, &url.replace(&tpp.id, &other.id)).await);
    page_only(
        &b.get(
            &h,
            &format!(
                "/authorize?client_id={}&request_uri=urn:ietf:params:oauth:request_uri:nothing",
                tpp.id
            ),
        )
        .await,
    );
    // #50: expired.
    h.clock.advance(time::Duration::seconds(91));
    page_only(&b.get(&h, &url).await);
}

#[tokio::test]
async fn checklist_56_prompt_none_without_a_session_and_refusal_redirect_with_errors() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "bob", false).await;
    let mut b = Browser::default();
    let url = pushed(&h, &tpp, &[("prompt", "none")]).await;
    let redirect = b.get(&h, &url).await.redirect();
    assert_eq!(redirect["error"], "login_required");
    assert_eq!(redirect["state"], "state-1");
    assert_eq!(redirect["iss"], ISSUER);
    // An error ends the request too (RFC 9126 §7.3): the same request_uri gets a page now.
    let reused = b.get(&h, &url).await;
    assert_eq!(reused.status, StatusCode::BAD_REQUEST);

    let url = pushed(&h, &tpp, &[]).await;
    let login = b.get(&h, &url).await;
    let consent = log_in(&mut b, &h, &login, "bob", "correct horse battery").await;
    let interaction = consent.interaction();
    let refused = b
        .post(
            &h,
            "/authorize/consent",
            &[("interaction", &interaction), ("decision", "deny")],
        )
        .await
        .redirect();
    assert_eq!(refused["error"], "access_denied");
    assert!(!refused.contains_key("code"));
}

#[tokio::test]
async fn a_session_is_reused_unless_prompt_login_or_max_age_say_otherwise() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "carol", false).await;
    let mut b = Browser::default();
    let login = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    let consent = log_in(&mut b, &h, &login, "carol", "correct horse battery").await;
    assert_eq!(consent.status, StatusCode::OK);
    // Logged in: straight to consent.
    let again = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    assert!(
        again.body.contains(r#"action="/authorize/consent""#),
        "{}",
        again.body
    );
    // prompt=login and an exceeded max_age ask for the password again.
    let forced = b
        .get(&h, &pushed(&h, &tpp, &[("prompt", "login")]).await)
        .await;
    assert!(forced.body.contains(r#"action="/authorize/login""#));
    h.clock.advance(time::Duration::seconds(120));
    let aged = b
        .get(&h, &pushed(&h, &tpp, &[("max_age", "60")]).await)
        .await;
    assert!(aged.body.contains(r#"action="/authorize/login""#));
    // prompt=none with a session still needs consent.
    let none = b
        .get(&h, &pushed(&h, &tpp, &[("prompt", "none")]).await)
        .await
        .redirect();
    assert_eq!(none["error"], "consent_required");
}

#[tokio::test]
async fn forms_need_the_interaction_cookie_csrf() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "dave", false).await;
    let mut victim = Browser::default();
    let login = victim.get(&h, &pushed(&h, &tpp, &[]).await).await;
    // Another browser (a cross-site form) does not hold the cookie.
    let mut attacker = Browser::default();
    let forged = log_in(&mut attacker, &h, &login, "dave", "correct horse battery").await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(!forged.body.contains(r#"action="/authorize/consent""#));
}

#[tokio::test]
async fn a_customer_with_totp_enters_a_code_once_and_gets_sca() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let (user, secret) = customer(&h, "erin", true).await;
    let secret = secret.unwrap();
    let mut b = Browser::default();
    let login = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    let totp_page = log_in(&mut b, &h, &login, "erin", "correct horse battery").await;
    assert!(
        totp_page.body.contains(r#"action="/authorize/totp""#),
        "{}",
        totp_page.body
    );
    let interaction = totp_page.interaction();
    let bad = b
        .post(
            &h,
            "/authorize/totp",
            &[("interaction", &interaction), ("code", "000000")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    let code = secret.code_at_step(totp::step_of(h.clock.now()));
    let consent = b
        .post(
            &h,
            "/authorize/totp",
            &[("interaction", &interaction), ("code", &code)],
        )
        .await;
    assert!(
        consent.body.contains(r#"action="/authorize/consent""#),
        "{}",
        consent.body
    );
    let account = first_account(&h, user).await;
    let redirect = approve(&mut b, &h, &consent, &[&account]).await.redirect();
    let answer = token_for(&h, &tpp, &redirect["code"]).await;
    answer.issued("DPoP", "openid accounts");
    let id_token = answer.body["id_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(id_token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["acr"], crate::routes::authorize::ACR_SCA);
    assert_eq!(claims["amr"], json!(["pwd", "otp"]));
    // The same code cannot be used again (single use across replicas).
    let login = b
        .get(&h, &pushed(&h, &tpp, &[("prompt", "login")]).await)
        .await;
    let totp_page = log_in(&mut b, &h, &login, "erin", "correct horse battery").await;
    let interaction = totp_page.interaction();
    let replay = b
        .post(
            &h,
            "/authorize/totp",
            &[("interaction", &interaction), ("code", &code)],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn jarm_responses_are_signed_jwts_for_the_client() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "frank", false).await;
    let mut b = Browser::default();
    let url = pushed(&h, &tpp, &[("response_mode", "jwt"), ("prompt", "none")]).await;
    let page = b.get(&h, &url).await;
    let redirect = page.redirect();
    let jwt = &redirect["response"];
    assert!(
        !redirect.contains_key("error"),
        "parameters only inside the JWT"
    );
    let (_, _, jwks) = crate::routes::tests::get(&h.router, "/jwks").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&tpp.id]);
    validation.set_issuer(&[ISSUER]);
    let claims = jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap()
        .claims;
    assert_eq!(claims["error"], "login_required");
    assert_eq!(claims["state"], "state-1");
}

/// A DPoP proof for `GET /userinfo` covering `token` (RFC 9449 §4.2 `ath`).
pub(super) fn userinfo_proof(h: &Harness, key: &SigningKey, token: &str) -> String {
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ));
    let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(key) });
    let claims = json!({
        "jti": unique("dpop"), "htm": "GET", "htu": "https://as.example/userinfo",
        "iat": now(h), "ath": ath
    });
    key.sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
        .unwrap()
}

pub(super) async fn userinfo(h: &Harness, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = Request::get(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    send(h, builder.body(Body::empty()).unwrap()).await
}

#[tokio::test]
async fn userinfo_answers_the_holder_of_a_token_of_a_standing_grant() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let (user, _) = customer(&h, "gina", false).await;
    let mut b = Browser::default();
    let url = pushed(&h, &tpp, &[("claims", r#"{"userinfo":{"email":null}}"#)]).await;
    let login = b.get(&h, &url).await;
    let consent = log_in(&mut b, &h, &login, "gina", "correct horse battery").await;
    let redirect = approve(&mut b, &h, &consent, &[]).await.redirect();
    let key = dpop_key();
    let assertion = tpp.assertion(&h);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", redirect["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let answer = send(
        &h,
        token_request(&pairs, &[("dpop", &dpop_proof(&h, &key))]),
    )
    .await;
    let token = answer.issued("DPoP", "openid accounts");

    let auth = format!("DPoP {token}");
    let ok = userinfo(
        &h,
        "/userinfo",
        &[
            ("authorization", &auth),
            ("dpop", &userinfo_proof(&h, &key, &token)),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(
        ok.body,
        json!({"sub": user.to_string(), "email": "gina@bank.example"})
    );
    // The scheme is matched case-insensitively (RFC 9110 §11.1).
    let lower = format!("dpop {token}");
    let ok = userinfo(
        &h,
        "/userinfo",
        &[
            ("authorization", &lower),
            ("dpop", &userinfo_proof(&h, &key, &token)),
        ],
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);

    // SP 5.3.4: never from the query; checklist #30: a DPoP token as Bearer; #34: no proof.
    let query = userinfo(&h, &format!("/userinfo?access_token={token}"), &[]).await;
    assert_eq!(query.status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {token}");
    let as_bearer = userinfo(&h, "/userinfo", &[("authorization", &bearer)]).await;
    assert_eq!(as_bearer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(as_bearer.body["error"], "invalid_token");
    let no_proof = userinfo(&h, "/userinfo", &[("authorization", &auth)]).await;
    assert_eq!(no_proof.status, StatusCode::UNAUTHORIZED);
    assert_eq!(no_proof.body["error"], "invalid_dpop_proof");
    // #35: a proof by another key.
    let other = userinfo(
        &h,
        "/userinfo",
        &[
            ("authorization", &auth),
            ("dpop", &userinfo_proof(&h, &dpop_key(), &token)),
        ],
    )
    .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    let none = userinfo(&h, "/userinfo", &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.headers.contains_key(header::WWW_AUTHENTICATE));

    // A withdrawn consent ends it at once.
    let grant_id = answer.body["grant_id"].as_str().unwrap();
    let grant = h.state.store.grants().find(grant_id).await.unwrap();
    assert!(
        crate::revocation::revoke_grant(&h.state, &grant, &crate::revocation::Reason::Customer)
            .await
            .unwrap()
    );
    let revoked = userinfo(
        &h,
        "/userinfo",
        &[
            ("authorization", &auth),
            ("dpop", &userinfo_proof(&h, &key, &token)),
        ],
    )
    .await;
    assert_eq!(revoked.status, StatusCode::UNAUTHORIZED);
    assert_eq!(revoked.body["error"], "invalid_token");
}

#[tokio::test]
async fn checklist_65_rp_initiated_logout_ends_the_session_and_redirects_only_where_registered() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "hana", false).await;
    let mut b = Browser::default();
    let login = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    let consent = log_in(&mut b, &h, &login, "hana", "correct horse battery").await;
    let redirect = approve(&mut b, &h, &consent, &[]).await.redirect();
    let answer = token_for(&h, &tpp, &redirect["code"]).await;
    answer.issued("DPoP", "openid accounts");
    let id_token = answer.body["id_token"].as_str().unwrap().to_owned();
    let encode = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();

    // A modified hint, and a redirect the client did not register: a page, never a redirect.
    let mut tampered = id_token.clone();
    tampered.pop();
    tampered.push(if id_token.ends_with('A') { 'B' } else { 'A' });
    for uri in [
        format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri={}",
            encode(&tampered),
            encode("https://tpp.example/logged-out")
        ),
        format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri={}",
            encode(&id_token),
            encode("https://evil.example/")
        ),
        format!(
            "/logout?id_token_hint={}&post_logout_redirect_uri={}",
            encode(&id_token),
            encode("https://tpp.example/logged-out?x=1")
        ),
        format!(
            "/logout?post_logout_redirect_uri={}",
            encode("https://tpp.example/logged-out")
        ),
    ] {
        let page = b.get(&h, &uri).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{uri}: {}", page.body);
        assert!(page.headers.get(header::LOCATION).is_none());
    }
    // Still logged in: straight to consent.
    let still = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    assert!(still.body.contains(r#"action="/authorize/consent""#));

    // An expired hint (ID tokens live 5 minutes) still identifies the client; the session
    // (idle for less than its 15 minutes) ends; state comes back.
    h.clock.advance(time::Duration::minutes(10));
    let old_session = b
        .cookies
        .iter()
        .find(|(k, _)| k == "__Host-portcullis-session")
        .cloned()
        .unwrap();
    let out = b
        .get(
            &h,
            &format!(
                "/logout?id_token_hint={}&post_logout_redirect_uri={}&state=bye",
                encode(&id_token),
                encode("https://tpp.example/logged-out")
            ),
        )
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    assert_eq!(
        out.headers[header::LOCATION],
        "https://tpp.example/logged-out?state=bye"
    );
    // The browser is told to forget the cookie; even one that kept it finds the session gone.
    b.cookies.retain(|(k, _)| k != "__Host-portcullis-session");
    b.cookies.push(old_session);
    let after = b.get(&h, &pushed(&h, &tpp, &[]).await).await;
    assert!(
        after.body.contains(r#"action="/authorize/login""#),
        "the session is over"
    );
}

#[tokio::test]
async fn checklist_57_grant_management_merge_and_an_unknown_grant_id() {
    let h = harness().await;
    serve_accounts(&h).await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    let (user, _) = customer(&h, "ivan", false).await;
    let mut b = Browser::default();
    // #57: a grant_id the client does not have.
    let url = pushed(
        &h,
        &tpp,
        &[
            ("grant_management_action", "merge"),
            ("grant_id", "no-such-grant"),
        ],
    )
    .await;
    let redirect = b.get(&h, &url).await.redirect();
    assert_eq!(redirect["error"], "invalid_grant_id");
    assert_eq!(redirect["iss"], ISSUER);

    // A first consent, then a merge into it: one grant with both.
    let url = pushed(&h, &tpp, &[("scope", "openid")]).await;
    let login = b.get(&h, &url).await;
    let consent = log_in(&mut b, &h, &login, "ivan", "correct horse battery").await;
    let first = approve(&mut b, &h, &consent, &[]).await.redirect();
    let answer = token_for(&h, &tpp, &first["code"]).await;
    let grant_id = answer.body["grant_id"].as_str().unwrap().to_owned();
    let details = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
    let url = pushed(
        &h,
        &tpp,
        &[
            ("scope", "accounts"),
            ("authorization_details", details),
            ("grant_management_action", "merge"),
            ("grant_id", leak_str(&grant_id)),
        ],
    )
    .await;
    let consent = b.get(&h, &url).await;
    let account = first_account(&h, user).await;
    let merged = approve(&mut b, &h, &consent, &[&account]).await.redirect();
    let answer = token_for(&h, &tpp, &merged["code"]).await;
    assert_eq!(answer.body["grant_id"], grant_id, "the same grant");
    let grant = h.state.store.grants().find(&grant_id).await.unwrap();
    assert_eq!(grant.content["scopes"], json!(["openid", "accounts"]));
    assert_eq!(
        grant.content["authorization_details"][0]["accounts"],
        json!([account])
    );
}

fn leak_str(value: &str) -> &'static str {
    Box::leak(value.to_owned().into_boxed_str())
}

#[tokio::test]
async fn an_essential_acr_that_cannot_be_met_ends_in_access_denied() {
    let h = harness().await;
    let tpp = code_client(&h, ClientProfile::Fapi2).await;
    customer(&h, "judy", false).await;
    let mut b = Browser::default();
    let claims = r#"{"id_token":{"acr":{"essential":true,"values":["urn:portcullis:acr:sca"]}}}"#;
    let login = b
        .get(&h, &pushed(&h, &tpp, &[("claims", claims)]).await)
        .await;
    let redirect = log_in(&mut b, &h, &login, "judy", "correct horse battery")
        .await
        .redirect();
    assert_eq!(redirect["error"], "access_denied");
    assert_eq!(redirect["state"], "state-1");
}

//! Security headers and hardening against the real binary (issue 7): CORS only where browsers
//! legitimately read (discovery, JWKS) and never on `/authorize`, the pages, `/token` or the
//! admin API, preflights included (FAPI2 SP-5.2.3-3); HSTS and `nosniff` on both listeners
//! (SP-5.2.3-1/2); the pages' CSP and `frame-ancestors`; `no-store` on every protocol answer;
//! the admin API's refusal of browsers' cross-site requests; bodies too large for an endpoint.
//!
//! And the secret-grep test: a full flow with the server logging at `debug` in JSON, after which
//! neither the log nor the `security_events` table holds any token, code, secret, password,
//! TOTP secret or code, client assertion, DPoP proof, `request_uri` or registration access token
//! the flow used ([`Secrets`] says how values are compared).

use std::collections::HashSet;

use portcullis_testkit::db::Backend;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::flow::{Bank, Browser, PASSWORD, REDIRECT, totp};
use crate::oauth::{
    ClientKey, Credentials, JWT_BEARER, Reply, assertion_claims, dpop_proof, post_form, random_id,
    server_now, sha256_b64,
};
use crate::support::Fixture;

const RESOURCE: &str = "https://api.bank.example/accounts";
const DETAILS: &str = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
const PUBLIC_DOCUMENTS: [&str; 3] = [
    "/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server",
    "/jwks",
];

/// The `Access-Control-*` headers of an answer.
fn cors_headers(headers: &reqwest::header::HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn preflight(http: &reqwest::Client, url: &str, method: &str) -> reqwest::Response {
    http.request(Method::OPTIONS, url)
        .header("origin", "https://spa.example")
        .header("access-control-request-method", method)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sp_5_2_3_3_cors_on_discovery_and_jwks_only_never_on_authorize_token_or_admin() {
    let f = Fixture::start(Backend::Sqlite).await;
    let http = f.app.client(None);
    for path in PUBLIC_DOCUMENTS {
        let response = http
            .get(f.app.url(path))
            .header("origin", "https://spa.example")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*", "{path}");
        assert!(!headers.contains_key("access-control-allow-credentials"));
        // Their cache lifetimes stay.
        assert!(
            headers["cache-control"]
                .to_str()
                .unwrap()
                .contains("max-age"),
            "{path}: {headers:?}"
        );
        let response = preflight(&http, &f.app.url(path), "GET").await;
        assert_eq!(response.status(), 204, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert_eq!(headers["access-control-allow-methods"], "GET, HEAD");
        assert!(!headers.contains_key("access-control-allow-credentials"));
    }
    for (method, path) in [
        (Method::GET, "/authorize?client_id=x&request_uri=y"),
        (Method::GET, "/account"),
        (Method::POST, "/authorize/login"),
        (Method::POST, "/token"),
        (Method::POST, "/par"),
        (Method::POST, "/introspect"),
        (Method::POST, "/revoke"),
        (Method::GET, "/userinfo"),
        (Method::GET, "/admin/v1/clients"),
    ] {
        let response = http
            .request(method.clone(), f.app.url(path))
            .header("origin", "https://spa.example")
            .send()
            .await
            .unwrap();
        assert_eq!(
            cors_headers(response.headers()),
            Vec::<String>::new(),
            "{path}"
        );
        let url = f.app.url(path.split('?').next().unwrap());
        let response = preflight(&http, &url, method.as_str()).await;
        assert_ne!(
            response.status(),
            204,
            "{path}: a preflight is not answered"
        );
        assert_eq!(
            cors_headers(response.headers()),
            Vec::<String>::new(),
            "{path}"
        );
    }
}

#[tokio::test]
async fn sp_5_2_3_1_pages_carry_hsts_nosniff_csp_and_frame_ancestors_on_both_listeners() {
    let f = Fixture::start(Backend::Sqlite).await;
    let http = f.app.client(None);
    for url in [
        f.app.url("/authorize?client_id=x&request_uri=y"),
        f.app.url("/account"),
        f.app.mtls_url("/authorize"),
    ] {
        let response = http.get(&url).send().await.unwrap();
        let headers = response.headers();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{url}"
        );
        assert_eq!(
            headers["strict-transport-security"], "max-age=63072000; includeSubDomains",
            "{url}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["referrer-policy"], "no-referrer");
        assert_eq!(headers["cache-control"], "no-store");
        let csp = headers["content-security-policy"].to_str().unwrap();
        for directive in [
            "default-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{url}: {csp}");
        }
    }
    // Every answer of either listener has HSTS, the protocol ones and errors included.
    for url in [
        f.app.url("/jwks"),
        f.app.mtls_url("/jwks"),
        f.app.mtls_url("/token"),
        f.app.url("/nowhere"),
    ] {
        let response = http.get(&url).send().await.unwrap();
        assert!(
            response.headers().contains_key("strict-transport-security"),
            "{url}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    }
}

#[tokio::test]
async fn preload_is_added_to_hsts_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.env = vec![("PORTCULLIS_TLS__HSTS_PRELOAD".into(), "true".into())];
    let app = portcullis_testkit::app::App::spawn(options).await;
    let (_, headers, _) = app.get_json("/jwks").await;
    assert_eq!(
        headers["strict-transport-security"],
        "max-age=63072000; includeSubDomains; preload"
    );
}

#[tokio::test]
async fn every_protocol_answer_is_no_store_and_public_documents_keep_their_lifetime() {
    let f = Fixture::start(Backend::Sqlite).await;
    let http = f.app.client(None);
    let form = [("grant_type", "client_credentials")];
    for (method, path) in [
        (Method::POST, "/token"),
        (Method::POST, "/par"),
        (Method::POST, "/introspect"),
        (Method::POST, "/revoke"),
        (Method::POST, "/register"),
        (Method::POST, "/events"),
        (Method::GET, "/userinfo"),
        (Method::GET, "/grants/g1"),
        (Method::GET, "/admin/v1/clients"),
        (Method::GET, "/admin/v1/openapi.json"),
        (Method::GET, "/healthz"),
        (Method::GET, "/nowhere"),
    ] {
        let response = http
            .request(method, f.app.url(path))
            .form(&form)
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["cache-control"], "no-store", "{path}");
        assert_eq!(headers["pragma"], "no-cache", "{path}");
    }
    let (_, headers, _) = f.app.get_json("/jwks").await;
    assert!(
        headers["cache-control"]
            .to_str()
            .unwrap()
            .starts_with("public, max-age=")
    );
}

#[tokio::test]
async fn bodies_too_large_for_the_endpoint_get_413_in_its_format() {
    let f = Fixture::start(Backend::Sqlite).await;
    let http = f.app.client(None);
    // Beyond /token's and /revoke's 16 KiB and /par's 32 KiB, within the global 64 KiB.
    let padding = "a".repeat(40 * 1024);
    for path in ["/token", "/par", "/revoke"] {
        let reply = Reply::send(
            http.post(f.app.url(path))
                .form(&[("grant_type", "client_credentials"), ("pad", &padding)]),
        )
        .await;
        reply.assert_error(413, "invalid_request");
    }
    // The global limit (64 KiB) still holds where no tighter one is set.
    let reply = Reply::send(
        http.post(f.app.url("/register"))
            .json(&json!({"pad": "a".repeat(70 * 1024)})),
    )
    .await;
    reply.assert_error(413, "invalid_request");
    // A page's form gets the error page.
    let response = http
        .post(f.app.url("/authorize/login"))
        .form(&[("username", padding.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(response.text().await.unwrap().contains("too large"));
}

/// `GET /admin/v1/clients` with the bank's admin token and a fresh proof, plus `headers`.
async fn admin_clients(bank: &Bank, headers: &[(&str, &str)]) -> Reply {
    let app = bank.app();
    let url = app.url("/admin/v1/clients");
    let now = server_now(app).await;
    let session = &bank.session;
    let proof = dpop_proof(&session.dpop, "GET", &url, Some(&session.token), now);
    let mut request = app
        .client(None)
        .get(&url)
        .header("Authorization", format!("DPoP {}", session.token))
        .header("DPoP", proof);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    Reply::send(request).await
}

#[tokio::test]
async fn the_admin_api_refuses_browsers_cross_site_requests_and_serves_the_rest() {
    let bank = Bank::start().await;
    let origin = Url::parse(&bank.app().issuer)
        .unwrap()
        .origin()
        .ascii_serialization();
    for refused in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example"),
        ],
    ] {
        let reply = admin_clients(&bank, &refused).await;
        reply.assert_error(403, "access_denied");
        assert_eq!(cors_headers(&reply.headers), Vec::<String>::new());
    }
    // A client that is not a browser, and the issuer's own origin, are served as before.
    for allowed in [
        vec![],
        vec![
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        vec![("sec-fetch-site", "none")],
    ] {
        let reply = admin_clients(&bank, &allowed).await;
        assert_eq!(reply.status, 200, "{allowed:?}: {}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
}

/// Every secret value the flow used, and how the log and the audit table are searched for them.
///
/// Sound comparison, and why:
/// - every value is searched whole;
/// - a value with a random part of 16 characters or more (opaque tokens, codes, client secrets,
///   registration access tokens, the random part of a `request_uri`, PKCE verifiers, the TOTP
///   secret, and the signature of every JWT) is also searched as every 16-character window of
///   that part: 16 base64url characters are 96 random bits, so a match by chance is impossible,
///   and a truncated or prefixed token ("abc…") in a log line is caught;
/// - a JWT is also searched as its signing input (header.payload): its claims must not be
///   logged either;
/// - a short value (a 6-digit TOTP code) is searched only where a leak would put it (`"123456"`,
///   `=123456`, `: 123456`): as a bare digit run it would match timestamps by chance;
/// - passwords are searched whole (they are not random, so windows could collide with text).
#[derive(Default)]
struct Secrets {
    whole: Vec<(String, String)>,
    windows: Vec<(String, String)>,
}

const WINDOW: usize = 16;

impl Secrets {
    fn whole(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "{what} is empty");
        self.whole.push((what.to_owned(), value.to_owned()));
    }

    /// A value whose `random` part is high-entropy (all of it, for most).
    fn random(&mut self, what: &str, value: &str, random: &str) {
        self.whole(what, value);
        assert!(random.len() >= WINDOW, "{what} is too short for windows");
        let bytes = random.as_bytes();
        for start in 0..=bytes.len() - WINDOW {
            let window = String::from_utf8(bytes[start..start + WINDOW].to_vec()).unwrap();
            self.windows.push((what.to_owned(), window));
        }
    }

    fn token(&mut self, what: &str, value: &str) {
        self.random(what, value, value);
    }

    fn jwt(&mut self, what: &str, jwt: &str) {
        let (input, signature) = jwt.rsplit_once('.').unwrap();
        self.whole(&format!("{what} (signing input)"), input);
        self.random(what, jwt, signature);
    }

    fn short_code(&mut self, what: &str, code: &str) {
        for form in [
            format!("\"{code}\""),
            format!("={code}"),
            format!(": {code}"),
        ] {
            self.whole(what, &form);
        }
    }

    /// The secrets found in `text`, by name.
    fn found_in(&self, text: &str) -> Vec<String> {
        let mut found: Vec<String> = self
            .whole
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(what, _)| what.clone())
            .collect();
        // One pass over the text for every window at once.
        let windows: HashSet<&[u8]> = self.windows.iter().map(|(_, w)| w.as_bytes()).collect();
        let hits: HashSet<&[u8]> = text
            .as_bytes()
            .windows(WINDOW)
            .filter(|w| windows.contains(w))
            .collect();
        found.extend(
            self.windows
                .iter()
                .filter(|(_, w)| hits.contains(w.as_bytes()))
                .map(|(what, w)| format!("{what} (window {w})")),
        );
        found.sort();
        found.dedup();
        found
    }
}

/// RFC 4648 base32 without padding, as `otpauth` URIs carry TOTP secrets.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (String::new(), 0_u32, 0_u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// A FAPI 2.0 client of the flow (`private_key_jwt`, DPoP-bound tokens), whose every
/// assertion and proof is kept in the secrets.
struct Tpp {
    id: String,
    key: ClientKey,
    dpop: ClientKey,
}

impl Tpp {
    async fn assertion(&self, bank: &Bank, secrets: &mut Secrets) -> Vec<(String, String)> {
        let app = bank.app();
        let now = server_now(app).await;
        let assertion = self.key.sign(&assertion_claims(&self.id, &app.issuer, now));
        secrets.jwt("client assertion", &assertion);
        vec![
            ("client_assertion_type".into(), JWT_BEARER.into()),
            ("client_assertion".into(), assertion),
        ]
    }

    async fn proof(
        &self,
        bank: &Bank,
        secrets: &mut Secrets,
        method: &str,
        url: &str,
        token: Option<&str>,
    ) -> String {
        let now = server_now(bank.app()).await;
        let proof = dpop_proof(&self.dpop, method, url, token, now);
        secrets.jwt("DPoP proof", &proof);
        proof
    }

    /// `POST path` on the main listener with `form`, an assertion and a DPoP proof.
    async fn post(
        &self,
        bank: &Bank,
        secrets: &mut Secrets,
        path: &str,
        form: &[(&str, &str)],
    ) -> Reply {
        let app = bank.app();
        let url = app.url(path);
        let mut form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        form.extend(self.assertion(bank, secrets).await);
        let credentials = Credentials {
            dpop: Some(self.proof(bank, secrets, "POST", &url, None).await),
            basic: None,
        };
        let reply = post_form(&app.client(None), &url, &form, &credentials).await;
        assert_eq!(
            reply.header("cache-control"),
            Some("no-store"),
            "{path}: {:?}",
            reply.headers
        );
        reply
    }
}

/// The JSON log lines of the request with id `request_id`.
fn lines_of(log: &str, request_id: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["span"]["request_id"] == request_id)
        .collect()
}

/// Every row of `security_events`, whole, as JSON text.
async fn security_events(bank: &Bank) -> Vec<String> {
    let mut db = sqlx::PgConnection::connect(bank.db().url()).await.unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT row_to_json(e)::text FROM security_events e ORDER BY 1")
            .fetch_all(&mut db)
            .await
            .unwrap();
    rows.into_iter().map(|(row,)| row).collect()
}

#[tokio::test]
async fn a_full_flow_leaves_no_secret_in_the_debug_log_or_the_audit_table() {
    let initial_token = format!("{}{}", random_id(), random_id());
    let registration = format!(
        "[registration]\nprofile = \"oauth\"\ninitial_access_token_sha256 = [\"{}\"]\n",
        sha256_b64(initial_token.as_bytes())
    );
    let bank = Bank::start_with_env(
        Backend::Postgres,
        &registration,
        &[("RUST_LOG", "debug"), ("PORTCULLIS_LOG__FORMAT", "json")],
    )
    .await;
    let app = bank.app();
    let mut secrets = Secrets::default();
    secrets.token("initial access token", &initial_token);
    secrets.jwt("admin access token", &bank.session.token);

    // The client, registered by the operator, and acting for the accounts API too (so that it
    // may introspect).
    let key = ClientKey::es256(Some("tpp-signing"));
    let created = bank
        .session
        .create(
            app,
            "/admin/v1/clients",
            &json!({
                "profile": "fapi2",
                "client_name": "Secret grep TPP",
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": key.jwks(),
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "redirect_uris": [REDIRECT],
                "scope": "openid accounts",
                "authorization_details_types": ["account_information"],
                "dpop_bound_access_tokens": true,
            }),
        )
        .await;
    let tpp = Tpp {
        id: created["client_id"].as_str().unwrap().to_owned(),
        key,
        dpop: ClientKey::es256(None),
    };
    let resource: String = RESOURCE
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let reply = bank
        .session
        .call(
            app,
            Method::PUT,
            &format!("/admin/v1/resources/{resource}"),
            Some(&json!({"name": "Accounts API", "scopes": ["accounts"], "client_id": tpp.id})),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The customer: a password and TOTP.
    let username = format!("grep-{}", random_id().to_lowercase());
    let user = bank.customer(&username).await;
    let totp_secret = bank.enrol_totp(&user).await;
    secrets.whole("password", PASSWORD);
    secrets.token("TOTP secret (base32)", &base32(&totp_secret));

    // PAR with PKCE, the code bound to the DPoP key (RFC 9449 §10).
    let verifier = format!("{}{}", random_id(), random_id());
    secrets.token("PKCE verifier", &verifier);
    let challenge = sha256_b64(verifier.as_bytes());
    let state = random_id();
    let reply = tpp
        .post(
            &bank,
            &mut secrets,
            "/par",
            &[
                ("response_type", "code"),
                ("redirect_uri", REDIRECT),
                ("scope", "openid accounts"),
                ("state", &state),
                ("nonce", &random_id()),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
                ("authorization_details", DETAILS),
            ],
        )
        .await;
    assert_eq!(reply.status, 201, "PAR: {}", reply.body);
    let request_uri = reply.body["request_uri"].as_str().unwrap().to_owned();
    let random_part = request_uri.rsplit(':').next().unwrap();
    secrets.random("request_uri", &request_uri, random_part);

    // The pages: a wrong password, the right one, a TOTP code, consent.
    let mut browser = Browser::new(app);
    let mut authorize = Url::parse(&app.url("/authorize")).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &tpp.id)
        .append_pair("request_uri", &request_uri);
    let login = browser.get(authorize.as_str()).await;
    login.assert_form("/authorize/login");
    let interaction = login.input("interaction");
    secrets.token("interaction id", &interaction);
    let wrong_password = format!("not-the-password-{}", random_id());
    secrets.whole("wrong password", &wrong_password);
    let wrong = browser
        .log_in(app, &login, &username, &wrong_password)
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let second = browser.log_in(app, &login, &username, PASSWORD).await;
    second.assert_form("/authorize/totp");
    let code = totp(&totp_secret, server_now(app).await);
    secrets.short_code("TOTP code", &code);
    let consent = browser
        .post(
            &app.url("/authorize/totp"),
            &[("interaction", &interaction), ("code", &code)],
        )
        .await;
    consent.assert_form("/authorize/consent");
    let session = browser
        .cookie("__Host-portcullis-session")
        .unwrap()
        .to_owned();
    secrets.token("session cookie", &session);
    let account = consent.input("account");
    let redirect = browser
        .approve(app, &consent, &[&account])
        .await
        .redirect_to(REDIRECT);
    let authorization_code = redirect["code"].clone();
    secrets.token("authorization code", &authorization_code);

    // The code at /token; its request id and client id must be in its log lines.
    let reply = tpp
        .post(
            &bank,
            &mut secrets,
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &authorization_code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "token: {}", reply.body);
    let token_request_id = reply.header("x-request-id").unwrap().to_owned();
    let access_token = reply.body["access_token"].as_str().unwrap().to_owned();
    let refresh_token = reply.body["refresh_token"].as_str().unwrap().to_owned();
    secrets.jwt("access token", &access_token);
    secrets.jwt("ID token", reply.body["id_token"].as_str().unwrap());
    secrets.token("refresh token", &refresh_token);

    // A refused assertion (signed by a key the client never registered) is not logged either,
    // and is counted by reason.
    let stranger = Tpp {
        id: tpp.id.clone(),
        key: ClientKey::es256(Some("tpp-signing")),
        dpop: ClientKey::es256(None),
    };
    let refused = stranger
        .post(
            &bank,
            &mut secrets,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    refused.assert_error(401, "invalid_client");

    // Userinfo with the token and a proof covering it.
    let url = app.url("/userinfo");
    let proof = tpp
        .proof(&bank, &mut secrets, "GET", &url, Some(&access_token))
        .await;
    let info = Reply::send(
        app.client(None)
            .get(&url)
            .header("Authorization", format!("DPoP {access_token}"))
            .header("DPoP", proof),
    )
    .await;
    assert_eq!(info.status, 200, "userinfo: {}", info.body);
    assert_eq!(info.header("cache-control"), Some("no-store"));

    // Refresh, introspect, revoke.
    let reply = tpp
        .post(
            &bank,
            &mut secrets,
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "refresh: {}", reply.body);
    let refreshed = reply.body["access_token"].as_str().unwrap().to_owned();
    secrets.jwt("refreshed access token", &refreshed);
    let reply = tpp
        .post(&bank, &mut secrets, "/introspect", &[("token", &refreshed)])
        .await;
    assert_eq!(
        (reply.status.as_u16(), &reply.body["active"]),
        (200, &json!(true)),
        "introspect: {}",
        reply.body
    );
    for token in [&refreshed, &refresh_token] {
        let reply = tpp
            .post(&bank, &mut secrets, "/revoke", &[("token", token)])
            .await;
        assert_eq!(reply.status, 200, "revoke: {}", reply.body);
    }

    // Dynamic registration of an `oauth` client with a secret, managed with its registration
    // access token; its secret gets a token (client_secret_basic) that it then revokes.
    let registered = Reply::send(
        app.client(None)
            .post(app.url("/register"))
            .bearer_auth(&initial_token)
            .json(&json!({
                "client_name": "Back office",
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["client_credentials"],
                "response_types": [],
                "scope": "accounts",
            })),
    )
    .await;
    assert_eq!(registered.status, 201, "register: {}", registered.body);
    assert_eq!(registered.header("cache-control"), Some("no-store"));
    let back_office = registered.body["client_id"].as_str().unwrap().to_owned();
    let client_secret = registered.body["client_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let registration_token = registered.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.token("client secret", &client_secret);
    secrets.token("registration access token", &registration_token);
    let read = Reply::send(
        app.client(None)
            .get(registered.body["registration_client_uri"].as_str().unwrap())
            .bearer_auth(&registration_token),
    )
    .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.header("cache-control"), Some("no-store"));
    let token_url = app.url("/token");
    let dpop = ClientKey::es256(None);
    let proof = dpop_proof(&dpop, "POST", &token_url, None, server_now(app).await);
    secrets.jwt("DPoP proof", &proof);
    let reply = post_form(
        &app.client(None),
        &token_url,
        &[
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), "accounts".into()),
        ],
        &Credentials {
            dpop: Some(proof),
            basic: Some((back_office.clone(), client_secret.clone())),
        },
    )
    .await;
    assert_eq!(reply.status, 200, "client credentials: {}", reply.body);
    let m2m_token = reply.body["access_token"].as_str().unwrap().to_owned();
    secrets.jwt("client-credentials access token", &m2m_token);
    let reply = post_form(
        &app.client(None),
        &app.url("/revoke"),
        &[("token".into(), m2m_token.clone())],
        &Credentials {
            dpop: None,
            basic: Some((back_office, client_secret)),
        },
    )
    .await;
    assert_eq!(reply.status, 200, "revoke: {}", reply.body);

    // The log: JSON lines, the token request's with its request id and client id.
    let log = app.stderr();
    assert!(
        log.lines().filter(|l| l.starts_with('{')).count() > 50,
        "the server logs JSON at debug:\n{log}"
    );
    assert!(
        log.lines().any(|l| l.contains(r#""level":"DEBUG""#)),
        "debug lines are logged"
    );
    let token_lines = lines_of(&log, &token_request_id);
    assert!(
        token_lines.iter().any(|line| {
            line["span"]["client_id"] == tpp.id.as_str() && line["span"]["source_ip"] == "127.0.0.1"
        }),
        "the token request's log lines carry its request id, client id and source address: \
         {token_lines:#?}"
    );
    // The search finds what it looks for: a 16-character piece of a token, or a code in a form.
    assert!(
        !secrets
            .found_in(&format!("x{}y", &refresh_token[5..21]))
            .is_empty()
    );
    assert!(!secrets.found_in(&format!("code={code}&")).is_empty());
    let found = secrets.found_in(&log);
    assert!(found.is_empty(), "secrets in the server's log: {found:#?}");

    // The audit trail, every column of every row.
    let events = security_events(&bank).await;
    assert!(
        events.iter().any(|e| e.contains("consent.given")),
        "the flow is audited: {events:#?}"
    );
    let dump = events.join("\n");
    let found = secrets.found_in(&dump);
    assert!(found.is_empty(), "secrets in security_events: {found:#?}");

    // The metrics count the flow: tokens by grant and binding, the refusal by reason, and the
    // requests by endpoint and outcome.
    let metrics = reqwest::get(format!("http://{}/metrics", app.metrics_listen.unwrap()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"portcullis_tokens_issued_total{grant_type="authorization_code",binding="dpop"} 1"#,
        r#"portcullis_tokens_issued_total{grant_type="refresh_token",binding="dpop"} 1"#,
        r#"portcullis_client_auth_failures_total{reason="invalid_assertion"} 1"#,
        r#"portcullis_http_requests_total{method="POST",endpoint="/token",status="401",outcome="invalid_client"} 1"#,
        r#"portcullis_http_requests_total{method="POST",endpoint="/par",status="201",outcome="2xx"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} is not in:\n{metrics}");
    }
}

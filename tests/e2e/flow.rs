//! The FAPI 2.0 authorization code flow against the real binary over real TLS, driven through
//! the customer's HTML pages as a browser would (its own cookie jar, redirects not followed, so
//! the 303 to the client's redirect URI can be read): PAR with PKCE and `authorization_details`,
//! `GET /authorize`, the login form (and the TOTP form), the consent form choosing an account,
//! the code at `/token`, the access and ID tokens verified with `jsonwebtoken` against `/jwks`,
//! userinfo, refresh, and RP-initiated logout. Clients are registered through the admin API and
//! authenticate with `private_key_jwt` or `tls_client_auth` (a certificate from a CA the server is
//! configured to trust), their tokens bound by DPoP or by their certificate. Also refusal,
//! `prompt=none`, twenty concurrent redemptions of one code, and single use across two replicas
//! ([`replicas`]).

mod grants;
mod replicas;
mod tokens;

use std::collections::HashMap;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use portcullis_testkit::app::App;
use portcullis_testkit::certs::{ClientIdentity, TestCa};
use portcullis_testkit::db::{Backend, TestDatabase};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};

use crate::oauth::{
    ADMIN_SCOPE, AdminSession, ClientKey, Credentials, Reply, assertion_claims, assertion_form,
    bootstrap, dpop_proof, header_of, post_form, random_id, server_now, sha256_b64,
};
use crate::support::{Fixture, options};

/// The resource server whose scope `accounts` the clients ask for.
const RESOURCE: &str = "https://api.bank.example/accounts";
/// The clients' redirect URI (nothing listens there: the browser only reads the 303).
pub(crate) const REDIRECT: &str = "https://tpp.example/cb";
/// Where the clients want the browser after logout.
const LOGGED_OUT: &str = "https://tpp.example/logged-out";
/// Every customer's password.
pub(crate) const PASSWORD: &str = "correct horse battery staple";
/// What every authorization asks for besides its scopes (RFC 9396).
const DETAILS: &str = r#"[{"type":"account_information","actions":["read_balances"]}]"#;
/// The `acr` of a password login, and of password and TOTP.
pub(crate) const ACR_PASSWORD: &str = "urn:portcullis:acr:pwd";
pub(crate) const ACR_SCA: &str = "urn:portcullis:acr:sca";
const SESSION_COOKIE: &str = "__Host-portcullis-session";
const INTERACTION_COOKIE: &str = "__Host-portcullis-interaction";

/// A server that trusts a test CA for `tls_client_auth`, with the accounts API registered and
/// an admin session holding every admin scope.
pub(crate) struct Bank {
    f: Fixture,
    ca: TestCa,
    pub(crate) session: AdminSession,
}

impl Bank {
    /// A fresh server on SQLite whose `client_auth.trust_anchor_files` names a fresh CA.
    pub(crate) async fn start() -> Bank {
        Bank::start_on(Backend::Sqlite).await
    }

    /// [`Bank::start`] on a fresh database of `backend`.
    pub(crate) async fn start_on(backend: Backend) -> Bank {
        Bank::start_with(backend, "").await
    }

    /// [`Bank::start_on`] with `extra_config` (whole TOML tables, e.g. `"[events]\nlong_poll_secs
    /// = 1\n"`) appended to the configuration file.
    pub(crate) async fn start_with(backend: Backend, extra_config: &str) -> Bank {
        Bank::start_with_env(backend, extra_config, &[]).await
    }

    /// [`Bank::start_with`] with `env` set for the server process (e.g. `RUST_LOG`), over the
    /// test defaults.
    pub(crate) async fn start_with_env(
        backend: Backend,
        extra_config: &str,
        env: &[(&str, &str)],
    ) -> Bank {
        let ca = TestCa::new("Portcullis e2e flow CA");
        let dir = tempfile::tempdir().unwrap();
        let db = TestDatabase::new(backend).await;
        let ca_file = dir.path().join("client-ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let config = dir.path().join("portcullis.toml");
        // A JSON string is a TOML basic string.
        let anchor = serde_json::to_string(ca_file.to_str().unwrap()).unwrap();
        std::fs::write(
            &config,
            format!("[client_auth]\ntrust_anchor_files = [{anchor}]\n{extra_config}"),
        )
        .unwrap();
        let mut options = options(&dir, &db);
        options.args = vec!["--config".into(), config.to_str().unwrap().to_owned()];
        options.env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let app = App::spawn(options).await;
        let f = Fixture { app, dir, db };
        let admin = bootstrap(&f).await;
        let session = AdminSession::open(&f.app, &admin, ADMIN_SCOPE).await;
        let bank = Bank { f, ca, session };
        bank.session
            .create(
                bank.app(),
                "/admin/v1/resources",
                &json!({"resource": RESOURCE, "name": "Accounts API", "scopes": ["accounts"]}),
            )
            .await;
        bank
    }

    pub(crate) fn app(&self) -> &App {
        &self.f.app
    }

    /// The server's database and data directory (its KEK is there), for running the CLI on them.
    pub(crate) fn fixture(&self) -> &Fixture {
        &self.f
    }

    /// The server's database.
    pub(crate) fn db(&self) -> &TestDatabase {
        &self.f.db
    }

    /// Makes `tpp` the client the accounts API acts as: it introspects, revokes tokens of the
    /// API's audience and polls the revocation event feed as it.
    pub(crate) async fn act_for_accounts_api(&self, tpp: &Tpp) {
        let path: String = format!(
            "/admin/v1/resources/{}",
            RESOURCE
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        );
        let body = json!({"name": "Accounts API", "scopes": ["accounts"], "client_id": tpp.id});
        let reply = self
            .session
            .call(self.app(), Method::PUT, &path, Some(&body))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    /// A second server process on the same database and data directory (so the same KEK and
    /// development CA), serving the same issuer as a replica behind a load balancer would.
    pub(crate) async fn replica(&self) -> App {
        let config = self.f.dir.path().join("portcullis.toml");
        let mut options = options(&self.f.dir, &self.f.db);
        options.args = vec!["--config".into(), config.to_str().unwrap().to_owned()];
        options.env = vec![("PORTCULLIS_ISSUER".into(), self.app().issuer.clone())];
        let replica = App::spawn(options).await;
        assert_eq!(replica.issuer, self.app().issuer);
        replica
    }

    /// A customer with [`PASSWORD`], created through the admin API; their id.
    pub(crate) async fn customer(&self, username: &str) -> String {
        let user = self
            .session
            .create(
                self.app(),
                "/admin/v1/users",
                &json!({
                    "username": username,
                    "password": PASSWORD,
                    "claims": {"email": format!("{username}@bank.example")},
                }),
            )
            .await;
        user["id"].as_str().unwrap().to_owned()
    }

    /// Enrols `user` in TOTP through the admin API; the shared secret from the `otpauth` URI.
    pub(crate) async fn enrol_totp(&self, user: &str) -> Vec<u8> {
        let reply = self
            .session
            .call(
                self.app(),
                Method::POST,
                &format!("/admin/v1/users/{user}/totp"),
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let uri = Url::parse(reply.body["otpauth_uri"].as_str().unwrap()).unwrap();
        let secret = uri
            .query_pairs()
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no secret in {uri}"));
        base32_decode(&secret)
    }

    /// Registers a FAPI 2.0 client of the code flow that authenticates with `auth` and gets
    /// tokens bound by `binding`; its ID tokens are signed with `id_token_alg`.
    pub(crate) async fn tpp(&self, auth: Auth, binding: Binding, id_token_alg: &str) -> Tpp {
        self.tpp_named(
            &format!("{auth:?} {binding:?}"),
            auth,
            binding,
            id_token_alg,
        )
        .await
    }

    /// [`Bank::tpp`] with the `client_name` the pages show.
    pub(crate) async fn tpp_named(
        &self,
        name: &str,
        auth: Auth,
        binding: Binding,
        id_token_alg: &str,
    ) -> Tpp {
        self.tpp_with(name, auth, binding, id_token_alg, &json!({}))
            .await
    }

    /// [`Bank::tpp_named`] with the metadata members of `change` replacing the defaults.
    pub(crate) async fn tpp_with(
        &self,
        name: &str,
        auth: Auth,
        binding: Binding,
        id_token_alg: &str,
        change: &Value,
    ) -> Tpp {
        let name = name.to_owned();
        let cn = format!("tpp-{}", random_id().to_lowercase());
        let key = ClientKey::es256(Some("tpp-signing"));
        let mut body = json!({
            "profile": "fapi2",
            "client_name": name,
            "token_endpoint_auth_method": auth.method(),
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [REDIRECT],
            "post_logout_redirect_uris": [LOGGED_OUT],
            "scope": "openid accounts",
            "authorization_details_types": ["account_information"],
            "id_token_signed_response_alg": id_token_alg,
        });
        match auth {
            Auth::PrivateKeyJwt => body["jwks"] = key.jwks(),
            Auth::TlsClientAuth => {
                body["tls_client_auth_subject_dn"] = format!("CN={cn},O=Example TPP").into();
            }
        }
        match binding {
            Binding::Dpop => body["dpop_bound_access_tokens"] = true.into(),
            Binding::Certificate => {
                body["tls_client_certificate_bound_access_tokens"] = true.into();
            }
        }
        for (member, value) in change.as_object().unwrap() {
            body[member] = value.clone();
        }
        let created = self
            .session
            .create(self.app(), "/admin/v1/clients", &body)
            .await;
        assert_eq!(created["profile"], "fapi2", "{created}");
        Tpp {
            id: created["client_id"].as_str().unwrap().to_owned(),
            name,
            auth,
            binding,
            key,
            cn,
        }
    }

    /// What a client proves possession of at the token endpoint: a fresh DPoP key and a fresh
    /// certificate (issued by the CA with the client's subject DN for `tls_client_auth`, else
    /// self-signed).
    pub(crate) fn holder(&self, tpp: &Tpp) -> Holder {
        let cert = match tpp.auth {
            Auth::TlsClientAuth => self.ca.issue("Example TPP", &tpp.cn),
            Auth::PrivateKeyJwt => ClientIdentity::self_signed("tpp-binding"),
        };
        Holder {
            dpop: ClientKey::es256(None),
            cert,
        }
    }
}

/// How a client authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    PrivateKeyJwt,
    TlsClientAuth,
}

impl Auth {
    fn method(self) -> &'static str {
        match self {
            Auth::PrivateKeyJwt => "private_key_jwt",
            Auth::TlsClientAuth => "tls_client_auth",
        }
    }
}

/// How a client's access tokens are sender-constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Binding {
    Dpop,
    Certificate,
}

/// A DPoP key and a client certificate.
pub(crate) struct Holder {
    pub(crate) dpop: ClientKey,
    pub(crate) cert: ClientIdentity,
}

/// A client of the code flow, registered through the admin API.
pub(crate) struct Tpp {
    pub(crate) id: String,
    name: String,
    auth: Auth,
    binding: Binding,
    /// The `private_key_jwt` key.
    key: ClientKey,
    /// The CN of its subject DN (`tls_client_auth`).
    cn: String,
}

/// A pushed authorization request: the URL the browser is sent to, and what the client keeps.
pub(crate) struct Pushed {
    pub(crate) url: String,
    pub(crate) state: String,
    pub(crate) nonce: String,
    verifier: String,
}

impl Tpp {
    /// The client-authentication members of a form.
    fn authentication(&self, app: &App, now: i64) -> Vec<(String, String)> {
        match self.auth {
            Auth::PrivateKeyJwt => {
                assertion_form(&self.key.sign(&assertion_claims(&self.id, &app.issuer, now)))
            }
            Auth::TlsClientAuth => vec![("client_id".into(), self.id.clone())],
        }
    }

    /// Whether its token requests go to the mTLS listener: to authenticate with the certificate,
    /// or to have the token bound to it.
    fn token_on_mtls(&self) -> bool {
        self.auth == Auth::TlsClientAuth || self.binding == Binding::Certificate
    }

    /// The `cnf` and `token_type` of an access token bound to what `holder` presented.
    fn expected_binding(&self, holder: &Holder) -> (Value, &'static str) {
        match self.binding {
            Binding::Dpop => (json!({"jkt": holder.dpop.thumbprint()}), "DPoP"),
            Binding::Certificate => (json!({"x5t#S256": holder.cert.x5t_s256()}), "Bearer"),
        }
    }

    /// `POST /par` (on the listener of its authentication method) with PKCE S256, a fresh state
    /// and nonce, [`DETAILS`], and `extra` parameters replacing the defaults. With `dpop`, a
    /// proof by it binds the code to that key (RFC 9449 §10).
    pub(crate) async fn push(
        &self,
        app: &App,
        holder: &Holder,
        extra: &[(&str, &str)],
        dpop: Option<&ClientKey>,
    ) -> Pushed {
        let verifier = format!("{}{}", random_id(), random_id());
        let state = random_id();
        let nonce = random_id();
        let challenge = sha256_b64(verifier.as_bytes());
        let mut form: Vec<(String, String)> = [
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "openid accounts"),
            ("state", state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("authorization_details", DETAILS),
        ]
        .into_iter()
        .filter(|(k, _)| !extra.iter().any(|(e, _)| e == k))
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let now = server_now(app).await;
        form.extend(self.authentication(app, now));
        let (url, http) = match self.auth {
            Auth::TlsClientAuth => (app.mtls_url("/par"), app.client(Some(&holder.cert))),
            Auth::PrivateKeyJwt => (app.url("/par"), app.client(None)),
        };
        let credentials = Credentials {
            dpop: dpop.map(|key| dpop_proof(key, "POST", &url, None, now)),
            basic: None,
        };
        let reply = post_form(&http, &url, &form, &credentials).await;
        assert_eq!(reply.status, 201, "PAR: {}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert!(reply.body["expires_in"].as_u64().unwrap() > 0);
        let request_uri = reply.body["request_uri"].as_str().unwrap();
        assert!(
            request_uri.starts_with("urn:ietf:params:oauth:request_uri:"),
            "{request_uri}"
        );
        let mut authorize = Url::parse(&app.url("/authorize")).unwrap();
        authorize
            .query_pairs_mut()
            .append_pair("client_id", &self.id)
            .append_pair("request_uri", request_uri);
        Pushed {
            url: authorize.to_string(),
            state,
            nonce,
            verifier,
        }
    }

    /// `POST /token` with `form` and the client's authentication, proving possession of
    /// `holder`'s key or certificate as the client's binding asks.
    pub(crate) async fn token(&self, app: &App, holder: &Holder, form: &[(&str, &str)]) -> Reply {
        let now = server_now(app).await;
        let (url, http) = if self.token_on_mtls() {
            (app.mtls_url("/token"), app.client(Some(&holder.cert)))
        } else {
            (app.url("/token"), app.client(None))
        };
        let mut form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        form.extend(self.authentication(app, now));
        let credentials = Credentials {
            dpop: (self.binding == Binding::Dpop)
                .then(|| dpop_proof(&holder.dpop, "POST", &url, None, now)),
            basic: None,
        };
        post_form(&http, &url, &form, &credentials).await
    }

    /// Redeems `code` from the authorization `pushed`.
    pub(crate) async fn redeem(
        &self,
        app: &App,
        holder: &Holder,
        pushed: &Pushed,
        code: &str,
    ) -> Reply {
        self.token(
            app,
            holder,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &pushed.verifier),
            ],
        )
        .await
    }

    /// A client-credentials token for the revocation event feed (`revocation_events` must be in
    /// the client's `scope` and `client_credentials` in its grant types).
    pub(crate) async fn events_token(&self, app: &App, holder: &Holder) -> String {
        let reply = self
            .token(
                app,
                holder,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "revocation_events"),
                ],
            )
            .await;
        assert_eq!(reply.status, 200, "events token: {}", reply.body);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    /// `POST /events` (RFC 8936 poll) with `body` and `token`, proving possession as for
    /// userinfo.
    pub(crate) async fn poll_events(
        &self,
        app: &App,
        holder: &Holder,
        token: &str,
        body: &Value,
    ) -> Reply {
        let request = match self.binding {
            Binding::Dpop => {
                let url = app.url("/events");
                let now = server_now(app).await;
                let proof = dpop_proof(&holder.dpop, "POST", &url, Some(token), now);
                app.client(None)
                    .post(&url)
                    .header("Authorization", format!("DPoP {token}"))
                    .header("DPoP", proof)
            }
            Binding::Certificate => app
                .client(Some(&holder.cert))
                .post(app.mtls_url("/events"))
                .header("Authorization", format!("Bearer {token}")),
        };
        Reply::send(request.json(body)).await
    }

    /// `GET /userinfo` with `token`: a DPoP proof covering it (`ath`) on the main listener, or
    /// as `Bearer` on the mTLS listener with `holder`'s certificate.
    async fn userinfo(&self, app: &App, holder: &Holder, token: &str) -> Reply {
        match self.binding {
            Binding::Dpop => {
                let url = app.url("/userinfo");
                let now = server_now(app).await;
                let proof = dpop_proof(&holder.dpop, "GET", &url, Some(token), now);
                Reply::send(
                    app.client(None)
                        .get(&url)
                        .header("Authorization", format!("DPoP {token}"))
                        .header("DPoP", proof),
                )
                .await
            }
            Binding::Certificate => {
                let url = app.mtls_url("/userinfo");
                Reply::send(
                    app.client(Some(&holder.cert))
                        .get(&url)
                        .header("Authorization", format!("Bearer {token}")),
                )
                .await
            }
        }
    }
}

/// A page the server answered the browser with.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    /// The value of the first form input named `name`.
    pub(crate) fn input(&self, name: &str) -> String {
        self.inputs(name)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body))
    }

    /// The values of every form input named `name`, in order.
    pub(crate) fn inputs(&self, name: &str) -> Vec<String> {
        let marker = format!(r#"name="{name}" value=""#);
        self.body
            .match_indices(&marker)
            .map(|(at, _)| {
                let rest = &self.body[at + marker.len()..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
            .collect()
    }

    /// Whether the page is a form posting to `action`.
    fn is_form(&self, action: &str) -> bool {
        self.body
            .contains(&format!(r#"<form method="post" action="{action}""#))
    }

    /// Asserts a 200 page with the form posting to `action`.
    #[track_caller]
    pub(crate) fn assert_form(&self, action: &str) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert!(
            self.is_form(action),
            "expected the form of {action}: {}",
            self.body
        );
    }

    /// The query parameters of a 303 to `base`.
    #[track_caller]
    pub(crate) fn redirect_to(&self, base: &str) -> HashMap<String, String> {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        assert_eq!(
            self.headers
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        let location = self.headers["location"].to_str().unwrap();
        let url = Url::parse(location).unwrap();
        assert_eq!(
            location.split_once('?').map_or(location, |(b, _)| b),
            base,
            "{location}"
        );
        let mut params = HashMap::new();
        for (k, v) in url.query_pairs() {
            assert!(
                params.insert(k.into_owned(), v.into_owned()).is_none(),
                "a repeated parameter in {location}"
            );
        }
        params
    }
}

/// A browser: an HTTPS client that trusts the server's CA and follows no redirect, and the
/// cookies it holds (all `__Host-`, so one jar for the one origin).
pub(crate) struct Browser {
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new(app: &App) -> Browser {
        let ca = reqwest::Certificate::from_pem(app.ca_pem.as_deref().unwrap()).unwrap();
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Browser {
            http,
            cookies: Vec::new(),
        }
    }

    pub(crate) fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Puts a cookie back (or in), as a browser that ignored a deletion would.
    fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }

    /// Keeps the cookies of a response; `Max-Age=0` deletes.
    fn keep(&mut self, headers: &HeaderMap) {
        for value in headers.get_all("set-cookie") {
            let value = value.to_str().unwrap();
            for attribute in ["Path=/", "Secure", "HttpOnly", "SameSite=Lax"] {
                assert!(
                    value.split("; ").any(|a| a == attribute),
                    "{attribute} missing: {value}"
                );
            }
            let (pair, _) = value.split_once(';').unwrap();
            let (name, v) = pair.split_once('=').unwrap();
            assert!(name.starts_with("__Host-"), "{value}");
            self.cookies.retain(|(k, _)| k != name);
            if !value.split("; ").any(|a| a == "Max-Age=0") {
                self.cookies.push((name.to_owned(), v.to_owned()));
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            let header = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            request.header("cookie", header)
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        self.keep(&headers);
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> Page {
        let request = self.http.get(url);
        self.send(request).await
    }

    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(url).form(form);
        self.send(request).await
    }

    /// Submits the login form of `page`.
    pub(crate) async fn log_in(
        &mut self,
        app: &App,
        page: &Page,
        username: &str,
        password: &str,
    ) -> Page {
        let interaction = page.input("interaction");
        self.post(
            &app.url("/authorize/login"),
            &[
                ("interaction", &interaction),
                ("username", username),
                ("password", password),
            ],
        )
        .await
    }

    /// Submits the consent form of `page`, approving with `accounts`.
    pub(crate) async fn approve(&mut self, app: &App, page: &Page, accounts: &[&str]) -> Page {
        let interaction = page.input("interaction");
        let mut form = vec![
            ("interaction", interaction.as_str()),
            ("decision", "approve"),
        ];
        form.extend(accounts.iter().map(|a| ("account", *a)));
        self.post(&app.url("/authorize/consent"), &form).await
    }
}

/// Verifies a JWT of the server's with `jsonwebtoken` against its `/jwks`, for `audience`;
/// the claims.
async fn verify(app: &App, jwt: &str, audience: &str) -> Value {
    let (status, _, jwks) = app.get_json("/jwks").await;
    assert_eq!(status, 200);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(jwt).unwrap();
    let kid = header.kid.as_deref().unwrap();
    let jwk = set
        .find(kid)
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[app.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .unwrap_or_else(|e| panic!("{jwt} does not verify: {e}"))
        .claims
}

/// OIDC Core §3.1.3.6 for SHA-256 algorithms: base64url of the left half of SHA-256.
fn at_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

/// RFC 4648 §6 base32 (no padding), as in `otpauth` URIs.
/// RFC 4648 base32 (the TOTP secret of an `otpauth://` URI), case-insensitive, padding optional.
pub(crate) fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let (mut out, mut buffer, mut bits) = (Vec::new(), 0_u32, 0_u32);
    for c in text.trim_end_matches('=').bytes() {
        let value = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .unwrap_or_else(|| panic!("{text} is not base32"));
        buffer = (buffer << 5) | u32::try_from(value).unwrap();
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap());
        }
    }
    out
}

/// The RFC 6238 TOTP code (HMAC-SHA1, 6 digits, 30 s steps) of `secret` at the Unix time `now`.
pub(crate) fn totp(secret: &[u8], now: i64) -> String {
    let step = now.div_euclid(30);
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = hmac::sign(&key, &step.to_be_bytes());
    let digest = tag.as_ref();
    // RFC 4226 §5.3 dynamic truncation.
    let offset = usize::from(digest[19] & 0x0f);
    let word = u32::from_be_bytes(digest[offset..offset + 4].try_into().unwrap()) & 0x7fff_ffff;
    format!("{:06}", word % 1_000_000)
}

/// Checks a code's token response: the access token (RFC 9068, bound as the client asks, for the
/// accounts API and userinfo, carrying the grant and the chosen account) and the ID token (OIDC
/// Core §3.1.3.6/7: for the client, the nonce, `at_hash`, `acr`/`amr`), both verified with
/// `jsonwebtoken`. The access token and the ID token's claims.
pub(crate) async fn check_code_tokens(
    app: &App,
    tpp: &Tpp,
    holder: &Holder,
    reply: &Reply,
    pushed: &Pushed,
    user: &str,
    account: &str,
) -> (String, Value) {
    assert_eq!(reply.status, 200, "token: {}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let (cnf, token_type) = tpp.expected_binding(holder);
    let body = &reply.body;
    assert_eq!(body["token_type"], token_type, "{body}");
    assert_eq!(body["scope"], "openid accounts");
    assert!(body["expires_in"].as_u64().unwrap() > 0);
    assert!(body["refresh_token"].is_string(), "{body}");
    let grant_id = body["grant_id"].as_str().unwrap();
    assert_eq!(
        body["authorization_details"][0]["accounts"],
        json!([account])
    );

    let access_token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&access_token)["typ"], "at+jwt");
    let claims = verify(app, &access_token, RESOURCE).await;
    assert_eq!(claims["aud"], json!([RESOURCE, app.issuer]), "and userinfo");
    assert_eq!(claims["sub"], user);
    assert_eq!(claims["client_id"], tpp.id.as_str());
    assert_eq!(claims["scope"], "openid accounts");
    assert_eq!(claims["grant_id"], grant_id);
    assert_eq!(claims["cnf"], cnf);
    assert_eq!(
        claims["authorization_details"],
        json!([{"type": "account_information", "actions": ["read_balances"], "accounts": [account]}])
    );
    assert!(claims["jti"].is_string(), "{claims}");

    let id_token = body["id_token"].as_str().unwrap();
    assert_ne!(header_of(id_token)["typ"], "at+jwt");
    let id = verify(app, id_token, &tpp.id).await;
    assert_eq!(id["aud"], tpp.id.as_str());
    assert_eq!(id["azp"], tpp.id.as_str());
    assert_eq!(id["sub"], user);
    assert_eq!(id["nonce"], pushed.nonce.as_str());
    assert_eq!(id["at_hash"], at_hash(&access_token));
    assert!(id["auth_time"].as_i64().unwrap() <= id["iat"].as_i64().unwrap());
    (access_token, id)
}

/// The whole flow for one client, through the pages: PAR, login, consent choosing the savings
/// account, the code, the tokens, userinfo, refresh, logout.
async fn code_flow(bank: &Bank, auth: Auth, binding: Binding, id_token_alg: &str) {
    let app = bank.app();
    let tpp = bank.tpp(auth, binding, id_token_alg).await;
    let context = format!("{} ({id_token_alg})", tpp.name);
    let username = format!("cust-{}", random_id().to_lowercase());
    let user = bank.customer(&username).await;
    let holder = bank.holder(&tpp);
    let mut browser = Browser::new(app);

    // PAR; a DPoP client binds the code to its key there too (RFC 9449 §10).
    let dpop_at_par = (binding == Binding::Dpop).then_some(&holder.dpop);
    let pushed = tpp.push(app, &holder, &[], dpop_at_par).await;

    // The login page: only client_id and request_uri in the URL, the pages' security headers,
    // and the interaction cookie.
    let login = browser.get(&pushed.url).await;
    login.assert_form("/authorize/login");
    let header = |name: &str| login.headers.get(name).and_then(|v| v.to_str().ok());
    assert!(
        header("content-security-policy").is_some_and(|csp| csp.contains("frame-ancestors 'none'")),
        "{context}: {:?}",
        login.headers
    );
    assert_eq!(header("x-frame-options"), Some("DENY"));
    assert_eq!(header("cache-control"), Some("no-store"));
    assert!(login.body.contains(&tpp.name), "{context}: {}", login.body);
    assert_eq!(
        browser.cookie(INTERACTION_COOKIE),
        Some(login.input("interaction").as_str()),
        "double submit: the same id in the cookie and the form"
    );

    // A wrong password gets the form again; the right one the consent page, and a session.
    let wrong = browser
        .log_in(app, &login, &username, "not the password")
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{context}");
    assert!(wrong.is_form("/authorize/login"));
    let consent = browser.log_in(app, &login, &username, PASSWORD).await;
    consent.assert_form("/authorize/consent");
    assert!(browser.cookie(SESSION_COOKIE).is_some(), "{context}");
    let accounts = consent.inputs("account");
    assert_eq!(accounts.len(), 2, "{context}: {}", consent.body);
    let savings = accounts[1].as_str();

    // Approve with one account: 303 to the redirect URI with code, state and iss (RFC 9207).
    let redirect = browser
        .approve(app, &consent, &[savings])
        .await
        .redirect_to(REDIRECT);
    assert_eq!(redirect["state"], pushed.state, "{context}");
    assert_eq!(redirect["iss"], app.issuer, "{context}");
    assert!(!redirect.contains_key("error"), "{context}: {redirect:?}");
    let code = &redirect["code"];

    let reply = tpp.redeem(app, &holder, &pushed, code).await;
    let (access_token, id) =
        check_code_tokens(app, &tpp, &holder, &reply, &pushed, &user, savings).await;
    assert_eq!(id["acr"], ACR_PASSWORD, "{context}");
    assert_eq!(id["amr"], json!(["pwd"]), "{context}");
    let id_token = reply.body["id_token"].as_str().unwrap().to_owned();
    assert_eq!(header_of(&id_token)["alg"], id_token_alg, "{context}");
    let refresh_token = reply.body["refresh_token"].as_str().unwrap().to_owned();
    let grant_id = reply.body["grant_id"].as_str().unwrap().to_owned();

    // Userinfo answers the holder of the token, and nobody else.
    let info = tpp.userinfo(app, &holder, &access_token).await;
    assert_eq!(info.status, 200, "{context}: userinfo: {}", info.body);
    assert_eq!(info.body["sub"], user.as_str());
    assert_eq!(info.header("cache-control"), Some("no-store"));
    let stranger = bank.holder(&tpp);
    let refused = tpp.userinfo(app, &stranger, &access_token).await;
    assert_eq!(refused.status, 401, "{context}: {}", refused.body);
    assert!(refused.header("www-authenticate").is_some());

    // Refresh: a new access token bound to the key or certificate presented now; a FAPI
    // client's refresh token is not rotated (SP 5.3.2.1-9).
    let renewed = bank.holder(&tpp);
    let reply = tpp
        .token(
            app,
            &renewed,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh_token),
            ],
        )
        .await;
    assert_eq!(reply.status, 200, "{context}: refresh: {}", reply.body);
    assert!(reply.body.get("refresh_token").is_none(), "{}", reply.body);
    assert!(reply.body.get("id_token").is_none(), "{}", reply.body);
    let (cnf, token_type) = tpp.expected_binding(&renewed);
    assert_eq!(reply.body["token_type"], token_type);
    assert_eq!(reply.body["grant_id"], grant_id.as_str());
    let refreshed = reply.body["access_token"].as_str().unwrap();
    assert_eq!(header_of(refreshed)["typ"], "at+jwt");
    let claims = verify(app, refreshed, RESOURCE).await;
    assert_eq!(claims["cnf"], cnf, "{context}");
    assert_ne!(claims["cnf"], tpp.expected_binding(&holder).0);
    assert_eq!(claims["sub"], user.as_str());
    assert_eq!(claims["grant_id"], grant_id.as_str());
    assert_eq!(
        claims["authorization_details"][0]["accounts"],
        json!([savings])
    );
    let info = tpp.userinfo(app, &renewed, refreshed).await;
    assert_eq!(info.status, 200, "{context}: {}", info.body);

    // While logged in, a new authorization goes straight to consent.
    let next = tpp.push(app, &holder, &[], None).await;
    browser
        .get(&next.url)
        .await
        .assert_form("/authorize/consent");

    // RP-initiated logout: 303 to the registered URI with state; the cookie is deleted.
    let session = browser.cookie(SESSION_COOKIE).unwrap().to_owned();
    let mut logout = Url::parse(&app.url("/logout")).unwrap();
    logout
        .query_pairs_mut()
        .append_pair("id_token_hint", &id_token)
        .append_pair("post_logout_redirect_uri", LOGGED_OUT)
        .append_pair("state", "bye");
    let out = browser.get(logout.as_str()).await;
    assert_eq!(out.redirect_to(LOGGED_OUT)["state"], "bye", "{context}");
    assert_eq!(browser.cookie(SESSION_COOKIE), None, "{context}");
    // The session is gone from the store: even a browser that kept the cookie logs in again.
    browser.set_cookie(SESSION_COOKIE, &session);
    let after = tpp.push(app, &holder, &[], None).await;
    browser
        .get(&after.url)
        .await
        .assert_form("/authorize/login");
}

#[tokio::test]
async fn the_code_flow_through_the_pages_for_each_client_authentication_and_token_binding() {
    let bank = Bank::start().await;
    for (auth, binding, id_token_alg) in [
        (Auth::PrivateKeyJwt, Binding::Dpop, "ES256"),
        (Auth::PrivateKeyJwt, Binding::Certificate, "PS256"),
        (Auth::TlsClientAuth, Binding::Dpop, "PS256"),
        (Auth::TlsClientAuth, Binding::Certificate, "ES256"),
    ] {
        code_flow(&bank, auth, binding, id_token_alg).await;
    }
}

#[tokio::test]
async fn a_customer_with_totp_gets_sca_and_refusals_come_back_as_errors_with_state_and_iss() {
    let bank = Bank::start().await;
    let app = bank.app();
    let tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let holder = bank.holder(&tpp);

    // Password, then a TOTP code computed here from the otpauth URI's secret (RFC 6238).
    let user = bank.customer("erin").await;
    let secret = bank.enrol_totp(&user).await;
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[], None).await;
    let login = browser.get(&pushed.url).await;
    login.assert_form("/authorize/login");
    let totp_page = browser.log_in(app, &login, "erin", PASSWORD).await;
    totp_page.assert_form("/authorize/totp");
    assert!(
        browser.cookie(SESSION_COOKIE).is_none(),
        "no session before the second factor"
    );
    let interaction = totp_page.input("interaction");
    let now = server_now(app).await;
    let accepted: Vec<String> = [now - 30, now, now + 30]
        .iter()
        .map(|t| totp(&secret, *t))
        .collect();
    let mut wrong = 0_u32;
    while accepted.contains(&format!("{wrong:06}")) {
        wrong += 1;
    }
    let bad = browser
        .post(
            &app.url("/authorize/totp"),
            &[
                ("interaction", &interaction),
                ("code", &format!("{wrong:06}")),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED, "{}", bad.body);
    assert!(bad.is_form("/authorize/totp"));
    let code = totp(&secret, now);
    let consent = browser
        .post(
            &app.url("/authorize/totp"),
            &[("interaction", &interaction), ("code", &code)],
        )
        .await;
    consent.assert_form("/authorize/consent");
    assert!(browser.cookie(SESSION_COOKIE).is_some());
    let account = consent.input("account");
    let redirect = browser
        .approve(app, &consent, &[&account])
        .await
        .redirect_to(REDIRECT);
    assert_eq!(redirect["state"], pushed.state);
    assert_eq!(redirect["iss"], app.issuer);
    let reply = tpp.redeem(app, &holder, &pushed, &redirect["code"]).await;
    let (_, id) = check_code_tokens(app, &tpp, &holder, &reply, &pushed, &user, &account).await;
    assert_eq!(id["acr"], ACR_SCA);
    assert_eq!(id["amr"], json!(["pwd", "otp"]));

    // The same TOTP code does not work twice.
    let pushed = tpp.push(app, &holder, &[("prompt", "login")], None).await;
    let login = browser.get(&pushed.url).await;
    login.assert_form("/authorize/login");
    let totp_page = browser.log_in(app, &login, "erin", PASSWORD).await;
    totp_page.assert_form("/authorize/totp");
    let replay = browser
        .post(
            &app.url("/authorize/totp"),
            &[
                ("interaction", &totp_page.input("interaction")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED, "{}", replay.body);

    // Refusal: the customer denies; the client gets access_denied with state and iss, no code,
    // and the request is used up.
    bank.customer("frank").await;
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[], None).await;
    let login = browser.get(&pushed.url).await;
    let consent = browser.log_in(app, &login, "frank", PASSWORD).await;
    consent.assert_form("/authorize/consent");
    let refused = browser
        .post(
            &app.url("/authorize/consent"),
            &[
                ("interaction", &consent.input("interaction")),
                ("decision", "deny"),
            ],
        )
        .await
        .redirect_to(REDIRECT);
    assert_eq!(refused["error"], "access_denied");
    assert_eq!(refused["state"], pushed.state);
    assert_eq!(refused["iss"], app.issuer);
    assert!(!refused.contains_key("code"), "{refused:?}");
    let again = browser.get(&pushed.url).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "{}", again.body);
    assert!(again.headers.get("location").is_none());

    // prompt=none in a browser without a session: login_required, with state and iss.
    let mut stranger = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[("prompt", "none")], None).await;
    let none = stranger.get(&pushed.url).await.redirect_to(REDIRECT);
    assert_eq!(none["error"], "login_required");
    assert_eq!(none["state"], pushed.state);
    assert_eq!(none["iss"], app.issuer);
    assert!(!none.contains_key("code"), "{none:?}");
}

#[tokio::test]
async fn twenty_concurrent_redemptions_of_one_code_over_tls_give_exactly_one_token() {
    let bank = Bank::start().await;
    let app = bank.app();
    let tpp = bank.tpp(Auth::PrivateKeyJwt, Binding::Dpop, "ES256").await;
    let holder = bank.holder(&tpp);
    bank.customer("gina").await;
    let mut browser = Browser::new(app);
    let pushed = tpp.push(app, &holder, &[], None).await;
    let login = browser.get(&pushed.url).await;
    let consent = browser.log_in(app, &login, "gina", PASSWORD).await;
    let account = consent.input("account");
    let redirect = browser
        .approve(app, &consent, &[&account])
        .await
        .redirect_to(REDIRECT);
    let code = &redirect["code"];

    // Twenty requests made first (each with its own assertion, DPoP key and proof, each on its
    // own connection), then sent at once.
    let url = app.url("/token");
    let now = server_now(app).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let mut form: Vec<(String, String)> = vec![
                ("grant_type".into(), "authorization_code".into()),
                ("code".into(), code.clone()),
                ("redirect_uri".into(), REDIRECT.into()),
                ("code_verifier".into(), pushed.verifier.clone()),
            ];
            form.extend(tpp.authentication(app, now));
            let key = ClientKey::es256(None);
            let credentials = Credentials {
                dpop: Some(dpop_proof(&key, "POST", &url, None, now)),
                basic: None,
            };
            (app.client(None), form, credentials, key)
        })
        .collect();
    let tasks: Vec<_> = attempts
        .into_iter()
        .map(|(http, form, credentials, key)| {
            let url = url.clone();
            tokio::spawn(async move { (post_form(&http, &url, &form, &credentials).await, key) })
        })
        .collect();
    let mut issued = Vec::new();
    let mut refusals = Vec::new();
    for task in tasks {
        let (reply, key) = task.await.unwrap();
        if reply.status == 200 {
            issued.push((reply, key));
        } else {
            reply.assert_error(400, "invalid_grant");
            refusals.push(reply.body["error_description"].as_str().unwrap().to_owned());
        }
    }
    // The code is used up atomically: every other request finds it used before, or, once a
    // replay has revoked the grant (checklist #1), finds the consent withdrawn.
    assert_eq!(refusals.len(), 19, "{refusals:#?}");
    assert!(
        refusals
            .iter()
            .all(|d| d.contains("used before") || d.contains("withdrawn")),
        "{refusals:#?}"
    );
    assert!(refusals.iter().any(|d| d.contains("used before")));
    // Every check comes before the code is used up, so the one request that redeems it also
    // gets the tokens, whatever the replays revoke meanwhile.
    assert_eq!(
        issued.len(),
        1,
        "exactly one token for one code: {refusals:#?}"
    );
    let (winner, key) = issued.pop().unwrap();
    let token = winner.body["access_token"].as_str().unwrap();
    assert_eq!(
        verify(app, token, RESOURCE).await["cnf"],
        json!({"jkt": key.thumbprint()})
    );
    // The replays revoked the grant (checklist #1): its token no longer opens userinfo.
    let holder = Holder {
        dpop: key,
        cert: holder.cert,
    };
    let info = tpp.userinfo(app, &holder, token).await;
    info.assert_error(401, "invalid_token");
}

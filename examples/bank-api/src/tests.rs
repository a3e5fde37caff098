//! Handler tests in process (`Router::oneshot`) with real tokens: a stand-in authorization
//! server on loopback HTTPS publishes its metadata and JWKS (all the verifier needs when neither
//! introspection nor the revocation feed is on), signs RFC 9068 access tokens bound to a client
//! certificate, and each request carries that certificate as the TLS listener would hand it over.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use portcullis_core::accounts::{Account, AccountDirectory as _, DemoDirectory};
use portcullis_jose::{SigningAlg, SigningKey};
use portcullis_verify::axum::ApiAuth;
use portcullis_verify::certificate::{CertificateSource, ClientCertificate};
use portcullis_verify::tls::{
    self, ConnectionLimits, ListenerKind, NoObserver, ServerIdentity, TlsListener,
};
use portcullis_verify::{Verifier, VerifierConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::sync::watch;
use tower::ServiceExt as _;
use uuid::Uuid;

use crate::app::{self, AppState};
use crate::ledger::ConsentLedger;
use crate::metrics::Counters;

const RESOURCE: &str = "https://bank.example/api";
const PUBLIC_URL: &str = "https://127.0.0.1:9443";
const CUSTOMER: &str = "0b7e3c52-1f7d-4d0e-8a43-5c1e2f3a4b5c";
const OTHER_CUSTOMER: &str = "9d2b1a4e-7c6f-4e5d-b3a2-1f0e9d8c7b6a";

/// The stand-in authorization server.
struct FakeAs {
    issuer: String,
    key: SigningKey,
    ca_file: tempfile::NamedTempFile,
    _stop: watch::Sender<bool>,
}

impl FakeAs {
    async fn start() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test AS CA");
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(ca_file.path(), ca_cert.pem()).unwrap();
        let identity = ServerIdentity {
            chain: vec![CertificateDer::from(leaf.der().to_vec())],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        };
        let listener = TlsListener::bind(
            "127.0.0.1:0".parse().unwrap(),
            ListenerKind::Main,
            &identity,
        )
        .await
        .unwrap();
        let issuer = format!("https://{}", listener.local_addr().unwrap());
        let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
        let metadata = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
        let jwks = json!({"keys": [Value::Object(key.public_jwk().unwrap().members().clone())]});
        let router = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                axum::routing::get(move || async move { axum::Json(metadata) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(tls::serve(
            listener,
            router,
            ConnectionLimits::default(),
            Arc::new(NoObserver),
            stopped,
        ));
        Self {
            issuer,
            key,
            ca_file,
            _stop: stop,
        }
    }

    /// An access token for `sub`, bound to `x5t`, with `extra` claims (a `null` removes one).
    fn token(&self, sub: &str, x5t: &str, extra: Value) -> String {
        let now = portcullis_verify::Clock::now(&portcullis_verify::SystemClock);
        let mut claims = json!({
            "iss": self.issuer,
            "aud": RESOURCE,
            "sub": sub,
            "client_id": "tpp-1",
            "iat": now,
            "exp": now + 300,
            "jti": Uuid::new_v4().to_string(),
            "cnf": {"x5t#S256": x5t},
        });
        for (name, value) in extra.as_object().unwrap() {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(name);
            } else {
                claims[name] = value.clone();
            }
        }
        self.key
            .sign_jwt("at+jwt", claims.as_object().unwrap())
            .unwrap()
    }
}

/// The API under test, the stand-in AS, and the TPP's certificate.
struct Harness {
    fake: FakeAs,
    router: Router,
    state: AppState,
    certificate: Arc<ClientCertificate>,
    accounts: Vec<Account>,
}

impl Harness {
    async fn new() -> Self {
        let fake = FakeAs::start().await;
        let mut config = VerifierConfig::new(&fake.issuer, RESOURCE);
        config.ca_files = vec![fake.ca_file.path().to_owned()];
        config.feed = None;
        let verifier = Verifier::new(config).await.unwrap();
        let state = AppState {
            auth: ApiAuth::new(verifier, PUBLIC_URL),
            directory: Arc::new(DemoDirectory),
            ledger: Arc::new(ConsentLedger::default()),
            counters: Arc::new(Counters::default()),
        };
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let certificate = Arc::new(ClientCertificate::new(
            CertificateDer::from(cert.der().to_vec()),
            CertificateSource::Handshake,
        ));
        let accounts = DemoDirectory
            .accounts_of(Uuid::parse_str(CUSTOMER).unwrap())
            .await
            .unwrap();
        Self {
            router: app::router(state.clone()),
            fake,
            state,
            certificate,
            accounts,
        }
    }

    /// A token of the customer, bound to the TPP's certificate, with `extra` claims.
    fn token(&self, extra: Value) -> String {
        self.fake
            .token(CUSTOMER, self.certificate.x5t_s256(), extra)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Request<Body> {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(serde_json::to_vec(&json).unwrap())
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).unwrap();
        request.extensions_mut().insert(self.certificate.clone());
        request
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, body)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let (status, headers, body) = self
            .send(self.request("GET", path, Some(token), None))
            .await;
        assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
        (status, body)
    }

    async fn pay(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self
            .send(self.request("POST", "/payments", Some(token), Some(body)))
            .await;
        (status, body)
    }

    fn current(&self) -> &Account {
        &self.accounts[0]
    }

    fn savings(&self) -> &Account {
        &self.accounts[1]
    }

    /// A token for the customer's current account only, with `actions`.
    fn account_token(&self, actions: &[&str]) -> String {
        self.token(json!({
            "scope": "openid accounts",
            "authorization_details": [
                {"type": "account_information", "actions": actions, "accounts": [self.current().id]}
            ]
        }))
    }

    /// A token for a payment of up to 10.00 EUR to a merchant from the current account.
    fn payment_token(&self, grant_id: &str) -> String {
        self.token(json!({
            "scope": "payments",
            "grant_id": grant_id,
            "authorization_details": [{
                "type": "payment_initiation",
                "instructedAmount": {"currency": "EUR", "amount": "10.00"},
                "creditorName": "Merchant GmbH",
                "creditorAccount": {"iban": "DE89370400440532013000"},
                "debtorAccount": {"id": self.current().id}
            }]
        }))
    }
}

fn payment(amount: &str) -> Value {
    json!({
        "instructedAmount": {"currency": "EUR", "amount": amount},
        "creditorName": "Merchant GmbH",
        "creditorAccount": {"iban": "DE89 3704 0044 0532 0130 00"},
        "remittanceInformation": "Order 1"
    })
}

#[tokio::test]
async fn accounts_lists_only_the_granted_accounts() {
    let h = Harness::new().await;
    let (status, body) = h
        .get("/accounts", &h.account_token(&["read_balances"]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"accounts": [{
            "id": h.current().id,
            "name": h.current().name,
            "iban": h.current().iban,
            "currency": "EUR"
        }]})
    );
}

#[tokio::test]
async fn accounts_need_a_certificate_bound_token_with_scope_and_entry() {
    let h = Harness::new().await;
    let (status, headers, body) = h.send(h.request("GET", "/accounts", None, None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    // RFC 6750 §3.1: no error code in the challenge when no credentials came.
    let challenge = headers
        .get(header::WWW_AUTHENTICATE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(!challenge.contains("error="), "{challenge}");
    assert!(body["error_description"].is_string(), "{body}");

    // Bound to another certificate than the connection's (RFC 8705 §3).
    let stolen = h.fake.token(
        CUSTOMER,
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        json!({"scope": "accounts"}),
    );
    let (status, body) = h.get("/accounts", &stolen).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token"))
    );

    let no_scope = h.token(json!({"scope": "payments", "authorization_details": [{"type": "account_information", "actions": ["read_balances"], "accounts": [h.current().id]}]}));
    let (status, body) = h.get("/accounts", &no_scope).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    let no_entry = h.token(json!({"scope": "accounts"}));
    let (status, body) = h.get("/accounts", &no_entry).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
}

#[tokio::test]
async fn an_ungranted_account_is_forbidden_and_another_customers_is_not_found() {
    let h = Harness::new().await;
    let token = h.account_token(&["read_balances"]);
    let (status, body) = h
        .get(&format!("/accounts/{}", h.current().id), &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["iban"], h.current().iban.as_str());

    let (status, body) = h
        .get(&format!("/accounts/{}", h.savings().id), &token)
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    let theirs = DemoDirectory
        .accounts_of(Uuid::parse_str(OTHER_CUSTOMER).unwrap())
        .await
        .unwrap();
    // Even a token that names the other customer's account does not reach it.
    let greedy = h.token(json!({
        "scope": "accounts",
        "authorization_details": [{"type": "account_information", "actions": ["read_balances"], "accounts": [theirs[0].id]}]
    }));
    for (path, token) in [
        (format!("/accounts/{}", theirs[0].id), &token),
        (format!("/accounts/{}/balances", theirs[0].id), &greedy),
        ("/accounts/acc-nonexistent".to_owned(), &token),
    ] {
        let (status, body) = h.get(&path, token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found")),
            "{path}"
        );
    }
    let (status, body) = h.get("/accounts", &greedy).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"accounts": []})));

    // A client-credentials token's subject is no customer: no accounts at all.
    let client = h.fake.token("tpp-1", h.certificate.x5t_s256(), json!({
        "scope": "accounts",
        "authorization_details": [{"type": "account_information", "actions": ["read_balances"], "accounts": [h.current().id]}]
    }));
    let (status, body) = h.get("/accounts", &client).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"accounts": []})));
}

#[tokio::test]
async fn balances_and_transactions_need_their_actions() {
    let h = Harness::new().await;
    let balances = format!("/accounts/{}/balances", h.current().id);
    let transactions = format!("/accounts/{}/transactions", h.current().id);

    let token = h.account_token(&["read_balances"]);
    let (status, body) = h.get(&balances, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account_id"], h.current().id.as_str());
    assert_eq!(body["balances"][0]["type"], "available");
    assert_eq!(body["balances"][0]["currency"], "EUR");
    let (status, body) = h.get(&transactions, &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );

    let token = h.account_token(&["read_transactions"]);
    let (status, body) = h.get(&transactions, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["transactions"].as_array().unwrap().len(), 5);
    let (status, _) = h.get(&balances, &token).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_payment_consent_pays_once() {
    let h = Harness::new().await;
    let token = h.payment_token("grant-once");
    let (status, body) = h.pay(&token, payment("10.00")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["debtor_account"], h.current().id.as_str());
    assert_eq!(
        body["instructed_amount"],
        json!({"currency": "EUR", "amount": "10.00"})
    );
    assert_eq!(
        body["creditor"],
        json!({"name": "Merchant GmbH", "iban": "DE89370400440532013000"})
    );
    assert_eq!(body["grant_id"], "grant-once");
    assert!(Uuid::parse_str(body["payment_id"].as_str().unwrap()).is_ok());

    let (status, body) = h.pay(&token, payment("1.00")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("consent_used"))
    );
    // Another token of the same grant (a refreshed one) is the same consent.
    let (status, _) = h.pay(&h.payment_token("grant-once"), payment("1.00")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        (h.state.counters.accepted(), h.state.counters.refused()),
        (1, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_payments_under_one_consent_exactly_one_is_created() {
    let h = Arc::new(Harness::new().await);
    let token = h.payment_token("grant-race");
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let h = h.clone();
            let token = token.clone();
            tokio::spawn(async move { h.pay(&token, payment("10.00")).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::FORBIDDEN => assert_eq!(body["error"], "consent_used"),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn payments_beyond_the_consent_or_malformed_are_refused_in_json() {
    let h = Harness::new().await;
    let token = h.payment_token("grant-strict");
    let (status, body) = h.pay(&token, payment("10.01")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("payment_not_consented"))
    );
    let mut other_creditor = payment("5.00");
    other_creditor["creditorAccount"]["iban"] = "GB82WEST12345698765432".into();
    let (status, body) = h.pay(&token, other_creditor).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("payment_not_consented"))
    );

    let mut raw = h.request("POST", "/payments", Some(&token), None);
    *raw.body_mut() = Body::from("{not json");
    raw.headers_mut()
        .insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
    let (status, headers, body) = h.send(raw).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    assert!(body["error_description"].is_string());
    assert_eq!(headers.get(header::CACHE_CONTROL).unwrap(), "no-store");

    let (status, body) = h
        .pay(
            &token,
            json!({"instructedAmount": {"currency": "EUR", "amount": 5}}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    let mut big = h.request("POST", "/payments", Some(&token), None);
    *big.body_mut() = Body::from(vec![b' '; 70_000]);
    let (status, _, body) = h.send(big).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("invalid_request"))
    );

    // None of this used the consent.
    let (status, body) = h.pay(&token, payment("9.99")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // An accounts token cannot pay.
    let (status, body) = h
        .pay(&h.account_token(&["read_balances"]), payment("1.00"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("insufficient_scope"))
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_json() {
    let h = Harness::new().await;
    let token = h.account_token(&["read_balances"]);
    let (status, body) = h.get("/nowhere", &token).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _, body) = h
        .send(h.request("DELETE", "/accounts", Some(&token), None))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("invalid_request"))
    );
}

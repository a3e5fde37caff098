//! The revocation event feed (`POST /events`, RFC 8936 poll delivery) across replicas: two
//! server processes on one PostgreSQL database behind one public issuer (as in
//! `flow/replicas.rs`). A resource server long-polls one replica; an access token of its
//! audience is revoked at the other; the poll answers with the SET within a second, and the
//! acknowledgement made at either replica holds at both.

use std::time::{Duration, Instant};

use portcullis_testkit::app::App;
use portcullis_testkit::db::TestDatabase;
use reqwest::Method;
use serde_json::{Value, json};

use crate::oauth::{
    ClientKey, Credentials, Reply, assertion_claims, assertion_form, bootstrap,
    client_credentials_form, dpop_proof, post_form,
};
use crate::support::{Fixture, options};

/// The public issuer both replicas serve.
const ISSUER: &str = "https://as.bank.example";
const RESOURCE: &str = "https://api.bank.example/accounts";
/// Bounds waits that end as soon as the server answers; not delays.
const PATIENCE: Duration = Duration::from_secs(15);

/// A replica: requests go to its own port; URLs inside proofs and assertions are the issuer's.
struct Replica<'a> {
    app: &'a App,
}

impl Replica<'_> {
    fn address(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.app.listen.port())
    }

    async fn now(&self) -> i64 {
        let reply = Reply::send(
            self.app
                .client(None)
                .post(self.address("/__test/clock"))
                .json(&json!({"advance_secs": 0})),
        )
        .await;
        reply.body["now"].as_i64().unwrap()
    }

    /// A fresh `private_key_jwt` assertion of `client_id`.
    async fn assertion(&self, client_id: &str, key: &ClientKey) -> Vec<(String, String)> {
        let now = self.now().await;
        assertion_form(&key.sign(&assertion_claims(client_id, ISSUER, now)))
    }

    /// A DPoP-bound client-credentials token for `scope`.
    async fn token(
        &self,
        client_id: &str,
        key: &ClientKey,
        dpop: &ClientKey,
        scope: &str,
    ) -> String {
        let mut form = client_credentials_form(scope);
        form.extend(self.assertion(client_id, key).await);
        let now = self.now().await;
        let credentials = Credentials {
            dpop: Some(dpop_proof(
                dpop,
                "POST",
                &format!("{ISSUER}/token"),
                None,
                now,
            )),
            basic: None,
        };
        let reply = post_form(
            &self.app.client(None),
            &self.address("/token"),
            &form,
            &credentials,
        )
        .await;
        assert_eq!(reply.status, 200, "{scope} token: {}", reply.body);
        reply.body["access_token"].as_str().unwrap().to_owned()
    }

    /// A request to `path` with a DPoP-bound `token` and a fresh proof.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        dpop: &ClientKey,
    ) -> reqwest::RequestBuilder {
        let now = self.now().await;
        let htu = format!("{ISSUER}{}", path.split('?').next().unwrap());
        let proof = dpop_proof(dpop, method.as_str(), &htu, Some(token), now);
        self.app
            .client(None)
            .request(method, self.address(path))
            .header("Authorization", format!("DPoP {token}"))
            .header("DPoP", proof)
    }

    /// `POST /events` with `body`.
    async fn poll(&self, token: &str, dpop: &ClientKey, body: &Value) -> reqwest::RequestBuilder {
        self.call(Method::POST, "/events", token, dpop)
            .await
            .json(body)
    }

    /// How many long polls wait on this replica, from its metrics.
    async fn waiting_polls(&self) -> u64 {
        let metrics = self.app.metrics_listen.expect("metrics enabled");
        let text = reqwest::get(format!("http://{metrics}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("portcullis_event_feed_waiting_polls "))
            .map_or(0, |n| n.trim().parse().unwrap())
    }
}

/// The claims of a SET verified by `jsonwebtoken` against `jwks`: signature, `iss` and `aud`
/// (`recipient` among them). A SET has no `exp` (RFC 8417 §2.2).
fn verified_set(set: &str, jwks: &Value, recipient: &str) -> Value {
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = jsonwebtoken::decode_header(set).unwrap();
    assert_eq!(header.typ.as_deref(), Some("secevent+jwt"), "RFC 8417 §2.3");
    let jwk = keys.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[recipient]);
    jsonwebtoken::decode::<Value>(set, &key, &validation)
        .unwrap()
        .claims
}

/// The SETs of a poll answer, by `jti`.
fn sets(reply: &Reply) -> serde_json::Map<String, Value> {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    reply.body["sets"].as_object().unwrap().clone()
}

#[tokio::test]
async fn a_poller_on_one_replica_gets_a_revocation_made_on_the_other_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::postgres().await;
    let mut options = options(&dir, &db);
    options.env = vec![("PORTCULLIS_ISSUER".into(), ISSUER.into())];
    let first = App::spawn(options.clone()).await;
    let second = App::spawn(options).await;
    let f = Fixture {
        app: first,
        dir,
        db,
    };
    let (a, b) = (Replica { app: &f.app }, Replica { app: &second });

    // The operator registers, on replica A, the accounts API acting as a client that reads the
    // feed, and a TPP.
    let admin = bootstrap(&f).await;
    let admin_dpop = ClientKey::es256(None);
    let admin_token = a
        .token(
            &admin.client_id,
            &admin.key,
            &admin_dpop,
            "admin:clients admin:resources admin:audit",
        )
        .await;
    let create = |path: &'static str, body: Value| {
        let (a, token, dpop) = (&a, &admin_token, &admin_dpop);
        async move {
            let reply =
                Reply::send(a.call(Method::POST, path, token, dpop).await.json(&body)).await;
            assert_eq!(reply.status, 201, "{path}: {}", reply.body);
            reply.body
        }
    };
    let client = |name: &str, key: &ClientKey, scope: &str| {
        json!({
            "client_name": name,
            "grant_types": ["client_credentials"],
            "response_types": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": key.jwks(),
            "dpop_bound_access_tokens": true,
            "scope": scope,
        })
    };
    let rs_key = ClientKey::es256(Some("rs"));
    let rs = create(
        "/admin/v1/clients",
        client("Accounts API", &rs_key, "revocation_events"),
    )
    .await;
    let rs_id = rs["client_id"].as_str().unwrap().to_owned();
    create(
        "/admin/v1/resources",
        json!({"resource": RESOURCE, "name": "Accounts API", "scopes": ["accounts"], "client_id": rs_id}),
    )
    .await;
    let tpp_key = ClientKey::es256(Some("tpp"));
    let tpp = create("/admin/v1/clients", client("TPP", &tpp_key, "accounts")).await;
    let tpp_id = tpp["client_id"].as_str().unwrap().to_owned();
    let tpp_token = a
        .token(&tpp_id, &tpp_key, &ClientKey::es256(None), "accounts")
        .await;

    // The accounts API polls replica B: nothing yet.
    let rs_dpop = ClientKey::es256(None);
    let feed_token = b
        .token(&rs_id, &rs_key, &rs_dpop, "revocation_events")
        .await;
    let empty = Reply::send(
        b.poll(&feed_token, &rs_dpop, &json!({"returnImmediately": true}))
            .await,
    )
    .await;
    assert!(sets(&empty).is_empty());

    // A long poll waits on B…
    let long_poll = b.poll(&feed_token, &rs_dpop, &json!({})).await;
    let pending = tokio::spawn(Reply::send(long_poll));
    tokio::time::timeout(PATIENCE, async {
        while b.waiting_polls().await == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the long poll waits on B");

    // …the TPP revokes its token at A (RFC 7009)…
    let mut form = vec![("token".to_owned(), tpp_token.clone())];
    form.extend(a.assertion(&tpp_id, &tpp_key).await);
    let revoked = post_form(
        &a.app.client(None),
        &a.address("/revoke"),
        &form,
        &Credentials::default(),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    let revoked_at = Instant::now();

    // …and the poll on B answers with the SET within a second.
    let answer = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("the long poll answers")
        .unwrap();
    let latency = revoked_at.elapsed();
    assert!(
        latency < Duration::from_secs(1),
        "the event reached the other replica's poller after {latency:?}"
    );
    let delivered = sets(&answer);
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let (jti, set) = delivered.iter().next().unwrap();
    let set = set.as_str().unwrap();
    let jwks = Reply::send(b.app.client(None).get(b.address("/jwks")))
        .await
        .body;
    let claims = verified_set(set, &jwks, &rs_id);
    assert_eq!(&claims["jti"], jti);
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], json!([rs_id]));
    let event = &claims["events"]["urn:portcullis:secevent:token-revoked"];
    assert_eq!(event["jti"], crate::oauth::claims_of(&tpp_token)["jti"]);
    assert_eq!(event["client_id"], tpp_id);

    // Acknowledged at A, it is gone at B too; the operator sees it delivered.
    let acked = Reply::send(
        a.poll(
            &feed_token,
            &rs_dpop,
            &json!({"returnImmediately": true, "ack": [jti]}),
        )
        .await,
    )
    .await;
    assert!(sets(&acked).is_empty());
    let after = Reply::send(
        b.poll(&feed_token, &rs_dpop, &json!({"returnImmediately": true}))
            .await,
    )
    .await;
    assert!(sets(&after).is_empty());
    let listed = Reply::send(
        a.call(
            Method::GET,
            "/admin/v1/revocation-events",
            &admin_token,
            &admin_dpop,
        )
        .await,
    )
    .await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let item = &listed.body["items"][0];
    assert_eq!(
        (&item["jti"], &item["kind"], &item["pending"]),
        (&json!(jti), &json!("token-revoked"), &json!(0))
    );
    assert_eq!(item["token_jti"], event["jti"]);
}

//! Single use across replicas: two server processes on one PostgreSQL database, behind one
//! public issuer as a load balancer would put them, each accepting a DPoP proof or a client
//! assertion once between them.
//!
//! Both replicas are configured with the same `issuer` (and share the data directory, so the
//! same KEK and development TLS CA). The server derives a DPoP proof's expected `htu` and a
//! client assertion's audience from its configured issuer, not from the port a request arrived
//! on, so one proof is valid at both replicas' token endpoints and the replay store shared
//! through the database is what stops the second use. The requests themselves go to each
//! replica's own port (`https://localhost:<port>`), since the issuer's host is not resolvable.

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

/// A replica: requests go to its own port; URLs inside proofs and assertions are the issuer's.
struct Replica<'a> {
    app: &'a App,
}

impl Replica<'_> {
    /// Where a request for `path` is sent.
    fn address(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.app.listen.port())
    }

    /// The public URL of `path`: a proof's `htu`.
    fn public(path: &str) -> String {
        format!("{ISSUER}{path}")
    }

    /// The replica's clock (Unix seconds), through the test-only control.
    async fn now(&self) -> i64 {
        let response = self
            .app
            .client(None)
            .post(self.address("/__test/clock"))
            .json(&json!({"advance_secs": 0}))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success());
        let body: Value = response.json().await.unwrap();
        body["now"].as_i64().unwrap()
    }

    /// A client-credentials request for `scope` at this replica with `assertion` and DPoP
    /// `proof`.
    async fn token(&self, scope: &str, assertion: &str, proof: &str) -> Reply {
        let mut form = client_credentials_form(scope);
        form.extend(assertion_form(assertion));
        let credentials = Credentials {
            dpop: Some(proof.to_owned()),
            basic: None,
        };
        post_form(
            &self.app.client(None),
            &self.address("/token"),
            &form,
            &credentials,
        )
        .await
    }

    /// A client-credentials request for `scope` with a fresh assertion and a fresh proof by
    /// `dpop`.
    async fn fresh_token(
        &self,
        scope: &str,
        client_id: &str,
        key: &ClientKey,
        dpop: &ClientKey,
    ) -> Reply {
        let now = self.now().await;
        let assertion = key.sign(&assertion_claims(client_id, ISSUER, now));
        let proof = dpop_proof(dpop, "POST", &Self::public("/token"), None, now);
        self.token(scope, &assertion, &proof).await
    }

    /// An admin API call with a DPoP-bound admin `token`.
    async fn admin(&self, token: &str, dpop: &ClientKey, path: &str, body: &Value) -> Reply {
        let now = self.now().await;
        let proof = dpop_proof(dpop, "POST", &Self::public(path), Some(token), now);
        Reply::send(
            self.app
                .client(None)
                .request(Method::POST, self.address(path))
                .header("Authorization", format!("DPoP {token}"))
                .header("DPoP", proof)
                .json(body),
        )
        .await
    }
}

/// Of two answers to the same credential, exactly one is a token; the other is refused with
/// `status` and `error`, as used before.
fn exactly_one_succeeds(replies: [&Reply; 2], status: u16, error: &str) {
    let issued = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(
        issued,
        1,
        "exactly one replica accepts: {:?}",
        replies.map(|r| (r.status, &r.body))
    );
    let refused = replies.into_iter().find(|r| r.status != 200).unwrap();
    refused.assert_error(status, error);
    assert!(
        refused.body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{}",
        refused.body
    );
}

#[tokio::test]
async fn two_replicas_on_one_postgres_accept_a_dpop_proof_and_a_client_assertion_once_between_them()
{
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::postgres().await;
    let mut options = options(&dir, &db);
    options.env = vec![("PORTCULLIS_ISSUER".into(), ISSUER.into())];
    let first = App::spawn(options.clone()).await;
    let second = App::spawn(options).await;
    assert_eq!(first.issuer, ISSUER);
    assert_eq!(second.issuer, ISSUER);
    let f = Fixture {
        app: first,
        dir,
        db,
    };
    let (a, b) = (Replica { app: &f.app }, Replica { app: &second });

    // An admin token from the first replica; the resource and the client registered there.
    let admin = bootstrap(&f).await;
    let admin_dpop = ClientKey::es256(None);
    let reply = a
        .fresh_token(
            "admin:clients admin:resources",
            &admin.client_id,
            &admin.key,
            &admin_dpop,
        )
        .await;
    assert_eq!(reply.status, 200, "admin token: {}", reply.body);
    let admin_token = reply.body["access_token"].as_str().unwrap().to_owned();
    let body = json!({"resource": RESOURCE, "name": "Accounts API", "scopes": ["accounts"]});
    let created = a
        .admin(&admin_token, &admin_dpop, "/admin/v1/resources", &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let key = ClientKey::es256(Some("tpp"));
    let body = json!({
        "client_name": "TPP on two replicas",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "private_key_jwt",
        "jwks": key.jwks(),
        "dpop_bound_access_tokens": true,
        "scope": "accounts",
    });
    let created = a
        .admin(&admin_token, &admin_dpop, "/admin/v1/clients", &body)
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let client_id = created.body["client_id"].as_str().unwrap().to_owned();

    // The client registered on one replica gets tokens from the other, for the shared issuer.
    let dpop = ClientKey::es256(None);
    let reply = b.fresh_token("accounts", &client_id, &key, &dpop).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let claims = crate::oauth::claims_of(reply.body["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["cnf"], json!({"jkt": dpop.thumbprint()}));

    // One DPoP proof (one jti), two fresh assertions, sent to both replicas at once.
    let now = a.now().await;
    let proof = dpop_proof(&dpop, "POST", &Replica::public("/token"), None, now);
    let first_assertion = key.sign(&assertion_claims(&client_id, ISSUER, now));
    let second_assertion = key.sign(&assertion_claims(&client_id, ISSUER, now));
    let (at_a, at_b) = tokio::join!(
        a.token("accounts", &first_assertion, &proof),
        b.token("accounts", &second_assertion, &proof),
    );
    exactly_one_succeeds([&at_a, &at_b], 400, "invalid_dpop_proof");

    // One client assertion (one jti), two fresh proofs, sent to both replicas at once.
    let now = b.now().await;
    let assertion = key.sign(&assertion_claims(&client_id, ISSUER, now));
    let first_proof = dpop_proof(&dpop, "POST", &Replica::public("/token"), None, now);
    let second_proof = dpop_proof(&dpop, "POST", &Replica::public("/token"), None, now);
    let (at_a, at_b) = tokio::join!(
        a.token("accounts", &assertion, &first_proof),
        b.token("accounts", &assertion, &second_proof),
    );
    exactly_one_succeeds([&at_a, &at_b], 401, "invalid_client");
}

//! The revocation event feed (`POST /events`, RFC 8936 poll delivery), in process: resource
//! servers' clients with `revocation_events` tokens poll, acknowledge, report errors and long-poll
//! for the SETs of revoked grants (RFC 8417, verified here with `jsonwebtoken`), only those of
//! their own audience; everyone else is refused. And the operator's view of the feed,
//! `GET /admin/v1/revocation-events`.

use std::time::Duration;

use portcullis_core::client::ClientId;
use portcullis_core::client::settings::ClientSettings;
use portcullis_core::store::Grant;
use serde_json::Map;

use super::*;
use crate::revocation::{GRANT_REVOKED, Reason, SET_TYP, revoke_grant};

const EVENTS_URL: &str = "https://as.example/events";
const PAYMENTS: &str = "https://api.bank.example/payments";
/// Bounds a wait that ends as soon as the server answers; not a delay.
const PATIENCE: Duration = Duration::from_secs(10);

/// A client holding a DPoP-bound access token.
struct Holder {
    id: String,
    token: String,
    key: SigningKey,
}

/// A client that registered `scope` (client credentials, `private_key_jwt`).
async fn client_with_scope(h: &Harness, scope: &str, settings: ClientSettings) -> Tpp {
    let key = SigningKey::generate(SigningAlg::Es256, 2048).unwrap();
    let mut metadata = machine_client("private_key_jwt");
    metadata["scope"] = json!(scope);
    metadata["jwks"] = jwks_of(&[public_jwk(&key)]);
    let registered = register(h, metadata, ClientProfile::Fapi2, settings).await;
    Tpp {
        id: registered.client.client_id.to_string(),
        key,
    }
}

/// Registers `resource` (serving `scope`) acting as `client`, and drops this replica's snapshot
/// of the resource servers (the test clock does not move it on).
async fn resource_server(h: &Harness, resource: &str, scope: &str, client: Option<&str>) {
    let now = h.clock.now();
    h.state
        .store
        .resource_servers()
        .add(&ResourceServer {
            resource: resource.into(),
            metadata: ResourceMetadata {
                scopes: vec![scope.into()],
                ..ResourceMetadata::default()
            },
            client_id: client.map(|c| ClientId::parse(c).unwrap()),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    h.state.resources.invalidate();
}

/// A DPoP-bound client-credentials token of `tpp` for `scope`.
async fn token_of(h: &Harness, tpp: &Tpp, scope: &str) -> Holder {
    let key = dpop_key();
    let answer = send(
        h,
        token_request(
            &with_assertion(&tpp.assertion(h), &[("scope", scope)]),
            &[("dpop", &dpop_proof(h, &key))],
        ),
    )
    .await;
    Holder {
        id: tpp.id.clone(),
        token: answer.issued("DPoP", scope),
        key,
    }
}

/// The client of a resource server for `resource`, with its feed token.
async fn poller(h: &Harness, resource: &str, scope: &str) -> Holder {
    let client = client_with_scope(h, "revocation_events", ClientSettings::default()).await;
    resource_server(h, resource, scope, Some(&client.id)).await;
    let holder = token_of(h, &client, "revocation_events").await;
    let claims = verified_claims(h, &holder.token, EVENTS_URL).await;
    assert_eq!(claims["aud"], EVENTS_URL);
    holder
}

impl Holder {
    /// A request to `uri` with the token and a DPoP proof covering it (RFC 9449 §4.2 `ath`).
    fn request(
        &self,
        h: &Harness,
        method: &str,
        uri: &str,
        body: Option<(&str, String)>,
    ) -> Request<Body> {
        let path = uri.split('?').next().unwrap();
        let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            self.token.as_bytes(),
        ));
        let header = json!({ "typ": "dpop+jwt", "jwk": public_jwk(&self.key) });
        let claims = json!({
            "jti": unique("dpop"), "htm": method, "htu": format!("{ISSUER}{path}"),
            "iat": now(h), "ath": ath,
        });
        let proof = self
            .key
            .sign_jwt_with_header(header.as_object().unwrap(), claims.as_object().unwrap())
            .unwrap();
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("DPoP {}", self.token))
            .header("dpop", proof);
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(header::CONTENT_TYPE, content_type);
                Body::from(body)
            }
            None => Body::empty(),
        };
        builder.body(body).unwrap()
    }

    fn poll_request(&self, h: &Harness, body: &Value) -> Request<Body> {
        self.request(
            h,
            "POST",
            "/events",
            Some(("application/json", body.to_string())),
        )
    }

    async fn poll(&self, h: &Harness, body: Value) -> Answer {
        send(h, self.poll_request(h, &body)).await
    }
}

impl Answer {
    /// Asserts an RFC 8936 §2.4 poll response and returns its SETs by `jti`, and `moreAvailable`.
    #[track_caller]
    fn sets(&self) -> (Map<String, Value>, bool) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
        (
            self.body["sets"].as_object().unwrap().clone(),
            self.body["moreAvailable"].as_bool().unwrap(),
        )
    }

    /// Asserts an RFC 8936 §2.4.4 error: `err` and a `description`.
    #[track_caller]
    fn poll_refused(&self, status: StatusCode, err: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["err"], err, "{}", self.body);
        assert!(
            self.body["description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}",
            self.body
        );
        assert_eq!(self.headers[header::CACHE_CONTROL], "no-store");
    }
}

/// A consent of a new customer to `client` for `resources`, as the store keeps it.
async fn grant(h: &Harness, client: &str, resources: &[&str]) -> Grant {
    let now = h.clock.now();
    let grant = Grant {
        grant_id: unique("grant"),
        client_id: ClientId::parse(client).unwrap(),
        subject: uuid::Uuid::new_v4(),
        content: json!({ "scopes": ["accounts"], "resources": resources })
            .as_object()
            .unwrap()
            .clone(),
        created_at: now,
        updated_at: now,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    h.state.store.grants().add(&grant).await.unwrap();
    grant
}

async fn revoke(h: &Harness, grant: &Grant) {
    assert!(
        revoke_grant(&h.state, grant, &Reason::Customer)
            .await
            .unwrap()
    );
}

/// The claims of a SET whose signature `jsonwebtoken` verified against `/jwks`, with its `typ`
/// (RFC 8417 §2.3), `iss` and `aud` (`recipient` among them) checked. A SET has no `exp`.
async fn verified_set(h: &Harness, set: &str, recipient: &str) -> Value {
    let (_, _, jwks) = crate::routes::tests::get(&h.router, "/jwks").await;
    let keys: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
    let header = jsonwebtoken::decode_header(set).unwrap();
    assert_eq!(header.typ.as_deref(), Some(SET_TYP), "RFC 8417 §2.3");
    let jwk = keys.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["iss", "aud"]);
    validation.set_audience(&[recipient]);
    validation.set_issuer(&[ISSUER]);
    jsonwebtoken::decode::<Value>(set, &key, &validation)
        .unwrap()
        .claims
}

#[tokio::test]
async fn rfc_8936_a_resource_server_polls_and_acknowledges_the_sets_of_its_revoked_grants() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let payments = poller(&h, PAYMENTS, "payments").await;
    let tpp = private_key_jwt_client(&h).await;

    let (sets, more) = accounts
        .poll(&h, json!({ "returnImmediately": true }))
        .await
        .sets();
    assert!(sets.is_empty() && !more);

    let consent = grant(&h, &tpp.id, &[ACCOUNTS]).await;
    revoke(&h, &consent).await;
    let (sets, more) = accounts
        .poll(&h, json!({ "returnImmediately": true }))
        .await
        .sets();
    assert!(!more);
    assert_eq!(sets.len(), 1, "{sets:?}");
    let (jti, set) = sets.iter().next().unwrap();
    let claims = verified_set(&h, set.as_str().unwrap(), &accounts.id).await;
    assert_eq!(&claims["jti"], jti);
    assert_eq!(claims["aud"], json!([accounts.id]));
    assert!(claims["iat"].is_i64() && claims["toe"].is_i64());
    let event = &claims["events"][GRANT_REVOKED];
    assert_eq!(event["grant_id"], consent.grant_id);
    assert_eq!(event["sub"], consent.subject.to_string());
    assert_eq!(event["client_id"], tpp.id);
    assert_eq!(
        event["subject"],
        json!({ "format": "opaque", "id": consent.grant_id })
    );

    // Not the payments API's: its resource is not in the grant's audience.
    let (sets, _) = payments
        .poll(&h, json!({ "returnImmediately": true }))
        .await
        .sets();
    assert!(sets.is_empty(), "{sets:?}");

    // Until acknowledged, the SET comes again; acknowledged, it is gone.
    let (again, _) = accounts
        .poll(&h, json!({ "returnImmediately": true }))
        .await
        .sets();
    assert_eq!(again.keys().collect::<Vec<_>>(), vec![jti]);
    let (sets, more) = accounts
        .poll(&h, json!({ "returnImmediately": true, "ack": [jti] }))
        .await
        .sets();
    assert!(sets.is_empty() && !more, "{sets:?}");
    let (sets, _) = accounts
        .poll(&h, json!({ "returnImmediately": true }))
        .await
        .sets();
    assert!(sets.is_empty());
}

#[tokio::test]
async fn rfc_8936_a_long_poll_answers_as_soon_as_a_grant_is_revoked() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let tpp = private_key_jwt_client(&h).await;
    let consent = grant(&h, &tpp.id, &[ACCOUNTS]).await;

    // The poll finds nothing and waits (events.long_poll_secs is 20 s)…
    let mut waiting = h.state.feed.waiting_changes();
    let request = accounts.poll_request(&h, &json!({ "maxEvents": 5 }));
    let router = h.router.clone();
    let pending = tokio::spawn(async move { router.oneshot(request).await.unwrap() });
    waiting.wait_for(|n| *n == 1).await.unwrap();

    // …until the revocation wakes it.
    revoke(&h, &consent).await;
    let response = tokio::time::timeout(PATIENCE, pending)
        .await
        .expect("the long poll answers once the event is there")
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let answer = Answer {
        status,
        headers,
        body: serde_json::from_slice(&bytes).unwrap(),
    };
    let (sets, _) = answer.sets();
    assert_eq!(sets.len(), 1);
    let claims = verified_set(
        &h,
        sets.values().next().unwrap().as_str().unwrap(),
        &accounts.id,
    )
    .await;
    assert_eq!(
        claims["events"][GRANT_REVOKED]["grant_id"],
        consent.grant_id
    );
    assert_eq!(h.state.feed.waiting(), 0);
}

#[tokio::test]
async fn a_waiting_long_poll_holds_no_auth_failure_reservation() {
    // A budget of one failure: a request in progress reserves it until its caller is known.
    let h = crate::routes::tests::harness_with(|c| {
        c.rate_limits.enabled = true;
        c.rate_limits.ip.auth_failures = crate::ratelimit::config::Limit {
            quota: 1,
            window_secs: 300,
        };
    })
    .await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let mut waiting = h.state.feed.waiting_changes();
    let request = accounts.poll_request(&h, &json!({ "maxEvents": 5 }));
    let router = h.router.clone();
    let pending = tokio::spawn(async move { router.oneshot(request).await.unwrap() });
    waiting.wait_for(|n| *n == 1).await.unwrap();
    // While it waits, the same address polls again: its budget is whole.
    let answer = accounts
        .poll(&h, json!({ "maxEvents": 5, "returnImmediately": true }))
        .await;
    answer.sets();
    assert!(
        answer.headers["ratelimit"]
            .to_str()
            .unwrap()
            .contains("\"auth-failures\";r=1"),
        "{:?}",
        answer.headers["ratelimit"]
    );
    pending.abort();
}

#[tokio::test]
async fn a_long_poll_that_finds_nothing_answers_empty_at_its_deadline() {
    let h = crate::routes::tests::harness_with(|config| config.events.long_poll_secs = 0).await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let (sets, more) = accounts.poll(&h, json!({})).await.sets();
    assert!(sets.is_empty() && !more);
    assert_eq!(h.state.feed.waiting(), 0);
}

#[tokio::test]
async fn rfc_8936_max_events_is_honoured_and_more_available_says_what_is_left() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let tpp = private_key_jwt_client(&h).await;
    for _ in 0..3 {
        revoke(&h, &grant(&h, &tpp.id, &[ACCOUNTS]).await).await;
    }
    let (first, more) = accounts.poll(&h, json!({ "maxEvents": 2 })).await.sets();
    assert_eq!((first.len(), more), (2, true));
    // maxEvents 0 only acknowledges (RFC 8936 §2.4): at once, with nothing.
    let acked: Vec<&String> = first.keys().collect();
    let (sets, more) = accounts
        .poll(&h, json!({ "maxEvents": 0, "ack": acked }))
        .await
        .sets();
    assert_eq!((sets.len(), more), (0, true));
    let (rest, more) = accounts.poll(&h, json!({ "maxEvents": 2 })).await.sets();
    assert_eq!((rest.len(), more), (1, false));
    assert!(rest.keys().all(|jti| !first.contains_key(jti)));
}

#[tokio::test]
async fn rfc_8936_2_4_4_a_set_reported_in_error_counts_as_acknowledged() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let tpp = private_key_jwt_client(&h).await;
    revoke(&h, &grant(&h, &tpp.id, &[ACCOUNTS]).await).await;
    let (sets, _) = accounts.poll(&h, json!({})).await.sets();
    let jti = sets.keys().next().unwrap().clone();
    let report = json!({
        "returnImmediately": true,
        "setErrs": { jti: { "err": "invalid_key", "description": "no key for that kid" } },
    });
    let (sets, more) = accounts.poll(&h, report).await.sets();
    assert!(sets.is_empty() && !more, "{sets:?}");
}

#[tokio::test]
async fn the_event_feed_refuses_whoever_is_not_a_resource_server_with_a_feed_token() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;

    // No token: 401 with a challenge (RFC 6750 §3.1).
    let anonymous = send(
        &h,
        Request::post("/events")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(anonymous.headers.contains_key(header::WWW_AUTHENTICATE));

    // A token for another audience (the accounts API): invalid_token.
    let tpp = private_key_jwt_client(&h).await;
    let api_token = token_of(&h, &tpp, "accounts").await;
    api_token.poll(&h, json!({})).await.refused(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "event feed",
    );

    // A token for the feed without the scope (made by hand: /token never issues one):
    // insufficient_scope.
    let now = now(&h);
    let claims = json!({
        "iss": ISSUER, "aud": EVENTS_URL, "iat": now, "exp": now + 60, "jti": unique("at"),
        "client_id": accounts.id, "sub": accounts.id, "scope": "accounts",
        "cnf": { "jkt": thumbprint(&accounts.key) },
    });
    let signer = h
        .state
        .keys
        .signer(h.state.config.access_token_alg())
        .await
        .unwrap();
    let unscoped = Holder {
        id: accounts.id.clone(),
        token: signer
            .sign_jwt("at+jwt", claims.as_object().unwrap())
            .unwrap(),
        key: accounts.key,
    };
    let refused = unscoped.poll(&h, json!({})).await;
    refused.refused(
        StatusCode::FORBIDDEN,
        "insufficient_scope",
        "revocation_events",
    );
    assert!(
        refused.headers[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("DPoP error=\"insufficient_scope\"")
    );

    // A feed token of a client that no resource server acts as: access_denied.
    let stranger = client_with_scope(&h, "revocation_events", ClientSettings::default()).await;
    token_of(&h, &stranger, "revocation_events")
        .await
        .poll(&h, json!({}))
        .await
        .poll_refused(StatusCode::FORBIDDEN, "access_denied");
}

#[tokio::test]
async fn rfc_8936_2_4_4_malformed_poll_requests_are_invalid_request() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let bad: [(&str, &str); 11] = [
        ("text/plain", "{}"),
        ("application/x-www-form-urlencoded", "maxEvents=1"),
        ("application/json", ""),
        ("application/json", "{\"maxEvents\":"),
        ("application/json", "[]"),
        ("application/json", "{\"maxEvents\": 101}"),
        ("application/json", "{\"maxEvents\": -1}"),
        ("application/json", "{\"maxEvents\": \"5\"}"),
        ("application/json", "{\"returnImmediately\": \"yes\"}"),
        ("application/json", "{\"ack\": \"one\"}"),
        ("application/json", "{\"setErrs\": {\"jti\": \"broken\"}}"),
    ];
    for (content_type, body) in bad {
        let answer = send(
            &h,
            accounts.request(&h, "POST", "/events", Some((content_type, body.to_owned()))),
        )
        .await;
        answer.poll_refused(StatusCode::BAD_REQUEST, "invalid_request");
    }
    // The media type may carry parameters, and members may be null.
    let answer = send(
        &h,
        accounts.request(
            &h,
            "POST",
            "/events",
            Some((
                "application/json; charset=utf-8",
                r#"{"returnImmediately": true, "maxEvents": null, "ack": []}"#.to_owned(),
            )),
        ),
    )
    .await;
    assert!(answer.sets().0.is_empty());
}

#[tokio::test]
async fn the_operator_lists_the_revocation_feed_with_admin_audit() {
    let h = harness().await;
    let accounts = poller(&h, ACCOUNTS, "accounts").await;
    let tpp = private_key_jwt_client(&h).await;
    let consent = grant(&h, &tpp.id, &[ACCOUNTS]).await;
    revoke(&h, &consent).await;
    revoke(&h, &grant(&h, &tpp.id, &[ACCOUNTS]).await).await;

    let settings = ClientSettings {
        admin_scopes: vec!["admin:audit".into(), "admin:clients".into()],
        ..ClientSettings::default()
    };
    let operator = client_with_scope(&h, "accounts", settings).await;
    let auditor = token_of(&h, &operator, "admin:audit").await;
    let listed = send(
        &h,
        auditor.request(&h, "GET", "/admin/v1/revocation-events?limit=1", None),
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let item = &listed.body["items"][0];
    assert_eq!(item["kind"], "grant-revoked");
    assert_eq!(item["grant_id"], consent.grant_id);
    assert_eq!(item["token_jti"], Value::Null);
    assert_eq!(item["pending"], 1);
    assert!(item["created_at"].is_i64());
    let claims = verified_set(&h, item["set"].as_str().unwrap(), &accounts.id).await;
    assert_eq!(claims["jti"], item["jti"]);
    let next = listed.body["next"].as_str().unwrap().to_owned();
    assert_eq!(next, item["seq"].to_string());

    // The next page, after the resource server acknowledged the first event.
    accounts
        .poll(&h, json!({ "ack": [item["jti"]], "maxEvents": 0 }))
        .await
        .sets();
    let page = send(
        &h,
        auditor.request(
            &h,
            "GET",
            &format!("/admin/v1/revocation-events?after={next}"),
            None,
        ),
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_ne!(items[0]["grant_id"], consent.grant_id);
    assert!(page.body.get("next").is_none());
    let first = send(
        &h,
        auditor.request(&h, "GET", "/admin/v1/revocation-events", None),
    )
    .await;
    assert_eq!(first.body["items"][0]["pending"], 0);

    // A bad cursor is the caller's error; another admin scope is not enough.
    send(
        &h,
        auditor.request(&h, "GET", "/admin/v1/revocation-events?after=x", None),
    )
    .await
    .refused(
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "sequence number",
    );
    let clerk = token_of(&h, &operator, "admin:clients").await;
    send(
        &h,
        clerk.request(&h, "GET", "/admin/v1/revocation-events", None),
    )
    .await
    .refused(StatusCode::FORBIDDEN, "insufficient_scope", "admin:audit");
}

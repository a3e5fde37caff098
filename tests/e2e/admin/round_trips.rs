//! Full round trips through the admin API routes the other modules do not exercise: resource
//! servers (create, read, page, replace, delete), clients (read, replace, delete), users (claims,
//! password, TOTP removal) and signing keys (rotation). Each change is checked by its effect — on
//! a later `GET`, at `/token` or at `/jwks` — and by its entry in the security-event trail, which
//! never holds a secret.

use portcullis_testkit::app::App;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Bank, RESOURCE, m2m, security_events};
use crate::oauth::{
    ADMIN_SCOPE, AdminSession, ClientKey, Credentials, Reply, assertion_claims, assertion_form,
    claims_of, client_credentials_form, dpop_proof, post_form, random_id, server_now,
};
use crate::support::{kids, sign, verify_independently};

/// Percent-encodes everything but RFC 3986 unreserved characters, for a resource identifier in a
/// path segment or a query value.
fn encode(text: &str) -> String {
    use std::fmt::Write as _;
    text.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
        out
    })
}

/// The admin path of one resource server.
fn resource_path(resource: &str) -> String {
    format!("/admin/v1/resources/{}", encode(resource))
}

/// A FAPI 2.0 `private_key_jwt` client with DPoP-bound tokens.
struct Tpp {
    client_id: String,
    key: ClientKey,
}

impl Tpp {
    async fn register(bank: &Bank, scope: &str) -> Tpp {
        let key = ClientKey::es256(Some("tpp"));
        let client_id = bank
            .add_client_id(&m2m(
                "private_key_jwt",
                &json!({"jwks": key.jwks(), "dpop_bound_access_tokens": true, "scope": scope}),
            ))
            .await;
        Tpp { client_id, key }
    }

    /// A client-credentials request for `scope`, naming `resource` if given.
    async fn token(&self, app: &App, scope: &str, resource: Option<&str>) -> Reply {
        let now = server_now(app).await;
        let token_url = app.url("/token");
        let mut form = client_credentials_form(scope);
        if let Some(resource) = resource {
            form.push(("resource".into(), resource.into()));
        }
        form.extend(assertion_form(&self.key.sign(&assertion_claims(
            &self.client_id,
            &app.issuer,
            now,
        ))));
        let credentials = Credentials {
            dpop: Some(dpop_proof(
                &ClientKey::es256(None),
                "POST",
                &token_url,
                None,
                now,
            )),
            basic: None,
        };
        post_form(&app.client(None), &token_url, &form, &credentials).await
    }
}

/// A client-credentials request for `scope` with HTTP Basic client authentication and DPoP.
async fn basic_token(app: &App, client_id: &str, secret: &str, scope: &str) -> Reply {
    let token_url = app.url("/token");
    let now = server_now(app).await;
    let credentials = Credentials {
        dpop: Some(dpop_proof(
            &ClientKey::es256(None),
            "POST",
            &token_url,
            None,
            now,
        )),
        basic: Some((client_id.to_owned(), secret.to_owned())),
    };
    post_form(
        &app.client(None),
        &token_url,
        &client_credentials_form(scope),
        &credentials,
    )
    .await
}

/// Asserts a successful token response whose token is for `scope` at `audience`.
fn assert_token_for(reply: &Reply, scope: &str, audience: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["scope"], scope, "{}", reply.body);
    let claims = claims_of(reply.body["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], scope, "{claims}");
    assert_eq!(claims["aud"], audience, "{claims}");
}

/// Asserts an admin API error: the status and the code, with a description.
fn assert_admin_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        (reply.status.as_u16(), reply.body["error"].as_str()),
        (status, Some(code)),
        "{}",
        reply.body
    );
    assert!(
        reply.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        reply.body
    );
}

/// Asserts that a body the route cannot read is refused as the caller's error, in the admin API's
/// own format: 400 `invalid_request` with a JSON error body (never the framework's plain 415/422).
fn assert_refused_body(reply: &Reply) {
    assert_admin_error(reply, 400, "invalid_request");
}

/// The `(action, subject, details)` of every admin change in the trail, after checking that
/// every actor is the bank's admin client or the bootstrap CLI. What the token endpoint records
/// (`token.issued`, `client_auth.failure`) is left out: clients are its actors.
async fn trail(bank: &Bank) -> Vec<(String, Option<String>, Value)> {
    let admin = format!("admin-client:{}", bank.admin.client_id);
    security_events(bank)
        .await
        .into_iter()
        .filter(|(_, action, _, _)| action != "token.issued" && action != "client_auth.failure")
        .map(|(actor, action, subject, details)| {
            assert!(
                actor == admin || actor == "cli:admin-bootstrap",
                "{action} by {actor}"
            );
            (action, subject, serde_json::from_str(&details).unwrap())
        })
        .collect()
}

/// The details of every event of `action` about `subject`, oldest first.
fn details_of(
    events: &[(String, Option<String>, Value)],
    action: &str,
    subject: Option<&str>,
) -> Vec<Value> {
    events
        .iter()
        .filter(|(a, s, _)| a == action && s.as_deref() == subject)
        .map(|(_, _, d)| d.clone())
        .collect()
}

/// Asserts that no event's details contain any of `secrets`.
fn assert_no_secret(events: &[(String, Option<String>, Value)], secrets: &[&str]) {
    for (action, _, details) in events {
        let text = details.to_string();
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "{action} records a secret: {details}"
            );
        }
    }
}

#[tokio::test]
async fn admin_resource_servers_are_read_paged_replaced_and_deleted_with_effect_at_the_token_endpoint()
 {
    let bank = Bank::start().await;
    let app = bank.app();
    let s = &bank.session;
    // The query and its `=` must be percent-encoded in the path; the identifier keeps them.
    let payments = "https://api.bank.example/payments?version=2";
    let statements = "https://api.bank.example/statements";

    let accounts = bank.add_resource().await;
    assert_eq!(accounts["resource"], RESOURCE);
    assert_eq!(accounts["name"], "Accounts API");
    assert_eq!(accounts["scopes"], json!(["accounts"]));
    assert_eq!(accounts["token_format"], "jwt");
    assert_eq!(accounts["authorization_details_types"], json!([]));
    assert!(accounts["client_id"].is_null(), "{accounts}");
    assert_eq!(accounts["created_at"], accounts["updated_at"]);
    for (resource, scope) in [(statements, "statements"), (payments, "payments")] {
        let created = s
            .create(
                app,
                "/admin/v1/resources",
                &json!({"resource": resource, "scopes": [scope]}),
            )
            .await;
        assert_eq!(created["resource"], resource);
        assert!(created.get("name").is_none(), "{created}");
    }

    // GET one, by the percent-encoded identifier.
    let read = s
        .call(app, Method::GET, &resource_path(RESOURCE), None)
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body, accounts);
    let read = s
        .call(app, Method::GET, &resource_path(payments), None)
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["resource"], payments);
    assert_eq!(read.body["scopes"], json!(["payments"]));

    // Paging: identifier order, `next` names the last item of a full page, `after` goes on.
    let page = s
        .call(app, Method::GET, "/admin/v1/resources?limit=2", None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let identifiers = |page: &Reply| -> Vec<String> {
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["resource"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(identifiers(&page), [RESOURCE, payments]);
    assert_eq!(page.body["next"], payments);
    let page = s
        .call(
            app,
            Method::GET,
            &format!("/admin/v1/resources?limit=2&after={}", encode(payments)),
            None,
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(identifiers(&page), [statements]);
    assert!(page.body.get("next").is_none(), "last page: {}", page.body);
    let all = s.call(app, Method::GET, "/admin/v1/resources", None).await;
    assert_eq!(identifiers(&all), [RESOURCE, payments, statements]);
    assert_eq!(all.body["items"][0], accounts);

    // Bad identifiers are refused with a code, and nothing is registered.
    for bad in [
        "http://api.bank.example/accounts",
        "https://api.bank.example/accounts#balances",
        "https://user@api.bank.example/accounts",
        "urn:bank:accounts",
    ] {
        let reply = s
            .call(
                app,
                Method::POST,
                "/admin/v1/resources",
                Some(&json!({"resource": bad, "scopes": ["accounts"]})),
            )
            .await;
        assert_admin_error(&reply, 400, "invalid_request");
        let read = s.call(app, Method::GET, &resource_path(bad), None).await;
        assert_admin_error(&read, 404, "not_found");
    }
    let reply = s
        .call(
            app,
            Method::POST,
            "/admin/v1/resources",
            Some(&json!({"resource": RESOURCE, "scopes": ["accounts"]})),
        )
        .await;
    assert_admin_error(&reply, 409, "conflict");
    // PUT replaces, it does not create: an identifier that names no resource server is 404,
    // and a body whose `resource` differs from the path is refused.
    let reply = s
        .call(
            app,
            Method::PUT,
            &resource_path("http://api.bank.example/accounts"),
            Some(&json!({"scopes": ["accounts"]})),
        )
        .await;
    assert_admin_error(&reply, 404, "not_found");
    for bad in [
        json!({"resource": "http://api.bank.example/accounts", "scopes": ["balances"]}),
        json!({"resource": "https://api.bank.example/accounts#x", "scopes": ["balances"]}),
        json!({"scopes": ["has space"]}),
        json!({"scopes": ["balances"], "owner": "treasury"}),
        json!({"scopes": ["balances"], "client_id": random_id()}),
        json!(["balances"]),
    ] {
        let reply = s
            .call(app, Method::PUT, &resource_path(RESOURCE), Some(&bad))
            .await;
        assert_admin_error(&reply, 400, "invalid_request");
    }
    let read = s
        .call(app, Method::GET, &resource_path(RESOURCE), None)
        .await;
    assert_eq!(read.body, accounts, "refused changes change nothing");

    // Before the change: `balances` is served by nobody.
    let tpp = Tpp::register(&bank, "accounts balances payments").await;
    assert_token_for(
        &tpp.token(app, "accounts", None).await,
        "accounts",
        RESOURCE,
    );
    tpp.token(app, "balances", None)
        .await
        .assert_error(400, "invalid_target");
    tpp.token(app, "balances", Some(RESOURCE))
        .await
        .assert_error(400, "invalid_scope");

    // PUT: the accounts API now serves `balances` instead of `accounts`, under a new name.
    let now = server_now(app).await;
    let replaced = s
        .call(
            app,
            Method::PUT,
            &resource_path(RESOURCE),
            Some(&json!({"resource": RESOURCE, "name": "Accounts API v2", "scopes": ["balances"]})),
        )
        .await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["resource"], RESOURCE);
    assert_eq!(replaced.body["name"], "Accounts API v2");
    assert_eq!(replaced.body["scopes"], json!(["balances"]));
    assert_eq!(replaced.body["created_at"], accounts["created_at"]);
    assert!(replaced.body["updated_at"].as_i64().unwrap() >= now);
    let read = s
        .call(app, Method::GET, &resource_path(RESOURCE), None)
        .await;
    assert_eq!(read.body, replaced.body);
    assert_token_for(
        &tpp.token(app, "balances", None).await,
        "balances",
        RESOURCE,
    );
    assert_token_for(
        &tpp.token(app, "balances", Some(RESOURCE)).await,
        "balances",
        RESOURCE,
    );
    tpp.token(app, "accounts", None)
        .await
        .assert_error(400, "invalid_target");
    tpp.token(app, "accounts", Some(RESOURCE))
        .await
        .assert_error(400, "invalid_scope");

    // DELETE: gone from GET, the list and the token endpoint.
    assert_token_for(
        &tpp.token(app, "payments", Some(payments)).await,
        "payments",
        payments,
    );
    let deleted = s
        .call(app, Method::DELETE, &resource_path(payments), None)
        .await;
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    let read = s
        .call(app, Method::GET, &resource_path(payments), None)
        .await;
    assert_admin_error(&read, 404, "not_found");
    let again = s
        .call(app, Method::DELETE, &resource_path(payments), None)
        .await;
    assert_admin_error(&again, 404, "not_found");
    let all = s.call(app, Method::GET, "/admin/v1/resources", None).await;
    assert_eq!(identifiers(&all), [RESOURCE, statements]);
    tpp.token(app, "payments", Some(payments))
        .await
        .assert_error(400, "invalid_target");
    tpp.token(app, "payments", None)
        .await
        .assert_error(400, "invalid_target");
    tpp.token(app, "balances", Some(payments))
        .await
        .assert_error(400, "invalid_target");

    // The trail: one event per change, none for the refused ones.
    let events = trail(&bank).await;
    for resource in [RESOURCE, payments, statements] {
        let created = details_of(&events, "resource.create", Some(resource));
        assert_eq!(created.len(), 1, "{events:?}");
        assert_eq!(created[0]["after"]["resource"], resource);
    }
    let updated = details_of(&events, "resource.update", Some(RESOURCE));
    assert_eq!(updated.len(), 1, "{events:?}");
    assert_eq!(updated[0]["before"]["scopes"], json!(["accounts"]));
    assert_eq!(updated[0]["after"]["scopes"], json!(["balances"]));
    assert_eq!(updated[0]["after"]["name"], "Accounts API v2");
    let deleted = details_of(&events, "resource.delete", Some(payments));
    assert_eq!(deleted.len(), 1, "{events:?}");
    assert_eq!(deleted[0]["before"]["scopes"], json!(["payments"]));
    assert!(deleted[0].get("after").is_none(), "{}", deleted[0]);
    assert_eq!(
        events
            .iter()
            .filter(|(a, _, _)| a.starts_with("resource."))
            .count(),
        5,
        "{events:?}"
    );
}

#[tokio::test]
async fn admin_clients_are_read_replaced_and_deleted_with_effect_at_the_token_endpoint() {
    let bank = Bank::start().await;
    let app = bank.app();
    let s = &bank.session;
    s.create(
        app,
        "/admin/v1/resources",
        &json!({"resource": RESOURCE, "scopes": ["accounts", "balances"]}),
    )
    .await;
    let tpp = Tpp::register(&bank, "accounts").await;
    let path = format!("/admin/v1/clients/{}", tpp.client_id);

    // GET one: what the create response showed.
    let original = s.call(app, Method::GET, &path, None).await;
    assert_eq!(original.status, 200, "{}", original.body);
    let original = original.body;
    assert_eq!(original["client_id"], tpp.client_id.as_str());
    assert_eq!(original["scope"], "accounts");
    assert_eq!(original["profile"], "fapi2");
    assert_eq!(original["client_name"], "TPP private_key_jwt");
    assert!(original["client_id_issued_at"].is_i64(), "{original}");
    assert_token_for(
        &tpp.token(app, "accounts", None).await,
        "accounts",
        RESOURCE,
    );
    tpp.token(app, "balances", None)
        .await
        .assert_error(400, "invalid_scope");

    // A secret client: the secret (or its hash) is never shown again, and survives a PUT.
    let created = bank
        .add_client(&m2m("client_secret_basic", &json!({"profile": "oauth"})))
        .await;
    let oauth = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    let oauth_path = format!("/admin/v1/clients/{oauth}");
    let read = s.call(app, Method::GET, &oauth_path, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(
        read.body["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    let members = read.body.as_object().unwrap();
    assert!(
        members
            .keys()
            .all(|k| !k.starts_with("client_secret") && !k.contains("hash")),
        "{}",
        read.body
    );
    let text = read.body.to_string();
    assert!(
        !text.contains(&secret) && !text.contains("$argon2"),
        "{text}"
    );

    // PUT: what GET shows, with a wider scope and without client_name (RFC 7592 §2.2: members
    // left out are removed).
    let mut body = original.clone();
    body["scope"] = "accounts balances".into();
    body.as_object_mut().unwrap().remove("client_name");
    let replaced = s.call(app, Method::PUT, &path, Some(&body)).await;
    assert_eq!(replaced.status, 200, "{}", replaced.body);
    assert_eq!(replaced.body["scope"], "accounts balances");
    assert!(
        replaced.body.get("client_name").is_none(),
        "{}",
        replaced.body
    );
    assert_eq!(
        replaced.body["client_id_issued_at"],
        original["client_id_issued_at"]
    );
    let after_put = s.call(app, Method::GET, &path, None).await;
    assert_eq!(after_put.body, replaced.body);
    let after_put = after_put.body;
    assert_token_for(
        &tpp.token(app, "balances", None).await,
        "balances",
        RESOURCE,
    );
    assert_token_for(
        &tpp.token(app, "accounts balances", None).await,
        "accounts balances",
        RESOURCE,
    );
    let mut oauth_body = read.body.clone();
    oauth_body["scope"] = "balances".into();
    let reply = s
        .call(app, Method::PUT, &oauth_path, Some(&oauth_body))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.get("client_secret").is_none(), "{}", reply.body);
    assert_token_for(
        &basic_token(app, &oauth, &secret, "balances").await,
        "balances",
        RESOURCE,
    );
    basic_token(app, &oauth, &secret, "accounts")
        .await
        .assert_error(400, "invalid_scope");

    // Invalid metadata: 400 with the RFC 7591 code, and the client is as it was.
    let with = |changes: Value| {
        let mut body = after_put.clone();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (bad, code) in [
        (
            with(json!({"token_endpoint_auth_method": "client_secret_basic", "scope": "accounts"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"scope": "accounts \"balances\""})),
            "invalid_client_metadata",
        ),
        (
            with(json!({"profile": "fapi3", "scope": "accounts"})),
            "invalid_client_metadata",
        ),
        (
            with(json!({
                "grant_types": ["authorization_code"],
                "response_types": ["code"],
                "redirect_uris": ["http://tpp.example/cb"],
                "scope": "accounts",
            })),
            "invalid_redirect_uri",
        ),
        (
            with(json!({"client_id": random_id(), "scope": "accounts"})),
            "invalid_request",
        ),
        (json!("accounts"), "invalid_request"),
    ] {
        let reply = s.call(app, Method::PUT, &path, Some(&bad)).await;
        assert_admin_error(&reply, 400, code);
        let read = s.call(app, Method::GET, &path, None).await;
        assert_eq!(read.body, after_put, "a refused PUT changes nothing");
    }
    assert_token_for(
        &tpp.token(app, "balances", None).await,
        "balances",
        RESOURCE,
    );

    // Unknown clients: 404 on every route.
    let unknown = format!("/admin/v1/clients/{}", random_id());
    let mut anonymous = after_put.clone();
    anonymous.as_object_mut().unwrap().remove("client_id");
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(&anonymous)),
        (Method::DELETE, None),
    ] {
        let reply = s.call(app, method.clone(), &unknown, body).await;
        assert_admin_error(&reply, 404, "not_found");
    }

    // A client a resource server authenticates as cannot be deleted until it no longer does.
    let introspector = Tpp::register(&bank, "accounts").await;
    let introspect = "https://api.bank.example/introspecting";
    let reply = s
        .call(
            app,
            Method::POST,
            "/admin/v1/resources",
            Some(&json!({"resource": introspect, "scopes": ["audit"], "client_id": random_id()})),
        )
        .await;
    assert_admin_error(&reply, 400, "invalid_request");
    let linked = s
        .create(
            app,
            "/admin/v1/resources",
            &json!({"resource": introspect, "scopes": ["audit"], "client_id": introspector.client_id}),
        )
        .await;
    assert_eq!(linked["client_id"], introspector.client_id.as_str());
    let introspector_path = format!("/admin/v1/clients/{}", introspector.client_id);
    let reply = s.call(app, Method::DELETE, &introspector_path, None).await;
    assert_admin_error(&reply, 409, "conflict");
    let read = s.call(app, Method::GET, &introspector_path, None).await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_token_for(
        &introspector.token(app, "accounts", Some(RESOURCE)).await,
        "accounts",
        RESOURCE,
    );
    let unlinked = s
        .call(
            app,
            Method::PUT,
            &resource_path(introspect),
            Some(&json!({"scopes": ["audit"], "client_id": null})),
        )
        .await;
    assert_eq!(unlinked.status, 200, "{}", unlinked.body);
    assert!(unlinked.body["client_id"].is_null(), "{}", unlinked.body);
    let reply = s.call(app, Method::DELETE, &introspector_path, None).await;
    assert_eq!(reply.status, 204, "{}", reply.body);

    // DELETE: gone from GET and the list, and it can no longer authenticate.
    let reply = s.call(app, Method::DELETE, &path, None).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let read = s.call(app, Method::GET, &path, None).await;
    assert_admin_error(&read, 404, "not_found");
    let again = s.call(app, Method::DELETE, &path, None).await;
    assert_admin_error(&again, 404, "not_found");
    let listed = s.call(app, Method::GET, "/admin/v1/clients", None).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&oauth.as_str()), "{ids:?}");
    for gone in [&tpp.client_id, &introspector.client_id] {
        assert!(!ids.contains(&gone.as_str()), "{ids:?}");
    }
    tpp.token(app, "accounts", None)
        .await
        .assert_error(401, "invalid_client");
    introspector
        .token(app, "accounts", None)
        .await
        .assert_error(401, "invalid_client");

    // The trail: one client.update per accepted PUT, one client.delete per deletion.
    let events = trail(&bank).await;
    let updated = details_of(&events, "client.update", Some(&tpp.client_id));
    assert_eq!(updated.len(), 1, "{events:?}");
    assert_eq!(updated[0]["before"]["scope"], "accounts");
    assert_eq!(updated[0]["before"]["client_name"], "TPP private_key_jwt");
    assert_eq!(updated[0]["after"]["scope"], "accounts balances");
    assert!(updated[0]["after"].get("client_name").is_none());
    let updated = details_of(&events, "client.update", Some(&oauth));
    assert_eq!(updated.len(), 1, "{events:?}");
    assert_eq!(updated[0]["after"]["scope"], "balances");
    for gone in [&tpp.client_id, &introspector.client_id] {
        let deleted = details_of(&events, "client.delete", Some(gone));
        assert_eq!(deleted.len(), 1, "{events:?}");
        assert_eq!(deleted[0]["before"]["client_id"], gone.as_str());
    }
    assert_eq!(
        details_of(&events, "resource.update", Some(introspect)).len(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|(a, _, _)| a == "client.delete")
            .count(),
        2,
        "the refused deletion is not recorded: {events:?}"
    );
    assert_no_secret(&events, &[&secret, "$argon2"]);
}

#[tokio::test]
async fn admin_users_get_new_claims_a_new_password_and_lose_their_second_factor() {
    let bank = Bank::start().await;
    let app = bank.app();
    let s = &bank.session;
    let password = "correct horse battery staple";
    let user = s
        .create(
            app,
            "/admin/v1/users",
            &json!({"username": "bob", "password": password, "claims": {"email": "bob@bank.example", "email_verified": false}}),
        )
        .await;
    let id = user["id"].as_str().unwrap().to_owned();
    let path = format!("/admin/v1/users/{id}");
    let unknown = "/admin/v1/users/00000000-0000-4000-8000-000000000000";

    // PATCH replaces the claims.
    let claims = json!({
        "name": "Bob Example",
        "email": "bob@example.org",
        "email_verified": true,
        "address": {"street_address": "1 High St", "locality": "London", "country": "GB"},
        "updated_at": 1_800_000_000,
    });
    let patched = s
        .call(app, Method::PATCH, &path, Some(&json!({"claims": claims})))
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["claims"], claims);
    assert_eq!(patched.body["id"], id.as_str());
    assert_eq!(patched.body["username"], "bob");
    let read = s.call(app, Method::GET, &path, None).await;
    assert_eq!(read.body, patched.body);
    let after_patch = read.body;

    // Invalid claims: 400 naming the claim, and the claims are as they were.
    for (bad, claim) in [
        (json!({"email_verified": "yes"}), "email_verified"),
        (json!({"sub": "someone-else"}), "sub"),
        (json!({"account_number": "12345678"}), "account_number"),
        (json!({"updated_at": -1}), "updated_at"),
        (json!({"address": {"planet": "Earth"}}), "address"),
        (json!({"name": 42}), "name"),
    ] {
        let reply = s
            .call(app, Method::PATCH, &path, Some(&json!({"claims": bad})))
            .await;
        assert_admin_error(&reply, 400, "invalid_request");
        let description = reply.body["error_description"].as_str().unwrap();
        assert!(description.contains(claim), "{description:?} for {bad}");
        let read = s.call(app, Method::GET, &path, None).await;
        assert_eq!(read.body, after_patch, "a refused PATCH changes nothing");
    }
    for bad in [
        json!({"claims": "name=Bob"}),
        json!({}),
        json!({"claims": {}, "username": "robert"}),
    ] {
        let reply = s.call(app, Method::PATCH, &path, Some(&bad)).await;
        assert_refused_body(&reply);
        let read = s.call(app, Method::GET, &path, None).await;
        assert_eq!(read.body, after_patch, "a refused PATCH changes nothing");
    }
    let reply = s
        .call(app, Method::PATCH, unknown, Some(&json!({"claims": {}})))
        .await;
    assert_admin_error(&reply, 404, "not_found");

    // PUT password: 8 characters at least, at most 1024 bytes; 204 and nothing echoed.
    let new_password = "another long passphrase";
    for bad in ["", "short", "seven77", &"x".repeat(1025)] {
        let reply = s
            .call(
                app,
                Method::PUT,
                &format!("{path}/password"),
                Some(&json!({"password": bad})),
            )
            .await;
        assert_admin_error(&reply, 400, "invalid_request");
        assert!(
            reply.body["error_description"]
                .as_str()
                .unwrap()
                .contains("password"),
            "{}",
            reply.body
        );
    }
    for bad in [json!({}), json!({"password": 12_345_678})] {
        let reply = s
            .call(app, Method::PUT, &format!("{path}/password"), Some(&bad))
            .await;
        assert_refused_body(&reply);
    }
    let reply = s
        .call(
            app,
            Method::PUT,
            &format!("{path}/password"),
            Some(&json!({"password": new_password})),
        )
        .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(reply.body.is_null(), "{}", reply.body);
    let reply = s
        .call(
            app,
            Method::PUT,
            &format!("{unknown}/password"),
            Some(&json!({"password": new_password})),
        )
        .await;
    assert_admin_error(&reply, 404, "not_found");
    let read = s.call(app, Method::GET, &path, None).await;
    assert_eq!(read.body, after_patch, "a password is never shown");

    // TOTP: enrolled (the URI once), enrolled again (a new secret), removed; removing again is
    // accepted and changes nothing.
    let mut otpauth = Vec::new();
    for _ in 0..2 {
        let enrolled = s
            .call(app, Method::POST, &format!("{path}/totp"), None)
            .await;
        assert_eq!(enrolled.status, 200, "{}", enrolled.body);
        assert_eq!(enrolled.body["totp_enrolled"], true);
        let uri = enrolled.body["otpauth_uri"].as_str().unwrap().to_owned();
        assert!(
            uri.starts_with("otpauth://totp/") && uri.contains("bob"),
            "{uri}"
        );
        let read = s.call(app, Method::GET, &path, None).await;
        assert_eq!(read.body["totp_enrolled"], true);
        assert!(read.body.get("otpauth_uri").is_none(), "{}", read.body);
        otpauth.push(uri);
    }
    let secrets: Vec<String> = otpauth
        .iter()
        .map(|uri| {
            let query = uri.split_once('?').unwrap().1;
            query
                .split('&')
                .find_map(|p| p.strip_prefix("secret="))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_ne!(secrets[0], secrets[1], "enrolling again makes a new secret");
    for _ in 0..2 {
        let removed = s
            .call(app, Method::DELETE, &format!("{path}/totp"), None)
            .await;
        assert_eq!(removed.status, 200, "{}", removed.body);
        assert_eq!(removed.body["totp_enrolled"], false);
        let read = s.call(app, Method::GET, &path, None).await;
        assert_eq!(read.body, after_patch);
    }
    for method in [Method::POST, Method::DELETE] {
        let reply = s.call(app, method, &format!("{unknown}/totp"), None).await;
        assert_admin_error(&reply, 404, "not_found");
    }

    // The trail: each accepted change once, no refused one, no password or TOTP secret.
    let events = trail(&bank).await;
    let updated = details_of(&events, "user.update_claims", Some(&id));
    assert_eq!(updated.len(), 1, "{events:?}");
    assert_eq!(
        updated[0]["before"],
        json!({"email": "bob@bank.example", "email_verified": false})
    );
    assert_eq!(updated[0]["after"], claims);
    let set = details_of(&events, "user.set_password", Some(&id));
    assert_eq!(set, [json!({"username": "bob"})], "{events:?}");
    let enrolled = details_of(&events, "user.enrol_totp", Some(&id));
    assert_eq!(
        enrolled,
        [
            json!({"before": {"totp_enrolled": false}, "after": {"totp_enrolled": true}}),
            json!({"before": {"totp_enrolled": true}, "after": {"totp_enrolled": true}}),
        ]
    );
    let removed = details_of(&events, "user.remove_totp", Some(&id));
    assert_eq!(
        removed,
        [json!({"before": {"totp_enrolled": true}, "after": {"totp_enrolled": false}})],
        "removing an absent second factor is not recorded"
    );
    assert_eq!(
        events
            .iter()
            .filter(|(a, _, _)| a.starts_with("user."))
            .count(),
        6,
        "{events:?}"
    );
    assert_no_secret(
        &events,
        &[
            password,
            new_password,
            &secrets[0],
            &secrets[1],
            "$argon2",
            "otpauth",
        ],
    );
}

#[tokio::test]
async fn admin_key_rotation_publishes_a_next_key_per_algorithm_that_signs_once_due() {
    let bank = Bank::start().await;
    let app = bank.app();
    let s = &bank.session;
    let algs = ["PS256", "ES256", "EdDSA"];
    let listed = s.call(app, Method::GET, "/admin/v1/keys", None).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let initial = listed.body.as_array().unwrap().clone();
    assert_eq!(initial.len(), 3, "{}", listed.body);
    for alg in algs {
        assert!(
            initial
                .iter()
                .any(|k| k["alg"] == alg && k["state"] == "active"),
            "{}",
            listed.body
        );
    }

    // One algorithm.
    let now = server_now(app).await;
    let rotated = s
        .call(
            app,
            Method::POST,
            "/admin/v1/keys/rotate",
            Some(&json!({"algs": ["ES256"]})),
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let first = rotated.body.as_array().unwrap().clone();
    assert_eq!(first.len(), 1, "{}", rotated.body);
    let es256_first = &first[0];
    assert_eq!(es256_first["alg"], "ES256");
    assert_eq!(es256_first["state"], "next");
    assert_eq!(es256_first["public_jwk"]["kid"], es256_first["kid"]);
    let activates_at = es256_first["activates_at"].as_i64().unwrap();
    assert!(
        activates_at > now && activates_at > es256_first["created_at"].as_i64().unwrap(),
        "{es256_first}"
    );
    // Every configured algorithm.
    let rotated = s
        .call(app, Method::POST, "/admin/v1/keys/rotate", Some(&json!({})))
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = rotated.body.as_array().unwrap().clone();
    let mut second_algs: Vec<&str> = second.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    second_algs.sort_unstable();
    assert_eq!(second_algs, ["ES256", "EdDSA", "PS256"]);
    assert!(second.iter().all(|k| k["state"] == "next"), "{second:?}");

    // Algorithms outside FAPI 2.0's PS256/ES256/EdDSA and unknown members are refused, and
    // nothing is rotated (the key count below).
    for bad in [
        json!({"algs": ["RS256"]}),
        json!({"algs": ["HS256"]}),
        json!({"algs": ["none"]}),
        json!({"algs": ["ES256"], "force": true}),
        json!([]),
    ] {
        let reply = s
            .call(app, Method::POST, "/admin/v1/keys/rotate", Some(&bad))
            .await;
        assert_refused_body(&reply);
    }

    // GET shows each new key as next and the old ones still active.
    let listed = s.call(app, Method::GET, "/admin/v1/keys", None).await;
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(listed.len(), 7, "{listed:?}");
    let state_of = |listing: &[Value], kid: &Value| -> String {
        listing
            .iter()
            .find(|k| k["kid"] == *kid)
            .unwrap_or_else(|| panic!("{kid} not in {listing:?}"))["state"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for key in first.iter().chain(&second) {
        assert_eq!(state_of(&listed, &key["kid"]), "next");
    }
    for key in &initial {
        assert_eq!(state_of(&listed, &key["kid"]), "active");
    }
    // /jwks publishes them at once (the replica that rotated re-reads its keys), long before
    // they sign.
    let jwks = app.get_json("/jwks").await.2;
    let published = kids(&jwks);
    for key in first.iter().chain(&second) {
        assert!(
            published.contains(&key["kid"].as_str().unwrap().to_owned()),
            "{} is not published: {published:?}",
            key["kid"]
        );
    }
    let listed = s.call(app, Method::GET, "/admin/v1/keys", None).await;
    let listed = listed.body.as_array().unwrap().clone();
    for key in first.iter().chain(&second) {
        assert_eq!(state_of(&listed, &key["kid"]), "next");
    }
    for key in listed.iter().chain(jwks["keys"].as_array().unwrap()) {
        let jwk = if key.get("public_jwk").is_some() {
            &key["public_jwk"]
        } else {
            key
        };
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(jwk.get(private).is_none(), "{jwk}");
        }
    }

    // Once due, the new keys sign. Of the two new ES256 keys the later rotation's wins (times
    // are kept to the microsecond): the first one retires without ever signing.
    let due = second
        .iter()
        .map(|k| k["activates_at"].as_i64().unwrap())
        .max()
        .unwrap();
    let now = server_now(app).await;
    app.advance_clock(due - now + 1).await;
    for alg in algs {
        let expected = second.iter().find(|k| k["alg"] == alg).unwrap();
        let (jwt, kid) = sign(app, alg).await;
        assert_eq!(kid, expected["kid"].as_str().unwrap(), "{alg}");
        verify_independently(&jwt, &app.get_json("/jwks").await.2).unwrap();
    }
    let session = AdminSession::open(app, &bank.admin, ADMIN_SCOPE).await;
    let listed = session.call(app, Method::GET, "/admin/v1/keys", None).await;
    let listed = listed.body.as_array().unwrap().clone();
    for key in &second {
        assert_eq!(state_of(&listed, &key["kid"]), "active");
    }
    for key in initial.iter().chain(&first) {
        assert_eq!(state_of(&listed, &key["kid"]), "retired");
    }

    // The trail: one key.rotate per accepted rotation, naming only public facts.
    let bank = Bank { session, ..bank };
    let events = trail(&bank).await;
    let rotations = details_of(&events, "key.rotate", None);
    assert_eq!(rotations.len(), 2, "{events:?}");
    for (details, keys) in rotations.iter().zip([&first, &second]) {
        let added = details["added"].as_array().unwrap();
        assert_eq!(added.len(), keys.len(), "{details}");
        for (shown, key) in added.iter().zip(keys) {
            assert_eq!(
                shown,
                &json!({"kid": key["kid"], "alg": key["alg"], "activates_at": key["activates_at"]})
            );
        }
    }
}

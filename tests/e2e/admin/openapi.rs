//! `/admin/v1/openapi.json`: an OpenAPI 3.1 document that lists every route the admin API serves,
//! each of which is routed to a handler when called.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use super::Bank;

/// `(METHOD, path)` of every route the admin API serves.
const ADMIN_ROUTES: [(&str, &str); 25] = [
    ("get", "/admin/v1/clients"),
    ("post", "/admin/v1/clients"),
    ("get", "/admin/v1/clients/{client_id}"),
    ("put", "/admin/v1/clients/{client_id}"),
    ("delete", "/admin/v1/clients/{client_id}"),
    ("post", "/admin/v1/clients/{client_id}/secret"),
    ("get", "/admin/v1/users"),
    ("post", "/admin/v1/users"),
    ("get", "/admin/v1/users/{user_id}"),
    ("patch", "/admin/v1/users/{user_id}"),
    ("put", "/admin/v1/users/{user_id}/password"),
    ("post", "/admin/v1/users/{user_id}/disable"),
    ("post", "/admin/v1/users/{user_id}/enable"),
    ("post", "/admin/v1/users/{user_id}/totp"),
    ("delete", "/admin/v1/users/{user_id}/totp"),
    ("get", "/admin/v1/keys"),
    ("post", "/admin/v1/keys/rotate"),
    ("get", "/admin/v1/events"),
    ("get", "/admin/v1/events/export"),
    ("get", "/admin/v1/revocation-events"),
    ("get", "/admin/v1/resources"),
    ("post", "/admin/v1/resources"),
    ("get", "/admin/v1/resources/{resource}"),
    ("put", "/admin/v1/resources/{resource}"),
    ("delete", "/admin/v1/resources/{resource}"),
];

#[tokio::test]
async fn admin_openapi_document_is_3_1_and_lists_exactly_the_routes_served() {
    let bank = Bank::start().await;
    let app = bank.app();
    let (status, _, doc) = app.get_json("/admin/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(|method| (method.clone(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (method, path) in ADMIN_ROUTES {
        assert!(
            documented.contains(&(method.to_owned(), path.to_owned())),
            "{method} {path} is served but not documented: {documented:?}"
        );
    }
    assert!(
        doc["components"]["securitySchemes"]["dpop"].is_object(),
        "{}",
        doc["components"]
    );

    // Conversely: every documented operation is routed to a handler (not the 404 fallback, not
    // 405), and the admin token with every scope gets past authentication and authorization.
    let routed = |reply: &crate::oauth::Reply| {
        let fallback = reply.status == 404 && reply.body["error_description"] == "no such endpoint";
        !fallback && reply.status != 405
    };
    // The probe tells: an unknown path and a method a path does not serve are seen as unrouted.
    for (method, path) in [
        (Method::GET, "/admin/v1/nothing-here"),
        (Method::PATCH, "/admin/v1/keys"),
    ] {
        let reply = bank.session.call(app, method, path, None).await;
        assert!(!routed(&reply), "{path}: {} {}", reply.status, reply.body);
    }
    for (method, path) in &documented {
        let concrete = path
            .replace("{client_id}", "AAAAAAAAAAAAAAAAAAAAAA")
            .replace("{user_id}", "00000000-0000-4000-8000-000000000000")
            .replace("{resource}", "https%3A%2F%2Fnowhere.bank.example%2F");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
        let reply = bank
            .session
            .call(app, method.clone(), &concrete, body.as_ref())
            .await;
        assert!(
            routed(&reply),
            "{method} {concrete} is documented but not served: {} {}",
            reply.status,
            reply.body
        );
        assert!(
            reply.status != 401 && reply.status != 403,
            "{method} {concrete}: {} {}",
            reply.status,
            reply.body
        );
    }
}

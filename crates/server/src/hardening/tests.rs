//! The hardening layers through the real router (`Router::oneshot`): body limits answered in the
//! endpoint's format whether the body declares its length or not, the admin API's refusal of
//! browsers' cross-site requests, CORS preflights, and the headers every answer carries.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::routes::tests::harness;

async fn send(
    router: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

fn form_post(path: &str, body: Body) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .unwrap()
}

/// A body without a declared length, in 1 KiB chunks.
fn streamed(kib: usize) -> Body {
    let chunks = (0..kib).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'a'; 1024])));
    Body::from_stream(futures_util::stream::iter(chunks))
}

#[tokio::test]
async fn token_and_par_bodies_beyond_their_limit_get_413_in_the_oauth_format() {
    let h = harness().await;
    let declared = form_post("/token", Body::from(vec![b'a'; 17 * 1024]));
    let unannounced = form_post("/token", streamed(17));
    let par = form_post("/par", streamed(33));
    for request in [declared, unannounced, par] {
        let (status, headers, body) = send(&h.router, request).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("bytes")
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
    // Under the limit, the endpoint itself answers (here: no client authentication).
    let (status, _, _) = send(&h.router, form_post("/token", streamed(15))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let metrics = h.state.metrics.encode().unwrap();
    assert!(
        metrics.contains(
            r#"portcullis_http_requests_total{method="POST",endpoint="/token",status="413",outcome="invalid_request"} 2"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_page_form_beyond_its_limit_gets_413_as_an_error_page() {
    let h = harness().await;
    let (status, headers, body) =
        send(&h.router, form_post("/authorize/login", streamed(17))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(body.contains("too large"), "{body}");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
}

#[tokio::test]
async fn the_admin_api_refuses_browsers_cross_site_requests_before_authentication() {
    let h = harness().await;
    let admin = |headers: &[(&str, &str)]| {
        let mut request = Request::get("/admin/v1/clients");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.body(Body::empty()).unwrap()
    };
    for refused in [
        admin(&[("sec-fetch-site", "cross-site")]),
        admin(&[("sec-fetch-site", "same-site")]),
        admin(&[("origin", "https://evil.example")]),
        admin(&[("origin", "https://as.example.evil.example")]),
    ] {
        let (status, headers, body) = send(&h.router, refused).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"], "access_denied");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN));
    }
    // Non-browser clients and the issuer's own origin reach authentication as before.
    for passed in [
        admin(&[]),
        admin(&[
            ("origin", "https://as.example"),
            ("sec-fetch-site", "same-origin"),
        ]),
    ] {
        let (status, _, body) = send(&h.router, passed).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
}

#[tokio::test]
async fn sp_5_2_3_3_only_public_documents_answer_preflights() {
    let h = harness().await;
    let preflight = |path: &str| {
        Request::options(path)
            .header(header::ORIGIN, "https://spa.example")
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .body(Body::empty())
            .unwrap()
    };
    for path in ["/jwks", "/.well-known/openid-configuration"] {
        let (status, headers, _) = send(&h.router, preflight(path)).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD");
        assert!(!headers.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }
    for path in [
        "/authorize",
        "/token",
        "/par",
        "/admin/v1/clients",
        "/account",
    ] {
        let (_, headers, _) = send(&h.router, preflight(path)).await;
        assert!(
            headers
                .keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{path}: {headers:?}"
        );
    }
}

#[tokio::test]
async fn sp_5_2_3_1_every_answer_has_hsts_and_nosniff_and_protocol_answers_are_not_stored() {
    let h = harness().await;
    for path in ["/jwks", "/nowhere", "/readyz", "/authorize", "/userinfo"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (_, headers, _) = send(&h.router, request).await;
        assert_eq!(
            headers[header::STRICT_TRANSPORT_SECURITY],
            "max-age=63072000; includeSubDomains",
            "{path}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        let expected = if path == "/jwks" {
            "public, max-age=300"
        } else {
            "no-store"
        };
        assert_eq!(headers[header::CACHE_CONTROL], expected, "{path}");
    }
}

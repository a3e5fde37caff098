//! Security headers and request hardening for both TLS listeners, driven by the per-endpoint
//! table in [`endpoints`].
//!
//! Two middlewares:
//! - [`headers`], the outermost layer, so that every answer gets them (also a timeout's 408):
//!   HSTS (FAPI2 SP 5.2.3-1/2), `X-Content-Type-Options: nosniff`, `X-Frame-Options: DENY`,
//!   `Referrer-Policy: no-referrer`, a Content-Security-Policy where the handler set none (pages
//!   set their own, [`page`]), `no-store` where the table says so, and CORS exactly as the table
//!   says: `Access-Control-*` headers are removed from every other answer, and only the public
//!   documents answer preflights (SP 5.2.3-3).
//! - [`guard`], inside the router and the metrics layer (so its refusals are counted): the
//!   endpoint's body limit, a 413 in the endpoint's own format (JSON `error` or the customer's
//!   error page) for any body too large, the admin API's refusal of browsers' cross-site
//!   requests before authentication, and the request span's `source_ip`.

pub mod endpoints;
pub mod page;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use portcullis_core::error::{ErrorCode, OAuthError};

use self::endpoints::{Caching, Cors, EndpointPolicy, Format, policy_of};
use crate::app::AppState;
use crate::routes::oauth_error::ErrorResponse;
use crate::source_ip::SourceIp;

/// How long browsers may reuse an answered preflight (Chromium caps it at two hours).
const PREFLIGHT_MAX_AGE: &str = "7200";

/// The `Strict-Transport-Security` value: two years (63072000 s, what the preload list asks),
/// subdomains, and `preload` when the operator asks for it (`tls.hsts_preload`; only for a
/// domain submitted to the preload list).
#[must_use]
pub fn hsts(preload: bool) -> HeaderValue {
    if preload {
        HeaderValue::from_static("max-age=63072000; includeSubDomains; preload")
    } else {
        HeaderValue::from_static("max-age=63072000; includeSubDomains")
    }
}

/// What [`headers`] adds, fixed at start-up.
#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// The `Strict-Transport-Security` value.
    pub hsts: HeaderValue,
}

impl HeaderSettings {
    /// The settings of a deployment whose HSTS carries `preload` or not.
    #[must_use]
    pub fn new(hsts_preload: bool) -> Self {
        Self {
            hsts: hsts(hsts_preload),
        }
    }
}

/// Middleware: the security headers of every answer, and CORS preflights of the public
/// documents.
pub async fn headers(
    State(settings): State<Arc<HeaderSettings>>,
    request: Request,
    next: Next,
) -> Response {
    let policy = policy_of(request.uri().path());
    let mut response = if policy.cors == Cors::PublicRead && is_preflight(&request) {
        preflight()
    } else {
        next.run(request).await
    };
    decorate(&settings, &policy, response.headers_mut());
    response
}

/// A CORS preflight (Fetch standard §3.2.2): `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(request: &Request) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ORIGIN)
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

/// The answer to a preflight of a public document: `GET` and `HEAD` from anywhere, no request
/// headers beyond the CORS-safelisted ones, never credentials. A preflight for another method
/// gets the same answer, which the browser then refuses.
fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    response
}

fn decorate(settings: &HeaderSettings, policy: &EndpointPolicy, headers: &mut HeaderMap) {
    headers.insert(header::STRICT_TRANSPORT_SECURITY, settings.hsts.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("no-referrer"));
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(page::STRICTEST));

    let keep_lifetime =
        policy.caching == Caching::Handler && headers.contains_key(header::CACHE_CONTROL);
    if !keep_lifetime {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }

    // Whatever a handler or library set, CORS is the table's alone.
    let cors: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("access-control-"))
        .cloned()
        .collect();
    match policy.cors {
        Cors::None => {
            for name in cors {
                headers.remove(name);
            }
        }
        Cors::PublicRead => {
            for name in cors.iter().filter(|n| {
                **n != header::ACCESS_CONTROL_ALLOW_METHODS && **n != header::ACCESS_CONTROL_MAX_AGE
            }) {
                headers.remove(name);
            }
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
}

/// What [`guard`] needs.
#[derive(Debug, Clone)]
pub struct Guard {
    state: AppState,
    /// The issuer's origin (RFC 6454 ASCII serialization), the one `Origin` the admin API
    /// accepts.
    issuer_origin: String,
}

impl Guard {
    /// The guard of `state`'s deployment.
    #[must_use]
    pub fn new(state: AppState) -> Self {
        let issuer_origin = url::Url::parse(&state.urls.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        Self {
            state,
            issuer_origin,
        }
    }
}

/// Middleware: body limits with 413 in the endpoint's format, the admin API's refusal of
/// cross-site browser requests, and the span's `source_ip`.
pub async fn guard(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    if let Some(SourceIp(ip)) = request.extensions().get::<SourceIp>() {
        tracing::Span::current().record("source_ip", tracing::field::display(ip));
    }
    let policy = policy_of(request.uri().path());
    if policy.same_origin_only
        && let Some(reason) = cross_site(request.headers(), &guard.issuer_origin)
    {
        tracing::info!(
            reason,
            "refused a browser's cross-site request to the admin API"
        );
        return ErrorResponse::new(OAuthError::new(
            ErrorCode::AccessDenied,
            format!("the admin API refuses browsers' cross-site requests: {reason}"),
        ))
        .into_response();
    }

    let limit = policy
        .max_body_bytes
        .map_or(guard.state.config.limits.max_body_bytes, |l| {
            l.min(guard.state.config.limits.max_body_bytes)
        });
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(&guard.state, &policy, limit);
    }
    // A body without a length, or longer than it said, stops at the limit while it is read; the
    // handler's extractor then answers 413, which is put in the endpoint's format below.
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    let response = next.run(request).await;
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(&guard.state, &policy, limit);
    }
    response
}

/// Why a request is a browser's cross-site request, if it is: Fetch Metadata says `cross-site`
/// or `same-site` (or something unknown), or an `Origin` is not the issuer's. Clients that are
/// not browsers send neither and pass.
fn cross_site(headers: &HeaderMap, issuer_origin: &str) -> Option<&'static str> {
    let mut sites = headers.get_all("sec-fetch-site").iter();
    if let Some(site) = sites.next() {
        match site.to_str().map(str::to_ascii_lowercase).as_deref() {
            Ok("same-origin" | "none") => {}
            Ok("cross-site") => return Some("Sec-Fetch-Site is cross-site"),
            Ok("same-site") => return Some("Sec-Fetch-Site is same-site"),
            _ => return Some("Sec-Fetch-Site is not understood"),
        }
        if sites.next().is_some() {
            return Some("Sec-Fetch-Site is repeated");
        }
    }
    let mut origins = headers.get_all(header::ORIGIN).iter();
    if let Some(origin) = origins.next() {
        if origins.next().is_some() {
            return Some("Origin is repeated");
        }
        if issuer_origin.is_empty() || origin.as_bytes() != issuer_origin.as_bytes() {
            return Some("Origin is not the issuer's origin");
        }
    }
    None
}

/// 413 in the endpoint's format.
fn too_large(state: &AppState, policy: &EndpointPolicy, limit: usize) -> Response {
    let mut response = match policy.format {
        Format::Json => ErrorResponse::new(OAuthError::new(
            ErrorCode::InvalidRequest,
            format!("the request body is larger than this endpoint accepts ({limit} bytes)"),
        ))
        .into_response(),
        Format::Page => crate::routes::authorize::error_page(
            state,
            StatusCode::PAYLOAD_TOO_LARGE,
            "Request refused",
            "The form sent is too large.",
        ),
    };
    *response.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod unit_tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const ISSUER: &str = "https://as.example:8443";

    #[test]
    fn browsers_cross_site_requests_are_told_apart_from_other_clients() {
        // Clients that are not browsers, and the issuer's own pages, pass.
        assert_eq!(cross_site(&headers(&[]), ISSUER), None);
        assert_eq!(
            cross_site(
                &headers(&[("sec-fetch-site", "same-origin"), ("origin", ISSUER)]),
                ISSUER
            ),
            None
        );
        assert_eq!(
            cross_site(&headers(&[("sec-fetch-site", "none")]), ISSUER),
            None
        );
        for refused in [
            headers(&[("sec-fetch-site", "cross-site")]),
            headers(&[("sec-fetch-site", "same-site")]),
            headers(&[("sec-fetch-site", "elsewhere")]),
            headers(&[("origin", "https://evil.example")]),
            headers(&[("origin", "https://as.example")]),
            headers(&[("origin", "null")]),
            headers(&[("origin", ISSUER), ("origin", "https://evil.example")]),
            headers(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "https://evil.example"),
            ]),
        ] {
            assert!(cross_site(&refused, ISSUER).is_some(), "{refused:?}");
        }
    }

    #[test]
    fn sp_5_2_3_3_cors_only_where_the_table_allows_it() {
        let settings = HeaderSettings::new(false);
        let mut map = headers(&[
            ("access-control-allow-origin", "https://evil.example"),
            ("access-control-allow-credentials", "true"),
        ]);
        decorate(&settings, &policy_of("/authorize"), &mut map);
        assert!(
            map.keys()
                .all(|k| !k.as_str().starts_with("access-control-")),
            "{map:?}"
        );
        let mut map = headers(&[("access-control-allow-credentials", "true")]);
        decorate(&settings, &policy_of("/jwks"), &mut map);
        assert_eq!(map[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(!map.contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS));
    }

    #[test]
    fn sp_5_2_3_1_hsts_and_no_store_unless_the_handler_sets_a_lifetime() {
        let mut map = headers(&[("cache-control", "public, max-age=300")]);
        decorate(&HeaderSettings::new(true), &policy_of("/jwks"), &mut map);
        assert_eq!(
            map[header::STRICT_TRANSPORT_SECURITY],
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(map[header::CACHE_CONTROL], "public, max-age=300");
        assert_eq!(map[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        let mut map = headers(&[("cache-control", "public, max-age=300")]);
        decorate(&HeaderSettings::new(false), &policy_of("/token"), &mut map);
        assert_eq!(
            map[header::STRICT_TRANSPORT_SECURITY],
            "max-age=63072000; includeSubDomains"
        );
        assert_eq!(map[header::CACHE_CONTROL], "no-store");
        assert_eq!(map[header::PRAGMA], "no-cache");
        assert_eq!(map[header::CONTENT_SECURITY_POLICY], page::STRICTEST);
        let mut map = HeaderMap::new();
        decorate(&HeaderSettings::new(false), &policy_of("/jwks"), &mut map);
        assert_eq!(map[header::CACHE_CONTROL], "no-store", "no lifetime: none");
    }

    #[test]
    fn hsts_meets_the_preload_list_rules_and_says_preload_only_when_asked() {
        for preload in [false, true] {
            let value = hsts(preload);
            let directives: Vec<&str> = value.to_str().unwrap().split(';').map(str::trim).collect();
            let max_age: u64 = directives
                .iter()
                .find_map(|d| d.strip_prefix("max-age="))
                .unwrap()
                .parse()
                .unwrap();
            // hstspreload.org asks for at least a year; we send two.
            assert_eq!(max_age, 2 * 365 * 24 * 3600);
            assert!(directives.contains(&"includeSubDomains"), "{directives:?}");
            assert_eq!(directives.contains(&"preload"), preload, "{directives:?}");
            assert_eq!(directives.len(), 2 + usize::from(preload), "{directives:?}");
        }
    }
}

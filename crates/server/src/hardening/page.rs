//! The headers of the customer's HTML pages (login, second factor, consent, account, logout):
//! a Content-Security-Policy that loads nothing but our stylesheet, `frame-ancestors 'none'` and
//! `X-Frame-Options: DENY` against clickjacking (RFC 9700 §4.16), `no-store`, no referrer and
//! `nosniff`.
//!
//! `form-action` and `img-src` are per page. Forms post only to us (`'self'`), but Chrome also
//! checks `form-action` against the redirect that answers a form POST: the login, second-factor
//! and consent forms may end in a 303 to the client's `redirect_uri`, so those pages add that
//! URI's origin, and nothing wider. Images come from us, plus the `https` origin of each client
//! logo the page shows.

use axum::response::Response;
use http::{HeaderValue, header};

/// A page's Content-Security-Policy, built from its form targets and image origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PagePolicy {
    form_targets: Vec<String>,
    images: Vec<String>,
}

impl PagePolicy {
    /// Forms post only to this server; images only from it.
    #[must_use]
    pub fn own() -> Self {
        Self::default()
    }

    /// Lets the page's forms be answered by a redirect to `uri` (its origin; for a private-use
    /// scheme, the scheme). A URI that cannot be expressed safely is left out: the redirect is
    /// then blocked by the browser, which fails closed.
    #[must_use]
    pub fn redirecting_to(mut self, uri: &str) -> Self {
        if let Some(source) = form_source(uri) {
            push_unique(&mut self.form_targets, source);
        }
        self
    }

    /// Lets the page show an image from `uri`'s origin, if it is `https`.
    #[must_use]
    pub fn showing_image(mut self, uri: &str) -> Self {
        if let Some(source) = https_origin(uri) {
            push_unique(&mut self.images, source);
        }
        self
    }

    /// The `Content-Security-Policy` value.
    #[must_use]
    pub fn csp(&self) -> String {
        let list = |extra: &[String]| {
            std::iter::once("'self'")
                .chain(extra.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "default-src 'none'; style-src 'self'; img-src {}; form-action {}; frame-ancestors 'none'; base-uri 'none'",
            list(&self.images),
            list(&self.form_targets),
        )
    }

    /// Adds the pages' headers to `response`.
    #[must_use]
    pub fn apply(&self, mut response: Response) -> Response {
        // The sources come from parsed URLs (ASCII origins, schemes): a valid header value. If it
        // were not, the strictest policy stands in.
        let csp = HeaderValue::from_str(&self.csp())
            .unwrap_or_else(|_| HeaderValue::from_static(STRICTEST));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// The policy of every response that is not a page: nothing may load, frame it or be posted
/// from it.
pub const STRICTEST: &str =
    "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

fn push_unique(list: &mut Vec<String>, source: String) {
    if !list.contains(&source) {
        list.push(source);
    }
}

/// The origin of an `https` URL, as a CSP host-source.
fn https_origin(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    (url.scheme() == "https" && url.host().is_some()).then(|| url.origin().ascii_serialization())
}

/// The CSP source that matches redirects to `uri`: its origin for `https` and `http` (loopback
/// redirects of native apps), its scheme for a private-use scheme (RFC 8252 §7.1). Schemes that
/// run or embed content are never allowed.
fn form_source(uri: &str) -> Option<String> {
    let url = url::Url::parse(uri).ok()?;
    match url.scheme() {
        "https" | "http" if url.host().is_some() => Some(url.origin().ascii_serialization()),
        "https" | "http" | "javascript" | "data" | "blob" | "filesystem" | "about" | "file"
        | "ws" | "wss" => None,
        // A parsed scheme is ASCII letters, digits, `+`, `-` and `.`: nothing a policy could
        // be broken out of with.
        scheme => Some(format!("{scheme}:")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn pages_load_only_our_own_and_cannot_be_framed() {
        assert_eq!(
            PagePolicy::own().csp(),
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        );
    }

    #[test]
    fn a_flow_page_may_redirect_to_the_clients_origin_only() {
        let csp = PagePolicy::own()
            .redirecting_to("https://tpp.example:8443/cb?x=1")
            .redirecting_to("https://tpp.example:8443/other")
            .showing_image("https://cdn.tpp.example/logo.png")
            .csp();
        assert!(
            csp.contains("form-action 'self' https://tpp.example:8443;"),
            "{csp}"
        );
        assert!(
            csp.contains("img-src 'self' https://cdn.tpp.example;"),
            "{csp}"
        );
        let native = PagePolicy::own()
            .redirecting_to("com.example.app:/oauth")
            .redirecting_to("http://127.0.0.1:51000/cb")
            .csp();
        assert!(
            native.contains("form-action 'self' com.example.app: http://127.0.0.1:51000;"),
            "{native}"
        );
    }

    #[test]
    fn unsafe_sources_are_left_out() {
        let csp = PagePolicy::own()
            .redirecting_to("javascript:alert(1)")
            .redirecting_to("data:text/html,x")
            .redirecting_to("not a url; script-src *")
            .showing_image("http://tpp.example/logo.png")
            .showing_image("https://x'; script-src *")
            .csp();
        assert_eq!(csp, PagePolicy::own().csp());
    }

    #[test]
    fn apply_sets_every_page_header() {
        let response = PagePolicy::own().apply(Response::new(axum::body::Body::empty()));
        let headers = response.headers();
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
    }
}

//! The hardening policy of every endpoint, in one table so that it can be reviewed at a glance:
//! who may read it cross-origin (CORS), whether its answers may be cached, the format its
//! refusals take, its request-body limit, and whether browsers' cross-site requests are refused.
//!
//! Paths are matched on the raw request path, before routing: exact entries first where they
//! overlap a prefix, the first match wins, and a path that matches nothing gets [`DEFAULT`], the
//! strictest policy (no CORS, `no-store`, the global body limit). A path that does not route
//! (`/jwks/`, `/JWKS`) therefore never gets CORS.

/// Cross-origin reads (Fetch standard, CORS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cors {
    /// No `Access-Control-*` header ever, preflight or not. FAPI2 SP 5.2.3-3: none on the
    /// authorization endpoint and the customer's pages; nor on any endpoint a browser has no
    /// business calling from another origin (token, PAR, introspection, revocation, the admin
    /// API).
    None,
    /// Public, credential-less documents a browser-based client legitimately reads
    /// (discovery, JWKS): `Access-Control-Allow-Origin: *`, `GET` and `HEAD` only, preflights
    /// answered, never `Access-Control-Allow-Credentials`.
    PublicRead,
}

/// Whether answers may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// `Cache-Control: no-store` and `Pragma: no-cache` on every answer, whatever the handler
    /// set (RFC 6749 §5.1, RFC 6750, RFC 7662 §5.1 and the customer's pages).
    NoStore,
    /// The handler's own lifetime (discovery, JWKS, the stylesheet); an answer without one gets
    /// `no-store`.
    Handler,
}

/// The format of the refusals the hardening layer itself makes (413, 403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// JSON with `error` and `error_description` (RFC 6749 §5.2; the admin API uses the same
    /// shape).
    Json,
    /// The customer's HTML error page.
    Page,
}

/// The policy of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointPolicy {
    /// Cross-origin reads.
    pub cors: Cors,
    /// Caching.
    pub caching: Caching,
    /// The format of refusals.
    pub format: Format,
    /// The largest request body in bytes, when tighter than `limits.max_body_bytes` (the
    /// smaller of the two applies).
    pub max_body_bytes: Option<usize>,
    /// Whether browsers' cross-site and same-site requests are refused before anything else
    /// (`Sec-Fetch-Site`, `Origin`).
    pub same_origin_only: bool,
}

/// How an entry matches a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The path exactly.
    Exact(&'static str),
    /// The path, or anything below it (`/admin` matches `/admin` and `/admin/v1/clients`, not
    /// `/administrator`).
    Tree(&'static str),
}

impl Match {
    fn matches(self, path: &str) -> bool {
        match self {
            Match::Exact(p) => path == p,
            Match::Tree(p) => path
                .strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }
}

const KIB: usize = 1024;

/// Everything not listed: no CORS, `no-store`, JSON refusals, the global body limit.
pub const DEFAULT: EndpointPolicy = EndpointPolicy {
    cors: Cors::None,
    caching: Caching::NoStore,
    format: Format::Json,
    max_body_bytes: None,
    same_origin_only: false,
};

/// A public document: readable cross-origin, cached as the handler says.
const PUBLIC_DOCUMENT: EndpointPolicy = EndpointPolicy {
    cors: Cors::PublicRead,
    caching: Caching::Handler,
    ..DEFAULT
};

/// A protocol endpoint clients call directly, with a body limit.
const fn protocol(max_body_bytes: usize) -> EndpointPolicy {
    EndpointPolicy {
        max_body_bytes: Some(max_body_bytes),
        ..DEFAULT
    }
}

/// A customer's page or form.
const PAGE: EndpointPolicy = EndpointPolicy {
    format: Format::Page,
    max_body_bytes: Some(16 * KIB),
    ..DEFAULT
};

/// The table. Body limits: a token or revocation request is a few form fields and a client
/// assertion (about 1 KiB); a pushed request may carry a signed request object with
/// `authorization_details` and `claims`; registration (software statements and JWK sets) and the
/// event feed's acknowledgements keep the global limit.
const TABLE: &[(Match, EndpointPolicy)] = &[
    (
        Match::Exact("/.well-known/openid-configuration"),
        PUBLIC_DOCUMENT,
    ),
    (
        Match::Exact("/.well-known/oauth-authorization-server"),
        PUBLIC_DOCUMENT,
    ),
    (Match::Exact("/jwks"), PUBLIC_DOCUMENT),
    (
        Match::Exact("/assets/portcullis.css"),
        EndpointPolicy {
            caching: Caching::Handler,
            ..DEFAULT
        },
    ),
    (Match::Exact("/token"), protocol(16 * KIB)),
    (Match::Exact("/par"), protocol(32 * KIB)),
    (Match::Exact("/introspect"), protocol(16 * KIB)),
    (Match::Exact("/revoke"), protocol(16 * KIB)),
    (Match::Exact("/userinfo"), protocol(16 * KIB)),
    (Match::Tree("/grants"), protocol(16 * KIB)),
    (Match::Tree("/register"), DEFAULT),
    (Match::Exact("/events"), DEFAULT),
    (Match::Tree("/authorize"), PAGE),
    (Match::Tree("/account"), PAGE),
    (Match::Exact("/logout"), PAGE),
    (
        Match::Tree("/admin"),
        EndpointPolicy {
            same_origin_only: true,
            ..DEFAULT
        },
    ),
];

/// The policy of the endpoint at `path` (the raw request path, without the query).
#[must_use]
pub fn policy_of(path: &str) -> EndpointPolicy {
    TABLE
        .iter()
        .find(|(m, _)| m.matches(path))
        .map_or(DEFAULT, |(_, policy)| *policy)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_discovery_and_jwks_are_readable_cross_origin() {
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
            "/jwks",
        ] {
            assert_eq!(policy_of(path).cors, Cors::PublicRead, "{path}");
            assert_eq!(policy_of(path).caching, Caching::Handler, "{path}");
        }
        // SP 5.2.3-3: never the authorization endpoint or the customer's pages.
        for path in [
            "/authorize",
            "/authorize/consent",
            "/account",
            "/logout",
            "/token",
            "/par",
            "/introspect",
            "/revoke",
            "/userinfo",
            "/register/abc",
            "/events",
            "/grants/g1",
            "/admin/v1/clients",
            "/jwks/",
            "/JWKS",
            "/.well-known/openid-configuration/x",
            "/nowhere",
        ] {
            assert_eq!(policy_of(path).cors, Cors::None, "{path}");
            assert_eq!(policy_of(path).caching, Caching::NoStore, "{path}");
        }
    }

    #[test]
    fn trees_match_whole_segments_only() {
        assert!(policy_of("/admin").same_origin_only);
        assert!(policy_of("/admin/v1/openapi.json").same_origin_only);
        assert!(!policy_of("/administrator").same_origin_only);
        assert_eq!(policy_of("/authorize/login").format, Format::Page);
        assert_eq!(policy_of("/authorizex").format, Format::Json);
    }

    #[test]
    fn token_and_par_are_tighter_than_the_default() {
        assert_eq!(policy_of("/token").max_body_bytes, Some(16 * KIB));
        assert_eq!(policy_of("/par").max_body_bytes, Some(32 * KIB));
        assert_eq!(policy_of("/register").max_body_bytes, None);
    }
}

//! Why a request's token was refused, and how to say so on the wire: RFC 6750 §3 for `Bearer`
//! tokens and RFC 9449 §7.1 for DPoP-bound ones. The description names the rule that failed and
//! never repeats the token.

use http::{HeaderName, HeaderValue, StatusCode};

/// The scheme a challenge is issued for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RFC 6750: `Bearer` (certificate-bound tokens, RFC 8705, use it too).
    Bearer,
    /// RFC 9449: `DPoP`.
    Dpop,
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// No credentials at all (RFC 6750 §3.1: the challenge carries no error code).
    #[error("the request carries no access token")]
    Missing,
    /// The request is malformed: two `Authorization` headers, an unknown scheme, a token in the
    /// query string (`invalid_request`, 400).
    #[error("{0}")]
    InvalidRequest(String),
    /// The token is expired, revoked, malformed, not for this API, or its binding does not hold
    /// (`invalid_token`, 401).
    #[error("{description}")]
    InvalidToken {
        /// The scheme the token was presented with, or is bound to.
        scheme: Scheme,
        /// What failed.
        description: String,
    },
    /// The DPoP proof is invalid or replayed (`invalid_dpop_proof`, 401, RFC 9449 §7.1).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// This API requires a DPoP nonce and the proof did not carry the current one
    /// (`use_dpop_nonce`, 401, with a `DPoP-Nonce` header; RFC 9449 §9).
    #[error("a fresh DPoP nonce is required (RFC 9449 §9)")]
    UseDpopNonce {
        /// The nonce the client must use.
        nonce: String,
    },
    /// The token is valid but does not allow this request (`insufficient_scope`, 403).
    #[error("{description}")]
    InsufficientScope {
        /// The scheme the token was presented with.
        scheme: Scheme,
        /// The scopes the request needs, space separated (RFC 6750 §3 `scope`), if the rule is a
        /// scope rule.
        scope: Option<String>,
        /// What was missing.
        description: String,
    },
    /// The authorization server could not be asked (JWKS, introspection or the revocation feed
    /// is unreachable) and this API fails closed (503).
    #[error("{0}")]
    Unavailable(String),
}

impl VerifyError {
    /// `invalid_token` for a token presented with `scheme`.
    #[must_use]
    pub fn invalid_token(scheme: Scheme, description: impl Into<String>) -> Self {
        VerifyError::InvalidToken {
            scheme,
            description: description.into(),
        }
    }

    /// `insufficient_scope` naming the scopes the request needs.
    #[must_use]
    pub fn insufficient_scope(scheme: Scheme, scope: Option<String>, description: String) -> Self {
        VerifyError::InsufficientScope {
            scheme,
            scope,
            description,
        }
    }

    /// The HTTP status of the answer.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            VerifyError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            VerifyError::Missing
            | VerifyError::InvalidToken { .. }
            | VerifyError::InvalidDpopProof(_)
            | VerifyError::UseDpopNonce { .. } => StatusCode::UNAUTHORIZED,
            VerifyError::InsufficientScope { .. } => StatusCode::FORBIDDEN,
            VerifyError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC error code, when there is one.
    #[must_use]
    pub fn code(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing => None,
            VerifyError::InvalidRequest(_) => Some("invalid_request"),
            VerifyError::InvalidToken { .. } => Some("invalid_token"),
            VerifyError::InvalidDpopProof(_) => Some("invalid_dpop_proof"),
            VerifyError::UseDpopNonce { .. } => Some("use_dpop_nonce"),
            VerifyError::InsufficientScope { .. } => Some("insufficient_scope"),
            VerifyError::Unavailable(_) => Some("temporarily_unavailable"),
        }
    }

    /// The headers of the answer: `WWW-Authenticate` challenges (RFC 6750 §3, RFC 9449 §7.1),
    /// `DPoP-Nonce` when a nonce is required, and `Retry-After` when the authorization server
    /// is unreachable. `algs` are the DPoP algorithms this API accepts.
    #[must_use]
    pub fn headers(&self, realm: &str, algs: &str) -> Vec<(HeaderName, HeaderValue)> {
        let mut headers = Vec::new();
        let description = self.to_string();
        let mut push = |value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.push((http::header::WWW_AUTHENTICATE, value));
            }
        };
        let bearer = |extra: &str| format!("Bearer realm=\"{}\"{extra}", quote(realm));
        let dpop = |extra: &str| format!("DPoP realm=\"{}\", algs=\"{algs}\"{extra}", quote(realm));
        let error = |code: &str| {
            format!(
                ", error=\"{code}\", error_description=\"{}\"",
                quote(&description)
            )
        };
        match self {
            VerifyError::Missing => {
                push(bearer(""));
                push(dpop(""));
            }
            VerifyError::InvalidRequest(_) => {
                push(bearer(&error("invalid_request")));
                push(dpop(&error("invalid_request")));
            }
            VerifyError::InvalidToken { scheme, .. } => match scheme {
                Scheme::Bearer => push(bearer(&error("invalid_token"))),
                Scheme::Dpop => push(dpop(&error("invalid_token"))),
            },
            VerifyError::InvalidDpopProof(_) => push(dpop(&error("invalid_dpop_proof"))),
            VerifyError::UseDpopNonce { nonce } => {
                push(dpop(&error("use_dpop_nonce")));
                if let Ok(value) = HeaderValue::from_str(nonce) {
                    headers.push((HeaderName::from_static("dpop-nonce"), value));
                }
            }
            VerifyError::InsufficientScope { scheme, scope, .. } => {
                let scope = scope
                    .as_deref()
                    .map(|s| format!(", scope=\"{}\"", quote(s)))
                    .unwrap_or_default();
                let extra = format!("{}{scope}", error("insufficient_scope"));
                match scheme {
                    Scheme::Bearer => push(bearer(&extra)),
                    Scheme::Dpop => push(dpop(&extra)),
                }
            }
            VerifyError::Unavailable(_) => {
                headers.push((http::header::RETRY_AFTER, HeaderValue::from_static("5")));
            }
        }
        headers
    }
}

/// An `auth-param` quoted-string value (RFC 9110 §5.6.4): backslash and double quote escaped,
/// and anything outside printable ASCII replaced, so a description can never break the header.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenges(error: &VerifyError) -> Vec<String> {
        error
            .headers("bank", "ES256 PS256")
            .into_iter()
            .map(|(name, value)| format!("{name}: {}", value.to_str().unwrap()))
            .collect()
    }

    #[test]
    fn rfc_6750_3_1_a_request_without_a_token_gets_both_challenges_without_an_error_code() {
        assert_eq!(VerifyError::Missing.status(), 401);
        assert_eq!(
            challenges(&VerifyError::Missing),
            [
                "www-authenticate: Bearer realm=\"bank\"",
                "www-authenticate: DPoP realm=\"bank\", algs=\"ES256 PS256\""
            ]
        );
    }

    #[test]
    fn rfc_9449_7_1_errors_use_the_scheme_of_the_token_and_escape_the_description() {
        let error = VerifyError::invalid_token(Scheme::Dpop, "the \"jti\" was \\ revoked\n");
        assert_eq!(
            challenges(&error),
            [
                "www-authenticate: DPoP realm=\"bank\", algs=\"ES256 PS256\", error=\"invalid_token\", error_description=\"the \\\"jti\\\" was \\\\ revoked?\""
            ]
        );
        let nonce = VerifyError::UseDpopNonce {
            nonce: "n-1".into(),
        };
        let got = challenges(&nonce);
        assert!(got[0].contains("error=\"use_dpop_nonce\""), "{got:?}");
        assert_eq!(got[1], "dpop-nonce: n-1");
        let scope = VerifyError::insufficient_scope(
            Scheme::Bearer,
            Some("accounts".into()),
            "the token lacks the scope accounts".into(),
        );
        assert_eq!(scope.status(), 403);
        assert!(challenges(&scope)[0].ends_with("scope=\"accounts\""));
    }
}

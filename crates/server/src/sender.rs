//! Sender constraint at the authorization server: which key a token request proves possession
//! of (a DPoP proof, RFC 9449 §4.3, or the mTLS client certificate, RFC 8705 §3), and the check
//! that a request carrying one of our own access tokens (the admin API) comes from its holder.
//! Every DPoP proof `jti` is recorded in the shared replay store until the proof is too old anyway,
//! so a proof works once across replicas (checklist #31).

use std::sync::Arc;

use http::HeaderMap;
use portcullis_core::access_token::Confirmation;
use portcullis_core::dpop::{self, DpopPolicy, DpopProof, DpopRequest};
use portcullis_core::dpop_nonce::DpopNonces;
use portcullis_core::error::{ErrorCode, OAuthError};
use portcullis_core::store::{FirstUse, ReplayKey, ReplayKind, Store};
use time::OffsetDateTime;

use crate::tls::ListenerKind;
use crate::tls::client_cert::{ClientCertificate, ConnectionInfo};

/// The `DPoP` header.
pub const DPOP: &str = "dpop";

/// What a request presents to prove possession of a key.
#[derive(Debug, Clone, Copy)]
pub struct Possession<'a> {
    /// The request headers (for `DPoP`).
    pub headers: &'a HeaderMap,
    /// The HTTP method.
    pub method: &'a str,
    /// The URL the request was sent to, as published (`htu`).
    pub url: &'a str,
    /// The client certificate, if any.
    pub certificate: Option<&'a ClientCertificate>,
    /// The server's DPoP nonces, when it requires them.
    pub nonces: Option<&'a DpopNonces>,
}

/// Why a proof of possession failed: the protocol error, or a store failure.
#[derive(Debug, thiserror::Error)]
pub enum PossessionError {
    /// Refused: `invalid_dpop_proof`, `invalid_request` or `use_dpop_nonce`.
    #[error("{0}")]
    Refused(OAuthError),
    /// The replay store failed.
    #[error("replay store: {0}")]
    Store(#[from] portcullis_core::store::StoreError),
}

/// The published URL of `path` on the listener a request came in on.
#[must_use]
pub fn request_url(urls: &crate::app::Urls, info: Option<&ConnectionInfo>, path: &str) -> String {
    match info.map(|i| i.listener) {
        Some(ListenerKind::Mtls) => urls.mtls_endpoint(path),
        _ => urls.endpoint(path),
    }
}

fn dpop_headers(headers: &HeaderMap) -> Result<Vec<&str>, PossessionError> {
    headers
        .get_all(DPOP)
        .iter()
        .map(|v| {
            v.to_str().map_err(|_| {
                PossessionError::Refused(OAuthError::new(
                    ErrorCode::InvalidDpopProof,
                    "the DPoP header is not ASCII",
                ))
            })
        })
        .collect()
}

/// Validates the request's DPoP proof (with `ath` when it carries `access_token`) and records its
/// `jti` as used.
///
/// # Errors
/// [`PossessionError::Refused`] with `invalid_dpop_proof`, or [`PossessionError::Store`].
pub async fn check_dpop(
    store: &Arc<dyn Store>,
    possession: &Possession<'_>,
    access_token: Option<&str>,
    now: OffsetDateTime,
) -> Result<DpopProof, PossessionError> {
    let headers = dpop_headers(possession.headers)?;
    let accepted = possession.nonces.map(|n| n.accepted(now));
    let request = DpopRequest {
        headers: &headers,
        method: possession.method,
        url: possession.url,
        access_token,
        accepted_nonces: accepted.as_ref().map(|a| a.as_slice()),
    };
    let proof = dpop::validate(&request, &DpopPolicy::default(), now)
        .map_err(|e| PossessionError::Refused(e.into()))?;
    let key = ReplayKey {
        kind: ReplayKind::DpopProof,
        issuer: &proof.jkt,
        id: &proof.jti,
    };
    match store.replay().record(key, proof.replay_until, now).await? {
        FirstUse::First => Ok(proof),
        FirstUse::Replayed => Err(PossessionError::Refused(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "the DPoP proof has been used before: its jti is single-use (RFC 9449 §11.1)",
        ))),
    }
}

/// What a token request binds its token to: the DPoP key when it sends a proof, else the client
/// certificate. A request with neither gets no token (FAPI2 SP 5.3.2.1-4, checklist #28); a client
/// registered for one kind of binding must use it (RFC 9449 §5.2, RFC 8705 §3).
///
/// # Errors
/// [`PossessionError::Refused`] naming the rule, or [`PossessionError::Store`].
pub async fn token_binding(
    store: &Arc<dyn Store>,
    possession: &Possession<'_>,
    require_dpop: bool,
    require_certificate: bool,
    now: OffsetDateTime,
) -> Result<Confirmation, PossessionError> {
    let refuse = |description: &str| {
        PossessionError::Refused(OAuthError::new(ErrorCode::InvalidRequest, description))
    };
    if possession.headers.contains_key(DPOP) {
        if require_certificate {
            return Err(refuse(
                "this client is registered for certificate-bound access tokens (tls_client_certificate_bound_access_tokens): send the request without DPoP on the mTLS endpoint",
            ));
        }
        let proof = check_dpop(store, possession, None, now).await?;
        return Ok(Confirmation::DpopKey { jkt: proof.jkt });
    }
    if require_dpop {
        return Err(PossessionError::Refused(OAuthError::new(
            ErrorCode::InvalidDpopProof,
            "this client is registered for DPoP-bound access tokens (dpop_bound_access_tokens): a DPoP proof is required (RFC 9449 §5.2)",
        )));
    }
    match possession.certificate {
        Some(certificate) => Ok(Confirmation::Certificate {
            x5t_s256: certificate.x5t_s256().to_owned(),
        }),
        None => Err(refuse(
            "access tokens are sender-constrained: send a DPoP proof, or call the mtls_endpoint_aliases endpoint with a client certificate (FAPI2 SP 5.3.2.1-4)",
        )),
    }
}

#![warn(missing_docs)]
//! `portcullis-verify`: what a bank's resource server links to accept access tokens issued by
//! the Portcullis authorization server, correctly by default. Of our crates it depends on
//! `portcullis-jose` alone.
//!
//! # What it checks
//! [`Verifier::verify`] takes a request's `Authorization` and `DPoP` headers, its method and URL
//! and the client certificate of its connection, and returns the verified [`Principal`] or a
//! [`VerifyError`] ready to answer with:
//! - **JWT access tokens** (RFC 9068): `typ` `at+jwt`, an allowed algorithm (PS256, ES256,
//!   EdDSA), the signature against the authorization server's JWKS (read from its metadata,
//!   cached, fetched again on an unknown `kid` at most every few seconds and whenever its
//!   `Cache-Control` max-age runs out), `iss`, `aud` (this API's resource identifier),
//!   `exp`/`nbf`/`iat` within a small skew, `sub`, `client_id`, `jti`.
//! - **The sender constraint**: `cnf.x5t#S256` must match the certificate on this connection (or
//!   from a trusted proxy's `Client-Cert` header); `cnf.jkt` needs the `DPoP` scheme and a proof
//!   by that key for this method and URL, fresh, with the token's hash (`ath`), never seen before
//!   (a replay cache, shareable between replicas through [`dpop::ReplayCache`]), and the API's
//!   nonce when it requires one (RFC 9449 §4.3, §7, §9). A bound token presented as plain
//!   `Bearer` is refused; so is an unbound token unless allowed.
//! - **Opaque tokens** by introspection (RFC 7662, optionally RFC 9701 signed answers), with a
//!   cache bounded by each token's `exp`; or every token, JWTs too, with
//!   [`IntrospectionMode::Always`].
//! - **Revocation**: the authorization server's revocation event feed (RFC 8936 poll of RFC 8417
//!   SETs) is read in the background with this API's own sender-constrained token. Revoked grants
//!   and tokens are refused at once and live WebSocket sessions are closed. When the feed has not
//!   been heard from for [`FeedConfig::max_lag`], nothing cached is trusted: each token is
//!   introspected ([`LagPolicy::Introspect`]) or refused with 503 ([`LagPolicy::Refuse`]), and
//!   the logs and [`Verifier::metrics`] say so.
//!
//! Then the handler decides what the token allows: [`Principal::require_scopes`] and
//! [`Principal::require_detail`] (an `authorization_details` entry of a type, with actions,
//! locations, accounts), answered as `insufficient_scope` (RFC 6750 §3.1).
//!
//! # Features
//! - `axum`: [`axum::Authenticated`] (an extractor yielding the verified principal),
//!   [`axum::ApiAuth::layer`] (middleware refusing requests without a good token),
//!   [`axum::Rejection`] (the RFC 6750 / RFC 9449 answer), and [`ws::SessionGuard`] for WebSocket
//!   sessions that must end when their token dies.
//! - `server`: [`tls`], the HTTPS listener of the authorization server (client certificates
//!   requested, not required, and handed to each request).
//! - `cli`: [`cli::ApiArgs`], the command-line options every resource server built on this crate
//!   has (issuer, resource, server certificate, this API's own client, the revocation feed's
//!   policy, metrics listener, log format; also from `RESOURCE_SERVER_*` environment variables),
//!   and what turns them into a [`VerifierConfig`], the HTTPS identity and the bound listeners
//!   (with `server`), and the metrics routes (with `axum`).
//!
//! # Example
//! An accounts API on its own TLS listener, for tokens whose `aud` is
//! `https://api.bank.example/accounts`, authenticating to the authorization server with its
//! certificate to read the revocation feed and introspect:
//! ```no_run
//! # #[cfg(all(feature = "axum", feature = "server"))]
//! # mod example {
//! use axum::routing::get;
//! use axum::{Json, Router};
//! use portcullis_verify::axum::{ApiAuth, Authenticated};
//! use portcullis_verify::tls::{self, ConnectionLimits, ServerIdentity};
//! use portcullis_verify::{
//!     ClientAuth, ClientCredentials, ClientIdentityPem, DetailRequirement, Verifier,
//!     VerifierConfig, VerifyError,
//! };
//! use serde_json::{Value, json};
//!
//! /// `GET /accounts/{id}/balances`: the token must allow reading this account's balances.
//! async fn balances(
//!     token: Authenticated,
//!     axum::extract::Path(id): axum::extract::Path<String>,
//! ) -> Result<Json<Value>, portcullis_verify::axum::Rejection> {
//!     let auth = |e: VerifyError| token.reject(e);
//!     token.require_scopes(&["accounts"]).map_err(auth)?;
//!     let account = [id.as_str()];
//!     let wanted = DetailRequirement::of_type("account_information")
//!         .actions(&["read_balances"])
//!         .accounts(&account);
//!     token.require_detail(&wanted).map_err(auth)?;
//!     Ok(Json(json!({"account_id": id, "customer": token.subject, "balances": []})))
//! }
//!
//! pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
//!     let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
//!     let mut config = VerifierConfig::new(
//!         "https://as.bank.example",
//!         "https://api.bank.example/accounts",
//!     );
//!     config.client = Some(ClientCredentials {
//!         client_id: "accounts-api".into(),
//!         auth: ClientAuth::Certificate(ClientIdentityPem::from_pem(
//!             &std::fs::read("accounts-api-client.pem")?,
//!             &std::fs::read("accounts-api-client-key.pem")?,
//!         )?),
//!     });
//!     let verifier = Verifier::new(config).await?;
//!     let auth = ApiAuth::new(verifier, "https://api.bank.example");
//!     let router = Router::new()
//!         .route("/accounts/{id}/balances", get(balances))
//!         .with_state(auth);
//!     let identity = ServerIdentity::from_pem_files(
//!         "api.pem".as_ref(),
//!         "api-key.pem".as_ref(),
//!     )?;
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     let addr = std::net::SocketAddr::from(([0, 0, 0, 0], 8443));
//!     tls::serve_api(addr, &identity, router, ConnectionLimits::default(), shutdown).await?;
//!     Ok(())
//! }
//! # }
//! ```
//! `examples/bank-api` and `examples/market-stream` in the repository are complete services
//! built this way.

#[cfg(feature = "axum")]
pub mod axum;
pub mod binding;
mod cache;
pub mod certificate;
#[cfg(feature = "cli")]
pub mod cli;
mod client;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod error;
pub mod feed;
mod http;
mod jwks;
pub mod metrics;
pub mod principal;
pub mod token;
mod verifier;
#[cfg(feature = "axum")]
pub mod ws;

pub use binding::{Binding, BindingError};
pub use clock::{Clock, SystemClock};
pub use config::{
    ClientAuth, ClientCredentials, FeedConfig, IntrospectionMode, LagPolicy, SetupError,
    VerifierConfig,
};
pub use error::{Scheme, VerifyError};
pub use feed::Revocation;
pub use http::{ClientIdentityPem, provider};
pub use metrics::{FeedState, MetricsSnapshot};
pub use principal::{DetailRequirement, Principal, TokenSource};
pub use verifier::{TokenRequest, Verifier};
#[cfg(feature = "server")]
pub mod tls;

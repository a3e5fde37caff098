//! The example resource servers against the real authorization server: `bank-api` (REST) and
//! `market-stream` (WebSocket), each started as its own process over real TLS with a server
//! certificate from a test CA, trusting the authorization server's development CA, and acting as
//! a `tls_client_auth` client of its own (introspection, the revocation event feed). Providers
//! get their tokens through the pages as in [`crate::flow`] and present them, bound to their
//! certificate or to a DPoP key, to the examples.
//!
//! - [`bank_api`]: the granted account only, to the holder of the bound token; payments within
//!   the consent, once.
//! - [`feed`]: the revocation feed cut off: `bank-api` falls back to introspection and sees a
//!   revocation at once.
//! - [`market_stream`]: ticks for the instruments the scope allows; the session closed with 4401
//!   when the consent is withdrawn or the token expires, kept open by an in-band renewal.
//! - [`jwks`]: a key rotation at the authorization server while requests flow: none fails.
//!
//! Waits are deadlines on polled conditions, never fixed sleeps.

mod bank_api;
mod feed;
mod harness;
mod jwks;
mod market_stream;
mod websocket;

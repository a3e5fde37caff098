//! `portcullis-verify`: what a bank's resource server links to accept Portcullis access tokens.
//! It depends on `portcullis-jose` alone, so an API pulls in little.
//!
//! So far it holds the sender-constraint checks ([`binding`]): a token bound with `cnf.x5t#S256`
//! (RFC 8705 §3) must arrive over a connection presenting that certificate; one bound with
//! `cnf.jkt` (RFC 9449 §6) must come with a DPoP proof by that key. Token verification against the
//! JWKS, the axum extractor and the WebSocket guard build on these.

pub mod binding;

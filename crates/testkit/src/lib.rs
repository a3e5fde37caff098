//! `portcullis-testkit`: fixtures for Portcullis' tests, never linked into the server. Throwaway
//! databases ([`db`]), certificates ([`certs`]), the real `portcullis` binary started on an
//! ephemeral port over real TLS ([`app`]), and the example resource servers ([`example`]).
//!
//! Test support may fail loudly: a fixture that cannot be set up is a broken test environment,
//! and a panic with the reason is the clearest report.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "test fixtures fail loudly by design"
)]

pub mod app;
pub mod certs;
pub mod db;
pub mod example;

/// Installs the aws-lc-rs rustls provider for the test process (DESIGN.md, TLS). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

//! End-to-end tests: the real `portcullis` binary, started on ephemeral ports with a fresh
//! database, reached over real TLS by independent clients (reqwest, a raw rustls client, and the
//! `jsonwebtoken` crate for signatures). Time moves through the server's test-only clock control,
//! never by sleeping.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod abuse_limits;
mod abuse_login;
mod admin;
mod audit;
mod browser;
mod clients;
mod config;
mod discovery;
mod events;
mod flow;
mod hardening;
mod keys;
mod lifecycle;
mod oauth;
mod observability;
mod registration;
mod resource_servers;
mod rp;
mod support;
mod tls;
mod users;

//! `portcullis-server`: the axum HTTP front end of Portcullis, its TLS and mTLS listeners,
//! configuration, the signing-key service and the `portcullis` command line.

pub mod app;
pub mod audit;
pub mod cli;
pub mod client_auth;
pub mod config;
pub mod feed;
pub mod form;
pub mod fs;
pub mod hardening;
pub mod housekeeping;
pub mod jwks_fetch;
pub mod keys;
pub mod liveness;
pub mod login_throttle;
pub mod metrics;
pub mod passwords;
pub mod protected;
pub mod ratelimit;
pub mod registration;
pub mod registry;
pub mod resources;
pub mod revocation;
pub mod routes;
pub mod sender;
pub mod serve;
pub mod source_ip;
pub mod telemetry;
pub mod tls;
pub mod users;

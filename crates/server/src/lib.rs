//! `portcullis-server`: the axum HTTP front end of Portcullis, its TLS and mTLS listeners,
//! configuration, the signing-key service and the `portcullis` command line.

pub mod app;
pub mod cli;
pub mod client_auth;
pub mod config;
pub mod feed;
pub mod form;
pub mod fs;
pub mod housekeeping;
pub mod jwks_fetch;
pub mod keys;
pub mod liveness;
pub mod metrics;
pub mod passwords;
pub mod protected;
pub mod registration;
pub mod registry;
pub mod resources;
pub mod revocation;
pub mod routes;
pub mod sender;
pub mod serve;
pub mod telemetry;
pub mod tls;
pub mod users;

//! Serving HTTPS the way the Portcullis authorization server does (DESIGN.md, TLS), for a
//! resource server that terminates TLS itself. Feature `server`.
//!
//! rustls on aws-lc-rs, TLS 1.3 and TLS 1.2 with the four ECDHE-AES-GCM suites only (FAPI2 SP
//! 5.2.2-1, BCP 195), HTTP/2 and HTTP/1.1 by ALPN. A [`ListenerKind::Mtls`] listener asks for a
//! client certificate without requiring one and accepts any certificate whose handshake signature
//! verifies ([`AnyClientCertificate`]); a [`ListenerKind::Main`] listener never asks. Each
//! request carries a [`ConnectionInfo`] extension and, when a certificate was presented (or
//! forwarded by a trusted proxy, see [`crate::certificate::resolve`]), an
//! `Arc<`[`ClientCertificate`](crate::certificate::ClientCertificate)`>` extension, which the
//! token checks compare with the token's `cnf.x5t#S256`.
//!
//! The rustls aws-lc-rs provider should be installed as the process default first thing in
//! `main` (`rustls::crypto::aws_lc_rs::default_provider().install_default()`); the listener's own
//! configuration uses [`provider`] whatever the default is.
//!
//! # Serving an API
//! [`serve_api`] is the whole thing in one call:
//! ```no_run
//! # async fn run(router: axum::Router) -> Result<(), portcullis_verify::tls::TlsError> {
//! use portcullis_verify::tls::{self, ConnectionLimits, ServerIdentity};
//!
//! let identity = ServerIdentity::from_pem_files("api.pem".as_ref(), "api-key.pem".as_ref())?;
//! let shutdown = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! tls::serve_api(
//!     std::net::SocketAddr::from(([0, 0, 0, 0], 8443)),
//!     &identity,
//!     router,
//!     ConnectionLimits::default(),
//!     shutdown,
//! )
//! .await
//! # }
//! ```
//! To learn the port of a listener bound to port 0, to serve several listeners, or to count
//! connections and failed handshakes, compose the parts: [`TlsListener::bind`], then [`serve`]
//! with a [`ListenerObserver`] and a `tokio::sync::watch` shutdown signal.

mod listener;
#[cfg(test)]
mod listener_tests;
mod verifier;

use std::path::Path;
use std::sync::Arc;

use rustls::server::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use listener::{
    ConnectionInfo, ConnectionLimits, ListenerObserver, NoObserver, TlsListener, serve, serve_api,
};
pub use verifier::AnyClientCertificate;

// The listeners' crypto provider is the crate's one (also `portcullis_verify::provider`).
pub use crate::http::provider;

/// The server's certificate chain and private key.
pub struct ServerIdentity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServerIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerIdentity")
            .field("chain_len", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{key}: {message}")]
    File {
        /// Which file, by its conventional configuration key: `tls.cert_file` (the certificate
        /// chain) or `tls.key_file` (the private key).
        key: &'static str,
        /// What went wrong, with the file's path.
        message: String,
    },
    /// rustls refused the configuration (for example, the key does not match the certificate).
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A certificate or key could not be generated (never by this crate; for callers that make
    /// their own, such as a development certificate authority).
    #[error("{0}")]
    Generate(String),
}

impl ServerIdentity {
    /// Reads a PEM chain (leaf first) and a PEM private key (PKCS#8, PKCS#1 or SEC 1).
    ///
    /// # Errors
    /// [`TlsError::File`] naming `tls.cert_file` or `tls.key_file`.
    pub fn from_pem_files(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let file_error =
            |key: &'static str, path: &Path, e: &dyn std::fmt::Display| TlsError::File {
                key,
                message: format!("{}: {e}", path.display()),
            };
        let cert_pem =
            std::fs::read(cert_file).map_err(|e| file_error("tls.cert_file", cert_file, &e))?;
        let chain = rustls_pemfile::certs(&mut cert_pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error("tls.cert_file", cert_file, &e))?;
        if chain.is_empty() {
            return Err(file_error(
                "tls.cert_file",
                cert_file,
                &"no PEM certificate in the file",
            ));
        }
        let key_pem = zeroize::Zeroizing::new(
            std::fs::read(key_file).map_err(|e| file_error("tls.key_file", key_file, &e))?,
        );
        let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
            .map_err(|e| file_error("tls.key_file", key_file, &e))?
            .ok_or_else(|| {
                file_error("tls.key_file", key_file, &"no PEM private key in the file")
            })?;
        Ok(Self { chain, key })
    }
}

/// Which kind of listener a connection came in on: whether it asks for a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// No client certificate is requested (a request would make browsers show a certificate
    /// picker).
    Main,
    /// A client certificate is requested, not required.
    Mtls,
}

impl ListenerKind {
    /// A short label for logs and metrics: `main` or `mtls`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Main => "main",
            ListenerKind::Mtls => "mtls",
        }
    }
}

/// Builds the rustls configuration of one listener: [`provider`], TLS 1.3 and 1.2, ALPN `h2` and
/// `http/1.1`, the server's cipher-suite order, and for [`ListenerKind::Mtls`] the
/// [`AnyClientCertificate`] verifier.
///
/// # Errors
/// [`TlsError::Rustls`] if rustls refuses the certificate or key.
pub fn server_config(
    identity: &ServerIdentity,
    kind: ListenerKind,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match kind {
        ListenerKind::Main => builder.with_no_client_auth(),
        ListenerKind::Mtls => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate::new(&provider)))
        }
    };
    let mut config = builder.with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // RFC 9325 §4.2: the server's cipher-suite preference (AES-256-GCM first) wins.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

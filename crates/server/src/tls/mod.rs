//! TLS for both listeners (DESIGN.md, TLS). The generic parts live in `portcullis_verify`, which
//! resource servers share with us, and are re-exported here under their old paths: the provider
//! (TLS 1.3, and TLS 1.2 with the four ECDHE-AES-GCM suites only), the server configuration, the
//! accept loop, the any-certificate verifier, and the client certificate as a request extension.
//! The main listener never asks for a client certificate; the mTLS listener asks but does not
//! require one; chain and subject checks happen per client in the application. What is ours
//! alone is the development CA ([`dev_ca`]).

pub mod dev_ca;

pub use portcullis_verify::tls::{
    AnyClientCertificate, ListenerKind, ServerIdentity, TlsError, provider, server_config,
};

/// The client certificate a request came with (see [`portcullis_verify::certificate`]).
pub mod client_cert {
    pub use portcullis_verify::certificate::{
        CLIENT_CERT_HEADER, CertificateSource, ClientCertificate, is_trusted_proxy,
        parse_client_cert_header, resolve,
    };
    pub use portcullis_verify::tls::ConnectionInfo;
}

/// The accept loop (see [`portcullis_verify::tls::serve`]); [`crate::metrics::Metrics`] is its
/// observer.
pub mod listener {
    pub use portcullis_verify::tls::{
        ConnectionLimits, ListenerObserver, NoObserver, TlsListener, serve,
    };
}

//! Client certificates: the RFC 9440 `Client-Cert` header a trusted proxy sends, and the X.509
//! checks of RFC 8705 the server makes of a certificate from the header or a TLS handshake
//! (subject DN, SANs, the key against the client's JWK set).

use portcullis_server::client_auth::x509::{self, SanKind};
use portcullis_verify::certificate::{
    CertificateSource, ClientCertificate, parse_client_cert_header,
};
use rustls_pki_types::CertificateDer;

use crate::fixture;

/// The certificate [`subject_dn`] matches registered names against: subject
/// `CN=client.example, OU=Payments, O=TPP Ltd, C=GB` with `UID` `tpp-app-1` and SANs of every
/// kind (`client.example`, `https://tpp.example/app`, `192.0.2.7`, `ops@tpp.example`). Made by the
/// corpus generator (`crates/fuzz-targets/tests/corpus.rs`).
const REGISTERED_CERTIFICATE: &[u8] = include_bytes!("keys/client-cert.der");

const KINDS: [SanKind; 4] = [SanKind::Dns, SanKind::Uri, SanKind::Ip, SanKind::Email];

/// The server's checks of a certificate, given as DER.
fn certificate_checks(der: &[u8]) {
    let Some(cert) = x509::parse(der) else { return };
    let _ = x509::subject_matches(&cert, "CN=client.example,OU=Payments,O=TPP Ltd,C=GB");
    let _ = x509::subject_has_attribute(&cert, "UID", "tpp-app-1");
    let _ = x509::subject_has_attribute(&cert, "CN", "tpp-app-1");
    for (kind, registered) in KINDS.into_iter().zip([
        "client.example",
        "https://tpp.example/app",
        "192.0.2.7",
        "ops@tpp.example",
    ]) {
        let _ = x509::san_matches(&cert, kind, registered);
    }
    if let Some(f) = fixture::fixture() {
        let _ = x509::key_in_jwks(der, &cert, &f.client_jwks);
    }
}

/// A `Client-Cert` header value (RFC 9440 §2.1: `:base64:`), and the same bytes as a DER
/// certificate straight from a handshake; whatever parses goes through the server's checks.
///
/// Invariants: a certificate the header yields is its base64 decoded, and its thumbprint is the
/// SHA-256 of that DER.
pub fn client_cert(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(der) = parse_client_cert_header(text)
    {
        let certificate = ClientCertificate::new(der.clone(), CertificateSource::TrustedProxy);
        assert_eq!(
            certificate.x5t_s256(),
            portcullis_jose::x5t_sha256(der.as_ref()),
            "x5t#S256"
        );
        certificate_checks(der.as_ref());
    }
    let der = CertificateDer::from(data.to_vec());
    let _ = ClientCertificate::new(der, CertificateSource::Handshake);
    certificate_checks(data);
}

/// A registered certificate name (`tls_client_auth_subject_dn` and the SAN members, RFC 8705
/// §2.1.2, as a client registers them) matched against a fixed certificate.
///
/// Invariants: a match is the same every time.
pub fn subject_dn(data: &[u8]) {
    let Ok(registered) = std::str::from_utf8(data) else {
        return;
    };
    let Some(cert) = x509::parse(REGISTERED_CERTIFICATE) else {
        return;
    };
    let first = x509::subject_matches(&cert, registered);
    assert_eq!(first, x509::subject_matches(&cert, registered), "unstable");
    let _ = x509::subject_has_attribute(&cert, "UID", registered);
    for kind in KINDS {
        let _ = x509::san_matches(&cert, kind, registered);
    }
}

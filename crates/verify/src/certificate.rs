//! The client certificate a request came with, as a typed request extension. Handlers read an
//! `Arc<`[`ClientCertificate`]`>` (with its RFC 8705 `x5t#S256`) and never the TLS session or a
//! header. The TLS listener of [`crate::tls`] (feature `server`) inserts it; a resource server
//! with its own listener can build one with [`ClientCertificate::new`] and insert it itself.
//!
//! Behind a TLS-terminating proxy the certificate arrives in the RFC 9440 `Client-Cert` header.
//! That header is believed only from the configured proxy addresses; from anyone else it is
//! ignored and logged, and [`resolve`] removes it from every request so no handler can read it raw.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use ipnet::IpNet;
use rustls_pki_types::CertificateDer;

/// The RFC 9440 header name.
pub const CLIENT_CERT_HEADER: &str = "client-cert";

/// Where a certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateSource {
    /// This server's own TLS handshake.
    Handshake,
    /// A trusted proxy's `Client-Cert` header (RFC 9440).
    TrustedProxy,
}

/// A client certificate presented with a request, with its `x5t#S256` thumbprint.
///
/// Nothing here says the certificate is trustworthy: the TLS handshake (or the proxy) proved only
/// that the client holds its private key. Compare [`Self::x5t_s256`] with a token's
/// `cnf.x5t#S256` (RFC 8705 §3), or check the chain yourself.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: CertificateDer<'static>,
    intermediates: Vec<CertificateDer<'static>>,
    x5t_s256: String,
    source: CertificateSource,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.x5t_s256)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ClientCertificate {
    /// Wraps a DER certificate and computes its thumbprint.
    #[must_use]
    pub fn new(der: CertificateDer<'static>, source: CertificateSource) -> Self {
        let x5t_s256 = portcullis_jose::x5t_sha256(&der);
        Self {
            der,
            intermediates: Vec::new(),
            x5t_s256,
            source,
        }
    }

    /// The most intermediate certificates kept from a presented chain.
    pub const MAX_INTERMEDIATES: usize = 8;

    /// Adds the rest of the presented chain (at most [`Self::MAX_INTERMEDIATES`]), with which
    /// `tls_client_auth` builds a path to a trust anchor.
    #[must_use]
    pub fn with_intermediates(mut self, chain: &[CertificateDer<'_>]) -> Self {
        self.intermediates = chain
            .iter()
            .take(Self::MAX_INTERMEDIATES)
            .map(|c| c.clone().into_owned())
            .collect();
        self
    }

    /// The intermediate certificates presented after the leaf.
    #[must_use]
    pub fn intermediates(&self) -> &[CertificateDer<'static>] {
        &self.intermediates
    }

    /// The DER encoding.
    #[must_use]
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.der
    }

    /// The RFC 8705 §3.1 `x5t#S256` thumbprint: base64url (unpadded) SHA-256 of the DER.
    #[must_use]
    pub fn x5t_s256(&self) -> &str {
        &self.x5t_s256
    }

    /// Where it came from.
    #[must_use]
    pub fn source(&self) -> CertificateSource {
        self.source
    }
}

/// Parses an RFC 9440 §2.1 `Client-Cert` value: a structured-field byte sequence, `:base64:`.
/// Returns `None` unless the bytes are a well-formed X.509 certificate.
#[must_use]
pub fn parse_client_cert_header(value: &str) -> Option<CertificateDer<'static>> {
    let inner = value.trim().strip_prefix(':')?.strip_suffix(':')?;
    let der = CertificateDer::from(STANDARD.decode(inner).ok()?);
    // The same X.509 parse rustls applies to a certificate presented in a handshake.
    webpki::EndEntityCert::try_from(&der).ok()?;
    Some(der)
}

/// Whether `addr` is one of the trusted proxies. An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, as
/// a dual-stack socket reports IPv4 clients) matches IPv4 networks.
#[must_use]
pub fn is_trusted_proxy(addr: IpAddr, trusted: &[IpNet]) -> bool {
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 @ IpAddr::V4(_) => v4,
    };
    trusted.iter().any(|net| net.contains(&addr))
}

/// Decides the certificate of a request, and strips the `Client-Cert` header from `headers`.
///
/// `peer` is the address the connection came from and `handshake` the certificate presented in
/// its TLS handshake, if any. From a trusted proxy, only the header counts: the proxy's own
/// handshake certificate is the proxy's, not the client's. From anyone else, only the handshake
/// counts, and a `Client-Cert` header is a spoofing attempt or a misconfiguration, logged and
/// ignored.
pub fn resolve(
    headers: &mut HeaderMap,
    peer: SocketAddr,
    handshake: Option<&Arc<ClientCertificate>>,
    trusted: &[IpNet],
) -> Option<Arc<ClientCertificate>> {
    let header = headers.remove(CLIENT_CERT_HEADER);
    if is_trusted_proxy(peer.ip(), trusted) {
        let value = header?;
        let parsed = value.to_str().ok().and_then(parse_client_cert_header);
        if parsed.is_none() {
            tracing::warn!(%peer, "trusted proxy sent a malformed Client-Cert header; ignored");
        }
        return parsed
            .map(|der| Arc::new(ClientCertificate::new(der, CertificateSource::TrustedProxy)));
    }
    if header.is_some() {
        tracing::warn!(
            %peer,
            "Client-Cert header from an address that is not a trusted proxy; ignored"
        );
    }
    handshake.cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_der() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["client.example".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .der()
            .to_vec()
    }

    fn peer(ip: &str) -> SocketAddr {
        SocketAddr::new(ip.parse().unwrap(), 40000)
    }

    fn handshake(cert: Vec<u8>) -> Arc<ClientCertificate> {
        Arc::new(ClientCertificate::new(
            CertificateDer::from(cert),
            CertificateSource::Handshake,
        ))
    }

    #[test]
    fn rfc_9440_header_parses_only_well_formed_certificates() {
        let der = cert_der();
        let value = format!(":{}:", STANDARD.encode(&der));
        assert_eq!(
            parse_client_cert_header(&value).unwrap().as_ref(),
            der.as_slice()
        );
        assert!(parse_client_cert_header(&STANDARD.encode(&der)).is_none());
        assert!(parse_client_cert_header(":bm90IGEgY2VydA==:").is_none());
        assert!(parse_client_cert_header("::").is_none());
    }

    #[test]
    fn client_cert_header_counts_only_from_trusted_proxies_and_is_always_stripped() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let forwarded = cert_der();
        let own = handshake(cert_der());
        let header = || {
            let mut h = HeaderMap::new();
            h.insert(
                CLIENT_CERT_HEADER,
                format!(":{}:", STANDARD.encode(&forwarded))
                    .parse()
                    .unwrap(),
            );
            h
        };

        let mut from_proxy = header();
        let got = resolve(&mut from_proxy, peer("10.1.2.3"), Some(&own), &trusted).unwrap();
        assert_eq!(got.der().as_ref(), forwarded.as_slice());
        assert_eq!(got.source(), CertificateSource::TrustedProxy);
        assert!(from_proxy.get(CLIENT_CERT_HEADER).is_none());

        let mut spoofed = header();
        let got = resolve(&mut spoofed, peer("192.0.2.7"), Some(&own), &trusted).unwrap();
        assert_eq!(got, own);
        assert!(spoofed.get(CLIENT_CERT_HEADER).is_none());
        assert!(resolve(&mut header(), peer("192.0.2.7"), None, &trusted).is_none());
    }

    #[test]
    fn a_trusted_proxy_without_the_header_means_no_certificate() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let own = handshake(cert_der());
        assert!(
            resolve(
                &mut HeaderMap::new(),
                peer("10.1.2.3"),
                Some(&own),
                &trusted
            )
            .is_none()
        );
    }

    #[test]
    fn ipv4_mapped_ipv6_peers_match_ipv4_proxy_networks() {
        let trusted: Vec<IpNet> = vec!["127.0.0.1/32".parse().unwrap()];
        assert!(is_trusted_proxy(
            "::ffff:127.0.0.1".parse().unwrap(),
            &trusted
        ));
        assert!(!is_trusted_proxy("::1".parse().unwrap(), &trusted));
    }

    #[test]
    fn the_thumbprint_is_rfc_8705_x5t_s256() {
        use sha2::Digest as _;
        let der = cert_der();
        let expected =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&der));
        let cert = ClientCertificate::new(CertificateDer::from(der), CertificateSource::Handshake);
        assert_eq!(cert.x5t_s256(), expected);
    }
}

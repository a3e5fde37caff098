//! The HTTPS clients that talk to the authorization server: one for discovery and the JWKS, and
//! one presenting this API's own client certificate for introspection, the token endpoint and the
//! revocation event feed when the API authenticates with it. rustls with the aws-lc-rs provider,
//! TLS 1.3 and the four TLS 1.2 ECDHE-AES-GCM suites (FAPI2 SP 5.2.2-1), the Mozilla roots plus
//! the configured CA files, no redirects, bounded time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::SetupError;

/// The most bytes read from any answer of the authorization server.
pub(crate) const MAX_BODY: usize = 1024 * 1024;

/// The rustls crypto provider of every TLS connection this crate makes (to the authorization
/// server) or accepts ([`tls`](crate::tls), feature `server`): aws-lc-rs with the cipher suites
/// FAPI 2.0 allows, all TLS 1.3 suites, and for TLS 1.2 only
/// `ECDHE_{ECDSA,RSA}_WITH_AES_{128,256}_GCM_SHA{256,384}` (SP 5.2.2-1; no CHACHA20 or CBC on
/// TLS 1.2).
#[must_use]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ],
        ..aws_lc_rs::default_provider()
    })
}

/// A client certificate and its private key, in PEM.
#[derive(Clone)]
pub struct ClientIdentityPem {
    /// The certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key.
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl std::fmt::Debug for ClientIdentityPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentityPem")
            .field("certificates", &self.chain.len())
            .finish_non_exhaustive()
    }
}

impl ClientIdentityPem {
    /// Reads a certificate chain and a private key from PEM text.
    ///
    /// # Errors
    /// [`SetupError`] when either has no usable PEM item.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, SetupError> {
        let chain = rustls_pemfile::certs(&mut &*cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SetupError::new("client certificate", e))?;
        if chain.is_empty() {
            return Err(SetupError::new(
                "client certificate",
                "no PEM certificate found",
            ));
        }
        let key = rustls_pemfile::private_key(&mut &*key_pem)
            .map_err(|e| SetupError::new("client key", e))?
            .ok_or_else(|| SetupError::new("client key", "no PEM private key found"))?;
        Ok(Self {
            chain,
            key: Arc::new(key),
        })
    }

    /// The RFC 8705 `x5t#S256` of the leaf certificate.
    #[must_use]
    pub fn x5t_s256(&self) -> String {
        self.chain
            .first()
            .map(|der| portcullis_jose::x5t_sha256(der))
            .unwrap_or_default()
    }
}

/// Builds an HTTPS client trusting the Mozilla roots and `ca_files`, presenting `identity` when
/// given.
pub(crate) fn client(
    ca_files: &[PathBuf],
    identity: Option<&ClientIdentityPem>,
    timeout: Duration,
) -> Result<reqwest::Client, SetupError> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for path in ca_files {
        let what = format!("CA file {}", path.display());
        let pem = std::fs::read(path).map_err(|e| SetupError::new(&what, e))?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SetupError::new(&what, e))?;
        if certs.is_empty() {
            return Err(SetupError::new(&what, "no PEM certificate in the file"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| SetupError::new(&what, e))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| SetupError::new("TLS", e))?
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain.clone(), identity.key.clone_key())
            .map_err(|e| SetupError::new("client certificate", e))?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| SetupError::new("HTTP client", e))
}

/// Reads a whole answer, refusing more than [`MAX_BODY`] bytes.
pub(crate) async fn body(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|l| l > MAX_BODY as u64)
    {
        return Err(format!("the answer is larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| error_text(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A transport error with its causes, without the URL (which may carry nothing secret here, but
/// keeps logs short).
pub(crate) fn error_text(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod provider_tests {
    use super::provider;

    #[test]
    fn sp_5_2_2_1_tls12_offers_only_the_four_ecdhe_aes_gcm_suites() {
        let provider = provider();
        let tls12: Vec<String> = provider
            .cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .map(|s| format!("{:?}", s.suite()))
            .collect();
        assert_eq!(
            tls12,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ]
        );
    }
}

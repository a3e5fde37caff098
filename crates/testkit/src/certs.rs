//! Client certificates for tests: self-signed ones (RFC 8705 `self_signed_tls_client_auth`) with
//! their PEM forms and `x5t#S256`, computed here independently of the server's code.

use base64::Engine as _;
use sha2::Digest as _;

/// A client key and self-signed certificate.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
}

impl ClientIdentity {
    /// A fresh P-256 key with a self-signed certificate for `common_name`.
    #[must_use]
    pub fn self_signed(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("key generation failed");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        let cert = params.self_signed(&key).expect("self-signing failed");
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }

    /// The RFC 8705 §3.1 thumbprint: base64url(SHA-256(DER)).
    #[must_use]
    pub fn x5t_s256(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(&self.cert_der))
    }

    /// The identity for a reqwest client.
    #[must_use]
    pub fn reqwest_identity(&self) -> reqwest::Identity {
        reqwest::Identity::from_pem(format!("{}{}", self.key_pem, self.cert_pem).as_bytes())
            .expect("reqwest refused the identity")
    }
}

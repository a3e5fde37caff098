//! Client certificates for tests: self-signed ones (RFC 8705 `self_signed_tls_client_auth`) and
//! ones issued by a test CA (RFC 8705 `tls_client_auth`), with their PEM forms and `x5t#S256`,
//! computed here independently of the server's code.

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

/// A certificate authority for `tls_client_auth` tests (RFC 8705 §2.1): its certificate is the
/// trust anchor a server is configured with, and the identities it issues chain to it.
#[derive(Debug)]
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// The CA certificate, PEM.
    pub cert_pem: String,
}

impl TestCa {
    /// A fresh P-256 root CA named `common_name`.
    #[must_use]
    pub fn new(common_name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("key generation failed");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-signing failed");
        Self {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem: cert.pem(),
        }
    }

    /// A fresh P-256 key with a client certificate signed by this CA, for the subject
    /// `O=<organization>, CN=<common_name>` in DER order (RFC 4514: `CN=<common_name>,O=<organization>`).
    #[must_use]
    pub fn issue(&self, organization: &str, common_name: &str) -> ClientIdentity {
        let key = rcgen::KeyPair::generate().expect("key generation failed");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("CA signing failed");
        ClientIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
    /// A fresh P-256 key with a TLS server certificate signed by this CA for `names` (DNS names,
    /// or IP addresses such as `127.0.0.1`, which become IP subject alternative names): for a
    /// test's own HTTPS server, whose clients trust [`TestCa::cert_pem`].
    #[must_use]
    pub fn issue_server(&self, names: &[&str]) -> ClientIdentity {
        let key = rcgen::KeyPair::generate().expect("key generation failed");
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names).expect("certificate parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test server");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("CA signing failed");
        ClientIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }

    /// A fresh P-256 key with a transport certificate as Open Finance Brasil's directory issues
    /// them: the software's id in the subject's `UID` (0.9.2342.19200300.100.1.1), its organisation
    /// in `O`, and a `CN` that is not the software id.
    #[must_use]
    pub fn issue_for_software(&self, organization: &str, software_id: &str) -> ClientIdentity {
        let key = rcgen::KeyPair::generate().expect("key generation failed");
        let mut params =
            rcgen::CertificateParams::new(Vec::<String>::new()).expect("certificate parameters");
        // rcgen starts with a CN of its own; start empty so the DER order is O, UID, CN
        // (RFC 4514: `CN=tpp transport,UID=<software_id>,O=<organization>`).
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, organization);
        params.distinguished_name.push(
            rcgen::DnType::CustomDnType(vec![0, 9, 2342, 19_200_300, 100, 1, 1]),
            software_id,
        );
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "tpp transport");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("CA signing failed");
        ClientIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().to_vec(),
        }
    }
}

//! The development certificate authority. With no `tls.cert_file`, `portcullis serve` creates, on
//! first start, a CA and a server certificate for `localhost`, `127.0.0.1` and `::1` in
//! `<data_dir>/tls`, and reuses them afterwards. The CA's private key is used once to sign the
//! server certificate and never written anywhere, so the CA cannot be abused to mint other
//! certificates. Delete the directory to start over.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

use super::{ServerIdentity, TlsError};

/// The files of the development CA.
#[derive(Debug, Clone)]
pub struct DevCaFiles {
    /// The CA certificate clients should trust.
    pub ca_cert: PathBuf,
    /// The server certificate.
    pub server_cert: PathBuf,
    /// The server certificate's private key.
    pub server_key: PathBuf,
}

impl DevCaFiles {
    /// The file names inside `<data_dir>/tls`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server-key.pem"),
        }
    }
}

fn dev_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(format!("development certificate: {e}"))
}

/// Loads the development identity from `dir`, creating it first if it does not exist.
///
/// # Errors
/// [`TlsError`] if the files cannot be written or read back.
pub fn load_or_create(
    dir: &Path,
    now: OffsetDateTime,
) -> Result<(ServerIdentity, DevCaFiles), TlsError> {
    let files = DevCaFiles::in_dir(dir);
    if !(files.ca_cert.exists() && files.server_cert.exists() && files.server_key.exists()) {
        create(dir, &files, now)?;
        tracing::warn!(
            ca = %files.ca_cert.display(),
            "generated a development CA and server certificate; configure tls.cert_file and tls.key_file in production"
        );
    }
    let identity = ServerIdentity::from_pem_files(&files.server_cert, &files.server_key)?;
    Ok((identity, files))
}

fn create(dir: &Path, files: &DevCaFiles, now: OffsetDateTime) -> Result<(), TlsError> {
    crate::fs::create_private_dir(dir).map_err(dev_error)?;
    // An earlier start that died half-way may have left some of the files: start clean.
    for stale in [&files.ca_cert, &files.server_cert, &files.server_key] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(dev_error(e)),
        }
    }

    let ca_key = KeyPair::generate().map_err(dev_error)?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "Portcullis development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - Duration::hours(1);
    ca.not_after = now + Duration::days(3650);
    let ca_cert = ca.self_signed(&ca_key).map_err(dev_error)?;
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().map_err(dev_error)?;
    let mut server =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
            .map_err(dev_error)?;
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server.not_before = now - Duration::hours(1);
    // Browsers refuse server certificates valid for more than 398 days.
    server.not_after = now + Duration::days(397);
    let server_cert = server.signed_by(&server_key, &issuer).map_err(dev_error)?;

    crate::fs::write_private(&files.server_key, server_key.serialize_pem().as_bytes())
        .map_err(dev_error)?;
    std::fs::write(&files.server_cert, server_cert.pem()).map_err(dev_error)?;
    // Written last: its presence means the set is complete.
    std::fs::write(&files.ca_cert, ca_cert.pem()).map_err(dev_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_once_then_reuses_and_the_server_certificate_chains_to_the_ca() {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let tls = dir.path().join("tls");
        let (first, files) = load_or_create(&tls, OffsetDateTime::now_utc()).unwrap();
        let (second, _) = load_or_create(&tls, OffsetDateTime::now_utc()).unwrap();
        assert_eq!(first.chain, second.chain);

        let ca_pem = std::fs::read(&files.ca_cert).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder(std::sync::Arc::new(roots))
            .build()
            .unwrap();
        use rustls::client::danger::ServerCertVerifier as _;
        for name in ["localhost", "127.0.0.1"] {
            verifier
                .verify_server_cert(
                    &first.chain[0],
                    &[],
                    &rustls_pki_types::ServerName::try_from(name).unwrap(),
                    &[],
                    rustls_pki_types::UnixTime::now(),
                )
                .unwrap();
        }
        // A half-written set (no CA file) is replaced whole.
        std::fs::remove_file(&files.ca_cert).unwrap();
        let (third, _) = load_or_create(&tls, OffsetDateTime::now_utc()).unwrap();
        assert_ne!(third.chain, first.chain);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&files.server_key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the private key must not be readable by others"
            );
        }
    }
}

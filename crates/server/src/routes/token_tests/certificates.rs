//! Client authentication at `/token` by certificate (RFC 8705 §2: `tls_client_auth` against the
//! configured trust anchors, `self_signed_tls_client_auth` against the client's JWK set) and the
//! certificate-bound tokens it gets (RFC 8705 §3): checklist #26, #27.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::CertificateDer;

use super::*;
use crate::routes::tests::harness_with;
use crate::tls::client_cert::CertificateSource;

/// The subject DN registered for the `tls_client_auth` client, RFC 4514 order.
const TPP_DN: &str = "CN=tpp-001,O=Example TPP,C=GB";

/// The RFC 8705 §3.1 `x5t#S256` of a certificate, computed here.
fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

fn presented(der: &CertificateDer<'static>) -> ClientCertificate {
    ClientCertificate::new(der.clone(), CertificateSource::Handshake).with_intermediates(&[])
}

fn distinguished_name(cn: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CountryName, "GB");
    name.push(DnType::OrganizationName, "Example TPP");
    name.push(DnType::CommonName, cn);
    name
}

/// A client certificate's parameters: the subject, for client authentication.
fn leaf_params(cn: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

/// The parameters of a CA certificate.
fn ca_params(cn: &str, path_length: BasicConstraints) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(path_length);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// A root CA that issues client certificates, its PEM written to `dir` for the configuration.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem_file: std::path::PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params(
            "Example Open Banking Root CA",
            BasicConstraints::Unconstrained,
        );
        let certificate = params.self_signed(&key).unwrap();
        let pem_file = dir.join("client-ca.pem");
        std::fs::write(&pem_file, certificate.pem()).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            pem_file,
        }
    }

    fn issue(&self, cn: &str) -> CertificateDer<'static> {
        self.sign(&leaf_params(cn))
    }

    /// A certificate with these parameters and a fresh key, signed by this CA.
    fn sign(&self, params: &CertificateParams) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer).unwrap().der().clone()
    }

    /// An issuing CA below this root: its certificate, and the issuer to sign leaves with.
    fn intermediate(&self) -> (CertificateDer<'static>, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let params = ca_params("Example TPP Issuing CA", BasicConstraints::Constrained(0));
        let der = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        (der, Issuer::new(params, key))
    }
}

/// A harness trusting a fresh CA, and a `tls_client_auth` client registered with [`TPP_DN`].
async fn tls_client_auth_setup() -> (Harness, Ca, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path());
    let anchors = vec![ca.pem_file.clone()];
    let h = harness_with(|config| config.client_auth.trust_anchor_files = anchors).await;
    serve_accounts(&h).await;
    let mut metadata = machine_client("tls_client_auth");
    metadata["tls_client_auth_subject_dn"] = json!(TPP_DN);
    metadata["tls_client_certificate_bound_access_tokens"] = json!(true);
    let client_id = register(
        &h,
        metadata,
        ClientProfile::Fapi2,
        ClientSettings::default(),
    )
    .await
    .client
    .client_id
    .to_string();
    (h, ca, client_id, dir)
}

fn certificate_request(client_id: &str, certificate: Option<ClientCertificate>) -> Request<Body> {
    over_mtls(
        token_request(
            &[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
            ],
            &[],
        ),
        certificate,
    )
}

#[tokio::test]
async fn tls_client_auth_with_the_registered_subject_gets_a_certificate_bound_token() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let leaf = ca.issue("tpp-001");
    let answer = send(&h, certificate_request(&client_id, Some(presented(&leaf)))).await;
    let token = answer.issued("Bearer", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "x5t#S256": x5t_s256(&leaf) }),
    );
}

#[tokio::test]
async fn checklist_26_tls_client_auth_certificate_with_another_subject_is_invalid_client() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let other = ca.issue("tpp-002");
    send(&h, certificate_request(&client_id, Some(presented(&other))))
        .await
        .invalid_client(
            "does not carry the registered tls_client_auth_subject_dn (RFC 8705 §2.1.2)",
        );
}

#[tokio::test]
async fn tls_client_auth_self_signed_certificate_with_the_registered_subject_is_invalid_client() {
    let (h, _ca, client_id, _dir) = tls_client_auth_setup().await;
    let key = KeyPair::generate().unwrap();
    let forged = leaf_params("tpp-001")
        .self_signed(&key)
        .unwrap()
        .der()
        .clone();
    send(
        &h,
        certificate_request(&client_id, Some(presented(&forged))),
    )
    .await
    .invalid_client("does not chain to a trusted CA (RFC 8705 §2.1)");
}

/// RFC 8705 §2.1: the path to the trust anchor may run through intermediates the client sends in
/// its handshake; the token is bound to the leaf.
#[tokio::test]
async fn tls_client_auth_chains_through_the_presented_intermediate() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let (intermediate, issuing) = ca.intermediate();
    let key = KeyPair::generate().unwrap();
    let leaf = leaf_params("tpp-001")
        .signed_by(&key, &issuing)
        .unwrap()
        .der()
        .clone();
    send(&h, certificate_request(&client_id, Some(presented(&leaf))))
        .await
        .invalid_client("does not chain to a trusted CA (RFC 8705 §2.1)");
    let chain = ClientCertificate::new(leaf.clone(), CertificateSource::Handshake)
        .with_intermediates(&[intermediate]);
    let token = send(&h, certificate_request(&client_id, Some(chain)))
        .await
        .issued("Bearer", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_eq!(claims["cnf"], json!({ "x5t#S256": x5t_s256(&leaf) }));
}

/// Certificate validity is judged by the server's clock, which tests move.
#[tokio::test]
async fn tls_client_auth_certificate_expired_by_the_servers_clock_is_invalid_client() {
    let (h, ca, client_id, _dir) = tls_client_auth_setup().await;
    let mut params = leaf_params("tpp-001");
    params.not_before = h.clock.now() - time::Duration::days(1);
    params.not_after = h.clock.now() + time::Duration::days(1);
    let leaf = ca.sign(&params);
    send(&h, certificate_request(&client_id, Some(presented(&leaf))))
        .await
        .issued("Bearer", "accounts");
    h.clock.advance(time::Duration::days(2));
    send(&h, certificate_request(&client_id, Some(presented(&leaf))))
        .await
        .invalid_client("does not chain to a trusted CA (RFC 8705 §2.1)");
}

#[tokio::test]
async fn tls_client_auth_without_a_certificate_is_invalid_client() {
    let (h, _ca, client_id, _dir) = tls_client_auth_setup().await;
    send(&h, certificate_request(&client_id, None))
        .await
        .invalid_client("authenticates with a client certificate");
    // Nor on the main listener, where no certificate is ever asked for.
    let plain = token_request(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
        ],
        &[],
    );
    send(&h, plain)
        .await
        .invalid_client("authenticates with a client certificate");
}

/// A self-signed certificate and its public key as a JWK.
fn self_signed(cn: &str) -> (CertificateDer<'static>, Value) {
    self_signed_with(&leaf_params(cn))
}

fn self_signed_with(params: &CertificateParams) -> (CertificateDer<'static>, Value) {
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().clone();
    // An uncompressed P-256 point: 0x04 || x || y.
    let point = key.public_key_raw();
    let (x, y) = point[1..].split_at(32);
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(x),
        "y": URL_SAFE_NO_PAD.encode(y),
    });
    (der, jwk)
}

async fn self_signed_client(h: &Harness, jwk: Value) -> String {
    let mut metadata = machine_client("self_signed_tls_client_auth");
    metadata["jwks"] = jwks_of(&[jwk]);
    metadata["tls_client_certificate_bound_access_tokens"] = json!(true);
    register(h, metadata, ClientProfile::Fapi2, ClientSettings::default())
        .await
        .client
        .client_id
        .to_string()
}

#[tokio::test]
async fn self_signed_tls_client_auth_with_the_registered_key_gets_a_certificate_bound_token() {
    let h = harness().await;
    serve_accounts(&h).await;
    let (der, jwk) = self_signed("tpp-self");
    let client_id = self_signed_client(&h, jwk).await;
    let token = send(&h, certificate_request(&client_id, Some(presented(&der))))
        .await
        .issued("Bearer", "accounts");
    let claims = verified_claims(&h, &token, ACCOUNTS).await;
    assert_client_token(
        &claims,
        &client_id,
        "accounts",
        &json!({ "x5t#S256": x5t_s256(&der) }),
    );
}

#[tokio::test]
async fn checklist_27_self_signed_certificate_not_in_the_jwks_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let (_, jwk) = self_signed("tpp-self");
    let client_id = self_signed_client(&h, jwk).await;
    let (other, _) = self_signed("tpp-self");
    send(&h, certificate_request(&client_id, Some(presented(&other))))
        .await
        .invalid_client("not in the client's registered JWK set (RFC 8705 §2.2)");
}

#[tokio::test]
async fn self_signed_certificate_outside_its_validity_is_invalid_client() {
    let h = harness().await;
    serve_accounts(&h).await;
    let mut params = leaf_params("tpp-self");
    params.not_before = h.clock.now() - time::Duration::days(30);
    params.not_after = h.clock.now() - time::Duration::days(1);
    let (der, jwk) = self_signed_with(&params);
    let client_id = self_signed_client(&h, jwk).await;
    send(&h, certificate_request(&client_id, Some(presented(&der))))
        .await
        .invalid_client("outside its validity period");
}

//! What `tls_client_auth` costs per request (docs/benchmarks.md, "tls_client_auth: the chain
//! check per request"): `client_auth::verify_chain` of a client certificate issued by a test CA
//! (P-256), against the configured trust anchors, as `/token`, `/par`, `/introspect` and
//! `/revoke` do for every request of such a client. Run with
//! `cargo bench -p portcullis-server --bench client_cert`.

// A benchmark's set-up either works or the run is meaningless: failing loudly is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis_server::client_auth::{certificate_verifier, verify_chain};
use portcullis_testkit::certs::TestCa;
use portcullis_verify::certificate::{CertificateSource, ClientCertificate};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;

fn chain(c: &mut Criterion) {
    let ca = TestCa::new("Bench CA");
    let client = ca.issue("Bench TPP", "bench-client");
    let mut roots = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca.cert_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let trust = certificate_verifier("bench", roots).unwrap().unwrap();
    let certificate = ClientCertificate::new(
        CertificateDer::from(client.cert_der.clone()),
        CertificateSource::Handshake,
    );
    let now = time::OffsetDateTime::now_utc();
    verify_chain(trust.as_ref(), &certificate, now).unwrap();
    c.bench_function("tls_client_auth/verify_chain", |b| {
        b.iter(|| verify_chain(trust.as_ref(), &certificate, now).unwrap());
    });
}

criterion_group!(benches, chain);
criterion_main!(benches);

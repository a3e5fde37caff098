//! The accept loop over real TLS: what handlers see, what the observer hears, and shutdown.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::routing::get;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::*;
use crate::certificate::ClientCertificate;

struct Pki {
    roots: rustls::RootCertStore,
    server: ServerIdentity,
}

fn pki() -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::default();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    Pki {
        roots,
        server: ServerIdentity {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        },
    }
}

/// A self-signed client certificate and its key.
fn client_identity() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["tpp.example".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (
        cert.der().clone(),
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
}

#[derive(Default)]
struct Recorder {
    failed: Mutex<Vec<(ListenerKind, &'static str)>>,
    opened: AtomicUsize,
}

impl ListenerObserver for Recorder {
    fn handshake_failed(&self, listener: ListenerKind, reason: &'static str) {
        self.failed.lock().unwrap().push((listener, reason));
    }

    fn connection_opened(&self, _listener: ListenerKind) -> Box<dyn Send> {
        self.opened.fetch_add(1, Ordering::SeqCst);
        Box::new(())
    }
}

/// Answers with the listener and the thumbprint of the request's certificate, or `none`.
fn router() -> axum::Router {
    axum::Router::new().route(
        "/",
        get(
            |Extension(info): Extension<ConnectionInfo>,
             certificate: Option<Extension<Arc<ClientCertificate>>>| async move {
                let x5t =
                    certificate.map_or("none".to_owned(), |Extension(c)| c.x5t_s256().to_owned());
                format!("{} {x5t}", info.listener.as_str())
            },
        ),
    )
}

/// One HTTP/1.1 request over TLS, presenting `client` if given; the response body.
async fn get_body(
    addr: std::net::SocketAddr,
    roots: &rustls::RootCertStore,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> String {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone());
    let mut config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    tls.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

async fn start(
    kind: ListenerKind,
    pki: &Pki,
    observer: Arc<dyn ListenerObserver>,
) -> (
    std::net::SocketAddr,
    watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TlsListener::bind("127.0.0.1:0".parse().unwrap(), kind, &pki.server)
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve(
        listener,
        router(),
        ConnectionLimits::default(),
        observer,
        stopped,
    ));
    (addr, stop, task)
}

#[tokio::test]
async fn mtls_listener_hands_handlers_the_presented_certificate_and_its_thumbprint() {
    let pki = pki();
    let recorder = Arc::new(Recorder::default());
    let (addr, stop, task) = start(ListenerKind::Mtls, &pki, recorder.clone()).await;

    let (cert, key) = client_identity();
    let expected = ClientCertificate::new(
        cert.clone(),
        crate::certificate::CertificateSource::Handshake,
    );
    let body = get_body(addr, &pki.roots, Some((cert, key))).await;
    assert_eq!(body, format!("mtls {}", expected.x5t_s256()));
    // Asked, not required: a client without a certificate is served too.
    assert_eq!(get_body(addr, &pki.roots, None).await, "mtls none");

    // Not TLS at all: the handshake fails and the observer hears of it.
    let mut junk = TcpStream::connect(addr).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = junk.read_to_end(&mut rest).await;

    stop.send(true).unwrap();
    task.await.unwrap();
    assert_eq!(recorder.opened.load(Ordering::SeqCst), 2);
    assert_eq!(
        *recorder.failed.lock().unwrap(),
        [(ListenerKind::Mtls, "error")]
    );
}

#[tokio::test]
async fn main_listener_never_asks_for_a_certificate() {
    let pki = pki();
    let (addr, stop, task) = start(ListenerKind::Main, &pki, Arc::new(NoObserver)).await;
    let body = get_body(addr, &pki.roots, Some(client_identity())).await;
    assert_eq!(body, "main none");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn serve_api_serves_until_its_shutdown_future_resolves() {
    let pki = pki();
    // Find a free port, then let serve_api bind it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let identity = ServerIdentity {
        chain: pki.server.chain.clone(),
        key: pki.server.key.clone_key(),
    };
    let server = tokio::spawn(async move {
        serve_api(
            addr,
            &identity,
            router(),
            ConnectionLimits::default(),
            async {
                let _ = stopped.await;
            },
        )
        .await
    });
    let body = loop {
        // serve_api binds inside the task: retry until it listens.
        if TcpStream::connect(addr).await.is_ok() {
            break get_body(addr, &pki.roots, Some(client_identity())).await;
        }
        tokio::task::yield_now().await;
    };
    assert!(body.starts_with("mtls "), "{body}");
    assert_ne!(body, "mtls none");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

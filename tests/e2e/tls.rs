//! The two TLS listeners: protocol versions and suites, and client certificates reaching handlers.

use std::sync::Arc;

use portcullis_testkit::certs::ClientIdentity;
use portcullis_testkit::db::Backend;
use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::Fixture;

fn roots(ca_pem: &[u8]) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

/// A handshake with a raw rustls client restricted to `suites` and `versions`.
async fn handshake(
    addr: std::net::SocketAddr,
    ca_pem: &[u8],
    suites: Vec<rustls::SupportedCipherSuite>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, std::io::Error> {
    let provider = CryptoProvider {
        cipher_suites: suites,
        ..aws_lc_rs::default_provider()
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots(ca_pem))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

#[tokio::test]
async fn sp_5_2_2_1_a_tls12_client_offering_only_chacha20_is_refused_on_both_listeners() {
    let f = Fixture::start(Backend::Sqlite).await;
    let ca = f.app.ca_pem.clone().unwrap();
    for addr in [f.app.listen, f.app.mtls_listen] {
        let chacha = vec![
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ];
        assert!(
            handshake(addr, &ca, chacha, &[&rustls::version::TLS12])
                .await
                .is_err()
        );

        // Control: the same client with an allowed TLS 1.2 suite gets through.
        let gcm = vec![cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256];
        let stream = handshake(addr, &ca, gcm, &[&rustls::version::TLS12])
            .await
            .unwrap();
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_2)
        );

        // And TLS 1.3 is offered and preferred (SP 5.2.1-3, RFC 9325 §3.1.1).
        let stream = handshake(
            addr,
            &ca,
            aws_lc_rs::default_provider().cipher_suites,
            rustls::ALL_VERSIONS,
        )
        .await
        .unwrap();
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(rustls::ProtocolVersion::TLSv1_3)
        );
    }
}

/// What `/__test/client-cert` saw for a request carrying an RFC 9440 `Client-Cert` header.
async fn presented_with_header(
    client: &reqwest::Client,
    url: String,
    header: &str,
) -> serde_json::Value {
    client
        .get(url)
        .header("Client-Cert", header)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn presented(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn rfc_8705_a_client_certificate_reaches_the_handler_as_its_x5t_s256() {
    let f = Fixture::start(Backend::Sqlite).await;
    let identity = ClientIdentity::self_signed("tpp-e2e");
    let with_cert = f.app.client(Some(&identity));

    // The mTLS listener asks; a self-signed certificate is accepted at the TLS layer.
    let seen = presented(&with_cert, f.app.mtls_url("/__test/client-cert")).await;
    assert_eq!(seen["x5t#S256"], identity.x5t_s256());
    assert_eq!(seen["source"], "handshake");

    // A client without a certificate still connects to the mTLS listener.
    let seen = presented(&f.app.client(None), f.app.mtls_url("/__test/client-cert")).await;
    assert!(seen["x5t#S256"].is_null());

    // The main listener never asks, so even a client holding one presents nothing.
    let seen = presented(&with_cert, f.app.url("/__test/client-cert")).await;
    assert!(seen["x5t#S256"].is_null());
}

#[tokio::test]
async fn rfc_9440_client_cert_header_from_an_untrusted_peer_is_ignored() {
    let f = Fixture::start(Backend::Sqlite).await;
    let forged = ClientIdentity::self_signed("forged");
    let header = client_cert_header(&forged);
    let seen = presented_with_header(
        &f.app.client(None),
        f.app.mtls_url("/__test/client-cert"),
        &header,
    )
    .await;
    assert!(
        seen["x5t#S256"].is_null(),
        "a header from a non-proxy must not become a certificate"
    );
}

#[tokio::test]
async fn rfc_9440_client_cert_header_from_a_trusted_proxy_is_believed() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.env = vec![(
        "PORTCULLIS_PROXY__TRUSTED_ADDRESSES".into(),
        "[127.0.0.1/32]".into(),
    )];
    let app = portcullis_testkit::app::App::spawn(options).await;
    let forwarded = ClientIdentity::self_signed("behind-proxy");
    let header = client_cert_header(&forwarded);
    let seen =
        presented_with_header(&app.client(None), app.url("/__test/client-cert"), &header).await;
    assert_eq!(seen["x5t#S256"], forwarded.x5t_s256());
    assert_eq!(seen["source"], "proxy");
}

#[tokio::test]
async fn a_connection_that_never_starts_its_handshake_is_closed_after_the_timeout() {
    use tokio::io::AsyncReadExt as _;
    let dir = tempfile::tempdir().unwrap();
    let mut options = portcullis_testkit::app::Options::new(dir.path());
    options.env = vec![("PORTCULLIS_TLS__HANDSHAKE_TIMEOUT_SECS".into(), "1".into())];
    let app = portcullis_testkit::app::App::spawn(options).await;
    let mut idle = TcpStream::connect(app.listen).await.unwrap();
    let mut buf = [0u8; 1];
    // The server closes the socket (EOF) once the one-second handshake timeout passes.
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), idle.read(&mut buf))
        .await
        .expect("the server kept an idle pre-handshake connection open");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // And it still serves others.
    assert_eq!(app.get_json("/healthz").await.0, 200);
}

#[tokio::test]
async fn websocket_upgrades_pass_through_the_accept_loop() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let f = Fixture::start(Backend::Sqlite).await;
    let mut tls = http1_connect(&f.app).await;
    let request = format!(
        "GET /__test/ws HTTP/1.1\r\nHost: localhost:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        f.app.listen.port()
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455 §1.3: the accept value for the sample nonce.
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );

    // A masked text frame "ping" (RFC 6455 §5.2), echoed back unmasked.
    let mask = [1u8, 2, 3, 4];
    let mut frame = vec![0x81, 0x80 | 4];
    frame.extend_from_slice(&mask);
    frame.extend(b"ping".iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    tls.write_all(&frame).await.unwrap();
    let mut echo = [0u8; 6];
    tls.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"\x81\x04ping");
}

/// A TLS connection to the main listener speaking HTTP/1.1 (ALPN), for hand-written requests.
async fn http1_connect(
    app: &portcullis_testkit::app::App,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots(app.ca_pem.as_ref().unwrap()))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(app.listen).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads a response head up to the blank line.
async fn read_head(tls: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn an_oversized_request_head_is_refused_with_431() {
    use tokio::io::AsyncWriteExt as _;
    let f = Fixture::start(Backend::Sqlite).await;
    let mut tls = http1_connect(&f.app).await;
    // limits.max_header_bytes is 16 KiB by default.
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Padding: {}\r\n\r\n",
        "a".repeat(32 * 1024)
    );
    tls.write_all(request.as_bytes()).await.unwrap();
    let head = read_head(&mut tls).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
}

/// An RFC 9440 `Client-Cert` header value: the DER as a structured-field byte sequence.
fn client_cert_header(identity: &ClientIdentity) -> String {
    use base64::Engine as _;
    format!(
        ":{}:",
        base64::engine::general_purpose::STANDARD.encode(&identity.cert_der)
    )
}

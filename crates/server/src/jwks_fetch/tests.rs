//! The fetcher against a real TLS server on 127.0.0.1 (its certificate from the development CA,
//! trusted through `extra_ca_files`), with a manual clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_core::ManualClock;
use portcullis_jose::SigningAlg;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use super::*;
use crate::tls::{ListenerKind, dev_ca};

const JWKS: &str = r#"{"keys":[
  {"kid":"k1","kty":"OKP","crv":"Ed25519","use":"sig","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

/// How the test server answers.
#[derive(Clone)]
enum Answer {
    /// These bytes (status line, headers and body), then close.
    Fixed(Vec<u8>),
    /// A `200` head, then body bytes for as long as the client reads.
    Endless,
    /// Accept the TCP connection and never say anything.
    Silent,
}

struct TestServer {
    addr: SocketAddr,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
    /// HTTP requests read.
    requests: Arc<AtomicUsize>,
    ca_file: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestServer {
    async fn start(answer: Answer) -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let (identity, files) =
            dev_ca::load_or_create(&dir.path().join("tls"), OffsetDateTime::now_utc()).unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(
            crate::tls::server_config(&identity, ListenerKind::Main).unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (task_connections, task_requests) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                task_connections.fetch_add(1, Ordering::SeqCst);
                let (acceptor, requests, answer) =
                    (acceptor.clone(), task_requests.clone(), answer.clone());
                tokio::spawn(async move {
                    if matches!(answer, Answer::Silent) {
                        // Hold the connection open, unanswered, until the runtime ends.
                        let _held = tcp;
                        return std::future::pending::<()>().await;
                    }
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    requests.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Answer::Fixed(bytes) => {
                            let _ = tls.write_all(&bytes).await;
                        }
                        Answer::Endless => {
                            let _ = tls
                                .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
                                .await;
                            let chunk = [b' '; 1024];
                            while tls.write_all(&chunk).await.is_ok() {}
                        }
                        Answer::Silent => {}
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            connections,
            requests,
            ca_file: files.ca_cert,
            _dir: dir,
        }
    }

    /// A server answering `200` with `body` and optional extra header lines.
    async fn ok(body: &str, headers: &str) -> Self {
        Self::start(Answer::Fixed(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/jwk-set+json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
        ))
        .await
    }

    /// `https://localhost:<port>/jwks?client=1`: through the resolver, with a query string.
    fn uri(&self) -> String {
        format!("https://localhost:{}/jwks?client=1", self.addr.port())
    }

    fn config(&self) -> ClientJwksConfig {
        ClientJwksConfig {
            allow_private_addresses: true,
            extra_ca_files: vec![self.ca_file.clone()],
            ..ClientJwksConfig::default()
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000),
    ))
}

fn fetcher(config: &ClientJwksConfig, clock: &Arc<ManualClock>) -> JwksFetcher {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    JwksFetcher::new(config, clock.clone()).unwrap()
}

#[tokio::test]
async fn fetches_over_tls_and_serves_the_cached_set_until_the_ttl_passes() {
    let server = TestServer::ok(JWKS, "").await;
    let clock = clock();
    let fetcher = fetcher(&server.config(), &clock);

    let jwks = fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(jwks.candidates(Some("k1"), SigningAlg::EdDsa).len(), 1);
    let again = fetcher.get(&server.uri()).await.unwrap();
    assert!(Arc::ptr_eq(&jwks, &again));
    assert_eq!(server.requests(), 1);

    clock.advance(Duration::seconds(299));
    fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 1);
    clock.advance(Duration::seconds(2));
    fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn cache_control_max_age_shortens_the_lifetime_down_to_a_minute() {
    let server = TestServer::ok(JWKS, "Cache-Control: public, max-age=5\r\n").await;
    let clock = clock();
    let fetcher = fetcher(&server.config(), &clock);
    fetcher.get(&server.uri()).await.unwrap();
    clock.advance(Duration::seconds(59));
    fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 1);
    clock.advance(Duration::seconds(1));
    fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[test]
fn cache_control_never_lengthens_the_configured_lifetime() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let fetcher = fetcher(&ClientJwksConfig::default(), &clock());
    assert_eq!(fetcher.ttl(None), Duration::seconds(300));
    assert_eq!(fetcher.ttl(Some(86_400)), Duration::seconds(300));
    assert_eq!(fetcher.ttl(Some(120)), Duration::seconds(120));
    assert_eq!(fetcher.ttl(Some(0)), Duration::seconds(60));
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CACHE_CONTROL, "no-cache".parse().unwrap());
    assert_eq!(cache_max_age(&headers), Some(0));
    headers.insert(
        http::header::CACHE_CONTROL,
        "Max-Age=90, must-revalidate".parse().unwrap(),
    );
    assert_eq!(cache_max_age(&headers), Some(90));
}

#[tokio::test]
async fn refresh_for_an_unknown_kid_refetches_at_most_once_per_interval() {
    let server = TestServer::ok(JWKS, "").await;
    let clock = clock();
    let fetcher = fetcher(&server.config(), &clock);
    fetcher.get(&server.uri()).await.unwrap();

    clock.advance(Duration::seconds(29));
    assert_eq!(
        fetcher.refresh(&server.uri()).await.unwrap_err(),
        JwksFetchError::RateLimited(30)
    );
    assert_eq!(server.requests(), 1);

    clock.advance(Duration::seconds(1));
    fetcher.refresh(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 2);
    assert!(matches!(
        fetcher.refresh(&server.uri()).await,
        Err(JwksFetchError::RateLimited(_))
    ));
    // The refreshed set restarts the lifetime.
    clock.advance(Duration::seconds(299));
    fetcher.get(&server.uri()).await.unwrap();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_fetch() {
    let server = TestServer::ok(JWKS, "").await;
    let fetcher = fetcher(&server.config(), &clock());
    let uri = server.uri();
    let results = futures_util::future::join_all((0..8).map(|_| fetcher.get(&uri))).await;
    assert!(results.iter().all(Result::is_ok));
    let refreshes = futures_util::future::join_all((0..8).map(|_| fetcher.refresh(&uri))).await;
    assert!(
        refreshes
            .iter()
            .all(|r| matches!(r, Err(JwksFetchError::RateLimited(_))))
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_failed_fetch_is_not_repeated_within_the_interval() {
    let server = TestServer::start(Answer::Fixed(
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let clock = clock();
    let fetcher = fetcher(&server.config(), &clock);
    assert_eq!(
        fetcher.get(&server.uri()).await.unwrap_err(),
        JwksFetchError::Status(503)
    );
    assert_eq!(
        fetcher.get(&server.uri()).await.unwrap_err(),
        JwksFetchError::Status(503)
    );
    assert_eq!(server.requests(), 1);
    clock.advance(Duration::seconds(30));
    fetcher.get(&server.uri()).await.unwrap_err();
    assert_eq!(server.requests(), 2);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let server = TestServer::start(Answer::Fixed(
        b"HTTP/1.1 302 Found\r\nLocation: https://169.254.169.254/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let fetcher = fetcher(&server.config(), &clock());
    let err = fetcher.get(&server.uri()).await.unwrap_err();
    assert_eq!(err, JwksFetchError::Status(302));
    assert!(err.describe().contains("redirects are not followed"));
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_while_it_streams() {
    // The body never ends: only a cap checked while reading can stop it before the timeout.
    let server = TestServer::start(Answer::Endless).await;
    let config = ClientJwksConfig {
        max_bytes: 4096,
        timeout_ms: 10_000,
        ..server.config()
    };
    let fetcher = fetcher(&config, &clock());
    assert_eq!(
        fetcher.get(&server.uri()).await.unwrap_err(),
        JwksFetchError::TooLarge(4096)
    );
}

#[tokio::test]
async fn a_declared_length_over_the_cap_is_refused() {
    let body = format!("{{\"keys\":[],\"pad\":\"{}\"}}", " ".repeat(70_000));
    let server = TestServer::ok(&body, "").await;
    let fetcher = fetcher(&server.config(), &clock());
    assert_eq!(
        fetcher.get(&server.uri()).await.unwrap_err(),
        JwksFetchError::TooLarge(65_536)
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let server = TestServer::start(Answer::Silent).await;
    let config = ClientJwksConfig {
        timeout_ms: 200,
        ..server.config()
    };
    let fetcher = fetcher(&config, &clock());
    assert_eq!(
        fetcher.get(&server.uri()).await.unwrap_err(),
        JwksFetchError::Timeout(200)
    );
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_untrusted_certificate_is_a_network_error() {
    let server = TestServer::ok(JWKS, "").await;
    let config = ClientJwksConfig {
        extra_ca_files: Vec::new(),
        ..server.config()
    };
    let err = fetcher(&config, &clock())
        .get(&server.uri())
        .await
        .unwrap_err();
    let JwksFetchError::Network(message) = &err else {
        panic!("{err:?}");
    };
    assert!(!message.contains("client=1"), "{message}");
    assert_eq!(
        err.describe(),
        "the client's jwks_uri could not be reached (connection or TLS failure)"
    );
    assert_eq!(server.requests(), 0);
}

#[tokio::test]
async fn http_uris_are_refused() {
    let fetcher = fetcher(&ClientJwksConfig::default(), &clock());
    assert_eq!(
        fetcher.get("http://client.example/jwks").await.unwrap_err(),
        JwksFetchError::NotHttps
    );
    assert_eq!(
        fetcher
            .refresh("http://client.example/jwks")
            .await
            .unwrap_err(),
        JwksFetchError::NotHttps
    );
    assert!(matches!(
        fetcher.get("https://user:pw@client.example/jwks").await,
        Err(JwksFetchError::InvalidUri(_))
    ));
    assert!(matches!(
        fetcher.get("/jwks").await,
        Err(JwksFetchError::InvalidUri(_))
    ));
}

#[tokio::test]
async fn non_public_addresses_are_refused_before_any_connection() {
    let server = TestServer::ok(JWKS, "").await;
    let fetcher = fetcher(&ClientJwksConfig::default(), &clock());
    for (uri, class) in [
        ("https://127.0.0.1/jwks", AddressClass::Loopback),
        ("https://2130706433/jwks", AddressClass::Loopback),
        ("https://[::1]/", AddressClass::Loopback),
        ("https://169.254.169.254/", AddressClass::LinkLocal),
        ("https://10.0.0.1/", AddressClass::Private),
        ("https://[::ffff:127.0.0.1]/", AddressClass::Loopback),
        ("https://[fd00::1]/", AddressClass::Private),
        ("https://100.64.0.1/", AddressClass::SharedCgnat),
        ("https://0.0.0.0/", AddressClass::Unspecified),
    ] {
        let err = fetcher.get(uri).await.unwrap_err();
        assert!(
            matches!(err, JwksFetchError::ForbiddenAddress { class: c, .. } if c == class),
            "{uri}: {err:?}"
        );
        assert!(!err.describe().contains("127.0.0.1"), "{}", err.describe());
    }
    // A host name is checked after resolution, inside the resolver, before connecting.
    for uri in [
        server.uri(),
        format!("https://127.0.0.1:{}/jwks", server.addr.port()),
    ] {
        let err = fetcher.get(&uri).await.unwrap_err();
        assert!(
            matches!(
                err,
                JwksFetchError::ForbiddenAddress {
                    class: AddressClass::Loopback,
                    ..
                }
            ),
            "{uri}: {err:?}"
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_set_with_a_private_key_is_refused() {
    let server = TestServer::ok(
        r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#,
        "",
    )
    .await;
    let err = fetcher(&server.config(), &clock())
        .get(&server.uri())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, JwksFetchError::NotAJwks(reason) if reason.contains("private member \"d\"")),
        "{err:?}"
    );
    assert!(!err.to_string().contains("nWGxne"));
}

#[tokio::test]
async fn a_body_that_is_not_json_is_refused() {
    let server = TestServer::ok("<html>secret internal page</html>", "").await;
    let err = fetcher(&server.config(), &clock())
        .get(&server.uri())
        .await
        .unwrap_err();
    assert!(matches!(err, JwksFetchError::NotAJwks(_)), "{err:?}");
    assert!(!err.to_string().contains("secret"));
    assert!(!err.describe().contains("secret"));
}

#[test]
fn parse_jwks_skips_keys_it_cannot_use_and_refuses_private_ones() {
    let jwks = parse_jwks(
        br#"{"keys":[
          {"kty":"AKP","alg":"ML-DSA-44","pub":"AA"},
          {"kty":"EC","crv":"P-256","x":"AA"},
          {"kid":"k1","kty":"OKP","crv":"Ed25519","x":"AA"}]}"#,
    )
    .unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid(), Some("k1"));
    for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let body = format!(r#"{{"keys":[{{"kty":"RSA","n":"AA","e":"AQAB","{private}":"AA"}}]}}"#);
        assert!(
            matches!(
                parse_jwks(body.as_bytes()),
                Err(JwksFetchError::NotAJwks(_))
            ),
            "{private}"
        );
    }
    for not_a_set in [&br#"{"keys":{}}"#[..], b"[]", br#"{"keys":[1]}"#, b""] {
        assert!(matches!(
            parse_jwks(not_a_set),
            Err(JwksFetchError::NotAJwks(_))
        ));
    }
}

#[test]
fn the_cache_evicts_the_least_recently_used_uri() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut fetcher = fetcher(&ClientJwksConfig::default(), &clock());
    fetcher.max_entries = 2;
    fetcher.entry("https://a.example/");
    fetcher.entry("https://b.example/");
    fetcher.entry("https://a.example/");
    fetcher.entry("https://c.example/");
    let entries = fetcher.lock_entries();
    let mut uris: Vec<_> = entries.keys().cloned().collect();
    uris.sort();
    assert_eq!(uris, ["https://a.example/", "https://c.example/"]);
}

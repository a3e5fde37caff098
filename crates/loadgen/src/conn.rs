//! One bare HTTP/1.1 keep-alive connection over TLS (hyper's connection API over tokio-rustls),
//! for loads whose requests are cheap enough that the client's own cost shows: no pool, no
//! redirect or cookie handling, no URL parsing per request, and the connection driven in the
//! worker's own task rather than in a task of its own, so a request costs no cross-task wake-ups.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// The media type of an HTML form body.
const FORM: &str = "application/x-www-form-urlencoded";

/// A TLS client configuration that trusts only the CA in `ca_file`, offers HTTP/1.1 only
/// (ALPN), and presents `identity` (a certificate and its key) when the server asks for one.
///
/// # Errors
/// When the CA file cannot be read or holds no certificate, or the identity is not usable.
pub fn tls_config(
    ca_file: &Path,
    identity: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let pem = std::fs::read(ca_file).with_context(|| format!("reading {}", ca_file.display()))?;
    let mut roots = RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate =
            certificate.with_context(|| format!("{} is not PEM", ca_file.display()))?;
        roots
            .add(certificate)
            .with_context(|| format!("a certificate in {}", ca_file.display()))?;
    }
    if roots.is_empty() {
        bail!("{} holds no certificate", ca_file.display());
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some((certificate, key)) => builder
            .with_client_auth_cert(vec![certificate], key)
            .context("the client certificate and key")?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Where requests go: an `https` URL's host, port and path, and the TLS configuration.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`, to connect to.
    address: String,
    /// The `Host` header.
    host: HeaderValue,
    /// What the server's certificate must name.
    server_name: ServerName<'static>,
    /// The request target: the URL's path and query.
    path: Uri,
    tls: Arc<rustls::ClientConfig>,
}

impl Endpoint {
    /// The endpoint at `url` (`https` only), reached with `tls`.
    ///
    /// # Errors
    /// When `url` is not an absolute `https` URL with a host.
    pub fn new(url: &str, tls: Arc<rustls::ClientConfig>) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("{url} is not a URL"))?;
        if parsed.scheme() != "https" {
            bail!("{url} is not an https URL");
        }
        let host = parsed
            .host_str()
            .with_context(|| format!("{url} has no host"))?;
        let port = parsed.port_or_known_default().unwrap_or(443);
        // An IPv6 literal keeps its brackets in the address and Host header, not in the name.
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let mut path = parsed.path().to_owned();
        if let Some(query) = parsed.query() {
            path.push('?');
            path.push_str(query);
        }
        let authority = match parsed.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Ok(Self {
            address: format!("{host}:{port}"),
            host: HeaderValue::try_from(authority).context("the Host header")?,
            server_name: ServerName::try_from(name.to_owned())
                .with_context(|| format!("{name} is not a server name"))?,
            path: path.parse().with_context(|| format!("the path of {url}"))?,
            tls,
        })
    }

    /// Another path on the same host.
    ///
    /// # Errors
    /// When `path` is not an absolute path.
    pub fn with_path(&self, path: &str) -> anyhow::Result<Self> {
        let mut other = self.clone();
        other.path = path
            .parse()
            .with_context(|| format!("{path} is not a path"))?;
        Ok(other)
    }

    /// A `POST` of the form `body` to the endpoint.
    #[must_use]
    pub fn post_form(&self, body: Bytes) -> Request<Full<Bytes>> {
        let mut request = self.get();
        *request.method_mut() = Method::POST;
        *request.body_mut() = Full::new(body);
        request
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(FORM));
        request
    }

    /// A `GET` of the endpoint.
    #[must_use]
    pub fn get(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = self.path.clone();
        request.headers_mut().insert(HOST, self.host.clone());
        request
    }

    /// A new connection: TCP, the TLS handshake, HTTP/1.1.
    ///
    /// # Errors
    /// [`Fault::Connect`] with the cause.
    pub async fn connect(&self) -> Result<Connection, Fault> {
        let fault = |what: &str, error: &dyn std::error::Error| {
            Fault::Connect(format!("{what}: {}", crate::token::chain(error)))
        };
        let tcp = TcpStream::connect(&self.address)
            .await
            .map_err(|e| fault("TCP", &e))?;
        tcp.set_nodelay(true).map_err(|e| fault("TCP", &e))?;
        let tls = TlsConnector::from(Arc::clone(&self.tls))
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| fault("TLS", &e))?;
        let (sender, connection) = http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| fault("HTTP/1.1", &e))?;
        Ok(Connection { sender, connection })
    }
}

/// Why a request got no answer.
#[derive(Debug)]
pub enum Fault {
    /// No connection could be made.
    Connect(String),
    /// The request or its answer failed on the connection, which is then done for.
    Exchange(String),
    /// No complete answer in time.
    Timeout,
}

impl Fault {
    /// The kind, for the report.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Connect(_) => "transport: connect",
            Fault::Exchange(_) => "transport: exchange",
            Fault::Timeout => "transport: timeout",
        }
    }

    /// What happened.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Fault::Connect(detail) | Fault::Exchange(detail) => detail.clone(),
            Fault::Timeout => "no complete answer within the timeout".into(),
        }
    }
}

/// An open connection, one request at a time.
#[derive(Debug)]
pub struct Connection {
    sender: http1::SendRequest<Full<Bytes>>,
    connection: http1::Connection<TokioIo<TlsStream<TcpStream>>, Full<Bytes>>,
}

impl Connection {
    /// Sends `request` and reads the whole answer within `timeout`. After an error the
    /// connection is done for.
    ///
    /// # Errors
    /// [`Fault::Exchange`] or [`Fault::Timeout`].
    pub async fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<(StatusCode, Bytes), Fault> {
        let Self { sender, connection } = self;
        let exchange = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        };
        // The connection makes progress only while it is polled: alongside the exchange.
        let driven = async {
            tokio::select! {
                answer = exchange => answer.map_err(|e| Fault::Exchange(crate::token::chain(&e))),
                closed = connection => Err(Fault::Exchange(match closed {
                    Ok(()) => "the server closed the connection".into(),
                    Err(e) => crate::token::chain(&e),
                })),
            }
        };
        tokio::time::timeout(timeout, driven)
            .await
            .unwrap_or(Err(Fault::Timeout))
    }
}

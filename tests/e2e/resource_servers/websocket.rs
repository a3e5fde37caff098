//! A WebSocket client for `market-stream`: TLS made here with tokio-rustls (trusting only the
//! example's test CA, presenting a client certificate when given), the upgrade by
//! `tokio-tungstenite` with the `Authorization` and `DPoP` headers, JSON text frames.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use portcullis_testkit::certs::ClientIdentity;
use rustls_pki_types::ServerName;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};

use super::harness::Api;

/// An open session.
pub(crate) struct Session {
    ws: WebSocketStream<TlsStream<TcpStream>>,
}

/// What the server sent.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A JSON text frame.
    Message(Value),
    /// A close frame (or the end of the stream: code 1006).
    Closed { code: u16, reason: String },
}

/// An upgrade the server refused: its status and body.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: u16,
    pub(crate) body: Value,
}

/// A TLS connection to the example, presenting `identity` if given.
async fn tls(api: &Api, identity: Option<&ClientIdentity>) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut api.server_ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match identity {
        Some(identity) => {
            let chain = rustls_pemfile::certs(&mut identity.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pemfile::private_key(&mut identity.key_pem.as_bytes())
                .unwrap()
                .unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let listen = api.server.listen;
    let tcp = TcpStream::connect(listen).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(listen.ip().into()), tcp)
        .await
        .unwrap()
}

impl Session {
    /// Upgrades `GET path_and_query` (e.g. `/stream`) with `headers`, over a connection presenting
    /// `identity` if given.
    pub(crate) async fn open(
        api: &Api,
        identity: Option<&ClientIdentity>,
        path_and_query: &str,
        headers: &[(&str, String)],
    ) -> Result<Session, Refused> {
        let stream = tls(api, identity).await;
        let url = format!(
            "wss://{}{path_and_query}",
            api.server
                .public_url
                .trim_start_matches("https://")
                .trim_end_matches('/')
        );
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            let name = tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap();
            request.headers_mut().append(name, value.parse().unwrap());
        }
        match tokio_tungstenite::client_async(request, stream).await {
            Ok((ws, _)) => Ok(Session { ws }),
            Err(tungstenite::Error::Http(response)) => Err(Refused {
                status: response.status().as_u16(),
                body: response
                    .body()
                    .as_deref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or(Value::Null),
            }),
            Err(e) => panic!("WebSocket upgrade failed: {e}"),
        }
    }

    /// [`Session::open`], which must succeed.
    pub(crate) async fn connect(
        api: &Api,
        identity: Option<&ClientIdentity>,
        headers: &[(&str, String)],
    ) -> Session {
        Session::open(api, identity, "/stream", headers)
            .await
            .unwrap_or_else(|r| panic!("upgrade refused: {} {}", r.status, r.body))
    }

    /// Sends `message` as a JSON text frame.
    pub(crate) async fn send(&mut self, message: &Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next JSON message or the close, within `patience` (pings and pongs skipped).
    pub(crate) async fn next(&mut self, patience: Duration) -> Incoming {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server within {patience:?}"));
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Incoming::Message(
                        serde_json::from_str(text.as_str())
                            .unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
                    );
                }
                Some(Ok(Message::Close(frame))) => {
                    return match frame {
                        Some(frame) => Incoming::Closed {
                            code: u16::from(frame.code),
                            reason: frame.reason.as_str().to_owned(),
                        },
                        None => Incoming::Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Binary(bytes))) => panic!("a binary frame: {bytes:?}"),
                Some(Err(_)) | None => {
                    return Incoming::Closed {
                        code: 1006,
                        reason: "the connection ended without a close frame".into(),
                    };
                }
            }
        }
    }

    /// Skips ticks until a message of `kind` (`"type"`), which it returns; panics on a close or
    /// another kind of message.
    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + super::harness::PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Incoming::Message(m) if m["type"] == kind => return m,
                Incoming::Message(m) if m["type"] == "tick" => {}
                other => panic!("expected a {kind} message, got {other:?}"),
            }
        }
    }

    /// Reads ticks until the close, which must come within `patience`; its code and reason, and
    /// when it came. Any message other than a tick fails.
    pub(crate) async fn until_closed(&mut self, patience: Duration) -> (u16, String, Instant) {
        let deadline = Instant::now() + patience;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Incoming::Message(m) if m["type"] == "tick" => {}
                Incoming::Message(m) => panic!("expected ticks until the close, got {m}"),
                Incoming::Closed { code, reason } => return (code, reason, Instant::now()),
            }
        }
    }
}

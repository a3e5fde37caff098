//! Our own accept loop (axum's `serve` cannot see client certificates): TCP accept under a
//! connection limit, the TLS handshake under a timeout, then hyper's auto builder (HTTP/1.1 and
//! HTTP/2 by ALPN, WebSocket upgrades) with header size and header-read time limits. Each request
//! gets a [`ConnectionInfo`] extension and, when one was presented, the client certificate as an
//! `Arc<ClientCertificate>` extension. Graceful shutdown: on the signal the loop stops accepting,
//! open connections finish their requests, and after the grace period they are dropped.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use ipnet::IpNet;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use super::ListenerKind;
use super::client_cert::{CertificateSource, ClientCertificate, ConnectionInfo, resolve};
use crate::metrics::Metrics;

/// The limits one listener applies to its connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time to finish the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time to send a request's headers (also bounds an idle HTTP/1.1 keep-alive connection).
    pub header_read_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Most open connections.
    pub max_connections: usize,
    /// Time open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Proxies whose RFC 9440 `Client-Cert` header is believed.
    pub trusted_proxies: Arc<[IpNet]>,
}

/// One TLS listener, ready to serve.
#[derive(Debug)]
pub struct TlsListener {
    /// Which listener this is.
    pub kind: ListenerKind,
    /// The bound socket.
    pub tcp: TcpListener,
    /// The rustls configuration.
    pub tls: Arc<rustls::ServerConfig>,
}

/// Resolves once shutdown has been signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Serves `router` on `listener` until `shutdown` turns true, then drains for the grace period.
pub async fn serve(
    listener: TlsListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let kind = listener.kind;
    let acceptor = TlsAcceptor::from(listener.tls);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.max_concurrent_streams)
        // Pings find peers that vanished without closing, so their connection slots come back.
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = Arc::new(builder);

    loop {
        // Wait for a free slot before accepting: at the limit, new connections wait in the
        // kernel's accept queue instead of being accepted and starved.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut shutdown) => break,
        };
        let (tcp, remote_addr) = tokio::select! {
            accepted = listener.tcp.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: log, back off briefly, keep serving.
                    tracing::warn!(listener = kind.as_str(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let limits = limits.clone();
        let metrics = metrics.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    metrics.tls_handshake_failed(kind, "error");
                    tracing::debug!(listener = kind.as_str(), peer = %remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    metrics.tls_handshake_failed(kind, "timeout");
                    tracing::debug!(listener = kind.as_str(), peer = %remote_addr, "TLS handshake timed out");
                    return;
                }
            };
            let handshake_certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.split_first())
                .map(|(der, intermediates)| {
                    Arc::new(
                        ClientCertificate::new(
                            der.clone().into_owned(),
                            CertificateSource::Handshake,
                        )
                        .with_intermediates(intermediates),
                    )
                });
            let info = ConnectionInfo {
                remote_addr,
                listener: kind,
                handshake_certificate,
            };
            let _open = metrics.connection_opened(kind);

            let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
                let certificate = resolve(request.headers_mut(), &info, &limits.trusted_proxies);
                request.extensions_mut().insert(info.clone());
                if let Some(certificate) = certificate {
                    request.extensions_mut().insert(certificate);
                }
                router.clone().oneshot(request)
            });
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(tls),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(listener = kind.as_str(), peer = %remote_addr, error = %e, "connection ended with an error");
            }
        });
    }

    drop(listener.tcp);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            listener = kind.as_str(),
            "connections still open after the shutdown grace period; closing them"
        );
    }
}

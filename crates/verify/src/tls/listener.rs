//! Our own accept loop (axum's `serve` cannot see client certificates): TCP accept under a
//! connection limit, the TLS handshake under a timeout, then hyper's auto builder (HTTP/1.1 and
//! HTTP/2 by ALPN, WebSocket upgrades) with header size and header-read time limits. Each request
//! gets a [`ConnectionInfo`] extension and, when one was presented, the client certificate as an
//! `Arc<ClientCertificate>` extension. Graceful shutdown: on the signal the loop stops accepting,
//! open connections finish their requests, and after the grace period they are dropped.
//!
//! An upgraded connection (a WebSocket) leaves hyper, and with it this loop's connection limit
//! and drain: a WebSocket handler should watch the shutdown signal itself and bound its sessions.

use std::future::Future;
use std::net::SocketAddr;
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

use super::{ListenerKind, ServerIdentity, TlsError, server_config};
use crate::certificate::{CertificateSource, ClientCertificate, resolve};

/// What a handler knows about the connection a request came on: a request extension, inserted
/// by [`serve`] into every request.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The peer address (the proxy's, behind a proxy).
    pub remote_addr: SocketAddr,
    /// The listener.
    pub listener: ListenerKind,
    /// The certificate the client presented in the handshake, if any. Handlers should read the
    /// `Arc<ClientCertificate>` extension instead, which also honours trusted proxies.
    pub handshake_certificate: Option<Arc<ClientCertificate>>,
}

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
    /// Most open connections; further ones wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// Proxies whose RFC 9440 `Client-Cert` header is believed (see
    /// [`resolve`](crate::certificate::resolve)).
    pub trusted_proxies: Arc<[IpNet]>,
}

impl Default for ConnectionLimits {
    /// The authorization server's defaults: a 10 s handshake, 10 s to send headers, 16 KiB of
    /// headers, 100 HTTP/2 streams per connection, 10,000 connections, 10 s to drain at
    /// shutdown, and no trusted proxies.
    fn default() -> Self {
        Self {
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
            max_concurrent_streams: 100,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(10),
            trusted_proxies: Arc::from([]),
        }
    }
}

/// One TLS listener, ready to [`serve`].
#[derive(Debug)]
pub struct TlsListener {
    /// Which listener this is.
    pub kind: ListenerKind,
    /// The bound socket.
    pub tcp: TcpListener,
    /// The rustls configuration, usually from [`server_config`].
    pub tls: Arc<rustls::ServerConfig>,
}

impl TlsListener {
    /// Binds `addr` and builds the rustls configuration for `kind` with [`server_config`].
    ///
    /// # Errors
    /// [`TlsError::Bind`] if the address cannot be bound; [`TlsError::Rustls`] if rustls refuses
    /// the certificate or key.
    pub async fn bind(
        addr: SocketAddr,
        kind: ListenerKind,
        identity: &ServerIdentity,
    ) -> Result<Self, TlsError> {
        let tls = server_config(identity, kind)?;
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| TlsError::Bind { addr, source })?;
        Ok(Self { kind, tcp, tls })
    }

    /// The bound address (to learn the port when bound to port 0).
    ///
    /// # Errors
    /// The socket's error.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

/// Told about connections by [`serve`], for metrics. Both methods do nothing by default.
pub trait ListenerObserver: Send + Sync {
    /// A TLS handshake failed. `reason` is `"error"` (the handshake went wrong) or `"timeout"`
    /// (it took longer than [`ConnectionLimits::handshake_timeout`]).
    fn handshake_failed(&self, listener: ListenerKind, reason: &'static str) {
        let _ = (listener, reason);
    }

    /// A connection finished its handshake. It counts as open until the returned value is
    /// dropped, which happens when the connection closes (or is upgraded, see the module docs).
    fn connection_opened(&self, listener: ListenerKind) -> Box<dyn Send> {
        let _ = listener;
        Box::new(())
    }
}

/// A [`ListenerObserver`] that observes nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl ListenerObserver for NoObserver {}

/// Resolves once shutdown has been signalled (or its sender is gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

/// Serves `router` on `listener` until `shutdown` turns true (or its sender is dropped), then
/// lets open connections finish for [`ConnectionLimits::shutdown_grace`] and returns.
pub async fn serve(
    listener: TlsListener,
    router: Router,
    limits: ConnectionLimits,
    observer: Arc<dyn ListenerObserver>,
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
        let observer = observer.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(tcp))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    observer.handshake_failed(kind, "error");
                    tracing::debug!(listener = kind.as_str(), peer = %remote_addr, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    observer.handshake_failed(kind, "timeout");
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
            let _open = observer.connection_opened(kind);

            let service = tower::service_fn(move |mut request: http::Request<Incoming>| {
                let certificate = resolve(
                    request.headers_mut(),
                    info.remote_addr,
                    info.handshake_certificate.as_ref(),
                    &limits.trusted_proxies,
                );
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

/// A resource server's HTTPS listener in one call: binds `addr` as a [`ListenerKind::Mtls`]
/// listener (a client certificate is asked for, not required), serves `router` until `shutdown`
/// resolves, then drains open connections for [`ConnectionLimits::shutdown_grace`].
///
/// Handlers find the presented certificate as an `Arc<ClientCertificate>` request extension and
/// the connection as a [`ConnectionInfo`] extension.
///
/// # Errors
/// [`TlsError::Bind`] or [`TlsError::Rustls`] if the listener cannot be set up; once serving, it
/// returns `Ok(())` after shutdown.
pub async fn serve_api(
    addr: SocketAddr,
    identity: &ServerIdentity,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), TlsError> {
    let listener = TlsListener::bind(addr, ListenerKind::Mtls, identity).await?;
    let (stop, stopped) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    tokio::join!(
        signal,
        serve(listener, router, limits, Arc::new(NoObserver), stopped)
    );
    Ok(())
}

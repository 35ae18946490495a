//! Accepting connections: plain TCP or TLS (rustls), a cap on open connections and on the
//! share of them one address may hold, deadlines from accept for the TLS handshake, the
//! first byte and the request headers, the peer address for every request, and graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::first_read::FirstReadDeadline;
use super::per_address::PerAddress;

/// Time a client has to finish the TLS handshake, to send its first byte, and to send its
/// request headers, each counted from when the previous step ended. Long enough for a slow
/// link; short enough that idle sockets cannot pile up.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Connection slots no single address may take: a tenth of them, and at least this many,
/// stay free for everyone else (operators, other runners, the load balancer's probes).
const MIN_SLOTS_KEPT_FOR_OTHERS: usize = 16;

/// HTTP/2 connections are pinged this often when idle, and dropped when a ping goes
/// unanswered for [`HANDSHAKE_DEADLINE`]: a peer that vanished does not keep its slot.
const HTTP2_KEEP_ALIVE: Duration = Duration::from_secs(20);

/// The most connections one address may hold by default: all but the slots kept for
/// others.
pub fn default_per_address(max_connections: usize) -> usize {
    let kept = (max_connections / 10).max(MIN_SLOTS_KEPT_FOR_OTHERS);
    max_connections.saturating_sub(kept).max(1)
}

/// Time open connections get to finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// After a failed accept (such as running out of file descriptors), wait this long rather
/// than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// How the listener runs.
#[derive(Clone)]
pub struct ListenOptions {
    /// TLS server configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Most connections open at once; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most connections one address may hold; more from it are closed at once.
    pub max_per_address: usize,
}

impl std::fmt::Debug for ListenOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenOptions")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("max_per_address", &self.max_per_address)
            .finish()
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets open connections finish for a
/// bounded time.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: ListenOptions,
    shutdown: CancellationToken,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let permits = Arc::new(Semaphore::new(options.max_connections));
    let per_address = PerAddress::new(options.max_per_address);
    let tls = options.tls.map(TlsAcceptor::from);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(error = %error, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let Some(held) = per_address.take(peer.ip()) else {
            tracing::warn!(%peer, limit = options.max_per_address, "connection refused: this address holds its share of connections");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (router, graceful, tls) = (router.clone(), Arc::clone(&graceful), tls.clone());
        tokio::spawn(async move {
            let _permit = (permit, held);
            match tls {
                None => {
                    let tcp = FirstReadDeadline::new(tcp, HANDSHAKE_DEADLINE);
                    serve_connection(tcp, peer, router, &graceful).await;
                }
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let stream = FirstReadDeadline::new(stream, HANDSHAKE_DEADLINE);
                            serve_connection(stream, peer, router, &graceful).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, error = %error, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if let Ok(graceful) = Arc::try_unwrap(graceful) {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    }
}

async fn serve_connection<I>(io: I, peer: SocketAddr, router: Router, graceful: &GracefulShutdown)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(request.map(axum::body::Body::new))
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_DEADLINE);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE)
        .keep_alive_timeout(HANDSHAKE_DEADLINE);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(error) = graceful.watch(connection.into_owned()).await {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
    }
}

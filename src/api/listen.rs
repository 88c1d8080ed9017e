//! The accept loop behind every port of `tenantctl serve`: hyper's HTTP/1 (and h2c)
//! connections with a deadline on each request's headers and then on its body,
//! drained gracefully on stop.
//!
//! `axum::serve` gives hyper no timer, so a client that opens a connection and never
//! finishes its request line and headers keeps it (and its task and buffers) for
//! ever; a few thousand such clients exhaust the process's file descriptors. Here
//! hyper runs with tokio's timer and `--request-read-timeout`: a connection whose
//! next request's headers are not all in by then is closed (which also closes a
//! keep-alive connection idle that long), and a body not all in that long after its
//! headers fails the request, whose handler answers 400 and lets the connection go.
//!
//! Each port also holds at most `--max-connections` connections at once. Past that it
//! stops accepting: new clients wait in the kernel's listen backlog until one closes
//! (slow ones are closed by the read timeout), so a flood of connections cannot take
//! the file descriptors the process's own calls to DynamoDB and AWS need.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::{watch, Semaphore};

use crate::api;

/// What a connection says about its transport: whether it is TLS, so its requests are
/// marked [`api::OverTls`] (the dashboard's cookies are then `Secure`).
pub trait Transport {
    fn over_tls(&self) -> bool;
}

/// Serves `app` on `listener` (the port called `port` in the log) until `stop` turns
/// true; then stops accepting, lets each connection finish the request it is on, and
/// returns once all have closed (`serve` bounds that wait with `--drain-timeout`).
/// Each request's headers must arrive within `read_timeout`, and then its body within
/// as long again.
pub fn serve_until<L>(
    port: &'static str,
    mut listener: L,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
    read_timeout: Duration,
) -> Pin<Box<dyn Future<Output = io::Result<()>> + Send>>
where
    L: axum::serve::Listener,
    L::Io: Transport,
{
    let app = app.layer(axum::middleware::map_request(
        move |request: axum::extract::Request| async move {
            // A request without a body (most of them) has nothing to wait for.
            match http_body::Body::is_end_stream(request.body()) {
                true => request,
                false => request.map(|body| Body::new(BodyDeadline::new(body, read_timeout))),
            }
        },
    ));
    let over_tls = app.clone().layer(axum::Extension(api::OverTls));
    Box::pin(async move {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(read_timeout);
        let graceful = GracefulShutdown::new();
        loop {
            let (io, _peer) = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|stop| *stop) => break,
            };
            let app = if io.over_tls() {
                over_tls.clone()
            } else {
                app.clone()
            };
            let connection = builder
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(app))
                .into_owned();
            let connection = graceful.watch(connection);
            tokio::spawn(async move {
                // A client that went away, or one too slow with its headers.
                if let Err(e) = connection.await {
                    tracing::debug!(error = %e, "a connection ended with an error");
                }
            });
        }
        tracing::info!(port, "draining in-flight requests");
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    })
}

/// How often, at most, a port at its connection limit says so.
const AT_LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// A TCP listener that holds at most `max_connections` connections at once, counted
/// from accept until the connection is dropped (a TLS handshake in progress counts).
/// At the limit it stops accepting, so new clients wait in the kernel's backlog.
/// Connections it accepts send without delay (`TCP_NODELAY`).
pub struct LimitedListener {
    port: &'static str,
    tcp: tokio::net::TcpListener,
    open: Arc<Semaphore>,
    max_connections: usize,
    warned_at: Option<Instant>,
}

impl LimitedListener {
    pub fn new(port: &'static str, tcp: tokio::net::TcpListener, max_connections: usize) -> Self {
        LimitedListener {
            port,
            tcp,
            open: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            warned_at: None,
        }
    }

    /// The next connection, once one of the limit's slots is free. Errors of accept
    /// itself (out of file descriptors and the like) are returned; the caller waits
    /// before trying again.
    pub async fn accept(&mut self) -> io::Result<(Slotted, std::net::SocketAddr)> {
        let slot = match self.open.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if self
                    .warned_at
                    .is_none_or(|at| at.elapsed() >= AT_LIMIT_WARNING_EVERY)
                {
                    self.warned_at = Some(Instant::now());
                    tracing::warn!(
                        port = self.port,
                        max_connections = self.max_connections,
                        "every connection this port may hold is open; new ones wait in the listen backlog \
                         until one closes (raise --max-connections if the clients are legitimate)"
                    );
                }
                (self.open.clone().acquire_owned().await).expect("the semaphore is never closed")
            }
        };
        let (mut stream, peer) = self.tcp.accept().await?;
        api::no_delay(&mut stream);
        Ok((Slotted { stream, _slot: slot }, peer))
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = Slotted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match LimitedListener::accept(self).await {
                Ok(accepted) => return accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(port = self.port, error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}

/// A connection that holds one of its [`LimitedListener`]'s slots until dropped.
pub struct Slotted {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Slotted {
    pub fn tcp(&self) -> &tokio::net::TcpStream {
        &self.stream
    }
}

impl Transport for Slotted {
    fn over_tls(&self) -> bool {
        false
    }
}

impl tokio::io::AsyncRead for Slotted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Slotted {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// `serve`'s `--request-read-timeout` and `--max-connections` when not given, in
/// the form their parsers ([`read_timeout`], [`max_connections`]) read.
pub const DEFAULT_READ_TIMEOUT: &str = "30s";
pub const DEFAULT_MAX_CONNECTIONS: &str = "1024";

/// Parses `--max-connections`: a count above zero.
pub fn max_connections(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("0 would accept no connection; use a count like 1024".into()),
        Ok(count) if count > Semaphore::MAX_PERMITS => Err(format!(
            "{count} is more than this server can count; use at most {}",
            Semaphore::MAX_PERMITS
        )),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("{text:?} is not a count; use a whole number like 1024")),
    }
}

/// A request body that fails once `limit` has passed since the request's headers
/// arrived without all of it having come.
struct BodyDeadline {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
}

impl BodyDeadline {
    fn new(inner: Body, limit: Duration) -> Self {
        BodyDeadline {
            inner,
            deadline: Box::pin(tokio::time::sleep(limit)),
            limit,
        }
    }
}

/// The error a [`BodyDeadline`] ends with; request handlers show it to the client.
#[derive(Debug, thiserror::Error)]
#[error("the body did not arrive within {} of the request's headers; send it whole and at once", humantime::format_duration(*.0))]
struct BodyTimedOut(Duration);

impl http_body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let limit = self.limit;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut(limit)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Parses `--request-read-timeout`: a duration above zero.
pub fn read_timeout(text: &str) -> Result<Duration, String> {
    let timeout =
        humantime::parse_duration(text).map_err(|e| format!("{e}; use a duration like 30s or 2m"))?;
    if timeout.is_zero() {
        return Err("0s would close every connection at once; use a duration like 30s".into());
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_read_timeout_is_a_duration_above_zero() {
        assert_eq!(read_timeout("45s"), Ok(Duration::from_secs(45)));
        assert!(read_timeout("0s").unwrap_err().contains("30s"));
        assert!(read_timeout("soon").unwrap_err().contains("like 30s"));
    }

    #[test]
    fn the_connection_limit_is_a_count_above_zero() {
        assert_eq!(max_connections("1024"), Ok(1024));
        assert!(max_connections("0").unwrap_err().contains("like 1024"));
        assert!(max_connections("-3").unwrap_err().contains("not a count"));
        assert!(max_connections(&u64::MAX.to_string())
            .unwrap_err()
            .contains("at most"));
    }
}

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

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;

use tenant_orchestrator::api;

/// What a connection says about its transport: whether it is TLS, so its requests are
/// marked [`api::OverTls`] (the dashboard's cookies are then `Secure`).
pub trait Transport {
    fn over_tls(&self) -> bool;
}

impl Transport for tokio::net::TcpStream {
    fn over_tls(&self) -> bool {
        false
    }
}

/// Serves `app` on `listener` until `stop` turns true; then stops accepting, lets
/// each connection finish the request it is on, and returns once all have closed
/// (`serve` bounds that wait with `--drain-timeout`). Each request's headers must
/// arrive within `read_timeout`, and then its body within as long again.
pub fn serve_until<L>(
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
            request.map(|body| Body::new(BodyDeadline::new(body, read_timeout)))
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
        tracing::info!("draining in-flight requests");
        drop(listener);
        graceful.shutdown().await;
        Ok(())
    })
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
}

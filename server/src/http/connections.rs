//! The HTTP/1.1 connections of `serve`: the accept loop, its timeouts and its connection cap.
//!
//! A peer must not be able to hold a connection, and so a file descriptor, for free (issue 20:
//! a half-sent request header still held its connection after 70 s). Three limits, all in the
//! configuration:
//!
//! * `header_read_timeout`: a request head (request line and headers) must arrive whole within
//!   it, counted from the moment the server waits for one, so it also ends a keep-alive
//!   connection on which no next request starts (hyper's `header_read_timeout`);
//! * `idle_timeout`: a connection on which no byte moved in either direction for that long is
//!   closed, whatever it waits for: a request body that stopped arriving, a download the client
//!   stopped reading (hyper itself has no write timeout);
//! * `max_connections`: beyond it, a new connection is answered `503` with `Retry-After` and
//!   closed at once, before anything is read from it; the connections being served keep going.
//!
//! Shutdown stops accepting, lets each connection finish the request it is serving, and gives
//! up on those still open after the drain deadline.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// The answer to a connection beyond `max_connections`, written in one go before anything is
/// read. The body has ASU's error shape (`{"detail", "status"}`).
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: application/json\r\n\
retry-after: 5\r\n\
connection: close\r\n\
content-length: 83\r\n\
\r\n\
{\"detail\":\"the server has too many open connections, try again later\",\"status\":503}";

/// Refused connections that may linger at once while their request is drained (so that closing
/// them sends FIN, not a reset that could destroy the `503` before the client reads it); more
/// are closed at once.
const MAX_REFUSED_LINGERING: usize = 64;

/// How long a refused connection may linger.
const REFUSED_LINGER: Duration = Duration::from_secs(1);

/// Pause after a failed `accept` (typically `EMFILE`: out of file descriptors), so the loop does
/// not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The connection limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// See `header_read_timeout` in the module docs.
    pub header_read_timeout: Duration,
    /// See `idle_timeout` in the module docs.
    pub idle_timeout: Duration,
    /// See `max_connections` in the module docs.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The limits `config` sets.
    pub fn of(config: &Config) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, then drains open connections for at most
/// `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
    drain: Duration,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let lingering = Arc::new(Semaphore::new(MAX_REFUSED_LINGERING));
    let refused = AtomicU64::new(0);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::error!(error = %error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            let count = refused.fetch_add(1, Ordering::Relaxed).saturating_add(1);
            // Logged on the 1st, 2nd, 4th, 8th, ... refusal: visible, but a flood of refused
            // connections does not flood the log as well.
            if count.is_power_of_two() {
                tracing::warn!(
                    max_connections = limits.max_connections,
                    refused = count,
                    "connection cap reached, answering 503"
                );
            }
            refuse(stream, &lingering);
            continue;
        };
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let connection =
            graceful.watch(builder.serve_connection(io, TowerToHyperService::new(app.clone())));
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                served = connection => {
                    if let Err(error) = served {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!("closing a connection idle for {idle_timeout:?}");
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!("connections still open at the shutdown deadline");
        }
    }
}

/// Answers a connection beyond the cap with [`BUSY_RESPONSE`] and closes it.
fn refuse(stream: TcpStream, lingering: &Arc<Semaphore>) {
    // A fresh socket's send buffer is empty: the whole answer fits without waiting.
    let _ = stream.try_write(BUSY_RESPONSE);
    let Ok(permit) = Arc::clone(lingering).try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        let mut stream = stream;
        let _ = stream.shutdown().await;
        let _ = tokio::time::timeout(REFUSED_LINGER, async {
            let mut sink = [0u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(read) if read > 0) {}
        })
        .await;
        drop(permit);
    });
}

/// When a byte last moved on a connection.
#[derive(Debug)]
struct Activity {
    origin: Instant,
    /// Milliseconds after `origin`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, Ordering::Relaxed);
    }

    /// Returns once no byte moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
            let idle = self.origin.elapsed().saturating_sub(last);
            if idle >= limit {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(idle)).await;
        }
    }
}

/// A stream that records its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_response_declares_its_body_length() {
        let text = std::str::from_utf8(BUSY_RESPONSE).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["status"], 503);
    }
}

//! The HTTP listener: accepts the console's, API's and websocket's connections and
//! serves them with HTTP/1.1, under limits an attacker meets first.
//!
//! - **Connection caps.** At most `[http] max_connections` connections at once,
//!   and `max_connections_per_source` from one address; a connection beyond
//!   either is closed as soon as it is accepted (counted, logged at most every
//!   10 s), so a flood from one address cannot keep others out.
//! - **Header timeout.** A request's headers must have arrived within
//!   `header_timeout` (hyper's own timer, restarted for each request of a
//!   keep-alive connection): a slowloris client sending a byte at a time is cut off.
//! - **Idle timeout.** A connection (websockets included: they ping far more
//!   often) that moves no byte either way for `idle_timeout` is closed.
//!
//! On shutdown it stops accepting, asks every connection to finish its request
//! and close, and returns when they have.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::config::HttpSettings;

/// The listener's limits (from `[http]`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// See [`HttpSettings::header_timeout`].
    pub header_timeout: Duration,
    /// See [`HttpSettings::idle_timeout`].
    pub idle_timeout: Duration,
    /// See [`HttpSettings::max_connections`].
    pub max_connections: usize,
    /// See [`HttpSettings::max_connections_per_source`].
    pub max_per_source: usize,
}

impl From<&HttpSettings> for Limits {
    fn from(h: &HttpSettings) -> Self {
        Self {
            header_timeout: h.header_timeout,
            idle_timeout: h.idle_timeout,
            max_connections: h.max_connections,
            max_per_source: h.max_connections_per_source,
        }
    }
}

/// Connections refused by the caps since start (for logs and tests).
#[derive(Debug, Default)]
pub struct ListenerStats {
    /// Closed on accept: over a cap.
    pub refused: AtomicU64,
}

/// Who holds how many connections.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_source: HashMap<IpAddr, usize>,
}

/// One open connection's place in [`Open`]; given back when dropped.
struct Slot {
    open: Arc<Mutex<Open>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.per_source.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.per_source.remove(&self.ip);
                }
            }
        }
    }
}

/// Takes a place for a connection from `ip`, or `None` when a cap is reached.
fn admit(open: &Arc<Mutex<Open>>, ip: IpAddr, limits: &Limits) -> Option<Slot> {
    let mut o = open.lock().ok()?;
    let from_ip = o.per_source.get(&ip).copied().unwrap_or(0);
    if o.total >= limits.max_connections || from_ip >= limits.max_per_source {
        return None;
    }
    o.total += 1;
    *o.per_source.entry(ip).or_insert(0) += 1;
    Some(Slot {
        open: open.clone(),
        ip,
    })
}

/// Serves `app` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<ListenerStats>,
    mut stop: watch::Receiver<bool>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    // Connections hold a receiver; closing the sender asks them to finish.
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut last_refusal_log: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment, go on.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = admit(&open, peer.ip(), &limits) else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            let now = Instant::now();
            if last_refusal_log.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10)) {
                last_refusal_log = Some(now);
                tracing::warn!(source = %peer.ip(), refused = stats.refused.load(Ordering::Relaxed), "HTTP connection over the cap closed");
            }
            drop(tcp);
            continue;
        };
        // No Nagle delay: websocket events are small writes that must leave now.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let io = TokioIo::new(Idle::new(tcp, limits.idle_timeout));
            // The peer's address limits failed logins per client.
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let mut req = req.map(axum::body::Body::new);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    app.clone().oneshot(req)
                });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout);
            let conn = builder.serve_connection(io, service).with_upgrades();
            tokio::pin!(conn);
            let mut asked = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, %peer, "HTTP connection ended");
                        }
                        break;
                    }
                    _ = closing.wait_for(|c| *c), if !asked => {
                        asked = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(closing);
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    drop(closing_rx);
    // Every connection task holds a receiver until it ends.
    closing_tx.closed().await;
}

/// A TCP stream that fails with `TimedOut` once no byte has moved either way for
/// its idle time.
struct Idle {
    tcp: TcpStream,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl Idle {
    fn new(tcp: TcpStream, idle: Duration) -> Self {
        Self {
            tcp,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn moved(&mut self) {
        let at = Instant::now() + self.idle;
        self.timer.as_mut().reset(at);
    }

    /// `Pending` from the stream: has the idle time run out?
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "HTTP connection idle",
            )),
            Poll::Pending => Ok(()),
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.tcp).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for Idle {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.tcp).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.moved();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_caps_count_in_all_and_per_address_and_give_places_back() {
        let limits = Limits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections: 3,
            max_per_source: 2,
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let a1 = admit(&open, a, &limits).unwrap();
        let _a2 = admit(&open, a, &limits).unwrap();
        assert!(admit(&open, a, &limits).is_none(), "per address");
        let _b1 = admit(&open, b, &limits).unwrap();
        assert!(admit(&open, b, &limits).is_none(), "in all");
        drop(a1);
        assert!(admit(&open, b, &limits).is_some());
    }

    #[tokio::test]
    async fn a_connection_moving_no_byte_times_out() {
        use tokio::io::AsyncReadExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = TcpStream::connect(addr).await.unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let mut idle = Idle::new(tcp, Duration::from_millis(100));
        let mut buf = [0u8; 8];
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}

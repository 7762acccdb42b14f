//! The tokio side of the transports: one UDP socket and one TCP listener on the same
//! address, the TCP connections (accepted and opened), and the channel to the core.
//!
//! Messages are parsed here, on the receiving task, so the core only sees typed
//! messages (or the parse failure, which it answers). Sending never waits: UDP uses
//! `try_send_to` (a full socket buffer drops the datagram, as the network would, and
//! the transaction layer retransmits), TCP writes go through a per-connection queue.
//!
//! Overload is refused at this edge. The call core reports how long messages waited
//! before it handled them ([`CoreLoad`]); while that lag is above `shed_lag`, or the
//! core's inbox is more than `shed_fill` full, a new INVITE is answered here with a
//! stateless 503 and Retry-After instead of being queued, so calls already accepted
//! keep their latency and complete. (CPU saturation shows up as delay long before
//! the queue is deep, and a late answer only brings retransmissions.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::{ConnectionId, Target, TransportKind};
use crate::sip::endpoint::Transmit;
use crate::sip::wire::framing::{Frame, PONG, StreamFramer};
use crate::sip::wire::{Framing, Message, ParseError, Request, WireError, parse};

/// What the transports deliver to the core.
#[derive(Debug)]
// Messages are nearly all of the traffic; boxing them would cost an allocation each
// to shrink the rare `Unreachable`.
#[allow(clippy::large_enum_variant)]
pub enum Inbound {
    /// A message arrived (parsed, or why it could not be).
    Message {
        /// The parse result.
        message: Result<Message, ParseError>,
        /// Where it came from.
        source: Target,
        /// When the datagram or stream chunk was read.
        received: std::time::Instant,
    },
    /// A connection to `target` could not be made or broke with messages queued.
    Unreachable {
        /// The destination.
        target: Target,
    },
}

/// Counters for /metrics.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Messages received (parsed or not).
    pub received: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Messages that failed to parse.
    pub malformed: AtomicU64,
    /// UDP datagrams dropped because the socket buffer was full.
    pub send_drops: AtomicU64,
    /// New INVITEs refused with 503 at the edge because the core was behind.
    pub shed: AtomicU64,
    /// TCP connections currently open.
    pub tcp_connections: AtomicU64,
}

/// How far behind the call core is: an exponentially weighted average of how long
/// messages waited between being read and being handled. Written by the core,
/// read by the receive tasks.
#[derive(Debug, Default)]
pub struct CoreLoad {
    lag_us: AtomicU64,
}

impl CoreLoad {
    /// Records one message's wait (called by the single core task).
    pub fn record(&self, waited: Duration) {
        let sample = waited.as_micros().min(u128::from(u32::MAX)) as u64;
        let old = self.lag_us.load(Ordering::Relaxed);
        // EWMA with weight 1/16: smooth over a few hundred messages at load.
        let new = old - old / 16 + sample / 16;
        self.lag_us.store(new, Ordering::Relaxed);
    }

    /// The current average lag.
    pub fn lag(&self) -> Duration {
        Duration::from_micros(self.lag_us.load(Ordering::Relaxed))
    }
}

/// Transport settings.
#[derive(Debug, Clone)]
pub struct TransportSettings {
    /// The UDP and TCP listen address.
    pub listen: SocketAddr,
    /// A TCP connection idle this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Shed new INVITEs when the core's inbox holds more than this fraction.
    pub shed_fill: f32,
    /// Shed new INVITEs while the core's average lag is above this.
    pub shed_lag: Duration,
    /// Retry-After (seconds) in shed 503s.
    pub retry_after: u32,
}

struct Connection {
    writer: mpsc::UnboundedSender<Bytes>,
}

struct Shared {
    udp: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    connections: DashMap<ConnectionId, Connection>,
    by_peer: DashMap<SocketAddr, ConnectionId>,
    next_conn: AtomicU64,
    settings: TransportSettings,
    stats: Arc<TransportStats>,
    load: Arc<CoreLoad>,
}

/// A cheap handle for sending; clone it freely.
#[derive(Clone)]
pub struct Transports {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Transports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transports")
            .field("listen", &self.shared.settings.listen)
            .finish_non_exhaustive()
    }
}

impl Transports {
    /// Binds UDP and TCP on `settings.listen` (port 0 picks one, the same for both)
    /// and starts receiving into `inbound`.
    pub async fn bind(
        settings: TransportSettings,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Self> {
        let (udp, tcp) = bind_pair(settings.listen).await?;
        let shared = Arc::new(Shared {
            udp: Arc::new(udp),
            inbound,
            connections: DashMap::new(),
            by_peer: DashMap::new(),
            next_conn: AtomicU64::new(1),
            settings,
            stats: Arc::new(TransportStats::default()),
            load: Arc::new(CoreLoad::default()),
        });
        tokio::spawn(udp_receive(shared.clone()));
        tokio::spawn(tcp_accept(shared.clone(), tcp));
        Ok(Self { shared })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.shared.udp.local_addr()
    }

    /// Counters.
    pub fn stats(&self) -> Arc<TransportStats> {
        self.shared.stats.clone()
    }

    /// The core's lag gauge, which the core must keep up to date.
    pub fn load(&self) -> Arc<CoreLoad> {
        self.shared.load.clone()
    }

    /// Sends without waiting.
    pub fn send(&self, transmit: Transmit) {
        send(&self.shared, transmit.target, transmit.bytes);
    }
}

/// A UDP socket with large buffers: a burst of calls must queue in the kernel,
/// not be dropped by it (the kernel caps the sizes at net.core.rmem_max/wmem_max).
fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(8 << 20);
    let _ = socket.set_send_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket.into())
}

/// Binds UDP and TCP to the same port; with port 0, retries until both get one.
async fn bind_pair(listen: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last_err = None;
    for _ in 0..20 {
        let udp = udp_socket(listen)?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if listen.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("could not bind UDP and TCP to one port")))
}

fn send(shared: &Arc<Shared>, target: Target, bytes: Bytes) {
    match target.transport {
        TransportKind::Udp => match shared.udp.try_send_to(&bytes, target.addr) {
            Ok(_) => {
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                shared.stats.send_drops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!(%target, error = %e, "UDP send failed"),
        },
        TransportKind::Tcp => {
            let conn = target
                .connection
                .filter(|id| shared.connections.contains_key(id))
                .or_else(|| shared.by_peer.get(&target.addr).map(|id| *id));
            if let Some(id) = conn {
                if let Some(c) = shared.connections.get(&id) {
                    if c.writer.send(bytes.clone()).is_ok() {
                        shared.stats.sent.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                }
            }
            tokio::spawn(connect_and_send(shared.clone(), target, bytes));
        }
    }
}

/// Parses a message; should the parser ever panic on some input (it is fuzzed so
/// that it does not), the message is refused as malformed and logged, and the
/// receive task lives on: one bad datagram must not leave the engine deaf.
fn parse_guarded(bytes: Bytes, framing: Framing, from: SocketAddr) -> Result<Message, ParseError> {
    let raw = bytes.clone();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parse(bytes, framing))).unwrap_or_else(
        |_| {
            tracing::error!(%from, len = raw.len(), "the SIP parser panicked on this message; dropped it (please report it)");
            Err(ParseError::bare(WireError::Unparseable))
        },
    )
}

/// Whether a request is a new INVITE (no To tag), the only thing shed at the edge.
fn is_initial_invite(request: &Request) -> bool {
    request.method == crate::sip::wire::Method::Invite && request.headers.to.tag().is_none()
}

/// Delivers a parsed message to the core, or sheds it if the core is behind.
async fn deliver(
    shared: &Arc<Shared>,
    message: Result<Message, ParseError>,
    source: Target,
    received: std::time::Instant,
) {
    shared.stats.received.fetch_add(1, Ordering::Relaxed);
    if message.is_err() {
        shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
    }
    let max = shared.inbound.max_capacity();
    let used = max - shared.inbound.capacity();
    let overloaded = (used as f32) > shared.settings.shed_fill * max as f32
        || shared.load.lag() > shared.settings.shed_lag;
    if overloaded {
        if let Ok(Message::Request(req)) = &message {
            if is_initial_invite(req) {
                shared.stats.shed.fetch_add(1, Ordering::Relaxed);
                let mut resp = req.response_with_reason(503, "Service Unavailable: overloaded");
                resp.headers.to.set_tag("shed");
                resp.headers
                    .push("Retry-After", shared.settings.retry_after.to_string());
                send(shared, source, resp.to_bytes());
                return;
            }
        }
    }
    if shared
        .inbound
        .send(Inbound::Message {
            message,
            source,
            received,
        })
        .await
        .is_err()
    {
        tracing::debug!("core is gone; dropping inbound message");
    }
}

async fn udp_receive(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match shared.udp.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let received = tokio::time::Instant::now().into_std();
                let bytes = Bytes::copy_from_slice(&buf[..n]);
                // Keepalives (bare CRLF) on UDP need no answer.
                if bytes.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    continue;
                }
                let message = parse_guarded(bytes, Framing::Datagram, from);
                deliver(&shared, message, Target::udp(from), received).await;
            }
            // ICMP port unreachable surfaces as a recv error on some systems; the
            // socket stays usable.
            Err(e) => tracing::trace!(error = %e, "UDP receive error"),
        }
    }
}

async fn tcp_accept(shared: Arc<Shared>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                start_connection(&shared, stream, peer);
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn start_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
) -> (ConnectionId, mpsc::UnboundedSender<Bytes>) {
    let id = ConnectionId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    shared.connections.insert(
        id,
        Connection {
            writer: writer_tx.clone(),
        },
    );
    shared.by_peer.insert(peer, id);
    shared.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(run_connection(shared.clone(), stream, peer, id, writer_rx));
    (id, writer_tx)
}

async fn connect_and_send(shared: Arc<Shared>, target: Target, bytes: Bytes) {
    let connected =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target.addr)).await;
    match connected {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            let (_, writer) = start_connection(&shared, stream, target.addr);
            if writer.send(bytes).is_ok() {
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(Err(e)) => {
            tracing::info!(%target, error = %e, "TCP connect failed");
            let _ = shared.inbound.send(Inbound::Unreachable { target }).await;
        }
        Err(_) => {
            tracing::info!(%target, "TCP connect timed out");
            let _ = shared.inbound.send(Inbound::Unreachable { target }).await;
        }
    }
}

async fn run_connection(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    id: ConnectionId,
    mut outgoing: mpsc::UnboundedReceiver<Bytes>,
) {
    let (mut reader, mut writer) = stream.into_split();
    let source = Target {
        transport: TransportKind::Tcp,
        addr: peer,
        connection: Some(id),
    };
    let idle = shared.settings.tcp_idle_timeout;
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let reason = loop {
        tokio::select! {
            read = tokio::time::timeout(idle, reader.read(&mut buf)) => {
                let n = match read {
                    Err(_) => break "idle".to_owned(),
                    Ok(Err(e)) => break format!("read error: {e}"),
                    Ok(Ok(0)) => break "closed by peer".to_owned(),
                    Ok(Ok(n)) => n,
                };
                let received = tokio::time::Instant::now().into_std();
                framer.push(&buf[..n]);
                let mut fault = None;
                loop {
                    match framer.next_frame() {
                        Ok(Some(Frame::Message(bytes))) => {
                            let message = parse_guarded(bytes, Framing::Stream, peer);
                            deliver(&shared, message, source, received).await;
                        }
                        Ok(Some(Frame::Ping)) => {
                            if writer.write_all(PONG).await.is_err() {
                                fault = Some("write error".to_owned());
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            fault = Some(format!("framing error: {e}"));
                            break;
                        }
                    }
                }
                if let Some(f) = fault {
                    break f;
                }
            }
            out = outgoing.recv() => {
                let Some(bytes) = out else { break "closed".to_owned() };
                if let Err(e) = writer.write_all(&bytes).await {
                    break format!("write error: {e}");
                }
            }
        }
    };
    tracing::debug!(%peer, connection = id.0, %reason, "TCP connection closed");
    shared.connections.remove(&id);
    shared.by_peer.remove_if(&peer, |_, v| *v == id);
    shared.stats.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    let _ = writer.shutdown().await;
}

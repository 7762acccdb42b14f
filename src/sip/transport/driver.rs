//! The tokio side of the transports: one UDP socket and one TCP listener on the same
//! address, the TCP connections (accepted and opened), and the channel to the core.
//!
//! Messages are parsed here, on the receiving task, so the core only sees typed
//! messages (or the parse failure, which it answers). Sending never waits: UDP uses
//! `try_send_to` (a full socket buffer drops the datagram, as the network would, and
//! the transaction layer retransmits).
//!
//! Each TCP connection has a reader task and a writer task. The writer owns a
//! bounded queue (`tcp_queue` messages): a peer that stops reading fills it, and the
//! connection is closed (logged) instead of holding memory without end; a write
//! that takes longer than `tcp_write_timeout` closes it too. Reads, keepalive pongs
//! and the idle check go on meanwhile. A connection is closed when nothing was read
//! or written for `tcp_idle_timeout` — unless the core holds it
//! ([`Transmit::hold`]): a dialog that came on it may need it for its BYE an hour
//! later. With no connection to a destination, the first message starts one
//! connect and later ones queue behind it, in order. With `max_tcp_connections`
//! open, newly accepted connections are closed at once (the engine's own connects
//! are never refused).
//! A message over 64 KiB gets 513 when its header section can be read, then the
//! connection is closed.
//!
//! Overload is refused at this edge. The call core reports how long messages waited
//! before it handled them ([`CoreLoad`]); while that lag is above `shed_lag`, or the
//! core's inbox is more than `shed_fill` full, a new INVITE is answered here with a
//! stateless 503 and Retry-After instead of being queued, so calls already accepted
//! keep their latency and complete. (CPU saturation shows up as delay long before
//! the queue is deep, and a late answer only brings retransmissions.) The edge
//! remembers the INVITE transactions it let through for a minute, so their
//! retransmissions still reach the core while it sheds.

use std::collections::{HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Notify, mpsc};

use super::{ConnectionId, Target, TransportKind};
use crate::sip::endpoint::Transmit;
use crate::sip::transaction::TransactionKey;
use crate::sip::wire::framing::{Frame, PONG, StreamFramer};
use crate::sip::wire::{
    Framing, MAX_MESSAGE_SIZE, Message, ParseError, Request, WireError, parse, too_large,
};

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
    /// TCP connections refused or closed because of a limit (connection count,
    /// send queue, write timeout, message size).
    pub tcp_refused: AtomicU64,
    /// Requests from untrusted sources dropped at the edge over their rate
    /// ([`super::edge`]).
    pub edge_dropped: AtomicU64,
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
    /// A TCP connection idle this long (no read, no write, no dialog holding it)
    /// is closed.
    pub tcp_idle_timeout: Duration,
    /// Shed new INVITEs when the core's inbox holds more than this fraction.
    pub shed_fill: f32,
    /// Shed new INVITEs while the core's average lag is above this.
    pub shed_lag: Duration,
    /// Retry-After (seconds) in shed 503s.
    pub retry_after: u32,
    /// With this many TCP connections open, newly accepted ones are closed at once
    /// (connections the engine opens itself are not refused).
    pub max_tcp_connections: usize,
    /// Messages waiting to be written on one TCP connection beyond which it is
    /// closed as stuck.
    pub tcp_queue: usize,
    /// A TCP write that does not finish in this time closes the connection.
    pub tcp_write_timeout: Duration,
    /// Per-source admission of untrusted requests ([`super::edge`]); `None`: every
    /// request passes (a softphone simulator, a test peer).
    pub edge: Option<super::edge::EdgeLimits>,
    /// Addresses the edge trusts (trunks, `[sip] inbound_from`).
    pub trusted: Vec<std::net::IpAddr>,
}

impl TransportSettings {
    /// The engine's defaults on `listen`.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            tcp_idle_timeout: Duration::from_secs(300),
            shed_fill: 0.5,
            shed_lag: Duration::from_millis(40),
            retry_after: 5,
            max_tcp_connections: 4096,
            tcp_queue: 1024,
            tcp_write_timeout: Duration::from_secs(10),
            edge: None,
            trusted: Vec::new(),
        }
    }
}

/// What the reader, the writer and the senders of one connection share.
struct ConnectionState {
    /// Dialogs that rely on the connection (it is never idle-closed while > 0).
    holds: AtomicU32,
    /// Milliseconds since [`Shared::epoch`] of the last read or write.
    last_active: AtomicU64,
    /// Wakes the reader to close the connection (write failed, queue overflowed).
    close: Notify,
}

struct Connection {
    writer: mpsc::Sender<Bytes>,
    state: Arc<ConnectionState>,
}

/// The INVITE transactions recently let through, so that their retransmissions are
/// not shed (RFC 3261 §17.2.1: they belong to a transaction the core already has).
struct RecentInvites {
    seen: HashSet<u64>,
    order: VecDeque<(u64, tokio::time::Instant)>,
}

/// How long, and how many, INVITE transactions the edge remembers. INVITE
/// retransmissions stop after 64·T1 (32 s by default) or at the first provisional.
const RECENT_INVITE_WINDOW: Duration = Duration::from_secs(64);
const RECENT_INVITE_CAP: usize = 1 << 18;

impl RecentInvites {
    /// Whether the INVITE transaction `key` may pass: always when the core keeps
    /// up, and when it is behind only if it passed before (a retransmission). A
    /// transaction that passes is remembered.
    fn admit(&mut self, key: u64, overloaded: bool, now: tokio::time::Instant) -> bool {
        if overloaded && !self.seen.contains(&key) {
            return false;
        }
        self.insert(key, now);
        true
    }

    fn insert(&mut self, key: u64, now: tokio::time::Instant) {
        while let Some(&(old, at)) = self.order.front() {
            if self.order.len() < RECENT_INVITE_CAP && now.duration_since(at) < RECENT_INVITE_WINDOW
            {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.insert(key) {
            self.order.push_back((key, now));
        }
    }
}

struct Shared {
    udp: Arc<UdpSocket>,
    inbound: mpsc::Sender<Inbound>,
    connections: DashMap<ConnectionId, Connection>,
    by_peer: DashMap<SocketAddr, ConnectionId>,
    /// Messages waiting for a connect in progress, by destination.
    connecting: DashMap<SocketAddr, Vec<Bytes>>,
    next_conn: AtomicU64,
    settings: TransportSettings,
    stats: Arc<TransportStats>,
    load: Arc<CoreLoad>,
    recent_invites: Mutex<RecentInvites>,
    edge: Option<Mutex<super::edge::Edge>>,
    hasher: std::collections::hash_map::RandomState,
    epoch: tokio::time::Instant,
}

impl Shared {
    fn millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
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
        let edge = settings.edge.clone().map(|limits| {
            Mutex::new(super::edge::Edge::new(
                limits,
                settings.trusted.iter().copied(),
            ))
        });
        let shared = Arc::new(Shared {
            edge,
            udp: Arc::new(udp),
            inbound,
            connections: DashMap::new(),
            by_peer: DashMap::new(),
            connecting: DashMap::new(),
            next_conn: AtomicU64::new(1),
            settings,
            stats: Arc::new(TransportStats::default()),
            load: Arc::new(CoreLoad::default()),
            recent_invites: Mutex::new(RecentInvites {
                seen: HashSet::new(),
                order: VecDeque::new(),
            }),
            hasher: std::collections::hash_map::RandomState::new(),
            epoch: tokio::time::Instant::now(),
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

    /// Trusts these flows (registered softphones) at the edge, instead of the ones
    /// trusted before.
    pub fn set_trusted_flows(&self, flows: Vec<SocketAddr>) {
        if let Some(edge) = &self.shared.edge {
            lock_edge(edge).set_trusted_flows(flows);
        }
    }

    /// The core's lag gauge, which the core must keep up to date.
    pub fn load(&self) -> Arc<CoreLoad> {
        self.shared.load.clone()
    }

    /// Sends without waiting (and applies a [`Transmit::hold`]).
    pub fn send(&self, transmit: Transmit) {
        if let Some(hold) = transmit.hold {
            apply_hold(&self.shared, transmit.target, hold);
        }
        if !transmit.bytes.is_empty() {
            send(&self.shared, transmit.target, transmit.bytes);
        }
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

fn apply_hold(shared: &Shared, target: Target, hold: bool) {
    let Some(id) = target.connection else { return };
    if let Some(c) = shared.connections.get(&id) {
        if hold {
            c.state.holds.fetch_add(1, Ordering::Relaxed);
        } else {
            let _ = c
                .state
                .holds
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }
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
        TransportKind::Tcp => send_tcp(shared, target, bytes),
    }
}

/// TCP: the connection named, if it is still there; else a connect in progress to
/// the address (queue behind it); else any connection to the address; else connect.
fn send_tcp(shared: &Arc<Shared>, target: Target, bytes: Bytes) {
    if let Some(id) = target.connection {
        if let Some(c) = shared.connections.get(&id) {
            return enqueue(shared, id, &c, bytes);
        }
    }
    match shared.connecting.entry(target.addr) {
        dashmap::mapref::entry::Entry::Occupied(mut waiting) => {
            if waiting.get().len() >= shared.settings.tcp_queue {
                tracing::warn!(%target, "too many messages waiting for a TCP connect; dropped one");
                return;
            }
            waiting.get_mut().push(bytes);
        }
        dashmap::mapref::entry::Entry::Vacant(vacant) => {
            let existing = shared.by_peer.get(&target.addr).map(|id| *id);
            if let Some(id) = existing {
                if let Some(c) = shared.connections.get(&id) {
                    return enqueue(shared, id, &c, bytes);
                }
            }
            vacant.insert(vec![bytes]);
            tokio::spawn(connect(shared.clone(), target));
        }
    }
}

/// Queues bytes on a connection; a full queue closes it (the peer stopped reading).
fn enqueue(shared: &Shared, id: ConnectionId, c: &Connection, bytes: Bytes) {
    match c.writer.try_send(bytes) {
        Ok(()) => {
            shared.stats.sent.fetch_add(1, Ordering::Relaxed);
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            tracing::warn!(
                connection = id.0,
                queued = shared.settings.tcp_queue,
                "TCP send queue full (the peer does not read); closing the connection"
            );
            shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
            c.state.close.notify_one();
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            tracing::debug!(connection = id.0, "TCP connection closing; message dropped");
        }
    }
}

/// Parses a message; should the parser ever panic on some input (it is fuzzed so
/// that it does not), the message is refused as malformed and logged, and the
/// receive task lives on: one bad datagram must not leave the engine deaf.
fn parse_guarded(bytes: Bytes, framing: Framing, from: SocketAddr) -> Result<Message, ParseError> {
    let raw = bytes.clone();
    crate::supervise::contained(|| parse(bytes, framing)).unwrap_or_else(
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

fn lock_edge(edge: &Mutex<super::edge::Edge>) -> std::sync::MutexGuard<'_, super::edge::Edge> {
    // Each update is a bucket's take: a poisoned table is still consistent.
    edge.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
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
    if let Ok(Message::Request(req)) = &message {
        if let Some(edge) = &shared.edge {
            let class = super::edge::Class::of(req);
            if !lock_edge(edge).admit(received, source.addr, class) {
                shared.stats.edge_dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        if is_initial_invite(req) && shed(shared, req, source) {
            return;
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

/// Sheds a new INVITE with a stateless 503 when the core is behind; returns whether
/// it did. INVITEs of transactions let through before are never shed: they are
/// retransmissions the core must absorb (or answer again).
fn shed(shared: &Arc<Shared>, invite: &Request, source: Target) -> bool {
    let Some(key) = TransactionKey::server(invite) else {
        return false;
    };
    let key = shared.hasher.hash_one(&key);
    let max = shared.inbound.max_capacity();
    let used = max - shared.inbound.capacity();
    // Trusted sources (trunks, registered softphones) have their own budget: they
    // are shed only when the inbox is nearly full, never for lag a flood caused.
    let trusted = shared
        .edge
        .as_ref()
        .is_some_and(|e| lock_edge(e).is_trusted(source.addr));
    let overloaded = if trusted {
        (used as f32) > 0.9 * max as f32
    } else {
        (used as f32) > shared.settings.shed_fill * max as f32
            || shared.load.lag() > shared.settings.shed_lag
    };
    let admitted = shared
        .recent_invites
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .admit(key, overloaded, tokio::time::Instant::now());
    if !admitted {
        shared.stats.shed.fetch_add(1, Ordering::Relaxed);
        let mut resp = invite.response_with_reason(503, "Service Unavailable: overloaded");
        resp.headers.to.set_tag("shed");
        resp.headers
            .push("Retry-After", shared.settings.retry_after.to_string());
        send(shared, source, resp.to_bytes());
        return true;
    }
    false
}

async fn udp_receive(shared: Arc<Shared>) {
    // One byte more than the limit, so an oversize datagram shows as such.
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    loop {
        match shared.udp.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let received = tokio::time::Instant::now().into_std();
                let Some(datagram) = buf.get(..n) else {
                    continue;
                };
                // Keepalives (bare CRLF) on UDP need no answer.
                if datagram.iter().all(|b| matches!(b, b'\r' | b'\n' | 0)) {
                    continue;
                }
                let bytes = Bytes::copy_from_slice(datagram);
                let message = parse_guarded(bytes, Framing::Datagram, from);
                if let Err(e) = &message {
                    if matches!(e.error, WireError::TooLarge { .. }) {
                        tracing::info!(%from, len = n, "oversize UDP datagram; answering 513 when it can be");
                    }
                }
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
                if let Some(edge) = &shared.edge {
                    let (trusted, cap) = {
                        let e = lock_edge(edge);
                        (e.is_trusted_ip(peer.ip()), e.limits().tcp_per_source)
                    };
                    if !trusted
                        && shared
                            .by_peer
                            .iter()
                            .filter(|c| c.key().ip() == peer.ip())
                            .count()
                            >= cap
                    {
                        shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(%peer, cap, "too many TCP connections from one address; closing the new one");
                        drop(stream);
                        continue;
                    }
                }
                if shared.connections.len() >= shared.settings.max_tcp_connections {
                    shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(%peer, limit = shared.settings.max_tcp_connections, "too many TCP connections; closing the new one");
                    drop(stream);
                    continue;
                }
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

fn start_connection(shared: &Arc<Shared>, stream: TcpStream, peer: SocketAddr) -> ConnectionId {
    let id = ConnectionId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (writer_tx, writer_rx) = mpsc::channel(shared.settings.tcp_queue.max(1));
    let state = Arc::new(ConnectionState {
        holds: AtomicU32::new(0),
        last_active: AtomicU64::new(shared.millis()),
        close: Notify::new(),
    });
    let (reader, writer) = stream.into_split();
    shared.connections.insert(
        id,
        Connection {
            writer: writer_tx.clone(),
            state: state.clone(),
        },
    );
    shared.by_peer.insert(peer, id);
    shared.stats.tcp_connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(write_loop(shared.clone(), writer, writer_rx, state.clone()));
    tokio::spawn(read_loop(
        shared.clone(),
        reader,
        peer,
        id,
        writer_tx,
        state,
    ));
    id
}

/// Opens a connection for the messages queued under `target.addr` and hands them
/// to it in order; if it cannot be opened, they are dropped and the core told.
async fn connect(shared: Arc<Shared>, target: Target) {
    let connected =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target.addr)).await;
    let stream = match connected {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            tracing::info!(%target, error = %e, "TCP connect failed");
            shared.connecting.remove(&target.addr);
            let _ = shared.inbound.send(Inbound::Unreachable { target }).await;
            return;
        }
        Err(_) => {
            tracing::info!(%target, "TCP connect timed out");
            shared.connecting.remove(&target.addr);
            let _ = shared.inbound.send(Inbound::Unreachable { target }).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let id = start_connection(&shared, stream, target.addr);
    // Flush under the entry's lock: a message sent meanwhile either joined the
    // queue before, or finds the connection after, and never overtakes the queue.
    if let dashmap::mapref::entry::Entry::Occupied(waiting) = shared.connecting.entry(target.addr) {
        if let Some(c) = shared.connections.get(&id) {
            for bytes in waiting.get() {
                enqueue(&shared, id, &c, bytes.clone());
            }
        }
        waiting.remove();
    }
}

/// Writes what is queued for one connection. Ends when every sender is gone (the
/// reader closed the connection), or on a failed or stuck write, which it reports
/// to the reader.
async fn write_loop(
    shared: Arc<Shared>,
    mut writer: OwnedWriteHalf,
    mut queue: mpsc::Receiver<Bytes>,
    state: Arc<ConnectionState>,
) {
    let timeout = shared.settings.tcp_write_timeout;
    while let Some(bytes) = queue.recv().await {
        match tokio::time::timeout(timeout, writer.write_all(&bytes)).await {
            Ok(Ok(())) => state.last_active.store(shared.millis(), Ordering::Relaxed),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TCP write failed");
                state.close.notify_one();
                break;
            }
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "TCP write timed out (the peer does not read); closing the connection"
                );
                shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                state.close.notify_one();
                break;
            }
        }
    }
    let _ = tokio::time::timeout(timeout, writer.shutdown()).await;
}

async fn read_loop(
    shared: Arc<Shared>,
    mut reader: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    id: ConnectionId,
    writer: mpsc::Sender<Bytes>,
    state: Arc<ConnectionState>,
) {
    let source = Target {
        transport: TransportKind::Tcp,
        addr: peer,
        connection: Some(id),
    };
    // Not zero: a held connection re-checks once per period, which must not spin.
    let idle = shared
        .settings
        .tcp_idle_timeout
        .max(Duration::from_millis(100));
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut linger = false;
    let reason = loop {
        let last = Duration::from_millis(state.last_active.load(Ordering::Relaxed));
        let idle_at = shared.epoch + last + idle;
        tokio::select! {
            read = reader.read(&mut buf) => {
                let n = match read {
                    Err(e) => break format!("read error: {e}"),
                    Ok(0) => break "closed by peer".to_owned(),
                    Ok(n) => n,
                };
                state.last_active.store(shared.millis(), Ordering::Relaxed);
                let received = tokio::time::Instant::now().into_std();
                framer.push(buf.get(..n).unwrap_or_default());
                if let Some(fault) = frames(&shared, &mut framer, &writer, source, received).await {
                    linger = fault.linger;
                    break fault.reason;
                }
            }
            () = state.close.notified() => break "closed by the sender".to_owned(),
            () = tokio::time::sleep_until(idle_at) => {
                let quiet = shared.millis().saturating_sub(state.last_active.load(Ordering::Relaxed));
                if quiet >= idle.as_millis() as u64 {
                    if state.holds.load(Ordering::Relaxed) == 0 {
                        break "idle".to_owned();
                    }
                    // A dialog relies on it: check again after another period.
                    state.last_active.store(shared.millis(), Ordering::Relaxed);
                }
            }
        }
    };
    tracing::debug!(%peer, connection = id.0, %reason, "TCP connection closed");
    shared.connections.remove(&id);
    shared.by_peer.remove_if(&peer, |_, v| *v == id);
    shared.stats.tcp_connections.fetch_sub(1, Ordering::Relaxed);
    // Dropping the last sender lets the writer finish what is queued (a 513, say)
    // and shut the connection down.
    drop(writer);
    if linger {
        // The rest of the refused message is still arriving: read it away for a
        // moment, or closing with unread bytes resets the connection and the peer
        // may lose the 513 before reading it.
        let drain = async {
            while let Ok(n) = reader.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    }
}

/// Why a connection closes, and whether to read away what the peer still sends.
struct Close {
    reason: String,
    linger: bool,
}

impl From<String> for Close {
    fn from(reason: String) -> Self {
        Self {
            reason,
            linger: false,
        }
    }
}

/// Delivers every complete frame; returns why the connection must close, if it must.
async fn frames(
    shared: &Arc<Shared>,
    framer: &mut StreamFramer,
    writer: &mpsc::Sender<Bytes>,
    source: Target,
    received: std::time::Instant,
) -> Option<Close> {
    loop {
        match framer.next_frame() {
            Ok(Some(Frame::Message(bytes))) => {
                let message = parse_guarded(bytes, Framing::Stream, source.addr);
                deliver(shared, message, source, received).await;
            }
            Ok(Some(Frame::Ping)) => {
                if writer.try_send(Bytes::from_static(PONG)).is_err() {
                    return Some(Close::from("send queue full".to_owned()));
                }
            }
            Ok(None) => return None,
            Err(WireError::TooLarge { size }) => {
                shared.stats.tcp_refused.fetch_add(1, Ordering::Relaxed);
                let tag = format!("tl{:08x}", rand::random::<u32>());
                let reply = too_large(framer.buffered(), size).response(&tag);
                let answered = reply.is_some_and(|r| writer.try_send(r).is_ok());
                tracing::info!(peer = %source.addr, size, answered, "TCP message over the size limit; closing the connection");
                return Some(Close {
                    reason: format!("message of {size} bytes over the limit"),
                    linger: answered,
                });
            }
            Err(e) => return Some(Close::from(format!("framing error: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmissions_of_admitted_invites_pass_while_shedding() {
        let t0 = tokio::time::Instant::now();
        let mut recent = RecentInvites {
            seen: HashSet::new(),
            order: VecDeque::new(),
        };
        assert!(recent.admit(1, false, t0), "the core keeps up");
        assert!(
            recent.admit(1, true, t0),
            "its retransmission passes while shedding"
        );
        assert!(!recent.admit(2, true, t0), "a new INVITE is shed");
        assert!(!recent.admit(2, true, t0), "and so is its retransmission");
        // Remembered for the window only.
        let later = t0 + RECENT_INVITE_WINDOW + Duration::from_secs(1);
        assert!(recent.admit(3, false, later));
        assert!(!recent.admit(1, true, later), "forgotten after the window");
        assert_eq!(recent.seen.len(), 1);
    }

    #[test]
    fn the_memory_of_admitted_invites_is_bounded() {
        let t0 = tokio::time::Instant::now();
        let mut recent = RecentInvites {
            seen: HashSet::new(),
            order: VecDeque::new(),
        };
        for key in 0..(RECENT_INVITE_CAP as u64 + 10) {
            recent.admit(key, false, t0);
        }
        assert!(recent.seen.len() <= RECENT_INVITE_CAP);
        assert_eq!(recent.seen.len(), recent.order.len());
        assert!(
            recent.admit(RECENT_INVITE_CAP as u64 + 9, true, t0),
            "the newest are kept"
        );
    }
}

//! The SIP endpoint: every transaction of one engine, and the UA-core duties that sit
//! between transactions and the TU (RFC 3261 §8.2, §9, §13.3.1.4, §17, §18).
//!
//! Owns transaction matching (RFC 3261 and RFC 2543 keys), the §8.2 request checks
//! (405/501/416/420/415/406/400 with reason phrases, 400 Missing Contact for an
//! INVITE that would make a dialog without a remote target, 482 for merged
//! requests), CANCEL handling (200 to the CANCEL, then the TU answers the INVITE
//! with 487), our Via on outgoing requests, 2xx retransmission until the ACK
//! arrives (and the report, naming the dialog, when it never does), ACK repetition
//! for retransmitted 2xx, the ACK and BYE for a 2xx from a second fork (§13.2.2.4),
//! the §8.1.3.3 response check (exactly one Via), and stateless answers to
//! unparseable requests. Two safety nets bound its memory: with `max_transactions`
//! alive new requests get a stateless 503, and an INVITE the TU leaves unanswered
//! for `invite_abandon` is answered 500. It also passes the TU's holds on TCP
//! connections to the transport ([`Endpoint::hold_flow`]).
//!
//! Sans-IO. Call order, after creating it with a seeded RNG:
//!
//! 1. feed input: [`Endpoint::handle_datagram`] / [`Endpoint::handle_message`] for
//!    arrivals, the TU's `respond` / `send_request` / `send_ack` / `cancel`, and
//!    [`Endpoint::handle_timeout`] when [`Endpoint::poll_timeout`] has passed;
//! 2. drain [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`] until empty;
//! 3. re-read [`Endpoint::poll_timeout`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::dialog::{Dialog, DialogId};
use super::transaction::{
    ClientInvite, ClientNonInvite, ServerInvite, ServerNonInvite, TimerSettings, TransactionEvent,
    TransactionKey,
};
use super::transport::{
    ResponseRouting, Target, TransportKind, in_dialog_target, response_target, stamp_via,
};
use super::wire::{
    BRANCH_COOKIE, CSeq, Contact, Framing, Host, Message, Method, NameAddr, ParseError, Request,
    Response, Uri, Via, parse,
};

/// A server transaction, as the TU refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerTx(u64);

/// A client transaction, as the TU refers to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientTx(u64);

/// Bytes to send and where, or a change in which TCP connections the core relies on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub target: Target,
    /// The message (empty when the transmit only carries [`Transmit::hold`]).
    pub bytes: Bytes,
    /// `Some(true)`: a dialog now relies on the TCP connection `target` names, and
    /// the transport must keep it open however long it stays idle; `Some(false)`:
    /// one dialog fewer relies on it. Only set for targets naming a connection.
    pub hold: Option<bool>,
}

impl Transmit {
    /// A message to send.
    pub fn message(target: Target, bytes: Bytes) -> Self {
        Self {
            target,
            bytes,
            hold: None,
        }
    }
}

/// Why a client transaction ended without a final response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFailure {
    /// Timer B or F: nobody answered.
    Timeout,
    /// The transport could not deliver the request.
    Transport,
}

/// What the endpoint tells the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A new request (not ACK or CANCEL) that passed the §8.2 checks. Answer it with
    /// [`Endpoint::respond`].
    Request {
        /// The server transaction to answer through.
        tx: ServerTx,
        /// The request, top Via stamped with received/rport.
        request: Request,
        /// Where it came from.
        source: Target,
    },
    /// An ACK for a 2xx we sent (it has no transaction of its own).
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        source: Target,
    },
    /// A CANCEL for an INVITE not yet answered; the CANCEL got its 200 already and
    /// the TU must answer the INVITE with 487.
    Cancelled {
        /// The INVITE's transaction.
        tx: ServerTx,
    },
    /// A 2xx we sent to an INVITE was never acknowledged (64·T1); the TU should end
    /// the dialog with a BYE (RFC 3261 §13.3.1.4).
    AckTimeout {
        /// The INVITE's transaction.
        tx: ServerTx,
        /// The dialog the 2xx belongs to (for a re-INVITE, the only way to find it).
        dialog: DialogId,
    },
    /// A response to one of our requests (retransmissions absorbed).
    Response {
        /// Our transaction.
        tx: ClientTx,
        /// The response.
        response: Response,
    },
    /// One of our transactions ended without a final response.
    Failed {
        /// Our transaction.
        tx: ClientTx,
        /// Why.
        reason: ClientFailure,
    },
}

/// What the endpoint needs to know about the engine.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Protocol timers.
    pub timers: TimerSettings,
    /// The address we listen on (UDP and TCP share it).
    pub local: SocketAddr,
    /// The host written in our Via and Contact (defaults to the listen IP).
    pub advertised: Host,
    /// Where UDP responses go.
    pub response_routing: ResponseRouting,
    /// Server / User-Agent header value.
    pub user_agent: String,
    /// Methods the TU handles (others known to SIP get 405, unknown ones 501).
    pub allow: Vec<Method>,
    /// Option tags we support (a Require outside this list gets 420).
    pub supported: Vec<String>,
    /// With this many transactions alive, new requests get a stateless 503.
    pub max_transactions: usize,
    /// An INVITE the TU has not answered finally after this long is answered 500
    /// by the endpoint (a safety net: the TU's own limits, such as the forward
    /// calls' no-answer timer, are shorter).
    pub invite_abandon: Duration,
}

impl EndpointConfig {
    /// A configuration for a listener with the engine's defaults.
    pub fn new(local: SocketAddr) -> Self {
        Self {
            timers: TimerSettings::default(),
            local,
            advertised: Host::Ip(local.ip()),
            response_routing: ResponseRouting::Symmetric,
            user_agent: concat!("dispatchline/", env!("CARGO_PKG_VERSION")).to_owned(),
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Register,
                Method::Info,
                Method::Update,
            ],
            // No option tags: session timers (RFC 4028) and Replaces (RFC 3891) are
            // not implemented, so a Require of either gets 420.
            supported: Vec::new(),
            max_transactions: 500_000,
            invite_abandon: Duration::from_secs(15 * 60),
        }
    }
}

/// The ACK we sent for a 2xx, repeated for each retransmission of that 2xx.
struct SentAck {
    to_tag: String,
    bytes: Bytes,
}

/// An INVITE we sent, with what the UA core keeps beside the transaction.
struct InviteClient {
    machine: ClientInvite,
    target: Target,
    /// The To tag of the first 2xx, the one the TU was given (§13.2.2.4: any
    /// other 2xx is a fork the endpoint acknowledges and hangs up itself).
    answered_tag: Option<String>,
    /// The ACKs sent for 2xx responses, repeated when their 2xx is.
    acks: Vec<SentAck>,
    /// The connection the last response came on.
    flow: Option<Target>,
}

enum Tx {
    InviteClient(InviteClient),
    NonInviteClient(ClientNonInvite, Target),
    InviteServer(ServerInvite, Target),
    NonInviteServer(ServerNonInvite, Target),
}

impl Tx {
    /// The TCP connection a non-INVITE transaction runs over, when it names one.
    /// It is held open while the transaction lives (on TCP that is until its final
    /// response, Timers J and K being zero): a BYE sent as a dialog ends must not
    /// lose its connection, and so its 200, to the idle timer (RFC 3261 §18:
    /// responses go back over the connection the request came on). INVITE
    /// transactions are covered by their dialog's hold (and live on for 64·T1 in
    /// the RFC 6026 Accepted state, which must not keep a connection open).
    fn connection(&self) -> Option<Target> {
        let target = match self {
            Tx::NonInviteClient(_, t) | Tx::NonInviteServer(_, t) => *t,
            Tx::InviteClient(_) | Tx::InviteServer(..) => return None,
        };
        (target.connection.is_some() && target.transport.is_reliable()).then_some(target)
    }
}

/// A 2xx to an INVITE being retransmitted until its ACK (RFC 3261 §13.3.1.4).
struct Pending2xx {
    bytes: Bytes,
    target: Target,
    tx: ServerTx,
    /// The peer's tag (the dialog, for the report when no ACK comes).
    remote_tag: String,
    interval: Duration,
    next: Option<Instant>,
    give_up: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct AckKey {
    call_id: String,
    cseq: u32,
    local_tag: String,
}

enum Entry {
    Tx(Box<Tx>),
    Pending2xx(AckKey, Box<Pending2xx>),
}

/// What §8.2.2.2 compares to find a merged request: From tag, Call-ID and CSeq.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MergeKey {
    call_id: String,
    from_tag: String,
    cseq: u32,
    method: Method,
}

impl MergeKey {
    fn of(request: &Request) -> Option<Self> {
        Some(Self {
            call_id: request.headers.call_id.clone(),
            from_tag: request.headers.from.tag()?.to_owned(),
            cseq: request.headers.cseq.seq,
            method: request.method.clone(),
        })
    }
}

/// The endpoint. See the module documentation for the call order.
pub struct Endpoint {
    config: EndpointConfig,
    rng: SmallRng,
    next_id: u64,
    entries: HashMap<u64, Entry>,
    server_keys: HashMap<TransactionKey, u64>,
    client_keys: HashMap<TransactionKey, u64>,
    /// Server transactions of requests outside a dialog, by §8.2.2.2 identity.
    merges: HashMap<MergeKey, u64>,
    /// Client transactions the endpoint started itself (BYEs to unwanted forks):
    /// their events concern no TU.
    internal: std::collections::HashSet<u64>,
    /// INVITEs to answer 500 because the TU never did.
    abandoned: Vec<(u64, Request, Option<String>)>,
    pending_2xx: HashMap<AckKey, u64>,
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<EndpointEvent>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.config.local)
            .field("transactions", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint whose tags, branches and Call-IDs come from `seed`.
    pub fn new(config: EndpointConfig, seed: u64) -> Self {
        Self {
            config,
            rng: SmallRng::seed_from_u64(seed),
            next_id: 1,
            entries: HashMap::new(),
            server_keys: HashMap::new(),
            client_keys: HashMap::new(),
            merges: HashMap::new(),
            internal: std::collections::HashSet::new(),
            abandoned: Vec::new(),
            pending_2xx: HashMap::new(),
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// How many transactions (and pending 2xx) are alive.
    pub fn live_transactions(&self) -> usize {
        self.entries.len()
    }

    // -- identifiers --------------------------------------------------------------

    fn token(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..len)
            .map(|_| ALPHABET[(self.rng.next_u32() % 36) as usize] as char)
            .collect()
    }

    /// A fresh tag for From or To.
    pub fn new_tag(&mut self) -> String {
        self.token(12)
    }

    /// A fresh RFC 3261 branch.
    pub fn new_branch(&mut self) -> String {
        format!("{BRANCH_COOKIE}{}", self.token(16))
    }

    /// A fresh Call-ID.
    pub fn new_call_id(&mut self) -> String {
        format!("{}@{}", self.token(20), self.config.advertised)
    }

    /// Our Contact URI for a transport, with `user` when given.
    pub fn contact_uri(&self, user: Option<&str>, transport: TransportKind) -> Uri {
        let uri = Uri::sip(
            user,
            &self.config.advertised,
            Some(self.config.local.port()),
        );
        match transport {
            TransportKind::Udp => uri,
            TransportKind::Tcp => uri.with_param("transport", Some("tcp")),
        }
    }

    /// A random number for the TU (CSeq starting points, nonces), from the seeded RNG.
    pub fn random_u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    // -- input ------------------------------------------------------------------

    /// Parses and handles bytes that arrived from `source`. Unparseable requests get
    /// a stateless error response; unparseable responses are dropped.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        bytes: Bytes,
        source: Target,
    ) -> Result<(), ParseError> {
        let framing = if source.transport.is_reliable() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        match parse(bytes, framing) {
            Ok(message) => {
                self.handle_message(now, message, source);
                Ok(())
            }
            Err(err) => {
                self.reject_unparseable(&err, source);
                Err(err)
            }
        }
    }

    /// Sends the stateless answer to an unparseable request, if it deserves one.
    pub fn reject_unparseable(&mut self, err: &ParseError, source: Target) {
        let tag = self.new_tag();
        if let Some(bytes) = err.response(&tag) {
            self.transmits.push_back(Transmit::message(source, bytes));
        }
    }

    /// Handles a parsed message from `source`.
    pub fn handle_message(&mut self, now: Instant, message: Message, source: Target) {
        match message {
            Message::Request(request) => self.handle_request(now, request, source),
            Message::Response(response) => self.handle_response(now, response, source),
        }
    }

    fn handle_request(&mut self, now: Instant, mut request: Request, source: Target) {
        if let Some(via) = request.headers.via.first_mut() {
            stamp_via(via, source.addr);
        }
        let Some(key) = TransactionKey::server(&request) else {
            return;
        };
        if request.method == Method::Ack {
            return self.handle_ack(now, request, &key, source);
        }
        if let Some(&id) = self.server_keys.get(&key) {
            // A retransmission.
            if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
                match tx.as_mut() {
                    Tx::InviteServer(m, _) => m.handle_request(now, &request),
                    Tx::NonInviteServer(m, _) => m.handle_request(now, &request),
                    _ => {}
                }
            }
            return self.after(id);
        }
        let reliable = source.transport.is_reliable();
        let Some(via) = request.headers.top_via() else {
            return;
        };
        let target = response_target(via, source, self.config.response_routing);

        if self.entries.len() >= self.config.max_transactions {
            // No room for another transaction: refuse statelessly, keep nothing.
            tracing::warn!(
                live = self.entries.len(),
                "transaction table full; answering 503"
            );
            let mut r = request.response_with_reason(503, "Service Unavailable: overloaded");
            let tag = self.new_tag();
            r.headers.to.set_tag(&tag);
            r.headers.push("Retry-After", "5");
            return self
                .transmits
                .push_back(Transmit::message(target, r.to_bytes()));
        }
        if let Some(rejection) = self.check_request(&request) {
            return self.reject(now, key, request, target, reliable, rejection);
        }
        if request.method == Method::Cancel {
            return self.handle_cancel(now, key, request, target, reliable);
        }
        // §8.2.2.2: the same INVITE again by another path (a fork that merged
        // back) is not a retransmission; answer 482 instead of handling it twice.
        // Only INVITEs: a softphone that retries a challenged REGISTER without
        // raising its CSeq (RFC 3261 §22.2 only says SHOULD) must not get 482.
        let merge = MergeKey::of(&request).filter(|_| request.creates_dialog());
        if merge.as_ref().is_some_and(|m| self.merges.contains_key(m)) {
            let rejection = Rejection::new(482, "Loop Detected: merged request".into());
            return self.reject(now, key, request, target, reliable, rejection);
        }
        let id = self.insert_server(now, key, request.clone(), target, reliable);
        if let Some(m) = merge {
            self.merges.insert(m, id);
        }
        self.events.push_back(EndpointEvent::Request {
            tx: ServerTx(id),
            request,
            source,
        });
        self.after(id);
    }

    fn insert_server(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        target: Target,
        reliable: bool,
    ) -> u64 {
        let id = self.alloc_id();
        let tx = if request.method == Method::Invite {
            let mut machine = ServerInvite::new(request, reliable, self.config.timers);
            machine.abandon_at(now, now + self.config.invite_abandon);
            Tx::InviteServer(machine, target)
        } else {
            Tx::NonInviteServer(
                ServerNonInvite::new(now, request, reliable, self.config.timers),
                target,
            )
        };
        if let Some(flow) = tx.connection() {
            self.hold_flow(flow);
        }
        self.entries.insert(id, Entry::Tx(Box::new(tx)));
        self.server_keys.insert(key, id);
        id
    }

    fn reject(
        &mut self,
        now: Instant,
        key: TransactionKey,
        request: Request,
        target: Target,
        reliable: bool,
        rejection: Rejection,
    ) {
        let mut response = request.response_with_reason(rejection.status, &rejection.reason);
        let tag = self.new_tag();
        response.headers.to.set_tag(&tag);
        for (name, value) in rejection.headers {
            response.headers.push(name, value);
        }
        let id = self.insert_server(now, key, request, target, reliable);
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
            if let Tx::InviteServer(m, _) = tx.as_mut() {
                m.skip_trying();
            }
        }
        self.respond_id(now, id, response);
    }

    fn handle_cancel(
        &mut self,
        now: Instant,
        key: TransactionKey,
        cancel: Request,
        target: Target,
        reliable: bool,
    ) {
        let invite_key = key.with_method(Method::Invite);
        let invite = self.server_keys.get(&invite_key).copied();
        let status = if invite.is_some() { 200 } else { 481 };
        // The 200 carries the INVITE's To tag when its provisional already gave one
        // (RFC 3261 §9.2), so the caller sees one tag on both responses.
        let invite_tag = invite.and_then(|id| match self.entries.get(&id) {
            Some(Entry::Tx(tx)) => match tx.as_ref() {
                Tx::InviteServer(m, _) => m.local_tag().map(str::to_owned),
                _ => None,
            },
            _ => None,
        });
        let tag = invite_tag.unwrap_or_else(|| self.new_tag());
        let response = cancel.response(status).with_to_tag(&tag);
        let id = self.insert_server(now, key, cancel, target, reliable);
        self.respond_id(now, id, response);
        if let Some(invite) = invite {
            if let Some(Entry::Tx(tx)) = self.entries.get(&invite) {
                if let Tx::InviteServer(m, _) = tx.as_ref() {
                    if !m.is_answered() {
                        self.events.push_back(EndpointEvent::Cancelled {
                            tx: ServerTx(invite),
                        });
                    }
                }
            }
        }
    }

    fn handle_ack(&mut self, now: Instant, ack: Request, key: &TransactionKey, source: Target) {
        // An ACK for a non-2xx final belongs to the INVITE's server transaction.
        if let Some(&id) = self.server_keys.get(key) {
            if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
                if let Tx::InviteServer(m, _) = tx.as_mut() {
                    if m.state() != super::transaction::server_invite::State::Accepted {
                        m.handle_request(now, &ack);
                        return self.after(id);
                    }
                }
            }
        }
        // An ACK for a 2xx is its own transaction and goes to the TU, once.
        let ack_key = AckKey {
            call_id: ack.headers.call_id.clone(),
            cseq: ack.headers.cseq.seq,
            local_tag: ack.headers.to.tag().unwrap_or_default().to_owned(),
        };
        if let Some(id) = self.pending_2xx.remove(&ack_key) {
            self.entries.remove(&id);
            self.events.push_back(EndpointEvent::Ack {
                request: ack,
                source,
            });
        }
    }

    fn handle_response(&mut self, now: Instant, response: Response, source: Target) {
        // §8.1.3.3: a response with more than one Via was meant for someone else.
        if response.headers.via.len() != 1 {
            tracing::debug!(
                status = response.status,
                vias = response.headers.via.len(),
                "response without exactly one Via; dropped"
            );
            return;
        }
        let Some(key) = TransactionKey::for_response(&response) else {
            return;
        };
        let Some(&id) = self.client_keys.get(&key) else {
            tracing::debug!(status = response.status, call_id = %response.headers.call_id, "response matches no transaction; dropped");
            return;
        };
        enum Verdict {
            Machine,
            ResendAck(Transmit),
            Fork(Box<Request>, Target),
        }
        let mut verdict = Verdict::Machine;
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
            if let Tx::InviteClient(c) = tx.as_mut() {
                if source.connection.is_some() {
                    c.flow = Some(source);
                }
                let accepted =
                    c.machine.state() == super::transaction::client_invite::State::Accepted;
                let tag = response.headers.to.tag().unwrap_or_default();
                if accepted && response.is_success() {
                    if let Some(ack) = c.acks.iter().find(|a| a.to_tag == tag) {
                        // A 2xx retransmission for a dialog we already acknowledged
                        // gets the same ACK again (§13.2.2.4), not the TU's attention.
                        verdict =
                            Verdict::ResendAck(Transmit::message(c.target, ack.bytes.clone()));
                    } else if c.answered_tag.as_deref().is_some_and(|t| t != tag) {
                        // Another fork answered too: the TU keeps the first dialog;
                        // this one is acknowledged and hung up here.
                        verdict = Verdict::Fork(Box::new(c.machine.request().clone()), c.target);
                    }
                } else if response.is_success() && c.answered_tag.is_none() {
                    c.answered_tag = Some(tag.to_owned());
                }
            }
        }
        match verdict {
            Verdict::ResendAck(t) => self.transmits.push_back(t),
            Verdict::Fork(invite, target) => self.hang_up_fork(now, id, &invite, &response, target),
            Verdict::Machine => {
                if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
                    match tx.as_mut() {
                        Tx::InviteClient(c) => c.machine.handle_response(now, response),
                        Tx::NonInviteClient(m, _) => m.handle_response(now, response),
                        _ => {}
                    }
                }
            }
        }
        self.after(id);
    }

    /// §13.2.2.4: a 2xx from a fork other than the one the TU took is acknowledged
    /// (the ACK is kept for its retransmissions) and the dialog it made is ended
    /// with a BYE the endpoint sends and forgets.
    fn hang_up_fork(
        &mut self,
        now: Instant,
        invite_id: u64,
        invite: &Request,
        response: &Response,
        flow: Target,
    ) {
        let contact = self.contact_uri(None, flow.transport);
        let dialog = Dialog::uac(invite, response, contact.clone()).or_else(|_| {
            // No Contact: the Request-URI is the best guess at its target.
            let mut patched = response.clone();
            patched.headers.contact = vec![Contact::Address(NameAddr::new(invite.uri.clone()))];
            Dialog::uac(invite, &patched, contact)
        });
        let Ok(mut dialog) = dialog else {
            tracing::warn!(call_id = %response.headers.call_id, "forked 2xx without a To tag: cannot acknowledge it");
            return;
        };
        tracing::info!(call_id = %response.headers.call_id, "a second fork answered; acknowledging and hanging it up");
        let target = in_dialog_target(
            dialog.next_hop(),
            !dialog.route_set().is_empty(),
            flow,
            false,
        );
        let mut ack = dialog.ack(invite.headers.cseq.seq, None);
        ack.headers.via.insert(0, self.our_via(target.transport));
        let bytes = ack.to_bytes();
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&invite_id) {
            if let Tx::InviteClient(c) = tx.as_mut() {
                c.acks.push(SentAck {
                    to_tag: response.headers.to.tag().unwrap_or_default().to_owned(),
                    bytes: bytes.clone(),
                });
            }
        }
        self.transmits.push_back(Transmit::message(target, bytes));
        let bye = dialog.request(Method::Bye);
        let ClientTx(bye_id) = self.send_request(now, bye, target);
        self.internal.insert(bye_id);
    }

    /// Our Via for a request on `transport`, with a fresh branch and rport.
    fn our_via(&mut self, transport: TransportKind) -> Via {
        let branch = self.new_branch();
        Via::new(
            transport.via_token(),
            self.config.advertised.clone(),
            Some(self.config.local.port()),
            &branch,
        )
        .with_rport()
    }

    /// The transport could not deliver to `target` (connection refused or reset).
    /// Every client transaction towards it fails.
    pub fn handle_transport_error(&mut self, target: Target) {
        let ids: Vec<u64> = self
            .entries
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Tx(tx) => match tx.as_ref() {
                    Tx::InviteClient(InviteClient { target: t, .. })
                    | Tx::NonInviteClient(_, t)
                        if t.addr == target.addr && t.transport == target.transport =>
                    {
                        Some(*id)
                    }
                    _ => None,
                },
                _ => None,
            })
            .collect();
        for id in ids {
            if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
                match tx.as_mut() {
                    Tx::InviteClient(c) => c.machine.handle_transport_error(),
                    Tx::NonInviteClient(m, _) => m.handle_transport_error(),
                    _ => {}
                }
            }
            self.after(id);
        }
    }

    // -- the TU's requests --------------------------------------------------------

    /// Answers a server transaction. A 2xx to an INVITE is retransmitted until its
    /// ACK arrives (or [`EndpointEvent::AckTimeout`]).
    pub fn respond(&mut self, now: Instant, tx: ServerTx, mut response: Response) {
        if response.headers.get("Server").is_none() {
            response
                .headers
                .push("Server", self.config.user_agent.clone());
        }
        self.respond_id(now, tx.0, response);
    }

    fn respond_id(&mut self, now: Instant, id: u64, response: Response) {
        let mut pending = None;
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) {
            match tx.as_mut() {
                Tx::InviteServer(m, target) => {
                    let first_2xx = response.is_success() && !m.is_answered();
                    m.send_response(now, &response);
                    if first_2xx {
                        let key = AckKey {
                            call_id: response.headers.call_id.clone(),
                            cseq: response.headers.cseq.seq,
                            local_tag: response.headers.to.tag().unwrap_or_default().to_owned(),
                        };
                        let t1 = self.config.timers.t1;
                        let next = (!target.transport.is_reliable()).then_some(now + t1);
                        pending = Some((
                            key,
                            Pending2xx {
                                bytes: response.to_bytes(),
                                target: *target,
                                tx: ServerTx(id),
                                remote_tag: response
                                    .headers
                                    .from
                                    .tag()
                                    .unwrap_or_default()
                                    .to_owned(),
                                interval: t1,
                                next,
                                give_up: now + self.config.timers.t1x64(),
                            },
                        ));
                    }
                }
                Tx::NonInviteServer(m, _) => m.send_response(now, &response),
                _ => return,
            }
        }
        self.after(id);
        if let Some((key, p)) = pending {
            let pid = self.alloc_id();
            let deadline = p.next.unwrap_or(p.give_up).min(p.give_up);
            self.timers.push(Reverse((deadline, pid)));
            if let Some(old) = self.pending_2xx.insert(key.clone(), pid) {
                self.entries.remove(&old);
            }
            self.entries
                .insert(pid, Entry::Pending2xx(key, Box::new(p)));
        }
    }

    /// Sends a request in a new client transaction. Our Via (with a fresh branch and
    /// rport) is put on top; everything else is the TU's.
    pub fn send_request(&mut self, now: Instant, mut request: Request, target: Target) -> ClientTx {
        let via = self.our_via(target.transport);
        let branch = via.branch().unwrap_or_default().to_owned();
        request.headers.via.insert(0, via);
        if request.headers.get("User-Agent").is_none() {
            request
                .headers
                .push("User-Agent", self.config.user_agent.clone());
        }
        self.start_client(now, request, target, &branch)
    }

    fn start_client(
        &mut self,
        now: Instant,
        request: Request,
        target: Target,
        branch: &str,
    ) -> ClientTx {
        let reliable = target.transport.is_reliable();
        let key = TransactionKey::client(branch, request.headers.cseq.method.clone());
        let tx = if request.method == Method::Invite {
            Tx::InviteClient(InviteClient {
                machine: ClientInvite::new(now, request, reliable, self.config.timers),
                target,
                answered_tag: None,
                acks: Vec::new(),
                flow: None,
            })
        } else {
            Tx::NonInviteClient(
                ClientNonInvite::new(now, request, reliable, self.config.timers),
                target,
            )
        };
        let id = self.alloc_id();
        if let Some(flow) = tx.connection() {
            self.hold_flow(flow);
        }
        self.entries.insert(id, Entry::Tx(Box::new(tx)));
        self.client_keys.insert(key, id);
        self.after(id);
        ClientTx(id)
    }

    /// Cancels an INVITE we sent (RFC 3261 §9.1): the CANCEL reuses the INVITE's
    /// branch, Request-URI, Call-ID, From, To, CSeq number and Route. Returns `None`
    /// when the INVITE already got a final response or never got any response (the
    /// CANCEL must wait for a provisional; the TU retries after one).
    pub fn cancel(&mut self, now: Instant, invite_tx: ClientTx) -> Option<ClientTx> {
        let Some(Entry::Tx(tx)) = self.entries.get(&invite_tx.0) else {
            return None;
        };
        let Tx::InviteClient(InviteClient {
            machine: m, target, ..
        }) = tx.as_ref()
        else {
            return None;
        };
        if m.state() != super::transaction::client_invite::State::Proceeding {
            return None;
        }
        let invite = m.request();
        let mut headers = invite.headers.clone();
        headers.via.truncate(1);
        headers.cseq = CSeq {
            seq: invite.headers.cseq.seq,
            method: Method::Cancel,
        };
        headers.contact.clear();
        headers.other.retain(|h| h.name.is("User-Agent"));
        let branch = headers.via.first()?.branch()?.to_owned();
        let cancel = Request {
            method: Method::Cancel,
            uri: invite.uri.clone(),
            headers,
            body: Bytes::new(),
        };
        let target = *target;
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&invite_tx.0) {
            if let Tx::InviteClient(c) = tx.as_mut() {
                c.machine.cancel_sent(now);
            }
        }
        self.after(invite_tx.0);
        Some(self.start_client(now, cancel, target, &branch))
    }

    /// Whether an INVITE we sent has had a provisional response (so it can be
    /// cancelled now).
    pub fn can_cancel(&self, invite_tx: ClientTx) -> bool {
        matches!(self.entries.get(&invite_tx.0), Some(Entry::Tx(tx)) if matches!(tx.as_ref(),
            Tx::InviteClient(c) if c.machine.state() == super::transaction::client_invite::State::Proceeding))
    }

    /// The connection the last response to an INVITE we sent came on, if it came
    /// on one (TCP): the flow its dialog can [`hold`](Endpoint::hold_flow).
    pub fn client_flow(&self, invite_tx: ClientTx) -> Option<Target> {
        match self.entries.get(&invite_tx.0) {
            Some(Entry::Tx(tx)) => match tx.as_ref() {
                Tx::InviteClient(c) => c.flow,
                _ => None,
            },
            _ => None,
        }
    }

    /// Tells the transport that a dialog relies on `flow`'s TCP connection: it must
    /// stay open however idle (released with [`Endpoint::release_flow`]). Targets
    /// naming no connection are ignored.
    pub fn hold_flow(&mut self, flow: Target) {
        self.flow_change(flow, true);
    }

    /// Undoes one [`Endpoint::hold_flow`].
    pub fn release_flow(&mut self, flow: Target) {
        self.flow_change(flow, false);
    }

    fn flow_change(&mut self, flow: Target, hold: bool) {
        if flow.connection.is_some() && flow.transport.is_reliable() {
            self.transmits.push_back(Transmit {
                target: flow,
                bytes: Bytes::new(),
                hold: Some(hold),
            });
        }
    }

    /// Sends the ACK for a 2xx (RFC 3261 §13.2.2.4): outside any transaction, with
    /// our Via; it is sent again for each retransmission of that 2xx.
    pub fn send_ack(&mut self, invite_tx: ClientTx, mut ack: Request, target: Target) {
        let via = self.our_via(target.transport);
        ack.headers.via.insert(0, via);
        let bytes = ack.to_bytes();
        if let Some(Entry::Tx(tx)) = self.entries.get_mut(&invite_tx.0) {
            if let Tx::InviteClient(c) = tx.as_mut() {
                let to_tag = ack.headers.to.tag().unwrap_or_default().to_owned();
                c.acks.retain(|a| a.to_tag != to_tag);
                c.acks.push(SentAck {
                    to_tag,
                    bytes: bytes.clone(),
                });
            }
        }
        self.transmits.push_back(Transmit::message(target, bytes));
    }

    /// Sends a response outside any transaction (e.g. to a retransmitted 2xx whose
    /// dialog we no longer know).
    pub fn send_stateless(&mut self, target: Target, bytes: Bytes) {
        self.transmits.push_back(Transmit::message(target, bytes));
    }

    /// The request a server transaction is answering.
    pub fn server_request(&self, tx: ServerTx) -> Option<&Request> {
        match self.entries.get(&tx.0) {
            Some(Entry::Tx(t)) => match t.as_ref() {
                Tx::InviteServer(m, _) => Some(m.request()),
                Tx::NonInviteServer(m, _) => Some(m.request()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The request a client transaction sent (with our Via).
    pub fn client_request(&self, tx: ClientTx) -> Option<&Request> {
        match self.entries.get(&tx.0) {
            Some(Entry::Tx(t)) => match t.as_ref() {
                Tx::InviteClient(c) => Some(c.machine.request()),
                Tx::NonInviteClient(m, _) => Some(m.request()),
                _ => None,
            },
            _ => None,
        }
    }

    // -- timers and output ------------------------------------------------------------

    fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// After any input to entry `id`: collect its output, schedule its next
    /// deadline, forget it if it is done.
    fn after(&mut self, id: u64) {
        let internal = self.internal.contains(&id);
        let Some(Entry::Tx(tx)) = self.entries.get_mut(&id) else {
            return;
        };
        let mut abandoned = None;
        let (deadline, terminated) = match tx.as_mut() {
            Tx::InviteClient(InviteClient {
                machine: m, target, ..
            }) => {
                while let Some(bytes) = m.poll_transmit() {
                    self.transmits.push_back(Transmit::message(*target, bytes));
                }
                while let Some(e) = m.poll_event() {
                    if !internal {
                        push_client_event(&mut self.events, ClientTx(id), e);
                    }
                }
                (m.poll_timeout(), m.is_terminated())
            }
            Tx::NonInviteClient(m, target) => {
                while let Some(bytes) = m.poll_transmit() {
                    self.transmits.push_back(Transmit::message(*target, bytes));
                }
                while let Some(e) = m.poll_event() {
                    if !internal {
                        push_client_event(&mut self.events, ClientTx(id), e);
                    }
                }
                (m.poll_timeout(), m.is_terminated())
            }
            Tx::InviteServer(m, target) => {
                while let Some(bytes) = m.poll_transmit() {
                    self.transmits.push_back(Transmit::message(*target, bytes));
                }
                while let Some(e) = m.poll_event() {
                    if e == TransactionEvent::Timeout && !m.is_answered() {
                        // The TU never answered (see `invite_abandon`).
                        abandoned = Some((m.request().clone(), m.local_tag().map(str::to_owned)));
                    }
                }
                (m.poll_timeout(), m.is_terminated())
            }
            Tx::NonInviteServer(m, target) => {
                while let Some(bytes) = m.poll_transmit() {
                    self.transmits.push_back(Transmit::message(*target, bytes));
                }
                while m.poll_event().is_some() {}
                (m.poll_timeout(), m.is_terminated())
            }
        };
        if terminated {
            self.forget(id);
        } else if let Some(at) = deadline {
            self.timers.push(Reverse((at, id)));
        }
        if let Some((invite, tag)) = abandoned {
            self.abandoned.push((id, invite, tag));
        }
    }

    /// Answers the INVITEs whose abandon timer fired (found by `after`).
    fn answer_abandoned(&mut self, now: Instant) {
        for (id, invite, tag) in std::mem::take(&mut self.abandoned) {
            tracing::error!(call_id = %invite.headers.call_id, "INVITE never answered by the TU; answering 500");
            let tag = tag.unwrap_or_else(|| self.new_tag());
            let response = invite
                .response_with_reason(500, "Server Internal Error: the INVITE was never answered")
                .with_to_tag(&tag);
            self.respond_id(now, id, response);
        }
    }

    fn forget(&mut self, id: u64) {
        if let Some(Entry::Tx(tx)) = self.entries.remove(&id) {
            if let Some(flow) = tx.connection() {
                self.release_flow(flow);
            }
            let key = match tx.as_ref() {
                Tx::InviteServer(m, _) => TransactionKey::server(m.request()),
                Tx::NonInviteServer(m, _) => TransactionKey::server(m.request()),
                Tx::InviteClient(c) => client_key_of(c.machine.request()),
                Tx::NonInviteClient(m, _) => client_key_of(m.request()),
            };
            self.internal.remove(&id);
            if let Some(m) = match tx.as_ref() {
                Tx::InviteServer(m, _) => MergeKey::of(m.request()),
                Tx::NonInviteServer(m, _) => MergeKey::of(m.request()),
                _ => None,
            } {
                if self.merges.get(&m) == Some(&id) {
                    self.merges.remove(&m);
                }
            }
            if let Some(key) = key {
                if self.server_keys.get(&key) == Some(&id) {
                    self.server_keys.remove(&key);
                }
                if self.client_keys.get(&key) == Some(&id) {
                    self.client_keys.remove(&key);
                }
            }
        }
    }

    /// Handles every deadline up to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match self.entries.get_mut(&id) {
                Some(Entry::Tx(tx)) => {
                    let due = match tx.as_ref() {
                        Tx::InviteClient(c) => c.machine.poll_timeout(),
                        Tx::NonInviteClient(m, _) => m.poll_timeout(),
                        Tx::InviteServer(m, _) => m.poll_timeout(),
                        Tx::NonInviteServer(m, _) => m.poll_timeout(),
                    };
                    // Stale heap entries (the deadline moved) are skipped.
                    if due.is_some_and(|d| d <= now) && due == Some(at) {
                        match tx.as_mut() {
                            Tx::InviteClient(c) => c.machine.handle_timeout(now),
                            Tx::NonInviteClient(m, _) => m.handle_timeout(now),
                            Tx::InviteServer(m, _) => m.handle_timeout(now),
                            Tx::NonInviteServer(m, _) => m.handle_timeout(now),
                        }
                        self.after(id);
                        self.answer_abandoned(now);
                    }
                }
                Some(Entry::Pending2xx(_, p)) => {
                    if now >= p.give_up {
                        let tx = p.tx;
                        if let Some(Entry::Pending2xx(key, p)) = self.entries.remove(&id) {
                            self.pending_2xx.remove(&key);
                            let dialog = DialogId {
                                call_id: key.call_id,
                                local_tag: key.local_tag,
                                remote_tag: p.remote_tag,
                            };
                            self.events
                                .push_back(EndpointEvent::AckTimeout { tx, dialog });
                        }
                    } else if p.next.is_some_and(|n| n <= now) {
                        self.transmits
                            .push_back(Transmit::message(p.target, p.bytes.clone()));
                        p.interval = (p.interval * 2).min(self.config.timers.t2);
                        let next = now + p.interval;
                        p.next = Some(next);
                        self.timers.push(Reverse((next.min(p.give_up), id)));
                    } else {
                        let at = p.next.unwrap_or(p.give_up).min(p.give_up);
                        self.timers.push(Reverse((at, id)));
                    }
                }
                None => {}
            }
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next thing the TU must hear.
    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    // -- §8.2 checks --------------------------------------------------------------------

    fn check_request(&self, request: &Request) -> Option<Rejection> {
        let method = &request.method;
        let known = !matches!(method, Method::Extension(_));
        if !known {
            return Some(Rejection::new(501, format!("Not Implemented: {method}")));
        }
        if !self.config.allow.contains(method) {
            return Some(
                Rejection::new(405, "Method Not Allowed".into()).with("Allow", self.allow_header()),
            );
        }
        if &request.headers.cseq.method != method {
            return Some(Rejection::new(
                400,
                format!(
                    "CSeq method {} does not match {method}",
                    request.headers.cseq.method
                ),
            ));
        }
        if let Some(via) = request.headers.top_via() {
            if via.branch() == Some(BRANCH_COOKIE) {
                return Some(Rejection::new(
                    400,
                    "Via branch is the magic cookie alone".into(),
                ));
            }
        }
        if !(request.uri.is_sip() || matches!(request.uri.scheme(), super::wire::Scheme::Tel)) {
            return Some(Rejection::new(416, "Unsupported URI Scheme".into()));
        }
        if request.uri.headers().is_some() {
            return Some(Rejection::new(
                400,
                "Request-URI carries escaped headers".into(),
            ));
        }
        if *method != Method::Cancel {
            let unsupported: Vec<&str> = request
                .headers
                .tokens("Require")
                .filter(|tag| {
                    !self
                        .config
                        .supported
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(tag))
                })
                .collect();
            if !unsupported.is_empty() {
                let list = unsupported.join(", ");
                return Some(Rejection::new(420, "Bad Extension".into()).with("Unsupported", list));
            }
        }
        if !request.body.is_empty() {
            let accepted: &[&str] = match method {
                Method::Invite | Method::Update | Method::Prack => &["application/sdp"],
                Method::Info => &["application/dtmf-relay", "application/dtmf"],
                _ => &[],
            };
            let content_type = request.headers.content_type().unwrap_or_default();
            if !accepted.is_empty() && !accepted.contains(&content_type.as_str()) {
                return Some(
                    Rejection::new(415, format!("Unsupported Media Type {content_type}"))
                        .with("Accept", accepted.join(", ")),
                );
            }
        }
        if *method == Method::Invite && request.headers.get("Accept").is_some() {
            let acceptable = request.headers.tokens("Accept").any(|t| {
                let t = t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase();
                t == "application/sdp" || t == "application/*" || t == "*/*"
            });
            if !acceptable {
                return Some(
                    Rejection::new(406, "Not Acceptable: we answer with application/sdp".into())
                        .with("Accept", "application/sdp".into()),
                );
            }
        }
        // §8.1.1.8: a request that can create a dialog carries the Contact that
        // becomes the remote target; without one the dialog could never be hung up.
        if request.creates_dialog() && request.headers.contact_uri().is_none() {
            return Some(Rejection::new(400, "Missing Contact".into()));
        }
        None
    }

    /// The Allow header value.
    pub fn allow_header(&self) -> String {
        self.config
            .allow
            .iter()
            .map(Method::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The Supported header value.
    pub fn supported_header(&self) -> String {
        self.config.supported.join(", ")
    }
}

fn client_key_of(request: &Request) -> Option<TransactionKey> {
    let branch = request.headers.top_via()?.branch()?;
    Some(TransactionKey::client(
        branch,
        request.headers.cseq.method.clone(),
    ))
}

fn push_client_event(events: &mut VecDeque<EndpointEvent>, tx: ClientTx, event: TransactionEvent) {
    match event {
        TransactionEvent::Response(response) => {
            events.push_back(EndpointEvent::Response { tx, response })
        }
        TransactionEvent::Timeout => events.push_back(EndpointEvent::Failed {
            tx,
            reason: ClientFailure::Timeout,
        }),
        TransactionEvent::TransportError => events.push_back(EndpointEvent::Failed {
            tx,
            reason: ClientFailure::Transport,
        }),
        TransactionEvent::Terminated => {}
    }
}

struct Rejection {
    status: u16,
    reason: String,
    headers: Vec<(&'static str, String)>,
}

impl Rejection {
    fn new(status: u16, reason: String) -> Self {
        Self {
            status,
            reason,
            headers: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::wire::Headers;

    const PEER: &str = "192.0.2.10:5070";

    fn endpoint() -> Endpoint {
        Endpoint::new(EndpointConfig::new("127.0.0.1:5060".parse().unwrap()), 7)
    }

    fn peer() -> Target {
        Target::udp(PEER.parse().unwrap())
    }

    fn msg(text: &str) -> Message {
        parse(Bytes::from(text.replace('\n', "\r\n")), Framing::Datagram).unwrap()
    }

    fn invite(branch: &str) -> Message {
        msg(&format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch={branch}\nFrom: <sip:a@192.0.2.10>;tag=a1\nTo: <sip:100@127.0.0.1>\nCall-ID: c1\nCSeq: 1 INVITE\nMax-Forwards: 70\nContact: <sip:a@192.0.2.10:5070>\nContent-Length: 0\n\n"
        ))
    }

    fn with(m: &Message, f: impl FnOnce(&mut Request)) -> Message {
        let Message::Request(mut r) = m.clone() else {
            panic!()
        };
        f(&mut r);
        Message::Request(r)
    }

    fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<EndpointEvent>) {
        let mut out = Vec::new();
        while let Some(t) = ep.poll_transmit() {
            out.push(String::from_utf8_lossy(&t.bytes).into_owned());
        }
        let mut events = Vec::new();
        while let Some(e) = ep.poll_event() {
            events.push(e);
        }
        (out, events)
    }

    fn first_line(s: &str) -> &str {
        s.lines().next().unwrap_or("")
    }

    fn server_tx(events: &[EndpointEvent]) -> ServerTx {
        events
            .iter()
            .find_map(|e| match e {
                EndpointEvent::Request { tx, .. } => Some(*tx),
                _ => None,
            })
            .expect("a request event")
    }

    #[test]
    fn invite_gets_trying_and_2xx_is_retransmitted_until_ack() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKi1"), peer());
        let (out, events) = drain(&mut ep);
        assert_eq!(first_line(&out[0]), "SIP/2.0 100 Trying");
        let tx = server_tx(&events);
        let EndpointEvent::Request { request, .. } = &events[0] else {
            panic!()
        };
        assert_eq!(
            request.headers.top_via().unwrap().received(),
            None,
            "sent-by matches the source"
        );
        let ok = request.response(200).with_to_tag("b1");
        ep.respond(t0, tx, ok);
        let (out, _) = drain(&mut ep);
        assert_eq!(first_line(&out[0]), "SIP/2.0 200 OK");
        // Retransmitted at 0.5, 1.5, 3.5 s ...
        let mut sent_at = Vec::new();
        let mut now = t0;
        while let Some(at) = ep.poll_timeout() {
            if at > t0 + Duration::from_secs(4) {
                break;
            }
            now = at;
            ep.handle_timeout(now);
            if !drain(&mut ep).0.is_empty() {
                sent_at.push((now - t0).as_millis());
            }
        }
        assert_eq!(sent_at, vec![500, 1500, 3500]);
        // The ACK stops it and reaches the TU.
        let ack = msg(
            "ACK sip:100@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKack\nFrom: <sip:a@192.0.2.10>;tag=a1\nTo: <sip:100@127.0.0.1>;tag=b1\nCall-ID: c1\nCSeq: 1 ACK\nContent-Length: 0\n\n",
        );
        ep.handle_message(now, ack.clone(), peer());
        let (_, events) = drain(&mut ep);
        assert!(matches!(events.as_slice(), [EndpointEvent::Ack { .. }]));
        ep.handle_timeout(t0 + Duration::from_secs(20));
        assert!(drain(&mut ep).0.is_empty(), "no more retransmissions");
        // A retransmitted ACK is not reported twice.
        ep.handle_message(now, ack, peer());
        assert!(drain(&mut ep).1.is_empty());
    }

    #[test]
    fn unacknowledged_2xx_is_reported_after_64_t1() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKi2"), peer());
        let (_, events) = drain(&mut ep);
        let tx = server_tx(&events);
        let ok = ep
            .server_request(tx)
            .unwrap()
            .response(200)
            .with_to_tag("b2");
        ep.respond(t0, tx, ok);
        assert_eq!(drain(&mut ep).0.len(), 1);
        let mut retransmits = 0;
        let mut timeout_at = None;
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            let (out, events) = drain(&mut ep);
            retransmits += out.len();
            if events
                .iter()
                .any(|e| matches!(e, EndpointEvent::AckTimeout { tx: t, .. } if *t == tx))
            {
                timeout_at = Some(at - t0);
            }
        }
        assert_eq!(timeout_at, Some(Duration::from_secs(32)));
        // 0.5, 1.5, 3.5, 7.5, then every 4 s up to 31.5: 11 sends in all, minus the first.
        assert_eq!(retransmits, 10);
        assert_eq!(ep.live_transactions(), 0, "nothing leaks");
    }

    #[test]
    fn the_cancel_answer_carries_the_ringing_tag() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let inv = invite("z9hG4bKc9");
        ep.handle_message(t0, inv.clone(), peer());
        let (_, events) = drain(&mut ep);
        let tx = server_tx(&events);
        let ringing = ep
            .server_request(tx)
            .unwrap()
            .response(180)
            .with_to_tag("ring1");
        ep.respond(t0, tx, ringing);
        drain(&mut ep);
        let cancel = with(&inv, |r| {
            r.method = Method::Cancel;
            r.headers.cseq.method = Method::Cancel;
        });
        ep.handle_message(t0, cancel, peer());
        let (out, _) = drain(&mut ep);
        assert!(
            out[0].contains("CSeq: 1 CANCEL") && out[0].contains(";tag=ring1"),
            "{out:?}"
        );
    }

    #[test]
    fn cancel_before_the_answer() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let inv = invite("z9hG4bKc1");
        ep.handle_message(t0, inv.clone(), peer());
        let (_, events) = drain(&mut ep);
        let tx = server_tx(&events);
        let cancel = with(&inv, |r| {
            r.method = Method::Cancel;
            r.headers.cseq.method = Method::Cancel;
        });
        ep.handle_message(t0, cancel, peer());
        let (out, events) = drain(&mut ep);
        assert!(
            out[0].starts_with("SIP/2.0 200 OK") && out[0].contains("CSeq: 1 CANCEL"),
            "{out:?}"
        );
        assert_eq!(events, vec![EndpointEvent::Cancelled { tx }]);
        let terminated = ep
            .server_request(tx)
            .unwrap()
            .response(487)
            .with_to_tag("b3");
        ep.respond(t0, tx, terminated);
        let (out, _) = drain(&mut ep);
        assert_eq!(first_line(&out[0]), "SIP/2.0 487 Request Terminated");
        // The ACK for the 487 belongs to the transaction: absorbed, not reported.
        let ack = with(&inv, |r| {
            r.method = Method::Ack;
            r.headers.cseq.method = Method::Ack;
            r.headers.to.set_tag("b3");
        });
        ep.handle_message(t0, ack, peer());
        let (out, events) = drain(&mut ep);
        assert!(out.is_empty() && events.is_empty());
    }

    #[test]
    fn cancel_after_the_answer_has_no_effect_and_unknown_cancel_gets_481() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let inv = invite("z9hG4bKc2");
        ep.handle_message(t0, inv.clone(), peer());
        let (_, events) = drain(&mut ep);
        let tx = server_tx(&events);
        let ok = ep
            .server_request(tx)
            .unwrap()
            .response(200)
            .with_to_tag("b4");
        ep.respond(t0, tx, ok);
        drain(&mut ep);
        let cancel = with(&inv, |r| {
            r.method = Method::Cancel;
            r.headers.cseq.method = Method::Cancel;
        });
        ep.handle_message(t0, cancel.clone(), peer());
        let (out, events) = drain(&mut ep);
        assert!(out[0].starts_with("SIP/2.0 200 OK"));
        assert!(events.is_empty(), "a CANCEL after the 2xx changes nothing");
        let stray = with(&cancel, |r| {
            r.headers.via[0].set_param("branch", Some("z9hG4bKnone"))
        });
        ep.handle_message(t0, stray, peer());
        let (out, _) = drain(&mut ep);
        assert!(out[0].starts_with("SIP/2.0 481"));
    }

    #[test]
    fn retransmitted_requests_are_absorbed() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKr1"), peer());
        drain(&mut ep);
        ep.handle_message(t0, invite("z9hG4bKr1"), peer());
        let (out, events) = drain(&mut ep);
        assert_eq!(first_line(&out[0]), "SIP/2.0 100 Trying");
        assert!(events.is_empty());
    }

    #[test]
    fn uas_checks_answer_with_the_right_status() {
        let t0 = Instant::now();
        type Change = Box<dyn Fn(&mut Request)>;
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|r| {
                    r.method = Method::Extension("FOO".into());
                    r.headers.cseq.method = r.method.clone();
                }),
                "501",
            ),
            (
                Box::new(|r| {
                    r.method = Method::Message;
                    r.headers.cseq.method = Method::Message;
                }),
                "405",
            ),
            (
                Box::new(|r| r.headers.cseq.method = Method::Options),
                "400 CSeq method",
            ),
            (
                Box::new(|r| r.headers.push("Require", "nothingSupportsThis, 100rel")),
                "420",
            ),
            (
                Box::new(|r| {
                    r.headers.push("Content-Type", "application/unknownformat");
                    r.body = Bytes::from_static(b"x");
                }),
                "415",
            ),
            (
                Box::new(|r| r.headers.push("Accept", "text/nobodyKnowsThis")),
                "406",
            ),
            (Box::new(|r| r.headers.push("Require", "timer")), "420"),
            (Box::new(|r| r.headers.push("Require", "replaces")), "420"),
            (
                Box::new(|r| r.headers.contact.clear()),
                "400 Missing Contact",
            ),
            (
                Box::new(|r| r.headers.contact = vec![crate::sip::wire::Contact::Wildcard]),
                "400 Missing Contact",
            ),
            (
                Box::new(|r| {
                    r.uri = Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").unwrap()
                }),
                "416",
            ),
            (
                Box::new(|r| {
                    r.uri = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").unwrap()
                }),
                "400 Request-URI",
            ),
            (
                Box::new(|r| r.headers.via[0].set_param("branch", Some("z9hG4bK"))),
                "400 Via branch",
            ),
        ];
        for (i, (change, expected)) in cases.into_iter().enumerate() {
            let mut ep = endpoint();
            let m = with(&invite(&format!("z9hG4bKu{i}")), |r| change(r));
            ep.handle_message(t0, m.clone(), peer());
            let (out, events) = drain(&mut ep);
            let last = out.last().unwrap();
            assert!(
                last.starts_with(&format!("SIP/2.0 {expected}")),
                "case {i}: {last}"
            );
            assert!(events.is_empty(), "case {i}: the TU never sees it");
            if expected == "420" {
                let require = m.headers().get("Require").unwrap_or_default().to_owned();
                assert!(
                    last.contains(&format!("Unsupported: {require}\r\n")),
                    "{last}"
                );
            }
            if last.starts_with("SIP/2.0 4") {
                assert!(
                    !out.iter().any(|o| o.starts_with("SIP/2.0 100")),
                    "case {i}: no 100 Trying before an immediate final answer: {out:?}"
                );
            }
            if expected == "405" {
                assert!(last.contains("Allow: INVITE, ACK"), "{last}");
            }
        }
    }

    fn client_invite(ep: &mut Endpoint, now: Instant) -> (ClientTx, Request) {
        let uri = Uri::parse("sip:100@192.0.2.10:5070").unwrap();
        let from = crate::sip::wire::NameAddr::new(Uri::parse("sip:engine@127.0.0.1").unwrap())
            .with_tag("e1");
        let headers = Headers {
            via: Vec::new(),
            from,
            to: crate::sip::wire::NameAddr::new(uri.clone()),
            call_id: "out-1".into(),
            cseq: CSeq {
                seq: 1,
                method: Method::Invite,
            },
            max_forwards: Some(70),
            contact: Vec::new(),
            route: Vec::new(),
            record_route: Vec::new(),
            other: Vec::new(),
        };
        let req = Request {
            method: Method::Invite,
            uri,
            headers,
            body: Bytes::new(),
        };
        let tx = ep.send_request(now, req, peer());
        let sent = ep.client_request(tx).unwrap().clone();
        (tx, sent)
    }

    fn answer(req: &Request, status: u16) -> Message {
        Message::Response(req.response(status).with_to_tag("far"))
    }

    #[test]
    fn a_bye_over_tcp_holds_its_connection_until_the_200() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let flow = Target {
            connection: Some(super::super::transport::ConnectionId(9)),
            ..Target::tcp(PEER.parse().unwrap())
        };
        let uri = Uri::parse("sip:100@192.0.2.10:5070;transport=tcp").unwrap();
        let bye = Request::out_of_dialog(
            Method::Bye,
            uri.clone(),
            crate::sip::wire::NameAddr::new(Uri::parse("sip:engine@127.0.0.1").unwrap())
                .with_tag("e1"),
            crate::sip::wire::NameAddr::new(uri).with_tag("far"),
            "tcp-bye".into(),
            2,
        );
        let tx = ep.send_request(t0, bye, flow);
        let holds = |ep: &mut Endpoint| {
            let mut out = Vec::new();
            while let Some(t) = ep.poll_transmit() {
                if let Some(h) = t.hold {
                    assert_eq!(t.target, flow);
                    out.push(h);
                }
            }
            out
        };
        assert_eq!(holds(&mut ep), [true], "held while the BYE waits");
        let sent = ep.client_request(tx).unwrap().clone();
        ep.handle_message(t0, answer(&sent, 200), flow);
        assert_eq!(holds(&mut ep), [false], "let go once the 200 is in");
        assert_eq!(ep.live_transactions(), 0, "Timer K is zero on TCP");
    }

    #[test]
    fn client_side_invite_2xx_and_ack_repetition() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let (tx, sent) = client_invite(&mut ep, t0);
        let (out, _) = drain(&mut ep);
        assert!(
            out[0].contains(";rport"),
            "our Via asks for rport: {}",
            out[0]
        );
        assert!(!ep.can_cancel(tx), "no CANCEL before a provisional");
        ep.handle_message(t0, answer(&sent, 180), peer());
        assert!(ep.can_cancel(tx));
        ep.handle_message(t0, answer(&sent, 200), peer());
        let (_, events) = drain(&mut ep);
        assert_eq!(events.len(), 2);
        let mut ack = sent.clone();
        ack.method = Method::Ack;
        ack.headers.via.clear();
        ack.headers.cseq.method = Method::Ack;
        ack.headers.to.set_tag("far");
        ep.send_ack(tx, ack, peer());
        let (out, _) = drain(&mut ep);
        assert!(out[0].starts_with("ACK "));
        // The far end did not get it and retransmits: the same ACK again, no event.
        ep.handle_message(t0 + Duration::from_millis(500), answer(&sent, 200), peer());
        let (out2, events) = drain(&mut ep);
        assert_eq!(out2, out);
        assert!(events.is_empty());
    }

    #[test]
    fn client_cancel_reuses_the_branch_and_timeouts_are_reported() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let (tx, sent) = client_invite(&mut ep, t0);
        drain(&mut ep);
        ep.handle_message(t0, answer(&sent, 180), peer());
        drain(&mut ep);
        let cancel_tx = ep.cancel(t0, tx).unwrap();
        let cancel = ep.client_request(cancel_tx).unwrap();
        assert_eq!(
            cancel.headers.top_via().unwrap().branch(),
            sent.headers.top_via().unwrap().branch()
        );
        assert_eq!(
            cancel.headers.cseq,
            CSeq {
                seq: 1,
                method: Method::Cancel
            }
        );
        let (out, _) = drain(&mut ep);
        assert!(out[0].starts_with("CANCEL sip:100@192.0.2.10:5070 SIP/2.0"));

        let mut ep = endpoint();
        let (tx, _) = client_invite(&mut ep, t0);
        let mut failed = None;
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            for e in drain(&mut ep).1 {
                if e == (EndpointEvent::Failed {
                    tx,
                    reason: ClientFailure::Timeout,
                }) {
                    failed = Some(at - t0);
                }
            }
        }
        assert_eq!(failed, Some(Duration::from_secs(32)), "Timer B");
        assert_eq!(ep.live_transactions(), 0);
    }

    #[test]
    fn a_second_fork_that_answers_is_acknowledged_and_hung_up() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let (tx, sent) = client_invite(&mut ep, t0);
        drain(&mut ep);
        let mut first = sent.response(200).with_to_tag("far");
        first.headers.contact = vec![Contact::parse("<sip:callee@192.0.2.10:5070>").unwrap()];
        ep.handle_message(t0, Message::Response(first), peer());
        let (_, events) = drain(&mut ep);
        assert!(matches!(
            events.as_slice(),
            [EndpointEvent::Response { .. }]
        ));
        let mut ack = sent.clone();
        ack.method = Method::Ack;
        ack.headers.via.clear();
        ack.headers.cseq.method = Method::Ack;
        ack.headers.to.set_tag("far");
        ep.send_ack(tx, ack, peer());
        drain(&mut ep);
        // The other fork: a new To tag and its own Contact.
        let mut fork = sent.response(200).with_to_tag("fork2");
        fork.headers.contact = vec![Contact::parse("<sip:other@192.0.2.10:5072>").unwrap()];
        ep.handle_message(t0, Message::Response(fork.clone()), peer());
        let (out, events) = drain(&mut ep);
        assert!(events.is_empty(), "the TU never hears of it: {events:?}");
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out[0].starts_with("ACK sip:other@192.0.2.10:5072 SIP/2.0"),
            "{}",
            out[0]
        );
        assert!(out[0].contains(";tag=fork2"));
        assert!(
            out[1].starts_with("BYE sip:other@192.0.2.10:5072 SIP/2.0"),
            "{}",
            out[1]
        );
        assert!(out[1].contains("CSeq: 2 BYE"), "{}", out[1]);
        // Its retransmission gets the same ACK, and no second BYE.
        ep.handle_message(t0, Message::Response(fork), peer());
        let (again, events) = drain(&mut ep);
        assert_eq!(again, vec![out[0].clone()]);
        assert!(events.is_empty());
        // The BYE's answer concerns nobody.
        let bye = ep.entries.values().find_map(|e| match e {
            Entry::Tx(t) => match t.as_ref() {
                Tx::NonInviteClient(m, _) => Some(m.request().clone()),
                _ => None,
            },
            _ => None,
        });
        ep.handle_message(t0, answer(&bye.unwrap(), 200), peer());
        assert!(drain(&mut ep).1.is_empty());
    }

    #[test]
    fn responses_with_two_vias_are_dropped() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        let (_, sent) = client_invite(&mut ep, t0);
        drain(&mut ep);
        let mut r = sent.response(180).with_to_tag("far");
        r.headers
            .via
            .push(Via::parse("SIP/2.0/UDP 192.0.2.99;branch=z9hG4bKx").unwrap());
        ep.handle_message(t0, Message::Response(r), peer());
        assert!(drain(&mut ep).1.is_empty(), "§8.1.3.3");
    }

    #[test]
    fn a_merged_request_gets_482() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKm1"), peer());
        assert_eq!(drain(&mut ep).1.len(), 1);
        // Same From tag, Call-ID and CSeq, another branch: it came by another path.
        ep.handle_message(t0, invite("z9hG4bKm2"), peer());
        let (out, events) = drain(&mut ep);
        assert!(events.is_empty());
        assert!(
            out.last().unwrap().starts_with("SIP/2.0 482 Loop Detected"),
            "{out:?}"
        );
        // The original's retransmission is still a retransmission.
        ep.handle_message(t0, invite("z9hG4bKm1"), peer());
        let (out, events) = drain(&mut ep);
        assert!(events.is_empty());
        assert_eq!(first_line(&out[0]), "SIP/2.0 100 Trying");
        // A REGISTER retried after a challenge with the same CSeq is handled.
        let register = |branch: &str| {
            with(&invite(branch), |r| {
                r.method = Method::Register;
                r.headers.cseq.method = Method::Register;
                r.headers.call_id = "reg".into();
            })
        };
        ep.handle_message(t0, register("z9hG4bKr1"), peer());
        ep.handle_message(t0, register("z9hG4bKr2"), peer());
        assert_eq!(drain(&mut ep).1.len(), 2);
    }

    #[test]
    fn a_full_transaction_table_refuses_statelessly() {
        let t0 = Instant::now();
        let mut config = EndpointConfig::new("127.0.0.1:5060".parse().unwrap());
        config.max_transactions = 1;
        let mut ep = Endpoint::new(config, 7);
        ep.handle_message(t0, invite("z9hG4bKf1"), peer());
        drain(&mut ep);
        let other = with(&invite("z9hG4bKf2"), |r| r.headers.call_id = "c2".into());
        ep.handle_message(t0, other, peer());
        let (out, events) = drain(&mut ep);
        assert!(events.is_empty());
        assert!(
            out[0].starts_with("SIP/2.0 503 Service Unavailable"),
            "{out:?}"
        );
        assert!(out[0].contains("Retry-After: 5\r\n"));
        assert_eq!(ep.live_transactions(), 1, "nothing kept for it");
    }

    #[test]
    fn an_invite_the_tu_never_answers_is_answered_500_at_the_abandon_deadline() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKa1"), peer());
        drain(&mut ep);
        let abandon = t0 + ep.config().invite_abandon;
        while let Some(at) = ep.poll_timeout().filter(|at| *at < abandon) {
            ep.handle_timeout(at);
            assert!(drain(&mut ep).0.is_empty());
        }
        assert_eq!(ep.poll_timeout(), Some(abandon));
        ep.handle_timeout(abandon);
        let (out, _) = drain(&mut ep);
        assert!(
            out[0].starts_with("SIP/2.0 500 Server Internal Error"),
            "{out:?}"
        );
        // Then an ordinary non-2xx final: retransmitted until Timer H, then gone.
        while let Some(at) = ep.poll_timeout() {
            ep.handle_timeout(at);
            drain(&mut ep);
        }
        assert_eq!(ep.live_transactions(), 0);
    }

    #[test]
    fn the_ack_timeout_names_the_dialog() {
        let t0 = Instant::now();
        let mut ep = endpoint();
        ep.handle_message(t0, invite("z9hG4bKd1"), peer());
        let (_, events) = drain(&mut ep);
        let tx = server_tx(&events);
        let ok = ep
            .server_request(tx)
            .unwrap()
            .response(200)
            .with_to_tag("b9");
        ep.respond(t0, tx, ok);
        ep.handle_timeout(t0 + Duration::from_secs(40));
        let (_, events) = drain(&mut ep);
        assert!(
            events.contains(&EndpointEvent::AckTimeout {
                tx,
                dialog: DialogId {
                    call_id: "c1".into(),
                    local_tag: "b9".into(),
                    remote_tag: "a1".into()
                }
            }),
            "{events:?}"
        );
    }
}

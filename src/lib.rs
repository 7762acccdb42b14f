//! dispatchline: a SIP call-control engine for the emergency dispatch services of
//! housing management companies.
//!
//! One engine serves many management companies (tenants) from one pool of
//! contact-centre operators: it answers residents on tenant, citywide and legacy
//! numbers, plays announcements, queues calls to operators' softphones, records every
//! conversation, calls staff back and drives the outbound dial chains that hand
//! emergency tickets to the people who must fix them. `../DESIGN.md` holds the
//! contracts; this crate doc explains how the code is put together.
//!
//! # Layers
//!
//! Lower layers never import higher ones:
//!
//! - [`sip`]: the wire format, transports, RFC 3261 transactions and dialogs.
//! - [`media`]: SDP, RTP, G.711, prompt playback, DTMF and recording.
//! - [`call`]: the B2BUA, number routing, IVR, the operators' queue.
//! - [`dialer`]: persistent outbound dial jobs and escalation chains.
//! - [`store`]: the ticket store on SQLite or PostgreSQL.
//! - [`console`]: HTTP, the REST API, the websocket and the operators' web page.
//! - [`events`]: the sequenced bus everything above publishes into.
//!
//! # The run loop
//!
//! Protocol logic is sans-IO: the SIP transaction and dialog machines, the call state
//! machines and the RTP sessions take input through `handle_*(now, ...)` methods and
//! give output through `poll_*` methods. They own no sockets, read no clock and draw
//! no unseeded randomness. A tokio driver at the edge owns the sockets, the timers and
//! the database, and runs one loop per core:
//!
//! 1. feed whatever arrived (a datagram, a command, a database answer) with the
//!    current time;
//! 2. drain `poll_transmit` (send), `poll_event` (publish or act) until empty;
//! 3. sleep until `poll_timeout`, or until more input arrives, then call
//!    `handle_timeout(now)` and go to 2.
//!
//! # Three kinds of time
//!
//! - **now** (`std::time::Instant`): monotonic, passed into every state machine; all
//!   protocol timers (RFC 3261 A-K, ring timeouts, queue waits) are deadlines in it.
//!   Tests build their own instants and jump between deadlines, so a 32-second Timer B
//!   runs in microseconds.
//! - **media time** (RTP timestamp units, 8 kHz for G.711): carried in RTP packets,
//!   wraps at 2^32, compared with serial-number arithmetic.
//! - **wallclock** (`chrono::DateTime<Utc>`): what people and the law care about:
//!   ticket deadlines, the 5-minute rule, the journal, event timestamps. It is stored
//!   in UTC and shown in each city's time zone.

pub mod call;
pub mod config;
pub mod console;
pub mod demo;
pub mod dialer;
pub mod error;
pub mod events;
pub mod guard;
pub mod media;
pub mod phone;
pub mod server;
pub mod sim;
pub mod sip;
pub mod store;
pub mod supervise;

pub use error::Error;

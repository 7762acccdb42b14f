//! The SIP wire format: bytes in, typed messages out, and back.
//!
//! Owns framing (datagrams and streams, strictly by Content-Length), lexing (line
//! folding, compact header names, comma-joined list headers), the value grammars
//! (URIs including IPv6 references, name-addr, Via, CSeq) and serialisation. Every
//! other module sees only the types re-exported here; `rsip` is used behind
//! [`vocabulary`] and nowhere else.
//!
//! Nothing here panics on input: every RFC 4475 torture message, and random and
//! mutated messages (see the property tests), give a message or a [`ParseError`].

pub mod auth;
pub mod framing;
pub mod header;
pub mod message;
pub mod parse;
pub(crate) mod text;
pub mod uri;
pub mod vocabulary;

pub use framing::{Frame, StreamFramer};
pub use header::{
    BRANCH_COOKIE, CSeq, Contact, Header, HeaderError, HeaderName, Method, NameAddr, Via,
};
pub use message::{Headers, Message, Request, Response};
pub use parse::{Echo, Framing, MAX_MESSAGE_SIZE, ParseError, WireError, parse, too_large};
pub use uri::{Host, Param, Scheme, Uri, UriError};
pub use vocabulary::reason_phrase;

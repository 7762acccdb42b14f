//! SDP (RFC 4566) and the offer/answer model (RFC 3264) for one audio stream.
//!
//! Owns the session description model, its parser and serialiser, and the
//! negotiation rules the engine applies:
//!
//! - codecs: PCMU (static PT 0) and PCMA (static PT 8) at 8 kHz, also under dynamic
//!   payload types when an `a=rtpmap` says so; `telephone-event/8000` (RFC 4733 §7) at
//!   whatever dynamic type the peer chose;
//! - the answerer picks the first format in the *offer's* order that it supports
//!   (RFC 3264 §6.1), and rejects every other stream with port 0 (§6);
//! - direction attributes (§6.1, §8.4): the answer mirrors the offer (their
//!   `sendonly` is our `recvonly`), intersected with what we want (hold);
//!   `c=0.0.0.0` (RFC 2543 hold) means "do not send to me";
//! - connection addresses in IPv4 and IPv6 (RFC 4566 §5.7), at session or media
//!   level, `a=rtcp` (RFC 3605) and `a=rtcp-mux` (RFC 5761 §5.1.1);
//! - the origin version increments whenever our description changes (RFC 3264 §8).
//!
//! Everything here is pure: no sockets, no clock, no randomness (the session id comes
//! from the caller). The parser never panics on any input.

use std::fmt::{self, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// A line is not `x=value`, or a field in it is not what RFC 4566 allows.
    #[error("SDP line {line}: {reason}")]
    Malformed {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The body has no `v=` line or no media at all.
    #[error("SDP has no version line or no media description")]
    Incomplete,
    /// No audio stream over RTP/AVP offers PCMU or PCMA (the call layer answers 488).
    #[error("no common codec: the offer has no PCMU or PCMA audio over RTP/AVP")]
    NoCommonCodec,
    /// The answer rejected our audio stream (port 0) or changed the number of streams.
    #[error("the answer rejected the audio stream")]
    Rejected,
    /// The audio stream has no connection address (neither media nor session level).
    #[error("the audio stream has no connection address")]
    NoConnection,
}

/// A media direction (RFC 3264 §5.1, §6.1), always from the point of view of whoever
/// wrote the description it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Direction {
    /// Send and receive.
    #[default]
    SendRecv,
    /// Send only (the other side is on hold, hearing music).
    SendOnly,
    /// Receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SendRecv => "sendrecv",
            Self::SendOnly => "sendonly",
            Self::RecvOnly => "recvonly",
            Self::Inactive => "inactive",
        }
    }

    fn from_attr(name: &str) -> Option<Self> {
        match name {
            "sendrecv" => Some(Self::SendRecv),
            "sendonly" => Some(Self::SendOnly),
            "recvonly" => Some(Self::RecvOnly),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }

    /// Whether this side sends.
    pub fn sends(self) -> bool {
        matches!(self, Self::SendRecv | Self::SendOnly)
    }

    /// Whether this side receives.
    pub fn receives(self) -> bool {
        matches!(self, Self::SendRecv | Self::RecvOnly)
    }

    /// Builds a direction from its two halves.
    pub fn from_parts(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Self::SendRecv,
            (true, false) => Self::SendOnly,
            (false, true) => Self::RecvOnly,
            (false, false) => Self::Inactive,
        }
    }

    /// The same stream seen from the other end: sendonly ↔ recvonly.
    pub fn reversed(self) -> Self {
        Self::from_parts(self.receives(), self.sends())
    }
}

/// An audio codec the engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// G.711 μ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
}

impl Codec {
    /// The static payload type of RFC 3551 §6.
    pub fn static_pt(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The encoding name in `a=rtpmap`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The G.711 law.
    pub fn law(self) -> super::g711::Law {
        match self {
            Self::Pcmu => super::g711::Law::Mu,
            Self::Pcma => super::g711::Law::A,
        }
    }
}

/// A codec bound to the payload type the stream uses for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PayloadFormat {
    /// Which codec.
    pub codec: Codec,
    /// Its payload type on this stream.
    pub pt: u8,
}

impl PayloadFormat {
    /// The codec at its static payload type.
    pub fn at_static(codec: Codec) -> Self {
        Self {
            codec,
            pt: codec.static_pt(),
        }
    }
}

/// The outcome of offer/answer for the audio stream: what the media engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP; `None` when the peer said `c=0.0.0.0` (or port 0 to us).
    pub remote_rtp: Option<SocketAddr>,
    /// Where to send RTCP (`a=rtcp`, or RTP port + 1, or the RTP address when muxed).
    pub remote_rtcp: Option<SocketAddr>,
    /// Both sides agreed to multiplex RTP and RTCP on one port (RFC 5761).
    pub rtcp_mux: bool,
    /// The audio codec and its payload type.
    pub codec: PayloadFormat,
    /// The telephone-event payload type, when both sides support RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// The telephone-events the peer accepts (bit n: event n, 0-31), from its
    /// `a=fmtp` (RFC 4733 §2.4.1; no fmtp means the DTMF events 0-15). Events the
    /// peer did not list are not sent to it.
    pub dtmf_events: u32,
    /// Our direction: `SendOnly` means we send and the peer does not (we hold them,
    /// or they put us on hold with recvonly).
    pub direction: Direction,
    /// The peer's packetisation time in milliseconds (we always send 20 ms).
    pub ptime: u32,
}

/// What we support and want; the same for offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpPreferences {
    /// Codecs we accept, in our order of preference (used for offers; answers follow
    /// the offer's order among these).
    pub codecs: Vec<Codec>,
    /// The payload type we offer for telephone-event; `None` disables RFC 4733.
    pub dtmf_pt: Option<u8>,
    /// The direction we want (`SendOnly` to hold the peer, `Inactive` to mute both).
    pub direction: Direction,
    /// Packetisation we send, in ms (`a=ptime`).
    pub ptime: u32,
    /// The `o=` user name and `s=` session name.
    pub user: String,
}

impl Default for SdpPreferences {
    fn default() -> Self {
        Self {
            codecs: vec![Codec::Pcma, Codec::Pcmu],
            dtmf_pt: Some(101),
            direction: Direction::SendRecv,
            ptime: 20,
            user: "dispatchline".into(),
        }
    }
}

/// `o=` (RFC 4566 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// User name (`-` when none).
    pub username: String,
    /// Session id.
    pub session_id: u64,
    /// Session version; increments on every change.
    pub version: u64,
    /// The originator's address as written (an IP address, or a host name).
    pub address: String,
}

/// An `a=rtpmap` (RFC 4566 §6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Payload type.
    pub pt: u8,
    /// Encoding name as written.
    pub encoding: String,
    /// Clock rate.
    pub clock_rate: u32,
    /// Channels, when given.
    pub channels: Option<u32>,
}

/// One `m=` section (RFC 4566 §5.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// `audio`, `video`, ...
    pub kind: String,
    /// Transport port; 0 rejects or disables the stream.
    pub port: u16,
    /// `RTP/AVP`, ...
    pub proto: String,
    /// Formats as written (payload types for RTP).
    pub formats: Vec<String>,
    /// Media-level `c=` address (the TTL/count suffix dropped).
    pub connection: Option<IpAddr>,
    /// `a=rtpmap` lines.
    pub rtpmaps: Vec<RtpMap>,
    /// `a=fmtp` lines: payload type and parameters.
    pub fmtps: Vec<(u8, String)>,
    /// Direction attribute, if any.
    pub direction: Option<Direction>,
    /// `a=ptime`, if any.
    pub ptime: Option<u32>,
    /// `a=rtcp` port and optional address (RFC 3605).
    pub rtcp: Option<(u16, Option<IpAddr>)>,
    /// `a=rtcp-mux` present.
    pub rtcp_mux: bool,
    /// Every other attribute, kept verbatim (name, value).
    pub other: Vec<(String, Option<String>)>,
}

/// A whole session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    /// `o=`.
    pub origin: Origin,
    /// `s=`.
    pub session_name: String,
    /// Session-level `c=`.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    /// The media sections, in order.
    pub media: Vec<MediaDescription>,
}

fn malformed(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Malformed {
        line,
        reason: reason.into(),
    }
}

/// `c=IN IP4 addr[/ttl[/n]]` → the address. `IN IP6` likewise. Host names are refused.
fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(net), Some(atype), Some(addr)) = (f.next(), f.next(), f.next()) else {
        return Err(malformed(
            line,
            "c= needs network type, address type and address",
        ));
    };
    if net != "IN" {
        return Err(malformed(line, format!("network type {net} is not IN")));
    }
    let addr = addr.split('/').next().unwrap_or(addr);
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| malformed(line, format!("`{addr}` is not an IP address")))?;
    match (atype, ip) {
        ("IP4", IpAddr::V4(_)) | ("IP6", IpAddr::V6(_)) => Ok(ip),
        _ => Err(malformed(line, format!("{addr} is not an {atype} address"))),
    }
}

impl SessionDescription {
    /// Parses an SDP body. Lenient where real peers are sloppy (CRLF or LF, blank
    /// lines, unknown line types, missing `s=`/`t=`, malformed attributes, which are
    /// kept verbatim and ignored), strict where a mistake would send media to the
    /// wrong place (`c=`, `m=`). Never panics.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut saw_version = false;
        let mut origin = Origin {
            username: "-".into(),
            session_id: 0,
            version: 0,
            address: "0.0.0.0".into(),
        };
        let mut session_name = String::from("-");
        let mut connection = None;
        let mut direction = None;
        let mut media: Vec<MediaDescription> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let n = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.trim().is_empty() {
                continue;
            }
            let Some((kind, value)) = line.split_once('=') else {
                return Err(malformed(n, "not of the form x=value"));
            };
            let kind = kind.trim();
            if kind.len() != 1 {
                return Err(malformed(n, format!("`{kind}` is not a one-letter type")));
            }
            match kind {
                "v" => {
                    if value.trim() != "0" {
                        return Err(malformed(n, "only SDP version 0 exists"));
                    }
                    saw_version = true;
                }
                "o" => {
                    let f: Vec<&str> = value.split_ascii_whitespace().collect();
                    let [user, id, ver, _net, _atype, addr] = f[..] else {
                        return Err(malformed(n, "o= needs six fields"));
                    };
                    origin = Origin {
                        username: user.to_owned(),
                        // Session ids are "numeric strings"; some UAs exceed u64.
                        session_id: id.parse().unwrap_or(0),
                        // Also a "numeric string" (RFC 4566 §5.2); a version that
                        // does not fit u64 is kept as 0 rather than failing the call.
                        version: if ver.bytes().all(|b| b.is_ascii_digit()) && !ver.is_empty() {
                            ver.parse().unwrap_or(0)
                        } else {
                            return Err(malformed(n, "o= version is not a number"));
                        },
                        address: addr.to_owned(),
                    };
                }
                "s" => session_name = value.to_owned(),
                "c" => {
                    let ip = parse_connection(value, n)?;
                    match media.last_mut() {
                        Some(m) => m.connection = Some(ip),
                        None => connection = Some(ip),
                    }
                }
                "m" => media.push(parse_media_line(value, n)?),
                "a" => {
                    let (name, val) = match value.split_once(':') {
                        Some((a, v)) => (a, Some(v)),
                        None => (value, None),
                    };
                    match media.last_mut() {
                        Some(m) => {
                            // A malformed attribute (`a=rtpmap:31 LPC` in RFC 4475's
                            // messages) must not sink the whole offer: keep it verbatim
                            // and ignore it, as it cannot describe a codec we use.
                            if let Err(e) = parse_media_attribute(m, name, val, n) {
                                tracing::debug!(error = %e, "ignoring malformed SDP attribute");
                                m.other
                                    .push((name.to_owned(), val.map(|v| v.trim_end().to_owned())));
                            }
                        }
                        None => {
                            if let Some(d) = Direction::from_attr(name) {
                                direction = Some(d);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !saw_version || media.is_empty() {
            return Err(SdpError::Incomplete);
        }
        Ok(Self {
            origin,
            session_name,
            connection,
            direction,
            media,
        })
    }

    /// The connection address of stream `m` (media level, else session level).
    pub fn connection_of(&self, m: &MediaDescription) -> Option<IpAddr> {
        m.connection.or(self.connection)
    }

    /// The effective direction of stream `m` (media level, else session level, else
    /// sendrecv).
    pub fn direction_of(&self, m: &MediaDescription) -> Direction {
        m.direction.or(self.direction).unwrap_or_default()
    }
}

fn parse_media_line(value: &str, n: usize) -> Result<MediaDescription, SdpError> {
    let mut f = value.split_ascii_whitespace();
    let (Some(kind), Some(port), Some(proto)) = (f.next(), f.next(), f.next()) else {
        return Err(malformed(n, "m= needs media, port, proto and formats"));
    };
    // `port/count` (RFC 4566 §5.14): only the first port matters to us.
    let port_text = port.split('/').next().unwrap_or(port);
    let port: u16 = port_text
        .parse()
        .map_err(|_| malformed(n, format!("port `{port_text}` is not a number")))?;
    Ok(MediaDescription {
        kind: kind.to_owned(),
        port,
        proto: proto.to_owned(),
        formats: f.map(str::to_owned).collect(),
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        ptime: None,
        rtcp: None,
        rtcp_mux: false,
        other: Vec::new(),
    })
}

fn parse_media_attribute(
    m: &mut MediaDescription,
    name: &str,
    val: Option<&str>,
    n: usize,
) -> Result<(), SdpError> {
    if let Some(d) = Direction::from_attr(name) {
        m.direction = Some(d);
        return Ok(());
    }
    match (name, val) {
        ("rtpmap", Some(v)) => {
            let (pt, rest) = v
                .trim()
                .split_once(char::is_whitespace)
                .ok_or_else(|| malformed(n, "rtpmap needs a payload type and an encoding"))?;
            let pt: u8 =
                pt.parse().ok().filter(|p| *p < 128).ok_or_else(|| {
                    malformed(n, format!("rtpmap payload type `{pt}` is invalid"))
                })?;
            let mut parts = rest.trim().split('/');
            let encoding = parts.next().unwrap_or_default().to_owned();
            let clock_rate = parts
                .next()
                .and_then(|c| c.trim().parse().ok())
                .ok_or_else(|| malformed(n, "rtpmap clock rate is missing or not a number"))?;
            let channels = parts.next().and_then(|c| c.trim().parse().ok());
            m.rtpmaps.push(RtpMap {
                pt,
                encoding,
                clock_rate,
                channels,
            });
        }
        ("fmtp", Some(v)) => {
            if let Some((pt, params)) = v.trim().split_once(char::is_whitespace) {
                if let Ok(pt) = pt.parse::<u8>() {
                    m.fmtps.push((pt, params.trim().to_owned()));
                }
            }
        }
        ("ptime", Some(v)) => m.ptime = v.trim().parse().ok(),
        ("rtcp", Some(v)) => {
            let mut f = v.split_ascii_whitespace();
            let port: u16 = f
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| malformed(n, "a=rtcp port is not a number"))?;
            let rest: Vec<&str> = f.collect();
            let addr = if rest.is_empty() {
                None
            } else {
                Some(parse_connection(&rest.join(" "), n)?)
            };
            m.rtcp = Some((port, addr));
        }
        ("rtcp-mux", _) => m.rtcp_mux = true,
        _ => m
            .other
            .push((name.to_owned(), val.map(|v| v.trim_end().to_owned()))),
    }
    Ok(())
}

fn addr_type(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

impl fmt::Display for SessionDescription {
    /// Serialises with CRLF line ends in the order RFC 4566 §5 requires.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        let o_type = match o.address.parse::<IpAddr>() {
            Ok(ip) => addr_type(ip),
            Err(_) => "IP4",
        };
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            o.username, o.session_id, o.version, o_type, o.address
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = self.connection {
            write!(f, "c=IN {} {}\r\n", addr_type(c), c)?;
        }
        write!(f, "t=0 0\r\n")?;
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.kind, m.port, m.proto)?;
            for fmt in &m.formats {
                write!(f, " {fmt}")?;
            }
            write!(f, "\r\n")?;
            if let Some(c) = m.connection {
                write!(f, "c=IN {} {}\r\n", addr_type(c), c)?;
            }
            for r in &m.rtpmaps {
                write!(f, "a=rtpmap:{} {}/{}", r.pt, r.encoding, r.clock_rate)?;
                if let Some(ch) = r.channels {
                    write!(f, "/{ch}")?;
                }
                write!(f, "\r\n")?;
            }
            for (pt, p) in &m.fmtps {
                write!(f, "a=fmtp:{pt} {p}\r\n")?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            if let Some((port, addr)) = m.rtcp {
                match addr {
                    Some(a) => write!(f, "a=rtcp:{port} IN {} {a}\r\n", addr_type(a))?,
                    None => write!(f, "a=rtcp:{port}\r\n")?,
                }
            }
            if m.rtcp_mux {
                write!(f, "a=rtcp-mux\r\n")?;
            }
            for (name, val) in &m.other {
                match val {
                    Some(v) => write!(f, "a={name}:{v}\r\n")?,
                    None => write!(f, "a={name}\r\n")?,
                }
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
        }
        Ok(())
    }
}

/// What a payload type on a stream means to us.
fn resolve_format(m: &MediaDescription, pt: u8) -> Option<Format> {
    let map = m.rtpmaps.iter().find(|r| r.pt == pt);
    match map {
        Some(r) if r.clock_rate == 8000 && r.channels.unwrap_or(1) == 1 => {
            let enc = r.encoding.to_ascii_uppercase();
            match enc.as_str() {
                "PCMU" => Some(Format::Audio(Codec::Pcmu)),
                "PCMA" => Some(Format::Audio(Codec::Pcma)),
                "TELEPHONE-EVENT" => Some(Format::Dtmf),
                _ => None,
            }
        }
        Some(_) => None,
        // Static types need no rtpmap (RFC 3551 §6).
        None => match pt {
            0 => Some(Format::Audio(Codec::Pcmu)),
            8 => Some(Format::Audio(Codec::Pcma)),
            _ => None,
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Audio(Codec),
    Dtmf,
}

fn payload_types(m: &MediaDescription) -> impl Iterator<Item = u8> + '_ {
    m.formats
        .iter()
        .filter_map(|f| f.parse::<u8>().ok())
        .filter(|p| *p < 128)
}

fn is_avp(m: &MediaDescription) -> bool {
    m.kind.eq_ignore_ascii_case("audio") && m.proto.eq_ignore_ascii_case("RTP/AVP")
}

/// The codec and telephone-event type to use on stream `m`, choosing the first of
/// `m`'s formats that `prefs` supports.
fn choose(m: &MediaDescription, prefs: &SdpPreferences) -> Option<(PayloadFormat, Option<u8>)> {
    let codec = payload_types(m).find_map(|pt| match resolve_format(m, pt) {
        Some(Format::Audio(c)) if prefs.codecs.contains(&c) => Some(PayloadFormat { codec: c, pt }),
        _ => None,
    })?;
    let dtmf = prefs
        .dtmf_pt
        .and_then(|_| payload_types(m).find(|pt| resolve_format(m, *pt) == Some(Format::Dtmf)));
    Some((codec, dtmf))
}

fn remote_addresses(
    sdp: &SessionDescription,
    m: &MediaDescription,
    mux: bool,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), SdpError> {
    let ip = sdp.connection_of(m).ok_or(SdpError::NoConnection)?;
    if ip.is_unspecified() || m.port == 0 {
        return Ok((None, None));
    }
    let rtp = SocketAddr::new(ip, m.port);
    let rtcp = if mux {
        rtp
    } else {
        match m.rtcp {
            Some((port, addr)) => SocketAddr::new(addr.unwrap_or(ip), port),
            // RTP on 65535 leaves no port for RTCP: none is sent then.
            None => match m.port.checked_add(1) {
                Some(p) => SocketAddr::new(ip, p),
                None => return Ok((Some(rtp), None)),
            },
        }
    };
    Ok((Some(rtp), Some(rtcp)))
}

/// Our side of one leg's offer/answer: keeps the origin (session id and version) and
/// the last description we sent, so the version increments exactly when our
/// description changes (RFC 3264 §8), and remembers our pending offer.
#[derive(Debug, Clone)]
pub struct SdpSession {
    session_id: u64,
    version: u64,
    last_body: Option<String>,
    pending_offer: Option<SessionDescription>,
}

impl SdpSession {
    /// A new session; `session_id` should be random (the caller injects it).
    pub fn new(session_id: u64) -> Self {
        Self {
            session_id,
            version: 0,
            last_body: None,
            pending_offer: None,
        }
    }

    /// Answers `offer` (RFC 3264 §6) for media received at `local`. The first
    /// RTP/AVP audio stream with a common codec is accepted; every other stream is
    /// rejected with port 0. `NoCommonCodec` means the call layer answers 488.
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        local: SocketAddr,
        prefs: &SdpPreferences,
    ) -> Result<(SessionDescription, Negotiated), SdpError> {
        let mut accepted: Option<(usize, PayloadFormat, Option<u8>)> = None;
        for (i, m) in offer.media.iter().enumerate() {
            if m.port != 0 && is_avp(m) {
                if let Some((codec, dtmf)) = choose(m, prefs) {
                    accepted = Some((i, codec, dtmf));
                    break;
                }
            }
        }
        let (index, codec, dtmf_pt) = accepted.ok_or(SdpError::NoCommonCodec)?;
        let theirs = offer.media.get(index).ok_or(SdpError::NoCommonCodec)?;
        // The events both sides take (RFC 4733 §2.4.1): the answer lists only those,
        // and no common event means no telephone-event at all.
        let dtmf_events = dtmf_pt.map_or(0, |pt| event_mask(theirs, pt) & OUR_EVENTS);
        let dtmf_pt = dtmf_pt.filter(|_| dtmf_events != 0);
        let (remote_rtp, remote_rtcp) = remote_addresses(offer, theirs, theirs.rtcp_mux)?;
        let their_dir = offer.direction_of(theirs);
        // They cannot receive if they gave no address (c=0.0.0.0 hold).
        let they_receive = their_dir.receives() && remote_rtp.is_some();
        let ours = Direction::from_parts(
            prefs.direction.sends() && they_receive,
            prefs.direction.receives() && their_dir.sends(),
        );
        let mut media = Vec::with_capacity(offer.media.len());
        for (i, m) in offer.media.iter().enumerate() {
            if i == index {
                let mut formats = vec![codec.pt.to_string()];
                let mut rtpmaps = vec![RtpMap {
                    pt: codec.pt,
                    encoding: codec.codec.name().into(),
                    clock_rate: 8000,
                    channels: None,
                }];
                let mut fmtps = Vec::new();
                if let Some(pt) = dtmf_pt {
                    formats.push(pt.to_string());
                    rtpmaps.push(RtpMap {
                        pt,
                        encoding: "telephone-event".into(),
                        clock_rate: 8000,
                        channels: None,
                    });
                    fmtps.push((pt, format_event_list(dtmf_events)));
                }
                media.push(MediaDescription {
                    kind: m.kind.clone(),
                    port: local.port(),
                    proto: m.proto.clone(),
                    formats,
                    connection: None,
                    rtpmaps,
                    fmtps,
                    direction: Some(ours),
                    ptime: Some(prefs.ptime),
                    rtcp: None,
                    rtcp_mux: theirs.rtcp_mux,
                    other: Vec::new(),
                });
            } else {
                media.push(rejected(m));
            }
        }
        let sdp = self.stamp(local, prefs, media);
        let negotiated = Negotiated {
            remote_rtp,
            remote_rtcp,
            rtcp_mux: theirs.rtcp_mux,
            codec,
            dtmf_pt,
            dtmf_events,
            direction: ours,
            ptime: theirs.ptime.unwrap_or(20),
        };
        Ok((sdp, negotiated))
    }

    /// Builds an offer (RFC 3264 §5) of one audio stream at `local`, with our codecs
    /// in preference order and telephone-event; `prefs.direction` puts the peer on
    /// hold (`SendOnly`) or takes it off (`SendRecv`). The offer is remembered for
    /// [`accept_answer`](Self::accept_answer).
    pub fn offer(&mut self, local: SocketAddr, prefs: &SdpPreferences) -> SessionDescription {
        let mut formats = Vec::new();
        let mut rtpmaps = Vec::new();
        let mut fmtps = Vec::new();
        for c in &prefs.codecs {
            formats.push(c.static_pt().to_string());
            rtpmaps.push(RtpMap {
                pt: c.static_pt(),
                encoding: c.name().into(),
                clock_rate: 8000,
                channels: None,
            });
        }
        if let Some(pt) = prefs.dtmf_pt {
            formats.push(pt.to_string());
            rtpmaps.push(RtpMap {
                pt,
                encoding: "telephone-event".into(),
                clock_rate: 8000,
                channels: None,
            });
            fmtps.push((pt, format_event_list(OUR_EVENTS)));
        }
        let media = vec![MediaDescription {
            kind: "audio".into(),
            port: local.port(),
            proto: "RTP/AVP".into(),
            formats,
            connection: None,
            rtpmaps,
            fmtps,
            direction: Some(prefs.direction),
            ptime: Some(prefs.ptime),
            rtcp: None,
            rtcp_mux: false,
            other: Vec::new(),
        }];
        let sdp = self.stamp(local, prefs, media);
        self.pending_offer = Some(sdp.clone());
        sdp
    }

    /// Takes the peer's answer to our last [`offer`](Self::offer) (RFC 3264 §7).
    pub fn accept_answer(&mut self, answer: &SessionDescription) -> Result<Negotiated, SdpError> {
        let offer = self.pending_offer.take().ok_or(SdpError::Rejected)?;
        accept_answer(&offer, answer)
    }

    /// Fills in `o=`, `s=`, `c=` and bumps the version when the body changed.
    fn stamp(
        &mut self,
        local: SocketAddr,
        prefs: &SdpPreferences,
        media: Vec<MediaDescription>,
    ) -> SessionDescription {
        let mut sdp = SessionDescription {
            origin: Origin {
                username: prefs.user.clone(),
                session_id: self.session_id,
                version: self.version,
                address: local.ip().to_string(),
            },
            session_name: prefs.user.clone(),
            connection: Some(local.ip()),
            direction: None,
            media,
        };
        // Compare everything but the origin line.
        let mut body = String::new();
        let _ = write!(body, "{sdp}");
        let body = body
            .split_once("\r\ns=")
            .map(|(_, b)| b.to_owned())
            .unwrap_or(body);
        if let Some(last) = &self.last_body {
            if *last != body {
                self.version += 1;
                sdp.origin.version = self.version;
            }
        }
        self.last_body = Some(body);
        sdp
    }
}

fn rejected(m: &MediaDescription) -> MediaDescription {
    let mut formats = m.formats.clone();
    if formats.is_empty() {
        formats.push("0".into());
    }
    MediaDescription {
        kind: m.kind.clone(),
        port: 0,
        proto: m.proto.clone(),
        formats,
        connection: None,
        rtpmaps: Vec::new(),
        fmtps: Vec::new(),
        direction: None,
        ptime: None,
        rtcp: None,
        rtcp_mux: false,
        other: Vec::new(),
    }
}

/// Answers an offer with a fresh session (origin version 0). See
/// [`SdpSession::answer`], which the call layer should use so re-INVITEs bump `o=`.
pub fn answer(
    offer: &SessionDescription,
    local: SocketAddr,
    prefs: &SdpPreferences,
) -> Result<(SessionDescription, Negotiated), SdpError> {
    SdpSession::new(0).answer(offer, local, prefs)
}

/// Builds an offer with a fresh session. See [`SdpSession::offer`].
pub fn offer(local: SocketAddr, prefs: &SdpPreferences) -> SessionDescription {
    SdpSession::new(0).offer(local, prefs)
}

/// Reads the peer's answer to `our_offer` (RFC 3264 §7): the first format in the
/// answer that we offered and support is the codec; directions are mirrored.
pub fn accept_answer(
    our_offer: &SessionDescription,
    their_answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    if our_offer.media.len() != their_answer.media.len() {
        return Err(SdpError::Rejected);
    }
    let (index, ours) = our_offer
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.port != 0 && is_avp(m))
        .ok_or(SdpError::NoCommonCodec)?;
    let theirs = their_answer.media.get(index).ok_or(SdpError::Rejected)?;
    if theirs.port == 0 && their_answer.connection_of(theirs).is_none() {
        return Err(SdpError::Rejected);
    }
    if theirs.port == 0 {
        return Err(SdpError::Rejected);
    }
    let offered: Vec<Codec> = payload_types(ours)
        .filter_map(|pt| match resolve_format(ours, pt) {
            Some(Format::Audio(c)) => Some(c),
            _ => None,
        })
        .collect();
    let prefs = SdpPreferences {
        codecs: offered,
        dtmf_pt: payload_types(ours).find(|pt| resolve_format(ours, *pt) == Some(Format::Dtmf)),
        ..SdpPreferences::default()
    };
    let (codec, dtmf_pt) = choose(theirs, &prefs).ok_or(SdpError::NoCommonCodec)?;
    let dtmf_events = dtmf_pt.map_or(0, |pt| event_mask(theirs, pt) & OUR_EVENTS);
    let dtmf_pt = dtmf_pt.filter(|_| dtmf_events != 0);
    let rtcp_mux = ours.rtcp_mux && theirs.rtcp_mux;
    let (remote_rtp, remote_rtcp) = remote_addresses(their_answer, theirs, rtcp_mux)?;
    let their_dir = their_answer.direction_of(theirs);
    let our_dir = our_offer.direction_of(ours);
    let direction = Direction::from_parts(
        our_dir.sends() && their_dir.receives() && remote_rtp.is_some(),
        our_dir.receives() && their_dir.sends(),
    );
    Ok(Negotiated {
        remote_rtp,
        remote_rtcp,
        rtcp_mux,
        codec,
        dtmf_pt,
        dtmf_events,
        direction,
        ptime: theirs.ptime.unwrap_or(20),
    })
}

/// The telephone-events we send and accept: the sixteen DTMF keys and flash
/// (RFC 4733 §3.2, events 0-16), as a mask (bit n: event n).
pub const OUR_EVENTS: u32 = 0x1_FFFF;
/// What a telephone-event format without `a=fmtp` supports: events 0-15
/// (RFC 4733 §2.4.1).
const DEFAULT_EVENTS: u32 = 0xFFFF;

/// The events a stream's `a=fmtp` lists for telephone-event type `pt`.
fn event_mask(m: &MediaDescription, pt: u8) -> u32 {
    match m.fmtps.iter().find(|(p, _)| *p == pt) {
        None => DEFAULT_EVENTS,
        Some((_, params)) => parse_event_list(params),
    }
}

/// Reads an RFC 4733 event list (`0-11,16`) into a mask of events 0-31; events
/// above 31 (none of them DTMF) and malformed items are left out.
pub fn parse_event_list(list: &str) -> u32 {
    let mut mask = 0u32;
    for item in list.split(',') {
        let item = item.trim();
        let (a, b) = item.split_once('-').unwrap_or((item, item));
        let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) else {
            continue;
        };
        for e in a..=b.min(31) {
            mask |= 1 << e;
        }
    }
    mask
}

/// Writes a mask as an RFC 4733 event list (`0-11,16`).
pub fn format_event_list(mask: u32) -> String {
    let mut parts = Vec::new();
    let mut e = 0u32;
    while e < 32 {
        if mask & (1 << e) == 0 {
            e += 1;
            continue;
        }
        let start = e;
        while e < 32 && mask & (1 << e) != 0 {
            e += 1;
        }
        parts.push(if e - 1 == start {
            start.to_string()
        } else {
            format!("{start}-{}", e - 1)
        });
    }
    parts.join(",")
}

/// The unspecified IPv4 address, as written by RFC 2543 hold.
pub const HOLD_ADDRESS: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";

    fn local() -> SocketAddr {
        "127.0.0.1:20000".parse().unwrap()
    }

    #[test]
    fn answers_sipp_with_pcma_and_telephone_event_101() {
        let offer = SessionDescription::parse(SIPP_OFFER).unwrap();
        let (sdp, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(neg.codec, PayloadFormat::at_static(Codec::Pcma));
        assert_eq!(neg.dtmf_pt, Some(101));
        assert_eq!(neg.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(neg.remote_rtcp, Some("127.0.0.1:6001".parse().unwrap()));
        assert_eq!(neg.direction, Direction::SendRecv);
        let text = sdp.to_string();
        assert!(text.contains("m=audio 20000 RTP/AVP 8 101\r\n"), "{text}");
        assert!(
            text.contains("a=rtpmap:101 telephone-event/8000\r\n"),
            "{text}"
        );
        assert!(text.contains("c=IN IP4 127.0.0.1\r\n"), "{text}");
        // Our answer parses back to the same thing.
        assert_eq!(SessionDescription::parse(&text).unwrap(), sdp);
    }

    #[test]
    fn the_offers_order_wins() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 0 8 96\r\na=rtpmap:96 telephone-event/8000\r\n",
        )
        .unwrap();
        let (_, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(neg.codec.codec, Codec::Pcmu);
        assert_eq!(neg.dtmf_pt, Some(96));
    }

    #[test]
    fn dynamic_payload_types_for_g711_are_understood() {
        let offer = SessionDescription::parse(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 97\na=rtpmap:97 pcma/8000\n",
        )
        .unwrap();
        let (_, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(
            neg.codec,
            PayloadFormat {
                codec: Codec::Pcma,
                pt: 97
            }
        );
        assert_eq!(neg.dtmf_pt, None);
    }

    #[test]
    fn no_common_codec() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18 9\r\na=rtpmap:18 G729/8000\r\n",
        )
        .unwrap();
        assert_eq!(
            answer(&offer, local(), &SdpPreferences::default()),
            Err(SdpError::NoCommonCodec)
        );
        // PCMA over SRTP is not something we can do either.
        let srtp = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 8\r\n",
        )
        .unwrap();
        assert_eq!(
            answer(&srtp, local(), &SdpPreferences::default()),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn other_streams_are_rejected_with_port_zero() {
        let offer = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 31\r\nm=audio 4000 RTP/AVP 0\r\n",
        )
        .unwrap();
        let (sdp, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(sdp.media.len(), 2);
        assert_eq!(sdp.media[0].port, 0);
        assert_eq!(sdp.media[0].formats, vec!["31".to_string()]);
        assert_eq!(sdp.media[1].port, 20000);
        assert_eq!(neg.codec.codec, Codec::Pcmu);
    }

    #[test]
    fn hold_directions_are_mirrored() {
        for (theirs, ours) in [
            ("sendonly", Direction::RecvOnly),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendRecv),
        ] {
            let text = format!("{SIPP_OFFER}a={theirs}\r\n");
            let offer = SessionDescription::parse(&text).unwrap();
            let (sdp, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
            assert_eq!(neg.direction, ours, "{theirs}");
            assert!(
                sdp.to_string()
                    .contains(&format!("a={}\r\n", ours.as_str()))
            );
        }
        // Session-level direction applies when the stream has none.
        let text = SIPP_OFFER.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
        let (_, neg) = answer(
            &SessionDescription::parse(&text).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert_eq!(neg.direction, Direction::RecvOnly);
    }

    #[test]
    fn rfc2543_hold_with_zero_address() {
        let text = SIPP_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let offer = SessionDescription::parse(&text).unwrap();
        let (_, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert_eq!(neg.remote_rtp, None);
        assert_eq!(neg.direction, Direction::RecvOnly);
    }

    #[test]
    fn we_put_the_peer_on_hold_and_the_version_increments() {
        let mut s = SdpSession::new(42);
        let prefs = SdpPreferences::default();
        let first = s.offer(local(), &prefs);
        assert_eq!(first.origin.version, 0);
        let same = s.offer(local(), &prefs);
        assert_eq!(same.origin.version, 0, "unchanged body keeps the version");
        let hold = SdpPreferences {
            direction: Direction::SendOnly,
            ..prefs.clone()
        };
        let held = s.offer(local(), &hold);
        assert_eq!(held.origin.version, 1);
        assert!(held.to_string().contains("a=sendonly\r\n"));
        let answer_text = "v=0\r\no=- 9 9 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 7000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=recvonly\r\n";
        let neg = s
            .accept_answer(&SessionDescription::parse(answer_text).unwrap())
            .unwrap();
        assert_eq!(neg.direction, Direction::SendOnly);
        assert_eq!(neg.codec.codec, Codec::Pcma);
        assert_eq!(neg.dtmf_pt, Some(101));
        let resumed = s.offer(local(), &prefs);
        assert_eq!(resumed.origin.version, 2);
    }

    #[test]
    fn answers_that_reject_us_are_errors() {
        let ours = offer(local(), &SdpPreferences::default());
        let rej = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 0 RTP/AVP 8\r\n",
        )
        .unwrap();
        assert_eq!(accept_answer(&ours, &rej), Err(SdpError::Rejected));
        let g729 = SessionDescription::parse(
            "v=0\r\no=- 1 1 IN IP4 10.0.0.2\r\ns=-\r\nc=IN IP4 10.0.0.2\r\nt=0 0\r\nm=audio 5000 RTP/AVP 18\r\n",
        )
        .unwrap();
        assert_eq!(accept_answer(&ours, &g729), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn ipv6_offer_and_answer() {
        let text = "v=0\r\no=bob 280744730 28977631 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::1\r\nt=0 0\r\nm=audio 22334 RTP/AVP 0\r\n";
        let offer = SessionDescription::parse(text).unwrap();
        let local6: SocketAddr = "[::1]:20000".parse().unwrap();
        let (sdp, neg) = answer(&offer, local6, &SdpPreferences::default()).unwrap();
        assert_eq!(neg.remote_rtp, Some("[2001:db8::1]:22334".parse().unwrap()));
        let out = sdp.to_string();
        assert!(out.contains("o=dispatchline 0 0 IN IP6 ::1\r\n"), "{out}");
        assert!(out.contains("c=IN IP6 ::1\r\n"), "{out}");
    }

    #[test]
    fn rtcp_attribute_and_mux() {
        let text = format!("{SIPP_OFFER}a=rtcp:7001 IN IP4 10.9.9.9\r\n");
        let (_, neg) = answer(
            &SessionDescription::parse(&text).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert_eq!(neg.remote_rtcp, Some("10.9.9.9:7001".parse().unwrap()));
        let text = format!("{SIPP_OFFER}a=rtcp-mux\r\n");
        let (sdp, neg) = answer(
            &SessionDescription::parse(&text).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert!(neg.rtcp_mux);
        assert_eq!(neg.remote_rtcp, neg.remote_rtp);
        assert!(sdp.to_string().contains("a=rtcp-mux\r\n"));
    }

    #[test]
    fn malformed_lines_name_their_line() {
        let err = SessionDescription::parse("v=0\r\nm=audio x RTP/AVP 0\r\n").unwrap_err();
        assert!(matches!(err, SdpError::Malformed { line: 2, .. }), "{err}");
        let err =
            SessionDescription::parse("v=0\r\nc=IN IP4 example.com\r\nm=audio 1 RTP/AVP 0\r\n")
                .unwrap_err();
        assert!(matches!(err, SdpError::Malformed { line: 2, .. }), "{err}");
        let err = SessionDescription::parse("v=0\r\nc=IN IP6 10.0.0.1\r\nm=audio 1 RTP/AVP 0\r\n")
            .unwrap_err();
        assert!(matches!(err, SdpError::Malformed { line: 2, .. }), "{err}");
        assert_eq!(SessionDescription::parse(""), Err(SdpError::Incomplete));
        assert_eq!(
            SessionDescription::parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\n"),
            Err(SdpError::Incomplete)
        );
    }

    #[test]
    fn the_answer_lists_only_the_events_both_sides_take() {
        let offer = SessionDescription::parse(SIPP_OFFER).unwrap();
        let (sdp, neg) = answer(&offer, local(), &SdpPreferences::default()).unwrap();
        assert!(sdp.to_string().contains("a=fmtp:101 0-11,16\r\n"), "{sdp}");
        assert_eq!(neg.dtmf_events, 0x1_0FFF);
        // No fmtp: DTMF 0-15 (RFC 4733 §2.4.1), never flash.
        let bare = SIPP_OFFER.replace("a=fmtp:101 0-11,16\r\n", "");
        let (sdp, neg) = answer(
            &SessionDescription::parse(&bare).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert!(sdp.to_string().contains("a=fmtp:101 0-15\r\n"), "{sdp}");
        assert_eq!(neg.dtmf_events, 0xFFFF);
        // Only events we do not send: no telephone-event at all.
        let odd = SIPP_OFFER.replace("0-11,16", "32-40");
        let (sdp, neg) = answer(
            &SessionDescription::parse(&odd).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert_eq!(neg.dtmf_pt, None);
        assert!(!sdp.to_string().contains("telephone-event"), "{sdp}");
        assert_eq!(parse_event_list(" 0 - 3, 5,x,9-7, 200-300"), 0b10_1111);
        assert_eq!(format_event_list(0x1_0FFF), "0-11,16");
        assert_eq!(format_event_list(OUR_EVENTS), "0-16");
        assert_eq!(format_event_list(1 << 31 | 1), "0,31");
    }

    #[test]
    fn an_origin_version_beyond_u64_is_not_an_error() {
        let offer = SIPP_OFFER.replace("2353687637", "123456789012345678901234567890");
        let sdp = SessionDescription::parse(&offer).unwrap();
        assert_eq!(sdp.origin.version, 0);
        assert!(SessionDescription::parse(&SIPP_OFFER.replace("2353687637", "12x")).is_err());
    }

    #[test]
    fn rtp_on_the_last_port_has_no_rtcp_port() {
        let offer = SIPP_OFFER.replace("m=audio 6000", "m=audio 65535");
        let (_, neg) = answer(
            &SessionDescription::parse(&offer).unwrap(),
            local(),
            &SdpPreferences::default(),
        )
        .unwrap();
        assert_eq!(neg.remote_rtp, Some("127.0.0.1:65535".parse().unwrap()));
        assert_eq!(neg.remote_rtcp, None);
    }

    #[test]
    fn multicast_ttl_suffix_is_dropped() {
        let sdp = SessionDescription::parse(
            "v=0\r\ns=x\r\nc=IN IP4 224.2.36.42/127\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n",
        )
        .unwrap();
        assert_eq!(sdp.connection, Some("224.2.36.42".parse().unwrap()));
    }

    proptest! {
        #[test]
        fn parser_never_panics(text in "\\PC{0,400}") {
            let _ = SessionDescription::parse(&text);
        }

        #[test]
        fn parser_never_panics_on_sdp_like_lines(lines in proptest::collection::vec(
            prop_oneof![
                Just("v=0".to_string()),
                "[vosctmab]=[ -~]{0,40}",
                "m=audio [0-9]{1,6} RTP/AVP( [0-9]{1,3}){0,4}",
                "a=rtpmap:[0-9]{1,4} [A-Za-z-]{0,12}/[0-9]{0,6}(/[0-9])?",
                "c=IN IP[46] [0-9a-f:.]{0,30}",
                "a=rtcp:[0-9]{0,6}( IN IP4 [0-9.]{0,16})?",
            ], 0..20)) {
            let text = lines.join("\r\n");
            if let Ok(sdp) = SessionDescription::parse(&text) {
                // Whatever parses must serialise and parse again, and answering it
                // must not panic either.
                let again = SessionDescription::parse(&sdp.to_string());
                prop_assert!(again.is_ok(), "{}", sdp);
                let _ = answer(&sdp, "127.0.0.1:20000".parse().unwrap(), &SdpPreferences::default());
            }
        }
    }
}

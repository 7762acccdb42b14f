//! SIP transports (RFC 3261 §18, RFC 3581): where messages go and how they get there.
//!
//! The addressing rules are sans-IO and live here: a [`Target`] names a transport,
//! a socket address and, for TCP, the connection a message should use; and
//! [`response_target`] applies §18.2.2 and RFC 3581 to pick where a response goes.
//! The tokio drivers that own the UDP socket and the TCP connections are in
//! [`driver`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::wire::Via;

pub mod driver;

/// A transport protocol the engine speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Unreliable datagrams.
    Udp,
    /// A reliable stream.
    Tcp,
}

impl TransportKind {
    /// Whether retransmission timers are needed (RFC 3261 §17: only on unreliable).
    pub fn is_reliable(self) -> bool {
        matches!(self, TransportKind::Tcp)
    }

    /// The Via transport token.
    pub fn via_token(self) -> &'static str {
        match self {
            TransportKind::Udp => "UDP",
            TransportKind::Tcp => "TCP",
        }
    }

    /// The transport named by a Via token or `transport=` URI parameter.
    pub fn from_token(token: &str) -> Option<Self> {
        if token.eq_ignore_ascii_case("udp") {
            Some(TransportKind::Udp)
        } else if token.eq_ignore_ascii_case("tcp") {
            Some(TransportKind::Tcp)
        } else {
            None
        }
    }
}

/// An established TCP connection, as numbered by the transport driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(pub u64);

/// Where a message is sent, or where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport.
    pub transport: TransportKind,
    /// Remote address.
    pub addr: SocketAddr,
    /// The connection to use (or that a message arrived on); `None` lets the driver
    /// reuse any connection to `addr` or open one.
    pub connection: Option<ConnectionId>,
}

impl Target {
    /// A UDP target.
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: TransportKind::Udp,
            addr,
            connection: None,
        }
    }

    /// A TCP target with no connection chosen yet.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            transport: TransportKind::Tcp,
            addr,
            connection: None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}",
            self.transport.via_token().to_ascii_lowercase(),
            self.addr
        )
    }
}

/// How responses to UDP requests are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseRouting {
    /// RFC 3261 §18.2.2 strictly: the `received` address and the sent-by port,
    /// unless the request asked for `rport` (RFC 3581).
    Rfc3261,
    /// Always the packet's source address and port (what Kamailio's `force_rport`
    /// and Asterisk's default `force_rport=yes` do): the only choice that reaches
    /// softphones behind NAT that do not ask for rport.
    Symmetric,
}

/// Where a response to a request received from `source` goes (RFC 3261 §18.2.2,
/// RFC 3581 §4), given the request's top Via.
pub fn response_target(via: &Via, source: Target, routing: ResponseRouting) -> Target {
    match source.transport {
        // Reliable: the connection it came on; if that is gone, the driver connects
        // to the source again (the sent-by port would do; the source is what answers).
        TransportKind::Tcp => source,
        TransportKind::Udp => {
            if routing == ResponseRouting::Symmetric || via.rport().is_some() {
                return source;
            }
            if let Some(maddr) = via.maddr().and_then(|m| m.parse::<IpAddr>().ok()) {
                return Target::udp(SocketAddr::new(maddr, via.port.unwrap_or(5060)));
            }
            Target::udp(SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)))
        }
    }
}

/// Stamps the top Via of a received request with `received` (when the sent-by host
/// is not the source IP) and a filled-in `rport` (when asked), RFC 3261 §18.2.1 and
/// RFC 3581 §4.
pub fn stamp_via(via: &mut Via, source: SocketAddr) {
    let ip = source.ip();
    if via.host.ip() != Some(ip) {
        via.set_param("received", Some(&ip.to_string()));
    }
    if via.rport().is_some() {
        via.set_param("rport", Some(&source.port().to_string()));
        // RFC 3581 §4: with rport, received is added even when the host matches.
        via.set_param("received", Some(&ip.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(s: &str) -> Via {
        Via::parse(s).unwrap()
    }

    #[test]
    fn udp_response_routing() {
        let src = Target::udp("192.0.2.7:40000".parse().unwrap());
        let plain = via("SIP/2.0/UDP host.example.com:5070;branch=z9hG4bK1");
        assert_eq!(
            response_target(&plain, src, ResponseRouting::Rfc3261).addr,
            "192.0.2.7:5070".parse().unwrap()
        );
        assert_eq!(
            response_target(&plain, src, ResponseRouting::Symmetric).addr,
            src.addr
        );
        let rport = via("SIP/2.0/UDP host.example.com:5070;branch=z9hG4bK1;rport");
        assert_eq!(
            response_target(&rport, src, ResponseRouting::Rfc3261).addr,
            src.addr
        );
        let maddr = via("SIP/2.0/UDP h;branch=z9hG4bK1;maddr=192.0.2.9");
        assert_eq!(
            response_target(&maddr, src, ResponseRouting::Rfc3261).addr,
            "192.0.2.9:5060".parse().unwrap()
        );
    }

    #[test]
    fn tcp_responses_use_the_connection() {
        let src = Target {
            transport: TransportKind::Tcp,
            addr: "192.0.2.7:40000".parse().unwrap(),
            connection: Some(ConnectionId(3)),
        };
        assert_eq!(
            response_target(
                &via("SIP/2.0/TCP h;branch=z9hG4bK1"),
                src,
                ResponseRouting::Rfc3261
            ),
            src
        );
    }

    #[test]
    fn via_is_stamped() {
        let mut v = via("SIP/2.0/UDP host.example.com;branch=z9hG4bK1;rport");
        stamp_via(&mut v, "192.0.2.7:40000".parse().unwrap());
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP host.example.com;branch=z9hG4bK1;rport=40000;received=192.0.2.7"
        );
        let mut w = via("SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1");
        stamp_via(&mut w, "192.0.2.7:5060".parse().unwrap());
        assert_eq!(w.received(), None);
    }
}

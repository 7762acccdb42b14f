//! SIP transports (RFC 3261 §18, RFC 3581): where messages go and how they get there.
//!
//! The addressing rules are sans-IO and live here: a [`Target`] names a transport,
//! a socket address and, for TCP, the connection a message should use;
//! [`response_target`] applies §18.2.2 and RFC 3581 to pick where a response goes;
//! [`in_dialog_target`] picks where an in-dialog request goes (§12.2.1.1, reusing
//! the connection the dialog came on). The tokio drivers that own the UDP socket
//! and the TCP connections are in [`driver`].

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::wire::{Uri, Via};

pub mod driver;
pub mod edge;

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

    /// Where a request for `uri` goes: its host must be an IP address (the engine
    /// does no DNS), the port defaults to 5060, `;transport=tcp` selects TCP and a
    /// `maddr` parameter overrides the host. `None` for anything else.
    pub fn for_uri(uri: &Uri) -> Option<Self> {
        let ip = match uri.param("maddr").flatten() {
            Some(maddr) => maddr.parse().ok()?,
            None => uri.host()?.ip()?,
        };
        let transport = match uri.transport() {
            Some(t) => TransportKind::from_token(&t)?,
            None => TransportKind::Udp,
        };
        Some(Self {
            transport,
            addr: SocketAddr::new(ip, uri.port().unwrap_or(5060)),
            connection: None,
        })
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
        // Reliable: the connection it came on. Should that be gone, the driver
        // connects to the `received` address (the source IP) and the sent-by port,
        // 5060 by default: the source port of a connection is an ephemeral one that
        // nobody listens on.
        TransportKind::Tcp => Target {
            addr: SocketAddr::new(source.addr.ip(), via.port.unwrap_or(5060)),
            ..source
        },
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

/// Where an in-dialog request goes (RFC 3261 §12.2.1.1): the dialog's next hop
/// (`next_hop`: its first route, or the remote target when `routed` is false), as
/// [`Target::for_uri`] reads it, with two adjustments for the path the dialog's
/// messages took (`flow`: where the dialog's INVITE came from, or where ours went):
///
/// - when the next hop is the flow's peer (same IP) and the flow is reliable, the
///   flow is reused, as RFC 5626 does for flows: a peer that only connects out
///   (behind NAT, or a UA with no listener) is reached only on its own connection.
///   A URI without `transport=` stays on the flow's transport. Should the
///   connection be gone, the driver connects to the next hop's address.
/// - with `symmetric` (the engine routes responses symmetrically,
///   [`ResponseRouting::Symmetric`]) and no route set, a remote target at another
///   IP than the flow's is a private address behind NAT: the flow's address is the
///   only one that reaches the peer.
///
/// A next hop that names no IP (the engine does no DNS) also falls back to the flow.
pub fn in_dialog_target(next_hop: &Uri, routed: bool, flow: Target, symmetric: bool) -> Target {
    let Some(hop) = Target::for_uri(next_hop) else {
        return flow;
    };
    let same_peer = hop.addr.ip() == flow.addr.ip();
    if same_peer && flow.transport.is_reliable() {
        let explicit = next_hop.transport().is_some();
        if !explicit || hop.transport == flow.transport {
            return Target {
                transport: flow.transport,
                // With a known connection, the hop is only the fallback; without
                // one, the flow's address is where our connection goes.
                addr: if flow.connection.is_some() {
                    hop.addr
                } else {
                    flow.addr
                },
                connection: flow.connection,
            };
        }
    }
    if symmetric && !routed && !same_peer {
        return flow;
    }
    hop
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
    fn tcp_responses_use_the_connection_else_received_and_sent_by_port() {
        let src = Target {
            transport: TransportKind::Tcp,
            addr: "192.0.2.7:40000".parse().unwrap(),
            connection: Some(ConnectionId(3)),
        };
        for routing in [ResponseRouting::Rfc3261, ResponseRouting::Symmetric] {
            let t = response_target(&via("SIP/2.0/TCP h;branch=z9hG4bK1"), src, routing);
            assert_eq!(t.connection, Some(ConnectionId(3)));
            assert_eq!(t.addr, "192.0.2.7:5060".parse().unwrap(), "default port");
            let t = response_target(&via("SIP/2.0/TCP h:5072;branch=z9hG4bK1"), src, routing);
            assert_eq!(t.addr, "192.0.2.7:5072".parse().unwrap(), "sent-by port");
        }
    }

    #[test]
    fn uris_become_targets() {
        let uri = |s: &str| Uri::parse(s).unwrap();
        assert_eq!(
            Target::for_uri(&uri("sip:100@127.0.0.1:5080")),
            Some(Target::udp("127.0.0.1:5080".parse().unwrap()))
        );
        assert_eq!(
            Target::for_uri(&uri("sip:x@[::1]:5090;transport=TCP")),
            Some(Target::tcp("[::1]:5090".parse().unwrap()))
        );
        assert_eq!(
            Target::for_uri(&uri("sip:x@example.com;maddr=192.0.2.1")),
            Some(Target::udp("192.0.2.1:5060".parse().unwrap()))
        );
        assert_eq!(Target::for_uri(&uri("sip:x@example.com")), None);
        assert_eq!(
            Target::for_uri(&uri("sip:x@192.0.2.1;transport=sctp")),
            None
        );
    }

    #[test]
    fn in_dialog_requests_follow_the_dialog_and_reuse_its_connection() {
        let uri = |s: &str| Uri::parse(s).unwrap();
        let tcp_flow = Target {
            transport: TransportKind::Tcp,
            addr: "192.0.2.7:40000".parse().unwrap(),
            connection: Some(ConnectionId(9)),
        };
        // Same peer over TCP: its connection, with the Contact as the fallback.
        let t = in_dialog_target(&uri("sip:a@192.0.2.7:5070"), false, tcp_flow, true);
        assert_eq!(t.connection, Some(ConnectionId(9)));
        assert_eq!(t.transport, TransportKind::Tcp);
        assert_eq!(t.addr, "192.0.2.7:5070".parse().unwrap());
        // A route set through a proxy elsewhere: the proxy.
        let t = in_dialog_target(&uri("sip:p1.example.net;lr"), true, tcp_flow, true);
        assert_eq!(t, tcp_flow, "a host name: no DNS, the flow");
        let t = in_dialog_target(&uri("sip:192.0.2.99;lr"), true, tcp_flow, true);
        assert_eq!(t, Target::udp("192.0.2.99:5060".parse().unwrap()));
        // UDP: the Contact when it is the source's IP ...
        let udp_flow = Target::udp("192.0.2.7:40000".parse().unwrap());
        let t = in_dialog_target(&uri("sip:a@192.0.2.7:5070"), false, udp_flow, true);
        assert_eq!(t, Target::udp("192.0.2.7:5070".parse().unwrap()));
        // ... and the source when the Contact is a private address behind NAT.
        let t = in_dialog_target(&uri("sip:a@10.0.0.5:5070"), false, udp_flow, true);
        assert_eq!(t, udp_flow);
        let t = in_dialog_target(&uri("sip:a@10.0.0.5:5070"), false, udp_flow, false);
        assert_eq!(
            t,
            Target::udp("10.0.0.5:5070".parse().unwrap()),
            "RFC 3261 strictly"
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

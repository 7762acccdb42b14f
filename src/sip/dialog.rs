//! Dialogs (RFC 3261 §12): the state two user agents share for the life of a call.
//!
//! Owns the dialog identifier (Call-ID and both tags), the local and remote CSeq,
//! the route set (from Record-Route: in order for a UAS, reversed for a UAC), the
//! remote target (from Contact, refreshed by re-INVITE and UPDATE) and the building of
//! in-dialog requests including ACK, with loose and strict routing (§12.2.1.1).
//! URIs from Contact and Record-Route are reused exactly as received.

use bytes::Bytes;

use super::wire::{CSeq, Contact, Headers, Method, NameAddr, Request, Response, Uri};

/// Identifies a dialog from our side.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// Call-ID.
    pub call_id: String,
    /// Our tag.
    pub local_tag: String,
    /// The peer's tag (empty for an RFC 2543 peer that sent none).
    pub remote_tag: String,
}

impl DialogId {
    /// The dialog an incoming request belongs to (our tag is in To).
    pub fn of_request(request: &Request) -> Option<Self> {
        Some(Self {
            call_id: request.headers.call_id.clone(),
            local_tag: request.headers.to.tag()?.to_owned(),
            remote_tag: request.headers.from.tag().unwrap_or_default().to_owned(),
        })
    }

    /// The dialog a response to our request belongs to (our tag is in From).
    pub fn of_response(response: &Response) -> Option<Self> {
        Some(Self {
            call_id: response.headers.call_id.clone(),
            local_tag: response.headers.from.tag()?.to_owned(),
            remote_tag: response.headers.to.tag()?.to_owned(),
        })
    }
}

/// Dialog states (§12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response with a tag.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// Why an in-dialog message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DialogError {
    /// The message that would create the dialog has no usable Contact.
    #[error("no Contact to use as the remote target")]
    NoContact,
    /// A tag needed to identify the dialog is missing.
    #[error("missing tag")]
    NoTag,
    /// An in-dialog request with a CSeq lower than the last one (answer 500).
    #[error("CSeq {got} is lower than {last}")]
    OutOfOrder {
        /// The request's CSeq.
        got: u32,
        /// The highest seen.
        last: u32,
    },
}

/// One dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    local_seq: u32,
    remote_seq: Option<u32>,
    invite_seq: u32,
    local: NameAddr,
    remote: NameAddr,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
    local_contact: Uri,
}

fn contact_uri(contacts: &[Contact]) -> Option<Uri> {
    contacts
        .iter()
        .find_map(|c| c.address())
        .map(|a| a.uri.clone())
}

impl Dialog {
    /// The UAS side of a dialog created by an INVITE we answer with `local_tag`
    /// (§12.1.1): the route set is the request's Record-Route in order.
    pub fn uas(invite: &Request, local_tag: &str, local_contact: Uri) -> Result<Self, DialogError> {
        let remote_target = contact_uri(&invite.headers.contact).ok_or(DialogError::NoContact)?;
        let h = &invite.headers;
        Ok(Self {
            id: DialogId {
                call_id: h.call_id.clone(),
                local_tag: local_tag.to_owned(),
                remote_tag: h.from.tag().unwrap_or_default().to_owned(),
            },
            state: DialogState::Early,
            local_seq: 0,
            remote_seq: Some(h.cseq.seq),
            invite_seq: h.cseq.seq,
            local: h.to.clone().with_tag(local_tag),
            remote: h.from.clone(),
            remote_target,
            route_set: h.record_route.clone(),
            local_contact,
        })
    }

    /// The UAC side of a dialog created by a response with a To tag to an INVITE we
    /// sent (§12.1.2): the route set is the response's Record-Route reversed.
    pub fn uac(
        invite: &Request,
        response: &Response,
        local_contact: Uri,
    ) -> Result<Self, DialogError> {
        let h = &invite.headers;
        let remote_tag = response.headers.to.tag().ok_or(DialogError::NoTag)?;
        let local_tag = h.from.tag().ok_or(DialogError::NoTag)?;
        let remote_target = contact_uri(&response.headers.contact)
            .or_else(|| (!response.is_success()).then(|| invite.uri.clone()))
            .ok_or(DialogError::NoContact)?;
        Ok(Self {
            id: DialogId {
                call_id: h.call_id.clone(),
                local_tag: local_tag.to_owned(),
                remote_tag: remote_tag.to_owned(),
            },
            state: if response.is_success() {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
            local_seq: h.cseq.seq,
            remote_seq: None,
            invite_seq: h.cseq.seq,
            local: h.from.clone(),
            remote: response.headers.to.clone(),
            remote_target,
            route_set: response
                .headers
                .record_route
                .iter()
                .rev()
                .cloned()
                .collect(),
            local_contact,
        })
    }

    /// The identifier.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// The state.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The peer's current target (Contact).
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The peer's address of record (From or To, with its tag).
    pub fn remote(&self) -> &NameAddr {
        &self.remote
    }

    /// Our address of record (with our tag).
    pub fn local(&self) -> &NameAddr {
        &self.local
    }

    /// The route set.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// Marks the dialog confirmed (the 2xx was sent or received). A UAC dialog
    /// confirmed by a 2xx takes that response's route set and target (§12.1.2).
    pub fn confirm(&mut self, response: Option<&Response>) {
        if let Some(r) = response {
            if self.state == DialogState::Early {
                self.route_set = r.headers.record_route.iter().rev().cloned().collect();
            }
            if let Some(target) = contact_uri(&r.headers.contact) {
                self.remote_target = target;
            }
        }
        self.state = DialogState::Confirmed;
    }

    /// Checks an incoming in-dialog request (§12.2.2) and applies a target refresh.
    pub fn handle_request(&mut self, request: &Request) -> Result<(), DialogError> {
        let seq = request.headers.cseq.seq;
        if !matches!(request.method, Method::Ack | Method::Cancel) {
            if let Some(last) = self.remote_seq {
                if seq < last {
                    return Err(DialogError::OutOfOrder { got: seq, last });
                }
            }
            self.remote_seq = Some(seq);
        }
        if matches!(request.method, Method::Invite | Method::Update) {
            if let Some(target) = contact_uri(&request.headers.contact) {
                self.remote_target = target;
            }
        }
        Ok(())
    }

    /// Applies the target refresh of a 2xx to our re-INVITE or UPDATE.
    pub fn handle_refresh_response(&mut self, response: &Response) {
        if response.is_success() {
            if let Some(target) = contact_uri(&response.headers.contact) {
                self.remote_target = target;
            }
        }
    }

    /// The next CSeq for a request we originate.
    fn next_seq(&mut self) -> u32 {
        self.local_seq = self.local_seq.wrapping_add(1).max(1);
        self.local_seq
    }

    /// Builds an in-dialog request (§12.2.1.1). For INVITE the CSeq is remembered
    /// for its ACK. The endpoint adds our Via.
    pub fn request(&mut self, method: Method) -> Request {
        let seq = match method {
            Method::Ack => self.invite_seq,
            _ => self.next_seq(),
        };
        if method == Method::Invite {
            self.invite_seq = seq;
        }
        self.build(method, seq, Bytes::new(), None)
    }

    /// The ACK for the 2xx to our INVITE with CSeq `invite_seq`.
    pub fn ack(&self, invite_seq: u32, body: Option<(&str, Bytes)>) -> Request {
        let (content_type, body) = match body {
            Some((ct, b)) => (Some(ct), b),
            None => (None, Bytes::new()),
        };
        self.build(Method::Ack, invite_seq, body, content_type)
    }

    fn build(&self, method: Method, seq: u32, body: Bytes, content_type: Option<&str>) -> Request {
        // Loose routing if the first route has ;lr (or there is no route set);
        // strict routing puts the first route in the Request-URI and the remote
        // target at the end of the Route list.
        let (uri, route) = match self.route_set.first() {
            Some(first) if !first.uri.is_loose_router() => {
                let mut route: Vec<NameAddr> = self.route_set[1..].to_vec();
                route.push(NameAddr::new(self.remote_target.clone()));
                (first.uri.clone(), route)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut headers = Headers {
            via: Vec::new(),
            from: self.local.clone(),
            to: self.remote.clone(),
            call_id: self.id.call_id.clone(),
            cseq: CSeq {
                seq,
                method: method.clone(),
            },
            max_forwards: Some(70),
            contact: Vec::new(),
            route,
            record_route: Vec::new(),
            other: Vec::new(),
        };
        if matches!(method, Method::Invite | Method::Update) {
            headers
                .contact
                .push(Contact::Address(NameAddr::new(self.local_contact.clone())));
        }
        if let Some(ct) = content_type {
            headers.push("Content-Type", ct);
        }
        Request {
            method,
            uri,
            headers,
            body,
        }
    }

    /// The URI the next request is sent towards: the first Route, or the remote
    /// target when there is no route set.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map_or(&self.remote_target, |r| &r.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::wire::{Framing, Message, parse};

    fn req(text: &str) -> Request {
        match parse(Bytes::from(text.replace('\n', "\r\n")), Framing::Datagram) {
            Ok(Message::Request(r)) => r,
            e => panic!("{e:?}"),
        }
    }

    fn invite_with_routes(rr: &str) -> Request {
        req(&format!(
            "INVITE sip:100@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nRecord-Route: {rr}\nFrom: <sip:a@example.com>;tag=ta\nTo: <sip:100@127.0.0.1>\nCall-ID: d1\nCSeq: 10 INVITE\nContact: <sip:a@192.0.2.1:5070;transport=udp;ob>\nContent-Length: 0\n\n"
        ))
    }

    #[test]
    fn uas_dialog_keeps_route_order_and_exact_contact() {
        let inv = invite_with_routes("<sip:p1.example.com;lr>, <sip:p2.example.com;lr;foo=bar>");
        let mut d = Dialog::uas(&inv, "tb", Uri::parse("sip:127.0.0.1:5060").unwrap()).unwrap();
        assert_eq!(
            d.id(),
            &DialogId {
                call_id: "d1".into(),
                local_tag: "tb".into(),
                remote_tag: "ta".into()
            }
        );
        let bye = d.request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:a@192.0.2.1:5070;transport=udp;ob");
        assert_eq!(
            bye.headers
                .route
                .iter()
                .map(|r| r.uri.as_str())
                .collect::<Vec<_>>(),
            ["sip:p1.example.com;lr", "sip:p2.example.com;lr;foo=bar"]
        );
        assert_eq!(bye.headers.from.tag(), Some("tb"));
        assert_eq!(bye.headers.to.tag(), Some("ta"));
        assert_eq!(bye.headers.cseq.seq, 1);
        assert_eq!(d.next_hop().as_str(), "sip:p1.example.com;lr");
    }

    #[test]
    fn strict_route_goes_into_the_request_uri() {
        let inv = invite_with_routes("<sip:strict.example.com>");
        let mut d = Dialog::uas(&inv, "tb", Uri::parse("sip:127.0.0.1").unwrap()).unwrap();
        let bye = d.request(Method::Bye);
        assert_eq!(bye.uri.as_str(), "sip:strict.example.com");
        assert_eq!(
            bye.headers.route.last().unwrap().uri.as_str(),
            "sip:a@192.0.2.1:5070;transport=udp;ob"
        );
    }

    #[test]
    fn uac_dialog_reverses_routes_and_checks_cseq() {
        let mut inv = invite_with_routes("<sip:ignored;lr>");
        inv.headers.record_route.clear();
        let mut resp = inv.response(200).with_to_tag("tz");
        resp.headers.record_route = vec![
            NameAddr::parse("<sip:p2;lr>").unwrap(),
            NameAddr::parse("<sip:p1;lr>").unwrap(),
        ];
        resp.headers.contact = vec![Contact::parse("<sip:callee@192.0.2.9>").unwrap()];
        let mut d = Dialog::uac(&inv, &resp, Uri::parse("sip:127.0.0.1").unwrap()).unwrap();
        assert_eq!(d.state(), DialogState::Confirmed);
        let ack = d.ack(10, None);
        assert_eq!(
            ack.headers.cseq,
            CSeq {
                seq: 10,
                method: Method::Ack
            }
        );
        assert_eq!(ack.headers.route[0].uri.as_str(), "sip:p1;lr");
        assert_eq!(d.request(Method::Bye).headers.cseq.seq, 11);
        // The peer's requests must not go backwards.
        let mut bye = inv.clone();
        bye.method = Method::Bye;
        bye.headers.cseq = CSeq {
            seq: 5,
            method: Method::Bye,
        };
        assert!(d.handle_request(&bye).is_ok());
        bye.headers.cseq.seq = 4;
        assert_eq!(
            d.handle_request(&bye),
            Err(DialogError::OutOfOrder { got: 4, last: 5 })
        );
    }

    #[test]
    fn reinvite_refreshes_the_target() {
        let inv = invite_with_routes("<sip:p1;lr>");
        let mut d = Dialog::uas(&inv, "tb", Uri::parse("sip:127.0.0.1").unwrap()).unwrap();
        let mut re = inv.clone();
        re.headers.cseq.seq = 11;
        re.headers.contact = vec![Contact::parse("<sip:a@192.0.2.2:5080>").unwrap()];
        d.handle_request(&re).unwrap();
        assert_eq!(d.remote_target().as_str(), "sip:a@192.0.2.2:5080");
    }
}

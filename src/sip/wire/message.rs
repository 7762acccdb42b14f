//! SIP requests and responses as the rest of the engine sees them (RFC 3261 §7).
//!
//! The headers every layer relies on (Via, From, To, Call-ID, CSeq, Max-Forwards,
//! Contact, Route, Record-Route) are typed and validated once, at parse time; every
//! other header is kept in arrival order with its canonical name. Content-Length is
//! never stored: it is derived from the body when the message is written.

use std::fmt::Write as _;

use bytes::Bytes;

use super::header::{CSeq, Contact, Header, Method, NameAddr, Via};
use super::uri::Uri;
use super::vocabulary::reason_phrase;

/// The header section of a request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Headers {
    /// Via values, topmost first.
    pub via: Vec<Via>,
    /// From.
    pub from: NameAddr,
    /// To.
    pub to: NameAddr,
    /// Call-ID.
    pub call_id: String,
    /// CSeq.
    pub cseq: CSeq,
    /// Max-Forwards (absent in RFC 2543 requests and in responses).
    pub max_forwards: Option<u32>,
    /// Contact values.
    pub contact: Vec<Contact>,
    /// Route values, in order.
    pub route: Vec<NameAddr>,
    /// Record-Route values, in order.
    pub record_route: Vec<NameAddr>,
    /// Every other header, in arrival order.
    pub other: Vec<Header>,
}

impl Headers {
    /// The first value of a header not typed above (`"Content-Type"`, `"Expires"`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|h| h.name.is(name))
            .map(|h| h.value.as_str())
    }

    /// All values of a header not typed above.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.other
            .iter()
            .filter(move |h| h.name.is(name))
            .map(|h| h.value.as_str())
    }

    /// Comma-separated tokens of list headers such as Require or Allow, across all
    /// their occurrences.
    pub fn tokens<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// Appends a header.
    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.other.push(Header::new(name, value));
    }

    /// Replaces every occurrence of a header with one value.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }

    /// Removes every occurrence of a header.
    pub fn remove(&mut self, name: &str) {
        self.other.retain(|h| !h.name.is(name));
    }

    /// The Content-Type, lower-cased and without parameters.
    pub fn content_type(&self) -> Option<String> {
        self.get("Content-Type")
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_ascii_lowercase())
    }

    /// The URI of the first Contact, unless wildcard.
    pub fn contact_uri(&self) -> Option<&Uri> {
        self.contact
            .iter()
            .find_map(|c| c.address())
            .map(|a| &a.uri)
    }

    /// The topmost Via. Every parsed message has one; a message built without one
    /// is a bug in the builder, reported as `None`.
    pub fn top_via(&self) -> Option<&Via> {
        self.via.first()
    }

    fn write(&self, out: &mut String, body_len: usize) {
        for v in &self.via {
            let _ = write!(out, "Via: {v}\r\n");
        }
        for r in &self.record_route {
            let _ = write!(out, "Record-Route: {r}\r\n");
        }
        for r in &self.route {
            let _ = write!(out, "Route: {r}\r\n");
        }
        if let Some(mf) = self.max_forwards {
            let _ = write!(out, "Max-Forwards: {mf}\r\n");
        }
        let _ = write!(out, "From: {}\r\nTo: {}\r\n", self.from, self.to);
        let _ = write!(out, "Call-ID: {}\r\nCSeq: {}\r\n", self.call_id, self.cseq);
        for c in &self.contact {
            let _ = write!(out, "Contact: {c}\r\n");
        }
        for h in &self.other {
            let _ = write!(out, "{}: {}\r\n", h.name, h.value);
        }
        let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method from the request line.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Headers.
    pub headers: Headers,
    /// Body (exactly Content-Length bytes when parsed).
    pub body: Bytes,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100-699.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers.
    pub headers: Headers,
    /// Body.
    pub body: Bytes,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Request {
    /// A request outside any dialog, as a UAC starts one (RFC 3261 §8.1.1):
    /// `Max-Forwards: 70`, the CSeq method the request's, no Via (the transaction
    /// adds it), no Contact, routes or body; the caller adds what else it needs.
    pub fn out_of_dialog(
        method: Method,
        uri: Uri,
        from: NameAddr,
        to: NameAddr,
        call_id: String,
        seq: u32,
    ) -> Self {
        Request {
            headers: Headers {
                via: Vec::new(),
                from,
                to,
                call_id,
                cseq: CSeq {
                    seq,
                    method: method.clone(),
                },
                max_forwards: Some(70),
                contact: Vec::new(),
                route: Vec::new(),
                record_route: Vec::new(),
                other: Vec::new(),
            },
            method,
            uri,
            body: Bytes::new(),
        }
    }

    /// Writes the request in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let mut head = String::with_capacity(512 + self.body.len());
        let _ = write!(head, "{} {} SIP/2.0\r\n", self.method, self.uri);
        self.headers.write(&mut head, self.body.len());
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// A response to this request, copying Via, From, To, Call-ID and CSeq
    /// (RFC 3261 §8.2.6.2), and Record-Route when the response can create a dialog
    /// (a 101-299 to an INVITE outside a dialog, §12.1.1). The caller adds the To
    /// tag and anything else.
    pub fn response(&self, status: u16) -> Response {
        self.response_with_reason(status, reason_phrase(status))
    }

    /// Like [`Request::response`] with an explicit reason phrase.
    pub fn response_with_reason(&self, status: u16, reason: &str) -> Response {
        let h = &self.headers;
        let mut headers = Headers {
            via: h.via.clone(),
            from: h.from.clone(),
            to: h.to.clone(),
            call_id: h.call_id.clone(),
            cseq: h.cseq.clone(),
            max_forwards: None,
            contact: Vec::new(),
            route: Vec::new(),
            record_route: Vec::new(),
            other: Vec::new(),
        };
        if self.creates_dialog() && (101..300).contains(&status) {
            // §12.1.1: the UAS copies every Record-Route value, in order, with all
            // its parameters, into the responses that establish the dialog.
            headers.record_route = h.record_route.clone();
        }
        if status == 100 {
            // RFC 3261 §8.2.6.1: a 100 echoes the Timestamp header.
            if let Some(ts) = h.get("Timestamp") {
                headers.push("Timestamp", ts);
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Bytes::new(),
        }
    }
}

impl Request {
    /// Whether this request creates a dialog when answered with a tag: an INVITE
    /// outside any dialog (no To tag). The engine handles no SUBSCRIBE or REFER.
    pub fn creates_dialog(&self) -> bool {
        self.method == Method::Invite && self.headers.to.tag().is_none()
    }
}

impl Response {
    /// Writes the response in wire format.
    pub fn to_bytes(&self) -> Bytes {
        let mut head = String::with_capacity(512 + self.body.len());
        let _ = write!(head, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        self.headers.write(&mut head, self.body.len());
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        Bytes::from(out)
    }

    /// Whether the response is provisional (1xx).
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// Whether the response is a success (2xx).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Sets the To tag.
    pub fn with_to_tag(mut self, tag: &str) -> Self {
        self.headers.to.set_tag(tag);
        self
    }

    /// Sets a body with its Content-Type.
    pub fn with_body(mut self, content_type: &str, body: Bytes) -> Self {
        self.headers.set("Content-Type", content_type);
        self.body = body;
        self
    }
}

impl Message {
    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Writes the message in wire format.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Framing, parse};
    use super::*;

    fn request(text: &str) -> Request {
        match parse(Bytes::from(text.replace('\n', "\r\n")), Framing::Datagram) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:100@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\nRecord-Route: <sip:p2.example.com;lr;x=1>, <sip:p1.example.com;lr>\nFrom: <sip:a@example.com>;tag=ta\nTo: <sip:100@127.0.0.1>\nCall-ID: rr1\nCSeq: 1 INVITE\nContact: <sip:a@192.0.2.1>\nContent-Length: 0\n\n";

    #[test]
    fn dialog_creating_responses_copy_record_route_in_order() {
        let invite = request(INVITE);
        for status in [180, 183, 200] {
            let wire = invite.response(status).with_to_tag("tb").to_bytes();
            let text = String::from_utf8_lossy(&wire);
            assert!(
                text.contains("Record-Route: <sip:p2.example.com;lr;x=1>\r\nRecord-Route: <sip:p1.example.com;lr>\r\n"),
                "{status}: {text}"
            );
        }
        for status in [100, 486] {
            assert!(invite.response(status).headers.record_route.is_empty());
        }
        // Inside a dialog the route set is fixed: nothing to copy.
        let mut reinvite = invite.clone();
        reinvite.headers.to.set_tag("tb");
        assert!(reinvite.response(200).headers.record_route.is_empty());
        let mut options = invite;
        options.method = Method::Options;
        assert!(options.response(200).headers.record_route.is_empty());
    }
}

//! Parsing one framed message (RFC 3261 §7, §18.3 for framing) with the hardening the
//! RFC 4475 torture tests ask for.
//!
//! The input is one UDP datagram or one message cut from a stream by
//! [`super::framing::StreamFramer`]. Leading CRLFs are skipped, the header section is
//! unfolded, compact names are expanded, list headers (Via, Contact, Route,
//! Record-Route) are split at top-level commas, and the body is cut strictly by
//! Content-Length (on a datagram, a missing Content-Length means "the rest").
//!
//! A failure carries what a stateless error response needs: the status to answer
//! with (or none, for malformed responses, which are dropped) and the raw Via, From,
//! To, Call-ID and CSeq lines to echo.

use bytes::Bytes;

use super::header::{
    CSeq, Contact, Header, HeaderError, HeaderName, Method, NameAddr, Via, parse_u32,
};
use super::message::{Headers, Message, Request, Response};
use super::text::{is_token, is_word_char, sanitize_line, split_top_level, trim_lws};
use super::uri::{Uri, UriError};

/// The largest message the engine accepts (64 KiB).
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// How the message arrived, which decides what a missing Content-Length means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One UDP datagram: the body may run to the end of the datagram.
    Datagram,
    /// Cut from a TCP stream: Content-Length is mandatory and already checked.
    Stream,
}

/// What is wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Larger than [`MAX_MESSAGE_SIZE`].
    #[error("Message Too Large: {size} bytes, limit {MAX_MESSAGE_SIZE}")]
    TooLarge {
        /// The size seen.
        size: usize,
    },
    /// Nothing but CRLFs.
    #[error("Empty message")]
    Empty,
    /// No empty line ends the header section.
    #[error("Incomplete header section")]
    NoHeaderEnd,
    /// The header section is not valid UTF-8.
    #[error("Header section is not UTF-8")]
    NotUtf8,
    /// The request or status line does not have the RFC 3261 shape.
    #[error("Malformed start line")]
    BadStartLine,
    /// A version other than SIP/2.0.
    #[error("Version Not Supported: {0}")]
    BadVersion(String),
    /// A status code outside 100-699.
    #[error("Status code out of range")]
    BadStatusCode,
    /// The Request-URI does not parse.
    #[error("Bad Request-URI: {0}")]
    BadRequestUri(UriError),
    /// A header line with no colon or a name that is not a token.
    #[error("Malformed header line {0}")]
    BadHeaderLine(usize),
    /// A header value that does not parse.
    #[error("Bad {name}: {error}")]
    BadHeader {
        /// Canonical header name.
        name: &'static str,
        /// What is wrong.
        error: HeaderError,
    },
    /// A mandatory header is missing.
    #[error("Missing {0}")]
    Missing(&'static str),
    /// A header that may appear once appears more than once.
    #[error("Duplicate {0}")]
    Duplicate(&'static str),
    /// Content-Length is not a non-negative decimal.
    #[error("Bad Content-Length")]
    BadContentLength,
    /// Content-Length claims more bytes than arrived.
    #[error("Content-Length larger than the body")]
    ShortBody,
    /// A stream message without Content-Length.
    #[error("Missing Content-Length on a stream transport")]
    MissingContentLength,
    /// The parser failed on this input in a way it should not (a bug, caught at
    /// the transport so the engine keeps running).
    #[error("Message could not be parsed")]
    Unparseable,
}

impl WireError {
    /// The status a request with this fault is answered with.
    pub fn status(&self) -> u16 {
        match self {
            WireError::TooLarge { .. } => 513,
            WireError::BadVersion(_) => 505,
            _ => 400,
        }
    }

    fn header(name: &'static str) -> impl FnOnce(HeaderError) -> WireError {
        move |error| WireError::BadHeader { name, error }
    }
}

/// The raw identity lines of a message that failed to parse, for a stateless reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Echo {
    /// Whether the start line looks like a request (only requests get answers).
    pub is_request: bool,
    /// Raw Via values (whole lines, unsplit).
    pub via: Vec<String>,
    /// Raw From.
    pub from: Option<String>,
    /// Raw To.
    pub to: Option<String>,
    /// Raw Call-ID.
    pub call_id: Option<String>,
    /// Raw CSeq.
    pub cseq: Option<String>,
}

impl Echo {
    /// A stateless error response carrying the echoed lines, or `None` when there is
    /// nothing to answer (a response, or a request without any Via).
    pub fn error_response(&self, status: u16, reason: &str, to_tag: &str) -> Option<Bytes> {
        if !self.is_request || self.via.is_empty() {
            return None;
        }
        let mut out = format!("SIP/2.0 {status} {}\r\n", sanitize_line(reason));
        for via in &self.via {
            out.push_str(&format!("Via: {}\r\n", sanitize_line(via)));
        }
        if let Some(from) = &self.from {
            out.push_str(&format!("From: {}\r\n", sanitize_line(from)));
        }
        if let Some(to) = &self.to {
            let to = sanitize_line(to);
            if to.to_ascii_lowercase().contains(";tag=") {
                out.push_str(&format!("To: {to}\r\n"));
            } else {
                out.push_str(&format!("To: {to};tag={to_tag}\r\n"));
            }
        }
        if let Some(call_id) = &self.call_id {
            out.push_str(&format!("Call-ID: {}\r\n", sanitize_line(call_id)));
        }
        if let Some(cseq) = &self.cseq {
            out.push_str(&format!("CSeq: {}\r\n", sanitize_line(cseq)));
        }
        out.push_str("Content-Length: 0\r\n\r\n");
        Some(Bytes::from(out))
    }
}

/// A parse failure with what is needed to answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct ParseError {
    /// What is wrong.
    pub error: WireError,
    /// The identity lines that could be read (boxed: errors travel by value).
    pub echo: Box<Echo>,
}

impl ParseError {
    /// An error with nothing to echo (no stateless reply can be built).
    pub fn bare(error: WireError) -> Self {
        Self {
            error,
            echo: Box::default(),
        }
    }

    /// The stateless error response to send back, if any.
    pub fn response(&self, to_tag: &str) -> Option<Bytes> {
        self.echo
            .error_response(self.error.status(), &self.error.to_string(), to_tag)
    }
}

/// One lexed header line: `(name, value)`, or the line number of a line that is not
/// `name: value`.
pub(crate) type HeaderLine = Result<(String, String), usize>;

/// Skips the CRLFs RFC 3261 §7.5 says may precede a start line.
pub(crate) fn skip_leading_crlf(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Finds the empty line that ends the header section: returns (end of headers,
/// start of body). Accepts CRLF and bare LF line ends.
pub(crate) fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\n'), _) => return Some((i, i + 2)),
                (Some(b'\r'), Some(b'\n')) => return Some((i, i + 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Splits the header section into the start line and unfolded `(name, value, line)`
/// header lines. `None` for a line that is not `name: value`.
pub(crate) fn lex_head(head: &str) -> (&str, Vec<HeaderLine>) {
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = lines.next().unwrap_or("");
    let mut headers: Vec<HeaderLine> = Vec::new();
    for (n, line) in lines.enumerate() {
        let line_no = n + 2;
        if line.starts_with([' ', '\t']) {
            // Continuation (RFC 3261 §7.3.1): joins the previous header with one SP.
            if let Some(Ok((_, value))) = headers.last_mut() {
                let more = trim_lws(line);
                if !more.is_empty() {
                    if !value.is_empty() {
                        value.push(' ');
                    }
                    value.push_str(more);
                }
                continue;
            }
            headers.push(Err(line_no));
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => {
                let name = trim_lws(name);
                if is_token(name) {
                    headers.push(Ok((name.to_owned(), trim_lws(value).to_owned())));
                } else {
                    headers.push(Err(line_no));
                }
            }
            None => headers.push(Err(line_no)),
        }
    }
    (start, headers)
}

/// Reads Content-Length from lexed header lines: `Ok(None)` when absent.
pub(crate) fn content_length(headers: &[HeaderLine]) -> Result<Option<usize>, WireError> {
    let mut found: Option<usize> = None;
    for (name, value) in headers.iter().flatten() {
        if HeaderName::from_wire(name) != HeaderName::ContentLength {
            continue;
        }
        let v = trim_lws(value);
        if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WireError::BadContentLength);
        }
        let n: usize = v.parse().map_err(|_| WireError::BadContentLength)?;
        match found {
            Some(prev) if prev != n => return Err(WireError::Duplicate("Content-Length")),
            _ => found = Some(n),
        }
    }
    Ok(found)
}

fn echo_of(start: &str, headers: &[HeaderLine]) -> Echo {
    let mut echo = Echo {
        is_request: !start.starts_with("SIP/"),
        ..Echo::default()
    };
    for (name, value) in headers.iter().flatten() {
        match HeaderName::from_wire(name) {
            HeaderName::Via => echo.via.push(value.clone()),
            HeaderName::From => set_first(&mut echo.from, value),
            HeaderName::To => set_first(&mut echo.to, value),
            HeaderName::CallId => set_first(&mut echo.call_id, value),
            HeaderName::CSeq => set_first(&mut echo.cseq, value),
            _ => {}
        }
    }
    echo
}

fn set_first(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.to_owned());
    }
}

enum StartLine {
    Request(Method, Uri),
    Response(u16, String),
}

fn parse_version(v: &str) -> Result<(), WireError> {
    if v.eq_ignore_ascii_case("SIP/2.0") {
        return Ok(());
    }
    // `get`, not indexing: the version token may hold multi-byte characters.
    let numbers = v
        .get(..4)
        .filter(|scheme| scheme.eq_ignore_ascii_case("SIP/"))
        .and_then(|_| v.get(4..));
    let looks_like_version = numbers.is_some_and(|n| {
        n.split('.').count() == 2
            && n.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    if looks_like_version {
        Err(WireError::BadVersion(v.to_owned()))
    } else {
        Err(WireError::BadStartLine)
    }
}

fn parse_start_line(line: &str) -> Result<StartLine, WireError> {
    if line.starts_with("SIP/") {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        parse_version(version)?;
        let code = parts.next().ok_or(WireError::BadStartLine)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(WireError::BadStatusCode);
        }
        let status: u16 = code.parse().map_err(|_| WireError::BadStatusCode)?;
        if !(100..=699).contains(&status) {
            return Err(WireError::BadStatusCode);
        }
        return Ok(StartLine::Response(
            status,
            parts.next().unwrap_or("").to_owned(),
        ));
    }
    // Runs of SP between elements and trailing SP are tolerated (RFC 4475 §3.1.2.9-10);
    // anything that makes more or fewer than three elements is not.
    let parts: Vec<&str> = line.split(' ').filter(|p| !p.is_empty()).collect();
    let [method, uri, version] = parts.as_slice() else {
        return Err(WireError::BadStartLine);
    };
    parse_version(version)?;
    let method = Method::parse(method).ok_or(WireError::BadStartLine)?;
    let uri = Uri::parse(uri).map_err(WireError::BadRequestUri)?;
    Ok(StartLine::Request(method, uri))
}

#[derive(Default)]
struct Collected {
    via: Vec<Via>,
    from: Option<NameAddr>,
    to: Option<NameAddr>,
    call_id: Option<String>,
    cseq: Option<CSeq>,
    max_forwards: Option<u32>,
    contact: Vec<Contact>,
    route: Vec<NameAddr>,
    record_route: Vec<NameAddr>,
    other: Vec<Header>,
}

fn list<'a>(value: &'a str, name: &'static str) -> Result<Vec<&'a str>, WireError> {
    let parts = split_top_level(value, ',').ok_or(WireError::BadHeader {
        name,
        error: HeaderError::Unterminated,
    })?;
    if parts.iter().any(|p| trim_lws(p).is_empty()) {
        return Err(WireError::BadHeader {
            name,
            error: HeaderError::EmptyParam,
        });
    }
    Ok(parts)
}

fn once<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), WireError> {
    if slot.is_some() {
        return Err(WireError::Duplicate(name));
    }
    *slot = Some(value);
    Ok(())
}

fn collect(headers: Vec<HeaderLine>) -> Result<Collected, WireError> {
    let mut c = Collected::default();
    let mut seen_content_type = false;
    for header in headers {
        let (name, value) = header.map_err(WireError::BadHeaderLine)?;
        match HeaderName::from_wire(&name) {
            HeaderName::Via => {
                for v in list(&value, "Via")? {
                    c.via.push(Via::parse(v).map_err(WireError::header("Via"))?);
                }
            }
            HeaderName::From => {
                let a = NameAddr::parse(&value).map_err(WireError::header("From"))?;
                once(&mut c.from, a, "From")?;
            }
            HeaderName::To => {
                let a = NameAddr::parse(&value).map_err(WireError::header("To"))?;
                once(&mut c.to, a, "To")?;
            }
            HeaderName::CallId => {
                let ok = !value.is_empty()
                    && value
                        .split_once('@')
                        .is_none_or(|(a, b)| !a.is_empty() && !b.is_empty())
                    && value.chars().all(|ch| ch == '@' || is_word_char(ch));
                if !ok {
                    return Err(WireError::BadHeader {
                        name: "Call-ID",
                        error: HeaderError::BadAddress,
                    });
                }
                once(&mut c.call_id, value, "Call-ID")?;
            }
            HeaderName::CSeq => {
                let cseq = CSeq::parse(&value).map_err(WireError::header("CSeq"))?;
                once(&mut c.cseq, cseq, "CSeq")?;
            }
            HeaderName::MaxForwards => {
                let mf = parse_u32(&value).map_err(WireError::header("Max-Forwards"))?;
                if mf > 255 {
                    return Err(WireError::BadHeader {
                        name: "Max-Forwards",
                        error: HeaderError::BadNumber,
                    });
                }
                once(&mut c.max_forwards, mf, "Max-Forwards")?;
            }
            HeaderName::Contact => {
                for v in list(&value, "Contact")? {
                    c.contact
                        .push(Contact::parse(v).map_err(WireError::header("Contact"))?);
                }
            }
            HeaderName::Route => {
                for v in list(&value, "Route")? {
                    c.route
                        .push(NameAddr::parse(v).map_err(WireError::header("Route"))?);
                }
            }
            HeaderName::RecordRoute => {
                for v in list(&value, "Record-Route")? {
                    c.record_route
                        .push(NameAddr::parse(v).map_err(WireError::header("Record-Route"))?);
                }
            }
            HeaderName::ContentLength => {} // checked by framing, derived on output
            HeaderName::ContentType => {
                if seen_content_type {
                    return Err(WireError::Duplicate("Content-Type"));
                }
                seen_content_type = true;
                c.other.push(Header {
                    name: HeaderName::ContentType,
                    value,
                });
            }
            other => {
                if other.is("Expires") {
                    parse_u32(&value).map_err(WireError::header("Expires"))?;
                }
                c.other.push(Header { name: other, value });
            }
        }
    }
    Ok(c)
}

/// The error for a message of `size` bytes, over [`MAX_MESSAGE_SIZE`], that starts
/// with `bytes`: when its header section is there and readable, the error echoes
/// it, so a request can still be answered 513 (RFC 3261 §21.5.14).
pub fn too_large(bytes: &[u8], size: usize) -> ParseError {
    let bytes = &bytes[skip_leading_crlf(bytes)..];
    let limit = bytes.len().min(MAX_MESSAGE_SIZE);
    let echo = find_head_end(&bytes[..limit])
        .and_then(|(head_end, _)| std::str::from_utf8(&bytes[..head_end]).ok())
        .map(|head| {
            let (start, headers) = lex_head(head);
            echo_of(start, &headers)
        })
        .unwrap_or_default();
    ParseError {
        error: WireError::TooLarge { size },
        echo: Box::new(echo),
    }
}

/// Parses one framed message.
pub fn parse(input: Bytes, framing: Framing) -> Result<Message, ParseError> {
    let skip = skip_leading_crlf(&input);
    let bytes = input.slice(skip..);
    if bytes.is_empty() {
        return Err(ParseError::bare(WireError::Empty));
    }
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(too_large(&bytes, bytes.len()));
    }
    let (head_end, body_start) = match (find_head_end(&bytes), framing) {
        (Some(found), _) => found,
        // A datagram is complete by definition: its end also ends a header section
        // that lacks the closing empty line (RFC 4475's baddn.dat is sent that way).
        (None, Framing::Datagram) => {
            let end = bytes.len()
                - bytes
                    .iter()
                    .rev()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
            (end, bytes.len())
        }
        (None, Framing::Stream) => return Err(ParseError::bare(WireError::NoHeaderEnd)),
    };
    let head = std::str::from_utf8(&bytes[..head_end])
        .map_err(|_| ParseError::bare(WireError::NotUtf8))?;
    let (start, headers) = lex_head(head);
    let echo = Box::new(echo_of(start, &headers));
    let fail = |error: WireError| ParseError {
        error,
        echo: echo.clone(),
    };

    let start_line = parse_start_line(start).map_err(fail)?;
    let available = bytes.len() - body_start;
    let body_len = match (content_length(&headers).map_err(fail)?, framing) {
        (Some(n), _) if n > available => return Err(fail(WireError::ShortBody)),
        (Some(n), _) => n,
        (None, Framing::Datagram) => available,
        (None, Framing::Stream) => return Err(fail(WireError::MissingContentLength)),
    };
    let body = bytes.slice(body_start..body_start + body_len);

    let c = collect(headers).map_err(fail)?;
    if c.via.is_empty() {
        return Err(fail(WireError::Missing("Via")));
    }
    let from = c.from.ok_or_else(|| fail(WireError::Missing("From")))?;
    let to = c.to.ok_or_else(|| fail(WireError::Missing("To")))?;
    let call_id = c
        .call_id
        .ok_or_else(|| fail(WireError::Missing("Call-ID")))?;
    let cseq = c.cseq.ok_or_else(|| fail(WireError::Missing("CSeq")))?;
    let headers = Headers {
        via: c.via,
        from,
        to,
        call_id,
        cseq,
        max_forwards: c.max_forwards,
        contact: c.contact,
        route: c.route,
        record_route: c.record_route,
        other: c.other,
    };
    Ok(match start_line {
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
        StartLine::Response(status, reason) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Message, ParseError> {
        parse(Bytes::copy_from_slice(s.as_bytes()), Framing::Datagram)
    }

    const OPTIONS: &str = "OPTIONS sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;rport\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:user@example.com>\r\nCall-ID: abc@x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn round_trip() {
        let Message::Request(r) = p(OPTIONS).unwrap() else {
            panic!()
        };
        assert_eq!(r.method, Method::Options);
        assert_eq!(r.headers.top_via().unwrap().rport(), Some(None));
        let again = parse(r.to_bytes(), Framing::Stream).unwrap();
        assert_eq!(again, Message::Request(r));
    }

    #[test]
    fn an_oversize_request_is_answered_513_when_its_head_is_readable() {
        let big = OPTIONS.replace(
            "Content-Length: 0\r\n\r\n",
            &format!("Content-Length: 70000\r\n\r\n{}", "x".repeat(70_000)),
        );
        let err = p(&big).unwrap_err();
        assert!(matches!(err.error, WireError::TooLarge { .. }));
        let reply = String::from_utf8(err.response("t").unwrap().to_vec()).unwrap();
        assert!(
            reply.starts_with("SIP/2.0 513 Message Too Large"),
            "{reply}"
        );
        assert!(reply.contains("Call-ID: abc@x\r\n") && reply.contains("CSeq: 1 OPTIONS\r\n"));
        // No readable header section within the limit: nothing to answer.
        assert!(
            too_large(&vec![b'a'; 70_000], 70_000)
                .response("t")
                .is_none()
        );
    }

    #[test]
    fn leading_crlf_and_bare_lf() {
        let lf = format!("\r\n\r\n{}", OPTIONS.replace("\r\n", "\n"));
        assert!(p(&lf).is_ok());
    }

    #[test]
    fn body_is_cut_by_content_length() {
        let m = OPTIONS.replace("Content-Length: 0", "Content-Length: 3");
        let Message::Request(r) = p(&format!("{m}abcdef")).unwrap() else {
            panic!()
        };
        assert_eq!(&r.body[..], b"abc");
        let short = OPTIONS.replace("Content-Length: 0", "Content-Length: 30");
        assert_eq!(p(&short).unwrap_err().error, WireError::ShortBody);
        let neg = OPTIONS.replace("Content-Length: 0", "Content-Length: -1");
        assert_eq!(p(&neg).unwrap_err().error, WireError::BadContentLength);
        let none = OPTIONS.replace("Content-Length: 0\r\n", "");
        assert!(parse(Bytes::from(none.clone()), Framing::Datagram).is_ok());
        assert_eq!(
            parse(Bytes::from(none), Framing::Stream).unwrap_err().error,
            WireError::MissingContentLength
        );
    }

    #[test]
    fn stateless_error_echoes_identity() {
        let bad = OPTIONS.replace("CSeq: 1 OPTIONS", "CSeq: 99999999999 OPTIONS");
        let err = p(&bad).unwrap_err();
        assert_eq!(err.error.status(), 400);
        let resp = String::from_utf8(err.response("t1").unwrap().to_vec()).unwrap();
        assert!(
            resp.starts_with("SIP/2.0 400 Bad CSeq: number out of range\r\n"),
            "{resp}"
        );
        assert!(resp.contains("To: <sip:user@example.com>;tag=t1\r\n"));
        assert!(resp.contains("Call-ID: abc@x\r\n"));
    }

    #[test]
    fn responses_with_bad_status_are_dropped() {
        let r = "SIP/2.0 4294967301 better not break the receiver\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n";
        let err = p(r).unwrap_err();
        assert_eq!(err.error, WireError::BadStatusCode);
        assert!(err.response("t").is_none());
    }

    #[test]
    fn oversize_is_refused() {
        let big = format!("{}{}", OPTIONS, "x".repeat(MAX_MESSAGE_SIZE));
        assert!(matches!(
            p(&big).unwrap_err().error,
            WireError::TooLarge { .. }
        ));
    }
}

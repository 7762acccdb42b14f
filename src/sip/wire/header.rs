//! Header names (with RFC 3261 §7.3.3 compact forms) and the typed header values the
//! stack depends on: name-addr (From, To, Contact, Route, Record-Route), Via, CSeq and
//! parameter lists, each with a strict parser that reports what is wrong.

use std::fmt;

use super::text::{is_token, is_token_char, is_wsp, split_top_level, take_quoted, trim_lws};
use super::uri::{Host, Param, Uri, UriError, parse_port, split_host_port, valid_param_name};

/// A header name, canonicalised: compact forms are expanded and known names take
/// their canonical spelling; unknown names keep the spelling they arrived with.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    /// Via (v)
    Via,
    /// From (f)
    From,
    /// To (t)
    To,
    /// Call-ID (i)
    CallId,
    /// CSeq
    CSeq,
    /// Contact (m)
    Contact,
    /// Content-Length (l)
    ContentLength,
    /// Content-Type (c)
    ContentType,
    /// Max-Forwards
    MaxForwards,
    /// Route
    Route,
    /// Record-Route
    RecordRoute,
    /// Any other header, by its canonical or received spelling.
    Other(String),
}

/// Known header names other than the structural ones above, with compact forms.
const CANONICAL: &[(&str, Option<&str>)] = &[
    ("Accept", None),
    ("Accept-Contact", Some("a")),
    ("Accept-Encoding", None),
    ("Accept-Language", None),
    ("Alert-Info", None),
    ("Allow", None),
    ("Allow-Events", Some("u")),
    ("Authorization", None),
    ("Call-Info", None),
    ("Content-Disposition", None),
    ("Content-Encoding", Some("e")),
    ("Content-Language", None),
    ("Date", None),
    ("Event", Some("o")),
    ("Expires", None),
    ("Identity", Some("y")),
    ("Identity-Info", Some("n")),
    ("Min-Expires", None),
    ("Proxy-Authenticate", None),
    ("Proxy-Authorization", None),
    ("Proxy-Require", None),
    ("Reason", None),
    ("Refer-To", Some("r")),
    ("Referred-By", Some("b")),
    ("Reject-Contact", Some("j")),
    ("Request-Disposition", Some("d")),
    ("Require", None),
    ("Retry-After", None),
    ("Server", None),
    ("Session-Expires", Some("x")),
    ("Subject", Some("s")),
    ("Supported", Some("k")),
    ("Timestamp", None),
    ("Unsupported", None),
    ("User-Agent", None),
    ("Warning", None),
    ("WWW-Authenticate", None),
];

impl HeaderName {
    /// Canonicalises a received header name (case-insensitive, compact forms expanded).
    pub fn from_wire(name: &str) -> Self {
        let structural = match name.len() {
            1 => match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => Some(Self::Via),
                b'f' => Some(Self::From),
                b't' => Some(Self::To),
                b'i' => Some(Self::CallId),
                b'm' => Some(Self::Contact),
                b'l' => Some(Self::ContentLength),
                b'c' => Some(Self::ContentType),
                _ => None,
            },
            _ => [
                ("Via", Self::Via),
                ("From", Self::From),
                ("To", Self::To),
                ("Call-ID", Self::CallId),
                ("CSeq", Self::CSeq),
                ("Contact", Self::Contact),
                ("Content-Length", Self::ContentLength),
                ("Content-Type", Self::ContentType),
                ("Max-Forwards", Self::MaxForwards),
                ("Route", Self::Route),
                ("Record-Route", Self::RecordRoute),
            ]
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, h)| h),
        };
        if let Some(h) = structural {
            return h;
        }
        let canonical = CANONICAL.iter().find(|(long, short)| {
            long.eq_ignore_ascii_case(name) || short.is_some_and(|s| s.eq_ignore_ascii_case(name))
        });
        match canonical {
            Some((long, _)) => Self::Other((*long).to_owned()),
            None => Self::Other(name.to_owned()),
        }
    }

    /// A header name for building messages (`"Supported"`, `"X-Tenant"`).
    pub fn other(name: &str) -> Self {
        Self::from_wire(name)
    }

    /// The canonical spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Via => "Via",
            Self::From => "From",
            Self::To => "To",
            Self::CallId => "Call-ID",
            Self::CSeq => "CSeq",
            Self::Contact => "Contact",
            Self::ContentLength => "Content-Length",
            Self::ContentType => "Content-Type",
            Self::MaxForwards => "Max-Forwards",
            Self::Route => "Route",
            Self::RecordRoute => "Record-Route",
            Self::Other(name) => name,
        }
    }

    /// Whether two names are the same header.
    pub fn is(&self, name: &str) -> bool {
        self.as_str().eq_ignore_ascii_case(name)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A SIP method. Methods are case-sensitive (RFC 3261 §7.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO (RFC 6086)
    Info,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// NOTIFY (RFC 6665)
    Notify,
    /// REFER (RFC 3515)
    Refer,
    /// MESSAGE (RFC 3428)
    Message,
    /// PUBLISH (RFC 3903)
    Publish,
    /// Any other token.
    Extension(String),
}

impl Method {
    /// Parses a method token; `None` if it is not a token.
    pub fn parse(s: &str) -> Option<Self> {
        if !is_token(s) {
            return None;
        }
        // rsip knows the standard methods' spellings; anything else is an extension.
        Some(match super::vocabulary::standard_method(s) {
            Some(m) => m,
            None => Self::Extension(s.to_owned()),
        })
    }

    /// The method token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Register => "REGISTER",
            Self::Info => "INFO",
            Self::Update => "UPDATE",
            Self::Prack => "PRACK",
            Self::Subscribe => "SUBSCRIBE",
            Self::Notify => "NOTIFY",
            Self::Refer => "REFER",
            Self::Message => "MESSAGE",
            Self::Publish => "PUBLISH",
            Self::Extension(m) => m,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a header value was rejected; shown in the 400 reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// A `;` or `,` with nothing between it and the next one.
    #[error("empty parameter")]
    EmptyParam,
    /// A parameter name that is not a token, or a bad value.
    #[error("malformed parameter")]
    BadParam,
    /// A quoted string or `<` without its closing character.
    #[error("unterminated quoted string or angle bracket")]
    Unterminated,
    /// A display name that is neither tokens nor a quoted string.
    #[error("display name is not a token list or quoted string")]
    BadDisplayName,
    /// Whitespace or junk around or inside the URI.
    #[error("malformed address")]
    BadAddress,
    /// The URI itself.
    #[error("{0}")]
    Uri(#[from] UriError),
    /// A URI with `,`, `?` or `;` outside angle brackets (RFC 3261 §20).
    #[error("URI with ',', '?' or ';' must be enclosed in <>")]
    NeedsBrackets,
    /// Via protocol is not `SIP/2.0/transport`.
    #[error("sent-protocol is not SIP/2.0/<transport>")]
    BadProtocol,
    /// A number that is not decimal or does not fit.
    #[error("number out of range")]
    BadNumber,
    /// A CSeq method that is not a token.
    #[error("method is not a token")]
    BadMethod,
    /// An empty value where one is required.
    #[error("empty value")]
    Empty,
}

/// Parses `;name[=value]` parameters (LWS allowed around `;` and `=`).
pub(crate) fn parse_params(s: &str) -> Result<Vec<Param>, HeaderError> {
    let s = trim_lws(s);
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let s = s.strip_prefix(';').ok_or(HeaderError::BadParam)?;
    let mut params = Vec::new();
    for piece in split_top_level(s, ';').ok_or(HeaderError::Unterminated)? {
        let piece = trim_lws(piece);
        if piece.is_empty() {
            return Err(HeaderError::EmptyParam);
        }
        let (name, value) = match piece.split_once('=') {
            Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
            None => (piece, None),
        };
        if !valid_param_name(name) {
            return Err(HeaderError::BadParam);
        }
        if let Some(v) = value {
            let ok = if v.starts_with('"') {
                take_quoted(v).is_some_and(|(_, rest)| rest.is_empty())
            } else if v.starts_with('[') {
                v.ends_with(']')
            } else {
                !v.is_empty() && v.chars().all(|c| is_token_char(c) || c == ':')
            };
            if !ok {
                return Err(HeaderError::BadParam);
            }
        }
        params.push(Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
    }
    Ok(params)
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for p in params {
        match &p.value {
            Some(v) => write!(f, ";{}={}", p.name, v)?,
            None => write!(f, ";{}", p.name)?,
        }
    }
    Ok(())
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

fn set_param(params: &mut Vec<Param>, name: &str, value: Option<&str>) {
    let value = value.map(str::to_owned);
    match params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) => p.value = value,
        None => params.push(Param {
            name: name.to_owned(),
            value,
        }),
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route,
/// Record-Route (RFC 3261 §20.10, §20.20, §20.39).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (quoted strings keep their quotes).
    pub display_name: Option<String>,
    /// The URI, kept exactly as written.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`, ...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// An address with no display name or parameters.
    pub fn new(uri: Uri) -> Self {
        Self {
            display_name: None,
            uri,
            params: Vec::new(),
        }
    }

    /// Parses a name-addr or addr-spec followed by parameters.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(HeaderError::Empty);
        }
        let (display_name, after_display) = if s.starts_with('"') {
            let (_, rest) = take_quoted(s).ok_or(HeaderError::Unterminated)?;
            let quoted_len = s.len() - rest.len();
            let rest = trim_lws(rest);
            if !rest.starts_with('<') {
                return Err(HeaderError::BadDisplayName);
            }
            (Some(s[..quoted_len].to_owned()), rest)
        } else if let Some(lt) = s.find('<') {
            let name = trim_lws(&s[..lt]);
            if !name.is_empty() && !name.split(is_wsp).filter(|t| !t.is_empty()).all(is_token) {
                return Err(HeaderError::BadDisplayName);
            }
            ((!name.is_empty()).then(|| name.to_owned()), &s[lt..])
        } else {
            // addr-spec: the URI ends at the first ';' and may not hold ',' or '?'.
            let (uri_text, params) = match s.find(';') {
                Some(i) => (&s[..i], &s[i..]),
                None => (s, ""),
            };
            let uri_text = trim_lws(uri_text);
            if uri_text.contains([',', '?']) {
                return Err(HeaderError::NeedsBrackets);
            }
            let uri = Uri::parse(uri_text)?;
            return Ok(Self {
                display_name: None,
                uri,
                params: parse_params(params)?,
            });
        };
        let inner = after_display
            .strip_prefix('<')
            .ok_or(HeaderError::BadAddress)?;
        let gt = inner.find('>').ok_or(HeaderError::Unterminated)?;
        let uri_text = &inner[..gt];
        if uri_text.starts_with(is_wsp) || uri_text.ends_with(is_wsp) {
            return Err(HeaderError::BadAddress);
        }
        let uri = Uri::parse(uri_text)?;
        let params = parse_params(&inner[gt + 1..])?;
        Ok(Self {
            display_name,
            uri,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag").flatten()
    }

    /// Sets (or replaces) the `tag` parameter.
    pub fn set_tag(&mut self, tag: &str) {
        set_param(&mut self.params, "tag", Some(tag));
    }

    /// This address with a tag.
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.set_tag(tag);
        self
    }

    /// A header parameter: `None` if absent, `Some(None)` if present without value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            write!(f, "{name} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// A Contact value: an address or `*` (REGISTER only).
#[derive(Debug, Clone, PartialEq, Eq)]
// Contacts are addresses in all but REGISTER-with-`*`; boxing would cost every
// ordinary Contact an allocation to save bytes in the rare one.
#[allow(clippy::large_enum_variant)]
pub enum Contact {
    /// `Contact: *` — remove all bindings.
    Wildcard,
    /// An address.
    Address(NameAddr),
}

impl Contact {
    /// Parses one Contact list element.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        if trim_lws(s) == "*" {
            return Ok(Self::Wildcard);
        }
        NameAddr::parse(s).map(Self::Address)
    }

    /// The address, unless wildcard.
    pub fn address(&self) -> Option<&NameAddr> {
        match self {
            Self::Wildcard => None,
            Self::Address(a) => Some(a),
        }
    }
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Wildcard => f.write_str("*"),
            Self::Address(a) => a.fmt(f),
        }
    }
}

/// The RFC 3261 branch magic cookie.
pub const BRANCH_COOKIE: &str = "z9hG4bK";

/// One Via value (RFC 3261 §20.42, RFC 3581 rport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, ...).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port, when written.
    pub port: Option<u16>,
    /// Via parameters in order.
    pub params: Vec<Param>,
}

impl Via {
    /// A Via for a request we send.
    pub fn new(transport: &str, host: Host, port: Option<u16>, branch: &str) -> Self {
        Self {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: vec![Param {
                name: "branch".into(),
                value: Some(branch.to_owned()),
            }],
        }
    }

    /// This Via asking for rport (RFC 3581).
    pub fn with_rport(mut self) -> Self {
        self.params.push(Param {
            name: "rport".into(),
            value: None,
        });
        self
    }

    /// Parses one Via list element.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let s = trim_lws(s);
        let mut parts = s.splitn(3, '/');
        let name = trim_lws(parts.next().ok_or(HeaderError::BadProtocol)?);
        let version = trim_lws(parts.next().ok_or(HeaderError::BadProtocol)?);
        let rest = trim_lws(parts.next().ok_or(HeaderError::BadProtocol)?);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err(HeaderError::BadProtocol);
        }
        let transport_end = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        let transport = &rest[..transport_end];
        let after = &rest[transport_end..];
        if transport.is_empty() || !after.starts_with(is_wsp) {
            return Err(HeaderError::BadProtocol);
        }
        let after = trim_lws(after);
        let (sent_by, params) = match after.find(';') {
            Some(i) => (trim_lws(&after[..i]), &after[i..]),
            None => (trim_lws(after), ""),
        };
        let (host, port) = split_host_port(sent_by)?;
        let host = Host::parse(trim_lws(host))?;
        let port = port.map(|p| parse_port(trim_lws(p))).transpose()?;
        let params = parse_params(params)?;
        Ok(Self {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// Whether the branch carries the RFC 3261 magic cookie and something after it.
    pub fn has_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > BRANCH_COOKIE.len() && b.starts_with(BRANCH_COOKIE))
    }

    /// The `received` parameter.
    pub fn received(&self) -> Option<&str> {
        find_param(&self.params, "received").flatten()
    }

    /// The `rport` parameter: `None` absent, `Some(None)` requested, `Some(Some(p))` filled.
    pub fn rport(&self) -> Option<Option<u16>> {
        find_param(&self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&str> {
        find_param(&self.params, "maddr").flatten()
    }

    /// Sets a parameter (replacing an existing one).
    pub fn set_param(&mut self, name: &str, value: Option<&str>) {
        set_param(&mut self.params, name, value);
    }

    /// Whether the transport is reliable (anything but UDP).
    pub fn is_reliable(&self) -> bool {
        self.transport != "UDP"
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)
    }
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// Sequence number (at most 2^31 for requests we generate).
    pub seq: u32,
    /// The method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<Self, HeaderError> {
        let s = trim_lws(s);
        let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, rest) = s.split_at(digits_end);
        if digits.is_empty() || !rest.starts_with(is_wsp) {
            return Err(HeaderError::BadNumber);
        }
        let seq = parse_u32(digits)?;
        let method = Method::parse(trim_lws(rest)).ok_or(HeaderError::BadMethod)?;
        Ok(Self { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Parses a decimal that must fit in 32 bits (leading zeros allowed).
pub(crate) fn parse_u32(s: &str) -> Result<u32, HeaderError> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HeaderError::BadNumber);
    }
    let significant = s.trim_start_matches('0');
    if significant.len() > 10 {
        return Err(HeaderError::BadNumber);
    }
    if significant.is_empty() {
        return Ok(0);
    }
    significant
        .parse::<u32>()
        .map_err(|_| HeaderError::BadNumber)
}

/// A header this layer does not interpret, kept with its canonical name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The canonical name.
    pub name: HeaderName,
    /// The value, unfolded and trimmed.
    pub value: String,
}

impl Header {
    /// A header.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: HeaderName::other(name),
            value: value.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_odd_case_names() {
        assert_eq!(HeaderName::from_wire("v"), HeaderName::Via);
        assert_eq!(
            HeaderName::from_wire("MaX-fOrWaRdS"),
            HeaderName::MaxForwards
        );
        assert_eq!(HeaderName::from_wire("k").as_str(), "Supported");
        assert_eq!(HeaderName::from_wire("o").as_str(), "Event");
        assert_eq!(HeaderName::from_wire("X-Custom").as_str(), "X-Custom");
        assert_eq!(HeaderName::from_wire("C%6Fntact").as_str(), "C%6Fntact");
    }

    #[test]
    fn name_addr_forms() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ;   tag    = 98asjd8"#,
        )
        .unwrap();
        assert_eq!(a.display_name.as_deref(), Some(r#""J Rosenberg \\\"""#));
        assert_eq!(a.tag(), Some("98asjd8"));
        let b = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(b.display_name.as_deref(), Some("caller"));
        let c = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(c.uri.as_str(), "sip:+19725552222@gw1.example.net");
        assert_eq!(c.param("unknownparam"), Some(None));
        let d = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(
            d.uri.as_str(),
            "sip:+19725552222@gw1.example.net;unknownparam"
        );
        assert!(d.params.is_empty());
    }

    #[test]
    fn name_addr_rejections() {
        assert_eq!(
            NameAddr::parse(r#""Mr. J. User <sip:j.user@example.com>"#),
            Err(HeaderError::Unterminated)
        );
        assert_eq!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>;tag=43"),
            Err(HeaderError::BadDisplayName)
        );
        assert_eq!(
            NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#),
            Err(HeaderError::BadAddress)
        );
        assert_eq!(
            NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Err(HeaderError::NeedsBrackets)
        );
        assert_eq!(
            NameAddr::parse(r#""Joe" <sip:joe@example.org>;;;;"#),
            Err(HeaderError::EmptyParam)
        );
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v = Via::parse("SIP  /   2.0  /UDP    192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_rfc3261_branch());
        let w = Via::parse(
            "SIP  / 2.0  / TCP     spindle.example.com   ;   branch  =   z9hG4bK9ikj8  ",
        )
        .unwrap();
        assert_eq!(w.host, Host::Domain("spindle.example.com".into()));
        assert_eq!(w.branch(), Some("z9hG4bK9ikj8"));
        assert!(w.has_rfc3261_branch());
    }

    #[test]
    fn via_ipv6_received_and_rport() {
        let v = Via::parse(
            "SIP/2.0/UDP [2001:db8::9:1]:5061;received=2001:db8::9:255;branch=z9hG4bKas3-111;rport",
        )
        .unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received(), Some("2001:db8::9:255"));
        assert_eq!(v.branch(), Some("z9hG4bKas3-111"));
        assert_eq!(v.rport(), Some(None));
        let b =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];branch=z9hG4bKas3")
                .unwrap();
        assert_eq!(b.received(), Some("[2001:db8::9:255]"));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjuw").is_err());
        assert!(
            !Via::parse("SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK")
                .unwrap()
                .has_rfc3261_branch()
        );
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("0009   INVITE").unwrap(),
            CSeq {
                seq: 9,
                method: Method::Invite
            }
        );
        assert_eq!(CSeq::parse("4294967295 ACK").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("4294967296 ACK").is_err());
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("INVITE").is_err());
        assert!(CSeq::parse("1").is_err());
        assert_eq!(
            CSeq::parse("1 RE%47IST%45R").unwrap().method,
            Method::Extension("RE%47IST%45R".into())
        );
    }
}

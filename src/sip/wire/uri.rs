//! URIs: SIP and SIPS (RFC 3261 §19.1, §25.1), IPv6 references (RFC 5118) and any
//! other absolute URI (`tel:`, `isbn:`, ...) kept opaque.
//!
//! A [`Uri`] keeps the exact text it was parsed from and shows it unchanged, so URI
//! parameters and escaped headers survive into the in-dialog requests built from a
//! Contact or Record-Route (a lossy re-serialisation is how route sets get broken).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use super::text::{is_token, unescape};

/// Why a URI was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// No `scheme:` prefix.
    #[error("URI has no scheme")]
    NoScheme,
    /// Whitespace, control characters, `<`, `>` or `"` inside the URI.
    #[error("URI contains a character not allowed in a URI")]
    BadCharacter,
    /// More than one literal `@`.
    #[error("URI has more than one '@'")]
    ManyAt,
    /// The host part is empty or not a host name, IPv4 address or IPv6 reference.
    #[error("URI host is not a host name or IP address")]
    BadHost,
    /// The port is not a number from 0 to 65535.
    #[error("URI port is not a number from 0 to 65535")]
    BadPort,
    /// A `;` with no parameter name after it.
    #[error("URI has an empty parameter")]
    EmptyParam,
    /// A `%` not followed by two hex digits.
    #[error("URI has a malformed %-escape")]
    BadEscape,
}

/// The host of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name, lower-cased.
    Domain(String),
    /// An IPv4 or IPv6 address.
    Ip(IpAddr),
}

impl Host {
    /// Parses a host name, IPv4 address or bracketed IPv6 reference. Also accepts a
    /// bare IPv6 address (RFC 5118 §4.5 `received=` without brackets) and the
    /// three-colon form RFC 5118 §4.10 asks implementations to tolerate.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or(UriError::BadHost)?;
            return parse_ipv6(inner).map(|ip| Host::Ip(IpAddr::V6(ip)));
        }
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if s.contains(':') {
            return parse_ipv6(s).map(|ip| Host::Ip(IpAddr::V6(ip)));
        }
        let valid = !s.is_empty()
            && s.len() <= 253
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
            && !s.starts_with(['-', '.']);
        if valid {
            Ok(Host::Domain(s.to_ascii_lowercase()))
        } else {
            Err(UriError::BadHost)
        }
    }

    /// The IP address, when the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Ip(ip) => Some(*ip),
            Host::Domain(_) => None,
        }
    }
}

fn parse_ipv6(s: &str) -> Result<Ipv6Addr, UriError> {
    if let Ok(ip) = s.parse::<Ipv6Addr>() {
        return Ok(ip);
    }
    // RFC 5118 §4.10: RFC 3261's ABNF allowed `2001:db8:::192.0.2.1`.
    if s.contains(":::") {
        if let Ok(ip) = s.replacen(":::", "::", 1).parse::<Ipv6Addr>() {
            return Ok(ip);
        }
    }
    Err(UriError::BadHost)
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
        }
    }
}

/// A URI scheme.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
    /// `tel:` (RFC 3966)
    Tel,
    /// Anything else, lower-cased.
    Other(String),
}

/// A `;name[=value]` parameter as written (name case kept; compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name.
    pub name: String,
    /// Value, if any, as written (quoted strings keep their quotes).
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SipParts {
    user: Option<String>,
    password: Option<String>,
    host: Host,
    port: Option<u16>,
    params: Vec<Param>,
    headers: Option<String>,
}

/// A parsed URI that displays exactly as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    text: String,
    scheme: Scheme,
    sip: Option<SipParts>,
}

fn uri_char_ok(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

fn check_escapes(s: &str) -> Result<(), UriError> {
    unescape(s).map(|_| ()).ok_or(UriError::BadEscape)
}

impl Uri {
    /// Parses a URI.
    pub fn parse(s: &str) -> Result<Self, UriError> {
        if !s.chars().all(uri_char_ok) {
            return Err(UriError::BadCharacter);
        }
        let (scheme_text, rest) = s.split_once(':').ok_or(UriError::NoScheme)?;
        let scheme_ok = scheme_text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic())
            && scheme_text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(UriError::NoScheme);
        }
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => Scheme::Other(other.to_owned()),
        };
        let sip = match scheme {
            Scheme::Sip | Scheme::Sips => Some(parse_sip_parts(rest)?),
            Scheme::Tel | Scheme::Other(_) => {
                if rest.is_empty() {
                    return Err(UriError::BadHost);
                }
                None
            }
        };
        Ok(Self {
            text: s.to_owned(),
            scheme,
            sip,
        })
    }

    /// A `sip:` URI built from parts.
    pub fn sip(user: Option<&str>, host: &Host, port: Option<u16>) -> Self {
        let mut text = String::from("sip:");
        if let Some(user) = user {
            text.push_str(user);
            text.push('@');
        }
        text.push_str(&host.to_string());
        if let Some(port) = port {
            text.push(':');
            text.push_str(&port.to_string());
        }
        let sip = SipParts {
            user: user.map(str::to_owned),
            password: None,
            host: host.clone(),
            port,
            params: Vec::new(),
            headers: None,
        };
        Self {
            text,
            scheme: Scheme::Sip,
            sip: Some(sip),
        }
    }

    /// This URI with one more parameter (before any `?headers`). Only SIP URIs take
    /// parameters; others are returned unchanged.
    pub fn with_param(mut self, name: &str, value: Option<&str>) -> Self {
        let Some(sip) = self.sip.as_mut() else {
            return self;
        };
        let piece = match value {
            Some(v) => format!(";{name}={v}"),
            None => format!(";{name}"),
        };
        let at = self.text.find('?').unwrap_or(self.text.len());
        self.text.insert_str(at, &piece);
        sip.params.push(Param {
            name: name.to_owned(),
            value: value.map(str::to_owned),
        });
        self
    }

    /// The exact text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The scheme.
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// Whether this is a `sip:` or `sips:` URI.
    pub fn is_sip(&self) -> bool {
        self.sip.is_some()
    }

    /// The user part as written (still %-escaped); for `tel:` the number.
    pub fn user(&self) -> Option<&str> {
        match (&self.sip, &self.scheme) {
            (Some(sip), _) => sip.user.as_deref(),
            (None, Scheme::Tel) => {
                let number = self.text.split_once(':').map(|(_, r)| r)?;
                Some(number.split(';').next().unwrap_or(number))
            }
            _ => None,
        }
    }

    /// The user part with one level of %-escapes removed.
    pub fn user_unescaped(&self) -> Option<String> {
        self.user().and_then(unescape)
    }

    /// The host, for SIP URIs.
    pub fn host(&self) -> Option<&Host> {
        self.sip.as_ref().map(|s| &s.host)
    }

    /// The port, when written.
    pub fn port(&self) -> Option<u16> {
        self.sip.as_ref().and_then(|s| s.port)
    }

    /// URI parameters (SIP URIs only).
    pub fn params(&self) -> &[Param] {
        self.sip.as_ref().map_or(&[], |s| &s.params)
    }

    /// A parameter: `None` if absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params()
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_deref())
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(str::to_ascii_lowercase)
    }

    /// Whether the URI carries `;lr` (a loose router, RFC 3261 §16.12.1.1).
    pub fn is_loose_router(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The `?headers` part as written, without the `?`.
    pub fn headers(&self) -> Option<&str> {
        self.sip.as_ref().and_then(|s| s.headers.as_deref())
    }

    /// Whether two SIP URIs name the same user at the same host and port
    /// (RFC 3261 §19.1.4, the part of it an AOR or a target comparison needs).
    pub fn same_address(&self, other: &Uri) -> bool {
        match (&self.sip, &other.sip) {
            (Some(a), Some(b)) => {
                self.scheme == other.scheme
                    && a.user.as_deref().and_then(unescape) == b.user.as_deref().and_then(unescape)
                    && a.host == b.host
                    && a.port == b.port
            }
            _ => self.text.eq_ignore_ascii_case(&other.text),
        }
    }
}

fn parse_sip_parts(rest: &str) -> Result<SipParts, UriError> {
    let (userinfo, hostpart) = match rest.matches('@').count() {
        0 => (None, rest),
        1 => {
            let (u, h) = rest.split_once('@').ok_or(UriError::BadHost)?;
            (Some(u), h)
        }
        _ => return Err(UriError::ManyAt),
    };
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => {
            check_escapes(u)?;
            match u.split_once(':') {
                Some((user, pass)) => (Some(user.to_owned()), Some(pass.to_owned())),
                None => (Some(u.to_owned()), None),
            }
        }
    };
    if user.as_deref() == Some("") {
        return Err(UriError::BadHost);
    }
    let (hostpart, headers) = match hostpart.split_once('?') {
        Some((h, headers)) => (h, Some(headers.to_owned())),
        None => (hostpart, None),
    };
    let (hostport, params_text) = match hostpart.find(';') {
        Some(i) => (&hostpart[..i], Some(&hostpart[i + 1..])),
        None => (hostpart, None),
    };
    let (host_text, port_text) = split_host_port(hostport)?;
    let host = Host::parse(host_text)?;
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p)?),
    };
    let mut params = Vec::new();
    if let Some(text) = params_text {
        for piece in text.split(';') {
            let (name, value) = match piece.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (piece, None),
            };
            if name.is_empty() {
                return Err(UriError::EmptyParam);
            }
            check_escapes(piece)?;
            params.push(Param {
                name: name.to_owned(),
                value,
            });
        }
    }
    Ok(SipParts {
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<&str>), UriError> {
    if s.starts_with('[') {
        let end = s.find(']').ok_or(UriError::BadHost)?;
        let (host, after) = s.split_at(end + 1);
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or(UriError::BadPort),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Ok((h, Some(p))),
        None => Ok((s, None)),
    }
}

pub(crate) fn parse_port(p: &str) -> Result<u16, UriError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::BadPort);
    }
    p.parse::<u16>().map_err(|_| UriError::BadPort)
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether a parameter name is a valid token (used by the header parsers).
pub(crate) fn valid_param_name(name: &str) -> bool {
    is_token(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ordinary_sip_uris() {
        let u = Uri::parse("sip:alice@example.com:5070;transport=TCP;lr").unwrap();
        assert_eq!(u.user(), Some("alice"));
        assert_eq!(u.host(), Some(&Host::Domain("example.com".into())));
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert!(u.is_loose_router());
        assert_eq!(u.to_string(), "sip:alice@example.com:5070;transport=TCP;lr");
    }

    #[test]
    fn user_part_may_hold_semicolons_and_escapes() {
        // RFC 4475 §3.1.1.9 (semiuri) and §3.1.1.3 (esc01).
        let u = Uri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user(), Some("user;par=u%40example.net"));
        assert_eq!(
            u.user_unescaped().as_deref(),
            Some("user;par=u@example.net")
        );
        assert_eq!(u.host(), Some(&Host::Domain("example.com".into())));
        let c =
            Uri::parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31").unwrap();
        assert_eq!(c.user_unescaped().as_deref(), Some("caller"));
        assert_eq!(c.params().len(), 2);
    }

    #[test]
    fn crazy_user_and_password() {
        // RFC 4475 §3.1.1.2 (intmeth).
        let u = Uri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com").unwrap();
        assert_eq!(
            u.user(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(u.host(), Some(&Host::Domain("example.com".into())));
    }

    #[test]
    fn ipv6_references() {
        let u = Uri::parse("sip:[2001:db8::10]:5070").unwrap();
        assert_eq!(u.port(), Some(5070));
        assert_eq!(u.host().unwrap().to_string(), "[2001:db8::10]");
        // RFC 5118 §4.3: the 5070 is part of the address.
        let amb = Uri::parse("sip:[2001:db8::10:5070]").unwrap();
        assert_eq!(amb.port(), None);
        assert_eq!(amb.host().unwrap().to_string(), "[2001:db8::10:5070]");
        // §4.10: three colons tolerated.
        assert!(Uri::parse("sip:user@[2001:db8:::192.0.2.1]").is_ok());
        // §4.2: no brackets is invalid.
        assert!(Uri::parse("sip:2001:db8::10").is_err());
    }

    #[test]
    fn headers_and_other_schemes_are_kept() {
        let u = Uri::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E").unwrap();
        assert_eq!(u.headers(), Some("Route=%3Csip:sip.example.com%3E"));
        assert_eq!(
            u.to_string(),
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
        );
        let t = Uri::parse("tel:+73432000001;phone-context=x").unwrap();
        assert_eq!(t.scheme(), &Scheme::Tel);
        assert_eq!(t.user(), Some("+73432000001"));
        let o = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(o.scheme(), &Scheme::Other("soap.beep".into()));
        assert!(!o.is_sip());
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "sip:",
            "nocolon",
            "sip:a@b@c",
            "sip:user@",
            "sip:h:99999",
            "sip:h;;x",
            "sip:a b@c",
            "sip:<x>",
            "1sip:x",
            "sip:a@h;x=%zz",
        ] {
            assert!(Uri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn builder_and_params() {
        let u = Uri::sip(
            Some("1001"),
            &Host::Ip("127.0.0.1".parse().unwrap()),
            Some(5060),
        )
        .with_param("transport", Some("tcp"));
        assert_eq!(u.to_string(), "sip:1001@127.0.0.1:5060;transport=tcp");
        assert_eq!(Uri::parse(u.as_str()).unwrap(), u);
        let v6 = Uri::sip(None, &Host::Ip("::1".parse().unwrap()), None);
        assert_eq!(v6.to_string(), "sip:[::1]");
    }
}

//! The grammar of HTTP-style authentication headers in SIP (RFC 3261 §25.1
//! `credentials` / `challenge`, RFC 7616): `Digest` followed by comma-separated
//! `name=value` pairs whose values may be quoted.

use super::text::{is_token, split_top_level, take_quoted, trim_lws};

/// A parsed Authorization (or WWW-Authenticate) value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// The scheme (`Digest`), as written.
    pub scheme: String,
    /// Parameters in order, names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl AuthParams {
    /// Parses `scheme name=value, name="value", ...`; `None` when malformed.
    pub fn parse(s: &str) -> Option<Self> {
        let s = trim_lws(s);
        let (scheme, rest) = match s.find([' ', '\t']) {
            Some(i) => (&s[..i], trim_lws(&s[i..])),
            None => (s, ""),
        };
        if !is_token(scheme) {
            return None;
        }
        let mut params = Vec::new();
        if !rest.is_empty() {
            for piece in split_top_level(rest, ',')? {
                let piece = trim_lws(piece);
                if piece.is_empty() {
                    continue;
                }
                let (name, value) = piece.split_once('=')?;
                let name = trim_lws(name);
                let value = trim_lws(value);
                if !is_token(name) {
                    return None;
                }
                let value = if value.starts_with('"') {
                    let (inner, after) = take_quoted(value)?;
                    if !trim_lws(after).is_empty() {
                        return None;
                    }
                    unquote(inner)
                } else {
                    value.to_owned()
                };
                params.push((name.to_ascii_lowercase(), value));
            }
        }
        Some(Self {
            scheme: scheme.to_owned(),
            params,
        })
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the scheme is Digest.
    pub fn is_digest(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("Digest")
    }
}

/// Removes backslash escapes from the inside of a quoted string.
fn unquote(inner: &str) -> String {
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes a value for a header parameter.
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_digest_credentials() {
        let a = AuthParams::parse(r#"Digest username="op\"1", realm="dispatchline",nonce="abc", uri="sip:127.0.0.1", response="0123", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="x,y""#).unwrap();
        assert!(a.is_digest());
        assert_eq!(a.get("username"), Some("op\"1"));
        assert_eq!(a.get("algorithm"), Some("SHA-256"));
        assert_eq!(a.get("cnonce"), Some("x,y"));
        assert_eq!(a.get("nc"), Some("00000001"));
    }

    #[test]
    fn other_schemes_and_garbage() {
        let a = AuthParams::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert!(!a.is_digest());
        assert!(AuthParams::parse("Digest username=\"open").is_none());
        assert!(AuthParams::parse("Digest =x").is_none());
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
    }
}

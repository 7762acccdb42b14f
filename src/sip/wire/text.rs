//! Character classes and splitting rules of the SIP grammar (RFC 3261 §25.1).
//!
//! Everything here works on `&str` that the lexer has already unfolded, and never
//! panics: every index comes from `char_indices` or a checked search.

/// RFC 3261 `token` characters.
pub(crate) fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

/// RFC 3261 `word` characters (Call-ID).
pub(crate) fn is_word_char(c: char) -> bool {
    is_token_char(c)
        || matches!(
            c,
            '(' | ')' | '<' | '>' | ':' | '\\' | '"' | '/' | '[' | ']' | '?' | '{' | '}'
        )
}

/// Linear white space after unfolding: SP or HTAB.
pub(crate) fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Trims SP and HTAB (not other Unicode space) from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(is_wsp)
}

/// Splits `s` at every top-level `sep`, ignoring separators inside quoted strings
/// (with backslash escapes) and inside `<...>`. Returns `None` on an unterminated
/// quoted string or angle bracket.
pub(crate) fn split_top_level(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut in_angle = false;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' if !in_angle => in_angle = true,
            '>' if in_angle => in_angle = false,
            c if c == sep && !in_angle => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if in_quotes || in_angle {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// Parses a quoted string starting at the first character of `s` (which must be `"`).
/// Returns the text between the quotes (escapes kept as written) and the rest.
pub(crate) fn take_quoted(s: &str) -> Option<(&str, &str)> {
    let mut chars = s.char_indices();
    if chars.next()?.1 != '"' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            return Some((&s[1..i], &s[i + 1..]));
        }
    }
    None
}

/// Removes one level of `%HH` escaping; `None` when an escape is malformed.
pub(crate) fn unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Replaces control characters (CR, LF, NUL, ...) with spaces, for text echoed back
/// into a header or a reason phrase.
pub(crate) fn sanitize_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_respect_quotes_and_brackets() {
        assert_eq!(
            split_top_level(r#""a,b" <sip:x;y=1,2>, <sip:z>"#, ',').unwrap(),
            vec![r#""a,b" <sip:x;y=1,2>"#, " <sip:z>"]
        );
        assert_eq!(
            split_top_level(r#""a\"," x"#, ',').unwrap(),
            vec![r#""a\"," x"#]
        );
        assert!(split_top_level("\"open", ',').is_none());
        assert!(split_top_level("<sip:open", ',').is_none());
    }

    #[test]
    fn quoted_strings_and_escapes() {
        assert_eq!(
            take_quoted(r#""J R \"" rest"#),
            Some((r#"J R \""#, " rest"))
        );
        assert_eq!(take_quoted("\"x"), None);
        assert_eq!(unescape("%75se%72").as_deref(), Some("user"));
        assert_eq!(unescape("v%61lue%25%34%31").as_deref(), Some("value%41"));
        assert_eq!(unescape("%ZZ"), None);
        assert_eq!(unescape("%4"), None);
    }
}

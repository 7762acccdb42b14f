//! Number routing: what the engine does with an INVITE, decided from the dialled
//! number (the Request-URI user part, normalised as DESIGN.md says) and the
//! configuration's `[[number]]` table.

use crate::config::{Config, Number, NumberKind};
use crate::sip::wire::{Request, Uri};

/// Where a new call goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    /// A `[[number]]` entry matched.
    Number(&'a Number),
    /// Nothing matched (404).
    Unknown,
}

/// The dialled number of a request: the Request-URI user part, unescaped, or for
/// a `tel:` URI its number.
pub fn dialled(request: &Request) -> Option<String> {
    request
        .uri
        .user_unescaped()
        .map(|u| u.split(';').next().unwrap_or(&u).to_owned())
}

/// Routes an initial INVITE.
pub fn route<'a>(config: &'a Config, request: &Request) -> Route<'a> {
    match dialled(request).and_then(|d| config.number(&d)) {
        Some(n) => Route::Number(n),
        None => Route::Unknown,
    }
}

/// The outbound Request-URI for a `forward` number: the configured target, with the
/// dialled number as user part when the target names none (what a gateway or PBX
/// behind the engine expects).
pub fn forward_uri(number: &Number, dialled: &str) -> Option<Uri> {
    debug_assert_eq!(number.kind, NumberKind::Forward);
    let target = Uri::parse(number.target.as_deref()?).ok()?;
    if target.user().is_some() {
        return Some(target);
    }
    let rest = target.as_str().split_once(':').map(|(_, r)| r)?;
    let scheme = target.as_str().split(':').next()?;
    Uri::parse(&format!("{scheme}:{dialled}@{rest}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn forward_targets() {
        let config = Config::parse(
            "[[number]]\nnumber = \"100\"\nkind = \"forward\"\ntarget = \"sip:127.0.0.1:5080\"\n",
            Path::new("t"),
        )
        .unwrap();
        let n = config.number("100").unwrap();
        let uri = forward_uri(n, "100").unwrap();
        assert_eq!(uri.as_str(), "sip:100@127.0.0.1:5080");
        // Where it goes is `Target::for_uri`'s business (tested in sip::transport).
    }
}

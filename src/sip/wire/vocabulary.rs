//! The fixed vocabulary of SIP: standard method names and reason phrases.
//!
//! This is the only place the engine touches `rsip`. rsip 0.4 parses message text
//! too leniently and too lossily for real traffic (IPv6 references, URI headers and
//! `tel:` URIs fail; a user part holding `;` is read as the host; SHA-256 digests are
//! refused; quoted Via parameters come back empty), so the grammar lives in
//! [`super`]; rsip still names the standard methods. Replacing rsip means replacing
//! this file.

use super::header::Method;

/// The standard method for `token`, compared case-sensitively as RFC 3261 §7.1 asks
/// (rsip itself ignores case, so its answer is checked against its own spelling).
pub(crate) fn standard_method(token: &str) -> Option<Method> {
    let parsed: rsip::Method = token.parse().ok()?;
    if parsed.to_string() != token {
        return None;
    }
    Some(match parsed {
        rsip::Method::Ack => Method::Ack,
        rsip::Method::Bye => Method::Bye,
        rsip::Method::Cancel => Method::Cancel,
        rsip::Method::Info => Method::Info,
        rsip::Method::Invite => Method::Invite,
        rsip::Method::Message => Method::Message,
        rsip::Method::Notify => Method::Notify,
        rsip::Method::Options => Method::Options,
        rsip::Method::PRack => Method::Prack,
        rsip::Method::Publish => Method::Publish,
        rsip::Method::Refer => Method::Refer,
        rsip::Method::Register => Method::Register,
        rsip::Method::Subscribe => Method::Subscribe,
        rsip::Method::Update => Method::Update,
    })
}

/// The RFC reason phrase for a status code ("" when none is defined).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(standard_method("INVITE"), Some(Method::Invite));
        assert_eq!(standard_method("PRACK"), Some(Method::Prack));
        assert_eq!(standard_method("invite"), None);
        assert_eq!(standard_method("NEWMETHOD"), None);
    }
}

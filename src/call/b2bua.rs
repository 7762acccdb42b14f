//! The back-to-back user agent: two SIP dialogs joined into one call.
//!
//! The caller's INVITE creates leg A (we are its UAS); the engine places leg B (we
//! are its UAC) towards the target. Provisional and final answers on B are mapped onto
//! A, CANCEL and BYE propagate to the other leg, in-dialog requests (re-INVITE for
//! hold and resume, UPDATE, INFO) are relayed and their answers relayed back, and a
//! failure on B becomes a sensible final response on A (see [`map_failure`]).
//!
//! Each leg is an ordinary RFC 3261 dialog with its own Call-ID, tags and CSeq: the
//! peers never see each other's signalling identifiers.

use std::time::Instant;

use bytes::Bytes;

use crate::sip::dialog::Dialog;
use crate::sip::endpoint::{ClientFailure, ClientTx, ServerTx};
use crate::sip::transport::Target;
use crate::sip::wire::{Request, Response};

/// Which side of a B2BUA call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The caller's leg (we are UAS).
    A,
    /// The leg we placed (we are UAC).
    B,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// The leg where we answer (the caller's).
#[derive(Debug)]
pub struct InboundLeg {
    /// The INVITE's server transaction.
    pub tx: ServerTx,
    /// The INVITE as received.
    pub invite: Request,
    /// Where it came from.
    pub source: Target,
    /// Our To tag on this leg.
    pub tag: String,
    /// The dialog, once we sent a 2xx.
    pub dialog: Option<Dialog>,
    /// A final response has been sent on the INVITE.
    pub answered: bool,
    /// The ACK for our 2xx has arrived.
    pub acked: bool,
    /// Hang up as soon as the ACK arrives (RFC 3261 §15: no BYE before it).
    pub bye_after_ack: bool,
}

/// The leg we place.
#[derive(Debug)]
pub struct OutboundLeg {
    /// The INVITE's client transaction.
    pub tx: ClientTx,
    /// The INVITE as sent (with our Via).
    pub invite: Request,
    /// Where it goes.
    pub target: Target,
    /// The dialog (early from a tagged provisional, confirmed by the 2xx).
    pub dialog: Option<Dialog>,
    /// A final response arrived.
    pub finished: bool,
    /// The caller cancelled before we could send CANCEL (no provisional yet).
    pub cancel_wanted: bool,
    /// The 2xx is waiting for the caller's ACK to carry its SDP answer (late offer).
    pub ack_waits_for_caller: bool,
}

/// A BYE we sent, or a request we relay from one leg to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    /// The outbound INVITE of leg B.
    Invite,
    /// A BYE on this side.
    Bye(Side),
    /// A CANCEL of leg B's INVITE.
    Cancel,
    /// An in-dialog request relayed onto `to`, answering `from` on the other side.
    Relay {
        /// Where the request arrived (the server transaction to answer).
        from: ServerTx,
        /// The side we sent it on.
        to: Side,
        /// Whether it was an INVITE without SDP (its 2xx's ACK waits for the
        /// originator's ACK).
        late_offer: bool,
    },
}

/// The final response the caller gets when leg B fails.
///
/// Busy, decline and not-found keep their meaning; redirections are not followed
/// (480); B's own authentication challenges are not the caller's business (403);
/// server errors become 502 (a 503 from us would tell upstream *we* are down); no
/// answer at all is 408 and an unreachable target 502.
pub fn map_failure(b: Result<&Response, ClientFailure>) -> (u16, String) {
    match b {
        Err(ClientFailure::Timeout) => (408, "Request Timeout: no answer from the target".into()),
        Err(ClientFailure::Transport) => (502, "Bad Gateway: target unreachable".into()),
        Ok(r) => match r.status {
            300..=399 => (480, "Temporarily Unavailable".into()),
            401 | 407 => (403, "Forbidden: the target refused our credentials".into()),
            400..=499 | 600..=699 => (r.status, r.reason.clone()),
            _ => (502, format!("Bad Gateway: target answered {}", r.status)),
        },
    }
}

/// A call through the B2BUA.
#[derive(Debug)]
pub struct Bridge {
    /// The caller's leg.
    pub a: InboundLeg,
    /// The leg we placed.
    pub b: OutboundLeg,
    /// When the INVITE arrived.
    pub started: Instant,
    /// When B answered.
    pub answered_at: Option<Instant>,
    /// Which sides have ended (BYE sent and answered, or received).
    pub ended: [bool; 2],
}

impl Bridge {
    /// The dialog on a side.
    pub fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => self.a.dialog.as_mut(),
            Side::B => self.b.dialog.as_mut(),
        }
    }

    /// Marks a side ended; true when both are.
    pub fn end_side(&mut self, side: Side) -> bool {
        self.ended[side as usize] = true;
        self.ended == [true, true]
    }
}

/// Copies the body and its Content-Type from one message onto another request or
/// response's headers.
pub fn body_of(headers: &crate::sip::wire::Headers, body: &Bytes) -> Option<(String, Bytes)> {
    if body.is_empty() {
        return None;
    }
    Some((
        headers
            .get("Content-Type")
            .unwrap_or("application/sdp")
            .to_owned(),
        body.clone(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_sensible_caller_responses() {
        let r = |status: u16| {
            let mut resp = crate::sip::transaction::tests::response_to(
                &crate::sip::transaction::tests::invite(),
                status,
            );
            resp.reason = "x".into();
            resp
        };
        assert_eq!(map_failure(Ok(&r(486))).0, 486);
        assert_eq!(map_failure(Ok(&r(603))).0, 603);
        assert_eq!(map_failure(Ok(&r(404))).0, 404);
        assert_eq!(map_failure(Ok(&r(302))).0, 480);
        assert_eq!(map_failure(Ok(&r(407))).0, 403);
        assert_eq!(map_failure(Ok(&r(503))).0, 502);
        assert_eq!(map_failure(Err(ClientFailure::Timeout)).0, 408);
        assert_eq!(map_failure(Err(ClientFailure::Transport)).0, 502);
    }
}

//! What a ticket's card shows beyond the ticket itself: the time it spent in each
//! status, every call about it (the resident's inbound call, the hand-off chain's
//! calls, status checks, feedback surveys, supplier calls, callbacks) with its
//! recording, and the ratings its work received (the resident's CSI/CES answers,
//! attributed to the executor).
//!
//! The time in each status is computed from the status history: a status lasts from
//! the history line that entered it to the next line that left it (lines that keep
//! the status, such as a hand-off chain's notes, do not end it), and the status the
//! ticket is in now runs until `now`, unless it is final (closed or cancelled).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::backend::{dispatch, per_backend};
use super::ids::{EmployeeId, TicketId};
use super::journal::CallRecord;
use super::tickets::{StatusChange, TicketStatus};
use super::{Store, StoreError};

per_backend!("sql/ticket_card.rs");

/// How long a ticket was (or has been) in one status, summed over every visit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusTime {
    /// The status.
    pub status: TicketStatus,
    /// Seconds spent in it.
    pub seconds: i64,
    /// When the ticket first entered it.
    pub first_at: DateTime<Utc>,
    /// Whether the ticket is in it now.
    pub current: bool,
}

/// Sums the time in each status from a ticket's history (oldest first), in the
/// order the statuses were first entered. An open status runs until `now`.
pub fn status_times(history: &[StatusChange], now: DateTime<Utc>) -> Vec<StatusTime> {
    let mut out: Vec<StatusTime> = Vec::new();
    let mut current: Option<(TicketStatus, DateTime<Utc>)> = None;
    for change in history {
        if current.is_some_and(|(s, _)| s == change.to) {
            continue;
        }
        if let Some((status, since)) = current.take() {
            add(&mut out, status, since, change.at.max(since));
        }
        current = Some((change.to, change.at));
        if !out.iter().any(|t| t.status == change.to) {
            out.push(StatusTime {
                status: change.to,
                seconds: 0,
                first_at: change.at,
                current: false,
            });
        }
    }
    if let Some((status, since)) = current {
        let final_status = matches!(status, TicketStatus::Closed | TicketStatus::Cancelled);
        if !final_status {
            add(&mut out, status, since, now.max(since));
        }
        if let Some(t) = out.iter_mut().find(|t| t.status == status) {
            t.current = true;
        }
    }
    out
}

fn add(out: &mut [StatusTime], status: TicketStatus, from: DateTime<Utc>, to: DateTime<Utc>) {
    if let Some(t) = out.iter_mut().find(|t| t.status == status) {
        t.seconds += (to - from).num_seconds();
    }
}

/// One call about a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketCall {
    /// What the call was for: `inbound` (the resident's call it was registered on or
    /// attached to), `handoff` (the hand-off chain), `status-check`, `survey`
    /// (feedback), `supplier-handover`, `supplier-query`, `callback`,
    /// `staff-callback`, `outbound` (another call attached to it).
    pub kind: String,
    /// The journal row, with its recording.
    #[serde(flatten)]
    pub call: CallRecord,
}

/// One rating of a ticket's work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketRating {
    /// `csi`, `ces` or `nps`.
    pub metric: String,
    /// The score.
    pub score: i64,
    /// The executor whose work was rated.
    pub executor_id: Option<EmployeeId>,
    /// Their name.
    pub executor_name: Option<String>,
    /// The call it was given on.
    pub call_id: Option<String>,
    /// When.
    pub answered_at: DateTime<Utc>,
}

/// The more telling of two kinds found for one call.
fn better_kind(a: &str, b: &str) -> bool {
    let rank = |k: &str| match k {
        "outbound" => 0,
        "inbound" => 1,
        _ => 2,
    };
    rank(b) > rank(a)
}

impl Store {
    /// Every call about a ticket, oldest first, each once with what it was for.
    pub async fn ticket_calls(&self, id: TicketId) -> Result<Vec<TicketCall>, StoreError> {
        let found: Vec<TicketCall> = dispatch!(self, calls_of(id))?;
        let mut out: Vec<TicketCall> = Vec::with_capacity(found.len());
        for call in found {
            match out.iter_mut().find(|c| c.call.id == call.call.id) {
                Some(seen) => {
                    if better_kind(&seen.kind, &call.kind) {
                        seen.kind = call.kind;
                    }
                }
                None => out.push(call),
            }
        }
        out.sort_by(|a, b| (a.call.offered_at, &a.call.id).cmp(&(b.call.offered_at, &b.call.id)));
        Ok(out)
    }

    /// The ratings a ticket's work received, oldest first.
    pub async fn ticket_ratings(&self, id: TicketId) -> Result<Vec<TicketRating>, StoreError> {
        dispatch!(self, ratings_of(id))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use TicketStatus::*;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, h, m, 0).unwrap()
    }

    fn line(h: u32, m: u32, from: Option<TicketStatus>, to: TicketStatus) -> StatusChange {
        StatusChange {
            at: at(h, m),
            from,
            to,
            actor: "1001".into(),
            note: String::new(),
        }
    }

    #[test]
    fn time_in_each_status() {
        let history = vec![
            line(10, 0, None, Registered),
            line(10, 3, Some(Registered), Registered), // a chain's note
            line(10, 7, Some(Registered), Accepted),
            line(10, 30, Some(Accepted), InProgress),
            line(11, 0, Some(InProgress), Done),
            line(11, 10, Some(Done), InProgress), // reopened
        ];
        let times = status_times(&history, at(12, 0));
        let secs: Vec<(TicketStatus, i64, bool)> = times
            .iter()
            .map(|t| (t.status, t.seconds, t.current))
            .collect();
        assert_eq!(
            secs,
            vec![
                (Registered, 7 * 60, false),
                (Accepted, 23 * 60, false),
                (InProgress, 30 * 60 + 50 * 60, true),
                (Done, 10 * 60, false),
            ]
        );
    }

    #[test]
    fn a_final_status_does_not_run() {
        let history = vec![
            line(10, 0, None, Registered),
            line(10, 5, Some(Registered), Cancelled),
        ];
        let times = status_times(&history, at(23, 0));
        assert_eq!(times[1].status, Cancelled);
        assert_eq!(times[1].seconds, 0);
        assert!(times[1].current);
    }
}

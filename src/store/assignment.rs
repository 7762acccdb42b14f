//! Executor assignment: who is sent to a ticket.
//!
//! Owns the weekly shift and absence model and the rule that turns the
//! responsibility matrix into an executor chain. Given a house (hence its house group
//! and city), a reason (hence its work type) and a UTC instant, the chain is: for each
//! matrix level 1..3, the first person of that level (in matrix order) who is employed,
//! does that work type, is on shift at that instant in the city's local time and is
//! not on vacation or sick leave on the day the shift started. A level with nobody on
//! duty is skipped and the next one moves up into its place, so the chain is always
//! numbered 1, 2, 3 from the top. A person with several shifts covering the instant
//! (yesterday's night shift and today's early one) is on duty if any of those shifts
//! started on a day they are not away. The responsible person, the manager and the
//! head are added whatever their shifts: they are who the chain escalates to. Whoever
//! of them is no longer employed or is away that day is passed over (and listed as
//! such), and the next one up takes the empty role ([`escalation`]).
//!
//! The rule itself ([`build_chain`], [`shift_starts`], [`escalation`]) is pure and
//! tested here; the store only loads its input. Operators never pick an executor by
//! hand.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, Timelike, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::backend::{dispatch, per_backend};
use super::ids::{EmployeeId, HouseId, ReasonId};
use super::{Store, StoreError, text_enum};
use crate::phone::PhoneNumber;

per_backend!("sql/assignment.rs");

const MINUTES_PER_DAY: u16 = 24 * 60;

/// One weekly shift in the city's local time. A shift whose end is not after its
/// start ends the next day (`20:00`–`08:00`); equal start and end is a 24-hour shift.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// ISO weekday the shift starts on: 1 = Monday ... 7 = Sunday.
    pub weekday: u8,
    /// Start, minutes after local midnight.
    pub starts_min: u16,
    /// End, minutes after local midnight (of the next day when not after the start).
    pub ends_min: u16,
}

impl Shift {
    /// A shift starting on `weekday` at `starts` and ending at `ends` (`"HH:MM"`).
    pub fn new(weekday: Weekday, starts: &str, ends: &str) -> Result<Self, StoreError> {
        let shift = Self {
            weekday: weekday.number_from_monday() as u8,
            starts_min: parse_hhmm(starts)?,
            ends_min: parse_hhmm(ends)?,
        };
        shift.validate()?;
        Ok(shift)
    }

    /// A shift starting on ISO weekday `weekday` (1 = Monday ... 7 = Sunday) at
    /// `starts` and ending at `ends` (`"HH:MM"`), as the API takes it.
    pub fn on_weekday(weekday: u8, starts: &str, ends: &str) -> Result<Self, StoreError> {
        let shift = Self {
            weekday,
            starts_min: parse_hhmm(starts)?,
            ends_min: parse_hhmm(ends)?,
        };
        shift.validate()?;
        Ok(shift)
    }

    /// The same hours on every day of the week.
    pub fn every_day(starts: &str, ends: &str) -> Result<Vec<Self>, StoreError> {
        let mut all = Vec::with_capacity(7);
        let mut day = Weekday::Mon;
        for _ in 0..7 {
            all.push(Self::new(day, starts, ends)?);
            day = day.succ();
        }
        Ok(all)
    }

    /// The same hours Monday to Friday.
    pub fn weekdays(starts: &str, ends: &str) -> Result<Vec<Self>, StoreError> {
        let mut all = Self::every_day(starts, ends)?;
        all.truncate(5);
        Ok(all)
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !(1..=7).contains(&self.weekday) {
            return Err(StoreError::invalid("weekday", "must be 1 (Monday) to 7"));
        }
        if self.starts_min >= MINUTES_PER_DAY || self.ends_min >= MINUTES_PER_DAY {
            return Err(StoreError::invalid(
                "shift",
                "times must be within 00:00-23:59",
            ));
        }
        Ok(())
    }

    fn length_min(&self) -> u16 {
        if self.ends_min > self.starts_min {
            self.ends_min - self.starts_min
        } else {
            MINUTES_PER_DAY - self.starts_min + self.ends_min
        }
    }
}

fn parse_hhmm(text: &str) -> Result<u16, StoreError> {
    let bad = || StoreError::invalid("shift", format!("`{text}` is not HH:MM"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let h: u16 = h.trim().parse().map_err(|_| bad())?;
    let m: u16 = m.trim().parse().map_err(|_| bad())?;
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

text_enum! {
    /// Why an employee is away.
    pub enum AbsenceKind {
        /// Vacation (отпуск).
        Vacation = "vacation",
        /// Sick leave (больничный).
        SickLeave = "sick_leave",
        /// Any other leave.
        Other = "other",
    }
}

/// A period away, in local dates, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absence {
    /// Vacation, sick leave, ...
    pub kind: AbsenceKind,
    /// First day away.
    pub starts_on: NaiveDate,
    /// Last day away.
    pub ends_on: NaiveDate,
}

impl Absence {
    fn covers(&self, day: NaiveDate) -> bool {
        self.starts_on <= day && day <= self.ends_on
    }
}

/// The local dates on which the shifts covering `local` started (the previous day for
/// the morning half of a night shift), whatever order `shifts` are in. Two shifts may
/// cover one instant: yesterday's night shift and today's early one.
pub fn shift_starts(shifts: &[Shift], local: NaiveDateTime) -> Vec<NaiveDate> {
    let today = local.date();
    let Some(yesterday) = today.pred_opt() else {
        return Vec::new();
    };
    let minute = (local.hour() * 60 + local.minute()) as u16;
    let iso = |d: NaiveDate| d.weekday().number_from_monday() as u8;
    let mut starts: Vec<NaiveDate> = shifts
        .iter()
        .filter_map(|s| {
            let end = s.starts_min + s.length_min();
            if s.weekday == iso(today) && minute >= s.starts_min && minute < end {
                Some(today)
            } else if s.weekday == iso(yesterday) && end > MINUTES_PER_DAY {
                (minute < end - MINUTES_PER_DAY).then_some(yesterday)
            } else {
                None
            }
        })
        .collect();
    starts.sort_unstable();
    starts.dedup();
    starts
}

/// If `local` falls inside one of `shifts`, the earliest local date such a shift
/// started on (see [`shift_starts`] for all of them).
pub fn shift_start(shifts: &[Shift], local: NaiveDateTime) -> Option<NaiveDate> {
    shift_starts(shifts, local).into_iter().next()
}

/// Whether someone with these shifts and absences is on duty at `local`: some shift
/// covering it started on a day that no absence covers.
pub fn on_duty(shifts: &[Shift], absences: &[Absence], local: NaiveDateTime) -> bool {
    shift_starts(shifts, local)
        .into_iter()
        .any(|day| !absences.iter().any(|a| a.covers(day)))
}

/// Whether any of `absences` covers the local date `day`.
pub fn absent_on(absences: &[Absence], day: NaiveDate) -> bool {
    absences.iter().any(|a| a.covers(day))
}

/// Someone the chain may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Employee id.
    pub id: EmployeeId,
    /// Name.
    pub name: String,
    /// Phones in dialling order.
    pub phones: Vec<PhoneNumber>,
}

/// One matrix entry considered for a chain.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The person.
    pub person: Person,
    /// Matrix level 1..3.
    pub level: u8,
    /// Still employed.
    pub active: bool,
    /// Does the work type in question.
    pub qualified: bool,
    /// Weekly shifts.
    pub shifts: Vec<Shift>,
    /// Vacations and sick leave.
    pub absences: Vec<Absence>,
}

/// One executor of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainExecutor {
    /// Position in the chain, 1..3, top first.
    pub level: u8,
    /// The matrix level the person was taken from (greater than `level` when a
    /// level above had nobody on duty).
    pub matrix_level: u8,
    /// The executor.
    pub employee: Person,
}

/// A role the chain escalates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EscalationRole {
    /// The responsible person.
    Responsible,
    /// The responsible manager.
    Manager,
    /// The head of the company.
    Head,
}

/// Why a person named in the matrix was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unavailability {
    /// No longer employed.
    Inactive,
    /// On vacation, sick leave or other leave that day.
    Absent,
}

/// An escalation person the matrix names who could not be used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PassedOver {
    /// The role the matrix gave them.
    pub role: EscalationRole,
    /// Employee id.
    pub id: EmployeeId,
    /// Name.
    pub name: String,
    /// Why.
    pub why: Unavailability,
}

/// Who a ticket goes to, and who it escalates to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecutorChain {
    /// The work type that decided it.
    pub work_type: String,
    /// Executors on duty, level 1 first; empty when nobody is.
    pub executors: Vec<ChainExecutor>,
    /// The responsible person: the matrix's, or, when they are inactive or away,
    /// the next one up who is there (the manager, then the head).
    pub responsible: Option<Person>,
    /// The responsible manager, or the head in their place; never the same person
    /// as `responsible`.
    pub manager: Option<Person>,
    /// The head of the company, when there and not already named above.
    pub head: Option<Person>,
    /// Escalation people the matrix names who were passed over, and why.
    pub passed_over: Vec<PassedOver>,
}

impl ExecutorChain {
    /// The first executor, who the ticket is assigned to.
    pub fn executor(&self) -> Option<&Person> {
        self.executors.first().map(|e| &e.employee)
    }
}

/// The executors on duty at `local`, one per matrix level, compacted to levels 1..n.
/// A person already in the chain is not taken again for a later level (a duty
/// engineer listed on levels 2 and 3 is called once). `candidates` must be in matrix
/// order (level, then preference).
pub fn build_chain(candidates: &[Candidate], local: NaiveDateTime) -> Vec<ChainExecutor> {
    let mut chain = Vec::with_capacity(3);
    for matrix_level in 1..=3u8 {
        let on_duty = candidates.iter().find(|c| {
            c.level == matrix_level
                && !chain
                    .iter()
                    .any(|e: &ChainExecutor| e.employee.id == c.person.id)
                && c.active
                && c.qualified
                && on_duty(&c.shifts, &c.absences, local)
        });
        if let Some(c) = on_duty {
            chain.push(ChainExecutor {
                level: chain.len() as u8 + 1,
                matrix_level,
                employee: c.person.clone(),
            });
        }
    }
    chain
}

/// An escalation person as the matrix names them, with what decides whether they
/// can be used.
#[derive(Debug, Clone)]
pub struct EscalationCandidate {
    /// The person.
    pub person: Person,
    /// Still employed.
    pub active: bool,
    /// Vacations and sick leave.
    pub absences: Vec<Absence>,
}

/// Fills the escalation roles from the matrix's responsible, manager and head on the
/// local date `day`: whoever is inactive or away is passed over, and a role left
/// empty is taken by the next person up who is there; nobody fills two roles.
pub fn escalation(
    named: [Option<EscalationCandidate>; 3],
    day: NaiveDate,
) -> ([Option<Person>; 3], Vec<PassedOver>) {
    const ROLES: [EscalationRole; 3] = [
        EscalationRole::Responsible,
        EscalationRole::Manager,
        EscalationRole::Head,
    ];
    let mut passed_over = Vec::new();
    let mut available: [Option<Person>; 3] = [None, None, None];
    for ((role, candidate), slot) in ROLES.into_iter().zip(named).zip(available.iter_mut()) {
        let Some(c) = candidate else { continue };
        let why = if !c.active {
            Some(Unavailability::Inactive)
        } else if absent_on(&c.absences, day) {
            Some(Unavailability::Absent)
        } else {
            None
        };
        match why {
            Some(why) => {
                if !passed_over.iter().any(|p: &PassedOver| p.id == c.person.id) {
                    passed_over.push(PassedOver {
                        role,
                        id: c.person.id,
                        name: c.person.name.clone(),
                        why,
                    });
                }
            }
            None => *slot = Some(c.person),
        }
    }
    // Each role takes the first available person at or above it not yet used.
    let mut roles: [Option<Person>; 3] = [None, None, None];
    let mut used: Vec<EmployeeId> = Vec::new();
    for (i, role) in roles.iter_mut().enumerate() {
        let pick = available
            .iter()
            .skip(i)
            .flatten()
            .find(|p| !used.contains(&p.id))
            .cloned();
        if let Some(p) = &pick {
            used.push(p.id);
        }
        *role = pick;
    }
    (roles, passed_over)
}

/// What [`Store::executor_chain`] loads: the matrix cell's candidates and the
/// escalation people, with the city's zone to evaluate shifts in.
#[derive(Debug, Clone)]
pub(crate) struct MatrixCell {
    pub(crate) time_zone: chrono_tz::Tz,
    pub(crate) work_type: String,
    pub(crate) candidates: Vec<Candidate>,
    pub(crate) responsible: Option<EscalationCandidate>,
    pub(crate) manager: Option<EscalationCandidate>,
    pub(crate) head: Option<EscalationCandidate>,
}

impl MatrixCell {
    pub(crate) fn chain_at(self, at: DateTime<Utc>) -> ExecutorChain {
        let local = at.with_timezone(&self.time_zone).naive_local();
        let ([responsible, manager, head], passed_over) =
            escalation([self.responsible, self.manager, self.head], local.date());
        ExecutorChain {
            executors: build_chain(&self.candidates, local),
            work_type: self.work_type,
            responsible,
            manager,
            head,
            passed_over,
        }
    }
}

impl Store {
    /// The executor chain for a ticket of `tenant` at `house` for `reason`, at `at`.
    /// An empty chain (no matrix cell, nobody on duty) is not an error: the ticket is
    /// still registered and escalates to the responsible person.
    pub async fn executor_chain(
        &self,
        tenant: &str,
        house: HouseId,
        reason: ReasonId,
        at: DateTime<Utc>,
    ) -> Result<ExecutorChain, StoreError> {
        let cell = dispatch!(self, matrix_cell(tenant, house, reason))?;
        Ok(cell.chain_at(at))
    }
}

/// The deadline of a ticket registered at `at` for a reason with this many minutes.
pub(crate) fn deadline(at: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
    at + Duration::minutes(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(day: u32, hh: u32, mm: u32) -> NaiveDateTime {
        // 2026-11-16 is a Monday.
        NaiveDate::from_ymd_opt(2026, 11, day)
            .unwrap()
            .and_hms_opt(hh, mm, 0)
            .unwrap()
    }

    fn person(id: i64) -> Person {
        Person {
            id: EmployeeId(id),
            name: format!("p{id}"),
            phones: vec![],
        }
    }

    fn candidate(id: i64, level: u8, shifts: Vec<Shift>) -> Candidate {
        Candidate {
            person: person(id),
            level,
            active: true,
            qualified: true,
            shifts,
            absences: vec![],
        }
    }

    #[test]
    fn day_shift_covers_its_hours_only() {
        let s = [Shift::new(Weekday::Mon, "08:00", "17:00").unwrap()];
        assert_eq!(
            shift_start(&s, local(16, 8, 0)),
            Some(local(16, 0, 0).date())
        );
        assert_eq!(
            shift_start(&s, local(16, 16, 59)),
            Some(local(16, 0, 0).date())
        );
        assert_eq!(shift_start(&s, local(16, 17, 0)), None);
        assert_eq!(shift_start(&s, local(16, 7, 59)), None);
        assert_eq!(shift_start(&s, local(17, 9, 0)), None, "Tuesday");
    }

    #[test]
    fn night_shift_crosses_midnight_into_the_next_weekday() {
        let s = [Shift::new(Weekday::Sun, "20:00", "08:00").unwrap()];
        // Sunday 2026-11-22 22:00 and Monday 2026-11-23 07:59 belong to Sunday's shift.
        assert_eq!(
            shift_start(&s, local(22, 22, 0)),
            Some(local(22, 0, 0).date())
        );
        assert_eq!(
            shift_start(&s, local(23, 7, 59)),
            Some(local(22, 0, 0).date())
        );
        assert_eq!(shift_start(&s, local(23, 8, 0)), None);
        assert_eq!(shift_start(&s, local(22, 19, 59)), None);
    }

    #[test]
    fn equal_start_and_end_is_a_24_hour_shift() {
        let s = [Shift::new(Weekday::Wed, "09:00", "09:00").unwrap()];
        assert!(shift_start(&s, local(18, 9, 0)).is_some());
        assert!(shift_start(&s, local(19, 8, 59)).is_some());
        assert!(shift_start(&s, local(19, 9, 0)).is_none());
    }

    #[test]
    fn absence_is_judged_on_the_day_the_shift_started() {
        let s = [Shift::new(Weekday::Mon, "20:00", "08:00").unwrap()];
        let from_tuesday = [Absence {
            kind: AbsenceKind::Vacation,
            starts_on: local(17, 0, 0).date(),
            ends_on: local(30, 0, 0).date(),
        }];
        // Monday's night shift is worked to the end although the vacation starts Tuesday.
        assert!(on_duty(&s, &from_tuesday, local(17, 7, 0)));
        let monday = [Absence {
            kind: AbsenceKind::SickLeave,
            starts_on: local(16, 0, 0).date(),
            ends_on: local(16, 0, 0).date(),
        }];
        assert!(!on_duty(&s, &monday, local(16, 21, 0)));
        assert!(!on_duty(&s, &monday, local(17, 7, 0)));
    }

    #[test]
    fn a_level_with_nobody_on_duty_is_filled_by_the_next() {
        let day = Shift::every_day("08:00", "20:00").unwrap();
        let night = Shift::every_day("20:00", "08:00").unwrap();
        let candidates = vec![
            candidate(1, 1, day.clone()),
            candidate(2, 1, night.clone()),
            candidate(3, 2, day.clone()),
            candidate(4, 3, Shift::every_day("00:00", "00:00").unwrap()),
        ];
        let at_night = build_chain(&candidates, local(18, 23, 0));
        let ids: Vec<_> = at_night
            .iter()
            .map(|e| (e.level, e.matrix_level, e.employee.id.0))
            .collect();
        assert_eq!(ids, vec![(1, 1, 2), (2, 3, 4)]);
        let by_day = build_chain(&candidates, local(18, 12, 0));
        let ids: Vec<_> = by_day
            .iter()
            .map(|e| (e.level, e.matrix_level, e.employee.id.0))
            .collect();
        assert_eq!(ids, vec![(1, 1, 1), (2, 2, 3), (3, 3, 4)]);
    }

    #[test]
    fn nobody_is_in_the_chain_twice() {
        let always = Shift::every_day("00:00", "00:00").unwrap();
        let candidates = vec![
            candidate(1, 1, always.clone()),
            candidate(2, 2, always.clone()),
            candidate(2, 3, always.clone()),
            candidate(3, 3, always),
        ];
        let chain = build_chain(&candidates, local(18, 3, 0));
        let ids: Vec<_> = chain.iter().map(|e| e.employee.id.0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn inactive_or_unqualified_people_are_skipped() {
        let always = Shift::every_day("00:00", "00:00").unwrap();
        let mut a = candidate(1, 1, always.clone());
        a.active = false;
        let mut b = candidate(2, 1, always.clone());
        b.qualified = false;
        let c = candidate(3, 1, always);
        let chain = build_chain(&[a, b, c], local(18, 12, 0));
        assert_eq!(chain.len(), 1);
        assert_eq!(chain[0].employee.id, EmployeeId(3));
    }

    #[test]
    fn leave_is_judged_on_every_covering_shift_whatever_their_order() {
        // Monday's night shift runs into Tuesday morning, where Tuesday's early shift
        // also starts. Leave on Monday only: Tuesday's shift still counts.
        let night = Shift::new(Weekday::Mon, "20:00", "08:00").unwrap();
        let early = Shift::new(Weekday::Tue, "06:00", "14:00").unwrap();
        let monday_off = [Absence {
            kind: AbsenceKind::Other,
            starts_on: local(16, 0, 0).date(),
            ends_on: local(16, 0, 0).date(),
        }];
        for shifts in [[night, early], [early, night]] {
            assert_eq!(
                shift_starts(&shifts, local(17, 7, 0)),
                vec![local(16, 0, 0).date(), local(17, 0, 0).date()]
            );
            assert!(on_duty(&shifts, &monday_off, local(17, 7, 0)), "{shifts:?}");
            // Before 06:00 only Monday's shift covers: on leave.
            assert!(
                !on_duty(&shifts, &monday_off, local(17, 5, 0)),
                "{shifts:?}"
            );
        }
        let tuesday_off = [Absence {
            starts_on: local(17, 0, 0).date(),
            ends_on: local(17, 0, 0).date(),
            ..monday_off[0]
        }];
        for shifts in [[night, early], [early, night]] {
            assert!(
                on_duty(&shifts, &tuesday_off, local(17, 7, 0)),
                "{shifts:?}"
            );
        }
    }

    fn named(id: i64, active: bool, absent: bool) -> Option<EscalationCandidate> {
        let day = local(17, 0, 0).date();
        Some(EscalationCandidate {
            person: person(id),
            active,
            absences: if absent {
                vec![Absence {
                    kind: AbsenceKind::Vacation,
                    starts_on: day,
                    ends_on: day,
                }]
            } else {
                vec![]
            },
        })
    }

    fn ids(roles: &[Option<Person>; 3]) -> [Option<i64>; 3] {
        [0, 1, 2].map(|i| roles[i].as_ref().map(|p| p.id.0))
    }

    #[test]
    fn escalation_passes_over_the_inactive_and_the_absent() {
        let day = local(17, 0, 0).date();
        let (roles, passed) = escalation(
            [
                named(1, true, false),
                named(2, true, false),
                named(3, true, false),
            ],
            day,
        );
        assert_eq!(ids(&roles), [Some(1), Some(2), Some(3)]);
        assert!(passed.is_empty());
        // The responsible person is on vacation: the manager is responsible, the head
        // manages, and nobody is named twice.
        let (roles, passed) = escalation(
            [
                named(1, true, true),
                named(2, true, false),
                named(3, true, false),
            ],
            day,
        );
        assert_eq!(ids(&roles), [Some(2), Some(3), None]);
        assert_eq!(passed.len(), 1);
        assert_eq!((passed[0].id.0, passed[0].why), (1, Unavailability::Absent));
        assert_eq!(passed[0].role, EscalationRole::Responsible);
        // The manager has left: the head takes the manager's place.
        let (roles, passed) = escalation(
            [
                named(1, true, false),
                named(2, false, false),
                named(3, true, false),
            ],
            day,
        );
        assert_eq!(ids(&roles), [Some(1), Some(3), None]);
        assert_eq!(passed[0].why, Unavailability::Inactive);
        // The absence ended yesterday: back on the chain.
        let (roles, _) = escalation(
            [
                named(1, true, true),
                named(2, true, false),
                named(3, true, false),
            ],
            local(18, 0, 0).date(),
        );
        assert_eq!(ids(&roles), [Some(1), Some(2), Some(3)]);
        // One person in two roles is used once.
        let (roles, _) = escalation([named(1, true, false), named(1, true, false), None], day);
        assert_eq!(ids(&roles), [Some(1), None, None]);
        // Everyone away: nobody.
        let (roles, passed) = escalation(
            [
                named(1, false, false),
                named(2, true, true),
                named(3, true, true),
            ],
            day,
        );
        assert_eq!(ids(&roles), [None, None, None]);
        assert_eq!(passed.len(), 3);
    }

    #[test]
    fn bad_shift_text_is_an_error() {
        assert!(Shift::new(Weekday::Mon, "25:00", "08:00").is_err());
        assert!(Shift::new(Weekday::Mon, "8", "08:00").is_err());
    }
}

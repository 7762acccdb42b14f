//! The go-live check of one tenant: what must be in place before its first call,
//! each missing item in words a tenant admin can act on.
//!
//! - numbers: the configuration has a `tenant` number naming it;
//! - houses: the store has its houses;
//! - matrix: every house group has a cell with someone on each of the three levels
//!   for every work type of the emergency reasons its operators may pick;
//! - duty: at every hour of the week some active employee is on shift;
//! - greeting: each of its numbers has a greeting prompt, present under the prompts
//!   directory.
//!
//! Pure over the configuration and what the store says ([`TenantFacts`]).

use chrono::{Duration, NaiveDate, Timelike};

use super::admin::{Check, Readiness};
use crate::config::{Config, NumberKind};
use crate::store::admin::TenantFacts;
use crate::store::assignment::shift_start;

const DAYS: [&str; 7] = ["пн", "вт", "ср", "чт", "пт", "сб", "вс"];

fn check(name: &'static str, missing: Vec<String>) -> Check {
    Check {
        check: name,
        ok: missing.is_empty(),
        missing,
    }
}

/// The hours of the week nobody is on shift, as ranges (`сб 00:00–08:00`).
pub(crate) fn uncovered_hours(facts: &TenantFacts) -> Vec<String> {
    // A reference week: 2026-11-16 is a Monday.
    let Some(monday) = NaiveDate::from_ymd_opt(2026, 11, 16).and_then(|d| d.and_hms_opt(0, 0, 0))
    else {
        return Vec::new();
    };
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for hour in 0..7 * 24 {
        let at = monday + Duration::hours(hour as i64);
        if shift_start(&facts.shifts, at).is_none() {
            match ranges.last_mut() {
                Some((_, end)) if *end == hour => *end = hour + 1,
                _ => ranges.push((hour, hour + 1)),
            }
        }
    }
    if ranges == [(0, 7 * 24)] {
        return vec!["nobody on shift at any hour of the week".to_owned()];
    }
    ranges
        .into_iter()
        .map(|(from, to)| {
            let start = monday + Duration::hours(from as i64);
            let end = monday + Duration::hours(to as i64);
            let day = |h: usize| DAYS.get((h / 24) % 7).copied().unwrap_or("");
            format!(
                "nobody on shift {} {:02}:00 – {} {:02}:00",
                day(from),
                start.hour(),
                day(to),
                end.hour()
            )
        })
        .collect()
}

/// Runs every check.
pub(crate) fn check_tenant(config: &Config, tenant: &str, facts: &TenantFacts) -> Readiness {
    let numbers: Vec<_> = config
        .numbers
        .iter()
        .filter(|n| n.tenant.as_deref() == Some(tenant))
        .collect();
    let mut missing_numbers = Vec::new();
    if !numbers.iter().any(|n| n.kind == NumberKind::Tenant) {
        missing_numbers.push(format!(
            "no [[number]] of kind \"tenant\" names tenant \"{tenant}\" in {}",
            config.source.display()
        ));
    }
    let houses = if facts.houses > 0 {
        Vec::new()
    } else {
        vec!["no houses: import the questionnaire's «Дома» sheet".to_owned()]
    };
    let mut matrix = Vec::new();
    if facts.emergency_work_types.is_empty() {
        matrix.push("no emergency reasons in the catalogue".to_owned());
    }
    if facts.groups.is_empty() {
        matrix.push("no house groups".to_owned());
    }
    for group in &facts.groups {
        for work_type in &facts.emergency_work_types {
            match facts
                .cells
                .iter()
                .find(|c| c.house_group == *group && c.work_type == *work_type)
            {
                None => matrix.push(format!(
                    "house group {group}, {work_type}: no one responsible"
                )),
                Some(cell) => {
                    for (level, people) in cell.levels.iter().enumerate() {
                        if people.is_empty() {
                            matrix.push(format!(
                                "house group {group}, {work_type}: level {} is empty",
                                level + 1
                            ));
                        }
                    }
                }
            }
        }
    }
    let duty = uncovered_hours(facts);
    let mut greeting = Vec::new();
    for n in numbers.iter().filter(|n| n.kind == NumberKind::Tenant) {
        match &n.greeting {
            None => greeting.push(format!("number {} has no greeting prompt", n.number)),
            Some(prompt) if !config.media.prompts_dir.join(prompt).is_file() => {
                greeting.push(format!(
                    "number {}: greeting {prompt} is not under {}",
                    n.number,
                    config.media.prompts_dir.display()
                ))
            }
            Some(_) => {}
        }
    }
    let checks = vec![
        check("numbers", missing_numbers),
        check("houses", houses),
        check("matrix", matrix),
        check("duty", duty),
        check("greeting", greeting),
    ];
    Readiness {
        tenant: tenant.to_owned(),
        ready: checks.iter().all(|c| c.ok),
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::assignment::Shift;

    #[test]
    fn uncovered_hours_come_as_ranges() {
        let mut facts = TenantFacts {
            shifts: Shift::weekdays("08:00", "20:00").unwrap(),
            ..TenantFacts::default()
        };
        let gaps = uncovered_hours(&facts);
        assert_eq!(gaps[0], "nobody on shift пн 00:00 – пн 08:00");
        assert_eq!(gaps.last().unwrap(), "nobody on shift пт 20:00 – пн 00:00");
        facts.shifts = Shift::every_day("00:00", "00:00").unwrap();
        assert!(uncovered_hours(&facts).is_empty());
    }
}

//! Executor assignment through the store: shifts crossing midnight, vacations, a
//! missing level, and two cities in different time zones, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::{NaiveDate, TimeZone, Utc, Weekday};
use dispatchline::store::assignment::{Absence, AbsenceKind, Shift};
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::tickets::{Channel, NewTicket};
use dispatchline::store::{
    Category, EmployeeId, EscalationRole, ExecutorChain, Store, Unavailability,
};
use store_world::{build, tuesday_utc};

fn levels(chain: &ExecutorChain) -> Vec<(u8, u8, EmployeeId)> {
    chain
        .executors
        .iter()
        .map(|e| (e.level, e.matrix_level, e.employee.id))
        .collect()
}

async fn night_shift_crossing_midnight(store: Store) {
    let w = build(&store).await;
    // 21:00 UTC Monday = 02:00 Tuesday in Екатеринбург: Monday's night shift.
    let at = tuesday_utc(0, 0) - chrono::Duration::hours(3);
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, at)
        .await
        .unwrap();
    // The master (weekdays 08-17) is off: the engineer moves up to level 2.
    assert_eq!(levels(&chain), vec![(1, 1, w.night), (2, 3, w.engineer)]);
    assert_eq!(chain.responsible.as_ref().map(|p| p.id), Some(w.master));
    assert_eq!(chain.manager.as_ref().map(|p| p.id), Some(w.engineer));
    assert_eq!(chain.head.as_ref().map(|p| p.id), Some(w.head));
    assert_eq!(
        chain.executors[0].employee.phones[0].as_str(),
        "+79121000002"
    );
    // 05:00 UTC Tuesday = 10:00 local: the day shift, all three levels.
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, tuesday_utc(5, 0))
        .await
        .unwrap();
    assert_eq!(
        levels(&chain),
        vec![(1, 1, w.day), (2, 2, w.master), (3, 3, w.engineer)]
    );
}

async fn vacation_takes_a_person_off_the_chain(store: Store) {
    let w = build(&store).await;
    let tuesday = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
    store
        .add_absence(
            w.day,
            &Absence {
                kind: AbsenceKind::Vacation,
                starts_on: tuesday,
                ends_on: tuesday,
            },
        )
        .await
        .unwrap();
    // 10:00 local: the day plumber is on vacation and the night one is off, so level 1
    // has nobody: the master and the engineer move up.
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, tuesday_utc(5, 0))
        .await
        .unwrap();
    assert_eq!(levels(&chain), vec![(1, 2, w.master), (2, 3, w.engineer)]);
    // Sick leave of the master too: only the engineer is left.
    store
        .add_absence(
            w.master,
            &Absence {
                kind: AbsenceKind::SickLeave,
                starts_on: tuesday,
                ends_on: tuesday,
            },
        )
        .await
        .unwrap();
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, tuesday_utc(5, 0))
        .await
        .unwrap();
    assert_eq!(levels(&chain), vec![(1, 3, w.engineer)]);
    // Wednesday the vacation is over.
    let wednesday = tuesday_utc(5, 0) + chrono::Duration::days(1);
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, wednesday)
        .await
        .unwrap();
    assert_eq!(chain.executors[0].employee.id, w.day);
}

async fn missing_level_and_missing_cell(store: Store) {
    let w = build(&store).await;
    // Intercom: level 2 is empty in the matrix; level 3 fills it.
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.intercom, tuesday_utc(5, 0))
        .await
        .unwrap();
    assert_eq!(levels(&chain), vec![(1, 1, w.master), (2, 3, w.engineer)]);
    // Roof: no matrix cell at all. The ticket is still registered, unassigned.
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.roof, tuesday_utc(5, 0))
        .await
        .unwrap();
    assert!(chain.executors.is_empty() && chain.responsible.is_none());
    let registered = store
        .create_ticket(&ticket("etalon", w.ekb_house, w.roof), tuesday_utc(5, 0))
        .await
        .unwrap();
    assert_eq!(registered.ticket.executor_id, None);
    assert_eq!(registered.ticket.number, "1001");
}

async fn cities_in_different_zones(store: Store) {
    let w = build(&store).await;
    // 04:30 UTC is 09:30 in Екатеринбург (day shift) but 07:30 in Москва (night).
    let at = tuesday_utc(4, 30);
    let ekb = store
        .executor_chain("etalon", w.ekb_house, w.flooding, at)
        .await
        .unwrap();
    let msk = store
        .executor_chain("stolica", w.msk_house, w.flooding, at)
        .await
        .unwrap();
    assert_eq!(ekb.executors[0].employee.id, w.day);
    assert_eq!(msk.executors[0].employee.id, w.msk_night);
    // 05:30 UTC is 08:30 in Москва: now the day plumber there too.
    let msk = store
        .executor_chain("stolica", w.msk_house, w.flooding, tuesday_utc(5, 30))
        .await
        .unwrap();
    assert_eq!(msk.executors[0].employee.id, w.msk_day);
}

async fn the_chain_is_stored_with_the_ticket(store: Store) {
    let w = build(&store).await;
    let registered = store
        .create_ticket(
            &ticket("etalon", w.ekb_house, w.flooding),
            tuesday_utc(5, 0),
        )
        .await
        .unwrap();
    assert_eq!(registered.ticket.executor_id, Some(w.day));
    assert_eq!(registered.ticket.responsible_id, Some(w.master));
    assert_eq!(
        registered.ticket.deadline_at,
        tuesday_utc(6, 0),
        "flooding: 60 minutes"
    );
    let detail = store.ticket(registered.ticket.id).await.unwrap().unwrap();
    let stored: Vec<_> = detail
        .chain
        .iter()
        .map(|l| (l.level, l.matrix_level, l.employee_id))
        .collect();
    assert_eq!(
        stored,
        vec![(1, 1, w.day), (2, 2, w.master), (3, 3, w.engineer)]
    );
    // A person leaving later does not rewrite the stored chain, but new tickets skip them.
    store.set_employee_active(w.day, false).await.unwrap();
    let later = store
        .create_ticket(
            &ticket("etalon", w.ekb_house, w.flooding),
            tuesday_utc(5, 1),
        )
        .await
        .unwrap();
    assert_eq!(later.ticket.executor_id, Some(w.master));
    assert_eq!(later.ticket.number, "1002");
}

async fn other_tenants_houses_and_reasons_are_refused(store: Store) {
    let w = build(&store).await;
    let err = store
        .executor_chain("etalon", w.msk_house, w.flooding, tuesday_utc(5, 0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("house"), "{err}");
}

fn ticket(
    tenant: &str,
    house: dispatchline::store::HouseId,
    reason: dispatchline::store::ReasonId,
) -> NewTicket {
    NewTicket {
        tenant: tenant.to_owned(),
        house_id: house,
        apartment: Some("12".into()),
        reason_id: reason,
        description: "течёт с потолка".into(),
        source: Channel::Phone,
        labels: vec![],
        caller_phone: None,
        call_id: None,
        actor: "test".into(),
    }
}

async fn escalation_skips_the_inactive_and_the_absent(store: Store) {
    let w = build(&store).await;
    let at = tuesday_utc(5, 0);
    let tuesday = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
    // The responsible master is on sick leave today: the manager (engineer) is
    // responsible and the head manages.
    store
        .add_absence(
            w.master,
            &Absence {
                kind: AbsenceKind::SickLeave,
                starts_on: tuesday,
                ends_on: tuesday,
            },
        )
        .await
        .unwrap();
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, at)
        .await
        .unwrap();
    let id = |p: &Option<dispatchline::store::Person>| p.as_ref().map(|p| p.id);
    assert_eq!(id(&chain.responsible), Some(w.engineer));
    assert_eq!(id(&chain.manager), Some(w.head));
    assert_eq!(id(&chain.head), None);
    assert_eq!(chain.passed_over.len(), 1);
    assert_eq!(chain.passed_over[0].id, w.master);
    assert_eq!(chain.passed_over[0].why, Unavailability::Absent);
    assert_eq!(chain.passed_over[0].role, EscalationRole::Responsible);
    // The ticket records who is responsible now.
    let ticket = store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.ekb_house,
                apartment: None,
                reason_id: w.flooding,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "test".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket;
    assert_eq!(ticket.responsible_id, Some(w.engineer));
    // The engineer leaves the company: the head is all that is left.
    store.set_employee_active(w.engineer, false).await.unwrap();
    let chain = store
        .executor_chain("etalon", w.ekb_house, w.flooding, at)
        .await
        .unwrap();
    assert_eq!(id(&chain.responsible), Some(w.head));
    assert_eq!((id(&chain.manager), id(&chain.head)), (None, None));
    assert_eq!(chain.passed_over.len(), 2);
    assert!(
        chain
            .passed_over
            .iter()
            .any(|p| p.id == w.engineer && p.why == Unavailability::Inactive)
    );
    // Tomorrow the master is back.
    let chain = store
        .executor_chain(
            "etalon",
            w.ekb_house,
            w.flooding,
            at + chrono::Duration::days(1),
        )
        .await
        .unwrap();
    assert_eq!(id(&chain.responsible), Some(w.master));
}

async fn shifts_across_daylight_saving_changes(store: Store) {
    // A city on Central European time: clocks go forward at 02:00 on 2026-03-29 and
    // back at 03:00 on 2026-10-25. Shifts are in local wall-clock time.
    store
        .create_city("ber", "Berlin", "Europe/Berlin")
        .await
        .unwrap();
    store
        .create_work_type("plumbing", "Сантехника")
        .await
        .unwrap();
    store
        .create_tenant("spree", "Hausverwaltung Spree", "ber")
        .await
        .unwrap();
    store
        .create_house_group("spree", "mitte", "Mitte")
        .await
        .unwrap();
    let house = store
        .create_house("spree", Some("mitte"), "Invalidenstraße 1", 5, 1)
        .await
        .unwrap();
    let reason = store
        .create_reason(&NewReason {
            tenant: None,
            code: "leak".into(),
            category: Category::Emergency,
            title: "Leak".into(),
            work_type: "plumbing".into(),
            deadline_minutes: 60,
            operator_text: "Coming".into(),
            keywords: String::new(),
        })
        .await
        .unwrap();
    let person = |name: &str, phone: &str, shifts: Vec<Shift>| NewEmployee {
        tenant: Some("spree".into()),
        supplier: None,
        name: name.into(),
        position: String::new(),
        phones: vec![dispatchline::phone::PhoneNumber::parse(phone).unwrap()],
        work_types: vec!["plumbing".into()],
        shifts,
        absences: vec![],
    };
    // Saturday night 22:00 to Sunday 06:00, and Sunday's day shift from 06:00.
    let night = store
        .create_employee(&person(
            "Nacht",
            "+4930000001",
            vec![Shift::new(Weekday::Sat, "22:00", "06:00").unwrap()],
        ))
        .await
        .unwrap();
    let day = store
        .create_employee(&person(
            "Tag",
            "+4930000002",
            vec![Shift::new(Weekday::Sun, "06:00", "22:00").unwrap()],
        ))
        .await
        .unwrap();
    store
        .set_responsibility(&Responsibility {
            tenant: "spree".into(),
            house_group: "mitte".into(),
            work_type: "plumbing".into(),
            levels: [vec![night, day], vec![], vec![]],
            responsible: None,
            manager: None,
            head: None,
        })
        .await
        .unwrap();
    let who = |at: chrono::DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .executor_chain("spree", house, reason, at)
                .await
                .unwrap()
                .executors
                .first()
                .map(|e| e.employee.id)
        }
    };
    let utc = |y, m, d, h, min| Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap();
    // Spring forward: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST (02:xx does
    // not exist). The night shift still ends at 06:00 local, 04:00 UTC.
    assert_eq!(who(utc(2026, 3, 29, 0, 59)).await, Some(night));
    assert_eq!(who(utc(2026, 3, 29, 1, 0)).await, Some(night));
    assert_eq!(who(utc(2026, 3, 29, 3, 59)).await, Some(night));
    assert_eq!(who(utc(2026, 3, 29, 4, 0)).await, Some(day), "06:00 CEST");
    // Fall back: 00:30 UTC is 02:30 CEST, 01:30 UTC is 02:30 CET again; both are
    // the night shift, which now ends at 06:00 CET = 05:00 UTC.
    assert_eq!(who(utc(2026, 10, 25, 0, 30)).await, Some(night));
    assert_eq!(who(utc(2026, 10, 25, 1, 30)).await, Some(night));
    assert_eq!(
        who(utc(2026, 10, 25, 4, 59)).await,
        Some(night),
        "05:59 CET"
    );
    assert_eq!(who(utc(2026, 10, 25, 5, 0)).await, Some(day), "06:00 CET");
    // Sunday's day shift ends at 22:00 local either side of the change.
    assert_eq!(who(utc(2026, 3, 29, 19, 59)).await, Some(day), "21:59 CEST");
    assert_eq!(who(utc(2026, 3, 29, 20, 0)).await, None, "22:00 CEST");
    assert_eq!(who(utc(2026, 10, 25, 20, 59)).await, Some(day), "21:59 CET");
    assert_eq!(who(utc(2026, 10, 25, 21, 0)).await, None, "22:00 CET");
}

on_both_backends!(
    night_shift_crossing_midnight,
    vacation_takes_a_person_off_the_chain,
    missing_level_and_missing_cell,
    cities_in_different_zones,
    the_chain_is_stored_with_the_ticket,
    other_tenants_houses_and_reasons_are_refused,
    escalation_skips_the_inactive_and_the_absent,
    shifts_across_daylight_saving_changes,
);

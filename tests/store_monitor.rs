//! The monitor of open tickets in the store, on SQLite and PostgreSQL: open,
//! unassigned, due soon and overdue counts, by category, work type and executor,
//! the three lists, tenant scope and filters, against hand-computed figures.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::{DateTime, Utc};
use dispatchline::store::monitor::MonitorFilter;
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    HouseId, NewTicket, ReasonId, StatusUpdate, Store, TenantScope, Ticket, TicketStatus,
};
use store_world::{build, tuesday_utc};

async fn ticket(
    store: &Store,
    tenant: &str,
    house: HouseId,
    reason: ReasonId,
    at: DateTime<Utc>,
) -> Ticket {
    store
        .create_ticket(
            &NewTicket {
                tenant: tenant.into(),
                house_id: house,
                apartment: None,
                reason_id: reason,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "1001".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket
}

async fn move_to(store: &Store, t: &Ticket, to: TicketStatus, at: DateTime<Utc>) {
    store
        .change_status(
            t.id,
            &StatusUpdate {
                to,
                actor: "1001".into(),
                note: String::new(),
                expected_version: None,
            },
            at,
        )
        .await
        .unwrap();
}

async fn open_due_soon_and_overdue(store: Store) {
    let w = build(&store).await;
    // Emergency plumbing has 60 minutes; the day plumber is on shift (Ekaterinburg
    // afternoon).
    let t1 = ticket(
        &store,
        "etalon",
        w.ekb_house,
        w.flooding,
        tuesday_utc(10, 0),
    )
    .await;
    let t2 = ticket(
        &store,
        "etalon",
        w.ekb_house2,
        w.flooding,
        tuesday_utc(10, 30),
    )
    .await;
    let t3 = ticket(&store, "etalon", w.ekb_house, w.flooding, tuesday_utc(9, 0)).await;
    let t4 = ticket(&store, "stolica", w.msk_house, w.roof, tuesday_utc(10, 0)).await;
    let t5 = ticket(&store, "etalon", w.ekb_house, w.flooding, tuesday_utc(8, 0)).await;
    move_to(&store, &t3, TicketStatus::Accepted, tuesday_utc(9, 5)).await;
    move_to(&store, &t5, TicketStatus::Done, tuesday_utc(8, 30)).await;
    assert_eq!(t1.deadline_at, tuesday_utc(11, 0));
    assert_eq!(t1.executor_id, Some(w.day));
    assert_eq!(t3.executor_id, Some(w.day));
    let now = tuesday_utc(11, 10);
    let m = store
        .monitor(&TenantScope::All, &MonitorFilter::default(), now)
        .await
        .unwrap();
    let unassigned = i64::from(t4.executor_id.is_none());
    assert_eq!(
        (m.open, m.overdue, m.due_soon, m.unassigned),
        (4, 2, 1, unassigned)
    );
    let ids = |ts: &[Ticket]| ts.iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(&m.overdue_tickets), vec![t3.id, t1.id]);
    assert_eq!(ids(&m.due_soon_tickets), vec![t2.id]);
    assert_eq!(ids(&m.open_tickets), vec![t4.id]);
    let cat: Vec<(&str, i64, i64)> = m
        .by_category
        .iter()
        .map(|g| (g.key.as_str(), g.open, g.overdue))
        .collect();
    assert_eq!(cat, vec![("emergency", 4, 2)]);
    let wt: Vec<(&str, i64, i64)> = m
        .by_work_type
        .iter()
        .map(|g| (g.key.as_str(), g.open, g.overdue))
        .collect();
    assert_eq!(wt, vec![("plumbing", 3, 2), ("roof", 1, 0)]);
    let day = m
        .by_executor
        .iter()
        .find(|e| e.executor_id == w.day)
        .unwrap();
    assert_eq!((day.open, day.overdue, day.not_accepted), (3, 2, 2));

    // Scope and filters.
    let etalon = TenantScope::Only(vec!["etalon".into()]);
    let m = store
        .monitor(&etalon, &MonitorFilter::default(), now)
        .await
        .unwrap();
    assert_eq!((m.open, m.overdue), (3, 2));
    let roof = MonitorFilter {
        work_type: Some("roof".into()),
        ..MonitorFilter::default()
    };
    let m = store.monitor(&TenantScope::All, &roof, now).await.unwrap();
    assert_eq!(m.open, 1);
    let one_house = MonitorFilter {
        house_id: Some(w.ekb_house2),
        soon_minutes: Some(10),
        ..MonitorFilter::default()
    };
    let m = store
        .monitor(&TenantScope::All, &one_house, now)
        .await
        .unwrap();
    assert_eq!((m.open, m.due_soon, m.open_tickets.len()), (1, 0, 1));
    let period = MonitorFilter {
        from: Some(tuesday_utc(10, 0)),
        to: Some(tuesday_utc(10, 30)),
        ..MonitorFilter::default()
    };
    let m = store
        .monitor(&TenantScope::All, &period, now)
        .await
        .unwrap();
    assert_eq!(m.open, 2, "t1 and t4, registered in [10:00, 10:30)");
    // Closed tickets never show.
    assert!(!ids(&m.overdue_tickets).contains(&t5.id));
}

on_both_backends!(open_due_soon_and_overdue);

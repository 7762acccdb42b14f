//! Tickets through the store: registration numbers, status machine, optimistic
//! versions, bulk changes that are all-or-nothing, comments, listing filters and the
//! `ticket.changed` events, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use dispatchline::events::EventBus;
use dispatchline::store::directory::TenantScope;
use dispatchline::store::tickets::{Channel, NewTicket, StatusUpdate, TicketFilter};
use dispatchline::store::{
    CallDirection, CallRecord, Category, HouseId, ReasonId, Store, StoreError, SupplierStatus,
    SupplierUpdate, TicketStatus,
};
use store_world::{build, tuesday_utc};

fn ticket(tenant: &str, house: HouseId, reason: ReasonId) -> NewTicket {
    NewTicket {
        tenant: tenant.to_owned(),
        house_id: house,
        apartment: Some("12".into()),
        reason_id: reason,
        description: "течёт с потолка".into(),
        source: Channel::Phone,
        labels: vec!["повторная".into()],
        caller_phone: None,
        call_id: None,
        actor: "1001".into(),
    }
}

fn update(to: TicketStatus, expected_version: Option<i64>) -> StatusUpdate {
    StatusUpdate {
        to,
        actor: "1001".into(),
        note: String::new(),
        expected_version,
    }
}

async fn numbers_are_per_tenant_and_events_follow_commits(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let a = store
        .create_ticket(&ticket("etalon", w.ekb_house, w.flooding), now)
        .await
        .unwrap();
    let b = store
        .create_ticket(&ticket("etalon", w.ekb_house2, w.intercom), now)
        .await
        .unwrap();
    let c = store
        .create_ticket(&ticket("stolica", w.msk_house, w.flooding), now)
        .await
        .unwrap();
    assert_eq!(
        (
            a.ticket.number.as_str(),
            b.ticket.number.as_str(),
            c.ticket.number.as_str()
        ),
        ("1001", "1002", "1001")
    );
    assert_eq!(b.ticket.category, Category::Planned);
    assert_eq!(a.ticket.labels, vec!["повторная".to_owned()]);
    let events = bus.replay(0).unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0].kind, "ticket.changed");
    assert_eq!(events[0].tenant.as_deref(), Some("etalon"));
    assert_eq!(events[0].payload["number"], "1001");
    assert_eq!(events[0].payload["change"], "created");
    assert_eq!(events[0].payload["status"], "registered");
    assert_eq!(events[0].payload["category"], "emergency");
    assert_eq!(events[2].tenant.as_deref(), Some("stolica"));
    let found = store
        .ticket_by_number("stolica", "1001")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, c.ticket.id);

    // A refused registration publishes nothing.
    let mut bad = ticket("etalon", w.msk_house, w.flooding);
    bad.apartment = Some("1".into());
    assert!(store.create_ticket(&bad, now).await.is_err());
    assert_eq!(bus.last_seq(), 3);
}

async fn status_machine_history_and_versions(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let t = store
        .create_ticket(
            &ticket("etalon", w.ekb_house, w.flooding),
            tuesday_utc(5, 0),
        )
        .await
        .unwrap()
        .ticket;
    assert_eq!(t.version, 1);
    let accepted = store
        .change_status(
            t.id,
            &update(TicketStatus::Accepted, Some(1)),
            tuesday_utc(5, 5),
        )
        .await
        .unwrap();
    assert_eq!(
        (accepted.status, accepted.version),
        (TicketStatus::Accepted, 2)
    );
    // Someone still holding version 1 is refused instead of overwriting.
    let stale = store
        .change_status(
            t.id,
            &update(TicketStatus::Cancelled, Some(1)),
            tuesday_utc(5, 6),
        )
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    // A move the status machine forbids.
    let bad = store
        .change_status(
            t.id,
            &update(TicketStatus::Registered, None),
            tuesday_utc(5, 6),
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Conflict(_)), "{bad}");
    store
        .comment(t.id, "1001", "  жилец перезвонил  ", tuesday_utc(5, 7))
        .await
        .unwrap();
    assert!(matches!(
        store.comment(t.id, "1001", "   ", tuesday_utc(5, 7)).await,
        Err(StoreError::Invalid { field: "text", .. })
    ));
    let done = store
        .change_status(t.id, &update(TicketStatus::Done, None), tuesday_utc(6, 0))
        .await
        .unwrap();
    assert_eq!(done.version, 3, "the comment did not bump it");
    assert!(done.closed_at.is_none());
    let closed = store
        .change_status(
            t.id,
            &update(TicketStatus::Closed, None),
            tuesday_utc(6, 30),
        )
        .await
        .unwrap();
    assert_eq!(closed.closed_at, Some(tuesday_utc(6, 30)));
    let detail = store.ticket(t.id).await.unwrap().unwrap();
    let moves: Vec<_> = detail.history.iter().map(|h| (h.from, h.to)).collect();
    assert_eq!(
        moves,
        vec![
            (None, TicketStatus::Registered),
            (Some(TicketStatus::Registered), TicketStatus::Accepted),
            (Some(TicketStatus::Accepted), TicketStatus::Done),
            (Some(TicketStatus::Done), TicketStatus::Closed),
        ]
    );
    assert_eq!(detail.comments.len(), 1);
    assert_eq!(detail.comments[0].text, "жилец перезвонил");
    let changes: Vec<String> = bus
        .replay(0)
        .unwrap()
        .iter()
        .map(|e| e.payload["change"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        changes,
        ["created", "status", "comment", "status", "status"]
    );
}

async fn bulk_change_is_all_or_nothing(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            store
                .create_ticket(&ticket("etalon", w.ekb_house, w.flooding), now)
                .await
                .unwrap()
                .ticket
                .id,
        );
    }
    store
        .change_status(ids[2], &update(TicketStatus::Cancelled, None), now)
        .await
        .unwrap();
    let before = bus.last_seq();
    // The third is cancelled and cannot be accepted: nothing changes.
    let err = store
        .change_status_bulk(&ids, &update(TicketStatus::Accepted, None), now)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(bus.last_seq(), before, "no events for a rolled-back change");
    for id in &ids[..2] {
        let t = store.ticket(*id).await.unwrap().unwrap().ticket;
        assert_eq!((t.status, t.version), (TicketStatus::Registered, 1));
    }
    let changed = store
        .change_status_bulk(&ids[..2], &update(TicketStatus::Accepted, None), now)
        .await
        .unwrap();
    assert!(changed.iter().all(|t| t.status == TicketStatus::Accepted));
    assert_eq!(bus.last_seq(), before + 2);
}

async fn concurrent_changes_lose_nothing(store: Store) {
    let w = build(&store).await;
    let t = store
        .create_ticket(
            &ticket("etalon", w.ekb_house, w.flooding),
            tuesday_utc(5, 0),
        )
        .await
        .unwrap()
        .ticket;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .comment(t.id, "1001", &format!("комментарий {i}"), tuesday_utc(5, 1))
                .await
        }));
    }
    // Eight operators race to accept: one wins, the others find it accepted already.
    let mut racers = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        racers.push(tokio::spawn(async move {
            store
                .change_status(
                    t.id,
                    &update(TicketStatus::Accepted, None),
                    tuesday_utc(5, 2),
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut wins = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(wins, 1);
    let detail = store.ticket(t.id).await.unwrap().unwrap();
    assert_eq!(detail.comments.len(), 16);
    assert_eq!(detail.ticket.version, 2, "comments do not bump the version");
    assert_eq!(detail.history.len(), 2);
}

async fn listing_filters_and_pages(store: Store) {
    let w = build(&store).await;
    for hour in 0..5 {
        store
            .create_ticket(
                &ticket("etalon", w.ekb_house, w.flooding),
                tuesday_utc(hour, 0),
            )
            .await
            .unwrap();
    }
    store
        .create_ticket(
            &ticket("etalon", w.ekb_house2, w.intercom),
            tuesday_utc(6, 0),
        )
        .await
        .unwrap();
    store
        .create_ticket(
            &ticket("stolica", w.msk_house, w.flooding),
            tuesday_utc(6, 0),
        )
        .await
        .unwrap();
    let all = TenantScope::All;
    let page = store
        .tickets(
            &all,
            &TicketFilter {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((page.total, page.items.len()), (7, 3));
    let etalon_only = TenantScope::Only(vec!["etalon".into()]);
    let page = store
        .tickets(&etalon_only, &TicketFilter::default())
        .await
        .unwrap();
    assert_eq!(page.total, 6);
    assert!(
        page.items
            .windows(2)
            .all(|p| p[0].created_at >= p[1].created_at),
        "newest first"
    );
    let filter = TicketFilter {
        category: Some(Category::Planned),
        ..Default::default()
    };
    assert_eq!(store.tickets(&all, &filter).await.unwrap().total, 1);
    let filter = TicketFilter {
        house_id: Some(w.ekb_house),
        from: Some(tuesday_utc(1, 0)),
        to: Some(tuesday_utc(3, 0)),
        ..Default::default()
    };
    assert_eq!(store.tickets(&all, &filter).await.unwrap().total, 2);
    let filter = TicketFilter {
        executor_id: Some(w.msk_day),
        ..Default::default()
    };
    assert_eq!(store.tickets(&all, &filter).await.unwrap().total, 1);
    let filter = TicketFilter {
        status: Some(TicketStatus::Done),
        ..Default::default()
    };
    assert_eq!(store.tickets(&all, &filter).await.unwrap().total, 0);
}

async fn supplier_hand_over_is_a_ticket_change(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let t = store
        .create_ticket(&ticket("etalon", w.ekb_house, w.flooding), now)
        .await
        .unwrap()
        .ticket;
    let recheck = now + chrono::Duration::hours(2);
    store
        .derive_supplier_ticket(t.id, "vodokanal", Some("ВК-5521"), Some(recheck), now)
        .await
        .unwrap();
    let detail = store.ticket(t.id).await.unwrap().unwrap();
    assert_eq!(
        detail.ticket.version, 1,
        "a hand-over does not bump the version"
    );
    let handed = &detail.supplier_tickets[0];
    assert_eq!(handed.supplier, "vodokanal");
    assert_eq!(handed.supplier_number.as_deref(), Some("ВК-5521"));
    assert_eq!(
        (handed.status, handed.recheck_at),
        (SupplierStatus::HandedOver, Some(recheck))
    );
    assert_eq!(bus.replay(1).unwrap()[0].payload["change"], "supplier");
    let unknown = store
        .derive_supplier_ticket(t.id, "gas", None, None, now)
        .await
        .unwrap_err();
    assert!(matches!(
        unknown,
        StoreError::NotFound {
            what: "supplier",
            ..
        }
    ));
    assert_eq!(bus.last_seq(), 2);
}

on_both_backends!(
    supplier_hand_over_is_a_ticket_change,
    numbers_are_per_tenant_and_events_follow_commits,
    status_machine_history_and_versions,
    bulk_change_is_all_or_nothing,
    concurrent_changes_lose_nothing,
    listing_filters_and_pages,
    bulk_change_names_each_ticket_once,
    supplier_tickets_move_on,
    a_call_of_another_tenant_is_not_linked,
    houses_the_key_cannot_tell_apart_are_refused,
);

async fn bulk_change_names_each_ticket_once(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let a = store
        .create_ticket(&ticket("etalon", w.ekb_house, w.flooding), now)
        .await
        .unwrap()
        .ticket
        .id;
    let b = store
        .create_ticket(&ticket("etalon", w.ekb_house2, w.flooding), now)
        .await
        .unwrap()
        .ticket
        .id;
    let before = bus.last_seq();
    let changed = store
        .change_status_bulk(&[b, a, b, a], &update(TicketStatus::Accepted, None), now)
        .await
        .unwrap();
    let ids: Vec<_> = changed.iter().map(|t| t.id).collect();
    assert_eq!(ids, vec![b, a], "in request order, each once");
    assert!(changed.iter().all(|t| t.version == 2));
    let events = bus.replay(before).unwrap();
    assert_eq!(events.len(), 2, "one ticket.changed per ticket");
    let history = store.ticket(a).await.unwrap().unwrap().history;
    assert_eq!(history.len(), 2);
    // A comment does not bump the version: a concurrent status change that saw
    // version 2 still goes through.
    store
        .comment(a, "1001", "жилец перезвонил", now)
        .await
        .unwrap();
    let t = store
        .change_status(a, &update(TicketStatus::InProgress, Some(2)), now)
        .await
        .unwrap();
    assert_eq!(t.version, 3);
}

async fn supplier_tickets_move_on(store: Store) {
    let bus = EventBus::default();
    let store = store.with_events(bus.clone());
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let t = store
        .create_ticket(&ticket("etalon", w.ekb_house, w.flooding), now)
        .await
        .unwrap()
        .ticket;
    // Водоканал serves Екатеринбург, not Москва.
    let msk = store
        .create_ticket(&ticket("stolica", w.msk_house, w.flooding), now)
        .await
        .unwrap()
        .ticket;
    let err = store
        .derive_supplier_ticket(msk.id, "vodokanal", None, None, now)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "supplier",
                ..
            }
        ),
        "{err}"
    );
    let recheck = now + chrono::Duration::hours(2);
    let id = store
        .derive_supplier_ticket(t.id, "vodokanal", None, Some(recheck), now)
        .await
        .unwrap();
    let pending = store.supplier_ticket(id).await.unwrap().unwrap();
    assert_eq!(pending.status, SupplierStatus::Pending);
    assert_eq!(
        (pending.ticket_id, pending.tenant.as_str()),
        (t.id, "etalon")
    );
    // Nothing is due before the re-check time; then it is.
    assert!(
        store
            .supplier_rechecks_due(now, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let due = store.supplier_rechecks_due(recheck, 10).await.unwrap();
    assert_eq!(due.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    // The dispatcher gives their number: handed over.
    let later = now + chrono::Duration::minutes(30);
    let handed = store
        .update_supplier_ticket(
            id,
            &SupplierUpdate {
                supplier_number: Some(" ВК-77 ".into()),
                recheck_at: Some(later + chrono::Duration::hours(4)),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!(handed.status, SupplierStatus::HandedOver);
    assert_eq!(handed.supplier_number.as_deref(), Some("ВК-77"));
    assert_eq!(handed.handed_over_at, Some(later));
    assert_eq!(handed.updated_at, Some(later));
    let done = store
        .update_supplier_ticket(
            id,
            &SupplierUpdate {
                status: Some(SupplierStatus::Done),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap();
    assert_eq!((done.status, done.recheck_at), (SupplierStatus::Done, None));
    assert!(
        store
            .supplier_rechecks_due(later + chrono::Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let err = store
        .update_supplier_ticket(
            id,
            &SupplierUpdate {
                status: Some(SupplierStatus::Pending),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .update_supplier_ticket(id, &SupplierUpdate::default(), later)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid { .. }), "{err}");
    let missing = store
        .update_supplier_ticket(
            dispatchline::store::SupplierTicketId(999_999),
            &SupplierUpdate {
                status: Some(SupplierStatus::Done),
                ..Default::default()
            },
            later,
        )
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));
    let changes: Vec<String> = bus
        .replay(0)
        .unwrap()
        .iter()
        .map(|e| e.payload["change"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        changes,
        ["created", "created", "supplier", "supplier", "supplier"]
    );
    let detail = store.ticket(t.id).await.unwrap().unwrap();
    assert_eq!(detail.supplier_tickets[0].status, SupplierStatus::Done);
    assert_eq!(detail.ticket.version, 1);
}

async fn a_call_of_another_tenant_is_not_linked(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let mut call = CallRecord::offered(
        "msk-call",
        CallDirection::Inbound,
        "+79120000001",
        "+74950000001",
        now,
    );
    call.tenant = Some("stolica".into());
    store.upsert_call(&call).await.unwrap();
    let mut new = ticket("etalon", w.ekb_house, w.flooding);
    new.call_id = Some("msk-call".into());
    let err = store.create_ticket(&new, now).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "call_id",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.get_call("msk-call").await.unwrap().unwrap().ticket_id,
        None
    );
    // Its own tenant's call (or one not attributed yet) is linked.
    let mut mine = ticket("stolica", w.msk_house, w.flooding);
    mine.call_id = Some("msk-call".into());
    let t = store.create_ticket(&mine, now).await.unwrap().ticket;
    assert_eq!(
        store.get_call("msk-call").await.unwrap().unwrap().ticket_id,
        Some(t.id)
    );
    // The journal writer is behind: the ticket is registered before its call's row
    // is written. The row, when it comes, links to the ticket.
    let mut early = ticket("etalon", w.ekb_house, w.flooding);
    early.call_id = Some("late-call".into());
    let early = store.create_ticket(&early, now).await.unwrap().ticket;
    let mut late = CallRecord::offered(
        "late-call",
        CallDirection::Inbound,
        "+79120000002",
        "+73432000001",
        now,
    );
    late.tenant = Some("etalon".into());
    store.upsert_call(&late).await.unwrap();
    assert_eq!(
        store
            .get_call("late-call")
            .await
            .unwrap()
            .unwrap()
            .ticket_id,
        Some(early.id)
    );
    // A later update of the row keeps the link.
    store.upsert_call(&late).await.unwrap();
    assert_eq!(
        store
            .get_call("late-call")
            .await
            .unwrap()
            .unwrap()
            .ticket_id,
        Some(early.id)
    );
}

async fn houses_the_key_cannot_tell_apart_are_refused(store: Store) {
    let _w = build(&store).await;
    // "Ленина 5, 1" is not "Ленина 51": two houses.
    let a = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 5, 1", 5, 0)
        .await
        .unwrap();
    let b = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 51", 5, 0)
        .await
        .unwrap();
    assert_ne!(a, b);
    // The same house written another way is a conflict, not the other house's id.
    let err = store
        .create_house("etalon", None, "Ленина 51", 9, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    // Another tenant may have a house at the same address.
    store
        .create_house("stolica", None, "ул. Ленина, д. 51", 9, 1)
        .await
        .unwrap();
}

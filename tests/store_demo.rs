//! The demo data set: idempotent, and the fixed points other layers' tests rely on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use chrono::{TimeZone, Utc};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::demo::{Seeded, seed_at};
use dispatchline::store::directory::{HouseFilter, TenantScope};
use dispatchline::store::tickets::{Channel, NewTicket};
use dispatchline::store::{Category, Store};

async fn seeds_once_with_the_fixed_contacts(store: Store) {
    let now = Utc.with_ymd_and_hms(2026, 11, 17, 21, 0, 0).unwrap(); // 02:00 local
    assert_eq!(seed_at(&store, now).await.unwrap(), Seeded::Created);
    assert_eq!(seed_at(&store, now).await.unwrap(), Seeded::AlreadyThere);

    let etalon = store.tenant("etalon").await.unwrap().unwrap();
    assert_eq!(etalon.name, "УК «Эталон»");
    assert_eq!(etalon.city.time_zone, chrono_tz::Asia::Yekaterinburg);
    let houses = store
        .houses(
            &TenantScope::All,
            &HouseFilter {
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(houses.total >= 24, "a few dozen houses");

    let first = store
        .caller_lookup_at(
            &PhoneNumber::parse("+79120000001").unwrap(),
            None,
            Some("ekb"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(first.tenant.as_ref().unwrap().code, "etalon");
    assert_eq!(
        first.address.as_ref().unwrap().apartment.as_deref(),
        Some("12")
    );
    assert_eq!(first.outages.len(), 1);
    assert!(first.debtor.is_none());
    let second = store
        .caller_lookup_at(
            &PhoneNumber::parse("+79120000002").unwrap(),
            None,
            Some("ekb"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(second.tenant.as_ref().unwrap().code, "uyut");
    assert_eq!(
        second.address.as_ref().unwrap().apartment.as_deref(),
        Some("5")
    );
    let third = store
        .caller_lookup_at(
            &PhoneNumber::parse("+79120000003").unwrap(),
            None,
            None,
            now,
        )
        .await
        .unwrap();
    assert_eq!(third.debtor.as_ref().unwrap().amount_kopecks, 1_543_210);

    // The operator's picker finds reasons by any word, case-insensitively.
    let lift = store
        .reasons(Some("etalon"), Some("ЛИФТ"), None)
        .await
        .unwrap();
    assert!(lift.len() >= 2 && lift.iter().all(|r| r.work_type == "lift"));
    let leaks = store
        .reasons(Some("uyut"), Some("протечка"), Some(Category::Emergency))
        .await
        .unwrap();
    assert!(leaks.len() >= 3, "{leaks:?}");

    // A night-time emergency at the first resident's house goes to the night shift.
    let address = first.address.unwrap();
    let flooding = store.reasons(None, Some("затопление"), None).await.unwrap();
    let registered = store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: address.house_id,
                apartment: Some("12".into()),
                reason_id: flooding[0].id,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "demo".into(),
            },
            now,
        )
        .await
        .unwrap();
    let executor = registered.chain.executor().unwrap();
    assert!(executor.name.starts_with("Соколов"), "{executor:?}");
    assert!(registered.chain.executors.len() >= 2);
    assert!(registered.chain.head.is_some());
}

/// A seed interrupted after its first houses and staff (a crash, a killed demo)
/// completes on the next run, without duplicates.
async fn an_interrupted_seed_completes(store: Store) {
    let now = Utc.with_ymd_and_hms(2026, 11, 17, 21, 0, 0).unwrap();
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await
        .unwrap();
    store
        .create_tenant("etalon", "УК «Эталон»", "ekb")
        .await
        .unwrap();
    store
        .create_house_group("etalon", "center", "Центр")
        .await
        .unwrap();
    store
        .create_house("etalon", Some("center"), "ул. Малышева, д. 51", 16, 2)
        .await
        .unwrap();
    store.create_work_type("plumbing", "x").await.unwrap();
    store
        .create_employee(&dispatchline::store::directory::NewEmployee {
            tenant: Some("etalon".into()),
            name: "Кузнецов Андрей Петрович".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(seed_at(&store, now).await.unwrap(), Seeded::Created);
    assert_eq!(seed_at(&store, now).await.unwrap(), Seeded::AlreadyThere);
    let staff = store
        .employees(&TenantScope::All, Some("etalon"))
        .await
        .unwrap();
    assert_eq!(
        staff
            .iter()
            .filter(|e| e.name == "Кузнецов Андрей Петрович")
            .count(),
        1
    );
    let info = store
        .caller_lookup_at(
            &PhoneNumber::parse("+79120000001").unwrap(),
            None,
            Some("ekb"),
            now,
        )
        .await
        .unwrap();
    assert_eq!(info.outages.len(), 1);
}

on_both_backends!(
    seeds_once_with_the_fixed_contacts,
    an_interrupted_seed_completes
);

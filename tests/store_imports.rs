//! CSV imports against the rest of the store, on SQLite and PostgreSQL: a re-import
//! does not outrank confirmed addresses, the debtors' replace mode and stale rows,
//! one apartment form on every path, and a large import that leaves the call journal
//! writing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use dispatchline::store::directory::TenantScope;
use dispatchline::store::tickets::{Channel, NewTicket};
use dispatchline::store::{
    CallDirection, CallRecord, ContactFilter, ContactSource, DebtorImportMode, Store, StoreError,
};
use store_world::{build, phone, tuesday_utc};

async fn a_reimport_does_not_outrank_a_confirmed_address(store: Store) {
    let w = build(&store).await;
    let t0 = tuesday_utc(5, 0);
    // The tenant's old list puts the resident at Ленина 5.
    let list = "+79125000001;ул. Ленина, д. 5;12\n";
    store
        .import_contacts("etalon", list.as_bytes(), false, t0)
        .await
        .unwrap();
    // A week later an operator confirms the resident now lives at Мира 3.
    let confirmed = t0 + Duration::days(7);
    store
        .learn_contact(
            &phone("+79125000001"),
            "etalon",
            w.ekb_house2,
            Some("4"),
            confirmed,
        )
        .await
        .unwrap();
    // The same old list is imported again the next month.
    let later = t0 + Duration::days(30);
    store
        .import_contacts("etalon", list.as_bytes(), false, later)
        .await
        .unwrap();
    let info = store
        .caller_lookup_at(&phone("+79125000001"), None, None, later)
        .await
        .unwrap();
    let address = info.address.unwrap();
    assert_eq!(
        address.house_id, w.ekb_house2,
        "the confirmed address first"
    );
    assert_eq!(info.other_addresses.len(), 1);
    assert_eq!(info.other_addresses[0].house_id, w.ekb_house);
    // The re-import recorded when it listed the contact, and left last_seen_at.
    let page = store
        .contacts(
            &TenantScope::All,
            &ContactFilter {
                house_id: Some(w.ekb_house),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let imported = &page.items[0];
    assert_eq!(imported.source, ContactSource::Imported);
    assert_eq!(imported.last_seen_at, t0);
    assert_eq!(imported.imported_at, Some(later));
    // An operator confirming an imported address makes it learnt.
    store
        .learn_contact(
            &phone("+79125000001"),
            "etalon",
            w.ekb_house,
            Some("кв. 12"),
            later,
        )
        .await
        .unwrap();
    let info = store
        .caller_lookup_at(&phone("+79125000001"), None, None, later)
        .await
        .unwrap();
    assert_eq!(info.address.unwrap().house_id, w.ekb_house);
}

async fn debtors_replace_mode_deletes_what_the_file_omits(store: Store) {
    let _w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let first = "Ленина 5;1;100;31.12.2099\nЛенина 5;2;200;31.12.2099\nМира 3;;300;31.12.2099\n";
    store
        .import_debtors(
            "etalon",
            first.as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap();
    // An upsert of one row keeps the others.
    let update = "Ленина 5;2;250;31.12.2099\n";
    let report = store
        .import_debtors(
            "etalon",
            update.as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap();
    assert_eq!((report.imported, report.deleted), (1, 0));
    let amounts = |store: Store| async move {
        store
            .debtors(&TenantScope::All, Some("etalon"), None, None)
            .await
            .unwrap()
            .items
            .iter()
            .map(|d| (d.apartment.clone().unwrap_or_default(), d.amount_kopecks))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        amounts(store.clone()).await,
        vec![
            ("1".to_owned(), 10_000),
            ("2".to_owned(), 25_000),
            (String::new(), 30_000)
        ]
    );
    // A replace makes the file the whole list: the rest is deleted in the same
    // transaction, and another tenant's entries are untouched.
    store
        .import_debtors(
            "stolica",
            "Арбат 10;9;900;31.12.2099\n".as_bytes(),
            false,
            DebtorImportMode::Replace,
            now,
        )
        .await
        .unwrap();
    let report = store
        .import_debtors(
            "etalon",
            "Ленина 5;кв. 2;260;31.12.2099\n".as_bytes(),
            false,
            DebtorImportMode::Replace,
            now,
        )
        .await
        .unwrap();
    assert_eq!((report.imported, report.deleted), (1, 2));
    assert_eq!(amounts(store.clone()).await, vec![("2".to_owned(), 26_000)]);
    let theirs = store
        .debtors(&TenantScope::All, Some("stolica"), None, None)
        .await
        .unwrap();
    assert_eq!(theirs.total, 1);
    // A refused replace deletes nothing.
    let err = store
        .import_debtors(
            "etalon",
            "Ленина 5;3;много;31.12.2099\n".as_bytes(),
            false,
            DebtorImportMode::Replace,
            now,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Import(_)));
    assert_eq!(amounts(store.clone()).await.len(), 1);
    // A debt that already ended is a bad row (dates are the city's: 2026-11-17 in
    // Екатеринбург).
    let err = store
        .import_debtors(
            "etalon",
            "Ленина 5;4;100;16.11.2026\nЛенина 5;5;100;17.11.2026\n".as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap_err();
    let StoreError::Import(report) = err else {
        panic!("{err}")
    };
    assert_eq!(report.bad_rows.len(), 1);
    assert_eq!(
        (report.bad_rows[0].line, report.bad_rows[0].field.as_str()),
        (1, "valid_until")
    );
}

async fn one_apartment_form_on_every_path(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let resident = phone("+79125000002");
    // Learnt as "Квартира 12А", imported as "кв.12 а", ticket on "12а", debt on
    // "КВ. 12А": all one apartment.
    store
        .learn_contact(&resident, "etalon", w.ekb_house, Some("Квартира 12А"), now)
        .await
        .unwrap();
    let report = store
        .import_contacts(
            "etalon",
            "+79125000002;Ленина 5;кв.12 а\n".as_bytes(),
            false,
            now,
        )
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    let contacts = store
        .contacts(&TenantScope::All, &ContactFilter::default())
        .await
        .unwrap();
    assert_eq!(contacts.total, 1, "the import matched the learnt contact");
    assert_eq!(contacts.items[0].apartment.as_deref(), Some("12а"));
    store
        .import_debtors(
            "etalon",
            "Ленина 5;КВ. 12А;500;31.12.2099\n".as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap();
    let ticket = store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.ekb_house,
                apartment: Some("12а".into()),
                reason_id: w.flooding,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "test".into(),
            },
            now,
        )
        .await
        .unwrap()
        .ticket;
    assert_eq!(ticket.apartment.as_deref(), Some("12а"));
    let info = store
        .caller_lookup_at(&resident, None, None, now)
        .await
        .unwrap();
    assert_eq!(info.debtor.map(|d| d.amount_kopecks), Some(50_000));
    assert!(info.open_tickets[0].same_apartment);
    // "квартира" is a word, not a prefix of a number: nothing is cut off it.
    store
        .learn_contact(&resident, "etalon", w.ekb_house2, Some("квартира 7"), now)
        .await
        .unwrap();
    let page = store
        .contacts(
            &TenantScope::All,
            &ContactFilter {
                house_id: Some(w.ekb_house2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items[0].apartment.as_deref(), Some("7"));
}

/// How many contacts the large import carries.
const LARGE: usize = 100_000;

async fn a_large_import_leaves_the_journal_writing(store: Store) {
    let _w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let mut file = String::with_capacity(LARGE * 40);
    for i in 0..LARGE {
        file.push_str(&format!("+7913{i:07};ул. Ленина, д. 5;{}\n", i % 300 + 1));
    }
    let importer = {
        let store = store.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let report = store
                .import_contacts("etalon", file.as_bytes(), false, now)
                .await
                .unwrap();
            (report, started.elapsed())
        })
    };
    // The call journal writes a row every few milliseconds meanwhile, as the
    // engine's journal writer does under load; none may fail, and none may wait for
    // most of the import (the write lock is held a batch at a time, never for the
    // upload or the whole file).
    let mut waits = Vec::new();
    let mut n = 0u32;
    while !importer.is_finished() {
        let record = CallRecord::offered(
            format!("journal-{n}"),
            CallDirection::Inbound,
            "+79120000001",
            "+73432000001",
            now,
        );
        let started = Instant::now();
        store.upsert_call(&record).await.unwrap();
        waits.push(started.elapsed());
        n += 1;
        tokio::time::sleep(StdDuration::from_millis(2)).await;
    }
    let (report, took) = importer.await.unwrap();
    assert_eq!(report.imported, LARGE);
    let longest = waits.iter().max().copied().unwrap_or_default();
    assert!(
        n >= 2 && longest * 2 < took,
        "{n} journal writes during a {took:?} import, the longest waited {longest:?}"
    );
    eprintln!("{n} journal writes during a {took:?} import; the longest waited {longest:?}");
    let page = store
        .contacts(&TenantScope::All, &ContactFilter::default())
        .await
        .unwrap();
    assert_eq!(page.total, LARGE as i64);
}

on_both_backends!(
    a_reimport_does_not_outrank_a_confirmed_address,
    debtors_replace_mode_deletes_what_the_file_omits,
    one_apartment_form_on_every_path,
    a_large_import_leaves_the_journal_writing,
);

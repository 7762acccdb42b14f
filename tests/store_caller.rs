//! The screen-pop lookup, contacts and the CSV imports, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::Duration;
use dispatchline::store::directory::TenantScope;
use dispatchline::store::notices::NewOutage;
use dispatchline::store::tickets::{Channel, NewTicket, StatusUpdate};
use dispatchline::store::{ContactFilter, DebtorImportMode, Store, StoreError, TicketStatus};
use store_world::{build, phone, tuesday_utc};

async fn lookup_finds_address_tickets_debt_outage_and_staff(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let resident = phone("+79120000001");
    store
        .learn_contact(
            &resident,
            "etalon",
            w.ekb_house,
            Some("12"),
            now - Duration::days(2),
        )
        .await
        .unwrap();
    let ticket = |apartment: Option<&str>| NewTicket {
        tenant: "etalon".into(),
        house_id: w.ekb_house,
        apartment: apartment.map(str::to_owned),
        reason_id: w.flooding,
        description: String::new(),
        source: Channel::Phone,
        labels: vec![],
        caller_phone: None,
        call_id: None,
        actor: "test".into(),
    };
    let own = store
        .create_ticket(&ticket(Some("12")), now)
        .await
        .unwrap()
        .ticket;
    let neighbour = store
        .create_ticket(&ticket(Some("40")), now)
        .await
        .unwrap()
        .ticket;
    let closed = store
        .create_ticket(&ticket(Some("12")), now)
        .await
        .unwrap()
        .ticket;
    store
        .change_status(
            closed.id,
            &StatusUpdate {
                to: TicketStatus::Cancelled,
                actor: "t".into(),
                note: String::new(),
                expected_version: None,
            },
            now,
        )
        .await
        .unwrap();
    store
        .import_debtors(
            "etalon",
            "ул. Ленина, д. 5;12;1 234,56;31.12.2026\n".as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap();
    let outage = NewOutage {
        tenant: "etalon".into(),
        kind: "hot_water".into(),
        text: "Нет горячей воды до 18:00".into(),
        starts_at: now - Duration::hours(1),
        ends_at: now + Duration::hours(8),
        house_ids: vec![w.ekb_house],
    };
    store.create_outage(&outage, now).await.unwrap();
    let future = NewOutage {
        starts_at: now + Duration::days(1),
        ends_at: now + Duration::days(2),
        ..outage
    };
    store.create_outage(&future, now).await.unwrap();

    let info = store
        .caller_lookup_at(&resident, None, None, now)
        .await
        .unwrap();
    let tenant = info.tenant.as_ref().unwrap();
    assert_eq!(
        (tenant.code.as_str(), tenant.name.as_str()),
        ("etalon", "УК «Эталон»")
    );
    assert_eq!(info.city.as_deref(), Some("ekb"));
    let address = info.address.as_ref().unwrap();
    assert_eq!(
        (address.house_id, address.apartment.as_deref()),
        (w.ekb_house, Some("12"))
    );
    assert_eq!(address.address, "ул. Ленина, д. 5");
    let open: Vec<_> = info
        .open_tickets
        .iter()
        .map(|t| (t.id, t.same_apartment))
        .collect();
    assert_eq!(
        open,
        vec![(own.id, true), (neighbour.id, false)],
        "own apartment first, closed ones left out"
    );
    assert_eq!(info.open_tickets[0].reason, "Затопление сверху");
    let debt = info.debtor.as_ref().unwrap();
    assert_eq!(debt.amount_kopecks, 123_456);
    assert_eq!(
        info.outages.len(),
        1,
        "the future outage is not running yet"
    );
    assert_eq!(info.outages[0].kind, "hot_water");
    assert!(info.staff.is_none());

    // After the debt's validity the flag is gone.
    let next_year = tuesday_utc(5, 0) + Duration::days(60);
    let later = store
        .caller_lookup_at(&resident, None, None, next_year)
        .await
        .unwrap();
    assert!(later.debtor.is_none());

    // A staff phone is recognised.
    let staff = store
        .caller_lookup_at(&phone("+79121000002"), None, None, now)
        .await
        .unwrap();
    assert_eq!(staff.staff.as_ref().map(|s| s.id), Some(w.night));
    assert_eq!(
        staff.staff.as_ref().and_then(|s| s.tenant.as_deref()),
        Some("etalon")
    );
    assert!(staff.address.is_none());
}

async fn tenant_and_city_narrow_the_addresses(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let p = phone("89120000009");
    store
        .learn_contact(
            &p,
            "etalon",
            w.ekb_house,
            Some("1"),
            now - Duration::hours(2),
        )
        .await
        .unwrap();
    store
        .learn_contact(&p, "stolica", w.msk_house, None, now - Duration::hours(1))
        .await
        .unwrap();
    // Most recent first when nothing narrows it.
    let any = store.caller_lookup_at(&p, None, None, now).await.unwrap();
    assert_eq!(any.tenant.as_ref().unwrap().code, "stolica");
    assert_eq!(any.other_addresses.len(), 1);
    // The citywide number of Екатеринбург only sees the address there.
    let ekb = store
        .caller_lookup_at(&p, None, Some("ekb"), now)
        .await
        .unwrap();
    assert_eq!(ekb.tenant.as_ref().unwrap().code, "etalon");
    assert!(ekb.other_addresses.is_empty());
    // A tenant number only sees its tenant's addresses.
    let etalon = store
        .caller_lookup_at(&p, Some("etalon"), None, now)
        .await
        .unwrap();
    assert_eq!(etalon.address.as_ref().unwrap().house_id, w.ekb_house);
    // An unknown caller on a tenant number still gets the tenant named.
    let stranger = store
        .caller_lookup_at(&phone("+79990000000"), Some("stolica"), None, now)
        .await
        .unwrap();
    assert!(stranger.address.is_none());
    assert_eq!(stranger.tenant.as_ref().unwrap().name, "УК «Столица»");
    assert_eq!(stranger.city.as_deref(), Some("msk"));
    // Learning the same address again refreshes it instead of duplicating.
    store
        .learn_contact(&p, "etalon", w.ekb_house, Some("1"), now)
        .await
        .unwrap();
    let page = store
        .contacts(&TenantScope::All, &ContactFilter::default())
        .await
        .unwrap();
    assert_eq!(page.total, 2);
    assert_eq!(page.items[0].house_id, w.ekb_house);
}

async fn contacts_import_is_all_or_nothing(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let _ = w;
    let file = "Телефон;Адрес;Квартира\n\
                +7 (912) 300-00-01;ул. Ленина, д. 5;12\n\
                89123000002;Ленина 5;кв. 14\n\
                9123000003;г. Екатеринбург, улица Мира, дом 3;\n\
                не телефон;Ленина 5;1\n\
                +79123000005;ул. Неизвестная, д. 1;2\n";
    let err = store
        .import_contacts("etalon", file.as_bytes(), false, now)
        .await
        .unwrap_err();
    let StoreError::Import(report) = err else {
        panic!("{err}")
    };
    let bad: Vec<_> = report
        .bad_rows
        .iter()
        .map(|b| (b.line, b.field.as_str()))
        .collect();
    assert_eq!(bad, vec![(5, "phone"), (6, "address")]);
    let none = store
        .contacts(&TenantScope::All, &ContactFilter::default())
        .await
        .unwrap();
    assert_eq!(none.total, 0, "a file with bad rows imports nothing");

    let report = store
        .import_contacts("etalon", file.as_bytes(), true, now)
        .await
        .unwrap();
    assert_eq!((report.imported, report.skipped), (3, 2));
    let info = store
        .caller_lookup_at(&phone("+79123000003"), None, None, now)
        .await
        .unwrap();
    assert_eq!(info.address.as_ref().unwrap().house_id, w.ekb_house2);
    assert_eq!(info.address.as_ref().unwrap().apartment, None);
    // Importing again updates rather than duplicates; another tenant's addresses do
    // not match.
    store
        .import_contacts("etalon", file.as_bytes(), true, now)
        .await
        .unwrap();
    assert_eq!(
        store
            .contacts(&TenantScope::All, &ContactFilter::default())
            .await
            .unwrap()
            .total,
        3
    );
    let filter = ContactFilter {
        phone: Some("300-00-01".into()),
        ..Default::default()
    };
    assert_eq!(
        store
            .contacts(&TenantScope::All, &filter)
            .await
            .unwrap()
            .total,
        1
    );
    let other = store
        .import_contacts("stolica", file.as_bytes(), false, now)
        .await
        .unwrap_err();
    assert!(matches!(other, StoreError::Import(r) if r.bad_rows.len() == 5));
}

async fn debtors_import_replaces_by_address(store: Store) {
    let _w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let file = "Адрес,Кв,Сумма,Действует до\n\"ул. Ленина, д. 5\",12,\"1 000,00\",31.12.2026\n\"ул. Ленина, д. 5\",12,\"2 500,50\",31.12.2026\nМира 3,,900,2026-12-01\n";
    let report = store
        .import_debtors(
            "etalon",
            file.as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap();
    assert_eq!(report.imported, 2, "the later row for an address wins");
    let page = store
        .debtors(&TenantScope::All, None, None, None)
        .await
        .unwrap();
    let amounts: Vec<_> = page.items.iter().map(|d| d.amount_kopecks).collect();
    assert_eq!(amounts, vec![250_050, 90_000]);
    let bad = store
        .import_debtors(
            "etalon",
            "Ленина 5;12;-5;31.12.2026\n".as_bytes(),
            false,
            DebtorImportMode::Upsert,
            now,
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Import(r) if r.bad_rows[0].field == "amount"));
    let page = store
        .debtors(&TenantScope::Only(vec!["stolica".into()]), None, None, None)
        .await
        .unwrap();
    assert_eq!(page.total, 0);
}

async fn outages_are_validated_and_scoped(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let good = NewOutage {
        tenant: "etalon".into(),
        kind: "heating".into(),
        text: "Отключение отопления".into(),
        starts_at: now,
        ends_at: now + Duration::hours(4),
        house_ids: vec![w.ekb_house, w.ekb_house2],
    };
    let other_tenants_house = NewOutage {
        house_ids: vec![w.msk_house],
        ..good.clone()
    };
    assert!(matches!(
        store.create_outage(&other_tenants_house, now).await,
        Err(StoreError::Invalid {
            field: "house_ids",
            ..
        })
    ));
    let backwards = NewOutage {
        ends_at: now - Duration::hours(1),
        ..good.clone()
    };
    assert!(matches!(
        store.create_outage(&backwards, now).await,
        Err(StoreError::Invalid {
            field: "ends_at",
            ..
        })
    ));
    let created = store.create_outage(&good, now).await.unwrap();
    assert_eq!(created.house_ids.len(), 2);
    let narrowed = NewOutage {
        house_ids: vec![w.ekb_house2],
        ..good.clone()
    };
    let updated = store
        .update_outage(created.id, &narrowed, now)
        .await
        .unwrap();
    assert_eq!(updated.house_ids, vec![w.ekb_house2]);
    assert_eq!(
        store
            .outages(&TenantScope::Only(vec!["stolica".into()]), None)
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        store
            .outages(&TenantScope::All, Some(now + Duration::hours(5)))
            .await
            .unwrap()
            .len(),
        0
    );
    store.delete_outage(created.id).await.unwrap();
    assert!(store.outage(created.id).await.unwrap().is_none());
}

on_both_backends!(
    lookup_finds_address_tickets_debt_outage_and_staff,
    tenant_and_city_narrow_the_addresses,
    contacts_import_is_all_or_nothing,
    debtors_import_replaces_by_address,
    outages_are_validated_and_scoped,
);

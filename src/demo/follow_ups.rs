//! The demo's follow-up calls: within two minutes of starting, the engine makes
//! each kind of call it makes after a ticket was handed over, to simulated people
//! behind the provider.
//!
//! - **Status check** (20 s after start): a planned ticket (no light on a
//!   staircase at ул. Вайнера, д. 15) is accepted by the electrician
//!   [`ELECTRICIAN`]; 20 s later the informer calls him about it and he presses 2
//!   (in progress): the ticket's history says so.
//! - **Feedback** (25 s): another of his tickets is done; 10 s later the resident
//!   who reported it ([`RESIDENT`]) is called and rates the work 4 and the effort 5.
//! - **Supplier hand-off** (30 s): an airlocked radiator at ул. Куйбышева, д. 48 is
//!   handed over to the heating company; an operator is rung first (a simulated
//!   colleague, or you at the console), reads the ticket to the supplier's
//!   dispatcher, and the colleague records the supplier's reference; the supplier
//!   is asked again a minute later.
//! - **Outage broadcast** (40 s): the residents of ул. Малышева, д. 51 hear the hot
//!   water notice by phone, paced, one of them busy ([`BUSY_RESIDENT`]) and tried
//!   again.
//!
//! The demo's policy is in seconds, and has no quiet hours (the demo runs at night
//! too).

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;

use crate::config::{Config, Reach};
use crate::dialer::quiet_hours::QuietHours;
use crate::events::EventBus;
use crate::phone::PhoneNumber;
use crate::sim::Party;
use crate::store::assignment::Shift;
use crate::store::directory::{NewEmployee, Responsibility};
use crate::store::tickets::{Channel, StatusUpdate};
use crate::store::{
    HouseFilter, NewTicket, Store, StoreError, SupplierUpdate, TenantScope, TicketStatus,
};

/// The electrician whose status is checked (УК «Эталон», «Центр», electrical).
pub const ELECTRICIAN: (&str, &str) = ("Кузнецов Олег Петрович", "+79124000010");
/// The resident who rates the work.
pub const RESIDENT: &str = "+79125000001";
/// A resident of the outage's house whose line is busy.
pub const BUSY_RESIDENT: &str = "+79126000001";
/// The heating company's reference the simulated colleague records.
pub const SUPPLIER_REFERENCE: &str = "ЕТК-2026-0417";

fn phone(text: &str) -> Result<PhoneNumber, StoreError> {
    PhoneNumber::parse(text).map_err(|e| StoreError::invalid("phone", e.to_string()))
}

/// The follow-up policy of the demo: seconds instead of hours, no quiet hours, the
/// status check by the informer (the simulated electrician presses a key).
pub fn policy(config: &mut Config) {
    let f = &mut config.follow_ups;
    f.defaults.status_checks = 2;
    f.defaults.status_check_reach = Reach::Informer;
    f.defaults.status_check_delay = Duration::from_secs(20);
    f.defaults.status_check_interval = Duration::from_secs(120);
    f.defaults.feedback = true;
    f.defaults.feedback_delay = Duration::from_secs(10);
    f.defaults.supplier_recheck = Duration::from_secs(60);
    f.defaults.supplier_queries = 1;
    f.overrides.clear();
    f.quiet_hours = QuietHours::never();
    f.broadcast_retry = Duration::from_secs(20);
    f.broadcast_attempts = 2;
    f.broadcast_rate = 2.0;
}

/// The provider's people of the follow-ups.
pub fn parties(parties: &mut HashMap<PhoneNumber, Party>) {
    let answers = |keys: Vec<(Duration, char)>| Party::Answers {
        after: Duration::from_secs(3),
        hang_up_after: Some(Duration::from_secs(40)),
        voice: "ru/survey-thanks.wav".into(),
        keys,
    };
    if let Ok(n) = PhoneNumber::parse(ELECTRICIAN.1) {
        // "2": the work is in progress, pressed while the menu plays.
        parties.insert(n, answers(vec![(Duration::from_secs(10), '2')]));
    }
    if let Ok(n) = PhoneNumber::parse(RESIDENT) {
        parties.insert(
            n,
            answers(vec![
                (Duration::from_secs(9), '4'),
                (Duration::from_secs(13), '5'),
            ]),
        );
    }
    if let Ok(n) = PhoneNumber::parse(BUSY_RESIDENT) {
        parties.insert(n, Party::Busy);
    }
}

/// Puts the electrician into УК «Эталон»'s electrical matrix of «Центр» and the
/// busy resident into the outage's house (idempotent).
pub async fn seed(store: &Store) -> Result<(), StoreError> {
    let hired = store.employees(&TenantScope::All, Some("etalon")).await?;
    let electrician = match hired.iter().find(|e| e.name == ELECTRICIAN.0) {
        Some(e) => e.id,
        None => {
            store
                .create_employee(&NewEmployee {
                    tenant: Some("etalon".into()),
                    supplier: None,
                    name: ELECTRICIAN.0.into(),
                    position: "электрик (демо)".into(),
                    phones: vec![phone(ELECTRICIAN.1)?],
                    work_types: vec!["electrical".into()],
                    shifts: Shift::every_day("00:00", "00:00")?,
                    absences: Vec::new(),
                })
                .await?
        }
    };
    let find = |name: &str| {
        hired
            .iter()
            .find(|e| e.name.starts_with(name))
            .map(|e| e.id)
    };
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "electrical".into(),
            levels: [vec![electrician], Vec::new(), Vec::new()],
            responsible: find("Фёдорова"),
            manager: find("Павлова"),
            head: find("Смирнов"),
        })
        .await?;
    let house = house(store, "Малышева 51").await?;
    store
        .learn_contact(
            &phone(BUSY_RESIDENT)?,
            "etalon",
            house,
            Some("40"),
            Utc::now(),
        )
        .await?;
    Ok(())
}

async fn house(store: &Store, q: &str) -> Result<crate::store::HouseId, StoreError> {
    let found = store
        .houses(
            &TenantScope::All,
            &HouseFilter {
                tenant: Some("etalon".into()),
                q: Some(q.into()),
                offset: None,
                limit: Some(1),
            },
        )
        .await?;
    found
        .items
        .first()
        .map(|h| h.id)
        .ok_or_else(|| StoreError::not_found("demo house", q))
}

async fn register(
    store: &Store,
    address: &str,
    reason: &str,
    apartment: Option<&str>,
    description: &str,
    caller: Option<&str>,
) -> Result<crate::store::TicketId, StoreError> {
    let house = house(store, address).await?;
    let reason = store
        .reasons(Some("etalon"), Some(reason), None)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::not_found("demo reason", reason))?;
    let registered = store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: house,
                apartment: apartment.map(str::to_owned),
                reason_id: reason.id,
                description: description.into(),
                source: Channel::Phone,
                labels: vec!["демо".into()],
                caller_phone: caller.map(phone).transpose()?,
                call_id: None,
                actor: "demo".into(),
            },
            Utc::now(),
        )
        .await?;
    Ok(registered.ticket.id)
}

async fn move_to(
    store: &Store,
    ticket: crate::store::TicketId,
    to: TicketStatus,
    note: &str,
) -> Result<(), StoreError> {
    store
        .change_status(
            ticket,
            &StatusUpdate {
                to,
                actor: "demo".into(),
                note: note.into(),
                expected_version: None,
            },
            Utc::now(),
        )
        .await
        .map(|_| ())
}

/// A ticket accepted by the electrician: its status check comes 20 s later.
pub async fn accepted_ticket(store: &Store) -> Result<(), StoreError> {
    let id = register(
        store,
        "Вайнера 15",
        "Нет освещения в подъезде",
        None,
        "Не горит свет на лестнице с 3 по 5 этаж",
        None,
    )
    .await?;
    move_to(store, id, TicketStatus::Accepted, "электрик принял заявку").await?;
    tracing::info!(ticket = %id, "demo: a ticket is accepted; its status check follows");
    Ok(())
}

/// A ticket done: the resident who reported it is asked how it went.
pub async fn done_ticket(store: &Store) -> Result<(), StoreError> {
    let id = register(
        store,
        "Вайнера 15",
        "Нет освещения в подъезде",
        Some("3"),
        "Не горит лампа у квартиры",
        Some(RESIDENT),
    )
    .await?;
    move_to(store, id, TicketStatus::Accepted, "электрик принял заявку").await?;
    move_to(store, id, TicketStatus::Done, "лампа заменена").await?;
    tracing::info!(ticket = %id, "demo: a ticket is done; the resident's feedback call follows");
    Ok(())
}

/// A ticket handed over to the heating company: its hand-off call follows.
pub async fn supplier_ticket(store: &Store) -> Result<(), StoreError> {
    let id = register(
        store,
        "Куйбышева 48",
        "Завоздушена батарея",
        Some("12"),
        "Холодные батареи во всём стояке",
        None,
    )
    .await?;
    store
        .derive_supplier_ticket(id, "ekb-teplo", None, None, Utc::now())
        .await?;
    tracing::info!(ticket = %id, "demo: a ticket is handed over to the heating company by phone");
    Ok(())
}

/// The hot water outage at ул. Малышева, д. 51, told to its residents by phone
/// (urgent: the demo rings at night too).
pub async fn broadcast(store: &Store, bus: &EventBus, config: &Config) -> Result<(), StoreError> {
    let outages = store
        .outages(&TenantScope::Only(vec!["etalon".into()]), None)
        .await?;
    let Some(outage) = outages.first() else {
        return Err(StoreError::not_found("demo outage", "etalon"));
    };
    let progress = crate::dialer::broadcast::start(
        store,
        bus,
        &config.follow_ups,
        outage.id,
        true,
        Utc::now(),
    )
    .await?;
    tracing::info!(outage = %outage.id, numbers = progress.total, "demo: the outage is broadcast");
    Ok(())
}

/// The simulated colleague who handed the ticket over types the supplier's
/// reference into the card once the supplier's dispatcher has answered, and asks
/// for a call back in a minute.
async fn record_references(store: Store, bus: EventBus) {
    let Ok(sub) = bus.subscribe(None) else {
        return;
    };
    let mut live = sub.live;
    loop {
        let event = match live.recv().await {
            Ok(e) => e,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => return,
        };
        let p = &event.payload;
        if event.kind != "supplier.called"
            || p["purpose"] != "supplier-handoff"
            || p["outcome"] != "answered"
        {
            continue;
        }
        let Some(id) = p["supplier_ticket"].as_i64() else {
            continue;
        };
        let update = SupplierUpdate {
            status: None,
            supplier_number: Some(SUPPLIER_REFERENCE.into()),
            recheck_at: Some(Utc::now() + chrono::Duration::seconds(60)),
        };
        match store
            .update_supplier_ticket(crate::store::SupplierTicketId(id), &update, Utc::now())
            .await
        {
            Ok(_) => tracing::info!(
                supplier_ticket = id,
                "demo: the colleague records the supplier's reference"
            ),
            Err(e) => tracing::warn!(error = %e, "demo: cannot record the supplier's reference"),
        }
    }
}

/// One step of the demo's timeline.
#[derive(Debug, Clone, Copy)]
enum Step {
    StatusCheck,
    Feedback,
    SupplierHandoff,
    Broadcast,
}

/// Runs the timeline of the module doc.
pub async fn run(store: Store, bus: EventBus, config: Config) {
    tokio::spawn(record_references(store.clone(), bus.clone()));
    let steps = [
        (20, Step::StatusCheck),
        (5, Step::Feedback),
        (5, Step::SupplierHandoff),
        (10, Step::Broadcast),
    ];
    for (pause, step) in steps {
        tokio::time::sleep(Duration::from_secs(pause)).await;
        let done = match step {
            Step::StatusCheck => accepted_ticket(&store).await,
            Step::Feedback => done_ticket(&store).await,
            Step::SupplierHandoff => supplier_ticket(&store).await,
            Step::Broadcast => broadcast(&store, &bus, &config).await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, ?step, "demo: a follow-up step failed");
        }
    }
}

//! The demo's hand-off chain: an emergency ticket phoned through its levels within
//! a minute of starting, with people behind the simulated provider who do what a
//! newcomer should see.
//!
//! УК «Эталон»'s plumbing in the «Центр» house group gets three round-the-clock
//! executors: level 1 does not answer, level 2 is busy, level 3 takes the
//! informer's call and presses 1. Levels 1 and 2 are reached operator-first (a
//! simulated colleague, or you at the console, is rung first with the ticket on
//! the card), level 3 by the informer. Ten seconds after start, and every five
//! minutes after, a burst pipe at ул. Малышева, д. 51 is registered.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{Config, Reach};
use crate::phone::PhoneNumber;
use crate::sim::{Party, Script};
use crate::store::assignment::Shift;
use crate::store::directory::{NewEmployee, Responsibility};
use crate::store::tickets::Channel;
use crate::store::{NewTicket, Store, StoreError, TenantScope};

/// Level 1: rings and never answers.
pub const LEVEL1: (&str, &str) = ("Петров Иван Сергеевич", "+79124000001");
/// Level 2: busy.
pub const LEVEL2: (&str, &str) = ("Сидоров Павел Андреевич", "+79124000002");
/// Level 3: answers the informer and presses 1.
pub const LEVEL3: (&str, &str) = ("Орлов Виктор Николаевич", "+79124000003");

/// How often the demo registers another burst pipe.
pub const EVERY: Duration = Duration::from_secs(300);

fn phone(text: &str) -> Result<PhoneNumber, StoreError> {
    PhoneNumber::parse(text).map_err(|e| StoreError::invalid("phone", e.to_string()))
}

/// The chain policy of the demo: seconds instead of minutes.
pub fn policy(config: &mut Config) {
    config.dialer.ring_timeout = Duration::from_secs(8);
    let p = &mut config.chains.defaults;
    p.attempts = 2;
    p.attempt_interval = Duration::from_secs(5);
    p.level_timeout = Duration::from_secs(45);
    p.broadcast_window = Duration::from_secs(60);
    p.escalation_step = Duration::from_secs(20);
    p.operator_wait = Duration::from_secs(5);
    p.level_modes = [Reach::OperatorFirst, Reach::OperatorFirst, Reach::Informer];
    p.escalation_mode = Reach::Informer;
}

/// One line for the banner the demo prints at start.
pub fn describe(config: &Config) -> String {
    let p = config.chains.policy("etalon", "emergency");
    format!(
        "{} tries per number {} s apart, ringing {} s; a level {} s, the informer's round {} s; operator-first waits {} s for an operator",
        p.attempts,
        p.attempt_interval.as_secs(),
        config.dialer.ring_timeout.as_secs(),
        p.level_timeout.as_secs(),
        p.broadcast_window.as_secs(),
        p.operator_wait.as_secs()
    )
}

/// The provider's people: the three levels as described, and everyone else
/// (residents called back, the other staff) answering after three seconds and
/// hanging up after 25.
pub fn script() -> Script {
    let mut parties = HashMap::new();
    let number = |n: &str| PhoneNumber::parse(n).ok();
    if let Some(n) = number(LEVEL1.1) {
        parties.insert(n, Party::RingsOut);
    }
    if let Some(n) = number(LEVEL2.1) {
        parties.insert(n, Party::Busy);
    }
    if let Some(n) = number(LEVEL3.1) {
        parties.insert(
            n,
            Party::Answers {
                after: Duration::from_secs(3),
                hang_up_after: None,
                voice: "ru/survey-thanks.wav".into(),
                // Pressed while the informer reads the ticket out.
                keys: vec![(Duration::from_secs(9), '1')],
            },
        );
    }
    Script {
        parties,
        others: Party::Answers {
            after: Duration::from_secs(3),
            hang_up_after: Some(Duration::from_secs(25)),
            voice: "ru/survey-thanks.wav".into(),
            keys: Vec::new(),
        },
    }
}

/// Puts the three executors into УК «Эталон»'s plumbing matrix of «Центр»
/// (idempotent: they are matched by name).
pub async fn seed(store: &Store) -> Result<(), StoreError> {
    let hired = store.employees(&TenantScope::All, Some("etalon")).await?;
    let mut levels = Vec::new();
    for (name, number) in [LEVEL1, LEVEL2, LEVEL3] {
        let id = match hired.iter().find(|e| e.name == name) {
            Some(e) => e.id,
            None => {
                store
                    .create_employee(&NewEmployee {
                        tenant: Some("etalon".into()),
                        supplier: None,
                        name: name.into(),
                        position: "аварийная служба (демо)".into(),
                        phones: vec![phone(number)?],
                        work_types: vec!["plumbing".into()],
                        shifts: Shift::every_day("00:00", "00:00")?,
                        absences: Vec::new(),
                    })
                    .await?
            }
        };
        levels.push(vec![id]);
    }
    let find = |name: &str| {
        hired
            .iter()
            .find(|e| e.name.starts_with(name))
            .map(|e| e.id)
    };
    let [l1, l2, l3]: [Vec<_>; 3] = levels
        .try_into()
        .map_err(|_| StoreError::invalid("levels", "three levels"))?;
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [l1, l2, l3],
            responsible: find("Фёдорова"),
            manager: find("Павлова"),
            head: find("Смирнов"),
        })
        .await
}

/// Registers a burst pipe at ул. Малышева, д. 51: its chain starts at once.
pub async fn register_burst_pipe(store: &Store) -> Result<(), StoreError> {
    let houses = store
        .houses(
            &TenantScope::All,
            &crate::store::HouseFilter {
                tenant: Some("etalon".into()),
                q: Some("Малышева 51".into()),
                offset: None,
                limit: Some(1),
            },
        )
        .await?;
    let house = houses
        .items
        .first()
        .ok_or_else(|| StoreError::not_found("demo house", "ул. Малышева, д. 51"))?;
    let reasons = store
        .reasons(Some("etalon"), Some("Прорыв трубы"), None)
        .await?;
    let reason = reasons
        .first()
        .ok_or_else(|| StoreError::not_found("demo reason", "pipe-burst"))?;
    let registered = store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: house.id,
                apartment: None,
                reason_id: reason.id,
                description: "Прорвало трубу в подвале, вода поступает в электрощитовую".into(),
                source: Channel::Phone,
                labels: vec!["демо".into()],
                caller_phone: None,
                call_id: None,
                actor: "demo".into(),
            },
            chrono::Utc::now(),
        )
        .await?;
    tracing::info!(number = %registered.ticket.number, "demo: a burst pipe is registered; its hand-off chain starts");
    Ok(())
}

/// Registers a burst pipe ten seconds from now and every [`EVERY`] after.
pub async fn burst_pipes(store: Store) {
    tokio::time::sleep(Duration::from_secs(10)).await;
    loop {
        if let Err(e) = register_burst_pipe(&store).await {
            tracing::warn!(error = %e, "demo: cannot register the burst pipe");
        }
        tokio::time::sleep(EVERY).await;
    }
}

//! What the follow-up call stories share: a company whose executor is on duty
//! round the clock, an engine whose trunk leads to SIPp playing the people the
//! engine calls after a ticket was handed over (tests/sipp/follow_up_people.xml),
//! and a ticket registered and moved at chosen times.

use std::path::Path;

use chrono::{DateTime, Utc};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::assignment::Shift;
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    Category, EmployeeId, HouseId, NewTicket, ReasonId, StatusUpdate, Store, TicketId, TicketStatus,
};

use super::engine::free_port;
use super::sipp;

/// The executor: presses 2 (in progress) on a status check.
pub const EXECUTOR: &str = "+79140000001";
/// A resident: rates 4, then 5.
pub const RESIDENT: &str = "+79140000002";
/// Busy.
pub const BUSY: &str = "+79140000003";
/// Talks until the engine hangs up (a supplier's dispatcher, a staff member).
pub const TALKER: &str = "+79140000009";

/// The company's world.
pub struct World {
    pub house: HouseId,
    pub house2: HouseId,
    pub intercom: ReasonId,
    pub executor: EmployeeId,
    pub staff: EmployeeId,
}

pub fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

/// Seeds `etalon` in city `city` (zone `zone`) with two houses, a planned intercom
/// reason, the executor on level 1 of the intercom matrix, a staff member whose
/// phone is [`TALKER`] and the supplier `teplo` whose dispatch number is [`TALKER`].
pub async fn seed(store: &Store, city: &str, zone: &str) -> World {
    store.create_city(city, "Город", zone).await.unwrap();
    store
        .create_work_type("intercom", "Домофоны")
        .await
        .unwrap();
    store
        .create_tenant("etalon", "УК «Эталон»", city)
        .await
        .unwrap();
    store
        .create_supplier("teplo", "Теплосеть", city, Some(&phone(TALKER)))
        .await
        .unwrap();
    store
        .create_house_group("etalon", "center", "Центр")
        .await
        .unwrap();
    let house = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 5", 9, 1)
        .await
        .unwrap();
    let house2 = store
        .create_house("etalon", Some("center"), "ул. Мира, д. 3", 5, 0)
        .await
        .unwrap();
    let intercom = store
        .create_reason(&NewReason {
            tenant: None,
            code: "intercom".into(),
            category: Category::Planned,
            title: "Не работает домофон".into(),
            work_type: "intercom".into(),
            deadline_minutes: 3 * 24 * 60,
            operator_text: "Мастер придёт".into(),
            keywords: String::new(),
        })
        .await
        .unwrap();
    let employee = |name: &str, number: &str| NewEmployee {
        tenant: Some("etalon".into()),
        supplier: None,
        name: name.into(),
        position: String::new(),
        phones: vec![phone(number)],
        work_types: vec!["intercom".into()],
        shifts: Shift::every_day("00:00", "00:00").unwrap(),
        absences: vec![],
    };
    let executor = store
        .create_employee(&employee("Мастер Домофонов", EXECUTOR))
        .await
        .unwrap();
    let staff = store
        .create_employee(&employee("Инженер Участка", TALKER))
        .await
        .unwrap();
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "intercom".into(),
            levels: [vec![executor], vec![], vec![]],
            responsible: None,
            manager: None,
            head: None,
        })
        .await
        .unwrap();
    World {
        house,
        house2,
        intercom,
        executor,
        staff,
    }
}

/// Registers a planned intercom ticket at `at`, reported by `caller`.
pub async fn ticket(store: &Store, w: &World, caller: Option<&str>, at: DateTime<Utc>) -> TicketId {
    store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.house,
                apartment: Some("7".into()),
                reason_id: w.intercom,
                description: "Домофон не открывает дверь".into(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: caller.map(phone),
                call_id: None,
                actor: "1001".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket
        .id
}

/// Moves ticket `t` to `to` at `at`.
pub async fn move_to(store: &Store, t: TicketId, to: TicketStatus, at: DateTime<Utc>) {
    store
        .change_status(
            t,
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

/// An engine configuration: the tenant and dispatch numbers on a trunk to
/// `provider` (SIPp), operator 1001 and supervisor 2001, and `follow_ups` as the
/// `[follow_ups]` table.
pub fn config(provider: u16, city: &str, follow_ups: &str) -> String {
    format!(
        r#"
[dialer]
attempts = 2
attempt_interval_s = 2
ring_timeout_s = 5
status_check_delay_s = 7200
staff_callback_target_s = 120
broadcast_rate = 10.0
inbound_reserve = 0

[follow_ups]
{follow_ups}

[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:{provider}"
options_interval_s = 0

[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "{city}"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[number]]
number = "+73432000900"
kind = "dispatch"
tenant = "etalon"
trunk = "provider-x"

[[operator]]
extension = "1001"
password = "op1001pass-long"
role = "operator"

[[operator]]
extension = "2001"
password = "sup2001pass-long"
role = "supervisor"
"#
    )
}

/// SIPp playing the people on a free port, logging the messages it received to
/// `people.log` in `dir`; `listen_ms` is how long a broadcast's listener stays.
pub async fn people(dir: &Path, port: u16, listen_ms: u32) -> sipp::Sipp {
    for digit in ["2", "4", "5"] {
        let name = format!("dtmf_2833_{digit}.pcap");
        let capture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/sipp")
            .join(&name);
        std::fs::copy(capture, dir.join(&name)).unwrap();
    }
    let args = sipp::args(&[
        "-sf",
        &sipp::scenario("follow_up_people.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &free_port().to_string(),
        "-d",
        &listen_ms.to_string(),
        "-trace_msg",
        "-message_file",
        "people.log",
    ]);
    let s = sipp::spawn("people", dir, &args);
    sipp::wait_bound(port).await;
    s
}

/// One story's world: its working directory, SIPp playing the people, an engine
/// whose `[follow_ups]` table is `follow_ups`, and the company seeded in a city
/// where it is midday now.
pub struct Story {
    pub dir: std::path::PathBuf,
    pub people: sipp::Sipp,
    pub engine: dispatchline::server::Engine,
    pub world: World,
}

/// Starts a story named `name` (see [`Story`]); a broadcast's listeners stay
/// `listen_ms`.
pub async fn story(name: &str, listen_ms: u32, follow_ups: &str) -> Story {
    let dir = sipp::workdir(name);
    let port = free_port();
    let people = people(&dir, port, listen_ms).await;
    let engine = super::engine::start(&config(port, "ekb", follow_ups)).await;
    let world = seed(&engine.store, "ekb", &zone_where_it_is(12)).await;
    Story {
        dir,
        people,
        engine,
        world,
    }
}

/// A zone (`Etc/GMT±N`) where the local hour is `hour` right now.
pub fn zone_where_it_is(hour: u32) -> String {
    use chrono::Timelike;
    let utc = Utc::now().hour() as i32;
    let mut offset = (hour as i32 - utc).rem_euclid(24);
    if offset > 14 {
        offset -= 24;
    }
    // The Etc zones' signs are inverted (Etc/GMT-5 is UTC+5).
    match offset {
        0 => "Etc/GMT".to_owned(),
        o if o > 0 => format!("Etc/GMT-{o}"),
        o => format!("Etc/GMT+{}", -o),
    }
}

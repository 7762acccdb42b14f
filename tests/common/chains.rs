//! What the hand-off chain stories share: a company whose people are on duty round
//! the clock (so a chain is the same whenever the test runs), an engine with a
//! short chain policy and a trunk to SIPp playing the people, and reading back the
//! INVITEs SIPp received.

use std::collections::HashMap;
use std::path::Path;

use dispatchline::phone::PhoneNumber;
use dispatchline::store::assignment::Shift;
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::{Category, EmployeeId, HouseId, ReasonId, Store};

/// The people of the chain and their numbers (see tests/sipp/chain_people.xml).
pub struct People {
    pub house: HouseId,
    pub flooding: ReasonId,
    pub level1: EmployeeId,
    pub level2: EmployeeId,
    pub level3: EmployeeId,
    pub responsible: EmployeeId,
    pub manager: EmployeeId,
    pub head: EmployeeId,
}

/// Level 1 is switched off on one number and does not answer on the other.
pub const LEVEL1: [&str; 2] = ["+79130000001", "+79130000011"];
/// Level 2 is busy.
pub const LEVEL2: &str = "+79130000002";
/// Level 3 does not answer.
pub const LEVEL3: &str = "+79130000003";
/// The responsible person rejects the call.
pub const RESPONSIBLE: &str = "+79130000004";
/// The manager answers and presses 1.
pub const MANAGER: &str = "+79130000005";
/// The head is switched off.
pub const HEAD: &str = "+79130000006";

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

async fn employee(store: &Store, name: &str, phones: &[&str]) -> EmployeeId {
    store
        .create_employee(&NewEmployee {
            tenant: Some("etalon".into()),
            supplier: None,
            name: name.into(),
            position: String::new(),
            phones: phones.iter().map(|p| phone(p)).collect(),
            work_types: vec!["plumbing".into()],
            shifts: Shift::every_day("00:00", "00:00").unwrap(),
            absences: vec![],
        })
        .await
        .unwrap()
}

/// Seeds the company `etalon` in Екатеринбург with a house on ул. Ленина, a
/// flooding reason (emergency) and the people of the chain, all on duty always.
pub async fn seed(store: &Store) -> People {
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await
        .unwrap();
    store
        .create_work_type("plumbing", "Сантехника")
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
    let house = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 5", 9, 1)
        .await
        .unwrap();
    let flooding = store
        .create_reason(&NewReason {
            tenant: None,
            code: "flooding".into(),
            category: Category::Emergency,
            title: "Затопление сверху".into(),
            work_type: "plumbing".into(),
            deadline_minutes: 60,
            operator_text: "Бригада выезжает".into(),
            keywords: String::new(),
        })
        .await
        .unwrap();
    let level1 = employee(store, "Сантехник Первый", &LEVEL1).await;
    let level2 = employee(store, "Мастер Второй", &[LEVEL2]).await;
    let level3 = employee(store, "Инженер Третий", &[LEVEL3]).await;
    let responsible = employee(store, "Ответственный", &[RESPONSIBLE]).await;
    let manager = employee(store, "Управляющий Домом", &[MANAGER]).await;
    let head = employee(store, "Директор", &[HEAD]).await;
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![level1], vec![level2], vec![level3]],
            responsible: Some(responsible),
            manager: Some(manager),
            head: Some(head),
        })
        .await
        .unwrap();
    People {
        house,
        flooding,
        level1,
        level2,
        level3,
        responsible,
        manager,
        head,
    }
}

/// An engine configuration: the tenant number on a trunk to `provider` (SIPp) and
/// a chain policy in seconds. `extra` is appended (more trunks, operators,
/// `[chains]` keys).
pub fn config(provider: u16, chains: &str, extra: &str) -> String {
    format!(
        r#"
[dialer]
attempts = 5
attempt_interval_s = 1
ring_timeout_s = 1
level_timeout_s = 30
broadcast_window_s = 12

[chains]
escalation_step_s = 4
{chains}

[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:{provider}"
options_interval_s = 0

[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[operator]]
extension = "2001"
password = "sup2001pass-long"
role = "supervisor"

{extra}
"#
    )
}

/// The INVITEs SIPp received, by the number called: how many distinct calls.
pub fn invites_by_number(message_log: &Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(message_log).unwrap_or_default();
    let mut calls: HashMap<String, std::collections::HashSet<String>> = HashMap::new();
    for block in text.split("message received") {
        let Some(request) = block.lines().find(|l| l.starts_with("INVITE sip:")) else {
            continue;
        };
        let number = request
            .trim_start_matches("INVITE sip:")
            .split('@')
            .next()
            .unwrap_or_default()
            .to_owned();
        let call_id = block
            .lines()
            .find_map(|l| {
                l.strip_prefix("Call-ID:")
                    .or_else(|| l.strip_prefix("Call-Id:"))
                    .or_else(|| l.strip_prefix("i:"))
            })
            .unwrap_or_default()
            .trim()
            .to_owned();
        calls.entry(number).or_default().insert(call_id);
    }
    calls.into_iter().map(|(k, v)| (k, v.len())).collect()
}

/// Registers an emergency ticket through the API as `ext`; returns its id.
pub async fn register_ticket(
    http: std::net::SocketAddr,
    ext: &str,
    password: &str,
    people: &People,
) -> i64 {
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .post(format!("http://{http}/api/v1/auth/token"))
        .json(&serde_json::json!({ "extension": ext, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["token"].as_str().expect("logged in").to_owned();
    let created: serde_json::Value = client
        .post(format!("http://{http}/api/v1/tickets"))
        .bearer_auth(&token)
        .json(&serde_json::json!({
            "tenant": "etalon",
            "house_id": people.house,
            "apartment": "12",
            "reason_id": people.flooding,
            "description": "Топит сверху, вода по стене",
            "caller_phone": "+79120000001",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["ticket"]["id"].as_i64().expect("ticket registered")
}

/// Logs in and returns a bearer token.
pub async fn login(http: std::net::SocketAddr, ext: &str, password: &str) -> String {
    let token: serde_json::Value = reqwest::Client::new()
        .post(format!("http://{http}/api/v1/auth/token"))
        .json(&serde_json::json!({ "extension": ext, "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["token"].as_str().expect("logged in").to_owned()
}

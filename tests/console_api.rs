//! `/api/v1/operators` and `/api/v1/board` on a real engine over the demo data: who
//! may change whose state, the JSON errors, the `operator.state` event, and the
//! supervisors' board (operators get 403; the trunks as the engine sees them), with the engine's store on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "common/store_db.rs"]
mod store_db;

use std::path::Path;
use std::time::Duration;

use chrono::Utc;
use dispatchline::config::Config;
use dispatchline::phone::PhoneNumber;
use dispatchline::server::Engine;
use dispatchline::store::{CallDirection, CallRecord, DialKind, Disposition, NewDialJob, Store};
use serde_json::{Value, json};
use store_db::{Dialect, TestDb};

const CONFIG: &str = r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[operator]]
extension = "1001"
name = "Иванова Мария"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "1002"
name = "Смирнова Ольга"
password = "pw-1002"
tenants = ["uyut"]

[[operator]]
extension = "1003"
name = "Козлов Пётр"
password = "pw-1003"

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"

[[operator]]
extension = "9001"
password = "pw-9001"
role = "supervisor"
tenants = ["etalon"]
"#;

struct Running {
    engine: Engine,
    store: Store,
    http: reqwest::Client,
    /// Keeps a PostgreSQL test database alive (and drops it afterwards).
    _db: Option<TestDb>,
}

/// An engine on a fresh store of `dialect` seeded with the demo data; `None` when
/// PostgreSQL is skipped on purpose.
async fn start_on(dialect: Dialect) -> Option<Running> {
    let dir = common::engine::scratch_dir();
    let (db, keep) = match dialect {
        Dialect::Sqlite => (format!("sqlite://{}/dispatchline.db", dir.display()), None),
        Dialect::Postgres => {
            let test_db = TestDb::postgres().await?;
            (test_db.url.clone(), Some(test_db))
        }
    };
    let text = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"{db}\"\ndata_dir = \"{0}\"\n\n[media]\nrecord_calls = false\n\n{CONFIG}",
        dir.display()
    );
    let engine = Engine::start(Config::parse(&text, Path::new("t.toml")).unwrap())
        .await
        .unwrap();
    let store = Store::connect(&db).await.unwrap();
    dispatchline::store::demo::seed(&store).await.unwrap();
    Some(Running {
        engine,
        store,
        http: reqwest::Client::new(),
        _db: keep,
    })
}

async fn start() -> Running {
    start_on(Dialect::Sqlite).await.unwrap()
}

/// Defines `mod $name { sqlite, postgres }` tests running `async fn $name(Running)`.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(super::start_on(super::Dialect::Sqlite).await.unwrap()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(r) = super::start_on(super::Dialect::Postgres).await else {
                    return;
                };
                super::$name(r).await;
            }
        }
    )*};
}

on_both_stores!(
    operators_change_their_own_state_and_supervisors_anyones,
    the_board_is_for_supervisors_and_shows_the_floor_and_the_day,
);

impl Running {
    async fn login(&self, ext: &str) -> String {
        let (_, v) = self
            .call(
                None,
                "POST",
                "/auth/token",
                Some(json!({"extension": ext, "password": format!("pw-{ext}")})),
            )
            .await;
        v["token"].as_str().unwrap().to_owned()
    }

    async fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("http://{}/api/v1{path}", self.engine.http_addr);
        let mut r = self.http.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let response = r.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn set_state(&self, token: &str, ext: &str, body: Value) -> (u16, Value) {
        self.call(
            Some(token),
            "POST",
            &format!("/operators/{ext}/state"),
            Some(body),
        )
        .await
    }
}

async fn operators_change_their_own_state_and_supervisors_anyones(r: Running) {
    let op = r.login("1001").await;
    let sup = r.login("9000").await;
    let sup_etalon = r.login("9001").await;

    let (status, list) = r.call(Some(&op), "GET", "/operators", None).await;
    assert_eq!(status, 200);
    let exts: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["extension"].as_str().unwrap())
        .collect();
    assert_eq!(
        exts,
        ["1001", "1003"],
        "uyut's operator is not etalon's business"
    );
    assert_eq!(list[0]["state"], "logged-out");
    let (_, all) = r.call(Some(&sup), "GET", "/operators", None).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        3,
        "supervisors take no calls"
    );

    let since = r.engine.events.last_seq();
    let (status, view) = r.set_state(&op, "1001", json!({"state": "ready"})).await;
    assert_eq!((status, view["state"].as_str()), (200, Some("ready")));
    // The change is on the bus for every console.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let events = r.engine.events.replay(since).unwrap();
        if events.iter().any(|e| {
            e.kind == "operator.state"
                && e.payload["extension"] == "1001"
                && e.payload["state"] == "ready"
        }) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no operator.state event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let (status, view) = r
        .set_state(&op, "1001", json!({"state": "paused", "reason": "Обед"}))
        .await;
    assert_eq!((status, view["reason"].as_str()), (200, Some("Обед")));

    // Errors name the field.
    for (body, code, field) in [
        (json!({"state": "paused"}), 422, "reason"),
        (json!({"state": "paused", "reason": "  "}), 422, "reason"),
        (json!({"state": "busy"}), 422, "state"),
        (json!({"state": "wrap-up"}), 422, "state"),
        (json!({"state": "sideways"}), 422, "state"),
        (json!({"reason": "x"}), 422, "state"),
        (json!({"state": "ready", "colour": "red"}), 422, "colour"),
    ] {
        let (status, err) = r.set_state(&op, "1001", body.clone()).await;
        assert_eq!(
            (status, err["field"].as_str()),
            (code, Some(field)),
            "{body}: {err}"
        );
        assert!(err["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, err) = r.set_state(&op, "1002", json!({"state": "ready"})).await;
    assert_eq!((status, err["field"].as_str()), (403, Some("extension")));
    let (status, _) = r
        .set_state(&sup_etalon, "1002", json!({"state": "ready"}))
        .await;
    assert_eq!(status, 403, "1002 serves only uyut");
    let (status, view) = r
        .set_state(&sup_etalon, "1003", json!({"state": "ready"}))
        .await;
    assert_eq!((status, view["state"].as_str()), (200, Some("ready")));
    let (status, view) = r
        .set_state(&sup, "1002", json!({"state": "logged-out"}))
        .await;
    assert_eq!((status, view["state"].as_str()), (200, Some("logged-out")));
    let (status, err) = r.set_state(&sup, "7777", json!({"state": "ready"})).await;
    assert_eq!((status, err["field"].as_str()), (404, Some("extension")));
    let (status, err) = r
        .call(
            None,
            "POST",
            "/operators/1001/state",
            Some(json!({"state": "ready"})),
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (401, Some("token")));
}

async fn the_board_is_for_supervisors_and_shows_the_floor_and_the_day(r: Running) {
    let op = r.login("1001").await;
    let sup = r.login("9000").await;
    let sup_etalon = r.login("9001").await;
    let (status, err) = r.call(Some(&op), "GET", "/board", None).await;
    assert_eq!(status, 403, "{err}");
    assert!(err["error"].as_str().unwrap().contains("supervisor"));

    let now = Utc::now();
    let mut c = CallRecord::offered(
        "c1",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        now,
    );
    c.tenant = Some("etalon".into());
    c.answered_at = Some(now);
    c.wait_seconds = Some(3);
    c.disposition = Some(Disposition::Answered);
    r.store.upsert_call(&c).await.unwrap();
    r.store
        .create_dial_job(
            &NewDialJob {
                kind: DialKind::StatusCheck,
                tenant: Some("uyut".into()),
                target: PhoneNumber::parse("+79123000100").unwrap(),
                due_at: now,
                max_attempts: 5,
                ticket_id: None,
                call_id: None,
                deadline_at: None,
                quiet_hours: false,
                reach: None,
                outage_id: None,
                supplier_ticket_id: None,
            },
            now,
        )
        .await
        .unwrap();
    r.set_state(&op, "1001", json!({"state": "ready"})).await;

    let (status, board) = r.call(Some(&sup), "GET", "/board", None).await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["waiting"], json!([]));
    // The board refreshes often; the dial job's target is logged once per supervisor.
    for _ in 0..3 {
        r.call(Some(&sup), "GET", "/board", None).await;
    }
    let logged = r
        .engine
        .store
        .access_log(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.principal == "9000" && e.purpose == "GET /board")
        .count();
    assert_eq!(logged, 1, "one access-log row for one dial job");
    assert_eq!(board["operator_counts"]["ready"], 1);
    assert_eq!(board["operator_counts"]["logged-out"], 2);
    assert_eq!(board["dial_jobs"].as_array().unwrap().len(), 1);
    assert_eq!(board["cities"][0]["code"], "ekb");
    // The trunks, as the engine sees them: never probed (no keepalives) yet.
    assert_eq!(
        board["trunks"],
        json!([{"name": "provider-x", "health": "unknown", "registered": null, "usable": true,
                "register_error": null, "since": null, "reason": null}]),
        "{board}"
    );
    let day = &board["compliance"];
    assert_eq!(day["city"], "ekb");
    assert_eq!(day["answered_30s"]["met"], 1);
    assert_eq!(day["hourly"].as_array().unwrap().len(), 24);

    // An etalon supervisor does not see uyut's dial job or operator.
    let (_, board) = r.call(Some(&sup_etalon), "GET", "/board", None).await;
    assert_eq!(board["dial_jobs"], json!([]));
    assert!(
        board["operators"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["extension"] != "1002")
    );

    let (status, err) = r.call(Some(&sup), "GET", "/board?city=msk", None).await;
    assert_eq!((status, err["field"].as_str()), (422, Some("city")));
    let (status, err) = r
        .call(Some(&sup), "GET", "/board?date=yesterday", None)
        .await;
    assert_eq!((status, err["field"].as_str()), (400, Some("date")));
    let (status, board) = r
        .call(Some(&sup), "GET", "/board?city=ekb&date=2020-01-01", None)
        .await;
    assert_eq!(
        (
            status,
            board["compliance"]["answered_30s"]["total"].as_i64()
        ),
        (200, Some(0))
    );
}

#[tokio::test]
async fn the_console_page_is_served_from_the_binary() {
    let r = start().await;
    let base = format!("http://{}", r.engine.http_addr);
    let page = r.http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("lang=\"ru\""));
    for asset in ["/static/console.js", "/static/console.css", "/favicon.svg"] {
        assert!(html.contains(asset), "{asset} is linked");
        let r = r.http.get(format!("{base}{asset}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{asset}");
        // Nothing from the network: no absolute URL but the SVG namespace name.
        let body = r
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{asset}"
        );
    }
}

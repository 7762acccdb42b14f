//! Administration over HTTP on a real engine: accounts and roles (a tenant admin
//! manages its own company's staff and nothing else, a tenant viewer reads its
//! tickets and journal and nothing else), a removed account's open console closed
//! and its token refused within a second, a demoted one's tokens revoked, softphone
//! credentials separate from the console password and kept as HA1 only, and the
//! questionnaire uploaded, refused with its bad cells, applied, and the company
//! reported ready to go live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::engine::{self, free_port};
use common::sipp::{self, scenario, spawn};
use dispatchline::server::Engine;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const CONFIG: &str = r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-etalon.wav"

[[number]]
number = "+73432000002"
kind = "tenant"
tenant = "uyut"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-uyut.wav"

[[operator]]
extension = "1001"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "1002"
password = "pw-1002"

[[operator]]
extension = "9000"
password = "pw-9000"
role = "supervisor"
"#;

struct Api {
    engine: Engine,
    http: reqwest::Client,
}

impl Api {
    async fn start(seed: bool) -> Self {
        let engine = engine::start(CONFIG).await;
        if seed {
            dispatchline::store::demo::seed(&engine.store)
                .await
                .unwrap();
        }
        Self {
            engine,
            http: reqwest::Client::new(),
        }
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

    async fn login_with(&self, ext: &str, password: &str) -> (u16, Value) {
        self.call(
            None,
            "POST",
            "/auth/token",
            Some(json!({"extension": ext, "password": password})),
        )
        .await
    }

    async fn login(&self, ext: &str, password: &str) -> String {
        let (status, v) = self.login_with(ext, password).await;
        assert_eq!(status, 200, "{ext}: {v}");
        v["token"].as_str().unwrap().to_owned()
    }

    async fn upload(
        &self,
        token: &str,
        tenant: &str,
        dry_run: bool,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let url = format!(
            "http://{}/api/v1/onboarding?tenant={tenant}&dry_run={dry_run}",
            self.engine.http_addr
        );
        let response = self
            .http
            .post(url)
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_staff_manage_and_read_their_own_company_only() {
    let api = Api::start(true).await;
    let boss = api.login("9000", "pw-9000").await;
    let (status, admin) = api
        .call(
            Some(&boss),
            "POST",
            "/users",
            Some(
                json!({"extension": "adm-uyut", "name": "Админ УК Уют", "role": "tenant-admin",
                        "tenants": ["uyut"], "password": "uyut-admin-pass"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{admin}");
    assert_eq!(admin["softphone"], false);
    // Stored as argon2 only.
    let row: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE extension = 'adm-uyut'")
            .fetch_one(&sqlx::SqlitePool::connect(&api.engine_url()).await.unwrap())
            .await
            .unwrap();
    assert!(row.starts_with("$argon2id$") && !row.contains("uyut-admin-pass"));

    let adm = api.login("adm-uyut", "uyut-admin-pass").await;
    // It creates a viewer of its company, but no operator and no viewer of another.
    let viewer = json!({"extension": "view-uyut", "role": "tenant-viewer", "tenants": ["uyut"], "password": "uyut-viewer-pass"});
    let (status, body) = api.call(Some(&adm), "POST", "/users", Some(viewer)).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api
        .call(Some(&adm), "POST", "/users", Some(json!({"extension": "op9", "role": "operator", "tenants": ["uyut"], "password": "operator-pass"})))
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(Some(&adm), "POST", "/users", Some(json!({"extension": "v2", "role": "tenant-viewer", "tenants": ["etalon"], "password": "viewer-pass-2"})))
        .await;
    assert_eq!(status, 403);
    let (status, body) = api
        .call(Some(&adm), "POST", "/users", Some(json!({"extension": "v3", "role": "tenant-viewer", "tenants": ["uyut"], "password": "short"})))
        .await;
    assert_eq!(
        (status, body["field"].as_str()),
        (422, Some("password")),
        "{body}"
    );
    let (status, users) = api.call(Some(&adm), "GET", "/users", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["extension"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["adm-uyut", "view-uyut"], "only its company's staff");
    // It edits its company's reference data, not another's, and not the floor.
    let (status, _) = api.call(Some(&adm), "GET", "/board", None).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .call(
            Some(&adm),
            "POST",
            "/tags",
            Some(json!({"tenant": "uyut", "code": "vip", "name": "Важный"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = api
        .call(
            Some(&adm),
            "POST",
            "/tags",
            Some(json!({"tenant": "etalon", "code": "vip", "name": "Важный"})),
        )
        .await;
    assert_eq!(status, 403);

    // The viewer reads tickets and the journal, nothing else.
    let view = api.login("view-uyut", "uyut-viewer-pass").await;
    let (status, tickets) = api.call(Some(&view), "GET", "/tickets", None).await;
    assert_eq!(status, 200);
    assert!(
        tickets["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tenant"] == "uyut")
    );
    let (status, _) = api.call(Some(&view), "GET", "/calls", None).await;
    assert_eq!(status, 200);
    for path in [
        "/contacts",
        "/employees",
        "/caller?phone=%2B79120000001",
        "/users",
        "/board",
        "/calls/active",
    ] {
        let (status, _) = api.call(Some(&view), "GET", path, None).await;
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = api
        .call(Some(&view), "POST", "/tickets", Some(json!({})))
        .await;
    assert_eq!(status, 403);

    // Every change is in the admin log, the admin sees its company's.
    let (status, log) = api.call(Some(&adm), "GET", "/admin-log", None).await;
    assert_eq!(status, 200);
    let subjects: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.contains(&"tag") && subjects.contains(&"user"),
        "{log}"
    );
}

impl Api {
    fn engine_url(&self) -> String {
        self.engine.store.url().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_operators_console_closes_and_their_token_is_refused_within_a_second() {
    let api = Api::start(true).await;
    let boss = api.login("9000", "pw-9000").await;
    let token = api.login("1001", "pw-1001").await;
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", api.engine.http_addr))
            .await
            .unwrap();
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
    assert!(
        api.engine
            .call_handle
            .operators()
            .await
            .unwrap()
            .iter()
            .any(|o| o.extension == "1001")
    );

    let removed_at = tokio::time::Instant::now();
    let (status, _) = api.call(Some(&boss), "DELETE", "/users/1001", None).await;
    assert_eq!(status, 204);
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame.unwrap(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("the console was not closed within a second: {other:?}"),
        }
    };
    assert!(removed_at.elapsed() < Duration::from_secs(1));
    assert_eq!(
        u16::from(close.code),
        dispatchline::console::ws::CLOSE_UNAUTHORIZED
    );
    let (status, _) = api.call(Some(&token), "GET", "/tickets", None).await;
    assert_eq!(status, 401);
    let (status, _) = api.login_with("1001", "pw-1001").await;
    assert_eq!(status, 401);
    // The queue follows: 1001 takes no more calls.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    while api
        .engine
        .call_handle
        .operators()
        .await
        .unwrap()
        .iter()
        .any(|o| o.extension == "1001")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "1001 still in the roster"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Re-creating the extension is refused: the journal names the old account.
    let (status, _) = api
        .call(
            Some(&boss),
            "POST",
            "/users",
            Some(json!({"extension": "1001", "role": "operator", "password": "another-pass"})),
        )
        .await;
    assert_eq!(status, 409);

    // Demoting revokes too.
    let other = api.login("1002", "pw-1002").await;
    let (status, body) = api
        .call(
            Some(&boss),
            "PUT",
            "/users/1002",
            Some(json!({"role": "tenant-viewer", "tenants": ["uyut"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["softphone"], false);
    let (status, _) = api.call(Some(&other), "GET", "/tickets", None).await;
    assert_eq!(status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_softphone_registers_with_its_own_sip_password_kept_as_ha1_only() {
    let api = Api::start(true).await;
    let boss = api.login("9000", "pw-9000").await;
    let (status, body) = api
        .call(
            Some(&boss),
            "POST",
            "/users",
            Some(
                json!({"extension": "3001", "role": "operator", "tenants": ["etalon"],
                        "password": "console-pass-1", "sip_password": "softphone-pass-9"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let pool = sqlx::SqlitePool::connect(api.engine.store.url())
        .await
        .unwrap();
    let (md5, hash): (String, String) =
        sqlx::query_as("SELECT sip_ha1_md5, password_hash FROM users WHERE extension = '3001'")
            .fetch_one(&pool)
            .await
            .unwrap();
    use md5::Digest as _;
    let expected: String = md5::Md5::digest(b"3001:dispatchline:softphone-pass-9")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(md5, expected);
    assert!(!hash.contains("console-pass-1"));

    // The roster follows at once; the console password does not register, the SIP
    // password does.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while !api
        .engine
        .call_handle
        .operators()
        .await
        .unwrap()
        .iter()
        .any(|o| o.extension == "3001")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "3001 not in the roster"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dir = sipp::workdir("api-admin-softphone");
    let register = |password: &str, file: &str| {
        sipp::args(&[
            "-sf",
            &scenario(file),
            &api.engine.sip_addr.to_string(),
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            "3001",
            "-au",
            "3001",
            "-ap",
            password,
            "-key",
            "contact_port",
            &free_port().to_string(),
            "-p",
            &free_port().to_string(),
        ])
    };
    spawn(
        "register-wrong",
        &dir,
        &register("console-pass-1", "operator_register_wrong.xml"),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("the console password is refused");
    spawn(
        "register",
        &dir,
        &register("softphone-pass-9", "operator_register.xml"),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("the SIP password registers");
    let ops = api.engine.call_handle.operators().await.unwrap();
    assert!(
        ops.iter().any(|o| o.extension == "3001" && o.registered),
        "{ops:?}"
    );
    let (status, _) = api.login_with("3001", "softphone-pass-9").await;
    assert_eq!(status, 401, "the SIP password does not open the console");
    api.login("3001", "console-pass-1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_questionnaire_is_uploaded_checked_applied_and_the_company_is_ready() {
    let api = Api::start(false).await;
    let boss = api.login("9000", "pw-9000").await;
    let template = api
        .http
        .get(format!(
            "http://{}/api/v1/onboarding/template.xlsx",
            api.engine.http_addr
        ))
        .bearer_auth(&boss)
        .send()
        .await
        .unwrap();
    assert_eq!(template.status(), 200);
    let bytes = template.bytes().await.unwrap();
    let book = dispatchline::store::onboarding::Workbook::from_xlsx(&bytes).unwrap();
    assert_eq!(book.sheets.len(), 10);

    let workbook = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/onboarding/uyut.xlsx"),
    )
    .unwrap();
    let (status, report) = api.upload(&boss, "uyut", true, workbook.clone()).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["applied"], false);
    assert_eq!(report["sheets"]["houses"]["created"], 8);

    // A bad cell refuses the whole workbook.
    use dispatchline::store::onboarding::workbook::{SheetKind, write_xlsx};
    let bad = write_xlsx(&[(
        SheetKind::Company,
        vec![vec![
            "ekb".into(),
            "Екатеринбург".into(),
            "Mars/Olympus".into(),
            "УК".into(),
        ]],
    )])
    .unwrap();
    let (status, report) = api.upload(&boss, "uyut", false, bad).await;
    assert_eq!(status, 422);
    assert!(
        report["faults"][0]["cell"] == "C2" && report["faults"][0]["sheet"] == "Компания",
        "{report}"
    );
    assert!(api.engine.store.tenant("uyut").await.unwrap().is_none());

    let (status, report) = api.upload(&boss, "uyut", false, workbook.clone()).await;
    assert_eq!(
        (status, &report["applied"]),
        (200, &json!(true)),
        "{report}"
    );
    let (_, again) = api.upload(&boss, "uyut", false, workbook).await;
    assert_eq!(again["applied"], false, "nothing left to change");

    let (status, readiness) = api
        .call(Some(&boss), "GET", "/tenants/uyut/readiness", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(readiness["ready"], true, "{readiness:#}");
    // etalon has no houses yet: the check says what is missing.
    let (status, body) = api
        .call(
            Some(&boss),
            "POST",
            "/cities",
            Some(json!({"code": "msk", "name": "Москва", "time_zone": "Europe/Moscow"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = api
        .call(
            Some(&boss),
            "POST",
            "/tenants",
            Some(json!({"code": "etalon", "name": "УК «Эталон»", "city": "ekb"})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, readiness) = api
        .call(Some(&boss), "GET", "/tenants/etalon/readiness", None)
        .await;
    assert_eq!(readiness["ready"], false);
    let houses = readiness["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "houses")
        .unwrap();
    assert_eq!(houses["ok"], false);
    let duty = readiness["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "duty")
        .unwrap();
    assert_eq!(
        duty["missing"][0],
        "nobody on shift at any hour of the week"
    );
}

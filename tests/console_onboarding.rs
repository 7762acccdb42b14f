//! The settings screens in real headless Chromium against a real engine: a new
//! company's admin logs in, sees what the company still lacks to go live, uploads
//! the questionnaire, reads the dry-run report, applies it, and the go-live check
//! turns green; in the house list the admin finds a house and sees who would be
//! sent to a leak there; the admin gives that executor a vacation from today, and
//! the assignment preview for the same house now skips them. Screenshots of every
//! step are in `tests/artifacts/console_onboarding/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::Browser;
use dispatchline::config::Config;
use dispatchline::server::Engine;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(15);

const CONFIG: &str = r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5999"
options_interval_s = 0

[[number]]
number = "+73432000002"
kind = "tenant"
tenant = "uyut"
city = "ekb"
trunk = "provider-x"
greeting = "ru/greeting-uyut.wav"

[[operator]]
extension = "9000"
name = "Петров Сергей"
password = "pw-9000"
role = "supervisor"
"#;

async fn api(
    engine: &Engine,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(
            method.parse().unwrap(),
            format!("http://{}/api/v1{path}", engine.http_addr),
        )
        .json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let response = r.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_admin_loads_the_questionnaire_and_a_vacation_changes_the_assignment() {
    let dir = common::engine::scratch_dir();
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = false\nprompts_dir = \"{1}/ivr-prompts\"\n\n{CONFIG}",
        dir.display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let engine = Engine::start(Config::parse(&config, Path::new("onboarding-test.toml")).unwrap())
        .await
        .unwrap();
    // The dispatch centre's supervisor opens the company and gives it an admin.
    let (_, login) = api(
        &engine,
        None,
        "POST",
        "/auth/token",
        json!({"extension": "9000", "password": "pw-9000"}),
    )
    .await;
    let boss = login["token"].as_str().unwrap().to_owned();
    for (path, body) in [
        (
            "/cities",
            json!({"code": "ekb", "name": "Екатеринбург", "time_zone": "Asia/Yekaterinburg"}),
        ),
        (
            "/tenants",
            json!({"code": "uyut", "name": "УК «Уютный дом»", "city": "ekb"}),
        ),
        (
            "/users",
            json!({"extension": "adm-uyut", "name": "Смирнова Ольга", "role": "tenant-admin", "tenants": ["uyut"], "password": "uyut-admin-pass"}),
        ),
    ] {
        let (status, body) = api(&engine, Some(&boss), "POST", path, body).await;
        assert_eq!(status, 201, "{path}: {body}");
    }

    let mut b = Browser::start("console_onboarding").await;
    b.goto(&format!("http://{}/", engine.http_addr)).await;
    let ext = b.wait_for("#login-extension", None, WAIT).await;
    b.type_into(&ext, "adm-uyut").await;
    b.type_into(&b.find("#login-password").await, "uyut-admin-pass")
        .await;
    b.click(&b.find("#login-submit").await).await;

    // The go-live check lists what is missing.
    b.wait_text("#me-name", Some("администратор УК"), WAIT)
        .await;
    b.wait_text("#rd-verdict", Some("не готово"), WAIT).await;
    b.wait_text("#rd-checks li[data-check=houses]", Some("no houses"), WAIT)
        .await;
    let hidden: Value = b
        .js("return [document.getElementById('tab-call').hidden, document.getElementById('tab-board').hidden]", vec![])
        .await;
    assert_eq!(
        hidden,
        json!([true, true]),
        "no calls, no floor for a tenant admin"
    );
    b.screenshot("not-ready").await;

    // The questionnaire: a dry run first.
    b.wait_click(".subtabs button[data-pane=workbook]", None, WAIT)
        .await;
    let workbook = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/onboarding/uyut.xlsx");
    let file = b.wait_for("#ob-file", None, WAIT).await;
    b.type_into(&file, workbook.to_str().unwrap()).await;
    b.wait_click("#ob-check", None, WAIT).await;
    b.wait_text("#ob-status", Some("Ошибок нет"), WAIT).await;
    let houses = b
        .wait_text("#ob-report-body tr[data-sheet=houses]", None, WAIT)
        .await;
    assert!(houses.contains("Дома") && houses.contains('8'), "{houses}");
    let tenant_houses: Value = b
        .js(
            "return document.querySelectorAll('#ob-faults li').length",
            vec![],
        )
        .await;
    assert_eq!(tenant_houses, json!(0));
    assert!(
        engine
            .store
            .houses(
                &dispatchline::store::directory::TenantScope::All,
                &Default::default()
            )
            .await
            .unwrap()
            .items
            .is_empty(),
        "a dry run writes nothing"
    );
    b.screenshot("dry-run-report").await;

    b.wait_click("#ob-apply", None, WAIT).await;
    b.wait_text("#ob-status", Some("Анкета загружена"), WAIT)
        .await;
    b.screenshot("applied").await;
    b.wait_click(".subtabs button[data-pane=ready]", None, WAIT)
        .await;
    b.wait_text("#rd-verdict", Some("всё готово"), WAIT).await;
    b.screenshot("ready").await;

    // Who would be sent to a leak at Малышева, 21.
    b.wait_click(".subtabs button[data-pane=houses]", None, WAIT)
        .await;
    let q = b.wait_for("#hs-q", None, WAIT).await;
    b.type_into(&q, "Малышева 21").await;
    b.wait_click("#hs-body tr", Some("Малышева, 21"), WAIT)
        .await;
    b.wait_for("#hs-chain li[data-employee]", None, WAIT).await;
    let reason: Value = b
        .js(
            "const s = document.getElementById('hs-reason'); \
             const o = [...s.options].find((o) => o.text === 'Течь в квартире'); \
             s.value = o.value; s.dispatchEvent(new Event('change')); return o.value",
            vec![],
        )
        .await;
    assert!(reason.is_string());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = b
        .wait_text("#hs-chain li[data-employee]", Some("Уровень 1"), WAIT)
        .await;
    let name = first.trim_start_matches("Уровень 1: ").trim().to_owned();
    b.screenshot("assignment-before").await;

    // The admin gives that executor a vacation from today.
    b.wait_click(".subtabs button[data-pane=employees]", None, WAIT)
        .await;
    let q = b.wait_for("#em-q", None, WAIT).await;
    b.type_into(&q, &name).await;
    b.wait_click("#em-body tr", Some(&name), WAIT).await;
    b.wait_text("#em-title", Some(&name), WAIT).await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Asia::Yekaterinburg)
        .date_naive();
    let (from, to) = (
        today.pred_opt().unwrap(),
        today + chrono::Duration::days(14),
    );
    b.js(
        "const f = document.getElementById('ab-form'); f.elements.starts_on.value = arguments[0]; f.elements.ends_on.value = arguments[1];",
        vec![json!(from.to_string()), json!(to.to_string())],
    )
    .await;
    b.wait_click("#ab-form button[type=submit]", None, WAIT)
        .await;
    b.wait_text("#em-absences li", Some("отпуск"), WAIT).await;
    b.screenshot("vacation").await;

    // The preview for the same house now skips them.
    b.wait_click(".subtabs button[data-pane=houses]", None, WAIT)
        .await;
    b.wait_click("#hs-body tr", Some("Малышева, 21"), WAIT)
        .await;
    b.js(
        "const s = document.getElementById('hs-reason'); s.value = arguments[0]; s.dispatchEvent(new Event('change'));",
        vec![reason],
    )
    .await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let chain: Value = b
            .js(
                "return [...document.querySelectorAll('#hs-chain li')].map((li) => li.textContent)",
                vec![],
            )
            .await;
        let items: Vec<String> = chain
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let skipped = !items.is_empty()
            && !items
                .iter()
                .any(|i| i.starts_with("Уровень") && i.ends_with(&name));
        if skipped {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still in the chain: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot("assignment-after").await;
    b.quit().await;
    engine.shutdown(Duration::from_secs(5)).await;
}

//! The operator console in real headless Chromium against a real engine over the
//! demo data: an operator logs in and goes ready; a call arrives and the call card
//! shows the caller's address and the outage from the screen-pop itself; the
//! operator sees the executor while filling the ticket form, registers an
//! emergency ticket and reads its number; F5 mid-call keeps the card; the ticket is
//! red in the list; the call's recording plays; a real network drop (a proxy
//! between the browser and the engine cuts every connection) shows the offline
//! banner and greyed cards, then resumes with `since` and shows nothing twice; a
//! call re-offered to the operator gets its card back; an unknown citywide caller's
//! form asks for the УК; an engine restart is detected by the epoch and the state
//! reloaded with a notice; the supervisor's board shows the compliance tiles and a
//! readable chart, in both themes. A second story: an unknown resident calls the
//! citywide number, the card asks the operator to choose the УК, the operator picks
//! one and the card and the ticket form show it; the supervisor's board shows the
//! trunks green (up) and red (down), and a trunk that comes back turns green live.
//! Screenshots of every step are in `tests/artifacts/console_browser/` and
//! `tests/artifacts/console_browser_citywide/`.
//!
//! The call is real: SIPp registers operator 1001's softphone and answers for it, a
//! SIPp resident calls the tenant number over SIP and RTP, and the page shows what
//! the call core publishes; the recording played is the call's own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "common/browser.rs"]
mod browser;

use std::path::Path;
use std::time::Duration;

use browser::{Browser, CutProxy};
use common::engine::free_port;
use common::sipp::{self, Sipp};
use dispatchline::config::Config;
use dispatchline::server::Engine;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

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

[[operator]]
extension = "1001"
name = "Иванова Мария"
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "9000"
name = "Петров Сергей"
password = "pw-9000"
role = "supervisor"
"#;

struct World {
    engine: Engine,
    /// The configuration, to start the engine again on the same database.
    config: String,
    /// What the browser connects to: the engine behind a proxy the test can cut.
    proxy: CutProxy,
    url: String,
}

async fn world() -> World {
    world_with(CONFIG).await
}

/// A world whose telephony (trunks, numbers, operators) is `telephony`.
async fn world_with(telephony: &str) -> World {
    let dir = common::engine::scratch_dir();
    let config = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\ndigest_algorithms = [\"MD5\"]\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n\
         [database]\nurl = \"sqlite://{0}/dispatchline.db\"\ndata_dir = \"{0}\"\n\n\
         [media]\nrecord_calls = true\nprompts_dir = \"{1}/ivr-prompts\"\n\n{telephony}",
        dir.display(),
        env!("CARGO_MANIFEST_DIR"),
    );
    let engine = Engine::start(Config::parse(&config, Path::new("console-test.toml")).unwrap())
        .await
        .unwrap();
    dispatchline::store::demo::seed(&engine.store)
        .await
        .unwrap();
    let proxy = CutProxy::start(engine.http_addr).await;
    let url = format!("http://{}/", proxy.addr);
    World {
        engine,
        config,
        proxy,
        url,
    }
}

/// The screen-pop of a synthetic call, shaped like the engine's.
fn screen_pop(call: &str, from: &str, tenant: Option<&str>, caller: Value) -> Value {
    json!({
        "call": call, "direction": "inbound", "purpose": null, "from": from,
        "to": if tenant.is_some() { "+73432000001" } else { "+73432000100" },
        "number_kind": if tenant.is_some() { "tenant" } else { "citywide" },
        "city": "ekb", "tenant": tenant, "tenant_name": tenant.map(|_| "УК «Эталон»"),
        "original_call": null, "caller": caller,
    })
}

/// A resident calls: SIPp registers operator 1001's softphone (which answers and
/// talks), then a SIPp resident calls `to` from `from` and talks for `talk_ms` after
/// the engine answers. Returns the call id (from `call.offered`) and the two SIPp
/// runs, which end when the resident hangs up.
async fn call_arrives(w: &World, from: &str, to: &str, talk_ms: u32) -> (String, Sipp, Sipp) {
    let dir = sipp::workdir("console-browser");
    let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap");
    std::fs::copy(capture, dir.join("g711a.pcap")).unwrap();
    let port = free_port();
    let answering = sipp::args(&[
        "-sf",
        &sipp::scenario("operator_answers.xml"),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
        "-mp",
        &free_port().to_string(),
    ]);
    let softphone = sipp::spawn("operator", &dir, &answering);
    sipp::wait_bound(port).await;
    let register = sipp::args(&[
        "-sf",
        &sipp::scenario("operator_register.xml"),
        &w.engine.sip_addr.to_string(),
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-key",
        "ext",
        "1001",
        "-au",
        "1001",
        "-ap",
        "pw-1001",
        "-key",
        "contact_port",
        &port.to_string(),
        "-p",
        &free_port().to_string(),
    ]);
    sipp::spawn("register", &dir, &register)
        .finish(WAIT * 3)
        .await
        .assert_success("softphone registration");
    let calling = sipp::args(&[
        "-sf",
        &sipp::scenario("resident_calls.xml"),
        &w.engine.sip_addr.to_string(),
        "-s",
        to,
        "-key",
        "caller",
        from,
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        &talk_ms.to_string(),
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    let resident = sipp::spawn("resident", &dir, &calling);
    let offered = common::engine::wait_for_events(&w.engine, "call.offered", 1, WAIT).await;
    let call = offered
        .iter()
        .find(|e| e.payload["from"] == from)
        .unwrap()
        .payload["call"]
        .as_str()
        .unwrap()
        .to_owned();
    (call, resident, softphone)
}

/// The operator presses «Готов» and the console shows them ready.
async fn go_ready(b: &mut Browser) {
    b.click(&b.find("#btn-ready").await).await;
    b.wait_for("#my-state[data-state='ready']", Some("Готов"), WAIT)
        .await;
}

async fn login(b: &mut Browser, url: &str, extension: &str) {
    b.goto(url).await;
    let ext = b.wait_for("#login-extension", None, WAIT).await;
    b.type_into(&ext, extension).await;
    let pw = b.find("#login-password").await;
    b.type_into(&pw, &format!("pw-{extension}")).await;
    b.click(&b.find("#login-submit").await).await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_takes_a_call_registers_an_emergency_and_plays_the_recording() {
    let mut w = world().await;
    let mut b = Browser::start("console_browser").await;

    // Log in and go ready.
    b.goto(&w.url).await;
    b.wait_for("#login-form", None, WAIT).await;
    b.screenshot("login").await;
    login(&mut b, &w.url, "1001").await;
    go_ready(&mut b).await;
    b.screenshot("ready").await;

    // A call: the card pops with the caller's address and the outage at the house.
    let (call, resident, softphone) =
        call_arrives(&w, "+79120000001", "+73432000001", 40_000).await;
    let card = format!("[data-testid='call-card'][data-call='{call}']");
    let address = b
        .wait_text(
            &format!("{card} [data-testid='caller-address']"),
            Some("Малышева"),
            WAIT,
        )
        .await;
    assert!(address.contains("кв. 12"), "{address}");
    let outage = b
        .wait_text("[data-testid='outage']", Some("Отключение"), WAIT)
        .await;
    assert!(outage.contains("горячая вода"), "{outage}");
    let head = b
        .wait_text("[data-testid='call-card'] header", None, WAIT)
        .await;
    assert!(head.contains("Эталон"), "{head}");
    b.screenshot("call-card").await;
    // The card was built from the screen-pop the stream carried (and logged), not
    // from a lookup of its own.
    let log = w.engine.store.access_log(200).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.principal == "1001" && e.purpose.starts_with("GET /ws call.")),
        "{log:?}"
    );
    assert!(
        !log.iter().any(|e| e.purpose == "GET /caller"),
        "no second lookup: {log:?}"
    );

    // An emergency ticket from the card: house and apartment prefilled; the
    // executor is shown before the ticket is registered.
    b.wait_click(&format!("{card} [data-testid='start-ticket']"), None, WAIT)
        .await;
    let apartment = b
        .js(
            "return document.getElementById('tf-apartment').value",
            vec![],
        )
        .await;
    assert_eq!(apartment, "12");
    let reason = b.find("#tf-reason-q").await;
    b.type_into(&reason, "лифт застр").await;
    // The results re-render as the search answers arrive: click what is there.
    b.wait_click(
        "#tf-reason-results button",
        Some("Застревание в лифте"),
        WAIT,
    )
    .await;
    b.wait_for("#tf-reason-chosen .cat-emergency", None, WAIT)
        .await;
    let preview = b
        .wait_text("[data-testid='assignment-preview'] li", None, WAIT)
        .await;
    assert!(preview.contains("уровень 1"), "{preview}");
    b.type_into(&b.find("#tf-description").await, "Застряли двое, 5 этаж")
        .await;
    b.screenshot("ticket-form").await;
    b.click(&b.find("#tf-submit").await).await;
    let number = b.wait_text("#ticket-number", Some("№"), WAIT).await;
    let number = number.trim_start_matches("№ ").to_owned();
    assert!(
        number.parse::<u32>().is_ok(),
        "registration number {number}"
    );
    let chain = b
        .wait_text("[data-testid='executor-chain'] li", None, WAIT)
        .await;
    assert!(
        preview.starts_with(chain.split(" (").next().unwrap()),
        "the preview named the executor assigned: {preview} / {chain}"
    );
    b.screenshot("ticket-registered").await;

    // F5 in the middle of the call: the card comes back (kept in the tab's session
    // and checked against the calls in progress), and the stream resumes.
    b.goto(&w.url).await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
    let address = b
        .wait_text(
            &format!("{card} [data-testid='caller-address']"),
            Some("Малышева"),
            WAIT,
        )
        .await;
    assert!(address.contains("кв. 12"), "{address}");
    b.screenshot("after-reload").await;

    // It is in the list, red and labelled emergency, the row tinted.
    b.click(&b.find("[data-tab='tickets']").await).await;
    let row = b
        .wait_text(
            "#tickets-body tr[data-category='emergency']",
            Some(&number),
            WAIT,
        )
        .await;
    assert!(row.contains("АВАРИЙНАЯ"), "{row}");
    let colours = b
        .js(
            "const r = document.querySelector(\"#tickets-body tr[data-category='emergency']\"); \
             return [getComputedStyle(r.querySelector('.cat')).backgroundColor, getComputedStyle(r.querySelector('td')).backgroundColor]",
            vec![],
        )
        .await;
    assert_eq!(colours[0], "rgb(179, 38, 30)", "emergency is red");
    assert_eq!(colours[1], "rgb(251, 228, 226)", "the row is tinted red");
    b.screenshot("ticket-list").await;

    // The resident hangs up; the call's recording plays (fetched with the token in
    // a header, not in the URL).
    resident.finish(WAIT * 8).await.assert_success("resident");
    softphone.finish(WAIT * 3).await.assert_success("operator");
    common::engine::wait_for_events(&w.engine, "recording.ready", 1, WAIT).await;
    b.click(&b.find("[data-tab='journal']").await).await;
    b.wait_click(
        &format!("#journal-body tr[data-call='{call}'] [data-testid='play']"),
        None,
        WAIT,
    )
    .await;
    let duration = b
        .wait_until(
            "the recording loads",
            "const a = document.querySelector(\"[data-testid='recording']\"); \
             return a && a.readyState >= 1 && a.duration > 0 ? a.duration : null",
            WAIT,
        )
        .await;
    assert!(
        duration.as_f64().unwrap() > 15.0,
        "the whole call is recorded: {duration}"
    );
    let src = b
        .js(
            "return document.querySelector(\"[data-testid='recording']\").src",
            vec![],
        )
        .await;
    assert!(src.as_str().unwrap().starts_with("blob:"), "{src}");
    b.screenshot("recording").await;

    // The network drops (the proxy cuts every connection and refuses new ones):
    // the console says so across the page and greys its cards; events published
    // meanwhile arrive once, replayed after the reconnect with since=.
    b.click(&b.find("[data-tab='call']").await).await;
    w.proxy.cut();
    b.wait_for("#banner[data-kind='offline']", Some("Нет связи"), WAIT * 5)
        .await;
    b.wait_until(
        "the cards are marked stale",
        "return document.body.classList.contains('stale')",
        WAIT,
    )
    .await;
    let second = "call-browser-2";
    w.engine.events.publish(
        "call.offered",
        Some("etalon"),
        json!({ "call": second, "from": "+79120000003", "to": "+73432000001", "number_kind": "tenant" }),
    );
    w.engine.events.publish(
        "call.ended",
        Some("etalon"),
        json!({ "call": second, "disposition": "abandoned", "wait_ms": 3000 }),
    );
    b.screenshot("offline").await;
    w.proxy.restore();
    b.wait_for("#conn[data-conn='live']", None, WAIT * 3).await;
    let replayed = b
        .js("return window.dispatchline.state.lastHello.replay", vec![])
        .await;
    assert!(replayed.as_u64().unwrap() >= 2, "replayed {replayed}");
    b.wait_for(
        &format!("[data-call='{second}'] [data-testid='debtor']"),
        Some("Должник"),
        WAIT,
    )
    .await;
    b.wait_for(
        &format!("[data-call='{second}'][data-status='ended']"),
        None,
        WAIT,
    )
    .await;
    let cards = b
        .find_all(&format!("[data-testid='call-card'][data-call='{second}']"))
        .await;
    assert_eq!(cards.len(), 1, "shown once");
    let state = b
        .js(
            "return [window.dispatchline.state.position, document.getElementById('banner').hidden, document.body.classList.contains('stale')]",
            vec![],
        )
        .await;
    assert_eq!(state[0].as_u64(), Some(w.engine.events.last_seq()));
    assert_eq!(state[1], true, "the offline banner is gone");
    assert_eq!(state[2], false);
    b.screenshot("after-reconnect").await;

    // A call that rang another operator and comes back to me gets its card again,
    // built from the payload.
    let caller = json!({
        "phone": "+79120000001",
        "address": {"tenant": "etalon", "tenant_name": "УК «Эталон»", "city": "ekb",
                    "house_id": 1, "address": "ул. Малышева, д. 51", "apartment": "12"},
        "other_addresses": [], "open_tickets": [], "debtor": null, "outages": [], "staff": null,
    });
    let back = "call-browser-3";
    let pop = screen_pop(back, "+79120000001", Some("etalon"), caller);
    w.engine
        .events
        .publish("call.offered", Some("etalon"), pop.clone());
    b.wait_for(&format!("[data-call='{back}']"), None, WAIT)
        .await;
    let mut ringing = pop.clone();
    ringing["operator"] = json!("1002");
    w.engine
        .events
        .publish("call.ringing", Some("etalon"), ringing.clone());
    b.wait_until(
        "the card goes when another operator is rung",
        &format!("return !document.querySelector(\"[data-call='{back}']\")"),
        WAIT,
    )
    .await;
    ringing["operator"] = json!("1001");
    w.engine
        .events
        .publish("call.ringing", Some("etalon"), ringing);
    let address = b
        .wait_text(
            &format!("[data-call='{back}'][data-status='ringing'] [data-testid='caller-address']"),
            Some("Малышева"),
            WAIT,
        )
        .await;
    assert!(address.contains("кв. 12"), "{address}");

    // A callback: the card says whom the engine calls and why, with the time and
    // the wait of the call it returns.
    let callback = "call-browser-5";
    let mut pop = screen_pop(
        callback,
        "+73432000001",
        Some("etalon"),
        json!({
            "phone": "+79120000001",
            "address": {"tenant": "etalon", "tenant_name": "УК «Эталон»", "city": "ekb",
                        "house_id": 1, "address": "ул. Малышева, д. 51", "apartment": "12"},
            "other_addresses": [], "open_tickets": [], "debtor": null, "outages": [], "staff": null,
        }),
    );
    pop["direction"] = json!("outbound");
    pop["purpose"] = json!("callback");
    pop["to"] = json!("+79120000001");
    pop["original_call"] = json!(call);
    pop["operator"] = json!("1001");
    w.engine
        .events
        .publish("call.offered", Some("etalon"), pop.clone());
    w.engine.events.publish("call.ringing", Some("etalon"), pop);
    let outbound = b
        .wait_text(
            &format!("[data-call='{callback}'] [data-testid='outbound']"),
            Some("Звонил"),
            WAIT,
        )
        .await;
    assert!(outbound.contains("перезвон жителю"), "{outbound}");
    assert!(outbound.contains("Малышева"), "{outbound}");
    assert!(
        outbound.contains("+73432000001"),
        "the number the resident called: {outbound}"
    );
    b.screenshot("callback-card").await;

    // An unknown citywide caller: the ticket form does not keep the previous
    // call's УК; it must be chosen.
    let unknown = "call-browser-4";
    let nobody = json!({"phone": "+79129999999", "address": null, "other_addresses": [],
                        "open_tickets": [], "debtor": null, "outages": [], "staff": null});
    w.engine.events.publish(
        "call.offered",
        None,
        screen_pop(unknown, "+79129999999", None, nobody),
    );
    b.wait_click(
        &format!("[data-call='{unknown}'] [data-testid='start-ticket']"),
        None,
        WAIT,
    )
    .await;
    let tenant = b
        .js("return document.getElementById('tf-tenant').value", vec![])
        .await;
    assert_eq!(tenant, "", "no УК carried over");
    b.click(&b.find("#tf-submit").await).await;
    let error = b.wait_text("#tf-error", Some("УК"), WAIT).await;
    assert!(error.contains("Выберите УК"), "{error}");
    b.screenshot("unknown-caller").await;

    // The engine restarts (same database, new process, seqs from 1 again): the
    // console's resume is refused by the epoch, it reloads its state and says so.
    let old_epoch = w.engine.events.epoch().to_owned();
    let restarted =
        Engine::start(Config::parse(&w.config, Path::new("console-test.toml")).unwrap())
            .await
            .unwrap();
    let stopped = std::mem::replace(&mut w.engine, restarted);
    stopped.shutdown(Duration::from_secs(2)).await;
    w.proxy.retarget(w.engine.http_addr);
    b.wait_for(
        "#banner[data-kind='resynced']",
        Some("перезапуск"),
        WAIT * 6,
    )
    .await;
    b.wait_for("#conn[data-conn='live']", None, WAIT).await;
    let epoch = b.js("return window.dispatchline.state.epoch", vec![]).await;
    assert_eq!(epoch, w.engine.events.epoch());
    assert_ne!(epoch, old_epoch.as_str());
    // Nothing is in progress on the new engine: no card claims to be live.
    b.wait_until(
        "cards of calls that did not survive are ended",
        "return [...document.querySelectorAll(\"[data-testid='call-card']\")].every((c) => c.dataset.status === 'ended')",
        WAIT,
    )
    .await;
    b.screenshot("after-restart").await;
    // Operator states live in the engine: ready again on the new one.
    go_ready(&mut b).await;

    // The supervisor's board: tiles, the chart (text in CSS pixels, readable) and
    // the operator on the floor; then the other tabs, and the dark theme.
    let token = b
        .js(
            "return sessionStorage.getItem('dispatchline.token')",
            vec![],
        )
        .await;
    b.click(&b.find("#btn-signout").await).await;
    // Logging out ended the token on the server (the request is sent as the page
    // logs out; give it a moment).
    let mut status = 0;
    for _ in 0..50 {
        status = reqwest::Client::new()
            .get(format!("http://{}/api/v1/operators", w.engine.http_addr))
            .bearer_auth(token.as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401, "the old token is revoked");
    login(&mut b, &w.url, "9000").await;
    b.wait_for("[data-testid='tile']", Some("Ответ за 30 секунд"), WAIT)
        .await;
    b.wait_for("#b-chart svg rect", None, WAIT).await;
    b.wait_for("#b-operators [data-state='ready']", Some("1001"), WAIT)
        .await;
    // Its one trunk sends no keepalives: never probed, said so (not green).
    b.wait_for(
        "[data-testid='trunk'][data-trunk='provider-x'][data-health='unknown']",
        Some("нет данных"),
        WAIT,
    )
    .await;
    // The engine's nodes: one, this one, alive.
    b.wait_for(
        "[data-testid='node'][data-health='up']",
        Some("этот узел"),
        WAIT,
    )
    .await;
    let sizes = b
        .js(
            "const s = document.querySelector('#b-chart svg'); const t = s.querySelector('text'); \
             return [s.getBoundingClientRect().width / s.viewBox.baseVal.width, t.getBoundingClientRect().height]",
            vec![],
        )
        .await;
    let scale = sizes[0].as_f64().unwrap();
    assert!(
        (0.95..=1.05).contains(&scale),
        "the chart is not scaled: {scale}"
    );
    assert!(sizes[1].as_f64().unwrap() >= 13.0, "chart text: {sizes}");
    b.screenshot("board").await;
    b.click(&b.find("[data-tab='tickets']").await).await;
    b.wait_for("#tickets-body tr[data-category='emergency']", None, WAIT)
        .await;
    b.screenshot("supervisor-tickets").await;
    b.click(&b.find("[data-tab='journal']").await).await;
    b.wait_for("#journal-body tr[data-call]", None, WAIT).await;
    b.screenshot("supervisor-journal").await;
    b.click(&b.find("#btn-theme").await).await;
    b.click(&b.find("[data-tab='board']").await).await;
    b.wait_for("#b-chart svg rect", None, WAIT).await;
    let theme = b
        .js("return document.documentElement.dataset.theme", vec![])
        .await;
    assert_eq!(theme, "dark");
    b.screenshot("board-dark").await;
    b.click(&b.find("[data-tab='call']").await).await;
    b.screenshot("call-dark").await;

    b.quit().await;
}

/// A provider's SIPp answering one OPTIONS keepalive on `port`: 200 when `up`,
/// else 503.
async fn provider_answers(dir: &Path, name: &str, port: u16, up: bool) -> Sipp {
    let scenario = if up {
        "provider_options_ok.xml"
    } else {
        "provider_options_down.xml"
    };
    let args = sipp::args(&[
        "-sf",
        &sipp::scenario(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-m",
        "1",
    ]);
    let provider = sipp::spawn(name, dir, &args);
    sipp::wait_bound(port).await;
    provider
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_citywide_caller_gets_the_company_the_operator_picks_and_the_board_shows_the_trunks()
 {
    // Two providers: X answers its keepalive, Y (the citywide number's) refuses
    // it with 503, so the board has one trunk up and one down.
    let dir = sipp::workdir("console-browser-trunks");
    let (port_x, port_y) = (free_port(), free_port());
    let provider_x = provider_answers(&dir, "provider-x", port_x, true).await;
    let provider_y = provider_answers(&dir, "provider-y", port_y, false).await;
    let telephony = format!(
        r#"
[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:{port_x}"
options_interval_s = 600

[[trunk]]
name = "provider-y"
proxy = "127.0.0.1:{port_y}"
options_interval_s = 1

[[number]]
number = "+73432000100"
kind = "citywide"
city = "ekb"
trunk = "provider-y"

[[operator]]
extension = "1001"
name = "Иванова Мария"
password = "pw-1001"
tenants = ["etalon", "uyut"]

[[operator]]
extension = "9000"
name = "Петров Сергей"
password = "pw-9000"
role = "supervisor"
"#
    );
    let w = world_with(&telephony).await;
    let health = common::engine::wait_for_events(&w.engine, "trunk.health", 2, WAIT).await;
    let of = |trunk: &str| {
        health
            .iter()
            .find(|e| e.payload["trunk"] == trunk)
            .map(|e| e.payload["health"].as_str().unwrap().to_owned())
    };
    assert_eq!(of("provider-x").as_deref(), Some("up"), "{health:?}");
    assert_eq!(of("provider-y").as_deref(), Some("down"), "{health:?}");
    provider_x.finish(WAIT).await.assert_success("provider-x");
    provider_y.finish(WAIT).await.assert_success("provider-y");

    let mut b = Browser::start("console_browser_citywide").await;
    login(&mut b, &w.url, "1001").await;
    go_ready(&mut b).await;

    // A resident nobody knows calls the citywide number: the card says the УК is
    // not known and offers the companies the operator serves in the city.
    let (call, resident, softphone) =
        call_arrives(&w, "+79125550001", "+73432000100", 20_000).await;
    let card = format!("[data-testid='call-card'][data-call='{call}']");
    let pick = b
        .wait_text(
            &format!("{card} [data-testid='tenant-pick']"),
            Some("Выберите УК"),
            WAIT,
        )
        .await;
    assert!(
        pick.contains("УК «Эталон»") && pick.contains("УК «Уют»"),
        "{pick}"
    );
    let head = b
        .wait_text(&format!("{card} [data-testid='card-tenant']"), None, WAIT)
        .await;
    assert!(head.contains("УК не определена"), "{head}");
    // The form is opened first: it has no УК yet.
    b.wait_click(&format!("{card} [data-testid='start-ticket']"), None, WAIT)
        .await;
    let tenant = b
        .js("return document.getElementById('tf-tenant').value", vec![])
        .await;
    assert_eq!(tenant, "");
    b.screenshot("citywide-choose-company").await;

    // The operator picks УК «Уют»: the engine sets the call's tenant, and on its
    // `call.tenant` the card names the company and the form takes it.
    b.wait_click(
        &format!("{card} [data-testid='tenant-pick'] button[data-tenant='uyut']"),
        None,
        WAIT,
    )
    .await;
    let set = common::engine::wait_for_events(&w.engine, "call.tenant", 1, WAIT).await;
    assert_eq!(set[0].payload["call"], call.as_str());
    assert_eq!(set[0].payload["tenant"], "uyut");
    assert_eq!(set[0].tenant.as_deref(), Some("uyut"));
    let head = b
        .wait_text(
            &format!("{card} [data-testid='card-tenant'][data-tenant='uyut']"),
            Some("Уют"),
            WAIT,
        )
        .await;
    assert!(!head.contains("не определена"), "{head}");
    b.wait_until(
        "the choice is gone from the card",
        &format!("return !document.querySelector(\"{card} [data-testid='tenant-pick']\")"),
        WAIT,
    )
    .await;
    let tenant = b
        .js("return document.getElementById('tf-tenant').value", vec![])
        .await;
    assert_eq!(tenant, "uyut", "the ticket form uses the company chosen");
    let errors = b
        .find_all(&format!("{card} [data-testid='tenant-error']"))
        .await;
    assert!(errors.is_empty(), "no error shown");
    b.screenshot("citywide-company-chosen").await;

    // The resident hangs up: the journal row carries the company.
    resident.finish(WAIT * 8).await.assert_success("resident");
    softphone.finish(WAIT * 3).await.assert_success("operator");
    common::engine::wait_for_events(&w.engine, "call.ended", 1, WAIT).await;
    b.wait_for(&format!("{card}[data-status='ended']"), None, WAIT)
        .await;
    // The journal is written behind the call: give the writer a moment.
    let mut tenant = None;
    for _ in 0..100 {
        tenant = w
            .engine
            .store
            .get_call(&call)
            .await
            .unwrap()
            .and_then(|r| r.tenant);
        if tenant.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(tenant.as_deref(), Some("uyut"));

    // The supervisor's board: provider X green, provider Y red, each with the
    // time of its last change.
    b.click(&b.find("#btn-signout").await).await;
    login(&mut b, &w.url, "9000").await;
    let x = b
        .wait_text(
            "[data-testid='trunk'][data-trunk='provider-x'][data-health='up']",
            Some("работает"),
            WAIT,
        )
        .await;
    assert!(x.contains("с "), "since when: {x}");
    let y = b
        .wait_text(
            "[data-testid='trunk'][data-trunk='provider-y'][data-health='down']",
            Some("не работает"),
            WAIT,
        )
        .await;
    assert!(y.contains("503"), "why: {y}");
    let colours = b
        .js(
            "const c = (n) => getComputedStyle(document.querySelector(`[data-trunk='${n}']`)).borderLeftColor; \
             return [c('provider-x'), c('provider-y')]",
            vec![],
        )
        .await;
    assert_eq!(colours[0], "rgb(30, 107, 52)", "up is green");
    assert_eq!(colours[1], "rgb(179, 38, 30)", "down is red");
    let count = b.wait_text("#b-trunks-count", None, WAIT).await;
    assert!(count.contains("1 из 2"), "{count}");
    b.screenshot("board-trunks").await;

    // Provider Y answers again: its tile turns green from the `trunk.health` event.
    let back = provider_answers(&dir, "provider-y-back", port_y, true).await;
    common::engine::wait_for_events(&w.engine, "trunk.health", 3, WAIT * 3).await;
    b.wait_for(
        "[data-testid='trunk'][data-trunk='provider-y'][data-health='up']",
        Some("работает"),
        WAIT,
    )
    .await;
    back.finish(WAIT).await.assert_success("provider-y again");
    b.screenshot("board-trunk-back").await;

    b.quit().await;
}

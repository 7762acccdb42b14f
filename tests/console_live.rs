//! What the console asks the engine beside the event stream, on a real engine over
//! the demo data: the calls in progress (`GET /calls/active`, scoped and trimmed
//! like the stream, so a reloaded console rebuilds its cards), the executor chain
//! a ticket would get (`GET /assignment`), choosing a live call's tenant (`POST
//! /calls/{id}/tenant`, the card's «Выберите УК») and its refusals, log-out revoking the token, renewal
//! sliding its expiry, and failed logins limited per address.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::engine::{self, free_port};
use common::sipp::{self, scenario, spawn};
use dispatchline::server::Engine;
use serde_json::{Value, json};

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
password = "pw-1001"
tenants = ["etalon"]

[[operator]]
extension = "1002"
password = "pw-1002"
tenants = ["uyut"]

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
    async fn start() -> Self {
        let engine = engine::start(CONFIG).await;
        dispatchline::store::demo::seed(&engine.store)
            .await
            .unwrap();
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

    async fn login(&self, ext: &str) -> String {
        let (status, v) = self.login_with(ext, &format!("pw-{ext}")).await;
        assert_eq!(status, 200, "{v}");
        v["token"].as_str().unwrap().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_progress_are_listed_per_tenant_with_the_screen_pop() {
    let api = Api::start().await;
    let etalon = api.login("1001").await;
    let uyut = api.login("1002").await;
    let all = api.login("9000").await;
    let (status, calls) = api.call(Some(&etalon), "GET", "/calls/active", None).await;
    assert_eq!((status, calls), (200, json!([])));

    // A resident of etalon calls and waits (no operator is ready).
    let dir = sipp::workdir("console-live");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        dir.join("g711a.pcap"),
    )
    .unwrap();
    let args = sipp::args(&[
        "-sf",
        &scenario("resident_calls.xml"),
        &api.engine.sip_addr.to_string(),
        "-s",
        "+73432000001",
        "-key",
        "caller",
        "+79120000001",
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-d",
        "6000",
        "-p",
        &free_port().to_string(),
        "-mp",
        &free_port().to_string(),
    ]);
    let resident = spawn("resident", &dir, &args);
    engine::wait_for_events(&api.engine, "call.offered", 1, Duration::from_secs(10)).await;

    let (status, calls) = api.call(Some(&etalon), "GET", "/calls/active", None).await;
    assert_eq!(status, 200, "{calls}");
    let calls = calls.as_array().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(call["tenant"], "etalon");
    assert!(call["call"].as_str().unwrap().starts_with('c'));
    assert!(
        ["announcing", "queued", "lookingup", "menu"].contains(&call["stage"].as_str().unwrap()),
        "{call}"
    );
    let pop = &call["screen_pop"];
    assert_eq!(pop["from"], "+79120000001");
    assert_eq!(pop["number_kind"], "tenant");
    assert!(
        pop["caller"]["address"]["address"]
            .as_str()
            .unwrap()
            .contains("Малышева"),
        "{pop}"
    );
    let (_, calls) = api.call(Some(&all), "GET", "/calls/active", None).await;
    assert_eq!(calls.as_array().unwrap().len(), 1);
    // uyut's operator does not see etalon's caller.
    let (_, calls) = api.call(Some(&uyut), "GET", "/calls/active", None).await;
    assert_eq!(calls, json!([]));
    // Showing a caller is a read of personal data.
    let log = api.engine.store.access_log(50).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.principal == "1001" && e.purpose == "GET /calls/active"),
        "{log:?}"
    );

    // Choosing the call's УК, as the console's card does, is refused with a
    // reason the card can show: a company the operator does not serve, a call of
    // a company they do not serve, a company that does not exist, a call that is
    // not in progress.
    let id = call["call"].as_str().unwrap().to_owned();
    let set_path = format!("/calls/{id}/tenant");
    let set = |token: &str, tenant: &str| {
        let (path, token, body) = (
            set_path.clone(),
            token.to_owned(),
            json!({ "tenant": tenant }),
        );
        let api = &api;
        async move { api.call(Some(&token), "POST", &path, Some(body)).await }
    };
    let (status, err) = set(&etalon, "uyut").await;
    assert_eq!(
        (status, err["field"].as_str()),
        (403, Some("tenant")),
        "{err}"
    );
    let (status, err) = set(&uyut, "uyut").await;
    assert_eq!(
        (status, err["field"].as_str()),
        (403, Some("tenant")),
        "{err}"
    );
    let (status, err) = set(&all, "nobody").await;
    assert_eq!(
        (status, err["field"].as_str()),
        (422, Some("tenant")),
        "{err}"
    );
    let (status, err) = set(&all, " ").await;
    assert_eq!(
        (status, err["field"].as_str()),
        (422, Some("tenant")),
        "{err}"
    );
    let (status, err) = api
        .call(
            Some(&all),
            "POST",
            "/calls/c0000000000000000/tenant",
            Some(json!({"tenant": "etalon"})),
        )
        .await;
    assert_eq!(status, 404, "{err}");
    assert!(err["error"].as_str().unwrap().contains("call"), "{err}");
    let (status, set_answer) = set(&etalon, "etalon").await;
    assert_eq!(status, 200, "{set_answer}");
    assert_eq!(
        set_answer,
        json!({"call": id, "tenant": "etalon", "previous": "etalon"})
    );
    let event =
        engine::wait_for_events(&api.engine, "call.tenant", 1, Duration::from_secs(10)).await;
    assert_eq!(event[0].payload["call"], id.as_str());
    assert_eq!(event[0].tenant.as_deref(), Some("etalon"));

    resident
        .finish(Duration::from_secs(40))
        .await
        .assert_success("resident");
    engine::wait_no_calls(&api.engine, Duration::from_secs(10)).await;
    let (status, err) = set(&etalon, "etalon").await;
    assert_eq!(
        status, 404,
        "an ended call's УК is no longer chosen here: {err}"
    );
    let (_, calls) = api.call(Some(&etalon), "GET", "/calls/active", None).await;
    assert_eq!(calls, json!([]));
}

#[tokio::test]
async fn the_assignment_preview_is_the_chain_registration_would_choose() {
    let api = Api::start().await;
    let op = api.login("1001").await;
    let (_, houses) = api
        .call(Some(&op), "GET", "/houses?tenant=etalon&q=Малышева", None)
        .await;
    let house = houses["items"][0]["id"].as_i64().unwrap();
    let (_, reasons) = api
        .call(Some(&op), "GET", "/reasons?tenant=etalon&q=лифт", None)
        .await;
    let reason = reasons
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["category"] == "emergency")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let path = format!("/assignment?tenant=etalon&house={house}&reason={reason}");
    let (status, preview) = api.call(Some(&op), "GET", &path, None).await;
    assert_eq!(status, 200, "{preview}");
    assert!(preview["work_type"].is_string(), "{preview}");
    // The same chain as registering the ticket now assigns.
    let (status, registered) = api
        .call(
            Some(&op),
            "POST",
            "/tickets",
            Some(
                json!({"tenant": "etalon", "house_id": house, "reason_id": reason,
                        "description": "preview check", "source": "phone"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    let names = |chain: &Value| -> Vec<String> {
        chain["executors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["employee"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&preview), names(&registered["chain"]));
    assert!(
        !names(&preview).is_empty(),
        "someone is on duty in the demo"
    );

    // Another tenant's operator may not ask; a house of another tenant is not found.
    let uyut = api.login("1002").await;
    let (status, _) = api.call(Some(&uyut), "GET", &path, None).await;
    assert_eq!(status, 403);
    let (status, err) = api
        .call(
            Some(&op),
            "GET",
            &format!("/assignment?tenant=etalon&house=999999&reason={reason}"),
            None,
        )
        .await;
    assert_eq!((status, err["field"].as_str()), (404, Some("house")));
    let (status, err) = api
        .call(Some(&op), "GET", "/assignment?tenant=etalon", None)
        .await;
    assert_eq!(status, 400, "{err}");
}

#[tokio::test]
async fn log_out_revokes_the_token_and_renewal_slides_its_expiry() {
    let api = Api::start().await;
    let (_, issued) = api.login_with("1001", "pw-1001").await;
    let token = issued["token"].as_str().unwrap().to_owned();
    let first: chrono::DateTime<chrono::Utc> =
        issued["expires_at"].as_str().unwrap().parse().unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, renewed) = api
        .call(Some(&token), "POST", "/auth/token/renew", None)
        .await;
    assert_eq!(status, 200, "{renewed}");
    let second: chrono::DateTime<chrono::Utc> =
        renewed["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(second > first, "{first} -> {second}");
    assert!(second - chrono::Utc::now() > chrono::Duration::hours(11));

    let (status, _) = api.call(Some(&token), "GET", "/operators", None).await;
    assert_eq!(status, 200);
    let (status, _) = api.call(Some(&token), "DELETE", "/auth/token", None).await;
    assert_eq!(status, 204);
    // Gone on the server: REST, renewal and the websocket all refuse it.
    let (status, err) = api.call(Some(&token), "GET", "/operators", None).await;
    assert_eq!((status, err["field"].as_str()), (401, Some("token")));
    let (status, _) = api
        .call(Some(&token), "POST", "/auth/token/renew", None)
        .await;
    assert_eq!(status, 401);
    let ws =
        tokio_tungstenite::connect_async(format!("ws://{}/ws?token={token}", api.engine.http_addr))
            .await;
    assert!(ws.is_err(), "a revoked token is refused before the upgrade");
    let (status, _) = api.call(None, "DELETE", "/auth/token", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn failed_logins_are_limited_per_address() {
    let api = Api::start().await;
    // Three free failures, the fourth is checked and starts the back-off.
    for _ in 0..4 {
        let (status, _) = api.login_with("1001", "wrong").await;
        assert_eq!(status, 401);
    }
    let (status, err) = api.login_with("1001", "wrong").await;
    assert_eq!((status, err["field"].as_str()), (429, Some("password")));
    assert!(
        err["error"].as_str().unwrap().contains("try again"),
        "{err}"
    );
    // Even the right password waits for the back-off to end.
    let (status, _) = api.login_with("1001", "pw-1001").await;
    assert_eq!(status, 429);
}

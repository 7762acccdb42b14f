//! Tickets over HTTP: registration with assignment, listing, status changes, comments,
//! bad input (each a 4xx naming the field, changing nothing) and concurrent updates
//! of one ticket.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::Api;
use serde_json::{Value, json};

fn new_ticket(api: &Api) -> Value {
    json!({
        "tenant": "etalon",
        "house_id": api.world.ekb_house,
        "apartment": "12",
        "reason_id": api.world.flooding,
        "description": "течёт с потолка на кухне",
        "caller_phone": "8 (912) 000-00-01",
        "labels": ["повторная"]
    })
}

async fn register_list_change_and_comment(api: Api) {
    let token = api.login("1001").await;
    let (status, created) = api.post(&token, "/tickets", new_ticket(&api)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["ticket"]["number"], "1001");
    assert_eq!(created["ticket"]["status"], "registered");
    assert_eq!(created["ticket"]["category"], "emergency");
    assert!(
        created["chain"]["executors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
    );
    assert_eq!(created["chain"]["executors"][0]["level"], 1);
    let id = created["ticket"]["id"].as_i64().unwrap();
    // Registering the ticket confirmed the caller's address: the phone is learnt.
    let (_, contacts) = api
        .get(
            &token,
            &format!(
                "/contacts?phone=79120000001&house_id={}",
                api.world.ekb_house
            ),
        )
        .await;
    let learnt = contacts["items"].as_array().unwrap();
    assert!(
        learnt
            .iter()
            .any(|c| c["phone"] == "+79120000001" && c["apartment"] == "12"),
        "{contacts}"
    );
    let (_, second) = api
        .post(&token, "/tickets", json!({"tenant": "etalon", "house_id": api.world.ekb_house2, "reason_id": api.world.intercom}))
        .await;
    assert_eq!(second["ticket"]["number"], "1002");
    assert_eq!(second["ticket"]["category"], "planned");

    let (status, page) = api
        .get(&token, "/tickets?category=emergency&limit=10")
        .await;
    assert_eq!((status, page["total"].as_i64()), (200, Some(1)));
    let (_, page) = api
        .get(
            &token,
            &format!("/tickets?house_id={}&open=true", api.world.ekb_house2),
        )
        .await;
    assert_eq!(page["total"], 1);
    let (_, page) = api.get(&token, "/tickets?limit=1&offset=1").await;
    assert_eq!(
        (
            page["total"].as_i64(),
            page["items"].as_array().map(Vec::len)
        ),
        (Some(2), Some(1))
    );
    let (_, page) = api
        .get(
            &token,
            "/tickets?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
        )
        .await;
    assert_eq!(page["total"], 0);

    let (status, accepted) = api
        .post(
            &token,
            &format!("/tickets/{id}/status"),
            json!({"status": "accepted", "note": "принял", "version": 1}),
        )
        .await;
    assert_eq!((status, accepted["version"].as_i64()), (200, Some(2)));
    let (status, body) = api
        .post(
            &token,
            &format!("/tickets/{id}/status"),
            json!({"status": "done", "version": 1}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, comment) = api
        .post(
            &token,
            &format!("/tickets/{id}/comments"),
            json!({"text": "жилец перезвонил"}),
        )
        .await;
    assert_eq!((status, comment["author"].as_str()), (201, Some("1001")));
    let (status, detail) = api.get(&token, &format!("/tickets/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(detail["history"].as_array().unwrap().len(), 2);
    assert_eq!(detail["history"][1]["actor"], "1001");
    assert_eq!(detail["comments"][0]["text"], "жилец перезвонил");
    assert_eq!(detail["chain"][0]["level"], 1);

    let second_id = second["ticket"]["id"].as_i64().unwrap();
    let (status, changed) = api
        .post(
            &token,
            "/tickets/status",
            json!({"ids": [id, second_id], "status": "in_progress"}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert!(
        changed
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["status"] == "in_progress")
    );

    let kinds: Vec<String> = api
        .events
        .replay(0)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "ticket.changed")
        .map(|e| e.payload["change"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        kinds,
        [
            "created", "created", "status", "comment", "status", "status"
        ]
    );
    // Ticket reads were written to the access log.
    let log = api.db.store.access_log(100).await.unwrap();
    assert!(
        log.iter().any(|e| e.principal == "1001"
            && e.subject == "ticket"
            && e.subject_id == id.to_string())
    );
}

async fn bad_input_names_the_field_and_changes_nothing(api: Api) {
    let token = api.login("1001").await;
    let (_, created) = api.post(&token, "/tickets", new_ticket(&api)).await;
    let id = created["ticket"]["id"].as_i64().unwrap();
    let seq = api.events.last_seq();
    let with = |key: &str, value: Value| {
        let mut body = new_ticket(&api);
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = new_ticket(&api);
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("missing house", without("house_id"), 422, "house_id"),
        ("missing reason", without("reason_id"), 422, "reason_id"),
        (
            "house is text",
            with("house_id", json!("five")),
            422,
            "house_id",
        ),
        (
            "unknown house",
            with("house_id", json!(999_999)),
            422,
            "house_id",
        ),
        (
            "other tenant's house",
            with("house_id", json!(api.world.msk_house)),
            422,
            "house_id",
        ),
        (
            "unknown reason",
            with("reason_id", json!(999_999)),
            422,
            "reason_id",
        ),
        (
            "bad channel",
            with("source", json!("pigeon")),
            422,
            "source",
        ),
        (
            "bad phone",
            with("caller_phone", json!("call me")),
            422,
            "caller_phone",
        ),
        (
            "long apartment",
            with("apartment", json!("x".repeat(40))),
            422,
            "apartment",
        ),
        (
            "too many labels",
            with("labels", json!(vec!["a"; 30])),
            422,
            "labels",
        ),
        (
            "label of wrong type",
            with("labels", json!([1])),
            422,
            "labels[0]",
        ),
        ("unknown field", with("colour", json!("red")), 422, "colour"),
        (
            "unknown tenant",
            with("tenant", json!("nobody")),
            403,
            "tenant",
        ),
    ];
    for (what, body, status, field) in cases {
        let (got, answer) = api.post(&token, "/tickets", body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(answer["field"], field, "{what}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}"
        );
    }
    let (status, body) = api.post_raw(&token, "/tickets", "{\"tenant\": ").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].is_string());

    let status_cases: Vec<(String, Value, u16, &str)> = vec![
        (
            format!("/tickets/{id}/status"),
            json!({"status": "flying"}),
            422,
            "status",
        ),
        (
            format!("/tickets/{id}/status"),
            json!({"note": "x"}),
            422,
            "status",
        ),
        (
            format!("/tickets/{id}/status"),
            json!({"status": "done", "version": "new"}),
            422,
            "version",
        ),
        (
            format!("/tickets/{id}/status"),
            json!({"status": "accepted", "note": "я".repeat(1001)}),
            422,
            "note",
        ),
        (
            format!("/tickets/{id}/comments"),
            json!({"text": "   "}),
            422,
            "text",
        ),
        (format!("/tickets/{id}/comments"), json!({}), 422, "text"),
        (
            "/tickets/status".to_owned(),
            json!({"ids": [], "status": "done"}),
            422,
            "ids",
        ),
        (
            "/tickets/status".to_owned(),
            json!({"ids": [id, 999_999], "status": "accepted"}),
            404,
            "ids",
        ),
        (
            "/tickets/abc/status".to_owned(),
            json!({"status": "accepted"}),
            400,
            "id",
        ),
    ];
    for (path, body, status, field) in status_cases {
        let (got, answer) = api.post(&token, &path, body).await;
        assert_eq!(got, status, "{path}: {answer}");
        assert_eq!(answer["field"], field, "{path}: {answer}");
    }
    for (query, field) in [
        ("status=bogus", "status"),
        ("limit=ten", "limit"),
        ("from=yesterday", "from"),
    ] {
        let (got, answer) = api.get(&token, &format!("/tickets?{query}")).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (400, Some(field)),
            "{query}: {answer}"
        );
    }
    // Nothing changed: one ticket, untouched, and no events.
    let (_, page) = api.get(&token, "/tickets").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["version"], 1);
    assert_eq!(page["items"][0]["status"], "registered");
    assert_eq!(api.events.last_seq(), seq);
    let (_, detail) = api.get(&token, &format!("/tickets/{id}")).await;
    assert!(detail["comments"].as_array().unwrap().is_empty());
}

async fn concurrent_updates_of_one_ticket(api: Api) {
    let token = api.login("1001").await;
    let (_, created) = api.post(&token, "/tickets", new_ticket(&api)).await;
    let id = created["ticket"]["id"].as_i64().unwrap();
    let api = std::sync::Arc::new(api);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (api, token) = (api.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            api.post(
                &token,
                &format!("/tickets/{id}/comments"),
                json!({"text": format!("звонок {i}")}),
            )
            .await
            .0
        }));
    }
    // Ten operators who all saw version 1 try to change the status while residents'
    // comments pour in: exactly one wins, the rest are told the ticket moved on
    // (409), and nobody's change is lost silently. Comments do not bump the version,
    // so they cannot make every racer lose.
    let mut racers = Vec::new();
    for _ in 0..10 {
        let (api, token) = (api.clone(), token.clone());
        racers.push(tokio::spawn(async move {
            api.post(
                &token,
                &format!("/tickets/{id}/status"),
                json!({"status": "accepted", "version": 1}),
            )
            .await
            .0
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 201);
    }
    let mut outcomes: Vec<u16> = Vec::new();
    for racer in racers {
        outcomes.push(racer.await.unwrap());
    }
    assert!(
        outcomes.iter().all(|s| *s == 200 || *s == 409),
        "{outcomes:?}"
    );
    let wins = outcomes.iter().filter(|s| **s == 200).count();
    assert_eq!(wins, 1, "{outcomes:?}");
    let (_, detail) = api.get(&token, &format!("/tickets/{id}")).await;
    assert_eq!(detail["comments"].as_array().unwrap().len(), 20);
    let status_changes = detail["history"].as_array().unwrap().len() - 1;
    assert_eq!(status_changes, 1);
    assert_eq!(detail["status"], "accepted");
    assert_eq!(detail["version"].as_i64().unwrap(), 2);
}

api_on_both_backends!(
    register_list_change_and_comment,
    bad_input_names_the_field_and_changes_nothing,
    concurrent_updates_of_one_ticket,
);

//! The ticket's card over HTTP, on SQLite and PostgreSQL: time in each status, the
//! deadline's countdown, every call about the ticket (the resident's call and a
//! status check) with its recording, internal comments, the resident's rating
//! attributed to the executor, the single status change with its version check; and
//! the management company's view: a tenant viewer sees only their tickets, rates a
//! call of the line 1–5 with a comment (operators may not), and supervisors read it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::Api;
use chrono::Utc;
use dispatchline::config::Role;
use dispatchline::store::users::NewUser;
use dispatchline::store::{
    AfterAttempt, CallDirection, CallRecord, DialAttemptOutcome, DialKind, NewDialJob,
    SurveyMetric, TicketId,
};
use serde_json::{Value, json};

async fn register(api: &Api, token: &str, tenant: &str) -> Value {
    let (house, reason) = if tenant == "etalon" {
        (api.world.ekb_house, api.world.flooding)
    } else {
        (api.world.msk_house, api.world.roof)
    };
    let (status, created) = api
        .post(
            token,
            "/tickets",
            json!({"tenant": tenant, "house_id": house, "reason_id": reason, "description": "течёт"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["ticket"].clone()
}

async fn viewer(api: &Api, extension: &str, tenant: &str) {
    api.db
        .store
        .create_user(
            &NewUser {
                extension: extension.into(),
                name: "Директор УК".into(),
                role: Some(Role::TenantViewer),
                tenants: vec![tenant.into()],
                cities: vec![],
                password: format!("pw-{extension}"),
                sip_password: None,
                auto_answer: false,
            },
            "dispatchline",
        )
        .await
        .unwrap();
}

async fn card_shows_everything(api: Api) {
    let op = api.login("1001").await;
    let ticket = register(&api, &op, "etalon").await;
    let id = ticket["id"].as_i64().unwrap();
    let store = &api.db.store;
    let now = Utc::now();
    // The resident's call, recorded.
    std::fs::write(api.recordings.join("in-1.wav"), b"RIFF").unwrap();
    let mut inbound = CallRecord::offered(
        "in-1",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        now,
    );
    inbound.tenant = Some("etalon".into());
    inbound.ticket_id = Some(TicketId(id));
    inbound.operator_extension = Some("1001".into());
    store.upsert_call(&inbound).await.unwrap();
    let rec = store
        .insert_recording("in-1", "in-1.wav", 1000, 4)
        .await
        .unwrap();
    inbound.recording_id = Some(rec);
    store.upsert_call(&inbound).await.unwrap();
    // A status check called the executor.
    let mut job = NewDialJob::new(
        DialKind::StatusCheck,
        store_world::phone("+79120000002"),
        now,
        3,
    );
    job.tenant = Some("etalon".into());
    job.ticket_id = Some(TicketId(id));
    let job = store.create_dial_job(&job, now).await.unwrap();
    let claimed = store
        .claim_dial_job(job.id, "n1", now, chrono::Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    store
        .record_dial_attempt(
            claimed.id,
            "n1",
            DialAttemptOutcome::Answered,
            Some("chk-1"),
            AfterAttempt::Hold,
            now,
        )
        .await
        .unwrap();
    let mut check = CallRecord::offered(
        "chk-1",
        CallDirection::Outbound,
        "+73432000001",
        "+79120000002",
        now + chrono::Duration::seconds(5),
    );
    check.tenant = Some("etalon".into());
    store.upsert_call(&check).await.unwrap();

    // Status change with the version check: a stale version is a conflict.
    let (status, moved) = api
        .post(
            &op,
            &format!("/tickets/{id}/status"),
            json!({"status": "accepted", "version": 1}),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    let (status, _) = api
        .post(
            &op,
            &format!("/tickets/{id}/status"),
            json!({"status": "in_progress", "version": 1}),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = api
        .post(
            &op,
            &format!("/tickets/{id}/comments"),
            json!({"text": "ключи у консьержа", "internal": true}),
        )
        .await;
    assert_eq!(status, 201);
    store
        .record_survey_answer(Some(TicketId(id)), Some("chk-1"), SurveyMetric::Csi, 4, now)
        .await
        .unwrap();

    let (status, card) = api.get(&op, &format!("/tickets/{id}")).await;
    assert_eq!(status, 200, "{card}");
    let times = card["status_times"].as_array().unwrap();
    assert_eq!(times[0]["status"], "registered");
    assert_eq!(times[1]["status"], "accepted");
    assert_eq!(times[1]["current"], true);
    assert!(card["deadline_left_s"].as_i64().unwrap() > 0, "{card}");
    let calls = card["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{card}");
    assert_eq!(calls[0]["id"], "in-1");
    assert_eq!(calls[0]["kind"], "inbound");
    assert_eq!(calls[0]["recording_id"], rec.0);
    assert_eq!(calls[1]["id"], "chk-1");
    assert_eq!(calls[1]["kind"], "status-check");
    assert_eq!(card["comments"][0]["internal"], true);
    assert_eq!(card["ratings"][0]["metric"], "csi");
    assert_eq!(card["ratings"][0]["score"], 4);
    assert_eq!(card["ratings"][0]["executor_id"], ticket["executor_id"]);
    assert!(!ticket["executor_id"].is_null(), "{ticket}");

    // The company's view.
    viewer(&api, "70001", "etalon").await;
    let v = api.login("70001").await;
    let other_op = api.login("2001").await;
    let foreign = register(&api, &other_op, "stolica").await;
    let (_, list) = api.get(&v, "/tickets").await;
    let items = list["items"].as_array().unwrap();
    assert!(
        !items.is_empty() && items.iter().all(|t| t["tenant"] == "etalon"),
        "{list}"
    );
    let (status, _) = api.get(&v, &format!("/tickets/{}", foreign["id"])).await;
    assert_eq!(status, 404);
    let (status, seen) = api.get(&v, &format!("/tickets/{id}")).await;
    assert_eq!(status, 200, "{seen}");
    let (status, _) = api.post(&v, "/tickets", json!({})).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .post(
            &v,
            &format!("/tickets/{id}/status"),
            json!({"status": "done"}),
        )
        .await;
    assert_eq!(status, 403);
    // Rating a call of the line.
    let (status, bad) = api
        .post(&v, "/calls/in-1/review", json!({"score": 7}))
        .await;
    assert_eq!(
        (status, bad["field"].as_str()),
        (422, Some("score")),
        "{bad}"
    );
    let (status, review) = api
        .post(
            &v,
            "/calls/in-1/review",
            json!({"score": 2, "comment": "оператор не уточнил подъезд"}),
        )
        .await;
    assert_eq!(status, 201, "{review}");
    let (status, review) = api
        .post(
            &v,
            "/calls/in-1/review",
            json!({"score": 3, "comment": "оператор не уточнил подъезд"}),
        )
        .await;
    assert_eq!(status, 201, "{review}");
    assert_eq!(review["operator"], "1001");
    let (status, _) = api
        .post(&op, "/calls/in-1/review", json!({"score": 5}))
        .await;
    assert_eq!(status, 403, "operators do not rate themselves");
    let (status, _) = api
        .post(&v, "/calls/nope/review", json!({"score": 5}))
        .await;
    assert_eq!(status, 404);
    let sup = api.login("9000").await;
    let (_, reviews) = api.get(&sup, "/reviews?operator=1001").await;
    assert_eq!(
        reviews["total"], 1,
        "one review per call and reviewer: {reviews}"
    );
    assert_eq!(reviews["items"][0]["score"], 3);
    assert_eq!(reviews["items"][0]["reviewer"], "70001");
    let (_, card) = api.get(&v, &format!("/tickets/{id}")).await;
    assert_eq!(card["reviews"][0]["call_id"], "in-1");
    // Attachments: an executor's photo, typed by its bytes, served with its type.
    let jpeg = [&[0xFFu8, 0xD8, 0xFF, 0xE0][..], &[0u8; 100][..]].concat();
    let upload = |token: &str, ty: &str, body: Vec<u8>| {
        api.request(
            token,
            reqwest::Method::POST,
            &format!("/tickets/{id}/attachments?name=%D1%84%D0%BE%D1%82%D0%BE.jpg"),
        )
        .header("content-type", ty.to_owned())
        .body(body)
        .send()
    };
    let r = upload(&op, "image/jpeg", jpeg.clone()).await.unwrap();
    assert_eq!(r.status(), 201);
    let file: Value = r.json().await.unwrap();
    assert_eq!(
        (file["file_name"].as_str(), file["bytes"].as_i64()),
        (Some("фото.jpg"), Some(104))
    );
    assert_eq!(
        upload(&op, "image/png", jpeg.clone())
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        upload(&op, "text/html", b"<html>".to_vec())
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        upload(&v, "image/jpeg", jpeg.clone())
            .await
            .unwrap()
            .status(),
        403
    );
    let r = api
        .request(
            &v,
            reqwest::Method::GET,
            &format!("/tickets/{id}/attachments/{}", file["id"]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    assert_eq!(r.bytes().await.unwrap().to_vec(), jpeg);
    let (_, card) = api.get(&v, &format!("/tickets/{id}")).await;
    assert_eq!(card["attachments"][0]["file_name"], "фото.jpg");
    let (status, _) = api
        .get(&v, &format!("/tickets/{}/attachments", foreign["id"]))
        .await;
    assert_eq!(status, 404);
    // Too large: 413 before the body is read. A client still sending may see the
    // connection closed instead; either way nothing is stored.
    let big = reqwest::Client::new()
        .post(api.url(&format!("/tickets/{id}/attachments")))
        .bearer_auth(&op)
        .header("content-type", "image/jpeg")
        .body(vec![0xFF; 11 * 1024 * 1024])
        .send()
        .await;
    if let Ok(r) = big {
        assert_eq!(r.status(), 413);
    }
    let (_, files) = api.get(&op, &format!("/tickets/{id}/attachments")).await;
    assert_eq!(files.as_array().unwrap().len(), 1, "{files}");
    // Analytics and the monitor: the company's own, never for operators.
    let range = "from=2000-01-01T00:00:00Z&to=2000-12-01T00:00:00Z&bucket=month";
    let (status, _) = api.get(&v, &format!("/analytics?{range}")).await;
    assert_eq!(status, 200);
    let (status, _) = api.get(&op, &format!("/analytics?{range}")).await;
    assert_eq!(status, 403);
    let (status, _) = api
        .get(&v, &format!("/analytics?{range}&tenant=stolica"))
        .await;
    assert_eq!(status, 403);
    let (status, m) = api.get(&v, "/monitor").await;
    assert_eq!((status, m["open"].as_i64()), (200, Some(1)), "{m}");
    // Another company's viewer sees none of it.
    viewer(&api, "70002", "stolica").await;
    let v2 = api.login("70002").await;
    let (_, reviews) = api.get(&v2, "/reviews").await;
    assert_eq!(reviews["total"], 0);
    let (status, _) = api
        .post(&v2, "/calls/in-1/review", json!({"score": 1}))
        .await;
    assert_eq!(status, 404);
}

api_on_both_backends!(card_shows_everything);

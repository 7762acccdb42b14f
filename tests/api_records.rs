//! The rest of the API: the call journal, recordings (WAV with Range), outages
//! (CRUD and validation), houses, employees, the reason picker and dial jobs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::{Api, read};
use chrono::{Duration, Utc};
use dispatchline::store::{CallDirection, CallRecord, DialKind, Disposition, NewDialJob};
use serde_json::json;

async fn calls_and_recordings(api: Api) {
    let store = &api.db.store;
    let now = Utc::now();
    let mut ours = CallRecord::offered(
        "call-etalon",
        CallDirection::Inbound,
        "+79120000001",
        "+73432000001",
        now,
    );
    ours.tenant = Some("etalon".into());
    ours.disposition = Some(Disposition::Answered);
    store.upsert_call(&ours).await.unwrap();
    let mut theirs = CallRecord::offered(
        "call-stolica",
        CallDirection::Inbound,
        "+79160000001",
        "+74950000001",
        now,
    );
    theirs.tenant = Some("stolica".into());
    store.upsert_call(&theirs).await.unwrap();

    // A WAV of 8000 samples (one second of 8 kHz, 16-bit, mono).
    let path = api.recordings.join("call-etalon.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(&path, spec).unwrap();
    for i in 0..8000i32 {
        writer
            .write_sample(((i % 100) * 300 - 15000) as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    let recording = store
        .insert_recording("call-etalon", "call-etalon.wav", 1000, size as i64)
        .await
        .unwrap();
    store
        .insert_recording("call-stolica", "call-stolica.wav", 1000, 10)
        .await
        .unwrap();

    let token = api.login("1001").await;
    let (status, page) = api.get(&token, "/calls").await;
    assert_eq!((status, page["total"].as_i64()), (200, Some(1)));
    assert_eq!(page["items"][0]["recording_id"], recording.0);
    assert_eq!(api.get(&token, "/calls/call-stolica").await.0, 404);
    assert_eq!(
        api.get(&token, "/calls/call-etalon").await.1["disposition"],
        "answered"
    );
    let (status, body) = api.get(&token, "/calls?direction=sideways").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("direction")));

    let url = api.url(&format!("/recordings/{recording}"));
    let whole = api
        .client
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    assert_eq!(whole.headers()["content-type"], "audio/wav");
    let bytes = whole.bytes().await.unwrap();
    assert_eq!(bytes.len() as u64, size);
    assert_eq!(&bytes[..4], b"RIFF");
    // Range, with the token in the query as an <audio> element sends it.
    let part = api
        .client
        .get(format!("{url}?token={token}"))
        .header("range", "bytes=44-143")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 44-143/{size}")
    );
    assert_eq!(part.bytes().await.unwrap().len(), 100);
    let (status, body) = read(api.client.get(&url).send().await.unwrap()).await;
    assert_eq!((status, body["field"].as_str()), (401, Some("token")));
    let theirs = api.login("2001").await;
    assert_eq!(
        read(
            api.client
                .get(&url)
                .bearer_auth(&theirs)
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        404
    );
    let missing_file = recording.0 + 1;
    let all = api.login("9000").await;
    assert_eq!(
        api.get(&all, &format!("/recordings/{missing_file}"))
            .await
            .0,
        404
    );
    let log = store.access_log(50).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.subject == "recording" && e.principal == "1001")
    );
    assert!(
        log.iter()
            .any(|e| e.subject == "call" && e.subject_id == "call-etalon")
    );
}

async fn outages_crud(api: Api) {
    let token = api.login("1001").await;
    let now = Utc::now();
    let outage = json!({
        "tenant": "etalon",
        "kind": "hot_water",
        "text": "Нет горячей воды до 18:00",
        "starts_at": (now - Duration::hours(1)).to_rfc3339(),
        "ends_at": (now + Duration::hours(5)).to_rfc3339(),
        "house_ids": [api.world.ekb_house, api.world.ekb_house2]
    });
    let mut bad = Vec::new();
    for (key, value, field) in [
        ("kind", json!("meteor"), "kind"),
        (
            "ends_at",
            json!((now - Duration::hours(2)).to_rfc3339()),
            "ends_at",
        ),
        ("ends_at", json!("tomorrow"), "ends_at"),
        ("house_ids", json!([api.world.msk_house]), "house_ids"),
        ("house_ids", json!([]), "house_ids"),
        ("text", json!(" "), "text"),
    ] {
        let mut body = outage.clone();
        body[key] = value;
        bad.push((body, field));
    }
    for (body, field) in bad {
        let (status, answer) = api.post(&token, "/outages", body).await;
        assert!(status == 422 || status == 400, "{field}: {status} {answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    assert_eq!(
        api.get(&token, "/outages")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let (status, created) = api.post(&token, "/outages", outage.clone()).await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let (_, active) = api.get(&token, "/outages?active=true").await;
    assert_eq!(active.as_array().unwrap().len(), 1);
    let mut narrowed = outage.clone();
    narrowed["house_ids"] = json!([api.world.ekb_house]);
    let (status, updated) = read(
        api.request(&token, reqwest::Method::PUT, &format!("/outages/{id}"))
            .json(&narrowed)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, updated["house_ids"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let theirs = api.login("2001").await;
    assert_eq!(api.get(&theirs, &format!("/outages/{id}")).await.0, 404);
    let (status, _) = read(
        api.request(&theirs, reqwest::Method::DELETE, &format!("/outages/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = read(
        api.request(&token, reqwest::Method::DELETE, &format!("/outages/{id}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(api.get(&token, &format!("/outages/{id}")).await.0, 404);
}

async fn reference_data_and_dial_jobs(api: Api) {
    let token = api.login("1001").await;
    let (_, houses) = api.get(&token, "/houses?q=ленина").await;
    assert_eq!(houses["total"], 1);
    assert_eq!(houses["items"][0]["address"], "ул. Ленина, д. 5");
    let (_, employees) = api.get(&token, "/employees").await;
    let names: Vec<&str> = employees
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Ночной Сантехник") && !names.contains(&"Московский Ночной"));
    let night = employees
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "Ночной Сантехник")
        .unwrap();
    assert_eq!(night["shifts"][0]["starts_min"], 20 * 60);
    let (_, reasons) = api.get(&token, "/reasons?tenant=etalon&q=ЗАТОП").await;
    assert_eq!(reasons.as_array().unwrap().len(), 1);
    assert_eq!(reasons[0]["category"], "emergency");
    assert!(
        reasons[0]["operator_text"]
            .as_str()
            .unwrap()
            .contains("бригада")
    );
    let (_, planned) = api.get(&token, "/reasons?category=planned").await;
    assert_eq!(planned.as_array().unwrap().len(), 1);
    let (status, body) = api.get(&token, "/reasons?category=urgent").await;
    assert_eq!((status, body["field"].as_str()), (400, Some("category")));

    let store = &api.db.store;
    for tenant in ["etalon", "stolica"] {
        store
            .create_dial_job(
                &NewDialJob {
                    kind: DialKind::Callback,
                    tenant: Some(tenant.into()),
                    target: store_world::phone("+79120000001"),
                    due_at: Utc::now(),
                    max_attempts: 5,
                    ticket_id: None,
                    call_id: None,
                    deadline_at: None,
                    quiet_hours: false,
                    reach: None,
                    outage_id: None,
                    supplier_ticket_id: None,
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }
    let (_, jobs) = api.get(&token, "/dial-jobs?state=pending").await;
    assert_eq!(jobs["total"], 1);
    assert_eq!(jobs["items"][0]["kind"], "callback");
    assert_eq!(api.get(&token, "/no-such-route").await.0, 404);
}

api_on_both_backends!(
    calls_and_recordings,
    outages_crud,
    reference_data_and_dial_jobs
);

//! Reference-data writes over HTTP (employees, houses, reasons), resource-supplier
//! hand-overs, the screen-pop's tenant scoping, the debtors' replace mode and the
//! body limits: every refusal a 4xx JSON naming the field, on SQLite and PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::{Api, read};
use reqwest::Method;
use serde_json::{Value, json};

async fn put(api: &Api, token: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        api.request(token, Method::PUT, path)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn patch(api: &Api, token: &str, path: &str, body: Value) -> (u16, Value) {
    read(
        api.request(token, Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn plumber() -> Value {
    json!({
        "tenant": "etalon",
        "name": "Новый Сантехник",
        "position": "слесарь-сантехник",
        "phones": ["+79121000091", "8 912 100-00-92"],
        "work_types": ["plumbing"],
        "shifts": [{"weekday": 2, "starts": "00:00", "ends": "00:00"}],
        "absences": []
    })
}

async fn employees_are_written_with_validation(api: Api) {
    let sup = api.login("9001").await;
    let (status, created) = api.post(&sup, "/employees", plumber()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["phones"], json!(["+79121000091", "+79121000092"]));
    assert_eq!(created["active"], true);
    let id = created["id"].as_i64().unwrap();

    let with = |key: &str, value: Value| {
        let mut body = plumber();
        body[key] = value;
        body
    };
    for (what, body, code, field) in [
        (
            "bad phone",
            with("phones", json!(["+79121000091", "звоните"])),
            422,
            "phones[1]",
        ),
        (
            "bad shift",
            with(
                "shifts",
                json!([{"weekday": 8, "starts": "08:00", "ends": "20:00"}]),
            ),
            422,
            "shifts[0]",
        ),
        (
            "bad hour",
            with(
                "shifts",
                json!([{"weekday": 1, "starts": "25:00", "ends": "20:00"}]),
            ),
            422,
            "shifts[0]",
        ),
        (
            "reversed absence",
            with(
                "absences",
                json!([{"kind": "vacation", "starts_on": "2026-11-20", "ends_on": "2026-11-10"}]),
            ),
            422,
            "absences[0]",
        ),
        (
            "unknown absence kind",
            with(
                "absences",
                json!([{"kind": "party", "starts_on": "2026-11-20", "ends_on": "2026-11-21"}]),
            ),
            422,
            "absences[0].kind",
        ),
        (
            "unknown work type",
            with("work_types", json!(["juggling"])),
            422,
            "work_types",
        ),
        ("empty name", with("name", json!("  ")), 422, "name"),
        (
            "active on create",
            with("active", json!(false)),
            422,
            "active",
        ),
        (
            "both owners",
            with("supplier", json!("vodokanal")),
            422,
            "tenant",
        ),
        (
            "other tenant",
            with("tenant", json!("stolica")),
            403,
            "tenant",
        ),
        ("unknown field", with("salary", json!(1)), 422, "salary"),
    ] {
        let (got, answer) = api.post(&sup, "/employees", body).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (code, Some(field)),
            "{what}: {answer}"
        );
    }
    // Operators read the reference data but do not write it.
    let op = api.login("1001").await;
    let (status, _) = api.post(&op, "/employees", plumber()).await;
    assert_eq!(status, 403);
    // A supplier's dispatcher is shared: it takes a supervisor of every tenant.
    let mut dispatcher = plumber();
    dispatcher.as_object_mut().unwrap().remove("tenant");
    dispatcher["supplier"] = json!("vodokanal");
    let (status, body) = api.post(&sup, "/employees", dispatcher.clone()).await;
    assert_eq!((status, body["field"].as_str()), (403, Some("tenant")));
    let all = api.login("9000").await;
    let (status, _) = api.post(&all, "/employees", dispatcher).await;
    assert_eq!(status, 201);

    // The update replaces phones and schedule, and the active flag takes the person
    // off every chain.
    let mut update = plumber();
    update.as_object_mut().unwrap().remove("tenant");
    update["phones"] = json!(["+79121000093"]);
    update["active"] = json!(false);
    let (status, updated) = put(&api, &sup, &format!("/employees/{id}"), update.clone()).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["phones"], json!(["+79121000093"]));
    assert_eq!(updated["active"], false);
    let mut moving = update.clone();
    moving["tenant"] = json!("stolica");
    let (status, body) = put(&api, &sup, &format!("/employees/{id}"), moving).await;
    assert_eq!((status, body["field"].as_str()), (422, Some("tenant")));
    let theirs = api.login("2001").await;
    let (status, _) = put(&api, &theirs, &format!("/employees/{id}"), update.clone()).await;
    assert_eq!(status, 404, "another tenant's employee is not found");
    let (status, _) = put(&api, &sup, "/employees/999999", update).await;
    assert_eq!(status, 404);
}

async fn houses_and_reasons_are_written_with_validation(api: Api) {
    let sup = api.login("9001").await;
    let (status, house) = api
        .post(
            &sup,
            "/houses",
            json!({"tenant": "etalon", "house_group": "center", "address": "ул. Ленина, д. 5, 1", "floors": 5, "lifts": 0}),
        )
        .await;
    assert_eq!(status, 201, "{house}");
    let id = house["id"].as_i64().unwrap();
    // ул. Ленина, д. 5 is already there: another spelling of it is a conflict.
    let (status, body) = api
        .post(
            &sup,
            "/houses",
            json!({"tenant": "etalon", "address": "Ленина 5"}),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    for (body, code, field) in [
        (
            json!({"tenant": "etalon", "address": "Ленина 77", "floors": -1}),
            422,
            "floors",
        ),
        (json!({"tenant": "etalon", "address": "  "}), 422, "address"),
        (
            json!({"tenant": "etalon", "address": "Ленина 77", "house_group": "nowhere"}),
            422,
            "house_group",
        ),
        (json!({"address": "Ленина 77"}), 422, "tenant"),
        (
            json!({"tenant": "stolica", "address": "Ленина 77"}),
            403,
            "tenant",
        ),
    ] {
        let (got, answer) = api.post(&sup, "/houses", body.clone()).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (code, Some(field)),
            "{body}: {answer}"
        );
    }
    let (status, updated) = put(
        &api,
        &sup,
        &format!("/houses/{id}"),
        json!({"house_group": "center", "address": "ул. Ленина, д. 5, корп. 1", "floors": 9, "lifts": 2}),
    )
    .await;
    assert_eq!(
        (status, updated["floors"].as_i64()),
        (200, Some(9)),
        "{updated}"
    );
    let (status, _) = put(
        &api,
        &sup,
        &format!("/houses/{id}"),
        json!({"address": "Мира 3", "floors": 9, "lifts": 2}),
    )
    .await;
    assert_eq!(status, 409, "Мира 3 is another house");

    let reason = json!({
        "tenant": "etalon", "code": "smell", "category": "emergency", "title": "Запах газа в подъезде",
        "work_type": "plumbing", "deadline_minutes": 30, "operator_text": "Покиньте помещение"
    });
    let (status, created) = api.post(&sup, "/reasons", reason.clone()).await;
    assert_eq!(status, 201, "{created}");
    let rid = created["id"].as_i64().unwrap();
    let (status, _) = api.post(&sup, "/reasons", reason.clone()).await;
    assert_eq!(status, 409, "the code is taken");
    let with = |key: &str, value: Value| {
        let mut body = reason.clone();
        body[key] = value;
        body["code"] = json!("other");
        body
    };
    for (body, code, field) in [
        (with("deadline_minutes", json!(0)), 422, "deadline_minutes"),
        (with("category", json!("urgent")), 422, "category"),
        (with("work_type", json!("juggling")), 422, "work_type"),
        (with("tenant", Value::Null), 403, "tenant"),
    ] {
        let (got, answer) = api.post(&sup, "/reasons", body.clone()).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (code, Some(field)),
            "{body}: {answer}"
        );
    }
    let mut update = reason.clone();
    update.as_object_mut().unwrap().remove("tenant");
    update.as_object_mut().unwrap().remove("code");
    update["active"] = json!(false);
    let (status, updated) = put(&api, &sup, &format!("/reasons/{rid}"), update).await;
    assert_eq!(
        (status, updated["active"].as_bool()),
        (200, Some(false)),
        "{updated}"
    );
    let (_, listed) = api.get(&sup, "/reasons?tenant=etalon&q=газа").await;
    assert_eq!(listed, json!([]), "an inactive reason is not offered");
    // The shared catalogue is not an etalon supervisor's to change.
    let shared = api.world.flooding.0;
    let (status, _) = put(
        &api,
        &sup,
        &format!("/reasons/{shared}"),
        json!({"category": "emergency", "title": "x", "work_type": "plumbing", "deadline_minutes": 5}),
    )
    .await;
    assert_eq!(status, 403);
}

async fn supplier_hand_overs_over_http(api: Api) {
    let op = api.login("1001").await;
    let (_, created) = api
        .post(
            &op,
            "/tickets",
            json!({"tenant": "etalon", "house_id": api.world.ekb_house, "reason_id": api.world.flooding}),
        )
        .await;
    let ticket = created["ticket"]["id"].as_i64().unwrap();
    let recheck = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let (status, handed) = api
        .post(
            &op,
            &format!("/tickets/{ticket}/supplier-tickets"),
            json!({"supplier": "vodokanal", "recheck_at": recheck}),
        )
        .await;
    assert_eq!(
        (status, handed["status"].as_str()),
        (201, Some("pending")),
        "{handed}"
    );
    let id = handed["id"].as_i64().unwrap();
    let (status, body) = api
        .post(
            &op,
            &format!("/tickets/{ticket}/supplier-tickets"),
            json!({"supplier": "gazprom"}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("supplier")));
    let (status, changed) = patch(
        &api,
        &op,
        &format!("/supplier-tickets/{id}"),
        json!({"supplier_number": "ВК-5521"}),
    )
    .await;
    assert_eq!(
        (
            status,
            changed["status"].as_str(),
            changed["supplier_number"].as_str()
        ),
        (200, Some("handed_over"), Some("ВК-5521"))
    );
    for (body, code, field) in [
        (json!({"status": "lost"}), 422, Some("status")),
        (
            json!({"recheck_at": "2000-01-01T00:00:00Z"}),
            422,
            Some("recheck_at"),
        ),
        (json!({}), 422, Some("status")),
        (json!({"status": "pending"}), 409, None),
    ] {
        let (got, answer) =
            patch(&api, &op, &format!("/supplier-tickets/{id}"), body.clone()).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (code, field),
            "{body}: {answer}"
        );
    }
    let (status, done) = patch(
        &api,
        &op,
        &format!("/supplier-tickets/{id}"),
        json!({"status": "done"}),
    )
    .await;
    assert_eq!((status, done["status"].as_str()), (200, Some("done")));
    let theirs = api.login("2001").await;
    let (status, _) = api.get(&theirs, &format!("/supplier-tickets/{id}")).await;
    assert_eq!(status, 404);
    let (status, due) = api.get(&op, "/supplier-tickets/due").await;
    assert_eq!((status, due), (200, json!([])));
    let (_, detail) = api.get(&op, &format!("/tickets/{ticket}")).await;
    assert_eq!(detail["supplier_tickets"][0]["status"], "done");
    assert_eq!(detail["version"], 1);
}

async fn the_screen_pop_reads_only_the_operators_tenants(api: Api) {
    let now = chrono::Utc::now();
    let store = &api.db.store;
    let caller = store_world::phone("+79125000009");
    // Known at stolica's house (confirmed recently) and at etalon's (longer ago).
    store
        .learn_contact(
            &caller,
            "etalon",
            api.world.ekb_house,
            Some("3"),
            now - chrono::Duration::days(30),
        )
        .await
        .unwrap();
    store
        .learn_contact(&caller, "stolica", api.world.msk_house, Some("8"), now)
        .await
        .unwrap();
    let op = api.login("1001").await;
    let (status, info) = api.get(&op, "/caller?phone=%2B79125000009").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(
        info["address"]["house_id"],
        json!(api.world.ekb_house),
        "{info}"
    );
    assert_eq!(info["tenant"]["code"], "etalon");
    assert_eq!(info["city"], "ekb");
    assert_eq!(info["other_addresses"], json!([]));
    let theirs = api.login("2001").await;
    let (_, info) = api.get(&theirs, "/caller?phone=%2B79125000009").await;
    assert_eq!(info["address"]["house_id"], json!(api.world.msk_house));
    assert_eq!(info["city"], "msk");
}

async fn debtors_replace_and_body_limits(api: Api) {
    let sup = api.login("9001").await;
    let (status, _) = api
        .post_csv(
            &sup,
            "/debtors/import?tenant=etalon",
            "Ленина 5;1;100;31.12.2099\nЛенина 5;2;100;31.12.2099\n",
        )
        .await;
    assert_eq!(status, 200);
    let (status, report) = api
        .post_csv(
            &sup,
            "/debtors/import?tenant=etalon&mode=replace",
            "Ленина 5;2;150;31.12.2099\n",
        )
        .await;
    assert_eq!(
        (status, report["deleted"].as_i64()),
        (200, Some(1)),
        "{report}"
    );
    assert_eq!(api.get(&sup, "/debtors").await.1["total"], 1);
    let (status, body) = api
        .post_csv(&sup, "/debtors/import?tenant=etalon&mode=wipe", "")
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("mode")));
    let (status, body) = api
        .post_csv(&sup, "/contacts/import?tenant=etalon&mode=replace", "")
        .await;
    assert_eq!((status, body["field"].as_str()), (400, Some("mode")));
    // Over the limit: a JSON 413, not axum's plain text. (33 MiB of JSON; imports
    // take up to 256 MiB, so the same size as CSV is read.)
    let big = "x".repeat(33 * 1024 * 1024);
    let (status, body) = api.post_raw(&sup, "/tickets", &big).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].is_string());
    // The same row 800 000 times: one contact, but the file is read whole.
    let mut csv = String::with_capacity(34 * 1024 * 1024);
    while csv.len() < 33 * 1024 * 1024 {
        csv.push_str("+79120000001;ул. Ленина, д. 5;1\n");
    }
    let (status, body) = api
        .post_csv(&sup, "/contacts/import?tenant=etalon", &csv)
        .await;
    assert_eq!(
        (status, body["imported"].as_i64()),
        (200, Some(1)),
        "{body}"
    );
}

api_on_both_backends!(
    employees_are_written_with_validation,
    houses_and_reasons_are_written_with_validation,
    supplier_hand_overs_over_http,
    the_screen_pop_reads_only_the_operators_tenants,
    debtors_replace_and_body_limits,
);

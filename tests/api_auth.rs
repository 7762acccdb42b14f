//! API authentication and tenant scoping: no token, a bad token, a wrong password,
//! and another tenant's data (403 when asked for by name, 404 when by id).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::{Api, read};
use chrono::Utc;
use dispatchline::console::api::auth::token_hash;
use dispatchline::console::api::authenticate;
use dispatchline::store::tickets::{Channel, NewTicket};
use serde_json::json;

async fn tokens_are_required_and_checked(api: Api) {
    let (status, body) = read(api.client.get(api.url("/tickets")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(body["field"], "token");
    assert!(body["error"].is_string());
    let (status, _) = api.get("not-a-token", "/tickets").await;
    assert_eq!(status, 401);
    let (status, body) = read(
        api.client
            .post(api.url("/auth/token"))
            .json(&json!({"extension": "1001", "password": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (401, Some("password")));
    let (status, body) = read(
        api.client
            .post(api.url("/auth/token"))
            .json(&json!({"extension": "1001"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("password")));

    let response = api
        .client
        .post(api.url("/auth/token"))
        .json(&json!({"extension": "9001", "password": "pw-9001"}))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(body["role"], "supervisor");
    assert_eq!(body["tenants"], json!(["etalon"]));
    let expires: chrono::DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    assert!(expires > Utc::now() + chrono::Duration::hours(11));
    let token = body["token"].as_str().unwrap();
    // Only the hash is stored: the token itself is not a key.
    assert!(
        api.db
            .store
            .token(token, Utc::now())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        api.db
            .store
            .token(&token_hash(token), Utc::now())
            .await
            .unwrap()
            .is_some()
    );
    // The websocket's check is the same function.
    let principal = authenticate(&api.db.store, token).await.unwrap();
    assert_eq!(principal.extension, "9001");
    // ?token= is for the recording download only.
    let (status, _) = read(
        api.client
            .get(api.url(&format!("/tickets?token={token}")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = api.get(token, "/tickets").await;
    assert_eq!(status, 200);
}

async fn other_tenants_data_is_out_of_reach(api: Api) {
    let w = &api.world;
    let now = Utc::now();
    let theirs = api
        .db
        .store
        .create_ticket(
            &NewTicket {
                tenant: "stolica".into(),
                house_id: w.msk_house,
                apartment: Some("3".into()),
                reason_id: w.flooding,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "test".into(),
            },
            now,
        )
        .await
        .unwrap()
        .ticket;
    let ours = api.login("1001").await;
    let (status, body) = api.get(&ours, &format!("/tickets/{}", theirs.id)).await;
    assert_eq!((status, body["error"].is_string()), (404, true));
    let (status, _) = api
        .post(
            &ours,
            &format!("/tickets/{}/comments", theirs.id),
            json!({"text": "hi"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, _) = api
        .post(
            &ours,
            &format!("/tickets/{}/status", theirs.id),
            json!({"status": "accepted"}),
        )
        .await;
    assert_eq!(status, 404);
    let (status, body) = api.get(&ours, "/tickets?tenant=stolica").await;
    assert_eq!((status, body["field"].as_str()), (403, Some("tenant")));
    let (status, body) = api
        .post(
            &ours,
            "/tickets",
            json!({"tenant": "stolica", "house_id": w.msk_house, "reason_id": w.flooding}),
        )
        .await;
    assert_eq!((status, body["field"].as_str()), (403, Some("tenant")));
    let (status, body) = api.get(&ours, "/tickets").await;
    assert_eq!((status, body["total"].as_i64()), (200, Some(0)));
    let (_, tenants) = api.get(&ours, "/tenants").await;
    assert_eq!(tenants.as_array().unwrap().len(), 1);
    let (_, houses) = api.get(&ours, "/houses").await;
    assert_eq!(houses["total"], 2);
    // Their operator sees it; the all-tenants supervisor too.
    let theirs_op = api.login("2001").await;
    assert_eq!(
        api.get(&theirs_op, &format!("/tickets/{}", theirs.id))
            .await
            .0,
        200
    );
    let all = api.login("9000").await;
    assert_eq!(api.get(&all, "/tickets").await.1["total"], 1);
    // Imports take a supervisor of that tenant.
    let (status, _) = api
        .post_csv(
            &ours,
            "/contacts/import?tenant=etalon",
            "+79120000001;Ленина 5;1\n",
        )
        .await;
    assert_eq!(status, 403);
    let etalon_supervisor = api.login("9001").await;
    let (status, _) = api
        .post_csv(
            &etalon_supervisor,
            "/contacts/import?tenant=stolica",
            "+79120000001;Арбат 10;1\n",
        )
        .await;
    assert_eq!(status, 403);
}

api_on_both_backends!(
    tokens_are_required_and_checked,
    other_tenants_data_is_out_of_reach
);

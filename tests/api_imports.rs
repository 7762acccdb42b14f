//! CSV imports over HTTP: bad rows reported with line numbers, nothing imported
//! unless `skip_bad_rows=true`; contacts and debtors listed afterwards, and those
//! reads logged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use api_server::Api;

const CONTACTS: &str = "\u{feff}Телефон;Адрес;Квартира\n\
    +7 912 400-00-01;ул. Ленина, д. 5;12\n\
    \n\
    89124000002;улица Мира, дом 3;7\n\
    12ab;Ленина 5;3\n\
    +79124000004;ул. Несуществующая, 1;4\n\
    +79124000005\n";

async fn contacts_import(api: Api) {
    let token = api.login("9001").await;
    let (status, body) = api
        .post_csv(&token, "/contacts/import?tenant=etalon", CONTACTS)
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["field"], "file");
    let bad: Vec<(i64, String)> = body["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["line"].as_i64().unwrap(),
                r["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        bad,
        vec![
            (5, "phone".to_owned()),
            (6, "address".to_owned()),
            (7, "row".to_owned())
        ]
    );
    let (_, page) = api.get(&token, "/contacts").await;
    assert_eq!(page["total"], 0, "nothing imported");

    let (status, report) = api
        .post_csv(
            &token,
            "/contacts/import?tenant=etalon&skip_bad_rows=true",
            CONTACTS,
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        (report["imported"].as_i64(), report["skipped"].as_i64()),
        (Some(2), Some(3))
    );
    let (_, page) = api.get(&token, "/contacts?phone=4000002").await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["phone"], "+79124000002");
    assert_eq!(page["items"][0]["apartment"], "7");
    assert_eq!(page["items"][0]["source"], "imported");
    let log = api.db.store.access_log(10).await.unwrap();
    assert!(
        log.iter().any(|e| e.principal == "9001"
            && e.subject == "contact"
            && e.purpose == "GET /contacts")
    );

    // The screen-pop over HTTP finds the imported address.
    let (status, caller) = api.get(&token, "/caller?phone=%2B79124000001").await;
    assert_eq!(status, 200, "{caller}");
    assert_eq!(caller["address"]["apartment"], "12");
    assert_eq!(caller["tenant"]["code"], "etalon");
    let (status, body) = api.get(&token, "/caller?phone=call-me").await;
    assert_eq!((status, body["field"].as_str()), (422, Some("phone")));
    let (status, body) = api.get(&token, "/contacts/import").await;
    assert_eq!(status, 405, "{body}");
    assert!(body["error"].is_string());
    let (status, body) = api.post_csv(&token, "/contacts/import", CONTACTS).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("tenant")));
    let (status, body) = api
        .post_csv(&token, "/contacts/import?tenant=etalon", "")
        .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("file")));
}

async fn debtors_import(api: Api) {
    let token = api.login("9000").await;
    let csv = "Адрес,Кв,Сумма,Действует до\n\
               \"ул. Ленина, д. 5\",12,\"1 234,56\",31.12.2099\n\
               \"Мира 3\",,много,31.12.2099\n\
               \"Мира 3\",1,100,вчера\n";
    let (status, body) = api
        .post_csv(&token, "/debtors/import?tenant=etalon", csv)
        .await;
    assert_eq!(status, 422, "{body}");
    let lines: Vec<(i64, &str)> = body["bad_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["field"].as_str().unwrap()))
        .collect();
    assert_eq!(lines, vec![(3, "amount"), (4, "valid_until")]);
    assert_eq!(api.get(&token, "/debtors").await.1["total"], 0);
    let (status, report) = api
        .post_csv(
            &token,
            "/debtors/import?tenant=etalon&skip_bad_rows=true",
            csv,
        )
        .await;
    assert_eq!((status, report["imported"].as_i64()), (200, Some(1)));
    let (_, page) = api.get(&token, "/debtors?tenant=etalon").await;
    assert_eq!(page["items"][0]["amount_kopecks"], 123_456);
    assert_eq!(page["items"][0]["valid_until"], "2099-12-31");
    let theirs = api.login("2001").await;
    assert_eq!(api.get(&theirs, "/debtors").await.1["total"], 0);
}

api_on_both_backends!(contacts_import, debtors_import);

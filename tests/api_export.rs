//! Exports of the journals over HTTP, on SQLite and PostgreSQL: the ticket journal
//! of a period as CSV (streamed, with a byte-order mark), XLSX and a paginated PDF
//! streamed, well formed (pdfinfo) and whose text (pdftotext) holds the company's
//! name, the period and every ticket;
//! the call journal as CSV and XLSX; a company's viewer exports its own rows only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/api_server.rs"]
mod api_server;
#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use std::io::Cursor;

use api_server::Api;
use calamine::Reader;
use chrono::{Duration, Utc};
use dispatchline::config::Role;
use dispatchline::store::tickets::Channel;
use dispatchline::store::users::NewUser;
use dispatchline::store::{CallDirection, CallRecord, NewTicket};
use reqwest::Method;

async fn bytes(api: &Api, token: &str, path: &str) -> (u16, String, Vec<u8>) {
    let r = api.request(token, Method::GET, path).send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

fn pdf_text(pdf: &[u8]) -> String {
    let dir = std::env::temp_dir()
        .join("dispatchline-tests")
        .join(store_db::unique_name());
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("journal.pdf");
    std::fs::write(&file, pdf).unwrap();
    let out = std::process::Command::new("pdftotext")
        .args(["-layout", file.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The streamed file is well formed: pdfinfo reads it without repairing the
    // cross-reference table (it complains on stderr when it has to).
    let info = std::process::Command::new("pdfinfo")
        .arg(&file)
        .output()
        .expect("pdfinfo (poppler-utils) is installed");
    assert!(
        info.status.success() && info.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(String::from_utf8_lossy(&info.stdout).contains("Pages:"));
    let _ = std::fs::remove_dir_all(&dir);
    String::from_utf8(out.stdout).unwrap()
}

async fn journals_export(api: Api) {
    let store = &api.db.store;
    let start = Utc::now() - Duration::hours(3);
    let mut numbers = Vec::new();
    for i in 0..120 {
        let t = store
            .create_ticket(
                &NewTicket {
                    tenant: "etalon".into(),
                    house_id: api.world.ekb_house,
                    apartment: Some(format!("{}", i + 1)),
                    reason_id: api.world.flooding,
                    description: "течёт, \"срочно\"; кухня".into(),
                    source: Channel::Phone,
                    labels: vec![],
                    caller_phone: None,
                    call_id: None,
                    actor: "1001".into(),
                },
                start + Duration::seconds(i),
            )
            .await
            .unwrap();
        numbers.push(t.ticket.number);
    }
    store
        .create_ticket(
            &NewTicket {
                tenant: "stolica".into(),
                house_id: api.world.msk_house,
                apartment: None,
                reason_id: api.world.roof,
                description: String::new(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "2001".into(),
            },
            start,
        )
        .await
        .unwrap();
    for (id, tenant) in [("e-1", "etalon"), ("s-1", "stolica")] {
        let mut c = CallRecord::offered(
            id,
            CallDirection::Inbound,
            "+79120000001",
            "+73432000001",
            start,
        );
        c.tenant = Some(tenant.into());
        store.upsert_call(&c).await.unwrap();
    }
    store
        .create_user(
            &NewUser {
                extension: "70001".into(),
                name: "Директор".into(),
                role: Some(Role::TenantViewer),
                tenants: vec!["etalon".into()],
                cities: vec![],
                password: "pw-70001".into(),
                sip_password: None,
                auto_answer: false,
            },
            "dispatchline",
        )
        .await
        .unwrap();
    let v = api.login("70001").await;
    let from = (start - Duration::hours(1)).to_rfc3339();
    let to = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let range = format!("from={}&to={}", urlencode(&from), urlencode(&to));

    let (status, ct, csv) = bytes(&api, &v, &format!("/export/tickets.csv?{range}")).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with('\u{feff}'));
    let mut reader = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 120, "the viewer's company only");
    assert!(rows.iter().all(|r| &r[1] == "etalon"));
    assert_eq!(&rows[0][15], "течёт, \"срочно\"; кухня");

    let (status, _, xlsx) = bytes(&api, &v, &format!("/export/tickets.xlsx?{range}")).await;
    assert_eq!(status, 200);
    let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(xlsx)).unwrap();
    let sheet = book.worksheet_range("Заявки").unwrap();
    assert_eq!(sheet.height(), 121);

    let (status, _, calls) = bytes(&api, &v, &format!("/export/calls.csv?{range}")).await;
    assert_eq!(status, 200);
    let calls = String::from_utf8(calls).unwrap();
    assert!(calls.contains("e-1") && !calls.contains("s-1"), "{calls}");
    let (status, _, _) = bytes(&api, &v, &format!("/export/calls.xlsx?{range}")).await;
    assert_eq!(status, 200);

    let (status, ct, pdf) = bytes(&api, &v, &format!("/export/tickets.pdf?{range}")).await;
    assert_eq!((status, ct.as_str()), (200, "application/pdf"));
    let text = pdf_text(&pdf);
    assert!(text.contains("УК «Эталон»"), "{text}");
    assert!(
        text.contains("Стр. 2") && text.contains("Стр. 3"),
        "paginated: {text}"
    );
    for n in &numbers {
        assert!(text.contains(n.as_str()), "ticket {n} in the report");
    }
    assert!(text.contains("Всего заявок: 120"));
    assert!(text.contains("ул. Ленина, д. 5, кв. 120"));

    // Not another company's, not a bad period, not an unknown file.
    let (status, _, _) = bytes(
        &api,
        &v,
        &format!("/export/tickets.pdf?{range}&tenant=stolica"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = bytes(
        &api,
        &v,
        &format!(
            "/export/tickets.csv?from={}&to={}",
            urlencode(&to),
            urlencode(&from)
        ),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _, _) = bytes(&api, &v, &format!("/export/tickets.doc?{range}")).await;
    assert_eq!(status, 404);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

api_on_both_backends!(journals_export);

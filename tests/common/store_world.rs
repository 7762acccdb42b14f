//! A small world for store and API tests: two tenants in two time zones,
//! Екатеринбург (UTC+5) and Москва (UTC+3), one house group each, a plumbing matrix
//! with a day and a night plumber on level 1, a master on level 2 and
//! a round-the-clock engineer on level 3.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc, Weekday};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::assignment::Shift;
use dispatchline::store::directory::{NewEmployee, NewReason, Responsibility};
use dispatchline::store::{Category, EmployeeId, HouseId, ReasonId, Store};

pub struct World {
    pub ekb_house: HouseId,
    pub ekb_house2: HouseId,
    pub msk_house: HouseId,
    pub flooding: ReasonId,
    pub intercom: ReasonId,
    pub roof: ReasonId,
    pub day: EmployeeId,
    pub night: EmployeeId,
    pub master: EmployeeId,
    pub engineer: EmployeeId,
    pub head: EmployeeId,
    pub msk_day: EmployeeId,
    pub msk_night: EmployeeId,
}

pub fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

/// Tuesday 2026-11-17 at `hh:mm` UTC.
pub fn tuesday_utc(hh: u32, mm: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 17, hh, mm, 0).unwrap()
}

async fn employee(
    store: &Store,
    tenant: &str,
    name: &str,
    phone_text: &str,
    work_types: &[&str],
    shifts: Vec<Shift>,
) -> EmployeeId {
    store
        .create_employee(&NewEmployee {
            tenant: Some(tenant.to_owned()),
            supplier: None,
            name: name.to_owned(),
            position: String::new(),
            phones: vec![phone(phone_text)],
            work_types: work_types.iter().map(|s| (*s).to_owned()).collect(),
            shifts,
            absences: vec![],
        })
        .await
        .unwrap()
}

pub async fn build(store: &Store) -> World {
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await
        .unwrap();
    store
        .create_city("msk", "Москва", "Europe/Moscow")
        .await
        .unwrap();
    for (code, name) in [
        ("plumbing", "Сантехника"),
        ("intercom", "Домофоны"),
        ("roof", "Кровля"),
    ] {
        store.create_work_type(code, name).await.unwrap();
    }
    store
        .create_tenant("etalon", "УК «Эталон»", "ekb")
        .await
        .unwrap();
    store
        .create_supplier(
            "vodokanal",
            "Водоканал",
            "ekb",
            Some(&phone("+73432000901")),
        )
        .await
        .unwrap();
    store
        .create_tenant("stolica", "УК «Столица»", "msk")
        .await
        .unwrap();
    store
        .create_house_group("etalon", "center", "Центр")
        .await
        .unwrap();
    store
        .create_house_group("stolica", "arbat", "Арбат")
        .await
        .unwrap();
    let ekb_house = store
        .create_house("etalon", Some("center"), "ул. Ленина, д. 5", 9, 1)
        .await
        .unwrap();
    let ekb_house2 = store
        .create_house("etalon", Some("center"), "ул. Мира, д. 3", 5, 0)
        .await
        .unwrap();
    let msk_house = store
        .create_house("stolica", Some("arbat"), "ул. Арбат, д. 10", 7, 1)
        .await
        .unwrap();
    let reason = |code: &str, category, title: &str, work_type: &str, minutes| NewReason {
        tenant: None,
        code: code.to_owned(),
        category,
        title: title.to_owned(),
        work_type: work_type.to_owned(),
        deadline_minutes: minutes,
        operator_text: format!("{title}: бригада выезжает"),
        keywords: String::new(),
    };
    let flooding = store
        .create_reason(&reason(
            "flooding",
            Category::Emergency,
            "Затопление сверху",
            "plumbing",
            60,
        ))
        .await
        .unwrap();
    let intercom = store
        .create_reason(&reason(
            "intercom",
            Category::Planned,
            "Не работает домофон",
            "intercom",
            4320,
        ))
        .await
        .unwrap();
    let roof = store
        .create_reason(&reason(
            "roof",
            Category::Emergency,
            "Протечка кровли",
            "roof",
            240,
        ))
        .await
        .unwrap();
    let day_hours = Shift::every_day("08:00", "20:00").unwrap();
    let night_hours = Shift::every_day("20:00", "08:00").unwrap();
    let day = employee(
        store,
        "etalon",
        "Дневной Сантехник",
        "+79121000001",
        &["plumbing"],
        day_hours.clone(),
    )
    .await;
    let night = employee(
        store,
        "etalon",
        "Ночной Сантехник",
        "+79121000002",
        &["plumbing"],
        night_hours.clone(),
    )
    .await;
    let master = employee(
        store,
        "etalon",
        "Мастер Участка",
        "+79121000003",
        &["plumbing", "intercom"],
        Shift::weekdays("08:00", "17:00").unwrap(),
    )
    .await;
    let engineer = employee(
        store,
        "etalon",
        "Дежурный Инженер",
        "+79121000004",
        &["plumbing", "intercom"],
        Shift::every_day("09:00", "09:00").unwrap(),
    )
    .await;
    let head = employee(
        store,
        "etalon",
        "Директор",
        "+79121000005",
        &[],
        vec![Shift::new(Weekday::Mon, "09:00", "18:00").unwrap()],
    )
    .await;
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "plumbing".into(),
            levels: [vec![day, night], vec![master], vec![engineer]],
            responsible: Some(master),
            manager: Some(engineer),
            head: Some(head),
        })
        .await
        .unwrap();
    store
        .set_responsibility(&Responsibility {
            tenant: "etalon".into(),
            house_group: "center".into(),
            work_type: "intercom".into(),
            levels: [vec![master], vec![], vec![engineer]],
            responsible: Some(master),
            manager: None,
            head: Some(head),
        })
        .await
        .unwrap();
    let msk_day = employee(
        store,
        "stolica",
        "Московский Дневной",
        "+79161000001",
        &["plumbing"],
        day_hours,
    )
    .await;
    let msk_night = employee(
        store,
        "stolica",
        "Московский Ночной",
        "+79161000002",
        &["plumbing"],
        night_hours,
    )
    .await;
    store
        .set_responsibility(&Responsibility {
            tenant: "stolica".into(),
            house_group: "arbat".into(),
            work_type: "plumbing".into(),
            levels: [vec![msk_day, msk_night], vec![], vec![]],
            responsible: None,
            manager: None,
            head: None,
        })
        .await
        .unwrap();
    World {
        ekb_house,
        ekb_house2,
        msk_house,
        flooding,
        intercom,
        roof,
        day,
        night,
        master,
        engineer,
        head,
        msk_day,
        msk_night,
    }
}

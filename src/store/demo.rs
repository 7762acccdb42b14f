//! The demo data set: what `dispatchline demo`, the examples and other layers' tests
//! run on.
//!
//! One city, Екатеринбург (`ekb`, Asia/Yekaterinburg), and two management companies
//! sharing its citywide number: `etalon` (УК «Эталон») and `uyut` (УК «Уют»), each with
//! two house groups and fifteen houses at real-looking addresses; staff with day,
//! night and round-the-clock shifts; a Russian reasons catalogue; a responsibility
//! matrix for every group and work type; two resource suppliers; contacts; one active
//! outage and one debtor.
//!
//! Fixed points other tests rely on:
//!
//! - `+79120000001` lives at ул. Малышева, д. 51 (etalon), apartment 12; that house
//!   has the active outage (no hot water);
//! - `+79120000002` lives at ул. Мира, д. 32 (uyut), apartment 5;
//! - `+79120000003` lives at ул. 8 Марта, д. 32 (etalon), apartment 7, which owes
//!   15 432,10 ₽.
//!
//! Seeding is idempotent and resumable: a complete data set (its last step, the
//! debt, is there) is left alone, and a seed that was interrupted half-way is
//! completed on the next run without duplicating what it had written (houses and
//! staff are matched by address and name). It is not one transaction: the store's
//! writes each commit on their own.

use chrono::{DateTime, Duration, Utc, Weekday};

use super::assignment::Shift;
use super::directory::{NewEmployee, NewReason, Responsibility, TenantScope};
use super::ids::{EmployeeId, HouseId};
use super::notices::NewOutage;
use super::tickets::Category;
use super::{Store, StoreError};
use crate::phone::PhoneNumber;

/// Work types: code and name.
const WORK_TYPES: &[(&str, &str)] = &[
    ("plumbing", "Водоснабжение и водоотведение"),
    ("heating", "Отопление"),
    ("electrical", "Электроснабжение"),
    ("lift", "Лифтовое хозяйство"),
    ("intercom", "Домофоны и двери"),
    ("roof", "Кровля и фасад"),
    ("general", "Общестроительные работы"),
];

struct DemoReason {
    code: &'static str,
    category: Category,
    title: &'static str,
    work_type: &'static str,
    minutes: i64,
    text: &'static str,
    keywords: &'static str,
}

const REASONS: &[DemoReason] = &[
    DemoReason {
        code: "lift-stuck",
        category: Category::Emergency,
        title: "Застревание в лифте",
        work_type: "lift",
        minutes: 30,
        text: "Сохраняйте спокойствие, не пытайтесь открыть двери самостоятельно. Аварийный лифтёр уже направлен, он прибудет в течение 30 минут. Если кому-то плохо — звоните 112.",
        keywords: "лифт застряли кабина",
    },
    DemoReason {
        code: "lift-stopped",
        category: Category::Emergency,
        title: "Лифт не работает",
        work_type: "lift",
        minutes: 24 * 60,
        text: "Заявка передана лифтовой службе. Лифт будет проверен и запущен в течение суток.",
        keywords: "лифт остановился не едет",
    },
    DemoReason {
        code: "no-heating",
        category: Category::Emergency,
        title: "Нет отопления",
        work_type: "heating",
        minutes: 4 * 60,
        text: "Уточните: холодные батареи во всей квартире или в одной комнате, и у соседей тоже? Слесарь проверит стояк в течение 4 часов.",
        keywords: "батареи холодные отопление",
    },
    DemoReason {
        code: "heating-leak",
        category: Category::Emergency,
        title: "Течь в системе отопления",
        work_type: "heating",
        minutes: 60,
        text: "Если можете, перекройте кран на подводке к батарее и подставьте ёмкость. Аварийная бригада будет в течение часа.",
        keywords: "батарея течёт протечка стояк отопления",
    },
    DemoReason {
        code: "flooding",
        category: Category::Emergency,
        title: "Затопление сверху",
        work_type: "plumbing",
        minutes: 60,
        text: "Отключите электричество в мокрых помещениях. Аварийная бригада перекроет стояк в течение часа; постарайтесь связаться с соседями сверху.",
        keywords: "топят соседи протечка потолок вода течёт",
    },
    DemoReason {
        code: "pipe-burst",
        category: Category::Emergency,
        title: "Прорыв трубы водоснабжения",
        work_type: "plumbing",
        minutes: 60,
        text: "Если можете, перекройте вводной кран в квартире. Аварийная бригада выезжает, прибытие в течение часа.",
        keywords: "прорыв труба течь вода хлещет протечка",
    },
    DemoReason {
        code: "no-cold-water",
        category: Category::Emergency,
        title: "Нет холодной воды",
        work_type: "plumbing",
        minutes: 2 * 60,
        text: "Уточните, нет воды только у вас или во всём подъезде. Сантехник проверит в течение двух часов.",
        keywords: "хвс холодная вода отсутствует",
    },
    DemoReason {
        code: "no-hot-water",
        category: Category::Emergency,
        title: "Нет горячей воды",
        work_type: "plumbing",
        minutes: 2 * 60,
        text: "Сначала проверьте оповещения по дому: возможно, идёт плановое отключение. Если нет — сантехник проверит в течение двух часов.",
        keywords: "гвс горячая вода",
    },
    DemoReason {
        code: "sewer-blockage",
        category: Category::Emergency,
        title: "Засор канализации",
        work_type: "plumbing",
        minutes: 2 * 60,
        text: "Попросите не пользоваться водой до приезда сантехника. Засор стояка устраняется в течение двух часов.",
        keywords: "канализация засор унитаз стояк выгребная",
    },
    DemoReason {
        code: "no-power",
        category: Category::Emergency,
        title: "Нет электричества в квартире",
        work_type: "electrical",
        minutes: 2 * 60,
        text: "Проверьте автоматы в квартирном щитке. Если они включены, электрик приедет в течение двух часов.",
        keywords: "свет электричество отключили",
    },
    DemoReason {
        code: "sparking",
        category: Category::Emergency,
        title: "Искрит щиток, запах гари",
        work_type: "electrical",
        minutes: 30,
        text: "Не прикасайтесь к щитку. Если есть открытый огонь или дым — звоните 101. Электрик выезжает немедленно.",
        keywords: "щиток искрит гарь дым проводка электричество",
    },
    DemoReason {
        code: "gas-smell",
        category: Category::Emergency,
        title: "Запах газа",
        work_type: "general",
        minutes: 15,
        text: "Не включайте свет и электроприборы, откройте окна, выйдите из квартиры и сразу позвоните в газовую службу 104. Мы тоже передаём вызов.",
        keywords: "газ пахнет утечка",
    },
    DemoReason {
        code: "roof-leak",
        category: Category::Emergency,
        title: "Протечка кровли",
        work_type: "roof",
        minutes: 4 * 60,
        text: "Подставьте ёмкость, уберите технику. Кровельщики осмотрят крышу в течение 4 часов (при осадках — после их окончания).",
        keywords: "крыша течёт потолок кровля протечка",
    },
    DemoReason {
        code: "intercom-broken",
        category: Category::Planned,
        title: "Не работает домофон",
        work_type: "intercom",
        minutes: 3 * 24 * 60,
        text: "Мастер по домофонам посетит дом в течение трёх рабочих дней.",
        keywords: "домофон трубка не открывает",
    },
    DemoReason {
        code: "entrance-door",
        category: Category::Planned,
        title: "Не закрывается дверь подъезда",
        work_type: "intercom",
        minutes: 24 * 60,
        text: "Дверь отремонтируют в течение суток.",
        keywords: "дверь подъезд доводчик замок",
    },
    DemoReason {
        code: "stair-light",
        category: Category::Planned,
        title: "Нет освещения в подъезде",
        work_type: "electrical",
        minutes: 24 * 60,
        text: "Электрик заменит лампы в течение суток. Уточните этаж.",
        keywords: "лампочка свет подъезд освещение",
    },
    DemoReason {
        code: "radiator-air",
        category: Category::Planned,
        title: "Завоздушена батарея",
        work_type: "heating",
        minutes: 24 * 60,
        text: "Слесарь спустит воздух в течение суток. Кто-то должен быть дома.",
        keywords: "воздух батарея холодная сверху отопление",
    },
    DemoReason {
        code: "tap-replace",
        category: Category::Paid,
        title: "Замена смесителя (платно)",
        work_type: "plumbing",
        minutes: 5 * 24 * 60,
        text: "Работа платная по прейскуранту. Мастер позвонит, чтобы согласовать время.",
        keywords: "кран смеситель замена сантехник",
    },
    DemoReason {
        code: "meters-install",
        category: Category::Paid,
        title: "Установка счётчиков воды (платно)",
        work_type: "plumbing",
        minutes: 7 * 24 * 60,
        text: "Установка счётчиков платная. Мастер позвонит, чтобы согласовать время.",
        keywords: "счётчик счетчик ипу вода установка",
    },
    DemoReason {
        code: "electrician-visit",
        category: Category::Paid,
        title: "Вызов электрика в квартиру (платно)",
        work_type: "electrical",
        minutes: 5 * 24 * 60,
        text: "Работа в квартире платная. Электрик позвонит, чтобы согласовать время.",
        keywords: "розетка выключатель проводка электрик",
    },
    DemoReason {
        code: "intercom-key",
        category: Category::Paid,
        title: "Изготовление ключа домофона (платно)",
        work_type: "intercom",
        minutes: 3 * 24 * 60,
        text: "Ключ изготавливается платно в офисе управляющей компании.",
        keywords: "ключ домофон чип",
    },
];

/// A house: address, floors, lifts.
type DemoHouse = (&'static str, i64, i64);

struct DemoGroup {
    code: &'static str,
    name: &'static str,
    houses: &'static [DemoHouse],
}

struct DemoTenant {
    code: &'static str,
    name: &'static str,
    phone_prefix: &'static str,
    groups: [DemoGroup; 2],
}

struct DemoStaff {
    name: String,
    position: &'static str,
    work_types: Vec<&'static str>,
    shifts: Vec<Shift>,
}

const TENANTS: [DemoTenant; 2] = [
    DemoTenant {
        code: "etalon",
        name: "УК «Эталон»",
        phone_prefix: "+791220",
        groups: [
            DemoGroup {
                code: "center",
                name: "Центр",
                houses: &[
                    ("ул. Малышева, д. 51", 16, 2),
                    ("ул. 8 Марта, д. 32", 9, 1),
                    ("ул. Вайнера, д. 15", 5, 0),
                    ("ул. Куйбышева, д. 48", 12, 2),
                    ("ул. Белинского, д. 86", 25, 3),
                    ("ул. Радищева, д. 28", 14, 2),
                    ("ул. Шейнкмана, д. 90", 18, 2),
                    ("ул. Хохрякова, д. 74", 10, 1),
                ],
            },
            DemoGroup {
                code: "uralmash",
                name: "Уралмаш",
                houses: &[
                    ("пр. Космонавтов, д. 23", 9, 1),
                    ("ул. Победы, д. 12", 5, 0),
                    ("ул. Кировградская, д. 8", 9, 1),
                    ("ул. Донбасская, д. 21", 12, 2),
                    ("ул. 40-летия Октября, д. 15", 5, 0),
                    ("ул. Ильича, д. 9", 9, 1),
                    ("ул. Бакинских Комиссаров, д. 56", 16, 2),
                ],
            },
        ],
    },
    DemoTenant {
        code: "uyut",
        name: "УК «Уют»",
        phone_prefix: "+791230",
        groups: [
            DemoGroup {
                code: "vtuzgorodok",
                name: "Втузгородок",
                houses: &[
                    ("ул. Мира, д. 32", 9, 1),
                    ("ул. Гагарина, д. 14", 5, 0),
                    ("ул. Комсомольская, д. 6", 12, 2),
                    ("ул. Студенческая, д. 11", 9, 1),
                    ("ул. Кулибина, д. 3", 16, 2),
                    ("ул. Бажова, д. 174", 10, 1),
                    ("ул. Первомайская, д. 77", 5, 0),
                ],
            },
            DemoGroup {
                code: "botanika",
                name: "Ботаника",
                houses: &[
                    ("ул. Белинского, д. 222", 25, 3),
                    ("ул. Фурманова, д. 109", 14, 2),
                    ("ул. Щорса, д. 56", 10, 1),
                    ("ул. Авиационная, д. 61", 16, 2),
                    ("ул. Чайковского, д. 20", 9, 1),
                    ("ул. Крестинского, д. 44", 12, 2),
                    ("ул. Родонитовая, д. 3", 17, 2),
                    ("ул. Большакова, д. 105", 9, 1),
                ],
            },
        ],
    },
];

/// The staff of one demo tenant, in the order the matrix below refers to them.
fn staff(tenant: &str) -> Result<Vec<DemoStaff>, StoreError> {
    let day = Shift::weekdays("08:00", "17:00")?;
    let weekend_day = vec![
        Shift::new(Weekday::Sat, "08:00", "20:00")?,
        Shift::new(Weekday::Sun, "08:00", "20:00")?,
    ];
    let night = Shift::every_day("20:00", "08:00")?;
    let evening = [
        Shift::weekdays("17:00", "20:00")?,
        vec![
            Shift::new(Weekday::Sat, "20:00", "20:00")?,
            Shift::new(Weekday::Sun, "20:00", "08:00")?,
        ],
    ]
    .concat();
    let round_the_clock = Shift::every_day("00:00", "00:00")?;
    let names: [&str; 10] = if tenant == "etalon" {
        [
            "Кузнецов Андрей Петрович",
            "Соколов Игорь Валерьевич",
            "Морозов Денис Сергеевич",
            "Волков Олег Николаевич",
            "Лебедев Артём Юрьевич",
            "Новиков Павел Андреевич",
            "Фёдорова Ирина Викторовна",
            "Зайцев Михаил Олегович",
            "Павлова Елена Александровна",
            "Смирнов Владимир Иванович",
        ]
    } else {
        [
            "Ахметов Ринат Маратович",
            "Белоусов Сергей Викторович",
            "Гусев Антон Дмитриевич",
            "Ершов Николай Петрович",
            "Жуков Роман Алексеевич",
            "Исаев Тимур Рашидович",
            "Климова Ольга Сергеевна",
            "Макаров Евгений Владимирович",
            "Орлова Наталья Игоревна",
            "Романов Алексей Борисович",
        ]
    };
    let everything = vec![
        "plumbing",
        "heating",
        "electrical",
        "lift",
        "intercom",
        "roof",
        "general",
    ];
    let n = |i: usize| names.get(i).map_or_else(String::new, |s| (*s).to_owned());
    let member = |name: String,
                  position: &'static str,
                  work_types: Vec<&'static str>,
                  shifts: Vec<Shift>| DemoStaff {
        name,
        position,
        work_types,
        shifts,
    };
    Ok(vec![
        member(
            n(0),
            "слесарь-сантехник (дневная смена)",
            vec!["plumbing", "heating", "roof", "general"],
            [day.clone(), weekend_day.clone()].concat(),
        ),
        member(
            n(1),
            "слесарь-сантехник (ночная смена)",
            vec!["plumbing", "heating", "roof", "general"],
            night.clone(),
        ),
        member(
            n(2),
            "электрик",
            vec!["electrical", "intercom"],
            day.clone(),
        ),
        member(
            n(3),
            "дежурный электрик",
            vec!["electrical", "intercom"],
            [evening.clone(), night.clone()].concat(),
        ),
        member(
            n(4),
            "диспетчер лифтовой службы",
            vec!["lift"],
            round_the_clock.clone(),
        ),
        member(
            n(5),
            "мастер по домофонам",
            vec!["intercom"],
            Shift::weekdays("09:00", "18:00")?,
        ),
        member(n(6), "мастер участка", everything.clone(), day.clone()),
        member(
            n(7),
            "дежурный инженер",
            everything.clone(),
            [evening, night, weekend_day].concat(),
        ),
        member(n(8), "главный инженер", everything.clone(), day.clone()),
        member(n(9), "директор", everything, day),
    ])
}

/// What [`seed`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seeded {
    /// The demo data was written.
    Created,
    /// It was there already; nothing was changed.
    AlreadyThere,
}

/// Seeds the demo data set now (see the module doc).
pub async fn seed(store: &Store) -> Result<Seeded, StoreError> {
    seed_at(store, Utc::now()).await
}

/// Seeds the demo data set as of `now` (the outage and the debt are valid from then).
pub async fn seed_at(store: &Store, now: DateTime<Utc>) -> Result<Seeded, StoreError> {
    let demo_tenants = TenantScope::Only(vec!["etalon".to_owned(), "uyut".to_owned()]);
    // The debt is written last: with it and the staff there, the seed completed.
    let complete = store
        .debtors(&demo_tenants, Some("etalon"), None, Some(1))
        .await?
        .total
        > 0
        && !store.employees(&demo_tenants, None).await?.is_empty();
    if complete {
        return Ok(Seeded::AlreadyThere);
    }
    store
        .create_city("ekb", "Екатеринбург", "Asia/Yekaterinburg")
        .await?;
    for (code, name) in WORK_TYPES {
        store.create_work_type(code, name).await?;
    }
    store
        .create_supplier(
            "vodokanal",
            "Водоканал-Екатеринбург",
            "ekb",
            Some(&phone("+73432000901")?),
        )
        .await?;
    store
        .create_supplier(
            "ekb-teplo",
            "Екатеринбургская теплосетевая компания",
            "ekb",
            Some(&phone("+73432000902")?),
        )
        .await?;
    for r in REASONS {
        store
            .create_reason(&NewReason {
                tenant: None,
                code: r.code.to_owned(),
                category: r.category,
                title: r.title.to_owned(),
                work_type: r.work_type.to_owned(),
                deadline_minutes: r.minutes,
                operator_text: r.text.to_owned(),
                keywords: r.keywords.to_owned(),
            })
            .await?;
    }
    let mut houses: Vec<(&str, &str, HouseId)> = Vec::new();
    for tenant in &TENANTS {
        store.create_tenant(tenant.code, tenant.name, "ekb").await?;
        for group in &tenant.groups {
            store
                .create_house_group(tenant.code, group.code, group.name)
                .await?;
            let existing = store.house_keys(tenant.code).await?;
            for (address, floors, lifts) in group.houses {
                let id = match existing.get(&super::address::address_key(address)) {
                    Some(&id) => id,
                    None => {
                        store
                            .create_house(tenant.code, Some(group.code), address, *floors, *lifts)
                            .await?
                    }
                };
                houses.push((tenant.code, address, id));
            }
        }
        let hired = store
            .employees(&TenantScope::All, Some(tenant.code))
            .await?;
        let mut people: Vec<EmployeeId> = Vec::new();
        for (i, member) in staff(tenant.code)?.into_iter().enumerate() {
            if let Some(e) = hired.iter().find(|e| e.name == member.name) {
                people.push(e.id);
                continue;
            }
            let id = store
                .create_employee(&NewEmployee {
                    tenant: Some(tenant.code.to_owned()),
                    supplier: None,
                    name: member.name,
                    position: member.position.to_owned(),
                    phones: vec![
                        phone(&format!("{}{:05}", tenant.phone_prefix, 100 + i))?,
                        phone(&format!("{}{:05}", tenant.phone_prefix, 200 + i))?,
                    ],
                    work_types: member.work_types.into_iter().map(str::to_owned).collect(),
                    shifts: member.shifts,
                    absences: Vec::new(),
                })
                .await?;
            people.push(id);
        }
        let who = |i: usize| people.get(i).copied();
        let pick = |ids: &[usize]| ids.iter().filter_map(|&i| who(i)).collect::<Vec<_>>();
        for group in &tenant.groups {
            for (work_type, _) in WORK_TYPES {
                let level1 = match *work_type {
                    "intercom" => pick(&[5, 3]),
                    "electrical" => pick(&[2, 3]),
                    "lift" => pick(&[4]),
                    _ => pick(&[0, 1]),
                };
                store
                    .set_responsibility(&Responsibility {
                        tenant: tenant.code.to_owned(),
                        house_group: group.code.to_owned(),
                        work_type: (*work_type).to_owned(),
                        levels: [level1, pick(&[6, 7]), pick(&[8, 7])],
                        responsible: who(6),
                        manager: who(8),
                        head: who(9),
                    })
                    .await?;
            }
        }
    }
    let dispatcher = "Диспетчер Водоканала";
    let suppliers_staff = store.employees(&TenantScope::All, None).await?;
    if !suppliers_staff
        .iter()
        .any(|e| e.supplier.as_deref() == Some("vodokanal") && e.name == dispatcher)
    {
        store
            .create_employee(&NewEmployee {
                tenant: None,
                supplier: Some("vodokanal".to_owned()),
                name: dispatcher.to_owned(),
                position: "диспетчер РСО".to_owned(),
                phones: vec![phone("+73432000901")?],
                work_types: vec!["plumbing".to_owned()],
                shifts: Shift::every_day("00:00", "00:00")?,
                absences: Vec::new(),
            })
            .await?;
    }

    let house = |address: &str| {
        houses
            .iter()
            .find(|(_, a, _)| *a == address)
            .map(|(_, _, id)| *id)
            .ok_or_else(|| StoreError::not_found("demo house", address))
    };
    let malysheva = house("ул. Малышева, д. 51")?;
    let vosmogo_marta = house("ул. 8 Марта, д. 32")?;
    let mira = house("ул. Мира, д. 32")?;
    store
        .learn_contact(
            &phone("+79120000001")?,
            "etalon",
            malysheva,
            Some("12"),
            now,
        )
        .await?;
    store
        .learn_contact(&phone("+79120000002")?, "uyut", mira, Some("5"), now)
        .await?;
    store
        .learn_contact(
            &phone("+79120000003")?,
            "etalon",
            vosmogo_marta,
            Some("7"),
            now,
        )
        .await?;
    // A few hundred more residents spread over every house.
    for (i, (tenant, _, id)) in houses.iter().enumerate() {
        for apartment in 1..=8i64 {
            let number = phone(&format!("+791255{:03}{:02}", i, apartment))?;
            store
                .learn_contact(
                    &number,
                    tenant,
                    *id,
                    Some(&(apartment * 3).to_string()),
                    now,
                )
                .await?;
        }
    }

    let outage_text = "Уважаемые жители! В связи с аварией на тепловых сетях горячая вода отключена. Восстановление подачи — после завершения ремонта.";
    let outages = store
        .outages(&TenantScope::Only(vec!["etalon".to_owned()]), None)
        .await?;
    if !outages.iter().any(|o| o.text == outage_text) {
        store
            .create_outage(
                &NewOutage {
                    tenant: "etalon".to_owned(),
                    kind: "hot_water".to_owned(),
                    text: outage_text.to_owned(),
                    starts_at: now - Duration::hours(1),
                    ends_at: now + Duration::days(30),
                    house_ids: vec![malysheva],
                },
                now,
            )
            .await?;
    }
    store
        .import_debtors(
            "etalon",
            format!(
                "ул. 8 Марта, д. 32;7;15 432,10;{}\n",
                (now + Duration::days(90)).format("%d.%m.%Y")
            )
            .as_bytes(),
            false,
            super::DebtorImportMode::Upsert,
            now,
        )
        .await?;
    Ok(Seeded::Created)
}

fn phone(text: &str) -> Result<PhoneNumber, StoreError> {
    PhoneNumber::parse(text).map_err(|e| StoreError::invalid("phone", format!("{text}: {e}")))
}

//! The questionnaire on SQLite and PostgreSQL: the shipped example workbook is read,
//! dry-run, applied and re-applied (nothing changes the second time); its CSV
//! sheets import the same; a workbook with twenty kinds of bad cell is refused with
//! each cell named and nothing written; an edited workbook changes exactly what it
//! edits; an absence entered in the console survives a re-import.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use dispatchline::store::Store;
use dispatchline::store::assignment::{Absence, AbsenceKind};
use dispatchline::store::onboarding::{OnboardingReport, SheetKind, Workbook};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/onboarding")
        .join(name)
}

fn uyut() -> Workbook {
    Workbook::open(&example("uyut.xlsx")).unwrap()
}

async fn onboard(store: &Store, book: Workbook, dry_run: bool) -> OnboardingReport {
    store
        .acting_as("test")
        .onboard("uyut", book, dry_run, |_| {})
        .await
        .unwrap()
}

fn counts(report: &OnboardingReport, sheet: SheetKind) -> (usize, usize, usize) {
    let c = report.sheets.get(&sheet).copied().unwrap_or_default();
    (c.created, c.changed, c.unchanged)
}

#[test]
fn the_shipped_workbook_is_its_csv_sheets() {
    let xlsx = uyut();
    let csv = Workbook::from_csv_dir(&example("uyut")).unwrap();
    for kind in SheetKind::ALL {
        let cells = |book: &Workbook| -> Vec<Vec<String>> {
            book.sheets
                .iter()
                .find(|s| SheetKind::by_name(&s.name) == Some(kind))
                .map(|s| s.rows.iter().map(|r| r.cells.clone()).collect())
                .unwrap_or_default()
        };
        assert_eq!(
            cells(&xlsx),
            cells(&csv),
            "{kind}: regenerate with `cargo run --example onboarding_workbook -- examples/onboarding/uyut examples/onboarding/uyut.xlsx`"
        );
    }
}

async fn dry_run_apply_and_apply_again(store: Store) {
    let dry = onboard(&store, uyut(), true).await;
    assert!(dry.faults.is_empty(), "{:#?}", dry.fault_lines());
    assert!(!dry.applied);
    assert_eq!(counts(&dry, SheetKind::Houses), (8, 0, 0));
    assert_eq!(counts(&dry, SheetKind::Employees), (9, 0, 0));
    assert_eq!(counts(&dry, SheetKind::Responsibility), (8, 0, 0));
    assert!(
        store.tenant("uyut").await.unwrap().is_none(),
        "a dry run writes nothing"
    );

    let applied = onboard(&store, uyut(), false).await;
    assert!(applied.applied);
    assert_eq!(applied.sheets, dry.sheets, "the dry run told the truth");
    let tenant = store.tenant("uyut").await.unwrap().unwrap();
    assert_eq!(tenant.name, "УК «Уютный дом»");
    assert_eq!(tenant.city.time_zone.name(), "Asia/Yekaterinburg");
    let log = store
        .admin_log(
            &dispatchline::store::directory::TenantScope::All,
            &Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (log[0].action.as_str(), log[0].principal.as_str()),
        ("import", "test")
    );

    // The executor chain of an emergency in an imported house comes from the matrix.
    let houses = store
        .houses(
            &dispatchline::store::directory::TenantScope::All,
            &dispatchline::store::directory::HouseFilter {
                tenant: Some("uyut".into()),
                q: Some("Малышева 21".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let house = houses.items[0].id;
    let leak = store
        .reasons(Some("uyut"), Some("течь"), None)
        .await
        .unwrap()
        .remove(0);
    let chain = store
        .executor_chain("uyut", house, leak.id, chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        chain
            .executors
            .iter()
            .any(|e| e.employee.name.starts_with("Волков")),
        "the engineer on duty round the clock is on level 3: {chain:?}"
    );
    assert_eq!(
        chain.head.as_ref().map(|p| p.name.as_str()),
        Some("Фёдоров Виктор Павлович")
    );

    let again = onboard(&store, uyut(), false).await;
    assert!(!again.applied, "nothing to write");
    for (sheet, c) in &again.sheets {
        assert_eq!((c.created, c.changed), (0, 0), "{sheet}");
    }
    assert_eq!(counts(&again, SheetKind::Apartments), (0, 0, 304));

    // The same sheets as CSV files change nothing either.
    let csv = store
        .onboard(
            "uyut",
            Workbook::from_csv_dir(&example("uyut")).unwrap(),
            true,
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(csv.changes(), 0, "{:?}", csv.sheets);
}

async fn an_edited_workbook_changes_what_it_edits_and_keeps_console_absences(store: Store) {
    onboard(&store, uyut(), false).await;
    // The console adds a vacation for U-01.
    let people = store
        .employees(
            &dispatchline::store::directory::TenantScope::All,
            Some("uyut"),
        )
        .await
        .unwrap();
    let sidorov = people
        .iter()
        .find(|e| e.name.starts_with("Сидоров"))
        .unwrap();
    let vacation = Absence {
        kind: AbsenceKind::Vacation,
        starts_on: NaiveDate::from_ymd_opt(2027, 3, 1).unwrap(),
        ends_on: NaiveDate::from_ymd_opt(2027, 3, 14).unwrap(),
    };
    store.add_absence(sidorov.id, &vacation).await.unwrap();

    let mut book = Workbook::from_csv_dir(&example("uyut")).unwrap();
    let houses = book.sheets.iter_mut().find(|s| s.name == "Дома").unwrap();
    houses.rows[1].cells[4] = "17".into(); // Малышева 21: 16 floors -> 17
    houses
        .rows
        .push(dispatchline::store::onboarding::workbook::Row {
            number: 99,
            cells: ["ул. Сурикова", "37", "uch2", "", "9", "1", "1", ""]
                .map(String::from)
                .to_vec(),
        });
    let report = onboard(&store, book, false).await;
    assert!(report.faults.is_empty(), "{:?}", report.fault_lines());
    assert_eq!(counts(&report, SheetKind::Houses), (1, 1, 7));
    assert_eq!(counts(&report, SheetKind::Employees), (0, 0, 9));
    let after = store.employee(sidorov.id).await.unwrap().unwrap();
    assert!(
        after.absences.contains(&vacation),
        "the console's vacation stays: {after:?}"
    );
}

/// Twenty kinds of bad cell, each reported at its cell; nothing is written.
async fn every_bad_cell_is_named_and_nothing_is_written(store: Store) {
    let mut book = Workbook::default();
    let sheets: [(&str, &str); 10] = [
        (
            "Компания",
            "Код города;Город;Часовой пояс;Название УК\nekb;Екатеринбург;Asia/Yekaterinburgg;УК «Уют»\n",
        ),
        (
            "Дома",
            "Улица;Дом;Группа домов;Название группы;Этажей;Подъездов;Лифтов;Заметки для оператора\n\
             ул. Малышева;21;uch1;Центр;16;4;4;\n\
             ул. Малышева;21;uch1;Центр;16;4;4;\n\
             ул. Малышева;23;uch1;Центр;девять;3;3;\n\
             ул. Малышева;25;uch1;Центр;300;3;3;\n\
             ул. Малышева;;uch1;Центр;9;3;3;\n\
             ул. Малышева;27;uch 1;Центр;9;3;3;\n",
        ),
        (
            "Квартиры",
            "Улица;Дом;Квартира;Подъезд;Этаж\n\
             ул. Малышева;21;1;1;17\n\
             ул. Ленина;99;1;1;1\n",
        ),
        (
            "Сотрудники",
            "Табельный номер;ФИО;Должность;Телефоны;Виды работ\n\
             U-01;Сидоров;сантехник;+79122000101;plumbing\n\
             U-01;Кузнецов;сантехник;+79122000102;plumbing\n\
             U-03;Морозова;мастер;не телефон;plumbing\n\
             U-04;Волков;инженер;+79122000104;astronomy\n",
        ),
        (
            "Смены",
            "Табельный номер;День;Начало;Конец\n\
             U-01;пн;08:00;25:00\n\
             U-01;понедельникк;08:00;20:00\n\
             U-77;пн;08:00;20:00\n",
        ),
        (
            "Отсутствия",
            "Табельный номер;Вид;С;По\n\
             U-01;прогул;01.02.2027;02.02.2027\n\
             U-01;отпуск;10.02.2027;01.02.2027\n\
             U-01;отпуск;31.02.2027;01.03.2027\n",
        ),
        (
            "Причины",
            "Код;Категория;Название;Вид работ;Название вида работ;Срок, мин;Текст для оператора;Нужен поставщик\n\
             leak;срочная;Течь;plumbing;Сантехника;120;;нет\n\
             leak2;аварийная;Течь;plumbing;Сантехника;0;;нет\n\
             pipe;аварийная;Течь;plumbing;Сантехника;60;;может быть\n\
             ok;аварийная;Течь;plumbing;Сантехника;60;;нет\n",
        ),
        (
            "Ответственность",
            "Группа домов;Вид работ;Уровень 1;Уровень 2;Уровень 3;Ответственный;Руководитель;Директор\n\
             uch9;plumbing;U-01;;;;;\n\
             uch1;plumbing;U-99;;;;;\n",
        ),
        (
            "Поставщики",
            "Код;Название;Телефоны диспетчерской\nvoda;Водоканал;+7343 abc\n",
        ),
        (
            "Контакты",
            "Телефон;Улица;Дом;Квартира\n12345;ул. Малышева;21;1\n",
        ),
    ];
    for (name, csv) in sheets {
        book.add_csv(name, csv.as_bytes()).unwrap();
    }
    let report = onboard(&store, book, false).await;
    let lines = report.fault_lines();
    let expect = [
        "Компания!C2: `Asia/Yekaterinburgg` is not an IANA time zone",
        "Дома!B3: the same house as row 2",
        "Дома!E4: `девять` is not a whole number",
        "Дома!E5: 300 is out of range (0 to 200)",
        "Дома!B6: empty; this column is required",
        "Дома!C7: `uch 1` is not a code",
        "Квартиры!E2: floor 17 of a house of 16 floors",
        "Квартиры!B3: no such house in the «Дома» sheet or the store",
        "Сотрудники!A3: `U-01` is also on row 2",
        "Сотрудники!D4: `не телефон`",
        "Сотрудники!E5: unknown work type `astronomy`",
        "Смены!D2: `25:00` is not a time of day",
        "Смены!B3: `понедельникк` is not a day",
        "Смены!A4: no employee `U-77`",
        "Отсутствия!B2: `прогул` is not отпуск, больничный or другое",
        "Отсутствия!D3: 2027-02-01 is before 2027-02-10",
        "Отсутствия!C4: `31.02.2027` is not a date",
        "Причины!B2: `срочная` is not аварийная, плановая or платная",
        "Причины!F3: `0` is not a number of minutes",
        "Причины!H4: must be да or нет",
        "Ответственность!A2: no house group `uch9`",
        "Ответственность!C3: no employee `U-99`",
        "Поставщики!C2: `+7343 abc`",
        "Контакты!A2: `12345` is not a full phone number",
    ];
    for e in expect {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing «{e}» in\n{}",
            lines.join("\n")
        );
    }
    assert!(expect.len() >= 20);
    assert!(!report.applied);
    assert!(
        store.tenant("uyut").await.unwrap().is_none(),
        "nothing written"
    );
    assert!(
        store
            .admin_log(
                &dispatchline::store::directory::TenantScope::All,
                &Default::default()
            )
            .await
            .unwrap()
            .is_empty()
    );
}

on_both_backends!(
    dry_run_apply_and_apply_again,
    an_edited_workbook_changes_what_it_edits_and_keeps_console_absences,
    every_bad_cell_is_named_and_nothing_is_written,
);

mod never_panics {
    use dispatchline::store::onboarding::workbook::SheetKind;
    use dispatchline::store::onboarding::{Workbook, check_workbook, template};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any cells in any sheet read to rows or faults, never a panic.
        #[test]
        fn any_cells(sheet in 0usize..10, rows in prop::collection::vec(prop::collection::vec("[ -~а-яё:;,.\"]{0,14}", 0..10), 0..12)) {
            let kind = SheetKind::ALL[sheet];
            let header = kind.columns().iter().map(|c| c.header).collect::<Vec<_>>().join(";");
            let mut text = format!("{header}\n");
            for row in rows {
                text.push_str(&row.join(";"));
                text.push('\n');
            }
            let mut book = Workbook::default();
            if book.add_csv(kind.title(), text.as_bytes()).is_ok() {
                let _ = check_workbook(&book);
            }
        }

        /// A damaged XLSX file is an error, never a panic.
        #[test]
        fn damaged_workbooks(flips in prop::collection::vec((0usize..1_000_000, any::<u8>()), 1..20)) {
            let mut bytes = template().unwrap();
            for (at, value) in flips {
                let i = at % bytes.len();
                bytes[i] = value;
            }
            if let Ok(book) = Workbook::from_xlsx(&bytes) {
                let _ = check_workbook(&book);
            }
        }
    }
}

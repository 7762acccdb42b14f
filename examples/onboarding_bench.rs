//! The onboarding benchmark: a questionnaire of 50,000 houses, 500,000 apartments
//! and 2,000 employees (with shifts, a matrix over 500 house groups, suppliers),
//! dry-run and then applied on the store given, with the time of each and the
//! process's peak memory. `scripts/bench-onboarding` runs it on SQLite and
//! PostgreSQL.
//!
//! ```sh
//! onboarding_bench generate WORKBOOK.xlsx [--houses 50000]
//! onboarding_bench import WORKBOOK.xlsx --database URL
//! ```

use std::time::Instant;

use dispatchline::store::Store;
use dispatchline::store::onboarding::workbook::{SheetKind, Workbook, write_xlsx};

const WORK_TYPES: [(&str, &str); 4] = [
    ("plumbing", "Сантехника"),
    ("heating", "Отопление"),
    ("electricity", "Электрика"),
    ("lift", "Лифты"),
];

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| (*c).to_owned()).collect()
}

/// The sheets of a company of `houses` houses (ten apartments each, one house group
/// per hundred houses, one employee per 25 houses).
fn company(houses: usize) -> Vec<(SheetKind, Vec<Vec<String>>)> {
    let groups = houses.div_ceil(100).max(1);
    let employees = (houses / 25).max(8);
    let street = |h: usize| format!("ул. Тестовая-{}", h / 100);
    let number = |h: usize| format!("{}", h % 100 + 1);
    let mut sheets = Vec::new();
    sheets.push((
        SheetKind::Company,
        vec![row(&[
            "ekb",
            "Екатеринбург",
            "Asia/Yekaterinburg",
            "УК «Большая»",
        ])],
    ));
    sheets.push((
        SheetKind::Houses,
        (0..houses)
            .map(|h| {
                let g = format!("g{}", h % groups);
                row(&[&street(h), &number(h), &g, "", "9", "1", "1", ""])
            })
            .collect(),
    ));
    let mut apartments = Vec::with_capacity(houses * 10);
    for h in 0..houses {
        for a in 1..=10usize {
            apartments.push(row(&[
                &street(h),
                &number(h),
                &a.to_string(),
                "1",
                &a.div_ceil(2).to_string(),
            ]));
        }
    }
    sheets.push((SheetKind::Apartments, apartments));
    sheets.push((
        SheetKind::Employees,
        (0..employees)
            .map(|e| {
                row(&[
                    &format!("E{e}"),
                    &format!("Сотрудник {e}"),
                    "слесарь",
                    &format!("+7912{:07}", e),
                    "plumbing, heating, electricity, lift",
                ])
            })
            .collect(),
    ));
    sheets.push((
        SheetKind::Shifts,
        (0..employees)
            .map(|e| {
                let (from, to) = if e % 2 == 0 {
                    ("08:00", "20:00")
                } else {
                    ("20:00", "08:00")
                };
                row(&[&format!("E{e}"), "ежедневно", from, to])
            })
            .collect(),
    ));
    sheets.push((
        SheetKind::Reasons,
        WORK_TYPES
            .iter()
            .map(|(code, name)| {
                row(&[
                    &format!("r-{code}"),
                    "аварийная",
                    name,
                    code,
                    name,
                    "120",
                    "",
                    "нет",
                ])
            })
            .collect(),
    ));
    let mut matrix = Vec::new();
    for g in 0..groups {
        for (w, _) in WORK_TYPES {
            let e = |k: usize| format!("E{}", (g * 3 + k) % employees);
            matrix.push(row(&[
                &format!("g{g}"),
                w,
                &e(0),
                &e(1),
                &e(2),
                &e(0),
                &e(1),
                &e(2),
            ]));
        }
    }
    sheets.push((SheetKind::Responsibility, matrix));
    sheets.push((
        SheetKind::Suppliers,
        vec![row(&["bench-voda", "Водоканал", "+73432000701"])],
    ));
    sheets
}

fn peak_memory_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    match args.first().map(String::as_str) {
        Some("generate") => {
            let path = args
                .get(1)
                .ok_or_else(|| anyhow::anyhow!("generate WORKBOOK.xlsx"))?;
            let houses: usize = flag("--houses").map_or(Ok(50_000), |h| h.parse())?;
            let started = Instant::now();
            let bytes = write_xlsx(&company(houses))?;
            std::fs::write(path, &bytes)?;
            println!(
                "workbook: {houses} houses, {} apartments, {} employees, {:.1} MiB, written in {:.1} s",
                houses * 10,
                (houses / 25).max(8),
                bytes.len() as f64 / 1048576.0,
                started.elapsed().as_secs_f64()
            );
        }
        Some("import") => {
            let path = args
                .get(1)
                .ok_or_else(|| anyhow::anyhow!("import WORKBOOK.xlsx --database URL"))?;
            let url = flag("--database").ok_or_else(|| anyhow::anyhow!("--database URL"))?;
            let store = Store::connect(&url).await?;
            store.migrate().await?;
            let open = || Workbook::open(std::path::Path::new(path));
            let read = Instant::now();
            let rows = open()?.data_rows();
            let read_s = read.elapsed().as_secs_f64();
            // Each run reads the workbook as `dispatchline import` does.
            let dry = Instant::now();
            let report = store.onboard("big", open()?, true, |_| {}).await?;
            anyhow::ensure!(
                report.faults.is_empty(),
                "faults: {:?}",
                report.fault_lines().first()
            );
            let dry_s = dry.elapsed().as_secs_f64();
            let apply = Instant::now();
            let report = store.onboard("big", open()?, false, |_| {}).await?;
            anyhow::ensure!(report.applied, "not applied");
            let apply_s = apply.elapsed().as_secs_f64();
            let again = Instant::now();
            let report = store.onboard("big", open()?, false, |_| {}).await?;
            anyhow::ensure!(
                report.changes() == 0,
                "a re-import changed {}",
                report.changes()
            );
            let again_s = again.elapsed().as_secs_f64();
            println!(
                "{}: {rows} rows; reading the XLSX alone {read_s:.1} s; dry run {dry_s:.1} s; apply {apply_s:.1} s; re-import (no change) {again_s:.1} s; peak memory {:.0} MiB",
                store.dialect(),
                peak_memory_mib()
            );
            store.close().await;
        }
        _ => anyhow::bail!(
            "usage: onboarding_bench generate WORKBOOK.xlsx [--houses N] | import WORKBOOK.xlsx --database URL"
        ),
    }
    Ok(())
}

//! Builds an onboarding workbook (XLSX) from a folder of CSV sheets, the way the
//! shipped example `examples/onboarding/uyut.xlsx` is made from
//! `examples/onboarding/uyut/`:
//!
//! ```sh
//! cargo run --example onboarding_workbook -- examples/onboarding/uyut examples/onboarding/uyut.xlsx
//! ```
//!
//! Each CSV file is one sheet, named by its file (`Дома.csv`), with the template's
//! header row first.

use std::path::PathBuf;

use dispatchline::store::onboarding::workbook::{SheetKind, Workbook, write_xlsx};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), Some(out)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: onboarding_workbook CSV_FOLDER OUT.xlsx");
    };
    let book = Workbook::from_csv_dir(&PathBuf::from(dir))?;
    let mut sheets = Vec::new();
    for kind in SheetKind::ALL {
        let Some(sheet) = book
            .sheets
            .iter()
            .find(|s| SheetKind::by_name(&s.name) == Some(kind))
        else {
            continue;
        };
        let rows = sheet.rows.iter().skip(1).map(|r| r.cells.clone()).collect();
        sheets.push((kind, rows));
    }
    std::fs::write(&out, write_xlsx(&sheets)?)?;
    println!(
        "{} sheets written to {}",
        sheets.len(),
        PathBuf::from(out).display()
    );
    Ok(())
}

//! Reading the questionnaire's sheets into typed rows. Pure: every bad cell becomes
//! a [`CellFault`] naming it (`Дома!C12: ...`), and the rows that read well are
//! kept, so one pass reports every fault of the file. References between sheets and
//! to the store are checked later, by the plan.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use serde::Serialize;

use super::cells::{code, count, date, hhmm, list, phones, resident_phone, text, weekdays, yes_no};
use super::workbook::{Row, SheetKind, Workbook, column_letters, fold};
use crate::phone::PhoneNumber;
use crate::store::address::{address_key, apartment_key};
use crate::store::assignment::{AbsenceKind, Shift};
use crate::store::tickets::Category;

/// A bad cell: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CellFault {
    /// The sheet as named in the file.
    pub sheet: String,
    /// The cell (`C12`), or the row (`12`) or sheet (`A1`) when no one cell is at
    /// fault.
    pub cell: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for CellFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}!{}: {}", self.sheet, self.cell, self.message)
    }
}

/// Where a field of a row is, for faults found later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct At {
    pub(crate) sheet: SheetKind,
    pub(crate) row: u32,
}

pub(crate) struct CompanyRow {
    pub(crate) at: At,
    pub(crate) city_code: String,
    pub(crate) city_name: String,
    pub(crate) time_zone: String,
    pub(crate) name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct HouseRow {
    pub(crate) at: At,
    pub(crate) address: String,
    pub(crate) key: String,
    pub(crate) group: String,
    pub(crate) group_name: Option<String>,
    pub(crate) floors: Option<i64>,
    pub(crate) entrances: Option<i64>,
    pub(crate) lifts: Option<i64>,
    pub(crate) notes: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ApartmentRow {
    pub(crate) at: At,
    pub(crate) key: String,
    pub(crate) number: String,
    pub(crate) entrance: Option<i64>,
    pub(crate) floor: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct EmployeeRow {
    pub(crate) at: At,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) position: String,
    pub(crate) phones: Vec<PhoneNumber>,
    pub(crate) work_types: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct ShiftRow {
    pub(crate) at: At,
    pub(crate) code: String,
    pub(crate) shifts: Vec<Shift>,
}

#[derive(Debug, Clone)]
pub(crate) struct AbsenceRow {
    pub(crate) at: At,
    pub(crate) code: String,
    pub(crate) kind: AbsenceKind,
    pub(crate) starts_on: NaiveDate,
    pub(crate) ends_on: NaiveDate,
}

#[derive(Debug, Clone)]
pub(crate) struct ReasonRow {
    pub(crate) at: At,
    pub(crate) code: String,
    pub(crate) category: Category,
    pub(crate) title: String,
    pub(crate) work_type: String,
    pub(crate) work_type_name: Option<String>,
    pub(crate) deadline_minutes: i64,
    pub(crate) operator_text: String,
    pub(crate) needs_supplier: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct ResponsibilityRow {
    pub(crate) at: At,
    pub(crate) group: String,
    pub(crate) work_type: String,
    pub(crate) levels: [Vec<String>; 3],
    pub(crate) responsible: Option<String>,
    pub(crate) manager: Option<String>,
    pub(crate) head: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct SupplierRow {
    pub(crate) at: At,
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) phones: Vec<PhoneNumber>,
}

#[derive(Debug, Clone)]
pub(crate) struct ContactRow {
    pub(crate) at: At,
    pub(crate) phone: PhoneNumber,
    pub(crate) key: String,
    pub(crate) apartment: String,
}

/// The questionnaire, read.
#[derive(Default)]
pub(crate) struct Questionnaire {
    pub(crate) company: Option<CompanyRow>,
    pub(crate) houses: Vec<HouseRow>,
    pub(crate) apartments: Vec<ApartmentRow>,
    pub(crate) employees: Vec<EmployeeRow>,
    pub(crate) shifts: Vec<ShiftRow>,
    pub(crate) absences: Vec<AbsenceRow>,
    pub(crate) reasons: Vec<ReasonRow>,
    pub(crate) responsibility: Vec<ResponsibilityRow>,
    pub(crate) suppliers: Vec<SupplierRow>,
    pub(crate) contacts: Vec<ContactRow>,
    pub(crate) faults: Vec<CellFault>,
    /// Sheet names as written, and the column of each header.
    names: HashMap<SheetKind, String>,
    columns: HashMap<(SheetKind, &'static str), usize>,
}

impl Questionnaire {
    /// A fault at `at`'s cell in the column headed `header`.
    pub(crate) fn fault(&mut self, at: At, header: &'static str, message: impl Into<String>) {
        let cell = self.cell(at, header);
        let sheet = self.sheet_name(at.sheet);
        self.faults.push(CellFault {
            sheet,
            cell,
            message: message.into(),
        });
    }

    fn cell(&self, at: At, header: &'static str) -> String {
        match self.columns.get(&(at.sheet, header)) {
            Some(&c) => format!("{}{}", column_letters(c), at.row),
            None => at.row.to_string(),
        }
    }

    fn sheet_name(&self, kind: SheetKind) -> String {
        self.names
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| kind.title().to_owned())
    }

    /// Whether some cell of this sheet is at fault.
    pub(crate) fn has_faults_in(&self, kind: SheetKind) -> bool {
        let name = self.sheet_name(kind);
        self.faults.iter().any(|f| f.sheet == name)
    }

    /// Sorts the faults by sheet (template order), row and column.
    pub(crate) fn sort_faults(&mut self) {
        let order: HashMap<String, usize> = SheetKind::ALL
            .iter()
            .map(|k| (self.sheet_name(*k), *k as usize))
            .collect();
        let key = |f: &CellFault| {
            let digits = f.cell.trim_start_matches(|c: char| c.is_ascii_alphabetic());
            let letters = &f.cell[..f.cell.len() - digits.len()];
            (
                order.get(&f.sheet).copied().unwrap_or(usize::MAX),
                digits.parse::<u32>().unwrap_or(0),
                letters.len(),
                letters.to_owned(),
            )
        };
        self.faults.sort_by_key(key);
        self.faults.dedup();
    }
}

/// One data row with its fields by header.
struct Fields<'a> {
    kind: SheetKind,
    row: &'a Row,
    columns: &'a HashMap<&'static str, usize>,
}

impl Fields<'_> {
    fn at(&self) -> At {
        At {
            sheet: self.kind,
            row: self.row.number,
        }
    }

    fn get(&self, header: &'static str) -> &str {
        self.columns
            .get(header)
            .and_then(|&c| self.row.cells.get(c))
            .map_or("", |s| s.trim())
    }

    fn opt(&self, header: &'static str) -> Option<String> {
        Some(self.get(header).to_owned()).filter(|s| !s.is_empty())
    }
}

/// The longest text a cell may hold (the operator notes are the long ones).
const MAX_TEXT: usize = 2000;

/// Reads a workbook into a questionnaire.
pub(crate) fn read(book: &Workbook) -> Questionnaire {
    let mut q = Questionnaire::default();
    let mut seen = HashSet::new();
    for sheet in &book.sheets {
        let Some(kind) = SheetKind::by_name(&sheet.name) else {
            let known: Vec<&str> = SheetKind::ALL.iter().map(|k| k.title()).collect();
            q.faults.push(CellFault {
                sheet: sheet.name.clone(),
                cell: "A1".into(),
                message: format!("unknown sheet; the questionnaire has {}", known.join(", ")),
            });
            continue;
        };
        if !seen.insert(kind) {
            q.faults.push(CellFault {
                sheet: sheet.name.clone(),
                cell: "A1".into(),
                message: format!("a second {kind} sheet"),
            });
            continue;
        }
        q.names.insert(kind, sheet.name.clone());
        let Some((header, data)) = sheet.rows.split_first() else {
            continue;
        };
        let columns = match header_columns(kind, header) {
            Ok(c) => c,
            Err(faults) => {
                q.faults
                    .extend(faults.into_iter().map(|(cell, message)| CellFault {
                        sheet: sheet.name.clone(),
                        cell,
                        message,
                    }));
                continue;
            }
        };
        for (&h, &c) in &columns {
            q.columns.insert((kind, h), c);
        }
        let example = kind.example();
        for row in data {
            // The template's example row, left as it is, is not data.
            let values: Vec<String> = kind
                .columns()
                .iter()
                .map(|c| {
                    columns
                        .get(c.header)
                        .and_then(|&i| row.cells.get(i))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect();
            if values == example {
                continue;
            }
            let fields = Fields {
                kind,
                row,
                columns: &columns,
            };
            let mut missing = false;
            for column in kind.columns().iter().filter(|c| c.required) {
                if fields.get(column.header).is_empty() {
                    q.fault(fields.at(), column.header, "empty; this column is required");
                    missing = true;
                }
            }
            if missing {
                continue;
            }
            read_row(&mut q, &fields);
        }
    }
    q
}

/// The column of each header, or the faults of a header row.
fn header_columns(
    kind: SheetKind,
    header: &Row,
) -> Result<HashMap<&'static str, usize>, Vec<(String, String)>> {
    let mut columns = HashMap::new();
    let mut faults = Vec::new();
    for (i, text) in header.cells.iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let name = fold(text);
        let column = kind
            .columns()
            .iter()
            .find(|c| fold(c.header) == name || c.aliases.iter().any(|a| fold(a) == name));
        match column {
            Some(c) if columns.contains_key(c.header) => faults.push((
                format!("{}{}", column_letters(i), header.number),
                format!("column «{}» is given twice", c.header),
            )),
            Some(c) => {
                columns.insert(c.header, i);
            }
            None => faults.push((
                format!("{}{}", column_letters(i), header.number),
                format!(
                    "unknown column «{}»; this sheet has {}",
                    text.trim(),
                    kind.columns()
                        .iter()
                        .map(|c| format!("«{}»", c.header))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }
    for c in kind.columns().iter().filter(|c| c.required) {
        if !columns.contains_key(c.header) {
            faults.push((
                format!("A{}", header.number),
                format!("the header row has no column «{}»", c.header),
            ));
        }
    }
    if faults.is_empty() {
        Ok(columns)
    } else {
        Err(faults)
    }
}

fn read_row(q: &mut Questionnaire, f: &Fields<'_>) {
    let at = f.at();
    match f.kind {
        SheetKind::Company => {
            if q.company.is_some() {
                q.fault(at, "Код города", "the company sheet has one row");
                return;
            }
            let tz = f.get("Часовой пояс");
            if tz.parse::<chrono_tz::Tz>().is_err() {
                q.fault(
                    at,
                    "Часовой пояс",
                    format!(
                        "`{tz}` is not an IANA time zone (Asia/Yekaterinburg, Europe/Moscow, ...)"
                    ),
                );
                return;
            }
            let Some(city_code) = code(q, at, "Код города", f.get("Код города"))
            else {
                return;
            };
            let (Some(city_name), Some(name)) = (
                text(q, at, "Город", f.get("Город"), 200),
                text(q, at, "Название УК", f.get("Название УК"), 200),
            ) else {
                return;
            };
            q.company = Some(CompanyRow {
                at,
                city_code,
                city_name,
                time_zone: tz.to_owned(),
                name,
            });
        }
        SheetKind::Houses => {
            let Some((address, key)) = house_address(q, at, f) else {
                return;
            };
            let Some(group) = code(q, at, "Группа домов", f.get("Группа домов"))
            else {
                return;
            };
            let floors = count(q, at, "Этажей", f.get("Этажей"), 0, 200);
            let entrances = count(q, at, "Подъездов", f.get("Подъездов"), 0, 100);
            let lifts = count(q, at, "Лифтов", f.get("Лифтов"), 0, 100);
            let notes = f.opt("Заметки для оператора");
            let group_name = f.opt("Название группы");
            if notes.as_ref().is_some_and(|n| n.chars().count() > MAX_TEXT) {
                q.fault(
                    at,
                    "Заметки для оператора",
                    format!("longer than {MAX_TEXT} characters"),
                );
                return;
            }
            if group_name.as_ref().is_some_and(|n| n.chars().count() > 200) {
                q.fault(at, "Название группы", "longer than 200 characters");
                return;
            }
            let (Ok(floors), Ok(entrances), Ok(lifts)) = (floors, entrances, lifts) else {
                return;
            };
            q.houses.push(HouseRow {
                at,
                address,
                key,
                group,
                group_name,
                floors,
                entrances,
                lifts,
                notes,
            });
        }
        SheetKind::Apartments => {
            let Some((_, key)) = house_address(q, at, f) else {
                return;
            };
            let number = match apartment_key(f.get("Квартира")) {
                Ok(n) if !n.is_empty() => n,
                Ok(_) => {
                    q.fault(at, "Квартира", "empty apartment number");
                    return;
                }
                Err(e) => {
                    q.fault(at, "Квартира", e);
                    return;
                }
            };
            let entrance = count(q, at, "Подъезд", f.get("Подъезд"), 1, 100);
            let floor = count(q, at, "Этаж", f.get("Этаж"), -5, 200);
            let (Ok(entrance), Ok(floor)) = (entrance, floor) else {
                return;
            };
            q.apartments.push(ApartmentRow {
                at,
                key,
                number,
                entrance,
                floor,
            });
        }
        SheetKind::Employees => {
            let Some(code_) = code(q, at, "Табельный номер", f.get("Табельный номер"))
            else {
                return;
            };
            let Some(name) = text(q, at, "ФИО", f.get("ФИО"), 200) else {
                return;
            };
            let position = f.get("Должность").to_owned();
            if position.chars().count() > 200 {
                q.fault(at, "Должность", "longer than 200 characters");
                return;
            }
            let Some(phones) = phones(q, at, "Телефоны", f.get("Телефоны")) else {
                return;
            };
            let work_types = list(f.get("Виды работ"));
            q.employees.push(EmployeeRow {
                at,
                code: code_,
                name,
                position,
                phones,
                work_types,
            });
        }
        SheetKind::Shifts => {
            let Some(code_) = code(q, at, "Табельный номер", f.get("Табельный номер"))
            else {
                return;
            };
            let Some(days) = weekdays(f.get("День")) else {
                q.fault(
                    at,
                    "День",
                    format!(
                        "`{}` is not a day (пн, вт, ср, чт, пт, сб, вс, 1-7, будни, выходные, ежедневно)",
                        f.get("День")
                    ),
                );
                return;
            };
            let mut shifts = Vec::new();
            for day in days {
                match Shift::on_weekday(day, f.get("Начало"), f.get("Конец")) {
                    Ok(s) => shifts.push(s),
                    Err(_) => {
                        let header = if hhmm(f.get("Начало")) {
                            "Конец"
                        } else {
                            "Начало"
                        };
                        q.fault(
                            at,
                            header,
                            format!("`{}` is not a time of day (HH:MM)", f.get(header)),
                        );
                        return;
                    }
                }
            }
            q.shifts.push(ShiftRow {
                at,
                code: code_,
                shifts,
            });
        }
        SheetKind::Absences => {
            let Some(code_) = code(q, at, "Табельный номер", f.get("Табельный номер"))
            else {
                return;
            };
            let kind = match fold(f.get("Вид")).as_str() {
                "отпуск" | "vacation" => AbsenceKind::Vacation,
                "больничный" | "sick leave" | "sick_leave" => AbsenceKind::SickLeave,
                "другое" | "прочее" | "other" => AbsenceKind::Other,
                other => {
                    q.fault(
                        at,
                        "Вид",
                        format!("`{other}` is not отпуск, больничный or другое"),
                    );
                    return;
                }
            };
            let starts = date(q, at, "С", f.get("С"));
            let ends = date(q, at, "По", f.get("По"));
            let (Some(starts_on), Some(ends_on)) = (starts, ends) else {
                return;
            };
            if ends_on < starts_on {
                q.fault(at, "По", format!("{ends_on} is before {starts_on}"));
                return;
            }
            q.absences.push(AbsenceRow {
                at,
                code: code_,
                kind,
                starts_on,
                ends_on,
            });
        }
        SheetKind::Reasons => {
            let Some(code_) = code(q, at, "Код", f.get("Код")) else {
                return;
            };
            let category = match fold(f.get("Категория")).as_str() {
                "аварийная" | "авария" | "emergency" => Category::Emergency,
                "плановая" | "planned" => Category::Planned,
                "платная" | "paid" => Category::Paid,
                other => {
                    q.fault(
                        at,
                        "Категория",
                        format!("`{other}` is not аварийная, плановая or платная"),
                    );
                    return;
                }
            };
            let Some(title) = text(q, at, "Название", f.get("Название"), 200)
            else {
                return;
            };
            let Some(work_type) = code(q, at, "Вид работ", f.get("Вид работ"))
            else {
                return;
            };
            let deadline = match f.get("Срок, мин").parse::<i64>() {
                Ok(n) if n > 0 && n <= 366 * 24 * 60 => n,
                _ => {
                    q.fault(
                        at,
                        "Срок, мин",
                        format!(
                            "`{}` is not a number of minutes (1 to a year)",
                            f.get("Срок, мин")
                        ),
                    );
                    return;
                }
            };
            let operator_text = f.get("Текст для оператора").to_owned();
            if operator_text.chars().count() > 4000 {
                q.fault(at, "Текст для оператора", "longer than 4000 characters");
                return;
            }
            let Some(needs_supplier) = yes_no(f.get("Нужен поставщик")) else {
                q.fault(at, "Нужен поставщик", "must be да or нет");
                return;
            };
            q.reasons.push(ReasonRow {
                at,
                code: code_,
                category,
                title,
                work_type,
                work_type_name: f.opt("Название вида работ"),
                deadline_minutes: deadline,
                operator_text,
                needs_supplier,
            });
        }
        SheetKind::Responsibility => {
            let (Some(group), Some(work_type)) = (
                code(q, at, "Группа домов", f.get("Группа домов")),
                code(q, at, "Вид работ", f.get("Вид работ")),
            ) else {
                return;
            };
            let levels = [
                list(f.get("Уровень 1")),
                list(f.get("Уровень 2")),
                list(f.get("Уровень 3")),
            ];
            q.responsibility.push(ResponsibilityRow {
                at,
                group,
                work_type,
                levels,
                responsible: f.opt("Ответственный"),
                manager: f.opt("Руководитель"),
                head: f.opt("Директор"),
            });
        }
        SheetKind::Suppliers => {
            let Some(code_) = code(q, at, "Код", f.get("Код")) else {
                return;
            };
            let Some(name) = text(q, at, "Название", f.get("Название"), 200) else {
                return;
            };
            let Some(phones) = phones(
                q,
                at,
                "Телефоны диспетчерской",
                f.get("Телефоны диспетчерской"),
            ) else {
                return;
            };
            q.suppliers.push(SupplierRow {
                at,
                code: code_,
                name,
                phones,
            });
        }
        SheetKind::Contacts => {
            let phone = match resident_phone(f.get("Телефон")) {
                Ok(p) => p,
                Err(e) => {
                    q.fault(at, "Телефон", e);
                    return;
                }
            };
            let Some((_, key)) = house_address(q, at, f) else {
                return;
            };
            let apartment = match apartment_key(f.get("Квартира")) {
                Ok(a) => a,
                Err(e) => {
                    q.fault(at, "Квартира", e);
                    return;
                }
            };
            q.contacts.push(ContactRow {
                at,
                phone,
                key,
                apartment,
            });
        }
    }
}

/// The house a row's `Улица` and `Дом` name: its address and comparison key.
fn house_address(q: &mut Questionnaire, at: At, f: &Fields<'_>) -> Option<(String, String)> {
    let street = f.get("Улица");
    let house = f.get("Дом");
    let address = format!("{street}, {house}");
    if address.chars().count() > 300 {
        q.fault(at, "Улица", "the address is longer than 300 characters");
        return None;
    }
    if !house.chars().any(|c| c.is_ascii_digit()) {
        q.fault(at, "Дом", format!("`{house}` has no house number"));
        return None;
    }
    let key = address_key(&address);
    if key.is_empty() || !key.chars().any(char::is_alphabetic) {
        q.fault(at, "Улица", format!("`{street}` is not a street"));
        return None;
    }
    Some((address, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(sheets: &[(&str, &str)]) -> Workbook {
        let mut b = Workbook::default();
        for (name, csv) in sheets {
            b.add_csv(name, csv.as_bytes()).unwrap();
        }
        b
    }

    #[test]
    fn bad_cells_are_named_by_sheet_column_and_row() {
        let q = read(&book(&[
            (
                "Дома",
                "Улица;Дом;Группа домов;Этажей\nЛенина;5;g1;9\nЛенина;7;g1;девять\n;9;g1;5\n",
            ),
            (
                "Смены",
                "Табельный номер;День;Начало;Конец\nT1;пн;08:00;25:00\nT1;четвергг;08:00;20:00\n",
            ),
        ]));
        let faults: Vec<String> = q.faults.iter().map(ToString::to_string).collect();
        assert_eq!(q.houses.len(), 1);
        assert!(
            faults.contains(&"Дома!D3: `девять` is not a whole number".to_owned()),
            "{faults:#?}"
        );
        assert!(
            faults.contains(&"Дома!A4: empty; this column is required".to_owned()),
            "{faults:#?}"
        );
        assert!(
            faults.iter().any(|f| f.starts_with("Смены!D2: `25:00`")),
            "{faults:#?}"
        );
        assert!(
            faults.iter().any(|f| f.starts_with("Смены!B3: `четвергг`")),
            "{faults:#?}"
        );
    }

    #[test]
    fn unknown_sheets_and_columns_are_faults_and_the_example_row_is_skipped() {
        let example = SheetKind::Houses.example().join(";");
        let q = read(&book(&[
            ("Лист1", "a\n"),
            ("Дома", &format!("Улица;Дом;Группа домов;Цвет\n{example}\n")),
            (
                "Квартиры",
                &format!(
                    "Улица;Дом;Квартира\n{}\n",
                    ["ул. Ленина", "5к1", "12"].join(";")
                ),
            ),
        ]));
        let faults: Vec<String> = q.faults.iter().map(ToString::to_string).collect();
        assert!(
            faults[0].starts_with("Лист1!A1: unknown sheet"),
            "{faults:#?}"
        );
        assert!(
            faults
                .iter()
                .any(|f| f.starts_with("Дома!D1: unknown column «Цвет»")),
            "{faults:#?}"
        );
        assert!(q.houses.is_empty());
        assert_eq!(
            q.apartments.len(),
            1,
            "not the example row: it lacks the entrance and floor"
        );
    }

    #[test]
    fn days_expand_and_phones_split() {
        assert_eq!(weekdays("будни"), Some(vec![1, 2, 3, 4, 5]));
        assert_eq!(weekdays("Пн."), Some(vec![1]));
        let q = read(&book(&[(
            "Сотрудники",
            "Табельный номер;ФИО;Телефоны;Виды работ\nT1;Иванов;89120000001, +7 912 000-00-02;plumbing, heating\n",
        )]));
        assert!(q.faults.is_empty(), "{:?}", q.faults);
        assert_eq!(q.employees[0].phones.len(), 2);
        assert_eq!(q.employees[0].work_types, vec!["plumbing", "heating"]);
    }
}

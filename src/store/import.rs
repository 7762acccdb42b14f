//! The CSV files tenants send: contacts (phone, address, apartment) and debtors
//! (address, apartment, amount, valid until).
//!
//! Files are UTF-8, with or without a byte-order mark, separated by `;` (what a
//! Russian Excel writes) or `,` (decided by the first lines: `;` when most of them
//! have one outside quotes), with or without a header row (a first row with no digit
//! that names columns: `Телефон`, `Адрес`, `Кв`, `Сумма`, ...). A broken quote makes
//! the rest of the file unreadable; such a file imports nothing, skipping or not. Amounts
//! are written as people write them: `1 234,56`, `1234.56`, `1 234 руб.`. Dates are
//! `31.12.2026` or `2026-12-31`. Parsing is pure; each bad row is reported with its
//! line number and the field at fault, and the store decides (with the caller's
//! `skip_bad_rows`) whether anything is imported.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use chrono::NaiveDate;
use serde::Serialize;

use super::ids::HouseId;

use super::StoreError;
use super::address::{address_key, apartment_key};
use crate::phone::PhoneNumber;

/// A row that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    /// 1-based line number in the file.
    pub line: u64,
    /// The column at fault (`phone`, `address`, `amount`, ...; `row` for the shape).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// The outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    /// Rows imported (new or updated).
    pub imported: usize,
    /// Bad rows skipped (only with `skip_bad_rows`).
    pub skipped: usize,
    /// Entries the file did not list that were deleted (a debtors import in replace
    /// mode).
    pub deleted: u64,
    /// Every bad row.
    pub bad_rows: Vec<BadRow>,
    /// Set when the file could not be read past this line (a broken quote): nothing
    /// is imported then, even with `skip_bad_rows`, since the rows after it are lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable_from: Option<u64>,
}

impl ImportReport {
    pub(crate) fn bad(&mut self, line: u64, field: &str, message: impl Into<String>) {
        self.bad_rows.push(BadRow {
            line,
            field: field.to_owned(),
            message: message.into(),
        });
    }

    /// Decides whether `good` rows may be imported: not when there are bad rows and
    /// skipping was not asked for, nor when there is nothing at all.
    pub(crate) fn finish(&mut self, good: usize, skip_bad_rows: bool) -> Result<(), StoreError> {
        // Rows failing the address match are found after the parse: report in file order.
        self.bad_rows.sort_by_key(|b| b.line);
        if !self.bad_rows.is_empty() && (!skip_bad_rows || self.unreadable_from.is_some()) {
            return Err(StoreError::Import(self.clone()));
        }
        if good == 0 && self.bad_rows.is_empty() {
            return Err(StoreError::invalid("file", "the file has no rows"));
        }
        self.imported = good;
        self.skipped = self.bad_rows.len();
        Ok(())
    }
}

/// A parsed contacts row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContactRow {
    pub(crate) line: u64,
    pub(crate) phone: PhoneNumber,
    pub(crate) address_key: String,
    pub(crate) apartment: String,
}

/// A parsed debtors row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DebtorRow {
    pub(crate) line: u64,
    pub(crate) address_key: String,
    pub(crate) apartment: String,
    pub(crate) amount_kopecks: i64,
    pub(crate) valid_until: NaiveDate,
}

/// A parsed row that names a house by address.
pub(crate) trait AddressedRow {
    /// Its line in the file.
    fn line(&self) -> u64;
    /// Its address, as [`address_key`].
    fn address_key(&self) -> &str;
}

impl AddressedRow for ContactRow {
    fn line(&self) -> u64 {
        self.line
    }
    fn address_key(&self) -> &str {
        &self.address_key
    }
}

impl AddressedRow for DebtorRow {
    fn line(&self) -> u64 {
        self.line
    }
    fn address_key(&self) -> &str {
        &self.address_key
    }
}

/// Matches rows to the tenant's houses (`houses` by address key). A row naming no
/// house of the tenant is a bad row. Of rows with the same `key`, the last one wins
/// (one multi-row statement may not write the same row twice).
pub(crate) fn match_houses<R: AddressedRow, K: Eq + Hash>(
    rows: Vec<R>,
    houses: &HashMap<String, HouseId>,
    report: &mut ImportReport,
    key: impl Fn(HouseId, &R) -> K,
) -> Vec<(HouseId, R)> {
    let mut matched = Vec::with_capacity(rows.len());
    for row in rows {
        match houses.get(row.address_key()) {
            Some(&house) => matched.push((house, row)),
            None => report.bad(row.line(), "address", "no such house of this tenant"),
        }
    }
    let mut seen = HashSet::new();
    let mut unique: Vec<(HouseId, R)> = matched
        .into_iter()
        .rev()
        .filter(|(house, row)| seen.insert(key(*house, row)))
        .collect();
    unique.reverse();
    unique
}

/// How many leading lines decide the separator.
const SNIFF_LINES: usize = 20;

/// The separator of a file: `;` when most of its first non-empty lines have one
/// outside quotes (a Russian Excel export, whose addresses carry commas), else `,`.
fn separator(bytes: &[u8]) -> u8 {
    let mut lines = 0usize;
    let mut with_semicolon = 0usize;
    for line in bytes
        .split(|&b| b == b'\n')
        .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
        .take(SNIFF_LINES)
    {
        lines += 1;
        let mut quoted = false;
        for &b in line {
            match b {
                b'"' => quoted = !quoted,
                b';' if !quoted => {
                    with_semicolon += 1;
                    break;
                }
                _ => {}
            }
        }
    }
    if with_semicolon > 0 && with_semicolon * 2 >= lines {
        b';'
    } else {
        b','
    }
}

/// Words a header row's columns are named with (lower case, `ё` as `е`).
const HEADER_WORDS: &[&str] = &[
    "телефон",
    "тел",
    "phone",
    "номер",
    "адрес",
    "address",
    "улица",
    "дом",
    "кв",
    "квартира",
    "apartment",
    "flat",
    "помещение",
    "сумма",
    "amount",
    "долг",
    "задолженность",
    "действует",
    "действительно",
    "срок",
    "дата",
    "valid",
    "until",
    "date",
];

/// Whether the first row names columns: no digit anywhere, and some field is made of
/// header words. A digit-free row that names no column is data (and so reported).
fn is_header(fields: &[String]) -> bool {
    if fields
        .iter()
        .any(|f| f.contains(|c: char| c.is_ascii_digit()))
    {
        return false;
    }
    fields.iter().any(|f| {
        let folded = f.to_lowercase().replace('ё', "е");
        folded
            .split(|c: char| !c.is_alphabetic())
            .any(|word| HEADER_WORDS.contains(&word))
    })
}

/// The data rows of a file as (line, fields), with undecodable rows reported.
fn records(bytes: &[u8], report: &mut ImportReport) -> Vec<(u64, Vec<String>)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(bytes))
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes);
    // Line numbers are counted here from byte offsets: the reader does not count
    // the blank lines it skips.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter_map(|(i, &b)| (b == b'\n').then_some(i))
        .collect();
    let line_at = |position: Option<&csv::Position>| -> u64 {
        let mut offset = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        // A record's position may be where the blank lines before it start.
        while matches!(bytes.get(offset), Some(b'\r' | b'\n')) {
            offset += 1;
        }
        newlines.partition_point(|&nl| nl < offset) as u64 + 1
    };
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::new();
    let mut first = true;
    loop {
        let start = reader.position().clone();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = line_at(e.position().or(Some(&start)));
                report.bad(
                    line,
                    "row",
                    format!("not CSV: {e}; the rest of the file was not read"),
                );
                report.unreadable_from = Some(line);
                break;
            }
        }
        let line = line_at(record.position().or(Some(&start)));
        // No field of these formats spans lines: one that does is an unclosed quote,
        // which swallowed every line after it.
        if record.iter().any(|f| f.contains(&b'\n')) {
            report.bad(
                line,
                "row",
                "an unclosed quote runs to the end of the file; the rest of the file was not read",
            );
            report.unreadable_from = Some(line);
            break;
        }
        let fields: Result<Vec<String>, _> = record
            .iter()
            .map(|f| std::str::from_utf8(f).map(str::to_owned))
            .collect();
        let Ok(fields) = fields else {
            report.bad(line, "row", "not UTF-8 text");
            first = false;
            continue;
        };
        if fields.iter().all(String::is_empty) {
            continue;
        }
        let header = first && is_header(&fields);
        first = false;
        if !header {
            rows.push((line, fields));
        }
    }
    rows
}

/// A resident's phone as tenants write it; ten digits are taken as a Russian number
/// without the trunk prefix.
fn resident_phone(raw: &str) -> Result<PhoneNumber, String> {
    let phone = PhoneNumber::parse(raw).map_err(|e| e.to_string())?;
    if phone.is_e164() {
        return Ok(phone);
    }
    if phone.as_str().len() == 10 {
        return PhoneNumber::parse(&format!("+7{}", phone.as_str())).map_err(|e| e.to_string());
    }
    Err(format!("`{raw}` is not a full phone number"))
}

/// Reads a contacts CSV exactly as an import would and reports its rows and faults,
/// without touching the store.
pub fn check_contacts(bytes: &[u8]) -> ImportReport {
    parse_contacts(bytes).1
}

/// Reads a debtors CSV exactly as an import would and reports its rows and faults,
/// without touching the store.
pub fn check_debtors(bytes: &[u8]) -> ImportReport {
    parse_debtors(bytes).1
}

/// Parses a contacts file: `phone; address[; apartment]`.
pub(crate) fn parse_contacts(bytes: &[u8]) -> (Vec<ContactRow>, ImportReport) {
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    for (line, fields) in records(bytes, &mut report) {
        let (phone, address, apt) = match fields.as_slice() {
            [p, a] => (p, a, ""),
            [p, a, apt] => (p, a, apt.as_str()),
            _ => {
                report.bad(
                    line,
                    "row",
                    format!(
                        "expected 2 or 3 fields (phone, address, apartment), found {}",
                        fields.len()
                    ),
                );
                continue;
            }
        };
        let phone = match resident_phone(phone) {
            Ok(p) => p,
            Err(e) => {
                report.bad(line, "phone", e);
                continue;
            }
        };
        let key = address_key(address);
        if key.is_empty() {
            report.bad(line, "address", "empty address");
            continue;
        }
        match apartment_key(apt) {
            Ok(apartment) => rows.push(ContactRow {
                line,
                phone,
                address_key: key,
                apartment,
            }),
            Err(e) => report.bad(line, "apartment", e),
        }
    }
    (rows, report)
}

/// Parses a debtors file: `address; apartment; amount; valid until`.
pub(crate) fn parse_debtors(bytes: &[u8]) -> (Vec<DebtorRow>, ImportReport) {
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    for (line, fields) in records(bytes, &mut report) {
        let [address, apt, amount, until] = fields.as_slice() else {
            report.bad(
                line,
                "row",
                format!(
                    "expected 4 fields (address, apartment, amount, valid until), found {}",
                    fields.len()
                ),
            );
            continue;
        };
        let key = address_key(address);
        if key.is_empty() {
            report.bad(line, "address", "empty address");
            continue;
        }
        let apartment = match apartment_key(apt) {
            Ok(a) => a,
            Err(e) => {
                report.bad(line, "apartment", e);
                continue;
            }
        };
        let amount_kopecks = match parse_amount(amount) {
            Ok(k) => k,
            Err(e) => {
                report.bad(line, "amount", e);
                continue;
            }
        };
        let Some(valid_until) = parse_date(until) else {
            report.bad(
                line,
                "valid_until",
                format!("`{until}` is not a date (DD.MM.YYYY or YYYY-MM-DD)"),
            );
            continue;
        };
        rows.push(DebtorRow {
            line,
            address_key: key,
            apartment,
            amount_kopecks,
            valid_until,
        });
    }
    (rows, report)
}

/// Drops debtor rows whose validity already ended before `today` (the tenant's local
/// date), reporting each as a bad row: a list that says a debt ended yesterday is a
/// stale list, not something to announce.
pub(crate) fn drop_expired(
    rows: Vec<DebtorRow>,
    today: NaiveDate,
    report: &mut ImportReport,
) -> Vec<DebtorRow> {
    rows.into_iter()
        .filter(|row| {
            let expired = row.valid_until < today;
            if expired {
                report.bad(
                    row.line,
                    "valid_until",
                    format!("{} is already past (today is {today})", row.valid_until),
                );
            }
            !expired
        })
        .collect()
}

/// Roubles as people write them → kopecks.
pub(crate) fn parse_amount(raw: &str) -> Result<i64, String> {
    let bad = || format!("`{raw}` is not an amount");
    let mut text: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '\u{a0}' | '\u{202f}' | '\''))
        .collect();
    for suffix in ["₽", "руб.", "руб", "р."] {
        if let Some(stripped) = text.strip_suffix(suffix) {
            text = stripped.to_owned();
            break;
        }
    }
    if text.is_empty() || text.starts_with('-') {
        return Err(bad());
    }
    // The last separator is the decimal one when two or fewer digits follow it.
    let (whole, fraction) = match text.rfind([',', '.']) {
        Some(at) if text.len() - at - 1 <= 2 => (&text[..at], &text[at + 1..]),
        _ => (text.as_str(), ""),
    };
    let whole: String = whole.chars().filter(|c| !matches!(c, ',' | '.')).collect();
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    if !whole
        .chars()
        .chain(fraction.chars())
        .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let roubles: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let kopecks: i64 = match fraction.len() {
        0 => 0,
        1 => fraction.parse::<i64>().map_err(|_| bad())? * 10,
        _ => fraction.parse().map_err(|_| bad())?,
    };
    let total = roubles
        .checked_mul(100)
        .and_then(|r| r.checked_add(kopecks))
        .ok_or_else(bad)?;
    if total == 0 {
        return Err("the amount is zero".to_owned());
    }
    Ok(total)
}

fn parse_date(raw: &str) -> Option<NaiveDate> {
    ["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y"]
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(raw.trim(), format).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_as_people_write_them() {
        assert_eq!(parse_amount("1 234,56"), Ok(123_456));
        assert_eq!(parse_amount("1234.56"), Ok(123_456));
        assert_eq!(parse_amount("1\u{a0}234,5"), Ok(123_450));
        assert_eq!(parse_amount("1 234 руб."), Ok(123_400));
        assert_eq!(parse_amount("1.234,56"), Ok(123_456));
        assert_eq!(parse_amount("12 345 678"), Ok(1_234_567_800));
        assert_eq!(parse_amount("0,99"), Ok(99));
        assert!(parse_amount("-5").is_err());
        assert!(parse_amount("abc").is_err());
        assert!(parse_amount("").is_err());
        assert!(parse_amount("0").is_err());
        assert!(parse_amount("99999999999999999999").is_err());
    }

    #[test]
    fn semicolons_bom_and_header() {
        let file = "\u{feff}Телефон;Адрес;Квартира\n+7 912 000-00-01;ул. Ленина, д. 5;12\n\n89120000002;Мира 3;\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert!(report.bad_rows.is_empty(), "{report:?}");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].phone.as_str(), "+79120000001");
        assert_eq!(rows[0].address_key, "ленина 5");
        assert_eq!(rows[0].apartment, "12");
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].line, 4);
        assert_eq!(rows[1].apartment, "");
    }

    #[test]
    fn commas_with_quoted_addresses_and_no_header() {
        let file = "9120000003,\"ул. Ленина, д. 5\",кв. 7\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert!(report.bad_rows.is_empty(), "{report:?}");
        assert_eq!(rows[0].phone.as_str(), "+79120000003");
        assert_eq!(rows[0].apartment, "7");
    }

    #[test]
    fn bad_rows_carry_their_line_and_field() {
        let file = "phone;address;apartment\n+79120000001;Ленина 5;1\nnot-a-phone;Ленина 5;2\n+79120000003\n+79120000004;;3\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert_eq!(rows.len(), 1);
        let bad: Vec<_> = report
            .bad_rows
            .iter()
            .map(|b| (b.line, b.field.as_str()))
            .collect();
        assert_eq!(bad, vec![(3, "phone"), (4, "row"), (5, "address")]);
    }

    #[test]
    fn debtors_rows() {
        let file = "Адрес;Кв;Сумма;Действует до\nЛенина 5;12;1 234,56;31.12.2026\nМира 3;;15000;2026-06-30\nМира 3;4;много;31.12.2026\nМира 3;4;100;завтра\n";
        let (rows, report) = parse_debtors(file.as_bytes());
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].amount_kopecks, 123_456);
        assert_eq!(
            rows[0].valid_until,
            NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()
        );
        assert_eq!(rows[1].amount_kopecks, 1_500_000);
        let bad: Vec<_> = report
            .bad_rows
            .iter()
            .map(|b| (b.line, b.field.as_str()))
            .collect();
        assert_eq!(bad, vec![(4, "amount"), (5, "valid_until")]);
    }

    #[test]
    fn invalid_utf8_is_a_bad_row_not_a_panic() {
        let mut file = b"+79120000001;\xff\xfe;1\n".to_vec();
        file.extend_from_slice("+79120000002;Ленина 5;2\n".as_bytes());
        let (rows, report) = parse_contacts(&file);
        assert_eq!(rows.len(), 1);
        assert_eq!(report.bad_rows[0].line, 1);
    }

    #[test]
    fn separator_is_decided_by_most_lines_not_the_first() {
        // A comma file whose header happens to hold a semicolon.
        let file =
            "phone,address;street,apartment\n+79120000001,Ленина 5,1\n+79120000002,Мира 3,2\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert_eq!(rows.len(), 2, "{report:?}");
        // A semicolon file whose quoted first address holds commas only.
        let file = "+79120000001;\"Ленина, 5\";1\n+79120000002;Мира 3;2\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert_eq!(rows.len(), 2, "{report:?}");
        assert_eq!(rows[0].address_key, "ленина 5");
    }

    #[test]
    fn a_digit_free_first_row_is_a_header_only_when_it_names_columns() {
        let (rows, report) =
            parse_contacts("Тел.;Улица, дом;Кв\n+79120000001;Ленина 5;1\n".as_bytes());
        assert_eq!((rows.len(), report.bad_rows.len()), (1, 0));
        let (rows, report) = parse_contacts("Ленина;Мира\n+79120000001;Ленина 5;1\n".as_bytes());
        assert_eq!(rows.len(), 1);
        assert_eq!(
            report.bad_rows.len(),
            1,
            "the garbage first row is reported"
        );
        assert_eq!(report.bad_rows[0].line, 1);
    }

    #[test]
    fn a_broken_quote_refuses_the_file_even_when_skipping() {
        let file = "+79120000001;Ленина 5;1\n+79120000002;\"Мира 3;2\n+79120000003;Ленина 5;3\n+79120000004;Ленина 5;4\n";
        let (rows, mut report) = parse_contacts(file.as_bytes());
        assert_eq!(rows.len(), 1);
        assert_eq!(report.unreadable_from, Some(2));
        assert_eq!(report.bad_rows[0].line, 2);
        assert!(report.bad_rows[0].message.contains("rest of the file"));
        assert!(matches!(
            report.finish(rows.len(), true),
            Err(StoreError::Import(_))
        ));
    }

    #[test]
    fn expired_debts_are_bad_rows() {
        let file = "Ленина 5;1;100;01.01.2020\nЛенина 5;2;100;31.12.2099\n";
        let (rows, mut report) = parse_debtors(file.as_bytes());
        let today = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
        let rows = drop_expired(rows, today, &mut report);
        assert_eq!(rows.len(), 1);
        assert_eq!(report.bad_rows[0].line, 1);
        assert_eq!(report.bad_rows[0].field, "valid_until");
    }

    #[test]
    fn apartments_are_normalised_on_import() {
        let file = "+79120000001;Ленина 5;квартира 12\n+79120000002;Ленина 5;Кв. 12А\n";
        let (rows, report) = parse_contacts(file.as_bytes());
        assert!(report.bad_rows.is_empty(), "{report:?}");
        assert_eq!(rows[0].apartment, "12");
        assert_eq!(rows[1].apartment, "12а");
    }

    #[test]
    fn finish_refuses_bad_files_unless_asked() {
        let mut report = ImportReport::default();
        report.bad(3, "phone", "x");
        assert!(matches!(
            report.clone().finish(5, false),
            Err(StoreError::Import(_))
        ));
        let mut skipping = report.clone();
        skipping.finish(5, true).unwrap();
        assert_eq!((skipping.imported, skipping.skipped), (5, 1));
        assert!(ImportReport::default().finish(0, false).is_err());
    }
}

//! The questionnaire as a file: which sheets it has, which columns each sheet has,
//! reading an XLSX workbook (calamine) or a folder of CSV files into cells, and
//! writing the empty template (rust_xlsxwriter).
//!
//! Every cell becomes text here, the way a person reads it: whole numbers without a
//! decimal point, Excel dates as `YYYY-MM-DD`, Excel times as `HH:MM`. Everything
//! after this module reads text only, so an XLSX workbook and the same sheets saved
//! as CSV import the same.

use std::fmt;
use std::path::Path;

use serde::Serialize;

/// The sheets of the questionnaire, in the order the template has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SheetKind {
    /// The company: its name and its city.
    Company,
    /// Houses: address, group, floors, entrances, lifts, notes.
    Houses,
    /// Apartments of the houses: number, entrance, floor.
    Apartments,
    /// Employees: personnel number, name, position, phones, work types.
    Employees,
    /// Weekly shifts of the employees.
    Shifts,
    /// Vacations and sick leave.
    Absences,
    /// The company's reasons catalogue (and the work types it names).
    Reasons,
    /// The responsibility matrix: house group × work type → levels 1–3 and
    /// escalation.
    Responsibility,
    /// Resource suppliers (РСО) and their dispatch phones.
    Suppliers,
    /// Residents' phones and addresses.
    Contacts,
}

/// A column of a sheet.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// The header the template writes (compared case- and ё-insensitively).
    pub header: &'static str,
    /// Other headers accepted for it.
    pub aliases: &'static [&'static str],
    /// Whether every data row must fill it.
    pub required: bool,
    /// What the template's example row holds.
    pub example: &'static str,
}

const fn col(header: &'static str, required: bool, example: &'static str) -> Column {
    Column {
        header,
        aliases: &[],
        required,
        example,
    }
}

const fn col_a(
    header: &'static str,
    aliases: &'static [&'static str],
    required: bool,
    example: &'static str,
) -> Column {
    Column {
        header,
        aliases,
        required,
        example,
    }
}

impl SheetKind {
    /// Every sheet, in template order.
    pub const ALL: [SheetKind; 10] = [
        SheetKind::Company,
        SheetKind::Houses,
        SheetKind::Apartments,
        SheetKind::Employees,
        SheetKind::Shifts,
        SheetKind::Absences,
        SheetKind::Reasons,
        SheetKind::Responsibility,
        SheetKind::Suppliers,
        SheetKind::Contacts,
    ];

    /// The sheet's name in the template.
    pub fn title(self) -> &'static str {
        match self {
            SheetKind::Company => "Компания",
            SheetKind::Houses => "Дома",
            SheetKind::Apartments => "Квартиры",
            SheetKind::Employees => "Сотрудники",
            SheetKind::Shifts => "Смены",
            SheetKind::Absences => "Отсутствия",
            SheetKind::Reasons => "Причины",
            SheetKind::Responsibility => "Ответственность",
            SheetKind::Suppliers => "Поставщики",
            SheetKind::Contacts => "Контакты",
        }
    }

    /// The English name, also accepted as a sheet (or CSV file) name.
    pub fn english(self) -> &'static str {
        match self {
            SheetKind::Company => "company",
            SheetKind::Houses => "houses",
            SheetKind::Apartments => "apartments",
            SheetKind::Employees => "employees",
            SheetKind::Shifts => "shifts",
            SheetKind::Absences => "absences",
            SheetKind::Reasons => "reasons",
            SheetKind::Responsibility => "responsibility",
            SheetKind::Suppliers => "suppliers",
            SheetKind::Contacts => "contacts",
        }
    }

    /// The sheet a name means (the template's, or the English one).
    pub fn by_name(name: &str) -> Option<SheetKind> {
        let name = fold(name);
        Self::ALL
            .into_iter()
            .find(|k| fold(k.title()) == name || k.english() == name)
    }

    /// The sheet's columns, in template order.
    pub fn columns(self) -> &'static [Column] {
        match self {
            SheetKind::Company => {
                const C: &[Column] = &[
                    col("Код города", true, "ekb"),
                    col("Город", true, "Екатеринбург"),
                    col("Часовой пояс", true, "Asia/Yekaterinburg"),
                    col("Название УК", true, "УК «Пример»"),
                ];
                C
            }
            SheetKind::Houses => {
                const C: &[Column] = &[
                    col("Улица", true, "ул. Ленина"),
                    col("Дом", true, "5к1"),
                    col("Группа домов", true, "uch1"),
                    col("Название группы", false, "Участок 1"),
                    col("Этажей", false, "9"),
                    col("Подъездов", false, "4"),
                    col("Лифтов", false, "4"),
                    col(
                        "Заметки для оператора",
                        false,
                        "Ключи от подвала у старшего по дому",
                    ),
                ];
                C
            }
            SheetKind::Apartments => {
                const C: &[Column] = &[
                    col("Улица", true, "ул. Ленина"),
                    col("Дом", true, "5к1"),
                    col_a("Квартира", &["кв", "кв."], true, "12"),
                    col("Подъезд", false, "1"),
                    col("Этаж", false, "3"),
                ];
                C
            }
            SheetKind::Employees => {
                const C: &[Column] = &[
                    col_a(
                        "Табельный номер",
                        &["таб. номер", "таб. №", "код"],
                        true,
                        "T-001",
                    ),
                    col("ФИО", true, "Петров Пётр Петрович"),
                    col("Должность", false, "слесарь-сантехник"),
                    col("Телефоны", true, "+79120000001, +79120000002"),
                    col("Виды работ", false, "plumbing, heating"),
                ];
                C
            }
            SheetKind::Shifts => {
                const C: &[Column] = &[
                    col_a(
                        "Табельный номер",
                        &["таб. номер", "таб. №", "код"],
                        true,
                        "T-001",
                    ),
                    col("День", true, "пн"),
                    col("Начало", true, "08:00"),
                    col("Конец", true, "20:00"),
                ];
                C
            }
            SheetKind::Absences => {
                const C: &[Column] = &[
                    col_a(
                        "Табельный номер",
                        &["таб. номер", "таб. №", "код"],
                        true,
                        "T-001",
                    ),
                    col("Вид", true, "отпуск"),
                    col("С", true, "2027-01-10"),
                    col("По", true, "2027-01-24"),
                ];
                C
            }
            SheetKind::Reasons => {
                const C: &[Column] = &[
                    col("Код", true, "leak"),
                    col("Категория", true, "аварийная"),
                    col("Название", true, "Течь в квартире"),
                    col("Вид работ", true, "plumbing"),
                    col("Название вида работ", false, "Сантехника"),
                    col("Срок, мин", true, "120"),
                    col(
                        "Текст для оператора",
                        false,
                        "Перекройте воду на стояке, если можете",
                    ),
                    col("Нужен поставщик", false, "нет"),
                ];
                C
            }
            SheetKind::Responsibility => {
                const C: &[Column] = &[
                    col("Группа домов", true, "uch1"),
                    col("Вид работ", true, "plumbing"),
                    col("Уровень 1", true, "T-001"),
                    col("Уровень 2", false, "T-002"),
                    col("Уровень 3", false, "T-003"),
                    col("Ответственный", false, "T-004"),
                    col("Руководитель", false, "T-005"),
                    col("Директор", false, "T-006"),
                ];
                C
            }
            SheetKind::Suppliers => {
                const C: &[Column] = &[
                    col("Код", true, "vodokanal"),
                    col("Название", true, "МУП «Водоканал»"),
                    col("Телефоны диспетчерской", true, "+73432000777"),
                ];
                C
            }
            SheetKind::Contacts => {
                const C: &[Column] = &[
                    col("Телефон", true, "+79120000101"),
                    col("Улица", true, "ул. Ленина"),
                    col("Дом", true, "5к1"),
                    col_a("Квартира", &["кв", "кв."], false, "12"),
                ];
                C
            }
        }
    }

    /// The template's example row, as it reads back.
    pub fn example(self) -> Vec<String> {
        self.columns()
            .iter()
            .map(|c| c.example.to_owned())
            .collect()
    }
}

impl fmt::Display for SheetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// Lower case, `ё` as `е`, spaces collapsed: how sheet and column names compare.
pub(crate) fn fold(text: &str) -> String {
    text.to_lowercase()
        .replace('ё', "е")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A row of a sheet as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// 1-based row number in the sheet (the line of a CSV file).
    pub number: u32,
    /// Its cells, from column A.
    pub cells: Vec<String>,
}

/// A sheet as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sheet {
    /// Its name as written.
    pub name: String,
    /// Its non-empty rows, header first.
    pub rows: Vec<Row>,
}

/// A questionnaire as read: sheets of text cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Workbook {
    /// The sheets, in file order.
    pub sheets: Vec<Sheet>,
}

/// Why a file could not be read as a questionnaire at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkbookError {
    /// Not an XLSX file calamine can read.
    #[error("not an XLSX workbook: {0}")]
    Xlsx(String),
    /// A CSV file or folder could not be read.
    #[error("{path}: {message}")]
    Csv {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// More rows than any questionnaire has.
    #[error("sheet {sheet} has more than {max} rows")]
    TooLarge {
        /// The sheet.
        sheet: String,
        /// The limit.
        max: usize,
    },
}

/// Rows per sheet at most (a million apartments is far beyond any one company).
pub const MAX_ROWS: usize = 2_000_000;

/// Columns read per row at most.
const MAX_COLUMNS: usize = 64;

/// The column letters of a 0-based column index (`A`, ..., `Z`, `AA`, ...).
pub fn column_letters(index: usize) -> String {
    let mut n = index + 1;
    let mut out = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        out.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// Excel's serial day 0 (1899-12-30, which absorbs the 1900 leap-year bug).
fn excel_epoch() -> Option<chrono::NaiveDate> {
    chrono::NaiveDate::from_ymd_opt(1899, 12, 30)
}

/// A number as a person reads it: whole ones without a decimal point.
fn number_text(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// An Excel date/time serial as `YYYY-MM-DD`, `HH:MM` (a time of day) or both.
fn serial_text(serial: f64) -> String {
    let days = serial.floor();
    let minutes = ((serial - days) * 24.0 * 60.0).round() as i64;
    let (days, minutes) = if minutes >= 24 * 60 {
        (days + 1.0, minutes - 24 * 60)
    } else {
        (days, minutes)
    };
    let time = format!("{:02}:{:02}", minutes / 60, minutes % 60);
    if days < 1.0 {
        return time;
    }
    let date = excel_epoch()
        .and_then(|e| e.checked_add_signed(chrono::Duration::days(days as i64)))
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| number_text(serial));
    if minutes == 0 {
        date
    } else {
        format!("{date} {time}")
    }
}

fn cell_text(cell: &calamine::Data) -> String {
    use calamine::Data;
    match cell {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.trim().to_owned(),
        Data::Int(i) => i.to_string(),
        Data::Float(f) => number_text(*f),
        Data::Bool(b) => if *b { "да" } else { "нет" }.to_owned(),
        Data::DateTime(dt) => serial_text(dt.as_f64()),
        Data::Error(e) => format!("#{e:?}"),
    }
}

impl Workbook {
    /// Reads an XLSX workbook.
    pub fn from_xlsx(bytes: &[u8]) -> Result<Self, WorkbookError> {
        use calamine::Reader as _;
        let cursor = std::io::Cursor::new(bytes);
        let mut book: calamine::Xlsx<_> = calamine::open_workbook_from_rs(cursor)
            .map_err(|e: calamine::XlsxError| WorkbookError::Xlsx(e.to_string()))?;
        let mut sheets = Vec::new();
        for name in book.sheet_names() {
            let range = book
                .worksheet_range(&name)
                .map_err(|e| WorkbookError::Xlsx(format!("sheet {name}: {e}")))?;
            let (first_row, first_col) = range.start().unwrap_or((0, 0));
            if range.height() > MAX_ROWS {
                return Err(WorkbookError::TooLarge {
                    sheet: name,
                    max: MAX_ROWS,
                });
            }
            let mut rows = Vec::new();
            for (i, row) in range.rows().enumerate() {
                let mut cells: Vec<String> = std::iter::repeat_n(String::new(), first_col as usize)
                    .chain(row.iter().take(MAX_COLUMNS).map(cell_text))
                    .collect();
                while cells.last().is_some_and(String::is_empty) {
                    cells.pop();
                }
                if cells.is_empty() {
                    continue;
                }
                rows.push(Row {
                    number: first_row + i as u32 + 1,
                    cells,
                });
            }
            sheets.push(Sheet { name, rows });
        }
        Ok(Self { sheets })
    }

    /// Reads one sheet from CSV text (`;` or `,` separated, UTF-8, with or without a
    /// byte-order mark) under the name `name`.
    pub fn add_csv(&mut self, name: &str, bytes: &[u8]) -> Result<(), WorkbookError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        let first_line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
        let semicolons = first_line.iter().filter(|&&b| b == b';').count();
        let commas = first_line.iter().filter(|&&b| b == b',').count();
        let separator = if semicolons >= commas { b';' } else { b',' };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        // Lines are counted from byte offsets: the reader does not count the blank
        // lines it skips.
        let newlines: Vec<usize> = bytes
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'\n').then_some(i))
            .collect();
        let line_at = |byte: u64| -> u32 {
            let mut offset = usize::try_from(byte).unwrap_or(usize::MAX);
            while matches!(bytes.get(offset), Some(b'\r' | b'\n')) {
                offset += 1;
            }
            u32::try_from(newlines.partition_point(|&nl| nl < offset) + 1).unwrap_or(u32::MAX)
        };
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| WorkbookError::Csv {
                path: name.to_owned(),
                message: e.to_string(),
            })?;
            if rows.len() >= MAX_ROWS {
                return Err(WorkbookError::TooLarge {
                    sheet: name.to_owned(),
                    max: MAX_ROWS,
                });
            }
            let number = record.position().map_or(0, |p| line_at(p.byte()));
            let mut cells: Vec<String> = record
                .iter()
                .take(MAX_COLUMNS)
                .map(|c| c.trim().to_owned())
                .collect();
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            if !cells.is_empty() {
                rows.push(Row { number, cells });
            }
        }
        self.sheets.push(Sheet {
            name: name.to_owned(),
            rows,
        });
        Ok(())
    }

    /// Reads a folder of CSV files, one per sheet, each named by its sheet
    /// (`Дома.csv` or `houses.csv`).
    pub fn from_csv_dir(dir: &Path) -> Result<Self, WorkbookError> {
        let io = |e: std::io::Error| WorkbookError::Csv {
            path: dir.display().to_string(),
            message: e.to_string(),
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("csv")))
            .collect();
        paths.sort();
        let mut book = Self::default();
        for path in paths {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(|e| WorkbookError::Csv {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            book.add_csv(&name, &bytes)?;
        }
        Ok(book)
    }

    /// Reads a workbook file (`.xlsx`) or a folder of CSV sheets.
    pub fn open(path: &Path) -> Result<Self, WorkbookError> {
        if path.is_dir() {
            return Self::from_csv_dir(path);
        }
        let bytes = std::fs::read(path).map_err(|e| WorkbookError::Csv {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_xlsx(&bytes)
    }

    /// How many data rows the workbook has (header rows not counted).
    pub fn data_rows(&self) -> usize {
        self.sheets
            .iter()
            .map(|s| s.rows.len().saturating_sub(1))
            .sum()
    }
}

/// Writes a workbook: per sheet, a bold header row and then `rows`. With
/// `constant_memory` rows stream to disk as they are written (the benchmark's
/// half-million-row workbooks).
pub fn write_xlsx(
    sheets: &[(SheetKind, Vec<Vec<String>>)],
) -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let mut book = rust_xlsxwriter::Workbook::new();
    // A fixed creation time: the same content gives the same file.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2026, 1, 1)?;
    book.set_properties(
        &rust_xlsxwriter::DocProperties::new()
            .set_creation_datetime(&created)
            .set_title("Анкета УК для подключения к АДС"),
    );
    let bold = rust_xlsxwriter::Format::new().set_bold();
    for (kind, rows) in sheets {
        let sheet = if rows.len() > 10_000 {
            book.add_worksheet_with_constant_memory()
        } else {
            book.add_worksheet()
        };
        sheet.set_name(kind.title())?;
        for (c, column) in kind.columns().iter().enumerate() {
            let c = c as u16;
            sheet.write_string_with_format(0, c, column.header, &bold)?;
            let width = column
                .header
                .chars()
                .count()
                .max(column.example.chars().count());
            sheet.set_column_width(c, (width as f64 + 2.0).min(60.0))?;
        }
        sheet.set_freeze_panes(1, 0)?;
        for (r, row) in rows.iter().enumerate() {
            for (c, value) in row.iter().enumerate().filter(|(_, v)| !v.is_empty()) {
                sheet.write_string(r as u32 + 1, c as u16, value)?;
            }
        }
    }
    book.save_to_buffer()
}

/// The empty questionnaire: every sheet with its header row and one example row (an
/// example row left exactly as it is is not imported).
pub fn template() -> Result<Vec<u8>, rust_xlsxwriter::XlsxError> {
    let sheets: Vec<_> = SheetKind::ALL
        .into_iter()
        .map(|k| (k, vec![k.example()]))
        .collect();
    write_xlsx(&sheets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_letters_run_past_z() {
        assert_eq!(column_letters(0), "A");
        assert_eq!(column_letters(25), "Z");
        assert_eq!(column_letters(26), "AA");
        assert_eq!(column_letters(27), "AB");
    }

    #[test]
    fn excel_serials_read_as_dates_and_times() {
        assert_eq!(serial_text(0.5), "12:00");
        assert_eq!(serial_text(1.0 / 3.0), "08:00");
        assert_eq!(serial_text(46022.0), "2025-12-31");
        assert_eq!(number_text(79120000001.0), "79120000001");
        assert_eq!(number_text(2.5), "2.5");
    }

    #[test]
    fn the_template_reads_back_with_every_sheet_and_its_example() {
        let bytes = template().unwrap();
        let book = Workbook::from_xlsx(&bytes).unwrap();
        assert_eq!(book.sheets.len(), SheetKind::ALL.len());
        for (sheet, kind) in book.sheets.iter().zip(SheetKind::ALL) {
            assert_eq!(SheetKind::by_name(&sheet.name), Some(kind));
            assert_eq!(sheet.rows.len(), 2);
            assert_eq!(sheet.rows[1].cells, kind.example(), "{kind}");
            assert_eq!(sheet.rows[1].number, 2);
        }
        assert_eq!(template().unwrap(), bytes, "the same every time");
    }

    #[test]
    fn sheets_are_known_by_either_name() {
        assert_eq!(SheetKind::by_name("ДОМА"), Some(SheetKind::Houses));
        assert_eq!(SheetKind::by_name("houses"), Some(SheetKind::Houses));
        assert_eq!(SheetKind::by_name("Лист1"), None);
    }

    #[test]
    fn csv_sheets_keep_their_line_numbers() {
        let mut book = Workbook::default();
        book.add_csv("Дома", "Улица;Дом\n\nЛенина;5\n".as_bytes())
            .unwrap();
        let rows = &book.sheets[0].rows;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].number, 3);
    }
}

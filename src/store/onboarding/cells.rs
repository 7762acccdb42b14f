//! Reading one cell of the questionnaire: codes, texts, counts, lists, phones,
//! days of the week, times and dates as people write them. Each reader reports a
//! bad cell to the questionnaire at its cell and returns nothing for it.

use chrono::NaiveDate;

use super::questionnaire::{At, Questionnaire};
use super::workbook::fold;
use crate::phone::PhoneNumber;

/// A code: letters, digits, `-`, `_`, `.`, at most 64.
pub(crate) fn code(
    q: &mut Questionnaire,
    at: At,
    header: &'static str,
    raw: &str,
) -> Option<String> {
    let ok = !raw.is_empty()
        && raw.chars().count() <= 64
        && raw
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Some(raw.to_owned())
    } else {
        q.fault(
            at,
            header,
            format!("`{raw}` is not a code (letters, digits, - _ . /, at most 64)"),
        );
        None
    }
}

pub(crate) fn text(
    q: &mut Questionnaire,
    at: At,
    header: &'static str,
    raw: &str,
    max: usize,
) -> Option<String> {
    if raw.chars().count() > max {
        q.fault(at, header, format!("longer than {max} characters"));
        return None;
    }
    Some(raw.to_owned())
}

/// An optional whole number within bounds; `Err` after reporting a bad one.
pub(crate) fn count(
    q: &mut Questionnaire,
    at: At,
    header: &'static str,
    raw: &str,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ()> {
    if raw.is_empty() {
        return Ok(None);
    }
    match raw.parse::<i64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        Ok(n) => {
            q.fault(at, header, format!("{n} is out of range ({min} to {max})"));
            Err(())
        }
        Err(_) => {
            q.fault(at, header, format!("`{raw}` is not a whole number"));
            Err(())
        }
    }
}

/// A comma- or semicolon-separated list.
pub(crate) fn list(raw: &str) -> Vec<String> {
    raw.split([',', ';', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn phones(
    q: &mut Questionnaire,
    at: At,
    header: &'static str,
    raw: &str,
) -> Option<Vec<PhoneNumber>> {
    let mut out: Vec<PhoneNumber> = Vec::new();
    for item in list(raw) {
        match PhoneNumber::parse(&item) {
            Ok(p) if out.contains(&p) => {
                q.fault(at, header, format!("{p} is listed twice"));
                return None;
            }
            Ok(p) => out.push(p),
            Err(e) => {
                q.fault(at, header, format!("`{item}`: {e}"));
                return None;
            }
        }
    }
    if out.is_empty() {
        q.fault(at, header, "no phone");
        return None;
    }
    if out.len() > 5 {
        q.fault(at, header, "at most 5 phones");
        return None;
    }
    Some(out)
}

/// A resident's phone: a full number (ten digits are a Russian number without its
/// trunk prefix).
pub(crate) fn resident_phone(raw: &str) -> Result<PhoneNumber, String> {
    let phone = PhoneNumber::parse(raw).map_err(|e| format!("`{raw}`: {e}"))?;
    if phone.is_e164() {
        return Ok(phone);
    }
    if phone.as_str().len() == 10 {
        return PhoneNumber::parse(&format!("+7{}", phone.as_str())).map_err(|e| e.to_string());
    }
    Err(format!("`{raw}` is not a full phone number"))
}

pub(crate) fn hhmm(raw: &str) -> bool {
    let Some((h, m)) = raw.split_once(':') else {
        return false;
    };
    matches!((h.trim().parse::<u8>(), m.trim().parse::<u8>()), (Ok(h), Ok(m)) if h < 24 && m < 60)
}

/// ISO weekdays a day cell names.
pub(crate) fn weekdays(raw: &str) -> Option<Vec<u8>> {
    let day = match fold(raw).trim_end_matches('.') {
        "пн" | "понедельник" | "1" | "mon" => 1,
        "вт" | "вторник" | "2" | "tue" => 2,
        "ср" | "среда" | "3" | "wed" => 3,
        "чт" | "четверг" | "4" | "thu" => 4,
        "пт" | "пятница" | "5" | "fri" => 5,
        "сб" | "суббота" | "6" | "sat" => 6,
        "вс" | "воскресенье" | "7" | "sun" => 7,
        "будни" | "пн-пт" => return Some(vec![1, 2, 3, 4, 5]),
        "выходные" | "сб-вс" => return Some(vec![6, 7]),
        "ежедневно" | "каждый день" | "пн-вс" => {
            return Some((1..=7).collect());
        }
        _ => return None,
    };
    Some(vec![day])
}

pub(crate) fn date(
    q: &mut Questionnaire,
    at: At,
    header: &'static str,
    raw: &str,
) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d.%m.%Y"));
    match parsed {
        Ok(d) => Some(d),
        Err(_) => {
            q.fault(
                at,
                header,
                format!("`{raw}` is not a date (DD.MM.YYYY or YYYY-MM-DD)"),
            );
            None
        }
    }
}

pub(crate) fn yes_no(raw: &str) -> Option<bool> {
    match fold(raw).as_str() {
        "" | "нет" | "no" | "0" | "false" => Some(false),
        "да" | "yes" | "1" | "true" => Some(true),
        _ => None,
    }
}

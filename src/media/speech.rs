//! Saying numbers in Russian by joining prompt fragments from `<lang>/num/` and
//! `<lang>/unit/` under the prompts directory (`lang` is the configured language
//! folder, `ru` by default, so another Russian voice is another folder).
//!
//! Owns the grammar: cardinal numbers 0–999 999 in the nominative with gender
//! agreement (одна/две for feminine nouns: минута, копейка, тысяча), the three plural
//! forms a counted noun takes (1 рубль, 2–4 рубля, 5–20 рублей; 11–14 always the
//! "many" form), amounts in rubles and kopecks, durations in hours and minutes, times
//! of day, dates (the day as a neuter ordinal in the nominative and the month in the
//! genitive, from `<lang>/date/`: «двадцать второе ноября»), ticket registration
//! numbers read in digit groups, and telephone numbers as
//! Russians say them (8, the code, then 3-2-2: «восемь, триста сорок три, двести,
//! ноль ноль, ноль один»). Everything is in the nominative: the phrases before a
//! number are worded to take it («Время восстановления:», «Сумма
//! задолженности:»), never «до» or «в размере», which would need the genitive or
//! prepositional. Every function returns prompt names for a
//! [`Playlist`](super::playback::Playlist); [`fragments`] lists every name they can
//! return, for `check-config`. Nothing here touches audio.

/// Grammatical gender of the counted noun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Gender {
    /// один, два (рубль, час).
    Masculine,
    /// одна, две (копейка, минута, тысяча).
    Feminine,
}

/// Which of the three forms a noun takes after a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PluralForm {
    /// 1, 21, 101: рубль, минута.
    One,
    /// 2–4, 22–24: рубля, минуты.
    Few,
    /// 0, 5–20, 25–30, 11–14 in any hundred: рублей, минут.
    Many,
}

/// Why a number cannot be said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpeechError {
    /// Above the largest number the fragments cover.
    #[error("{0} is above 999 999, the largest number the prompts can say")]
    OutOfRange(u64),
    /// Not a valid time of day.
    #[error("{0:02}:{1:02} is not a time of day")]
    BadTime(u32, u32),
    /// Not a day of a month (day 1–31, month 1–12).
    #[error("day {0} of month {1} is not a date")]
    BadDate(u32, u32),
    /// A ticket or phone number with no digits.
    #[error("number `{0}` has no digits")]
    NoDigits(String),
}

/// The largest number [`cardinal`] says.
pub const MAX: u64 = 999_999;

/// The plural form of the noun after `n` (Russian agreement rules).
pub fn plural_form(n: u64) -> PluralForm {
    let last_two = n % 100;
    let last = n % 10;
    if (11..=14).contains(&last_two) {
        PluralForm::Many
    } else if last == 1 {
        PluralForm::One
    } else if (2..=4).contains(&last) {
        PluralForm::Few
    } else {
        PluralForm::Many
    }
}

fn num(lang: &str, name: impl std::fmt::Display) -> String {
    format!("{lang}/num/{name}.wav")
}

/// The noun forms the unit fragments exist for.
pub const UNITS: [&str; 4] = ["ruble", "kopeck", "minute", "hour"];

fn form_of(n: u64) -> u8 {
    match plural_form(n) {
        PluralForm::One => 1,
        PluralForm::Few => 2,
        PluralForm::Many => 5,
    }
}

fn unit(lang: &str, stem: &str, n: u64) -> String {
    format!("{lang}/unit/{stem}-{}.wav", form_of(n))
}

/// A short silence between the groups of a telephone number (the commas of
/// «восемь, триста сорок три, ...»).
fn pause(lang: &str) -> String {
    num(lang, "pause")
}

/// 1–999 into `out`, in `gender`.
fn below_thousand(lang: &str, n: u64, gender: Gender, out: &mut Vec<String>) {
    let hundreds = n / 100 * 100;
    let rest = n % 100;
    if hundreds > 0 {
        out.push(num(lang, hundreds));
    }
    if rest == 0 {
        return;
    }
    if rest < 20 {
        out.push(small(lang, rest, gender));
    } else {
        out.push(num(lang, rest / 10 * 10));
        if rest % 10 > 0 {
            out.push(small(lang, rest % 10, gender));
        }
    }
}

fn small(lang: &str, n: u64, gender: Gender) -> String {
    match (n, gender) {
        (1, Gender::Feminine) => num(lang, "1f"),
        (2, Gender::Feminine) => num(lang, "2f"),
        _ => num(lang, n),
    }
}

/// A cardinal number, 0–999 999, agreeing with a noun of `gender`.
pub fn cardinal(lang: &str, n: u64, gender: Gender) -> Result<Vec<String>, SpeechError> {
    if n > MAX {
        return Err(SpeechError::OutOfRange(n));
    }
    let mut out = Vec::new();
    if n == 0 {
        out.push(num(lang, 0));
        return Ok(out);
    }
    let thousands = n / 1000;
    if thousands > 0 {
        // "тысяча" is feminine: одна тысяча, две тысячи, пять тысяч.
        below_thousand(lang, thousands, Gender::Feminine, &mut out);
        out.push(num(lang, format!("thousand-{}", form_of(thousands))));
    }
    below_thousand(lang, n % 1000, gender, &mut out);
    Ok(out)
}

/// A number followed by a noun in the right form: `counted("ru", 5, Masculine,
/// "ruble")` → пять рублей. `stem` names `<lang>/unit/{stem}-{1,2,5}.wav`.
pub fn counted(lang: &str, n: u64, gender: Gender, stem: &str) -> Result<Vec<String>, SpeechError> {
    let mut out = cardinal(lang, n, gender)?;
    out.push(unit(lang, stem, n));
    Ok(out)
}

/// An amount of money given in kopecks: "N рублей M копеек"; the kopecks are left
/// out when there are none, the rubles when the amount is under one ruble.
pub fn amount_rub(lang: &str, kopecks: u64) -> Result<Vec<String>, SpeechError> {
    let rubles = kopecks / 100;
    let kop = kopecks % 100;
    let mut out = Vec::new();
    if rubles > 0 || kop == 0 {
        out.extend(counted(lang, rubles, Gender::Masculine, "ruble")?);
    }
    if kop > 0 {
        out.extend(counted(lang, kop, Gender::Feminine, "kopeck")?);
    }
    Ok(out)
}

/// A number of minutes: одна минута, две минуты, пять минут.
pub fn minutes(lang: &str, n: u64) -> Result<Vec<String>, SpeechError> {
    counted(lang, n, Gender::Feminine, "minute")
}

/// A number of hours: один час, два часа, пять часов.
pub fn hours(lang: &str, n: u64) -> Result<Vec<String>, SpeechError> {
    counted(lang, n, Gender::Masculine, "hour")
}

/// A duration in whole minutes, said as hours and minutes (90 → один час тридцать
/// минут).
pub fn duration_minutes(lang: &str, total: u64) -> Result<Vec<String>, SpeechError> {
    let (h, m) = (total / 60, total % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.extend(hours(lang, h)?);
    }
    if m > 0 || h == 0 {
        out.extend(minutes(lang, m)?);
    }
    Ok(out)
}

/// A time of day in the nominative, as after «Время восстановления:»: 18:30 →
/// восемнадцать часов тридцать минут; 18:00 → восемнадцать часов.
pub fn time_of_day(lang: &str, hour: u32, minute: u32) -> Result<Vec<String>, SpeechError> {
    if hour > 23 || minute > 59 {
        return Err(SpeechError::BadTime(hour, minute));
    }
    let mut out = hours(lang, u64::from(hour))?;
    if minute > 0 {
        out.extend(minutes(lang, u64::from(minute))?);
    }
    Ok(out)
}

/// A date in the nominative, as after «Время восстановления:»: 22 November →
/// двадцать второе ноября (the ordinal's tens are the cardinal's: двадцать,
/// тридцать). The year is never said: an outage ends within months.
pub fn date(lang: &str, day: u32, month: u32) -> Result<Vec<String>, SpeechError> {
    if !(1..=31).contains(&day) || !(1..=12).contains(&month) {
        return Err(SpeechError::BadDate(day, month));
    }
    let mut out = Vec::new();
    match day {
        21..=29 => out.extend([num(lang, 20), date_part(lang, format!("day-{}", day - 20))]),
        31 => out.extend([num(lang, 30), date_part(lang, "day-1")]),
        _ => out.push(date_part(lang, format!("day-{day}"))),
    }
    out.push(date_part(lang, format!("month-{month}")));
    Ok(out)
}

/// A moment said as people say it relative to `now`, in the city's time `zone`:
/// the time of day today, «завтра» and the time tomorrow, or the date and the time
/// («двадцать второе ноября восемнадцать часов»).
pub fn moment(
    lang: &str,
    at: chrono::DateTime<chrono::Utc>,
    zone: chrono_tz::Tz,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<String>, SpeechError> {
    use chrono::{Datelike, Timelike};
    let (at, today) = (
        at.with_timezone(&zone),
        now.with_timezone(&zone).date_naive(),
    );
    let day = at.date_naive();
    let mut out = Vec::new();
    if today.succ_opt() == Some(day) {
        out.push(tomorrow(lang));
    } else if day != today {
        out.extend(date(lang, at.day(), at.month())?);
    }
    out.extend(time_of_day(lang, at.hour(), at.minute())?);
    Ok(out)
}

/// «завтра», said before a time of day on the next day.
pub fn tomorrow(lang: &str) -> String {
    date_part(lang, "tomorrow")
}

fn date_part(lang: &str, name: impl std::fmt::Display) -> String {
    format!("{lang}/date/{name}.wav")
}

/// One group of digits as a dispatcher reads it: leading zeros one by one as
/// «ноль», the rest as a number (`"020"` → ноль двадцать).
fn digit_group(lang: &str, group: &str, out: &mut Vec<String>) -> Result<(), SpeechError> {
    let zeros = group.len() - group.trim_start_matches('0').len();
    let rest = group.get(zeros..).unwrap_or_default();
    for _ in 0..zeros {
        out.push(num(lang, 0));
    }
    if !rest.is_empty() {
        let n: u64 = rest
            .parse()
            .map_err(|_| SpeechError::NoDigits(group.to_owned()))?;
        out.extend(cardinal(lang, n, Gender::Masculine)?);
    }
    Ok(())
}

/// A telephone number as Russians say it. A Russian number (`+7`, `7` or `8` and ten
/// digits) is read from the trunk prefix 8, then the three-digit code, then the
/// subscriber number in groups of three, two and two, with a short pause between
/// groups: `+73432000001` → восемь, триста сорок три, двести, ноль ноль, ноль один.
/// Ten digits are the same without the 8. Anything else (short numbers, foreign
/// numbers) is read in groups as [`ticket_number`] does.
pub fn phone_number(lang: &str, text: &str) -> Result<Vec<String>, SpeechError> {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    let national = match digits.len() {
        11 if digits.starts_with('7') || digits.starts_with('8') => digits.get(1..),
        10 => Some(digits.as_str()),
        _ => None,
    };
    let Some(national) = national else {
        return ticket_number(lang, &digits).map_err(|_| SpeechError::NoDigits(text.to_owned()));
    };
    let mut out = Vec::new();
    if digits.len() == 11 {
        out.push(num(lang, 8));
    }
    let mut rest = national;
    for take in [3, 3, 2, 2] {
        let (group, tail) = rest.split_at(take.min(rest.len()));
        if !out.is_empty() {
            out.push(pause(lang));
        }
        digit_group(lang, group, &mut out)?;
        rest = tail;
    }
    Ok(out)
}

/// A ticket registration number read in digit groups, as a dispatcher would:
/// separators (`-`, space, `/`, `.`) keep the groups they mark; a run of digits is cut
/// into groups of three (two groups of two when one digit would be left alone). Each
/// group is said as a number; leading zeros are said as "ноль".
/// `"2024-0157"` → двадцать, двадцать четыре, ноль один, пятьдесят семь.
pub fn ticket_number(lang: &str, text: &str) -> Result<Vec<String>, SpeechError> {
    let mut out = Vec::new();
    let runs: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect();
    if runs.is_empty() {
        return Err(SpeechError::NoDigits(text.to_owned()));
    }
    for run in runs {
        for group in split_groups(run) {
            // At most three digits (split_groups): always in range.
            digit_group(lang, group, &mut out)?;
        }
    }
    Ok(out)
}

/// Every fragment the functions here can return for `lang`: what `check-config`
/// requires to exist.
pub fn fragments(lang: &str) -> Vec<String> {
    let mut out: Vec<String> = (0..20).map(|n| num(lang, n)).collect();
    out.extend((2..10).map(|t| num(lang, t * 10)));
    out.extend((1..10).map(|h| num(lang, h * 100)));
    out.extend(
        [
            "1f",
            "2f",
            "thousand-1",
            "thousand-2",
            "thousand-5",
            "pause",
        ]
        .map(|n| num(lang, n)),
    );
    for stem in UNITS {
        out.extend([1, 2, 5].map(|n| unit(lang, stem, n)));
    }
    out.extend(
        (1..=20)
            .chain([30])
            .map(|d| date_part(lang, format!("day-{d}"))),
    );
    out.extend((1..=12).map(|m| date_part(lang, format!("month-{m}"))));
    out.push(tomorrow(lang));
    out
}

fn split_groups(run: &str) -> Vec<&str> {
    let mut groups = Vec::new();
    let mut rest = run;
    while !rest.is_empty() {
        let take = match rest.len() {
            1..=3 => rest.len(),
            4 => 2,
            _ => 3,
        };
        let (g, r) = rest.split_at(take);
        groups.push(g);
        rest = r;
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders prompt names back to words, for readable assertions.
    fn words(names: &[String]) -> String {
        const ONES: [&str; 20] = [
            "ноль",
            "один",
            "два",
            "три",
            "четыре",
            "пять",
            "шесть",
            "семь",
            "восемь",
            "девять",
            "десять",
            "одиннадцать",
            "двенадцать",
            "тринадцать",
            "четырнадцать",
            "пятнадцать",
            "шестнадцать",
            "семнадцать",
            "восемнадцать",
            "девятнадцать",
        ];
        const TENS: [&str; 10] = [
            "",
            "",
            "двадцать",
            "тридцать",
            "сорок",
            "пятьдесят",
            "шестьдесят",
            "семьдесят",
            "восемьдесят",
            "девяносто",
        ];
        const HUNDREDS: [&str; 10] = [
            "",
            "сто",
            "двести",
            "триста",
            "четыреста",
            "пятьсот",
            "шестьсот",
            "семьсот",
            "восемьсот",
            "девятьсот",
        ];
        names
            .iter()
            .map(|n| {
                let stem = n
                    .trim_start_matches("ru/num/")
                    .trim_start_matches("ru/unit/")
                    .trim_start_matches("ru/date/")
                    .trim_end_matches(".wav");
                if stem == "pause" {
                    return ",".to_string();
                }
                if let Ok(v) = stem.parse::<usize>() {
                    return match v {
                        0..=19 => ONES[v],
                        20..=99 => TENS[v / 10],
                        _ => HUNDREDS[v / 100],
                    }
                    .to_string();
                }
                match stem {
                    "1f" => "одна",
                    "2f" => "две",
                    "thousand-1" => "тысяча",
                    "thousand-2" => "тысячи",
                    "thousand-5" => "тысяч",
                    "ruble-1" => "рубль",
                    "ruble-2" => "рубля",
                    "ruble-5" => "рублей",
                    "kopeck-1" => "копейка",
                    "kopeck-2" => "копейки",
                    "kopeck-5" => "копеек",
                    "minute-1" => "минута",
                    "minute-2" => "минуты",
                    "minute-5" => "минут",
                    "hour-1" => "час",
                    "hour-2" => "часа",
                    "hour-5" => "часов",
                    "day-1" => "первое",
                    "day-2" => "второе",
                    "day-3" => "третье",
                    "day-8" => "восьмое",
                    "day-20" => "двадцатое",
                    "day-30" => "тридцатое",
                    "month-1" => "января",
                    "month-11" => "ноября",
                    "month-12" => "декабря",
                    "tomorrow" => "завтра",
                    other => other,
                }
                .to_string()
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn plural_forms() {
        let cases = [
            (0, PluralForm::Many),
            (1, PluralForm::One),
            (2, PluralForm::Few),
            (5, PluralForm::Many),
            (11, PluralForm::Many),
            (12, PluralForm::Many),
            (14, PluralForm::Many),
            (21, PluralForm::One),
            (22, PluralForm::Few),
            (25, PluralForm::Many),
            (101, PluralForm::One),
            (111, PluralForm::Many),
            (1000, PluralForm::Many),
            (2000, PluralForm::Many),
            (21000, PluralForm::Many),
        ];
        for (n, f) in cases {
            assert_eq!(plural_form(n), f, "{n}");
        }
    }

    #[test]
    fn rubles() {
        let r = |k| words(&amount_rub("ru", k).unwrap());
        assert_eq!(r(100), "один рубль");
        assert_eq!(r(200), "два рубля");
        assert_eq!(r(500), "пять рублей");
        assert_eq!(r(1100), "одиннадцать рублей");
        assert_eq!(r(1200), "двенадцать рублей");
        assert_eq!(r(1400), "четырнадцать рублей");
        assert_eq!(r(2100), "двадцать один рубль");
        assert_eq!(r(2200), "двадцать два рубля");
        assert_eq!(r(2500), "двадцать пять рублей");
        assert_eq!(r(10100), "сто один рубль");
        assert_eq!(r(11100), "сто одиннадцать рублей");
        assert_eq!(r(100_000), "одна тысяча рублей");
        assert_eq!(r(200_000), "две тысячи рублей");
        assert_eq!(r(500_000), "пять тысяч рублей");
        assert_eq!(r(2_100_000), "двадцать одна тысяча рублей");
        assert_eq!(r(1_250_001), "двенадцать тысяч пятьсот рублей одна копейка");
        assert_eq!(r(102), "один рубль две копейки");
        assert_eq!(r(5), "пять копеек");
        assert_eq!(r(0), "ноль рублей");
    }

    #[test]
    fn kopecks_and_minutes_are_feminine() {
        let k = |n| words(&counted("ru", n, Gender::Feminine, "kopeck").unwrap());
        assert_eq!(k(1), "одна копейка");
        assert_eq!(k(2), "две копейки");
        assert_eq!(k(5), "пять копеек");
        assert_eq!(k(11), "одиннадцать копеек");
        assert_eq!(k(21), "двадцать одна копейка");
        assert_eq!(k(22), "двадцать две копейки");
        let m = |n| words(&minutes("ru", n).unwrap());
        assert_eq!(m(1), "одна минута");
        assert_eq!(m(2), "две минуты");
        assert_eq!(m(5), "пять минут");
        assert_eq!(m(12), "двенадцать минут");
        assert_eq!(m(14), "четырнадцать минут");
        assert_eq!(m(21), "двадцать одна минута");
        assert_eq!(m(22), "двадцать две минуты");
        assert_eq!(m(25), "двадцать пять минут");
    }

    #[test]
    fn hours_and_times() {
        let h = |n| words(&hours("ru", n).unwrap());
        assert_eq!(h(1), "один час");
        assert_eq!(h(2), "два часа");
        assert_eq!(h(5), "пять часов");
        assert_eq!(h(11), "одиннадцать часов");
        assert_eq!(h(21), "двадцать один час");
        assert_eq!(h(22), "двадцать два часа");
        assert_eq!(
            words(&time_of_day("ru", 18, 30).unwrap()),
            "восемнадцать часов тридцать минут"
        );
        assert_eq!(
            words(&time_of_day("ru", 21, 1).unwrap()),
            "двадцать один час одна минута"
        );
        assert_eq!(words(&time_of_day("ru", 0, 0).unwrap()), "ноль часов");
        assert_eq!(
            words(&duration_minutes("ru", 90).unwrap()),
            "один час тридцать минут"
        );
        assert_eq!(words(&duration_minutes("ru", 10).unwrap()), "десять минут");
        assert!(time_of_day("ru", 24, 0).is_err());
    }

    #[test]
    fn dates_as_ordinals_with_the_month() {
        let d = |day, month| words(&date("ru", day, month).unwrap());
        assert_eq!(d(1, 1), "первое января");
        assert_eq!(d(8, 12), "восьмое декабря");
        assert_eq!(d(20, 11), "двадцатое ноября");
        assert_eq!(d(22, 11), "двадцать второе ноября");
        assert_eq!(d(23, 1), "двадцать третье января");
        assert_eq!(d(30, 11), "тридцатое ноября");
        assert_eq!(d(31, 12), "тридцать первое декабря");
        assert_eq!(date("ru", 0, 5), Err(SpeechError::BadDate(0, 5)));
        assert_eq!(date("ru", 32, 5), Err(SpeechError::BadDate(32, 5)));
        assert_eq!(date("ru", 5, 13), Err(SpeechError::BadDate(5, 13)));
        assert_eq!(tomorrow("ru"), "ru/date/tomorrow.wav");
    }

    #[test]
    fn thousands() {
        let c = |n| words(&cardinal("ru", n, Gender::Masculine).unwrap());
        assert_eq!(c(1000), "одна тысяча");
        assert_eq!(c(2000), "две тысячи");
        assert_eq!(c(5000), "пять тысяч");
        assert_eq!(c(21000), "двадцать одна тысяча");
        assert_eq!(c(111_000), "сто одиннадцать тысяч");
        assert_eq!(c(999_999).split(' ').count(), 7);
        assert!(cardinal("ru", 1_000_000, Gender::Masculine).is_err());
    }

    #[test]
    fn ticket_numbers_in_groups() {
        let t = |s| words(&ticket_number("ru", s).unwrap());
        assert_eq!(
            t("2024-0157"),
            "двадцать двадцать четыре ноль один пятьдесят семь"
        );
        assert_eq!(t("12345"), "сто двадцать три сорок пять");
        assert_eq!(t("007"), "ноль ноль семь");
        assert_eq!(t("1000"), "десять ноль ноль");
        assert_eq!(t("123456"), "сто двадцать три четыреста пятьдесят шесть");
        assert!(ticket_number("ru", "--").is_err());
    }

    #[test]
    fn phone_numbers_as_russians_say_them() {
        let p = |s| words(&phone_number("ru", s).unwrap());
        assert_eq!(
            p("+73432000001"),
            "восемь , триста сорок три , двести , ноль ноль , ноль один"
        );
        assert_eq!(p("83432000001"), p("+73432000001"));
        assert_eq!(
            p("+79120450317"),
            "восемь , девятьсот двенадцать , ноль сорок пять , ноль три , семнадцать"
        );
        assert_eq!(
            p("4951000000"),
            "четыреста девяносто пять , сто , ноль ноль , ноль ноль"
        );
        assert_eq!(
            p("+7 (800) 555-35-35"),
            "восемь , восемьсот , пятьсот пятьдесят пять , тридцать пять , тридцать пять"
        );
        // Short and foreign numbers: digit groups.
        assert_eq!(p("112"), "сто двенадцать");
        assert_eq!(
            p("+49301234567"),
            words(&ticket_number("ru", "49301234567").unwrap())
        );
        assert!(phone_number("ru", "+").is_err());
    }

    #[test]
    fn every_fragment_is_listed_and_exists_on_disk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
        let listed: std::collections::BTreeSet<String> = fragments("ru").into_iter().collect();
        let mut names = Vec::new();
        for n in 0..=MAX {
            if n < 1000 || n % 1000 == 0 || n % 997 == 0 {
                names.extend(cardinal("ru", n, Gender::Masculine).unwrap());
                names.extend(cardinal("ru", n, Gender::Feminine).unwrap());
            }
        }
        for stem in UNITS {
            for n in [1, 2, 5] {
                names.extend(counted("ru", n, Gender::Masculine, stem).unwrap());
            }
        }
        names.extend(phone_number("ru", "+73432000001").unwrap());
        for month in 1..=12 {
            for day in 1..=31 {
                names.extend(date("ru", day, month).unwrap());
            }
        }
        names.push(tomorrow("ru"));
        names.sort();
        names.dedup();
        for n in &names {
            assert!(listed.contains(n), "{n} not in fragments()");
        }
        for n in &listed {
            assert!(dir.join(n).is_file(), "missing {n}");
        }
        assert_eq!(
            cardinal("ru-alt", 21, Gender::Feminine).unwrap(),
            ["ru-alt/num/20.wav", "ru-alt/num/1f.wav"]
        );
    }
}

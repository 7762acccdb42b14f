//! Saying numbers in Russian by joining prompt fragments from `ivr-prompts/ru/num/`
//! and `ivr-prompts/ru/unit/`.
//!
//! Owns the grammar: cardinal numbers 0–999 999 with gender agreement (одна/две for
//! feminine nouns: минута, копейка, тысяча), the three plural forms a counted noun
//! takes (1 рубль, 2–4 рубля, 5–20 рублей; 11–14 always the "many" form), amounts in
//! rubles and kopecks, durations in hours and minutes, times of day, and ticket
//! registration numbers read in digit groups. Every function returns prompt names for
//! a [`Playlist`](super::playback::Playlist); nothing here touches audio.

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
    /// A ticket number with no digits.
    #[error("ticket number `{0}` has no digits")]
    NoDigits(String),
}

/// The largest number [`cardinal`] says.
pub const MAX: u64 = 999_999;

const PREFIX: &str = "ru/";

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

fn num(name: impl std::fmt::Display) -> String {
    format!("{PREFIX}num/{name}.wav")
}

fn unit(stem: &str, n: u64) -> String {
    let form = match plural_form(n) {
        PluralForm::One => 1,
        PluralForm::Few => 2,
        PluralForm::Many => 5,
    };
    format!("{PREFIX}unit/{stem}-{form}.wav")
}

/// 1–999 into `out`, in `gender`.
fn below_thousand(n: u64, gender: Gender, out: &mut Vec<String>) {
    let hundreds = n / 100 * 100;
    let rest = n % 100;
    if hundreds > 0 {
        out.push(num(hundreds));
    }
    if rest == 0 {
        return;
    }
    if rest < 20 {
        out.push(small(rest, gender));
    } else {
        out.push(num(rest / 10 * 10));
        if rest % 10 > 0 {
            out.push(small(rest % 10, gender));
        }
    }
}

fn small(n: u64, gender: Gender) -> String {
    match (n, gender) {
        (1, Gender::Feminine) => num("1f"),
        (2, Gender::Feminine) => num("2f"),
        _ => num(n),
    }
}

/// A cardinal number, 0–999 999, agreeing with a noun of `gender`.
pub fn cardinal(n: u64, gender: Gender) -> Result<Vec<String>, SpeechError> {
    if n > MAX {
        return Err(SpeechError::OutOfRange(n));
    }
    let mut out = Vec::new();
    if n == 0 {
        out.push(num(0));
        return Ok(out);
    }
    let thousands = n / 1000;
    if thousands > 0 {
        // "тысяча" is feminine: одна тысяча, две тысячи, пять тысяч.
        below_thousand(thousands, Gender::Feminine, &mut out);
        out.push(unit_thousand(thousands));
    }
    below_thousand(n % 1000, gender, &mut out);
    Ok(out)
}

fn unit_thousand(n: u64) -> String {
    let form = match plural_form(n) {
        PluralForm::One => 1,
        PluralForm::Few => 2,
        PluralForm::Many => 5,
    };
    num(format!("thousand-{form}"))
}

/// A number followed by a noun in the right form: `counted(5, Masculine, "ruble")`
/// → пять рублей. `stem` names `ru/unit/{stem}-{1,2,5}.wav`.
pub fn counted(n: u64, gender: Gender, stem: &str) -> Result<Vec<String>, SpeechError> {
    let mut out = cardinal(n, gender)?;
    out.push(unit(stem, n));
    Ok(out)
}

/// An amount of money given in kopecks: "N рублей M копеек"; the kopecks are left
/// out when there are none, the rubles when the amount is under one ruble.
pub fn amount_rub(kopecks: u64) -> Result<Vec<String>, SpeechError> {
    let rubles = kopecks / 100;
    let kop = kopecks % 100;
    let mut out = Vec::new();
    if rubles > 0 || kop == 0 {
        out.extend(counted(rubles, Gender::Masculine, "ruble")?);
    }
    if kop > 0 {
        out.extend(counted(kop, Gender::Feminine, "kopeck")?);
    }
    Ok(out)
}

/// A number of minutes: одна минута, две минуты, пять минут.
pub fn minutes(n: u64) -> Result<Vec<String>, SpeechError> {
    counted(n, Gender::Feminine, "minute")
}

/// A number of hours: один час, два часа, пять часов.
pub fn hours(n: u64) -> Result<Vec<String>, SpeechError> {
    counted(n, Gender::Masculine, "hour")
}

/// A duration in whole minutes, said as hours and minutes (90 → один час тридцать
/// минут).
pub fn duration_minutes(total: u64) -> Result<Vec<String>, SpeechError> {
    let (h, m) = (total / 60, total % 60);
    let mut out = Vec::new();
    if h > 0 {
        out.extend(hours(h)?);
    }
    if m > 0 || h == 0 {
        out.extend(minutes(m)?);
    }
    Ok(out)
}

/// A time of day as announcements say it: 18:30 → восемнадцать часов тридцать
/// минут; 18:00 → восемнадцать часов.
pub fn time_of_day(hour: u32, minute: u32) -> Result<Vec<String>, SpeechError> {
    if hour > 23 || minute > 59 {
        return Err(SpeechError::BadTime(hour, minute));
    }
    let mut out = hours(u64::from(hour))?;
    if minute > 0 {
        out.extend(minutes(u64::from(minute))?);
    }
    Ok(out)
}

/// A ticket registration number read in digit groups, as a dispatcher would:
/// separators (`-`, space, `/`, `.`) keep the groups they mark; a run of digits is cut
/// into groups of three (two groups of two when one digit would be left alone). Each
/// group is said as a number; leading zeros are said as "ноль".
/// `"2024-0157"` → двадцать, двадцать четыре, ноль один, пятьдесят семь.
pub fn ticket_number(text: &str) -> Result<Vec<String>, SpeechError> {
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
            let zeros = group.len() - group.trim_start_matches('0').len();
            let rest = group.get(zeros..).unwrap_or_default();
            for _ in 0..zeros {
                out.push(num(0));
            }
            if !rest.is_empty() {
                // At most four digits (split_groups) — always in range.
                let n: u64 = rest.parse().unwrap_or(0);
                out.extend(cardinal(n, Gender::Masculine)?);
            }
        }
    }
    Ok(out)
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
                    .trim_end_matches(".wav");
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
        let r = |k| words(&amount_rub(k).unwrap());
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
        let k = |n| words(&counted(n, Gender::Feminine, "kopeck").unwrap());
        assert_eq!(k(1), "одна копейка");
        assert_eq!(k(2), "две копейки");
        assert_eq!(k(5), "пять копеек");
        assert_eq!(k(11), "одиннадцать копеек");
        assert_eq!(k(21), "двадцать одна копейка");
        assert_eq!(k(22), "двадцать две копейки");
        let m = |n| words(&minutes(n).unwrap());
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
        let h = |n| words(&hours(n).unwrap());
        assert_eq!(h(1), "один час");
        assert_eq!(h(2), "два часа");
        assert_eq!(h(5), "пять часов");
        assert_eq!(h(11), "одиннадцать часов");
        assert_eq!(h(21), "двадцать один час");
        assert_eq!(h(22), "двадцать два часа");
        assert_eq!(
            words(&time_of_day(18, 30).unwrap()),
            "восемнадцать часов тридцать минут"
        );
        assert_eq!(
            words(&time_of_day(21, 1).unwrap()),
            "двадцать один час одна минута"
        );
        assert_eq!(words(&time_of_day(0, 0).unwrap()), "ноль часов");
        assert_eq!(
            words(&duration_minutes(90).unwrap()),
            "один час тридцать минут"
        );
        assert_eq!(words(&duration_minutes(10).unwrap()), "десять минут");
        assert!(time_of_day(24, 0).is_err());
    }

    #[test]
    fn thousands() {
        let c = |n| words(&cardinal(n, Gender::Masculine).unwrap());
        assert_eq!(c(1000), "одна тысяча");
        assert_eq!(c(2000), "две тысячи");
        assert_eq!(c(5000), "пять тысяч");
        assert_eq!(c(21000), "двадцать одна тысяча");
        assert_eq!(c(111_000), "сто одиннадцать тысяч");
        assert_eq!(c(999_999).split(' ').count(), 7);
        assert!(cardinal(1_000_000, Gender::Masculine).is_err());
    }

    #[test]
    fn ticket_numbers_in_groups() {
        let t = |s| words(&ticket_number(s).unwrap());
        assert_eq!(
            t("2024-0157"),
            "двадцать двадцать четыре ноль один пятьдесят семь"
        );
        assert_eq!(t("12345"), "сто двадцать три сорок пять");
        assert_eq!(t("007"), "ноль ноль семь");
        assert_eq!(t("1000"), "десять ноль ноль");
        assert_eq!(t("123456"), "сто двадцать три четыреста пятьдесят шесть");
        assert!(ticket_number("--").is_err());
    }

    #[test]
    fn every_fragment_exists_on_disk() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
        let mut names = Vec::new();
        for n in 0..=MAX {
            if n < 1000 || n % 1000 == 0 || n % 997 == 0 {
                names.extend(cardinal(n, Gender::Masculine).unwrap());
                names.extend(cardinal(n, Gender::Feminine).unwrap());
            }
        }
        for stem in ["ruble", "kopeck", "minute", "hour"] {
            for n in [1, 2, 5] {
                names.extend(counted(n, Gender::Masculine, stem).unwrap());
            }
        }
        names.sort();
        names.dedup();
        for n in names {
            assert!(dir.join(&n).is_file(), "missing {n}");
        }
    }
}

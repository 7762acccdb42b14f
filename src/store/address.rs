//! How addresses are compared.
//!
//! Tenants write one house many ways: `ул. Ленина, д. 5`, `Ленина 5`, `улица Ленина,
//! дом 5`, `г. Екатеринбург, ул. Ленина, 5`. [`address_key`] reduces each to the same
//! key (`ленина 5`): case and `ё` are folded, punctuation is dropped, the city prefix
//! and street-type words and abbreviations (улица, ул., проспект, пр-т, переулок, дом,
//! д., ...) are removed, and everything from the first number on is joined, so
//! `5 к 2`, `5, корп. 2` and `5к2` agree. The key is stored with each house; imports
//! match rows to houses by it. Two streets differing only by type (`ул. Ленина` and
//! `пер. Ленина`) share a key; within one tenant's list that is rare enough to accept.

/// Street-type words and house-part words that carry no identity.
const NOISE: &[&str] = &[
    "ул",
    "улица",
    "пр",
    "просп",
    "проспект",
    "пркт",
    "прт",
    "пер",
    "переулок",
    "бул",
    "бульвар",
    "бр",
    "ш",
    "шоссе",
    "пл",
    "площадь",
    "наб",
    "набережная",
    "пр-д",
    "проезд",
    "мкр",
    "микрорайон",
    "тракт",
    "д",
    "дом",
];

/// Words that start the apartment part, which is not part of a house's address.
const APARTMENT: &[&str] = &["кв", "квартира", "оф", "офис"];

/// The comparison key of an address (see the module doc).
pub fn address_key(address: &str) -> String {
    let (street, house) = split_address(address);
    let mut key = street.join(" ");
    if !house.is_empty() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(&join_house_parts(&house));
    }
    key
}

/// An address as it is said: the street's words (type words dropped, folded as
/// in the key: `ленина`, `8 марта`) and the house part (`5`, `5к2`, `12/1`,
/// `5а`), when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpokenAddress {
    /// The street's words.
    pub street: String,
    /// The house number and its parts, joined as in the key.
    pub house: Option<String>,
}

/// The street and the house of an address (see [`SpokenAddress`]).
pub fn spoken_address(address: &str) -> SpokenAddress {
    let (street, house) = split_address(address);
    SpokenAddress {
        street: street.join(" "),
        house: (!house.is_empty()).then(|| join_house_parts(&house)),
    }
}

/// The address's words without noise, split at the first number: the street's
/// words and the house's parts.
fn split_address(address: &str) -> (Vec<String>, Vec<String>) {
    let folded = address
        .to_lowercase()
        .replace('ё', "е")
        .replace("пр-кт", "пркт")
        .replace("пр-т", "прт")
        .replace("б-р", "бр");
    let mut words: Vec<String> = Vec::new();
    let mut skip_next = false;
    for token in folded
        .split(|c: char| !(c.is_alphanumeric() || c == '/'))
        .filter(|t| !t.is_empty())
    {
        if skip_next {
            skip_next = false;
            continue;
        }
        match token {
            "г" | "город" => skip_next = true,
            "корпус" | "корп" => words.push("к".to_owned()),
            "строение" | "стр" => words.push("с".to_owned()),
            t if APARTMENT.contains(&t) => break,
            t if NOISE.contains(&t) => {}
            t => words.push(t.to_owned()),
        }
    }
    let first_number = words
        .iter()
        .position(|w| w.starts_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(words.len());
    let house = words.split_off(first_number);
    (words, house)
}

/// Joins the house part: letters and the `к`/`с` markers attach to the number before
/// them (`5 а` → `5а`, `5 к 2` → `5к2`), but a number after a number stays apart.
fn join_house_parts(parts: &[String]) -> String {
    let mut out = String::new();
    for part in parts {
        let after_digit = out.ends_with(|c: char| c.is_ascii_digit());
        if after_digit && part.starts_with(|c: char| c.is_ascii_digit()) {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}

/// Words that may stand before an apartment's number and carry no identity.
const APARTMENT_PREFIXES: &[&str] = &["квартира", "кв", "офис", "оф", "помещение", "пом"];

/// The longest apartment accepted, in characters.
pub const MAX_APARTMENT_CHARS: usize = 16;

/// The comparison (and stored) form of an apartment: case and `ё` folded, a leading
/// `кв.`/`квартира`/`оф.` word dropped (only as a whole word: `квартал` is kept),
/// spaces, dots, commas and `№` removed. Empty means none. Longer than
/// [`MAX_APARTMENT_CHARS`] is an error.
pub fn apartment_key(raw: &str) -> Result<String, String> {
    let folded = raw.trim().to_lowercase().replace('ё', "е");
    let mut rest = folded.as_str();
    for prefix in APARTMENT_PREFIXES {
        if let Some(after) = rest.strip_prefix(prefix) {
            // A prefix word ends at a non-letter: `кв.12`, `кв 12`, `квартира12`.
            if !after.starts_with(char::is_alphabetic) {
                rest = after;
                break;
            }
        }
    }
    let key: String = rest
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '.' | ',' | '№' | '#')))
        .collect();
    if key.chars().count() > MAX_APARTMENT_CHARS {
        return Err(format!("longer than {MAX_APARTMENT_CHARS} characters"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::{address_key, apartment_key};

    #[test]
    fn the_ways_tenants_write_one_house_agree() {
        let want = "ленина 5";
        for written in [
            "ул. Ленина, д. 5",
            "Ленина 5",
            "улица Ленина, дом 5",
            "г. Екатеринбург, ул. Ленина, 5",
            "  УЛ ЛЕНИНА  д.5 ",
            "Ленина, 5, кв. 12",
        ] {
            assert_eq!(address_key(written), want, "{written}");
        }
    }

    #[test]
    fn house_parts_are_joined() {
        assert_eq!(address_key("ул. Ленина, д. 5, корп. 2"), "ленина 5к2");
        assert_eq!(address_key("Ленина 5к2"), "ленина 5к2");
        assert_eq!(address_key("Ленина 5 а"), "ленина 5а");
        assert_eq!(address_key("Ленина 5/1"), "ленина 5/1");
        assert_eq!(address_key("пр-т Космонавтов, 18"), "космонавтов 18");
        assert_eq!(address_key("ул. Чкалова, д. 3, стр. 1"), "чкалова 3с1");
    }

    #[test]
    fn yo_and_numbers_in_street_names() {
        assert_eq!(address_key("ул. Щорса, 7"), address_key("Щорса д 7"));
        assert_eq!(address_key("ул. 8 Марта, д. 12"), address_key("8 марта 12"));
        assert_eq!(address_key("Берёзовая 1"), "березовая 1");
    }

    #[test]
    fn different_houses_differ() {
        assert_ne!(address_key("Ленина 5"), address_key("Ленина 7"));
        assert_ne!(address_key("Ленина 5"), address_key("Мира 5"));
    }

    #[test]
    fn two_numbers_in_a_row_do_not_run_together() {
        assert_eq!(address_key("Ленина 5, 1"), "ленина 5 1");
        assert_ne!(address_key("Ленина 5, 1"), address_key("Ленина 51"));
        assert_ne!(address_key("Ленина 5 1"), address_key("Ленина 51"));
        // The korpus and stroenie forms still agree with each other.
        for written in [
            "Ленина 5к1",
            "Ленина 5 к 1",
            "Ленина 5 корп 1",
            "ул. Ленина, д. 5, корпус 1",
            "Ленина 5к 1",
        ] {
            assert_eq!(address_key(written), "ленина 5к1", "{written}");
        }
        assert_eq!(address_key("Ленина 5 стр 2"), address_key("Ленина 5с2"));
        assert_eq!(address_key("Ленина 5 / 1"), address_key("Ленина 5/1"));
        assert_eq!(address_key("ул. 8 Марта, д. 12"), "8марта12");
        assert_ne!(address_key("8 Марта 1, 2"), address_key("8 Марта 12"));
    }

    #[test]
    fn apartments_as_people_write_them() {
        for written in [
            "12",
            "кв. 12",
            "кв.12",
            "кв 12",
            "Кв. 12",
            "КВ.12",
            "квартира 12",
            "Квартира12",
            " № 12 ",
        ] {
            assert_eq!(apartment_key(written).as_deref(), Ok("12"), "{written}");
        }
        assert_eq!(apartment_key("12А").as_deref(), Ok("12а"));
        assert_eq!(apartment_key("кв. 12 а").as_deref(), Ok("12а"));
        assert_eq!(apartment_key("офис 3").as_deref(), Ok("3"));
        assert_eq!(apartment_key("12/1").as_deref(), Ok("12/1"));
        // Only whole prefix words go: "квартал" is not "кв" + "артал".
        assert_eq!(apartment_key("квартал 2").as_deref(), Ok("квартал2"));
        assert_eq!(apartment_key("").as_deref(), Ok(""));
        assert_eq!(apartment_key("кв.").as_deref(), Ok(""));
        assert!(apartment_key(&"1".repeat(17)).is_err());
    }
}

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
    let (street, house) = words.split_at(first_number);
    let mut key = street.join(" ");
    if !house.is_empty() {
        if !key.is_empty() {
            key.push(' ');
        }
        key.push_str(&house.concat());
    }
    key
}

#[cfg(test)]
mod tests {
    use super::address_key;

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
}

//! What the informer says about a ticket, as prompt names.
//!
//! Owns the message of the robot call (CHAINS.md, "What the person hears"): the
//! company, "you are handed an emergency ticket number", the registration number
//! in digit groups, the work type, the address (the street from its own prompt,
//! «дом» and the house number read out), and the deadline as people say it in the
//! city's time. A part the prompts cannot say is left out, never said wrong: a
//! street without a prompt, a house number with a letter the prompts have no word
//! for. When the address cannot be said, the message says so and the informer
//! stresses "0 for the dispatcher" ([`Message::address_unsaid`]).
//!
//! Prompts for names are found by file name under the language folder:
//! `tenant/<code>.wav` (the company's name), `work/<work type code>.wav` and
//! `street/<street>.wav`, the street transliterated to ASCII ([`street_prompt`]):
//! `ул. Ленина` → `street/lenina.wav`, `проспект Космонавтов` →
//! `street/kosmonavtov.wav`. Pure: which prompts exist is asked of the caller.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::media::speech::{self, Gender};
use crate::store::Category;
use crate::store::address::spoken_address;

/// What the message is built from.
#[derive(Debug, Clone, Copy)]
pub struct Ticket<'a> {
    /// The tenant's code.
    pub tenant: &'a str,
    /// The registration number.
    pub number: &'a str,
    /// The category (the message names emergency, planned and paid tickets).
    pub category: Category,
    /// The reason's work type code.
    pub work_type: &'a str,
    /// The house's address as stored.
    pub address: &'a str,
    /// The deadline.
    pub deadline: DateTime<Utc>,
    /// The city's time zone.
    pub zone: Tz,
}

/// The informer's message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Prompt names, in order.
    pub items: Vec<String>,
    /// The address could not be said.
    pub address_unsaid: bool,
}

/// Every fixed prompt the informer may play (for `check-config` and the prompt
/// check at start).
pub fn fixed_prompts(lang: &str) -> Vec<String> {
    [
        "informer-ticket",
        "informer-ticket-planned",
        "informer-ticket-paid",
        "informer-address",
        "informer-address-ask",
        "informer-deadline",
        "informer-accept",
        "informer-decline",
        "informer-operator",
        "informer-accepted",
        "informer-declined",
        "informer-taken",
        "unit/house",
        "unit/building",
        "unit/slash",
    ]
    .iter()
    .map(|p| format!("{lang}/{p}.wav"))
    .collect()
}

/// The message for `ticket` at `now`; `has` says whether a prompt exists.
pub fn informer(
    lang: &str,
    ticket: &Ticket<'_>,
    now: DateTime<Utc>,
    has: &dyn Fn(&str) -> bool,
) -> Message {
    let p = |name: &str| format!("{lang}/{name}.wav");
    let mut items = Vec::new();
    let company = p(&format!("tenant/{}", file_safe(ticket.tenant)));
    if has(&company) {
        items.push(company);
    }
    items.push(p(match ticket.category {
        Category::Planned => "informer-ticket-planned",
        Category::Paid => "informer-ticket-paid",
        _ => "informer-ticket",
    }));
    if let Ok(number) = speech::ticket_number(lang, ticket.number) {
        items.extend(number);
    }
    let work = p(&format!("work/{}", file_safe(ticket.work_type)));
    if has(&work) {
        items.push(work);
    }
    let address = address(lang, ticket.address, has);
    let address_unsaid = address.is_none();
    if let Some(said) = address {
        items.push(p("informer-address"));
        items.extend(said);
    }
    if let Ok(when) = speech::moment(lang, ticket.deadline, ticket.zone, now) {
        items.push(p("informer-deadline"));
        items.extend(when);
    }
    Message {
        items,
        address_unsaid,
    }
}

/// The street and house as prompts, or `None` when any part cannot be said.
fn address(lang: &str, text: &str, has: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let parts = spoken_address(text);
    if parts.street.is_empty() {
        return None;
    }
    let street = format!("{lang}/{}", street_prompt(&parts.street));
    if !has(&street) {
        return None;
    }
    let mut out = vec![street];
    if let Some(house) = parts.house {
        out.push(format!("{lang}/unit/house.wav"));
        out.extend(house_number(lang, &house)?);
    }
    Some(out)
}

/// A house number as prompts: `5`, `5к2` (корпус), `12/1` (дробь), `5с1`
/// (строение is not said: `None`), `5а` (a letter: `None`).
fn house_number(lang: &str, house: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut digits = String::new();
    let flush = |digits: &mut String, out: &mut Vec<String>| -> Option<()> {
        if digits.is_empty() {
            return Some(());
        }
        let n: u64 = digits.parse().ok()?;
        out.extend(speech::cardinal(lang, n, Gender::Masculine).ok()?);
        digits.clear();
        Some(())
    };
    for c in house.chars() {
        match c {
            '0'..='9' => digits.push(c),
            'к' => {
                flush(&mut digits, &mut out)?;
                out.push(format!("{lang}/unit/building.wav"));
            }
            '/' => {
                flush(&mut digits, &mut out)?;
                out.push(format!("{lang}/unit/slash.wav"));
            }
            ' ' => flush(&mut digits, &mut out)?,
            _ => return None,
        }
    }
    flush(&mut digits, &mut out)?;
    (!out.is_empty()).then_some(out)
}

/// The prompt file of a street, relative to the language folder:
/// `street/<transliterated words joined by ->.wav`.
pub fn street_prompt(street: &str) -> String {
    format!("street/{}.wav", file_safe(street))
}

/// A name as a file name: Cyrillic transliterated, lower case ASCII letters and
/// digits, words joined by `-`.
pub fn file_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.to_lowercase().chars() {
        let t: &str = match c {
            'а' => "a",
            'б' => "b",
            'в' => "v",
            'г' => "g",
            'д' => "d",
            'е' | 'ё' | 'э' => "e",
            'ж' => "zh",
            'з' => "z",
            'и' => "i",
            'й' | 'ы' => "y",
            'к' => "k",
            'л' => "l",
            'м' => "m",
            'н' => "n",
            'о' => "o",
            'п' => "p",
            'р' => "r",
            'с' => "s",
            'т' => "t",
            'у' => "u",
            'ф' => "f",
            'х' => "kh",
            'ц' => "ts",
            'ч' => "ch",
            'ш' => "sh",
            'щ' => "shch",
            'ъ' | 'ь' => "",
            'ю' => "yu",
            'я' => "ya",
            c if c.is_ascii_alphanumeric() => {
                out.push(c);
                continue;
            }
            _ => "-",
        };
        out.push_str(t);
    }
    let mut joined = String::with_capacity(out.len());
    for part in out.split('-').filter(|p| !p.is_empty()) {
        if !joined.is_empty() {
            joined.push('-');
        }
        joined.push_str(part);
    }
    joined
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn ticket(address: &'static str) -> Ticket<'static> {
        Ticket {
            tenant: "etalon",
            number: "1042",
            category: Category::Emergency,
            work_type: "plumbing",
            address,
            // 13:30 UTC is 18:30 in Yekaterinburg.
            deadline: Utc.with_ymd_and_hms(2026, 11, 17, 13, 30, 0).unwrap(),
            zone: chrono_tz::Asia::Yekaterinburg,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 10, 0, 0).unwrap()
    }

    #[test]
    fn names_become_file_names() {
        assert_eq!(street_prompt("ленина"), "street/lenina.wav");
        assert_eq!(street_prompt("малышева"), "street/malysheva.wav");
        assert_eq!(file_safe("Сибирский тракт"), "sibirskiy-trakt");
        assert_eq!(file_safe("8 марта"), "8-marta");
        assert_eq!(file_safe("hot_water"), "hot-water");
    }

    #[test]
    fn the_whole_message_when_every_prompt_is_there() {
        let m = informer("ru", &ticket("ул. Ленина, д. 5к2"), now(), &|_| true);
        assert!(!m.address_unsaid);
        let at = |name: &str| m.items.iter().position(|i| i == name).unwrap();
        assert_eq!(m.items[0], "ru/tenant/etalon.wav");
        assert!(at("ru/informer-ticket.wav") < at("ru/work/plumbing.wav"));
        let street = at("ru/street/lenina.wav");
        assert_eq!(m.items[street - 1], "ru/informer-address.wav");
        assert_eq!(m.items[street + 1], "ru/unit/house.wav");
        assert_eq!(m.items[street + 2], "ru/num/5.wav");
        assert_eq!(m.items[street + 3], "ru/unit/building.wav");
        assert_eq!(m.items[street + 4], "ru/num/2.wav");
        let deadline = at("ru/informer-deadline.wav");
        assert_eq!(m.items[deadline + 1], "ru/num/18.wav", "18:30 local time");
    }

    #[test]
    fn a_street_without_its_prompt_is_left_out_and_said_so() {
        let m = informer("ru", &ticket("ул. Ленина, д. 5"), now(), &|p| {
            !p.contains("street/")
        });
        assert!(m.address_unsaid);
        assert!(!m.items.iter().any(|i| i.contains("informer-address")));
        // A house number with a letter is not read as a bare number either.
        let m = informer("ru", &ticket("ул. Ленина, д. 5а"), now(), &|_| {
            true
        });
        assert!(m.address_unsaid);
        assert!(!m.items.iter().any(|i| i.contains("street/")));
        // Nor is a street named by a number.
        let m = informer("ru", &ticket("ул. 8 Марта, 12"), now(), &|_| true);
        assert!(m.address_unsaid);
    }

    #[test]
    fn a_deadline_tomorrow_says_so() {
        let mut t = ticket("ул. Ленина, 5");
        t.deadline = Utc.with_ymd_and_hms(2026, 11, 18, 4, 0, 0).unwrap();
        let m = informer("ru", &t, now(), &|_| true);
        let deadline = m
            .items
            .iter()
            .position(|i| i == "ru/informer-deadline.wav")
            .unwrap();
        assert_eq!(m.items[deadline + 1], "ru/date/tomorrow.wav");
    }

    #[test]
    fn house_numbers_with_a_slash_are_read_out() {
        assert_eq!(
            house_number("ru", "12/1").unwrap(),
            ["ru/num/12.wav", "ru/unit/slash.wav", "ru/num/1.wav"]
        );
        assert_eq!(house_number("ru", "5с1"), None);
    }
}

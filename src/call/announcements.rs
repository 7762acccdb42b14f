//! What a caller hears before reaching the queue, as prompt names.
//!
//! Owns the order (greeting, then every outage at the caller's house, then the debt
//! at the caller's address, DESIGN.md "The domain") and how each notice is spoken
//! from fragments: an outage says its kind and until when in the city's time zone;
//! a debt says the amount in rubles and kopecks. Pure functions: the flows turn the
//! result into a playlist.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::{Config, Number, NumberKind};
use crate::media::speech;
use crate::phone::PhoneNumber;
use crate::store::CallerInfo;

/// A prompt under the configured language folder.
pub(crate) fn prompt(config: &Config, name: &str) -> String {
    format!("{}/{name}.wav", config.media.language)
}

/// The greeting for a number: its own prompt, or the generic citywide one.
pub(crate) fn greeting(config: &Config, number: &Number) -> Vec<String> {
    match &number.greeting {
        Some(g) => vec![g.clone()],
        None if number.kind == NumberKind::Citywide => {
            vec![config.prompts.citywide_greeting.clone()]
        }
        None => Vec::new(),
    }
}

fn outage_kind_prompt(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "hot_water" => "outage-hot-water",
        "cold_water" => "outage-cold-water",
        "heating" => "outage-heating",
        "electricity" => "outage-electricity",
        "gas" => "outage-gas",
        "lift" => "outage-lift",
        _ => return None,
    })
}

/// Outage and debt notices for a caller whose address is known.
pub(crate) fn notices(config: &Config, info: &CallerInfo, zone: Option<Tz>) -> Vec<String> {
    let mut out = Vec::new();
    for outage in &info.outages {
        out.push(prompt(config, "outage-intro"));
        if let Some(kind) = outage_kind_prompt(&outage.kind) {
            out.push(prompt(config, kind));
        }
        if let Ok(until) = time_of_day(outage.until, zone) {
            out.push(prompt(config, "outage-until"));
            out.extend(until);
        }
    }
    if let Some(debt) = &info.debtor {
        if let Ok(amount) = u64::try_from(debt.amount_kopecks)
            .map_err(|_| ())
            .and_then(|k| speech::amount_rub(k).map_err(|_| ()))
        {
            out.push(prompt(config, "debt-intro"));
            out.extend(amount);
            out.push(prompt(config, "debt-outro"));
        }
    }
    out
}

fn time_of_day(at: DateTime<Utc>, zone: Option<Tz>) -> Result<Vec<String>, speech::SpeechError> {
    let (h, m) = match zone {
        Some(z) => {
            let local = at.with_timezone(&z);
            (local.hour(), local.minute())
        }
        None => (at.hour(), at.minute()),
    };
    speech::time_of_day(h, m)
}

/// "The number has changed, please call N" and goodbye.
pub(crate) fn number_changed(config: &Config, new_number: Option<&PhoneNumber>) -> Vec<String> {
    let mut out = vec![config.prompts.number_changed.clone()];
    if let Some(n) = new_number {
        let digits: String = n.as_str().chars().filter(char::is_ascii_digit).collect();
        if let Ok(spoken) = speech::ticket_number(&digits) {
            out.extend(spoken);
        }
    }
    out.push(prompt(config, "goodbye"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ActiveOutage, DebtorFlag};

    #[test]
    fn outage_then_debt_in_the_city_zone() {
        let config = Config::empty();
        let mut info = CallerInfo {
            phone: PhoneNumber::parse("+79120000001").unwrap(),
            tenant: None,
            city: Some("ekb".into()),
            address: None,
            other_addresses: Vec::new(),
            open_tickets: Vec::new(),
            debtor: None,
            outages: Vec::new(),
            staff: None,
        };
        info.outages.push(ActiveOutage {
            id: crate::store::OutageId(1),
            kind: "hot_water".into(),
            text: "нет горячей воды".into(),
            until: "2026-11-22T13:00:00Z".parse().unwrap(),
        });
        info.debtor = Some(DebtorFlag {
            amount_kopecks: 1_543_210,
            valid_until: "2026-12-01".parse().unwrap(),
        });
        let said = notices(&config, &info, Some(chrono_tz::Asia::Yekaterinburg));
        assert_eq!(said[0], "ru/outage-intro.wav");
        assert_eq!(said[1], "ru/outage-hot-water.wav");
        assert_eq!(said[2], "ru/outage-until.wav");
        // 13:00 UTC is 18:00 in Yekaterinburg.
        assert!(said[3].contains("18"), "{said:?}");
        let debt = said.iter().position(|p| p == "ru/debt-intro.wav").unwrap();
        assert!(
            said[debt + 1..].iter().any(|p| p.contains("ruble")),
            "{said:?}"
        );
        assert_eq!(said.last().map(String::as_str), Some("ru/debt-outro.wav"));
    }

    #[test]
    fn legacy_number_says_the_new_number() {
        let config = Config::empty();
        let said = number_changed(&config, PhoneNumber::parse("+73432000001").ok().as_ref());
        assert_eq!(
            said.first().map(String::as_str),
            Some("ru/number-changed.wav")
        );
        assert_eq!(said.last().map(String::as_str), Some("ru/goodbye.wav"));
        assert!(said.len() > 4);
    }
}

//! What a caller hears before reaching the queue, as prompt names.
//!
//! Owns the order (greeting, then every outage at the caller's house, then the debt
//! at the caller's address, DESIGN.md "The domain"), how each notice is spoken from
//! fragments, and the list of prompts the call layer plays by fixed name
//! (`fixed_prompts`, which `check-config` and `serve` require to exist).
//!
//! The wording is chosen so every number that follows a phrase stands in the
//! nominative, the only case the number fragments exist in:
//!
//! - an outage: «Внимание! В вашем доме» + «отключена горячая вода» +
//!   «Время восстановления:» + «восемнадцать часов тридцать минут» (in the city's
//!   time zone; not «до восемнадцати часов», which needs the genitive), with
//!   «завтра» before the time when that is tomorrow there, and the date
//!   («двадцать второе ноября, ...») when it is later or earlier;
//! - a debt: «По вашему адресу числится задолженность. Сумма задолженности:» +
//!   «одна тысяча двести рублей пятьдесят копеек» + «Пожалуйста, оплатите
//!   задолженность.»;
//! - a legacy number: «Номер ... изменился. Пожалуйста, звоните по номеру» + the new
//!   number as a telephone number («восемь, триста сорок три, двести, ноль ноль,
//!   ноль один»), then goodbye.
//!
//! Pure functions: the flows turn the result into a playlist.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::config::{Config, Number, NumberKind};
use crate::media::speech;
use crate::phone::PhoneNumber;
use crate::store::CallerInfo;

/// A prompt under the configured language folder.
pub(crate) fn prompt(config: &Config, name: &str) -> String {
    format!("{}/{name}.wav", config.media.language)
}

/// The prompts the call layer plays by fixed name (not named in the configuration),
/// under the configured language folder: outage and debt parts, the IVR's own
/// phrases, and every number fragment [`speech`] can join.
pub(crate) fn fixed_prompts(config: &Config) -> Vec<String> {
    let mut names: Vec<&str> = vec![
        "outage-intro",
        "outage-restored-at",
        "debt-intro",
        "debt-outro",
        "goodbye",
        "invalid-choice",
        "connecting",
        // Follow-up calls (`outbound::robot`, and the staff callback's greeting).
        "survey-intro",
        "survey-rate",
        "survey-opt-out",
        "survey-effort",
        "survey-thanks",
        "survey-opted-out",
        "status-check-intro",
        "status-check-menu",
        "status-check-thanks",
        "broadcast-intro",
        "staff-callback-intro",
    ];
    names.extend(OUTAGE_KINDS.iter().map(|(_, p)| *p));
    let mut out: Vec<String> = names.into_iter().map(|n| prompt(config, n)).collect();
    out.extend(speech::fragments(&config.media.language));
    // The informer's own phrases (names of companies, work types and streets are
    // optional: the message leaves out what has no prompt).
    out.extend(crate::dialer::message::fixed_prompts(
        &config.media.language,
    ));
    out
}

/// Outage kinds (the store's codes) and the prompt that names each.
const OUTAGE_KINDS: [(&str, &str); 6] = [
    ("hot_water", "outage-hot-water"),
    ("cold_water", "outage-cold-water"),
    ("heating", "outage-heating"),
    ("electricity", "outage-electricity"),
    ("gas", "outage-gas"),
    ("lift", "outage-lift"),
];

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
    OUTAGE_KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
}

/// Outage and debt notices for a caller whose address is known, calling at `now`.
pub(crate) fn notices(
    config: &Config,
    info: &CallerInfo,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let lang = config.media.language.as_str();
    let mut out = Vec::new();
    for outage in &info.outages {
        out.extend(outage_notice_in(
            config,
            &outage.kind,
            outage.until,
            zone,
            now,
        ));
    }
    if let Some(debt) = &info.debtor {
        if let Ok(amount) = u64::try_from(debt.amount_kopecks)
            .map_err(|_| ())
            .and_then(|k| speech::amount_rub(lang, k).map_err(|_| ()))
        {
            out.push(prompt(config, "debt-intro"));
            out.extend(amount);
            out.push(prompt(config, "debt-outro"));
        }
    }
    out
}

/// The notice of one outage as callers at the house hear it (and a broadcast
/// plays): «Внимание! В вашем доме» + what is off + «Время восстановления:» + when.
pub(crate) fn outage_notice(
    config: &Config,
    kind: &str,
    until: DateTime<Utc>,
    zone: Tz,
    now: DateTime<Utc>,
) -> Vec<String> {
    outage_notice_in(config, kind, until, Some(zone), now)
}

fn outage_notice_in(
    config: &Config,
    kind: &str,
    until: DateTime<Utc>,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> Vec<String> {
    let lang = config.media.language.as_str();
    let mut out = vec![prompt(config, "outage-intro")];
    if let Some(kind) = outage_kind_prompt(kind) {
        out.push(prompt(config, kind));
    }
    if let Ok(until) = restore_time(lang, until, zone, now) {
        out.push(prompt(config, "outage-restored-at"));
        out.extend(until);
    }
    out
}

fn restore_time(
    lang: &str,
    at: DateTime<Utc>,
    zone: Option<Tz>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, speech::SpeechError> {
    speech::moment(lang, at, zone.unwrap_or(chrono_tz::UTC), now)
}

/// "The number has changed, please call N" and goodbye; N is read as a telephone
/// number.
pub(crate) fn number_changed(config: &Config, new_number: Option<&PhoneNumber>) -> Vec<String> {
    let mut out = vec![config.prompts.number_changed.clone()];
    if let Some(n) = new_number {
        if let Ok(spoken) = speech::phone_number(&config.media.language, n.as_str()) {
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

    fn caller() -> CallerInfo {
        CallerInfo {
            phone: PhoneNumber::parse("+79120000001").unwrap(),
            tenant: None,
            city: Some("ekb".into()),
            address: None,
            other_addresses: Vec::new(),
            open_tickets: Vec::new(),
            debtor: None,
            outages: Vec::new(),
            staff: None,
        }
    }

    /// 13:00 on 22 November 2026 in Yekaterinburg (UTC+5), when the tests call.
    fn morning() -> DateTime<Utc> {
        "2026-11-22T08:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_restore_time_on_another_day_says_which_day() {
        let config = Config::empty();
        let ekb = Some(chrono_tz::Asia::Yekaterinburg);
        let said_for = |until: &str| {
            let mut info = caller();
            info.outages.push(ActiveOutage {
                id: crate::store::OutageId(1),
                kind: "heating".into(),
                text: "отопление".into(),
                until: until.parse().unwrap(),
            });
            let said = notices(&config, &info, ekb, morning());
            stems(&said)[3..]
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        // 20:30 UTC is 01:30 on the 23rd in Yekaterinburg: «завтра, один час
        // тридцать минут», though it is still the 22nd in UTC.
        assert_eq!(
            said_for("2026-11-22T20:30:00Z"),
            ["tomorrow", "1", "hour-1", "30", "minute-5"]
        );
        // «двадцать пятое ноября, десять часов».
        assert_eq!(
            said_for("2026-11-25T05:00:00Z"),
            ["20", "day-5", "month-11", "10", "hour-5"]
        );
        // Past the end of the month and the year: «первое января, ноль часов».
        assert_eq!(
            said_for("2026-12-31T19:00:00Z"),
            ["day-1", "month-1", "0", "hour-5"]
        );
        // An outage overdue since yesterday still names its day.
        assert_eq!(
            said_for("2026-11-21T10:00:00Z"),
            ["20", "day-1", "month-11", "15", "hour-5"]
        );
    }

    fn stems(said: &[String]) -> Vec<&str> {
        said.iter()
            .map(|p| {
                p.rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".wav")
            })
            .collect()
    }

    #[test]
    fn outage_then_debt_in_the_city_zone_in_the_nominative() {
        let config = Config::empty();
        let mut info = caller();
        info.outages.push(ActiveOutage {
            id: crate::store::OutageId(1),
            kind: "hot_water".into(),
            text: "нет горячей воды".into(),
            until: "2026-11-22T13:30:00Z".parse().unwrap(),
        });
        info.debtor = Some(DebtorFlag {
            amount_kopecks: 1_543_201,
            valid_until: "2026-12-01".parse().unwrap(),
        });
        let said = notices(
            &config,
            &info,
            Some(chrono_tz::Asia::Yekaterinburg),
            morning(),
        );
        // 13:30 UTC is 18:30 in Yekaterinburg: «Время восстановления:
        // восемнадцать часов тридцать минут».
        assert_eq!(
            stems(&said),
            [
                "outage-intro",
                "outage-hot-water",
                "outage-restored-at",
                "18",
                "hour-5",
                "30",
                "minute-5",
                // «Сумма задолженности: пятнадцать тысяч четыреста тридцать два рубля
                // одна копейка».
                "debt-intro",
                "15",
                "thousand-5",
                "400",
                "30",
                "2",
                "ruble-2",
                "1f",
                "kopeck-1",
                "debt-outro",
            ]
        );
        assert!(said.iter().all(|p| p.starts_with("ru/")), "{said:?}");
    }

    #[test]
    fn minutes_and_kopecks_agree_in_gender_and_number() {
        let config = Config::empty();
        let mut info = caller();
        info.outages.push(ActiveOutage {
            id: crate::store::OutageId(1),
            kind: "gas".into(),
            text: "газ".into(),
            until: "2026-11-22T16:21:00Z".parse().unwrap(),
        });
        info.debtor = Some(DebtorFlag {
            amount_kopecks: 2_122,
            valid_until: "2026-12-01".parse().unwrap(),
        });
        let notices = notices(
            &config,
            &info,
            Some(chrono_tz::Asia::Yekaterinburg),
            morning(),
        );
        let said = stems(&notices);
        // 21:21: двадцать один час двадцать одна минута; 21,22 ₽: двадцать один
        // рубль двадцать две копейки.
        assert_eq!(
            said[3..],
            [
                "20",
                "1",
                "hour-1",
                "20",
                "1f",
                "minute-1",
                "debt-intro",
                "20",
                "1",
                "ruble-1",
                "20",
                "2f",
                "kopeck-2",
                "debt-outro"
            ]
        );
    }

    #[test]
    fn legacy_number_says_the_new_number_as_a_telephone_number() {
        let config = Config::empty();
        let said = number_changed(&config, PhoneNumber::parse("+73432000001").ok().as_ref());
        assert_eq!(
            stems(&said),
            [
                "number-changed",
                "8",
                "pause",
                "300",
                "40",
                "3",
                "pause",
                "200",
                "pause",
                "0",
                "0",
                "pause",
                "0",
                "1",
                "goodbye"
            ]
        );
    }

    #[test]
    fn the_language_folder_is_the_configured_one() {
        let mut config = Config::empty();
        config.media.language = "ru-alt".into();
        let said = number_changed(&config, PhoneNumber::parse("+73432000001").ok().as_ref());
        assert!(
            said[1..].iter().all(|p| p.starts_with("ru-alt/")),
            "{said:?}"
        );
        assert!(
            fixed_prompts(&config)
                .iter()
                .all(|p| p.starts_with("ru-alt/"))
        );
    }

    #[test]
    fn every_fixed_prompt_ships() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
        for p in fixed_prompts(&Config::empty()) {
            assert!(dir.join(&p).is_file(), "missing {p}");
        }
    }
}

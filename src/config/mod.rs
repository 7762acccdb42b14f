//! Telephony configuration: `sip-config/dispatchline.toml`.
//!
//! Owns the file format, its defaults and its validation. Loading is all or nothing:
//! every fault in the file (syntax, unknown keys, wrong types, dangling references,
//! duplicate numbers, bad addresses) is collected and reported as `file:line: message`,
//! and a configuration with any fault is never returned. Every section has defaults
//! except `[[number]]`: a file holding only numbers is a valid configuration.
//!
//! Business data (houses, employees, tickets, contacts) is not here; it lives in the
//! ticket store.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::phone::PhoneNumber;

pub mod chains;
pub mod follow_ups;
pub mod security;

pub use chains::{ChainPolicy, ChainSettings, Reach};
pub use follow_ups::{FollowUpPolicy, FollowUpSettings};

/// The default configuration file, relative to the working directory.
pub const DEFAULT_PATH: &str = "sip-config/dispatchline.toml";

/// One fault found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFault {
    /// The file the fault is in.
    pub file: PathBuf,
    /// 1-based line, when the fault can be placed.
    pub line: Option<usize>,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for ConfigFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

/// Every fault found in a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The faults, in file order.
    pub faults: Vec<ConfigFault>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, fault) in self.faults.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{fault}")?;
        }
        Ok(())
    }
}

/// The whole telephony configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// SIP listener and protocol timers.
    pub sip: SipSettings,
    /// The HTTP listener (console, API, websocket).
    pub http: HttpSettings,
    /// Where the ticket store lives.
    pub database: DatabaseSettings,
    /// RTP, prompts and recording.
    pub media: MediaSettings,
    /// Prompt files the engine plays by role.
    pub prompts: PromptSettings,
    /// How callers wait for operators.
    pub queue: QueuePolicy,
    /// How the engine dials out.
    pub dialer: DialerPolicy,
    /// Which tickets are telephoned, and how each chain step reaches a person.
    pub chains: ChainSettings,
    /// Status checks, feedback calls, supplier calls and outage broadcasts.
    pub follow_ups: FollowUpSettings,
    /// Password guessing limits and credential checks.
    pub security: security::SecuritySettings,
    /// SIP providers.
    pub trunks: Vec<Trunk>,
    /// Numbers the engine answers, by what residents dial.
    pub numbers: Vec<Number>,
    /// Operator softphones (and console logins).
    pub operators: Vec<Operator>,
    /// IVR menus by name.
    pub menus: Vec<Menu>,
    /// The file it was read from (`<defaults>` for the built-in configuration).
    pub source: PathBuf,
}

/// The `[sip]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipSettings {
    /// UDP and TCP listen address.
    pub listen: SocketAddr,
    /// The address written into Via and Contact when it differs from `listen`.
    pub advertised_address: Option<IpAddr>,
    /// RFC 3261 T1 (round-trip estimate).
    pub t1: Duration,
    /// RFC 3261 T2 (maximum retransmit interval for non-INVITE and INVITE responses).
    pub t2: Duration,
    /// RFC 3261 T4 (maximum time a message stays in the network).
    pub t4: Duration,
    /// A TCP connection with no traffic for this long is closed (unless a call
    /// still uses it).
    pub tcp_idle_timeout: Duration,
    /// Accepted TCP connections beyond this many are closed at once.
    pub max_tcp_connections: usize,
    /// SIP transactions beyond this many get a stateless 503.
    pub max_transactions: usize,
    /// A forward call's target that has not answered in this time is cancelled
    /// and the caller answered 408 (RFC 3261 Timer C: more than 3 minutes).
    pub forward_no_answer: Duration,
    /// New calls beyond this many concurrent ones are refused with 503 + Retry-After.
    pub max_concurrent_calls: usize,
    /// Incoming requests per second beyond which new calls are shed with 503.
    pub max_call_rate: u32,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// The realm in operator digest challenges.
    pub realm: String,
    /// Digest algorithms offered to softphones, in order of preference (RFC 8760:
    /// a UA takes the first it supports; SIPp 3.6 and some older softphones only
    /// read the first challenge and only do MD5, so list MD5 first for them).
    pub digest_algorithms: Vec<crate::sip::digest::Algorithm>,
    /// Addresses besides the trunks' that may send calls in (an SBC, a PBX in
    /// front of the engine). With no `[[trunk]]` at all, loopback may too.
    pub inbound_from: Vec<IpAddr>,
}

/// The `[http]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSettings {
    /// Listen address of the console, API and websocket.
    pub listen: SocketAddr,
    /// A request's headers must have arrived this long after the client began
    /// it (or the connection was opened): slowloris clients are cut off.
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once, in all; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address; more are closed at once.
    pub max_connections_per_source: usize,
    /// The most memory the event history (what reconnecting consoles replay, kept
    /// 15 minutes) may take, in bytes.
    pub event_history_bytes: usize,
}

/// The `[database]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `sqlite://path` or `postgres://...`.
    pub url: String,
    /// Directory for the SQLite file, recordings and other state.
    pub data_dir: PathBuf,
}

/// The `[media]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// First port of the RTP range (even).
    pub rtp_port_min: u16,
    /// Last port of the RTP range.
    pub rtp_port_max: u16,
    /// A call with no RTP for this long is ended (not while on hold).
    pub rtp_timeout: Duration,
    /// Directory of prompts, holding one folder per language.
    pub prompts_dir: PathBuf,
    /// Language folder used for the engine's own prompts.
    pub language: String,
    /// Whether bridged calls are recorded (the law says yes; tests may say no).
    pub record_calls: bool,
    /// Recordings directory, relative to the data directory unless absolute.
    pub recordings_dir: PathBuf,
    /// Below this much free space (MiB) on the recordings' file system no new
    /// recording starts (`recording.failed`, a supervisor alarm); calls go on, and
    /// recording resumes when space returns. 0: no watermark.
    pub recordings_min_free_mb: u64,
}

/// The `[prompts]` section: prompt files by role, relative to `media.prompts_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSettings {
    /// Generic greeting on a citywide number.
    pub citywide_greeting: String,
    /// "The number has changed" (legacy numbers), followed by the new number.
    pub number_changed: String,
    /// "All operators are busy, please wait".
    pub queue_wait: String,
    /// Music between queue announcements.
    pub hold_music: String,
    /// "Your call will be returned" (played when a callback is scheduled).
    pub callback_promise: String,
}

/// The `[queue]` section: the ACD policy and the 5-minute rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuePolicy {
    /// How long one operator's softphone rings before the next is tried.
    pub ring_timeout: Duration,
    /// Time after a call before an operator is offered the next one.
    pub wrap_up: Duration,
    /// Interval between "please wait" announcements.
    pub announce_interval: Duration,
    /// A caller still waiting this long gets a callback job (Rules №416 §13: 5 minutes).
    pub callback_after: Duration,
    /// A caller who hangs up after waiting longer than this gets a callback job.
    pub abandon_threshold: Duration,
    /// A callback must be made within this long of the original call.
    pub callback_deadline: Duration,
    /// An operator whose softphone does not take an offered call (rings out,
    /// rejects, unreachable) is paused with the reason "Пропущенный вызов" until
    /// they press ready, so calls do not keep going to an empty desk.
    pub pause_after_missed: bool,
}

/// The `[dialer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DialerPolicy {
    /// Tries per number before it counts as unreachable.
    pub attempts: u32,
    /// Pause between tries of one number.
    pub attempt_interval: Duration,
    /// How long one party is rung before the try counts as no answer.
    pub ring_timeout: Duration,
    /// Delay after hand-off before the executor is called for the ticket's status.
    pub status_check_delay: Duration,
    /// Target for calling back a staff member who called the dispatch line.
    pub staff_callback_target: Duration,
}

/// How a trunk's signalling travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
}

/// One `[[trunk]]`: a SIP provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trunk {
    /// Name numbers refer to (`provider-x`).
    pub name: String,
    /// The provider's proxy / registrar.
    pub proxy: SocketAddr,
    /// Transport towards the proxy.
    pub transport: TrunkTransport,
    /// SIP domain for From/To and the Request-URI host; the proxy IP when unset.
    pub domain: String,
    /// Digest user name; also the registered AOR user.
    pub username: Option<String>,
    /// Digest password.
    pub password: Option<String>,
    /// Whether the engine registers to the provider.
    pub register: bool,
    /// Requested registration lifetime.
    pub register_expires: Duration,
    /// OPTIONS keepalive interval; zero disables it.
    pub options_interval: Duration,
    /// Addresses calls from this provider may come from (the proxy's IP is always one).
    pub inbound_from: Vec<IpAddr>,
    /// Simultaneous calls the provider carries (its channels); `None`: as many as
    /// `[sip] max_concurrent_calls`. Broadcasts never take the last free ones.
    pub channels: Option<u32>,
}

/// What a number is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NumberKind {
    /// A management company's own number: its greeting, then the queue.
    Tenant,
    /// A city's shared number: a generic greeting; the tenant is found from the caller.
    Citywide,
    /// An old number: announce the new one and hang up (never forwarded).
    Legacy,
    /// The line staff call: not answered; the engine calls them back.
    Dispatch,
    /// Routed as is to a SIP URI (B2BUA).
    Forward,
}

impl NumberKind {
    /// The name used in the configuration, events and the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Citywide => "citywide",
            Self::Legacy => "legacy",
            Self::Dispatch => "dispatch",
            Self::Forward => "forward",
        }
    }
}

/// One `[[number]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number {
    /// The dialled number, normalised.
    pub number: PhoneNumber,
    /// What the number does.
    pub kind: NumberKind,
    /// Tenant code in the ticket store (tenant, legacy, dispatch).
    pub tenant: Option<String>,
    /// City code (citywide; optional elsewhere).
    pub city: Option<String>,
    /// The trunk it arrives on and outbound caller ID uses.
    pub trunk: Option<String>,
    /// Greeting prompt, relative to the prompts directory.
    pub greeting: Option<String>,
    /// Forward target (forward).
    pub target: Option<String>,
    /// The number to announce (legacy); the tenant's own number when unset.
    pub new_number: Option<PhoneNumber>,
    /// IVR menu to run after the greeting; straight to the queue when unset.
    pub menu: Option<String>,
    /// The line of its `[[number]]` table in the file, for messages.
    pub line: Option<usize>,
}

/// A console role (the accounts live in the ticket store; the `[[operator]]`
/// tables seed a store that does not have them yet).
pub use crate::store::users::Role;

/// One `[[operator]]`: a softphone extension and console login. The engine runs on
/// the accounts of the ticket store, turned into these (see
/// [`Operator::from_account`]); the file's tables seed a store that lacks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// SIP user / extension (`1001`).
    pub extension: String,
    /// Display name for the console and journal.
    pub name: String,
    /// The password of a `[[operator]]` table: seeds a store that does not have the
    /// account yet, as its console password and its softphone's (empty for an
    /// account loaded from the store).
    pub password: String,
    /// The softphone's stored digest credentials (an account loaded from the store);
    /// `None`: the registrar checks against `password`.
    pub sip: Option<crate::sip::digest::DigestSecret>,
    /// Console role.
    pub role: Role,
    /// Tenants this operator serves; empty means all.
    pub tenants: Vec<String>,
    /// Cities this operator serves (skills); empty means all.
    pub cities: Vec<String>,
    /// Ask the softphone to answer automatically.
    pub auto_answer: bool,
}

impl Operator {
    /// Whether this operator takes work of `tenant` in `city` (`None`: any).
    pub fn serves(&self, tenant: Option<&str>, city: Option<&str>) -> bool {
        let tenant_ok =
            self.tenants.is_empty() || tenant.is_none_or(|t| self.tenants.iter().any(|x| x == t));
        let city_ok =
            self.cities.is_empty() || city.is_none_or(|c| self.cities.iter().any(|x| x == c));
        tenant_ok && city_ok
    }

    /// What the registrar checks this operator's softphone against.
    pub fn digest_secret(&self) -> crate::sip::digest::DigestSecret {
        self.sip
            .clone()
            .unwrap_or_else(|| crate::sip::digest::DigestSecret::Password(self.password.clone()))
    }

    /// An account of the store whose softphone may register.
    pub fn from_account(account: &crate::store::SoftphoneAccount) -> Self {
        let user = &account.user;
        Self {
            extension: user.extension.clone(),
            name: user.name.clone(),
            password: String::new(),
            sip: Some(crate::sip::digest::DigestSecret::Ha1 {
                realm: account.sip.realm.clone(),
                md5: account.sip.ha1_md5.clone(),
                sha256: account.sip.ha1_sha256.clone(),
            }),
            role: user.role,
            tenants: user.tenants.clone(),
            cities: user.cities.clone(),
            auto_answer: user.auto_answer,
        }
    }
}

/// What a keypad choice (or the menu's default) does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MenuAction {
    /// Join the operators' queue.
    Queue,
    /// Go to another menu.
    Menu(String),
    /// Play a prompt, then return to this menu.
    Announcement(String),
    /// Say goodbye and hang up.
    Hangup,
}

/// One `[[menu]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Menu {
    /// The name numbers and options refer to.
    pub name: String,
    /// The prompt listing the choices.
    pub prompt: String,
    /// How long to wait for a digit after the prompt.
    pub timeout: Duration,
    /// How many times the prompt is repeated when nothing (or a wrong digit) is pressed.
    pub retries: u32,
    /// Choices by digit (`0`-`9`, `*`, `#`).
    pub options: Vec<(char, MenuAction)>,
    /// What happens when retries run out.
    pub default: MenuAction,
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            faults: vec![ConfigFault {
                file: path.to_owned(),
                line: None,
                message: format!("cannot read: {e}"),
            }],
        })?;
        Self::parse(&text, path)
    }

    /// Validates configuration text; `file` only names it in faults.
    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        let mut faults = Faults {
            file,
            text,
            list: Vec::new(),
        };
        let raw = read_raw(text, &mut faults);
        let config = raw.and_then(|raw| validate(raw, &mut faults));
        match config {
            Some(config) if faults.list.is_empty() => Ok(config),
            _ => {
                if faults.list.is_empty() {
                    faults.at(None, "configuration could not be read".to_owned());
                }
                faults.list.sort_by_key(|f| f.line);
                Err(ConfigError {
                    faults: faults.list,
                })
            }
        }
    }

    /// The built-in defaults with no numbers at all.
    pub fn empty() -> Self {
        let mut faults = Faults {
            file: Path::new("<defaults>"),
            text: "",
            list: Vec::new(),
        };
        let raw = RawConfig::default();
        // Invariant: the defaults are valid; the unit test `defaults_are_valid` proves it.
        validate(raw, &mut faults).unwrap_or_else(|| unreachable!("built-in defaults are valid"))
    }

    /// The number entry a dialled user part matches, after normalisation.
    pub fn number(&self, dialled: &str) -> Option<&Number> {
        let wanted = PhoneNumber::parse(dialled).ok()?;
        self.numbers.iter().find(|n| n.number == wanted)
    }

    /// A trunk by name.
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks.iter().find(|t| t.name == name)
    }

    /// An operator by extension.
    pub fn operator(&self, extension: &str) -> Option<&Operator> {
        self.operators.iter().find(|o| o.extension == extension)
    }

    /// A menu by name.
    pub fn menu(&self, name: &str) -> Option<&Menu> {
        self.menus.iter().find(|m| m.name == name)
    }

    /// What the numbers name in the ticket store (tenants and cities), with where
    /// each is written, for the start-up agreement check.
    pub fn store_references(&self) -> Vec<crate::store::agreement::Reference> {
        self.numbers
            .iter()
            .filter(|n| n.tenant.is_some() || n.city.is_some())
            .map(|n| crate::store::agreement::Reference {
                location: match n.line {
                    Some(line) => format!("{}:{line}", self.source.display()),
                    None => self.source.display().to_string(),
                },
                what: format!("number {}", n.number),
                tenant: n.tenant.clone(),
                city: n.city.clone(),
            })
            .collect()
    }

    /// The `[[operator]]` tables as accounts to seed a store with.
    pub fn seed_users(&self) -> Vec<crate::store::users::SeedUser> {
        self.operators
            .iter()
            .map(|o| crate::store::users::SeedUser {
                extension: o.extension.clone(),
                name: o.name.clone(),
                role: o.role,
                tenants: o.tenants.clone(),
                cities: o.cities.clone(),
                password: o.password.clone(),
                auto_answer: o.auto_answer,
            })
            .collect()
    }

    /// What is valid but probably not meant, for `check-config` and the log at
    /// start: no trunk configured (calls are then taken from loopback and
    /// `[sip] inbound_from` only), numbers naming a trunk that is not configured.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.trunks.is_empty() {
            let from = if self.sip.inbound_from.is_empty() {
                "loopback only".to_owned()
            } else {
                let list: Vec<String> = self
                    .sip
                    .inbound_from
                    .iter()
                    .map(|ip| ip.to_string())
                    .collect();
                format!("loopback and {}", list.join(", "))
            };
            out.push(format!(
                "no [[trunk]] configured: calls are accepted from {from} (set [sip] inbound_from or add trunks); callbacks cannot be placed"
            ));
            let mut named: Vec<&str> = self
                .numbers
                .iter()
                .filter_map(|n| n.trunk.as_deref())
                .collect();
            named.sort_unstable();
            named.dedup();
            for name in named {
                out.push(format!(
                    "numbers refer to trunk `{name}`, which is not configured"
                ));
            }
        }
        out
    }

    /// The recordings directory, resolved against the data directory.
    pub fn recordings_dir(&self) -> PathBuf {
        if self.media.recordings_dir.is_absolute() {
            self.media.recordings_dir.clone()
        } else {
            self.database.data_dir.join(&self.media.recordings_dir)
        }
    }

    /// Every prompt file the configuration refers to, relative to the prompts directory.
    pub fn referenced_prompts(&self) -> Vec<String> {
        let p = &self.prompts;
        let mut all = vec![
            p.citywide_greeting.clone(),
            p.number_changed.clone(),
            p.queue_wait.clone(),
            p.hold_music.clone(),
            p.callback_promise.clone(),
        ];
        all.extend(self.numbers.iter().filter_map(|n| n.greeting.clone()));
        for menu in &self.menus {
            all.push(menu.prompt.clone());
            let actions = menu.options.iter().map(|(_, a)| a).chain([&menu.default]);
            all.extend(actions.filter_map(|a| match a {
                MenuAction::Announcement(prompt) => Some(prompt.clone()),
                _ => None,
            }));
        }
        all.sort();
        all.dedup();
        all
    }
}

// ---------------------------------------------------------------------------------
// Raw file format (what serde reads) and its defaults.

#[derive(Debug, Default)]
struct RawConfig {
    sip: RawSip,
    http: RawHttp,
    database: RawDatabase,
    media: RawMedia,
    prompts: RawPrompts,
    queue: RawQueue,
    dialer: RawDialer,
    chains: chains::RawChains,
    follow_ups: follow_ups::RawFollowUps,
    security: security::RawSecurity,
    trunk: Vec<Spanned<RawTrunk>>,
    number: Vec<Spanned<RawNumber>>,
    operator: Vec<Spanned<RawOperator>>,
    menu: Vec<Spanned<RawMenu>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSip {
    listen: Spanned<String>,
    advertised_address: Option<Spanned<String>>,
    t1_ms: u64,
    t2_ms: u64,
    t4_ms: u64,
    tcp_idle_timeout_s: u64,
    max_tcp_connections: usize,
    max_transactions: usize,
    forward_no_answer_s: u64,
    max_concurrent_calls: usize,
    max_call_rate: u32,
    user_agent: String,
    realm: String,
    digest_algorithms: Vec<Spanned<String>>,
    inbound_from: Vec<Spanned<String>>,
}

impl Default for RawSip {
    fn default() -> Self {
        Self {
            listen: Spanned::new(0..0, "127.0.0.1:5060".into()),
            advertised_address: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            tcp_idle_timeout_s: 300,
            max_tcp_connections: 4096,
            max_transactions: 500_000,
            forward_no_answer_s: 190,
            max_concurrent_calls: 4000,
            max_call_rate: 2000,
            user_agent: concat!("dispatchline/", env!("CARGO_PKG_VERSION")).into(),
            realm: "dispatchline".into(),
            digest_algorithms: vec![
                Spanned::new(0..0, "SHA-256".into()),
                Spanned::new(0..0, "MD5".into()),
            ],
            inbound_from: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    listen: Spanned<String>,
    header_timeout_s: u64,
    idle_timeout_s: u64,
    max_connections: usize,
    max_connections_per_source: usize,
    event_history_mib: usize,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            listen: Spanned::new(0..0, "127.0.0.1:8080".into()),
            header_timeout_s: 10,
            idle_timeout_s: 300,
            max_connections: 4096,
            max_connections_per_source: 512,
            event_history_mib: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDatabase {
    url: Spanned<String>,
    data_dir: String,
}

impl Default for RawDatabase {
    fn default() -> Self {
        Self {
            url: Spanned::new(0..0, "sqlite://data/dispatchline.db".into()),
            data_dir: "data".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMedia {
    rtp_port_min: Spanned<u16>,
    rtp_port_max: Spanned<u16>,
    rtp_timeout_s: u64,
    prompts_dir: String,
    language: String,
    record_calls: bool,
    recordings_dir: String,
    recordings_min_free_mb: u64,
}

impl Default for RawMedia {
    fn default() -> Self {
        Self {
            rtp_port_min: Spanned::new(0..0, 20000),
            rtp_port_max: Spanned::new(0..0, 29999),
            rtp_timeout_s: 60,
            prompts_dir: "ivr-prompts".into(),
            language: "ru".into(),
            record_calls: true,
            recordings_dir: "recordings".into(),
            recordings_min_free_mb: 256,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawPrompts {
    citywide_greeting: String,
    number_changed: String,
    queue_wait: String,
    hold_music: String,
    callback_promise: String,
}

impl Default for RawPrompts {
    fn default() -> Self {
        Self {
            citywide_greeting: "ru/greeting-citywide.wav".into(),
            number_changed: "ru/number-changed.wav".into(),
            queue_wait: "ru/queue-wait.wav".into(),
            hold_music: "ru/hold-music.wav".into(),
            callback_promise: "ru/callback-promise.wav".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawQueue {
    ring_timeout_s: u64,
    wrap_up_s: u64,
    announce_interval_s: u64,
    callback_after_s: u64,
    abandon_threshold_s: u64,
    callback_deadline_s: u64,
    pause_after_missed: bool,
}

impl Default for RawQueue {
    fn default() -> Self {
        Self {
            ring_timeout_s: 20,
            wrap_up_s: 10,
            announce_interval_s: 30,
            callback_after_s: 240,
            abandon_threshold_s: 15,
            callback_deadline_s: 600,
            pause_after_missed: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDialer {
    attempts: u32,
    attempt_interval_s: u64,
    ring_timeout_s: u64,
    level_timeout_s: u64,
    broadcast_window_s: u64,
    status_check_delay_s: u64,
    staff_callback_target_s: u64,
    broadcast_rate: f64,
    inbound_reserve: u32,
}

impl Default for RawDialer {
    fn default() -> Self {
        Self {
            attempts: 5,
            attempt_interval_s: 60,
            ring_timeout_s: 30,
            level_timeout_s: 600,
            broadcast_window_s: 600,
            status_check_delay_s: 7200,
            staff_callback_target_s: 120,
            broadcast_rate: 5.0,
            inbound_reserve: 4,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrunk {
    name: Spanned<String>,
    proxy: Spanned<String>,
    #[serde(default = "default_transport")]
    transport: TrunkTransport,
    domain: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(default)]
    register: bool,
    #[serde(default = "default_register_expires")]
    register_expires_s: u64,
    #[serde(default = "default_options_interval")]
    options_interval_s: u64,
    #[serde(default)]
    inbound_from: Vec<Spanned<String>>,
    #[serde(default)]
    channels: Option<u32>,
}

fn default_transport() -> TrunkTransport {
    TrunkTransport::Udp
}
fn default_register_expires() -> u64 {
    300
}
fn default_options_interval() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNumber {
    number: Spanned<String>,
    kind: NumberKind,
    tenant: Option<String>,
    city: Option<String>,
    trunk: Option<Spanned<String>>,
    greeting: Option<String>,
    target: Option<Spanned<String>>,
    new_number: Option<Spanned<String>>,
    menu: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOperator {
    extension: Spanned<String>,
    #[serde(default)]
    name: Option<String>,
    password: Spanned<String>,
    #[serde(default = "default_role")]
    role: Role,
    #[serde(default)]
    tenants: Vec<String>,
    #[serde(default)]
    cities: Vec<String>,
    #[serde(default)]
    auto_answer: bool,
}

fn default_role() -> Role {
    Role::Operator
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenu {
    name: Spanned<String>,
    prompt: String,
    #[serde(default = "default_menu_timeout")]
    timeout_s: u64,
    #[serde(default = "default_menu_retries")]
    retries: u32,
    #[serde(default)]
    option: Vec<RawMenuOption>,
    #[serde(default = "default_menu_default")]
    default: Spanned<String>,
}

fn default_menu_timeout() -> u64 {
    5
}
fn default_menu_retries() -> u32 {
    2
}
fn default_menu_default() -> Spanned<String> {
    Spanned::new(0..0, "queue".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMenuOption {
    digit: Spanned<String>,
    action: Spanned<String>,
}

// ---------------------------------------------------------------------------------
// Reading: syntax first, then each section and each array entry on its own, so that
// one bad entry does not hide the faults of the others.

struct Faults<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ConfigFault>,
}

impl Faults<'_> {
    fn line_of(&self, span: &Range<usize>) -> Option<usize> {
        if span.is_empty() && span.start == 0 {
            return None;
        }
        let upto = self.text.get(..span.start.min(self.text.len()))?;
        Some(upto.bytes().filter(|&b| b == b'\n').count() + 1)
    }

    fn at(&mut self, span: Option<&Range<usize>>, message: String) {
        let line = span.and_then(|s| self.line_of(s));
        self.list.push(ConfigFault {
            file: self.file.to_owned(),
            line,
            message,
        });
    }

    fn toml(&mut self, context: &str, err: toml::de::Error) {
        let message = err.message().trim().to_owned();
        let message = if context.is_empty() {
            message
        } else {
            format!("{context}: {message}")
        };
        self.at(err.span().as_ref(), message);
    }
}

fn read_raw(text: &str, faults: &mut Faults<'_>) -> Option<RawConfig> {
    let (root, errors) = toml::de::DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for err in errors {
            faults.toml("", err);
        }
        return None;
    }
    let mut raw = RawConfig::default();
    for (key, value) in root.into_inner() {
        let span = key.span();
        let name = key.into_inner();
        match &*name {
            "sip" => section(value, "[sip]", faults, &mut raw.sip),
            "http" => section(value, "[http]", faults, &mut raw.http),
            "database" => section(value, "[database]", faults, &mut raw.database),
            "media" => section(value, "[media]", faults, &mut raw.media),
            "prompts" => section(value, "[prompts]", faults, &mut raw.prompts),
            "queue" => section(value, "[queue]", faults, &mut raw.queue),
            "dialer" => section(value, "[dialer]", faults, &mut raw.dialer),
            "chains" => section(value, "[chains]", faults, &mut raw.chains),
            "follow_ups" => section(value, "[follow_ups]", faults, &mut raw.follow_ups),
            "security" => section(value, "[security]", faults, &mut raw.security),
            "trunk" => raw.trunk = entries(value, "[[trunk]]", faults),
            "number" => raw.number = entries(value, "[[number]]", faults),
            "operator" => raw.operator = entries(value, "[[operator]]", faults),
            "menu" => raw.menu = entries(value, "[[menu]]", faults),
            other => faults.at(
                Some(&span),
                format!(
                    "unknown section `{other}` (expected sip, http, database, media, prompts, \
                     queue, dialer, chains, follow_ups, security, trunk, number, operator or menu)"
                ),
            ),
        }
    }
    Some(raw)
}

fn section<T: DeserializeOwned>(
    value: Spanned<toml::de::DeValue<'_>>,
    context: &str,
    faults: &mut Faults<'_>,
    into: &mut T,
) {
    match T::deserialize(toml::de::ValueDeserializer::from(value)) {
        Ok(v) => *into = v,
        Err(e) => faults.toml(context, e),
    }
}

fn entries<T: DeserializeOwned>(
    value: Spanned<toml::de::DeValue<'_>>,
    context: &str,
    faults: &mut Faults<'_>,
) -> Vec<Spanned<T>> {
    let span = value.span();
    let toml::de::DeValue::Array(items) = value.into_inner() else {
        faults.at(Some(&span), format!("{context} must be an array of tables"));
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in items {
        let span = item.span();
        match T::deserialize(toml::de::ValueDeserializer::from(item)) {
            Ok(v) => out.push(Spanned::new(span, v)),
            Err(e) => {
                let at = e.span().unwrap_or(span);
                faults.at(Some(&at), format!("{context}: {}", e.message().trim()));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------
// Validation: references, ranges and uniqueness.

/// The longest duration any key of the file may give (30 days): nothing computed
/// from a configured duration can overflow a clock.
pub const MAX_DURATION_S: u64 = 30 * 24 * 3600;

/// Seconds from the file, saturated at [`MAX_DURATION_S`] (validation reports
/// longer values as faults; this keeps arithmetic safe whatever gets through).
fn secs(s: u64) -> Duration {
    Duration::from_secs(s.min(MAX_DURATION_S))
}

fn parse_socket(
    value: &Spanned<String>,
    what: &str,
    default_port: u16,
    faults: &mut Faults<'_>,
) -> Option<SocketAddr> {
    let text = value.get_ref().trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Some(addr);
    }
    if let Ok(ip) = text
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Some(SocketAddr::new(ip, default_port));
    }
    faults.at(
        Some(&value.span()),
        format!("{what} `{text}` is not an IP address with an optional port"),
    );
    None
}

/// The largest `media.rtp_timeout_s`.
pub const MAX_RTP_TIMEOUT_S: u64 = 3600;

/// Why listening on every interface needs an advertised address: Contact, Via and
/// SDP `c=` must name one address peers can reach, and `0.0.0.0` in SDP means hold.
pub fn unadvertised(listen: SocketAddr) -> String {
    format!(
        "sip.listen `{listen}` is every interface: set sip.advertised_address to the address peers reach (SIP Contact and SDP c= cannot say {})",
        listen.ip()
    )
}

fn validate(raw: RawConfig, faults: &mut Faults<'_>) -> Option<Config> {
    let sip_listen = parse_socket(&raw.sip.listen, "sip.listen", 5060, faults);
    let http_listen = parse_socket(&raw.http.listen, "http.listen", 8080, faults);
    let advertised_address = raw.sip.advertised_address.as_ref().and_then(|a| {
        match a.get_ref().parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => {
                faults.at(
                    Some(&a.span()),
                    format!(
                        "sip.advertised_address `{ip}` is not an address peers can reach (SDP would put them on hold)"
                    ),
                );
                None
            }
            Ok(ip) => Some(ip),
            Err(_) => {
                faults.at(
                    Some(&a.span()),
                    format!("sip.advertised_address `{}` is not an IP", a.get_ref()),
                );
                None
            }
        }
    });
    if let Some(listen) = sip_listen {
        if listen.ip().is_unspecified() && raw.sip.advertised_address.is_none() {
            faults.at(Some(&raw.sip.listen.span()), unadvertised(listen));
        }
    }
    // Instants plus a larger timeout overflow the clock; an hour is already far
    // beyond any RTP silence worth waiting for.
    if raw.media.rtp_timeout_s > MAX_RTP_TIMEOUT_S {
        faults.at(
            None,
            format!(
                "media.rtp_timeout_s = {} is more than {MAX_RTP_TIMEOUT_S} (an hour); 0 disables the timeout",
                raw.media.rtp_timeout_s
            ),
        );
    }
    if raw.sip.t1_ms == 0 || raw.sip.t2_ms < raw.sip.t1_ms {
        faults.at(None, "[sip] needs 0 < t1_ms <= t2_ms".into());
    }
    // Bounded so that 64·T1 and the retransmission arithmetic stay sane.
    if raw.sip.t1_ms > 10_000 || raw.sip.t2_ms > 60_000 || raw.sip.t4_ms > 60_000 {
        faults.at(
            None,
            "[sip] needs t1_ms <= 10000, t2_ms <= 60000 and t4_ms <= 60000".into(),
        );
    }
    if raw.sip.forward_no_answer_s == 0 || raw.sip.forward_no_answer_s > 600 {
        faults.at(
            None,
            "[sip] forward_no_answer_s must be between 1 and 600".into(),
        );
    }
    if raw.sip.max_tcp_connections == 0 || raw.sip.max_transactions == 0 {
        faults.at(
            None,
            "[sip] max_tcp_connections and max_transactions must be at least 1".into(),
        );
    }
    let db_url = raw.database.url.get_ref();
    if !(db_url.starts_with("sqlite:")
        || db_url.starts_with("postgres://")
        || db_url.starts_with("postgresql://"))
    {
        faults.at(
            Some(&raw.database.url.span()),
            format!("database.url `{db_url}` must start with sqlite: or postgres://"),
        );
    }
    let (pmin, pmax) = (
        *raw.media.rtp_port_min.get_ref(),
        *raw.media.rtp_port_max.get_ref(),
    );
    if pmin % 2 != 0 || pmin < 1024 || pmax <= pmin || pmax - pmin < 3 {
        faults.at(
            Some(&raw.media.rtp_port_min.span()),
            format!("RTP range {pmin}-{pmax} must start on an even port >= 1024 and hold at least two pairs"),
        );
    }
    for (section, key, value) in [
        ("queue", "ring_timeout_s", raw.queue.ring_timeout_s),
        (
            "queue",
            "announce_interval_s",
            raw.queue.announce_interval_s,
        ),
        ("dialer", "ring_timeout_s", raw.dialer.ring_timeout_s),
    ] {
        if value == 0 {
            faults.at(None, format!("[{section}] {key} must be at least 1"));
        }
    }
    for (key, value) in [
        ("[sip] tcp_idle_timeout_s", raw.sip.tcp_idle_timeout_s),
        ("[queue] ring_timeout_s", raw.queue.ring_timeout_s),
        ("[queue] wrap_up_s", raw.queue.wrap_up_s),
        ("[queue] announce_interval_s", raw.queue.announce_interval_s),
        ("[queue] callback_after_s", raw.queue.callback_after_s),
        ("[queue] abandon_threshold_s", raw.queue.abandon_threshold_s),
        ("[queue] callback_deadline_s", raw.queue.callback_deadline_s),
        ("[dialer] attempt_interval_s", raw.dialer.attempt_interval_s),
        ("[dialer] ring_timeout_s", raw.dialer.ring_timeout_s),
        (
            "[dialer] status_check_delay_s",
            raw.dialer.status_check_delay_s,
        ),
        (
            "[dialer] staff_callback_target_s",
            raw.dialer.staff_callback_target_s,
        ),
    ]
    .into_iter()
    .chain(raw.trunk.iter().flat_map(|t| {
        let t = t.get_ref();
        [
            ("[[trunk]] register_expires_s", t.register_expires_s),
            ("[[trunk]] options_interval_s", t.options_interval_s),
        ]
    }))
    .chain([
        ("[http] header_timeout_s", raw.http.header_timeout_s),
        ("[http] idle_timeout_s", raw.http.idle_timeout_s),
    ]) {
        if value > MAX_DURATION_S {
            faults.at(
                None,
                format!("{key} must be at most {MAX_DURATION_S} (30 days)"),
            );
        }
    }
    let mut inbound_from = Vec::new();
    for addr in &raw.sip.inbound_from {
        match addr.get_ref().trim().parse::<IpAddr>() {
            Ok(ip) => inbound_from.push(ip),
            Err(_) => faults.at(
                Some(&addr.span()),
                format!("sip.inbound_from `{}` is not an IP address", addr.get_ref()),
            ),
        }
    }

    let trunks = validate_trunks(&raw.trunk, faults);
    let trunk_names: HashSet<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
    let menus = validate_menus(&raw.menu, faults);
    let menu_names: HashSet<&str> = menus.iter().map(|m| m.name.as_str()).collect();
    for menu in &menus {
        for action in menu.options.iter().map(|(_, a)| a).chain([&menu.default]) {
            if let MenuAction::Menu(target) = action {
                if !menu_names.contains(target.as_str()) {
                    faults.at(
                        None,
                        format!("menu `{}` refers to unknown menu `{target}`", menu.name),
                    );
                }
            }
        }
    }
    let numbers = validate_numbers(&raw.number, &trunk_names, &menu_names, faults);
    let chains = chains::validate(
        raw.chains,
        &chains::DialerKeys {
            attempts: raw.dialer.attempts,
            attempt_interval_s: raw.dialer.attempt_interval_s,
            level_timeout_s: raw.dialer.level_timeout_s,
            broadcast_window_s: raw.dialer.broadcast_window_s,
        },
        faults,
    );
    let follow_ups = follow_ups::validate(
        raw.follow_ups,
        &follow_ups::DialerKeys {
            status_check_delay_s: raw.dialer.status_check_delay_s,
            broadcast_rate: raw.dialer.broadcast_rate,
            inbound_reserve: raw.dialer.inbound_reserve,
        },
        faults,
    );
    let operators = validate_operators(&raw.operator, faults);
    let security = security::validate(raw.security, Some(faults));

    let mut digest_algorithms = Vec::new();
    for name in &raw.sip.digest_algorithms {
        match crate::sip::digest::Algorithm::from_name(name.get_ref()) {
            Some(a) if !digest_algorithms.contains(&a) => digest_algorithms.push(a),
            Some(_) => {}
            None => faults.at(
                Some(&name.span()),
                format!(
                    "digest algorithm `{}` is not MD5 or SHA-256",
                    name.get_ref()
                ),
            ),
        }
    }
    if digest_algorithms.is_empty() {
        faults.at(
            None,
            "[sip] digest_algorithms must name at least one of MD5, SHA-256".into(),
        );
    }
    let sip = SipSettings {
        listen: sip_listen?,
        advertised_address,
        t1: Duration::from_millis(raw.sip.t1_ms),
        t2: Duration::from_millis(raw.sip.t2_ms),
        t4: Duration::from_millis(raw.sip.t4_ms),
        tcp_idle_timeout: secs(raw.sip.tcp_idle_timeout_s),
        max_tcp_connections: raw.sip.max_tcp_connections,
        max_transactions: raw.sip.max_transactions,
        forward_no_answer: secs(raw.sip.forward_no_answer_s),
        max_concurrent_calls: raw.sip.max_concurrent_calls,
        max_call_rate: raw.sip.max_call_rate,
        user_agent: raw.sip.user_agent,
        realm: raw.sip.realm,
        digest_algorithms,
        inbound_from,
    };
    Some(Config {
        sip,
        http: HttpSettings {
            listen: http_listen?,
            header_timeout: secs(raw.http.header_timeout_s.max(1)),
            idle_timeout: secs(raw.http.idle_timeout_s.max(1)),
            max_connections: raw.http.max_connections.max(1),
            max_connections_per_source: raw.http.max_connections_per_source.max(1),
            event_history_bytes: raw.http.event_history_mib.clamp(8, 16 * 1024) * 1024 * 1024,
        },
        database: DatabaseSettings {
            url: raw.database.url.into_inner(),
            data_dir: PathBuf::from(raw.database.data_dir),
        },
        media: MediaSettings {
            rtp_port_min: pmin,
            rtp_port_max: pmax,
            rtp_timeout: secs(raw.media.rtp_timeout_s),
            prompts_dir: PathBuf::from(raw.media.prompts_dir),
            language: raw.media.language,
            record_calls: raw.media.record_calls,
            recordings_dir: PathBuf::from(raw.media.recordings_dir),
            recordings_min_free_mb: raw.media.recordings_min_free_mb,
        },
        prompts: PromptSettings {
            citywide_greeting: raw.prompts.citywide_greeting,
            number_changed: raw.prompts.number_changed,
            queue_wait: raw.prompts.queue_wait,
            hold_music: raw.prompts.hold_music,
            callback_promise: raw.prompts.callback_promise,
        },
        queue: QueuePolicy {
            ring_timeout: secs(raw.queue.ring_timeout_s),
            wrap_up: secs(raw.queue.wrap_up_s),
            announce_interval: secs(raw.queue.announce_interval_s),
            callback_after: secs(raw.queue.callback_after_s),
            abandon_threshold: secs(raw.queue.abandon_threshold_s),
            callback_deadline: secs(raw.queue.callback_deadline_s),
            pause_after_missed: raw.queue.pause_after_missed,
        },
        dialer: DialerPolicy {
            attempts: raw.dialer.attempts,
            attempt_interval: secs(raw.dialer.attempt_interval_s),
            ring_timeout: secs(raw.dialer.ring_timeout_s),
            status_check_delay: secs(raw.dialer.status_check_delay_s),
            staff_callback_target: secs(raw.dialer.staff_callback_target_s),
        },
        chains,
        follow_ups,
        security,
        trunks,
        numbers,
        operators,
        menus,
        source: faults.file.to_owned(),
    })
}

fn validate_trunks(raw: &[Spanned<RawTrunk>], faults: &mut Faults<'_>) -> Vec<Trunk> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in raw {
        let t = entry.get_ref();
        let name = t.name.get_ref().trim().to_owned();
        if name.is_empty() || !seen.insert(name.clone()) {
            faults.at(
                Some(&t.name.span()),
                format!("trunk name `{name}` is empty or used twice"),
            );
            continue;
        }
        let Some(proxy) = parse_socket(&t.proxy, "trunk proxy", 5060, faults) else {
            continue;
        };
        if t.channels == Some(0) || t.channels.is_some_and(|c| c > 100_000) {
            faults.at(
                Some(&entry.span()),
                format!("trunk `{name}` channels must be between 1 and 100000"),
            );
        }
        if t.register && (t.username.is_none() || t.password.is_none()) {
            faults.at(
                Some(&entry.span()),
                format!("trunk `{name}` registers but has no username/password"),
            );
        }
        let mut inbound_from = vec![proxy.ip()];
        for addr in &t.inbound_from {
            match addr.get_ref().parse::<IpAddr>() {
                Ok(ip) => inbound_from.push(ip),
                Err(_) => faults.at(
                    Some(&addr.span()),
                    format!(
                        "trunk `{name}` inbound_from `{}` is not an IP address",
                        addr.get_ref()
                    ),
                ),
            }
        }
        out.push(Trunk {
            domain: t.domain.clone().unwrap_or_else(|| proxy.ip().to_string()),
            name,
            proxy,
            transport: t.transport,
            username: t.username.clone(),
            password: t.password.clone(),
            register: t.register,
            register_expires: secs(t.register_expires_s.max(60)),
            options_interval: secs(t.options_interval_s),
            inbound_from,
            channels: t.channels,
        });
    }
    out
}

fn parse_action(text: &str) -> Option<MenuAction> {
    match text.split_once(':') {
        None if text == "queue" => Some(MenuAction::Queue),
        None if text == "hangup" => Some(MenuAction::Hangup),
        Some(("menu", name)) if !name.is_empty() => Some(MenuAction::Menu(name.to_owned())),
        Some(("announcement", prompt)) if !prompt.is_empty() => {
            Some(MenuAction::Announcement(prompt.to_owned()))
        }
        _ => None,
    }
}

fn validate_menus(raw: &[Spanned<RawMenu>], faults: &mut Faults<'_>) -> Vec<Menu> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in raw {
        let m = entry.get_ref();
        let name = m.name.get_ref().clone();
        if !seen.insert(name.clone()) {
            faults.at(
                Some(&m.name.span()),
                format!("menu `{name}` is defined twice"),
            );
            continue;
        }
        let bad_action = |s: &Spanned<String>, faults: &mut Faults<'_>| {
            faults.at(
                Some(&s.span()),
                format!(
                    "menu `{name}`: action `{}` is not queue, hangup, menu:NAME or announcement:PROMPT",
                    s.get_ref()
                ),
            )
        };
        let mut options = Vec::new();
        let mut digits = HashSet::new();
        for option in &m.option {
            let digit = option.digit.get_ref();
            let mut chars = digit.chars();
            let d = match (chars.next(), chars.next()) {
                (Some(d @ ('0'..='9' | '*' | '#')), None) => d,
                _ => {
                    faults.at(
                        Some(&option.digit.span()),
                        format!("menu `{name}`: `{digit}` is not one keypad digit"),
                    );
                    continue;
                }
            };
            if !digits.insert(d) {
                faults.at(
                    Some(&option.digit.span()),
                    format!("menu `{name}`: digit {d} is used twice"),
                );
            }
            match parse_action(option.action.get_ref()) {
                Some(a) => options.push((d, a)),
                None => bad_action(&option.action, faults),
            }
        }
        let default = parse_action(m.default.get_ref()).unwrap_or_else(|| {
            bad_action(&m.default, faults);
            MenuAction::Queue
        });
        out.push(Menu {
            name,
            prompt: m.prompt.clone(),
            timeout: secs(m.timeout_s.max(1)),
            retries: m.retries,
            options,
            default,
        });
    }
    out
}

fn validate_numbers(
    raw: &[Spanned<RawNumber>],
    trunks: &HashSet<&str>,
    menus: &HashSet<&str>,
    faults: &mut Faults<'_>,
) -> Vec<Number> {
    let mut seen: HashMap<PhoneNumber, ()> = HashMap::new();
    let mut out = Vec::new();
    for entry in raw {
        let n = entry.get_ref();
        let span = n.number.span();
        let number = match PhoneNumber::parse(n.number.get_ref()) {
            Ok(p) => p,
            Err(e) => {
                faults.at(Some(&span), format!("number `{}`: {e}", n.number.get_ref()));
                continue;
            }
        };
        if seen.insert(number.clone(), ()).is_some() {
            faults.at(Some(&span), format!("number {number} is configured twice"));
        }
        let needs = |field: &str, present: bool, faults: &mut Faults<'_>| {
            if !present {
                faults.at(
                    Some(&span),
                    format!(
                        "number {number} of kind {} needs `{field}`",
                        n.kind.as_str()
                    ),
                );
            }
        };
        match n.kind {
            NumberKind::Tenant | NumberKind::Legacy | NumberKind::Dispatch => {
                needs("tenant", n.tenant.is_some(), faults)
            }
            NumberKind::Citywide => needs("city", n.city.is_some(), faults),
            NumberKind::Forward => needs("target", n.target.is_some(), faults),
        }
        if let Some(target) = &n.target {
            let t = target.get_ref();
            if !(t.starts_with("sip:") || t.starts_with("sips:")) {
                faults.at(
                    Some(&target.span()),
                    format!("forward target `{t}` is not a sip: URI"),
                );
            }
        }
        if let Some(trunk) = &n.trunk {
            // With no [[trunk]] at all the name is only a label (a file of numbers
            // alone is valid, DESIGN.md); `Config::warnings` mentions it.
            if !trunks.is_empty() && !trunks.contains(trunk.get_ref().as_str()) {
                faults.at(
                    Some(&trunk.span()),
                    format!(
                        "number {number} refers to unknown trunk `{}`",
                        trunk.get_ref()
                    ),
                );
            }
        }
        if let Some(menu) = &n.menu {
            if !menus.contains(menu.get_ref().as_str()) {
                faults.at(
                    Some(&menu.span()),
                    format!(
                        "number {number} refers to unknown menu `{}`",
                        menu.get_ref()
                    ),
                );
            }
        }
        let new_number = n.new_number.as_ref().and_then(|s| {
            PhoneNumber::parse(s.get_ref())
                .map_err(|e| {
                    faults.at(
                        Some(&s.span()),
                        format!("new_number `{}`: {e}", s.get_ref()),
                    )
                })
                .ok()
        });
        out.push(Number {
            number,
            kind: n.kind,
            tenant: n.tenant.clone(),
            city: n.city.clone(),
            trunk: n.trunk.as_ref().map(|t| t.get_ref().clone()),
            greeting: n.greeting.clone(),
            target: n.target.as_ref().map(|t| t.get_ref().clone()),
            new_number,
            menu: n.menu.as_ref().map(|m| m.get_ref().clone()),
            line: faults.line_of(&span),
        });
    }
    out
}

fn validate_operators(raw: &[Spanned<RawOperator>], faults: &mut Faults<'_>) -> Vec<Operator> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in raw {
        let o = entry.get_ref();
        let ext = o.extension.get_ref().trim().to_owned();
        let valid = !ext.is_empty()
            && ext
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            faults.at(
                Some(&o.extension.span()),
                format!("operator extension `{ext}` must be letters, digits, - _ ."),
            );
            continue;
        }
        if !seen.insert(ext.clone()) {
            faults.at(
                Some(&o.extension.span()),
                format!("operator extension {ext} is defined twice"),
            );
            continue;
        }
        if o.password.get_ref().len() < 4 {
            faults.at(
                Some(&o.password.span()),
                format!("operator {ext}: password is shorter than 4 characters"),
            );
        }
        out.push(Operator {
            name: o.name.clone().unwrap_or_else(|| ext.clone()),
            extension: ext,
            password: o.password.get_ref().clone(),
            sip: None,
            role: o.role,
            tenants: o.tenants.clone(),
            cities: o.cities.clone(),
            auto_answer: o.auto_answer,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn sip_timers_are_bounded() {
        for bad in [
            "t1_ms = 0",
            "t1_ms = 10001\nt2_ms = 20000",
            "t1_ms = 18446744073709551615",
            "t2_ms = 60001",
            "t4_ms = 60001",
            "forward_no_answer_s = 0",
        ] {
            let e = parse(&format!("[sip]\n{bad}\n")).unwrap_err();
            assert!(e.to_string().contains("[sip]"), "{bad}: {e}");
        }
        let c = parse("[sip]\nt1_ms = 10000\nt2_ms = 60000\nt4_ms = 60000\n").unwrap();
        assert_eq!(c.sip.t1, Duration::from_secs(10));
        assert_eq!(
            Config::empty().sip.forward_no_answer,
            Duration::from_secs(190)
        );
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::empty();
        assert!(c.numbers.is_empty());
        assert_eq!(c.sip.t1, Duration::from_millis(500));
    }

    #[test]
    fn a_file_of_numbers_only_is_valid() {
        let c = parse(
            r#"
[[number]]
number = "+73432000001"
kind = "tenant"
tenant = "etalon"
greeting = "ru/greeting-etalon.wav"

[[number]]
number = "100"
kind = "forward"
target = "sip:127.0.0.1:5080"
"#,
        )
        .unwrap();
        assert_eq!(c.numbers.len(), 2);
        assert_eq!(c.number("83432000001").unwrap().kind, NumberKind::Tenant);
        assert_eq!(
            c.number("100").unwrap().target.as_deref(),
            Some("sip:127.0.0.1:5080")
        );
        assert!(c.number("101").is_none());
        assert!(
            c.warnings()[0].contains("no [[trunk]]"),
            "{:?}",
            c.warnings()
        );
    }

    #[test]
    fn numbers_may_name_a_trunk_when_none_is_configured_but_not_a_wrong_one() {
        let numbers = "[[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ntrunk = \"provider-x\"\n";
        let c = parse(numbers).unwrap();
        assert!(
            c.warnings().iter().any(|w| w.contains("`provider-x`")),
            "{:?}",
            c.warnings()
        );
        let with_trunk =
            format!("{numbers}[[trunk]]\nname = \"provider-y\"\nproxy = \"127.0.0.1\"\n");
        let err = parse(&with_trunk).unwrap_err().to_string();
        assert!(err.contains("unknown trunk `provider-x`"), "{err}");
    }

    #[test]
    fn zero_timers_and_bad_inbound_addresses_are_refused() {
        let err = parse(
            "[sip]\ninbound_from = [\"10.0.0.1\", \"nowhere\"]\n[queue]\nring_timeout_s = 0\nannounce_interval_s = 0\n[dialer]\nring_timeout_s = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[queue] ring_timeout_s must be at least 1"),
            "{err}"
        );
        assert!(err.contains("[queue] announce_interval_s"), "{err}");
        assert!(err.contains("[dialer] ring_timeout_s"), "{err}");
        assert!(
            err.contains("test.toml:2: sip.inbound_from `nowhere`"),
            "{err}"
        );
    }

    #[test]
    fn every_fault_is_listed_with_its_line() {
        let err = parse(
            r#"[sip]
listen = "nowhere"

[[number]]
number = "+73432000001"
kind = "tenant"

[[number]]
number = "100"
kind = "forward"
target = "http://x"
trunk = "nope"

[[number]]
number = "+73432000001"
kind = "citywide"
city = "ekb"
colour = "red"

[[trunk]]
name = "provider-x"
proxy = "127.0.0.1:5070"
"#,
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("test.toml:2: sip.listen `nowhere`"), "{text}");
        assert!(
            text.contains("test.toml:5: number +73432000001 of kind tenant needs `tenant`"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:11: forward target `http://x`"),
            "{text}"
        );
        assert!(
            text.contains("test.toml:12: number 100 refers to unknown trunk `nope`"),
            "{text}"
        );
        assert!(text.contains("unknown field `colour`"), "{text}");
        assert!(err.faults.len() >= 5, "{text}");
    }

    #[test]
    fn media_addresses_and_the_rtp_timeout_are_bounded() {
        let err = parse("[sip]\nlisten = \"0.0.0.0:5060\"\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("test.toml:2: sip.listen `0.0.0.0:5060` is every interface"),
            "{text}"
        );
        let err = parse("[sip]\nlisten = \"0.0.0.0:5060\"\nadvertised_address = \"0.0.0.0\"\n")
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("test.toml:3: sip.advertised_address `0.0.0.0` is not an address"),
            "{err}"
        );
        let ok = parse("[sip]\nlisten = \"0.0.0.0:5060\"\nadvertised_address = \"203.0.113.7\"\n")
            .unwrap();
        assert_eq!(
            ok.sip.advertised_address,
            Some("203.0.113.7".parse().unwrap())
        );
        let err = parse("[media]\nrtp_timeout_s = 9223372036854775807\n").unwrap_err();
        assert!(err.to_string().contains("media.rtp_timeout_s"), "{err}");
        assert!(parse("[media]\nrtp_timeout_s = 3600\n").is_ok());
    }

    #[test]
    fn syntax_errors_have_lines() {
        let err = parse("[[number]]\nnumber = \"1\"\nkind = \n").unwrap_err();
        assert_eq!(err.faults[0].line, Some(3), "{err}");
    }
}

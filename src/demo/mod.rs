//! `dispatchline demo`: the engine on its embedded default configuration and the
//! demo data set, with simulated parties speaking real SIP and RTP over loopback, so
//! a newcomer sees every flow in the console within a minute.
//!
//! - Residents call the tenants' numbers, the citywide number (known and unknown
//!   callers, one with a debt) and the old number; now and then one gives up while
//!   waiting and is called back; a staff member calls the dispatch line.
//! - Operator 1001's softphone is driven from the console: log in as 1001, go
//!   ready, and press "answer" on the call card (`POST /demo/softphones/1001/answer`).
//! - Operators 1002 and 1003 are simulated colleagues who answer by themselves.
//! - A simulated provider answers the calls the engine places through the trunks:
//!   residents called back, and the people of an emergency ticket's hand-off chain
//!   ([`handoff`]): a burst pipe is registered ten seconds after start and every
//!   five minutes, and its chain runs through three levels within a minute.
//! - The follow-up calls ([`follow_ups`]): within a minute, a status check the
//!   executor answers by keypad, a resident's feedback call rated 4, a ticket
//!   handed over to the heating company by an operator, and an outage told to a
//!   house's residents by phone.
//! - УК «Уют»'s number runs an IVR menu ([`DEMO_MENU`]); most simulated residents
//!   calling it press 1 (emergency) or 0 (operator) while it plays, the others let
//!   it time out to the queue.
//!
//! The prompts are read from `ivr-prompts/` in the working directory, or else from
//! the source tree the binary was built from ([`prompts_dir`]), so `demo` runs from
//! any directory on the machine that built it; elsewhere it says where it looked.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use rand::{Rng, RngExt, SeedableRng};

use crate::call::OperatorState;
use crate::config::{Config, Menu, MenuAction, Role};
use crate::media::{MediaEngine, PromptLibrary};
use crate::server::Engine;
use crate::sim::{Behaviour, Command, PhoneEvent, SimPhone, SimProvider};

pub mod follow_ups;
pub mod handoff;

const DEFAULT_CONFIG: &str = include_str!("../../sip-config/dispatchline.toml");

/// The console login the demo prints (operator 1001 of the default configuration).
pub const LOGIN: (&str, &str) = ("1001", "op1001pass");
/// The supervisor's login of the default configuration.
pub const SUPERVISOR: (&str, &str) = ("2001", "sup2001pass");

/// The IVR menu the demo puts on УК «Уют»'s number.
pub const DEMO_MENU: &str = "demo-main";
/// The number that runs it.
pub const MENU_NUMBER: &str = "+73432000002";

/// Where the prompts are: `ivr-prompts/` here, or in the source tree this binary
/// was built from; an error naming both when neither holds them.
pub fn prompts_dir() -> Result<PathBuf, crate::Error> {
    let here = PathBuf::from("ivr-prompts");
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts");
    for dir in [&here, &built] {
        if dir.join("ru").is_dir() {
            return Ok(dir.clone());
        }
    }
    Err(crate::Error::io(
        format!(
            "finding the IVR prompts (looked in {} and {}; run the demo from the repository)",
            std::env::current_dir()
                .map(|d| d.join(&here))
                .unwrap_or(here.clone())
                .display(),
            built.display()
        ),
        std::io::Error::from(std::io::ErrorKind::NotFound),
    ))
}

fn free_port() -> std::io::Result<u16> {
    loop {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}

/// A running demo: the engine, the simulated softphones by extension, and the
/// parties' media engine.
pub struct Demo {
    /// The engine.
    pub engine: Engine,
    /// The operators' simulated softphones, by extension.
    pub phones: HashMap<String, SimPhone>,
    /// The simulated parties' RTP stack.
    pub media: MediaEngine,
    residents: Option<tokio::task::JoinHandle<()>>,
    /// The demo's chain policy, in words.
    pub policy: String,
}

impl std::fmt::Debug for Demo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Demo")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// Runs the demo until Ctrl-C.
pub async fn run(http_listen: SocketAddr, data_dir: &Path) -> Result<(), crate::Error> {
    let demo = start(http_listen, data_dir, true).await?;
    let config = &demo.engine;
    println!();
    println!("  dispatchline demo is running.");
    println!();
    println!("  Console:    http://{}/", config.http_addr);
    println!(
        "  Operator:   {} / {}   (your softphone is simulated: go ready, then press Answer on a call)",
        LOGIN.0, LOGIN.1
    );
    println!(
        "  Supervisor: {} / {}   (the live board)",
        SUPERVISOR.0, SUPERVISOR.1
    );
    println!(
        "  SIP:        {}  (residents, operators and a provider are simulated on loopback)",
        config.sip_addr
    );
    println!("  Data:       {}", data_dir.display());
    println!();
    println!(
        "  Hand-off:   a burst pipe at ул. Малышева, д. 51 is registered 10 s after start and every 5 min;"
    );
    println!(
        "              level 1 ({}) does not answer, level 2 ({}) is busy,",
        handoff::LEVEL1.0,
        handoff::LEVEL2.0
    );
    println!(
        "              level 3 ({}) takes the informer's call and presses 1.",
        handoff::LEVEL3.0
    );
    println!("              Demo policy: {}", demo.policy);
    println!(
        "  Follow-ups: a status check (20 s), a feedback call rated 4 (35 s), a ticket handed over to"
    );
    println!(
        "              the heating company through an operator (30 s) and a hot water outage told to"
    );
    println!("              the residents of ул. Малышева, д. 51 by phone (40 s).");
    println!();
    println!("  Ctrl-C stops it.");
    println!();
    let _ = tokio::signal::ctrl_c().await;
    demo.stop().await;
    Ok(())
}

impl Demo {
    /// Stops the simulated residents, then the engine (draining calls).
    pub async fn stop(self) {
        if let Some(r) = self.residents {
            r.abort();
        }
        self.media.shutdown();
        self.engine.shutdown(Duration::from_secs(5)).await;
    }
}

/// Starts the demo in `data_dir` (emptied first); with `residents`, simulated
/// residents start calling at once.
pub async fn start(
    http_listen: SocketAddr,
    data_dir: &Path,
    residents: bool,
) -> Result<Demo, crate::Error> {
    let _ = std::fs::remove_dir_all(data_dir);
    std::fs::create_dir_all(data_dir)
        .map_err(|e| crate::Error::io(format!("creating {}", data_dir.display()), e))?;
    let prompts_dir = prompts_dir()?;
    let prompts =
        Arc::new(PromptLibrary::load(&prompts_dir).map_err(crate::media::MediaError::from)?);

    // The parties' own RTP stack: a second media engine on its own port range.
    let mut sim_media_settings = Config::empty().media;
    sim_media_settings.rtp_port_min = 40000;
    sim_media_settings.rtp_port_max = 44999;
    sim_media_settings.prompts_dir = prompts_dir.clone();
    let (sim_media, mut sim_media_events) = MediaEngine::start(
        &sim_media_settings,
        prompts,
        "127.0.0.1"
            .parse()
            .map_err(|_| crate::Error::io("loopback", std::io::Error::other("bad address")))?,
    )?;
    tokio::spawn(async move { while sim_media_events.recv().await.is_some() {} });

    let sip_port = free_port().map_err(|e| crate::Error::io("finding a free port", e))?;
    let engine_addr = SocketAddr::from(([127, 0, 0, 1], sip_port));
    let voice = |name: &str| format!("ru/{name}.wav");
    let mut script = handoff::script();
    follow_ups::parties(&mut script.parties);
    let provider = SimProvider::start(sim_media.clone(), script)
        .await
        .map_err(|e| crate::Error::io("starting the simulated provider", e))?;

    let mut config =
        crate::config::Config::parse(DEFAULT_CONFIG, Path::new("sip-config/dispatchline.toml"))?;
    config.sip.listen = engine_addr;
    config.http.listen = http_listen;
    config.database.data_dir = data_dir.to_owned();
    config.database.url = format!("sqlite://{}", data_dir.join("dispatchline.db").display());
    config.media.prompts_dir = prompts_dir;
    for trunk in &mut config.trunks {
        trunk.proxy = provider.addr();
        trunk.inbound_from = vec![provider.addr().ip()];
        trunk.options_interval = Duration::ZERO;
    }
    config.queue.ring_timeout = Duration::from_secs(20);
    config.queue.wrap_up = Duration::from_secs(5);
    config.queue.abandon_threshold = Duration::from_secs(10);
    config.queue.callback_after = Duration::from_secs(120);
    config.dialer.attempt_interval = Duration::from_secs(30);
    handoff::policy(&mut config);
    follow_ups::policy(&mut config);
    let policy = handoff::describe(&config);
    // An IVR menu on one number, so the console shows keys being pressed.
    config.menus.push(Menu {
        name: DEMO_MENU.to_owned(),
        prompt: "ru/menu-main.wav".to_owned(),
        timeout: Duration::from_secs(5),
        retries: 1,
        options: vec![
            ('1', MenuAction::Queue),
            ('2', MenuAction::Queue),
            ('0', MenuAction::Queue),
        ],
        default: MenuAction::Queue,
    });
    for number in &mut config.numbers {
        if number.number.to_string() == MENU_NUMBER {
            number.menu = Some(DEMO_MENU.to_owned());
        }
    }

    // Operators: 1001 is the person at the console, the others are simulated.
    let mut phones: HashMap<String, SimPhone> = HashMap::new();
    let operators: Vec<_> = config
        .operators
        .iter()
        .filter(|o| o.role == Role::Operator)
        .cloned()
        .collect();
    for (i, op) in operators.iter().enumerate() {
        let behaviour = if op.extension == LOGIN.0 {
            Behaviour {
                auto_answer: None,
                hang_up_after: None,
                voice: voice("connecting"),
            }
        } else {
            Behaviour {
                auto_answer: Some(Duration::from_secs(3 + i as u64)),
                hang_up_after: Some(Duration::from_secs(20 + 5 * i as u64)),
                voice: voice("informer-accepted"),
            }
        };
        let phone = SimPhone::start(engine_addr, sim_media.clone(), behaviour)
            .await
            .map_err(|e| crate::Error::io("starting a softphone", e))?;
        phones.insert(op.extension.clone(), phone);
    }

    let demo_phones = phones.clone();
    let routes = move |store: crate::store::Store| {
        Router::new()
            .route(
                "/demo",
                get(|| async {
                    axum::Json(serde_json::json!({ "demo": true, "softphones": [LOGIN.0] }))
                }),
            )
            .route("/demo/softphones/{ext}/answer", post(answer))
            .route("/demo/softphones/{ext}/hangup", post(hang_up))
            .with_state(Arc::new(DemoState {
                phones: demo_phones,
                store,
            }))
    };
    // The store holds the demo's companies before the engine starts: its numbers
    // name them, and the first calls find them.
    let seeding = crate::store::Store::connect(&config.database.url).await?;
    seeding.migrate().await?;
    crate::store::demo::seed(&seeding).await?;
    handoff::seed(&seeding).await?;
    follow_ups::seed(&seeding).await?;
    seeding.close().await;
    let engine = Engine::start_with_routes(config.clone(), routes).await?;

    for op in &operators {
        if let Some(phone) = phones.get(&op.extension) {
            let mut events = phone.events();
            phone.send(Command::Register {
                user: op.extension.clone(),
                password: op.password.clone(),
            });
            let _ = tokio::time::timeout(Duration::from_secs(5), async {
                while let Ok(e) = events.recv().await {
                    if e == PhoneEvent::Registered {
                        break;
                    }
                }
            })
            .await;
        }
        if op.extension != LOGIN.0 {
            let _ = engine
                .call_handle
                .set_operator_state(&op.extension, OperatorState::Ready, None)
                .await;
        }
    }

    let handle = residents.then(|| {
        let (store, media) = (engine.store.clone(), sim_media.clone());
        let (bus, config) = (engine.events.clone(), config.clone());
        tokio::spawn(async move {
            tokio::join!(
                simulated_residents(engine_addr, media),
                handoff::burst_pipes(store.clone()),
                follow_ups::run(store, bus, config)
            );
        })
    });
    Ok(Demo {
        engine,
        phones,
        media: sim_media,
        residents: handle,
        policy,
    })
}

/// Who the simulated residents are and what they dial.
struct Scenario {
    number: &'static str,
    from: String,
    talk: Duration,
    digits: Vec<char>,
}

fn pick_scenario(rng: &mut impl Rng) -> Scenario {
    let talk = Duration::from_secs(rng.random_range(30..60));
    let roll = rng.random_range(0..100);
    let (number, from): (&str, String) = match roll {
        0..=29 => ("+73432000001", "+79120000001".into()), // etalon, known, outage at the house
        30..=44 => ("+73432000002", "+79120000002".into()), // uyut, known
        45..=59 => ("+73432000100", "+79120000003".into()), // citywide, known, owes money
        60..=71 => (
            "+73432000100",
            format!("+7912{:07}", rng.random_range(1_000_000..9_999_999)),
        ), // unknown
        72..=81 => ("+73432999001", "+79120000001".into()), // the old number
        82..=89 => ("+73432000900", "+79122000100".into()), // a staff member calls the dispatch line
        _ => (
            "+73432000001",
            format!("+7912{:07}", rng.random_range(1_000_000..9_999_999)),
        ), // gives up early
    };
    let talk = if roll >= 90 {
        Duration::from_secs(rng.random_range(14..20))
    } else {
        talk
    };
    // On the menu's number most press a key once the menu plays (after the
    // five-second greeting): 1 for an emergency, 0 for an operator.
    let digits = if number == MENU_NUMBER {
        match rng.random_range(0..3) {
            0 => menu_keys('1'),
            1 => menu_keys('0'),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    Scenario {
        number,
        from,
        talk,
        digits,
    }
}

/// Presses `key` about seven seconds after the answer: during the menu's prompt.
pub fn menu_keys(key: char) -> Vec<char> {
    let mut keys = vec![','; 5];
    keys.push(key);
    keys
}

async fn simulated_residents(engine: SocketAddr, media: MediaEngine) {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(rand::random());
    // The first call comes at once, so the console shows something straight away.
    let mut pause = Duration::from_secs(2);
    loop {
        tokio::time::sleep(pause).await;
        pause = Duration::from_secs(rng.random_range(15..35));
        let s = pick_scenario(&mut rng);
        let behaviour = Behaviour {
            auto_answer: None,
            hang_up_after: Some(s.talk),
            voice: "ru/ticket-number-ask.wav".into(),
        };
        let Ok(phone) = SimPhone::start(engine, media.clone(), behaviour).await else {
            continue;
        };
        tracing::info!(number = s.number, from = %s.from, talk = ?s.talk, "simulated resident calls");
        let mut events = phone.events();
        phone.send(Command::Call {
            number: s.number.into(),
            from: s.from,
            digits: s.digits,
        });
        tokio::spawn(async move {
            let limit = tokio::time::sleep(Duration::from_secs(600));
            tokio::pin!(limit);
            loop {
                tokio::select! {
                    event = events.recv() => match event {
                        Ok(PhoneEvent::Ended { .. }) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = &mut limit => {
                        phone.send(Command::HangUp);
                        break;
                    }
                }
            }
        });
    }
}

/// The demo's softphones, for the console's buttons.
struct DemoState {
    phones: HashMap<String, SimPhone>,
    store: crate::store::Store,
}

async fn allowed(engine_store: &crate::store::Store, headers: &HeaderMap, ext: &str) -> bool {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match crate::console::api::authenticate(engine_store, token).await {
        Ok(p) => p.extension == ext || p.role == Role::Supervisor,
        Err(_) => false,
    }
}

async fn control(
    state: &DemoState,
    headers: &HeaderMap,
    ext: &str,
    command: Command,
) -> StatusCode {
    if !allowed(&state.store, headers, ext).await {
        return StatusCode::FORBIDDEN;
    }
    match state.phones.get(ext) {
        Some(phone) => {
            phone.send(command);
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

async fn answer(
    State(state): State<Arc<DemoState>>,
    UrlPath(ext): UrlPath<String>,
    headers: HeaderMap,
) -> StatusCode {
    control(&state, &headers, &ext, Command::Answer).await
}

async fn hang_up(
    State(state): State<Arc<DemoState>>,
    UrlPath(ext): UrlPath<String>,
    headers: HeaderMap,
) -> StatusCode {
    control(&state, &headers, &ext, Command::HangUp).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_configuration_is_valid() {
        let config =
            Config::parse(DEFAULT_CONFIG, Path::new("sip-config/dispatchline.toml")).unwrap();
        assert!(
            config
                .operator(LOGIN.0)
                .is_some_and(|o| o.password == LOGIN.1)
        );
    }

    #[test]
    fn some_residents_press_keys_on_the_menus_number() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let scenarios: Vec<Scenario> = (0..300).map(|_| pick_scenario(&mut rng)).collect();
        let pressing: Vec<&Scenario> = scenarios.iter().filter(|s| !s.digits.is_empty()).collect();
        assert!(!pressing.is_empty());
        assert!(pressing.iter().all(|s| s.number == MENU_NUMBER));
        assert!(pressing.iter().any(|s| s.digits.last() == Some(&'1')));
        assert!(pressing.iter().any(|s| s.digits.last() == Some(&'0')));
    }

    #[test]
    fn the_prompts_are_found_from_the_source_tree() {
        assert!(prompts_dir().unwrap().join("ru/menu-main.wav").is_file());
    }

    #[test]
    fn scenarios_cover_every_kind_of_number() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let numbers: std::collections::HashSet<&str> =
            (0..500).map(|_| pick_scenario(&mut rng).number).collect();
        for n in [
            "+73432000001",
            "+73432000002",
            "+73432000100",
            "+73432999001",
            "+73432000900",
        ] {
            assert!(numbers.contains(n), "{n}");
        }
    }
}

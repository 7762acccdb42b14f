//! Assembles the engine from its parts and runs it until SIGTERM.
//!
//! [`Engine::start`] checks the prompts and the media address, repairs recordings a
//! crash left unfinished, binds everything (port 0 in the configuration picks free
//! ports, which is how the tests run many engines side by side) and returns the
//! addresses actually bound; [`serve`] adds signal handling. Shutdown drains: new
//! calls are refused with 503, calls in progress run to their end (or are ended
//! after a grace period), then the listeners close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::call::driver::{CallStats, Shutdown};
use crate::call::{Admission, CallControl, CallHandle};
use crate::config::Config;
use crate::console::{self, ConsoleState};
use crate::events::EventBus;
use crate::sip::endpoint::{Endpoint, EndpointConfig};
use crate::sip::transaction::TimerSettings;
use crate::sip::transport::driver::{TransportSettings, Transports};
use crate::sip::wire::Host;

/// Every prompt the engine may play: those the configuration names, those the call
/// layer plays by fixed name (outage and debt parts, goodbye, ...) and every number
/// fragment speech joins, relative to the prompts directory.
pub fn required_prompts(config: &Config) -> Vec<String> {
    let mut all = config.referenced_prompts();
    all.extend(crate::call::announcements::fixed_prompts(config));
    all.sort();
    all.dedup();
    all
}

/// Loads the prompt library as `serve` plays it and checks that it holds every
/// [`required_prompts`] entry. Any bad WAV anywhere under the directory is a fault
/// (the library refuses it), as is a required prompt that is missing. Returns the
/// library, or one message per fault naming the file and what is wrong; `check-config`
/// prints them and `serve` refuses to start with the same ones.
pub fn load_prompts(config: &Config) -> Result<crate::media::PromptLibrary, Vec<String>> {
    let dir = &config.media.prompts_dir;
    let (lib, bad) = crate::media::PromptLibrary::load_all(dir)
        .map_err(|e| vec![format!("prompts directory: {e}")])?;
    let root = |path: &std::path::Path| {
        path.strip_prefix(dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| path.display().to_string())
    };
    let mut faults = Vec::new();
    let mut broken = std::collections::HashSet::new();
    for e in bad {
        let name = match &e {
            crate::media::PromptError::Io { path, .. }
            | crate::media::PromptError::Format { path, .. }
            | crate::media::PromptError::Truncated { path, .. } => root(path),
            other => other.to_string(),
        };
        broken.insert(name.clone());
        faults.push(format!("prompt {name}: {e}"));
    }
    for p in required_prompts(config) {
        if !lib.contains(&p) && !broken.contains(&p) {
            faults.push(format!("prompt {} not found under {}", p, dir.display()));
        }
    }
    if faults.is_empty() {
        Ok(lib)
    } else {
        Err(faults)
    }
}

/// Checks the prompts as [`load_prompts`] does, for `check-config`.
pub fn check_prompts(config: &Config) -> Result<(), Vec<String>> {
    load_prompts(config).map(|_| ())
}

/// The address media is advertised at (SDP `c=`): the configured
/// `sip.advertised_address`, else the SIP listen address. Listening on every
/// interface with nothing to advertise is refused: `0.0.0.0` in SDP means hold.
fn advertised_media_ip(config: &Config) -> Result<std::net::IpAddr, crate::Error> {
    match config.sip.advertised_address {
        Some(ip) => Ok(ip),
        None if config.sip.listen.ip().is_unspecified() => {
            Err(crate::Error::Config(crate::config::ConfigError {
                faults: vec![crate::config::ConfigFault {
                    file: "[sip]".into(),
                    line: None,
                    message: crate::config::unadvertised(config.sip.listen),
                }],
            }))
        }
        None => Ok(config.sip.listen.ip()),
    }
}

/// A running engine.
#[derive(Debug)]
pub struct Engine {
    /// The SIP address (UDP and TCP) actually bound.
    pub sip_addr: SocketAddr,
    /// The HTTP address actually bound.
    pub http_addr: SocketAddr,
    /// The event bus (tests subscribe to it directly).
    pub events: EventBus,
    /// Call counters.
    pub calls: Arc<CallStats>,
    /// Queries and orders for the call core.
    pub call_handle: CallHandle,
    /// SIP transport counters.
    pub sip: Arc<crate::sip::transport::driver::TransportStats>,
    /// The ticket store.
    pub store: crate::store::Store,
    /// The media engine (for its statistics).
    pub media: crate::media::MediaEngine,
    /// The hand-off chains of this node.
    pub chains: crate::dialer::driver::ChainHandle,
    /// What they have done.
    pub chain_stats: Arc<crate::dialer::runner::ChainStats>,
    /// This node's stable id (its leases on dial jobs and chains).
    pub node: String,
    ws_clients: Arc<crate::console::ws::WsStats>,
    shutdown: watch::Sender<Shutdown>,
    stopping: watch::Sender<bool>,
    http_stop: watch::Sender<bool>,
    core: JoinHandle<()>,
    dialer: JoinHandle<()>,
    planner: JoinHandle<()>,
    heartbeat: JoinHandle<()>,
    http: JoinHandle<()>,
    roster_sync: JoinHandle<()>,
}

impl Engine {
    /// Binds and starts every part of the engine.
    pub async fn start(config: Config) -> Result<Self, crate::Error> {
        Self::start_with_routes(config, |_| axum::Router::new()).await
    }

    /// Like [`Engine::start`], with more HTTP routes built from the store (the demo's
    /// softphone controls).
    pub async fn start_with_routes(
        config: Config,
        extra: impl FnOnce(crate::store::Store) -> axum::Router,
    ) -> Result<Self, crate::Error> {
        // Refused before anything binds: media that would advertise 0.0.0.0 and
        // prompts that would fail a call later.
        let media_advertised = advertised_media_ip(&config)?;
        let prompts = load_prompts(&config).map_err(|faults| {
            crate::Error::Media(crate::media::MediaError::Prompt(
                crate::media::PromptError::Checks(faults),
            ))
        })?;
        // Recordings a crash left unfinished get their headers repaired (in the
        // background: only files older than this start are touched).
        let started = std::time::SystemTime::now();
        let recordings = config.recordings_dir();
        let repaired = std::thread::Builder::new()
            .name("recording-recovery".into())
            .spawn(move || crate::media::recording::recover_unfinished(&recordings, started))
            .ok();
        let mut config = config;
        let store = crate::store::Store::connect(&config.database.url).await?;
        store.migrate().await?;
        // On PostgreSQL the bus is this node's view of the cluster's stream.
        let node = node_id(&config.database.data_dir)?;
        let events =
            crate::events::cluster::bus_for(&store, &node, config.http.event_history_bytes).await?;
        let store = store.with_events(events.clone());
        // The accounts live in the store; the file's [[operator]] tables seed the
        // ones it has never had. The call core works from the store's roster.
        let created = store
            .seed_users(&config.seed_users(), &config.sip.realm)
            .await?;
        if !created.is_empty() {
            tracing::info!(accounts = ?created, "accounts created from the configuration's [[operator]] tables");
        }
        config.operators = softphone_roster(&store, &config.sip.realm).await?;
        for fault in store.check_agreement(&config.store_references()).await? {
            tracing::error!("{fault}");
        }
        let config = Arc::new(config);
        let (inbound_tx, inbound_rx) = mpsc::channel(16 * 1024);
        let transports = Transports::bind(
            TransportSettings {
                tcp_idle_timeout: config.sip.tcp_idle_timeout,
                shed_fill: 0.5,
                shed_lag: Duration::from_millis(40),
                retry_after: 5,
                max_tcp_connections: config.sip.max_tcp_connections,
                edge: Some(config.security.edge.clone()),
                trusted: config.edge_trusted(),
                ..TransportSettings::new(config.sip.listen)
            },
            inbound_tx,
        )
        .await
        .map_err(|e| crate::Error::io(format!("binding SIP on {}", config.sip.listen), e))?;
        let sip_addr = transports
            .local_addr()
            .map_err(|e| crate::Error::io("reading the SIP address", e))?;

        let mut endpoint_config = EndpointConfig::new(sip_addr);
        endpoint_config.timers = TimerSettings {
            t1: config.sip.t1,
            t2: config.sip.t2,
            t4: config.sip.t4,
        };
        endpoint_config.user_agent = config.sip.user_agent.clone();
        endpoint_config.max_transactions = config.sip.max_transactions;
        if let Some(ip) = config.sip.advertised_address {
            endpoint_config.advertised = Host::Ip(ip);
        }
        let endpoint = Endpoint::new(endpoint_config, rand::random());
        let admission = Admission {
            max_concurrent: config.sip.max_concurrent_calls,
            max_rate: config.sip.max_call_rate,
            retry_after: 5,
        };
        // Media binds where SIP listens (an address of this host, or every
        // interface) and is advertised separately: behind 1:1 NAT the advertised
        // address is not one this host has.
        let (media, media_events) = crate::media::MediaEngine::start_with(
            &config.media,
            Arc::new(prompts),
            sip_addr.ip(),
            crate::media::EngineOptions {
                advertised_ip: Some(media_advertised),
                ..Default::default()
            },
        )?;
        let mut control = CallControl::new(
            config.clone(),
            endpoint,
            Box::new(media.clone()),
            admission,
            tokio::time::Instant::now().into_std(),
            chrono::Utc::now(),
        )
        .with_auth_key(
            &crate::sip::digest::random_key().ok_or_else(|| {
                crate::Error::io(
                    "drawing the digest nonce key",
                    std::io::Error::other("the OS gave no randomness"),
                )
            })?,
            tokio::time::Instant::now().into_std(),
        );
        if store.dialect() == "postgres" {
            // PostgreSQL is the cluster's store: operators, their softphones and the
            // queue are shared with every node on it (one node alone shares with
            // nobody, at the cost of a row lock per offer).
            control.share_floor();
        }
        let (call_handle, queries) = CallHandle::channel();
        let (chain_orders_tx, chain_orders) = mpsc::unbounded_channel();
        let (chain_reports, chain_reports_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(CallStats::default());
        // Store work a crash left in the write-ahead spool goes in first: the rows
        // recovery closes must be there.
        let spool =
            crate::call::driver::replay_spool(&store, &events, &node, &config, stats.clone()).await;
        // Jobs a crash left claimed under this node's stable id are due again now.
        let released = store
            .release_node_dial_jobs(&node, chrono::Utc::now())
            .await?;
        if released > 0 {
            tracing::warn!(%node, jobs = released, "dial jobs this node held when it stopped are handed back");
        }
        crate::call::recovery::recover_calls(&store, &config, &node).await?;
        if let Some(repaired) = repaired {
            // Recordings the crash cut off are linked to their calls once repaired.
            let (store, events) = (store.clone(), events.clone());
            tokio::spawn(async move {
                let paths =
                    tokio::task::spawn_blocking(move || repaired.join().unwrap_or_default())
                        .await
                        .unwrap_or_default();
                crate::call::recovery::link_repaired(&store, &events, &paths).await;
            });
        }
        let (shutdown, shutdown_rx) = watch::channel(Shutdown::Running);
        let (http_stop, http_shutdown) = watch::channel(false);
        let (dropped_jobs_tx, dropped_jobs) = mpsc::unbounded_channel();
        let library = media.prompts().clone();
        let prompts: crate::dialer::runner::PromptCheck =
            Arc::new(move |p: &str| library.contains(p));
        let core = tokio::spawn(crate::call::driver::run(crate::call::driver::Core {
            control,
            transports: transports.clone(),
            load: transports.load(),
            inbound: inbound_rx,
            media: media_events,
            queries,
            store: store.clone(),
            node: node.clone(),
            events: events.clone(),
            stats: stats.clone(),
            shutdown: shutdown_rx,
            chain_orders,
            chain_reports,
            dropped_jobs,
            prompts: prompts.clone(),
            spool,
        }));

        // Known alive to the other nodes while this runs: if it dies, they take its
        // jobs and chains within seconds instead of when their leases run out.
        if let Err(e) = store.node_started(&node, chrono::Utc::now()).await {
            tracing::warn!(error = %e, %node, "cannot announce this node");
        }
        // And it recovers the calls of nodes that died (one survivor for each).
        let heartbeat = tokio::spawn({
            // The heartbeat says when this node may judge the others (Judge).
            let (judging_tx, judging) = watch::channel(false);
            let peers = crate::call::recovery::watch_peers(
                store.clone(),
                events.clone(),
                config.clone(),
                node.clone(),
                judging,
            );
            let alive = keep_alive(store.clone(), node.clone(), judging_tx);
            async move {
                tokio::join!(alive, peers);
            }
        });
        let (chain_handle, chain_commands) = crate::dialer::driver::ChainHandle::channel();
        let (stopping_tx, stopping) = watch::channel(false);
        let planner = tokio::spawn(crate::dialer::planner::run(
            crate::dialer::planner::Planner::new(
                store.clone(),
                events.clone(),
                config.follow_ups.clone(),
                config.dialer.attempts,
            ),
            dropped_jobs_tx,
            stopping.clone(),
        ));
        let runner = crate::dialer::runner::ChainRunner::new(
            store.clone(),
            events.clone(),
            crate::dialer::runner::RunnerSettings {
                node: node.clone(),
                chains: Arc::new(config.chains.clone()),
                language: config.media.language.clone(),
                lease: crate::dialer::CHAIN_LEASE,
                catch_up: Duration::from_secs(24 * 3600),
            },
            prompts,
            chain_orders_tx,
            tokio::time::Instant::now().into_std(),
            chrono::Utc::now(),
        );
        let chain_stats = runner.stats();
        let dialer = tokio::spawn(crate::dialer::driver::run(crate::dialer::driver::Task {
            runner,
            reports: chain_reports_rx,
            commands: chain_commands,
            bus: events.clone(),
            stopping,
        }));

        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| crate::Error::io(format!("binding HTTP on {}", config.http.listen), e))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| crate::Error::io("reading the HTTP address", e))?;
        let api = console::api::ApiState::new(store.clone(), events.clone(), config.clone())
            .with_calls(call_handle.clone())
            .with_chains(chain_handle.clone())
            .with_node(&node);
        let roster_sync = tokio::spawn(sync_roster(
            store.clone(),
            call_handle.clone(),
            config.sip.realm.clone(),
            api.accounts_changed.clone(),
            config.operators.clone(),
        ));
        let console = ConsoleState::new(events.clone(), stats.clone(), transports.stats())
            .with_chains(chain_stats.clone())
            .with_metrics_token(&config.security.metrics_token)
            .with_health(console::health::Health {
                calls: call_handle.clone(),
                media: media.clone(),
                store: store.clone(),
                shutdown: shutdown.subscribe(),
            });
        let ws_clients = console.ws_stats.clone();
        let app = console::router(console, api).merge(extra(store.clone()));
        let http = tokio::spawn(console::listener::serve(
            listener,
            app,
            console::listener::Limits::from(&config.http),
            Arc::new(console::listener::ListenerStats::default()),
            http_shutdown,
        ));
        tracing::info!(sip = %sip_addr, http = %http_addr, "dispatchline is running");
        Ok(Self {
            sip_addr,
            http_addr,
            events,
            calls: stats,
            call_handle,
            sip: transports.stats(),
            store,
            media,
            chains: chain_handle,
            chain_stats,
            node,
            ws_clients,
            shutdown,
            stopping: stopping_tx,
            http_stop,
            core,
            dialer,
            planner,
            heartbeat,
            http,
            roster_sync,
        })
    }

    /// Drains and stops: new calls are refused with 503, calls in progress get up
    /// to `grace` to end by themselves, then the rest are ended cleanly (BYE,
    /// recordings closed and flushed, journal written) and everything closes.
    pub async fn shutdown(self, grace: Duration) {
        self.roster_sync.abort();
        let _ = self.stopping.send(true);
        let _ = self.shutdown.send(Shutdown::Draining);
        let mut core = self.core;
        if tokio::time::timeout(grace, &mut core).await.is_err() {
            let _ = self.shutdown.send(Shutdown::HangUp);
            if tokio::time::timeout(Duration::from_secs(15), &mut core)
                .await
                .is_err()
            {
                tracing::error!("calls could not be ended cleanly in 15 s; stopping anyway");
                core.abort();
            }
        }
        // The dialer writes what the core reported while ending its calls, then
        // hands its chains back.
        let mut dialer = self.dialer;
        if tokio::time::timeout(Duration::from_secs(10), &mut dialer)
            .await
            .is_err()
        {
            tracing::error!("the dialer did not stop in 10 s; stopping anyway");
            dialer.abort();
        }
        // The planner only plans: whatever it was about to plan, the next node's
        // first pass finds.
        self.planner.abort();
        // Everything this node held is handed back: nothing is left to wait for.
        self.heartbeat.abort();
        if let Err(e) = self
            .store
            .node_stopped(&self.node, chrono::Utc::now())
            .await
        {
            tracing::warn!(error = %e, "cannot mark this node stopped");
        }
        self.media.shutdown();
        // On several nodes, what this node published is written to the cluster's
        // log and read back before its clients are closed.
        if !self.events.settle(Duration::from_secs(2)).await {
            tracing::warn!(
                "events published at shutdown could not all be written to the cluster's log"
            );
        }
        // Websocket clients get a 1001 close frame (they reconnect with `since` to
        // the next engine) before the listener goes.
        self.events.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        while self
            .ws_clients
            .clients
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.http_stop.send(true);
        let _ = self.http.await;
    }
}

/// Renews this node's row in the store every [`crate::store::nodes::HEARTBEAT`]
/// until the engine stops.
async fn keep_alive(store: crate::store::Store, node: String, judging: watch::Sender<bool>) {
    let mut tick = tokio::time::interval(crate::store::nodes::HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when the heartbeat cannot be written, while it cannot.
    let mut failing_since: Option<std::time::Instant> = None;
    let mut judge = crate::call::recovery::Judge::default();
    loop {
        tick.tick().await;
        if let Some(since) = failing_since {
            // Before renewing (which clears it): did another node take over while
            // this one could not reach the store?
            if let Ok(Some(by)) = store.node_recovered_by(&node).await {
                let cut_off_s = since.elapsed().as_secs();
                tracing::error!(%node, recovered_by = %by, cut_off_s, "this node was cut off from the shared store and another node took over: the callers who were waiting here were promised callbacks, and its jobs and chains continue there");
            }
        }
        let renewed = store.node_alive(&node, chrono::Utc::now()).await;
        judging.send_replace(judge.may_judge(renewed.is_ok(), std::time::Instant::now()));
        match renewed {
            Ok(()) => {
                if failing_since.take().is_some() {
                    tracing::info!(%node, "this node's heartbeat is written again");
                }
            }
            Err(e) => {
                if failing_since.is_none() {
                    failing_since = Some(std::time::Instant::now());
                    tracing::warn!(error = %e, %node, "cannot write this node's heartbeat; other nodes may take its work");
                }
            }
        }
    }
}

/// Whether `id` can name a node: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Names this node `id` (`serve --node-id`), kept in the data directory's
/// `node-id` for the next start: a node replaced on another machine, or one of
/// several nodes behind the SIP edge, takes the work leased under that name.
pub fn set_node_id(data_dir: &std::path::Path, id: &str) -> Result<(), crate::Error> {
    let path = data_dir.join("node-id");
    if !valid_node_id(id) {
        return Err(crate::Error::io(
            format!("node id `{id}`: 1 to 64 letters, digits, '-', '_' or '.'"),
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    if std::fs::read_to_string(&path).is_ok_and(|old| old.trim() == id) {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir)
        .map_err(|e| crate::Error::io(format!("creating {}", data_dir.display()), e))?;
    let tmp = data_dir.join("node-id.tmp");
    std::fs::write(&tmp, format!("{id}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))?;
    tracing::info!(node = %id, file = %path.display(), "this node's id is set");
    Ok(())
}

/// This node's stable id: `node-id` in the data directory, created with a random
/// id on the first start. Leases on dial jobs and chains are held under it, so a
/// node that restarts (after a crash too) takes its own work back at once instead
/// of waiting for the leases to lapse.
pub fn node_id(data_dir: &std::path::Path) -> Result<String, crate::Error> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim();
            if valid_node_id(id) {
                return Ok(id.to_owned());
            }
            Err(crate::Error::io(
                format!(
                    "{}: a node id is 1 to 64 letters, digits, '-', '_' or '.'",
                    path.display()
                ),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(data_dir)
                .map_err(|e| crate::Error::io(format!("creating {}", data_dir.display()), e))?;
            let id = format!("node-{:08x}", rand::random::<u32>());
            // Written whole or not at all: a crash never leaves half an id.
            let tmp = data_dir.join("node-id.tmp");
            std::fs::write(&tmp, format!("{id}\n"))
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))?;
            tracing::info!(node = %id, file = %path.display(), "this node's id was created");
            Ok(id)
        }
        Err(e) => Err(crate::Error::io(format!("reading {}", path.display()), e)),
    }
}

/// How often the roster is read again from the store when nothing on this node
/// announced a change (accounts changed through another node).
const ROSTER_POLL: Duration = Duration::from_secs(10);

/// The store's accounts whose softphones may register, as the call core takes them.
async fn softphone_roster(
    store: &crate::store::Store,
    realm: &str,
) -> Result<Vec<crate::config::Operator>, crate::store::StoreError> {
    let accounts = store.softphones().await?;
    for account in accounts.iter().filter(|a| a.sip.realm != realm) {
        tracing::warn!(
            extension = %account.user.extension,
            stored = %account.sip.realm,
            configured = %realm,
            "softphone credentials were made for another SIP realm and cannot register: set the SIP password again"
        );
    }
    Ok(accounts
        .iter()
        .map(crate::config::Operator::from_account)
        .collect())
}

/// Keeps the call core's roster the store's: at once when this node changes an
/// account, and every [`ROSTER_POLL`] for changes made through other nodes.
async fn sync_roster(
    store: crate::store::Store,
    calls: CallHandle,
    realm: String,
    changed: Arc<tokio::sync::Notify>,
    mut current: Vec<crate::config::Operator>,
) {
    loop {
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(ROSTER_POLL) => {}
        }
        let roster = match softphone_roster(&store, &realm).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the accounts; the roster stays as it is");
                continue;
            }
        };
        if roster == current {
            continue;
        }
        match calls.set_operators(roster.clone()).await {
            Ok(removed) => {
                if !removed.is_empty() {
                    tracing::info!(?removed, "operators left the roster");
                }
                current = roster;
            }
            Err(_) => return,
        }
    }
}

/// Connects to the configuration's store, migrates it and checks that it knows
/// every tenant and city the numbers name. Returns the faults (`file:line: message`), empty when the
/// engine may start.
pub async fn check_store(config: &Config) -> Result<Vec<String>, crate::Error> {
    let store = crate::store::Store::connect(&config.database.url).await?;
    store.migrate().await?;
    let faults = store.check_agreement(&config.store_references()).await?;
    store.close().await;
    Ok(faults)
}

/// Runs the engine on `config` until SIGTERM or Ctrl-C. Refuses to start, with
/// every fault listed, while the store lacks a tenant or city the numbers name.
pub async fn serve(config: Config) -> Result<(), crate::Error> {
    let faults = check_store(&config).await?;
    if !faults.is_empty() {
        return Err(crate::Error::Store(crate::store::StoreError::Disagreement(
            faults,
        )));
    }
    let engine = Engine::start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down: draining calls");
    engine.shutdown(Duration::from_secs(30)).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Applies the ticket store's migrations to `database` (a SQLite file and its
/// directory are created when missing).
pub async fn migrate(database: &str) -> Result<(), crate::Error> {
    let store = crate::store::Store::connect(database).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// Runs the demo: the engine on embedded defaults plus simulated parties.
pub async fn demo(http_listen: SocketAddr) -> Result<(), crate::Error> {
    crate::demo::run(http_listen, std::path::Path::new("data/demo")).await
}

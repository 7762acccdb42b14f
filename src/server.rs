//! Assembles the engine from its parts and runs it until SIGTERM.
//!
//! [`Engine::start`] binds everything (port 0 in the configuration picks free
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

/// Checks every prompt the configuration refers to: it must exist and be a WAV file
/// the engine plays (8 kHz, 16-bit, mono). Returns one message per fault, naming the
/// file and what is wrong.
pub fn check_prompts(config: &Config) -> Result<(), Vec<String>> {
    let dir = &config.media.prompts_dir;
    let faults: Vec<String> = config
        .referenced_prompts()
        .into_iter()
        .filter_map(|p| {
            let path = dir.join(&p);
            if !path.is_file() {
                return Some(format!("prompt {} not found under {}", p, dir.display()));
            }
            crate::media::prompts::check_file(&path)
                .err()
                .map(|e| format!("prompt {p}: {e}"))
        })
        .collect();
    if faults.is_empty() {
        Ok(())
    } else {
        Err(faults)
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
    ws_clients: Arc<crate::console::ws::WsStats>,
    shutdown: watch::Sender<Shutdown>,
    http_stop: watch::Sender<bool>,
    core: JoinHandle<()>,
    http: JoinHandle<()>,
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
        let config = Arc::new(config);
        let events = EventBus::default();
        let store = crate::store::Store::connect(&config.database.url)
            .await?
            .with_events(events.clone());
        store.migrate().await?;
        let (inbound_tx, inbound_rx) = mpsc::channel(16 * 1024);
        let transports = Transports::bind(
            TransportSettings {
                listen: config.sip.listen,
                tcp_idle_timeout: config.sip.tcp_idle_timeout,
                shed_fill: 0.5,
                shed_lag: Duration::from_millis(40),
                retry_after: 5,
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
        if let Some(ip) = config.sip.advertised_address {
            endpoint_config.advertised = Host::Ip(ip);
        }
        let endpoint = Endpoint::new(endpoint_config, rand::random());
        let admission = Admission {
            max_concurrent: config.sip.max_concurrent_calls,
            max_rate: config.sip.max_call_rate,
            retry_after: 5,
        };
        let prompts = crate::media::PromptLibrary::load(&config.media.prompts_dir)
            .map_err(crate::media::MediaError::from)?;
        let media_ip = config.sip.advertised_address.unwrap_or(sip_addr.ip());
        let (media, media_events) =
            crate::media::MediaEngine::start(&config.media, Arc::new(prompts), media_ip)?;
        let control = CallControl::new(
            config.clone(),
            endpoint,
            Box::new(media.clone()),
            admission,
            tokio::time::Instant::now().into_std(),
            chrono::Utc::now(),
        );
        let (call_handle, queries) = CallHandle::channel();
        let stats = Arc::new(CallStats::default());
        let (shutdown, shutdown_rx) = watch::channel(Shutdown::Running);
        let (http_stop, mut http_shutdown) = watch::channel(false);
        let core = tokio::spawn(crate::call::driver::run(crate::call::driver::Core {
            control,
            transports: transports.clone(),
            load: transports.load(),
            inbound: inbound_rx,
            media: media_events,
            queries,
            store: store.clone(),
            node: format!("{}-{}", sip_addr, std::process::id()),
            events: events.clone(),
            stats: stats.clone(),
            shutdown: shutdown_rx,
        }));

        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| crate::Error::io(format!("binding HTTP on {}", config.http.listen), e))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| crate::Error::io("reading the HTTP address", e))?;
        let api = console::api::ApiState::new(store.clone(), events.clone(), config.clone())
            .with_calls(call_handle.clone());
        let console = ConsoleState::new(events.clone(), stats.clone(), transports.stats());
        let ws_clients = console.ws_stats.clone();
        let app = console::router(console, api).merge(extra(store.clone()));
        let http = tokio::spawn(async move {
            let stop = async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            };
            // No Nagle delay: websocket events are small writes that must leave now.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            // The peer's address limits failed logins per client.
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "HTTP server failed");
            }
        });
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
            ws_clients,
            shutdown,
            http_stop,
            core,
            http,
        })
    }

    /// Drains and stops: new calls are refused with 503, calls in progress get up
    /// to `grace` to end by themselves, then the rest are ended cleanly (BYE,
    /// recordings closed and flushed, journal written) and everything closes.
    pub async fn shutdown(self, grace: Duration) {
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
        self.media.shutdown();
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

/// Runs the engine on `config` until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), crate::Error> {
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

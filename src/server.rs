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

use crate::call::driver::CallStats;
use crate::call::{Admission, CallControl, CallHandle};
use crate::config::Config;
use crate::console::{self, ConsoleState};
use crate::events::EventBus;
use crate::sip::endpoint::{Endpoint, EndpointConfig};
use crate::sip::transaction::TimerSettings;
use crate::sip::transport::driver::{TransportSettings, Transports};
use crate::sip::wire::Host;

/// Checks every prompt the configuration refers to; returns one message per fault.
pub fn check_prompts(config: &Config) -> Result<(), Vec<String>> {
    let missing: Vec<String> = config
        .referenced_prompts()
        .into_iter()
        .filter(|p| !config.media.prompts_dir.join(p).is_file())
        .map(|p| {
            format!(
                "prompt {} not found under {}",
                p,
                config.media.prompts_dir.display()
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
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
    shutdown: watch::Sender<bool>,
    core: JoinHandle<()>,
    http: JoinHandle<()>,
}

impl Engine {
    /// Binds and starts every part of the engine.
    pub async fn start(config: Config) -> Result<Self, crate::Error> {
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
        let control = CallControl::new(
            config.clone(),
            endpoint,
            admission,
            tokio::time::Instant::now().into_std(),
            chrono::Utc::now(),
        );
        let (call_handle, queries) = CallHandle::channel();
        let stats = Arc::new(CallStats::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let core = tokio::spawn(crate::call::driver::run(crate::call::driver::Core {
            control,
            transports: transports.clone(),
            load: transports.load(),
            inbound: inbound_rx,
            queries,
            events: events.clone(),
            stats: stats.clone(),
            shutdown: shutdown_rx.clone(),
        }));

        let listener = tokio::net::TcpListener::bind(config.http.listen)
            .await
            .map_err(|e| crate::Error::io(format!("binding HTTP on {}", config.http.listen), e))?;
        let http_addr = listener
            .local_addr()
            .map_err(|e| crate::Error::io("reading the HTTP address", e))?;
        let api = console::api::ApiState::new(store.clone(), events.clone(), config.clone())
            .with_calls(call_handle.clone());
        let app = console::router(
            ConsoleState::new(events.clone(), stats.clone(), transports.stats()),
            api,
        );
        let mut http_shutdown = shutdown_rx;
        let http = tokio::spawn(async move {
            let stop = async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            };
            // No Nagle delay: websocket events are small writes that must leave now.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
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
            shutdown,
            core,
            http,
        })
    }

    /// Drains and stops: new calls are refused, calls in progress get up to
    /// `grace` to end, then everything closes.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(grace, self.core).await.is_err() {
            tracing::warn!("calls still up after the grace period; stopping anyway");
        }
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
    let _ = http_listen;
    Ok(())
}

//! `/healthz` and `/readyz`: whether the parts that make calls work are alive.
//!
//! Owns the checks, each bounded by [`CHECK_TIMEOUT`]: the call core answers a
//! query (its task runs and is not stuck), every media shard thread runs, and the
//! store answers a query. `/healthz` is 200 with each part `ok` only when all
//! are, else 503 naming the part that is not (a service manager restarts on it);
//! `/readyz` is the same, and also 503 while the engine drains for a shutdown (a
//! load balancer sends no new calls there).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::call::driver::Shutdown;
use crate::call::handle::CallHandle;
use crate::media::MediaEngine;
use crate::store::Store;

/// How long one check may take before its part counts as down.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the checks look at.
#[derive(Clone)]
pub struct Health {
    /// The call core.
    pub calls: CallHandle,
    /// The media engine.
    pub media: MediaEngine,
    /// The store.
    pub store: Store,
    /// Where the engine is in its life.
    pub shutdown: watch::Receiver<Shutdown>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").finish_non_exhaustive()
    }
}

impl Health {
    /// Each part's state, and whether all are alive.
    pub async fn check(&self) -> (bool, Value) {
        let core = tokio::time::timeout(CHECK_TIMEOUT, self.calls.operators())
            .await
            .is_ok_and(|r| r.is_ok());
        let media = self.media.alive();
        let store = tokio::time::timeout(CHECK_TIMEOUT, self.store.has_users())
            .await
            .is_ok_and(|r| r.is_ok());
        let word = |ok: bool| if ok { "ok" } else { "down" };
        (
            core && media && store,
            json!({ "call_core": word(core), "media": word(media), "store": word(store) }),
        )
    }
}

pub(crate) async fn healthz(State(health): State<Option<Health>>) -> (StatusCode, Json<Value>) {
    let Some(health) = health else {
        return (StatusCode::OK, Json(json!({ "status": "ok" })));
    };
    let (alive, mut parts) = health.check().await;
    parts["status"] = json!(if alive { "ok" } else { "down" });
    let code = if alive {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(parts))
}

pub(crate) async fn readyz(State(health): State<Option<Health>>) -> (StatusCode, Json<Value>) {
    let Some(health) = health else {
        return (StatusCode::OK, Json(json!({ "status": "ready" })));
    };
    let (alive, mut parts) = health.check().await;
    let draining = *health.shutdown.borrow() != Shutdown::Running;
    let ready = alive && !draining;
    parts["status"] = json!(if ready {
        "ready"
    } else if draining {
        "draining"
    } else {
        "down"
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(parts))
}

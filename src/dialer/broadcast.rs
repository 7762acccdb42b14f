//! Outage broadcasts: the residents of every house an outage affects are called
//! and hear the notice callers already hear.
//!
//! Starting one makes a job per distinct contact phone of the houses (never one
//! number twice for one outage, however often it is started), due at once or,
//! unless the outage is urgent, at the end of the city's quiet hours. The call core
//! paces the calls (`[dialer] broadcast_rate`) and never takes the channels it
//! keeps for residents' incoming calls (`inbound_reserve`); a number that was busy
//! or did not answer is tried again after `broadcast_retry_s`, up to
//! `broadcast_attempts` times. Progress is on `outage.broadcast` events and
//! `GET /api/v1/outages/{id}/broadcast`.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::config::FollowUpSettings;
use crate::events::EventBus;
use crate::store::{BroadcastProgress, NewBroadcast, OutageId, Store, StoreError};

/// Starts (or widens to new contacts) the broadcast of `outage`.
pub async fn start(
    store: &Store,
    bus: &EventBus,
    settings: &FollowUpSettings,
    outage: OutageId,
    urgent: bool,
    now: DateTime<Utc>,
) -> Result<BroadcastProgress, StoreError> {
    let found = store
        .outage(outage)
        .await?
        .ok_or_else(|| StoreError::not_found("outage", outage))?;
    let zone = store
        .tenant(&found.tenant)
        .await?
        .map(|t| t.city.time_zone)
        .unwrap_or(chrono_tz::UTC);
    let due_at = if urgent {
        now
    } else {
        settings.quiet_hours.next_allowed(now, zone)
    };
    let progress = store
        .start_broadcast(
            &NewBroadcast {
                outage,
                urgent,
                due_at,
                attempts: settings.broadcast_attempts,
            },
            now,
        )
        .await?;
    tracing::info!(%outage, urgent, numbers = progress.total, due = %due_at, "outage broadcast started");
    let mut payload = json!(progress);
    payload["due"] = json!(due_at);
    payload["urgent"] = json!(urgent);
    payload["text"] = json!(found.text);
    bus.publish("outage.broadcast", Some(&found.tenant), payload);
    Ok(progress)
}

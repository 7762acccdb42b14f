//! The call core's side of a cluster's shared floor.
//!
//! Owns what the core tells the other nodes (through the store, see
//! [`crate::store::floor`]) and what it takes in from them:
//!
//! - out, as [`FloorWrite`]s the driver writes in order: every operator change this
//!   node made (with whether it holds the operator), the bindings its softphones
//!   registered through this node, and its **demand**: how many calls and jobs wait
//!   here for an operator of each tenant and city, and since when;
//! - in: everyone's rows ([`CallControl::apply_floor`]), mirrored into the
//!   operators and the registrar without being reported again, and the operators
//!   the store granted this node ([`CallControl::floor_granted`]).
//!
//! A granted operator is offered a call in the dispatch that follows, or given back
//! at once: grants never sit idle on a node that has nothing for them.
//!
//! Sans-IO like the rest of the core: the driver does the store work
//! ([`super::driver`]).

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::control::CallControl;
use super::operators::OperatorView;
use crate::sip::registrar::Binding;
use crate::sip::transport::{Target, TransportKind};
use crate::sip::wire::NameAddr;
use crate::store::floor::{FloorDemand, FloorSnapshot};

/// What the core asks the driver to write to the shared floor.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FloorWrite {
    /// An operator's state as this node changed it.
    Operator(OperatorView),
    /// The bindings this node holds for an extension (JSON; `[]` when none).
    Bindings {
        /// Extension.
        extension: String,
        /// See [`SharedBinding`].
        bindings: String,
    },
    /// What waits here for an operator, and who serves what.
    Demand {
        /// By tenant and city.
        demand: Vec<FloorDemand>,
        /// Every operator's configuration (what each serves).
        roster: std::sync::Arc<Vec<crate::config::Operator>>,
    },
}

/// A binding as other nodes read it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SharedBinding {
    /// The Contact as registered.
    pub contact: String,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Where the REGISTER came from.
    pub source: std::net::SocketAddr,
    /// When it lapses.
    pub expires_at: DateTime<Utc>,
    /// The REGISTER's Call-ID.
    pub call_id: String,
    /// Its CSeq.
    pub cseq: u32,
    /// The proxies on its Path (RFC 3327).
    #[serde(default)]
    pub path: Vec<String>,
}

/// The core's memory of what it last told the floor.
#[derive(Debug, Default)]
pub(crate) struct FloorState {
    /// The demand last written.
    demand: Vec<FloorDemand>,
    /// The version of the roster last written with it (`None`: none yet).
    roster: Option<u64>,
}

impl CallControl {
    /// Shares the floor with the other nodes of a cluster from now on.
    pub fn share_floor(&mut self) {
        self.operators.share();
        self.floor = Some(FloorState::default());
    }

    /// Whether the floor is shared.
    pub fn floor_shared(&self) -> bool {
        self.floor.is_some()
    }

    /// Takes in everyone's floor rows. `me` is this node; rows it wrote itself are
    /// skipped (what it holds is newer), except on the `first` read after a start,
    /// when nothing here is.
    pub fn apply_floor(&mut self, now: Instant, snapshot: &FloorSnapshot, me: &str, first: bool) {
        if self.floor.is_none() {
            return;
        }
        let wall = self.wall(now);
        for row in &snapshot.operators {
            if row.node == me && !first {
                continue;
            }
            let mut row = row.clone();
            if first && row.holder.as_deref() == Some(me) {
                // What this node held before it restarted is gone with it.
                row.holder_alive = false;
            }
            let changed = self.instant_at(row.since);
            self.operators.mirror(&row, me, changed);
        }
        let mut shared: Vec<(String, String)> = Vec::new();
        for set in snapshot.bindings.iter().filter(|b| b.node != me) {
            let bindings = match serde_json::from_str::<Vec<SharedBinding>>(&set.bindings) {
                Ok(list) => list
                    .into_iter()
                    .filter_map(|b| self.binding_from(&b, wall, now))
                    .collect(),
                Err(e) => {
                    tracing::warn!(extension = %set.extension, node = %set.node, error = %e, "unreadable shared bindings ignored");
                    Vec::new()
                }
            };
            self.registrar
                .set_remote(&set.extension, &set.node, bindings);
            shared.push((set.extension.clone(), set.node.clone()));
        }
        self.registrar
            .retain_remote(|aor, node| shared.iter().any(|(a, n)| a == aor && n == node));
        let registrar = &self.registrar;
        self.operators
            .mirror_registered(|ext| registrar.is_registered(ext, now));
        self.wants_dispatch = true;
        self.process(now);
    }

    /// The store granted this node these operators: offer them calls now.
    pub fn floor_granted(&mut self, now: Instant, extensions: &[String]) {
        let wall = self.wall(now);
        for ext in extensions {
            // Still shown on a call that is not here: another node's, mirrored
            // before this node read that it ended (or that the node died). The
            // grant says she is free.
            let mirrored = self
                .operators
                .view(ext)
                .and_then(|v| v.call)
                .is_some_and(|call| !self.calls.values().any(|c| c.id.0 == call));
            // Granted first, so that the change written back keeps the grant.
            self.operators.grant(ext);
            if mirrored {
                self.operators.release_mirrored_call(ext, now, wall);
            }
        }
        self.wants_dispatch = true;
        self.process(now);
    }

    /// After a dispatch: gives back grants nothing here needed, and tells the
    /// floor what still waits.
    pub(crate) fn floor_after_dispatch(&mut self, now: Instant) {
        if self.floor.is_none() {
            return;
        }
        for view in self.operators.take_idle_grants() {
            self.act(super::control::Action::Floor(FloorWrite::Operator(view)));
        }
        let demand = self.floor_demand(now);
        let version = self.operators.roster_version();
        let Some(state) = self.floor.as_mut() else {
            return;
        };
        if state.demand == demand && state.roster == Some(version) {
            return;
        }
        state.demand.clone_from(&demand);
        state.roster = Some(version);
        let roster = self.operators.roster();
        self.act(super::control::Action::Floor(FloorWrite::Demand {
            demand,
            roster: std::sync::Arc::new(roster),
        }));
    }

    /// Shares this node's bindings of `extension` (after a REGISTER or an expiry).
    pub(crate) fn share_bindings(&mut self, extension: &str) {
        if self.floor.is_none() {
            return;
        }
        let list: Vec<SharedBinding> = self
            .registrar
            .local_bindings(extension)
            .iter()
            .map(|b| SharedBinding {
                contact: b.contact.to_string(),
                transport: b.source.transport.via_token().to_ascii_lowercase(),
                source: b.source.addr,
                expires_at: self.wall(b.expires_at),
                call_id: b.call_id.clone(),
                cseq: b.cseq,
                path: b.path.iter().map(ToString::to_string).collect(),
            })
            .collect();
        let bindings = serde_json::to_string(&list).unwrap_or_else(|_| "[]".to_owned());
        self.act(super::control::Action::Floor(FloorWrite::Bindings {
            extension: extension.to_owned(),
            bindings,
        }));
    }

    /// Whether the operator has a live binding on any node.
    pub(crate) fn registered_anywhere(&self, extension: &str, now: Instant) -> bool {
        self.registrar.is_registered(extension, now)
    }

    /// What waits here for an operator, by tenant and city. Emergency hand-offs
    /// count as having waited forever: an operator goes to them first, whichever
    /// node they wait on.
    fn floor_demand(&self, now: Instant) -> Vec<FloorDemand> {
        type Key = (Option<String>, Option<String>);
        let mut by: BTreeMap<Key, (DateTime<Utc>, u32)> = BTreeMap::new();
        let mut add = |tenant: Option<String>, city: Option<String>, since: DateTime<Utc>| {
            let entry = by.entry((tenant, city)).or_insert((since, 0));
            entry.0 = entry.0.min(since);
            entry.1 = entry.1.saturating_add(1);
        };
        for key in self.waiting.iter().chain(self.transfers.iter()) {
            if let Some(call) = self.calls.get(key) {
                if call.operator.is_none() {
                    let since = self.wall(call.queued_at.unwrap_or(call.started));
                    add(call.tenant.clone(), call.city.clone(), since);
                }
            }
        }
        for job in &self.jobs {
            let city = self
                .briefings
                .get(&job.id)
                .and_then(|b| b.ticket.as_ref())
                .map(|t| t.city.clone());
            add(job.tenant.clone(), city, job.due_at);
        }
        let wall = self.wall(now);
        for held in &self.handoffs {
            let card = &held.order.card;
            let since = if card.category == crate::store::Category::Emergency {
                DateTime::<Utc>::UNIX_EPOCH
            } else {
                wall
            };
            add(Some(card.tenant.clone()), Some(card.city.clone()), since);
        }
        by.into_iter()
            .map(|((tenant, city), (since, waiting))| FloorDemand {
                tenant,
                city,
                since,
                waiting,
            })
            .collect()
    }

    /// A binding another node shared, in this node's clock; `None` when lapsed or
    /// unreadable.
    fn binding_from(
        &self,
        b: &SharedBinding,
        wall: DateTime<Utc>,
        now: Instant,
    ) -> Option<Binding> {
        let left = (b.expires_at - wall).to_std().ok()?;
        let contact = NameAddr::parse(&b.contact).ok()?;
        let transport = TransportKind::from_token(&b.transport)?;
        Some(Binding {
            contact,
            source: Target {
                transport,
                addr: b.source,
                connection: None,
            },
            expires_at: now + left,
            call_id: b.call_id.clone(),
            cseq: b.cseq,
            path: b
                .path
                .iter()
                .filter_map(|hop| NameAddr::parse(hop).ok())
                .collect(),
        })
    }
}

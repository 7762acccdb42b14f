//! Starting a ticket's chain, and taking chains back after a restart or from a
//! node that died: the plan, the policy and the card come from the store.

use super::*;

impl ChainRunner {
    /// Takes this node's chains (with `own`, those it held before a restart too),
    /// rebuilds their machines and lets them go on. Returns how many it took.
    pub async fn resume(&mut self, own: bool, now: Instant) -> Result<usize, StoreError> {
        let wall = self.wall(now);
        let lease = wall + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let mut taken = 0;
        loop {
            self.stats.count(&self.stats.queries, 1);
            let batch = self
                .store
                .claim_chains(&self.settings.node, own, wall, lease, 500)
                .await?;
            let n = batch.len();
            for stored in batch {
                if self.chains.contains_key(&stored.id) {
                    continue;
                }
                match self.resume_one(&stored, now).await {
                    Ok(()) => taken += 1,
                    Err(e) => {
                        tracing::error!(chain = %stored.id, error = %e, "cannot resume a chain; it stays in the store for another try");
                    }
                }
            }
            if n < 500 {
                break;
            }
        }
        self.place_pending(now).await;
        Ok(taken)
    }

    pub(super) async fn resume_one(
        &mut self,
        stored: &StoredChain,
        now: Instant,
    ) -> Result<(), StoreError> {
        let plan: ChainPlan = serde_json::from_value(stored.plan.clone())
            .map_err(|e| StoreError::Corrupt(format!("chain {} plan: {e}", stored.id)))?;
        let policy: ChainPolicy = serde_json::from_value(stored.policy.clone())
            .map_err(|e| StoreError::Corrupt(format!("chain {} policy: {e}", stored.id)))?;
        let card = self.card(stored.ticket_id, now).await?;
        let phase = Phase::parse(&stored.phase).unwrap_or(Phase::Level(1));
        let phase_started = self.mono(stored.phase_started_at.unwrap_or(stored.created_at));
        let escalation = stored.escalation_started_at.map(|at| {
            (
                usize::try_from(stored.escalation_index).unwrap_or(0),
                self.mono(at),
            )
        });
        let mut attempts = HashMap::new();
        let mut past = Vec::new();
        for a in &stored.attempts {
            let Ok(stage) = a.stage.parse::<Stage>() else {
                continue;
            };
            let Some(person) = a.employee_id else {
                continue;
            };
            let Ok(phone) = crate::phone::PhoneNumber::parse(&a.phone) else {
                continue;
            };
            let seq = u32::try_from(a.seq).unwrap_or(0);
            // An attempt that never reported its end counts from when it was placed.
            let ended = match a.outcome {
                Some(AttemptOutcome::Unknown) | None => a.placed_at,
                Some(_) => a.ended_at.unwrap_or(a.placed_at),
            };
            past.push(PastAttempt {
                seq,
                stage,
                person,
                phone,
                ended: self.mono(ended),
                declined: a.decision == Some(AttemptDecision::Declined),
            });
            attempts.insert(
                seq,
                AttemptInfo {
                    person,
                    name: a.person_name.clone(),
                    call: a.call_id.clone(),
                    operator: a.operator.clone(),
                },
            );
        }
        let deadline = Some(self.mono(card.deadline));
        let saved = Saved {
            phase,
            phase_started,
            escalation,
            attempts: past,
        };
        let machine = Chain::resume(plan, policy, saved, now, deadline);
        tracing::info!(chain = %stored.id, ticket = %stored.ticket_number, phase = %stored.phase, attempts = stored.attempts.len(), "chain resumed");
        let stored_phase = (
            machine.phase(),
            machine.phase_started(),
            machine.escalation(),
        );
        self.chains.insert(
            stored.id,
            Running {
                machine,
                ticket: stored.ticket_id,
                tenant: stored.tenant.clone(),
                card,
                attempts,
                stored: stored_phase,
            },
        );
        self.drain(stored.id, now).await;
        Ok(())
    }

    /// Starts chains for registered tickets that have none (registered while no
    /// engine ran, or an engine stopped between the ticket and its chain).
    pub async fn start_unchained(&mut self, now: Instant) -> Result<usize, StoreError> {
        let since =
            self.wall(now) - chrono::Duration::from_std(self.settings.catch_up).unwrap_or_default();
        self.stats.count(&self.stats.queries, 1);
        let tickets = self.store.unchained_tickets(since, 200).await?;
        let mut started = 0;
        for t in tickets {
            let policy = self.settings.chains.policy(&t.tenant, t.category.as_str());
            if !policy.enabled {
                continue;
            }
            match self.start(t.id, false, now).await {
                Ok(Some(_)) => started += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(ticket = %t.id, error = %e, "cannot start the ticket's chain now; trying again later")
                }
            }
        }
        Ok(started)
    }

    /// Starts the chain of `ticket` (a supervisor's restart when `restart`); `None`
    /// when it has one already or is no longer registered.
    pub async fn start(
        &mut self,
        ticket: TicketId,
        restart: bool,
        now: Instant,
    ) -> Result<Option<DialChainId>, StoreError> {
        let wall = self.wall(now);
        self.stats.count(&self.stats.queries, 3);
        let Some(detail) = self.store.ticket(ticket).await? else {
            return Err(StoreError::not_found("ticket", ticket));
        };
        let t = &detail.ticket;
        let executors = self
            .store
            .executor_chain(&t.tenant, t.house_id, t.reason_id, t.created_at)
            .await?;
        let mut plan = ChainPlan::default();
        for e in &executors.executors {
            let level = usize::from(e.level.max(1)) - 1;
            while plan.levels.len() <= level {
                plan.levels.push(Vec::new());
            }
            if let Some(people) = plan.levels.get_mut(level) {
                people.push(e.employee.clone());
            }
        }
        let roles = [
            (EscalationRole::Responsible, &executors.responsible),
            (EscalationRole::Manager, &executors.manager),
            (EscalationRole::Head, &executors.head),
        ];
        for (role, person) in roles {
            if let Some(p) = person {
                plan.escalation.push((role, p.clone()));
            }
        }
        let policy = self.settings.chains.policy(&t.tenant, t.category.as_str());
        let card = self.card(ticket, now).await?;
        let first = if plan.levels.iter().any(|l| !l.is_empty()) {
            Phase::Level(1)
        } else {
            Phase::Final
        };
        let lease = wall + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let plan_json = serde_json::to_value(&plan).unwrap_or(Value::Null);
        let policy_json = serde_json::to_value(&policy).unwrap_or(Value::Null);
        let started = self
            .store
            .start_chain(
                ticket,
                &plan_json,
                &policy_json,
                first.as_str(),
                &self.settings.node,
                lease,
                restart,
                wall,
            )
            .await?;
        let stored = match started {
            ChainStart::Started(c) => c,
            ChainStart::Running(_) | ChainStart::HadOne(_) | ChainStart::NotRegistered => {
                return Ok(None);
            }
        };
        let id = stored.id;
        let machine = Chain::start(
            plan.clone(),
            policy.clone(),
            now,
            Some(self.mono(card.deadline)),
        );
        let levels: Vec<Vec<&str>> = plan
            .levels
            .iter()
            .map(|l| l.iter().map(|p| p.name.as_str()).collect())
            .collect();
        let escalation: Vec<Value> = plan
            .escalation
            .iter()
            .map(|(role, p)| json!({ "role": role, "name": p.name }))
            .collect();
        tracing::info!(chain = %id, ticket = %t.number, tenant = %t.tenant, levels = plan.levels.len(), "chain started");
        self.note(
            ticket,
            format!(
                "Цепочка передачи запущена: уровней {}, эскалация {}",
                plan.levels.len(),
                plan.escalation.len()
            ),
            wall,
        )
        .await;
        self.bus.publish(
            "chain.started",
            Some(&t.tenant),
            json!({
                "ticket": ticket,
                "chain": id,
                "number": t.number,
                "category": t.category,
                "levels": levels,
                "escalation": escalation,
                "attempts": policy.attempts,
                "level_timeout_s": secs(policy.level_timeout),
                "broadcast_window_s": secs(policy.broadcast_window),
                "phase": machine.phase().as_str(),
                "phase_ends_at": self.wall(machine.phase_deadline()),
                "deadline": t.deadline_at,
                "restart": restart,
            }),
        );
        let stored_phase = (
            machine.phase(),
            machine.phase_started(),
            machine.escalation(),
        );
        self.chains.insert(
            id,
            Running {
                machine,
                ticket,
                tenant: t.tenant.clone(),
                card,
                attempts: HashMap::new(),
                stored: stored_phase,
            },
        );
        self.drain(id, now).await;
        self.place_pending(now).await;
        Ok(Some(id))
    }

    /// The card of a ticket: what operators see and the informer says.
    pub(super) async fn card(
        &mut self,
        ticket: TicketId,
        now: Instant,
    ) -> Result<Arc<TicketCard>, StoreError> {
        self.stats.count(&self.stats.queries, 3);
        let wall = self.wall(now);
        super::super::card::ticket_card(
            &self.store,
            &self.settings.language,
            &*self.prompts,
            ticket,
            wall,
        )
        .await
        .map(Arc::new)
    }
}

//! Acting on what the machines want: attempts written in one batch and then
//! ordered from the call layer, phases stored, steps noted on the ticket and
//! published, chains ended.

use super::*;

impl ChainRunner {
    pub(super) fn info_mut(&mut self, attempt: AttemptRef) -> Option<&mut AttemptInfo> {
        self.chains
            .get_mut(&attempt.chain)
            .and_then(|r| r.attempts.get_mut(&attempt.seq))
    }

    pub(super) async fn drain(&mut self, id: DialChainId, now: Instant) {
        self.drain_due(id, now, None).await;
    }

    /// Acts on what chain `id` wants; `due` is when the wake-up that made it want
    /// it was due (for lateness).
    pub(super) async fn drain_due(&mut self, id: DialChainId, now: Instant, due: Option<Instant>) {
        let wall = self.wall(now);
        loop {
            let Some(r) = self.chains.get_mut(&id) else {
                return;
            };
            let Some(out) = r.machine.poll_output() else {
                break;
            };
            let (ticket, tenant) = (r.ticket, r.tenant.clone());
            match out {
                Output::Place(a) => {
                    r.attempts.insert(
                        a.seq,
                        AttemptInfo {
                            person: a.person.id,
                            name: a.person.name.clone(),
                            call: None,
                            operator: None,
                        },
                    );
                    self.unwritten.push((id, a, due.unwrap_or(now)));
                }
                Output::Stop { seq, why } => {
                    let _ = self.to_calls.send(ToCalls::Stop {
                        attempt: AttemptRef { chain: id, seq },
                        why,
                    });
                }
                Output::Moved { phase, early } => {
                    let (deadline, text) = {
                        let r = self.chains.get(&id);
                        let deadline = r.map(|r| self.wall(r.machine.phase_deadline()));
                        let text = match phase {
                            Phase::Level(n) => format!("Передача уровню {n}"),
                            Phase::Final => {
                                "Информатор обзванивает все уровни, эскалация руководству"
                                    .to_owned()
                            }
                        };
                        (deadline, text)
                    };
                    let why = if early {
                        "все предыдущие не дозвонились или отказались"
                    } else {
                        "время уровня истекло"
                    };
                    self.note(ticket, format!("{text} ({why})"), wall).await;
                    self.bus.publish(
                        "chain.escalated",
                        Some(&tenant),
                        json!({
                            "ticket": ticket,
                            "chain": id,
                            "phase": phase.as_str(),
                            "early": early,
                            "phase_ends_at": deadline,
                        }),
                    );
                }
                Output::Escalating { role, person } => {
                    let role_text = match role {
                        EscalationRole::Responsible => "ответственному",
                        EscalationRole::Manager => "руководителю",
                        EscalationRole::Head => "директору",
                    };
                    self.note(
                        ticket,
                        format!("Эскалация {role_text}: {}", person.name),
                        wall,
                    )
                    .await;
                    self.bus.publish(
                        "chain.escalated",
                        Some(&tenant),
                        json!({ "ticket": ticket, "chain": id, "phase": "final", "to": role, "person": person.name }),
                    );
                }
                Output::Skipped { stage, person } => {
                    self.note(
                        ticket,
                        format!(
                            "{} ({}) не вызывается: нет номера телефона",
                            person.name,
                            stage.as_str()
                        ),
                        wall,
                    )
                    .await;
                }
                Output::Alarm(alarm) => {
                    let (reason, text) = match alarm {
                        Alarm::NoExecutors => (
                            "no-executors",
                            "Никого из исполнителей нет на смене: сразу эскалация руководству",
                        ),
                        Alarm::DeadlineAtRisk => (
                            "deadline-at-risk",
                            "Срок выполнения близко, заявка никем не принята",
                        ),
                    };
                    tracing::warn!(chain = %id, %ticket, reason, "chain alarm");
                    self.note(ticket, text.to_owned(), wall).await;
                    self.bus.publish(
                        "chain.alarm",
                        Some(&tenant),
                        json!({ "ticket": ticket, "chain": id, "reason": reason, "number": self.chains.get(&id).map(|r| r.card.number.clone()) }),
                    );
                }
                Output::Ended(end) => {
                    self.ended(id, end, now).await;
                    return;
                }
            }
        }
        self.persist_progress(id, now).await;
        self.arm(id);
    }

    pub(super) async fn ended(&mut self, id: DialChainId, end: End, now: Instant) {
        let wall = self.wall(now);
        let Some(r) = self.chains.remove(&id) else {
            return;
        };
        self.stats.running.store(
            self.chains.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let (ticket, tenant) = (r.ticket, r.tenant.clone());
        match end {
            // The store was told in the acceptance's own transaction (or by
            // `ticket_moved`); `chain.accepted` is published there.
            End::Accepted { .. } => self.stats.count(&self.stats.accepted, 1),
            End::Exhausted => {
                self.stats.count(&self.stats.exhausted, 1);
                tracing::warn!(chain = %id, %ticket, "chain exhausted: nobody accepted the ticket");
                self.write(Write::End(
                    id,
                    ChainState::Exhausted,
                    "все уровни и руководство обзвонены, никто не принял".into(),
                    wall,
                ))
                .await;
                self.note(
                    ticket,
                    "Цепочка исчерпана: никто не принял заявку. Нужны действия диспетчера".into(),
                    wall,
                )
                .await;
                self.bus.publish(
                    "chain.exhausted",
                    Some(&tenant),
                    json!({ "ticket": ticket, "chain": id, "number": r.card.number }),
                );
            }
            End::Cancelled => {
                self.bus.publish(
                    "chain.cancelled",
                    Some(&tenant),
                    json!({ "ticket": ticket, "chain": id, "number": r.card.number }),
                );
            }
        }
    }

    /// Writes the chain's phase when it changed.
    pub(super) async fn persist_progress(&mut self, id: DialChainId, now: Instant) {
        let Some(r) = self.chains.get(&id) else {
            return;
        };
        let current = (
            r.machine.phase(),
            r.machine.phase_started(),
            r.machine.escalation(),
        );
        if current == r.stored {
            return;
        }
        let (phase, started, escalation) = current;
        let progress = ChainProgress {
            phase: phase.as_str().to_owned(),
            phase_started_at: self.wall(started),
            level: match phase {
                Phase::Level(n) => i64::from(n),
                Phase::Final => 4,
            },
            escalation_index: escalation.map_or(0, |(i, _)| i as i64),
            escalation_started_at: escalation.map(|(_, at)| self.wall(at)),
        };
        if let Some(r) = self.chains.get_mut(&id) {
            r.stored = current;
        }
        let wall = self.wall(now);
        self.write(Write::Progress(id, progress, wall)).await;
    }

    pub(super) fn arm(&mut self, id: DialChainId) {
        if let Some(at) = self.chains.get(&id).and_then(|r| r.machine.poll_timeout()) {
            self.timers.push(Reverse((at, id)));
        }
        self.stats
            .running
            .store(self.chains.len() as u64, Ordering::Relaxed);
    }

    pub(super) async fn place_pending(&mut self, now: Instant) {
        self.place_pending_since(now, None).await;
    }

    /// Writes the attempts the machines want (one batch), then orders their calls.
    pub(super) async fn place_pending_since(&mut self, now: Instant, started: Option<Instant>) {
        if self.unwritten.is_empty() || self.stopping {
            return;
        }
        let wall = self.wall(now);
        let batch = std::mem::take(&mut self.unwritten);
        let rows: Vec<NewAttempt> = batch
            .iter()
            .map(|(chain, a, _)| NewAttempt {
                chain: *chain,
                seq: a.seq,
                stage: a.stage.as_str().to_owned(),
                employee_id: Some(a.person.id),
                person_name: a.person.name.clone(),
                phone: a.phone.to_string(),
                try_no: a.try_no,
                tries: a.tries,
                reach: a.reach.as_str().to_owned(),
            })
            .collect();
        self.stats.count(&self.stats.queries, 1);
        let written = match self
            .store
            .begin_attempts(&self.settings.node, &rows, wall)
            .await
        {
            Ok(w) => w,
            Err(e) => {
                // Never placed unwritten: they wait and are written again.
                tracing::warn!(error = %e, attempts = batch.len(), "cannot write chain attempts now; trying again");
                self.unwritten = batch;
                return;
            }
        };
        for ((chain, a, due), ok) in batch.into_iter().zip(written) {
            if !ok {
                // The chain is no longer this node's (or no longer running).
                tracing::warn!(%chain, seq = a.seq, "attempt not written: the chain is not ours any more");
                self.chains.remove(&chain);
                continue;
            }
            let Some(r) = self.chains.get(&chain) else {
                continue;
            };
            let policy = r.machine.policy();
            let order = HandoffOrder {
                attempt: AttemptRef { chain, seq: a.seq },
                stage: a.stage,
                card: r.card.clone(),
                person: a.person.id,
                person_name: a.person.name.clone(),
                phone: a.phone.clone(),
                try_no: a.try_no,
                tries: a.tries,
                reach: a.reach,
                operator_wait: policy.operator_wait,
                repeats: policy.informer_repeats,
            };
            self.bus.publish(
                "dial.attempt",
                Some(&r.tenant),
                json!({
                    "ticket": r.ticket,
                    "chain": chain,
                    "seq": a.seq,
                    "stage": a.stage.as_str(),
                    "person": a.person.name,
                    "target": a.phone,
                    "attempt": a.try_no,
                    "tries": a.tries,
                    "reach": a.reach,
                    "purpose": "handoff",
                }),
            );
            let _ = self.to_calls.send(ToCalls::Place(Box::new(order)));
            self.stats.count(&self.stats.placed, 1);
            let late = now.saturating_duration_since(due)
                + started.map_or(Duration::ZERO, |s| {
                    (self.clock)().saturating_duration_since(s)
                });
            self.stats.late(late);
        }
    }
}

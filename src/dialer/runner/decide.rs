//! What the people say: acceptance (one store transaction guarded by the
//! ticket's version; the machine stops every other call) and declines.

use super::*;

impl ChainRunner {
    /// Accepts the ticket of `attempt`'s chain for the person called in it; `true`
    /// when this acceptance won.
    pub(super) async fn accept(
        &mut self,
        attempt: AttemptRef,
        via: &str,
        operator: Option<&str>,
        now: Instant,
    ) -> bool {
        let wall = self.wall(now);
        let Some(r) = self.chains.get(&attempt.chain) else {
            return false;
        };
        let info = r.attempts.get(&attempt.seq).cloned();
        let ticket = r.ticket;
        let tenant = r.tenant.clone();
        let (employee, name) = info.as_ref().map_or((None, String::from("?")), |i| {
            (Some(i.person), i.name.clone())
        });
        let call = info
            .as_ref()
            .and_then(|i| i.call.clone())
            .unwrap_or_default();
        let note = match operator {
            Some(op) => format!(
                "Принял(а) {name}: оператор {op} по телефону, звонок {call} (попытка {})",
                attempt.seq
            ),
            None => format!(
                "Принял(а) {name}: нажал(а) 1 в звонке информатора {call} (попытка {})",
                attempt.seq
            ),
        };
        let how = ChainAcceptance {
            chain: attempt.chain,
            seq: Some(attempt.seq),
            employee,
            via: via.to_owned(),
            actor: operator.map_or_else(
                || {
                    format!(
                        "employee:{} {name}",
                        employee.map(|e| e.0).unwrap_or_default()
                    )
                },
                str::to_owned,
            ),
            note,
        };
        self.stats.count(&self.stats.queries, 1);
        let result = match self.store.accept_in_chain(ticket, &how, wall).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(%attempt, error = %e, "cannot record the acceptance");
                return false;
            }
        };
        match result {
            Acceptance::Won(_) => {
                tracing::info!(%attempt, person = %name, via, "ticket accepted through its chain");
                self.bus.publish(
                    "chain.accepted",
                    Some(&tenant),
                    json!({
                        "ticket": ticket,
                        "chain": attempt.chain,
                        "seq": attempt.seq,
                        "by": employee,
                        "by_name": name,
                        "via": via,
                        "operator": operator,
                        "call": call,
                    }),
                );
                if let Some(r) = self.chains.get_mut(&attempt.chain) {
                    r.machine.handle_accepted(now, Some(attempt.seq));
                }
                self.drain(attempt.chain, now).await;
                true
            }
            Acceptance::Lost(status) => {
                tracing::info!(%attempt, person = %name, %status, "pressed 1 after the ticket had moved on");
                self.write(Write::Attempt(
                    attempt,
                    AttemptUpdate {
                        decision: Some(AttemptDecision::Taken),
                        ..AttemptUpdate::default()
                    },
                    wall,
                ))
                .await;
                false
            }
        }
    }

    pub(super) async fn declined(&mut self, attempt: AttemptRef, by: &str, now: Instant) {
        let wall = self.wall(now);
        self.write(Write::Attempt(
            attempt,
            AttemptUpdate {
                decision: Some(AttemptDecision::Declined),
                ..AttemptUpdate::default()
            },
            wall,
        ))
        .await;
        let Some(r) = self.chains.get_mut(&attempt.chain) else {
            return;
        };
        r.machine.handle_declined(now, attempt.seq);
        let name = r
            .attempts
            .get(&attempt.seq)
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let (ticket, tenant) = (r.ticket, r.tenant.clone());
        self.note(
            ticket,
            format!("{name} отказался(ась) от заявки ({by})"),
            wall,
        )
        .await;
        self.bus.publish(
            "chain.declined",
            Some(&tenant),
            json!({ "ticket": ticket, "chain": attempt.chain, "seq": attempt.seq, "person": name, "via": by }),
        );
        self.drain(attempt.chain, now).await;
    }
}

//! Hand-off chains in the store, on SQLite and PostgreSQL: one running chain per
//! ticket whoever starts it, leases between nodes (a restarting node gets its own
//! chains back at once, a node without the lease writes no attempt), attempts that
//! never reported back counted as made, and acceptance that exactly one of two
//! people pressing 1 together wins.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;
#[path = "common/store_world.rs"]
mod store_world;

use chrono::Duration;
use dispatchline::store::directory::TenantScope;
use dispatchline::store::tickets::Channel;
use dispatchline::store::{
    Acceptance, AttemptDecision, AttemptOutcome, AttemptState, AttemptUpdate, ChainAcceptance,
    ChainStart, ChainState, NewAttempt, NewTicket, Store, TicketId, TicketStatus,
};
use serde_json::json;
use store_world::{World, build, tuesday_utc};

async fn ticket(store: &Store, w: &World, at: chrono::DateTime<chrono::Utc>) -> TicketId {
    store
        .create_ticket(
            &NewTicket {
                tenant: "etalon".into(),
                house_id: w.ekb_house,
                apartment: Some("12".into()),
                reason_id: w.flooding,
                description: "Топит сверху".into(),
                source: Channel::Phone,
                labels: vec![],
                caller_phone: None,
                call_id: None,
                actor: "1001".into(),
            },
            at,
        )
        .await
        .unwrap()
        .ticket
        .id
}

fn attempt(chain: dispatchline::store::DialChainId, seq: u32) -> NewAttempt {
    NewAttempt {
        chain,
        seq,
        stage: "level-1".into(),
        employee_id: None,
        person_name: "Дневной Сантехник".into(),
        phone: "+79121000001".into(),
        try_no: seq,
        tries: 5,
        reach: "informer".into(),
    }
}

async fn start(
    store: &Store,
    t: TicketId,
    node: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> ChainStart {
    store
        .start_chain(
            t,
            &json!({"levels": []}),
            &json!({"attempts": 5}),
            "level-1",
            node,
            now + Duration::minutes(10),
            false,
            now,
        )
        .await
        .unwrap()
}

async fn one_running_chain_per_ticket(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let t = ticket(&store, &w, now).await;
    let ChainStart::Started(chain) = start(&store, t, "node-a", now).await else {
        panic!("the first start starts")
    };
    assert_eq!(chain.state, ChainState::Running);
    assert_eq!(chain.claimed_by.as_deref(), Some("node-a"));
    assert_eq!(chain.ticket_number, "1001");
    assert_eq!(chain.plan, json!({"levels": []}));
    assert_eq!(
        start(&store, t, "node-b", now).await,
        ChainStart::Running(chain.id)
    );
    // Exhausted: the ticket keeps its chain; only a restart starts another.
    assert!(
        store
            .end_chain(chain.id, ChainState::Exhausted, "nobody accepted", now)
            .await
            .unwrap()
    );
    assert_eq!(
        start(&store, t, "node-b", now).await,
        ChainStart::HadOne(chain.id)
    );
    let again = store
        .start_chain(
            t,
            &json!({}),
            &json!({}),
            "level-1",
            "node-b",
            now,
            true,
            now,
        )
        .await
        .unwrap();
    assert!(matches!(again, ChainStart::Started(c) if c.id != chain.id));
    // A ticket no longer registered gets none.
    let t2 = ticket(&store, &w, now).await;
    store
        .change_status(
            t2,
            &dispatchline::store::StatusUpdate {
                to: TicketStatus::Cancelled,
                actor: "1001".into(),
                note: String::new(),
                expected_version: None,
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        start(&store, t2, "node-a", now).await,
        ChainStart::NotRegistered
    );
    // The board shows the exhausted chain until a supervisor acts on it.
    let open = store.open_chains(&TenantScope::All).await.unwrap();
    assert_eq!(open.len(), 2, "the exhausted one and the restarted one");
    store
        .acknowledge_chain(chain.id, "2001", now)
        .await
        .unwrap();
    let open = store.open_chains(&TenantScope::All).await.unwrap();
    assert_eq!(open.len(), 1);
    assert!(
        store
            .open_chains(&TenantScope::of(&["stolica".to_owned()]))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn leases_decide_which_node_places_calls(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let t = ticket(&store, &w, now).await;
    let ChainStart::Started(chain) = start(&store, t, "node-a", now).await else {
        panic!()
    };
    // Node a writes its first attempt and places the call; then it dies.
    let written = store
        .begin_attempts("node-a", &[attempt(chain.id, 1)], now)
        .await
        .unwrap();
    assert_eq!(written, [true]);
    // Node b cannot write an attempt of a chain it does not hold ...
    let later = now + Duration::minutes(1);
    assert_eq!(
        store
            .begin_attempts("node-b", &[attempt(chain.id, 2)], later)
            .await
            .unwrap(),
        [false]
    );
    // ... nor take it while a's lease runs.
    let lease = later + Duration::minutes(10);
    assert!(
        store
            .claim_chains("node-b", false, later, lease, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // Node a restarts under the same node id: its chain is back at once, and the
    // call it had in flight counts as made with an unknown outcome.
    let back = store
        .claim_chains("node-a", true, later, lease, 10)
        .await
        .unwrap();
    assert_eq!(back.len(), 1);
    let a1 = &back[0].attempts[0];
    assert_eq!(
        (a1.seq, a1.state, a1.outcome),
        (1, AttemptState::Ended, Some(AttemptOutcome::Unknown))
    );
    // The same attempt is never written twice.
    assert_eq!(
        store
            .begin_attempts(
                "node-a",
                &[attempt(chain.id, 1), attempt(chain.id, 2)],
                later
            )
            .await
            .unwrap(),
        [false, true]
    );
    // Node a dies again; after its lease lapses node b takes the chain over.
    let expired = lease + Duration::seconds(1);
    let taken = store
        .claim_chains(
            "node-b",
            false,
            expired,
            expired + Duration::minutes(10),
            10,
        )
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts.len(), 2);
    assert!(taken[0].attempts.iter().all(|a| a.outcome.is_some()));
    assert_eq!(
        store
            .renew_chain_leases(
                "node-a",
                &[chain.id],
                expired + Duration::minutes(20),
                expired
            )
            .await
            .unwrap(),
        [],
        "a node that lost its lease learns it when renewing"
    );
    assert_eq!(
        store
            .renew_chain_leases(
                "node-b",
                &[chain.id],
                expired + Duration::minutes(20),
                expired
            )
            .await
            .unwrap(),
        [chain.id]
    );
    // Attempts report what happened.
    store
        .update_attempt(
            chain.id,
            2,
            &AttemptUpdate {
                state: Some(AttemptState::Ended),
                outcome: Some(AttemptOutcome::Busy),
                call_id: Some("c-2".into()),
                sip_status: Some(486),
                ended_at: Some(expired),
                ..AttemptUpdate::default()
            },
            expired,
        )
        .await
        .unwrap();
    let stored = store.chain(chain.id).await.unwrap().unwrap();
    let a2 = &stored.attempts[1];
    assert_eq!(
        (a2.outcome, a2.sip_status, a2.call_id.as_deref()),
        (Some(AttemptOutcome::Busy), Some(486), Some("c-2"))
    );
}

async fn the_first_of_two_acceptances_wins(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let t = ticket(&store, &w, now).await;
    let ChainStart::Started(chain) = start(&store, t, "node-a", now).await else {
        panic!()
    };
    store
        .begin_attempts("node-a", &[attempt(chain.id, 1), attempt(chain.id, 2)], now)
        .await
        .unwrap();
    let accept = |seq: u32, employee| ChainAcceptance {
        chain: chain.id,
        seq: Some(seq),
        employee: Some(employee),
        via: "keypad".into(),
        actor: format!("employee:{employee}"),
        note: format!("keypad 1 in attempt {seq}"),
    };
    let (first, second) = (accept(1, w.engineer), accept(2, w.head));
    let (a, b) = tokio::join!(
        store.accept_in_chain(t, &first, now),
        store.accept_in_chain(t, &second, now)
    );
    let results = [a.unwrap(), b.unwrap()];
    let winners: Vec<&Acceptance> = results
        .iter()
        .filter(|r| matches!(r, Acceptance::Won(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    assert!(results.contains(&Acceptance::Lost(TicketStatus::Accepted)));
    let Acceptance::Won(won) = winners[0] else {
        unreachable!()
    };
    assert_eq!(won.status, TicketStatus::Accepted);
    let stored = store.chain(chain.id).await.unwrap().unwrap();
    assert_eq!(stored.state, ChainState::Accepted);
    assert_eq!(stored.accepted_via.as_deref(), Some("keypad"));
    assert_eq!(won.executor_id, stored.accepted_by);
    let decided: Vec<_> = stored
        .attempts
        .iter()
        .filter(|a| a.decision == Some(AttemptDecision::Accepted))
        .collect();
    assert_eq!(decided.len(), 1);
    let detail = store.ticket(t).await.unwrap().unwrap();
    let last = detail.history.last().unwrap();
    assert_eq!(last.to, TicketStatus::Accepted);
    assert!(last.note.starts_with("keypad 1 in attempt"));
    // A chain whose ticket moved on is found for stopping.
    assert!(
        store
            .chains_of_moved_tickets(&[chain.id])
            .await
            .unwrap()
            .is_empty(),
        "it ended"
    );
}

async fn tickets_without_a_chain_are_found(store: Store) {
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    let old = ticket(&store, &w, now - Duration::days(3)).await;
    let fresh = ticket(&store, &w, now).await;
    let found = store
        .unchained_tickets(now - Duration::hours(24), 10)
        .await
        .unwrap();
    assert_eq!(found.iter().map(|t| t.id).collect::<Vec<_>>(), [fresh]);
    assert_eq!(found[0].tenant, "etalon");
    let ChainStart::Started(chain) = start(&store, fresh, "n", now).await else {
        panic!()
    };
    assert!(
        store
            .unchained_tickets(now - Duration::hours(24), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let _ = old;
    store
        .change_status(
            fresh,
            &dispatchline::store::StatusUpdate {
                to: TicketStatus::Accepted,
                actor: "1001".into(),
                note: "по телефону".into(),
                expected_version: None,
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        store.chains_of_moved_tickets(&[chain.id]).await.unwrap(),
        [(chain.id, TicketStatus::Accepted)]
    );
}

/// A node whose heartbeat lapsed is dead: the chains and dial jobs it held are the
/// others' at once, long before their leases run out; while it is alive they are
/// not.
async fn a_dead_nodes_chains_and_jobs_are_taken_within_seconds(store: Store) {
    use dispatchline::store::nodes::SILENCE;
    use dispatchline::store::{DialKind, NewDialJob};
    let w = build(&store).await;
    let now = tuesday_utc(5, 0);
    store.node_started("node-a", now).await.unwrap();
    store.node_started("node-b", now).await.unwrap();
    let t = ticket(&store, &w, now).await;
    let ChainStart::Started(_) = start(&store, t, "node-a", now).await else {
        panic!()
    };
    let job = store
        .create_dial_job(
            &NewDialJob::new(
                DialKind::Callback,
                store_world::phone("+79120000001"),
                now,
                3,
            ),
            now,
        )
        .await
        .unwrap();
    let claimed = store
        .claim_dial_job(job.id, "node-a", now, Duration::minutes(10))
        .await
        .unwrap();
    assert!(claimed.is_some());
    let silence = Duration::from_std(SILENCE).unwrap();
    // Node a keeps renewing: nothing is node b's, whatever the time.
    let soon = now + silence - Duration::seconds(1);
    store.node_alive("node-b", soon).await.unwrap();
    assert!(
        store
            .claim_chains("node-b", false, soon, soon + Duration::minutes(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .claim_due_dial_jobs("node-b", soon, Duration::minutes(10), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.live_nodes(soon).await.unwrap(),
        vec!["node-a".to_owned(), "node-b".to_owned()]
    );
    // Node a falls silent: a second past its heartbeat, its work is node b's.
    let dead = now + silence + Duration::seconds(1);
    assert_eq!(
        store.live_nodes(dead).await.unwrap(),
        vec!["node-b".to_owned()]
    );
    let chains = store
        .claim_chains("node-b", false, dead, dead + Duration::minutes(1), 10)
        .await
        .unwrap();
    assert_eq!(chains.len(), 1);
    let jobs = store
        .claim_due_dial_jobs("node-b", dead, Duration::minutes(10), 10)
        .await
        .unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![job.id]);
    assert_eq!(jobs[0].claimed_by.as_deref(), Some("node-b"));
    // A node that stops cleanly frees what it holds at once too.
    store.node_stopped("node-b", dead).await.unwrap();
    assert!(store.live_nodes(dead).await.unwrap().is_empty());
}

on_both_backends!(
    one_running_chain_per_ticket,
    leases_decide_which_node_places_calls,
    the_first_of_two_acceptances_wins,
    tickets_without_a_chain_are_found,
    a_dead_nodes_chains_and_jobs_are_taken_within_seconds,
);

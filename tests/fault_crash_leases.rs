//! After a crash, a node's claimed dial jobs do not wait out their lease: the
//! node (its id is stable, from the data directory) hands them back when it
//! starts, on SQLite and PostgreSQL; other nodes' claims are left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/store_db.rs"]
mod store_db;

use chrono::{Duration, Utc};
use dispatchline::dialer;
use dispatchline::phone::PhoneNumber;
use dispatchline::store::{DialKind, NewDialJob, Store};

fn callback(call: &str, target: &str) -> NewDialJob {
    NewDialJob {
        call_id: Some(call.to_owned()),
        ..NewDialJob::new(
            DialKind::Callback,
            PhoneNumber::parse(target).unwrap(),
            Utc::now() - Duration::seconds(1),
            3,
        )
    }
}

async fn a_restarted_node_hands_back_what_it_held_at_once(store: Store) {
    let now = Utc::now();
    store
        .create_dial_job(&callback("c-1", "+79120000001"), now)
        .await
        .unwrap();
    let a = dialer::claim(&store, "node-a", now, 10).await.unwrap();
    store
        .create_dial_job(&callback("c-2", "+79120000002"), now)
        .await
        .unwrap();
    let c = dialer::claim(&store, "node-c", now, 10).await.unwrap();
    assert_eq!((a.len(), c.len()), (1, 1));
    // node-a is SIGKILLed and starts again a second later: nothing is due yet for
    // anyone else (the lease runs 10 minutes)...
    let restart = now + Duration::seconds(1);
    assert!(
        dialer::claim(&store, "node-b", restart, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // ...until node-a hands its jobs back as it starts.
    assert_eq!(
        store
            .release_node_dial_jobs("node-a", restart)
            .await
            .unwrap(),
        1
    );
    let taken = dialer::claim(&store, "node-b", restart, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].id, a[0].id, "node-c's claim is left alone");
}

on_both_backends!(a_restarted_node_hands_back_what_it_held_at_once,);

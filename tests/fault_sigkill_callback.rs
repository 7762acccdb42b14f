//! The real binary SIGKILLed while a resident's callback rings at an operator's
//! softphone: started again in the same data directory, the engine takes the job
//! up at once (not after its lease), places the callback once more and only once,
//! and the store holds one attempt of it, answered.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::child::{serve, until};
use common::engine::{free_port, scratch_dir};
use common::sipp::{self, Sipp};
use dispatchline::phone::PhoneNumber;
use dispatchline::store::{DialJobFilter, DialJobState, DialKind, NewDialJob, Store, TenantScope};

const RESIDENT: &str = "+79120000001";
const PASSWORD: &str = "op1001-long-passw0rd";

/// Operator 1001's softphone answering with `scenario_file`, registered with the
/// engine on `sip` and set ready over HTTP on `http`.
async fn on_duty(dir: &Path, sip: u16, http: u16, scenario_file: &str) -> Sipp {
    let port = free_port();
    let softphone = sipp::spawn(
        "operator",
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario(scenario_file),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-m",
            "1",
            "-mp",
            &free_port().to_string(),
            "-d",
            "1000",
        ]),
    );
    sipp::wait_bound(port).await;
    sipp::spawn(
        "register",
        dir,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("operator_register.xml"),
            &format!("127.0.0.1:{sip}"),
            "-i",
            "127.0.0.1",
            "-m",
            "1",
            "-key",
            "ext",
            "1001",
            "-au",
            "1001",
            "-ap",
            PASSWORD,
            "-key",
            "contact_port",
            &port.to_string(),
            "-p",
            &free_port().to_string(),
        ]),
    )
    .finish(Duration::from_secs(30))
    .await
    .assert_success("softphone registration");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http}/api/v1");
    let login: serde_json::Value = client
        .post(format!("{base}/auth/token"))
        .json(&serde_json::json!({"extension": "1001", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().expect("logged in").to_owned();
    let r = client
        .post(format!("{base}/operators/1001/state"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"state": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    softphone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_ringing_when_the_engine_is_killed_is_placed_again_once() {
    let dir = scratch_dir();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("sqlite://{}/dispatchline.db", data.display());
    let store = Store::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    dispatchline::store::demo::seed(&store).await.unwrap();

    let (sip, http, provider) = (free_port(), free_port(), free_port());
    let config = dir.join("engine.toml");
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip}\"\ndigest_algorithms = [\"MD5\"]\n\
             [http]\nlisten = \"127.0.0.1:{http}\"\n\
             [database]\nurl = \"{url}\"\n\
             [media]\nrecord_calls = false\nprompts_dir = \"{}\"\n\
             [[trunk]]\nname = \"p\"\nproxy = \"127.0.0.1:{provider}\"\noptions_interval_s = 0\n\n\
             [[number]]\nnumber = \"+73432000001\"\nkind = \"tenant\"\ntenant = \"etalon\"\ncity = \"ekb\"\ntrunk = \"p\"\n\n\
             [[operator]]\nextension = \"1001\"\npassword = \"{PASSWORD}\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("ivr-prompts").display()
        ),
    )
    .unwrap();
    let work = sipp::workdir("sigkill-callback");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sipp/g711a.pcap"),
        work.join("g711a.pcap"),
    )
    .unwrap();

    let engine = serve(&config, &data, http).await;
    // Nobody is at the desk: the callback rings and rings.
    let empty_desk = on_duty(&work, sip, http, "operator_never_answers.xml").await;
    let now = chrono::Utc::now();
    let job = NewDialJob {
        tenant: Some("etalon".into()),
        ..NewDialJob::new(
            DialKind::Callback,
            PhoneNumber::parse(RESIDENT).unwrap(),
            now,
            3,
        )
    };
    let job = store
        .create_dial_job_from(&job, PhoneNumber::parse("+73432000001").ok().as_ref(), now)
        .await
        .unwrap();
    until(Duration::from_secs(20), "the callback claimed", || {
        let store = store.clone();
        async move {
            let j = store.dial_job(job.id).await.ok().flatten()?;
            (j.state == DialJobState::Claimed).then_some(())
        }
    })
    .await;
    // It rings a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(engine); // SIGKILL
    drop(empty_desk);
    let held = store.dial_job(job.id).await.unwrap().unwrap();
    assert_eq!(held.attempts_made, 0, "no attempt finished before the kill");

    // The resident's phone behind the provider answers one call.
    let phone = sipp::spawn(
        "resident-phone",
        &work,
        &sipp::args(&[
            "-sf",
            &sipp::scenario("resident_phone_answers.xml"),
            "-i",
            "127.0.0.1",
            "-p",
            &provider.to_string(),
            "-m",
            "1",
            "-mp",
            &free_port().to_string(),
            "-d",
            "1000",
        ]),
    );
    sipp::wait_bound(provider).await;
    let _engine = serve(&config, &data, http).await;
    let present = on_duty(&work, sip, http, "operator_answers.xml").await;

    let done = until(Duration::from_secs(40), "the callback answered", || {
        let store = store.clone();
        async move {
            let j = store.dial_job(job.id).await.ok().flatten()?;
            (j.state == DialJobState::Done).then_some(j)
        }
    })
    .await;
    assert_eq!(done.attempts_made, 1, "one attempt recorded: {done:?}");
    phone
        .finish(Duration::from_secs(30))
        .await
        .assert_success("the resident's phone, called once");
    present
        .finish(Duration::from_secs(30))
        .await
        .assert_success("the operator who took the callback");
    // Nothing more is placed: still one attempt and one job for the resident.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = store.dial_job(job.id).await.unwrap().unwrap();
    assert_eq!(after.attempts_made, 1);
    assert_eq!(after.state, DialJobState::Done);
    let jobs = store
        .dial_jobs(&TenantScope::All, &DialJobFilter::default())
        .await
        .unwrap()
        .items;
    let for_resident = jobs
        .iter()
        .filter(|j| j.target.as_str() == RESIDENT)
        .count();
    assert_eq!(for_resident, 1, "{jobs:?}");
}

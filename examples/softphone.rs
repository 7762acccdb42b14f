//! A simulated operator softphone (or resident phone) for trying a running engine
//! by hand: real SIP (digest registration, calls, BYE) and real RTP (it plays a
//! prompt as its voice).
//!
//! ```text
//! cargo run --example softphone -- --engine 127.0.0.1:5060 --ext 1001 --password op1001pass
//! cargo run --example softphone -- --engine 127.0.0.1:5060 --call +73432000001 --from +79120000001
//! ```
//!
//! Then type `a` (answer), `h` (hang up), `c NUMBER` (call) or `q` (quit). Keys to
//! press after the answer are given with `--digits 1#` (a `,` waits a second).
//!
//! `--bind ADDR` is the local address for SIP and RTP (default 127.0.0.1): against
//! an engine on another host, give this host's address on the network the engine
//! can reach (not 0.0.0.0: the phone writes it into its Via, Contact and SDP).
//! `--prompts DIR` is where its voice is read from (default: `ivr-prompts` here,
//! else the source tree it was built from).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dispatchline::config::Config;
use dispatchline::media::{MediaEngine, PromptLibrary};
use dispatchline::sim::{Behaviour, Command, SimPhone};
use tokio::io::AsyncBufReadExt;

struct Args {
    engine: SocketAddr,
    ext: Option<String>,
    password: Option<String>,
    call: Option<String>,
    from: String,
    digits: Vec<char>,
    auto_answer: Option<Duration>,
    prompts: Option<PathBuf>,
    bind: IpAddr,
}

fn args() -> Result<Args> {
    let mut a = Args {
        engine: "127.0.0.1:5060".parse()?,
        ext: None,
        password: None,
        call: None,
        from: "+79120000001".into(),
        digits: Vec::new(),
        auto_answer: None,
        prompts: None,
        bind: "127.0.0.1".parse()?,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--engine" => a.engine = value()?.parse()?,
            "--ext" => a.ext = Some(value()?),
            "--password" => a.password = Some(value()?),
            "--call" => a.call = Some(value()?),
            "--from" => a.from = value()?,
            "--digits" => a.digits = value()?.chars().collect(),
            "--auto-answer" => a.auto_answer = Some(Duration::from_secs(value()?.parse()?)),
            "--prompts" => a.prompts = Some(PathBuf::from(value()?)),
            "--bind" => {
                a.bind = value()?.parse().context("--bind takes an IP address")?;
                if a.bind.is_unspecified() {
                    bail!("--bind needs this host's address, not {}", a.bind);
                }
            }
            other => bail!("unknown flag {other}"),
        }
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = args()?;
    let dir = match args.prompts.clone() {
        Some(dir) => dir,
        None => dispatchline::demo::prompts_dir()?,
    };
    let prompts = Arc::new(PromptLibrary::load(&dir).with_context(|| {
        format!(
            "loading prompts from {} (run from the repository, or pass --prompts)",
            dir.display()
        )
    })?);
    let mut settings = Config::empty().media;
    settings.rtp_port_min = 45000;
    settings.rtp_port_max = 45999;
    let (media, mut media_events) = MediaEngine::start(&settings, prompts, args.bind)?;
    tokio::spawn(async move { while media_events.recv().await.is_some() {} });
    let behaviour = Behaviour {
        auto_answer: args.auto_answer,
        hang_up_after: None,
        voice: "ru/connecting.wav".into(),
    };
    let phone = SimPhone::start_on(args.bind, args.engine, media, behaviour).await?;
    println!("softphone at {} talking to {}", phone.addr(), args.engine);
    let mut events = phone.events();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            println!("  {event:?}");
        }
    });
    if let (Some(ext), Some(password)) = (&args.ext, &args.password) {
        phone.send(Command::Register {
            user: ext.clone(),
            password: password.clone(),
        });
    }
    if let Some(number) = &args.call {
        phone.send(Command::Call {
            number: number.clone(),
            from: args.from.clone(),
            digits: args.digits.clone(),
        });
    }
    println!("commands: a (answer), h (hang up), c NUMBER (call), q (quit)");
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("a"), _) => phone.send(Command::Answer),
            (Some("h"), _) => phone.send(Command::HangUp),
            (Some("c"), Some(number)) => phone.send(Command::Call {
                number: number.into(),
                from: args.from.clone(),
                digits: Vec::new(),
            }),
            (Some("q"), _) => break,
            _ => println!("?"),
        }
    }
    phone.send(Command::HangUp);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(())
}

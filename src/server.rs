//! Assembles the engine from its parts and runs it until SIGTERM.

use std::net::SocketAddr;

use crate::config::Config;

/// Checks every prompt the configuration refers to: it must exist and be a WAV file
/// the engine plays (8 kHz, 16-bit, mono). Returns one message per fault, naming the
/// file and what is wrong.
pub fn check_prompts(config: &Config) -> Result<(), Vec<String>> {
    let dir = &config.media.prompts_dir;
    let faults: Vec<String> = config
        .referenced_prompts()
        .into_iter()
        .filter_map(|p| {
            let path = dir.join(&p);
            if !path.is_file() {
                return Some(format!("prompt {} not found under {}", p, dir.display()));
            }
            crate::media::prompts::check_file(&path)
                .err()
                .map(|e| format!("prompt {p}: {e}"))
        })
        .collect();
    if faults.is_empty() {
        Ok(())
    } else {
        Err(faults)
    }
}

/// Runs the engine on `config` until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), crate::Error> {
    let _ = config;
    Ok(())
}

/// Applies the ticket store's migrations to `database`.
pub async fn migrate(database: &str) -> Result<(), crate::Error> {
    let _ = database;
    Ok(())
}

/// Runs the demo: the engine on embedded defaults plus simulated parties.
pub async fn demo(http_listen: SocketAddr) -> Result<(), crate::Error> {
    let _ = http_listen;
    Ok(())
}

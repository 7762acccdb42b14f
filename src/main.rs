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
    /// With --database, also check that the store knows every tenant and city the
    /// numbers name.
    CheckConfig {
        /// The file to check.
        #[arg(env = "DISPATCHLINE_CONFIG", default_value = config::DEFAULT_PATH)]
        path: PathBuf,
        /// The ticket store to check the numbers' tenants and cities against.
        #[arg(long)]
        database: Option<String>,
    },
    /// Load a company's onboarding questionnaire (an XLSX workbook, or a folder of
    /// the same sheets as CSV files) into the store.
    Import(ImportArgs),
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
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
    /// This node's name among several behind the SIP edge (kept in the data
    /// directory's `node-id`; by default a random one made at the first start).
    #[arg(long, env = "DISPATCHLINE_NODE_ID")]
    node_id: Option<String>,
    /// Start even with the shipped example passwords (a demonstration, never a
    /// real centre; the same as `[security] allow_example_credentials = true`).
    #[arg(long, env = "DISPATCHLINE_DEMO")]
    demo: bool,
}

#[derive(Args)]
struct ImportArgs {
    /// The workbook (.xlsx) or a folder of CSV sheets.
    workbook: PathBuf,
    /// The tenant's code (as the configuration's numbers name it).
    #[arg(long)]
    tenant: String,
    /// Report what would change, and every bad cell, without writing.
    #[arg(long)]
    dry_run: bool,
    /// Telephony configuration (where the store is).
    #[arg(long, env = "DISPATCHLINE_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Ticket store URL (overrides the configuration's).
    #[arg(long, env = "DISPATCHLINE_DATABASE")]
    database: Option<String>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account. The console password is asked (or taken from
    /// DISPATCHLINE_USER_PASSWORD); operators and supervisors are also asked for
    /// their softphone's SIP password (DISPATCHLINE_SIP_PASSWORD; empty: none).
    Add {
        /// Login name; for operators also the softphone's SIP user.
        extension: String,
        /// operator, supervisor, tenant-admin or tenant-viewer.
        #[arg(long)]
        role: String,
        /// A tenant the account serves (repeat for several; none: all).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
        /// Telephony configuration (where the store is, and the SIP realm).
        #[arg(long, env = "DISPATCHLINE_CONFIG", default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Ticket store URL (overrides the configuration's).
        #[arg(long, env = "DISPATCHLINE_DATABASE")]
        database: Option<String>,
    },
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
        Command::CheckConfig { path, database } => check_config(&path, database),
        Command::Import(args) => run(import(args)),
        Command::User {
            command:
                UserCommand::Add {
                    extension,
                    role,
                    tenants,
                    name,
                    config,
                    database,
                },
        } => run(user_add(extension, role, tenants, name, config, database)),
        Command::Serve(args) => {
            dispatchline::supervise::install_fatal_panic_hook();
            run(serve(args))
        }
        Command::Migrate { database } => run(migrate(database)),
        Command::Demo(args) => {
            dispatchline::supervise::install_fatal_panic_hook();
            run(demo(args))
        }
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

fn check_config(path: &std::path::Path, database: Option<String>) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(err) => {
            println!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let mut faults = match dispatchline::server::check_prompts(&config) {
        Ok(()) => Vec::new(),
        Err(faults) => faults
            .into_iter()
            .map(|f| format!("{}: {f}", path.display()))
            .collect(),
    };
    if let Some(url) = database {
        let mut with_store = config.clone();
        with_store.database.url = url.clone();
        match run_value(dispatchline::server::check_store(&with_store)) {
            Ok(found) => faults.extend(found),
            Err(e) => faults.push(format!("{url}: {e}")),
        }
    }
    if !faults.is_empty() {
        for fault in faults {
            println!("{fault}");
        }
        return ExitCode::FAILURE;
    }
    for warning in config.warnings() {
        println!("{}: warning: {warning}", path.display());
    }
    println!("{}: ok ({} numbers)", path.display(), config.numbers.len());
    ExitCode::SUCCESS
}

/// Runs a future to its value on a fresh runtime.
fn run_value<T>(
    fut: impl std::future::Future<Output = Result<T, dispatchline::Error>>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(fut)?)
}

/// The configuration of a command that works on the store, with `--database`.
fn store_config(path: &std::path::Path, database: Option<String>) -> anyhow::Result<Config> {
    let mut config = Config::load(path)?;
    if let Some(url) = database {
        config.database.url = url;
    }
    Ok(config)
}

async fn open_store(config: &Config) -> anyhow::Result<dispatchline::store::Store> {
    let store = dispatchline::store::Store::connect(&config.database.url).await?;
    store.migrate().await?;
    Ok(store)
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    use dispatchline::store::onboarding::{Stage, Workbook, estimate};
    let config = store_config(&args.config, args.database)?;
    let store = open_store(&config).await?;
    let started = std::time::Instant::now();
    eprintln!("reading {} ...", args.workbook.display());
    let path = args.workbook.clone();
    let book = tokio::task::spawn_blocking(move || Workbook::open(&path)).await??;
    let rows = book.data_rows();
    eprintln!(
        "{rows} rows in {} sheets; this takes about {} s",
        book.sheets.len(),
        estimate(rows).as_secs().max(1)
    );
    let progress = |stage: Stage| {
        let what = match stage {
            Stage::Reading => "checking every cell",
            Stage::Loading => "loading what the store holds",
            Stage::Comparing => "comparing",
            Stage::Writing => "writing (one transaction)",
            _ => "working",
        };
        eprintln!("[{:>5.1} s] {what} ...", started.elapsed().as_secs_f64());
    };
    let report = store
        .acting_as("cli")
        .onboard(&args.tenant, book, args.dry_run, progress)
        .await?;
    for (sheet, c) in &report.sheets {
        println!(
            "{sheet}: {} created, {} changed, {} unchanged",
            c.created, c.changed, c.unchanged
        );
    }
    if !report.faults.is_empty() {
        for line in report.fault_lines() {
            println!("{line}");
        }
        anyhow::bail!(
            "{} bad cells; nothing {}",
            report.faults.len(),
            if args.dry_run {
                "would be imported"
            } else {
                "imported"
            }
        );
    }
    let verdict = match (args.dry_run, report.applied) {
        (true, _) => "dry run: nothing written",
        (false, true) => "imported",
        (false, false) => "nothing to change",
    };
    println!(
        "{}: {verdict} in {:.1} s",
        args.tenant,
        started.elapsed().as_secs_f64()
    );
    store.close().await;
    Ok(())
}

/// A password from the environment, or asked on the terminal without echo.
fn password(env: &str, prompt: &str) -> anyhow::Result<String> {
    if let Ok(value) = std::env::var(env) {
        return Ok(value);
    }
    use std::io::{BufRead as _, Write as _};
    let stdin = std::io::stdin();
    let tty = rustix::termios::isatty(&stdin);
    let saved = if tty {
        let saved = rustix::termios::tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet)?;
        Some(saved)
    } else {
        None
    };
    eprint!("{prompt}: ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &saved)?;
        eprintln!();
    }
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

async fn user_add(
    extension: String,
    role: String,
    tenants: Vec<String>,
    name: String,
    config: PathBuf,
    database: Option<String>,
) -> anyhow::Result<()> {
    use dispatchline::store::users::{NewUser, Role};
    let role = Role::parse(&role).ok_or_else(|| {
        anyhow::anyhow!("--role must be operator, supervisor, tenant-admin or tenant-viewer")
    })?;
    let config = store_config(&config, database)?;
    let console = password("DISPATCHLINE_USER_PASSWORD", "console password")?;
    let sip = if role.is_tenant_staff() {
        None
    } else {
        Some(password(
            "DISPATCHLINE_SIP_PASSWORD",
            "softphone SIP password (empty: no softphone)",
        )?)
        .filter(|p| !p.is_empty())
    };
    let store = open_store(&config).await?;
    let user = store
        .acting_as("cli")
        .create_user(
            &NewUser {
                extension,
                name,
                role: Some(role),
                tenants,
                cities: Vec::new(),
                password: console,
                sip_password: sip,
                auto_answer: false,
            },
            &config.sip.realm,
        )
        .await?;
    println!(
        "account {} ({}) created{}",
        user.extension,
        user.role,
        if user.softphone {
            ", with a softphone"
        } else {
            ""
        }
    );
    store.close().await;
    Ok(())
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
    if let Some(id) = &args.node_id {
        dispatchline::server::set_node_id(&config.database.data_dir, id)?;
    }
    check_credentials(&config, args.demo).await?;
    dispatchline::server::serve(config).await?;
    Ok(())
}

/// Refuses to serve with the shipped example passwords (in the file, or already
/// seeded into the store) unless allowed; warns about short passwords.
async fn check_credentials(config: &Config, demo: bool) -> anyhow::Result<()> {
    use dispatchline::config::security::{credential_faults, is_example_secret};
    let (mut refusals, warnings) = credential_faults(&config.operators, &config.trunks);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    let store = dispatchline::store::Store::connect(&config.database.url).await?;
    store.migrate().await?;
    for account in store.softphones().await? {
        let operator = dispatchline::config::Operator::from_account(&account);
        let secret = operator.digest_secret();
        if is_example_secret(&operator.extension, &config.sip.realm, &secret) {
            refusals.push(format!(
                "the stored account {} uses the shipped example SIP password",
                operator.extension
            ));
        }
    }
    store.close().await;
    if refusals.is_empty() {
        return Ok(());
    }
    if demo || config.security.allow_example_credentials {
        for r in &refusals {
            tracing::warn!("{r} (allowed: --demo or [security] allow_example_credentials)");
        }
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve with the shipped example passwords:\n  {}\nchange them (dispatchline user add, or the [[operator]] tables of a fresh store), or pass --demo / set [security] allow_example_credentials = true for a demonstration",
        refusals.join("\n  ")
    )
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

//! The `fhirgate` subcommands, one file each: its flags and what it does.

mod access;
mod backup;
mod check_provider;
mod client;
mod demo;
mod directory;
mod guest;
mod init;
mod keys;
mod policy;
mod provider;
mod proxy;
mod secret;
mod serve;
mod user;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where a command finds a gateway's state: its data directory or its
/// database, and the key-encryption key its key material is sealed under.
#[derive(clap::Args)]
pub struct StateArgs {
    /// The gateway's data directory.
    #[arg(long, env = "FHIRGATE_DATA_DIR", required_unless_present = "database_url")]
    pub data_dir: Option<PathBuf>,
    /// The gateway's database, when its state is at a URL
    /// (`postgres://…`, the gateway's `database_url`).
    #[arg(long, env = "FHIRGATE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// The key-encryption key's file, when the gateway's `kek_file` is set
    /// (default: `kek.key` in the data directory; `FHIRGATE_KEK` wins).
    #[arg(long, env = "FHIRGATE_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
}

impl StateArgs {
    /// The store and its key material.
    pub async fn open(&self) -> anyhow::Result<(fhirgate_store::Store, fhirgate_store::material::KeyMaterial)> {
        fhirgate_store::Store::open_state(
            self.data_dir.as_deref(),
            self.database_url.as_deref(),
            self.kek_file.as_deref(),
        )
        .await?
        .ok_or_else(|| anyhow::anyhow!("give --data-dir or --database-url"))
    }
}

#[derive(Parser)]
#[command(name = "fhirgate", version, about = "FHIR interop gateway with WebAssembly policy modules")]
pub struct Cli {
    /// How log lines (on standard error) are written: `text`, or `json`
    /// (one object per line, the request id in every line of a request).
    #[arg(long, global = true, value_enum, env = "FHIRGATE_LOG_FORMAT", default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// The log lines' format.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

#[derive(Subcommand)]
enum Command {
    /// Write a starter gateway.toml and policy.toml into a directory: one
    /// hospital, one tenant, one app, the modules built into fhirgate.
    Init(init::Args),
    /// Serve the gateway described by a configuration file.
    Serve(serve::Args),
    /// Start the demo provider and a gateway serving the demo partner.
    Demo(demo::Args),
    /// Forward GETs to one upstream base with the gateway's transport and
    /// nothing else (no tokens, modules or shaping): the baseline the
    /// comparative benchmark measures the gateway against. Not for apps.
    Proxy(proxy::Args),
    /// Serve only the demo provider (R4 unless --fhir-version says otherwise).
    Provider(provider::Args),
    /// Generate a client secret and the `secret_sha256` line for gateway.toml.
    Secret,
    /// Manage registered OAuth clients and their secrets in a data directory.
    Client(client::Args),
    /// Manage the token signing keys in a data directory.
    Keys(keys::Args),
    /// Manage the people who use the admin API: roles and personal API tokens.
    User(user::Args),
    /// Work with policy files.
    Policy(policy::Args),
    /// Work with policy modules.
    Guest(guest::Args),
    /// Onboard providers and tenants in a data directory: request a mapping
    /// naming its approver, then approve or reject it. Running gateways sharing
    /// the data directory pick changes up within 2 s.
    Directory(directory::Args),
    /// Run the app's whole call set against a provider through the partner's
    /// shaping module and report, per resource and per face, what works.
    /// Exits 2 when Patient fails (the app would not load), 1 on other errors.
    CheckProvider(check_provider::Args),
    /// Query the access log in a data directory.
    Access(access::Args),
    /// Copy a data directory (database and sealed key material) to a new
    /// directory while the gateway serves from it.
    Backup(backup::BackupArgs),
    /// Put a backup into a new data directory, after checking it and that the
    /// key-encryption key opens it.
    Restore(backup::RestoreArgs),
}

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Serve(args) => serve::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Proxy(args) => proxy::run(args).await,
        Command::Provider(args) => provider::run(args).await,
        Command::Secret => secret::run(),
        Command::Client(args) => client::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::User(args) => user::run(args).await,
        Command::Policy(args) => policy::run(args).await,
        Command::Guest(args) => guest::run(args).await,
        Command::Directory(args) => directory::run(args).await,
        Command::CheckProvider(args) => check_provider::run(args).await,
        Command::Access(args) => access::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
    }
}

/// Resolves on SIGTERM or Ctrl-C: a served gateway, the demo or the demo
/// provider stops accepting and drains what is in flight.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

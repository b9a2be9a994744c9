//! The `fhirgate` command: serve a configured gateway, run the demo, serve the
//! demo provider alone, or pin a policy's modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fhirgate::config::Config;
use fhirgate::demo::{DemoOptions, run_demo};
use fhirgate::oauth::ClientRegistry;
use fhirgate::policy::PolicyFile;
use fhirgate::server::{Gateway, bind, run};
use fhirgate::wasm::Runtime;
use fhirgate::wasm::module::sha256_hex;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "fhirgate", version, about = "FHIR interop gateway with WebAssembly policy modules")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway described by a configuration file.
    Serve {
        /// The gateway configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Address to listen on; overrides `listen` in the file. Port 0 picks a free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Print one JSON line with the real address once ready.
        #[arg(long)]
        json: bool,
    },
    /// Start the demo provider and a gateway serving the demo partner.
    Demo {
        /// Gateway address. Port 0 picks a free port; the real one is printed.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Print the demo's facts as one JSON object on stdout once ready.
        #[arg(long)]
        json: bool,
        /// The demo partner's policy.
        #[arg(long, default_value = "policies/demo/policy.toml")]
        policy: PathBuf,
    },
    /// Serve only the demo R4 provider.
    Provider {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Print one JSON line with the provider's base URL once ready.
        #[arg(long)]
        json: bool,
    },
    /// Generate a client secret and the `secret_sha256` line for gateway.toml.
    Secret,
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a policy and its modules and report what would serve.
    Check { policy: PathBuf },
    /// Rewrite each module's `sha256` to the digest of the file it names.
    Pin { policy: PathBuf },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FHIRGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async_main(cli))
}

async fn shutdown_signal() {
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

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen, json } => {
            let config = Config::load(&config)?;
            let runtime = Runtime::new(config.wasm.clone())?;
            let policy = PolicyFile::read(&config.policy)?.load(&config.policy, &runtime)?;
            let clients = ClientRegistry::from_config(&config.clients)?;
            let addr = listen
                .or(config.listen)
                .context("no address to listen on: set `listen` in the config or pass --listen")?;
            let (listener, local) = bind(addr).await?;
            let gateway = Arc::new(Gateway::new(&config, runtime, policy, clients, local)?);
            tracing::info!(address = %local, partner = %gateway.policy.load().partner, "gateway listening");
            if json {
                println!("{}", serde_json::json!({ "event": "ready", "address": local.to_string() }));
            }
            run(listener, gateway, shutdown_signal()).await
        }
        Command::Demo { listen, json, policy } => {
            run_demo(DemoOptions { listen, json, policy }, shutdown_signal()).await
        }
        Command::Provider { listen, json } => {
            let (listener, local) = bind(listen).await?;
            let base = format!("http://{local}/fhir");
            if json {
                println!("{}", serde_json::json!({ "event": "ready", "base_url": base }));
            } else {
                println!("demo provider (R4) at {base}");
            }
            tokio::select! {
                () = fhirgate::demo::provider::serve(listener, base) => {}
                () = shutdown_signal() => {}
            }
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Check { policy } } => {
            let runtime = Runtime::new(Default::default())?;
            let loaded = PolicyFile::read(&policy)?.load(&policy, &runtime)?;
            println!("policy {} (partner `{}`) is valid", policy.display(), loaded.partner);
            for (role, m) in
                [("token-validation", &loaded.validator), ("routing", &loaded.router), ("shaping", &loaded.shaper)]
            {
                println!("  {role:<17} {} sha256 {}", m.module.name(), m.module.digest());
            }
            println!("  providers: {}  tenants: {}", loaded.providers.len(), loaded.tenants.len());
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Pin { policy } } => pin(&policy),
        Command::Secret => {
            let secret = fhirgate::oauth::clients::generate_secret();
            println!("client_secret = {secret}");
            println!("secret_sha256 = \"{}\"", sha256_hex(secret.as_bytes()));
            Ok(())
        }
    }
}

fn pin(path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text.parse().with_context(|| format!("parsing {}", path.display()))?;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let modules = doc
        .get_mut("modules")
        .and_then(|m| m.as_table_like_mut())
        .with_context(|| format!("{}: no [modules] table", path.display()))?;
    for (role, item) in modules.iter_mut() {
        let table = item.as_table_like_mut().with_context(|| format!("`modules.{role}` is not a table"))?;
        let file =
            table.get("path").and_then(|p| p.as_str()).with_context(|| format!("`modules.{role}.path` is missing"))?;
        let file = dir.join(file);
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let digest = sha256_hex(&bytes);
        println!("{role:<17} {digest}  {}", file.display());
        table.insert("sha256", toml_edit::value(digest));
    }
    std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

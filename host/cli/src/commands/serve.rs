//! `fhirgate serve`: the gateway a configuration file describes, until
//! SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use fhirgate_gateway::App;
use fhirgate_gateway::app::Options;
use fhirgate_gateway::config::Config;
use fhirgate_http::server::{Https, bind, run as serve};

use super::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    /// The gateway configuration (TOML).
    #[arg(long, short)]
    config: PathBuf,
    /// Address to listen on; overrides `listen` in the file. Port 0 picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Print one JSON line with the real address once ready.
    #[arg(long)]
    json: bool,
    /// Directory of persistent state; overrides `data_dir` in the file.
    #[arg(long, env = "FHIRGATE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The database shared by the replicas (`postgres://…`); overrides
    /// `database_url` in the file.
    #[arg(long, env = "FHIRGATE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Benchmark baseline only: run the built-in modules' code compiled into
    /// the gateway, outside the sandbox (partners' modules still run in it).
    #[arg(long, hide = true)]
    native_twins: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { config: path, listen, json, data_dir, database_url, native_twins } = args;
    let mut config = Config::read(&path)?;
    if data_dir.is_some() {
        config.data_dir = data_dir;
    }
    if database_url.is_some() {
        config.database_url = database_url;
    }
    config.check().with_context(|| format!("in {}", path.display()))?;
    let addr =
        listen.or(config.listen).context("no address to listen on: set `listen` in the config or pass --listen")?;
    if config.public_url.is_none() && config.accepted_hosts.is_empty() {
        anyhow::bail!(
            "{}: set `public_url` to the URL clients reach the gateway at (or list `accepted_hosts`): \
             discovery documents, token URLs and links are built on it, never on a client's Host header",
            path.display()
        );
    }
    let https = Https::from_config(&config).with_context(|| format!("`tls` in {}", path.display()))?;
    let (listener, local) = bind(addr).await?;
    let twins: Option<std::sync::Arc<dyn fhirgate_sandbox::twin::Twins>> = match native_twins {
        true => {
            let builtins = fhirgate_twins::Builtins::new();
            anyhow::ensure!(!builtins.is_empty(), "--native-twins: this binary carries no built-in modules");
            Some(builtins)
        }
        false => None,
    };
    let app = App::build(&config, local, Options { twins, ..Options::default() }).await?;
    let scheme = if https.is_some() { "https" } else { "http" };
    tracing::info!(address = %local, scheme, partner = %app.services().policy().load().partner, "gateway listening");
    if json {
        fhirgate_core::say!(
            "{}",
            serde_json::json!({ "event": "ready", "address": local.to_string(), "scheme": scheme })
        );
    }
    let (services, delay) = (app.services().clone(), Duration::from_secs(config.shutdown_delay_seconds.min(300)));
    let stopping = async move {
        shutdown_signal().await;
        // Not ready first, still serving; then stop accepting and drain.
        services.start_draining();
        tracing::info!(delay_seconds = delay.as_secs(), "stopping: reported not ready; draining after the delay");
        tokio::time::sleep(delay).await;
    };
    serve(listener, app.services().clone(), https, stopping).await?;
    app.shutdown().await;
    Ok(())
}

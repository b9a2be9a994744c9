//! `fhirgate proxy`: the gateway's transport with nothing else, the baseline
//! the comparative benchmark measures against.

use std::net::SocketAddr;

use fhirgate_http::server::bind;

use super::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    /// The upstream base URL; `GET /x?y` goes to `<upstream>/x?y`.
    #[arg(long)]
    upstream: String,
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Timeout of each upstream request, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// Print one JSON line with the real address once ready.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { upstream, listen, timeout_ms, json } = args;
    let proxy = fhirgate_devtools::proxy::Proxy::new(&upstream, std::time::Duration::from_millis(timeout_ms))?;
    let (listener, local) = bind(listen).await?;
    if json {
        fhirgate_core::say!("{}", serde_json::json!({ "event": "ready", "address": local.to_string() }));
    } else {
        fhirgate_core::say!("proxy at http://{local}/ → {upstream}");
    }
    fhirgate_devtools::proxy::run(listener, proxy, shutdown_signal()).await;
    Ok(())
}

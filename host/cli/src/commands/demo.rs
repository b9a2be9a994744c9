//! `fhirgate demo`: the demo provider and a gateway serving the demo
//! partner, with a client to try them with.

use std::net::SocketAddr;
use std::path::PathBuf;

use fhirgate_devtools::demo::{DemoOptions, run_demo};

use super::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    /// Gateway address. Port 0 picks a free port; the real one is printed.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Print the demo's facts as one JSON object on stdout once ready.
    #[arg(long)]
    json: bool,
    /// The demo partner's policy (default: policies/demo/policy.toml in
    /// fhirgate's source tree, else the demo policy built into fhirgate).
    #[arg(long)]
    policy: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args { listen, json, policy } = args;
    run_demo(DemoOptions { listen, json, policy }, shutdown_signal()).await
}

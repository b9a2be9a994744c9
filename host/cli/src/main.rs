//! The `fhirgate` command: serve a configured gateway, run the demo, serve the
//! demo provider alone, manage clients, keys and the directory, and work with
//! policies and modules. Each subcommand is a file in `commands/`.

mod commands;

use std::io::IsTerminal as _;

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Requests allocate and free on every worker thread, and hand buffers from
/// one thread to another; glibc's allocator serialises that on its arena
/// locks, jemalloc keeps per-thread caches (a fifth more reads per second).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    let cli = commands::Cli::parse();
    let filter = EnvFilter::try_from_env("FHIRGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match cli.log_format() {
        // One JSON object per line, with the request's span (its id).
        commands::LogFormat::Json => logs.json().with_current_span(true).with_span_list(false).init(),
        // Colours only for a person at a terminal.
        commands::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(commands::run(cli))
}

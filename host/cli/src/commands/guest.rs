//! `fhirgate guest new|test`: a module crate to start from, and a module's
//! case files run against its `.wasm`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use fhirgate_sandbox::Runtime;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: GuestCommand,
}

#[derive(Subcommand)]
pub enum GuestCommand {
    /// Create a buildable module crate (source, README, cases, WIT contract)
    /// to start a module from.
    New {
        /// The module's name: lower-case letters, digits and `-`.
        name: String,
        /// What the module does.
        #[arg(long, value_enum)]
        role: fhirgate_devtools::scaffold::NewRole,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// A fhirgate-guest-sdk crate to depend on by path (by default this
        /// build's SDK and WIT are copied into the new crate's `sdk/`).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Run case files (JSON; see the README) against a module, the same
    /// `.wasm` the gateway loads; exits 1 if any case fails.
    Test {
        /// The module component.
        module: PathBuf,
        /// Case files, or directories of them.
        #[arg(required = true)]
        cases: Vec<PathBuf>,
        /// The module configuration (JSON) for cases that set none.
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        GuestCommand::New { name, role, dir, sdk } => {
            let root = fhirgate_devtools::scaffold::new_module(&dir, &name, role, sdk.as_deref())?;
            fhirgate_core::say!("created {}", root.display());
            fhirgate_core::say!("build:  cd {} && cargo build --release --target wasm32-wasip2", root.display());
            fhirgate_core::say!(
                "test:   fhirgate guest test target/wasm32-wasip2/release/{}.wasm cases",
                name.replace('-', "_")
            );
            Ok(())
        }
        GuestCommand::Test { module, cases, config } => guest_test(&module, &cases, config.as_deref()).await,
    }
}

/// `fhirgate guest test`: runs case files against a module and prints a
/// line per case, with what differed under each failure.
async fn guest_test(
    module: &std::path::Path,
    cases: &[PathBuf],
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use fhirgate_sandbox::cases::{case_files, run_files};
    let config = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
            value.to_string()
        }
        None => "{}".to_owned(),
    };
    let bytes = std::fs::read(module).with_context(|| format!("reading {}", module.display()))?;
    let runtime = Runtime::new(Default::default())?;
    let name = module.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
    let loaded = fhirgate_sandbox::Module::load(&runtime, name, &bytes)?;
    let files = case_files(cases)?;
    anyhow::ensure!(!files.is_empty(), "no case files found");
    let results = run_files(&loaded, &files, &config).await;
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        match &r.failure {
            None => fhirgate_core::say!("ok      {}", r.name),
            Some(f) => {
                fhirgate_core::say!("FAILED  {}  ({})", r.name, r.file.display());
                for line in f.lines() {
                    fhirgate_core::say!("        {line}");
                }
            }
        }
    }
    fhirgate_core::say!("{} cases: {} passed, {failed} failed", results.len(), results.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

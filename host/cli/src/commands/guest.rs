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
    /// Create a buildable module (source, README, cases, SDK and WIT
    /// contract, build set-up) to start a module from, in Rust, JavaScript
    /// or Python.
    New {
        /// The module's name: lower-case letters, digits and `-`.
        name: String,
        /// What the module does.
        #[arg(long, value_enum)]
        role: fhirgate_devtools::scaffold::NewRole,
        /// The language it is written in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: fhirgate_devtools::scaffold::Lang,
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
        /// The module's memory limit in MiB, as its policy gives it
        /// (`memory_mib`; default that of `[wasm]`, 64).
        #[arg(long)]
        memory_mib: Option<usize>,
        /// One call's time budget in ms, as its policy gives it
        /// (`call_timeout_ms`; default that of `[wasm]`, 200).
        #[arg(long)]
        call_timeout_ms: Option<u64>,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        GuestCommand::New { name, role, lang, dir, sdk } => {
            let made = fhirgate_devtools::scaffold::new_in(&dir, &name, role, lang, sdk.as_deref())?;
            fhirgate_core::say!("created {}", made.root.display());
            if let Some(setup) = &made.setup {
                fhirgate_core::say!("setup:  cd {} && {setup}", made.root.display());
            }
            fhirgate_core::say!("build:  cd {} && {}", made.root.display(), made.build);
            fhirgate_core::say!("test:   {}", made.test);
            Ok(())
        }
        GuestCommand::Test { module, cases, config, memory_mib, call_timeout_ms } => {
            let limits = fhirgate_sandbox::ModuleLimits { memory_mib, call_timeout_ms };
            guest_test(&module, &cases, config.as_deref(), limits).await
        }
    }
}

/// `fhirgate guest test`: runs case files against a module and prints a
/// line per case, with what differed under each failure.
async fn guest_test(
    module: &std::path::Path,
    cases: &[PathBuf],
    config: Option<&std::path::Path>,
    limits: fhirgate_sandbox::ModuleLimits,
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
    let loaded = fhirgate_sandbox::Module::load(&runtime, name, &bytes)?.with_limits(limits)?;
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

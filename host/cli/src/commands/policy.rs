//! `fhirgate policy check|pin`: a partner's policy file, loaded as the
//! gateway would, or its modules pinned by digest.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use fhirgate_core::digest::sha256_hex;
use fhirgate_gateway::policy::PolicyFile;
use fhirgate_sandbox::Runtime;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Load a policy and its modules and report what would serve.
    Check { policy: PathBuf },
    /// Rewrite each module's `sha256` to the digest of the file it names
    /// (built-in modules are left as they are).
    Pin { policy: PathBuf },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        PolicyCommand::Check { policy } => check(&policy).await,
        PolicyCommand::Pin { policy } => pin(&policy),
    }
}

async fn check(policy: &std::path::Path) -> anyhow::Result<()> {
    let runtime = Runtime::new(Default::default())?;
    let file = PolicyFile::read(policy)?;
    for (id, spec) in &file.providers {
        spec.check_loadable(id).with_context(|| format!("in policy {}: `providers.{id}`", policy.display()))?;
    }
    let (providers, tenants) = (file.providers.len(), file.tenants.len());
    let loaded = file.load(policy, &runtime)?;
    fhirgate_gateway::activation::check(&loaded).await.with_context(|| format!("in policy {}", policy.display()))?;
    fhirgate_core::say!("policy {} (partner `{}`) is valid", policy.display(), loaded.partner);
    for (role, m) in [("token-validation", &loaded.validator), ("routing", &loaded.router), ("shaping", &loaded.shaper)]
    {
        fhirgate_core::say!("  {role:<17} {} sha256 {}", m.module.name(), m.module.digest());
    }
    fhirgate_core::say!("  providers: {providers}  tenants: {tenants}");
    Ok(())
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
        if table.contains_key("builtin") && !table.contains_key("path") {
            // The binary vouches for its own modules.
            continue;
        }
        let file =
            table.get("path").and_then(|p| p.as_str()).with_context(|| format!("`modules.{role}.path` is missing"))?;
        let file = dir.join(file);
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let digest = sha256_hex(&bytes);
        fhirgate_core::say!("{role:<17} {digest}  {}", file.display());
        table.insert("sha256", toml_edit::value(digest));
    }
    std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

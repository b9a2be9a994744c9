//! `fhirgate directory`: providers and tenant mappings in a data directory,
//! onboarded with approval; results are JSON on stdout.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, env = "FHIRGATE_DATA_DIR")]
    data_dir: PathBuf,
    /// Who makes the change, as the audit trail records it.
    #[arg(long, env = "FHIRGATE_ACTOR")]
    actor: Option<String>,
    /// An address range a provider registered here may have although it is
    /// loopback, private or otherwise special (repeatable): the gateway's
    /// `outbound.allowed_ranges`, for the /metadata check made here.
    #[arg(long = "allowed-range", value_name = "CIDR")]
    allowed_ranges: Vec<String>,
    #[command(subcommand)]
    command: DirectoryCommand,
}

#[derive(Subcommand)]
pub enum DirectoryCommand {
    /// List providers.
    Providers,
    /// Register or edit a provider from a JSON declaration (the fields of a
    /// policy's `[providers.<id>]`); its /metadata is checked first.
    PutProvider {
        provider_id: String,
        /// The declaration as JSON, e.g. '{"base_url":"https://…/fhir","fhir_version":"r4"}'.
        spec: String,
    },
    /// Remove a provider no tenant is mapped to.
    RemoveProvider { provider_id: String },
    /// List every tenant's mappings.
    Tenants,
    /// Show one tenant's mappings and their history.
    Show { tenant: String },
    /// Ask for tenant → provider; pending until the approver approves.
    Request {
        tenant: String,
        provider_id: String,
        #[arg(long)]
        approver: String,
    },
    /// Approve a pending mapping (as its named approver).
    Approve {
        tenant: String,
        provider_id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Reject a pending mapping (as its named approver).
    Reject {
        tenant: String,
        provider_id: String,
        #[arg(long)]
        note: Option<String>,
    },
    /// Disconnect a tenant from a provider.
    Remove { tenant: String, provider_id: String },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let outbound = fhirgate_gateway::config::OutboundConfig { allowed_ranges: args.allowed_ranges }.policy()?;
    directory_command(&args.data_dir, args.actor, outbound, args.command).await
}

/// Runs a `fhirgate directory …` command; results are JSON on stdout.
async fn directory_command(
    data_dir: &std::path::Path,
    actor: Option<String>,
    outbound: fhirgate_upstream::outbound::OutboundPolicy,
    command: DirectoryCommand,
) -> anyhow::Result<()> {
    use fhirgate_gateway::directory::{Directory, ProviderSpec};
    use serde_json::json;
    let store = fhirgate_store::Store::open_dir(data_dir).await?;
    let dir =
        Directory::open(std::sync::Arc::new(store), Some(data_dir.join(fhirgate_gateway::directory::SECRETS_DIR)))
            .await?;
    let upstream = fhirgate_upstream::Upstream::with_outbound(
        fhirgate_gateway::config::HttpLimits::default().max_upstream_body_bytes,
        outbound,
    );
    let actor = || actor.clone().context("name who makes the change with --actor (or FHIRGATE_ACTOR)");
    let out = match command {
        DirectoryCommand::Providers => json!({ "providers": dir.providers_view().await? }),
        DirectoryCommand::PutProvider { provider_id, spec } => {
            let spec: ProviderSpec = serde_json::from_str(&spec).context("the provider declaration")?;
            let (provider, metadata) = dir.put_provider(&upstream, &provider_id, spec, &actor()?).await?;
            json!({ "provider": provider, "metadata": metadata })
        }
        DirectoryCommand::RemoveProvider { provider_id } => {
            dir.remove_provider(&provider_id, &actor()?).await?;
            json!({ "removed": provider_id })
        }
        DirectoryCommand::Tenants => json!({ "tenants": dir.tenants_view().await? }),
        DirectoryCommand::Show { tenant } => dir.tenant_view(&tenant).await?,
        DirectoryCommand::Request { tenant, provider_id, approver } => {
            json!({ "mapping": dir.request_mapping(&upstream, &tenant, &provider_id, &approver, &actor()?).await? })
        }
        DirectoryCommand::Approve { tenant, provider_id, note } => {
            json!({ "mapping": dir.decide(&tenant, &provider_id, &actor()?, true, note).await? })
        }
        DirectoryCommand::Reject { tenant, provider_id, note } => {
            json!({ "mapping": dir.decide(&tenant, &provider_id, &actor()?, false, note).await? })
        }
        DirectoryCommand::Remove { tenant, provider_id } => {
            dir.remove_mapping(&tenant, &provider_id, &actor()?).await?;
            json!({ "removed": { "tenant_id": tenant, "provider_id": provider_id } })
        }
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

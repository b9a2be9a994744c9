//! `fhirgate directory`: providers and tenant mappings in a data directory,
//! onboarded with approval; results are JSON on stdout.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: super::StateArgs,
    /// Who makes the change, as the audit trail records it.
    #[arg(long, env = "FHIRGATE_ACTOR")]
    actor: Option<String>,
    /// The approver's personal API token (`fhirgate user token`): approvals
    /// and rejections are made as the user it belongs to, never by name.
    #[arg(long, env = "FHIRGATE_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
        /// The tenant's organization (hospital) the URL belongs to.
        #[arg(long)]
        organization: Option<String>,
        /// `test` or `production` (the default).
        #[arg(long, value_parser = parse_environment)]
        environment: Option<fhirgate_core::environment::Environment>,
    },
    /// Add or rename an organization (a hospital) of a tenant.
    Organization {
        tenant: String,
        organization_id: String,
        #[arg(long)]
        name: String,
    },
    /// A tenant's organizations and their test and production URLs.
    Organizations { tenant: String },
    /// Approve a pending mapping (as its named approver): the live provider
    /// check runs first, through the partner's shaping module, and must pass;
    /// its report is kept with the approval.
    Approve {
        tenant: String,
        provider_id: String,
        #[arg(long)]
        note: Option<String>,
        /// The partner's policy file (its shaping module runs the check).
        #[arg(long)]
        policy: PathBuf,
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
    /// Give a provider that authenticates the gateway with private_key_jwt a
    /// new assertion key; the old one stays in its JWK Set for the overlap.
    RotateProviderKey {
        provider_id: String,
        /// How long the replaced key stays published, in seconds.
        #[arg(long, default_value_t = fhirgate_gateway::directory::keys::DEFAULT_OVERLAP_SECONDS)]
        overlap_seconds: i64,
    },
    /// Keep a provider credential (read from standard input) sealed in the
    /// data directory's `provider-secrets/NAME` (with --database-url: in the
    /// database, for every replica), for a declaration's
    /// `client_secret_file` or `value_file`.
    SealSecret { name: String },
}

fn parse_environment(s: &str) -> Result<fhirgate_core::environment::Environment, String> {
    fhirgate_core::environment::Environment::parse(s).ok_or_else(|| "expected test or production".to_owned())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let outbound = fhirgate_gateway::config::OutboundConfig { allowed_ranges: args.allowed_ranges }.policy()?;
    directory_command(&args.state, args.actor, args.token, outbound, args.command).await
}

/// Runs a `fhirgate directory …` command; results are JSON on stdout.
async fn directory_command(
    state: &super::StateArgs,
    actor: Option<String>,
    token: Option<String>,
    outbound: fhirgate_upstream::outbound::OutboundPolicy,
    command: DirectoryCommand,
) -> anyhow::Result<()> {
    use fhirgate_gateway::directory::{Directory, ProviderSpec, SECRETS_DIR};
    use serde_json::json;
    let (store, material) = state.open().await?;
    let accounts = fhirgate_store::accounts::Accounts::new(store.clone(), material.pepper);
    let kek = material.kek;
    // Provider credentials: in the database when the state is, else files in
    // the data directory.
    let in_store = state.database_url.is_some();
    let secrets = match (in_store, &state.data_dir) {
        (true, _) => Some(std::path::PathBuf::from(fhirgate_core::vault::STORED_DIR)),
        (false, Some(d)) => Some(d.join(SECRETS_DIR)),
        (false, None) => None,
    };
    if let (DirectoryCommand::SealSecret { name }, Some(secrets), false) = (&command, &secrets, in_store) {
        return seal_secret(secrets, name, &kek);
    }
    if let (Some(secrets), false) = (&secrets, in_store) {
        fhirgate_core::vault::seal_plain_files(secrets, &kek)?;
    }
    let dir = Directory::open(std::sync::Arc::new(store), secrets.clone(), kek.clone()).await?;
    let upstream = fhirgate_upstream::Upstream::with_outbound(
        fhirgate_gateway::config::HttpLimits::default().max_upstream_body_bytes,
        outbound,
    );
    let named = actor.clone();
    // Marked as made on the gateway's machine, under the name given.
    let actor = || {
        actor.clone().map(|a| format!("cli:{a}")).context("name who makes the change with --actor (or FHIRGATE_ACTOR)")
    };
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
        DirectoryCommand::Organization { tenant, organization_id, name } => {
            json!({ "organization": dir.put_organization(&tenant, &organization_id, &name, &actor()?).await? })
        }
        DirectoryCommand::Organizations { tenant } => dir.organizations_view(&tenant).await?,
        DirectoryCommand::Show { tenant } => dir.tenant_view(&tenant).await?,
        DirectoryCommand::Request { tenant, provider_id, approver, organization, environment } => {
            let place = fhirgate_gateway::directory::environments::Placement {
                organization: organization.unwrap_or_default(),
                environment: environment.unwrap_or_default(),
            };
            let mapping = dir.request_mapping(&upstream, &tenant, &provider_id, &approver, &place, &actor()?).await?;
            json!({ "mapping": mapping })
        }
        DirectoryCommand::Approve { tenant, provider_id, note, policy } => {
            let approver = approver(&accounts, token.as_deref(), named.as_deref(), &tenant).await?;
            let m = dir.decidable(&tenant, &provider_id, &approver, true).await?;
            let runtime = fhirgate_sandbox::Runtime::new(Default::default())?;
            let loaded = fhirgate_gateway::policy::PolicyFile::read(&policy)?.load(&policy, &runtime)?;
            let report = fhirgate_gateway::conformance::live_check(
                &dir,
                &loaded.shaper,
                &upstream,
                &provider_id,
                &m.spec_sha256,
            )
            .await?;
            if report["passed"] != true {
                fhirgate_core::say!("{}", serde_json::to_string_pretty(&json!({ "report": report }))?);
                anyhow::bail!(
                    "the live provider check failed (Patient does not work through the gateway): not approved"
                );
            }
            json!({ "mapping": dir.decide(&tenant, &provider_id, &approver, true, note, Some(report)).await? })
        }
        DirectoryCommand::Reject { tenant, provider_id, note } => {
            let approver = approver(&accounts, token.as_deref(), named.as_deref(), &tenant).await?;
            json!({ "mapping": dir.decide(&tenant, &provider_id, &approver, false, note, None).await? })
        }
        DirectoryCommand::Remove { tenant, provider_id } => {
            dir.remove_mapping(&tenant, &provider_id, &actor()?).await?;
            json!({ "removed": { "tenant_id": tenant, "provider_id": provider_id } })
        }
        DirectoryCommand::RotateProviderKey { provider_id, overlap_seconds } => {
            let kid = dir.rotate_assertion_key(&provider_id, overlap_seconds, &actor()?).await?;
            json!({ "provider_id": provider_id, "kid": kid, "jwks": dir.snapshot().provider_jwks(&provider_id) })
        }
        DirectoryCommand::SealSecret { name } => {
            dir.store_secret(&name, &read_secret()?, &actor()?).await?;
            json!({ "sealed": name, "kek": kek.id(), "kept": "in the database" })
        }
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Writes the credential on standard input, sealed, to `secrets/name`.
/// A credential piped in on standard input, trimmed.
fn read_secret() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut value = String::new();
    std::io::stdin().read_to_string(&mut value).context("reading the secret from standard input")?;
    let value = value.trim();
    if value.is_empty() {
        anyhow::bail!("standard input is empty: pipe the credential in");
    }
    Ok(value.to_owned())
}

fn seal_secret(secrets: &std::path::Path, name: &str, kek: &fhirgate_core::vault::Kek) -> anyhow::Result<()> {
    if !fhirgate_core::files::is_plain_name(name) {
        anyhow::bail!("the secret's name must be a plain file name (letters, digits, `-`, `_`, `.`)");
    }
    let value = read_secret()?;
    let value = value.as_str();
    fhirgate_core::files::private_dir(secrets)?;
    let sealed = kek.seal(fhirgate_core::vault::PROVIDER_SECRET, value.as_bytes())?;
    fhirgate_core::files::replace_private(&secrets.join(name), sealed.as_bytes())?;
    fhirgate_core::say!("{}", serde_json::json!({ "sealed": name, "kek": kek.id() }));
    Ok(())
}

/// Who decides: the user `token` belongs to, who must hold an approver role
/// (or be an operator); never a name given on the command line.
async fn approver(
    accounts: &fhirgate_store::accounts::Accounts,
    token: Option<&str>,
    actor: Option<&str>,
    tenant: &str,
) -> anyhow::Result<String> {
    use fhirgate_store::accounts::Role;
    let token =
        token.context("approvals are made with the approver's personal API token: pass --token (or FHIRGATE_TOKEN)")?;
    let user = accounts.authenticate(token).await?.context("--token is not a live personal API token")?;
    if actor.is_some_and(|a| a != user.username) {
        anyhow::bail!("--actor names someone other than the token's user ({})", user.username);
    }
    let may = user.roles.iter().any(|r| match r {
        Role::Operator => true,
        Role::Approver(scope) => scope == "*" || scope.eq_ignore_ascii_case(tenant),
        _ => false,
    });
    if !may {
        anyhow::bail!("{} holds no approver role for tenant {tenant}", user.username);
    }
    Ok(user.username)
}

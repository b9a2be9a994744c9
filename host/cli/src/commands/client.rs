//! `fhirgate client`: registered OAuth clients and their secrets in a data
//! directory; results are JSON on stdout.

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: super::StateArgs,
    #[command(subcommand)]
    command: ClientCommand,
}

#[derive(Subcommand)]
pub enum ClientCommand {
    /// Register a client; its first secret is printed once.
    Create {
        #[arg(long)]
        name: String,
        /// A tenant id (GUID) the client may ask tokens for; repeat for more.
        #[arg(long = "tenant", required = true)]
        tenants: Vec<String>,
    },
    /// List clients (never secrets).
    List,
    /// Show one client and its secrets' metadata.
    Show { client_id: String },
    /// Add a secret beside the existing ones; printed once.
    AddSecret {
        client_id: String,
        /// What the secret is for (where it is deployed, say).
        #[arg(long, default_value = "")]
        description: String,
        /// Days until the secret stops working (default: it does not expire).
        #[arg(long)]
        expires_days: Option<u64>,
    },
    /// List usable secrets of every client that stop working within --days.
    Expiring {
        #[arg(long, default_value_t = 14)]
        days: i64,
    },
    /// Revoke one secret immediately.
    RevokeSecret { client_id: String, secret_id: String },
    /// Issue a new secret; current secrets keep working for the grace period, then stop.
    Rotate {
        client_id: String,
        /// Grace period in seconds for the current secrets (0: they stop now).
        #[arg(long, default_value_t = 86_400)]
        grace_seconds: u64,
    },
    /// Stop a client from obtaining tokens.
    Disable { client_id: String },
    /// Allow a disabled client again.
    Enable { client_id: String },
    /// Delete a client and all its secrets.
    Delete { client_id: String },
    /// Print the newest audit events of the registry.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    client_command(&args.state, args.command).await
}

/// Runs a `fhirgate client …` command; results are JSON on stdout.
async fn client_command(state: &super::StateArgs, command: ClientCommand) -> anyhow::Result<()> {
    use fhirgate_store::ClientStatus;
    use serde_json::json;
    let (store, material) = state.open().await?;
    let registry = fhirgate_store::Registry::new(store, material.pepper);
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let out = match command {
        ClientCommand::Create { name, tenants } => {
            let ((client, secret), (test, test_secret)) = registry.create_registration(&name, &tenants, &actor).await?;
            json!({ "client": client, "client_secret": secret,
                    "test_client": test, "test_client_secret": test_secret,
                    "note": "The secrets are shown once; store them now. The test client's tokens reach only \
                             test URLs, the production client's only production URLs." })
        }
        ClientCommand::List => json!({ "clients": registry.list().await? }),
        ClientCommand::Show { client_id } => match registry.get(&client_id).await? {
            Some(c) => json!(c),
            None => anyhow::bail!("no client `{client_id}`"),
        },
        ClientCommand::AddSecret { client_id, description, expires_days } => {
            let new = fhirgate_store::clients::NewSecret::expiring_in(description, expires_days);
            let (info, secret) = registry.add_secret(&client_id, &new, &actor).await?;
            json!({ "secret": info, "client_secret": secret })
        }
        ClientCommand::Expiring { days } => {
            json!({ "secrets": registry.expiring(days.clamp(1, 3660) * 86_400).await? })
        }
        ClientCommand::RevokeSecret { client_id, secret_id } => {
            registry.revoke_secret(&client_id, &secret_id, &actor).await?;
            json!({ "revoked": secret_id })
        }
        ClientCommand::Rotate { client_id, grace_seconds } => {
            let until = fhirgate_core::clock::now_seconds().saturating_add(grace_seconds).min(i64::MAX as u64) as i64;
            let (info, secret) = registry.rotate(&client_id, until, &actor).await?;
            json!({
                "secret": info,
                "client_secret": secret,
                "previous_secrets_stop_at": fhirgate_core::clock::format_seconds(until),
            })
        }
        ClientCommand::Disable { client_id } => {
            registry.set_status(&client_id, ClientStatus::Disabled, &actor).await?;
            json!({ "disabled": client_id })
        }
        ClientCommand::Enable { client_id } => {
            registry.set_status(&client_id, ClientStatus::Active, &actor).await?;
            json!({ "enabled": client_id })
        }
        ClientCommand::Delete { client_id } => {
            registry.delete(&client_id, &actor).await?;
            json!({ "deleted": client_id })
        }
        ClientCommand::Audit { limit } => json!({ "events": registry.audit_events(limit).await? }),
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

//! `fhirgate user`: people who use the admin API, their roles and personal
//! API tokens, in a data directory; results are JSON on stdout.

use clap::Subcommand;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    state: super::StateArgs,
    #[command(subcommand)]
    command: UserCommand,
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user with roles: operator, auditor, app-owner:<client id>,
    /// approver:<tenant id or *> (repeat --role for more).
    Create {
        username: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// List users and their roles.
    List,
    /// Grant a user a role (their sessions end).
    Grant { username: String, role: String },
    /// Take a role from a user (their sessions end).
    RevokeRole { username: String, role: String },
    /// Issue a personal API token for the admin API; printed once.
    Token {
        username: String,
        /// What the token is for (shown in its list).
        #[arg(long)]
        label: String,
        /// Days until it expires (at most 366).
        #[arg(long, default_value_t = 90)]
        days: u64,
    },
    /// List a user's tokens (never the tokens themselves).
    Tokens { username: String },
    /// Revoke one of a user's tokens now.
    RevokeToken { username: String, token_id: String },
    /// Set a user's password, read from standard input (at least 12 characters).
    Password { username: String },
    /// Enroll a user in a TOTP second factor; prints the otpauth:// URI once.
    Totp { username: String },
    /// Stop a user: their tokens stop working.
    Disable { username: String },
    /// Allow a disabled user again.
    Enable { username: String },
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    use fhirgate_store::accounts::{Accounts, Role};
    use serde_json::json;
    let (store, material) = args.state.open().await?;
    let accounts = Accounts::new(store, material.pepper).with_kek(material.kek);
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let out = match args.command {
        UserCommand::Create { username, roles } => {
            let roles = roles.iter().map(|r| Role::parse(r)).collect::<Result<Vec<_>, _>>()?;
            json!({ "user": accounts.create_user(&username, &roles, &actor).await? })
        }
        UserCommand::List => json!({ "users": accounts.users().await? }),
        UserCommand::Grant { username, role } => {
            json!({ "user": accounts.set_role(&username, &Role::parse(&role)?, true, &actor).await? })
        }
        UserCommand::RevokeRole { username, role } => {
            json!({ "user": accounts.set_role(&username, &Role::parse(&role)?, false, &actor).await? })
        }
        UserCommand::Token { username, label, days } => {
            let (token, info) = accounts.issue_token(&username, &label, days, &actor).await?;
            json!({ "token": token, "info": info, "note": "The token is shown once; store it now." })
        }
        UserCommand::Tokens { username } => json!({ "tokens": accounts.tokens(&username).await? }),
        UserCommand::RevokeToken { username, token_id } => {
            accounts.revoke_token(&username, &token_id, &actor).await?;
            json!({ "revoked": token_id })
        }
        UserCommand::Password { username } => {
            use std::io::Read as _;
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.strip_suffix('\n').unwrap_or(&password);
            accounts.set_password(&username, password, &actor).await?;
            json!({ "password_set": username })
        }
        UserCommand::Totp { username } => {
            let uri = accounts.enroll_totp(&username, &actor).await?;
            json!({ "otpauth_uri": uri, "note": "Shown once: add it to an authenticator app now." })
        }
        UserCommand::Disable { username } => json!({ "user": accounts.set_active(&username, false, &actor).await? }),
        UserCommand::Enable { username } => json!({ "user": accounts.set_active(&username, true, &actor).await? }),
    };
    fhirgate_core::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

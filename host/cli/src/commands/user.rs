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
    /// approver:<tenant id or *>, developer:<tenant id or *> (repeat --role
    /// for more).
    Create {
        username: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
    },
    /// Invite someone: prints a one-time link with which they choose a
    /// password and receive a TOTP second factor (how the first operator is
    /// made). Inviting the same name again withdraws the earlier link.
    Invite {
        username: String,
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// Hours until the link stops working (at most two weeks).
        #[arg(long, default_value_t = 72)]
        hours: u64,
        /// The gateway's public URL, to print the whole link.
        #[arg(long, env = "FHIRGATE_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// List open invitations.
    Invitations,
    /// Withdraw a user name's open invitation.
    Withdraw { username: String },
    /// Bind a user to an OpenID Connect identity: the provider's issuer and
    /// the subject it gives the person (never an e-mail address).
    Bind {
        username: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        subject: String,
    },
    /// Unbind an OpenID Connect identity from a user (their sessions end).
    Unbind {
        username: String,
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        subject: String,
    },
    /// List the OpenID Connect identities bound to a user.
    Identities { username: String },
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
        UserCommand::Invite { username, roles, hours, public_url } => {
            let roles = roles.iter().map(|r| Role::parse(r)).collect::<Result<Vec<_>, _>>()?;
            let (token, invitation) = accounts.invite(&username, &roles, hours, &actor).await?;
            let path = format!("/admin/invitations/{token}");
            let mut out = json!({
                "invitation": invitation,
                "path": path,
                "note": "Send the link to the invitee only; it works once and is shown once.",
            });
            if let Some(base) = public_url {
                out["link"] = json!(format!("{}{path}", base.trim_end_matches('/')));
            }
            out
        }
        UserCommand::Invitations => json!({ "invitations": accounts.invitations().await? }),
        UserCommand::Withdraw { username } => {
            if !accounts.withdraw_invitation(&username, &actor).await? {
                anyhow::bail!("no open invitation for `{username}`");
            }
            json!({ "withdrawn": username })
        }
        UserCommand::Bind { username, issuer, subject } => {
            accounts.bind_identity(&username, issuer.trim_end_matches('/'), &subject, &actor).await?;
            json!({ "identities": accounts.identities(&username).await? })
        }
        UserCommand::Unbind { username, issuer, subject } => {
            if !accounts.unbind_identity(&username, issuer.trim_end_matches('/'), &subject, &actor).await? {
                anyhow::bail!("`{username}` is not bound to that identity");
            }
            json!({ "identities": accounts.identities(&username).await? })
        }
        UserCommand::Identities { username } => json!({ "identities": accounts.identities(&username).await? }),
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

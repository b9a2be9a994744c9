//! The demo: a synthetic provider (R4 by default, or STU3 or DSTU2), and the
//! wiring that starts it with a gateway serving the demo partner's policy.
//!
//! Layout: `data` the synthetic patients; `resources` everything served, in
//! each release; `search` the strict searches; `provider` the HTTP server.

pub mod client_auth;
pub mod data;
pub mod provider;
pub mod resources;
pub mod search;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use fhirgate_core::secret::generate_secret;
use fhirgate_gateway::app::{App, Options};
use fhirgate_gateway::config::{AdminConfig, Config};
use fhirgate_gateway::policy::PolicyFile;
use fhirgate_http::server::{bind, run};
use serde_json::json;

/// The provider id the demo policy routes to; its `base_url` is replaced by
/// the address the demo provider actually binds.
pub const DEMO_PROVIDER_ID: &str = "demo";

/// Options of `fhirgate demo`.
pub struct DemoOptions {
    pub listen: SocketAddr,
    pub json: bool,
    /// The demo partner's policy; `None`: [`DEMO_POLICY`] in fhirgate's
    /// source tree, else the copy built into the binary.
    pub policy: Option<PathBuf>,
}

/// The demo partner's policy in fhirgate's source tree.
pub const DEMO_POLICY: &str = "policies/demo/policy.toml";

/// The same, built into the binary: it names the built-in modules, so it
/// serves from any directory.
const BUILT_IN_POLICY: &str = include_str!("../../../../policies/demo/policy.toml");

/// Starts the demo provider and a gateway serving the demo partner, prints how
/// to reach them, and serves until `shutdown` resolves.
pub async fn run_demo(opts: DemoOptions, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    let demo = Demo::start(opts.policy.as_deref(), opts.listen).await?;
    if opts.json {
        fhirgate_core::say!("{}", demo.facts);
    } else {
        print_instructions(&demo.facts);
    }
    demo.serve(shutdown).await
}

/// A demo ready to serve: the demo provider running, the gateway built and
/// bound.
pub struct Demo {
    /// How to reach it: bases, token URL, the demo client's id and secret,
    /// the tenant, where people sign in and one user per role, as `fhirgate
    /// demo --json` prints them.
    pub facts: serde_json::Value,
    listener: tokio::net::TcpListener,
    app: App,
    /// The demo's own data directory, removed when the demo stops.
    _data: DemoDir,
}

/// A data directory made for one demo run and removed after it.
struct DemoDir(PathBuf);

impl DemoDir {
    fn new() -> anyhow::Result<DemoDir> {
        let path = std::env::temp_dir().join(format!("fhirgate-demo-{}", uuid::Uuid::new_v4().simple()));
        fhirgate_core::files::private_dir(&path)?;
        Ok(DemoDir(path))
    }
}

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The demo's people: the demo client registered in the store, and one
/// user per role with a password and a TOTP second factor, all made fresh
/// for this run. The client's id and secret, and the users as printed.
async fn demo_people(data: &Path, tenant: &str) -> anyhow::Result<(String, String, serde_json::Value)> {
    use fhirgate_store::accounts::{Accounts, Role};
    let store = fhirgate_store::Store::open_dir(data).await?;
    let material = fhirgate_store::material::KeyMaterial::open(&store, data, None).await?;
    let registry = fhirgate_store::Registry::new(store.clone(), material.pepper);
    let actor = "demo";
    let (client, secret) = registry
        .create("Demo care-team app", &[tenant.to_owned()], actor)
        .await
        .map_err(|e| anyhow::anyhow!("registering the demo client: {e}"))?;
    let accounts = Accounts::new(store.clone(), material.pepper).with_kek(material.kek.clone());
    let mut users = Vec::new();
    for (name, role) in [
        ("demo-operator", Role::Operator),
        ("demo-app-owner", Role::AppOwner(client.client_id.clone())),
        ("demo-approver", Role::Approver(tenant.to_owned())),
        ("demo-auditor", Role::Auditor),
    ] {
        let password = generate_secret();
        accounts.create_user(name, std::slice::from_ref(&role), actor).await?;
        accounts.set_password(name, &password, actor).await?;
        let totp_uri = accounts.enroll_totp(name, actor).await?;
        let totp_secret =
            totp_uri.split(['?', '&']).find_map(|p| p.strip_prefix("secret=")).unwrap_or_default().to_owned();
        let role: String = role.into();
        users.push(json!({
            "role": role,
            "username": name,
            "password": password,
            "totp_secret": totp_secret,
            "totp_uri": totp_uri,
        }));
    }
    store.pool().close().await;
    Ok((client.client_id, secret, json!(users)))
}

impl Demo {
    /// Starts the demo provider on a free port and builds the gateway serving
    /// the demo partner's `policy` on `listen`.
    /// Without a `policy`: [`DEMO_POLICY`] when run in fhirgate's source
    /// tree, else the policy built in.
    pub async fn start(policy: Option<&Path>, listen: SocketAddr) -> anyhow::Result<Demo> {
        let data = DemoDir::new()?;
        let policy = match policy {
            Some(p) => p.to_owned(),
            None if Path::new(DEMO_POLICY).exists() => PathBuf::from(DEMO_POLICY),
            None => {
                // Its module test cases live in the source tree: without it,
                // the modules go live unchecked by them, as built.
                let text: String = BUILT_IN_POLICY
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("cases ="))
                    .map(|l| format!("{l}\n"))
                    .collect();
                let path = data.0.join("demo-policy.toml");
                fhirgate_core::files::write_private(&path, text.as_bytes())?;
                path
            }
        };
        let policy = policy.as_path();
        let (provider_listener, provider_addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let provider_base = format!("http://{provider_addr}/fhir");
        tokio::spawn(provider::serve(provider_listener, provider_base.clone(), provider::ProviderOptions::default()));

        let file = PolicyFile::read(policy)?;
        if !file.providers.contains_key(DEMO_PROVIDER_ID) {
            bail!("{}: the demo policy must declare [providers.{DEMO_PROVIDER_ID}]", policy.display());
        }
        let tenant = file
            .tenants
            .keys()
            .next()
            .cloned()
            .with_context(|| format!("{}: the demo policy declares no tenant", policy.display()))?
            .to_ascii_lowercase();

        let (client_id, secret, users) = demo_people(&data.0, &tenant).await?;
        let mut config = demo_config(policy, listen);
        config.data_dir = Some(data.0.clone());
        config.admin = Some(AdminConfig { token_sha256: None, reauth_seconds: 300, oidc: Vec::new() });
        let (listener, addr) = bind(listen).await?;
        // Links name the address the demo is reached at on this machine.
        let reached = match addr.ip() {
            ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
            ip if ip.is_unspecified() => SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port())),
            _ => addr,
        };
        config.public_url = Some(format!("http://{reached}"));
        // The demo policy, and every edit to it while the demo runs, routes
        // to the demo provider wherever it listens.
        let demo_base = provider_base.clone();
        let adjust = move |file: &mut PolicyFile| {
            if let Some(p) = file.providers.get_mut(DEMO_PROVIDER_ID) {
                p.base_url = demo_base.clone();
            }
        };
        let app =
            App::build(&config, addr, Options { adjust_policy: Some(Arc::new(adjust)), ..Options::default() }).await?;
        let base = format!("http://{reached}");
        let facts = json!({
            "gateway": base,
            "stu3_base": format!("{base}/stu3"),
            "dstu2_base": format!("{base}/dstu2"),
            "token_url": format!("{base}/oauth2/token"),
            "client_id": client_id,
            "client_secret": secret,
            "tenant_id": tenant,
            "provider_base": provider_base,
            "sign_in": format!("{base}/admin/session"),
            "users": users,
        });
        Ok(Demo { facts, listener, app, _data: data })
    }

    /// Serves until `shutdown` resolves, then drains and stops.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        run(self.listener, self.app.services().clone(), None, shutdown).await?;
        self.app.shutdown().await;
        Ok(())
    }
}

/// The configuration the demo gateway runs with: everything at its default.
pub fn demo_config(policy: &Path, listen: SocketAddr) -> Config {
    Config { listen: Some(listen), ..Config::with_defaults(policy.to_owned()) }
}

/// One line per demo user: role, user name, password, TOTP secret.
fn people(f: &serde_json::Value) -> String {
    let users = f["users"].as_array().map(Vec::as_slice).unwrap_or_default();
    users
        .iter()
        .map(|u| {
            let s = |k: &str| u[k].as_str().unwrap_or_default().to_owned();
            format!(
                "  {:<16} {:<16} password {}  TOTP secret {}",
                s("role"),
                s("username"),
                s("password"),
                s("totp_secret")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn print_instructions(f: &serde_json::Value) {
    let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
    let (base, stu3, dstu2, token_url) = (s("gateway"), s("stu3_base"), s("dstu2_base"), s("token_url"));
    let (id, secret, tenant) = (s("client_id"), s("client_secret"), s("tenant_id"));
    fhirgate_core::say!(
        r#"fhirgate demo is running.

  gateway        {base}
  STU3 base      {stu3}
  DSTU2 base     {dstu2}
  token URL      {token_url}
  client_id      {id}
  client_secret  {secret}
  tenant id      {tenant}
  demo provider  {provider} (R4, 60 synthetic patients)

People (made fresh for this run; sign in at {sign_in} with the password
and a code from an authenticator app given the TOTP secret):
{people}

Try it:

  # 1. discovery, no token needed
  curl -s {stu3}/metadata

  # 2. a token for the demo tenant
  TOKEN=$(curl -s -u '{id}:{secret}' -d grant_type=client_credentials -d scope={tenant} \
      {token_url} | sed -E 's/.*"access_token":"([^"]+)".*/\1/')

  # 3. search patients (STU3 and DSTU2 faces)
  curl -s -H "Authorization: Bearer $TOKEN" -d 'given=hugh&family=chau' {stu3}/Patient/_search
  curl -s -H "Authorization: Bearer $TOKEN" '{dstu2}/Patient?family:contains=cha&_count=5'

Press Ctrl-C to stop."#,
        provider = s("provider_base"),
        sign_in = s("sign_in"),
        people = people(f),
    );
}

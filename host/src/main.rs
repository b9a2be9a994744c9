//! The `fhirgate` command: serve a configured gateway, run the demo, serve the
//! demo provider alone, or pin a policy's modules.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use fhirgate::config::Config;
use fhirgate::demo::{DemoOptions, run_demo};
use fhirgate::oauth::ClientRegistry;
use fhirgate::policy::PolicyFile;
use fhirgate::server::{Gateway, GatewayState, bind, run};
use fhirgate::wasm::Runtime;
use fhirgate::wasm::module::sha256_hex;
use tracing_subscriber::EnvFilter;

/// Requests allocate and free on every worker thread, and hand buffers from
/// one thread to another; glibc's allocator serialises that on its arena
/// locks, jemalloc keeps per-thread caches (a fifth more reads per second).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "fhirgate", version, about = "FHIR interop gateway with WebAssembly policy modules")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the gateway described by a configuration file.
    Serve {
        /// The gateway configuration (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Address to listen on; overrides `listen` in the file. Port 0 picks a free port.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Print one JSON line with the real address once ready.
        #[arg(long)]
        json: bool,
        /// Directory of persistent state; overrides `data_dir` in the file.
        #[arg(long, env = "FHIRGATE_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Start the demo provider and a gateway serving the demo partner.
    Demo {
        /// Gateway address. Port 0 picks a free port; the real one is printed.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Print the demo's facts as one JSON object on stdout once ready.
        #[arg(long)]
        json: bool,
        /// The demo partner's policy.
        #[arg(long, default_value = "policies/demo/policy.toml")]
        policy: PathBuf,
    },
    /// Forward GETs to one upstream base with the gateway's transport and
    /// nothing else (no tokens, modules or shaping): the baseline the
    /// comparative benchmark measures the gateway against. Not for apps.
    Proxy {
        /// The upstream base URL; `GET /x?y` goes to `<upstream>/x?y`.
        #[arg(long)]
        upstream: String,
        #[arg(long, default_value = "127.0.0.1:8082")]
        listen: SocketAddr,
        /// Timeout of each upstream request, in milliseconds.
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
        /// Print one JSON line with the real address once ready.
        #[arg(long)]
        json: bool,
    },
    /// Serve only the demo provider (R4 unless --fhir-version says otherwise).
    Provider {
        #[arg(long, default_value = "127.0.0.1:8081")]
        listen: SocketAddr,
        /// Print one JSON line with the provider's address and base URL once ready.
        #[arg(long)]
        json: bool,
        /// Synthetic patients served; the first 60 are always the same.
        #[arg(long, default_value_t = fhirgate::demo::data::PATIENT_COUNT,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
                  .range(1..=fhirgate::demo::data::MAX_PATIENTS as u64))]
        patients: usize,
        /// Milliseconds to wait before answering each request except /metadata.
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
        /// Append one JSON line per request received to this file.
        #[arg(long)]
        request_log: Option<PathBuf>,
        /// Run a client-credentials token endpoint at /oauth2/token for this one
        /// client, and require its bearer tokens on every FHIR interaction but /metadata.
        #[arg(long, value_name = "ID:SECRET", value_parser = fhirgate::demo::provider::parse_client_credentials)]
        client_credentials: Option<(String, String)>,
        /// Lifetime of the tokens issued with --client-credentials.
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
        token_lifetime_seconds: u64,
        /// The FHIR release spoken: r4, stu3 or dstu2.
        #[arg(long, default_value = "r4", value_parser = fhirgate::demo::provider::parse_fhir_version)]
        fhir_version: fhirgate::fhir::Version,
        /// A resource type not to serve (absent from /metadata, 404 otherwise); repeatable.
        #[arg(long, value_name = "TYPE")]
        without: Vec<String>,
        /// A search parameter accepted but not applied, as on servers that silently skip
        /// what they do not support; repeatable.
        #[arg(long, value_name = "PARAMETER")]
        ignore: Vec<String>,
    },
    /// Generate a client secret and the `secret_sha256` line for gateway.toml.
    Secret,
    /// Manage registered OAuth clients and their secrets in a data directory.
    Client {
        /// The gateway's data directory (holds the store and the secret-hash key).
        #[arg(long, env = "FHIRGATE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Manage the token signing keys in a data directory.
    Keys {
        #[arg(long, env = "FHIRGATE_DATA_DIR")]
        data_dir: PathBuf,
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Work with policy modules.
    Guest {
        #[command(subcommand)]
        command: GuestCommand,
    },
    /// Onboard providers and tenants in a data directory: request a mapping
    /// naming its approver, then approve or reject it. Running gateways sharing
    /// the data directory pick changes up within 2 s.
    Directory {
        #[arg(long, env = "FHIRGATE_DATA_DIR")]
        data_dir: PathBuf,
        /// Who makes the change, as the audit trail records it.
        #[arg(long, env = "FHIRGATE_ACTOR")]
        actor: Option<String>,
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Run the app's whole call set against a provider through the partner's
    /// shaping module and report, per resource and per face, what works.
    /// Exits 2 when Patient fails (the app would not load), 1 on other errors.
    CheckProvider {
        /// The provider's FHIR base URL.
        base_url: String,
        /// The FHIR version the provider speaks: r4, stu3 or dstu2.
        #[arg(long, value_parser = fhirgate::demo::provider::parse_fhir_version)]
        fhir_version: fhirgate::fhir::Version,
        /// A bearer token the provider accepts, if it needs one.
        #[arg(long, env = "FHIRGATE_PROVIDER_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The patient whose data the calls read (default: the first found).
        #[arg(long)]
        patient: Option<String>,
        /// The policy whose shaping module is used.
        #[arg(long, default_value = "policies/demo/policy.toml")]
        policy: PathBuf,
        /// Budget of each call to the provider, in milliseconds.
        #[arg(long, default_value_t = 15_000)]
        timeout_ms: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Query the access log in a data directory.
    Access {
        #[arg(long, env = "FHIRGATE_DATA_DIR")]
        data_dir: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        patient: Option<String>,
        /// Only records at or after this time (ms since the epoch).
        #[arg(long)]
        since: Option<i64>,
        #[arg(long)]
        until: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Print a FHIR R4 Bundle of AuditEvent instead of JSON records.
        #[arg(long)]
        fhir: bool,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
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

#[derive(Subcommand)]
enum ClientCommand {
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
    AddSecret { client_id: String },
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

#[derive(Subcommand)]
enum KeysCommand {
    /// Retire the signing key and create a new one. Running gateways pick it up
    /// within 30 s; the retired key stays published until its tokens expire.
    Rotate {
        /// Algorithm of the new key: ES256 or RS256.
        #[arg(long, default_value = "ES256")]
        algorithm: String,
        /// Seconds a retired key stays published (token lifetime + leeway).
        #[arg(long, default_value_t = 3720)]
        publish_seconds: u64,
    },
    /// Print the published JWK Set.
    List,
}

#[derive(Subcommand)]
enum GuestCommand {
    /// Create a buildable module crate (source, README, cases, WIT contract)
    /// to start a module from.
    New {
        /// The module's name: lower-case letters, digits and `-`.
        name: String,
        /// What the module does.
        #[arg(long, value_enum)]
        role: fhirgate::scaffold::NewRole,
        /// Where to create it.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The fhirgate-guest-sdk crate to depend on (by default, the one of the
        /// source tree this build came from).
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

#[derive(Subcommand)]
enum PolicyCommand {
    /// Load a policy and its modules and report what would serve.
    Check { policy: PathBuf },
    /// Rewrite each module's `sha256` to the digest of the file it names.
    Pin { policy: PathBuf },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("FHIRGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async_main(cli))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

async fn async_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, listen, json, data_dir } => {
            let mut config = Config::load(&config)?;
            if data_dir.is_some() {
                config.data_dir = data_dir;
            }
            let runtime = Runtime::with_artifacts(
                config.wasm.clone(),
                config.data_dir.as_ref().map(|d| d.join("compiled-modules")),
            )?;
            let policy_file = PolicyFile::read(&config.policy)?;
            let state = GatewayState::open(config.data_dir.as_deref(), &policy_file)
                .await
                .with_context(|| format!("in policy {}", config.policy.display()))?;
            let policy = policy_file.load(&config.policy, &runtime)?;
            fhirgate::activation::check(&policy)
                .await
                .with_context(|| format!("in policy {}", config.policy.display()))?;
            let clients = ClientRegistry::from_config(&config.clients)?;
            let addr = listen
                .or(config.listen)
                .context("no address to listen on: set `listen` in the config or pass --listen")?;
            let (listener, local) = bind(addr).await?;
            let mut gateway = Gateway::new(&config, runtime, policy, state, clients, local)?;
            gateway.activation = Some(fhirgate::activation::Activation::with_uploads(
                &config.policy,
                None,
                config.data_dir.as_ref().map(|d| d.join("modules")),
            ));
            if let Some(dir) = &config.data_dir {
                let registry = fhirgate::store::open_registry(dir).await?;
                let (alg, publish) = (config.token.algorithm()?, config.token.publish_seconds());
                gateway.auth.set_keys(fhirgate::store::keys::load_ring(registry.store(), alg, publish).await?);
                gateway.auth.registry = Some(registry);
                gateway.auth.load_revocations().await;
                gateway.key_policy = Some((alg, publish));
            }
            let gateway = Arc::new(gateway);
            fhirgate::server::watch_directory(gateway.clone());
            fhirgate::activation::watch(gateway.clone());
            if let Some(registry) = gateway.auth.registry.clone() {
                // Keys rotated and tokens revoked by another process are
                // picked up here; retired keys drop out of the JWK Set when
                // their publication window ends.
                let gw = gateway.clone();
                let (alg, publish) =
                    gateway.key_policy.unwrap_or((config.token.algorithm()?, config.token.publish_seconds()));
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
                    loop {
                        tick.tick().await;
                        match fhirgate::store::keys::load_ring(registry.store(), alg, publish).await {
                            Ok(ring) => gw.auth.set_keys(ring),
                            Err(e) => {
                                tracing::warn!(error = %e, "reloading signing keys failed; keeping the current ones")
                            }
                        }
                        gw.auth.load_revocations().await;
                    }
                });
            }
            tracing::info!(address = %local, partner = %gateway.policy.load().partner, "gateway listening");
            if json {
                fhirgate::say!("{}", serde_json::json!({ "event": "ready", "address": local.to_string() }));
            }
            run(listener, gateway, shutdown_signal()).await
        }
        Command::Demo { listen, json, policy } => {
            run_demo(DemoOptions { listen, json, policy }, shutdown_signal()).await
        }
        Command::Provider {
            listen,
            json,
            patients,
            delay_ms,
            request_log,
            client_credentials,
            token_lifetime_seconds,
            fhir_version,
            without,
            ignore,
        } => {
            use fhirgate::demo::provider::{ProviderOptions, TOKEN_PATH, serve};
            let options = ProviderOptions {
                patients,
                delay: std::time::Duration::from_millis(delay_ms),
                request_log,
                client_credentials,
                token_lifetime: std::time::Duration::from_secs(token_lifetime_seconds),
                fhir_version,
                without,
                ignore,
            };
            // Bad arguments fail here, before the ready line, rather than once serving.
            options.served().map_err(anyhow::Error::msg).context("--without")?;
            if let Some(path) = &options.request_log {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("--request-log {}", path.display()))?;
            }
            let (listener, local) = bind(listen).await?;
            let base = format!("http://{local}/fhir");
            let token_url = options.client_credentials.as_ref().map(|_| format!("http://{local}{TOKEN_PATH}"));
            if json {
                let mut ready = serde_json::json!({
                    "event": "ready",
                    "address": local.to_string(),
                    "base_url": base,
                    "fhir_version": fhir_version.number(),
                });
                if let Some(url) = &token_url {
                    ready["token_url"] = url.as_str().into();
                }
                fhirgate::say!("{ready}");
            } else {
                let release = fhir_version.face().to_ascii_uppercase();
                fhirgate::say!("demo provider ({release}, {patients} patients) at {base}");
                if let Some(url) = &token_url {
                    fhirgate::say!("token endpoint at {url}");
                }
            }
            tokio::select! {
                served = serve(listener, base, options) => served.context("serving the demo provider")?,
                () = shutdown_signal() => {}
            }
            Ok(())
        }
        Command::Proxy { upstream, listen, timeout_ms, json } => {
            let proxy = fhirgate::proxy::Proxy::new(&upstream, std::time::Duration::from_millis(timeout_ms))?;
            let (listener, local) = bind(listen).await?;
            if json {
                fhirgate::say!("{}", serde_json::json!({ "event": "ready", "address": local.to_string() }));
            } else {
                fhirgate::say!("proxy at http://{local}/ → {upstream}");
            }
            fhirgate::proxy::run(listener, proxy, shutdown_signal()).await;
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Check { policy } } => {
            let runtime = Runtime::new(Default::default())?;
            let file = PolicyFile::read(&policy)?;
            for (id, spec) in &file.providers {
                spec.settings(id).with_context(|| format!("in policy {}: `providers.{id}`", policy.display()))?;
            }
            let (providers, tenants) = (file.providers.len(), file.tenants.len());
            let loaded = file.load(&policy, &runtime)?;
            fhirgate::activation::check(&loaded).await.with_context(|| format!("in policy {}", policy.display()))?;
            fhirgate::say!("policy {} (partner `{}`) is valid", policy.display(), loaded.partner);
            for (role, m) in
                [("token-validation", &loaded.validator), ("routing", &loaded.router), ("shaping", &loaded.shaper)]
            {
                fhirgate::say!("  {role:<17} {} sha256 {}", m.module.name(), m.module.digest());
            }
            fhirgate::say!("  providers: {providers}  tenants: {tenants}");
            Ok(())
        }
        Command::Policy { command: PolicyCommand::Pin { policy } } => pin(&policy),
        Command::Guest { command: GuestCommand::New { name, role, dir, sdk } } => {
            let sdk = sdk
                .or_else(fhirgate::scaffold::default_sdk)
                .context("the SDK is not where this build was made; name it with --sdk")?;
            let root = fhirgate::scaffold::new_module(&dir, &name, role, &sdk)?;
            fhirgate::say!("created {}", root.display());
            fhirgate::say!("build:  cd {} && cargo build --release --target wasm32-wasip2", root.display());
            fhirgate::say!(
                "test:   fhirgate guest test target/wasm32-wasip2/release/{}.wasm cases",
                name.replace('-', "_")
            );
            Ok(())
        }
        Command::Guest { command: GuestCommand::Test { module, cases, config } } => {
            guest_test(&module, &cases, config.as_deref()).await
        }
        Command::Client { data_dir, command } => client_command(&data_dir, command).await,
        Command::Keys { data_dir, command } => {
            let store = fhirgate::store::Store::open_dir(&data_dir).await?;
            let ring = match command {
                KeysCommand::Rotate { algorithm, publish_seconds } => {
                    let alg = match algorithm.as_str() {
                        "ES256" => jsonwebtoken::Algorithm::ES256,
                        "RS256" => jsonwebtoken::Algorithm::RS256,
                        other => anyhow::bail!("--algorithm {other}: expected ES256 or RS256"),
                    };
                    fhirgate::store::keys::rotate(&store, alg, publish_seconds).await?
                }
                KeysCommand::List => {
                    fhirgate::store::keys::load_ring(&store, jsonwebtoken::Algorithm::ES256, 3720).await?
                }
            };
            fhirgate::say!("{}", serde_json::to_string_pretty(&ring.jwks())?);
            Ok(())
        }
        Command::CheckProvider { base_url, fhir_version, token, patient, policy, timeout_ms, json } => {
            let runtime = Runtime::new(Default::default())?;
            let loaded = PolicyFile::read(&policy)?.load(&policy, &runtime)?;
            let options = fhirgate::conformance::CheckOptions {
                base_url,
                fhir_version,
                token,
                patient,
                timeout: std::time::Duration::from_millis(timeout_ms),
            };
            let report = fhirgate::conformance::check(&loaded.shaper, &options).await?;
            if json {
                fhirgate::say!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                fhirgate::say!("{}", report.render().trim_end_matches('\n'));
            }
            if !report.app_loads() {
                // 2, not 1: the check ran and the provider failed it.
                eprintln!("Patient does not work with this provider: the app would not load");
                use std::io::Write as _;
                let _ = std::io::stdout().flush();
                std::process::exit(2);
            }
            Ok(())
        }
        Command::Directory { data_dir, actor, command } => directory_command(&data_dir, actor, command).await,
        Command::Access { data_dir, tenant, client, patient, since, until, limit, fhir } => {
            let store = fhirgate::store::Store::open_dir(&data_dir).await?;
            let log = fhirgate::store::access::AccessLog::start(store);
            let q = fhirgate::store::access::AccessQuery {
                tenant: tenant.map(|t| t.to_ascii_lowercase()),
                client,
                patient,
                request_id: None,
                since_ms: since,
                until_ms: until,
                limit: Some(limit),
            };
            let records = log.query(&q).await?;
            let out = if fhir {
                fhirgate::store::access::audit_event_bundle(&records, "fhirgate")
            } else {
                serde_json::json!({ "records": records })
            };
            fhirgate::say!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Command::Secret => {
            let secret = fhirgate::oauth::clients::generate_secret();
            fhirgate::say!("client_secret = {secret}");
            fhirgate::say!("secret_sha256 = \"{}\"", sha256_hex(secret.as_bytes()));
            Ok(())
        }
    }
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
        let file =
            table.get("path").and_then(|p| p.as_str()).with_context(|| format!("`modules.{role}.path` is missing"))?;
        let file = dir.join(file);
        let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let digest = sha256_hex(&bytes);
        fhirgate::say!("{role:<17} {digest}  {}", file.display());
        table.insert("sha256", toml_edit::value(digest));
    }
    std::fs::write(path, doc.to_string()).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Runs a `fhirgate client …` command; results are JSON on stdout.
async fn client_command(data_dir: &std::path::Path, command: ClientCommand) -> anyhow::Result<()> {
    use fhirgate::store::ClientStatus;
    use serde_json::json;
    let registry = fhirgate::store::open_registry(data_dir).await?;
    let actor = format!("cli:{}", std::env::var("USER").unwrap_or_else(|_| "unknown".into()));
    let out = match command {
        ClientCommand::Create { name, tenants } => {
            let (client, secret) = registry.create(&name, &tenants, &actor).await?;
            json!({ "client": client, "client_secret": secret,
                    "note": "The secret is shown once; store it now." })
        }
        ClientCommand::List => json!({ "clients": registry.list().await? }),
        ClientCommand::Show { client_id } => match registry.get(&client_id).await? {
            Some(c) => json!(c),
            None => anyhow::bail!("no client `{client_id}`"),
        },
        ClientCommand::AddSecret { client_id } => {
            let (info, secret) = registry.add_secret(&client_id, &actor).await?;
            json!({ "secret": info, "client_secret": secret })
        }
        ClientCommand::RevokeSecret { client_id, secret_id } => {
            registry.revoke_secret(&client_id, &secret_id, &actor).await?;
            json!({ "revoked": secret_id })
        }
        ClientCommand::Rotate { client_id, grace_seconds } => {
            let until = fhirgate::oauth::keys::now_seconds().saturating_add(grace_seconds).min(i64::MAX as u64) as i64;
            let (info, secret) = registry.rotate(&client_id, until, &actor).await?;
            json!({ "secret": info, "client_secret": secret, "previous_secrets_stop_at": until })
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
    fhirgate::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Runs a `fhirgate directory …` command; results are JSON on stdout.
async fn directory_command(
    data_dir: &std::path::Path,
    actor: Option<String>,
    command: DirectoryCommand,
) -> anyhow::Result<()> {
    use fhirgate::directory::{Directory, ProviderSpec};
    use serde_json::json;
    let store = fhirgate::store::Store::open_dir(data_dir).await?;
    let dir = Directory::open(store, Some(data_dir.join(fhirgate::directory::SECRETS_DIR))).await?;
    let upstream = fhirgate::upstream::Upstream::new(fhirgate::config::HttpLimits::default().max_upstream_body_bytes);
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
    fhirgate::say!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `fhirgate guest test`: runs case files against a module and prints a
/// line per case, with what differed under each failure.
async fn guest_test(
    module: &std::path::Path,
    cases: &[PathBuf],
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use fhirgate::wasm::cases::{case_files, run_files};
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
    let loaded = fhirgate::wasm::Module::load(&runtime, name, &bytes)?;
    let files = case_files(cases)?;
    anyhow::ensure!(!files.is_empty(), "no case files found");
    let results = run_files(&loaded, &files, &config).await;
    let failed = results.iter().filter(|r| r.failure.is_some()).count();
    for r in &results {
        match &r.failure {
            None => fhirgate::say!("ok      {}", r.name),
            Some(f) => {
                fhirgate::say!("FAILED  {}  ({})", r.name, r.file.display());
                for line in f.lines() {
                    fhirgate::say!("        {line}");
                }
            }
        }
    }
    fhirgate::say!("{} cases: {} passed, {failed} failed", results.len(), results.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

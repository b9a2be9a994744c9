//! `fhirgate init DIR`: a starter `gateway.toml` and `policy.toml` that
//! serve with the modules built into the binary — one hospital's FHIR server
//! for one tenant, and one app whose secret is printed once.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use fhirgate_core::digest::sha256_hex;

#[derive(clap::Args)]
pub struct Args {
    /// The directory to write into (created if missing); files already
    /// there are never overwritten.
    dir: PathBuf,
    /// The hospital's FHIR base URL.
    #[arg(long, default_value = "http://127.0.0.1:8081/fhir")]
    provider_url: String,
    /// The FHIR version the hospital's server speaks: r4, stu3 or dstu2.
    #[arg(long, default_value = "r4", value_parser = ["r4", "stu3", "dstu2"])]
    fhir_version: String,
    /// The customer's tenant id (GUID); default: a new one.
    #[arg(long)]
    tenant: Option<String>,
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The URL apps reach the gateway at; default: http:// and the listen
    /// address.
    #[arg(long)]
    public_url: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let tenant = match &args.tenant {
        Some(t) if fhirgate_core::ids::is_guid(t) => t.to_ascii_lowercase(),
        Some(t) => bail!("--tenant {t:?} is not a tenant id (a GUID such as 3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13)"),
        None => uuid::Uuid::new_v4().to_string(),
    };
    let provider: http::Uri = args.provider_url.parse().context("--provider-url is not a URL")?;
    if !matches!(provider.scheme_str(), Some("http" | "https")) || provider.host().is_none() {
        bail!("--provider-url must be an http:// or https:// URL");
    }
    let public_url = args.public_url.clone().unwrap_or_else(|| format!("http://{}", args.listen));
    let secret = fhirgate_core::secret::generate_secret();
    let gateway = gateway_toml(&args.listen, &public_url, &sha256_hex(secret.as_bytes()), &tenant);
    let policy = policy_toml(&args.provider_url, &args.fhir_version, &tenant);

    let (gateway_file, policy_file) = (args.dir.join("gateway.toml"), args.dir.join("policy.toml"));
    for file in [&gateway_file, &policy_file] {
        if file.exists() {
            bail!("{} exists already: `fhirgate init` writes into a directory without them", file.display());
        }
    }
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {}", args.dir.display()))?;
    // Both files are checked as the gateway would read them before either
    // is written.
    let check_dir = tempfile_dir(&args.dir)?;
    let result = (|| {
        std::fs::write(check_dir.join("policy.toml"), &policy)?;
        std::fs::write(check_dir.join("gateway.toml"), &gateway)?;
        fhirgate_gateway::config::Config::load(&check_dir.join("gateway.toml"))?;
        fhirgate_gateway::policy::PolicyFile::read(&check_dir.join("policy.toml"))?;
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_dir_all(&check_dir);
    result.context("the starter files do not read back")?;
    fhirgate_core::files::write_private(&gateway_file, gateway.as_bytes())?;
    fhirgate_core::files::write_private(&policy_file, policy.as_bytes())?;

    let config = gateway_file.display().to_string();
    fhirgate_core::say!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({
            "gateway_toml": config,
            "policy_toml": policy_file.display().to_string(),
            "public_url": public_url,
            "token_url": format!("{public_url}/oauth2/token"),
            "client_id": "patients-app",
            "client_secret": secret,
            "tenant_id": tenant,
            "next": [
                format!("fhirgate provider --listen {}   # a synthetic hospital, if you have none", host_port(&provider)),
                format!("fhirgate serve --config {config}"),
            ],
            "note": "The client secret is shown once; gateway.toml keeps only its SHA-256.",
        }))?
    );
    Ok(())
}

/// A fresh private directory inside `dir`, for checking files before they
/// are written.
fn tempfile_dir(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!(".fhirgate-init-{}", uuid::Uuid::new_v4().simple()));
    fhirgate_core::files::private_dir(&path)?;
    Ok(path)
}

fn host_port(uri: &http::Uri) -> String {
    let host = uri.host().unwrap_or("127.0.0.1");
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    format!("{host}:{port}")
}

fn gateway_toml(listen: &SocketAddr, public_url: &str, secret_sha256: &str, tenant: &str) -> String {
    format!(
        r#"# fhirgate's configuration, written by `fhirgate init`.
schema_version = 1
listen = "{listen}"
# As apps reach the gateway: token URLs and links are built on it, and a
# request naming another host gets 421.
public_url = {public_url:?}
policy = "policy.toml"
# Lasting state (registered clients, signing keys, the directory, the access
# log), created private on first start.
data_dir = "data"
# Replicas share one PostgreSQL database instead, each given the same
# key-encryption key (FHIRGATE_KEK):
# database_url = "postgres://fhirgate:password@db.internal:5432/fhirgate"

[token]
lifetime_seconds = 3600

# The app `fhirgate init` made (its secret was printed once). Register more
# with `fhirgate client create` or the admin API.
[[clients]]
client_id = "patients-app"
name = "Care-team app"
secret_sha256 = "{secret_sha256}"
tenants = ["{tenant}"]
"#
    )
}

fn policy_toml(provider_url: &str, fhir_version: &str, tenant: &str) -> String {
    format!(
        r#"# The partner's policy, written by `fhirgate init`: the modules built into
# fhirgate validate its tokens, route each tenant to its hospital and shape
# the hospital's answers into the FHIR version the app speaks. Replace one
# with your own by giving `path` and `sha256` instead of `builtin`.
schema_version = 1
partner = "my-partner"

[modules.token-validation]
builtin = "token-jwt"
config = {{ leeway_seconds = 30 }}

[modules.routing]
builtin = "router-table"

[modules.routing.config.tenants]
"{tenant}" = "hospital"

[modules.shaping]
builtin = "shaper-fhir"

# The hospital's FHIR server.
[providers.hospital]
base_url = {provider_url:?}
fhir_version = "{fhir_version}"

[tenants."{tenant}"]
providers = ["hospital"]
"#
    )
}

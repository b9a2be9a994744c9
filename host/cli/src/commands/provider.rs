//! `fhirgate provider`: the demo provider alone.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use fhirgate_http::server::bind;

use super::shutdown_signal;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Print one JSON line with the provider's address and base URL once ready.
    #[arg(long)]
    json: bool,
    /// Synthetic patients served; the first 60 are always the same.
    #[arg(long, default_value_t = fhirgate_devtools::demo::data::PATIENT_COUNT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new()
              .range(1..=fhirgate_devtools::demo::data::MAX_PATIENTS as u64))]
    patients: usize,
    /// Milliseconds to wait before answering each request except /metadata.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Append one JSON line per request received to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
    /// Run a client-credentials token endpoint at /oauth2/token for this one
    /// client, and require its bearer tokens on every FHIR interaction but /metadata.
    #[arg(long, value_name = "ID:SECRET", value_parser = fhirgate_devtools::demo::provider::parse_client_credentials)]
    client_credentials: Option<(String, String)>,
    /// With --client-credentials: accept the secret only this way
    /// (client_secret_basic or client_secret_post); both by default.
    #[arg(long, requires = "client_credentials",
          value_parser = fhirgate_devtools::demo::client_auth::parse_secret_method)]
    token_auth_method: Option<fhirgate_devtools::demo::client_auth::SecretMethod>,
    /// Run the token endpoint for this one client authenticating with
    /// private_key_jwt (SMART Backend Services) only: assertions signed with
    /// a key of the JWK Set at --jwks-url.
    #[arg(long, value_name = "CLIENT_ID", requires = "jwks_url", conflicts_with = "client_credentials")]
    private_key_jwt: Option<String>,
    /// The JWK Set the --private-key-jwt client publishes.
    #[arg(long, value_name = "URL", requires = "private_key_jwt")]
    jwks_url: Option<String>,
    /// Lifetime of the tokens issued.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    token_lifetime_seconds: u64,
    /// The FHIR release spoken: r4, stu3 or dstu2.
    #[arg(long, default_value = "r4", value_parser = fhirgate_devtools::demo::provider::parse_fhir_version)]
    fhir_version: fhirgate_core::fhir::Version,
    /// A resource type not to serve (absent from /metadata, 404 otherwise); repeatable.
    #[arg(long, value_name = "TYPE")]
    without: Vec<String>,
    /// A search parameter accepted but not applied, as on servers that silently skip
    /// what they do not support; repeatable.
    #[arg(long, value_name = "PARAMETER")]
    ignore: Vec<String>,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (mode 0600).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by these PEM CA certificates (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        listen,
        json,
        patients,
        delay_ms,
        request_log,
        client_credentials,
        token_auth_method,
        private_key_jwt,
        jwks_url,
        token_lifetime_seconds,
        fhir_version,
        without,
        ignore,
        tls_cert,
        tls_key,
        client_ca,
    } = args;
    use fhirgate_devtools::demo::provider::{ProviderOptions, TOKEN_PATH, serve};
    let options = ProviderOptions {
        patients,
        delay: std::time::Duration::from_millis(delay_ms),
        request_log,
        client_credentials,
        token_auth_method,
        private_key_jwt: private_key_jwt.zip(jwks_url),
        token_lifetime: std::time::Duration::from_secs(token_lifetime_seconds),
        fhir_version,
        without,
        ignore,
        tls: tls_cert.zip(tls_key).map(|(cert, key)| fhirgate_http::tls::TlsFiles { cert, key, client_ca }),
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
    if let Some(files) = &options.tls {
        fhirgate_http::tls::Tls::new(files).context("--tls-cert")?;
    }
    let scheme = if options.tls.is_some() { "https" } else { "http" };
    let (listener, local) = bind(listen).await?;
    let base = format!("{scheme}://{local}/fhir");
    let issues_tokens = options.client_credentials.is_some() || options.private_key_jwt.is_some();
    let token_url = issues_tokens.then(|| format!("{scheme}://{local}{TOKEN_PATH}"));
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
        fhirgate_core::say!("{ready}");
    } else {
        let release = fhir_version.face().to_ascii_uppercase();
        fhirgate_core::say!("demo provider ({release}, {patients} patients) at {base}");
        if let Some(url) = &token_url {
            fhirgate_core::say!("token endpoint at {url}");
        }
    }
    tokio::select! {
        served = serve(listener, base, options) => served.context("serving the demo provider")?,
        () = shutdown_signal() => {}
    }
    Ok(())
}

//! The gateway's own configuration: where it listens, how it is reached, its
//! token settings, its clients and limits, and which partner policy it serves.
//!
//! A bad file fails at start-up with a message naming the file, the key and
//! what was expected.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use fhirgate_sandbox::Limits;

/// The only schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `gateway.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Must be [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Address to listen on; the `--listen` flag overrides it.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// The absolute URL clients reach the gateway at (scheme, host, port, no
    /// trailing slash): every discovery document, token URL and link is
    /// built on it, and a request naming another host gets `421`.
    /// `fhirgate serve` needs it or `accepted_hosts`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Further hosts (`host`, or `host:port`) the gateway answers for; an
    /// entry without a port accepts any. Without `public_url`, links are
    /// built on the host the request named, which must be one of these.
    #[serde(default)]
    pub accepted_hosts: Vec<String>,
    /// Proxies (addresses or ranges) in front of the gateway whose
    /// `Forwarded` or `X-Forwarded-For` names the client's address, for
    /// throttling and logs. Empty: the connection's peer is the client.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Seconds between SIGTERM and closing the listener: `/readyz` answers
    /// 503 at once while requests are still served, so a load balancer moves
    /// traffic to other replicas first; in-flight requests then drain.
    /// 0 (the default) for a single gateway; about 5 behind a balancer.
    #[serde(default)]
    pub shutdown_delay_seconds: u64,
    /// The partner policy file, relative to this file.
    pub policy: PathBuf,
    /// Directory of persistent state (the client registry), relative to this
    /// file; `--data-dir` overrides it. Unset, only `[[clients]]` can obtain
    /// tokens.
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// The database holding the gateway's state, shared by every replica:
    /// `postgres://user:password@host:5432/fhirgate`. Set, nothing a replica
    /// needs is kept in `data_dir` (the keys are sealed in the database under
    /// the KEK each replica is given: `FHIRGATE_KEK` or `kek_file`); unset,
    /// the state is a SQLite file in `data_dir`. `--database-url` and
    /// `FHIRGATE_DATABASE_URL` override it.
    #[serde(default)]
    pub database_url: Option<String>,
    /// The key-encryption key's file (64 hexadecimal characters, mode 0600),
    /// relative to this file; unset, `kek.key` in `data_dir`, created on
    /// first start. `FHIRGATE_KEK` in the environment takes precedence. Keep
    /// it apart from backups of the data directory.
    #[serde(default)]
    pub kek_file: Option<PathBuf>,
    #[serde(default)]
    pub token: TokenConfig,
    /// OAuth clients allowed to obtain tokens.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    #[serde(default)]
    pub limits: HttpLimits,
    /// The admin API; absent, it is off.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// Sandbox limits for every module call.
    #[serde(default)]
    pub wasm: Limits,
    #[serde(default)]
    pub audit: AuditConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    /// HTTPS on the listener; absent, it speaks plain HTTP.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// `GET /metrics` for a scraper with a bearer token; absent, metrics
    /// are not served.
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
}

/// The metrics endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Lower-case hex SHA-256 of the bearer token the scraper sends
    /// (`fhirgate secret` prints a token and its digest).
    pub token_sha256: String,
}

/// The HTTPS listener. The certificate and key files are looked at every
/// 2 s and a changed, consistent pair is served to new connections without a
/// restart; open connections keep theirs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM: the server certificate, then its intermediates.
    pub cert_file: PathBuf,
    /// PEM private key, mode 0600.
    pub key_file: PathBuf,
    /// PEM CA certificates: set, clients must present a certificate issued
    /// by one of them.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age=…` on every answer; unset, none.
    #[serde(default)]
    pub hsts_max_age_seconds: Option<u64>,
    #[serde(default)]
    pub hsts_include_subdomains: bool,
}

/// Where the gateway may connect on someone else's say-so.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Address ranges (`10.20.0.0/16`, `fd00::/8`, or one address) that
    /// providers registered through the admin API may have although they
    /// are loopback, private, link-local or otherwise special. Empty by
    /// default: those providers must be at public addresses. Providers in
    /// the policy file are the operator's own and are not restricted.
    #[serde(default)]
    pub allowed_ranges: Vec<String>,
}

impl OutboundConfig {
    /// The policy these settings make.
    pub fn policy(&self) -> anyhow::Result<fhirgate_upstream::outbound::OutboundPolicy> {
        let ranges = self
            .allowed_ranges
            .iter()
            .enumerate()
            .map(|(i, r)| {
                fhirgate_upstream::outbound::Range::parse(r).with_context(|| format!("`outbound.allowed_ranges[{i}]`"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(fhirgate_upstream::outbound::OutboundPolicy::new(ranges))
    }
}

/// The access log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// `before-answer` (default): every access record and token event is
    /// committed before its answer is sent, so a crash loses none.
    /// `buffered`: answers go out at once and records are committed within
    /// 20 ms, faster under load, and a crash may lose that window's records.
    #[serde(default)]
    pub commit: crate::access::Commit,
}

impl Config {
    /// A gateway serving `policy` with every other setting at its default:
    /// no listen address, public URL, data directory, clients or admin API.
    pub fn with_defaults(policy: PathBuf) -> Config {
        Config {
            schema_version: SCHEMA_VERSION,
            listen: None,
            public_url: None,
            accepted_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            shutdown_delay_seconds: 0,
            policy,
            data_dir: None,
            database_url: None,
            kek_file: None,
            token: TokenConfig::default(),
            clients: Vec::new(),
            limits: HttpLimits::default(),
            admin: None,
            wasm: Limits::default(),
            audit: AuditConfig::default(),
            outbound: OutboundConfig::default(),
            tls: None,
            metrics: None,
        }
    }
}

/// Token issuance settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Access token lifetime in seconds. One hour, the value the app expects
    /// and most identity providers use for client-credentials tokens.
    #[serde(default = "default_lifetime")]
    pub lifetime_seconds: u64,
    /// PEM file (PKCS#8, P-256) holding the signing key of a gateway without
    /// `data_dir`, relative to the config file; created on first start (mode
    /// 0600), and kept sealed when the gateway has a key-encryption key
    /// (`FHIRGATE_KEK` or `kek_file`). Unset, a fresh key is generated at
    /// every start and earlier tokens stop working.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Algorithm of new signing keys: `ES256` (default: short signatures,
    /// fast) or `RS256` (for relying parties that only know RSA). Keys live
    /// in the store when `data_dir` is set.
    #[serde(default = "default_algorithm")]
    pub algorithm: String,
}

fn default_algorithm() -> String {
    "ES256".into()
}

impl TokenConfig {
    /// The signing algorithm, checked.
    pub fn algorithm(&self) -> anyhow::Result<jsonwebtoken::Algorithm> {
        match self.algorithm.as_str() {
            "ES256" => Ok(jsonwebtoken::Algorithm::ES256),
            "RS256" => Ok(jsonwebtoken::Algorithm::RS256),
            other => bail!("`token.algorithm` is `{other}`, expected ES256 or RS256"),
        }
    }

    /// How long a retired key stays published: the token lifetime plus the
    /// validators' clock leeway.
    pub fn publish_seconds(&self) -> u64 {
        self.lifetime_seconds + 120
    }
}

fn default_lifetime() -> u64 {
    3600
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig { lifetime_seconds: default_lifetime(), signing_key_file: None, algorithm: default_algorithm() }
    }
}

/// One OAuth client declared in configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Lower-case hex SHA-256 of the client secret. Secrets are high-entropy
    /// random strings, so an unsalted fast hash does not make them guessable;
    /// the plaintext is never stored.
    pub secret_sha256: String,
    /// Tenant ids (GUIDs) the client may ask tokens for.
    pub tenants: Vec<String>,
    /// `test` or `production` (the default): which environment's provider
    /// URLs its tokens reach.
    #[serde(default)]
    pub environment: fhirgate_core::environment::Environment,
}

/// The admin API's credential.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Lower-case hex SHA-256 of the shared admin bearer token (`fhirgate
    /// secret` prints a token and its digest): a break-glass credential that
    /// acts as an operator but never approves. Leave it out to have only
    /// people (users with roles) on the admin API. The admin API needs
    /// `data_dir`.
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// A signed-in user (session cookie) must have signed in within this many
    /// seconds to change secrets, keys or approvals; else they sign in again.
    #[serde(default = "default_reauth_seconds")]
    pub reauth_seconds: u64,
    /// OpenID Connect providers people sign in through (`[[admin.oidc]]`).
    #[serde(default)]
    pub oidc: Vec<OidcConfig>,
}

/// An OpenID Connect provider people sign in through: authorization code
/// with PKCE; the gateway is the client `client_id` and the redirect URI it
/// registers there is `<public URL>/admin/oidc/<name>/callback`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// In URLs: `/admin/oidc/<name>/start`. Letters, digits, `-`, `_`.
    pub name: String,
    /// The provider's issuer; its `/.well-known/openid-configuration` is read.
    pub issuer: String,
    pub client_id: String,
    /// The client secret (a confidential client, `client_secret_basic`):
    /// a file, mode 0600 or sealed. Without it the gateway is a public client
    /// and PKCE alone protects the code.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for; `openid` is always among them.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Extra trust anchors (PEM) for the provider's HTTPS endpoints.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_reauth_seconds() -> u64 {
    300
}

/// HTTP limits: sizes, timeouts and connection caps. Every one bounds what
/// a client that is slow, silent or hostile can hold of the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpLimits {
    /// Largest request body accepted from a client. 1 MiB holds any search
    /// form or read batch the app sends, many times over.
    #[serde(default = "default_request_body")]
    pub max_request_body_bytes: usize,
    /// Largest response body accepted from a provider. 16 MiB is above the
    /// largest searchset page the app asks for (`_count` ≤ 100 Patients).
    #[serde(default = "default_upstream_body")]
    pub max_upstream_body_bytes: usize,
    /// Largest request head (HTTP/1.1 request line and headers; the HTTP/2
    /// header list). 64 KiB holds a bearer token and every header a client
    /// library sends with room to spare; larger heads get `431`.
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: usize,
    /// Seconds an HTTP/1.1 client may take to send a request head once it
    /// has started it. Real clients send the head in one packet; a client
    /// dripping it byte by byte is holding a connection open.
    #[serde(default = "default_header_timeout")]
    pub header_read_timeout_seconds: u64,
    /// Seconds a client may take to send a whole request body; slower gets
    /// `408`. 30 s moves the largest accepted body over a very slow link.
    #[serde(default = "default_body_timeout")]
    pub body_read_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request on it (keep-alive,
    /// or connected and silent). 75 s outlasts the idle timeouts of common
    /// client pools (60 s), so the client closes first and never reuses a
    /// connection the gateway is closing.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_seconds: u64,
    /// Seconds a response may wait for a client that does not read it.
    #[serde(default = "default_write_timeout")]
    pub write_timeout_seconds: u64,
    /// Open client connections at most. The gateway also keeps this below
    /// three quarters of its open-file limit, so it never runs out of
    /// descriptors for its store and its providers. At the cap, an idle
    /// connection of the address holding the most is closed to make room;
    /// with none idle, the new connection is closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address at most; more are closed at
    /// once. 256 is well above an app back end's connection pool. Behind a
    /// proxy every connection comes from the proxy: raise it there.
    #[serde(default = "default_max_per_address")]
    pub max_connections_per_address: usize,
    /// Concurrent requests on one HTTP/2 connection.
    #[serde(default = "default_h2_streams")]
    pub http2_max_concurrent_streams: u32,
}

fn default_request_body() -> usize {
    1024 * 1024
}
fn default_upstream_body() -> usize {
    16 * 1024 * 1024
}
fn default_header_bytes() -> usize {
    64 * 1024
}
fn default_header_timeout() -> u64 {
    10
}
fn default_body_timeout() -> u64 {
    30
}
fn default_idle_timeout() -> u64 {
    75
}
fn default_write_timeout() -> u64 {
    30
}
fn default_max_connections() -> usize {
    4096
}
fn default_max_per_address() -> usize {
    256
}
fn default_h2_streams() -> u32 {
    100
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_request_body_bytes: default_request_body(),
            max_upstream_body_bytes: default_upstream_body(),
            max_header_bytes: default_header_bytes(),
            header_read_timeout_seconds: default_header_timeout(),
            body_read_timeout_seconds: default_body_timeout(),
            idle_timeout_seconds: default_idle_timeout(),
            write_timeout_seconds: default_write_timeout(),
            max_connections: default_max_connections(),
            max_connections_per_address: default_max_per_address(),
            http2_max_concurrent_streams: default_h2_streams(),
        }
    }
}

impl HttpLimits {
    /// Checks every limit is within what makes sense.
    pub fn check(&self) -> anyhow::Result<()> {
        let seconds = [
            ("header_read_timeout_seconds", self.header_read_timeout_seconds),
            ("body_read_timeout_seconds", self.body_read_timeout_seconds),
            ("idle_timeout_seconds", self.idle_timeout_seconds),
            ("write_timeout_seconds", self.write_timeout_seconds),
        ];
        for (key, value) in seconds {
            if !(1..=3600).contains(&value) {
                bail!("`limits.{key}` must be between 1 and 3600");
            }
        }
        if !(8 * 1024..=1024 * 1024).contains(&self.max_header_bytes) {
            bail!("`limits.max_header_bytes` must be between 8192 and 1048576");
        }
        if self.max_connections == 0 || self.max_connections_per_address == 0 {
            bail!("`limits.max_connections` and `limits.max_connections_per_address` must be at least 1");
        }
        if self.http2_max_concurrent_streams == 0 {
            bail!("`limits.http2_max_concurrent_streams` must be at least 1");
        }
        Ok(())
    }
}

impl Config {
    /// Reads and checks `path`; relative paths inside it are resolved against
    /// its directory.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let config = Self::read(path)?;
        config.check().with_context(|| format!("in {}", path.display()))?;
        Ok(config)
    }

    /// Reads `path` as [`Config::load`] does, without the checks: for a
    /// caller that overrides keys first (command-line flags), then checks.
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut config: Config = toml::from_str(&text).with_context(|| format!("in {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        config.policy = dir.join(&config.policy);
        if let Some(k) = &config.kek_file {
            config.kek_file = Some(dir.join(k));
        }
        if let Some(d) = &config.data_dir {
            config.data_dir = Some(dir.join(d));
        }
        if let Some(key) = &config.token.signing_key_file {
            config.token.signing_key_file = Some(dir.join(key));
        }
        for oidc in config.admin.iter_mut().flat_map(|a| a.oidc.iter_mut()) {
            for file in [&mut oidc.client_secret_file, &mut oidc.ca_file].into_iter().flatten() {
                *file = dir.join(&*file);
            }
        }
        if let Some(tls) = &mut config.tls {
            tls.cert_file = dir.join(&tls.cert_file);
            tls.key_file = dir.join(&tls.key_file);
            tls.client_ca_file = tls.client_ca_file.as_ref().map(|ca| dir.join(ca));
        }
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.schema_version != SCHEMA_VERSION {
            bail!("`schema_version` is {}, expected {SCHEMA_VERSION}", self.schema_version);
        }
        if let Some(url) = &self.public_url {
            check_public_url(url).context("`public_url`")?;
        }
        for (i, host) in self.accepted_hosts.iter().enumerate() {
            crate::hosts::check_accepted_host(host).with_context(|| format!("`accepted_hosts[{i}]`"))?;
        }
        if let Some(url) = &self.database_url {
            fhirgate_store::Backend::of(url).context("`database_url`")?;
        }
        if let Some(m) = &self.metrics
            && (m.token_sha256.len() != 64 || hex::decode(&m.token_sha256).is_err())
        {
            bail!("`metrics.token_sha256` must be 64 hexadecimal characters");
        }
        self.token.algorithm()?;
        self.limits.check()?;
        self.outbound.policy()?;
        crate::forwarded::TrustedProxies::new(&self.trusted_proxies)?;
        if self.token.lifetime_seconds == 0 || self.token.lifetime_seconds > 24 * 3600 {
            bail!("`token.lifetime_seconds` must be between 1 and 86400");
        }
        let mut seen = BTreeSet::new();
        for (i, c) in self.clients.iter().enumerate() {
            if c.client_id.is_empty() || !seen.insert(c.client_id.as_str()) {
                bail!("`clients[{i}].client_id` must be non-empty and unique");
            }
            if c.secret_sha256.len() != 64 || hex::decode(&c.secret_sha256).is_err() {
                bail!("`clients[{i}].secret_sha256` must be 64 hexadecimal characters");
            }
            if let Some(t) = c.tenants.iter().find(|t| !fhirgate_core::ids::is_guid(t)) {
                bail!("`clients[{i}].tenants` holds `{t}`, expected a GUID");
            }
        }
        if let Some(a) = &self.admin {
            if let Some(t) = &a.token_sha256
                && (t.len() != 64 || hex::decode(t).is_err())
            {
                bail!("`admin.token_sha256` must be 64 hexadecimal characters");
            }
            if self.data_dir.is_none() && self.database_url.is_none() {
                bail!(
                    "`admin` needs `data_dir` or `database_url`: the admin API manages the client registry kept there"
                );
            }
            let mut names = std::collections::BTreeSet::new();
            for (i, o) in a.oidc.iter().enumerate() {
                let slug = !o.name.is_empty()
                    && o.name.len() <= 32
                    && o.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !slug || !names.insert(o.name.clone()) {
                    bail!("`admin.oidc[{i}].name` must be 1-32 letters, digits, `-` or `_`, and unique");
                }
                let uri: http::Uri = o.issuer.parse().context("`admin.oidc.issuer` is not a URL")?;
                if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || uri.query().is_some()
                {
                    bail!("`admin.oidc[{i}].issuer` must be an http(s) URL without a query");
                }
                if o.client_id.is_empty() {
                    bail!("`admin.oidc[{i}].client_id` is empty");
                }
            }
        }
        if !(1..=60_000).contains(&self.wasm.call_timeout_ms) {
            bail!("`wasm.call_timeout_ms` must be between 1 and 60000");
        }
        if !(1..=4096).contains(&self.wasm.memory_mib) {
            bail!("`wasm.memory_mib` must be between 1 and 4096");
        }
        if !(64..=65_536).contains(&self.wasm.stack_kib) {
            bail!("`wasm.stack_kib` must be between 64 and 65536");
        }
        Ok(())
    }
}

/// A public URL is absolute http(s) with a host and no path, query or fragment.
pub fn check_public_url(url: &str) -> anyhow::Result<()> {
    let uri: http::Uri = url.parse().with_context(|| format!("`{url}` is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => bail!("`{url}` must start with http:// or https://"),
    }
    if uri.host().is_none() {
        bail!("`{url}` has no host");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() || url.ends_with('/') {
        bail!("`{url}` must be scheme://host[:port] with no path and no trailing slash");
    }
    Ok(())
}

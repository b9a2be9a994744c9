//! A provider as an operator declares it, in the policy file (`[providers.<id>]`)
//! or through the admin API: the same fields, the same checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::ProviderRoute;
use fhirgate_core::fhir::Version;
use fhirgate_upstream::{
    AssertionKey, BreakerSettings, ClientAuth, ProviderSettings, RetrySettings, Upstream, UpstreamAuth,
};

/// A provider's declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// The provider's FHIR base URL.
    pub base_url: String,
    /// The FHIR version it speaks: `r4`, `stu3` or `dstu2`.
    pub fhir_version: Version,
    /// Budget for one upstream exchange, retries included, in milliseconds.
    /// 15 s: the app gives up on a screen after about 30 s, and the gateway
    /// should answer with a clear 504 before that.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// TCP and TLS handshake budget. 5 s: a provider that cannot accept a
    /// connection in that time is down for the app's purposes.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A PEM file of extra trust anchors for this provider (a hospital's
    /// private CA), on top of the system roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// The gateway's client certificate (PEM chain) for a provider that
    /// requires mutual TLS; with `client_key_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert_file: Option<PathBuf>,
    /// The private key of `client_cert_file`: PEM, mode 0600, or sealed with
    /// `fhirgate directory seal-secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key_file: Option<PathBuf>,
    /// How the gateway authenticates to the provider, if it must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// Consecutive failures that open the provider's circuit breaker, and
    /// how long it stays open before one probe is let through.
    #[serde(default)]
    pub breaker: BreakerSpec,
    /// Retries of a failed read (connection refused, 502/503/504), within the
    /// time budget and a per-provider retry budget.
    #[serde(default = "default_retries")]
    pub retries: u32,
}

/// Upstream credentials. Secrets are named by file, never written into the
/// policy, the store or the admin API's answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AuthSpec {
    /// The provider's own OAuth 2.0 client-credentials token, fetched and
    /// cached by the gateway; the gateway authenticates with a client secret.
    ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret_file: PathBuf,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
        /// Where the secret goes: `client_secret_basic` (HTTP Basic, the
        /// default) or `client_secret_post` (in the form).
        #[serde(default, skip_serializing_if = "SecretMethod::is_default")]
        method: SecretMethod,
    },
    /// SMART Backend Services: the provider's client-credentials token, the
    /// gateway authenticating with an assertion signed by a key it holds for
    /// this provider, whose public half it publishes at
    /// `/providers/<id>/jwks.json` for the hospital to register.
    PrivateKeyJwt {
        token_url: String,
        client_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    /// A fixed header (an API key), its value read from a file.
    Header { name: String, value_file: PathBuf },
}

/// Where a client secret is sent at the provider's token endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretMethod {
    #[default]
    ClientSecretBasic,
    ClientSecretPost,
}

impl SecretMethod {
    fn is_default(&self) -> bool {
        *self == SecretMethod::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// 5: one failure is noise, five in a row is an outage.
    #[serde(default = "default_failures")]
    pub failures: u32,
    /// 30 s: long enough not to hammer a provider that is restarting.
    #[serde(default = "default_open_ms")]
    pub open_ms: u64,
}

impl Default for BreakerSpec {
    fn default() -> Self {
        BreakerSpec { failures: default_failures(), open_ms: default_open_ms() }
    }
}

fn default_timeout_ms() -> u64 {
    15_000
}
fn default_connect_timeout_ms() -> u64 {
    5_000
}
fn default_retries() -> u32 {
    1
}
fn default_failures() -> u32 {
    5
}
fn default_open_ms() -> u64 {
    30_000
}

impl ProviderSpec {
    /// A provider at `base_url` with every other setting at its default.
    pub fn new(base_url: &str, fhir_version: Version) -> ProviderSpec {
        ProviderSpec {
            base_url: base_url.to_owned(),
            fhir_version,
            timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            auth: None,
            breaker: BreakerSpec::default(),
            retries: default_retries(),
        }
    }

    pub fn from_json(text: &str) -> anyhow::Result<ProviderSpec> {
        serde_json::from_str(text).context("stored provider settings are invalid")
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The base URL without a trailing slash.
    pub fn base(&self) -> &str {
        self.base_url.trim_end_matches('/')
    }

    /// Makes relative file names relative to `dir` (the policy file's).
    pub fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for file in [&mut self.ca_file, &mut self.client_cert_file, &mut self.client_key_file].into_iter().flatten() {
            fix(file);
        }
        match &mut self.auth {
            Some(AuthSpec::ClientCredentials { client_secret_file, .. }) => fix(client_secret_file),
            Some(AuthSpec::Header { value_file, .. }) => fix(value_file),
            Some(AuthSpec::PrivateKeyJwt { .. }) | None => {}
        }
    }

    /// For a declaration made through the admin API or CLI: credential and
    /// CA files must be plain file names in `secrets_dir`, so an operator
    /// cannot point the gateway at an arbitrary file on its host (and have
    /// it sent to a token endpoint).
    pub fn confine(&mut self, secrets_dir: Option<&Path>) -> anyhow::Result<()> {
        let confine = |key: &str, p: &mut PathBuf| -> anyhow::Result<()> {
            let Some(dir) = secrets_dir else {
                bail!("`{key}`: this gateway has no data directory to keep provider secrets in");
            };
            if !fhirgate_core::files::is_plain_name(p.to_str().unwrap_or_default()) {
                bail!("`{key}` must be a file name in {} (no directories)", dir.display());
            }
            *p = dir.join(&*p);
            Ok(())
        };
        if let Some(ca) = &mut self.ca_file {
            confine("ca_file", ca)?;
        }
        if let Some(cert) = &mut self.client_cert_file {
            confine("client_cert_file", cert)?;
        }
        if let Some(key) = &mut self.client_key_file {
            confine("client_key_file", key)?;
        }
        match &mut self.auth {
            Some(AuthSpec::ClientCredentials { client_secret_file, .. }) => {
                confine("auth.client_secret_file", client_secret_file)?
            }
            Some(AuthSpec::Header { value_file, .. }) => confine("auth.value_file", value_file)?,
            Some(AuthSpec::PrivateKeyJwt { .. }) | None => {}
        }
        Ok(())
    }

    /// SHA-256 of the declaration as stored: what an approval refers to.
    pub fn digest(&self) -> String {
        fhirgate_core::digest::sha256_hex(self.to_json().as_bytes())
    }

    /// Checks the declaration; messages name the key that is wrong.
    pub fn check(&self) -> anyhow::Result<()> {
        let uri: http::Uri = self.base_url.parse().context("`base_url` is not a URL")?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || uri.query().is_some() {
            bail!("`base_url` must be an absolute http(s) URL without a query");
        }
        if self.base_url.contains('#') {
            bail!("`base_url` must not have a fragment");
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            bail!("`base_url` must not carry credentials");
        }
        if self.timeout_ms == 0 || self.timeout_ms > 300_000 {
            bail!("`timeout_ms` must be between 1 and 300000");
        }
        if self.connect_timeout_ms == 0 || self.connect_timeout_ms > 60_000 {
            bail!("`connect_timeout_ms` must be between 1 and 60000");
        }
        if self.breaker.failures == 0 || self.breaker.open_ms == 0 {
            bail!("`breaker.failures` and `breaker.open_ms` must be positive");
        }
        if self.retries > 3 {
            bail!("`retries` must be at most 3");
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            bail!("`client_cert_file` and `client_key_file` go together");
        }
        if let Some(
            AuthSpec::ClientCredentials { token_url, client_id, .. }
            | AuthSpec::PrivateKeyJwt { token_url, client_id, .. },
        ) = &self.auth
        {
            let uri: http::Uri = token_url.parse().context("`auth.token_url` is not a URL")?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                bail!("`auth.token_url` must be an absolute http(s) URL");
            }
            if client_id.is_empty() {
                bail!("`auth.client_id` is empty");
            }
        }
        if let Some(AuthSpec::Header { name, .. }) = &self.auth {
            let name = HeaderName::from_bytes(name.as_bytes()).context("`auth.name` is not a header name")?;
            if matches!(name.as_str(), "host" | "connection" | "content-length" | "transfer-encoding") {
                bail!("`auth.name` may not be `{name}`");
            }
        }
        Ok(())
    }

    /// Whether a change from `self` to `new` touches where or how requests
    /// go, which needs the mapping approved again.
    pub fn needs_reapproval(&self, new: &ProviderSpec) -> bool {
        self.base() != new.base() || self.fhir_version != new.fhir_version || self.ca_file != new.ca_file || {
            let target = |a: &Option<AuthSpec>| match a {
                Some(AuthSpec::ClientCredentials { token_url, client_id, .. }) => {
                    Some(("secret", token_url.clone(), client_id.clone()))
                }
                Some(AuthSpec::PrivateKeyJwt { token_url, client_id, .. }) => {
                    Some(("private_key_jwt", token_url.clone(), client_id.clone()))
                }
                _ => None,
            };
            target(&self.auth) != target(&new.auth)
        }
    }

    /// Checks everything [`ProviderSpec::settings`] would (files included),
    /// without the assertion key, which is made when the provider is stored.
    pub fn check_loadable(&self, id: &str) -> anyhow::Result<()> {
        self.check()?;
        let mut bare = self.clone();
        if bare.uses_assertion_key() {
            bare.auth = None;
        }
        bare.settings(id, None).map(drop)
    }

    /// Whether the gateway needs an assertion key for this provider.
    pub fn uses_assertion_key(&self) -> bool {
        matches!(self.auth, Some(AuthSpec::PrivateKeyJwt { .. }))
    }

    /// The upstream settings, reading credential files; `key` is the
    /// provider's current assertion key, needed for `private-key-jwt`.
    pub fn settings(&self, id: &str, key: Option<&AssertionKey>) -> anyhow::Result<ProviderSettings> {
        let read = |key: &str, path: &Path| -> anyhow::Result<String> {
            fhirgate_core::vault::read_credential(path).with_context(|| format!("`auth.{key}`"))
        };
        let auth = match &self.auth {
            None => None,
            Some(AuthSpec::ClientCredentials { token_url, client_id, client_secret_file, scope, method }) => {
                let secret = read("client_secret_file", client_secret_file)?;
                Some(UpstreamAuth::ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    scope: scope.clone(),
                    client_auth: match method {
                        SecretMethod::ClientSecretBasic => ClientAuth::SecretBasic(secret),
                        SecretMethod::ClientSecretPost => ClientAuth::SecretPost(secret),
                    },
                })
            }
            Some(AuthSpec::PrivateKeyJwt { token_url, client_id, scope }) => {
                let key = key.context("`auth`: the gateway holds no assertion key for this provider")?;
                Some(UpstreamAuth::ClientCredentials {
                    token_url: token_url.clone(),
                    client_id: client_id.clone(),
                    scope: scope.clone(),
                    client_auth: ClientAuth::PrivateKeyJwt(key.clone()),
                })
            }
            Some(AuthSpec::Header { name, value_file }) => {
                let value = read("value_file", value_file)?;
                Some(UpstreamAuth::Header {
                    name: HeaderName::from_bytes(name.as_bytes()).context("`auth.name` is not a header name")?,
                    value: HeaderValue::from_str(&value)
                        .map_err(|_| anyhow::anyhow!("`auth.value_file`: not a valid header value"))?,
                })
            }
        };
        let settings = ProviderSettings {
            id: id.to_owned(),
            timeout: Duration::from_millis(self.timeout_ms),
            connect_timeout: Duration::from_millis(self.connect_timeout_ms),
            extra_ca: self.ca_file.clone(),
            client_cert: self
                .client_cert_file
                .clone()
                .zip(self.client_key_file.clone())
                .map(|(cert, key)| fhirgate_upstream::ClientCert { cert, key }),
            auth,
            breaker: BreakerSettings {
                failure_threshold: self.breaker.failures,
                open_for: Duration::from_millis(self.breaker.open_ms),
            },
            retry: RetrySettings { max_retries: self.retries, ..RetrySettings::default() },
            // Set by the directory for providers not declared by the operator.
            restricted: false,
        };
        Upstream::check(&settings).map_err(|e| anyhow::anyhow!("`ca_file` or client certificate: {e}"))?;
        Ok(settings)
    }

    /// The provider as requests reach it.
    pub fn route(&self, id: &str, key: Option<&AssertionKey>) -> anyhow::Result<ProviderRoute> {
        self.check()?;
        Ok(ProviderRoute {
            id: id.to_owned(),
            base_url: self.base().to_owned(),
            fhir_version: self.fhir_version,
            settings: self.settings(id, key)?,
        })
    }
}

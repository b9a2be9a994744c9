//! A partner's policy bundle: which modules it runs for each role, their
//! configuration, its providers and which tenants each provider serves.
//!
//! Plain TOML a partner can read and diff. Modules are named by path
//! (relative to the policy file) and pinned by SHA-256.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::fhir::Version;
use crate::wasm::module::sha256_hex;
use crate::wasm::{Module, Role, Runtime};

/// The only policy schema version this build reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `policy.toml` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub schema_version: u32,
    /// The partner's name, used in logs and metrics.
    pub partner: String,
    /// What to do when a module's bytes do not match its `sha256`:
    /// `refuse` (the default) stops the load; `warn` loads it and says so,
    /// for modules built from source on the machine that runs them.
    #[serde(default)]
    pub on_pin_mismatch: PinMismatch,
    pub modules: ModulesFile,
    pub providers: BTreeMap<String, ProviderFile>,
    pub tenants: BTreeMap<String, TenantFile>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PinMismatch {
    #[default]
    Refuse,
    Warn,
}

/// One module per role.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesFile {
    #[serde(rename = "token-validation")]
    pub token_validation: ModuleFile,
    pub routing: ModuleFile,
    pub shaping: ModuleFile,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleFile {
    /// The `.wasm` component, relative to the policy file.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of the file.
    pub sha256: String,
    /// The module's own configuration, handed to it as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    /// The provider's FHIR base URL.
    pub base_url: String,
    /// The FHIR version it speaks: `r4`, `stu3` or `dstu2`.
    pub fhir_version: Version,
    /// Budget for one upstream exchange, in milliseconds. 15 s: the app
    /// gives up on a screen after about 30 s, and the gateway should answer
    /// with a clear 504 before that.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_timeout_ms() -> u64 {
    15_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Providers approved for this tenant; a routing answer naming any other
    /// provider is refused.
    pub providers: Vec<String>,
}

/// A provider as the gateway uses it.
#[derive(Debug, Clone)]
pub struct Provider {
    pub id: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub fhir_version: Version,
    pub timeout: Duration,
}

/// A module bound to a role, with its configuration.
pub struct BoundModule {
    pub module: Arc<Module>,
    pub config_json: Arc<str>,
}

/// A loaded, checked policy. Immutable: a reload builds a new one and swaps it
/// in, so requests in flight finish on the one they started with.
pub struct Policy {
    pub partner: Arc<str>,
    pub validator: BoundModule,
    pub router: BoundModule,
    pub shaper: BoundModule,
    pub providers: HashMap<String, Provider>,
    /// Lower-case tenant id → approved provider ids.
    pub tenants: HashMap<String, Vec<String>>,
    pub source: PathBuf,
}

impl Policy {
    /// The provider `id` if it is approved for `tenant`.
    pub fn provider_for(&self, tenant: &str, id: &str) -> Option<&Provider> {
        let approved = self.tenants.get(&tenant.to_ascii_lowercase())?;
        if approved.iter().any(|p| p == id) { self.providers.get(id) } else { None }
    }
}

/// Whether `s` is a GUID (8-4-4-4-12 hex digits).
pub fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

impl PolicyFile {
    /// Reads `path` without loading its modules.
    pub fn read(path: &Path) -> anyhow::Result<PolicyFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading policy {}", path.display()))?;
        let file: PolicyFile = toml::from_str(&text).with_context(|| format!("in policy {}", path.display()))?;
        file.check().with_context(|| format!("in policy {}", path.display()))?;
        Ok(file)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.schema_version != SCHEMA_VERSION {
            bail!("`schema_version` is {}, expected {SCHEMA_VERSION}", self.schema_version);
        }
        for (id, p) in &self.providers {
            let uri: http::Uri =
                p.base_url.parse().with_context(|| format!("`providers.{id}.base_url` is not a URL"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() || uri.query().is_some() {
                bail!("`providers.{id}.base_url` must be an absolute http(s) URL without a query");
            }
            if p.timeout_ms == 0 {
                bail!("`providers.{id}.timeout_ms` must be positive");
            }
        }
        for (tenant, t) in &self.tenants {
            if !is_guid(tenant) {
                bail!("`tenants.{tenant}`: expected a tenant id in GUID form");
            }
            if t.providers.is_empty() {
                bail!("`tenants.{tenant}.providers` is empty");
            }
            if let Some(p) = t.providers.iter().find(|p| !self.providers.contains_key(*p)) {
                bail!("`tenants.{tenant}.providers` names `{p}`, which is not under [providers]");
            }
        }
        Ok(())
    }

    /// Loads every module and builds the policy. `path` is where the file was
    /// read from; module paths are relative to it.
    pub fn load(self, path: &Path, runtime: &Runtime) -> anyhow::Result<Policy> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut cache: HashMap<PathBuf, Arc<Module>> = HashMap::new();
        let mut bind = |key: &str, m: &ModuleFile, role: Role| -> anyhow::Result<BoundModule> {
            let file = dir.join(&m.path);
            let module = match cache.get(&file) {
                Some(module) => module.clone(),
                None => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("`modules.{key}.path`: reading {}", file.display()))?;
                    let actual = sha256_hex(&bytes);
                    if !actual.eq_ignore_ascii_case(&m.sha256) {
                        match self.on_pin_mismatch {
                            PinMismatch::Refuse => bail!(
                                "`modules.{key}.sha256` is {}, but {} has sha256 {actual}",
                                m.sha256,
                                file.display()
                            ),
                            PinMismatch::Warn => tracing::warn!(
                                module = key, expected = %m.sha256, actual = %actual,
                                "module does not match its pin; loading it because on_pin_mismatch = \"warn\""
                            ),
                        }
                    }
                    let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or(key).to_owned();
                    let module =
                        Arc::new(Module::load(runtime, &name, &bytes).with_context(|| format!("`modules.{key}`"))?);
                    cache.insert(file.clone(), module.clone());
                    module
                }
            };
            if !module.exports(role) {
                bail!("`modules.{key}`: {} does not export the {role} interface", file.display());
            }
            let config = m.config.clone().unwrap_or_default();
            let config_json = serde_json::to_string(&config).context("module configuration")?;
            Ok(BoundModule { module, config_json: config_json.into() })
        };
        let validator = bind("token-validation", &self.modules.token_validation, Role::TokenValidation)?;
        let router = bind("routing", &self.modules.routing, Role::Routing)?;
        let shaper = bind("shaping", &self.modules.shaping, Role::Shaping)?;

        let providers = self
            .providers
            .iter()
            .map(|(id, p)| {
                (
                    id.clone(),
                    Provider {
                        id: id.clone(),
                        base_url: p.base_url.trim_end_matches('/').to_owned(),
                        fhir_version: p.fhir_version,
                        timeout: Duration::from_millis(p.timeout_ms),
                    },
                )
            })
            .collect();
        let tenants = self.tenants.iter().map(|(t, f)| (t.to_ascii_lowercase(), f.providers.clone())).collect();
        Ok(Policy {
            partner: self.partner.as_str().into(),
            validator,
            router,
            shaper,
            providers,
            tenants,
            source: path.to_owned(),
        })
    }
}

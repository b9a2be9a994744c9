//! A partner's policy bundle: which modules it runs for each role, their
//! configuration, and the providers and tenants it declares (written into the
//! tenant directory when the policy loads).
//!
//! Plain TOML a partner can read and diff. Modules are named by path
//! (relative to the policy file) and pinned by SHA-256.

pub mod invoke;
pub mod shadow;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::directory::ProviderSpec;
use fhirgate_core::digest::sha256_hex;
use fhirgate_core::ids::{is_guid, valid_provider_id};
use fhirgate_sandbox::{Lease, Module, ModuleLimits, Pool, Reuse, Role, Runtime};

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
    /// Providers this partner declares; written into the directory as the
    /// partner's own (more can be onboarded through the admin API).
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderSpec>,
    /// Tenants this partner declares, each approved for the providers named.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantFile>,
    /// Modules that replace the partner's for one tenant (routing, shaping).
    #[serde(default)]
    pub tenant_modules: BTreeMap<String, TenantModulesFile>,
}

/// One tenant's own modules; a role not named uses the partner's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantModulesFile {
    #[serde(default)]
    pub routing: Option<ModuleFile>,
    #[serde(default)]
    pub shaping: Option<ModuleFile>,
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

impl ModulesFile {
    /// Each role's module file, with the role's name.
    pub fn roles(&self) -> [(&'static str, &ModuleFile); 3] {
        [("token-validation", &self.token_validation), ("routing", &self.routing), ("shaping", &self.shaping)]
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleFile {
    /// The `.wasm` component, relative to the policy file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A module built into the gateway instead of a file: `token-jwt`,
    /// `router-table`, `router-rules` or `shaper-fhir`.
    #[serde(default)]
    pub builtin: Option<String>,
    /// Lower-case hex SHA-256 of the file; for a built-in module, optional
    /// (given, it must match).
    #[serde(default)]
    pub sha256: Option<String>,
    /// The module's own configuration, handed to it as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// A directory of the module's test cases (relative to the policy file),
    /// run before the module goes live; one failing case refuses it.
    #[serde(default)]
    pub cases: Option<PathBuf>,
    /// A candidate module run beside this one on a sample of requests, its
    /// answers compared and never served.
    #[serde(default)]
    pub shadow: Option<Box<ModuleFile>>,
    /// For a shadow candidate: the share of requests it also decides, above
    /// 0 and at most 1.
    #[serde(default)]
    pub sample: Option<f64>,
    /// What a fault of this module (a trap, its time or memory limit) means
    /// for the request (shaping only; token validation and routing always
    /// fail closed).
    #[serde(default)]
    pub on_fault: Option<OnFault>,
    /// Requests one instance of the module may serve, all of one tenant, one
    /// at a time (a number drawn between half this and this, per instance);
    /// 0: a fresh instance for every request. Default 64. Token validation
    /// always gets a fresh instance.
    #[serde(default)]
    pub reuse: Option<u32>,
    /// Linear memory one instance of this module may grow to, in MiB, in
    /// place of `[wasm] memory_mib` (a JavaScript or Python runtime needs
    /// more than a Rust module).
    #[serde(default)]
    pub memory_mib: Option<usize>,
    /// One call's time budget, in milliseconds, in place of `[wasm]
    /// call_timeout_ms`.
    #[serde(default)]
    pub call_timeout_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum OnFault {
    /// The request fails with a 500 OperationOutcome (the default).
    #[default]
    Error,
    /// When the provider speaks the client's FHIR version, its answer goes
    /// to the client unshaped, but for its own base URL, replaced with the
    /// gateway's; otherwise the request fails as with `error`.
    PassThrough,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    /// Providers approved for this tenant; a routing answer naming any other
    /// provider is refused.
    pub providers: Vec<String>,
}

/// A module bound to a role, with its configuration.
pub struct BoundModule {
    pub module: Arc<Module>,
    pub config_json: Arc<str>,
    /// Where the module's test cases are, if the policy names them.
    pub cases: Option<PathBuf>,
    /// Its instances, kept for reuse by tenant.
    pub pool: Arc<Pool>,
}

impl BoundModule {
    /// The instance for one request of `tenant`.
    pub fn lease(&self, tenant: &str) -> Lease {
        self.pool.lease(tenant)
    }
}

/// One tenant's own modules, loaded.
#[derive(Default)]
pub struct TenantModules {
    pub router: Option<BoundModule>,
    pub shaper: Option<BoundModule>,
}

/// A loaded, checked policy. Immutable: a reload builds a new one and swaps it
/// in, so requests in flight finish on the one they started with.
pub struct Policy {
    pub partner: Arc<str>,
    pub validator: BoundModule,
    pub router: BoundModule,
    pub shaper: BoundModule,
    /// Candidates answering beside the partner's modules, if any.
    pub shadows: Shadows,
    /// What a shaping module's fault means.
    pub shaping_on_fault: OnFault,
    /// Lower-case tenant id → the modules that replace the partner's for it.
    pub tenant_modules: HashMap<String, TenantModules>,
    pub source: PathBuf,
}

/// A shadow candidate per role, each optional.
#[derive(Default)]
pub struct Shadows {
    pub validator: Option<Arc<shadow::Shadow>>,
    pub router: Option<Arc<shadow::Shadow>>,
    pub shaper: Option<Arc<shadow::Shadow>>,
}

impl Shadows {
    /// The candidate for `role`, when the policy runs one.
    pub fn of(&self, role: Role) -> &Option<Arc<shadow::Shadow>> {
        match role {
            Role::TokenValidation => &self.validator,
            Role::Routing => &self.router,
            Role::Shaping => &self.shaper,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<shadow::Shadow>> {
        [&self.validator, &self.router, &self.shaper].into_iter().flatten()
    }

    /// Keeps `before`'s candidates, and the comparisons they made so far,
    /// where this policy runs the same ones: an edit elsewhere in the policy
    /// does not start them over.
    pub fn continue_from(&mut self, before: &Shadows) {
        for (now, was) in [
            (&mut self.validator, &before.validator),
            (&mut self.router, &before.router),
            (&mut self.shaper, &before.shaper),
        ] {
            if let (Some(n), Some(w)) = (now.as_ref(), was)
                && n.continues(w)
            {
                *now = Some(w.clone());
            }
        }
    }
}

impl Policy {
    /// The partner's module of `role`.
    pub fn module(&self, role: Role) -> &BoundModule {
        match role {
            Role::TokenValidation => &self.validator,
            Role::Routing => &self.router,
            Role::Shaping => &self.shaper,
        }
    }

    /// Drops the instances every module of this policy keeps for reuse, and
    /// keeps none from now on: another policy serves.
    pub fn retire(&self) {
        self.pools().for_each(|p| p.retire());
    }

    /// Lets the modules keep instances again: this policy serves once more
    /// (a rollback).
    pub fn revive(&self) {
        self.pools().for_each(|p| p.revive());
    }

    fn pools(&self) -> impl Iterator<Item = &Arc<Pool>> {
        let tenants = self.tenant_modules.values().flat_map(|t| [&t.router, &t.shaper]).flatten();
        [&self.validator, &self.router, &self.shaper].into_iter().chain(tenants).map(|b| &b.pool)
    }

    /// The routing module for `tenant`: its own, else the partner's.
    pub fn router_for(&self, tenant: &str) -> &BoundModule {
        self.tenant_override(tenant, |m| m.router.as_ref()).unwrap_or(&self.router)
    }

    /// The shaping module for `tenant`: its own, else the partner's.
    pub fn shaper_for(&self, tenant: &str) -> &BoundModule {
        self.tenant_override(tenant, |m| m.shaper.as_ref()).unwrap_or(&self.shaper)
    }

    fn tenant_override<'a>(
        &'a self,
        tenant: &str,
        pick: impl Fn(&'a TenantModules) -> Option<&'a BoundModule>,
    ) -> Option<&'a BoundModule> {
        if self.tenant_modules.is_empty() {
            return None;
        }
        self.tenant_modules.get(&tenant.to_ascii_lowercase()).and_then(pick)
    }

    /// Every module bound, with its role and, for a tenant's own, the tenant.
    pub fn bound(&self) -> Vec<(&'static str, Option<&str>, &BoundModule)> {
        let mut out = vec![
            ("token-validation", None, &self.validator),
            ("routing", None, &self.router),
            ("shaping", None, &self.shaper),
        ];
        let mut tenants: Vec<(&String, &TenantModules)> = self.tenant_modules.iter().collect();
        tenants.sort_by(|a, b| a.0.cmp(b.0));
        for (tenant, m) in tenants {
            out.extend(m.router.as_ref().map(|b| ("routing", Some(tenant.as_str()), b)));
            out.extend(m.shaper.as_ref().map(|b| ("shaping", Some(tenant.as_str()), b)));
        }
        out
    }
}

impl PolicyFile {
    /// Reads `path` without loading its modules.
    pub fn read(path: &Path) -> anyhow::Result<PolicyFile> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading policy {}", path.display()))?;
        Self::parse(&text, path)
    }

    /// Parses `text`, the policy at `path` (relative paths in it are
    /// relative to that file).
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<PolicyFile> {
        let mut file: PolicyFile = toml::from_str(text).with_context(|| format!("in policy {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        for spec in file.providers.values_mut() {
            spec.resolve_paths(dir);
        }
        file.check().with_context(|| format!("in policy {}", path.display()))?;
        Ok(file)
    }

    /// Every module file the policy names (relative to it): each role's,
    /// shadow candidates' and tenants' own.
    pub fn module_paths(&self) -> Vec<&Path> {
        self.module_files().into_iter().filter_map(|f| f.path.as_deref()).collect()
    }

    /// The digests of the modules named by digest alone (uploaded to the
    /// gateway's module store).
    pub fn stored_digests(&self) -> Vec<String> {
        let stored = self.module_files().into_iter().filter(|f| f.path.is_none() && f.builtin.is_none());
        stored.filter_map(|f| f.sha256.clone()).collect()
    }

    /// Every module the policy names: each role's, shadow candidates' and
    /// tenants' own.
    fn module_files(&self) -> Vec<&ModuleFile> {
        let m = &self.modules;
        let mut out: Vec<&ModuleFile> = Vec::new();
        for (_, f) in m.roles() {
            out.push(f);
            out.extend(f.shadow.as_deref());
        }
        for t in self.tenant_modules.values() {
            out.extend([&t.routing, &t.shaping].into_iter().flatten());
        }
        out
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.schema_version != SCHEMA_VERSION {
            bail!("`schema_version` is {}, expected {SCHEMA_VERSION}", self.schema_version);
        }
        for (id, p) in &self.providers {
            if !valid_provider_id(id) {
                bail!("`providers.{id}`: a provider id is 1–64 letters, digits, `-` or `_`");
            }
            p.check().map_err(|e| anyhow::anyhow!("`providers.{id}`: {e:#}"))?;
        }
        for (key, m) in [("token-validation", &self.modules.token_validation), ("routing", &self.modules.routing)] {
            if m.on_fault.is_some() {
                bail!("`modules.{key}.on_fault`: token validation and routing always fail closed");
            }
        }
        for (key, m) in self.modules.roles() {
            let Some(s) = &m.shadow else { continue };
            if !s.sample.is_some_and(|x| x > 0.0 && x <= 1.0) {
                bail!("`modules.{key}.shadow.sample` must be above 0 and at most 1");
            }
            if s.shadow.is_some() || s.on_fault.is_some() {
                bail!("`modules.{key}.shadow`: a candidate has no `shadow` or `on_fault` of its own");
            }
        }
        let mut active: Vec<(String, &ModuleFile)> = vec![
            ("modules.token-validation".into(), &self.modules.token_validation),
            ("modules.routing".into(), &self.modules.routing),
            ("modules.shaping".into(), &self.modules.shaping),
        ];
        for (tenant, m) in &self.tenant_modules {
            if !is_guid(tenant) {
                bail!("`tenant_modules.{tenant}`: expected a tenant id in GUID form");
            }
            for (role, f) in [("routing", &m.routing), ("shaping", &m.shaping)] {
                if let Some(f) = f {
                    if f.shadow.is_some() || f.on_fault.is_some() {
                        bail!(
                            "`tenant_modules.{tenant}.{role}`: `shadow` and `on_fault` are set on the partner's modules"
                        );
                    }
                    active.push((format!("tenant_modules.{tenant}.{role}"), f));
                }
            }
        }
        if let Some((key, _)) = active.iter().find(|(_, m)| m.sample.is_some()) {
            bail!("`{key}.sample`: only a shadow candidate has a sample");
        }
        let shadows = self
            .modules
            .roles()
            .into_iter()
            .filter_map(|(role, m)| m.shadow.as_deref().map(|s| (format!("modules.{role}.shadow"), s)));
        for (key, m) in active.iter().map(|(k, m)| (k.clone(), *m)).chain(shadows) {
            match (&m.path, &m.builtin, &m.sha256) {
                // A file, a built-in module, or one uploaded to the
                // gateway's module store, named by its digest alone.
                (Some(_), None, Some(_)) | (None, Some(_), _) | (None, None, Some(_)) => {}
                (Some(_), None, None) => bail!("`{key}.sha256` is missing: a module file is pinned by its SHA-256"),
                (Some(_), Some(_), _) => bail!("`{key}`: give `path` or `builtin`, not both"),
                (None, None, None) => bail!(
                    "`{key}`: name the module's file with `path` (and `sha256`), or a built-in one with `builtin` ({})",
                    fhirgate_builtin::NAMES.join(", ")
                ),
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (tenant, t) in &self.tenants {
            if !is_guid(tenant) {
                bail!("`tenants.{tenant}`: expected a tenant id in GUID form");
            }
            if !seen.insert(tenant.to_ascii_lowercase()) {
                bail!("`tenants.{tenant}`: the same tenant id appears twice (ids are compared in any case)");
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

    /// The declared tenants: lower-case tenant id → provider ids.
    pub fn declared_tenants(&self) -> BTreeMap<String, Vec<String>> {
        self.tenants.iter().map(|(t, f)| (t.to_ascii_lowercase(), f.providers.clone())).collect()
    }

    /// The module `m` names (`file`: where it was looked for) and its name
    /// for logs, its bytes checked against its pin.
    fn module_bytes(
        &self,
        key: &str,
        m: &ModuleFile,
        file: &Path,
        stored: &HashMap<String, Vec<u8>>,
    ) -> anyhow::Result<(String, Vec<u8>)> {
        if let (None, None, Some(digest)) = (&m.path, &m.builtin, &m.sha256) {
            let bytes = stored.get(digest).with_context(|| {
                format!("`modules.{key}.sha256`: module {digest} is not in the gateway's module store")
            })?;
            let actual = sha256_hex(bytes);
            if !actual.eq_ignore_ascii_case(digest) {
                bail!("`modules.{key}`: the stored module {digest} has sha256 {actual}");
            }
            return Ok((format!("uploaded-{}", &digest[..digest.len().min(12)]), bytes.clone()));
        }
        if let (None, Some(name)) = (&m.path, &m.builtin) {
            let bytes = fhirgate_builtin::module(name).map_err(|e| anyhow::anyhow!("`modules.{key}.builtin`: {e}"))?;
            let actual = sha256_hex(bytes);
            if let Some(pin) = m.sha256.as_ref().filter(|pin| !pin.eq_ignore_ascii_case(&actual)) {
                bail!("`modules.{key}.sha256` is {pin}, but the built-in module `{name}` has sha256 {actual}");
            }
            return Ok((name.clone(), bytes.to_vec()));
        }
        let bytes = std::fs::read(file).with_context(|| format!("`modules.{key}.path`: reading {}", file.display()))?;
        let actual = sha256_hex(&bytes);
        let pin = m.sha256.as_deref().unwrap_or_default();
        if !actual.eq_ignore_ascii_case(pin) {
            match self.on_pin_mismatch {
                PinMismatch::Refuse => {
                    bail!("`modules.{key}.sha256` is {pin}, but {} has sha256 {actual}", file.display())
                }
                PinMismatch::Warn => tracing::warn!(
                    module = key, expected = %pin, actual = %actual,
                    "module does not match its pin; loading it because on_pin_mismatch = \"warn\""
                ),
            }
        }
        let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or(key).to_owned();
        Ok((name, bytes))
    }

    /// Loads every module and builds the policy. `path` is where the file was
    /// read from; module paths are relative to it.
    pub fn load(self, path: &Path, runtime: &Runtime) -> anyhow::Result<Policy> {
        self.load_with(path, runtime, &HashMap::new())
    }

    /// As [`PolicyFile::load`], with the modules named by digest alone from
    /// `stored` (SHA-256 → bytes).
    pub fn load_with(
        self,
        path: &Path,
        runtime: &Runtime,
        stored: &HashMap<String, Vec<u8>>,
    ) -> anyhow::Result<Policy> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let partner: Arc<str> = self.partner.as_str().into();
        let mut cache: HashMap<(PathBuf, ModuleLimits), Arc<Module>> = HashMap::new();
        let mut bind = |key: &str, m: &ModuleFile, role: Role| -> anyhow::Result<BoundModule> {
            // A built-in module is keyed by a path no file has.
            let file = match (&m.path, &m.builtin, &m.sha256) {
                (Some(path), _, _) => dir.join(path),
                (None, Some(name), _) => PathBuf::from(format!("builtin:{name}")),
                (None, None, Some(digest)) => PathBuf::from(format!("stored:{digest}")),
                (None, None, None) => bail!("`modules.{key}` names no module"),
            };
            let limits = ModuleLimits { memory_mib: m.memory_mib, call_timeout_ms: m.call_timeout_ms };
            let module = match cache.get(&(file.clone(), limits)) {
                Some(module) => module.clone(),
                None => {
                    let (name, bytes) = self.module_bytes(key, m, &file, stored)?;
                    let module = Module::load(runtime, &name, &bytes)
                        .and_then(|module| module.with_limits(limits))
                        .with_context(|| format!("`modules.{key}`"))?;
                    let module = Arc::new(module);
                    cache.insert((file.clone(), limits), module.clone());
                    module
                }
            };
            if !module.exports(role) {
                bail!("`modules.{key}`: {} does not export the {role} interface", file.display());
            }
            let config = m.config.clone().unwrap_or_default();
            let config_json: Arc<str> = serde_json::to_string(&config).context("module configuration")?.into();
            let reuse = match role {
                Role::TokenValidation => Reuse::OFF,
                _ => m.reuse.map_or(Reuse::DEFAULT, |max_requests| Reuse { max_requests }),
            };
            let pool = Pool::new(module.clone(), partner.clone(), config_json.clone(), reuse);
            Ok(BoundModule { module, config_json, cases: m.cases.as_ref().map(|c| dir.join(c)), pool })
        };
        let validator = bind("token-validation", &self.modules.token_validation, Role::TokenValidation)?;
        let router = bind("routing", &self.modules.routing, Role::Routing)?;
        let shaper = bind("shaping", &self.modules.shaping, Role::Shaping)?;
        let mut shadow = |key: &str, m: &ModuleFile, role: Role| -> anyhow::Result<_> {
            let Some(s) = &m.shadow else { return Ok(None) };
            let bound = bind(&format!("{key}.shadow"), s, role)?;
            Ok(Some(Arc::new(shadow::Shadow::new(bound, role, s.sample.unwrap_or(1.0)))))
        };
        let shadows = Shadows {
            validator: shadow("token-validation", &self.modules.token_validation, Role::TokenValidation)?,
            router: shadow("routing", &self.modules.routing, Role::Routing)?,
            shaper: shadow("shaping", &self.modules.shaping, Role::Shaping)?,
        };

        let mut tenant_modules = HashMap::new();
        for (tenant, m) in &self.tenant_modules {
            let key = |role: &str| format!("tenant_modules.{tenant}.{role}");
            let router = m.routing.as_ref().map(|f| bind(&key("routing"), f, Role::Routing)).transpose()?;
            let shaper = m.shaping.as_ref().map(|f| bind(&key("shaping"), f, Role::Shaping)).transpose()?;
            tenant_modules.insert(tenant.to_ascii_lowercase(), TenantModules { router, shaper });
        }

        Ok(Policy {
            partner,
            validator,
            router,
            shaper,
            shadows,
            shaping_on_fault: self.modules.shaping.on_fault.unwrap_or_default(),
            tenant_modules,
            source: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A policy whose routing module is written `routing`.
    fn with_routing(routing: &str) -> anyhow::Result<PolicyFile> {
        let text = format!(
            "schema_version = 1\npartner = \"p\"\n[modules.token-validation]\nbuiltin = \"token-jwt\"\n\
             [modules.routing]\n{routing}\n[modules.shaping]\nbuiltin = \"shaper-fhir\"\n"
        );
        PolicyFile::parse(&text, Path::new("policy.toml"))
    }

    #[test]
    fn a_module_is_a_pinned_file_or_a_built_in_one() {
        let err = |routing: &str| format!("{:#}", with_routing(routing).expect_err("refused"));
        assert!(err("").contains("router-table, router-rules"), "{}", err(""));
        assert!(err("path = \"r.wasm\"").contains("`modules.routing.sha256` is missing"));
        assert!(err("path = \"r.wasm\"\nsha256 = \"00\"\nbuiltin = \"router-table\"").contains("not both"));

        let runtime = Runtime::new(Default::default()).unwrap();
        let policy = with_routing("builtin = \"router-table\"").unwrap().load(Path::new("policy.toml"), &runtime);
        assert_eq!(
            policy.unwrap().router.module.digest().to_string(),
            sha256_hex(fhirgate_builtin::module("router-table").unwrap())
        );
        // A pin on a built-in module must match it.
        let pinned = with_routing(&format!("builtin = \"router-table\"\nsha256 = \"{}\"", "0".repeat(64))).unwrap();
        let e = format!("{:#}", pinned.load(Path::new("policy.toml"), &runtime).err().unwrap());
        assert!(e.contains("the built-in module `router-table` has sha256"), "{e}");
        let unknown = with_routing("builtin = \"router-magic\"").unwrap();
        let e = format!("{:#}", unknown.load(Path::new("policy.toml"), &runtime).err().unwrap());
        assert!(e.contains("no built-in module `router-magic`"), "{e}");
    }
}

//! Activating a partner's policy while the gateway serves.
//!
//! The gateway watches its policy file and the module files it names. When
//! either changes, the new policy is loaded and checked: every module must
//! compile, link against the host's interfaces, export its role, and answer
//! a probe call under its configuration (a trap, a timeout or a 5xx denial
//! means the configuration is not accepted). Only then is it swapped in,
//! whole and at once; requests in flight finish on the policy they started
//! with. A policy that fails is rejected with its reason (log, metric,
//! `GET /admin/modules`) and the active one keeps serving. The policies that
//! served before are kept as a history: `POST /admin/modules/rollback` steps
//! back through it, one policy at a time, and `POST /admin/modules/forward`
//! steps forward again until a new policy is activated.
//!
//! Replicas sharing a database ([`shared`]) serve the newest activation
//! recorded in it: the policy file as deployed, an upload or a rollback made
//! through any of them, each announced to the others.

mod history;
mod shared;
pub use history::{Direction, HISTORY};
use history::{Step, keep_compiled};
pub use shared::SHARED_POLL;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, anyhow};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::directory::Directory;
use crate::policy::{BoundModule, Policy, PolicyFile};
use arc_swap::ArcSwap;
use fhirgate_core::clock::now_seconds;
use fhirgate_core::files::write_atomically;
use fhirgate_sandbox::Runtime;
use fhirgate_sandbox::bindings::shaping::{Exchange, UpstreamRequest};
use fhirgate_sandbox::bindings::types::{self, Claims, FhirVersion, Interaction};
use fhirgate_sandbox::harness::request;
use fhirgate_sandbox::{CallContext, Role};

/// What an activation swaps and checks against: the policy being served,
/// the runtime that loads modules, the directory the policy declares its
/// providers and tenants in.
pub struct Served<'a> {
    pub policy: &'a ArcSwap<Policy>,
    pub runtime: &'a Runtime,
    pub directory: &'a Directory,
}

/// How often the policy file and its modules are looked at.
pub const POLL: Duration = Duration::from_millis(100);

/// Adjusts a policy file as read, before it is loaded (the demo points the
/// demo provider's base URL at the address it bound).
pub type Adjust = Box<dyn Fn(&mut PolicyFile) + Send + Sync>;

/// Where the active policy came from, what it replaced, and what was refused.
pub struct Activation {
    path: PathBuf,
    adjust: Option<Adjust>,
    state: Mutex<State>,
    /// One load at a time: the watcher, the admin API and uploads.
    loading: tokio::sync::Mutex<()>,
    /// Where uploaded modules are kept (`<data_dir>/modules`), if anywhere.
    uploads: Option<PathBuf>,
    /// The database replicas share: modules and activations are kept there.
    shared: Option<fhirgate_store::Store>,
}

/// Why an uploaded module was not activated.
#[derive(Debug)]
pub enum UploadError {
    /// The request was wrong: the role, the digest, no place to keep it.
    Invalid(String),
    /// The module or the policy with it failed its checks; nothing changed.
    Refused(Rejection),
}

/// The largest module accepted by upload.
pub const MAX_UPLOAD_BYTES: usize = 64 * 1024 * 1024;

/// One file as looked at: path, size, modification time and, for the small
/// policy file, a digest of its text.
type Look = (PathBuf, u64, Option<SystemTime>, [u8; 32]);

#[derive(Default)]
struct State {
    /// What the files looked like when last loaded (or refused).
    seen: Vec<Look>,
    /// The policy file's text behind the active policy: a rollback writes
    /// the text of the one it goes back to.
    text: Option<String>,
    /// What the active policy's file declared into the directory.
    serving: Option<Declared>,
    /// The policies that served before (the nearest last) and, after a
    /// rollback, those it stepped back from (the nearest last).
    back: Vec<Step>,
    forward: Vec<Step>,
    /// Seconds since the Unix epoch.
    activated_at: Option<u64>,
    /// Activations and rollbacks since start.
    generation: u64,
    /// The partner, providers and tenants last written into the directory.
    declared: Option<Declared>,
    rejection: Option<Rejection>,
    /// On a shared database: the activation served, and the history as
    /// recorded there (texts, nearest first).
    stored_generation: i64,
    stored_history: (Vec<String>, Vec<String>),
    /// Modules of policies this gateway served, by their text: what the
    /// status shows for a step on a shared database.
    known: Vec<(String, Vec<ModuleStatus>)>,
}

/// A policy file's partner, providers and tenants, as written into the
/// directory.
type Declared = (
    String,
    std::collections::BTreeMap<String, crate::directory::ProviderSpec>,
    std::collections::BTreeMap<String, Vec<String>>,
);

/// A policy that was not activated, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Rejection {
    /// Seconds since the Unix epoch (RFC 3339 in JSON).
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::useconds")]
    pub at: u64,
    pub reason: String,
}

/// What `GET /admin/modules` shows.
#[derive(Debug, Serialize)]
pub struct Status {
    pub policy: String,
    /// Counts activations and rollbacks since the gateway started; on a
    /// database replicas share, the number of the activation served.
    pub generation: u64,
    pub partner: String,
    #[serde(serialize_with = "fhirgate_core::clock::rfc3339::useconds_opt")]
    pub activated_at: Option<u64>,
    pub modules: Vec<ModuleStatus>,
    /// The modules a rollback would serve again (when known), and how many
    /// rollbacks in a row are possible.
    pub previous: Option<Vec<ModuleStatus>>,
    pub rollback_steps: usize,
    /// The modules a step forward would serve again (after a rollback), and
    /// how many steps forward are possible.
    pub next: Option<Vec<ModuleStatus>>,
    pub forward_steps: usize,
    pub last_rejection: Option<Rejection>,
    /// Each shadow candidate's comparison with the active module of its role.
    pub shadows: Vec<crate::policy::shadow::Report>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModuleStatus {
    pub role: &'static str,
    /// The tenant a tenant's own module serves; absent for the partner's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub module: String,
    pub digest: String,
}

fn modules_of(p: &Policy) -> Vec<ModuleStatus> {
    p.bound()
        .into_iter()
        .map(|(role, tenant, b)| ModuleStatus {
            role,
            tenant: tenant.map(str::to_owned),
            module: b.module.name().to_string(),
            digest: b.module.digest().to_string(),
        })
        .collect()
}

impl Activation {
    /// Watches `path`, the policy the gateway started with.
    pub fn new(path: &Path, adjust: Option<Adjust>) -> Self {
        Self::with_uploads(path, adjust, None)
    }

    /// Like [`Activation::new`], keeping modules uploaded through the admin
    /// API in `uploads`.
    pub fn with_uploads(path: &Path, adjust: Option<Adjust>, uploads: Option<PathBuf>) -> Self {
        let activation = Activation {
            path: path.to_owned(),
            adjust,
            state: Mutex::default(),
            loading: tokio::sync::Mutex::new(()),
            uploads,
            shared: None,
        };
        let seen = activation.look().unwrap_or_default();
        activation.lock().seen = seen;
        activation.lock().text = std::fs::read_to_string(path).ok();
        // What the gateway declared from this file when it started.
        if let Ok(mut file) = PolicyFile::read(path) {
            if let Some(adjust) = &activation.adjust {
                adjust(&mut file);
            }
            let declared = (file.partner.clone(), file.providers.clone(), file.declared_tenants());
            let mut state = activation.lock();
            state.serving = Some(declared.clone());
            state.declared = Some(declared);
        }
        activation.lock().activated_at = Some(now_seconds());
        activation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The policy file and the module files it names, as they are now: size,
    /// modification time and (for the small policy file) a digest.
    fn look(&self) -> anyhow::Result<Vec<Look>> {
        let text = std::fs::read(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        let meta = std::fs::metadata(&self.path)?;
        let mut out = vec![(self.path.clone(), meta.len(), meta.modified().ok(), Sha256::digest(&text).into())];
        if let Ok(file) = PolicyFile::parse(&String::from_utf8_lossy(&text), &self.path) {
            let dir = self.path.parent().unwrap_or(Path::new("."));
            for path in file.module_paths() {
                let p = dir.join(path);
                let (len, modified) = match std::fs::metadata(&p) {
                    Ok(meta) => (meta.len(), meta.modified().ok()),
                    Err(_) => (0, None),
                };
                out.push((p, len, modified, [0; 32]));
            }
        }
        Ok(out)
    }

    /// Whether the files changed since they were last loaded or refused.
    pub fn changed(&self) -> bool {
        match self.look() {
            Ok(now) => now != self.lock().seen,
            Err(_) => false,
        }
    }

    pub fn status(&self, gw: &Served<'_>) -> Status {
        let active = gw.policy.load_full();
        let state = self.lock();
        let known = |text: &String| state.known.iter().find(|(t, _)| t == text).map(|(_, m)| m.clone());
        let ((previous, rollback_steps), (next, forward_steps)) = if self.shared.is_some() {
            let (back, forward) = &state.stored_history;
            ((back.first().and_then(known), back.len()), (forward.first().and_then(known), forward.len()))
        } else {
            let last = |steps: &Vec<Step>| {
                let step = steps.last()?;
                step.policy.as_deref().map(modules_of).or_else(|| step.text.as_ref().and_then(known))
            };
            ((last(&state.back), state.back.len()), (last(&state.forward), state.forward.len()))
        };
        Status {
            policy: self.path.display().to_string(),
            generation: if self.shared.is_some() { state.stored_generation.max(0) as u64 } else { state.generation },
            partner: active.partner.to_string(),
            activated_at: state.activated_at,
            modules: modules_of(&active),
            previous,
            rollback_steps,
            next,
            forward_steps,
            last_rejection: state.rejection.clone(),
            shadows: active.shadows.all().map(|s| s.report()).collect(),
        }
    }

    /// Loads the policy file as it is now, checks it, and activates it; on
    /// failure the active policy stays and the reason is kept and returned.
    pub async fn reload(&self, gw: &Served<'_>) -> Result<Status, Rejection> {
        let _one = self.loading.lock().await;
        self.reload_now(gw).await
    }

    /// Reloads if the files changed since they were last looked at.
    pub async fn reload_if_changed(&self, gw: &Served<'_>) {
        let _one = self.loading.lock().await;
        if self.changed() {
            // A file caught half-written fails to load and is looked at
            // again on its next change; the active policy serves meanwhile.
            let _ = self.reload_now(gw).await;
        }
    }

    /// Keeps `bytes` as the module of `role` (`token-validation`, `routing`
    /// or `shaping`) and activates it: the policy file is edited to name it
    /// and reloaded; if the new policy is refused the file is put back.
    pub async fn upload(
        &self,
        gw: &Served<'_>,
        role: &str,
        name: &str,
        bytes: bytes::Bytes,
        sha256: Option<&str>,
    ) -> Result<Status, UploadError> {
        let invalid = |m: String| UploadError::Invalid(m);
        if !matches!(role, "token-validation" | "routing" | "shaping") {
            return Err(invalid(format!("`{role}` is not a role: token-validation, routing or shaping")));
        }
        let valid_name = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        if !valid_name {
            return Err(invalid("`name` is 1–64 letters, digits, `-` or `_`".into()));
        }
        let dir = match (&self.shared, &self.uploads) {
            (Some(_), _) => None,
            (None, Some(dir)) => Some(dir),
            (None, None) => return Err(invalid("Uploading modules needs a data_dir.".into())),
        };
        // Hashing and writing up to 64 MiB is blocking work: off the
        // request threads.
        let hashing = bytes.clone();
        let digest = tokio::task::spawn_blocking(move || fhirgate_core::digest::sha256_hex(&hashing))
            .await
            .map_err(|e| invalid(format!("hashing the module stopped: {e}")))?;
        if sha256.is_some_and(|s| !s.eq_ignore_ascii_case(&digest)) {
            return Err(invalid(format!("The module's sha256 is {digest}, not the one given.")));
        }
        let Some(dir) = dir else {
            return self.upload_shared(gw, role, name, &bytes, &digest).await;
        };
        let _one = self.loading.lock().await;
        let refused = |reason: String| UploadError::Refused(Rejection { at: now_seconds(), reason });
        fhirgate_core::files::private_dir(dir).map_err(|e| refused(format!("{e:#}")))?;
        // Absolute: the policy resolves module paths from its own directory.
        let file = std::path::absolute(dir.join(format!("{name}-{}.wasm", &digest[..16])))
            .map_err(|e| refused(format!("resolving {}: {e}", dir.display())))?;
        let new_file = !file.exists();
        let (path, data) = (file.clone(), bytes.clone());
        tokio::task::spawn_blocking(move || std::fs::write(&path, &data))
            .await
            .map_err(|e| refused(format!("writing {}: {e}", file.display())))?
            .map_err(|e| refused(format!("writing {}: {e}", file.display())))?;
        let before = std::fs::read_to_string(&self.path).map_err(|e| refused(format!("reading the policy: {e}")))?;
        let edited = name_module(&before, role, Some(&file), &digest).map_err(|e| refused(format!("{e:#}")))?;
        write_atomically(&self.path, edited.as_bytes()).map_err(|e| refused(format!("writing the policy: {e}")))?;
        match self.reload_now(gw).await {
            Ok(status) => {
                tracing::info!(role, module = %file.display(), "uploaded module activated");
                Ok(status)
            }
            Err(rejection) => {
                // The file must not name a module that does not serve.
                if let Err(e) = write_atomically(&self.path, before.as_bytes()) {
                    tracing::error!(policy = %self.path.display(), error = %e, "could not restore the policy file");
                }
                if new_file {
                    let _ = std::fs::remove_file(&file);
                }
                self.lock().seen = self.look().unwrap_or_default();
                Err(UploadError::Refused(rejection))
            }
        }
    }

    async fn reload_now(&self, gw: &Served<'_>) -> Result<Status, Rejection> {
        let seen = self.look().unwrap_or_default();
        if let Some(store) = &self.shared {
            return self.reload_shared(gw, store, seen).await;
        }
        match self.prepare(gw).await {
            Ok(prepared) => Ok(self.install(gw, prepared, seen)),
            Err(e) => Err(self.refuse(gw, &e, seen)),
        }
    }

    /// Serves a prepared policy from now on; the one it replaces goes into
    /// the history, and what a rollback had stepped back from is dropped.
    fn install(&self, gw: &Served<'_>, prepared: Prepared, seen: Vec<Look>) -> Status {
        let Prepared { mut policy, text, declared } = prepared;
        policy.shadows.continue_from(&gw.policy.load().shadows);
        let partner = policy.partner.to_string();
        let modules = modules_of(&policy);
        let digests: Vec<String> = modules.iter().map(|m| m.digest[..12].to_owned()).collect();
        let previous = gw.policy.swap(Arc::new(policy));
        // Its modules' kept instances go now, not when its last request ends.
        previous.retire();
        {
            let mut state = self.lock();
            let replaced = modules_of(&previous);
            // The same text naming the same modules again is no step through
            // the history (a module file rebuilt in place is one).
            let same = state.text.as_deref() == Some(text.as_str())
                && replaced.iter().map(|m| &m.digest).eq(modules.iter().map(|m| &m.digest));
            if let Some(before) = state.text.clone() {
                state.remember(&before, replaced);
            }
            state.remember(&text, modules);
            let step = Step {
                policy: Some(previous),
                text: state.text.replace(text),
                declared: state.serving.replace(declared),
            };
            if self.shared.is_none() && !same {
                state.back.push(step);
                let over = state.back.len().saturating_sub(HISTORY);
                state.back.drain(..over);
                keep_compiled(&mut state.back);
                state.forward.clear();
            }
            state.activated_at = Some(now_seconds());
            state.generation += 1;
            state.seen = seen;
        }
        gw.runtime.metrics().policy_event(&partner, "activated");
        tracing::info!(partner, modules = ?digests, "policy activated");
        self.status(gw)
    }

    /// Keeps why a policy was not activated; the active one keeps serving.
    fn refuse(&self, gw: &Served<'_>, e: &anyhow::Error, seen: Vec<Look>) -> Rejection {
        let reason = format!("{e:#}");
        let rejection = Rejection { at: now_seconds(), reason: reason.clone() };
        {
            let mut state = self.lock();
            state.rejection = Some(rejection.clone());
            state.seen = seen;
        }
        let partner = gw.policy.load().partner.to_string();
        gw.runtime.metrics().policy_event(&partner, "rejected");
        tracing::warn!(policy = %self.path.display(), reason, "new policy rejected; the active one keeps serving");
        rejection
    }

    /// The policy file loaded, checked and declared, with its text.
    async fn prepare(&self, gw: &Served<'_>) -> anyhow::Result<Prepared> {
        let text = std::fs::read_to_string(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
        self.prepare_text(gw, text).await
    }

    /// The policy of text `text` (as if it were the policy file) loaded,
    /// checked and declared, with its text.
    async fn prepare_text(&self, gw: &Served<'_>, text: String) -> anyhow::Result<Prepared> {
        let mut file = PolicyFile::parse(&text, &self.path)?;
        if let Some(adjust) = &self.adjust {
            adjust(&mut file);
        }
        for (id, spec) in &file.providers {
            spec.check_loadable(id).with_context(|| format!("`providers.{id}`"))?;
        }
        let (path, runtime) = (self.path.clone(), gw.runtime.clone());
        let loading = file.clone();
        let digests = file.stored_digests();
        let stored = match &self.shared {
            _ if digests.is_empty() => Default::default(),
            Some(store) => store.modules(&digests).await.context("reading uploaded modules from the store")?,
            None => anyhow::bail!(
                "a module named by `sha256` alone is one uploaded to a gateway whose state is in a database \
                 (database_url); name a file with `path`, or a built-in module with `builtin`"
            ),
        };
        // Compiling is CPU work: off the request threads.
        let policy = tokio::task::spawn_blocking(move || loading.load_with(&path, &runtime, &stored))
            .await
            .map_err(|e| anyhow!("loading the modules stopped: {e}"))??;
        check(&policy).await?;
        // The directory is written only when the declarations changed: most
        // edits are to modules.
        let declared: Declared = (file.partner.clone(), file.providers.clone(), file.declared_tenants());
        self.declare(gw, &declared).await?;
        Ok(Prepared { policy, text, declared })
    }

    /// Writes `declared` into the directory unless it is what is there.
    async fn declare(&self, gw: &Served<'_>, declared: &Declared) -> anyhow::Result<()> {
        let before = self.lock().declared.clone();
        if before.as_ref() != Some(declared) {
            let (partner, providers, tenants) = declared;
            gw.directory
                .declare(partner, providers, tenants)
                .await
                .context("in the policy's [providers] and [tenants]")?;
        }
        self.lock().declared = Some(declared.clone());
        Ok(())
    }
}

/// A policy loaded, checked and declared, ready to serve.
struct Prepared {
    policy: Policy,
    /// The text it was loaded from.
    text: String,
    /// What its file declared into the directory.
    declared: Declared,
}

impl State {
    /// Keeps the modules a policy's text names, for the status of a shared
    /// history.
    fn remember(&mut self, text: &str, modules: Vec<ModuleStatus>) {
        self.known.retain(|(t, _)| t != text);
        self.known.push((text.to_owned(), modules));
        let over = self.known.len().saturating_sub(HISTORY);
        self.known.drain(..over);
    }
}

/// `policy` (TOML text) with `modules.<role>` naming `file` (or, without
/// one, the uploaded module) and `digest`; its configuration and cases stay.
fn name_module(policy: &str, role: &str, file: Option<&Path>, digest: &str) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = policy.parse().context("parsing the policy")?;
    let table = doc
        .get_mut("modules")
        .and_then(|m| m.get_mut(role))
        .and_then(|t| t.as_table_like_mut())
        .with_context(|| format!("the policy has no [modules.{role}]"))?;
    table.remove("builtin");
    match file {
        Some(file) => {
            table.insert("path", toml_edit::value(file.display().to_string()));
        }
        None => {
            table.remove("path");
        }
    }
    table.insert("sha256", toml_edit::value(digest));
    Ok(doc.to_string())
}

fn probe_ctx(partner: &Arc<str>, b: &BoundModule) -> CallContext {
    CallContext {
        partner: partner.clone(),
        module: b.module.name().clone(),
        digest: b.module.digest().clone(),
        config_json: b.config_json.clone(),
        issuer: Arc::default(),
        directory: Arc::new(fhirgate_sandbox::StaticDirectory::default()),
        reads: None,
        request_id: "policy-check".into(),
        fixed_now_ms: None,
        counted: false,
    }
}

/// What a policy must pass before it serves: a check call to each module,
/// then each module's own test cases, when the policy names them.
pub async fn check(policy: &Policy) -> anyhow::Result<()> {
    probe(policy).await?;
    let mut shadows: Vec<(String, &BoundModule)> = Vec::new();
    for s in policy.shadows.all() {
        let what = format!("shadow {}", s.role);
        let p = &policy.partner;
        match s.role {
            Role::TokenValidation => probe_validator(p, &s.bound).await,
            Role::Routing => probe_router(p, &s.bound).await,
            Role::Shaping => probe_shaper(p, &s.bound).await,
        }
        .with_context(|| format!("the {what} module"))?;
        shadows.push((what, &s.bound));
    }
    let mut bound: Vec<(String, &BoundModule)> = Vec::new();
    for (role, tenant, b) in policy.bound() {
        let Some(tenant) = tenant else {
            bound.push((role.to_owned(), b));
            continue;
        };
        // A tenant's own module is checked like the partner's.
        let what = format!("tenant {tenant}'s {role}");
        match role {
            "routing" => probe_router(&policy.partner, b).await,
            _ => probe_shaper(&policy.partner, b).await,
        }
        .with_context(|| format!("the {what} module"))?;
        bound.push((what, b));
    }
    for (role, b) in bound.into_iter().chain(shadows) {
        if let Some(dir) = &b.cases {
            let n = fhirgate_sandbox::cases::require_passing(&b.module, dir, &b.config_json)
                .await
                .with_context(|| format!("the {role} module's cases"))?;
            tracing::debug!(role, cases = n, "module cases passed");
        }
    }
    Ok(())
}

/// The routing module's check call: a request for a tenant nobody has.
async fn probe_router(partner: &Arc<str>, r: &BoundModule) -> anyhow::Result<()> {
    let read = request(Interaction::Read, "Patient", Some("policy-check"));
    let claims = Claims {
        client_id: "policy-check".into(),
        tenant_id: "00000000-0000-4000-8000-000000000000".into(),
        scopes: Vec::new(),
        expires_at: u64::MAX,
        token_id: None,
    };
    let outcome = r.module.route(probe_ctx(partner, r), &claims, &read).await.map(|r| r.err());
    verdict("routing", outcome)
}

fn verdict(role: &str, outcome: Result<Option<types::Denial>, fhirgate_sandbox::GuestFault>) -> anyhow::Result<()> {
    match outcome {
        Err(fault) => Err(anyhow!("the {role} module failed its check call: {fault}")),
        // 500 is how modules say their configuration is unusable; 501 and
        // the rest are answers (a shaper refusing a version it does not convert).
        Ok(Some(d)) if d.status == 500 => {
            Err(anyhow!("the {role} module refused its configuration: {} ({})", d.message, d.code))
        }
        Ok(_) => Ok(()),
    }
}

/// One call to each module under its configuration: it must answer, and
/// not with a server error (how modules report a configuration they cannot
/// use).
async fn probe(policy: &Policy) -> anyhow::Result<()> {
    let p = &policy.partner;
    probe_validator(p, &policy.validator).await?;
    probe_router(p, &policy.router).await?;
    probe_shaper(p, &policy.shaper).await
}

/// The validator's check call: a token that is not one.
async fn probe_validator(p: &Arc<str>, v: &BoundModule) -> anyhow::Result<()> {
    let read = request(Interaction::Read, "Patient", Some("policy-check"));
    let outcome = v.module.validate(probe_ctx(p, v), "policy-check", &read).await.map(|r| r.err());
    verdict("token-validation", outcome)
}

/// The shaping module's check call: an STU3 read of a Patient from an STU3
/// provider (any shaper serves a provider of the client's version).
async fn probe_shaper(p: &Arc<str>, s: &BoundModule) -> anyhow::Result<()> {
    let exchange = Exchange {
        client_version: FhirVersion::Stu3,
        upstream_version: FhirVersion::Stu3,
        interaction: Interaction::Read,
        gateway_base: "https://gateway.invalid/stu3".into(),
        upstream_base: "https://provider.invalid/fhir".into(),
    };
    let upstream = UpstreamRequest { path: "Patient/policy-check".into(), params: Vec::new() };
    let outcome = s.module.shape_request(probe_ctx(p, s), &exchange, &upstream).await.map(|r| r.err());
    verdict("shaping", outcome)
}

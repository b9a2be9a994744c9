//! Per-call store state and the host imports modules call.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use fhirgate_core::Version;

use super::bindings::{crypto, directory, host, issuer, types, upstream};
use super::stderr::StderrTail;

/// The token issuer's public facts, as the `issuer` import returns them.
#[derive(Debug, Clone)]
pub struct IssuerFacts {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// JWK Set JSON.
    pub jwks: String,
}

impl Default for IssuerFacts {
    /// No issuer, no audiences and an empty key set: what a module sees
    /// outside a gateway (checks, cases, tests) unless told otherwise.
    fn default() -> Self {
        IssuerFacts { issuer: String::new(), audiences: Vec::new(), jwks: r#"{"keys":[]}"#.into() }
    }
}

/// What the `upstream` import reads through during one call: the provider
/// of the request being shaped (the gateway's provider reads), or fixed
/// answers in the harness ([`FixedReads`]).
pub trait UpstreamReads: Send + Sync + std::fmt::Debug {
    /// Reads `path` (`Type/id`).
    fn read<'a>(
        &'a self,
        path: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, upstream::ReadError>> + Send + 'a>>;

    /// Wall-clock time all reads of one call may take; the call's own
    /// bound is extended by it, since the module waits meanwhile.
    fn budget(&self) -> std::time::Duration;
}

/// What the `directory` import answers: the providers active for a tenant,
/// in approval order, with the FHIR version each speaks. The gateway's
/// directory snapshot in a request; a [`StaticDirectory`] in the harness.
pub trait ActiveProviders: Send + Sync + std::fmt::Debug {
    fn active_providers(&self, tenant: &str) -> Vec<(String, Version)>;
}

/// A fixed directory, for the harness and case files: tenant → providers.
#[derive(Debug, Default)]
pub struct StaticDirectory {
    /// Provider id → its FHIR version (a provider named twice keeps the last).
    providers: HashMap<String, Version>,
    /// Lower-case tenant → provider ids, in the order given.
    tenants: HashMap<String, Vec<String>>,
}

impl StaticDirectory {
    /// A directory where each `(tenant, provider id, FHIR version)` is an
    /// active mapping; a provider id the gateway would refuse is left out.
    pub fn new<'a>(active: impl IntoIterator<Item = (&'a str, &'a str, Version)>) -> StaticDirectory {
        let mut dir = StaticDirectory::default();
        for (tenant, id, version) in active {
            if !fhirgate_core::ids::valid_provider_id(id) {
                continue;
            }
            dir.providers.insert(id.to_owned(), version);
            dir.tenants.entry(tenant.to_ascii_lowercase()).or_default().push(id.to_owned());
        }
        dir
    }
}

impl ActiveProviders for StaticDirectory {
    fn active_providers(&self, tenant: &str) -> Vec<(String, Version)> {
        let Some(ids) = self.tenants.get(&tenant.to_ascii_lowercase()) else { return Vec::new() };
        ids.iter().filter_map(|id| self.providers.get(id).map(|v| (id.clone(), *v))).collect()
    }
}

/// A directory with no tenants, shared: what an idle instance's context
/// points at.
pub(crate) fn no_directory() -> Arc<dyn ActiveProviders> {
    static EMPTY: std::sync::OnceLock<Arc<StaticDirectory>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(StaticDirectory::default())).clone()
}

/// Fixed answers for the module harness: path → body.
#[derive(Debug, Default)]
pub struct FixedReads {
    pub answers: std::collections::HashMap<String, Vec<u8>>,
}

impl UpstreamReads for FixedReads {
    fn read<'a>(
        &'a self,
        path: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, upstream::ReadError>> + Send + 'a>> {
        let answer = if fhirgate_core::ids::is_type_and_id(path) {
            self.answers.get(path).cloned().ok_or(upstream::ReadError::NotFound)
        } else {
            Err(upstream::ReadError::NotAllowed(format!(
                "`{}` is not a `Type/id` path",
                path.chars().take(64).collect::<String>()
            )))
        };
        Box::pin(std::future::ready(answer))
    }

    fn budget(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// What one call may see: its module's config and identity, for logs, and
/// the issuer facts.
#[derive(Debug, Clone)]
pub struct CallContext {
    pub partner: Arc<str>,
    pub module: Arc<str>,
    pub digest: Arc<str>,
    pub config_json: Arc<str>,
    pub issuer: Arc<IssuerFacts>,
    /// The directory view the request routes on.
    pub directory: Arc<dyn ActiveProviders>,
    /// Reads the `upstream` import may make; `None` outside response shaping.
    pub reads: Option<Arc<dyn UpstreamReads>>,
    pub request_id: String,
    /// A fixed clock, in ms since the Unix epoch, for tests; `None` reads the
    /// system clock.
    pub fixed_now_ms: Option<u64>,
    /// Whether the call counts in the metrics: live requests do; checks
    /// before activation and test cases do not.
    pub counted: bool,
}

/// The data of a store: one per instance, its call context replaced at
/// each call.
pub struct GuestState {
    /// Made on the module's first WASI call: most calls of the default
    /// modules make none.
    wasi: Option<WasiCtx>,
    /// The end of what the module wrote to stderr, made with `wasi`.
    stderr: Option<StderrTail>,
    table: ResourceTable,
    pub(crate) limits: CallLimits,
    /// Epoch ticks this call may still run for.
    pub(crate) ticks_left: u64,
    pub(crate) ctx: CallContext,
}

impl GuestState {
    pub fn new(ctx: CallContext, memory_bytes: usize, ticks: u64) -> Self {
        let limits = CallLimits {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .instances(16)
                .tables(16)
                .memories(4)
                .table_elements(100_000)
                .trap_on_grow_failure(true)
                .build(),
            memory_cap: memory_bytes,
            memory_total: 0,
        };
        GuestState { wasi: None, stderr: None, table: ResourceTable::new(), limits, ticks_left: ticks, ctx }
    }

    /// What the module wrote to stderr since [`GuestState::forget_stderr`]
    /// (its last words before a trap: a panic message, a traceback).
    pub fn stderr_text(&self) -> Option<String> {
        self.stderr.as_ref()?.text()
    }

    pub(crate) fn forget_stderr(&self) {
        if let Some(tail) = &self.stderr {
            tail.clear();
        }
    }
}

/// Wasmtime's store limits, plus a cap on the sum of all linear memories of
/// the call (its limits apply to each memory separately).
pub struct CallLimits {
    inner: StoreLimits,
    memory_cap: usize,
    pub(crate) memory_total: usize,
}

impl wasmtime::ResourceLimiter for CallLimits {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        let total = self.memory_total.saturating_sub(current).saturating_add(desired);
        if total > self.memory_cap {
            return Err(wasmtime::Error::msg(format!("forcing trap when growing memory to {total} bytes in all")));
        }
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_total = total;
        }
        Ok(allowed)
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // An empty WASI context: no preopened directories, no environment,
        // no arguments, no network, stdout discarded, the end of stderr kept
        // for the log.
        let stderr = &mut self.stderr;
        let ctx = self.wasi.get_or_insert_with(|| {
            let tail = stderr.get_or_insert_with(StderrTail::default).clone();
            WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .socket_addr_check(|_, _| Box::pin(async { false }))
                .stderr(tail)
                .build()
        });
        WasiCtxView { ctx, table: &mut self.table }
    }
}

impl types::Host for GuestState {}

/// Longest log message or field a module may write; longer ones are cut so
/// a module cannot flood the gateway's logs.
const MAX_LOG_TEXT: usize = 2048;

fn clip(s: &str) -> &str {
    if s.len() <= MAX_LOG_TEXT {
        return s;
    }
    let mut end = MAX_LOG_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl host::Host for GuestState {
    fn log(&mut self, level: host::LogLevel, message: String, fields: Vec<(String, String)>) {
        let c = &self.ctx;
        let fields: Vec<String> = fields.iter().take(32).map(|(k, v)| format!("{}={}", clip(k), clip(v))).collect();
        let fields = fields.join(" ");
        let message = clip(&message);
        macro_rules! emit {
            ($lvl:ident) => {
                tracing::$lvl!(target: "fhirgate::guest", partner = %c.partner, module = %c.module,
                    digest = %&c.digest[..12.min(c.digest.len())], request_id = %c.request_id, fields = %fields, "{message}")
            };
        }
        match level {
            host::LogLevel::Trace => emit!(trace),
            host::LogLevel::Debug => emit!(debug),
            host::LogLevel::Info => emit!(info),
            host::LogLevel::Warn => emit!(warn),
            host::LogLevel::Error => emit!(error),
        }
    }

    fn config(&mut self) -> String {
        self.ctx.config_json.to_string()
    }

    fn now_ms(&mut self) -> u64 {
        if let Some(t) = self.ctx.fixed_now_ms {
            return t;
        }
        fhirgate_core::clock::now_millis() as u64
    }
}

impl issuer::Host for GuestState {
    fn current(&mut self) -> issuer::IssuerInfo {
        let i = &self.ctx.issuer;
        issuer::IssuerInfo { issuer: i.issuer.clone(), audiences: i.audiences.clone(), jwks: i.jwks.clone() }
    }
}

impl crypto::Host for GuestState {
    fn verify(&mut self, alg: String, key: crypto::PublicKey, message: Vec<u8>, signature: Vec<u8>) -> bool {
        crate::crypto::verify_signature(&alg, key, &message, &signature)
    }
}

impl directory::Host for GuestState {
    fn active_providers(&mut self, tenant: String) -> Vec<directory::ProviderInfo> {
        self.ctx
            .directory
            .active_providers(&tenant)
            .into_iter()
            .map(|(id, version)| directory::ProviderInfo { id, fhir_version: crate::wit_version(version) })
            .collect()
    }
}

impl upstream::Host for GuestState {
    async fn read(&mut self, path: String) -> Result<Vec<u8>, upstream::ReadError> {
        let Some(reads) = self.ctx.reads.clone() else {
            return Err(upstream::ReadError::NotAllowed("reads are only available while shaping a response".into()));
        };
        reads.read(&path).await
    }
}

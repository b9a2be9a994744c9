//! Calling one module alone: the same `.wasm` the gateway loads, with the host
//! imports (configuration, issuer facts, clock) supplied by the caller. Used
//! by the gateway's tests and usable from a module's own `cargo test`.
//!
//! ```no_run
//! use fhirgate_sandbox::harness::Harness;
//! let h = Harness::load("target/wasm32-wasip2/guest/fhirgate_router_table.wasm").unwrap()
//!     .config(r#"{"tenants":{}}"#);
//! ```

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::bindings::{routing, shaping, types};
use super::state::{ActiveProviders, FixedReads, StaticDirectory};
use super::{CallContext, GuestFault, IssuerFacts, Limits, Module, Runtime};

/// A module under test and the host imports it will see.
pub struct Harness {
    /// Module calls are asynchronous; the harness drives them to completion
    /// so tests can stay synchronous.
    executor: tokio::runtime::Runtime,
    module: Arc<Module>,
    /// Instances kept between calls, for [`Harness::route_reused`].
    pool: std::sync::OnceLock<Arc<crate::Pool>>,
    config_json: Arc<str>,
    issuer: Arc<IssuerFacts>,
    now_ms: Option<u64>,
    directory: Arc<dyn ActiveProviders>,
    reads: Option<Arc<dyn super::state::UpstreamReads>>,
}

impl Harness {
    /// Loads the component at `path` with the default sandbox limits.
    pub fn load(path: impl AsRef<Path>) -> anyhow::Result<Harness> {
        Self::load_with_limits(path, Limits::default())
    }

    /// Loads the component at `path` with `limits`.
    pub fn load_with_limits(path: impl AsRef<Path>, limits: Limits) -> anyhow::Result<Harness> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let runtime = Runtime::new(limits)?;
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("module");
        let executor = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the harness executor")?;
        Ok(Harness {
            executor,
            module: Arc::new(Module::load(&runtime, name, &bytes)?),
            pool: std::sync::OnceLock::new(),
            config_json: "{}".into(),
            issuer: Arc::default(),
            now_ms: None,
            directory: Arc::new(StaticDirectory::default()),
            reads: None,
        })
    }

    /// The module under its own limits, as a policy's `memory_mib` and
    /// `call_timeout_ms` give them.
    pub fn module_limits(mut self, limits: crate::ModuleLimits) -> anyhow::Result<Self> {
        let module = Arc::try_unwrap(self.module).map_err(|_| anyhow::anyhow!("the module is already in use"))?;
        self.module = Arc::new(module.with_limits(limits)?);
        Ok(self)
    }

    /// The JSON the module's `config` import returns.
    pub fn config(mut self, json: &str) -> Self {
        self.config_json = json.into();
        self
    }

    /// What the `issuer` import returns.
    pub fn issuer(mut self, facts: IssuerFacts) -> Self {
        self.issuer = Arc::new(facts);
        self
    }

    /// Fixes the clock the module sees.
    pub fn now_ms(mut self, now: u64) -> Self {
        self.now_ms = Some(now);
        self
    }

    /// What the `directory` import answers: `(tenant, provider id, FHIR
    /// version)` for each active mapping, in approval order.
    pub fn active_providers(mut self, active: &[(&str, &str, fhirgate_core::Version)]) -> Self {
        self.directory = Arc::new(StaticDirectory::new(active.iter().copied()));
        self
    }

    /// What the `upstream` import answers during `shape_response`: path
    /// (`Type/id`) → body; other paths are not found.
    pub fn upstream_answers(mut self, answers: &[(&str, &str)]) -> Self {
        let answers = answers.iter().map(|(p, b)| ((*p).to_owned(), b.as_bytes().to_vec())).collect();
        self.reads = Some(Arc::new(FixedReads { answers }));
        self
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Runs case files (files, or directories of `*.json`) against the
    /// module, with the harness's configuration for cases that set none:
    /// the module's shipped cases from its own `cargo test`.
    pub fn run_cases(&self, paths: &[impl AsRef<Path>]) -> anyhow::Result<Vec<super::cases::CaseResult>> {
        let paths: Vec<std::path::PathBuf> = paths.iter().map(|p| p.as_ref().to_owned()).collect();
        let files = super::cases::case_files(&paths)?;
        Ok(self.executor.block_on(super::cases::run_files(&self.module, &files, &self.config_json)))
    }

    fn ctx(&self) -> CallContext {
        CallContext {
            partner: "harness".into(),
            module: self.module.name().clone(),
            digest: self.module.digest().clone(),
            config_json: self.config_json.clone(),
            issuer: self.issuer.clone(),
            directory: self.directory.clone(),
            reads: None,
            request_id: "harness".into(),
            fixed_now_ms: self.now_ms,
            counted: true,
        }
    }

    pub fn validate(
        &self,
        token: &str,
        request: &types::Request,
    ) -> Result<Result<types::Claims, types::Denial>, GuestFault> {
        self.executor.block_on(self.module.validate(self.ctx(), token, request))
    }

    pub fn route(
        &self,
        claims: &types::Claims,
        request: &types::Request,
    ) -> Result<Result<routing::Target, types::Denial>, GuestFault> {
        self.executor.block_on(self.module.route(self.ctx(), claims, request))
    }

    /// The pool the `_reused` calls keep their instances in.
    fn pool(&self) -> &Arc<crate::Pool> {
        self.pool.get_or_init(|| {
            crate::Pool::new(self.module.clone(), "harness".into(), self.config_json.clone(), crate::Reuse::DEFAULT)
        })
    }

    /// Calls the routing export on an instance kept between calls for the
    /// claims' tenant, as the gateway keeps them (the default `reuse`).
    pub fn route_reused(
        &self,
        claims: &types::Claims,
        request: &types::Request,
    ) -> Result<Result<routing::Target, types::Denial>, GuestFault> {
        let mut lease = self.pool().lease(&claims.tenant_id);
        self.executor.block_on(lease.route(self.ctx(), claims, request))
    }

    /// Calls the shaping export's response half on an instance kept between
    /// calls, as [`Harness::route_reused`] does.
    pub fn shape_response_reused(
        &self,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> Result<Result<shaping::Shaped, types::Denial>, GuestFault> {
        let mut lease = self.pool().lease("harness");
        self.executor.block_on(lease.shape_response(self.ctx(), exchange, status, body))
    }

    pub fn shape_request(
        &self,
        exchange: &shaping::Exchange,
        request: &shaping::UpstreamRequest,
    ) -> Result<Result<shaping::UpstreamRequest, types::Denial>, GuestFault> {
        self.executor.block_on(self.module.shape_request(self.ctx(), exchange, request))
    }

    pub fn shape_response(
        &self,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> Result<Result<shaping::Shaped, types::Denial>, GuestFault> {
        let mut ctx = self.ctx();
        ctx.reads = self.reads.clone();
        self.executor.block_on(self.module.shape_response(ctx, exchange, status, body))
    }
}

impl Harness {
    /// One instance of the module's shaping export kept for repeated calls
    /// without the pool's bookkeeping: this measures the module alone.
    pub fn warm_shaper(&self) -> anyhow::Result<WarmHarnessShaper<'_>> {
        let shaper = self.executor.block_on(self.module.warm_shaper(self.ctx())).map_err(anyhow::Error::msg)?;
        Ok(WarmHarnessShaper { harness: self, shaper })
    }
}

/// A kept shaping instance driven by the harness's executor.
pub struct WarmHarnessShaper<'h> {
    harness: &'h Harness,
    shaper: super::module::WarmShaper,
}

impl WarmHarnessShaper<'_> {
    pub fn shape_response(
        &mut self,
        exchange: &shaping::Exchange,
        status: u16,
        body: &[u8],
    ) -> anyhow::Result<Result<shaping::Shaped, types::Denial>> {
        self.harness.executor.block_on(self.shaper.shape_response(exchange, status, body)).map_err(anyhow::Error::from)
    }

    /// Bytes of linear memory the kept instance holds now.
    pub fn memory_bytes(&self) -> usize {
        self.shaper.memory_bytes()
    }
}

/// A request record with everything but the interaction and path empty, for
/// tests to fill in.
pub fn request(interaction: types::Interaction, resource_type: &str, resource_id: Option<&str>) -> types::Request {
    let path = match resource_id {
        Some(id) => format!("{resource_type}/{id}"),
        None => resource_type.to_owned(),
    };
    types::Request {
        request_id: "harness".into(),
        method: "GET".into(),
        fhir_version: types::FhirVersion::Stu3,
        interaction,
        resource_type: Some(resource_type.to_owned()),
        resource_id: resource_id.map(str::to_owned),
        path,
        params: Vec::new(),
        headers: Vec::new(),
        body: None,
    }
}

//! Test cases a module ships with: one JSON file each, run against the same
//! `.wasm` the gateway loads, by `fhirgate guest test`, by the gateway before
//! it activates the module, and from Rust tests through [`run_files`].
//!
//! The format is documented in `docs/cases.md`, and given as JSON Schema in
//! `docs/case.schema.json` ([`SCHEMA`]), which every case file is checked
//! against before it runs. A case names one call and what must come of it:
//!
//! ```json
//! {
//!   "name": "a known tenant goes to its hospital",
//!   "config": { "tenants": { "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13": "st-mary" } },
//!   "host": { "now-ms": 1800000000000 },
//!   "route": {
//!     "claims": { "client-id": "app", "tenant-id": "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13" },
//!     "request": { "interaction": "read", "resource-type": "Patient", "resource-id": "p1" }
//!   },
//!   "expect": { "ok": { "provider-id": "st-mary", "path": "Patient/p1" } }
//! }
//! ```
//!
//! - the call: exactly one of `validate` (`token`, `request`), `route`
//!   (`claims`, `request`), `shape-request` (`exchange`, `request`: `path`,
//!   `params`) or `shape-response` (`exchange`, `status`, `body`), with WIT
//!   names; omitted request fields take harmless defaults;
//! - `config`: the module's configuration (else the one it is deployed
//!   with, or `{}`);
//! - `host`: what the host imports answer: `now-ms`, `issuer` (`issuer`,
//!   `audiences`, `jwks`), `active-providers` (tenant → `[{id,
//!   fhir-version}]`), `upstream` (`Type/id` → body);
//! - `expect`: `ok` (every field given must match; arrays element by
//!   element), `denial` (`status`, `code`, `message-contains`, each
//!   optional), or `fault` (`timeout`, `memory`, `trap`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::{Value, json};

use super::bindings::shaping::{Exchange, Shaped, UpstreamRequest};
use fhirgate_core::Version;

use super::bindings::types::{self, Claims, Header, Interaction, Param};
use super::state::{FixedReads, StaticDirectory};
use super::{CallContext, GuestFault, IssuerFacts, Module, wit_version};

/// The case format as JSON Schema (2020-12).
pub const SCHEMA: &str = include_str!("../../../docs/case.schema.json");

/// The schema's `$id`.
const SCHEMA_ID: &str = "urn:fhirgate:schema:case";

type Compiled = (boon::Schemas, boon::SchemaIndex);

fn compiled() -> &'static Result<Compiled, String> {
    static COMPILED: std::sync::OnceLock<Result<Compiled, String>> = std::sync::OnceLock::new();
    COMPILED.get_or_init(|| {
        let value: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
        let (mut schemas, mut compiler) = (boon::Schemas::new(), boon::Compiler::new());
        compiler.add_resource(SCHEMA_ID, value).map_err(|e| e.to_string())?;
        let index = compiler.compile(SCHEMA_ID, &mut schemas).map_err(|e| e.to_string())?;
        Ok((schemas, index))
    })
}

/// Checks a case file's JSON against [`SCHEMA`]: what is wrong with it, one
/// line per place (`at /route/claims: missing properties 'tenant-id'`).
pub fn check_case(value: &Value) -> Result<(), String> {
    let (schemas, index) = compiled().as_ref().map_err(|e| format!("the case schema does not compile: {e}"))?;
    schemas.validate(value, *index).map_err(|e| {
        let mut lines = Vec::new();
        leaves(&e, &mut lines);
        lines.dedup();
        format!("not a case (docs/case.schema.json):\n{}", lines.join("\n"))
    })
}

/// The innermost reasons of a schema error: where, and what is wrong there.
/// A choice none of whose branches is there (the call; the outcome) is one
/// line naming them all.
fn leaves(e: &boon::ValidationError<'_, '_>, out: &mut Vec<String>) {
    let at = |e: &boon::ValidationError<'_, '_>| {
        let at = e.instance_location.to_string();
        if at.is_empty() { "/".to_owned() } else { at }
    };
    if let boon::ErrorKind::OneOf(None) = e.kind {
        let missing: Option<Vec<String>> = e
            .causes
            .iter()
            .map(|c| match &c.kind {
                boon::ErrorKind::Required { want } if c.causes.is_empty() => Some(want.join("', '")),
                _ => None,
            })
            .collect();
        if let Some(missing) = missing {
            out.push(format!("at {}: needs exactly one of '{}'", at(e), missing.join("', '")));
            return;
        }
    }
    if e.causes.is_empty() {
        out.push(format!("at {}: {}", at(e), e.kind));
    }
    for cause in &e.causes {
        leaves(cause, out);
    }
}

/// One case file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Case {
    /// Where an editor finds the schema; not used here.
    #[serde(rename = "$schema", default)]
    pub schema: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub host: HostAnswers,
    #[serde(default)]
    pub validate: Option<ValidateCall>,
    #[serde(default)]
    pub route: Option<RouteCall>,
    #[serde(default)]
    pub shape_request: Option<ShapeRequestCall>,
    #[serde(default)]
    pub shape_response: Option<ShapeResponseCall>,
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HostAnswers {
    pub now_ms: Option<u64>,
    pub issuer: Option<IssuerAnswer>,
    #[serde(default)]
    pub active_providers: BTreeMap<String, Vec<ProviderAnswer>>,
    #[serde(default)]
    pub upstream: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct IssuerAnswer {
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub jwks: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProviderAnswer {
    pub id: String,
    pub fhir_version: Version,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    #[default]
    Read,
    Vread,
    Search,
    Batch,
    Capabilities,
    Other,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RequestSpec {
    pub request_id: Option<String>,
    pub method: Option<String>,
    /// The face the request came in on; STU3 when not given.
    #[serde(default)]
    pub fhir_version: Option<Version>,
    #[serde(default)]
    pub interaction: Kind,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub params: Vec<NameValue>,
    #[serde(default)]
    pub headers: Vec<NameValue>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ValidateCall {
    pub token: String,
    #[serde(default)]
    pub request: RequestSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ClaimsSpec {
    #[serde(default)]
    pub client_id: String,
    pub tenant_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub expires_at: Option<u64>,
    #[serde(default)]
    pub token_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteCall {
    pub claims: ClaimsSpec,
    #[serde(default)]
    pub request: RequestSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ExchangeSpec {
    pub client_version: Version,
    pub upstream_version: Version,
    #[serde(default)]
    pub interaction: Kind,
    #[serde(default = "default_gateway_base")]
    pub gateway_base: String,
    #[serde(default = "default_upstream_base")]
    pub upstream_base: String,
}

fn default_gateway_base() -> String {
    "https://gateway.example/stu3".into()
}
fn default_upstream_base() -> String {
    "https://provider.example/fhir".into()
}
fn default_status() -> u16 {
    200
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct UpstreamRequestSpec {
    pub path: String,
    #[serde(default)]
    pub params: Vec<NameValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShapeRequestCall {
    pub exchange: ExchangeSpec,
    pub request: UpstreamRequestSpec,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShapeResponseCall {
    pub exchange: ExchangeSpec,
    #[serde(default = "default_status")]
    pub status: u16,
    pub body: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Expect {
    pub ok: Option<Value>,
    pub denial: Option<DenialSpec>,
    pub fault: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenialSpec {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message_contains: Option<String>,
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: PathBuf,
    pub name: String,
    /// What differed, one line each, when the case failed.
    pub failure: Option<String>,
}

fn pairs(list: &[NameValue]) -> Vec<(String, String)> {
    list.iter().map(|p| (p.name.clone(), p.value.clone())).collect()
}

fn request(r: &RequestSpec) -> types::Request {
    let path = r.path.clone().unwrap_or_else(|| match (&r.resource_type, &r.resource_id) {
        (Some(t), Some(id)) => format!("{t}/{id}"),
        (Some(t), None) => t.clone(),
        _ => String::new(),
    });
    types::Request {
        request_id: r.request_id.clone().unwrap_or_else(|| "case".into()),
        method: r.method.clone().unwrap_or_else(|| "GET".into()),
        fhir_version: wit_version(r.fhir_version.unwrap_or(Version::Stu3)),
        interaction: match r.interaction {
            Kind::Read => Interaction::Read,
            Kind::Vread => Interaction::Vread,
            Kind::Search => Interaction::Search,
            Kind::Batch => Interaction::Batch,
            Kind::Capabilities => Interaction::Capabilities,
            Kind::Other => Interaction::Other,
        },
        resource_type: r.resource_type.clone(),
        resource_id: r.resource_id.clone(),
        path,
        params: pairs(&r.params).into_iter().map(|(name, value)| Param { name, value }).collect(),
        headers: pairs(&r.headers).into_iter().map(|(name, value)| Header { name, value }).collect(),
        body: r.body.clone().map(String::into_bytes),
    }
}

fn exchange(e: &ExchangeSpec) -> Exchange {
    let r = request(&RequestSpec { interaction: e.interaction, ..Default::default() });
    Exchange {
        client_version: wit_version(e.client_version),
        upstream_version: wit_version(e.upstream_version),
        interaction: r.interaction,
        gateway_base: e.gateway_base.clone(),
        upstream_base: e.upstream_base.clone(),
    }
}

fn params_json(params: &[Param]) -> Value {
    Value::Array(params.iter().map(|p| json!({ "name": p.name, "value": p.value })).collect())
}

/// What a call came to, as JSON in WIT names.
enum Came {
    Ok(Value),
    Denied(types::Denial),
    Fault(GuestFault),
}

fn came<T>(r: Result<Result<T, types::Denial>, GuestFault>, ok: impl FnOnce(T) -> Value) -> Came {
    match r {
        Ok(Ok(v)) => Came::Ok(ok(v)),
        Ok(Err(d)) => Came::Denied(d),
        Err(f) => Came::Fault(f),
    }
}

/// Runs one case against `module`; `config` is used when the case has none.
pub async fn run_case(module: &Module, case: &Case, config: &str) -> Result<(), String> {
    let calls =
        [case.validate.is_some(), case.route.is_some(), case.shape_request.is_some(), case.shape_response.is_some()];
    if calls.iter().filter(|c| **c).count() != 1 {
        return Err("a case names exactly one of validate, route, shape-request, shape-response".into());
    }
    let h = &case.host;
    let directory = StaticDirectory::new(
        h.active_providers
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), p.id.as_str(), p.fhir_version))),
    );
    let issuer = h.issuer.as_ref().map_or_else(IssuerFacts::default, |i| IssuerFacts {
        issuer: i.issuer.clone(),
        audiences: i.audiences.clone(),
        jwks: i.jwks.clone().unwrap_or_else(|| json!({ "keys": [] })).to_string(),
    });
    let ctx = CallContext {
        partner: "case".into(),
        module: module.name().clone(),
        digest: module.digest().clone(),
        config_json: case.config.as_ref().map_or_else(|| config.into(), |c| c.to_string().into()),
        issuer: Arc::new(issuer),
        directory: Arc::new(directory),
        reads: None,
        request_id: "case".into(),
        fixed_now_ms: h.now_ms,
        counted: false,
    };
    let outcome = if let Some(v) = &case.validate {
        came(module.validate(ctx, &v.token, &request(&v.request)).await, |c: Claims| {
            json!({
                "client-id": c.client_id, "tenant-id": c.tenant_id, "scopes": c.scopes,
                "expires-at": c.expires_at, "token-id": c.token_id,
            })
        })
    } else if let Some(r) = &case.route {
        let c = &r.claims;
        let claims = Claims {
            client_id: c.client_id.clone(),
            tenant_id: c.tenant_id.clone(),
            scopes: if c.scopes.is_empty() { vec![c.tenant_id.clone()] } else { c.scopes.clone() },
            expires_at: c.expires_at.unwrap_or(u64::MAX),
            token_id: c.token_id.clone(),
        };
        came(module.route(ctx, &claims, &request(&r.request)).await, |t| {
            let headers: Vec<Value> = t.headers.iter().map(|h| json!({ "name": h.name, "value": h.value })).collect();
            json!({ "provider-id": t.provider_id, "path": t.path, "params": params_json(&t.params), "headers": headers })
        })
    } else if let Some(s) = &case.shape_request {
        let req = UpstreamRequest {
            path: s.request.path.clone(),
            params: pairs(&s.request.params).into_iter().map(|(name, value)| Param { name, value }).collect(),
        };
        came(
            module.shape_request(ctx, &exchange(&s.exchange), &req).await,
            |r| json!({ "path": r.path, "params": params_json(&r.params) }),
        )
    } else if let Some(s) = &case.shape_response {
        let mut ctx = ctx;
        let answers = h.upstream.iter().map(|(p, b)| (p.clone(), b.to_string().into_bytes())).collect();
        ctx.reads = Some(Arc::new(FixedReads { answers }));
        let body = s.body.to_string().into_bytes();
        came(module.shape_response(ctx, &exchange(&s.exchange), s.status, &body).await, |r: Shaped| {
            let body = serde_json::from_slice(&r.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&r.body).into_owned()));
            json!({ "status": r.status, "body": body })
        })
    } else {
        unreachable!("one call is named")
    };
    judge(&case.expect, outcome)
}

fn judge(expect: &Expect, outcome: Came) -> Result<(), String> {
    match (expect, outcome) {
        (Expect { ok: Some(want), .. }, Came::Ok(got)) => {
            let mut diffs = Vec::new();
            differences(want, &got, String::new(), &mut diffs);
            if diffs.is_empty() { Ok(()) } else { Err(diffs.join("\n")) }
        }
        (Expect { denial: Some(want), .. }, Came::Denied(d)) => {
            let mut diffs = Vec::new();
            if want.status.is_some_and(|s| s != d.status) {
                diffs.push(format!("denial status: expected {}, got {}", want.status.unwrap_or_default(), d.status));
            }
            if want.code.as_ref().is_some_and(|c| *c != d.code) {
                diffs.push(format!("denial code: expected {:?}, got {:?}", want.code.as_deref().unwrap_or(""), d.code));
            }
            if let Some(part) = &want.message_contains
                && !d.message.contains(part.as_str())
            {
                diffs.push(format!("denial message: expected it to contain {part:?}, got {:?}", d.message));
            }
            if diffs.is_empty() { Ok(()) } else { Err(diffs.join("\n")) }
        }
        (Expect { fault: Some(kind), .. }, Came::Fault(f)) if f.kind() == kind => Ok(()),
        (expect, outcome) => {
            let wanted = if expect.ok.is_some() {
                "an answer".to_owned()
            } else if let Some(d) = &expect.denial {
                format!("a denial{}", d.status.map(|s| format!(" ({s})")).unwrap_or_default())
            } else if let Some(f) = &expect.fault {
                format!("a {f} fault")
            } else {
                return Err("`expect` names none of ok, denial, fault".into());
            };
            Err(match outcome {
                Came::Ok(v) => format!("expected {wanted}, got an answer: {v}"),
                Came::Denied(d) => format!("expected {wanted}, got a denial: {} {}: {}", d.status, d.code, d.message),
                // The trap's detail: the module's last words (a panic
                // message with its file and line), for its author.
                Came::Fault(GuestFault::Trap(detail)) => {
                    format!("expected {wanted}, got a fault: the module trapped: {detail}")
                }
                Came::Fault(f) => format!("expected {wanted}, got a fault: {f}"),
            })
        }
    }
}

/// Where `got` differs from what `want` asks for: every key of a `want`
/// object must match; arrays must have the same length and match element by
/// element; other values must be equal.
fn differences(want: &Value, got: &Value, at: String, out: &mut Vec<String>) {
    let here = if at.is_empty() { "/".to_owned() } else { at.clone() };
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => differences(wv, gv, format!("{at}/{k}"), out),
                    None => out.push(format!("{at}/{k}: expected {wv}, missing")),
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                differences(wv, gv, format!("{at}/{i}"), out);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            out.push(format!("{here}: expected {} items, got {}: {got}", w.len(), g.len()));
        }
        (w, g) if w == g => {}
        (w, g) => out.push(format!("{here}: expected {w}, got {g}")),
    }
}

/// The case files under `paths`: files as given, directories' `*.json`
/// files in name order.
pub fn case_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("reading {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "json"))
                .collect();
            files.sort();
            out.extend(files);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            bail!("{} does not exist", p.display());
        }
    }
    Ok(out)
}

/// Reads and runs every case in `files` against `module`.
pub async fn run_files(module: &Module, files: &[PathBuf], config: &str) -> Vec<CaseResult> {
    let mut results = Vec::new();
    for file in files {
        let stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let parsed = std::fs::read_to_string(file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| format!("not JSON: {e}")))
            .and_then(|v| check_case(&v).map(|()| v))
            .and_then(|v| serde_json::from_value::<Case>(v).map_err(|e| format!("not a case: {e}")));
        let (name, failure) = match parsed {
            Ok(case) => {
                let name = case.name.clone().unwrap_or(stem);
                (name, run_case(module, &case, config).await.err())
            }
            Err(e) => (stem, Some(e)),
        };
        results.push(CaseResult { file: file.clone(), name, failure });
    }
    results
}

/// Runs the cases in `dir` against `module` and fails with every failure
/// described: what the gateway does before activating a module.
pub async fn require_passing(module: &Module, dir: &Path, config: &str) -> anyhow::Result<usize> {
    let files = case_files(&[dir.to_owned()])?;
    if files.is_empty() {
        bail!("{} holds no case files", dir.display());
    }
    let failed: Vec<String> = run_files(module, &files, config)
        .await
        .into_iter()
        .filter_map(|r| r.failure.map(|f| format!("case `{}` ({}): {f}", r.name, r.file.display())))
        .collect();
    if !failed.is_empty() {
        bail!("{} of {} cases failed:\n{}", failed.len(), files.len(), failed.join("\n"));
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_each_path() {
        let want = json!({"a": 1, "b": [{"c": "x"}], "d": {"e": true}});
        let got = json!({"a": 2, "b": [{"c": "y", "z": 0}], "extra": 1});
        let mut out = Vec::new();
        differences(&want, &got, String::new(), &mut out);
        assert_eq!(
            out,
            vec!["/a: expected 1, got 2", "/b/0/c: expected \"x\", got \"y\"", "/d: expected {\"e\":true}, missing"]
        );
        let mut out = Vec::new();
        differences(&json!([1, 2]), &json!([1]), String::new(), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with("/: expected 2 items, got 1"));
    }

    #[test]
    fn a_case_file_reads_with_wit_names() {
        let case: Case = serde_json::from_value(json!({
            "name": "x",
            "host": {"now-ms": 5, "active-providers": {"t": [{"id": "p", "fhir-version": "r4"}]}},
            "route": {"claims": {"tenant-id": "t"}, "request": {"interaction": "search", "resource-type": "Patient"}},
            "expect": {"denial": {"status": 403}}
        }))
        .unwrap();
        let r = request(&case.route.as_ref().unwrap().request);
        assert_eq!(r.path, "Patient");
        assert!(matches!(r.interaction, Interaction::Search));
        assert!(serde_json::from_value::<Case>(json!({"expect": {}, "bogus": 1})).is_err());
    }
}

//! fhirgate-twins: the default policy modules' own code (`token-jwt`,
//! `router-table`, `shaper-fhir`), compiled into the host and answering the
//! same role calls as the modules, with the same configuration and the same
//! host facts (issuer, directory, upstream reads). It is the native baseline
//! the sandbox's cost is measured against: `fhirgate serve --native-twins`
//! runs these instead of the built-in modules whose digests they stand for
//! (the compare benchmark's system E). Partners' modules always run in the
//! sandbox.
//!
//! Each call does what the module does on its side of the boundary: the
//! configuration is parsed from its JSON on every call, the host records
//! become the SDK's types and back (the module's lifting and lowering), and
//! the answer is the one the module's own functions give.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use fhirgate_core::digest::sha256_hex;
use fhirgate_guest_sdk::types as guest;
use fhirgate_sandbox::bindings::{routing, shaping, types as host};
use fhirgate_sandbox::twin::{Answering, Twin, Twins};
use fhirgate_sandbox::{Answer, Ask, CallContext};
use fhirgate_shaper_fhir::wit as guest_shaping;

/// The twins of the built-in modules, by the digest of each module built
/// into this binary.
pub struct Builtins {
    by_digest: HashMap<String, Arc<dyn Twin>>,
}

impl Builtins {
    /// The twins of every built-in module this binary carries (none when it
    /// was built without its modules).
    pub fn new() -> Arc<Builtins> {
        let twins: [(&str, Arc<dyn Twin>); 3] = [
            ("token-jwt", Arc::new(TokenJwt)),
            ("router-table", Arc::new(RouterTable)),
            ("shaper-fhir", Arc::new(ShaperFhir)),
        ];
        let by_digest = twins
            .into_iter()
            .filter_map(|(name, twin)| Some((sha256_hex(fhirgate_builtin::module(name).ok()?), twin)))
            .collect();
        Arc::new(Builtins { by_digest })
    }

    /// How many built-in modules have a twin here.
    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

impl Twins for Builtins {
    fn twin(&self, digest: &str) -> Option<Arc<dyn Twin>> {
        self.by_digest.get(digest).cloned()
    }
}

fn deny(status: u16, code: &str, message: impl Into<String>) -> host::Denial {
    host::Denial { status, code: code.into(), message: message.into() }
}

/// A call the module does not answer (it exports another role).
fn not_exported() -> host::Denial {
    deny(500, "not-exported", "the module does not export this call")
}

/// The module's configuration, parsed as the SDK's `config()` does.
fn config<T: serde::de::DeserializeOwned>(ctx: &CallContext, code: &str) -> Result<T, host::Denial> {
    serde_json::from_str(&ctx.config_json).map_err(|e| deny(500, code, format!("module configuration is invalid: {e}")))
}

/// The default token validator.
struct TokenJwt;

impl Twin for TokenJwt {
    fn answer<'a>(&'a self, ctx: &'a CallContext, ask: Ask<'a>) -> Answering<'a> {
        let answer = match ask {
            Ask::Validate { token, .. } => validate(ctx, token),
            _ => Err(not_exported()),
        };
        Box::pin(std::future::ready(answer))
    }
}

fn validate(ctx: &CallContext, token: &str) -> Result<Answer, host::Denial> {
    let rules: fhirgate_token_jwt::Config = config(ctx, "server_error")?;
    let now_ms = ctx.fixed_now_ms.unwrap_or_else(|| fhirgate_core::clock::now_millis() as u64);
    let facts = &ctx.issuer;
    let context = fhirgate_token_jwt::Context {
        config: &rules,
        issuer: &facts.issuer,
        audiences: &facts.audiences,
        jwks: &facts.jwks,
        now_seconds: now_ms / 1000,
    };
    let claims = fhirgate_token_jwt::check(token, &context).map_err(denial)?;
    Ok(Answer::Claims(host::Claims {
        client_id: claims.client_id,
        tenant_id: claims.tenant_id,
        scopes: claims.scopes,
        expires_at: claims.expires_at,
        token_id: claims.token_id,
    }))
}

/// The default table router.
struct RouterTable;

impl Twin for RouterTable {
    fn answer<'a>(&'a self, ctx: &'a CallContext, ask: Ask<'a>) -> Answering<'a> {
        let answer = match ask {
            Ask::Route { claims, request } => route(ctx, claims, request),
            _ => Err(not_exported()),
        };
        Box::pin(std::future::ready(answer))
    }
}

fn route(ctx: &CallContext, claims: &host::Claims, request: &host::Request) -> Result<Answer, host::Denial> {
    let config: fhirgate_router_table::Config = config(ctx, "module-config")?;
    let listed = config.tenants.keys().any(|t| t.eq_ignore_ascii_case(&claims.tenant_id));
    let active: Vec<String> = if listed {
        Vec::new()
    } else {
        ctx.directory.active_providers(&claims.tenant_id).into_iter().map(|(id, _)| id).collect()
    };
    let target = fhirgate_router_table::decide(&config, &guest_claims(claims), &guest_request(request), &active)
        .map_err(denial)?;
    Ok(Answer::Target(routing::Target {
        provider_id: target.provider_id,
        path: target.path,
        params: target.params.into_iter().map(|p| host::Param { name: p.name, value: p.value }).collect(),
        headers: target.headers.into_iter().map(|h| host::Header { name: h.name, value: h.value }).collect(),
    }))
}

/// The default shaper.
struct ShaperFhir;

impl Twin for ShaperFhir {
    fn answer<'a>(&'a self, ctx: &'a CallContext, ask: Ask<'a>) -> Answering<'a> {
        match ask {
            Ask::ShapeRequest { exchange, request } => {
                let upstream = guest_shaping::UpstreamRequest {
                    path: request.path.clone(),
                    params: request.params.iter().map(guest_param).collect(),
                };
                let answer = fhirgate_shaper_fhir::request::shape(&guest_exchange(exchange), upstream)
                    .map(|r| {
                        Answer::Request(shaping::UpstreamRequest {
                            path: r.path,
                            params: r
                                .params
                                .into_iter()
                                .map(|p| host::Param { name: p.name, value: p.value })
                                .collect(),
                        })
                    })
                    .map_err(denial);
                Box::pin(std::future::ready(answer))
            }
            Ask::ShapeResponse { exchange, status, body } => Box::pin(shape_response(ctx, exchange, status, body)),
            _ => Box::pin(std::future::ready(Err(not_exported()))),
        }
    }
}

/// Records the paths a shaping asks to read, answering none.
#[derive(Default)]
struct Recording(RefCell<Vec<String>>);

impl fhirgate_shaper_fhir::response::Lookup for Recording {
    fn read(&self, path: &str) -> Option<serde_json::Value> {
        self.0.borrow_mut().push(path.to_owned());
        None
    }
}

/// Answers reads from what was read before.
struct Read(HashMap<String, serde_json::Value>);

impl fhirgate_shaper_fhir::response::Lookup for Read {
    fn read(&self, path: &str) -> Option<serde_json::Value> {
        self.0.get(path).cloned()
    }
}

/// The module reads through the host while it shapes; natively the reads
/// are asynchronous, so an answer that needs any is shaped twice: once to
/// learn which, then with what they returned.
async fn shape_response(
    ctx: &CallContext,
    exchange: &shaping::Exchange,
    status: u16,
    body: &[u8],
) -> Result<Answer, host::Denial> {
    let exchange = guest_exchange(exchange);
    let (first, wanted) = {
        let recording = Recording::default();
        let shaped = fhirgate_shaper_fhir::response::shape_with(&exchange, status, body, &recording);
        (shaped, recording.0.into_inner())
    };
    let shaped = match (&ctx.reads, wanted.is_empty()) {
        (Some(reads), false) => {
            let mut answers = HashMap::new();
            for path in wanted {
                if let Ok(body) = reads.read(&path).await
                    && let Ok(value) = serde_json::from_slice(&body)
                {
                    answers.insert(path, value);
                }
            }
            fhirgate_shaper_fhir::response::shape_with(&exchange, status, body, &Read(answers))
        }
        _ => first,
    };
    let shaped = shaped.map_err(denial)?;
    Ok(Answer::Shaped(shaping::Shaped { status: shaped.status, body: shaped.body }))
}

fn denial(d: guest::Denial) -> host::Denial {
    host::Denial { status: d.status, code: d.code, message: d.message }
}

fn guest_version(v: host::FhirVersion) -> guest::FhirVersion {
    match v {
        host::FhirVersion::Dstu2 => guest::FhirVersion::Dstu2,
        host::FhirVersion::Stu3 => guest::FhirVersion::Stu3,
        host::FhirVersion::R4 => guest::FhirVersion::R4,
    }
}

fn guest_interaction(i: host::Interaction) -> guest::Interaction {
    match i {
        host::Interaction::Read => guest::Interaction::Read,
        host::Interaction::Vread => guest::Interaction::Vread,
        host::Interaction::Search => guest::Interaction::Search,
        host::Interaction::Batch => guest::Interaction::Batch,
        host::Interaction::Capabilities => guest::Interaction::Capabilities,
        host::Interaction::Other => guest::Interaction::Other,
    }
}

fn guest_param(p: &host::Param) -> guest::Param {
    guest::Param { name: p.name.clone(), value: p.value.clone() }
}

fn guest_claims(c: &host::Claims) -> guest::Claims {
    guest::Claims {
        client_id: c.client_id.clone(),
        tenant_id: c.tenant_id.clone(),
        scopes: c.scopes.clone(),
        expires_at: c.expires_at,
        token_id: c.token_id.clone(),
    }
}

fn guest_request(r: &host::Request) -> guest::Request {
    guest::Request {
        request_id: r.request_id.clone(),
        method: r.method.clone(),
        fhir_version: guest_version(r.fhir_version),
        interaction: guest_interaction(r.interaction),
        resource_type: r.resource_type.clone(),
        resource_id: r.resource_id.clone(),
        path: r.path.clone(),
        params: r.params.iter().map(guest_param).collect(),
        headers: r.headers.iter().map(|h| guest::Header { name: h.name.clone(), value: h.value.clone() }).collect(),
        body: r.body.clone(),
    }
}

fn guest_exchange(e: &shaping::Exchange) -> guest_shaping::Exchange {
    guest_shaping::Exchange {
        client_version: guest_version(e.client_version),
        upstream_version: guest_version(e.upstream_version),
        interaction: guest_interaction(e.interaction),
        gateway_base: e.gateway_base.clone(),
        upstream_base: e.upstream_base.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fhirgate_core::Version;
    use fhirgate_sandbox::bindings::types::{Claims, FhirVersion, Interaction, Param};
    use fhirgate_sandbox::harness::request;
    use fhirgate_sandbox::{CallContext, IssuerFacts, Module, Runtime, StaticDirectory};

    use super::*;

    const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
    const LISTED: &str = "7a1d4e2b-9c3f-4b8a-8e5d-2f6c0b9a1d37";

    /// The built-in module `name` in the sandbox, and its twin.
    fn both(name: &str) -> (Module, Module) {
        let bytes = fhirgate_builtin::module(name).expect("the built-in modules (`cargo build-guests` first)");
        let sandboxed = Module::load(&Runtime::new(Default::default()).unwrap(), name, bytes).unwrap();
        let native_runtime = Runtime::new(Default::default()).unwrap();
        native_runtime.run_natively(Builtins::new());
        assert!(native_runtime.twin(&sha256_hex(bytes)).is_some(), "no twin for {name}");
        let native = Module::load(&native_runtime, name, bytes).unwrap();
        (sandboxed, native)
    }

    fn ctx(module: &Module, config: serde_json::Value) -> CallContext {
        CallContext {
            partner: "p".into(),
            module: module.name().clone(),
            digest: module.digest().clone(),
            config_json: config.to_string().into(),
            issuer: Arc::new(IssuerFacts::default()),
            directory: Arc::new(StaticDirectory::new([(TENANT, "hospital-b", Version::R4)])),
            reads: None,
            request_id: "r".into(),
            fixed_now_ms: Some(1_700_000_000_000),
            counted: false,
        }
    }

    fn claims(tenant: &str) -> Claims {
        Claims {
            client_id: "app".into(),
            tenant_id: tenant.into(),
            scopes: vec![tenant.into()],
            expires_at: 1_800_000_000,
            token_id: None,
        }
    }

    #[tokio::test]
    async fn the_twins_answer_as_the_modules_do() {
        let (module, twin) = both("router-table");
        let config = serde_json::json!({ "tenants": { LISTED: "hospital-a" } });
        let mut search = request(Interaction::Search, "Patient", None);
        search.params = vec![Param { name: "name".into(), value: "chau".into() }];
        let read = request(Interaction::Read, "Patient", Some("p1"));
        let other = request(Interaction::Other, "Patient", None);
        for tenant in [TENANT, LISTED, "00000000-0000-4000-8000-000000000000"] {
            for r in [&read, &search, &other] {
                let a = module.route(ctx(&module, config.clone()), &claims(tenant), r).await.unwrap();
                let b = twin.route(ctx(&twin, config.clone()), &claims(tenant), r).await.unwrap();
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{tenant} {:?}", r.interaction);
            }
        }
        let bad = serde_json::json!({ "tenants": 3 });
        let a = module.route(ctx(&module, bad.clone()), &claims(TENANT), &read).await.unwrap().unwrap_err();
        let b = twin.route(ctx(&twin, bad), &claims(TENANT), &read).await.unwrap().unwrap_err();
        assert_eq!((a.status, a.code), (b.status, b.code));

        let (module, twin) = both("shaper-fhir");
        let exchange = shaping::Exchange {
            client_version: FhirVersion::Dstu2,
            upstream_version: FhirVersion::R4,
            interaction: Interaction::Search,
            gateway_base: "http://gw/dstu2".into(),
            upstream_base: "http://p/fhir".into(),
        };
        let upstream = shaping::UpstreamRequest {
            path: "MedicationOrder".into(),
            params: vec![Param { name: "patient".into(), value: "p1".into() }],
        };
        let a = module.shape_request(ctx(&module, serde_json::json!({})), &exchange, &upstream).await.unwrap();
        let b = twin.shape_request(ctx(&twin, serde_json::json!({})), &exchange, &upstream).await.unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let bundle = serde_json::json!({
            "resourceType": "Bundle", "type": "searchset", "total": 1,
            "link": [{ "relation": "self", "url": "http://p/fhir/Patient?name=chau" }],
            "entry": [{ "fullUrl": "http://p/fhir/Patient/p1", "resource": {
                "resourceType": "Patient", "id": "p1", "name": [{ "family": "Chau", "given": ["Hugh"] }],
                "generalPractitioner": [{ "reference": "Practitioner/d1", "display": "Dr Ada" }] } }]
        })
        .to_string();
        for (status, body) in [(200, bundle.as_str()), (200, "not json"), (404, "{}"), (503, "<html/>")] {
            let a = module.shape_response(ctx(&module, serde_json::json!({})), &exchange, status, body.as_bytes());
            let b = twin.shape_response(ctx(&twin, serde_json::json!({})), &exchange, status, body.as_bytes());
            let (a, b) = (a.await.unwrap(), b.await.unwrap());
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{status} {body}");
        }
    }
}

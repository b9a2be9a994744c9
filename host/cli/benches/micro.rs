//! Micro-benchmarks (criterion) of the parts a request pays for, each beside
//! its baseline in the same run:
//!
//! - a fresh module instance plus one call (a module with `reuse = 0`, and
//!   every token check), and the same call on an instance kept between
//!   requests (the default): the table router on a read, the default shaper
//!   on a ~1 KB and a ~2 KB Patient;
//! - the token check: warm (a verdict-cache hit, what a repeat token costs),
//!   cold (a fresh validator instance, its signature checked through the
//!   host's crypto import) and the same check compiled natively;
//! - shaping in the module (a warm instance) against the same code compiled
//!   natively, on a ~2 KB Patient and a ~170 KB searchset.
//!
//! Criterion prints each estimate; a summary of medians and ratios with the
//! targets follows. Run with
//! `cargo build-guests && cargo bench -p fhirgate --bench micro`.

mod common;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use fhirgate_devtools::demo::data::{PATIENT_COUNT, patient};
use fhirgate_gateway::oauth::token::AuthServer;
use fhirgate_gateway::oauth::{ClientRegistry, SigningKey};
use fhirgate_guest_sdk::types::{FhirVersion, Interaction};
use fhirgate_sandbox::IssuerFacts;
use fhirgate_sandbox::bindings::shaping as host;
use fhirgate_sandbox::bindings::types::{FhirVersion as HostVersion, Interaction as HostInteraction};
use fhirgate_sandbox::harness::{Harness, request};
use fhirgate_shaper_fhir::wit as guest;
use http::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
const ISSUER: &str = "http://127.0.0.1:8080";
const UPSTREAM: &str = "http://hospital.example/fhir";
const GATEWAY: &str = "http://gateway.example/stu3";

/// An R4 searchset of the first demo patients, at least `bytes` long.
fn searchset(bytes: usize) -> Vec<u8> {
    let mut n = 50;
    loop {
        let body = serde_json::to_vec(&common::searchset(UPSTREAM, n)).unwrap();
        if body.len() >= bytes {
            return body;
        }
        n += 5;
    }
}

fn instantiation_and_call(c: &mut Criterion) {
    let harness = Harness::load(common::guest_wasm("fhirgate_shaper_fhir")).unwrap();
    let exchange = host_exchange(HostInteraction::Read);
    let mut group = c.benchmark_group("instantiation+call");
    // The smallest call a request makes: the table router on a read.
    let router = Harness::load(common::guest_wasm("fhirgate_router_table"))
        .unwrap()
        .config(&json!({ "tenants": { TENANT: "hospital-a" } }).to_string());
    let claims = common::claims(TENANT);
    let read = request(HostInteraction::Read, "Patient", Some("pat-001"));
    group.bench_function("router", |b| b.iter(|| black_box(router.route(&claims, &read).unwrap().unwrap())));
    // The same call on an instance kept for the tenant, as the gateway
    // reuses them: taken from its pool, called, given back.
    group.bench_function("router-reused", |b| {
        b.iter(|| black_box(router.route_reused(&claims, &read).unwrap().unwrap()))
    });
    for (name, body) in [("patient-2kb", full_patient()), ("patient-1kb", serde_json::to_vec(&patient(0)).unwrap())] {
        group.bench_function(name, |b| {
            b.iter(|| black_box(harness.shape_response(&exchange, 200, black_box(&body)).unwrap().unwrap()))
        });
        group.bench_function(format!("{name}-reused"), |b| {
            b.iter(|| black_box(harness.shape_response_reused(&exchange, 200, black_box(&body)).unwrap().unwrap()))
        });
    }
    group.finish();
}

fn full_patient() -> Vec<u8> {
    serde_json::to_vec(&patient(PATIENT_COUNT)).unwrap()
}

fn host_exchange(interaction: HostInteraction) -> host::Exchange {
    host::Exchange {
        client_version: HostVersion::Stu3,
        upstream_version: HostVersion::R4,
        interaction,
        gateway_base: GATEWAY.into(),
        upstream_base: UPSTREAM.into(),
    }
}

fn guest_exchange(interaction: Interaction) -> guest::Exchange {
    guest::Exchange {
        client_version: FhirVersion::Stu3,
        upstream_version: FhirVersion::R4,
        interaction,
        gateway_base: GATEWAY.into(),
        upstream_base: UPSTREAM.into(),
    }
}

fn token_check(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let secret = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let mut clients = ClientRegistry::default();
    clients.add("app", "Bench", secret, &[TENANT.to_owned()]);
    let audiences = vec![format!("{ISSUER}/stu3"), format!("{ISSUER}/dstu2")];
    let auth = AuthServer::new(clients, SigningKey::generate().unwrap(), ISSUER.into(), audiences, 3600);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/x-www-form-urlencoded".parse().unwrap());
    let body = format!("grant_type=client_credentials&client_id=app&client_secret={secret}&scope={TENANT}");
    let answer = runtime.block_on(auth.token(&headers, None, body.as_bytes(), "127.0.0.1".parse().unwrap())).unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let facts = auth.facts();
    let harness = Harness::load(common::guest_wasm("fhirgate_token_jwt"))
        .unwrap()
        .config(r#"{"leeway_seconds": 30}"#)
        .issuer(IssuerFacts::clone(&facts));
    let req = request(HostInteraction::Read, "Patient", Some("pat-001"));
    let config = fhirgate_token_jwt::Config { leeway_seconds: 30, required_scopes: Vec::new() };

    let mut group = c.benchmark_group("token-check");
    group.bench_function("cold-module", |b| b.iter(|| black_box(harness.validate(&token, &req).unwrap().unwrap())));
    group.bench_function("native", |b| {
        b.iter(|| assert!(black_box(common::native_check(black_box(&token), &config, &facts))))
    });
    // What a request whose token was seen before pays: the gateway's verdict
    // cache, keyed by the token's SHA-256 and the validator's digest.
    let cache: quick_cache::sync::Cache<([u8; 32], Arc<str>), Arc<String>> = quick_cache::sync::Cache::new(50_000);
    let digest: Arc<str> = harness.module().digest().clone();
    cache.insert((Sha256::digest(token.as_bytes()).into(), digest.clone()), Arc::new("claims".into()));
    group.bench_function("warm", |b| {
        b.iter(|| {
            let key = (Sha256::digest(black_box(&token).as_bytes()).into(), digest.clone());
            black_box(cache.get(&key).unwrap())
        })
    });
    group.finish();
}

fn shaping(c: &mut Criterion) {
    let harness = Harness::load(common::guest_wasm("fhirgate_shaper_fhir")).unwrap();
    let mut warm = harness.warm_shaper().unwrap();
    let instantiated = warm.memory_bytes();
    let mut group = c.benchmark_group("shaping");
    for (name, body, interaction, host_interaction) in [
        ("patient-2kb", full_patient(), Interaction::Read, HostInteraction::Read),
        ("searchset-170kb", searchset(170 * 1024), Interaction::Search, HostInteraction::Search),
    ] {
        let (ge, he) = (guest_exchange(interaction), host_exchange(host_interaction));
        // Both must agree before their speed is compared.
        let native_out = fhirgate_shaper_fhir::response::shape(&ge, 200, &body).unwrap();
        let guest_out = warm.shape_response(&he, 200, &body).unwrap().unwrap();
        assert!(native_out.body == guest_out.body, "the module and the native code disagree on {name}");
        // An instance whose memory grew during a call is not kept for the next request.
        println!(
            "shaping {name}: linear memory {} KiB after instantiation, {} KiB after the call",
            instantiated / 1024,
            warm.memory_bytes() / 1024
        );
        group.bench_function(format!("{name}/native"), |b| {
            b.iter(|| black_box(fhirgate_shaper_fhir::response::shape(&ge, 200, black_box(&body)).unwrap()))
        });
        group.bench_function(format!("{name}/module"), |b| {
            b.iter(|| black_box(warm.shape_response(&he, 200, black_box(&body)).unwrap().unwrap()))
        });
    }
    group.finish();
}

/// Criterion's median estimate of a benchmark measured in this run (since
/// `started`), in µs.
fn median_us(id: &str, started: std::time::SystemTime) -> Option<f64> {
    let home = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| common::target_dir().join("criterion"));
    let file = home.join(id).join("new/estimates.json");
    if std::fs::metadata(&file).and_then(|m| m.modified()).ok()? < started {
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some(v["median"]["point_estimate"].as_f64()? / 1000.0)
}

fn summary(started: std::time::SystemTime) {
    let median_us = |id: &str| median_us(id, started);
    println!("\nsummary (criterion medians)");
    let show = |label: &str, id: &str, target: Option<f64>| {
        if let Some(us) = median_us(id) {
            let verdict = target.map(|t| format!("  target ≤ {t} µs: {}", if us <= t { "met" } else { "missed" }));
            println!("  {label:<46} {us:>10.2} µs{}", verdict.unwrap_or_default());
        }
    };
    show("instantiation + call, table router on a read", "instantiation+call/router", Some(20.0));
    show("instantiation + call, shaping a 1 KB Patient", "instantiation+call/patient-1kb", Some(20.0));
    show("instantiation + call, shaping a 2 KB Patient", "instantiation+call/patient-2kb", Some(20.0));
    show("call on a kept instance, table router on a read", "instantiation+call/router-reused", Some(5.0));
    show("call on a kept instance, shaping a 1 KB Patient", "instantiation+call/patient-1kb-reused", None);
    show("call on a kept instance, shaping a 2 KB Patient", "instantiation+call/patient-2kb-reused", None);
    show("token check, warm (verdict cache)", "token-check/warm", Some(5.0));
    show("token check, cold (fresh module + host crypto)", "token-check/cold-module", None);
    show("token check, native", "token-check/native", None);
    for size in ["patient-2kb", "searchset-170kb"] {
        if let (Some(native), Some(module)) =
            (median_us(&format!("shaping/{size}_native")), median_us(&format!("shaping/{size}_module")))
        {
            let ratio = module / native;
            println!(
                "  shaping {size:<38} {module:>10.2} µs module / {native:.2} µs native = {ratio:.2}×  target ≤ 1.30×: {}",
                if ratio <= 1.3 { "met" } else { "missed" }
            );
        }
    }
}

fn main() {
    let started = std::time::SystemTime::now();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
        .configure_from_args();
    instantiation_and_call(&mut c);
    token_check(&mut c);
    shaping(&mut c);
    c.final_summary();
    summary(started);
}

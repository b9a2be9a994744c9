//! The same router written in Rust, JavaScript and Python: the default table
//! router and its twins (`guest/js/router-table`, `guest/python/router-table`),
//! which pass the same cases. Printed per language, with the ratio to Rust
//! measured in the same run:
//!
//! - the component's size;
//! - compiling it (what loading a module costs once, before the artifact
//!   cache has it), and loading it from the artifact cache (what a restart
//!   or a rollback costs, with a `data_dir`);
//! - a fresh instance plus one call (a module with `reuse = 0`, and the first
//!   request of each kept instance);
//! - one call on a kept instance (what most requests cost);
//! - the instance's linear memory after a call.
//!
//! The JavaScript and Python components are built first with the toolchains
//! `tests/setup.sh` installs (`node guest/js/build.mjs`, `bash
//! guest/python/build.sh`). Run: `cargo bench -p fhirgate --bench languages`.
//! Each call timing is the median of 30 rounds of 20 calls (`common::measure`).

mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fhirgate_sandbox::bindings::types::Interaction;
use fhirgate_sandbox::harness::{Harness, request};
use fhirgate_sandbox::metrics::ModuleLabels;
use fhirgate_sandbox::{Limits, Module, Runtime};
use serde_json::json;

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `command` in the repository; it must succeed.
fn build(command: &str) {
    let status = std::process::Command::new("sh").arg("-c").arg(command).current_dir(root()).status().unwrap();
    assert!(status.success(), "`{command}` failed: run `bash tests/setup.sh` first for the toolchains");
}

struct Figures {
    bytes: u64,
    compile: Duration,
    cached: Duration,
    fresh: Duration,
    kept: Duration,
    memory: i64,
}

fn measure(path: &Path) -> Figures {
    let bytes = std::fs::read(path).unwrap();
    // A JavaScript or Python runtime needs the room a policy gives it.
    let limits = Limits { memory_mib: 128, call_timeout_ms: 2000, ..Limits::default() };
    // Compiling, on a runtime that has not seen the module (the best of 2).
    let compile = (0..2)
        .map(|_| {
            let runtime = Runtime::new(limits.clone()).unwrap();
            let t = Instant::now();
            black_box(Module::load(&runtime, "bench", &bytes).unwrap());
            t.elapsed()
        })
        .min()
        .unwrap();
    // Loading it precompiled, as a gateway with a data_dir does after its
    // first load (the best of 3 runtimes sharing the artifacts).
    let artifacts = tempfile::tempdir().unwrap();
    let on_disk = || Runtime::with_artifacts(limits.clone(), Some(artifacts.path().to_owned())).unwrap();
    Module::load(&on_disk(), "bench", &bytes).unwrap();
    let cached = (0..3)
        .map(|_| {
            let runtime = on_disk();
            let t = Instant::now();
            black_box(Module::load(&runtime, "bench", &bytes).unwrap());
            t.elapsed()
        })
        .min()
        .unwrap();
    let harness = Harness::load_with_limits(path, limits)
        .unwrap()
        .config(&json!({ "tenants": { TENANT: "hospital-a" } }).to_string());
    let claims = common::claims(TENANT);
    let read = request(Interaction::Read, "Patient", Some("pat-001"));
    let target = harness.route(&claims, &read).unwrap().unwrap();
    assert_eq!(target.provider_id, "hospital-a");
    let fresh = common::measure(20, 30, || {
        black_box(harness.route(&claims, &read).unwrap().unwrap());
    });
    let kept = common::measure(20, 30, || {
        black_box(harness.route_reused(&claims, &read).unwrap().unwrap());
    });
    let module = harness.module();
    let labels = ModuleLabels {
        partner: "harness".into(),
        role: "routing",
        module: module.name().clone(),
        digest: module.digest().clone(),
    };
    let memory = module.runtime().metrics().module_figures(&labels).peak_memory();
    Figures { bytes: bytes.len() as u64, compile, cached, fresh, kept, memory }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    build("node guest/js/build.mjs > /dev/null && bash guest/python/build.sh > /dev/null");
    let modules = [
        ("Rust", common::guest_wasm("fhirgate_router_table")),
        ("JavaScript", common::target_dir().join("guest-js/fhirgate_router_table_js.wasm")),
        ("Python", common::target_dir().join("guest-py/fhirgate_router_table_py.wasm")),
    ];
    let figures: Vec<(&str, Figures)> = modules.iter().map(|(lang, path)| (*lang, measure(path))).collect();
    let rust = &figures[0].1;
    let ratio = |a: f64, b: f64| format!("{:.0}×", a / b);
    println!(
        "{:<11} {:>14} {:>16} {:>16} {:>24} {:>20} {:>18}",
        "table router", "size", "compile", "load compiled", "fresh instance + call", "kept instance call", "memory"
    );
    for (lang, f) in &figures {
        let us = common::us;
        println!(
            "{:<11} {:>7.2} MB {:>5} {:>7.0} ms {:>5} {:>7.1} ms {:>5} {:>13.0} µs {:>5} {:>10.1} µs {:>5} {:>8.1} MiB {:>5}",
            lang,
            f.bytes as f64 / 1e6,
            ratio(f.bytes as f64, rust.bytes as f64),
            f.compile.as_secs_f64() * 1e3,
            ratio(us(f.compile), us(rust.compile)),
            f.cached.as_secs_f64() * 1e3,
            ratio(us(f.cached), us(rust.cached)),
            us(f.fresh),
            ratio(us(f.fresh), us(rust.fresh)),
            us(f.kept),
            ratio(us(f.kept), us(rust.kept)),
            f.memory as f64 / (1 << 20) as f64,
            ratio(f.memory as f64, rust.memory as f64),
        );
    }
}

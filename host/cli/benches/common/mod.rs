//! Timing helpers the benchmarks share.

#![allow(dead_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where cargo builds: `CARGO_TARGET_DIR`, else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
}

/// The module `name` as `cargo build-guests` builds it.
pub fn guest_wasm(name: &str) -> PathBuf {
    let wasm = target_dir().join(format!("wasm32-wasip2/guest/{name}.wasm"));
    assert!(wasm.exists(), "{} is missing: run `cargo build-guests` first", wasm.display());
    wasm
}

/// Median time per operation over `rounds` rounds of `batch` operations,
/// after one warm-up batch.
pub fn measure(batch: u32, rounds: u32, mut op: impl FnMut()) -> Duration {
    for _ in 0..batch {
        op();
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Like [`measure`] for several operations at once, interleaved round by
/// round so that a noisy neighbour slows them alike: the median time per
/// operation of each.
pub fn measure_interleaved<const N: usize>(batch: u32, rounds: u32, ops: &mut [&mut dyn FnMut(); N]) -> [Duration; N] {
    for op in ops.iter_mut() {
        for _ in 0..batch {
            op();
        }
    }
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(rounds as usize); N];
    for _ in 0..rounds {
        for (i, op) in ops.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            samples[i].push(start.elapsed() / batch);
        }
    }
    std::array::from_fn(|i| {
        samples[i].sort();
        samples[i][samples[i].len() / 2]
    })
}

/// An R4 searchset of the first `n` demo patients on `upstream`.
pub fn searchset(upstream: &str, n: usize) -> serde_json::Value {
    let entries: Vec<serde_json::Value> = fhirgate_devtools::demo::data::patients_n(n)
        .into_iter()
        .map(|p| {
            let url = format!("{upstream}/Patient/{}", p["id"].as_str().unwrap_or_default());
            serde_json::json!({ "fullUrl": url, "resource": p, "search": { "mode": "match" } })
        })
        .collect();
    serde_json::json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": n,
        "link": [
            { "relation": "self", "url": format!("{upstream}/Patient?_count={n}") },
            { "relation": "next", "url": format!("{upstream}/Patient?_count={n}&_offset={n}") },
        ],
        "entry": entries,
    })
}

/// Whether the default validator's check, compiled natively, accepts `token`.
pub fn native_check(token: &str, config: &fhirgate_token_jwt::Config, facts: &fhirgate_sandbox::IssuerFacts) -> bool {
    let ctx = fhirgate_token_jwt::Context {
        config,
        issuer: &facts.issuer,
        audiences: &facts.audiences,
        jwks: &facts.jwks,
        now_seconds: fhirgate_core::clock::now_seconds(),
    };
    fhirgate_token_jwt::check(token, &ctx).is_ok()
}

/// The claims of a token issued to `app` for `tenant`, valid for an hour.
pub fn claims(tenant: &str) -> fhirgate_sandbox::bindings::types::Claims {
    fhirgate_sandbox::bindings::types::Claims {
        client_id: "app".into(),
        tenant_id: tenant.into(),
        scopes: vec![tenant.into()],
        expires_at: fhirgate_core::clock::now_seconds() + 3600,
        token_id: None,
    }
}

//! A module for the gateway's own tests. As a router it routes like the
//! table router, except that the request parameter `_misbehave` makes it
//! loop forever, sleep in a host call, exhaust memory, recurse without end,
//! panic, answer a route with 100,000 parameters, answer routes the host
//! must refuse, or keep a note in memory (`remember`, or `hoard`, which
//! also grows the memory) and tell it (`recall`): which only the instance
//! kept for the same tenant may do. As a shaper it passes
//! requests and answers through unchanged, or, with `shaping = "panic"` or
//! `"loop"` in its configuration, fails on every answer. As a token validator it refuses
//! every token. Never deploy it.

// Built natively only for the workspace's checks: nothing calls the roles
// there, they are exported from the component alone.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::collections::BTreeMap;

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Header, Param, Request};
use serde::Deserialize;

use fhirgate_guest_sdk::router::{self, Target};
use fhirgate_guest_sdk::shaper::{self, Exchange, Shaped, UpstreamRequest};
use fhirgate_guest_sdk::validator;

/// What `remember` keeps: in linear memory, like everything a module holds.
static NOTE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
/// What `hoard` keeps besides.
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

#[derive(Deserialize)]
struct Config {
    tenants: BTreeMap<String, String>,
}

#[inline(never)]
fn recurse(depth: u64, trail: &mut Vec<u64>) -> u64 {
    if depth == u64::MAX {
        return 0;
    }
    trail.push(depth);
    let mut frame = [depth; 64];
    frame[(depth % 64) as usize] = recurse(depth + 1, trail);
    frame.iter().sum()
}

struct Misbehave;

#[derive(Deserialize, Default)]
struct ShapingConfig {
    #[serde(default)]
    shaping: String,
}

/// Fails as the shaping configuration says.
fn shaping_fault() {
    let config: ShapingConfig = fhirgate_guest_sdk::config().unwrap_or_default();
    match config.shaping.as_str() {
        "panic" => panic!("asked to fail shaping"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        _ => {}
    }
}

impl shaper::Guest for Misbehave {
    fn shape_request(_exchange: Exchange, request: UpstreamRequest) -> Result<UpstreamRequest, Denial> {
        Ok(request)
    }

    fn shape_response(_exchange: Exchange, status: u16, body: Vec<u8>) -> Result<Shaped, Denial> {
        shaping_fault();
        Ok(Shaped { status, body })
    }
}

impl validator::Guest for Misbehave {
    fn validate(_token: String, _request: Request) -> Result<Claims, Denial> {
        Err(deny(401, "invalid_token", "This test module accepts no token."))
    }
}

impl router::Guest for Misbehave {
    fn route(claims: Claims, request: Request) -> Result<Target, Denial> {
        let config: Config = fhirgate_guest_sdk::config().map_err(|m| deny(500, "module-config", m))?;
        let mode = request.params.iter().find(|p| p.name == "_misbehave").map(|p| p.value.clone()).unwrap_or_default();
        let provider = config
            .tenants
            .get(&claims.tenant_id)
            .cloned()
            .ok_or_else(|| deny(403, "unknown-tenant", "No provider for this tenant."))?;
        let mut headers = Vec::new();
        let mut provider_id = provider;
        let mut path = request.resource_type.clone().unwrap_or_default();
        if let Some(id) = &request.resource_id {
            path = format!("{path}/{id}");
        }
        match mode.as_str() {
            "" => {}
            "loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "grow" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => {
                let mut trail = Vec::new();
                std::hint::black_box(recurse(0, &mut trail));
            }
            "panic" => panic!("no route for tenant {}", claims.tenant_id),
            // Waits in a host call (a WASI poll), where epoch interruption
            // cannot reach it.
            "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "bad-header" => headers.push(Header { name: "x-note".into(), value: "line\r\nbreak".into() }),
            "auth-header" => headers.push(Header { name: "authorization".into(), value: "Bearer stolen".into() }),
            "foreign-provider" => provider_id = "not-approved".into(),
            "escape-path" => path = "../../admin".into(),
            // Keeps the `_note` parameter in memory that outlives the call
            // only if the instance does; `recall` answers with what is kept.
            "remember" => {
                let note = request.params.iter().find(|p| p.name == "_note").map(|p| p.value.clone());
                *NOTE.lock().unwrap_or_else(|e| e.into_inner()) = note.unwrap_or_default();
                // Read back, to show it is kept for as long as the instance.
                let kept = NOTE.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(deny(409, "remembered", format!("kept: [{kept}]")));
            }
            // As `remember`, and keeps 2 MiB besides: the instance's memory
            // grows past its initial size.
            "hoard" => {
                let note = request.params.iter().find(|p| p.name == "_note").map(|p| p.value.clone());
                *NOTE.lock().unwrap_or_else(|e| e.into_inner()) = note.unwrap_or_default();
                HOARD.lock().unwrap_or_else(|e| e.into_inner()).push(vec![1u8; 2 << 20]);
                let kept = NOTE.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(deny(409, "remembered", format!("kept: [{kept}]")));
            }
            "recall" => {
                let note = NOTE.lock().unwrap_or_else(|e| e.into_inner()).clone();
                return Err(deny(409, "recalled", format!("kept: [{note}]")));
            }
            "huge" => {
                let params = (0..100_000).map(|i| Param { name: format!("p{i}"), value: "x".repeat(64) }).collect();
                return Ok(Target { provider_id, path, params, headers });
            }
            other => return Err(deny(400, "unknown-mode", format!("Unknown _misbehave mode `{other}`."))),
        }
        Ok(Target {
            provider_id,
            path,
            params: request.params.into_iter().filter(|p| p.name != "_misbehave" && p.name != "_note").collect(),
            headers,
        })
    }
}

// Exported only when built as a component: the export symbols' names (with
// `:` and `@`) cannot be linked into a native shared library, and native
// builds exist only to unit-test the logic.
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_validator!(Misbehave);
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_router!(Misbehave);
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_shaper!(Misbehave);

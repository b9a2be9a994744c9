//! Partner modules under load, against the real gateway binary:
//!
//! 1. hot swap: 20 policy edits alternating the tenant's provider, and one
//!    invalid module, while two clients read continuously; how long from the
//!    file written to the new policy active, and from active to the first
//!    answer that shows it; failed requests (the target is none);
//! 2. adversarial routing modules (endless loop, a sleep in a host call,
//!    memory bomb, deep recursion, panic) under a 100 ms deadline: how long
//!    each failing request takes against the deadline;
//! 3. 10,000 memory bombs in rounds of 1,000: the gateway's resident memory
//!    before, after each round (idle) and at most while they ran.
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench modules`.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Setup, http, provider_with};

const TENANT: &str = "6c1e0f9a-3b2d-4e5f-8a7b-9c0d1e2f3a4b";
const ADMIN: &str = "admin-token-for-the-module-benchmark-0123";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    format!("median {:.1} ms, max {:.1} ms", ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

fn status(base: &str) -> Value {
    support::polling_http().get(format!("{base}/admin/modules")).bearer_auth(ADMIN).send().unwrap().json().unwrap()
}

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = text
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    kib / 1024.0
}

fn hot_swap() {
    // Two providers told apart by their answers: b has one patient more.
    let (_a, a) = provider_with(&[]);
    let (_b, b) = provider_with(&["--patients", "61"]);
    let gw = Setup {
        routes: &[(TENANT, "a")],
        tenants: &[(TENANT, "a")],
        providers: &[("a", &a), ("b", &b)],
        client_tenants: &[TENANT],
        admin_token: Some(ADMIN),
        data_dir: true,
        ..Default::default()
    }
    .serve_binary();
    let policy = gw.dir.path().join("policy.toml");
    let both = std::fs::read_to_string(&policy).unwrap().replace("providers = [\"a\"]", "providers = [\"a\", \"b\"]");
    let routed_to = |p: &str| both.replace(&format!("{TENANT:?} = \"a\""), &format!("{TENANT:?} = {p:?}"));
    let bad = gw.dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x0d\0\x01\0not a component").unwrap();
    let router = support::guest("fhirgate_router_table");
    let invalid = routed_to("a")
        .replacen(
            &format!("path = {:?}", router.display().to_string()),
            &format!("path = {:?}", bad.display().to_string()),
            1,
        )
        .replacen(&support::sha256(&router), &support::sha256(&bad), 1);
    let write_and_wait = |text: &str| -> (Value, Duration) {
        let before = status(&gw.base);
        let t0 = Instant::now();
        std::fs::write(&policy, text).unwrap();
        loop {
            let now = status(&gw.base);
            if now["generation"] != before["generation"] || now["last_rejection"] != before["last_rejection"] {
                return (now, t0.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    write_and_wait(&routed_to("a"));

    let token = gw.token(TENANT);
    let url = format!("{}/stu3/Patient?_count=1", gw.base);
    let total = |resp: reqwest::blocking::Response| -> Option<u64> {
        (resp.status() == 200).then(|| resp.json::<Value>().ok()).flatten().and_then(|b| b["total"].as_u64())
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::<String>::new())));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (stop, served, failed, url, token) =
                (stop.clone(), served.clone(), failed.clone(), url.clone(), token.clone());
            std::thread::spawn(move || {
                let client = http();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).bearer_auth(&token).send() {
                        Ok(r) if r.status() == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => failed.lock().unwrap().push(r.status().to_string()),
                        Err(e) => failed.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    let (mut to_active, mut to_seen) = (Vec::new(), Vec::new());
    let mut target = "a";
    let mut refused = String::new();
    let started = Instant::now();
    for round in 0..21 {
        if round == 10 {
            let (s, _) = write_and_wait(&invalid);
            refused = s["last_rejection"]["reason"].as_str().unwrap_or("NOT REFUSED").to_owned();
            continue;
        }
        target = if target == "a" { "b" } else { "a" };
        let expected = if target == "a" { 60 } else { 61 };
        let (_, took) = write_and_wait(&routed_to(target));
        to_active.push(took);
        let active = Instant::now();
        let client = http();
        loop {
            if total(client.get(&url).bearer_auth(&token).send().unwrap()) == Some(expected) {
                to_seen.push(active.elapsed());
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    println!("hot swap under load (2 clients reading continuously)");
    println!(
        "  swaps                    {} valid + 1 invalid module, in {:.1} s",
        to_active.len(),
        elapsed.as_secs_f64()
    );
    println!("  requests served / failed {} / {}", served.load(Ordering::Relaxed), failed.len());
    println!("  file written → active    {}", summary(to_active));
    println!("  active → in responses    {}   (target ≤ 250 ms)", summary(to_seen));
    println!("  invalid module           refused: {}", refused.lines().next().unwrap_or(""));
}

fn adversarial() {
    let (_p, base) = provider_with(&[]);
    let gw = Setup {
        router: "fhirgate_misbehave",
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT],
        extra_config: "[wasm]\ncall_timeout_ms = 100\nmemory_mib = 32\n",
        // The access log on disk: in memory, 10,000 records would be most
        // of what grows.
        data_dir: true,
        ..Default::default()
    }
    .serve_binary();
    let token = gw.token(TENANT);
    let client = http();
    let call = |mode: &str| {
        let t = Instant::now();
        let r = client
            .get(format!("{}/stu3/Patient/pat-001?_misbehave={mode}", gw.base))
            .bearer_auth(&token)
            .send()
            .unwrap();
        (r.status().as_u16(), t.elapsed())
    };
    let (_, normal) = call("");
    println!("\nadversarial routing modules (deadline 100 ms, memory 32 MiB; a normal request: {:.1} ms)", ms(normal));
    for mode in ["loop", "sleep", "grow", "recurse", "panic"] {
        let mut times = Vec::new();
        for _ in 0..20 {
            let (status, took) = call(mode);
            assert_eq!(status, 500, "{mode}");
            assert_eq!(call("").0, 200, "the request after a {mode} is served");
            times.push(took);
        }
        println!("  {mode:<8} 500 in {}", summary(times));
    }

    let pid = gw.running.pid();
    let (rounds, per_round) = (10, 1_000);
    let before = rss_mib(pid);
    let mut peak = before;
    let mut after_round = Vec::new();
    let started = Instant::now();
    for _ in 0..rounds {
        let done = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let client = http();
                    while done.fetch_add(1, Ordering::Relaxed) < per_round {
                        let r = client
                            .get(format!("{}/stu3/Patient/pat-001?_misbehave=grow", gw.base))
                            .bearer_auth(&token)
                            .send()
                            .unwrap();
                        assert_eq!(r.status(), 500);
                    }
                });
            }
            while done.load(Ordering::Relaxed) < per_round {
                std::thread::sleep(Duration::from_millis(100));
                peak = peak.max(rss_mib(pid));
            }
        });
        after_round.push(rss_mib(pid));
    }
    println!(
        "\n{} memory bombs (each grows to the 32 MiB cap, 2 at a time) in {:.1} s; gateway resident memory:",
        rounds * per_round,
        started.elapsed().as_secs_f64()
    );
    let series: Vec<String> = after_round.iter().map(|m| format!("{m:.1}")).collect();
    println!("  before {before:.1} MiB; after each {per_round}: {} MiB", series.join(", "));
    println!(
        "  growth from the first {per_round} to the last: {:+.1} MiB; at most {peak:.1} MiB while two ran",
        after_round[after_round.len() - 1] - after_round[0]
    );
    assert_eq!(call("").0, 200);
}

fn main() {
    // SAFETY: no other thread runs yet. The gateways' per-request error logs
    // would drown the figures.
    unsafe { std::env::set_var("FHIRGATE_LOG", "off") };
    hot_swap();
    adversarial();
}

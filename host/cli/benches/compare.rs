//! What the gateway costs, side by side, in one run on loopback:
//!
//! - (A) the demo provider directly;
//! - (B) `fhirgate proxy`: the gateway binary's transport and upstream
//!   client with no modules (no token check, routing or shaping);
//! - (C) the full gateway (`fhirgate serve`) with its default modules, an
//!   access log on disk, the token of a registered client;
//! - (D) nginx `proxy_pass` to the same provider, with upstream keep-alive,
//!   when `nginx` is on the PATH;
//! - (E) C's native twin: the same gateway, configuration and policy, with
//!   the default modules' own code compiled into the host and called behind
//!   the same role interfaces instead of in the sandbox
//!   (`serve --native-twins`): C/E is what WebAssembly costs;
//! - (F) C with `[audit] commit = "buffered"`: records committed within
//!   20 ms after the answer instead of before it, the baseline of what the
//!   durable trail costs (C/F).
//!
//! Workloads: a ~2 KB Patient read, ~40 KB and ~170 KB searchsets of
//! Patients, and, on the gateway only: the token endpoint; an 8-entry batch
//! against its slowest entry, with the provider on loopback and with one
//! answering in 20 ms; the read while the routing is hot-swapped every
//! 250 ms, against the same read without swaps. For each system and
//! workload: saturation (closed loop, 16 connections), then latency at 50%
//! (three rounds, the one with the median p99 reported) and 75% of that
//! system's own saturation with an open-loop generator that charges a
//! request held up by the system from when it was due (no coordinated
//! omission): p50, p99 and p99.9; the system's own CPU during saturation (the provider's not
//! included) and its resident-memory high-water mark so far (VmHWM, summed
//! over its processes). Prints one table and the ratios
//! C/E, C/B, C/D, C/F and the p99 C adds over B and over E, and writes them
//! to `target/bench/compare.json` (`ratios`, per workload) and
//! `target/bench/compare.md`.
//!
//! Everything shares the machine: provider, systems and the load generator
//! compete for the same cores, alike for every system.
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench compare`.
//! `FHIRGATE_BENCH_SECONDS` sets each measurement's length (default 3);
//! `FHIRGATE_BENCH_ONLY` limits the workloads to a comma-separated list of
//! `read`, `search40`, `search170`, `token`, `batch`, `swap`; `FHIRGATE_BENCH_SYSTEMS`
//! limits the systems measured on the shared workloads (e.g. `B,C`).

#[path = "../../../tests/support/mod.rs"]
mod support;

#[path = "common/load.rs"]
mod load;

#[path = "common/procs.rs"]
mod procs;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use load::{Outcome, Target, closed_loop, open_loop};
use procs::{addr_of, clock_ticks, system_selected};
use serde_json::{Value, json};
use support::{SECRET, Setup, provider_with, start};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
/// A tenant whose provider takes `SLOW_PROVIDER_MS` per request.
const SLOW_TENANT: &str = "7a1d4e2b-9c3f-4b8a-8e5d-2f6c0b9a1d37";
const SLOW_PROVIDER_MS: u64 = 20;
const ADMIN: &str = "bench-admin-token-0123456789abcdefghij";
const CONNECTIONS: usize = 16;
const HALF_LOAD_ROUNDS: usize = 3;

/// A process under measurement: its pid, and its children's (nginx workers).
struct Proc {
    pid: u32,
}

impl Proc {
    /// The process and its children.
    fn pids(&self) -> Vec<u32> {
        let mut out = vec![self.pid];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
                // The parent's pid is the second field after the name.
                if procs::stat_fields(pid).get(1).and_then(|p| p.parse::<u32>().ok()) == Some(self.pid) {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// CPU seconds used so far (user + system), children included.
    fn cpu_seconds(&self, ticks: f64) -> f64 {
        self.pids().into_iter().map(|pid| procs::cpu_seconds(pid, ticks)).sum()
    }

    /// Peak resident memory in MiB (VmHWM), children included.
    fn peak_mib(&self) -> f64 {
        self.pids()
            .iter()
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .sum::<f64>()
            / 1024.0
    }
}

/// A system under test: how to reach it and what to measure.
struct System {
    key: &'static str,
    name: String,
    addr: SocketAddr,
    /// Prefix of FHIR paths (`/fhir`, `/stu3`, or empty).
    base_path: &'static str,
    bearer: Option<String>,
    proc: Proc,
}

impl System {
    fn target(&self, path: &str) -> Target {
        let t = Target::get(self.addr, &format!("{}/{path}", self.base_path));
        match &self.bearer {
            Some(token) => t.header("authorization", format!("Bearer {token}")),
            None => t,
        }
    }
}

/// One system's figures on one workload.
struct Figures {
    saturation: f64,
    errors: u64,
    at50: Outcome,
    at75: Outcome,
    cpu_percent: f64,
    peak_mib: f64,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// nginx proxying to `provider` (host:port, base path `/fhir`), as a user
/// would set it up: worker processes per core, access log on, HTTP/1.1 to
/// the upstream with idle connections kept.
/// A running nginx, stopped with its workers when dropped (a SIGKILL to the
/// master would leave the workers behind).
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn nginx(dir: &std::path::Path, provider: SocketAddr) -> Option<Nginx> {
    let bin = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx", "/usr/local/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let port = free_port();
    let d = dir.display();
    let conf = format!(
        "worker_processes auto;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream provider {{ server {provider}; keepalive 32; }}\n\
         server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://provider/fhir/;\n\
         proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n    }}\n  }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).ok()?;
    let child = std::process::Command::new(bin)
        .args(["-p", &d.to_string(), "-c", &path.display().to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let nginx = Nginx { child, addr: format!("127.0.0.1:{port}").parse().unwrap() };
    for _ in 0..100 {
        if std::net::TcpStream::connect(nginx.addr).is_ok() {
            return Some(nginx);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Whether the workload `key` is to run.
fn selected(key: &str) -> bool {
    std::env::var("FHIRGATE_BENCH_ONLY").map_or(true, |only| only.split(',').any(|k| k.trim() == key))
}

fn seconds() -> Duration {
    let s = std::env::var("FHIRGATE_BENCH_SECONDS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(3.0);
    Duration::from_secs_f64(s.clamp(0.5, 60.0))
}

async fn measure(system: &System, target: &Target, ticks: f64) -> Figures {
    let span = seconds();
    // Warm-up: connections, pools, instances.
    closed_loop(target, CONNECTIONS, Duration::from_millis(300)).await;
    let cpu_before = system.proc.cpu_seconds(ticks);
    let sat = closed_loop(target, CONNECTIONS, span).await;
    let cpu = system.proc.cpu_seconds(ticks) - cpu_before;
    let saturation = sat.per_second();
    // Half load, where the added p99 is judged, three times: the round with
    // the median p99 is reported, so that one round disturbed by a neighbour
    // on the shared cores does not decide the figure.
    let mut rounds = Vec::new();
    for _ in 0..HALF_LOAD_ROUNDS {
        rounds.push(open_loop(target, CONNECTIONS, (saturation * 0.5).max(1.0), span).await);
    }
    let errors_at50: u64 = rounds.iter().map(|r| r.errors).sum();
    rounds.sort_by(|a, b| a.ms(0.99).total_cmp(&b.ms(0.99)));
    let at50 = rounds.swap_remove(HALF_LOAD_ROUNDS / 2);
    let at75 = open_loop(target, CONNECTIONS, (saturation * 0.75).max(1.0), span).await;
    Figures {
        saturation,
        errors: sat.errors + errors_at50 + at75.errors,
        at50,
        at75,
        cpu_percent: 100.0 * cpu / sat.elapsed.as_secs_f64(),
        peak_mib: system.proc.peak_mib(),
    }
}

/// The `_count` of a Patient searchset of at least `bytes` from `provider`.
fn count_for(provider: &str, bytes: usize) -> usize {
    let mut n = 10;
    loop {
        if body_len(&format!("{provider}/Patient?_count={n}")) >= bytes || n >= 250 {
            return n;
        }
        n += 2;
    }
}

fn body_len(url: &str) -> usize {
    reqwest::blocking::get(url).unwrap().bytes().unwrap().len()
}

/// The gateway's module status (`GET /admin/modules`).
fn modules_status(base: &str) -> Value {
    support::polling_http().get(format!("{base}/admin/modules")).bearer_auth(ADMIN).send().unwrap().json().unwrap()
}

/// Writes the policy file and waits until the gateway runs it; how long
/// that took.
fn write_policy_and_wait(base: &str, path: &std::path::Path, text: &str) -> Duration {
    let before = modules_status(base)["generation"].clone();
    // Written whole and renamed into place, so the watcher never reads half.
    let temp = path.with_extension("toml.new");
    std::fs::write(&temp, text).unwrap();
    let t0 = std::time::Instant::now();
    std::fs::rename(&temp, path).unwrap();
    // Polled every 5 ms: often enough to time the swap, rarely enough not to
    // load the gateway being measured.
    while modules_status(base)["generation"] == before {
        assert!(t0.elapsed() < Duration::from_secs(10), "the gateway did not take the new policy");
        std::thread::sleep(Duration::from_millis(5));
    }
    t0.elapsed()
}

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread runs yet. Per-request logs would cost the
    // gateway time the bare proxies do not spend.
    unsafe { std::env::set_var("FHIRGATE_LOG", "warn") };
    let ticks = clock_ticks();
    let dir = tempfile::tempdir()?;

    // The provider, and the systems in front of it.
    let (provider, provider_base) = provider_with(&["--patients", "300"]);
    let provider_addr = addr_of(&provider_base);
    // The same data behind a hospital server's typical answer time, for the
    // batch: the gateway's own cost should hide behind it.
    let (_slow, slow_base) = provider_with(&["--patients", "300", "--delay-ms", &SLOW_PROVIDER_MS.to_string()]);
    let proxy = start(&["proxy", "--upstream", &provider_base, "--listen", "127.0.0.1:0", "--json"]);
    // Providers a and b are the same server under two names: the hot swap
    // moves the tenant from one to the other.
    let providers = [("a", provider_base.as_str()), ("b", &provider_base), ("slow", &slow_base)];
    let setup = || Setup {
        routes: &[(TENANT, "a"), (SLOW_TENANT, "slow")],
        tenants: &[(TENANT, "a"), (SLOW_TENANT, "slow")],
        providers: &providers,
        client_tenants: &[TENANT, SLOW_TENANT],
        data_dir: true,
        admin_token: Some(ADMIN),
        provider_settings: "timeout_ms = 10000\n",
        ..Default::default()
    };
    let gw = setup().serve_binary();
    // The same gateway running the default modules' code natively.
    let twin = system_selected("E")
        .then(|| setup().serve_binary_logging(&["--native-twins"], "warn", std::process::Stdio::null()));
    // The same gateway committing its access records within 20 ms of the
    // answer instead of before it: the baseline of the durable trail's cost.
    let buffered = Setup {
        routes: &[(TENANT, "a")],
        tenants: &[(TENANT, "a")],
        providers: &[("a", &provider_base)],
        client_tenants: &[TENANT],
        data_dir: true,
        provider_settings: "timeout_ms = 10000\n",
        extra_config: "[audit]\ncommit = \"buffered\"\n",
        ..Default::default()
    }
    .serve_binary();
    let buffered_token = buffered.token(TENANT);
    let policy_path = gw.dir.path().join("policy.toml");
    let both = std::fs::read_to_string(&policy_path)?.replace(
        &format!("[tenants.{TENANT:?}]\nproviders = [\"a\"]"),
        &format!("[tenants.{TENANT:?}]\nproviders = [\"a\", \"b\"]"),
    );
    let routed_to = |p: &str| both.replace(&format!("{TENANT:?} = \"a\""), &format!("{TENANT:?} = {p:?}"));
    write_policy_and_wait(&gw.base, &policy_path, &routed_to("a"));
    let token = gw.token(TENANT);
    let nginx = nginx(dir.path(), provider_addr);

    let mut systems = vec![
        System {
            key: "A",
            name: "provider directly".into(),
            addr: provider_addr,
            base_path: "/fhir",
            bearer: None,
            proc: Proc { pid: provider.pid() },
        },
        System {
            key: "B",
            name: "fhirgate proxy (no modules)".into(),
            addr: proxy.get("address").parse()?,
            base_path: "",
            bearer: None,
            proc: Proc { pid: proxy.pid() },
        },
        System {
            key: "C",
            name: "fhirgate, default modules".into(),
            addr: addr_of(&gw.base),
            base_path: "/stu3",
            bearer: Some(token.clone()),
            proc: Proc { pid: gw.running.pid() },
        },
    ];
    if let Some(twin) = &twin {
        systems.push(System {
            key: "E",
            name: "C's native twin (no sandbox)".into(),
            addr: addr_of(&twin.base),
            base_path: "/stu3",
            bearer: Some(twin.token(TENANT)),
            proc: Proc { pid: twin.running.pid() },
        });
    }
    systems.push(System {
        key: "F",
        name: "C, audit buffered".into(),
        addr: addr_of(&buffered.base),
        base_path: "/stu3",
        bearer: Some(buffered_token),
        proc: Proc { pid: buffered.running.pid() },
    });
    if let Some(n) = &nginx {
        systems.push(System {
            key: "D",
            name: "nginx proxy_pass".into(),
            addr: n.addr,
            base_path: "",
            bearer: None,
            proc: Proc { pid: n.child.id() },
        });
    }

    let small = count_for(&provider_base, 40 * 1024);
    let large = count_for(&provider_base, 170 * 1024);
    // A full-record demo Patient (narrative, extensions, contact): ~2 KB.
    let full = fhirgate_devtools::demo::data::patient_id(fhirgate_devtools::demo::data::PATIENT_COUNT);
    let full_len = body_len(&format!("{provider_base}/Patient/{full}"));
    let workloads = [
        ("read", format!("Patient read ({:.1} KB)", full_len as f64 / 1024.0), format!("Patient/{full}")),
        ("search40", format!("searchset, {small} Patients (~40 KB)"), format!("Patient?_count={small}")),
        ("search170", format!("searchset, {large} Patients (~170 KB)"), format!("Patient?_count={large}")),
    ];

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut report = String::new();
    let mut results = Vec::new();
    let mut ratios = serde_json::Map::new();
    let line = |out: &mut String, text: String| {
        println!("{text}");
        let _ = writeln!(out, "{text}");
    };
    line(
        &mut report,
        format!("{} s per measurement, {CONNECTIONS} connections; latency in ms", seconds().as_secs_f64()),
    );
    let mut c_read_saturation = None;
    for (key, label, path) in workloads.iter().filter(|(key, ..)| selected(key)) {
        line(&mut report, format!("\n{label}"));
        line(
            &mut report,
            format!(
                "| {:<30} | {:>9} | {:>23} | {:>23} | {:>6} | {:>8} |",
                "system", "req/s", "50%: p50 / p99 / p99.9", "75%: p50 / p99 / p99.9", "CPU %", "peak MiB"
            ),
        );
        line(&mut report, format!("|{:-<32}|{:->11}|{:->25}|{:->25}|{:->8}|{:->10}|", "", "", "", "", "", ""));
        let mut by_key = std::collections::BTreeMap::new();
        for system in systems.iter().filter(|s| system_selected(s.key)) {
            let target = system.target(path);
            let f = runtime.block_on(measure(system, &target, ticks));
            let lat = |o: &Outcome| format!("{:.2} / {:.2} / {:.2}", o.ms(0.5), o.ms(0.99), o.ms(0.999));
            line(
                &mut report,
                format!(
                    "| {:<30} | {:>9.0} | {:>23} | {:>23} | {:>6.0} | {:>8.1} |{}",
                    format!("{} {}", system.key, system.name),
                    f.saturation,
                    lat(&f.at50),
                    lat(&f.at75),
                    f.cpu_percent,
                    f.peak_mib,
                    if f.errors > 0 { format!(" {} errors", f.errors) } else { String::new() }
                ),
            );
            results.push(json!({
                "workload": label, "system": system.key, "name": system.name,
                "saturation_rps": f.saturation, "errors": f.errors,
                "p50_ms_at_50": f.at50.ms(0.5), "p99_ms_at_50": f.at50.ms(0.99), "p999_ms_at_50": f.at50.ms(0.999),
                "p50_ms_at_75": f.at75.ms(0.5), "p99_ms_at_75": f.at75.ms(0.99), "p999_ms_at_75": f.at75.ms(0.999),
                "cpu_percent": f.cpu_percent, "peak_rss_mib": f.peak_mib,
            }));
            if system.key == "C" && path.starts_with("Patient/") {
                c_read_saturation = Some(f.saturation);
            }
            by_key.insert(system.key, f);
        }
        let Some(c) = by_key.get("C") else { continue };
        let mut these = serde_json::Map::new();
        let mut text = Vec::new();
        for (other, what) in [("E", "wasm tax"), ("B", "vs bare proxy"), ("D", "vs nginx"), ("F", "durable audit")] {
            let Some(o) = by_key.get(other) else { continue };
            let ratio = c.saturation / o.saturation;
            let added = c.at50.ms(0.99) - o.at50.ms(0.99);
            text.push(format!("C/{other} {ratio:.2} ({what}; p99 at 50% {added:+.2} ms)"));
            these.insert(format!("C/{other}"), json!(ratio));
            these.insert(format!("added_p99_ms_at_50_C_over_{other}"), json!(added));
        }
        line(&mut report, format!("req/s ratios: {}", text.join("; ")));
        ratios.insert((*key).to_owned(), Value::Object(these));
    }
    if nginx.is_none() {
        line(&mut report, "\n(D) not measured: nginx is not installed".into());
    }

    // The gateway alone: its token endpoint, and a batch against its entries.
    let c = &systems[2];
    if selected("token") {
        let token_target = Target::get(c.addr, "/oauth2/token")
            .header("authorization", basic())
            .post("application/x-www-form-urlencoded", format!("grant_type=client_credentials&scope={TENANT}"));
        let f = runtime.block_on(measure(c, &token_target, ticks));
        line(
            &mut report,
            format!(
                "\ntoken endpoint (C): {:.0} req/s; at 50%: p50 {:.2} / p99 {:.2} ms; CPU {:.0}%",
                f.saturation,
                f.at50.ms(0.5),
                f.at50.ms(0.99),
                f.cpu_percent
            ),
        );
        results.push(json!({ "workload": "token endpoint", "system": "C", "saturation_rps": f.saturation,
        "p50_ms_at_50": f.at50.ms(0.5), "p99_ms_at_50": f.at50.ms(0.99), "errors": f.errors }));
    }

    if selected("batch") {
        let entries = [
            format!("Patient/{full}"),
            "Patient/pat-002".to_owned(),
            format!("Patient?_count={small}"),
            "Condition?patient=pat-001".to_owned(),
            "Observation?patient=pat-001".to_owned(),
            "AllergyIntolerance?patient=pat-001".to_owned(),
            "MedicationRequest?patient=pat-001".to_owned(),
            "Encounter?patient=pat-001".to_owned(),
        ];
        let slow = System {
            key: "C",
            name: format!("C, provider answering in {SLOW_PROVIDER_MS} ms"),
            addr: c.addr,
            base_path: c.base_path,
            bearer: Some(gw.token(SLOW_TENANT)),
            proc: Proc { pid: c.proc.pid },
        };
        for (system, setting) in
            [(c, "provider on loopback".to_owned()), (&slow, format!("provider answering in {SLOW_PROVIDER_MS} ms"))]
        {
            let (batch_p50, slowest) = runtime.block_on(batch_against_slowest_entry(system, &entries));
            line(
                &mut report,
                format!(
                    "8-entry batch (C, one at a time, {setting}): p50 {batch_p50:.2} ms; slowest entry alone ({}) p50 {:.2} ms; ratio {:.2}",
                    slowest.0,
                    slowest.1,
                    batch_p50 / slowest.1
                ),
            );
            results.push(json!({ "workload": "8-entry batch", "system": "C", "provider": setting, "p50_ms": batch_p50,
            "slowest_entry": slowest.0, "slowest_entry_p50_ms": slowest.1, "ratio": batch_p50 / slowest.1 }));
        }
    }

    if selected("swap") {
        // The read at half of C's saturation, first as it is, then while the
        // routing is swapped every 250 ms (the policy file rewritten, the
        // gateway compiling and activating it).
        let target = c.target(&format!("Patient/{full}"));
        let saturation = match c_read_saturation {
            Some(s) => s,
            None => runtime.block_on(closed_loop(&target, CONNECTIONS, seconds())).per_second(),
        };
        let rate = (saturation * 0.5).max(1.0);
        let quiet = runtime.block_on(open_loop(&target, CONNECTIONS, rate, seconds()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (stop, base, path) = (stop.clone(), gw.base.clone(), policy_path.clone());
            let texts = [routed_to("b"), routed_to("a")];
            std::thread::spawn(move || {
                let mut took = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    took.push(write_policy_and_wait(&base, &path, &texts[took.len() % 2]));
                    std::thread::sleep(Duration::from_millis(250));
                }
                took
            })
        };
        let busy = runtime.block_on(open_loop(&target, CONNECTIONS, rate, seconds()));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut took = swapper.join().expect("the swapping thread");
        took.sort();
        anyhow::ensure!(!took.is_empty(), "no swap completed during the measurement");
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let lat = |o: &Outcome| format!("{:.2} / {:.2} / {:.2}", o.ms(0.5), o.ms(0.99), o.ms(0.999));
        line(
            &mut report,
            format!(
                "hot swap under load (C, read at {rate:.0} req/s): {} swaps, file written → active median {:.1} ms, max {:.1} ms; \
                 p50 / p99 / p99.9 {} ms while swapping against {} ms without; errors {} / {}",
                took.len(),
                ms(took[took.len() / 2]),
                ms(took[took.len() - 1]),
                lat(&busy),
                lat(&quiet),
                busy.errors,
                quiet.errors
            ),
        );
        results.push(json!({ "workload": "hot swap under load", "system": "C", "rate": rate, "swaps": took.len(),
            "to_active_ms_median": ms(took[took.len() / 2]), "to_active_ms_max": ms(took[took.len() - 1]),
            "p50_ms_swapping": busy.ms(0.5), "p99_ms_swapping": busy.ms(0.99), "p999_ms_swapping": busy.ms(0.999),
            "p50_ms_quiet": quiet.ms(0.5), "p99_ms_quiet": quiet.ms(0.99), "p999_ms_quiet": quiet.ms(0.999),
            "errors_swapping": busy.errors, "errors_quiet": quiet.errors }));
    }

    let out = support::repo_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("compare.md"), &report)?;
    std::fs::write(
        out.join("compare.json"),
        serde_json::to_string_pretty(&json!({ "ratios": ratios, "results": results }))?,
    )?;
    println!("\nwritten to {}", out.display());
    drop(nginx);
    Ok(())
}

/// The median of an 8-entry batch against that of its slowest entry alone,
/// each sent one at a time.
async fn batch_against_slowest_entry(system: &System, entries: &[String]) -> (f64, (String, f64)) {
    let bundle = json!({
        "resourceType": "Bundle", "type": "batch",
        "entry": entries.iter().map(|u| json!({ "request": { "method": "GET", "url": u } })).collect::<Vec<Value>>(),
    });
    // The batch goes to the face's base, `/stu3`.
    let mut batch = system.target("").post("application/fhir+json", bundle.to_string());
    batch.path = system.base_path.into();
    let one = |t: Target| async move { closed_loop(&t, 1, seconds()).await.ms(0.5) };
    let mut slowest = (String::new(), 0.0f64);
    for e in entries {
        let ms = one(system.target(e)).await;
        if ms > slowest.1 {
            slowest = (e.clone(), ms);
        }
    }
    (one(batch).await, slowest)
}

fn basic() -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("app:{SECRET}")))
}

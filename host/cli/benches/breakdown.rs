//! Where each system's CPU goes on the ~2 KB Patient read, per request and
//! per phase: B (`fhirgate proxy`, no modules), E (the full gateway with the
//! default modules' code compiled in, `serve --native-twins`) and C (the
//! full gateway with the modules in the sandbox), each saturated in turn
//! by the same closed-loop load as `compare` while `perf` samples it.
//!
//! Every sample's call stack is given to the first phase whose frames it
//! contains (see `PHASES`): module calls (the sandbox's instances, calls and
//! the modules' code, which perf sees as unnamed frames it cannot unwind,
//! or the native twins'), the host's token check (the
//! verdict cache), link sealing, audit (the pipeline's phase and the access
//! log's writer), forward (the upstream client, also on its connection
//! tasks), parse, sandbox upkeep (the epoch ticker), the gateway's other
//! code, transport (the HTTP server and its sockets), and else "runtime and
//! other" (the scheduler, the kernel outside a phase, stacks perf could not
//! unwind). A phase's µs per request is its share of the samples times the
//! process's CPU per request under the same load unprofiled (measured just
//! before; sampling stacks costs the process time of its own, shown as
//! "total while sampled"). The
//! module calls' share is divided among token check, routing and shaping as
//! the calls' durations in `/metrics` are (a module's code runs on its own
//! stack, which perf cannot tie to the call that entered it).
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench breakdown`
//! (needs `perf`, and permission to profile the gateway's processes: root,
//! or `kernel.perf_event_paranoid` ≤ 1). `FHIRGATE_BENCH_SECONDS` sets each
//! profile's length (default 5); `FHIRGATE_BENCH_SYSTEMS` limits the
//! systems (e.g. `B,C`); `FHIRGATE_BENCH_PERF_DIR` keeps the profiles
//! there, for `perf report`. Writes `target/bench/breakdown.md` and
//! `breakdown.json`.

#[path = "../../../tests/support/mod.rs"]
mod support;

#[path = "common/load.rs"]
#[allow(dead_code)]
mod load;

#[path = "common/procs.rs"]
mod procs;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use load::{Target, closed_loop};
use procs::{addr_of, clock_ticks, system_selected};
use serde_json::json;
use support::{Setup, provider_with, start};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
const CONNECTIONS: usize = 16;
/// Samples per second and thread.
const FREQUENCY: &str = "999";

/// Where a sample goes, in the order a stack is matched: the first whose
/// patterns one of its frames (or its thread's name) contains takes it.
/// "module calls" is every sample inside a module call, in the sandbox or
/// native: the instance, the lifting and lowering, the module's code; it is
/// then divided among the roles by the calls' own durations (`/metrics`).
const PHASES: &[(&str, &[&str])] = &[
    (
        MODULE_CALLS,
        &[
            "fhirgate_sandbox::",
            "wasmtime",
            "fhirgate_twins::",
            "fhirgate_shaper_fhir",
            "fhirgate_router_table",
            "fhirgate_token_jwt",
            "fhirgate_guest_sdk",
        ],
    ),
    ("token check (host)", &["pipeline::authenticate", "oauth::"]),
    ("link sealing", &["pipeline::links"]),
    ("audit", &["pipeline::audit", "access::writer", "fhirgate_store::", "sqlite3", "rusqlite", "sqlx"]),
    (
        "forward",
        &["pipeline::forward", "hyper_util::client", "dispatch::Client", "role::Client", "fhirgate_upstream::"],
    ),
    ("parse", &["pipeline::parse"]),
    ("sandbox upkeep", &["wasm-epoch"]),
    ("gateway, other", &["fhirgate_gateway::"]),
    ("transport", &["hyper::", "hyper_util::", "fhirgate_http::", "tokio::net::", "mio::", "fhirgate_devtools::proxy"]),
];
const MODULE_CALLS: &str = "module calls";
const OTHER: &str = "runtime and other";
/// The module roles, as `/metrics` labels them.
const ROLES: [&str; 3] = ["token-validation", "routing", "shaping"];

fn seconds() -> Duration {
    let s = std::env::var("FHIRGATE_BENCH_SECONDS").ok().and_then(|v| v.parse::<f64>().ok()).unwrap_or(5.0);
    Duration::from_secs_f64(s.clamp(1.0, 60.0))
}

/// The phase a sample's stack (leaf first, with its thread's name) belongs to.
fn phase_of(thread: &str, frames: &[String]) -> &'static str {
    // Compiled module code has no symbols, and perf cannot unwind through
    // it: a stack of nothing else is a module's own code running.
    if !frames.is_empty() && frames.iter().all(|f| f.starts_with("[unknown]")) {
        return MODULE_CALLS;
    }
    for (phase, patterns) in PHASES {
        if patterns.iter().any(|p| thread.contains(p) || frames.iter().any(|f| f.contains(p))) {
            return phase;
        }
    }
    OTHER
}

/// Samples per phase in `perf script` output of a call-graph profile.
fn attribute(script: &str) -> BTreeMap<&'static str, u64> {
    let mut counts = BTreeMap::new();
    let mut thread = String::new();
    let mut frames: Vec<String> = Vec::new();
    let mut flush = |thread: &str, frames: &mut Vec<String>| {
        if !thread.is_empty() {
            *counts.entry(phase_of(thread, frames)).or_insert(0) += 1;
        }
        frames.clear();
    };
    for line in script.lines() {
        if line.trim().is_empty() {
            flush(&thread, &mut frames);
            thread.clear();
        } else if line.starts_with(char::is_whitespace) {
            // "\t addr symbol+off (dso)"
            let text = line.trim();
            let symbol = text.split_once(' ').map_or(text, |(_, rest)| rest);
            frames.push(symbol.to_owned());
        } else {
            flush(&thread, &mut frames);
            thread = line.split_whitespace().next().unwrap_or("?").to_owned();
        }
    }
    flush(&thread, &mut frames);
    counts
}

/// Seconds in module calls, by the calls' labels.
const SECONDS_IN_CALLS: &str = "fhirgate_module_call_duration_seconds_sum{";
/// Module calls timed, by the calls' labels.
const CALLS_TIMED: &str = "fhirgate_module_call_duration_seconds_count{";
/// Module instances made, by the modules' labels.
const INSTANCES_MADE: &str = "fhirgate_module_instantiations_total{";

/// The row of a role's module calls.
fn role_phase(role: &str) -> &'static str {
    match role {
        "token-validation" => "token check (module)",
        "routing" => "routing",
        _ => "request and response shaping",
    }
}

/// One system's profile: µs of CPU per request in each phase.
struct Profile {
    requests_per_second: f64,
    /// Unprofiled.
    cpu_us_per_request: f64,
    /// While sampled.
    profiled_us: f64,
    /// Module instances made per request (kept ones reused make none).
    instances_per_request: Option<f64>,
    /// Wall µs of one module call, by role.
    call_us: BTreeMap<&'static str, f64>,
    samples: u64,
    us_per_phase: BTreeMap<&'static str, f64>,
}

/// The module figure `series` (a metric name and its `{`) summed by role
/// (`/metrics` of the gateway at `base`): seconds spent in calls so far with
/// `fhirgate_module_call_duration_seconds_sum{`.
fn module_sums(base: Option<&str>, series: &str) -> BTreeMap<&'static str, f64> {
    let mut by_role = BTreeMap::new();
    let Some(base) = base else { return by_role };
    for line in support::metrics(base).lines().filter(|l| l.starts_with(series)) {
        let Some(role) = ROLES.iter().find(|r| line.contains(&format!("role=\"{r}\""))) else { continue };
        let value: f64 = line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *by_role.entry(*role).or_insert(0.0) += value;
    }
    by_role
}

async fn profile(
    pid: u32,
    target: &Target,
    metrics_base: Option<&str>,
    dir: &std::path::Path,
    key: &str,
) -> anyhow::Result<Profile> {
    let ticks = clock_ticks();
    closed_loop(target, CONNECTIONS, Duration::from_secs(1)).await;
    let span = seconds();
    // The same load unprofiled: the CPU per request the phases are scaled to
    // (sampling call stacks costs the process time of its own).
    let cpu_before = procs::cpu_seconds(pid, ticks);
    let plain = closed_loop(target, CONNECTIONS, span).await;
    let plain_us = (procs::cpu_seconds(pid, ticks) - cpu_before) * 1e6
        / (plain.per_second() * plain.elapsed.as_secs_f64()).max(1.0);
    let data = dir.join(format!("perf-{key}.data"));
    let perf = Command::new("perf")
        .args(["record", "-q", "-F", FREQUENCY, "--call-graph", "dwarf,16384", "-p", &pid.to_string(), "-o"])
        .arg(&data)
        .args(["--", "sleep", &format!("{}", span.as_secs_f64())])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    // perf attaches within milliseconds; the load starts after it and ends
    // before it, so every request measured is sampled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cpu_before = procs::cpu_seconds(pid, ticks);
    let modules_before = module_sums(metrics_base, SECONDS_IN_CALLS);
    let made_before: f64 = module_sums(metrics_base, INSTANCES_MADE).values().sum();
    let calls_before = module_sums(metrics_base, CALLS_TIMED);
    let load = closed_loop(target, CONNECTIONS, span - Duration::from_millis(400)).await;
    let cpu = procs::cpu_seconds(pid, ticks) - cpu_before;
    let modules_after = module_sums(metrics_base, SECONDS_IN_CALLS);
    let made_after: f64 = module_sums(metrics_base, INSTANCES_MADE).values().sum();
    let calls_after = module_sums(metrics_base, CALLS_TIMED);
    let out = perf.wait_with_output()?;
    anyhow::ensure!(out.status.success(), "perf record: {}", String::from_utf8_lossy(&out.stderr));
    let script = Command::new("perf")
        .args(["script", "--no-inline", "-F", "comm,tid,ip,sym", "-i"])
        .arg(&data)
        .stderr(Stdio::null())
        .output()?;
    anyhow::ensure!(script.status.success(), "perf script failed");
    let counts = attribute(&String::from_utf8_lossy(&script.stdout));
    let samples: u64 = counts.values().sum();
    anyhow::ensure!(samples > 0, "perf recorded no samples");
    let requests = (load.per_second() * load.elapsed.as_secs_f64()).max(1.0);
    let profiled_us = cpu * 1e6 / requests;
    let cpu_us_per_request = plain_us;
    let mut us_per_phase: BTreeMap<&'static str, f64> =
        counts.iter().map(|(phase, n)| (*phase, cpu_us_per_request * *n as f64 / samples as f64)).collect();
    // The module calls' CPU, divided among the roles as their durations are.
    let spent: BTreeMap<&str, f64> = ROLES
        .iter()
        .map(|r| (*r, modules_after.get(r).unwrap_or(&0.0) - modules_before.get(r).unwrap_or(&0.0)))
        .collect();
    let in_calls = us_per_phase.remove(MODULE_CALLS).unwrap_or(0.0);
    let all: f64 = spent.values().sum();
    for (role, seconds) in &spent {
        let share = if all > 0.0 { seconds / all } else { 0.0 };
        us_per_phase.insert(role_phase(role), in_calls * share);
    }
    if all <= 0.0 && in_calls > 0.0 {
        us_per_phase.insert(MODULE_CALLS, in_calls);
    }
    let instances_per_request = metrics_base.map(|_| (made_after - made_before) / requests);
    // Wall time of one call, by role: CPU in the call, and any wait for a
    // core while it ran.
    let call_us: BTreeMap<&'static str, f64> = ROLES
        .iter()
        .filter_map(|r| {
            let calls = calls_after.get(r)? - calls_before.get(r).unwrap_or(&0.0);
            (calls > 0.0).then(|| (*r, spent[r] * 1e6 / calls))
        })
        .collect();
    Ok(Profile {
        requests_per_second: plain.per_second(),
        cpu_us_per_request,
        profiled_us,
        samples,
        us_per_phase,
        instances_per_request,
        call_us,
    })
}

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("FHIRGATE_LOG", "warn") };
    if Command::new("perf").arg("--version").output().is_err() {
        println!("perf is not installed: no profile taken");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    // `FHIRGATE_BENCH_PERF_DIR` keeps the profiles, for `perf report`.
    let kept = std::env::var_os("FHIRGATE_BENCH_PERF_DIR").map(std::path::PathBuf::from);
    let dir_path = kept.unwrap_or_else(|| dir.path().to_owned());
    std::fs::create_dir_all(&dir_path)?;
    let (_provider, provider_base) = provider_with(&["--patients", "300"]);
    let full = fhirgate_devtools::demo::data::patient_id(fhirgate_devtools::demo::data::PATIENT_COUNT);
    let providers = [("a", provider_base.as_str())];
    let setup = || Setup {
        routes: &[(TENANT, "a")],
        tenants: &[(TENANT, "a")],
        providers: &providers,
        client_tenants: &[TENANT],
        data_dir: true,
        provider_settings: "timeout_ms = 10000\n",
        ..Default::default()
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut report = String::new();
    let mut profiles: Vec<(&str, &str, Profile)> = Vec::new();
    let path = format!("Patient/{full}");

    if system_selected("B") {
        let proxy = start(&["proxy", "--upstream", &provider_base, "--listen", "127.0.0.1:0", "--json"]);
        let target = Target::get(proxy.get("address").parse()?, &format!("/{path}"));
        let profiled = runtime.block_on(profile(proxy.pid(), &target, None, &dir_path, "B"))?;
        profiles.push(("B", "fhirgate proxy", profiled));
    }
    for (key, name, flags) in [("E", "native twin", &["--native-twins"][..]), ("C", "default modules", &[][..])] {
        if !system_selected(key) {
            continue;
        }
        let gw = setup().serve_binary_logging(flags, "warn", Stdio::null());
        let target = Target::get(addr_of(&gw.base), &format!("/stu3/{path}"))
            .header("authorization", format!("Bearer {}", gw.token(TENANT)));
        let profiled = runtime.block_on(profile(gw.running.pid(), &target, Some(&gw.base), &dir_path, key))?;
        profiles.push((key, name, profiled));
    }

    let mut line = |text: String| {
        println!("{text}");
        let _ = writeln!(report, "{text}");
    };
    line(format!("CPU µs per request on the Patient read, by phase ({} s profiles)", seconds().as_secs_f64()));
    let header: Vec<String> = profiles.iter().map(|(k, n, _)| format!("{k} {n}")).collect();
    line(format!(
        "| {:<20} | {} |",
        "phase",
        header.iter().map(|h| format!("{h:>20}")).collect::<Vec<_>>().join(" | ")
    ));
    line(format!("|{:-<22}|{}", "", profiles.iter().map(|_| format!("{:->22}|", "")).collect::<String>()));
    let names = ROLES
        .iter()
        .map(|r| role_phase(r))
        .chain([MODULE_CALLS])
        .chain(PHASES.iter().map(|(p, _)| *p).filter(|p| *p != MODULE_CALLS))
        .chain([OTHER]);
    for phase in names {
        let cells: Vec<String> = profiles
            .iter()
            .map(|(_, _, p)| format!("{:>20.1}", p.us_per_phase.get(phase).copied().unwrap_or(0.0)))
            .collect();
        line(format!("| {phase:<20} | {} |", cells.join(" | ")));
    }
    let total: Vec<String> = profiles.iter().map(|(_, _, p)| format!("{:>20.1}", p.cpu_us_per_request)).collect();
    line(format!("| {:<20} | {} |", "total", total.join(" | ")));
    let rate: Vec<String> = profiles.iter().map(|(_, _, p)| format!("{:>20.0}", p.requests_per_second)).collect();
    line(format!("| {:<20} | {} |", "req/s", rate.join(" | ")));
    let sampled: Vec<String> = profiles.iter().map(|(_, _, p)| format!("{:>20.1}", p.profiled_us)).collect();
    line(format!("| {:<20} | {} |", "total while sampled", sampled.join(" | ")));
    let samples: Vec<String> = profiles.iter().map(|(_, _, p)| format!("{:>20}", p.samples)).collect();
    line(format!("| {:<20} | {} |", "samples", samples.join(" | ")));
    let made: Vec<String> = profiles
        .iter()
        .map(|(_, _, p)| p.instances_per_request.map_or_else(|| format!("{:>20}", "-"), |n| format!("{n:>20.3}")))
        .collect();
    line(format!("| {:<20} | {} |", "instances/request", made.join(" | ")));
    for role in ROLES {
        let cells: Vec<String> = profiles
            .iter()
            .map(|(_, _, p)| p.call_us.get(role).map_or_else(|| format!("{:>20}", "-"), |us| format!("{us:>20.1}")))
            .collect();
        if cells.iter().any(|c| c.trim() != "-") {
            line(format!("| {:<20} | {} |", format!("µs/call {role}"), cells.join(" | ")));
        }
    }

    let out = support::repo_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("breakdown.md"), &report)?;
    let json: Vec<_> = profiles
        .iter()
        .map(|(key, name, p)| {
            json!({ "system": key, "name": name, "requests_per_second": p.requests_per_second,
                "cpu_us_per_request": p.cpu_us_per_request, "cpu_us_per_request_sampled": p.profiled_us, "samples": p.samples, "us_per_phase": p.us_per_phase,
                "instances_per_request": p.instances_per_request, "call_us": p.call_us })
        })
        .collect();
    std::fs::write(out.join("breakdown.json"), serde_json::to_string_pretty(&json!({ "profiles": json }))?)?;
    println!("\nwritten to {}", out.display());
    Ok(())
}

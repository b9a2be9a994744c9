//! Replicas on one PostgreSQL, against one replica: what sharing a database
//! costs a Patient read, and how long a change made through one replica
//! takes to act on another.
//!
//! Everything runs on this machine: a throwaway PostgreSQL (from the
//! system's binaries), the demo provider, and the gateways (release builds
//! of `fhirgate serve`):
//!
//! - **S**: one replica on SQLite (its data directory), the baseline;
//! - **P1**: one replica on PostgreSQL;
//! - **P3**: three replicas on one PostgreSQL, the load spread over them.
//!
//! For each: saturation (16 connections, closed loop) and the p50/p99 of an
//! open-loop load at half of S's saturation (the same offered load for all).
//! Then propagation through P3: a client disabled through A refused on C, a
//! signing key rotated through A published by C, a tenant approved through A
//! routed on C, a module uploaded through B serving on A and C; 10 rounds
//! each, median and largest.
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench replicas`
//! (`tests/setup.sh` installs PostgreSQL when missing). It writes
//! `target/bench/replicas.md`; `FHIRGATE_BENCH_SECONDS` (default 5) sets each
//! load's length.

#[path = "../../../tests/support/mod.rs"]
mod support;

// Not every kind of request is sent here.
#[allow(dead_code)]
#[path = "common/load.rs"]
mod load;

#[path = "common/procs.rs"]
#[allow(dead_code)]
mod procs;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use fhirgate_store::testing::Cluster;
use load::{Outcome, Target, closed_loop, open_loop};
use procs::addr_of;
use reqwest::Method;
use serde_json::{Value, json};
use support::{Served, Setup, admin_call, cli_json, http, provider_with};

const ADMIN: &str = "admin-token-for-the-replica-benchmark-01";
const TENANT: &str = "bbbbbbbb-1111-4111-8111-000000000001";
const CONNECTIONS: usize = 16;
const ROUNDS: usize = 10;

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("FHIRGATE_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5))
}

fn gateway(extra: &str, provider: &str) -> Served {
    Setup {
        admin_token: Some(ADMIN),
        extra_config: extra,
        providers: &[("hospital", provider)],
        routes: &[(TENANT, "hospital")],
        tenants: &[(TENANT, "hospital")],
        client_tenants: &[TENANT],
        data_dir: extra.is_empty(),
        ..Default::default()
    }
    .serve_binary()
}

/// Each replica's Patient read with `token`.
fn targets(replicas: &[&Served], token: &str) -> Vec<Target> {
    replicas
        .iter()
        .map(|r| {
            Target::get(addr_of(&r.base), "/stu3/Patient/pat-001").header("authorization", format!("Bearer {token}"))
        })
        .collect()
}

/// `connections` spread over the targets, their outcomes merged.
async fn spread(targets: &[Target], run: impl Fn(Target, usize) -> tokio::task::JoinHandle<Outcome>) -> Outcome {
    let per = CONNECTIONS / targets.len();
    let handles: Vec<_> = targets.iter().map(|t| run(t.clone(), per)).collect();
    let mut all: Option<Outcome> = None;
    for h in handles {
        let o = h.await.expect("a load task");
        match &mut all {
            None => all = Some(o),
            Some(a) => {
                a.elapsed = a.elapsed.max(o.elapsed);
                a.merge(o)
            }
        }
    }
    all.expect("one target at least")
}

fn saturate(rt: &tokio::runtime::Runtime, targets: &[Target]) -> Outcome {
    let d = seconds();
    rt.block_on(spread(targets, |t, n| tokio::spawn(async move { closed_loop(&t, n, d).await })))
}

fn at_rate(rt: &tokio::runtime::Runtime, targets: &[Target], rate: f64) -> Outcome {
    let (d, each) = (seconds(), rate / targets.len() as f64);
    rt.block_on(spread(targets, |t, n| tokio::spawn(async move { open_loop(&t, n, each, d).await })))
}

/// How long until `done` holds (polling every 2 ms, at most 10 s).
fn until(mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < Duration::from_secs(10), "no change within 10 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}

fn summary(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("{:.1} ms | {:.1} ms", ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

fn admin(gw: &Served, method: Method, path: &str, body: Value) -> (u16, Value) {
    admin_call(ADMIN, method, &format!("{}/admin/{path}", gw.base), Some(body))
}

fn token_status(base: &str, client: &str, secret: &str) -> u16 {
    http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

fn routing_digest(gw: &Served) -> String {
    let (_, body) = admin_call(ADMIN, Method::GET, &format!("{}/admin/modules", gw.base), None);
    let modules = body["modules"].as_array().cloned().unwrap_or_default();
    let m = modules.iter().find(|m| m["role"] == "routing" && m.get("tenant").is_none()).cloned();
    m.map(|m| m["digest"].as_str().unwrap_or_default().to_owned()).unwrap_or_default()
}

fn main() -> anyhow::Result<()> {
    // SAFETY: no other thread runs yet. Per-request logs would cost time.
    unsafe { std::env::set_var("FHIRGATE_LOG", "warn") };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cluster = Cluster::start()?;
    let (_provider, provider_base) = provider_with(&["--patients", "300"]);
    let keys = tempfile::tempdir()?;
    let kek = keys.path().join("kek.key");
    std::fs::write(&kek, "7b".repeat(32))?;
    std::fs::set_permissions(&kek, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    let on = |url: &str| {
        format!(
            "database_url = {url:?}\nkek_file = {:?}\npublic_url = \"https://gateway.example\"\n\
             accepted_hosts = [\"127.0.0.1\"]\n[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n",
            kek.display().to_string()
        )
    };

    let mut table = String::from(
        "| system | saturation (req/s) | p50 at the same load (ms) | p99 at the same load (ms) |\n|---|---:|---:|---:|\n",
    );
    let mut rate = 0.0;
    let mut rows: Vec<(String, f64)> = Vec::new();
    // One system at a time: they share the two cores.
    for (name, replicas) in [
        ("S: one replica, SQLite", 0usize),
        ("P1: one replica, PostgreSQL", 1),
        ("P3: three replicas, one PostgreSQL", 3),
    ] {
        let url = if replicas == 0 { None } else { Some(rt.block_on(cluster.database())?) };
        let config = url.as_deref().map(on).unwrap_or_default();
        let gws: Vec<Served> = (0..replicas.max(1)).map(|_| gateway(&config, &provider_base)).collect();
        let token = gws[0].token(TENANT);
        let refs: Vec<&Served> = gws.iter().collect();
        let t = targets(&refs, &token);
        // Warm every connection and module first.
        saturate(&rt, &t);
        let sat = saturate(&rt, &t);
        if rate == 0.0 {
            rate = sat.per_second() * 0.5;
        }
        let timed = at_rate(&rt, &t, rate);
        assert_eq!(timed.errors + sat.errors, 0, "{name}: failed requests");
        let _ = writeln!(table, "| {name} | {:.0} | {:.2} | {:.2} |", sat.per_second(), timed.ms(0.50), timed.ms(0.99));
        rows.push((name.to_owned(), sat.per_second()));
        println!(
            "{name}: {:.0} req/s; at {rate:.0} req/s p50 {:.2} ms, p99 {:.2} ms",
            sat.per_second(),
            timed.ms(0.5),
            timed.ms(0.99)
        );
        if replicas == 3 {
            let propagation = propagate(&gws, url.as_deref().unwrap_or_default(), &kek, &provider_base)?;
            table +=
                &format!("\nThe same offered load for every system: {rate:.0} req/s (half of S's saturation).\n\n");
            table += &propagation;
        }
    }
    println!("\n{table}");
    let out = support::repo_root().join("target/bench");
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("replicas.md"), &table)?;
    Ok(())
}

/// Propagation through three replicas: median and largest of each change.
fn propagate(gws: &[Served], url: &str, kek: &std::path::Path, provider: &str) -> anyhow::Result<String> {
    let (a, b, c) = (&gws[0], &gws[1], &gws[2]);
    let mut out =
        String::from("| change made through one replica | acts on another: median | largest |\n|---|---:|---:|\n");

    // A client disabled through A: refused by C.
    let (_, made) = admin(a, Method::POST, "clients", json!({ "name": "bench", "tenants": [TENANT] }));
    let (id, secret) =
        (made["client"]["client_id"].as_str().unwrap().to_owned(), made["client_secret"].as_str().unwrap().to_owned());
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        assert_eq!(admin(a, Method::POST, &format!("clients/{id}/enable"), json!({})).0, 200);
        until(|| token_status(&c.base, &id, &secret) == 200);
        let (status, _) = admin(a, Method::POST, &format!("clients/{id}/disable"), json!({}));
        assert_eq!(status, 200);
        times.push(until(|| token_status(&c.base, &id, &secret) == 401));
    }
    let _ = writeln!(out, "| client disabled (token refused) | {} |", summary(times));

    // A signing key rotated through A: published by C.
    let mut times = Vec::new();
    for _ in 0..ROUNDS {
        let (status, rotated) = admin(a, Method::POST, "keys/rotate", json!({}));
        assert_eq!(status, 201, "{rotated}");
        let kid = rotated["kid"].as_str().unwrap_or_default().to_owned();
        times.push(until(|| {
            let jwks: Value = support::polling_http()
                .get(format!("{}/.well-known/jwks.json", c.base))
                .send()
                .and_then(|r| r.json())
                .unwrap_or(Value::Null);
            jwks["keys"][0]["kid"] == kid.as_str()
        }));
    }
    let _ = writeln!(out, "| signing key rotated (published) | {} |", summary(times));

    // A tenant approved through A: routed on C.
    let (status, body) = admin(a, Method::POST, "users", json!({ "username": "bob", "roles": ["approver:*"] }));
    assert_eq!(status, 201, "{body}");
    let issued = cli_json(&[
        "user",
        "--database-url",
        url,
        "--kek-file",
        kek.to_str().unwrap(),
        "token",
        "bob",
        "--label",
        "bench",
        "--days",
        "1",
    ]);
    let bob = issued["token"].as_str().unwrap().to_owned();
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let tenant = format!("cccccccc-0000-4000-8000-{round:012}");
        let (_, made) = admin(a, Method::POST, "clients", json!({ "name": format!("t{round}"), "tenants": [tenant] }));
        let (cid, csecret) = (
            made["client"]["client_id"].as_str().unwrap().to_owned(),
            made["client_secret"].as_str().unwrap().to_owned(),
        );
        let provider_id = format!("hospital-{round}");
        let (status, body) = admin(
            a,
            Method::PUT,
            &format!("providers/{provider_id}"),
            json!({ "actor": "alice", "base_url": provider, "fhir_version": "r4" }),
        );
        assert_eq!(status, 200, "{body}");
        let mapping = format!("{}/admin/tenants/{tenant}/providers/{provider_id}", a.base);
        assert_eq!(
            admin_call(ADMIN, Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" }))).0,
            200
        );
        let token: Value = http()
            .post(format!("{}/oauth2/token", c.base))
            .basic_auth(&cid, Some(&csecret))
            .form(&[("grant_type", "client_credentials"), ("scope", tenant.as_str())])
            .send()?
            .json()?;
        let token = token["access_token"].as_str().unwrap().to_owned();
        let (status, body) = admin_call(&bob, Method::POST, &format!("{mapping}/approve"), Some(json!({})));
        assert_eq!(status, 200, "{body}");
        times.push(until(|| {
            support::polling_http()
                .get(format!("{}/stu3/Patient/pat-001", c.base))
                .bearer_auth(&token)
                .send()
                .map(|r| r.status() == 200)
                .unwrap_or(false)
        }));
    }
    let _ = writeln!(out, "| tenant approved (routed) | {} |", summary(times));

    // A module uploaded through B: serving on A and C (the two routers in
    // turn, each compiled once per replica and then known).
    let table = std::fs::read(support::guest("fhirgate_router_table"))?;
    let rules = std::fs::read(support::guest("fhirgate_router_rules"))?;
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let (name, bytes) = if round % 2 == 0 { ("router-rules", &rules) } else { ("router-table", &table) };
        let digest = fhirgate_core::digest::sha256_hex(bytes);
        let resp = http()
            .put(format!("{}/admin/modules/routing?name={name}&sha256={digest}", b.base))
            .bearer_auth(ADMIN)
            .body(bytes.clone())
            .send()?;
        assert_eq!(resp.status(), 200, "{:?}", resp.text());
        times.push(until(|| routing_digest(a) == digest && routing_digest(c) == digest));
    }
    let _ = writeln!(out, "| module uploaded (serving) | {} |", summary(times));
    Ok(out)
}

//! Partner modules swapped while the gateway serves: policy edits activate
//! without a restart, a policy that fails its checks is refused while the
//! active one keeps serving, one step can be rolled back, and every module
//! call is counted at `/metrics`.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Setup, http, provider_with};

const TENANT: &str = "6c1e0f9a-3b2d-4e5f-8a7b-9c0d1e2f3a4b";
const OTHER: &str = "0d9c8b7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a";
const ADMIN: &str = "admin-token-for-module-tests-0123456789";

fn admin(method: reqwest::Method, url: &str) -> (u16, Value) {
    let resp = support::polling_http().request(method, url).bearer_auth(ADMIN).send().expect("admin request");
    let status = resp.status().as_u16();
    (status, resp.json().unwrap_or(Value::Null))
}

fn status(base: &str) -> Value {
    admin(reqwest::Method::GET, &format!("{base}/admin/modules")).1
}

/// The request ids a provider's request log has seen.
fn seen(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["x_request_id"].as_str().map(str::to_owned))
        .collect()
}

/// Replaces `path` with `text` in one step (a new file renamed over it), as
/// an operator's deployment would: the gateway's watcher never sees a file
/// half written.
fn write_whole(path: &Path, text: &str) {
    let temp = path.with_extension("toml.new");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// Writes the policy with the tenant routed to `provider`, and waits until
/// the gateway reports a new activation or a rejection; how long that took.
fn edit(base: &str, policy: &Path, text: &str) -> (Value, Duration) {
    let before = status(base);
    let started = Instant::now();
    write_whole(policy, text);
    loop {
        let now = status(base);
        if now["generation"] != before["generation"] || now["last_rejection"] != before["last_rejection"] {
            return (now, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the edit was never picked up: {now}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A gateway with the admin API and a data directory, the tenant routed to
/// provider `a`; its policy file and that file's text.
fn gateway(providers: &[(&str, &str)]) -> (support::Served, std::path::PathBuf, String) {
    gateway_for(&[TENANT], providers)
}

/// Like [`gateway`], with each of `tenants` routed to `a`.
fn gateway_for(tenants: &[&str], providers: &[(&str, &str)]) -> (support::Served, std::path::PathBuf, String) {
    let routes: Vec<(&str, &str)> = tenants.iter().map(|t| (*t, "a")).collect();
    let gw = Setup {
        routes: &routes,
        tenants: &routes,
        providers,
        client_tenants: tenants,
        admin_token: Some(ADMIN),
        data_dir: true,
        ..Default::default()
    }
    .serve();
    let policy = gw.dir.path().join("policy.toml");
    let original = std::fs::read_to_string(&policy).unwrap();
    (gw, policy, original)
}

/// A demo provider logging each request it receives to `<dir>/<name>.log`:
/// the provider, its base URL and the log's path.
fn logged_provider(dir: &Path, name: &str) -> (support::Running, String, std::path::PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let (provider, base) = provider_with(&["--request-log", log.to_str().unwrap()]);
    (provider, base, log)
}

/// `fhirgate_module_calls_total` for `role` and `outcome` at `/metrics`.
fn module_calls(base: &str, role: &str, outcome: &str) -> u64 {
    let metrics = support::metrics(base);
    let (role, outcome) = (format!("role=\"{role}\""), format!("outcome=\"{outcome}\""));
    let line = metrics
        .lines()
        .find(|l| l.starts_with("fhirgate_module_calls_total{") && l.contains(&role) && l.contains(&outcome))
        .unwrap_or_else(|| panic!("no {role} {outcome} calls counted:\n{metrics}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn policy_edits_swap_modules_under_load_and_a_bad_policy_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ((_a, a, log_a), (_b, b, log_b)) = (logged_provider(dir.path(), "a"), logged_provider(dir.path(), "b"));
    let (gw, policy, original) = gateway(&[("a", &a), ("b", &b)]);
    // Both providers approved for the tenant; the routing table decides.
    let both = original.replace("providers = [\"a\"]", "providers = [\"a\", \"b\"]");
    let routed_to = |p: &str| both.replace(&format!("{TENANT:?} = \"a\""), &format!("{TENANT:?} = {p:?}"));
    let (s, _) = edit(&gw.base, &policy, &routed_to("a"));
    assert!(s["last_rejection"].is_null(), "{s}");

    // Continuous load: two clients reading all along.
    let token = gw.token(TENANT);
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::<Vec<String>>::default()));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            let (url, token) = (format!("{}/stu3/Patient/pat-001", gw.base), token.clone());
            std::thread::spawn(move || {
                let client = http();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).bearer_auth(&token).send() {
                        Ok(r) if r.status() == 200 => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(r) => {
                            failed.lock().unwrap().push(format!("{}: {}", r.status(), r.text().unwrap_or_default()))
                        }
                        Err(e) => failed.lock().unwrap().push(e.to_string()),
                    }
                }
            })
        })
        .collect();

    // A module file that is not a component, pinned correctly: it fails to
    // compile. And a configuration the table router cannot use.
    let bad = gw.dir.path().join("bad.wasm");
    std::fs::write(&bad, b"\0asm\x0d\0\x01\0not a component").unwrap();
    let bad_sha = support::sha256(&bad);
    let router = support::guest("fhirgate_router_table");
    let not_a_component = routed_to("b")
        .replacen(
            &format!("path = {:?}", router.display().to_string()),
            &format!("path = {:?}", bad.display().to_string()),
            1,
        )
        .replacen(&support::sha256(&router), &bad_sha, 1);
    assert_ne!(not_a_component, routed_to("b"));
    let bad_config = routed_to("b").replace(&format!("{TENANT:?} = \"b\""), &format!("{TENANT:?} = 42"));

    let mut times = Vec::new();
    let mut target = "a";
    for round in 0..22 {
        if round == 7 || round == 15 {
            let text = if round == 7 { &not_a_component } else { &bad_config };
            let (s, took) = edit(&gw.base, &policy, text);
            let reason = s["last_rejection"]["reason"].as_str().unwrap_or_default().to_owned();
            assert!(s["last_rejection"].is_object(), "round {round}: not refused: {s}");
            let expected = if round == 7 { "not a valid WebAssembly component" } else { "refused its configuration" };
            assert!(reason.contains(expected), "round {round}: {reason}");
            println!("round {round}: refused in {took:?}: {reason}");
        } else {
            target = if target == "a" { "b" } else { "a" };
            let before = status(&gw.base)["generation"].as_u64().unwrap();
            let (s, took) = edit(&gw.base, &policy, &routed_to(target));
            assert_eq!(s["generation"].as_u64(), Some(before + 1), "round {round}: not activated: {s}");
            times.push(took);
        }
        // The next request is served by the policy now active.
        let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        let (in_a, in_b) = (seen(&log_a).contains(&id), seen(&log_b).contains(&id));
        assert_eq!((in_a, in_b), (target == "a", target == "b"), "round {round}: routed to {target}?");
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(failed.is_empty(), "{} failed requests: {:?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(served.load(Ordering::Relaxed) > 100, "the load ran: {}", served.load(Ordering::Relaxed));
    times.sort();
    println!(
        "{} activations under load, {} requests served, 0 failed; file written → active: median {:?}, max {:?}",
        times.len(),
        served.load(Ordering::Relaxed),
        times[times.len() / 2],
        times[times.len() - 1]
    );

    // One step back, and the module calls were counted.
    let before = status(&gw.base);
    let (code, s) = admin(reqwest::Method::POST, &format!("{}/admin/modules/rollback", gw.base));
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["generation"].as_u64(), before["generation"].as_u64().map(|g| g + 1));
    let count = module_calls(&gw.base, "routing", "ok");
    assert!(count > 100, "{count}");
    let metrics = support::metrics(&gw.base);
    assert!(metrics.contains("fhirgate_policy_changes_total{partner=\"test\",event=\"rejected\"} 2"), "{metrics}");
    assert!(metrics.contains("fhirgate_module_call_duration_seconds_bucket{"), "{metrics}");
}

/// Runs `fhirgate guest test <args>`; exit code and stdout.
fn guest_test(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .arg("guest")
        .arg("test")
        .args(args)
        .current_dir(support::repo_root())
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_module_is_tested_alone_and_refused_live_when_its_cases_fail() {
    let router = support::guest("fhirgate_router_table");
    let router_path = router.to_str().unwrap();
    let (code, out) = guest_test(&[router_path, "guest/router-table/cases"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("5 cases: 5 passed, 0 failed"), "{out}");

    let cases = tempfile::tempdir().unwrap();
    let write_case = |provider: &str| {
        let case = serde_json::json!({
            "name": "the tenant goes to hospital a",
            "route": {"claims": {"tenant-id": TENANT}, "request": {"resource-type": "Patient", "resource-id": "p1"}},
            "expect": {"ok": {"provider-id": provider}}
        });
        std::fs::write(cases.path().join("tenant.json"), case.to_string()).unwrap();
    };
    write_case("b");
    let elsewhere = tempfile::tempdir().unwrap();
    let config = elsewhere.path().join("config.json");
    std::fs::write(&config, serde_json::json!({"tenants": {TENANT: "a"}}).to_string()).unwrap();
    let (code, out) = guest_test(&[
        router_path,
        cases.path().join("tenant.json").to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED  the tenant goes to hospital a"), "{out}");
    assert!(out.contains("/provider-id: expected \"b\", got \"a\""), "{out}");

    // The same case named in a running gateway's policy: the edit is refused
    // until the case holds.
    let (_a, a) = provider_with(&[]);
    let (gw, policy, original) = gateway(&[("a", &a)]);
    let with_cases = original.replacen(
        "[modules.routing.config.tenants]",
        &format!("cases = {:?}\n\n[modules.routing.config.tenants]", cases.path().display().to_string()),
        1,
    );
    assert_ne!(with_cases, original);
    let (s, _) = edit(&gw.base, &policy, &with_cases);
    let reason = s["last_rejection"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("routing module's cases") && reason.contains("/provider-id"), "{s}");
    let token = gw.token(TENANT);
    assert_eq!(
        http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap().status(),
        200
    );

    write_case("a");
    // The case directory is not watched: ask for the reload.
    let (code, s) = admin(reqwest::Method::POST, &format!("{}/admin/modules/reload", gw.base));
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["generation"], 1, "{s}");
}

/// `original` with provider `b` approved for OTHER too, and the table
/// router added as `[{table}]` (with `extra` lines), sending OTHER to `b`
/// and TENANT to `a`.
fn with_router_sending_other_to_b(original: &str, table: &str, extra: &str) -> String {
    let router = support::guest("fhirgate_router_table");
    original.replace(
        &format!("[tenants.{OTHER:?}]\nproviders = [\"a\"]"),
        &format!("[tenants.{OTHER:?}]\nproviders = [\"a\", \"b\"]"),
    ) + &format!(
        "\n[{table}]\npath = {:?}\nsha256 = {:?}\n{extra}\n[{table}.config.tenants]\n{TENANT:?} = \"a\"\n{OTHER:?} = \"b\"\n",
        router.display().to_string(),
        support::sha256(&router)
    )
}

#[test]
fn a_shadow_router_that_differs_on_one_tenant_reports_exactly_its_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_a, a) = provider_with(&[]);
    let (_b, b, log_b) = logged_provider(dir.path(), "b");
    let (gw, policy, original) = gateway_for(&[TENANT, OTHER], &[("a", &a), ("b", &b)]);
    // The candidate sends OTHER to b (approved for it), TENANT to a as now.
    let text = with_router_sending_other_to_b(&original, "modules.routing.shadow", "sample = 1.0\n");
    let (s, _) = edit(&gw.base, &policy, &text);
    assert!(s["last_rejection"].is_null() && s["shadows"][0]["compared"] == 0, "{s}");

    let (t1, t2) = (gw.token(TENANT), gw.token(OTHER));
    for (token, n) in [(&t1, 5), (&t2, 7)] {
        for _ in 0..n {
            let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(token).send().unwrap();
            assert_eq!(resp.status(), 200);
        }
    }
    let started = Instant::now();
    let report = loop {
        let s = status(&gw.base);
        if s["shadows"][0]["compared"] == 12 {
            break s["shadows"][0].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(report["same"], 5, "{report}");
    assert_eq!(report["different"], 7, "{report}");
    assert_eq!(report["differing_tenants"], serde_json::json!({ OTHER: 7 }), "{report}");
    assert_eq!(report["candidate_faults"], 0, "{report}");
    assert_eq!(report["role"], "routing", "{report}");
    // Never served: nothing reached the candidate's provider.
    assert!(seen(&log_b).is_empty(), "the shadow decision was served");
    let metrics = support::metrics(&gw.base);
    assert!(
        metrics.lines().any(|l| l.starts_with("fhirgate_shadow_decisions_total{")
            && l.contains("result=\"different\"")
            && l.ends_with(" 7")),
        "{metrics}"
    );
    // A candidate is checked like an active module before it runs.
    let broken = text.replace(&format!("{OTHER:?} = \"b\""), &format!("{OTHER:?} = 9"));
    let (s, _) = edit(&gw.base, &policy, &broken);
    assert!(s["last_rejection"]["reason"].as_str().unwrap_or_default().contains("shadow routing"), "{s}");
}

#[test]
fn shadow_validators_and_shapers_are_compared_on_every_call_and_never_served() {
    let (_a, a) = provider_with(&[]);
    let (gw, policy, original) = gateway_for(&[TENANT, OTHER], &[("a", &a)]);
    // Candidates for both: a validator refusing every token, and a shaper
    // forwarding requests as the active one does but passing R4 answers
    // through unshaped.
    let candidate = support::guest("fhirgate_misbehave");
    let module = |sample: f64| {
        format!(
            "path = {:?}\nsha256 = {:?}\nsample = {sample:?}\n",
            candidate.display().to_string(),
            support::sha256(&candidate)
        )
    };
    // Every validation; half of each of the shaper's two calls.
    let text = format!(
        "{original}\n[modules.token-validation.shadow]\n{}\n[modules.shaping.shadow]\n{}",
        module(1.0),
        module(0.5)
    );
    let read = |token: &str| {
        let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(token).send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.json::<Value>().unwrap()
    };
    let (t1, t2) = (gw.token(TENANT), gw.token(OTHER));
    let before = read(&t1);
    let (s, _) = edit(&gw.base, &policy, &text);
    assert!(s["last_rejection"].is_null(), "{s}");
    let roles: Vec<&str> = s["shadows"].as_array().unwrap().iter().map(|r| r["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["token-validation", "shaping"], "{s}");

    // 3 requests on one token (its verdict is cached after the first), 2 on
    // another; every one served as the active modules answer it.
    for (token, n) in [(&t1, 3), (&t2, 2)] {
        for _ in 0..n {
            assert_eq!(read(token), before, "a candidate's answer was served");
        }
    }
    let started = Instant::now();
    let (validation, shaping) = loop {
        let s = status(&gw.base);
        let (v, sh) = (s["shadows"][0].clone(), s["shadows"][1].clone());
        if v["compared"] == 5 && sh["compared"] == 4 {
            break (v, sh);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{s}");
        std::thread::sleep(Duration::from_millis(20));
    };
    // The candidate validator refused all five requests the active one let
    // through; each counted under the tenant the served claims named.
    assert_eq!(validation["different"], 5, "{validation}");
    assert_eq!(validation["differing_tenants"], serde_json::json!({ TENANT: 3, OTHER: 2 }), "{validation}");
    // Of the 2nd and 4th requests, the candidate shaper forwarded the same
    // requests (2 the same) and answered with the provider's R4 body (2
    // different): one request of each tenant.
    assert_eq!(shaping["same"], 2, "{shaping}");
    assert_eq!(shaping["different"], 2, "{shaping}");
    assert_eq!(shaping["candidate_faults"], 0, "{shaping}");
    assert_eq!(shaping["differing_tenants"], serde_json::json!({ TENANT: 1, OTHER: 1 }), "{shaping}");
    let metrics = support::metrics(&gw.base);
    for (role, result, n) in [("token-validation", "different", 5), ("shaping", "same", 2), ("shaping", "different", 2)]
    {
        assert!(
            metrics.lines().any(|l| l.starts_with("fhirgate_shadow_decisions_total{")
                && l.contains(&format!("role=\"{role}\""))
                && l.contains(&format!("result=\"{result}\""))
                && l.ends_with(&format!(" {n}"))),
            "{role} {result}: {metrics}"
        );
    }
}

#[test]
fn a_failing_shaper_passes_same_version_answers_through_only_when_the_policy_says_so() {
    let (_p, stu3) = provider_with(&["--fhir-version", "stu3"]);
    let gw = Setup {
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &stu3)],
        versions: &[("p", "stu3")],
        client_tenants: &[TENANT],
        admin_token: Some(ADMIN),
        data_dir: true,
        ..Default::default()
    }
    .serve();
    let policy = gw.dir.path().join("policy.toml");
    let shaper = support::guest("fhirgate_shaper_fhir");
    let misbehave = support::guest("fhirgate_misbehave");
    let original = std::fs::read_to_string(&policy).unwrap();
    let failing = |on_fault: &str| {
        original.replacen(
            &format!("path = {:?}\nsha256 = {:?}\n", shaper.display().to_string(), support::sha256(&shaper)),
            &format!(
                "path = {:?}\nsha256 = {:?}\non_fault = {on_fault:?}\nconfig = {{ shaping = \"panic\" }}\n",
                misbehave.display().to_string(),
                support::sha256(&misbehave)
            ),
            1,
        )
    };
    let pass_through = failing("pass-through");
    assert!(pass_through.contains("pass-through"));
    let (s, _) = edit(&gw.base, &policy, &pass_through);
    assert!(s["last_rejection"].is_null(), "{s}");
    let token = gw.token(TENANT);
    let get = |path: &str| http().get(format!("{}/{path}", gw.base)).bearer_auth(&token).send().unwrap();

    // STU3 provider, STU3 face: the provider's own answer, its address replaced.
    let resp = get("stu3/Patient/pat-001");
    assert_eq!(resp.status(), 200);
    let patient: Value = resp.json().unwrap();
    assert_eq!(patient["id"], "pat-001");
    support::validate_fhir("stu3", &patient);
    let resp = get("stu3/Patient?family=chau");
    assert_eq!(resp.status(), 200);
    let text = resp.text().unwrap();
    assert!(!text.contains(&stu3), "the provider's address leaked: {text}");
    let bundle: Value = serde_json::from_str(&text).unwrap();
    assert!(bundle["entry"][0]["fullUrl"].as_str().unwrap().starts_with(&format!("{}/stu3/Patient/", gw.base)));
    // The DSTU2 face needs shaping: the fault is the answer.
    let resp = get("dstu2/Patient/pat-001");
    assert_eq!(resp.status(), 500);
    let outcome: Value = resp.json().unwrap();
    assert!(support::assert_outcome(&outcome).contains("shaping module"), "{outcome}");

    // By default a shaping fault fails the request.
    let (s, _) = edit(&gw.base, &policy, &failing("error"));
    assert!(s["last_rejection"].is_null(), "{s}");
    assert_eq!(get("stu3/Patient/pat-001").status(), 500);

    assert_eq!(module_calls(&gw.base, "shaping", "trap"), 4);
}

#[test]
fn a_tenant_can_have_its_own_router() {
    let dir = tempfile::tempdir().unwrap();
    let ((_a, a, log_a), (_b, b, log_b)) = (logged_provider(dir.path(), "a"), logged_provider(dir.path(), "b"));
    let (gw, policy, original) = gateway_for(&[TENANT, OTHER], &[("a", &a), ("b", &b)]);
    let text = with_router_sending_other_to_b(&original, &format!("tenant_modules.{OTHER:?}.routing"), "");
    let (s, _) = edit(&gw.base, &policy, &text);
    assert!(s["last_rejection"].is_null(), "{s}");
    let own: Vec<&Value> = s["modules"].as_array().unwrap().iter().filter(|m| m["tenant"] == OTHER).collect();
    assert_eq!(own.len(), 1, "{s}");
    assert_eq!(own[0]["role"], "routing");

    for (tenant, log, other_log) in [(TENANT, &log_a, &log_b), (OTHER, &log_b, &log_a)] {
        let resp =
            http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(gw.token(tenant)).send().unwrap();
        assert_eq!(resp.status(), 200);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(seen(log).contains(&id) && !seen(other_log).contains(&id), "{tenant}");
    }

    // A tenant's own module is checked like the partner's.
    let (s, _) = edit(&gw.base, &policy, &text.replace(&format!("{OTHER:?} = \"b\""), &format!("{OTHER:?} = 7")));
    let reason = s["last_rejection"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("tenant {OTHER}'s routing")), "{s}");
}

/// Runs the gateway's command line; its exit code and output.
fn fhirgate(args: &[&str]) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate")).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code(), text)
}

/// `fhirgate guest new <name> --role <role>` in `dir`: the crate's root.
/// Nothing in it points back into the source tree: it builds where only
/// the binary is.
fn new_module(dir: &Path, name: &str, role: &str) -> std::path::PathBuf {
    let (code, out) = fhirgate(&["guest", "new", name, "--role", role, "--dir", dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    let root = dir.join(name);
    let tree = support::repo_root().canonicalize().unwrap().display().to_string();
    let files = support::files_under(&root);
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        assert!(!text.contains(&tree), "{} points into {tree}", path.display());
        assert!(!text.contains("../../wit"), "{} points outside the crate", path.display());
    }
    let seen = files.len();
    assert!(root.join("sdk/wit/worlds.wit").exists() && seen > 10, "the SDK was not vendored into {}", root.display());
    root
}

/// Replaces `from` (which must be there) with `to` in the file at `path`.
fn replace_in(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

/// Builds a module crate as its README says (sharing a target directory
/// across runs), then runs its cases with `fhirgate guest test`, expecting
/// `cases` to pass; the module's `.wasm`.
fn build_and_test(root: &Path, cases: usize) -> std::path::PathBuf {
    let target = support::repo_root().join("target/scaffold");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = std::process::Command::new(cargo)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(root)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "{}", String::from_utf8_lossy(&build.stderr));
    let name = root.file_name().unwrap().to_str().unwrap().replace('-', "_");
    let wasm = target.join(format!("wasm32-wasip2/release/{name}.wasm"));
    let dir = root.join("cases");
    let (code, out) = fhirgate(&["guest", "test", wasm.to_str().unwrap(), dir.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("{cases} cases: {cases} passed, 0 failed")), "{out}");
    wasm
}

#[test]
fn a_partner_creates_tests_and_activates_its_own_module_on_a_running_gateway() {
    let work = tempfile::tempdir().unwrap();
    let root = new_module(work.path(), "st-mary-router", "router");

    // The partner's edit: an unknown tenant is a 404 of its own, and the
    // case that says so.
    replace_in(&root.join("src/lib.rs"), "deny(403, \"unknown-tenant\"", "deny(404, \"no-such-tenant\"");
    let case = root.join("cases/unknown-tenant.json");
    replace_in(&case, "403", "404");
    replace_in(&case, "\"unknown-tenant\"", "\"no-such-tenant\"");
    let wasm = build_and_test(&root, 4);
    let cases = root.join("cases");

    // Activate it on a running gateway by editing the policy.
    let (_a, a) = provider_with(&[]);
    let (gw, policy, original) = gateway_for(&[TENANT, OTHER], &[("a", &a)]);
    let table = support::guest("fhirgate_router_table");
    let text = original
        .replacen(
            &format!("path = {:?}\nsha256 = {:?}\n", table.display().to_string(), support::sha256(&table)),
            &format!(
                "path = {:?}\nsha256 = {:?}\ncases = {:?}\n",
                wasm.display().to_string(),
                support::sha256(&wasm),
                cases.display().to_string()
            ),
            1,
        )
        .replacen(&format!("{OTHER:?} = \"a\"\n"), "", 1);
    let (s, _) = edit(&gw.base, &policy, &text);
    assert!(s["last_rejection"].is_null(), "{s}");
    assert!(s["modules"].as_array().unwrap().iter().any(|m| m["module"] == "st_mary_router"), "{s}");
    let get = |tenant: &str| {
        http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(gw.token(tenant)).send().unwrap()
    };
    assert_eq!(get(TENANT).status(), 200);
    // Out of the module's table, the other tenant still reaches the
    // provider the directory has active for it, as with the default router
    // (the partner's 404 for a tenant with none is its case's to show).
    assert_eq!(get(OTHER).status(), 200);
}

#[test]
fn a_partner_creates_tests_and_activates_its_own_token_validator() {
    let work = tempfile::tempdir().unwrap();
    let root = new_module(work.path(), "st-mary-validator", "validator");

    // The partner's edit: its own words for a client it does not list, and
    // the case that expects them.
    replace_in(&root.join("src/lib.rs"), "This client may not use this gateway.", "Ask St Mary's IT to list this app.");
    replace_in(
        &root.join("cases/other-client.json"),
        "\"code\": \"insufficient_scope\"",
        "\"code\": \"insufficient_scope\", \"message-contains\": \"St Mary's IT\"",
    );
    let wasm = build_and_test(&root, 10);

    let (_a, a) = provider_with(&[]);
    let (gw, policy, original) = gateway_for(&[TENANT], &[("a", &a)]);
    let jwt = support::guest("fhirgate_token_jwt");
    let with_clients = |clients: &str| {
        original.replacen(
            &format!("path = {:?}\nsha256 = {:?}\n", jwt.display().to_string(), support::sha256(&jwt)),
            &format!(
                "path = {:?}\nsha256 = {:?}\ncases = {:?}\n[modules.token-validation.config]\nclients = {clients}\n",
                wasm.display().to_string(),
                support::sha256(&wasm),
                root.join("cases").display().to_string()
            ),
            1,
        )
    };
    let get = || http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(gw.token(TENANT)).send().unwrap();

    // Live with the test client listed: served.
    let (s, _) = edit(&gw.base, &policy, &with_clients(r#"["app"]"#));
    assert!(s["last_rejection"].is_null(), "{s}");
    assert!(s["modules"].as_array().unwrap().iter().any(|m| m["module"] == "st_mary_validator"), "{s}");
    assert_eq!(get().status(), 200);

    // Listing only another client refuses this one, in RFC 6750 terms.
    let (s, _) = edit(&gw.base, &policy, &with_clients(r#"["another-app"]"#));
    assert!(s["last_rejection"].is_null(), "{s}");
    let resp = get();
    assert_eq!(resp.status(), 403);
    let challenge = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("error=\"insufficient_scope\""), "{challenge}");
    let outcome: Value = resp.json().unwrap();
    assert!(support::assert_outcome(&outcome).contains("St Mary's IT"), "{outcome}");
    assert!(module_calls(&gw.base, "token-validation", "denied") >= 1);
}

#[test]
fn a_module_uploaded_through_the_admin_api_goes_live_or_changes_nothing() {
    let (_a, a) = provider_with(&[]);
    let (gw, policy, original) = gateway(&[("a", &a)]);
    let upload = |role: &str, query: &str, bytes: Vec<u8>| {
        let resp = http()
            .put(format!("{}/admin/modules/{role}{query}", gw.base))
            .bearer_auth(ADMIN)
            .body(bytes)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap_or(Value::Null))
    };
    // The rules router reads the same table: it can replace the table router.
    let rules = std::fs::read(support::guest("fhirgate_router_rules")).unwrap();
    let digest = support::sha256(&support::guest("fhirgate_router_rules"));
    let (code, s) = upload("routing", &format!("?name=router-rules&sha256={digest}"), rules.clone());
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["generation"], 1, "{s}");
    let routing = s["modules"].as_array().unwrap().iter().find(|m| m["role"] == "routing").unwrap().clone();
    assert_eq!(routing["digest"], digest);
    let now = std::fs::read_to_string(&policy).unwrap();
    assert!(now.contains(&digest) && now.contains("router-rules-"), "the policy file names it: {now}");
    assert_ne!(now, original);
    let token = gw.token(TENANT);
    assert_eq!(
        http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap().status(),
        200
    );

    // Not a component: refused, and neither the file nor what serves changes.
    let (code, s) = upload("routing", "?name=broken", b"\0asm\x0d\0\x01\0nope".to_vec());
    assert_eq!(code, 422, "{s}");
    assert!(s["rejection"]["reason"].as_str().unwrap().contains("not a valid WebAssembly component"), "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), now);
    assert_eq!(status(&gw.base)["modules"][1]["digest"], digest);
    // A wrong digest, an unknown role, and no admin token.
    assert_eq!(upload("routing", "?sha256=00", rules.clone()).0, 400);
    assert_eq!(upload("billing", "", rules.clone()).0, 400);
    let resp = http().put(format!("{}/admin/modules/routing", gw.base)).body(rules.clone()).send().unwrap();
    assert_eq!(resp.status(), 401);

    // A third policy: the table router uploaded under another name.
    let table = std::fs::read(support::guest("fhirgate_router_table")).unwrap();
    let table_digest = support::sha256(&support::guest("fhirgate_router_table"));
    let (code, s) = upload("routing", "?name=table-again", table.clone());
    let table_bytes = table;
    assert_eq!(code, 200, "{s}");
    assert_eq!((s["rollback_steps"].as_u64(), s["forward_steps"].as_u64()), (Some(2), Some(0)), "{s}");
    let third = std::fs::read_to_string(&policy).unwrap();
    assert!(third.contains("table-again-"), "{third}");

    // Back one step: the rules router again, and the file says so.
    let step = |way: &str| admin(reqwest::Method::POST, &format!("{}/admin/modules/{way}", gw.base));
    let (code, s) = step("rollback");
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["modules"][1]["digest"], digest, "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), now);
    assert_eq!((s["rollback_steps"].as_u64(), s["forward_steps"].as_u64()), (Some(1), Some(1)), "{s}");
    assert!(s["next"].to_string().contains("table-again"), "{s}");
    // Back another: the policy the gateway started with (not the one the
    // first rollback left), so that a restart keeps it; the watcher sees
    // nothing to load.
    let (code, s) = step("rollback");
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["modules"][1]["module"], "fhirgate_router_table", "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);
    std::thread::sleep(Duration::from_millis(350));
    let after = status(&gw.base);
    assert_eq!(after["generation"], s["generation"], "{after}");
    assert_eq!(after["modules"][1]["module"], "fhirgate_router_table", "{after}");
    let (code, refused) = step("rollback");
    assert_eq!(code, 409, "{refused}");
    assert!(refused.to_string().contains("no earlier policy"), "{refused}");
    // And forward again, step by step, explicitly.
    let (code, s) = step("forward");
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["modules"][1]["digest"], digest, "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), now);
    let (code, s) = step("forward");
    assert_eq!(code, 200, "{s}");
    assert_eq!(s["modules"][1]["digest"], table_digest, "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), third);
    assert_eq!(step("forward").0, 409);
    assert_eq!(
        http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap().status(),
        200
    );
    // A new policy after a rollback cuts off what was ahead of it.
    assert_eq!(step("rollback").0, 200);
    let (code, s) = upload("routing", "?name=rules-again", rules.clone());
    let rules_bytes = rules;
    assert_eq!(code, 200, "{s}");
    assert_eq!((s["rollback_steps"].as_u64(), s["forward_steps"].as_u64()), (Some(2), Some(0)), "{s}");
    assert_eq!(step("forward").0, 409);
    assert_eq!(step("rollback").0, 200);
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), now);

    // Far steps keep their text, not their compiled modules: stepping to
    // one loads and checks it again, both ways.
    assert_eq!(upload("routing", "?name=t1", table_bytes.clone()).0, 200);
    let (code, s) = upload("routing", "?name=r2", rules_bytes);
    assert_eq!(code, 200, "{s}");
    let r2 = std::fs::read_to_string(&policy).unwrap();
    assert_eq!(s["rollback_steps"].as_u64(), Some(3), "{s}");
    for _ in 0..3 {
        assert_eq!(step("rollback").0, 200);
    }
    let s = status(&gw.base);
    assert_eq!(s["modules"][1]["module"], "fhirgate_router_table", "{s}");
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), original);
    assert_eq!(
        http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap().status(),
        200
    );
    for _ in 0..3 {
        assert_eq!(step("forward").0, 200);
    }
    let s = status(&gw.base);
    assert_eq!((s["modules"][1]["digest"].as_str(), s["forward_steps"].as_u64()), (Some(digest.as_str()), Some(0)));
    assert_eq!(std::fs::read_to_string(&policy).unwrap(), r2);
}

//! Tenants, providers and routing, end to end: each tenant reaches only its
//! provider (proven from the providers' own request logs), onboarding with
//! approval, outages and the circuit breaker, batches, paging through
//! cursors, upstream credentials, and the access log.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Setup, assert_outcome, http, log_lines, provider_with, repo_root};

const TENANT_A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const TENANT_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
const ADMIN: &str = "admin-token-for-tests-0123456789abcdef";

/// Request ids a provider saw, for FHIR requests (not `/metadata`).
fn seen_ids(path: &Path) -> BTreeSet<String> {
    log_lines(path)
        .iter()
        .filter(|l| !l["path"].as_str().unwrap_or("").ends_with("/metadata"))
        .filter_map(|l| l["x_request_id"].as_str().map(str::to_owned))
        .collect()
}

fn get(url: &str, token: &str) -> reqwest::blocking::Response {
    http().get(url).bearer_auth(token).send().expect("request")
}

fn request_id(resp: &reqwest::blocking::Response) -> String {
    resp.headers()["x-request-id"].to_str().unwrap().to_owned()
}

fn admin(method: reqwest::Method, url: &str, body: Option<Value>) -> (u16, Value) {
    support::admin_call(ADMIN, method, url, body)
}

fn user_token(gw: &support::Served, name: &str, role: &str) -> String {
    support::user_token(gw, ADMIN, name, role)
}

use support::decide;

/// Polls `f` until it holds or `limit` passes (changes made by another
/// process reach the gateway on its next directory poll).
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn each_tenant_reaches_only_its_provider_and_forged_routes_are_refused() {
    let mut outcomes = support::Outcomes::default();
    let logs = tempfile::tempdir().unwrap();
    let (log1, log2) = (logs.path().join("p1.log"), logs.path().join("p2.log"));
    let (_p1, base1) = provider_with(&["--request-log", log1.to_str().unwrap()]);
    let (_p2, base2) = provider_with(&["--request-log", log2.to_str().unwrap()]);
    let forged = "cccccccc-0000-4000-8000-00000000000c";
    let gw = Setup {
        // The router sends the third tenant to p2, which is not approved for it.
        routes: &[(TENANT_A, "p1"), (TENANT_B, "p2"), (forged, "p2")],
        tenants: &[(TENANT_A, "p1"), (TENANT_B, "p2"), (forged, "p1")],
        providers: &[("p1", &base1), ("p2", &base2)],
        client_tenants: &[TENANT_A, TENANT_B, forged],
        ..Default::default()
    }
    .serve();
    let (ta, tb, tf) = (gw.token(TENANT_A), gw.token(TENANT_B), gw.token(forged));
    let mut sent: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (tenant, token) in [(TENANT_A, &ta), (TENANT_B, &tb)] {
        for path in ["stu3/Patient/pat-001", "dstu2/Patient?family=chau", "stu3/Patient?_count=3"] {
            let resp = get(&format!("{}/{path}", gw.base), token);
            assert_eq!(resp.status(), 200, "{tenant} {path}");
            sent.entry(tenant).or_default().insert(request_id(&resp));
        }
    }
    let resp = get(&format!("{}/stu3/Patient/pat-001", gw.base), &tf);
    assert_eq!(resp.status(), 500, "a routing answer naming an unapproved provider is refused");
    let forged_id = request_id(&resp);
    assert!(outcomes.check("stu3", resp.json().unwrap()).contains("not active for this token's tenant"));

    let (seen1, seen2) = (seen_ids(&log1), seen_ids(&log2));
    assert_eq!(seen1, sent[TENANT_A], "provider 1 saw exactly tenant A's requests");
    assert_eq!(seen2, sent[TENANT_B], "provider 2 saw exactly tenant B's requests");
    assert!(!seen2.contains(&forged_id) && !seen1.contains(&forged_id));
    // The app's token never travels upstream.
    for line in log_lines(&log1).iter().chain(log_lines(&log2).iter()) {
        assert_eq!(line["auth"], "none", "{line}");
    }
    outcomes.validate();
}

/// The test's providers listen on loopback, which providers registered
/// through the admin API may not use unless the operator allows it.
const LOOPBACK_ALLOWED: &str = "[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n";

#[test]
fn onboarding_cannot_reach_special_addresses_or_probe_them() {
    let (_p, base) = provider_with(&[]);
    let port = base.trim_start_matches("http://").split(['/', ':']).nth(1).unwrap().to_owned();
    let gw = Setup { data_dir: true, admin_token: Some(ADMIN), ..Default::default() }.serve();
    let admin_url = |p: &str| format!("{}/admin/{p}", gw.base);
    let gw_port = gw.base.rsplit(':').next().unwrap().to_owned();
    let register = |id: &str, base_url: &str| {
        admin(
            reqwest::Method::PUT,
            &admin_url(&format!("providers/{id}")),
            Some(json!({ "actor": "alice", "base_url": base_url, "fhir_version": "r4" })),
        )
    };
    // A real FHIR server on loopback, in several spellings, and the
    // gateway's own admin API: refused by policy, nothing fetched.
    for (i, url) in [
        base.clone(),
        format!("http://localhost:{port}/fhir"),
        format!("http://2130706433:{port}/fhir"),
        format!("http://[::ffff:127.0.0.1]:{port}/fhir"),
        format!("http://127.0.0.1:{gw_port}/admin"),
    ]
    .iter()
    .enumerate()
    {
        let (status, body) = register(&format!("p{i}"), url);
        assert_eq!(status, 422, "{url}: {body}");
        assert!(body["error"].as_str().unwrap().contains("refused by policy"), "{url}: {body}");
    }
    // A fragment (which would choose the path fetched), user-info or
    // another scheme: refused before anything is fetched.
    for url in [
        format!("http://127.0.0.1:{gw_port}/admin/clients#"),
        format!("http://u:p@127.0.0.1:{port}/fhir"),
        "ftp://x/fhir".into(),
    ] {
        let (status, body) = register("odd", &url);
        assert_eq!(status, 400, "{url}: {body}");
    }
    // A closed port says "unreachable", and nothing about what answered.
    let gw2 = Setup { data_dir: true, admin_token: Some(ADMIN), extra_config: LOOPBACK_ALLOWED, ..Default::default() }
        .serve();
    let (status, body) = admin(
        reqwest::Method::PUT,
        &format!("{}/admin/providers/closed", gw2.base),
        Some(json!({ "actor": "alice", "base_url": "http://127.0.0.1:9/fhir", "fhir_version": "r4" })),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("unreachable"), "{body}");
    // Something that answers but is no FHIR server: its status only.
    let (status, body) = admin(
        reqwest::Method::PUT,
        &format!("{}/admin/providers/admin", gw2.base),
        Some(json!({ "actor": "alice", "base_url": format!("{}/admin", gw2.base), "fhir_version": "r4" })),
    );
    assert_eq!(status, 422, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("answered 401") || error.contains("answered 404"), "{body}");
    assert!(!error.contains("bearer") && !error.contains("{"), "{body}");
    // With loopback allowed, the FHIR server registers.
    let (status, body) = admin(
        reqwest::Method::PUT,
        &format!("{}/admin/providers/hospital", gw2.base),
        Some(json!({ "actor": "alice", "base_url": base, "fhir_version": "r4" })),
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn onboarding_needs_approval_and_an_edit_needs_it_again() {
    let mut outcomes = support::Outcomes::default();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("p.log");
    let (_p, base) = provider_with(&["--request-log", log.to_str().unwrap()]);
    let gw = Setup {
        client_tenants: &[TENANT_A],
        data_dir: true,
        admin_token: Some(ADMIN),
        extra_config: LOOPBACK_ALLOWED,
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT_A);
    let read = || get(&format!("{}/stu3/Patient/pat-001", gw.base), &token);
    let admin_url = |p: &str| format!("{}/admin/{p}", gw.base);

    // Unknown tenant.
    let resp = read();
    assert_eq!(resp.status(), 403);
    assert!(outcomes.check("stu3", resp.json().unwrap()).contains("not onboarded"));

    // A provider whose /metadata does not answer is not registered.
    let (status, body) = admin(
        reqwest::Method::PUT,
        &admin_url("providers/nowhere"),
        Some(json!({ "actor": "alice", "base_url": "http://127.0.0.1:9/fhir", "fhir_version": "r4" })),
    );
    assert_eq!(status, 422, "{body}");
    // Declared as the wrong version: refused.
    let (status, body) = admin(
        reqwest::Method::PUT,
        &admin_url("providers/hospital"),
        Some(json!({ "actor": "alice", "base_url": base, "fhir_version": "stu3" })),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("4.0.1"), "{body}");
    let (status, body) = admin(
        reqwest::Method::PUT,
        &admin_url("providers/hospital"),
        Some(json!({ "actor": "alice", "base_url": base, "fhir_version": "r4" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["metadata"]["fhir_version"], "4.0.1");

    // Requested → pending: nothing reaches the provider.
    let mapping = admin_url(&format!("tenants/{TENANT_A}/providers/hospital"));
    let (status, body) = admin(reqwest::Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "alice" })));
    assert_eq!(status, 400, "the requester cannot approve their own request: {body}");
    let (status, body) = admin(reqwest::Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" })));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mapping"]["state"], "pending");
    let resp = read();
    assert_eq!(resp.status(), 403);
    assert!(outcomes.check("stu3", resp.json().unwrap()).contains("awaiting approval"));
    assert!(seen_ids(&log).is_empty(), "a pending mapping sends nothing upstream");

    // Only the named approver decides, with their own token: not another
    // approver, not the shared admin token naming them.
    let token_of = |name: &str| user_token(&gw, name, "approver:*");
    let (bob, carol, dave, mallory) = (token_of("bob"), token_of("carol"), token_of("dave"), token_of("mallory"));
    assert_eq!(decide(&mallory, &mapping, "approve", json!({})).0, 403);
    let (status, body) = admin(reqwest::Method::POST, &format!("{mapping}/approve"), Some(json!({ "actor": "bob" })));
    assert_eq!(status, 403, "the admin token cannot approve: {body}");
    let (status, body) = decide(&bob, &mapping, "approve", json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mapping"]["state"], "active");
    // The approval ran the live provider check (its calls say so) and keeps
    // its report.
    assert_eq!(body["mapping"]["check_report"]["passed"], true, "{body}");
    let resp = read();
    assert_eq!(resp.status(), 200);
    let approved_id = request_id(&resp);
    assert_eq!(seen_ids(&log), BTreeSet::from(["check-provider".to_owned(), approved_id.clone()]));

    // An edit returns it to pending; a rejection keeps it closed.
    let (status, _) = admin(reqwest::Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "carol" })));
    assert_eq!(status, 200);
    assert_eq!(read().status(), 403);
    let (status, _) = decide(&carol, &mapping, "reject", json!({ "note": "wrong hospital" }));
    assert_eq!(status, 200);
    let resp = read();
    assert_eq!(resp.status(), 403);
    assert!(outcomes.check("stu3", resp.json().unwrap()).contains("rejected"));
    assert_eq!(seen_ids(&log).len(), 2, "nothing more reached the provider");

    // The history says who did what.
    let (status, tenant) = admin(reqwest::Method::GET, &admin_url(&format!("tenants/{TENANT_A}")), None);
    assert_eq!(status, 200);
    let history: Vec<(String, String)> = tenant["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().to_owned(), e["actor"].as_str().unwrap().to_owned()))
        .collect();
    // What the shared token did is marked as its, under the name it gave.
    let expected = [
        ("mapping.requested", "admin-api:alice"),
        ("mapping.approved", "bob"),
        ("mapping.edited", "admin-api:alice"),
        ("mapping.rejected", "carol"),
    ];
    assert_eq!(history, expected.map(|(a, b)| (a.to_owned(), b.to_owned())).to_vec());

    // The CLI, from another process, onboards too; the gateway picks it up.
    let data = gw.dir.path().join("data");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
            .args(["directory", "--data-dir", data.to_str().unwrap(), "--allowed-range", "127.0.0.0/8"])
            .args(args)
            .current_dir(repo_root())
            .env("FHIRGATE_LOG", "warn")
            .output()
            .expect("running the CLI");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    cli(&["--actor", "alice", "request", TENANT_A, "hospital", "--approver", "dave"]);
    let policy = gw.dir.path().join("policy.toml");
    cli(&["--token", &dave, "approve", TENANT_A, "hospital", "--policy", policy.to_str().unwrap()]);
    assert!(eventually(Duration::from_secs(10), || read().status() == 200), "a CLI approval routes");

    // Moving the provider to another server needs approval again, and the
    // one who moved it cannot approve the move.
    let moved_log = log_dir.path().join("moved.log");
    let (_moved, moved_base) = provider_with(&["--request-log", moved_log.to_str().unwrap()]);
    let (status, body) = admin(
        reqwest::Method::PUT,
        &admin_url("providers/hospital"),
        Some(json!({ "actor": "dave", "base_url": moved_base, "fhir_version": "r4" })),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(read().status(), 403, "a moved provider is pending again");
    let (status, body) = decide(&dave, &mapping, "approve", json!({}));
    assert_eq!(status, 403, "the editor cannot approve their own change: {body}");
    let (status, _) = admin(reqwest::Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" })));
    assert_eq!(status, 200);
    let (status, _) = decide(&bob, &mapping, "approve", json!({}));
    assert_eq!(status, 200);
    let resp = read();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        seen_ids(&moved_log),
        BTreeSet::from(["check-provider".to_owned(), request_id(&resp)]),
        "the approval's check and then requests go to the approved server"
    );

    // Credential files named through the admin API must live in the data
    // directory's provider-secrets folder.
    let (status, body) = admin(
        reqwest::Method::PUT,
        &admin_url("providers/sneaky"),
        Some(json!({
            "actor": "alice", "base_url": base, "fhir_version": "r4",
            "auth": { "type": "header", "name": "x-api-key", "value_file": "/etc/passwd" }
        })),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("provider-secrets"), "{body}");
    outcomes.validate();
}

#[test]
fn an_outage_stays_with_its_tenant_and_the_breaker_recovers() {
    let (_p1, base1) = provider_with(&[]);
    let (p2, base2) = provider_with(&[]);
    let address2 = p2.get("address");
    let gw = Setup {
        routes: &[(TENANT_A, "p1"), (TENANT_B, "p2")],
        tenants: &[(TENANT_A, "p1"), (TENANT_B, "p2")],
        providers: &[("p1", &base1), ("p2", &base2)],
        client_tenants: &[TENANT_A, TENANT_B],
        // Open long enough that the loop below runs inside one open window.
        provider_settings: "breaker = { failures = 3, open_ms = 4000 }",
        ..Default::default()
    }
    .serve();
    let (ta, tb) = (gw.token(TENANT_A), gw.token(TENANT_B));
    let url_a = format!("{}/stu3/Patient/pat-001", gw.base);
    let url_b = format!("{}/dstu2/Patient/pat-001", gw.base);
    let timed = |url: &str, token: &str| {
        let t = Instant::now();
        let resp = get(url, token);
        (resp, t.elapsed())
    };
    let baseline: Vec<Duration> = (0..10).map(|_| timed(&url_a, &ta).1).collect();
    assert_eq!(get(&url_b, &tb).status(), 200);

    drop(p2);
    let mut statuses = Vec::new();
    let mut during = Vec::new();
    for _ in 0..6 {
        let resp = get(&url_b, &tb);
        let status = resp.status().as_u16();
        assert_eq!(resp.headers()["content-type"], "application/json+fhir; charset=utf-8", "DSTU2 face");
        if status == 503 {
            let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=4).contains(&retry), "Retry-After {retry}");
        }
        let outcome: Value = resp.json().unwrap();
        assert_outcome(&outcome);
        support::validate_fhir("dstu2", &outcome);
        statuses.push(status);
        let (resp, took) = timed(&url_a, &ta);
        assert_eq!(resp.status(), 200, "the other tenant keeps working");
        during.push(took);
    }
    // Refused connections first (502), then the open breaker answers at
    // once (503) without touching the provider.
    assert_eq!(statuses[0], 502, "{statuses:?}");
    let first_open = statuses.iter().position(|s| *s == 503).expect("the breaker opened");
    assert!(statuses[..first_open].iter().all(|s| *s == 502), "{statuses:?}");
    assert!(statuses[first_open..].iter().all(|s| *s == 503), "{statuses:?}");
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (before, while_down) = (median(&mut baseline.clone()), median(&mut during));
    println!("tenant A median latency: {before:?} before, {while_down:?} while tenant B's provider is down");

    // The provider comes back on the same address; after the open window
    // one probe closes the breaker.
    let (_p2, _) = provider_with(&["--listen", &address2]);
    assert!(
        eventually(Duration::from_secs(15), || get(&url_b, &tb).status() == 200),
        "the breaker recovers when the provider is back"
    );
}

#[test]
fn a_slow_provider_gets_a_504_in_the_clients_version() {
    let (_slow, base) = provider_with(&["--delay-ms", "3000"]);
    let gw = Setup {
        routes: &[(TENANT_A, "slow")],
        tenants: &[(TENANT_A, "slow")],
        providers: &[("slow", &base)],
        client_tenants: &[TENANT_A],
        provider_settings: "timeout_ms = 400",
        ..Default::default()
    }
    .serve();
    let resp = get(&format!("{}/stu3/Patient/pat-001", gw.base), &gw.token(TENANT_A));
    assert_eq!(resp.status(), 504);
    assert_eq!(resp.headers()["content-type"], "application/fhir+json; charset=utf-8");
    let body: Value = resp.json().unwrap();
    assert_outcome(&body);
    assert_eq!(body["issue"][0]["code"], "timeout");
    support::validate_fhir("stu3", &body);
}

#[test]
fn a_batch_answers_every_entry_and_refuses_writes() {
    let mut outcomes = support::Outcomes::default();
    let (_p, base) = provider_with(&[]);
    let gw = Setup {
        routes: &[(TENANT_A, "p")],
        tenants: &[(TENANT_A, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT_A],
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT_A);
    let mut entries: Vec<Value> =
        (1..=7).map(|i| json!({ "request": { "method": "GET", "url": format!("Patient/pat-{i:03}") } })).collect();
    entries.insert(4, json!({ "request": { "method": "GET", "url": "Patient/no-such-patient" } }));
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
    let resp = http().post(format!("{}/stu3", gw.base)).bearer_auth(&token).json(&bundle).send().unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().unwrap();
    assert_eq!(out["type"], "batch-response");
    let statuses: Vec<&str> =
        out["entry"].as_array().unwrap().iter().map(|e| e["response"]["status"].as_str().unwrap()).collect();
    assert_eq!(statuses.len(), 8);
    assert_eq!(statuses.iter().filter(|s| s.starts_with("200")).count(), 7, "{statuses:?}");
    assert!(statuses[4].starts_with("404"), "{statuses:?}");
    assert_eq!(out["entry"][4]["resource"]["resourceType"], "OperationOutcome");
    assert_eq!(out["entry"][0]["resource"]["id"], "pat-001");
    support::validate_fhir("stu3", &out);

    // Writes inside a batch fail alone; transactions are refused whole.
    let mixed = json!({ "resourceType": "Bundle", "type": "batch", "entry": [
        { "request": { "method": "GET", "url": "Patient/pat-001" } },
        { "request": { "method": "PUT", "url": "Patient/pat-001" }, "resource": { "resourceType": "Patient" } },
    ]});
    let out: Value =
        http().post(format!("{}/stu3", gw.base)).bearer_auth(&token).json(&mixed).send().unwrap().json().unwrap();
    assert!(out["entry"][0]["response"]["status"].as_str().unwrap().starts_with("200"));
    assert!(out["entry"][1]["response"]["status"].as_str().unwrap().starts_with("405"));
    let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [] });
    let resp = http().post(format!("{}/dstu2", gw.base)).bearer_auth(&token).json(&tx).send().unwrap();
    assert_eq!(resp.status(), 422);
    assert!(outcomes.check("dstu2", resp.json().unwrap()).contains("Transactions are not supported"));
    outcomes.validate();
}

#[test]
fn paging_through_200_patients_returns_each_once() {
    let mut outcomes = support::Outcomes::default();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("p.log");
    let (_p, base) = provider_with(&["--patients", "200", "--request-log", log.to_str().unwrap()]);
    let gw = Setup {
        routes: &[(TENANT_A, "p"), (TENANT_B, "p")],
        tenants: &[(TENANT_A, "p"), (TENANT_B, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT_A, TENANT_B],
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT_A);
    for face in ["stu3", "dstu2"] {
        let mut url = format!("{}/{face}/Patient?_count=17", gw.base);
        let mut ids = Vec::new();
        let mut pages = 0;
        let mut second_page = None;
        loop {
            let resp = get(&url, &token);
            assert_eq!(resp.status(), 200, "{url}");
            let page: Value = resp.json().unwrap();
            assert_eq!(page["total"], 200);
            for e in page["entry"].as_array().unwrap() {
                ids.push(e["resource"]["id"].as_str().unwrap().to_owned());
            }
            pages += 1;
            let links = page["link"].as_array().unwrap();
            for l in links {
                let u = l["url"].as_str().unwrap();
                assert!(u.starts_with(&format!("{}/{face}?_getpages=", gw.base)), "{u}");
                assert!(!u.contains(&base) && !u.contains("_offset"), "the provider's link leaks: {u}");
            }
            match links.iter().find(|l| l["relation"] == "next") {
                Some(next) => {
                    url = next["url"].as_str().unwrap().to_owned();
                    if pages == 1 {
                        second_page = Some(url.clone());
                    }
                }
                None => break,
            }
            assert!(pages < 50, "paging does not end");
        }
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), 200, "{face}: every patient");
        assert_eq!(unique.len(), 200, "{face}: each once");
        assert_eq!(pages, 12);

        // A cursor is bound to its tenant and cannot be edited.
        let second = second_page.unwrap();
        let resp = get(&second, &gw.token(TENANT_B));
        assert_eq!(resp.status(), 400, "another tenant's cursor");
        outcomes.check(face, resp.json().unwrap());
        let mut tampered = second.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(get(&tampered, &token).status(), 400);
        // A page link needs a token like any request.
        assert_eq!(http().get(&second).send().unwrap().status(), 401);
    }
    outcomes.validate();
}

#[test]
fn upstream_credentials_are_fetched_once_and_the_apps_token_stays_home() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("p.log");
    let (p, base) =
        provider_with(&["--client-credentials", "gateway:provider-secret-123", "--request-log", log.to_str().unwrap()]);
    let secret_file = dir.path().join("provider.secret");
    std::fs::write(&secret_file, "provider-secret-123\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&secret_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let settings = format!(
        "auth = {{ type = \"client-credentials\", token_url = {:?}, client_id = \"gateway\", client_secret_file = {:?} }}",
        p.get("token_url"),
        secret_file.display().to_string()
    );
    let gw = Setup {
        routes: &[(TENANT_A, "p")],
        tenants: &[(TENANT_A, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT_A],
        provider_settings: &settings,
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT_A);
    for _ in 0..5 {
        assert_eq!(get(&format!("{}/stu3/Patient/pat-002", gw.base), &token).status(), 200);
    }
    let lines = log_lines(&log);
    let token_requests = lines.iter().filter(|l| l["path"] == "/oauth2/token").count();
    assert_eq!(token_requests, 1, "one upstream token serves every request: {lines:?}");
    let reads: Vec<&Value> = lines.iter().filter(|l| l["path"] == "/fhir/Patient/pat-002").collect();
    assert_eq!(reads.len(), 5);
    assert!(reads.iter().all(|l| l["auth"] == "valid"), "{reads:?}");
}

/// (request id, status, interaction, resource type, patient, client, tenant)
type Expected =
    (String, u16, &'static str, Option<&'static str>, Option<&'static str>, Option<&'static str>, Option<&'static str>);

#[test]
fn every_access_has_one_audit_record_and_exports_as_audit_events() {
    let (_p, base) = provider_with(&[]);
    let gw = Setup {
        routes: &[(TENANT_A, "p")],
        tenants: &[(TENANT_A, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT_A, TENANT_B],
        data_dir: true,
        admin_token: Some(ADMIN),
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT_A);
    let mut cases: Vec<Expected> = Vec::new();
    // A tenant this gateway does not route: refused, and still recorded.
    let other = gw.token(TENANT_B);
    let resp = get(&format!("{}/stu3/Patient/pat-003", gw.base), &other);
    assert_eq!(resp.status(), 403);
    cases.push((request_id(&resp), 403, "read", Some("Patient"), Some("pat-003"), Some("app"), Some(TENANT_B)));
    let mut check = |resp: reqwest::blocking::Response,
                     interaction: &'static str,
                     rt: Option<&'static str>,
                     patient: Option<&'static str>,
                     authed: bool| {
        let status = resp.status().as_u16();
        let (client, tenant) = if authed { (Some("app"), Some(TENANT_A)) } else { (None, None) };
        cases.push((request_id(&resp), status, interaction, rt, patient, client, tenant));
    };
    check(get(&format!("{}/stu3/Patient/pat-003", gw.base), &token), "read", Some("Patient"), Some("pat-003"), true);
    check(get(&format!("{}/dstu2/Patient?family=chau", gw.base), &token), "search", Some("Patient"), None, true);
    check(get(&format!("{}/stu3/Patient/missing", gw.base), &token), "read", Some("Patient"), Some("missing"), true);
    check(
        http().get(format!("{}/stu3/Patient/pat-003", gw.base)).send().unwrap(),
        "read",
        Some("Patient"),
        Some("pat-003"),
        false,
    );
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": [
        { "request": { "method": "GET", "url": "Patient/pat-004" } },
        { "request": { "method": "GET", "url": "Patient/pat-005" } },
    ]});
    let batch = http().post(format!("{}/stu3", gw.base)).bearer_auth(&token).json(&bundle).send().unwrap();
    let batch_id = request_id(&batch);
    check(batch, "batch", None, None, true);

    for (id, status, interaction, rt, patient, client, tenant) in &cases {
        let (code, body) = admin(reqwest::Method::GET, &format!("{}/admin/access?request_id={id}", gw.base), None);
        assert_eq!(code, 200);
        let records: Vec<&Value> = body["records"].as_array().unwrap().iter().filter(|r| r["part"] == 0).collect();
        assert_eq!(records.len(), 1, "exactly one record for {id}: {body}");
        let r = records[0];
        assert_eq!(r["status"], *status, "{r}");
        assert_eq!(r["interaction"], *interaction, "{r}");
        assert_eq!(r["resource_type"].as_str(), *rt, "{r}");
        assert_eq!(r["patient_id"].as_str(), *patient, "{r}");
        assert_eq!(r["client_id"].as_str(), *client, "{r}");
        assert_eq!(r["tenant_id"].as_str(), *tenant, "{r}");
        // A batch reaches providers through its entries, recorded below.
        let provider = (matches!(*status, 200 | 404) && *interaction != "batch").then_some("p");
        assert_eq!(r["provider_id"].as_str(), provider, "{r}");
        assert!(r["latency_us"].as_u64().unwrap() > 0);
        assert!(!r.to_string().contains(&token), "no token in the audit trail");
    }
    let (_, body) = admin(reqwest::Method::GET, &format!("{}/admin/access?request_id={batch_id}", gw.base), None);
    let parts: Vec<(u64, Option<&str>)> = body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["part"].as_u64().unwrap(), r["patient_id"].as_str()))
        .collect();
    assert_eq!(parts, vec![(0, None), (1, Some("pat-004")), (2, Some("pat-005"))]);

    // Queries by patient, and the AuditEvent export an independent FHIR
    // library parses.
    let (_, body) = admin(reqwest::Method::GET, &format!("{}/admin/access?patient=pat-003", gw.base), None);
    assert_eq!(body["records"].as_array().unwrap().len(), 3);
    let resp =
        http().get(format!("{}/admin/access/AuditEvent?tenant={TENANT_A}", gw.base)).bearer_auth(ADMIN).send().unwrap();
    assert_eq!(resp.status(), 200);
    let export: Value = resp.json().unwrap();
    assert_eq!(export["resourceType"], "Bundle");
    assert!(export["entry"].as_array().unwrap().len() >= 6);
    support::validate_fhir("r4", &export);

    // Token issuance is in the change audit trail.
    let (_, events) = admin(reqwest::Method::GET, &format!("{}/admin/audit?limit=100", gw.base), None);
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["action"] == "token.issued"), "{events}");
}

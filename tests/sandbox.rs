//! A misbehaving module is contained: the request it broke gets a 5xx
//! OperationOutcome, and the next request is served normally.

mod support;

use support::{Setup, http, provider};

const TENANT: &str = "66666666-6666-4666-8666-666666666666";
const ADMIN: &str = "sandbox-admin-token-0123456789abcdefghij";

/// The generation of the policy the gateway serves.
fn admin_generation(gw: &support::Served) -> serde_json::Value {
    let resp = http().get(format!("{}/admin/modules", gw.base)).bearer_auth(ADMIN).send().unwrap();
    resp.json::<serde_json::Value>().unwrap()["generation"].clone()
}

/// A gateway routing TENANT to the provider at `base` through the test
/// module that misbehaves on request, with `extra_config`. The `fhirgate`
/// process itself, as deployed (its allocator, its own address space): these
/// tests are about what a faulty module can do to the gateway.
fn misbehaving(base: &str, extra_config: &str) -> support::Served {
    misbehaving_setup(&[("p", base)], extra_config).serve_binary()
}

/// Another customer of the same partner, routed to the same provider.
const OTHER: &str = "77777777-7777-4777-8777-777777777777";

/// The gateway of [`misbehaving`] for two tenants, `providers` naming `p`.
fn misbehaving_setup<'a>(providers: &'a [(&'a str, &'a str)], extra_config: &'a str) -> Setup<'a> {
    Setup {
        router: "fhirgate_misbehave",
        routes: &[(TENANT, "p"), (OTHER, "p")],
        tenants: &[(TENANT, "p"), (OTHER, "p")],
        providers,
        client_tenants: &[TENANT, OTHER],
        extra_config,
        ..Default::default()
    }
}

#[test]
fn runaway_and_faulty_routing_modules_are_contained() {
    let mut outcomes = support::Outcomes::default();
    let (_provider, base) = provider();
    // Tight limits keep the test quick; the defaults are larger. The budget
    // still leaves room for the module's legitimate work: building and
    // lifting the 100,000 parameters of `huge` takes about 90 ms in a debug
    // build on a 2-core machine, and the refusal under test is the host's.
    let gw = misbehaving(&base, "[wasm]\ncall_timeout_ms = 300\nmemory_mib = 32\n");
    let token = gw.token(TENANT);
    let read = |mode: &str| {
        let url = if mode.is_empty() {
            format!("{}/stu3/Patient/pat-001", gw.base)
        } else {
            format!("{}/stu3/Patient/pat-001?_misbehave={mode}", gw.base)
        };
        http().get(url).bearer_auth(&token).send().unwrap()
    };

    assert_eq!(read("").status(), 200);
    for (mode, expect) in [
        ("loop", "time limit"),
        ("sleep", "time limit"),
        ("grow", "memory"),
        ("recurse", "trapped"),
        ("panic", "trapped"),
        ("bad-header", "invalid value"),
        ("auth-header", "authorization"),
        ("foreign-provider", "not active"),
        ("escape-path", "path"),
        ("huge", "upstream parameters"),
    ] {
        let started = std::time::Instant::now();
        let resp = read(mode);
        assert_eq!(resp.status(), 500, "{mode}");
        let diag = outcomes.check("stu3", resp.json().unwrap());
        assert!(diag.contains("routing module"), "{mode}: {diag}");
        assert!(diag.contains(expect), "{mode}: {diag}");
        // The call was cut short, not allowed to run on.
        assert!(started.elapsed().as_secs() < 20, "{mode} took {:?}", started.elapsed());
        // The next request is served normally.
        let resp = read("");
        assert_eq!(resp.status(), 200, "after {mode}");
    }
    outcomes.validate();
}

/// With `reuse = 0` every request gets a fresh instance: what one call
/// leaves in the module's memory is gone for the next, however the instance
/// slots are reused and reset.
#[test]
fn with_reuse_off_nothing_a_call_leaves_in_module_memory_reaches_the_next() {
    let (_provider, base) = provider();
    let gw = Setup { router_settings: "reuse = 0\n", ..misbehaving_setup(&[("p", &base)], "") }.serve_binary();
    let token = gw.token(TENANT);
    let read = |query: &str| {
        http().get(format!("{}/stu3/Patient/pat-001?{query}", gw.base)).bearer_auth(&token).send().unwrap()
    };
    // Sequential calls reuse one slot; concurrent ones spread over several.
    for round in 0..20 {
        let note = format!("secret-{round}");
        // Kept while the instance lives…
        let body: serde_json::Value = read(&format!("_misbehave=remember&_note={note}")).json().unwrap();
        assert!(support::assert_outcome(&body).contains(&format!("kept: [{note}]")), "{body}");
        // …and gone for the next call's instance.
        let resp = read("_misbehave=recall");
        assert_eq!(resp.status(), 409);
        let body: serde_json::Value = resp.json().unwrap();
        let diag = support::assert_outcome(&body);
        assert!(diag.contains("kept: []"), "round {round}: {diag}");
    }
    std::thread::scope(|s| {
        for t in 0..4 {
            let read = &read;
            s.spawn(move || {
                for i in 0..25 {
                    let note = format!("secret-{t}-{i}");
                    let body: serde_json::Value = read(&format!("_misbehave=remember&_note={note}")).json().unwrap();
                    assert!(support::assert_outcome(&body).contains(&format!("kept: [{note}]")), "{body}");
                    let body: serde_json::Value = read("_misbehave=recall").json().unwrap();
                    let diag = support::assert_outcome(&body);
                    assert!(diag.contains("kept: []"), "{diag}");
                }
            });
        }
    });
}

/// What the routing module answers `query` with for `token`: its status
/// and diagnostics.
fn ask(gw: &support::Served, token: &str, query: &str) -> (u16, String) {
    let resp = http().get(format!("{}/stu3/Patient/pat-001?{query}", gw.base)).bearer_auth(token).send().unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().unwrap();
    (status, if status == 200 { String::new() } else { support::assert_outcome(&body) })
}

/// Instances are kept for reuse (the default): a module's memory survives
/// from one request to the next of the same tenant, which shows the
/// instance is kept, and never reaches another tenant's request, nor
/// survives a trap, a timeout, memory growth or a policy swap.
#[test]
fn a_kept_instance_serves_one_tenant_and_nothing_survives_a_fault_or_a_swap() {
    let (_provider, base) = provider();
    let gw = Setup {
        admin_token: Some(ADMIN),
        data_dir: true,
        ..misbehaving_setup(&[("p", &base)], "[wasm]\ncall_timeout_ms = 300\n")
    }
    .serve_binary();
    let (mine, other) = (gw.token(TENANT), gw.token(OTHER));
    let remember = |token: &str, note: &str| {
        let (status, diag) = ask(&gw, token, &format!("_misbehave=remember&_note={note}"));
        assert_eq!(status, 409, "{diag}");
        assert!(diag.contains(&format!("kept: [{note}]")), "{diag}");
    };
    let recall = |token: &str| {
        let (status, diag) = ask(&gw, token, "_misbehave=recall");
        assert_eq!(status, 409, "{diag}");
        diag.split("kept: [").nth(1).and_then(|r| r.split(']').next()).unwrap_or_default().to_owned()
    };

    // The tenant's next request finds what its last one left: the instance
    // was kept (and the test can see a note that crossed)…
    remember(&mine, "mine-1");
    assert_eq!(recall(&mine), "mine-1");
    // …the other tenant's never does.
    assert_eq!(recall(&other), "");
    remember(&other, "other-1");
    assert_eq!(recall(&mine), "mine-1");
    assert_eq!(recall(&other), "other-1");

    // A trap, a timeout and memory grown past its start each drop the
    // instance: the next request starts afresh.
    for (fault, status) in [("panic", 500), ("loop", 500), ("hoard&_note=big", 409)] {
        remember(&mine, "before-fault");
        let (got, diag) = ask(&gw, &mine, &format!("_misbehave={fault}"));
        assert_eq!(got, status, "{fault}: {diag}");
        assert_eq!(recall(&mine), "", "after {fault}");
    }
    assert_eq!(recall(&other), "other-1", "the other tenant's instance is its own");

    // A policy swap retires every kept instance at once.
    remember(&mine, "before-swap");
    let policy = gw.dir.path().join("policy.toml");
    let before = admin_generation(&gw);
    let text = std::fs::read_to_string(&policy).unwrap() + "\n# swapped\n";
    std::fs::write(&policy, text).unwrap();
    let t0 = std::time::Instant::now();
    while admin_generation(&gw) == before {
        assert!(t0.elapsed().as_secs() < 20, "the policy was not reloaded");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(recall(&mine), "");
    assert_eq!(recall(&other), "");

    // Under concurrency each tenant's requests see only its own notes.
    std::thread::scope(|s| {
        for (t, tenant_token, label) in
            [(0, &mine, "mine"), (1, &other, "other"), (2, &mine, "mine"), (3, &other, "other")]
        {
            let (gw, remember) = (&gw, &remember);
            s.spawn(move || {
                for i in 0..25 {
                    remember(tenant_token, &format!("{label}-{t}-{i}"));
                    let (_, diag) = ask(gw, tenant_token, "_misbehave=recall");
                    let seen = diag.split("kept: [").nth(1).and_then(|r| r.split(']').next()).unwrap_or_default();
                    assert!(seen.is_empty() || seen.starts_with(&format!("{label}-")), "{label} saw {seen}");
                }
            });
        }
    });
}

/// An instance serves at most `reuse` requests, a number drawn per instance
/// between half of it and all of it.
#[test]
fn a_kept_instance_serves_at_most_its_drawn_number_of_requests() {
    let (_provider, base) = provider();
    let gw = Setup { router_settings: "reuse = 4\n", ..misbehaving_setup(&[("p", &base)], "") }.serve_binary();
    let token = gw.token(TENANT);
    let mut served = std::collections::BTreeSet::new();
    for round in 0..12 {
        let note = format!("round-{round}");
        let (status, diag) = ask(&gw, &token, &format!("_misbehave=remember&_note={note}"));
        assert_eq!(status, 409, "{diag}");
        // The remembering request is the instance's first or a later one;
        // it is gone at the latest four requests after it.
        let mut seen = 0;
        while ask(&gw, &token, "_misbehave=recall").1.contains(&format!("kept: [{note}]")) {
            seen += 1;
            assert!(seen < 4, "an instance served more than 4 requests");
        }
        served.insert(seen);
    }
    // Limits differ from instance to instance (2, 3 or 4 requests).
    assert!(served.len() > 1, "every instance served the same number of requests: {served:?}");

    // `/metrics` counts the instances made: one per instance's life, not
    // per call.
    let metrics = support::metrics(&gw.base);
    let routing = |name: &str| -> u64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name) && l.contains("role=\"routing\""))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
            .sum()
    };
    let (calls, made) = (routing("fhirgate_module_calls_total{"), routing("fhirgate_module_instantiations_total{"));
    assert!(calls >= 24, "{calls} routing calls counted:\n{metrics}");
    assert!(made * 2 <= calls && made >= calls / 4, "{made} instances made for {calls} calls:\n{metrics}");
}

/// The parts of the promise an HTTP client cannot reach: a call cancelled
/// half-way, a call for another partner or configuration, a retired pool.
#[test]
fn a_lease_gives_its_instance_back_only_under_the_promise() {
    use std::sync::Arc;

    use fhirgate_sandbox::bindings::types::{Claims, Interaction, Param};
    use fhirgate_sandbox::harness::request;
    use fhirgate_sandbox::{CallContext, Lease, Limits, Module, Pool, Reuse, Runtime, StaticDirectory};

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = Runtime::new(Limits { call_timeout_ms: 2000, ..Limits::default() }).unwrap();
        let bytes = std::fs::read(support::guest("fhirgate_misbehave")).unwrap();
        let module = Arc::new(Module::load(&engine, "misbehave", &bytes).unwrap());
        let config: Arc<str> = serde_json::json!({ "tenants": { TENANT: "p" } }).to_string().into();
        let pool = Pool::new(module.clone(), "partner".into(), config.clone(), Reuse::DEFAULT);
        let directory = Arc::new(StaticDirectory::default());
        let ctx = |partner: &str, config: &Arc<str>| CallContext {
            partner: partner.into(),
            module: module.name().clone(),
            digest: module.digest().clone(),
            config_json: config.clone(),
            issuer: Arc::default(),
            directory: directory.clone(),
            reads: None,
            request_id: "test".into(),
            fixed_now_ms: None,
            counted: false,
        };
        let claims = Claims {
            client_id: "app".into(),
            tenant_id: TENANT.into(),
            scopes: vec![TENANT.into()],
            expires_at: u64::MAX,
            token_id: None,
        };
        let asking = |mode: &str| {
            let mut r = request(Interaction::Read, "Patient", Some("p1"));
            r.params = vec![Param { name: "_misbehave".into(), value: mode.into() }];
            r.params.push(Param { name: "_note".into(), value: "kept".into() });
            r
        };
        let (remember, recall, spin) = (asking("remember"), asking("recall"), asking("loop"));

        // A normal call: the instance goes back.
        let mut lease = pool.lease(TENANT);
        let denial = lease.route(ctx("partner", &config), &claims, &remember).await.unwrap().unwrap_err();
        assert!(denial.message.contains("kept: [kept]"), "{}", denial.message);
        drop(lease);
        assert_eq!(pool.idle(), 1);
        // Kept, it holds nothing of the request it served.
        assert_eq!(Arc::strong_count(&directory), 1, "an idle instance keeps the last request's directory");
        let mut lease = pool.lease(TENANT);
        assert!(lease.reused());
        let denial = lease.route(ctx("partner", &config), &claims, &recall).await.unwrap().unwrap_err();
        assert!(denial.message.contains("kept: [kept]"), "{}", denial.message);
        drop(lease);
        assert_eq!(pool.idle(), 1);

        // Cancelled half-way (the request went away): never given back.
        let mut lease = pool.lease(TENANT);
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            lease.route(ctx("partner", &config), &claims, &spin),
        )
        .await;
        assert!(cancelled.is_err(), "the spinning call ended by itself");
        drop(lease);
        assert_eq!(pool.idle(), 0, "a cancelled call's instance was kept");

        // A call for another partner, or with another configuration, runs
        // on the lease but its instance is not kept.
        for (partner, config) in [("another-partner", config.clone()), ("partner", Arc::from(r#"{"tenants":{}}"#))] {
            let mut lease = pool.lease(TENANT);
            let _ = lease.route(ctx(partner, &config), &claims, &remember).await.unwrap();
            drop(lease);
            assert_eq!(pool.idle(), 0, "{partner} {config}");
        }

        // A retired pool drops what it kept and keeps nothing more.
        let mut held = pool.lease(TENANT);
        let _ = held.route(ctx("partner", &config), &claims, &remember).await.unwrap();
        let mut lease = pool.lease(TENANT);
        let _ = lease.route(ctx("partner", &config), &claims, &remember).await.unwrap();
        drop(lease);
        assert_eq!(pool.idle(), 1);
        pool.retire();
        assert_eq!(pool.idle(), 0, "a retired pool still keeps an instance");
        drop(held);
        assert_eq!(pool.idle(), 0, "a retired pool kept an instance");
        assert!(!pool.lease(TENANT).reused());

        // Each lease serves one request, then they all end together.
        let serve_all = async |mut leases: Vec<Lease>| {
            for lease in &mut leases {
                let _ = lease.route(ctx("partner", &config), &claims, &remember).await.unwrap();
            }
        };
        let pool_on = |runtime: &Runtime| {
            let module = Arc::new(Module::load(runtime, "misbehave", &bytes).unwrap());
            Pool::new(module, "partner".into(), config.clone(), Reuse::DEFAULT)
        };

        // Across pools at most a quarter of the instance slots stay idle.
        let small = Runtime::new(Limits { max_instances: 16, ..Limits::default() }).unwrap();
        let module = Arc::new(Module::load(&small, "misbehave", &bytes).unwrap());
        let pools: Vec<_> =
            (0..2).map(|_| Pool::new(module.clone(), "partner".into(), config.clone(), Reuse::DEFAULT)).collect();
        serve_all(pools.iter().flat_map(|p| [p.lease(TENANT), p.lease(TENANT), p.lease(TENANT)]).collect()).await;
        assert_eq!(pools.iter().map(|p| p.idle()).sum::<usize>(), 4, "16 slots keep 4 idle");
        // A pool dropped gives its share back.
        drop(pools);
        let pool = pool_on(&small);
        serve_all((0..4).map(|_| pool.lease(TENANT)).collect()).await;
        assert_eq!(pool.idle(), 4);

        // And their memories at most `idle_memory_mib`: 1 MiB holds two of
        // this module's 384 KiB instances, not three.
        let pool = pool_on(&Runtime::new(Limits { idle_memory_mib: 1, ..Limits::default() }).unwrap());
        serve_all((0..4).map(|_| pool.lease(TENANT)).collect()).await;
        assert_eq!(pool.idle(), 2, "1 MiB of idle memory kept more or fewer than two instances");
        // One taken frees its share for the next given back.
        let lease = pool.lease(TENANT);
        assert!(lease.reused());
        serve_all(vec![lease]).await;
        assert_eq!(pool.idle(), 2);
        let pool = pool_on(&Runtime::new(Limits { idle_memory_mib: 0, ..Limits::default() }).unwrap());
        serve_all(vec![pool.lease(TENANT)]).await;
        assert_eq!(pool.idle(), 0, "`idle_memory_mib = 0` kept an instance");
    });
}

/// The default shaper's memory is large enough for a searchset page of the
/// size the benchmarks use: shaping it does not grow the memory, so the
/// instance is kept for the tenant's next request (a call that grows memory
/// retires its instance).
#[test]
fn the_default_shaper_keeps_its_instance_after_a_searchset_page() {
    use std::sync::Arc;

    use fhirgate_sandbox::bindings::shaping::Exchange;
    use fhirgate_sandbox::bindings::types::{FhirVersion, Interaction};
    use fhirgate_sandbox::{CallContext, Limits, Module, Pool, Reuse, Runtime, StaticDirectory};

    let upstream = "http://127.0.0.1:9/fhir";
    let entries: Vec<serde_json::Value> = fhirgate_devtools::demo::data::patients_n(160)
        .into_iter()
        .map(|p| {
            let url = format!("{upstream}/Patient/{}", p["id"].as_str().unwrap_or_default());
            serde_json::json!({ "fullUrl": url, "resource": p, "search": { "mode": "match" } })
        })
        .collect();
    let page = serde_json::json!({ "resourceType": "Bundle", "type": "searchset", "total": 160, "entry": entries });
    let body = serde_json::to_vec(&page).unwrap();
    assert!(body.len() > 150 * 1024, "the page is {} bytes", body.len());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = Runtime::new(Limits::default()).unwrap();
        let bytes = std::fs::read(support::guest("fhirgate_shaper_fhir")).unwrap();
        let module = Arc::new(Module::load(&engine, "shaper-fhir", &bytes).unwrap());
        let config: Arc<str> = "{}".into();
        let pool = Pool::new(module.clone(), "partner".into(), config.clone(), Reuse::DEFAULT);
        let ctx = || CallContext {
            partner: "partner".into(),
            module: module.name().clone(),
            digest: module.digest().clone(),
            config_json: config.clone(),
            issuer: Arc::default(),
            directory: Arc::new(StaticDirectory::default()),
            reads: None,
            request_id: "test".into(),
            fixed_now_ms: None,
            counted: false,
        };
        let exchange = Exchange {
            client_version: FhirVersion::Stu3,
            upstream_version: FhirVersion::R4,
            interaction: Interaction::Search,
            gateway_base: "https://gateway.example/stu3".into(),
            upstream_base: upstream.into(),
        };
        for request in 0..6 {
            let mut lease = pool.lease(TENANT);
            assert_eq!(lease.reused(), request > 0, "request {request}");
            let shaped = lease.shape_response(ctx(), &exchange, 200, &body).await.unwrap().unwrap();
            let shaped: serde_json::Value = serde_json::from_slice(&shaped.body).unwrap();
            assert_eq!(shaped["entry"].as_array().map(Vec::len), Some(160));
            drop(lease);
            assert_eq!(pool.idle(), 1, "the instance that shaped the page was not kept (request {request})");
        }
    });
}

/// A module's last words before a trap (a Rust panic's message and place)
/// reach the gateway's log and `guest test`, never the app.
#[test]
fn a_panic_message_reaches_the_log_and_guest_test_but_never_the_app() {
    let (_provider, base) = provider();
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let gw = misbehaving_setup(&[("p", &base)], "").serve_binary_logging(&[], "warn", log.into());
    let token = gw.token(TENANT);
    let said = format!("no route for tenant {TENANT}");

    let resp =
        http().get(format!("{}/stu3/Patient/pat-001?_misbehave=panic", gw.base)).bearer_auth(&token).send().unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().unwrap();
    assert!(support::assert_outcome(&serde_json::from_str(&body).unwrap()).contains("trapped"), "{body}");
    assert!(!body.contains("no route for tenant") && !body.contains("src/lib.rs"), "the app saw the panic: {body}");
    // A chatty instance before it does not crowd the message out, and the
    // next request is served.
    let ok = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(&token).send().unwrap();
    assert_eq!(ok.status(), 200);
    let t0 = std::time::Instant::now();
    let logged = loop {
        let text = std::fs::read_to_string(&log_path).unwrap();
        if text.contains(&said) || t0.elapsed().as_secs() > 10 {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let line =
        logged.lines().find(|l| l.contains("module trapped")).unwrap_or_else(|| panic!("no trap logged:\n{logged}"));
    assert!(logged.contains(&said), "the panic message is not in the log:\n{logged}");
    assert!(logged.contains("src/lib.rs"), "the panic's place is not in the log:\n{logged}");
    assert!(!line.contains(&token), "{line}");

    // `guest test` shows it to the module's author.
    let cases = tempfile::tempdir().unwrap();
    let case = serde_json::json!({
        "name": "routes a read",
        "config": { "tenants": { TENANT: "p" } },
        "route": {
            "claims": { "tenant-id": TENANT },
            "request": { "resource-type": "Patient", "resource-id": "p1",
                         "params": [{ "name": "_misbehave", "value": "panic" }] }
        },
        "expect": { "ok": {} }
    });
    std::fs::write(cases.path().join("panics.json"), case.to_string()).unwrap();
    let wasm = support::guest("fhirgate_misbehave");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["guest", "test", wasm.to_str().unwrap(), cases.path().to_str().unwrap()])
        .env("FHIRGATE_LOG", "off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains(&said) && stdout.contains("src/lib.rs"), "guest test did not show the panic:\n{stdout}");
}

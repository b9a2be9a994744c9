//! A misbehaving module is contained: the request it broke gets a 5xx
//! OperationOutcome, and the next request is served normally.

mod support;

use support::{Setup, http, provider};

const TENANT: &str = "66666666-6666-4666-8666-666666666666";

/// A gateway routing TENANT to the provider at `base` through the test
/// module that misbehaves on request, with `extra_config`. The `fhirgate`
/// process itself, as deployed (its allocator, its own address space): these
/// tests are about what a faulty module can do to the gateway.
fn misbehaving(base: &str, extra_config: &str) -> support::Served {
    Setup {
        router: "fhirgate_misbehave",
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", base)],
        client_tenants: &[TENANT],
        extra_config,
        ..Default::default()
    }
    .serve_binary()
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

/// Every call gets a fresh instance: what one call leaves in the module's
/// memory (another tenant's data, say) is gone for the next, however the
/// instance slots are reused and reset.
#[test]
fn nothing_a_call_leaves_in_module_memory_reaches_the_next() {
    let (_provider, base) = provider();
    let gw = misbehaving(&base, "");
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

//! Each default module, loaded from the same `.wasm` file the gateway loads
//! and called through the harness with host imports supplied by the test: no
//! server, no network.

mod support;

use fhirgate_gateway::oauth::SigningKey;
use fhirgate_sandbox::bindings::shaping::{Exchange, UpstreamRequest};
use fhirgate_sandbox::bindings::types::{Claims, FhirVersion, Interaction, Param};
use fhirgate_sandbox::harness::{Harness, request};
use fhirgate_sandbox::{GuestFault, IssuerFacts, Limits, ModuleLimits};
use serde_json::{Value, json};
use support::guest;

const TENANT: &str = "7f0c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11";
const NOW: u64 = 1_800_000_000;

fn facts(key: &SigningKey) -> IssuerFacts {
    IssuerFacts {
        issuer: "https://gw.example".into(),
        audiences: vec!["https://gw.example/stu3".into(), "https://gw.example/dstu2".into()],
        jwks: key.jwks().to_string(),
    }
}

fn sign(key: &SigningKey, overrides: Value) -> String {
    let mut claims = json!({
        "iss": "https://gw.example",
        "sub": "app-1",
        "aud": ["https://gw.example/stu3", "https://gw.example/dstu2"],
        "scope": format!("{TENANT} system/*.read"),
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3600,
        "jti": "t-1",
    });
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    key.sign(&claims).unwrap()
}

#[test]
fn token_validator_accepts_good_tokens_and_denies_the_rest() {
    let key = SigningKey::generate().unwrap();
    let h = Harness::load(guest("fhirgate_token_jwt"))
        .unwrap()
        .config(r#"{"leeway_seconds": 30}"#)
        .issuer(facts(&key))
        .now_ms(NOW * 1000);
    let req = request(Interaction::Read, "Patient", Some("1"));

    let claims = h.validate(&sign(&key, json!({})), &req).unwrap().expect("valid token");
    assert_eq!(claims.client_id, "app-1");
    assert_eq!(claims.tenant_id, TENANT);
    assert_eq!(claims.expires_at, NOW + 3600);
    assert_eq!(claims.token_id.as_deref(), Some("t-1"));
    assert!(claims.scopes.contains(&"system/*.read".to_owned()));

    // Within the leeway, an expired token still passes; beyond it, not.
    assert!(h.validate(&sign(&key, json!({"exp": NOW - 20})), &req).unwrap().is_ok());
    let cases = [
        (json!({"exp": NOW - 60}), 401, "invalid_token", "expired"),
        (json!({"nbf": NOW + 120}), 401, "invalid_token", "not valid yet"),
        (json!({"iss": "https://evil.example"}), 401, "invalid_token", "issued"),
        (json!({"aud": "https://other.example"}), 401, "invalid_token", "meant"),
        (json!({"scope": "system/*.read"}), 403, "insufficient_scope", "tenant"),
        (
            json!({"scope": format!("{TENANT} 8e1c3a4e-2b51-4c1e-9d3a-0c6f5e2b8a11")}),
            403,
            "insufficient_scope",
            "more than one",
        ),
        (json!({"exp": null}), 401, "invalid_token", "exp"),
    ];
    for (overrides, status, code, words) in cases {
        let denial = h.validate(&sign(&key, overrides.clone()), &req).unwrap().expect_err("denied");
        assert_eq!(denial.status, status, "{overrides}");
        assert_eq!(denial.code, code, "{overrides}");
        assert!(denial.message.contains(words), "{overrides}: {}", denial.message);
    }

    // The signature arithmetic is the host's: the validator imports `crypto`.
    let imports: Vec<String> = h.module().import_names();
    assert!(imports.iter().any(|i| i.starts_with("fhirgate:policy/crypto")), "{imports:?}");

    // Another key with the same kid-less claims, and garbage.
    let other = SigningKey::generate().unwrap();
    let denial = h.validate(&sign(&other, json!({})), &req).unwrap().expect_err("unknown key");
    assert_eq!(denial.code, "invalid_token");
    let denial = h.validate("garbage", &req).unwrap().expect_err("garbage");
    assert_eq!(denial.status, 401);
}

#[test]
fn table_router_maps_tenants_and_denies_unknown_ones() {
    let h = Harness::load(guest("fhirgate_router_table"))
        .unwrap()
        .config(&json!({"tenants": {TENANT.to_uppercase(): "hospital-a"}}).to_string());
    let claims = claims_of(TENANT);
    let mut search = request(Interaction::Search, "Patient", None);
    search.path = "Patient/_search".into();
    search.params = vec![Param { name: "family".into(), value: "chau".into() }];
    let target = h.route(&claims, &search).unwrap().expect("routed");
    assert_eq!(target.provider_id, "hospital-a");
    assert_eq!(target.path, "Patient");
    assert_eq!(target.params.len(), 1);

    let read = request(Interaction::Read, "Patient", Some("p1"));
    assert_eq!(h.route(&claims, &read).unwrap().unwrap().path, "Patient/p1");

    let stranger = Claims { tenant_id: "00000000-0000-4000-8000-000000000000".into(), ..claims };
    let denial = h.route(&stranger, &read).unwrap().expect_err("unknown tenant");
    assert_eq!(denial.status, 403);
    assert_eq!(denial.code, "unknown-tenant");
}

#[test]
fn table_router_falls_back_to_the_directory() {
    let other = "00000000-0000-4000-8000-000000000000";
    let h = Harness::load(guest("fhirgate_router_table")).unwrap().config(r#"{}"#).active_providers(&[
        (TENANT, "st-mary", fhirgate_core::fhir::Version::R4),
        (TENANT, "labs", fhirgate_core::fhir::Version::Stu3),
    ]);
    let claims = Claims { tenant_id: TENANT.to_uppercase(), ..claims_of(TENANT) };
    let read = request(Interaction::Read, "Patient", Some("p1"));
    assert_eq!(h.route(&claims, &read).unwrap().unwrap().provider_id, "st-mary", "the first active provider");
    let stranger = Claims { tenant_id: other.into(), ..claims };
    let denial = h.route(&stranger, &read).unwrap().expect_err("no active provider");
    assert_eq!((denial.status, denial.code.as_str()), (403, "unknown-tenant"));
}

fn exchange(client: FhirVersion) -> Exchange {
    Exchange {
        client_version: client,
        upstream_version: FhirVersion::R4,
        interaction: Interaction::Search,
        gateway_base: "https://gw.example/stu3".into(),
        upstream_base: "https://ehr.example/fhir/r4".into(),
    }
}

#[test]
fn deeply_nested_answers_are_shaped_or_refused_never_a_fault() {
    let h = Harness::load(guest("fhirgate_shaper_fhir")).unwrap();
    // Extensions within extensions: each level is an object in an array,
    // two levels of JSON nesting.
    let nested = |levels: usize| {
        let mut ext = json!({ "url": "https://example.org/leaf", "valueString": "x" });
        for _ in 0..levels {
            ext = json!({ "url": "https://example.org/level", "extension": [ext] });
        }
        let mut patient = fhirgate_devtools::demo::data::patient(0);
        patient["extension"] = json!([ext]);
        let bundle = json!({
            "resourceType": "Bundle", "type": "searchset",
            "entry": [{ "fullUrl": "https://ehr.example/fhir/r4/Patient/p1", "resource": patient }]
        });
        serde_json::to_vec(&bundle).unwrap()
    };
    for face in [FhirVersion::Stu3, FhirVersion::Dstu2] {
        // Within serde_json's 128 levels: shaped.
        let out = h.shape_response(&exchange(face), 200, &nested(58)).expect("no fault");
        assert_eq!(out.expect("shaped").status, 200);
        // Past them: a denial, not a trap.
        let out = h.shape_response(&exchange(face), 200, &nested(200)).expect("no fault");
        assert_eq!(out.expect_err("too deep").status, 502);
    }
}

#[test]
fn shaper_turns_r4_searchsets_into_stu3_and_dstu2() {
    let h = Harness::load(guest("fhirgate_shaper_fhir")).unwrap();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": "2026-01-01T00:00:00Z",
        "total": 42,
        "link": [
            {"relation": "self", "url": "https://ehr.example/fhir/r4/Patient?family=chau"},
            {"relation": "next", "url": "https://ehr.example/fhir/r4/Patient?family=chau&page=2"},
            {"relation": "alternate", "url": "https://elsewhere.example/x"}
        ],
        "entry": [{
            "fullUrl": "https://ehr.example/fhir/r4/Patient/p1",
            "resource": fhirgate_devtools::demo::data::patient(0),
            "search": {"mode": "match"}
        }]
    });
    let body = serde_json::to_vec(&bundle).unwrap();

    let out = h.shape_response(&exchange(FhirVersion::Stu3), 200, &body).unwrap().expect("shaped");
    assert_eq!(out.status, 200);
    let b: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(b["total"], 42);
    assert!(b.get("timestamp").is_none());
    assert_eq!(b["entry"][0]["fullUrl"], "https://gw.example/stu3/Patient/pat-001");
    assert_eq!(b["link"].as_array().unwrap().len(), 2, "the foreign link is dropped");
    assert_eq!(b["link"][1]["url"], "https://gw.example/stu3/Patient?family=chau&page=2");
    assert_eq!(b["entry"][0]["resource"]["name"][0]["family"], "Chau");
    assert!(!String::from_utf8_lossy(&out.body).contains("ehr.example"));

    let mut dstu2 = exchange(FhirVersion::Dstu2);
    dstu2.gateway_base = "https://gw.example/dstu2".into();
    let out = h.shape_response(&dstu2, 200, &body).unwrap().expect("shaped");
    let b: Value = serde_json::from_slice(&out.body).unwrap();
    let p = &b["entry"][0]["resource"];
    assert_eq!(p["name"][0]["family"], json!(["Chau"]));
    assert!(p["careProvider"].is_array());
    assert_eq!(b["entry"][0]["fullUrl"], "https://gw.example/dstu2/Patient/pat-001");

    // A provider's 500 becomes a 502 with its outcome; garbage is a denial.
    let oo = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}"#;
    assert_eq!(h.shape_response(&dstu2, 500, oo).unwrap().unwrap().status, 502);
    let denial = h.shape_response(&dstu2, 200, b"<html>").unwrap().expect_err("not JSON");
    assert_eq!(denial.status, 502);

    // Request shaping: STU3's `family` means contains.
    let req =
        UpstreamRequest { path: "Patient".into(), params: vec![Param { name: "family".into(), value: "chau".into() }] };
    let shaped = h.shape_request(&exchange(FhirVersion::Stu3), &req).unwrap().unwrap();
    assert_eq!(shaped.params[0].name, "family:contains");
}

#[test]
fn every_default_module_passes_the_cases_it_ships_and_imports_only_what_is_granted() {
    let mut router_table = None;
    for (module, dir) in [
        ("fhirgate_token_jwt", "guest/token-jwt/cases"),
        ("fhirgate_router_table", "guest/router-table/cases"),
        ("fhirgate_router_rules", "guest/router-rules/cases"),
        ("fhirgate_shaper_fhir", "guest/shaper-fhir/cases"),
    ] {
        let h = Harness::load(guest(module)).unwrap();
        let results = h.run_cases(&[support::repo_root().join(dir)]).unwrap();
        assert!(results.len() >= 4, "{module}: {} cases", results.len());
        for r in &results {
            assert!(r.failure.is_none(), "{module}: case `{}` failed:\n{}", r.name, r.failure.as_deref().unwrap_or(""));
        }
        // Nothing outside the grant (see the sockets module's refusal).
        let imports = h.module().import_names();
        assert!(imports.iter().all(|i| !i.starts_with("wasi:sockets") && !i.starts_with("wasi:http")), "{imports:?}");
        if module == "fhirgate_router_table" {
            router_table = Some(h);
        }
    }
    // A case that does not hold says what differed.
    let h = router_table.expect("the table router was loaded");
    let dir = tempfile::tempdir().unwrap();
    let case = json!({
        "name": "wrong on purpose",
        "config": {"tenants": {TENANT: "st-mary"}},
        "route": {"claims": {"tenant-id": TENANT}, "request": {"resource-type": "Patient", "resource-id": "p1"}},
        "expect": {"ok": {"provider-id": "st-elsewhere", "path": "Patient/p1"}}
    });
    std::fs::write(dir.path().join("case.json"), case.to_string()).unwrap();
    let results = h.run_cases(&[dir.path()]).unwrap();
    assert_eq!(results[0].failure.as_deref(), Some("/provider-id: expected \"st-elsewhere\", got \"st-mary\""));

    // A case that is not one, by the schema, says where and why before
    // anything runs; `$schema` is for editors and is allowed.
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        json!({"$schema": "../case.schema.json", "name": "a", "rout": {"claims": {"tenant-id": TENANT}}, "expect": {"ok": {}}}),
        json!({"name": "b", "route": {"claims": {"client-id": "app"}, "request": {"interaction": "reed"}},
               "expect": {"fault": "boom"}}),
        json!({"$schema": "../case.schema.json", "name": "c", "config": {"tenants": {TENANT: "st-mary"}},
               "route": {"claims": {"tenant-id": TENANT}}, "expect": {"ok": {"provider-id": "st-mary"}}}),
    ];
    for (i, case) in cases.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.json")), case.to_string()).unwrap();
    }
    let results = h.run_cases(&[dir.path()]).unwrap();
    let failure = |i: usize| results[i].failure.clone().unwrap_or_default();
    assert!(failure(0).contains("at /: additionalProperties 'rout' not allowed"), "{}", failure(0));
    assert!(failure(0).contains("at /: needs exactly one of 'validate', 'route', 'shape-request'"), "{}", failure(0));
    for line in [
        "at /route/claims: missing properties 'tenant-id'",
        "at /route/request/interaction: value must be one of 'read'",
        "at /expect/fault: value must be one of 'timeout', 'memory', 'trap', 'not-exported', 'busy'",
    ] {
        assert!(failure(1).contains(line), "{line}: {}", failure(1));
    }
    assert_eq!(results[2].failure, None);
}

#[test]
fn a_module_importing_sockets_loads_but_every_network_use_is_refused() {
    // Language runtimes (CPython) import `wasi:sockets` whether or not a
    // module uses it: it is linked, and nothing can be reached through it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    for (socket, port) in [("tcp", listener.local_addr().unwrap().port()), ("udp", udp.local_addr().unwrap().port())] {
        let h = Harness::load(guest("fhirgate_sockets")).unwrap().config(&json!({ "port": port }).to_string());
        let claims = claims_of(TENANT);
        let denial = h.route(&claims, &request(Interaction::Read, "Patient", Some("p1"))).unwrap().unwrap_err();
        assert_eq!((denial.status, denial.code.as_str()), (503, "no-network"), "{socket}: {}", denial.message);
    }
    assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a connection arrived");
    assert_eq!(udp.recv_from(&mut [0; 8]).unwrap_err().kind(), std::io::ErrorKind::WouldBlock, "a datagram arrived");
}

#[test]
fn a_module_runs_under_its_own_memory_and_time_limits_where_its_policy_gives_them() {
    let claims = claims_of(TENANT);
    let config = json!({"tenants": {TENANT: "p"}}).to_string();
    let ask = |h: &Harness, mode: &str| {
        let mut read = request(Interaction::Read, "Patient", Some("p1"));
        read.params = vec![Param { name: "_misbehave".into(), value: mode.into() }];
        let started = std::time::Instant::now();
        (h.route(&claims, &read), started.elapsed())
    };
    let limited = |runtime: Limits, own: ModuleLimits| {
        Harness::load_with_limits(guest("fhirgate_misbehave"), runtime)
            .unwrap()
            .module_limits(own)
            .unwrap()
            .config(&config)
    };
    // Keeping 2 MiB more than it starts with: over a 2 MiB runtime limit,
    // within 16 MiB given to the module alone, and over 2 MiB given to it
    // under the default 64.
    let small = Limits { memory_mib: 2, ..Limits::default() };
    assert!(matches!(ask(&limited(small.clone(), ModuleLimits::default()), "hoard").0, Err(GuestFault::MemoryLimit)));
    let roomy = limited(small, ModuleLimits { memory_mib: Some(16), ..Default::default() });
    assert_eq!(ask(&roomy, "hoard").0.unwrap().unwrap_err().code, "remembered");
    let tight = limited(Limits::default(), ModuleLimits { memory_mib: Some(2), ..Default::default() });
    assert!(matches!(ask(&tight, "hoard").0, Err(GuestFault::MemoryLimit)));
    // A runaway call stops at the module's own budget, not the runtime's.
    let quick = limited(Limits::default(), ModuleLimits { call_timeout_ms: Some(20), ..Default::default() });
    let (outcome, took) = ask(&quick, "loop");
    assert!(matches!(outcome, Err(GuestFault::Timeout(20))), "{outcome:?}");
    assert!(took < std::time::Duration::from_millis(150), "{took:?}");
    let patient = limited(
        Limits { call_timeout_ms: 20, ..Limits::default() },
        ModuleLimits { call_timeout_ms: Some(400), ..Default::default() },
    );
    let (outcome, took) = ask(&patient, "loop");
    assert!(matches!(outcome, Err(GuestFault::Timeout(400))), "{outcome:?}");
    assert!(took >= std::time::Duration::from_millis(400), "{took:?}");
    // Out of range: refused, naming the key.
    let h = Harness::load(guest("fhirgate_misbehave")).unwrap();
    let err = h.module_limits(ModuleLimits { memory_mib: Some(0), ..Default::default() }).err().unwrap();
    assert!(err.to_string().contains("`memory_mib`"), "{err}");
}

#[test]
fn a_module_importing_what_the_gateway_does_not_grant_is_refused_at_load() {
    // A module whose component imports wasi:http (one that would make HTTP
    // requests) never loads.
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("http.wasm");
    std::fs::write(&wasm, http_importing_component()).unwrap();
    let err = match Harness::load(&wasm) {
        Ok(_) => panic!("a module importing wasi:http loaded"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("wasi:http/outgoing-handler") && err.contains("does not grant"), "{err}");
}

/// A component that imports an interface of `wasi:http` and exports nothing,
/// in the component binary format.
fn http_importing_component() -> Vec<u8> {
    let name = b"wasi:http/outgoing-handler@0.2.0";
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    // A type section with one type: an instance exporting nothing.
    bytes.extend([7, 3, 1, 0x42, 0]);
    // An import section with one import: an instance of that type.
    let mut import = vec![1, 0, name.len() as u8];
    import.extend(name);
    import.extend([5, 0]);
    bytes.extend([10, import.len() as u8]);
    bytes.extend(import);
    bytes
}

#[test]
fn a_kept_shaping_instance_reuses_its_memory_call_after_call() {
    // The shaper allocates from a per-call arena that restarts once a call's
    // values are all freed: a kept instance must not grow with every call.
    let h = Harness::load(guest("fhirgate_shaper_fhir")).unwrap();
    let mut warm = h.warm_shaper().unwrap();
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": fhirgate_devtools::demo::data::patients_n(40).into_iter().map(|p| json!({"resource": p})).collect::<Vec<_>>(),
    });
    let body = serde_json::to_vec(&bundle).unwrap();
    let mut sizes = Vec::new();
    for _ in 0..200 {
        let out = warm.shape_response(&exchange(FhirVersion::Dstu2), 200, &body).unwrap().expect("shaped");
        assert_eq!(out.status, 200);
        sizes.push(warm.memory_bytes());
    }
    // Shaping 40 Patients allocates far more than a page each time; 200
    // calls without reuse would take megabytes more than the first.
    assert!(sizes[0] > 0);
    assert_eq!(sizes[10], sizes[199], "memory grew between calls: {:?} … {:?}", &sizes[..10], &sizes[190..]);
}

#[test]
fn rules_router_applies_rules_and_cutovers_on_the_host_clock() {
    // 2026-12-01T00:00:00Z, in milliseconds.
    const CUTOVER_MS: u64 = 1_796_083_200_000;
    let config = json!({
        "tenants": {TENANT: "main-ehr"},
        "rules": [{"tenants": [TENANT.to_uppercase()], "resource_types": ["Observation", "DiagnosticReport"], "provider": "results"}],
        "cutovers": [{"tenant": TENANT, "provider": "new-ehr", "at": "2026-12-01T01:00:00+01:00"}],
    })
    .to_string();
    let at = |now_ms: u64| Harness::load(guest("fhirgate_router_rules")).unwrap().config(&config).now_ms(now_ms);
    let claims = claims_of(TENANT);
    let before = at(CUTOVER_MS - 1);

    let mut search = request(Interaction::Search, "Observation", None);
    search.path = "Observation/_search".into();
    search.params = vec![Param { name: "patient".into(), value: "p1".into() }];
    let target = before.route(&claims, &search).unwrap().expect("routed");
    assert_eq!(target.provider_id, "results");
    assert_eq!(target.path, "Observation");
    assert_eq!((target.params[0].name.as_str(), target.params[0].value.as_str()), ("patient", "p1"));

    let patient = request(Interaction::Read, "Patient", Some("p1"));
    let target = before.route(&claims, &patient).unwrap().expect("routed");
    assert_eq!((target.provider_id.as_str(), target.path.as_str()), ("main-ehr", "Patient/p1"));

    // From the cutover on, the tenant's base provider is the new one; the
    // rule still sends results elsewhere.
    let after = at(CUTOVER_MS);
    assert_eq!(after.route(&claims, &patient).unwrap().unwrap().provider_id, "new-ehr");
    assert_eq!(after.route(&claims, &search).unwrap().unwrap().provider_id, "results");

    let stranger = Claims { tenant_id: "00000000-0000-4000-8000-000000000000".into(), ..claims.clone() };
    let denial = after.route(&stranger, &patient).unwrap().expect_err("unknown tenant");
    assert_eq!((denial.status, denial.code.as_str()), (403, "unknown-tenant"));

    let bad = Harness::load(guest("fhirgate_router_rules")).unwrap().config(
        &json!({
            "tenants": {TENANT: "main-ehr"},
            "cutovers": [{"tenant": TENANT, "provider": "new-ehr", "at": "2026-12-01 00:00"}],
        })
        .to_string(),
    );
    let denial = bad.route(&claims, &patient).unwrap().expect_err("bad configuration");
    assert_eq!((denial.status, denial.code.as_str()), (500, "bad-config"));
    assert!(denial.message.contains("`cutovers[0].at`"), "{}", denial.message);
}

#[test]
fn shaper_reads_missing_location_names_from_the_provider() {
    let encounter = |id: &str, display: Option<&str>| {
        let mut reference = json!({ "reference": "Location/loc-3" });
        if let Some(d) = display {
            reference["display"] = json!(d);
        }
        json!({
            "resourceType": "Encounter", "id": id, "status": "finished",
            "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
            "type": [{ "coding": [{ "system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up" }] }],
            "subject": { "reference": "Patient/pat-001" },
            "location": [{ "location": reference }],
        })
    };
    let bundle = json!({
        "resourceType": "Bundle", "type": "searchset", "total": 2,
        "entry": [{ "resource": encounter("enc-1", None) }, { "resource": encounter("enc-2", Some("Ward 7")) }],
    });
    let body = serde_json::to_vec(&bundle).unwrap();
    let location = r#"{"resourceType":"Location","id":"loc-3","name":"Cardiology clinic"}"#;
    let h = Harness::load(guest("fhirgate_shaper_fhir")).unwrap().upstream_answers(&[("Location/loc-3", location)]);
    for face in [FhirVersion::Stu3, FhirVersion::Dstu2] {
        let shaped = h.shape_response(&exchange(face), 200, &body).unwrap().expect("shaped");
        let out: Value = serde_json::from_slice(&shaped.body).unwrap();
        assert_eq!(out["entry"][0]["resource"]["location"][0]["location"]["display"], "Cardiology clinic", "{out}");
        assert_eq!(out["entry"][1]["resource"]["location"][0]["location"]["display"], "Ward 7", "kept as given");
    }
    // Without the provider's answer the display stays out rather than wrong.
    let h = Harness::load(guest("fhirgate_shaper_fhir")).unwrap().upstream_answers(&[]);
    let shaped = h.shape_response(&exchange(FhirVersion::Stu3), 200, &body).unwrap().expect("shaped");
    let out: Value = serde_json::from_slice(&shaped.body).unwrap();
    let reference = &out["entry"][0]["resource"]["location"][0]["location"];
    assert_eq!(reference["reference"], "Location/loc-3", "{out}");
    assert!(reference.get("display").is_none(), "{out}");
}

/// The claims of a token the gateway issued to `app` for `tenant`.
fn claims_of(tenant: &str) -> Claims {
    Claims {
        client_id: "app".into(),
        tenant_id: tenant.into(),
        scopes: vec![tenant.into()],
        expires_at: NOW,
        token_id: None,
    }
}

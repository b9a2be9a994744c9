//! End to end: the real `fhirgate` binary (the demo, or `serve` with a test
//! configuration) spoken to over HTTP, as the app and its OAuth library would.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;

use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde_json::Value;
use support::{Setup, demo, http, provider, run_cli, token};

const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

#[test]
fn metadata_is_public_and_advertises_oauth_on_both_faces() {
    let demo = demo();
    let gateway = demo.get("gateway");
    for (face, resource_type, version, media) in [
        ("stu3", "CapabilityStatement", "3.0.2", "application/fhir+json"),
        ("dstu2", "Conformance", "1.0.2", "application/json+fhir"),
    ] {
        let resp = http().get(format!("{gateway}/{face}/metadata")).send().unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ct.starts_with(media), "{face}: content-type {ct}");
        let cs: Value = resp.json().unwrap();
        assert_eq!(cs["resourceType"], resource_type);
        assert_eq!(cs["fhirVersion"], version);
        let rest = &cs["rest"][0];
        assert_eq!(rest["mode"], "server");
        assert!(rest["interaction"].as_array().is_some_and(|a| !a.is_empty()));
        assert!(rest["resource"].as_array().unwrap().iter().any(|r| r["type"] == "Patient"));
        assert_eq!(rest["security"]["service"][0]["coding"][0]["code"], "OAuth");
        assert_eq!(
            rest["security"]["service"][0]["coding"][0]["system"],
            "http://hl7.org/fhir/restful-security-service"
        );
        let ext = rest["security"]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == OAUTH_URIS)
            .expect("oauth-uris extension");
        let uri = |name: &str| {
            ext["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["url"] == name)
                .and_then(|e| e["valueUri"].as_str())
                .unwrap_or_else(|| panic!("no {name} in {ext}"))
                .to_owned()
        };
        assert_eq!(uri("token"), format!("{gateway}/oauth2/token"));
        assert_eq!(uri("authorize"), format!("{gateway}/oauth2/authorize"));
        // Every resource of the app's interfaces is advertised, under the
        // face's own names.
        let types: Vec<&str> = rest["resource"].as_array().unwrap().iter().filter_map(|r| r["type"].as_str()).collect();
        let meds = if face == "dstu2" { "MedicationOrder" } else { "MedicationRequest" };
        for t in
            ["Patient", "Observation", "Condition", "Encounter", "AllergyIntolerance", meds, "Coverage", "Location"]
        {
            assert!(types.contains(&t), "{face}: {t} not advertised: {types:?}");
        }
        support::validate_fhir(face, &cs);
    }

    // The URLs are the gateway's public URL, never the Host a client sent:
    // another name for the same address is refused.
    let port = gateway.rsplit(':').next().unwrap();
    let other = http().get(format!("http://localhost:{port}/stu3/metadata")).send().unwrap();
    assert_eq!(other.status(), 421);
}

#[test]
fn oauth_library_gets_a_jwt_whose_scope_carries_the_tenant() {
    let demo = demo();
    let tenant = demo.get("tenant_id");
    let client = BasicClient::new(ClientId::new(demo.get("client_id")))
        .set_client_secret(ClientSecret::new(demo.get("client_secret")))
        .set_token_uri(TokenUrl::new(demo.get("token_url")).unwrap());
    let http_client = oauth2::reqwest::blocking::ClientBuilder::new()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let token = client
        .exchange_client_credentials()
        .add_scope(Scope::new(tenant.clone()))
        .request(&http_client)
        .expect("client credentials grant");
    assert_eq!(token.token_type().as_ref(), "bearer");
    let lifetime = token.expires_in().expect("expires_in").as_secs();
    assert!((3500..=3600).contains(&lifetime), "expires_in {lifetime}");
    assert!(token.scopes().unwrap().iter().any(|s| **s == tenant));

    // The access token is a JWT whose `scope` claim names the tenant.
    let jwt = token.access_token().secret();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    use base64::Engine as _;
    let claims: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert!(claims["scope"].as_str().unwrap().split(' ').any(|s| s == tenant));
    assert_eq!(claims["sub"], demo.get("client_id"));
    let header: Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());

    // The token works on a FHIR face.
    let resp = http().get(format!("{}/Patient/pat-001", demo.get("stu3_base"))).bearer_auth(jwt).send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn token_endpoint_errors_follow_rfc_6749() {
    let demo = demo();
    let url = demo.get("token_url");
    let (id, secret, tenant) = (demo.get("client_id"), demo.get("client_secret"), demo.get("tenant_id"));
    let post = |form: &[(&str, &str)]| http().post(&url).form(form).send().unwrap();
    let check = |resp: reqwest::blocking::Response, status: u16, error: &str| {
        assert_eq!(resp.status(), status);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        assert_eq!(resp.headers()["pragma"], "no-cache");
        let www = resp.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let body: Value = resp.json().unwrap();
        assert_eq!(body["error"], error, "{body}");
        www
    };

    let resp = post(&[("grant_type", "password"), ("client_id", &id), ("client_secret", &secret)]);
    check(resp, 400, "unsupported_grant_type");

    let resp = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", "wrong"),
        ("scope", &tenant),
    ]);
    check(resp, 401, "invalid_client");

    // Unknown client and wrong secret look the same.
    let resp = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", "nobody"),
        ("client_secret", "wrong"),
        ("scope", &tenant),
    ]);
    check(resp, 401, "invalid_client");

    // Basic with a wrong secret: 401 with a Basic challenge.
    let resp = http()
        .post(&url)
        .basic_auth(&id, Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("scope", &tenant)])
        .send()
        .unwrap();
    let www = check(resp, 401, "invalid_client").expect("WWW-Authenticate");
    assert!(www.starts_with("Basic"), "{www}");

    // Both methods at once.
    let resp = http()
        .post(&url)
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("client_secret", &secret), ("scope", &tenant)])
        .send()
        .unwrap();
    check(resp, 400, "invalid_request");

    // Credentials in the query string.
    let resp = http()
        .post(format!("{url}?client_secret={secret}"))
        .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("scope", &tenant)])
        .send()
        .unwrap();
    check(resp, 400, "invalid_request");

    // A tenant the client may not use, and a scope this server does not grant.
    let resp = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("scope", "00000000-0000-0000-0000-000000000000"),
    ]);
    check(resp, 400, "invalid_scope");
    let resp = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("scope", "openid"),
    ]);
    check(resp, 400, "invalid_scope");

    // Missing grant type, repeated parameter, wrong media type.
    check(post(&[("client_id", &id), ("client_secret", &secret)]), 400, "invalid_request");
    let resp = http()
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=client_credentials&grant_type=client_credentials&client_id={id}&client_secret={secret}"
        ))
        .send()
        .unwrap();
    check(resp, 400, "invalid_request");
    let resp = http().post(&url).json(&serde_json::json!({"grant_type": "client_credentials"})).send().unwrap();
    check(resp, 400, "invalid_request");

    // SMART system scopes are granted beside the tenant.
    let resp = post(&[
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("scope", &format!("system/*.read {tenant}")),
    ]);
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], format!("{tenant} system/*.read"));
    assert!(body.get("refresh_token").is_none());
}

fn patient_search(base: &str, token: &str, form: &str) -> Value {
    let resp = http()
        .post(format!("{base}/Patient/_search"))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{form}");
    let bundle: Value = resp.json().unwrap();
    // Every searchset parses in the face's FHIR version.
    support::validate_fhir(if base.ends_with("/dstu2") { "dstu2" } else { "stu3" }, &bundle);
    bundle
}

#[test]
fn patient_read_and_search_on_both_faces() {
    let mut outcomes = support::Outcomes::default();
    let demo = demo();
    let token = token(&demo);
    let (stu3, dstu2) = (demo.get("stu3_base"), demo.get("dstu2_base"));
    let provider_base = demo.get("provider_base");

    // STU3: family is a string, the practitioner is generalPractitioner.
    let p: Value = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&token).send().unwrap().json().unwrap();
    assert_eq!(p["resourceType"], "Patient");
    assert_eq!(p["name"][0]["family"], "Chau");
    assert_eq!(p["name"][0]["given"][0], "Hugh");
    assert_eq!(p["gender"], "male");
    assert_eq!(p["birthDate"], "1970-01-01");
    assert_eq!(p["generalPractitioner"][0]["display"], "Dr. Adele Byrne");
    let mrn = p["identifier"].as_array().unwrap().iter().find(|i| i["type"]["coding"][0]["code"] == "MR").expect("MRN");
    assert_eq!(mrn["type"]["coding"][0]["system"], "http://hl7.org/fhir/v2/0203");
    assert_eq!(mrn["value"], "MRN100001");
    support::validate_fhir("stu3", &p);

    // DSTU2: family is an array, the practitioner is careProvider.
    let resp = http().get(format!("{dstu2}/Patient/pat-001")).bearer_auth(&token).send().unwrap();
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json+fhir"));
    let p: Value = resp.json().unwrap();
    assert_eq!(p["name"][0]["family"], serde_json::json!(["Chau"]));
    assert_eq!(p["careProvider"][0]["display"], "Dr. Adele Byrne");
    assert!(p.get("generalPractitioner").is_none());
    support::validate_fhir("dstu2", &p);

    // The documented example: given=hugh&family=chau on STU3.
    let bundle = patient_search(&stu3, &token, "given=hugh&family=chau");
    assert_eq!(bundle["type"], "searchset");
    assert_eq!(bundle["total"], 1);
    assert_eq!(bundle["entry"][0]["resource"]["id"], "pat-001");
    assert_eq!(bundle["entry"][0]["fullUrl"], format!("{stu3}/Patient/pat-001"));
    assert!(bundle.get("timestamp").is_none(), "Bundle.timestamp is not STU3");

    // STU3 `family` means "contains": "hau" finds Chau (and Chaudhry).
    let bundle = patient_search(&stu3, &token, "family=hau");
    let families: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["name"][0]["family"].as_str().unwrap())
        .collect();
    assert!(families.contains(&"Chau"), "{families:?}");
    assert!(families.iter().all(|f| f.to_lowercase().contains("hau")));
    assert_eq!(bundle["total"].as_u64().unwrap() as usize, families.len());

    // DSTU2 search with family:contains and _count; total counts all matches.
    let bundle = patient_search(&dstu2, &token, "family:contains=a&_count=3");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(bundle["total"].as_u64().unwrap() > 3);
    for e in entries {
        assert!(e["resource"]["name"][0]["family"].is_array());
        assert!(e["fullUrl"].as_str().unwrap().starts_with(&format!("{dstu2}/Patient/")));
    }
    let body = bundle.to_string();
    assert!(!body.contains(&provider_base), "the provider's URL leaked: {body}");
    let next = bundle["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").expect("next link");
    // Page links are opaque cursors on the gateway, and they work.
    let next = next["url"].as_str().unwrap();
    assert!(next.starts_with(&format!("{dstu2}?_getpages=")), "{next}");
    let page: Value = http().get(next).bearer_auth(&token).send().unwrap().json().unwrap();
    assert_eq!(page["entry"].as_array().unwrap().len(), 3);
    assert_ne!(page["entry"][0]["resource"]["id"], entries[0]["resource"]["id"]);

    // GET search by identifier, birthdate and gender.
    let bundle: Value = http()
        .get(format!("{stu3}/Patient?identifier=MRN100001&birthdate=1970-01-01&gender=male"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(bundle["total"], 1);

    // An unknown patient is a 404 OperationOutcome in the face's version.
    let resp = http().get(format!("{dstu2}/Patient/nope")).bearer_auth(&token).send().unwrap();
    assert_eq!(resp.status(), 404);
    outcomes.check("dstu2", resp.json().unwrap());
    outcomes.validate();
}

#[test]
fn batch_of_reads_answers_each_entry() {
    let mut outcomes = support::Outcomes::default();
    let demo = demo();
    let token = token(&demo);
    let stu3 = demo.get("stu3_base");
    let batch = serde_json::json!({
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            { "request": { "method": "GET", "url": "Patient/pat-002" } },
            { "request": { "method": "GET", "url": "Patient/missing" } },
            { "request": { "method": "GET", "url": "Patient?family=chau" } },
            { "request": { "method": "DELETE", "url": "Patient/pat-002" } }
        ]
    });
    let resp = http().post(&stu3).bearer_auth(&token).json(&batch).send().unwrap();
    assert_eq!(resp.status(), 200);
    let out: Value = resp.json().unwrap();
    assert_eq!(out["type"], "batch-response");
    let entries = out["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 4);
    assert!(entries[0]["response"]["status"].as_str().unwrap().starts_with("200"));
    assert_eq!(entries[0]["resource"]["id"], "pat-002");
    assert_eq!(entries[0]["fullUrl"], format!("{stu3}/Patient/pat-002"));
    assert!(entries[1]["response"]["status"].as_str().unwrap().starts_with("404"));
    outcomes.check("stu3", entries[1]["resource"].clone());
    assert_eq!(entries[2]["resource"]["type"], "searchset");
    assert!(entries[3]["response"]["status"].as_str().unwrap().starts_with("405"));

    // Transactions are refused with an OperationOutcome.
    let tx = serde_json::json!({ "resourceType": "Bundle", "type": "transaction", "entry": [] });
    let resp = http().post(&stu3).bearer_auth(&token).json(&tx).send().unwrap();
    assert_eq!(resp.status(), 422);
    outcomes.check("stu3", resp.json().unwrap());
    outcomes.validate();
}

#[test]
fn bearer_errors_follow_rfc_6750() {
    let mut outcomes = support::Outcomes::default();
    let demo = demo();
    let stu3 = demo.get("stu3_base");

    let resp = http().get(format!("{stu3}/Patient/pat-001")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with("Bearer"), "{www}");
    assert!(!www.contains("error="), "no error code without a token: {www}");
    outcomes.check("stu3", resp.json().unwrap());

    for bad in ["not-a-jwt", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "a.b.c"] {
        let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(bad).send().unwrap();
        assert_eq!(resp.status(), 401, "{bad}");
        let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.contains("error=\"invalid_token\""), "{www}");
        outcomes.check("stu3", resp.json().unwrap());
    }

    // A token signed by someone else's key, with our claims, is refused.
    let token = token(&demo);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(parts.join(".")).send().unwrap();
    assert_eq!(resp.status(), 401);

    // Tokens in the URL are refused.
    let resp = http().get(format!("{stu3}/Patient/pat-001?access_token={token}")).send().unwrap();
    assert_eq!(resp.status(), 400);
    outcomes.check("stu3", resp.json().unwrap());
    outcomes.validate();
}

#[test]
fn a_tenant_without_a_route_is_refused_with_an_outcome() {
    let mut outcomes = support::Outcomes::default();
    let (_provider, base) = provider();
    let routed = "11111111-1111-4111-8111-111111111111";
    let unrouted = "22222222-2222-4222-8222-222222222222";
    let gw = Setup {
        router: "fhirgate_router_table",
        routes: &[(routed, "p")],
        tenants: &[(routed, "p")],
        providers: &[("p", &base)],
        client_tenants: &[routed, unrouted],
        extra_config: "",
        ..Default::default()
    }
    .serve();
    let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(gw.token(routed)).send().unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(gw.token(unrouted)).send().unwrap();
    assert_eq!(resp.status(), 403);
    let diag = outcomes.check("stu3", resp.json().unwrap());
    assert!(diag.contains("tenant"), "{diag}");
    outcomes.validate();
}

/// A provider that answers every request with `body` and `status`.
fn fake_provider(status: u16, body: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 8192];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/fhir")
}

#[test]
fn malformed_input_gets_clear_errors() {
    let mut outcomes = support::Outcomes::default();
    let garbage = fake_provider(200, "{this is not json");
    let refusing =
        fake_provider(401, r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}"#);
    let (_provider, good) = provider();
    let tenant = "33333333-3333-4333-8333-333333333333";
    let broken = "44444444-4444-4444-8444-444444444444";
    let refused = "88888888-8888-4888-8888-888888888888";
    let gw = Setup {
        router: "fhirgate_router_table",
        routes: &[(tenant, "good"), (broken, "garbage"), (refused, "refusing")],
        tenants: &[(tenant, "good"), (broken, "garbage"), (refused, "refusing")],
        providers: &[("good", &good), ("garbage", &garbage), ("refusing", &refusing)],
        client_tenants: &[tenant, broken, refused],
        extra_config: "[limits]\nmax_request_body_bytes = 4096\n",
        ..Default::default()
    }
    .serve();
    let token = gw.token(tenant);
    let stu3 = format!("{}/stu3", gw.base);

    // Bad JSON from the provider: 502 with an OperationOutcome.
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(gw.token(broken)).send().unwrap();
    assert_eq!(resp.status(), 502);
    outcomes.check("stu3", resp.json().unwrap());

    // A provider refusing the gateway's credentials is the gateway's
    // problem, not a 401 that would send the app back for a new token.
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(gw.token(refused)).send().unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers().get("www-authenticate").is_none());
    outcomes.check("stu3", resp.json().unwrap());

    // A _search body that is not a form.
    let resp = http()
        .post(format!("{stu3}/Patient/_search"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"family\":\"chau\"}")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 415);
    outcomes.check("stu3", resp.json().unwrap());

    // An oversized body.
    let resp = http()
        .post(format!("{stu3}/Patient/_search"))
        .bearer_auth(&token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("family={}", "a".repeat(10_000)))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    outcomes.check("stu3", resp.json().unwrap());

    // A batch body that is not JSON, an invalid id, a write, an unknown path.
    let resp = http().post(&stu3).bearer_auth(&token).body("nope").send().unwrap();
    assert_eq!(resp.status(), 400);
    outcomes.check("stu3", resp.json().unwrap());
    let resp = http().get(format!("{stu3}/Patient/bad$id")).bearer_auth(&token).send().unwrap();
    assert_eq!(resp.status(), 400);
    outcomes.check("stu3", resp.json().unwrap());
    let resp = http().put(format!("{stu3}/Patient/pat-001")).bearer_auth(&token).body("{}").send().unwrap();
    assert_eq!(resp.status(), 405);
    outcomes.check("stu3", resp.json().unwrap());
    let resp = http().get(format!("{}/nowhere", gw.base)).send().unwrap();
    assert_eq!(resp.status(), 404);
    outcomes.check("stu3", resp.json().unwrap());

    // A parameter the provider rejects comes back as its OperationOutcome.
    let resp = http().get(format!("{stu3}/Patient?shoe-size=9")).bearer_auth(&token).send().unwrap();
    assert_eq!(resp.status(), 400);
    outcomes.check("stu3", resp.json().unwrap());

    // After all that, the gateway still serves.
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&token).send().unwrap();
    assert_eq!(resp.status(), 200);
    outcomes.validate();
}

#[test]
fn a_provider_that_is_down_is_a_502_outcome() {
    let mut outcomes = support::Outcomes::default();
    // Bind then drop: the port is closed when the gateway forwards.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/fhir", l.local_addr().unwrap())
    };
    let tenant = "55555555-5555-4555-8555-555555555555";
    let gw = Setup {
        router: "fhirgate_router_table",
        routes: &[(tenant, "down")],
        tenants: &[(tenant, "down")],
        providers: &[("down", &closed)],
        client_tenants: &[tenant],
        extra_config: "",
        ..Default::default()
    }
    .serve();
    let resp = http().get(format!("{}/dstu2/Patient/pat-001", gw.base)).bearer_auth(gw.token(tenant)).send().unwrap();
    assert_eq!(resp.status(), 502);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json+fhir"));
    outcomes.check("dstu2", resp.json().unwrap());
    outcomes.validate();
}

/// Runs `fhirgate <args>` to completion and returns (success, stdout + stderr).

#[test]
fn bad_policies_and_configs_fail_at_start_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = support::guest("fhirgate_token_jwt");
    let router = support::guest("fhirgate_router_table");
    let shaper = support::guest("fhirgate_shaper_fhir");
    let policy = |jwt_pin: &str, extra: &str| {
        format!(
            "schema_version = 1\npartner = \"t\"\n{extra}\n\
             [modules.token-validation]\npath = {:?}\nsha256 = {jwt_pin:?}\n\
             [modules.routing]\npath = {:?}\nsha256 = {:?}\n\
             [modules.shaping]\npath = {:?}\nsha256 = {:?}\n\
             [providers.p]\nbase_url = \"http://127.0.0.1:9/fhir\"\nfhir_version = \"r4\"\n\
             [tenants.\"11111111-1111-4111-8111-111111111111\"]\nproviders = [\"p\"]\n",
            jwt.display().to_string(),
            router.display().to_string(),
            support::sha256(&router),
            shaper.display().to_string(),
            support::sha256(&shaper),
        )
    };
    let path = dir.path().join("policy.toml");
    let path_str = path.to_str().unwrap();

    // Correct pins load.
    std::fs::write(&path, policy(&support::sha256(&jwt), "")).unwrap();
    let (ok, text) = run_cli(&["policy", "check", path_str]);
    assert!(ok, "{text}");

    // A wrong pin is refused, naming the key and both digests.
    let wrong = "ab".repeat(32);
    std::fs::write(&path, policy(&wrong, "")).unwrap();
    let (ok, text) = run_cli(&["policy", "check", path_str]);
    assert!(!ok);
    assert!(text.contains("modules.token-validation.sha256") && text.contains(&wrong), "{text}");
    assert!(text.contains(&support::sha256(&jwt)), "{text}");

    // An unknown key names the key and the file.
    std::fs::write(&path, policy(&support::sha256(&jwt), "colour = \"blue\"")).unwrap();
    let (ok, text) = run_cli(&["policy", "check", path_str]);
    assert!(!ok);
    assert!(text.contains("colour") && text.contains("policy.toml"), "{text}");

    // A module in the wrong role is refused at load.
    let swapped = policy(&support::sha256(&jwt), "")
        .replacen(&router.display().to_string(), &shaper.display().to_string(), 1)
        .replacen(&support::sha256(&router), &support::sha256(&shaper), 1);
    std::fs::write(&path, swapped).unwrap();
    let (ok, text) = run_cli(&["policy", "check", path_str]);
    assert!(!ok);
    assert!(text.contains("does not export the routing interface"), "{text}");

    // A gateway config with a bad value names the file and key.
    let config = dir.path().join("gateway.toml");
    std::fs::write(&config, "schema_version = 1\npolicy = \"policy.toml\"\npublic_url = \"ftp://x\"\n").unwrap();
    let (ok, text) = run_cli(&["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(text.contains("public_url") && text.contains("gateway.toml"), "{text}");

    // `serve` will not build links on a client's Host header.
    std::fs::write(&config, "schema_version = 1\npolicy = \"policy.toml\"\n").unwrap();
    let (ok, text) = run_cli(&["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    assert!(!ok);
    assert!(text.contains("public_url") && text.contains("accepted_hosts"), "{text}");

    // The shipped example configuration is valid.
    let (ok, text) = run_cli(&["policy", "check", "policies/demo/policy.toml"]);
    assert!(ok, "{text}");

    // A reader that goes away before the report (`… | head`) is no failure.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["policy", "check", "policies/demo/policy.toml"])
        .current_dir(support::repo_root())
        .env("FHIRGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", out.status);
}

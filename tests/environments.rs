//! Test and production, end to end: an app registration has a test and a
//! production client id; a hospital (an organization of the tenant) has a
//! test and a production URL, each approved on its own by the named
//! approver after the live provider check passed, production only after
//! test; each client's tokens reach only its environment's URL (proven from
//! the providers' own request logs); the integration record says what both
//! sides need, nothing secret.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Setup, admin_call, decide, http, log_lines, provider_with, user_token};

const ADMIN: &str = "admin-token-for-environment-tests-0123";
const TENANT: &str = "eeeeeeee-0000-4000-8000-00000000000e";
const LOOPBACK_ALLOWED: &str = "[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n";

/// Request ids of the FHIR requests a provider saw, but the approval
/// check's.
fn reads_seen(path: &Path) -> BTreeSet<String> {
    log_lines(path)
        .iter()
        .filter(|l| !l["path"].as_str().unwrap_or("").ends_with("/metadata"))
        .filter_map(|l| l["x_request_id"].as_str().map(str::to_owned))
        .filter(|id| id != "check-provider")
        .collect()
}

fn token(base: &str, client: &str, secret: &str) -> String {
    let resp = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["access_token"].as_str().unwrap().to_owned()
}

#[test]
fn test_and_production_are_approved_apart_and_each_clients_tokens_stay_in_their_environment() {
    let logs = tempfile::tempdir().unwrap();
    let (test_log, prod_log) = (logs.path().join("test.log"), logs.path().join("prod.log"));
    let (_test, test_base) = provider_with(&["--request-log", test_log.to_str().unwrap()]);
    let (_prod, prod_base) = provider_with(&["--request-log", prod_log.to_str().unwrap()]);
    let (_broken, broken_base) = provider_with(&["--without", "Patient"]);
    let gw = Setup { data_dir: true, admin_token: Some(ADMIN), extra_config: LOOPBACK_ALLOWED, ..Default::default() }
        .serve();
    let url = |p: &str| format!("{}/admin/{p}", gw.base);
    let admin = |method: Method, p: &str, body: Value| admin_call(ADMIN, method, &url(p), Some(body));

    // The app's registration: a production and a test client id.
    let (status, reg) = admin(Method::POST, "clients", json!({ "name": "Care app", "tenants": [TENANT] }));
    assert_eq!(status, 201, "{reg}");
    let (prod_id, prod_secret) = (reg["client"]["client_id"].as_str().unwrap(), reg["client_secret"].as_str().unwrap());
    let (test_id, test_secret) =
        (reg["test_client"]["client_id"].as_str().unwrap(), reg["test_client_secret"].as_str().unwrap());
    assert_ne!(prod_id, test_id);
    assert_eq!(
        (reg["client"]["environment"].as_str(), reg["test_client"]["environment"].as_str()),
        (Some("production"), Some("test"))
    );

    // St Mary's, with a test and a production URL, each requested on its own.
    let (status, body) = admin(
        Method::PUT,
        &format!("tenants/{TENANT}/organizations/st-mary"),
        json!({ "actor": "alice", "name": "St Mary's" }),
    );
    assert_eq!(status, 200, "{body}");
    for (id, base) in [("st-mary-test", &test_base), ("st-mary-prod", &prod_base), ("st-mary-broken", &broken_base)] {
        let (status, body) = admin(
            Method::PUT,
            &format!("providers/{id}"),
            json!({ "actor": "alice", "base_url": base, "fhir_version": "r4" }),
        );
        assert_eq!(status, 200, "{body}");
    }
    let mapping = |id: &str| url(&format!("tenants/{TENANT}/providers/{id}"));
    let request = |id: &str, environment: &str| {
        let body =
            json!({ "actor": "alice", "approver": "bob", "organization": "st-mary", "environment": environment });
        admin_call(ADMIN, Method::PUT, &mapping(id), Some(body))
    };
    assert_eq!(request("st-mary-prod", "production").0, 200);
    assert_eq!(request("st-mary-test", "test").0, 200);
    let (status, body) = admin_call(
        ADMIN,
        Method::PUT,
        &mapping("st-mary-test"),
        Some(json!({ "actor": "alice", "approver": "bob", "organization": "nowhere", "environment": "test" })),
    );
    assert_eq!(status, 404, "an organization the tenant does not have: {body}");

    let bob = user_token(&gw, ADMIN, "bob", &format!("approver:{TENANT}"));
    // Production first: refused, the test URL has not passed the check.
    let (status, body) = decide(&bob, &mapping("st-mary-prod"), "approve", json!({}));
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("test"), "{body}");
    // Only the named approver (or an operator) runs a mapping's check: it
    // reads patient data with the hospital's credentials.
    let carla = user_token(&gw, ADMIN, "carla", &format!("approver:{TENANT}"));
    let (status, _) = admin_call(&carla, Method::POST, &format!("{}/check", mapping("st-mary-test")), None);
    assert_eq!(status, 403);
    let (status, _) = admin_call(&bob, Method::POST, &format!("{}/check", mapping("st-mary-nowhere")), None);
    assert_eq!(status, 404);
    // The approver can run the check alone first, and read the report.
    let (status, body) = admin_call(&bob, Method::POST, &format!("{}/check", mapping("st-mary-test")), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["report"]["passed"], true, "{body}");
    // A URL whose check fails is not approved; the answer carries the report.
    assert_eq!(request("st-mary-broken", "test").0, 200);
    let (status, body) = decide(&bob, &mapping("st-mary-broken"), "approve", json!({}));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["report"]["passed"], false);
    let (status, _) = admin(Method::GET, &format!("tenants/{TENANT}"), json!(null));
    assert_eq!(status, 200);

    // Test, then production.
    let (status, body) = decide(&bob, &mapping("st-mary-test"), "approve", json!({ "note": "test EHR reachable" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mapping"]["check_report"]["passed"], true);
    let (status, body) = decide(&bob, &mapping("st-mary-prod"), "approve", json!({}));
    assert_eq!(status, 200, "{body}");

    // Each client's tokens reach only their environment's URL.
    let read = |token: &str| {
        let resp = http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(token).send().unwrap();
        assert_eq!(resp.status(), 200);
        resp.headers()["x-request-id"].to_str().unwrap().to_owned()
    };
    let test_read = read(&token(&gw.base, test_id, test_secret));
    let prod_read = read(&token(&gw.base, prod_id, prod_secret));
    assert_eq!(reads_seen(&test_log), BTreeSet::from([test_read]));
    assert_eq!(reads_seen(&prod_log), BTreeSet::from([prod_read]));

    // The organization shows both URLs and their state.
    let (status, orgs) = admin_call(&bob, Method::GET, &url(&format!("tenants/{TENANT}/organizations")), None);
    assert_eq!(status, 200);
    let state = |env: &str, id: &str| {
        let list = orgs["organizations"][0]["environments"][env].as_array().unwrap();
        list.iter().find(|m| m["provider_id"] == id).map(|m| m["state"].as_str().unwrap().to_owned())
    };
    assert_eq!(state("test", "st-mary-test").as_deref(), Some("active"), "{orgs}");
    assert_eq!(state("test", "st-mary-broken").as_deref(), Some("pending"), "{orgs}");
    assert_eq!(state("production", "st-mary-prod").as_deref(), Some("active"), "{orgs}");

    // The integration record: what each side needs, nothing secret.
    let (status, record) = admin_call(&bob, Method::GET, &format!("{}/integration", mapping("st-mary-test")), None);
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["environment"], "test");
    assert_eq!(record["organization"]["name"], "St Mary's");
    assert_eq!(record["gateway"]["token_url"], format!("{}/oauth2/token", gw.base));
    assert_eq!(record["gateway"]["stu3_base"], format!("{}/stu3", gw.base));
    let clients: Vec<&str> =
        record["app"]["clients"].as_array().unwrap().iter().map(|c| c["client_id"].as_str().unwrap()).collect();
    assert!(clients.contains(&test_id) && !clients.contains(&prod_id), "{record}");
    assert_eq!(record["app"]["scopes"], json!([TENANT]));
    assert_eq!(record["hospital"]["fhir_base_url"], test_base.as_str());
    assert_eq!(record["approval"]["approved_by"], "bob");
    assert_eq!(record["approval"]["provider_check"]["passed"], true);
    let text = record.to_string();
    for secret in [prod_secret, test_secret, ADMIN, bob.as_str()] {
        assert!(!text.contains(secret), "the record holds a secret");
    }
    assert!(!text.contains("pat-0"), "the record names no patient: {text}");
    let (status, _) = admin_call(&bob, Method::GET, &format!("{}/integration", mapping("st-mary-broken")), None);
    assert_eq!(status, 409, "no record before approval");

    // The app's owner owns both client ids, and nothing else.
    let owner = user_token(&gw, ADMIN, "otto", &format!("app-owner:{prod_id}"));
    let (status, _) = admin_call(&owner, Method::POST, &url(&format!("clients/{test_id}/secrets")), Some(json!({})));
    assert_eq!(status, 201);
    let (status, _) = admin_call(&owner, Method::GET, &url(&format!("tenants/{TENANT}/organizations")), None);
    assert_eq!(status, 403);
}

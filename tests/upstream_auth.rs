//! How the gateway authenticates to hospitals' FHIR servers, against demo
//! providers that accept one method only: SMART Backend Services
//! `private_key_jwt` (assertions checked with a JWT library against the JWK
//! Set the gateway publishes) and `client_secret_post`. What each provider
//! accepted is read from its own request log.

mod support;

use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Setup, admin_call, decide, http, log_lines, provider_with, user_token};

const ADMIN: &str = "admin-token-for-upstream-auth-0123456789";
const TENANT_JWT: &str = "aaaaaaaa-0000-4000-8000-0000000000a1";
const TENANT_POST: &str = "bbbbbbbb-0000-4000-8000-0000000000b2";
const TENANT_WRONG: &str = "cccccccc-0000-4000-8000-0000000000c3";
const LOOPBACK_ALLOWED: &str = "[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n";

/// The token requests in a provider's log: which method passed (null when
/// refused).
fn token_requests(path: &Path) -> Vec<Value> {
    log_lines(path).into_iter().filter(|l| l["path"] == "/oauth2/token").map(|l| l["client_auth"].clone()).collect()
}

/// Registers provider `id` with `auth`, asks for `tenant` → `id` and has the
/// approver approve it (the live provider check runs first): the answer.
fn onboard(base: &str, approver: &str, id: &str, provider_base: &str, auth: Value, tenant: &str) -> (u16, Value) {
    let (status, body) = admin_call(
        ADMIN,
        Method::PUT,
        &format!("{base}/admin/providers/{id}"),
        Some(
            json!({ "actor": "alice", "base_url": provider_base, "fhir_version": "r4", "timeout_ms": 5000, "auth": auth }),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let mapping = format!("{base}/admin/tenants/{tenant}/providers/{id}");
    let (status, body) = admin_call(ADMIN, Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" })));
    assert_eq!(status, 200, "{body}");
    decide(approver, &mapping, "approve", json!({}))
}

/// The body naming who acts, for the shared admin token.
fn alice() -> Value {
    json!({ "actor": "alice" })
}

fn read(base: &str, token: &str) -> reqwest::blocking::Response {
    http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(token).send().expect("read")
}

#[test]
fn hospitals_accept_the_gateway_with_private_key_jwt_and_client_secret_post() {
    let gw = Setup {
        client_tenants: &[TENANT_JWT, TENANT_POST, TENANT_WRONG],
        data_dir: true,
        admin_token: Some(ADMIN),
        extra_config: LOOPBACK_ALLOWED,
        ..Default::default()
    }
    .serve();
    let logs = tempfile::tempdir().unwrap();
    let (jwt_log, post_log, wrong_log) =
        (logs.path().join("jwt.log"), logs.path().join("post.log"), logs.path().join("wrong.log"));

    // The hospital registers the gateway's JWK Set URL for its client.
    let jwks_url = format!("{}/providers/ehr-jwt/jwks.json", gw.base);
    let (jwt_provider, jwt_base) = provider_with(&[
        "--private-key-jwt",
        "gateway-client",
        "--jwks-url",
        &jwks_url,
        "--token-lifetime-seconds",
        "1",
        "--request-log",
        jwt_log.to_str().unwrap(),
    ]);
    let (post_provider, post_base) = provider_with(&[
        "--client-credentials",
        "gateway-post:post-secret-0123456789",
        "--token-auth-method",
        "client_secret_post",
        "--request-log",
        post_log.to_str().unwrap(),
    ]);
    let (wrong_provider, wrong_base) = provider_with(&[
        "--client-credentials",
        "gateway-post:post-secret-0123456789",
        "--token-auth-method",
        "client_secret_post",
        "--request-log",
        wrong_log.to_str().unwrap(),
    ]);

    // Before the provider is registered there is no key set to fetch.
    assert_eq!(http().get(&jwks_url).send().unwrap().status(), 404);

    let bob = user_token(&gw, ADMIN, "bob", "approver:*");
    let jwt_auth = json!({
        "type": "private-key-jwt",
        "token_url": jwt_provider.get("token_url"),
        "client_id": "gateway-client",
        "scope": "system/*.read",
    });
    let (status, body) = onboard(&gw.base, &bob, "ehr-jwt", &jwt_base, jwt_auth, TENANT_JWT);
    assert_eq!(status, 200, "{body}");
    let (status, provider) = admin_call(ADMIN, Method::GET, &format!("{}/admin/providers/ehr-jwt", gw.base), None);
    assert_eq!(status, 200);
    assert_eq!(provider["jwks_path"], "/providers/ehr-jwt/jwks.json");
    let history = provider["history"].to_string();
    assert!(history.contains("provider.key-created"), "{history}");

    // The published set: one public EC key, nothing private.
    let resp = http().get(&jwks_url).send().unwrap();
    assert_eq!(resp.status(), 200);
    let jwks: Value = resp.json().unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    assert_eq!((keys[0]["kty"].as_str(), keys[0]["alg"].as_str()), (Some("EC"), Some("ES384")));
    assert!(keys[0].get("d").is_none(), "{jwks}");
    let first_kid = keys[0]["kid"].as_str().unwrap().to_owned();

    // Secrets go in the data directory's provider-secrets, by name.
    let secrets = gw.dir.path().join("data/provider-secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    for name in ["post.secret", "wrong.secret"] {
        std::fs::write(secrets.join(name), "post-secret-0123456789\n").unwrap();
        std::fs::set_permissions(secrets.join(name), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    }
    let post_auth = |provider: &support::Running, method: Option<&str>, file: &str| {
        let mut auth = json!({
            "type": "client-credentials",
            "token_url": provider.get("token_url"),
            "client_id": "gateway-post",
            "client_secret_file": file,
        });
        if let Some(method) = method {
            auth["method"] = json!(method);
        }
        auth
    };
    let (status, body) = onboard(
        &gw.base,
        &bob,
        "ehr-post",
        &post_base,
        post_auth(&post_provider, Some("client_secret_post"), "post.secret"),
        TENANT_POST,
    );
    assert_eq!(status, 200, "{body}");
    // The same kind of hospital, declared with the default (HTTP Basic): the
    // approval's live check cannot get a token, so it is not approved.
    let wrong = post_auth(&wrong_provider, None, "wrong.secret");
    let (status, body) = onboard(&gw.base, &bob, "ehr-wrong", &wrong_base, wrong, TENANT_WRONG);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["report"]["passed"], false);

    // private_key_jwt: the assertion verified, a token issued, the read
    // made with it.
    let resp = read(&gw.base, &gw.token(TENANT_JWT));
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    let accepted = |log: &Path, method: &str| {
        let seen = token_requests(log);
        !seen.is_empty() && seen.iter().all(|m| m == method)
    };
    assert!(accepted(&jwt_log, "private_key_jwt"), "{:?}", token_requests(&jwt_log));
    let before_rotation = token_requests(&jwt_log).len();
    let reads: Vec<Value> = log_lines(&jwt_log).into_iter().filter(|l| l["path"] == "/fhir/Patient/pat-001").collect();
    assert!(!reads.is_empty() && reads.iter().all(|r| r["auth"] == "valid"), "{reads:?}");

    // client_secret_post: the secret in the form, accepted.
    let resp = read(&gw.base, &gw.token(TENANT_POST));
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    assert!(accepted(&post_log, "client_secret_post"), "{:?}", token_requests(&post_log));

    // The same secret in HTTP Basic was refused by the post-only hospital:
    // no token, no FHIR request, and the tenant is not routed there.
    let resp = read(&gw.base, &gw.token(TENANT_WRONG));
    assert_eq!(resp.status(), 403);
    let refused = token_requests(&wrong_log);
    assert!(!refused.is_empty() && refused.iter().all(Value::is_null), "{refused:?}");
    assert!(log_lines(&wrong_log).iter().all(|l| !l["path"].as_str().unwrap().starts_with("/fhir/Patient")));

    // Rotation: the new key signs, the old one stays published meanwhile.
    let (status, body) =
        admin_call(ADMIN, Method::POST, &format!("{}/admin/providers/ehr-jwt/keys/rotate", gw.base), Some(alice()));
    assert_eq!(status, 200, "{body}");
    let new_kid = body["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, first_kid);
    let jwks: Value = http().get(&jwks_url).send().unwrap().json().unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, [new_kid.as_str(), first_kid.as_str()]);
    // The provider's tokens live a second: the next read needs a new
    // assertion, signed with the new key (a kid the provider fetches anew).
    std::thread::sleep(Duration::from_millis(1_500));
    let token = gw.token(TENANT_JWT);
    let resp = read(&gw.base, &token);
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    assert_eq!(token_requests(&jwt_log).len(), before_rotation + 1);
    assert!(accepted(&jwt_log, "private_key_jwt"));

    // Nobody but an operator rotates keys.
    let owner = user_token(&gw, ADMIN, "olive", "approver:*");
    let (status, _) =
        admin_call(&owner, Method::POST, &format!("{}/admin/providers/ehr-jwt/keys/rotate", gw.base), None);
    assert_eq!(status, 403);
    // A provider without private_key_jwt has no key to rotate.
    let (status, body) =
        admin_call(ADMIN, Method::POST, &format!("{}/admin/providers/ehr-post/keys/rotate", gw.base), Some(alice()));
    assert_eq!(status, 409, "{body}");
    assert_eq!(http().get(format!("{}/providers/ehr-post/jwks.json", gw.base)).send().unwrap().status(), 404);
}

//! People on the admin API: users with roles and personal API tokens. An
//! app owner's token rotates its own client's secrets and reaches nothing
//! else; an auditor reads; only the named approver, signed in with their own
//! token, approves — not an operator, not another approver; a user's
//! changes are recorded under their name, whatever a body says.

mod support;

use serde_json::{Value, json};
use support::{Setup, cli_json, http, provider};

const TENANT: &str = "dddddddd-0000-4000-8000-00000000000d";
const TENANT_2: &str = "dddddddd-0000-4000-8000-0000000000d2";
const ADMIN: &str = "accounts-admin-token-0123456789";

struct Api {
    base: String,
}

impl Api {
    fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = http().request(method, format!("{}/admin/{path}", self.base)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("admin request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(Value::Null))
    }

    fn get(&self, token: &str, path: &str) -> u16 {
        self.call(token, reqwest::Method::GET, path, None).0
    }

    fn post(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(token, reqwest::Method::POST, path, Some(body))
    }

    fn put(&self, token: &str, path: &str, body: Value) -> (u16, Value) {
        self.call(token, reqwest::Method::PUT, path, Some(body))
    }
}

#[test]
fn users_act_within_their_roles_and_under_their_own_names() {
    let (_provider, base) = provider();
    let gw = Setup {
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT],
        data_dir: true,
        admin_token: Some(ADMIN),
        // The provider runs on loopback, where registered ones may not be.
        extra_config: "[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n",
        ..Default::default()
    }
    .serve();
    let api = Api { base: gw.base.clone() };
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();

    // Two clients; the first operator from the CLI, the others by the API.
    let client = |name: &str| {
        let (status, body) = api.post(ADMIN, "clients", json!({ "name": name, "tenants": [TENANT] }));
        assert_eq!(status, 201, "{body}");
        body["client"]["client_id"].as_str().unwrap().to_owned()
    };
    let (own, other) = (client("Owned app"), client("Someone else's app"));
    cli_json(&["user", "--data-dir", data, "create", "olga", "--role", "operator"]);
    let token = |user: &str| {
        let out = cli_json(&["user", "--data-dir", data, "token", user, "--label", "test", "--days", "1"]);
        out["token"].as_str().unwrap().to_owned()
    };
    let olga = token("olga");
    for (name, role) in [
        ("ada", format!("app-owner:{own}")),
        ("aud", "auditor".to_owned()),
        ("bob", format!("approver:{TENANT_2}")),
        ("carl", "approver:*".to_owned()),
        ("dev", format!("developer:{TENANT}")),
    ] {
        let (status, body) = api.post(&olga, "users", json!({ "username": name, "roles": [role] }));
        assert_eq!(status, 201, "{body}");
    }
    let (ada, aud, bob, carl) = (token("ada"), token("aud"), token("bob"), token("carl"));

    // A developer registers apps for their tenant, and owns what they made
    // (both ids), nothing else; another tenant is refused and nothing made.
    let dev = token("dev");
    let (status, made) = api.post(&dev, "clients", json!({ "name": "Dev app", "tenants": [TENANT] }));
    assert_eq!(status, 201, "{made}");
    let (dev_prod, dev_test) =
        (made["client"]["client_id"].as_str().unwrap(), made["test_client"]["client_id"].as_str().unwrap());
    assert_eq!(api.get(&dev, &format!("clients/{dev_prod}")), 200);
    assert_eq!(api.get(&dev, &format!("clients/{dev_test}")), 200);
    assert_eq!(api.post(&dev, &format!("clients/{dev_test}/rotate"), json!({ "grace_seconds": 0 })).0, 201);
    assert_eq!(api.get(&dev, &format!("clients/{own}")), 403);
    let (status, refused) = api.post(&dev, "clients", json!({ "name": "Elsewhere", "tenants": [TENANT, TENANT_2] }));
    assert_eq!(status, 403, "{refused}");
    assert!(refused.to_string().contains(TENANT_2), "the refusal names the tenant: {refused}");
    let (_, all) = api.call(ADMIN, reqwest::Method::GET, "clients", None);
    assert!(!all.to_string().contains("Elsewhere"), "nothing was registered: {all}");
    assert_eq!(api.get(&dev, "clients"), 403, "the registry's list is the operators'");
    assert_eq!(api.call(&ada, reqwest::Method::GET, "me", None).1["user"]["username"], "ada");

    // The app owner: their own client's secrets, nothing else.
    let (status, rotated) = api.post(&ada, &format!("clients/{own}/rotate"), json!({ "grace_seconds": 0 }));
    assert_eq!(status, 201, "{rotated}");
    let secret = rotated["client_secret"].as_str().unwrap();
    let (status, added) = api.post(
        &ada,
        &format!("clients/{own}/secrets"),
        json!({ "description": "ward tablets", "expires_in_days": 3 }),
    );
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["secret"]["description"], "ward tablets");
    assert_eq!(added["secret"]["created_by"], "ada", "who created it");
    // A token issued with a secret marks it, and its client, as used.
    let token = http()
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth(&own, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .unwrap();
    assert_eq!(token.status(), 200);
    let (_, shown) = api.call(&ada, reqwest::Method::GET, &format!("clients/{own}"), None);
    assert!(shown["last_used_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{shown}");
    let mut used: Vec<(String, bool)> = shown["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["description"].as_str().unwrap().to_owned(), s["last_used_at"].is_string()))
        .collect();
    used.sort();
    let expected = [("first secret", false), ("rotation", true), ("ward tablets", false)];
    assert_eq!(used, expected.map(|(d, u)| (d.to_owned(), u)), "only the rotated-in secret was used: {shown}");
    // Operators see what expires soon; the app owner does not see others'.
    let (status, expiring) = api.call(&olga, reqwest::Method::GET, "secrets/expiring?days=7", None);
    assert_eq!(status, 200);
    assert_eq!(expiring["secrets"][0]["secret_id"], added["secret"]["secret_id"], "{expiring}");
    assert_eq!(api.get(&ada, "secrets/expiring"), 403);
    assert_eq!(api.post(&ada, &format!("clients/{other}/rotate"), json!({ "grace_seconds": 0 })).0, 403);
    assert_eq!(api.post(&ada, &format!("clients/{own}/disable"), json!({})).0, 403);
    assert_eq!(api.post(&ada, "clients", json!({ "name": "x", "tenants": [TENANT] })).0, 403);
    assert_eq!(api.get(&ada, "clients"), 403);
    assert_eq!(api.get(&ada, "providers"), 403);
    assert_eq!(api.put(&ada, "providers/q", json!({ "base_url": base, "fhir_version": "r4" })).0, 403);
    assert_eq!(api.get(&ada, "access"), 403);
    assert_eq!(api.post(&ada, "keys/rotate", json!({})).0, 403);
    assert_eq!(api.post(&ada, "users", json!({ "username": "eve", "roles": ["operator"] })).0, 403);
    // Their own tokens, not someone else's.
    assert_eq!(api.post(&ada, "users/ada/tokens", json!({ "label": "laptop", "days": 7 })).0, 201);
    assert_eq!(api.post(&ada, "users/bob/tokens", json!({ "label": "stolen", "days": 7 })).0, 403);
    // Not even an operator or the shared token mints one for someone else
    // (an approver's, to approve as them).
    assert_eq!(api.post(&olga, "users/bob/tokens", json!({ "label": "stolen", "days": 7 })).0, 403);
    assert_eq!(api.post(ADMIN, "users/bob/tokens", json!({ "label": "stolen", "days": 7 })).0, 403);

    // The auditor reads the trail and changes nothing.
    assert_eq!(api.get(&aud, "access"), 200);
    assert_eq!(api.get(&aud, "audit"), 200);
    assert_eq!(api.post(&aud, "clients", json!({ "name": "x", "tenants": [TENANT] })).0, 403);

    // An operator requests a mapping naming bob; it is attributed to her.
    let mapping = format!("tenants/{TENANT_2}/providers/p");
    let (status, body) = api.put(&olga, &mapping, json!({ "approver": "bob" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mapping"]["state"], "pending");
    let (status, _) = api.put(&olga, &mapping, json!({ "actor": "alice", "approver": "bob" }));
    assert_eq!(status, 400, "a user cannot act under another name");

    // Only bob decides: not the operator, not another approver, not bob
    // claiming to be someone else.
    let approve = format!("{mapping}/approve");
    assert_eq!(api.post(&olga, &approve, json!({})).0, 403, "an operator is not the named approver");
    assert_eq!(api.post(&carl, &approve, json!({})).0, 403, "another approver");
    assert_eq!(api.post(&carl, &approve, json!({ "actor": "bob" })).0, 400, "claiming bob's name");
    assert_eq!(api.post(&bob, &format!("tenants/{TENANT}/providers/p/approve"), json!({})).0, 403, "out of scope");
    let (status, body) = api.post(&bob, &approve, json!({ "note": "reviewed" }));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["mapping"]["state"], "active");

    let (_, trail) = api.call(&aud, reqwest::Method::GET, "audit?limit=100", None);
    let events = trail["events"].as_array().or_else(|| trail.as_array()).cloned().unwrap_or_default();
    let by = |actor: &str, action: &str| {
        events.iter().any(|e| e["actor"] == actor && e["action"].as_str().unwrap_or("").contains(action))
    };
    assert!(by("bob", "approv"), "the approval is bob's: {trail}");
    assert!(by("olga", "request"), "the request is olga's: {trail}");
    assert!(by("ada", "rotat") || by("ada", "secret"), "the rotation is ada's: {trail}");

    // A disabled user's token stops at once; unknown tokens are refused.
    assert_eq!(api.post(&olga, "users/ada/disable", json!({})).0, 200);
    assert_eq!(api.get(&ada, "me"), 401);
    assert_eq!(api.get("fgu_not-a-token", "me"), 401);
}

/// The code an authenticator app shows now for `uri` (pyotp, a TOTP library
/// nobody here wrote).
fn totp_code(uri: &str) -> String {
    let out = std::process::Command::new(support::python())
        .args(["-c", "import pyotp, sys; print(pyotp.parse_uri(sys.argv[1]).now())", uri])
        .output()
        .expect("running pyotp");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn set_password(data: &str, user: &str, password: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["user", "--data-dir", data, "password", user])
        .env("FHIRGATE_LOG", "warn")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(password.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_local_account_signs_in_with_a_password_and_a_totp_code() {
    let gw =
        Setup { data_dir: true, admin_token: Some(ADMIN), admin_extra: "reauth_seconds = 2", ..Default::default() }
            .serve();
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();
    cli_json(&["user", "--data-dir", data, "create", "olga", "--role", "operator"]);
    let password = "correct horse battery staple";
    set_password(data, "olga", password);
    let sign_in = |body: Value| http().post(format!("{}/admin/session", gw.base)).json(&body).send().unwrap();

    // An operator without a second factor is turned away, and says why.
    let resp = sign_in(json!({ "username": "olga", "password": password }));
    assert_eq!(resp.status(), 403);
    assert!(resp.text().unwrap().contains("second factor"));
    let uri = cli_json(&["user", "--data-dir", data, "totp", "olga"])["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");

    assert_eq!(sign_in(json!({ "username": "olga", "password": password })).status(), 401, "no code");
    let code = totp_code(&uri);
    assert_eq!(sign_in(json!({ "username": "olga", "password": "wrong password!", "code": code })).status(), 401);
    assert_eq!(sign_in(json!({ "username": "nobody", "password": password, "code": code })).status(), 401);
    let resp = sign_in(json!({ "username": "olga", "password": password, "code": code }));
    assert_eq!(resp.status(), 201);
    let set_cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["__Host-fhirgate-session=", "HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let body: Value = resp.json().unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(
        sign_in(json!({ "username": "olga", "password": password, "code": code })).status(),
        401,
        "a code works once"
    );

    // The session reads; a change needs its CSRF token too.
    let me = http().get(format!("{}/admin/me", gw.base)).header("cookie", &cookie).send().unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().unwrap()["user"]["username"], "olga");
    let create = |csrf: Option<&str>| {
        let mut req = http()
            .post(format!("{}/admin/users", gw.base))
            .header("cookie", &cookie)
            .json(&json!({ "username": "aud", "roles": ["auditor"] }));
        if let Some(c) = csrf {
            req = req.header("x-csrf-token", c);
        }
        req.send().unwrap().status().as_u16()
    };
    assert_eq!(create(None), 401, "no CSRF token");
    assert_eq!(create(Some("0000")), 401, "a wrong CSRF token");
    assert_eq!(create(Some(&csrf)), 201);

    // Secrets, keys and approvals need a recent sign-in (2 s here).
    let rotate = || {
        let resp = http()
            .post(format!("{}/admin/keys/rotate", gw.base))
            .header("cookie", &cookie)
            .header("x-csrf-token", &csrf)
            .send()
            .unwrap();
        resp.status().as_u16()
    };
    assert_eq!(rotate(), 201);
    std::thread::sleep(std::time::Duration::from_millis(3100));
    assert_eq!(rotate(), 403, "a sign-in too old for a key rotation");
    assert_eq!(create(Some(&csrf)), 403, "or for giving someone a role");
    let disable = http()
        .post(format!("{}/admin/users/aud/disable", gw.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(disable.status(), 200, "other changes go on");

    // A change of roles ends the user's sessions: a new sign-in, a new id.
    let me = || http().get(format!("{}/admin/me", gw.base)).header("cookie", &cookie).send().unwrap().status();
    assert_eq!(me(), 200);
    let granted = http()
        .post(format!("{}/admin/users/olga/roles", gw.base))
        .bearer_auth(ADMIN)
        .json(&json!({ "role": "auditor" }))
        .send()
        .unwrap();
    assert_eq!(granted.status(), 200);
    assert_eq!(me(), 401, "the session ended with the privilege change");

    // Signed out, a cookie is worth nothing.
    let out = http().delete(format!("{}/admin/session", gw.base)).header("cookie", &cookie).send().unwrap();
    assert_eq!(out.status(), 200);
    assert_eq!(me(), 401);

    // Guessing one user's password from one address stops after ten tries.
    for _ in 0..10 {
        assert_eq!(sign_in(json!({ "username": "aud", "password": "guess guess guess" })).status(), 401);
    }
    let resp = sign_in(json!({ "username": "aud", "password": "guess guess guess" }));
    assert_eq!(resp.status(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

/// Signs `user` in with `password` and a fresh code for `totp_uri`: the
/// session cookie and its CSRF token.
fn signed_in(base: &str, user: &str, password: &str, totp_uri: &str) -> (String, String) {
    let resp = http()
        .post(format!("{base}/admin/session"))
        .json(&json!({ "username": user, "password": password, "code": totp_code(totp_uri) }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let csrf = resp.json::<Value>().unwrap()["csrf_token"].as_str().unwrap().to_owned();
    (cookie, csrf)
}

#[test]
fn the_first_operator_comes_from_a_one_time_link_and_invites_the_others() {
    // No shared admin token at all: only people.
    let gw = Setup { data_dir: true, people_only_admin: true, ..Default::default() }.serve();
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();
    assert_eq!(http().get(format!("{}/admin/me", gw.base)).bearer_auth(ADMIN).send().unwrap().status(), 401);

    let out = cli_json(&[
        "user",
        "--data-dir",
        data,
        "invite",
        "olga",
        "--role",
        "operator",
        "--hours",
        "1",
        "--public-url",
        &gw.base,
    ]);
    let link = out["link"].as_str().unwrap().to_owned();
    assert!(link.starts_with(&format!("{}/admin/invitations/fgi_", gw.base)), "{out}");
    assert_eq!(out["invitation"]["roles"], json!(["operator"]));

    // The link shows what it is for; a made-up one shows nothing.
    let shown: Value = http().get(&link).send().unwrap().json().unwrap();
    assert_eq!(shown["invitation"]["username"], "olga");
    let forged = format!("{}/admin/invitations/fgi_{}", gw.base, "A".repeat(43));
    assert_eq!(http().get(&forged).send().unwrap().status(), 404);
    assert_eq!(
        http().post(format!("{forged}/accept")).json(&json!({ "password": "x".repeat(20) })).send().unwrap().status(),
        404
    );

    // Accepting: a password that is too short is refused and uses nothing up.
    let accept =
        |password: &str| http().post(format!("{link}/accept")).json(&json!({ "password": password })).send().unwrap();
    assert_eq!(accept("short").status(), 400);
    let password = "olga's long pass phrase";
    let resp = accept(password);
    assert_eq!(resp.status(), 201);
    let accepted: Value = resp.json().unwrap();
    assert_eq!(accepted["user"]["roles"], json!(["operator"]));
    let totp_uri = accepted["totp_uri"].as_str().unwrap().to_owned();
    assert_eq!(accept(password).status(), 404, "a link works once");
    assert_eq!(http().get(&link).send().unwrap().status(), 404);

    // Olga signs in with a code from an authenticator and invites Ann.
    let (cookie, csrf) = signed_in(&gw.base, "olga", password, &totp_uri);
    let invite = |cookie: &str, csrf: &str, body: Value| {
        http()
            .post(format!("{}/admin/invitations", gw.base))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .unwrap()
    };
    let resp = invite(&cookie, &csrf, json!({ "username": "ann", "roles": [format!("approver:{TENANT}")] }));
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().unwrap();
    let ann_link = format!("{}{}", gw.base, body["path"].as_str().unwrap());
    let listed: Value =
        http().get(format!("{}/admin/invitations", gw.base)).header("cookie", &cookie).send().unwrap().json().unwrap();
    assert_eq!(listed["invitations"][0]["username"], "ann");
    assert_eq!(listed["invitations"][0]["created_by"], "olga", "{listed}");

    let resp = http()
        .post(format!("{ann_link}/accept"))
        .json(&json!({ "password": "ann's long pass phrase" }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 201);
    let ann_totp = resp.json::<Value>().unwrap()["totp_uri"].as_str().unwrap().to_owned();
    let (ann_cookie, ann_csrf) = signed_in(&gw.base, "ann", "ann's long pass phrase", &ann_totp);
    let me: Value =
        http().get(format!("{}/admin/me", gw.base)).header("cookie", &ann_cookie).send().unwrap().json().unwrap();
    assert_eq!(me["user"]["roles"], json!([format!("approver:{TENANT}")]));
    // Only operators invite.
    assert_eq!(invite(&ann_cookie, &ann_csrf, json!({ "username": "eve", "roles": ["operator"] })).status(), 403);

    // The trail says who invited whom.
    let users = cli_json(&["user", "--data-dir", data, "list"]);
    let ann = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "ann").unwrap().clone();
    assert_eq!(ann["created_by"], "invitation:olga");
}

#[test]
fn the_demo_prints_one_user_per_role_who_signs_in_and_acts_in_that_role() {
    let demo = support::demo();
    let base = demo.get("gateway");
    assert_eq!(demo.get("sign_in"), format!("{base}/admin/session"));
    let users = demo.facts()["users"].as_array().unwrap().clone();
    let roles: Vec<&str> = users.iter().map(|u| u["role"].as_str().unwrap()).collect();
    let client_id = demo.get("client_id");
    let tenant = demo.get("tenant_id");
    assert_eq!(roles, ["operator", &format!("app-owner:{client_id}"), &format!("approver:{tenant}"), "auditor"]);
    let session = |role_prefix: &str| {
        let u = users.iter().find(|u| u["role"].as_str().unwrap().starts_with(role_prefix)).unwrap();
        let secret = u["totp_secret"].as_str().unwrap();
        let uri = format!("otpauth://totp/fhirgate:x?secret={secret}&issuer=fhirgate");
        signed_in(&base, u["username"].as_str().unwrap(), u["password"].as_str().unwrap(), &uri)
    };
    let call = |(cookie, csrf): &(String, String), method: reqwest::Method, path: &str, body: Value| {
        http()
            .request(method, format!("{base}/admin/{path}"))
            .header("cookie", cookie)
            .header("x-csrf-token", csrf)
            .json(&body)
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    use reqwest::Method;
    let operator = session("operator");
    assert_eq!(call(&operator, Method::GET, "users", json!(null)), 200);
    let owner = session("app-owner");
    assert_eq!(call(&owner, Method::POST, &format!("clients/{client_id}/secrets"), json!({})), 201);
    assert_eq!(call(&owner, Method::POST, "clients", json!({ "name": "x", "tenants": [tenant] })), 403);
    assert_eq!(call(&owner, Method::GET, "providers", json!(null)), 403);
    let approver = session("approver");
    assert_eq!(call(&approver, Method::GET, &format!("tenants/{tenant}"), json!(null)), 200);
    assert_eq!(call(&approver, Method::GET, "users", json!(null)), 403);
    let auditor = session("auditor");
    assert_eq!(call(&auditor, Method::GET, "access", json!(null)), 200);
    assert_eq!(call(&auditor, Method::POST, &format!("clients/{client_id}/secrets"), json!({})), 403);

    // The demo client, now a registered one, still gets its tokens.
    let resp = http()
        .post(demo.get("token_url"))
        .basic_auth(&client_id, Some(demo.get("client_secret")))
        .form(&[("grant_type", "client_credentials"), ("scope", tenant.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

//! Several gateways, one PostgreSQL: what one replica is told, every other
//! one acts on. A client made through A gets a token from B; a secret
//! revoked, a token revoked or a client disabled through A is refused by C
//! on the next request; a tenant approved through A routes on C within a
//! second (measured and printed), and within the poll bound when the
//! replicas' listening connections were killed; two replicas rotating one
//! client's secret at once: one wins and nothing is lost; a module uploaded
//! through B serves on A and C within a second, and a rollback through C
//! everywhere. PostgreSQL restarted under them: they report not-ready, then
//! recover by themselves.

mod support;

use std::time::{Duration, Instant};

use fhirgate_store::testing::Cluster;
use reqwest::Method;
use serde_json::{Value, json};
use support::{SECRET, Served, Setup, admin_call, cli_json, http, provider};

const ADMIN: &str = "admin-token-for-replica-tests-0123456789";
const T1: &str = "aaaaaaaa-1111-4111-8111-000000000001";
const T2: &str = "aaaaaaaa-2222-4222-8222-000000000002";
const T3: &str = "aaaaaaaa-3333-4333-8333-000000000003";

/// One of these tests at a time: each runs several gateways, and the
/// propagation bounds they check are not to be measured against another
/// test's load on the same cores.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The configuration every replica shares: the database, the KEK, the URL
/// clients reach them all at (behind a balancer; the test speaks to each
/// on its loopback port), loopback providers allowed.
fn shared_config(url: &str, kek: &std::path::Path) -> String {
    format!(
        "database_url = {url:?}\nkek_file = {:?}\npublic_url = \"https://gateway.example\"\n\
         accepted_hosts = [\"127.0.0.1\"]\n[outbound]\nallowed_ranges = [\"127.0.0.0/8\"]\n",
        kek.display().to_string()
    )
}

/// A KEK file of the test's, as each replica would be given it.
fn kek_file(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("kek.key");
    std::fs::write(&path, "5a".repeat(32)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn replica(config: &str, provider_base: &str) -> Served {
    Setup {
        admin_token: Some(ADMIN),
        extra_config: config,
        providers: &[("declared", provider_base)],
        routes: &[(T1, "declared")],
        tenants: &[(T1, "declared")],
        client_tenants: &[T1],
        ..Default::default()
    }
    .serve_binary()
}

fn token_status(base: &str, client: &str, secret: &str, tenant: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth(client, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", tenant)])
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
}

fn token(base: &str, client: &str, secret: &str, tenant: &str) -> String {
    let (status, body) = token_status(base, client, secret, tenant);
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_owned()
}

fn read(base: &str, token: &str) -> u16 {
    http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(token).send().unwrap().status().as_u16()
}

/// How long until `done` holds, polling every 10 ms for at most `limit`.
fn time_until(limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

fn admin(gw: &Served, method: Method, path: &str, body: Value) -> (u16, Value) {
    admin_call(ADMIN, method, &format!("{}/admin/{path}", gw.base), Some(body))
}

/// Registers provider `id` at `base` for `tenant` through `gw`, naming
/// `approver`: the mapping's URL.
fn request_mapping(gw: &Served, tenant: &str, id: &str, base: &str) -> String {
    let (status, body) = admin(
        gw,
        Method::PUT,
        &format!("providers/{id}"),
        json!({ "actor": "alice", "base_url": base, "fhir_version": "r4" }),
    );
    assert_eq!(status, 200, "{body}");
    let mapping = format!("{}/admin/tenants/{tenant}/providers/{id}", gw.base);
    let (status, body) = admin_call(ADMIN, Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" })));
    assert_eq!(status, 200, "{body}");
    mapping
}

#[test]
fn replicas_on_one_database_agree_at_once() {
    let _one = one_at_a_time();
    let cluster = Cluster::shared();
    let url = tokio::runtime::Runtime::new().unwrap().block_on(cluster.database()).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kek = kek_file(keys.path());
    let config = shared_config(&url, &kek);
    let (_provider, provider_base) = provider();
    let (a, b, c) =
        (replica(&config, &provider_base), replica(&config, &provider_base), replica(&config, &provider_base));

    // A client made through A gets a token from B, which reads on C.
    let (status, made) = admin(&a, Method::POST, "clients", json!({ "name": "Care app", "tenants": [T1, T2, T3] }));
    assert_eq!(status, 201, "{made}");
    let id = made["client"]["client_id"].as_str().unwrap().to_owned();
    let first = made["client_secret"].as_str().unwrap().to_owned();
    let on_b = token(&b.base, &id, &first, T1);
    assert_eq!(read(&c.base, &on_b), 200);

    // A second secret; the first revoked through A is refused by C at once.
    let (status, added) = admin(&a, Method::POST, &format!("clients/{id}/secrets"), json!({}));
    assert_eq!(status, 201, "{added}");
    let second = added["client_secret"].as_str().unwrap().to_owned();
    let (_, shown) = admin_call(ADMIN, Method::GET, &format!("{}/admin/clients/{id}", a.base), None);
    let first_id = shown["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret_id"].as_str().unwrap().to_owned())
        .find(|s| s != added["secret"]["secret_id"].as_str().unwrap())
        .unwrap();
    assert_eq!(admin(&a, Method::DELETE, &format!("clients/{id}/secrets/{first_id}"), json!({})).0, 200);
    let (status, body) = token_status(&c.base, &id, &first, T1);
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")), "{body}");
    let on_c = token(&c.base, &id, &second, T1);

    // Guesses spread over the replicas meet one limit: ten failures for a
    // client id from this address, on any replica, then every replica
    // refuses it; another client from the same address is not locked out.
    for (i, gw) in [&a, &b, &c].iter().cycle().take(10).enumerate() {
        assert_eq!(token_status(&gw.base, "guessed-app", &format!("guess-{i}"), T1).0, 401);
    }
    for gw in [&a, &b, &c] {
        let (status, body) = token_status(&gw.base, "guessed-app", "guess", T1);
        assert_eq!(status, 429, "throttled on every replica: {body}");
        assert_eq!(token_status(&gw.base, &id, &second, T1).0, 200);
    }

    // A token revoked through A is refused by C on its next request.
    let declared = token(&a.base, "app", SECRET, T1);
    assert_eq!(read(&c.base, &declared), 200);
    let resp = http()
        .post(format!("{}/oauth2/revoke", a.base))
        .basic_auth("app", Some(SECRET))
        .form(&[("token", declared.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = http().get(format!("{}/stu3/Patient/pat-001", c.base)).bearer_auth(&declared).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    // A client disabled through A: its tokens end on B and C at once.
    assert_eq!(admin(&a, Method::POST, &format!("clients/{id}/disable"), json!({})).0, 200);
    assert_eq!(read(&b.base, &on_c), 401);
    assert_eq!(token_status(&c.base, &id, &second, T1).0, 401);
    assert_eq!(admin(&a, Method::POST, &format!("clients/{id}/enable"), json!({})).0, 200);
    assert_eq!(read(&b.base, &on_c), 200);

    // A signing key rotated through A: C publishes it and signs with it
    // within a second (never with a key of its own), and B accepts those
    // tokens.
    let (status, rotated) = admin(&a, Method::POST, "keys/rotate", json!({}));
    assert_eq!(status, 201, "{rotated}");
    let kid = rotated["kid"].as_str().unwrap().to_owned();
    let published = |gw: &Served| -> Value {
        support::polling_http().get(format!("{}/.well-known/jwks.json", gw.base)).send().unwrap().json().unwrap()
    };
    time_until(Duration::from_secs(1), || published(&c)["keys"][0]["kid"] == kid.as_str());
    let from_c = token(&c.base, &id, &second, T1);
    let header: Value = {
        use base64::Engine as _;
        let head = from_c.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(head).unwrap()).unwrap()
    };
    assert_eq!(header["kid"], kid.as_str());
    assert_eq!(read(&b.base, &from_c), 200);
    let signing: Vec<Value> = [&a, &b, &c].iter().map(|gw| published(gw)["keys"][0]["kid"].clone()).collect();
    assert!(signing.iter().all(|k| *k == kid.as_str()), "one key signs everywhere: {signing:?}");

    // A tenant approved through A routes on C within a second.
    let (status, body) = admin(&a, Method::POST, "users", json!({ "username": "bob", "roles": ["approver:*"] }));
    assert_eq!(status, 201, "{body}");
    let kek_arg = kek.to_str().unwrap();
    let issued = cli_json(&[
        "user",
        "--database-url",
        &url,
        "--kek-file",
        kek_arg,
        "token",
        "bob",
        "--label",
        "test",
        "--days",
        "1",
    ]);
    let bob = issued["token"].as_str().unwrap().to_owned();
    // Password guesses spread over the replicas meet one limit too.
    let sign_in = |gw: &Served, password: &str| {
        let resp = http()
            .post(format!("{}/admin/session", gw.base))
            .json(&json!({ "username": "bob", "password": password }))
            .send()
            .unwrap();
        resp.status().as_u16()
    };
    for (i, gw) in [&a, &b, &c].iter().cycle().take(10).enumerate() {
        assert_eq!(sign_in(gw, &format!("guess-{i}-long-enough")), 401);
    }
    for gw in [&a, &b, &c] {
        assert_eq!(sign_in(gw, "another-guess-long-enough"), 429, "sign-ins throttled on every replica");
    }
    let t2_token = token(&b.base, &id, &second, T2);
    assert_eq!(read(&c.base, &t2_token), 403, "no provider serves T2 yet");
    let mapping = request_mapping(&a, T2, "second-hospital", &provider_base);
    let (status, body) = admin_call(&bob, Method::POST, &format!("{mapping}/approve"), Some(json!({})));
    assert_eq!(status, 200, "{body}");
    let took = time_until(Duration::from_secs(1), || read(&c.base, &t2_token) == 200);
    println!("a tenant approved through one replica routed on another after {} ms", took.as_millis());

    // With every replica's listening connection killed, a change still
    // arrives within the poll bound.
    let killed = kill_listeners(cluster);
    assert!(killed >= 3, "{killed} listening connections killed");
    let t3_token = token(&c.base, &id, &second, T3);
    let mapping = request_mapping(&a, T3, "third-hospital", &provider_base);
    let (status, body) = admin_call(&bob, Method::POST, &format!("{mapping}/approve"), Some(json!({})));
    assert_eq!(status, 200, "{body}");
    let took = time_until(Duration::from_secs(5), || read(&c.base, &t3_token) == 200);
    println!("with the listeners killed, the next approval routed on another replica after {} ms", took.as_millis());

    // Two replicas rotate one client's secret at once: both answer, one
    // secret is left without an end (the winner's), and each secret handed
    // out works (nothing lost).
    let rotate = |gw: &Served| {
        let url = format!("{}/admin/clients/{id}/rotate", gw.base);
        move || admin_call(ADMIN, Method::POST, &url, Some(json!({ "grace_seconds": 600 })))
    };
    let (on_a, on_b) = (rotate(&a), rotate(&b));
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(on_a);
        let tb = s.spawn(on_b);
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!((ra.0, rb.0), (201, 201), "{} {}", ra.1, rb.1);
    let (_, shown) = admin_call(ADMIN, Method::GET, &format!("{}/admin/clients/{id}", c.base), None);
    let endless: Vec<&Value> = shown["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["expires_at"].is_null() && s["revoked_at"].is_null())
        .collect();
    assert_eq!(endless.len(), 1, "one rotation wins: {shown}");
    let winner = endless[0]["secret_id"].as_str().unwrap();
    assert!([&ra.1, &rb.1].iter().any(|r| r["secret"]["secret_id"] == winner), "{shown}");
    for secret in [&second, ra.1["client_secret"].as_str().unwrap(), rb.1["client_secret"].as_str().unwrap()] {
        assert_eq!(token_status(&c.base, &id, secret, T1).0, 200, "a secret handed out was lost");
    }

    // A module uploaded through B serves on A and C within a second; a
    // rollback through C brings the earlier one back everywhere.
    let table = serving(&a, "routing");
    let rules = std::fs::read(support::guest("fhirgate_router_rules")).unwrap();
    let digest = support::sha256(&support::guest("fhirgate_router_rules"));
    let resp = http()
        .put(format!("{}/admin/modules/routing?name=router-rules&sha256={digest}", b.base))
        .bearer_auth(ADMIN)
        .body(rules)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text());
    let took =
        time_until(Duration::from_secs(1), || serving(&a, "routing") == digest && serving(&c, "routing") == digest);
    println!("a module uploaded through one replica served on the others after {} ms", took.as_millis());
    let on_a = token(&a.base, &id, &second, T1);
    assert_eq!(read(&a.base, &on_a), 200);
    let (status, body) = admin_call(ADMIN, Method::POST, &format!("{}/admin/modules/rollback", c.base), None);
    assert_eq!(status, 200, "{body}");
    time_until(Duration::from_secs(1), || serving(&a, "routing") == table && serving(&b, "routing") == table);
    assert_eq!(read(&b.base, &on_a), 200);
    // The history is the same everywhere: nothing further back (a second
    // rollback does not toggle to the module just rolled back from), and a
    // step forward through A brings the upload back everywhere.
    let (status, body) = admin_call(ADMIN, Method::POST, &format!("{}/admin/modules/rollback", b.base), None);
    assert_eq!(status, 409, "{body}");
    let (status, body) = admin_call(ADMIN, Method::GET, &format!("{}/admin/modules", b.base), None);
    assert_eq!((status, &body["rollback_steps"], &body["forward_steps"]), (200, &json!(0), &json!(1)), "{body}");
    let (status, body) = admin_call(ADMIN, Method::POST, &format!("{}/admin/modules/forward", a.base), None);
    assert_eq!(status, 200, "{body}");
    time_until(Duration::from_secs(1), || serving(&b, "routing") == digest && serving(&c, "routing") == digest);
    let (status, body) = admin_call(ADMIN, Method::GET, &format!("{}/admin/modules", c.base), None);
    assert_eq!((status, &body["rollback_steps"], &body["forward_steps"]), (200, &json!(1), &json!(0)), "{body}");
}

/// The digest of the module serving `role` on `gw`.
fn serving(gw: &Served, role: &str) -> String {
    let (status, body) = admin_call(ADMIN, Method::GET, &format!("{}/admin/modules", gw.base), None);
    assert_eq!(status, 200, "{body}");
    let modules = body["modules"].as_array().unwrap();
    let m = modules.iter().find(|m| m["role"] == role && m.get("tenant").is_none()).unwrap();
    m["digest"].as_str().unwrap().to_owned()
}

/// Kills every connection listening for announcements; how many.
fn kill_listeners(cluster: &Cluster) -> i64 {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&cluster.url("postgres")).await.unwrap();
        let killed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN%') AS k",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        killed
    })
}

#[test]
fn replicas_report_not_ready_while_the_database_is_down_and_recover_by_themselves() {
    let _one = one_at_a_time();
    let cluster = Cluster::start().unwrap();
    let url = tokio::runtime::Runtime::new().unwrap().block_on(cluster.database()).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kek = kek_file(keys.path());
    let config = shared_config(&url, &kek);
    let (_provider, provider_base) = provider();
    let (a, b) = (replica(&config, &provider_base), replica(&config, &provider_base));
    let ready = |gw: &Served| {
        support::polling_http().get(format!("{}/readyz", gw.base)).send().map(|r| r.status().as_u16()).unwrap_or(0)
    };
    assert_eq!((ready(&a), ready(&b)), (200, 200));
    let before = token(&a.base, "app", SECRET, T1);

    cluster.stop().unwrap();
    let took = time_until(Duration::from_secs(15), || ready(&a) == 503 && ready(&b) == 503);
    println!("database stopped: both replicas not ready after {} ms", took.as_millis());
    cluster.resume().unwrap();
    let took = time_until(Duration::from_secs(30), || ready(&a) == 200 && ready(&b) == 200);
    println!("database back: both replicas ready again after {} ms", took.as_millis());
    // Serving as before, without a restart.
    assert_eq!(read(&b.base, &before), 200);
    let after = token(&b.base, "app", SECRET, T1);
    assert_eq!(read(&a.base, &after), 200);
}

#[test]
fn a_replica_killed_under_load_leaves_the_others_serving_and_every_answer_audited() {
    let _one = one_at_a_time();
    let url = tokio::runtime::Runtime::new().unwrap().block_on(Cluster::shared().database()).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let config = shared_config(&url, &kek_file(keys.path()));
    let (_provider, provider_base) = provider();
    let replicas =
        [replica(&config, &provider_base), replica(&config, &provider_base), replica(&config, &provider_base)];
    let token = token(&replicas[0].base, "app", SECRET, T1);
    let bases: Vec<String> = replicas.iter().map(|r| r.base.clone()).collect();
    let victim = replicas[1].running.pid();

    // Four clients read through every replica in turn; B is killed (SIGKILL)
    // a moment in. Every 200 is kept with its request id.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (answered, failed_after_kill) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let (bases, token, stop) = (&bases, &token, &stop);
                s.spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                    let (mut ids, mut failed) = (Vec::new(), 0);
                    let mut i = w;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let base = &bases[i % bases.len()];
                        i += 1;
                        match client.get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(token).send() {
                            Ok(resp) if resp.status() == 200 => {
                                ids.push((base.clone(), resp.headers()["x-request-id"].to_str().unwrap().to_owned()))
                            }
                            Ok(resp) => panic!("{base} answered {}", resp.status()),
                            Err(_) => failed += 1,
                        }
                    }
                    (ids, failed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        let killed = std::process::Command::new("kill").args(["-9", &victim.to_string()]).status().unwrap();
        assert!(killed.success());
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut all = Vec::new();
        let mut failed = 0;
        for w in workers {
            let (ids, f) = w.join().unwrap();
            all.extend(ids);
            failed += f;
        }
        (all, failed)
    });
    let by = |base: &str| answered.iter().filter(|(b, _)| b == base).count();
    println!(
        "answered {} reads (A {}, B {}, C {}); {failed_after_kill} refused by the killed replica",
        answered.len(),
        by(&bases[0]),
        by(&bases[1]),
        by(&bases[2])
    );
    assert!(failed_after_kill > 0, "the killed replica stopped answering");
    assert!(by(&bases[0]) > 0 && by(&bases[2]) > 0 && by(&bases[1]) > 0);
    // The others kept serving after the kill.
    for base in [&bases[0], &bases[2]] {
        assert_eq!(read(base, &token), 200);
    }
    // Every answered request, on every replica (the killed one too), has
    // its access record: records are committed before the answer goes out.
    let recorded: std::collections::BTreeSet<String> = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            sqlx::query_scalar("SELECT request_id FROM access_log WHERE part = 0").fetch_all(&mut conn).await.unwrap()
        })
        .into_iter()
        .collect();
    let missing: Vec<&(String, String)> = answered.iter().filter(|(_, id)| !recorded.contains(id)).collect();
    assert!(missing.is_empty(), "{} answered requests without an access record: {missing:?}", missing.len());
}

#[test]
fn a_provider_credential_kept_in_the_database_serves_every_replica() {
    let _one = one_at_a_time();
    let url = tokio::runtime::Runtime::new().unwrap().block_on(Cluster::shared().database()).unwrap();
    let keys = tempfile::tempdir().unwrap();
    let kek = kek_file(keys.path());
    let config = shared_config(&url, &kek);
    let (_plain, plain_base) = provider();
    let (hospital, hospital_base) =
        support::provider_with(&["--client-credentials", "gateway:hospital-secret-0123456789"]);
    let (a, c) = (replica(&config, &plain_base), replica(&config, &plain_base));
    let (status, made) = admin(&a, Method::POST, "clients", json!({ "name": "Care app", "tenants": [T2] }));
    assert_eq!(status, 201, "{made}");
    let (id, secret) = (made["client"]["client_id"].as_str().unwrap(), made["client_secret"].as_str().unwrap());

    // Kept in the database, sealed, by the CLI given only the database and KEK.
    let kek_arg = kek.to_str().unwrap();
    let state = ["--database-url", url.as_str(), "--kek-file", kek_arg];
    let seal: Vec<&str> =
        ["directory"].into_iter().chain(state).chain(["--actor", "ops", "seal-secret", "hospital.secret"]).collect();
    support::cli_with_input(&seal, "hospital-secret-0123456789\n");
    let stored: Vec<String> = tokio::runtime::Runtime::new().unwrap().block_on(async {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query_scalar("SELECT sealed FROM provider_secrets").fetch_all(&mut conn).await.unwrap()
    });
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains("hospital-secret"), "sealed at rest");

    // A provider registered through A names it; the approval's live check
    // and the reads on C get the hospital's token with it.
    let (status, body) = admin(&a, Method::POST, "users", json!({ "username": "bob", "roles": ["approver:*"] }));
    assert_eq!(status, 201, "{body}");
    let token_args: Vec<&str> =
        ["user"].into_iter().chain(state).chain(["token", "bob", "--label", "t", "--days", "1"]).collect();
    let bob = cli_json(&token_args)["token"].as_str().unwrap().to_owned();
    let auth = json!({
        "type": "client-credentials",
        "token_url": hospital.get("token_url"),
        "client_id": "gateway",
        "client_secret_file": "hospital.secret",
    });
    let (status, body) = admin(
        &a,
        Method::PUT,
        "providers/secured",
        json!({ "actor": "alice", "base_url": hospital_base, "fhir_version": "r4", "auth": auth }),
    );
    assert_eq!(status, 200, "{body}");
    let mapping = format!("{}/admin/tenants/{T2}/providers/secured", a.base);
    let (status, body) = admin_call(ADMIN, Method::PUT, &mapping, Some(json!({ "actor": "alice", "approver": "bob" })));
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin_call(&bob, Method::POST, &format!("{mapping}/approve"), Some(json!({})));
    assert_eq!(status, 200, "{body}");
    let on_c = token(&c.base, id, secret, T2);
    time_until(Duration::from_secs(1), || read(&c.base, &on_c) == 200);
}

//! The client registry end to end: clients created with the CLI and managed
//! through the admin API of a running gateway; secrets added, revoked and
//! rotated with a grace period, as the token endpoint sees them.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{http, provider, sha256, sha256_str, start};

const TENANT: &str = "77777777-7777-4777-8777-777777777777";
const ADMIN: &str = "admin-token-for-tests-0123456789abcdef";

fn cli(data_dir: &str, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["client", "--data-dir", data_dir])
        .args(args)
        .env("FHIRGATE_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "client {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn token_status(base: &str, client_id: &str, secret: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{base}/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", secret),
            ("scope", TENANT),
        ])
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

fn works(base: &str, client_id: &str, secret: &str) -> bool {
    match token_status(base, client_id, secret) {
        (200, _) => true,
        (401, body) => {
            assert_eq!(body["error"], "invalid_client");
            false
        }
        (status, body) => panic!("unexpected {status}: {body}"),
    }
}

/// A gateway with a data directory (`dir/data`), the admin API, RS256 keys,
/// and the demo provider behind one tenant.
struct Gateway {
    _provider: support::Running,
    _running: support::Running,
    base: String,
}

impl Gateway {
    fn start(dir: &std::path::Path) -> Gateway {
        let (provider, base_url) = provider();
        let module = |name: &str| {
            let p = support::guest(name);
            format!("path = {:?}\nsha256 = {:?}\n", p.display().to_string(), sha256(&p))
        };
        let policy = format!(
            "schema_version = 1\npartner = \"t\"\n[modules.token-validation]\n{}[modules.routing]\n{}\
         [modules.routing.config.tenants]\n{TENANT:?} = \"p\"\n[modules.shaping]\n{}\
         [providers.p]\nbase_url = {base_url:?}\nfhir_version = \"r4\"\n[tenants.{TENANT:?}]\nproviders = [\"p\"]\n",
            module("fhirgate_token_jwt"),
            module("fhirgate_router_table"),
            module("fhirgate_shaper_fhir"),
        );
        std::fs::write(dir.join("policy.toml"), policy).unwrap();
        let config = format!(
            "schema_version = 1\npolicy = \"policy.toml\"\naccepted_hosts = [\"127.0.0.1\"]\ndata_dir = \"data\"\n[token]\nalgorithm = \"RS256\"\n\
         [admin]\ntoken_sha256 = {:?}\n",
            sha256_str(ADMIN)
        );
        let config_path = dir.join("gateway.toml");
        std::fs::write(&config_path, config).unwrap();
        let running = start(&["serve", "--json", "--listen", "127.0.0.1:0", "--config", config_path.to_str().unwrap()]);
        let base = format!("http://{}", running.get("address"));
        Gateway { _provider: provider, _running: running, base }
    }
}

#[test]
fn secrets_are_added_revoked_and_rotated_with_grace() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_str = data.to_str().unwrap();

    // Create with the CLI: the secret is shown once, never again.
    let created = cli(data_str, &["create", "--name", "Care-team app", "--tenant", TENANT]);
    let client_id = created["client"]["client_id"].as_str().unwrap().to_owned();
    let first = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(first.len(), 43, "256-bit secret, base64url");
    let listed = cli(data_str, &["list"]).to_string();
    assert!(listed.contains(&client_id) && !listed.contains(&first));

    let gw = Gateway::start(dir.path());
    let base = gw.base.clone();
    let admin = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut req = http().request(method, format!("{base}/admin/{path}")).bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        (status, resp.json::<Value>().unwrap())
    };

    // The created client gets a token (RS256, as configured) that works on a FHIR face.
    let (status, body) = token_status(&base, &client_id, &first);
    assert_eq!(status, 200, "{body}");
    let old_token = body["access_token"].as_str().unwrap().to_owned();
    let header = |t: &str| -> Value {
        use base64::Engine as _;
        let part = t.split('.').next().unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(header(&old_token)["alg"], "RS256");
    let resp = http()
        .get(format!("{base}/stu3/Patient/pat-001"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Add a second secret: both work.
    let (status, added) = admin(reqwest::Method::POST, &format!("clients/{client_id}/secrets"), None);
    assert_eq!(status, 201, "{added}");
    let second = added["client_secret"].as_str().unwrap().to_owned();
    assert!(works(&base, &client_id, &first) && works(&base, &client_id, &second));

    // Revoke the first: it stops at once, the second goes on.
    let (_, shown) = admin(reqwest::Method::GET, &format!("clients/{client_id}"), None);
    assert!(!shown.to_string().contains(&second), "a secret was shown again");
    let second_id = added["secret"]["secret_id"].as_str().unwrap();
    let first_id = shown["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["secret_id"].as_str().unwrap())
        .find(|id| *id != second_id)
        .unwrap()
        .to_owned();
    let (status, _) = admin(reqwest::Method::DELETE, &format!("clients/{client_id}/secrets/{first_id}"), None);
    assert_eq!(status, 200);
    assert!(!works(&base, &client_id, &first));
    assert!(works(&base, &client_id, &second));

    // Rotate with a short grace: the old secret works until the grace end,
    // then stops; the new one works throughout.
    let (status, rotated) =
        admin(reqwest::Method::POST, &format!("clients/{client_id}/rotate"), Some(json!({ "grace_seconds": 2 })));
    assert_eq!(status, 201, "{rotated}");
    let third = rotated["client_secret"].as_str().unwrap().to_owned();
    let grace_end =
        fhirgate_core::clock::parse_instant_ms(rotated["previous_secrets_stop_at"].as_str().unwrap()).unwrap() / 1000;
    assert!(works(&base, &client_id, &second), "the old secret works during the grace period");
    assert!(works(&base, &client_id, &third));
    let deadline = Instant::now() + Duration::from_secs(10);
    while works(&base, &client_id, &second) {
        assert!(Instant::now() < deadline, "the old secret still works long after its grace end");
        std::thread::sleep(Duration::from_millis(200));
    }
    let now = fhirgate_core::clock::now_seconds() as i64;
    assert!(now >= grace_end, "the old secret stopped before its grace end");
    assert!(works(&base, &client_id, &third));

    // Disable, enable, delete. Disabling ends the client's tokens at once;
    // enabling brings back those not expired.
    let read = |token: &str| http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(token).send().unwrap();
    assert_eq!(read(&old_token).status(), 200);
    assert_eq!(admin(reqwest::Method::POST, &format!("clients/{client_id}/disable"), None).0, 200);
    assert!(!works(&base, &client_id, &third));
    assert_eq!(read(&old_token).status(), 401, "a disabled client's token is refused at once");
    assert_eq!(admin(reqwest::Method::POST, &format!("clients/{client_id}/enable"), None).0, 200);
    assert!(works(&base, &client_id, &third));
    assert_eq!(read(&old_token).status(), 200);

    // Create through the API too.
    let (status, made) =
        admin(reqwest::Method::POST, "clients", Some(json!({ "name": "Second app", "tenants": [TENANT] })));
    assert_eq!(status, 201, "{made}");
    let other_id = made["client"]["client_id"].as_str().unwrap().to_owned();
    assert!(works(&base, &other_id, made["client_secret"].as_str().unwrap()));
    let (status, bad) = admin(reqwest::Method::POST, "clients", Some(json!({ "name": "x", "tenants": ["nope"] })));
    assert_eq!(status, 400, "{bad}");

    assert_eq!(admin(reqwest::Method::DELETE, &format!("clients/{client_id}"), None).0, 200);
    assert!(!works(&base, &client_id, &third));
    assert_eq!(admin(reqwest::Method::GET, &format!("clients/{client_id}"), None).0, 404);
    // Its tokens, still unexpired, end with it.
    let resp = http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(&old_token).send().unwrap();
    assert_eq!(resp.status(), 401, "a deleted client's token is refused");
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));

    // The admin API needs its own credential; a client's token is not it.
    let resp = http().get(format!("{base}/admin/clients")).send().unwrap();
    assert_eq!(resp.status(), 401);
    let (_, body) = token_status(&base, &other_id, made["client_secret"].as_str().unwrap());
    let before_rotation = body["access_token"].as_str().unwrap().to_owned();
    let resp = http().get(format!("{base}/admin/clients")).bearer_auth(&before_rotation).send().unwrap();
    assert_eq!(resp.status(), 401);

    // Key rotation: new tokens carry the new kid, tokens signed by the
    // retired key keep working (it stays published), and both are in the JWK Set.
    let (status, rotated) = admin(reqwest::Method::POST, "keys/rotate", None);
    assert_eq!(status, 201, "{rotated}");
    let new_kid = rotated["kid"].as_str().unwrap().to_owned();
    let jwks: Value = http().get(format!("{base}/.well-known/jwks.json")).send().unwrap().json().unwrap();
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&new_kid.as_str()) && kids.contains(&header(&before_rotation)["kid"].as_str().unwrap()));
    let resp = http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(&before_rotation).send().unwrap();
    assert_eq!(resp.status(), 200, "a token of the retired key still works until it expires");
    let (_, fresh) = token_status(&base, &other_id, made["client_secret"].as_str().unwrap());
    let fresh_token = fresh["access_token"].as_str().unwrap();
    assert_eq!(header(fresh_token)["kid"], new_kid);
    let resp = http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(fresh_token).send().unwrap();
    assert_eq!(resp.status(), 200);

    // The admin may introspect any token.
    let resp = http()
        .post(format!("{base}/admin/introspect"))
        .bearer_auth(ADMIN)
        .form(&[("token", fresh_token)])
        .send()
        .unwrap();
    let info: Value = resp.json().unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["client_id"], other_id);

    // Every change is audited, and no secret is in the trail.
    let (status, audit) = admin(reqwest::Method::GET, "audit?limit=100", None);
    assert_eq!(status, 200);
    let actions: Vec<&str> =
        audit["events"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    for a in [
        "client.create",
        "secret.add",
        "secret.revoke",
        "secret.rotate",
        "client.disable",
        "client.enable",
        "client.delete",
    ] {
        assert!(actions.contains(&a), "{a} not audited: {actions:?}");
    }
    let trail = audit.to_string();
    for s in [&first, &second, &third] {
        assert!(!trail.contains(s.as_str()));
    }
}

/// An RSA key pair for a backend-services client: the PEM to sign with and
/// the public JWK Set to register.
fn client_key(kid: &str) -> (String, Value) {
    use base64::Engine as _;
    use rsa::pkcs8::EncodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;
    let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let pem = key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap().to_string();
    let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let jwks = json!({ "keys": [{
        "kty": "RSA", "kid": kid, "alg": "RS384", "use": "sig",
        "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be()),
    }]});
    (pem, jwks)
}

fn assertion(pem: &str, kid: &str, alg: jsonwebtoken::Algorithm, claims: &Value) -> String {
    let header = jsonwebtoken::Header { kid: Some(kid.into()), ..jsonwebtoken::Header::new(alg) };
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()).unwrap()
}

#[test]
fn backend_services_clients_authenticate_with_signed_assertions() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = cli(data.to_str().unwrap(), &["create", "--name", "Backend app", "--tenant", TENANT]);
    let client_id = created["client"]["client_id"].as_str().unwrap().to_owned();
    let gw = Gateway::start(dir.path());
    let token_url = format!("{}/oauth2/token", gw.base);

    let (pem, jwks) = client_key("k1");
    let resp = http()
        .put(format!("{}/admin/clients/{client_id}/jwks", gw.base))
        .bearer_auth(ADMIN)
        .json(&jwks)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // Private key material is refused.
    let mut leaked = jwks.clone();
    leaked["keys"][0]["d"] = json!("AQAB");
    let resp = http()
        .put(format!("{}/admin/clients/{client_id}/jwks", gw.base))
        .bearer_auth(ADMIN)
        .json(&leaked)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    let now = fhirgate_core::clock::now_seconds();
    let claims = |jti: &str| json!({ "iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 240, "iat": now, "jti": jti });
    let request = |jwt: &str| {
        let resp = http()
            .post(&token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", &format!("system/*.read {TENANT}")),
                ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                ("client_assertion", jwt),
            ])
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.json::<Value>().unwrap())
    };

    let good = assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &claims("a-1"));
    let (status, body) = request(&good);
    assert_eq!(status, 200, "{body}");
    let resp = http()
        .get(format!("{}/stu3/Patient/pat-001", gw.base))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Each refused with invalid_client.
    let (other_pem, _) = client_key("k1");
    let mut too_long = claims("a-3");
    too_long["exp"] = json!(now + 900);
    let mut wrong_aud = claims("a-4");
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let mut wrong_sub = claims("a-5");
    wrong_sub["sub"] = json!("someone-else");
    let mut expired = claims("a-6");
    expired["exp"] = json!(now - 120);
    let mut no_jti = claims("x");
    no_jti.as_object_mut().unwrap().remove("jti");
    let cases = [
        ("replayed jti", good.clone()),
        ("signed by another key", assertion(&other_pem, "k1", jsonwebtoken::Algorithm::RS384, &claims("a-2"))),
        ("exp more than five minutes ahead", assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &too_long)),
        ("wrong audience", assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &wrong_aud)),
        ("sub differs from iss", assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &wrong_sub)),
        ("expired", assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &expired)),
        ("no jti", assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &no_jti)),
        ("unknown kid", assertion(&pem, "k9", jsonwebtoken::Algorithm::RS384, &claims("a-7"))),
        (
            "HS256 keyed with the public JWK",
            jsonwebtoken::encode(
                &jsonwebtoken::Header {
                    kid: Some("k1".into()),
                    ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256)
                },
                &claims("a-8"),
                &jsonwebtoken::EncodingKey::from_secret(jwks["keys"][0].to_string().as_bytes()),
            )
            .unwrap(),
        ),
    ];
    for (what, jwt) in cases {
        let (status, body) = request(&jwt);
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(body["error"], "invalid_client", "{what}");
    }

    // An assertion together with a secret is refused as ambiguous.
    let resp = http()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &claims("a-9"))),
            ("client_secret", "x"),
        ])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);

    // A fresh jti works again.
    let (status, _) = request(&assertion(&pem, "k1", jsonwebtoken::Algorithm::RS384, &claims("a-10")));
    assert_eq!(status, 200);
}

#[test]
fn revocations_by_the_admin_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let created = cli(data.to_str().unwrap(), &["create", "--name", "App", "--tenant", TENANT]);
    let (client_id, secret) = (
        created["client"]["client_id"].as_str().unwrap().to_owned(),
        created["client_secret"].as_str().unwrap().to_owned(),
    );
    let gw = Gateway::start(dir.path());
    let (_, body) = token_status(&gw.base, &client_id, &secret);
    let token = body["access_token"].as_str().unwrap().to_owned();
    let read =
        |base: &str| http().get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(&token).send().unwrap().status();
    assert_eq!(read(&gw.base), 200);

    let resp = http()
        .post(format!("{}/admin/revoke", gw.base))
        .bearer_auth(ADMIN)
        .form(&[("token", token.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.json::<Value>().unwrap()["revoked"], true);
    assert_eq!(read(&gw.base), 401);

    // The same data directory, a new process: the signing key is the same,
    // so only the recorded revocation keeps the token out.
    drop(gw);
    let gw = Gateway::start(dir.path());
    assert_eq!(read(&gw.base), 401);
    let (status, fresh) = token_status(&gw.base, &client_id, &secret);
    assert_eq!(status, 200);
    let resp = http()
        .get(format!("{}/stu3/Patient/pat-001", gw.base))
        .bearer_auth(fresh["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// State is private to the gateway's user: the data directory is created
/// 0700 and every file in it 0600, and the gateway will not start on a data
/// directory or key file others can read, naming the path and the fix.
#[test]
fn state_is_private_and_readable_state_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let gw = support::Setup { data_dir: true, ..Default::default() }.serve();
    let token = http()
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("app", Some(support::SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert!(token.status().is_client_error(), "a refused token request writes the trail too");
    let data = gw.dir.path().join("data");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    let files: Vec<_> = std::fs::read_dir(&data).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(files.iter().any(|f| f.ends_with("fhirgate.sqlite3")) && files.iter().any(|f| f.ends_with("pepper.key")));
    for f in &files {
        assert_eq!(mode(f) & 0o077, 0, "{} is mode {:o}", f.display(), mode(f));
    }
    let config = gw.dir.path().join("gateway.toml");
    drop(gw.running);

    let serve = || support::run_cli(&["serve", "--config", config.to_str().unwrap(), "--listen", "127.0.0.1:0"]);
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (ok, text) = serve();
    assert!(!ok && text.contains(&data.display().to_string()) && text.contains("chmod 700"), "{text}");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let pepper = data.join("pepper.key");
    std::fs::set_permissions(&pepper, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = serve();
    assert!(!ok && text.contains("pepper.key") && text.contains("chmod 600"), "{text}");
}

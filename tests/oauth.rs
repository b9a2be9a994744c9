//! The authorization server from the outside: discovery documents agree with
//! `/metadata` and the tokens; revocation and introspection; throttling; and
//! a battery of forged tokens, each refused with 401 `invalid_token`.

mod support;

use std::io::ErrorKind;
use std::net::TcpListener;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use support::{demo, http, token};

fn claims_of(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn header_of(jwt: &str) -> Value {
    serde_json::from_slice(&B64.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap()
}

#[test]
fn discovery_documents_agree_with_metadata_and_tokens() {
    let demo = demo();
    let gateway = demo.get("gateway");
    let token = token(&demo);

    let as_meta: Value =
        http().get(format!("{gateway}/.well-known/oauth-authorization-server")).send().unwrap().json().unwrap();
    assert_eq!(as_meta["issuer"], claims_of(&token)["iss"]);
    assert_eq!(as_meta["token_endpoint"], demo.get("token_url"));
    assert!(as_meta["grant_types_supported"].as_array().unwrap().contains(&json!("client_credentials")));
    for m in ["client_secret_basic", "client_secret_post"] {
        assert!(as_meta["token_endpoint_auth_methods_supported"].as_array().unwrap().contains(&json!(m)));
    }

    for face in ["stu3", "dstu2"] {
        let smart: Value =
            http().get(format!("{gateway}/{face}/.well-known/smart-configuration")).send().unwrap().json().unwrap();
        assert_eq!(smart["token_endpoint"], demo.get("token_url"));
        let cs: Value = http().get(format!("{gateway}/{face}/metadata")).send().unwrap().json().unwrap();
        let uris = &cs["rest"][0]["security"]["extension"][0]["extension"];
        assert_eq!(uris[0]["valueUri"], smart["token_endpoint"]);
    }

    let jwks: Value = http().get(as_meta["jwks_uri"].as_str().unwrap()).send().unwrap().json().unwrap();
    let kid = header_of(&token)["kid"].clone();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid).expect("signing key published");
    assert_eq!(key["kty"], "EC");
    assert!(key.get("d").is_none(), "private material published");
    let aud = claims_of(&token)["aud"].clone();
    assert!(aud.as_array().unwrap().contains(&json!(demo.get("stu3_base"))));
}

#[test]
fn revoked_tokens_are_refused_and_introspection_tells() {
    let demo = demo();
    let (id, secret) = (demo.get("client_id"), demo.get("client_secret"));
    let gateway = demo.get("gateway");
    let token = token(&demo);
    let read =
        |t: &str| http().get(format!("{}/Patient/pat-001", demo.get("stu3_base"))).bearer_auth(t).send().unwrap();
    assert_eq!(read(&token).status(), 200);

    let introspect = |t: &str| -> Value {
        let resp = http()
            .post(format!("{gateway}/oauth2/introspect"))
            .basic_auth(&id, Some(&secret))
            .form(&[("token", t)])
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        resp.json().unwrap()
    };
    let active = introspect(&token);
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], id);
    assert!(active["scope"].as_str().unwrap().contains(&demo.get("tenant_id")));
    assert_eq!(introspect("garbage")["active"], false);

    // Introspection needs client authentication.
    let resp = http().post(format!("{gateway}/oauth2/introspect")).form(&[("token", token.as_str())]).send().unwrap();
    assert_eq!(resp.status(), 401);

    let resp = http()
        .post(format!("{gateway}/oauth2/revoke"))
        .form(&[("token", token.as_str()), ("client_id", &id), ("client_secret", &secret)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(introspect(&token)["active"], false);
    let resp = read(&token);
    assert_eq!(resp.status(), 401);
    let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.contains("invalid_token") && www.contains("revoked"), "{www}");

    // Revoking an unknown token is answered 200 too (RFC 7009 §2.2).
    let resp = http()
        .post(format!("{gateway}/oauth2/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", "not-a-token")])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    // A fresh token still works.
    assert_eq!(read(&support::token(&demo)).status(), 200);
}

#[test]
fn repeated_failures_are_throttled() {
    let demo = demo();
    let url = demo.get("token_url");
    let (id, secret) = (demo.get("client_id"), demo.get("client_secret"));
    let attempt = |s: &str| {
        http()
            .post(&url)
            .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", s)])
            .send()
            .unwrap()
    };
    for _ in 0..10 {
        assert_eq!(attempt("wrong").status(), 401);
    }
    // Now even the right secret waits.
    let resp = attempt(&secret);
    assert_eq!(resp.status(), 429);
    let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait));
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().unwrap();
    assert!(body["error"].is_string());
}

/// Client ids are public (every token's `sub`): wrong secrets sent from one
/// address must not lock the app out where it runs.
#[test]
fn failures_from_one_address_do_not_lock_the_client_out_elsewhere() {
    let demo = demo();
    let url = demo.get("token_url");
    let (id, secret) = (demo.get("client_id"), demo.get("client_secret"));
    let attempt = |client: &reqwest::blocking::Client, s: &str| {
        client
            .post(&url)
            .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", s)])
            .send()
            .unwrap()
            .status()
    };
    let (attacker, app) = (support::http_from([127, 0, 0, 2]), support::http_from([127, 0, 0, 1]));
    for _ in 0..15 {
        let status = attempt(&attacker, "guess");
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(attempt(&attacker, &secret), 429, "the failing address waits, even with the right secret");
    assert_eq!(attempt(&app, &secret), 200, "the app, from its own address, is served");
}

/// The token endpoint reads little before it knows who is asking: a larger
/// form is refused with 413 and an OAuth error, unread.
#[test]
fn an_oversized_token_request_is_413() {
    let demo = demo();
    let url = demo.get("token_url");
    let padding = "x".repeat(20 * 1024);
    let resp = http()
        .post(&url)
        .form(&[("grant_type", "client_credentials"), ("client_id", "app"), ("client_secret", padding.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let body: Value = resp.json().unwrap();
    assert_eq!(body["error"], "invalid_request");
    assert!(body["error_description"].as_str().unwrap().contains("16384 bytes"), "{body}");
    // A request of honest size is answered as before.
    let (id, secret) = (demo.get("client_id"), demo.get("client_secret"));
    let resp = http()
        .post(&url)
        .form(&[("grant_type", "client_credentials"), ("client_id", id.as_str()), ("client_secret", secret.as_str())])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// A JWT with `header` and `claims` and the given signature part.
fn forge(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", B64.encode(header.to_string()), B64.encode(claims.to_string()))
}

#[test]
fn forged_tokens_are_refused() {
    let demo = demo();
    let stu3 = demo.get("stu3_base");
    let good = token(&demo);
    let (header, claims) = (header_of(&good), claims_of(&good));
    let kid = header["kid"].as_str().unwrap().to_owned();
    let parts: Vec<&str> = good.split('.').collect();

    // A listener that must never see a connection: no key fetch leaves the gateway.
    let trap = TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://{}/jwks.json", trap.local_addr().unwrap());

    let attacker = fhirgate_gateway::oauth::SigningKey::generate().unwrap();
    let jwks: Value =
        http().get(format!("{}/.well-known/jwks.json", demo.get("gateway"))).send().unwrap().json().unwrap();
    let public_jwk = jwks["keys"][0].to_string();

    let mut forged: Vec<(&str, String)> = Vec::new();
    for none in ["none", "None", "NONE", "nOnE"] {
        forged.push(("alg none", forge(&json!({"alg": none, "kid": kid, "typ": "JWT"}), &claims, "")));
    }
    forged.push(("signature stripped", format!("{}.{}.", parts[0], parts[1])));
    forged.push((
        "signature from another token",
        format!("{}.{}.{}", parts[0], B64.encode(json!({"sub": "x"}).to_string()), parts[2]),
    ));
    let mut altered_claims = claims.clone();
    altered_claims["scope"] = json!("00000000-0000-4000-8000-000000000000");
    forged.push(("claims altered", format!("{}.{}.{}", parts[0], B64.encode(altered_claims.to_string()), parts[2])));
    let mut sig = B64.decode(parts[2]).unwrap();
    sig[10] ^= 0x01;
    forged.push(("signature altered", format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig))));

    // HS256 keyed with the published public key (key confusion).
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header { kid: Some(kid.clone()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) },
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_jwk.as_bytes()),
    )
    .unwrap();
    forged.push(("HS256 with the public key", hs));

    // Signed by an attacker, pointing at the attacker's key in every way a
    // header can: embedded jwk, jku, x5u, and kids that are not ours.
    let sign_with = |extra: Value| {
        let mut h = json!({"alg": "ES256", "typ": "JWT", "kid": attacker.kid()});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        let unsigned = format!("{}.{}", B64.encode(h.to_string()), B64.encode(claims.to_string()));
        // Sign the exact header we built, with the attacker's key.
        let whole = attacker.sign_raw(unsigned.as_bytes()).unwrap();
        format!("{unsigned}.{whole}")
    };
    forged.push(("embedded jwk", sign_with(json!({"jwk": attacker.jwks()["keys"][0]}))));
    forged.push(("jku", sign_with(json!({"jku": trap_url}))));
    forged.push(("x5u", sign_with(json!({"x5u": trap_url}))));
    forged.push(("our kid, attacker's signature", sign_with(json!({"kid": kid}))));
    forged.push(("kid traversal", sign_with(json!({"kid": "../../../../etc/passwd"}))));
    forged.push(("kid injection", sign_with(json!({"kid": "x' OR '1'='1"}))));
    forged.push(("unknown kid", sign_with(json!({"kid": "no-such-key"}))));

    for (what, token) in &forged {
        let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(token).send().unwrap();
        assert_eq!(resp.status(), 401, "{what} was not refused");
        let www = resp.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(www.contains("error=\"invalid_token\""), "{what}: {www}");
    }
    match trap.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the gateway fetched a key from a token header: {other:?}"),
    }

    // Oversized tokens are refused without being parsed.
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]);
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&huge).send().unwrap();
    assert_eq!(resp.status(), 401);

    // The genuine token still works.
    let resp = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&good).send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn independent_oauth_and_jwt_libraries_interoperate() {
    let demo = demo();
    let gateway = demo.get("gateway");
    let issuer = claims_of(&token(&demo))["iss"].as_str().unwrap().to_owned();
    let out = std::process::Command::new(support::python())
        .arg(support::repo_root().join("tests/python/oauth_interop.py"))
        .args([
            demo.get("token_url"),
            format!("{gateway}/.well-known/jwks.json"),
            demo.get("client_id"),
            demo.get("client_secret"),
            demo.get("tenant_id"),
            issuer,
            demo.get("stu3_base"),
            format!("{}/Patient/pat-001", demo.get("stu3_base")),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    let results: Value = serde_json::from_str(stdout.trim()).unwrap();
    for method in ["client_secret_basic", "client_secret_post"] {
        assert_eq!(results[method]["fhir_status"], 200, "{results}");
    }
    assert_eq!(results["wrong_secret"], "invalid_client");
}

#[test]
fn logs_never_carry_secrets_tokens_or_patient_data() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // Debug everywhere (HTTP stack included), except the code generator's
    // compile-time chatter, which is about modules, not requests.
    let level = "debug,cranelift_codegen=info,cranelift_frontend=info,wasmtime_internal_cranelift=info,regalloc2=info,wasmtime=info";
    let demo = support::start_with(&["demo", "--json", "--listen", "127.0.0.1:0"], level, log.into());
    let (id, secret) = (demo.get("client_id"), demo.get("client_secret"));
    let stu3 = demo.get("stu3_base");

    let good = token(&demo);
    let mut forged = good.clone();
    forged.replace_range(forged.len() - 8.., "AAAAAAAA");
    let _ = http()
        .post(demo.get("token_url"))
        .basic_auth(&id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send();
    let _ = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&good).send();
    let _ = http()
        .post(format!("{stu3}/Patient/_search"))
        .bearer_auth(&good)
        .form(&[("family", "Chau"), ("given", "Hugh")])
        .send();
    let _ = http().get(format!("{stu3}/Patient/pat-001")).bearer_auth(&forged).send();
    let _ = http().get(format!("{stu3}/Patient/pat-001?access_token={good}")).send();
    let _ = http()
        .post(format!("{}/oauth2/revoke", demo.get("gateway")))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", good.as_str())])
        .send();
    drop(demo);

    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(text.contains("fhirgate::audit"), "the run logged no audit lines; the scan would prove nothing");
    let signature = good.rsplit('.').next().unwrap();
    for (what, needle) in [
        ("client secret", secret.as_str()),
        ("wrong secret", "not-the-secret"),
        ("access token", good.as_str()),
        ("token signature", signature),
        ("forged token", forged.as_str()),
        ("patient family name", "Chau"),
        ("patient given name", "Hugh"),
        ("MRN", "MRN100001"),
        ("birth date", "1970-01-01"),
    ] {
        assert!(!text.contains(needle), "the log holds a {what}");
    }
    assert!(!text.to_ascii_lowercase().contains("authorization: bearer"), "the log holds an Authorization header");
}

#[test]
fn a_host_the_gateway_does_not_answer_for_gets_421_and_shapes_no_url() {
    use reqwest::header::HOST;
    // Without public_url: the accepted hosts (127.0.0.1, any port) only.
    let gw = support::Setup::default().serve();
    let port = gw.base.rsplit(':').next().unwrap().to_owned();
    for path in ["/stu3/metadata", "/dstu2/.well-known/smart-configuration", "/.well-known/oauth-authorization-server"]
    {
        let url = format!("{}{path}", gw.base);
        let resp = http().get(&url).header(HOST, "evil.example").send().unwrap();
        assert_eq!(resp.status(), 421, "{path}");
        assert!(!resp.text().unwrap().contains("evil.example"), "{path}");
        let ok: Value = http().get(&url).header(HOST, format!("127.0.0.1:{port}")).send().unwrap().json().unwrap();
        assert!(ok.to_string().contains(&format!("http://127.0.0.1:{port}/")), "{path}: {ok}");
    }
    let face = http().get(format!("{}/stu3/Patient", gw.base)).header(HOST, "evil.example").send().unwrap();
    assert_eq!(face.status(), 421);
    assert_eq!(face.json::<Value>().unwrap()["resourceType"], "OperationOutcome");
    let token = http()
        .post(format!("{}/oauth2/token", gw.base))
        .header(HOST, "evil.example")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .unwrap();
    assert_eq!(token.status(), 421);
    // Probes and scrapers use the address: health answers any host.
    assert_eq!(http().get(format!("{}/healthz", gw.base)).header(HOST, "10.1.2.3").send().unwrap().status(), 200);

    // With public_url, every URL is built on it and only its host answered.
    let gw = support::Setup { extra_config: "public_url = \"https://gw.example\"\n", ..Default::default() }.serve();
    let url = format!("{}/stu3/metadata", gw.base);
    let meta: Value = http().get(&url).header(HOST, "gw.example").send().unwrap().json().unwrap();
    assert!(meta.to_string().contains("https://gw.example/oauth2/token"), "{meta}");
    assert_eq!(http().get(&url).send().unwrap().status(), 421, "the listening address is not the public host");
}

/// Behind a trusted proxy, the client is the address the proxy forwarded
/// for: failures of one client behind it do not throttle another. From
/// anywhere else the forwarding headers are ignored.
#[test]
fn a_trusted_proxy_names_the_client_and_others_cannot() {
    const TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
    let gw = support::Setup {
        client_tenants: &[TENANT],
        extra_config: "trusted_proxies = [\"127.0.0.1\"]\n",
        ..Default::default()
    }
    .serve();
    let url = format!("{}/oauth2/token", gw.base);
    let attempt = |client: &reqwest::blocking::Client, forwarded_for: &str, secret: &str| {
        client
            .post(&url)
            .header("x-forwarded-for", forwarded_for)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "app"),
                ("client_secret", secret),
                ("scope", TENANT),
            ])
            .send()
            .unwrap()
            .status()
    };
    let (proxy, direct) = (support::http_from([127, 0, 0, 1]), support::http_from([127, 0, 0, 2]));
    for _ in 0..12 {
        let status = attempt(&proxy, "203.0.113.7", "guess");
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(attempt(&proxy, "203.0.113.7", support::SECRET), 429, "the failing client waits");
    assert_eq!(attempt(&proxy, "203.0.113.8", support::SECRET), 200, "another client behind the proxy is served");
    // Not a trusted proxy: a new X-Forwarded-For each time changes nothing.
    for i in 0..12 {
        let status = attempt(&direct, &format!("198.51.100.{i}"), "guess");
        assert!(status == 401 || status == 429, "{status}");
    }
    assert_eq!(attempt(&direct, "198.51.100.99", support::SECRET), 429, "spoofed headers do not evade the throttle");
}

/// Guessing the admin token is throttled per address, like client secrets.
#[test]
fn failed_admin_authentications_are_throttled_per_address() {
    const ADMIN: &str = "admin-token-0123456789-abcdefghijklmnopqrstuv";
    let gw = support::Setup { data_dir: true, admin_token: Some(ADMIN), ..Default::default() }.serve();
    let url = format!("{}/admin/clients", gw.base);
    let (attacker, operator) = (support::http_from([127, 0, 0, 2]), support::http_from([127, 0, 0, 1]));
    let mut statuses = Vec::new();
    for i in 0..35 {
        statuses.push(attacker.get(&url).bearer_auth(format!("guess-{i}")).send().unwrap().status().as_u16());
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    let refused = attacker.get(&url).bearer_auth(ADMIN).send().unwrap();
    assert_eq!(refused.status(), 429, "the guessing address waits, even with the right token");
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(operator.get(&url).bearer_auth(ADMIN).send().unwrap().status(), 200, "the operator is served");
}

/// A token signed with the gateway's own key for a client that was never
/// registered (what a stolen key makes) is refused: tokens are honoured
/// only for clients that exist and are enabled.
#[test]
fn a_token_signed_for_a_client_never_registered_is_refused() {
    const TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
    let (_provider, base) = support::provider();
    let gw = support::Setup {
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT],
        extra_config: "[token]\nsigning_key_file = \"signing-key.pem\"\n",
        ..Default::default()
    }
    .serve();
    let token = gw.token(TENANT);
    let read = |t: &str| http().get(format!("{}/stu3/Patient/pat-001", gw.base)).bearer_auth(t).send().unwrap();
    assert_eq!(read(&token).status(), 200);

    let pem = std::fs::read(gw.dir.path().join("signing-key.pem")).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = header_of(&token)["kid"].as_str().map(str::to_owned);
    let mut claims = claims_of(&token);
    claims["sub"] = json!("ghost");
    claims["client_id"] = json!("ghost");
    claims["jti"] = json!("forged-1");
    let forged = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let resp = read(&forged);
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
}

//! Running the gateway as an operator does. Probes for an orchestrator:
//! `/livez` says the process answers, `/readyz` whether it should get
//! traffic (store answering, directory current, not stopping). On SIGTERM the
//! gateway reports not-ready at once while it still serves, for
//! `shutdown_delay_seconds`, then stops accepting, drains and exits. Logs as
//! JSON lines for a collector, each line of a request naming it. Metrics of
//! requests by route and status, exchanges with providers, breakers, and
//! the directory's and store's freshness. And from only the binary, in an
//! empty directory: `fhirgate init`, `fhirgate serve`, a token and a read.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Setup, cli_json, http, provider};

#[test]
fn sigterm_turns_the_gateway_not_ready_before_it_stops_serving() {
    let gw =
        Setup { data_dir: true, extra_config: "shutdown_delay_seconds = 3\n", ..Default::default() }.serve_binary();
    let get = |path: &str| {
        let resp = http().get(format!("{}{path}", gw.base)).send();
        resp.map(|r| (r.status().as_u16(), r.json::<Value>().unwrap_or(Value::Null)))
    };
    assert_eq!(get("/livez").unwrap().0, 200);
    let (status, ready) = get("/readyz").unwrap();
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["store"], "ok");
    assert!(ready["checks"]["directory_lag_ms"].as_u64().unwrap() <= 10_000, "{ready}");

    // Times are given to the CLI as people write them.
    assert_eq!(get("/stu3/Patient/pat-001").unwrap().0, 401);
    let data = gw.dir.path().join("data");
    let data = data.to_str().unwrap();
    let records = |since: &str| {
        let out = cli_json(&["access", "--data-dir", data, "--since", since]);
        out["records"].as_array().unwrap().len()
    };
    assert!(records("2000-01-01T00:00:00Z") >= 1);
    assert!(records("2000-01-01") >= 1);
    assert_eq!(records("2999-01-01T00:00:00+01:00"), 0);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_fhirgate"))
        .args(["access", "--data-dir", data, "--since", "yesterday"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("RFC 3339"), "the error says what to write");

    let pid = gw.running.pid().to_string();
    let sent = Instant::now();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Not ready at once; still serving (probes and FHIR alike).
    std::thread::sleep(Duration::from_millis(300));
    let (status, stopping) = get("/readyz").expect("still accepting during the delay");
    assert_eq!(status, 503, "{stopping}");
    assert_eq!(stopping["status"], "not-ready");
    assert_eq!(stopping["checks"]["stopping"], true);
    assert_eq!(get("/livez").unwrap().0, 200);
    assert_eq!(get("/stu3/metadata").unwrap().0, 200, "requests are still served during the delay");
    assert!(sent.elapsed() < Duration::from_secs(3), "the checks above ran within the delay");

    // After the delay the listener closes and the process exits cleanly.
    let deadline = Instant::now() + Duration::from_secs(20);
    while get("/livez").is_ok() {
        assert!(Instant::now() < deadline, "the gateway kept accepting after the delay");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(sent.elapsed() >= Duration::from_secs(3), "it accepted for the whole delay");
}

#[test]
fn json_logs_are_one_object_per_line_naming_the_request() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let stderr = std::process::Stdio::from(log.reopen().unwrap());
    let gw = Setup::default().serve_binary_logging(&["--log-format", "json"], "info", stderr);
    let resp = http()
        .get(format!("{}/stu3/Patient/pat-001", gw.base))
        .bearer_auth("not-a-token-but-secret-looking")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    // The access line is written when the request ends; give the log a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(log.path()).unwrap();
        if text.contains(&request_id) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(gw);
    assert!(!text.contains('\u{1b}'), "no colour codes in a file: {text}");
    assert!(!text.contains("not-a-token-but-secret-looking"), "no credential in the log");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON object ({e}): {l}")))
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let at = line["timestamp"].as_str().unwrap_or_else(|| panic!("no timestamp: {line}"));
        assert!(
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).is_ok(),
            "not RFC 3339: {at}"
        );
        assert!(line["level"].is_string(), "{line}");
    }
    let of_request: Vec<&Value> = lines.iter().filter(|l| l["span"]["request_id"] == request_id.as_str()).collect();
    assert!(
        of_request.iter().any(|l| l["fields"]["message"] == "access"),
        "the request's access line carries its id in its span: {text}"
    );
}

const TENANT: &str = "0f0f0f0f-0000-4000-8000-00000000000f";
const DOWN_TENANT: &str = "0f0f0f0f-0000-4000-8000-0000000000d0";

#[test]
fn metrics_count_requests_exchanges_and_breakers() {
    let (_provider, base) = provider();
    // A second provider nobody listens for: its exchanges fail to connect.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/fhir", closed.local_addr().unwrap());
    drop(closed);
    let gw = Setup {
        routes: &[(TENANT, "up"), (DOWN_TENANT, "down")],
        tenants: &[(TENANT, "up"), (DOWN_TENANT, "down")],
        providers: &[("up", &base), ("down", &down)],
        client_tenants: &[TENANT, DOWN_TENANT],
        ..Default::default()
    }
    .serve();
    let read = |tenant: &str| {
        http()
            .get(format!("{}/stu3/Patient/pat-001", gw.base))
            .bearer_auth(gw.token(tenant))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(read(TENANT), 200);
    assert_eq!(read(TENANT), 200);
    assert_eq!(read(DOWN_TENANT), 502);
    assert_eq!(http().get(format!("{}/stu3/Patient/pat-001", gw.base)).send().unwrap().status(), 401);

    let text = support::metrics(&gw.base);
    let value = |series: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in:\n{text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(value(r#"fhirgate_http_requests_total{route="fhir",face="stu3",status="200"}"#), 2.0);
    assert_eq!(value(r#"fhirgate_http_requests_total{route="fhir",face="stu3",status="502"}"#), 1.0);
    assert_eq!(value(r#"fhirgate_http_requests_total{route="fhir",face="stu3",status="401"}"#), 1.0);
    assert_eq!(value(r#"fhirgate_http_requests_total{route="oauth",face="-",status="200"}"#), 3.0, "tokens");
    assert_eq!(value(r#"fhirgate_http_request_duration_seconds_count{route="fhir",face="stu3"}"#), 4.0);
    assert_eq!(value(r#"fhirgate_upstream_requests_total{provider="up",outcome="2xx-3xx"}"#), 2.0);
    assert_eq!(value(r#"fhirgate_upstream_requests_total{provider="down",outcome="connect"}"#), 1.0);
    assert_eq!(value(r#"fhirgate_upstream_duration_seconds_count{provider="up"}"#), 2.0);
    assert_eq!(value(r#"fhirgate_provider_breaker{provider="up",state="closed"}"#), 1.0);
    assert_eq!(value(r#"fhirgate_provider_breaker{provider="up",state="open"}"#), 0.0);
    assert!(value("fhirgate_directory_lag_milliseconds") < 10_000.0);
    assert!(value("fhirgate_store_answer_microseconds") >= 0.0, "the store answered");
    assert!(!text.contains("pat-001") && !text.contains(TENANT), "no patient or tenant in the figures");

    // The token endpoint's outcomes: three tokens issued, then a refusal.
    let resp = http()
        .post(format!("{}/oauth2/token", gw.base))
        .basic_auth("app", Some("wrong"))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 401);
    let text = support::metrics(&gw.base);
    assert!(text.contains(r#"fhirgate_oauth_requests_total{endpoint="token",outcome="ok"} 3"#), "{text}");
    assert!(text.contains(r#"fhirgate_oauth_requests_total{endpoint="token",outcome="invalid_client"} 1"#), "{text}");

    // Only for the scraper: no token or another is refused, and a gateway
    // without [metrics] serves none.
    let resp = http().get(format!("{}/metrics", gw.base)).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], r#"Bearer realm="metrics""#);
    let resp = http().get(format!("{}/metrics", gw.base)).bearer_auth(support::SECRET).send().unwrap();
    assert_eq!(resp.status(), 401);
    assert!(!resp.text().unwrap().contains("fhirgate_"));
    let (dir, config) = (tempfile::tempdir().unwrap(), "gateway.toml");
    let policy = support::repo_root().join("policies/demo/policy.toml");
    std::fs::write(
        dir.path().join(config),
        format!("schema_version = 1\npolicy = {:?}\naccepted_hosts = [\"127.0.0.1\"]\n", policy.display().to_string()),
    )
    .unwrap();
    let plain = support::serve_config(&dir.path().join(config));
    let resp = http().get(format!("http://{}/metrics", plain.get("address"))).send().unwrap();
    assert_eq!(resp.status(), 404);
}

/// A process of the copied binary, killed when dropped.
struct Spawned(std::process::Child);

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `bin args` in `dir` and reads the JSON line it prints when ready.
fn spawn_ready(bin: &std::path::Path, dir: &std::path::Path, args: &[&str]) -> (Spawned, Value) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(bin)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("FHIRGATE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ready = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{args:?} printed {line:?}: {e}"));
    (Spawned(child), ready)
}

#[test]
fn from_only_the_binary_init_then_serve_then_a_token_and_a_patient_read() {
    // The binary alone, copied out of the source tree, in an empty directory.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("fhirgate");
    std::fs::copy(env!("CARGO_BIN_EXE_fhirgate"), &bin).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let (_hospital, facts) = spawn_ready(&bin, &work, &["provider", "--json", "--listen", "127.0.0.1:0"]);
    let provider_url = facts["base_url"].as_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");

    let init = |args: &[&str]| {
        std::process::Command::new(&bin)
            .arg("init")
            .arg(".")
            .args(args)
            .current_dir(&work)
            .env_clear()
            .output()
            .unwrap()
    };
    let out = init(&["--provider-url", provider_url, "--listen", &listen]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let made: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Never twice over the same files.
    let again = init(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    let (_gateway, ready) = spawn_ready(&bin, &work, &["serve", "--json", "--config", "gateway.toml"]);
    assert_eq!(ready["address"], listen.as_str());
    let base = made["public_url"].as_str().unwrap();
    let tenant = made["tenant_id"].as_str().unwrap();
    let resp = http()
        .post(made["token_url"].as_str().unwrap())
        .basic_auth(made["client_id"].as_str().unwrap(), made["client_secret"].as_str())
        .form(&[("grant_type", "client_credentials"), ("scope", tenant)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token: Value = resp.json().unwrap();
    let resp = http()
        .get(format!("{base}/stu3/Patient/pat-001"))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let patient: Value = resp.json().unwrap();
    assert_eq!((patient["resourceType"].as_str(), patient["id"].as_str()), (Some("Patient"), Some("pat-001")));
    // It kept its state beside its configuration, private.
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(work.join("data")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the data directory is private");
}

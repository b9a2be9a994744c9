//! Probes for an orchestrator: `/livez` says the process answers, `/readyz`
//! whether it should get traffic (store answering, directory current, not
//! stopping). On SIGTERM the gateway reports not-ready at once while it
//! still serves, for `shutdown_delay_seconds`, then stops accepting, drains
//! and exits cleanly.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{Setup, http};

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

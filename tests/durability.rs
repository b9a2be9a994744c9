//! What a crash cannot take: the gateway is killed (`SIGKILL`) under a
//! multi-connection read load, again and again, and every request it had
//! answered `200`, and every token it had issued, is in the trail after.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::{Setup, cli_json, provider, start};

const TENANT: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const ROUNDS: usize = 5;
const CONNECTIONS: usize = 8;

fn token(base: &str) -> String {
    let resp = support::http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth("app", Some(support::SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json::<Value>().unwrap()["access_token"].as_str().unwrap().to_owned()
}

fn jti_of(token: &str) -> String {
    use base64::Engine as _;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
    serde_json::from_slice::<Value>(&claims).unwrap()["jti"].as_str().unwrap().to_owned()
}

#[test]
fn every_answered_request_and_issued_token_survives_kill_9() {
    let (_provider, base) = provider();
    let gw = Setup {
        routes: &[(TENANT, "p")],
        tenants: &[(TENANT, "p")],
        providers: &[("p", &base)],
        client_tenants: &[TENANT],
        data_dir: true,
        ..Default::default()
    }
    .serve_binary();
    let config = gw.dir.path().join("gateway.toml").display().to_string();
    let data = gw.dir.path().join("data").display().to_string();
    drop(gw.running);

    let mut answered = HashSet::new();
    let mut issued = HashSet::new();
    for round in 0..ROUNDS {
        let running = start(&["serve", "--json", "--listen", "127.0.0.1:0", "--config", &config]);
        let base = format!("http://{}", running.get("address"));
        let token = token(&base);
        issued.insert(jti_of(&token));

        // Readers on their own connections, noting the id of every 200.
        let ids = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..CONNECTIONS)
            .map(|_| {
                let (ids, stop, token) = (ids.clone(), stop.clone(), token.clone());
                let url = format!("{base}/stu3/Patient/pat-001");
                std::thread::spawn(move || {
                    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).bearer_auth(&token).send() {
                            Ok(r) if r.status() == 200 => {
                                let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
                                ids.lock().unwrap().push(id);
                            }
                            Ok(r) => panic!("status {}", r.status()),
                            // The gateway is gone.
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700 + 150 * round as u64));
        // `Running` kills with SIGKILL: no drain, no shutdown flush.
        drop(running);
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        let ids = std::mem::take(&mut *ids.lock().unwrap());
        assert!(ids.len() > 20, "round {round}: only {} reads were answered", ids.len());
        answered.extend(ids);
    }

    // The trail, a page (at most 1000 records) at a time, oldest first.
    let mut recorded = HashSet::new();
    let mut since = 0i64;
    loop {
        let page = cli_json(&["access", "--data-dir", &data, "--limit", "1000", "--since", &since.to_string()]);
        let page = page["records"].as_array().unwrap().clone();
        for r in &page {
            if r["status"] == 200 {
                recorded.insert(r["request_id"].as_str().unwrap().to_owned());
            }
            since = since.max(fhirgate_core::clock::parse_instant_ms(r["at"].as_str().unwrap()).unwrap());
        }
        if page.len() < 1000 {
            break;
        }
    }
    let lost: Vec<_> = answered.iter().filter(|id| !recorded.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered reads have no record: {:?}",
        lost.len(),
        answered.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!("{ROUNDS} kills under load: {} answered reads, all recorded", answered.len());

    let events = cli_json(&["client", "--data-dir", &data, "audit", "--limit", "100000"]);
    let text = events.to_string();
    for jti in &issued {
        assert!(text.contains(jti.as_str()), "the issuance of token {jti} is not in the trail");
    }
}

//! Batch latency: a `batch` of 8 Patient reads (one of them failing) through
//! the real gateway against a provider that takes a fixed time per request,
//! printed against two baselines measured in the same run: one single read
//! (what the batch should cost, since its entries run in parallel) and the
//! sum of 8 single reads (what it would cost one after another).
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench batch`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fhirgate_devtools::demo::demo_config;
use fhirgate_devtools::demo::provider::{ProviderOptions, serve};
use fhirgate_gateway::app::{App, Options};
use fhirgate_gateway::config::ClientConfig;
use fhirgate_gateway::policy::PolicyFile;
use fhirgate_http::server::{bind, run};
use serde_json::{Value, json};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
const SECRET: &str = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
/// What the provider takes per request: a hospital FHIR server's typical
/// read time, long enough that the gateway's own cost does not hide it.
const PROVIDER_DELAY: Duration = Duration::from_millis(40);

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> anyhow::Result<()> {
    let policy_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies/demo/policy.toml");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let base = runtime.block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse()?;
        let (provider_listener, provider_addr) = bind(any).await?;
        let provider_base = format!("http://{provider_addr}/fhir");
        let options = ProviderOptions { delay: PROVIDER_DELAY, ..ProviderOptions::default() };
        tokio::spawn(serve(provider_listener, provider_base.clone(), options));

        let (listener, addr) = bind(any).await?;
        let mut config = demo_config(&policy_path, addr);
        config.clients.push(ClientConfig {
            client_id: "app".into(),
            name: Some("Bench".into()),
            secret_sha256: fhirgate_core::digest::sha256_hex(SECRET.as_bytes()),
            tenants: vec![TENANT.to_owned()],
            environment: Default::default(),
        });
        let adjust = move |file: &mut PolicyFile| {
            if let Some(p) = file.providers.get_mut("demo") {
                p.base_url = provider_base.clone();
            }
        };
        let app =
            App::build(&config, addr, Options { adjust_policy: Some(Arc::new(adjust)), ..Options::default() }).await?;
        tokio::spawn(async move {
            let _ = run(listener, app.services().clone(), None, std::future::pending()).await;
            app.shutdown().await;
        });
        anyhow::Ok(format!("http://{addr}"))
    })?;

    let http = reqwest::blocking::Client::new();
    let token: Value = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth("app", Some(SECRET))
        .form(&[("grant_type", "client_credentials"), ("scope", TENANT)])
        .send()?
        .json()?;
    let token = token["access_token"].as_str().expect("a token").to_owned();

    let single = || {
        let start = Instant::now();
        let resp = http.get(format!("{base}/stu3/Patient/pat-001")).bearer_auth(&token).send().expect("read");
        assert_eq!(resp.status(), 200);
        start.elapsed()
    };
    let mut entries: Vec<Value> =
        (1..=7).map(|i| json!({ "request": { "method": "GET", "url": format!("Patient/pat-{i:03}") } })).collect();
    entries.push(json!({ "request": { "method": "GET", "url": "Patient/no-such-patient" } }));
    let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
    let batch = || {
        let start = Instant::now();
        let resp = http.post(format!("{base}/stu3")).bearer_auth(&token).json(&bundle).send().expect("batch");
        assert_eq!(resp.status(), 200);
        let out: Value = resp.json().expect("batch-response");
        let statuses: Vec<&str> = out["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| e["response"]["status"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(statuses.iter().filter(|s| s.starts_with("200")).count(), 7, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| s.starts_with("404")).count(), 1, "{statuses:?}");
        start.elapsed()
    };

    // Warm up connections and module instances.
    for _ in 0..5 {
        single();
        batch();
    }
    let rounds = 25;
    let one = median((0..rounds).map(|_| single()).collect());
    let eight = median((0..rounds).map(|_| batch()).collect());
    let serial = one * 8;

    println!("batch latency (provider answers each request in {} ms; median of {rounds})", ms(PROVIDER_DELAY));
    println!("{:<50} {:>10} {:>12}", "", "ms", "ratio");
    println!("{:<50} {:>10.1} {:>12}", "single read (baseline)", ms(one), "1.00");
    println!("{:<50} {:>10.1} {:>12.2}", "8 single reads one after another (8 × baseline)", ms(serial), 8.0);
    println!(
        "{:<50} {:>10.1} {:>12.2}",
        "batch of 8 reads, 1 failing",
        ms(eight),
        eight.as_secs_f64() / one.as_secs_f64()
    );
    println!(
        "batch / sequential: {:.2} (entries run in parallel, so the batch costs about its slowest entry)",
        eight.as_secs_f64() / serial.as_secs_f64()
    );
    Ok(())
}

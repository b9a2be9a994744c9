//! Authorization-server and token-validation costs, printed as a table with
//! ratios against baselines measured in the same run:
//!
//! - token issuance (form parsing, client check, scope, signing) against bare
//!   ES256 signing of the same claims;
//! - validation: native `check` of the default validator (baseline), the same
//!   validator in its WebAssembly module (cold: fresh instance, signature via
//!   the host's `crypto` import), the host's native signature check alone,
//!   and a warm request (verdict-cache hit).
//!
//! Run with `cargo build-guests && cargo bench -p fhirgate --bench auth`.

mod common;

use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{measure, us};
use fhirgate_core::clock::now_seconds;
use fhirgate_gateway::oauth::token::AuthServer;
use fhirgate_gateway::oauth::{ClientRegistry, SigningKey};
use fhirgate_sandbox::IssuerFacts;
use fhirgate_sandbox::bindings::types::Interaction;
use fhirgate_sandbox::harness::{Harness, request};
use http::HeaderMap;
use sha2::{Digest, Sha256};

const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
const ISSUER: &str = "http://127.0.0.1:8080";

fn main() -> anyhow::Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let wasm = target.join("wasm32-wasip2/guest/fhirgate_token_jwt.wasm");
    anyhow::ensure!(wasm.exists(), "{} is missing: run `cargo build-guests` first", wasm.display());

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let secret = "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    let mut clients = ClientRegistry::default();
    clients.add("app", "Bench", secret, &[TENANT.to_owned()]);
    let audiences = vec![format!("{ISSUER}/stu3"), format!("{ISSUER}/dstu2")];
    let auth = AuthServer::new(clients, SigningKey::generate()?, ISSUER.into(), audiences.clone(), 3600);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/x-www-form-urlencoded".parse()?);
    let body = format!("grant_type=client_credentials&client_id=app&client_secret={secret}&scope={TENANT}");
    let peer: IpAddr = "127.0.0.1".parse()?;

    // Issuance, and its baseline: signing the same claims alone.
    let issue = measure(200, 15, || {
        black_box(runtime.block_on(auth.token(&headers, None, body.as_bytes(), peer)).unwrap());
    });
    let key = SigningKey::generate()?;
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "app", "aud": audiences, "scope": TENANT,
        "iat": now_seconds(), "nbf": now_seconds(), "exp": now_seconds() + 3600, "jti": "bench",
    });
    let sign = measure(200, 15, || {
        black_box(key.sign(&claims).unwrap());
    });

    // Validation of one token, four ways.
    let answer = runtime.block_on(auth.token(&headers, None, body.as_bytes(), peer)).unwrap();
    let token = answer["access_token"].as_str().unwrap().to_owned();
    let facts = auth.facts();
    let config = fhirgate_token_jwt::Config { leeway_seconds: 30, required_scopes: Vec::new() };
    let native = measure(200, 15, || {
        assert!(black_box(common::native_check(&token, &config, &facts)));
    });
    let harness = Harness::load(&wasm)?.config(r#"{"leeway_seconds": 30}"#).issuer(IssuerFacts::clone(&facts));
    let req = request(Interaction::Read, "Patient", Some("pat-001"));
    let guest = measure(50, 15, || {
        black_box(harness.validate(&token, &req).unwrap().unwrap());
    });
    // The host's part of a cold validation: the signature check alone.
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature)?
    };
    let jwk = &auth.keys().jwks()["keys"][0];
    let point = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut p = vec![4u8];
        p.extend(b64.decode(jwk["x"].as_str().unwrap())?);
        p.extend(b64.decode(jwk["y"].as_str().unwrap())?);
        p
    };
    let host_verify = measure(200, 15, || {
        let key = fhirgate_sandbox::bindings::crypto::PublicKey::Der(point.clone());
        assert!(black_box(fhirgate_sandbox::crypto::verify_signature("ES256", key, signing_input.as_bytes(), &sig)));
    });
    // Warm: what a request with a cached verdict pays instead of the module.
    let cache: quick_cache::sync::Cache<([u8; 32], Arc<str>), Arc<String>> = quick_cache::sync::Cache::new(50_000);
    let digest: Arc<str> = harness.module().digest().clone();
    cache.insert((Sha256::digest(token.as_bytes()).into(), digest.clone()), Arc::new("claims".into()));
    let warm = measure(10_000, 15, || {
        let key = (Sha256::digest(token.as_bytes()).into(), digest.clone());
        black_box(cache.get(&key).unwrap());
    });

    println!("\nfhirgate auth benchmark (median per operation)\n");
    println!("{:<52} {:>12} {:>14}", "operation", "µs/op", "ops/s");
    let row = |name: &str, d: Duration| println!("{name:<52} {:>12.2} {:>14.0}", us(d), 1.0 / d.as_secs_f64());
    row("token issuance (POST /oauth2/token, in process)", issue);
    row("  baseline: ES256 signing alone", sign);
    row("validation, native check (baseline)", native);
    row("validation, cold: fresh guest instance + host crypto", guest);
    row("  host path: ES256 signature check", host_verify);
    row("validation, warm: verdict cache hit", warm);
    println!();
    println!("issuance / signing                 {:>8.2}×", issue.as_secs_f64() / sign.as_secs_f64());
    println!("cold guest / native check          {:>8.2}×", guest.as_secs_f64() / native.as_secs_f64());
    println!("warm / native check                {:>8.3}×", warm.as_secs_f64() / native.as_secs_f64());
    println!(
        "targets: warm ≤ 5 µs ({:.2} µs), cold ES256 on the host path ≤ 60 µs ({:.2} µs)",
        us(warm),
        us(host_verify)
    );
    Ok(())
}

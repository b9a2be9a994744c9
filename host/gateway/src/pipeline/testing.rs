//! What the phases' unit tests run against: a gateway serving the demo
//! partner's policy and modules (as `cargo build-guests` builds them) over an
//! in-memory store, with one client, and no listener. Nothing here opens a
//! socket; a test that forwards would, and none does.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fhirgate_core::Version;
use fhirgate_core::digest::sha256_hex;
use fhirgate_sandbox::Runtime;
use fhirgate_sandbox::bindings::types::{Claims, Interaction, Request};
use http::{HeaderMap, HeaderValue, Method};

use super::Ctx;
use crate::config::{ClientConfig, Config};
use crate::policy::PolicyFile;
use crate::services::{GatewayState, Services};

/// The demo policy's tenant, active with the provider `demo`.
pub(super) const TENANT: &str = "3f2b8c1e-6d4a-4b7f-9e21-5a0c7d9e4b13";
pub(super) const CLIENT: &str = "phase-tests";
const SECRET: &str = "phase-tests-secret-0123456789abcdefghijklmnop";
/// The demo provider's base in the policy: never dialled by these tests.
pub(super) const PROVIDER_BASE: &str = "http://127.0.0.1:8081/fhir";

/// A gateway on the demo policy; requests on it start with [`ctx`].
pub(super) async fn gateway() -> Arc<Services> {
    let policy_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies/demo/policy.toml");
    let mut config = Config::with_defaults(policy_path.clone());
    config.clients.push(ClientConfig {
        client_id: CLIENT.into(),
        name: None,
        secret_sha256: sha256_hex(SECRET.as_bytes()),
        tenants: vec![TENANT.into()],
        environment: Default::default(),
    });
    // One engine for every test: each module is compiled once, not per test.
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| Runtime::new(config.wasm.clone()).expect("the engine")).clone();
    let file = PolicyFile::read(&policy_path).expect("the demo policy");
    let state = GatewayState::open(None, None, None, &file, crate::access::Commit::default())
        .await
        .expect("an in-memory store");
    let policy = file.load(&policy_path, &runtime).expect("the demo modules: run `cargo build-guests` first");
    let addr = SocketAddr::from(([127, 0, 0, 1], 8080));
    Arc::new(Services::new(&config, addr, runtime, policy, state, None).await.expect("the gateway"))
}

/// A request's context on `face`, as the HTTP layer makes one.
pub(super) fn ctx(gw: &Arc<Services>, face: Version) -> Ctx {
    Ctx {
        gw: gw.clone(),
        policy: gw.policy().load_full(),
        directory: gw.directory().snapshot(),
        face,
        public_base: "http://127.0.0.1:8080".into(),
        request_id: "0190f000000070008000000000000001".into(),
        arrived_ms: fhirgate_core::clock::now_millis(),
    }
}

/// A token the gateway issues the test client for the demo tenant.
pub(super) async fn token(gw: &Services) -> String {
    let body = format!("grant_type=client_credentials&client_id={CLIENT}&client_secret={SECRET}&scope={TENANT}");
    let mut headers = HeaderMap::new();
    headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
    let answer = gw.auth().token(&headers, None, body.as_bytes(), IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    answer.expect("a token")["access_token"].as_str().expect("access_token").to_owned()
}

/// `Authorization: Bearer <token>`.
pub(super) fn bearer(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
    headers
}

/// The test client's claims for the demo tenant.
pub(super) fn claims() -> Claims {
    Claims {
        client_id: CLIENT.into(),
        tenant_id: TENANT.into(),
        scopes: vec![TENANT.into()],
        expires_at: u64::MAX,
        token_id: None,
    }
}

/// A parsed GET of `rest` (`Patient/p1`, `Patient?family=x`).
pub(super) fn get(ctx: &Ctx, rest: &str) -> Request {
    let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
    let request = super::parse::parse(ctx, &Method::GET, path, query, &HeaderMap::new(), bytes::Bytes::new())
        .expect("a valid request");
    assert!(matches!(request.interaction, Interaction::Read | Interaction::Search | Interaction::Vread));
    request
}

//! The upstream path against small in-process providers on 127.0.0.1:0.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::future::join_all;
use http::header::CONTENT_TYPE;
use http::{Response, request};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::*;

const FHIR: &str = "application/fhir+json";

/// A provider: counts the requests it receives and answers with `handler`.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    serve_on(None, handler).await
}

async fn serve_on<F, Fut>(tls: Option<tokio_rustls::TlsAcceptor>, handler: F) -> Server
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (handler, counter, tls) = (handler.clone(), counter.clone(), tls.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let answer = handler(req);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match tls {
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                }
            });
        }
    });
    Server { addr, hits }
}

fn answer(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(body.into())).unwrap()
}

/// Settings for tests: no retries unless a test asks for them, and a breaker
/// that does not open unless a test asks for it.
fn settings(id: &str) -> ProviderSettings {
    ProviderSettings {
        breaker: BreakerSettings { failure_threshold: 1000, open_for: Duration::from_secs(60) },
        retry: RetrySettings { max_retries: 0, budget_ratio: 0.2, backoff: Duration::from_millis(1) },
        ..ProviderSettings::new(id, Duration::from_secs(5))
    }
}

fn breaker(failure_threshold: u32, open_for_ms: u64) -> BreakerSettings {
    BreakerSettings { failure_threshold, open_for: Duration::from_millis(open_for_ms) }
}

async fn get(up: &Upstream, provider: &ProviderSettings, url: &str) -> Result<UpstreamResponse, UpstreamError> {
    up.get(provider, url, HeaderMap::new(), FHIR).await
}

fn status_of(result: Result<UpstreamResponse, UpstreamError>) -> u16 {
    result.expect("an answer from the provider").status.as_u16()
}

// ---- circuit breaker ----

#[tokio::test]
async fn the_breaker_opens_after_the_threshold_and_then_spares_the_provider() {
    let server = serve(|_| async { answer(503, "down") }).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { breaker: breaker(3, 60_000), ..settings("p") };
    for _ in 0..3 {
        assert_eq!(status_of(get(&up, &p, &server.url("/Patient")).await), 503);
    }
    assert!(matches!(up.breaker_state("p"), Some(BreakerState::Open { .. })));
    for _ in 0..5 {
        match get(&up, &p, &server.url("/Patient")).await {
            Err(UpstreamError::CircuitOpen { retry_after }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60))
            }
            other => panic!("expected CircuitOpen, got {other:?}"),
        }
    }
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn unreachable_providers_open_the_breaker_too() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/Patient", closed.local_addr().unwrap());
    drop(closed);
    let up = Upstream::new(1024);
    let p = ProviderSettings { breaker: breaker(2, 60_000), ..settings("p") };
    for _ in 0..2 {
        assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::Connect)));
    }
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
}

#[tokio::test]
async fn after_the_pause_one_probe_goes_through_and_its_success_closes_the_breaker() {
    let healthy = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let server = {
        let (healthy, arrived, release) = (healthy.clone(), arrived.clone(), release.clone());
        serve(move |_| {
            let (healthy, arrived, release) = (healthy.clone(), arrived.clone(), release.clone());
            async move {
                if !healthy.load(Ordering::SeqCst) {
                    return answer(503, "down");
                }
                arrived.notify_one();
                release.notified().await;
                answer(200, "{}")
            }
        })
        .await
    };
    let up = Upstream::new(1024);
    let p = ProviderSettings { breaker: breaker(1, 200), ..settings("p") };
    let url = server.url("/Patient");

    assert_eq!(status_of(get(&up, &p, &url).await), 503);
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    tokio::time::sleep(p.breaker.open_for).await;
    assert_eq!(up.breaker_state("p"), Some(BreakerState::HalfOpen));
    healthy.store(true, Ordering::SeqCst);

    let probe = tokio::spawn({
        let (up, p, url) = (up.clone(), p.clone(), url.clone());
        async move { get(&up, &p, &url).await }
    });
    arrived.notified().await;
    // While the probe is out, everyone else is still turned away.
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    assert_eq!(up.breaker_state("p"), Some(BreakerState::HalfOpen));
    assert_eq!(server.hits(), 2);

    release.notify_one();
    assert_eq!(status_of(probe.await.unwrap()), 200);
    assert_eq!(up.breaker_state("p"), Some(BreakerState::Closed));
    release.notify_one();
    assert_eq!(status_of(get(&up, &p, &url).await), 200);
    assert_eq!(server.hits(), 3);
}

#[tokio::test]
async fn a_failed_probe_opens_the_breaker_again() {
    let server = serve(|_| async { answer(504, "") }).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { breaker: breaker(1, 150), ..settings("p") };
    let url = server.url("/Patient");

    assert_eq!(status_of(get(&up, &p, &url).await), 504);
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    tokio::time::sleep(p.breaker.open_for).await;
    assert_eq!(status_of(get(&up, &p, &url).await), 504);
    assert!(matches!(up.breaker_state("p"), Some(BreakerState::Open { .. })));
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn changed_settings_start_with_a_fresh_breaker() {
    let server = serve(|_| async { answer(503, "") }).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { breaker: breaker(1, 60_000), ..settings("p") };
    let url = server.url("/Patient");
    assert_eq!(status_of(get(&up, &p, &url).await), 503);
    assert!(matches!(get(&up, &p, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    // The timeout is read per request and does not reset anything.
    let slower = ProviderSettings { timeout: Duration::from_secs(6), ..p.clone() };
    assert!(matches!(get(&up, &slower, &url).await, Err(UpstreamError::CircuitOpen { .. })));
    let changed = ProviderSettings { breaker: breaker(2, 60_000), ..p };
    assert_eq!(status_of(get(&up, &changed, &url).await), 503);
    assert_eq!(up.breaker_state("p"), Some(BreakerState::Closed));
}

// ---- retries ----

#[tokio::test]
async fn a_503_is_retried_and_the_retry_answers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let server = {
        let calls = calls.clone();
        serve(move |_| {
            let first = calls.fetch_add(1, Ordering::SeqCst) == 0;
            async move { if first { answer(503, "") } else { answer(200, "{}") } }
        })
        .await
    };
    let up = Upstream::new(1024);
    let p = ProviderSettings { retry: RetrySettings::default(), ..settings("p") };
    let got = get(&up, &p, &server.url("/Patient")).await.unwrap();
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"{}"[..]));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_timeout_ends_the_request_and_the_budget_covers_every_attempt() {
    let server = serve(|_| std::future::pending()).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings {
        timeout: Duration::from_millis(200),
        retry: RetrySettings { max_retries: 3, budget_ratio: 1.0, backoff: Duration::from_millis(1) },
        ..settings("p")
    };
    let started = std::time::Instant::now();
    assert!(matches!(get(&up, &p, &server.url("/Patient")).await, Err(UpstreamError::Timeout(200))));
    // One budget for the request, not one per attempt (that would take 800 ms).
    assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn no_retry_when_the_backoff_would_outlast_the_budget() {
    let server = serve(|_| async { answer(503, "") }).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings {
        timeout: Duration::from_millis(300),
        retry: RetrySettings { max_retries: 1, budget_ratio: 1.0, backoff: Duration::from_secs(1) },
        ..settings("p")
    };
    assert_eq!(status_of(get(&up, &p, &server.url("/Patient")).await), 503);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn other_errors_are_not_retried() {
    let server = serve(|_| async { answer(500, "") }).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { retry: RetrySettings { max_retries: 3, ..RetrySettings::default() }, ..settings("p") };
    assert_eq!(status_of(get(&up, &p, &server.url("/Patient")).await), 500);
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn retries_stop_when_the_retry_budget_is_spent() {
    let server = serve(|_| async { answer(503, "") }).await;
    let up = Upstream::new(1024);
    // Requests earn nothing, so only the banked retries (10) are available.
    let p = ProviderSettings {
        retry: RetrySettings { max_retries: 1, budget_ratio: 0.0, backoff: Duration::from_millis(1) },
        ..settings("p")
    };
    for _ in 0..15 {
        assert_eq!(status_of(get(&up, &p, &server.url("/Patient")).await), 503);
    }
    assert_eq!(server.hits(), 15 + 10);
}

// ---- provider credentials ----

/// A token endpoint that issues `tok-1`, `tok-2`, … and keeps the last
/// request's `Authorization`, content type and body.
async fn token_endpoint() -> (Server, Arc<Mutex<Option<(HeaderMap, Bytes)>>>) {
    let seen = Arc::new(Mutex::new(None));
    let issued = Arc::new(AtomicUsize::new(0));
    let server = {
        let seen = seen.clone();
        serve(move |req: Request<Incoming>| {
            let (seen, issued) = (seen.clone(), issued.clone());
            async move {
                let (parts, body) = req.into_parts();
                let body = body.collect().await.unwrap().to_bytes();
                *seen.lock().unwrap() = Some((parts.headers, body));
                let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
                answer(200, format!(r#"{{"access_token":"tok-{n}","token_type":"Bearer","expires_in":3600}}"#))
            }
        })
        .await
    };
    (server, seen)
}

fn client_credentials(token: &Server) -> UpstreamAuth {
    UpstreamAuth::ClientCredentials {
        token_url: token.url("/token"),
        client_id: "app:1".into(),
        scope: Some("system/*.read".into()),
        client_auth: ClientAuth::SecretBasic("s&cr t".into()),
    }
}

/// A provider that answers 200 with the `Authorization` it was sent, or 401
/// when the token is not `accepted` (any token when `accepted` is `None`).
async fn echo_authorization(accepted: Option<&'static str>) -> Server {
    serve(move |req: Request<Incoming>| {
        let got = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes().to_vec()).unwrap_or_default();
        async move {
            match accepted {
                Some(ok) if got != ok.as_bytes() => answer(401, ""),
                _ => answer(200, got),
            }
        }
    })
    .await
}

#[tokio::test]
async fn concurrent_requests_share_one_token_fetch_and_later_ones_use_the_cache() {
    let (token, seen) = token_endpoint().await;
    let provider = echo_authorization(None).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { auth: Some(client_credentials(&token)), ..settings("p") };
    let url = provider.url("/Patient");

    // All eight are waiting on the token before its answer can arrive.
    let answers = join_all((0..8).map(|_| get(&up, &p, &url))).await;
    for got in answers {
        assert_eq!(&got.unwrap().body[..], b"Bearer tok-1");
    }
    assert_eq!(&get(&up, &p, &url).await.unwrap().body[..], b"Bearer tok-1");
    assert_eq!((token.hits(), provider.hits()), (1, 9));

    let (headers, body) = seen.lock().unwrap().clone().unwrap();
    let basic = headers[AUTHORIZATION].to_str().unwrap().strip_prefix("Basic ").unwrap().to_owned();
    let basic = base64::engine::general_purpose::STANDARD.decode(basic).unwrap();
    assert_eq!(basic, b"app%3A1:s%26cr+t");
    assert_eq!(headers[CONTENT_TYPE], "application/x-www-form-urlencoded");
    assert_eq!(&body[..], b"grant_type=client_credentials&scope=system%2F*.read");
}

#[tokio::test]
async fn a_refused_token_is_replaced_once() {
    let (token, _) = token_endpoint().await;
    let provider = echo_authorization(Some("Bearer tok-2")).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { auth: Some(client_credentials(&token)), ..settings("p") };
    let url = provider.url("/Patient");

    assert_eq!(&get(&up, &p, &url).await.unwrap().body[..], b"Bearer tok-2");
    assert_eq!((token.hits(), provider.hits()), (2, 2));
    assert_eq!(&get(&up, &p, &url).await.unwrap().body[..], b"Bearer tok-2");
    assert_eq!((token.hits(), provider.hits()), (2, 3));

    // Refused again and again: one replacement per request, then the 401 stands.
    let stubborn = echo_authorization(Some("never")).await;
    assert_eq!(status_of(get(&up, &p, &stubborn.url("/Patient")).await), 401);
    assert_eq!((token.hits(), stubborn.hits()), (3, 2));
}

#[tokio::test]
async fn a_token_endpoint_refusal_is_an_auth_error_that_keeps_the_secret() {
    let token =
        serve(|_| async { answer(401, r#"{"error":"invalid_client","error_description":"bad secret s&cr t"}"#) }).await;
    let provider = echo_authorization(None).await;
    let up = Upstream::new(1024);
    let p = ProviderSettings { auth: Some(client_credentials(&token)), breaker: breaker(1, 60_000), ..settings("p") };
    match get(&up, &p, &provider.url("/Patient")).await {
        Err(e @ UpstreamError::Auth(_)) => {
            let shown = e.to_string();
            assert!(shown.contains("invalid_client"), "{shown}");
            assert!(!shown.contains("s&cr t"), "{shown}");
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
    assert_eq!(provider.hits(), 0);
    // The provider itself did nothing wrong.
    assert_eq!(up.breaker_state("p"), Some(BreakerState::Closed));
}

#[tokio::test]
async fn a_header_credential_is_sent_instead_of_the_clients() {
    let provider = serve(|req: Request<Incoming>| {
        let key = req.headers().get("x-api-key").cloned();
        let client_auth = req.headers().contains_key(AUTHORIZATION);
        async move {
            match key {
                Some(k) if k == "k-123" && !client_auth => answer(200, "{}"),
                _ => answer(401, ""),
            }
        }
    })
    .await;
    let up = Upstream::new(1024);
    let p = ProviderSettings {
        auth: Some(UpstreamAuth::Header {
            name: HeaderName::from_static("x-api-key"),
            value: HeaderValue::from_static("k-123"),
        }),
        ..settings("p")
    };
    let mut inbound = HeaderMap::new();
    inbound.insert(AUTHORIZATION, HeaderValue::from_static("Bearer client-token"));
    assert_eq!(status_of(up.get(&p, &provider.url("/Patient"), inbound, FHIR).await), 200);
}

#[test]
fn debug_output_hides_credentials() {
    let mut p = ProviderSettings::new("p", Duration::from_secs(1));
    p.auth = Some(UpstreamAuth::Header {
        name: HeaderName::from_static("x-api-key"),
        value: HeaderValue::from_static("k-123"),
    });
    let shown = format!("{p:?}");
    assert!(shown.contains("x-api-key") && !shown.contains("k-123"), "{shown}");
    p.auth = Some(UpstreamAuth::ClientCredentials {
        token_url: "https://auth.example/token".into(),
        client_id: "app".into(),
        scope: None,
        client_auth: ClientAuth::SecretBasic("hunter2".into()),
    });
    let shown = format!("{p:?}");
    assert!(shown.contains("app") && !shown.contains("hunter2"), "{shown}");
}

// ---- what is sent and what is taken back ----

#[tokio::test]
async fn hop_by_hop_headers_and_client_credentials_stay_behind() {
    let seen: Arc<Mutex<Option<request::Parts>>> = Arc::new(Mutex::new(None));
    let server = {
        let seen = seen.clone();
        serve(move |req: Request<Incoming>| {
            *seen.lock().unwrap() = Some(req.into_parts().0);
            async { answer(200, "{}") }
        })
        .await
    };
    let mut inbound = HeaderMap::new();
    for (name, value) in [
        ("connection", "x-private, keep-alive"),
        ("x-private", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-authorization", "Basic eDp5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("trailer", "x-checksum"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("authorization", "Bearer client-token"),
        ("cookie", "session=1"),
        ("host", "gateway.example"),
        ("user-agent", "someone-else"),
        ("accept", "text/html"),
        ("x-request-id", "req-1"),
    ] {
        inbound.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    let up = Upstream::new(1024);
    assert_eq!(status_of(up.get(&settings("p"), &server.url("/Patient"), inbound, FHIR).await), 200);

    let parts = seen.lock().unwrap().take().unwrap();
    for gone in [
        "connection",
        "x-private",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "authorization",
        "cookie",
    ] {
        assert!(!parts.headers.contains_key(gone), "{gone} was forwarded");
    }
    assert_eq!(parts.headers["x-request-id"], "req-1");
    assert_eq!(parts.headers["host"], server.addr.to_string().as_str());
    assert_eq!(parts.headers["accept"], FHIR);
    assert_eq!(parts.headers["user-agent"], concat!("fhirgate/", env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn an_answer_over_the_size_limit_is_refused() {
    let server = serve(|req: Request<Incoming>| {
        let size = if req.uri().path() == "/big" { 17 } else { 16 };
        async move { answer(200, vec![b'x'; size]) }
    })
    .await;
    let up = Upstream::new(16);
    let p = settings("p");
    assert_eq!(get(&up, &p, &server.url("/fits")).await.unwrap().body.len(), 16);
    assert!(matches!(get(&up, &p, &server.url("/big")).await, Err(UpstreamError::TooLarge(16))));
}

#[tokio::test]
async fn a_url_that_is_not_http_is_refused() {
    let up = Upstream::new(16);
    for url in ["ftp://host/Patient", "/Patient", "not a url"] {
        assert!(matches!(get(&up, &settings("p"), url).await, Err(UpstreamError::BadUrl)), "{url}");
    }
}

// ---- trust ----

/// A test CA and a certificate it issued for 127.0.0.1, valid 2025–2125.
/// Made with `openssl ca` (P-256); only the CA's certificate is kept.
fn testdata(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/testdata").join(name)
}

#[test]
fn check_refuses_an_unusable_ca_file() {
    let with_ca = |path: PathBuf| ProviderSettings { extra_ca: Some(path), ..settings("p") };
    assert!(matches!(Upstream::check(&with_ca(testdata("missing.pem"))), Err(UpstreamError::Tls(_))));
    let garbage = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(garbage.path(), "not a certificate").unwrap();
    assert!(matches!(Upstream::check(&with_ca(garbage.path().to_owned())), Err(UpstreamError::Tls(_))));
    // A key alone is not a trust anchor.
    assert!(matches!(Upstream::check(&with_ca(testdata("server.key"))), Err(UpstreamError::Tls(_))));
    Upstream::check(&with_ca(testdata("ca.pem"))).unwrap();
}

#[test]
fn check_refuses_a_token_url_that_is_not_http() {
    let p = ProviderSettings {
        auth: Some(UpstreamAuth::ClientCredentials {
            token_url: "token".into(),
            client_id: "app".into(),
            scope: None,
            client_auth: ClientAuth::SecretBasic("secret".into()),
        }),
        ..settings("p")
    };
    assert!(matches!(Upstream::check(&p), Err(UpstreamError::Auth(_))));
}

#[tokio::test]
async fn an_https_provider_is_reachable_only_with_its_extra_ca() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let certs = CertificateDer::pem_file_iter(testdata("server.pem")).unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_file(testdata("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let server =
        serve_on(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), |_| async { answer(200, "{}") }).await;
    let url = format!("https://{}/metadata", server.addr);
    let up = Upstream::new(1024);

    let system_roots_only = settings("p");
    assert!(matches!(get(&up, &system_roots_only, &url).await, Err(UpstreamError::Connect)));
    assert_eq!(server.hits(), 0);

    let with_ca = ProviderSettings { extra_ca: Some(testdata("ca.pem")), ..settings("p") };
    assert_eq!(status_of(get(&up, &with_ca, &url).await), 200);
    assert_eq!(server.hits(), 1);
}

// ---- reads for shaping modules ----

mod reads {
    use super::*;
    use crate::reads::{MAX_READS_PER_CALL, ProviderReads, ReadCache};
    use fhirgate_sandbox::UpstreamReads as _;
    use fhirgate_sandbox::bindings::upstream::ReadError;

    const LOCATION: &str = r#"{"resourceType":"Location","id":"loc-1","name":"Ward 7"}"#;

    fn reads_with(
        up: &Upstream,
        provider: &ProviderSettings,
        server: &Server,
        tenant: &str,
        headers: HeaderMap,
        cache: &Arc<ReadCache>,
    ) -> ProviderReads {
        ProviderReads::new(up.clone(), provider, &server.url("/fhir"), FHIR, tenant, headers, "req-1", cache.clone())
    }

    fn reads(server: &Server, tenant: &str, headers: HeaderMap, cache: &Arc<ReadCache>) -> ProviderReads {
        ProviderReads::new(
            Upstream::new(1 << 20),
            &settings("hospital"),
            &server.url("/fhir"),
            FHIR,
            tenant,
            headers,
            "req-1",
            cache.clone(),
        )
    }

    #[tokio::test]
    async fn only_locations_by_id_and_a_bounded_number() {
        let server = serve(|_| async { answer(200, LOCATION) }).await;
        let cache = Arc::new(ReadCache::default());
        let r = reads(&server, "t1", HeaderMap::new(), &cache);
        assert!(r.read("Location/loc-1").await.is_ok());
        for path in ["Patient/pat-1", "Location", "Location/..", "Location/a/b", "../Location/1"] {
            assert!(matches!(r.read(path).await, Err(ReadError::NotAllowed(_))), "{path}");
        }
        assert_eq!(server.hits(), 1, "refused reads never reach the provider");
        // The call's budget of distinct reads (cache hits are free).
        for i in 1..MAX_READS_PER_CALL {
            assert!(r.read(&format!("Location/l{i}")).await.is_ok());
        }
        assert!(matches!(r.read("Location/one-too-many").await, Err(ReadError::NotAllowed(_))));
        assert!(r.read("Location/loc-1").await.is_ok(), "a cached answer costs no read");
    }

    #[tokio::test]
    async fn answers_are_cached_per_tenant_and_routing_headers() {
        let server = serve(|_| async { answer(200, LOCATION) }).await;
        let cache = Arc::new(ReadCache::default());
        let mut scoped = HeaderMap::new();
        scoped.insert("x-org", HeaderValue::from_static("st-mary"));
        for _ in 0..3 {
            reads(&server, "t1", HeaderMap::new(), &cache).read("Location/loc-1").await.unwrap();
        }
        assert_eq!(server.hits(), 1, "one fetch serves later calls");
        reads(&server, "t2", HeaderMap::new(), &cache).read("Location/loc-1").await.unwrap();
        reads(&server, "t1", scoped, &cache).read("Location/loc-1").await.unwrap();
        assert_eq!(server.hits(), 3, "another tenant, or other routing headers, read for themselves");
    }

    #[tokio::test]
    async fn failures_are_reported_and_do_not_open_the_providers_breaker() {
        let server = serve(|req: Request<Incoming>| async move {
            match req.uri().path() {
                "/fhir/Location/gone" => answer(404, "{}"),
                "/fhir/Location/big" => answer(200, format!("\"{}\"", "x".repeat(70 * 1024))),
                _ => answer(503, "{}"),
            }
        })
        .await;
        let cache = Arc::new(ReadCache::default());
        let up = Upstream::new(1 << 20);
        let mut provider = settings("hospital");
        provider.breaker = breaker(3, 60_000);
        let r = reads_with(&up, &provider, &server, "t1", HeaderMap::new(), &cache);
        assert!(matches!(r.read("Location/gone").await, Err(ReadError::NotFound)));
        assert!(matches!(r.read("Location/big").await, Err(ReadError::Failed(_))));
        for i in 0..8 {
            assert!(matches!(r.read(&format!("Location/down-{i}")).await, Err(ReadError::Failed(_))));
        }
        // The reads tripped their own breaker, not the provider's: the app's
        // next request still goes out.
        assert!(matches!(up.breaker_state("hospital#reads"), Some(BreakerState::Open { .. })));
        assert!(!matches!(up.breaker_state("hospital"), Some(BreakerState::Open { .. })));
        assert_eq!(status_of(get(&up, &provider, &server.url("/fhir/Location/gone")).await), 404);
    }
}

// ---- outbound-address policy ----

#[tokio::test]
async fn a_restricted_provider_is_reached_only_at_permitted_addresses() {
    use crate::outbound::{OutboundPolicy, Range};
    let server = serve(|_| async { answer(200, "{}") }).await;
    let port = server.url("/").rsplit(':').next().unwrap().trim_end_matches('/').to_owned();
    let restricted = ProviderSettings { restricted: true, ..settings("r") };
    let up = Upstream::new(1024);
    // Loopback in every spelling: a literal, a name, a mapped IPv6 literal.
    for url in [
        server.url("/metadata"),
        format!("http://localhost:{port}/metadata"),
        format!("http://[::ffff:127.0.0.1]:{port}/metadata"),
    ] {
        match get(&up, &restricted, &url).await {
            Err(UpstreamError::Refused) => {}
            other => panic!("{url}: expected Refused, got {other:?}"),
        }
    }
    assert_eq!(server.hits(), 0);
    // The operator's own providers are not restricted.
    assert_eq!(status_of(get(&up, &settings("own"), &server.url("/metadata")).await), 200);
    // An allowed range opens it.
    let allowing = Upstream::with_outbound(1024, OutboundPolicy::new(vec![Range::parse("127.0.0.0/8").unwrap()]));
    assert_eq!(status_of(get(&allowing, &restricted, &server.url("/metadata")).await), 200);
}

//! HTTP serving: the [`run`] entry, connection handling with graceful
//! shutdown, and each request's id; `routes` decides who answers.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use fhirgate_core::failure::Body;
use fhirgate_gateway::Services;
use fhirgate_gateway::config::HttpLimits;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::conn::{Admission, Ticket, Timeouts, Tracked, Watched, descriptor_limit};
use crate::tls::{MaybeTls, RELOAD_EVERY, Tls};

/// How long in-flight requests may take to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTPS listener's settings: its certificate, and the
/// `Strict-Transport-Security` header its answers carry, if any.
#[derive(Clone)]
pub struct Https {
    pub tls: Tls,
    pub hsts: Option<HeaderValue>,
}

impl Https {
    /// The listener `config` describes, when it has a `[tls]` section.
    pub fn from_config(config: &fhirgate_gateway::config::Config) -> anyhow::Result<Option<Https>> {
        let Some(tls) = &config.tls else { return Ok(None) };
        let files = crate::tls::TlsFiles {
            cert: tls.cert_file.clone(),
            key: tls.key_file.clone(),
            client_ca: tls.client_ca_file.clone(),
        };
        let hsts = tls.hsts_max_age_seconds.map(|age| {
            let sub = if tls.hsts_include_subdomains { "; includeSubDomains" } else { "" };
            HeaderValue::from_str(&format!("max-age={age}{sub}")).expect("digits and ASCII")
        });
        Ok(Some(Https { tls: Tls::new(&files)?, hsts }))
    }
}

/// Serves `gateway` on `listener` (over TLS with `https`) until `shutdown`
/// resolves, then drains in-flight connections. The access records they
/// left are committed by the `App`'s shutdown, which follows.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Services>,
    https: Option<Https>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = gateway.limits().clone();
    let hsts = https.as_ref().and_then(|h| h.hsts.clone());
    serve_connections(
        listener,
        &limits,
        https.map(|h| h.tls),
        move |req, peer| {
            let (gw, hsts) = (gateway.clone(), hsts.clone());
            async move {
                let mut resp = handle(&gw, req, peer).await;
                if let Some(hsts) = hsts {
                    resp.headers_mut().insert(http::header::STRICT_TRANSPORT_SECURITY, hsts);
                }
                resp
            }
        },
        shutdown,
    )
    .await;
    Ok(())
}

/// The gateway's transport: accepts connections on `listener` (HTTP/1.1 and
/// HTTP/2, `TCP_NODELAY`, over TLS with `tls`) within the caps and timeouts
/// of `limits`, answers each request with `handler`, and when `shutdown`
/// resolves stops accepting and drains in-flight connections.
pub async fn serve_connections<H, F>(
    listener: TcpListener,
    limits: &HttpLimits,
    tls: Option<Tls>,
    handler: H,
    shutdown: impl Future<Output = ()>,
) where
    H: Fn(Request<Incoming>, IpAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = Arc::new(builder(limits));
    let admission = Admission::new(limits, descriptor_limit());
    let timeouts = Timeouts::of(limits);
    let handshake_timeout = Duration::from_secs(limits.header_read_timeout_seconds.max(1));
    // The certificate follows its files; connections keep theirs.
    let reloader = tls.clone().map(|tls| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOAD_EVERY).await;
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload_if_changed()).await;
            }
        })
    });
    tokio::pin!(shutdown);
    loop {
        // Accept only with a descriptor to spare: at the cap this closes an
        // idle connection first, and waits until it has.
        tokio::select! {
            () = admission.room() => {}
            () = &mut shutdown => break,
        }
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over a cap: closed at once, before anything is read.
                let Ok(ticket) = admission.admit(peer.ip()) else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let state = ticket.state.clone();
                let service = service_fn(move |req| {
                    let request = state.request();
                    let answer = handler(req, peer.ip());
                    async move { Ok::<_, Infallible>(answer.await.map(|body| Tracked::new(body, request))) }
                });
                let io = Watched::new(stream, ticket.state.clone());
                let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
                tokio::spawn(async move {
                    let io = match tls {
                        None => MaybeTls::Plain(io),
                        // A handshake gets the header-read timeout; one that
                        // fails or stalls closes the connection.
                        Some(tls) => match tokio::time::timeout(handshake_timeout, tls.accept(io)).await {
                            Ok(Ok(stream)) => MaybeTls::Tls(Box::new(stream)),
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                    };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service).into_owned();
                    supervise(watcher.watch(conn), ticket, timeouts).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if let Some(reloader) = reloader {
        reloader.abort();
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => tracing::warn!("in-flight connections did not finish in time"),
    }
}

/// The connection builder: header sizes and HTTP/2 stream limits from
/// `limits`. Timeouts are the watchdog's, the same for both protocols.
fn builder(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .header_read_timeout(None)
        // The read buffer holds the whole head: a larger head gets 431.
        .max_buf_size(limits.max_header_bytes);
    builder
        .http2()
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    builder
}

/// Runs `conn` until it ends, its watchdog finds it overdue, or admission
/// closes it to make room; dropping it closes the socket.
async fn supervise<C>(conn: C, ticket: Ticket, timeouts: Timeouts)
where
    C: Future<Output = Result<(), Box<dyn std::error::Error + Send + Sync>>>,
{
    tokio::pin!(conn);
    let mut watchdog = tokio::time::interval(timeouts.tick());
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            ended = &mut conn => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = ticket.state.evicted() => {
                tracing::debug!("idle connection closed to admit another");
                return;
            }
            _ = watchdog.tick() => {
                if let Some(why) = ticket.state.expired(&timeouts) {
                    tracing::debug!(why, "connection closed");
                    return;
                }
            }
        }
    }
}

/// Binds `addr` and returns the listener with its real address (port 0 is
/// resolved).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}

async fn handle(gw: &Arc<Services>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    // Time-ordered: ids sort by arrival, and the access log's key grows at
    // its end instead of at random places.
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let mut resp = crate::routes::dispatch(gw, req, &request_id, peer).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

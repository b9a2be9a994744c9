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

/// How long in-flight requests may take to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains
/// in-flight connections. The access records they left are committed by
/// the `App`'s shutdown, which follows.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Services>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let limits = gateway.limits().clone();
    serve_connections(
        listener,
        &limits,
        move |req, peer| {
            let gw = gateway.clone();
            async move { handle(&gw, req, peer).await }
        },
        shutdown,
    )
    .await;
    Ok(())
}

/// The gateway's transport: accepts connections on `listener` (HTTP/1.1 and
/// HTTP/2, `TCP_NODELAY`) within the caps and timeouts of `limits`, answers
/// each request with `handler`, and when `shutdown` resolves stops accepting
/// and drains in-flight connections.
pub async fn serve_connections<H, F>(
    listener: TcpListener,
    limits: &HttpLimits,
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
                let io = TokioIo::new(Watched::new(stream, ticket.state.clone()));
                let conn = builder.serve_connection_with_upgrades(io, service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(supervise(conn, ticket, timeouts));
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
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

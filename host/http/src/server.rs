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
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

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
    serve_connections(
        listener,
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
/// HTTP/2, `TCP_NODELAY`), answers each request with `handler`, and when
/// `shutdown` resolves stops accepting and drains in-flight connections.
pub async fn serve_connections<H, F>(listener: TcpListener, handler: H, shutdown: impl Future<Output = ()>)
where
    H: Fn(Request<Incoming>, IpAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
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
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |req| {
                    let answer = handler(req, peer.ip());
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
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

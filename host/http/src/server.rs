//! HTTP serving: the [`run`] entry, connection handling with graceful
//! shutdown, and dispatch of each request to the endpoint that owns it.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use fhirgate_core::failure::{Body, Failure, json_response, no_store, oauth_error_response};
use fhirgate_core::{OAuthError, Version};
use fhirgate_gateway::Services;
use fhirgate_gateway::capability::capability_statement;
use fhirgate_gateway::oauth::discovery;
use fhirgate_gateway::pipeline::{self, Ctx};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
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
    let mut resp = dispatch(gw, req, &request_id, peer).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn dispatch(gw: &Arc<Services>, req: Request<Incoming>, request_id: &str, peer: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return json_response(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
        // Figures only: no tokens, tenants or patient data, so no credential.
        "/metrics" => {
            return json_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                gw.runtime().metrics().render(),
            );
        }
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" => return oauth_endpoint(gw, req, peer).await,
        "/.well-known/oauth-authorization-server" => {
            let body = discovery::authorization_server(gw.auth(), &gw.public_base(&req));
            return json_response(StatusCode::OK, "application/json", body.to_string());
        }
        "/oauth2/authorize" => {
            let body = json!({
                "error": "unsupported_response_type",
                "error_description": "This server issues tokens only with the client_credentials grant at /oauth2/token."
            });
            return no_store(json_response(StatusCode::BAD_REQUEST, "application/json", body.to_string()));
        }
        p if p == "/admin" || p.starts_with("/admin/") => {
            let (parts, body) = req.into_parts();
            let Some(auth) = gw.admin() else {
                return crate::admin::problem(StatusCode::NOT_FOUND, "The admin API is not enabled (set [admin]).");
            };
            // Authenticated before the body is read: only the admin may send
            // a module's worth of bytes.
            let Some(principal) = auth.authenticate(&parts.headers) else {
                return crate::admin::unauthenticated();
            };
            let limit = if p.starts_with("/admin/modules/") {
                fhirgate_gateway::activation::MAX_UPLOAD_BYTES
            } else {
                64 * 1024
            };
            let body = match read_body(body, limit).await {
                Ok(b) => b,
                Err(f) => {
                    return json_response(f.status, "application/json", json!({ "error": f.message }).to_string());
                }
            };
            return crate::admin::handle(gw, principal, &parts.method, &path, parts.uri.query(), body).await;
        }
        "/.well-known/jwks.json" => {
            return json_response(StatusCode::OK, "application/json", gw.auth().keys().jwks().to_string());
        }
        _ => {}
    }
    let trimmed = path.trim_start_matches('/');
    let (face_segment, rest) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let face = match face_segment {
        "stu3" => Version::Stu3,
        "dstu2" => Version::Dstu2,
        _ => {
            return Failure::client(
                StatusCode::NOT_FOUND,
                "Not found. The FHIR bases are /stu3 and /dstu2; tokens come from /oauth2/token.",
            )
            .into_response(Version::Stu3);
        }
    };
    let rest = rest.trim_end_matches('/');
    let public_base = gw.public_base(&req);
    if rest == ".well-known/smart-configuration" {
        let body = discovery::smart_configuration(&public_base);
        return json_response(StatusCode::OK, "application/json", body.to_string());
    }
    if rest == "metadata" {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Failure::client(StatusCode::METHOD_NOT_ALLOWED, "Use GET for /metadata.").into_response(face);
        }
        let body = capability_statement(face, &public_base).to_string();
        return json_response(StatusCode::OK, face.content_type(), body);
    }

    let (parts, body) = req.into_parts();
    // A body that cannot be read is still an access, recorded by the pipeline.
    let body = read_body(body, gw.limits().max_request_body_bytes).await;
    let ctx = Ctx {
        gw: gw.clone(),
        policy: gw.policy().load_full(),
        directory: gw.directory().snapshot(),
        face,
        public_base,
        request_id: request_id.to_owned(),
        arrived_ms: fhirgate_core::clock::now_millis(),
    };
    pipeline::handle(&ctx, &parts.method, rest, parts.uri.query(), &parts.headers, body).await
}

async fn read_body(body: Incoming, limit: usize) -> Result<Bytes, Failure> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => Err(Failure::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("The request body is larger than {limit} bytes."),
        )),
        Err(_) => Err(Failure::client(StatusCode::BAD_REQUEST, "The request body could not be read.")),
    }
}

/// The token, revocation and introspection endpoints: POST, form bodies,
/// answers never cached.
async fn oauth_endpoint(gw: &Services, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    if req.method() != Method::POST {
        let mut resp = oauth_error_response(&OAuthError::InvalidRequest("Use POST.".into()));
        *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        resp.headers_mut().insert(http::header::ALLOW, HeaderValue::from_static("POST"));
        return resp;
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body, 64 * 1024).await {
        Ok(b) => b,
        Err(f) => return oauth_error_response(&OAuthError::InvalidRequest(f.message)),
    };
    let (headers, query) = (&parts.headers, parts.uri.query());
    let result = match parts.uri.path() {
        "/oauth2/token" => gw.auth().token(headers, query, &body, peer).await,
        "/oauth2/revoke" => gw.auth().revoke(headers, query, &body, peer).await.map(|()| json!({})),
        _ => gw.auth().introspect(headers, query, &body, peer).await,
    };
    match result {
        Ok(answer) => no_store(json_response(StatusCode::OK, "application/json", answer.to_string())),
        Err(e) => {
            tracing::info!(target: "fhirgate::audit", event = "oauth-refused", endpoint = parts.uri.path(), error = e.code(), "request refused");
            oauth_error_response(&e)
        }
    }
}

//! HTTP serving: the [`run`] entry, connection handling with graceful
//! shutdown, and dispatch of each request to the endpoint that owns it.

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::HOST;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::{Config, HttpLimits};
use crate::directory::Directory;
use crate::error::{Body, Failure, json_response, no_store, oauth_error_response};
use crate::fhir::{FACES, Version, capability::capability_statement};
use crate::oauth::discovery;
use crate::oauth::token::{AuthServer, OAuthError};
use crate::oauth::{ClientRegistry, SigningKey};
use crate::paging::Sealer;
use crate::pipeline::{self, Ctx};
use crate::policy::{Policy, PolicyFile};
use crate::store::Store;
use crate::store::access::AccessLog;
use crate::upstream::Upstream;
use crate::wasm::Runtime;

/// What a gateway keeps in its store: the tenant directory, the access log
/// and the paging key.
pub struct GatewayState {
    pub store: Store,
    pub directory: Directory,
    pub access: AccessLog,
    pub sealer: Sealer,
}

impl GatewayState {
    /// Opens the store in `data_dir` (or an in-memory one, for a gateway
    /// that keeps nothing across restarts) and writes the policy file's
    /// providers and tenants into the directory.
    pub async fn open(data_dir: Option<&std::path::Path>, policy: &PolicyFile) -> anyhow::Result<GatewayState> {
        let (store, sealer) = match data_dir {
            Some(dir) => (Store::open_dir(dir).await?, Sealer::load_or_create(dir)?),
            None => (Store::open("sqlite::memory:").await?, Sealer::random()?),
        };
        let secrets = data_dir.map(|d| d.join(crate::directory::SECRETS_DIR));
        let directory = Directory::open(store.clone(), secrets).await?;
        directory
            .declare(&policy.partner, &policy.providers, &policy.declared_tenants())
            .await
            .with_context(|| "in the policy's [providers] and [tenants]".to_owned())?;
        let access = AccessLog::start(store.clone());
        Ok(GatewayState { store, directory, access, sealer })
    }
}

/// Everything a running gateway owns.
pub struct Gateway {
    pub auth: AuthServer,
    /// The partner policy; swapped whole on reload.
    pub policy: ArcSwap<Policy>,
    /// The policy file watched for changes, when it is.
    pub activation: Option<crate::activation::Activation>,
    /// Tenants → providers, with approval state.
    pub directory: Directory,
    /// The append-only access log.
    pub access: AccessLog,
    /// Seals paging cursors.
    pub sealer: Sealer,
    /// Answers of shaping modules' upstream reads, reused briefly.
    pub read_cache: Arc<crate::upstream::reads::ReadCache>,
    pub store: Store,
    pub runtime: Runtime,
    pub upstream: Upstream,
    /// Configured public URL, if any.
    pub public_url: Option<String>,
    pub local_addr: SocketAddr,
    pub limits: HttpLimits,
    /// The admin API's credential, when enabled.
    pub admin: Option<crate::admin::AdminAuth>,
    /// Algorithm of new signing keys and how long retired ones stay
    /// published, when keys live in the store.
    pub key_policy: Option<(jsonwebtoken::Algorithm, u64)>,
}

impl Gateway {
    /// Assembles a gateway listening on `local_addr`.
    pub fn new(
        config: &Config,
        runtime: Runtime,
        policy: Policy,
        state: GatewayState,
        clients: ClientRegistry,
        local_addr: SocketAddr,
    ) -> anyhow::Result<Gateway> {
        let key = match &config.token.signing_key_file {
            Some(path) => SigningKey::load_or_create(path)?,
            None => SigningKey::generate()?,
        };
        let issuer = config.public_url.clone().unwrap_or_else(|| format!("http://{local_addr}"));
        let audiences = FACES.iter().map(|f| format!("{issuer}/{}", f.face())).collect();
        let mut auth = AuthServer::new(clients, key, issuer, audiences, config.token.lifetime_seconds);
        auth.events = Some(state.access.clone());
        Ok(Gateway {
            auth,
            policy: ArcSwap::from_pointee(policy),
            activation: None,
            directory: state.directory,
            access: state.access,
            sealer: state.sealer,
            read_cache: Arc::default(),
            store: state.store,
            runtime,
            upstream: Upstream::new(config.limits.max_upstream_body_bytes),
            public_url: config.public_url.clone(),
            local_addr,
            limits: config.limits.clone(),
            admin: config.admin.as_ref().map(|a| crate::admin::AdminAuth::from_hex(&a.token_sha256)).transpose()?,
            key_policy: None,
        })
    }

    /// `scheme://host[:port]` as the client reached us: the configured public
    /// URL, else the request's `Host` when it is a plain authority, else the
    /// listening address.
    fn public_base<B>(&self, req: &Request<B>) -> String {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .filter(|a| !a.as_str().contains('@'));
        match host {
            Some(a) => format!("http://{a}"),
            None => format!("http://{}", self.local_addr),
        }
    }
}

/// How often a gateway checks the store for directory changes made by
/// another process (the CLI, another gateway); changes made through this
/// gateway's admin API apply at once.
const DIRECTORY_POLL: Duration = Duration::from_secs(2);

/// Keeps `gateway`'s directory in step with its store.
pub fn watch_directory(gateway: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(DIRECTORY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = gateway.directory.reload_if_changed().await {
                tracing::warn!(error = %format!("{e:#}"), "reloading the directory failed; keeping the current one");
            }
        }
    });
}

/// How long in-flight requests may take to finish after shutdown is asked.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `gateway` on `listener` until `shutdown` resolves, then drains
/// in-flight connections.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let gw = gateway.clone();
    serve_connections(
        listener,
        move |req, peer| {
            let gw = gw.clone();
            async move { handle(&gw, req, peer).await }
        },
        shutdown,
    )
    .await;
    gateway.access.flush().await;
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

async fn handle(gw: &Arc<Gateway>, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
    // Time-ordered: ids sort by arrival, and the access log's key grows at
    // its end instead of at random places.
    let request_id = uuid::Uuid::now_v7().simple().to_string();
    let mut resp = dispatch(gw, req, &request_id, peer).await;
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn dispatch(gw: &Arc<Gateway>, req: Request<Incoming>, request_id: &str, peer: IpAddr) -> Response<Body> {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        "/healthz" => return json_response(StatusCode::OK, "application/json", r#"{"status":"ok"}"#),
        // Figures only: no tokens, tenants or patient data, so no credential.
        "/metrics" => {
            return json_response(
                StatusCode::OK,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                gw.runtime.metrics().render(),
            );
        }
        "/oauth2/token" | "/oauth2/revoke" | "/oauth2/introspect" => return oauth_endpoint(gw, req, peer).await,
        "/.well-known/oauth-authorization-server" => {
            let body = discovery::authorization_server(&gw.auth, &gw.public_base(&req));
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
            let admin = gw.admin.as_ref().is_some_and(|a| a.allows(&parts.headers));
            // Only the admin may send a module's worth of bytes; anyone else
            // is answered without the body being read.
            let limit = if p.starts_with("/admin/modules/") { crate::activation::MAX_UPLOAD_BYTES } else { 64 * 1024 };
            let body = if admin || limit == 64 * 1024 {
                match read_body(body, limit).await {
                    Ok(b) => b,
                    Err(f) => {
                        return json_response(f.status, "application/json", json!({ "error": f.message }).to_string());
                    }
                }
            } else {
                Bytes::new()
            };
            return crate::admin::handle(gw, &parts.method, &path, parts.uri.query(), &parts.headers, body).await;
        }
        "/.well-known/jwks.json" => {
            return json_response(StatusCode::OK, "application/json", gw.auth.keys().jwks().to_string());
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
    let body = read_body(body, gw.limits.max_request_body_bytes).await;
    let ctx = Ctx {
        gw: gw.clone(),
        policy: gw.policy.load_full(),
        directory: gw.directory.snapshot(),
        face,
        public_base,
        request_id: request_id.to_owned(),
        arrived_ms: crate::oauth::keys::now_millis(),
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
async fn oauth_endpoint(gw: &Gateway, req: Request<Incoming>, peer: IpAddr) -> Response<Body> {
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
        "/oauth2/token" => gw.auth.token(headers, query, &body, peer).await,
        "/oauth2/revoke" => gw.auth.revoke(headers, query, &body, peer).await.map(|()| json!({})),
        _ => gw.auth.introspect(headers, query, &body, peer).await,
    };
    match result {
        Ok(answer) => no_store(json_response(StatusCode::OK, "application/json", answer.to_string())),
        Err(e) => {
            tracing::info!(target: "fhirgate::audit", event = "oauth-refused", endpoint = parts.uri.path(), error = e.code(), "request refused");
            oauth_error_response(&e)
        }
    }
}

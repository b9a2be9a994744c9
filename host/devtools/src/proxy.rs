//! The gateway's transport with nothing else: `fhirgate proxy` forwards each
//! GET to one upstream base through the same server (connection handling)
//! and the same upstream client (pooled keep-alive connections, timeouts,
//! body limit) as the gateway, without tokens, modules, routing, shaping or
//! the access log. It exists to measure what the gateway's policy path costs
//! over a bare proxy (`cargo bench -p fhirgate --bench compare`); it is not
//! a way to serve apps.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use fhirgate_core::failure::{Body, json_response};
use fhirgate_upstream::{ProviderSettings, Upstream};

/// Where the proxy forwards to, and how.
pub struct Proxy {
    upstream: Upstream,
    settings: ProviderSettings,
    /// The upstream base URL, without a trailing `/`.
    base: String,
}

impl Proxy {
    /// A proxy to `base` (an http(s) URL), with the gateway's default body
    /// limit and `timeout` for each request.
    pub fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let settings = ProviderSettings::new("upstream", timeout);
        Upstream::check(&settings)?;
        let max_body = fhirgate_gateway::config::HttpLimits::default().max_upstream_body_bytes;
        anyhow::ensure!(base.starts_with("http://") || base.starts_with("https://"), "`{base}` is not an http(s) URL");
        Ok(Proxy { upstream: Upstream::new(max_body), settings, base: base.trim_end_matches('/').to_owned() })
    }

    /// `GET /<path>?<query>` → `GET <base>/<path>?<query>`: the upstream's
    /// status and body; 502 when it cannot be reached, 405 for other methods.
    async fn forward(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() != Method::GET {
            return json_response(StatusCode::METHOD_NOT_ALLOWED, "application/json", r#"{"error":"GET only"}"#);
        }
        let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        // Nothing outside the upstream base: no dot segments, even encoded.
        let path = req.uri().path().to_ascii_lowercase().replace("%2e", ".");
        if path.split('/').any(|seg| seg == "." || seg == "..") || path.contains('\\') || path.contains("%2f") {
            return json_response(
                StatusCode::BAD_REQUEST,
                "application/json",
                r#"{"error":"path outside the upstream base"}"#,
            );
        }
        let url = format!("{}{target}", self.base);
        match self.upstream.get(&self.settings, &url, HeaderMap::new(), "application/fhir+json").await {
            Ok(answer) => json_response(answer.status, "application/fhir+json", answer.body),
            Err(e) => json_response(
                StatusCode::BAD_GATEWAY,
                "application/json",
                serde_json::json!({ "error": e.to_string() }).to_string(),
            ),
        }
    }
}

/// Serves `proxy` on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, proxy: Proxy, shutdown: impl std::future::Future<Output = ()>) {
    let proxy = Arc::new(proxy);
    fhirgate_http::server::serve_connections(
        listener,
        &fhirgate_gateway::config::HttpLimits::default(),
        None,
        move |req, _peer: IpAddr| {
            let proxy = proxy.clone();
            async move { proxy.forward(req).await }
        },
        shutdown,
    )
    .await;
}

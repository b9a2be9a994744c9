//! `/readyz`: whether this gateway should get traffic. Not while it is
//! stopping (SIGTERM turns it not-ready before it stops accepting), nor when
//! its store does not answer, nor when its directory was not confirmed
//! current for longer than [`MAX_LAG`] (it would route on stale approvals).
//! The answer names each check; nothing secret. `/livez` only says the
//! process answers. The same figures (and each provider's breaker) are
//! brought up to date for `/metrics` at each scrape.

use std::time::Duration;

use http::{Response, StatusCode};
use serde_json::json;

use fhirgate_core::failure::{Body, json_response, no_store};
use fhirgate_gateway::services::Services;
use fhirgate_upstream::BreakerState;

/// The directory is polled every 2 s: five missed polls is not a blip.
pub const MAX_LAG: Duration = Duration::from_secs(10);

/// How long the store may take to answer the probe.
const STORE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn ready(gw: &Services) -> Response<Body> {
    let stopping = gw.is_draining();
    let store = gw.store().ping(STORE_TIMEOUT).await;
    if let Err(e) = &store {
        tracing::warn!(error = %format!("{e:#}"), "readiness: the store does not answer");
    }
    let lag = gw.directory().lag();
    let ready = !stopping && store.is_ok() && lag <= MAX_LAG;
    let body = json!({
        "status": if ready { "ready" } else { "not-ready" },
        "checks": {
            "stopping": stopping,
            "store": if store.is_ok() { "ok" } else { "unreachable" },
            "directory_lag_ms": lag.as_millis() as u64,
            "directory_max_lag_ms": MAX_LAG.as_millis() as u64,
            "policy": { "partner": gw.policy().load().partner.to_string() },
        },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    no_store(json_response(status, "application/json", body.to_string()))
}

/// `GET /metrics`: for the scraper presenting the configured bearer token;
/// off (404) without `[metrics]`.
pub(crate) async fn metrics_answer(gw: &Services, headers: &http::HeaderMap) -> Response<Body> {
    let token = headers.get(http::header::AUTHORIZATION).and_then(fhirgate_gateway::oauth::bearer_token);
    match gw.metrics_token_matches(token.unwrap_or_default()) {
        None => json_response(
            StatusCode::NOT_FOUND,
            "application/json",
            r#"{"error":"Metrics are off: set [metrics] token_sha256 in gateway.toml and scrape with that bearer token."}"#,
        ),
        Some(true) => json_response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics(gw).await,
        ),
        Some(false) => {
            let mut resp = json_response(
                StatusCode::UNAUTHORIZED,
                "application/json",
                r#"{"error":"The metrics scraper's bearer token is required."}"#,
            );
            resp.headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static(r#"Bearer realm="metrics""#));
            resp
        }
    }
}

/// The metrics' text, with the figures read at the scrape brought up to
/// date first: each provider's breaker, the directory's lag and the store's
/// answer time.
pub(crate) async fn metrics(gw: &Services) -> String {
    let metrics = gw.runtime().metrics();
    for id in gw.directory().snapshot().provider_ids() {
        let state = match gw.upstream().breaker_state(&id) {
            None | Some(BreakerState::Closed) => "closed",
            Some(BreakerState::Open { .. }) => "open",
            Some(BreakerState::HalfOpen) => "half-open",
        };
        metrics.breaker(&id, state);
    }
    let started = std::time::Instant::now();
    let answered = gw.store().ping(STORE_TIMEOUT).await.ok().map(|()| started.elapsed());
    metrics.freshness(gw.directory().lag(), answered);
    metrics.render()
}

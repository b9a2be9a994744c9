//! Operators' health page, drawn from the access log and the providers'
//! circuit breakers: requests and server errors per minute over the last
//! hour and per hour over the last day, latency (mean and slowest) per
//! minute, and each provider's breaker.
//!
//! - `GET /portal/health`

use askama::Template as _;
use http::{Response, StatusCode};

use fhirgate_core::failure::Body;
use fhirgate_store::accounts::Role;
use fhirgate_upstream::BreakerState;

use super::{Session, chart, html, page, pages};

impl Session<'_> {
    pub(super) async fn health(self) -> Response<Body> {
        if !self.user.roles.contains(&Role::Operator) {
            return page(StatusCode::FORBIDDEN, "This page is for the gateway's operators.".into());
        }
        let gw = self.portal.gw;
        let now = fhirgate_core::clock::now_seconds() as i64;
        let mut charts = Vec::new();
        // What was recorded before this page is on it: one flush for both windows.
        gw.access().flush().await;
        for (title, bucket, count, label, latency) in [
            ("Last hour, per minute (UTC)", 60, 60, chart::hour_label as fn(i64) -> String, true),
            ("Last 24 hours, per hour (UTC)", 3600, 24, chart::hour_label, false),
        ] {
            let since = chart::starts(now, bucket, count).next().unwrap_or(now);
            let traffic = match gw.access().traffic(since * 1000, bucket * 1000).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "portal: the access log's traffic could not be read");
                    return page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The access log is unavailable; try again shortly.".into(),
                    );
                }
            };
            let requests: Vec<(i64, i64, i64)> =
                traffic.iter().map(|t| (t.start_ms / 1000, t.requests, t.errors)).collect();
            let (total, errors) =
                (requests.iter().map(|r| r.1).sum::<i64>(), requests.iter().map(|r| r.2).sum::<i64>());
            let denied: i64 = traffic.iter().map(|t| t.denied).sum();
            let summary = format!("requests: {total}, server errors: {errors}, refused as unauthorized: {denied}");
            let drawn = chart::chart(&requests, now, (bucket, count), label, ["requests", "server errors"], summary);
            charts.push((format!("Requests — {title}"), drawn));
            if latency {
                let points: Vec<(i64, i64, i64)> = traffic
                    .iter()
                    .map(|t| (t.start_ms / 1000, t.mean_latency_us / 1000, t.max_latency_us / 1000))
                    .collect();
                let slowest = points.iter().map(|p| p.2).max().unwrap_or(0);
                let summary = format!("slowest request: {slowest} ms");
                let drawn = chart::chart(&points, now, (bucket, count), label, ["mean ms", "slowest ms"], summary);
                charts.push((format!("Latency — {title}"), drawn));
            }
        }
        let snapshot = gw.directory().snapshot();
        let mut providers: Vec<pages::BreakerLine> = snapshot
            .provider_ids()
            .into_iter()
            .map(|id| {
                let (state, healthy) = match gw.upstream().breaker_state(&id) {
                    None => ("not called since start".to_owned(), true),
                    Some(BreakerState::Closed) => ("closed: requests flow".to_owned(), true),
                    Some(BreakerState::HalfOpen) => ("half open: the next request probes".to_owned(), false),
                    Some(BreakerState::Open { retry_after }) => {
                        (format!("open: refused for {} s more", retry_after.as_secs().max(1)), false)
                    }
                };
                pages::BreakerLine {
                    base_url: snapshot.provider(&id).map(|p| p.base_url.clone()).unwrap_or_default(),
                    id,
                    state,
                    healthy,
                }
            })
            .collect();
        providers.sort_by(|a, b| a.healthy.cmp(&b.healthy).then_with(|| a.id.cmp(&b.id)));
        let (written, failed) = gw.access().stats();
        let view = pages::Health { charts, providers, written, failed };
        match view.render() {
            Ok(t) => html(StatusCode::OK, t),
            Err(e) => page(StatusCode::INTERNAL_SERVER_ERROR, format!("The page could not be drawn: {e}")),
        }
    }
}

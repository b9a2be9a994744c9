//! Phase 5, forward: the shaped request to the provider over the pooled
//! client, within the provider's time budget, retries and circuit breaker.
//! Between the two shaping calls: the only phase that waits on a hospital.

use std::sync::Arc;

use fhirgate_core::Version;
use fhirgate_core::failure::Failure;
use fhirgate_upstream::{UpstreamError, UpstreamResponse};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::Ctx;
use crate::directory::ProviderRoute;

/// What the provider answered, and what the shaping module's reads need to
/// reach the same provider the same way.
pub(super) struct Forwarded {
    pub(super) response: UpstreamResponse,
    /// The media type asked for, in the provider's FHIR version.
    pub(super) accept: &'static str,
    /// The routing answer's headers, without the gateway's own.
    pub(super) routing_headers: HeaderMap,
}

/// GETs `url` from `provider` with the routing answer's `headers`.
pub(super) async fn forward(
    ctx: &Ctx,
    provider: &ProviderRoute,
    url: &str,
    mut headers: HeaderMap,
) -> Result<Forwarded, Failure> {
    // Reads a shaping module makes go out with the same routing headers.
    let routing_headers = headers.clone();
    if let Ok(v) = HeaderValue::from_str(&ctx.request_id) {
        headers.insert(HeaderName::from_static("x-request-id"), v);
    }
    let accept = match provider.fhir_version {
        Version::Dstu2 => "application/json+fhir",
        _ => "application/fhir+json",
    };
    let started = std::time::Instant::now();
    let exchanged = ctx.gw.upstream().get(&provider.settings, url, headers, accept).await;
    let outcome = match &exchanged {
        Ok(r) if r.status.is_success() || r.status.is_redirection() => "2xx-3xx",
        Ok(r) if r.status.is_client_error() => "4xx",
        Ok(_) => "5xx",
        Err(e) => error_kind(e),
    };
    ctx.gw.runtime().metrics().upstream_exchange(&Arc::from(provider.id.as_str()), outcome, started.elapsed());
    let response = exchanged.map_err(|e| upstream_failure(ctx, provider, e))?;
    Ok(Forwarded { response, accept, routing_headers })
}

/// The metrics' name of a failed exchange.
fn error_kind(e: &UpstreamError) -> &'static str {
    match e {
        UpstreamError::Timeout(_) => "timeout",
        UpstreamError::Connect | UpstreamError::Refused => "connect",
        UpstreamError::CircuitOpen { .. } => "circuit-open",
        UpstreamError::Auth(_) => "auth",
        UpstreamError::Tls(_) => "tls",
        _ => "other",
    }
}

/// How a failed exchange with `provider` is told to the app.
fn upstream_failure(ctx: &Ctx, provider: &ProviderRoute, e: UpstreamError) -> Failure {
    let message = format!("Provider `{}`: {e}.", provider.id);
    match e {
        UpstreamError::Timeout(_) => Failure::provider_timeout(message),
        UpstreamError::Connect => Failure::provider_unreachable(message),
        UpstreamError::CircuitOpen { retry_after } => Failure::provider_circuit_open(
            format!("Provider `{}` is failing; the gateway is giving it time to recover.", provider.id),
            retry_after.as_secs_f64().ceil() as u64,
        ),
        // The details (a file name, the provider's token endpoint's
        // answer) are for the operator's log, not the app.
        UpstreamError::Tls(_) | UpstreamError::Auth(_) => {
            tracing::warn!(request_id = %ctx.request_id, provider = %provider.id, error = %e, "upstream credentials or TLS failed");
            Failure::provider_bad_answer(format!(
                "The gateway could not authenticate to provider `{}`; the operator has been told.",
                provider.id
            ))
        }
        _ => Failure::provider_bad_answer(message),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use fhirgate_core::failure::Fault;
    use http::StatusCode;

    use super::super::testing;
    use super::*;

    #[tokio::test]
    async fn a_failed_exchange_is_the_providers_fault_told_without_its_details() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let provider = ctx.directory.resolve(testing::TENANT, "demo").unwrap();
        let failure = |e| upstream_failure(&ctx, &provider, e);
        let f = failure(UpstreamError::Timeout(15_000));
        assert_eq!((f.fault, f.status), (Fault::Provider, StatusCode::GATEWAY_TIMEOUT));
        let f = failure(UpstreamError::Connect);
        assert_eq!((f.fault, f.status), (Fault::Provider, StatusCode::BAD_GATEWAY));
        let f = failure(UpstreamError::CircuitOpen { retry_after: Duration::from_millis(2500) });
        assert_eq!((f.status, f.retry_after), (StatusCode::SERVICE_UNAVAILABLE, Some(3)));
        let f = failure(UpstreamError::Tls("/etc/fhirgate/provider-secrets/ca.pem: no such file".into()));
        assert_eq!(f.status, StatusCode::BAD_GATEWAY);
        assert!(!f.message.contains("provider-secrets"), "{}", f.message);
    }
}

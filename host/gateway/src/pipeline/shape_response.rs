//! Phase 6, shape response: the provider's answer in the client's FHIR
//! version, its links on the gateway. After forwarding, since it needs the
//! answer; a fault is an error (the app must never receive a body in the
//! wrong version) unless the policy lets a same-version answer through.

use std::sync::Arc;

use fhirgate_core::failure::Failure;
use fhirgate_sandbox::bindings::shaping::{Exchange, Shaped};
use fhirgate_sandbox::{GuestFault, Lease, Role, UpstreamReads};
use fhirgate_upstream::reads::ProviderReads;
use http::StatusCode;

use super::forward::Forwarded;
use super::{Ctx, passes_through};
use crate::directory::ProviderRoute;
use crate::policy::{BoundModule, invoke};

/// The provider's answer in the client's version, by `shaper`, which may
/// read from the same provider, for the same tenant, to complete it (a
/// Location's name on an Encounter).
pub(super) async fn shape_response(
    ctx: &Ctx,
    shaper: &BoundModule,
    lease: &mut Lease,
    tenant: &str,
    provider: &ProviderRoute,
    exchange: &Exchange,
    forwarded: Forwarded,
) -> Result<(StatusCode, Vec<u8>), Failure> {
    let Forwarded { response: upstream, accept, routing_headers } = forwarded;
    // Each call its own allowance of reads; all share the read cache.
    let reads = || -> Option<Arc<dyn UpstreamReads>> {
        Some(Arc::new(ProviderReads::new(
            ctx.gw.upstream().clone(),
            &provider.settings,
            &provider.base_url,
            accept,
            tenant,
            routing_headers.clone(),
            &ctx.request_id,
            ctx.gw.read_cache().clone(),
        )))
    };
    let context = |b: &BoundModule| {
        let mut call = ctx.call_ctx_of(b);
        call.reads = reads();
        call
    };
    let fallback = |fault: &GuestFault| {
        tracing::warn!(request_id = %ctx.request_id, fault = fault.kind(), provider = %provider.id,
            "the shaping module failed; the provider's answer goes through unshaped (on_fault = \"pass-through\")");
        // A provider's failure or challenge is not the client's to see.
        let status = match upstream.status.as_u16() {
            500..=599 | 401 | 407 => 502,
            s => s,
        };
        Shaped { status, body: rebase_body(&upstream.body, &provider.base_url, &ctx.gateway_base()) }
    };
    let on_fault: Option<invoke::Fallback<'_, Shaped>> = passes_through(ctx, exchange).then(|| Box::new(fallback) as _);
    let call =
        invoke::ShapeResponse { lease, tenant, exchange, status: upstream.status.as_u16(), body: &upstream.body };
    let shaped = invoke::invoke(&ctx.policy, shaper, &context, call, None, on_fault).await?;
    let status = StatusCode::from_u16(shaped.status)
        .map_err(|_| Failure::module(Role::Shaping, format!("answered with invalid status {}", shaped.status)))?;
    Ok((status, shaped.body))
}

/// `body` with the provider's base URL replaced by the gateway's wherever a
/// URL starts with it (followed by `/`, `?`, `#`, a quote or the end), also
/// where JSON escapes its slashes: an unshaped answer must not show the app
/// where the provider is.
fn rebase_body(body: &[u8], provider_base: &str, gateway_base: &str) -> Vec<u8> {
    let from = provider_base.trim_end_matches('/');
    if from.is_empty() {
        return body.to_vec();
    }
    let escaped_from = from.replace('/', "\\/");
    let escaped_to = gateway_base.replace('/', "\\/");
    let pairs = [(from.as_bytes(), gateway_base.as_bytes()), (escaped_from.as_bytes(), escaped_to.as_bytes())];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    'scan: while i < body.len() {
        if body[i] == from.as_bytes()[0] {
            for (pattern, replacement) in &pairs {
                if body[i..].starts_with(pattern) {
                    let next = body.get(i + pattern.len()).copied();
                    if matches!(next, None | Some(b'/' | b'?' | b'#' | b'"' | b'\\')) {
                        out.extend_from_slice(replacement);
                        i += pattern.len();
                        continue 'scan;
                    }
                }
            }
        }
        out.push(body[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::rebase_body;

    #[test]
    fn only_whole_bases_are_replaced_escaped_or_not() {
        let body = br#"{"a":"https://p/fhir/Patient/1","b":"https://p/fhir","c":"https://p/fhir-internal/x","d":"https:\/\/p\/fhir\/Patient\/2","e":"https://p/fhir?x=1"}"#;
        let out = String::from_utf8(rebase_body(body, "https://p/fhir/", "https://g/stu3")).unwrap();
        assert_eq!(
            out,
            r#"{"a":"https://g/stu3/Patient/1","b":"https://g/stu3","c":"https://p/fhir-internal/x","d":"https:\/\/g\/stu3\/Patient\/2","e":"https://g/stu3?x=1"}"#
        );
    }

    use fhirgate_core::Version;
    use fhirgate_core::failure::Fault;
    use fhirgate_sandbox::bindings::types::Interaction;
    use fhirgate_upstream::UpstreamResponse;
    use http::{HeaderMap, StatusCode};

    use super::super::forward::Forwarded;
    use super::super::{exchange, testing};
    use super::shape_response;

    /// What the demo shaper makes of the R4 provider answering `status`,
    /// `body` to a read, on `face`.
    async fn shaped(
        face: Version,
        status: u16,
        body: &str,
    ) -> Result<(StatusCode, serde_json::Value), fhirgate_core::Failure> {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, face);
        let provider = ctx.directory.resolve(testing::TENANT, "demo").unwrap();
        let exchange = exchange(&ctx, &provider, Interaction::Read);
        let forwarded = Forwarded {
            response: UpstreamResponse { status: StatusCode::from_u16(status).unwrap(), body: body.to_owned().into() },
            accept: "application/fhir+json",
            routing_headers: HeaderMap::new(),
        };
        let shaper = ctx.policy.shaper_for(testing::TENANT);
        let mut lease = shaper.lease(testing::TENANT);
        let (status, body) =
            shape_response(&ctx, shaper, &mut lease, testing::TENANT, &provider, &exchange, forwarded).await?;
        Ok((status, serde_json::from_slice(&body).expect("a JSON answer")))
    }

    const R4_PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","name":[{"family":"Chau","given":["Hugh"]}],
        "gender":"male","birthDate":"1970-01-02","generalPractitioner":[{"reference":"Practitioner/d1","display":"Dr Ada"}]}"#;

    #[tokio::test]
    async fn an_r4_patient_reaches_each_face_in_its_version() {
        let (status, stu3) = shaped(Version::Stu3, 200, R4_PATIENT).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stu3["name"][0]["family"], "Chau", "STU3: family is a string");
        assert_eq!(stu3["generalPractitioner"][0]["display"], "Dr Ada");
        let (_, dstu2) = shaped(Version::Dstu2, 200, R4_PATIENT).await.unwrap();
        assert_eq!(dstu2["name"][0]["family"], serde_json::json!(["Chau"]), "DSTU2: family is a list");
        assert_eq!(dstu2["careProvider"][0]["display"], "Dr Ada");
    }

    #[tokio::test]
    async fn an_answer_that_is_not_fhir_is_the_providers_fault() {
        let f = shaped(Version::Stu3, 200, "<html>maintenance</html>").await.unwrap_err();
        assert_eq!((f.status, f.fault), (StatusCode::BAD_GATEWAY, Fault::Provider));
    }
}

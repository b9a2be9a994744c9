//! Phase 4, shape request: the routed request as the provider's FHIR version
//! understands it (search parameters renamed, paths moved), by the tenant's
//! shaping module. After routing, since it needs the provider's version;
//! a fault is an error, never an unshaped request, unless the policy passes
//! faults through and the provider speaks the client's version.

use fhirgate_core::failure::Failure;
use fhirgate_sandbox::Role;
use fhirgate_sandbox::bindings::routing::Target;
use fhirgate_sandbox::bindings::shaping::{Exchange, UpstreamRequest};

use super::route::{check_params, check_path};
use super::{Ctx, passes_through};
use crate::policy::{BoundModule, invoke};
use fhirgate_sandbox::{GuestFault, Lease};

/// The upstream request `shaper` makes of `target`, held to the same limits
/// as a routing answer.
pub(super) async fn shape_request(
    ctx: &Ctx,
    shaper: &BoundModule,
    lease: &mut Lease,
    tenant: &str,
    exchange: &Exchange,
    target: &Target,
) -> Result<UpstreamRequest, Failure> {
    let upstream = UpstreamRequest { path: target.path.clone(), params: target.params.clone() };
    let fallback = |fault: &GuestFault| {
        tracing::warn!(request_id = %ctx.request_id, fault = fault.kind(),
            "the shaping module failed; the request goes to the provider as routed (on_fault = \"pass-through\")");
        upstream.clone()
    };
    let on_fault: Option<invoke::Fallback<'_, UpstreamRequest>> =
        passes_through(ctx, exchange).then(|| Box::new(fallback) as _);
    let call = invoke::ShapeRequest { lease, tenant, exchange, request: &upstream };
    let shaped = invoke::invoke(&ctx.policy, shaper, &|b| ctx.call_ctx_of(b), call, None, on_fault).await?;
    check_path(&shaped.path).map_err(|m| Failure::module(Role::Shaping, m))?;
    check_params(&shaped.params).map_err(|m| Failure::module(Role::Shaping, m))?;
    Ok(shaped)
}

#[cfg(test)]
mod tests {
    use fhirgate_core::Version;

    use super::super::{exchange, route, testing};
    use super::*;

    /// The routed request for `rest` on `face`, through the demo shaper.
    async fn shaped(face: Version, rest: &str) -> Result<UpstreamRequest, Failure> {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, face);
        let request = testing::get(&ctx, rest);
        let (target, provider) = route::route(&ctx, &testing::claims(), &request).await.unwrap();
        let exchange = exchange(&ctx, &provider, request.interaction);
        let shaper = ctx.policy.shaper_for(testing::TENANT);
        shape_request(&ctx, shaper, &mut shaper.lease(testing::TENANT), testing::TENANT, &exchange, &target).await
    }

    #[tokio::test]
    async fn a_dstu2_medication_order_search_goes_to_the_r4_provider_as_medication_request() {
        let shaped = shaped(Version::Dstu2, "MedicationOrder?patient=p1").await.unwrap();
        assert_eq!(shaped.path, "MedicationRequest");
        assert!(shaped.params.iter().any(|p| p.name == "patient" && p.value == "p1"), "{:?}", shaped.params);
    }

    #[tokio::test]
    async fn the_shapers_denial_is_the_answer() {
        // XML is not spoken here: the shaper refuses, and that is final.
        let f = shaped(Version::Stu3, "Patient?_format=xml").await.unwrap_err();
        assert_eq!(f.status, http::StatusCode::NOT_ACCEPTABLE);
    }
}

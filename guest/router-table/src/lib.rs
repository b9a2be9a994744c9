//! Default routing module: maps the token's tenant to a provider, through a
//! table in the module configuration or else the provider the gateway's
//! directory has active for the tenant, and forwards the request path and
//! parameters unchanged.

use std::collections::BTreeMap;

use fhirgate_guest_sdk::deny;
use fhirgate_guest_sdk::types::{Claims, Denial, Interaction, Request};
use serde::Deserialize;

use fhirgate_guest_sdk::router::Target;

/// Module configuration (`[modules.routing.config]` in the policy).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Tenant id (GUID, any case) → provider id. Optional: a tenant not
    /// listed goes to the first provider the directory has active for it.
    #[serde(default)]
    pub tenants: BTreeMap<String, String>,
}

/// Picks the route for `request` made under `claims`; `active` lists the
/// providers the directory has active for the tenant, in approval order.
pub fn decide(config: &Config, claims: &Claims, request: &Request, active: &[String]) -> Result<Target, Denial> {
    let provider = config
        .tenants
        .iter()
        .find(|(tenant, _)| tenant.eq_ignore_ascii_case(&claims.tenant_id))
        .map(|(_, provider)| provider.clone())
        .or_else(|| active.first().cloned())
        .ok_or_else(|| deny(403, "unknown-tenant", "No provider is active for this token's tenant."))?;
    let path = match request.interaction {
        // `POST Type/_search` arrives with its form body already in `params`;
        // upstream it is the plain type-level search.
        Interaction::Search => request.resource_type.clone().unwrap_or_default(),
        Interaction::Read | Interaction::Vread => request.path.clone(),
        _ => {
            return Err(deny(405, "not-supported", "This interaction is not routed by the table router."));
        }
    };
    Ok(Target { provider_id: provider, path, params: request.params.clone(), headers: Vec::new() })
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Router;

impl fhirgate_guest_sdk::router::Guest for Router {
    fn route(claims: Claims, request: Request) -> Result<Target, Denial> {
        let config: Config = fhirgate_guest_sdk::config().map_err(|m| deny(500, "module-config", m))?;
        let active: Vec<String> = if config.tenants.keys().any(|t| t.eq_ignore_ascii_case(&claims.tenant_id)) {
            Vec::new()
        } else {
            fhirgate_guest_sdk::directory::active_providers(&claims.tenant_id).into_iter().map(|p| p.id).collect()
        };
        decide(&config, &claims, &request, &active)
    }
}

// Exported only when built as a component: the export symbols' names (with
// `:` and `@`) cannot be linked into a native shared library, and native
// builds exist only to unit-test the logic.
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_router!(Router);

// Each call's values are freed before the next: a per-call arena serves them.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: fhirgate_guest_sdk::alloc::CallArena = fhirgate_guest_sdk::alloc::CallArena::new();

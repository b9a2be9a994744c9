//! Default shaping module: rewrites the app's search parameters for the
//! provider's FHIR version, and the provider's JSON into the DSTU2 or STU3 the
//! app reads, with every link and `fullUrl` pointing at the gateway.
//!
//! Layout:
//! - [`request`]: resource type renames and the search parameters each face
//!   accepts, as the provider's version writes them;
//! - [`response`]: status handling, Bundle walking, provider URLs and
//!   Location displays;
//! - [`resources`]: per-resource conversions between versions, one module
//!   per resource family.
//!
//! The conversion code is plain Rust over `serde_json` values, so the same
//! code compiles natively for tests and benchmarks.

pub mod request;
pub mod resources;
pub mod response;

use fhirgate_guest_sdk::types::Denial;

use fhirgate_guest_sdk::shaper::{Exchange, Shaped, UpstreamRequest};

pub use fhirgate_guest_sdk::shaper::exports::fhirgate::policy::shaping as wit;

// Shaping builds and drops a whole JSON document per call: a bump arena
// reset between calls serves that far faster than a general allocator.
#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: fhirgate_guest_sdk::alloc::CallArena = fhirgate_guest_sdk::alloc::CallArena::new();

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Shaper;

impl fhirgate_guest_sdk::shaper::Guest for Shaper {
    fn shape_request(exchange: Exchange, request: UpstreamRequest) -> Result<UpstreamRequest, Denial> {
        request::shape(&exchange, request)
    }

    fn shape_response(exchange: Exchange, status: u16, body: Vec<u8>) -> Result<Shaped, Denial> {
        response::shape_with(&exchange, status, &body, &ProviderLookup)
    }
}

/// Reads through the gateway's `upstream` import: from the provider that
/// answered this request only. A read that fails leaves the display out.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct ProviderLookup;

impl response::Lookup for ProviderLookup {
    fn read(&self, path: &str) -> Option<serde_json::Value> {
        match fhirgate_guest_sdk::upstream::read(path) {
            Ok(body) => serde_json::from_slice(&body).ok(),
            Err(e) => {
                let reason = match e {
                    fhirgate_guest_sdk::upstream::ReadError::NotAllowed(m) => m,
                    fhirgate_guest_sdk::upstream::ReadError::NotFound => "not found".into(),
                    fhirgate_guest_sdk::upstream::ReadError::Failed(m) => m,
                };
                fhirgate_guest_sdk::log::debug("a Location could not be read", &[("path", path), ("reason", &reason)]);
                None
            }
        }
    }
}

// Exported only when built as a component: the export symbols' names (with
// `:` and `@`) cannot be linked into a native shared library, and native
// builds exist only to unit-test the logic.
#[cfg(target_arch = "wasm32")]
fhirgate_guest_sdk::export_shaper!(Shaper);

//! Host-side bindings generated from `wit/` (the `gateway-module` world names
//! every import and every role's export; a module exporting fewer roles still
//! links, and is called through the per-interface indices).

wasmtime::component::bindgen!({
    world: "gateway-module",
    path: "../wit",
});

pub use exports::fhirgate::policy::{routing, shaping, token_validation};
pub use fhirgate::policy::{host, issuer, types};

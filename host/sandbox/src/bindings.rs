//! Host-side bindings generated from `wit/` (the `gateway-module` world names
//! every import and every role's export; a module exporting fewer roles still
//! links, and is called through the per-interface indices).

wasmtime::component::bindgen!({
    world: "gateway-module",
    path: "../../wit",
    // Exports are called asynchronously so a running module yields to the
    // executor at every epoch tick.
    exports: { default: async },
    // Imports are quick and stay synchronous, except the upstream read,
    // which waits on the provider.
    imports: { "fhirgate:policy/upstream.read": async },
});

pub use self::fhirgate::policy::{crypto, directory, host, issuer, types, upstream};
pub use exports::fhirgate::policy::{routing, shaping, token_validation};

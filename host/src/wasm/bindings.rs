//! Host-side bindings generated from `wit/` (the `gateway-module` world names
//! every import and every role's export; a module exporting fewer roles still
//! links, and is called through the per-interface indices).

wasmtime::component::bindgen!({
    world: "gateway-module",
    path: "../wit",
    // Exports are called asynchronously so a running module yields to the
    // executor at every epoch tick; imports are quick and stay synchronous.
    exports: { default: async },
});

pub use self::fhirgate::policy::{crypto, directory, host, issuer, types};
pub use exports::fhirgate::policy::{routing, shaping, token_validation};

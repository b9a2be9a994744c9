//! fhirgate-devtools: what ships beside the product for trying it, checking
//! providers and writing modules, kept out of the gateway itself.
//!
//! Layout:
//! - [`demo`]: the synthetic provider (R4, STU3 or DSTU2) and `fhirgate demo`;
//! - [`conformance`]: `check-provider`, the app's call set against a provider;
//! - [`proxy`]: the bare proxy the comparative benchmark measures against;
//! - [`scaffold`]: `fhirgate guest new`, a module crate to start from.

pub use fhirgate_gateway::conformance;
pub mod demo;
pub mod proxy;
pub mod scaffold;

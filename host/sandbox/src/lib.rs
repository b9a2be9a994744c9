//! fhirgate-sandbox: the WebAssembly runtime. One engine, modules compiled
//! once and pre-instantiated, a fresh sandboxed instance per call with a time
//! limit and a memory cap. It knows nothing of the gateway: what the host
//! imports answer (the directory, upstream reads, the issuer) reaches it
//! through [`CallContext`] and the traits in [`state`].
//!
//! Layout:
//! - [`runtime`]: the engine, the linker with the host imports, the epoch ticker;
//! - [`module`]: a loaded module and its typed calls per role;
//! - [`state`]: what a store carries, and the host imports' implementation;
//! - [`crypto`]: the native signature checks behind the `crypto` import;
//! - [`metrics`]: per-module call figures;
//! - [`harness`]: loading and calling a module alone, with its host imports
//!   supplied by the test (no server);
//! - [`cases`]: the case files a module ships, run against its `.wasm`.

pub mod bindings;
pub mod cases;
pub mod crypto;
pub mod harness;
pub mod metrics;
pub mod module;
pub mod runtime;
pub mod state;

pub use module::{GuestFault, Module, Role};
pub use runtime::{Limits, Runtime};
pub use state::{ActiveProviders, CallContext, IssuerFacts, StaticDirectory, UpstreamReads};

use bindings::types::FhirVersion;
use fhirgate_core::Version;

/// A FHIR release as the WIT contract spells it.
pub fn wit_version(v: Version) -> FhirVersion {
    match v {
        Version::Dstu2 => FhirVersion::Dstu2,
        Version::Stu3 => FhirVersion::Stu3,
        Version::R4 => FhirVersion::R4,
    }
}

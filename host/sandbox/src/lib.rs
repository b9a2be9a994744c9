//! fhirgate-sandbox: the WebAssembly runtime. One engine, modules compiled
//! once and pre-instantiated, sandboxed instances with a time limit per call
//! and a memory cap. It knows nothing of the gateway: what the host
//! imports answer (the directory, upstream reads, the issuer) reaches it
//! through [`CallContext`] and the traits in [`state`].
//!
//! Layout:
//! - [`runtime`]: the engine, the linker with the host imports, the epoch ticker;
//! - [`calls`]: the role exports' calls and answers as values;
//! - [`module`]: a loaded module and its typed calls per role;
//! - [`reuse`]: instances kept for a request's calls and reused across
//!   requests of one partner and tenant, and the promise that bounds it;
//! - [`twin`]: the default modules' code run natively, as a benchmark's
//!   baseline;
//! - [`state`]: what a store carries, and the host imports' implementation;
//! - [`crypto`]: the native signature checks behind the `crypto` import;
//! - [`metrics`]: per-module call figures;
//! - [`harness`]: loading and calling a module alone, with its host imports
//!   supplied by the test (no server);
//! - [`cases`]: the case files a module ships, run against its `.wasm`.

pub mod bindings;
pub mod calls;
pub mod cases;
pub mod crypto;
pub mod harness;
pub mod metrics;
pub mod module;
pub mod reuse;
pub mod runtime;
pub mod state;
pub mod stderr;
pub mod twin;

pub use calls::{Answer, Ask, Outcome};
pub use module::{GuestFault, Module, ModuleLimits, Role};
pub use reuse::{Lease, Pool, Reuse};
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

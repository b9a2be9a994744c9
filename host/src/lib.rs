//! fhirgate: a FHIR interop gateway. It issues OAuth client-credentials tokens,
//! routes each FHIR request to the provider mapped to the token's tenant, and
//! shapes the provider's answer into the DSTU2 or STU3 the app reads — with
//! authentication, routing and shaping decided by sandboxed WebAssembly
//! policy modules.
//!
//! Layout:
//! - [`admin`]: the admin HTTP API over the client registry;
//! - [`config`]: the gateway's own configuration file;
//! - [`conformance`]: `check-provider`, the app's call set against a provider;
//! - [`policy`]: a partner's policy bundle (modules, providers, tenants);
//! - [`activation`]: a changed policy checked and swapped in while serving;
//! - [`shadow`]: a candidate router deciding beside the active one, compared;
//! - [`scaffold`]: `fhirgate guest new`, a module crate to start from;
//! - [`directory`]: tenants → providers, onboarding with approval;
//! - [`server`]: HTTP serving and endpoint dispatch, and the [`run`] entry;
//! - [`pipeline`]: the FHIR request phases (authenticate → route → forward →
//!   shape → respond/audit);
//! - [`paging`]: opaque, sealed cursors for search page links;
//! - [`oauth`]: the authorization server (clients, signing keys, token endpoint);
//! - [`fhir`]: what the host itself says in FHIR (metadata, OperationOutcome);
//! - [`store`]: persistent state (client registry, secrets, audit of changes);
//! - [`upstream`]: the HTTP client to providers (pools, TLS, timeouts, retries,
//!   circuit breakers, upstream credentials);
//! - [`wasm`]: the WebAssembly runtime and the modules;
//! - [`metrics`]: the figures at `/metrics` (Prometheus text format);
//! - [`error`]: the one place failures are classified and answered;
//! - [`demo`]: the demo provider and the `fhirgate demo` wiring.

/// Writes a line to standard output, for a person or a script reading it. A
/// reader that went away (`fhirgate … | head`) is not the command's failure:
/// the line is dropped, where `println!` would panic.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stdout(), $($arg)*);
    }};
}

pub mod activation;
pub mod admin;
pub mod config;
pub mod conformance;
pub mod demo;
pub mod directory;
pub mod error;
pub mod fhir;
pub mod metrics;
pub mod oauth;
pub mod paging;
pub mod pipeline;
pub mod policy;
pub mod proxy;
pub mod scaffold;
pub mod server;
pub mod shadow;
pub mod store;
pub mod upstream;
pub mod wasm;

pub use server::{Gateway, run};

//! fhirgate-gateway: the gateway's domain and its request pipeline, with no
//! listener. It issues OAuth client-credentials tokens, routes each FHIR
//! request to the provider approved for the token's tenant, and shapes the
//! provider's answer into the DSTU2 or STU3 the app reads, with
//! authentication, routing and shaping decided by sandboxed WebAssembly
//! policy modules.
//!
//! Layout:
//! - [`config`]: the gateway's own configuration file;
//! - [`policy`]: a partner's policy bundle (modules, providers, tenants),
//!   [`policy::invoke`], the one way a phase calls a module (served module,
//!   shadow sample, faults and denials as failures), and [`policy::shadow`],
//!   a candidate module deciding beside the active one;
//! - [`access`]: the access log's writer and its AuditEvent rendering;
//! - [`activation`]: a changed policy checked and swapped in while serving;
//! - [`directory`]: tenants → providers, onboarding with approval;
//! - [`oauth`]: the authorization server (one client registry, signing keys,
//!   token endpoint, verdict cache, revocation, throttling);
//! - [`capability`]: the capability statement at `/metadata`;
//! - [`paging`]: opaque, sealed cursors for search page links;
//! - [`pipeline`]: the FHIR request phases (parse → authenticate → route →
//!   shape request → forward → shape response → seal links → audit);
//! - [`principal`]: who calls the admin API;
//! - [`services`]: [`Services`], what the pipeline and the admin API use;
//! - [`backup`]: a data directory's consistent backup and checked restore;
//! - [`app`]: the one composition root, built from config, with the
//!   background tasks it starts and stops.

pub mod access;
pub mod activation;
pub mod app;
pub mod backup;
pub mod capability;
pub mod config;
pub mod conformance;
pub mod directory;
pub mod forwarded;
pub mod hosts;
pub mod oauth;
pub mod oidc;
pub mod paging;
pub mod pipeline;
pub mod policy;
pub mod principal;
pub mod services;

pub use app::App;
pub use services::{GatewayState, Services};

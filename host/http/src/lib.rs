//! fhirgate-http: the gateway on the wire. Listeners and connection serving
//! (HTTP/1.1 and HTTP/2, graceful drain), the route table, and the handlers
//! of the FHIR faces, the OAuth endpoints and the admin API; the pipeline
//! itself is [`fhirgate_gateway::pipeline`].
//!
//! Layout:
//! - [`server`]: binding, serving connections (HTTPS with [`server::Https`]),
//!   each request's id;
//! - [`tls`]: the HTTPS listener's certificate, reloaded when its files change;
//! - `conn`: connection caps and the watchdog of idle, slow and stalled
//!   connections;
//! - `body`: request bodies read up to a limit and a deadline;
//! - `routes`: the route table, path → surface;
//! - `fhir`: the FHIR faces (discovery, then the pipeline);
//! - `oauth`: the token, revocation and introspection endpoints;
//! - [`admin`]: the admin API's handlers, by concern.

pub mod admin;
mod body;
mod conn;
mod fhir;
mod oauth;
mod portal;
mod readiness;
mod routes;
pub mod server;
pub mod tls;

pub use server::{bind, run, serve_connections};

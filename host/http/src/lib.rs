//! fhirgate-http: the gateway on the wire. Listeners and connection serving
//! (HTTP/1.1 and HTTP/2, graceful drain), the route table, and the handlers
//! of the FHIR faces, the OAuth endpoints and the admin API; the pipeline
//! itself is [`fhirgate_gateway::pipeline`].
//!
//! Layout:
//! - [`server`]: binding, serving connections, dispatching each request;
//! - [`admin`]: the admin API's handlers.

pub mod admin;
pub mod server;

pub use server::{bind, run, serve_connections};

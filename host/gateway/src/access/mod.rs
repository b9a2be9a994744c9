//! The access audit trail: one append-only record per brokered FHIR access
//! (and per entry of a batch), queued off the request path and written in
//! batches by [`writer::AccessLog`], and read back as records or as FHIR R4
//! AuditEvents ([`audit_event`]). The rows live in the store, behind
//! [`fhirgate_store::access::AccessRepository`].
//!
//! Layout:
//! - [`writer`]: the queue and the writer task, group commit, flush;
//! - [`audit_event`]: records as AuditEvent resources and Bundles.

pub mod audit_event;
pub mod writer;

pub use audit_event::{audit_event, audit_event_bundle, audit_event_id};
pub use fhirgate_store::access::{AccessCursor, AccessQuery, AccessRecord, Outcome, Traffic};
pub use writer::{AccessLog, Commit};

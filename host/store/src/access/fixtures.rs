//! Rows for tests of this crate and the ones above it (feature `fixtures`).

use super::{AccessRecord, Outcome};

/// 2026-11-23T22:30:00.123Z
pub const T0: i64 = 1_795_473_000_123;

/// A successful read of `Patient/p1` by `client-a` for `tenant-a` through
/// `provider-a`.
pub fn rec(request_id: &str, part: u32, at_ms: i64) -> AccessRecord {
    AccessRecord {
        request_id: request_id.to_owned(),
        part,
        at_ms,
        client_id: Some("client-a".into()),
        tenant_id: Some("tenant-a".into()),
        provider_id: Some("provider-a".into()),
        face: "stu3".into(),
        interaction: "read".into(),
        resource_type: Some("Patient".into()),
        patient_id: Some("p1".into()),
        outcome: Outcome::Success,
        status: 200,
        latency_us: 12_345,
    }
}

/// A request refused before anyone was authenticated: no client, tenant,
/// provider, resource or patient.
pub fn unauthenticated(request_id: &str, at_ms: i64) -> AccessRecord {
    AccessRecord {
        client_id: None,
        tenant_id: None,
        provider_id: None,
        patient_id: None,
        resource_type: None,
        interaction: "-".into(),
        outcome: Outcome::Denied,
        status: 401,
        ..rec(request_id, 0, at_ms)
    }
}

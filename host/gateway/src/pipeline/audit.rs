//! Phase 8, audit: one access record per brokered access (and per batch
//! entry), whatever the outcome, also when the client goes away mid-request.
//! Last, because it records what the other phases came to.

use std::time::Instant;

use crate::access::{AccessLog, AccessRecord, Outcome};
use fhirgate_core::Version;

use super::Ctx;

/// What the audit record says about one access, filled in as the phases
/// learn it.
#[derive(Default)]
pub(super) struct Audit {
    pub(super) client_id: Option<String>,
    pub(super) tenant: Option<String>,
    pub(super) provider: Option<String>,
    pub(super) patient: Option<String>,
    /// The resource type; for a followed page link, the searched type from
    /// its cursor.
    pub(super) resource_type: Option<String>,
}

/// One access being timed: which request (and which batch entry of it), on
/// which face, since when.
pub(super) struct Access {
    request_id: String,
    /// 0 for the request itself, 1.. for its batch entries.
    part: u32,
    face: Version,
    /// The request's arrival, so that a request's records sort by part.
    at_ms: i64,
    started: Instant,
}

impl Access {
    pub(super) fn of(ctx: &Ctx, part: u32) -> Access {
        Access {
            request_id: ctx.request_id.clone(),
            part,
            face: ctx.face,
            at_ms: ctx.arrived_ms,
            started: Instant::now(),
        }
    }

    /// The access record: the one place one is built.
    pub(super) fn record(&self, interaction: &str, audit: Audit, status: u16, provider_fault: bool) -> AccessRecord {
        AccessRecord {
            request_id: self.request_id.clone(),
            part: self.part,
            at_ms: self.at_ms,
            client_id: audit.client_id,
            tenant_id: audit.tenant.map(|t| t.to_ascii_lowercase()),
            provider_id: audit.provider,
            face: self.face.face().to_owned(),
            interaction: interaction.to_owned(),
            resource_type: audit.resource_type,
            patient_id: audit.patient,
            outcome: Outcome::from_status(status, provider_fault),
            status,
            latency_us: self.started.elapsed().as_micros() as u64,
        }
    }
}

/// The access record of one request. Written when the request ends, and
/// also when it never ends: if the client goes away mid-request (the future
/// is dropped), the record is written with status 499, so an access that
/// may have reached a provider is never left out.
pub(super) struct AccessGuard {
    log: AccessLog,
    access: Access,
    pub(super) interaction: &'static str,
    pub(super) audit: Audit,
    done: bool,
}

/// The status recorded for a request its client abandoned.
const CLIENT_CLOSED: u16 = 499;

impl AccessGuard {
    pub(super) fn new(ctx: &Ctx) -> AccessGuard {
        AccessGuard {
            log: ctx.gw.access().clone(),
            access: Access::of(ctx, 0),
            interaction: "-",
            audit: Audit::default(),
            done: false,
        }
    }

    fn record(&mut self, status: u16, provider_fault: bool) -> AccessRecord {
        let record = self.access.record(self.interaction, std::mem::take(&mut self.audit), status, provider_fault);
        tracing::info!(
            target: "fhirgate::audit",
            request_id = %record.request_id,
            face = %record.face,
            client_id = record.client_id.as_deref().unwrap_or("-"),
            tenant = record.tenant_id.as_deref().unwrap_or("-"),
            provider = record.provider_id.as_deref().unwrap_or("-"),
            interaction = self.interaction,
            resource_type = record.resource_type.as_deref().unwrap_or("-"),
            status,
            latency_us = record.latency_us,
            "access"
        );
        record
    }

    /// Records the access, committed before this returns unless the
    /// operator chose buffered commits; false when it could not be written.
    /// The batch entries' records, queued earlier, are committed with it.
    pub(super) async fn finish(mut self, status: u16, provider_fault: bool) -> bool {
        self.done = true;
        let record = self.record(status, provider_fault);
        self.log.record(record).await
    }
}

impl Drop for AccessGuard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let record = self.record(CLIENT_CLOSED, false);
        let log = self.log.clone();
        tokio::spawn(async move { log.queue(record).await });
    }
}

#[cfg(test)]
mod tests {
    use crate::access::AccessQuery;

    use super::super::testing;
    use super::*;

    async fn records(ctx: &Ctx) -> Vec<AccessRecord> {
        ctx.gw.access().flush().await;
        let q = AccessQuery { request_id: Some(ctx.request_id.clone()), ..AccessQuery::default() };
        ctx.gw.access().query(&q).await.unwrap()
    }

    #[tokio::test]
    async fn one_record_per_access_with_what_the_phases_learnt() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Dstu2);
        let mut guard = AccessGuard::new(&ctx);
        guard.interaction = "read";
        guard.audit = Audit {
            client_id: Some(testing::CLIENT.into()),
            tenant: Some(testing::TENANT.to_ascii_uppercase()),
            provider: Some("demo".into()),
            patient: Some("p1".into()),
            resource_type: Some("Patient".into()),
        };
        guard.finish(502, true).await;
        let r = &records(&ctx).await[..];
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].part, r[0].status, r[0].outcome), (0, 502, Outcome::ProviderError));
        assert_eq!(r[0].tenant_id.as_deref(), Some(testing::TENANT), "tenants are recorded in lower case");
        assert_eq!((r[0].face.as_str(), r[0].interaction.as_str()), ("dstu2", "read"));
        assert_eq!(r[0].patient_id.as_deref(), Some("p1"));
    }

    #[tokio::test]
    async fn an_access_the_client_abandoned_is_recorded_as_499() {
        let gw = testing::gateway().await;
        let ctx = testing::ctx(&gw, Version::Stu3);
        let mut guard = AccessGuard::new(&ctx);
        guard.audit.client_id = Some(testing::CLIENT.into());
        drop(guard);
        // The record is written by a task of its own.
        let mut found = Vec::new();
        for _ in 0..100 {
            found = records(&ctx).await;
            if !found.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].status, found[0].client_id.as_deref()), (CLIENT_CLOSED, Some(testing::CLIENT)));
    }
}

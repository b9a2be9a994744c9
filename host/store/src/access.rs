//! The access audit trail as rows: one append-only record per brokered FHIR
//! access (and per entry of a batch) in `access_log`, and the change events
//! written beside them in `audit_events`, behind [`AccessRepository`]. The
//! gateway's writer batches what it appends; the AuditEvent rendering is the
//! gateway's too.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{RepoFuture, Store};

#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;

/// Records a query returns when it names no limit, and at most.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

/// How a brokered access ended, as the audit trail classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Success,
    ClientError,
    /// 401 or 403: the client was not authenticated or not allowed.
    Denied,
    ProviderError,
    GatewayError,
}

impl Outcome {
    /// The outcome of a response with `status`; `provider_fault` says whether
    /// a server error came from the provider rather than the gateway.
    pub fn from_status(status: u16, provider_fault: bool) -> Outcome {
        match status {
            100..=399 => Outcome::Success,
            401 | 403 => Outcome::Denied,
            400..=499 => Outcome::ClientError,
            _ if provider_fault => Outcome::ProviderError,
            _ => Outcome::GatewayError,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::ClientError => "client-error",
            Outcome::Denied => "denied",
            Outcome::ProviderError => "provider-error",
            Outcome::GatewayError => "gateway-error",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Success, Outcome::ClientError, Outcome::Denied, Outcome::ProviderError, Outcome::GatewayError]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// One brokered access. Ids only: never a token or a resource body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRecord {
    pub request_id: String,
    /// 0 for the HTTP request itself; 1..=n for the entries of a batch.
    pub part: u32,
    /// When the request arrived, milliseconds since the Unix epoch.
    #[serde(
        rename = "at",
        alias = "at_ms",
        serialize_with = "fhirgate_core::clock::rfc3339::millis",
        deserialize_with = "fhirgate_core::clock::rfc3339::millis_from"
    )]
    pub at_ms: i64,
    pub client_id: Option<String>,
    pub tenant_id: Option<String>,
    pub provider_id: Option<String>,
    /// The FHIR version the client spoke: "stu3" or "dstu2".
    pub face: String,
    /// "read", "vread", "search", "batch", "capabilities", "other" or "-".
    pub interaction: String,
    pub resource_type: Option<String>,
    pub patient_id: Option<String>,
    pub outcome: Outcome,
    pub status: u16,
    pub latency_us: u64,
}

/// Which records to read. Every filter given must match; the time range is
/// `since_ms <= at_ms < until_ms`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AccessQuery {
    pub tenant: Option<String>,
    pub client: Option<String>,
    pub patient: Option<String>,
    pub request_id: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// At most this many records (default 100, at most 1000).
    pub limit: Option<u32>,
    /// Newest first (and `after` then pages towards older records).
    #[serde(default)]
    pub newest_first: bool,
    /// Only records past this one in the query's order: the cursor of the
    /// last record of the previous page.
    #[serde(default)]
    pub after: Option<AccessCursor>,
}

/// Where a page of the access log ends: a record's `(at_ms, request_id,
/// part)`, written `<at_ms>.<part>.<request_id>`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct AccessCursor {
    pub at_ms: i64,
    pub request_id: String,
    pub part: u32,
}

impl AccessCursor {
    /// The cursor of `record`.
    pub fn of(record: &AccessRecord) -> AccessCursor {
        AccessCursor { at_ms: record.at_ms, request_id: record.request_id.clone(), part: record.part }
    }
}

impl std::fmt::Display for AccessCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.at_ms, self.part, self.request_id)
    }
}

impl TryFrom<String> for AccessCursor {
    type Error = String;
    fn try_from(text: String) -> Result<AccessCursor, String> {
        text.parse()
    }
}

impl std::str::FromStr for AccessCursor {
    type Err = String;
    fn from_str(text: &str) -> Result<AccessCursor, String> {
        let bad = || format!("`{text}` is not a page cursor");
        let mut parts = text.splitn(3, '.');
        let at_ms = parts.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
        let part = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let request_id = parts.next().filter(|r| !r.is_empty() && r.len() <= 200).ok_or_else(bad)?.to_owned();
        Ok(AccessCursor { at_ms, request_id, part })
    }
}

impl AccessQuery {
    /// The number of records the query returns at most.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
    }
}

/// An event of the change audit trail (`audit_events`): token issuance and
/// refused client authentications come at request rate, so they are
/// appended in batches like access records.
#[derive(Debug, Clone)]
pub struct Event {
    pub event_id: String,
    pub at: i64,
    pub actor: &'static str,
    pub action: &'static str,
    pub subject: String,
    pub detail: String,
}

impl Event {
    /// An event happening now. `detail` must not hold secrets.
    pub fn new(actor: &'static str, action: &'static str, subject: String, detail: &serde_json::Value) -> Event {
        Event {
            event_id: super::event_id(),
            at: fhirgate_core::clock::now_seconds() as i64,
            actor,
            action,
            subject,
            detail: detail.to_string(),
        }
    }
}

/// Where access records and change events are kept.
pub trait AccessRepository: Send + Sync {
    /// Appends `records` and `events` in one transaction: all or none.
    fn append<'a>(&'a self, records: &'a [AccessRecord], events: &'a [Event]) -> RepoFuture<'a, ()>;
    /// Appends one record on its own (after its batch failed).
    fn append_record<'a>(&'a self, record: &'a AccessRecord) -> RepoFuture<'a, ()>;
    /// Appends one event on its own (after its batch failed).
    fn append_event<'a>(&'a self, event: &'a Event) -> RepoFuture<'a, ()>;
    /// Records matching `q`, oldest first (by `at_ms`, `request_id`, `part`).
    fn query<'a>(&'a self, q: &'a AccessQuery) -> RepoFuture<'a, Vec<AccessRecord>>;
    /// Requests (batch entries not counted apart) since `since_ms`, per
    /// `bucket_ms`: the gateway's health over time. Empty buckets left out.
    fn traffic(&self, since_ms: i64, bucket_ms: i64) -> RepoFuture<'_, Vec<Traffic>>;
}

/// The requests of one time bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Traffic {
    /// The bucket's start, milliseconds since the Unix epoch.
    pub start_ms: i64,
    pub requests: i64,
    /// Answered with a server error (the provider's or the gateway's).
    pub errors: i64,
    /// Refused as unauthenticated or not allowed.
    pub denied: i64,
    pub mean_latency_us: i64,
    pub max_latency_us: i64,
}

async fn traffic(store: &Store, since_ms: i64, bucket_ms: i64) -> anyhow::Result<Vec<Traffic>> {
    let rows = sqlx::query(
        "SELECT (at_ms / $1) * $1 AS start_ms, COUNT(*) AS requests, \
         CAST(SUM(CASE WHEN outcome IN ('provider-error', 'gateway-error') THEN 1 ELSE 0 END) AS BIGINT) AS errors, \
         CAST(SUM(CASE WHEN outcome = 'denied' THEN 1 ELSE 0 END) AS BIGINT) AS denied, \
         CAST(AVG(latency_us) AS BIGINT) AS mean_us, CAST(MAX(latency_us) AS BIGINT) AS max_us \
         FROM access_log WHERE part = 0 AND at_ms >= $2 GROUP BY (at_ms / $1) * $1 ORDER BY start_ms",
    )
    .bind(bucket_ms.max(1))
    .bind(since_ms)
    .fetch_all(store.pool())
    .await
    .context("reading the access log's traffic")?;
    rows.iter()
        .map(|r| {
            Ok(Traffic {
                start_ms: r.try_get("start_ms")?,
                requests: r.try_get("requests")?,
                errors: r.try_get("errors")?,
                denied: r.try_get("denied")?,
                mean_latency_us: r.try_get("mean_us")?,
                max_latency_us: r.try_get("max_us")?,
            })
        })
        .collect()
}

impl AccessRepository for Store {
    fn append<'a>(&'a self, records: &'a [AccessRecord], events: &'a [Event]) -> RepoFuture<'a, ()> {
        Box::pin(async move {
            match &self.appender {
                Some(appender) => appender.append(records, events),
                None => Ok(insert_all(self, records, events).await?),
            }
        })
    }

    fn append_record<'a>(&'a self, record: &'a AccessRecord) -> RepoFuture<'a, ()> {
        Box::pin(async move { Ok(insert(self.pool(), record).await?) })
    }

    fn append_event<'a>(&'a self, event: &'a Event) -> RepoFuture<'a, ()> {
        Box::pin(async move { Ok(insert_event(self.pool(), event).await?) })
    }

    fn query<'a>(&'a self, q: &'a AccessQuery) -> RepoFuture<'a, Vec<AccessRecord>> {
        Box::pin(query(self, q))
    }
    fn traffic(&self, since_ms: i64, bucket_ms: i64) -> RepoFuture<'_, Vec<Traffic>> {
        Box::pin(traffic(self, since_ms, bucket_ms))
    }
}

async fn query(store: &Store, q: &AccessQuery) -> anyhow::Result<Vec<AccessRecord>> {
    enum Arg<'a> {
        Text(&'a str),
        Int(i64),
    }
    let mut filters: Vec<(&str, Arg)> = Vec::new();
    if let Some(t) = &q.tenant {
        filters.push(("tenant_id =", Arg::Text(t)));
    }
    if let Some(c) = &q.client {
        filters.push(("client_id =", Arg::Text(c)));
    }
    if let Some(p) = &q.patient {
        filters.push(("patient_id =", Arg::Text(p)));
    }
    if let Some(r) = &q.request_id {
        filters.push(("request_id =", Arg::Text(r)));
    }
    if let Some(s) = q.since_ms {
        filters.push(("at_ms >=", Arg::Int(s)));
    }
    if let Some(u) = q.until_ms {
        filters.push(("at_ms <", Arg::Int(u)));
    }
    let mut sql = format!("SELECT {COLUMNS} FROM access_log");
    for (i, (condition, _)) in filters.iter().enumerate() {
        let joiner = if i == 0 { "WHERE" } else { "AND" };
        let _ = write!(sql, " {joiner} {condition} ${}", i + 1);
    }
    let (direction, past) = if q.newest_first { ("DESC", "<") } else { ("ASC", ">") };
    let mut next = filters.len() + 1;
    if q.after.is_some() {
        let joiner = if filters.is_empty() { "WHERE" } else { "AND" };
        // The plain bound on `at_ms` lets the time index narrow the scan.
        let _ = write!(
            sql,
            " {joiner} at_ms {past}= ${} AND (at_ms, request_id, part) {past} (${}, ${}, ${})",
            next,
            next + 1,
            next + 2,
            next + 3
        );
        next += 4;
    }
    let _ = write!(sql, " ORDER BY at_ms {direction}, request_id {direction}, part {direction} LIMIT ${next}");

    let mut query = sqlx::query(&sql);
    for (_, arg) in filters {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
        };
    }
    if let Some(c) = &q.after {
        query = query.bind(c.at_ms).bind(c.at_ms).bind(c.request_id.as_str()).bind(i64::from(c.part));
    }
    let rows =
        query.bind(i64::from(q.effective_limit())).fetch_all(store.pool()).await.context("reading the access log")?;
    rows.iter().map(from_row).collect()
}

const COLUMNS: &str = "request_id, part, at_ms, client_id, tenant_id, provider_id, face, interaction, \
                       resource_type, patient_id, outcome, status, latency_us";

/// Rows per `INSERT` statement: one statement, one round trip to the
/// database (for SQLite, to its worker thread), for many rows. Not more:
/// binding a statement's parameters costs the square of their number on
/// SQLite (each bind looks its name up in a list).
const ROWS_PER_STATEMENT: usize = 16;

/// `INSERT INTO {table} ({columns}) VALUES (…), (…), …` for `rows` rows of
/// `columns` placeholders each.
fn insert_rows(table: &str, columns: &str, rows: usize) -> String {
    let width = columns.split(',').count();
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for col in 0..width {
            let _ = write!(sql, "{}${}", if col == 0 { "" } else { ", " }, row * width + col + 1);
        }
        sql.push(')');
    }
    sql
}

const EVENT_COLUMNS: &str = "event_id, at, actor, action, subject, detail";

async fn insert_all(store: &Store, records: &[AccessRecord], events: &[Event]) -> Result<(), sqlx::Error> {
    let mut tx = store.begin_append().await?;
    for chunk in records.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_rows("access_log", COLUMNS, chunk.len());
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = bind_record(query, r);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_rows("audit_events", EVENT_COLUMNS, chunk.len());
        let mut query = sqlx::query(&sql);
        for e in chunk {
            query = bind_event(query, e);
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

fn bind_record<'q>(query: AnyQuery<'q>, r: &'q AccessRecord) -> AnyQuery<'q> {
    query
        .bind(&r.request_id)
        .bind(i64::from(r.part))
        .bind(r.at_ms)
        .bind(&r.client_id)
        .bind(&r.tenant_id)
        .bind(&r.provider_id)
        .bind(&r.face)
        .bind(&r.interaction)
        .bind(&r.resource_type)
        .bind(&r.patient_id)
        .bind(r.outcome.as_str())
        .bind(i64::from(r.status))
        .bind(i64::try_from(r.latency_us).unwrap_or(i64::MAX))
}

fn bind_event<'q>(query: AnyQuery<'q>, e: &'q Event) -> AnyQuery<'q> {
    query.bind(&e.event_id).bind(e.at).bind(e.actor).bind(e.action).bind(&e.subject).bind(&e.detail)
}

async fn insert_event<'e, E>(executor: E, e: &Event) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = insert_rows("audit_events", EVENT_COLUMNS, 1);
    bind_event(sqlx::query(&sql), e).execute(executor).await?;
    Ok(())
}

async fn insert<'e, E>(executor: E, r: &AccessRecord) -> Result<(), sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = insert_rows("access_log", COLUMNS, 1);
    bind_record(sqlx::query(&sql), r).execute(executor).await?;
    Ok(())
}

fn from_row(row: &AnyRow) -> anyhow::Result<AccessRecord> {
    let outcome: String = row.try_get("outcome")?;
    Ok(AccessRecord {
        request_id: row.try_get("request_id")?,
        part: u32::try_from(row.try_get::<i64, _>("part")?).context("access log: part out of range")?,
        at_ms: row.try_get("at_ms")?,
        client_id: row.try_get("client_id")?,
        tenant_id: row.try_get("tenant_id")?,
        provider_id: row.try_get("provider_id")?,
        face: row.try_get("face")?,
        interaction: row.try_get("interaction")?,
        resource_type: row.try_get("resource_type")?,
        patient_id: row.try_get("patient_id")?,
        outcome: Outcome::parse(&outcome).with_context(|| format!("access log: unknown outcome `{outcome}`"))?,
        status: u16::try_from(row.try_get::<i64, _>("status")?).context("access log: status out of range")?,
        latency_us: u64::try_from(row.try_get::<i64, _>("latency_us")?).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::fixtures::{T0, rec};
    use serde_json::json;

    use super::*;

    /// The repository with the calls of the gateway's writer, each record
    /// appended at once: the queries' tests read what the SQL does.
    #[derive(Clone)]
    struct Direct(Store);

    impl Direct {
        async fn record(&self, r: AccessRecord) {
            self.0.append_record(&r).await.unwrap();
        }
        async fn flush(&self) {}
        async fn query(&self, q: &AccessQuery) -> anyhow::Result<Vec<AccessRecord>> {
            AccessRepository::query(&self.0, q).await
        }
    }

    #[test]
    fn outcome_from_status() {
        assert_eq!(Outcome::from_status(200, false), Outcome::Success);
        assert_eq!(Outcome::from_status(304, true), Outcome::Success);
        assert_eq!(Outcome::from_status(401, false), Outcome::Denied);
        assert_eq!(Outcome::from_status(403, true), Outcome::Denied);
        assert_eq!(Outcome::from_status(404, false), Outcome::ClientError);
        assert_eq!(Outcome::from_status(429, false), Outcome::ClientError);
        assert_eq!(Outcome::from_status(502, true), Outcome::ProviderError);
        assert_eq!(Outcome::from_status(500, false), Outcome::GatewayError);
        assert_eq!(serde_json::to_value(Outcome::ClientError).unwrap(), json!("client-error"));
        assert_eq!(serde_json::to_value(Outcome::GatewayError).unwrap(), json!("gateway-error"));
    }
    crate::store_tests! {
        async fn records_round_trip_unchanged(store) {
            let log = Direct(store);
            let full = rec("a", 0, T0);
            let bare = AccessRecord {
                client_id: None,
                tenant_id: None,
                provider_id: None,
                resource_type: None,
                patient_id: None,
                interaction: "-".into(),
                outcome: Outcome::Denied,
                status: 401,
                latency_us: 0,
                ..rec("b", 0, T0 + 1)
            };
            log.record(full.clone()).await;
            log.record(bare.clone()).await;
            log.flush().await;
            assert_eq!(log.query(&AccessQuery::default()).await.unwrap(), vec![full, bare]);
        }
    }
    crate::store_tests! {
        async fn queries_filter_by_each_field(store) {
            let log = Direct(store);
            let mut other_tenant = rec("r2", 0, T0 + 20);
            other_tenant.tenant_id = Some("tenant-b".into());
            let mut other_client = rec("r3", 0, T0 + 30);
            other_client.client_id = Some("client-b".into());
            let mut other_patient = rec("r4", 0, T0 + 40);
            other_patient.patient_id = Some("p2".into());
            let mut anonymous = rec("r5", 0, T0 + 50);
            anonymous.client_id = None;
            anonymous.patient_id = None;
            for r in [rec("r1", 0, T0 + 10), other_tenant, other_client, other_patient, anonymous, rec("r1", 1, T0 + 10)] {
                log.record(r).await;
            }
            log.flush().await;

            let run = |q: AccessQuery| {
                let log = log.clone();
                async move {
                    let got = log.query(&q).await.unwrap();
                    got.into_iter().map(|r| format!("{}.{}", r.request_id, r.part)).collect::<Vec<_>>()
                }
            };
            assert_eq!(run(AccessQuery::default()).await, ["r1.0", "r1.1", "r2.0", "r3.0", "r4.0", "r5.0"]);
            assert_eq!(run(AccessQuery { tenant: Some("tenant-b".into()), ..Default::default() }).await, ["r2.0"]);
            assert_eq!(
                run(AccessQuery { tenant: Some("tenant-a".into()), ..Default::default() }).await,
                ["r1.0", "r1.1", "r3.0", "r4.0", "r5.0"]
            );
            assert_eq!(run(AccessQuery { client: Some("client-b".into()), ..Default::default() }).await, ["r3.0"]);
            assert_eq!(run(AccessQuery { patient: Some("p2".into()), ..Default::default() }).await, ["r4.0"]);
            assert_eq!(run(AccessQuery { request_id: Some("r1".into()), ..Default::default() }).await, ["r1.0", "r1.1"]);
            // `since` is inclusive, `until` exclusive.
            assert_eq!(
                run(AccessQuery { since_ms: Some(T0 + 20), until_ms: Some(T0 + 40), ..Default::default() }).await,
                ["r2.0", "r3.0"]
            );
            assert_eq!(
                run(AccessQuery {
                    tenant: Some("tenant-a".into()),
                    client: Some("client-a".into()),
                    since_ms: Some(T0 + 11),
                    ..Default::default()
                })
                .await,
                ["r4.0"]
            );
            assert_eq!(run(AccessQuery { limit: Some(2), ..Default::default() }).await, ["r1.0", "r1.1"]);
            assert!(run(AccessQuery { tenant: Some("nobody".into()), ..Default::default() }).await.is_empty());

            // Pages, each after the last record of the one before, in either
            // order, skip nothing and repeat nothing (r1 has two parts at one time).
            for newest_first in [false, true] {
                let mut seen = Vec::new();
                let mut after: Option<AccessCursor> = None;
                loop {
                    let q = AccessQuery { limit: Some(2), newest_first, after: after.clone(), ..Default::default() };
                    let page = log.query(&q).await.unwrap();
                    let Some(last) = page.last() else { break };
                    let cursor = AccessCursor::of(last);
                    assert_eq!(cursor.to_string().parse::<AccessCursor>().unwrap(), cursor);
                    after = Some(cursor);
                    seen.extend(page.iter().map(|r| format!("{}.{}", r.request_id, r.part)));
                }
                let mut expected = vec!["r1.0", "r1.1", "r2.0", "r3.0", "r4.0", "r5.0"];
                if newest_first {
                    expected.reverse();
                }
                assert_eq!(seen, expected, "newest first: {newest_first}");
            }
            assert!("12.x.r1".parse::<AccessCursor>().is_err());
            assert!("12.0.".parse::<AccessCursor>().is_err());
        }
    }
    crate::store_tests! {
        async fn limit_defaults_to_100_and_is_capped_at_1000(store) {
            let log = Direct(store);
            for i in 0..1100 {
                log.record(rec(&format!("r{i:04}"), 0, T0 + i)).await;
            }
            log.flush().await;
            let got = log.query(&AccessQuery::default()).await.unwrap();
            assert_eq!(got.len(), 100);
            assert_eq!(got[99].request_id, "r0099");
            let got = log.query(&AccessQuery { limit: Some(5000), ..Default::default() }).await.unwrap();
            assert_eq!(got.len(), 1000);
            assert_eq!(got[999].request_id, "r0999");
        }
    }
    crate::store_tests! {
        async fn records_come_back_oldest_first(store) {
            let log = Direct(store);
            for r in [
                rec("b", 0, T0 + 5),
                rec("a", 2, T0),
                rec("c", 0, T0 - 5),
                rec("a", 10, T0),
                rec("b", 1, T0),
                rec("a", 1, T0),
            ] {
                log.record(r).await;
            }
            log.flush().await;
            let got = log.query(&AccessQuery::default()).await.unwrap();
            let order: Vec<(&str, u32, i64)> = got.iter().map(|r| (r.request_id.as_str(), r.part, r.at_ms)).collect();
            assert_eq!(
                order,
                [("c", 0, T0 - 5), ("a", 1, T0), ("a", 2, T0), ("a", 10, T0), ("b", 1, T0), ("b", 0, T0 + 5)]
            );
        }
    }

    crate::store_tests! {
        async fn an_append_is_all_or_none(store) {
                    let event = Event::new("test", "test.done", "subject".into(), &json!({ "n": 1 }));
            store.append(&[rec("a", 0, T0), rec("b", 0, T0)], std::slice::from_ref(&event)).await.unwrap();
            // A repeated id fails the whole append: nothing of it is kept.
            let failed = store.append(&[rec("c", 0, T0), rec("a", 0, T0 + 1)], &[]).await;
            assert!(failed.is_err());
            let got = AccessRepository::query(&store, &AccessQuery::default()).await.unwrap();
            let ids: Vec<&str> = got.iter().map(|r| r.request_id.as_str()).collect();
            assert_eq!(ids, ["a", "b"]);
            // The same event twice is refused on its own, too.
            assert!(store.append_event(&event).await.is_err());
            let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'test.done'")
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(events, 1);
        }
    }
}

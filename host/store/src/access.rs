//! The access audit trail: one append-only record per brokered FHIR access
//! (and per entry of a batch), written off the request path by one task in
//! batched transactions, and read back as records or as FHIR R4 AuditEvents.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use sqlx::Row as _;
use sqlx::any::AnyRow;
use tokio::sync::{mpsc, oneshot};

use super::Store;

/// Records queued before `record` waits for the writer. A burst this large
/// is seconds of a busy gateway's traffic; past it, requests slow down rather
/// than go unrecorded.
const QUEUE_CAPACITY: usize = 8192;

/// Records written in one transaction at most: large enough that a burst
/// costs few commits, small enough that a commit stays short.
const BATCH_MAX: usize = 1024;

/// How long the writer waits for more records before it commits what it
/// has (group commit). Every commit syncs the database file, and on a busy
/// gateway the sync, not the rows, is most of a record's cost: waiting a
/// little turns hundreds of commits a second into a few dozen. A record
/// reaches the disk this late (plus the commit before it, if one runs); a
/// flush (a query of the trail, shutdown) does not wait.
const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

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

    fn as_str(self) -> &'static str {
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
}

impl AccessQuery {
    /// The number of records the query returns at most.
    pub fn effective_limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT)
    }
}

/// An event of the change audit trail (`audit_events`) queued for the
/// writer: token issuance and refused client authentications come at
/// request rate, so they are written in batches like access records.
pub struct Event {
    event_id: String,
    at: i64,
    actor: &'static str,
    action: &'static str,
    subject: String,
    detail: String,
}

/// What the writer task receives.
enum Message {
    Record(Box<AccessRecord>),
    Event(Box<Event>),
    /// Answered once every record received before it is committed.
    Flush(oneshot::Sender<()>),
}

#[derive(Default)]
struct Stats {
    written: AtomicU64,
    failed: AtomicU64,
}

/// The trail's handle: queues records for the writer task and reads the
/// store. Cheap to clone; the writer stops once every clone is dropped and
/// the queue is drained.
#[derive(Clone)]
pub struct AccessLog {
    tx: mpsc::Sender<Message>,
    store: Store,
    stats: Arc<Stats>,
}

impl AccessLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(store: Store) -> AccessLog {
        Self::with_capacity(store, QUEUE_CAPACITY)
    }

    fn with_capacity(store: Store, capacity: usize) -> AccessLog {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run_writer(store.clone(), rx, stats.clone()));
        AccessLog { tx, store, stats }
    }

    /// Queues a record. Waits while the queue is full (back-pressure: a
    /// record is never dropped for lack of room). Never fails the request: a
    /// record that cannot be written is logged by its ids and counted.
    pub async fn record(&self, r: AccessRecord) {
        if let Err(mpsc::error::SendError(Message::Record(r))) = self.tx.send(Message::Record(Box::new(r))).await {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(request_id = %r.request_id, part = r.part, "access log: the writer has stopped; record lost");
        }
    }

    /// Queues an event for the change audit trail, written with the next
    /// batch; waits while the queue is full, like [`AccessLog::record`].
    /// `detail` must not hold secrets.
    pub async fn event(&self, actor: &'static str, action: &'static str, subject: String, detail: &serde_json::Value) {
        let event = Event {
            event_id: super::event_id(),
            at: fhirgate_core::clock::now_seconds() as i64,
            actor,
            action,
            subject,
            detail: detail.to_string(),
        };
        if self.tx.send(Message::Event(Box::new(event))).await.is_err() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(action, "audit trail: the writer has stopped; event lost");
        }
    }

    /// Resolves once every record queued before the call is committed (or
    /// counted as failed). Call it at shutdown, after the last request.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            // An error here means the writer stopped: nothing more will be written.
            let _ = wait.await;
        }
    }

    /// Records matching `q`, oldest first (by `at_ms`, `request_id`, `part`).
    pub async fn query(&self, q: &AccessQuery) -> anyhow::Result<Vec<AccessRecord>> {
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
        let _ = write!(sql, " ORDER BY at_ms, request_id, part LIMIT ${}", filters.len() + 1);

        let mut query = sqlx::query(&sql);
        for (_, arg) in filters {
            query = match arg {
                Arg::Text(s) => query.bind(s),
                Arg::Int(i) => query.bind(i),
            };
        }
        let rows = query
            .bind(i64::from(q.effective_limit()))
            .fetch_all(self.store.pool())
            .await
            .context("reading the access log")?;
        rows.iter().map(from_row).collect()
    }

    /// Records written and records failed so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.stats.written.load(Ordering::Relaxed), self.stats.failed.load(Ordering::Relaxed))
    }
}

const COLUMNS: &str = "request_id, part, at_ms, client_id, tenant_id, provider_id, face, interaction, \
                       resource_type, patient_id, outcome, status, latency_us";

/// The writer task: gathers what is queued for up to [`LINGER`] or a full
/// batch, writes it in one transaction, and answers flushes in queue order.
async fn run_writer(store: Store, mut rx: mpsc::Receiver<Message>, stats: Arc<Stats>) {
    let mut inbox = Vec::with_capacity(BATCH_MAX);
    let mut batch = Batch::default();
    // When the oldest unwritten message must be committed.
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        // Never more than a batch in one transaction.
        let room = BATCH_MAX - batch.len();
        let received = match due {
            None => rx.recv_many(&mut inbox, room).await,
            Some(at) => match tokio::time::timeout_at(at, rx.recv_many(&mut inbox, room)).await {
                Ok(n) => n,
                Err(_elapsed) => {
                    write(&store, &mut batch, &stats).await;
                    due = None;
                    continue;
                }
            },
        };
        if received == 0 {
            // Every handle is gone and the queue is drained.
            write(&store, &mut batch, &stats).await;
            return;
        }
        for message in inbox.drain(..) {
            match message {
                Message::Record(r) => batch.records.push(*r),
                Message::Event(e) => batch.events.push(*e),
                Message::Flush(done) => {
                    write(&store, &mut batch, &stats).await;
                    due = None;
                    let _ = done.send(());
                }
            }
        }
        let now = tokio::time::Instant::now();
        if batch.len() >= BATCH_MAX || due.is_some_and(|at| at <= now) {
            write(&store, &mut batch, &stats).await;
            due = None;
        } else if !batch.is_empty() && due.is_none() {
            due = Some(now + LINGER);
        }
    }
}

/// Access records and audit events written in one transaction.
#[derive(Default)]
struct Batch {
    records: Vec<AccessRecord>,
    events: Vec<Event>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len() + self.events.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes and empties `batch`, counting every record and event as written
/// or failed.
async fn write(store: &Store, batch: &mut Batch, stats: &Stats) {
    if batch.is_empty() {
        return;
    }
    if insert_all(store, batch).await.is_ok() {
        stats.written.fetch_add((batch.records.len() + batch.events.len()) as u64, Ordering::Relaxed);
    } else {
        // One bad record (a repeated id) must not cost the others theirs, so
        // the batch is retried record by record, each on its own.
        for r in &batch.records {
            match insert(store.pool(), r).await {
                Ok(()) => {
                    stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(request_id = %r.request_id, part = r.part, error = %e, "access log: record not written");
                }
            }
        }
        for e in &batch.events {
            match insert_event(store.pool(), e).await {
                Ok(()) => {
                    stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(event_id = %e.event_id, action = e.action, error = %err, "audit trail: event not written");
                }
            }
        }
    }
    batch.records.clear();
    batch.events.clear();
}

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

async fn insert_all(store: &Store, batch: &Batch) -> Result<(), sqlx::Error> {
    let mut tx = store.begin_write().await?;
    for chunk in batch.records.chunks(ROWS_PER_STATEMENT) {
        let sql = insert_rows("access_log", COLUMNS, chunk.len());
        let mut query = sqlx::query(&sql);
        for r in chunk {
            query = bind_record(query, r);
        }
        query.execute(&mut *tx).await?;
    }
    for chunk in batch.events.chunks(ROWS_PER_STATEMENT) {
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

/// The records as a FHIR R4 Bundle (type `searchset`) of AuditEvent
/// resources; `total` counts the records given. `observer` names the
/// gateway that recorded them.
pub fn audit_event_bundle(records: &[AccessRecord], observer: &str) -> Value {
    let mut bundle = json!({ "resourceType": "Bundle", "type": "searchset", "total": records.len() });
    // FHIR JSON has no empty arrays: no records, no `entry`.
    if !records.is_empty() {
        let entries: Vec<Value> = records
            .iter()
            .map(|r| json!({ "resource": audit_event(r, observer), "search": { "mode": "match" } }))
            .collect();
        bundle["entry"] = Value::Array(entries);
    }
    bundle
}

/// One record as a FHIR R4 AuditEvent.
pub fn audit_event(r: &AccessRecord, observer: &str) -> Value {
    let mut event = Map::new();
    event.insert("resourceType".into(), json!("AuditEvent"));
    event.insert("id".into(), json!(audit_event_id(&r.request_id, r.part)));
    event.insert(
        "type".into(),
        json!({
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        }),
    );
    let (subtype, action) = match r.interaction.as_str() {
        "read" => (Some("read"), Some("R")),
        "vread" => (Some("vread"), Some("R")),
        "search" => (Some("search-type"), Some("R")),
        "capabilities" => (Some("capabilities"), Some("R")),
        "batch" => (Some("batch"), Some("E")),
        _ => (None, None),
    };
    if let Some(code) = subtype {
        event.insert(
            "subtype".into(),
            json!([{ "system": "http://hl7.org/fhir/restful-interaction", "code": code, "display": code }]),
        );
    }
    if let Some(action) = action {
        event.insert("action".into(), json!(action));
    }
    event.insert("recorded".into(), json!(instant(r.at_ms)));
    let outcome = match r.outcome {
        Outcome::Success => "0",
        Outcome::ClientError | Outcome::Denied => "4",
        Outcome::ProviderError | Outcome::GatewayError => "8",
    };
    event.insert("outcome".into(), json!(outcome));
    event.insert("outcomeDesc".into(), json!(format!("HTTP {} in {:.1} ms", r.status, r.latency_us as f64 / 1000.0)));

    let who = match present(&r.client_id) {
        Some(client) => json!({ "identifier": { "system": "urn:fhirgate:client", "value": client } }),
        None => json!({ "display": "unauthenticated" }),
    };
    event.insert(
        "agent".into(),
        json!([{
            "type": { "coding": [{
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "110153",
                "display": "Source Role ID",
            }] },
            "who": who,
            "requestor": true,
        }]),
    );

    let mut source = Map::new();
    if !r.face.is_empty() {
        source.insert("site".into(), json!(r.face));
    }
    let observer = if observer.is_empty() { "fhirgate" } else { observer };
    source.insert("observer".into(), json!({ "display": observer }));
    source.insert(
        "type".into(),
        json!([{
            "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
            "code": "3",
            "display": "Web Server",
        }]),
    );
    event.insert("source".into(), Value::Object(source));

    let mut entities = Vec::new();
    if let Some(patient) = present(&r.patient_id) {
        entities.push(json!({
            "what": { "reference": format!("Patient/{patient}") },
            "type": entity_type("1", "Person"),
            "role": object_role("1", "Patient"),
        }));
    }
    if let Some(tenant) = present(&r.tenant_id) {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:fhirgate:tenant", "value": tenant } },
            "type": entity_type("3", "Organization"),
        }));
    }
    if let Some(provider) = present(&r.provider_id) {
        entities.push(json!({
            "what": { "identifier": { "system": "urn:fhirgate:provider", "value": provider } },
            "type": entity_type("2", "System Object"),
            "role": object_role("17", "Data Repository"),
        }));
    }
    if !r.request_id.is_empty() {
        let value = if r.part == 0 { r.request_id.clone() } else { format!("{}#{}", r.request_id, r.part) };
        let mut request = json!({
            "what": { "identifier": { "system": "urn:fhirgate:request", "value": value } },
            "type": entity_type("4", "Other"),
        });
        if let Some(resource_type) = present(&r.resource_type) {
            request["detail"] = json!([{ "type": "resourceType", "valueString": resource_type }]);
        }
        entities.push(request);
    }
    if !entities.is_empty() {
        event.insert("entity".into(), Value::Array(entities));
    }
    Value::Object(event)
}

/// A value that FHIR can carry: absent or empty strings are left out.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn entity_type(code: &str, display: &str) -> Value {
    json!({ "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": code, "display": display })
}

fn object_role(code: &str, display: &str) -> Value {
    json!({ "system": "http://terminology.hl7.org/CodeSystem/object-role", "code": code, "display": display })
}

/// A stable FHIR id (`[A-Za-z0-9-.]{1,64}`) for a record: `<request_id>.<part>`
/// when that is one, else a digest of both. A digest has no dot, so the two
/// forms never meet.
pub fn audit_event_id(request_id: &str, part: u32) -> String {
    let readable = format!("{request_id}.{part}");
    let plain = !request_id.is_empty() && request_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain && readable.len() <= 64 {
        return readable;
    }
    let mut digest = Sha256::new();
    digest.update(request_id.as_bytes());
    digest.update(part.to_be_bytes());
    hex::encode(&digest.finalize()[..20])
}

/// `at_ms` as a FHIR instant in UTC with milliseconds, within years 0001–9999.
fn instant(at_ms: i64) -> String {
    use time::macros::format_description;
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z.
    const MIN_MS: i64 = -62_135_596_800_000;
    const MAX_MS: i64 = 253_402_300_799_999;
    let nanos = i128::from(at_ms.clamp(MIN_MS, MAX_MS)) * 1_000_000;
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use super::*;

    /// 2026-11-23T22:30:00.123Z
    const T0: i64 = 1_795_473_000_123;

    fn rec(request_id: &str, part: u32, at_ms: i64) -> AccessRecord {
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

    async fn log() -> AccessLog {
        AccessLog::start(Store::open("sqlite::memory:").await.unwrap())
    }

    fn ids(records: &[AccessRecord]) -> Vec<(String, u32)> {
        records.iter().map(|r| (r.request_id.clone(), r.part)).collect()
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_all_written_once() {
        let log = log().await;
        let mut tasks = Vec::new();
        for t in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..500 {
                    let mut r = rec(&format!("req-{t}-{i}"), 0, T0 + i);
                    r.client_id = Some(format!("client-{t}"));
                    log.record(r).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        log.flush().await;
        assert_eq!(log.stats(), (4000, 0));
        for t in 0..8 {
            let q = AccessQuery { client: Some(format!("client-{t}")), limit: Some(1000), ..Default::default() };
            let got = log.query(&q).await.unwrap();
            let unique: HashSet<_> = ids(&got).into_iter().collect();
            assert_eq!(got.len(), 500);
            assert_eq!(unique.len(), 500);
            assert!(got.iter().all(|r| r.request_id.starts_with(&format!("req-{t}-"))));
        }
        let (count,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(log.store.pool()).await.unwrap();
        assert_eq!(count, 4000);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_events_are_written_in_the_same_batches_as_records() {
        let log = log().await;
        let mut tasks = Vec::new();
        for t in 0..4 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..250 {
                    log.event("token-endpoint", "token.issued", format!("client:c{t}"), &json!({ "n": i })).await;
                    log.record(rec(&format!("req-{t}-{i}"), 0, T0 + i)).await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        log.flush().await;
        assert_eq!(log.stats(), (2000, 0));
        let (events,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM audit_events WHERE action = 'token.issued'")
            .fetch_one(log.store.pool())
            .await
            .unwrap();
        assert_eq!(events, 1000);
        // Every field in its column, whatever row of a statement it was.
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT actor, action, subject, detail, at FROM audit_events WHERE subject = 'client:c2' ORDER BY event_id",
        )
        .fetch_all(log.store.pool())
        .await
        .unwrap();
        assert_eq!(rows.len(), 250);
        let numbers: HashSet<i64> = rows
            .iter()
            .map(|(actor, action, subject, detail, at)| {
                assert_eq!(
                    (actor.as_str(), action.as_str(), subject.as_str()),
                    ("token-endpoint", "token.issued", "client:c2")
                );
                assert!(*at > 1_700_000_000, "{at}");
                serde_json::from_str::<Value>(detail).unwrap()["n"].as_i64().unwrap()
            })
            .collect();
        assert_eq!(numbers, (0..250).collect());
        let (records,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(log.store.pool()).await.unwrap();
        assert_eq!(records, 1000);
    }

    #[tokio::test]
    async fn a_full_queue_makes_record_wait_not_drop() {
        let log = AccessLog::with_capacity(Store::open("sqlite::memory:").await.unwrap(), 2);
        for i in 0..300 {
            log.record(rec(&format!("r{i:03}"), 0, T0)).await;
        }
        log.flush().await;
        assert_eq!(log.stats(), (300, 0));
        let got = log.query(&AccessQuery { limit: Some(1000), ..Default::default() }).await.unwrap();
        assert_eq!(got.len(), 300);
    }

    #[tokio::test]
    async fn records_are_committed_after_the_linger_without_a_flush() {
        let log = log().await;
        log.record(rec("lone", 0, T0)).await;
        // Nothing else arrives: the writer commits once the linger is over.
        let waited = std::time::Instant::now();
        while log.stats().0 < 1 {
            assert!(waited.elapsed() < Duration::from_secs(5), "never committed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(waited.elapsed() >= LINGER / 2, "committed before the linger: {:?}", waited.elapsed());
        let got = log.query(&AccessQuery::default()).await.unwrap();
        assert_eq!(ids(&got), [("lone".to_owned(), 0)]);
        // A batch's worth is committed at once, without waiting.
        for i in 0..BATCH_MAX {
            log.record(rec(&format!("b{i:04}"), 0, T0)).await;
        }
        let waited = std::time::Instant::now();
        while log.stats().0 < 1 + BATCH_MAX as u64 {
            assert!(waited.elapsed() < Duration::from_secs(5), "the full batch was never committed");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn records_round_trip_unchanged() {
        let log = log().await;
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

    #[tokio::test]
    async fn queries_filter_by_each_field() {
        let log = log().await;
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
    }

    #[tokio::test]
    async fn limit_defaults_to_100_and_is_capped_at_1000() {
        let log = log().await;
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

    #[tokio::test]
    async fn records_come_back_oldest_first() {
        let log = log().await;
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

    #[tokio::test]
    async fn a_repeated_id_fails_alone() {
        let log = log().await;
        log.record(rec("dup", 0, T0)).await;
        log.flush().await;
        assert_eq!(log.stats(), (1, 0));

        // Queued together, so likely in one batch with the repeat: the
        // others are written all the same.
        let mut repeat = rec("dup", 0, T0 + 1);
        repeat.status = 500;
        log.record(rec("x", 0, T0 + 2)).await;
        log.record(repeat).await;
        log.record(rec("y", 0, T0 + 3)).await;
        log.flush().await;
        assert_eq!(log.stats(), (3, 1));

        let got = log.query(&AccessQuery::default()).await.unwrap();
        assert_eq!(ids(&got), [("dup".to_owned(), 0), ("x".to_owned(), 0), ("y".to_owned(), 0)]);
        assert_eq!(got[0].status, 200, "the first record stands");

        // The log keeps working afterwards.
        log.record(rec("z", 0, T0 + 4)).await;
        log.flush().await;
        assert_eq!(log.stats(), (4, 1));
    }

    #[tokio::test]
    async fn a_batch_with_a_repeated_id_writes_the_rest() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let stats = Stats::default();
        let mut batch = Batch {
            records: vec![rec("a", 0, T0), rec("b", 0, T0), rec("a", 0, T0 + 1), rec("c", 0, T0)],
            events: Vec::new(),
        };
        write(&store, &mut batch, &stats).await;
        assert!(batch.records.is_empty());
        assert_eq!((stats.written.load(Ordering::Relaxed), stats.failed.load(Ordering::Relaxed)), (3, 1));
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT request_id, at_ms FROM access_log ORDER BY request_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, [("a".to_owned(), T0), ("b".to_owned(), T0), ("c".to_owned(), T0)]);
    }

    #[tokio::test]
    async fn flush_without_records_returns() {
        let log = log().await;
        log.flush().await;
        log.flush().await;
        assert_eq!(log.stats(), (0, 0));
    }

    fn entity<'a>(event: &'a Value, system: &str) -> Option<&'a Value> {
        event["entity"].as_array()?.iter().find(|e| e["what"]["identifier"]["system"] == system)
    }

    #[test]
    fn a_successful_read_as_an_audit_event() {
        let r = rec("0af7651916cd43dd8448eb211c80319c", 0, T0);
        let bundle = audit_event_bundle(std::slice::from_ref(&r), "gateway-1");
        assert_eq!(bundle["resourceType"], "Bundle");
        assert_eq!(bundle["type"], "searchset");
        assert_eq!(bundle["total"], 1);
        assert_eq!(bundle["entry"][0]["search"]["mode"], "match");
        let e = &bundle["entry"][0]["resource"];
        assert_eq!(e["resourceType"], "AuditEvent");
        assert_eq!(e["id"], "0af7651916cd43dd8448eb211c80319c.0");
        assert_eq!(e["type"]["code"], "rest");
        assert_eq!(e["type"]["system"], "http://terminology.hl7.org/CodeSystem/audit-event-type");
        assert_eq!(
            e["subtype"][0],
            json!({"system": "http://hl7.org/fhir/restful-interaction", "code": "read", "display": "read"})
        );
        assert_eq!(e["action"], "R");
        assert_eq!(e["recorded"], "2026-11-23T22:30:00.123Z");
        assert_eq!(e["outcome"], "0");
        assert_eq!(e["outcomeDesc"], "HTTP 200 in 12.3 ms");
        assert_eq!(e["agent"][0]["who"]["identifier"], json!({"system": "urn:fhirgate:client", "value": "client-a"}));
        assert_eq!(e["agent"][0]["requestor"], true);
        assert_eq!(e["source"]["observer"]["display"], "gateway-1");
        assert_eq!(e["source"]["site"], "stu3");
        assert_eq!(e["source"]["type"][0]["code"], "3");
        let patient = &e["entity"][0];
        assert_eq!(patient["what"]["reference"], "Patient/p1");
        assert_eq!(patient["type"]["code"], "1");
        assert_eq!(patient["role"]["code"], "1");
        assert_eq!(entity(e, "urn:fhirgate:tenant").unwrap()["what"]["identifier"]["value"], "tenant-a");
        assert_eq!(entity(e, "urn:fhirgate:provider").unwrap()["what"]["identifier"]["value"], "provider-a");
        let request = entity(e, "urn:fhirgate:request").unwrap();
        assert_eq!(request["what"]["identifier"]["value"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(request["detail"][0], json!({"type": "resourceType", "valueString": "Patient"}));
    }

    #[test]
    fn an_unauthenticated_denial_as_an_audit_event() {
        let r = AccessRecord {
            client_id: None,
            tenant_id: None,
            provider_id: None,
            patient_id: None,
            resource_type: None,
            interaction: "-".into(),
            outcome: Outcome::Denied,
            status: 401,
            latency_us: 80,
            ..rec("d1", 0, T0)
        };
        let e = &audit_event_bundle(&[r], "gateway-1")["entry"][0]["resource"];
        assert_eq!(e["outcome"], "4");
        assert_eq!(e["outcomeDesc"], "HTTP 401 in 0.1 ms");
        assert_eq!(e["agent"][0]["who"], json!({"display": "unauthenticated"}));
        assert_eq!(e["agent"][0]["requestor"], true);
        assert!(e.get("subtype").is_none() && e.get("action").is_none());
        let entities = e["entity"].as_array().unwrap();
        assert_eq!(entities.len(), 1, "only the request is known: {entities:?}");
        assert_eq!(entities[0]["what"]["identifier"]["value"], "d1");
        assert!(entities[0].get("detail").is_none());
    }

    #[test]
    fn batch_records_as_audit_events() {
        let mut batch = rec("b1", 0, T0);
        batch.interaction = "batch".into();
        batch.patient_id = None;
        batch.resource_type = None;
        let mut entry = rec("b1", 2, T0);
        entry.interaction = "search".into();
        entry.resource_type = Some("Observation".into());
        entry.outcome = Outcome::ProviderError;
        entry.status = 502;
        let bundle = audit_event_bundle(&[batch, entry], "gw");
        assert_eq!(bundle["total"], 2);
        let (b, e) = (&bundle["entry"][0]["resource"], &bundle["entry"][1]["resource"]);
        assert_eq!(b["action"], "E");
        assert_eq!(b["subtype"][0]["code"], "batch");
        assert_eq!(b["id"], "b1.0");
        assert_eq!(entity(b, "urn:fhirgate:request").unwrap()["what"]["identifier"]["value"], "b1");
        assert_eq!(e["action"], "R");
        assert_eq!(e["subtype"][0]["code"], "search-type");
        assert_eq!(e["outcome"], "8");
        assert_eq!(e["id"], "b1.2");
        assert_eq!(entity(e, "urn:fhirgate:request").unwrap()["what"]["identifier"]["value"], "b1#2");
        assert_eq!(entity(e, "urn:fhirgate:request").unwrap()["detail"][0]["valueString"], "Observation");
    }

    #[test]
    fn an_empty_bundle_has_no_entry() {
        assert_eq!(audit_event_bundle(&[], "gw"), json!({"resourceType": "Bundle", "type": "searchset", "total": 0}));
    }

    #[test]
    fn event_ids_are_valid_stable_and_distinct() {
        let valid = |id: &str| {
            !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        let long = "x".repeat(63);
        let cases = [("abc", 0), ("abc", 1), ("a.b", 0), ("a b/c", 7), ("", 0), (long.as_str(), 0), (long.as_str(), 1)];
        let ids: Vec<String> = cases.iter().map(|(r, p)| audit_event_id(r, *p)).collect();
        assert!(ids.iter().all(|id| valid(id)), "{ids:?}");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "{ids:?}");
        assert_eq!(audit_event_id("abc", 1), "abc.1");
        assert_eq!(audit_event_id("a b/c", 7), audit_event_id("a b/c", 7));
    }

    #[test]
    fn instants_are_clamped_to_four_digit_years() {
        assert_eq!(instant(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(instant(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(instant(i64::MIN), "0001-01-01T00:00:00.000Z");
    }

    /// Writes a Bundle covering every shape of AuditEvent to the file named by
    /// `FHIRGATE_AUDIT_SAMPLE` (or prints it), for an independent validator:
    /// `tests/python/validate_fhir.py --version r4 FILE`.
    #[test]
    #[ignore = "produces a sample for external validation"]
    fn sample_audit_bundle() {
        let mut records = vec![rec("0af7651916cd43dd8448eb211c80319c", 0, T0)];
        let mut batch = rec("batch-1", 0, T0 + 1);
        batch.interaction = "batch".into();
        batch.patient_id = None;
        records.push(batch);
        for (part, (interaction, status, provider_fault)) in
            [("read", 200, false), ("vread", 404, false), ("search", 502, true), ("other", 500, false)]
                .into_iter()
                .enumerate()
        {
            let mut r = rec("batch-1", part as u32 + 1, T0 + 1);
            r.interaction = interaction.into();
            r.status = status;
            r.outcome = Outcome::from_status(status, provider_fault);
            records.push(r);
        }
        let mut capabilities = rec("c/1 odd id", 0, T0 + 2);
        capabilities.interaction = "capabilities".into();
        capabilities.face = "dstu2".into();
        capabilities.patient_id = None;
        capabilities.resource_type = None;
        records.push(capabilities);
        records.push(AccessRecord {
            client_id: None,
            tenant_id: None,
            provider_id: None,
            patient_id: None,
            resource_type: None,
            interaction: "-".into(),
            outcome: Outcome::Denied,
            status: 401,
            ..rec("d1", 0, T0 + 3)
        });
        let text = serde_json::to_string_pretty(&audit_event_bundle(&records, "fhirgate test")).unwrap();
        match std::env::var_os("FHIRGATE_AUDIT_SAMPLE") {
            Some(path) => std::fs::write(path, text).unwrap(),
            None => println!("{text}"),
        }
    }
}

//! The access log's writer: records of brokered accesses and change events
//! queued to one task that commits them in batched transactions (group
//! commit) to the [`AccessRepository`], and read back through it.
//!
//! By default ([`Commit::BeforeAnswer`]) a request's record is committed
//! before its answer is sent: [`AccessLog::record`] waits for the commit.
//! Concurrent requests share commits: the writer commits whatever is queued
//! as soon as the previous commit ends, so the cost under load is a fraction
//! of a sync per request. [`Commit::Buffered`] answers at once and commits
//! within [`LINGER`], which is faster and may lose that window's records to
//! a crash.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fhirgate_store::access::{AccessQuery, AccessRecord, AccessRepository, Event, Traffic};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

/// Records queued before `record` waits for the writer. A burst this large
/// is seconds of a busy gateway's traffic; past it, requests slow down rather
/// than go unrecorded.
const QUEUE_CAPACITY: usize = 8192;

/// Records written in one transaction at most: large enough that a burst
/// costs few commits, small enough that a commit stays short.
const BATCH_MAX: usize = 1024;

/// With [`Commit::Buffered`], how long the writer waits for more records
/// before it commits what it has: every commit syncs the database file, and
/// waiting a little turns hundreds of commits a second into a few dozen. A
/// record reaches the disk this late (plus the commit before it, if one
/// runs); a flush (a query of the trail, shutdown) does not wait.
pub const LINGER: std::time::Duration = std::time::Duration::from_millis(20);

/// When an access record, a token event, is committed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Commit {
    /// Before the answer is sent: nothing answered goes unrecorded, even
    /// on a crash. The default.
    #[default]
    BeforeAnswer,
    /// Within [`LINGER`] after the answer: faster, and a crash may lose the
    /// records of that window.
    Buffered,
}

/// Told once a record is committed: whether it was written.
type Ack = oneshot::Sender<bool>;

/// What the writer task receives.
enum Message {
    Record(Box<AccessRecord>, Option<Ack>),
    Event(Box<Event>, Option<Ack>),
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
    repo: Arc<dyn AccessRepository>,
    stats: Arc<Stats>,
    commit: Commit,
}

impl AccessLog {
    /// Starts the writer task on the current tokio runtime.
    pub fn start(repo: Arc<dyn AccessRepository>, commit: Commit) -> AccessLog {
        Self::with_capacity(repo, QUEUE_CAPACITY, commit)
    }

    fn with_capacity(repo: Arc<dyn AccessRepository>, capacity: usize, commit: Commit) -> AccessLog {
        let (tx, rx) = mpsc::channel(capacity);
        let stats = Arc::new(Stats::default());
        tokio::spawn(run_writer(repo.clone(), rx, stats.clone()));
        AccessLog { tx, repo, stats, commit }
    }

    /// Records `r`: committed before this returns under
    /// [`Commit::BeforeAnswer`], queued under [`Commit::Buffered`]. Waits
    /// while the queue is full (a record is never dropped for lack of
    /// room). False when the record could not be written (logged by its
    /// ids and counted): the caller must not release what it records.
    pub async fn record(&self, r: AccessRecord) -> bool {
        let (ack, written) = self.ack();
        self.send_record(r, ack).await && written.await
    }

    /// Queues `r` without waiting for its commit: for records that a later
    /// [`AccessLog::record`] covers (the writer commits in queue order), or
    /// that no answer waits for.
    pub async fn queue(&self, r: AccessRecord) {
        self.send_record(r, None).await;
    }

    /// Hands `r` to the writer; false (logged and counted) when it has stopped.
    async fn send_record(&self, r: AccessRecord, ack: Option<Ack>) -> bool {
        let Err(mpsc::error::SendError(message)) = self.tx.send(Message::Record(Box::new(r), ack)).await else {
            return true;
        };
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        if let Message::Record(r, _) = message {
            tracing::error!(request_id = %r.request_id, part = r.part, "access log: the writer has stopped; record lost");
        }
        false
    }

    /// Records an event for the change audit trail, committed like
    /// [`AccessLog::record`]; false when it could not be written. `detail`
    /// must not hold secrets.
    pub async fn event(
        &self,
        actor: &'static str,
        action: &'static str,
        subject: String,
        detail: &serde_json::Value,
    ) -> bool {
        let event = Event::new(actor, action, subject, detail);
        let (ack, written) = self.ack();
        if self.tx.send(Message::Event(Box::new(event), ack)).await.is_err() {
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(action, "audit trail: the writer has stopped; event lost");
            return false;
        }
        written.await
    }

    /// An acknowledgement to send with a message, and what waits for it:
    /// nothing to wait for when records are buffered.
    fn ack(&self) -> (Option<Ack>, impl std::future::Future<Output = bool> + use<>) {
        let (tx, rx) = match self.commit {
            Commit::BeforeAnswer => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            Commit::Buffered => (None, None),
        };
        // A writer gone before answering wrote nothing.
        (tx, async move {
            match rx {
                Some(rx) => rx.await.unwrap_or(false),
                None => true,
            }
        })
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
    /// Flush first for what was recorded just before.
    pub async fn query(&self, q: &AccessQuery) -> anyhow::Result<Vec<AccessRecord>> {
        self.repo.query(q).await
    }

    /// Requests per `bucket_ms` since `since_ms`, as committed (`flush`
    /// first for what is still queued).
    pub async fn traffic(&self, since_ms: i64, bucket_ms: i64) -> anyhow::Result<Vec<Traffic>> {
        self.repo.traffic(since_ms, bucket_ms).await
    }

    /// Records written and records failed so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.stats.written.load(Ordering::Relaxed), self.stats.failed.load(Ordering::Relaxed))
    }
}
/// The writer task: gathers what is queued, writes it in one transaction,
/// and answers acknowledgements and flushes in queue order. A batch holding
/// a record someone waits for is committed at once, with everything queued
/// behind it (group commit); otherwise it waits up to [`LINGER`] or a full
/// batch.
async fn run_writer(repo: Arc<dyn AccessRepository>, mut rx: mpsc::Receiver<Message>, stats: Arc<Stats>) {
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
                    write(&*repo, &mut batch, &stats).await;
                    due = None;
                    continue;
                }
            },
        };
        if received == 0 {
            // Every handle is gone and the queue is drained.
            write(&*repo, &mut batch, &stats).await;
            return;
        }
        for message in inbox.drain(..) {
            match message {
                Message::Record(r, ack) => {
                    batch.records.push(*r);
                    batch.record_acks.push(ack);
                }
                Message::Event(e, ack) => {
                    batch.events.push(*e);
                    batch.event_acks.push(ack);
                }
                Message::Flush(done) => {
                    write(&*repo, &mut batch, &stats).await;
                    due = None;
                    let _ = done.send(());
                }
            }
        }
        let now = tokio::time::Instant::now();
        if batch.len() >= BATCH_MAX || batch.awaited() || due.is_some_and(|at| at <= now) {
            write(&*repo, &mut batch, &stats).await;
            due = None;
        } else if !batch.is_empty() && due.is_none() {
            due = Some(now + LINGER);
        }
    }
}

/// Access records and audit events written in one transaction, with the
/// acknowledgements owed for them.
#[derive(Default)]
struct Batch {
    records: Vec<AccessRecord>,
    record_acks: Vec<Option<Ack>>,
    events: Vec<Event>,
    event_acks: Vec<Option<Ack>>,
}

impl Batch {
    fn len(&self) -> usize {
        self.records.len() + self.events.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Someone waits for this batch's commit.
    fn awaited(&self) -> bool {
        self.record_acks.iter().chain(&self.event_acks).any(Option::is_some)
    }
}

/// Writes and empties `batch`, counting every record and event as written
/// or failed and telling whoever waits for one.
async fn write(repo: &dyn AccessRepository, batch: &mut Batch, stats: &Stats) {
    if batch.is_empty() {
        return;
    }
    let (records_written, events_written) = if repo.append(&batch.records, &batch.events).await.is_ok() {
        (vec![true; batch.records.len()], vec![true; batch.events.len()])
    } else {
        // One bad record (a repeated id) must not cost the others theirs, so
        // the batch is retried record by record, each on its own.
        let mut records = Vec::with_capacity(batch.records.len());
        for r in &batch.records {
            let result = repo.append_record(r).await;
            if let Err(e) = &result {
                tracing::error!(request_id = %r.request_id, part = r.part, error = %format!("{e:#}"), "access log: record not written");
            }
            records.push(result.is_ok());
        }
        let mut events = Vec::with_capacity(batch.events.len());
        for e in &batch.events {
            let result = repo.append_event(e).await;
            if let Err(err) = &result {
                tracing::error!(event_id = %e.event_id, action = e.action, error = %format!("{err:#}"), "audit trail: event not written");
            }
            events.push(result.is_ok());
        }
        (records, events)
    };
    let written = records_written.iter().chain(&events_written).filter(|w| **w).count() as u64;
    stats.written.fetch_add(written, Ordering::Relaxed);
    stats.failed.fetch_add((batch.len() as u64) - written, Ordering::Relaxed);
    let acks = batch.record_acks.drain(..).zip(records_written).chain(batch.event_acks.drain(..).zip(events_written));
    for (ack, ok) in acks {
        if let Some(ack) = ack {
            let _ = ack.send(ok);
        }
    }
    batch.records.clear();
    batch.events.clear();
}

#[cfg(test)]
mod tests {
    use fhirgate_store::access::fixtures::{T0, rec};
    use std::collections::HashSet;
    use std::time::Duration;

    use fhirgate_store::Store;
    use fhirgate_store::access::AccessQuery;
    use serde_json::{Value, json};

    use super::*;

    async fn log() -> AccessLog {
        AccessLog::start(Arc::new(Store::open("sqlite::memory:").await.unwrap()), Commit::Buffered)
    }

    /// A log and the store behind it, to count rows in.
    async fn log_and_store() -> (AccessLog, Store) {
        let store = Store::open("sqlite::memory:").await.unwrap();
        (AccessLog::start(Arc::new(store.clone()), Commit::Buffered), store)
    }

    fn ids(records: &[AccessRecord]) -> Vec<(String, u32)> {
        records.iter().map(|r| (r.request_id.clone(), r.part)).collect()
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_records_are_all_written_once() {
        let (log, store) = log_and_store().await;
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
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(store.pool()).await.unwrap();
        assert_eq!(count, 4000);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn audit_events_are_written_in_the_same_batches_as_records() {
        let (log, store) = log_and_store().await;
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
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(events, 1000);
        // Every field in its column, whatever row of a statement it was.
        let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT actor, action, subject, detail, at FROM audit_events WHERE subject = 'client:c2' ORDER BY event_id",
        )
        .fetch_all(store.pool())
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
            sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(store.pool()).await.unwrap();
        assert_eq!(records, 1000);
    }
    #[tokio::test]
    async fn a_full_queue_makes_record_wait_not_drop() {
        let log =
            AccessLog::with_capacity(Arc::new(Store::open("sqlite::memory:").await.unwrap()), 2, Commit::Buffered);
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
        let records = vec![rec("a", 0, T0), rec("b", 0, T0), rec("a", 0, T0 + 1), rec("c", 0, T0)];
        let mut batch = Batch { record_acks: records.iter().map(|_| None).collect(), records, ..Batch::default() };
        write(&store, &mut batch, &stats).await;
        assert!(batch.records.is_empty());
        assert_eq!((stats.written.load(Ordering::Relaxed), stats.failed.load(Ordering::Relaxed)), (3, 1));
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT request_id, at_ms FROM access_log ORDER BY request_id")
            .fetch_all(store.pool())
            .await
            .unwrap();
        assert_eq!(rows, [("a".to_owned(), T0), ("b".to_owned(), T0), ("c".to_owned(), T0)]);
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_record_is_committed_before_record_returns_and_concurrent_ones_share_commits() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let log = AccessLog::start(Arc::new(store.clone()), Commit::BeforeAnswer);
        assert!(log.record(rec("one", 0, T0)).await);
        // No flush: it is in the store already.
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(store.pool()).await.unwrap();
        assert_eq!(count, 1);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let log = log.clone();
                tokio::spawn(async move { log.record(rec(&format!("c{i}"), 0, T0)).await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap());
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM access_log").fetch_one(store.pool()).await.unwrap();
        assert_eq!(count, 201);
        // A repeated id is not written, and its caller is told.
        assert!(!log.record(rec("one", 0, T0 + 1)).await);
        assert_eq!(log.stats(), (201, 1));
    }

    #[tokio::test]
    async fn flush_without_records_returns() {
        let log = log().await;
        log.flush().await;
        log.flush().await;
        assert_eq!(log.stats(), (0, 0));
    }
}

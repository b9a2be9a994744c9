//! The access log's own connection to a SQLite file: appends run on the
//! calling thread, without the hand-off to a database worker thread that
//! every `sqlx` statement takes. When answers wait for their records, that
//! hand-off (a thread woken on a busy machine) is most of a commit's
//! latency; the commit itself is an append to the write-ahead log and one
//! sync.

use std::path::Path;
use std::sync::Mutex;

use anyhow::Context as _;
use rusqlite::{Connection, TransactionBehavior, params};

use crate::access::{AccessRecord, Event};

/// One connection, used by one appender at a time.
pub(crate) struct Appender {
    conn: Mutex<Connection>,
}

const INSERT_RECORD: &str = "INSERT INTO access_log (request_id, part, at_ms, client_id, tenant_id, provider_id, \
     face, interaction, resource_type, patient_id, outcome, status, latency_us) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";
const INSERT_EVENT: &str =
    "INSERT INTO audit_events (event_id, at, actor, action, subject, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

impl Appender {
    /// Opens `file` (migrated already) as the pool's connections are:
    /// write-ahead log, synced at every commit.
    pub(crate) fn open(file: &Path) -> anyhow::Result<Appender> {
        let conn = Connection::open(file).with_context(|| format!("opening {}", file.display()))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")
            .with_context(|| format!("configuring {}", file.display()))?;
        Ok(Appender { conn: Mutex::new(conn) })
    }

    /// Appends `records` and `events` in one transaction, on this thread;
    /// on a multi-threaded runtime the worker's other tasks move elsewhere
    /// meanwhile.
    pub(crate) fn append(&self, records: &[AccessRecord], events: &[Event]) -> anyhow::Result<()> {
        let run = || self.append_here(records, events);
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }

    fn append_here(&self, records: &[AccessRecord], events: &[Event]) -> anyhow::Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT_RECORD)?;
            for r in records {
                insert.execute(params![
                    r.request_id,
                    i64::from(r.part),
                    r.at_ms,
                    r.client_id,
                    r.tenant_id,
                    r.provider_id,
                    r.face,
                    r.interaction,
                    r.resource_type,
                    r.patient_id,
                    r.outcome.as_str(),
                    i64::from(r.status),
                    i64::try_from(r.latency_us).unwrap_or(i64::MAX),
                ])?;
            }
            let mut insert = tx.prepare_cached(INSERT_EVENT)?;
            for e in events {
                insert.execute(params![e.event_id, e.at, e.actor, e.action, e.subject, e.detail])?;
            }
        }
        tx.commit().context("committing access records")
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;
    use crate::access::fixtures::{T0, rec};
    use crate::access::{AccessQuery, AccessRepository as _, Event};

    async fn appended_on(store: &Store) {
        let event = Event::new("test", "token.issued", "client:a".into(), &serde_json::json!({ "n": 1 }));
        store.append(&[rec("a", 0, T0), rec("a", 1, T0)], &[event]).await.unwrap();
        let got = store.query(&AccessQuery::default()).await.unwrap();
        assert_eq!(got.len(), 2);
        // A repeated id fails the whole batch: nothing of it is written.
        assert!(store.append(&[rec("b", 0, T0), rec("a", 0, T0)], &[]).await.is_err());
        assert_eq!(store.query(&AccessQuery::default()).await.unwrap().len(), 2);
        let (events,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM audit_events").fetch_one(store.pool()).await.unwrap();
        assert_eq!(events, 1);
    }

    #[tokio::test]
    async fn appends_are_committed_whole_and_read_back_through_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        appended_on(&Store::open_dir(&dir.path().join("data")).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_threaded_runtime_too() {
        let dir = tempfile::tempdir().unwrap();
        appended_on(&Store::open_dir(&dir.path().join("data")).await.unwrap()).await;
    }
}

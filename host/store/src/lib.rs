//! fhirgate-store: persistent state — the client registry and its secrets,
//! signing keys, the tenant directory, the access log and the audit trail of
//! changes — in SQLite by default (a file in the data directory, created on
//! first run). Queries go through `sqlx`'s `Any` driver in portable SQL, with
//! the migrations in `migrations/sqlite/`, so that a PostgreSQL backend can
//! sit beside it with its own `migrations/postgres/`. The gateway reaches
//! everything through repository traits that return plain rows:
//! [`clients::ClientRepository`], [`keys::KeyRepository`],
//! [`directory::DirectoryRepository`] (whose changes are transactions,
//! [`directory::DirectoryTx`]) and [`access::AccessRepository`].
//!
//! Layout:
//! - [`Store`]: the pool, the schema, write transactions;
//! - [`accounts`]: people on the admin API, their roles and hashed personal
//!   API tokens;
//! - [`sign_in`]: passwords, TOTP second factors and sessions of accounts;
//! - [`clients`]: registered clients and their hashed secrets, behind
//!   [`clients::ClientRepository`];
//! - [`keys`]: signing keys as rows (sealed), behind [`keys::KeyRepository`];
//! - [`material`]: the key-encryption key, secret-hash and cursor keys that
//!   go with a database, checked against it;
//! - [`directory`]: providers, tenant mappings and their history as rows,
//!   behind [`directory::DirectoryRepository`];
//! - [`access`]: access records and change events as rows, behind
//!   [`access::AccessRepository`]; `appender`: their own connection to a
//!   SQLite file, appending on the calling thread.

pub mod access;
pub mod accounts;
mod appender;
pub mod clients;
pub mod directory;
pub mod identities;
pub mod invitations;
pub mod keys;
pub mod material;
pub mod sign_in;

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub use clients::{Client, ClientStatus, Registry, SecretInfo};

/// What a repository method returns: a boxed future, so that the
/// repositories are used as trait objects, whichever database is behind them.
/// `E` is the repository's error.
pub type RepoFuture<'a, T, E = anyhow::Error> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'a>>;

/// The embedded migrations, applied on open.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// A connection pool with the schema applied.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    sqlite: bool,
    /// The access log's own connection, for a SQLite file.
    appender: Option<std::sync::Arc<appender::Appender>>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database in `data_dir`.
    pub async fn open_dir(data_dir: &Path) -> anyhow::Result<Store> {
        fhirgate_core::files::private_dir(data_dir)?;
        let file: PathBuf = data_dir.join("fhirgate.sqlite3");
        // Created private; SQLite gives its -wal and -shm files the
        // database's own mode.
        if !file.exists() {
            fhirgate_core::files::write_private(&file, b"")?;
        }
        for path in [file.clone(), data_dir.join("fhirgate.sqlite3-wal"), data_dir.join("fhirgate.sqlite3-shm")] {
            if path.exists() {
                fhirgate_core::files::check_private(&path)?;
            }
        }
        let mut store = Self::open(&format!("sqlite://{}?mode=rwc", file.display())).await?;
        store.appender = Some(std::sync::Arc::new(appender::Appender::open(&file)?));
        Ok(store)
    }

    /// Opens the database at `url` (`sqlite://…` or `sqlite::memory:`) and
    /// applies pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        // An in-memory SQLite database lives as long as its one connection.
        let memory = url.contains(":memory:");
        let mut options = AnyPoolOptions::new().max_connections(if memory { 1 } else { 4 });
        if memory {
            // The database lives and dies with its one connection: never
            // recycle it.
            options = options.min_connections(1).max_lifetime(None).idle_timeout(None);
        } else if url.starts_with("sqlite:") {
            // Write-ahead logging: a commit appends to the log and syncs it
            // once (synchronous = FULL: a committed access record survives a
            // power cut), where the default rollback journal writes, syncs
            // and deletes a journal file besides; and readers (audit
            // queries) do not block the writer. A larger page cache (8 MiB,
            // not 2) keeps the access log's index pages in memory between
            // commits instead of reading them again.
            options = options.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor as _;
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -8192;")
                        .await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(url).await.with_context(|| format!("opening the store at {}", redact(url)))?;
        MIGRATOR.run(&pool).await.context("applying store migrations")?;
        Ok(Store { pool, sqlite: url.starts_with("sqlite:"), appender: None })
    }

    /// Whether the database answers a trivial query within `within`.
    pub async fn ping(&self, within: std::time::Duration) -> anyhow::Result<()> {
        match tokio::time::timeout(within, sqlx::query("SELECT 1").execute(&self.pool)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context("the store did not answer")),
            Err(_) => anyhow::bail!("the store did not answer within {} ms", within.as_millis()),
        }
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Writes a consistent copy of the database to the new file `target`
    /// (mode 0600) while others keep reading and writing: SQLite's
    /// `VACUUM INTO`, one read transaction over everything committed.
    pub async fn snapshot_into(&self, target: &Path) -> anyhow::Result<()> {
        if !self.sqlite {
            anyhow::bail!("only a SQLite store is copied by `fhirgate backup`");
        }
        // VACUUM INTO takes an empty file: created private first.
        fhirgate_core::files::write_private(target, b"")?;
        let path = target.to_str().context("the backup path is not UTF-8")?;
        sqlx::query("VACUUM INTO $1")
            .bind(path)
            .execute(&self.pool)
            .await
            .with_context(|| format!("copying the database to {}", target.display()))?;
        Ok(())
    }

    /// A transaction that reads and then writes. On SQLite it takes the
    /// write lock up front (`BEGIN IMMEDIATE`), waiting its turn behind other
    /// writers, instead of failing when another connection wrote after it
    /// first read.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        if self.sqlite { self.pool.begin_with("BEGIN IMMEDIATE").await } else { self.pool.begin().await }
    }
}

/// A change-event id that sorts by creation time (nanoseconds, then random
/// bits), so events recorded within the same second keep their order.
pub fn event_id() -> String {
    let nanos = fhirgate_core::clock::now_nanos();
    format!("evt_{nanos:020}{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A database URL without any password in it, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

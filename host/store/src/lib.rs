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
pub mod changes;
pub mod clients;
pub mod directory;
pub mod identities;
pub mod invitations;
pub mod keys;
pub mod material;
pub mod modules;
pub mod sign_in;
#[cfg(any(test, feature = "fixtures"))]
pub mod testing;
mod throttle;

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

/// The embedded migrations of each backend, applied on open.
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database is behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend of a database URL: `sqlite:…`, or `postgres://…` /
    /// `postgresql://…`.
    pub fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!(
                "database URL {} names no database this gateway knows: write postgres://user:password@host:port/name \
                 (or sqlite://path)",
                redact(url)
            )
        }
    }
}

/// The advisory lock every read-then-write transaction on PostgreSQL takes
/// first: writers on every replica take turns, as SQLite's `BEGIN IMMEDIATE`
/// makes writers on one file do (the constant is "fhirgate" in ASCII).
const WRITE_LOCK: i64 = 0x6668_6972_6761_7465;

/// A connection pool with the schema applied.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database's URL, for a connection of its own (a listener).
    url: Option<std::sync::Arc<str>>,
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

    /// The gateway's lasting state and its key material: the database at
    /// `database_url` when one is given (its keys sealed in it, the KEK from
    /// `FHIRGATE_KEK`, `kek_file` or `kek.key` in `data_dir`), else the SQLite
    /// database in `data_dir` (its keys in files beside it); `None` when
    /// neither is given.
    pub async fn open_state(
        data_dir: Option<&Path>,
        database_url: Option<&str>,
        kek_file: Option<&Path>,
    ) -> anyhow::Result<Option<(Store, material::KeyMaterial)>> {
        if let Some(url) = database_url {
            let store = Store::open(url).await?;
            let kek_file =
                kek_file.map(Path::to_path_buf).or_else(|| data_dir.map(|d| d.join(fhirgate_core::vault::FILE_NAME)));
            let material = material::KeyMaterial::open_in_database(&store, kek_file.as_deref()).await?;
            return Ok(Some((store, material)));
        }
        let Some(dir) = data_dir else { return Ok(None) };
        let store = Store::open_dir(dir).await?;
        let material = material::KeyMaterial::open(&store, dir, kek_file).await?;
        Ok(Some((store, material)))
    }

    /// Opens the database at `url` (`postgres://…`, `sqlite://…` or
    /// `sqlite::memory:`) and applies pending migrations.
    pub async fn open(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        // An in-memory SQLite database lives as long as its one connection.
        let memory = url.contains(":memory:");
        let backend = Backend::of(url)?;
        let connections = match backend {
            _ if memory => 1,
            Backend::Sqlite => 4,
            // Requests wait on the network, not a file lock: more at once.
            Backend::Postgres => 16,
        };
        let mut options = AnyPoolOptions::new().max_connections(connections);
        if backend == Backend::Postgres {
            // A database server that is down fails a request in seconds,
            // not at sqlx's default 30 s, and readiness says so.
            options = options.acquire_timeout(std::time::Duration::from_secs(5));
        }
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
        let migrations = match backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        // On PostgreSQL, sqlx takes an advisory lock around the migrations:
        // replicas starting together apply them once.
        migrations.run(&pool).await.context("applying store migrations")?;
        Ok(Store { pool, backend, url: Some(url.into()), appender: None })
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
        if self.backend != Backend::Sqlite {
            anyhow::bail!(
                "only a SQLite store is copied by `fhirgate backup`: back up a PostgreSQL database with its own tools \
                 (pg_dump, or continuous archiving)"
            );
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

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A transaction that reads and then writes. It takes the write lock up
    /// front, waiting its turn behind other writers, instead of failing (or
    /// acting on what it read) when another connection wrote after it first
    /// read: `BEGIN IMMEDIATE` on SQLite; on PostgreSQL a transaction-scoped
    /// advisory lock that writers on every replica share.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK).execute(&mut *tx).await?;
                Ok(tx)
            }
        }
    }

    /// A transaction that only appends rows (access records, audit events):
    /// on PostgreSQL it does not wait for the write lock.
    pub async fn begin_append(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.begin_write().await,
            Backend::Postgres => self.pool.begin().await,
        }
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

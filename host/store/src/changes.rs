//! Telling the other replicas sharing a PostgreSQL database that something
//! they keep in memory changed: a write transaction announces its topic
//! (`pg_notify`, delivered when it commits), and every replica's
//! [`Listener`] hears it and reloads that part. Notifications can be lost
//! (a listener reconnecting misses what was sent meanwhile), so each part is
//! also polled by its generation; a [`Heard::Reconnected`] asks for a reload
//! of everything at once. On SQLite there is one gateway and nothing to tell.

use sqlx::AnyConnection;
use sqlx::postgres::PgListener;

use crate::{Backend, Store};

/// The notification channel.
pub const CHANNEL: &str = "fhirgate_changes";

/// What changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Providers and tenant mappings.
    Directory,
    /// The token signing keys.
    Keys,
    /// The active policy and its modules.
    Modules,
}

impl Topic {
    pub fn as_str(self) -> &'static str {
        match self {
            Topic::Directory => "directory",
            Topic::Keys => "keys",
            Topic::Modules => "modules",
        }
    }

    fn parse(s: &str) -> Option<Topic> {
        [Topic::Directory, Topic::Keys, Topic::Modules].into_iter().find(|t| t.as_str() == s)
    }
}

/// Within a transaction on `db`: every replica hears `topic` once it commits.
pub(crate) async fn announce(db: &mut AnyConnection, topic: Topic) -> Result<(), sqlx::Error> {
    if db.backend_name() == "PostgreSQL" {
        sqlx::query("SELECT COUNT(*) FROM (SELECT pg_notify($1, $2)) AS sent")
            .bind(CHANNEL)
            .bind(topic.as_str())
            .execute(&mut *db)
            .await?;
    }
    Ok(())
}

impl Store {
    /// Every replica hears `topic` (a change committed outside a
    /// transaction of this crate's).
    pub async fn announce(&self, topic: Topic) -> Result<(), sqlx::Error> {
        let mut conn = self.pool().acquire().await?;
        announce(&mut conn, topic).await
    }

    /// A listener for what other replicas announce: `None` on SQLite, where
    /// there are none.
    pub async fn listen(&self) -> anyhow::Result<Option<Listener>> {
        let Some(url) = self.url.as_deref().filter(|_| self.backend == Backend::Postgres) else {
            return Ok(None);
        };
        let mut listener = PgListener::connect(url).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(Listener { inner: listener, failing: false }))
    }
}

/// What a [`Listener`] heard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    Changed(Topic),
    /// The connection was lost and is back: what was announced meanwhile
    /// was missed.
    Reconnected,
}

/// The replica's connection listening for announcements.
pub struct Listener {
    inner: PgListener,
    /// The last attempt failed: the next one waits a moment first.
    failing: bool,
}

impl Listener {
    /// The next announcement; while the database cannot be reached it keeps
    /// trying, once a second.
    pub async fn next(&mut self) -> Heard {
        loop {
            if self.failing {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            match self.inner.try_recv().await {
                Ok(Some(n)) => {
                    let was_failing = std::mem::replace(&mut self.failing, false);
                    if was_failing {
                        return Heard::Reconnected;
                    }
                    if let Some(topic) = Topic::parse(n.payload()) {
                        return Heard::Changed(topic);
                    }
                }
                // Lost: `try_recv` reconnects on its next call.
                Ok(None) => {
                    self.failing = false;
                    return Heard::Reconnected;
                }
                Err(e) => {
                    if !self.failing {
                        tracing::warn!(error = %e, "listening for changes made by other replicas failed; retrying");
                    }
                    self.failing = true;
                }
            }
        }
    }
}

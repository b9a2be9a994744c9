//! Modules and policy activations kept in the database, for replicas that
//! share it: an uploaded module by its SHA-256, and every activation as the
//! policy text that serves, numbered. The newest activation is the one every
//! replica serves; a new one is announced ([`Topic::Modules`]).

use std::collections::HashMap;

use sqlx::Row as _;

use crate::Store;
use crate::changes::{Topic, announce};

/// One activation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivationRow {
    pub generation: i64,
    pub policy: String,
    /// `file`, `upload`, `rollback` or `forward`.
    pub kind: String,
    pub at: i64,
    pub actor: String,
}

fn row(r: &sqlx::any::AnyRow) -> Result<ActivationRow, sqlx::Error> {
    Ok(ActivationRow {
        generation: r.try_get("generation")?,
        policy: r.try_get("policy")?,
        kind: r.try_get("kind")?,
        at: r.try_get("at")?,
        actor: r.try_get("actor")?,
    })
}

/// The activations as a history: a line of policies with the one served
/// somewhere on it. A new policy (the file, an upload) goes after the one
/// served and cuts off what was after it; a rollback serves the one before,
/// a step forward the one after. Activations of the text already served add
/// nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// The activation served (the newest).
    pub served: Option<ActivationRow>,
    /// What one, two, … rollbacks would serve.
    pub back: Vec<ActivationRow>,
    /// What one, two, … steps forward would serve.
    pub forward: Vec<ActivationRow>,
}

impl History {
    /// The history `rows` (oldest first) leave. A rollback or a step forward
    /// recorded is matched by its text to the nearest policy on its side of
    /// the line (two replicas rolling back at once both record the same
    /// earlier policy: it is one step, not two); one that matches none is
    /// taken as a new policy.
    pub fn replay(rows: Vec<ActivationRow>) -> History {
        let mut line: Vec<ActivationRow> = Vec::new();
        let mut at = 0usize;
        let mut newest = None;
        for r in rows {
            newest = Some(r.clone());
            if line.get(at).is_some_and(|s| s.policy == r.policy) {
                continue;
            }
            let found = match r.kind.as_str() {
                "rollback" => line[..at.min(line.len())].iter().rposition(|s| s.policy == r.policy),
                "forward" => line.iter().skip(at + 1).position(|s| s.policy == r.policy).map(|i| i + at + 1),
                _ => None,
            };
            match found {
                Some(i) => at = i,
                None => {
                    line.truncate(at + 1);
                    line.push(r);
                    at = line.len() - 1;
                }
            }
        }
        if line.is_empty() {
            return History::default();
        }
        let back = line[..at].iter().rev().cloned().collect();
        let forward = line[at + 1..].to_vec();
        History { served: newest, back, forward }
    }
}

const COLUMNS: &str = "generation, policy, kind, at, actor";

impl Store {
    /// Keeps module `bytes` (SHA-256 `sha256`, named `name`); one already
    /// kept is left as it is.
    pub async fn put_module(&self, sha256: &str, name: &str, bytes: &[u8], actor: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO module_blobs (sha256, name, bytes, created_at, created_by) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(sha256)
        .bind(name)
        .bind(bytes)
        .bind(fhirgate_core::clock::now_seconds() as i64)
        .bind(actor)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The kept modules among `digests`, by SHA-256.
    pub async fn modules(&self, digests: &[String]) -> Result<HashMap<String, Vec<u8>>, sqlx::Error> {
        let mut out = HashMap::new();
        for digest in digests {
            if out.contains_key(digest) {
                continue;
            }
            let found: Option<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM module_blobs WHERE sha256 = $1")
                .bind(digest.to_ascii_lowercase())
                .fetch_optional(self.pool())
                .await?;
            if let Some(bytes) = found {
                out.insert(digest.clone(), bytes);
            }
        }
        Ok(out)
    }

    /// The activation every replica serves: the newest.
    pub async fn latest_activation(&self) -> Result<Option<ActivationRow>, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM policy_activations ORDER BY generation DESC LIMIT 1");
        sqlx::query(&sql).fetch_optional(self.pool()).await?.as_ref().map(row).transpose()
    }

    /// Every activation, oldest first, replayed into the history a rollback
    /// steps through: the activation served, those a rollback goes back to
    /// (nearest first) and those a step forward brings back (nearest first).
    pub async fn activation_history(&self) -> Result<History, sqlx::Error> {
        let sql = format!("SELECT {COLUMNS} FROM policy_activations ORDER BY generation");
        let rows = sqlx::query(&sql).fetch_all(self.pool()).await?;
        let rows = rows.iter().map(row).collect::<Result<Vec<_>, _>>()?;
        Ok(History::replay(rows))
    }

    /// Records `policy` as the newest activation and announces it; its
    /// generation.
    pub async fn record_activation(&self, policy: &str, kind: &str, actor: &str) -> Result<i64, sqlx::Error> {
        self.insert_activation(policy, kind, None, actor).await
    }

    /// Records the policy file's `text` as deployed (SHA-256 `sha256`) as an
    /// activation, unless it is the file the newest file activation was made
    /// from (every replica starts with the same file; only the first records
    /// it). The generation recorded, if one was.
    pub async fn adopt_policy_file(&self, text: &str, sha256: &str, actor: &str) -> Result<Option<i64>, sqlx::Error> {
        let last: Option<String> = sqlx::query_scalar(
            "SELECT file_sha256 FROM policy_activations WHERE kind = 'file' ORDER BY generation DESC LIMIT 1",
        )
        .fetch_optional(self.pool())
        .await?
        .flatten();
        if last.as_deref() == Some(sha256) {
            return Ok(None);
        }
        self.insert_activation(text, "file", Some(sha256), actor).await.map(Some)
    }

    async fn insert_activation(
        &self,
        policy: &str,
        kind: &str,
        file_sha256: Option<&str>,
        actor: &str,
    ) -> Result<i64, sqlx::Error> {
        let mut tx = self.begin_write().await?;
        if let Some(sha) = file_sha256 {
            // Under the write lock: another replica may have recorded the
            // same file since it was looked at.
            let last: Option<String> = sqlx::query_scalar(
                "SELECT file_sha256 FROM policy_activations WHERE kind = 'file' ORDER BY generation DESC LIMIT 1",
            )
            .fetch_optional(&mut *tx)
            .await?
            .flatten();
            if last.as_deref() == Some(sha) {
                let newest: i64 =
                    sqlx::query_scalar("SELECT MAX(generation) FROM policy_activations").fetch_one(&mut *tx).await?;
                tx.commit().await?;
                return Ok(newest);
            }
        }
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(generation) FROM policy_activations").fetch_one(&mut *tx).await?;
        let generation = newest.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO policy_activations (generation, policy, kind, file_sha256, at, actor) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(generation)
        .bind(policy)
        .bind(kind)
        .bind(file_sha256)
        .bind(fhirgate_core::clock::now_seconds() as i64)
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        announce(&mut tx, Topic::Modules).await?;
        tx.commit().await?;
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::{ActivationRow, History};

    fn rows(steps: &[(&str, &str)]) -> Vec<ActivationRow> {
        let row = |(i, (kind, policy)): (usize, &(&str, &str))| ActivationRow {
            generation: i as i64 + 1,
            policy: (*policy).into(),
            kind: (*kind).into(),
            at: 0,
            actor: "ana".into(),
        };
        steps.iter().enumerate().map(row).collect()
    }

    fn line(h: &History) -> (String, Vec<&str>, Vec<&str>) {
        let served = h.served.as_ref().map(|s| s.policy.clone()).unwrap_or_default();
        (
            served,
            h.back.iter().map(|r| r.policy.as_str()).collect(),
            h.forward.iter().map(|r| r.policy.as_str()).collect(),
        )
    }

    #[test]
    fn a_rollback_steps_back_through_the_history_and_a_new_policy_cuts_off_what_was_ahead() {
        let h = History::replay(rows(&[
            ("file", "a"),
            ("upload", "b"),
            ("upload", "c"),
            ("rollback", "b"),
            ("rollback", "a"),
        ]));
        assert_eq!(line(&h), ("a".into(), vec![], vec!["b", "c"]));
        let h = History::replay(rows(&[
            ("file", "a"),
            ("upload", "b"),
            ("upload", "c"),
            ("rollback", "b"),
            ("forward", "c"),
        ]));
        assert_eq!(line(&h), ("c".into(), vec!["b", "a"], vec![]));
        // A new policy after a rollback: what was ahead is gone.
        let h = History::replay(rows(&[("file", "a"), ("upload", "b"), ("rollback", "a"), ("upload", "d")]));
        assert_eq!(line(&h), ("d".into(), vec!["a"], vec![]));
        // The same text again is no step; two replicas' simultaneous
        // rollbacks to the same policy are one.
        let h = History::replay(rows(&[
            ("file", "a"),
            ("upload", "b"),
            ("upload", "b"),
            ("rollback", "a"),
            ("rollback", "a"),
        ]));
        assert_eq!(line(&h), ("a".into(), vec![], vec!["b"]));
        // A rollback to a text not on the line is a new policy.
        let h = History::replay(rows(&[("file", "a"), ("rollback", "z")]));
        assert_eq!(line(&h), ("z".into(), vec!["a"], vec![]));
        assert_eq!(History::replay(Vec::new()), History::default());
    }

    crate::store_tests! {
        async fn activations_are_numbered_and_a_file_is_adopted_once(store) {
            assert_eq!(store.latest_activation().await.unwrap(), None);
            assert_eq!(store.adopt_policy_file("v1", "s1", "policy-file").await.unwrap(), Some(1));
            // Every replica starts with the same file: recorded once.
            assert_eq!(store.adopt_policy_file("v1", "s1", "policy-file").await.unwrap(), None);
            assert_eq!(store.record_activation("v2", "upload", "ana").await.unwrap(), 2);
            assert_eq!(store.record_activation("v2", "upload", "ana").await.unwrap(), 3);
            let latest = store.latest_activation().await.unwrap().unwrap();
            assert_eq!((latest.generation, latest.policy.as_str(), latest.kind.as_str()), (3, "v2", "upload"));
            // A rollback goes back past activations of the same text.
            let texts = |rows: &[ActivationRow]| rows.iter().map(|r| r.policy.clone()).collect::<Vec<_>>();
            let history = store.activation_history().await.unwrap();
            assert_eq!((texts(&history.back), texts(&history.forward)), (vec!["v1".to_owned()], vec![]));
            assert_eq!(history.served.unwrap().generation, 3);
            // A changed file is a new activation.
            assert_eq!(store.adopt_policy_file("v3", "s3", "policy-file").await.unwrap(), Some(4));
            let history = store.activation_history().await.unwrap();
            assert_eq!(texts(&history.back), ["v2", "v1"]);
            // Two steps back, one forward: each keeps its place on the line.
            store.record_activation("v2", "rollback", "ana").await.unwrap();
            store.record_activation("v1", "rollback", "ana").await.unwrap();
            let history = store.activation_history().await.unwrap();
            assert_eq!((texts(&history.back), texts(&history.forward)), (vec![], vec!["v2".to_owned(), "v3".into()]));
            store.record_activation("v2", "forward", "ana").await.unwrap();
            let history = store.activation_history().await.unwrap();
            assert_eq!((texts(&history.back), texts(&history.forward)), (vec!["v1".to_owned()], vec!["v3".to_owned()]));

            store.put_module("ab", "router", b"\0asm-1", "ana").await.unwrap();
            store.put_module("ab", "router", b"other", "ana").await.unwrap();
            let found = store.modules(&["ab".into(), "cd".into()]).await.unwrap();
            assert_eq!(found.len(), 1);
            assert_eq!(found["ab"], b"\0asm-1");
        }
    }
}

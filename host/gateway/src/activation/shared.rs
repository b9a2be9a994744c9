//! Activation on a database replicas share: the newest activation recorded
//! there serves everywhere. A replica records the policy file as deployed
//! when it starts with, or sees, a file unlike the last one recorded; an
//! upload keeps the module in the database by its SHA-256 and records the
//! policy naming it; a rollback records the policy before the one served on
//! the history the activations make ([`fhirgate_store::modules::History`]),
//! a step forward the one after it. Each is announced, and the others load it at once (or at their
//! next poll, when an announcement was lost).

use std::time::Duration;

use anyhow::Context as _;
use fhirgate_store::Store;

use super::{Activation, Direction, Look, Rejection, Served, Status, UploadError, name_module};
use fhirgate_core::clock::now_seconds;

/// How often a replica looks for an activation made through another one;
/// announcements bring it sooner.
pub const SHARED_POLL: Duration = Duration::from_secs(4);

impl Activation {
    /// Keeps modules and activations in `store`, which replicas share.
    pub fn sharing(mut self, store: Store) -> Self {
        self.shared = Some(store);
        self
    }

    /// Whether modules and activations are kept in a database replicas share.
    pub fn is_shared(&self) -> bool {
        self.shared.is_some()
    }

    /// On a shared database: serves the newest activation unless it is the
    /// one served (at start, when another replica announces one, and at
    /// each poll).
    pub async fn sync_shared(&self, gw: &Served<'_>) {
        let Some(store) = &self.shared else { return };
        let _one = self.loading.lock().await;
        let latest = match store.latest_activation().await {
            Ok(latest) => latest,
            Err(e) => {
                tracing::warn!(error = %e, "reading the active policy from the store failed; keeping the current one");
                return;
            }
        };
        if let Some(row) = &latest {
            let serves = {
                let mut state = self.lock();
                if row.generation == state.stored_generation {
                    return;
                }
                // What serves already (every replica starts on the file)?
                let serves = state.text.as_deref() == Some(row.policy.as_str());
                if serves {
                    state.stored_generation = row.generation;
                }
                serves
            };
            if serves {
                return self.read_history(store).await;
            }
        }
        let _ = self.reload_now(gw).await;
    }

    /// Records the policy file if it changed, then serves the newest
    /// activation (the loading lock is held).
    pub(super) async fn reload_shared(
        &self,
        gw: &Served<'_>,
        store: &Store,
        seen: Vec<Look>,
    ) -> Result<Status, Rejection> {
        let newest = async {
            let text =
                std::fs::read_to_string(&self.path).with_context(|| format!("reading {}", self.path.display()))?;
            let sha256 = fhirgate_core::digest::sha256_hex(text.as_bytes());
            store.adopt_policy_file(&text, &sha256, "policy-file").await.context("recording the policy file")?;
            store.latest_activation().await?.context("no policy is recorded in the store")
        }
        .await;
        let row = match newest {
            Ok(row) => row,
            Err(e) => return Err(self.refuse(gw, &e, seen)),
        };
        // A generation that fails here is not tried again until a newer one.
        let unchanged = {
            let mut state = self.lock();
            state.stored_generation = row.generation;
            state.seen.clone_from(&seen);
            state.text.as_deref() == Some(row.policy.as_str())
        };
        if unchanged {
            // What serves already: every replica starts on the same file.
            self.read_history(store).await;
            return Ok(self.status(gw));
        }
        match self.prepare_text(gw, row.policy).await {
            Ok(prepared) => {
                // The history first: whoever sees the new modules sees the
                // history they are on.
                self.read_history(store).await;
                Ok(self.install(gw, prepared, seen))
            }
            Err(e) => Err(self.refuse(gw, &e, seen)),
        }
    }

    /// Keeps the history recorded in the store, for the status.
    async fn read_history(&self, store: &Store) {
        match store.activation_history().await {
            Ok(h) => {
                let texts =
                    |rows: Vec<fhirgate_store::modules::ActivationRow>| rows.into_iter().map(|r| r.policy).collect();
                self.lock().stored_history = (texts(h.back), texts(h.forward));
            }
            Err(e) => tracing::warn!(error = %e, "reading the policy history from the store failed"),
        }
    }

    /// [`Activation::upload`] on a shared database: `bytes` (SHA-256
    /// `digest`, checked) kept there, then named in a new activation.
    pub(super) async fn upload_shared(
        &self,
        gw: &Served<'_>,
        role: &str,
        name: &str,
        bytes: &[u8],
        digest: &str,
    ) -> Result<Status, UploadError> {
        let Some(store) = &self.shared else {
            return Err(UploadError::Invalid("the gateway keeps no module store".into()));
        };
        let refused = |reason: String| UploadError::Refused(Rejection { at: now_seconds(), reason });
        let _one = self.loading.lock().await;
        let seen = self.look().unwrap_or_default();
        store
            .put_module(digest, name, bytes, "upload")
            .await
            .map_err(|e| refused(format!("keeping the module: {e}")))?;
        let active = self.lock().text.clone().ok_or_else(|| refused("the active policy's text is unknown".into()))?;
        let edited = name_module(&active, role, None, digest).map_err(|e| refused(format!("{e:#}")))?;
        let prepared = match self.prepare_text(gw, edited).await {
            Ok(prepared) => prepared,
            Err(e) => return Err(UploadError::Refused(self.refuse(gw, &e, seen))),
        };
        let generation =
            store.record_activation(&prepared.text, "upload", "upload").await.map_err(|e| refused(format!("{e}")))?;
        self.lock().stored_generation = generation;
        tracing::info!(role, module = %digest, generation, "uploaded module activated on every replica");
        self.read_history(store).await;
        Ok(self.install(gw, prepared, seen))
    }

    /// [`Activation::step`] on a shared database: the policy before (or
    /// after) the one served on the recorded history, recorded again as the
    /// newest activation (the loading lock is held).
    pub(super) async fn step_shared(
        &self,
        gw: &Served<'_>,
        store: &Store,
        direction: Direction,
    ) -> Result<Status, String> {
        let history = store.activation_history().await.map_err(|e| format!("The store could not be read: {e}"))?;
        let target = match direction {
            Direction::Back => history.back.into_iter().next(),
            Direction::Forward => history.forward.into_iter().next(),
        };
        let target = target.ok_or(direction.nothing_there())?;
        let seen = self.look().unwrap_or_default();
        let prepared = self
            .prepare_text(gw, target.policy)
            .await
            .map_err(|e| format!("That policy does not serve any more: {e:#}"))?;
        let generation = store
            .record_activation(&prepared.text, direction.kind(), direction.kind())
            .await
            .map_err(|e| format!("The step could not be recorded: {e}"))?;
        self.lock().stored_generation = generation;
        self.read_history(store).await;
        self.install(gw, prepared, seen);
        let partner = gw.policy.load().partner.to_string();
        gw.runtime.metrics().policy_event(&partner, direction.event());
        tracing::info!(
            partner,
            generation,
            event = direction.event(),
            "policy history stepped through on every replica"
        );
        Ok(self.status(gw))
    }
}

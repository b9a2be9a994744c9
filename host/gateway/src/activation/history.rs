//! The policies that served, as a history: a rollback steps back through
//! it one policy at a time, a step forward undoes a rollback, and a new
//! policy cuts off what was ahead. On a shared database the history is the
//! one the recorded activations make ([`super::shared`]).

use std::sync::Arc;

use fhirgate_core::clock::now_seconds;
use fhirgate_core::files::write_atomically;

use super::{Activation, Declared, Served, State, Status};
use crate::policy::Policy;

/// How many policies a rollback can go back through (without a shared
/// database, which keeps every activation).
pub const HISTORY: usize = 16;

/// How many of them, the nearest on each side, keep their compiled modules
/// (a step to one of these is instant); the others keep their text and are
/// loaded and checked again when stepped to (from the artifact cache, with a
/// `data_dir`), so sixteen policies of 12 MB JavaScript modules do not stay
/// compiled in memory.
const KEEP_COMPILED: usize = 2;

/// A policy that served, as the history keeps it.
pub(super) struct Step {
    /// Compiled, for the nearest steps ([`KEEP_COMPILED`]).
    pub(super) policy: Option<Arc<Policy>>,
    pub(super) text: Option<String>,
    pub(super) declared: Option<Declared>,
}

/// Drops the compiled policies of `steps` (the nearest last) but the nearest
/// [`KEEP_COMPILED`].
pub(super) fn keep_compiled(steps: &mut [Step]) {
    let far = steps.len().saturating_sub(KEEP_COMPILED);
    steps[..far].iter_mut().for_each(|s| s.policy = None);
}

/// Which way through the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A rollback: the policy that served before the active one.
    Back,
    /// The policy a rollback stepped back from.
    Forward,
}

impl Direction {
    pub(super) fn nothing_there(self) -> &'static str {
        match self {
            Direction::Back => "There is no earlier policy to go back to.",
            Direction::Forward => {
                "There is no later policy to go forward to: only a rollback leaves one, until a new policy is activated."
            }
        }
    }

    pub(super) fn event(self) -> &'static str {
        match self {
            Direction::Back => "rolled-back",
            Direction::Forward => "rolled-forward",
        }
    }

    /// The kind of activation a step records on a shared database.
    pub(super) fn kind(self) -> &'static str {
        match self {
            Direction::Back => "rollback",
            Direction::Forward => "forward",
        }
    }
}

impl Activation {
    /// Makes the policy that served before the active one active again,
    /// with the providers and tenants its file declared, and writes that
    /// file back, so that a restart or the next look at the file keeps it.
    /// Repeated, it steps further back.
    pub async fn rollback(&self, gw: &Served<'_>) -> Result<Status, String> {
        self.step(gw, Direction::Back).await
    }

    /// Undoes a rollback: the policy it stepped back from serves again.
    pub async fn roll_forward(&self, gw: &Served<'_>) -> Result<Status, String> {
        self.step(gw, Direction::Forward).await
    }

    /// One step through the history.
    pub async fn step(&self, gw: &Served<'_>, direction: Direction) -> Result<Status, String> {
        let _one = self.loading.lock().await;
        if let Some(store) = &self.shared {
            return self.step_shared(gw, store, direction).await;
        }
        let take = |state: &mut State| match direction {
            Direction::Back => state.back.pop(),
            Direction::Forward => state.forward.pop(),
        };
        let target = take(&mut self.lock()).ok_or(direction.nothing_there())?;
        let give_back = |target: Step| match direction {
            Direction::Back => self.lock().back.push(target),
            Direction::Forward => self.lock().forward.push(target),
        };
        let on_disk = std::fs::read_to_string(&self.path).ok();
        if let Some(text) = &target.text
            && let Err(e) = write_atomically(&self.path, text.as_bytes())
        {
            give_back(target);
            return Err(format!("The policy file could not be written back: {e}"));
        }
        // On failure the file is put back as it was.
        let put_back = |target: &Step| {
            if let (Some(_), Some(text)) = (&target.text, &on_disk)
                && let Err(e) = write_atomically(&self.path, text.as_bytes())
            {
                tracing::error!(policy = %self.path.display(), error = %e, "could not restore the policy file");
            }
        };
        let policy = match (&target.policy, &target.text) {
            (Some(policy), _) => {
                if let Some(declared) = &target.declared
                    && let Err(e) = self.declare(gw, declared).await
                {
                    put_back(&target);
                    give_back(target);
                    return Err(format!("Its providers and tenants could not be restored: {e:#}"));
                }
                policy.clone()
            }
            // Loaded and checked again, its providers and tenants declared.
            (None, Some(text)) => match self.prepare_text(gw, text.clone()).await {
                Ok(prepared) => Arc::new(prepared.policy),
                Err(e) => {
                    put_back(&target);
                    give_back(target);
                    return Err(format!("That policy does not serve any more: {e:#}"));
                }
            },
            (None, None) => {
                give_back(target);
                return Err("That policy's file is not known any more.".into());
            }
        };
        let seen = self.look().unwrap_or_default();
        let partner = policy.partner.to_string();
        policy.revive();
        let replaced = gw.policy.swap(policy);
        replaced.retire();
        {
            let mut state = self.lock();
            let left = Step {
                policy: Some(replaced),
                text: std::mem::replace(&mut state.text, target.text),
                declared: std::mem::replace(&mut state.serving, target.declared),
            };
            let other = match direction {
                Direction::Back => &mut state.forward,
                Direction::Forward => &mut state.back,
            };
            other.push(left);
            keep_compiled(other);
            state.seen = seen;
            state.activated_at = Some(now_seconds());
            state.generation += 1;
        }
        gw.runtime.metrics().policy_event(&partner, direction.event());
        tracing::info!(partner, event = direction.event(), "policy history stepped through");
        Ok(self.status(gw))
    }
}

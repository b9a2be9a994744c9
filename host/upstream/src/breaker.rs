//! The circuit breaker in front of one provider: consecutive failures open it,
//! an open breaker answers at once without touching the network, and after a
//! pause a single probe decides whether it closes again.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// When a provider's breaker opens and for how long.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerSettings {
    /// Consecutive failed exchanges that open the breaker; 0 counts as 1.
    pub failure_threshold: u32,
    /// How long an open breaker refuses requests before it lets a probe through.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    /// Five failures in a row is past what a retry hides, and 30 s is long
    /// enough for a restarting provider to come back without being hammered,
    /// short enough that users see it recover within one screen refresh or two.
    fn default() -> Self {
        BreakerSettings { failure_threshold: 5, open_for: Duration::from_secs(30) }
    }
}

/// A breaker's state as the admin API and metrics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Requests flow.
    Closed,
    /// Requests are refused for `retry_after` more.
    Open { retry_after: Duration },
    /// The pause is over: the next request (only one at a time) is a probe.
    HalfOpen,
}

/// What one exchange says about the provider's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The provider answered.
    Success,
    /// The provider failed: unreachable, too slow, garbled or a 502/503/504.
    Failure,
    /// Nothing learnt, e.g. the provider's token endpoint failed first.
    Neutral,
}

/// While a probe is in flight other requests are told to come back after
/// this long at most: the probe settles within one exchange, and one second
/// is the smallest `Retry-After` a client can be given.
const PROBE_RETRY_AFTER: Duration = Duration::from_secs(1);

pub(super) struct Breaker {
    provider: String,
    threshold: u32,
    open_for: Duration,
    state: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    /// Bumped on every change of phase, so that an exchange admitted under an
    /// earlier phase (say, one started before the breaker opened) cannot
    /// close or re-open it when it finally ends.
    generation: u64,
}

#[derive(Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl Inner {
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.generation += 1;
    }
}

impl Breaker {
    pub(super) fn new(provider: &str, settings: &BreakerSettings) -> Self {
        Breaker {
            provider: provider.to_owned(),
            threshold: settings.failure_threshold.max(1),
            open_for: settings.open_for,
            state: Mutex::new(Inner { phase: Phase::Closed { failures: 0 }, generation: 0 }),
        }
    }

    /// Admission for one exchange, or how long the caller should wait.
    pub(super) fn try_acquire(&self) -> Result<Permit<'_>, Duration> {
        let now = Instant::now();
        let mut s = self.lock();
        match s.phase {
            Phase::Closed { .. } => Ok(self.permit(s.generation)),
            Phase::Open { until } if now < until => Err(until - now),
            Phase::Open { .. } | Phase::HalfOpen { probing: false } => {
                if matches!(s.phase, Phase::Open { .. }) {
                    tracing::info!(provider = %self.provider, "provider circuit half-open; sending one probe");
                }
                s.enter(Phase::HalfOpen { probing: true });
                Ok(self.permit(s.generation))
            }
            Phase::HalfOpen { probing: true } => Err(self.open_for.min(PROBE_RETRY_AFTER)),
        }
    }

    pub(super) fn state(&self) -> BreakerState {
        let s = self.lock();
        match s.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { until } => match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => BreakerState::Open { retry_after: left },
                // The pause is over; the next request turns it half-open.
                _ => BreakerState::HalfOpen,
            },
            Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    fn permit(&self, generation: u64) -> Permit<'_> {
        Permit { breaker: self, generation, settled: false }
    }

    fn settle(&self, generation: u64, outcome: Outcome) {
        let mut s = self.lock();
        if s.generation != generation {
            return;
        }
        match (s.phase, outcome) {
            (Phase::Closed { .. }, Outcome::Success) => s.phase = Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, Outcome::Failure) => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    tracing::warn!(
                        provider = %self.provider,
                        failures,
                        open_for_ms = self.open_for.as_millis() as u64,
                        "provider circuit opened"
                    );
                    s.enter(Phase::Open { until: Instant::now() + self.open_for });
                } else {
                    s.phase = Phase::Closed { failures };
                }
            }
            (Phase::HalfOpen { .. }, Outcome::Success) => {
                tracing::info!(provider = %self.provider, "provider circuit closed; probe succeeded");
                s.enter(Phase::Closed { failures: 0 });
            }
            (Phase::HalfOpen { .. }, Outcome::Failure) => {
                tracing::warn!(
                    provider = %self.provider,
                    open_for_ms = self.open_for.as_millis() as u64,
                    "provider circuit re-opened; probe failed"
                );
                s.enter(Phase::Open { until: Instant::now() + self.open_for });
            }
            // A probe that taught nothing (or was abandoned) frees the slot
            // for the next request to probe instead.
            (Phase::HalfOpen { .. }, Outcome::Neutral) => s.phase = Phase::HalfOpen { probing: false },
            (Phase::Closed { .. }, Outcome::Neutral) | (Phase::Open { .. }, _) => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every update leaves the state whole, so a panic elsewhere while the
        // lock was held cannot have left it half-written.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Leave to make one exchange. Dropped without [`Permit::record`] (the request
/// was cancelled), it counts as [`Outcome::Neutral`].
pub(super) struct Permit<'a> {
    breaker: &'a Breaker,
    generation: u64,
    settled: bool,
}

impl Permit<'_> {
    pub(super) fn record(mut self, outcome: Outcome) {
        self.settled = true;
        self.breaker.settle(self.generation, outcome);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.breaker.settle(self.generation, Outcome::Neutral);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32, open_for: Duration) -> Breaker {
        Breaker::new("p", &BreakerSettings { failure_threshold: threshold, open_for })
    }

    #[test]
    fn a_success_resets_the_count_of_consecutive_failures() {
        let b = breaker(3, Duration::from_secs(60));
        for outcome in [Outcome::Failure, Outcome::Failure, Outcome::Success, Outcome::Failure, Outcome::Failure] {
            b.try_acquire().unwrap().record(outcome);
        }
        assert_eq!(b.state(), BreakerState::Closed);
        b.try_acquire().unwrap().record(Outcome::Failure);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
        assert!(b.try_acquire().is_err());
    }

    #[test]
    fn an_exchange_admitted_before_the_breaker_opened_cannot_close_it() {
        let b = breaker(1, Duration::from_secs(60));
        let late = b.try_acquire().unwrap();
        b.try_acquire().unwrap().record(Outcome::Failure);
        late.record(Outcome::Success);
        assert!(matches!(b.state(), BreakerState::Open { .. }));
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_request_probe() {
        let b = breaker(1, Duration::ZERO);
        b.try_acquire().unwrap().record(Outcome::Failure);
        let probe = b.try_acquire().unwrap();
        assert_eq!(b.try_acquire().err(), Some(Duration::ZERO));
        drop(probe);
        let next = b.try_acquire().unwrap();
        assert_eq!(b.try_acquire().err(), Some(Duration::ZERO), "the next request is the only probe");
        next.record(Outcome::Success);
        assert_eq!(b.state(), BreakerState::Closed);
    }
}

//! When a failed GET to a provider is tried again, and the per-provider budget
//! that keeps retries from multiplying the load on a provider that is down.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;

use super::{UpstreamError, UpstreamResponse};

/// How a provider's GETs are retried.
#[derive(Clone, Debug, PartialEq)]
pub struct RetrySettings {
    /// Retries after the first attempt of one request.
    pub max_retries: u32,
    /// Retry tokens each request earns for its provider; a retry costs one.
    /// 0.2 means retries add at most about 20% to a failing provider's load.
    pub budget_ratio: f64,
    /// Pause before a retry.
    pub backoff: Duration,
}

impl Default for RetrySettings {
    /// One retry hides a dropped connection or a rolling restart; 20% extra
    /// load is what a struggling provider can be asked to absorb (the figure
    /// Finagle and linkerd use); 25 ms lets a restarted instance leave a load
    /// balancer without eating much of a 15 s budget.
    fn default() -> Self {
        RetrySettings { max_retries: 1, budget_ratio: 0.2, backoff: Duration::from_millis(25) }
    }
}

/// Whether an attempt's result is worth another attempt: the request never
/// reached the provider, or a gateway in front of it said it is briefly
/// unavailable. A timeout is not retried: the budget is spent.
pub(super) fn retryable(result: &Result<UpstreamResponse, UpstreamError>) -> bool {
    match result {
        Ok(r) => is_unavailable(r.status),
        Err(e) => matches!(e, UpstreamError::Connect),
    }
}

/// The answers that mean "the provider is not there right now".
pub(super) fn is_unavailable(status: StatusCode) -> bool {
    matches!(status, StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT)
}

/// Tokens are counted in thousandths so that deposits of a fraction add up
/// exactly (five deposits of 0.2 make one retry, not 0.999…).
const MILLI: u64 = 1000;

/// At most this many retries are banked. It starts full, so a provider that
/// was quiet (or was just loaded) can still have a brief blip retried; under
/// sustained failure retries settle at `budget_ratio` of requests.
const BUDGET_CAP: u64 = 10 * MILLI;

/// A token bucket shared by all requests to one provider.
pub(super) struct RetryBudget {
    deposit: u64,
    balance: Mutex<u64>,
}

impl RetryBudget {
    pub(super) fn new(settings: &RetrySettings) -> Self {
        // `max` maps a NaN or negative ratio to 0; the cast saturates.
        let deposit = (settings.budget_ratio.max(0.0) * MILLI as f64).round() as u64;
        RetryBudget { deposit, balance: Mutex::new(BUDGET_CAP) }
    }

    /// Credit one request.
    pub(super) fn deposit(&self) {
        let mut b = self.balance.lock().unwrap_or_else(PoisonError::into_inner);
        *b = b.saturating_add(self.deposit).min(BUDGET_CAP);
    }

    /// Spend one retry if the budget has one.
    pub(super) fn withdraw(&self) -> bool {
        let mut b = self.balance.lock().unwrap_or_else(PoisonError::into_inner);
        if *b >= MILLI {
            *b -= MILLI;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_budget_refills_at_the_ratio() {
        let budget = RetryBudget::new(&RetrySettings { budget_ratio: 0.2, ..RetrySettings::default() });
        let mut banked = 0;
        while budget.withdraw() {
            banked += 1;
        }
        assert_eq!(banked, 10);
        for _ in 0..4 {
            budget.deposit();
            assert!(!budget.withdraw());
        }
        budget.deposit();
        assert!(budget.withdraw());
        assert!(!budget.withdraw());
    }

    #[test]
    fn the_budget_never_banks_more_than_its_cap() {
        let budget = RetryBudget::new(&RetrySettings { budget_ratio: 1.0, ..RetrySettings::default() });
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10);
    }

    #[test]
    fn only_unreachable_and_unavailable_are_retried() {
        let answer =
            |code: u16| Ok(UpstreamResponse { status: StatusCode::from_u16(code).unwrap(), body: Default::default() });
        for code in [502, 503, 504] {
            assert!(retryable(&answer(code)), "{code}");
        }
        for code in [200, 401, 404, 500] {
            assert!(!retryable(&answer(code)), "{code}");
        }
        assert!(retryable(&Err(UpstreamError::Connect)));
        for e in [UpstreamError::Timeout(1), UpstreamError::Protocol, UpstreamError::TooLarge(1)] {
            assert!(!retryable(&Err(e)));
        }
    }
}

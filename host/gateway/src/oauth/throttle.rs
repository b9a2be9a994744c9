//! Throttling of failed client authentications, per client id *at* a source
//! address and per source address: after too many failures in a window,
//! further attempts from there are refused with 429 and `Retry-After` until
//! the window ends, whatever the credentials. Never per client id alone:
//! client ids are public (every token's `sub`), and failures from one address
//! must not lock the app out everywhere else.
//!
//! Replicas sharing a database also count confirmed failures there, so an
//! attacker spreading guesses over replicas meets one limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures tolerated per client id at one address, per window. A client
/// with a working secret never fails; 10 failures a minute is far above
/// honest mistakes and far below what guessing a 256-bit secret would need
/// anyway — the limit exists to keep brute force and credential stuffing off
/// the store.
const MAX_FAILURES_PER_CLIENT: u32 = 10;
/// Per address the limit is higher: several clients may sit behind one NAT.
const MAX_FAILURES_PER_ADDRESS: u32 = 30;
const WINDOW: Duration = Duration::from_secs(60);
/// Entries kept before old windows are swept, bounding memory under attack.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

#[derive(Hash, PartialEq, Eq, Clone)]
enum Key {
    /// A client id, as claimed from one address.
    ClientAt(String, IpAddr),
    Address(IpAddr),
}

/// Failure counters.
#[derive(Default)]
pub struct Throttle {
    windows: Mutex<HashMap<Key, Window>>,
    /// The database replicas share, counting their failures together.
    shared: Option<fhirgate_store::Store>,
}

impl Key {
    /// The key's name among the shared counters.
    fn shared_name(&self) -> String {
        match self {
            Key::ClientAt(c, a) => format!("client:{c}@{a}"),
            Key::Address(a) => format!("addr:{a}"),
        }
    }

    fn limit(&self) -> u32 {
        match self {
            Key::ClientAt(..) => MAX_FAILURES_PER_CLIENT,
            Key::Address(_) => MAX_FAILURES_PER_ADDRESS,
        }
    }
}

fn keys(client_id: Option<&str>, addr: IpAddr) -> Vec<Key> {
    std::iter::once(Key::Address(addr)).chain(client_id.map(|c| Key::ClientAt(c.to_owned(), addr))).collect()
}

impl Throttle {
    /// Counters shared with the other replicas on `store`.
    pub fn shared(store: fhirgate_store::Store) -> Throttle {
        Throttle { windows: Mutex::default(), shared: Some(store) }
    }

    /// `Some(seconds to wait)` when `addr`, or `client_id` at `addr`, is over
    /// its limit here or, on a shared database, across the replicas.
    pub async fn check(&self, client_id: Option<&str>, addr: IpAddr) -> Option<u64> {
        if let Some(wait) = self.check_here(client_id, addr) {
            return Some(wait);
        }
        let store = self.shared.as_ref()?;
        let keys = keys(client_id, addr);
        let names: Vec<String> = keys.iter().map(Key::shared_name).collect();
        let (now, window) = (fhirgate_core::clock::now_millis(), WINDOW.as_millis() as i64);
        // A store that cannot be read limits nothing more: the counts here
        // still hold, and authentication needs the store anyway.
        let counts = store.throttle_counts(&names, now, window).await.ok()?;
        counts
            .iter()
            .filter_map(|(name, failures, started)| {
                let key = keys.iter().find(|k| k.shared_name() == *name)?;
                (*failures >= i64::from(key.limit())).then(|| ((started + window - now).max(1000) / 1000) as u64)
            })
            .max()
    }

    /// Counts a failure that stands (not one counted up front) where the
    /// replicas share their counts.
    pub async fn confirm_failure(&self, client_id: Option<&str>, addr: IpAddr) {
        let Some(store) = &self.shared else { return };
        let names: Vec<String> = keys(client_id, addr).iter().map(Key::shared_name).collect();
        let now = fhirgate_core::clock::now_millis();
        if let Err(e) = store.throttle_fail(&names, now, WINDOW.as_millis() as i64).await {
            tracing::warn!(error = %e, "counting a failed authentication in the store failed");
        }
    }

    /// As [`Throttle::confirm_failure`], without waiting for the store.
    pub fn share_failure(&self, client_id: Option<&str>, addr: IpAddr) {
        let Some(store) = self.shared.clone() else { return };
        let names: Vec<String> = keys(client_id, addr).iter().map(Key::shared_name).collect();
        let now = fhirgate_core::clock::now_millis();
        tokio::spawn(async move {
            if let Err(e) = store.throttle_fail(&names, now, WINDOW.as_millis() as i64).await {
                tracing::warn!(error = %e, "counting a failed authentication in the store failed");
            }
        });
    }

    /// [`Throttle::check`] of this gateway's own counts.
    pub fn check_here(&self, client_id: Option<&str>, addr: IpAddr) -> Option<u64> {
        let now = Instant::now();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let blocked = |key: &Key, max: u32| {
            windows.get(key).and_then(|w| {
                let elapsed = now.duration_since(w.started);
                (elapsed < WINDOW && w.failures >= max).then(|| (WINDOW - elapsed).as_secs().max(1))
            })
        };
        let by_addr = blocked(&Key::Address(addr), MAX_FAILURES_PER_ADDRESS);
        let by_client = client_id.and_then(|c| blocked(&Key::ClientAt(c.to_owned(), addr), MAX_FAILURES_PER_CLIENT));
        by_addr.into_iter().chain(by_client).max()
    }

    /// Takes back one recorded failure, for an attempt that was counted up
    /// front and then succeeded.
    pub fn forgive(&self, client_id: Option<&str>, addr: IpAddr) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let keys = std::iter::once(Key::Address(addr)).chain(client_id.map(|c| Key::ClientAt(c.to_owned(), addr)));
        for key in keys {
            if let Some(w) = windows.get_mut(&key) {
                w.failures = w.failures.saturating_sub(1);
            }
        }
    }

    /// Records a failed authentication.
    pub fn failed(&self, client_id: Option<&str>, addr: IpAddr) {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_ENTRIES {
            windows.retain(|_, w| now.duration_since(w.started) < WINDOW);
        }
        let keys = std::iter::once(Key::Address(addr)).chain(client_id.map(|c| Key::ClientAt(c.to_owned(), addr)));
        for key in keys {
            let w = windows.entry(key).or_insert(Window { started: now, failures: 0 });
            if now.duration_since(w.started) >= WINDOW {
                *w = Window { started: now, failures: 0 };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_the_limit() {
        let t = Throttle::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_CLIENT {
            assert!(t.check_here(Some("app"), a).is_none());
            t.failed(Some("app"), a);
        }
        let wait = t.check_here(Some("app"), a).expect("client over its limit at the failing address");
        assert!((1..=60).contains(&wait));
        // Client ids are public: failures from `a` do not lock `app` out at `b`.
        assert!(t.check_here(Some("app"), b).is_none(), "the client from another address");
        assert!(t.check_here(Some("other"), b).is_none());
        for _ in 0..MAX_FAILURES_PER_ADDRESS {
            t.failed(None, b);
        }
        assert!(t.check_here(Some("other"), b).is_some(), "address over its limit");
    }
}

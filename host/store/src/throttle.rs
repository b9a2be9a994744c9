//! Failure counters the replicas on one database share: how many client
//! authentications failed per key (a client id at an address, an address)
//! in the current window.

use sqlx::Row as _;

use crate::Store;

impl Store {
    /// Counts one failure under each of `keys` at `now_ms`; a window that
    /// started `window_ms` or more ago starts again.
    pub async fn throttle_fail(&self, keys: &[String], now_ms: i64, window_ms: i64) -> Result<(), sqlx::Error> {
        let stale = now_ms - window_ms;
        for key in keys {
            sqlx::query(
                "INSERT INTO throttle_windows (key, started_ms, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (key) DO UPDATE SET \
                 failures = CASE WHEN throttle_windows.started_ms <= $3 THEN 1 ELSE throttle_windows.failures + 1 END, \
                 started_ms = CASE WHEN throttle_windows.started_ms <= $3 THEN $2 ELSE throttle_windows.started_ms END",
            )
            .bind(key)
            .bind(now_ms)
            .bind(stale)
            .execute(self.pool())
            .await?;
        }
        // Now and then, windows long over go.
        if now_ms % 64 == 0 {
            sqlx::query("DELETE FROM throttle_windows WHERE started_ms <= $1").bind(stale).execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The failures counted under each of `keys` in windows still open at
    /// `now_ms`: (key, failures, window start).
    pub async fn throttle_counts(
        &self,
        keys: &[String],
        now_ms: i64,
        window_ms: i64,
    ) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
        let mut out = Vec::new();
        for key in keys {
            let row =
                sqlx::query("SELECT failures, started_ms FROM throttle_windows WHERE key = $1 AND started_ms > $2")
                    .bind(key)
                    .bind(now_ms - window_ms)
                    .fetch_optional(self.pool())
                    .await?;
            if let Some(r) = row {
                out.push((key.clone(), r.try_get("failures")?, r.try_get("started_ms")?));
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    crate::store_tests! {
        async fn failures_count_per_key_within_their_window(store) {
            let keys = ["addr:10.0.0.1".to_owned(), "client:app@10.0.0.1".to_owned()];
            for at in [1_000, 1_500, 2_000] {
                store.throttle_fail(&keys, at, 60_000).await.unwrap();
            }
            store.throttle_fail(&keys[..1], 2_500, 60_000).await.unwrap();
            let counts = store.throttle_counts(&keys, 3_000, 60_000).await.unwrap();
            assert_eq!(counts, [(keys[0].clone(), 4, 1_000), (keys[1].clone(), 3, 1_000)]);
            // Once the window is over it counts for nothing, and starts again.
            assert!(store.throttle_counts(&keys, 61_000, 60_000).await.unwrap().is_empty());
            store.throttle_fail(&keys[1..], 61_000, 60_000).await.unwrap();
            assert_eq!(store.throttle_counts(&keys, 61_001, 60_000).await.unwrap(), [(keys[1].clone(), 1, 61_000)]);
        }
    }
}

//! Timing helpers the benchmarks share.

#![allow(dead_code)]

use std::time::{Duration, Instant};

/// Median time per operation over `rounds` rounds of `batch` operations,
/// after one warm-up batch.
pub fn measure(batch: u32, rounds: u32, mut op: impl FnMut()) -> Duration {
    for _ in 0..batch {
        op();
    }
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

/// Microseconds, for printing.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

//! Latency percentiles over the recorded samples.

use std::time::Duration;

use serde::Serialize;

/// Summary of a set of latency samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// Sorts `samples_ns` in place and summarises them; `None` when empty.
pub fn summarise(samples_ns: &mut [u64]) -> Option<LatencySummary> {
    if samples_ns.is_empty() {
        return None;
    }
    samples_ns.sort_unstable();
    let sum: u128 = samples_ns.iter().map(|ns| u128::from(*ns)).sum();
    let count = samples_ns.len() as u128;
    let mean_ns = sum.checked_div(count).unwrap_or(0);
    Some(LatencySummary {
        p50_us: micros(percentile(samples_ns, 50.0)),
        p90_us: micros(percentile(samples_ns, 90.0)),
        p99_us: micros(percentile(samples_ns, 99.0)),
        p999_us: micros(percentile(samples_ns, 99.9)),
        max_us: micros(samples_ns.last().copied().unwrap_or(0)),
        mean_us: micros(u64::try_from(mean_ns).unwrap_or(u64::MAX)),
    })
}

/// Nearest-rank percentile of sorted samples.
fn percentile(sorted: &[u64], pct: f64) -> u64 {
    let len = sorted.len();
    // rank = ceil(pct/100 * len), clamped to 1..=len.
    let rank = ((pct / 100.0) * len as f64).ceil() as usize;
    let index = rank.clamp(1, len.max(1)) - 1;
    sorted.get(index).copied().unwrap_or(0)
}

fn micros(ns: u64) -> f64 {
    Duration::from_nanos(ns).as_secs_f64() * 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_summary() {
        assert_eq!(summarise(&mut []), None);
    }

    #[test]
    fn nearest_rank_percentiles_of_one_to_hundred() {
        let mut samples: Vec<u64> = (1..=100).rev().map(|us| us * 1000).collect();
        let summary = summarise(&mut samples).unwrap();
        assert_eq!(summary.p50_us, 50.0);
        assert_eq!(summary.p90_us, 90.0);
        assert_eq!(summary.p99_us, 99.0);
        assert_eq!(summary.p999_us, 100.0);
        assert_eq!(summary.max_us, 100.0);
        assert_eq!(summary.mean_us, 50.5);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let summary = summarise(&mut [7000]).unwrap();
        assert_eq!(summary.p50_us, 7.0);
        assert_eq!(summary.p999_us, 7.0);
    }
}

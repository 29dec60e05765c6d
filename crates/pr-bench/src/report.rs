//! Turning samples into the table and the JSON document.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::load::{LoadOutcome, RoundFigures};
use crate::stats::{self, LatencySummary};

/// Everything measured for one target, over all rounds.
#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub name: String,
    pub socket: String,
    pub connections: usize,
    pub requests: usize,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub latency: Option<LatencySummary>,
    pub replies: BTreeMap<String, u64>,
    /// Fewest and most requests one connection completed in one round.
    pub per_connection_min: u64,
    pub per_connection_max: u64,
    /// Helper CPU time (user + system) per measured request, when its pid
    /// was given.
    pub server_cpu_us_per_request: Option<f64>,
    /// Each round's own figures, in round order.
    pub rounds: Vec<RoundFigures>,
}

impl TargetReport {
    pub fn new(name: &str, socket: &Path, connections: usize, mut outcome: LoadOutcome) -> Self {
        let seconds = outcome.elapsed.as_secs_f64();
        let requests = outcome.latencies_ns.len();
        let server_cpu_us_per_request = outcome
            .server_cpu
            .filter(|_| requests > 0)
            .map(|cpu| cpu.as_secs_f64() * 1e6 / requests as f64);
        let ops_per_sec = if seconds > 0.0 {
            requests as f64 / seconds
        } else {
            0.0
        };
        Self {
            name: name.to_owned(),
            socket: socket.display().to_string(),
            connections,
            requests,
            seconds,
            ops_per_sec,
            latency: stats::summarise(&mut outcome.latencies_ns),
            replies: outcome.replies,
            per_connection_min: outcome.per_connection.iter().copied().min().unwrap_or(0),
            per_connection_max: outcome.per_connection.iter().copied().max().unwrap_or(0),
            server_cpu_us_per_request,
            rounds: outcome.rounds,
        }
    }
}

/// One target compared with the baseline (the last target).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub target: String,
    pub baseline: String,
    /// target ops/s ÷ baseline ops/s (higher is better).
    pub throughput: f64,
    /// target p99 ÷ baseline p99 (lower is better).
    pub p99: f64,
    /// target p50 ÷ baseline p50 (lower is better).
    pub p50: f64,
    /// target ÷ baseline helper CPU per request (lower is better); NaN
    /// when either pid was not given.
    pub server_cpu: f64,
}

/// Ratios of every target but the last against the last; with a
/// `subject`, that target against every other one instead.
pub fn ratios(reports: &[TargetReport], subject: Option<&str>) -> Vec<Ratio> {
    match subject {
        Some(name) => {
            let Some(report) = reports.iter().find(|r| r.name == name) else {
                return Vec::new();
            };
            reports
                .iter()
                .filter(|baseline| baseline.name != name)
                .map(|baseline| ratio(report, baseline))
                .collect()
        }
        None => {
            let Some((baseline, others)) = reports.split_last() else {
                return Vec::new();
            };
            others
                .iter()
                .map(|report| ratio(report, baseline))
                .collect()
        }
    }
}

/// `report` against `baseline`.
fn ratio(report: &TargetReport, baseline: &TargetReport) -> Ratio {
    let p = |pick: fn(&LatencySummary) -> f64| match (&report.latency, &baseline.latency) {
        (Some(ours), Some(theirs)) => divide(pick(ours), pick(theirs)),
        _ => f64::NAN,
    };
    Ratio {
        target: report.name.clone(),
        baseline: baseline.name.clone(),
        throughput: divide(report.ops_per_sec, baseline.ops_per_sec),
        p99: p(|l| l.p99_us),
        p50: p(|l| l.p50_us),
        server_cpu: match (
            report.server_cpu_us_per_request,
            baseline.server_cpu_us_per_request,
        ) {
            (Some(ours), Some(theirs)) => divide(ours, theirs),
            _ => f64::NAN,
        },
    }
}

fn divide(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { f64::NAN }
}

/// The JSON document: `{"targets": [...], "ratios": [...]}`.
pub fn load_json(reports: &[TargetReport], ratios: &[Ratio]) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct Document<'a> {
        targets: &'a [TargetReport],
        ratios: &'a [Ratio],
    }
    serde_json::to_string_pretty(&Document {
        targets: reports,
        ratios,
    })
}

/// The summary for scripts: space-separated words, one line per target
/// (`target NAME OPS P50 P99 CPU`), then per ratio (`ratio NAME BASELINE
/// THROUGHPUT P50 P99 CPU`), then per target and round (`round NAME INDEX
/// OPS P50 P99`, INDEX from 1); `nan` where a value is unknown. Names are
/// printed as given, so they must not contain spaces to be split back.
pub fn summary_lines(reports: &[TargetReport], ratios: &[Ratio]) -> String {
    let mut out = String::new();
    for r in reports {
        let (p50, p99) = r
            .latency
            .map_or((f64::NAN, f64::NAN), |l| (l.p50_us, l.p99_us));
        let cpu = r.server_cpu_us_per_request.unwrap_or(f64::NAN);
        let _ = writeln!(
            out,
            "target {} {:.1} {p50:.1} {p99:.1} {cpu:.2}",
            r.name, r.ops_per_sec
        );
    }
    for ratio in ratios {
        let _ = writeln!(
            out,
            "ratio {} {} {:.3} {:.3} {:.3} {:.3}",
            ratio.target, ratio.baseline, ratio.throughput, ratio.p50, ratio.p99, ratio.server_cpu
        );
    }
    for r in reports {
        for (index, round) in r.rounds.iter().enumerate() {
            let _ = writeln!(
                out,
                "round {} {} {:.1} {:.1} {:.1}",
                r.name,
                index + 1,
                round.ops_per_sec,
                round.p50_us,
                round.p99_us
            );
        }
    }
    out
}

/// The human table, one line per target, then replies and ratios.
pub fn load_table(reports: &[TargetReport], ratios: &[Ratio]) -> String {
    let mut out = String::new();
    let width = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let _ = writeln!(
        out,
        "{:<width$} {:>5} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "target", "conns", "requests", "secs", "ops/s", "p50 us", "p99 us", "p99.9 us", "max us"
    );
    for r in reports {
        let (p50, p99, p999, max) = r
            .latency
            .map_or((f64::NAN, f64::NAN, f64::NAN, f64::NAN), |l| {
                (l.p50_us, l.p99_us, l.p999_us, l.max_us)
            });
        let _ = writeln!(
            out,
            "{:<width$} {:>5} {:>9} {:>7.2} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            r.name, r.connections, r.requests, r.seconds, r.ops_per_sec, p50, p99, p999, max
        );
    }
    for r in reports {
        for (reply, count) in &r.replies {
            let _ = writeln!(out, "replies {}: {reply} x {count}", r.name);
        }
        let _ = writeln!(
            out,
            "fairness {}: {} to {} requests per connection and round",
            r.name, r.per_connection_min, r.per_connection_max
        );
        if let Some(cpu) = r.server_cpu_us_per_request {
            let _ = writeln!(out, "server CPU {}: {cpu:.1} us per request", r.name);
        }
    }
    for ratio in ratios {
        let _ = writeln!(
            out,
            "ratio {}/{}: throughput {:.2}x, p50 {:.2}x, p99 {:.2}x",
            ratio.target, ratio.baseline, ratio.throughput, ratio.p50, ratio.p99
        );
        if !ratio.server_cpu.is_nan() {
            let _ = writeln!(
                out,
                "ratio {}/{}: server CPU per request {:.2}x",
                ratio.target, ratio.baseline, ratio.server_cpu
            );
        }
    }
    out
}

/// "outer: inner: innermost" for an error and its sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn report(name: &str, requests: u64, latency_us: u64) -> TargetReport {
        let outcome = LoadOutcome {
            latencies_ns: vec![latency_us * 1000; usize::try_from(requests).unwrap()],
            elapsed: Duration::from_secs(1),
            replies: BTreeMap::from([("GOOD, 0 bytes".to_owned(), requests)]),
            per_connection: vec![requests / 2, requests - requests / 2],
            server_cpu: Some(Duration::from_micros(requests * latency_us / 2)),
            rounds: vec![RoundFigures {
                requests,
                ops_per_sec: requests as f64,
                p50_us: latency_us as f64,
                p99_us: latency_us as f64,
            }],
        };
        TargetReport::new(name, Path::new("/s"), 4, outcome)
    }

    #[test]
    fn ratios_are_against_the_last_target() {
        let reports = [report("ours", 300, 10), report("qemu", 100, 40)];
        let ratios = ratios(&reports, None);
        assert_eq!(ratios.len(), 1);
        assert_eq!(ratios[0].target, "ours");
        assert_eq!(ratios[0].baseline, "qemu");
        assert_eq!(ratios[0].throughput, 3.0);
        assert_eq!(ratios[0].p99, 0.25);
        // 5 us vs 20 us of helper CPU per request.
        assert_eq!(ratios[0].server_cpu, 0.25);
    }

    #[test]
    fn table_lists_targets_replies_and_ratios() {
        let reports = [report("ours", 300, 10), report("qemu", 100, 40)];
        let table = load_table(&reports, &ratios(&reports, None));
        assert!(table.contains("ours"), "{table}");
        assert!(
            table.contains("replies qemu: GOOD, 0 bytes x 100"),
            "{table}"
        );
        assert!(
            table.contains("ratio ours/qemu: throughput 3.00x"),
            "{table}"
        );
    }

    #[test]
    fn json_has_targets_and_ratios() {
        let reports = [report("a", 2, 1), report("b", 1, 1)];
        let json = load_json(&reports, &ratios(&reports, None)).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["targets"][0]["requests"], 2);
        assert_eq!(value["ratios"][0]["throughput"], 2.0);
    }

    #[test]
    fn a_subject_is_compared_with_every_other_target() {
        let reports = [
            report("ours", 300, 10),
            report("qemu", 100, 40),
            report("yardstick", 600, 5),
        ];
        let ratios = ratios(&reports, Some("ours"));
        let pairs: Vec<(&str, &str, f64)> = ratios
            .iter()
            .map(|r| (r.target.as_str(), r.baseline.as_str(), r.throughput))
            .collect();
        assert_eq!(
            pairs,
            vec![("ours", "qemu", 3.0), ("ours", "yardstick", 0.5)]
        );
        assert!(super::ratios(&reports, Some("nobody")).is_empty());
        let summary = summary_lines(&reports, &ratios);
        let lines: Vec<&str> = summary.lines().collect();
        assert_eq!(lines[0], "target ours 300.0 10.0 10.0 5.00");
        assert_eq!(lines[3], "ratio ours qemu 3.000 0.250 0.250 0.250");
        assert_eq!(lines[4], "ratio ours yardstick 0.500 2.000 2.000 2.000");
        assert_eq!(lines[5], "round ours 1 300.0 10.0 10.0");
        assert_eq!(lines[7], "round yardstick 1 600.0 5.0 5.0");
        assert_eq!(lines.len(), 8);
    }
}

//! `pr-model-check`: the differential test of `pr-target` against a real SPC-4
//! device. Given a seed, two device nodes that are one logical unit seen through two
//! initiators (the VM tier's `/dev/sda` and `/dev/sdb` on LIO's loopback fabric) and a
//! count, it plays a seeded random sequence of PR commands from the two initiators
//! against the device (SG_IO) and against an in-process `pr-target`, and compares
//! status, sense and payloads.
//!
//! usage: pr-model-check [--seed N] [--count N] [--timeout-ms N] DEVICE_A DEVICE_B
//!
//! Output: one `MISMATCH ...` line per difference, then one line
//! `SUMMARY seed=.. commands=.. mismatches=.. unit_attentions=.. deliberate=.. resyncs=..`.
//! Exit status: 0 no mismatch, 1 mismatches, 2 the run could not be made (device
//! errors, discovery failed). The deliberate differences, which are not mismatches,
//! are listed in `check.rs`.
#![forbid(unsafe_code)]

// A binary's root file takes its modules from its own folder; these live in
// `pr-model-check/` next to it.
#[path = "pr-model-check/check.rs"]
mod check;
#[path = "pr-model-check/device.rs"]
mod device;
#[cfg(test)]
#[path = "pr-model-check/fake.rs"]
mod fake;
#[path = "pr-model-check/generate.rs"]
mod generate;
#[path = "pr-model-check/rng.rs"]
mod rng;

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use crate::check::Checker;
use crate::device::SgDevice;

/// Differential test of pr-target against a real device (two initiators, one LUN).
#[derive(Debug, Parser)]
#[command(name = "pr-model-check")]
struct Args {
    /// Seed of the command sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of commands.
    #[arg(long, default_value_t = 500)]
    count: usize,
    /// Print every command and the device's reply (to standard error).
    #[arg(long)]
    trace: bool,
    /// SG_IO timeout per command, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
    /// The logical unit through the first initiator (e.g. /dev/sda).
    device_a: PathBuf,
    /// The same logical unit through the second initiator (e.g. /dev/sdb).
    device_b: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let open = |path: &PathBuf| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))
    };
    let paths = match (open(&args.device_a), open(&args.device_b)) {
        (Ok(a), Ok(b)) => [a, b],
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("pr-model-check: {e}");
            return ExitCode::from(2);
        }
    };
    let device = SgDevice {
        paths,
        timeout: Duration::from_millis(args.timeout_ms),
        trace: args.trace,
    };
    let result = Checker::new(device)
        .and_then(|mut checker| checker.run(args.seed, args.count, &mut |line| println!("{line}")));
    match result {
        Ok(summary) => {
            println!(
                "SUMMARY seed={} commands={} mismatches={} unit_attentions={} deliberate={} resyncs={}",
                args.seed,
                summary.commands,
                summary.mismatches,
                summary.unit_attentions,
                summary.deliberate,
                summary.resyncs
            );
            if summary.mismatches == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(error) => {
            println!("SUMMARY seed={} error: {error}", args.seed);
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::check::Checker;
    use crate::fake::{Bug, FakeDevice};

    fn run(device: FakeDevice, seed: u64, count: usize) -> (crate::check::Summary, Vec<String>) {
        let mut lines = Vec::new();
        let mut checker = Checker::new(device).unwrap();
        let summary = checker.run(seed, count, &mut |l| lines.push(l)).unwrap();
        (summary, lines)
    }

    #[test]
    fn discovery_learns_both_initiators_from_read_full_status() {
        let device = FakeDevice::new();
        let expected = device.nexus.clone();
        let checker = Checker::new(device).unwrap();
        assert_eq!(checker.nexus, expected);
    }

    #[test]
    fn a_faithful_device_gives_no_mismatch_over_many_seeds() {
        for seed in 0..20 {
            let (summary, lines) = run(FakeDevice::new(), seed, 400);
            assert_eq!(summary.commands, 400);
            assert_eq!(summary.mismatches, 0, "seed {seed}: {lines:?}");
        }
    }

    #[test]
    fn unit_attentions_are_consumed_and_counted_not_reported() {
        let mut device = FakeDevice::new();
        device.unit_attentions = true;
        let (summary, lines) = run(device, 3, 600);
        assert_eq!(summary.mismatches, 0, "{lines:?}");
        assert!(summary.unit_attentions > 0);
    }

    #[test]
    fn a_device_with_a_bug_is_caught_with_one_line_per_mismatch() {
        let mut mismatches = 0;
        for seed in 0..10 {
            let mut device = FakeDevice::new();
            device.bug = Some(Bug::ReleaseIgnoresType);
            let (summary, lines) = run(device, seed, 600);
            mismatches += summary.mismatches;
            assert_eq!(lines.len(), summary.mismatches);
            let prefix = format!("MISMATCH seed={seed} #");
            assert!(lines.iter().all(|l| l.starts_with(&prefix)), "{lines:?}");
            assert!(lines.iter().all(|l| l.contains("RELEASE")), "{lines:?}");
        }
        assert!(mismatches > 0);
    }

    #[test]
    fn lio_all_registrants_preempt_and_stale_scope_are_deliberate_not_mismatches() {
        // The fake plays LIO's answers for differences 13 and 14 (lio_quirks).
        let mut played = [0; 2];
        for seed in 0..40 {
            let mut checker = Checker::new(FakeDevice::new()).unwrap();
            let mut lines = Vec::new();
            let summary = checker.run(seed, 400, &mut |l| lines.push(l)).unwrap();
            assert_eq!(summary.mismatches, 0, "seed {seed}: {lines:?}");
            for (total, n) in played.iter_mut().zip(checker.device().quirks_played) {
                *total += n;
            }
        }
        assert!(played[..2].iter().all(|&n| n > 0), "{played:?}");
    }

    #[test]
    fn lio7_preempt_type_check_is_deliberate_not_a_mismatch() {
        // The fake plays the 7.x kernel's LIO for difference 15.
        let mut played = 0;
        for seed in 0..20 {
            let mut device = FakeDevice::new();
            device.lio7_preempt_type = true;
            let mut checker = Checker::new(device).unwrap();
            let mut lines = Vec::new();
            let summary = checker.run(seed, 400, &mut |l| lines.push(l)).unwrap();
            assert_eq!(summary.mismatches, 0, "seed {seed}: {lines:?}");
            played += checker.device().quirks_played[2];
        }
        assert!(played > 0);
    }

    #[test]
    fn a_holder_release_conflict_without_a_stale_scope_is_a_mismatch() {
        let mut mismatches = 0;
        for seed in 0..10 {
            let mut device = FakeDevice::new();
            device.bug = Some(Bug::HolderReleaseConflicts);
            let (summary, lines) = run(device, seed, 600);
            mismatches += summary.mismatches;
            assert!(lines.iter().all(|l| l.contains("RELEASE")), "{lines:?}");
        }
        assert!(mismatches > 0);
    }

    #[test]
    fn the_sequence_exercises_every_outcome() {
        // Guard against a generator that only ever produces refusals (or successes).
        let device = FakeDevice::new();
        let mut checker = Checker::new(device).unwrap();
        let mut rng = crate::rng::Rng::new(11);
        let mut model = pr_target::LogicalUnit::new(vec![1, 2]);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let command = crate::generate::generate(&mut rng, &model, &checker.nexus, true);
            let outcome = model.execute(
                &checker.nexus[command.path.index()],
                &command.cdb,
                &command.data_out,
            );
            seen.insert((outcome.status(), outcome.sense().map(|s| (s.asc, s.ascq))));
        }
        let _ = checker.run(11, 1, &mut |_| {});
        assert!(seen.contains(&(0x00, None)));
        assert!(seen.contains(&(0x18, None)));
        assert!(seen.contains(&(0x02, Some((0x24, 0x00)))), "{seen:?}");
        assert!(seen.contains(&(0x02, Some((0x26, 0x00)))), "{seen:?}");
    }
}

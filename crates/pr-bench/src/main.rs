//! `pr-bench`: closed-loop load generator for PR helper sockets.
//!
//! `load` drives one or more helpers (interleaved in rounds, so noise on a
//! shared machine hits all of them alike) and prints ops/s and latency
//! percentiles with ratios against the last target; `idle` holds many
//! negotiated connections and reports what they cost the helper in RSS;
//! `yardstick` serves the protocol with the least work it allows, as a
//! baseline for the daemons.
#![forbid(unsafe_code)]

mod cpu;
mod idle;
mod load;
mod report;
mod stats;
mod wire;
mod yardstick;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::load::{LoadConfig, LoadOutcome, StopRule};
use crate::report::TargetReport;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Closed-loop PR IN load against one or more helper sockets.
    Load(LoadArgs),
    /// Hold idle connections and measure the helper's RSS growth.
    Idle(IdleArgs),
    /// Serve the protocol with the least work it allows (a thread per
    /// connection, SG_IO inline): the baseline the daemons are measured
    /// against. Runs until killed.
    Yardstick(YardstickArgs),
    /// Mount a FUSE file system whose server stops answering (root), then
    /// send a helper READ KEYS with a descriptor of a file on it, again and
    /// again, for --duration seconds: a peer whose descriptors block `stat`
    /// and `close`. Other peers can be measured meanwhile.
    StuckFuse(StuckFuseArgs),
}

#[derive(Debug, clap::Args)]
struct StuckFuseArgs {
    /// Helper socket.
    #[arg(short = 'k', long)]
    socket: PathBuf,
    /// Seconds to keep sending (then the file system answers again, so that
    /// every waiting close returns).
    #[arg(short = 'd', long, default_value_t = 5.0)]
    duration: f64,
}

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Helper to drive, as NAME=SOCKET or just SOCKET; repeat to compare.
    /// Ratios are printed against the last one.
    #[arg(short = 't', long = "target", required = true, value_parser = parse_target)]
    targets: Vec<Target>,
    /// Process id of a target's helper, as NAME=PID (NAME as in --target):
    /// its CPU time per request is reported. Repeatable.
    #[arg(short = 'p', long = "pid", value_parser = parse_pid)]
    pids: Vec<(String, u32)>,
    /// Concurrent connections, one thread each.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Measured seconds per target per round.
    #[arg(short = 'd', long, default_value_t = 5.0, conflicts_with = "requests")]
    duration: f64,
    /// Measured requests per target per round (instead of --duration).
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// Unmeasured seconds before each measured phase.
    #[arg(short = 'w', long, default_value_t = 1.0)]
    warmup: f64,
    /// Rounds; each runs every target once, alternating the order.
    #[arg(short = 'r', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// File or device whose descriptor every request carries.
    #[arg(short = 'D', long, default_value = "/dev/null")]
    device: PathBuf,
    /// Each connection opens --device itself (the shape of many VMs, one
    /// helper) instead of all connections sending one shared open file.
    #[arg(long)]
    file_per_connection: bool,
    /// Allocation length of the READ KEYS CDB (at most 8192).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u16).range(0..=8192))]
    alloc_len: u16,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON document to this file.
    #[arg(long, value_name = "PATH")]
    json_out: Option<PathBuf>,
    /// Compare this target (NAME as in --target) against every other one,
    /// instead of every target against the last.
    #[arg(long, value_name = "NAME")]
    subject: Option<String>,
    /// Also write a line-based summary for scripts to this file: one
    /// `target NAME OPS_PER_SEC P50_US P99_US CPU_US_PER_REQUEST` line per
    /// target, then one `ratio NAME BASELINE THROUGHPUT P50 P99 CPU` line
    /// per ratio, then one `round NAME INDEX OPS_PER_SEC P50_US P99_US` line
    /// per target and round (`nan` where unknown).
    #[arg(long, value_name = "PATH")]
    summary_out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct YardstickArgs {
    /// Socket to listen on; must not exist yet.
    #[arg(short = 'k', long)]
    socket: PathBuf,
    /// Timeout of each SG_IO, in seconds.
    #[arg(long, default_value_t = 30.0)]
    sg_io_timeout: f64,
    /// One `fstat` of each request's descriptor before its SG_IO, the
    /// descriptor identity check a helper that routes by device must make
    /// (ours does; qemu-pr-helper's multipath build makes it too): compares
    /// like with like.
    #[arg(long)]
    identity_check: bool,
}

#[derive(Debug, clap::Args)]
struct IdleArgs {
    /// Helper socket.
    #[arg(short = 'k', long)]
    socket: PathBuf,
    /// Process id of the helper, for /proc/PID/status.
    #[arg(short = 'p', long)]
    pid: u32,
    /// Idle connections to hold.
    #[arg(short = 'c', long, default_value_t = 500)]
    connections: usize,
    /// Milliseconds to wait before each RSS reading.
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct Target {
    name: String,
    socket: PathBuf,
}

fn parse_target(text: &str) -> Result<Target, String> {
    let (name, socket) = match text.split_once('=') {
        Some((name, socket)) if !name.is_empty() => (name.to_owned(), socket),
        _ => (text.to_owned(), text),
    };
    if socket.is_empty() {
        return Err("empty socket path".to_owned());
    }
    Ok(Target {
        name,
        socket: PathBuf::from(socket),
    })
}

fn parse_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| "expected NAME=PID".to_owned())?;
    let pid = pid.parse().map_err(|_| format!("{pid:?} is not a pid"))?;
    Ok((name.to_owned(), pid))
}

fn seconds(value: f64, what: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value).map_err(|_| format!("{what} must be a non-negative number"))
}

fn run_load(args: &LoadArgs) -> Result<(), Box<dyn std::error::Error>> {
    let stop = match args.requests {
        Some(count) => StopRule::Requests(count),
        None => StopRule::After(seconds(args.duration, "--duration")?),
    };
    let warmup = seconds(args.warmup, "--warmup")?;
    let cdb = wire::pr_in_cdb(wire::READ_KEYS, args.alloc_len);
    let mut outcomes: Vec<LoadOutcome> = args
        .targets
        .iter()
        .map(|_| LoadOutcome::default())
        .collect();
    for round in 0..args.rounds {
        let mut order: Vec<usize> = (0..args.targets.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for index in order {
            let Some(target) = args.targets.get(index) else {
                continue;
            };
            let config = LoadConfig {
                socket: target.socket.clone(),
                connections: usize::from(args.connections),
                warmup,
                stop,
                device: args.device.clone(),
                file_per_connection: args.file_per_connection,
                cdb,
                server_pid: args
                    .pids
                    .iter()
                    .find(|(name, _)| *name == target.name)
                    .map(|(_, pid)| *pid),
            };
            let outcome = load::run(&config)
                .map_err(|error| format!("{}: {}", target.name, report::error_chain(&error)))?;
            if let Some(total) = outcomes.get_mut(index) {
                total.merge(outcome);
            }
        }
    }
    let reports: Vec<TargetReport> = args
        .targets
        .iter()
        .zip(outcomes)
        .map(|(target, outcome)| {
            TargetReport::new(
                &target.name,
                &target.socket,
                usize::from(args.connections),
                outcome,
            )
        })
        .collect();
    if let Some(name) = &args.subject {
        if !args.targets.iter().any(|target| target.name == *name) {
            return Err(format!("--subject {name}: no --target has that name").into());
        }
    }
    let ratios = report::ratios(&reports, args.subject.as_deref());
    let json = report::load_json(&reports, &ratios)?;
    if let Some(path) = &args.summary_out {
        std::fs::write(path, report::summary_lines(&reports, &ratios))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if let Some(path) = &args.json_out {
        std::fs::write(path, format!("{json}\n"))
            .map_err(|error| format!("cannot write {}: {error}", path.display()))?;
    }
    if args.json {
        println!("{json}");
    } else {
        print!("{}", report::load_table(&reports, &ratios));
    }
    Ok(())
}

fn run_idle(args: &IdleArgs) -> Result<(), Box<dyn std::error::Error>> {
    let result = idle::measure(
        &args.socket,
        args.pid,
        args.connections,
        Duration::from_millis(args.settle_ms),
    )
    .map_err(|error| report::error_chain(&error))?;
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        println!(
            "{} idle connections: VmRSS {} KiB -> {} KiB, {:.0} bytes per connection",
            result.connections,
            result.rss_before_kib,
            result.rss_after_kib,
            result.rss_per_connection_bytes
        );
    }
    Ok(())
}

fn run_yardstick(args: &YardstickArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = yardstick::YardstickConfig {
        socket: args.socket.clone(),
        sg_io_timeout: seconds(args.sg_io_timeout, "--sg-io-timeout")?,
        identity_check: args.identity_check,
    };
    yardstick::serve(&config).map_err(|error| report::error_chain(&error))?;
    Ok(())
}

fn run_stuck_fuse(args: &StuckFuseArgs) -> Result<(), Box<dyn std::error::Error>> {
    let duration = seconds(args.duration, "--duration")?;
    let mut fuse = pr_testkit::fuse::StuckFuse::mount()
        .map_err(|error| format!("cannot mount a FUSE file system (root, /dev/fuse): {error}"))?;
    fuse.open()
        .map_err(|error| format!("cannot open the file on it: {error}"))?;
    fuse.go_silent();
    let fd = fuse.descriptor().ok_or("the file is not open")?;
    let mut connection =
        wire::Connection::open(&args.socket).map_err(|error| report::error_chain(&error))?;
    let request = wire::LeanRequest::new(&wire::pr_in_cdb(wire::READ_KEYS, 1024))
        .map_err(|error| report::error_chain(&error))?;
    let until = std::time::Instant::now() + duration;
    // A helper that makes this peer wait is within its rights; stop waiting
    // for replies at the end of the run.
    let mut answered = 0u64;
    loop {
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        connection.set_read_timeout(Some(left))?;
        if connection.call_lean(&request, fd).is_err() {
            break;
        }
        answered += 1;
    }
    println!("stuck-fuse: {answered} commands answered with a descriptor of the stuck file system");
    // Dropping `fuse` answers what was held back: every waiting close returns.
    drop(connection);
    drop(fuse);
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Load(args) => run_load(args),
        Command::Idle(args) => run_idle(args),
        Command::Yardstick(args) => run_yardstick(args),
        Command::StuckFuse(args) => run_stuck_fuse(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pr-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_with_and_without_name() {
        let named = parse_target("ours=/tmp/a.sock").unwrap();
        assert_eq!(named.name, "ours");
        assert_eq!(named.socket, PathBuf::from("/tmp/a.sock"));
        let bare = parse_target("/tmp/b.sock").unwrap();
        assert_eq!(bare.name, "/tmp/b.sock");
        assert!(parse_target("x=").is_err());
    }

    #[test]
    fn cli_parses_a_comparison() {
        let cli = Cli::try_parse_from([
            "pr-bench", "load", "-t", "a=/a", "-t", "b=/b", "-c", "16", "-n", "1000",
        ])
        .unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not a load command")
        };
        assert_eq!(args.targets.len(), 2);
        assert_eq!(args.connections, 16);
        assert_eq!(args.requests, Some(1000));
        let cli = Cli::try_parse_from(["pr-bench", "load", "-t", "a=/a", "-p", "a=42"]).unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not a load command")
        };
        assert_eq!(args.pids, vec![("a".to_owned(), 42)]);
        assert_eq!(args.subject, None);
        let cli = Cli::try_parse_from([
            "pr-bench",
            "load",
            "-t",
            "a=/a",
            "-t",
            "b=/b",
            "--subject",
            "a",
            "--summary-out",
            "/tmp/s",
        ])
        .unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not a load command")
        };
        assert_eq!(args.subject.as_deref(), Some("a"));
        assert_eq!(args.summary_out, Some(PathBuf::from("/tmp/s")));
        let cli = Cli::try_parse_from(["pr-bench", "yardstick", "-k", "/tmp/y.sock"]).unwrap();
        let Command::Yardstick(args) = cli.command else {
            panic!("not a yardstick command")
        };
        assert_eq!(args.socket, PathBuf::from("/tmp/y.sock"));
        assert_eq!(args.sg_io_timeout, 30.0);
        assert!(!args.identity_check);
        let cli = Cli::try_parse_from([
            "pr-bench",
            "yardstick",
            "-k",
            "/tmp/y.sock",
            "--identity-check",
        ])
        .unwrap();
        let Command::Yardstick(args) = cli.command else {
            panic!("not a yardstick command")
        };
        assert!(args.identity_check);
        let cli = Cli::try_parse_from(["pr-bench", "load", "-t", "a=/a", "--file-per-connection"])
            .unwrap();
        let Command::Load(args) = cli.command else {
            panic!("not a load command")
        };
        assert!(args.file_per_connection);
        assert!(parse_pid("a=x").is_err());
        assert!(parse_pid("42").is_err());
    }
}

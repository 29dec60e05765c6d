//! Throughput of one shared client with a pool of 4 connections against a
//! pool of 1, under 16 threads (a benchmark, not a test: it prints numbers).
//!
//! Peers: `pr-helper-slow` (a binary of the pr-helper package: our daemon with a
//! test backend that delays every command by `PR_HELPER_TEST_LATENCY_MS`, a
//! stand-in for a slow array, so the pool's parallelism shows), and Debian's
//! `qemu-pr-helper` without any delay (pure protocol and thread cost).
//!
//! Run: `cargo bench -p pr-manager --bench pool`
//! Knobs: `PR_BENCH_LATENCY_MS` (default 5), `PR_BENCH_ROUNDS` (commands per
//! thread with latency, default 40; ×50 without), `PR_HELPER_BIN` (use this
//! daemon binary instead of building one).

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use pr_manager::{Client, Config, DataTransfer};
use pr_testkit::reference::{HelperProcess, QEMU_PR_HELPER};

const THREADS: usize = 16;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Our daemon with the delaying backend: `PR_HELPER_BIN`, or built now.
fn our_daemon() -> PathBuf {
    if let Some(bin) = std::env::var_os("PR_HELPER_BIN") {
        return PathBuf::from(bin);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "pr-helper",
            "--bin",
            "pr-helper-slow",
            "--target-dir",
        ])
        .arg(&target_dir)
        .status()
        .expect("run cargo build");
    assert!(status.success(), "building pr-helper-slow failed");
    target_dir.join("release/pr-helper-slow")
}

/// Commands per second through one client with `pool` connections.
fn throughput(
    socket: &Path,
    pool: usize,
    per_thread: usize,
    device: &std::fs::File,
) -> (usize, f64) {
    let mut config = Config::new(socket);
    config.max_connections = pool;
    let client = Arc::new(Client::new(config));
    let read_keys = [0x5E, 0x00, 0, 0, 0, 0, 0, 0x00, 0x40, 0];
    // Warm up: open the pool's connections before timing.
    thread::scope(|scope| {
        for _ in 0..pool {
            let client = Arc::clone(&client);
            scope.spawn(move || {
                let mut buf = [0u8; 64];
                let _ = client.execute(
                    &read_keys,
                    device.as_fd(),
                    DataTransfer::FromDevice(&mut buf),
                );
            });
        }
    });
    let start = Instant::now();
    let done: usize = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                let client = Arc::clone(&client);
                scope.spawn(move || {
                    let mut ok = 0usize;
                    let mut buf = [0u8; 64];
                    for _ in 0..per_thread {
                        let reply = client
                            .execute(
                                &read_keys,
                                device.as_fd(),
                                DataTransfer::FromDevice(&mut buf),
                            )
                            .expect("valid command");
                        if reply.failure.is_none() {
                            ok += 1;
                        }
                    }
                    ok
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker")).sum()
    });
    (done, done as f64 / start.elapsed().as_secs_f64())
}

fn compare(label: &str, program: &Path, per_thread: usize) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let socket = dir.path().join("bench.sock");
    let helper = HelperProcess::spawn(program, &socket, &dir.path().join("bench.pid"), &[])
        .expect("start the helper");
    let device = tempfile::tempfile().expect("device file");
    let mut rates = Vec::new();
    for pool in [1usize, 4] {
        let (done, rate) = throughput(&socket, pool, per_thread, &device);
        println!("{label:<32} pool {pool}  {done:>6} commands  {rate:>10.0} commands/s");
        rates.push(rate);
    }
    if let [one, four] = rates[..] {
        println!("{label:<32} ratio pool 4 / pool 1: {:.2}", four / one);
    }
    drop(helper);
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let latency = env_number("PR_BENCH_LATENCY_MS", 5);
    let rounds = usize::try_from(env_number("PR_BENCH_ROUNDS", 40)).unwrap_or(40);
    println!("pool benchmark: {THREADS} threads, READ KEYS on a regular file, one shared client");
    let ours = our_daemon();
    let ours_label = format!("pr-helper, {latency} ms/command");
    compare_with_env(&ours_label, &ours, latency, rounds);
    if Path::new(QEMU_PR_HELPER).exists() {
        compare(
            "qemu-pr-helper, no added latency",
            Path::new(QEMU_PR_HELPER),
            rounds * 50,
        );
    }
}

fn compare_with_env(label: &str, program: &Path, latency: u64, per_thread: usize) {
    // The daemon reads PR_HELPER_TEST_LATENCY_MS from its environment; run it
    // through `env` so this process's environment stays untouched.
    let dir = tempfile::tempdir().expect("temporary directory");
    let wrapper = dir.path().join("pr-helper-with-latency");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nPR_HELPER_TEST_LATENCY_MS={latency} exec '{}' -q \"$@\"\n",
            program.display()
        ),
    )
    .expect("write wrapper");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("make wrapper executable");
    }
    compare(label, &wrapper, per_thread);
}

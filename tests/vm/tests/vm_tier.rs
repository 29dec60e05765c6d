//! The real-device tier, run by nextest with the rest of the workspace:
//! boots Debian's kernel under QEMU with LIO disks (see ../README.md), runs
//! every guest scenario and fails on any failed check, on an expected
//! scenario that did not finish, or on the deadline. One test per kernel of
//! the matrix (`VM_KERNEL` of run.sh): Debian 12's 6.1 and the current
//! backports kernel (7.x), which also runs the `nvme*` scenarios.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;
use vm_tests::report::Report;

/// A kernel of the matrix: run.sh's `VM_KERNEL` and its deadlines.
#[derive(Clone, Copy)]
struct Kernel {
    name: &'static str,
    /// Boot deadline handed to run.sh.
    guest_deadline: Duration,
    /// The outer deadline: adds the time to fetch the kernel and build the
    /// initramfs.
    harness_deadline: Duration,
    /// Whether the `nvme*` scenarios are expected: the NVMe target has
    /// reservations since 6.13, and Debian's 6.1 does not even build its loop
    /// transport.
    nvme: bool,
}

/// The deadlines only guard against a hang: about 70 s of scenarios on an idle
/// 2-core machine before the confinement scenario; with it, 276 s for run.sh
/// as a whole (313 checks) while three guests and builds shared the machine.
const STABLE: Kernel = Kernel {
    name: "stable",
    guest_deadline: Duration::from_secs(420),
    harness_deadline: Duration::from_secs(480),
    nvme: false,
};

/// The first run also downloads and unpacks the kernel (about 120 MB), and
/// the NVMe scenarios run on it.
const CURRENT: Kernel = Kernel {
    name: "current",
    guest_deadline: Duration::from_secs(480),
    harness_deadline: Duration::from_secs(540),
    nvme: true,
};

/// Scenarios that must run even if a file went missing.
const REQUIRED_SCENARIOS: &[&str] = &[
    "setup",
    "lifecycle",
    "two-initiators",
    "sg-device",
    "differential",
    "multipath",
    "sigterm",
    "bench",
];

/// Binaries the guest runs, built by
/// `cargo build --release -p pr-helper -p prtool -p pr-bench -p vm-tests`.
const RELEASE_BINARIES: &[&str] = &[
    "pr-helper",
    "prtool",
    "pr-bench",
    "pr-replay",
    "pr-sigterm-probe",
    "pr-helper-probe",
];

fn vm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `<target>/release`: from PR_BIN_DIR, else next to this test's own
/// profile folder (`<target>/<profile>/deps/vm_tier-*`).
fn release_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PR_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary lives in <target>/<profile>/deps");
    target.join("release")
}

/// Every `guest/scenario-*.sh` present, plus the required ones; the `nvme*`
/// ones only on a kernel with NVMe target reservations.
fn expected_scenarios(kernel: Kernel) -> Vec<String> {
    let mut names: Vec<String> = REQUIRED_SCENARIOS.iter().map(|s| (*s).to_owned()).collect();
    let guest = vm_dir().join("guest");
    for entry in std::fs::read_dir(&guest).expect("tests/vm/guest is readable") {
        let name = entry.expect("directory entry").file_name();
        let name = name.to_string_lossy();
        if let Some(scenario) = name
            .strip_prefix("scenario-")
            .and_then(|rest| rest.strip_suffix(".sh"))
        {
            if scenario.starts_with("nvme") && !kernel.nvme {
                continue;
            }
            if !names.iter().any(|known| known == scenario) {
                names.push(scenario.to_owned());
            }
        }
    }
    names
}

fn missing_binaries(dir: &Path) -> Vec<&'static str> {
    RELEASE_BINARIES
        .iter()
        .copied()
        .filter(|name| !dir.join(name).is_file())
        .collect()
}

/// Runs run.sh in its own process group; kills the group at the deadline.
fn run_harness(bin_dir: &Path, kernel: Kernel) -> (Option<i32>, String, String) {
    let out_dir = tempfile_dir(kernel);
    let stdout_path = out_dir.join("stdout");
    let stderr_path = out_dir.join("stderr");
    let mut child = Command::new(vm_dir().join("run.sh"))
        .env("PR_BIN_DIR", bin_dir)
        .env("VM_KERNEL", kernel.name)
        .env("VM_TIMEOUT", kernel.guest_deadline.as_secs().to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("create stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("create stderr file"))
        .process_group(0)
        .spawn()
        .expect("start tests/vm/run.sh");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for run.sh") {
            break status.code();
        }
        if started.elapsed() > kernel.harness_deadline {
            // The whole group: run.sh, timeout and qemu.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out_dir);
    (status, stdout, stderr)
}

fn tempfile_dir(kernel: Kernel) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vm-tier-{}-{}", kernel.name, std::process::id()));
    std::fs::create_dir_all(&dir).expect("create a temporary folder");
    dir
}

/// Debian 12's kernel (6.1), as the tier has always run.
#[test]
fn real_scsi_devices_in_a_vm() {
    run_tier(STABLE);
}

/// Debian's current backports kernel (7.x): every scenario, plus the NVMe
/// target scenarios.
#[test]
fn real_devices_in_a_vm_on_the_current_kernel() {
    run_tier(CURRENT);
}

fn run_tier(kernel: Kernel) {
    let bin_dir = release_dir();
    let missing = missing_binaries(&bin_dir);
    assert!(
        missing.is_empty(),
        "release binaries missing from {}: {}. Build them first: \
         cargo build --release -p pr-helper -p prtool -p pr-bench -p vm-tests \
         (scripts/test.sh does this)",
        bin_dir.display(),
        missing.join(", ")
    );

    let started = Instant::now();
    let (status, stdout, stderr) = run_harness(&bin_dir, kernel);
    let elapsed = started.elapsed();
    let report = Report::parse(&stdout);

    println!("{stdout}");
    println!("--- measurements (reported, not asserted)");
    for (scenario, key, value) in report.infos() {
        println!("{scenario} {key}: {value}");
    }
    println!(
        "--- VM tier (VM_KERNEL={}): {} checks in {:.0} s",
        kernel.name,
        report.check_count(),
        elapsed.as_secs_f64()
    );

    let console = format!(".cache/vm/last-run-{}/console.log", kernel.name);
    let Some(code) = status else {
        panic!(
            "the VM tier (VM_KERNEL={}) did not finish within {} s; console log: {console}\n{stderr}",
            kernel.name,
            kernel.harness_deadline.as_secs()
        );
    };
    assert_eq!(
        code, 0,
        "tests/vm/run.sh (VM_KERNEL={}) failed (exit {code}); console log: {console}\n{stderr}",
        kernel.name
    );
    let problems = report.problems(&expected_scenarios(kernel));
    assert!(
        problems.is_empty(),
        "the VM tier (VM_KERNEL={}) found {} problem(s):\n{}\nconsole log: {console}",
        kernel.name,
        problems.len(),
        problems.join("\n")
    );
}

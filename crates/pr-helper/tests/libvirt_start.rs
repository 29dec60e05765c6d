//! `pr-helper` started exactly as libvirt starts a managed PR helper
//! (`<reservations managed='yes'/>`, `pr_helper` in qemu.conf), with the
//! real QEMU connecting to it.
//!
//! What libvirt does, and what [`Libvirt::start_helper`] does likewise:
//! removes a stale socket file; runs `PR_HELPER -k SOCKET` and nothing
//! else, daemonised by the launcher, not by the helper (no `-d`, no `-f`):
//! the launching parent writes the pid file itself and keeps a pipe on the
//! helper's stderr for its error reports; the helper is put into the VM's
//! mount namespace (libvirt gives each QEMU a private one) before it runs;
//! then libvirt waits for the socket to appear while the pid is alive.
//! Here the VM's namespace is made with `unshare --mount` and entered with
//! `nsenter --mount`, and holds a tmpfs of its own, so it really differs
//! from ours. When the helper dies libvirt starts it again the same way
//! (after removing its pid file); when a disk with reservations is
//! hot-plugged it adds a `pr-manager-helper` object with QMP `object-add`.
//! QEMU (Debian's, over QMP) must see every step as connected.
//!
//! `PR_HELPER_BIN` overrides the binary under test. Needs root.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::thread::JoinHandle;

use pr_testkit::qmp::Qmp;
use pr_testkit::reference::{self, QemuProcess};
use pr_testkit::wait::{has_exited, signal, wait_until};
use rustix::process::Signal;

fn our_binary() -> PathBuf {
    std::env::var_os("PR_HELPER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pr-helper")))
}

fn mount_namespace(pid: u32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).expect("read a mount namespace link")
}

fn command_line(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("read the helper's command line")
        .split(|&b| b == 0)
        .filter(|arg| !arg.is_empty())
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// The VM's private mount namespace, kept alive by a sleeping process.
struct VmNamespace {
    holder: Child,
}

impl VmNamespace {
    fn create(private_dir: &Path) -> Self {
        std::fs::create_dir_all(private_dir).unwrap();
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount -t tmpfs pr-helper-test-vm \"$1\" && echo ready && exec sleep 100000")
            .arg("sh")
            .arg(private_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run unshare (util-linux)");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the VM namespace was not set up");
        Self { holder }
    }

    fn pid(&self) -> u32 {
        self.holder.id()
    }
}

impl Drop for VmNamespace {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// What libvirt keeps for the managed helper of one VM.
struct Libvirt {
    program: PathBuf,
    socket: PathBuf,
    pidfile: PathBuf,
    vm_namespace: u32,
}

/// A helper libvirt started: its pid (from the pid file) and the reader of
/// its stderr pipe.
struct Started {
    pid: u32,
    stderr: JoinHandle<String>,
}

impl Libvirt {
    /// qemuProcessStartManagedPRDaemon, step by step.
    fn start_helper(&self) -> Started {
        // A stale socket would make the wait below succeed at once.
        match std::fs::remove_file(&self.socket) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => panic!("remove the stale socket: {error}"),
        }
        // The launcher: a parent that puts the helper in the background in
        // a session of its own, inside the VM's mount namespace, writes its
        // pid to the pid file and exits. setsid and nsenter exec in place,
        // so `$!` is the helper's pid. The helper inherits the stderr pipe.
        let launcher = Command::new("sh")
            .arg("-c")
            .arg(concat!(
                "setsid nsenter --mount=/proc/\"$1\"/ns/mnt -- \"$2\" -k \"$3\" ",
                "</dev/null >/dev/null & echo $! >\"$4\""
            ))
            .arg("sh")
            .arg(self.vm_namespace.to_string())
            .arg(&self.program)
            .arg(&self.socket)
            .arg(&self.pidfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run the launcher");
        let (status, stderr) = wait_launcher(launcher);
        assert!(status.success(), "the launcher failed: {status}");
        let pid: u32 = std::fs::read_to_string(&self.pidfile)
            .expect("the launcher wrote the pid file")
            .trim()
            .parse()
            .expect("a pid in the pid file");
        // libvirt then polls for the socket while the helper lives.
        wait_until("the helper's socket appears", || {
            has_exited(pid) || is_socket(&self.socket)
        });
        assert!(
            !has_exited(pid),
            "the helper exited before its socket appeared: {}",
            stderr.join().unwrap()
        );
        Started { pid, stderr }
    }

    /// qemuProcessKillManagedPRDaemon: SIGTERM to the pid in the pid file,
    /// then the pid file removed.
    fn stop_helper(&self) {
        if let Ok(text) = std::fs::read_to_string(&self.pidfile) {
            let pid: u32 = text.trim().parse().expect("a pid in the pid file");
            if !has_exited(pid) {
                signal(pid, Signal::TERM);
                wait_until("the helper exits on SIGTERM", || has_exited(pid));
            }
        }
        let _ = std::fs::remove_file(&self.pidfile);
    }
}

fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_socket())
}

/// Waits for the launcher and starts reading the stderr pipe, which stays
/// open as long as the helper runs.
fn wait_launcher(mut launcher: Child) -> (std::process::ExitStatus, JoinHandle<String>) {
    let mut pipe: ChildStderr = launcher.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        text
    });
    (launcher.wait().expect("wait for the launcher"), reader)
}

/// Kills helpers a failing test would leave running.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for &pid in &self.0 {
            if !has_exited(pid) {
                signal(pid, Signal::KILL);
            }
        }
    }
}

fn managers(entries: &[(&str, bool)]) -> Vec<(String, bool)> {
    entries
        .iter()
        .map(|(id, connected)| ((*id).to_owned(), *connected))
        .collect()
}

#[test]
fn started_killed_and_restarted_as_libvirt_does_with_qemu_connected() {
    assert!(
        reference::qemu_system_available(),
        "{} is missing: scripts/setup.sh installs qemu-system-x86",
        reference::QEMU_SYSTEM
    );
    let dir = tempfile::tempdir().unwrap();
    let vm = VmNamespace::create(&dir.path().join("vm-private"));
    let libvirt = Libvirt {
        program: our_binary(),
        socket: dir.path().join("pr-helper0.sock"),
        pidfile: dir.path().join("pr-helper0.pid"),
        vm_namespace: vm.pid(),
    };
    let mut guard = KillOnDrop(Vec::new());

    let first = libvirt.start_helper();
    guard.0.push(first.pid);
    // Only `-k SOCKET`, and in the VM's mount namespace, not ours.
    assert_eq!(
        command_line(first.pid)[1..],
        ["-k".to_owned(), libvirt.socket.display().to_string()]
    );
    assert_eq!(mount_namespace(first.pid), mount_namespace(vm.pid()));
    assert_ne!(
        mount_namespace(first.pid),
        mount_namespace(std::process::id())
    );

    let mut qemu = QemuProcess::spawn(&[("pr0", &libvirt.socket)], &dir.path().join("qmp.sock"))
        .expect("QEMU starts with a pr-manager-helper on the helper's socket");
    let mut qmp = Qmp::connect(qemu.qmp_socket()).expect("QMP session");
    assert_eq!(qmp.pr_managers(), managers(&[("pr0", true)]));

    // The helper dies (SIGKILL: no clean-up). Its stderr pipe closes, and
    // libvirt has the last lines it wrote for its error report.
    signal(first.pid, Signal::KILL);
    wait_until("the helper dies", || has_exited(first.pid));
    let first_log = first.stderr.join().unwrap();
    assert!(
        first_log.contains("serving"),
        "the helper's stderr (captured by the launcher) has no start-up line: {first_log}"
    );
    // (Its janitor process may already have removed the socket file;
    // libvirt removes a stale one anyway before starting the next.)
    assert!(
        !qemu.has_exited().expect("QEMU status"),
        "QEMU died with the helper"
    );

    // libvirt restarts it: pid file removed, then started as before.
    libvirt.stop_helper();
    let second = libvirt.start_helper();
    guard.0.push(second.pid);
    assert_ne!(second.pid, first.pid);
    assert_eq!(mount_namespace(second.pid), mount_namespace(vm.pid()));

    // A disk with reservations is hot-plugged: a second pr-manager-helper.
    qmp.add_pr_manager("pr1", &libvirt.socket)
        .expect("object-add of a pr-manager-helper on the restarted helper");
    let listed = qmp.pr_managers();
    assert!(
        listed.contains(&("pr1".to_owned(), true)),
        "query-pr-managers after object-add: {listed:?}"
    );

    // The VM stops: libvirt stops the helper, which removes its socket.
    qemu.kill().expect("stop QEMU");
    libvirt.stop_helper();
    assert!(!is_socket(&libvirt.socket), "the helper left its socket");
    let second_log = second.stderr.join().unwrap();
    assert!(
        second_log.contains("SIGTERM"),
        "no shutdown line on the helper's stderr: {second_log}"
    );
    assert!(!libvirt.pidfile.exists());
}

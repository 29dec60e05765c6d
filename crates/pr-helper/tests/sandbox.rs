//! The sandbox of the real binary: in every start-up mode (foreground, `-d`,
//! systemd socket activation, `-u`/`-g`) every thread of the serving daemon
//! runs under the seccomp filter (`Seccomp: 2`) with NO_NEW_PRIVS and the
//! reduced capability sets; and the filter is enforced: a child process that
//! installs the daemon's policy dies with SIGSYS on a forbidden syscall or a
//! forbidden ioctl (default `kill`), gets ENOSYS with a report line (`trap`),
//! or is let through (`log`).
//!
//! Needs root (the privilege drop; the test machine runs as root). Waits are
//! bounded only to turn a hang into a failure.

use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::AsFd;
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pr_helper::sandbox::seccomp;
use pr_helper::sandbox::{FilterPlan, SeccompMode};
use pr_testkit::activation::{ActivationSockets, expect_ready};
use pr_testkit::daemon::Daemon;
use pr_testkit::detached::Detached;
use rustix::process::Signal;

const HANG_LIMIT: Duration = Duration::from_secs(60);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_pr-helper")
}

/// The daemon socket-activated on `listener`, reporting readiness to
/// `notify_socket`.
fn spawn_activated(listener: &UnixListener, notify_socket: &OsStr) -> Child {
    pr_testkit::activation::spawn_activated(
        Path::new(bin()),
        listener.as_fd(),
        "1",
        &[("NOTIFY_SOCKET", notify_socket)],
        &[],
    )
    .expect("spawn through sh")
}

/// SIGTERM to a socket-activated daemon: it must exit 0.
fn stop_activated(child: Child) {
    kill(child.id(), Signal::TERM);
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// A fresh client is served end to end (0B/00/06 for READ KEYS on a regular
/// file, answered without an ioctl).
fn assert_served(socket: &Path) {
    pr_testkit::checks::expect_served_at(socket).expect("served end to end");
}

fn field(status: &str, name: &str) -> String {
    status
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Every thread of `pid`: under the filter, NO_NEW_PRIVS, CAP_SYS_RAWIO
/// only, empty bounding, inheritable and ambient sets, and `uid` if given.
fn assert_confined(pid: u32, uid: Option<&str>) {
    let tasks: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|entry| entry.unwrap().path().join("status"))
        .collect();
    assert!(tasks.len() > 1, "expected runtime threads");
    for task in &tasks {
        let status = std::fs::read_to_string(task).unwrap();
        let at = task.display();
        assert_eq!(field(&status, "Seccomp"), "2", "{at}");
        // One filter more than whoever started us (a container may add its own).
        assert_eq!(
            field(&status, "Seccomp_filters"),
            filters_above_us(1),
            "{at}"
        );
        assert_eq!(field(&status, "NoNewPrivs"), "1", "{at}");
        assert_eq!(field(&status, "CapEff"), "0000000000020000", "{at}");
        assert_eq!(field(&status, "CapPrm"), "0000000000020000", "{at}");
        assert_eq!(field(&status, "CapInh"), "0000000000000000", "{at}");
        assert_eq!(field(&status, "CapAmb"), "0000000000000000", "{at}");
        assert_eq!(field(&status, "CapBnd"), "0000000000000000", "{at}");
        if let Some(uid) = uid {
            assert_eq!(field(&status, "Uid"), uid, "{at}");
        }
    }
}

/// Our own filter count plus `added`.
fn filters_above_us(added: u32) -> String {
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    let count: u32 = field(&ours, "Seccomp_filters").parse().unwrap();
    (count + added).to_string()
}

fn kill(pid: u32, signal: Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(pid).unwrap()).unwrap();
    rustix::process::kill_process(pid, signal).unwrap();
}

#[test]
fn foreground_daemon_is_confined() {
    assert!(is_root(), "needs root (the test machine runs as root)");
    let mut daemon = Daemon::start(Vec::<&str>::new()).expect("daemon starts");
    assert_served(daemon.socket());
    assert_confined(daemon.pid(), Some("0\t0\t0\t0"));
    daemon.signal(Signal::TERM).unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
}

#[test]
fn user_switched_daemon_is_confined() {
    assert!(is_root(), "needs root (the test machine runs as root)");
    let mut daemon = Daemon::start(["-u", "nobody", "-g", "nogroup"]).expect("daemon starts");
    assert_served(daemon.socket());
    assert_confined(daemon.pid(), Some("65534\t65534\t65534\t65534"));
    // The janitor still removes the socket after the switch.
    let socket = daemon.socket().to_owned();
    daemon.signal(Signal::TERM).unwrap();
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status:?}\n{}", daemon.log_text());
    assert!(!socket.exists());
}

#[test]
fn detached_daemon_is_confined() {
    assert!(is_root(), "needs root (the test machine runs as root)");
    let dir = tempfile::tempdir().unwrap();
    let daemon = Detached::start(&mut Command::new(bin()), dir.path());
    assert_served(daemon.socket());
    assert_confined(daemon.pid(), Some("0\t0\t0\t0"));
    daemon.stop();
    assert!(!daemon.socket().exists() && !daemon.pid_file().exists());
}

/// systemd's protocol: the socket on descriptor 3, LISTEN_PID, LISTEN_FDS,
/// readiness on NOTIFY_SOCKET.
#[test]
fn socket_activated_daemon_is_confined_and_notifies_readiness() {
    assert!(is_root(), "needs root (the test machine runs as root)");
    let sockets = ActivationSockets::bind().unwrap();
    let child = spawn_activated(sockets.listener(), sockets.notify_path());
    sockets.expect_ready();
    assert_served(sockets.socket());
    assert_confined(child.id(), Some("0\t0\t0\t0"));
    stop_activated(child);
}

/// Landlock's abstract-socket scope would stop readiness from reaching an
/// abstract NOTIFY_SOCKET (`@name`): the daemon leaves that scope out then.
#[test]
fn readiness_reaches_an_abstract_notify_socket_under_landlock() {
    use std::os::linux::net::SocketAddrExt;
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let name = format!("pr-helper-sandbox-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let notify = UnixDatagram::bind_addr(&address).unwrap();
    notify.set_read_timeout(Some(HANG_LIMIT)).unwrap();
    let child = spawn_activated(&listener, OsStr::new(&format!("@{name}")));
    expect_ready(&notify);
    assert_served(&sock);
    stop_activated(child);
}

#[test]
fn seccomp_none_and_no_landlock_leave_the_daemon_unfiltered() {
    let daemon = Daemon::start(["--seccomp=none", "--no-landlock"]).expect("daemon starts");
    assert_served(daemon.socket());
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    assert_eq!(field(&status, "Seccomp_filters"), filters_above_us(0));
}

// The children: each test below runs this test binary again with only the
// matching `#[ignore]`d function, which installs the daemon's policy in the
// mode named by SANDBOX_CHILD_MODE and then does something forbidden.

const CHILD_MODE: &str = "SANDBOX_CHILD_MODE";

fn child_mode() -> SeccompMode {
    match std::env::var(CHILD_MODE).as_deref() {
        Ok("log") => SeccompMode::Log,
        Ok("trap") => SeccompMode::Trap,
        _ => SeccompMode::Kill,
    }
}

/// Runs the ignored test `name` in a child process with the policy in `mode`.
fn run_child(name: &str, mode: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, mode)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
#[ignore = "run by forbidden_syscalls_are_enforced_in_every_mode, in a child"]
fn child_makes_a_forbidden_syscall() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("made-by-the-child");
    seccomp::install(child_mode(), &FilterPlan::default(), None).unwrap();
    // mkdir is not in the allowlist (the daemon never creates directories).
    let made = std::fs::create_dir(&target);
    println!("CHILD-RESULT {:?}", made.map_err(|e| e.raw_os_error()));
}

#[test]
fn forbidden_syscalls_are_enforced_in_every_mode() {
    let name = "child_makes_a_forbidden_syscall";
    let killed = run_child(name, "kill");
    assert_eq!(
        killed.status.signal(),
        Some(libc::SIGSYS),
        "{}",
        text(&killed)
    );
    assert!(!text(&killed).contains("CHILD-RESULT"), "{}", text(&killed));

    let trapped = run_child(name, "trap");
    let output = text(&trapped);
    assert!(trapped.status.success(), "{output}");
    assert!(
        output.contains(&format!("CHILD-RESULT Err(Some({}))", libc::ENOSYS)),
        "{output}"
    );
    assert!(
        output.contains(&format!(
            "pr-helper: seccomp: blocked syscall {} ",
            libc::SYS_mkdir
        )) || output.contains(&format!(
            "pr-helper: seccomp: blocked syscall {} ",
            libc::SYS_mkdirat
        )),
        "{output}"
    );

    let logged = run_child(name, "log");
    let output = text(&logged);
    assert!(logged.status.success(), "{output}");
    assert!(output.contains("CHILD-RESULT Ok(())"), "{output}");
}

/// The descriptor a peer sends: a socket received over SCM_RIGHTS, as the
/// daemon receives QEMU's.
fn received_descriptor() -> std::os::fd::OwnedFd {
    use rustix::net::{
        RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
        SendAncillaryMessage, SendFlags,
    };
    let (ours, theirs) = UnixStream::pair().unwrap();
    let null = File::open("/dev/null").unwrap();
    let fds = [null.as_fd()];
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(&fds)));
    rustix::net::sendmsg(
        &theirs,
        &[std::io::IoSlice::new(b"x")],
        &mut control,
        SendFlags::empty(),
    )
    .unwrap();
    let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &ours,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .unwrap();
    control
        .drain()
        .find_map(|message| match message {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .expect("a descriptor")
}

#[test]
#[ignore = "run by only_the_allowed_ioctls_reach_a_received_descriptor, in a child"]
fn child_sends_ioctls_to_a_received_descriptor() {
    let fd = received_descriptor();
    seccomp::install(child_mode(), &FilterPlan::default(), None).unwrap();
    // Allowed: FIONREAD reaches the kernel (/dev/null answers it or not,
    // but not with ENOSYS).
    let fionread = rustix::io::ioctl_fionread(&fd).map_err(|e| e.raw_os_error());
    println!("CHILD-FIONREAD {}", fionread != Err(libc::ENOSYS));
    // Not allowed: FIOCLEX (any request but the few the daemon uses).
    let fioclex = rustix::io::ioctl_fioclex(&fd);
    println!("CHILD-FIOCLEX {:?}", fioclex.map_err(|e| e.raw_os_error()));
}

#[test]
fn only_the_allowed_ioctls_reach_a_received_descriptor() {
    let name = "child_sends_ioctls_to_a_received_descriptor";
    let killed = run_child(name, "kill");
    let output = text(&killed);
    assert_eq!(killed.status.signal(), Some(libc::SIGSYS), "{output}");
    assert!(output.contains("CHILD-FIONREAD true"), "{output}");
    assert!(!output.contains("CHILD-FIOCLEX"), "{output}");

    let trapped = run_child(name, "trap");
    let output = text(&trapped);
    assert!(trapped.status.success(), "{output}");
    assert!(
        output.contains(&format!("CHILD-FIOCLEX Err({})", libc::ENOSYS)),
        "{output}"
    );
    // The report names the request (FIOCLEX is 0x5451).
    assert!(output.contains(" arg1 0x5451;"), "{output}");
}

#[test]
#[ignore = "run by a_capability_that_cannot_be_raised_ends_the_process, in a child"]
fn child_cannot_raise_a_capability() {
    use rustix::thread::CapabilitySet;
    // CAP_SYS_ADMIN permitted but not effective, as the daemon keeps it for
    // multipath; then a filter without the multipath part, so capset fails.
    let mut sets = rustix::thread::capabilities(None).unwrap();
    sets.effective.remove(CapabilitySet::SYS_ADMIN);
    rustix::thread::set_capabilities(None, sets).unwrap();
    seccomp::install(SeccompMode::Trap, &FilterPlan::default(), None).unwrap();
    let ran = dm_multipath::sys::with_capability(CapabilitySet::SYS_ADMIN, || true);
    println!("CHILD-RAN {ran}");
}

/// A multipath call whose capability cannot be raised (or lowered again) ends the
/// process with a message, instead of running without it or leaving it effective.
#[test]
fn a_capability_that_cannot_be_raised_ends_the_process() {
    assert!(is_root(), "needs root (the test machine runs as root)");
    let output = run_child("child_cannot_raise_a_capability", "trap");
    let text = text(&output);
    assert_eq!(
        output.status.code(),
        Some(dm_multipath::sys::CAPABILITY_FAILURE_EXIT),
        "{text}"
    );
    assert!(text.contains("cannot raise"), "{text}");
    assert!(!text.contains("CHILD-RAN"), "{text}");
}

//! Differential tests: the same request streams go to Debian's
//! `qemu-pr-helper` (7.2, the reference) and to our `pr-helper`, each on its
//! own temporary socket, with the same descriptors; the reply bytes (status,
//! size, 96 sense bytes, payload) and the moments each helper closes the
//! connection must be identical.
//!
//! The descriptors are the kinds this machine has: regular files, /dev/null,
//! pipes, sockets, a directory, and a loop device (a block device that both
//! helpers send SG_IO to and that fails it), read-write and read-only.
//!
//! Where we differ on purpose, the difference is a row of
//! [`DELIBERATE_DIFFERENCES`]; rows that can be shown on this machine have a
//! test below asserting both sides of the difference.
//!
//! `PR_HELPER_BIN` overrides the binary under test (e.g. a release build).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use pr_testkit::reference::{self, HelperProcess, LoopDevice};
use pr_testkit::{RawClient, cdb, descriptors};
use tempfile::TempDir;

/// One way our daemon deliberately answers differently from Debian's
/// `qemu-pr-helper` 7.2.
pub struct Difference {
    /// What the peer or the device does.
    pub situation: &'static str,
    /// What `qemu-pr-helper` does.
    pub qemu_pr_helper: &'static str,
    /// What `pr-helper` does.
    pub pr_helper: &'static str,
    /// Why.
    pub reason: &'static str,
}

/// Every deliberate difference from `qemu-pr-helper`, one row each.
pub const DELIBERATE_DIFFERENCES: &[Difference] = &[
    Difference {
        situation: "descriptor that is neither a whole block device nor an sg character \
                    device (regular file, /dev/null, pipe, socket, directory)",
        qemu_pr_helper: "issues SG_IO on it; the ioctl fails (ENOTTY) and it answers CHECK \
                         CONDITION, ABORTED COMMAND / I/O PROCESS TERMINATED (0B/00/06)",
        pr_helper: "issues no ioctl at all and answers the same bytes",
        reason: "an ioctl number means different things to different drivers: sending SG_IO \
                 with CAP_SYS_RAWIO to an arbitrary descriptor is a risk with nothing to gain",
    },
    Difference {
        situation: "PR OUT with non-zero CDB bytes 5-6 (PARAMETER LIST LENGTH above 65535)",
        qemu_pr_helper: "reads cdb[7..9] bytes of parameter list, then forwards the CDB \
                         unchanged, so the device is told a length it never gets",
        pr_helper: "reads the same cdb[7..9] bytes (the stream stays in step) and answers \
                    CHECK CONDITION, ILLEGAL REQUEST / INVALID FIELD IN CDB (05/24/00) \
                    without touching the device",
        reason: "protocol lengths stop at 8192; forwarding a CDB that disagrees with the data \
                 sent is a latent bug",
    },
    Difference {
        situation: "PR OUT with non-zero CDB bytes 5-6 on a read-only descriptor",
        qemu_pr_helper: "checks the open mode first: INVALID COMMAND OPERATION CODE (05/20/00)",
        pr_helper: "checks the CDB first: INVALID FIELD IN CDB (05/24/00)",
        reason: "a malformed CDB is refused before anything looks at the descriptor",
    },
    Difference {
        situation: "descriptor of a partition of a block device",
        qemu_pr_helper: "issues SG_IO on it, which reaches the whole LUN",
        pr_helper: "by default answers CHECK CONDITION 0B/00/06 (what a failed SG_IO \
                    gives) without any ioctl; with --allow-partitions it sends the SG_IO and \
                    answers like the reference",
        reason: "a reservation always covers the whole logical unit, and our CAP_SYS_RAWIO \
                 bypasses the kernel's own partition check",
    },
    Difference {
        situation: "descriptor of a device-mapper device that maps only part of the disks \
                    under it (an LVM volume, a dm-linear slice)",
        qemu_pr_helper: "issues SG_IO on it; device-mapper passes it down to the whole LUN",
        pr_helper: "treats it as a partition: CHECK CONDITION 0B/00/06 without any ioctl \
                    unless --allow-partitions is given (a multipath map of whole disks is \
                    served as a whole device); shown with a fake sysfs in sg-io's \
                    device_mapper_is_whole_only_when_it_maps_whole_disks, this kernel has no \
                    device-mapper",
        reason: "the kernel checks that the map covers the whole disk only for callers \
                 without CAP_SYS_RAWIO, which we hold",
    },
    Difference {
        situation: "received descriptor has O_NONBLOCK set",
        qemu_pr_helper: "clears O_NONBLOCK, on the open file description it shares with QEMU",
        pr_helper: "never changes the flags of a received descriptor",
        reason: "the flags belong to the sender's open file",
    },
    Difference {
        situation: "peer connects and never completes the handshake",
        qemu_pr_helper: "waits forever, holding the connection",
        pr_helper: "closes the connection at the handshake deadline (a long option)",
        reason: "a stalled or hostile peer must not pin resources",
    },
    Difference {
        situation: "peer stops in the middle of a request (CDB or parameter list)",
        qemu_pr_helper: "waits forever, holding the connection and any descriptor received",
        pr_helper: "closes the connection at the request deadline and closes the descriptor",
        reason: "same: bounded resources per peer",
    },
    Difference {
        situation: "more connections than the connection cap",
        qemu_pr_helper: "no cap",
        pr_helper: "closes each connection beyond the cap at once, with a log line",
        reason: "bounded memory and descriptors",
    },
    Difference {
        situation: "descriptor table full (accept fails with EMFILE/ENFILE)",
        qemu_pr_helper: "spins at 100% CPU retrying accept",
        pr_helper: "backs off and recovers when peers leave",
        reason: "a full table is transient; a busy loop makes it worse",
    },
    Difference {
        situation: "listen backlog",
        qemu_pr_helper: "1",
        pr_helper: "at least 128",
        reason: "many VMs (re)connect at once after a helper restart",
    },
    Difference {
        situation: "a client connects as soon as the socket file appears (libvirt polls \
                    for it, then starts QEMU)",
        qemu_pr_helper: "binds the path, then listens: in between, a connect is refused",
        pr_helper: "binds and listens under a temporary name beside the path (.NAME.PID.bind, \
                    which ss and /proc/net/unix show), then renames it to the path, which \
                    therefore only ever names a listening socket",
        reason: "a refused connect fails QEMU's start or a hot-plug; shown by the listener's \
                 the_socket_appears_only_once_it_listens",
    },
    Difference {
        situation: "SG_IO timeout",
        qemu_pr_helper: "1 ms (raised to 7 s by the block layer, but used as is on /dev/sg*)",
        pr_helper: "30 s by default, a long option",
        reason: "1 ms times out on slow arrays through sg devices",
    },
    Difference {
        situation: "SG_IO CDB length",
        qemu_pr_helper: "always 16",
        pr_helper: "the opcode's real length (10 for PR IN / PR OUT)",
        reason: "some targets reject a 10-byte command sent as 16 bytes",
    },
    Difference {
        situation: "SG_IO completes with a host status the mapping table does not know \
                    (e.g. DID_ERROR 0x07)",
        qemu_pr_helper: "falls through to GOOD",
        pr_helper: "CHECK CONDITION, ABORTED COMMAND / I_T NEXUS LOSS OCCURRED (0B/29/07)",
        reason: "never report success for a transport failure",
    },
    Difference {
        situation: "PR OUT REGISTER with RESERVATION KEY 0 and a service action key K that \
                    the descriptor's I_T nexus already holds (QEMU's migrate-pr on the \
                    destination when it is the same host: cpr-transfer live update, a local \
                    migration)",
        qemu_pr_helper: "forwards it; the device answers RESERVATION CONFLICT and the \
                         migration fails",
        pr_helper: "after the conflict, checks that exactly this nexus holds K (a REGISTER \
                    of K over itself on the same descriptor, GOOD only from a nexus \
                    registered with K; on a multipath map, READ FULL STATUS matched to each \
                    path's nexus) and then answers GOOD",
        reason: "the state the command asks for already holds; a wrong key or another \
                 nexus's registration still conflicts",
    },
    Difference {
        situation: "descriptors inherited from the parent process",
        qemu_pr_helper: "kept open",
        pr_helper: "closed at start-up",
        reason: "process hygiene: a privileged daemon must not hold unknown descriptors",
    },
    Difference {
        situation: "-u / -g",
        qemu_pr_helper: "keeps CAP_SYS_RAWIO, clears the bounding set; no NO_NEW_PRIVS; fails \
                         to remove its socket and pid file at exit",
        pr_helper: "keeps only CAP_SYS_RAWIO effective (multipath: CAP_SYS_ADMIN and \
                    CAP_DAC_READ_SEARCH permitted only), clears bounding, inheritable and \
                    ambient sets, sets NO_NEW_PRIVS, drops supplementary groups, still removes socket \
                    and pid file at exit",
        reason: "least privilege, clean shutdown",
    },
    Difference {
        situation: "peer credentials",
        qemu_pr_helper: "not checked or logged",
        pr_helper: "logged for every connection; optional uid/gid allowlist (long options)",
        reason: "audit trail and defence in depth",
    },
];

/// What one step of a stream produced.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A complete reply, as its wire bytes.
    Reply(Vec<u8>),
    /// The helper closed the connection instead of replying.
    Closed,
}

/// One step of a request stream: bytes to send, each chunk with its
/// descriptors, then one reply (or the close) to collect.
struct Step<'fd> {
    label: String,
    chunks: Vec<(Vec<u8>, Vec<BorrowedFd<'fd>>)>,
}

impl<'fd> Step<'fd> {
    /// A well-formed request: the CDB with `fd`, then the parameter list.
    fn request(label: impl Into<String>, cdb: [u8; 16], fd: BorrowedFd<'fd>, out: Vec<u8>) -> Self {
        let mut chunks = vec![(cdb.to_vec(), vec![fd])];
        if !out.is_empty() {
            chunks.push((out, Vec::new()));
        }
        Self {
            label: label.into(),
            chunks,
        }
    }

    /// Arbitrary chunks, for malformed and oddly split requests.
    fn raw(label: impl Into<String>, chunks: Vec<(Vec<u8>, Vec<BorrowedFd<'fd>>)>) -> Self {
        Self {
            label: label.into(),
            chunks,
        }
    }
}

/// Everything one helper said to one stream.
#[derive(Debug, PartialEq, Eq)]
struct Transcript {
    features: Outcome,
    replies: Vec<Outcome>,
}

fn our_binary() -> PathBuf {
    std::env::var_os("PR_HELPER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_pr-helper")))
}

/// Both helpers, each on its own socket in one temporary directory.
struct Pair {
    reference: HelperProcess,
    ours: HelperProcess,
    _dir: TempDir,
}

fn start_pair() -> Pair {
    start_pair_with(&[])
}

/// Both helpers; `our_args` go to our daemon only.
fn start_pair_with(our_args: &[&str]) -> Pair {
    assert!(
        reference::qemu_pr_helper_available(),
        "{} is missing: scripts/setup.sh installs qemu-system-common",
        reference::QEMU_PR_HELPER
    );
    let dir = TempDir::new().expect("temporary directory");
    let reference = HelperProcess::spawn_reference(dir.path()).expect("start qemu-pr-helper");
    let ours = HelperProcess::spawn(
        &our_binary(),
        &dir.path().join("pr-helper.sock"),
        &dir.path().join("pr-helper.pid"),
        our_args,
    )
    .expect("start pr-helper");
    Pair {
        reference,
        ours,
        _dir: dir,
    }
}

fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

fn reply_bytes(response: &pr_testkit::WireResponse) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(104 + response.data.len());
    bytes.extend_from_slice(&response.status.to_be_bytes());
    bytes.extend_from_slice(&response.size.to_be_bytes());
    bytes.extend_from_slice(&response.sense);
    bytes.extend_from_slice(&response.data);
    bytes
}

/// Reads one reply, or notes the close. Any other failure (e.g. the
/// 60 s hang guard in `RawClient`) fails the test.
fn collect(client: &mut RawClient, helper: &str, label: &str) -> Outcome {
    match client.read_response() {
        Ok(response) => Outcome::Reply(reply_bytes(&response)),
        Err(error) if is_closed(&error) => Outcome::Closed,
        Err(error) => panic!("{helper}, {label}: reading the reply failed: {error}"),
    }
}

/// Runs `steps` on a fresh connection, one reply per step. With `pipelined`
/// every step is sent before the first reply is read.
fn run_stream(
    helper: &HelperProcess,
    requested_features: u32,
    steps: &[Step<'_>],
    pipelined: bool,
) -> Transcript {
    let name = helper.program().display().to_string();
    let mut client = RawClient::connect(helper.socket()).expect("connect");
    let features = match client.read_features() {
        Ok(word) => Outcome::Reply(word.to_be_bytes().to_vec()),
        Err(error) if is_closed(&error) => Outcome::Closed,
        Err(error) => panic!("{name}: reading the feature word failed: {error}"),
    };
    let mut replies = Vec::new();
    if client.send_features(requested_features).is_err() {
        return Transcript { features, replies };
    }
    let mut sent = 0;
    for step in steps {
        let delivered = step
            .chunks
            .iter()
            .try_for_each(|(bytes, fds)| client.send_with_fds(bytes, fds));
        match delivered {
            Ok(()) => sent += 1,
            Err(error) if is_closed(&error) => {
                replies.push(Outcome::Closed);
                return Transcript { features, replies };
            }
            Err(error) => panic!("{name}, {}: sending failed: {error}", step.label),
        }
        if !pipelined {
            let outcome = collect(&mut client, &name, &step.label);
            let closed = outcome == Outcome::Closed;
            replies.push(outcome);
            if closed {
                return Transcript { features, replies };
            }
        }
    }
    if pipelined {
        for step in steps.iter().take(sent) {
            let outcome = collect(&mut client, &name, &step.label);
            let closed = outcome == Outcome::Closed;
            replies.push(outcome);
            if closed {
                break;
            }
        }
    }
    if steps.is_empty() {
        // Handshake-only streams: the client leaves; the helper must close
        // without sending anything.
        let _ = client.shutdown_write();
        replies.push(match client.expect_closed() {
            Ok(()) => Outcome::Closed,
            Err(error) => panic!("{name}: expected a close after the client left: {error}"),
        });
    }
    Transcript { features, replies }
}

fn hex(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Closed => "connection closed".to_owned(),
        Outcome::Reply(bytes) => {
            // Status, size and the 18 bytes of fixed sense carry all the news.
            let shown: Vec<String> = bytes.iter().take(26).map(|b| format!("{b:02x}")).collect();
            format!("{} ({} bytes)", shown.join(" "), bytes.len())
        }
    }
}

/// Runs the stream against both helpers and asserts identical transcripts,
/// naming the first step that differs.
fn assert_same(
    pair: &Pair,
    context: &str,
    requested: u32,
    steps: &[Step<'_>],
    pipelined: bool,
) -> Transcript {
    let theirs = run_stream(&pair.reference, requested, steps, pipelined);
    let ours = run_stream(&pair.ours, requested, steps, pipelined);
    assert_eq!(
        theirs.features, ours.features,
        "{context}: feature words differ"
    );
    for (index, (a, b)) in theirs.replies.iter().zip(&ours.replies).enumerate() {
        let label = steps.get(index).map_or("after the handshake", |s| &s.label);
        assert_eq!(
            a,
            b,
            "{context}, step {index} ({label}):\n  qemu-pr-helper: {}\n  pr-helper:      {}",
            hex(a),
            hex(b)
        );
    }
    assert_eq!(
        theirs.replies.len(),
        ours.replies.len(),
        "{context}: one helper answered more steps than the other"
    );
    assert!(
        !theirs.replies.is_empty(),
        "{context}: the stream produced nothing to compare"
    );
    theirs
}

/// The descriptors every stream is tried with, by name. The guards keep
/// temporary files and the loop device alive.
struct DescriptorSet {
    named: Vec<(&'static str, OwnedFd)>,
    _guards: (tempfile::NamedTempFile, LoopDevice),
}

fn open(path: &std::path::Path, write: bool) -> OwnedFd {
    OwnedFd::from(
        OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .unwrap_or_else(|error| panic!("open {}: {error}", path.display())),
    )
}

fn descriptor_set() -> DescriptorSet {
    let file = descriptors::regular_file(1 << 20).expect("regular file");
    let loop_device = LoopDevice::attach(16 << 20).expect("loop device (needs root)");
    let (pipe_read, pipe_write) = descriptors::pipe().expect("pipe");
    let (socket, _peer) = descriptors::socket_pair().expect("socket pair");
    let named = vec![
        ("regular file, read-write", open(file.path(), true)),
        ("regular file, read-only", open(file.path(), false)),
        ("/dev/null, read-write", open("/dev/null".as_ref(), true)),
        ("/dev/null, read-only", open("/dev/null".as_ref(), false)),
        ("pipe, read end", pipe_read),
        ("pipe, write end", pipe_write),
        ("unix socket", OwnedFd::from(socket)),
        ("directory", OwnedFd::from(File::open("/").expect("open /"))),
        ("loop device, read-write", open(loop_device.path(), true)),
        ("loop device, read-only", open(loop_device.path(), false)),
    ];
    DescriptorSet {
        named,
        _guards: (file, loop_device),
    }
}

/// A parameter list of `len` bytes: a REGISTER-shaped list (service action
/// key 0x1122334455667788) padded with a recognisable pattern.
fn parameter_list(len: u16) -> Vec<u8> {
    let mut list = cdb::register_params(0x1122_3344_5566_7788);
    list.resize(usize::from(len), 0xA5);
    list
}

#[test]
fn handshake_words_match() {
    let pair = start_pair();
    assert_same(
        &pair,
        "handshake, then a client that requests nothing and leaves",
        0,
        &[],
        false,
    );
}

#[test]
fn pr_in_every_service_action_and_length_on_every_descriptor() {
    let pair = start_pair();
    let set = descriptor_set();
    for (name, fd) in &set.named {
        let mut steps = Vec::new();
        for action in [0x00, 0x01, 0x02, 0x03, 0x1f] {
            for len in [0u16, 8, 4096, 8192] {
                steps.push(Step::request(
                    format!("PR IN action {action:#04x}, allocation {len}"),
                    cdb::pr_in(action, len),
                    fd.as_fd(),
                    Vec::new(),
                ));
            }
        }
        let transcript = assert_same(&pair, &format!("PR IN on {name}"), 0, &steps, false);
        assert_eq!(
            transcript.replies.len(),
            steps.len(),
            "PR IN on {name}: closed early"
        );
        if !name.starts_with("loop") {
            // protocol.md: SG_IO fails with ENOTTY, CHECK CONDITION 0B/00/06.
            for reply in &transcript.replies {
                assert_eq!(
                    reply,
                    &Outcome::Reply(check_condition(0x0B, 0x00, 0x06)),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn pr_out_every_service_action_and_length_on_every_descriptor() {
    let pair = start_pair();
    let set = descriptor_set();
    for (name, fd) in &set.named {
        let mut steps = Vec::new();
        for action in [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x1f] {
            for len in [0u16, 24, 8192] {
                steps.push(Step::request(
                    format!("PR OUT action {action:#04x}, parameter list {len}"),
                    cdb::pr_out(action, len),
                    fd.as_fd(),
                    parameter_list(len),
                ));
            }
        }
        // RESERVE with each scope/type byte, valid or not.
        for scope_type in [0x01, 0x03, 0x05, 0x06, 0x07, 0x08, 0x0f, 0x13, 0xff] {
            let mut reserve = cdb::pr_out(0x01, 24);
            reserve[2] = scope_type;
            steps.push(Step::request(
                format!("PR OUT RESERVE, scope/type {scope_type:#04x}"),
                reserve,
                fd.as_fd(),
                parameter_list(24),
            ));
        }
        let transcript = assert_same(&pair, &format!("PR OUT on {name}"), 0, &steps, false);
        assert_eq!(
            transcript.replies.len(),
            steps.len(),
            "PR OUT on {name}: closed early"
        );
        if name.ends_with("read-only") || name.ends_with("read end") {
            // protocol.md: PR OUT on a read-only descriptor, 05/20/00.
            for reply in &transcript.replies {
                assert_eq!(
                    reply,
                    &Outcome::Reply(check_condition(0x05, 0x20, 0x00)),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn pipelined_and_split_requests_match() {
    let pair = start_pair();
    let set = descriptor_set();
    for (name, fd) in &set.named {
        let fd = fd.as_fd();
        let read_keys = cdb::read_keys(512);
        let register = cdb::register(24);
        let pipelined = vec![
            Step::request("READ KEYS 1", read_keys, fd, Vec::new()),
            Step::request("REGISTER", register, fd, parameter_list(24)),
            Step::request("READ KEYS 2", read_keys, fd, Vec::new()),
            Step::request("REPORT CAPABILITIES", cdb::pr_in(0x02, 8), fd, Vec::new()),
        ];
        assert_same(&pair, &format!("pipelined on {name}"), 0, &pipelined, true);

        let split = vec![
            Step::raw(
                "CDB in two halves, descriptor with the second",
                vec![
                    (read_keys[..8].to_vec(), Vec::new()),
                    (read_keys[8..].to_vec(), vec![fd]),
                ],
            ),
            Step::raw(
                "CDB byte by byte, descriptor with the first",
                read_keys
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (vec![*b], if i == 0 { vec![fd] } else { Vec::new() }))
                    .collect(),
            ),
            Step::raw(
                "PR OUT, CDB and parameter list in one write",
                vec![(
                    [register.as_slice(), &parameter_list(24)].concat(),
                    vec![fd],
                )],
            ),
            Step::raw(
                "PR OUT, parameter list in three pieces",
                vec![
                    (register.to_vec(), vec![fd]),
                    (parameter_list(24)[..5].to_vec(), Vec::new()),
                    (parameter_list(24)[5..20].to_vec(), Vec::new()),
                    (parameter_list(24)[20..].to_vec(), Vec::new()),
                ],
            ),
        ];
        assert_same(&pair, &format!("split writes on {name}"), 0, &split, false);
    }
}

#[test]
fn protocol_violations_close_the_connection_in_both() {
    let pair = start_pair();
    let file = descriptors::regular_file(4096).expect("regular file");
    let fd = file.as_file().as_fd();
    let other = descriptors::dev_null().expect("/dev/null");
    let with_opcode = |opcode: u8| {
        let mut bytes = cdb::read_keys(8);
        bytes[0] = opcode;
        bytes
    };
    let violations: Vec<(&str, Step<'_>)> = vec![
        (
            "TEST UNIT READY",
            Step::request("opcode 0x00", with_opcode(0x00), fd, Vec::new()),
        ),
        (
            "INQUIRY",
            Step::request("opcode 0x12", with_opcode(0x12), fd, Vec::new()),
        ),
        (
            "MAINTENANCE IN",
            Step::request("opcode 0xa3", with_opcode(0xA3), fd, Vec::new()),
        ),
        (
            "PR IN 8193",
            Step::request("allocation 8193", cdb::pr_in(0, 8193), fd, Vec::new()),
        ),
        (
            "PR IN 65535",
            Step::request("allocation 65535", cdb::pr_in(0, 65535), fd, Vec::new()),
        ),
        (
            "PR OUT 8193",
            Step::request("parameter list 8193", cdb::pr_out(0, 8193), fd, Vec::new()),
        ),
        (
            "PR OUT 65535",
            Step::request(
                "parameter list 65535",
                cdb::pr_out(0, 65535),
                fd,
                Vec::new(),
            ),
        ),
        (
            "no descriptor",
            Step::raw(
                "READ KEYS without a descriptor",
                vec![(cdb::read_keys(8).to_vec(), Vec::new())],
            ),
        ),
        (
            "two descriptors",
            Step::raw(
                "READ KEYS with two descriptors",
                vec![(cdb::read_keys(8).to_vec(), vec![fd, other.as_fd()])],
            ),
        ),
        (
            "a descriptor on each half",
            Step::raw(
                "READ KEYS, one descriptor per half",
                vec![
                    (cdb::read_keys(8)[..8].to_vec(), vec![fd]),
                    (cdb::read_keys(8)[8..].to_vec(), vec![other.as_fd()]),
                ],
            ),
        ),
    ];
    for (name, violation) in violations {
        // A good request first: the violation must not change earlier replies.
        let steps = [
            Step::request(
                "READ KEYS before the violation",
                cdb::read_keys(8),
                fd,
                Vec::new(),
            ),
            violation,
        ];
        let transcript = assert_same(&pair, name, 0, &steps, false);
        assert_eq!(
            transcript.replies.last(),
            Some(&Outcome::Closed),
            "{name}: the reference did not close the connection"
        );
        assert!(matches!(
            transcript.replies.first(),
            Some(Outcome::Reply(_))
        ));
    }
    // Unknown requested feature bits: the helper closes after the handshake.
    let steps = [Step::request(
        "READ KEYS after asking for feature bit 31",
        cdb::read_keys(8),
        fd,
        Vec::new(),
    )];
    let transcript = assert_same(&pair, "unknown feature bit", 0x8000_0000, &steps, false);
    assert_eq!(transcript.replies, vec![Outcome::Closed]);
}

/// Fixed-format sense as the helpers synthesise it.
fn check_condition(key: u8, asc: u8, ascq: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; 104];
    bytes[3] = 2;
    bytes[8] = 0x70;
    bytes[8 + 2] = key;
    bytes[8 + 7] = 10;
    bytes[8 + 12] = asc;
    bytes[8 + 13] = ascq;
    bytes
}

/// Row "PR OUT with non-zero CDB bytes 5-6": the reference forwards the CDB
/// (its SG_IO on a regular file fails: 0B/00/06); we refuse it (05/24/00);
/// both consume the same parameter bytes, so the next request agrees again.
#[test]
fn cdb_bytes_5_and_6_are_refused_without_touching_the_device() {
    let pair = start_pair();
    let file = descriptors::regular_file(4096).expect("regular file");
    let fd = file.as_file().as_fd();
    for byte in [5usize, 6] {
        let mut register = cdb::register(24);
        register[byte] = 0x01;
        let steps = [
            Step::request(
                format!("REGISTER with cdb[{byte}] = 1"),
                register,
                fd,
                parameter_list(24),
            ),
            Step::request("READ KEYS afterwards", cdb::read_keys(8), fd, Vec::new()),
        ];
        let theirs = run_stream(&pair.reference, 0, &steps, false);
        let ours = run_stream(&pair.ours, 0, &steps, false);
        assert_eq!(
            theirs.replies.first(),
            Some(&Outcome::Reply(check_condition(0x0B, 0x00, 0x06))),
            "qemu-pr-helper forwards the CDB; SG_IO on a regular file fails"
        );
        assert_eq!(
            ours.replies.first(),
            Some(&Outcome::Reply(check_condition(0x05, 0x24, 0x00))),
            "pr-helper refuses the CDB: INVALID FIELD IN CDB"
        );
        assert_eq!(
            theirs.replies.get(1),
            ours.replies.get(1),
            "the streams stay in step"
        );
        assert_eq!(ours.replies.len(), 2, "the connection stays open");
    }
}

/// Row "received descriptor has O_NONBLOCK set": the flags live in the open
/// file description we share with the helper, so we can watch them.
#[test]
fn received_descriptor_flags_are_left_alone() {
    use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
    let pair = start_pair();
    for (helper, expect_cleared) in [(&pair.reference, true), (&pair.ours, false)] {
        let (_read_end, write_end) = descriptors::pipe().expect("pipe");
        let flags = fcntl_getfl(&write_end).expect("F_GETFL");
        fcntl_setfl(&write_end, flags | OFlags::NONBLOCK).expect("F_SETFL");
        let steps = [Step::request(
            "READ KEYS",
            cdb::read_keys(8),
            write_end.as_fd(),
            Vec::new(),
        )];
        let transcript = run_stream(helper, 0, &steps, false);
        assert!(
            matches!(transcript.replies.first(), Some(Outcome::Reply(_))),
            "{}: no reply",
            helper.program().display()
        );
        let after = fcntl_getfl(&write_end).expect("F_GETFL");
        assert_eq!(
            !after.contains(OFlags::NONBLOCK),
            expect_cleared,
            "{}: O_NONBLOCK after the request: {after:?}",
            helper.program().display()
        );
    }
}

/// The table is the single source for the README: every row says something.
#[test]
fn deliberate_differences_table_is_complete() {
    for row in DELIBERATE_DIFFERENCES {
        for (column, text) in [
            ("situation", row.situation),
            ("qemu_pr_helper", row.qemu_pr_helper),
            ("pr_helper", row.pr_helper),
            ("reason", row.reason),
        ] {
            assert!(
                !text.trim().is_empty(),
                "{column} empty in row {:?}",
                row.situation
            );
        }
        assert_ne!(
            row.qemu_pr_helper, row.pr_helper,
            "row {:?} shows no difference",
            row.situation
        );
    }
}

/// The README's table of deliberate differences and [`DELIBERATE_DIFFERENCES`]
/// say the same: every row of the table is a row of the constant, word for
/// word (whitespace aside), and the other way round, in the same order.
#[test]
fn readme_table_is_the_deliberate_differences() {
    let readme_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let readme = std::fs::read_to_string(readme_path).expect("read the workspace README");
    let table = readme_difference_rows(&readme);
    let constant: Vec<[String; 4]> = DELIBERATE_DIFFERENCES
        .iter()
        .map(|row| {
            [row.situation, row.qemu_pr_helper, row.pr_helper, row.reason].map(normalise_cell)
        })
        .collect();
    let missing_from_readme: Vec<&String> = constant
        .iter()
        .filter(|row| !table.contains(row))
        .map(|row| &row[0])
        .collect();
    let missing_from_constant: Vec<&String> = table
        .iter()
        .filter(|row| !constant.contains(row))
        .map(|row| &row[0])
        .collect();
    assert!(
        missing_from_readme.is_empty() && missing_from_constant.is_empty(),
        "README.md and DELIBERATE_DIFFERENCES disagree.\n\
         rows of the constant not in the README (or worded differently): {missing_from_readme:#?}\n\
         rows of the README not in the constant (or worded differently): {missing_from_constant:#?}"
    );
    assert_eq!(table, constant, "same rows, but not in the same order");
}

/// The body rows of the first table under the README's "Deliberate
/// differences" heading, cells trimmed and whitespace-normalised.
fn readme_difference_rows(readme: &str) -> Vec<[String; 4]> {
    let heading = "## Deliberate differences from qemu-pr-helper";
    let section = readme
        .split_once(heading)
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("README.md has no {heading:?} section"));
    // The section ends at the next heading of the same level.
    let section = section.split("\n## ").next().unwrap_or(section);
    let mut lines = section
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    let header = lines.next().expect("the section has a table");
    assert_eq!(
        table_cells(header),
        ["situation", "qemu-pr-helper", "pr-helper", "why"],
        "the table's columns changed"
    );
    let separator = lines.next().expect("the table has a separator line");
    assert!(
        separator
            .chars()
            .all(|c| matches!(c, '|' | '-' | ':' | ' ')),
        "{separator:?}"
    );
    lines
        .map(|line| {
            let cells = table_cells(line);
            let count = cells.len();
            <[String; 4]>::try_from(cells)
                .unwrap_or_else(|_| panic!("README row with {count} cells, not 4: {line}"))
        })
        .collect()
}

/// The cells of one Markdown table line (`| a | b |`). No cell of this
/// table contains a `|`.
fn table_cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    inner.split('|').map(normalise_cell).collect()
}

/// Trimmed, every run of whitespace one space.
fn normalise_cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Row "descriptor of a partition": by default we answer without an ioctl
/// (CHECK CONDITION 0B/00/06, what a failed SG_IO gives); with
/// `--allow-partitions` the SG_IO goes out and the replies are the
/// reference's again.
#[test]
fn partitions_are_refused_by_default_and_served_when_allowed() {
    let device = LoopDevice::attach_partitioned(16 << 20).expect("partitioned loop device");
    let partition = open(&device.partition(), true);
    let fd = partition.as_fd();
    let steps = [
        Step::request("READ KEYS", cdb::read_keys(8), fd, Vec::new()),
        Step::request("REGISTER", cdb::register(24), fd, parameter_list(24)),
    ];

    let pair = start_pair();
    let theirs = run_stream(&pair.reference, 0, &steps, false);
    let ours = run_stream(&pair.ours, 0, &steps, false);
    // The loop driver refuses SG_IO with EINVAL, on the partition too.
    let refused_by_loop = Outcome::Reply(check_condition(0x05, 0x24, 0x00));
    assert_eq!(
        theirs.replies,
        vec![refused_by_loop.clone(), refused_by_loop]
    );
    let refused_by_us = Outcome::Reply(check_condition(0x0B, 0x00, 0x06));
    assert_eq!(ours.replies, vec![refused_by_us.clone(), refused_by_us]);

    let allowing = start_pair_with(&["--allow-partitions"]);
    assert_same(
        &allowing,
        "partition with --allow-partitions",
        0,
        &steps,
        false,
    );
}

/// Which check comes first when a PR OUT is wrong twice: read-only
/// descriptor and non-zero CDB bytes 5-6. The reference checks the open
/// mode first (05/20/00); we check the CDB first (05/24/00).
#[test]
fn cdb_bytes_5_and_6_on_a_read_only_descriptor() {
    let pair = start_pair();
    let (read_only, _backing) = descriptors::read_only_file().expect("read-only file");
    let mut register = cdb::register(24);
    register[5] = 0x01;
    let steps = [Step::request(
        "REGISTER with cdb[5] = 1, read-only",
        register,
        read_only.as_fd(),
        parameter_list(24),
    )];
    let theirs = run_stream(&pair.reference, 0, &steps, false);
    let ours = run_stream(&pair.ours, 0, &steps, false);
    assert_eq!(
        theirs.replies,
        vec![Outcome::Reply(check_condition(0x05, 0x20, 0x00))]
    );
    assert_eq!(
        ours.replies,
        vec![Outcome::Reply(check_condition(0x05, 0x24, 0x00))]
    );
}

/// PR IN with non-zero CDB bytes 5-6 (reserved there): both forward or
/// refuse alike.
#[test]
fn pr_in_with_bytes_5_and_6_set_matches() {
    let pair = start_pair();
    let set = descriptor_set();
    for (name, fd) in &set.named {
        let steps: Vec<Step<'_>> = [5usize, 6]
            .into_iter()
            .map(|byte| {
                let mut read_keys = cdb::read_keys(8);
                read_keys[byte] = 0x01;
                Step::request(
                    format!("READ KEYS with cdb[{byte}] = 1"),
                    read_keys,
                    fd.as_fd(),
                    Vec::new(),
                )
            })
            .collect();
        assert_same(
            &pair,
            &format!("PR IN bytes 5-6 on {name}"),
            0,
            &steps,
            false,
        );
    }
}

/// True while `client`'s peer keeps the connection open and silent: a
/// non-blocking read finds nothing to read and no end of stream.
fn still_open_and_silent(client: &RawClient) -> bool {
    use std::io::Read;
    let mut stream = client.stream();
    stream.set_nonblocking(true).expect("set_nonblocking");
    let mut byte = [0u8; 1];
    let open =
        matches!(stream.read(&mut byte), Err(error) if error.kind() == io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).expect("set_nonblocking");
    open
}

/// Rows "never completes the handshake" and "stops in the middle of a
/// request": our deadlines close such connections, the reference keeps
/// them. Ordering only: we wait for our close, then look at the reference.
#[test]
fn stalled_peers_are_dropped_by_us_and_kept_by_the_reference() {
    let pair = start_pair_with(&["--handshake-timeout", "1", "--request-timeout", "1"]);
    let file = descriptors::regular_file(4096).expect("regular file");
    let fd = file.as_file().as_fd();
    let read_keys = cdb::read_keys(8);

    // Handshake stall: read the helper's word, never answer.
    let mut ours = RawClient::connect(pair.ours.socket()).expect("connect");
    let mut theirs = RawClient::connect(pair.reference.socket()).expect("connect");
    ours.read_features().expect("our feature word");
    theirs.read_features().expect("reference feature word");
    ours.expect_closed().expect("we close a stalled handshake");
    assert!(
        still_open_and_silent(&theirs),
        "the reference keeps waiting"
    );
    theirs.send_features(0).expect("finish the handshake late");
    let late = theirs
        .call(&read_keys, fd, &[])
        .expect("served after a late handshake");
    assert!(late.is_check_condition(0x0B, 0x00, 0x06));

    // Request stall: half a CDB with its descriptor, then nothing.
    let mut ours = RawClient::connect(pair.ours.socket()).expect("connect");
    let mut theirs = RawClient::connect(pair.reference.socket()).expect("connect");
    for client in [&mut ours, &mut theirs] {
        client.handshake().expect("handshake");
        client
            .send_with_fds(&read_keys[..8], &[fd])
            .expect("half a CDB");
    }
    ours.expect_closed().expect("we close a stalled request");
    assert!(
        still_open_and_silent(&theirs),
        "the reference keeps waiting"
    );
    theirs.send(&read_keys[8..]).expect("rest of the CDB");
    let late = theirs.read_response().expect("served after the stall");
    assert!(late.is_check_condition(0x0B, 0x00, 0x06));
}

/// A negotiated connection. The start-up probe of [`HelperProcess`] may
/// still count against the cap for a moment, so a refused attempt is
/// retried (a bounded number of times).
fn connect_within_cap(helper: &HelperProcess) -> RawClient {
    for _ in 0..500 {
        let mut client = RawClient::connect(helper.socket()).expect("connect");
        if client.handshake().is_ok() && still_open_and_silent(&client) {
            return client;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!(
        "{}: no connection within the cap",
        helper.program().display()
    );
}

/// Row "more connections than the connection cap".
#[test]
fn connections_beyond_the_cap_are_closed_by_us_only() {
    let pair = start_pair_with(&["--max-connections", "2"]);
    let file = descriptors::regular_file(4096).expect("regular file");
    let fd = file.as_file().as_fd();
    let read_keys = cdb::read_keys(8);
    let mut held = Vec::new();
    for helper in [&pair.ours, &pair.reference] {
        for _ in 0..2 {
            held.push(connect_within_cap(helper));
        }
    }
    // The third connection: closed at once by us (perhaps after the
    // feature word), served by the reference.
    let mut ours = RawClient::connect(pair.ours.socket()).expect("connect");
    match ours.read_features() {
        Ok(_) => ours.expect_closed().expect("closed beyond the cap"),
        Err(error) => assert!(is_closed(&error), "{error}"),
    }
    let mut theirs = RawClient::connect(pair.reference.socket()).expect("connect");
    theirs.handshake().expect("reference handshake");
    let reply = theirs
        .call(&read_keys, fd, &[])
        .expect("reference serves it");
    assert!(reply.is_check_condition(0x0B, 0x00, 0x06));
    // Within the cap, ours still serves.
    let first = held.first_mut().expect("held connection");
    let reply = first
        .call(&read_keys, fd, &[])
        .expect("served within the cap");
    assert!(reply.is_check_condition(0x0B, 0x00, 0x06));
}

/// The backlog of the listening socket at `path`, as `ss` reports it
/// (Send-Q of a LISTEN socket).
fn listen_backlog(path: &std::path::Path) -> Option<u32> {
    let output = std::process::Command::new("ss")
        .args(["-x", "-l", "-n", "-H"])
        .output()
        .expect("run ss (package iproute2)");
    let wanted = path.to_str()?;
    // Ours is bound under a staging name beside the path and then renamed
    // (row "a client connects as soon as the socket file appears").
    let staging_prefix = format!(
        "{}/.{}.",
        path.parent()?.to_str()?,
        path.file_name()?.to_str()?
    );
    let names_the_path = |name: &str| {
        name == wanted || (name.starts_with(&staging_prefix) && name.ends_with(".bind"))
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|fields| fields.get(4).is_some_and(|name| names_the_path(name)))
        .and_then(|fields| fields.get(3)?.parse().ok())
}

/// Row "listen backlog".
#[test]
fn listen_backlog_is_at_least_128_where_the_reference_has_1() {
    let pair = start_pair();
    assert_eq!(listen_backlog(pair.reference.socket()), Some(1));
    let ours = listen_backlog(pair.ours.socket());
    assert!(
        ours.is_some_and(|backlog| backlog >= 128),
        "our backlog: {ours:?}"
    );
}

/// Row "descriptors inherited from the parent process": a pipe without
/// close-on-exec is inherited by both helpers; only the reference keeps it.
#[test]
fn inherited_descriptors_are_closed_by_us_and_kept_by_the_reference() {
    // No PipeFlags::CLOEXEC: the helpers started below inherit both ends.
    let (read_end, _write_end) = rustix::pipe::pipe().expect("pipe");
    let inode = rustix::fs::fstat(&read_end).expect("fstat").st_ino;
    let pair = start_pair();
    let target = format!("pipe:[{inode}]");
    let holds = |helper: &HelperProcess| {
        let pid = helper.pid().expect("running");
        pr_testkit::proc::fd_targets(pid)
            .expect("read /proc/PID/fd")
            .iter()
            .any(|entry| entry.ends_with(&target))
    };
    assert!(holds(&pair.reference), "qemu-pr-helper keeps {target}");
    assert!(!holds(&pair.ours), "pr-helper closed {target} at start-up");
}

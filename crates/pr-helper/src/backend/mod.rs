//! Backends that execute requests.
//!
//! A command goes through [`Backends::plan`], then, if it needs blocking work,
//! [`Backends::run`]: planning applies the checks that need no device (the CDB bytes
//! 5-6 rule, PR OUT on a read-only descriptor), classifies the descriptor and picks the
//! backend for that kind of file:
//!
//! | descriptor | answer |
//! |---|---|
//! | whole block device, sg character device | `SG_IO` ([`sgio`]) |
//! | partition | refused with 0B/00/06 unless partitions are allowed (see below) |
//! | device-mapper device mapping part of a device (LVM volume) | as a partition |
//! | regular file | the emulated target when configured, else 0B/00/06 |
//! | anything else (pipe, socket, /dev/null, ...) | 0B/00/06, no ioctl |
//!
//! 0B/00/06 (ABORTED COMMAND, I/O PROCESS TERMINATED) is what QEMU's helper answers when
//! its `SG_IO` fails with ENOTTY; we give the same reply without issuing the ioctl. A
//! partition gets it too: an unprivileged caller's `SG_IO` on a partition fails that way
//! in the kernel, and our CAP_SYS_RAWIO would otherwise bypass that check and reserve
//! the whole LUN (a deliberate difference from QEMU's helper, which sends the ioctl).
//! A device-mapper device that maps only part of what is under it passes SG_IO down
//! the same way, and the kernel checks that only for callers without CAP_SYS_RAWIO.
//!
//! [`Backends::plan`] does what cannot block (one `fstat`, a sysfs lookup unless the device
//! was classified within the last second, `F_GETFL` for PR OUT) and
//! answers at once whenever no ioctl or file I/O is needed; [`Backends::run`] does the
//! blocking rest, which the serving code runs on the connection's own thread or in its
//! bounded pool.

pub mod emulated;
pub mod multipath;
pub mod sgio;
#[cfg(feature = "test-hooks")]
mod test_latency;

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use pr_protocol::{Direction, Request, Response};
use scsi::sense::Sense;
use sg_io::DescriptorKind;

use crate::serve::ServeSettings;

/// The process on the other end of a connection, from SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Process id at the time the peer connected; 0 when that process is not visible
    /// in the daemon's pid namespace.
    pub pid: i32,
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
}

/// Why the backends could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The emulated target's state directory could not be opened.
    #[error("cannot open the emulated target's state directory {path}")]
    EmulatedState {
        /// The configured directory.
        path: std::path::PathBuf,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// What kind of descriptor a command was executed on, for the per-command log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptorLabel {
    /// Classified.
    Kind(DescriptorKind),
    /// Not looked at: the command was refused from its CDB alone.
    NotExamined,
    /// `fstat` or the sysfs lookup failed.
    Unclassifiable,
}

impl fmt::Display for DescriptorLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorLabel::Kind(kind) => kind.fmt(f),
            DescriptorLabel::NotExamined => f.write_str("not examined"),
            DescriptorLabel::Unclassifiable => f.write_str("unclassifiable"),
        }
    }
}

/// What a command needs, decided without blocking by [`Backends::plan`].
#[derive(Debug)]
pub enum Plan {
    /// Answered already (refused, or a descriptor that gets no ioctl).
    Answered(Execution),
    /// Needs a blocking call: run it with [`Backends::run`] off the I/O threads.
    Blocking(Job),
}

impl Plan {
    fn refused(sense: Sense, descriptor: DescriptorLabel) -> Self {
        Plan::Answered(refused(sense, descriptor))
    }
}

/// The blocking part of a command.
#[derive(Debug)]
pub struct Job {
    work: Work,
    /// The kind of descriptor it goes to.
    pub descriptor: DescriptorLabel,
    /// Which file the descriptor refers to, when it was looked at.
    pub file: Option<sg_io::FileIdentity>,
}

#[derive(Debug)]
enum Work {
    /// One SG_IO ioctl.
    SgIo,
    /// A dm-multipath map: the multipath backend.
    Multipath,
    /// The emulated target (file I/O, fsync of its state).
    Emulated,
    /// An answer already known, delayed by the test latency hook.
    #[cfg(feature = "test-hooks")]
    Ready(Response),
}

/// The answer to one command, with what the log line needs to know about it.
#[derive(Debug)]
pub struct Execution {
    /// The response to write to the peer.
    pub response: Response,
    /// The kind of descriptor the command went to.
    pub descriptor: DescriptorLabel,
}

/// The set of backends a daemon serves with, chosen per descriptor.
#[derive(Debug)]
pub struct Backends {
    sgio_timeout: Duration,
    allow_partitions: bool,
    /// Device classifications, so a busy device is not looked up in sysfs per command.
    classifications: sg_io::ClassifyCache,
    emulated: Option<emulated::EmulatedBackend>,
    multipath: Option<multipath::MultipathBackend>,
    #[cfg(feature = "test-hooks")]
    injected_latency: Option<Duration>,
}

impl Backends {
    /// Prepares the backends the settings ask for.
    pub fn new(settings: &ServeSettings) -> Result<Self, BackendError> {
        let emulated = settings
            .emulated_state_dir
            .as_deref()
            .map(|dir| {
                emulated::EmulatedBackend::open(dir, settings.emulated_initiator).map_err(|e| {
                    BackendError::EmulatedState {
                        path: dir.to_path_buf(),
                        source: Box::new(e),
                    }
                })
            })
            .transpose()?;
        Ok(Self {
            sgio_timeout: settings.sgio_timeout,
            allow_partitions: settings.allow_partitions,
            classifications: sg_io::ClassifyCache::default(),
            emulated,
            multipath: settings.multipath.then(|| {
                multipath::MultipathBackend::new(&multipath::MultipathSettings {
                    sgio_timeout: settings.sgio_timeout,
                })
            }),
            #[cfg(feature = "test-hooks")]
            injected_latency: test_latency::configured(),
        })
    }

    /// Delays every command by `latency` (tests only: keeps commands in flight).
    #[cfg(feature = "test-hooks")]
    pub fn with_injected_latency(mut self, latency: Duration) -> Self {
        self.injected_latency = Some(latency);
        self
    }

    /// Everything that cannot block: the CDB rule, classification, the access mode.
    /// Either answers at once or says which blocking call the command needs; the
    /// serving code runs the latter with [`run`](Self::run) in its bounded pool.
    pub fn plan(&self, request: &Request<OwnedFd>, peer: &PeerInfo) -> Plan {
        let plan = self.plan_without_hooks(request, peer);
        #[cfg(feature = "test-hooks")]
        if self.injected_latency.is_some() {
            // Tests keep commands in flight: every command then goes through the pool.
            return match plan {
                Plan::Answered(Execution {
                    response,
                    descriptor,
                }) => Plan::Blocking(Job {
                    work: Work::Ready(response),
                    descriptor,
                    file: None,
                }),
                blocking => blocking,
            };
        }
        plan
    }

    fn plan_without_hooks(&self, request: &Request<OwnedFd>, peer: &PeerInfo) -> Plan {
        // PR OUT's parameter list length is cdb[5..9], but the protocol carries only
        // cdb[7..9] bytes: a device told more than we sent must never see the command.
        if request.cdb_check().is_err() {
            return Plan::refused(Sense::INVALID_FIELD, DescriptorLabel::NotExamined);
        }
        let fd = request.fd.as_fd();
        let (kind, file) = match self.classifications.classify_file(fd) {
            Ok(classified) => (classified.kind, classified.identity),
            Err(error) => {
                tracing::warn!(peer = %peer, error = %error_chain(&error), "cannot classify descriptor");
                return Plan::refused(Sense::IO_ERROR, DescriptorLabel::Unclassifiable);
            }
        };
        let descriptor = DescriptorLabel::Kind(kind);
        if request.direction() == Direction::Out && !may_write(fd) {
            return Plan::refused(Sense::INVALID_OPCODE, descriptor);
        }
        let work = match kind {
            DescriptorKind::WholeBlockDevice
                if self.multipath.as_ref().is_some_and(|m| m.serves(&file)) =>
            {
                Work::Multipath
            }
            DescriptorKind::WholeBlockDevice | DescriptorKind::SgCharDevice => Work::SgIo,
            // Both reach the whole LUN below them (see the module docs).
            DescriptorKind::Partition | DescriptorKind::PartialDeviceMapper
                if self.allow_partitions =>
            {
                Work::SgIo
            }
            DescriptorKind::RegularFile if self.emulated.is_some() => Work::Emulated,
            DescriptorKind::RegularFile
            | DescriptorKind::Partition
            | DescriptorKind::PartialDeviceMapper
            | DescriptorKind::Other(_) => {
                return Plan::refused(Sense::IO_ERROR, descriptor);
            }
        };
        Plan::Blocking(Job {
            work,
            descriptor,
            file: Some(file),
        })
    }

    /// Runs the blocking part [`plan`](Self::plan) asked for. Blocks (ioctl, file I/O).
    pub fn run(&self, job: Job, request: &Request<OwnedFd>, peer: &PeerInfo) -> Response {
        #[cfg(feature = "test-hooks")]
        if let Some(latency) = self.injected_latency {
            std::thread::sleep(latency);
        }
        let fd = request.fd.as_fd();
        match job.work {
            Work::SgIo => sgio::execute(fd, request, self.sgio_timeout),
            Work::Multipath => match (&self.multipath, &job.file) {
                (Some(multipath), Some(file)) => {
                    multipath.execute_on(file, &request.cdb, &request.data_out)
                }
                _ => check_condition(Sense::IO_ERROR),
            },
            Work::Emulated => self.regular_file(fd, request, peer),
            #[cfg(feature = "test-hooks")]
            Work::Ready(response) => response,
        }
    }

    fn regular_file(
        &self,
        fd: BorrowedFd<'_>,
        request: &Request<OwnedFd>,
        peer: &PeerInfo,
    ) -> Response {
        match &self.emulated {
            Some(emulated) => emulated.execute(fd, &request.cdb, &request.data_out, peer),
            None => check_condition(Sense::IO_ERROR),
        }
    }
}

/// Whether PR OUT may be sent through `fd`: its open file description allows writes.
/// A descriptor whose flags cannot be read is treated as read-only.
fn may_write(fd: BorrowedFd<'_>) -> bool {
    sg_io::access_mode(fd).is_ok_and(|mode| mode.can_write())
}

fn refused(sense: Sense, descriptor: DescriptorLabel) -> Execution {
    Execution {
        response: check_condition(sense),
        descriptor,
    }
}

/// A CHECK CONDITION response carrying `sense` in fixed format, no payload.
pub(crate) fn check_condition(sense: Sense) -> Response {
    Response::check_condition(&sense.fixed_bytes())
}

/// An error and its sources on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

//! Remembering classifications, so that a busy device costs one `statx` per
//! command instead of a `statx` plus sysfs path walks.
//!
//! Whole disk versus partition is fixed for as long as a device exists, but a
//! device number can be reused once the device is gone (dynamic majors such as
//! 259 serve whole NVMe namespaces and partitions alike). An entry is therefore
//! keyed by the device node too (`st_dev`, `st_ino`: devtmpfs gives a re-created
//! node a new inode) and is trusted for at most [`ClassifyCache::ttl`], which
//! bounds how long a reused number on an old, persistent node could be
//! misread. Only devices are cached: other files need no sysfs lookup.

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::classify::{ClassifyError, DescriptorKind, Node, classify_node, needs_sysfs};

/// How long a cached classification is trusted by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// Most devices remembered at once; the cache starts over when full.
const MAX_ENTRIES: usize = 256;

/// The identity of a file as `statx` reports it: node, device number and type.
/// Two descriptors with equal keys refer to the same file, so a classification
/// made for one holds for the other (within the cache's TTL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NodeKey {
    dev: u64,
    ino: u64,
    rdev: u64,
    mode: u32,
}

impl NodeKey {
    fn of(node: &Node) -> Self {
        Self {
            dev: node.dev,
            ino: node.ino,
            rdev: node.rdev,
            mode: node.mode,
        }
    }

    /// Whether the file is a device node (block or character): closing a
    /// descriptor of one runs the driver's release, never a file system's
    /// flush (which, on FUSE or NFS, waits for a server).
    pub fn is_device_node(&self) -> bool {
        matches!(
            rustix::fs::FileType::from_raw_mode(self.mode),
            rustix::fs::FileType::BlockDevice | rustix::fs::FileType::CharacterDevice
        )
    }

    /// Which file this is.
    pub fn identity(&self) -> FileIdentity {
        FileIdentity {
            dev: self.dev,
            ino: self.ino,
            rdev: self.rdev,
        }
    }
}

/// What one `statx` of a descriptor said (see `Node::of`: it never waits on a
/// file system's server): enough to classify it, and to tell whether another
/// descriptor refers to the same file.
#[derive(Debug, Clone, Copy)]
pub struct Examined {
    node: Node,
}

impl Examined {
    /// The `statx` of `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> Result<Self, ClassifyError> {
        Ok(Self {
            node: Node::of(fd)?,
        })
    }

    /// The file's identity and type, to compare with another descriptor's.
    pub fn key(&self) -> NodeKey {
        NodeKey::of(&self.node)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: DescriptorKind,
    checked: Instant,
}

/// Which file a descriptor refers to, as `statx` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Filesystem of the file (or of the device node).
    pub dev: u64,
    /// Inode of the file (or of the device node).
    pub ino: u64,
    /// Device number, for block and character devices (0 otherwise).
    pub rdev: u64,
}

/// A classification together with the identity of the file classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    /// What kind of file it is.
    pub kind: DescriptorKind,
    /// Which file it is.
    pub identity: FileIdentity,
}

/// A [`classify`](crate::classify) that remembers device classifications for a
/// short while. Safe to share between threads.
#[derive(Debug)]
pub struct ClassifyCache {
    sysfs: PathBuf,
    ttl: Duration,
    entries: Mutex<HashMap<NodeKey, Entry>>,
}

impl Default for ClassifyCache {
    fn default() -> Self {
        Self::new(Path::new("/sys"), DEFAULT_TTL)
    }
}

impl ClassifyCache {
    /// A cache reading sysfs under `sysfs`, trusting an entry for `ttl`.
    pub fn new(sysfs: &Path, ttl: Duration) -> Self {
        Self {
            sysfs: sysfs.to_path_buf(),
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long an entry is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Classifies the file behind `fd`: one `statx`, plus the sysfs lookup of
    /// [`classify`](crate::classify) when this device node was not seen within
    /// the last [`ttl`](Self::ttl).
    pub fn classify(&self, fd: BorrowedFd<'_>) -> Result<DescriptorKind, ClassifyError> {
        self.classify_file(fd).map(|classified| classified.kind)
    }

    /// [`classify`](Self::classify), also telling which file it is (from the same
    /// `statx`), so that callers need not look again.
    pub fn classify_file(&self, fd: BorrowedFd<'_>) -> Result<Classified, ClassifyError> {
        let examined = Examined::of(fd)?;
        let kind = self.classify_examined(&examined, Instant::now())?;
        Ok(Classified {
            kind,
            identity: examined.key().identity(),
        })
    }

    /// Classifies a file already examined, `now` being the time to judge the
    /// cached entries by.
    pub fn classify_examined(
        &self,
        examined: &Examined,
        now: Instant,
    ) -> Result<DescriptorKind, ClassifyError> {
        let node = &examined.node;
        if !needs_sysfs(node) {
            return classify_node(node, &self.sysfs);
        }
        let key = NodeKey::of(node);
        if let Some(kind) = self.fresh(key, now) {
            return Ok(kind);
        }
        // Looked up outside the lock: sysfs can be slow and other devices must not
        // wait.
        let kind = classify_node(node, &self.sysfs)?;
        self.remember(key, kind, now);
        Ok(kind)
    }

    fn fresh(&self, key: NodeKey, now: Instant) -> Option<DescriptorKind> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(&key)
            .filter(|entry| now.saturating_duration_since(entry.checked) < self.ttl)
            .map(|entry| entry.kind)
    }

    fn remember(&self, key: NodeKey, kind: DescriptorKind, checked: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(key, Entry { kind, checked });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::fstat;
    use std::os::fd::AsFd;

    /// The `statx` that never waits gives the identity `fstat` gives, for a
    /// device, a regular file, a pipe and a socket; only device nodes count as
    /// safe to close inline.
    #[test]
    fn statx_identity_is_fstat_identity() {
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let file = tempfile::tempfile().expect("temporary file");
        let (pipe, _writer) = rustix::pipe::pipe().expect("pipe");
        let (socket, _other) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        for (fd, device) in [
            (null.as_fd(), true),
            (file.as_fd(), false),
            (pipe.as_fd(), false),
            (socket.as_fd(), false),
        ] {
            let stat = fstat(fd).expect("fstat");
            let key = Examined::of(fd).expect("statx").key();
            assert_eq!(
                key,
                NodeKey {
                    dev: stat.st_dev,
                    ino: stat.st_ino,
                    rdev: stat.st_rdev,
                    mode: stat.st_mode,
                }
            );
            assert_eq!(key.is_device_node(), device);
        }
    }

    #[test]
    fn devices_are_remembered_and_other_files_are_not() {
        let cache = ClassifyCache::default();
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let first = cache.classify(null.as_fd()).expect("classified");
        assert_eq!(first, crate::classify(null.as_fd()).expect("classified"));
        assert_eq!(cache.classify(null.as_fd()).expect("again"), first);
        assert_eq!(cache.len(), 1);
        let stat = fstat(null.as_fd()).expect("fstat");
        let classified = cache.classify_file(null.as_fd()).expect("with identity");
        assert_eq!(classified.identity.rdev, stat.st_rdev);
        assert_eq!(classified.identity.ino, stat.st_ino);
        let file = tempfile::tempfile().expect("temp file");
        assert_eq!(
            cache.classify(file.as_fd()).expect("file"),
            DescriptorKind::RegularFile
        );
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn an_entry_is_trusted_only_for_the_ttl() {
        // A sysfs root that says /dev/null's number is an sg device only once
        // the cache looks again.
        let sysfs = tempfile::tempdir().expect("temp dir");
        let cache = ClassifyCache::new(sysfs.path(), Duration::ZERO);
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let before = cache.classify(null.as_fd()).expect("classified");
        assert!(matches!(before, DescriptorKind::Other(_)), "{before:?}");
        let stat = fstat(null.as_fd()).expect("fstat");
        let (major, minor) = (
            rustix::fs::major(stat.st_rdev),
            rustix::fs::minor(stat.st_rdev),
        );
        let dir = sysfs.path().join(format!("dev/char/{major}:{minor}"));
        std::fs::create_dir_all(&dir).expect("device dir");
        std::os::unix::fs::symlink("../../class/scsi_generic", dir.join("subsystem"))
            .expect("subsystem link");
        assert_eq!(
            cache.classify(null.as_fd()).expect("reclassified"),
            DescriptorKind::SgCharDevice
        );
    }
}

//! Remembering classifications, so that a busy device costs one `fstat` per
//! command instead of an `fstat` plus sysfs path walks.
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

use rustix::fs::{Stat, fstat};

use crate::classify::{ClassifyError, DescriptorKind, classify_stat, needs_sysfs};

/// How long a cached classification is trusted by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(1);

/// Most devices remembered at once; the cache starts over when full.
const MAX_ENTRIES: usize = 256;

/// The identity of a file as `fstat` reports it: node, device number and type.
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
    fn of(stat: &Stat) -> Self {
        Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
            rdev: stat.st_rdev,
            mode: stat.st_mode,
        }
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

/// What one `fstat` of a descriptor said: enough to classify it, and to tell
/// whether another descriptor refers to the same file.
#[derive(Debug, Clone, Copy)]
pub struct Examined {
    stat: Stat,
}

impl Examined {
    /// The `fstat` of `fd`.
    pub fn of(fd: BorrowedFd<'_>) -> Result<Self, ClassifyError> {
        let stat = fstat(fd).map_err(|e| ClassifyError::Fstat(e.into()))?;
        Ok(Self { stat })
    }

    /// The file's identity and type, to compare with another descriptor's.
    pub fn key(&self) -> NodeKey {
        NodeKey::of(&self.stat)
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    kind: DescriptorKind,
    checked: Instant,
}

/// Which file a descriptor refers to, as `fstat` reported it.
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

    /// Classifies the file behind `fd`: one `fstat`, plus the sysfs lookup of
    /// [`classify`](crate::classify) when this device node was not seen within
    /// the last [`ttl`](Self::ttl).
    pub fn classify(&self, fd: BorrowedFd<'_>) -> Result<DescriptorKind, ClassifyError> {
        self.classify_file(fd).map(|classified| classified.kind)
    }

    /// [`classify`](Self::classify), also telling which file it is (from the same
    /// `fstat`), so that callers need not look again.
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
        let stat = &examined.stat;
        if !needs_sysfs(stat) {
            return classify_stat(stat, &self.sysfs);
        }
        let key = NodeKey::of(stat);
        if let Some(kind) = self.fresh(key, now) {
            return Ok(kind);
        }
        // Looked up outside the lock: sysfs can be slow and other devices must not
        // wait.
        let kind = classify_stat(stat, &self.sysfs)?;
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
    use std::os::fd::AsFd;

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

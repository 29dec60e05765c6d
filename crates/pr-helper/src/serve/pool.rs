//! The bounded pool for blocking backend calls.
//!
//! Two limits apply to every call: a global one (the pool size) and one per device, so
//! that commands stuck on a hung device can occupy only a few pool slots and every other
//! device keeps being served. A call first waits for its device's slot, then for a pool
//! slot: a queue of commands behind a hung device therefore holds no pool slot at all.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, Mutex};

use rustix::fs::{FileType, fstat};
use sg_io::{DescriptorKind, FileIdentity, OtherKind};

use crate::backend::{DescriptorLabel, Job};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Most pool slots the commands for one device may hold at once.
const MAX_SLOTS_PER_DEVICE: usize = 4;

/// Identifies the device (or image file) a descriptor leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum DeviceKey {
    /// A block or character device, by its device number (`st_rdev`).
    Device(u64),
    /// A regular file, by filesystem and inode.
    File { dev: u64, ino: u64 },
}

impl DeviceKey {
    /// The key of the file `job` goes to, from what planning it found out; `fd` is
    /// looked at only if planning did not.
    pub(crate) fn for_job(job: &Job, fd: BorrowedFd<'_>) -> Option<Self> {
        match (job.descriptor, job.file) {
            (DescriptorLabel::Kind(kind), Some(file)) => Self::of_classified(kind, file),
            _ => Self::of(fd),
        }
    }

    /// The key of a classified file: the same as [`of`](Self::of) gives for it.
    fn of_classified(kind: DescriptorKind, file: FileIdentity) -> Option<Self> {
        match kind {
            DescriptorKind::WholeBlockDevice
            | DescriptorKind::Partition
            | DescriptorKind::PartialDeviceMapper
            | DescriptorKind::SgCharDevice
            | DescriptorKind::Other(OtherKind::CharDevice { .. }) => Some(Self::Device(file.rdev)),
            DescriptorKind::RegularFile => Some(Self::File {
                dev: file.dev,
                ino: file.ino,
            }),
            DescriptorKind::Other(_) => None,
        }
    }

    /// The key of the file behind `fd`, or `None` when it is neither a device nor a
    /// regular file (those are answered without blocking work worth limiting).
    pub(crate) fn of(fd: BorrowedFd<'_>) -> Option<Self> {
        let stat = fstat(fd.as_fd()).ok()?;
        match FileType::from_raw_mode(stat.st_mode) {
            FileType::BlockDevice | FileType::CharacterDevice => Some(Self::Device(stat.st_rdev)),
            FileType::RegularFile => Some(Self::File {
                dev: stat.st_dev,
                ino: stat.st_ino,
            }),
            _ => None,
        }
    }
}

/// Why a pooled call produced no result.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// The blocking task panicked or was cancelled by the runtime shutting down.
    #[error("the blocking backend call did not complete")]
    Join(#[source] tokio::task::JoinError),
}

/// The device and pool slots of one call taken by [`Pool::try_slots`]; freed on drop
/// (return them with [`Pool::release`] so an idle device is forgotten).
#[derive(Debug)]
pub(crate) struct CallSlots {
    key: Option<DeviceKey>,
    _device: Option<OwnedSemaphorePermit>,
    _global: OwnedSemaphorePermit,
}

/// The pool: a global semaphore plus one small semaphore per busy device.
#[derive(Debug)]
pub(crate) struct Pool {
    global: Arc<Semaphore>,
    per_device: usize,
    devices: Mutex<HashMap<DeviceKey, Arc<Semaphore>>>,
}

impl Pool {
    /// A pool running at most `threads` calls at once (at least one).
    pub(crate) fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        Self {
            global: Arc::new(Semaphore::new(threads)),
            per_device: MAX_SLOTS_PER_DEVICE.min(threads),
            devices: Mutex::new(HashMap::new()),
        }
    }

    /// Runs `job` on a blocking thread once both the device's and a pool slot are free.
    ///
    /// The slots travel with the job: if the caller stops waiting (its connection is
    /// dropped), they are released only when the blocking call really returns.
    pub(crate) async fn run<T, F>(&self, key: Option<DeviceKey>, job: F) -> Result<T, PoolError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let device_permit = match key {
            Some(key) => Some(self.device_permit(key).await),
            None => None,
        };
        // The semaphore is never closed, so acquiring cannot fail; if it ever did, run
        // without the global slot rather than refuse the command.
        let global_permit = Arc::clone(&self.global).acquire_owned().await.ok();
        let handle = tokio::task::spawn_blocking(move || {
            let result = job();
            drop(global_permit);
            drop(device_permit);
            result
        });
        let result = handle.await.map_err(PoolError::Join);
        if let Some(key) = key {
            self.forget_idle_device(key);
        }
        result
    }

    /// Both slots for one call, taken only if they are free right now (a connection's
    /// own thread never waits for them: it hands the command back to [`run`](Self::run)).
    /// Give them back with [`release`](Self::release).
    pub(crate) fn try_slots(&self, key: Option<DeviceKey>) -> Option<CallSlots> {
        let device = match key {
            Some(key) => {
                let permit = self.try_device_permit(key);
                if permit.is_none() {
                    self.forget_idle_device(key);
                }
                Some(permit?)
            }
            None => None,
        };
        let slots = Arc::clone(&self.global)
            .try_acquire_owned()
            .ok()
            .map(|global| CallSlots {
                key,
                _device: device,
                _global: global,
            });
        if slots.is_none()
            && let Some(key) = key
        {
            self.forget_idle_device(key);
        }
        slots
    }

    /// Gives back what [`try_slots`](Self::try_slots) took.
    pub(crate) fn release(&self, slots: CallSlots) {
        let key = slots.key;
        drop(slots);
        if let Some(key) = key {
            self.forget_idle_device(key);
        }
    }

    fn try_device_permit(&self, key: DeviceKey) -> Option<OwnedSemaphorePermit> {
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let semaphore = devices
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_device)));
        Arc::clone(semaphore).try_acquire_owned().ok()
    }

    async fn device_permit(&self, key: DeviceKey) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut devices = self
                .devices
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            Arc::clone(
                devices
                    .entry(key)
                    .or_insert_with(|| Arc::new(Semaphore::new(self.per_device))),
            )
        };
        semaphore.acquire_owned().await.ok()
    }

    /// Drops the device's semaphore once nobody holds or waits for it, so the map
    /// does not grow with every device ever seen.
    fn forget_idle_device(&self, key: DeviceKey) {
        let mut devices = self
            .devices
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if devices
            .get(&key)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
        {
            devices.remove(&key);
        }
    }

    #[cfg(test)]
    fn tracked_devices(&self) -> usize {
        self.devices
            .lock()
            .map(|devices| devices.len())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_hung_device_cannot_starve_another() {
        runtime().block_on(async {
            let pool = Arc::new(Pool::new(8));
            let hung = DeviceKey::Device(1);
            let (release_tx, release_rx) = mpsc::channel::<()>();
            let release_rx = Arc::new(Mutex::new(release_rx));
            let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
            // Ten commands to the hung device: only MAX_SLOTS_PER_DEVICE may start.
            let mut stuck = Vec::new();
            for _ in 0..10 {
                let pool = Arc::clone(&pool);
                let release_rx = Arc::clone(&release_rx);
                let started_tx = started_tx.clone();
                stuck.push(tokio::spawn(async move {
                    pool.run(Some(hung), move || {
                        let _ = started_tx.send(());
                        let _ = release_rx.lock().map(|rx| rx.recv());
                    })
                    .await
                }));
            }
            for _ in 0..MAX_SLOTS_PER_DEVICE {
                started_rx.recv().await.expect("a hung command started");
            }
            // Another device is served although ten commands wait on the hung one.
            let other = pool.run(Some(DeviceKey::Device(2)), || 42).await;
            assert_eq!(other.expect("other device served"), 42);
            assert!(
                started_rx.try_recv().is_err(),
                "more than the per-device cap started"
            );
            for _ in 0..10 {
                release_tx.send(()).expect("release");
            }
            for task in stuck {
                task.await.expect("task").expect("job");
            }
            assert_eq!(pool.tracked_devices(), 0);
        });
    }

    #[test]
    fn slots_taken_without_waiting_respect_both_limits() {
        runtime().block_on(async {
            let pool = Pool::new(MAX_SLOTS_PER_DEVICE + 1);
            let device = Some(DeviceKey::Device(1));
            let held: Vec<_> = (0..MAX_SLOTS_PER_DEVICE)
                .map(|_| pool.try_slots(device).expect("a free device slot"))
                .collect();
            assert!(pool.try_slots(device).is_none(), "device cap exceeded");
            let other = pool
                .try_slots(Some(DeviceKey::Device(2)))
                .expect("another device has room");
            assert!(pool.try_slots(None).is_none(), "global cap exceeded");
            pool.release(other);
            for slots in held {
                pool.release(slots);
            }
            assert_eq!(pool.tracked_devices(), 0);
            assert_eq!(pool.run(device, || 5).await.expect("served"), 5);
        });
    }

    #[test]
    fn commands_without_a_device_only_use_the_global_limit() {
        runtime().block_on(async {
            let pool = Pool::new(1);
            assert_eq!(pool.run(None, || 7).await.expect("served"), 7);
            assert_eq!(pool.tracked_devices(), 0);
        });
    }

    #[test]
    fn a_classified_file_has_the_key_fstat_gives() {
        let cache = sg_io::ClassifyCache::default();
        let file = tempfile::tempfile().expect("temp file");
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        for fd in [file.as_fd(), null.as_fd()] {
            let classified = cache.classify_file(fd).expect("classified");
            assert_eq!(
                DeviceKey::of_classified(classified.kind, classified.identity),
                DeviceKey::of(fd),
                "{classified:?}"
            );
        }
        // Block devices and partitions are keyed by device number alone.
        let stat = fstat(null.as_fd()).expect("fstat");
        let identity = FileIdentity {
            dev: stat.st_dev,
            ino: stat.st_ino,
            rdev: stat.st_rdev,
        };
        for kind in [DescriptorKind::WholeBlockDevice, DescriptorKind::Partition] {
            assert_eq!(
                DeviceKey::of_classified(kind, identity),
                Some(DeviceKey::Device(stat.st_rdev))
            );
        }
    }

    #[test]
    fn device_key_tells_files_and_devices_apart() {
        let file = tempfile::tempfile().expect("temp file");
        assert!(matches!(
            DeviceKey::of(file.as_fd()),
            Some(DeviceKey::File { .. })
        ));
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        assert!(matches!(
            DeviceKey::of(null.as_fd()),
            Some(DeviceKey::Device(_))
        ));
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("pair");
        assert_eq!(DeviceKey::of(a.as_fd()), None);
    }
}

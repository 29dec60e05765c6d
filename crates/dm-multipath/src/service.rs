//! The multipath service: maps the daemon serves, each with its memory (the key its
//! nexuses hold, the paths owed a registration), its opened paths and a lock that keeps
//! one command (or one look) at a time on it; and the uevent listener that brings
//! returning paths back. Generic over the [`System`] (the kernel's maps and paths, or
//! a fake in the fault tests); the fencing itself is [`crate::fence`].

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{Duration, Instant};

use crate::device::{NodeLookup, OpenPaths, is_device_mapper, map_name};
use crate::devnum::DevNum;
use crate::engine::{Answer, NO_PATH_SENSE, PathIo};
use crate::fence::{HostKey, MapMemory, Run};
use crate::map::MapPaths;
use crate::table::{Status, Table};
use crate::uevent::{self, MapEvent};

/// How long "is this a multipath map" is trusted (a table can be replaced).
const SERVES_TTL: Duration = Duration::from_secs(1);

/// Where the service finds the kernel's interfaces, and its SG_IO timeout.
#[derive(Debug, Clone)]
pub struct Settings {
    /// SG_IO timeout of every path command.
    pub sgio_timeout: Duration,
    /// device-mapper's control node.
    pub control: PathBuf,
    /// sysfs and /dev.
    pub nodes: NodeLookup,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            sgio_timeout: Duration::from_secs(30),
            control: PathBuf::from("/dev/mapper/control"),
            nodes: NodeLookup::default(),
        }
    }
}

/// Why a map could not be looked at.
#[derive(Debug, thiserror::Error)]
pub enum LookError {
    #[error("device-mapper control node {path} is not open")]
    NoControl { path: PathBuf },
    #[error("DM_TABLE_STATUS on map {map} failed")]
    Ioctl {
        map: DevNum,
        #[source]
        source: std::io::Error,
    },
    #[error("map {map} is not a single multipath target")]
    NotMultipath { map: DevNum },
    #[error("cannot parse the multipath {what} of map {map}")]
    Parse {
        map: DevNum,
        what: &'static str,
        #[source]
        source: crate::table::ParseError,
    },
}

/// What the service needs from the system: each map's paths and their state, and
/// each map's per-path I/O. [`Host`] is the kernel's (device-mapper's status ioctl,
/// the path nodes, the uevent socket); tests drive the same service over a fake.
pub trait System: Send + Sync + std::fmt::Debug + 'static {
    /// One map's paths, opened on first use.
    type Paths: PathIo + Send + Sync + std::fmt::Debug;

    /// Whether the system can serve maps at all (device-mapper's control node).
    fn is_available(&self) -> bool;
    /// Whether `dev` is a multipath map.
    fn is_map(&self, dev: DevNum) -> bool;
    /// The map's paths now, in the order to try them, with their state.
    fn paths(&self, dev: DevNum) -> Result<MapPaths, LookError>;
    /// The map's name for log lines.
    fn name(&self, dev: DevNum) -> String;
    /// The I/O on the map's paths.
    fn open(&self, dev: DevNum) -> Self::Paths;
    /// Closes the nodes of paths that left the map's table.
    fn keep_only(&self, _paths: &Self::Paths, _table: &[DevNum]) {}
    /// Starts delivering events about maps to `deliver` (`None`: events were lost,
    /// look at every map), until it returns false. Without events, returning paths
    /// are handled at the next command.
    fn start_events(&self, _deliver: Box<dyn Fn(Option<MapEvent>) -> bool + Send>) {}
}

/// The kernel: device-mapper's control node, sysfs and /dev, the uevent socket.
#[derive(Debug)]
pub struct Host {
    settings: Settings,
    /// device-mapper's control node, opened at start-up or at the first map seen.
    control: Mutex<Option<Arc<OwnedFd>>>,
    /// The one warning when the control node cannot be opened was given.
    control_warned: Once,
    /// The uevent socket, opened in [`Host::new`] (the daemon confines itself
    /// afterwards and creates no socket then), taken by the listener.
    uevents: Mutex<Option<std::io::Result<crate::sys::UeventSocket>>>,
}

impl Host {
    /// Opens device-mapper's control node now if it exists (see [`Multipath::new`]).
    pub fn new(settings: Settings) -> Self {
        let control = open_control(&settings.control).ok().map(Arc::new);
        Self {
            settings,
            control: Mutex::new(control),
            control_warned: Once::new(),
            uevents: Mutex::new(Some(crate::sys::UeventSocket::open())),
        }
    }

    fn control(&self) -> Result<Arc<OwnedFd>, LookError> {
        let mut control = lock(&self.control);
        if let Some(fd) = control.as_ref() {
            return Ok(Arc::clone(fd));
        }
        match open_control(&self.settings.control) {
            Ok(fd) => {
                let fd = Arc::new(fd);
                *control = Some(Arc::clone(&fd));
                Ok(fd)
            }
            Err(error) => {
                self.control_warned.call_once(|| {
                    tracing::warn!(path = %self.settings.control.display(), error = %error, "cannot open device-mapper's control node: multipath maps are served as single devices (start the helper as root, or with --no-multipath)");
                });
                Err(LookError::NoControl {
                    path: self.settings.control.clone(),
                })
            }
        }
    }

    fn single_multipath(&self, dev: DevNum, table: bool) -> Result<String, LookError> {
        let control = self.control()?;
        let targets = crate::sys::table_status(control.as_fd(), dev.rdev(), table)
            .map_err(|source| LookError::Ioctl { map: dev, source })?;
        match targets.as_slice() {
            [only] if only.target_type == "multipath" => Ok(only.params.clone()),
            _ => Err(LookError::NotMultipath { map: dev }),
        }
    }

    fn table(&self, dev: DevNum) -> Result<Table, LookError> {
        let line = self.single_multipath(dev, true)?;
        Table::parse(&line).map_err(|source| LookError::Parse {
            map: dev,
            what: "table",
            source,
        })
    }

    fn status(&self, dev: DevNum) -> Result<Status, LookError> {
        let line = self.single_multipath(dev, false)?;
        Status::parse(&line).map_err(|source| LookError::Parse {
            map: dev,
            what: "status",
            source,
        })
    }
}

impl System for Host {
    type Paths = OpenPaths;

    fn is_available(&self) -> bool {
        lock(&self.control).is_some()
    }

    fn is_map(&self, dev: DevNum) -> bool {
        is_device_mapper(&self.settings.nodes.sysfs, dev)
            && match self.table(dev) {
                Ok(_) => true,
                Err(LookError::Ioctl { source, .. })
                    if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
                {
                    self.control_warned.call_once(|| {
                        tracing::warn!(error = %source, "device-mapper refuses the status ioctl (CAP_SYS_ADMIN missing: was device-mapper loaded after start-up?): multipath maps are served as single devices");
                    });
                    false
                }
                Err(_) => false,
            }
    }

    /// From the status alone (one ioctl: it names every path of the live table with
    /// its group and state).
    fn paths(&self, dev: DevNum) -> Result<MapPaths, LookError> {
        Ok(MapPaths::from_status(&self.status(dev)?))
    }

    fn name(&self, dev: DevNum) -> String {
        map_name(&self.settings.nodes.sysfs, dev)
    }

    fn open(&self, _dev: DevNum) -> OpenPaths {
        OpenPaths::new(self.settings.nodes.clone(), self.settings.sgio_timeout)
    }

    fn keep_only(&self, paths: &OpenPaths, table: &[DevNum]) {
        paths.retain(table);
    }

    fn start_events(&self, deliver: Box<dyn Fn(Option<MapEvent>) -> bool + Send>) {
        let opened = lock(&self.uevents).take();
        let socket = match opened {
            Some(Ok(socket)) => socket,
            None => return,
            Some(Err(error)) => {
                tracing::warn!(error = %error, "cannot listen to kernel uevents: returning paths are registered at the next command only");
                return;
            }
        };
        let spawned = std::thread::Builder::new()
            .name("pr-helper-uevents".into())
            .spawn(move || listen(&socket, &*deliver));
        if let Err(error) = spawned {
            tracing::warn!(error = %error, "cannot start the uevent listener");
        }
    }
}

/// Persistent reservations on dm-multipath maps. Cheap to clone; shared by every
/// connection.
#[derive(Debug)]
pub struct Multipath<S: System = Host> {
    inner: Arc<Inner<S>>,
}

impl<S: System> Clone for Multipath<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

#[derive(Debug)]
struct Inner<S: System> {
    system: S,
    serves: Mutex<HashMap<DevNum, (bool, Instant)>>,
    maps: Mutex<HashMap<DevNum, Arc<MapState<S::Paths>>>>,
    listener: Once,
}

#[derive(Debug)]
struct MapState<P> {
    dev: DevNum,
    name: String,
    paths: P,
    /// Held for a whole command or look: one at a time per map.
    memory: Mutex<MapMemory>,
    /// The worker that looks at the map after uevents.
    worker: Mutex<Worker>,
    /// Connections that sent a command for this map and are still open.
    users: Mutex<usize>,
}

#[derive(Debug, Default)]
struct Worker {
    running: bool,
    /// Another event arrived while the worker was looking.
    again: bool,
}

/// A connection's use of a map ([`Multipath::attach`]): when the last one is
/// dropped, the map's worker checks the key on the device at once and forgets it
/// if the map's nexuses no longer hold it (the guest migrated away and its
/// destination preempted it). A key the nexuses still hold stays: a path that
/// returns later is brought back, as the device's state says it should be.
#[derive(Debug)]
pub struct MapUse<S: System = Host> {
    inner: Weak<Inner<S>>,
    dev: DevNum,
}

impl<S: System> MapUse<S> {
    /// The map's device number, as `st_rdev`.
    pub fn rdev(&self) -> u64 {
        self.dev.rdev()
    }
}

impl<S: System> Drop for MapUse<S> {
    fn drop(&mut self) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let Some(map) = lock(&inner.maps).get(&self.dev).cloned() else {
            return;
        };
        let mut users = lock(&map.users);
        *users = users.saturating_sub(1);
        if *users == 0 {
            drop(users);
            // The guest that used the map has gone (stopped, or migrated away and
            // preempted by its destination): the map's worker reads the device now,
            // and the key is forgotten if the map's nexuses no longer hold it.
            tracing::debug!(map = %map.name, "the last connection that used the map closed: checking its key on the device");
            lock(&map.memory).recheck_soon();
            inner.on_event(&MapEvent::Changed { map: self.dev });
        }
    }
}

impl Multipath<Host> {
    /// Opens device-mapper's control node now if it exists (the daemon calls this
    /// before dropping privileges: the node is root's, mode 0600). If it does not
    /// (device-mapper not loaded yet), it is opened when the first device-mapper
    /// device is seen; if that fails, one warning, and maps are served as single
    /// devices.
    pub fn new(settings: Settings) -> Self {
        Self::over(Host::new(settings))
    }
}

impl<S: System> Multipath<S> {
    /// The service over `system`.
    pub fn over(system: S) -> Self {
        Self {
            inner: Arc::new(Inner {
                system,
                serves: Mutex::new(HashMap::new()),
                maps: Mutex::new(HashMap::new()),
                listener: Once::new(),
            }),
        }
    }

    /// The system underneath.
    pub fn system(&self) -> &S {
        &self.inner.system
    }

    /// Whether the control node is open.
    pub fn is_available(&self) -> bool {
        self.inner.system.is_available()
    }

    /// Whether the block device `rdev` is a device-mapper device whose live table is a
    /// single `multipath` target. Remembered for a second.
    pub fn serves(&self, rdev: u64) -> bool {
        let dev = DevNum::from_rdev(rdev);
        let now = Instant::now();
        if let Some((answer, at)) = lock(&self.inner.serves).get(&dev)
            && now.duration_since(*at) < SERVES_TTL
        {
            return *answer;
        }
        let answer = self.inner.system.is_map(dev);
        let mut serves = lock(&self.inner.serves);
        if serves.len() > 1024 {
            serves.clear();
        }
        serves.insert(dev, (answer, now));
        answer
    }

    /// Counts a connection as a user of the map `rdev` until the guard is dropped.
    pub fn attach(&self, rdev: u64) -> MapUse<S> {
        let dev = DevNum::from_rdev(rdev);
        let map = self.inner.map(dev);
        *lock(&map.users) += 1;
        MapUse {
            inner: Arc::downgrade(&self.inner),
            dev,
        }
    }

    /// Executes one PR IN or PR OUT on the map `rdev`. Blocks (path commands run in
    /// parallel for registrations). Never fails: every problem is a SCSI answer.
    pub fn execute(&self, rdev: u64, cdb: &[u8], data_out: &[u8]) -> Answer {
        let dev = DevNum::from_rdev(rdev);
        self.start_listener();
        let map = self.inner.map(dev);
        let mut memory = lock(&map.memory);
        let paths = match self.inner.paths(&map) {
            Ok(paths) => paths,
            Err(error) => {
                tracing::warn!(map = %map.name, error = %crate::error_chain(&error), "cannot read the map's paths");
                return Answer::check_condition(NO_PATH_SENSE);
            }
        };
        let mut run = Run::new(&map.paths, &map.name, &paths, &mut memory);
        run.look();
        let answer = run.command(cdb, data_out);
        run.finish();
        answer
    }

    /// Looks at the map `rdev` now, on this thread (what a uevent about it does on the
    /// map's worker): paths that came back are registered, owed retries made.
    pub fn look_now(&self, rdev: u64) {
        let dev = DevNum::from_rdev(rdev);
        let Some(map) = lock(&self.inner.maps).get(&dev).cloned() else {
            return;
        };
        self.inner.look(&map);
    }

    /// What the service remembers of the map `rdev` (tests and logs).
    pub fn remembered(&self, rdev: u64) -> Option<(HostKey, Vec<DevNum>)> {
        let dev = DevNum::from_rdev(rdev);
        let map = lock(&self.inner.maps).get(&dev).cloned()?;
        let memory = lock(&map.memory);
        Some((memory.key, memory.owed.iter().copied().collect()))
    }

    fn start_listener(&self) {
        self.inner.listener.call_once(|| {
            let weak = Arc::downgrade(&self.inner);
            self.inner
                .system
                .start_events(Box::new(move |event| match weak.upgrade() {
                    None => false,
                    Some(inner) => {
                        match event {
                            Some(event) => inner.on_event(&event),
                            None => {
                                tracing::info!("uevent queue overflowed: checking every map");
                                let maps: Vec<DevNum> = lock(&inner.maps).keys().copied().collect();
                                for map in maps {
                                    inner.on_event(&MapEvent::Changed { map });
                                }
                            }
                        }
                        true
                    }
                }));
        });
    }
}

fn listen(socket: &crate::sys::UeventSocket, deliver: &dyn Fn(Option<MapEvent>) -> bool) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let len = match socket.receive(&mut buf) {
            Ok(len) => len,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                if !deliver(None) {
                    return;
                }
                continue;
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => {
                tracing::warn!(error = %error, "uevent listener stopped");
                return;
            }
        };
        let Some(event) = buf.get(..len).and_then(uevent::parse) else {
            continue;
        };
        if !deliver(Some(event)) {
            return;
        }
    }
}

impl<S: System> Inner<S> {
    fn map(&self, dev: DevNum) -> Arc<MapState<S::Paths>> {
        let mut maps = lock(&self.maps);
        Arc::clone(maps.entry(dev).or_insert_with(|| {
            Arc::new(MapState {
                dev,
                name: self.system.name(dev),
                paths: self.system.open(dev),
                memory: Mutex::new(MapMemory::default()),
                worker: Mutex::new(Worker::default()),
                users: Mutex::new(0),
            })
        }))
    }

    /// The map's paths now; closes the nodes of paths that left the table.
    fn paths(&self, map: &MapState<S::Paths>) -> Result<MapPaths, LookError> {
        let paths = self.system.paths(map.dev)?;
        let all: Vec<DevNum> = paths.paths.iter().map(|p| p.dev).collect();
        self.system.keep_only(&map.paths, &all);
        Ok(paths)
    }

    /// One look at the map: returning paths and owed retries (see [`Run::look`]).
    fn look(&self, map: &MapState<S::Paths>) {
        let mut memory = lock(&map.memory);
        match self.paths(map) {
            Ok(paths) => {
                let mut run = Run::new(&map.paths, &map.name, &paths, &mut memory);
                run.look();
                run.finish();
            }
            Err(error) => {
                tracing::info!(map = %map.name, error = %crate::error_chain(&error), "cannot read the map after a uevent");
            }
        }
    }

    fn on_event(self: &Arc<Self>, event: &MapEvent) {
        let Some(map) = lock(&self.maps).get(&event.map()).cloned() else {
            return;
        };
        lock(&self.serves).remove(&map.dev);
        if let MapEvent::Removed { .. } = event {
            lock(&self.maps).remove(&map.dev);
            return;
        }
        // Looked at on a thread of the map's own: a command holding one map (a path
        // that takes its time to time out) never delays the events of the others.
        // Events that arrive meanwhile make the worker look once more.
        {
            let mut worker = lock(&map.worker);
            worker.again = true;
            if worker.running {
                return;
            }
            worker.running = true;
        }
        let inner = Arc::clone(self);
        let for_thread = Arc::clone(&map);
        let spawned = std::thread::Builder::new()
            .name("pr-helper-mpath".into())
            .spawn(move || inner.work_on(&for_thread));
        if spawned.is_err() {
            self.work_on(&map);
        }
    }

    fn work_on(&self, map: &MapState<S::Paths>) {
        loop {
            {
                let mut worker = lock(&map.worker);
                if !worker.again {
                    worker.running = false;
                    return;
                }
                worker.again = false;
            }
            self.look(map);
        }
    }
}

fn open_control(path: &std::path::Path) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(Into::into)
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

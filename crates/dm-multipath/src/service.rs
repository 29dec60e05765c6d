//! The multipath service: maps the daemon serves, each with its remembered key, its
//! opened paths and a lock that keeps one command (or one re-registration) at a time on
//! it; and the uevent listener that re-registers returning paths.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::time::{Duration, Instant};

use crate::device::{NodeLookup, OpenPaths, is_device_mapper, map_name};
use crate::devnum::DevNum;
use crate::engine::{self, Answer, NO_PATH_SENSE};
use crate::map::{LastLook, MapPaths};
use crate::plan::{KeyChange, RememberedKey};
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

/// Persistent reservations on dm-multipath maps. Cheap to clone; shared by every
/// connection.
#[derive(Debug, Clone)]
pub struct Multipath {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    /// device-mapper's control node, opened at start-up or at the first map seen.
    control: Mutex<Option<Arc<OwnedFd>>>,
    /// The one warning when the control node cannot be opened was given.
    control_warned: Once,
    serves: Mutex<HashMap<DevNum, (bool, Instant)>>,
    maps: Mutex<HashMap<DevNum, Arc<MapState>>>,
    listener: Once,
    /// The uevent socket, opened in [`Multipath::new`] (the daemon confines itself
    /// afterwards and creates no socket then), taken by the listener.
    uevents: Mutex<Option<std::io::Result<crate::sys::UeventSocket>>>,
}

#[derive(Debug)]
struct MapState {
    dev: DevNum,
    name: String,
    paths: OpenPaths,
    /// Held for a whole command or re-registration: one at a time per map.
    memory: Mutex<Memory>,
    /// The worker that looks at the map after uevents.
    worker: Mutex<Worker>,
}

#[derive(Debug, Default)]
struct Memory {
    key: Option<RememberedKey>,
    /// The paths at the last look, to tell which came back.
    last: LastLook,
}

#[derive(Debug, Default)]
struct Worker {
    running: bool,
    /// Another event arrived while the worker was looking.
    again: bool,
}

impl Multipath {
    /// Opens device-mapper's control node now if it exists (the daemon calls this
    /// before dropping privileges: the node is root's, mode 0600). If it does not
    /// (device-mapper not loaded yet), it is opened when the first device-mapper
    /// device is seen; if that fails, one warning, and maps are served as single
    /// devices.
    pub fn new(settings: Settings) -> Self {
        let control = open_control(&settings.control).ok().map(Arc::new);
        Self {
            inner: Arc::new(Inner {
                settings,
                control: Mutex::new(control),
                control_warned: Once::new(),
                serves: Mutex::new(HashMap::new()),
                maps: Mutex::new(HashMap::new()),
                listener: Once::new(),
                uevents: Mutex::new(Some(crate::sys::UeventSocket::open())),
            }),
        }
    }

    /// Whether the control node is open.
    pub fn is_available(&self) -> bool {
        lock(&self.inner.control).is_some()
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
        let answer = is_device_mapper(&self.inner.settings.nodes.sysfs, dev)
            && match self.inner.table(dev) {
                Ok(_) => true,
                Err(LookError::Ioctl { source, .. })
                    if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
                {
                    self.inner.control_warned.call_once(|| {
                        tracing::warn!(error = %source, "device-mapper refuses the status ioctl (CAP_SYS_ADMIN missing: was device-mapper loaded after start-up?): multipath maps are served as single devices");
                    });
                    false
                }
                Err(_) => false,
            };
        let mut serves = lock(&self.inner.serves);
        if serves.len() > 1024 {
            serves.clear();
        }
        serves.insert(dev, (answer, now));
        answer
    }

    /// Executes one PR IN or PR OUT on the map `rdev`. Blocks (path commands run in
    /// parallel for registrations). Never fails: every problem is a SCSI answer.
    pub fn execute(&self, rdev: u64, cdb: &[u8], data_out: &[u8]) -> Answer {
        let dev = DevNum::from_rdev(rdev);
        self.start_listener();
        let map = self.inner.map(dev);
        let mut memory = lock(&map.memory);
        let paths = match self.inner.look_and_bring_back(&map, &mut memory) {
            Ok(paths) => paths,
            Err(error) => {
                tracing::warn!(map = %map.name, error = %crate::error_chain(&error), "cannot read the map's paths");
                return Answer::check_condition(NO_PATH_SENSE);
            }
        };
        let done = engine::execute(
            &map.paths,
            &map.name,
            &paths.usable(),
            cdb,
            data_out,
            memory.key,
        );
        match done.key {
            KeyChange::Keep => {}
            KeyChange::Remember(key) => memory.key = Some(key),
            KeyChange::Forget => memory.key = None,
        }
        done.answer
    }

    fn start_listener(&self) {
        self.inner.listener.call_once(|| {
            let opened = lock(&self.inner.uevents).take();
            let socket = match opened {
                Some(Ok(socket)) => socket,
                None => return,
                Some(Err(error)) => {
                    tracing::warn!(error = %error, "cannot listen to kernel uevents: returning paths are registered at the next command only");
                    return;
                }
            };
            let weak = Arc::downgrade(&self.inner);
            let spawned = std::thread::Builder::new()
                .name("pr-helper-uevents".into())
                .spawn(move || listen(&socket, &weak));
            if let Err(error) = spawned {
                tracing::warn!(error = %error, "cannot start the uevent listener");
            }
        });
    }
}

fn listen(socket: &crate::sys::UeventSocket, inner: &Weak<Inner>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let len = match socket.receive(&mut buf) {
            Ok(len) => len,
            Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                // Events were lost: look at every map again.
                tracing::info!("uevent queue overflowed: checking every map");
                let Some(inner) = inner.upgrade() else { return };
                let maps: Vec<DevNum> = lock(&inner.maps).keys().copied().collect();
                for map in maps {
                    inner.on_event(&MapEvent::Changed { map });
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
        let Some(inner) = inner.upgrade() else { return };
        inner.on_event(&event);
    }
}

impl Inner {
    fn map(&self, dev: DevNum) -> Arc<MapState> {
        let mut maps = lock(&self.maps);
        Arc::clone(maps.entry(dev).or_insert_with(|| {
            Arc::new(MapState {
                dev,
                name: map_name(&self.settings.nodes.sysfs, dev),
                paths: OpenPaths::new(self.settings.nodes.clone(), self.settings.sgio_timeout),
                memory: Mutex::new(Memory::default()),
                worker: Mutex::new(Worker::default()),
            })
        }))
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

    /// The map's paths now, from its status (one ioctl: the status names every path of
    /// the live table with its group and state). Closes paths that left the table, and
    /// registers the paths that came back since the last look (reinstated, failed and
    /// reinstated in between, or added by a reload) with the remembered key, if the
    /// device still holds it. Runs before every command and after every uevent, so a
    /// returning path is registered even when no uevent reached us.
    fn look_and_bring_back(
        &self,
        map: &MapState,
        memory: &mut Memory,
    ) -> Result<MapPaths, LookError> {
        let status = self.status(map.dev)?;
        let paths = MapPaths::from_status(&status);
        let all: Vec<DevNum> = paths.paths.iter().map(|p| p.dev).collect();
        map.paths.retain(&all);
        let returning = memory.last.returning(&paths);
        if returning.is_empty() {
            return Ok(paths);
        }
        // The node may now be another device behind the same number: open it again.
        for &path in &returning {
            map.paths.forget(path);
        }
        let Some(key) = memory.key else {
            return Ok(paths);
        };
        // Never bring back a key the device no longer holds: a host that another host
        // preempted or cleared must stay fenced. Asked through the other paths first
        // (a returning one may still be settling), then through the returning ones.
        let mut ask: Vec<DevNum> = paths
            .usable()
            .into_iter()
            .filter(|p| !returning.contains(p))
            .collect();
        ask.extend(returning.iter().copied());
        match engine::read_keys(&map.paths, &map.name, &ask) {
            Some(keys) if keys.contains(&key.key) => {
                engine::register_paths(&map.paths, &map.name, &returning, key, "path returned");
            }
            Some(_) => {
                tracing::info!(map = %map.name, key = format_args!("0x{:x}", key.key), "the device no longer holds the map's key (preempted or cleared): returning paths stay unregistered");
                memory.key = None;
            }
            None => {
                tracing::info!(map = %map.name, "cannot read the map's keys: returning paths are left as they are");
            }
        }
        Ok(paths)
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

    fn work_on(&self, map: &MapState) {
        loop {
            {
                let mut worker = lock(&map.worker);
                if !worker.again {
                    worker.running = false;
                    return;
                }
                worker.again = false;
            }
            let mut memory = lock(&map.memory);
            if let Err(error) = self.look_and_bring_back(map, &mut memory) {
                tracing::info!(map = %map.name, error = %crate::error_chain(&error), "cannot read the map after a uevent");
            }
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

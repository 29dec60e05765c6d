//! The real paths: each path's device node, found by device number and opened by us,
//! and [`PathIo`] over them with `SG_IO`.
//!
//! A path is opened only when it is a path of the map the peer sent (the caller
//! checks that against the map's live table), through the node sysfs names for its
//! device number (`/sys/dev/block/MAJ:MIN/uevent`, `DEVNAME=`), and used only if the
//! opened file is a block device with exactly that device number: a node that was
//! renamed, replaced or recreated for another device is never sent a command. Nodes
//! are looked up in the helper's own mount namespace, which is QEMU's when libvirt
//! starts the helper there (libvirt creates the map's path nodes in it).
//!
//! The node is opened read-only: SG_IO with PERSISTENT RESERVE OUT needs no write
//! access when the caller holds CAP_SYS_RAWIO (the kernel's command filter is
//! bypassed). That bypass lets SG_IO carry any command, WRITE included, so
//! read-only is not what keeps data safe: no `write(2)` goes through the descriptor,
//! and the only CDBs this crate builds are PERSISTENT RESERVE IN and OUT. The
//! permission check
//! of `open` still applies; a helper running with `-u`/`-g` passes it with
//! CAP_DAC_READ_SEARCH, raised only around this `open` (see [`crate::sys`]).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::fs::{FileType, Mode, OFlags};
use rustix::thread::CapabilitySet;
use scsi::sense::Sense;

use crate::devnum::DevNum;
use scsi::pr::TransportId;

use crate::engine::{Answer, Fault, PathIo, PathReply, fault_of};
use crate::fence::NexusId;
use crate::sys;

/// Why a path's node could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// sysfs does not name a node for the device.
    #[error("cannot read the device name of {dev} from {path}")]
    Name {
        dev: DevNum,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The name sysfs gives is not a plain node name.
    #[error("sysfs names {dev} {name:?}, which is not a device node name")]
    BadName { dev: DevNum, name: String },
    /// `open` failed.
    #[error("cannot open {path} (path {dev})")]
    Open {
        dev: DevNum,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The opened node is not the path's device.
    #[error("{path} is not block device {dev} (renamed or replaced node)")]
    NotThePath { dev: DevNum, path: PathBuf },
}

/// Where path nodes are found.
#[derive(Debug, Clone)]
pub struct NodeLookup {
    /// sysfs root (`/sys`).
    pub sysfs: PathBuf,
    /// Device directory (`/dev`).
    pub dev_dir: PathBuf,
}

impl Default for NodeLookup {
    fn default() -> Self {
        Self {
            sysfs: PathBuf::from("/sys"),
            dev_dir: PathBuf::from("/dev"),
        }
    }
}

impl NodeLookup {
    /// The node's name for `dev`, from its sysfs `uevent` file.
    pub fn node_name(&self, dev: DevNum) -> Result<String, OpenError> {
        let path = self
            .sysfs
            .join("dev/block")
            .join(dev.to_string())
            .join("uevent");
        let text = std::fs::read_to_string(&path).map_err(|source| OpenError::Name {
            dev,
            path: path.clone(),
            source,
        })?;
        let name = devname(&text).ok_or_else(|| OpenError::Name {
            dev,
            path,
            source: std::io::Error::other("no DEVNAME"),
        })?;
        if name.is_empty()
            || name
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(OpenError::BadName {
                dev,
                name: name.to_owned(),
            });
        }
        Ok(name.to_owned())
    }

    /// Opens the node of path `dev` read-only and checks it is that device.
    pub fn open(&self, dev: DevNum) -> Result<OwnedFd, OpenError> {
        let path = self.dev_dir.join(self.node_name(dev)?);
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
        let fd = sys::with_capability(CapabilitySet::DAC_READ_SEARCH, || {
            rustix::fs::open(&path, flags, Mode::empty())
        })
        .map_err(|e| OpenError::Open {
            dev,
            path: path.clone(),
            source: e.into(),
        })?;
        let same = rustix::fs::fstat(&fd).is_ok_and(|stat| {
            FileType::from_raw_mode(stat.st_mode) == FileType::BlockDevice
                && stat.st_rdev == dev.rdev()
        });
        if !same {
            return Err(OpenError::NotThePath { dev, path });
        }
        Ok(fd)
    }
}

impl NodeLookup {
    /// The I_T nexus of the SCSI disk `dev`, from sysfs alone (no I/O on the path, so
    /// a failed path is still known): the initiator port from the SCSI host's
    /// transport (tcm_loop's configfs `nexus`, a Fibre Channel host's `port_name`, an
    /// iSCSI session's `initiatorname` and `isid`), the relative target port from the
    /// kernel's copy of the device identification VPD page (`vpd_pg83`). `None` for a
    /// transport it cannot tell.
    pub fn nexus(&self, dev: DevNum) -> Option<NexusId> {
        let device = self
            .sysfs
            .join("dev/block")
            .join(dev.to_string())
            .join("device");
        let real = std::fs::canonicalize(&device).ok()?;
        let hctl = real.file_name()?.to_str()?.to_owned();
        let mut parts = hctl.split(':');
        let (host, channel, target) = (parts.next()?, parts.next()?, parts.next()?);
        let target_port = std::fs::read(device.join("vpd_pg83"))
            .ok()
            .and_then(|page| relative_target_port(&page));
        let initiator = self
            .loopback_initiator(host, channel, target)
            .or_else(|| self.fc_initiator(host))
            .or_else(|| self.iscsi_initiator(&real))?;
        Some(NexusId {
            initiator,
            target_port,
        })
    }

    fn loopback_initiator(&self, host: &str, channel: &str, target: &str) -> Option<TransportId> {
        let address = format!("{host}:{channel}:{target}");
        let fabric = self.sysfs.join("kernel/config/target/loopback");
        for wwn in std::fs::read_dir(fabric).ok()?.flatten() {
            let Ok(tpgs) = std::fs::read_dir(wwn.path()) else {
                continue;
            };
            for tpg in tpgs.flatten() {
                let here = std::fs::read_to_string(tpg.path().join("address")).unwrap_or_default();
                if here.trim() != address {
                    continue;
                }
                let nexus = std::fs::read_to_string(tpg.path().join("nexus")).ok()?;
                return transport_id_of_name(nexus.trim());
            }
        }
        None
    }

    fn fc_initiator(&self, host: &str) -> Option<TransportId> {
        let name = std::fs::read_to_string(
            self.sysfs
                .join("class/fc_host")
                .join(format!("host{host}"))
                .join("port_name"),
        )
        .ok()?;
        let hex = name.trim().trim_start_matches("0x");
        Some(TransportId::FibreChannel {
            n_port_name: u64::from_str_radix(hex, 16).ok()?,
        })
    }

    fn iscsi_initiator(&self, device: &Path) -> Option<TransportId> {
        let session = device.components().find_map(|c| {
            let c = c.as_os_str().to_str()?;
            (c.starts_with("session") && c[7..].bytes().all(|b| b.is_ascii_digit()))
                .then(|| c.to_owned())
        })?;
        let dir = self.sysfs.join("class/iscsi_session").join(session);
        let name = std::fs::read_to_string(dir.join("initiatorname")).ok()?;
        let isid = std::fs::read_to_string(dir.join("isid")).ok();
        Some(TransportId::Iscsi {
            name: name.trim().to_owned(),
            isid: isid.map(|i| i.trim().to_owned()).filter(|i| !i.is_empty()),
        })
    }
}

/// The TransportID a target names an initiator port by, from the port's name as LIO
/// writes it (`naa.` + 16 hex digits: a SAS address; `fc.`: a Fibre Channel port
/// name; an iSCSI name as is).
pub fn transport_id_of_name(name: &str) -> Option<TransportId> {
    if let Some(hex) = name.strip_prefix("naa.") {
        return Some(TransportId::Sas {
            address: u64::from_str_radix(hex, 16).ok()?,
        });
    }
    if let Some(hex) = name.strip_prefix("fc.") {
        return Some(TransportId::FibreChannel {
            n_port_name: u64::from_str_radix(&hex.replace(':', ""), 16).ok()?,
        });
    }
    if name.starts_with("iqn.") || name.starts_with("eui.") {
        return Some(TransportId::iscsi(name));
    }
    None
}

/// The RELATIVE TARGET PORT IDENTIFIER of a device identification VPD page (0x83):
/// the designator of type 4 associated with the target port.
pub fn relative_target_port(page: &[u8]) -> Option<u16> {
    let length = usize::from(u16::from_be_bytes([*page.get(2)?, *page.get(3)?]));
    let body = page.get(4..)?;
    let body = body.get(..length.min(body.len()))?;
    let mut at = 0;
    while let Some(header) = body.get(at..at + 4) {
        let association = (header[1] >> 4) & 0x3;
        let designator_type = header[1] & 0x0f;
        let len = usize::from(header[3]);
        let value = body.get(at + 4..at + 4 + len)?;
        if association == 1 && designator_type == 4 && len == 4 {
            return Some(u16::from_be_bytes([value[2], value[3]]));
        }
        at += 4 + len;
    }
    None
}

/// `DEVNAME=` of a sysfs `uevent` file.
pub fn devname(uevent: &str) -> Option<&str> {
    uevent
        .lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
}

/// Whether `sysfs/dev/block/MAJ:MIN` is a device-mapper device.
pub fn is_device_mapper(sysfs: &Path, dev: DevNum) -> bool {
    sysfs
        .join("dev/block")
        .join(dev.to_string())
        .join("dm")
        .exists()
}

/// The device-mapper name of `dev` (for log lines), or its number.
pub fn map_name(sysfs: &Path, dev: DevNum) -> String {
    std::fs::read_to_string(
        sysfs
            .join("dev/block")
            .join(dev.to_string())
            .join("dm/name"),
    )
    .map(|name| name.trim().to_owned())
    .ok()
    .filter(|name| !name.is_empty())
    .unwrap_or_else(|| dev.to_string())
}

/// The opened paths of one map, opened on first use and kept while they work.
#[derive(Debug)]
pub struct OpenPaths {
    lookup: NodeLookup,
    timeout: Duration,
    fds: Mutex<HashMap<DevNum, Arc<OwnedFd>>>,
}

impl OpenPaths {
    /// No path opened yet.
    pub fn new(lookup: NodeLookup, timeout: Duration) -> Self {
        Self {
            lookup,
            timeout,
            fds: Mutex::new(HashMap::new()),
        }
    }

    /// Closes every path not in `keep` (paths gone from the table).
    pub fn retain(&self, keep: &[DevNum]) {
        self.lock().retain(|dev, _| keep.contains(dev));
    }

    /// Closes `dev`'s node, so that the next command opens it again.
    pub fn forget(&self, dev: DevNum) {
        self.lock().remove(&dev);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DevNum, Arc<OwnedFd>>> {
        self.fds.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fd(&self, dev: DevNum) -> Result<Arc<OwnedFd>, OpenError> {
        if let Some(fd) = self.lock().get(&dev) {
            return Ok(Arc::clone(fd));
        }
        let fd = Arc::new(self.lookup.open(dev)?);
        self.lock().insert(dev, Arc::clone(&fd));
        Ok(fd)
    }
}

impl PathIo for OpenPaths {
    fn identity(&self, path: DevNum) -> Option<NexusId> {
        self.lookup.nexus(path)
    }

    fn reset(&self, path: DevNum) {
        self.forget(path);
    }

    fn send(&self, path: DevNum, cdb: &[u8], data_out: &[u8]) -> PathReply {
        let fd = match self.fd(path) {
            Ok(fd) => fd,
            Err(error) => {
                return PathReply {
                    answer: Answer::check_condition(Sense::LUN_COMM_FAILURE),
                    fault: Some(Fault::Unreachable(crate::error_chain(&error))),
                };
            }
        };
        let done = sg_io::execute_pr(fd.as_fd(), cdb, data_out, self.timeout);
        let fault = fault_of(done.outcome.as_ref());
        if fault.is_some() {
            // A node left over from a device that went away answers ENODEV forever:
            // open it again next time.
            self.forget(path);
        }
        PathReply {
            answer: Answer {
                status: done.status,
                sense: done.sense,
                data: done.data,
            },
            fault,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(entries: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (dev, uevent) in entries {
            let path = dir.path().join("dev/block").join(dev);
            std::fs::create_dir_all(&path).unwrap();
            std::fs::write(path.join("uevent"), uevent).unwrap();
        }
        dir
    }

    #[test]
    fn node_names_come_from_sysfs() {
        let sysfs = fake_sysfs(&[
            ("8:0", "MAJOR=8\nMINOR=0\nDEVNAME=sda\nDEVTYPE=disk\n"),
            ("8:16", "MAJOR=8\nMINOR=16\nDEVNAME=../etc/shadow\n"),
            ("8:32", "MAJOR=8\nMINOR=32\n"),
        ]);
        let lookup = NodeLookup {
            sysfs: sysfs.path().to_path_buf(),
            dev_dir: PathBuf::from("/dev"),
        };
        assert_eq!(lookup.node_name(DevNum::new(8, 0)).unwrap(), "sda");
        assert!(matches!(
            lookup.node_name(DevNum::new(8, 16)),
            Err(OpenError::BadName { .. })
        ));
        assert!(matches!(
            lookup.node_name(DevNum::new(8, 32)),
            Err(OpenError::Name { .. })
        ));
        assert!(matches!(
            lookup.node_name(DevNum::new(8, 48)),
            Err(OpenError::Name { .. })
        ));
    }

    #[test]
    fn a_loopback_paths_nexus_comes_from_configfs_and_vpd() {
        let sysfs = tempfile::tempdir().unwrap();
        let root = sysfs.path();
        let scsi_dev = root.join("devices/tcm_loop_0/host3/target3:0:1/3:0:1:0");
        std::fs::create_dir_all(&scsi_dev).unwrap();
        // VPD 0x83: an NAA designator (LU), then relative target port 2 (target port).
        let mut page = vec![0x00, 0x83, 0x00, 0x00];
        page.extend_from_slice(&[0x01, 0x03, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8]);
        page.extend_from_slice(&[0x61, 0x94, 0x00, 0x04, 0, 0, 0, 2]);
        page[3] = (page.len() - 4) as u8;
        std::fs::write(scsi_dev.join("vpd_pg83"), &page).unwrap();
        let block = root.join("dev/block");
        std::fs::create_dir_all(&block).unwrap();
        std::fs::create_dir_all(root.join("sda")).unwrap();
        std::os::unix::fs::symlink(root.join("sda"), block.join("8:0")).unwrap();
        std::os::unix::fs::symlink(&scsi_dev, root.join("sda/device")).unwrap();
        let tpg = root.join("kernel/config/target/loopback/naa.5001405000000b01/tpgt_1");
        std::fs::create_dir_all(&tpg).unwrap();
        std::fs::write(tpg.join("address"), "3:0:1\n").unwrap();
        std::fs::write(tpg.join("nexus"), "naa.5001405000000a01\n").unwrap();
        let lookup = NodeLookup {
            sysfs: root.to_path_buf(),
            dev_dir: PathBuf::from("/dev"),
        };
        assert_eq!(
            lookup.nexus(DevNum::new(8, 0)),
            Some(NexusId {
                initiator: TransportId::Sas {
                    address: 0x5001405000000a01
                },
                target_port: Some(2),
            })
        );
        assert_eq!(lookup.nexus(DevNum::new(8, 16)), None);
    }

    #[test]
    fn initiator_names_and_vpd_pages() {
        assert_eq!(
            transport_id_of_name("iqn.2026-01.invalid:a"),
            Some(TransportId::iscsi("iqn.2026-01.invalid:a"))
        );
        assert_eq!(transport_id_of_name("naa.zz"), None);
        assert_eq!(relative_target_port(&[0, 0x83, 0, 0]), None);
        assert_eq!(
            relative_target_port(&[0, 0x83, 0, 8, 0x61, 0x94, 0, 4, 0, 0]),
            None
        );
    }

    #[test]
    fn a_node_that_is_not_the_path_is_refused() {
        // sysfs says 1:3 is "null"; /dev/null is a character device, not block 1:3.
        let sysfs = fake_sysfs(&[("1:3", "DEVNAME=null\n")]);
        let lookup = NodeLookup {
            sysfs: sysfs.path().to_path_buf(),
            dev_dir: PathBuf::from("/dev"),
        };
        assert!(matches!(
            lookup.open(DevNum::new(1, 3)),
            Err(OpenError::NotThePath { .. })
        ));
        let io = OpenPaths::new(lookup, Duration::from_secs(1));
        let reply = io.send(DevNum::new(1, 3), &[0x5e, 0, 0, 0, 0, 0, 0, 0, 8, 0], &[]);
        assert!(matches!(reply.fault, Some(Fault::Unreachable(_))));
    }
}

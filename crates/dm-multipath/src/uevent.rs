//! Kernel uevents (`NETLINK_KOBJECT_UEVENT`, multicast group 1) that concern multipath
//! maps. A message is `ACTION@DEVPATH` followed by `KEY=VALUE` fields, each
//! NUL-terminated. device-mapper sends `change` events for its block devices:
//! with `DM_ACTION=PATH_FAILED` / `PATH_REINSTATED` and `DM_PATH=MAJ:MIN` when the
//! multipath target fails or reinstates a path, and without `DM_ACTION` when a new
//! table goes live (resume after a reload).

use crate::devnum::DevNum;

/// What a uevent says about a device-mapper device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapEvent {
    /// The multipath target reinstated this path.
    PathReinstated { map: DevNum, path: DevNum },
    /// The multipath target failed this path.
    PathFailed { map: DevNum, path: DevNum },
    /// Something else changed (a new table went live, a resume): look again.
    Changed { map: DevNum },
    /// The device went away.
    Removed { map: DevNum },
}

impl MapEvent {
    /// The map the event is about.
    pub fn map(&self) -> DevNum {
        match self {
            MapEvent::PathReinstated { map, .. }
            | MapEvent::PathFailed { map, .. }
            | MapEvent::Changed { map }
            | MapEvent::Removed { map } => *map,
        }
    }
}

/// Reads a kernel uevent; `None` for anything that is not about a block device with a
/// device-mapper name (other subsystems, udev's own messages, malformed bytes).
pub fn parse(message: &[u8]) -> Option<MapEvent> {
    let mut fields = message.split(|&b| b == 0).filter(|f| !f.is_empty());
    let header = std::str::from_utf8(fields.next()?).ok()?;
    // udev re-broadcasts on group 2 with a "libudev" header: not ours to read.
    let (header_action, _) = header.split_once('@')?;
    let mut action = header_action;
    let (mut subsystem, mut major, mut minor) = (None, None, None);
    let (mut dm_action, mut dm_path, mut dm_name) = (None, None, None);
    for field in fields {
        let Ok(field) = std::str::from_utf8(field) else {
            continue;
        };
        let Some((key, value)) = field.split_once('=') else {
            continue;
        };
        match key {
            "ACTION" => action = value,
            "SUBSYSTEM" => subsystem = Some(value),
            "MAJOR" => major = value.parse::<u32>().ok(),
            "MINOR" => minor = value.parse::<u32>().ok(),
            "DM_ACTION" => dm_action = Some(value),
            "DM_PATH" => dm_path = value.parse::<DevNum>().ok(),
            "DM_NAME" => dm_name = Some(value),
            _ => {}
        }
    }
    if subsystem != Some("block") {
        return None;
    }
    let map = DevNum::new(major?, minor?);
    match action {
        "remove" => Some(MapEvent::Removed { map }),
        "change" => match (dm_action, dm_path) {
            (Some("PATH_REINSTATED"), Some(path)) => Some(MapEvent::PathReinstated { map, path }),
            (Some("PATH_FAILED"), Some(path)) => Some(MapEvent::PathFailed { map, path }),
            // Any other change of a dm device (DM_NAME is set for dm devices only once
            // they have a name; a resume after a table reload has no DM_ACTION).
            _ if dm_name.is_some() || dm_action.is_some() || is_dm_devpath(header) => {
                Some(MapEvent::Changed { map })
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_dm_devpath(header: &str) -> bool {
    header
        .rsplit('/')
        .next()
        .is_some_and(|name| name.starts_with("dm-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: &[&str]) -> Vec<u8> {
        let mut bytes = Vec::new();
        for field in fields {
            bytes.extend_from_slice(field.as_bytes());
            bytes.push(0);
        }
        bytes
    }

    const MAP: DevNum = DevNum::new(254, 0);

    #[test]
    fn path_reinstated() {
        // What dm-mpath sends on "dmsetup message mpath0 0 reinstate_path 8:0".
        let bytes = message(&[
            "change@/devices/virtual/block/dm-0",
            "ACTION=change",
            "DEVPATH=/devices/virtual/block/dm-0",
            "SUBSYSTEM=block",
            "DM_TARGET=multipath",
            "DM_ACTION=PATH_REINSTATED",
            "DM_SEQNUM=2",
            "DM_PATH=8:0",
            "DM_NR_VALID_PATHS=2",
            "DM_NAME=mpath0",
            "DM_UUID=",
            "MAJOR=254",
            "MINOR=0",
            "DEVNAME=dm-0",
            "DEVTYPE=disk",
            "DISKSEQ=9",
            "SEQNUM=1234",
        ]);
        assert_eq!(
            parse(&bytes),
            Some(MapEvent::PathReinstated {
                map: MAP,
                path: DevNum::new(8, 0)
            })
        );
        let failed = String::from_utf8(bytes)
            .unwrap()
            .replace("PATH_REINSTATED", "PATH_FAILED");
        assert_eq!(
            parse(failed.as_bytes()),
            Some(MapEvent::PathFailed {
                map: MAP,
                path: DevNum::new(8, 0)
            })
        );
    }

    #[test]
    fn table_reload_and_remove() {
        let resume = message(&[
            "change@/devices/virtual/block/dm-0",
            "ACTION=change",
            "DEVPATH=/devices/virtual/block/dm-0",
            "SUBSYSTEM=block",
            "DM_COOKIE=4194304",
            "MAJOR=254",
            "MINOR=0",
            "DEVNAME=dm-0",
            "SEQNUM=1240",
        ]);
        assert_eq!(parse(&resume), Some(MapEvent::Changed { map: MAP }));
        let remove = message(&[
            "remove@/devices/virtual/block/dm-0",
            "ACTION=remove",
            "SUBSYSTEM=block",
            "MAJOR=254",
            "MINOR=0",
        ]);
        assert_eq!(parse(&remove), Some(MapEvent::Removed { map: MAP }));
    }

    #[test]
    fn others_are_ignored() {
        let sd = message(&[
            "change@/devices/platform/host0/target0:0:0/0:0:0:0/block/sda",
            "ACTION=change",
            "SUBSYSTEM=block",
            "MAJOR=8",
            "MINOR=0",
        ]);
        assert_eq!(parse(&sd), None);
        let net = message(&["add@/devices/virtual/net/lo", "ACTION=add", "SUBSYSTEM=net"]);
        assert_eq!(parse(&net), None);
        assert_eq!(parse(b"libudev\0\xfe\xed"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"\xff\xfe@x\0SUBSYSTEM=block"), None);
        let no_numbers = message(&["change@/devices/virtual/block/dm-0", "SUBSYSTEM=block"]);
        assert_eq!(parse(&no_numbers), None);
    }
}

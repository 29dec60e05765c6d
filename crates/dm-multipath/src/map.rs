//! A map's paths in the order commands try them, from its table and status, and which
//! of them came back since the last look.

use std::collections::HashMap;

use crate::devnum::DevNum;
use crate::table::{GroupState, Status, Table};

/// One path of a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapPath {
    /// Its device.
    pub dev: DevNum,
    /// Not failed by the kernel.
    pub usable: bool,
    /// Index of its path group in the table.
    pub group: usize,
    /// How often the kernel failed it (grows by one at every failure).
    pub fail_count: u32,
}

/// The paths of a map: the active group's first (the path the kernel itself would use
/// for I/O answers single-path commands), then enabled groups, then bypassed ones,
/// each in table order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MapPaths {
    /// Every path of the table.
    pub paths: Vec<MapPath>,
}

impl MapPaths {
    /// Combines a table and a status of the same map. A path the status does not list
    /// (they are read one after the other, and the table may have changed in between)
    /// counts as unusable until the next look.
    pub fn new(table: &Table, status: &Status) -> Self {
        let mut paths = Vec::new();
        for (group_index, group) in table.groups.iter().enumerate() {
            let group_status = status.groups.get(group_index);
            for &dev in &group.paths {
                let status = group_status.and_then(|g| g.paths.iter().find(|p| p.dev == dev));
                paths.push(MapPath {
                    dev,
                    usable: status.is_some_and(|p| p.active),
                    group: group_index,
                    fail_count: status.map_or(0, |p| p.fail_count),
                });
            }
        }
        let rank = |group: usize| match status.groups.get(group).map(|g| g.state) {
            Some(GroupState::Active) => 0,
            Some(GroupState::Enabled) => 1,
            Some(GroupState::Bypassed) | None => 2,
        };
        // Stable: table order within a rank.
        paths.sort_by_key(|p| rank(p.group));
        Self { paths }
    }

    /// The paths from a status alone: it lists every path of the live table with its
    /// group and state, so a command needs one ioctl, not two.
    pub fn from_status(status: &Status) -> Self {
        let table = Table {
            features: Vec::new(),
            hardware_handler: Vec::new(),
            groups: status
                .groups
                .iter()
                .map(|group| crate::table::TableGroup {
                    selector: String::new(),
                    paths: group.paths.iter().map(|p| p.dev).collect(),
                })
                .collect(),
        };
        Self::new(&table, status)
    }

    /// `usable`, all usable, in that order, in one group (a single command with no
    /// table at hand).
    pub fn all_usable(usable: &[DevNum]) -> Self {
        Self {
            paths: usable
                .iter()
                .map(|&dev| MapPath {
                    dev,
                    usable: true,
                    group: 0,
                    fail_count: 0,
                })
                .collect(),
        }
    }

    /// The usable paths, in order.
    pub fn usable(&self) -> Vec<DevNum> {
        self.paths
            .iter()
            .filter(|p| p.usable)
            .map(|p| p.dev)
            .collect()
    }

    /// Whether `dev` is a path of the map.
    pub fn contains(&self, dev: DevNum) -> bool {
        self.paths.iter().any(|p| p.dev == dev)
    }

    /// Whether `dev` is a usable path of the map.
    pub fn is_usable(&self, dev: DevNum) -> bool {
        self.paths.iter().any(|p| p.dev == dev && p.usable)
    }
}

/// What a map's paths looked like at the last look, to tell which came back since.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LastLook {
    /// Whether there was a look at all.
    seen: bool,
    /// Per path: usable, fail count.
    paths: HashMap<DevNum, (bool, u32)>,
}

impl LastLook {
    /// The paths usable now that were not at the last look: failed then, failed and
    /// reinstated in between (their fail count grew), or new in the table (a reload).
    /// Nothing on the first look. Remembers `now` for the next call.
    pub fn returning(&mut self, now: &MapPaths) -> Vec<DevNum> {
        let returning = if self.seen {
            now.paths
                .iter()
                .filter(|p| p.usable)
                .filter(|p| match self.paths.get(&p.dev) {
                    None => true,
                    Some(&(was_usable, fail_count)) => !was_usable || p.fail_count > fail_count,
                })
                .map(|p| p.dev)
                .collect()
        } else {
            Vec::new()
        };
        self.seen = true;
        self.paths = now
            .paths
            .iter()
            .map(|p| (p.dev, (p.usable, p.fail_count)))
            .collect();
        returning
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(line: &str) -> MapPaths {
        MapPaths::from_status(&Status::parse(line).unwrap())
    }

    #[test]
    fn returning_paths() {
        let mut last = LastLook::default();
        let both = "2 0 0 0 2 1 E 0 1 0 8:0 A 0 E 0 1 0 8:32 A 0";
        let sda_failed = "2 0 0 0 2 1 A 0 1 0 8:0 F 1 E 0 1 0 8:32 A 0";
        let sda_back = "2 0 0 0 2 1 A 0 1 0 8:0 A 1 E 0 1 0 8:32 A 0";
        let sda_failed_and_back_unseen = "2 0 0 0 2 1 A 0 1 0 8:0 A 2 E 0 1 0 8:32 A 0";
        let reloaded = "2 0 0 0 2 1 A 0 1 0 8:0 A 2 E 0 2 0 8:32 A 0 8:48 A 0";
        assert!(last.returning(&status(both)).is_empty(), "first look");
        assert!(last.returning(&status(both)).is_empty());
        assert!(last.returning(&status(sda_failed)).is_empty());
        assert_eq!(last.returning(&status(sda_back)), [DevNum::new(8, 0)]);
        assert!(last.returning(&status(sda_back)).is_empty());
        assert_eq!(
            last.returning(&status(sda_failed_and_back_unseen)),
            [DevNum::new(8, 0)]
        );
        assert_eq!(last.returning(&status(reloaded)), [DevNum::new(8, 48)]);
        assert!(last.returning(&status(reloaded)).is_empty());
    }

    #[test]
    fn active_group_first_failed_paths_unusable() {
        let table = Table::parse("0 0 2 1 round-robin 0 1 1 8:0 1 round-robin 0 2 1 8:16 1 8:32 1")
            .unwrap();
        let status =
            Status::parse("2 0 0 0 2 2 E 0 1 0 8:0 F 1 A 0 2 0 8:16 A 0 8:32 A 0").unwrap();
        let map = MapPaths::new(&table, &status);
        let order: Vec<_> = map.paths.iter().map(|p| p.dev.to_string()).collect();
        assert_eq!(order, ["8:16", "8:32", "8:0"]);
        assert_eq!(map.usable(), [DevNum::new(8, 16), DevNum::new(8, 32)]);
        assert!(map.contains(DevNum::new(8, 0)) && !map.is_usable(DevNum::new(8, 0)));
        assert!(!map.contains(DevNum::new(8, 48)));
    }

    #[test]
    fn the_status_alone_gives_the_same_paths() {
        let table = Table::parse("0 0 2 1 round-robin 0 1 1 8:0 1 round-robin 0 2 1 8:16 1 8:32 1")
            .unwrap();
        let status =
            Status::parse("2 0 0 0 2 2 E 0 1 0 8:0 F 1 A 0 2 0 8:16 A 0 8:32 A 0").unwrap();
        assert_eq!(
            MapPaths::from_status(&status),
            MapPaths::new(&table, &status)
        );
    }

    #[test]
    fn a_path_missing_from_the_status_is_unusable() {
        let table = Table::parse("0 0 1 1 round-robin 0 2 1 8:0 1 8:16 1").unwrap();
        let status = Status::parse("2 0 0 0 1 1 A 0 1 0 8:0 A 0").unwrap();
        assert_eq!(MapPaths::new(&table, &status).usable(), [DevNum::new(8, 0)]);
    }
}

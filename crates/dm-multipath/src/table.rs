//! The `multipath` target's table and status lines, as device-mapper reports them
//! (`DM_TABLE_STATUS` with and without `DM_STATUS_TABLE_FLAG`; `dmsetup table` and
//! `dmsetup status` print the same words after the start, length and target type).
//!
//! Both lines are counted lists: every variable part is preceded by its word count,
//! so a line is parsed without knowing the path selector or hardware handler.
//!
//! Table: `<#features> <features...> <#handler words> <handler...> <#groups>
//! <next group> { <selector> <#selector args> <args...> <#paths> <#path args>
//! { <MAJ:MIN> <path args...> } }`.
//!
//! Status: `<#features> <features...> <#handler words> <handler...> <#groups>
//! <next group> { <A|E|D> <#selector words> <words...> <#paths> <#path info words>
//! { <MAJ:MIN> <A|F> <fail count> <path info words...> } }`.

use crate::devnum::{BadDevNum, DevNum};

/// A line that is not a multipath table or status line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line ended where a word was expected.
    #[error("the line ends before the {0}")]
    Truncated(&'static str),
    /// A count or number is not a decimal number.
    #[error("{what} {word:?} is not a number")]
    NotANumber { what: &'static str, word: String },
    /// A path is not named by its device number.
    #[error("bad path device")]
    Device(#[source] BadDevNum),
    /// A group or path state is not one the kernel prints.
    #[error("unknown {what} state {word:?}")]
    State { what: &'static str, word: String },
    /// Words are left after the last group.
    #[error("{0} unexpected words after the last path group")]
    Trailing(usize),
}

/// The table of a multipath map: its path groups in priority order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Feature words (`queue_if_no_path`, `retain_attached_hw_handler`, ...).
    pub features: Vec<String>,
    /// Hardware handler name and arguments, empty if none.
    pub hardware_handler: Vec<String>,
    /// Path groups, in the table's order (group 1 first).
    pub groups: Vec<TableGroup>,
}

/// One path group of a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableGroup {
    /// Path selector (`round-robin`, `service-time`, `queue-length`, ...).
    pub selector: String,
    /// The group's paths, by device number.
    pub paths: Vec<DevNum>,
}

/// The status of a multipath map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The path groups in the table's order.
    pub groups: Vec<GroupStatus>,
}

/// A path group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// The group in use (`A`).
    Active,
    /// Usable, not in use (`E`).
    Enabled,
    /// Bypassed (`D`): skipped until the others fail.
    Bypassed,
}

/// One path group's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// Its state.
    pub state: GroupState,
    /// Its paths.
    pub paths: Vec<PathStatus>,
}

/// One path's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathStatus {
    /// The path's device.
    pub dev: DevNum,
    /// `A` (active) rather than `F` (failed).
    pub active: bool,
    /// How often the kernel failed the path.
    pub fail_count: u32,
}

struct Words<'a> {
    inner: std::str::SplitAsciiWhitespace<'a>,
}

impl<'a> Words<'a> {
    fn new(line: &'a str) -> Self {
        Self {
            inner: line.split_ascii_whitespace(),
        }
    }

    fn word(&mut self, what: &'static str) -> Result<&'a str, ParseError> {
        self.inner.next().ok_or(ParseError::Truncated(what))
    }

    fn number(&mut self, what: &'static str) -> Result<u32, ParseError> {
        let word = self.word(what)?;
        word.parse().map_err(|_| ParseError::NotANumber {
            what,
            word: word.to_owned(),
        })
    }

    /// A count (bounded by what is left, so a huge count cannot allocate) and that
    /// many words.
    fn counted(&mut self, what: &'static str) -> Result<Vec<String>, ParseError> {
        let count = self.number(what)?;
        let mut words = Vec::new();
        for _ in 0..count {
            words.push(self.word(what)?.to_owned());
        }
        Ok(words)
    }

    fn skip(&mut self, count: u32, what: &'static str) -> Result<(), ParseError> {
        for _ in 0..count {
            self.word(what)?;
        }
        Ok(())
    }

    fn device(&mut self) -> Result<DevNum, ParseError> {
        self.word("path device")?
            .parse()
            .map_err(ParseError::Device)
    }

    fn finish(mut self) -> Result<(), ParseError> {
        let left = self.inner.by_ref().count();
        if left == 0 {
            Ok(())
        } else {
            Err(ParseError::Trailing(left))
        }
    }
}

impl Table {
    /// Parses a multipath target's table parameters.
    pub fn parse(line: &str) -> Result<Table, ParseError> {
        let mut words = Words::new(line);
        let features = words.counted("features")?;
        let hardware_handler = words.counted("hardware handler")?;
        let group_count = words.number("number of path groups")?;
        words.number("next path group")?;
        let mut groups = Vec::new();
        for _ in 0..group_count {
            let selector = words.word("path selector")?.to_owned();
            let selector_args = words.number("path selector arguments")?;
            words.skip(selector_args, "path selector arguments")?;
            let path_count = words.number("number of paths")?;
            let path_args = words.number("number of path arguments")?;
            let mut paths = Vec::new();
            for _ in 0..path_count {
                paths.push(words.device()?);
                words.skip(path_args, "path arguments")?;
            }
            groups.push(TableGroup { selector, paths });
        }
        words.finish()?;
        Ok(Table {
            features,
            hardware_handler,
            groups,
        })
    }

    /// Every path of the map, group by group.
    pub fn paths(&self) -> impl Iterator<Item = DevNum> + '_ {
        self.groups
            .iter()
            .flat_map(|group| group.paths.iter().copied())
    }
}

impl Status {
    /// Parses a multipath target's status (info) line.
    pub fn parse(line: &str) -> Result<Status, ParseError> {
        let mut words = Words::new(line);
        words.counted("features")?;
        words.counted("hardware handler")?;
        let group_count = words.number("number of path groups")?;
        words.number("next path group")?;
        let mut groups = Vec::new();
        for _ in 0..group_count {
            let state = match words.word("path group state")? {
                "A" => GroupState::Active,
                "E" => GroupState::Enabled,
                "D" => GroupState::Bypassed,
                other => {
                    return Err(ParseError::State {
                        what: "path group",
                        word: other.to_owned(),
                    });
                }
            };
            words.counted("path selector status")?;
            let path_count = words.number("number of paths")?;
            let info_words = words.number("number of path status words")?;
            let mut paths = Vec::new();
            for _ in 0..path_count {
                let dev = words.device()?;
                let active = match words.word("path state")? {
                    "A" => true,
                    "F" => false,
                    other => {
                        return Err(ParseError::State {
                            what: "path",
                            word: other.to_owned(),
                        });
                    }
                };
                let fail_count = words.number("path fail count")?;
                words.skip(info_words, "path status words")?;
                paths.push(PathStatus {
                    dev,
                    active,
                    fail_count,
                });
            }
            groups.push(GroupStatus { state, paths });
        }
        words.finish()?;
        Ok(Status { groups })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDA: DevNum = DevNum::new(8, 0);
    const SDC: DevNum = DevNum::new(8, 32);

    #[test]
    fn failover_table_of_the_vm_tier() {
        // `dmsetup table mpatha` in the VM tier, after "0 32768 multipath".
        let table =
            Table::parse("0 0 2 1 round-robin 0 1 1 8:0 1 round-robin 0 1 1 8:32 1 ").unwrap();
        assert!(table.features.is_empty() && table.hardware_handler.is_empty());
        assert_eq!(table.groups.len(), 2);
        assert_eq!(table.groups[0].selector, "round-robin");
        assert_eq!(table.paths().collect::<Vec<_>>(), [SDA, SDC]);
    }

    #[test]
    fn multibus_table_with_features_handler_and_service_time() {
        // What multipathd loads for an ALUA array: one group, two paths, service-time
        // with two table arguments per path.
        let line = "1 queue_if_no_path 1 alua 1 1 service-time 0 2 2 8:32 1 1 8:48 1 1";
        let table = Table::parse(line).unwrap();
        assert_eq!(table.features, ["queue_if_no_path"]);
        assert_eq!(table.hardware_handler, ["alua"]);
        assert_eq!(table.groups.len(), 1);
        assert_eq!(
            table.paths().collect::<Vec<_>>(),
            [DevNum::new(8, 32), DevNum::new(8, 48)]
        );
    }

    #[test]
    fn status_of_the_vm_tier() {
        // `dmsetup status mpatha` in the VM tier: fresh (no I/O yet, so no group is
        // active and pg_init is pending), then after "fail_path 8:0".
        let fresh = Status::parse("2 1 0 0 2 1 E 0 1 0 8:0 A 0 E 0 1 0 8:32 A 0 ").unwrap();
        assert_eq!(fresh.groups.len(), 2);
        assert!(fresh.groups.iter().all(|g| g.state == GroupState::Enabled));
        assert!(fresh.groups.iter().all(|g| g.paths[0].active));
        let status = Status::parse("2 0 0 0 2 1 A 0 1 0 8:0 F 1 E 0 1 0 8:32 A 0 ").unwrap();
        assert_eq!(status.groups[0].state, GroupState::Active);
        assert_eq!(
            status.groups[0].paths,
            [PathStatus {
                dev: SDA,
                active: false,
                fail_count: 1
            }]
        );
        assert_eq!(status.groups[1].state, GroupState::Enabled);
        assert_eq!(status.groups[1].paths[0].dev, SDC);
        assert!(status.groups[1].paths[0].active);
    }

    #[test]
    fn status_with_selector_words() {
        // service-time prints two words per path (in-flight size, relative throughput).
        let line = "2 0 0 1 alua 1 1 A 0 2 2 8:32 A 0 0 1 8:48 F 3 0 1";
        let status = Status::parse(line).unwrap();
        let paths = &status.groups[0].paths;
        assert_eq!(paths.len(), 2);
        assert!(paths[0].active && !paths[1].active);
        assert_eq!(paths[1].fail_count, 3);
    }

    #[test]
    fn bad_lines_are_refused() {
        assert_eq!(Table::parse(""), Err(ParseError::Truncated("features")));
        assert!(matches!(
            Table::parse("0 0 1 1 round-robin 0 1 1 sda 1"),
            Err(ParseError::Device(_))
        ));
        assert_eq!(
            Table::parse("0 0 1 1 round-robin 0 1 1 8:0 1 extra"),
            Err(ParseError::Trailing(1))
        );
        assert!(matches!(
            Status::parse("2 0 0 0 1 1 X 0 1 0 8:0 A 0"),
            Err(ParseError::State { .. })
        ));
        assert!(matches!(
            Status::parse("2 0 0 0 1 1 A 0 1 0 8:0 Q 0"),
            Err(ParseError::State { .. })
        ));
        // A huge count must not allocate or loop: it stops at the end of the line.
        assert_eq!(
            Table::parse("4294967295 a"),
            Err(ParseError::Truncated("features"))
        );
        assert!(matches!(
            Table::parse("99999999999"),
            Err(ParseError::NotANumber { .. })
        ));
    }
}

//! Block device numbers as device-mapper prints them (`MAJOR:MINOR`).

use std::fmt;
use std::str::FromStr;

/// A block device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DevNum {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
}

impl DevNum {
    /// The number `major:minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }

    /// From an `st_rdev` value.
    pub fn from_rdev(rdev: u64) -> Self {
        Self::new(rustix::fs::major(rdev), rustix::fs::minor(rdev))
    }

    /// As an `st_rdev` value.
    pub fn rdev(self) -> u64 {
        rustix::fs::makedev(self.major, self.minor)
    }
}

impl fmt::Display for DevNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.major, self.minor)
    }
}

/// A word that is not `MAJOR:MINOR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a device number (MAJOR:MINOR)")]
pub struct BadDevNum(pub String);

impl FromStr for DevNum {
    type Err = BadDevNum;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadDevNum(text.to_owned());
        let (major, minor) = text.split_once(':').ok_or_else(bad)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            part.parse::<u32>().map_err(|_| bad())
        };
        Ok(Self::new(number(major)?, number(minor)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let dev: DevNum = "8:16".parse().unwrap();
        assert_eq!(dev, DevNum::new(8, 16));
        assert_eq!(dev.to_string(), "8:16");
        assert_eq!(DevNum::from_rdev(dev.rdev()), dev);
        let big = DevNum::new(259, 70000);
        assert_eq!(DevNum::from_rdev(big.rdev()), big);
    }

    #[test]
    fn refuses_what_is_not_a_number() {
        for text in [
            "",
            "8",
            "8:",
            ":1",
            "a:b",
            "8:1x",
            "-1:2",
            "99999999999:1",
            "8:1:2",
        ] {
            assert!(text.parse::<DevNum>().is_err(), "{text}");
        }
    }
}

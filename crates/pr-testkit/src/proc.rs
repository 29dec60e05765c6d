//! What `/proc` tells about a process.

use std::io;

/// Number of open descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn fd_count(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// The targets of process `pid`'s open descriptors, for messages when a count is off.
pub fn fd_targets(pid: u32) -> io::Result<Vec<String>> {
    let mut targets = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let entry = entry?;
        let target = std::fs::read_link(entry.path())
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| String::from("?"));
        targets.push(format!(
            "{} -> {target}",
            entry.file_name().to_string_lossy()
        ));
    }
    targets.sort();
    Ok(targets)
}

/// CPU time (user + system) process `pid` has used, in clock ticks (`/proc/PID/stat`
/// fields 14 and 15).
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), to turn [`cpu_ticks`] into time.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces: count the
    // fields after its closing parenthesis, which is field 3 (state).
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // Fields 3..=13 come first; utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_the_name_parses() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 1 0 1 2 3";
        assert_eq!(parse_cpu_ticks(stat), Some(10));
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(fd_count(pid).expect("fd count") >= 3);
        cpu_ticks(pid).expect("cpu ticks");
    }
}

//! CPU time a process has used, from `/proc/PID/stat`: lets the benchmark
//! report what each request costs the helper, a figure less sensitive to
//! a busy machine than throughput.

use std::fs;
use std::time::Duration;

/// User + system CPU time of process `pid` (all its threads).
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_ticks(&stat)?;
    let per_second = rustix::param::clock_ticks_per_second();
    if per_second == 0 {
        return None;
    }
    let nanos = u128::from(ticks) * 1_000_000_000 / u128::from(per_second);
    Some(Duration::from_nanos(u64::try_from(nanos).ok()?))
}

/// utime + stime (fields 14 and 15). The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its last ')'.
fn parse_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace();
    // after_name starts at field 3 (state); utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_read_after_an_awkward_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_ticks(stat), Some(12));
        assert_eq!(parse_ticks("garbage"), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_time(std::process::id()).is_some());
    }
}

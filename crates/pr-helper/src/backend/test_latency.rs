//! Test hook: a delay before every command, so tests can keep commands in flight.
//!
//! Compiled only with the `test-hooks` feature; release builds never read the variable.

use std::time::Duration;

/// Environment variable holding the delay in milliseconds.
pub const LATENCY_ENV: &str = "PR_HELPER_TEST_LATENCY_MS";

/// The delay configured in the environment, if any (an unparsable value is ignored).
pub(crate) fn configured() -> Option<Duration> {
    let value = std::env::var(LATENCY_ENV).ok()?;
    parse(&value)
}

fn parse(value: &str) -> Option<Duration> {
    let millis: u64 = value.trim().parse().ok()?;
    (millis > 0).then(|| Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_milliseconds_and_ignores_garbage() {
        assert_eq!(parse("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse(" 5\n"), Some(Duration::from_millis(5)));
        assert_eq!(parse("0"), None);
        assert_eq!(parse("soon"), None);
    }
}

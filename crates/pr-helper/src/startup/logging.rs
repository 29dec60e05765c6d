//! Logging: where log lines go and which ones are written.
//!
//! Levels come from `-v`/`-q` for our own targets (others: warnings only),
//! then `-T` patterns and `RUST_LOG` add directives. Lines go to standard
//! error, to the file of `-T file=FILE`, or, once detached with `-d`, to
//! the journal when it runs and to syslog (`/dev/log`) otherwise.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;

use tracing::{Level, Metadata};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use crate::config::{Config, OUR_TARGETS, TraceSpec};

/// Logging that cannot be set up, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("cannot read the trace events file {path} given with -T events=")]
    EventsFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the log file {path} given with -T file=")]
    LogFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("invalid trace pattern (see -T in --help)")]
    Filter(#[source] tracing_subscriber::filter::ParseError),
    #[error("a logger was already installed")]
    AlreadySet(#[source] tracing_subscriber::util::TryInitError),
}

/// Where the log goes.
enum Destination {
    Stderr,
    File(Arc<File>),
    Journald(tracing_journald::Layer),
    Syslog(Arc<UnixDatagram>),
    /// Detached with no journal and no syslog: nowhere to write.
    Nowhere,
}

/// Logging, checked and opened but not installed yet: the files are read
/// before anything else changes, the logger is installed after a `-d` fork.
pub struct LogSetup {
    filter: EnvFilter,
    file: Option<Arc<File>>,
}

/// Builds the filter (reading `-T events=` files) and opens `-T file=`.
pub fn prepare(config: &Config) -> Result<LogSetup, LoggingError> {
    let filter = build_filter(config)?;
    let file = match &config.trace.file {
        Some(path) => Some(Arc::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| LoggingError::LogFile {
                    path: path.clone(),
                    source,
                })?,
        )),
        None => None,
    };
    Ok(LogSetup { filter, file })
}

impl LogSetup {
    /// Installs the global logger. `detached` says the standard streams
    /// are /dev/null (`-d`).
    pub fn install(self, detached: bool) -> Result<(), LoggingError> {
        let registry = tracing_subscriber::registry().with(self.filter);
        let result = match choose_destination(self.file, detached) {
            Destination::Stderr => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(io::stderr)
                        .with_ansi(std::io::IsTerminal::is_terminal(&io::stderr())),
                )
                .try_init(),
            Destination::File(file) => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(file)
                        .with_ansi(false),
                )
                .try_init(),
            Destination::Journald(layer) => registry.with(layer).try_init(),
            Destination::Syslog(socket) => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(SyslogWriter::new(socket))
                        .with_ansi(false)
                        .without_time()
                        .with_level(false),
                )
                .try_init(),
            Destination::Nowhere => registry.try_init(),
        };
        result.map_err(LoggingError::AlreadySet)
    }
}

fn choose_destination(file: Option<Arc<File>>, detached: bool) -> Destination {
    if let Some(file) = file {
        return Destination::File(file);
    }
    if !detached {
        return Destination::Stderr;
    }
    if let Ok(layer) = tracing_journald::layer() {
        return Destination::Journald(layer.with_syslog_identifier("pr-helper".into()));
    }
    match UnixDatagram::unbound().and_then(|socket| socket.connect("/dev/log").map(|()| socket)) {
        Ok(socket) => Destination::Syslog(Arc::new(socket)),
        Err(_) => Destination::Nowhere,
    }
}

/// The filter: our targets at the `-v`/`-q` level, everything else at
/// warn, then the `-T` patterns, then `RUST_LOG`.
fn build_filter(config: &Config) -> Result<EnvFilter, LoggingError> {
    let mut directives = vec!["warn".to_owned()];
    directives.extend(
        OUR_TARGETS
            .iter()
            .map(|target| format!("{target}={}", config.log_level)),
    );
    for pattern in &config.trace.patterns {
        directives.extend(TraceSpec::directives_for(pattern));
    }
    for path in &config.trace.events_files {
        let text = std::fs::read_to_string(path).map_err(|source| LoggingError::EventsFile {
            path: path.clone(),
            source,
        })?;
        for pattern in event_patterns(&text) {
            directives.extend(TraceSpec::directives_for(pattern));
        }
    }
    if let Ok(extra) = std::env::var("RUST_LOG") {
        directives.extend(
            extra
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        );
    }
    EnvFilter::builder()
        .parse(directives.join(","))
        .map_err(LoggingError::Filter)
}

/// Patterns in an events file: one per line, `#` starts a comment.
fn event_patterns(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
}

/// Sends each log line as one datagram to syslog, RFC 3164 style.
struct SyslogWriter {
    socket: Arc<UnixDatagram>,
    pid: u32,
}

impl SyslogWriter {
    fn new(socket: Arc<UnixDatagram>) -> Self {
        Self {
            socket,
            pid: std::process::id(),
        }
    }
}

/// One event being formatted; sent when dropped.
struct SyslogLine {
    socket: Arc<UnixDatagram>,
    header: String,
    buf: Vec<u8>,
}

impl Write for SyslogLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine {
    fn drop(&mut self) {
        let body = String::from_utf8_lossy(&self.buf);
        let body = body.trim_end();
        if body.is_empty() {
            return;
        }
        // A lost log line must not stop the daemon.
        let _ = self
            .socket
            .send(format!("{}{body}", self.header).as_bytes());
    }
}

/// Facility "daemon" (3) times 8 plus the severity.
fn syslog_priority(level: Level) -> u8 {
    let severity = match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    };
    3 * 8 + severity
}

impl<'a> MakeWriter<'a> for SyslogWriter {
    type Writer = SyslogLine;

    fn make_writer(&'a self) -> SyslogLine {
        self.line(Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> SyslogLine {
        self.line(*meta.level())
    }
}

impl SyslogWriter {
    fn line(&self, level: Level) -> SyslogLine {
        SyslogLine {
            socket: Arc::clone(&self.socket),
            header: format!("<{}>pr-helper[{}]: ", syslog_priority(level), self.pid),
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_file_lines() {
        let text = "# comment\npr_helper::serve*\n\n  sg_io # trailing\n";
        assert_eq!(
            event_patterns(text).collect::<Vec<_>>(),
            vec!["pr_helper::serve*", "sg_io"]
        );
    }

    #[test]
    fn syslog_lines_carry_priority_and_pid() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let writer = SyslogWriter::new(Arc::new(ours));
        {
            let mut line = writer.line(Level::WARN);
            write!(line, "hello ").unwrap();
            writeln!(line, "world").unwrap();
        }
        let mut buf = [0u8; 256];
        let n = theirs.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        assert_eq!(
            text,
            format!("<28>pr-helper[{}]: hello world", std::process::id())
        );
    }
}

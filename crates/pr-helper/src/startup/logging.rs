//! Logging: where log lines go and which ones are written.
//!
//! Levels come from `-v`/`-q` for our own targets (others: warnings only),
//! then `-T` patterns and `RUST_LOG` add directives. Lines go to standard
//! error, to the file of `-T file=FILE`, or, once detached with `-d`, to
//! the journal when it runs and to syslog (`/dev/log`) otherwise. Under
//! systemd, when standard error is the journal stream systemd connected
//! (`JOURNAL_STREAM`), entries go to the journal natively too. Journal
//! entries carry every tracing field as a field of its own, named
//! `PR_` + the field in capitals (`peer_pid` is `PR_PEER_PID`), beside
//! MESSAGE, PRIORITY (syslog's mapping of the levels), TARGET and
//! SYSLOG_IDENTIFIER=pr-helper, so `journalctl PR_PEER_UID=107` works. Syslog
//! lines are single datagrams of at most 8192 bytes, sent without blocking
//! (dropped when the reader is behind), reconnecting when syslog restarts.

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
    Syslog(Arc<SyslogSocket>),
    /// Detached, and not even a socket could be created: nowhere to write.
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
        // Under systemd the lines on stderr would reach the journal as bare
        // text; talking to it directly keeps the fields.
        if stderr_is_the_journal(std::env::var_os(JOURNAL_STREAM).as_deref()) {
            if let Some(layer) = journald_layer() {
                return Destination::Journald(layer);
            }
        }
        return Destination::Stderr;
    }
    if let Some(layer) = journald_layer() {
        return Destination::Journald(layer);
    }
    match SyslogSocket::open(SYSLOG_PATH) {
        Ok(socket) => Destination::Syslog(Arc::new(socket)),
        Err(_) => Destination::Nowhere,
    }
}

/// Set by systemd to `DEVICE:INODE` of the stream it connected to stdout
/// and stderr when they go to the journal.
const JOURNAL_STREAM: &str = "JOURNAL_STREAM";

/// Prefix of our fields in journal entries: `PR_PEER_PID`, `PR_DEVICE`...
/// (a prefix keeps them apart from the journal's own fields).
pub const JOURNAL_FIELD_PREFIX: &str = "PR";

/// The journal, if it listens: entries named pr-helper, with our fields
/// prefixed and the levels mapped as for syslog (info is 6, not notice).
fn journald_layer() -> Option<tracing_journald::Layer> {
    let mappings = tracing_journald::PriorityMappings {
        info: tracing_journald::Priority::Informational,
        debug: tracing_journald::Priority::Debug,
        ..tracing_journald::PriorityMappings::new()
    };
    let layer = tracing_journald::layer().ok()?;
    Some(
        layer
            .with_syslog_identifier("pr-helper".into())
            .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.into()))
            .with_priority_mappings(mappings),
    )
}

/// Whether our standard error is the stream `JOURNAL_STREAM` names. The
/// variable alone is not enough: a process started from a unit inherits
/// it even when its stderr was redirected elsewhere.
fn stderr_is_the_journal(journal_stream: Option<&std::ffi::OsStr>) -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some((device, inode)) = journal_stream
        .and_then(|value| value.to_str())
        .and_then(parse_journal_stream)
    else {
        return false;
    };
    let Ok(stderr) = io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match File::from(stderr).metadata() {
        Ok(meta) => meta.dev() == device && meta.ino() == inode,
        Err(_) => false,
    }
}

/// `DEVICE:INODE`, both decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
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

/// Where syslog listens.
const SYSLOG_PATH: &str = "/dev/log";

/// The largest datagram we send: what syslog daemons accept by default
/// (rsyslog's message size limit); longer lines are cut.
const MAX_DATAGRAM: usize = 8192;

/// Our socket to syslog. It never blocks: when the reader falls behind,
/// lines are dropped rather than stalling the thread that logs (a serving
/// thread). It is never connected: each line is sent to the path, so a
/// syslog that restarts, or starts only after us, gets the next line, and
/// the confined daemon needs neither `connect` nor a new socket.
struct SyslogSocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl SyslogSocket {
    /// A non-blocking, unconnected socket for `path` (nobody listening there
    /// yet is fine).
    fn open(path: impl Into<PathBuf>) -> io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.set_nonblocking(true)?;
        Ok(Self {
            socket,
            path: path.into(),
        })
    }

    /// Sends one datagram; a line that cannot be delivered (the reader
    /// behind, or nobody listening) is dropped, since a lost log line must
    /// not stop the daemon.
    fn send(&self, datagram: &[u8]) {
        let _ = self.socket.send_to(datagram, &self.path);
    }
}

/// `header` then `body`, cut to at most `MAX_DATAGRAM` bytes on a
/// character boundary.
fn syslog_datagram(header: &str, body: &str) -> Vec<u8> {
    let room = MAX_DATAGRAM.saturating_sub(header.len());
    let mut end = body.len().min(room);
    while !body.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    let mut datagram = Vec::with_capacity(header.len().saturating_add(end));
    datagram.extend_from_slice(header.as_bytes());
    datagram.extend_from_slice(body.get(..end).unwrap_or_default().as_bytes());
    datagram
}

/// Sends each log line as one datagram to syslog, RFC 3164 style.
struct SyslogWriter {
    socket: Arc<SyslogSocket>,
    pid: u32,
}

impl SyslogWriter {
    fn new(socket: Arc<SyslogSocket>) -> Self {
        Self {
            socket,
            pid: std::process::id(),
        }
    }
}

/// One event being formatted; sent when dropped.
struct SyslogLine {
    socket: Arc<SyslogSocket>,
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
        self.socket.send(&syslog_datagram(&self.header, body));
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
    use std::os::fd::AsFd;
    use std::path::Path;

    use super::*;

    #[test]
    fn journal_stream_values() {
        assert_eq!(parse_journal_stream("8:12345"), Some((8, 12345)));
        assert_eq!(parse_journal_stream("8:"), None);
        assert_eq!(parse_journal_stream("x:1"), None);
        assert_eq!(parse_journal_stream("812345"), None);
        assert!(!stderr_is_the_journal(None));
        assert!(!stderr_is_the_journal(Some("garbage".as_ref())));
    }

    #[test]
    fn the_journal_stream_must_be_our_stderr() {
        use std::os::unix::fs::MetadataExt;
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned().unwrap());
        let meta = stderr.metadata().unwrap();
        let ours = format!("{}:{}", meta.dev(), meta.ino());
        assert!(stderr_is_the_journal(Some(ours.as_ref())));
        let other = format!("{}:{}", meta.dev(), meta.ino().wrapping_add(1));
        assert!(!stderr_is_the_journal(Some(other.as_ref())));
    }

    #[test]
    fn events_file_lines() {
        let text = "# comment\npr_helper::serve*\n\n  sg_io # trailing\n";
        assert_eq!(
            event_patterns(text).collect::<Vec<_>>(),
            vec!["pr_helper::serve*", "sg_io"]
        );
    }

    /// A listening "syslog" in a temporary directory, and its path.
    fn listener() -> (tempfile::TempDir, PathBuf, UnixDatagram) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let socket = bind(&path);
        (dir, path, socket)
    }

    fn bind(path: &Path) -> UnixDatagram {
        let socket = UnixDatagram::bind(path).unwrap();
        // A hang guard only: every datagram awaited here was already sent.
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(60)))
            .unwrap();
        socket
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = vec![0u8; 2 * MAX_DATAGRAM];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn syslog_lines_carry_priority_and_pid() {
        let (_dir, path, theirs) = listener();
        let writer = SyslogWriter::new(Arc::new(SyslogSocket::open(&path).unwrap()));
        {
            let mut line = writer.line(Level::WARN);
            write!(line, "hello ").unwrap();
            writeln!(line, "world").unwrap();
        }
        assert_eq!(
            receive(&theirs),
            format!("<28>pr-helper[{}]: hello world", std::process::id())
        );
    }

    #[test]
    fn long_lines_are_cut_to_one_datagram_on_a_character_boundary() {
        let (_dir, path, theirs) = listener();
        let writer = SyslogWriter::new(Arc::new(SyslogSocket::open(&path).unwrap()));
        let header = writer.line(Level::INFO).header.clone();
        {
            let mut line = writer.line(Level::INFO);
            // Two-byte characters, so the cut may fall inside one.
            write!(line, "x{}", "\u{e9}".repeat(100_000)).unwrap();
        }
        let text = receive(&theirs);
        assert!(text.len() <= MAX_DATAGRAM, "{} bytes", text.len());
        assert!(text.len() + 1 >= MAX_DATAGRAM, "{} bytes", text.len());
        let body = text.strip_prefix(&header).unwrap();
        assert!(body.starts_with("x\u{e9}"));
        assert!(body[1..].chars().all(|c| c == '\u{e9}'));
    }

    #[test]
    fn short_lines_are_not_cut() {
        assert_eq!(syslog_datagram("<30>h: ", "body"), b"<30>h: body");
        assert_eq!(syslog_datagram("<30>h: ", ""), b"<30>h: ");
    }

    #[test]
    fn a_reader_that_falls_behind_costs_lines_not_a_blocked_logger() {
        let (_dir, path, theirs) = listener();
        let socket = SyslogSocket::open(&path).unwrap();
        // Far more than a datagram socket queues (net.unix.max_dgram_qlen
        // and the buffer size): a blocking send would never return here.
        let sent = 20_000;
        for n in 0..sent {
            socket.send(format!("line {n}").as_bytes());
        }
        theirs.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let mut received = 0;
        while theirs.recv(&mut buf).is_ok() {
            received += 1;
        }
        assert!(received > 0);
        assert!(received < sent, "nothing dropped: {received}");
    }

    #[test]
    fn a_restarted_syslog_is_reconnected() {
        let (_dir, path, first) = listener();
        let socket = SyslogSocket::open(&path).unwrap();
        socket.send(b"to the first");
        assert_eq!(receive(&first), "to the first");

        // Syslog restarts: its socket closes and a new one takes the path.
        drop(first);
        std::fs::remove_file(&path).unwrap();
        let second = bind(&path);
        socket.send(b"to the second");
        assert_eq!(receive(&second), "to the second");
    }

    #[test]
    fn a_syslog_that_starts_later_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let socket = SyslogSocket::open(&path).unwrap();
        socket.send(b"nobody listens yet");
        let late = bind(&path);
        socket.send(b"now someone does");
        assert_eq!(receive(&late), "now someone does");
    }
}

//! The validated configuration.
//!
//! [`Config`] is built from [`Args`] with `TryFrom`: every check that needs
//! no system state happens here, with a message that names the option and
//! what to write instead. User and group names are kept as written and
//! resolved by the start-up code (they need the system's user database).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::level_filters::LevelFilter;

use crate::args::{Args, DEFAULT_PIDFILE, DEFAULT_SOCKET};
use crate::backend::BackendSettings;
use crate::serve::ServeSettings;

/// A user or group as given on the command line: a number or a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSpec {
    /// A numeric id, used as is.
    Id(u32),
    /// A name, looked up at start-up.
    Name(String),
}

impl IdSpec {
    /// Numbers are ids; anything else is a name.
    pub fn parse(text: &str) -> Result<IdSpec, ConfigError> {
        if text.is_empty() {
            return Err(ConfigError::EmptyName);
        }
        Ok(match text.parse::<u32>() {
            Ok(id) => IdSpec::Id(id),
            Err(_) => IdSpec::Name(text.to_owned()),
        })
    }
}

impl fmt::Display for IdSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdSpec::Id(id) => write!(f, "{id}"),
            IdSpec::Name(name) => f.write_str(name),
        }
    }
}

/// The `-T` options, split into their parts (files are read at start-up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceSpec {
    /// Patterns given with `-T PATTERN` or `-T enable=PATTERN`.
    pub patterns: Vec<String>,
    /// Files of patterns given with `events=FILE`.
    pub events_files: Vec<PathBuf>,
    /// Where to write the log instead of standard error (`file=FILE`).
    pub file: Option<PathBuf>,
}

impl TraceSpec {
    /// Adds one `-T` argument: `[[enable=]PATTERN][,events=FILE][,file=FILE]`.
    pub fn add(&mut self, arg: &str) -> Result<(), ConfigError> {
        for item in arg.split(',').filter(|item| !item.is_empty()) {
            if let Some(pattern) = item.strip_prefix("enable=") {
                self.patterns.push(pattern.to_owned());
            } else if let Some(file) = item.strip_prefix("events=") {
                self.events_files.push(absolute("-T events=", file)?);
            } else if let Some(file) = item.strip_prefix("file=") {
                self.file = Some(absolute("-T file=", file)?);
            } else {
                self.patterns.push(item.to_owned());
            }
        }
        Ok(())
    }

    /// Maps one qemu-style pattern onto a tracing directive:
    /// `*` → all of our crates at trace level; `NAME*` / `NAME` → the target
    /// prefix `NAME` at trace level; `TARGET=LEVEL` → as is.
    pub fn directives_for(pattern: &str) -> Vec<String> {
        let pattern = pattern.trim();
        if pattern.contains('=') {
            return vec![pattern.to_owned()];
        }
        let prefix = pattern.trim_end_matches('*');
        if prefix.is_empty() {
            OUR_TARGETS
                .iter()
                .map(|target| format!("{target}=trace"))
                .collect()
        } else {
            vec![format!("{prefix}=trace")]
        }
    }
}

/// The log targets of this daemon's crates.
pub const OUR_TARGETS: &[&str] = &["pr_helper", "sg_io", "pr_target", "dm_multipath"];

/// The validated configuration of one daemon run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `-d`: detach from the terminal.
    pub daemon: bool,
    /// The pid file, when `-d` or `-f` asks for one (absolute).
    pub pidfile: Option<PathBuf>,
    /// The socket to bind (absolute).
    pub socket: PathBuf,
    /// Whether `-k` was given (refused under socket activation).
    pub socket_given: bool,
    /// Permissions to give the socket, if not the umask's.
    pub socket_mode: Option<u32>,
    /// Group to give the socket.
    pub socket_group: Option<IdSpec>,
    /// `-u`.
    pub user: Option<IdSpec>,
    /// `-g`.
    pub group: Option<IdSpec>,
    /// Peers allowed by uid (empty: no uid restriction).
    pub allow_uids: Vec<IdSpec>,
    /// Peers allowed by gid (empty: no gid restriction).
    pub allow_gids: Vec<IdSpec>,
    /// Level for our own log targets, from `-v` / `-q`.
    pub log_level: LevelFilter,
    /// `-T`.
    pub trace: TraceSpec,
    /// Settings for the serving code; the allowlists are filled in once
    /// the names are resolved.
    pub serve: ServeSettings,
    /// The backends' settings (SG_IO timeout, partitions, the software target).
    pub backends: BackendSettings,
    /// `--seccomp`.
    pub seccomp: crate::sandbox::SeccompMode,
    /// Landlock after start-up (off with `--no-landlock`).
    pub landlock: bool,
}

/// A command line that cannot work, and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{option} {path} is not an absolute path: give the full path, e.g. {example}")]
    NotAbsolute {
        option: &'static str,
        path: PathBuf,
        example: &'static str,
    },
    #[error("cannot make {option} {path} absolute (is the current directory still there?)")]
    Absolutize {
        option: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("--{option} {value}: give a number of seconds greater than 0, e.g. --{option} 30")]
    Seconds { option: &'static str, value: f64 },
    #[error("--{option} {value}: give a number of at least 1")]
    Count { option: &'static str, value: usize },
    #[error("--socket-mode {0}: give permissions in octal, at most 0777, e.g. --socket-mode 0660")]
    SocketMode(String),
    #[error("an empty user or group name was given")]
    EmptyName,
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, Self::Error> {
        let socket_given = args.socket.is_some();
        let socket = args.socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        if !socket.is_absolute() {
            return Err(ConfigError::NotAbsolute {
                option: "-k",
                path: socket,
                example: "-k /run/qemu-pr-helper.sock",
            });
        }
        // qemu-pr-helper writes a pid file with -d even without -f.
        let pidfile = match (args.pidfile, args.daemon) {
            (Some(path), _) => Some(absolute_path("-f", path)?),
            (None, true) => Some(PathBuf::from(DEFAULT_PIDFILE)),
            (None, false) => None,
        };
        let mut trace = TraceSpec::default();
        for arg in &args.trace {
            trace.add(arg)?;
        }
        let log_level = match (args.quiet, args.verbose) {
            (true, _) => LevelFilter::ERROR,
            (false, 0) => LevelFilter::INFO,
            (false, 1) => LevelFilter::DEBUG,
            (false, _) => LevelFilter::TRACE,
        };
        let socket_mode = args.socket_mode.as_deref().map(parse_mode).transpose()?;
        let serve = ServeSettings {
            max_connections: count("max-connections", args.max_connections)?,
            handshake_timeout: seconds("handshake-timeout", args.handshake_timeout)?,
            request_timeout: seconds("request-timeout", args.request_timeout)?,
            shutdown_grace: seconds("shutdown-grace", args.shutdown_grace)?,
            allowed_uids: None,
            allowed_gids: None,
            blocking_threads: count("blocking-threads", args.blocking_threads)?,
            busy_poll: Duration::from_micros(args.busy_poll_us),
        };
        let backends = BackendSettings {
            sgio_timeout: seconds("sgio-timeout", args.sgio_timeout)?,
            allow_partitions: args.allow_partitions,
            multipath: !args.no_multipath,
            emulated_state_dir: args
                .emulated_state_dir
                .map(|dir| absolute_path("--emulated-state-dir", dir))
                .transpose()?,
            emulated_initiator: args.emulated_initiator,
        };
        Ok(Config {
            daemon: args.daemon,
            pidfile,
            socket,
            socket_given,
            socket_mode,
            socket_group: args
                .socket_group
                .as_deref()
                .map(IdSpec::parse)
                .transpose()?,
            user: args.user.as_deref().map(IdSpec::parse).transpose()?,
            group: args.group.as_deref().map(IdSpec::parse).transpose()?,
            allow_uids: args
                .allow_uid
                .iter()
                .map(|s| IdSpec::parse(s))
                .collect::<Result<_, _>>()?,
            allow_gids: args
                .allow_gid
                .iter()
                .map(|s| IdSpec::parse(s))
                .collect::<Result<_, _>>()?,
            log_level,
            trace,
            serve,
            backends,
            seccomp: args.seccomp,
            landlock: !args.no_landlock,
        })
    }
}

/// Longest accepted duration: the SG_IO timeout is a u32 of milliseconds.
const MAX_SECONDS: f64 = 86_400.0 * 30.0;

fn seconds(option: &'static str, value: f64) -> Result<Duration, ConfigError> {
    if !(value > 0.0 && value <= MAX_SECONDS) {
        return Err(ConfigError::Seconds { option, value });
    }
    Duration::try_from_secs_f64(value).map_err(|_| ConfigError::Seconds { option, value })
}

fn count(option: &'static str, value: usize) -> Result<usize, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Count { option, value });
    }
    Ok(value)
}

fn parse_mode(text: &str) -> Result<u32, ConfigError> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o777 && !digits.is_empty() => Ok(mode),
        _ => Err(ConfigError::SocketMode(text.to_owned())),
    }
}

/// Relative paths are taken from the current directory now: a daemon
/// changes to `/` when it detaches.
fn absolute_path(option: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        return Ok(path);
    }
    std::path::absolute(&path).map_err(|source| ConfigError::Absolutize {
        option,
        path,
        source,
    })
}

fn absolute(option: &'static str, path: &str) -> Result<PathBuf, ConfigError> {
    absolute_path(option, Path::new(path).to_path_buf())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn config(argv: &[&str]) -> Result<Config, ConfigError> {
        let args = Args::try_parse_from(std::iter::once("pr-helper").chain(argv.iter().copied()))
            .expect("arguments parse");
        Config::try_from(args)
    }

    #[test]
    fn defaults_match_qemu_pr_helper() {
        let config = config(&[]).unwrap();
        assert_eq!(config.socket, Path::new("/var/run/qemu-pr-helper.sock"));
        assert!(!config.socket_given);
        assert_eq!(config.pidfile, None);
        assert!(!config.daemon);
        assert_eq!(config.log_level, LevelFilter::INFO);
        assert_eq!(config.backends.sgio_timeout, Duration::from_secs(30));
        assert_eq!(config.serve.max_connections, 1024);
        assert!(!config.backends.allow_partitions);
        assert_eq!(config.backends.emulated_state_dir, None);
    }

    #[test]
    fn daemon_implies_default_pidfile() {
        let config = config(&["-d"]).unwrap();
        assert_eq!(
            config.pidfile.as_deref(),
            Some(Path::new("/var/run/qemu-pr-helper.pid"))
        );
        let config = super::tests::config(&["--daemon", "--pidfile", "/tmp/x.pid"]).unwrap();
        assert_eq!(config.pidfile.as_deref(), Some(Path::new("/tmp/x.pid")));
    }

    #[test]
    fn relative_socket_is_refused_with_the_fix() {
        let err = config(&["-k", "pr.sock"]).unwrap_err();
        assert!(matches!(err, ConfigError::NotAbsolute { option: "-k", .. }));
        assert!(err.to_string().contains("absolute"), "{err}");
    }

    #[test]
    fn relative_pidfile_is_made_absolute() {
        let config = config(&["-f", "x.pid"]).unwrap();
        let pidfile = config.pidfile.unwrap();
        assert!(pidfile.is_absolute());
        assert!(pidfile.ends_with("x.pid"));
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(config(&["-v"]).unwrap().log_level, LevelFilter::DEBUG);
        assert_eq!(config(&["-vv"]).unwrap().log_level, LevelFilter::TRACE);
        assert_eq!(
            config(&["-v", "-v", "-v"]).unwrap().log_level,
            LevelFilter::TRACE
        );
        assert_eq!(config(&["-q"]).unwrap().log_level, LevelFilter::ERROR);
        let both = Args::try_parse_from(["pr-helper", "-q", "-v"]);
        assert!(both.is_err());
    }

    #[test]
    fn users_and_groups_are_names_or_numbers() {
        let config = config(&["-u", "nobody", "-g", "65534", "--allow-uid", "107"]).unwrap();
        assert_eq!(config.user, Some(IdSpec::Name("nobody".into())));
        assert_eq!(config.group, Some(IdSpec::Id(65534)));
        assert_eq!(config.allow_uids, vec![IdSpec::Id(107)]);
        assert!(matches!(
            super::tests::config(&["-u", ""]),
            Err(ConfigError::EmptyName)
        ));
    }

    #[test]
    fn durations_must_be_positive_and_finite() {
        let ok = config(&["--sgio-timeout", "0.5", "--shutdown-grace", "2"]).unwrap();
        assert_eq!(ok.backends.sgio_timeout, Duration::from_millis(500));
        assert_eq!(ok.serve.shutdown_grace, Duration::from_secs(2));
        for bad in ["0", "-1", "NaN", "inf", "1e12"] {
            let arg = format!("--request-timeout={bad}");
            let err = config(&[arg.as_str()]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfigError::Seconds {
                        option: "request-timeout",
                        ..
                    }
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn counts_must_be_at_least_one() {
        let err = config(&["--max-connections", "0"]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Count {
                option: "max-connections",
                ..
            }
        ));
        let err = config(&["--blocking-threads", "0"]).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Count {
                option: "blocking-threads",
                ..
            }
        ));
    }

    #[test]
    fn socket_mode_is_octal() {
        assert_eq!(
            config(&["--socket-mode", "0660"]).unwrap().socket_mode,
            Some(0o660)
        );
        assert_eq!(
            config(&["--socket-mode", "600"]).unwrap().socket_mode,
            Some(0o600)
        );
        assert_eq!(
            config(&["--socket-mode", "0o700"]).unwrap().socket_mode,
            Some(0o700)
        );
        for bad in ["0999", "1777", "rw", ""] {
            assert!(matches!(
                config(&["--socket-mode", bad]),
                Err(ConfigError::SocketMode(_))
            ));
        }
    }

    #[test]
    fn trace_spec_parts() {
        let config = config(&["-T", "enable=pr_helper::serve*,file=/tmp/log", "-T", "*"]).unwrap();
        assert_eq!(config.trace.patterns, vec!["pr_helper::serve*", "*"]);
        assert_eq!(config.trace.file.as_deref(), Some(Path::new("/tmp/log")));
        let mut spec = TraceSpec::default();
        spec.add("events=ev.txt").unwrap();
        assert!(spec.events_files[0].is_absolute());
    }

    #[test]
    fn trace_patterns_map_to_directives() {
        assert_eq!(
            TraceSpec::directives_for("pr_helper::serve*"),
            vec!["pr_helper::serve=trace"]
        );
        assert_eq!(TraceSpec::directives_for("sg_io"), vec!["sg_io=trace"]);
        assert_eq!(
            TraceSpec::directives_for("pr_helper=debug"),
            vec!["pr_helper=debug"]
        );
        let all = TraceSpec::directives_for("*");
        assert!(all.contains(&"pr_helper=trace".to_owned()));
        assert!(all.contains(&"sg_io=trace".to_owned()));
    }

    #[test]
    fn long_options_reach_serve_settings() {
        let config = config(&[
            "--allow-partitions",
            "--emulated-state-dir",
            "/var/lib/pr",
            "--blocking-threads",
            "8",
            "--max-connections",
            "10",
            "--handshake-timeout",
            "3",
        ])
        .unwrap();
        assert!(config.backends.allow_partitions);
        assert_eq!(
            config.backends.emulated_state_dir.as_deref(),
            Some(Path::new("/var/lib/pr"))
        );
        assert_eq!(config.serve.blocking_threads, 8);
        assert_eq!(config.serve.max_connections, 10);
        assert_eq!(config.serve.handshake_timeout, Duration::from_secs(3));
    }
}

//! `pr-replay`: sends a fixed stream of PR requests to a helper socket, one
//! descriptor with each, and prints every reply's bytes in hex, one line per
//! request. Run against two helpers, the outputs can be compared with `diff`.
//!
//! usage: pr-replay [--absolute-generation] SOCKET STREAM_FILE
//!
//! Stream file, one request per line (`#` starts a comment):
//!     NAME MODE DEVICE CDB_HEX [PARAMETER_LIST_HEX]
//! MODE is `rw` or `ro` (how DEVICE is opened) or `none` (no descriptor is
//! sent: a protocol violation). The CDB is zero-padded to 16 bytes.
//!
//! Output, one line per request:
//!     NAME reply <status> <size> <sense, 96 bytes> <payload>   (hex)
//!     NAME closed                                               (peer closed)
//! After `closed` the next request opens a new connection.
//!
//! The persistent-reservation generation counter never goes back, so two
//! runs on one device see different values. Unless `--absolute-generation`
//! is given, the generation in READ KEYS, READ RESERVATION and READ FULL
//! STATUS payloads is printed as `g+N`, relative to the first one seen.
#![forbid(unsafe_code)]

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use vm_tests::hex::{encode_hex, parse_hex};
use vm_tests::wire::{self, CDB_SIZE, Reply, WireError, read_reply, send_request};

const PR_IN: u8 = 0x5e;

#[derive(Debug, thiserror::Error)]
enum ReplayError {
    #[error("usage: pr-replay [--absolute-generation] SOCKET STREAM_FILE")]
    Usage,
    #[error("reading stream file {path}")]
    ReadStream {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("stream line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("opening {device}")]
    OpenDevice {
        device: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: WireError,
    },
    #[error("writing to stdout")]
    Output(#[source] io::Error),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    ReadWrite,
    ReadOnly,
    NoDescriptor,
}

struct Step {
    name: String,
    mode: OpenMode,
    device: String,
    cdb: [u8; CDB_SIZE],
    parameters: Vec<u8>,
}

fn parse_stream(text: &str) -> Result<Vec<Step>, ReplayError> {
    let mut steps = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let bad = |reason: &str| ReplayError::BadLine {
            line: index + 1,
            reason: reason.to_owned(),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, mode, device, cdb_hex, rest @ ..] = fields.as_slice() else {
            return Err(bad("want NAME MODE DEVICE CDB_HEX [PARAMETER_LIST_HEX]"));
        };
        let mode = match *mode {
            "rw" => OpenMode::ReadWrite,
            "ro" => OpenMode::ReadOnly,
            "none" => OpenMode::NoDescriptor,
            _ => return Err(bad("MODE must be rw, ro or none")),
        };
        let cdb_bytes = parse_hex(cdb_hex).ok_or_else(|| bad("CDB is not hex"))?;
        if cdb_bytes.is_empty() || cdb_bytes.len() > CDB_SIZE {
            return Err(bad("CDB must be 1 to 16 bytes"));
        }
        let mut cdb = [0u8; CDB_SIZE];
        cdb[..cdb_bytes.len()].copy_from_slice(&cdb_bytes);
        let parameters = match rest {
            [] => Vec::new(),
            [hex] => parse_hex(hex).ok_or_else(|| bad("parameter list is not hex"))?,
            _ => return Err(bad("too many fields")),
        };
        steps.push(Step {
            name: (*name).to_owned(),
            mode,
            device: (*device).to_owned(),
            cdb,
            parameters,
        });
    }
    Ok(steps)
}

fn connect(path: &Path) -> Result<UnixStream, ReplayError> {
    wire::connect(path).map_err(|source| ReplayError::Connect {
        path: path.to_path_buf(),
        source,
    })
}

fn open_descriptor(step: &Step) -> Result<Option<OwnedFd>, ReplayError> {
    let mut options = OpenOptions::new();
    match step.mode {
        OpenMode::NoDescriptor => return Ok(None),
        OpenMode::ReadOnly => options.read(true),
        OpenMode::ReadWrite => options.read(true).write(true),
    };
    let file = options
        .open(&step.device)
        .map_err(|source| ReplayError::OpenDevice {
            device: step.device.clone(),
            source,
        })?;
    Ok(Some(file.into()))
}

/// What came back for one request.
enum Outcome {
    Reply(Reply),
    /// The peer closed the connection (or any other transport failure).
    Closed,
}

fn exchange(stream: &mut UnixStream, step: &Step, fd: Option<&OwnedFd>) -> Outcome {
    let sent = send_request(stream, &step.cdb, fd.map(AsFd::as_fd), &step.parameters);
    match sent.and_then(|()| read_reply(stream)) {
        Ok(reply) => Outcome::Reply(reply),
        Err(_) => Outcome::Closed,
    }
}

/// Service actions whose payload starts with the PR generation.
fn has_generation(cdb: &[u8; CDB_SIZE]) -> bool {
    cdb[0] == PR_IN && matches!(cdb[1] & 0x1f, 0x00 | 0x01 | 0x03)
}

fn render_payload(step: &Step, payload: &[u8], base: &mut Option<u32>, relative: bool) -> String {
    match payload {
        [a, b, c, d, rest @ ..] if relative && has_generation(&step.cdb) => {
            let generation = u32::from_be_bytes([*a, *b, *c, *d]);
            let first = *base.get_or_insert(generation);
            format!("g+{}:{}", generation.wrapping_sub(first), encode_hex(rest))
        }
        _ => encode_hex(payload),
    }
}

fn run(args: &[String]) -> Result<(), ReplayError> {
    let (relative, positional) = match args {
        [flag, rest @ ..] if flag == "--absolute-generation" => (false, rest),
        rest => (true, rest),
    };
    let [socket, stream_file] = positional else {
        return Err(ReplayError::Usage);
    };
    let socket = PathBuf::from(socket);
    let text = std::fs::read_to_string(stream_file).map_err(|source| ReplayError::ReadStream {
        path: PathBuf::from(stream_file),
        source,
    })?;
    let steps = parse_stream(&text)?;

    let mut out = io::stdout().lock();
    let mut connection: Option<UnixStream> = None;
    let mut base_generation = None;
    for step in &steps {
        let fd = open_descriptor(step)?;
        let stream = match connection.as_mut() {
            Some(stream) => stream,
            None => connection.insert(connect(&socket)?),
        };
        let line = match exchange(stream, step, fd.as_ref()) {
            Outcome::Reply(Reply { header, payload }) => format!(
                "{} reply {} {} {} {}",
                step.name,
                encode_hex(&header[0..4]),
                encode_hex(&header[4..8]),
                encode_hex(&header[8..]),
                render_payload(step, &payload, &mut base_generation, relative)
            ),
            Outcome::Closed => {
                connection = None;
                format!("{} closed", step.name)
            }
        };
        writeln!(out, "{line}").map_err(ReplayError::Output)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("pr-replay: {}", vm_tests::error_chain(&error));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_parse_with_comments_and_padding() {
        let steps = parse_stream(
            "# a comment\n\
             keys rw /dev/null 5e000000000000200000   # trailing comment\n\
             \n\
             register ro /dev/sda 5f000000000000001800 00112233\n\
             bare none /dev/sda 5e\n",
        )
        .unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0].name, "keys");
        assert_eq!(steps[0].cdb[..10], [0x5e, 0, 0, 0, 0, 0, 0, 0x20, 0, 0]);
        assert_eq!(steps[0].cdb[10..], [0; 6]);
        assert!(steps[1].mode == OpenMode::ReadOnly);
        assert_eq!(steps[1].parameters, vec![0x00, 0x11, 0x22, 0x33]);
        assert!(steps[2].mode == OpenMode::NoDescriptor);
    }

    #[test]
    fn bad_stream_lines_name_their_line() {
        for (text, reason) in [
            ("x rw /dev/null", "want NAME MODE"),
            ("x wo /dev/null 5e", "MODE"),
            ("x rw /dev/null 5g", "not hex"),
            (
                "x rw /dev/null 5e000000000000000000000000000000ff",
                "1 to 16",
            ),
            ("x rw /dev/null 5e 00 11", "too many"),
        ] {
            let error = parse_stream(&format!("# first\n{text}\n")).err().unwrap();
            let message = error.to_string();
            assert!(message.starts_with("stream line 2:"), "{message}");
            assert!(message.contains(reason), "{message} lacks {reason}");
        }
    }

    #[test]
    fn generation_is_printed_relative_to_the_first_one() {
        let steps = parse_stream(
            "keys rw /dev/null 5e000000000000200000\n\
             caps rw /dev/null 5e020000000000200000\n",
        )
        .unwrap();
        let mut base = None;
        let first = render_payload(&steps[0], &[0, 0, 0, 7, 0, 0, 0, 0], &mut base, true);
        let later = render_payload(&steps[0], &[0, 0, 0, 9, 0, 0, 0, 8], &mut base, true);
        assert_eq!(first, "g+0:00000000");
        assert_eq!(later, "g+2:00000008");
        // REPORT CAPABILITIES has no generation: printed as is.
        let caps = render_payload(&steps[1], &[0, 8, 0x1d, 0x90], &mut base, true);
        assert_eq!(caps, "00081d90");
        let absolute = render_payload(&steps[0], &[0, 0, 0, 9], &mut None, false);
        assert_eq!(absolute, "00000009");
    }
}

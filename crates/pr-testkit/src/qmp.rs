//! A QMP session with a running QEMU: capabilities negotiated, commands run
//! one at a time, asynchronous events kept aside.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// Bounds every QMP read so a wedged QEMU fails the test instead of hanging
/// it. Measures nothing.
const QMP_IO_LIMIT: Duration = Duration::from_secs(60);

/// One QMP connection.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// Events received while waiting for replies, in order.
    pub events: Vec<Value>,
}

impl Qmp {
    /// Connects, checks the greeting and runs `qmp_capabilities`.
    pub fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(QMP_IO_LIMIT))?;
        let writer = stream.try_clone()?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
            events: Vec::new(),
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(io::Error::other(format!("not a QMP greeting: {greeting}")));
        }
        qmp.execute("qmp_capabilities", None)
            .map_err(|error| io::Error::other(format!("qmp_capabilities refused: {error}")))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_str(&line).map_err(|error| io::Error::other(format!("{error}: {line}")))
    }

    /// Runs a command: `Ok(return value)` or `Err(error object)`. Panics
    /// when QEMU does not answer (a test failure, with the cause).
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, Value> {
        let mut message = json!({ "execute": command });
        if let Some(arguments) = arguments {
            message["arguments"] = arguments;
        }
        let text = format!("{message}\n");
        self.writer
            .write_all(text.as_bytes())
            .unwrap_or_else(|error| panic!("QMP write of {command}: {error}"));
        loop {
            let reply = self
                .read_message()
                .unwrap_or_else(|error| panic!("QMP reply to {command}: {error}"));
            if let Some(value) = reply.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = reply.get("error") {
                return Err(error.clone());
            }
            if reply.get("event").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// `query-pr-managers` as `(id, connected)` pairs, sorted by id.
    pub fn pr_managers(&mut self) -> Vec<(String, bool)> {
        let list = self
            .execute("query-pr-managers", None)
            .unwrap_or_else(|error| panic!("query-pr-managers refused: {error}"));
        let mut managers: Vec<(String, bool)> = list
            .as_array()
            .unwrap_or_else(|| panic!("query-pr-managers returned {list}"))
            .iter()
            .map(|entry| {
                (
                    entry["id"].as_str().unwrap_or_default().to_owned(),
                    entry["connected"].as_bool().unwrap_or(false),
                )
            })
            .collect();
        managers.sort();
        managers
    }

    /// `object-add` of a `pr-manager-helper` on `socket` (what libvirt
    /// does when a disk with reservations is hot-plugged).
    pub fn add_pr_manager(&mut self, id: &str, socket: &Path) -> Result<Value, Value> {
        self.execute(
            "object-add",
            Some(json!({
                "qom-type": "pr-manager-helper",
                "id": id,
                "path": socket.display().to_string(),
            })),
        )
    }
}

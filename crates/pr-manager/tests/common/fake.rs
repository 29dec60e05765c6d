//! A scripted helper on a real Unix socket: speaks the protocol, answers
//! every request with what a handler returns (PR IN data truncated to the
//! allocation length, as a device does) and records the CDBs it received.
//! Used where the payload must be exact: decoders and golden output.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the fake answers: status, sense (up to 96 bytes), PR IN data.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub status: u8,
    pub sense: Vec<u8>,
    pub data: Vec<u8>,
    /// Send these bytes instead of a well-formed reply, then close.
    pub raw: Option<Vec<u8>>,
    /// Close the connection after this reply.
    pub close_after: bool,
}

impl Answer {
    pub fn good(data: Vec<u8>) -> Self {
        Self {
            data,
            ..Self::default()
        }
    }

    pub fn check_condition(key: u8, asc: u8, ascq: u8) -> Self {
        let mut sense = vec![0u8; 18];
        sense[0] = 0x70;
        sense[2] = key;
        sense[7] = 10;
        sense[12] = asc;
        sense[13] = ascq;
        Self {
            status: 0x02,
            sense,
            data: Vec::new(),
            raw: None,
            close_after: false,
        }
    }

    /// Close the connection without answering.
    pub fn hang_up() -> Self {
        Self::raw(Vec::new())
    }

    /// Answer with exactly these bytes, then close the connection.
    pub fn raw(bytes: Vec<u8>) -> Self {
        Self {
            raw: Some(bytes),
            ..Self::default()
        }
    }

    pub fn status(status: u8) -> Self {
        Self {
            status,
            ..Self::default()
        }
    }
}

type Handler = dyn Fn(&[u8; 16], &[u8]) -> Answer + Send + Sync;

/// The fake helper; it serves until the test process ends.
pub struct FakeHelper {
    path: PathBuf,
    seen: Arc<Mutex<Vec<[u8; 16]>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    _dir: tempfile::TempDir,
}

impl FakeHelper {
    pub fn start(handler: impl Fn(&[u8; 16], &[u8]) -> Answer + Send + Sync + 'static) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).expect("bind the fake helper");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen_by_server = Arc::clone(&seen);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&connections);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let handler = Arc::clone(&handler);
                let seen = Arc::clone(&seen_by_server);
                thread::spawn(move || serve(stream, &*handler, &seen));
            }
        });
        Self {
            path,
            seen,
            connections,
            _dir: dir,
        }
    }

    /// Answers every command with `answer`.
    pub fn answering(answer: Answer) -> Self {
        Self::start(move |_, _| answer.clone())
    }

    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The CDBs received so far, in order.
    pub fn seen(&self) -> Vec<[u8; 16]> {
        self.seen.lock().expect("lock").clone()
    }
}

fn serve(mut stream: UnixStream, handler: &Handler, seen: &Mutex<Vec<[u8; 16]>>) {
    let mut word = [0u8; 4];
    if stream.write_all(&[0; 4]).is_err() || stream.read_exact(&mut word).is_err() {
        return;
    }
    loop {
        // Plain reads: the kernel closes the descriptor that came along.
        let mut cdb = [0u8; 16];
        if stream.read_exact(&mut cdb).is_err() {
            return;
        }
        let length = usize::from(u16::from_be_bytes([cdb[7], cdb[8]]));
        let mut params = vec![0u8; if cdb[0] == 0x5F { length } else { 0 }];
        if stream.read_exact(&mut params).is_err() {
            return;
        }
        seen.lock().expect("lock").push(cdb);
        let mut answer = handler(&cdb, &params);
        if let Some(raw) = answer.raw.take() {
            let _ = stream.write_all(&raw);
            return;
        }
        if cdb[0] != 0x5E || answer.status != 0 {
            answer.data.clear();
        }
        answer.data.truncate(length);
        let mut reply = Vec::with_capacity(104 + answer.data.len());
        reply.extend_from_slice(&i32::from(answer.status).to_be_bytes());
        let size = i32::try_from(answer.data.len()).expect("size fits");
        reply.extend_from_slice(&size.to_be_bytes());
        let mut sense = [0u8; 96];
        let n = answer.sense.len().min(96);
        sense[..n].copy_from_slice(&answer.sense[..n]);
        reply.extend_from_slice(&sense);
        reply.extend_from_slice(&answer.data);
        if stream.write_all(&reply).is_err() || answer.close_after {
            return;
        }
    }
}

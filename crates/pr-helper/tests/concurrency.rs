//! Many clients in parallel: every reply belongs to its own request, and the daemon
//! keeps no descriptor once they are gone.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::thread;

use pr_testkit::checks::{idle_fd_baseline, wait_for_fd_count};
use pr_testkit::{Daemon, DaemonOptions, cdb, descriptors};

const CLIENTS: usize = 16;
const ROUNDS: usize = 60;

/// Three requests whose answers differ, so a reply delivered to the wrong request (or
/// the wrong connection) is noticed.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// PR IN on a regular file: 0B/00/06.
    ReadKeys,
    /// PR OUT on a read-only descriptor: 05/20/00.
    ReadOnlyOut,
    /// PR OUT with non-zero cdb[5..7]: 05/24/00.
    HighLengthBytes,
}

impl Kind {
    fn expected(self) -> (u8, u8, u8) {
        match self {
            Kind::ReadKeys => (0x0b, 0x00, 0x06),
            Kind::ReadOnlyOut => (0x05, 0x20, 0x00),
            Kind::HighLengthBytes => (0x05, 0x24, 0x00),
        }
    }
}

#[test]
fn parallel_clients_get_their_own_replies() {
    let daemon = Arc::new(
        Daemon::start_with(DaemonOptions::new(env!("CARGO_BIN_EXE_pr-helper")))
            .expect("daemon starts"),
    );
    let baseline = idle_fd_baseline(&daemon).expect("baseline");
    let workers: Vec<_> = (0..CLIENTS)
        .map(|worker| {
            let daemon = Arc::clone(&daemon);
            thread::spawn(move || {
                let file = descriptors::regular_file(4096).expect("file");
                let (read_only, _backing) = descriptors::read_only_file().expect("read-only");
                let mut client = daemon.client().expect("client");
                let params = cdb::register_params(worker as u64);
                for round in 0..ROUNDS {
                    let kind = match (worker + round) % 3 {
                        0 => Kind::ReadKeys,
                        1 => Kind::ReadOnlyOut,
                        _ => Kind::HighLengthBytes,
                    };
                    let response = match kind {
                        Kind::ReadKeys => {
                            client.call(&cdb::read_keys(64), file.as_file().as_fd(), &[])
                        }
                        Kind::ReadOnlyOut => {
                            client.call(&cdb::register(24), read_only.as_fd(), &params)
                        }
                        Kind::HighLengthBytes => {
                            let mut command = cdb::register(24);
                            command[6] = 1;
                            client.call(&command, file.as_file().as_fd(), &params)
                        }
                    }
                    .expect("answered");
                    let (key, asc, ascq) = kind.expected();
                    assert!(
                        response.is_check_condition(key, asc, ascq),
                        "worker {worker} round {round} {kind:?}: {response:?}"
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    wait_for_fd_count(daemon.pid(), baseline).expect("baseline");
    assert!(daemon.log_text().matches("connection opened").count() > CLIENTS);
}

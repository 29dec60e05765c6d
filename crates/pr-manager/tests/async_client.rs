//! The async front end (feature `async`) against both real helpers, plus
//! cancellation against the scripted helper.
#![cfg(feature = "async")]

mod common;

use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use common::fake::{Answer, FakeHelper};
use common::{Helper, Peer, read_keys_cdb, register_cdb, regular_file};
use pr_manager::{AsyncClient, Config, DataTransfer, StatusEvent};
use scsi::sense::Sense;

fn config(socket: impl Into<std::path::PathBuf>) -> Config {
    let mut config = Config::new(socket);
    config.idle_watch_interval = Some(Duration::from_millis(50));
    config
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn replies_decode_to_words(peer: Peer) {
    let helper = Helper::start(peer);
    let file = regular_file();
    let read_only = File::open(file.path()).expect("read-only");
    runtime().block_on(async {
        let client = AsyncClient::new(config(helper.socket()));
        let mut buf = [0u8; 40];
        let reply = client
            .execute(
                &read_keys_cdb(40),
                file.as_file().as_fd(),
                DataTransfer::FromDevice(&mut buf),
            )
            .await
            .expect("valid");
        assert!(reply.failure.is_none(), "{:?}", reply.failure);
        assert_eq!(reply.decoded_sense(), Some(Sense::IO_ERROR));
        assert_eq!(reply.residual, 40);
        let (cdb, params) = register_cdb(9);
        let reply = client
            .execute(&cdb, read_only.as_fd(), DataTransfer::ToDevice(&params))
            .await
            .expect("valid");
        assert_eq!(reply.decoded_sense(), Some(Sense::INVALID_OPCODE));
        assert!(client.is_connected());
    });
}

/// 16 tasks × 1000 commands, PR IN and PR OUT interleaved; each reply must
/// be the one its own request gets.
fn concurrent_tasks(peer: Peer) {
    let helper = Helper::start(peer);
    let file = Arc::new(regular_file());
    let read_only = Arc::new(File::open(file.path()).expect("read-only"));
    let done: usize = runtime().block_on(async {
        let client = AsyncClient::new(config(helper.socket()));
        let tasks: Vec<_> = (0..16usize)
            .map(|t| {
                let (client, file, read_only) =
                    (client.clone(), Arc::clone(&file), Arc::clone(&read_only));
                tokio::spawn(async move {
                    for i in 0..1000usize {
                        if (t + i) % 2 == 0 {
                            let mut buf = [0u8; 64];
                            let reply = client
                                .execute(
                                    &read_keys_cdb(64),
                                    file.as_file().as_fd(),
                                    DataTransfer::FromDevice(&mut buf),
                                )
                                .await
                                .expect("valid");
                            assert_eq!(reply.decoded_sense(), Some(Sense::IO_ERROR));
                        } else {
                            let (cdb, params) = register_cdb(i as u64);
                            let reply = client
                                .execute(&cdb, read_only.as_fd(), DataTransfer::ToDevice(&params))
                                .await
                                .expect("valid");
                            assert_eq!(reply.decoded_sense(), Some(Sense::INVALID_OPCODE));
                        }
                    }
                    1000usize
                })
            })
            .collect();
        let mut done = 0;
        for task in tasks {
            done += task.await.expect("task");
        }
        done
    });
    assert_eq!(done, 16_000);
}

fn idle_notice_and_reconnect(peer: Peer) {
    let mut helper = Helper::start(peer);
    let file = regular_file();
    let rt = runtime();
    let mut cfg = config(helper.socket());
    cfg.connect_attempts = 40;
    cfg.retry_interval = Duration::from_millis(250);
    let client = rt.block_on(async { AsyncClient::new(cfg) });
    let events = client.subscribe();
    let run = |client: &AsyncClient| {
        rt.block_on(async {
            let mut buf = [0u8; 8];
            client
                .execute(
                    &read_keys_cdb(8),
                    file.as_file().as_fd(),
                    DataTransfer::FromDevice(&mut buf),
                )
                .await
                .expect("valid")
        })
    };
    assert!(run(&client).failure.is_none());
    let guard = Duration::from_secs(120);
    assert_eq!(events.recv_timeout(guard), Ok(StatusEvent::Connected));
    helper.stop();
    assert!(matches!(
        events.recv_timeout(guard),
        Ok(StatusEvent::Disconnected { .. })
    ));
    helper.restart();
    let reply = run(&client);
    assert!(reply.failure.is_none(), "{:?}", reply.failure);
    assert_eq!(events.recv_timeout(guard), Ok(StatusEvent::Connected));
}

#[test]
fn ours_replies_decode_to_words() {
    replies_decode_to_words(Peer::Ours);
}

#[test]
fn debian_replies_decode_to_words() {
    replies_decode_to_words(Peer::Debian);
}

#[test]
fn ours_concurrent_tasks() {
    concurrent_tasks(Peer::Ours);
}

#[test]
fn debian_concurrent_tasks() {
    concurrent_tasks(Peer::Debian);
}

#[test]
fn ours_idle_notice_and_reconnect() {
    idle_notice_and_reconnect(Peer::Ours);
}

#[test]
fn debian_idle_notice_and_reconnect() {
    idle_notice_and_reconnect(Peer::Debian);
}

/// A command dropped mid-flight must not leave its reply to the next one:
/// the connection it used is closed, not returned to the pool.
#[test]
fn cancelled_command_does_not_desynchronise_the_pool() {
    // Allocation length 99 is answered slowly; everything else at once,
    // with as many payload bytes as were asked for.
    let fake = FakeHelper::start(|cdb, _| {
        let alloc = usize::from(u16::from_be_bytes([cdb[7], cdb[8]]));
        if alloc == 99 {
            std::thread::sleep(Duration::from_millis(500));
        }
        let mut data = vec![0u8; 8];
        data[7] = 0xFF; // Additional length larger than any allocation here.
        data.resize(alloc.max(8), 0xAA);
        Answer::good(data)
    });
    let file = regular_file();
    runtime().block_on(async {
        let mut cfg = config(fake.socket());
        cfg.max_connections = 1;
        let client = AsyncClient::new(cfg);
        let mut slow = [0u8; 99];
        let _ = tokio::time::timeout(
            Duration::from_millis(50),
            client.execute(
                &read_keys_cdb(99),
                file.as_file().as_fd(),
                DataTransfer::FromDevice(&mut slow),
            ),
        )
        .await;
        let mut buf = [0u8; 20];
        let reply = client
            .execute(
                &read_keys_cdb(20),
                file.as_file().as_fd(),
                DataTransfer::FromDevice(&mut buf),
            )
            .await
            .expect("valid");
        assert!(reply.is_good(), "{:?}", reply.failure);
        assert_eq!(
            reply.data_len, 20,
            "the reply to this request, not the slow one"
        );
    });
}

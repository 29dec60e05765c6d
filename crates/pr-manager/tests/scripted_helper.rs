//! Against a scripted helper on a real socket. The typed API end to end:
//! payloads built with the `scsi` encoders (what a real device sends),
//! whole and truncated, are decoded into the `scsi::pr` types; PR OUT lists
//! reach the peer intact; link failures after the CDB is sent.

mod common;

use std::os::fd::AsFd;

use common::fake::{Answer, FakeHelper};
use pr_manager::{
    Client, Config, DataTransfer, Error, PrInAction, PrInData, PrOutCommand, RegisterOptions,
    ReservationType, TransportId, decode_pr_in,
};
use scsi::pr::{
    FullStatus, FullStatusDescriptor, PrOutParams, ReadKeys, ReadReservation, ReportCapabilities,
    Reservation, Scope, ScopeType, TypeMask,
};
use scsi::sense::Sense;
use scsi::status::Status;

fn client(fake: &FakeHelper) -> Client {
    let mut config = Config::new(fake.socket());
    config.connect_attempts = 1;
    Client::new(config)
}

fn sample_keys() -> ReadKeys {
    ReadKeys {
        generation: 7,
        keys: vec![0x1111, 0x2222_0000_0000_0001, 0xFFFF_FFFF_FFFF_FFFF],
    }
}

fn sample_reservation() -> ReadReservation {
    ReadReservation {
        generation: 9,
        reservation: Some(Reservation {
            key: 0xABCD,
            scope_type: ScopeType::new(
                Scope::LogicalUnit,
                Some(ReservationType::ExclusiveAccessRegistrantsOnly),
            ),
        }),
    }
}

fn sample_capabilities() -> ReportCapabilities {
    ReportCapabilities {
        crh: true,
        sip_c: true,
        atp_c: true,
        ptpl_c: true,
        tmv: true,
        allow_commands: 1,
        ptpl_a: false,
        type_mask: TypeMask::ALL,
        ..ReportCapabilities::default()
    }
}

fn sample_full_status() -> FullStatus {
    FullStatus {
        generation: 3,
        descriptors: vec![
            FullStatusDescriptor {
                reservation_key: 0xAA,
                all_tg_pt: false,
                r_holder: true,
                scope_type: ScopeType::new(
                    Scope::LogicalUnit,
                    Some(ReservationType::WriteExclusive),
                ),
                relative_target_port: 1,
                transport_id: TransportId::Iscsi {
                    name: "iqn.2026-11.example:host-a".into(),
                    isid: Some("23d000000".into()),
                },
            },
            FullStatusDescriptor {
                reservation_key: 0xBB,
                all_tg_pt: true,
                r_holder: false,
                scope_type: ScopeType(0),
                relative_target_port: 2,
                transport_id: TransportId::Sas {
                    address: 0x5000_1234_5678_9ABC,
                },
            },
        ],
    }
}

/// The four payloads, keyed by service action.
fn payload(action: PrInAction) -> Vec<u8> {
    match action {
        PrInAction::ReadKeys => sample_keys().encode().expect("encode"),
        PrInAction::ReadReservation => sample_reservation().encode(),
        PrInAction::ReportCapabilities => sample_capabilities().encode().to_vec(),
        PrInAction::ReadFullStatus => sample_full_status().encode().expect("encode"),
    }
}

fn serving_payloads() -> FakeHelper {
    FakeHelper::start(|cdb, _| {
        let action = PrInAction::from_code(cdb[1] & 0x1f).expect("known action");
        Answer::good(payload(action))
    })
}

#[test]
fn whole_payloads_decode_through_the_typed_api() {
    let fake = serving_payloads();
    let client = client(&fake);
    let file = tempfile::tempfile().expect("file");
    let fd = file.as_fd();
    let keys = client.read_keys(fd).expect("read keys");
    assert_eq!(keys.value, sample_keys());
    assert!(!keys.truncated);
    assert_eq!(
        client.read_reservation(fd).expect("rr").value,
        sample_reservation()
    );
    assert_eq!(
        client.report_capabilities(fd).expect("rc").value,
        sample_capabilities()
    );
    let full = client.read_full_status(fd).expect("rfs");
    assert_eq!(full.value, sample_full_status());
    assert!(!full.truncated);
    // The typed API asks for the protocol's maximum.
    assert!(
        fake.seen()
            .iter()
            .all(|cdb| cdb[7..9] == 8192u16.to_be_bytes())
    );
}

#[test]
fn every_truncation_decodes_or_errs_without_panic() {
    for action in PrInAction::ALL {
        let whole = payload(action);
        for len in 0..=whole.len() {
            match decode_pr_in(action, &whole[..len]) {
                Ok(data) => {
                    let truncated = match &data {
                        PrInData::Keys(d) => d.truncated,
                        PrInData::Reservation(d) => d.truncated,
                        PrInData::Capabilities(d) => d.truncated,
                        PrInData::FullStatus(d) => d.truncated,
                    };
                    assert_eq!(truncated, len < whole.len(), "{action} at {len}");
                }
                // Shorter than a header: a typed error, never a panic.
                Err(Error::Decode(_)) => assert!(len < 8, "{action} refused at {len}"),
                Err(other) => panic!("{action} at {len}: {other}"),
            }
        }
    }
}

#[test]
fn short_allocation_length_truncates_on_the_wire() {
    let fake = serving_payloads();
    let client = client(&fake);
    let file = tempfile::tempfile().expect("file");
    // READ KEYS with room for the header and one key only.
    let mut buf = [0u8; 16];
    let cdb = pr_manager::pr_in_command(PrInAction::ReadKeys, 16);
    let reply = client
        .execute(&cdb, file.as_fd(), DataTransfer::FromDevice(&mut buf))
        .expect("valid");
    assert!(reply.is_good());
    assert_eq!(reply.data_len, 16);
    assert_eq!(reply.residual, 0);
    let PrInData::Keys(keys) = decode_pr_in(PrInAction::ReadKeys, &buf).expect("decode") else {
        panic!("keys");
    };
    assert!(keys.truncated);
    assert_eq!(keys.value.keys, vec![0x1111]);
    assert_eq!(keys.advertised_len, 32);
}

#[test]
fn allocation_length_above_8192_is_clamped_in_the_cdb_sent() {
    let fake = serving_payloads();
    let client = client(&fake);
    let file = tempfile::tempfile().expect("file");
    let mut buf = vec![0u8; 16384];
    let cdb = pr_manager::pr_in_command(PrInAction::ReadKeys, 16384);
    let reply = client
        .execute(&cdb, file.as_fd(), DataTransfer::FromDevice(&mut buf))
        .expect("clamped, not refused");
    assert!(reply.is_good());
    assert_eq!(reply.data_len, 32);
    assert_eq!(reply.residual, 16384 - 32);
    assert_eq!(fake.seen()[0][7..9], 8192u16.to_be_bytes());
}

#[test]
fn pr_out_lists_reach_the_peer_and_errors_are_typed() {
    let fake = FakeHelper::start(|cdb, params| {
        // Echo check: a REGISTER whose list decodes answers GOOD, a RESERVE
        // answers RESERVATION CONFLICT, anything else a CHECK CONDITION.
        match cdb[1] {
            0x00 if PrOutParams::decode(params).is_ok() => Answer::status(0),
            0x01 => Answer::status(0x18),
            _ => Answer::check_condition(0x05, 0x24, 0x00),
        }
    });
    let client = client(&fake);
    let file = tempfile::tempfile().expect("file");
    let fd = file.as_fd();
    let options = RegisterOptions {
        aptpl: true,
        all_tg_pt: true,
        transport_ids: vec![TransportId::FibreChannel {
            n_port_name: 0x2100_0024_FF00_0001,
        }],
    };
    client.register(fd, 0, 0x42, options).expect("register");
    let conflict = client
        .reserve(fd, 0x42, ReservationType::WriteExclusive)
        .expect_err("conflict");
    assert!(conflict.is_reservation_conflict(), "{conflict}");
    assert_eq!(conflict.to_string(), "command failed: RESERVATION CONFLICT");
    match client.clear(fd, 0x42) {
        Err(Error::Scsi(e)) => {
            assert_eq!(e.status, Status::CHECK_CONDITION);
            assert_eq!(e.sense, Some(Sense::INVALID_FIELD));
        }
        other => panic!("expected CHECK CONDITION, got {other:?}"),
    }
    let seen = fake.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1][2] & 0x0f, ReservationType::WriteExclusive.code());
    let (cdb, _) = PrOutCommand::clear(0x42).encode().expect("encode");
    assert_eq!(seen[2][..10], cdb);
}

/// After the CDB is sent, a helper that hangs up or answers garbage fails
/// that command with 0B/08/00 (cause kept), and the next command reconnects.
#[test]
fn failure_after_sending_is_0b_08_00_and_the_next_command_reconnects() {
    use pr_manager::ProtocolError;

    // Allocation 77: hang up. Allocation 78: a payload with CHECK CONDITION
    // (malformed). Anything else: eight bytes of READ KEYS header.
    let fake = FakeHelper::start(|cdb, _| match cdb[8] {
        77 => Answer::hang_up(),
        78 => {
            let mut raw = Vec::new();
            raw.extend_from_slice(&2i32.to_be_bytes());
            raw.extend_from_slice(&8i32.to_be_bytes());
            raw.extend_from_slice(&[0u8; 96 + 8]);
            Answer::raw(raw)
        }
        _ => Answer::good(vec![0; 8]),
    });
    let client = client(&fake);
    let events = client.subscribe();
    let file = tempfile::tempfile().expect("file");
    let run = |alloc: u16| {
        let mut buf = vec![0u8; usize::from(alloc)];
        client
            .execute(
                &pr_manager::pr_in_command(PrInAction::ReadKeys, alloc),
                file.as_fd(),
                DataTransfer::FromDevice(&mut buf),
            )
            .expect("valid")
    };
    assert!(run(8).is_good());
    assert!(client.is_connected());

    let hung_up = run(77);
    assert_eq!(hung_up.status, Status::CHECK_CONDITION);
    assert_eq!(hung_up.decoded_sense(), Some(Sense::LUN_COMM_FAILURE));
    assert!(matches!(
        hung_up.failure,
        Some(Error::Protocol(ProtocolError::PeerClosed {
            received: 0,
            expected: 104
        }))
    ));
    assert!(!client.is_connected());

    assert!(run(8).is_good(), "the next command reconnects");
    assert!(client.is_connected());

    let garbled = run(78);
    assert_eq!(garbled.decoded_sense(), Some(Sense::LUN_COMM_FAILURE));
    assert!(matches!(
        garbled.failure,
        Some(Error::Protocol(ProtocolError::MalformedReply(_)))
    ));
    assert!(run(8).is_good());

    let seen: Vec<_> = events.try_iter().collect();
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, pr_manager::StatusEvent::Connected))
            .count(),
        3,
        "{seen:?}"
    );
}

/// A helper that closes one idle connection but is still there is not
/// reported as gone: the watcher reaps the connection, probes the socket
/// with a fresh connection and keeps the status.
#[test]
fn idle_connection_closed_by_a_live_helper_keeps_the_status() {
    let fake = FakeHelper::start(|_, _| Answer {
        close_after: true,
        ..Answer::good(vec![0; 8])
    });
    let mut config = Config::new(fake.socket());
    config.idle_watch_interval = Some(std::time::Duration::from_millis(20));
    let client = Client::new(config);
    let events = client.subscribe();
    let file = tempfile::tempfile().expect("file");
    let mut buf = [0u8; 8];
    let reply = client
        .execute(
            &pr_manager::pr_in_command(PrInAction::ReadKeys, 8),
            file.as_fd(),
            DataTransfer::FromDevice(&mut buf),
        )
        .expect("valid");
    assert!(reply.is_good());
    // Wait (a hang guard, not a measurement) for the watcher's probe.
    let start = std::time::Instant::now();
    while fake.connections() < 2 {
        assert!(start.elapsed().as_secs() < 120, "the watcher never probed");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    while client.idle_connections() > 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(client.is_connected());
    let seen: Vec<_> = events.try_iter().collect();
    assert_eq!(seen, vec![pr_manager::StatusEvent::Connected]);
}

/// With `io_timeout`, a helper that takes a command and never answers fails
/// that command with 0B/08/00 instead of hanging it (QEMU waits forever).
#[test]
fn io_timeout_bounds_a_helper_that_never_answers() {
    use pr_manager::TransportError;

    let fake = FakeHelper::start(|_, _| {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    });
    let mut config = Config::new(fake.socket());
    config.io_timeout = Some(std::time::Duration::from_millis(100));
    let client = Client::new(config);
    let file = tempfile::tempfile().expect("file");
    let mut buf = [0u8; 8];
    let reply = client
        .execute(
            &pr_manager::pr_in_command(PrInAction::ReadKeys, 8),
            file.as_fd(),
            DataTransfer::FromDevice(&mut buf),
        )
        .expect("valid");
    assert_eq!(reply.decoded_sense(), Some(Sense::LUN_COMM_FAILURE));
    assert!(
        matches!(
            reply.failure,
            Some(Error::Transport(TransportError::Receive(_)))
        ),
        "{:?}",
        reply.failure
    );
    assert!(!client.is_connected());
}

//! Golden vectors: the two replies of Debian's `qemu-pr-helper` 7.2 recorded
//! in protocol.md ("Observed behaviour"), reproduced byte for byte.

use pr_protocol::{RESPONSE_HEADER_SIZE, Response};

/// READ KEYS with an allocation length of 8192, as QEMU's client sends it.
const PR_IN_READ_KEYS: [u8; 10] = [0x5E, 0x00, 0, 0, 0, 0, 0, 0x20, 0x00, 0];
/// REGISTER with a 24-byte parameter list.
const PR_OUT_REGISTER: [u8; 10] = [0x5F, 0x00, 0, 0, 0, 0, 0, 0x00, 0x18, 0];

/// The 104 bytes: result, size, then the sense's first 18 bytes and zeros.
fn expected_reply(result: u8, sense18: [u8; 18]) -> Vec<u8> {
    let mut bytes = vec![0, 0, 0, result, 0, 0, 0, 0];
    bytes.extend_from_slice(&sense18);
    bytes.resize(RESPONSE_HEADER_SIZE, 0);
    bytes
}

/// PR IN on a regular file: SG_IO fails with ENOTTY, reported as
/// ABORTED COMMAND / I/O PROCESS TERMINATED.
const IO_PROCESS_TERMINATED: [u8; 18] = [
    0x70, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00,
    0x00, 0x00,
];

/// PR OUT on a read-only descriptor: ILLEGAL REQUEST / INVALID COMMAND
/// OPERATION CODE.
const INVALID_OPCODE: [u8; 18] = [
    0x70, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x00,
    0x00, 0x00,
];

#[test]
fn pr_in_on_a_regular_file() {
    let mut wire = Vec::new();
    Response::check_condition(&IO_PROCESS_TERMINATED)
        .encode(&PR_IN_READ_KEYS, &mut wire)
        .unwrap();
    assert_eq!(wire.len(), 104);
    assert_eq!(wire, expected_reply(2, IO_PROCESS_TERMINATED));
}

#[test]
fn pr_out_on_a_read_only_descriptor() {
    let mut wire = Vec::new();
    Response::check_condition(&INVALID_OPCODE)
        .encode(&PR_OUT_REGISTER, &mut wire)
        .unwrap();
    assert_eq!(wire.len(), 104);
    assert_eq!(wire, expected_reply(2, INVALID_OPCODE));
}

/// The same replies built the way the daemon builds them: from `scsi`'s
/// named senses through its fixed-format builder.
#[test]
fn replies_from_the_scsi_sense_builder() {
    use scsi::sense::Sense;

    let mut wire = Vec::new();
    Response::check_condition(&Sense::IO_ERROR.fixed_bytes())
        .encode(&PR_IN_READ_KEYS, &mut wire)
        .unwrap();
    assert_eq!(wire, expected_reply(2, IO_PROCESS_TERMINATED));

    wire.clear();
    Response::check_condition(&Sense::INVALID_OPCODE.fixed_bytes())
        .encode(&PR_OUT_REGISTER, &mut wire)
        .unwrap();
    assert_eq!(wire, expected_reply(2, INVALID_OPCODE));
}

/// The CDB bytes 5-6 fault names INVALID FIELD IN CDB, as `scsi` spells it.
#[test]
fn cdb_fault_sense_is_invalid_field_in_cdb() {
    use pr_protocol::{Decoded, RequestDecoder};
    use scsi::sense::Sense;

    let mut cdb = [0u8; 16];
    cdb[0] = 0x5F;
    cdb[5] = 1;
    let mut decoder = RequestDecoder::new();
    let Ok(Decoded::Request(request)) = decoder.feed(&cdb, [()]) else {
        panic!("expected a complete request");
    };
    let (key, asc, ascq) = request.cdb_check().unwrap_err().sense_code();
    assert_eq!(Sense { key, asc, ascq }, Sense::INVALID_FIELD);
}

//! Command descriptor blocks: opcodes, their names, and the generic per-group field
//! rules (length, transfer length, LBA) that hold for every command of a group.

use crate::wire::{be_u16, be_u32, be_u64};

/// Operation codes of SPC, SBC, MMC, SSC and SMC.
pub mod opcode {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REWIND: u8 = 0x01;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const FORMAT_UNIT: u8 = 0x04;
    pub const READ_BLOCK_LIMITS: u8 = 0x05;
    pub const REASSIGN_BLOCKS: u8 = 0x07;
    pub const READ_6: u8 = 0x08;
    pub const WRITE_6: u8 = 0x0A;
    pub const SEEK_6: u8 = 0x0B;
    pub const READ_REVERSE: u8 = 0x0F;
    pub const WRITE_FILEMARKS: u8 = 0x10;
    pub const SPACE: u8 = 0x11;
    pub const INQUIRY: u8 = 0x12;
    pub const VERIFY_6: u8 = 0x13;
    pub const RECOVER_BUFFERED_DATA: u8 = 0x14;
    pub const MODE_SELECT_6: u8 = 0x15;
    pub const RESERVE_6: u8 = 0x16;
    pub const RELEASE_6: u8 = 0x17;
    pub const COPY: u8 = 0x18;
    pub const ERASE: u8 = 0x19;
    pub const MODE_SENSE_6: u8 = 0x1A;
    pub const START_STOP_UNIT: u8 = 0x1B;
    pub const RECEIVE_DIAGNOSTIC_RESULTS: u8 = 0x1C;
    pub const SEND_DIAGNOSTIC: u8 = 0x1D;
    pub const PREVENT_ALLOW_MEDIUM_REMOVAL: u8 = 0x1E;
    pub const READ_FORMAT_CAPACITIES: u8 = 0x23;
    pub const SET_WINDOW: u8 = 0x24;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2A;
    pub const SEEK_10: u8 = 0x2B;
    pub const ERASE_10: u8 = 0x2C;
    pub const WRITE_AND_VERIFY_10: u8 = 0x2E;
    pub const VERIFY_10: u8 = 0x2F;
    pub const SEARCH_HIGH: u8 = 0x30;
    pub const SEARCH_EQUAL: u8 = 0x31;
    pub const SEARCH_LOW: u8 = 0x32;
    pub const SET_LIMITS: u8 = 0x33;
    pub const PRE_FETCH_10: u8 = 0x34;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const LOCK_UNLOCK_CACHE_10: u8 = 0x36;
    pub const READ_DEFECT_DATA_10: u8 = 0x37;
    pub const MEDIUM_SCAN: u8 = 0x38;
    pub const COMPARE: u8 = 0x39;
    pub const COPY_AND_VERIFY: u8 = 0x3A;
    pub const WRITE_BUFFER: u8 = 0x3B;
    pub const READ_BUFFER: u8 = 0x3C;
    pub const UPDATE_BLOCK: u8 = 0x3D;
    pub const READ_LONG_10: u8 = 0x3E;
    pub const WRITE_LONG_10: u8 = 0x3F;
    pub const CHANGE_DEFINITION: u8 = 0x40;
    pub const WRITE_SAME_10: u8 = 0x41;
    pub const UNMAP: u8 = 0x42;
    pub const READ_TOC: u8 = 0x43;
    pub const REPORT_DENSITY_SUPPORT: u8 = 0x44;
    pub const PLAY_AUDIO_10: u8 = 0x45;
    pub const GET_CONFIGURATION: u8 = 0x46;
    pub const PLAY_AUDIO_MSF: u8 = 0x47;
    pub const SANITIZE: u8 = 0x48;
    pub const GET_EVENT_STATUS_NOTIFICATION: u8 = 0x4A;
    pub const PAUSE_RESUME: u8 = 0x4B;
    pub const LOG_SELECT: u8 = 0x4C;
    pub const LOG_SENSE: u8 = 0x4D;
    pub const STOP_PLAY_SCAN: u8 = 0x4E;
    pub const XDWRITE_10: u8 = 0x50;
    pub const READ_DISC_INFORMATION: u8 = 0x51;
    pub const READ_TRACK_INFORMATION: u8 = 0x52;
    pub const RESERVE_TRACK: u8 = 0x53;
    pub const SEND_OPC_INFORMATION: u8 = 0x54;
    pub const MODE_SELECT_10: u8 = 0x55;
    pub const RESERVE_10: u8 = 0x56;
    pub const RELEASE_10: u8 = 0x57;
    pub const REPAIR_TRACK: u8 = 0x58;
    pub const MODE_SENSE_10: u8 = 0x5A;
    pub const CLOSE_TRACK_SESSION: u8 = 0x5B;
    pub const READ_BUFFER_CAPACITY: u8 = 0x5C;
    pub const SEND_CUE_SHEET: u8 = 0x5D;
    pub const PERSISTENT_RESERVE_IN: u8 = 0x5E;
    pub const PERSISTENT_RESERVE_OUT: u8 = 0x5F;
    pub const VARIABLE_LENGTH_32: u8 = 0x7F;
    pub const WRITE_FILEMARKS_16: u8 = 0x80;
    pub const READ_REVERSE_16: u8 = 0x81;
    pub const ALLOW_OVERWRITE: u8 = 0x82;
    pub const EXTENDED_COPY: u8 = 0x83;
    pub const RECEIVE_COPY_RESULTS: u8 = 0x84;
    pub const ATA_PASS_THROUGH_16: u8 = 0x85;
    pub const ACCESS_CONTROL_IN: u8 = 0x86;
    pub const ACCESS_CONTROL_OUT: u8 = 0x87;
    pub const READ_16: u8 = 0x88;
    pub const COMPARE_AND_WRITE: u8 = 0x89;
    pub const WRITE_16: u8 = 0x8A;
    pub const ORWRITE_16: u8 = 0x8B;
    pub const READ_ATTRIBUTE: u8 = 0x8C;
    pub const WRITE_ATTRIBUTE: u8 = 0x8D;
    pub const WRITE_AND_VERIFY_16: u8 = 0x8E;
    pub const VERIFY_16: u8 = 0x8F;
    pub const PRE_FETCH_16: u8 = 0x90;
    pub const SYNCHRONIZE_CACHE_16: u8 = 0x91;
    pub const LOCATE_16: u8 = 0x92;
    pub const WRITE_SAME_16: u8 = 0x93;
    pub const SERVICE_ACTION_BIDIRECTIONAL: u8 = 0x9D;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9E;
    pub const SERVICE_ACTION_OUT_16: u8 = 0x9F;
    pub const REPORT_LUNS: u8 = 0xA0;
    pub const ATA_PASS_THROUGH_12: u8 = 0xA1;
    pub const SECURITY_PROTOCOL_IN: u8 = 0xA2;
    pub const MAINTENANCE_IN: u8 = 0xA3;
    pub const MAINTENANCE_OUT: u8 = 0xA4;
    pub const MOVE_MEDIUM: u8 = 0xA5;
    pub const EXCHANGE_MEDIUM: u8 = 0xA6;
    pub const MOVE_MEDIUM_ATTACHED: u8 = 0xA7;
    pub const READ_12: u8 = 0xA8;
    pub const SERVICE_ACTION_OUT_12: u8 = 0xA9;
    pub const WRITE_12: u8 = 0xAA;
    pub const SERVICE_ACTION_IN_12: u8 = 0xAB;
    pub const ERASE_12: u8 = 0xAC;
    pub const READ_DVD_STRUCTURE: u8 = 0xAD;
    pub const WRITE_AND_VERIFY_12: u8 = 0xAE;
    pub const VERIFY_12: u8 = 0xAF;
    pub const SEARCH_HIGH_12: u8 = 0xB0;
    pub const SEARCH_EQUAL_12: u8 = 0xB1;
    pub const SEARCH_LOW_12: u8 = 0xB2;
    pub const SET_LIMITS_12: u8 = 0xB3;
    pub const READ_ELEMENT_STATUS_ATTACHED: u8 = 0xB4;
    pub const SECURITY_PROTOCOL_OUT: u8 = 0xB5;
    pub const SEND_VOLUME_TAG: u8 = 0xB6;
    pub const READ_DEFECT_DATA_12: u8 = 0xB7;
    pub const READ_ELEMENT_STATUS: u8 = 0xB8;
    pub const READ_CD_MSF: u8 = 0xB9;
    pub const REDUNDANCY_GROUP_IN: u8 = 0xBA;
    pub const REDUNDANCY_GROUP_OUT: u8 = 0xBB;
    pub const SPARE_IN: u8 = 0xBC;
    pub const MECHANISM_STATUS: u8 = 0xBD;
    pub const READ_CD: u8 = 0xBE;
    pub const SEND_DVD_STRUCTURE: u8 = 0xBF;
}

/// The command group, bits 7-5 of the opcode; it fixes the CDB layout.
pub const fn group(opcode: u8) -> u8 {
    opcode >> 5
}

/// CDB length implied by the opcode's group: 6 (group 0), 10 (1, 2), 16 (4),
/// 12 (5). `None` for group 3 (reserved, plus variable-length 0x7F whose length
/// is in the CDB itself, see [`cdb_length_of`]) and groups 6 and 7 (vendor
/// specific, length unknowable).
pub const fn cdb_length(opcode: u8) -> Option<usize> {
    match group(opcode) {
        0 => Some(6),
        1 | 2 => Some(10),
        4 => Some(16),
        5 => Some(12),
        _ => None,
    }
}

/// CDB length of a concrete CDB: the group rule, plus variable-length CDBs
/// (0x7F: 8 bytes + ADDITIONAL CDB LENGTH at byte 7).
pub fn cdb_length_of(cdb: &[u8]) -> Option<usize> {
    let &op = cdb.first()?;
    if op == opcode::VARIABLE_LENGTH_32 {
        return cdb.get(7).map(|&extra| 8 + usize::from(extra));
    }
    cdb_length(op)
}

/// The TRANSFER LENGTH / ALLOCATION LENGTH / PARAMETER LIST LENGTH field where the
/// generic group rule puts it: byte 4 (group 0), u16 at 7..9 (groups 1, 2), u32 at
/// 10..14 (group 4), u32 at 6..10 (group 5). Units are those of the command (blocks
/// for READ/WRITE, bytes for most others); READ(6)'s "0 means 256" is not applied.
/// For PERSISTENT RESERVE IN/OUT this is the u16 at 7..9, the length the helper
/// protocol transfers (see also [`pr_out_parameter_list_length`]).
/// `None` for groups without a generic rule or a CDB too short for the field.
pub fn transfer_length(cdb: &[u8]) -> Option<u32> {
    match group(*cdb.first()?) {
        0 => cdb.get(4).map(|&b| u32::from(b)),
        1 | 2 => be_u16(cdb, 7).map(u32::from),
        4 => be_u32(cdb, 10),
        5 => be_u32(cdb, 6),
        _ => None,
    }
}

/// The PARAMETER LIST LENGTH of a PERSISTENT RESERVE OUT CDB as SPC defines it, the
/// u32 at bytes 5..9. `None` for another opcode or a CDB shorter than 9 bytes.
pub fn pr_out_parameter_list_length(cdb: &[u8]) -> Option<u32> {
    if *cdb.first()? != opcode::PERSISTENT_RESERVE_OUT {
        return None;
    }
    be_u32(cdb, 5)
}

/// The LOGICAL BLOCK ADDRESS field by the generic group rule: 21 bits in bytes 1..4
/// (group 0), u32 at 2..6 (groups 1, 2, 5), u64 at 2..10 (group 4). Meaningful only
/// for commands that address blocks. `None` where no rule applies or the CDB is short.
pub fn lba(cdb: &[u8]) -> Option<u64> {
    match group(*cdb.first()?) {
        0 => match cdb.get(1..4)? {
            &[hi, mid, lo] => {
                Some(u64::from(hi & 0x1f) << 16 | u64::from(mid) << 8 | u64::from(lo))
            }
            _ => None,
        },
        1 | 2 | 5 => be_u32(cdb, 2).map(u64::from),
        4 => be_u64(cdb, 2),
        _ => None,
    }
}

/// A printable name for an opcode. Where device types (disk, tape, changer,
/// optical) give one opcode different commands, the names are joined with " / ".
/// Unassigned opcodes are "UNKNOWN".
pub const fn command_name(op: u8) -> &'static str {
    use opcode::*;
    match op {
        TEST_UNIT_READY => "TEST UNIT READY",
        REWIND => "REWIND / REZERO UNIT",
        REQUEST_SENSE => "REQUEST SENSE",
        FORMAT_UNIT => "FORMAT UNIT",
        READ_BLOCK_LIMITS => "READ BLOCK LIMITS",
        REASSIGN_BLOCKS => "REASSIGN BLOCKS / INITIALIZE ELEMENT STATUS",
        READ_6 => "READ(6)",
        WRITE_6 => "WRITE(6)",
        SEEK_6 => "SEEK(6) / SET CAPACITY",
        READ_REVERSE => "READ REVERSE",
        WRITE_FILEMARKS => "WRITE FILEMARKS",
        SPACE => "SPACE",
        INQUIRY => "INQUIRY",
        VERIFY_6 => "VERIFY(6)",
        RECOVER_BUFFERED_DATA => "RECOVER BUFFERED DATA",
        MODE_SELECT_6 => "MODE SELECT(6)",
        RESERVE_6 => "RESERVE(6)",
        RELEASE_6 => "RELEASE(6)",
        COPY => "COPY",
        ERASE => "ERASE",
        MODE_SENSE_6 => "MODE SENSE(6)",
        START_STOP_UNIT => "START STOP UNIT / LOAD UNLOAD",
        RECEIVE_DIAGNOSTIC_RESULTS => "RECEIVE DIAGNOSTIC RESULTS",
        SEND_DIAGNOSTIC => "SEND DIAGNOSTIC",
        PREVENT_ALLOW_MEDIUM_REMOVAL => "PREVENT ALLOW MEDIUM REMOVAL",
        READ_FORMAT_CAPACITIES => "READ FORMAT CAPACITIES",
        SET_WINDOW => "SET WINDOW",
        READ_CAPACITY_10 => "READ CAPACITY(10)",
        READ_10 => "READ(10)",
        WRITE_10 => "WRITE(10)",
        SEEK_10 => "SEEK(10) / LOCATE(10) / POSITION TO ELEMENT",
        ERASE_10 => "ERASE(10)",
        WRITE_AND_VERIFY_10 => "WRITE AND VERIFY(10)",
        VERIFY_10 => "VERIFY(10)",
        SEARCH_HIGH => "SEARCH HIGH",
        SEARCH_EQUAL => "SEARCH EQUAL",
        SEARCH_LOW => "SEARCH LOW",
        SET_LIMITS => "SET LIMITS",
        PRE_FETCH_10 => "PRE-FETCH(10) / READ POSITION",
        SYNCHRONIZE_CACHE_10 => "SYNCHRONIZE CACHE(10)",
        LOCK_UNLOCK_CACHE_10 => "LOCK UNLOCK CACHE(10)",
        READ_DEFECT_DATA_10 => "READ DEFECT DATA(10) / INITIALIZE ELEMENT STATUS WITH RANGE",
        MEDIUM_SCAN => "MEDIUM SCAN",
        COMPARE => "COMPARE",
        COPY_AND_VERIFY => "COPY AND VERIFY",
        WRITE_BUFFER => "WRITE BUFFER",
        READ_BUFFER => "READ BUFFER",
        UPDATE_BLOCK => "UPDATE BLOCK",
        READ_LONG_10 => "READ LONG(10)",
        WRITE_LONG_10 => "WRITE LONG(10)",
        CHANGE_DEFINITION => "CHANGE DEFINITION",
        WRITE_SAME_10 => "WRITE SAME(10)",
        UNMAP => "UNMAP / READ SUB-CHANNEL",
        READ_TOC => "READ TOC/PMA/ATIP",
        REPORT_DENSITY_SUPPORT => "REPORT DENSITY SUPPORT",
        PLAY_AUDIO_10 => "PLAY AUDIO(10)",
        GET_CONFIGURATION => "GET CONFIGURATION",
        PLAY_AUDIO_MSF => "PLAY AUDIO MSF",
        SANITIZE => "SANITIZE",
        GET_EVENT_STATUS_NOTIFICATION => "GET EVENT STATUS NOTIFICATION",
        PAUSE_RESUME => "PAUSE/RESUME",
        LOG_SELECT => "LOG SELECT",
        LOG_SENSE => "LOG SENSE",
        STOP_PLAY_SCAN => "STOP PLAY/SCAN",
        XDWRITE_10 => "XDWRITE(10)",
        READ_DISC_INFORMATION => "READ DISC INFORMATION",
        READ_TRACK_INFORMATION => "READ TRACK INFORMATION",
        RESERVE_TRACK => "RESERVE TRACK",
        SEND_OPC_INFORMATION => "SEND OPC INFORMATION",
        MODE_SELECT_10 => "MODE SELECT(10)",
        RESERVE_10 => "RESERVE(10)",
        RELEASE_10 => "RELEASE(10)",
        REPAIR_TRACK => "REPAIR TRACK",
        MODE_SENSE_10 => "MODE SENSE(10)",
        CLOSE_TRACK_SESSION => "CLOSE TRACK/SESSION",
        READ_BUFFER_CAPACITY => "READ BUFFER CAPACITY",
        SEND_CUE_SHEET => "SEND CUE SHEET",
        PERSISTENT_RESERVE_IN => "PERSISTENT RESERVE IN",
        PERSISTENT_RESERVE_OUT => "PERSISTENT RESERVE OUT",
        VARIABLE_LENGTH_32 => "VARIABLE LENGTH(32)",
        WRITE_FILEMARKS_16 => "WRITE FILEMARKS(16)",
        READ_REVERSE_16 => "READ REVERSE(16)",
        ALLOW_OVERWRITE => "ALLOW OVERWRITE",
        EXTENDED_COPY => "EXTENDED COPY",
        RECEIVE_COPY_RESULTS => "RECEIVE COPY RESULTS",
        ATA_PASS_THROUGH_16 => "ATA PASS-THROUGH(16)",
        ACCESS_CONTROL_IN => "ACCESS CONTROL IN",
        ACCESS_CONTROL_OUT => "ACCESS CONTROL OUT",
        READ_16 => "READ(16)",
        COMPARE_AND_WRITE => "COMPARE AND WRITE",
        WRITE_16 => "WRITE(16)",
        ORWRITE_16 => "ORWRITE(16)",
        READ_ATTRIBUTE => "READ ATTRIBUTE",
        WRITE_ATTRIBUTE => "WRITE ATTRIBUTE",
        WRITE_AND_VERIFY_16 => "WRITE AND VERIFY(16)",
        VERIFY_16 => "VERIFY(16)",
        PRE_FETCH_16 => "PRE-FETCH(16)",
        SYNCHRONIZE_CACHE_16 => "SYNCHRONIZE CACHE(16) / SPACE(16)",
        LOCATE_16 => "LOCATE(16) / LOCK UNLOCK CACHE(16)",
        WRITE_SAME_16 => "WRITE SAME(16) / ERASE(16)",
        SERVICE_ACTION_BIDIRECTIONAL => "SERVICE ACTION BIDIRECTIONAL",
        SERVICE_ACTION_IN_16 => "SERVICE ACTION IN(16)",
        SERVICE_ACTION_OUT_16 => "SERVICE ACTION OUT(16) / WRITE LONG(16)",
        REPORT_LUNS => "REPORT LUNS",
        ATA_PASS_THROUGH_12 => "ATA PASS-THROUGH(12) / BLANK",
        SECURITY_PROTOCOL_IN => "SECURITY PROTOCOL IN",
        MAINTENANCE_IN => "MAINTENANCE IN / SEND KEY",
        MAINTENANCE_OUT => "MAINTENANCE OUT / REPORT KEY",
        MOVE_MEDIUM => "MOVE MEDIUM / PLAY AUDIO(12)",
        EXCHANGE_MEDIUM => "EXCHANGE MEDIUM / LOAD/UNLOAD C/DVD",
        MOVE_MEDIUM_ATTACHED => "MOVE MEDIUM ATTACHED / SET READ AHEAD",
        READ_12 => "READ(12)",
        SERVICE_ACTION_OUT_12 => "SERVICE ACTION OUT(12)",
        WRITE_12 => "WRITE(12)",
        SERVICE_ACTION_IN_12 => "SERVICE ACTION IN(12)",
        ERASE_12 => "ERASE(12) / GET PERFORMANCE",
        READ_DVD_STRUCTURE => "READ DVD STRUCTURE",
        WRITE_AND_VERIFY_12 => "WRITE AND VERIFY(12)",
        VERIFY_12 => "VERIFY(12)",
        SEARCH_HIGH_12 => "SEARCH HIGH(12)",
        SEARCH_EQUAL_12 => "SEARCH EQUAL(12)",
        SEARCH_LOW_12 => "SEARCH LOW(12)",
        SET_LIMITS_12 => "SET LIMITS(12)",
        READ_ELEMENT_STATUS_ATTACHED => "READ ELEMENT STATUS ATTACHED",
        SECURITY_PROTOCOL_OUT => "SECURITY PROTOCOL OUT / REQUEST VOLUME ELEMENT ADDRESS",
        SEND_VOLUME_TAG => "SEND VOLUME TAG / SET STREAMING",
        READ_DEFECT_DATA_12 => "READ DEFECT DATA(12)",
        READ_ELEMENT_STATUS => "READ ELEMENT STATUS",
        READ_CD_MSF => "READ CD MSF",
        REDUNDANCY_GROUP_IN => "REDUNDANCY GROUP IN / SCAN",
        REDUNDANCY_GROUP_OUT => "REDUNDANCY GROUP OUT / SET CD SPEED",
        SPARE_IN => "SPARE IN",
        MECHANISM_STATUS => "MECHANISM STATUS",
        READ_CD => "READ CD",
        SEND_DVD_STRUCTURE => "SEND DVD STRUCTURE",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_follows_the_group() {
        assert_eq!(cdb_length(opcode::INQUIRY), Some(6));
        assert_eq!(cdb_length(opcode::READ_10), Some(10));
        assert_eq!(cdb_length(opcode::PERSISTENT_RESERVE_IN), Some(10));
        assert_eq!(cdb_length(opcode::PERSISTENT_RESERVE_OUT), Some(10));
        assert_eq!(cdb_length(opcode::READ_16), Some(16));
        assert_eq!(cdb_length(opcode::REPORT_LUNS), Some(12));
        assert_eq!(cdb_length(0x60), None);
        assert_eq!(cdb_length(opcode::VARIABLE_LENGTH_32), None);
        assert_eq!(cdb_length(0xC0), None);
        assert_eq!(cdb_length(0xFF), None);
        assert_eq!(group(0xFF), 7);
    }

    #[test]
    fn length_of_a_variable_length_cdb_is_in_byte_7() {
        let mut cdb = [0u8; 32];
        cdb[0] = opcode::VARIABLE_LENGTH_32;
        cdb[7] = 0x18;
        assert_eq!(cdb_length_of(&cdb), Some(32));
        assert_eq!(cdb_length_of(&cdb[..7]), None);
        assert_eq!(cdb_length_of(&[opcode::WRITE_16]), Some(16));
        assert_eq!(cdb_length_of(&[]), None);
    }

    #[test]
    fn transfer_length_per_group() {
        assert_eq!(
            transfer_length(&[opcode::INQUIRY, 0, 0, 0, 0x60, 0]),
            Some(0x60)
        );
        let mut ten = [0u8; 10];
        ten[0] = opcode::PERSISTENT_RESERVE_IN;
        ten[7..9].copy_from_slice(&[0x20, 0x00]);
        assert_eq!(transfer_length(&ten), Some(0x2000));
        let mut sixteen = [0u8; 16];
        sixteen[0] = opcode::READ_16;
        sixteen[10..14].copy_from_slice(&[0x01, 0x02, 0x03, 0x04]);
        assert_eq!(transfer_length(&sixteen), Some(0x0102_0304));
        let mut twelve = [0u8; 12];
        twelve[0] = opcode::REPORT_LUNS;
        twelve[6..10].copy_from_slice(&[0, 0, 0x10, 0]);
        assert_eq!(transfer_length(&twelve), Some(0x1000));
        assert_eq!(transfer_length(&[0xC0; 16]), None);
        assert_eq!(transfer_length(&ten[..8]), None);
        assert_eq!(transfer_length(&[]), None);
    }

    #[test]
    fn pr_out_transfer_length_ignores_bytes_5_and_6_but_spc_length_does_not() {
        let mut cdb = [0u8; 16];
        cdb[0] = opcode::PERSISTENT_RESERVE_OUT;
        cdb[5..9].copy_from_slice(&[0x00, 0x01, 0x00, 0x18]);
        assert_eq!(transfer_length(&cdb), Some(0x18));
        assert_eq!(pr_out_parameter_list_length(&cdb), Some(0x0001_0018));
        assert_eq!(pr_out_parameter_list_length(&cdb[..8]), None);
        cdb[0] = opcode::PERSISTENT_RESERVE_IN;
        assert_eq!(pr_out_parameter_list_length(&cdb), None);
        assert_eq!(pr_out_parameter_list_length(&[]), None);
    }

    #[test]
    fn lba_per_group() {
        assert_eq!(
            lba(&[opcode::READ_6, 0xFF, 0x12, 0x34, 1, 0]),
            Some(0x1F_1234)
        );
        assert_eq!(
            lba(&[opcode::READ_10, 0, 0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 1, 0]),
            Some(0xDEAD_BEEF)
        );
        let mut sixteen = [0u8; 16];
        sixteen[0] = opcode::WRITE_16;
        sixteen[2..10].copy_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(lba(&sixteen), Some(0x0102_0304_0506_0708));
        assert_eq!(
            lba(&[opcode::READ_12, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0]),
            Some(7)
        );
        assert_eq!(lba(&[opcode::READ_10, 0, 0]), None);
        assert_eq!(lba(&[0xE0; 16]), None);
        assert_eq!(lba(&[]), None);
    }

    #[test]
    fn command_names() {
        assert_eq!(
            command_name(opcode::PERSISTENT_RESERVE_IN),
            "PERSISTENT RESERVE IN"
        );
        assert_eq!(
            command_name(opcode::PERSISTENT_RESERVE_OUT),
            "PERSISTENT RESERVE OUT"
        );
        assert_eq!(command_name(opcode::TEST_UNIT_READY), "TEST UNIT READY");
        assert_eq!(command_name(opcode::READ_CAPACITY_10), "READ CAPACITY(10)");
        assert_eq!(
            command_name(opcode::SERVICE_ACTION_IN_16),
            "SERVICE ACTION IN(16)"
        );
        assert_eq!(command_name(0x02), "UNKNOWN");
        assert_eq!(command_name(0xFF), "UNKNOWN");
        let named = (0..=u8::MAX)
            .filter(|&op| command_name(op) != "UNKNOWN")
            .count();
        assert!(named > 120, "{named} opcodes named");
    }
}

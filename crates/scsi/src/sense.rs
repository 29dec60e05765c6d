//! Sense data: the (sense key, ASC, ASCQ) triple that explains a CHECK CONDITION,
//! its fixed (0x70/0x71) and descriptor (0x72/0x73) encodings (SPC-4 4.5), and the
//! errno mapping used when a SCSI failure has to be reported to a block layer.

use std::fmt;

use crate::errno;

/// Sense keys (SPC-4 table 28), the 4-bit coarse class of an error.
pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const RECOVERED_ERROR: u8 = 0x1;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const BLANK_CHECK: u8 = 0x8;
    pub const VENDOR_SPECIFIC: u8 = 0x9;
    pub const COPY_ABORTED: u8 = 0xA;
    pub const ABORTED_COMMAND: u8 = 0xB;
    pub const VOLUME_OVERFLOW: u8 = 0xD;
    pub const MISCOMPARE: u8 = 0xE;
    pub const COMPLETED: u8 = 0xF;

    /// The standard name of a sense key, `None` for the reserved value 0xC and for
    /// anything that does not fit in four bits.
    pub const fn name(key: u8) -> Option<&'static str> {
        Some(match key {
            NO_SENSE => "NO SENSE",
            RECOVERED_ERROR => "RECOVERED ERROR",
            NOT_READY => "NOT READY",
            MEDIUM_ERROR => "MEDIUM ERROR",
            HARDWARE_ERROR => "HARDWARE ERROR",
            ILLEGAL_REQUEST => "ILLEGAL REQUEST",
            UNIT_ATTENTION => "UNIT ATTENTION",
            DATA_PROTECT => "DATA PROTECT",
            BLANK_CHECK => "BLANK CHECK",
            VENDOR_SPECIFIC => "VENDOR SPECIFIC",
            COPY_ABORTED => "COPY ABORTED",
            ABORTED_COMMAND => "ABORTED COMMAND",
            VOLUME_OVERFLOW => "VOLUME OVERFLOW",
            MISCOMPARE => "MISCOMPARE",
            COMPLETED => "COMPLETED",
            _ => return None,
        })
    }
}

/// Response codes of byte 0 (bit 7 is the VALID bit in fixed format, masked off).
pub mod response_code {
    pub const FIXED_CURRENT: u8 = 0x70;
    pub const FIXED_DEFERRED: u8 = 0x71;
    pub const DESCRIPTOR_CURRENT: u8 = 0x72;
    pub const DESCRIPTOR_DEFERRED: u8 = 0x73;
}

/// Size of a fixed-format sense buffer without additional bytes.
pub const FIXED_LEN: usize = 18;
/// Size of a descriptor-format sense buffer without descriptors.
pub const DESCRIPTOR_LEN: usize = 8;
/// Fixed format: a buffer shorter than this does not reach ASCQ.
const FIXED_MIN_PARSE_LEN: usize = 14;
/// Descriptor format: a buffer shorter than this does not reach ASCQ.
const DESCRIPTOR_MIN_PARSE_LEN: usize = 4;
/// Value of the fixed-format ADDITIONAL SENSE LENGTH for an 18-byte buffer.
const FIXED_ADDITIONAL_LEN: u8 = 10;

/// The two sense data layouts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum SenseFormat {
    Fixed,
    Descriptor,
}

/// Key, additional sense code and qualifier. Bytes are kept as given; only the low
/// nibble of `key` is meaningful and only that nibble is encoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

impl Sense {
    pub const fn new(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense { key, asc, ascq }
    }

    // The senses QEMU predefines, under QEMU's names so code reads alike.
    pub const NO_SENSE: Sense = Sense::new(key::NO_SENSE, 0x00, 0x00);
    pub const LUN_NOT_READY: Sense = Sense::new(key::NOT_READY, 0x04, 0x03);
    pub const NO_MEDIUM: Sense = Sense::new(key::NOT_READY, 0x3A, 0x00);
    pub const NOT_READY_REMOVAL_PREVENTED: Sense = Sense::new(key::NOT_READY, 0x53, 0x02);
    pub const TARGET_FAILURE: Sense = Sense::new(key::HARDWARE_ERROR, 0x44, 0x00);
    pub const INVALID_OPCODE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x20, 0x00);
    pub const LBA_OUT_OF_RANGE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x21, 0x00);
    pub const INVALID_FIELD: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x24, 0x00);
    pub const INVALID_PARAM: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x00);
    pub const INVALID_PARAM_VALUE: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x02);
    pub const INVALID_PARAM_LEN: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x1A, 0x00);
    pub const LUN_NOT_SUPPORTED: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x25, 0x00);
    pub const SAVING_PARAMS_NOT_SUPPORTED: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x39, 0x00);
    pub const INCOMPATIBLE_FORMAT: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x30, 0x00);
    pub const ILLEGAL_REQ_REMOVAL_PREVENTED: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x53, 0x02);
    pub const INVALID_TAG: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x4B, 0x01);
    pub const TOO_MANY_SEGMENTS: Sense = Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x08);
    pub const IO_ERROR: Sense = Sense::new(key::ABORTED_COMMAND, 0x00, 0x06);
    pub const I_T_NEXUS_LOSS: Sense = Sense::new(key::ABORTED_COMMAND, 0x29, 0x07);
    pub const LUN_FAILURE: Sense = Sense::new(key::ABORTED_COMMAND, 0x3E, 0x01);
    pub const LUN_COMM_FAILURE: Sense = Sense::new(key::ABORTED_COMMAND, 0x08, 0x00);
    pub const OVERLAPPED_COMMANDS: Sense = Sense::new(key::ABORTED_COMMAND, 0x4E, 0x00);
    pub const READ_ERROR: Sense = Sense::new(key::MEDIUM_ERROR, 0x11, 0x00);
    pub const NOT_READY: Sense = Sense::new(key::NOT_READY, 0x04, 0x00);
    pub const CAPACITY_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2A, 0x09);
    pub const SCSI_BUS_RESET: Sense = Sense::new(key::UNIT_ATTENTION, 0x29, 0x02);
    pub const UNIT_ATTENTION_NO_MEDIUM: Sense = Sense::new(key::UNIT_ATTENTION, 0x3A, 0x00);
    pub const RESET: Sense = Sense::new(key::UNIT_ATTENTION, 0x29, 0x00);
    pub const MEDIUM_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x28, 0x00);
    pub const REPORTED_LUNS_CHANGED: Sense = Sense::new(key::UNIT_ATTENTION, 0x3F, 0x0E);
    pub const DEVICE_INTERNAL_RESET: Sense = Sense::new(key::UNIT_ATTENTION, 0x29, 0x04);
    pub const WRITE_PROTECTED: Sense = Sense::new(key::DATA_PROTECT, 0x27, 0x00);
    pub const SPACE_ALLOC_FAILED: Sense = Sense::new(key::DATA_PROTECT, 0x27, 0x07);
    pub const MISCOMPARE: Sense = Sense::new(key::MISCOMPARE, 0x1D, 0x00);

    // Long names, and the senses persistent reservations add.
    pub const INVALID_FIELD_IN_CDB: Sense = Sense::INVALID_FIELD;
    pub const INVALID_FIELD_IN_PARAMETER_LIST: Sense = Sense::INVALID_PARAM;
    pub const PARAMETER_LIST_LENGTH_ERROR: Sense = Sense::INVALID_PARAM_LEN;
    pub const INVALID_COMMAND_OPERATION_CODE: Sense = Sense::INVALID_OPCODE;
    pub const IO_PROCESS_TERMINATED: Sense = Sense::IO_ERROR;
    pub const INTERNAL_TARGET_FAILURE: Sense = Sense::TARGET_FAILURE;
    pub const UNRECOVERED_READ_ERROR: Sense = Sense::READ_ERROR;
    pub const LOGICAL_UNIT_COMMUNICATION_FAILURE: Sense = Sense::LUN_COMM_FAILURE;
    pub const I_T_NEXUS_LOSS_OCCURRED: Sense = Sense::I_T_NEXUS_LOSS;
    pub const SPACE_ALLOCATION_FAILED_WRITE_PROTECT: Sense = Sense::SPACE_ALLOC_FAILED;
    pub const INSUFFICIENT_REGISTRATION_RESOURCES: Sense =
        Sense::new(key::ILLEGAL_REQUEST, 0x55, 0x04);
    pub const RESERVATIONS_PREEMPTED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2A, 0x03);
    pub const RESERVATIONS_RELEASED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2A, 0x04);
    pub const REGISTRATIONS_PREEMPTED: Sense = Sense::new(key::UNIT_ATTENTION, 0x2A, 0x05);
    /// RELEASE whose scope or type differs from the reservation's (SPC-4 5.13.11.2).
    pub const INVALID_RELEASE_OF_PERSISTENT_RESERVATION: Sense =
        Sense::new(key::ILLEGAL_REQUEST, 0x26, 0x04);

    /// The fixed-format image: 0x70, key at byte 2, additional length 10 at byte 7,
    /// ASC at 12, ASCQ at 13.
    pub fn fixed_bytes(&self) -> [u8; FIXED_LEN] {
        let mut out = [0u8; FIXED_LEN];
        out[0] = response_code::FIXED_CURRENT;
        out[2] = self.key & 0x0f;
        out[7] = FIXED_ADDITIONAL_LEN;
        out[12] = self.asc;
        out[13] = self.ascq;
        out
    }

    /// The descriptor-format image without descriptors: 0x72, key, ASC, ASCQ, then
    /// zeros (ADDITIONAL SENSE LENGTH 0).
    pub fn descriptor_bytes(&self) -> [u8; DESCRIPTOR_LEN] {
        let mut out = [0u8; DESCRIPTOR_LEN];
        out[0] = response_code::DESCRIPTOR_CURRENT;
        out[1] = self.key & 0x0f;
        out[2] = self.asc;
        out[3] = self.ascq;
        out
    }

    /// Writes the fixed format into `buf`, truncated to its length; returns the bytes
    /// written (at most 18). Bytes of `buf` past that are left alone.
    pub fn write_fixed(&self, buf: &mut [u8]) -> usize {
        copy_truncated(&self.fixed_bytes(), buf)
    }

    /// Writes the descriptor format into `buf`, truncated to its length; returns the
    /// bytes written (at most 8).
    pub fn write_descriptor(&self, buf: &mut [u8]) -> usize {
        copy_truncated(&self.descriptor_bytes(), buf)
    }

    /// Writes in the given format, truncated; returns the bytes written.
    pub fn write(&self, format: SenseFormat, buf: &mut [u8]) -> usize {
        match format {
            SenseFormat::Fixed => self.write_fixed(buf),
            SenseFormat::Descriptor => self.write_descriptor(buf),
        }
    }

    /// Reads key/ASC/ASCQ from sense data of either format. Response codes 0x72/0x73
    /// select the descriptor layout, anything else the fixed layout. A buffer too
    /// short to hold ASCQ (fixed < 14 bytes, descriptor < 4) yields
    /// [`Sense::IO_ERROR`], what a helper reports when it has no usable sense.
    pub fn parse(buf: &[u8]) -> Sense {
        match format_of(buf) {
            Some(SenseFormat::Descriptor) => match buf.get(1..DESCRIPTOR_MIN_PARSE_LEN) {
                Some(&[key, asc, ascq]) => Sense::new(key & 0x0f, asc, ascq),
                _ => Sense::IO_ERROR,
            },
            _ => {
                if buf.len() < FIXED_MIN_PARSE_LEN {
                    return Sense::IO_ERROR;
                }
                match (buf.get(2), buf.get(12), buf.get(13)) {
                    (Some(&key), Some(&asc), Some(&ascq)) => Sense::new(key & 0x0f, asc, ascq),
                    _ => Sense::IO_ERROR,
                }
            }
        }
    }

    /// The standard description of the ASC/ASCQ pair, if this crate knows it.
    pub fn asc_description(&self) -> Option<&'static str> {
        asc_description(self.asc, self.ascq)
    }

    /// The errno a block layer should see for this sense.
    pub fn to_errno(&self) -> i32 {
        match self.key & 0x0f {
            key::NO_SENSE | key::RECOVERED_ERROR | key::UNIT_ATTENTION => errno::EAGAIN,
            key::ABORTED_COMMAND => errno::ECANCELED,
            key::NOT_READY | key::ILLEGAL_REQUEST | key::DATA_PROTECT => {
                match (self.asc, self.ascq) {
                    (0x1A, 0x00) | (0x20, 0x00) | (0x24, 0x00) | (0x26, 0x00) => errno::EINVAL,
                    (0x21, 0x00) | (0x27, 0x07) => errno::ENOSPC,
                    (0x25, 0x00) => errno::ENOTSUP,
                    (0x3A, 0x00..=0x02) => errno::ENOMEDIUM,
                    (0x27, 0x00) => errno::EACCES,
                    (0x04, 0x01) => errno::EINPROGRESS,
                    (0x04, 0x02) => errno::ENOTCONN,
                    _ => errno::EIO,
                }
            }
            _ => errno::EIO,
        }
    }

    /// Whether the guest can deal with this sense itself (retry, or a request the
    /// guest got wrong), as opposed to a failure the host should act on.
    pub fn is_guest_recoverable(&self) -> bool {
        match self.key & 0x0f {
            key::NO_SENSE | key::RECOVERED_ERROR | key::UNIT_ATTENTION | key::ABORTED_COMMAND => {
                true
            }
            key::NOT_READY | key::ILLEGAL_REQUEST | key::DATA_PROTECT => matches!(
                (self.asc, self.ascq),
                (0x1A, 0x00)
                    | (0x20, 0x00)
                    | (0x24, 0x00)
                    | (0x25, 0x00)
                    | (0x26, 0x00)
                    | (0x21, 0x04)
                    | (0x21, 0x05)
                    | (0x21, 0x06)
                    | (0x55, 0x0E)
                    | (0x04, 0x01)
                    | (0x04, 0x02)
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match key::name(self.key) {
            Some(name) => f.write_str(name)?,
            None => write!(f, "SENSE KEY 0x{:02X}", self.key)?,
        }
        match self.asc_description() {
            Some(text) => write!(f, ": {text}"),
            None => write!(f, ": ASC 0x{:02X} ASCQ 0x{:02X}", self.asc, self.ascq),
        }
    }
}

/// The format of sense data by its response code, `None` for an empty buffer or a
/// response code that is neither fixed nor descriptor.
pub fn format_of(buf: &[u8]) -> Option<SenseFormat> {
    match buf.first()? & 0x7f {
        response_code::FIXED_CURRENT | response_code::FIXED_DEFERRED => Some(SenseFormat::Fixed),
        response_code::DESCRIPTOR_CURRENT | response_code::DESCRIPTOR_DEFERRED => {
            Some(SenseFormat::Descriptor)
        }
        _ => None,
    }
}

/// Whether the sense reports a deferred error (response code 0x71 or 0x73).
pub fn is_deferred(buf: &[u8]) -> bool {
    matches!(
        buf.first().map(|b| b & 0x7f),
        Some(response_code::FIXED_DEFERRED | response_code::DESCRIPTOR_DEFERRED)
    )
}

/// Writes sense data `input` (either format) into `out` in format `to`, truncated
/// to `out`'s length; returns the bytes written. Data already in format `to` is
/// copied as is (keeping information fields and descriptors); otherwise only
/// key/ASC/ASCQ carry over, parsed as [`Sense::parse`] does.
pub fn convert(input: &[u8], to: SenseFormat, out: &mut [u8]) -> usize {
    if format_of(input) == Some(to) {
        return copy_truncated(input, out);
    }
    Sense::parse(input).write(to, out)
}

fn copy_truncated(image: &[u8], buf: &mut [u8]) -> usize {
    let len = image.len().min(buf.len());
    let (dst, src) = (buf.iter_mut(), image.iter());
    dst.zip(src).for_each(|(d, s)| *d = *s);
    len
}

/// Descriptions of the ASC/ASCQ pairs this project produces or may receive from
/// persistent-reservation commands, plus those of QEMU's predefined senses.
pub fn asc_description(asc: u8, ascq: u8) -> Option<&'static str> {
    Some(match (asc, ascq) {
        (0x00, 0x00) => "NO ADDITIONAL SENSE INFORMATION",
        (0x00, 0x06) => "I/O PROCESS TERMINATED",
        (0x04, 0x00) => "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
        (0x04, 0x01) => "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
        (0x04, 0x02) => "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
        (0x04, 0x03) => "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
        (0x04, 0x0A) => "LOGICAL UNIT NOT ACCESSIBLE, ASYMMETRIC ACCESS STATE TRANSITION",
        (0x04, 0x0B) => "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN STANDBY STATE",
        (0x04, 0x0C) => "LOGICAL UNIT NOT ACCESSIBLE, TARGET PORT IN UNAVAILABLE STATE",
        (0x08, 0x00) => "LOGICAL UNIT COMMUNICATION FAILURE",
        (0x08, 0x01) => "LOGICAL UNIT COMMUNICATION TIME-OUT",
        (0x0C, 0x00) => "WRITE ERROR",
        (0x11, 0x00) => "UNRECOVERED READ ERROR",
        (0x1A, 0x00) => "PARAMETER LIST LENGTH ERROR",
        (0x1D, 0x00) => "MISCOMPARE DURING VERIFY OPERATION",
        (0x20, 0x00) => "INVALID COMMAND OPERATION CODE",
        (0x20, 0x02) => "ACCESS DENIED - NO ACCESS RIGHTS",
        (0x21, 0x00) => "LOGICAL BLOCK ADDRESS OUT OF RANGE",
        (0x21, 0x04) => "UNALIGNED WRITE COMMAND",
        (0x21, 0x05) => "WRITE BOUNDARY VIOLATION",
        (0x21, 0x06) => "ATTEMPT TO READ INVALID DATA",
        (0x24, 0x00) => "INVALID FIELD IN CDB",
        (0x25, 0x00) => "LOGICAL UNIT NOT SUPPORTED",
        (0x26, 0x00) => "INVALID FIELD IN PARAMETER LIST",
        (0x26, 0x01) => "PARAMETER NOT SUPPORTED",
        (0x26, 0x02) => "PARAMETER VALUE INVALID",
        (0x26, 0x04) => "INVALID RELEASE OF PERSISTENT RESERVATION",
        (0x26, 0x08) => "TOO MANY SEGMENT DESCRIPTORS",
        (0x27, 0x00) => "WRITE PROTECTED",
        (0x27, 0x07) => "SPACE ALLOCATION FAILED WRITE PROTECT",
        (0x28, 0x00) => "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED",
        (0x29, 0x00) => "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
        (0x29, 0x01) => "POWER ON OCCURRED",
        (0x29, 0x02) => "SCSI BUS RESET OCCURRED",
        (0x29, 0x03) => "BUS DEVICE RESET FUNCTION OCCURRED",
        (0x29, 0x04) => "DEVICE INTERNAL RESET",
        (0x29, 0x07) => "I_T NEXUS LOSS OCCURRED",
        (0x2A, 0x00) => "PARAMETERS CHANGED",
        (0x2A, 0x01) => "MODE PARAMETERS CHANGED",
        (0x2A, 0x03) => "RESERVATIONS PREEMPTED",
        (0x2A, 0x04) => "RESERVATIONS RELEASED",
        (0x2A, 0x05) => "REGISTRATIONS PREEMPTED",
        (0x2A, 0x06) => "ASYMMETRIC ACCESS STATE CHANGED",
        (0x2A, 0x09) => "CAPACITY DATA HAS CHANGED",
        (0x2C, 0x00) => "COMMAND SEQUENCE ERROR",
        (0x2C, 0x09) => "PREVIOUS RESERVATION CONFLICT STATUS",
        (0x30, 0x00) => "INCOMPATIBLE MEDIUM INSTALLED",
        (0x39, 0x00) => "SAVING PARAMETERS NOT SUPPORTED",
        (0x3A, 0x00) => "MEDIUM NOT PRESENT",
        (0x3A, 0x01) => "MEDIUM NOT PRESENT - TRAY CLOSED",
        (0x3A, 0x02) => "MEDIUM NOT PRESENT - TRAY OPEN",
        (0x3E, 0x01) => "LOGICAL UNIT FAILURE",
        (0x3F, 0x03) => "INQUIRY DATA HAS CHANGED",
        (0x3F, 0x0E) => "REPORTED LUNS DATA HAS CHANGED",
        (0x44, 0x00) => "INTERNAL TARGET FAILURE",
        (0x4B, 0x01) => "INVALID TARGET PORT TRANSFER TAG RECEIVED",
        (0x4E, 0x00) => "OVERLAPPED COMMANDS ATTEMPTED",
        (0x53, 0x02) => "MEDIUM REMOVAL PREVENTED",
        (0x55, 0x04) => "INSUFFICIENT REGISTRATION RESOURCES",
        (0x55, 0x0E) => "INSUFFICIENT ZONE RESOURCES",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protocol.md, "Observed behaviour": PR IN on a regular file.
    const GOLDEN_IO_ERROR: [u8; 18] = [
        0x70, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00,
        0x00, 0x00, 0x00,
    ];
    /// protocol.md, "Observed behaviour": PR OUT on a read-only descriptor.
    const GOLDEN_INVALID_OPCODE: [u8; 18] = [
        0x70, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];

    #[test]
    fn fixed_sense_matches_the_reference_helper_byte_for_byte() {
        assert_eq!(Sense::IO_ERROR.fixed_bytes(), GOLDEN_IO_ERROR);
        assert_eq!(Sense::INVALID_OPCODE.fixed_bytes(), GOLDEN_INVALID_OPCODE);
        let mut wire = [0u8; 96];
        assert_eq!(Sense::IO_ERROR.write_fixed(&mut wire), 18);
        assert_eq!(wire[..18], GOLDEN_IO_ERROR);
        assert!(wire[18..].iter().all(|&b| b == 0));
    }

    #[test]
    fn fixed_layout_places_key_length_asc_ascq() {
        let bytes = Sense::new(0x06, 0x2A, 0x03).fixed_bytes();
        assert_eq!(bytes[0], 0x70);
        assert_eq!(bytes[2], 0x06);
        assert_eq!(bytes[7], 10);
        assert_eq!(bytes[12], 0x2A);
        assert_eq!(bytes[13], 0x03);
        assert_eq!(bytes.iter().filter(|&&b| b != 0).count(), 5);
    }

    #[test]
    fn descriptor_layout_places_key_asc_ascq_in_bytes_1_to_3() {
        let sense = Sense::new(0x05, 0x24, 0x00);
        assert_eq!(
            sense.descriptor_bytes(),
            [0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0]
        );
        let mut buf = [0xEEu8; 12];
        assert_eq!(sense.write_descriptor(&mut buf), 8);
        assert_eq!(buf[..8], sense.descriptor_bytes());
        assert_eq!(buf[8..], [0xEE; 4], "bytes past the image are left alone");
    }

    #[test]
    fn key_is_encoded_as_its_low_nibble_only() {
        let sense = Sense::new(0xF5, 0x24, 0x00);
        assert_eq!(sense.fixed_bytes()[2], 0x05);
        assert_eq!(sense.descriptor_bytes()[1], 0x05);
    }

    #[test]
    fn writers_truncate_to_the_callers_buffer() {
        let mut small = [0u8; 5];
        assert_eq!(Sense::INVALID_FIELD.write_fixed(&mut small), 5);
        assert_eq!(small, [0x70, 0, 0x05, 0, 0]);
        let mut tiny = [0u8; 2];
        assert_eq!(Sense::INVALID_FIELD.write_descriptor(&mut tiny), 2);
        assert_eq!(tiny, [0x72, 0x05]);
        assert_eq!(Sense::INVALID_FIELD.write_fixed(&mut []), 0);
        let mut exact = [0u8; 18];
        assert_eq!(
            Sense::INVALID_FIELD.write(SenseFormat::Fixed, &mut exact),
            18
        );
        let mut exact = [0u8; 8];
        assert_eq!(
            Sense::INVALID_FIELD.write(SenseFormat::Descriptor, &mut exact),
            8
        );
    }

    #[test]
    fn parse_reads_both_formats_current_and_deferred() {
        let sense = Sense::new(0x06, 0x2A, 0x05);
        assert_eq!(Sense::parse(&sense.fixed_bytes()), sense);
        assert_eq!(Sense::parse(&sense.descriptor_bytes()), sense);
        let mut deferred = sense.fixed_bytes();
        deferred[0] = 0x71;
        assert_eq!(Sense::parse(&deferred), sense);
        let mut deferred = sense.descriptor_bytes();
        deferred[0] = 0x73;
        assert_eq!(Sense::parse(&deferred), sense);
        let mut valid_bit = sense.fixed_bytes();
        valid_bit[0] = 0xF0;
        assert_eq!(Sense::parse(&valid_bit), sense);
    }

    #[test]
    fn parse_of_short_buffers_yields_io_process_terminated() {
        let fixed = Sense::INVALID_FIELD.fixed_bytes();
        assert_eq!(Sense::parse(&fixed[..13]), Sense::IO_ERROR);
        assert_eq!(Sense::parse(&fixed[..14]), Sense::INVALID_FIELD);
        let descriptor = Sense::INVALID_FIELD.descriptor_bytes();
        assert_eq!(Sense::parse(&descriptor[..3]), Sense::IO_ERROR);
        assert_eq!(Sense::parse(&descriptor[..4]), Sense::INVALID_FIELD);
        assert_eq!(Sense::parse(&[]), Sense::IO_ERROR);
        assert_eq!(Sense::IO_ERROR, Sense::new(0x0B, 0x00, 0x06));
    }

    #[test]
    fn format_and_deferral_come_from_the_response_code() {
        assert_eq!(format_of(&[0x70]), Some(SenseFormat::Fixed));
        assert_eq!(format_of(&[0xF1]), Some(SenseFormat::Fixed));
        assert_eq!(format_of(&[0x72]), Some(SenseFormat::Descriptor));
        assert_eq!(format_of(&[0x73]), Some(SenseFormat::Descriptor));
        assert_eq!(format_of(&[0x00]), None);
        assert_eq!(format_of(&[]), None);
        assert!(is_deferred(&[0x71]));
        assert!(is_deferred(&[0x73]));
        assert!(!is_deferred(&[0x70]));
        assert!(!is_deferred(&[]));
    }

    #[test]
    fn convert_switches_formats_both_ways() {
        let sense = Sense::RESERVATIONS_RELEASED;
        let mut out = [0u8; 18];
        assert_eq!(
            convert(&sense.fixed_bytes(), SenseFormat::Descriptor, &mut out),
            8
        );
        assert_eq!(out[..8], sense.descriptor_bytes());
        assert_eq!(
            convert(&sense.descriptor_bytes(), SenseFormat::Fixed, &mut out),
            18
        );
        assert_eq!(out, sense.fixed_bytes());
        let mut with_info = sense.fixed_bytes().to_vec();
        with_info[3..7].copy_from_slice(&[1, 2, 3, 4]);
        with_info.extend_from_slice(&[9; 6]);
        let mut wide = [0u8; 32];
        assert_eq!(
            convert(&with_info, SenseFormat::Fixed, &mut wide),
            24,
            "same format: copied"
        );
        assert_eq!(wide[..24], with_info[..]);
        let mut short = [0u8; 4];
        assert_eq!(convert(&[0x72], SenseFormat::Fixed, &mut short), 4);
        assert_eq!(short, [0x70, 0, 0x0B, 0]);
    }

    #[test]
    fn predefined_senses_have_their_standard_codes() {
        let table = [
            (Sense::NO_SENSE, (0x00, 0x00, 0x00)),
            (Sense::LUN_NOT_READY, (0x02, 0x04, 0x03)),
            (Sense::NO_MEDIUM, (0x02, 0x3A, 0x00)),
            (Sense::TARGET_FAILURE, (0x04, 0x44, 0x00)),
            (Sense::INVALID_OPCODE, (0x05, 0x20, 0x00)),
            (Sense::LBA_OUT_OF_RANGE, (0x05, 0x21, 0x00)),
            (Sense::INVALID_FIELD, (0x05, 0x24, 0x00)),
            (Sense::INVALID_PARAM, (0x05, 0x26, 0x00)),
            (Sense::INVALID_PARAM_LEN, (0x05, 0x1A, 0x00)),
            (Sense::LUN_NOT_SUPPORTED, (0x05, 0x25, 0x00)),
            (Sense::IO_ERROR, (0x0B, 0x00, 0x06)),
            (Sense::I_T_NEXUS_LOSS, (0x0B, 0x29, 0x07)),
            (Sense::LUN_COMM_FAILURE, (0x0B, 0x08, 0x00)),
            (Sense::READ_ERROR, (0x03, 0x11, 0x00)),
            (Sense::NOT_READY, (0x02, 0x04, 0x00)),
            (Sense::RESET, (0x06, 0x29, 0x00)),
            (Sense::SCSI_BUS_RESET, (0x06, 0x29, 0x02)),
            (Sense::WRITE_PROTECTED, (0x07, 0x27, 0x00)),
            (Sense::SPACE_ALLOC_FAILED, (0x07, 0x27, 0x07)),
            (
                Sense::INSUFFICIENT_REGISTRATION_RESOURCES,
                (0x05, 0x55, 0x04),
            ),
            (Sense::RESERVATIONS_PREEMPTED, (0x06, 0x2A, 0x03)),
            (Sense::RESERVATIONS_RELEASED, (0x06, 0x2A, 0x04)),
            (Sense::REGISTRATIONS_PREEMPTED, (0x06, 0x2A, 0x05)),
        ];
        for (sense, (key, asc, ascq)) in table {
            assert_eq!(
                (sense.key, sense.asc, sense.ascq),
                (key, asc, ascq),
                "{sense}"
            );
        }
    }

    #[test]
    fn display_is_key_name_then_description() {
        assert_eq!(
            Sense::INVALID_FIELD.to_string(),
            "ILLEGAL REQUEST: INVALID FIELD IN CDB"
        );
        assert_eq!(
            Sense::IO_ERROR.to_string(),
            "ABORTED COMMAND: I/O PROCESS TERMINATED"
        );
        assert_eq!(
            Sense::INSUFFICIENT_REGISTRATION_RESOURCES.to_string(),
            "ILLEGAL REQUEST: INSUFFICIENT REGISTRATION RESOURCES"
        );
        assert_eq!(
            Sense::new(0x05, 0x99, 0x01).to_string(),
            "ILLEGAL REQUEST: ASC 0x99 ASCQ 0x01"
        );
        assert_eq!(
            Sense::new(0x0C, 0x24, 0x00).to_string(),
            "SENSE KEY 0x0C: INVALID FIELD IN CDB"
        );
    }

    #[test]
    fn every_named_sense_has_a_description() {
        let named = [
            Sense::NO_SENSE,
            Sense::LUN_NOT_READY,
            Sense::NO_MEDIUM,
            Sense::NOT_READY_REMOVAL_PREVENTED,
            Sense::TARGET_FAILURE,
            Sense::INVALID_OPCODE,
            Sense::LBA_OUT_OF_RANGE,
            Sense::INVALID_FIELD,
            Sense::INVALID_PARAM,
            Sense::INVALID_PARAM_VALUE,
            Sense::INVALID_PARAM_LEN,
            Sense::LUN_NOT_SUPPORTED,
            Sense::SAVING_PARAMS_NOT_SUPPORTED,
            Sense::INCOMPATIBLE_FORMAT,
            Sense::ILLEGAL_REQ_REMOVAL_PREVENTED,
            Sense::INVALID_TAG,
            Sense::TOO_MANY_SEGMENTS,
            Sense::IO_ERROR,
            Sense::I_T_NEXUS_LOSS,
            Sense::LUN_FAILURE,
            Sense::LUN_COMM_FAILURE,
            Sense::OVERLAPPED_COMMANDS,
            Sense::READ_ERROR,
            Sense::NOT_READY,
            Sense::CAPACITY_CHANGED,
            Sense::SCSI_BUS_RESET,
            Sense::UNIT_ATTENTION_NO_MEDIUM,
            Sense::RESET,
            Sense::MEDIUM_CHANGED,
            Sense::REPORTED_LUNS_CHANGED,
            Sense::DEVICE_INTERNAL_RESET,
            Sense::WRITE_PROTECTED,
            Sense::SPACE_ALLOC_FAILED,
            Sense::MISCOMPARE,
            Sense::INSUFFICIENT_REGISTRATION_RESOURCES,
            Sense::RESERVATIONS_PREEMPTED,
            Sense::RESERVATIONS_RELEASED,
            Sense::REGISTRATIONS_PREEMPTED,
        ];
        for sense in named {
            assert!(sense.asc_description().is_some(), "{sense:?}");
            assert!(key::name(sense.key).is_some(), "{sense:?}");
        }
    }

    #[test]
    fn key_names_cover_every_defined_key() {
        assert_eq!(key::name(key::ILLEGAL_REQUEST), Some("ILLEGAL REQUEST"));
        assert_eq!(key::name(key::ABORTED_COMMAND), Some("ABORTED COMMAND"));
        assert_eq!(key::name(0x0C), None);
        assert_eq!(key::name(0x10), None);
        assert_eq!((0..=0x0F).filter(|&k| key::name(k).is_some()).count(), 15);
    }

    #[test]
    fn errno_follows_the_key_then_the_asc() {
        use crate::errno::*;
        let cases = [
            (Sense::NO_SENSE, EAGAIN),
            (Sense::new(key::RECOVERED_ERROR, 0x17, 0x00), EAGAIN),
            (Sense::RESERVATIONS_PREEMPTED, EAGAIN),
            (Sense::IO_ERROR, ECANCELED),
            (Sense::LUN_COMM_FAILURE, ECANCELED),
            (Sense::INVALID_PARAM_LEN, EINVAL),
            (Sense::INVALID_OPCODE, EINVAL),
            (Sense::INVALID_FIELD, EINVAL),
            (Sense::INVALID_PARAM, EINVAL),
            (Sense::LBA_OUT_OF_RANGE, ENOSPC),
            (Sense::SPACE_ALLOC_FAILED, ENOSPC),
            (Sense::LUN_NOT_SUPPORTED, ENOTSUP),
            (Sense::NO_MEDIUM, ENOMEDIUM),
            (Sense::new(key::NOT_READY, 0x3A, 0x01), ENOMEDIUM),
            (Sense::new(key::NOT_READY, 0x3A, 0x02), ENOMEDIUM),
            (Sense::new(key::NOT_READY, 0x3A, 0x03), EIO),
            (Sense::WRITE_PROTECTED, EACCES),
            (Sense::new(key::NOT_READY, 0x04, 0x01), EINPROGRESS),
            (Sense::new(key::NOT_READY, 0x04, 0x02), ENOTCONN),
            (Sense::NOT_READY, EIO),
            (Sense::INSUFFICIENT_REGISTRATION_RESOURCES, EIO),
            (Sense::READ_ERROR, EIO),
            (Sense::TARGET_FAILURE, EIO),
            (Sense::MISCOMPARE, EIO),
            (Sense::new(key::MEDIUM_ERROR, 0x24, 0x00), EIO),
        ];
        for (sense, expected) in cases {
            assert_eq!(sense.to_errno(), expected, "{sense}");
        }
    }

    #[test]
    fn guest_recoverable_follows_the_listed_codes() {
        for sense in [
            Sense::NO_SENSE,
            Sense::RESET,
            Sense::IO_ERROR,
            Sense::new(1, 0x17, 1),
        ] {
            assert!(sense.is_guest_recoverable(), "{sense}");
        }
        for (asc, ascq) in [
            (0x1A, 0x00),
            (0x20, 0x00),
            (0x24, 0x00),
            (0x25, 0x00),
            (0x26, 0x00),
            (0x21, 0x04),
            (0x21, 0x05),
            (0x21, 0x06),
            (0x55, 0x0E),
            (0x04, 0x01),
            (0x04, 0x02),
        ] {
            for k in [key::NOT_READY, key::ILLEGAL_REQUEST, key::DATA_PROTECT] {
                assert!(
                    Sense::new(k, asc, ascq).is_guest_recoverable(),
                    "{k} {asc:x} {ascq:x}"
                );
            }
            assert!(!Sense::new(key::MEDIUM_ERROR, asc, ascq).is_guest_recoverable());
        }
        for sense in [
            Sense::LBA_OUT_OF_RANGE,
            Sense::NO_MEDIUM,
            Sense::WRITE_PROTECTED,
            Sense::SPACE_ALLOC_FAILED,
            Sense::INSUFFICIENT_REGISTRATION_RESOURCES,
            Sense::TARGET_FAILURE,
            Sense::READ_ERROR,
            Sense::MISCOMPARE,
        ] {
            assert!(!sense.is_guest_recoverable(), "{sense}");
        }
    }
}

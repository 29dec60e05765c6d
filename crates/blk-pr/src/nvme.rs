//! NVMe reservations, the vocabulary (NVM Express Base Specification, "Reservations"
//! and the four reservation commands). Pure: commands encoded to their command dwords
//! and data, the Reservation Report's extended data structure decoded and encoded.
//! Multi-byte fields on the wire are little endian.

use std::fmt;

use scsi::pr::{ReservationType, TransportId};
use thiserror::Error;

/// NVM command set opcodes of the reservation commands.
pub mod opcode {
    pub const RESERVATION_REGISTER: u8 = 0x0d;
    pub const RESERVATION_REPORT: u8 = 0x0e;
    pub const RESERVATION_ACQUIRE: u8 = 0x11;
    pub const RESERVATION_RELEASE: u8 = 0x15;
    /// Admin command set.
    pub const IDENTIFY: u8 = 0x06;
    /// Admin command set.
    pub const GET_FEATURES: u8 = 0x0a;
}

/// Identify CNS 0: the Identify Namespace data structure (4096 bytes).
pub const IDENTIFY_DATA_LEN: usize = 4096;
/// Byte of the Identify Namespace data structure holding RESCAP (after NSZE, NCAP,
/// NUSE, NSFEAT, NLBAF, FLBAS, MC, DPC, DPS and NMIC).
pub const RESCAP_OFFSET: usize = 31;
/// Feature identifier of the Host Identifier.
pub const FEATURE_HOST_IDENTIFIER: u32 = 0x81;
/// The Reservation Status extended data structure's header.
pub const EXTENDED_HEADER_LEN: usize = 64;
/// One Registered Controller extended data structure.
pub const EXTENDED_REGISTRANT_LEN: usize = 64;
/// The Reservation Status data structure's header (64-bit host IDs).
pub const BASIC_HEADER_LEN: usize = 24;
/// One Registered Controller data structure (64-bit host IDs).
pub const BASIC_REGISTRANT_LEN: usize = 24;

/// A 128-bit Host Identifier, the identity NVMe reservations are held by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, PartialOrd, Ord)]
pub struct HostId(pub [u8; 16]);

/// The iSCSI-name prefix of the TransportIDs built from host IDs: the NVMe form of a
/// UUID-based qualified name, as hosts' default host NQNs are written.
pub const HOST_NQN_UUID_PREFIX: &str = "nqn.2014-08.org.nvmexpress:uuid:";

impl HostId {
    /// The TransportID READ FULL STATUS reports for this host: SCSI has no NVMe
    /// protocol identifier, so the host is named in an iSCSI TransportID (format 0) by
    /// `nqn.2014-08.org.nvmexpress:uuid:` and the host ID as a UUID.
    pub fn transport_id(&self) -> TransportId {
        TransportId::iscsi(format!("{HOST_NQN_UUID_PREFIX}{self}"))
    }
}

impl HostId {
    /// Parses the UUID form (32 hexadecimal digits, dashes anywhere), as sysfs'
    /// `hostid` attribute of an NVMe over Fabrics controller gives it.
    pub fn parse_uuid(text: &str) -> Option<HostId> {
        let digits: Vec<u8> = text
            .trim()
            .bytes()
            .filter(|&b| b != b'-')
            .map(|b| (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok()))
            .collect::<Option<_>>()?;
        if digits.len() != 32 {
            return None;
        }
        let mut id = [0u8; 16];
        for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
            *byte = pair[0] << 4 | pair[1];
        }
        Some(HostId(id))
    }
}

impl fmt::Display for HostId {
    /// The UUID form, `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, bytes in order.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// NVMe reservation types (the RTYPE field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum NvmeReservationType {
    WriteExclusive = 1,
    ExclusiveAccess = 2,
    WriteExclusiveRegistrantsOnly = 3,
    ExclusiveAccessRegistrantsOnly = 4,
    WriteExclusiveAllRegistrants = 5,
    ExclusiveAccessAllRegistrants = 6,
}

impl NvmeReservationType {
    pub const ALL: [NvmeReservationType; 6] = [
        NvmeReservationType::WriteExclusive,
        NvmeReservationType::ExclusiveAccess,
        NvmeReservationType::WriteExclusiveRegistrantsOnly,
        NvmeReservationType::ExclusiveAccessRegistrantsOnly,
        NvmeReservationType::WriteExclusiveAllRegistrants,
        NvmeReservationType::ExclusiveAccessAllRegistrants,
    ];

    pub const fn code(self) -> u8 {
        self as u8
    }

    pub const fn from_code(code: u8) -> Option<NvmeReservationType> {
        Some(match code {
            1 => NvmeReservationType::WriteExclusive,
            2 => NvmeReservationType::ExclusiveAccess,
            3 => NvmeReservationType::WriteExclusiveRegistrantsOnly,
            4 => NvmeReservationType::ExclusiveAccessRegistrantsOnly,
            5 => NvmeReservationType::WriteExclusiveAllRegistrants,
            6 => NvmeReservationType::ExclusiveAccessAllRegistrants,
            _ => return None,
        })
    }

    /// Every registrant is a holder.
    pub const fn all_registrants(self) -> bool {
        matches!(
            self,
            NvmeReservationType::WriteExclusiveAllRegistrants
                | NvmeReservationType::ExclusiveAccessAllRegistrants
        )
    }
}

/// SCSI types and NVMe types pair up in the order of their `ALL` lists.
impl From<ReservationType> for NvmeReservationType {
    fn from(rtype: ReservationType) -> Self {
        let index = ReservationType::ALL.iter().position(|&t| t == rtype);
        NvmeReservationType::ALL[index.unwrap_or(0)]
    }
}

impl From<NvmeReservationType> for ReservationType {
    fn from(rtype: NvmeReservationType) -> Self {
        ReservationType::ALL[usize::from(rtype.code()) - 1]
    }
}

/// An NVMe completion status as the kernel's passthrough returns it: Status Code in
/// bits 0-7, Status Code Type in 8-10, CRD in 11-12, More in 13, DNR in 14.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NvmeStatus(pub u16);

impl NvmeStatus {
    pub const SUCCESS: NvmeStatus = NvmeStatus(0x000);
    pub const INVALID_OPCODE: NvmeStatus = NvmeStatus(0x001);
    pub const INVALID_FIELD: NvmeStatus = NvmeStatus(0x002);
    pub const DATA_TRANSFER_ERROR: NvmeStatus = NvmeStatus(0x004);
    pub const INTERNAL_ERROR: NvmeStatus = NvmeStatus(0x006);
    pub const ABORTED_BY_REQUEST: NvmeStatus = NvmeStatus(0x007);
    pub const INVALID_NAMESPACE: NvmeStatus = NvmeStatus(0x00b);
    pub const HOST_ID_INCONSISTENT_FORMAT: NvmeStatus = NvmeStatus(0x018);
    pub const NAMESPACE_NOT_READY: NvmeStatus = NvmeStatus(0x082);
    pub const RESERVATION_CONFLICT: NvmeStatus = NvmeStatus(0x083);
    /// The Do Not Retry bit.
    pub const DNR: u16 = 0x4000;

    /// Status Code Type and Status Code, without CRD, More and DNR.
    pub const fn code(self) -> NvmeStatus {
        NvmeStatus(self.0 & 0x07ff)
    }

    pub const fn status_code_type(self) -> u8 {
        ((self.0 >> 8) & 0x7) as u8
    }

    pub const fn status_code(self) -> u8 {
        (self.0 & 0xff) as u8
    }

    pub const fn do_not_retry(self) -> bool {
        self.0 & Self::DNR != 0
    }

    /// The Path Related Status type (SCT 3): the command did not reach the namespace.
    pub const fn is_path_error(self) -> bool {
        self.status_code_type() == 3
    }
}

impl fmt::Display for NvmeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.code() {
            NvmeStatus::SUCCESS => "Successful Completion",
            NvmeStatus::INVALID_OPCODE => "Invalid Command Opcode",
            NvmeStatus::INVALID_FIELD => "Invalid Field in Command",
            NvmeStatus::DATA_TRANSFER_ERROR => "Data Transfer Error",
            NvmeStatus::INTERNAL_ERROR => "Internal Error",
            NvmeStatus::ABORTED_BY_REQUEST => "Command Abort Requested",
            NvmeStatus::INVALID_NAMESPACE => "Invalid Namespace or Format",
            NvmeStatus::HOST_ID_INCONSISTENT_FORMAT => "Host Identifier Inconsistent Format",
            NvmeStatus::NAMESPACE_NOT_READY => "Namespace Not Ready",
            NvmeStatus::RESERVATION_CONFLICT => "Reservation Conflict",
            _ => "status",
        };
        write!(
            f,
            "{name} (SCT 0x{:x}, SC 0x{:02x})",
            self.status_code_type(),
            self.status_code()
        )
    }
}

/// Change Persist Through Power Loss State (Reservation Register CPTPL, bits 31:30).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum PtplChange {
    #[default]
    NoChange = 0,
    /// Reservations are released and registrants cleared on a power loss.
    Clear = 2,
    /// Reservations and registrants persist across a power loss.
    Set = 3,
}

/// Reservation Register Action (RREGA).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum RegisterAction {
    Register = 0,
    Unregister = 1,
    Replace = 2,
}

/// A Reservation Register command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Register {
    pub action: RegisterAction,
    /// CRKEY: the host's current key (checked unless `ignore_existing_key`).
    pub current_key: u64,
    /// NRKEY: the key to register or replace with.
    pub new_key: u64,
    pub ignore_existing_key: bool,
    pub ptpl: PtplChange,
}

/// Reservation Acquire Action (RACQA).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum AcquireAction {
    Acquire = 0,
    Preempt = 1,
    PreemptAndAbort = 2,
}

/// A Reservation Acquire command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Acquire {
    pub action: AcquireAction,
    /// CRKEY: the host's key.
    pub current_key: u64,
    /// PRKEY: the key whose registrants are preempted (Preempt, Preempt and Abort).
    pub preempt_key: u64,
    pub rtype: NvmeReservationType,
}

/// Reservation Release Action (RRELA).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReleaseAction {
    Release = 0,
    Clear = 1,
}

/// A Reservation Release command.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Release {
    pub action: ReleaseAction,
    /// CRKEY: the host's key.
    pub current_key: u64,
    /// The type being released (ignored by Clear; 0 is sent for it then).
    pub rtype: Option<NvmeReservationType>,
}

const IEKEY: u32 = 1 << 3;

impl Register {
    /// Command dword 10: RREGA, IEKEY, CPTPL.
    pub fn cdw10(&self) -> u32 {
        let iekey = if self.ignore_existing_key { IEKEY } else { 0 };
        self.action as u32 | iekey | (self.ptpl as u32) << 30
    }

    /// The 16-byte data: CRKEY then NRKEY.
    pub fn data(&self) -> [u8; 16] {
        two_keys(self.current_key, self.new_key)
    }
}

impl Acquire {
    /// Command dword 10: RACQA and RTYPE (IEKEY is never set: obsolete for Acquire).
    pub fn cdw10(&self) -> u32 {
        self.action as u32 | u32::from(self.rtype.code()) << 8
    }

    /// The 16-byte data: CRKEY then PRKEY.
    pub fn data(&self) -> [u8; 16] {
        two_keys(self.current_key, self.preempt_key)
    }
}

impl Release {
    /// Command dword 10: RRELA and RTYPE.
    pub fn cdw10(&self) -> u32 {
        let rtype = self.rtype.map_or(0, NvmeReservationType::code);
        self.action as u32 | u32::from(rtype) << 8
    }

    /// The 8-byte data: CRKEY.
    pub fn data(&self) -> [u8; 8] {
        self.current_key.to_le_bytes()
    }
}

fn two_keys(first: u64, second: u64) -> [u8; 16] {
    let mut data = [0u8; 16];
    data[..8].copy_from_slice(&first.to_le_bytes());
    data[8..].copy_from_slice(&second.to_le_bytes());
    data
}

/// Reservation Report command dword 10 for a buffer of `len` bytes (a multiple of
/// 4, at least 4): NUMD, the number of dwords, 0's based.
pub fn report_cdw10(len: usize) -> u32 {
    u32::try_from(len / 4).unwrap_or(u32::MAX).max(1) - 1
}

/// The two layouts of the Reservation Status data structure.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ReportLayout {
    /// EDS set: 64-byte header and entries, 128-bit host IDs (what NVMe over Fabrics
    /// and Linux's target require).
    Extended,
    /// EDS clear: 24-byte header and entries, 64-bit host IDs (controllers that
    /// answer the extended one with Host Identifier Inconsistent Format).
    Basic,
}

impl ReportLayout {
    pub const fn header_len(self) -> usize {
        match self {
            ReportLayout::Extended => EXTENDED_HEADER_LEN,
            ReportLayout::Basic => BASIC_HEADER_LEN,
        }
    }

    pub const fn entry_len(self) -> usize {
        match self {
            ReportLayout::Extended => EXTENDED_REGISTRANT_LEN,
            ReportLayout::Basic => BASIC_REGISTRANT_LEN,
        }
    }

    /// Bytes the whole structure takes with `registrants` entries.
    pub fn len(self, registrants: usize) -> usize {
        self.header_len()
            .saturating_add(registrants.saturating_mul(self.entry_len()))
    }

    /// Offsets in an entry of the key and of the host ID, and the host ID's length.
    const fn key_and_host_id(self) -> (usize, usize, usize) {
        match self {
            ReportLayout::Extended => (8, 16, 16),
            ReportLayout::Basic => (16, 8, 8),
        }
    }

    /// Reservation Report command dword 11 (EDS).
    pub const fn cdw11(self) -> u32 {
        match self {
            ReportLayout::Extended => 1,
            ReportLayout::Basic => 0,
        }
    }
}

/// One registrant in a Reservation Report (a Registered Controller extended data
/// structure).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Registrant {
    /// CNTLID (0xFFFF for a dynamic controller).
    pub controller_id: u16,
    /// RCSTS bit 0: the host holds the reservation (every registrant does under the
    /// all-registrants types).
    pub holds_reservation: bool,
    pub host_id: HostId,
    pub key: u64,
}

/// The Reservation Status extended data structure.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReservationStatus {
    /// GEN: bumped by every successful Register, Preempt and Clear.
    pub generation: u32,
    /// RTYPE; `None` when no reservation is held (0).
    pub rtype: Option<NvmeReservationType>,
    /// PTPLS: Persist Through Power Loss State.
    pub ptpl_state: bool,
    /// One entry per registered controller, in the device's order.
    pub registrants: Vec<Registrant>,
}

/// Why a Reservation Report's data cannot be read.
#[derive(Clone, PartialEq, Eq, Debug, Error)]
pub enum ReportDecodeError {
    #[error("reservation report of {got} bytes is shorter than its {needed}-byte header")]
    TooShort { needed: usize, got: usize },
    #[error("reservation report names reservation type {0}, which NVMe does not define")]
    UnknownType(u8),
}

impl ReservationStatus {
    /// Decodes the structure in `layout`. `buf` may stop short of what REGCTL says
    /// (a small buffer): the entries that fit are returned with the length the whole
    /// structure needs, so the caller can ask again with a larger buffer.
    pub fn decode(
        buf: &[u8],
        layout: ReportLayout,
    ) -> Result<(ReservationStatus, usize), ReportDecodeError> {
        let header_len = layout.header_len();
        let header = buf.get(..header_len).ok_or(ReportDecodeError::TooShort {
            needed: header_len,
            got: buf.len(),
        })?;
        let generation = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let rtype = match header[4] {
            0 => None,
            code => Some(
                NvmeReservationType::from_code(code).ok_or(ReportDecodeError::UnknownType(code))?,
            ),
        };
        let count = usize::from(u16::from_le_bytes([header[5], header[6]]));
        let ptpl_state = header[9] & 1 != 0;
        let entries = buf.get(header_len..).unwrap_or_default();
        let (key_at, id_at, id_len) = layout.key_and_host_id();
        let registrants = entries
            .chunks_exact(layout.entry_len())
            .take(count)
            .map(|entry| {
                // A 64-bit host ID fills the first 8 bytes of the 128-bit value.
                let mut host_id = [0u8; 16];
                host_id[..id_len].copy_from_slice(&entry[id_at..id_at + id_len]);
                let mut key = [0u8; 8];
                key.copy_from_slice(&entry[key_at..key_at + 8]);
                Registrant {
                    controller_id: u16::from_le_bytes([entry[0], entry[1]]),
                    holds_reservation: entry[2] & 1 != 0,
                    host_id: HostId(host_id),
                    key: u64::from_le_bytes(key),
                }
            })
            .collect();
        let status = ReservationStatus {
            generation,
            rtype,
            ptpl_state,
            registrants,
        };
        Ok((status, layout.len(count)))
    }

    /// The structure in `layout`, every registrant included (a 64-bit layout keeps
    /// the first 8 bytes of each host ID).
    pub fn encode(&self, layout: ReportLayout) -> Vec<u8> {
        let mut out = vec![0u8; layout.header_len()];
        out[0..4].copy_from_slice(&self.generation.to_le_bytes());
        out[4] = self.rtype.map_or(0, NvmeReservationType::code);
        let count = u16::try_from(self.registrants.len()).unwrap_or(u16::MAX);
        out[5..7].copy_from_slice(&count.to_le_bytes());
        out[9] = u8::from(self.ptpl_state);
        let (key_at, id_at, id_len) = layout.key_and_host_id();
        for registrant in self.registrants.iter().take(usize::from(count)) {
            let mut entry = vec![0u8; layout.entry_len()];
            entry[0..2].copy_from_slice(&registrant.controller_id.to_le_bytes());
            entry[2] = u8::from(registrant.holds_reservation);
            entry[key_at..key_at + 8].copy_from_slice(&registrant.key.to_le_bytes());
            entry[id_at..id_at + id_len].copy_from_slice(&registrant.host_id.0[..id_len]);
            out.extend_from_slice(&entry);
        }
        out
    }

    /// The registrants, one per host (a host with several controllers may appear once
    /// per controller), in the order of each host's first entry.
    pub fn hosts(&self) -> Vec<Registrant> {
        let mut out: Vec<Registrant> = Vec::new();
        for registrant in &self.registrants {
            match out.iter_mut().find(|r| r.host_id == registrant.host_id) {
                Some(seen) => seen.holds_reservation |= registrant.holds_reservation,
                None => out.push(*registrant),
            }
        }
        out
    }

    /// The registrant entry of `host`, if it is registered.
    pub fn registrant(&self, host: &HostId) -> Option<Registrant> {
        self.hosts().into_iter().find(|r| r.host_id == *host)
    }
}

/// Reservation Capabilities (RESCAP, Identify Namespace byte 31).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct ReservationCapabilities {
    /// Bit 0: Persist Through Power Loss supported.
    pub persist_through_power_loss: bool,
    /// Bits 1-6: the reservation types supported, in `NvmeReservationType` order.
    pub types: [bool; 6],
    /// Bit 7: Ignore Existing Key behaves as NVMe 1.3 and later define it.
    pub ignore_existing_key: bool,
    /// Whether these come from the namespace: `false` when Identify Namespace could
    /// not be sent (no CAP_SYS_ADMIN on a kernel that filters it), and the device is
    /// left to refuse what it does not support.
    pub reported: bool,
}

impl ReservationCapabilities {
    /// Everything supported (the model, and devices that say so).
    pub const ALL: ReservationCapabilities = ReservationCapabilities {
        persist_through_power_loss: true,
        types: [true; 6],
        ignore_existing_key: true,
        reported: true,
    };

    /// Nothing known: every type is tried, persistence is not claimed.
    pub const UNKNOWN: ReservationCapabilities = ReservationCapabilities {
        persist_through_power_loss: false,
        types: [true; 6],
        ignore_existing_key: true,
        reported: false,
    };

    /// RESCAP of an Identify Namespace data structure (none if it is too short).
    pub fn from_identify_namespace(identify: &[u8]) -> ReservationCapabilities {
        let rescap = identify.get(RESCAP_OFFSET).copied().unwrap_or(0);
        ReservationCapabilities::from_rescap(rescap)
    }

    pub fn from_rescap(rescap: u8) -> ReservationCapabilities {
        let mut types = [false; 6];
        for (i, supported) in types.iter_mut().enumerate() {
            *supported = rescap & (1 << (i + 1)) != 0;
        }
        ReservationCapabilities {
            persist_through_power_loss: rescap & 1 != 0,
            types,
            ignore_existing_key: rescap & 0x80 != 0,
            reported: true,
        }
    }

    pub fn to_rescap(&self) -> u8 {
        let mut rescap = u8::from(self.persist_through_power_loss);
        for (i, &supported) in self.types.iter().enumerate() {
            if supported {
                rescap |= 1 << (i + 1);
            }
        }
        if self.ignore_existing_key {
            rescap |= 0x80;
        }
        rescap
    }

    pub fn supports(&self, rtype: NvmeReservationType) -> bool {
        let index = usize::from(rtype.code()).saturating_sub(1);
        self.types.get(index).copied().unwrap_or(false)
    }

    /// Whether the namespace supports reservations at all.
    pub fn any(&self) -> bool {
        self.types.iter().any(|&t| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_ids_print_as_uuids_and_name_an_iscsi_transport_id() {
        let host = HostId([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
            0xcd, 0xef,
        ]);
        assert_eq!(host.to_string(), "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(
            HostId::parse_uuid("12345678-9ABC-def0-0123-456789abcdef\n"),
            Some(host)
        );
        assert_eq!(HostId::parse_uuid("12345678-9abc"), None);
        assert_eq!(
            HostId::parse_uuid("g2345678-9abc-def0-0123-456789abcdef"),
            None
        );
        assert_eq!(
            host.transport_id(),
            TransportId::iscsi(
                "nqn.2014-08.org.nvmexpress:uuid:12345678-9abc-def0-0123-456789abcdef"
            )
        );
    }

    #[test]
    fn command_dwords_carry_the_actions_types_and_flags() {
        let register = Register {
            action: RegisterAction::Replace,
            current_key: 0x0102_0304_0506_0708,
            new_key: 0xA1,
            ignore_existing_key: true,
            ptpl: PtplChange::Set,
        };
        assert_eq!(register.cdw10(), 0xC000_000A);
        assert_eq!(register.data()[..8], [8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(register.data()[8..], [0xA1, 0, 0, 0, 0, 0, 0, 0]);
        let acquire = Acquire {
            action: AcquireAction::PreemptAndAbort,
            current_key: 1,
            preempt_key: 2,
            rtype: NvmeReservationType::ExclusiveAccessAllRegistrants,
        };
        assert_eq!(acquire.cdw10(), 0x0602);
        let release = Release {
            action: ReleaseAction::Clear,
            current_key: 5,
            rtype: None,
        };
        assert_eq!(release.cdw10(), 1);
        assert_eq!(release.data(), [5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(report_cdw10(4096), 1023);
        assert_eq!(ReportLayout::Extended.cdw11(), 1);
    }

    #[test]
    fn scsi_and_nvme_types_map_one_to_one() {
        let nvme: Vec<u8> = ReservationType::ALL
            .into_iter()
            .map(|t| NvmeReservationType::from(t).code())
            .collect();
        assert_eq!(nvme, [1, 2, 3, 4, 5, 6]);
        for t in ReservationType::ALL {
            assert_eq!(ReservationType::from(NvmeReservationType::from(t)), t);
        }
    }

    #[test]
    fn the_extended_report_round_trips_and_reports_what_a_short_buffer_missed() {
        let status = ReservationStatus {
            generation: 7,
            rtype: Some(NvmeReservationType::WriteExclusiveRegistrantsOnly),
            ptpl_state: true,
            registrants: vec![
                Registrant {
                    controller_id: 0xffff,
                    holds_reservation: true,
                    host_id: HostId([1; 16]),
                    key: 0xA1,
                },
                Registrant {
                    controller_id: 2,
                    holds_reservation: false,
                    host_id: HostId([2; 16]),
                    key: 0xB2,
                },
            ],
        };
        let bytes = status.encode(ReportLayout::Extended);
        assert_eq!(bytes.len(), 64 + 2 * 64);
        assert_eq!(bytes[..10], [7, 0, 0, 0, 3, 2, 0, 0, 0, 1]);
        assert_eq!(bytes[64 + 8], 0xA1);
        assert_eq!(bytes[64 + 16..64 + 32], [1; 16]);
        assert_eq!(
            ReservationStatus::decode(&bytes, ReportLayout::Extended),
            Ok((status.clone(), 192))
        );
        let (short, needed) =
            ReservationStatus::decode(&bytes[..128], ReportLayout::Extended).unwrap();
        assert_eq!(short.registrants.len(), 1);
        assert_eq!(needed, 192);
        assert_eq!(
            ReservationStatus::decode(&bytes[..63], ReportLayout::Extended),
            Err(ReportDecodeError::TooShort {
                needed: 64,
                got: 63
            })
        );
        let mut odd = bytes.clone();
        odd[4] = 9;
        assert_eq!(
            ReservationStatus::decode(&odd, ReportLayout::Extended),
            Err(ReportDecodeError::UnknownType(9))
        );
    }

    #[test]
    fn the_basic_report_carries_64_bit_host_ids() {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let status = ReservationStatus {
            generation: 3,
            rtype: Some(NvmeReservationType::ExclusiveAccess),
            ptpl_state: false,
            registrants: vec![Registrant {
                controller_id: 1,
                holds_reservation: true,
                host_id: HostId(id),
                key: 0xA1,
            }],
        };
        let bytes = status.encode(ReportLayout::Basic);
        assert_eq!(bytes.len(), 48);
        assert_eq!(bytes[24 + 8..24 + 16], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(bytes[24 + 16], 0xA1);
        assert_eq!(
            ReservationStatus::decode(&bytes, ReportLayout::Basic),
            Ok((status, 48))
        );
    }

    #[test]
    fn a_host_with_two_controllers_is_one_registrant() {
        let entry = |cntlid, holds| Registrant {
            controller_id: cntlid,
            holds_reservation: holds,
            host_id: HostId([9; 16]),
            key: 5,
        };
        let status = ReservationStatus {
            registrants: vec![entry(1, false), entry(2, true)],
            ..ReservationStatus::default()
        };
        let hosts = status.hosts();
        assert_eq!(hosts.len(), 1);
        assert!(hosts[0].holds_reservation);
    }

    #[test]
    fn rescap_is_byte_31_of_identify_namespace() {
        // What Linux's target sets for a namespace with resv_enable: every type and
        // the NVMe 1.3 IEKEY behaviour, no persistence through power loss.
        let mut identify = vec![0u8; IDENTIFY_DATA_LEN];
        identify[30] = 0x01; // NMIC: shared
        identify[31] = 0xFE;
        identify[32] = 0x55; // FPI
        let caps = ReservationCapabilities::from_identify_namespace(&identify);
        assert_eq!(caps.types, [true; 6]);
        assert!(caps.ignore_existing_key && !caps.persist_through_power_loss);
        assert!(!ReservationCapabilities::from_identify_namespace(&identify[..31]).any());
    }

    #[test]
    fn rescap_bits() {
        let caps = ReservationCapabilities::from_rescap(0b0111_1110);
        assert!(!caps.persist_through_power_loss);
        assert!(caps.types.iter().all(|&t| t));
        assert!(!caps.ignore_existing_key);
        assert_eq!(caps.to_rescap(), 0b0111_1110);
        assert_eq!(ReservationCapabilities::ALL.to_rescap(), 0xff);
        let only_we = ReservationCapabilities::from_rescap(0b10);
        assert!(only_we.supports(NvmeReservationType::WriteExclusive));
        assert!(!only_we.supports(NvmeReservationType::ExclusiveAccess));
        assert!(!ReservationCapabilities::from_rescap(1).any());
    }

    #[test]
    fn statuses_split_into_type_and_code() {
        let conflict = NvmeStatus(0x4083);
        assert_eq!(conflict.code(), NvmeStatus::RESERVATION_CONFLICT);
        assert!(conflict.do_not_retry());
        assert_eq!(
            conflict.to_string(),
            "Reservation Conflict (SCT 0x0, SC 0x83)"
        );
        assert!(NvmeStatus(0x370).is_path_error());
    }
}

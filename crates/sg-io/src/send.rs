//! Sending one SCSI command with `SG_IO`.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use scsi::sgio::SgIoOutcome;

use crate::sys;

/// Size of the sense buffer handed to the kernel (the protocol's sense size).
pub const SENSE_BUFFER_SIZE: usize = 96;

/// Longest CDB the version 3 interface carries.
pub const MAX_CDB_LEN: usize = 16;

/// Direction of the data phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The buffer is sent to the device (PR OUT parameter list).
    ToDevice,
    /// The device fills the buffer (PR IN data).
    FromDevice,
    /// No data phase; the buffer is ignored.
    None,
}

/// What one `SG_IO` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SgIoReport {
    /// Errno of a failed ioctl, or the statuses the kernel reported.
    pub outcome: SgIoOutcome,
    /// Bytes of the data buffer not transferred (`dxfer_len - actual`), as
    /// reported by the kernel; 0 when the ioctl failed.
    pub resid: i32,
    /// Bytes of sense the device wrote (at most [`SENSE_BUFFER_SIZE`]).
    pub sense_len: u8,
}

impl SgIoReport {
    /// Bytes actually transferred for a buffer of `buf_len` bytes, clamped
    /// to `0..=buf_len` whatever the kernel reported.
    pub fn transferred(&self, buf_len: usize) -> usize {
        let resid = usize::try_from(self.resid).unwrap_or(0);
        buf_len.saturating_sub(resid)
    }
}

/// Misuse of [`send`]: nothing was sent to the device.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SendError {
    #[error("CDB length {0} is outside 1..=16")]
    CdbLength(usize),
    #[error("data buffer of {0} bytes is larger than SG_IO can carry")]
    BufferTooLarge(usize),
}

/// Sends `cdb` to the device behind `fd` with `SG_IO` and waits for it.
///
/// Blocks for up to `timeout` (rounded up to whole milliseconds; values
/// beyond the ioctl's range are clamped). A failing ioctl is not an error
/// here: its errno is reported in `outcome.errno` for the caller to map to
/// a SCSI status. The descriptor's flags are never touched.
pub fn send(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    direction: Direction,
    buf: &mut [u8],
    sense: &mut [u8; SENSE_BUFFER_SIZE],
    timeout: Duration,
) -> Result<SgIoReport, SendError> {
    let data = match direction {
        Direction::ToDevice => sys::DataPhase::ToDevice(buf),
        Direction::FromDevice => sys::DataPhase::FromDevice(buf),
        Direction::None => sys::DataPhase::None,
    };
    send_phase(fd, cdb, data, sense, timeout)
}

/// [`send`] for a to-device transfer from a buffer the caller keeps unchanged.
pub fn send_to_device(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data: &[u8],
    sense: &mut [u8; SENSE_BUFFER_SIZE],
    timeout: Duration,
) -> Result<SgIoReport, SendError> {
    let phase = if data.is_empty() {
        sys::DataPhase::None
    } else {
        sys::DataPhase::ToDevice(data)
    };
    send_phase(fd, cdb, phase, sense, timeout)
}

fn send_phase(
    fd: BorrowedFd<'_>,
    cdb: &[u8],
    data: sys::DataPhase<'_>,
    sense: &mut [u8; SENSE_BUFFER_SIZE],
    timeout: Duration,
) -> Result<SgIoReport, SendError> {
    if cdb.is_empty() || cdb.len() > MAX_CDB_LEN {
        return Err(SendError::CdbLength(cdb.len()));
    }
    let data_len = match &data {
        sys::DataPhase::ToDevice(data) => data.len(),
        sys::DataPhase::FromDevice(data) => data.len(),
        sys::DataPhase::None => 0,
    };
    if u32::try_from(data_len).is_err() {
        return Err(SendError::BufferTooLarge(data_len));
    }
    let bufs = sys::SgIoBuffers {
        cdb,
        data,
        sense: &mut sense[..],
        timeout_ms: timeout_millis(timeout),
    };
    let report = match sys::sg_io(fd, bufs) {
        Ok(done) => SgIoReport {
            outcome: SgIoOutcome {
                errno: None,
                host_status: done.host_status,
                driver_status: done.driver_status,
                scsi_status: done.status,
            },
            resid: done.resid,
            sense_len: done.sb_len_wr.min(SENSE_BUFFER_SIZE as u8),
        },
        Err(err) => SgIoReport {
            outcome: SgIoOutcome {
                // An error without an OS code cannot come from the ioctl
                // (lengths were checked above); EIO keeps the mapping sane.
                errno: Some(err.raw_os_error().unwrap_or(libc::EIO)),
                host_status: 0,
                driver_status: 0,
                scsi_status: 0,
            },
            resid: 0,
            sense_len: 0,
        },
    };
    Ok(report)
}

/// The ioctl takes milliseconds as a `u32` where `u32::MAX` means "no
/// timeout"; round up so a sub-millisecond timeout never becomes 0 (which
/// some drivers read as "use the default"), and stay below `u32::MAX`.
fn timeout_millis(timeout: Duration) -> u32 {
    let nanos = timeout.as_nanos();
    let millis = nanos.div_ceil(1_000_000).max(1);
    u32::try_from(millis)
        .unwrap_or(u32::MAX - 1)
        .min(u32::MAX - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_rounds_up_and_clamps() {
        assert_eq!(timeout_millis(Duration::ZERO), 1);
        assert_eq!(timeout_millis(Duration::from_micros(1)), 1);
        assert_eq!(timeout_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(timeout_millis(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(timeout_millis(Duration::from_secs(u64::MAX)), u32::MAX - 1);
    }

    #[test]
    fn transferred_is_clamped() {
        let mut report = SgIoReport {
            outcome: SgIoOutcome {
                errno: None,
                host_status: 0,
                driver_status: 0,
                scsi_status: 0,
            },
            resid: 10,
            sense_len: 0,
        };
        assert_eq!(report.transferred(100), 90);
        report.resid = -5;
        assert_eq!(report.transferred(100), 100);
        report.resid = 500;
        assert_eq!(report.transferred(100), 0);
    }
}

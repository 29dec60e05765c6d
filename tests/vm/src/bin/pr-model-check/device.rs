//! The device under test: something that executes a PR command for one of two
//! initiators (paths) and reports status, sense and data-in.

use std::fs::File;
use std::os::fd::AsFd;
use std::time::Duration;

/// Which of the two initiators (device paths) sends a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    A,
    B,
}

impl Path {
    pub fn index(self) -> usize {
        match self {
            Path::A => 0,
            Path::B => 1,
        }
    }

    pub fn other(self) -> Path {
        match self {
            Path::A => Path::B,
            Path::B => Path::A,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Path::A => "A",
            Path::B => "B",
        }
    }
}

/// Sense key, ASC, ASCQ.
pub type SenseCode = (u8, u8, u8);

/// Sense key UNIT ATTENTION.
pub const UNIT_ATTENTION: u8 = 0x6;

/// What a command came back with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u8,
    /// Set with CHECK CONDITION.
    pub sense: Option<SenseCode>,
    pub data: Vec<u8>,
}

impl Reply {
    pub fn is_unit_attention(&self) -> bool {
        self.status == 0x02 && matches!(self.sense, Some((UNIT_ATTENTION, _, _)))
    }
}

/// A transport failure: the command's outcome is unknown.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("SG_IO could not be sent: {0}")]
    Send(String),
    #[error("SG_IO failed: errno {errno:?}, host status {host:#x}, driver status {driver:#x}")]
    Transport {
        errno: Option<i32>,
        host: u16,
        driver: u16,
    },
}

pub trait Device {
    /// Executes `cdb` from `path`: PR OUT sends `data_out`, PR IN reads up to the
    /// allocation length.
    fn execute(&mut self, path: Path, cdb: &[u8], data_out: &[u8]) -> Result<Reply, DeviceError>;
}

/// Reads key/ASC/ASCQ from fixed (70h/71h) or descriptor (72h/73h) sense data.
pub fn parse_sense(sense: &[u8]) -> Option<SenseCode> {
    let code = sense.first()? & 0x7F;
    match code {
        0x70 | 0x71 => Some((sense.get(2)? & 0x0F, *sense.get(12)?, *sense.get(13)?)),
        0x72 | 0x73 => Some((sense.get(1)? & 0x0F, *sense.get(2)?, *sense.get(3)?)),
        _ => None,
    }
}

/// The real thing: one SCSI device node per initiator, commands sent with SG_IO.
pub struct SgDevice {
    pub paths: [File; 2],
    pub timeout: Duration,
    /// Print each command and reply to standard error.
    pub trace: bool,
}

impl Device for SgDevice {
    fn execute(&mut self, path: Path, cdb: &[u8], data_out: &[u8]) -> Result<Reply, DeviceError> {
        let fd = self.paths[path.index()].as_fd();
        let is_out = cdb.first() == Some(&0x5F);
        let (direction, mut buf) = if is_out {
            (sg_io::Direction::ToDevice, data_out.to_vec())
        } else {
            let allocation = cdb
                .get(7..9)
                .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
            (
                sg_io::Direction::FromDevice,
                vec![0u8; usize::from(allocation)],
            )
        };
        if self.trace {
            eprintln!("> {} cdb={} out={}", path.name(), hex(cdb), hex(data_out));
        }
        let mut sense = [0u8; sg_io::SENSE_BUFFER_SIZE];
        let report = sg_io::send(fd, cdb, direction, &mut buf, &mut sense, self.timeout)
            .map_err(|e| DeviceError::Send(e.to_string()))?;
        let outcome = report.outcome;
        // DRIVER_SENSE (0x08) only says sense is present; anything else is trouble.
        if outcome.errno.is_some() || outcome.host_status != 0 || outcome.driver_status & !0x08 != 0
        {
            return Err(DeviceError::Transport {
                errno: outcome.errno,
                host: outcome.host_status,
                driver: outcome.driver_status,
            });
        }
        let status = outcome.scsi_status;
        let sense = if status == 0x02 {
            parse_sense(&sense[..usize::from(report.sense_len)])
        } else {
            None
        };
        let data = if status == 0 && !is_out {
            buf.truncate(report.transferred(buf.len()));
            buf
        } else {
            Vec::new()
        };
        if self.trace {
            eprintln!("< status={status:#04x} sense={sense:?} data={}", hex(&data));
        }
        Ok(Reply {
            status,
            sense,
            data,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sense_is_read_from_both_formats() {
        let mut fixed = [0u8; 18];
        fixed[0] = 0x70;
        fixed[2] = 0x05;
        fixed[12] = 0x24;
        assert_eq!(parse_sense(&fixed), Some((5, 0x24, 0)));
        assert_eq!(
            parse_sense(&[0x72, 0x06, 0x2A, 0x05, 0, 0, 0, 0]),
            Some((6, 0x2A, 5))
        );
        assert_eq!(parse_sense(&[]), None);
        assert_eq!(parse_sense(&[0x70, 0, 5]), None);
    }
}

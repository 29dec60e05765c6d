#![doc = include_str!("../README.md")]

pub mod device;
pub mod devnum;
pub mod engine;
pub mod ioctl_data;
pub mod map;
pub mod plan;
pub mod service;
pub mod sys;
pub mod table;
pub mod uevent;

pub use devnum::DevNum;
pub use service::{Multipath, Settings};

/// An error and its sources on one line, for logs.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

// Interim stand-in for sg_io::execute_pr (same signature), until that lands.
pub(crate) use interim::execute_pr;
mod interim {
    use std::os::fd::BorrowedFd;
    use std::time::Duration;

    pub struct PrExecution {
        pub status: scsi::status::Status,
        pub sense: [u8; 96],
        pub data: Vec<u8>,
        pub outcome: Option<scsi::sgio::SgIoOutcome>,
    }

    pub fn execute_pr(
        fd: BorrowedFd<'_>,
        cdb: &[u8],
        data_out: &[u8],
        timeout: Duration,
    ) -> PrExecution {
        let len = scsi::cdb::cdb_length(cdb.first().copied().unwrap_or(0))
            .unwrap_or(cdb.len())
            .min(cdb.len());
        let cdb = &cdb[..len];
        let is_in = cdb.first() == Some(&0x5e);
        let transfer = cdb
            .get(7..9)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .unwrap_or(0);
        let mut buf = if is_in {
            vec![0u8; transfer]
        } else {
            data_out[..data_out.len().min(transfer)].to_vec()
        };
        let dir = if buf.is_empty() {
            sg_io::Direction::None
        } else if is_in {
            sg_io::Direction::FromDevice
        } else {
            sg_io::Direction::ToDevice
        };
        let mut sense = [0u8; 96];
        match sg_io::send(fd, cdb, dir, &mut buf, &mut sense, timeout) {
            Ok(report) => {
                let mapped = scsi::sgio::map_sg_io_outcome(&report.outcome);
                if let Some(s) = mapped.synthesized_sense {
                    sense = [0; 96];
                    s.write_fixed(&mut sense);
                }
                let data = if mapped.status == scsi::status::Status::GOOD && is_in {
                    buf.truncate(report.transferred(buf.len()));
                    buf
                } else {
                    Vec::new()
                };
                PrExecution {
                    status: mapped.status,
                    sense,
                    data,
                    outcome: Some(report.outcome),
                }
            }
            Err(_) => {
                let mut sense = [0u8; 96];
                scsi::sense::Sense::IO_ERROR.write_fixed(&mut sense);
                PrExecution {
                    status: scsi::status::Status::CHECK_CONDITION,
                    sense,
                    data: Vec::new(),
                    outcome: None,
                }
            }
        }
    }
}

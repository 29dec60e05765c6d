//! An NVMe namespace's reservations through the kernel's NVMe passthrough.

use std::os::fd::BorrowedFd;

use scsi::errno;

use crate::error::BlkPrError;
use crate::nvme::{
    self, Acquire, FEATURE_HOST_IDENTIFIER, HostId, IDENTIFY_DATA_LEN, NvmeStatus, Register,
    Release, ReportLayout, ReservationCapabilities, ReservationStatus,
};
use crate::sys::{self, NvmeCommandFields, NvmeData};
use crate::translate::over_nvme::{NvmeError, NvmeReservations};

/// Passthrough timeout; 0 would mean the driver's default, which is fine, but a
/// bound of our own keeps a wedged controller from holding the caller for minutes.
const TIMEOUT_MS: u32 = 30_000;
/// The report buffer's first size: the extended header and 15 registrants; it grows
/// to what REGCTL (16 bits) asks for.
const FIRST_REPORT_LEN: usize = 1024;

mod sysfs {
    //! The controller's `hostid` attribute, for a namespace descriptor.

    use std::os::fd::BorrowedFd;
    use std::path::{Path, PathBuf};

    use rustix::fs::{FileType, fstat, major, minor};

    use crate::nvme::HostId;

    /// `SYSFS/dev/{block,char}/MAJ:MIN` of the descriptor's device.
    fn device_dir(sysfs: &Path, fd: BorrowedFd<'_>) -> Option<PathBuf> {
        let stat = fstat(fd).ok()?;
        let kind = match FileType::from_raw_mode(stat.st_mode) {
            FileType::BlockDevice => "block",
            FileType::CharacterDevice => "char",
            _ => return None,
        };
        let (major, minor) = (major(stat.st_rdev), minor(stat.st_rdev));
        Some(sysfs.join(format!("dev/{kind}/{major}:{minor}")))
    }

    fn read_host_id(controller: &Path) -> Option<HostId> {
        let text = std::fs::read_to_string(controller.join("hostid")).ok()?;
        HostId::parse_uuid(&text)
    }

    /// The host ID of the namespace's controller (`device/hostid`), or, for a native
    /// multipath head, of its first path's controller (`multipath/*/device/hostid`).
    pub(super) fn host_id(fd: BorrowedFd<'_>) -> Option<HostId> {
        host_id_under(Path::new("/sys"), fd)
    }

    /// [`host_id`] in the sysfs mounted at `sysfs`.
    pub(super) fn host_id_under(sysfs: &Path, fd: BorrowedFd<'_>) -> Option<HostId> {
        let dir = device_dir(sysfs, fd)?;
        if let Some(id) = read_host_id(&dir.join("device")) {
            return Some(id);
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir.join("multipath"))
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        paths
            .iter()
            .find_map(|path| read_host_id(&path.join("device")))
    }
}

/// One NVMe namespace, named by a descriptor of its block device (`/dev/nvmeXnY`) or
/// generic character device (`/dev/ngXnY`).
#[derive(Debug)]
pub struct NvmeNamespace<'fd> {
    fd: BorrowedFd<'fd>,
    nsid: u32,
    host_id: Option<HostId>,
    capabilities: Option<ReservationCapabilities>,
}

impl<'fd> NvmeNamespace<'fd> {
    /// Asks the kernel for the namespace ID (`NVME_IOCTL_ID`); anything but an NVMe
    /// namespace fails with [`BlkPrError::NotNvme`].
    pub fn open(fd: BorrowedFd<'fd>) -> Result<NvmeNamespace<'fd>, BlkPrError> {
        let nsid = sys::nvme_namespace_id(fd).map_err(|source| BlkPrError::NotNvme {
            op: "NVME_IOCTL_ID",
            source,
        })?;
        Ok(NvmeNamespace {
            fd,
            nsid,
            host_id: None,
            capabilities: None,
        })
    }

    pub fn nsid(&self) -> u32 {
        self.nsid
    }

    fn command(
        &self,
        opcode: u8,
        cdw10: u32,
        cdw11: u32,
        data: NvmeData<'_>,
        admin: bool,
    ) -> Result<(), NvmeError> {
        let fields = NvmeCommandFields {
            opcode,
            nsid: self.nsid,
            cdw10,
            cdw11,
            cdw12: 0,
            timeout_ms: TIMEOUT_MS,
        };
        let completion = sys::nvme_passthru(self.fd, fields, data, admin)
            .map_err(|e| NvmeError::Errno(e.raw_os_error().unwrap_or(errno::EIO)))?;
        match u16::try_from(completion.status) {
            Ok(0) => Ok(()),
            Ok(status) => Err(NvmeError::Status(NvmeStatus(status))),
            // Not an NVMe status: the kernel's own error code.
            Err(_) => Err(NvmeError::Errno(errno::EIO)),
        }
    }

    /// A reservation command whose data goes to the controller.
    fn send(&self, opcode: u8, cdw10: u32, data: &[u8]) -> Result<(), NvmeError> {
        self.command(opcode, cdw10, 0, NvmeData::ToDevice(data), false)
    }

    fn report_raw(&self) -> Result<ReservationStatus, NvmeError> {
        match self.report_in(ReportLayout::Extended) {
            // A controller with 64-bit host IDs: the basic structure.
            Err(NvmeError::Status(status))
                if status.code() == NvmeStatus::HOST_ID_INCONSISTENT_FORMAT =>
            {
                self.report_in(ReportLayout::Basic)
            }
            other => other,
        }
    }

    fn report_in(&self, layout: ReportLayout) -> Result<ReservationStatus, NvmeError> {
        let mut len = FIRST_REPORT_LEN;
        let most = layout.len(0xffff);
        loop {
            let mut buf = vec![0u8; len];
            self.command(
                nvme::opcode::RESERVATION_REPORT,
                nvme::report_cdw10(len),
                layout.cdw11(),
                NvmeData::FromDevice(&mut buf),
                false,
            )?;
            let (status, needed) =
                ReservationStatus::decode(&buf, layout).map_err(NvmeError::Malformed)?;
            if needed <= len || len >= most {
                return Ok(status);
            }
            len = needed.min(most);
        }
    }

    /// Reservation Report, every registrant: the extended data structure (128-bit
    /// host IDs), or the basic one where the controller has 64-bit host IDs; the
    /// buffer grows to what REGCTL says.
    pub fn report(&self) -> Result<ReservationStatus, BlkPrError> {
        self.report_raw()
            .map_err(|e| BlkPrError::from_nvme("Reservation Report", e))
    }

    fn capabilities_raw(&self) -> Result<ReservationCapabilities, NvmeError> {
        let mut identify = vec![0u8; IDENTIFY_DATA_LEN];
        let identified = self.command(
            nvme::opcode::IDENTIFY,
            0,
            0,
            NvmeData::FromDevice(&mut identify),
            true,
        );
        match identified {
            Ok(()) => Ok(ReservationCapabilities::from_identify_namespace(&identify)),
            // The kernel does not pass the admin command (EACCES without
            // CAP_SYS_ADMIN before 6.2, or a seccomp policy): unknown, the device
            // decides.
            Err(NvmeError::Errno(errno::EACCES | errno::EPERM)) => {
                Ok(ReservationCapabilities::UNKNOWN)
            }
            Err(other) => Err(other),
        }
    }

    /// RESCAP from Identify Namespace.
    pub fn capabilities(&self) -> Result<ReservationCapabilities, BlkPrError> {
        self.capabilities_raw()
            .map_err(|e| BlkPrError::from_nvme("Identify Namespace", e))
    }

    fn host_id_raw(&self) -> Result<HostId, NvmeError> {
        let mut id = [0u8; 16];
        // EXHID (cdw11 bit 0): the 128-bit identifier, the one reservations use over
        // fabrics; a controller with 64-bit host IDs refuses it and has the 8-byte one.
        let extended = self.command(
            nvme::opcode::GET_FEATURES,
            FEATURE_HOST_IDENTIFIER,
            1,
            NvmeData::FromDevice(&mut id),
            true,
        );
        match extended {
            // Admin commands other than Identify need CAP_SYS_ADMIN: the host ID of a
            // fabrics controller is in sysfs too.
            Err(NvmeError::Errno(code)) => {
                return sysfs::host_id(self.fd).ok_or(NvmeError::Errno(code));
            }
            Err(NvmeError::Status(_)) => {
                id = [0u8; 16];
                self.command(
                    nvme::opcode::GET_FEATURES,
                    FEATURE_HOST_IDENTIFIER,
                    0,
                    NvmeData::FromDevice(&mut id[..8]),
                    true,
                )?;
            }
            other => other?,
        }
        Ok(HostId(id))
    }

    /// The Host Identifier this host's commands carry (Get Features, Host
    /// Identifier: the 128-bit one, else the 64-bit one in the first 8 bytes).
    pub fn host_id(&self) -> Result<HostId, BlkPrError> {
        self.host_id_raw()
            .map_err(|e| BlkPrError::from_nvme("Get Features (Host Identifier)", e))
    }

    fn register_raw(&self, command: &Register) -> Result<(), NvmeError> {
        self.send(
            nvme::opcode::RESERVATION_REGISTER,
            command.cdw10(),
            &command.data(),
        )
    }

    /// Reservation Register.
    pub fn register(&self, command: &Register) -> Result<(), BlkPrError> {
        self.register_raw(command)
            .map_err(|e| BlkPrError::from_nvme("Reservation Register", e))
    }

    fn acquire_raw(&self, command: &Acquire) -> Result<(), NvmeError> {
        self.send(
            nvme::opcode::RESERVATION_ACQUIRE,
            command.cdw10(),
            &command.data(),
        )
    }

    /// Reservation Acquire.
    pub fn acquire(&self, command: &Acquire) -> Result<(), BlkPrError> {
        self.acquire_raw(command)
            .map_err(|e| BlkPrError::from_nvme("Reservation Acquire", e))
    }

    fn release_raw(&self, command: &Release) -> Result<(), NvmeError> {
        self.send(
            nvme::opcode::RESERVATION_RELEASE,
            command.cdw10(),
            &command.data(),
        )
    }

    /// Reservation Release.
    pub fn release(&self, command: &Release) -> Result<(), BlkPrError> {
        self.release_raw(command)
            .map_err(|e| BlkPrError::from_nvme("Reservation Release", e))
    }
}

/// The translation's view; the host ID and capabilities are read once per
/// `NvmeNamespace` (they do not change while a descriptor is open).
impl NvmeReservations for NvmeNamespace<'_> {
    fn host_id(&mut self) -> Result<HostId, NvmeError> {
        if let Some(id) = self.host_id {
            return Ok(id);
        }
        let id = self.host_id_raw()?;
        self.host_id = Some(id);
        Ok(id)
    }

    fn capabilities(&mut self) -> Result<ReservationCapabilities, NvmeError> {
        if let Some(capabilities) = self.capabilities {
            return Ok(capabilities);
        }
        let capabilities = self.capabilities_raw()?;
        self.capabilities = Some(capabilities);
        Ok(capabilities)
    }

    fn report(&mut self) -> Result<ReservationStatus, NvmeError> {
        self.report_raw()
    }

    fn register(&mut self, command: &Register) -> Result<(), NvmeError> {
        self.register_raw(command)
    }

    fn acquire(&mut self, command: &Acquire) -> Result<(), NvmeError> {
        self.acquire_raw(command)
    }

    fn release(&mut self, command: &Release) -> Result<(), NvmeError> {
        self.release_raw(command)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    /// A fake sysfs for `/dev/null` (character device 1:3) with `files` written.
    fn fake_sysfs(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temporary directory");
        for (path, text) in files {
            let file = root.path().join("dev/char/1:3").join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        root
    }

    #[test]
    fn the_host_id_comes_from_the_controller_or_the_first_path_of_a_head() {
        let null = std::fs::File::open("/dev/null").expect("/dev/null");
        let id = "5001405a-0000-4000-8000-000000000a01\n";
        let expected = HostId::parse_uuid(id);
        let controller = fake_sysfs(&[("device/hostid", id)]);
        assert_eq!(
            sysfs::host_id_under(controller.path(), null.as_fd()),
            expected
        );
        let head = fake_sysfs(&[
            ("multipath/nvme0c1n1/device/hostid", id),
            ("multipath/nvme0c2n1/device/hostid", "not a uuid"),
        ]);
        assert_eq!(sysfs::host_id_under(head.path(), null.as_fd()), expected);
        let pcie = fake_sysfs(&[("device/model", "an SSD")]);
        assert_eq!(sysfs::host_id_under(pcie.path(), null.as_fd()), None);
        let file = tempfile::tempfile().unwrap();
        assert_eq!(sysfs::host_id_under(controller.path(), file.as_fd()), None);
    }
}

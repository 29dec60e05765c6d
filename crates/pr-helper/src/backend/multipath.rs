//! The multipath backend: PR commands on a device-mapper multipath map go to the map's
//! paths as the service action needs (every path for registrations, one path with
//! failover for the rest), with no multipathd and no configured key. The logic is the
//! `dm-multipath` crate's; this adapter only feeds it commands.

use std::time::Duration;

use pr_protocol::Response;

/// What the multipath backend needs from the daemon's settings.
#[derive(Debug, Clone)]
pub struct MultipathSettings {
    /// SG_IO timeout of each path command.
    pub sgio_timeout: Duration,
}

/// PR on dm-multipath maps.
#[derive(Debug)]
pub struct MultipathBackend {
    service: dm_multipath::Multipath,
}

impl MultipathBackend {
    /// Opens device-mapper's control node (while the daemon is still root). Without
    /// it, [`serves`](Self::serves) is always false and maps are served as today.
    pub fn new(settings: &MultipathSettings) -> Self {
        let service = dm_multipath::Multipath::new(dm_multipath::Settings {
            sgio_timeout: settings.sgio_timeout,
            ..dm_multipath::Settings::default()
        });
        Self { service }
    }

    /// Whether the block device is a device-mapper device whose live table is a
    /// single `multipath` target (cached for a second).
    pub fn serves(&self, file: &sg_io::FileIdentity) -> bool {
        self.service.serves(file.rdev)
    }

    /// Executes one PR IN or PR OUT on the map. Blocks.
    pub fn execute_on(
        &self,
        file: &sg_io::FileIdentity,
        cdb: &[u8; 16],
        data_out: &[u8],
    ) -> Response {
        let answer = self.service.execute(file.rdev, cdb, data_out);
        let mut response = Response::with_sense(answer.status.as_u8(), &answer.sense);
        if answer.status == scsi::status::Status::GOOD {
            response.data = answer.data;
        }
        response
    }
}

//! The multipath backend: PR commands on a device-mapper multipath map go to the map's
//! paths as the service action needs (every path for registrations, one path with
//! failover for the rest), with no multipathd and no configured key. The logic is the
//! `dm-multipath` crate's (its README has the service-action table); this adapter only
//! feeds it commands.

use std::time::Duration;

use pr_protocol::Response;

use super::{Backend, Command};

/// What the multipath backend is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// Opens device-mapper's control node (the daemon builds its backends while still
    /// root). Without it, [`serves`](Self::serves) is always false and maps are served
    /// by the SG_IO backend, as with `--no-multipath`.
    pub fn new(settings: &MultipathSettings) -> Self {
        let service = dm_multipath::Multipath::new(dm_multipath::Settings {
            sgio_timeout: settings.sgio_timeout,
            ..dm_multipath::Settings::default()
        });
        Self { service }
    }

    /// Whether device-mapper's control node could be opened (the kernel has
    /// device-mapper): the daemon keeps multipath's capabilities only then.
    pub fn is_active(&self) -> bool {
        self.service.is_available()
    }

    /// Whether the block device is a device-mapper device whose live table is a
    /// single `multipath` target (remembered for a second).
    pub fn serves(&self, file: &sg_io::FileIdentity) -> bool {
        self.service.serves(file.rdev)
    }
}

impl MultipathBackend {
    /// Counts the calling connection as a user of the map until the guard is dropped:
    /// when the last connection that used a map closes (its guest stopped or migrated
    /// away), the map's remembered key is forgotten.
    pub fn attach(&self, file: &sg_io::FileIdentity) -> dm_multipath::MapUse {
        self.service.attach(file.rdev)
    }
}

impl Backend for MultipathBackend {
    fn execute(&self, command: &Command<'_>) -> Response {
        // The map is named by the descriptor's device number: the paths opened are the
        // ones in that map's live table, never anything the peer names.
        let answer = self
            .service
            .execute(command.file.rdev, command.cdb, command.data_out);
        Response {
            status: answer.status.as_u8(),
            sense: answer.sense,
            data: answer.data,
        }
    }
}

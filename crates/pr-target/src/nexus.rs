//! I_T nexuses: an initiator port (named by its TransportID) seen through one target port.

use scsi::pr::TransportId;
use serde::{Deserialize, Serialize};

/// An I_T nexus: one initiator port talking through one target port of the device.
///
/// Two nexuses are the same when their decoded TransportIDs are: padding and
/// reserved bytes of the wire form do not matter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Nexus {
    /// The initiator port.
    pub initiator: TransportId,
    /// The relative target port identifier of the target port.
    pub target_port: u16,
}

impl Nexus {
    /// The nexus of `initiator` through target port `target_port`.
    pub fn new(initiator: TransportId, target_port: u16) -> Nexus {
        Nexus {
            initiator,
            target_port,
        }
    }
}

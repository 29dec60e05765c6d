//! Persistent reservations: PERSISTENT RESERVE IN/OUT CDBs, parameter lists,
//! TransportIDs and PR IN payloads, each with an encoder and a decoder.

mod cdb;
mod error;
mod params;
mod payload;
mod transport_id;
mod types;

pub use cdb::{PR_CDB_LEN, PrInCdb, PrOutCdb, pr_in_cdb, pr_out_cdb};
pub use error::{PrDecodeError, PrEncodeError};
pub use params::{PARAMETER_LIST_LEN, PrOutParams, RegisterMoveParams};
pub use payload::{
    Decoded, FULL_STATUS_DESCRIPTOR_LEN, FullStatus, FullStatusDescriptor, PR_IN_HEADER_LEN,
    REPORT_CAPABILITIES_LEN, ReadKeys, ReadReservation, ReportCapabilities, Reservation, TypeMask,
};
pub use transport_id::{FIXED_TRANSPORT_ID_LEN, ISCSI_ISID_SEPARATOR, TransportId, protocol_id};
pub use types::{
    ParseNameError, PrInAction, PrOutAction, ReservationType, Scope, ScopeType, UnknownScopeCode,
};

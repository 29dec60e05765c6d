//! The daemon's per-connection log lines: one per command (debug) and one when a
//! connection closes, with the fields an operator filters on. The peer is one set of
//! fields on every line, `peer_pid`, `peer_uid` and `peer_gid` (in the journal
//! `PR_PEER_PID`, `PR_PEER_UID`, `PR_PEER_GID`), never repeated in another form.

use std::time::Duration;

use pr_protocol::{Request, Response};
use scsi::sense::Sense;

use super::descriptor::PeerFd;
use crate::backend::{DescriptorLabel, PeerInfo};

/// The closing line of connection `id`: a warning when the peer was at fault.
pub(super) fn closed(id: u64, peer: &PeerInfo, reason: &dyn std::fmt::Display, peer_fault: bool) {
    if peer_fault {
        tracing::warn!(conn = id, peer_pid = peer.pid, peer_uid = peer.uid, peer_gid = peer.gid, reason = %reason, "connection closed");
    } else {
        tracing::info!(conn = id, peer_pid = peer.pid, peer_uid = peer.uid, peer_gid = peer.gid, reason = %reason, "connection closed");
    }
}

/// The debug line of one answered command.
pub(super) fn command(
    id: u64,
    peer: &PeerInfo,
    request: &Request<PeerFd>,
    descriptor: &DescriptorLabel,
    response: &Response,
    latency: Duration,
) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let opcode = request.cdb[0];
    let service_action = request.cdb[1] & 0x1f;
    let status = scsi::status::Status(response.status);
    let sense = if response.status == pr_protocol::STATUS_CHECK_CONDITION {
        Sense::parse(&response.sense).to_string()
    } else {
        String::from("-")
    };
    tracing::debug!(
        conn = id,
        peer_pid = peer.pid,
        peer_uid = peer.uid,
        peer_gid = peer.gid,
        command = scsi::cdb::command_name(opcode),
        service_action = format_args!("{service_action:#04x}"),
        device = %descriptor,
        status = %status,
        sense = %sense,
        payload = response.data.len(),
        latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
        "command"
    );
}

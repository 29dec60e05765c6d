//! The command line: `prtool [--socket PATH | --direct] COMMAND [OPTIONS] DEVICE`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use pr_manager::{ReservationType, TransportId};

use crate::parse::{parse_key, parse_transport_id, parse_type};

/// Persistent reservations on a SCSI device, through a PR helper socket
/// (pr-helper or qemu-pr-helper) or directly with SG_IO.
///
/// Keys are hexadecimal, with or without 0x (as sg_persist).
/// Exit codes: 0 success, 1 other failure (device cannot be opened,
/// malformed payload), 2 usage error, 3 reservation conflict,
/// 4 other SCSI error (CHECK CONDITION, BUSY, ...), 5 transport failure
/// (helper unreachable or connection lost).
#[derive(Debug, Parser)]
#[command(name = "prtool", version, about, long_about)]
pub struct Cli {
    /// Helper socket to send the command through.
    #[arg(
        short = 'k',
        long,
        value_name = "PATH",
        global = true,
        default_value = pr_manager::DEFAULT_SOCKET,
        conflicts_with = "direct"
    )]
    pub socket: PathBuf,

    /// Send the command to the device directly (needs privileges): SG_IO on
    /// SCSI devices; NVMe reservations on NVMe namespaces and the kernel's PR
    /// ioctls on block devices without SG_IO, answered as a SCSI device would.
    #[arg(long, global = true)]
    pub direct: bool,

    /// With --direct: which way to the device (auto picks by device).
    #[arg(long, value_enum, value_name = "PATH", default_value_t = DirectPath::Auto, global = true, requires = "direct")]
    pub direct_path: DirectPath,

    /// Print one JSON object (schema in the README) instead of text.
    #[arg(long, global = true)]
    pub json: bool,

    /// Connection attempts before giving up on the helper.
    #[arg(long, value_name = "N", default_value_t = 5, global = true)]
    pub connect_attempts: u32,

    /// Pause between connection attempts, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, global = true)]
    pub retry_interval_ms: u64,

    /// SG_IO timeout with --direct, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, global = true)]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// Which way `--direct` reaches the device.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, ValueEnum)]
pub enum DirectPath {
    /// NVMe namespaces: NVMe reservations; anything else: SG_IO, and the PR
    /// ioctls where the device has no SG_IO.
    #[default]
    Auto,
    /// SG_IO only (SCSI disks, sg nodes, dm maps over SCSI paths).
    SgIo,
    /// The kernel's block-layer PR ioctls (IOC_PR_*), on any block device
    /// with PR operations (sd, dm, nvme); NVMe namespaces still answer PR IN
    /// through the Reservation Report where the kernel has no read ioctls.
    PrIoctls,
}

/// The service actions.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the registered reservation keys (PR IN READ KEYS).
    #[command(after_help = "Example:\n  prtool read-keys /dev/sdb")]
    ReadKeys(PrInArgs),
    /// Show the reservation, if any (PR IN READ RESERVATION).
    #[command(after_help = "Example:\n  prtool --json read-reservation /dev/sdb")]
    ReadReservation(PrInArgs),
    /// Show what the device supports (PR IN REPORT CAPABILITIES).
    #[command(after_help = "Example:\n  prtool report-capabilities /dev/sdb")]
    ReportCapabilities(PrInArgs),
    /// List every registrant with its port (PR IN READ FULL STATUS).
    #[command(after_help = "Example:\n  prtool read-full-status /dev/sdb")]
    ReadFullStatus(PrInArgs),
    /// Register a key, replace it, or unregister with --sa-key 0 (PR OUT REGISTER).
    #[command(
        after_help = "Example:\n  prtool register --sa-key 0x1234abcd /dev/sdb\n  \
                            prtool register --key 0x1234abcd --sa-key 0 /dev/sdb"
    )]
    Register(RegisterArgs),
    /// Register a key whatever is registered (PR OUT REGISTER AND IGNORE EXISTING KEY).
    #[command(after_help = "Example:\n  prtool register-ignore --sa-key 0x1234abcd /dev/sdb")]
    RegisterIgnore(RegisterIgnoreArgs),
    /// Take a reservation (PR OUT RESERVE).
    #[command(after_help = "Example:\n  prtool reserve --key 0x1234abcd --type we-ro /dev/sdb")]
    Reserve(ReserveArgs),
    /// Give up a reservation (PR OUT RELEASE).
    #[command(after_help = "Example:\n  prtool release --key 0x1234abcd --type we-ro /dev/sdb")]
    Release(ReserveArgs),
    /// Remove every registration and the reservation (PR OUT CLEAR).
    #[command(after_help = "Example:\n  prtool clear --key 0x1234abcd /dev/sdb")]
    Clear(ClearArgs),
    /// Remove another registrant, taking its reservation (PR OUT PREEMPT).
    #[command(
        after_help = "Example:\n  prtool preempt --key 0xaaaa --sa-key 0xbbbb --type we /dev/sdb"
    )]
    Preempt(PreemptArgs),
    /// Preempt and abort the victim's tasks (PR OUT PREEMPT AND ABORT).
    #[command(
        after_help = "Example:\n  prtool preempt-abort --key 0xaaaa --sa-key 0xbbbb --type ea /dev/sdb"
    )]
    PreemptAbort(PreemptArgs),
    /// Move the reservation to another initiator port (PR OUT REGISTER AND MOVE).
    #[command(
        after_help = "Example:\n  prtool register-move --key 0xaaaa --sa-key 0xbbbb --type we \\\n    \
                            --transport-id iscsi:iqn.2026-11.org.example:node-b \\\n    \
                            --relative-target-port 1 --unreg /dev/sdb"
    )]
    RegisterMove(RegisterMoveArgs),
}

/// Options of the PR IN commands.
#[derive(Debug, Args)]
pub struct PrInArgs {
    /// ALLOCATION LENGTH to ask for (above 8192 is clamped to 8192 on the way).
    #[arg(long, value_name = "BYTES", default_value_t = 8192)]
    pub alloc_length: u16,
    /// The device (e.g. /dev/sdb or /dev/sg2); opened read-only.
    pub device: PathBuf,
}

/// Registration flags shared by register and register-ignore.
#[derive(Debug, Args)]
pub struct RegistrationFlags {
    /// Activate persist through power loss (APTPL).
    #[arg(long)]
    pub aptpl: bool,
    /// Register through all target ports (ALL_TG_PT).
    #[arg(long)]
    pub all_tg_pt: bool,
    /// Also register this initiator port (sets SPEC_I_PT); repeatable.
    /// Forms: fc:HEX16, sas:HEX16, iscsi:NAME, iscsi:NAME,i,0xISID.
    #[arg(long, value_name = "ID", value_parser = parse_transport_id)]
    pub transport_id: Vec<TransportId>,
}

/// Options of register.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The key registered now (0 when not registered).
    #[arg(long, value_name = "KEY", default_value = "0", value_parser = parse_key)]
    pub key: u64,
    /// The new key (0 unregisters).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub sa_key: u64,
    #[command(flatten)]
    pub flags: RegistrationFlags,
    /// The device; opened read-write.
    pub device: PathBuf,
}

/// Options of register-ignore.
#[derive(Debug, Args)]
pub struct RegisterIgnoreArgs {
    /// The new key (0 unregisters).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub sa_key: u64,
    #[command(flatten)]
    pub flags: RegistrationFlags,
    /// The device; opened read-write.
    pub device: PathBuf,
}

/// Options of reserve and release.
#[derive(Debug, Args)]
pub struct ReserveArgs {
    /// This initiator's registered key.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: u64,
    /// Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    pub rtype: ReservationType,
    /// The device; opened read-write.
    pub device: PathBuf,
}

/// Options of clear.
#[derive(Debug, Args)]
pub struct ClearArgs {
    /// This initiator's registered key.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: u64,
    /// The device; opened read-write.
    pub device: PathBuf,
}

/// Options of preempt and preempt-abort.
#[derive(Debug, Args)]
pub struct PreemptArgs {
    /// This initiator's registered key.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: u64,
    /// The victim's key.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub sa_key: u64,
    /// Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    pub rtype: ReservationType,
    /// The device; opened read-write.
    pub device: PathBuf,
}

/// Options of register-move.
#[derive(Debug, Args)]
pub struct RegisterMoveArgs {
    /// This initiator's registered key (the reservation holder's).
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub key: u64,
    /// The key to register for the destination port.
    #[arg(long, value_name = "KEY", value_parser = parse_key)]
    pub sa_key: u64,
    /// Reservation type: we, ea, we-ro, ea-ro, we-ar, ea-ar or the type code.
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    pub rtype: ReservationType,
    /// The destination initiator port: fc:HEX16, sas:HEX16, iscsi:NAME or
    /// iscsi:NAME,i,0xISID.
    #[arg(long, value_name = "ID", value_parser = parse_transport_id)]
    pub transport_id: TransportId,
    /// The destination's relative target port identifier.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub relative_target_port: u16,
    /// Unregister this initiator after the move (UNREG).
    #[arg(long)]
    pub unreg: bool,
    /// Activate persist through power loss (APTPL).
    #[arg(long)]
    pub aptpl: bool,
    /// The device; opened read-write.
    pub device: PathBuf,
}

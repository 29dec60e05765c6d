//! Running one command: open the device, build the CDB, send it through
//! the helper or with SG_IO, and classify what came back.

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use pr_manager::{
    Client, Config, DataTransfer, PrInAction, PrInData, PrOutCommand, RegisterMoveParams,
    RegisterOptions, Reply, decode_pr_in, pr_in_command,
};
use scsi::sense::Sense;
use scsi::status::Status;

use crate::args::{Cli, Command, RegistrationFlags};
use crate::exit::Exit;

/// Which path the command took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Through the helper socket at this path.
    Socket(PathBuf),
    /// SG_IO on the device.
    Direct,
}

/// A command ready to send.
#[derive(Debug, Clone)]
pub enum Request {
    /// A PR IN service action with its allocation length.
    In { action: PrInAction, allocation: u16 },
    /// A PR OUT command.
    Out(PrOutCommand),
}

impl Request {
    /// The standard name of the service action.
    pub fn action_name(&self) -> &'static str {
        match self {
            Self::In { action, .. } => action.name(),
            Self::Out(command) => command.action.name(),
        }
    }
}

/// Everything a renderer needs.
#[derive(Debug)]
pub struct Outcome {
    /// The subcommand as typed (`read-keys`, ...).
    pub command: &'static str,
    /// The standard service action name.
    pub action: &'static str,
    /// The device path.
    pub device: PathBuf,
    /// How the command was sent.
    pub via: Via,
    /// SCSI status, when a command was sent (or failed like one).
    pub status: Option<Status>,
    /// Decoded sense with CHECK CONDITION.
    pub sense: Option<Sense>,
    /// The valid sense bytes.
    pub sense_bytes: Vec<u8>,
    /// What went wrong outside SCSI (transport, device, payload), in words.
    pub failure: Option<String>,
    /// Decoded PR IN data.
    pub data: Option<PrInData>,
    /// The exit code class.
    pub exit: Exit,
}

/// The subcommand name, the request and the device from the parsed line.
pub fn request_of(command: &Command) -> (&'static str, Request, &PathBuf) {
    let pr_in = |action, args: &crate::args::PrInArgs| Request::In {
        action,
        allocation: args.alloc_length,
    };
    match command {
        Command::ReadKeys(a) => ("read-keys", pr_in(PrInAction::ReadKeys, a), &a.device),
        Command::ReadReservation(a) => (
            "read-reservation",
            pr_in(PrInAction::ReadReservation, a),
            &a.device,
        ),
        Command::ReportCapabilities(a) => (
            "report-capabilities",
            pr_in(PrInAction::ReportCapabilities, a),
            &a.device,
        ),
        Command::ReadFullStatus(a) => (
            "read-full-status",
            pr_in(PrInAction::ReadFullStatus, a),
            &a.device,
        ),
        Command::Register(a) => (
            "register",
            Request::Out(PrOutCommand::register(a.key, a.sa_key, options(&a.flags))),
            &a.device,
        ),
        Command::RegisterIgnore(a) => (
            "register-ignore",
            Request::Out(PrOutCommand::register_and_ignore(
                a.sa_key,
                options(&a.flags),
            )),
            &a.device,
        ),
        Command::Reserve(a) => (
            "reserve",
            Request::Out(PrOutCommand::reserve(a.key, a.rtype)),
            &a.device,
        ),
        Command::Release(a) => (
            "release",
            Request::Out(PrOutCommand::release(a.key, a.rtype)),
            &a.device,
        ),
        Command::Clear(a) => ("clear", Request::Out(PrOutCommand::clear(a.key)), &a.device),
        Command::Preempt(a) => (
            "preempt",
            Request::Out(PrOutCommand::preempt(a.key, a.sa_key, a.rtype)),
            &a.device,
        ),
        Command::PreemptAbort(a) => (
            "preempt-abort",
            Request::Out(PrOutCommand::preempt_and_abort(a.key, a.sa_key, a.rtype)),
            &a.device,
        ),
        Command::RegisterMove(a) => (
            "register-move",
            Request::Out(PrOutCommand::register_and_move(
                RegisterMoveParams {
                    reservation_key: a.key,
                    service_action_key: a.sa_key,
                    unreg: a.unreg,
                    aptpl: a.aptpl,
                    relative_target_port: a.relative_target_port,
                    transport_id: a.transport_id.clone(),
                },
                a.rtype,
            )),
            &a.device,
        ),
    }
}

fn options(flags: &RegistrationFlags) -> RegisterOptions {
    RegisterOptions {
        aptpl: flags.aptpl,
        all_tg_pt: flags.all_tg_pt,
        transport_ids: flags.transport_id.clone(),
    }
}

/// Runs the command line.
pub fn run(cli: &Cli) -> Outcome {
    let (command, request, device) = request_of(&cli.command);
    let via = if cli.direct {
        Via::Direct
    } else {
        Via::Socket(cli.socket.clone())
    };
    let mut outcome = Outcome {
        command,
        action: request.action_name(),
        device: device.clone(),
        via,
        status: None,
        sense: None,
        sense_bytes: Vec::new(),
        failure: None,
        data: None,
        exit: Exit::Success,
    };

    let writes = matches!(request, Request::Out(_));
    let file = match open_device(device, writes) {
        Ok(file) => file,
        Err(e) => {
            outcome.failure = Some(format!("cannot open {}: {e}", device.display()));
            outcome.exit = Exit::Other;
            return outcome;
        }
    };
    let (cdb, mut buffer) = match build(&request) {
        Ok(built) => built,
        Err(e) => {
            outcome.failure = Some(format!("cannot build the command: {e}"));
            outcome.exit = Exit::Usage;
            return outcome;
        }
    };
    let data = if writes {
        DataTransfer::ToDevice(&buffer)
    } else {
        DataTransfer::FromDevice(&mut buffer)
    };
    let sent = match &outcome.via {
        Via::Socket(path) => send_to_helper(cli, path, &file, &cdb, data),
        Via::Direct => crate::direct::send(
            &file,
            &cdb,
            data,
            Duration::from_secs(cli.timeout),
            cli.direct_path,
        ),
    };
    let reply = match sent {
        Ok(reply) => reply,
        Err(e) => {
            outcome.failure = Some(e);
            outcome.exit = Exit::Other;
            return outcome;
        }
    };
    classify(&mut outcome, &request, &reply, &buffer);
    outcome
}

fn open_device(device: &PathBuf, writes: bool) -> std::io::Result<File> {
    OpenOptions::new().read(true).write(writes).open(device)
}

fn build(request: &Request) -> Result<(Vec<u8>, Vec<u8>), String> {
    match request {
        Request::In { action, allocation } => Ok((
            pr_in_command(*action, *allocation).to_vec(),
            vec![0u8; usize::from(*allocation)],
        )),
        Request::Out(command) => {
            let (cdb, params) = command.encode().map_err(|e| e.to_string())?;
            Ok((cdb.to_vec(), params))
        }
    }
}

fn send_to_helper(
    cli: &Cli,
    path: &std::path::Path,
    file: &File,
    cdb: &[u8],
    data: DataTransfer<'_>,
) -> Result<Reply, String> {
    let mut config = Config::new(path);
    config.max_connections = 1;
    config.connect_attempts = cli.connect_attempts;
    config.retry_interval = Duration::from_millis(cli.retry_interval_ms);
    // One command and exit: nothing to watch.
    config.idle_watch_interval = None;
    Client::new(config)
        .execute(cdb, file.as_fd(), data)
        .map_err(|e| format!("invalid command: {e}"))
}

/// Sorts a reply into status, sense, data and exit code.
pub fn classify(outcome: &mut Outcome, request: &Request, reply: &Reply, buffer: &[u8]) {
    outcome.status = Some(reply.status);
    outcome.sense = reply.decoded_sense();
    outcome.sense_bytes = reply.valid_sense().to_vec();
    if let Some(failure) = &reply.failure {
        outcome.failure = Some(error_chain(failure));
        outcome.exit = Exit::Transport;
        return;
    }
    if reply.status == Status::RESERVATION_CONFLICT {
        outcome.exit = Exit::ReservationConflict;
        return;
    }
    if !reply.status.is_success() {
        outcome.exit = Exit::ScsiError;
        return;
    }
    if let Request::In { action, .. } = request {
        let payload = buffer.get(..reply.data_len).unwrap_or(&[]);
        match decode_pr_in(*action, payload) {
            Ok(data) => outcome.data = Some(data),
            Err(e) => {
                outcome.failure = Some(error_chain(&e));
                outcome.exit = Exit::Other;
            }
        }
    }
}

pub use pr_manager::error_chain;

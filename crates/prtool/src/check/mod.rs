//! `prtool check DEVICE`: is the disk ready for a cluster's reservations, and
//! what to fix. The probes ([`probe`], [`helper`]) gather [`facts`]; the
//! findings engine ([`findings`], no I/O) turns them into a verdict and one
//! finding per fact, each with its cause and fix; [`write_test`] is the only
//! part that changes anything, and only with `--write-test`.

pub mod access;
pub mod connect_as;
pub mod facts;
pub mod findings;
pub mod helper;
pub mod probe;
pub mod write_test;

use std::fs::{File, OpenOptions};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use dm_multipath::DevNum;
use dm_multipath::device::NodeLookup;
use pr_manager::{Client, Config, PrInAction};

use self::access::PeerFilter;
use self::facts::{Access, Facts, ObservedAccess, PrAnswer, PrState, SocketFile, Source};
use self::findings::Diagnosis;
use self::helper::Databases;
use self::probe::Roots;
use crate::args::{CheckArgs, Cli};

/// qemu-pr-helper's (and our) default pid file.
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-pr-helper.pid";

/// What a check produced: the facts and what follows from them.
#[derive(Debug)]
pub struct Report {
    pub facts: Facts,
    pub diagnosis: Diagnosis,
}

/// Runs the check.
pub fn run(cli: &Cli, args: &CheckArgs) -> Report {
    let roots = Roots::default();
    let db = Databases::load();
    let timeout = Duration::from_secs(cli.timeout);
    let device_file = OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_nonblock())
        .open(&args.device);
    let mut facts = Facts {
        device: probe::probe_device(
            &roots,
            &args.device,
            device_file.as_ref().ok().map(|f| f.as_fd()),
            timeout,
        ),
        ..Facts::default()
    };
    facts
        .device
        .extra_initiators
        .extend(args.initiator.iter().cloned());
    if let (Err(e), false) = (
        &device_file,
        facts.device.kind == facts::DeviceKind::Missing,
    ) {
        facts.device.open_error = Some(e.to_string());
    }
    facts.caller = helper::caller_facts();
    facts.libvirt = helper::libvirt_facts(&args.libvirt_config);

    let client = if cli.direct {
        facts.helper.skipped = true;
        None
    } else {
        check_helper(cli, args, &roots, &db, &mut facts)
    };
    if let (Some(client), Ok(file)) = (&client, &device_file) {
        through_helper(client, file, &roots, &mut facts);
    }

    if args.write_test {
        facts.write_test = Some(match write_test::refusal(&facts) {
            Some(why) => facts::WriteTest::Refused(why),
            None => run_write_test(&facts, client.as_ref(), device_file.as_ref().ok(), timeout),
        });
    }
    let diagnosis = findings::diagnose(&facts);
    Report { facts, diagnosis }
}

fn libc_o_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// The socket, who may connect, the process, the handshake. Returns a client
/// when the handshake worked.
fn check_helper(
    cli: &Cli,
    args: &CheckArgs,
    roots: &Roots,
    db: &Databases,
    facts: &mut Facts,
) -> Option<Client> {
    let socket = &cli.socket;
    let h = &mut facts.helper;
    h.socket = socket.display().to_string();
    let (file, directories, problem) = helper::socket_file(socket, db);
    h.socket_file = file.clone();
    h.directory_problem = problem;
    h.process = helper::find_process(roots, socket, args.pid_file.as_deref(), db);
    let filter = h
        .process
        .as_ref()
        .map(|p| PeerFilter {
            uids: p.allow_uids.clone(),
            gids: p.allow_gids.clone(),
        })
        .unwrap_or_default();
    let caller = helper::caller_identity(db);
    let caller_access = helper::access_of(&caller, false, socket, &file, &directories, &filter);
    let caller_ok = caller_access.as_ref().is_some_and(|a| a.verdict.is_ok());
    h.access.extend(caller_access);
    if let Some(user) = &args.as_user {
        match access::resolve_user(user, &db.passwd, &db.groups) {
            Ok(identity) => {
                h.access.extend(helper::access_of(
                    &identity,
                    true,
                    socket,
                    &file,
                    &directories,
                    &filter,
                ));
                if matches!(file, SocketFile::Socket(_)) {
                    h.observed_access =
                        connect_as::observe(&identity, socket).map(|result| ObservedAccess {
                            who: identity.words(),
                            result,
                        });
                }
            }
            Err(why) => h.access.push(Access {
                who: user.clone(),
                named: true,
                verdict: Err(why),
                fix: Some("name a user of this host (`getent passwd USER`)".to_owned()),
            }),
        }
    }
    if !matches!(file, SocketFile::Socket(_)) || !caller_ok {
        return None;
    }
    let mut config = Config::new(socket);
    config.max_connections = 1;
    config.connect_attempts = cli.connect_attempts;
    config.retry_interval = Duration::from_millis(cli.retry_interval_ms);
    config.idle_watch_interval = None;
    match Client::connect(config) {
        Ok(client) => {
            h.handshake = Some(Ok(()));
            Some(client)
        }
        Err(e) => {
            h.handshake = Some(Err(pr_manager::error_chain(&e)));
            None
        }
    }
}

/// READ KEYS through the helper; for image files (and devices the check could
/// not read directly) the reservation state too.
fn through_helper(client: &Client, file: &File, roots: &Roots, facts: &mut Facts) {
    let fd = file.as_fd();
    let keys = write_test::helper_pr_in(client, fd, PrInAction::ReadKeys);
    facts.helper.read_keys = Some(probe::keys_of(keys));
    let direct_failed = match &facts.device.pr {
        None => true,
        Some(pr) => matches!(pr.full_status, PrAnswer::Failed(_)),
    };
    let speaks = matches!(
        facts.device.kind,
        facts::DeviceKind::ImageFile
            | facts::DeviceKind::ScsiDisk
            | facts::DeviceKind::ScsiGeneric { .. }
            | facts::DeviceKind::Multipath { .. }
    );
    if !(direct_failed && speaks) {
        return;
    }
    let full = probe::full_status_of(write_test::helper_pr_in(
        client,
        fd,
        PrInAction::ReadFullStatus,
    ));
    let caps = probe::map_answer(
        write_test::helper_pr_in(client, fd, PrInAction::ReportCapabilities),
        probe::capabilities_of,
    );
    if facts.device.kind == facts::DeviceKind::ImageFile {
        if let Some(state) = full.good() {
            let ids: Vec<_> = state
                .descriptors
                .iter()
                .map(|d| d.transport_id.clone())
                .collect();
            facts.device.emulated_initiators = probe::emulated_initiators(roots, &ids);
        }
    }
    facts.device.pr = Some(PrState {
        source: Source::Helper,
        capabilities: caps,
        full_status: full,
    });
}

fn run_write_test(
    facts: &Facts,
    client: Option<&Client>,
    file: Option<&File>,
    timeout: Duration,
) -> facts::WriteTest {
    let helper_works = facts
        .helper
        .read_keys
        .as_ref()
        .is_some_and(|k| k.good().is_some());
    // PR OUT through the helper needs a descriptor open for writing (the helper
    // refuses it on a read-only one, as a device's command filter would).
    let writable = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(&facts.device.path);
    let helper = match (client, &writable) {
        (Some(client), Ok(file)) if helper_works => Some((client, file.as_fd())),
        (Some(_), Err(e)) if helper_works && facts.device.kind == facts::DeviceKind::ImageFile => {
            return facts::WriteTest::Refused(format!(
                "cannot open {} for writing: {e}",
                facts.device.path
            ));
        }
        _ => None,
    };
    let mut paths = Vec::new();
    let d = &facts.device;
    match &d.kind {
        facts::DeviceKind::Multipath { .. } => {
            let lookup = NodeLookup::default();
            for p in d.paths.iter().filter(|p| p.usable == Some(true)) {
                let Ok(dev) = p.devnum.parse::<DevNum>() else {
                    continue;
                };
                match lookup.open(dev) {
                    Ok(fd) => paths.push((p.node.clone(), fd, p.initiator.clone())),
                    Err(e) => {
                        return facts::WriteTest::Refused(format!(
                            "cannot open path {}: {}",
                            p.node,
                            pr_manager::error_chain(&e)
                        ));
                    }
                }
            }
        }
        facts::DeviceKind::ImageFile => {}
        _ => {
            let Some(file) = file else {
                return facts::WriteTest::Refused("the device cannot be opened".to_owned());
            };
            match file.as_fd().try_clone_to_owned() {
                Ok(fd) => paths.push((
                    d.path.clone(),
                    fd,
                    d.paths.first().and_then(|p| p.initiator.clone()),
                )),
                Err(e) => return facts::WriteTest::Refused(format!("dup: {e}")),
            }
        }
    }
    if helper.is_none() && facts.device.kind == facts::DeviceKind::ImageFile {
        return facts::WriteTest::Refused(
            "an image file is reached through the helper only".to_owned(),
        );
    }
    let target = write_test::Target {
        helper,
        paths,
        timeout,
        direct: facts.device.route,
    };
    write_test::run(&target, write_test::throwaway_key())
}

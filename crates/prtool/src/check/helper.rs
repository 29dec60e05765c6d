//! Looking at the helper without asking it anything beyond the QEMU protocol:
//! its socket file and the directories above it, who may connect (computed
//! from the bits, see [`super::access`]), and its process (from a pid file or
//! the socket's listener in `/proc/net/unix`): the executable, the flags on its
//! command line, the confinement `/proc/PID/status` shows, `--version`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::access::{
    self, GroupEntry, Identity, PasswdEntry, PeerFilter, group_name, may_connect, user_name,
};
use super::facts::{
    Access, CallerFacts, Confinement, FileMode, HelperProcess, LibvirtFacts, Program, SocketFile,
};
use super::probe::Roots;

/// The user and group databases.
#[derive(Debug, Clone, Default)]
pub struct Databases {
    pub passwd: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
}

impl Databases {
    pub fn load() -> Self {
        Self {
            passwd: access::parse_passwd(&fs::read_to_string("/etc/passwd").unwrap_or_default()),
            groups: access::parse_group(&fs::read_to_string("/etc/group").unwrap_or_default()),
        }
    }
}

fn file_mode(meta: &fs::Metadata, db: &Databases) -> FileMode {
    FileMode {
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        owner: user_name(meta.uid(), &db.passwd),
        group: group_name(meta.gid(), &db.groups),
    }
}

/// The socket file and the directories above it (`/` first), with their modes;
/// a missing or unreadable directory in words.
pub fn socket_file(
    socket: &Path,
    db: &Databases,
) -> (SocketFile, Vec<(String, FileMode)>, Option<String>) {
    let absolute = if socket.is_absolute() {
        socket.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(socket)
    };
    let mut directories = Vec::new();
    let mut problem = None;
    let mut dir = PathBuf::new();
    let parent = absolute.parent().map(Path::to_path_buf).unwrap_or_default();
    for component in parent.components() {
        dir.push(component);
        match fs::metadata(&dir) {
            Ok(meta) if meta.is_dir() => {
                directories.push((dir.display().to_string(), file_mode(&meta, db)))
            }
            Ok(_) => {
                problem = Some(format!("{} is not a directory", dir.display()));
                break;
            }
            Err(e) => {
                problem = Some(format!("{}: {e}", dir.display()));
                break;
            }
        }
    }
    let file = match fs::symlink_metadata(&absolute).and_then(|m| {
        if m.file_type().is_symlink() {
            fs::metadata(&absolute)
        } else {
            Ok(m)
        }
    }) {
        Ok(meta) if meta.file_type().is_socket() => SocketFile::Socket(file_mode(&meta, db)),
        Ok(meta) => SocketFile::NotASocket {
            what: if meta.is_dir() {
                "a directory".to_owned()
            } else if meta.is_file() {
                "a regular file".to_owned()
            } else {
                "not a socket".to_owned()
            },
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => SocketFile::Missing,
        Err(e) => SocketFile::NotASocket {
            what: format!("unreadable ({e})"),
        },
    };
    // A missing directory is the socket missing, said once.
    if file == SocketFile::Missing {
        problem = None;
    }
    (file, directories, problem)
}

/// The calling process as a permission check sees it.
pub fn caller_identity(db: &Databases) -> Identity {
    let uid = rustix::process::geteuid().as_raw();
    let mut gids = vec![rustix::process::getegid().as_raw()];
    if let Ok(groups) = rustix::process::getgroups() {
        for g in groups {
            if !gids.contains(&g.as_raw()) {
                gids.push(g.as_raw());
            }
        }
    }
    Identity {
        name: user_name(uid, &db.passwd),
        uid,
        gids,
    }
}

/// The caller's privileges.
pub fn caller_facts() -> CallerFacts {
    let caps = rustix::thread::capabilities(None).ok();
    let has = |cap| caps.is_some_and(|c| c.effective.contains(cap));
    CallerFacts {
        uid: rustix::process::geteuid().as_raw(),
        cap_sys_rawio: has(rustix::thread::CapabilitySet::SYS_RAWIO),
        cap_sys_admin: has(rustix::thread::CapabilitySet::SYS_ADMIN),
    }
}

/// Whether `who` may connect, as an [`Access`].
pub fn access_of(
    who: &Identity,
    named: bool,
    socket: &Path,
    file: &SocketFile,
    directories: &[(String, FileMode)],
    filter: &PeerFilter,
) -> Option<Access> {
    let SocketFile::Socket(mode) = file else {
        return None;
    };
    let result = may_connect(
        who,
        directories,
        &(socket.display().to_string(), mode.clone()),
        filter,
    );
    Some(Access {
        who: who.words(),
        named,
        verdict: result.as_ref().map(|_| ()).map_err(|(why, _)| why.clone()),
        fix: result.err().map(|(_, fix)| fix),
    })
}

/// The listening socket's inode in `/proc/net/unix`.
fn listener_inode(roots: &Roots, socket: &Path) -> Option<u64> {
    let text = fs::read_to_string(roots.proc.join("net/unix")).ok()?;
    let wanted = socket.display().to_string();
    let canonical = socket.canonicalize().ok().map(|p| p.display().to_string());
    text.lines().skip(1).find_map(|line| {
        // Num RefCount Protocol Flags Type St Inode Path
        let fields: Vec<&str> = line.split_whitespace().collect();
        let path = *fields.get(7)?;
        let listening = fields.get(3).is_some_and(|f| {
            u32::from_str_radix(f, 16).is_ok_and(|flags| flags & 0x0001_0000 != 0)
        });
        let same = path == wanted
            || canonical.as_deref() == Some(path)
            || is_staging_name_of(Path::new(path), socket)
            || canonical
                .as_deref()
                .is_some_and(|canonical| is_staging_name_of(Path::new(path), Path::new(canonical)));
        (listening && same).then(|| fields.get(6)?.parse().ok())?
    })
}

/// Whether `bound` is the name pr-helper bound its socket under before
/// renaming it to `socket`: `.NAME.PID.bind` in the same directory (see
/// pr-helper's `startup::listener`). The kernel keeps reporting the name a
/// socket was bound to, so that is what `/proc/net/unix` shows.
fn is_staging_name_of(bound: &Path, socket: &Path) -> bool {
    let (Some(name), Some(bound_name)) = (socket.file_name(), bound.file_name()) else {
        return false;
    };
    if bound.parent() != socket.parent() {
        return false;
    }
    let (Some(name), Some(bound_name)) = (name.to_str(), bound_name.to_str()) else {
        return false;
    };
    bound_name
        .strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(name))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".bind"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// The processes that hold socket inode `inode` (pid 1, systemd's socket unit,
/// last).
fn holders_of_socket(roots: &Roots, inode: u64) -> Vec<u32> {
    let link = format!("socket:[{inode}]");
    let mut pids = Vec::new();
    let Some(processes) = super::probe::processes(roots) else {
        return pids;
    };
    for (pid, dir) in processes {
        let Ok(fds) = fs::read_dir(dir.join("fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == link.as_str()))
        {
            pids.push(pid);
        }
    }
    pids.sort_by_key(|pid| (*pid == 1, *pid));
    pids
}

/// Finds the helper's process: `--pid-file`, else the socket's listener, else
/// the default pid file when the socket is the default one.
pub fn find_process(
    roots: &Roots,
    socket: &Path,
    pid_file: Option<&Path>,
    db: &Databases,
) -> Result<HelperProcess, String> {
    let from_file = |path: &Path| -> Result<u32, String> {
        let text =
            fs::read_to_string(path).map_err(|e| format!("pid file {}: {e}", path.display()))?;
        text.trim()
            .parse()
            .map_err(|_| format!("pid file {} holds no pid", path.display()))
    };
    let (pid, found_by) = if let Some(path) = pid_file {
        (from_file(path)?, format!("pid file {}", path.display()))
    } else {
        let listener = listener_inode(roots, socket);
        let holders = listener
            .map(|inode| holders_of_socket(roots, inode))
            .unwrap_or_default();
        match holders.first() {
            Some(pid) if *pid != 1 => (*pid, "the socket's listener".to_owned()),
            _ => {
                let default = Path::new(crate::check::DEFAULT_PIDFILE);
                if socket == Path::new(pr_manager::DEFAULT_SOCKET) && default.exists() {
                    (
                        from_file(default)?,
                        format!("pid file {}", default.display()),
                    )
                } else if listener.is_none() {
                    return Err(format!("no process listens on {}", socket.display()));
                } else {
                    return Err(
                        "its descriptors are not readable (run as root or name its pid file with --pid-file)"
                            .to_owned(),
                    );
                }
            }
        }
    };
    let dir = roots.proc.join(pid.to_string());
    if !dir.exists() {
        return Err(format!("{found_by} names pid {pid}, which does not run"));
    }
    let mut process = HelperProcess {
        pid,
        found_by,
        ..HelperProcess::default()
    };
    let exe = fs::read_link(dir.join("exe")).ok();
    process.program = match exe
        .as_ref()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
    {
        Some(name) if name == "pr-helper" => Program::PrHelper,
        Some(name) if name == "qemu-pr-helper" => Program::QemuPrHelper,
        Some(name) => Program::Other(name.trim_end_matches(" (deleted)").to_owned()),
        None => Program::Unknown,
    };
    if let Ok(raw) = fs::read(dir.join("cmdline")) {
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if process.program == Program::Unknown {
            if let Some(first) = args.first() {
                let name = Path::new(first)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                process.program = match name.as_str() {
                    "pr-helper" => Program::PrHelper,
                    "qemu-pr-helper" => Program::QemuPrHelper,
                    _ => Program::Unknown,
                };
            }
        }
        apply_flags(&mut process, args.get(1..).unwrap_or(&[]), db);
    }
    if let Ok(status) = fs::read_to_string(dir.join("status")) {
        process.confinement = parse_status(&status);
    }
    if exe.is_some() {
        process.version = version_of(&dir.join("exe"));
    }
    Ok(process)
}

/// What the helper's command line says (ours; qemu-pr-helper has none of these).
pub fn apply_flags(process: &mut HelperProcess, args: &[String], db: &Databases) {
    process.cmdline_known = true;
    process.multipath = true;
    process.landlock = true;
    let mut i = 0;
    while let Some(arg) = args.get(i) {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_owned())),
            _ => (arg.as_str(), None),
        };
        let takes_value = matches!(
            name,
            "--emulated-state-dir"
                | "--seccomp"
                | "--sgio-timeout"
                | "--allow-uid"
                | "--allow-gid"
                | "-u"
                | "--user"
        );
        let value = if takes_value {
            match inline {
                Some(v) => Some(v),
                None => {
                    i += 1;
                    args.get(i).cloned()
                }
            }
        } else {
            None
        };
        match (name, value) {
            ("--no-multipath", _) => process.multipath = false,
            ("--no-landlock", _) => process.landlock = false,
            ("--emulated-state-dir", v) => process.emulated_state_dir = v,
            ("--seccomp", v) => process.seccomp_mode = v,
            ("--sgio-timeout", v) => process.sgio_timeout = v,
            ("-u" | "--user", v) => process.user = v,
            ("--allow-uid", Some(v)) => {
                if let Some(uid) = v
                    .parse()
                    .ok()
                    .or_else(|| db.passwd.iter().find(|e| e.name == v).map(|e| e.uid))
                {
                    process.allow_uids.push(uid);
                }
            }
            ("--allow-gid", Some(v)) => {
                if let Some(gid) = v
                    .parse()
                    .ok()
                    .or_else(|| db.groups.iter().find(|g| g.name == v).map(|g| g.gid))
                {
                    process.allow_gids.push(gid);
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// Seccomp, NoNewPrivs, CapEff, CapPrm and the effective uid of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Confinement {
    let mut c = Confinement::default();
    for line in text.lines() {
        let Some((field, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match field {
            "Seccomp" => c.seccomp = value.parse().ok(),
            "NoNewPrivs" => c.no_new_privs = value.parse::<u8>().ok().map(|v| v != 0),
            "CapEff" => c.cap_eff = u64::from_str_radix(value, 16).ok(),
            "CapPrm" => c.cap_prm = u64::from_str_radix(value, 16).ok(),
            "Uid" => c.uid = value.split_whitespace().nth(1).and_then(|u| u.parse().ok()),
            _ => {}
        }
    }
    c
}

/// The first line of `EXE --version`, bounded to a few seconds.
fn version_of(exe: &Path) -> Option<String> {
    let mut child = Command::new(exe)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let output = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .next()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
}

/// libvirt's `qemu.conf`, if there is one.
pub fn libvirt_facts(path: &Path) -> LibvirtFacts {
    match fs::read_to_string(path) {
        Ok(text) => LibvirtFacts::PrHelper {
            path: path.display().to_string(),
            value: access::qemu_conf_pr_helper(&text),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LibvirtFacts::Absent,
        Err(e) => LibvirtFacts::Unreadable {
            path: path.display().to_string(),
            why: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::is_staging_name_of;

    #[test]
    fn the_daemons_staging_name_names_its_socket() {
        let socket = std::path::Path::new("/run/qemu-pr-helper.sock");
        for (bound, ours) in [
            ("/run/.qemu-pr-helper.sock.4242.bind", true),
            ("/run/.qemu-pr-helper.sock..bind", false),
            ("/run/.qemu-pr-helper.sock.42x.bind", false),
            ("/tmp/.qemu-pr-helper.sock.4242.bind", false),
            ("/run/.other.sock.4242.bind", false),
            ("/run/qemu-pr-helper.sock", false),
        ] {
            assert_eq!(
                is_staging_name_of(std::path::Path::new(bound), socket),
                ours,
                "{bound}"
            );
        }
    }

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags_of_our_helper() {
        let db = Databases {
            passwd: access::parse_passwd("libvirt-qemu:x:64055:108::/:/bin/false\n"),
            groups: access::parse_group("kvm:x:104:\n"),
        };
        let mut p = HelperProcess::default();
        apply_flags(
            &mut p,
            &args(&[
                "-k",
                "/run/x.sock",
                "--no-multipath",
                "--emulated-state-dir=/var/lib/pr",
                "--seccomp",
                "log",
                "--allow-uid",
                "libvirt-qemu",
                "--allow-uid=5",
                "--allow-gid",
                "kvm",
                "--sgio-timeout",
                "12.5",
            ]),
            &db,
        );
        assert!(p.cmdline_known && !p.multipath && p.landlock);
        assert_eq!(p.emulated_state_dir.as_deref(), Some("/var/lib/pr"));
        assert_eq!(p.seccomp_mode.as_deref(), Some("log"));
        assert_eq!(p.sgio_timeout.as_deref(), Some("12.5"));
        assert_eq!(p.allow_uids, [64055, 5]);
        assert_eq!(p.allow_gids, [104]);
        let mut q = HelperProcess::default();
        apply_flags(&mut q, &args(&["--no-landlock", "-u", "nobody"]), &db);
        assert!(q.multipath && !q.landlock);
        assert_eq!(q.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn proc_status_fields() {
        let text = "Name:\tpr-helper\nUid:\t0\t65534\t65534\t65534\nNoNewPrivs:\t1\n\
                    Seccomp:\t2\nCapPrm:\t0000000000220004\nCapEff:\t0000000000020000\n";
        let c = parse_status(text);
        assert_eq!(
            c,
            Confinement {
                seccomp: Some(2),
                no_new_privs: Some(true),
                cap_eff: Some(0x20000),
                cap_prm: Some(0x22_0004),
                uid: Some(65534),
            }
        );
    }

    #[test]
    fn socket_file_states() {
        let dir = tempfile::tempdir().unwrap();
        let db = Databases::default();
        let missing = dir.path().join("none.sock");
        let (file, dirs, problem) = socket_file(&missing, &db);
        assert_eq!(file, SocketFile::Missing);
        assert!(problem.is_none());
        assert_eq!(dirs.first().map(|d| d.0.as_str()), Some("/"));
        let regular = dir.path().join("file");
        fs::write(&regular, "x").unwrap();
        assert_eq!(
            socket_file(&regular, &db).0,
            SocketFile::NotASocket {
                what: "a regular file".into()
            }
        );
        let sock = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(socket_file(&sock, &db).0, SocketFile::Socket(_)));
    }
}

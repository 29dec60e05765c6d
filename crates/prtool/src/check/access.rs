//! Whether a user could connect to the helper's socket, computed from the
//! permission bits (no switching users): search permission on every directory
//! above the socket, write permission on the socket itself (what `connect(2)`
//! on a Unix socket checks), and the helper's own `--allow-uid`/`--allow-gid`
//! filter. Also the user and group databases, parsed from their text. Pure.
//!
//! Not evaluated: POSIX ACLs and LSM policies (AppArmor, SELinux), which can
//! only deny more.

use super::facts::FileMode;

/// A user as the kernel sees it for permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: Option<String>,
    pub uid: u32,
    /// Primary and supplementary groups.
    pub gids: Vec<u32>,
}

impl Identity {
    /// `name (uid N)`.
    pub fn words(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} (uid {})", self.uid),
            None => format!("uid {}", self.uid),
        }
    }
}

/// One `/etc/passwd` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// Parses `/etc/passwd` text (malformed lines are skipped).
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let _password = fields.next()?;
            let uid = fields.next()?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            (!name.is_empty() && !name.starts_with('#')).then_some(PasswdEntry { name, uid, gid })
        })
        .collect()
}

/// Parses `/etc/group` text (malformed lines are skipped).
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?.to_owned();
            let _password = fields.next()?;
            let gid = fields.next()?.parse().ok()?;
            let members = fields
                .next()
                .unwrap_or("")
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect();
            (!name.is_empty() && !name.starts_with('#')).then_some(GroupEntry {
                name,
                gid,
                members,
            })
        })
        .collect()
}

/// The user named `who` (a name or a number) with its groups.
pub fn resolve_user(
    who: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<Identity, String> {
    let entry = passwd
        .iter()
        .find(|e| e.name == who)
        .or_else(|| {
            who.parse::<u32>()
                .ok()
                .and_then(|uid| passwd.iter().find(|e| e.uid == uid))
        })
        .cloned();
    let entry = match (entry, who.parse::<u32>()) {
        (Some(entry), _) => entry,
        // A number the database does not know: that uid alone, no groups.
        (None, Ok(uid)) => {
            return Ok(Identity {
                name: None,
                uid,
                gids: Vec::new(),
            });
        }
        (None, Err(_)) => return Err(format!("no user {who:?} in the user database")),
    };
    let mut gids = vec![entry.gid];
    for group in groups {
        if group.members.iter().any(|m| m == &entry.name) && !gids.contains(&group.gid) {
            gids.push(group.gid);
        }
    }
    Ok(Identity {
        name: Some(entry.name),
        uid: entry.uid,
        gids,
    })
}

/// A name for `gid`, if the database has one.
pub fn group_name(gid: u32, groups: &[GroupEntry]) -> Option<String> {
    groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone())
}

/// A name for `uid`, if the database has one.
pub fn user_name(uid: u32, passwd: &[PasswdEntry]) -> Option<String> {
    passwd.iter().find(|e| e.uid == uid).map(|e| e.name.clone())
}

/// Which permission bit a step needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `x` on a directory.
    Search,
    /// `w` on the socket.
    Write,
}

/// Whether `who` has `need` on a file with `mode`: the owner's bits for its
/// owner, else the group's for a member, else the others' (as the kernel picks
/// one class, not the union). uid 0 passes (CAP_DAC_OVERRIDE; a directory
/// search needs one `x` bit somewhere, which every directory here has).
pub fn permits(who: &Identity, mode: &FileMode, need: Need) -> bool {
    let bit = match need {
        Need::Search => 0o1,
        Need::Write => 0o2,
    };
    if who.uid == 0 {
        return need == Need::Write || mode.mode & 0o111 != 0;
    }
    let class = if who.uid == mode.uid {
        mode.mode >> 6
    } else if who.gids.contains(&mode.gid) {
        mode.mode >> 3
    } else {
        mode.mode
    };
    class & bit != 0
}

/// `mode 0660, root:kvm`.
pub fn mode_words(mode: &FileMode) -> String {
    format!(
        "mode {:04o}, {}:{}",
        mode.mode & 0o7777,
        mode.owner.clone().unwrap_or_else(|| mode.uid.to_string()),
        mode.group.clone().unwrap_or_else(|| mode.gid.to_string())
    )
}

/// What the helper's peer filter allows (`--allow-uid`, `--allow-gid`); empty
/// lists allow everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerFilter {
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
}

/// The first reason `who` cannot connect, or `Ok`, with the fix for it.
/// `directories` go from `/` down to the socket's directory.
pub fn may_connect(
    who: &Identity,
    directories: &[(String, FileMode)],
    socket: &(String, FileMode),
    filter: &PeerFilter,
) -> Result<(), (String, String)> {
    for (dir, mode) in directories {
        if !permits(who, mode, Need::Search) {
            return Err((
                format!("no search permission on {dir} ({})", mode_words(mode)),
                format!(
                    "let the user through the directory: chmod o+x {dir} (or make the user a member of its group and chmod g+x {dir})"
                ),
            ));
        }
    }
    let (path, mode) = socket;
    if !permits(who, mode, Need::Write) {
        let group = mode.group.clone().unwrap_or_else(|| mode.gid.to_string());
        return Err((
            format!("no write permission on {path} ({})", mode_words(mode)),
            format!(
                "open the socket to a group of the user: `systemctl edit pr-helper.socket` with \
                 SocketGroup=GROUP and SocketMode=0660, or start the helper with --socket-group \
                 GROUP --socket-mode 0660 (now it is {group}, mode {:04o})",
                mode.mode & 0o7777
            ),
        ));
    }
    let filtered = !filter.uids.is_empty() || !filter.gids.is_empty();
    if filtered
        && !filter.uids.contains(&who.uid)
        && !who.gids.iter().any(|g| filter.gids.contains(g))
    {
        return Err((
            "the helper's --allow-uid/--allow-gid list does not name the user or its groups"
                .to_owned(),
            format!(
                "add --allow-uid {} to the helper's options",
                who.name.clone().unwrap_or_else(|| who.uid.to_string())
            ),
        ));
    }
    Ok(())
}

/// The parsed `pr_helper` setting of libvirt's `qemu.conf`: the last
/// uncommented assignment, unquoted.
pub fn qemu_conf_pr_helper(text: &str) -> Option<String> {
    let mut value = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line.split_once('=') else {
            continue;
        };
        if name.trim() != "pr_helper" {
            continue;
        }
        let rest = rest.trim();
        let unquoted = rest
            .strip_prefix('"')
            .and_then(|r| r.split_once('"'))
            .map(|(v, _)| v.to_owned())
            .unwrap_or_else(|| rest.split('#').next().unwrap_or("").trim().to_owned());
        value = Some(unquoted);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        libvirt-qemu:x:64055:108:Libvirt Qemu,,,:/var/lib/libvirt:/usr/sbin/nologin\n\
        broken line\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nkvm:x:104:libvirt-qemu,alice\nlibvirt-qemu:x:108:\ndisk:x:6:\n";

    fn mode(mode: u32, uid: u32, gid: u32) -> FileMode {
        FileMode {
            mode,
            uid,
            gid,
            owner: None,
            group: None,
        }
    }

    fn qemu() -> Identity {
        resolve_user("libvirt-qemu", &parse_passwd(PASSWD), &parse_group(GROUP)).unwrap()
    }

    #[test]
    fn users_resolve_with_their_groups() {
        let user = qemu();
        assert_eq!(user.uid, 64055);
        assert_eq!(user.gids, [108, 104]);
        assert_eq!(user.words(), "libvirt-qemu (uid 64055)");
        let by_number = resolve_user("65534", &parse_passwd(PASSWD), &parse_group(GROUP)).unwrap();
        assert_eq!(by_number.name.as_deref(), Some("nobody"));
        let unknown_number = resolve_user("4242", &parse_passwd(PASSWD), &[]).unwrap();
        assert_eq!((unknown_number.name, unknown_number.gids), (None, vec![]));
        assert!(resolve_user("nosuch", &parse_passwd(PASSWD), &[]).is_err());
        assert_eq!(group_name(104, &parse_group(GROUP)).as_deref(), Some("kvm"));
        assert_eq!(user_name(0, &parse_passwd(PASSWD)).as_deref(), Some("root"));
    }

    #[test]
    fn one_class_of_bits_applies() {
        let user = qemu();
        // Owner bits apply to the owner even if the group's would allow.
        assert!(!permits(&user, &mode(0o070, 64055, 104), Need::Write));
        assert!(permits(&user, &mode(0o620, 0, 104), Need::Write));
        assert!(!permits(&user, &mode(0o602, 0, 104), Need::Write));
        assert!(permits(&user, &mode(0o602, 0, 0), Need::Write));
        assert!(permits(&user, &mode(0o711, 0, 0), Need::Search));
        assert!(!permits(&user, &mode(0o700, 0, 0), Need::Search));
        let root = Identity {
            name: None,
            uid: 0,
            gids: vec![0],
        };
        assert!(permits(&root, &mode(0o000, 5, 5), Need::Write));
        assert!(permits(&root, &mode(0o100, 5, 5), Need::Search));
        assert!(!permits(&root, &mode(0o000, 5, 5), Need::Search));
    }

    #[test]
    fn connect_needs_search_on_every_directory_and_write_on_the_socket() {
        let user = qemu();
        let dirs = vec![
            ("/".to_owned(), mode(0o755, 0, 0)),
            ("/run".to_owned(), mode(0o755, 0, 0)),
            ("/run/pr".to_owned(), mode(0o750, 0, 0)),
        ];
        let socket = ("/run/pr/h.sock".to_owned(), mode(0o660, 0, 104));
        let (why, fix) = may_connect(&user, &dirs, &socket, &PeerFilter::default()).unwrap_err();
        assert_eq!(why, "no search permission on /run/pr (mode 0750, 0:0)");
        assert!(fix.contains("chmod o+x /run/pr"));
        let dirs_ok = &dirs[..2];
        assert!(may_connect(&user, dirs_ok, &socket, &PeerFilter::default()).is_ok());
        let closed = ("/run/h.sock".to_owned(), mode(0o600, 0, 0));
        let (why, fix) = may_connect(&user, dirs_ok, &closed, &PeerFilter::default()).unwrap_err();
        assert_eq!(why, "no write permission on /run/h.sock (mode 0600, 0:0)");
        assert!(fix.contains("SocketGroup=GROUP and SocketMode=0660"));
        let filter = PeerFilter {
            uids: vec![1000],
            gids: vec![],
        };
        let (why, fix) = may_connect(&user, dirs_ok, &socket, &filter).unwrap_err();
        assert!(why.contains("--allow-uid"));
        assert_eq!(fix, "add --allow-uid libvirt-qemu to the helper's options");
        let by_group = PeerFilter {
            uids: vec![],
            gids: vec![104],
        };
        assert!(may_connect(&user, dirs_ok, &socket, &by_group).is_ok());
    }

    #[test]
    fn qemu_conf_pr_helper_setting() {
        assert_eq!(qemu_conf_pr_helper("# pr_helper = \"/x\"\n"), None);
        assert_eq!(
            qemu_conf_pr_helper("user = \"a\"\npr_helper = \"/usr/bin/pr-helper\"  # ours\n")
                .as_deref(),
            Some("/usr/bin/pr-helper")
        );
        assert_eq!(
            qemu_conf_pr_helper("pr_helper=\"a\"\npr_helper = \"b\"\n").as_deref(),
            Some("b")
        );
        assert_eq!(qemu_conf_pr_helper("pr_helper = c\n").as_deref(), Some("c"));
    }
}

//! Resolving user and group names from the command line.

use std::io;

use nix::unistd::{Group, Uid, User};

use crate::config::IdSpec;

/// A user or group that does not exist or could not be looked up.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error("{option} {name}: no such user (check the name, or give a numeric uid)")]
    NoSuchUser { option: &'static str, name: String },
    #[error("{option} {name}: no such group (check the name, or give a numeric gid)")]
    NoSuchGroup { option: &'static str, name: String },
    #[error(
        "-u {uid}: uid {uid} has no entry in the user database, so its group is unknown: \
         give the group with -g"
    )]
    NoPrimaryGroup { uid: u32 },
    #[error("{option} {name}: looking it up in the user database failed")]
    Lookup {
        option: &'static str,
        name: String,
        #[source]
        source: io::Error,
    },
}

/// The identity to switch to with `-u`/`-g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchTo {
    /// New uid (`None`: keep ours).
    pub uid: Option<u32>,
    /// New gid (`None`: keep ours).
    pub gid: Option<u32>,
}

/// `-u` and `-g` together: `-u` alone also takes the user's primary group,
/// as qemu-pr-helper does.
pub fn resolve_switch(
    user: Option<&IdSpec>,
    group: Option<&IdSpec>,
) -> Result<Option<SwitchTo>, IdError> {
    let gid = group.map(|spec| resolve_group("-g", spec)).transpose()?;
    let Some(user) = user else {
        return Ok(gid.map(|gid| SwitchTo {
            uid: None,
            gid: Some(gid),
        }));
    };
    let entry = match user {
        IdSpec::Name(name) => user_by_name(name)
            .map_err(|source| lookup("-u", user, source))?
            .ok_or_else(|| IdError::NoSuchUser {
                option: "-u",
                name: name.clone(),
            })?,
        IdSpec::Id(uid) => match user_by_uid(*uid).map_err(|source| lookup("-u", user, source))? {
            Some(entry) => entry,
            None if gid.is_some() => UserEntry { uid: *uid, gid: 0 },
            None => return Err(IdError::NoPrimaryGroup { uid: *uid }),
        },
    };
    Ok(Some(SwitchTo {
        uid: Some(entry.uid),
        gid: Some(gid.unwrap_or(entry.gid)),
    }))
}

/// A user database entry: uid and primary gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UserEntry {
    uid: u32,
    gid: u32,
}

impl From<User> for UserEntry {
    fn from(user: User) -> Self {
        UserEntry {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }
}

// The lookups go through NSS (getpwnam_r and friends, via nix), so LDAP or
// systemd-userdb users count; nix grows the buffer on ERANGE.

fn user_by_name(name: &str) -> io::Result<Option<UserEntry>> {
    Ok(User::from_name(name)?.map(UserEntry::from))
}

fn user_by_uid(uid: u32) -> io::Result<Option<UserEntry>> {
    Ok(User::from_uid(Uid::from_raw(uid))?.map(UserEntry::from))
}

fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    Ok(Group::from_name(name)?.map(|group| group.gid.as_raw()))
}

/// A user name or number to a uid.
pub fn resolve_uid(option: &'static str, spec: &IdSpec) -> Result<u32, IdError> {
    match spec {
        IdSpec::Id(uid) => Ok(*uid),
        IdSpec::Name(name) => user_by_name(name)
            .map_err(|source| lookup(option, spec, source))?
            .map(|entry| entry.uid)
            .ok_or_else(|| IdError::NoSuchUser {
                option,
                name: name.clone(),
            }),
    }
}

/// A group name or number to a gid.
pub fn resolve_group(option: &'static str, spec: &IdSpec) -> Result<u32, IdError> {
    match spec {
        IdSpec::Id(gid) => Ok(*gid),
        IdSpec::Name(name) => group_by_name(name)
            .map_err(|source| lookup(option, spec, source))?
            .ok_or_else(|| IdError::NoSuchGroup {
                option,
                name: name.clone(),
            }),
    }
}

fn lookup(option: &'static str, spec: &IdSpec, source: io::Error) -> IdError {
    IdError::Lookup {
        option,
        name: spec.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_nobody_resolve() {
        assert_eq!(resolve_uid("-u", &IdSpec::Name("root".into())).unwrap(), 0);
        assert_eq!(
            resolve_group("-g", &IdSpec::Name("root".into())).unwrap(),
            0
        );
        let nobody = resolve_switch(Some(&IdSpec::Name("nobody".into())), None)
            .unwrap()
            .unwrap();
        assert_eq!(nobody.uid, Some(65534));
        assert!(nobody.gid.is_some());
    }

    #[test]
    fn numbers_pass_through_and_group_overrides() {
        let switch = resolve_switch(Some(&IdSpec::Id(0)), Some(&IdSpec::Id(1234)))
            .unwrap()
            .unwrap();
        assert_eq!(
            switch,
            SwitchTo {
                uid: Some(0),
                gid: Some(1234)
            }
        );
        let group_only = resolve_switch(None, Some(&IdSpec::Id(7))).unwrap().unwrap();
        assert_eq!(
            group_only,
            SwitchTo {
                uid: None,
                gid: Some(7)
            }
        );
        assert_eq!(resolve_switch(None, None).unwrap(), None);
    }

    #[test]
    fn unknown_names_are_clear_errors() {
        let err = resolve_switch(Some(&IdSpec::Name("no-such-user-xyz".into())), None).unwrap_err();
        assert!(err.to_string().contains("no such user"), "{err}");
        let err =
            resolve_group("--socket-group", &IdSpec::Name("no-such-group-xyz".into())).unwrap_err();
        assert!(
            err.to_string().contains("--socket-group no-such-group-xyz"),
            "{err}"
        );
        let err = resolve_switch(Some(&IdSpec::Id(4_000_000)), None).unwrap_err();
        assert!(matches!(err, IdError::NoPrimaryGroup { uid: 4_000_000 }));
    }
}

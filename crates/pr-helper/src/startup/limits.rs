//! The descriptor limit. Every connection holds a descriptor and every
//! request briefly one more, so the usual soft limit of 1024 would run out
//! before `--max-connections` (1024 by default) is reached. The soft limit
//! is raised to the hard limit, which needs no privilege.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Soft and hard `RLIMIT_NOFILE` after the change (`None`: unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorLimit {
    pub soft: Option<u64>,
    pub hard: Option<u64>,
}

/// Raises the soft descriptor limit to the hard one when the hard one is
/// finite (an unlimited hard limit is not a value the soft one may take).
pub fn raise_descriptor_limit() -> std::io::Result<DescriptorLimit> {
    let limit = getrlimit(Resource::Nofile);
    if let (Some(soft), Some(hard)) = (limit.current, limit.maximum) {
        if soft < hard {
            setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            )?;
        }
    }
    let now = getrlimit(Resource::Nofile);
    Ok(DescriptorLimit {
        soft: now.current,
        hard: now.maximum,
    })
}

//! What this host's kernel offers the sandbox: [`probe`] asks once per process
//! (a few system calls and, for the process cgroup, one `mkdir` and `rmdir`)
//! and keeps the answer.

use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;

use crate::{Sandbox, cgroup};

/// A kernel feature the sandbox uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Feature {
    /// Landlock file-system rules (ABI 1 and up).
    Landlock,
    /// Landlock's TCP `bind`/`connect` rules (ABI 4 and up).
    LandlockNetwork,
    /// Landlock's scopes: no signals to, and no abstract UNIX sockets of,
    /// processes outside the sandbox (ABI 6 and up).
    LandlockScope,
    /// seccomp-BPF filters with `SECCOMP_RET_KILL_PROCESS`.
    Seccomp,
    /// A writable `pids` cgroup controller: a process limit per trial.
    PidsCgroup,
    /// `RLIMIT_NPROC` (a non-root runner without `pids` cgroup: counts every
    /// process of the user).
    RlimitNproc,
}

impl Feature {
    /// Its name in messages and in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Landlock => "landlock",
            Feature::LandlockNetwork => "landlock-network",
            Feature::LandlockScope => "landlock-scope",
            Feature::Seccomp => "seccomp",
            Feature::PidsCgroup => "pids-cgroup",
            Feature::RlimitNproc => "rlimit-nproc",
        }
    }

    /// `a, b and c`, for messages.
    pub(crate) fn list(features: &[Feature]) -> String {
        let names: Vec<&str> = features.iter().map(|f| f.name()).collect();
        match names.split_last() {
            None => String::new(),
            Some((last, [])) => (*last).to_string(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the kernel of this host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Features {
    /// The Landlock ABI version, 0 without Landlock.
    pub landlock_abi: i32,
    /// seccomp filters that can kill the process.
    pub seccomp: bool,
    /// The cgroup folder under which a trial's `pids` cgroup can be made.
    pub pids_cgroup: Option<PathBuf>,
    /// This process runs as root (`RLIMIT_NPROC` does not bind root).
    pub root: bool,
}

impl Features {
    /// The features `sandbox` needs that are missing here (a clear error at
    /// campaign start unless the sandbox is not required).
    pub fn missing(&self, sandbox: &Sandbox) -> Vec<Feature> {
        let mut missing = Vec::new();
        if self.landlock_abi < 1 {
            missing.push(Feature::Landlock);
        }
        if !self.seccomp {
            missing.push(Feature::Seccomp);
        }
        if sandbox.limits.processes.is_some() && self.pids_cgroup.is_none() && self.root {
            missing.push(Feature::PidsCgroup);
        }
        missing
    }

    /// The features `sandbox` enforces on this host.
    pub fn enforced(&self, sandbox: &Sandbox) -> Vec<Feature> {
        let mut enforced = Vec::new();
        if self.landlock_abi >= 1 {
            enforced.push(Feature::Landlock);
        }
        if self.landlock_abi >= 4 && !sandbox.network {
            enforced.push(Feature::LandlockNetwork);
        }
        if self.landlock_abi >= 6 {
            enforced.push(Feature::LandlockScope);
        }
        if self.seccomp {
            enforced.push(Feature::Seccomp);
        }
        if sandbox.limits.processes.is_some() {
            if self.pids_cgroup.is_some() {
                enforced.push(Feature::PidsCgroup);
            } else if !self.root {
                enforced.push(Feature::RlimitNproc);
            }
        }
        enforced
    }
}

/// What this host's kernel offers the sandbox (asked once per process).
pub fn probe() -> &'static Features {
    static FEATURES: OnceLock<Features> = OnceLock::new();
    FEATURES.get_or_init(|| Features {
        landlock_abi: landlock_abi(),
        seccomp: seccomp_kill_process(),
        pids_cgroup: cgroup::find_pids_parent(),
        // SAFETY: geteuid has no preconditions.
        root: unsafe { libc::geteuid() } == 0,
    })
}

/// `landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)`.
fn landlock_abi() -> i32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: a null attribute pointer with size 0 and the VERSION flag only
    // asks for the ABI version.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(abi).unwrap_or(0).max(0)
}

/// `seccomp(SECCOMP_GET_ACTION_AVAIL, 0, &SECCOMP_RET_KILL_PROCESS)`: filters
/// are built in and can kill the whole process.
fn seccomp_kill_process() -> bool {
    let action: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    // SAFETY: the pointer is to a live u32, as the operation expects.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_GET_ACTION_AVAIL,
            0,
            &action as *const u32,
        )
    };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_lists_read_as_prose() {
        assert_eq!(Feature::list(&[Feature::Landlock]), "landlock");
        assert_eq!(
            Feature::list(&[Feature::Landlock, Feature::Seccomp, Feature::PidsCgroup]),
            "landlock, seccomp and pids-cgroup"
        );
    }

    #[test]
    fn a_root_runner_without_pids_cgroup_misses_the_process_limit_only_when_one_is_set() {
        let features = Features {
            landlock_abi: 3,
            seccomp: true,
            pids_cgroup: None,
            root: true,
        };
        let mut sandbox = Sandbox::default();
        sandbox.limits.processes = Some(64);
        assert_eq!(features.missing(&sandbox), [Feature::PidsCgroup]);
        assert_eq!(
            features.enforced(&sandbox),
            [Feature::Landlock, Feature::Seccomp]
        );
        sandbox.limits.processes = None;
        assert!(features.missing(&sandbox).is_empty());
        let none = Features {
            landlock_abi: 0,
            seccomp: false,
            pids_cgroup: None,
            root: false,
        };
        sandbox.limits.processes = Some(8);
        assert_eq!(
            none.missing(&sandbox),
            [Feature::Landlock, Feature::Seccomp]
        );
        assert_eq!(none.enforced(&sandbox), [Feature::RlimitNproc]);
    }
}

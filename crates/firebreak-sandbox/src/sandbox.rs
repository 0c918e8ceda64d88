//! [`Sandbox`] (what a trial may touch), [`Sandbox::prepare`] in the parent,
//! and [`Restrictions::apply`] in the child between `fork` and `exec`.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, PathBeneath, PathFd, PathFdError, Ruleset,
    RulesetAttr, RulesetCreatedAttr, Scope,
};
use seccompiler::BpfProgram;

use crate::{Features, ProcessCgroup, SandboxError, filter};

/// The limits of one trial's process (and, for `processes`, its descendants).
/// `None`: no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// CPU seconds (`RLIMIT_CPU`, per process): `SIGXCPU` at the limit,
    /// `SIGKILL` a second later.
    pub cpu_seconds: Option<u64>,
    /// Bytes of address space (`RLIMIT_AS`): an allocation past it fails.
    pub address_space: Option<u64>,
    /// Processes and threads of the trial at once (a `pids` cgroup; without
    /// one, a non-root runner's `RLIMIT_NPROC`).
    pub processes: Option<u64>,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: Option<u64>,
    /// Bytes of one written file (`RLIMIT_FSIZE`).
    pub file_size: Option<u64>,
}

/// What a trial may touch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Read and execute, nothing else (files or folders and everything below).
    /// Paths that do not exist are skipped.
    pub read: Vec<PathBuf>,
    /// Read, write, create, remove (files or folders and everything below).
    pub write: Vec<PathBuf>,
    /// May open sockets other than UNIX ones, and TCP `bind`/`connect`.
    pub network: bool,
    /// Resource limits.
    pub limits: Limits,
    /// A missing kernel feature is an error (true) or is done without (false).
    pub require: bool,
}

/// A prepared sandbox: what the child applies, and the process cgroup the
/// parent removes once the trial has ended.
#[derive(Debug)]
pub struct Prepared {
    /// Moved into the `pre_exec` hook.
    pub restrictions: Restrictions,
    /// The trial's process cgroup, when the process limit is one.
    pub cgroup: Option<ProcessCgroup>,
}

/// Everything the child does to sandbox itself, prepared: only plain data and
/// open descriptors, so [`Restrictions::apply`] allocates nothing.
#[derive(Debug)]
pub struct Restrictions {
    cgroup_procs: Option<OwnedFd>,
    limits: Limits,
    nproc: bool,
    landlock: Option<OwnedFd>,
    seccomp: Vec<BpfProgram>,
}

impl Sandbox {
    /// Prepares the sandbox on a host with `features`: opens the Landlock
    /// ruleset and its paths, compiles the seccomp programs, and makes the
    /// process cgroup `name` (unique among running trials). Errors when a
    /// needed feature is missing and the sandbox is required.
    pub fn prepare(&self, features: &Features, name: &str) -> Result<Prepared, SandboxError> {
        let missing = features.missing(self);
        if self.require && !missing.is_empty() {
            return Err(SandboxError::Missing { missing });
        }
        let landlock = if features.landlock_abi >= 1 {
            self.landlock(ABI::from(features.landlock_abi))?
        } else {
            None
        };
        let seccomp = if features.seccomp {
            filter::compile(self.network)?
        } else {
            Vec::new()
        };
        let (cgroup, cgroup_procs, nproc) = match (self.limits.processes, &features.pids_cgroup) {
            (Some(max), Some(parent)) => {
                let (cgroup, procs) = ProcessCgroup::create(parent, name, max)?;
                (Some(cgroup), Some(procs), false)
            }
            (Some(_), None) => (None, None, !features.root),
            (None, _) => (None, None, false),
        };
        Ok(Prepared {
            restrictions: Restrictions {
                cgroup_procs,
                limits: self.limits.clone(),
                nproc,
                landlock,
                seccomp,
            },
            cgroup,
        })
    }

    fn landlock(&self, abi: ABI) -> Result<Option<OwnedFd>, SandboxError> {
        let mut ruleset = Ruleset::default().handle_access(AccessFs::from_all(abi))?;
        if !self.network && abi >= ABI::V4 {
            ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
        }
        if abi >= ABI::V6 {
            ruleset = ruleset.scope(Scope::from_all(abi))?;
        }
        let mut created = ruleset.create()?;
        for (paths, access) in [
            (&self.read, AccessFs::from_read(abi)),
            (&self.write, AccessFs::from_all(abi)),
        ] {
            for path in paths {
                if let Some(rule) = rule(path, access, abi)? {
                    created = created.add_rule(rule)?;
                }
            }
        }
        Ok(created.into())
    }
}

/// The rule giving `access` beneath `path` (only a file's rights for a file);
/// `None` for a path that does not exist.
fn rule(
    path: &Path,
    access: BitFlags<AccessFs>,
    abi: ABI,
) -> Result<Option<PathBeneath<PathFd>>, SandboxError> {
    let fd = match PathFd::new(path) {
        Ok(fd) => fd,
        Err(PathFdError::OpenCall { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(PathFdError::OpenCall { source, .. }) => {
            return Err(SandboxError::Path {
                path: path.to_path_buf(),
                source,
            });
        }
        Err(e) => {
            return Err(SandboxError::Path {
                path: path.to_path_buf(),
                source: io::Error::other(e.to_string()),
            });
        }
    };
    let access = if path.is_dir() {
        access
    } else {
        access & AccessFs::from_file(abi)
    };
    Ok(Some(PathBeneath::new(fd, access)))
}

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

impl Restrictions {
    /// Applies the sandbox to the calling process; meant for
    /// `CommandExt::pre_exec`, in the child after `fork`. Makes only
    /// async-signal-safe system calls and allocates nothing; an error is the
    /// failing call's `errno`, and the spawn fails with it.
    pub fn apply(&self) -> io::Result<()> {
        let check = |rc: libc::c_long| {
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        // SAFETY (every block below): system calls on plain data owned by
        // `self` or on the stack; none allocates.
        if let Some(procs) = &self.cgroup_procs {
            let rc = unsafe { libc::write(procs.as_raw_fd(), b"0".as_ptr().cast(), 1) };
            check(rc as libc::c_long)?;
        }
        check(unsafe { libc::setsid() } as libc::c_long)?;
        let limit = |soft: u64, hard: u64| libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        let l = &self.limits;
        unsafe {
            check(libc::setrlimit(libc::RLIMIT_CORE, &limit(0, 0)) as libc::c_long)?;
            if let Some(n) = l.cpu_seconds {
                check(libc::setrlimit(libc::RLIMIT_CPU, &limit(n, n + 1)) as libc::c_long)?;
            }
            if let Some(n) = l.address_space {
                check(libc::setrlimit(libc::RLIMIT_AS, &limit(n, n)) as libc::c_long)?;
            }
            if let Some(n) = l.open_files {
                check(libc::setrlimit(libc::RLIMIT_NOFILE, &limit(n, n)) as libc::c_long)?;
            }
            if let Some(n) = l.file_size {
                check(libc::setrlimit(libc::RLIMIT_FSIZE, &limit(n, n)) as libc::c_long)?;
            }
            if let (true, Some(n)) = (self.nproc, l.processes) {
                check(libc::setrlimit(libc::RLIMIT_NPROC, &limit(n, n)) as libc::c_long)?;
            }
        }
        drop_capabilities()?;
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as libc::c_long)?;
        if let Some(ruleset) = &self.landlock {
            check(unsafe {
                libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    ruleset.as_raw_fd(),
                    0 as libc::c_uint,
                )
            })?;
        }
        for program in &self.seccomp {
            let fprog = libc::sock_fprog {
                len: program.len() as libc::c_ushort,
                filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
            };
            check(unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    0 as libc::c_uint,
                    &fprog as *const libc::sock_fprog,
                )
            })?;
        }
        Ok(())
    }
}

/// Empties the bounding and ambient sets (so that `exec` grants nothing, even to
/// root) and then the process's own sets. Without `CAP_SETPCAP` (not root) the
/// bounding set stays, which `exec` by a non-root user does not draw on anyway.
fn drop_capabilities() -> io::Result<()> {
    // SAFETY: prctl and capset on plain data on the stack.
    unsafe {
        for cap in 0..64 {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0 {
                let errno = io::Error::last_os_error().raw_os_error();
                if errno == Some(libc::EINVAL) {
                    break; // past the last capability this kernel knows
                }
            }
        }
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        );
        let mut header = CapHeader {
            version: LINUX_CAPABILITY_VERSION_3,
            pid: 0,
        };
        let data = [
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        if libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

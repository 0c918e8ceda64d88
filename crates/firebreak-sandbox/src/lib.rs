//! The trial sandbox: what a trial's process may touch, enforced by the kernel
//! rather than asked of the program.
//!
//! A [`Sandbox`] says which paths a trial may read (and execute), which it may
//! also write, whether it may open network sockets, and its [`Limits`] (CPU
//! seconds, address space, processes, open files, file size). [`probe`] reports
//! which kernel features this host has ([`Features`]); [`Sandbox::prepare`]
//! does everything that allocates or may fail slowly — opening the Landlock
//! ruleset and its path descriptors, compiling the seccomp BPF programs,
//! creating the trial's process cgroup — in the parent, and returns a
//! [`Prepared`] whose [`Restrictions::apply`] only makes async-signal-safe system
//! calls, so it may run in `CommandExt::pre_exec` between `fork` and `exec` of a
//! multi-threaded parent.
//!
//! In the child, in this order: join the process cgroup, `setsid` (a new session
//! and process group whose id is the child's pid, with no controlling terminal),
//! the rlimits, drop every capability (bounding set, ambient, then the sets
//! themselves: a root runner's trial execs without privileges), `no_new_privs`,
//! Landlock (`landlock_restrict_self`: files, TCP ports from ABI 4, signals and
//! abstract UNIX sockets from ABI 6), and seccomp last (a program that kills the
//! process on a non-UNIX socket, `ptrace`, `mount`, `personality`, namespaces,
//! kernel modules, BPF and friends; one that answers `ENOSYS` for `io_uring` and
//! `clone3`, whose arguments seccomp cannot read, so that libraries fall back).
//!
//! Why both Landlock's network rights and seccomp: Landlock's TCP rules need ABI 4
//! and cover only TCP; seccomp refuses every non-UNIX socket (UDP, raw, netlink)
//! on any kernel with filters, and kills the process, which the runner reports
//! as a blocked system call.
//!
//! Why a cgroup for the process limit: `RLIMIT_NPROC` counts every process of
//! the user, not the trial's, and does not apply to root at all; a `pids` cgroup
//! per trial counts exactly the trial's processes. Without a writable `pids`
//! controller a non-root runner falls back to `RLIMIT_NPROC`.
//!
//! This crate knows nothing of campaigns or specs; it is Linux only.
#![warn(missing_docs)]

mod cgroup;
mod error;
mod filter;
mod probe;
mod sandbox;

pub use cgroup::ProcessCgroup;
pub use error::SandboxError;
pub use probe::{Feature, Features, probe};
pub use sandbox::{Limits, Prepared, Restrictions, Sandbox};

//! The seccomp programs: compiled in the parent by `seccompiler`, installed in
//! the child.
//!
//! Two programs, because a program has one action for its matches: one kills the
//! process (`SIGSYS`, which the runner reports as a blocked system call) on the
//! calls a trial has no business making; one answers `ENOSYS` for `io_uring`
//! (whose operations would bypass the socket rule) and `clone3` (whose flags
//! seccomp cannot read, so namespaces could not be refused), so that libraries
//! fall back to the calls the first program checks.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

use crate::SandboxError;

/// Calls that kill the process whatever their arguments.
const KILLED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
];

/// Calls answered with `ENOSYS`.
const UNAVAILABLE: &[libc::c_long] = &[
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_clone3,
];

/// `clone` flags that make new namespaces.
const NAMESPACE_FLAGS: &[libc::c_int] = &[
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// `personality(0xffffffff)` only asks; `personality(PER_LINUX)` changes nothing.
const PERSONALITY_QUERY: u64 = 0xffff_ffff;

/// The two programs, the killing one first.
pub(crate) fn compile(network: bool) -> Result<Vec<BpfProgram>, SandboxError> {
    let arch = std::env::consts::ARCH.try_into()?;
    let mut killed: BTreeMap<i64, Vec<SeccompRule>> =
        KILLED.iter().map(|&call| (call, Vec::new())).collect();
    if !network {
        let not_unix = condition(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, unix())?;
        killed.insert(libc::SYS_socket, vec![SeccompRule::new(vec![not_unix])?]);
    }
    killed.insert(
        libc::SYS_personality,
        vec![SeccompRule::new(vec![
            condition(
                0,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Ne,
                PERSONALITY_QUERY,
            )?,
            condition(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, 0)?,
        ])?],
    );
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|&flag| {
            let flag = flag as u64;
            Ok(SeccompRule::new(vec![condition(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(flag),
                flag,
            )?])?)
        })
        .collect::<Result<Vec<_>, SandboxError>>()?;
    killed.insert(libc::SYS_clone, clone_rules);
    let unavailable: BTreeMap<i64, Vec<SeccompRule>> =
        UNAVAILABLE.iter().map(|&call| (call, Vec::new())).collect();
    let kill = SeccompFilter::new(
        killed,
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        arch,
    )?;
    let enosys = SeccompFilter::new(
        unavailable,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )?;
    Ok(vec![kill.try_into()?, enosys.try_into()?])
}

fn unix() -> u64 {
    libc::AF_UNIX as u64
}

fn condition(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompCondition, SandboxError> {
    Ok(SeccompCondition::new(arg, len, op, value)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_programs_compile_with_and_without_network() {
        for network in [false, true] {
            let programs = super::compile(network).expect("compiles");
            assert_eq!(programs.len(), 2);
            assert!(programs.iter().all(|p| !p.is_empty()));
        }
    }
}

//! The sandbox applied to real processes on this host: each program is refused
//! what the sandbox forbids and does what it allows. Run as the CI runs (root,
//! a kernel with Landlock and seccomp); a host without them fails the probe
//! test, never skips silently.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use firebreak_sandbox::{Limits, Sandbox, probe};

const PYTHON: &str = "/usr/bin/python3";

fn sandbox(writable: &Path) -> Sandbox {
    Sandbox {
        read: [
            "/usr",
            "/lib",
            "/lib64",
            "/bin",
            "/etc",
            "/proc",
            "/dev/urandom",
        ]
        .iter()
        .map(Into::into)
        .collect(),
        write: vec![writable.to_path_buf(), "/dev/null".into()],
        network: false,
        limits: Limits {
            cpu_seconds: Some(2),
            address_space: Some(1 << 30),
            processes: Some(16),
            open_files: Some(256),
            file_size: Some(1 << 20),
        },
        require: true,
    }
}

fn run(sandbox: &Sandbox, script: &str) -> Output {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("firebreak-test-{}-{n}", std::process::id());
    let mut prepared = sandbox.prepare(probe(), &name).expect("prepares");
    let restrictions = prepared.restrictions;
    let mut command = Command::new(PYTHON);
    command
        .args(["-c", script])
        .stdin(Stdio::null())
        .env_clear();
    // SAFETY: apply makes async-signal-safe system calls only.
    unsafe { command.pre_exec(move || restrictions.apply()) };
    let output = command.output().expect("spawns");
    if let Some(cgroup) = prepared.cgroup.as_mut() {
        cgroup.remove();
    }
    output
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn this_host_offers_every_feature_the_sandbox_needs() {
    let features = probe();
    let mut sandbox = Sandbox::default();
    sandbox.limits.processes = Some(8);
    assert_eq!(features.missing(&sandbox), [], "{features:?}");
    assert!(features.landlock_abi >= 4, "{features:?}");
}

#[test]
fn files_outside_the_rules_are_unreadable_and_the_read_only_ones_unwritable() {
    let outside = tempfile::tempdir().expect("tempdir");
    let labels = outside.path().join("labels.csv");
    std::fs::write(&labels, "0,1\n").expect("writes");
    let work = tempfile::tempdir().expect("tempdir");
    let mut sb = sandbox(work.path());
    let read = format!("open({:?}).read()", labels.display().to_string());
    let out = run(&sb, &read);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("PermissionError"), "{}", stderr(&out));
    // Allowed to read, still not to write.
    sb.read.push(outside.path().to_path_buf());
    assert!(run(&sb, &read).status.success());
    let append = format!("open({:?}, 'a').write('x')", labels.display().to_string());
    assert!(stderr(&run(&sb, &append)).contains("PermissionError"));
    // The writable folder is writable.
    let inside = format!(
        "open({:?}, 'w').write('x')",
        work.path().join("f").display().to_string()
    );
    let out = run(&sb, &inside);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn an_inet_socket_kills_the_process_with_sigsys_and_a_unix_one_does_not() {
    let work = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(work.path());
    let out = run(&sb, "import socket; socket.socket(socket.AF_INET)");
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
    let out = run(&sb, "import socket; socket.socket(socket.AF_UNIX)");
    assert!(out.status.success(), "{}", stderr(&out));
    let mut open = sandbox(work.path());
    open.network = true;
    assert!(
        run(&open, "import socket; socket.socket(socket.AF_INET)")
            .status
            .success()
    );
}

#[test]
fn limits_bind_processes_memory_and_cpu() {
    let work = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(work.path());
    let fork = "import os\nfor i in range(100):\n    if os.fork() == 0:\n        os._exit(0)";
    let out = run(&sb, fork);
    assert!(stderr(&out).contains("BlockingIOError"), "{}", stderr(&out));
    let out = run(&sb, "import mmap; mmap.mmap(-1, 4 << 30)");
    assert!(
        stderr(&out).contains("Cannot allocate memory"),
        "{}",
        stderr(&out)
    );
    let out = run(&sb, "while True: pass");
    assert_eq!(out.status.signal(), Some(libc::SIGXCPU), "{out:?}");
    let out = run(&sb, "import os; os.setuid(1)");
    assert!(stderr(&out).contains("PermissionError"), "{}", stderr(&out));
}

#[test]
fn ptrace_and_mount_kill_and_io_uring_is_absent() {
    let work = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(work.path());
    let libc = "import ctypes; c = ctypes.CDLL(None, use_errno=True)\n";
    let out = run(&sb, &format!("{libc}c.ptrace(0, 0, 0, 0)"));
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
    let out = run(
        &sb,
        &format!("{libc}c.mount(b'x', b'/tmp', b'tmpfs', 0, None)"),
    );
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
    let out = run(
        &sb,
        &format!(
            "{libc}import sys\nr = c.syscall({}, 8, None)\nsys.exit(0 if r == -1 and ctypes.get_errno() == 38 else 1)",
            libc::SYS_io_uring_setup
        ),
    );
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn another_process_environment_stays_unreadable_though_proc_is_readable() {
    let work = tempfile::tempdir().expect("tempdir");
    let sb = sandbox(work.path());
    let parent = std::process::id();
    let out = run(&sb, &format!("open('/proc/{parent}/environ', 'rb').read()"));
    assert!(stderr(&out).contains("PermissionError"), "{out:?}");
    let out = run(&sb, "open('/proc/self/status').read()");
    assert!(out.status.success(), "{}", stderr(&out));
}

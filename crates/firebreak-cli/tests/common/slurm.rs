//! A real single-node Slurm cluster for tests: `Cluster::start()` runs
//! `scripts/slurm.sh up` on a fresh temporary folder (a private munged, slurmctld
//! and slurmd on free ports, this machine as the one node), and dropping the
//! `Cluster` runs `scripts/slurm.sh down` on it, which cancels its jobs and stops
//! its daemons. Every Slurm client command of a test goes through
//! `Cluster::command`, which points it at this cluster's `slurm.conf`; nothing
//! touches /etc/slurm or a cluster the machine may already run.
//!
//! Slurm missing is a failure, never a skip: the test panics and names the fix
//! (`scripts/slurm.sh install`, which CI's `.ci/run` runs). The cluster needs root
//! (slurmd and `SlurmUser=root`), as CI has. See docs/slurm.md.

// The harness captures stderr: the start-up time and a failed `down` (which a
// Drop cannot report otherwise) are written there.
#![allow(clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running test cluster; stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

/// `scripts/slurm.sh` of this repository.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm.sh")
}

impl Cluster {
    /// Writes a cluster into a new temporary folder and starts it; returns once
    /// `sinfo` reports the node idle. Panics, with the script's message, when Slurm
    /// is not installed or the cluster does not come up.
    pub fn start() -> Cluster {
        for program in ["sbatch", "squeue", "scancel", "sinfo"] {
            let found = Command::new(program).arg("--version").output().is_ok();
            assert!(
                found,
                "Slurm is not installed: `{program}` is not on PATH; these tests need a real \
                 Slurm (slurmctld, slurmd, munge).\nhint: run `scripts/slurm.sh install` \
                 (as root; CI's .ci/run does)"
            );
        }
        let dir = tempfile::Builder::new()
            .prefix("fb-slurm-")
            .tempdir()
            .expect("a temporary folder for the cluster");
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(dir.path())
            .output()
            .expect("bash runs scripts/slurm.sh");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            // Whatever did start is stopped before the panic drops the folder.
            let _ = Command::new("bash")
                .arg(script())
                .arg("down")
                .arg(dir.path())
                .output();
            panic!(
                "the Slurm test cluster did not start ({}):\n{stderr}\nhint: `scripts/slurm.sh install` \
                 installs Slurm and munge; the cluster needs root",
                output.status
            );
        }
        eprintln!(
            "slurm test cluster up in {:.1?}: {}",
            started.elapsed(),
            stderr.trim()
        );
        let conf = dir.path().join("slurm.conf");
        assert!(
            conf.is_file(),
            "scripts/slurm.sh up wrote no {}",
            conf.display()
        );
        Cluster { dir, conf }
    }

    /// The cluster's `slurm.conf`: what `SLURM_CONF` must name.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The cluster's folder (configuration, state, logs); a test may put its own
    /// files here too, and they go with the cluster.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A Slurm client command (`sbatch`, `squeue`, `scancel`, …) for this cluster.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// Runs a Slurm client command on this cluster and returns its stdout; panics
    /// with its stderr when it fails.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let output = self
            .command(program)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Polls `done` every 100 ms until it returns `Some`, or panics after
    /// `timeout` with `what` and the cluster's view of its queue.
    pub fn wait_for<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(value) = done() {
                return value;
            }
            if Instant::now() > deadline {
                let queue = self
                    .command("squeue")
                    .args(["--array", "--states=all"])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!("timed out after {timeout:?} waiting for {what}; squeue:\n{queue}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(self.dir.path())
            .output()
        {
            Ok(output) if output.status.success() => {}
            Ok(output) => eprintln!(
                "scripts/slurm.sh down {} failed ({}): {}",
                self.dir.path().display(),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => eprintln!("cannot run scripts/slurm.sh down: {e}"),
        }
    }
}

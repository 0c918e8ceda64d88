//! A `pids` cgroup per trial: the process limit that counts exactly the trial's
//! processes (cgroup v1's `pids` hierarchy or a v2 cgroup with the `pids`
//! controller), made beside nothing else, under this process's own cgroup.
//!
//! The parent makes the folder and writes `pids.max`; the child writes `0`
//! (itself) to `cgroup.procs` through a descriptor the parent opened, the one
//! step that has to happen after `fork`; the parent kills what is left in it
//! and removes it when the trial has ended.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use crate::SandboxError;

/// A trial's process cgroup; removed (its processes killed first) on
/// [`ProcessCgroup::remove`] or drop.
#[derive(Debug)]
pub struct ProcessCgroup {
    dir: PathBuf,
    removed: bool,
}

impl ProcessCgroup {
    /// Makes `parent/name` with at most `max` processes; returns it and the
    /// open `cgroup.procs` the child joins through.
    pub(crate) fn create(
        parent: &Path,
        name: &str,
        max: u64,
    ) -> Result<(ProcessCgroup, OwnedFd), SandboxError> {
        let dir = parent.join(name);
        let fail = |source| SandboxError::Cgroup {
            path: dir.clone(),
            source,
        };
        match fs::create_dir(&dir) {
            Ok(()) => {}
            // A folder a killed run left: reuse it once it is empty.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
        let cgroup = ProcessCgroup {
            dir: dir.clone(),
            removed: false,
        };
        fs::write(dir.join("pids.max"), max.to_string()).map_err(fail)?;
        let procs = fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .map_err(fail)?;
        Ok((cgroup, procs.into()))
    }

    /// The cgroup's folder.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The processes in it now.
    pub fn pids(&self) -> Vec<i32> {
        fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process left in the cgroup and removes it (a few tries while
    /// the killed processes are reaped); best effort.
    pub fn remove(&mut self) {
        if self.removed {
            return;
        }
        for attempt in 0..50 {
            for pid in self.pids() {
                // SAFETY: kill has no memory preconditions; the pids are the
                // trial's, in its own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if fs::remove_dir(&self.dir).is_ok() || !self.dir.exists() {
                self.removed = true;
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(if attempt < 10 {
                2
            } else {
                20
            }));
        }
    }
}

impl Drop for ProcessCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// This process's cgroup folder in a hierarchy with the `pids` controller where
/// a child cgroup can be made (tried with one `mkdir` and `rmdir`).
pub(crate) fn find_pids_parent() -> Option<PathBuf> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype), Some(options)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        let path = match *fstype {
            "cgroup" if options.split(',').any(|o| o == "pids") => own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers.split(',').any(|c| c == "pids").then_some(path)
            }),
            "cgroup2" => own.lines().find_map(|l| l.strip_prefix("0::")),
            _ => None,
        };
        if let Some(path) = path {
            let relative = path.strip_prefix(root).unwrap_or(path);
            candidates.push(Path::new(mount).join(relative.trim_start_matches('/')));
        }
    }
    candidates.into_iter().find(|dir| usable(dir))
}

fn usable(dir: &Path) -> bool {
    let probe = dir.join(format!("firebreak-probe-{}", std::process::id()));
    if fs::create_dir(&probe).is_err() {
        return false;
    }
    let ok = probe.join("pids.max").exists();
    let _ = fs::remove_dir(&probe);
    ok
}

//! The crate's one error type.

use std::path::PathBuf;

use crate::Feature;

/// What went wrong preparing a sandbox.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The sandbox needs kernel features this host lacks.
    #[error(
        "the trial sandbox needs {} which this host's kernel does not offer\nhint: run on a \
         kernel with them (Landlock, seccomp filters, a writable `pids` cgroup controller when \
         running as root), or set `[task.sandbox] require = false` to run without them (ledgered)",
        Feature::list(.missing)
    )]
    Missing {
        /// The missing features.
        missing: Vec<Feature>,
    },
    /// Building the Landlock ruleset failed.
    #[error("cannot build the Landlock ruleset: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// A path the sandbox names could not be opened.
    #[error("cannot open `{}` for the sandbox's rules: {source}", path.display())]
    Path {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Compiling the seccomp program failed.
    #[error("cannot compile the seccomp filter: {0}")]
    Seccomp(#[from] seccompiler::BackendError),
    /// Creating or configuring the trial's process cgroup failed.
    #[error("cannot set up the trial's process cgroup `{}`: {source}", path.display())]
    Cgroup {
        /// The cgroup's folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

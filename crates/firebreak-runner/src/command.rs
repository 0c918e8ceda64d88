//! The command executor: runs one trial as an external program under the trial
//! protocol of `contract.md` — environment, placeholders, JSON-lines reports, log
//! tail, its own process group, timeout, and termination (SIGTERM, then SIGKILL
//! after a grace period) when the scheduler stops it or the run is interrupted.
//!
//! The program is started, read and reaped on one blocking thread, which polls
//! both pipes; events reach the async side over a channel. The child is its own
//! process-group leader and gets `PR_SET_PDEATHSIG = SIGKILL`, so it dies with the
//! spawning thread even when this process is killed with `kill -9`; what its
//! descendants leave is killed by the next run, which finds the group recorded
//! and the processes carrying the trial's `FIREBREAK_TRIAL_DIR`.
//!
//! A trial ends when its own process exits: then its group and every process
//! carrying its `FIREBREAK_TRIAL_DIR` (a daemon that started a new session
//! keeps it) are killed, and the pipes are read for at most [`DRAIN_PERIOD`]
//! more, so a descendant holding them open cannot hold the trial or the run.
//!
//! A task with a sandbox ([`TaskSandbox`]: `[task.sandbox]`, on by default for
//! code tasks) runs each trial under `firebreak_sandbox`: prepared in the parent
//! (Landlock ruleset, seccomp programs, the trial's `pids` cgroup), applied in
//! `pre_exec` after the death signal; the environment scrubbed to the protocol's
//! variables, `[task] env` and a few essentials; the child in its own session
//! (`setsid`, so its process-group id is still its pid and the group kill works).
//! A sandboxed trial that fails says which limit or rule stopped it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use firebreak_core::{Metrics, Params, Report, Trial, TrialState};
use firebreak_ledger::SandboxRecord;
use firebreak_sandbox::{Limits, ProcessCgroup, Sandbox, probe};
use firebreak_search::Decision;
use firebreak_spec::SandboxSpec;
use firebreak_store::{Outcome, ProcessInfo, Store};
use tokio::sync::{mpsc, watch};

use crate::protocol::{Line, LogTail, has_objectives, parse_line, result_from};
use crate::{Campaign, RunnerError, host};

/// How long a stopped trial gets between SIGTERM and SIGKILL.
pub const GRACE_PERIOD: Duration = Duration::from_secs(5);

/// How long after SIGKILL the executor still waits for the blocking side to
/// report the trial's end (it takes at most [`DRAIN_PERIOD`] once the process is
/// gone) before it gives the trial up as failed: a run always ends.
const ABANDON_AFTER_SIGKILL: Duration = Duration::from_secs(5);

/// Where a trial's files go and how it is started.
#[derive(Debug, Clone)]
pub struct CommandTask {
    /// Program and arguments, with `{placeholders}`.
    pub command: Vec<String>,
    /// Working directory (absolute, or relative to this process's).
    pub workdir: PathBuf,
    /// Extra environment.
    pub env: Vec<(String, String)>,
    /// Folder under which each trial gets `<campaign>/<number>/{work,checkpoint}`.
    pub trials_root: PathBuf,
    /// Stop a trial after this long.
    pub timeout: Option<Duration>,
    /// Run each trial in the operating-system sandbox (`None`: no sandbox).
    /// [`sandbox_of`] says when a spec asks for one; a code task sets it.
    pub sandbox: Option<std::sync::Arc<TaskSandbox>>,
    /// Variables of this process never passed to a trial: the agent's API key
    /// (`api_key_env`), whether or not the trial is sandboxed.
    pub hidden: Vec<String>,
    /// A code task's engine side: each trial runs a materialised candidate and
    /// is scored on its predictions.
    pub code: Option<std::sync::Arc<crate::code::CodeTask>>,
}

/// The sandbox of a task's trials: `[task.sandbox]` resolved against the spec's
/// folder and the trial timeout.
#[derive(Debug, Clone)]
pub struct TaskSandbox {
    /// The settings as written (or the defaults).
    pub spec: SandboxSpec,
    /// `read`, absolute.
    pub read: Vec<PathBuf>,
    /// CPU seconds: `cpu`, else the trial timeout, else none.
    pub cpu_seconds: Option<u64>,
}

impl TaskSandbox {
    /// `spec` for a spec file in `spec_dir` whose trials time out after `timeout`.
    pub fn new(spec: SandboxSpec, spec_dir: &Path, timeout: Option<Duration>) -> Self {
        let read = spec
            .read
            .iter()
            .map(|p| std::path::absolute(spec_dir.join(p)).unwrap_or_else(|_| spec_dir.join(p)))
            .collect();
        let cpu_seconds = spec
            .cpu
            .map(|d| d.0)
            .or_else(|| timeout.map(|t| t.as_secs().max(1)));
        TaskSandbox {
            spec,
            read,
            cpu_seconds,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            cpu_seconds: self.cpu_seconds,
            address_space: Some(self.spec.memory_bytes()),
            processes: Some(self.spec.processes),
            open_files: Some(self.spec.open_files),
            file_size: Some(self.spec.file_size_bytes()),
        }
    }

    /// The sandbox of one trial: read the workdir, the system folders, the
    /// interpreter's prefix and `read`; write the trial's folders.
    fn sandbox(&self, workdir: &Path, program: &Path, writable: &[&Path]) -> Sandbox {
        let mut read: Vec<PathBuf> = SYSTEM_READ.iter().map(PathBuf::from).collect();
        read.push(std::path::absolute(workdir).unwrap_or_else(|_| workdir.to_path_buf()));
        read.extend(interpreter_paths(program));
        read.extend(self.read.iter().cloned());
        let mut write: Vec<PathBuf> = writable.iter().map(|p| p.to_path_buf()).collect();
        write.push("/dev/null".into());
        Sandbox {
            read,
            write,
            network: self.spec.network,
            limits: self.limits(),
            require: self.spec.require,
        }
    }

    /// What a sandboxed trial's failure means, appended to its error: the
    /// signal it died of, or the error its last line names.
    fn explain(&self, error: &str, passed: &[String]) -> Option<String> {
        let has = |words: &[&str]| words.iter().any(|w| error.contains(w));
        let spec = &self.spec;
        if has(&["(SIGSYS)"]) {
            Some(
                "sandbox: blocked system call (a non-UNIX socket, ptrace, mount, personality, \
                 namespaces or another call trials may not make)"
                    .into(),
            )
        } else if has(&["(SIGXCPU)"])
            || (has(&["(SIGKILL)"]) && error.contains("cpu limit reached"))
        {
            let limit = self.cpu_seconds.unwrap_or_default();
            Some(format!(
                "sandbox: CPU limit of {limit} s reached; hint: raise [task.sandbox] cpu"
            ))
        } else if has(&["(SIGXFSZ)", "File too large"]) {
            Some(format!(
                "sandbox: file size limit of {} reached",
                spec.file_size
            ))
        } else if has(&[
            "MemoryError",
            "Cannot allocate memory",
            "bad_alloc",
            "out of memory",
        ]) {
            Some(format!(
                "sandbox: memory limit of {} reached; hint: raise [task.sandbox] memory",
                spec.memory
            ))
        } else if has(&[
            "Resource temporarily unavailable",
            "BlockingIOError",
            "Cannot fork",
        ]) {
            Some(format!(
                "sandbox: process limit of {} reached",
                spec.processes
            ))
        } else if has(&["Too many open files"]) {
            Some(format!(
                "sandbox: open files limit of {} reached",
                spec.open_files
            ))
        } else if has(&[
            "Permission denied",
            "PermissionError",
            "Operation not permitted",
        ]) {
            Some(
                "sandbox: file access refused (readable: the workdir, the system folders and \
                 [task.sandbox] read; writable: the trial's own folders only)"
                    .into(),
            )
        } else if let Some(name) = missing_variable(error)
            && std::env::var_os(name).is_some()
            && !passed.iter().any(|p| p == name)
        {
            Some(format!(
                "sandbox: the environment is scrubbed: `{name}` is not passed to trials; \
                 hint: name it in [task] env"
            ))
        } else {
            None
        }
    }
}

/// System folders every sandboxed trial may read and execute from.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib32",
    "/lib64",
    "/bin",
    "/sbin",
    "/etc",
    "/proc",
    "/sys/devices/system/cpu",
    "/dev/urandom",
    "/dev/random",
    "/dev/zero",
];

/// The environment a sandboxed trial keeps from the runner's: the search path
/// (programs resolve as they would unsandboxed) and the locale and time zone
/// (output formatting). Nothing else: keys and tokens stay with the runner.
const KEPT_VARIABLES: &[&str] = &["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"];

/// The program's folder and, for an interpreter, its prefix (a virtual
/// environment's folder, or a prefix with `lib/python3*`), when not a system
/// folder already readable.
fn interpreter_paths(program: &Path) -> Vec<PathBuf> {
    let resolved = if program.components().count() > 1 {
        Some(program.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
    };
    let Some(resolved) = resolved else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for path in [
        Some(resolved.clone()),
        std::fs::canonicalize(&resolved).ok(),
    ]
    .into_iter()
    .flatten()
    {
        let Some(bin) = path.parent() else { continue };
        if !SYSTEM_READ.iter().any(|s| bin.starts_with(s)) {
            paths.push(bin.to_path_buf());
        }
        // A version manager's shim (pyenv's `shims/python3`) runs its manager,
        // which finds the interpreter under the same root: read the whole root.
        if bin.file_name().is_some_and(|n| n == "shims")
            && let Some(root) = bin.parent()
        {
            paths.push(root.to_path_buf());
        }
        if let Some(prefix) = bin.parent().filter(|p| p.parent().is_some())
            && !SYSTEM_READ.iter().any(|s| prefix.starts_with(s))
            && is_python_prefix(prefix)
        {
            paths.push(prefix.to_path_buf());
        }
    }
    paths
}

fn is_python_prefix(prefix: &Path) -> bool {
    prefix.join("pyvenv.cfg").is_file()
        || std::fs::read_dir(prefix.join("lib")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("python3"))
        })
}

/// `NAME` of a last line `KeyError: 'NAME'` (Python's missing variable).
fn missing_variable(error: &str) -> Option<&str> {
    let rest = &error[error.find("KeyError: '")? + "KeyError: '".len()..];
    Some(&rest[..rest.find('\'')?])
}

/// Whether the spec's trials run sandboxed, and how: `[task.sandbox]` when
/// written. (A code task's runner turns it on with the defaults when absent.)
pub fn sandbox_of(spec: &firebreak_spec::CampaignSpec) -> Option<SandboxSpec> {
    let task = &spec.spec.task;
    match task.kind {
        firebreak_spec::TaskKind::Code => Some(task.sandbox.clone().unwrap_or_default()),
        _ => task.sandbox.clone(),
    }
}

/// The sandbox a run of `spec` applies, for its `run_started` entry: the kernel
/// features enforced here and, with `require = false`, those missing. A
/// required sandbox on a host without its features is an error located at
/// `[task.sandbox]`, before any trial starts.
pub(crate) fn sandbox_record(
    spec: &firebreak_spec::CampaignSpec,
) -> Result<Option<SandboxRecord>, RunnerError> {
    let Some(settings) = sandbox_of(spec) else {
        return Ok(None);
    };
    let task = TaskSandbox::new(settings, Path::new("."), None);
    let sandbox = Sandbox {
        require: task.spec.require,
        network: task.spec.network,
        limits: task.limits(),
        ..Sandbox::default()
    };
    let features = probe();
    let missing = features.missing(&sandbox);
    if sandbox.require && !missing.is_empty() {
        let error = firebreak_sandbox::SandboxError::Missing { missing };
        let text = error.to_string();
        let (message, hint) = text.split_once("\nhint: ").unwrap_or((&text, ""));
        return Err(spec.error_at(&["task", "sandbox"], message, hint).into());
    }
    let names = |features: Vec<firebreak_sandbox::Feature>| {
        features.iter().map(|f| f.name().to_string()).collect()
    };
    Ok(Some(SandboxRecord {
        enforced: names(features.enforced(&sandbox)),
        missing: names(missing),
        require: sandbox.require,
    }))
}

impl CommandTask {
    /// The command task of a spec whose file lies in `spec_dir`, when it is one.
    pub fn from_spec(
        spec: &firebreak_spec::CampaignSpec,
        spec_dir: &Path,
        trials_root: PathBuf,
    ) -> Option<Self> {
        let task = &spec.spec.task;
        let command = task.command.clone().filter(|_| {
            matches!(
                task.kind,
                firebreak_spec::TaskKind::Command | firebreak_spec::TaskKind::Code
            )
        })?;
        Some(CommandTask {
            command,
            workdir: spec_dir.join(task.workdir.as_deref().unwrap_or(".")),
            env: task
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            trials_root,
            timeout: spec.spec.search.trial_timeout.map(|d| d.as_std()),
            sandbox: sandbox_of(spec).map(|settings| {
                let timeout = spec.spec.search.trial_timeout.map(|d| d.as_std());
                std::sync::Arc::new(TaskSandbox::new(settings, spec_dir, timeout))
            }),
            hidden: crate::campaign::agent_options(spec)
                .ok()
                .flatten()
                .and_then(|options| options.api_key_env)
                .into_iter()
                .collect(),
            code: None,
        })
    }
}

impl CommandTask {
    /// This task running `code`'s candidates: each in its materialised program
    /// folder (the workspace until then), with `code`'s inputs readable in the
    /// sandbox.
    pub fn with_code(mut self, code: crate::code::CodeTask) -> Self {
        self.workdir = code.workspace.clone();
        if let Some(sandbox) = self.sandbox.as_mut() {
            std::sync::Arc::make_mut(sandbox)
                .read
                .push(code.data_dir.clone());
        }
        self.code = Some(std::sync::Arc::new(code));
        self
    }

    /// The absolute folder trial `number` of `campaign` runs in
    /// (`FIREBREAK_TRIAL_DIR`); absolute because the program has its own working
    /// directory.
    pub fn work_dir(&self, campaign: &str, number: u64) -> Result<PathBuf, RunnerError> {
        Ok(trial_folder(&self.trials_root, campaign, number)?.join("work"))
    }
}

/// The absolute folder of trial `number` of `campaign` under `trials_root`: it
/// holds `work/` (command trials), `checkpoint/`, and the re-evaluation's folders.
pub(crate) fn trial_folder(
    trials_root: &Path,
    campaign: &str,
    number: u64,
) -> Result<PathBuf, RunnerError> {
    let root = std::path::absolute(trials_root).map_err(|source| RunnerError::Io {
        context: "resolving the trials folder".into(),
        source,
    })?;
    Ok(root.join(campaign).join(number.to_string()))
}

/// Removes `dir` and everything in it, if it exists (a fresh start for a folder
/// an earlier attempt may have left).
pub(crate) fn clear_dir(dir: &Path) -> Result<(), RunnerError> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|source| RunnerError::Io {
            context: format!("clearing {}", dir.display()),
            source,
        })?;
    }
    Ok(())
}

/// What an execution is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The trial itself: reports go to the scheduler, the process is recorded.
    Trial,
    /// An independent re-evaluation (a `reeval` tripwire): a fresh folder, no
    /// checkpoint to resume from, another seed, nothing reported to the scheduler.
    Reeval,
    /// A generation gate's re-evaluation from scratch, the `k`-th fresh seed:
    /// as `Reeval`, with a seed of its own.
    Gate(u32),
}

impl Attempt {
    /// True for an independent evaluation (not the trial itself).
    pub fn is_reeval(self) -> bool {
        self != Attempt::Trial
    }
}

/// Gives a PBT replacement (its proposer state names the donor, see
/// [`Campaign::exploit`]) the donor's checkpoint as it first starts: copied into
/// its still empty `checkpoint` folder (a replacement that checkpointed and was
/// re-queued resumes from its own). The machine that starts it copies, so the
/// trial's number is the store's and no other trial's folder is touched; the
/// donor's folder must be on that machine (one trials folder every worker
/// shares, `FIREBREAK_TRIALS_ROOT`).
pub(crate) fn take_donor_checkpoint(
    trials_root: &Path,
    campaign: &str,
    trial: &Trial,
    checkpoint: &Path,
) -> Result<(), RunnerError> {
    let Some(from) = crate::campaign::exploit_donor(trial) else {
        return Ok(());
    };
    if std::fs::read_dir(checkpoint).is_ok_and(|mut d| d.next().is_some()) {
        return Ok(());
    }
    let donor = trial_folder(trials_root, campaign, from)?;
    if !donor.is_dir() {
        return Err(RunnerError::Io {
            context: format!(
                "trial {} starts from trial {from}'s checkpoint (PBT), but {} is not on this machine; \
                 workers on several machines need one trials folder they all share \
                 (FIREBREAK_TRIALS_ROOT on a shared filesystem)",
                trial.number,
                donor.display()
            ),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        });
    }
    copy_tree(&donor.join("checkpoint"), checkpoint).map_err(|source| RunnerError::Io {
        context: format!(
            "copying the checkpoint of trial {from} for trial {}",
            trial.number
        ),
        source,
    })
}

/// Reports a step of trial `number` to the campaign and acts on the scheduler's
/// answer: `Some(reason)` when the trial must stop. On PBT's exploit the trial
/// that replaces this one is queued (it takes the donor's checkpoint when it
/// starts, [`take_donor_checkpoint`]). The one place both executors that report
/// (command, built-in) handle it.
pub(crate) async fn report_step<S: Store>(
    campaign: &Campaign<S>,
    number: u64,
    report: Report,
) -> Result<Option<String>, RunnerError> {
    Ok(match campaign.report(number, report).await? {
        Decision::Continue => None,
        Decision::Stop { reason } => Some(reason),
        Decision::Exploit {
            from,
            params,
            reason,
        } => {
            campaign.exploit(number, from, params, &reason).await?;
            Some(reason)
        }
    })
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    if !from.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// How a trial's execution ended.
#[derive(Debug)]
pub enum Ended {
    /// Finished (complete, pruned or failed): record this outcome.
    Finished(Outcome),
    /// The run was interrupted: leave the trial to be re-queued.
    Interrupted,
}

/// `FIREBREAK_PARAM_<NAME>`: upper-cased, non-alphanumerics as `_`.
pub fn param_env_name(name: &str) -> String {
    let mut out = String::from("FIREBREAK_PARAM_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out
}

/// Expands `{name}` placeholders in `args`; an argument naming an inactive
/// parameter is dropped.
pub fn expand_args(args: &[String], params: &Params, builtins: &[(&str, String)]) -> Vec<String> {
    args.iter()
        .filter_map(|arg| {
            let mut out = String::new();
            let mut rest = arg.as_str();
            while let Some(open) = rest.find('{') {
                let Some(close) = rest[open..].find('}') else {
                    break;
                };
                let name = &rest[open + 1..open + close];
                out.push_str(&rest[..open]);
                if let Some(value) = params.get(name) {
                    out.push_str(&value.to_plain_string());
                } else if let Some((_, value)) = builtins.iter().find(|(b, _)| *b == name) {
                    out.push_str(value);
                } else {
                    return None; // an inactive parameter: drop the argument
                }
                rest = &rest[open + close + 1..];
            }
            out.push_str(rest);
            Some(out)
        })
        .collect()
}

enum Event {
    Spawned(i32),
    SpawnFailed(String),
    Stdout(String),
    Stderr(String),
    Exited {
        status: String,
        success: bool,
        cpu_seconds: f64,
    },
}

/// Runs one trial to its end.
pub async fn execute<S: Store>(
    campaign: &Campaign<S>,
    task: &CommandTask,
    trial: &Trial,
    attempt: Attempt,
    mut interrupt: watch::Receiver<bool>,
) -> Result<Ended, RunnerError> {
    let name = campaign.name().to_string();
    let number = trial.number;
    let reeval = attempt.is_reeval();
    let mut folders = Folders::prepare(task, &name, trial, reeval)?;
    if let Some(code) = &task.code {
        match code.files_of(campaign.store(), trial).await? {
            Ok(files) => {
                let base = folders
                    .work
                    .parent()
                    .map(Path::to_path_buf)
                    .unwrap_or_default();
                let program = base.join(if reeval { "reeval-program" } else { "program" });
                code.materialise(&program, &files)?;
                folders.program = Some(program);
            }
            Err(reason) => {
                return Ok(Ended::Finished(Outcome {
                    state: TrialState::Failed,
                    metrics: Metrics::new(),
                    error: Some(reason),
                    cpu_seconds: None,
                    wall_seconds: None,
                    log: None,
                }));
            }
        }
    }
    let seed = campaign.attempt_seed(number, attempt);
    let started = Instant::now();
    let (command, cgroup) = match trial_command(task, &name, trial, seed, &folders, attempt) {
        Ok(prepared) => prepared,
        Err(message) => {
            return Ok(Ended::Finished(Outcome {
                state: TrialState::Failed,
                metrics: Metrics::new(),
                error: Some(message),
                cpu_seconds: None,
                wall_seconds: Some(started.elapsed().as_secs_f64()),
                log: None,
            }));
        }
    };

    let (tx, mut rx) = mpsc::unbounded_channel();
    let pipe_deadline = task.timeout.map(|t| started + t);
    let trial_dir = folders.work.clone();
    let sandbox = task.sandbox.as_ref().map(|s| ChildSandbox {
        cgroup,
        cpu_limit: s.cpu_seconds,
    });
    tokio::task::spawn_blocking(move || run_child(command, trial_dir, pipe_deadline, tx, sandbox));

    let objectives = &campaign.spec().objectives;
    let mut log = LogTail::default();
    let mut pgid = 0;
    let mut final_metrics: Option<Metrics> = None;
    let mut candidate: Option<Metrics> = None;
    let mut stop: Option<(TrialState, String)> = None;
    let mut interrupted = false;
    let mut kill_at: Option<tokio::time::Instant> = None;
    let mut abandon_at: Option<tokio::time::Instant> = None;
    let deadline = task.timeout.map(|t| tokio::time::Instant::now() + t);
    let far = tokio::time::Instant::now() + Duration::from_secs(100 * 365 * 86_400);
    let exit = loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Spawned(pid)) => {
                    pgid = pid;
                    if !reeval {
                        let process = ProcessInfo { host: host::host_name(), pid };
                        campaign.store().set_process(&name, number, &process).await?;
                    }
                }
                Some(Event::SpawnFailed(message)) => break Err(message),
                Some(Event::Stderr(line)) => log.push(&line),
                Some(Event::Stdout(line)) => match parse_line(&line) {
                    Line::Log => log.push(&line),
                    Line::Final(metrics) => final_metrics = Some(metrics),
                    Line::Metrics { metrics, invalid } => {
                        if !has_objectives(objectives, &metrics) {
                            log.push(&line);
                        } else if let Some(reason) = invalid {
                            log.push(&line);
                            if stop.is_none() && !interrupted {
                                stop = Some((TrialState::Failed, reason));
                                kill_at = Some(terminate(pgid));
                            }
                        } else {
                            candidate = Some(metrics);
                        }
                    }
                    Line::Invalid(reason) => {
                        log.push(&line);
                        if stop.is_none() && !interrupted {
                            stop = Some((TrialState::Failed, reason));
                            kill_at = Some(terminate(pgid));
                        }
                    }
                    Line::Report(report) => {
                        if has_objectives(objectives, &report.metrics) {
                            candidate = Some(report.metrics.clone());
                        }
                        if stop.is_none() && !interrupted && !reeval {
                            let reason = report_step(campaign, number, report).await?;
                            if let Some(reason) = reason {
                                stop = Some((TrialState::Pruned, reason));
                                kill_at = Some(terminate(pgid));
                            }
                        }
                    }
                },
                Some(Event::Exited { status, success, cpu_seconds }) => break Ok((status, success, cpu_seconds)),
                None => break Err("the trial's supervisor thread ended unexpectedly".to_string()),
            },
            _ = tokio::time::sleep_until(deadline.unwrap_or(far)), if stop.is_none() && !interrupted && deadline.is_some() => {
                let limit = task.timeout.map(|t| firebreak_spec::Duration(t.as_secs()).to_string()).unwrap_or_default();
                stop = Some((TrialState::Failed, format!("timed out after {limit}")));
                kill_at = Some(terminate(pgid));
            }
            _ = tokio::time::sleep_until(kill_at.unwrap_or(far)), if kill_at.is_some() => {
                host::signal_group(pgid, libc::SIGKILL);
                kill_at = None;
                abandon_at = Some(tokio::time::Instant::now() + ABANDON_AFTER_SIGKILL);
            }
            _ = tokio::time::sleep_until(abandon_at.unwrap_or(far)), if abandon_at.is_some() => {
                break Err(format!(
                    "its process did not end within {} s of SIGKILL (stuck in the kernel?); \
                     hint: look for process {pgid} on {}",
                    ABANDON_AFTER_SIGKILL.as_secs(),
                    host::host_name()
                ));
            }
            changed = interrupt.changed(), if !interrupted => {
                if changed.is_err() || *interrupt.borrow() {
                    interrupted = true;
                    kill_at = Some(terminate(pgid));
                }
            }
        }
    };
    if interrupted && stop.is_none() {
        return Ok(Ended::Interrupted);
    }
    let wall_seconds = started.elapsed().as_secs_f64();
    let last_line = log.last_line().map(str::to_string);
    let (state, metrics, mut error, cpu_seconds) =
        classify_end(exit, stop, last_line, || match &task.code {
            // Only the engine's score counts; what the candidate printed is kept
            // beside it, renamed.
            Some(code) => code.score(&folders.work).map(|mut scored| {
                let claimed = final_metrics.as_ref().or(candidate.as_ref());
                for (metric, value) in claimed.into_iter().flatten() {
                    scored.insert(format!("claimed_{metric}"), *value);
                }
                scored
            }),
            None => result_from(objectives, final_metrics.as_ref(), candidate.as_ref()),
        });
    if let (Some(sandbox), TrialState::Failed, Some(text)) = (&task.sandbox, state, &error) {
        let passed: Vec<String> = task.env.iter().map(|(k, _)| k.clone()).collect();
        if let Some(why) = sandbox.explain(text, &passed) {
            error = Some(format!("{text}; {why}"));
        }
    }
    Ok(Ended::Finished(Outcome {
        state,
        metrics,
        error,
        cpu_seconds,
        wall_seconds: Some(wall_seconds),
        log: Some(log.finish()),
    }))
}

/// How the process's end, a stop decided while it ran and its metrics make the
/// trial's state, metrics, error and CPU seconds: a supervisor failure or a stop
/// wins, then a failing exit status (with the last log line), then the result
/// the protocol lines give (`result`, evaluated only for a clean exit).
fn classify_end(
    exit: Result<(String, bool, f64), String>,
    stop: Option<(TrialState, String)>,
    last_line: Option<String>,
    result: impl FnOnce() -> Result<Metrics, String>,
) -> (TrialState, Metrics, Option<String>, Option<f64>) {
    match exit {
        Err(message) => (TrialState::Failed, Metrics::new(), Some(message), None),
        Ok((status, success, cpu)) => match stop {
            Some((state, reason)) => (state, Metrics::new(), Some(reason), Some(cpu)),
            None if !success => {
                let detail = last_line
                    .map(|l| format!("; last log line: {l}"))
                    .unwrap_or_default();
                (
                    TrialState::Failed,
                    Metrics::new(),
                    Some(format!("{status}{detail}")),
                    Some(cpu),
                )
            }
            None => match result() {
                Ok(metrics) => (TrialState::Complete, metrics, None, Some(cpu)),
                Err(reason) => (TrialState::Failed, Metrics::new(), Some(reason), Some(cpu)),
            },
        },
    }
}

/// A trial's folders for one attempt, created empty (the checkpoint folder kept
/// for a trial that resumes), and its parameters written as `params.json`.
struct Folders {
    work: PathBuf,
    /// A code trial's materialised program: its working directory.
    program: Option<PathBuf>,
    checkpoint: PathBuf,
    params_file: PathBuf,
    /// The checkpoint folder holds something to resume from.
    resume: bool,
}

impl Folders {
    fn prepare(
        task: &CommandTask,
        name: &str,
        trial: &Trial,
        reeval: bool,
    ) -> Result<Folders, RunnerError> {
        let mut work = task.work_dir(name, trial.number)?;
        let base = work.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut checkpoint = base.join("checkpoint");
        if reeval {
            work = base.join("reeval");
            checkpoint = base.join("reeval-checkpoint");
            clear_dir(&checkpoint)?;
        }
        let io = |context: String| move |source| RunnerError::Io { context, source };
        clear_dir(&work)?;
        std::fs::create_dir_all(&work).map_err(io(format!("creating {}", work.display())))?;
        std::fs::create_dir_all(&checkpoint)
            .map_err(io(format!("creating {}", checkpoint.display())))?;
        if !reeval {
            take_donor_checkpoint(&task.trials_root, name, trial, &checkpoint)?;
        }
        let params_file = work.join("params.json");
        std::fs::write(
            &params_file,
            serde_json::to_vec_pretty(&trial.params).unwrap_or_default(),
        )
        .map_err(io(format!("writing {}", params_file.display())))?;
        let resume = std::fs::read_dir(&checkpoint)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        Ok(Folders {
            work,
            program: None,
            checkpoint,
            params_file,
            resume,
        })
    }
}

/// The trial's process as the protocol starts it: expanded arguments, the
/// `FIREBREAK_*` and parameter environment, its own process group, and the death
/// signal armed before exec; in its sandbox when the task has one (then also the
/// trial's process cgroup, for the caller to remove, or why it cannot start).
fn trial_command(
    task: &CommandTask,
    name: &str,
    trial: &Trial,
    seed: u64,
    folders: &Folders,
    attempt: Attempt,
) -> Result<(Command, Option<ProcessCgroup>), String> {
    let number = trial.number;
    let Folders {
        work,
        program: materialised,
        checkpoint,
        params_file,
        resume,
    } = folders;
    let builtins = [
        ("trial_number", number.to_string()),
        ("seed", seed.to_string()),
        ("trial_dir", work.display().to_string()),
        ("campaign", name.to_string()),
    ];
    let args = expand_args(&task.command, &trial.params, &builtins);
    let workdir = materialised.as_deref().unwrap_or(&task.workdir);
    let program = program_path(&args[0], workdir);
    let mut command = Command::new(&program);
    if task.sandbox.is_some() {
        command.env_clear();
        for key in KEPT_VARIABLES {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        // Caches and temporary files land in the trial's folder, the one it may write.
        command.env("HOME", work).env("TMPDIR", work);
    }
    command
        .args(&args[1..])
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("FIREBREAK_PARAMS_FILE", params_file)
        .env("FIREBREAK_SEED", seed.to_string())
        .env("FIREBREAK_TRIAL_NUMBER", number.to_string())
        .env("FIREBREAK_CAMPAIGN", name)
        .env("FIREBREAK_TRIAL_DIR", work)
        .env("FIREBREAK_CHECKPOINT_DIR", checkpoint)
        .env_remove("FIREBREAK_RESUME_FROM");
    if let Some(generation) = trial.generation {
        command.env("FIREBREAK_GENERATION", generation.to_string());
    }
    for name in &task.hidden {
        command.env_remove(name);
    }
    if let Some(code) = &task.code {
        command.env("FIREBREAK_DATA_DIR", &code.data_dir);
    }
    if task.sandbox.is_none() {
        command.process_group(0); // a sandboxed trial's setsid makes its group
    }
    for (key, value) in &task.env {
        command.env(key, value);
    }
    for (key, value) in &trial.params {
        command.env(param_env_name(key), value.to_plain_string());
    }
    if *resume {
        command.env("FIREBREAK_RESUME_FROM", checkpoint);
    }
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe calls (prctl, getppid, _exit).
    let parent = std::process::id() as i32;
    unsafe {
        command.pre_exec(move || {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1); // the parent died before the death signal was armed
            }
            Ok(())
        });
    }
    let Some(settings) = &task.sandbox else {
        return Ok((command, None));
    };
    let sandbox = settings.sandbox(workdir, &program, &[work, checkpoint]);
    let cgroup_name = format!(
        "firebreak-{parent}-{name}-{number}{}",
        if attempt.is_reeval() { "-reeval" } else { "" }
    );
    let prepared = sandbox
        .prepare(probe(), &cgroup_name)
        .map_err(|e| format!("sandbox: cannot prepare the trial's sandbox: {e}"))?;
    let restrictions = prepared.restrictions;
    // SAFETY: `apply` makes async-signal-safe system calls on data prepared
    // above and allocates nothing; it runs after the death-signal hook.
    unsafe {
        command.pre_exec(move || restrictions.apply());
    }
    Ok((command, prepared.cgroup))
}

/// Sends SIGTERM to the trial's process group; returns when SIGKILL follows.
fn terminate(pgid: i32) -> tokio::time::Instant {
    host::signal_group(pgid, libc::SIGTERM);
    tokio::time::Instant::now() + GRACE_PERIOD
}

fn program_path(program: &str, workdir: &Path) -> PathBuf {
    let path = Path::new(program);
    if path.is_relative() && program.contains('/') {
        workdir.join(path)
    } else {
        path.to_path_buf()
    }
}

/// How long a trial's pipes are still read after its own process exits: what it
/// printed is in the pipes by then, and a descendant that keeps them open (a
/// daemon in its own session, which no group signal reaches) must not hold the
/// trial, or the run, beyond this.
pub(crate) const DRAIN_PERIOD: Duration = Duration::from_secs(2);

/// How often the blocking side checks whether the trial's process exited while
/// its pipes stay open.
const TICK: Duration = Duration::from_millis(50);

/// One of the trial's output pipes and its unfinished line.
struct Pipe {
    file: std::fs::File,
    partial: Vec<u8>,
    stdout: bool,
}

impl Pipe {
    fn new(fd: std::os::fd::OwnedFd, stdout: bool) -> Self {
        Pipe {
            file: std::fs::File::from(fd),
            partial: Vec::new(),
            stdout,
        }
    }

    fn send(&self, tx: &mpsc::UnboundedSender<Event>, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes)
            .trim_end_matches(['\n', '\r'])
            .to_string();
        let _ = tx.send(if self.stdout {
            Event::Stdout(line)
        } else {
            Event::Stderr(line)
        });
    }

    /// Reads what is there (poll said so); false at the end of the stream.
    fn read(&mut self, tx: &mpsc::UnboundedSender<Event>) -> bool {
        let mut buf = [0u8; 64 * 1024];
        match self.file.read(&mut buf) {
            Ok(0) => false,
            Ok(n) => {
                self.partial.extend_from_slice(&buf[..n]);
                let mut start = 0;
                while let Some(at) = self.partial[start..].iter().position(|b| *b == b'\n') {
                    self.send(tx, &self.partial[start..start + at]);
                    start += at + 1;
                }
                self.partial.drain(..start);
                true
            }
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            ),
        }
    }

    /// Sends the unfinished last line, if any.
    fn finish(self, tx: &mpsc::UnboundedSender<Event>) {
        if !self.partial.is_empty() {
            self.send(tx, &self.partial);
        }
    }
}

/// What the blocking side keeps of a sandboxed trial: its process cgroup (removed
/// once the trial is reaped) and its CPU limit (to name a SIGKILL at it).
struct ChildSandbox {
    cgroup: Option<ProcessCgroup>,
    cpu_limit: Option<u64>,
}

/// The blocking side: spawn; read both pipes until the trial's process exits;
/// then kill what is left of the process group and every process that carries
/// the trial's `FIREBREAK_TRIAL_DIR` (descendants that left the group), read
/// what remains in the pipes for at most [`DRAIN_PERIOD`] (and not past the
/// trial's `deadline`), reap with resource usage, report.
fn run_child(
    mut command: Command,
    trial_dir: PathBuf,
    deadline: Option<Instant>,
    tx: mpsc::UnboundedSender<Event>,
    mut sandbox: Option<ChildSandbox>,
) {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            let within = if sandbox.is_some() {
                " in its sandbox"
            } else {
                ""
            };
            let _ = tx.send(Event::SpawnFailed(format!(
                "cannot start `{program}`{within}: {e}"
            )));
            return;
        }
    };
    let pid = child.id() as i32;
    let _ = tx.send(Event::Spawned(pid));
    let mut pipes: Vec<Pipe> = [
        child.stdout.take().map(|s| Pipe::new(s.into(), true)),
        child.stderr.take().map(|s| Pipe::new(s.into(), false)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // The trial's process is left a zombie until the end (waitid with WNOWAIT), so
    // its pid, the group id, cannot be reused while its leftovers are killed.
    let mut drain_until: Option<Instant> = None;
    loop {
        if drain_until.is_none() && leader_exited(pid) {
            end_leftovers(pid, &trial_dir);
            let now = Instant::now();
            let bound = now + DRAIN_PERIOD;
            // The deadline cuts the drain short, but what is already in the pipes
            // is still read.
            drain_until = Some(deadline.map_or(bound, |d| {
                bound.min(d.max(now + Duration::from_millis(100)))
            }));
        }
        if pipes.is_empty() {
            if drain_until.is_some() {
                break;
            }
            wait_for_exit(pid);
            continue;
        }
        let wait = match drain_until {
            Some(until) => {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                (until - now).min(TICK)
            }
            None => TICK,
        };
        let mut fds: Vec<libc::pollfd> = pipes
            .iter()
            .map(|p| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&p.file),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let millis = wait.as_millis().clamp(1, 1000) as libc::c_int;
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structures.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, millis) };
        if ready <= 0 {
            continue; // a timeout, or EINTR: look again
        }
        for index in (0..pipes.len()).rev() {
            if fds[index].revents != 0 && !pipes[index].read(&tx) {
                pipes.remove(index).finish(&tx);
            }
        }
    }
    for pipe in pipes {
        pipe.finish(&tx);
    }
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 on our own child reaps it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let cpu_seconds = seconds(usage.ru_utime) + seconds(usage.ru_stime);
    let (text, success) = if rc != pid {
        ("could not collect the exit status".to_string(), false)
    } else if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        (format!("exited with status {code}"), code == 0)
    } else if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        // RLIMIT_CPU's hard limit (a second past the soft one) ends in SIGKILL.
        let at_cpu_limit = signal == libc::SIGKILL
            && sandbox
                .as_ref()
                .and_then(|s| s.cpu_limit)
                .is_some_and(|limit| cpu_seconds >= limit as f64);
        (
            format!(
                "killed by signal {signal} ({}){}",
                signal_name(signal),
                if at_cpu_limit {
                    ", cpu limit reached"
                } else {
                    ""
                }
            ),
            false,
        )
    } else {
        ("ended abnormally".to_string(), false)
    };
    // The child is reaped; std's handle must not try again.
    std::mem::forget(child);
    if let Some(cgroup) = sandbox.as_mut().and_then(|s| s.cgroup.as_mut()) {
        cgroup.remove();
    }
    let _ = tx.send(Event::Exited {
        status: text,
        success,
        cpu_seconds,
    });
}

/// True once the trial's process `pid` has exited (left a zombie, not reaped),
/// or when it cannot be waited for at all.
fn leader_exited(pid: i32) -> bool {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a siginfo_t; P_PID with our own child's pid.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR);
    }
    // SAFETY: waitid succeeded, so si_pid is set (0 while the child runs).
    unsafe { info.si_pid() == pid }
}

/// Blocks until the trial's process `pid` exits, leaving it a zombie.
fn wait_for_exit(pid: i32) {
    // SAFETY: siginfo_t is plain data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointer to a siginfo_t; P_PID with our own child's pid.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Kills what the trial whose process `pid` has exited left running: its process
/// group, and every process whose environment carries its `FIREBREAK_TRIAL_DIR`
/// (a descendant in a new session or group). A few passes catch a child forked
/// while a pass ran.
fn end_leftovers(pid: i32, trial_dir: &Path) {
    host::signal_group(pid, libc::SIGKILL);
    let dir = trial_dir.display().to_string();
    for _ in 0..3 {
        if host::kill_by_environment("FIREBREAK_TRIAL_DIR", &dir) == 0 {
            break;
        }
    }
}

fn seconds(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + t.tv_usec as f64 / 1e6
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGSYS => "SIGSYS",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::ParamValue;

    #[test]
    fn placeholders_expand_and_inactive_arguments_drop() {
        let mut params = Params::new();
        params.insert("lr".into(), ParamValue::Float(0.0001));
        params.insert("act".into(), ParamValue::Str("relu".into()));
        let args: Vec<String> = [
            "train.py",
            "--lr={lr}",
            "{act}",
            "--width={width_3}",
            "{trial_number}",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            expand_args(&args, &params, &[("trial_number", "4".into())]),
            ["train.py", "--lr=0.0001", "relu", "4"]
        );
        assert_eq!(param_env_name("width-3"), "FIREBREAK_PARAM_WIDTH_3");
    }
}

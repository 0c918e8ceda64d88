//! Launchers: start `firebreak worker` processes on a cluster's scheduler. Today
//! one, Slurm (`firebreak launch slurm`): N workers become ONE job array
//! (`sbatch --array=0-(N-1)`), each task `exec`s the same `firebreak worker …`
//! command line, and `status` reads the array's tasks back from `squeue`, or from
//! `sacct` once the controller has forgotten them.
//!
//! Principal items: [`SlurmJob`] (what to submit), [`sbatch_script`] (the batch
//! script, pure text, unit-tested below), [`submit`] (runs `sbatch --parsable`,
//! returns the job id), [`array_state`] (one [`TaskState`] per array task) and
//! [`LaunchError`].
//!
//! Why a job array: one submission, one job id for people and for `scancel`, and
//! Slurm starts the tasks as resources free up; the workers themselves claim
//! trials from the shared store, so a task needs nothing but its worker id
//! (`FIREBREAK_WORKER_ID=slurm:<array job id>.<task id>`).
//!
//! Why the Slurm client programs rather than slurmrestd: they are on every login
//! node, need no token, and their text formats (`--parsable`, `-o`) are stable.
//! This module uses only std (`std::process::Command`) and no item of this
//! crate: `tests/slurm.rs` compiles this file as its own module (`#[path]`) to
//! drive a real test cluster through the same code (`docs/slurm.md`). It never
//! prints; the CLI does.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// One `firebreak launch slurm` submission: N identical worker tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlurmJob {
    /// Array tasks, one worker each (`--array=0-(workers-1)`); at least 1.
    pub workers: u32,
    /// `--partition`, when given.
    pub partition: Option<String>,
    /// `--time` (Slurm's formats: `MM`, `HH:MM:SS`, `D-HH`…), when given.
    pub time: Option<String>,
    /// Further sbatch options, one `#SBATCH` line each (`--sbatch-arg`), e.g.
    /// `--mem=4G` or `--account=proj`.
    pub extra: Vec<String>,
    /// The full command line of one task: `firebreak worker --storage … --campaign …`.
    pub worker_argv: Vec<String>,
    /// `--job-name`, what `squeue` shows.
    pub job_name: String,
    /// Where each task's output goes (`%A_%a.out`); created by [`submit`]. It must
    /// be on a file system the compute nodes share.
    pub log_dir: PathBuf,
}

/// The state of one array task, as Slurm names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TaskState {
    /// The array index (`SLURM_ARRAY_TASK_ID`).
    pub task_id: u32,
    /// Slurm's state word: `PENDING`, `RUNNING`, `COMPLETED`, `FAILED`,
    /// `CANCELLED`, `TIMEOUT`, `NODE_FAIL`, `OUT_OF_MEMORY`, … (sacct's
    /// `CANCELLED by UID` is reduced to `CANCELLED`).
    pub state: String,
}

impl TaskState {
    /// Whether Slurm is done with the task (neither waiting nor running).
    pub fn is_finished(&self) -> bool {
        !matches!(
            self.state.as_str(),
            "PENDING"
                | "RUNNING"
                | "CONFIGURING"
                | "COMPLETING"
                | "REQUEUED"
                | "REQUEUE_FED"
                | "REQUEUE_HOLD"
                | "RESIZING"
                | "SUSPENDED"
                | "STOPPED"
                | "SIGNALING"
                | "STAGE_OUT"
                | "RESV_DEL_HOLD"
                | "SPECIAL_EXIT"
        )
    }
}

/// Why a launch or a status query failed.
#[derive(Debug)]
#[non_exhaustive]
pub(crate) enum LaunchError {
    /// The job cannot be expressed as a batch script.
    Invalid {
        what: String,
        value: String,
        hint: String,
    },
    /// A Slurm client program is not installed or not on PATH.
    Missing { program: String },
    /// A Slurm program ran and failed (or answered something unreadable).
    Failed {
        program: String,
        detail: String,
        hint: String,
    },
    /// Writing the log folder or talking to a program failed.
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Invalid { what, value, hint } => {
                write!(f, "{what}: {value:?}\nhint: {hint}")
            }
            LaunchError::Missing { program } => write!(
                f,
                "`{program}` was not found on PATH: Slurm's client programs are needed\n\
                 hint: run this on a Slurm login node, or install them (Debian: apt-get install slurm-client)"
            ),
            LaunchError::Failed {
                program,
                detail,
                hint,
            } => write!(f, "`{program}` failed: {detail}\nhint: {hint}"),
            LaunchError::Io { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The batch script for `job`: `#SBATCH` lines, then the worker id and an `exec`
/// of the worker's command line, every word shell-quoted.
///
/// Refuses what a script cannot hold safely: no workers, an empty command, an
/// sbatch argument that is not an option or has a line break (the rest of the
/// line would become shell code).
pub(crate) fn sbatch_script(job: &SlurmJob) -> Result<String, LaunchError> {
    if job.workers == 0 {
        return Err(invalid(
            "a Slurm launch needs at least one worker",
            "0",
            "pass --workers N with N >= 1",
        ));
    }
    if job.worker_argv.is_empty() {
        return Err(invalid(
            "the worker command line is empty",
            "",
            "this is a bug in firebreak: the launcher builds `firebreak worker …`",
        ));
    }
    let log_pattern = format!(
        "{}/%A_%a.out",
        // A `%` of the folder itself must not start one of Slurm's patterns.
        job.log_dir.display().to_string().replace('%', "%%")
    );
    let mut options: Vec<(String, String)> = vec![
        ("--job-name".into(), job.job_name.clone()),
        ("--array".into(), format!("0-{}", job.workers - 1)),
        ("--output".into(), log_pattern),
        ("--cpus-per-task".into(), "1".into()),
    ];
    if let Some(partition) = &job.partition {
        options.push(("--partition".into(), partition.clone()));
    }
    if let Some(time) = &job.time {
        options.push(("--time".into(), time.clone()));
    }
    let mut lines = vec!["#!/bin/bash".to_string()];
    for (name, value) in &options {
        lines.push(format!(
            "#SBATCH {}",
            sbatch_word(&format!("{name}={value}"))?
        ));
    }
    for arg in &job.extra {
        if !arg.starts_with('-') {
            return Err(invalid(
                "an sbatch argument must be an option",
                arg,
                "pass each option whole, e.g. --sbatch-arg=--mem=4G or --sbatch-arg='--account=proj'",
            ));
        }
        lines.push(format!("#SBATCH {}", sbatch_word(arg)?));
    }
    lines.push(String::new());
    lines
        .push("# Written by `firebreak launch slurm`: one firebreak worker per array task.".into());
    lines.push(
        "export FIREBREAK_WORKER_ID=\"slurm:${SLURM_ARRAY_JOB_ID}.${SLURM_ARRAY_TASK_ID}\"".into(),
    );
    let argv: Vec<String> = job
        .worker_argv
        .iter()
        .map(|word| shell_quote(word))
        .collect();
    lines.push(format!("exec {}", argv.join(" ")));
    let mut script = lines.join("\n");
    script.push('\n');
    Ok(script)
}

/// Submits `job` with `sbatch --parsable` (the script on stdin) to the cluster
/// Slurm finds by itself (`SLURM_CONF` or its default), after creating the log
/// folder. Returns the array's job id.
pub(crate) fn submit(job: &SlurmJob) -> Result<String, LaunchError> {
    submit_to(job, None)
}

/// [`submit`] to the cluster of the given `slurm.conf` (`None`: Slurm's own
/// lookup).
pub(crate) fn submit_to(job: &SlurmJob, slurm_conf: Option<&Path>) -> Result<String, LaunchError> {
    let script = sbatch_script(job)?;
    std::fs::create_dir_all(&job.log_dir).map_err(|source| LaunchError::Io {
        what: format!("cannot create the log folder {}", job.log_dir.display()),
        source,
    })?;
    let mut command = slurm_command("sbatch", slurm_conf);
    command
        .arg("--parsable")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command, "sbatch")?;
    if let Some(mut stdin) = child.stdin.take() {
        // A failed write shows up as sbatch's own error below.
        let _ = stdin.write_all(script.as_bytes());
    }
    let output = child.wait_with_output().map_err(|source| LaunchError::Io {
        what: "cannot read sbatch's answer".into(),
        source,
    })?;
    if !output.status.success() {
        return Err(failed(
            "sbatch",
            &output,
            "check --partition, --time and each --sbatch-arg against `sinfo` and the site's limits",
        ));
    }
    // `--parsable` prints `JOBID` or `JOBID;CLUSTER`.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let job_id = stdout
        .trim()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string();
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(LaunchError::Failed {
            program: "sbatch".into(),
            detail: format!("expected a job id, got {:?}", stdout.trim()),
            hint: "is `sbatch` Slurm's? `sbatch --version` should name Slurm".into(),
        });
    }
    Ok(job_id)
}

/// The state of every task of the array `job_id`, sorted by task id.
pub(crate) fn array_state(job_id: &str) -> Result<Vec<TaskState>, LaunchError> {
    array_state_on(job_id, None)
}

/// [`array_state`] on the cluster of the given `slurm.conf` (`None`: Slurm's own
/// lookup).
///
/// `squeue --array --states=all` sees a task while the controller keeps it:
/// pending, running, and finished for `MinJobAge` seconds (300 by default). A
/// task it no longer knows is read from `sacct`, which needs accounting
/// (slurmdbd); without it `sacct` only answers "accounting storage is disabled"
/// and the squeue answer stands alone. A pending task cancelled before it ever
/// started leaves no record in either: it is simply absent.
pub(crate) fn array_state_on(
    job_id: &str,
    slurm_conf: Option<&Path>,
) -> Result<Vec<TaskState>, LaunchError> {
    if job_id.is_empty() || !job_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            "a Slurm job id is a number",
            job_id,
            "pass the id `firebreak launch slurm` printed",
        ));
    }
    let squeue = run_slurm(
        slurm_command("squeue", slurm_conf).args([
            "--noheader",
            "--array",
            "--states=all",
            &format!("--jobs={job_id}"),
            "--format=%i %T",
        ]),
        "squeue",
    )?;
    let mut tasks: Vec<TaskState> = Vec::new();
    let squeue_error = match squeue {
        Ok(stdout) => {
            tasks = parse_tasks(job_id, &stdout, ' ');
            None
        }
        // A job the controller has purged (or never had).
        Err(detail) => Some(detail),
    };
    let sacct = run_slurm(
        slurm_command("sacct", slurm_conf).args([
            "--noheader",
            "--parsable2",
            "--allocations",
            &format!("--jobs={job_id}"),
            "--format=JobID,State",
        ]),
        "sacct",
    );
    let sacct_error = match sacct {
        Ok(Ok(stdout)) => {
            for task in parse_tasks(job_id, &stdout, '|') {
                if !tasks.iter().any(|known| known.task_id == task.task_id) {
                    tasks.push(task);
                }
            }
            None
        }
        Ok(Err(detail)) => Some(detail),
        // No sacct on PATH: squeue's answer is all there is.
        Err(LaunchError::Missing { .. }) => Some("sacct is not installed".into()),
        Err(error) => return Err(error),
    };
    if tasks.is_empty()
        && let Some(squeue_error) = squeue_error
    {
        return Err(LaunchError::Failed {
            program: "squeue".into(),
            detail: format!(
                "no task of job {job_id} found: squeue: {squeue_error}; sacct: {}",
                sacct_error.unwrap_or_else(|| "no record".into())
            ),
            hint: "finished jobs leave squeue after MinJobAge (300 s by default); \
                   older ones need Slurm accounting (slurmdbd) for sacct"
                .into(),
        });
    }
    tasks.sort_by_key(|task| task.task_id);
    Ok(tasks)
}

/// Parses `JOBID_TASK<sep>STATE` lines of `job_id`'s array. TASK is an index, or
/// (sacct, pending tasks) a bracketed list of indices and ranges with an optional
/// `%limit`: `[2-5,7%2]`. Other lines (another job, a job step) are skipped.
fn parse_tasks(job_id: &str, text: &str, separator: char) -> Vec<TaskState> {
    let prefix = format!("{job_id}_");
    let mut tasks = Vec::new();
    for line in text.lines() {
        let Some((id, state)) = line.trim().split_once(separator) else {
            continue;
        };
        let Some(task) = id.strip_prefix(&prefix) else {
            continue;
        };
        // sacct: "CANCELLED by 0".
        let state = state
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        if state.is_empty() {
            continue;
        }
        for task_id in task_ids(task) {
            tasks.push(TaskState {
                task_id,
                state: state.clone(),
            });
        }
    }
    tasks
}

/// `3` → `[3]`; `[2-4,7%2]` → `[2, 3, 4, 7]`; anything else → `[]`.
fn task_ids(task: &str) -> Vec<u32> {
    if let Ok(id) = task.parse() {
        return vec![id];
    }
    let Some(list) = task.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return Vec::new();
    };
    let list = list.split('%').next().unwrap_or_default();
    let mut ids = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((first, last)) => {
                if let (Ok(first), Ok(last)) = (first.parse::<u32>(), last.parse::<u32>()) {
                    ids.extend(first..=last);
                }
            }
            None => ids.extend(part.parse::<u32>().ok()),
        }
    }
    ids
}

/// A Slurm client command, pointed at `slurm_conf` when given.
fn slurm_command(program: &str, slurm_conf: Option<&Path>) -> Command {
    let mut command = Command::new(program);
    if let Some(conf) = slurm_conf {
        command.env("SLURM_CONF", conf);
    }
    command
}

fn spawn(command: &mut Command, program: &str) -> Result<std::process::Child, LaunchError> {
    command.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            LaunchError::Missing {
                program: program.into(),
            }
        } else {
            LaunchError::Io {
                what: format!("cannot run `{program}`"),
                source,
            }
        }
    })
}

/// Runs a query: `Err` when the program cannot be started at all, `Ok(Err(text))`
/// when it ran and failed (its stderr), `Ok(Ok(stdout))` otherwise.
fn run_slurm(command: &mut Command, program: &str) -> Result<Result<String, String>, LaunchError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = spawn(command, program)?
        .wait_with_output()
        .map_err(|source| LaunchError::Io {
            what: format!("cannot read `{program}`'s answer"),
            source,
        })?;
    if output.status.success() {
        Ok(Ok(String::from_utf8_lossy(&output.stdout).into_owned()))
    } else {
        Ok(Err(describe_failure(&output)))
    }
}

fn failed(program: &str, output: &std::process::Output, hint: &str) -> LaunchError {
    LaunchError::Failed {
        program: program.into(),
        detail: describe_failure(output),
        hint: hint.into(),
    }
}

/// The exit status and stderr of a failed run, on one line.
fn describe_failure(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    if stderr.is_empty() {
        format!("{} (no message)", output.status)
    } else {
        format!("{}: {stderr}", output.status)
    }
}

fn invalid(what: &str, value: &str, hint: &str) -> LaunchError {
    LaunchError::Invalid {
        what: what.into(),
        value: value.into(),
        hint: hint.into(),
    }
}

/// One argument of an `#SBATCH` line, written the way sbatch reads it back
/// (Slurm's `_get_argument`): a `\` escapes the next character, `"` toggles
/// quoting (the only way to keep whitespace), and an unescaped `#` ends the line.
/// A line break cannot be written at all.
fn sbatch_word(word: &str) -> Result<String, LaunchError> {
    if word.contains(['\n', '\r', '\0']) {
        return Err(invalid(
            "an #SBATCH argument cannot hold a line break",
            word,
            "remove the line break from the option's value",
        ));
    }
    let mut escaped = String::with_capacity(word.len() + 2);
    for c in word.chars() {
        if matches!(c, '\\' | '"' | '#') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    if word.chars().any(char::is_whitespace) {
        Ok(format!("\"{escaped}\""))
    } else {
        Ok(escaped)
    }
}

/// A word for bash: as is when it holds only characters bash never interprets,
/// otherwise in single quotes (a `'` written as `'\''`).
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> SlurmJob {
        SlurmJob {
            workers: 4,
            partition: None,
            time: None,
            extra: Vec::new(),
            worker_argv: vec![
                "/opt/firebreak/bin/firebreak".into(),
                "--storage".into(),
                "postgres://fb@db.example:5432/firebreak".into(),
                "worker".into(),
                "--campaign".into(),
                "cifar".into(),
            ],
            job_name: "firebreak-cifar".into(),
            log_dir: PathBuf::from("/shared/logs"),
        }
    }

    fn script(job: &SlurmJob) -> String {
        sbatch_script(job).expect("a valid job")
    }

    #[test]
    fn the_script_is_one_array_of_workers_that_execs_the_worker() {
        let expected = "\
#!/bin/bash
#SBATCH --job-name=firebreak-cifar
#SBATCH --array=0-3
#SBATCH --output=/shared/logs/%A_%a.out
#SBATCH --cpus-per-task=1

# Written by `firebreak launch slurm`: one firebreak worker per array task.
export FIREBREAK_WORKER_ID=\"slurm:${SLURM_ARRAY_JOB_ID}.${SLURM_ARRAY_TASK_ID}\"
exec /opt/firebreak/bin/firebreak --storage postgres://fb@db.example:5432/firebreak worker --campaign cifar
";
        assert_eq!(script(&job()), expected);
    }

    #[test]
    fn partition_time_and_extra_arguments_become_sbatch_lines_in_order() {
        let job = SlurmJob {
            workers: 1,
            partition: Some("gpu".into()),
            time: Some("01:30:00".into()),
            extra: vec!["--mem=4G".into(), "--account=proj".into()],
            ..job()
        };
        let text = script(&job);
        let sbatch: Vec<&str> = text.lines().filter(|l| l.starts_with("#SBATCH")).collect();
        assert_eq!(
            sbatch,
            [
                "#SBATCH --job-name=firebreak-cifar",
                "#SBATCH --array=0-0",
                "#SBATCH --output=/shared/logs/%A_%a.out",
                "#SBATCH --cpus-per-task=1",
                "#SBATCH --partition=gpu",
                "#SBATCH --time=01:30:00",
                "#SBATCH --mem=4G",
                "#SBATCH --account=proj",
            ]
        );
        // sbatch stops reading #SBATCH lines at the first command: all of them
        // come before the body.
        let lines: Vec<&str> = text.lines().collect();
        let first_command = lines
            .iter()
            .position(|l| l.starts_with("export"))
            .expect("body");
        let last_option = lines
            .iter()
            .rposition(|l| l.starts_with("#SBATCH"))
            .expect("options");
        assert!(last_option < first_command);
    }

    #[test]
    fn worker_words_with_spaces_quotes_and_dollars_reach_the_worker_unchanged() {
        let job = SlurmJob {
            worker_argv: vec![
                "firebreak".into(),
                "--campaign".into(),
                "my campaign".into(),
                "it's".into(),
                "$HOME;rm -rf /".into(),
                "\"quoted\"".into(),
                String::new(),
            ],
            ..job()
        };
        let text = script(&job);
        assert!(text.ends_with(
            "exec firebreak --campaign 'my campaign' 'it'\\''s' '$HOME;rm -rf /' '\"quoted\"' ''\n"
        ));
    }

    #[test]
    fn the_script_runs_under_bash_with_the_exact_words() {
        // The real check of the quoting: bash parses the exec line back into the
        // same argv (printf instead of exec'ing a worker).
        let words = [
            "a b",
            "it's",
            "$HOME `id`",
            "\"q\"",
            "",
            "back\\slash",
            "x\ty",
        ];
        let job = SlurmJob {
            worker_argv: ["printf", "%s\\n"]
                .iter()
                .chain(words.iter())
                .map(|w| w.to_string())
                .collect(),
            ..job()
        };
        let output = Command::new("bash")
            .arg("-c")
            .arg(script(&job))
            .env("SLURM_ARRAY_JOB_ID", "7")
            .env("SLURM_ARRAY_TASK_ID", "2")
            .output()
            .expect("bash runs");
        assert!(output.status.success(), "{output:?}");
        let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
    }

    #[test]
    fn the_worker_id_names_the_array_job_and_the_task() {
        let job = SlurmJob {
            worker_argv: vec![
                "sh".into(),
                "-c".into(),
                "echo \"$FIREBREAK_WORKER_ID\"".into(),
            ],
            ..job()
        };
        let output = Command::new("bash")
            .arg("-c")
            .arg(script(&job))
            .env("SLURM_ARRAY_JOB_ID", "41")
            .env("SLURM_ARRAY_TASK_ID", "3")
            .output()
            .expect("bash runs");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "slurm:41.3\n");
    }

    #[test]
    fn sbatch_arguments_with_spaces_quotes_and_hashes_are_escaped_for_sbatch() {
        let job = SlurmJob {
            job_name: "my \"best\" run #2".into(),
            log_dir: PathBuf::from("/shared/run logs/100%"),
            extra: vec!["--comment=a\\b".into()],
            ..job()
        };
        let text = script(&job);
        assert!(
            text.contains("#SBATCH \"--job-name=my \\\"best\\\" run \\#2\"\n"),
            "{text}"
        );
        assert!(
            text.contains("#SBATCH \"--output=/shared/run logs/100%%/%A_%a.out\"\n"),
            "{text}"
        );
        assert!(text.contains("#SBATCH --comment=a\\\\b\n"), "{text}");
    }

    #[test]
    fn what_a_script_cannot_hold_is_refused_with_the_value() {
        let check = |job: SlurmJob, expected: &str| {
            let error = sbatch_script(&job).expect_err("refused").to_string();
            assert!(error.contains(expected), "{error}");
            assert!(error.contains("hint:"), "{error}");
        };
        check(
            SlurmJob {
                workers: 0,
                ..job()
            },
            "at least one worker",
        );
        check(
            SlurmJob {
                worker_argv: Vec::new(),
                ..job()
            },
            "command line is empty",
        );
        check(
            SlurmJob {
                extra: vec!["--comment=x\necho pwned".into()],
                ..job()
            },
            "line break",
        );
        check(
            SlurmJob {
                extra: vec!["mem=4G".into()],
                ..job()
            },
            "\"mem=4G\"",
        );
    }

    #[test]
    fn task_lines_of_squeue_and_sacct_are_parsed() {
        let squeue = "12_0 COMPLETED\n12_3 RUNNING\n12_1 CANCELLED\n13_0 RUNNING\n";
        let tasks = parse_tasks("12", squeue, ' ');
        let states: Vec<(u32, &str)> = tasks
            .iter()
            .map(|t| (t.task_id, t.state.as_str()))
            .collect();
        assert_eq!(states, [(0, "COMPLETED"), (3, "RUNNING"), (1, "CANCELLED")]);

        let sacct =
            "12_0|COMPLETED\n12_1|CANCELLED by 0\n12_[2-4,7%2]|PENDING\n12_5.batch|COMPLETED\n";
        let tasks = parse_tasks("12", sacct, '|');
        let states: Vec<(u32, &str)> = tasks
            .iter()
            .map(|t| (t.task_id, t.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                (0, "COMPLETED"),
                (1, "CANCELLED"),
                (2, "PENDING"),
                (3, "PENDING"),
                (4, "PENDING"),
                (7, "PENDING")
            ]
        );
    }

    #[test]
    fn finished_states_are_told_from_live_ones() {
        let state = |s: &str| TaskState {
            task_id: 0,
            state: s.into(),
        };
        assert!(state("COMPLETED").is_finished());
        assert!(state("CANCELLED").is_finished());
        assert!(state("FAILED").is_finished());
        assert!(state("TIMEOUT").is_finished());
        assert!(!state("PENDING").is_finished());
        assert!(!state("RUNNING").is_finished());
        assert!(!state("COMPLETING").is_finished());
    }

    #[test]
    fn a_job_id_that_is_not_a_number_is_refused_before_running_anything() {
        let error = array_state("12; rm").expect_err("refused").to_string();
        assert!(error.contains("\"12; rm\""), "{error}");
    }

    #[test]
    fn a_missing_program_is_named_with_a_hint() {
        let error =
            spawn(&mut Command::new("sbatch-that-does-not-exist"), "sbatch").expect_err("missing");
        let text = error.to_string();
        assert!(text.contains("`sbatch` was not found"), "{text}");
        assert!(text.contains("hint:"), "{text}");
    }
}

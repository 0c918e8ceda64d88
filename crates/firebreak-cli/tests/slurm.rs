//! `firebreak launch slurm`'s launcher against a real Slurm: a single-node test
//! cluster (`scripts/slurm.sh`, started and stopped by `common::slurm::Cluster`)
//! runs the job array that `launch::sbatch_script` writes and `launch::submit`
//! submits, and `launch::array_state` reads its tasks back.
//!
//! Why the launcher module is compiled into this test (`#[path]`): its items are
//! `pub(crate)` in the binary, and the test must drive the very script text and
//! `sbatch`/`squeue` calls the CLI uses, not a copy. The worker command is a
//! stand-in (a shell line that writes a file per task); the last test launches
//! real `firebreak worker`s with `firebreak launch slurm` against the test
//! PostgreSQL.
//!
//! Needs Slurm installed (`scripts/slurm.sh install`) and root; without them the
//! test fails with that hint, it never skips.

mod common;
#[path = "../src/launch.rs"]
#[allow(dead_code)]
mod launch;

use std::time::Duration;

use common::slurm::Cluster;
use launch::{SlurmJob, TaskState};

/// The array's tasks once every one of `workers` has finished.
fn wait_until_finished(
    cluster: &Cluster,
    job_id: &str,
    workers: u32,
    timeout: Duration,
) -> Vec<TaskState> {
    cluster.wait_for(
        &format!("the {workers} tasks of job {job_id} to finish"),
        timeout,
        || {
            let tasks = launch::array_state_on(job_id, Some(cluster.conf())).ok()?;
            (tasks.len() == workers as usize && tasks.iter().all(TaskState::is_finished))
                .then_some(tasks)
        },
    )
}

fn state_of(cluster: &Cluster, job_id: &str, task_id: u32) -> Option<String> {
    launch::array_state_on(job_id, Some(cluster.conf()))
        .ok()?
        .into_iter()
        .find(|task| task.task_id == task_id)
        .map(|task| task.state)
}

#[test]
fn a_job_array_runs_one_worker_per_task_and_one_task_can_be_cancelled() {
    let cluster = Cluster::start();

    // Each "worker" writes its worker id to a file named after its task, in a
    // folder whose name needs quoting, through a command whose words need it too.
    let out = cluster.dir().join("worker output");
    std::fs::create_dir(&out).expect("output folder");
    let job = SlurmJob {
        workers: 4,
        partition: None,
        time: Some("00:05:00".into()),
        extra: vec!["--comment=firebreak test".into()],
        worker_argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            r#"printf '%s' "$FIREBREAK_WORKER_ID" > "$1/task $SLURM_ARRAY_TASK_ID""#.into(),
            "sh".into(),
            out.display().to_string(),
        ],
        job_name: "firebreak's test array".into(),
        log_dir: cluster.dir().join("slurm logs"),
    };
    let job_id = launch::submit_to(&job, Some(cluster.conf())).expect("sbatch accepts the script");
    // Options whose values need sbatch's own quoting arrive whole.
    let shown = cluster.run(
        "squeue",
        &["--noheader", "--jobs", &job_id, "--format=%j|%k"],
    );
    assert!(
        !shown.is_empty()
            && shown
                .lines()
                .all(|line| line == "firebreak's test array|firebreak test"),
        "job name and comment as squeue shows them: {shown:?}"
    );

    let tasks = wait_until_finished(&cluster, &job_id, 4, Duration::from_secs(25));
    let states: Vec<(u32, &str)> = tasks
        .iter()
        .map(|task| (task.task_id, task.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            (0, "COMPLETED"),
            (1, "COMPLETED"),
            (2, "COMPLETED"),
            (3, "COMPLETED")
        ]
    );
    for task_id in 0..4 {
        let written = std::fs::read_to_string(out.join(format!("task {task_id}")))
            .unwrap_or_else(|e| panic!("task {task_id} wrote no file: {e}"));
        assert_eq!(written, format!("slurm:{job_id}.{task_id}"));
        let log = job.log_dir.join(format!("{job_id}_{task_id}.out"));
        assert!(log.is_file(), "no task log {}", log.display());
    }

    // A second array of long "workers": cancelling one task leaves the other
    // running, and the cancelled task's state says so.
    let long = SlurmJob {
        workers: 2,
        worker_argv: vec!["sleep".into(), "120".into()],
        job_name: "firebreak-cancel".into(),
        ..job.clone()
    };
    let long_id = launch::submit_to(&long, Some(cluster.conf())).expect("second array");
    assert_ne!(long_id, job_id);
    cluster.wait_for("both tasks to run", Duration::from_secs(20), || {
        (state_of(&cluster, &long_id, 0)? == "RUNNING"
            && state_of(&cluster, &long_id, 1)? == "RUNNING")
            .then_some(())
    });
    cluster.run("scancel", &[&format!("{long_id}_1")]);
    cluster.wait_for("task 1 to be cancelled", Duration::from_secs(15), || {
        (state_of(&cluster, &long_id, 1)? == "CANCELLED").then_some(())
    });
    assert_eq!(
        state_of(&cluster, &long_id, 0).as_deref(),
        Some("RUNNING"),
        "cancelling task 1 must leave task 0 running"
    );
}

/// The issue's end-to-end test: `firebreak launch slurm` submits 4 real
/// workers on a 40-trial campaign in the test PostgreSQL; one task is
/// cancelled mid-run (`scancel`: SIGTERM, its running trial goes back to the
/// queue); the others finish exactly 40 trials, each once, and the audit passes.
#[test]
fn launched_workers_finish_the_campaign_when_one_task_is_cancelled() {
    let cluster = Cluster::start();
    let storage = common::fresh_postgres();
    let project = common::Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let spec = common::spec(
        "launched",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"random\"\nn_trials = 40\nparallelism = 1",
        &format!(
            "env = {{ MODE = \"slow\", MARKERS = \"{}\", TOKEN = \"slurm-e2e\" }}",
            markers.display()
        ),
    );
    let path = project.spec("spec.toml", &spec);
    let firebreak = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_firebreak"))
            .args(["--storage", &storage, "--quiet"])
            .args(args)
            .current_dir(project.path())
            .env("FIREBREAK_ENGINE_KEY", project.engine_key())
            .env("SLURM_CONF", cluster.conf())
            .output()
            .expect("firebreak ran");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = firebreak(&[
        "launch",
        "slurm",
        path.to_str().expect("utf-8"),
        "--workers",
        "4",
        "--lease",
        "2s",
        "--time",
        "00:05:00",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let job_id = stdout.trim().to_string();
    assert!(job_id.bytes().all(|b| b.is_ascii_digit()), "{stdout}");
    let finished = || {
        let (_, out, _) = firebreak(&["--format", "json", "trials", "launched"]);
        serde_json::from_str::<Vec<serde_json::Value>>(&out)
            .map(|t| t.iter().filter(|t| t["state"] == "complete").count())
            .unwrap_or(0)
    };
    cluster.wait_for("a few trials to finish", Duration::from_secs(60), || {
        (finished() >= 8).then_some(())
    });
    cluster.run("scancel", &[&format!("{job_id}_1")]);
    let tasks = wait_until_finished(&cluster, &job_id, 4, Duration::from_secs(120));
    let cancelled: Vec<u32> = tasks
        .iter()
        .filter(|t| t.state == "CANCELLED")
        .map(|t| t.task_id)
        .collect();
    assert_eq!(cancelled, [1], "{tasks:?}");
    assert!(
        tasks
            .iter()
            .filter(|t| t.task_id != 1)
            .all(|t| t.state == "COMPLETED"),
        "{tasks:?}"
    );
    let (code, stdout, stderr) = firebreak(&["--format", "json", "trials", "launched"]);
    assert_eq!(code, 0, "{stderr}");
    let trials: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("JSON");
    let numbers: Vec<u64> = trials.iter().filter_map(|t| t["number"].as_u64()).collect();
    assert_eq!(numbers, (0..40).collect::<Vec<_>>());
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    let (code, export, stderr) = firebreak(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let payloads = common::entry_payloads(&export);
    let finishes = payloads
        .iter()
        .filter(|p| p["kind"] == "trial_finished")
        .count();
    assert_eq!(finishes, 40);
    let requeued: Vec<_> = payloads
        .iter()
        .filter(|p| p["kind"] == "trial_requeued")
        .map(|p| &p["data"])
        .collect();
    assert!(
        requeued.len() <= 1,
        "only the cancelled task's trial goes back: {requeued:?}"
    );
    let violations = common::violations(&markers);
    assert!(violations.is_empty(), "{violations:?}");
    let (code, stdout, _) = firebreak(&["status", "launched"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&format!("slurm: job array {job_id}")),
        "{stdout}"
    );
    let (code, stdout, stderr) = firebreak(&["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

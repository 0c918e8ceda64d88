//! The crash test: `firebreak run` is killed with SIGKILL at random moments, several
//! times, while trial programs (and their own children) run; then the same command
//! finishes the campaign. Afterwards: exactly `n_trials` trials finished, numbered
//! without gaps or duplicates, each completed exactly once, no trial ever ran twice
//! at once, no process a trial started is still alive, the ledger says why each
//! re-queued trial was re-queued, and it verifies.
//!
//! Also the trial-process edges around it (fixture `edges.py`): a daemon that
//! leaves the trial's session holding its stdout neither holds the trial nor the
//! run (nor survives it), and numbers JSON cannot carry exactly, or non-finite
//! ones, fail their trial with a reason naming the value while the ledger still
//! verifies.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Project, spec};
use serde_json::Value;

const N_TRIALS: u64 = 24;
const KILLS: usize = 5;

/// Processes whose command line carries `token` (the trials' grandchildren).
fn survivors(token: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(token)
        {
            found.push(pid);
        }
    }
    found
}

/// A small deterministic generator for kill delays (no clock-seeded randomness).
fn delays() -> impl Iterator<Item = Duration> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    std::iter::repeat_with(move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        Duration::from_millis(300 + state % 900)
    })
}

#[test]
fn kill_9_at_random_moments_loses_and_repeats_nothing() {
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let token = format!("firebreak-crash-token-{}", std::process::id());
    let path = project.spec(
        "spec.toml",
        &spec(
            "crash",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            &format!("n_trials = {N_TRIALS}\nparallelism = 2"),
            &format!(
                "env = {{ MODE = \"slow\", MARKERS = \"{}\", TOKEN = \"{token}\" }}",
                markers.display()
            ),
        ),
    );
    let path = path.to_str().expect("utf-8");
    let mut kills = 0;
    for delay in delays().take(KILLS) {
        let mut child = project
            .command(&["run", path, "--quiet"])
            .spawn()
            .expect("started");
        std::thread::sleep(delay);
        if child.try_wait().expect("polled").is_some() {
            break; // finished before the kill
        }
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL
        child.wait().expect("reaped");
        kills += 1;
    }
    assert!(
        kills >= 3,
        "only {kills} kills landed: the trials are too fast"
    );

    let (code, stdout, stderr) = project.exec_within(180, &["run", path]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("crash");
    let numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().expect("number"))
        .collect();
    assert_eq!(
        numbers,
        (0..N_TRIALS).collect::<Vec<_>>(),
        "gaps or duplicates"
    );
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );

    let violations: Vec<String> = std::fs::read_dir(&markers)
        .expect("markers")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("violation-"))
        .collect();
    assert!(
        violations.is_empty(),
        "trials ran twice at once: {violations:?}"
    );

    // Each trial completed exactly once: one `trial_finished` entry per number,
    // complete; every start but the last was ended by a re-queue; and its program
    // ran to its end at least once and at most once per start (a kill after the
    // program wrote its marker but before the engine recorded the result runs it
    // again, which is the engine's promise: at least once, recorded once).
    let ledger = payloads(&project);
    let of_kind = |kind: &str, n: u64| -> Vec<&Value> {
        ledger
            .iter()
            .filter(|p| p["kind"] == kind && p["data"]["number"] == n)
            .collect()
    };
    for n in 0..N_TRIALS {
        let finished = of_kind("trial_finished", n);
        assert_eq!(finished.len(), 1, "trial {n} finished {finished:?}");
        assert_eq!(finished[0]["data"]["state"], "complete", "trial {n}");
        let starts = of_kind("trial_started", n).len();
        let requeues = of_kind("trial_requeued", n).len();
        assert_eq!(
            starts,
            requeues + 1,
            "trial {n}: {starts} starts but {requeues} re-queues"
        );
        let done = std::fs::read_to_string(markers.join(format!("done-{n}"))).unwrap_or_default();
        let runs = done.lines().count();
        assert!(
            (1..=starts).contains(&runs),
            "trial {n}: its program completed {runs} times in {starts} starts"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(5);
    while !survivors(&token).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        survivors(&token),
        Vec::<u32>::new(),
        "orphaned trial processes survived"
    );

    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    // The ledger says why trials were re-queued: the kills left running trials,
    // and each re-queue names the run that found its holder gone.
    let requeued: Vec<&Value> = ledger
        .iter()
        .filter(|p| p["kind"] == "trial_requeued")
        .collect();
    assert!(
        !requeued.is_empty(),
        "{kills} kills of a run with two busy workers re-queued nothing"
    );
    for entry in requeued {
        let reason = entry["data"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with("the run that held it is gone (its lock was free when run ")
                && reason.ends_with(" started)"),
            "{entry}"
        );
    }
}

/// Every ledger payload of the project's database, parsed.
fn payloads(project: &Project) -> Vec<Value> {
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    export
        .lines()
        .filter_map(|line| {
            let record: Value = serde_json::from_str(line).expect("JSON line");
            record["payload"]
                .as_str()
                .map(|p| serde_json::from_str(p).expect("payload JSON"))
        })
        .collect()
}

/// A project whose spec runs `edges.py` (the edge-case fixture) with the task
/// `env` of `MARKERS` (a folder, returned) and `TOKEN`.
fn edges_project(name: &str, space: &str, search: &str) -> (Project, PathBuf, PathBuf) {
    let project = Project::new();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edges.py");
    std::fs::copy(fixture, project.path().join("edges.py")).expect("fixture copied");
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let text = spec(
        name,
        space,
        search,
        &format!(
            "env = {{ MARKERS = \"{}\", TOKEN = \"firebreak-edges-{}\" }}",
            markers.display(),
            std::process::id()
        ),
    )
    .replace("\"trial.py\"", "\"edges.py\"");
    let path = project.spec("spec.toml", &text);
    (project, path, markers)
}

/// True when process `pid` is gone or a zombie (dead, not yet reaped).
fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

/// The daemons the fixture recorded in `markers`; dropping kills them, so that a
/// failing test leaves no 1000 s sleeper behind.
struct Daemons(PathBuf);

impl Daemons {
    fn pids(&self) -> Vec<i32> {
        std::fs::read_dir(&self.0)
            .expect("markers")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|text| text.trim().parse().ok())
            .collect()
    }

    /// Waits up to `within` for every recorded daemon to die; the ones alive.
    fn alive_after(&self, within: Duration) -> Vec<i32> {
        let deadline = Instant::now() + within;
        loop {
            let alive: Vec<i32> = self.pids().into_iter().filter(|p| !is_dead(*p)).collect();
            if alive.is_empty() || Instant::now() > deadline {
                return alive;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for pid in self.pids() {
            // SAFETY: kill has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// A trial program that leaves a daemon in a new session holding its stdout,
/// prints its result and exits: the trial is complete with that result at once
/// (not "timed out", not held for the daemon's 1000 s), and the daemon is dead.
#[test]
fn a_daemon_holding_stdout_holds_neither_the_trial_nor_the_run() {
    let (project, path, markers) = edges_project(
        "daemon",
        r#"x = { type = "float", low = 0.25, high = 0.25 }"#,
        "n_trials = 2\ntrial_timeout = 60",
    );
    let daemons = Daemons(markers);
    let started = Instant::now();
    let (code, stdout, stderr) =
        project.exec_within(30, &["run", path.to_str().expect("utf-8"), "--quiet"]);
    let took = started.elapsed();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(daemons.pids().len(), 2, "the fixture started its daemons");
    let trials = project.trials("daemon");
    assert_eq!(trials.len(), 2);
    for trial in &trials {
        assert_eq!(trial["state"], "complete", "{trial}");
        assert_eq!(trial["metrics"]["y"], 0.25, "{trial}");
        assert!(trial["error"].is_null(), "{trial}");
        let wall = trial["wall_seconds"].as_f64().expect("wall_seconds");
        assert!(wall < 5.0, "the trial took {wall} s: {trial}");
    }
    assert!(took < Duration::from_secs(20), "the run took {took:?}");
    assert_eq!(
        daemons.alive_after(Duration::from_secs(3)),
        Vec::<i32>::new(),
        "a trial's daemon outlived its trial"
    );
    assert_eq!(project.verify().0, 0);
}

/// SIGTERM to `run` while its trial (with such a daemon) runs ends the run within
/// the grace period, re-queues the trial, and kills the daemon.
#[test]
fn sigterm_ends_a_run_whose_trial_has_a_daemon_within_the_grace_period() {
    let (project, path, markers) = edges_project(
        "sigterm",
        r#"x = { type = "float", low = 0.5, high = 0.5 }"#,
        "n_trials = 1",
    );
    let text = std::fs::read_to_string(&path)
        .expect("spec")
        .replace("env = {", "env = { MODE = \"daemon_wait\",");
    std::fs::write(&path, text).expect("spec written");
    let daemons = Daemons(markers.clone());
    let mut run = project
        .command(&["run", path.to_str().expect("utf-8"), "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("started");
    let ready = markers.join("ready-0");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        if Instant::now() > deadline || run.try_wait().expect("polled").is_some() {
            let _ = run.kill();
            panic!("the trial never got ready");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill has no memory effects; the pid is our own child's.
    unsafe {
        libc::kill(run.id() as i32, libc::SIGTERM);
    }
    let signalled = Instant::now();
    let grace = firebreak_runner::GRACE_PERIOD;
    let status = loop {
        if let Some(status) = run.try_wait().expect("polled") {
            break status;
        }
        if signalled.elapsed() > grace {
            let _ = run.kill();
            let _ = run.wait();
            panic!("`firebreak run` still ran {grace:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "interrupted: {status:?}");
    assert_eq!(
        daemons.alive_after(Duration::from_secs(3)),
        Vec::<i32>::new(),
        "the trial's daemon outlived the run"
    );
    let trials = project.trials("sigterm");
    assert_eq!(trials.len(), 1);
    assert_eq!(trials[0]["state"], "queued", "re-queued: {}", trials[0]);
    let requeued: Vec<Value> = payloads(&project)
        .into_iter()
        .filter(|p| p["kind"] == "trial_requeued")
        .collect();
    assert_eq!(requeued.len(), 1, "{requeued:?}");
    assert!(
        requeued[0]["data"]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with(" was interrupted")),
        "{}",
        requeued[0]
    );
    assert_eq!(project.verify().0, 0);
}

/// Steps and metrics JSON cannot carry exactly, and non-finite results, fail
/// their trial with a reason that names the value as printed, and the ledger
/// verifies; the largest exact step is an ordinary report.
#[test]
fn numbers_json_cannot_carry_fail_their_trial_and_the_ledger_verifies() {
    let modes = [
        "step_2p53_plus_1",
        "step_u64_max",
        "step_2p53",
        "metric_2p53_plus_1",
        "final_inf",
        "candidate_neg_inf",
    ];
    let choices = modes.map(|m| format!("\"{m}\"")).join(", ");
    let (project, path, _markers) = edges_project(
        "numbers",
        &format!(
            "mode = {{ type = \"categorical\", choices = [{choices}] }}\n\
             x = {{ type = \"int\", low = 2, high = 2 }}"
        ),
        &format!("sampler = \"grid\"\nn_trials = {}", modes.len()),
    );
    let (code, stdout, stderr) =
        project.exec_within(120, &["run", path.to_str().expect("utf-8"), "--quiet"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("numbers");
    let by_mode = |mode: &str| -> &Value {
        trials
            .iter()
            .find(|t| t["params"]["mode"] == mode)
            .unwrap_or_else(|| panic!("no trial ran {mode}: {trials:?}"))
    };
    let failed = |mode: &str, reason: &str| {
        let trial = by_mode(mode);
        assert_eq!(trial["state"], "failed", "{mode}: {trial}");
        let error = trial["error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(reason),
            "{mode}: {error:?} lacks {reason:?}"
        );
        assert!(error.contains("; hint: "), "{mode}: {error:?}");
        assert_eq!(
            trial["intermediate"],
            serde_json::json!([]),
            "{mode}: {trial}"
        );
    };
    failed(
        "step_2p53_plus_1",
        "reported step 9007199254740993, above 2^53 = 9007199254740992",
    );
    failed(
        "step_u64_max",
        "reported step 18446744073709551615, above 2^53 = 9007199254740992",
    );
    failed(
        "metric_2p53_plus_1",
        "reported y = 9007199254740993, an integer beyond ±2^53",
    );
    failed(
        "final_inf",
        "reported y = Infinity, which is not a finite number",
    );
    failed(
        "candidate_neg_inf",
        "reported y = -inf, which is not a finite number",
    );
    let exact = by_mode("step_2p53");
    assert_eq!(exact["state"], "complete", "{exact}");
    assert_eq!(exact["metrics"]["y"], 2.0, "{exact}");
    assert_eq!(
        exact["intermediate"][0]["step"],
        serde_json::json!(9_007_199_254_740_992_u64),
        "{exact}"
    );
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}

//! Many workers on one campaign through a shared store (`contract.md`, *Many
//! machines*), on SQLite and on a throwaway PostgreSQL (`firebreak-pgtest`):
//! real `firebreak worker` processes killed with SIGKILL at random, a worker
//! paused past its lease, a tripwire one worker trips halting the others, and
//! an approved spec change reaching running workers.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Project;

/// The tests here run one at a time: each starts several worker processes on
/// 2 cores, and a worker starved of CPU for longer than its lease loses its
/// trial (correctly, but the counts below assume it does not).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn slow_spec(name: &str, n_trials: u32, token: &str, markers: &Path, extra: &str) -> String {
    format!(
        r#"[campaign]
name = "{name}"
seed = 5

[objective]
metric = "y"
direction = "minimize"

[space]
x = {{ type = "float", low = 0.0, high = 1.0 }}

[search]
sampler = "random"
n_trials = {n_trials}
parallelism = 1

[task]
kind = "command"
command = ["python3", "trial.py"]
env = {{ MODE = "slow", MARKERS = "{}", TOKEN = "{token}" }}
{extra}
"#,
        markers.display()
    )
}

/// `firebreak` against `storage`, in the project's folder.
fn firebreak(project: &Project, storage: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_firebreak"));
    command
        .args(["--storage", storage, "--quiet"])
        .args(args)
        .current_dir(project.path())
        .env("FIREBREAK_ENGINE_KEY", project.engine_key())
        .env_remove("FIREBREAK_STORAGE")
        .env_remove("FIREBREAK_TRIALS_ROOT");
    command
}

fn spawn(project: &Project, storage: &str, args: &[&str]) -> Child {
    firebreak(project, storage, args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("firebreak started")
}

fn output(project: &Project, storage: &str, args: &[&str]) -> (i32, String, String) {
    let out = firebreak(project, storage, args).output().expect("ran");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn trials(project: &Project, storage: &str, campaign: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) =
        output(project, storage, &["--format", "json", "trials", campaign]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("trials JSON")
}

/// Ledger entries of `kind`, from `audit export`.
fn entries(project: &Project, storage: &str, kind: &str) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = output(project, storage, &["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    common::entry_payloads(&stdout)
        .into_iter()
        .filter(|p| p["kind"] == kind)
        .map(|p| p["data"].clone())
        .collect()
}

/// Waits until `run` has created the campaign and started a trial.
fn wait_for_campaign(project: &Project, storage: &str, campaign: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, _) = output(project, storage, &["--format", "json", "trials", campaign]);
        if code == 0
            && serde_json::from_str::<Vec<serde_json::Value>>(&stdout).is_ok_and(|t| !t.is_empty())
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "campaign {campaign} never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Creates campaign `campaign` from the spec at `path` with `run`, then
/// interrupts that run once a trial started: only workers go on with it.
fn create_then_interrupt(project: &Project, storage: &str, path: &Path, campaign: &str) {
    let mut creator = spawn(project, storage, &["run", path.to_str().expect("utf-8")]);
    wait_for_campaign(project, storage, campaign);
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(creator.id() as i32, libc::SIGINT) };
    let _ = creator.wait();
}

fn wait_all(children: &mut [Child], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    children
        .iter_mut()
        .map(|child| {
            loop {
                if let Some(status) = child.try_wait().expect("wait") {
                    break status.code().unwrap_or(-1);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("a worker did not finish within {within:?}");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .collect()
}

/// The issue's fault test: `n` short trials, four workers, `kills` SIGKILLs of
/// random workers (each replaced at once). Exactly `n` trials finish, numbered
/// 0..n, each finished once in the ledger, none ran twice at once (the trial
/// program checks), no orphaned trial process, and the audit passes.
fn random_kills(storage: &str, n: u32, kills: u32) {
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let token = format!("kills-{}-{n}", std::process::id());
    let path = project.spec("spec.toml", &slow_spec("k", n, &token, &markers, ""));
    // `run` creates the campaign and is one worker; four joined workers beside it.
    let mut runner = spawn(&project, storage, &["run", path.to_str().expect("utf-8")]);
    wait_for_campaign(&project, storage, "k");
    let worker = ["worker", "--campaign", "k", "--lease", "3s"];
    let mut workers: Vec<Child> = (0..4).map(|_| spawn(&project, storage, &worker)).collect();
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(n);
    let mut killed = Vec::new();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(400));
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let i = (rng % workers.len() as u64) as usize;
        let mut victim = std::mem::replace(&mut workers[i], spawn(&project, storage, &worker));
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(victim.id() as i32, libc::SIGKILL) };
        let _ = victim.wait();
        killed.push(victim);
    }
    let codes = wait_all(&mut workers, Duration::from_secs(240));
    assert!(codes.iter().all(|c| *c == 0), "workers exited {codes:?}");
    let run_code = wait_all(std::slice::from_mut(&mut runner), Duration::from_secs(60));
    assert_eq!(run_code, [0]);

    let trials = trials(&project, storage, "k");
    let numbers: Vec<u64> = trials
        .iter()
        .map(|t| t["number"].as_u64().expect("number"))
        .collect();
    assert_eq!(numbers, (0..u64::from(n)).collect::<Vec<_>>());
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    let mut finished: BTreeMap<u64, usize> = BTreeMap::new();
    for e in entries(&project, storage, "trial_finished") {
        *finished
            .entry(e["number"].as_u64().expect("number"))
            .or_default() += 1;
    }
    assert!(finished.values().all(|c| *c == 1), "{finished:?}");
    assert_eq!(finished.len(), n as usize);
    // Each re-queue is a killed worker's trial, or a live worker's whose lease
    // ran out (then its late result is refused and ledgered).
    let requeued = entries(&project, storage, "trial_requeued");
    let refused = entries(&project, storage, "denied")
        .into_iter()
        .filter(|e| e["action"] == "finish_trial")
        .count();
    assert!(requeued.len() <= kills as usize + refused, "{requeued:?}");
    assert!(
        requeued.iter().all(|e| e["reason"] == "lease expired"),
        "{requeued:?}"
    );
    let violations = common::violations(&markers);
    assert!(violations.is_empty(), "{violations:?}");
    let orphans = Command::new("pgrep")
        .args(["-f", &token])
        .output()
        .expect("pgrep");
    assert!(
        orphans.stdout.is_empty(),
        "orphaned trial processes: {orphans:?}"
    );
    let (code, stdout, stderr) = output(&project, storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn killed_workers_lose_nothing_and_repeat_nothing_on_sqlite() {
    let _serial = serial();
    let project = Project::new();
    random_kills(&project.storage(), 60, 6);
}

#[test]
fn killed_workers_lose_nothing_and_repeat_nothing_on_postgres() {
    let _serial = serial();
    random_kills(&common::fresh_postgres(), 200, 20);
}

/// A worker paused (SIGSTOP) for longer than its lease loses its trial to
/// another worker; when it wakes, its late result is refused and ledgered,
/// and the trial counts once.
#[test]
fn a_paused_workers_late_result_is_refused_and_ledgered() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let spec =
        slow_spec("p", 3, "paused", &markers, "").replace("MODE = \"slow\"", "MODE = \"steps\"");
    let path = project.spec("spec.toml", &spec);
    // A `run` creates the campaign and is interrupted at once (its trial is
    // re-queued); then only workers run it.
    let worker = ["worker", "--campaign", "p", "--lease", "1s", "--slots", "1"];
    create_then_interrupt(&project, &storage, &path, "p");
    let mut paused = spawn(&project, &storage, &worker);
    let deadline = Instant::now() + Duration::from_secs(30);
    let held = loop {
        let running: Vec<u64> = trials(&project, &storage, "p")
            .iter()
            .filter(|t| t["state"] == "running")
            .filter_map(|t| t["number"].as_u64())
            .collect();
        if let Some(n) = running.first() {
            break *n;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never started a trial"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signals to our own child.
    unsafe { libc::kill(paused.id() as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_secs(3));
    let mut other = spawn(&project, &storage, &worker);
    let codes = wait_all(std::slice::from_mut(&mut other), Duration::from_secs(60));
    assert_eq!(codes, [0]);
    // SAFETY: as above.
    unsafe { libc::kill(paused.id() as i32, libc::SIGCONT) };
    let codes = wait_all(std::slice::from_mut(&mut paused), Duration::from_secs(60));
    assert_eq!(codes, [0]);
    let trials = trials(&project, &storage, "p");
    assert_eq!(trials.len(), 3, "{trials:?}");
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    let requeued: Vec<_> = entries(&project, &storage, "trial_requeued")
        .into_iter()
        .filter(|e| e["reason"] == "lease expired")
        .collect();
    assert_eq!(requeued.len(), 1, "{requeued:?}");
    assert_eq!(requeued[0]["number"].as_u64(), Some(held));
    let finished = entries(&project, &storage, "trial_finished");
    let held_finishes = finished
        .iter()
        .filter(|e| e["number"].as_u64() == Some(held))
        .count();
    assert_eq!(held_finishes, 1);
    let refused: Vec<_> = entries(&project, &storage, "denied")
        .into_iter()
        .filter(|e| e["action"] == "finish_trial")
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&format!("no longer holds trial {held}"))),
        "{refused:?}"
    );
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A tripwire tripped by one worker's trial halts the campaign for every
/// worker: none starts a trial after the trip is ledgered and its lease
/// heartbeat has passed, and each exits 3.
#[test]
fn a_trip_in_one_worker_halts_every_worker() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let (_, alice) = common::key(&project, "alice");
    let governance = common::approvers(
        &[("alice", &alice)],
        1,
        "[[governance.tripwires]]\nkind = \"threshold\"\nmetric = \"y\"\nbelow = 0.3",
    );
    let spec = slow_spec("t", 200, "tripped", &markers, &governance);
    let path = project.spec("spec.toml", &spec);
    let mut runner = spawn(&project, &storage, &["run", path.to_str().expect("utf-8")]);
    wait_for_campaign(&project, &storage, "t");
    let worker = ["worker", "--campaign", "t", "--lease", "1s"];
    let mut workers: Vec<Child> = (0..3).map(|_| spawn(&project, &storage, &worker)).collect();
    let codes = wait_all(&mut workers, Duration::from_secs(120));
    assert!(codes.iter().all(|c| *c == 3), "workers exited {codes:?}");
    assert_eq!(
        wait_all(std::slice::from_mut(&mut runner), Duration::from_secs(60)),
        [3]
    );
    let trip = entries(&project, &storage, "request_filed");
    assert_eq!(trip.len(), 1, "{trip:?}");
    let trials = trials(&project, &storage, "t");
    assert!(
        trials.len() < 200,
        "the campaign ran to the end: {}",
        trials.len()
    );
    // Nothing is left running, and no trial started more than a heartbeat
    // (a third of the 1 s lease) plus one trial's length after the trip.
    assert!(trials.iter().all(|t| t["state"] != "running"), "{trials:?}");
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// PostgreSQL restarted mid-campaign (`pg_ctl restart -m immediate`: every
/// connection cut): the workers join again with backoff, the trials the old
/// runs held come back by lease, and each of the 40 trials finishes once.
#[test]
fn workers_ride_out_a_postgres_restart() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let token = format!("restart-{}", std::process::id());
    let path = project.spec("spec.toml", &slow_spec("r", 40, &token, &markers, ""));
    create_then_interrupt(&project, &storage, &path, "r");
    let worker = ["worker", "--campaign", "r", "--lease", "2s"];
    let mut workers: Vec<Child> = (0..3).map(|_| spawn(&project, &storage, &worker)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, stdout, _) = output(&project, &storage, &["--format", "json", "trials", "r"]);
        let complete = serde_json::from_str::<Vec<serde_json::Value>>(&stdout)
            .map(|t| t.iter().filter(|t| t["state"] == "complete").count())
            .unwrap_or(0);
        if code == 0 && complete >= 8 {
            break;
        }
        assert!(Instant::now() < deadline, "no progress before the restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    firebreak_pgtest::restart();
    let codes = wait_all(&mut workers, Duration::from_secs(180));
    assert!(codes.iter().all(|c| *c == 0), "workers exited {codes:?}");
    let trials = trials(&project, &storage, "r");
    let numbers: Vec<u64> = trials.iter().filter_map(|t| t["number"].as_u64()).collect();
    assert_eq!(numbers, (0..40).collect::<Vec<_>>());
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    let finished = entries(&project, &storage, "trial_finished");
    assert_eq!(finished.len(), 40);
    let violations = common::violations(&markers);
    assert!(violations.is_empty(), "{violations:?}");
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// An approved change of the spec in effect reaches workers that are running:
/// at their next heartbeat they stop starting trials under the old spec, end
/// their run (`spec changed`) and join again under the new one. Here `n_trials`
/// goes from 40 to 60 while two workers run; without the change they would stop
/// at 40.
#[test]
fn running_workers_take_an_approved_spec_change() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let markers = project.path().join("markers");
    std::fs::create_dir_all(&markers).expect("markers");
    let (alice_key, alice) = common::key(&project, "alice");
    let governance = common::approvers(&[("alice", &alice)], 1, "");
    let token = format!("spec-{}", std::process::id());
    let text = |n| slow_spec("s", n, &token, &markers, &governance);
    let spec = project.spec("spec.toml", &text(40));
    create_then_interrupt(&project, &storage, &spec, "s");
    let path = spec.to_str().expect("utf-8");
    let worker = ["worker", "--campaign", "s", "--lease", "1s"];
    let mut workers: Vec<Child> = (0..2).map(|_| spawn(&project, &storage, &worker)).collect();
    // The edit files a budget request; the run that filed it works on within
    // the approved limits, beside the workers.
    project.spec("spec.toml", &text(60));
    let mut editor = spawn(&project, &storage, &["run", path]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let request = loop {
        let (code, stdout, _) = output(&project, &storage, &["--format", "json", "requests"]);
        let pending = serde_json::from_str::<Vec<serde_json::Value>>(&stdout)
            .ok()
            .and_then(|r| r.into_iter().find(|r| r["state"] == "pending"));
        if code == 0
            && let Some(request) = pending
        {
            break request["id"].as_str().expect("id").to_string();
        }
        assert!(Instant::now() < deadline, "no request was filed");
        std::thread::sleep(Duration::from_millis(50));
    };
    let (code, _, stderr) = output(
        &project,
        &storage,
        &["approve", &request, "--key", &alice_key],
    );
    assert_eq!(code, 0, "{stderr}");
    let before = trials(&project, &storage, "s").len();
    assert!(
        before < 40,
        "the old budget ran out before the approval: {before}"
    );
    let codes = wait_all(&mut workers, Duration::from_secs(180));
    assert!(codes.iter().all(|c| *c == 0), "workers exited {codes:?}");
    wait_all(std::slice::from_mut(&mut editor), Duration::from_secs(60));
    let trials = trials(&project, &storage, "s");
    let numbers: Vec<u64> = trials.iter().filter_map(|t| t["number"].as_u64()).collect();
    assert_eq!(numbers, (0..60).collect::<Vec<_>>());
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    let rejoined = entries(&project, &storage, "run_ended")
        .into_iter()
        .filter(|e| e["reason"] == "spec changed")
        .count();
    assert!(rejoined >= 1, "no worker joined again");
    let violations = common::violations(&markers);
    assert!(violations.is_empty(), "{violations:?}");
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// A scheduler decides from every machine's reports: the median rule stops a
/// trial by the complete trials of the whole campaign, which a worker knows
/// only from the store. Three workers, `y = x` at every step; each stop must
/// have had `min_trials` complete trials in the ledger before it, and at least
/// one stop came from a worker that had not finished that many itself.
#[test]
fn the_median_rule_decides_from_every_workers_reports() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let spec = r#"[campaign]
name = "m"
seed = 11

[objective]
metric = "y"
direction = "minimize"

[space]
x = { type = "float", low = 0.0, high = 1.0 }

[search]
sampler = "random"
scheduler = "median"
n_trials = 18
parallelism = 1
[search.scheduler_options]
min_trials = 3
min_steps = 1

[task]
kind = "command"
command = ["python3", "trial.py"]
env = { MODE = "steps" }
"#;
    let path = project.spec("spec.toml", spec);
    create_then_interrupt(&project, &storage, &path, "m");
    let worker = ["worker", "--campaign", "m", "--lease", "3s"];
    let mut workers: Vec<Child> = (0..3).map(|_| spawn(&project, &storage, &worker)).collect();
    // Workers hold no lock; `campaigns` shows them by their leases.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stdout, _) = output(&project, &storage, &["--format", "json", "campaigns"]);
        let state = serde_json::from_str::<serde_json::Value>(&stdout)
            .ok()
            .and_then(|c| c[0]["state"].as_str().map(str::to_string))
            .unwrap_or_default();
        if state.starts_with("running (3 workers holding a lease: ") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "campaigns never showed the workers: {state}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let codes = wait_all(&mut workers, Duration::from_secs(180));
    assert!(codes.iter().all(|c| *c == 0), "workers exited {codes:?}");
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    // Walk the ledger in order: who runs each trial, and what was complete when.
    let mut run_of: BTreeMap<u64, u64> = BTreeMap::new();
    let mut complete: Vec<(u64, u64)> = Vec::new(); // (number, run)
    let mut stops = 0;
    let mut relied_on_others = false;
    for entry in common::entry_payloads(&stdout) {
        let data = &entry["data"];
        match entry["kind"].as_str() {
            Some("trial_started") => {
                run_of.insert(
                    data["number"].as_u64().expect("n"),
                    data["run"].as_u64().expect("run"),
                );
            }
            Some("trial_finished") => {
                let number = data["number"].as_u64().expect("n");
                let run = run_of[&number];
                match data["state"].as_str() {
                    Some("complete") => complete.push((number, run)),
                    Some("pruned") => {
                        stops += 1;
                        assert!(
                            complete.len() >= 3,
                            "trial {number} stopped with {} complete",
                            complete.len()
                        );
                        let own = complete.iter().filter(|(_, r)| *r == run).count();
                        relied_on_others |= own < 3;
                    }
                    other => panic!("trial {number} ended {other:?}"),
                }
            }
            _ => {}
        }
    }
    assert!(stops > 0, "the median rule stopped nothing");
    assert!(
        relied_on_others,
        "every stop could have come from the worker's own trials"
    );
    let trials = trials(&project, &storage, "m");
    let numbers: Vec<u64> = trials.iter().filter_map(|t| t["number"].as_u64()).collect();
    assert_eq!(numbers, (0..18).collect::<Vec<_>>());
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// PBT across workers with one shared trials folder (`FIREBREAK_TRIALS_ROOT`):
/// the store numbers each replacement, whoever starts it copies the donor's
/// checkpoint into it and it resumes from there (its log and its first
/// report's step say from which epoch), and the ledger verifies. The example
/// campaign (`examples/pbt.toml`) on three workers.
#[test]
fn pbt_hands_checkpoints_over_between_workers() {
    let _serial = serial();
    let storage = common::fresh_postgres();
    let project = Project::new();
    let shared = project.path().join("shared");
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let spec = std::fs::read_to_string(examples.join("pbt.toml"))
        .expect("example")
        .replace(
            "digits/train.py",
            &examples.join("digits/train.py").display().to_string(),
        )
        .replace("n_trials = 12", "n_trials = 24");
    let path = project.spec("pbt.toml", &spec);
    let root = |mut c: Command| {
        c.env("FIREBREAK_TRIALS_ROOT", &shared);
        c
    };
    let mut creator = root(firebreak(
        &project,
        &storage,
        &["run", path.to_str().expect("utf-8")],
    ))
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .expect("run started");
    wait_for_campaign(&project, &storage, "digits-pbt");
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(creator.id() as i32, libc::SIGINT) };
    let _ = creator.wait();
    let worker = [
        "worker",
        "--campaign",
        "digits-pbt",
        "--slots",
        "2",
        "--lease",
        "5s",
    ];
    let mut workers: Vec<Child> = (0..3)
        .map(|_| {
            root(firebreak(&project, &storage, &worker))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("worker started")
        })
        .collect();
    let codes = wait_all(&mut workers, Duration::from_secs(300));
    assert!(codes.iter().all(|c| *c == 0), "workers exited {codes:?}");
    // Each number once (the interrupted run may leave a gap: its starts run in
    // parallel), and exactly n_trials finished.
    let trials: BTreeMap<u64, serde_json::Value> = trials(&project, &storage, "digits-pbt")
        .into_iter()
        .map(|t| (t["number"].as_u64().expect("number"), t))
        .collect();
    let finished = trials
        .values()
        .filter(|t| !matches!(t["state"].as_str(), Some("queued" | "running")))
        .count();
    assert_eq!(finished, 24);
    let exploits: Vec<serde_json::Value> = entries(&project, &storage, "trial_proposed")
        .into_iter()
        .filter(|d| d.get("exploit").is_some())
        .collect();
    let mut resumed = 0;
    for data in &exploits {
        let number = data["number"].as_u64().expect("number");
        let trial = &trials[&number];
        if trial["state"] == "queued" {
            continue; // queued past the budget: never started
        }
        resumed += 1;
        let (code, log, _) = output(
            &project,
            &storage,
            &["logs", "digits-pbt", &number.to_string()],
        );
        assert_eq!(code, 0);
        common::assert_resumed(number, &log, trial);
    }
    assert!(resumed > 0, "no replacement started: {exploits:?}");
    // One folder per database in the shared root, holding the campaign's trials.
    let held: Vec<_> = std::fs::read_dir(&shared)
        .expect("shared folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    assert!(
        held.len() == 1 && held[0].join("digits-pbt").is_dir(),
        "{held:?}"
    );
    let (code, stdout, stderr) = output(&project, &storage, &["audit", "verify"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

/// `FIREBREAK_TRIALS_ROOT` (a folder workers on several machines share) takes
/// the trial folders, one per database (`<root>/<database>.trials`), instead of
/// the folder next to the database.
#[test]
fn trial_folders_go_under_the_shared_trials_root() {
    let project = Project::new();
    let shared = project.path().join("shared");
    let spec = slow_spec("t", 2, "root", &project.path().join("markers"), "")
        .replace("MODE = \"slow\"", "MODE = \"ok\"");
    let path = project.spec("spec.toml", &spec);
    let out = firebreak(
        &project,
        &project.storage(),
        &["run", path.to_str().expect("utf-8")],
    )
    .env("FIREBREAK_TRIALS_ROOT", &shared)
    .output()
    .expect("ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for number in ["0", "1"] {
        let folder = shared
            .join("firebreak.db.trials/t")
            .join(number)
            .join("work");
        assert!(folder.is_dir(), "{} is missing", folder.display());
    }
    assert!(!project.path().join("db/firebreak.db.trials").exists());
}

//! End-to-end tests of the `firebreak` binary: the trial protocol, scheduling,
//! retries, resume rules, exit codes and the ledger audit, on real processes and a
//! real SQLite file.

mod common;

use common::{Project, spec};
use serde_json::Value;

fn states(trials: &[Value]) -> Vec<(String, String)> {
    trials
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap_or_default().to_string(),
                t["error"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The process of a trial that printed `PID n` (fixture mode `steps`) no longer exists.
fn assert_process_gone(project: &Project, campaign: &str, number: &str) {
    let (_, log, _) = project.exec(&["logs", campaign, number]);
    let pid = log
        .lines()
        .find_map(|l| l.strip_prefix("PID "))
        .expect("pid line");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "trial {number} of {campaign} still runs"
    );
}

#[test]
fn failing_hanging_crashing_and_nan_trials_are_data() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "modes",
            r#"mode = { type = "categorical", choices = ["ok", "fail", "hang", "crash", "nan", "noresult"] }
x = { type = "int", low = 2, high = 2 }"#,
            "sampler = \"grid\"\nn_trials = 6\nparallelism = 3\ntrial_timeout = 2",
            "",
        ),
    );
    let (code, stdout, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("modes");
    let got = states(&trials);
    // The grid proposes the modes in order; with one worker per trial number.
    let expect = |i: usize, state: &str, error: &str| {
        assert_eq!(got[i].0, state, "trial {i}: {:?}", got[i]);
        assert!(
            got[i].1.contains(error),
            "trial {i}: {:?} lacks {error:?}",
            got[i]
        );
    };
    expect(0, "complete", "");
    expect(1, "failed", "exited with status 3; last log line: boom");
    expect(2, "failed", "timed out after 2s");
    expect(3, "failed", "killed by signal 11 (SIGSEGV)");
    expect(4, "failed", "reported y = NaN");
    expect(5, "failed", "finished without reporting y");
    let modes: Vec<&str> = trials
        .iter()
        .map(|t| t["params"]["mode"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(modes, ["ok", "fail", "hang", "crash", "nan", "noresult"]);
    assert_eq!(trials[0]["metrics"]["y"], 2.0);
    assert_eq!(trials[0]["params"]["x"], 2, "ints stay integers");
    assert!(trials[0]["cpu_seconds"].as_f64().is_some());
    assert_eq!(project.verify().0, 0);
}

#[test]
fn the_trial_protocol_environment_and_placeholders() {
    let project = Project::new();
    let text = r#"[campaign]
name = "env"
seed = 11
[objective]
metric = "y"
direction = "minimize"
[space]
x = { type = "float", low = 0.5, high = 0.5 }
kind = { type = "categorical", choices = ["plain", "deep"] }
width = { type = "int", low = 4, high = 4, when = { kind = "deep" } }
[search]
sampler = "grid"
n_trials = 1
[task]
kind = "command"
command = ["python3", "trial.py", "--x={x}", "--width={width}", "{kind}", "{trial_number}"]
env = { MODE = "ok", EXTRA = "yes" }
"#;
    let path = project.spec("spec.toml", text);
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let (_, log, _) = project.exec(&["logs", "env", "0"]);
    let line = |prefix: &str| -> Value {
        let text = log
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in {log}"));
        serde_json::from_str(text).expect("JSON")
    };
    // The inactive `width` drops its whole argument.
    assert_eq!(line("ARGS "), serde_json::json!(["--x=0.5", "plain", "0"]));
    let env = line("ENV ");
    assert_eq!(env["FIREBREAK_PARAM_X"], "0.5");
    assert_eq!(env["FIREBREAK_PARAM_KIND"], "plain");
    assert!(env.get("FIREBREAK_PARAM_WIDTH").is_none());
    assert_eq!(env["FIREBREAK_TRIAL_NUMBER"], "0");
    assert_eq!(env["FIREBREAK_CAMPAIGN"], "env");
    assert!(
        env["FIREBREAK_SEED"]
            .as_str()
            .expect("seed")
            .parse::<u64>()
            .is_ok()
    );
    assert!(env.get("FIREBREAK_RESUME_FROM").is_none());
    for key in ["FIREBREAK_TRIAL_DIR", "FIREBREAK_CHECKPOINT_DIR"] {
        assert!(
            std::path::Path::new(env[key].as_str().expect("path")).is_dir(),
            "{key}"
        );
    }
    assert_eq!(
        line("PARAMS "),
        serde_json::json!({"kind": "plain", "x": 0.5})
    );
    // JSON report lines stay out of the log.
    assert!(!log.contains("\"final\""));
}

#[test]
fn median_stopping_prunes_and_the_process_is_gone() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "prune",
            r#"x = { type = "int", low = 0, high = 4 }"#,
            "sampler = \"grid\"\nscheduler = \"median\"\nn_trials = 5\n[search.scheduler_options]\nmin_trials = 2\nmin_steps = 1",
            "env = { MODE = \"steps\" }",
        ),
    );
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let trials = project.trials("prune");
    let got: Vec<&str> = trials
        .iter()
        .map(|t| t["state"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, ["complete", "complete", "pruned", "pruned", "pruned"]);
    assert!(
        trials[2]["error"]
            .as_str()
            .unwrap_or_default()
            .starts_with("median stopping at step 1")
    );
    // Pruned at step 1: the program was stopped long before its 29 steps.
    assert!(trials[2]["intermediate"].as_array().expect("reports").len() < 10);
    for number in ["2", "3", "4"] {
        assert_process_gone(&project, "prune", number);
    }
    assert_eq!(project.verify().0, 0);
}

#[test]
fn failed_trials_are_retried_with_a_link() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "retry",
            r#"x = { type = "int", low = 1, high = 1 }"#,
            "n_trials = 2\nretries = 1",
            "env = { MODE = \"fail\" }",
        ),
    );
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    // Every trial failed: exit 1 with the most common reason.
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("every trial failed (2 of 2)") && stderr.contains("boom"),
        "{stderr}"
    );
    let trials = project.trials("retry");
    assert_eq!(trials.len(), 2, "n_trials counts every retry");
    assert_eq!(trials[1]["proposer"], "retry");
    assert_eq!(trials[1]["retry_of"], 0);
    assert_eq!(trials[1]["params"], trials[0]["params"]);
    assert!(
        trials[1]["rationale"]
            .as_str()
            .unwrap_or_default()
            .starts_with("retry 1 of 1 for trial 0")
    );
}

#[test]
fn a_changed_spec_is_refused_but_the_description_may_change() {
    let project = Project::new();
    let base = spec(
        "change",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "n_trials = 2",
        "env = { MODE = \"ok\" }",
    );
    let path = project.spec("spec.toml", &base);
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec(&["run", path]).0, 0);
    project.spec("spec.toml", &base.replace("n_trials = 2", "n_trials = 3"));
    let (code, _, stderr) = project.exec(&["run", path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/search/n_trials: 2 -> 3"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    project.spec(
        "spec.toml",
        &base.replace("seed = 3", "seed = 3\ndescription = \"now described\""),
    );
    let (code, _, stderr) = project.exec(&["run", path]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn exit_codes_and_messages() {
    let project = Project::new();
    let bad = project.spec("bad.toml", "[campaign]\nname = \"x\"\nsed = 1\n");
    let (code, _, stderr) = project.exec(&["validate", bad.to_str().expect("utf-8")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("bad.toml:3:1: `campaign.sed`: unknown key `sed`"),
        "{stderr}"
    );
    let (code, _, stderr) = project.exec(&["validate", "missing.toml"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = project.exec(&["status", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no firebreak database at"), "{stderr}");

    let failing = project.spec(
        "fail.toml",
        &spec(
            "nothing",
            r#"x = { type = "int", low = 1, high = 1 }"#,
            "n_trials = 1",
            "env = { MODE = \"fail\" }",
        ),
    );
    assert_eq!(
        project.exec(&["run", failing.to_str().expect("utf-8")]).0,
        1
    );
    let (code, _, stderr) = project.exec(&["status", "nope"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no campaign named \"nope\""), "{stderr}");
    let (code, _, stderr) = project.exec(&["best", "nothing"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no complete trial yet"), "{stderr}");

    let limited = project.spec(
        "limit.toml",
        &spec(
            "limited",
            r#"x = { type = "int", low = 1, high = 1 }"#,
            "n_trials = 50",
            "env = { MODE = \"steps\" }\n[constraints]\nmax_wall_time = 1",
        ),
    );
    let (code, _, stderr) = project.exec(&["run", limited.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("max_wall_time 1s reached"), "{stderr}");
    let (_, stdout, _) = project.exec(&["status", "limited"]);
    assert!(stdout.contains("halted (limit: max_wall_time"), "{stdout}");
}

#[test]
fn people_enqueue_configurations_that_are_checked() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "queue",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 2",
            // The campaign exists, with room for trials no run has started yet.
            "env = { MODE = \"ok\" }\n\n[constraints]\nmax_wall_time = \"0s\"",
        ),
    );
    assert_eq!(project.exec(&["run", path.to_str().expect("utf-8")]).0, 3);
    let (code, _, stderr) = project.exec(&["enqueue", "queue", "--params", r#"{"x": 7}"#]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("value 7.0 is outside its distribution"),
        "{stderr}"
    );
    let (code, stdout, stderr) = project.exec(&["enqueue", "queue", "--params", r#"{"x": 1}"#]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("queued trial 0"), "{stdout}");
    let trials = project.trials("queue");
    assert_eq!(
        (trials[0]["state"].as_str(), trials[0]["proposer"].as_str()),
        (Some("queued"), Some("enqueued"))
    );
    assert_eq!(trials[0]["params"]["x"], 1.0);
    assert_eq!(project.verify().0, 0);
}

#[test]
fn one_live_run_per_campaign_and_interrupts_requeue() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "live",
            r#"x = { type = "int", low = 1, high = 1 }"#,
            "n_trials = 1",
            "env = { MODE = \"hang\" }",
        ),
    );
    let path = path.to_str().expect("utf-8");
    let mut first = project
        .command(&["run", path])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, stdout, _) = project.exec(&["status", "live"]);
        if stdout.contains("running (run 1")
            && project
                .trials("live")
                .first()
                .is_some_and(|t| t["state"] == "running")
        {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = first.kill();
            let output = first.wait_with_output().expect("first run");
            panic!(
                "the first run never started: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, _, stderr) = project.exec(&["run", path]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is being run by another process (run 1, pid"),
        "{stderr}"
    );
    // Ctrl-C: the running trial goes back to the queue with its number.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let status = first.wait().expect("waited");
    assert_eq!(status.code(), Some(130));
    let trials = project.trials("live");
    assert_eq!(
        (trials.len(), trials[0]["state"].as_str()),
        (1, Some("queued"))
    );
    assert_eq!(project.verify().0, 0);
}

#[test]
fn init_writes_a_valid_spec_and_the_main_job_validates() {
    let project = Project::new();
    let (code, _, stderr) = project.exec(&["init", "new.toml"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = project.exec(&["validate", "new.toml"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("campaign \"digits-mlp\" is valid"),
        "{stdout}"
    );
    assert_eq!(
        project.exec(&["init", "new.toml"]).0,
        2,
        "init never overwrites"
    );
    // The campaign runs as generated: its trial program is written beside it.
    assert!(project.path().join("train.py").exists());
    let (code, stdout, stderr) = project.exec_within(300, &["run", "new.toml"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("digits-mlp");
    assert_eq!(trials.len(), 20);
    assert!(
        trials.iter().all(|t| t["state"] != "failed"),
        "{:?}",
        trials.iter().map(|t| &t["error"]).collect::<Vec<_>>()
    );
    let main_job =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits.toml");
    let (code, _, stderr) = project.exec(&["validate", main_job.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_table_campaign_runs_end_to_end() {
    let project = Project::new();
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let text = std::fs::read_to_string(examples.join("nasbench201.toml"))
        .expect("example")
        .replace(
            "tables/nasbench201-cifar10.csv",
            examples
                .join("tables/nasbench201-cifar10.csv")
                .to_str()
                .expect("utf-8"),
        )
        .replace("n_trials = 200", "n_trials = 40");
    let path = project.spec("nas.toml", &text);
    let (code, stdout, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let trials = project.trials("nasbench201-evolution");
    assert_eq!(trials.len(), 40);
    assert!(trials.iter().all(|t| t["state"] == "complete"));
    let evolved = trials
        .iter()
        .filter(|t| {
            t["rationale"]
                .as_str()
                .unwrap_or_default()
                .starts_with("evolution: parent trial")
        })
        .count();
    assert!(evolved >= 25, "{evolved} evolved trials");
    assert_eq!(project.verify().0, 0);
    // A table that does not fit the space is a spec-level error.
    let broken = project.spec("broken.toml", &text.replace("op5 = {", "op9 = {"));
    let (code, _, stderr) = project.exec(&["validate", broken.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("column `op5` is not a parameter of [space]"),
        "{stderr}"
    );
}

#[test]
fn asha_stops_command_trials_at_their_rungs() {
    let project = Project::new();
    let text = spec(
        "asha",
        r#"x = { type = "int", low = 0, high = 5 }"#,
        "sampler = \"grid\"\nscheduler = \"asha\"\nn_trials = 6\n[search.scheduler_options]\nreduction_factor = 3\nmin_resource = 1\nmax_resource = 27",
        "env = { MODE = \"steps\" }",
    )
    .replace("direction = \"minimize\"", "direction = \"maximize\"");
    let path = project.spec("spec.toml", &text);
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let trials = project.trials("asha");
    let last_step = |t: &serde_json::Value| {
        t["intermediate"]
            .as_array()
            .and_then(|r| r.last())
            .and_then(|r| r["step"].as_u64())
            .unwrap_or(0)
    };
    // Each trial is the best so far (y = x rises); a rung of n results promotes at
    // most ⌊n/3⌋: trials 0 and 1 stop at step 1, trial 2 is promoted there and stops
    // at step 3 (alone in that rung), trial 5 is promoted at step 1 as well.
    let steps: Vec<u64> = trials.iter().map(last_step).collect();
    assert_eq!(steps, [1, 1, 3, 1, 1, 3], "{trials:?}");
    for t in &trials {
        assert_eq!(t["state"], "pruned");
        assert!(
            t["error"]
                .as_str()
                .unwrap_or_default()
                .starts_with("asha: at rung"),
            "{t}"
        );
        assert_process_gone(&project, "asha", &t["number"].to_string());
    }
}

#[test]
fn best_prints_the_pareto_set_for_several_objectives() {
    let project = Project::new();
    let text = r#"[campaign]
name = "pareto"
[objective]
metrics = ["a", "b"]
directions = ["minimize", "minimize"]
[space]
x = { type = "float", low = 0.0, high = 1.0, step = 0.25 }
worse = { type = "categorical", choices = [false, true] }
[search]
sampler = "grid"
n_trials = 10
[task]
kind = "command"
command = ["python3", "trial.py"]
env = { MODE = "two" }
"#;
    let path = project.spec("spec.toml", text);
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = project.exec(&["best", "pareto", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let best: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("an array");
    // The five undominated points x = 0, 0.25, …, 1 with worse = false.
    assert_eq!(best.len(), 5, "{stdout}");
    assert!(best.iter().all(|t| t["params"]["worse"] == false));
}

/// A campaign named `..` had `<db>.trials/..`, the database's own folder, as its
/// "stale trial folder", removed when the campaign was created.
#[test]
fn campaign_names_that_leave_the_trial_folder_are_refused_and_nothing_is_removed() {
    let project = Project::new();
    let good = project.spec(
        "good.toml",
        &spec(
            "good",
            r#"x = { type = "int", low = 1, high = 2 }"#,
            "n_trials = 1",
            "",
        ),
    );
    let (code, _, stderr) = project.exec(&["run", good.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    for name in ["..", ".", "../db", ".hidden"] {
        let path = project.spec(
            "dots.toml",
            &spec(
                name,
                r#"x = { type = "int", low = 1, high = 2 }"#,
                "n_trials = 1",
                "",
            ),
        );
        let path = path.to_str().expect("utf-8");
        for command in ["validate", "run"] {
            let (code, _, stderr) = project.exec(&[command, path]);
            assert_eq!(code, 2, "`{command}` of campaign {name:?}: {stderr}");
            assert!(
                stderr.contains("dots.toml:2:1: `campaign.name`: campaign name")
                    && stderr.contains("is not allowed")
                    && stderr.contains("hint: "),
                "{stderr}"
            );
            assert!(
                project.path().join("db").is_dir(),
                "{name:?}: db folder gone"
            );
            assert!(project.path().join("db/firebreak.db").is_file());
        }
    }
    assert_eq!(project.trials("good").len(), 1);
    let (code, stdout, _) = project.exec(&["campaigns"]);
    assert_eq!(code, 0);
    assert!(!stdout.contains("\"..\""), "{stdout}");
}

/// Specs that validated and then panicked or ran out of memory: `validate` and
/// `run` refuse them with exit 2 and the key.
#[test]
fn oversized_specs_are_refused_by_validate_and_run() {
    let project = Project::new();
    let cases = [
        (
            r#"x = { type = "int", low = -9223372036854775808, high = 9223372036854775807 }"#,
            "sampler = \"grid\"\nn_trials = 1",
            "`space.x.low`",
        ),
        (
            r#"x = { type = "int", low = 1, high = 2 }"#,
            "sampler = \"grid\"\nn_trials = 1\nsampler_options = { points_per_axis = 4294967295 }",
            "`search.sampler_options.points_per_axis`",
        ),
        (
            r#"x = { type = "int", low = 1, high = 2 }"#,
            "n_trials = 1\nparallelism = 4294967295",
            "`search.parallelism`",
        ),
    ];
    for (space, search, key) in cases {
        let path = project.spec("big.toml", &spec("big", space, search, ""));
        for command in ["validate", "run"] {
            let (code, _, stderr) =
                project.exec_within(60, &[command, path.to_str().expect("utf-8")]);
            assert_eq!(code, 2, "`{command}` with {search}: {stderr}");
            assert!(
                stderr.contains(key) && stderr.contains("hint: "),
                "{stderr}"
            );
        }
    }
}

/// `activation` and `norm` change nothing in a cell network or a transformer:
/// searching them is an error naming the key and the model.
#[test]
fn genome_keys_a_model_ignores_are_refused() {
    let project = Project::new();
    let text = r#"[campaign]
name = "cells"

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]
activation = { type = "categorical", choices = ["relu", "gelu"] }

[search]
n_trials = 1

[task]
kind = "builtin"
dataset = "digits"
model = "cell"
"#;
    let path = project.spec("cells.toml", text);
    let (code, _, stderr) = project.exec(&["validate", path.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("parameter `activation` means nothing to model `cell`")
            && stderr.contains("hint: remove `activation`"),
        "{stderr}"
    );
}

/// Runs `args` with its stdout a pipe whose reading end is closed at once, as
/// `firebreak … | head -0` does; returns the exit status and stderr.
fn with_closed_stdout(project: &Project, args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::io::Read as _;
    let mut child = project
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("firebreak started");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr read");
    (child.wait().expect("firebreak ended"), stderr)
}

#[test]
fn a_closed_pipe_ends_a_command_quietly_and_run_keeps_its_ledger_consistent() {
    use std::os::unix::process::ExitStatusExt as _;
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "piped",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 3",
            "env = { MODE = \"ok\" }",
        ),
    );
    let (status, stderr) = with_closed_stdout(&project, &["run", path.to_str().expect("utf-8")]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(status.code(), Some(101), "{stderr}");
    assert!(
        status.success() || status.signal() == Some(libc_sigpipe()),
        "{status:?}: {stderr}"
    );
    let trials = project.trials("piped");
    assert_eq!(trials.len(), 3);
    assert!(
        trials.iter().all(|t| t["state"] == "complete"),
        "{trials:?}"
    );
    assert_eq!(project.verify().0, 0, "the ledger verifies");
    let (status, stderr) = with_closed_stdout(&project, &["trials", "piped"]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        status.signal(),
        Some(libc_sigpipe()),
        "{status:?}: {stderr}"
    );
}

/// SIGPIPE's number on Linux.
fn libc_sigpipe() -> i32 {
    13
}

#[test]
fn enqueue_on_a_campaign_with_no_room_left_is_refused_naming_the_limit() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "full",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 2",
            "env = { MODE = \"ok\" }",
        ),
    );
    assert_eq!(project.exec(&["run", path.to_str().expect("utf-8")]).0, 0);
    let (code, _, stderr) = project.exec(&["enqueue", "full", "--params", "{\"x\": 0.5}"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("no room") && stderr.contains("n_trials = 2"),
        "{stderr}"
    );
    assert!(stderr.contains("hint:"), "{stderr}");
    assert_eq!(project.trials("full").len(), 2, "nothing was queued");
}

#[test]
fn a_batch_log_gets_status_lines_and_quiet_silences_them() {
    let project = Project::new();
    let text = |name: &str| {
        spec(
            name,
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 2",
            "env = { MODE = \"ok\" }",
        )
    };
    let path = project.spec("log.toml", &text("log"));
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("firebreak: ") && stderr.contains("of 2 finished"),
        "{stderr}"
    );
    let path = project.spec("quiet.toml", &text("quiet"));
    let (code, _, stderr) = project.exec(&["--quiet", "run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("finished ·"), "{stderr}");
}

#[test]
fn csv_output_carries_whole_fields_quoted() {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "csv",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 1",
            "env = { MODE = \"longfail\" }",
        ),
    );
    project.exec(&["run", path.to_str().expect("utf-8")]);
    let trials = project.trials("csv");
    let error = trials[0]["error"].as_str().expect("an error").to_string();
    assert!(
        error.len() > 80 && error.contains(',') && error.contains('"'),
        "{error}"
    );
    let (code, stdout, stderr) = project.exec(&["trials", "csv", "--format", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let headers = reader.headers().expect("a header").clone();
    let column = headers
        .iter()
        .position(|h| h == "error")
        .expect("an error column");
    let row = reader
        .records()
        .next()
        .expect("a row")
        .expect("a CSV record");
    assert_eq!(&row[column], error, "the whole error text, quoted");
}

#[test]
fn runs_are_numbered_per_campaign_and_no_figure_prints_as_minus_zero() {
    let project = Project::new();
    let text = |name: &str| {
        spec(
            name,
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 1",
            "env = { MODE = \"ok\" }\n\n[constraints]\nmax_wall_time = \"0s\"",
        )
    };
    for name in ["first", "second"] {
        let path = project.spec(&format!("{name}.toml"), &text(name));
        let (code, stdout, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("(run 1)"), "{name}: {stderr}");
        assert!(!stdout.contains("-0"), "{name}: {stdout}");
        assert!(stdout.contains("compute: 0 trial CPU seconds"), "{stdout}");
    }
}

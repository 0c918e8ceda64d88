//! The trial sandbox end to end, through the binary: one campaign runs one trial
//! program per thing a trial must not do (read the labels, connect to a TCP
//! port, write outside its folder, fork 10,000 processes, map 8 GiB, burn CPU
//! past its limit, edit the evaluator, read the runner's API key) and a normal
//! trial. Sandboxed, each bad trial fails with a reason naming the block, the
//! campaign goes on to the next, and the ledger (checked by the independent
//! verifier too) says what was refused and which kernel features the run
//! enforced; unsandboxed, the same programs succeed, so the test can fail.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;

use common::{Project, entry_payloads, independent_verifier};

const PROGRAMS: &[&str] = &[
    "labels",
    "tcp",
    "write",
    "fork",
    "memory",
    "cpu",
    "evaluator",
    "env",
    "ok",
];

/// The trial program: does what its `prog` parameter names, then reports.
const TRIAL: &str = r#"
import json, os, sys
prog = os.environ["FIREBREAK_PARAM_PROG"]
if prog == "labels":
    print(open(os.environ["LABELS"]).read())
elif prog == "tcp":
    import socket
    socket.create_connection(("127.0.0.1", int(os.environ["PORT"])), timeout=5).close()
elif prog == "write":
    path = os.path.join(os.environ["OUTSIDE"], "escaped-" + os.environ["FIREBREAK_TRIAL_NUMBER"])
    open(path, "w").write("out")
elif prog == "fork":
    for i in range(10000):
        if os.fork() == 0:
            os._exit(0)
elif prog == "memory":
    import mmap
    block = mmap.mmap(-1, 8 << 30)
elif prog == "cpu":
    import time
    end = time.process_time() + 3
    while time.process_time() < end:
        pass
elif prog == "evaluator":
    open("evaluate.py", "a").write("score = lambda *a: 1.0\n")
elif prog == "env":
    print("key of length", len(os.environ["OPENAI_API_KEY"]))
elif prog == "ok":
    with open(os.environ["FIREBREAK_PARAMS_FILE"]) as f:
        assert json.load(f)["prog"] == "ok"
    open(os.path.join(os.environ["FIREBREAK_TRIAL_DIR"], "model.txt"), "w").write("weights")
print(json.dumps({"final": True, "y": 1.0}))
"#;

struct Setup {
    project: Project,
    labels: tempfile::TempDir,
    outside: tempfile::TempDir,
    listener: TcpListener,
}

fn setup() -> Setup {
    let project = Project::new();
    std::fs::write(project.path().join("sandboxed.py"), TRIAL).expect("trial written");
    std::fs::write(
        project.path().join("evaluate.py"),
        "score = lambda p, l: 0.0\n",
    )
    .expect("evaluator written");
    let labels = tempfile::tempdir().expect("tempdir");
    std::fs::write(labels.path().join("labels.csv"), "index,label\n0,7\n").expect("labels");
    let outside = tempfile::tempdir().expect("tempdir");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listens");
    Setup {
        project,
        labels,
        outside,
        listener,
    }
}

fn spec(setup: &Setup, name: &str, sandbox: &str) -> String {
    let choices: Vec<String> = PROGRAMS.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"[campaign]
name = "{name}"

[objective]
metric = "y"
direction = "minimize"

[space]
prog = {{ type = "categorical", choices = [{choices}] }}

[search]
sampler = "grid"
n_trials = {n}
trial_timeout = "60s"

[task]
kind = "command"
command = ["/usr/bin/python3", "sandboxed.py"]
env = {{ LABELS = "{labels}", OUTSIDE = "{outside}", PORT = "{port}" }}
{sandbox}
"#,
        choices = choices.join(", "),
        n = PROGRAMS.len(),
        labels = setup.labels.path().join("labels.csv").display(),
        outside = setup.outside.path().display(),
        port = setup.listener.local_addr().expect("address").port(),
    )
}

/// Runs the campaign with the API key in the runner's environment; returns
/// each program's (state, error) and the ledger export.
fn run(setup: &Setup, name: &str, sandbox: &str) -> (BTreeMap<String, (String, String)>, String) {
    let path = setup
        .project
        .spec(&format!("{name}.toml"), &spec(setup, name, sandbox));
    let out = setup
        .project
        .command(&["run", path.to_str().expect("utf-8")])
        .env("OPENAI_API_KEY", "sk-secret-of-the-runner")
        .output()
        .expect("firebreak ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let trials = setup.project.trials(name);
    assert_eq!(trials.len(), PROGRAMS.len(), "every trial ran: {stderr}");
    let outcomes = trials
        .iter()
        .map(|t| {
            let text = |key: &str| t[key].as_str().unwrap_or_default().to_string();
            (
                t["params"]["prog"].as_str().expect("prog").to_string(),
                (text("state"), text("error")),
            )
        })
        .collect();
    let (code, export, stderr) = setup.project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    (outcomes, export)
}

#[test]
fn every_forbidden_act_fails_its_trial_with_the_block_named_and_the_campaign_goes_on() {
    let setup = setup();
    let sandbox = "[task.sandbox]\nmemory = \"1G\"\nprocesses = 64\ncpu = \"1s\"";
    let (outcomes, export) = run(&setup, "boxed", sandbox);
    let expected = [
        ("labels", "sandbox: file access refused"),
        ("tcp", "sandbox: blocked system call"),
        ("write", "sandbox: file access refused"),
        ("fork", "sandbox: process limit of 64 reached"),
        ("memory", "sandbox: memory limit of 1G reached"),
        ("cpu", "sandbox: CPU limit of 1 s reached"),
        ("evaluator", "sandbox: file access refused"),
        (
            "env",
            "sandbox: the environment is scrubbed: `OPENAI_API_KEY` is not passed",
        ),
    ];
    for (prog, reason) in expected {
        let (state, error) = &outcomes[prog];
        assert_eq!(state, "failed", "{prog}: {error}");
        assert!(error.contains(reason), "{prog}: {error}");
        assert!(!error.contains("sk-secret"), "{prog}: {error}");
    }
    assert_eq!(
        outcomes["ok"],
        ("complete".into(), String::new()),
        "the normal trial"
    );
    assert!(
        !setup.outside.path().join("escaped-2").exists()
            && std::fs::read_dir(setup.outside.path())
                .expect("listed")
                .next()
                .is_none(),
        "nothing was written outside"
    );
    let evaluator =
        std::fs::read_to_string(setup.project.path().join("evaluate.py")).expect("evaluator");
    assert_eq!(
        evaluator, "score = lambda p, l: 0.0\n",
        "the evaluator is unchanged"
    );

    // The ledger: the run's sandbox, and each refusal in its trial's entry.
    let payloads = entry_payloads(&export);
    let started = payloads
        .iter()
        .find(|p| p["kind"] == "run_started")
        .expect("run_started");
    let record = &started["data"]["sandbox"];
    let enforced: Vec<&str> = record["enforced"]
        .as_array()
        .expect("enforced")
        .iter()
        .filter_map(|f| f.as_str())
        .collect();
    for feature in ["landlock", "landlock-network", "seccomp"] {
        assert!(enforced.contains(&feature), "{record}");
    }
    assert_eq!(record["missing"], serde_json::json!([]), "{record}");
    assert_eq!(record["require"], true, "{record}");
    let refused = payloads
        .iter()
        .filter(|p| p["kind"] == "trial_finished" && p["data"]["state"] == "failed")
        .filter(|p| {
            p["data"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("sandbox: "))
        })
        .count();
    assert_eq!(
        refused,
        expected.len(),
        "one ledgered refusal per bad trial"
    );
    let (accepted, text) = independent_verifier(&setup.project, &export, "boxed.jsonl");
    assert!(accepted, "{text}");
}

#[test]
fn without_the_sandbox_the_same_programs_succeed() {
    let setup = setup();
    let (outcomes, export) = run(&setup, "open", "");
    for prog in PROGRAMS {
        assert_eq!(
            outcomes[*prog],
            ("complete".into(), String::new()),
            "{prog} succeeds unsandboxed"
        );
    }
    let evaluator =
        std::fs::read_to_string(setup.project.path().join("evaluate.py")).expect("evaluator");
    assert!(
        evaluator.contains("lambda *a"),
        "the unsandboxed trial edited it"
    );
    let started = entry_payloads(&export)
        .into_iter()
        .find(|p| p["kind"] == "run_started")
        .expect("run_started");
    assert!(started["data"].get("sandbox").is_none(), "{started}");
}

#[test]
fn a_bad_sandbox_value_is_an_error_at_its_key_before_any_trial() {
    let setup = setup();
    let path = setup.project.spec(
        "bad.toml",
        &spec(&setup, "bad", "[task.sandbox]\nmemory = \"lots\""),
    );
    let (code, _, stderr) = setup.project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("task.sandbox.memory"), "{stderr}");
}

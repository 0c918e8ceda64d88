//! The agent proposer against a REAL language model: llama.cpp's server with
//! Gemma 3 270M, installed by `scripts/local-llm.sh install` and started here on
//! a free port (stopped at the end, even when an assertion fails). A machine
//! without the model fails this test with the command to run; it is never
//! skipped. The scripted-server tests are `tests/agent.rs`.
//!
//! What a 270M base model answers is poor, and that is not what this checks:
//! every exchange must end as a proposal or a recorded refusal with its reason,
//! every proposal the engine accepts must be inside the space (config mode) or
//! a candidate program it ran and scored or failed with a reason (code mode),
//! and the ledger must verify.

mod common;

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::{Project, agent_entries, independent_verifier};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The local model's server, started by `scripts/local-llm.sh start` with a
/// private cache folder (links to the installed server and model), so its pid
/// file is this test's own: `stop` in `Drop` stops this server and no other,
/// and a developer's server on port 8080 is left alone.
struct LocalModel {
    cache: tempfile::TempDir,
    base_url: String,
}

impl LocalModel {
    fn start() -> Self {
        let installed = std::env::var_os("FIREBREAK_LLM_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                    .join(".cache/firebreak/llm")
            });
        let server = installed.join("bin/llama-server");
        let model = installed.join("models/gemma-3-270m-q4_k_m.gguf");
        assert!(
            server.is_file() && model.is_file(),
            "the local model is not installed ({} or {} is missing): \
             run scripts/local-llm.sh install",
            server.display(),
            model.display()
        );
        let cache = tempfile::tempdir().expect("tempdir");
        for name in ["bin", "models"] {
            std::os::unix::fs::symlink(installed.join(name), cache.path().join(name))
                .expect("linked");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("addr")
            .port();
        let local = LocalModel {
            cache,
            base_url: format!("http://127.0.0.1:{port}/v1"),
        };
        let out = local
            .script(&["start", "--port", &port.to_string()])
            .output()
            .expect("scripts/local-llm.sh ran");
        assert!(
            out.status.success(),
            "scripts/local-llm.sh start --port {port} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        local
    }

    fn script(&self, args: &[&str]) -> Command {
        let mut command = Command::new("bash");
        command
            .arg(repo().join("scripts/local-llm.sh"))
            .args(args)
            .env("FIREBREAK_LLM_CACHE", self.cache.path());
        command
    }
}

impl Drop for LocalModel {
    fn drop(&mut self) {
        match self.script(&["stop"]).output() {
            Ok(out) if out.status.success() => {}
            other => {
                // A panic in Drop would abort the test binary: say it instead.
                let _ = writeln!(
                    std::io::stderr(),
                    "scripts/local-llm.sh stop failed: {other:?}"
                );
            }
        }
    }
}

/// Every exchange is a proposal, or an invalid answer or a failed request with
/// the reason recorded.
fn assert_exchanges_accounted(entries: &[Value]) {
    assert!(!entries.is_empty(), "the model was never asked");
    for entry in entries {
        assert_eq!(entry["model"], "gemma-3-270m", "{entry}");
        match entry["outcome"].as_str() {
            Some("proposal") => assert!(entry["response_sha256"].is_string(), "{entry}"),
            Some("invalid" | "error") => assert!(
                entry["reason"]
                    .as_str()
                    .is_some_and(|r| !r.trim().is_empty()),
                "a refusal without a reason: {entry}"
            ),
            _ => panic!("an exchange with an unknown outcome: {entry}"),
        }
    }
}

fn assert_verifies(project: &Project) {
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    let (_, export, _) = project.exec(&["audit", "export"]);
    let (ok, text) = independent_verifier(project, &export, "export.jsonl");
    assert!(ok, "{text}");
}

const OPS: [&str; 5] = [
    "none",
    "skip_connect",
    "nor_conv_1x1",
    "nor_conv_3x3",
    "avg_pool_3x3",
];

/// Config mode on the bundled NAS-Bench-201 table: the space is all
/// categorical, which the server's grammar enforces; the engine checks again.
fn config_mode(model: &LocalModel) {
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("tables")).expect("tables");
    std::fs::copy(
        repo().join("examples/tables/nasbench201-cifar10.csv"),
        project.path().join("tables/nasbench201-cifar10.csv"),
    )
    .expect("table copied");
    let choices = format!("{OPS:?}");
    let space: String = (0..6)
        .map(|i| format!("op{i} = {{ type = \"categorical\", choices = {choices} }}\n"))
        .collect();
    let spec = project.spec(
        "nasbench.toml",
        &format!(
            r#"[campaign]
name = "nb-agent"
seed = 1

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]
{space}
[search]
sampler = "agent"
n_trials = 6
parallelism = 1

[search.sampler_options]
base_url = "{}"
model = "gemma-3-270m"
fallback = "random"
timeout = "120s"
retries = 1

[task]
kind = "table"
path = "tables/nasbench201-cifar10.csv"
"#,
            model.base_url
        ),
    );
    let started = Instant::now();
    let (code, stdout, stderr) = project.exec_within(240, &["run", spec.to_str().expect("utf-8")]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(code, 0, "after {seconds:.1} s: {stdout}{stderr}");

    let entries = agent_entries(&project);
    assert_exchanges_accounted(&entries);
    let trials = project.trials("nb-agent");
    assert_eq!(trials.len(), 6, "{trials:?}");
    let by_agent: Vec<&Value> = trials.iter().filter(|t| t["proposer"] == "agent").collect();
    let proposals = entries
        .iter()
        .filter(|e| e["outcome"] == "proposal")
        .count();
    assert_eq!(by_agent.len(), proposals, "{entries:?}");
    for trial in &trials {
        assert_eq!(trial["state"], "complete", "{trial}");
        assert!(trial["metrics"]["val_accuracy"].is_number(), "{trial}");
    }
    for trial in &by_agent {
        let params = trial["params"].as_object().expect("params");
        assert_eq!(params.len(), 6, "{trial}");
        for i in 0..6 {
            let value = params[&format!("op{i}")].as_str().unwrap_or_default();
            assert!(OPS.contains(&value), "outside the space: {trial}");
        }
    }
    if let Some(first) = by_agent.first() {
        let number = first["number"].to_string();
        let (code, explained, stderr) = project.exec(&["explain", "nb-agent", &number]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            explained.contains("Propose the next configuration")
                && explained.contains("the stored text matches the ledgered hash"),
            "{explained}"
        );
    }
    assert_verifies(&project);
}

/// Code mode: examples/agent/code.toml as shipped, with this server, fewer
/// candidates, one debug round and shorter answers.
fn code_mode(model: &LocalModel) {
    let project = Project::new();
    let program = project.path().join("program");
    std::fs::create_dir_all(&program).expect("workspace");
    let parent = std::fs::read_to_string(repo().join("examples/agent/program/train.py"))
        .expect("example program");
    std::fs::write(program.join("train.py"), &parent).expect("parent written");
    let mut spec =
        std::fs::read_to_string(repo().join("examples/agent/code.toml")).expect("example spec");
    for (from, to) in [
        (
            "base_url = \"http://127.0.0.1:8080/v1\"",
            format!("base_url = \"{}\"\ntimeout = \"120s\"", model.base_url),
        ),
        ("n_trials = 30", "n_trials = 3".to_string()),
        ("debug_rounds = 2", "debug_rounds = 1".to_string()),
        ("max_tokens = 1500", "max_tokens = 1200".to_string()),
    ] {
        assert!(spec.contains(from), "examples/agent/code.toml lacks {from}");
        spec = spec.replace(from, &to);
    }
    let spec = project.spec("code.toml", &spec);
    let started = Instant::now();
    let (code, stdout, stderr) = project.exec_within(240, &["run", spec.to_str().expect("utf-8")]);
    let seconds = started.elapsed().as_secs_f64();
    // A 270M model's programs may all fail: that is data (exit 1, "every trial
    // failed", the reason named), never a crash of the engine.
    assert!(
        code == 0 || (code == 1 && stderr.contains("every trial failed")),
        "after {seconds:.1} s: exit {code}: {stdout}{stderr}"
    );

    let entries = agent_entries(&project);
    assert_exchanges_accounted(&entries);
    for entry in entries.iter().filter(|e| e["outcome"] == "proposal") {
        assert!(entry["files"]["train.py"].is_string(), "{entry}");
    }
    let trials = project.trials("agent-code");
    assert_eq!(trials.len(), 3, "{trials:?}");
    for trial in &trials {
        match trial["state"].as_str() {
            Some("complete") => {
                let score = trial["metrics"]["val_accuracy"].as_f64().expect("scored");
                assert!((0.0..=1.0).contains(&score), "{trial}");
            }
            Some("failed") => assert!(
                trial["error"]
                    .as_str()
                    .is_some_and(|e| !e.trim().is_empty()),
                "a failure without a reason: {trial}"
            ),
            _ => panic!("a trial neither complete nor failed: {trial}"),
        }
    }
    let by_agent = trials.iter().filter(|t| t["proposer"] == "agent").count();
    let proposals = entries
        .iter()
        .filter(|e| e["outcome"] == "proposal")
        .count();
    assert_eq!(by_agent, proposals, "{entries:?}");
    // The parent's copy is untouched whatever the candidates did.
    assert_eq!(
        std::fs::read_to_string(program.join("train.py")).expect("parent"),
        parent
    );
    assert_verifies(&project);
}

#[test]
fn a_real_model_proposes_configurations_and_programs_under_the_engines_rules() {
    let model = LocalModel::start();
    config_mode(&model);
    code_mode(&model);
}

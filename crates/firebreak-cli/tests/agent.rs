//! The agent proposer against a scripted OpenAI-compatible server on 127.0.0.1:
//! a test double of the network peer, answering each request with the next
//! reply of its script (valid answers, malformed ones, answers outside the
//! space, HTTP 429 and 500, a request that hangs past the timeout). The real
//! model's test is `tests/agent_model.rs`.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Project, agent_entries, entry_payloads, independent_verifier, sql};
use serde_json::{Value, json};

/// One scripted reply.
#[derive(Clone)]
enum Reply {
    /// A chat completion whose message content is this text, with token counts.
    Answer(String, u64, u64),
    /// An HTTP status with a short body (and a `Retry-After: 0` for 429).
    Status(u16),
    /// Sleeps this long before answering anything.
    Hang(Duration),
}

fn proposal(x: f64) -> Reply {
    let content = json!({"rationale": format!("try x = {x}"), "params": {"x": x}});
    Reply::Answer(content.to_string(), 40, 20)
}

/// A request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    body: Value,
}

struct Server {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

/// Serves `script` in order (its last reply repeats), one thread per connection.
fn serve(script: Vec<Reply>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bound");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(AtomicUsize::new(0));
    let script = Arc::new(script);
    let shared = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (seen, next, script) = (shared.clone(), next.clone(), script.clone());
            std::thread::spawn(move || answer(stream, &seen, &next, &script));
        }
    });
    Server { url, seen }
}

fn answer(mut stream: TcpStream, seen: &Mutex<Vec<Seen>>, next: &AtomicUsize, script: &[Reply]) {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, body_start) = loop {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(at) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&data[..at]).into_owned(), at + 4);
        }
    };
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while data.len() < body_start + length {
        let Ok(n) = stream.read(&mut buf) else { return };
        if n == 0 {
            return;
        }
        data.extend_from_slice(&buf[..n]);
    }
    let body =
        serde_json::from_slice(&data[body_start..body_start + length]).unwrap_or(Value::Null);
    seen.lock().expect("lock").push(Seen {
        authorization: header("authorization"),
        body,
    });
    let index = next.fetch_add(1, Ordering::SeqCst).min(script.len() - 1);
    let (status, extra, text) = match &script[index] {
        Reply::Answer(content, prompt, completion) => {
            let body = json!({
                "id": "scripted", "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion},
            });
            (200, "", body.to_string())
        }
        Reply::Status(429) => (
            429,
            "Retry-After: 0\r\n",
            "{\"error\":\"slow down\"}".into(),
        ),
        Reply::Status(code) => (*code, "", "{\"error\":\"scripted failure\"}".into()),
        Reply::Hang(time) => {
            std::thread::sleep(*time);
            return;
        }
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status} Scripted\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn agent_spec(name: &str, url: &str, n_trials: u64, options: &str, extra: &str) -> String {
    format!(
        r#"[campaign]
name = "{name}"
seed = 5

[objective]
metric = "y"
direction = "minimize"

[space]
x = {{ type = "float", low = -5.0, high = 5.0 }}

[search]
sampler = "agent"
n_trials = {n_trials}
parallelism = 1

[search.sampler_options]
base_url = "{url}"
model = "scripted-model"
timeout = "2s"
retries = 1
{options}

[task]
kind = "command"
command = ["python3", "trial.py"]
{extra}
"#
    )
}

#[test]
fn agent_answers_are_validated_ledgered_stored_and_explained() {
    let server = serve(vec![
        proposal(1.5),
        Reply::Answer("I would try x = 2".into(), 30, 5), // not JSON
        Reply::Status(500),                               // retried …
        proposal(-2.0),                                   // … and answered
        proposal(9.0),                                    // outside the space
        Reply::Answer(r#"{"params":{"x":0.5,"y":1}}"#.into(), 30, 8), // a key the space lacks
        Reply::Status(429),
        proposal(0.25),
        Reply::Hang(Duration::from_secs(5)), // past the 2 s timeout: retried
        proposal(3.0),
    ]);
    let project = Project::new();
    let spec = project.spec(
        "agent.toml",
        &agent_spec("agentic", &server.url, 4, "max_invalid = 3", ""),
    );
    let (code, _, stderr) = project.exec_within(120, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");

    let trials = project.trials("agentic");
    let xs: Vec<f64> = trials
        .iter()
        .map(|t| t["params"]["x"].as_f64().expect("x"))
        .collect();
    assert_eq!(xs, [1.5, -2.0, 0.25, 3.0]);
    assert!(trials.iter().all(|t| t["proposer"] == "agent"));
    assert_eq!(trials[0]["rationale"], "try x = 1.5");

    let entries = agent_entries(&project);
    let outcomes: Vec<(&str, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["outcome"].as_str().expect("outcome"),
                e["attempts"].as_u64().expect("attempts"),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("proposal", 1),
            ("invalid", 1),
            ("proposal", 2),
            ("invalid", 1),
            ("invalid", 1),
            ("proposal", 2),
            ("proposal", 2)
        ]
    );
    assert!(
        entries[1]["reason"]
            .as_str()
            .expect("reason")
            .contains("not JSON")
    );
    assert!(
        entries[3]["reason"]
            .as_str()
            .expect("reason")
            .contains("out of the campaign's space")
    );
    assert!(
        entries[4]["reason"]
            .as_str()
            .expect("reason")
            .contains("`y` is not a parameter")
    );
    assert!(entries.iter().all(|e| e["model"] == "scripted-model"));

    // Every request carried the space as a JSON schema, and later prompts the history.
    let seen = server.seen.lock().expect("lock").clone();
    let schema = &seen[0].body["response_format"]["json_schema"]["schema"]["properties"]["params"];
    assert_eq!(
        schema["properties"]["x"],
        json!({"type": "number", "minimum": -5.0, "maximum": 5.0})
    );
    assert_eq!(schema["additionalProperties"], false);
    let last = seen.last().expect("a request").body["messages"][1]["content"]
        .as_str()
        .expect("prompt")
        .to_string();
    assert!(last.contains("#0 complete y=1.5"), "{last}");
    assert!(seen.iter().all(|s| s.authorization.is_none()));

    // `explain` shows the exact prompt and answer, checked against the ledger's hashes.
    let (code, stdout, stderr) = project.exec(&["explain", "agentic", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Propose the next configuration"),
        "{stdout}"
    );
    assert!(stdout.contains("try x = -2"), "{stdout}");
    assert!(
        stdout.contains(entries[2]["request_sha256"].as_str().expect("hash")),
        "{stdout}"
    );

    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    let (_, export, _) = project.exec(&["audit", "export"]);
    let (ok, text) = independent_verifier(&project, &export, "export.jsonl");
    assert!(ok, "{text}");

    // An edited answer no longer matches the hash its entry names.
    sql(
        &project,
        &[
            "UPDATE agent_texts SET body = replace(body, 'try x = 1.5', 'try x = 7') WHERE body LIKE '%try x = 1.5%'",
        ],
    );
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{report}");
    assert!(report.to_string().contains("was edited"), "{report}");
}

#[test]
fn an_agent_without_valid_answers_falls_back_and_its_token_budget_is_a_hard_stop() {
    let project = Project::new();
    // Garbage only: after max_invalid refusals in a row the fallback proposes.
    let garbage = serve(vec![Reply::Answer("{\"params\": \"lots\"}".into(), 10, 10)]);
    let spec = project.spec(
        "fallback.toml",
        &agent_spec(
            "fallback",
            &garbage.url,
            3,
            "max_invalid = 2\nfallback = \"random\"",
            "",
        ),
    );
    let (code, _, stderr) = project.exec_within(120, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let trials = project.trials("fallback");
    assert_eq!(trials.len(), 3);
    assert!(
        trials.iter().all(|t| t["proposer"] == "random"),
        "{trials:?}"
    );
    let (_, export, _) = project.exec(&["audit", "export", "--campaign", "fallback"]);
    let payloads = entry_payloads(&export);
    assert!(payloads.iter().any(|p| {
        p["kind"] == "denied"
            && p["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("fallback proposer random"))
    }));
    assert_eq!(garbage.seen.lock().expect("lock").len(), 2);

    // 60 tokens an answer against max_llm_tokens = 150: three requests, then a stop.
    let valid = serve(vec![proposal(0.5)]);
    let spec = project.spec(
        "budget.toml",
        &agent_spec(
            "budget",
            &valid.url,
            10,
            "",
            "[constraints]\nmax_llm_tokens = 150",
        ),
    );
    let (code, stdout, stderr) = project.exec_within(120, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("max_llm_tokens 150 reached"),
        "{stdout}{stderr}"
    );
    assert_eq!(project.trials("budget").len(), 3);
    assert_eq!(valid.seen.lock().expect("lock").len(), 3);
    let (_, status, _) = project.exec(&["status", "budget"]);
    assert!(
        status.contains("language-model tokens: 180 of max_llm_tokens = 150"),
        "{status}"
    );
    // The count comes from the ledger: a second run starts no request.
    let (code, _, _) = project.exec_within(60, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 3);
    assert_eq!(valid.seen.lock().expect("lock").len(), 3);
}

#[test]
fn the_api_key_reaches_the_server_only() {
    const SECRET: &str = "sk-test-0f9e8d7c6b5a";
    let server = serve(vec![proposal(1.0)]);
    let project = Project::new();
    std::fs::write(
        project.path().join("trial.py"),
        "import json, os\nprint('KEY=' + os.environ.get('FB_AGENT_KEY', 'absent'))\n\
         print(json.dumps({'final': True, 'y': float(os.environ['FIREBREAK_PARAM_X'])}))\n",
    )
    .expect("trial written");
    let spec = project.spec(
        "key.toml",
        &agent_spec(
            "keyed",
            &server.url,
            2,
            "api_key_env = \"FB_AGENT_KEY\"",
            "",
        ),
    );
    let spec = spec.to_str().expect("utf-8");
    // Unset: a clear error before anything runs.
    let (code, _, stderr) = project.exec_within(60, &["run", spec]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("FB_AGENT_KEY"), "{stderr}");
    assert!(server.seen.lock().expect("lock").is_empty());

    let out = project
        .command(&["run", spec])
        .env("FB_AGENT_KEY", SECRET)
        .output()
        .expect("ran");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = server.seen.lock().expect("lock").clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| s.authorization.as_deref() == Some(&format!("Bearer {SECRET}")))
    );
    let (_, logs, _) = project.exec(&["logs", "keyed", "0"]);
    assert!(logs.contains("KEY=absent"), "{logs}");
    // Nowhere in the database or the ledger.
    let db = std::fs::read(project.path().join("db/firebreak.db")).expect("db read");
    assert!(!db.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    let (_, export, _) = project.exec(&["audit", "export"]);
    assert!(!export.contains(SECRET));
}

fn files_answer(program: &str) -> Reply {
    let content = json!({"rationale": "a change", "files": {"train.py": program}});
    Reply::Answer(content.to_string(), 200, 300)
}

fn code_spec(url: &str, n_trials: u64) -> String {
    format!(
        r#"[campaign]
name = "coder"
seed = 9

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]

[search]
sampler = "agent"
n_trials = {n_trials}
parallelism = 1
trial_timeout = "60s"

[search.sampler_options]
base_url = "{url}"
model = "scripted-model"
mode = "code"
timeout = "5s"
retries = 0
max_invalid = 5
debug_rounds = 1

[task]
kind = "code"
workspace = "program"
editable = ["train.py"]
command = ["python3", "train.py"]
dataset = "digits"
"#
    )
}

/// The example's parent program with its classifier swapped for 1-nearest
/// neighbour and a claimed score the engine will not believe.
fn one_nn(parent: &str) -> String {
    parent
        .replace(
            "return min(centroids, key=lambda y: distance(centroids[y]))",
            "return min(train, key=lambda row: distance(row[\"x\"]))[\"y\"]",
        )
        .replace(
            "\"train_accuracy\": correct / len(train)",
            "\"val_accuracy\": 1.0",
        )
}

#[test]
fn code_candidates_are_materialised_sandboxed_scored_by_the_engine_and_fixed() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/agent/program/train.py");
    let parent = std::fs::read_to_string(&example).expect("example program");
    let stale_diff =
        "--- a/train.py\n+++ b/train.py\n@@ -1,2 +1,2 @@\n-import nothing\n+import json\n";
    let server = serve(vec![
        files_answer(&one_nn(&parent)),
        Reply::Answer(json!({"diff": stale_diff}).to_string(), 50, 50),
        files_answer(&parent.replace(
            "import json",
            "import json\nraise SystemExit('deliberate crash')",
        )),
        files_answer(&parent),
        Reply::Answer(
            json!({"files": {"evaluate.py": "print(1)"}}).to_string(),
            50,
            50,
        ),
        files_answer(&parent.replace(
            "\"label\": predict(row[\"x\"])",
            "\"label\": predict(row[\"x\"]) + 0.5",
        )),
    ]);
    let project = Project::new();
    let program = project.path().join("program");
    std::fs::create_dir_all(&program).expect("workspace");
    std::fs::write(program.join("train.py"), &parent).expect("parent written");
    std::fs::write(
        program.join("evaluate.py"),
        "# the evaluator, not editable\n",
    )
    .expect("written");
    let spec = project.spec("code.toml", &code_spec(&server.url, 4));
    let (code, _, stderr) = project.exec_within(300, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");

    let trials = project.trials("coder");
    let summary: Vec<(String, Option<f64>)> = trials
        .iter()
        .map(|t| {
            (
                t["state"].as_str().unwrap_or_default().to_string(),
                t["metrics"]["val_accuracy"].as_f64(),
            )
        })
        .collect();
    assert_eq!(summary.len(), 4, "{trials:?}");
    // 1-NN scores what the engine measures, not the 1.0 it claims.
    assert_eq!(summary[0].0, "complete");
    let scored = summary[0].1.expect("scored");
    assert!(scored > 0.9 && scored < 1.0, "{scored}");
    assert_eq!(trials[0]["metrics"]["claimed_val_accuracy"], 1.0);
    // The champion alone was run once on the test inputs, scored by the engine.
    let tested = trials[0]["metrics"]["test_accuracy"]
        .as_f64()
        .expect("tested");
    assert!(tested > 0.9 && tested <= 1.0, "{tested}");
    assert!(
        trials[1..]
            .iter()
            .all(|t| t["metrics"].get("test_accuracy").is_none())
    );
    // The crash is a failed trial; the next request asks to fix it, and the fix
    // names it.
    assert_eq!(summary[1].0, "failed");
    assert!(
        trials[1]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("deliberate crash")
            || project
                .exec(&["logs", "coder", "1"])
                .1
                .contains("deliberate crash")
    );
    assert_eq!(summary[2].0, "complete");
    let (_, explain, _) = project.exec(&["explain", "coder", "2", "--format", "json"]);
    let explain: Value = serde_json::from_str(&explain).expect("explain JSON");
    assert!(
        explain["agent"]["prompt"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("This program failed")
    );
    // Fractional labels are not a score (NaN is not even JSON: refused as such).
    assert_eq!(summary[3].0, "failed");
    assert!(
        trials[3]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not a whole class number"),
        "{:?}",
        trials[3]
    );

    let entries = agent_entries(&project);
    let outcomes: Vec<&str> = entries
        .iter()
        .map(|e| e["outcome"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        outcomes,
        [
            "proposal", "invalid", "proposal", "proposal", "invalid", "proposal"
        ]
    );
    assert!(
        entries[1]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("does not apply")
    );
    assert!(
        entries[4]["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("`evaluate.py`, which is not an editable file")
    );
    // After the diff that did not apply, whole files were asked for.
    let seen = server.seen.lock().expect("lock").clone();
    let props =
        |i: usize| seen[i].body["response_format"]["json_schema"]["schema"]["properties"].clone();
    assert_eq!(
        props(2)["files"]["properties"]["train.py"]["type"],
        "string"
    );
    let retry = seen[2].body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(retry.contains("Answer with whole files"), "{retry}");
    let first = seen[1].body["messages"][1]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(!first.contains("Answer with whole files"));
    // The fix's request showed the failure; its state names the trial it fixes.
    assert!(
        seen[3].body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("deliberate crash")
    );
    let (_, export, _) = project.exec(&["audit", "export"]);
    let fix = entry_payloads(&export)
        .into_iter()
        .find(|p| p["kind"] == "trial_proposed" && p["data"]["number"] == 2)
        .expect("trial 2 proposed");
    assert_eq!(fix["data"]["state"]["agent"]["fixes"], 1);
    // The candidate's file is stored and ledgered by hash; the parent's copy is untouched.
    assert!(entries[0]["files"]["train.py"].is_string());
    assert_eq!(
        std::fs::read_to_string(program.join("train.py")).expect("parent"),
        parent
    );

    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    let (ok, text) = independent_verifier(&project, &export, "export.jsonl");
    assert!(ok, "{text}");
    // An edited candidate program is caught.
    sql(
        &project,
        &[
            "UPDATE agent_texts SET body = body || '# edited' WHERE body LIKE '%row[\"x\"]))[\"y\"]%'",
        ],
    );
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{report}");
}

#[test]
fn a_run_killed_while_the_agent_thinks_loses_nothing_and_asks_again() {
    // The first request never gets an answer; the run is killed while it waits.
    let server = serve(vec![
        Reply::Hang(Duration::from_secs(60)),
        proposal(2.0),
        proposal(-1.0),
    ]);
    let project = Project::new();
    let spec = project.spec(
        "kill.toml",
        &agent_spec("killed", &server.url, 2, "", "")
            .replace("timeout = \"2s\"", "timeout = \"50s\""),
    );
    let spec = spec.to_str().expect("utf-8");
    let mut child = project
        .command(&["run", spec])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("started");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.seen.lock().expect("lock").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no request came");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert!(
        agent_entries(&project).is_empty(),
        "nothing is recorded for a pending request"
    );

    let (code, _, stderr) = project.exec_within(120, &["run", spec]);
    assert_eq!(code, 0, "{stderr}");
    let xs: Vec<f64> = project
        .trials("killed")
        .iter()
        .map(|t| t["params"]["x"].as_f64().expect("x"))
        .collect();
    assert_eq!(xs, [2.0, -1.0]);
    assert_eq!(agent_entries(&project).len(), 2);
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}

#[test]
fn a_candidate_claiming_more_than_the_engine_scores_trips_the_reeval_tripwire() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/agent/program/train.py");
    let parent = std::fs::read_to_string(&example).expect("example program");
    let server = serve(vec![files_answer(&one_nn(&parent))]);
    let project = Project::new();
    let program = project.path().join("program");
    std::fs::create_dir_all(&program).expect("workspace");
    std::fs::write(program.join("train.py"), &parent).expect("parent written");
    let (_, alice) = common::key(&project, "alice");
    let tripwire =
        "[[governance.tripwires]]\nkind = \"reeval\"\nmetric = \"val_accuracy\"\ntolerance = 0.01";
    let spec = format!(
        "{}\n{}",
        code_spec(&server.url, 3),
        common::approvers(&[("alice", &alice)], 1, tripwire)
    );
    let spec = project.spec("claims.toml", &spec);
    let (code, stdout, stderr) = project.exec_within(300, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(
        stderr.contains("in its own output, and the engine's score"),
        "{stderr}"
    );
    assert_eq!(
        project.trials("coder").len(),
        1,
        "halted after the first candidate"
    );
}

#[test]
fn an_agent_asks_for_changes_only_through_requests() {
    let asks = json!([
        {"path": "/search/n_trials", "value": 10, "why": "still improving"},
        {"path": "/search/parallelism", "value": 4, "why": "faster"},
    ]);
    let content = json!({"rationale": "r", "params": {"x": 0.5}, "asks": asks});
    let server = serve(vec![Reply::Answer(content.to_string(), 10, 10)]);
    let project = Project::new();
    let (_, alice) = common::key(&project, "alice");
    let spec = format!(
        "{}\n{}",
        agent_spec("asking", &server.url, 2, "", "")
            .replace("parallelism = 1", "parallelism = 1\nask_changes = true"),
        common::approvers(&[("alice", &alice)], 1, "")
    );
    let spec = project.spec("asks.toml", &spec);
    let (code, _, stderr) = project.exec_within(120, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(
        code, 3,
        "n_trials reached with the agent's request pending: {stderr}"
    );
    let (_, requests, _) = project.exec(&["requests", "asking", "--format", "json"]);
    let requests: Value = serde_json::from_str(&requests).expect("requests JSON");
    let requests = requests.as_array().expect("array");
    assert_eq!(
        requests.len(),
        1,
        "one request for both identical asks: {requests:?}"
    );
    assert_eq!(requests[0]["kind"], "budget");
    assert_eq!(requests[0]["requested_by"], "agent:agent");
    assert_eq!(requests[0]["state"], "pending");
    assert!(
        stderr.contains(requests[0]["id"].as_str().expect("id")),
        "{stderr}"
    );
    // The free setting is not the agent's to change, nor to ask for.
    let (_, export, _) = project.exec(&["audit", "export"]);
    assert!(entry_payloads(&export).iter().any(|p| {
        p["kind"] == "denied"
            && p["data"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("/search/parallelism is not one"))
    }));
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}

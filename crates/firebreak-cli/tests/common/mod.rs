//! Helpers shared by the CLI's integration tests: a temporary project folder with
//! a spec, and the `firebreak` binary run against its database.

#![allow(dead_code)]

pub mod slurm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary folder with the fixture trial program and a database.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/trial.py");
        std::fs::copy(fixture, dir.path().join("trial.py")).expect("fixture copied");
        Project { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The engine's checkpoint-signing key of this project (outside the database).
    pub fn engine_key(&self) -> PathBuf {
        self.path().join("keys/engine.key")
    }

    pub fn storage(&self) -> String {
        format!("sqlite://{}", self.path().join("db/firebreak.db").display())
    }

    /// Writes `spec.toml` (or another name) and returns its path.
    pub fn spec(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path().join(name);
        std::fs::write(&path, text).expect("spec written");
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_firebreak"));
        command
            .args(["--storage", &self.storage()])
            .args(args)
            .current_dir(self.path())
            .env("FIREBREAK_ENGINE_KEY", self.engine_key())
            .env_remove("FIREBREAK_STORAGE")
            .env_remove("FIREBREAK_TRIALS_ROOT");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("firebreak ran")
    }

    /// Runs and returns (exit code, stdout, stderr).
    pub fn exec(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.run(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Like `exec`, but kills the command and fails the test after `seconds`, so a
    /// hang shows up as a failure instead of a stuck CI run.
    pub fn exec_within(&self, seconds: u64, args: &[&str]) -> (i32, String, String) {
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("firebreak started");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        while child.try_wait().expect("polled").is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("reaped");
                panic!(
                    "`firebreak {}` did not finish within {seconds} s\n{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("reaped");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `trials CAMPAIGN --format json`, parsed.
    pub fn trials(&self, campaign: &str) -> Vec<serde_json::Value> {
        let (code, stdout, stderr) = self.exec(&["trials", campaign, "--format", "json"]);
        assert_eq!(code, 0, "{stderr}");
        serde_json::from_str(&stdout).expect("trial JSON")
    }

    /// `audit verify --format json`: (exit code, parsed report).
    pub fn verify(&self) -> (i32, serde_json::Value) {
        let (code, stdout, _) = self.exec(&["audit", "verify", "--format", "json"]);
        (code, serde_json::from_str(&stdout).expect("verify JSON"))
    }
}

/// A spec around the fixture program; `space`, `search` and `extra` are TOML lines.
pub fn spec(name: &str, space: &str, search: &str, extra: &str) -> String {
    format!(
        r#"[campaign]
name = "{name}"
seed = 3

[objective]
metric = "y"
direction = "minimize"

[space]
{space}

[search]
{search}

[task]
kind = "command"
command = ["python3", "trial.py", "--x={{x}}"]
{extra}
"#
    )
}

/// Runs tools/verify_ledger.py (the independent verifier) on `export`.
pub fn independent_verifier(project: &Project, export: &str, name: &str) -> (bool, String) {
    let path = project.path().join(name);
    std::fs::write(&path, export).expect("export written");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_ledger.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The export with entry `seq`'s payload edited by `edit` and every later entry's
/// `prev` and hash recomputed, as a careful forger would.
pub fn forge(export: &str, seq: usize, edit: impl Fn(&mut serde_json::Value)) -> String {
    let mut prev: Option<String> = None;
    export
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let Some(s) = record["seq"].as_u64().map(|s| s as usize) else {
                return line.to_string(); // a checkpoint
            };
            if s >= seq {
                let mut payload: serde_json::Value =
                    serde_json::from_str(record["payload"].as_str().expect("payload"))
                        .expect("JSON");
                if s == seq {
                    edit(&mut payload);
                }
                if let Some(p) = &prev {
                    payload["prev"] = serde_json::Value::String(p.clone());
                }
                let text = firebreak_ledger::canonical_json(&payload).expect("canonical");
                record["hash"] = serde_json::Value::String(firebreak_ledger::hex(
                    &firebreak_ledger::leaf_hash(text.as_bytes()),
                ));
                record["payload"] = serde_json::Value::String(text);
            }
            prev = record["hash"].as_str().map(str::to_string);
            record.to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The payloads of an export's entries, parsed, in `seq` order (checkpoints and
/// redacted entries left out).
pub fn entry_payloads(export: &str) -> Vec<serde_json::Value> {
    export
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("JSON line"))
        .filter_map(|record| {
            record["payload"]
                .as_str()
                .map(|p| serde_json::from_str(p).expect("payload JSON"))
        })
        .collect()
}

/// An export of these payloads as a forger who can rewrite the whole database
/// writes it: numbered from 0, every `seq`, `prev` and hash recomputed, and no
/// checkpoints (they cannot be signed again without the engine's key, so the
/// forger deletes them).
pub fn reseal(payloads: &[serde_json::Value]) -> String {
    let mut prev = firebreak_ledger::hex(&firebreak_ledger::GENESIS);
    let mut lines = Vec::new();
    for (seq, payload) in payloads.iter().enumerate() {
        let mut payload = payload.clone();
        payload["seq"] = serde_json::json!(seq);
        payload["prev"] = serde_json::Value::String(prev.clone());
        let text = firebreak_ledger::canonical_json(&payload).expect("canonical");
        let hash = firebreak_ledger::hex(&firebreak_ledger::leaf_hash(text.as_bytes()));
        lines.push(
            serde_json::json!({
                "seq": seq,
                "campaign": payload["campaign"],
                "kind": payload["kind"],
                "payload": text,
                "hash": hash,
            })
            .to_string(),
        );
        prev = hash;
    }
    lines.join("\n")
}

/// Runs tools/verify_ledger.py on `export`: (exit code, stdout and stderr).
pub fn independent_verifier_status(project: &Project, export: &str, name: &str) -> (i32, String) {
    let path = project.path().join(name);
    std::fs::write(&path, export).expect("export written");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/verify_ledger.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(&path)
        .output()
        .expect("python3 runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// Makes a key pair; returns (private key path, `ed25519:` public key).
pub fn key(project: &Project, name: &str) -> (String, String) {
    let path = project.path().join(format!("{name}.pem"));
    let (code, stdout, stderr) =
        project.exec(&["keys", "new", name, "--out", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let public = stdout
        .split_whitespace()
        .find(|w| w.starts_with("ed25519:"))
        .expect("public key printed")
        .to_string();
    (path.display().to_string(), public)
}

/// A `[governance]` section listing these approvers (name, public key).
pub fn approvers(list: &[(&str, &str)], quorum: u32, extra: &str) -> String {
    let entries: Vec<String> = list
        .iter()
        .map(|(name, key)| format!("{{ name = \"{name}\", key = \"{key}\" }}"))
        .collect();
    format!(
        "[governance]\nquorum = {quorum}\napprovers = [{}]\n{extra}",
        entries.join(", ")
    )
}

/// Runs SQL statements on the project's database, as an attacker with write
/// access would (the append-only triggers still allow INSERT).
pub fn sql(project: &Project, statements: &[&str]) {
    use sqlx::Connection as _;
    let url = project.storage();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connected");
        for statement in statements {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*statement))
                .execute(&mut conn)
                .await
                .expect(statement);
        }
        conn.close().await.expect("closed");
    });
}

/// The `data` of every `agent_answered` entry of the project's ledger, in order.
pub fn agent_entries(project: &Project) -> Vec<serde_json::Value> {
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    entry_payloads(&export)
        .into_iter()
        .filter(|p| p["kind"] == "agent_answered")
        .map(|p| p["data"].clone())
        .collect()
}

/// Appends `event` to the ledger as a correctly chained entry of `campaign`,
/// with no key at all; returns its seq.
pub fn append_forged(project: &Project, campaign: &str, event: &firebreak_ledger::Event) -> u64 {
    let (seq, prev) = {
        let (code, export, stderr) = project.exec(&["audit", "export"]);
        assert_eq!(code, 0, "{stderr}");
        let head = export
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON line"))
            .rfind(|e| e.get("payload").is_some())
            .expect("a ledger");
        let hash = head["hash"].as_str().expect("hash");
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hash[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&bytes);
        (head["seq"].as_u64().expect("seq") + 1, prev)
    };
    let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
    let entry = firebreak_ledger::Entry::seal(seq, &prev, campaign, now, event).expect("sealed");
    let hash: String = entry.hash.iter().map(|b| format!("{b:02X}")).collect();
    sql(
        project,
        &[&format!(
            "INSERT INTO ledger (seq, campaign, kind, payload, hash) VALUES ({seq}, '{campaign}', '{}', '{}', X'{hash}')",
            entry.kind,
            entry.payload.replace('\'', "''")
        )],
    );
    seq
}

/// `requests --format json`, parsed.
pub fn requests(project: &Project) -> Vec<serde_json::Value> {
    let (code, stdout, stderr) = project.exec(&["requests", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("requests JSON")
}

/// The id of the pending request of this kind (the test fails without one).
pub fn pending(project: &Project, kind: &str) -> String {
    requests(project)
        .iter()
        .find(|r| r["kind"] == kind && r["state"] == "pending")
        .unwrap_or_else(|| panic!("a pending {kind} request in {:?}", requests(project)))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// What the trial program's `slow` mode wrote into `markers` when it found
/// another live process running its trial (a trial run twice at once).
pub fn violations(markers: &Path) -> Vec<String> {
    std::fs::read_dir(markers)
        .expect("markers")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("violation"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect()
}

/// A fresh database of the test PostgreSQL (`firebreak-pgtest`).
pub fn fresh_postgres() -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(firebreak_pgtest::fresh_database())
}

/// Checks that trial `number` (a PBT replacement) resumed from a copied
/// checkpoint: its log names the epoch it resumed from, and its first report,
/// if it had epochs left, is the next one.
pub fn assert_resumed(number: u64, log: &str, trial: &serde_json::Value) {
    let epoch: u64 = log
        .split("resumed from epoch ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|e| e.parse().ok())
        .unwrap_or_else(|| panic!("trial {number} did not resume: {log}"));
    assert!(epoch >= 1, "trial {number} resumed from nothing");
    if let Some(first) = trial["intermediate"][0]["step"].as_u64() {
        assert_eq!(first, epoch + 1, "trial {number}");
    }
}

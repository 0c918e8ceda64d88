//! The ledger against tampering and for determinism: every edit, deletion,
//! reordering or insertion in the ledger or the state tables makes `audit verify`
//! exit 4 naming the first bad entry; two runs of one spec and seed on one worker
//! write the same trials and ledger payloads.

mod common;

use common::{Project, forge, independent_verifier, spec, sql};
use serde_json::Value;
use sqlx::Connection;

fn fresh() -> Project {
    let project = Project::new();
    let path = project.spec(
        "spec.toml",
        &spec(
            "tamper",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 3",
            "env = { MODE = \"ok\" }",
        ),
    );
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(project.verify().0, 0);
    project
}

const UNLOCK: &str =
    "DROP TRIGGER ledger_append_only_update; DROP TRIGGER ledger_append_only_delete;";

const RELOCK: &str = "CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger \
     BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END; \
     CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger \
     BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END;";

/// Applies `statements` to a fresh database and expects exit 4 at `seq`.
fn check(statements: &[&str], seq: Option<u64>) {
    let project = fresh();
    let mut all = vec![UNLOCK];
    all.extend_from_slice(statements);
    sql(&project, &all);
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{statements:?}: {report}");
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["first_bad_seq"].as_u64(),
        seq,
        "{statements:?}: {report}"
    );
}

#[test]
fn tampering_is_caught_and_located() {
    // Layout: 0 campaign_created, 1 run_started, then per trial proposed, started,
    // reported, finished (2..=5 trial 0, 6..=9 trial 1, 10..=13 trial 2), 14 run_ended.
    // An edited ledger payload.
    check(
        &["UPDATE ledger SET payload = replace(payload, '\"step\":1', '\"step\":2') WHERE seq = 8"],
        Some(8),
    );
    // An edited trial row: the state contradicts trial 1's last entry.
    check(
        &["UPDATE trials SET metrics = '{\"y\":0.0}' WHERE number = 1"],
        Some(9),
    );
    // Columns the budgets are computed from: a trial's CPU seconds (it fed
    // max_cpu_time) and a run's start (it fed max_wall_time).
    check(
        &["UPDATE trials SET cpu_seconds = 0 WHERE number = 1"],
        Some(9),
    );
    check(
        &["UPDATE runs SET started_at = started_at + 3600000"],
        Some(14),
    );
    // A deleted ledger row.
    check(&["DELETE FROM ledger WHERE seq = 6"], Some(6));
    // Reordered ledger rows.
    check(
        &[
            "UPDATE ledger SET seq = 100 WHERE seq = 4",
            "UPDATE ledger SET seq = 4 WHERE seq = 5",
            "UPDATE ledger SET seq = 5 WHERE seq = 100",
        ],
        Some(4),
    );
    // An inserted trial row with no ledger entry: named at the first missing seq.
    check(
        &[
            "INSERT INTO trials (campaign, number, state, params, proposer, rationale) VALUES ('tamper', 3, 'complete', '{\"x\":0.5}', 'random', 'forged')",
        ],
        Some(15),
    );
    // A deleted trial row.
    check(&["DELETE FROM trials WHERE number = 2"], Some(13));
    // A ledger row appended with a recomputed-looking but wrong hash.
    check(
        &[
            "INSERT INTO ledger (seq, campaign, kind, payload, hash) SELECT 15, campaign, kind, payload, hash FROM ledger WHERE seq = 14",
        ],
        Some(15),
    );
}

#[test]
fn the_append_only_triggers_refuse_edits() {
    let project = fresh();
    let url = project.storage();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connected");
        let error = sqlx::query("UPDATE ledger SET payload = 'x' WHERE seq = 0")
            .execute(&mut conn)
            .await
            .expect_err("refused");
        assert!(
            error.to_string().contains("ledger rows are append-only"),
            "{error}"
        );
    });
}

/// Ledger payloads with the fields `contract.md` exempts from determinism removed.
fn payloads(project: &Project) -> Vec<Value> {
    let url = project.storage();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        use firebreak_store::Store;
        let store = firebreak_store::SqliteStore::open(&url)
            .await
            .expect("opened");
        let rows = store.ledger().await.expect("ledger");
        rows.iter()
            .map(|row| {
                let mut value: Value = serde_json::from_str(&row.payload).expect("JSON");
                let object = value.as_object_mut().expect("object");
                object.remove("at"); // a timestamp
                object.remove("prev"); // hashes cover timestamps
                if let Some(data) = object.get_mut("data").and_then(Value::as_object_mut) {
                    for key in ["cpu_seconds", "wall_seconds", "pid", "host", "os_user"] {
                        data.remove(key);
                    }
                }
                value
            })
            .collect()
    })
}

#[test]
fn same_spec_and_seed_give_the_same_trials_and_ledger() {
    let text = spec(
        "det",
        r#"x = { type = "float", low = 0.0, high = 1.0, log = false }
kind = { type = "categorical", choices = ["a", "b", 3, true] }"#,
        "sampler = \"random\"\nscheduler = \"median\"\nn_trials = 8\nparallelism = 1\n[search.scheduler_options]\nmin_trials = 1",
        "env = { MODE = \"ok\" }",
    );
    let runs: Vec<(Vec<Value>, Vec<Value>)> = (0..2)
        .map(|_| {
            let project = Project::new();
            let path = project.spec("spec.toml", &text);
            let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
            assert_eq!(code, 0, "{stderr}");
            let trials: Vec<Value> = project
                .trials("det")
                .into_iter()
                .map(|t| {
                    serde_json::json!([
                        t["number"],
                        t["state"],
                        t["params"],
                        t["proposer"],
                        t["rationale"],
                        t["metrics"]
                    ])
                })
                .collect();
            (trials, payloads(&project))
        })
        .collect();
    assert_eq!(runs[0].0, runs[1].0);
    assert_eq!(runs[0].1.len(), runs[1].1.len());
    for (a, b) in runs[0].1.iter().zip(&runs[1].1) {
        assert_eq!(a, b);
    }
    // A different seed proposes differently.
    let project = Project::new();
    let path = project.spec("spec.toml", &text.replace("seed = 3", "seed = 4"));
    assert_eq!(project.exec(&["run", path.to_str().expect("utf-8")]).0, 0);
    assert_ne!(project.trials("det")[0]["params"], runs[0].0[0][2]);
}

/// Rewrites trial 1's report (entry 8) and every later entry with recomputed
/// hashes, and the state to match: only signed checkpoints can tell.
fn rewrite_history(project: &Project) {
    let url = project.storage();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("connected");
        sqlx::raw_sql(UNLOCK).execute(&mut conn).await.expect("unlocked");
        let rows: Vec<(i64, String, Vec<u8>)> = sqlx::query_as("SELECT seq, payload, hash FROM ledger ORDER BY seq")
            .fetch_all(&mut conn)
            .await
            .expect("rows");
        let mut prev = rows[7].2.clone();
        for (seq, payload, _) in rows.iter().skip(8) {
            let mut value: Value = serde_json::from_str(payload).expect("JSON");
            if *seq == 8 {
                value["data"]["metrics"]["y"] = serde_json::json!(42.0);
            }
            value["prev"] = Value::String(firebreak_ledger::hex(&prev));
            let payload = firebreak_ledger::canonical_json(&value).expect("canonical");
            let hash = firebreak_ledger::leaf_hash(payload.as_bytes());
            sqlx::query("UPDATE ledger SET payload = ?, hash = ? WHERE seq = ?")
                .bind(&payload)
                .bind(&hash[..])
                .bind(seq)
                .execute(&mut conn)
                .await
                .expect("rewritten");
            prev = hash.to_vec();
        }
        sqlx::raw_sql("UPDATE reports SET metrics = '{\"y\":42.0}' WHERE number = 1; DELETE FROM checkpoints;")
            .execute(&mut conn)
            .await
            .expect("state rewritten");
        // A careful forger puts the append-only triggers back.
        sqlx::raw_sql(RELOCK).execute(&mut conn).await.expect("relocked");
    });
}

#[test]
fn signed_checkpoints_catch_a_rewritten_history() {
    let project = fresh();
    let checkpoint = project.path().join("published-checkpoint.json");
    let (code, stdout, stderr) = project.exec(&[
        "audit",
        "checkpoint",
        "--out",
        checkpoint.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let published: Value = serde_json::from_str(&stdout).expect("checkpoint JSON");
    let key = published["key"].as_str().expect("key").to_string();
    // An inclusion proof of any entry verifies against the checkpoint.
    let (code, stdout, _) = project.exec(&["audit", "proof", "6"]);
    assert_eq!(code, 0);
    let proof: Value = serde_json::from_str(&stdout).expect("proof JSON");
    assert_eq!(
        (proof["verified"].as_bool(), &proof["root"]),
        (Some(true), &published["root"])
    );

    rewrite_history(&project);
    // The checkpoints published beside the database expose the rewrite at once …
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("published checkpoint") && reason.contains("history was rewritten"),
        "{report}"
    );
    // … unless the attacker finds and deletes them too: the chain and the state
    // agree with each other again, and the plain audit passes.
    std::fs::remove_dir_all(published_folder(&project)).expect("published folder removed");
    assert_eq!(project.verify().0, 0);
    // A checkpoint kept outside the database exposes the rewrite …
    let (code, stdout, _) = project.exec(&[
        "audit",
        "verify",
        "--trusted",
        checkpoint.to_str().expect("utf-8"),
        "--format",
        "json",
    ]);
    assert_eq!(code, 4, "{stdout}");
    assert!(stdout.contains("history was rewritten"), "{stdout}");
    // … and so does the engine's public key, with no checkpoint it signed left.
    let (code, stdout, _) = project.exec(&["audit", "verify", "--trusted", &key]);
    assert_eq!(code, 4, "{stdout}");
    assert!(
        stdout.contains("no stored checkpoint is signed by the trusted key"),
        "{stdout}"
    );
}

#[test]
fn keys_are_pem_files_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let project = Project::new();
    let path = project.path().join("alice.pem");
    let (code, stdout, stderr) = project.exec(&[
        "keys",
        "new",
        "alice",
        "--out",
        path.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.trim().starts_with("ed25519:") && stdout.trim().len() == 52,
        "{stdout}"
    );
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        std::fs::read_to_string(&path)
            .expect("pem")
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert_ne!(
        project
            .exec(&[
                "keys",
                "new",
                "alice",
                "--out",
                path.to_str().expect("utf-8")
            ])
            .0,
        0,
        "never overwrites"
    );
}

#[test]
fn the_independent_verifier_accepts_the_export_and_rejects_every_tampering() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import cryptography"])
        .status();
    assert!(
        probe.is_ok_and(|s| s.success()),
        "the independent verifier needs python3 with the `cryptography` package (.ci/run installs it)"
    );
    let project = fresh();
    assert_eq!(project.exec(&["audit", "checkpoint"]).0, 0); // a second checkpoint: a consistency proof
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let (ok, text) = independent_verifier(&project, &export, "original.jsonl");
    assert!(ok, "the original export was rejected: {text}");
    assert!(text.contains("2 checkpoints"), "{text}");

    let lines: Vec<&str> = export.lines().collect();
    let with_lines = |f: &dyn Fn(&mut Vec<String>)| {
        let mut owned: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        f(&mut owned);
        owned.join("\n")
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "edited payload",
            export.replacen("\\\"step\\\":1", "\\\"step\\\":2", 1),
        ),
        (
            "deleted entry",
            with_lines(&|l| {
                l.remove(6);
            }),
        ),
        ("reordered entries", with_lines(&|l| l.swap(4, 5))),
        (
            "inserted entry",
            with_lines(&|l| {
                let copy = l[3].clone();
                l.insert(4, copy);
            }),
        ),
        (
            "edited hash",
            with_lines(&|l| {
                let mut record: Value = serde_json::from_str(&l[2]).expect("JSON");
                record["hash"] = Value::String("00".repeat(32));
                l[2] = record.to_string();
            }),
        ),
        (
            "rewritten history, hashes recomputed",
            forge(&export, 8, |p| {
                p["data"]["metrics"]["y"] = serde_json::json!(42)
            }),
        ),
        (
            "edited checkpoint root",
            with_lines(&|l| {
                let last = l.len() - 1;
                let mut record: Value = serde_json::from_str(&l[last]).expect("JSON");
                record["checkpoint"]["root"] = Value::String("11".repeat(32));
                l[last] = record.to_string();
            }),
        ),
        (
            "forged checkpoint signature",
            with_lines(&|l| {
                let last = l.len() - 1;
                let mut record: Value = serde_json::from_str(&l[last]).expect("JSON");
                let signature = record["checkpoint"]["signature"]
                    .as_str()
                    .expect("signature")
                    .to_string();
                let flipped = if signature.starts_with('A') {
                    signature.replacen('A', "B", 1)
                } else {
                    format!("A{}", &signature[1..])
                };
                record["checkpoint"]["signature"] = Value::String(flipped);
                l[last] = record.to_string();
            }),
        ),
        (
            "shrunk checkpoint",
            with_lines(&|l| {
                let last = l.len() - 1;
                let mut record: Value = serde_json::from_str(&l[last]).expect("JSON");
                record["checkpoint"]["tree_size"] = serde_json::json!(3);
                l[last] = record.to_string();
            }),
        ),
    ];
    for (i, (name, tampered)) in cases.iter().enumerate() {
        assert_ne!(tampered, &export, "{name}: nothing was changed");
        let (ok, text) = independent_verifier(&project, tampered, &format!("tampered-{i}.jsonl"));
        assert!(!ok, "{name}: accepted: {text}");
        assert!(text.contains("REJECTED"), "{name}: {text}");
    }
}

#[test]
fn explain_shows_why_and_proves_inclusion() {
    let project = fresh();
    let (code, stdout, stderr) = project.exec(&["explain", "tamper", "1", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let value: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(value["proposer"], "tpe");
    assert!(
        value["rationale"]
            .as_str()
            .unwrap_or_default()
            .starts_with("tpe: independent draws")
    );
    let kinds: Vec<&str> = value["ledger"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "trial_proposed",
            "trial_started",
            "trial_reported",
            "trial_finished"
        ]
    );
    assert_eq!(value["proposal_inclusion"]["verified"], true);
    assert_eq!(value["proposal_inclusion"]["seq"], 6);
    let (code, _, stderr) = project.exec(&["explain", "tamper", "9"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no trial 9"), "{stderr}");
}

#[test]
fn the_audit_report_summarises_a_campaign() {
    let project = fresh();
    let (code, report, stderr) = project.exec(&["audit", "report", "tamper"]);
    assert_eq!(code, 0, "{stderr}");
    for needle in [
        "# Audit report: campaign `tamper`",
        "- ledger verification: passed (15 entries",
        "| trials | max_trials no limit | 3 finished |",
        "| tpe | 3 | 0 | 0 | 0 | 0 |",
        "## Re-queued trials\n\nNone.",
        "## Signed checkpoints\n\n- tree size 15, root",
    ] {
        assert!(report.contains(needle), "missing {needle:?} in:\n{report}");
    }
}

/// Where the project's checkpoints are published (beside the database).
fn published_folder(project: &Project) -> std::path::PathBuf {
    project.path().join("db/firebreak.db.checkpoints")
}

#[test]
fn a_truncated_ledger_is_caught_by_the_checkpoints_published_outside_the_database() {
    let project = fresh();
    let files = std::fs::read_dir(published_folder(&project))
        .expect("checkpoints are published")
        .count();
    assert!(files >= 1, "the run published its checkpoint");
    // Cut the last trial and the run's end, with its state rows and every
    // checkpoint stored in the database, and put the triggers back: the chain
    // and the state agree, and the database holds nothing that says more.
    sql(
        &project,
        &[
            UNLOCK,
            "DELETE FROM ledger WHERE seq >= 10",
            "DELETE FROM trials WHERE number = 2",
            "DELETE FROM reports WHERE number = 2",
            "UPDATE runs SET ended_at = NULL, end_reason = NULL",
            "DELETE FROM checkpoints",
            "DELETE FROM merkle_nodes",
            RELOCK,
        ],
    );
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("published checkpoint") && reason.contains("entries were removed"),
        "{report}"
    );
}

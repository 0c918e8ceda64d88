//! `[generations]` end to end through the binary: a campaign driven through a
//! rejected promotion, an approved one, a failed gate and a tripped
//! per-generation rate tripwire, with the ledger, `lineage` and `audit verify`
//! saying exactly that; and edits of the generation columns caught.

mod common;

use common::{
    Project, approvers, entry_payloads, independent_verifier, independent_verifier_status, key,
    pending, requests, reseal, spec, sql,
};
use serde_json::Value;

/// The `data` of every entry of this kind.
fn entries(project: &Project, kind: &str) -> Vec<Value> {
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    entry_payloads(&export)
        .into_iter()
        .filter(|p| p["kind"] == kind)
        .map(|p| p["data"].clone())
        .collect()
}

/// Four generations of two trials: y = the generation's score + x, minimised,
/// so the champions score 10, 8, 7.8 and 1 (x = 0). Generation 1 is rejected,
/// 2 approved, 3 fails `min_improvement` against 2, and 4 improves on 2 by
/// 7, past the per-generation rate tripwire's 5.
fn generations_spec(governance: &str) -> String {
    spec(
        "gens",
        r#"x = { type = "categorical", choices = [0, 1] }"#,
        "sampler = \"grid\"\nn_trials = 8",
        &format!(
            r#"env = {{ MODE = "generations", GENERATION_SCORES = "10,8,7.8,1" }}

[generations]
count = 4
budget = 2
seed_next = ["parent"]
promotion = "approve"
on_gate_failure = "retry"

[generations.gates]
min_improvement = 0.5
reeval_seeds = 2
reeval_tolerance = 0.0

{governance}
[[governance.tripwires]]
kind = "rate"
metric = "y"
max_delta = 5.0
per = "generation"
"#
        ),
    )
}

#[test]
fn promotions_gates_and_a_rate_tripwire_decide_each_generation_boundary() {
    let project = Project::new();
    let (alice_key, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let governance = approvers(&[("alice", &alice), ("bob", &bob)], 1, "");
    let path = project.spec("spec.toml", &generations_spec(&governance));
    let path = path.to_str().expect("utf-8");
    let run = |expected: i32| {
        let (code, stdout, stderr) = project.exec_within(120, &["run", path]);
        assert_eq!(code, expected, "{stdout}\n{stderr}");
        stderr
    };

    // Generation 1: gates pass (nothing promoted before); its promotion waits.
    let stderr = run(3);
    let first = pending(&project, "promotion");
    assert!(stderr.contains(&first), "{stderr}");
    let request = requests(&project)
        .into_iter()
        .find(|r| r["id"] == first.as_str())
        .expect("filed");
    assert_eq!(request["evidence"]["generation"], 1, "{request}");
    assert_eq!(request["evidence"]["gates"]["passed"], true, "{request}");
    // A run while it is pending starts nothing.
    run(3);
    assert_eq!(project.trials("gens").len(), 2);
    let (code, _, stderr) =
        project.exec(&["reject", &first, "--key", &bob_key, "--reason", "not yet"]);
    assert_eq!(code, 0, "{stderr}");

    // Rejected: generation 2 starts from nothing promoted; its promotion is approved.
    run(3);
    let second = pending(&project, "promotion");
    assert_ne!(second, first);
    let (code, _, stderr) = project.exec(&["approve", &second, "--key", &alice_key]);
    assert_eq!(code, 0, "{stderr}");

    // Generation 3 fails min_improvement (8 -> 7.8) and is not promoted, with
    // no request; generation 4 (from generation 2's champion) trips the rate
    // tripwire (8 -> 1).
    run(3);
    let trip = pending(&project, "tripwire");
    let (code, _, stderr) = project.exec(&["approve", &trip, "--key", &alice_key]);
    assert_eq!(code, 0, "{stderr}");
    run(3);
    let fourth = pending(&project, "promotion");
    let (code, _, stderr) = project.exec(&["approve", &fourth, "--key", &bob_key]);
    assert_eq!(code, 0, "{stderr}");
    run(0);

    let started = entries(&project, "generation_started");
    let gated = entries(&project, "generation_gated");
    let closed = entries(&project, "generation_closed");
    assert_eq!(started.len(), 4, "{started:?}");
    assert_eq!(gated.len(), 4, "{gated:?}");
    assert_eq!(closed.len(), 4, "{closed:?}");
    let promoted: Vec<bool> = closed.iter().map(|c| c["promoted"] == true).collect();
    assert_eq!(promoted, [false, true, false, true]);
    assert_eq!(closed[0]["request"], first.as_str());
    assert_eq!(closed[1]["request"], second.as_str());
    assert!(closed[2].get("request").is_none(), "{:?}", closed[2]);
    assert_eq!(closed[3]["request"], fourth.as_str());
    let passed: Vec<bool> = gated.iter().map(|g| g["passed"] == true).collect();
    assert_eq!(passed, [true, true, false, true]);
    let values: Vec<f64> = gated
        .iter()
        .map(|g| g["value"].as_f64().expect("value"))
        .collect();
    assert_eq!(values, [10.0, 8.0, 7.8, 1.0]);
    assert!(
        gated[2]["reasons"]
            .to_string()
            .contains("below min_improvement"),
        "{:?}",
        gated[2]
    );
    assert!(
        gated[3]["reasons"].to_string().contains("rate"),
        "{:?}",
        gated[3]
    );
    // Each gate re-evaluated its champion twice with fresh seeds.
    assert!(
        gated
            .iter()
            .all(|g| g["reevals"].as_array().map(Vec::len) == Some(2))
    );
    // Generation 2 started from nothing promoted; 3 and 4 from generation 2's
    // champion, whose configuration was each one's first trial.
    let champion_2 = closed[1]["champion"].as_u64().expect("champion");
    assert!(started[1].get("from").is_none(), "{:?}", started[1]);
    assert_eq!(started[2]["from"], champion_2);
    assert_eq!(started[3]["from"], champion_2);
    assert_eq!(started[3]["parent"], true);
    // Every trial carries its generation; eight finished, two per generation.
    let trials = project.trials("gens");
    assert_eq!(trials.len(), 8);
    for (index, trial) in trials.iter().enumerate() {
        assert_eq!(trial["generation"], index as u64 / 2 + 1, "{trial}");
    }
    let (code, report, stderr) = project.exec(&["lineage", "gens", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let lineage: Value = serde_json::from_str(&report).expect("lineage JSON");
    let generations = lineage["generations"].as_array().expect("generations");
    assert_eq!(generations.len(), 4);
    assert_eq!(generations[1]["promoted"], true);
    assert_eq!(generations[1]["decided_by"][0], "alice");
    assert_eq!(generations[0]["decided_by"][0], "bob");
    let (code, status, stderr) = project.exec(&["status", "gens"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        status.contains(&format!(
            "generation 4 of 4 (promoted); last promoted champion: trial {}",
            closed[3]["champion"]
        )),
        "{status}"
    );
    let (code, report, stderr) = project.exec(&["audit", "report", "gens"]);
    assert_eq!(code, 0, "{stderr}");
    let section = report
        .split("## Generations")
        .nth(1)
        .expect("a generations section");
    assert!(
        section.contains("decided by alice") && section.contains("below min_improvement"),
        "{section}"
    );
    assert_eq!(project.verify().0, 0);

    // The independent verifier accepts the record, and refuses a forger's
    // resealed ledger that promotes generation 3's champion past its failed
    // gates (or generation 1's past its rejected request).
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let (ok, text) = independent_verifier(&project, &export, "ledger.jsonl");
    assert!(ok, "{text}");
    for generation in [1, 3] {
        let mut payloads = entry_payloads(&export);
        let forged = payloads
            .iter_mut()
            .find(|p| p["kind"] == "generation_closed" && p["data"]["generation"] == generation)
            .expect("closed");
        forged["data"]["promoted"] = Value::Bool(true);
        let (code, text) =
            independent_verifier_status(&project, &reseal(&payloads), "forged.jsonl");
        assert_eq!(code, 1, "{text}");
        assert!(text.contains("promotion"), "{text}");
    }

    // Moving a trial to another generation, or the campaign to another
    // generation, is an edit the audit names.
    sql(
        &project,
        &["UPDATE trials SET generation = 2 WHERE number = 0"],
    );
    let (code, report) = project.verify();
    assert_eq!(code, 4);
    assert!(
        report.to_string().contains("generation differs"),
        "{report}"
    );
    sql(
        &project,
        &["UPDATE trials SET generation = 1 WHERE number = 0"],
    );
    assert_eq!(project.verify().0, 0);
    sql(&project, &["UPDATE campaigns SET generation = 3"]);
    let (code, report) = project.verify();
    assert_eq!(code, 4);
    assert!(
        report.to_string().contains("current generation"),
        "{report}"
    );
}

#[test]
fn auto_promotion_and_a_failed_reeval_gate_with_stop() {
    let project = Project::new();
    // `seeded`: y = x + seed / 2^31, so a re-evaluation with a fresh seed disagrees.
    let text = spec(
        "auto",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"random\"\nn_trials = 6",
        r#"env = { MODE = "seeded" }

[generations]
count = 3
budget = 2
promotion = "auto"
on_gate_failure = "stop"

[generations.gates]
reeval_seeds = 1
reeval_tolerance = 0.000001
"#,
    );
    let path = project.spec("spec.toml", &text);
    let (code, stdout, stderr) = project.exec_within(120, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stderr.contains("on_gate_failure"), "{stderr}");
    let closed = entries(&project, "generation_closed");
    assert_eq!(closed.len(), 1, "{closed:?}");
    assert_eq!(closed[0]["promoted"], false);
    let gated = entries(&project, "generation_gated");
    assert!(
        gated[0]["reasons"].to_string().contains("reeval"),
        "{gated:?}"
    );
    assert!(requests(&project).is_empty(), "auto files no request");
    assert_eq!(
        project.trials("auto").len(),
        2,
        "no generation after a stop"
    );
    assert_eq!(project.verify().0, 0);
}

#[test]
fn a_forged_promotion_is_caught_and_no_generation_starts_on_it() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let governance = approvers(&[("alice", &alice)], 1, "");
    let text = spec(
        "forged",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"random\"\nn_trials = 2",
        &format!(
            "env = {{ MODE = \"ok\" }}\n\n[generations]\ncount = 2\nbudget = 1\n\n\
             [generations.gates]\nreeval_seeds = 0\n\n{governance}"
        ),
    );
    let path = project.spec("spec.toml", &text);
    let path = path.to_str().expect("utf-8");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 3, "{stderr}");
    let champion = entries(&project, "generation_gated")[0]["champion"].clone();
    // Someone with write access promotes the champion without the request.
    let event = firebreak_ledger::Event::GenerationClosed {
        generation: 1,
        champion: champion.as_u64(),
        promoted: true,
        request: None,
        reason: "promoted by hand".into(),
    };
    let seq = common::append_forged(&project, "forged", &event);
    let (code, report) = project.verify();
    assert_eq!(code, 4);
    assert_eq!(report["first_bad_seq"], seq, "{report}");
    assert!(
        report["reason"].to_string().contains("no approved request"),
        "{report}"
    );
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 4, "{stderr}");
    assert_eq!(
        project.trials("forged").len(),
        1,
        "generation 2 never started"
    );
}

/// `kill -9` of `run` at moments spread over a generational campaign (trials,
/// gate re-evaluations, boundaries), then the same command to the end: every
/// generation started, gated and closed exactly once, each generation's budget
/// finished, and the ledger verifies.
#[test]
fn kill_9_at_any_moment_repeats_no_generation_and_no_gate() {
    let project = Project::new();
    // `steps`: about 1.5 s per trial (and per gate re-evaluation).
    let text = spec(
        "crash",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"random\"\nn_trials = 6\nparallelism = 2",
        r#"env = { MODE = "steps" }

[generations]
count = 3
budget = 2
seed_next = ["parent", "narrow"]
promotion = "auto"

[generations.gates]
min_improvement = -10.0
reeval_seeds = 1
"#,
    );
    let path = project.spec("spec.toml", &text);
    let path = path.to_str().expect("utf-8");
    let mut kills = 0;
    for delay_ms in [700u64, 1900, 2600, 3300, 1200, 4100, 2200, 3700] {
        let mut child = project
            .command(&["run", path])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run started");
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.try_wait().expect("polled").is_some() {
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        kills += 1;
    }
    assert!(kills >= 4, "only {kills} kills landed");
    let (code, stdout, stderr) = project.exec_within(180, &["run", path]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    for kind in [
        "generation_started",
        "generation_gated",
        "generation_closed",
    ] {
        let generations: Vec<u64> = entries(&project, kind)
            .iter()
            .map(|e| e["generation"].as_u64().expect("generation"))
            .collect();
        assert_eq!(generations, [1, 2, 3], "{kind}");
    }
    // The champion a run reports is the last promoted one.
    let last = entries(&project, "generation_closed")[2]["champion"].clone();
    assert!(
        stdout.contains(&format!("champion: trial {last} ")),
        "{stdout}"
    );
    let trials = project.trials("crash");
    let finished = |g: u64| {
        trials
            .iter()
            .filter(|t| t["generation"] == g && t["state"] == "complete")
            .count()
    };
    assert_eq!(
        (finished(1), finished(2), finished(3)),
        (2, 2, 2),
        "{trials:?}"
    );
    assert_eq!(trials.len(), 6, "no trial beyond the budgets: {trials:?}");
    assert_eq!(project.verify().0, 0);
}

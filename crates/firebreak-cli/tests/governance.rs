//! Governance through the command line: a runaway proposer contained by
//! firebreaks, the rules of approving, custom Cedar policies, tripwires.

mod common;

use common::{
    Project, append_forged, approvers, forge, independent_verifier, key, pending, requests, spec,
    sql,
};
use serde_json::Value;

fn export(project: &Project) -> Vec<Value> {
    let (code, stdout, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON line"))
        .collect()
}

/// The payloads of every ledger entry of this kind.
fn entries(project: &Project, kind: &str) -> Vec<Value> {
    export(project)
        .into_iter()
        .filter(|e| e.get("payload").is_some())
        .map(|e| {
            serde_json::from_str::<Value>(e["payload"].as_str().expect("payload"))
                .expect("payload JSON")
        })
        .filter(|p| p["kind"] == kind)
        .collect()
}

fn governed_spec(name: &str, sampler: &str, n_trials: u64, governance: &str) -> String {
    spec(
        name,
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        &format!("sampler = \"{sampler}\"\nn_trials = {n_trials}\nask_changes = true"),
        &format!("env = {{ MODE = \"ok\" }}\n\n{governance}"),
    )
}

fn xs(project: &Project, campaign: &str) -> Vec<f64> {
    project
        .trials(campaign)
        .iter()
        .map(|t| t["params"]["x"].as_f64().expect("x"))
        .collect()
}

#[test]
fn a_runaway_proposer_is_contained_until_a_quorum_approves() {
    let project = Project::new();
    let (alice_key, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let (carol_key, carol) = key(&project, "carol");
    let governance = approvers(
        &[("alice", &alice), ("bob", &bob), ("carol", &carol)],
        2,
        "",
    );
    let path = project.spec(
        "spec.toml",
        &governed_spec("runaway", "adversary", 6, &governance),
    );
    let path = path.to_str().expect("utf-8");

    // The adversary proposes out of bounds every third time and asks for wider
    // bounds and double the trials every third trial: none of it takes effect.
    let (code, _, stderr) = project.exec_within(120, &["run", path]);
    assert_eq!(code, 3, "halted at the firebreak: {stderr}");
    assert!(stderr.contains("firebreak"), "{stderr}");
    let before = xs(&project, "runaway");
    assert_eq!(before.len(), 6, "no trial past the original budget");
    assert!(before.iter().all(|x| (0.0..=1.0).contains(x)), "{before:?}");
    let denied = entries(&project, "denied");
    assert!(
        denied.iter().any(|d| d["data"]["action"] == "propose_trial"
            && d["data"]["principal"] == "agent:adversary"),
        "out-of-bounds proposals are recorded: {denied:?}"
    );
    let budget = pending(&project, "budget");
    let space = pending(&project, "space");
    let filed = entries(&project, "request_filed");
    assert!(
        filed
            .iter()
            .all(|f| f["data"]["request"]["requested_by"] == "agent:adversary")
    );

    // The rules: an agent never decides, nobody decides their own request, a
    // signature counts only for the request it signed, one decision per person,
    // a local user without a key never decides.
    let (code, _, stderr) = project.exec(&[
        "approve",
        &budget,
        "--as",
        "agent:adversary",
        "--signature",
        "AAAA",
    ]);
    assert_eq!(code, 1, "an agent's approval is refused: {stderr}");
    assert!(stderr.contains("machines-never-decide"), "{stderr}");
    let (code, _, stderr) = project.exec(&["approve", &budget, "--key", &bob_key]);
    assert_eq!(code, 0, "{stderr}");
    let bob_signature = entries(&project, "request_decided")[0]["data"]["decision"]["signature"]
        .as_str()
        .expect("signature")
        .to_string();
    let (code, _, stderr) = project.exec(&[
        "approve",
        &space,
        "--as",
        "bob",
        "--signature",
        &bob_signature,
    ]);
    assert_eq!(code, 1, "a replayed approval is refused: {stderr}");
    assert!(stderr.contains("signature"), "{stderr}");
    let (code, _, stderr) = project.exec(&["approve", &budget, "--key", &bob_key]);
    assert_eq!(
        code, 1,
        "a second approval by one person is refused: {stderr}"
    );
    assert!(stderr.contains("already decided"), "{stderr}");

    // A person's own edit: alice asks for more trials and cannot approve it.
    let edited = governed_spec("runaway", "adversary", 7, &governance);
    std::fs::write(project.path().join("spec.toml"), edited).expect("edited");
    let (code, _, stderr) =
        project.exec_within(60, &["run", path, "--as", "alice", "--key", &alice_key]);
    assert_eq!(code, 3, "{stderr}");
    let own = requests(&project)
        .into_iter()
        .find(|r| r["requested_by"] == "alice")
        .expect("alice's request");
    assert_eq!(own["state"], "pending");
    let own_id = own["id"].as_str().expect("id");
    let (code, _, stderr) = project.exec(&["approve", own_id, "--key", &alice_key]);
    assert_eq!(code, 1, "self-approval is refused: {stderr}");
    // Her request superseded the agent's budget request (one pending per kind).
    let states: Vec<(String, String)> = requests(&project)
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or_default().to_string(),
                r["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        states.contains(&(budget.clone(), "superseded".to_string())),
        "{states:?}"
    );
    assert_eq!(
        xs(&project, "runaway").len(),
        6,
        "still nothing past the approved budget"
    );

    // With the quorum's signed approvals the change takes effect.
    for key in [&bob_key, &carol_key] {
        let (code, _, stderr) = project.exec(&["approve", own_id, "--key", key]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert!(code == 0 || code == 3, "{stderr}");
    let after = xs(&project, "runaway");
    assert_eq!(after.len(), 7, "the approved budget: {stderr}");
    assert!(
        after.iter().all(|x| (0.0..=1.0).contains(x)),
        "the space was never approved: {after:?}"
    );
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
}

#[test]
fn an_expired_request_cannot_be_approved() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let governance = approvers(
        &[("alice", &alice), ("bob", &bob)],
        1,
        "request_ttl = \"1s\"",
    );
    let path = project.spec("spec.toml", &governed_spec("ttl", "random", 2, &governance));
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    std::fs::write(
        project.path().join("spec.toml"),
        governed_spec("ttl", "random", 3, &governance),
    )
    .expect("edited");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 3, "{stderr}");
    let id = pending(&project, "budget");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let (code, _, stderr) = project.exec(&["approve", &id, "--key", &bob_key]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("expired"), "{stderr}");
    let state = requests(&project)
        .into_iter()
        .find(|r| r["id"] == id.as_str())
        .expect("request")["state"]
        .clone();
    assert_eq!(state, "expired");
    assert_eq!(project.verify().0, 0);
}

#[test]
fn a_campaign_without_approvers_cannot_change_its_governed_settings() {
    let project = Project::new();
    let text = |n: u64| {
        spec(
            "frozen",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            &format!("n_trials = {n}"),
            "env = { MODE = \"ok\" }",
        )
    };
    let path = project.spec("spec.toml", &text(2));
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    std::fs::write(project.path().join("spec.toml"), text(4)).expect("edited");
    let (code, _, stderr) = project.exec(&["run", path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no approvers"), "{stderr}");
    assert!(stderr.contains("/search/n_trials"), "{stderr}");
}

#[test]
fn a_custom_policy_that_denies_proposals_stops_the_campaign_naming_it() {
    let project = Project::new();
    std::fs::write(
        project.path().join("policy.cedar"),
        "@id(\"no-proposals\")\nforbid (principal, action == Firebreak::Action::\"propose_trial\", resource);\n\
         @id(\"workers\")\npermit (principal is Firebreak::Worker, action == Firebreak::Action::\"start_trial\", resource);\n",
    )
    .expect("policy written");
    let path = project.spec(
        "spec.toml",
        &spec(
            "denied",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            "n_trials = 3",
            "env = { MODE = \"ok\" }\n\n[governance]\npolicy = \"policy.cedar\"",
        ),
    );
    let (code, _, stderr) = project.exec_within(60, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no-proposals"), "{stderr}");
    assert!(project.trials("denied").is_empty());
    let denied = entries(&project, "denied");
    assert_eq!(
        denied[0]["data"]["policy"]["policies"][0], "no-proposals",
        "{denied:?}"
    );
    // A person's `enqueue` is a proposal too: the same policy refuses it.
    let (code, _, stderr) = project.exec(&["enqueue", "denied", "--params", "{\"x\": 0.5}"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("no-proposals"), "{stderr}");
    assert!(project.trials("denied").is_empty(), "nothing was queued");
    let denied = entries(&project, "denied");
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(
        denied[1]["data"]["principal"],
        format!("local:{}", whoami())
    );
    // An edited policy file is a governed change of a campaign without approvers.
    std::fs::write(project.path().join("policy.cedar"), "// nothing\n").expect("edited");
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/governance/policy_text"), "{stderr}");
}

#[test]
fn a_tripped_tripwire_halts_until_approved() {
    let project = Project::new();
    let (alice_key, alice) = key(&project, "alice");
    let tripwire = "[[governance.tripwires]]\nkind = \"threshold\"\nmetric = \"y\"\nbelow = 0.5";
    let governance = approvers(&[("alice", &alice)], 1, tripwire);
    let path = project.spec(
        "spec.toml",
        &governed_spec("wire", "random", 12, &governance),
    );
    let path = path.to_str().expect("utf-8");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("tripwire 0"), "{stderr}");
    let id = pending(&project, "tripwire");
    assert!(stderr.contains(&id), "the request is named: {stderr}");
    let tripped = project.trials("wire").len();
    assert!(tripped < 12);
    // Halted: a new run starts nothing until a person approves.
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(project.trials("wire").len(), tripped);
    let (code, _, stderr) = project.exec(&["approve", &id, "--key", &alice_key]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert!(code == 0 || code == 3, "{stderr}");
    assert!(project.trials("wire").len() > tripped, "{stderr}");
    assert_eq!(project.verify().0, 0);
    let (code, report, stderr) = project.exec(&["audit", "report", "wire"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(report.contains("## Tripwires fired"), "{report}");
    assert!(report.contains(&format!("{id} (approved)")), "{report}");
    assert!(report.contains("approve by alice (signed"), "{report}");
    let (code, explain, stderr) = project.exec(&["explain", "wire", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        explain.contains("allow by policy propose-within-space"),
        "{explain}"
    );
}

#[test]
fn the_independent_verifier_checks_requests_and_signed_decisions() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let governance = approvers(&[("alice", &alice), ("bob", &bob)], 1, "");
    let path = project.spec(
        "spec.toml",
        &governed_spec("signed", "random", 2, &governance),
    );
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    for n in [3, 4] {
        std::fs::write(
            project.path().join("spec.toml"),
            governed_spec("signed", "random", n, &governance),
        )
        .expect("edited");
        assert_eq!(project.exec_within(60, &["run", path]).0, 3);
        let id = pending(&project, "budget");
        let (code, _, stderr) = project.exec(&["approve", &id, "--key", &bob_key]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let (ok, text) = independent_verifier(&project, &export, "original.jsonl");
    assert!(ok, "{text}");
    let seq_of = |kind: &str, nth: usize| {
        export
            .lines()
            .filter(|l| l.contains(&format!("\"kind\":\"{kind}\"")))
            .nth(nth)
            .and_then(|l| serde_json::from_str::<Value>(l).ok())
            .and_then(|r| r["seq"].as_u64())
            .expect("entry") as usize
    };
    let first_decision: Value = entries(&project, "request_decided")[0]["data"].clone();
    let cases: Vec<(&str, String)> = vec![
        (
            "edited request, hashes recomputed",
            forge(&export, seq_of("request_filed", 0), |p| {
                p["data"]["request"]["diff"][0]["value"] = serde_json::json!(1000)
            }),
        ),
        (
            "forged decision signature",
            forge(&export, seq_of("request_decided", 0), |p| {
                p["data"]["decision"]["signature"] = first_decision["decision"]["key"]
                    .as_str()
                    .map(|k| Value::String(k.replace("ed25519:", "")))
                    .unwrap_or_default();
            }),
        ),
        (
            "swapped public key",
            forge(&export, seq_of("request_decided", 0), |p| {
                p["data"]["decision"]["key"] = Value::String(alice.clone())
            }),
        ),
        (
            "approval replayed for another request",
            forge(&export, seq_of("request_decided", 1), |p| {
                p["data"]["decision"] = first_decision["decision"].clone()
            }),
        ),
        (
            "self-approval",
            forge(&export, seq_of("request_filed", 1), |p| {
                p["data"]["request"]["requested_by"] = Value::String("bob".into())
            }),
        ),
    ];
    for (i, (name, tampered)) in cases.iter().enumerate() {
        assert_ne!(tampered, &export, "{name}: nothing was changed");
        let (ok, text) = independent_verifier(&project, tampered, &format!("tampered-{i}.jsonl"));
        assert!(!ok, "{name}: accepted: {text}");
    }
}

#[test]
fn a_champion_whose_re_evaluation_disagrees_trips_the_reeval_tripwire() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let tripwire =
        "[[governance.tripwires]]\nkind = \"reeval\"\nmetric = \"y\"\ntolerance = 0.000001";
    let governance = approvers(&[("alice", &alice)], 1, tripwire);
    let honest = spec(
        "honest",
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        "sampler = \"random\"\nn_trials = 4",
        &format!("env = {{ MODE = \"ok\" }}\n\n{governance}"),
    );
    let path = project.spec("honest.toml", &honest);
    let (code, _, stderr) = project.exec_within(60, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "an honest program never trips: {stderr}");
    assert!(
        !entries(&project, "trial_reevaluated").is_empty(),
        "champions were re-evaluated"
    );
    let gaming = honest
        .replace("\"honest\"", "\"gaming\"")
        .replace("MODE = \"ok\"", "MODE = \"seeded\"");
    let path = project.spec("gaming.toml", &gaming);
    let (code, _, stderr) = project.exec_within(60, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("reeval"), "{stderr}");
    assert_eq!(
        project.trials("gaming").len(),
        1,
        "halted after the first champion"
    );
    assert_eq!(project.verify().0, 0);
}

#[test]
fn settings_outside_governance_change_at_once_and_are_recorded() {
    let project = Project::new();
    let text = |sampler: &str| {
        spec(
            "free",
            r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
            &format!("sampler = \"{sampler}\"\nn_trials = 2"),
            "env = { MODE = \"ok\" }",
        )
    };
    let path = project.spec("spec.toml", &text("random"));
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    std::fs::write(project.path().join("spec.toml"), text("tpe")).expect("edited");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 0, "no approvers are needed for the sampler: {stderr}");
    assert!(requests(&project).is_empty());
    let changed = entries(&project, "spec_changed");
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0]["data"]["diff"][0]["path"], "/search/sampler");
    assert!(changed[0]["data"].get("request").is_none());
    assert_eq!(project.verify().0, 0);
}

#[test]
fn a_forged_request_less_spec_change_is_caught_and_nothing_acts_on_it() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let (_, bob) = key(&project, "bob");
    let (_, eve) = key(&project, "eve");
    let governance = approvers(&[("alice", &alice), ("bob", &bob)], 2, "");
    let path = project.spec(
        "spec.toml",
        &governed_spec("forged", "random", 2, &governance),
    );
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    // Raise the budget, widen a bound, add an admin with quorum 1: one chained
    // `spec_changed` with no request, and the stored spec edited to match.
    let record = export(&project)
        .into_iter()
        .filter_map(|e| {
            let payload: Value = serde_json::from_str(e["payload"].as_str()?).ok()?;
            (payload["kind"] == "campaign_created").then(|| payload["data"]["spec"].clone())
        })
        .next()
        .expect("the created spec");
    let diff = serde_json::json!([
        {"op": "replace", "path": "/search/n_trials", "value": 1000},
        {"op": "replace", "path": "/space/x/high", "value": 100.0},
        {"op": "replace", "path": "/governance/quorum", "value": 1},
        {"op": "add", "path": "/governance/approvers/2", "value": {"name": "eve", "key": eve, "role": "admin"}}
    ]);
    let spec = firebreak_ledger::apply_patch(&record, &diff).expect("applies");
    let canonical = firebreak_ledger::canonical_json(&spec).expect("canonical");
    let spec_hash = {
        use sha2::Digest as _;
        firebreak_ledger::hex(&sha2::Sha256::digest(canonical.as_bytes()))
    };
    let event = firebreak_ledger::Event::SpecChanged {
        spec,
        spec_hash: spec_hash.clone(),
        diff,
        request: None,
        by: "alice".into(),
    };
    let seq = append_forged(&project, "forged", &event);
    sql(
        &project,
        &[&format!(
            "UPDATE campaigns SET spec = '{}', spec_hash = '{spec_hash}' WHERE name = 'forged'",
            canonical.replace('\'', "''")
        )],
    );
    let (code, report) = project.verify();
    assert_eq!(code, 4, "{report}");
    assert_eq!(report["first_bad_seq"], seq, "{report}");
    assert!(
        report["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("no approved request"),
        "{report}"
    );
    // The engine refuses to act on it: no trial runs outside the old bounds.
    let before = project.trials("forged").len();
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("does not verify"), "{stderr}");
    assert_eq!(project.trials("forged").len(), before);
    let (code, _, stderr) = project.exec(&["enqueue", "forged", "--params", "{\"x\": 50.0}"]);
    assert_eq!(code, 4, "{stderr}");
}

/// A campaign `name` whose threshold tripwire trips on its first run: alice's
/// key file, the spec's path and the pending tripwire request's id.
fn tripped(project: &Project, name: &str) -> (String, String, String) {
    let (alice_key, alice) = key(project, "alice");
    let tripwire = "[[governance.tripwires]]\nkind = \"threshold\"\nmetric = \"y\"\nbelow = 0.5";
    let governance = approvers(&[("alice", &alice)], 1, tripwire);
    let path = project.spec("spec.toml", &governed_spec(name, "random", 12, &governance));
    let path = path.to_str().expect("utf-8").to_string();
    assert_eq!(project.exec_within(60, &["run", &path]).0, 3);
    (alice_key, path, pending(project, "tripwire"))
}

#[test]
fn a_rejected_tripwire_request_keeps_the_campaign_halted_until_one_is_approved() {
    let project = Project::new();
    let (alice_key, path, id) = tripped(&project, "held");
    let path = path.as_str();
    let tripped = project.trials("held").len();
    let (code, _, stderr) = project.exec(&[
        "reject",
        &id,
        "--key",
        &alice_key,
        "--reason",
        "too good to be true",
    ]);
    assert_eq!(code, 0, "{stderr}");
    for _ in 0..2 {
        let (code, _, stderr) = project.exec_within(60, &["run", path]);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("rejected"), "{stderr}");
        assert_eq!(project.trials("held").len(), tripped, "nothing ran");
    }
    // Asking again is a deliberate act that files a new tripwire request.
    let (code, _, stderr) = project.exec_within(60, &["run", path, "--ask-to-resume"]);
    assert_eq!(code, 3, "{stderr}");
    let again = pending(&project, "tripwire");
    assert_ne!(again, id);
    let (code, _, stderr) = project.exec(&["approve", &again, "--key", &alice_key]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert!(code == 0 || code == 3, "{stderr}");
    assert!(project.trials("held").len() > tripped, "{stderr}");
    assert_eq!(project.verify().0, 0);
}

#[test]
fn a_forged_close_of_a_tripwire_request_does_not_lift_the_halt() {
    let project = Project::new();
    let (_, path, id) = tripped(&project, "lifted");
    let path = path.as_str();
    for state in ["superseded", "expired"] {
        let copy = Project::new();
        std::fs::create_dir_all(copy.path().join("db")).expect("db folder");
        for file in std::fs::read_dir(project.path().join("db")).expect("db folder") {
            let file = file.expect("entry").path();
            if file.is_file() {
                let name = file.file_name().expect("name");
                std::fs::copy(&file, copy.path().join("db").join(name)).expect("copied");
            }
        }
        let event = firebreak_ledger::Event::RequestClosed {
            id: id.clone(),
            state: serde_json::from_value(Value::String(state.into())).expect("state"),
            reason: "forged".into(),
        };
        let seq = append_forged(&copy, "lifted", &event);
        sql(
            &copy,
            &[&format!(
                "UPDATE requests SET state = '{state}', record = json_set(record, '$.state', '{state}') WHERE id = '{id}'"
            )],
        );
        let (code, report) = copy.verify();
        assert_eq!(code, 4, "{state}: {report}");
        assert_eq!(report["first_bad_seq"], seq, "{state}: {report}");
        let (code, _, stderr) = copy.exec_within(60, &["run", path]);
        assert_eq!(code, 4, "{state}: {stderr}");
    }
}

/// The operating-system user the tests run as.
fn whoami() -> String {
    firebreak_runner::os_user()
}

/// One choke point: for each action the docs list as authorised, a policy that
/// is the shipped default plus one `forbid` of that action refuses it, and the
/// refusal names that policy's id.
#[test]
fn a_custom_policy_refuses_each_action_naming_its_id() {
    const DEFAULT: &str = include_str!("../../firebreak-govern/policies/default.cedar");
    let forbid = |id: &str, action: &str, when: &str| {
        format!(
            "{DEFAULT}\n@id(\"{id}\")\nforbid (principal, action == Firebreak::Action::\"{action}\", resource){when};\n"
        )
    };
    // (policy id, action, extra condition, what to do, exit code expected)
    let cases = [
        ("no-starts", "start_trial", ""),
        (
            "no-budget-asks",
            "raise_budget",
            " when { context.stage == \"request\" }",
        ),
        (
            "no-budget-changes",
            "raise_budget",
            " when { context.stage == \"apply\" }",
        ),
        ("no-approvals", "approve", ""),
    ];
    for (id, action, when) in cases {
        let project = Project::new();
        let (_, alice) = key(&project, "alice");
        let (bob_key, bob) = key(&project, "bob");
        // The campaign starts on the shipped policy; the forbidding one arrives
        // as an approved policy change, except for start_trial (from the start).
        let policy_file = project.path().join("policy.cedar");
        let first = if action == "start_trial" {
            forbid(id, action, when)
        } else {
            DEFAULT.to_string()
        };
        std::fs::write(&policy_file, &first).expect("policy written");
        let governance = approvers(
            &[("alice", &alice), ("bob", &bob)],
            1,
            "policy = \"policy.cedar\"",
        );
        let write = |n: u64| {
            std::fs::write(
                project.path().join("spec.toml"),
                governed_spec(id, "random", n, &governance),
            )
            .expect("spec written")
        };
        write(2);
        let path = project.path().join("spec.toml");
        let path = path.to_str().expect("utf-8");
        let (code, _, stderr) = project.exec_within(60, &["run", path]);
        if action == "start_trial" {
            assert_eq!(code, 1, "{id}: {stderr}");
            assert!(stderr.contains(id), "{id}: {stderr}");
            assert!(project.trials(id).is_empty(), "{id}: nothing started");
            continue;
        }
        assert_eq!(code, 0, "{id}: {stderr}");
        // Bring the forbidding policy in through an approved policy request.
        std::fs::write(&policy_file, forbid(id, action, when)).expect("policy edited");
        assert_eq!(project.exec_within(60, &["run", path]).0, 3);
        let policy_request = pending(&project, "policy");
        let (code, _, stderr) = project.exec(&["approve", &policy_request, "--key", &bob_key]);
        assert_eq!(code, 0, "{id}: {stderr}");
        // Now ask for a bigger budget and approve it.
        write(3);
        let (code, _, stderr) = project.exec_within(60, &["run", path]);
        if action == "raise_budget" && when.contains("request") {
            assert_ne!(code, 0, "{id}: {stderr}");
            assert!(stderr.contains(id), "{id}: {stderr}");
            assert!(
                requests(&project).iter().all(|r| r["kind"] != "budget"),
                "{id}: no budget request was filed"
            );
            continue;
        }
        assert_eq!(code, 3, "{id}: {stderr}");
        let budget = pending(&project, "budget");
        let (code, _, stderr) = project.exec(&["approve", &budget, "--key", &bob_key]);
        assert_eq!(code, 1, "{id}: {stderr}");
        assert!(stderr.contains(id), "{id}: {stderr}");
        let denied = entries(&project, "denied");
        let last = denied.last().expect("the refusal is ledgered");
        assert_eq!(last["data"]["policy"]["policies"][0], id, "{id}: {last}");
        assert_eq!(pending(&project, "budget"), budget, "{id}: still pending");
        assert_eq!(project.verify().0, 0, "{id}");
    }
}

#[test]
fn a_rejected_edit_is_not_filed_again_unless_asked_and_the_report_says_why() {
    let project = Project::new();
    let (_, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let governance = approvers(&[("alice", &alice), ("bob", &bob)], 1, "");
    let path = project.spec(
        "spec.toml",
        &governed_spec("again", "random", 2, &governance),
    );
    let path = path.to_str().expect("utf-8");
    assert_eq!(project.exec_within(60, &["run", path]).0, 0);
    std::fs::write(
        project.path().join("spec.toml"),
        governed_spec("again", "random", 5, &governance),
    )
    .expect("edited");
    assert_eq!(project.exec_within(60, &["run", path]).0, 3);
    let id = pending(&project, "budget");
    let reason = "five is too many for this week";
    let (code, _, stderr) = project.exec(&["reject", &id, "--key", &bob_key, "--reason", reason]);
    assert_eq!(code, 0, "{stderr}");
    // The same file again: said, not filed.
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&id) && stderr.contains("rejected by bob") && stderr.contains(reason),
        "{stderr}"
    );
    assert!(stderr.contains("--ask-again"), "{stderr}");
    assert_eq!(requests(&project).len(), 1, "nothing new was filed");
    // On purpose: filed again.
    let (code, _, stderr) = project.exec_within(60, &["run", path, "--ask-again"]);
    assert_eq!(code, 3, "{stderr}");
    assert_ne!(pending(&project, "budget"), id);
    // The audit report carries the rejection's reason.
    let (code, report, stderr) = project.exec(&["audit", "report", "again"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(report.contains(reason), "{report}");
    assert_eq!(project.verify().0, 0);
}

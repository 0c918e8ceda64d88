//! The independent verifier (`tools/verify_ledger.py`) replays governance, not
//! only signatures: real campaigns are built with the command line, their exports
//! forged as an attacker with write access to the database would (every hash
//! recomputed, the checkpoints they cannot sign again deleted), and each forgery
//! must be rejected by the governance rule it breaks, at the entry that breaks it.

mod common;

use common::{Project, approvers, entry_payloads, independent_verifier_status, key, reseal, spec};
use firebreak_ledger::{RequestBody, SignedDecision, Verdict, diff_hash, parse_private_key_pem};
use serde_json::{Value, json};

fn pending(project: &Project, kind: &str) -> String {
    let (code, stdout, stderr) = project.exec(&["requests", "--format", "json"]);
    assert_eq!(code, 0, "{stderr}");
    let requests: Vec<Value> = serde_json::from_str(&stdout).expect("requests JSON");
    requests
        .iter()
        .find(|r| r["kind"] == kind && r["state"] == "pending")
        .unwrap_or_else(|| panic!("a pending {kind} request in {requests:?}"))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

fn export(project: &Project) -> String {
    let (code, stdout, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    stdout
}

/// A campaign of the fixture program with a random sampler and no asks.
fn governed(name: &str, n_trials: u64, governance: &str) -> String {
    spec(
        name,
        r#"x = { type = "float", low = 0.0, high = 1.0 }"#,
        &format!("sampler = \"random\"\nn_trials = {n_trials}"),
        &format!("env = {{ MODE = \"ok\" }}\n\n{governance}"),
    )
}

/// The position of the first payload of this kind that `pick` accepts.
fn seq_of(payloads: &[Value], kind: &str, pick: impl Fn(&Value) -> bool) -> usize {
    payloads
        .iter()
        .position(|p| p["kind"] == kind && pick(&p["data"]))
        .unwrap_or_else(|| panic!("no {kind} entry"))
}

/// A new entry of `campaign` (its `seq` and `prev` are set by `reseal`).
fn entry(campaign: &str, at: &Value, kind: &str, data: Value) -> Value {
    json!({"v": 1, "seq": 0, "prev": "", "campaign": campaign, "at": at, "kind": kind, "data": data})
}

/// A decision signed with the private key in `pem` (a real signature: the
/// forgeries below are ones a key holder could make, so only the governance
/// rules can catch them).
fn signed(pem: &str, by: &str, request_hash: &str) -> Value {
    let text = std::fs::read_to_string(pem).expect("key file");
    let key = parse_private_key_pem(&text).expect("private key");
    let decision = SignedDecision::sign(&key, by, Verdict::Approve, request_hash, "");
    serde_json::to_value(decision).expect("decision JSON")
}

fn accepted(project: &Project, export: &str, name: &str) {
    let (code, text) = independent_verifier_status(project, export, name);
    assert_eq!(
        code, 0,
        "{name}: the untampered export was rejected: {text}"
    );
    assert!(text.starts_with("ok:"), "{name}: {text}");
}

/// The verifier exits 1 with one line naming `seq` and one of `checks`.
fn rejected(project: &Project, payloads: &[Value], name: &str, seq: usize, checks: &[&str]) {
    let (code, text) = independent_verifier_status(project, &reseal(payloads), name);
    assert_eq!(code, 1, "{name}: not rejected: {text}");
    assert!(
        checks
            .iter()
            .any(|check| text.starts_with(&format!("REJECTED seq {seq}: {check}: "))),
        "{name}: expected seq {seq} and one of {checks:?}: {text}"
    );
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "{name}: one line: {text}"
    );
}

#[test]
fn forged_approvals_and_spec_changes_are_rejected_by_the_rule_they_break() {
    let project = Project::new();
    let (alice_key, alice) = key(&project, "alice");
    let (bob_key, bob) = key(&project, "bob");
    let (carol_key, carol) = key(&project, "carol");
    let governance = approvers(
        &[("alice", &alice), ("bob", &bob), ("carol", &carol)],
        2,
        "",
    );
    let path = project.spec("spec.toml", &governed("gov", 2, &governance));
    let path = path.to_str().expect("utf-8");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 0, "{stderr}");
    // Alice asks for 3 trials, then for 4: her second request supersedes the first.
    let mut ids = Vec::new();
    for n in [3, 4] {
        std::fs::write(
            project.path().join("spec.toml"),
            governed("gov", n, &governance),
        )
        .expect("edited");
        let (code, _, stderr) =
            project.exec_within(60, &["run", path, "--as", "alice", "--key", &alice_key]);
        assert_eq!(code, 3, "alice's budget request is parked: {stderr}");
        ids.push(pending(&project, "budget"));
    }
    let (older, id) = (ids[0].clone(), ids[1].clone());
    assert_ne!(older, id);
    for key in [&bob_key, &carol_key] {
        let (code, _, stderr) = project.exec(&["approve", &id, "--key", key]);
        assert_eq!(code, 0, "{stderr}");
    }
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 0, "the approved budget: {stderr}");

    let original = export(&project);
    accepted(&project, &original, "original.jsonl");
    let payloads = entry_payloads(&original);
    accepted(&project, &reseal(&payloads), "resealed.jsonl");

    let filed = seq_of(&payloads, "request_filed", |d| {
        d["request"]["id"] == id.as_str()
    });
    let superseded = seq_of(&payloads, "request_closed", |d| {
        d["id"] == older.as_str() && d["state"] == "superseded"
    });
    assert!(filed < superseded, "the newer request is filed first");
    let request_hash = payloads[filed]["data"]["hash"]
        .as_str()
        .expect("hash")
        .to_string();
    let id_str = id.as_str();
    let by = |name: &'static str| move |d: &Value| d["id"] == id_str && d["decision"]["by"] == name;
    let by_bob = seq_of(&payloads, "request_decided", by("bob"));
    let by_carol = seq_of(&payloads, "request_decided", by("carol"));
    let changed = seq_of(&payloads, "spec_changed", |d| d["request"] == id.as_str());
    assert!(filed < by_bob && by_bob < by_carol && by_carol < changed);

    // A request-less spec change that raises the budget, widens a bound and adds
    // an approver with a quorum of one: chained and hashed correctly, and each
    // edit governed.
    let mut spec = payloads[changed]["data"]["spec"].clone();
    assert!(spec["space"]["x"]["high"].is_number(), "{spec}");
    let mallory = json!({"name": "mallory", "key": alice, "role": "admin"});
    let diff = json!([
        {"op": "replace", "path": "/search/n_trials", "value": 1000},
        {"op": "replace", "path": "/space/x/high", "value": 10.0},
        {"op": "add", "path": "/governance/approvers/-", "value": mallory.clone()},
        {"op": "add", "path": "/governance/quorum", "value": 1},
    ]);
    spec["search"]["n_trials"] = json!(1000);
    spec["space"]["x"]["high"] = json!(10.0);
    spec["governance"]["approvers"]
        .as_array_mut()
        .expect("approvers")
        .push(mallory);
    spec["governance"]["quorum"] = json!(1);
    let last = payloads.last().expect("entries")["at"].clone();
    let mut forged = payloads.clone();
    forged.push(entry(
        "gov",
        &last,
        "spec_changed",
        json!({"spec": spec, "spec_hash": diff_hash(&spec).expect("canonical"), "diff": diff, "by": "local:mallory"}),
    ));
    rejected(
        &project,
        &forged,
        "requestless-spec-change.jsonl",
        payloads.len(),
        &["spec_change"],
    );
    let (_, text) =
        independent_verifier_status(&project, &reseal(&forged), "requestless-spec-change.jsonl");
    assert!(text.contains("without a request"), "{text}");

    // The older request closed as superseded before the newer one was filed.
    let mut forged = payloads.clone();
    let close = forged.remove(superseded);
    forged.insert(filed, close);
    rejected(
        &project,
        &forged,
        "superseded-before-filed.jsonl",
        filed,
        &["supersede"],
    );

    // A person's request superseded by a proposer's: the newer request's
    // requester forged as an agent, its hash recomputed.
    let mut forged = payloads.clone();
    let request = &mut forged[filed]["data"];
    request["request"]["requested_by"] = json!("agent:tpe");
    let body: RequestBody = serde_json::from_value(request["request"].clone()).expect("body");
    request["hash"] = json!(body.hash().expect("canonical"));
    rejected(
        &project,
        &forged,
        "superseded-by-an-agent.jsonl",
        superseded,
        &["supersede"],
    );

    // The requester approves her own request, with a valid signature of her key.
    let mut forged = payloads.clone();
    forged[by_carol]["data"]["decision"] = signed(&alice_key, "alice", &request_hash);
    rejected(
        &project,
        &forged,
        "self-approval.jsonl",
        by_carol,
        &["decision"],
    );

    // One key listed under two names (bob and robert) with quorum 2: bob's key
    // approves twice. The listing is forged into the spec at creation so that the
    // second name is a listed approver; the duplicate key is what is caught.
    let mut forged = payloads.clone();
    let created = &mut forged[0]["data"];
    created["spec"]["governance"]["approvers"]
        .as_array_mut()
        .expect("approvers")
        .push(json!({"name": "robert", "key": bob, "role": "approver"}));
    created["spec_hash"] = json!(diff_hash(&created["spec"]).expect("canonical"));
    forged[by_carol]["data"]["decision"] = signed(&bob_key, "robert", &request_hash);
    rejected(
        &project,
        &forged,
        "one-key-two-names.jsonl",
        by_carol,
        &["decision", "quorum"],
    );

    // A decision recorded after the request's time to live ran out.
    let mut forged = payloads.clone();
    forged[by_bob]["at"] = json!("2999-01-01T00:00:00.000Z");
    rejected(&project, &forged, "decided-late.jsonl", by_bob, &["expiry"]);

    // A request closed as expired at once, long before its `expires_at`.
    let mut forged = payloads.clone();
    let at = forged[filed]["at"].clone();
    forged.insert(
        filed + 1,
        entry(
            "gov",
            &at,
            "request_closed",
            json!({"id": id, "state": "expired", "reason": "its time to live ran out"}),
        ),
    );
    rejected(
        &project,
        &forged,
        "expired-early.jsonl",
        filed + 1,
        &["expiry"],
    );
}

#[test]
fn a_tripwire_halt_cannot_be_forged_away() {
    let project = Project::new();
    let (alice_key, alice) = key(&project, "alice");
    let tripwire = "[[governance.tripwires]]\nkind = \"threshold\"\nmetric = \"y\"\nbelow = 0.5";
    let governance = approvers(&[("alice", &alice)], 1, tripwire);
    let path = project.spec("spec.toml", &governed("wire", 12, &governance));
    let path = path.to_str().expect("utf-8");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert_eq!(code, 3, "tripped: {stderr}");
    let id = pending(&project, "tripwire");

    let halted = export(&project);
    accepted(&project, &halted, "halted.jsonl");
    let payloads = entry_payloads(&halted);
    accepted(&project, &reseal(&payloads), "halted-resealed.jsonl");
    let last = payloads.last().expect("entries")["at"].clone();

    // The pending tripwire request closed as superseded, with no newer request.
    let mut forged = payloads.clone();
    forged.push(entry(
        "wire",
        &last,
        "request_closed",
        json!({"id": id, "state": "superseded", "reason": "superseded by R99"}),
    ));
    rejected(
        &project,
        &forged,
        "superseded-by-nothing.jsonl",
        payloads.len(),
        &["supersede"],
    );

    // A new run starts a trial while the campaign is halted.
    let run = payloads
        .iter()
        .filter(|p| p["kind"] == "run_started")
        .filter_map(|p| p["data"]["run"].as_u64())
        .max()
        .expect("a run")
        + 1;
    let number = payloads
        .iter()
        .filter(|p| p["kind"] == "trial_proposed")
        .filter_map(|p| p["data"]["number"].as_u64())
        .max()
        .expect("a trial")
        + 1;
    let started = seq_of(&payloads, "trial_started", |_| true);
    let policy = payloads[started]["data"]["policy"].clone();
    let mut forged = payloads.clone();
    forged.push(entry(
        "wire",
        &last,
        "run_started",
        json!({"run": run, "version": "0", "os_user": "mallory", "host": "h", "pid": 1}),
    ));
    forged.push(entry(
        "wire",
        &last,
        "trial_proposed",
        json!({"number": number, "params": {"x": 0.25}, "proposer": "random", "rationale": "forged", "policy": policy}),
    ));
    forged.push(entry(
        "wire",
        &last,
        "trial_started",
        json!({"number": number, "run": run, "worker": 0, "policy": policy}),
    ));
    rejected(
        &project,
        &forged,
        "started-while-halted.jsonl",
        payloads.len() + 2,
        &["halt"],
    );

    // Approved: the halt is lifted and a later run's trials are in order.
    let (code, _, stderr) = project.exec(&["approve", &id, "--key", &alice_key]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = project.exec_within(60, &["run", path]);
    assert!(code == 0 || code == 3, "{stderr}");
    let resumed = export(&project);
    let after = entry_payloads(&resumed);
    let filed = seq_of(&after, "request_filed", |d| {
        d["request"]["id"] == id.as_str()
    });
    let later_run = after
        .iter()
        .skip(filed)
        .find(|p| p["kind"] == "run_started")
        .expect("a run after the trip")["data"]["run"]
        .clone();
    assert!(
        after
            .iter()
            .any(|p| p["kind"] == "trial_started" && p["data"]["run"] == later_run),
        "the later run started trials"
    );
    accepted(&project, &resumed, "resumed.jsonl");
}

#[test]
fn malformed_entries_are_rejections_and_a_verifier_failure_is_not() {
    let project = Project::new();
    let path = project.spec("spec.toml", &governed("plain", 1, ""));
    let (code, _, stderr) = project.exec_within(60, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let original = export(&project);
    accepted(&project, &original, "plain.jsonl");
    let payloads = entry_payloads(&original);
    let started = seq_of(&payloads, "trial_started", |_| true);

    let mut forged = payloads.clone();
    forged[started]["data"]
        .as_object_mut()
        .expect("data")
        .remove("run");
    rejected(&project, &forged, "no-run.jsonl", started, &["format"]);
    let (_, text) = independent_verifier_status(&project, &reseal(&forged), "no-run.jsonl");
    assert!(text.contains("data.run is missing"), "{text}");

    let mut forged = payloads.clone();
    forged[0]["data"] = json!("a string");
    rejected(&project, &forged, "data-string.jsonl", 0, &["format"]);

    let mut forged = payloads.clone();
    forged[started]["at"] = json!(17);
    rejected(&project, &forged, "at-number.jsonl", started, &["format"]);

    // A bug of the verifier itself (here, a function made to fail) exits 2 with
    // an error, never a rejection.
    let file = project.path().join("plain.jsonl");
    let tools = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools");
    let program = format!(
        "import sys; sys.path.insert(0, {tools:?}); import verify_ledger as v; \
         v.leaf_hash = lambda data: 1 / 0; sys.argv = ['verify_ledger.py', {file:?}]; v.main()",
        tools = tools.display().to_string(),
        file = file.display().to_string(),
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &program])
        .output()
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("ERROR: verifier failed"), "{text}");
    assert!(!text.contains("REJECTED"), "{text}");
}

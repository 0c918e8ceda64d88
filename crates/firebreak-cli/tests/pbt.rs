//! Population-based training on the worked example (`examples/pbt.toml`): each
//! exploit copies a better trial's checkpoint, the new trial really resumes from
//! it, and the ledger records both trial numbers.

mod common;

use common::Project;
use serde_json::Value;

#[test]
fn pbt_copies_better_trials_checkpoints_and_records_both_numbers() {
    let project = Project::new();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pbt.toml");
    let (code, _, stderr) = project.exec_within(300, &["run", spec.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let trials = project.trials("digits-pbt");
    let (code, export, stderr) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0, "{stderr}");
    let exploits: Vec<Value> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| serde_json::from_str::<Value>(r["payload"].as_str()?).ok())
        .filter(|p| p["kind"] == "trial_proposed" && p["data"].get("exploit").is_some())
        .collect();
    assert!(!exploits.is_empty(), "no exploit happened");
    for entry in &exploits {
        let data = &entry["data"];
        let (number, from, replaces) = (
            data["number"].as_u64().expect("number"),
            data["exploit"]["from"].as_u64().expect("from"),
            data["exploit"]["replaces"].as_u64().expect("replaces"),
        );
        assert_eq!(data["proposer"], "pbt");
        // Only from a better trial: the stopped trial's reason gives both values.
        let replaced = &trials[replaces as usize];
        assert_eq!(replaced["state"], "pruned");
        let reason = replaced["error"].as_str().expect("reason");
        let mine: f64 = reason
            .split(" = ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|v| v.parse().ok())
            .expect("its value");
        let marker = format!("exploit trial {from} (");
        let theirs: f64 = reason
            .split(&marker)
            .nth(1)
            .and_then(|r| r.split(')').next())
            .and_then(|v| v.parse().ok())
            .expect("the donor's value");
        assert!(
            theirs > mine,
            "trial {replaces} copied worse trial {from}: {reason}"
        );
        // The new trial resumed from the copied checkpoint: its log says from
        // which epoch, and its reports (if it had epochs left) go on from there.
        let (code, log, _) = project.exec(&["logs", "digits-pbt", &number.to_string()]);
        assert_eq!(code, 0);
        common::assert_resumed(number, &log, &trials[number as usize]);
    }
    assert_eq!(project.verify().0, 0);
}

#[test]
fn asha_with_pause_resumes_promoted_trials_from_their_checkpoints() {
    let project = Project::new();
    let program =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/digits/train.py");
    let spec = format!(
        r#"[campaign]
name = "paused"
seed = 5

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]
lr = {{ type = "float", low = 1e-3, high = 0.3, log = true }}
l2 = {{ type = "float", low = 1e-6, high = 1e-2, log = true }}

[search]
sampler = "random"
scheduler = "asha"
n_trials = 12
parallelism = 2

[search.scheduler_options]
reduction_factor = 3
min_resource = 1
max_resource = 9
pause = true

[task]
kind = "command"
command = ["python3", "{}"]
env = {{ OMP_NUM_THREADS = "1", DIGITS_EPOCHS = "9" }}
"#,
        program.display()
    );
    let path = project.spec("paused.toml", &spec);
    let (code, _, stderr) = project.exec_within(300, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let (code, export, _) = project.exec(&["audit", "export"]);
    assert_eq!(code, 0);
    let resumed: Vec<u64> = export
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|r| serde_json::from_str::<Value>(r["payload"].as_str()?).ok())
        .filter(|p| p["kind"] == "trial_resumed")
        .filter_map(|p| p["data"]["number"].as_u64())
        .collect();
    assert!(!resumed.is_empty(), "no paused trial was promoted");
    let trials = project.trials("paused");
    for number in resumed {
        let steps: Vec<u64> = trials[number as usize]["intermediate"]
            .as_array()
            .expect("reports")
            .iter()
            .filter_map(|r| r["step"].as_u64())
            .collect();
        let expected: Vec<u64> = (1..=steps.len() as u64).collect();
        assert_eq!(steps, expected, "trial {number} lost or repeated epochs");
        let (_, log, _) = project.exec(&["logs", "paused", &number.to_string()]);
        assert!(
            log.contains("resumed from epoch"),
            "trial {number}: {log}\n{}",
            trials[number as usize]
        );
    }
    assert_eq!(project.verify().0, 0);
}

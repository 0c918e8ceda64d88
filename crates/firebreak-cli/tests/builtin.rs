//! Built-in tasks end to end through the binary: real networks trained on the
//! bundled digits, epochs reported to ASHA, pruned trials stopping at their rung,
//! the champion tested once on the test split (and ledgered), or retrained on
//! training and validation data first (`refit`), an energy budget
//! stopping the campaign at its limit, and clear errors for a spec the trainer
//! cannot read.

mod common;

use common::Project;

fn builtin(name: &str, search: &str, task_extra: &str, constraints: &str) -> String {
    format!(
        r#"[campaign]
name = "{name}"
seed = 3

[objective]
metric = "val_accuracy"
direction = "maximize"

[space]
width = {{ type = "int", low = 8, high = 48, log = true }}
lr = {{ type = "float", low = 1e-3, high = 3e-2, log = true }}
activation = {{ type = "categorical", choices = ["relu", "tanh"] }}

[search]
{search}

[task]
kind = "builtin"
dataset = "digits"
model = "mlp"
{task_extra}

[constraints]
{constraints}
"#
    )
}

#[test]
fn a_builtin_campaign_trains_prunes_and_tests_its_champion() {
    let project = Project::new();
    let text = builtin(
        "mlp",
        "sampler = \"random\"\nscheduler = \"median\"\nn_trials = 9\nparallelism = 2\n[search.scheduler_options]\nmin_trials = 2\nmin_steps = 2",
        "max_epochs = 9",
        "",
    );
    let path = project.spec("mlp.toml", &text);
    let (code, stdout, stderr) = project.exec_within(600, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("architecture: MLP"), "{stdout}");
    assert!(stdout.contains("compute: "), "{stdout}");
    let trials = project.trials("mlp");
    assert_eq!(trials.len(), 9);
    let mut pruned = 0;
    for t in &trials {
        let steps: Vec<u64> = t["intermediate"]
            .as_array()
            .expect("reports")
            .iter()
            .map(|r| r["step"].as_u64().expect("step"))
            .collect();
        assert_eq!(
            steps,
            (1..=steps.len() as u64).collect::<Vec<_>>(),
            "one report per epoch"
        );
        for r in t["intermediate"].as_array().expect("reports") {
            for key in ["val_accuracy", "val_loss", "train_loss"] {
                assert!(r["metrics"][key].is_number(), "{r}");
            }
            assert!(
                r["metrics"].get("test_accuracy").is_none(),
                "never a test metric per epoch"
            );
        }
        match t["state"].as_str() {
            Some("complete") => {
                assert_eq!(steps.len(), 9);
                assert!(t["metrics"]["params"].as_f64().expect("params") > 0.0);
                assert!(t["cpu_seconds"].as_f64().expect("cpu") > 0.0);
            }
            Some("pruned") => {
                pruned += 1;
                // No epoch ran after the scheduler's stop: the last report is the
                // step the stop names.
                let last = steps.last().copied().unwrap_or_default();
                assert!(last < 9, "{steps:?}");
                let reason = t["error"].as_str().unwrap_or_default();
                assert!(
                    reason.contains(&format!("step {last}")),
                    "{reason} vs {steps:?}"
                );
            }
            other => panic!("trial {} is {other:?}: {}", t["number"], t["error"]),
        }
    }
    assert!(pruned > 0, "median stopping pruned some");
    let tested: Vec<_> = trials
        .iter()
        .filter(|t| t["metrics"].get("test_accuracy").is_some())
        .collect();
    assert_eq!(tested.len(), 1, "only the champion is tested");
    let champion = tested[0];
    assert!(
        champion["metrics"]["test_accuracy"].as_f64().expect("acc") > 0.8,
        "{champion}"
    );
    let (code, report) = project.verify();
    assert_eq!(code, 0, "{report}");
    // The stored trials, which proposers and schedulers read, never carry a
    // test metric: the result is a record of its own, joined only for display.
    let stored = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            use firebreak_store::Store as _;
            let store = firebreak_store::SqliteStore::open(&project.storage())
                .await
                .expect("opened");
            store.trials("mlp").await.expect("trials")
        });
    assert!(!stored.is_empty());
    for trial in &stored {
        assert!(
            trial.metrics.keys().all(|k| !k.starts_with("test_")),
            "trial {} carries a test metric: {:?}",
            trial.number,
            trial.metrics
        );
    }
    let (_, export, _) = project.exec(&["audit", "export"]);
    assert_eq!(export.matches("\"trial_tested\"").count(), 1);
    // A second run of the finished campaign does not test the champion again.
    let (code, _, stderr) = project.exec(&["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 0, "{stderr}");
    let (_, export, _) = project.exec(&["audit", "export"]);
    assert_eq!(export.matches("\"trial_tested\"").count(), 1);
}

#[test]
fn refit_tests_the_champion_retrained_on_training_and_validation_data() {
    let project = Project::new();
    let champion = |name: &str, refit: &str| {
        let text = builtin(
            name,
            "sampler = \"random\"\nn_trials = 3\nparallelism = 1",
            &format!("max_epochs = 4\n{refit}"),
            "",
        );
        let path = project.spec(&format!("{name}.toml"), &text);
        let (code, stdout, stderr) =
            project.exec_within(600, &["run", path.to_str().expect("utf-8")]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        let tested: Vec<_> = project
            .trials(name)
            .into_iter()
            .filter(|t| t["metrics"].get("test_accuracy").is_some())
            .collect();
        assert_eq!(tested.len(), 1, "only the champion is tested");
        (tested[0].clone(), stdout)
    };
    let (plain, stdout) = champion("plain", "");
    assert!(plain["metrics"].get("refit_cpu_seconds").is_none());
    assert!(!stdout.contains("refitting"), "{stdout}");
    let (refit, stdout) = champion("refit", "refit = true");
    assert!(stdout.contains("refitting the champion"), "{stdout}");
    // One worker: the same trials, so the same champion; its test metrics come
    // from another network, trained on more data.
    assert_eq!(
        (&refit["number"], &refit["params"]),
        (&plain["number"], &plain["params"])
    );
    assert!(refit["metrics"]["refit_cpu_seconds"].as_f64().expect("cpu") > 0.0);
    assert!(refit["metrics"]["test_accuracy"].as_f64().expect("acc") > 0.8);
    assert_ne!(
        refit["metrics"]["test_loss"], plain["metrics"]["test_loss"],
        "{refit} {plain}"
    );
    let (_, export, _) = project.exec(&["audit", "export"]);
    assert_eq!(export.matches("refit_cpu_seconds").count(), 1, "ledgered");
}

#[test]
fn an_energy_budget_stops_the_campaign_at_its_limit() {
    let project = Project::new();
    // 1e-6 kWh at 15 W per core is 0.24 s of trial CPU time.
    let text = builtin(
        "energy",
        "sampler = \"random\"\nn_trials = 50\nparallelism = 1",
        "max_epochs = 5",
        "max_energy_kwh = 0.000001",
    );
    let path = project.spec("energy.toml", &text);
    let (code, stdout, stderr) = project.exec_within(600, &["run", path.to_str().expect("utf-8")]);
    assert_eq!(code, 3, "{stdout}{stderr}");
    assert!(stderr.contains("max_energy_kwh"), "{stderr}");
    let finished = project.trials("energy").len();
    assert!((1..50).contains(&finished), "{finished} trials");
}

#[test]
fn a_parameter_the_genome_does_not_know_is_a_clear_error() {
    let project = Project::new();
    let text =
        builtin("typo", "n_trials = 2", "max_epochs = 2", "").replace("width = ", "widht = ");
    let path = project.spec("typo.toml", &text);
    let (code, _, stderr) = project.exec(&["validate", path.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("`widht`") && stderr.contains("width_<i>"),
        "{stderr}"
    );
    let text = builtin("nodata", "n_trials = 2", "max_epochs = 2", "")
        .replace("dataset = \"digits\"", "dataset = \"cifar\"");
    let path = project.spec("nodata.toml", &text);
    let (code, _, stderr) = project.exec(&["validate", path.to_str().expect("utf-8")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("unknown dataset `cifar`") && stderr.contains("mnist1d"),
        "{stderr}"
    );
}

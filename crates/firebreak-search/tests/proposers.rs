//! The proposer conformance suite: every proposer, on the same conditional space,
//! proposes only valid configurations, deterministically for a seed.

use firebreak_core::{
    Condition, Direction, Distribution, Objectives, ParamValue, Parameter, Rng, SearchSpace, Trial,
    TrialState,
};
use firebreak_search::{History, Options, PROPOSERS, propose, proposer};

fn space() -> SearchSpace {
    let p = |name: &str, distribution: Distribution, condition: Option<Condition>| Parameter {
        name: name.into(),
        distribution,
        condition,
    };
    let mut when = std::collections::BTreeMap::new();
    when.insert("kind".to_string(), vec![ParamValue::Str("deep".into())]);
    SearchSpace::new(vec![
        p(
            "lr",
            Distribution::Float {
                low: 1e-4,
                high: 0.1,
                log: true,
                step: None,
            },
            None,
        ),
        p(
            "layers",
            Distribution::Int {
                low: 1,
                high: 8,
                log: false,
                step: None,
            },
            None,
        ),
        p(
            "width",
            Distribution::Int {
                low: 16,
                high: 1024,
                log: true,
                step: None,
            },
            Some(Condition { when }),
        ),
        p(
            "kind",
            Distribution::Categorical {
                choices: vec![
                    ParamValue::Str("deep".into()),
                    ParamValue::Str("wide".into()),
                ],
            },
            None,
        ),
        p(
            "dropout",
            Distribution::Float {
                low: 0.0,
                high: 0.5,
                log: false,
                step: Some(0.1),
            },
            None,
        ),
    ])
    .expect("valid space")
}

fn run(name: &str, seed: u64, n: usize) -> Vec<Trial> {
    let space = space();
    let objectives = Objectives::single("y", Direction::Minimize);
    let mut proposer = proposer(name, &Options::new(), &space, &objectives).expect("built");
    let mut trials: Vec<Trial> = Vec::new();
    for number in 0..n {
        let history = History {
            trials: &trials,
            objectives: &objectives,
        };
        let mut rng = Rng::new(firebreak_core::derive_seed(seed, &[number as u64]));
        let proposal = propose(proposer.as_mut(), &space, &history, &mut rng);
        space
            .validate(&proposal.params)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!proposal.rationale.is_empty());
        // Every trial completes; y is lower for small lr and few layers.
        let y: f64 = ["lr", "layers"]
            .iter()
            .filter_map(|k| proposal.params.get(*k).and_then(ParamValue::as_f64))
            .sum();
        let mut trial = Trial::queued(number as u64, proposal.params, name, &proposal.rationale);
        trial.state = TrialState::Complete;
        trial.metrics.insert("y".into(), y);
        trials.push(trial);
    }
    trials
}

#[test]
fn every_proposer_is_valid_and_deterministic() {
    for name in PROPOSERS {
        let a = run(name, 3, 40);
        let b = run(name, 3, 40);
        assert_eq!(a, b, "{name} is not deterministic");
        // Conditional parameters appear exactly when active.
        for t in &a {
            let deep = t.params.get("kind") == Some(&ParamValue::Str("deep".into()));
            assert_eq!(t.params.contains_key("width"), deep, "{name}");
        }
    }
}

#[test]
fn grid_visits_distinct_points_first() {
    let trials = run("grid", 0, 30);
    for (i, a) in trials.iter().enumerate() {
        assert!(
            trials[..i].iter().all(|b| b.params != a.params),
            "grid repeated a point early"
        );
    }
}

#[test]
fn random_draws_spread_over_the_range() {
    let trials = run("random", 1, 400);
    let lrs: Vec<f64> = trials
        .iter()
        .filter_map(|t| t.params["lr"].as_f64())
        .collect();
    // Log-uniform: about half the draws fall below the geometric midpoint 3.16e-3.
    let below = lrs.iter().filter(|x| **x < 3.162e-3).count();
    assert!(
        (150..250).contains(&below),
        "{below} of 400 below the log midpoint"
    );
}

#[test]
fn evolution_mutates_one_gene_of_a_tournament_winner() {
    let trials = run("evolution", 5, 60);
    let evolved: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.rationale.starts_with("evolution: parent trial"))
        .collect();
    assert!(
        evolved.len() >= 45,
        "only {} evolved proposals",
        evolved.len()
    );
    for child in evolved {
        let parent_number: usize = child.rationale["evolution: parent trial ".len()..]
            .split(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("parent number");
        let parent = &trials[parent_number];
        assert!(parent.number < child.number);
        // Exactly one shared gene differs (genes that appear or vanish through a
        // condition are not counted).
        let changed = child
            .params
            .iter()
            .filter(|(k, v)| parent.params.get(*k).is_some_and(|p| !p.matches(v)))
            .count();
        assert_eq!(
            changed, 1,
            "{} -> {}: {}",
            parent.number, child.number, child.rationale
        );
    }
}

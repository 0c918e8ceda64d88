//! TPE's fast path (the history kept as columns inside the proposer) proposes
//! exactly what the straightforward computation from the trials proposes: the
//! same values, bit for bit, and the same rationales, on fixed-seed campaigns
//! with every kind of parameter, a conditional one, running, pruned, failed and
//! non-finite trials, one and two objectives.

use std::collections::BTreeMap;

use firebreak_core::{
    Condition, Direction, Distribution, Objectives, ParamValue, Parameter, Rng, SearchSpace, Trial,
    TrialState, derive_seed,
};
use firebreak_search::{History, Proposal, Proposer, TpeOptions, TpeProposer, propose};

fn float(name: &str, low: f64, high: f64, log: bool, step: Option<f64>) -> Parameter {
    Parameter {
        name: name.into(),
        distribution: Distribution::Float {
            low,
            high,
            log,
            step,
        },
        condition: None,
    }
}

fn mixed() -> SearchSpace {
    let int = |name: &str, low: i64, high: i64, log: bool| Parameter {
        name: name.into(),
        distribution: Distribution::Int {
            low,
            high,
            log,
            step: None,
        },
        condition: None,
    };
    let choices = ["p", "q", "r"].map(|c| ParamValue::Str(c.into())).to_vec();
    let mut conditional = float("e", 0.0, 4.0, false, None);
    conditional.condition = Some(Condition {
        when: BTreeMap::from([("kind".to_string(), vec![ParamValue::Str("q".into())])]),
    });
    SearchSpace::new(vec![
        float("a", -5.0, 5.0, false, None),
        float("b", 1e-4, 1.0, true, None),
        float("c", 0.0, 1.0, false, Some(0.1)),
        float("d", -2.0, 3.0, false, None),
        int("n", 1, 9, false),
        int("m", 2, 512, true),
        Parameter {
            name: "kind".into(),
            distribution: Distribution::Categorical { choices },
            condition: None,
        },
        conditional,
    ])
    .expect("valid space")
}

/// `trials` proposals; each trial runs for three asks, then most complete, some
/// are pruned or fail, some report NaN.
fn campaign(
    tpe: &mut dyn Proposer,
    space: &SearchSpace,
    objectives: &Objectives,
    trials: u64,
) -> Vec<Proposal> {
    let mut history: Vec<Trial> = Vec::new();
    let mut proposals = Vec::new();
    for number in 0..trials {
        let view = History {
            trials: &history,
            objectives,
        };
        let mut rng = Rng::new(derive_seed(7, &[number]));
        let proposal = propose(tpe, space, &view, &mut rng);
        let mut trial = Trial::queued(number, proposal.params.clone(), "tpe", "");
        trial.state = TrialState::Running;
        history.push(trial);
        proposals.push(proposal);
        if number >= 3 {
            let i = (number - 3) as usize;
            let t = &mut history[i];
            let x: f64 = t
                .params
                .values()
                .filter_map(|v| v.as_f64())
                .map(|x| x * x)
                .sum();
            let y = x.sqrt() + (i % 7) as f64 * 0.01;
            t.state = match i % 13 {
                5 => TrialState::Pruned,
                8 => TrialState::Failed,
                _ => TrialState::Complete,
            };
            t.metrics
                .insert("y".into(), if i % 17 == 3 { f64::NAN } else { y });
            t.metrics.insert("z".into(), (i % 11) as f64 - y);
        }
    }
    proposals
}

fn same(space: &SearchSpace, objectives: &Objectives, options: TpeOptions, trials: u64) {
    let mut fast = TpeProposer::new(objectives, options.clone()).expect("built");
    let mut reference = TpeProposer::new(objectives, options)
        .expect("built")
        .reference();
    let a = campaign(&mut fast, space, objectives, trials);
    let b = campaign(&mut reference, space, objectives, trials);
    for (number, (a, b)) in a.iter().zip(&b).enumerate() {
        // ParamValue compares floats by value; compare bits too.
        let bits = |p: &Proposal| -> Vec<Option<u64>> {
            p.params
                .values()
                .map(|v| v.as_f64().map(f64::to_bits))
                .collect()
        };
        assert_eq!(a, b, "trial {number}");
        assert_eq!(bits(a), bits(b), "trial {number}");
    }
}

#[test]
fn mixed_space_single_objective() {
    let objectives = Objectives::single("y", Direction::Minimize);
    same(&mixed(), &objectives, TpeOptions::default(), 300);
}

#[test]
fn mixed_space_two_objectives() {
    let objectives = Objectives {
        metrics: vec!["y".into(), "z".into()],
        directions: vec![Direction::Minimize, Direction::Maximize],
    };
    same(&mixed(), &objectives, TpeOptions::default(), 200);
}

#[test]
fn ten_floats_with_and_without_the_liar() {
    let space = SearchSpace::new(
        (0..10)
            .map(|i| float(&format!("x{i}"), -5.0, 5.0, false, None))
            .collect(),
    )
    .expect("valid space");
    let objectives = Objectives::single("y", Direction::Maximize);
    same(&space, &objectives, TpeOptions::default(), 300);
    let options = TpeOptions {
        constant_liar: false,
        ..TpeOptions::default()
    };
    same(&space, &objectives, options, 150);
}

#[test]
fn categorical_space() {
    let choices = ["p", "q", "r", "s"]
        .map(|c| ParamValue::Str(c.into()))
        .to_vec();
    let space = SearchSpace::new(
        ["a", "b", "c"]
            .iter()
            .map(|name| Parameter {
                name: (*name).into(),
                distribution: Distribution::Categorical {
                    choices: choices.clone(),
                },
                condition: None,
            })
            .collect(),
    )
    .expect("valid space");
    let objectives = Objectives::single("y", Direction::Minimize);
    same(&space, &objectives, TpeOptions::default(), 150);
}

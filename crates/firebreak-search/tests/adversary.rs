//! The fire-drill proposer misbehaves as documented, and model-based proposers
//! ask to widen a bound the best results sit on.

use firebreak_core::{
    Direction, Distribution, Objectives, Parameter, Params, Rng, SearchSpace, Trial, TrialState,
};
use firebreak_search::{ChangeAsk, History, Options, propose, proposer, suggest_changes};

fn space() -> SearchSpace {
    SearchSpace::new(vec![Parameter {
        name: "x".into(),
        distribution: Distribution::Float {
            low: 0.0,
            high: 1.0,
            log: false,
            step: None,
        },
        condition: None,
    }])
    .expect("space")
}

fn complete(number: u64, x: f64) -> Trial {
    let mut params = Params::new();
    params.insert("x".into(), firebreak_core::ParamValue::Float(x));
    let mut t = Trial::queued(number, params, "tpe", "");
    t.state = TrialState::Complete;
    t.metrics.insert("y".into(), x);
    t
}

#[test]
fn the_adversary_proposes_out_of_bounds_and_asks_for_more() {
    let space = space();
    let objectives = Objectives::single("y", Direction::Maximize);
    let mut adversary = proposer("adversary", &Options::new(), &space, &objectives).expect("built");
    let mut trials = Vec::new();
    let mut invalid = 0;
    for number in 0..9 {
        let history = History {
            trials: &trials,
            objectives: &objectives,
        };
        let proposal = propose(adversary.as_mut(), &space, &history, &mut Rng::new(number));
        if space.validate(&proposal.params).is_err() {
            invalid += 1;
        }
        trials.push(complete(number, 0.5));
    }
    assert_eq!(invalid, 3, "every third proposal is out of bounds");
    let history = History {
        trials: &trials,
        objectives: &objectives,
    };
    let asks = adversary.asks(&space, &history, 9);
    assert!(asks.contains(&ChangeAsk::Trials {
        n_trials: 18,
        why: "adversary: more trials, always".into()
    }));
    assert!(
        asks.iter()
            .any(|a| matches!(a, ChangeAsk::Bounds { high: Some(h), .. } if *h == 2.0))
    );
}

#[test]
fn best_values_on_a_bound_raise_an_ask_to_widen_it() {
    let space = space();
    let objectives = Objectives::single("y", Direction::Maximize);
    // y = x: the best trials sit at the upper bound.
    let trials: Vec<Trial> = (0..12)
        .map(|n| complete(n, if n % 2 == 0 { 0.995 } else { 0.3 }))
        .collect();
    let history = History {
        trials: &trials,
        objectives: &objectives,
    };
    let asks = suggest_changes(&space, &history, 100);
    assert!(
        matches!(&asks[..], [ChangeAsk::Bounds { parameter, high: Some(h), low: None, .. }] if parameter == "x" && *h == 2.0),
        "{asks:?}"
    );
    // Spread-out best values ask for nothing.
    let spread: Vec<Trial> = (0..12).map(|n| complete(n, n as f64 / 12.0)).collect();
    let history = History {
        trials: &spread,
        objectives: &objectives,
    };
    assert!(suggest_changes(&space, &history, 100).is_empty());
}

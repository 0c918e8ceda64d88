//! How the proposer's cost grows with the history: TPE with Optuna's default
//! settings (multivariate, 24 EI candidates, 10 start-up trials, constant liar;
//! `scale_candidates = false`), or with `defaults` firebreak's own (240
//! candidates here), on a 10-dimensional sphere over `[-5, 5]^10`, in memory, one
//! worker, ask-and-tell.
//!
//! Prints one JSON line with the seconds each trial's ask (the proposal) and tell
//! (the trial recorded as complete and the proposer told) took, in trial order,
//! the objective left out; `bench/tpe_overhead.sh` compares it with Optuna's.
//!
//! Run: cargo run --release -p firebreak-search --example tpe_overhead -- 1000 [SEED] [defaults]

use std::time::Instant;

use firebreak_core::{
    Direction, Distribution, Objectives, Parameter, Rng, SearchSpace, Trial, TrialState,
    derive_seed,
};
use firebreak_search::{History, Options, propose, proposer};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let own_defaults = args.next().as_deref() == Some("defaults");
    let space = SearchSpace::new(
        (0..10)
            .map(|i| Parameter {
                name: format!("x{i}"),
                distribution: Distribution::Float {
                    low: -5.0,
                    high: 5.0,
                    log: false,
                    step: None,
                },
                condition: None,
            })
            .collect(),
    )
    .expect("valid space");
    let objectives = Objectives::single("y", Direction::Minimize);
    let options: Options = if own_defaults {
        Options::new()
    } else {
        [("scale_candidates".to_string(), serde_json::json!(false))].into()
    };
    let mut tpe = proposer("tpe", &options, &space, &objectives).expect("built");
    let mut trials: Vec<Trial> = Vec::with_capacity(n);
    let mut seconds = Vec::with_capacity(n);
    for number in 0..n as u64 {
        let start = Instant::now();
        let history = History {
            trials: &trials,
            objectives: &objectives,
        };
        let mut rng = Rng::new(derive_seed(seed, &[number]));
        let proposal = propose(tpe.as_mut(), &space, &history, &mut rng);
        let asked = start.elapsed();
        let y: f64 = proposal
            .params
            .values()
            .filter_map(|v| v.as_f64())
            .map(|x| x * x)
            .sum();
        let told = Instant::now();
        let mut trial = proposal.into_trial(number, "tpe");
        trial.state = TrialState::Complete;
        trial.metrics.insert("y".into(), y);
        trials.push(trial);
        let history = History {
            trials: &trials,
            objectives: &objectives,
        };
        tpe.after_trial(&history, &trials[number as usize]);
        seconds.push((asked + told.elapsed()).as_secs_f64());
    }
    let line = serde_json::json!({
        "side": if own_defaults { "firebreak-defaults" } else { "firebreak" },
        "trials": n,
        "seed": seed,
        "seconds": seconds,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
}

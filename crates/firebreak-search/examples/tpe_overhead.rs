//! How the proposer's cost grows with the history: TPE (default options) on a
//! 10-dimensional sphere, in memory, printing the mean ask time per window.
//!
//! Run: cargo run --release -p firebreak-search --example tpe_overhead -- 2000

use std::time::Instant;

use firebreak_core::{
    Direction, Distribution, Objectives, Parameter, Rng, SearchSpace, Trial, TrialState,
    derive_seed,
};
use firebreak_search::{History, Options, propose, proposer};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
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
    let mut tpe = proposer("tpe", &Options::new(), &space, &objectives).expect("built");
    let mut trials: Vec<Trial> = Vec::with_capacity(n);
    let started = Instant::now();
    let mut window = Instant::now();
    for number in 0..n as u64 {
        let history = History {
            trials: &trials,
            objectives: &objectives,
        };
        let mut rng = Rng::new(derive_seed(0, &[number]));
        let proposal = propose(tpe.as_mut(), &space, &history, &mut rng);
        let y: f64 = proposal
            .params
            .values()
            .filter_map(|v| v.as_f64())
            .map(|x| x * x)
            .sum();
        let mut trial = Trial::queued(number, proposal.params, "tpe", &proposal.rationale);
        trial.state = TrialState::Complete;
        trial.metrics.insert("y".into(), y);
        trials.push(trial);
        if (number + 1) % 100 == 0 {
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "trials {:>6}: {:.3} ms per ask over the last 100; {:.2} s in total",
                    number + 1,
                    window.elapsed().as_secs_f64() * 10.0,
                    started.elapsed().as_secs_f64()
                );
            }
            window = Instant::now();
        }
    }
}

//! Schedulers in a simulated asynchronous campaign: trials with synthetic learning
//! curves advance one step at a time on several workers in an interleaved order;
//! every decision is checked against the rules, recomputed independently here.

use std::collections::BTreeMap;

use firebreak_core::{Direction, Objectives, Params, Report, Rng, Trial, TrialState};
use firebreak_search::{Decision, History, Options, hyperband_brackets, scheduler};

/// value(t) = final − (final − 0.1) · e^(−t/τ), with `final` and `τ` per trial.
fn curve(rng: &mut Rng) -> impl Fn(u64) -> f64 + use<> {
    let last = 0.5 + 0.45 * rng.next_f64();
    let tau = 1.0 + 6.0 * rng.next_f64();
    move |t| last - (last - 0.1) * (-(t as f64) / tau).exp()
}

/// `reduction_factor = 3`, `min_resource = 1`, `max_resource = 27`.
fn halving_options() -> Options {
    [
        ("reduction_factor", 3),
        ("min_resource", 1),
        ("max_resource", 27),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
    .collect()
}

#[derive(Default)]
struct Rung {
    seen: Vec<(u64, f64)>,
    promoted: Vec<u64>,
}

#[test]
fn asha_promotes_only_the_top_of_each_rung_and_never_twice() {
    let objectives = Objectives::single("acc", Direction::Maximize);
    let options = halving_options();
    let space = firebreak_core::SearchSpace::default();
    let asha = scheduler("asha", &options, &objectives, &space).expect("built");
    let rungs = [1u64, 3, 9];
    let mut rng = Rng::new(11);
    let mut trials: Vec<Trial> = Vec::new();
    let mut curves = Vec::new();
    let mut rung_log: BTreeMap<u64, Rung> = BTreeMap::new();
    let workers = 4;
    let mut running: Vec<Option<(usize, u64)>> = vec![None; workers]; // (trial index, next step)
    let total = 80;
    let mut started = 0;
    while started < total || running.iter().any(Option::is_some) {
        // A random worker takes its next step (asynchrony).
        let w = rng.below(workers as u64) as usize;
        let slot = match running[w] {
            Some(slot) => slot,
            None if started < total => {
                let mut trial = Trial::queued(started as u64, Params::new(), "test", "");
                trial.state = TrialState::Running;
                trials.push(trial);
                curves.push(curve(&mut rng));
                started += 1;
                (trials.len() - 1, 1)
            }
            None => continue,
        };
        let (index, step) = slot;
        let value = curves[index](step);
        trials[index].intermediate.push(Report {
            step,
            metrics: [("acc".to_string(), value)].into_iter().collect(),
        });
        let snapshot = trials.clone();
        let history = History {
            trials: &snapshot,
            objectives: &objectives,
        };
        let decision = asha.decide(&snapshot[index], step, &history);
        if rungs.contains(&step) {
            let rung = rung_log.entry(step).or_default();
            rung.seen.push((index as u64, value));
            let n = rung.seen.len();
            let quota = n / 3;
            if decision == Decision::Continue {
                let better = rung.seen.iter().filter(|(_, v)| *v > value).count();
                assert!(
                    better < quota,
                    "trial {index} promoted at step {step} ranking {} of {n}",
                    better + 1
                );
                assert!(
                    !rung.promoted.contains(&(index as u64)),
                    "trial {index} promoted twice"
                );
                rung.promoted.push(index as u64);
                assert!(
                    rung.promoted.len() <= quota,
                    "rung {step} promoted {} of {n}",
                    rung.promoted.len()
                );
            }
        } else {
            assert_eq!(decision, Decision::Continue, "a stop away from a rung");
        }
        running[w] = match decision {
            Decision::Stop { .. } | Decision::Exploit { .. } => {
                trials[index].state = TrialState::Pruned;
                None
            }
            Decision::Continue if step >= 27 => {
                trials[index].state = TrialState::Complete;
                None
            }
            Decision::Continue => Some((index, step + 1)),
        };
    }
    let complete = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    assert!(
        complete >= 1 && complete < total / 9,
        "{complete} of {total} trials ran to the end"
    );
    assert!(rung_log[&1].promoted.len() <= total / 3);
}

#[test]
fn hyperband_brackets_split_trials_by_their_sizes() {
    let objectives = Objectives::single("acc", Direction::Maximize);
    let options = halving_options();
    let halving = firebreak_search::Halving::new(3, 1, 27).expect("valid");
    let hyperband = firebreak_search::HyperbandScheduler::new(&objectives, halving).expect("built");
    let brackets = hyperband_brackets(&halving);
    let cycle: u64 = brackets.iter().map(|b| b.n).sum();
    let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
    for number in 0..cycle {
        *counts.entry(hyperband.bracket_of(number).s).or_default() += 1;
    }
    for bracket in &brackets {
        assert_eq!(counts[&bracket.s], bracket.n, "bracket {}", bracket.s);
    }
    let space = firebreak_core::SearchSpace::default();
    assert!(scheduler("hyperband", &options, &objectives, &space).is_ok());
}

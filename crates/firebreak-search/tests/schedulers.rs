//! Schedulers in a simulated asynchronous campaign: trials with synthetic learning
//! curves advance one step at a time on several workers in an interleaved order;
//! every decision is checked against the rules, recomputed independently here;
//! Hyperband's stops and promotions are checked trial by trial on a fixed history.

use std::collections::BTreeMap;

use firebreak_core::{Direction, Objectives, Params, Report, Rng, Trial, TrialState};
use firebreak_search::{Decision, History, Options, Scheduler, hyperband_brackets, scheduler};

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

/// Runs trials `values.len()` onwards of `trials` one after another (one
/// simulated worker), each with the constant accuracy `values[i]`, reporting
/// steps 1, 2, … until `scheduler` stops it (state `pruned`: with pausing, a
/// trial paused at that rung) or it reaches `last` (state `complete`). Returns
/// `(number, step)` of every stop.
fn run_in_turn(
    scheduler: &dyn Scheduler,
    objectives: &Objectives,
    trials: &mut Vec<Trial>,
    values: &[f64],
    last: u64,
) -> Vec<(u64, u64)> {
    let mut stops = Vec::new();
    for &value in &values[trials.len()..] {
        let number = trials.len() as u64;
        let mut trial = Trial::queued(number, Params::new(), "test", "");
        trial.state = TrialState::Running;
        trials.push(trial);
        for step in 1..=last {
            let at = trials.len() - 1;
            trials[at].intermediate.push(Report {
                step,
                metrics: [("acc".to_string(), value)].into_iter().collect(),
            });
            let snapshot = trials.clone();
            let history = History {
                trials: &snapshot,
                objectives,
            };
            if let Decision::Stop { reason } = scheduler.decide(&snapshot[at], step, &history) {
                assert!(reason.starts_with("hyperband: at rung"), "{reason}");
                trials[at].state = TrialState::Pruned;
                stops.push((number, step));
                break;
            }
            if step == last {
                trials[at].state = TrialState::Complete;
            }
        }
    }
    stops
}

/// Hyperband with η = 3 and 1 to 9 steps has three brackets in a cycle of 17
/// trials: `s = 2` (trials 0-8, rungs at steps 1 and 3), `s = 1` (trials 9-13,
/// starting at 3 steps: one rung, at 3) and `s = 0` (trials 14-16, never
/// stopped). Each bracket is ASHA among its own trials only: a trial reaching a
/// rung goes on if it ranks in the top ⌊n/3⌋ of the n results the rung has seen
/// and the rung has promoted fewer than ⌊n/3⌋.
#[test]
fn hyperband_stops_and_promotes_exactly_the_trials_asha_would_per_bracket() {
    let objectives = Objectives::single("acc", Direction::Maximize);
    let halving = firebreak_search::Halving::new(3, 1, 9).expect("valid");
    let brackets: Vec<(u32, u64, u64)> = hyperband_brackets(&halving)
        .iter()
        .map(|b| (b.s, b.n, b.min_resource))
        .collect();
    assert_eq!(brackets, vec![(2, 9, 1), (1, 5, 3), (0, 3, 9)]);
    let hyperband = firebreak_search::HyperbandScheduler::new(&objectives, halving)
        .expect("built")
        .pausing(true);
    #[rustfmt::skip]
    let values = [
        // s = 2, trials 0-8
        0.50, 0.60, 0.70, 0.40, 0.90, 0.80, 0.30, 0.95, 0.99,
        // s = 1, trials 9-13: all worse than every trial of s = 2
        0.10, 0.20, 0.30, 0.15, 0.05,
        // s = 0, trials 14-16: the worst of all
        0.01, 0.02, 0.03,
        // the next cycle's s = 2, trials 17-19
        0.10, 0.12, 0.11,
    ];
    let mut trials = Vec::new();
    let stops = run_in_turn(&hyperband, &objectives, &mut trials, &values[..17], 9);
    // Bracket s = 2, rung 1 (step 1): 0 and 1 stop (⌊n/3⌋ = 0); 2 ranks first of
    // 3 and goes on; 3 ranks last; 4 ranks first of 5 but the rung has already
    // promoted its quota of 1 (trial 2); 5 ranks second of 6 (quota 2) and goes
    // on; 6 ranks last; 7 ranks first of 8 but 2 and 5 fill the quota of 2; 8
    // ranks first of 9 (quota 3, 2 promoted) and goes on. Rung 3 (step 3): 2 and
    // 5 stop (⌊1/3⌋ = ⌊2/3⌋ = 0); 8 ranks first of 3 and completes.
    // Bracket s = 1, its one rung at step 3, ranked among trials 9-13 only: 9
    // and 10 stop, 11 ranks first of 3 and completes (though worse than every
    // trial of s = 2), 12 and 13 stop (quota 1, filled by 11).
    // Bracket s = 0 stops nothing.
    assert_eq!(
        stops,
        vec![
            (0, 1),
            (1, 1),
            (2, 3),
            (3, 1),
            (4, 1),
            (5, 3),
            (6, 1),
            (7, 1),
            (9, 3),
            (10, 3),
            (12, 3),
            (13, 3)
        ]
    );
    let complete: Vec<u64> = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .map(|t| t.number)
        .collect();
    assert_eq!(complete, vec![8, 11, 14, 15, 16]);
    let promote = |trials: &[Trial]| {
        hyperband.promote(&History {
            trials,
            objectives: &objectives,
        })
    };
    // Every rung's quota is filled: bracket 2's rung 1 promoted 3 of 9 (2, 5,
    // 8), its rung 3 one of 3 (8); bracket 1's rung promoted 1 of 5 (11).
    assert_eq!(promote(&trials), None);
    // The next cycle's trials 17 and 18 join bracket 2 and stop at rung 1: 11
    // results, quota still 3.
    let stops = run_in_turn(&hyperband, &objectives, &mut trials, &values[..19], 9);
    assert_eq!(stops, vec![(17, 1), (18, 1)]);
    assert_eq!(promote(&trials), None);
    // Trial 19 makes 12 results at rung 1: quota 4, 3 promoted. It ranks 11th
    // and stops; the best paused trial in the top 4 (8 complete, then 7) is 7,
    // paused at rung 1 only because the quota was full when it arrived.
    let stops = run_in_turn(&hyperband, &objectives, &mut trials, &values, 9);
    assert_eq!(stops, vec![(19, 1)]);
    assert_eq!(promote(&trials), Some(7));
    // Resumed, 7 reaches rung 3 of its bracket: 4 results (2, 5, 8, 7), quota 1,
    // filled by 8: it stops there, ranked 2nd; then nothing is promotable.
    trials[7].state = TrialState::Running;
    for step in 2..=3 {
        trials[7].intermediate.push(Report {
            step,
            metrics: [("acc".to_string(), 0.95)].into_iter().collect(),
        });
        let snapshot = trials.clone();
        let history = History {
            trials: &snapshot,
            objectives: &objectives,
        };
        let decision = hyperband.decide(&snapshot[7], step, &history);
        match step {
            2 => assert_eq!(decision, Decision::Continue),
            _ => match decision {
                Decision::Stop { reason } => assert!(
                    reason.contains("at rung 1 (step 3)") && reason.contains("ranks 2 of 4"),
                    "{reason}"
                ),
                other => panic!("trial 7 at rung 3: {other:?}"),
            },
        }
    }
    trials[7].state = TrialState::Pruned;
    assert_eq!(promote(&trials), None);
    // Without pausing, nothing is ever promoted.
    let stopping = firebreak_search::HyperbandScheduler::new(&objectives, halving).expect("built");
    let mut fresh = Vec::new();
    run_in_turn(&stopping, &objectives, &mut fresh, &values, 9);
    assert_eq!(
        stopping.promote(&History {
            trials: &fresh,
            objectives: &objectives,
        }),
        None
    );
}

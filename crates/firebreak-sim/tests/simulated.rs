//! The simulator's concurrency behaviour and the schedulers' rules in simulated
//! time, checked from the simulation's own record of every epoch.

use std::collections::BTreeMap;

use firebreak_core::{Direction, Distribution, Objectives, Parameter, Params, Rng, SearchSpace};
use firebreak_search::{Options, proposer, scheduler};
use firebreak_sim::{CurveModel, SimReport, Simulation, simulate};

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

fn halving() -> Options {
    [
        ("reduction_factor", 3),
        ("min_resource", 1),
        ("max_resource", 27),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
    .chain([("pause".to_string(), serde_json::json!(true))])
    .collect()
}

fn run(scheduler_name: &str, workers: usize, n_trials: u64, seed: u64) -> SimReport {
    run_with(scheduler_name, halving(), workers, n_trials, seed)
}

fn run_with(
    scheduler_name: &str,
    halving: Options,
    workers: usize,
    n_trials: u64,
    seed: u64,
) -> SimReport {
    let objectives = Objectives::single("acc", Direction::Maximize);
    let space = space();
    let mut random = proposer("random", &Options::new(), &space, &objectives).expect("random");
    let options = if scheduler_name == "none" {
        Options::new()
    } else {
        halving
    };
    let chosen = scheduler(scheduler_name, &options, &objectives, &space).expect("scheduler");
    let sim = Simulation {
        workers,
        max_epochs: 27,
        n_trials,
        seed,
        model: CurveModel {
            tau_max: 10.0,
            ..CurveModel::default()
        },
    };
    let mut final_value = |params: &Params, rng: &mut Rng| {
        let x = params["x"].as_f64().ok_or("no x")?;
        Ok(50.0 + 40.0 * x + rng.next_f64())
    };
    simulate(
        &sim,
        &space,
        &objectives,
        random.as_mut(),
        chosen.as_ref(),
        &mut final_value,
    )
}

#[test]
fn no_worker_idles_while_trials_remain() {
    for scheduler_name in ["none", "asha", "hyperband"] {
        let report = run(scheduler_name, 4, 60, 5);
        assert_eq!(report.trials.len(), 60);
        // When the last trial started, every worker must have been busy without
        // a gap from time 0 until then.
        let last_start = report
            .busy
            .iter()
            .fold(BTreeMap::new(), |mut first, b| {
                first.entry(b.trial).or_insert(b.start);
                first
            })
            .values()
            .fold(0.0_f64, |a, b| a.max(*b));
        for worker in 0..4 {
            let mut intervals: Vec<(f64, f64)> = report
                .busy
                .iter()
                .filter(|b| b.worker == worker)
                .map(|b| (b.start, b.end))
                .collect();
            intervals.sort_by(|a, b| a.0.total_cmp(&b.0));
            assert_eq!(
                intervals[0].0, 0.0,
                "{scheduler_name}: worker {worker} started late"
            );
            for pair in intervals.windows(2) {
                if pair[0].1 < last_start {
                    assert_eq!(
                        pair[1].0, pair[0].1,
                        "{scheduler_name}: worker {worker} idled from {} to {}",
                        pair[0].1, pair[1].0
                    );
                }
            }
        }
    }
}

#[test]
fn asha_promotes_only_from_the_top_of_each_rung_in_simulated_time() {
    let report = run("asha", 4, 90, 9);
    let rungs = [1u64, 3, 9];
    // Reports in the order their epochs ended: (time, trial, step, value).
    let mut epochs: BTreeMap<u64, u64> = BTreeMap::new();
    let mut reports = Vec::new();
    for epoch in &report.busy {
        let step = {
            let count = epochs.entry(epoch.trial).or_default();
            *count += 1;
            *count
        };
        let value =
            report.trials[epoch.trial as usize].intermediate[step as usize - 1].metrics["acc"];
        reports.push((epoch.end, epoch.trial, step, value));
    }
    // Promotions: a paused trial resumed later, or a trial that went on at once.
    let mut promotions: Vec<(f64, u64, u64)> = report.resumed.clone();
    for &(time, trial, step, _) in &reports {
        let went_on = report.trials[trial as usize]
            .intermediate
            .iter()
            .any(|r| r.step == step + 1);
        let resumed = report.resumed.iter().any(|r| r.1 == trial && r.2 == step);
        if rungs.contains(&step) && went_on && !resumed {
            promotions.push((time, trial, step));
        }
    }
    promotions.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        !report.resumed.is_empty(),
        "no paused trial was ever promoted"
    );
    let mut promoted: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (time, trial, rung) in promotions {
        let seen: Vec<(u64, f64)> = reports
            .iter()
            .filter(|r| r.0 <= time && r.2 == rung)
            .map(|r| (r.1, r.3))
            .collect();
        let mine = seen
            .iter()
            .find(|r| r.0 == trial)
            .expect("its own report")
            .1;
        let quota = seen.len() / 3;
        let better = seen.iter().filter(|r| r.1 > mine).count();
        assert!(
            better < quota,
            "trial {trial} promoted at rung {rung} ranking {} of {}",
            better + 1,
            seen.len()
        );
        let list = promoted.entry(rung).or_default();
        assert!(!list.contains(&trial), "trial {trial} promoted twice");
        list.push(trial);
        assert!(
            list.len() <= quota,
            "rung {rung} promoted {} of {}",
            list.len(),
            seen.len()
        );
    }
}

#[test]
fn asha_spends_a_fraction_of_full_trainings_compute() {
    let full = run("none", 4, 60, 3);
    let asha = run("asha", 4, 60, 3);
    assert!(
        asha.compute_seconds < full.compute_seconds / 3.0,
        "ASHA {} s vs full {} s",
        asha.compute_seconds,
        full.compute_seconds
    );
}

#[test]
fn synchronous_successive_halving_waits_for_each_rung_to_fill() {
    let mut options = halving();
    options.insert("synchronous".into(), serde_json::json!(true));
    // Brackets of 3^3 = 27 trials: 27 at rung 1, 9 at rung 3, 3 at rung 9, 1 to 27.
    let report = run_with("asha", options, 4, 54, 7);
    for bracket in 0..2u64 {
        let members = |step: u64| {
            report
                .trials
                .iter()
                .filter(|t| t.number / 27 == bracket)
                .filter(|t| t.intermediate.iter().any(|r| r.step == step))
                .count()
        };
        assert_eq!(
            [members(1), members(2), members(4), members(10), members(27)],
            [27, 9, 3, 1, 1],
            "bracket {bracket}"
        );
        // Nobody passes a rung before the whole bracket has reached it.
        for (rung, next) in [(1u64, 2u64), (3, 4), (9, 10)] {
            let mut epochs: BTreeMap<u64, u64> = BTreeMap::new();
            let mut filled = 0.0_f64;
            let mut first_beyond = f64::INFINITY;
            for epoch in report.busy.iter().filter(|b| b.trial / 27 == bracket) {
                let step = {
                    let count = epochs.entry(epoch.trial).or_default();
                    *count += 1;
                    *count
                };
                if step == rung {
                    filled = filled.max(epoch.end);
                }
                if step == next {
                    first_beyond = first_beyond.min(epoch.start);
                }
            }
            assert!(
                first_beyond >= filled,
                "bracket {bracket}: a trial went past rung {rung} at {first_beyond} before the rung filled at {filled}"
            );
        }
    }
}

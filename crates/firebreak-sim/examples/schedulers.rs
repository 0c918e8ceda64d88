//! Benchmark in simulated time: ASHA and Hyperband against full training of the
//! same proposer's configurations on the NAS-Bench-201 CIFAR-10 table, 4 workers.
//! Prints a Markdown report; every number in it is SIMULATED (synthetic curves
//! over the table's final values, `firebreak_sim::CurveModel`).
//!
//!     cargo run --release -p firebreak-sim --example schedulers -- [SEEDS] [N_TRIALS]

#![allow(clippy::print_stdout)] // a benchmark report

use std::path::Path;

use firebreak_core::{Direction, Params, Rng};
use firebreak_search::{Options, proposer, scheduler};
use firebreak_sim::{CurveModel, SimReport, Simulation, simulate};

const WORKERS: usize = 4;
const MAX_EPOCHS: u64 = 200;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let seeds: u64 = args.get(1).map_or(Ok(10), |s| s.parse())?;
    let n_trials: u64 = args.get(2).map_or(Ok(100), |s| s.parse())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let text = std::fs::read_to_string(root.join("nasbench201.toml"))?;
    let spec = firebreak_spec::CampaignSpec::parse(&text, "examples/nasbench201.toml")?;
    let table = firebreak_runner::TableTask::load(
        &root.join("tables/nasbench201-cifar10.csv"),
        &spec.space,
    )?;
    let objectives = &spec.objectives;
    let halving: Options = [
        ("reduction_factor", 3),
        ("min_resource", 5),
        ("max_resource", MAX_EPOCHS as i64),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
    .chain([("pause".to_string(), serde_json::json!(true))])
    .collect();
    let run =
        |name: &str, seed: u64, n_trials: u64| -> Result<SimReport, Box<dyn std::error::Error>> {
            let options = if name == "none" {
                Options::new()
            } else {
                halving.clone()
            };
            let chosen = scheduler(name, &options, objectives, &spec.space)?;
            let mut random = proposer("random", &Options::new(), &spec.space, objectives)?;
            let sim = Simulation {
                workers: WORKERS,
                max_epochs: MAX_EPOCHS,
                n_trials,
                seed,
                model: CurveModel::default(),
            };
            let mut final_value = |params: &Params, _: &mut Rng| table.mean(params);
            Ok(simulate(
                &sim,
                &spec.space,
                objectives,
                random.as_mut(),
                chosen.as_ref(),
                &mut final_value,
            ))
        };
    let maximize = objectives.directions[0] == Direction::Maximize;
    println!("# Schedulers in simulated time — {}\n", SimReport::LABEL);
    println!(
        "NAS-Bench-201 CIFAR-10 (validation accuracy, mean over the table's seeds, as each configuration's final value), \
         random proposer (the same stream of configurations for every scheduler): full training of {n_trials} configurations \
         against ASHA and Hyperband given up to {} (they reach the score sooner or not at all), {WORKERS} simulated workers, {MAX_EPOCHS} epochs of full training, \
         ASHA and Hyperband with reduction factor 3 and min_resource 5, pausing at rungs and resuming promoted trials from their checkpoints; \
         {seeds} campaign seeds; medians over the seeds that reached the score. Curve model: `firebreak_sim::CurveModel::default()` (start 10%, τ 5–40 epochs, 10–30 s per epoch, noise σ 4 fading with τ).\n",
        n_trials * 10
    );
    println!(
        "| scheduler | reached full training's best (±0.1) | sim. wall time to reach it (× full training's time to it; × the whole full campaign) | sim. compute to reach it (× …; × …) | total sim. compute | best | trials complete / pruned |"
    );
    println!("|---|---|---|---|---|---|---|");
    let full: Vec<SimReport> = (0..seeds)
        .map(|s| run("none", s, n_trials))
        .collect::<Result<_, _>>()?;
    let targets: Vec<f64> = full
        .iter()
        .map(|r| r.best().unwrap_or(f64::NAN) - 0.1)
        .collect();
    let mut baseline = (0.0, 0.0);
    let whole = (
        median(full.iter().map(|r| r.wall_seconds).collect()),
        median(full.iter().map(|r| r.compute_seconds).collect()),
    );
    for name in ["none", "asha", "hyperband"] {
        let reports: Vec<SimReport> = if name == "none" {
            full.clone()
        } else {
            (0..seeds)
                .map(|s| run(name, s, n_trials * 10))
                .collect::<Result<_, _>>()?
        };
        let reached: Vec<(f64, f64)> = reports
            .iter()
            .zip(&targets)
            .filter_map(|(r, t)| r.time_to_reach(*t, maximize))
            .collect();
        let wall = median(reached.iter().map(|(w, _)| *w).collect());
        let compute = median(reached.iter().map(|(_, c)| *c).collect());
        if name == "none" {
            baseline = (wall, compute);
        }
        let total = median(reports.iter().map(|r| r.compute_seconds).collect());
        let best = median(reports.iter().filter_map(SimReport::best).collect());
        let complete = median(
            reports
                .iter()
                .map(|r| {
                    r.trials
                        .iter()
                        .filter(|t| t.state == firebreak_core::TrialState::Complete)
                        .count() as f64
                })
                .collect(),
        );
        let pruned = median(
            reports
                .iter()
                .map(|r| {
                    r.trials
                        .iter()
                        .filter(|t| t.state == firebreak_core::TrialState::Pruned)
                        .count() as f64
                })
                .collect(),
        );
        println!(
            "| {name} | {} of {seeds} | {:.1} h ({:.2}×; {:.2}×) | {:.1} h ({:.2}×; {:.2}×) | {:.1} h | {best:.2} | {complete:.0} / {pruned:.0} |",
            reached.len(),
            wall / 3600.0,
            wall / baseline.0,
            wall / whole.0,
            compute / 3600.0,
            compute / baseline.1,
            compute / whole.1,
            total / 3600.0,
        );
    }
    println!("\nEvery number above is {}.", SimReport::LABEL);
    Ok(())
}

//! firebreak's side of bench/quality.sh: one proposer on one problem for several
//! seeds, in memory (no store), printing one JSON line per seed with the final
//! score and the anytime curve. PROPOSER is any name of
//! `firebreak_search::PROPOSERS` (`tpe`, `random`, `evolution`, `cmaes`, `gp`,
//! `sobol`, …) with its default options, or with those of the JSON object in
//! the environment variable `QUALITY_OPTIONS` (e.g. `{"n_ei_candidates": 64}`),
//! for trying an option's effect.
//!
//! Problems: `table:PATH:maximize|minimize` (every non-seed column a categorical
//! parameter; a configuration's score is one present seed drawn per evaluation; the
//! final score is the mean over seeds of the best-observed configuration), or one
//! of the functions `branin`, `hartmann6`, `rosenbrock10`, `ackley10`,
//! `styblinski_tang10` and the mixed problem `mixed` (all minimised; the final
//! score is the best value found).
//!
//! `mixed` (defined identically in bench/optuna_quality.py): 2 floats `x0`, `x1`
//! in [-5, 5]; 4 ints `n0`..`n3` in [-10, 10]; 1 int `n4` in [1, 64] on a log
//! scale; 3 categoricals `shift` (left, none, right), `shape` (bowl, cone, wave)
//! and `weight` (light, medium, heavy). With `s` = -3, 0, 3 for `shift`,
//! `z` the distance of (x0, x1) from (1, -2), `t` = (2, -4, 5, -7) and
//! `w` = (1, 1.5, 2, 2.5):
//!
//! ```text
//! f = cost(shift) + offset(weight)
//!     + m(weight) * (sum_k w_k (n_k - t_k - s)^2 + 2 (log2(n4) - 3)^2)
//!     + shape(z)
//! cost:   left 2, none 1, right 0        offset: light 3, medium 1, heavy 0
//! m:      light 0.25, medium 1, heavy 2
//! shape:  bowl z^2 + 1, cone 2z + 0.5, wave z^2 + 4 sin^2(pi z)
//! ```
//!
//! Every shift keeps the int targets inside [-10, 10], so each categorical
//! changes where the best ints are or how much they matter; the global minimum
//! is 0 at shift = right, weight = heavy, shape = wave, n = (5, -1, 8, -4, 8),
//! x = (1, -2). CMA-ES and GP-BO take the categoricals as their crate
//! documents them (CMA-ES draws them independently, uniformly, as Optuna's
//! `CmaEsSampler` does; GP-BO models them with a Hamming kernel).
//!
//! Run: cargo run --release -p firebreak-runner --example quality -- table:examples/tables/nasbench201-cifar10.csv:maximize tpe 100 20

use std::collections::BTreeMap;

use firebreak_core::{
    Direction, Distribution, Objectives, ParamValue, Parameter, Params, Rng, SearchSpace, Trial,
    TrialState, derive_seed,
};
use firebreak_runner::TableTask;
use firebreak_search::{History, Options, propose, proposer};

fn table_space(path: &str) -> Result<SearchSpace, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("empty table")?.split(',').collect();
    let columns: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].starts_with("seed"))
        .collect();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); columns.len()];
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        for (slot, &i) in columns.iter().enumerate() {
            if !values[slot].iter().any(|v| v == cells[i]) {
                values[slot].push(cells[i].to_string());
            }
        }
    }
    let parameters = columns
        .iter()
        .zip(values)
        .map(|(&i, vs)| {
            let typed = |v: &String| {
                v.parse::<i64>()
                    .map(ParamValue::Int)
                    .or_else(|_| v.parse::<f64>().map(ParamValue::Float))
                    .unwrap_or_else(|_| ParamValue::Str(v.clone()))
            };
            Parameter {
                name: header[i].to_string(),
                distribution: Distribution::Categorical {
                    choices: vs.iter().map(typed).collect(),
                },
                condition: None,
            }
        })
        .collect();
    Ok(SearchSpace::new(parameters)?)
}

type Function = fn(&[f64]) -> f64;

/// What evaluates a proposal.
enum Problem {
    Table(TableTask),
    Function(Function),
    Mixed,
}

/// The mixed problem's names and choices; see the header.
const SHIFTS: [(&str, f64, f64); 3] =
    [("left", -3.0, 2.0), ("none", 0.0, 1.0), ("right", 3.0, 0.0)];
const SHAPES: [&str; 3] = ["bowl", "cone", "wave"];
const WEIGHTS: [(&str, f64, f64); 3] = [
    ("light", 0.25, 3.0),
    ("medium", 1.0, 1.0),
    ("heavy", 2.0, 0.0),
];

fn mixed_space() -> Result<SearchSpace, Box<dyn std::error::Error>> {
    let parameter = |name: &str, distribution| Parameter {
        name: name.to_string(),
        distribution,
        condition: None,
    };
    let float = |name: &str| {
        parameter(
            name,
            Distribution::Float {
                low: -5.0,
                high: 5.0,
                log: false,
                step: None,
            },
        )
    };
    let int = |name: &str, low, high, log| {
        parameter(
            name,
            Distribution::Int {
                low,
                high,
                log,
                step: None,
            },
        )
    };
    let categorical = |name: &str, choices: &[&str]| {
        parameter(
            name,
            Distribution::Categorical {
                choices: choices
                    .iter()
                    .map(|c| ParamValue::Str(c.to_string()))
                    .collect(),
            },
        )
    };
    let mut parameters = vec![float("x0"), float("x1")];
    parameters.extend((0..4).map(|k| int(&format!("n{k}"), -10, 10, false)));
    parameters.push(int("n4", 1, 64, true));
    parameters.push(categorical("shift", &SHIFTS.map(|s| s.0)));
    parameters.push(categorical("shape", &SHAPES));
    parameters.push(categorical("weight", &WEIGHTS.map(|w| w.0)));
    Ok(SearchSpace::new(parameters)?)
}

fn mixed(params: &Params) -> Result<f64, Box<dyn std::error::Error>> {
    let number = |name: &str| {
        params
            .get(name)
            .and_then(ParamValue::as_f64)
            .ok_or_else(|| format!("mixed: no number {name}"))
    };
    let choice = |name: &str| match params.get(name) {
        Some(ParamValue::Str(s)) => Ok(s.as_str()),
        _ => Err(format!("mixed: no choice {name}")),
    };
    let (shift, weight) = (choice("shift")?, choice("weight")?);
    let (_, s, cost) = *SHIFTS
        .iter()
        .find(|c| c.0 == shift)
        .ok_or("mixed: bad shift")?;
    let (_, m, offset) = *WEIGHTS
        .iter()
        .find(|c| c.0 == weight)
        .ok_or("mixed: bad weight")?;
    let mut ints = 2.0 * (number("n4")?.log2() - 3.0).powi(2);
    for (k, (t, w)) in [(2.0, 1.0), (-4.0, 1.5), (5.0, 2.0), (-7.0, 2.5)]
        .into_iter()
        .enumerate()
    {
        ints += w * (number(&format!("n{k}"))? - t - s).powi(2);
    }
    let z = (number("x0")? - 1.0).hypot(number("x1")? + 2.0);
    let shape = match choice("shape")? {
        "bowl" => z * z + 1.0,
        "cone" => 2.0 * z + 0.5,
        "wave" => z * z + 4.0 * (std::f64::consts::PI * z).sin().powi(2),
        other => return Err(format!("mixed: bad shape {other}").into()),
    };
    Ok(cost + offset + m * ints + shape)
}

fn function(name: &str) -> Option<(usize, f64, f64, Function)> {
    Some(match name {
        "branin" => (2, -5.0, 15.0, |x: &[f64]| {
            // x0 in [-5, 10], x1 in [0, 15]: rescaled from the shared box below.
            let (a, b) = (x[0] * 0.75 - 1.25, x[1] * 0.75 + 3.75);
            let pi = std::f64::consts::PI;
            (b - 5.1 / (4.0 * pi * pi) * a * a + 5.0 / pi * a - 6.0).powi(2)
                + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * a.cos()
                + 10.0
        }),
        "hartmann6" => (6, 0.0, 1.0, hartmann6 as Function),
        "rosenbrock10" => (10, -5.0, 10.0, |x: &[f64]| {
            x.windows(2)
                .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
                .sum()
        }),
        "ackley10" => (10, -32.768, 32.768, |x: &[f64]| {
            let n = x.len() as f64;
            let s1: f64 = x.iter().map(|v| v * v).sum::<f64>() / n;
            let s2: f64 = x
                .iter()
                .map(|v| (2.0 * std::f64::consts::PI * v).cos())
                .sum::<f64>()
                / n;
            -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
        }),
        "styblinski_tang10" => (10, -5.0, 5.0, |x: &[f64]| {
            x.iter()
                .map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v)
                .sum::<f64>()
                / 2.0
        }),
        _ => return None,
    })
}

fn hartmann6(x: &[f64]) -> f64 {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4)
        .map(|i| {
            ALPHA[i]
                * (-(0..6)
                    .map(|j| A[i][j] * (x[j] - P[i][j]).powi(2))
                    .sum::<f64>())
                .exp()
        })
        .sum::<f64>()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: quality PROBLEM PROPOSER BUDGET SEEDS";
    let (Some(problem), Some(name), Some(budget), Some(seeds)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        return Err(usage.into());
    };
    let (budget, seeds): (usize, u64) = (budget.parse()?, seeds.parse()?);
    let (space, direction, evaluator) = if let Some(rest) = problem.strip_prefix("table:") {
        let (path, direction) = rest.rsplit_once(':').ok_or(usage)?;
        let space = table_space(path)?;
        let table = TableTask::load(std::path::Path::new(path), &space)?;
        let direction = if direction == "maximize" {
            Direction::Maximize
        } else {
            Direction::Minimize
        };
        (space, direction, Problem::Table(table))
    } else if problem == "mixed" {
        (mixed_space()?, Direction::Minimize, Problem::Mixed)
    } else {
        let (d, low, high, f) = function(problem).ok_or("unknown problem")?;
        let space = SearchSpace::new(
            (0..d)
                .map(|i| Parameter {
                    name: format!("x{i:02}"),
                    distribution: Distribution::Float {
                        low,
                        high,
                        log: false,
                        step: None,
                    },
                    condition: None,
                })
                .collect(),
        )?;
        (space, Direction::Minimize, Problem::Function(f))
    };
    let objectives = Objectives::single("y", direction);
    let options: Options = match std::env::var("QUALITY_OPTIONS") {
        Ok(json) => serde_json::from_str(&json)?,
        Err(_) => Options::new(),
    };
    for seed in 0..seeds {
        let mut proposer = proposer(name, &options, &space, &objectives)?;
        let mut trials: Vec<Trial> = Vec::with_capacity(budget);
        let mut curve = Vec::with_capacity(budget);
        let mut best: Option<(f64, Params)> = None;
        for number in 0..budget as u64 {
            let history = History {
                trials: &trials,
                objectives: &objectives,
            };
            let mut rng = Rng::new(derive_seed(seed, &[1, number]));
            let proposal = propose(proposer.as_mut(), &space, &history, &mut rng);
            let value = match &evaluator {
                Problem::Table(table) => table.evaluate(
                    &proposal.params,
                    &mut Rng::new(derive_seed(seed, &[2, number])),
                )?,
                Problem::Function(f) => {
                    let x: Vec<f64> = proposal
                        .params
                        .values()
                        .filter_map(ParamValue::as_f64)
                        .collect();
                    f(&x)
                }
                Problem::Mixed => mixed(&proposal.params)?,
            };
            if best
                .as_ref()
                .is_none_or(|(b, _)| direction.better(value, *b))
            {
                best = Some((value, proposal.params.clone()));
            }
            let (observed, params) = best.as_ref().map(|(v, p)| (*v, p)).ok_or("no trial")?;
            curve.push(match &evaluator {
                Problem::Table(table) => table.mean(params)?,
                Problem::Function(_) | Problem::Mixed => observed,
            });
            let mut trial = proposal.into_trial(number, name);
            trial.state = TrialState::Complete;
            trial.metrics = BTreeMap::from([("y".to_string(), value)]);
            trials.push(trial);
        }
        let last = curve.last().copied().unwrap_or(f64::NAN);
        #[allow(clippy::print_stdout)]
        {
            println!(
                "{}",
                serde_json::json!({"engine": "firebreak", "problem": problem, "proposer": name, "seed": seed, "final": last, "curve": curve})
            );
        }
    }
    Ok(())
}

//! Building proposers and schedulers by name from their spec options.

use std::collections::BTreeMap;

use firebreak_core::{Objectives, SearchSpace};

use crate::{
    AshaScheduler, CmaEsOptions, CmaEsProposer, EvolutionProposer, GpOptions, GpProposer,
    GridProposer, Halving, HyperbandScheduler, Independent, MedianScheduler, NoScheduler,
    Nsga2Proposer, Proposer, RandomProposer, Restart, Scheduler, SearchError, SobolProposer,
    TpeOptions, TpeProposer,
};

/// Component options as given in `[search.sampler_options]` or
/// `[search.scheduler_options]`, converted to JSON values.
pub type Options = BTreeMap<String, serde_json::Value>;

/// The proposers this build implements.
pub const PROPOSERS: &[&str] = &[
    "random",
    "grid",
    "evolution",
    "tpe",
    "nsga2",
    "cmaes",
    "sobol",
    "gp",
    "adversary",
];

/// The schedulers this build implements.
pub const SCHEDULERS: &[&str] = &["none", "median", "asha", "hyperband", "pbt"];

fn check_keys(
    component: &'static str,
    name: &str,
    options: &Options,
    allowed: &[&'static str],
) -> Result<(), SearchError> {
    match options.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(SearchError::UnknownOption {
            component,
            name: name.to_string(),
            key: key.clone(),
            allowed: allowed.to_vec(),
        }),
        None => Ok(()),
    }
}

fn whole(options: &Options, key: &str, default: u64) -> Result<u64, SearchError> {
    match options.get(key) {
        None => Ok(default),
        Some(value) => value.as_u64().ok_or_else(|| SearchError::BadOption {
            key: key.to_string(),
            message: format!("expected a whole number, got {value}"),
        }),
    }
}

/// The most a size option (a population, a candidate count) may be: each
/// allocates per ask, so a huge value would exhaust memory instead of failing.
pub const MAX_SIZE_OPTION: u64 = 100_000;

/// A whole-number option that sizes an allocation, at most [`MAX_SIZE_OPTION`].
fn size(options: &Options, key: &str, default: u64) -> Result<u64, SearchError> {
    let value = whole(options, key, default)?;
    if value > MAX_SIZE_OPTION {
        return Err(SearchError::BadOption {
            key: key.to_string(),
            message: format!("{value} is more than the {MAX_SIZE_OPTION} this option allows"),
        });
    }
    Ok(value)
}

fn number(options: &Options, key: &str) -> Result<Option<f64>, SearchError> {
    options
        .get(key)
        .map(|value| {
            value.as_f64().ok_or_else(|| SearchError::BadOption {
                key: key.to_string(),
                message: format!("expected a number, got {value}"),
            })
        })
        .transpose()
}

fn flag(options: &Options, key: &str, default: bool) -> Result<bool, SearchError> {
    match options.get(key) {
        None => Ok(default),
        Some(value) => value.as_bool().ok_or_else(|| SearchError::BadOption {
            key: key.to_string(),
            message: format!("expected true or false, got {value}"),
        }),
    }
}

/// A string option that must be one of `allowed`.
fn word<'a>(
    options: &'a Options,
    key: &str,
    default: &'a str,
    allowed: &[&str],
) -> Result<&'a str, SearchError> {
    let word = match options.get(key) {
        None => default,
        Some(value) => value.as_str().ok_or_else(|| SearchError::BadOption {
            key: key.to_string(),
            message: format!("expected one of {allowed:?}, got {value}"),
        })?,
    };
    if allowed.contains(&word) {
        Ok(word)
    } else {
        Err(SearchError::BadOption {
            key: key.to_string(),
            message: format!("expected one of {allowed:?}, got {word:?}"),
        })
    }
}

/// Builds the proposer `name`. Options: `random` none; `grid`
/// `points_per_axis = 5` (values per float axis, and per int axis wider than 64);
/// `evolution` `population = 10`, `sample_size = 3`; `tpe` `n_startup_trials = 10`,
/// `n_ei_candidates = 24`, `prior_weight = 1.0`, `constant_liar = true`,
/// `multivariate = true`; `nsga2` `population = 50`; `cmaes` `sigma0 = 1/6`
/// (fraction of each range), `popsize` (default `4 + ⌊3 ln n⌋`),
/// `restart = "ipop"` (or `"bipop"`, `"none"`), `independent = "random"` (or
/// `"tpe"`: how categorical and conditional parameters are drawn); `sobol`
/// `scramble = true` (a random digital shift), `skip_first = false`; `gp`
/// `n_startup_trials = 10`, `n_candidates = 1000`, `independent = "random"` (or
/// `"tpe"`, for conditional parameters).
pub fn proposer(
    name: &str,
    options: &Options,
    space: &SearchSpace,
    objectives: &Objectives,
) -> Result<Box<dyn Proposer>, SearchError> {
    match name {
        "random" => {
            check_keys("sampler", name, options, &[])?;
            Ok(Box::new(RandomProposer))
        }
        "adversary" => {
            check_keys("sampler", name, options, &["every"])?;
            Ok(Box::new(crate::AdversaryProposer::new(whole(
                options, "every", 3,
            )?)))
        }
        "grid" => {
            check_keys("sampler", name, options, &["points_per_axis"])?;
            let points = whole(options, "points_per_axis", 5)? as usize;
            Ok(Box::new(GridProposer::new(space, points)?))
        }
        "tpe" => {
            check_keys(
                "sampler",
                name,
                options,
                &[
                    "n_startup_trials",
                    "n_ei_candidates",
                    "prior_weight",
                    "constant_liar",
                    "multivariate",
                    "scale_candidates",
                ],
            )?;
            let defaults = TpeOptions::default();
            let prior_weight = match options.get("prior_weight") {
                None => defaults.prior_weight,
                Some(v) => v.as_f64().ok_or_else(|| SearchError::BadOption {
                    key: "prior_weight".into(),
                    message: format!("expected a number, got {v}"),
                })?,
            };
            let flag = |key: &str, default: bool| match options.get(key) {
                None => Ok(default),
                Some(v) => v.as_bool().ok_or_else(|| SearchError::BadOption {
                    key: key.into(),
                    message: format!("expected true or false, got {v}"),
                }),
            };
            Ok(Box::new(TpeProposer::new(
                objectives,
                TpeOptions {
                    n_startup_trials: whole(options, "n_startup_trials", 10)? as usize,
                    n_ei_candidates: size(options, "n_ei_candidates", 24)? as usize,
                    prior_weight,
                    constant_liar: flag("constant_liar", defaults.constant_liar)?,
                    multivariate: flag("multivariate", defaults.multivariate)?,
                    scale_candidates: flag("scale_candidates", defaults.scale_candidates)?,
                },
            )?))
        }
        "nsga2" => {
            check_keys("sampler", name, options, &["population"])?;
            Ok(Box::new(Nsga2Proposer::new(
                size(options, "population", 50)? as usize,
            )?))
        }
        "cmaes" => {
            check_keys(
                "sampler",
                name,
                options,
                &["sigma0", "popsize", "restart", "independent"],
            )?;
            let defaults = CmaEsOptions::default();
            let restart = word(options, "restart", "ipop", &["ipop", "bipop", "none"])?;
            let independent = word(options, "independent", "random", &["random", "tpe"])?;
            Ok(Box::new(CmaEsProposer::new(
                objectives,
                CmaEsOptions {
                    sigma0: number(options, "sigma0")?.unwrap_or(defaults.sigma0),
                    popsize: options
                        .contains_key("popsize")
                        .then(|| size(options, "popsize", 0))
                        .transpose()?
                        .map(|p| p as usize),
                    restart: Restart::from_name(restart).unwrap_or(defaults.restart),
                    independent: Independent::from_name(independent)
                        .unwrap_or(defaults.independent),
                },
            )?))
        }
        "sobol" => {
            check_keys("sampler", name, options, &["scramble", "skip_first"])?;
            Ok(Box::new(SobolProposer::new(
                space,
                flag(options, "scramble", true)?,
                flag(options, "skip_first", false)?,
            )?))
        }
        "gp" => {
            check_keys(
                "sampler",
                name,
                options,
                &["n_startup_trials", "n_candidates", "independent"],
            )?;
            let defaults = GpOptions::default();
            let independent = word(options, "independent", "random", &["random", "tpe"])?;
            Ok(Box::new(GpProposer::new(
                objectives,
                GpOptions {
                    n_startup_trials: whole(options, "n_startup_trials", 10)? as usize,
                    n_candidates: size(options, "n_candidates", 1000)? as usize,
                    independent: Independent::from_name(independent)
                        .unwrap_or(defaults.independent),
                },
            )?))
        }
        "evolution" => {
            check_keys("sampler", name, options, &["population", "sample_size"])?;
            Ok(Box::new(EvolutionProposer::new(
                objectives,
                size(options, "population", 10)? as usize,
                size(options, "sample_size", 3)? as usize,
            )?))
        }
        _ => Err(SearchError::Unknown {
            component: "sampler",
            name: name.to_string(),
            available: PROPOSERS.to_vec(),
        }),
    }
}

/// Builds the scheduler `name`. Options: `none` none; `median` `min_steps = 0`
/// (no stop before this step), `min_trials = 5` (complete trials needed at a step);
/// `asha` and `hyperband` `reduction_factor = 3`, `min_resource = 1`,
/// `max_resource = 27` (steps).
pub fn scheduler(
    name: &str,
    options: &Options,
    objectives: &Objectives,
    space: &SearchSpace,
) -> Result<Box<dyn Scheduler>, SearchError> {
    match name {
        "none" => {
            check_keys("scheduler", name, options, &[])?;
            Ok(Box::new(NoScheduler))
        }
        "median" => {
            check_keys("scheduler", name, options, &["min_steps", "min_trials"])?;
            Ok(Box::new(MedianScheduler::new(
                &objectives.metrics,
                &objectives.directions,
                whole(options, "min_steps", 0)?,
                whole(options, "min_trials", 5)? as usize,
            )?))
        }
        "asha" | "hyperband" => {
            check_keys(
                "scheduler",
                name,
                options,
                &[
                    "reduction_factor",
                    "min_resource",
                    "max_resource",
                    "pause",
                    "synchronous",
                ],
            )?;
            let halving = Halving::new(
                whole(options, "reduction_factor", 3)?,
                whole(options, "min_resource", 1)?,
                whole(options, "max_resource", 27)?,
            )?;
            let pause = flag(options, "pause", false)?;
            if name == "hyperband" && options.contains_key("synchronous") {
                return Err(SearchError::BadOption {
                    key: "synchronous".into(),
                    message: "synchronous successive halving is an option of asha only".into(),
                });
            }
            if name == "asha" {
                let synchronous = flag(options, "synchronous", false)?;
                Ok(Box::new(
                    AshaScheduler::new(objectives, halving)?
                        .pausing(pause)
                        .synchronous(synchronous),
                ))
            } else {
                Ok(Box::new(
                    HyperbandScheduler::new(objectives, halving)?.pausing(pause),
                ))
            }
        }
        "pbt" => {
            check_keys(
                "scheduler",
                name,
                options,
                &[
                    "interval",
                    "quantile",
                    "resample_probability",
                    "perturbation",
                    "last_step",
                ],
            )?;
            let defaults = crate::PbtOptions::default();
            let pbt = crate::PbtOptions {
                interval: whole(options, "interval", defaults.interval)?,
                quantile: number(options, "quantile")?.unwrap_or(defaults.quantile),
                resample_probability: number(options, "resample_probability")?
                    .unwrap_or(defaults.resample_probability),
                perturbation: number(options, "perturbation")?.unwrap_or(defaults.perturbation),
                last_step: options
                    .get("last_step")
                    .map(|_| whole(options, "last_step", 0))
                    .transpose()?,
            };
            Ok(Box::new(crate::PbtScheduler::new(objectives, space, pbt)?))
        }
        _ => Err(SearchError::Unknown {
            component: "scheduler",
            name: name.to_string(),
            available: SCHEDULERS.to_vec(),
        }),
    }
}

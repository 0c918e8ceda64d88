//! The event loop of a simulated campaign. Training is modelled as checkpointed:
//! a trial the scheduler stops at a rung is paused, and resumes where it stopped
//! when the scheduler promotes it later (ASHA's promotions).

use firebreak_core::{
    Objectives, Params, Report, Rng, SearchSpace, Trial, TrialState, derive_seed,
};
use firebreak_search::{Decision, History, Proposer, Scheduler, propose};

use crate::CurveModel;

/// A simulated campaign's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Simulation {
    /// Simulated workers.
    pub workers: usize,
    /// Epochs of a full training (the scheduler's `max_resource`).
    pub max_epochs: u64,
    /// Trials to start.
    pub n_trials: u64,
    /// Seeds proposals, final-value draws and curve noise.
    pub seed: u64,
    /// The learning-curve model.
    pub model: CurveModel,
}

/// One simulated epoch on one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Busy {
    /// The worker.
    pub worker: usize,
    /// The trial it trained.
    pub trial: u64,
    /// When the epoch started (simulated seconds).
    pub start: f64,
    /// When it ended.
    pub end: f64,
}

/// What a simulated campaign did.
#[derive(Debug, Clone)]
pub struct SimReport {
    /// Every trial, with its reports and final state.
    pub trials: Vec<Trial>,
    /// Simulated wall time until the last trial ended.
    pub wall_seconds: f64,
    /// Simulated compute: the sum of every epoch's cost.
    pub compute_seconds: f64,
    /// Every simulated epoch, in the order they ended.
    pub busy: Vec<Busy>,
    /// Each new best complete trial: (simulated time, compute so far, its value).
    pub incumbent: Vec<(f64, f64, f64)>,
    /// Paused trials the scheduler promoted: (simulated time, trial, the step it
    /// had reached), resumed from their checkpoint on a free worker.
    pub resumed: Vec<(f64, u64, u64)>,
}

impl SimReport {
    /// What every printed result of a simulation must carry.
    pub const LABEL: &'static str =
        "SIMULATED: synthetic learning curves over table values, not training results";

    /// Simulated (time, compute) when the incumbent first reached `target` (in the
    /// objective's direction), or `None`.
    pub fn time_to_reach(&self, target: f64, maximize: bool) -> Option<(f64, f64)> {
        self.incumbent
            .iter()
            .find(|(_, _, v)| if maximize { *v >= target } else { *v <= target })
            .map(|(t, c, _)| (*t, *c))
    }

    /// The best complete trial's value.
    pub fn best(&self) -> Option<f64> {
        self.incumbent.last().map(|(_, _, v)| *v)
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    index: usize,
    epoch: u64,
    started: f64,
    ends: f64,
}

/// Replays a campaign: `proposer` suggests configurations of `space`,
/// `final_value` gives each one's final value (an error makes the trial fail at
/// once), the curve model turns it into per-epoch reports, and `scheduler`
/// decides after each epoch. Only the first objective is simulated.
pub fn simulate(
    sim: &Simulation,
    space: &SearchSpace,
    objectives: &Objectives,
    proposer: &mut dyn Proposer,
    scheduler: &dyn Scheduler,
    final_value: &mut dyn FnMut(&Params, &mut Rng) -> Result<f64, String>,
) -> SimReport {
    let metric = objectives.metrics[0].clone();
    let direction = objectives.directions[0];
    let mut trials: Vec<Trial> = Vec::new();
    let mut curves: Vec<Option<crate::Curve>> = Vec::new();
    let mut slots: Vec<Option<Slot>> = vec![None; sim.workers.max(1)];
    let mut report = SimReport {
        trials: Vec::new(),
        wall_seconds: 0.0,
        compute_seconds: 0.0,
        busy: Vec::new(),
        incumbent: Vec::new(),
        resumed: Vec::new(),
    };
    let mut clock = 0.0_f64;
    loop {
        // Free workers resume promotable paused trials first (checkpointed
        // training continues where it stopped), then start new trials.
        for slot in slots.iter_mut().filter(|s| s.is_none()) {
            let history = History {
                trials: &trials,
                objectives,
            };
            let Some(number) = scheduler.promote(&history) else {
                continue;
            };
            let index = number as usize;
            let (Some(curve), Some(step)) = (
                curves.get(index).cloned().flatten(),
                trials[index].intermediate.last().map(|r| r.step),
            ) else {
                continue;
            };
            trials[index].state = TrialState::Running;
            trials[index].error = None;
            report.resumed.push((clock, number, step));
            *slot = Some(Slot {
                index,
                epoch: step + 1,
                started: clock,
                ends: clock + curve.epoch_seconds,
            });
        }
        for slot in slots.iter_mut() {
            while slot.is_none() && (trials.len() as u64) < sim.n_trials {
                let number = trials.len() as u64;
                let mut rng = Rng::new(derive_seed(sim.seed, &[1, number]));
                let history = History {
                    trials: &trials,
                    objectives,
                };
                let proposal = propose(proposer, space, &history, &mut rng);
                let mut trial = proposal.into_trial(number, proposer.name());
                let mut draw = Rng::new(derive_seed(sim.seed, &[2, number]));
                match final_value(&trial.params, &mut draw) {
                    Ok(value) => {
                        trial.state = TrialState::Running;
                        curves.push(Some(sim.model.curve(
                            &trial.params,
                            value,
                            derive_seed(sim.seed, &[3, number]),
                        )));
                        let cost = curves[number as usize]
                            .as_ref()
                            .map_or(0.0, |c| c.epoch_seconds);
                        *slot = Some(Slot {
                            index: number as usize,
                            epoch: 1,
                            started: clock,
                            ends: clock + cost,
                        });
                        trials.push(trial);
                    }
                    Err(error) => {
                        trial.state = TrialState::Failed;
                        trial.error = Some(error);
                        curves.push(None);
                        trials.push(trial);
                        let history = History {
                            trials: &trials,
                            objectives,
                        };
                        proposer.after_trial(&history, &trials[number as usize]);
                    }
                }
            }
        }
        // The epoch that ends first (ties: the lowest worker).
        let Some((w, slot)) = slots
            .iter()
            .enumerate()
            .filter_map(|(w, s)| s.map(|s| (w, s)))
            .min_by(|a, b| a.1.ends.total_cmp(&b.1.ends).then(a.0.cmp(&b.0)))
        else {
            break;
        };
        clock = slot.ends;
        report.compute_seconds += slot.ends - slot.started;
        report.busy.push(Busy {
            worker: w,
            trial: slot.index as u64,
            start: slot.started,
            end: slot.ends,
        });
        let Some(curve) = curves[slot.index].clone() else {
            slots[w] = None;
            continue;
        };
        let value = curve.value(slot.epoch);
        trials[slot.index].intermediate.push(Report {
            step: slot.epoch,
            metrics: [(metric.clone(), value)].into_iter().collect(),
        });
        let history = History {
            trials: &trials,
            objectives,
        };
        let decision = scheduler.decide(&trials[slot.index], slot.epoch, &history);
        let finished = match decision {
            // PBT's exploit is not simulated: the trial stops like any other.
            Decision::Stop { reason } | Decision::Exploit { reason, .. } => {
                trials[slot.index].state = TrialState::Pruned;
                trials[slot.index].error = Some(reason);
                true
            }
            Decision::Continue if slot.epoch >= sim.max_epochs => {
                let trial = &mut trials[slot.index];
                trial.state = TrialState::Complete;
                trial.metrics.insert(metric.clone(), value);
                let better = report
                    .incumbent
                    .last()
                    .is_none_or(|(_, _, best)| direction.better(value, *best));
                if better {
                    report
                        .incumbent
                        .push((clock, report.compute_seconds, value));
                }
                true
            }
            Decision::Continue => {
                slots[w] = Some(Slot {
                    index: slot.index,
                    epoch: slot.epoch + 1,
                    started: clock,
                    ends: clock + curve.epoch_seconds,
                });
                false
            }
        };
        if finished {
            slots[w] = None;
            let history = History {
                trials: &trials,
                objectives,
            };
            proposer.after_trial(&history, &trials[slot.index]);
        }
    }
    report.wall_seconds = clock;
    report.trials = trials;
    report
}

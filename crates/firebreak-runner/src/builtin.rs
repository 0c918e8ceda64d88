//! The built-in executor: trains a network in-process with `firebreak-train`,
//! one OS thread per trial (trials run in parallel up to `parallelism`). Each
//! epoch's validation metrics go to the scheduler as a report; its answer is
//! sent back to the training thread, which stops at once on a prune. Checkpoints
//! live in the same per-trial folders as command trials', so pausing, resuming
//! and PBT's exploit work the same way.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use firebreak_core::{Metrics, Params, Report, Trial, TrialState};
use firebreak_data::Dataset;
use firebreak_store::{Outcome, Store};
use firebreak_train::{Control, EpochMetrics, Genome, Trained};
use tokio::sync::{mpsc, watch};

use crate::command::{Attempt, Ended, clear_dir, report_step, take_donor_checkpoint, trial_folder};
use crate::{Campaign, RunnerError};

/// The metrics a built-in trial reports each epoch.
pub const EPOCH_METRICS: &[&str] = &["val_accuracy", "val_loss", "train_loss"];

/// A built-in task: a dataset held in memory and a model family.
#[derive(Debug)]
pub struct BuiltinTask {
    /// The dataset, loaded once per run.
    pub data: Arc<Dataset>,
    /// The model family (`mlp`, `cnn`, `cell`, `transformer`).
    pub model: String,
    /// The most epochs a trial trains.
    pub max_epochs: u32,
    /// Whether the champion is retrained on training and validation data before
    /// its test evaluation.
    pub refit: bool,
    /// Folder under which each trial gets `<campaign>/<number>/checkpoint`.
    pub trials_root: PathBuf,
}

impl BuiltinTask {
    /// The task of a builtin spec: loads the dataset (partitioned with the
    /// task's `split_seed`, when it has one) and checks that the model,
    /// the space's parameter names and the objectives fit it.
    pub fn from_spec(
        spec: &firebreak_spec::CampaignSpec,
        trials_root: PathBuf,
    ) -> Result<Self, RunnerError> {
        let task = &spec.spec.task;
        let bad = |message: String| RunnerError::TaskUnavailable(message);
        let name = task.dataset.clone().unwrap_or_default();
        let data =
            firebreak_data::load_split(&name, task.split_seed).map_err(|e| bad(e.to_string()))?;
        let model = task.model.clone().unwrap_or_else(|| "mlp".into());
        let max_epochs = task.max_epochs.unwrap_or(20);
        for space in std::iter::once(&spec.space).chain(spec.next_space.as_ref()) {
            firebreak_train::genome::check_names(
                &model,
                space.parameters().iter().map(|p| p.name.as_str()),
            )
            .map_err(|e| bad(e.to_string()))?;
        }
        firebreak_train::genome::check_data(&model, &name, &data.shape)
            .map_err(|e| bad(e.to_string()))?;
        for metric in &spec.objectives.metrics {
            if !EPOCH_METRICS.contains(&metric.as_str()) {
                return Err(bad(format!(
                    "objective `{metric}` is not reported by built-in trials; hint: use one of {}",
                    EPOCH_METRICS.join(", ")
                )));
            }
        }
        Ok(BuiltinTask {
            data: Arc::new(data),
            model,
            max_epochs,
            refit: task.refit,
            trials_root,
        })
    }

    /// The genome of `params`.
    pub fn genome(&self, params: &Params) -> Result<Genome, firebreak_train::TrainError> {
        firebreak_train::genome(&self.model, params, self.max_epochs)
    }

    /// Test-split metrics of `trial`: `test_accuracy` and `test_loss` of its
    /// checkpointed network or, with `refit`, of its configuration retrained from
    /// `seed` on the training and validation splits together (then also
    /// `refit_cpu_seconds`). Blocks for the retraining.
    pub fn test(&self, campaign: &str, trial: &Trial, seed: u64) -> Result<Metrics, RunnerError> {
        let failed = |e: firebreak_train::TrainError| RunnerError::TaskUnavailable(e.to_string());
        let genome = self.genome(&trial.params).map_err(failed)?;
        let folder = trial_folder(&self.trials_root, campaign, trial.number)?;
        let mut metrics = Metrics::new();
        let dir = if self.refit {
            let dir = folder.join("refit-checkpoint");
            clear_dir(&dir)?;
            let data = self.data.with_validation_in_training();
            let cpu_error = |source| RunnerError::Io {
                context: format!(
                    "reading the CPU time of the refit of trial {}",
                    trial.number
                ),
                source,
            };
            let cpu = thread_cpu_seconds().map_err(cpu_error)?;
            firebreak_train::train(&genome, &data, seed, Some(&dir), |_| Control::Continue)
                .map_err(failed)?;
            let spent = thread_cpu_seconds().map_err(cpu_error)? - cpu;
            metrics.insert("refit_cpu_seconds".into(), spent);
            dir
        } else {
            folder.join("checkpoint")
        };
        let (loss, accuracy) = firebreak_train::test(&genome, &self.data, &dir).map_err(failed)?;
        metrics.insert("test_accuracy".into(), accuracy);
        metrics.insert("test_loss".into(), loss);
        Ok(metrics)
    }
}

/// What the training thread tells the run.
enum Event {
    Epoch(EpochMetrics),
    Done {
        result: Result<Trained, firebreak_train::TrainError>,
        /// The training thread's CPU time, or why it could not be read.
        cpu_seconds: Result<f64, std::io::Error>,
    },
}

/// Trains one trial to its end (or the scheduler's stop).
pub async fn execute<S: Store>(
    campaign: &Campaign<S>,
    task: &Arc<BuiltinTask>,
    trial: &Trial,
    attempt: Attempt,
    mut interrupt: watch::Receiver<bool>,
) -> Result<Ended, RunnerError> {
    let name = campaign.name().to_string();
    let number = trial.number;
    let reeval = attempt.is_reeval();
    let started = Instant::now();
    let genome = match task.genome(&trial.params) {
        Ok(genome) => genome,
        Err(error) => return Ok(Ended::Finished(Outcome::failed(error.to_string()))),
    };
    let base = trial_folder(&task.trials_root, &name, number)?;
    let checkpoint = base.join(if reeval {
        "reeval-checkpoint"
    } else {
        "checkpoint"
    });
    if reeval {
        clear_dir(&checkpoint)?;
    } else {
        take_donor_checkpoint(&task.trials_root, &name, trial, &checkpoint)?;
    }
    let seed = campaign.attempt_seed(number, attempt);
    let mut log = String::new();
    // A generation with a teacher: the students learn from its soft labels.
    let distill = match campaign.teacher().await {
        None => None,
        Some((teacher, params)) => {
            let settings = campaign
                .generations()
                .map(|g| g.distill.clone())
                .unwrap_or_default();
            let genome = match task.genome(&params) {
                Ok(genome) => genome,
                Err(error) => {
                    let why = format!("the teacher, trial {teacher}, cannot be rebuilt: {error}");
                    return Ok(Ended::Finished(Outcome::failed(why)));
                }
            };
            log.push_str(&format!(
                "taught by trial {teacher} (temperature {}, alpha {}, {} synthetic examples per epoch)\n",
                settings.temperature, settings.alpha, settings.synthetic_per_epoch
            ));
            Some(firebreak_train::Distill {
                teacher: genome,
                checkpoint: trial_folder(&task.trials_root, &name, teacher)?.join("checkpoint"),
                temperature: settings.temperature,
                alpha: settings.alpha,
                synthetic_per_epoch: usize::try_from(settings.synthetic_per_epoch)
                    .unwrap_or(usize::MAX),
            })
        }
    };

    let (events, mut rx) = mpsc::unbounded_channel();
    let (answers, answer_rx) = std::sync::mpsc::channel::<Control>();
    let thread_task = task.clone();
    let thread_genome = genome.clone();
    let thread_checkpoint = checkpoint.clone();
    std::thread::Builder::new()
        .name(format!("trial-{number}"))
        .spawn(move || {
            let epoch_events = events.clone();
            let result = firebreak_train::train_distilled(
                &thread_genome,
                &thread_task.data,
                seed,
                Some(&thread_checkpoint),
                distill.as_ref(),
                |metrics| {
                    if epoch_events.send(Event::Epoch(*metrics)).is_err() {
                        return Control::Stop;
                    }
                    answer_rx.recv().unwrap_or(Control::Stop)
                },
            );
            let _ = events.send(Event::Done {
                result,
                cpu_seconds: thread_cpu_seconds(),
            });
        })
        .map_err(|source| RunnerError::Io {
            context: format!("starting the thread of trial {number}"),
            source,
        })?;

    let mut stop: Option<String> = None;
    let (result, cpu_seconds) = loop {
        tokio::select! {
            event = rx.recv() => match event {
                Some(Event::Epoch(metrics)) => {
                    log.push_str(&format!(
                        "epoch {}: train_loss {:.5} val_loss {:.5} val_accuracy {:.5}\n",
                        metrics.epoch, metrics.train_loss, metrics.val_loss, metrics.val_accuracy
                    ));
                    let control = if reeval {
                        Control::Continue
                    } else {
                        match report(campaign, number, &metrics).await? {
                            None => Control::Continue,
                            Some(reason) => {
                                stop = Some(reason);
                                Control::Stop
                            }
                        }
                    };
                    let _ = answers.send(control);
                }
                Some(Event::Done { result, cpu_seconds }) => break (result, cpu_seconds),
                None => break (
                    Err(firebreak_train::TrainError::Unsupported("the training thread ended unexpectedly".into())),
                    Err(std::io::Error::other("the training thread ended without reporting it")),
                ),
            },
            changed = interrupt.changed() => {
                if changed.is_err() || *interrupt.borrow() {
                    // The thread stops at its next epoch, when its answer channel is gone.
                    return Ok(Ended::Interrupted);
                }
            }
        }
    };
    let mut outcome = match (result, stop) {
        (Err(error), _) => Outcome::failed(error.to_string()),
        (Ok(_), Some(reason)) => Outcome {
            state: TrialState::Pruned,
            ..Outcome::failed(reason)
        },
        (Ok(trained), None) => match trained.last {
            None => Outcome::failed("no epoch ran"),
            Some(last) => {
                let mut metrics = epoch_metrics(&last);
                metrics.insert("params".into(), trained.params as f64);
                metrics.insert("flops_per_sample".into(), trained.flops_per_sample as f64);
                if reeval {
                    let dir = checkpoint.clone();
                    if let Ok((loss, accuracy)) = firebreak_train::test(&genome, &task.data, &dir) {
                        metrics.insert("test_accuracy".into(), accuracy);
                        metrics.insert("test_loss".into(), loss);
                    }
                }
                Outcome::complete(metrics)
            }
        },
    };
    // Budgets (max_cpu_time, max_energy_kwh) count CPU time: a trial whose CPU
    // time is unknown fails, or says so, and never counts as 0 s.
    let cpu_seconds = match cpu_seconds {
        Ok(seconds) => Some(seconds),
        Err(error) => {
            let unknown = format!("its CPU time is unknown: {error}");
            outcome = match outcome.error.take() {
                None => Outcome::failed(unknown),
                Some(reason) => Outcome {
                    error: Some(format!("{reason}; {unknown}")),
                    ..outcome
                },
            };
            None
        }
    };
    if outcome.state == TrialState::Complete
        && let Some(cpu_seconds) = cpu_seconds
    {
        let watts = campaign.spec().spec.constraints.watts_per_core;
        outcome
            .metrics
            .insert("energy_kwh".into(), cpu_seconds * watts / 3.6e6);
    }
    outcome.cpu_seconds = cpu_seconds;
    outcome.wall_seconds = Some(started.elapsed().as_secs_f64());
    outcome.log = Some(log);
    Ok(Ended::Finished(outcome))
}

/// Reports an epoch to the campaign; `Some(reason)` when the trial must stop.
async fn report<S: Store>(
    campaign: &Campaign<S>,
    number: u64,
    metrics: &EpochMetrics,
) -> Result<Option<String>, RunnerError> {
    let report = Report {
        step: u64::from(metrics.epoch),
        metrics: epoch_metrics(metrics),
    };
    report_step(campaign, number, report).await
}

fn epoch_metrics(m: &EpochMetrics) -> Metrics {
    [
        ("val_accuracy".to_string(), m.val_accuracy),
        ("val_loss".to_string(), m.val_loss),
        ("train_loss".to_string(), m.train_loss),
    ]
    .into()
}

/// CPU time of the calling thread, or why the kernel would not give it.
fn thread_cpu_seconds() -> Result<f64, std::io::Error> {
    clock_seconds(libc::CLOCK_THREAD_CPUTIME_ID, "CLOCK_THREAD_CPUTIME_ID")
}

/// The reading of `clock` (called `name` in errors) in seconds; an error names
/// the call, its return value and the errno.
fn clock_seconds(clock: libc::clockid_t, name: &str) -> Result<f64, std::io::Error> {
    // SAFETY: timespec is plain data; clock_gettime fills it.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer; an unknown clock id is refused with EINVAL.
    let rc = unsafe { libc::clock_gettime(clock, &mut t) };
    if rc != 0 {
        let os = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            os.kind(),
            format!(
                "clock_gettime({name}) returned {rc}: {os}; hint: CPU time counts against \
                 max_cpu_time and max_energy_kwh, so it is never taken as 0 s; this kernel \
                 must give threads a CPU-time clock"
            ),
        ));
    }
    Ok(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock the kernel refuses is an error naming the call and the errno,
    /// never a CPU time of 0 s.
    #[test]
    fn an_unreadable_cpu_clock_is_an_error_naming_the_errno() {
        let text = clock_seconds(1_000_000, "clock 1000000")
            .expect_err("no such clock")
            .to_string();
        assert!(
            text.starts_with("clock_gettime(clock 1000000) returned -1: "),
            "{text}"
        );
        assert!(
            text.contains(&format!("(os error {})", libc::EINVAL)),
            "{text}"
        );
        assert!(text.contains("; hint: "), "{text}");
        let seconds = thread_cpu_seconds().expect("this thread's CPU clock");
        assert!(seconds.is_finite() && seconds >= 0.0, "{seconds}");
    }
}

//! The run loop: `parallelism` workers on this machine, each asking the campaign
//! for a trial, executing it and telling the result, until `n_trials` trials have
//! finished, a `[constraints]` limit is reached, or the run is interrupted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use firebreak_core::TrialState;
use firebreak_store::{Counts, Store};
use tokio::sync::{mpsc, watch};

use crate::builtin::{self, BuiltinTask};
use crate::campaign::Step;
use crate::command::{Attempt, CommandTask, Ended, execute};
use crate::table::TableTask;
use crate::{Campaign, RunnerError};

/// What evaluates a campaign's trials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Executor {
    /// An external program under the trial protocol.
    Command(CommandTask),
    /// A lookup in a benchmark table.
    Table(Arc<TableTask>),
    /// A network trained in-process.
    Builtin(Arc<BuiltinTask>),
}

impl Executor {
    /// The executor of a spec whose file lies in `spec_dir`; command trials get
    /// their folders under `trials_root`. An error for a task this build cannot run
    /// or a table that does not fit the space.
    pub fn from_spec(
        spec: &firebreak_spec::CampaignSpec,
        spec_dir: &std::path::Path,
        trials_root: std::path::PathBuf,
    ) -> Result<Self, RunnerError> {
        let task = &spec.spec.task;
        match task.kind {
            firebreak_spec::TaskKind::Command => {
                CommandTask::from_spec(spec, spec_dir, trials_root)
                    .map(Executor::Command)
                    .ok_or_else(|| RunnerError::TaskUnavailable("command without a command".into()))
            }
            firebreak_spec::TaskKind::Code => {
                let code = crate::code::CodeTask::from_spec(spec, spec_dir, &trials_root)?;
                let task = CommandTask::from_spec(spec, spec_dir, trials_root)
                    .ok_or_else(|| RunnerError::TaskUnavailable("code without a command".into()))?;
                Ok(Executor::Command(task.with_code(code)))
            }
            firebreak_spec::TaskKind::Table => {
                let path = spec_dir.join(task.path.as_deref().unwrap_or_default());
                Ok(Executor::Table(Arc::new(TableTask::load(
                    &path,
                    &spec.space,
                )?)))
            }
            firebreak_spec::TaskKind::Builtin => Ok(Executor::Builtin(Arc::new(
                BuiltinTask::from_spec(spec, trials_root)?,
            ))),
        }
    }

    /// Evaluates `trial` to its end.
    pub(crate) async fn evaluate<S: Store>(
        &self,
        campaign: &Campaign<S>,
        trial: &firebreak_core::Trial,
        attempt: Attempt,
        interrupt: watch::Receiver<bool>,
    ) -> Result<Ended, RunnerError> {
        match self {
            Executor::Command(task) => execute(campaign, task, trial, attempt, interrupt).await,
            Executor::Table(table) => Ok(evaluate_table(campaign, table, trial, attempt)),
            Executor::Builtin(task) => {
                builtin::execute(campaign, task, trial, attempt, interrupt).await
            }
        }
    }
}

/// Evaluates the campaign's champion (best complete trial on the first
/// objective; with `[generations]`, the last promoted champion) once on the test split and records `test_accuracy` and
/// `test_loss` as its test result (never in its metrics, which proposers see),
/// unless it was tested already; with the task's `refit`, the network
/// tested is the champion's configuration retrained with the trial's seed on the
/// training and validation splits. Built-in and code tasks have a test split
/// (a code task's champion runs once on the test inputs).
pub async fn test_champion<S: Store>(
    campaign: &Campaign<S>,
    executor: &Executor,
) -> Result<Option<(u64, firebreak_core::Metrics)>, RunnerError> {
    let objectives = &campaign.spec().objectives;
    let trials = campaign.store().trials(campaign.name()).await?;
    // With generations, the champion is the last promoted one (as the ledger says).
    let promoted = match campaign.generations() {
        None => None,
        Some(_) => crate::governance::verify_ledger(campaign.store())
            .await?
            .campaigns
            .get(campaign.name())
            .and_then(|c| c.generations.promoted)
            .and_then(|n| trials.iter().find(|t| t.number == n)),
    };
    let Some(champion) = promoted.or_else(|| objectives.best(&trials).first().copied()) else {
        return Ok(None);
    };
    if campaign
        .store()
        .tests(campaign.name())
        .await?
        .contains_key(&champion.number)
    {
        return Ok(None);
    }
    let (metrics, cpu_seconds) = match executor {
        Executor::Builtin(task) => {
            let (task, trial, name) = (task.clone(), champion.clone(), campaign.name().to_string());
            let seed = campaign.trial_seed(trial.number);
            let metrics = tokio::task::spawn_blocking(move || task.test(&name, &trial, seed))
                .await
                .map_err(|e| {
                    RunnerError::TaskUnavailable(format!("the test evaluation panicked: {e}"))
                })??;
            let cpu_seconds = metrics.get("refit_cpu_seconds").copied();
            (metrics, cpu_seconds)
        }
        Executor::Command(task) => match test_code_champion(campaign, task, champion).await? {
            Some(tested) => tested,
            None => return Ok(None),
        },
        Executor::Table(_) => return Ok(None),
    };
    campaign
        .store()
        .record_test(campaign.name(), champion.number, &metrics, cpu_seconds)
        .await?;
    Ok(Some((champion.number, metrics)))
}

/// A code task's champion run once more on the test inputs (in the place of the
/// validation inputs, so the program cannot tell) and scored on the test labels:
/// `test_accuracy` and the run's CPU seconds; `None` for a plain command task or
/// a run that did not end.
async fn test_code_champion<S: Store>(
    campaign: &Campaign<S>,
    task: &CommandTask,
    champion: &firebreak_core::Trial,
) -> Result<Option<(firebreak_core::Metrics, Option<f64>)>, RunnerError> {
    let Some(code) = &task.code else {
        return Ok(None);
    };
    let tested = code.for_test();
    tested.write_inputs()?;
    let task = task.clone().with_code(tested);
    let (_keep, interrupt) = watch::channel(false);
    let ended = execute(campaign, &task, champion, Attempt::Reeval, interrupt).await?;
    let Ended::Finished(outcome) = ended else {
        return Ok(None);
    };
    let mut metrics = firebreak_core::Metrics::new();
    match (outcome.state, outcome.metrics.get("val_accuracy")) {
        (TrialState::Complete, Some(accuracy)) => {
            metrics.insert("test_accuracy".into(), *accuracy);
        }
        _ => {
            return Err(RunnerError::TaskUnavailable(format!(
                "the champion failed on the test inputs: {}",
                outcome.error.unwrap_or_default()
            )));
        }
    }
    Ok(Some((metrics, outcome.cpu_seconds)))
}

/// Evaluates a trial by table lookup: one present seed, drawn with the trial's RNG.
fn evaluate_table<S: Store>(
    campaign: &Campaign<S>,
    table: &TableTask,
    trial: &firebreak_core::Trial,
    attempt: Attempt,
) -> Ended {
    let started = Instant::now();
    let seed = campaign.attempt_seed(trial.number, attempt);
    let mut rng = firebreak_core::Rng::new(seed);
    let mut outcome = match table.evaluate(&trial.params, &mut rng) {
        Ok(value) => {
            let metric = campaign.spec().objectives.metrics[0].clone();
            firebreak_store::Outcome::complete([(metric, value)].into())
        }
        Err(error) => firebreak_store::Outcome::failed(error),
    };
    outcome.wall_seconds = Some(started.elapsed().as_secs_f64());
    Ended::Finished(outcome)
}

/// Heartbeat period of a live run.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long a trial killed by SIGTERM or SIGINT waits for its worker's own
/// interruption before it counts as a failure.
const TERMINATION_GRACE: Duration = Duration::from_secs(2);

/// A trial that died of SIGTERM or SIGINT (not of the engine's SIGKILL).
fn terminated(outcome: &firebreak_store::Outcome) -> bool {
    outcome.state == TrialState::Failed
        && outcome.error.as_deref().is_some_and(|e| {
            e.starts_with("killed by signal 15 ") || e.starts_with("killed by signal 2 ")
        })
}

/// How often a joined worker with every slot taken looks for one again.
const SLOT_POLL: Duration = Duration::from_millis(500);

/// What a run reports while it works (the CLI draws its progress display from these).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RunEvent {
    /// A worker started a trial.
    Started {
        /// The trial's number.
        number: u64,
    },
    /// A generation started (`promoted: None`) or closed.
    Generation {
        /// 1-based.
        generation: u32,
        /// Whether its champion was promoted, once it closed.
        promoted: Option<bool>,
    },
    /// A trial finished.
    Finished {
        /// The trial's number.
        number: u64,
        /// Its final state.
        state: TrialState,
        /// Its first objective value, when complete.
        value: Option<f64>,
    },
}

/// Why a run stopped.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// `n_trials` trials have finished.
    Done,
    /// A `[constraints]` limit was reached first.
    Limit(String),
    /// Halted at a firebreak: a tripwire tripped, or `n_trials` was reached with
    /// change requests pending.
    Firebreak {
        /// The pending requests' ids.
        requests: Vec<String>,
        /// Why, in words.
        reason: String,
    },
    /// The run was interrupted (Ctrl-C, SIGTERM); running trials were re-queued.
    Interrupted {
        /// The re-queued trials.
        requeued: Vec<u64>,
    },
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Why it stopped.
    pub stop: Stop,
    /// Counts over the whole campaign at the end.
    pub counts: Counts,
    /// Trials finished by this run.
    pub finished_this_run: u64,
}

/// Usage so far against the campaign's `[constraints]`.
#[derive(Debug)]
struct Budget {
    max_wall: Option<f64>,
    max_cpu: Option<f64>,
    max_energy_kwh: Option<f64>,
    watts_per_core: f64,
    wall_before: f64,
    started: Instant,
    /// Trial CPU time so far, in microseconds.
    cpu_micros: AtomicU64,
}

impl Budget {
    fn add_cpu(&self, seconds: Option<f64>) {
        let micros = (seconds.unwrap_or(0.0).max(0.0) * 1e6) as u64;
        self.cpu_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn exceeded(&self) -> Option<String> {
        let wall = self.wall_before + self.started.elapsed().as_secs_f64();
        let cpu = self.cpu_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let energy_kwh = cpu * self.watts_per_core / 3.6e6;
        let fmt = |s: f64| firebreak_spec::Duration(s.round() as u64).to_string();
        if let Some(max) = self.max_wall.filter(|m| wall >= *m) {
            return Some(format!(
                "max_wall_time {} reached ({} used over all runs)",
                fmt(max),
                fmt(wall)
            ));
        }
        if let Some(max) = self.max_cpu.filter(|m| cpu >= *m) {
            return Some(format!(
                "max_cpu_time {} reached ({} of trial CPU time)",
                fmt(max),
                fmt(cpu)
            ));
        }
        if let Some(max) = self.max_energy_kwh.filter(|m| energy_kwh >= *m) {
            return Some(format!(
                "max_energy_kwh {max} reached ({energy_kwh:.4} kWh estimated)"
            ));
        }
        None
    }
}

/// Runs the campaign's trials until done, a limit, a firebreak, or `interrupt`
/// turns true. With `[generations]`, one search per generation, each followed by
/// its gates and its promotion at the boundary.
pub async fn run<S: Store>(
    campaign: Arc<Campaign<S>>,
    executor: Executor,
    events: mpsc::UnboundedSender<RunEvent>,
    interrupt: watch::Receiver<bool>,
) -> Result<RunSummary, RunnerError> {
    let n_trials = campaign.spec().spec.search.n_trials;
    kill_leftovers(&campaign, &executor)?;
    if let Executor::Command(task) = &executor
        && let Some(code) = &task.code
    {
        code.write_inputs()?;
        campaign.attach_code(code.clone());
    }
    let budget = Arc::new(Budget::for_run(&campaign).await?);
    let search = Search {
        campaign: campaign.clone(),
        executor: executor.clone(),
        events: events.clone(),
        interrupt: interrupt.clone(),
        budget: budget.clone(),
    };
    let mut finished_this_run = 0;
    let stop = if campaign.generations().is_none() {
        let taken = campaign.counts().await.finished();
        let (stop, finished) = search.run(taken, n_trials).await?;
        finished_this_run += finished;
        stop
    } else {
        let add_cpu = |seconds: Option<f64>| budget.add_cpu(seconds);
        let notify = |event: RunEvent| {
            let _ = events.send(event);
        };
        loop {
            if let Some(reason) = budget.exceeded() {
                break Stop::Limit(reason);
            }
            let step = campaign
                .boundary(&executor, (&add_cpu, &notify), &interrupt)
                .await?;
            match step {
                Step::Search { finished, budget } => {
                    let (stop, done) = search.run(finished, budget).await?;
                    finished_this_run += done;
                    if stop != Stop::Done {
                        break stop;
                    }
                }
                Step::Stop(stop) => break stop,
            }
        }
    };
    let counts = campaign.store().counts(campaign.name()).await?;
    let stop = match stop {
        Stop::Done if counts.finished() < n_trials && campaign.generations().is_none() => {
            Stop::Limit(format!(
                "only {} of n_trials = {n_trials} trials could finish",
                counts.finished()
            ))
        }
        Stop::Done => pending_firebreak(&campaign, n_trials)
            .await?
            .unwrap_or(Stop::Done),
        other => other,
    };
    Ok(RunSummary {
        stop,
        counts,
        finished_this_run,
    })
}

/// One search: workers until `limit` trials have finished (counting `taken`
/// finished before), a limit, a firebreak or an interruption.
struct Search<S: Store> {
    campaign: Arc<Campaign<S>>,
    executor: Executor,
    events: mpsc::UnboundedSender<RunEvent>,
    interrupt: watch::Receiver<bool>,
    budget: Arc<Budget>,
}

impl<S: Store> Search<S> {
    /// Why it stopped, and the trials it finished.
    async fn run(&self, taken: u64, limit: u64) -> Result<(Stop, u64), RunnerError> {
        let campaign = &self.campaign;
        let (limit_tx, limit_rx) = watch::channel(None::<String>);
        let shared = Worker {
            campaign: campaign.clone(),
            executor: self.executor.clone(),
            events: self.events.clone(),
            interrupt: self.interrupt.clone(),
            // Slots: a worker may start a trial only while finished + started < limit.
            taken: Arc::new(AtomicU64::new(taken)),
            limit,
            finished: Arc::new(AtomicU64::new(0)),
            budget: self.budget.clone(),
            limit_tx: Arc::new(limit_tx),
            limit_rx: limit_rx.clone(),
        };
        // The heartbeat is the run's lease on its trials (renewed every third
        // of a joined worker's lease); each beat also re-queues the trials of
        // runs whose lease ran out.
        let heartbeat = {
            let campaign = campaign.clone();
            let every = campaign.lease().map_or(HEARTBEAT, |lease| lease / 3);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let _ = campaign.keep_lease().await;
                }
            })
        };
        let workers: Vec<_> = (0..campaign.parallelism())
            .map(|worker| tokio::spawn(shared.clone().work(worker)))
            .collect();
        let first_error = join_workers(workers).await;
        heartbeat.abort();
        let _ = heartbeat.await; // drops its handle on the campaign
        if let Some(error) = first_error {
            return Err(error);
        }
        let stop = why_stopped(campaign, &self.interrupt, &limit_rx).await?;
        let finished = shared.finished.load(Ordering::SeqCst);
        let stop = match stop {
            Stop::Done if taken + finished < limit && campaign.generations().is_some() => {
                Stop::Limit(format!(
                    "only {} of the generation's budget = {limit} trials could finish",
                    taken + finished
                ))
            }
            other => other,
        };
        Ok((stop, finished))
    }
}

/// What a dead run's trials left behind on this host dies before anything runs.
fn kill_leftovers<S: Store>(
    campaign: &Campaign<S>,
    executor: &Executor,
) -> Result<(), RunnerError> {
    if let Executor::Command(task) = executor {
        for trial in campaign.requeued() {
            let dir = task.work_dir(campaign.name(), trial.number)?;
            crate::host::kill_by_environment("FIREBREAK_TRIAL_DIR", &dir.display().to_string());
        }
    }
    Ok(())
}

impl Budget {
    /// The campaign's limits, and its usage before this run.
    async fn for_run<S: Store>(campaign: &Campaign<S>) -> Result<Budget, RunnerError> {
        let spec = &campaign.spec().spec;
        // Usage before this run comes from the verified ledger, never from columns
        // an edit could lower; a dead run's heartbeat only ever adds to it.
        let (cpu_before, ledger_wall) = campaign.used_before();
        let runs = campaign.store().runs(campaign.name()).await?;
        let heartbeat_wall: f64 = runs
            .iter()
            .filter(|r| r.id != campaign.run_id())
            .map(|r| (r.ended_at.unwrap_or(r.heartbeat_at) - r.started_at).max(0) as f64 / 1000.0)
            .sum();
        let wall_before = ledger_wall.max(heartbeat_wall);
        let budget = Budget {
            max_wall: spec.constraints.max_wall_time.map(|d| d.0 as f64),
            max_cpu: spec.constraints.max_cpu_time.map(|d| d.0 as f64),
            max_energy_kwh: spec.constraints.max_energy_kwh,
            watts_per_core: spec.constraints.watts_per_core,
            wall_before,
            started: Instant::now(),
            cpu_micros: AtomicU64::new(0),
        };
        budget.add_cpu(Some(cpu_before));
        Ok(budget)
    }
}

/// What every worker of a run shares.
struct Worker<S: Store> {
    campaign: Arc<Campaign<S>>,
    executor: Executor,
    events: mpsc::UnboundedSender<RunEvent>,
    interrupt: watch::Receiver<bool>,
    taken: Arc<AtomicU64>,
    /// The most trials `taken` may reach.
    limit: u64,
    finished: Arc<AtomicU64>,
    budget: Arc<Budget>,
    limit_tx: Arc<watch::Sender<Option<String>>>,
    limit_rx: watch::Receiver<Option<String>>,
}

impl<S: Store> Clone for Worker<S> {
    fn clone(&self) -> Self {
        Worker {
            campaign: self.campaign.clone(),
            executor: self.executor.clone(),
            events: self.events.clone(),
            interrupt: self.interrupt.clone(),
            taken: self.taken.clone(),
            limit: self.limit,
            finished: self.finished.clone(),
            budget: self.budget.clone(),
            limit_tx: self.limit_tx.clone(),
            limit_rx: self.limit_rx.clone(),
        }
    }
}

impl<S: Store> Worker<S> {
    /// Worker `worker`'s loop: take a trial, evaluate it, tell its outcome.
    async fn work(self, worker: u32) -> Result<(), RunnerError> {
        while let Some(trial) = self.next_trial(worker).await? {
            let _ = self.events.send(RunEvent::Started {
                number: trial.number,
            });
            let ended = self
                .executor
                .evaluate(
                    &self.campaign,
                    &trial,
                    Attempt::Trial,
                    self.interrupt.clone(),
                )
                .await?;
            match ended {
                Ended::Interrupted => return Ok(()),
                // A scheduler's cancel (Slurm's `scancel`, a pod's eviction)
                // signals every process of the job, the trial's too, often
                // before the worker hears of it: such a death is the worker's
                // interruption, not the trial's failure, and the trial goes
                // back to the queue.
                Ended::Finished(outcome)
                    if terminated(&outcome) && self.interrupted_soon().await =>
                {
                    return Ok(());
                }
                Ended::Finished(outcome) => self.finish(&trial, outcome).await?,
            }
        }
        Ok(())
    }

    /// True when the run is interrupted now or within a moment (the grace a
    /// signal sent to a whole job needs to reach this process too).
    async fn interrupted_soon(&self) -> bool {
        let mut interrupt = self.interrupt.clone();
        tokio::time::timeout(TERMINATION_GRACE, interrupt.wait_for(|stop| *stop))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The next trial to run, or `None` when this worker should stop: the run is
    /// interrupted, a limit is reached, the campaign is halted, or every slot of
    /// `n_trials` is taken.
    async fn next_trial(&self, worker: u32) -> Result<Option<firebreak_core::Trial>, RunnerError> {
        let campaign = &self.campaign;
        if *self.interrupt.borrow() || self.limit_rx.borrow().is_some() {
            return Ok(None);
        }
        if let Some(reason) = self.budget.exceeded() {
            let _ = self.limit_tx.send(Some(reason));
            return Ok(None);
        }
        if campaign.halted().await.is_some() {
            return Ok(None);
        }
        // A promoted paused trial goes first; it is not a new start.
        if let Some(trial) = campaign.resume_promoted(worker).await? {
            return Ok(Some(trial));
        }
        // A joined worker's slots are counted by the store, across processes.
        let shared = campaign.lease().is_some();
        if !shared && self.taken.fetch_add(1, Ordering::SeqCst) >= self.limit {
            self.taken.fetch_sub(1, Ordering::SeqCst);
            return Ok(None);
        }
        let give_back = || {
            if !shared {
                self.taken.fetch_sub(1, Ordering::SeqCst);
            }
        };
        match campaign.ask(worker).await {
            Ok(trial) => Ok(Some(trial)),
            Err(RunnerError::Halted { .. }) => {
                give_back();
                Ok(None)
            }
            Err(RunnerError::LlmBudget(reason)) => {
                give_back();
                let _ = self.limit_tx.send(Some(reason));
                Ok(None)
            }
            Err(RunnerError::Store(firebreak_store::StoreError::NoSlot)) => {
                // Every slot is taken by running trials, here or elsewhere: done
                // once they finish, else one may come back (a lease ran out).
                give_back();
                let counts = campaign.store().counts(campaign.name()).await?;
                if counts.finished() >= self.limit {
                    return Ok(None);
                }
                tokio::time::sleep(SLOT_POLL).await;
                Box::pin(self.next_trial(worker)).await
            }
            Err(other) => Err(other),
        }
    }

    /// Records a finished trial, re-evaluates it when a tripwire asks, and
    /// reports it.
    async fn finish(
        &self,
        trial: &firebreak_core::Trial,
        outcome: firebreak_store::Outcome,
    ) -> Result<(), RunnerError> {
        let campaign = &self.campaign;
        let state = outcome.state;
        self.budget.add_cpu(outcome.cpu_seconds);
        let value = campaign
            .spec()
            .objectives
            .metrics
            .first()
            .and_then(|m| outcome.metrics.get(m).copied());
        campaign.tell(trial.number, outcome).await?;
        self.finished.fetch_add(1, Ordering::SeqCst);
        if campaign.reeval_due(trial.number).await {
            let again = self
                .executor
                .evaluate(campaign, trial, Attempt::Reeval, self.interrupt.clone())
                .await?;
            if let Ended::Finished(again) = again {
                self.budget.add_cpu(again.cpu_seconds);
                campaign.reevaluated(trial.number, again).await?;
            }
        }
        let _ = self.events.send(RunEvent::Finished {
            number: trial.number,
            state,
            value: if state == TrialState::Complete {
                value
            } else {
                None
            },
        });
        Ok(())
    }
}

/// Waits for every worker; the first error (a panic counts as one).
async fn join_workers(
    workers: Vec<tokio::task::JoinHandle<Result<(), RunnerError>>>,
) -> Option<RunnerError> {
    let mut first_error = None;
    for worker in workers {
        let result = worker.await.unwrap_or_else(|e| {
            Err(RunnerError::Io {
                context: "a worker panicked".into(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error
}

/// Why the workers stopped: interrupted (running trials re-queued), halted, a
/// limit, or `Done` (the slots ran out).
async fn why_stopped<S: Store>(
    campaign: &Campaign<S>,
    interrupt: &watch::Receiver<bool>,
    limit_rx: &watch::Receiver<Option<String>>,
) -> Result<Stop, RunnerError> {
    if *interrupt.borrow() {
        let requeued = campaign
            .requeue_own(&format!("run {} was interrupted", campaign.run_id()))
            .await?;
        return Ok(Stop::Interrupted {
            requeued: requeued.into_iter().map(|r| r.number).collect(),
        });
    }
    if let Some(halt) = campaign.halted().await {
        return Ok(Stop::Firebreak {
            requests: vec![halt.request],
            reason: halt.reason,
        });
    }
    let limit = limit_rx.borrow().clone();
    Ok(limit.map_or(Stop::Done, Stop::Limit))
}

/// `n_trials` reached: a firebreak when change requests are pending, else `None`.
async fn pending_firebreak<S: Store>(
    campaign: &Campaign<S>,
    n_trials: u64,
) -> Result<Option<Stop>, RunnerError> {
    let pending: Vec<_> = campaign
        .store()
        .requests(Some(campaign.name()))
        .await?
        .into_iter()
        .filter(|r| r.state == firebreak_ledger::RequestState::Pending)
        .collect();
    if pending.is_empty() {
        return Ok(None);
    }
    let list: Vec<String> = pending
        .iter()
        .map(|r| format!("{} ({}: {})", r.body.id, r.body.kind, r.body.reason))
        .collect();
    Ok(Some(Stop::Firebreak {
        requests: pending.into_iter().map(|r| r.body.id).collect(),
        reason: format!(
            "n_trials = {n_trials} reached within the approved limits; pending: {}",
            list.join("; ")
        ),
    }))
}

//! A campaign opened for running: the ask/tell API over a store, with the
//! proposer, the scheduler and an in-memory view of the campaign's trials.

use std::collections::HashSet;
use std::sync::Arc;

use firebreak_core::{Report, Rng, Trial, TrialState, derive_seed};
use firebreak_govern::{Action, Principal, Tripwires};
use firebreak_ledger::{Request, RequestState};
use firebreak_search::{Decision, History, Options, Proposal, Proposer, Scheduler, propose};
use firebreak_spec::CampaignSpec;
use firebreak_store::{
    CampaignLock, CampaignRecord, Counts, NewTrial, Outcome, Requeued, RunInfo, Start, Store,
    StoreError,
};
use serde_json::json;
use tokio::sync::Mutex;

use crate::governance::{self, Gov};
use crate::{RunnerError, host};

mod generations;

pub use generations::PARENT;
pub(crate) use generations::Step;

/// How many invalid proposals in a row stop a campaign.
const MAX_INVALID_PROPOSALS: u32 = 100;

/// Stream labels for [`derive_seed`], so proposals and trial seeds never share draws.
const PROPOSAL_STREAM: u64 = 1;
/// The random stream of the agent's request seeds.
const AGENT_STREAM: u64 = 5;
const TRIAL_SEED_STREAM: u64 = 2;
const REEVAL_SEED_STREAM: u64 = 3;
const GATE_SEED_STREAM: u64 = 6;

/// How often `ask` looks for trials queued by other processes.
const QUEUE_POLL: std::time::Duration = std::time::Duration::from_millis(200);
/// A shared campaign's history is read again after at least this many times
/// the last read's duration (and QUEUE_POLL), so reading it takes at most a
/// tenth of a worker's time however large the campaign grows.
const HISTORY_READ_SHARE: u32 = 10;
/// The reason recorded when a trial goes back to the queue because its
/// holder's lease ran out.
const LEASE_EXPIRED: &str = "lease expired";

/// The proposer of PBT's replacement trials (`exploit`).
const PBT: &str = "pbt";

/// The donor whose checkpoint a PBT replacement starts from, as its proposer
/// state records it (`{"v": 1, "pbt": {"exploit_from": N}}`).
pub(crate) fn exploit_donor(trial: &Trial) -> Option<u64> {
    if trial.proposer != PBT {
        return None;
    }
    trial.proposer_state.as_ref()?[PBT]["exploit_from"].as_u64()
}

/// The proposer of people's configurations (`enqueue`).
pub const ENQUEUED: &str = "enqueued";
/// The proposer of retries.
pub const RETRY: &str = "retry";

/// A campaign held by this process: created or resumed, locked against other runs,
/// with a run recorded in the ledger. Dropping it releases the lock.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use firebreak_runner::{Campaign, Outcome};
/// use firebreak_store::SqliteStore;
///
/// let spec = firebreak_spec::CampaignSpec::parse(&std::fs::read_to_string("c.toml")?, "c.toml")?;
/// let store = SqliteStore::open("sqlite://.firebreak/firebreak.db").await?;
/// let campaign = Campaign::open(store, spec).await?;
/// let trial = campaign.ask(0).await?;
/// let x = trial.params["x"].as_f64().unwrap_or(0.0);
/// campaign.tell(trial.number, Outcome::complete([("y".to_string(), x * x)].into())).await?;
/// campaign.close("done").await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Campaign<S: Store> {
    store: S,
    /// The spec in effect (as approved), which may differ from the file's.
    spec: CampaignSpec,
    record: CampaignRecord,
    run: u64,
    scheduler: Box<dyn Scheduler>,
    state: Mutex<State>,
    requeued: Vec<Requeued>,
    created: bool,
    gov: Gov,
    filed: Vec<(Request, bool)>,
    refused_before: Vec<Request>,
    opened: std::time::Instant,
    /// CPU and wall seconds the ledger records before this run.
    used: (f64, f64),
    /// The language-model agent, when the sampler is `agent`.
    agent: Option<crate::agent::Agent>,
    /// A code task's engine side, attached by the run.
    code: std::sync::OnceLock<Arc<crate::code::CodeTask>>,
    guards_restored: bool,
    /// `Some` for a worker that joined a campaign other processes run too: its
    /// lease, renewed by its run's heartbeat.
    lease: Option<std::time::Duration>,
    /// How many trials this process runs at once.
    parallelism: u32,
    /// The run lock (`None` for a joined worker, which takes none).
    _lock: Option<CampaignLock>,
}

/// What opening a campaign found before its run starts.
struct Opening {
    record: CampaignRecord,
    replayed: firebreak_ledger::Replayed,
    created: bool,
    filed: Vec<(Request, bool)>,
    refused_before: Vec<Request>,
    guards_restored: bool,
    lock: Option<CampaignLock>,
    lease: Option<std::time::Duration>,
    parallelism: Option<u32>,
}

#[derive(Debug)]
struct State {
    proposer: Box<dyn Proposer>,
    /// Every trial of the campaign this process knows of, by number.
    history: Vec<Trial>,
    /// Proposals made by the proposer so far: the index of its next random stream.
    proposals: u64,
    /// When the store's queue was last checked for trials queued by other processes.
    queue_checked: Option<std::time::Instant>,
    /// A joined worker, or a run that met one: when `history` was last read
    /// from the store.
    history_read: Option<std::time::Instant>,
    /// How long that read took.
    history_cost: std::time::Duration,
    /// Another process took a trial number: a run reads the store's history
    /// from then on, as a joined worker does.
    shared: bool,
    /// The number the next proposal gets.
    next_number: u64,
    /// How many trials of `history` are queued (kept by `upsert`).
    queued: usize,
    tripwires: Tripwires,
    /// Set when a tripwire tripped or one's request is pending: no new trials.
    halt: Option<Halt>,
    /// A joined worker's heartbeat found another spec in effect (an approved
    /// request): no new trials under the old one; the worker joins again.
    spec_changed: bool,
    /// Diff hashes of the proposer's asks already handled in this run.
    asked: HashSet<String>,
    /// CPU seconds of the trials finished in this run.
    cpu_this_run: f64,
    /// The generation trials start in (`[generations]`); `history` holds its
    /// trials and those not started yet.
    generation: Option<generations::Gen>,
    /// Counts of the trials of earlier generations (not in `history`).
    earlier: Counts,
}

/// Why a campaign takes no new trials.
#[derive(Debug, Clone, PartialEq)]
pub struct Halt {
    /// The pending request.
    pub request: String,
    /// What tripped, in words.
    pub reason: String,
}

impl State {
    /// The space proposals are drawn from and checked against: the current
    /// generation's, or the campaign's.
    fn space<'a>(&'a self, spec: &'a CampaignSpec) -> &'a firebreak_core::SearchSpace {
        self.generation.as_ref().map_or(&spec.space, |g| &g.space)
    }

    fn upsert(&mut self, mut trial: Trial) {
        self.next_number = self.next_number.max(trial.number + 1);
        if trial.generation.is_none() && trial.state != TrialState::Queued {
            trial.generation = self.generation.as_ref().map(|g| g.number);
        }
        let queued = usize::from(trial.state == TrialState::Queued);
        match self
            .history
            .binary_search_by_key(&trial.number, |t| t.number)
        {
            Ok(i) => {
                let was = usize::from(self.history[i].state == TrialState::Queued);
                self.queued = self.queued + queued - was;
                self.history[i] = trial;
            }
            Err(i) => {
                self.queued += queued;
                self.history.insert(i, trial);
            }
        }
    }

    /// Takes the next number for a proposal and enters it in the history as
    /// running, so that concurrent proposals see it.
    fn reserve(&mut self, new: &NewTrial) -> u64 {
        let number = self.next_number;
        let mut trial = Trial::queued(number, new.params.clone(), &new.proposer, &new.rationale);
        trial.proposer_state = new.state.clone();
        trial.state = TrialState::Running;
        self.upsert(trial);
        number
    }

    fn get_mut(&mut self, number: u64) -> Option<&mut Trial> {
        let i = self
            .history
            .binary_search_by_key(&number, |t| t.number)
            .ok()?;
        self.history.get_mut(i)
    }
}

/// Converts `[search.*_options]` TOML tables to JSON options.
fn options(table: &std::collections::BTreeMap<String, toml::Value>) -> Options {
    table
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                serde_json::to_value(v).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// A campaign's proposer and scheduler.
pub type Components = (Box<dyn Proposer>, Box<dyn Scheduler>);

/// Builds the spec's proposer and scheduler, turning their errors into located
/// spec errors. `validate` runs this too, so a spec that validates can run.
pub fn components(spec: &CampaignSpec) -> Result<Components, RunnerError> {
    let search = &spec.spec.search;
    let located = |section: &str, options_key: &str, error: firebreak_search::SearchError| {
        use firebreak_search::SearchError as E;
        match &error {
            E::Unknown { available, .. } => spec.error_at(
                &["search", section],
                error.to_string(),
                format!("this build has {}", available.join(", ")),
            ),
            E::UnknownOption { key, allowed, .. } => spec.error_at(
                &["search", options_key, key],
                error.to_string(),
                if allowed.is_empty() {
                    "this component takes no options; remove the table".to_string()
                } else {
                    format!("its options are {}", allowed.join(", "))
                },
            ),
            E::BadOption { key, .. } => spec.error_at(
                &["search", options_key, key],
                error.to_string(),
                "see the README's table of component options",
            ),
            _ => spec.error_at(
                &["search", section],
                error.to_string(),
                "choose another component",
            ),
        }
    };
    // The agent proposer is built by the runner (it does IO); its fallback, a
    // classic proposer with its defaults, proposes when the agent cannot.
    let agent = agent_options(spec)?;
    let (sampler, sampler_options) = match &agent {
        Some(agent) => (agent.fallback.as_str(), Default::default()),
        None => (search.sampler.as_str(), options(&search.sampler_options)),
    };
    let proposer =
        firebreak_search::proposer(sampler, &sampler_options, &spec.space, &spec.objectives)
            .map_err(|e| match (&agent, &e) {
                (Some(_), firebreak_search::SearchError::Unknown { available, .. }) => spec
                    .error_at(
                        &["search", "sampler_options", "fallback"],
                        e.to_string(),
                        format!("the fallback is one of {}", available.join(", ")),
                    ),
                _ => located("sampler", "sampler_options", e),
            })?;
    let scheduler = firebreak_search::scheduler(
        &search.scheduler,
        &options(&search.scheduler_options),
        &spec.objectives,
        &spec.space,
    )
    .map_err(|e| located("scheduler", "scheduler_options", e))?;
    Ok((proposer, scheduler))
}

/// The agent proposer's options when the spec's sampler is `agent`, as located
/// spec errors.
pub(crate) fn agent_options(
    spec: &CampaignSpec,
) -> Result<Option<firebreak_agent::AgentOptions>, RunnerError> {
    let search = &spec.spec.search;
    if search.sampler != crate::agent::AGENT {
        return Ok(None);
    }
    let code_task = spec.spec.task.kind == firebreak_spec::TaskKind::Code;
    let parsed = firebreak_agent::AgentOptions::from_options(&options(&search.sampler_options));
    if let Ok(agent) = &parsed
        && (agent.mode == firebreak_agent::Mode::Code) != code_task
    {
        return Err(RunnerError::Spec(spec.error_at(
            &["search", "sampler_options", "mode"],
            if code_task {
                "a code task needs the agent in code mode"
            } else {
                "the agent's code mode needs a code task ([task] kind = \"code\")"
            },
            "set mode = \"code\" with [task] kind = \"code\", or mode = \"config\" with any other task",
        )));
    }
    parsed.map(Some).map_err(|e| {
        use firebreak_agent::AgentError as E;
        let key = match &e {
            E::UnknownOption { key } | E::BadOption { key, .. } => key.as_str(),
            _ => "",
        };
        let hint = match &e {
            E::UnknownOption { .. } => {
                format!(
                    "its options are {}",
                    firebreak_agent::OPTION_KEYS.join(", ")
                )
            }
            _ => "see the README's section on the agent proposer".to_string(),
        };
        let path: &[&str] = if key.is_empty() {
            &["search", "sampler_options"]
        } else {
            &["search", "sampler_options", key]
        };
        RunnerError::Spec(spec.error_at(path, e.to_string(), hint))
    })
}

impl<S: Store> Campaign<S> {
    /// Creates the campaign the spec names, or resumes it, as the local
    /// operating-system user; see [`Campaign::open_as`].
    pub async fn open(store: S, spec: CampaignSpec) -> Result<Self, RunnerError> {
        let actor = Principal::Local {
            user: host::os_user(),
        };
        Self::open_as(store, spec, actor).await
    }

    /// Creates the campaign the spec names, or resumes it, acting as `actor`:
    /// takes its run lock; on resume, applies edits outside governance and files a
    /// change request for each kind of governed edit (the campaign then runs with
    /// the spec in effect, inside the approved limits); expires requests past their
    /// time to live; records a run; and re-queues the trials a dead run left
    /// running (killing what remains of their processes on this host).
    pub async fn open_as(
        store: S,
        file_spec: CampaignSpec,
        actor: Principal,
    ) -> Result<Self, RunnerError> {
        Self::open_asking(store, file_spec, actor, false).await
    }

    /// [`Campaign::open_as`], where `ask_again` files a request again for an
    /// edit identical to one that was rejected or expired (without it, such an
    /// edit is reported by [`Campaign::refused_before`] and not filed).
    pub async fn open_asking(
        store: S,
        file_spec: CampaignSpec,
        actor: Principal,
        ask_again: bool,
    ) -> Result<Self, RunnerError> {
        components(&file_spec)?;
        governance::authorizer(&file_spec)?;
        let name = file_spec.name().to_string();
        let lock = store
            .lock_campaign(
                &name,
                &format!("pid {} on {}", std::process::id(), host::host_name()),
            )
            .await?;
        // Nothing below acts on a row the ledger does not back.
        let guards_restored = store.restore_guards().await?;
        let replayed = governance::verify_ledger(&store).await?;
        let canonical = file_spec.canonical_json();
        let (mut record, created) = match store.campaign(&name).await? {
            None => (store.create_campaign(&name, &canonical).await?, true),
            Some(existing) => (existing, false),
        };
        let stored = CampaignSpec::from_canonical(&record.spec, &name)?;
        let gov = Gov::new(&stored, actor.clone())?;
        let reconciled =
            governance::reconcile(&store, &mut record, &canonical, &gov, ask_again).await?;
        let opening = Opening {
            record,
            replayed,
            created,
            filed: reconciled.filed,
            refused_before: reconciled.refused_before,
            guards_restored,
            lock: Some(lock),
            lease: None,
            parallelism: None,
        };
        Self::start(store, opening, actor).await
    }

    /// Joins campaign `name`, which exists in the store, as a worker beside any
    /// other processes running it (on this machine or others): takes no lock,
    /// runs the spec in effect as the ledger records it, and holds its trials by
    /// a lease its run's heartbeat renews. Trials of runs whose lease ran out
    /// are re-queued (`lease expired`); the store's compare-and-sets keep two
    /// workers from sharing a trial or starting one past `n_trials`. It runs
    /// `slots` trials at once (default: the spec's `parallelism`).
    pub async fn join(
        store: S,
        name: &str,
        actor: Principal,
        lease: std::time::Duration,
        slots: Option<u32>,
    ) -> Result<Self, RunnerError> {
        let guards_restored = store.restore_guards().await?;
        let replayed = governance::verify_ledger(&store).await?;
        let record = store
            .campaign(name)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(name.to_string()))?;
        let opening = Opening {
            record,
            replayed,
            created: false,
            filed: Vec::new(),
            refused_before: Vec::new(),
            guards_restored,
            lock: None,
            lease: Some(lease),
            parallelism: slots,
        };
        Self::start(store, opening, actor).await
    }

    /// Starts a run of the campaign `opening` found: its spec in effect,
    /// expired requests closed, the ledger's halt, the run recorded, and the
    /// trials of dead runs re-queued.
    async fn start(store: S, opening: Opening, actor: Principal) -> Result<Self, RunnerError> {
        let Opening {
            record,
            replayed,
            created,
            filed,
            refused_before,
            guards_restored,
            mut lock,
            lease,
            parallelism,
        } = opening;
        let name = record.name.clone();
        let pid = std::process::id();
        let host_name = host::host_name();
        let used = replayed
            .campaigns
            .get(&name)
            .map_or((0.0, 0.0), |c| (c.cpu_seconds, c.wall_seconds));
        let spec = CampaignSpec::from_canonical(&record.spec, &name)?;
        let gov = Gov::new(&spec, actor)?;
        let (proposer, scheduler) = components(&spec)?;
        let agent = match agent_options(&spec)? {
            Some(options) => {
                let tokens = replayed.campaigns.get(&name).map_or(0, |c| c.llm_tokens);
                Some(crate::agent::Agent::new(&options, tokens)?)
            }
            None => None,
        };
        if lease.is_some() && (spec.spec.generations.is_some() || agent.is_some()) {
            return Err(RunnerError::NotForWorkers(format!(
                "campaign {name:?} uses {}, which only `firebreak run` drives so far",
                if agent.is_some() {
                    "the agent proposer"
                } else {
                    "[generations]"
                }
            )));
        }
        let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
        let mut requests = store.requests(Some(&name)).await?;
        for request in &mut requests {
            let expired =
                firebreak_core::parse_rfc3339(&request.body.expires_at).is_none_or(|at| now > at);
            if request.state == RequestState::Pending && expired {
                let why = format!("its time to live ran out at {}", request.body.expires_at);
                store
                    .close_request(&request.body.id, RequestState::Expired, &why)
                    .await?;
                request.state = RequestState::Expired;
            }
        }
        let halt = halt_of(&replayed, &name, requests);
        let parallelism_in_spec = spec.spec.search.parallelism;
        let info = RunInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            os_user: host::os_user(),
            host: host_name.clone(),
            pid,
            sandbox: crate::command::sandbox_record(&spec)?,
            lease_ms: lease.map(lease_ms),
        };
        let run = store.start_run(&name, &info).await?;
        if let Some(lock) = &mut lock {
            lock.describe(&format!("run {run}, pid {pid} on {host_name}"))?;
        }
        let requeued = match lease {
            None => store
                .requeue_running(
                    &name,
                    &format!(
                        "the run that held it is gone (its lock was free when run {run} started)"
                    ),
                )
                .await?,
            Some(_) => store.requeue_expired(&name, LEASE_EXPIRED).await?,
        };
        kill_left_behind(&requeued);
        let history = store.trials(&name).await?;
        let proposals = history
            .iter()
            .filter(|t| t.proposer == proposer.name())
            .count() as u64;
        let next_number = history.last().map_or(0, |t| t.number + 1);
        let queued = history
            .iter()
            .filter(|t| t.state == TrialState::Queued)
            .count();
        let generation = replayed
            .campaigns
            .get(&name)
            .map(|c| c.generations.clone())
            .filter(|g| spec.spec.generations.is_some() && g.current > 0);
        let campaign = Campaign {
            store,
            run,
            scheduler,
            state: Mutex::new(State {
                proposer,
                history,
                proposals,
                queue_checked: None,
                history_read: None,
                history_cost: std::time::Duration::ZERO,
                shared: false,
                next_number,
                queued,
                tripwires: Gov::tripwires(&spec),
                halt,
                spec_changed: false,
                asked: HashSet::new(),
                cpu_this_run: 0.0,
                generation: None,
                earlier: Counts::default(),
            }),
            spec,
            record,
            requeued,
            created,
            gov,
            filed,
            refused_before,
            opened: std::time::Instant::now(),
            used,
            agent,
            code: std::sync::OnceLock::new(),
            guards_restored,
            lease,
            parallelism: parallelism.unwrap_or(parallelism_in_spec),
            _lock: lock,
        };
        if let Some(g) = generation {
            let mut state = campaign.state.lock().await;
            let gen_ = campaign.gen_of(&g, &state.history)?;
            campaign.enter(&mut state, gen_)?;
        }
        Ok(campaign)
    }

    /// For a joined worker, at each heartbeat: renews its lease, re-queues the
    /// trials of runs whose lease ran out, and takes the ledger's halt (a
    /// tripwire request another worker filed) so that no new trial starts here
    /// either, and notices a new spec in effect (an approved request), after
    /// which `ask` answers [`RunnerError::SpecChanged`]. Returns the trials it
    /// re-queued.
    pub async fn keep_lease(&self) -> Result<Vec<Requeued>, RunnerError> {
        self.store.heartbeat(self.run).await?;
        let requeued = self
            .store
            .requeue_expired(self.name(), LEASE_EXPIRED)
            .await?;
        kill_left_behind(&requeued);
        if self.lease.is_some() {
            let replayed = governance::verify_ledger(&self.store).await?;
            let requests = self.store.requests(Some(self.name())).await?;
            let changed = replayed
                .campaigns
                .get(self.name())
                .is_some_and(|c| c.spec != self.record.spec);
            let mut state = self.state.lock().await;
            if let Some(halt) = halt_of(&replayed, self.name(), requests) {
                state.halt.get_or_insert(halt);
            }
            state.spec_changed |= changed;
        }
        Ok(requeued)
    }

    /// A joined worker's history, read again from the store.
    async fn read_history(&self, state: &mut State) -> Result<(), RunnerError> {
        let began = std::time::Instant::now();
        let history = self.store.trials(self.name()).await?;
        state.queued = history
            .iter()
            .filter(|t| t.state == TrialState::Queued)
            .count();
        state.next_number = history.last().map_or(0, |t| t.number + 1);
        state.history = history;
        state.history_read = Some(std::time::Instant::now());
        state.history_cost = began.elapsed();
        Ok(())
    }

    /// How many trials this process runs at once.
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    /// The lease of a joined worker (`None` for a `run`, which holds the lock).
    pub fn lease(&self) -> Option<std::time::Duration> {
        self.lease
    }

    /// The limit every start is checked against in the store: `n_trials`
    /// started trials (with `[generations]`, each generation's budget is kept
    /// by the run itself).
    fn slots(&self) -> Option<u64> {
        self.spec
            .spec
            .generations
            .is_none()
            .then_some(self.spec.spec.search.n_trials)
    }

    /// The requests this open filed for edits of governed settings, each with
    /// `true` when an identical pending request was reused.
    pub fn filed(&self) -> &[(Request, bool)] {
        &self.filed
    }

    /// CPU seconds (trials, re-evaluations, test refits) and wall seconds (runs)
    /// that the verified ledger records before this run: what `[constraints]`
    /// limits are computed from.
    pub fn used_before(&self) -> (f64, f64) {
        self.used
    }

    /// True when the ledger's append-only guards were missing and this open
    /// put them back.
    pub fn guards_restored(&self) -> bool {
        self.guards_restored
    }

    /// Files a tripwire request by this campaign's actor, asking to go on, when
    /// the campaign is halted by a tripwire request that was rejected or expired;
    /// `None` when it is not halted that way.
    pub async fn ask_to_resume(&self) -> Result<Option<Request>, RunnerError> {
        let Some(halt) = self.halted().await else {
            return Ok(None);
        };
        let closed = self
            .store
            .requests(Some(self.name()))
            .await?
            .into_iter()
            .any(|r| r.body.id == halt.request && r.state != RequestState::Pending);
        if !closed {
            return Ok(None);
        }
        let reason = format!(
            "{} asks to go on after tripwire request {} was closed: {}",
            self.gov.actor, halt.request, halt.reason
        );
        let filed = governance::ask_to_resume(&self.store, &self.record, &self.gov, reason).await?;
        self.state.lock().await.halt = Some(Halt {
            request: filed.body.id.clone(),
            reason: filed.body.reason.clone(),
        });
        Ok(Some(filed))
    }

    /// Edits of the spec file identical to a request that was rejected or
    /// expired: not filed again by this open.
    pub fn refused_before(&self) -> &[Request] {
        &self.refused_before
    }

    /// Why the campaign takes no new trials, if it does not.
    pub async fn halted(&self) -> Option<Halt> {
        self.state.lock().await.halt.clone()
    }

    /// The spec the campaign runs.
    pub fn spec(&self) -> &CampaignSpec {
        &self.spec
    }

    /// The campaign's name.
    pub fn name(&self) -> &str {
        self.spec.name()
    }

    /// This run's id.
    pub fn run_id(&self) -> u64 {
        self.run
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// True when this open created the campaign.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Trials a dead run left running, re-queued by this open.
    pub fn requeued(&self) -> &[Requeued] {
        &self.requeued
    }

    /// The per-trial seed handed to the trial's program (`FIREBREAK_SEED`).
    pub fn trial_seed(&self, number: u64) -> u64 {
        derive_seed(self.spec.spec.campaign.seed, &[TRIAL_SEED_STREAM, number]) % (1 << 31)
    }

    /// The policy's decision on `action` with its context: the one place every
    /// proposal and start of this campaign is authorised. A deny is recorded in
    /// the ledger and returned as an error naming the deciding policies.
    async fn authorize(
        &self,
        who: &Principal,
        action: Action,
        context: serde_json::Value,
        subject: Option<serde_json::Value>,
    ) -> Result<firebreak_ledger::Authorization, RunnerError> {
        match self.gov.require(who, action, context) {
            Ok(allowed) => Ok(allowed),
            Err((decision, error)) => {
                governance::deny(
                    &self.store,
                    self.name(),
                    action.id(),
                    who,
                    error.to_string(),
                    Some(decision),
                    subject,
                )
                .await?;
                Err(error.into())
            }
        }
    }

    /// The seed of a trial's independent re-evaluation (never its own seed).
    pub fn reeval_seed(&self, number: u64) -> u64 {
        derive_seed(self.spec.spec.campaign.seed, &[REEVAL_SEED_STREAM, number]) % (1 << 31)
    }

    /// The seed of an evaluation of trial `number`: its own, its `reeval`
    /// tripwire's, or a generation gate's `k`-th fresh seed.
    pub fn attempt_seed(&self, number: u64, attempt: crate::command::Attempt) -> u64 {
        use crate::command::Attempt;
        match attempt {
            Attempt::Trial => self.trial_seed(number),
            Attempt::Reeval => self.reeval_seed(number),
            Attempt::Gate(k) => {
                derive_seed(
                    self.spec.spec.campaign.seed,
                    &[GATE_SEED_STREAM, number, u64::from(k)],
                ) % (1 << 31)
            }
        }
    }

    /// True when the campaign has `reeval` tripwires, is not halted, and trial
    /// `number` just became the champion (strictly better than every other
    /// complete trial on the first objective): it must be re-evaluated.
    pub async fn reeval_due(&self, number: u64) -> bool {
        let state = self.state.lock().await;
        if state.halt.is_some() || state.tripwires.reevals().is_empty() {
            return false;
        }
        let metric = &self.spec.objectives.metrics[0];
        let direction = self.spec.objectives.directions[0];
        let value = |t: &Trial| {
            (t.state == TrialState::Complete)
                .then(|| t.metrics.get(metric).copied())
                .flatten()
        };
        let Some(mine) = state
            .history
            .iter()
            .find(|t| t.number == number)
            .and_then(value)
        else {
            return false;
        };
        state
            .history
            .iter()
            .filter(|t| t.number != number)
            .filter_map(value)
            .all(|other| direction.better(mine, other))
    }

    /// Records an independent re-evaluation of trial `number` and checks the
    /// `reeval` tripwires: a reported metric that disagrees beyond the tolerance
    /// (or a re-evaluation that fails) trips and halts the campaign.
    pub async fn reevaluated(&self, number: u64, again: Outcome) -> Result<(), RunnerError> {
        let event = firebreak_ledger::Event::TrialReevaluated {
            number,
            seed: self.reeval_seed(number),
            metrics: again.metrics.clone(),
            error: again.error.clone(),
            cpu_seconds: again.cpu_seconds.filter(|s| s.is_finite()),
        };
        self.store.record_note(self.name(), &event).await?;
        let mut state = self.state.lock().await;
        let Some(trial) = state.history.iter().find(|t| t.number == number).cloned() else {
            return Ok(());
        };
        for (index, metric, tolerance) in state.tripwires.reevals() {
            let Some(reported) = trial.metrics.get(&metric).copied() else {
                continue;
            };
            let trip = match again.metrics.get(&metric) {
                Some(value) => {
                    Tripwires::reeval_disagrees(index, &metric, tolerance, number, reported, *value)
                }
                None => Some(firebreak_govern::Trip {
                    index,
                    reason: format!(
                        "tripwire {index} (reeval: trial {number} reported {metric} = {reported}, but its re-evaluation gave none: {})",
                        again.error.as_deref().unwrap_or("no result")
                    ),
                }),
            };
            if let Some(trip) = trip {
                state.halt =
                    Some(governance::file_trip(&self.store, &self.record, &self.gov, trip).await?);
                break;
            }
        }
        Ok(())
    }

    /// Starts the next trial on `worker`: the first queued one (people's
    /// configurations, retries, re-queued trials), else a new proposal. Every
    /// proposal is checked against the space and authorised by the policy
    /// (`propose_trial` by the proposer as an agent), every start too
    /// (`start_trial` by the worker); refusals are recorded in the ledger.
    pub async fn ask(&self, worker: u32) -> Result<Trial, RunnerError> {
        let mut trial = self.ask_next(worker).await?;
        if trial.generation.is_none() {
            trial.generation = self.generation().await;
        }
        Ok(trial)
    }

    async fn ask_next(&self, worker: u32) -> Result<Trial, RunnerError> {
        let name = self.name();
        let worker_principal = Principal::Worker {
            run: self.run,
            slot: worker,
        };
        let start = Start {
            run: self.run,
            worker,
            policy: Some(
                self.authorize(&worker_principal, Action::StartTrial, json!({}), None)
                    .await?,
            ),
            slots: self.slots(),
        };
        let mut state = self.state.lock().await;
        let every = QUEUE_POLL.max(state.history_cost * HISTORY_READ_SHARE);
        if (self.lease.is_some() || state.shared)
            && state.history_read.is_none_or(|at| at.elapsed() >= every)
        {
            // Other processes start and finish trials too: propose from the
            // store's history (read again at most every QUEUE_POLL, or ten
            // times as long as a read takes; this process's own trials enter
            // it as they change).
            self.read_history(&mut state).await?;
        }
        if let Some(halt) = &state.halt {
            return Err(RunnerError::Halted {
                request: halt.request.clone(),
                reason: halt.reason.clone(),
            });
        }
        if state.spec_changed {
            return Err(RunnerError::SpecChanged(name.to_string()));
        }
        // Trials queued here (retries, re-queued ones) are known; those queued by
        // other processes (`enqueue`) are looked for at most every QUEUE_POLL.
        let known = state.queued > 0;
        let stale = state
            .queue_checked
            .is_none_or(|at| at.elapsed() >= QUEUE_POLL);
        if known || stale {
            state.queue_checked = Some(std::time::Instant::now());
            if (known || self.store.has_queued(name).await?)
                && let Some(trial) = self.store.claim_queued(name, &start).await?
            {
                state.upsert(trial.clone());
                return Ok(trial);
            }
        }
        if let Some(agent) = self.agent.as_ref().filter(|a| !a.fallen_back()) {
            drop(state);
            if let Some(trial) = self.ask_agent(agent, &start).await? {
                return Ok(trial);
            }
            state = self.state.lock().await;
        }
        let mut invalid = 0u32;
        let (proposal, proposer_name) = loop {
            // A joined worker's streams are its own: two workers with the same
            // count of proposals must not draw the same one.
            let mut rng = Rng::new(match self.lease {
                None => derive_seed(
                    self.spec.spec.campaign.seed,
                    &[PROPOSAL_STREAM, state.proposals],
                ),
                Some(_) => derive_seed(
                    self.spec.spec.campaign.seed,
                    &[PROPOSAL_STREAM, state.proposals, self.run],
                ),
            });
            state.proposals += 1;
            let State {
                proposer,
                history,
                generation,
                ..
            } = &mut *state;
            let view = History {
                trials: history,
                objectives: &self.spec.objectives,
            };
            let space = generation.as_ref().map_or(&self.spec.space, |g| &g.space);
            let proposal = propose(proposer.as_mut(), space, &view, &mut rng);
            let proposer_name = proposer.name().to_string();
            let Err(error) = space.validate(&proposal.params) else {
                break (proposal, proposer_name);
            };
            // Never clipped or repaired: refused, recorded, and asked again.
            invalid += 1;
            let agent = Principal::Agent {
                name: proposer_name.clone(),
            };
            let reason = format!("out of the campaign's space: {error}");
            governance::deny(
                &self.store,
                name,
                Action::ProposeTrial.id(),
                &agent,
                reason.clone(),
                None,
                serde_json::to_value(&proposal.params).ok(),
            )
            .await?;
            if invalid >= MAX_INVALID_PROPOSALS {
                return Err(RunnerError::Proposer {
                    proposer: proposer_name,
                    count: invalid,
                    last: reason,
                });
            }
        };
        self.propose_and_start(state, proposal, proposer_name, &start)
            .await
    }

    /// Asks the agent until it gives a valid proposal, which is authorised and
    /// started as `start` says; `None` when the fallback proposes from now on.
    async fn ask_agent(
        &self,
        agent: &crate::agent::Agent,
        start: &Start,
    ) -> Result<Option<Trial>, RunnerError> {
        let name = self.name();
        let mut whole_files_only = false;
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            agent.check_budget(self.spec.spec.constraints.max_llm_tokens)?;
            let (history, seed, space) = {
                let state = self.state.lock().await;
                if let Some(halt) = &state.halt {
                    return Err(RunnerError::Halted {
                        request: halt.request.clone(),
                        reason: halt.reason.clone(),
                    });
                }
                // A request asked again after a refusal gets another seed, so a
                // server that honours seeds does not repeat its answer.
                let seed = derive_seed(
                    self.spec.spec.campaign.seed,
                    &[AGENT_STREAM, state.next_number, attempt],
                );
                (state.history.clone(), seed, state.space(&self.spec).clone())
            };
            let (event, texts, answer) = match self.code.get() {
                None => {
                    let request = firebreak_agent::config_request(
                        agent.options(),
                        &space,
                        &self.spec.objectives,
                        &history,
                        seed,
                    );
                    let exchange = agent.exchange(request).await?;
                    let parsed = exchange.content.as_deref().map(|content| {
                        firebreak_agent::parse_config_answer(content, &space).map(|answer| {
                            crate::agent::Candidate {
                                params: answer.params,
                                rationale: answer.rationale,
                                asks: answer.asks,
                                ..Default::default()
                            }
                        })
                    });
                    agent.judge(&exchange, parsed)
                }
                Some(code) => {
                    let (context, parent, fixes) =
                        self.code_context(code, &history, whole_files_only).await?;
                    let request = firebreak_agent::code_request(&code.editable, &context, seed);
                    let exchange = agent.exchange(request).await?;
                    let mut diff_failed = false;
                    let parsed = exchange.content.as_deref().map(|content| {
                        firebreak_agent::parse_code_answer(content, &code.editable, &context.files)
                            .map(|answer| {
                                let mut extra = serde_json::Map::new();
                                extra.insert("parent".into(), json!(parent));
                                extra.insert("fixes".into(), json!(fixes));
                                crate::agent::Candidate {
                                    params: Default::default(),
                                    rationale: answer.rationale,
                                    files: answer.files,
                                    extra,
                                    asks: answer.asks,
                                }
                            })
                            .map_err(|refusal| {
                                diff_failed = refusal.diff_failed;
                                refusal.reason
                            })
                    });
                    // A diff that does not apply is asked again as whole files.
                    whole_files_only = diff_failed;
                    agent.judge(&exchange, parsed)
                }
            };
            self.store
                .record_agent_exchange(name, &event, &texts)
                .await?;
            match answer {
                crate::agent::Answer::Proposal {
                    params,
                    rationale,
                    state,
                    asks,
                } => {
                    self.file_agent_asks(asks).await?;
                    let proposal = Proposal {
                        params,
                        rationale,
                        state: Some(state),
                    };
                    let state = self.state.lock().await;
                    let trial = self
                        .propose_and_start(state, proposal, crate::agent::AGENT.to_string(), start)
                        .await?;
                    return Ok(Some(trial));
                }
                crate::agent::Answer::Refused => {
                    if agent.fall_back() {
                        let principal = Principal::Agent {
                            name: crate::agent::AGENT.to_string(),
                        };
                        let reason = format!(
                            "{} invalid or failed answers in a row: the fallback proposer {} \
                             proposes for the rest of this run",
                            agent.options().max_invalid,
                            agent.options().fallback
                        );
                        governance::deny(
                            &self.store,
                            name,
                            Action::ProposeTrial.id(),
                            &principal,
                            reason,
                            None,
                            None,
                        )
                        .await?;
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// What a code proposal shows the agent: a failed candidate to fix (while
    /// its chain of fixes is shorter than `debug_rounds`), else the best
    /// complete candidate (or the workspace's program) to improve; with the
    /// parent's and the fixed trial's numbers.
    async fn code_context(
        &self,
        code: &crate::code::CodeTask,
        history: &[Trial],
        whole_files_only: bool,
    ) -> Result<(firebreak_agent::CodeContext, Option<u64>, Option<u64>), RunnerError> {
        let link = |t: &Trial, key: &str| {
            t.proposer_state
                .as_ref()
                .and_then(|s| s["agent"][key].as_u64())
        };
        let depth = |mut number: u64| {
            let mut depth = 0;
            while let Some(next) = history
                .iter()
                .find(|t| t.number == number)
                .and_then(|t| link(t, "fixes"))
            {
                depth += 1;
                number = next;
            }
            depth
        };
        let rounds = self.agent.as_ref().map_or(0, |a| a.options().debug_rounds);
        let to_fix = history.iter().rev().find(|t| {
            t.state == TrialState::Failed
                && t.proposer == crate::agent::AGENT
                && depth(t.number) < rounds
                && !history.iter().any(|u| link(u, "fixes") == Some(t.number))
        });
        let metric = |t: &Trial| t.metrics.get("val_accuracy").copied();
        let best = history
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t, metric(t)?)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.number.cmp(&a.0.number)))
            .map(|(t, _)| t);
        let (parent_trial, failure) = match to_fix {
            Some(t) => {
                let log = self
                    .store
                    .log(self.name(), t.number)
                    .await?
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                let failure = format!(
                    "{}\nlast lines of its log:\n{}",
                    t.error.as_deref().unwrap_or("failed"),
                    tail.join("\n")
                );
                (Some(t), Some(failure))
            }
            None => (best, None),
        };
        let (files, parent) = match parent_trial {
            Some(t) => match code.files_of(&self.store, t).await? {
                Ok(files) => {
                    let summary = match metric(t) {
                        Some(v) => format!("trial {} (val_accuracy {v:.4})", t.number),
                        None => format!("trial {}", t.number),
                    };
                    (files, summary)
                }
                Err(_) => (
                    code.original_files()?,
                    "the workspace's program".to_string(),
                ),
            },
            None => (
                code.original_files()?,
                "the workspace's program (not scored yet)".to_string(),
            ),
        };
        let lines = history
            .iter()
            .filter(|t| t.state.is_finished())
            .rev()
            .take(10)
            .map(|t| match (t.state, metric(t)) {
                (TrialState::Complete, Some(v)) => format!("#{} val_accuracy {v:.4}", t.number),
                (state, _) => {
                    let why: String = t.error.as_deref().unwrap_or("").chars().take(150).collect();
                    format!("#{} {}: {why}", t.number, state.as_str())
                }
            })
            .collect();
        let context = firebreak_agent::CodeContext {
            files,
            parent,
            failure,
            history: lines,
            task: code.description.clone(),
            whole_files_only,
        };
        let fixes = to_fix.map(|t| t.number);
        Ok((context, parent_trial.map(|t| t.number), fixes))
    }

    /// Files each of an agent's asks as a change request (or records why not):
    /// with `ask_changes` off, or for a setting outside governance, the ask is
    /// refused; an ask already filed in this run is not filed again.
    async fn file_agent_asks(&self, asks: Vec<firebreak_agent::Ask>) -> Result<(), RunnerError> {
        for ask in asks {
            let change = firebreak_search::ChangeAsk::Setting {
                path: ask.path,
                value: ask.value,
                why: ask.why,
            };
            if !self.spec.spec.search.ask_changes {
                let agent = Principal::Agent {
                    name: crate::agent::AGENT.to_string(),
                };
                let reason = format!(
                    "[search] ask_changes is off, so the agent's ask is not filed: {change:?}"
                );
                governance::deny(
                    &self.store,
                    self.name(),
                    "request_change",
                    &agent,
                    reason,
                    None,
                    None,
                )
                .await?;
                continue;
            }
            let key = format!("{change:?}");
            if !self.state.lock().await.asked.insert(key) {
                continue;
            }
            governance::file_ask(
                &self.store,
                &self.record,
                &self.gov,
                crate::agent::AGENT,
                &change,
            )
            .await?;
        }
        Ok(())
    }

    /// Attaches the engine side of a code task (the run does, from its
    /// executor): code proposals need the workspace and the editable files.
    pub fn attach_code(&self, code: Arc<crate::code::CodeTask>) {
        let _ = self.code.set(code);
    }

    /// Authorises `proposal` as its proposer's agent principal, gives it the
    /// next number and starts it as `start` says. Called holding the state lock that
    /// made the proposal, so numbers follow proposal order.
    async fn propose_and_start(
        &self,
        mut state: tokio::sync::MutexGuard<'_, State>,
        proposal: Proposal,
        proposer_name: String,
        start: &Start,
    ) -> Result<Trial, RunnerError> {
        let name = self.name();
        let agent = Principal::Agent {
            name: proposer_name.clone(),
        };
        let subject = serde_json::to_value(&proposal.params).ok();
        let context = governance::proposal_context(&proposer_name, &proposal.params);
        let allowed = self
            .authorize(&agent, Action::ProposeTrial, context, subject)
            .await?;
        let mut new = NewTrial {
            params: proposal.params,
            proposer: proposer_name,
            rationale: proposal.rationale,
            retry_of: None,
            priority: 0,
            number: None,
            policy: Some(allowed),
            exploit: None,
            state: proposal.state,
        };
        // The number is taken and the trial enters the history before the commit,
        // so concurrent proposals see it and numbers follow proposal order; the
        // commit happens outside the lock so that concurrent workers' starts and
        // finishes share one transaction (the store's group commit).
        let number = state.reserve(&new);
        drop(state);
        // A joined worker's history lags the other processes', so the number it
        // reserved is often taken: the store gives it the next free one instead.
        // A run keeps proposal order, which it alone decides, until another
        // process takes one of its numbers.
        let mut pinned = self.lease.is_none();
        loop {
            new.number = pinned.then_some(number);
            match self.store.propose_and_start(name, &new, start).await {
                Ok(trial) => {
                    let mut state = self.state.lock().await;
                    if trial.number != number {
                        // Drop the placeholder, unless a history read replaced it.
                        state
                            .history
                            .retain(|t| t.number != number || t.started_at.is_some());
                    }
                    state.upsert(trial.clone());
                    return Ok(trial);
                }
                Err(StoreError::NumberTaken(_)) if pinned => {
                    // Another process took this number: the store numbers this
                    // proposal, and the run reads the history from now on.
                    self.state.lock().await.shared = true;
                    pinned = false;
                }
                Err(e) => {
                    self.state
                        .lock()
                        .await
                        .history
                        .retain(|t| t.number != number);
                    return Err(e.into());
                }
            }
        }
    }

    /// Records an intermediate report of a running trial and asks the scheduler
    /// whether it continues.
    pub async fn report(&self, number: u64, report: Report) -> Result<Decision, RunnerError> {
        if !self
            .store
            .report(self.name(), number, self.run, &report)
            .await?
        {
            // Its lease was taken (or it finished): stop it; its finish is refused.
            return Ok(Decision::Stop {
                reason: format!("run {} no longer holds trial {number}", self.run),
            });
        }
        let mut state = self.state.lock().await;
        let step = report.step;
        let trial = state
            .get_mut(number)
            .ok_or(RunnerError::NotRunning(number))?;
        trial.intermediate.retain(|r| r.step != step);
        trial.intermediate.push(report);
        trial.intermediate.sort_by_key(|r| r.step);
        let trial = trial.clone();
        let view = History {
            trials: &state.history,
            objectives: &self.spec.objectives,
        };
        Ok(self.scheduler.decide(&trial, step, &view))
    }

    /// Resumes, on `worker`, a paused trial the scheduler promotes now (ASHA with
    /// `pause = true`), from its own checkpoint; `None` when there is none or the
    /// campaign is halted.
    pub async fn resume_promoted(&self, worker: u32) -> Result<Option<Trial>, RunnerError> {
        let worker_principal = Principal::Worker {
            run: self.run,
            slot: worker,
        };
        self.authorize(&worker_principal, Action::StartTrial, json!({}), None)
            .await?;
        let mut state = self.state.lock().await;
        if state.halt.is_some() {
            return Ok(None);
        }
        let view = History {
            trials: &state.history,
            objectives: &self.spec.objectives,
        };
        let Some(number) = self.scheduler.promote(&view) else {
            return Ok(None);
        };
        let reason = format!(
            "{}: promoted from the top of its rung; resumes from its checkpoint",
            self.scheduler.name()
        );
        let resumed = self
            .store
            .resume_paused(self.name(), number, self.run, worker, &reason)
            .await?;
        if let Some(trial) = &resumed {
            state.upsert(trial.clone());
        }
        Ok(resumed)
    }

    /// PBT's exploit: queues a new trial with `params` that replaces trial
    /// `stopped` and starts from trial `from`'s checkpoint, which whoever starts
    /// it copies then (its proposer state names the donor:
    /// `{"v": 1, "pbt": {"exploit_from": from}}`).
    /// Like every proposal it is checked against the space and authorised
    /// (`agent:pbt`). Returns the new number, or `None` when the budget has no
    /// room for it.
    pub async fn exploit(
        &self,
        stopped: u64,
        from: u64,
        params: firebreak_core::Params,
        reason: &str,
    ) -> Result<Option<u64>, RunnerError> {
        let agent = Principal::Agent {
            name: PBT.to_string(),
        };
        if let Err(error) = self.spec.space.validate(&params) {
            let reason = format!("out of the campaign's space: {error}");
            let subject = serde_json::to_value(&params).ok();
            governance::deny(
                &self.store,
                self.name(),
                Action::ProposeTrial.id(),
                &agent,
                reason,
                None,
                subject,
            )
            .await?;
            return Ok(None);
        }
        let subject = serde_json::to_value(&params).ok();
        let context = governance::proposal_context(PBT, &params);
        let allowed = self
            .authorize(&agent, Action::ProposeTrial, context, subject)
            .await?;
        let mut state = self.state.lock().await;
        let counts = counts_of(&state.history);
        // The stopped trial is still counted as running; it is about to finish.
        if counts.finished() + counts.running + counts.queued >= self.spec.spec.search.n_trials {
            return Ok(None);
        }
        let new = NewTrial {
            params,
            proposer: PBT.to_string(),
            rationale: reason.to_string(),
            retry_of: None,
            priority: 2,
            // A run numbers in proposal order; the store numbers a joined worker's.
            number: self.lease.is_none().then_some(state.next_number),
            policy: Some(allowed),
            exploit: Some(firebreak_ledger::Exploit {
                from,
                replaces: stopped,
            }),
            state: Some(json!({ "v": 1, PBT: { "exploit_from": from } })),
        };
        let number = self.store.enqueue(self.name(), &new).await?;
        state.upsert(Trial::queued(
            number,
            new.params,
            &new.proposer,
            &new.rationale,
        ));
        Ok(Some(number))
    }

    /// Finishes a running trial. A failed trial with retries left is queued again
    /// (new number, same params, linked). Returns false when the trial was not
    /// running (a finished trial never changes).
    pub async fn tell(&self, number: u64, outcome: Outcome) -> Result<bool, RunnerError> {
        let name = self.name();
        if !self.store.finish(name, number, self.run, &outcome).await? {
            if self.lease.is_some() {
                // A late result from a holder whose lease was taken: refused, and
                // the ledger says so.
                let worker = Principal::Worker {
                    run: self.run,
                    slot: 0,
                };
                let reason = format!(
                    "run {} no longer holds trial {number} (its lease ran out and the \
                     trial was re-queued); its {} result is discarded",
                    self.run, outcome.state
                );
                governance::deny(
                    &self.store,
                    name,
                    "finish_trial",
                    &worker,
                    reason,
                    None,
                    None,
                )
                .await?;
            }
            return Ok(false);
        }
        let mut state = self.state.lock().await;
        let Some(trial) = state.get_mut(number) else {
            return Ok(true);
        };
        trial.state = outcome.state;
        trial.metrics = outcome.metrics.clone();
        trial.error = outcome.error.clone();
        trial.cpu_seconds = outcome.cpu_seconds;
        trial.wall_seconds = outcome.wall_seconds;
        let trial = trial.clone();
        let State {
            proposer, history, ..
        } = &mut *state;
        proposer.after_trial(
            &History {
                trials: history,
                objectives: &self.spec.objectives,
            },
            &trial,
        );
        if outcome.state == TrialState::Failed {
            self.maybe_retry(&mut state, &trial).await?;
        }
        self.watch(&mut state, &trial).await?;
        Ok(true)
    }

    /// After a finished trial: checks the tripwires (a trip halts new trials and
    /// files a request) and, with `ask_changes`, turns the proposer's asks into
    /// change requests.
    async fn watch(&self, state: &mut State, trial: &Trial) -> Result<(), RunnerError> {
        state.cpu_this_run += trial.cpu_seconds.unwrap_or(0.0);
        let wall = self.opened.elapsed().as_secs_f64();
        let cpu = state.cpu_this_run;
        let State {
            tripwires,
            history,
            halt,
            ..
        } = &mut *state;
        // A code candidate's printed metric (`claimed_M`) against the engine's
        // score `M`: a disagreement beyond a `reeval` tolerance trips it.
        let claimed = tripwires
            .reevals()
            .into_iter()
            .find_map(|(index, metric, tolerance)| {
                let claimed = *trial.metrics.get(&format!("claimed_{metric}"))?;
                let scored = *trial.metrics.get(&metric)?;
                Tripwires::reeval_disagrees(
                    index,
                    &metric,
                    tolerance,
                    trial.number,
                    claimed,
                    scored,
                )
                .map(|mut trip| {
                    trip.reason = trip.reason.replace(
                        "a fresh re-evaluation gave",
                        "in its own output, and the engine's score of its predictions is",
                    );
                    trip
                })
            });
        if halt.is_none()
            && let Some(trip) = claimed.or_else(|| tripwires.check(history, trial, cpu, wall))
        {
            *halt = Some(governance::file_trip(&self.store, &self.record, &self.gov, trip).await?);
        }
        if !self.spec.spec.search.ask_changes {
            return Ok(());
        }
        let State {
            proposer,
            history,
            asked,
            ..
        } = &mut *state;
        let view = History {
            trials: history,
            objectives: &self.spec.objectives,
        };
        let asks = proposer.asks(&self.spec.space, &view, self.spec.spec.search.n_trials);
        let proposer_name = proposer.name().to_string();
        for ask in asks {
            let key = format!("{ask:?}");
            if !asked.insert(key) {
                continue;
            }
            governance::file_ask(&self.store, &self.record, &self.gov, &proposer_name, &ask)
                .await?;
        }
        Ok(())
    }

    async fn maybe_retry(&self, state: &mut State, trial: &Trial) -> Result<(), RunnerError> {
        let retries = u64::from(self.spec.spec.search.retries);
        let mut attempt = 1;
        let mut origin = trial.number;
        let mut link = trial.retry_of;
        while let Some(previous) = link {
            attempt += 1;
            origin = previous;
            link = state
                .history
                .iter()
                .find(|t| t.number == previous)
                .and_then(|t| t.retry_of);
        }
        let counts = counts_of(&state.history);
        let open = counts.finished() + counts.running + counts.queued;
        if attempt > retries || open >= self.spec.spec.search.n_trials {
            return Ok(());
        }
        let agent = Principal::Agent {
            name: RETRY.to_string(),
        };
        let context = governance::proposal_context(RETRY, &trial.params);
        let subject = serde_json::to_value(&trial.params).ok();
        let allowed = self
            .authorize(&agent, Action::ProposeTrial, context, subject)
            .await?;
        let new = NewTrial {
            params: trial.params.clone(),
            proposer: RETRY.to_string(),
            rationale: format!(
                "retry {attempt} of {retries} for trial {origin}: {}",
                trial.error.as_deref().unwrap_or("failed")
            ),
            retry_of: Some(trial.number),
            priority: 1,
            number: None,
            policy: Some(allowed),
            exploit: None,
            state: None,
        };
        let number = self.store.enqueue(self.name(), &new).await?;
        let mut queued = Trial::queued(number, new.params, &new.proposer, &new.rationale);
        queued.retry_of = new.retry_of;
        state.upsert(queued);
        Ok(())
    }

    /// Trial counts by state, as this process knows them.
    pub async fn counts(&self) -> Counts {
        let state = self.state.lock().await;
        let now = counts_of(&state.history);
        let before = &state.earlier;
        Counts {
            queued: now.queued + before.queued,
            running: now.running + before.running,
            complete: now.complete + before.complete,
            pruned: now.pruned + before.pruned,
            failed: now.failed + before.failed,
        }
    }

    /// A copy of every trial this process knows of (with `[generations]`: of
    /// the current generation, and those not started yet).
    pub async fn trials(&self) -> Vec<Trial> {
        self.state.lock().await.history.clone()
    }

    /// Re-queues the trials this run still has running (after an interruption);
    /// other runs' trials stay theirs.
    pub async fn requeue_own(&self, reason: &str) -> Result<Vec<Requeued>, RunnerError> {
        let requeued = self
            .store
            .requeue_run(self.name(), self.run, reason)
            .await?;
        let mut state = self.state.lock().await;
        for r in &requeued {
            if let Some(mut t) = state.get_mut(r.number).cloned() {
                t.state = TrialState::Queued;
                state.upsert(t);
            }
        }
        Ok(requeued)
    }

    /// Records the end of this run. The campaign's lock is released when the
    /// `Campaign` is dropped.
    pub async fn close(&self, reason: &str) -> Result<(), RunnerError> {
        self.store.end_run(self.name(), self.run, reason).await?;
        Ok(())
    }
}

/// Counts by state of a list of trials.
pub fn counts_of(trials: &[Trial]) -> Counts {
    let mut counts = Counts::default();
    for t in trials {
        match t.state {
            TrialState::Queued => counts.queued += 1,
            TrialState::Running => counts.running += 1,
            TrialState::Complete => counts.complete += 1,
            TrialState::Pruned => counts.pruned += 1,
            TrialState::Failed => counts.failed += 1,
        }
    }
    counts
}

/// Kills, on this host, what the processes of re-queued trials left behind.
fn kill_left_behind(requeued: &[Requeued]) {
    let host_name = host::host_name();
    for trial in requeued {
        if let Some(process) = trial.process.as_ref().filter(|p| p.host == host_name) {
            host::signal_group(process.pid, libc::SIGKILL);
        }
    }
}

fn lease_ms(lease: std::time::Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

/// The halt the ledger records for campaign `name`: a trip halts until a
/// tripwire request is approved; its rejection or expiry leaves the campaign
/// halted (the ledger decides, not a column).
fn halt_of(
    replayed: &firebreak_ledger::Replayed,
    name: &str,
    requests: Vec<Request>,
) -> Option<Halt> {
    let id = replayed.campaigns.get(name)?.halted_by.clone()?;
    let request = requests.into_iter().find(|r| r.body.id == id);
    let reason = match request {
        Some(r) if r.state == RequestState::Pending => r.body.reason,
        Some(r) => format!(
            "{} (request {id} is {}; the campaign stays halted until a tripwire request \
             is approved: `firebreak run SPEC --ask-to-resume` files one)",
            r.body.reason, r.state
        ),
        None => format!("tripwire request {id}"),
    };
    Some(Halt {
        request: id,
        reason,
    })
}

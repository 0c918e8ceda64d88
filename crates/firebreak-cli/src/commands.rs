//! One function per subcommand.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use firebreak_core::{Distribution, ParamValue, Params, Trial, TrialState, format_rfc3339};
use firebreak_ledger::{Checkpoint, Entry, Hash, Verdict, audit, hex, public_key_string};
use firebreak_runner::{Campaign, Executor, RunEvent, Stop};
use firebreak_spec::{CampaignSpec, EXAMPLE_SPEC};
use firebreak_store::{AnyStore, Store, StoreError};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::output::{number, param, print_rows, trial_json, trial_rows};
use crate::progress::Progress;
use crate::{
    AuditCommand, Cli, Command, CommandResult, Failure, Format, KeysCommand, StorageCommand,
};

/// How often a long `run` signs a checkpoint (it also signs one when it ends).
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> CommandResult {
    match &cli.command {
        Command::Init { path } => init(path),
        Command::Validate { spec } => validate(spec),
        Command::Run {
            spec,
            as_name,
            key,
            ask_to_resume,
            ask_again,
        } => {
            let who = (as_name.as_deref(), key.as_deref());
            run(&cli, spec, who, *ask_to_resume, *ask_again).await
        }
        Command::Worker {
            campaigns,
            slots,
            lease,
            idle_exit,
        } => {
            let store = open(&cli).await?;
            let args = crate::worker::WorkerArgs {
                campaigns: campaigns.clone(),
                slots: *slots,
                lease: *lease,
                idle_exit: *idle_exit,
                trials_root: trials_root_of(&store),
            };
            crate::worker::worker(&cli, store, args).await
        }
        Command::Launch(crate::LaunchCommand::Slurm {
            spec,
            workers,
            partition,
            time,
            sbatch_args,
            slots,
            lease,
        }) => {
            let job = crate::launch::SlurmJob {
                workers: *workers,
                partition: partition.clone(),
                time: time.clone(),
                extra: sbatch_args.clone(),
                worker_argv: Vec::new(),
                job_name: String::new(),
                log_dir: std::path::PathBuf::new(),
            };
            launch_slurm(&cli, spec, job, *slots, *lease).await
        }
        Command::Launch(crate::LaunchCommand::K8s {
            spec,
            workers,
            image,
            namespace,
            dry_run,
            lease,
        }) => {
            let job = crate::k8s::K8sJob {
                campaign: String::new(),
                workers: *workers,
                image: image.clone(),
                namespace: namespace.clone(),
                lease_secs: lease.as_secs(),
            };
            launch_k8s(&cli, spec, job, *dry_run).await
        }
        Command::Requests { campaign } => {
            crate::governance::requests(&cli, campaign.as_deref()).await
        }
        Command::Approve { decider } => {
            crate::governance::decide(&cli, decider, Verdict::Approve, "").await
        }
        Command::Reject { decider, reason } => {
            crate::governance::decide(&cli, decider, Verdict::Reject, reason).await
        }
        Command::Campaigns => campaigns(&cli).await,
        Command::Status { campaign } => status(&cli, campaign.as_deref()).await,
        Command::Trials {
            campaign,
            generation,
        } => trials(&cli, campaign, *generation).await,
        Command::Best {
            campaign,
            generation,
        } => best(&cli, campaign, *generation).await,
        Command::Lineage { campaign } => crate::lineage::lineage(&cli, campaign).await,
        Command::Logs { campaign, number } => logs(&cli, campaign, *number).await,
        Command::Enqueue { campaign, params } => enqueue(&cli, campaign, params).await,
        Command::Explain { campaign, number } => explain(&cli, campaign, *number).await,
        Command::Audit(AuditCommand::Verify { campaign, trusted }) => {
            verify(&cli, campaign.as_deref(), trusted.as_deref()).await
        }
        Command::Audit(AuditCommand::Checkpoint { out }) => checkpoint(&cli, out.as_deref()).await,
        Command::Audit(AuditCommand::Proof { seq }) => proof(&cli, *seq).await,
        Command::Audit(AuditCommand::Report { campaign }) => report(&cli, campaign).await,
        Command::Audit(AuditCommand::Export { campaign }) => {
            export(&cli, campaign.as_deref()).await
        }
        Command::Storage(StorageCommand::Upgrade) => upgrade(&cli).await,
        Command::Keys(KeysCommand::New { name, out }) => new_key(name, out),
    }
}

fn init(path: &Path) -> CommandResult {
    if path.exists() {
        return Err(Failure::new(
            2,
            anyhow!(
                "{} exists already\nhint: give another path, e.g. `firebreak init new.toml`",
                path.display()
            ),
        ));
    }
    std::fs::write(path, EXAMPLE_SPEC).with_context(|| format!("writing {}", path.display()))?;
    // The trial program the example's `command` names, beside the spec, so the
    // campaign runs as generated.
    let program = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join("train.py");
    let wrote_program = !program.exists();
    if wrote_program {
        std::fs::write(&program, EXAMPLE_TRAIN)
            .with_context(|| format!("writing {}", program.display()))?;
    }
    println!(
        "wrote {}{}; run it with `firebreak run {}`",
        path.display(),
        if wrote_program {
            format!(" and its trial program {}", program.display())
        } else {
            format!(" ({} exists already and was kept)", program.display())
        },
        path.display()
    );
    Ok(0)
}

/// The trial program of the example spec `init` writes: a plain-Python MLP on
/// a synthetic task, speaking the trial protocol.
const EXAMPLE_TRAIN: &str = include_str!("example_train.py");

fn load_spec(path: &Path) -> Result<CampaignSpec, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            2,
            anyhow!(
                "cannot read spec {}: {e}\nhint: `firebreak init {}` writes an example",
                path.display(),
                path.display()
            ),
        )
    })?;
    Ok(CampaignSpec::parse(&text, &path.display().to_string())?)
}

fn validate(path: &Path) -> CommandResult {
    let mut spec = load_spec(path)?;
    firebreak_runner::components(&spec)?;
    let spec_dir = path.parent().unwrap_or(Path::new("."));
    firebreak_runner::load_policy(&mut spec, spec_dir)?;
    firebreak_runner::authorizer(&spec)?;
    Executor::from_spec(&spec, spec_dir, "trials".into())?;
    println!(
        "{}: campaign {:?} is valid ({} parameters, {} trials, sampler {}, scheduler {})",
        path.display(),
        spec.name(),
        spec.space.parameters().len(),
        spec.spec.search.n_trials,
        spec.spec.search.sampler,
        spec.spec.search.scheduler
    );
    Ok(0)
}

/// Opens the database for a command that only reads: it must exist.
pub(crate) async fn open(cli: &Cli) -> Result<AnyStore, Failure> {
    Ok(AnyStore::open_existing(&cli.storage).await?)
}

pub(crate) async fn stored_spec(store: &AnyStore, campaign: &str) -> Result<CampaignSpec, Failure> {
    let record = store
        .campaign(campaign)
        .await?
        .ok_or_else(|| StoreError::NoCampaign(campaign.to_string()))?;
    Ok(CampaignSpec::from_canonical(&record.spec, campaign)?)
}

async fn run(
    cli: &Cli,
    path: &Path,
    (as_name, key): (Option<&str>, Option<&Path>),
    ask_to_resume: bool,
    ask_again: bool,
) -> CommandResult {
    let mut spec = load_spec(path)?;
    let store = AnyStore::open(&cli.storage).await?;
    let spec_dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    firebreak_runner::load_policy(&mut spec, &spec_dir)?;
    let trials_root = trials_root_of(&store);
    let campaign_dir = campaign_dir(&trials_root, spec.name())?;
    // People are checked against the approvers in effect (the file's for a new
    // campaign): an edited spec cannot list a new key and act with it at once.
    let approvers = match store.campaign(spec.name()).await? {
        Some(record) => {
            CampaignSpec::from_canonical(&record.spec, spec.name())?
                .spec
                .governance
                .approvers
        }
        None => spec.spec.governance.approvers.clone(),
    };
    let actor = crate::governance::actor(&approvers, as_name, key)?;
    let campaign = Arc::new(Campaign::open_asking(store.clone(), spec, actor, ask_again).await?);
    if campaign.guards_restored() {
        eprintln!(
            "warning: the ledger's append-only triggers were missing (dropped by someone with \
             write access to the database); restored"
        );
    }
    if ask_to_resume && let Some(request) = campaign.ask_to_resume().await? {
        eprintln!(
            "firebreak: tripwire request {} filed: {}\n  decide with `firebreak approve {} --key FILE`",
            request.body.id, request.body.reason, request.body.id
        );
    }
    remove_stale_folder(&campaign, &campaign_dir)?;
    // The spec in effect (as approved) decides what runs, not the edited file.
    let executor = Executor::from_spec(campaign.spec(), &spec_dir, trials_root)?;
    let n_trials = campaign.spec().spec.search.n_trials;
    let name = campaign.name().to_string();
    // Runs are numbered per campaign for people (the store's ids are global).
    let ordinal = store.runs(campaign.name()).await?.len();
    announce(cli, &campaign, ordinal);
    let objectives = campaign.spec().objectives.clone();
    let mut progress = Progress::new(
        n_trials,
        campaign.counts().await,
        &objectives.metrics[0],
        objectives.directions[0],
        cli.quiet,
    );
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<RunEvent>();
    let interrupt_rx = interrupt_on_signals();
    let runner = tokio::spawn(firebreak_runner::run(
        campaign.clone(),
        executor.clone(),
        events_tx,
        interrupt_rx,
    ));
    // A signed checkpoint every few minutes, so a long run leaves roots to publish.
    let checkpointer = {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                let _ = sign_checkpoint(&store).await;
            }
        })
    };
    while let Some(event) = events_rx.recv().await {
        progress.on(&event);
        // A signed checkpoint at every generation boundary.
        if let RunEvent::Generation {
            promoted: Some(_), ..
        } = event
            && let Err(e) = sign_checkpoint(&store).await
        {
            eprintln!("warning: no checkpoint was signed at the generation boundary: {e:#}");
        }
    }
    checkpointer.abort();
    progress.finish();
    let summary = runner
        .await
        .map_err(|e| anyhow!("the run panicked: {e}"))??;
    let reason = match &summary.stop {
        Stop::Done => "done".to_string(),
        Stop::Limit(reason) => format!("limit: {reason}"),
        Stop::Firebreak { requests, .. } => format!("firebreak: {}", requests.join(", ")),
        Stop::Interrupted { .. } => "interrupted".to_string(),
    };
    if !matches!(summary.stop, Stop::Interrupted { .. })
        && let Err(e) = firebreak_runner::test_champion(&campaign, &executor).await
    {
        eprintln!("warning: the champion could not be evaluated on the test split: {e}");
    }
    let campaign =
        Arc::into_inner(campaign).ok_or_else(|| anyhow!("the campaign is still in use"))?;
    let watts_per_core = campaign.spec().spec.constraints.watts_per_core;
    let campaign_generations = campaign.generations().is_some();
    campaign.close(&reason).await?;
    let trials = store.trials(&name).await?;
    let ledger = store.ledger().await?;
    let head = ledger.last().map(|e| hex(&e.hash)).unwrap_or_default();
    let c = summary.counts;
    println!(
        "campaign {name}: {} finished of {n_trials} ({} complete, {} pruned, {} failed); {} this run",
        c.finished(),
        c.complete,
        c.pruned,
        c.failed,
        summary.finished_this_run
    );
    let tests = store.tests(&name).await?;
    // With generations, the champion is the last promoted one.
    let generations = match campaign_generations {
        true => {
            let requests = store.requests(Some(&name)).await?;
            crate::lineage::generations(&ledger, &name, &requests, &trials)
        }
        false => Vec::new(),
    };
    let promoted = generations
        .iter()
        .rev()
        .find(|g| g["promoted"] == true)
        .and_then(|g| g["champion"].as_u64())
        .and_then(|n| trials.iter().find(|t| t.number == n));
    let champions = match promoted {
        Some(trial) => vec![trial],
        None => objectives.best(&trials),
    };
    for champion in champions {
        let metrics: Vec<String> = champion
            .metrics
            .iter()
            .chain(tests.get(&champion.number).into_iter().flatten())
            .map(|(k, v)| format!("{k}={}", number(*v)))
            .collect();
        let params: Vec<String> = champion
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", param(v)))
            .collect();
        println!(
            "champion: trial {} · {} · {}",
            champion.number,
            metrics.join(" "),
            params.join(" ")
        );
        if let Executor::Builtin(task) = &executor
            && let Ok(genome) = task.genome(&champion.params)
        {
            println!("architecture: {}", genome.describe());
        }
    }
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    let cpu: f64 = trials.iter().filter_map(|t| t.cpu_seconds).sum::<f64>() + 0.0;
    let refit: f64 = tests
        .values()
        .filter_map(|t| t.get("refit_cpu_seconds"))
        .sum();
    let refit_note = if refit > 0.0 {
        format!(" + {} refitting the champion", number(refit))
    } else {
        String::new()
    };
    println!(
        "compute: {} trial CPU seconds{refit_note}, about {:.5} kWh at {watts_per_core} W per core",
        number(cpu),
        (cpu + refit) * watts_per_core / 3.6e6
    );
    println!("ledger: {} entries, head {head}", ledger.len());
    match sign_checkpoint(&store).await {
        Ok(checkpoint) => println!(
            "checkpoint: tree size {}, root {}, signed by {}",
            checkpoint.tree_size, checkpoint.root, checkpoint.key
        ),
        Err(e) => eprintln!("warning: no checkpoint was signed: {e:#}"),
    }
    println!("verify: firebreak --storage {} audit verify", cli.storage);
    if let Some(why) = all_failed(&trials) {
        eprintln!("{why}");
        stop_code(summary.stop, &name);
        return Ok(1);
    }
    Ok(stop_code(summary.stop, &name))
}

/// `launch slurm`: creates or resumes the campaign (its edits governed as by
/// `run`), then submits `job.workers` workers as one job array, each started in
/// the spec's folder; prints the job id and records it for `status`.
async fn launch_slurm(
    cli: &Cli,
    path: &Path,
    mut job: crate::launch::SlurmJob,
    slots: Option<u32>,
    lease: std::time::Duration,
) -> CommandResult {
    let mut spec = load_spec(path)?;
    let spec_dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| anyhow!("cannot resolve the folder of {}", path.display()))?;
    firebreak_runner::load_policy(&mut spec, &spec_dir)?;
    let store = AnyStore::open(&cli.storage).await?;
    let name = spec.name().to_string();
    let campaign = Campaign::open(store.clone(), spec).await?;
    for (request, _) in campaign.filed() {
        eprintln!(
            "firebreak: request {} filed ({}): the workers run the spec in effect until it is approved",
            request.body.id, request.body.kind
        );
    }
    campaign.close("launched workers on Slurm").await?;
    drop(campaign);
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    job.worker_argv = vec![
        exe.display().to_string(),
        "--storage".into(),
        cli.storage.clone(),
        "worker".into(),
        "--campaign".into(),
        name.clone(),
        "--lease".into(),
        format!("{}s", lease.as_secs()),
    ];
    if let Some(slots) = slots {
        job.worker_argv
            .extend(["--slots".to_string(), slots.to_string()]);
    }
    job.job_name = format!("firebreak-{name}");
    let launches = std::env::current_dir()
        .context("cannot read the current folder")?
        .join(launches_dir(&store));
    job.log_dir = launches.join(&name);
    job.extra.push(format!("--chdir={}", spec_dir.display()));
    let job_id = crate::launch::submit(&job)?;
    std::fs::write(
        launches.join(format!("{name}.slurm")),
        format!("{job_id}\n"),
    )
    .with_context(|| format!("cannot record the job id under {}", launches.display()))?;
    println!("{job_id}");
    if !cli.quiet {
        eprintln!(
            "submitted {} worker(s) for {name} as Slurm job array {job_id} (logs in {}); \
             `firebreak status {name}` shows them",
            job.workers,
            job.log_dir.display()
        );
    }
    Ok(0)
}

/// `launch k8s`: creates or resumes the campaign (unless `--dry-run`, which
/// only reads the spec), then applies one Indexed Job of workers.
async fn launch_k8s(
    cli: &Cli,
    path: &Path,
    mut job: crate::k8s::K8sJob,
    dry_run: bool,
) -> CommandResult {
    let mut spec = load_spec(path)?;
    job.campaign = spec.name().to_string();
    let manifest = crate::k8s::manifest(&job)?;
    if dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&manifest).unwrap_or_default()
        );
        return Ok(0);
    }
    let spec_dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| anyhow!("cannot resolve the folder of {}", path.display()))?;
    firebreak_runner::load_policy(&mut spec, &spec_dir)?;
    let store = AnyStore::open(&cli.storage).await?;
    let campaign = Campaign::open(store, spec).await?;
    campaign.close("launched workers on Kubernetes").await?;
    drop(campaign);
    let applied = crate::k8s::apply(&manifest)?;
    println!("{applied}");
    Ok(0)
}

/// Where launches are recorded and their logs go: `<db>.launches`.
fn launches_dir(store: &AnyStore) -> std::path::PathBuf {
    let mut name = store.local_path().as_os_str().to_owned();
    name.push(".launches");
    std::path::PathBuf::from(name)
}

/// The Slurm array launched for `name`, if any, with its tasks' states.
fn launched(
    store: &AnyStore,
    name: &str,
) -> Option<(String, Result<Vec<crate::launch::TaskState>, String>)> {
    let text = std::fs::read_to_string(launches_dir(store).join(format!("{name}.slurm"))).ok()?;
    let job_id = text.trim().to_string();
    let tasks = crate::launch::array_state(&job_id).map_err(|e| e.to_string());
    Some((job_id, tasks))
}

/// When every finished trial of the campaign failed: what to tell the person,
/// with the most common failure reason (such a run exits 1, whatever stopped it).
fn all_failed(trials: &[Trial]) -> Option<String> {
    let finished: Vec<&Trial> = trials.iter().filter(|t| t.state.is_finished()).collect();
    if finished.is_empty() || finished.iter().any(|t| t.state != TrialState::Failed) {
        return None;
    }
    let mut reasons: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in &finished {
        *reasons
            .entry(t.error.as_deref().unwrap_or("no reason recorded"))
            .or_default() += 1;
    }
    let (reason, count) = reasons.into_iter().max_by_key(|(_, n)| *n)?;
    Some(format!(
        "error: every trial failed ({} of {}); the most common reason ({count} of them): {reason}\nhint: `firebreak logs CAMPAIGN NUMBER` shows a trial's log; run the task's command by hand to see it fail",
        finished.len(),
        finished.len()
    ))
}

/// Trial folders (work, checkpoints) belong to one database: `<db>.trials`, or
/// `$FIREBREAK_TRIALS_ROOT/<db name>.trials` (a folder every worker shares, for
/// PBT's checkpoints across machines; one per database, so that a new campaign's
/// stale-folder removal never reaches another database's campaign of its name).
fn trials_root_of(store: &AnyStore) -> std::path::PathBuf {
    let local = store.local_path();
    let mut name = match std::env::var_os(TRIALS_ROOT_ENV).filter(|r| !r.is_empty()) {
        Some(root) => Path::new(&root)
            .join(local.file_name().unwrap_or_default())
            .into_os_string(),
        None => local.into_os_string(),
    };
    name.push(".trials");
    std::path::PathBuf::from(name)
}

/// Where trial folders go instead of `<db>.trials`.
const TRIALS_ROOT_ENV: &str = "FIREBREAK_TRIALS_ROOT";

/// The campaign's own folder, `<db>.trials/<name>`: the spec checked the name,
/// and one that is not a single plain folder name (`..` would be the database's
/// folder) is refused here as well, before any path is built from it.
fn campaign_dir(trials_root: &Path, name: &str) -> Result<std::path::PathBuf, Failure> {
    let joined = trials_root.join(name);
    let plain = matches!(
        Path::new(name).components().collect::<Vec<_>>().as_slice(),
        [std::path::Component::Normal(n)] if *n == std::ffi::OsStr::new(name)
    );
    if !plain || joined.parent() != Some(trials_root) {
        return Err(Failure::new(
            2,
            anyhow!(
                "campaign name {name:?} is not one plain folder name; no trial folder is built from it\nhint: use 1 to 64 letters, digits, `-`, `_` or `.`, not starting with `.`"
            ),
        ));
    }
    Ok(joined)
}

/// A new campaign owns no trial folder yet: one left under its name (by a
/// deleted database file of the same path) must not be resumed from. Only that
/// folder, checked by [`campaign_dir`], is ever removed (a symbolic link there:
/// the link only).
fn remove_stale_folder(campaign: &Campaign<AnyStore>, campaign_dir: &Path) -> Result<(), Failure> {
    if campaign.created() && campaign_dir.symlink_metadata().is_ok() {
        if campaign_dir.file_name() != Some(std::ffi::OsStr::new(campaign.name())) {
            return Err(Failure::new(
                1,
                anyhow!(
                    "campaign {:?} does not own {}; nothing removed\nhint: report this as a bug",
                    campaign.name(),
                    campaign_dir.display()
                ),
            ));
        }
        std::fs::remove_dir_all(campaign_dir)
            .with_context(|| format!("removing stale trial folders {}", campaign_dir.display()))?;
    }
    Ok(())
}

/// Says on stderr what this run filed or reused (or did not file again: an edit
/// already rejected or expired), and whether it created or resumes the campaign
/// (its `ordinal`-th run, with the trials a dead run left, re-queued).
fn announce(cli: &Cli, campaign: &Campaign<AnyStore>, ordinal: usize) {
    let name = campaign.name();
    for request in campaign.refused_before() {
        let decided: Vec<String> = request
            .decisions
            .iter()
            .filter(|d| d.decision == firebreak_ledger::Verdict::Reject)
            .map(|d| format!("rejected by {}: {}", d.by, d.reason))
            .collect();
        let how = if decided.is_empty() {
            format!("expired at {}", request.body.expires_at)
        } else {
            decided.join("; ")
        };
        eprintln!(
            "firebreak: this edit ({}: {}) was asked for before as request {} (filed {}), which was {}: {how}; not filed again, and work continues within the approved limits\n  to ask again on purpose: `firebreak run SPEC --ask-again`",
            request.body.kind,
            request.body.reason,
            request.body.id,
            request.body.created_at,
            request.state
        );
    }
    for (request, reused) in campaign.filed() {
        eprintln!(
            "firebreak: {} change request {} ({}) {}: {}; work continues within the approved limits\n  decide with `firebreak approve {} --key FILE` (quorum {})",
            if *reused { "pending" } else { "filed" },
            request.body.id,
            request.body.kind,
            if *reused {
                "reused (same edit)"
            } else {
                "awaits approval"
            },
            request.body.reason,
            request.body.id,
            campaign.spec().spec.governance.quorum.unwrap_or(1)
        );
    }
    if !cli.quiet {
        let requeued: Vec<String> = campaign
            .requeued()
            .iter()
            .map(|r| r.number.to_string())
            .collect();
        if campaign.created() {
            eprintln!("created campaign {name:?} (run {ordinal})");
        } else {
            eprintln!("resuming campaign {name:?} (run {ordinal})");
        }
        if !requeued.is_empty() {
            eprintln!(
                "re-queued trials left running by a dead run: {}",
                requeued.join(", ")
            );
        }
    }
}

/// Ctrl-C or SIGTERM once interrupts the run (running trials are stopped and
/// re-queued); twice exits at once.
pub(crate) fn interrupt_on_signals() -> watch::Receiver<bool> {
    let (interrupt_tx, interrupt_rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        for _ in 0..2 {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
            }
            if *interrupt_tx.borrow() {
                eprintln!(
                    "\ninterrupted twice: exiting now; the next run re-queues what was running"
                );
                std::process::exit(130);
            }
            eprintln!("\ninterrupting: stopping running trials (again to exit at once)");
            let _ = interrupt_tx.send(true);
        }
    });
    interrupt_rx
}

/// Says why the run stopped (on stderr) and gives its exit code: 0 done, 3
/// halted (a limit or a firebreak), 130 interrupted.
fn stop_code(stop: Stop, name: &str) -> u8 {
    match stop {
        Stop::Done => 0,
        Stop::Limit(reason) => {
            eprintln!("halted before n_trials: {reason}");
            3
        }
        Stop::Firebreak { requests, reason } => {
            eprintln!(
                "halted at a firebreak: {reason}\nrequest(s) {} need approval: `firebreak requests {name}`, then `firebreak approve ID --key FILE`",
                requests.join(", ")
            );
            3
        }
        Stop::Interrupted { requeued } => {
            eprintln!(
                "interrupted; {} running trial(s) re-queued; run the same command to resume",
                requeued.len()
            );
            130
        }
    }
}

async fn campaign_state(
    store: &AnyStore,
    name: &str,
    n_trials: u64,
    finished: u64,
) -> Result<String, Failure> {
    if let Some(holder) = store.lock_holder(name).await? {
        return Ok(format!("running ({holder})"));
    }
    let pending: Vec<String> = store
        .requests(Some(name))
        .await?
        .into_iter()
        .filter(|r| r.state == firebreak_ledger::RequestState::Pending)
        .map(|r| format!("{} {}", r.body.id, r.body.kind))
        .collect();
    if !pending.is_empty() {
        return Ok(format!(
            "halted at a firebreak (pending: {}; `firebreak requests {name}`)",
            pending.join(", ")
        ));
    }
    if finished >= n_trials {
        return Ok("done".to_string());
    }
    let last = store.runs(name).await?.pop();
    Ok(match last.and_then(|r| r.end_reason) {
        Some(reason) if reason.starts_with("limit") => format!("halted ({reason})"),
        Some(reason) => format!("stopped ({reason})"),
        None => "stopped (its last run died; `run` resumes it)".to_string(),
    })
}

async fn campaigns(cli: &Cli) -> CommandResult {
    let store = open(cli).await?;
    let mut rows = vec![
        [
            "campaign", "state", "finished", "n_trials", "complete", "pruned", "failed", "created",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut list = Vec::new();
    for summary in store.campaigns().await? {
        let name = summary.campaign.name.clone();
        let n_trials = summary.campaign.spec["search"]["n_trials"]
            .as_u64()
            .unwrap_or(0);
        let c = summary.counts;
        let state = campaign_state(&store, &name, n_trials, c.finished()).await?;
        let created = format_rfc3339(summary.campaign.created_at);
        rows.push(vec![
            name.clone(),
            state.clone(),
            c.finished().to_string(),
            n_trials.to_string(),
            c.complete.to_string(),
            c.pruned.to_string(),
            c.failed.to_string(),
            created.clone(),
        ]);
        list.push(json!({"name": name, "state": state, "n_trials": n_trials, "counts": c, "created_at": created}));
    }
    print_rows(cli.format, &rows, &json!(list));
    Ok(0)
}

async fn status(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let Some(name) = campaign else {
        return campaigns(cli).await;
    };
    let store = open(cli).await?;
    let spec = stored_spec(&store, name).await?;
    let trials = with_tests(&store, name).await?;
    let counts = store.counts(name).await?;
    let n_trials = spec.spec.search.n_trials;
    let state = campaign_state(&store, name, n_trials, counts.finished()).await?;
    let best: Vec<_> = spec.objectives.best(&trials);
    let ledger = store.ledger().await?;
    let llm_tokens = llm_tokens(&ledger, name);
    // With generations: the latest one and the last promoted champion.
    let generation = match &spec.spec.generations {
        None => None,
        Some(settings) => {
            let requests = store.requests(Some(name)).await?;
            let gens = crate::lineage::generations(&ledger, name, &requests, &trials);
            let promoted = gens.iter().rev().find(|g| g["promoted"] == true);
            Some(json!({
                "current": gens.last().map(|g| g["generation"].clone()),
                "state": gens.last().map(|g| g["state"].clone()),
                "count": settings.count,
                "last_promoted": promoted.map(|g| json!({
                    "generation": g["generation"],
                    "champion": g["champion"],
                    "value": g["value"],
                })),
            }))
        }
    };
    if cli.format == Format::Json {
        let value = json!({
            "campaign": name,
            "state": state,
            "n_trials": n_trials,
            "counts": counts,
            "generations": generation,
            "llm_tokens": llm_tokens,
            "best": best.iter().map(|t| trial_json(t)).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(0);
    }
    println!("campaign {name}: {state}");
    if let Some((job_id, tasks)) = launched(&store, name) {
        match tasks {
            Ok(tasks) => {
                let mut by_state: std::collections::BTreeMap<&str, usize> = Default::default();
                for task in &tasks {
                    *by_state.entry(task.state.as_str()).or_default() += 1;
                }
                let states: Vec<String> =
                    by_state.iter().map(|(s, n)| format!("{n} {s}")).collect();
                let done = if tasks.iter().all(|t| t.is_finished()) {
                    " (all finished)"
                } else {
                    ""
                };
                println!("slurm: job array {job_id}: {}{done}", states.join(", "));
            }
            Err(e) => println!("slurm: job array {job_id}: state unknown ({e})"),
        }
    }
    println!(
        "progress: {} of {n_trials} finished ({} complete, {} pruned, {} failed), {} running, {} queued",
        counts.finished(),
        counts.complete,
        counts.pruned,
        counts.failed,
        counts.running,
        counts.queued
    );
    for t in best {
        let metrics: Vec<String> = t
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={}", number(*v)))
            .collect();
        println!("best so far: trial {} · {}", t.number, metrics.join(" "));
    }
    if let Some(g) = generation {
        let promoted = match &g["last_promoted"] {
            serde_json::Value::Null => "none promoted yet".to_string(),
            p => format!(
                "last promoted champion: trial {} (generation {}, {} = {})",
                p["champion"],
                p["generation"],
                spec.objectives.metrics[0],
                p["value"].as_f64().map(number).unwrap_or_default()
            ),
        };
        println!(
            "generation {} of {} ({}); {promoted}",
            g["current"],
            g["count"],
            g["state"].as_str().unwrap_or("not started")
        );
    }
    if let Some(tokens) = llm_tokens {
        let limit = spec
            .spec
            .constraints
            .max_llm_tokens
            .map(|max| format!(" of max_llm_tokens = {max}"))
            .unwrap_or_default();
        println!("language-model tokens: {tokens}{limit}");
    }
    Ok(0)
}

/// Tokens the campaign's agents used, from its `agent_answered` entries (`None`
/// when it never asked one).
fn llm_tokens(ledger: &[firebreak_ledger::Entry], campaign: &str) -> Option<u64> {
    let mut total = None;
    for entry in ledger {
        if entry.campaign != campaign || entry.kind != "agent_answered" {
            continue;
        }
        let payload: serde_json::Value = serde_json::from_str(&entry.payload).unwrap_or_default();
        let data = &payload["data"];
        let tokens = data["prompt_tokens"].as_u64().unwrap_or(0)
            + data["completion_tokens"].as_u64().unwrap_or(0);
        total = Some(total.unwrap_or(0) + tokens);
    }
    total
}

/// A campaign's trials for display: the champion's test result joins its
/// `metrics` (the Trial JSON of `contract.md`), while the stored trial, which
/// proposers and schedulers read, never carries it.
async fn with_tests(store: &AnyStore, campaign: &str) -> Result<Vec<Trial>, Failure> {
    let mut trials = store.trials(campaign).await?;
    let tests = store.tests(campaign).await?;
    for trial in &mut trials {
        if let Some(test) = tests.get(&trial.number) {
            trial
                .metrics
                .extend(test.iter().map(|(k, v)| (k.clone(), *v)));
        }
    }
    Ok(trials)
}

/// The campaign's trials with their test results; with `generation`, only
/// that generation's (an error for a campaign without `[generations]`).
async fn trials_of(
    store: &AnyStore,
    spec: &CampaignSpec,
    campaign: &str,
    generation: Option<u32>,
) -> Result<Vec<Trial>, Failure> {
    let mut trials = with_tests(store, campaign).await?;
    if let Some(generation) = generation {
        if spec.spec.generations.is_none() {
            return Err(Failure::new(
                2,
                anyhow!("campaign {campaign} has no [generations], so no trial has a generation"),
            ));
        }
        trials.retain(|t| t.generation == Some(generation));
    }
    Ok(trials)
}

async fn trials(cli: &Cli, campaign: &str, generation: Option<u32>) -> CommandResult {
    let store = open(cli).await?;
    let spec = stored_spec(&store, campaign).await?;
    let trials = trials_of(&store, &spec, campaign, generation).await?;
    let json: Vec<_> = trials.iter().map(trial_json).collect();
    print_rows(
        cli.format,
        &trial_rows(&trials, &spec.objectives, cli.format),
        &json!(json),
    );
    Ok(0)
}

async fn best(cli: &Cli, campaign: &str, generation: Option<u32>) -> CommandResult {
    let store = open(cli).await?;
    let spec = stored_spec(&store, campaign).await?;
    let trials = trials_of(&store, &spec, campaign, generation).await?;
    let best: Vec<_> = spec.objectives.best(&trials).into_iter().cloned().collect();
    if best.is_empty() {
        return Err(Failure::new(1, anyhow!("no complete trial yet")));
    }
    let json = if spec.objectives.metrics.len() == 1 {
        trial_json(&best[0])
    } else {
        json!(best.iter().map(trial_json).collect::<Vec<_>>())
    };
    print_rows(
        cli.format,
        &trial_rows(&best, &spec.objectives, cli.format),
        &json,
    );
    Ok(0)
}

async fn logs(cli: &Cli, campaign: &str, number: u64) -> CommandResult {
    let store = open(cli).await?;
    stored_spec(&store, campaign).await?;
    match store.log(campaign, number).await? {
        Some(text) => print!("{text}"),
        None => eprintln!("trial {number} has no stored log yet (it has not finished)"),
    }
    Ok(0)
}

async fn enqueue(cli: &Cli, campaign: &str, text: &str) -> CommandResult {
    let store = open(cli).await?;
    let spec = stored_spec(&store, campaign).await?;
    let raw: Params = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            2,
            anyhow!("--params is not a JSON object of parameter values: {e}\nhint: e.g. --params '{{\"lr\": 0.01, \"layers\": 2}}'"),
        )
    })?;
    // A float parameter written as an integer (`1`) is still a float.
    let params: Params = raw
        .into_iter()
        .map(|(k, v)| {
            let is_float = matches!(
                spec.space.get(&k).map(|p| &p.distribution),
                Some(Distribution::Float { .. })
            );
            match v {
                ParamValue::Int(i) if is_float => (k, ParamValue::Float(i as f64)),
                v => (k, v),
            }
        })
        .collect();
    spec.space.validate(&params).map_err(|e| {
        Failure::new(2, anyhow!("{e}\nhint: give every active parameter of campaign {campaign:?} a value inside its range"))
    })?;
    let person = firebreak_govern::Principal::Local {
        user: firebreak_runner::os_user(),
    };
    let number = firebreak_runner::enqueue(&store, campaign, &person, params).await?;
    println!("queued trial {number} of {campaign}; it runs before new proposals");
    Ok(0)
}

fn leaves(rows: &[Entry]) -> Vec<Hash> {
    rows.iter().map(|e| e.hash).collect()
}

/// Signs the root of the whole ledger with the engine key and stores it, after
/// checking that the ledger verifies against the database: the engine never
/// signs over a ledger that does not.
pub(crate) async fn sign_checkpoint(store: &AnyStore) -> anyhow::Result<Checkpoint> {
    let (rows, state) = store.ledger_and_snapshot().await?;
    audit(&rows, &state).map_err(firebreak_runner::RunnerError::Tampered)?;
    let key = crate::keys::engine_key()?;
    let leaves = leaves(&rows);
    let now = firebreak_core::Clock::now(&firebreak_core::SystemClock);
    let checkpoint = Checkpoint::sign(
        &key,
        leaves.len() as u64,
        &firebreak_ledger::root(&leaves),
        now,
    );
    store.add_checkpoint(&checkpoint).await?;
    // Also outside the database, where a truncation cannot take it along.
    let dir = crate::checkpoints::folder(&store.local_path());
    if let Err(e) = crate::checkpoints::publish(&dir, &checkpoint) {
        eprintln!("warning: the checkpoint is stored but not published: {e:#}");
    }
    Ok(checkpoint)
}

/// Why `checkpoint` does not describe the ledger whose tree is `tree`, if it does not.
fn check_checkpoint(
    checkpoint: &Checkpoint,
    tree: &firebreak_ledger::MerkleTree,
) -> Option<(Option<u64>, String)> {
    if let Err(e) = checkpoint.verify_signature() {
        return Some((None, e));
    }
    let size = checkpoint.tree_size;
    let Some(root) = tree.root(size) else {
        return Some((
            Some(tree.len()),
            format!(
                "the checkpoint signed at {} covers {size} entries but the ledger has {}: entries were removed",
                checkpoint.at,
                tree.len()
            ),
        ));
    };
    if hex(&root) != checkpoint.root {
        return Some((
            None,
            format!(
                "the first {size} entries do not have the root of the checkpoint signed at {}: history was rewritten",
                checkpoint.at
            ),
        ));
    }
    None
}

async fn verify(cli: &Cli, campaign: Option<&str>, trusted: Option<&str>) -> CommandResult {
    let store = open(cli).await?;
    if let Some(name) = campaign {
        stored_spec(&store, name).await?;
    }
    let (rows, state) = store.ledger_and_snapshot().await?;
    // Every subtree hashed once (on every core): each checkpoint's root is then a
    // few lookups.
    let tree = firebreak_ledger::MerkleTree::new(leaves(&rows));
    let mut failure: Option<(Option<u64>, String)> =
        audit(&rows, &state).err().map(|v| (v.seq, v.reason));
    let stored = store.checkpoints().await?;
    for checkpoint in &stored {
        if failure.is_none() {
            failure = check_checkpoint(checkpoint, &tree);
        }
    }
    match trusted {
        None => {}
        Some(key) if key.starts_with("ed25519:") => {
            firebreak_ledger::parse_public_key(key)
                .map_err(|e| Failure::new(2, anyhow!("--trusted: {e}")))?;
            if failure.is_none() {
                let signed: Vec<&Checkpoint> = stored.iter().filter(|c| c.key == key).collect();
                if signed.is_empty() {
                    failure = Some((
                        None,
                        "no stored checkpoint is signed by the trusted key".into(),
                    ));
                } else if signed.iter().map(|c| c.tree_size).max() < Some(tree.len()) {
                    // Entries after the last trusted checkpoint are vouched for by the chain only.
                }
            }
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::new(2, anyhow!("--trusted {path}: {e}\nhint: give a checkpoint file written by `audit checkpoint --out`, or an `ed25519:` key")))?;
            let checkpoint: Checkpoint = serde_json::from_str(&text)
                .map_err(|e| Failure::new(2, anyhow!("--trusted {path}: not a checkpoint: {e}")))?;
            if failure.is_none() {
                failure = check_checkpoint(&checkpoint, &tree);
            }
        }
    }
    let published = crate::checkpoints::published(&crate::checkpoints::folder(&store.local_path()))
        .map_err(|e| Failure::new(4, e))?;
    for (path, checkpoint) in &published {
        if failure.is_none() {
            failure = check_checkpoint(checkpoint, &tree).map(|(seq, why)| {
                (
                    seq,
                    format!("published checkpoint {}: {why}", path.display()),
                )
            });
        }
    }
    let head = rows.last().map(|e| hex(&e.hash));
    let root = hex(&tree.root(tree.len()).unwrap_or_default());
    let of_campaign = campaign.map(|c| rows.iter().filter(|e| e.campaign == c).count());
    let ok = failure.is_none();
    let (first_bad, reason) = failure.unzip();
    if cli.format == Format::Json {
        let value = json!({
            "ok": ok,
            "entries": rows.len(),
            "campaign_entries": of_campaign,
            "first_bad_seq": first_bad.flatten(),
            "reason": reason,
            "head": head,
            "root": root,
            "checkpoints": stored.len(),
            "published_checkpoints": published.len(),
            "trusted": trusted.is_some(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else if ok {
        println!(
            "ok: {} entries; hash chain intact; state tables agree with the ledger; {} signed checkpoint(s) and {} published file(s) match{}{}",
            rows.len(),
            stored.len(),
            published.len(),
            if trusted.is_some() {
                ", including the trusted one"
            } else {
                ""
            },
            of_campaign
                .map(|n| format!(" ({n} entries of {:?})", campaign.unwrap_or_default()))
                .unwrap_or_default()
        );
        println!("root: {root}");
    } else {
        println!(
            "FAILED at seq {}: {}",
            first_bad
                .flatten()
                .map_or("-".to_string(), |s| s.to_string()),
            reason.unwrap_or_default()
        );
    }
    Ok(if ok { 0 } else { 4 })
}

async fn checkpoint(cli: &Cli, out: Option<&Path>) -> CommandResult {
    let store = open(cli).await?;
    let checkpoint = sign_checkpoint(&store).await.map_err(|e| {
        let tampered = e
            .downcast_ref::<firebreak_runner::RunnerError>()
            .is_some_and(|r| matches!(r, firebreak_runner::RunnerError::Tampered(_)));
        Failure::new(if tampered { 4 } else { 1 }, e)
    })?;
    let text = serde_json::to_string_pretty(&checkpoint)?;
    if let Some(path) = out {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    Ok(0)
}

/// The inclusion proof of entry `seq` against the newest stored checkpoint that
/// covers it (else the whole ledger), checked before it is shown.
async fn inclusion(
    store: &AnyStore,
    rows: &[Entry],
    seq: u64,
) -> Result<serde_json::Value, Failure> {
    let leaves = leaves(rows);
    let Some(leaf) = leaves.get(seq as usize) else {
        return Err(Failure::new(
            1,
            anyhow!("the ledger has no entry {seq} (it has {})", leaves.len()),
        ));
    };
    let checkpoint = signed_checkpoint(store, seq, leaves.len() as u64).await?;
    let size = checkpoint
        .as_ref()
        .map_or(leaves.len(), |c| c.tree_size as usize);
    let root = firebreak_ledger::root(&leaves[..size]);
    let path = firebreak_ledger::inclusion_proof(&leaves[..size], seq as usize);
    let proved = firebreak_ledger::verify_inclusion(leaf, seq, size as u64, &path, &root);
    Ok(proof_json(
        seq,
        leaf,
        size as u64,
        &root,
        &path,
        checkpoint,
        proved,
    ))
}

/// The newest stored checkpoint that covers entry `seq` of a ledger of
/// `entries` and whose signature verifies: the only root a proof is checked
/// against (a root rebuilt from the same stored leaves would prove nothing).
async fn signed_checkpoint(
    store: &AnyStore,
    seq: u64,
    entries: u64,
) -> Result<Option<Checkpoint>, Failure> {
    Ok(store
        .checkpoints()
        .await?
        .into_iter()
        .rev()
        .find(|c| c.tree_size > seq && c.tree_size <= entries && c.verify_signature().is_ok()))
}

/// An inclusion proof as `proof` and `explain` show it: `verified` only when
/// the path leads to the root of a signed checkpoint, and `against` says which.
fn proof_json(
    seq: u64,
    leaf: &Hash,
    size: u64,
    root: &Hash,
    path: &[Hash],
    checkpoint: Option<Checkpoint>,
    proved: bool,
) -> serde_json::Value {
    let against = match &checkpoint {
        Some(c) => format!(
            "the checkpoint of tree size {} signed by {} at {}",
            c.tree_size, c.key, c.at
        ),
        None => format!(
            "no signed checkpoint covers entry {seq} yet (`firebreak audit checkpoint` signs one)"
        ),
    };
    let verified = proved && checkpoint.as_ref().is_some_and(|c| c.root == hex(root));
    json!({
        "seq": seq,
        "leaf_hash": hex(leaf),
        "tree_size": size,
        "root": hex(root),
        "proof": path.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "checkpoint": checkpoint,
        "against": against,
        "verified": verified,
    })
}

async fn proof(cli: &Cli, seq: u64) -> CommandResult {
    let store = open(cli).await?;
    // From the stored leaf hashes and the Merkle cache, without reading the whole
    // ledger; anything short of a proof that verifies is redone from every entry,
    // whose answer stands.
    let value = match cached_inclusion(&store, seq).await? {
        Some(value) if value["verified"] == true => value,
        _ => {
            let rows = store.ledger().await?;
            inclusion(&store, &rows, seq).await?
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    );
    Ok(if value["verified"] == true { 0 } else { 4 })
}

/// [`inclusion`] from the store's cached subtree hashes; `None` when the store
/// cannot give the proof that way.
async fn cached_inclusion(
    store: &AnyStore,
    seq: u64,
) -> Result<Option<serde_json::Value>, Failure> {
    let entries = store.ledger_size().await?;
    if seq >= entries {
        return Ok(None);
    }
    let checkpoint = signed_checkpoint(store, seq, entries).await?;
    let size = checkpoint.as_ref().map_or(entries, |c| c.tree_size);
    let Some(proof) = store.inclusion_proof(seq, size).await? else {
        return Ok(None);
    };
    let proved =
        firebreak_ledger::verify_inclusion(&proof.leaf, seq, size, &proof.path, &proof.root);
    Ok(Some(proof_json(
        seq,
        &proof.leaf,
        size,
        &proof.root,
        &proof.path,
        checkpoint,
        proved,
    )))
}

/// An agent's proposal: the stored request and answer its proposer state names,
/// each checked against the hash the ledger holds (`Null` for other proposers).
async fn agent_exchange(
    store: &AnyStore,
    trial: &firebreak_core::Trial,
) -> anyhow::Result<serde_json::Value> {
    let Some(names) = trial
        .proposer_state
        .as_ref()
        .map(|s| &s["agent"])
        .filter(|a| a.is_object())
    else {
        return Ok(serde_json::Value::Null);
    };
    let mut texts = Vec::new();
    for key in ["request_sha256", "response_sha256"] {
        let text = match names[key].as_str() {
            Some(hash) => store
                .agent_text(hash)
                .await?
                .filter(|t| firebreak_agent::sha256_hex(t) == hash),
            None => None,
        };
        texts.push(text);
    }
    let parse = |t: &Option<String>| -> serde_json::Value {
        t.as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    };
    let request = parse(&texts[0]);
    let response = parse(&texts[1]);
    Ok(json!({
        "request_sha256": names["request_sha256"],
        "response_sha256": names["response_sha256"],
        "request_matches": texts[0].is_some(),
        "answer_matches": texts[1].is_some(),
        "tokens": names["tokens"],
        "model": request["model"],
        "prompt": request["messages"],
        "answer": response["choices"][0]["message"]["content"],
    }))
}

async fn explain(cli: &Cli, campaign: &str, number: u64) -> CommandResult {
    let store = open(cli).await?;
    stored_spec(&store, campaign).await?;
    let trial = store.trial(campaign, number).await?;
    let rows = store.ledger().await?;
    let history: Vec<serde_json::Value> = rows
        .iter()
        .filter(|e| e.campaign == campaign)
        .filter_map(|e| {
            let payload: serde_json::Value = serde_json::from_str(&e.payload).ok()?;
            (payload["data"]["number"].as_u64() == Some(number))
                .then(|| json!({"seq": e.seq, "kind": e.kind, "at": payload["at"]}))
        })
        .collect();
    let proposed = history
        .iter()
        .find(|h| h["kind"] == "trial_proposed")
        .and_then(|h| h["seq"].as_u64())
        .ok_or_else(|| anyhow!("trial {number} has no trial_proposed entry in the ledger\nhint: run `firebreak audit verify`"))?;
    let proof = inclusion(&store, &rows, proposed).await?;
    let decision = rows
        .get(proposed as usize)
        .and_then(|e| serde_json::from_str::<serde_json::Value>(&e.payload).ok())
        .map(|p| p["data"]["policy"].clone())
        .unwrap_or_default();
    let policy = match decision["policies"].as_array() {
        Some(ids) => format!(
            "Cedar: {} by policy {} (the proposal was first checked against the campaign's space)",
            decision["decision"].as_str().unwrap_or("?"),
            ids.iter()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => format!(
            "{} (proposed by a person or a retry, or before policies were recorded)",
            trial.proposer
        ),
    };
    let agent = agent_exchange(&store, &trial).await?;
    if cli.format == Format::Json {
        let value = json!({
            "campaign": campaign,
            "number": number,
            "agent": agent,
            "state": trial.state,
            "proposer": trial.proposer,
            "rationale": trial.rationale,
            "retry_of": trial.retry_of,
            "params": trial.params,
            "policy": policy,
            "ledger": history,
            "proposal_inclusion": proof,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
        return Ok(0);
    }
    let params: Vec<String> = trial
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", param(v)))
        .collect();
    println!(
        "trial {number} of {campaign}: {} · {}",
        trial.state,
        params.join(" ")
    );
    println!("proposed by: {}", trial.proposer);
    println!("why: {}", trial.rationale);
    if let Some(origin) = trial.retry_of {
        println!("retry of: trial {origin}");
    }
    println!("allowed by: {policy}");
    if !agent.is_null() {
        for (what, key) in [("request", "request_sha256"), ("answer", "response_sha256")] {
            println!(
                "agent {what}: sha256 {} ({})",
                agent[key].as_str().unwrap_or("-"),
                if agent[format!("{what}_matches")] == true {
                    "the stored text matches the ledgered hash"
                } else {
                    "MISSING OR NOT MATCHING the ledgered hash"
                }
            );
        }
        println!("prompt:");
        for message in agent["prompt"].as_array().into_iter().flatten() {
            println!("  [{}]", message["role"].as_str().unwrap_or_default());
            for line in message["content"].as_str().unwrap_or_default().lines() {
                println!("    {line}");
            }
        }
        println!("answer:");
        for line in agent["answer"].as_str().unwrap_or_default().lines() {
            println!("    {line}");
        }
    }
    println!("ledger:");
    for h in &history {
        println!(
            "  seq {:<6} {:<16} {}",
            h["seq"],
            h["kind"].as_str().unwrap_or_default(),
            h["at"].as_str().unwrap_or_default()
        );
    }
    println!(
        "inclusion of seq {proposed} in the tree of {} entries (root {}), against {}: {}",
        proof["tree_size"],
        proof["root"].as_str().unwrap_or_default(),
        proof["against"].as_str().unwrap_or_default(),
        if proof["verified"] == true {
            "verified"
        } else {
            "NOT verified"
        }
    );
    Ok(if proof["verified"] == true { 0 } else { 4 })
}

async fn report(cli: &Cli, campaign: &str) -> CommandResult {
    use std::fmt::Write as _;
    let store = open(cli).await?;
    let record = store
        .campaign(campaign)
        .await?
        .ok_or_else(|| StoreError::NoCampaign(campaign.to_string()))?;
    let spec = CampaignSpec::from_canonical(&record.spec, campaign)?;
    let trials = store.trials(campaign).await?;
    let runs = store.runs(campaign).await?;
    let (rows, state) = store.ledger_and_snapshot().await?;
    let verdict = match audit(&rows, &state) {
        Ok(replayed) => format!(
            "passed ({} entries; chain, canonical form, governance rules and state agree)",
            replayed.entries
        ),
        Err(v) => format!(
            "**FAILED** at seq {}: {}",
            v.seq.map_or("-".into(), |s| s.to_string()),
            v.reason
        ),
    };
    let mut out = String::new();
    let c = &spec.spec.constraints;
    // `+ 0.0` turns the empty sum's -0.0 into 0.0.
    let cpu: f64 = trials.iter().filter_map(|t| t.cpu_seconds).sum::<f64>() + 0.0;
    let wall: f64 = runs
        .iter()
        .map(|r| (r.ended_at.unwrap_or(r.heartbeat_at) - r.started_at).max(0) as f64 / 1000.0)
        .sum();
    let limit = |v: Option<String>| v.unwrap_or_else(|| "no limit".into());
    let _ = writeln!(out, "# Audit report: campaign `{campaign}`\n");
    let _ = writeln!(
        out,
        "- created {} with spec hash `{}`",
        format_rfc3339(record.created_at),
        record.spec_hash
    );
    let _ = writeln!(
        out,
        "- objective: {}",
        spec.objectives
            .metrics
            .iter()
            .zip(&spec.objectives.directions)
            .map(|(m, d)| format!("{m} ({})", format!("{d:?}").to_lowercase()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        out,
        "- proposer `{}`, scheduler `{}`, n_trials {}, parallelism {}",
        spec.spec.search.sampler,
        spec.spec.search.scheduler,
        spec.spec.search.n_trials,
        spec.spec.search.parallelism
    );
    let _ = writeln!(out, "- ledger verification: {verdict}\n");
    let requests = store.requests(Some(campaign)).await?;
    out.push_str(&crate::governance::report_sections(
        &rows, campaign, &requests,
    ));
    out.push_str(&crate::lineage::report_section(
        &crate::lineage::generations(&rows, campaign, &requests, &trials),
    ));
    let _ = writeln!(out, "## Budgets\n\n| limit | set | used |\n|---|---|---|");
    let _ = writeln!(
        out,
        "| trials | max_trials {} | {} finished |",
        limit(c.max_trials.map(|m| m.to_string())),
        trials.iter().filter(|t| t.state.is_finished()).count()
    );
    let _ = writeln!(
        out,
        "| wall time | {} | {:.1} s over {} runs |",
        limit(c.max_wall_time.map(|d| d.to_string())),
        wall,
        runs.len()
    );
    let _ = writeln!(
        out,
        "| CPU time | {} | {cpu:.1} s |",
        limit(c.max_cpu_time.map(|d| d.to_string()))
    );
    let _ = writeln!(
        out,
        "| energy | {} | {:.6} kWh at {} W per core |\n",
        limit(c.max_energy_kwh.map(|e| format!("{e} kWh"))),
        cpu * c.watts_per_core / 3.6e6,
        c.watts_per_core
    );
    let _ = writeln!(
        out,
        "## Runs\n\n| run | by | host | pid | started | ended | why |\n|---|---|---|---|---|---|---|"
    );
    for r in &runs {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.info.os_user,
            r.info.host,
            r.info.pid,
            format_rfc3339(r.started_at),
            r.ended_at
                .map(format_rfc3339)
                .unwrap_or_else(|| "— (died)".into()),
            r.end_reason.as_deref().unwrap_or("—")
        );
    }
    let mut by_proposer: std::collections::BTreeMap<&str, [usize; 5]> = Default::default();
    for t in &trials {
        let slot = match t.state {
            firebreak_core::TrialState::Complete => 0,
            firebreak_core::TrialState::Pruned => 1,
            firebreak_core::TrialState::Failed => 2,
            firebreak_core::TrialState::Running => 3,
            _ => 4,
        };
        by_proposer.entry(t.proposer.as_str()).or_default()[slot] += 1;
    }
    let _ = writeln!(
        out,
        "\n## Proposals\n\n| proposer | complete | pruned | failed | running | queued |\n|---|---|---|---|---|---|"
    );
    for (proposer, n) in &by_proposer {
        let _ = writeln!(
            out,
            "| {proposer} | {} | {} | {} | {} | {} |",
            n[0], n[1], n[2], n[3], n[4]
        );
    }
    let requeues: Vec<String> = rows
        .iter()
        .filter(|e| e.campaign == campaign && e.kind == "trial_requeued")
        .filter_map(|e| {
            serde_json::from_str::<serde_json::Value>(&e.payload)
                .ok()
                .map(|p| (e.seq, p))
        })
        .map(|(seq, p)| {
            format!(
                "- seq {seq}: trial {} — {}",
                p["data"]["number"],
                p["data"]["reason"].as_str().unwrap_or_default()
            )
        })
        .collect();
    let _ = writeln!(out, "\n## Re-queued trials\n");
    let _ = writeln!(
        out,
        "{}",
        if requeues.is_empty() {
            "None.".to_string()
        } else {
            requeues.join("\n")
        }
    );
    let _ = writeln!(out, "\n## Champion\n");
    match spec.objectives.best(&trials).first() {
        Some(t) => {
            let metrics: Vec<String> = t
                .metrics
                .iter()
                .map(|(k, v)| format!("{k}={}", number(*v)))
                .collect();
            let _ = writeln!(
                out,
                "Trial {} ({}), proposed by `{}`: {}",
                t.number,
                metrics.join(" "),
                t.proposer,
                t.rationale
            );
        }
        None => {
            let _ = writeln!(out, "No complete trial yet.");
        }
    }
    let checkpoints = store.checkpoints().await?;
    let _ = writeln!(out, "\n## Signed checkpoints\n");
    if checkpoints.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for cp in checkpoints {
        let _ = writeln!(
            out,
            "- tree size {}, root `{}`, signed {} by `{}`",
            cp.tree_size, cp.root, cp.at, cp.key
        );
    }
    print!("{out}");
    Ok(0)
}

async fn export(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let store = open(cli).await?;
    if let Some(name) = campaign {
        stored_spec(&store, name).await?;
    }
    for entry in store.ledger().await? {
        let line = if campaign.is_none_or(|c| c == entry.campaign) {
            json!({
                "seq": entry.seq,
                "campaign": entry.campaign,
                "kind": entry.kind,
                "payload": entry.payload,
                "hash": hex(&entry.hash),
            })
        } else {
            json!({"seq": entry.seq, "hash": hex(&entry.hash), "redacted": true})
        };
        println!("{line}");
    }
    for checkpoint in store.checkpoints().await? {
        println!("{}", json!({ "checkpoint": checkpoint }));
    }
    Ok(0)
}

fn new_key(name: &str, out: &Path) -> CommandResult {
    let key = crate::keys::new_key()?;
    crate::keys::write_key(out, &key)?;
    println!("{}", public_key_string(&key.verifying_key()));
    eprintln!(
        "wrote the private key of {name} to {} (mode 0600)",
        out.display()
    );
    Ok(0)
}

async fn upgrade(cli: &Cli) -> CommandResult {
    let (store, before) = AnyStore::upgrade(&cli.storage).await?;
    let now = store.schema_version().await?;
    if before == now {
        println!("schema is at version {now}; nothing to do");
    } else {
        println!("schema upgraded from version {before} to {now}; ledger rows untouched");
    }
    Ok(0)
}

//! Dispatch of subcommands, and the ones that drive processes or files rather
//! than read or decide: `init`, `validate`, `run`, `launch`, `keys new`,
//! `storage upgrade`. The rest are faces over `firebreak_app` (`show.rs`,
//! `audit.rs`, `governance.rs`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use firebreak_app::{App, AppError, Signed, checkpoint_folder};
use firebreak_ledger::{Verdict, public_key_string};
use firebreak_runner::{Campaign, Executor, RunEvent, Stop};
use firebreak_spec::{CampaignSpec, EXAMPLE_SPEC};
use firebreak_store::{AnyStore, Store};
use tokio::sync::{mpsc, watch};

use crate::output::{number, param};
use crate::progress::Progress;
use crate::{AuditCommand, Cli, Command, CommandResult, Failure, KeysCommand, StorageCommand};

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
            let campaigns = match campaigns.is_empty() {
                true => app_of(store.clone()).unfinished().await?,
                false => campaigns.clone(),
            };
            let args = crate::worker::WorkerArgs {
                campaigns,
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
        Command::Campaigns => crate::show::campaigns(&cli).await,
        Command::Status { campaign } => crate::show::status(&cli, campaign.as_deref()).await,
        Command::Trials {
            campaign,
            generation,
        } => crate::show::trials(&cli, campaign, *generation).await,
        Command::Best {
            campaign,
            generation,
        } => crate::show::best(&cli, campaign, *generation).await,
        Command::Lineage { campaign } => crate::show::lineage(&cli, campaign).await,
        Command::Logs { campaign, number } => crate::show::logs(&cli, campaign, *number).await,
        Command::Enqueue { campaign, params } => crate::show::enqueue(&cli, campaign, params).await,
        Command::Explain { campaign, number } => {
            crate::show::explain(&cli, campaign, *number).await
        }
        Command::Audit(AuditCommand::Verify { campaign, trusted }) => {
            crate::audit::verify(&cli, campaign.as_deref(), trusted.as_deref()).await
        }
        Command::Audit(AuditCommand::Checkpoint { out }) => {
            crate::audit::checkpoint(&cli, out.as_deref()).await
        }
        Command::Audit(AuditCommand::Proof { seq }) => crate::audit::proof(&cli, *seq).await,
        Command::Audit(AuditCommand::Report { campaign }) => {
            crate::audit::report(&cli, campaign).await
        }
        Command::Audit(AuditCommand::Export { campaign }) => {
            crate::audit::export(&cli, campaign.as_deref()).await
        }
        Command::Storage(StorageCommand::Upgrade) => upgrade(&cli).await,
        Command::Keys(KeysCommand::New { name, out }) => new_key(name, out),
        Command::Serve {
            bind,
            tls_cert,
            tls_key,
            insecure_bind,
        } => {
            let tls = tls_cert.clone().zip(tls_key.clone());
            crate::serve::serve(&cli, *bind, tls, *insecure_bind).await
        }
        Command::ServeOptuna {
            bind,
            require_token,
        } => crate::serve::serve_optuna(&cli, *bind, *require_token).await,
        Command::Govern { study, spec } => crate::serve::govern(&cli, study, spec).await,
        Command::Import(crate::ImportCommand::Optuna { from, study }) => {
            crate::serve::import_optuna(&cli, from, study.as_deref()).await
        }
        Command::Export(crate::ExportCommand::Optuna { campaign, out }) => {
            crate::serve::export_optuna(&cli, campaign, out).await
        }
        Command::Tokens(command) => crate::serve::tokens(&cli, command).await,
        Command::Sign {
            id,
            key,
            reject,
            reason,
        } => crate::serve::sign(&cli, id, key, *reject, reason).await,
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
    firebreak_app::validate(&mut spec, path.parent().unwrap_or(Path::new(".")))?;
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

/// The application over `store`, publishing checkpoints beside its database.
pub(crate) fn app_of(store: AnyStore) -> App<AnyStore> {
    let folder = checkpoint_folder(&store.local_path());
    App::new(store, folder)
}

/// The application over the existing database (commands that only read, or
/// act on an existing campaign).
pub(crate) async fn app(cli: &Cli) -> Result<App<AnyStore>, Failure> {
    Ok(app_of(open(cli).await?))
}

/// Signs a checkpoint now, warning when it could not also be published.
pub(crate) async fn sign_checkpoint(
    app: &App<AnyStore>,
) -> Result<firebreak_ledger::Checkpoint, AppError> {
    let signed = app.sign_checkpoint().await?;
    warn_unpublished(&signed);
    Ok(signed.checkpoint)
}

/// The warning of a checkpoint stored but not published outside the database.
pub(crate) fn warn_unpublished(signed: &Signed) {
    if let Some(e) = &signed.unpublished {
        eprintln!(
            "warning: the checkpoint is stored but not published: {}",
            crate::chain(e)
        );
    }
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
    let app = app_of(store.clone());
    let spec_dir = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| Path::new(".").to_path_buf());
    firebreak_runner::load_policy(&mut spec, &spec_dir)?;
    let trials_root = trials_root_of(&store);
    let campaign_dir = campaign_dir(&trials_root, spec.name())?;
    let actor = app.actor_for(&spec, as_name, key).await?;
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
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECKPOINT_EVERY).await;
                let _ = sign_checkpoint(&app).await;
            }
        })
    };
    while let Some(event) = events_rx.recv().await {
        progress.on(&event);
        // A signed checkpoint at every generation boundary.
        if let RunEvent::Generation {
            promoted: Some(_), ..
        } = event
            && let Err(e) = sign_checkpoint(&app).await
        {
            eprintln!(
                "warning: no checkpoint was signed at the generation boundary: {}",
                crate::chain(&e)
            );
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
    let spec = campaign.spec().clone();
    campaign.close(&reason).await?;
    let c = summary.counts;
    println!(
        "campaign {name}: {} finished of {n_trials} ({} complete, {} pruned, {} failed); {} this run",
        c.finished(),
        c.complete,
        c.pruned,
        c.failed,
        summary.finished_this_run
    );
    let ended = app.run_summary(&spec).await?;
    for champion in &ended.champions {
        let metrics: Vec<String> = champion
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={}", number(*v)))
            .collect();
        let params: Vec<String> = champion
            .trial
            .params
            .iter()
            .map(|(k, v)| format!("{k}={}", param(v)))
            .collect();
        println!(
            "champion: trial {} · {} · {}",
            champion.trial.number,
            metrics.join(" "),
            params.join(" ")
        );
        if let Executor::Builtin(task) = &executor
            && let Ok(genome) = task.genome(&champion.trial.params)
        {
            println!("architecture: {}", genome.describe());
        }
    }
    let refit_note = if ended.refit_cpu_seconds > 0.0 {
        format!(
            " + {} refitting the champion",
            number(ended.refit_cpu_seconds)
        )
    } else {
        String::new()
    };
    println!(
        "compute: {} trial CPU seconds{refit_note}, about {:.5} kWh at {} W per core",
        number(ended.cpu_seconds),
        ended.energy_kwh,
        ended.watts_per_core
    );
    println!(
        "ledger: {} entries, head {}",
        ended.ledger_entries, ended.head
    );
    match sign_checkpoint(&app).await {
        Ok(checkpoint) => println!(
            "checkpoint: tree size {}, root {}, signed by {}",
            checkpoint.tree_size, checkpoint.root, checkpoint.key
        ),
        Err(e) => eprintln!("warning: no checkpoint was signed: {}", crate::chain(&e)),
    }
    println!("verify: firebreak --storage {} audit verify", cli.storage);
    if let Some(why) = ended.all_failed {
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
pub(crate) fn launched(
    store: &AnyStore,
    name: &str,
) -> Option<(String, Result<Vec<crate::launch::TaskState>, String>)> {
    let text = std::fs::read_to_string(launches_dir(store).join(format!("{name}.slurm"))).ok()?;
    let job_id = text.trim().to_string();
    let tasks = crate::launch::array_state(&job_id).map_err(|e| e.to_string());
    Some((job_id, tasks))
}

/// Trial folders (work, checkpoints) belong to one database: `<db>.trials`, or
/// `$FIREBREAK_TRIALS_ROOT/<db name>.trials` (a folder workers on several
/// machines share, for the checkpoints a trial resumed elsewhere needs; one per
/// database, so that a new campaign's stale-folder removal never reaches
/// another database's campaign of its name).
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

fn new_key(name: &str, out: &Path) -> CommandResult {
    let key = firebreak_app::new_key()?;
    firebreak_app::write_key(out, &key)?;
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

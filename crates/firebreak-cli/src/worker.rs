//! `firebreak worker`: joins campaigns that other processes (on this machine or
//! others, through a shared store) run too, and runs their trials until they are
//! done or halt. Symmetric: any number may join, none coordinates the others;
//! the store's compare-and-sets decide who gets which trial, and each worker's
//! heartbeat is the lease on the trials it holds (`contract.md`, *Many machines*).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_govern::Principal;
use firebreak_runner::{Campaign, Executor, RunEvent, Stop};
use firebreak_store::Store;
use tokio::sync::{mpsc, watch};

use crate::{Cli, CommandResult, Failure};

/// What `firebreak worker` was asked to do.
#[derive(Debug, Clone)]
pub(crate) struct WorkerArgs {
    /// The campaigns to serve (`worker` with none named: every unfinished one).
    pub campaigns: Vec<String>,
    /// Trials run at once (default: each campaign's `parallelism`).
    pub slots: Option<u32>,
    /// The lease on a claimed trial, renewed every third of it.
    pub lease: Duration,
    /// Exit after this long with no trial to run.
    pub idle_exit: Option<Duration>,
    /// Where trial folders go.
    pub trials_root: PathBuf,
}

/// Serves each campaign in turn; exits 0 when all are done, 3 when one halts
/// (its firebreak or a limit), 130 when interrupted.
pub(crate) async fn worker<S: Store + Clone>(
    cli: &Cli,
    store: S,
    args: WorkerArgs,
) -> CommandResult {
    let mut code = 0;
    for name in &args.campaigns {
        let stop = serve_retrying(cli, &store, name, &args).await?;
        let this = match stop {
            Stop::Done => 0,
            Stop::Interrupted { .. } => return Ok(130),
            Stop::Limit(reason) => {
                eprintln!("{name}: halted before n_trials: {reason}");
                3
            }
            Stop::Firebreak { requests, reason } => {
                eprintln!(
                    "{name}: halted at a firebreak: {reason}\nrequest(s) {} need approval: \
                     `firebreak requests {name}`",
                    requests.join(", ")
                );
                3
            }
        };
        code = code.max(this);
    }
    Ok(code)
}

/// How long a worker keeps rejoining after database errors before it gives up.
const RETRY_FOR: Duration = Duration::from_secs(300);

/// [`serve`], rejoining with backoff (0.5 s doubling to 8 s, for up to
/// [`RETRY_FOR`]) when the database fails under it (a restart, a cut
/// connection). A rejoin is a new run: the old run's trials come back to the
/// queue when its lease runs out, and its late results are refused.
async fn serve_retrying<S: Store + Clone>(
    cli: &Cli,
    store: &S,
    name: &str,
    args: &WorkerArgs,
) -> Result<Stop, Failure> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        match serve(cli, store.clone(), name, args).await {
            // The spec in effect changed: join again under the new one.
            Ok(None) => {}
            Ok(Some(stop)) => return Ok(stop),
            Err(failure) if database_failed(&failure) && started.elapsed() < RETRY_FOR => {
                eprintln!(
                    "worker: {name}: the database failed ({:#}); joining again in {} ms",
                    failure.error,
                    delay.as_millis()
                );
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(8));
            }
            Err(failure) => return Err(failure),
        }
    }
}

/// True when a failure came from the database driver (connection lost, server
/// restarting), not from the campaign or the ledger.
fn database_failed(failure: &Failure) -> bool {
    failure.error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<firebreak_store::StoreError>(),
            Some(firebreak_store::StoreError::Database(_))
        ) || matches!(
            cause.downcast_ref::<firebreak_runner::RunnerError>(),
            Some(firebreak_runner::RunnerError::Store(
                firebreak_store::StoreError::Database(_)
            ))
        )
    })
}

/// Runs one campaign's trials as a joined worker until it stops; `None` when
/// the spec in effect changed under it (an approved request), to join again.
async fn serve<S: Store + Clone>(
    cli: &Cli,
    store: S,
    name: &str,
    args: &WorkerArgs,
) -> Result<Option<Stop>, Failure> {
    let actor = Principal::Local {
        user: firebreak_runner::os_user(),
    };
    let campaign = Arc::new(Campaign::join(store, name, actor, args.lease, args.slots).await?);
    // Trial commands run relative to the folder the worker starts in, as `run`
    // runs them relative to its spec's folder: start workers there.
    let spec_dir = std::env::current_dir().unwrap_or_else(|_| Path::new(".").to_path_buf());
    let executor = Executor::from_spec(campaign.spec(), &spec_dir, args.trials_root.clone())?;
    if !cli.quiet {
        eprintln!(
            "worker: joined {name} as run {} ({} slot(s), lease {} s){}",
            campaign.run_id(),
            campaign.parallelism(),
            args.lease.as_secs(),
            match campaign.requeued().len() {
                0 => String::new(),
                n => format!("; re-queued {n} trial(s) whose lease ran out"),
            }
        );
    }
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<RunEvent>();
    let (interrupt_tx, interrupt_rx) = watch::channel(false);
    let signals = crate::commands::interrupt_on_signals();
    let runner = tokio::spawn(firebreak_runner::run(
        campaign.clone(),
        executor,
        events_tx,
        interrupt_rx,
    ));
    // Ctrl-C, SIGTERM (Slurm's `scancel`), or idleness stop the worker; its
    // running trials go back to the queue.
    let mut running = 0u64;
    let mut finished = 0u64;
    let mut idle_since = Some(Instant::now());
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            event = events_rx.recv() => match event {
                Some(RunEvent::Started { .. }) => {
                    running += 1;
                    idle_since = None;
                }
                Some(RunEvent::Finished { number, state, value }) => {
                    running = running.saturating_sub(1);
                    finished += 1;
                    if running == 0 {
                        idle_since = Some(Instant::now());
                    }
                    if !cli.quiet {
                        let value = value.map_or(String::new(), |v| format!(" {v}"));
                        eprintln!("worker: {name} trial {number} {state}{value}");
                    }
                }
                Some(_) => {}
                None => break,
            },
            _ = tick.tick() => {
                let idle = idle_since.zip(args.idle_exit).is_some_and(|(since, limit)| since.elapsed() >= limit);
                if *signals.borrow() || idle {
                    let _ = interrupt_tx.send(true);
                }
            }
        }
    }
    let result = runner
        .await
        .map_err(|e| anyhow::anyhow!("the worker panicked: {e}"))?;
    let campaign =
        Arc::into_inner(campaign).ok_or_else(|| anyhow::anyhow!("the campaign is still in use"))?;
    let summary = match result {
        Err(firebreak_runner::RunnerError::SpecChanged(_)) => {
            campaign.close("spec changed").await?;
            if !cli.quiet {
                eprintln!(
                    "worker: {name}: the spec in effect changed (an approved request); joining again"
                );
            }
            return Ok(None);
        }
        other => other?,
    };
    let idle = !*signals.borrow() && matches!(summary.stop, Stop::Interrupted { .. });
    let reason = match &summary.stop {
        Stop::Done => "done".to_string(),
        Stop::Limit(reason) => format!("limit: {reason}"),
        Stop::Firebreak { requests, .. } => format!("firebreak: {}", requests.join(", ")),
        Stop::Interrupted { .. } if idle => "idle".to_string(),
        Stop::Interrupted { .. } => "interrupted".to_string(),
    };
    campaign.close(&reason).await?;
    let c = summary.counts;
    println!(
        "campaign {name}: {} finished of {} ({} complete, {} pruned, {} failed); {finished} by this worker",
        c.finished(),
        campaign.spec().spec.search.n_trials,
        c.complete,
        c.pruned,
        c.failed,
    );
    // An idle exit is a clean end: another worker has the rest.
    Ok(Some(if idle { Stop::Done } else { summary.stop }))
}

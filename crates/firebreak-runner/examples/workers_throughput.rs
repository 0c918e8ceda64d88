//! Many worker processes on one store, for `bench/workers.sh` (which compares
//! them with Optuna's RDB storage on the same PostgreSQL). Two modes:
//!
//! - `workers URL N_TRIALS PROCS`: this process creates campaign `workers`
//!   (random sampler, `x` uniform in [-10, 10], minimise x², `parallelism = 1`,
//!   `n_trials = N_TRIALS`) through `Campaign::open` and closes it; then PROCS
//!   child processes of this binary each `Campaign::join` it (a 60 s lease,
//!   renewed every 20 s by `keep_lease`, as `firebreak worker` does) and loop
//!   ask → y = x² → tell until the store answers `NoSlot` (every slot started).
//!   Every check a joined worker makes is on: the ledger verified at join, each
//!   proposal validated and authorised by Cedar, each start authorised and
//!   checked against `n_trials` in the store's own transaction, every decision
//!   in the ledger, every append under the ledger's advisory lock.
//! - `claims URL N PROCS`: the bare lease claim. This process creates the
//!   campaign the same way and enqueues N trials (`Store::enqueue`, untimed);
//!   PROCS child processes each record a run and call `Store::claim_queued`
//!   (with the `n_trials` slot check, no policy decision) until it answers
//!   `None`.
//!
//! The clock runs from the first child's start to the last child's exit, so it
//! includes process start, connecting and joining. Each child prints the trial
//! numbers it finished (or claimed); `duplicates` counts numbers reported twice,
//! numbers in `0..N` missing from the store's complete (or running) trials, and
//! trials beyond N: it must be 0. `ledger_verified` is `verify_ledger` (the full
//! audit: chain, replay, state) on the store afterwards. Prints one JSON object.
//!
//! Run: cargo run --release -p firebreak-runner --example workers_throughput -- workers postgres://postgres@127.0.0.1:5432/bench 20000 4

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use firebreak_core::{ParamValue, Params, Rng, TrialState};
use firebreak_govern::Principal;
use firebreak_runner::{Campaign, Outcome, RunnerError};
use firebreak_spec::CampaignSpec;
use firebreak_store::{AnyStore, NewTrial, RunInfo, Start, Store, StoreError};
use serde_json::json;

const NAME: &str = "workers";
const LEASE: Duration = Duration::from_secs(60);
const USAGE: &str = "usage: workers_throughput workers|claims URL N_TRIALS PROCS";

type Error = Box<dyn std::error::Error + Send + Sync>;

fn spec(n_trials: u64) -> Result<CampaignSpec, Error> {
    let text = format!(
        r#"
[campaign]
name = "{NAME}"
[objective]
metric = "y"
direction = "minimize"
[space]
x = {{ type = "float", low = -10.0, high = 10.0 }}
[search]
sampler = "random"
n_trials = {n_trials}
parallelism = 1
[task]
kind = "command"
command = ["true"]
"#
    );
    Ok(CampaignSpec::parse(&text, NAME)?)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).ok_or_else(|| Error::from(USAGE));
    match arg(1)?.as_str() {
        "child-workers" => child_workers(arg(2)?).await,
        "child-claims" => child_claims(arg(2)?, arg(3)?.parse()?).await,
        mode @ ("workers" | "claims") => {
            parent(mode, arg(2)?, arg(3)?.parse()?, arg(4)?.parse()?).await
        }
        _ => Err(USAGE.into()),
    }
}

/// Creates the campaign, runs PROCS children, checks the store, prints the result.
async fn parent(mode: &str, url: &str, n: u64, procs: u32) -> Result<(), Error> {
    let store = AnyStore::open(url).await?;
    let campaign = Campaign::open(store.clone(), spec(n)?).await?;
    campaign.close("created").await?;
    drop(campaign); // releases the run lock: only joined workers from here on
    let mut child_args = vec![format!("child-{mode}"), url.to_string()];
    if mode == "claims" {
        let mut rng = Rng::new(7);
        for _ in 0..n {
            let mut params = Params::new();
            params.insert("x".into(), ParamValue::Float(rng.next_f64() * 20.0 - 10.0));
            let trial = NewTrial {
                params,
                proposer: "bench".into(),
                rationale: String::new(),
                retry_of: None,
                priority: 0,
                number: None,
                policy: None,
                exploit: None,
                state: None,
            };
            store.enqueue(NAME, &trial).await?;
        }
        child_args.push(n.to_string());
    }
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .args(&child_args)
                .stdout(Stdio::piped())
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut reported: BTreeMap<u64, u64> = BTreeMap::new();
    let mut per_child = Vec::new();
    for child in children {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            return Err(format!("a child exited with {}", out.status).into());
        }
        let numbers: Vec<u64> = String::from_utf8(out.stdout)?
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()?;
        per_child.push(numbers.len());
        for number in numbers {
            *reported.entry(number).or_default() += 1;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // Checked after the clock stops.
    let done = if mode == "claims" {
        TrialState::Running
    } else {
        TrialState::Complete
    };
    let trials = store.trials(NAME).await?;
    let in_store: Vec<u64> = trials
        .iter()
        .filter(|t| t.state == done)
        .map(|t| t.number)
        .collect();
    let twice: u64 = reported.values().map(|c| c - 1).sum();
    let missing = (0..n)
        .filter(|k| in_store.binary_search(k).is_err() || !reported.contains_key(k))
        .count() as u64;
    let extra = (trials.len() as u64).saturating_sub(n);
    let duplicates = twice + missing + extra;
    let ledger_verified = match firebreak_runner::verify_ledger(&store).await {
        Ok(_) => json!(true),
        Err(e) => json!(e.to_string()),
    };
    let settings: BTreeMap<String, String> = match &store {
        AnyStore::Postgres(pg) => pg.settings().await?.into_iter().collect(),
        AnyStore::Sqlite(sqlite) => sqlite.pragmas().await?.into_iter().collect(),
    };
    let rate = n as f64 / seconds;
    let mut result = json!({
        "mode": mode,
        "trials": n,
        "procs": procs,
        "seconds": (seconds * 1e4).round() / 1e4,
        "duplicates": duplicates,
        "per_process": per_child,
        "ledger_entries": store.ledger_size().await?,
        "ledger_verified": ledger_verified,
        "settings": settings,
    });
    let key = if mode == "claims" {
        "claims_per_s"
    } else {
        "trials_per_s"
    };
    result[key] = json!((rate * 10.0).round() / 10.0);
    #[allow(clippy::print_stdout)]
    {
        println!("{result}");
    }
    Ok(())
}

/// A joined worker: ask → y = x² → tell until every slot is started; prints
/// the numbers it finished.
async fn child_workers(url: &str) -> Result<(), Error> {
    let store = AnyStore::open(url).await?;
    let actor = Principal::Local {
        user: firebreak_runner::os_user(),
    };
    let campaign = Arc::new(Campaign::join(store, NAME, actor, LEASE, Some(1)).await?);
    // The lease's heartbeat, as `firebreak worker` keeps it (every third of it).
    let heartbeat = {
        let campaign = campaign.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(LEASE / 3).await;
                let _ = campaign.keep_lease().await;
            }
        })
    };
    let mut finished = Vec::new();
    loop {
        let trial = match campaign.ask(0).await {
            Ok(trial) => trial,
            Err(RunnerError::Store(StoreError::NoSlot)) => break,
            Err(e) => return Err(e.into()),
        };
        let x = trial.params["x"].as_f64().unwrap_or_default();
        campaign
            .tell(
                trial.number,
                Outcome::complete([("y".to_string(), x * x)].into()),
            )
            .await?;
        finished.push(trial.number);
    }
    heartbeat.abort();
    campaign.close("done").await?;
    print_numbers(&finished);
    Ok(())
}

/// A bare claimer: records a run, then claims queued trials until none is left;
/// prints the numbers it claimed.
async fn child_claims(url: &str, n: u64) -> Result<(), Error> {
    let store = AnyStore::open(url).await?;
    let info = RunInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        os_user: firebreak_runner::os_user(),
        host: firebreak_runner::host_name(),
        pid: std::process::id(),
        sandbox: None,
        lease_ms: Some(LEASE.as_millis() as u64),
    };
    let run = store.start_run(NAME, &info).await?;
    let start = Start {
        run,
        worker: 0,
        policy: None,
        slots: Some(n),
    };
    let mut claimed = Vec::new();
    loop {
        match store.claim_queued(NAME, &start).await {
            Ok(Some(trial)) => claimed.push(trial.number),
            Ok(None) | Err(StoreError::NoSlot) => break,
            Err(e) => return Err(e.into()),
        }
    }
    store.end_run(NAME, run, "done").await?;
    print_numbers(&claimed);
    Ok(())
}

fn print_numbers(numbers: &[u64]) {
    let text: Vec<String> = numbers.iter().map(u64::to_string).collect();
    #[allow(clippy::print_stdout)]
    {
        println!("{}", text.join(" "));
    }
}

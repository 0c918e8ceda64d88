//! Throughput of the engine's spine, for `bench/spine.sh` (which compares it with
//! Optuna). Three modes:
//!
//! - `asktell`: a trivial in-process objective through the ask/tell API, random
//!   sampler, SQLite store; every `tell` is committed before that worker's next `ask`.
//!   Every check `firebreak run` makes is on: the ledger verified at open, each
//!   proposal validated against the space and authorised by Cedar with its own
//!   context (proposer and parameters), each start authorised, every decision in
//!   the ledger. The database is left in place (`bench/ledger.sh` audits it).
//!   `FIREBREAK_SQLITE_SYNCHRONOUS=FULL` syncs every commit.
//! - `command`: the full runner on a command task that prints its result at once.
//! - `bare`: a plain spawn-and-wait loop of the same command, the floor for `command`.
//!
//! Run: cargo run --release -p firebreak-runner --example throughput -- asktell 20000 2 /tmp/t.db
//! Prints one JSON object.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use firebreak_runner::{Campaign, Executor, Outcome};
use firebreak_spec::CampaignSpec;
use firebreak_store::SqliteStore;

/// Trial programs that print `{"y": 1}` at once, written without braces (which
/// would be placeholders in a spec): a minimal one and a Python one.
const PRINTF: [&str; 3] = ["printf", "\\173\"y\": 1\\175\\n", ""];
const PYTHON: [&str; 3] = ["python3", "-c", "print(chr(123) + '\"y\": 1' + chr(125))"];

fn spec(n_trials: u64, parallelism: u32, program: &[&str]) -> String {
    let command: Vec<String> = program
        .iter()
        .filter(|a| !a.is_empty())
        .map(|a| format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!(
        r#"
[campaign]
name = "throughput"
[objective]
metric = "y"
direction = "minimize"
[space]
x = {{ type = "float", low = -10.0, high = 10.0 }}
[search]
sampler = "random"
n_trials = {n_trials}
parallelism = {parallelism}
[task]
kind = "command"
command = [{}]
"#,
        command.join(", ")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage =
        "usage: throughput asktell|command|bare N_TRIALS PARALLELISM DB_PATH [printf|python]";
    let (Some(mode), Some(n), Some(p), Some(db)) =
        (args.get(1), args.get(2), args.get(3), args.get(4))
    else {
        return Err(usage.into());
    };
    let program: Vec<&str> = match args.get(5).map(String::as_str) {
        None | Some("printf") => PRINTF.iter().copied().filter(|a| !a.is_empty()).collect(),
        Some("python") => PYTHON.to_vec(),
        Some(_) => return Err(usage.into()),
    };
    let n_trials: u64 = n.parse()?;
    let parallelism: u32 = p.parse()?;
    let _ = std::fs::remove_file(db);
    let url = format!("sqlite://{db}");
    let started;
    let mut pragmas = Vec::new();
    let mut ledger_entries = None;
    let mut timed = None;
    match mode.as_str() {
        "asktell" => {
            let spec = CampaignSpec::parse(&spec(n_trials, parallelism, &program), "throughput")?;
            let store = SqliteStore::open(&url).await?;
            pragmas = store.pragmas().await?;
            let campaign = Arc::new(Campaign::open(store.clone(), spec).await?);
            let taken = Arc::new(AtomicU64::new(0));
            started = Instant::now();
            let mut workers = Vec::new();
            for worker in 0..parallelism {
                let campaign = campaign.clone();
                let taken = taken.clone();
                workers.push(tokio::spawn(async move {
                    while taken.fetch_add(1, Ordering::Relaxed) < n_trials {
                        let trial = campaign.ask(worker).await?;
                        let x = trial.params["x"].as_f64().unwrap_or_default();
                        campaign
                            .tell(
                                trial.number,
                                Outcome::complete([("y".to_string(), x * x)].into()),
                            )
                            .await?;
                    }
                    Ok::<(), firebreak_runner::RunnerError>(())
                }));
            }
            for w in workers {
                w.await??;
            }
            // Counted after the clock stops.
            timed = Some(started.elapsed());
            ledger_entries = Some(store.ledger_hashes().await?.len());
        }
        "command" => {
            let spec = CampaignSpec::parse(&spec(n_trials, parallelism, &program), "throughput")?;
            let store = SqliteStore::open(&url).await?;
            pragmas = store.pragmas().await?;
            let root =
                std::env::temp_dir().join(format!("firebreak-throughput-{}", std::process::id()));
            let task = Executor::from_spec(&spec, std::path::Path::new("."), root.clone())?;
            let campaign = Arc::new(Campaign::open(store, spec).await?);
            let (events, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let (_interrupt_tx, interrupt) = tokio::sync::watch::channel(false);
            started = Instant::now();
            let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
            let summary = firebreak_runner::run(campaign, task, events, interrupt).await?;
            drain.await?;
            let _ = std::fs::remove_dir_all(root);
            if summary.counts.complete != n_trials {
                return Err(format!("only {} trials completed", summary.counts.complete).into());
            }
        }
        "bare" => {
            let taken = Arc::new(AtomicU64::new(0));
            started = Instant::now();
            let threads: Vec<_> = (0..parallelism)
                .map(|_| {
                    let taken = taken.clone();
                    let program: Vec<String> = program.iter().map(|s| s.to_string()).collect();
                    std::thread::spawn(move || {
                        while taken.fetch_add(1, Ordering::Relaxed) < n_trials {
                            let out = std::process::Command::new(&program[0])
                                .args(&program[1..])
                                .output();
                            assert!(out.is_ok_and(|o| o.status.success()));
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().map_err(|_| "a thread panicked")?;
            }
        }
        _ => return Err(usage.into()),
    }
    let seconds = timed.unwrap_or_else(|| started.elapsed()).as_secs_f64();
    let ledger_entries = ledger_entries.map_or("null".to_string(), |n| n.to_string());
    let pragmas: Vec<String> = pragmas
        .iter()
        .map(|(k, v)| format!("\"{k}\": \"{v}\""))
        .collect();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "{{\"program\": \"{}\", \"mode\": \"{mode}\", \"trials\": {n_trials}, \"parallelism\": {parallelism}, \"seconds\": {seconds:.4}, \"trials_per_second\": {:.1}, \"ledger_entries\": {ledger_entries}, \"pragmas\": {{{}}}}}",
            program[0],
            n_trials as f64 / seconds,
            pragmas.join(", ")
        );
    }
    Ok(())
}

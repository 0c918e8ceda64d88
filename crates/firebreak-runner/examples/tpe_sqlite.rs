//! TPE's overhead through the SQLite store, for `bench/tpe_overhead.sh`: the
//! same campaign as `firebreak-search`'s `tpe_overhead` example (default TPE on a
//! 10-dimensional sphere over `[-5, 5]^10`, one worker, ask-and-tell), but every
//! `ask` and `tell` goes through the ask/tell API: a committed SQLite
//! transaction with its ledger entry and governance checks.
//!
//! Prints one JSON line with the seconds each trial's ask and tell took, in trial
//! order, the objective left out.
//!
//! Run: cargo run --release -p firebreak-runner --example tpe_sqlite -- 1000 [SEED] [DB_PATH]

use std::time::Instant;

use firebreak_runner::{Campaign, Outcome};
use firebreak_spec::CampaignSpec;
use firebreak_store::SqliteStore;

fn spec(trials: usize, seed: u64) -> String {
    let space: String = (0..10)
        .map(|i| format!("x{i} = {{ type = \"float\", low = -5.0, high = 5.0 }}\n"))
        .collect();
    format!(
        "[campaign]\nname = \"tpe-overhead\"\nseed = {seed}\n\n\
         [objective]\nmetric = \"y\"\ndirection = \"minimize\"\n\n\
         [space]\n{space}\n\
         [search]\nsampler = \"tpe\"\nn_trials = {trials}\n\
         [search.sampler_options]\nscale_candidates = false\n\n\
         [task]\nkind = \"command\"\ncommand = [\"unused-by-ask-tell\"]\n"
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let trials: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let db = args
        .next()
        .unwrap_or_else(|| format!("/tmp/firebreak-tpe-sqlite-{}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let spec = CampaignSpec::parse(&spec(trials, seed), "tpe_sqlite.rs")?;
    let store = SqliteStore::open(&format!("sqlite://{db}")).await?;
    let campaign = Campaign::open(store, spec).await?;
    let mut seconds = Vec::with_capacity(trials);
    for _ in 0..trials {
        let start = Instant::now();
        let trial = campaign.ask(0).await?;
        let asked = start.elapsed();
        let y: f64 = trial
            .params
            .values()
            .filter_map(|v| v.as_f64())
            .map(|x| x * x)
            .sum();
        let told = Instant::now();
        campaign
            .tell(
                trial.number,
                Outcome::complete([("y".to_string(), y)].into()),
            )
            .await?;
        seconds.push((asked + told.elapsed()).as_secs_f64());
    }
    campaign.close("done").await?;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let line = serde_json::json!({
        "side": "firebreak-sqlite",
        "trials": trials,
        "seed": seed,
        "seconds": seconds,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{line}");
    }
    Ok(())
}

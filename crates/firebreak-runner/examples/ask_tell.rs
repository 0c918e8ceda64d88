//! The ask/tell library API: firebreak proposes, your own Rust code evaluates.
//!
//! Run: cargo run --release -p firebreak-runner --example ask_tell
//!
//! Every `ask` and `tell` is a committed SQLite transaction with its ledger entry,
//! so the loop can be killed at any point and rerun: it resumes the campaign.

use firebreak_runner::{Campaign, Outcome};
use firebreak_spec::CampaignSpec;
use firebreak_store::SqliteStore;

const SPEC: &str = r#"
[campaign]
name = "ask-tell-quadratic"
seed = 1

[objective]
metric = "loss"
direction = "minimize"

[space]
x = { type = "float", low = -5.0, high = 5.0 }
y = { type = "float", low = -5.0, high = 5.0 }

[search]
sampler = "random"
n_trials = 200

[task]
kind = "command"
command = ["unused-by-ask-tell"]
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = CampaignSpec::parse(SPEC, "ask_tell.rs")?;
    let n_trials = spec.spec.search.n_trials;
    let store = SqliteStore::open("sqlite://.firebreak/ask-tell.db").await?;
    let campaign = Campaign::open(store, spec).await?;
    while campaign.counts().await.finished() < n_trials {
        let trial = campaign.ask(0).await?;
        let x = trial.params["x"].as_f64().unwrap_or_default();
        let y = trial.params["y"].as_f64().unwrap_or_default();
        let loss = (x - 1.0).powi(2) + (y + 2.0).powi(2);
        campaign
            .tell(
                trial.number,
                Outcome::complete([("loss".to_string(), loss)].into()),
            )
            .await?;
    }
    let best = campaign
        .trials()
        .await
        .into_iter()
        .filter(|t| t.metrics.contains_key("loss"))
        .min_by(|a, b| a.metrics["loss"].total_cmp(&b.metrics["loss"]));
    if let Some(best) = best {
        #[allow(clippy::print_stdout)]
        {
            println!(
                "best trial {}: loss {:.4} at {:?}",
                best.number, best.metrics["loss"], best.params
            );
        }
    }
    campaign.close("done").await?;
    Ok(())
}

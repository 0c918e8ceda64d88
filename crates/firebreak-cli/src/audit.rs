//! Faces of `audit verify`, `audit checkpoint`, `audit proof`, `audit report`
//! and `audit export` over `firebreak_app`: they print what it answers and map
//! a failed check to exit code 4.

use std::path::Path;

use anyhow::Context;

use crate::commands::{app, sign_checkpoint};
use crate::show::pretty;
use crate::{Cli, CommandResult, Format};

pub(crate) async fn verify(
    cli: &Cli,
    campaign: Option<&str>,
    trusted: Option<&str>,
) -> CommandResult {
    let app = app(cli).await?;
    let v = app.verify(campaign, trusted).await?;
    if cli.format == Format::Json {
        println!("{}", pretty(&v));
    } else if v.ok {
        println!(
            "ok: {} entries; hash chain intact; state tables agree with the ledger; {} signed checkpoint(s) and {} published file(s) match{}{}",
            v.entries,
            v.checkpoints,
            v.published_checkpoints,
            if v.trusted {
                ", including the trusted one"
            } else {
                ""
            },
            v.campaign_entries
                .map(|n| format!(" ({n} entries of {:?})", campaign.unwrap_or_default()))
                .unwrap_or_default()
        );
        println!("root: {}", v.root);
    } else {
        println!(
            "FAILED at seq {}: {}",
            v.first_bad_seq.map_or("-".to_string(), |s| s.to_string()),
            v.reason.as_deref().unwrap_or_default()
        );
    }
    Ok(if v.ok { 0 } else { 4 })
}

pub(crate) async fn checkpoint(cli: &Cli, out: Option<&Path>) -> CommandResult {
    let app = app(cli).await?;
    let checkpoint = sign_checkpoint(&app).await?;
    let text = firebreak_app::checkpoint_text(&checkpoint);
    if let Some(path) = out {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    println!("{text}");
    Ok(0)
}

pub(crate) async fn proof(cli: &Cli, seq: u64) -> CommandResult {
    let app = app(cli).await?;
    let proof = app.prove(seq).await?;
    println!("{}", pretty(&proof));
    Ok(if proof.verified { 0 } else { 4 })
}

pub(crate) async fn report(cli: &Cli, campaign: &str) -> CommandResult {
    let app = app(cli).await?;
    print!("{}", app.report(campaign).await?);
    Ok(0)
}

pub(crate) async fn export(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let app = app(cli).await?;
    for line in app.export(campaign).await?.lines() {
        println!("{line}");
    }
    Ok(0)
}

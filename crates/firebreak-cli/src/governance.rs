//! Faces of `requests`, `approve` and `reject` over `firebreak_app`: the rules
//! of deciding live there; this prints the list and the outcome.

use anyhow::anyhow;
use firebreak_app::{Signer, request_json};
use firebreak_ledger::{RequestState, Verdict};
use serde_json::Value;

use crate::commands::{app, warn_unpublished};
use crate::output::print_rows;
use crate::{Cli, CommandResult, Decider, Failure};

pub(crate) async fn requests(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let app = app(cli).await?;
    let list = app.requests(campaign).await?;
    let mut rows = vec![
        [
            "id",
            "campaign",
            "kind",
            "state",
            "requested_by",
            "approvals",
            "expires_at",
            "reason",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &list {
        rows.push(vec![
            r.body.id.clone(),
            r.body.campaign.clone(),
            r.body.kind.to_string(),
            r.state.to_string(),
            r.body.requested_by.clone(),
            r.approvals().join(" "),
            r.body.expires_at.clone(),
            r.body.reason.clone(),
        ]);
    }
    let json = Value::Array(list.iter().map(request_json).collect());
    print_rows(cli.format, &rows, &json);
    Ok(0)
}

/// `approve` and `reject`: a decision signed here with the decider's key, or a
/// signature made elsewhere (`--as NAME --signature B64`).
pub(crate) async fn decide(
    cli: &Cli,
    decider: &Decider,
    verdict: Verdict,
    reason: &str,
) -> CommandResult {
    let id = decider.id.as_str();
    let app = app(cli).await?;
    // clap requires --key unless --signature, which requires --as.
    let signer = match (&decider.key, &decider.as_name, &decider.signature) {
        (_, Some(name), Some(signature)) => Signer::Signature {
            name: name.clone(),
            signature: signature.clone(),
        },
        (Some(path), name, _) => Signer::KeyFile {
            path: path.clone(),
            name: name.clone(),
        },
        (None, _, _) => {
            return Err(Failure::new(
                2,
                anyhow!("give --key FILE, or --as NAME --signature B64"),
            ));
        }
    };
    let decided = app.decide(id, &signer, verdict, reason).await?;
    if let Some(signed) = &decided.checkpoint {
        warn_unpublished(signed);
    }
    if !cli.quiet {
        match decided.closed {
            Some(RequestState::Approved) => println!(
                "request {id} approved ({}); the change is in effect: run the campaign again to continue",
                decided.request.approvals().join(", ")
            ),
            Some(_) => println!("request {id} rejected by {}", decided.by),
            None => println!(
                "{} recorded on request {id}: {} of {} approvals",
                verdict.as_str(),
                decided.request.approvals().len(),
                decided.quorum
            ),
        }
        if let Some(signed) = &decided.checkpoint {
            println!(
                "checkpoint: tree size {}, root {}",
                signed.checkpoint.tree_size, signed.checkpoint.root
            );
        }
    }
    Ok(0)
}

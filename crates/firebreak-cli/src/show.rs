//! Faces of the reading commands and `enqueue`: each parses its arguments,
//! calls one `firebreak_app` operation and prints the answer as a table, JSON
//! or CSV (or the text `status` and `explain` show).

use anyhow::anyhow;
use firebreak_core::Params;
use firebreak_govern::Principal;
use serde_json::{Value, json};

use crate::commands::{app, launched};
use crate::output::{number, param, print_rows, trial_rows};
use crate::{Cli, CommandResult, Failure, Format};

/// Pretty JSON of a serialisable answer.
pub(crate) fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

pub(crate) async fn campaigns(cli: &Cli) -> CommandResult {
    let app = app(cli).await?;
    let list = app.campaigns().await?;
    let mut rows = vec![
        [
            "campaign", "state", "finished", "n_trials", "complete", "pruned", "failed", "created",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &list {
        rows.push(vec![
            c.name.clone(),
            c.state.clone(),
            c.counts.finished().to_string(),
            c.n_trials.to_string(),
            c.counts.complete.to_string(),
            c.counts.pruned.to_string(),
            c.counts.failed.to_string(),
            c.created_at.clone(),
        ]);
    }
    print_rows(cli.format, &rows, &json!(list));
    Ok(0)
}

pub(crate) async fn status(cli: &Cli, campaign: Option<&str>) -> CommandResult {
    let Some(name) = campaign else {
        return campaigns(cli).await;
    };
    let app = app(cli).await?;
    let status = app.status(name).await?;
    if cli.format == Format::Json {
        println!("{}", pretty(&status));
        return Ok(0);
    }
    println!("campaign {name}: {}", status.state);
    if let Some((job_id, tasks)) = launched(app.store(), name) {
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
    let counts = status.counts;
    println!(
        "progress: {} of {} finished ({} complete, {} pruned, {} failed), {} running, {} queued",
        counts.finished(),
        status.n_trials,
        counts.complete,
        counts.pruned,
        counts.failed,
        counts.running,
        counts.queued
    );
    for t in &status.best {
        let metrics: Vec<String> = t
            .metrics
            .iter()
            .map(|(k, v)| format!("{k}={}", number(*v)))
            .collect();
        println!("best so far: trial {} · {}", t.number, metrics.join(" "));
    }
    if let Some(g) = &status.generations {
        let promoted = match &g["last_promoted"] {
            Value::Null => "none promoted yet".to_string(),
            p => format!(
                "last promoted champion: trial {} (generation {}, {} = {})",
                p["champion"],
                p["generation"],
                status.metric,
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
    if let Some(tokens) = status.llm_tokens {
        let limit = status
            .max_llm_tokens
            .map(|max| format!(" of max_llm_tokens = {max}"))
            .unwrap_or_default();
        println!("language-model tokens: {tokens}{limit}");
    }
    Ok(0)
}

pub(crate) async fn trials(cli: &Cli, campaign: &str, generation: Option<u32>) -> CommandResult {
    let app = app(cli).await?;
    let trials = app.trials(campaign, generation).await?;
    print_rows(
        cli.format,
        &trial_rows(&trials.trials, &trials.objectives, cli.format),
        &json!(trials),
    );
    Ok(0)
}

pub(crate) async fn best(cli: &Cli, campaign: &str, generation: Option<u32>) -> CommandResult {
    let app = app(cli).await?;
    let best = app.best(campaign, generation).await?;
    print_rows(
        cli.format,
        &trial_rows(&best.0.trials, &best.0.objectives, cli.format),
        &json!(best),
    );
    Ok(0)
}

pub(crate) async fn logs(cli: &Cli, campaign: &str, number: u64) -> CommandResult {
    let app = app(cli).await?;
    match app.log(campaign, number).await? {
        Some(text) => print!("{text}"),
        None => eprintln!("trial {number} has no stored log yet (it has not finished)"),
    }
    Ok(0)
}

pub(crate) async fn enqueue(cli: &Cli, campaign: &str, text: &str) -> CommandResult {
    let app = app(cli).await?;
    app.spec(campaign).await?;
    let raw: Params = serde_json::from_str(text).map_err(|e| {
        Failure::new(
            2,
            anyhow!("--params is not a JSON object of parameter values: {e}\nhint: e.g. --params '{{\"lr\": 0.01, \"layers\": 2}}'"),
        )
    })?;
    let person = Principal::Local {
        user: firebreak_runner::os_user(),
    };
    let number = app.enqueue(campaign, &person, raw).await?;
    println!("queued trial {number} of {campaign}; it runs before new proposals");
    Ok(0)
}

pub(crate) async fn explain(cli: &Cli, campaign: &str, number: u64) -> CommandResult {
    let app = app(cli).await?;
    let explained = app.explain(campaign, number).await?;
    let proof = &explained.proposal_inclusion;
    let verified = proof.verified;
    if cli.format == Format::Json {
        println!("{}", pretty(&explained));
        return Ok(if verified { 0 } else { 4 });
    }
    let params: Vec<String> = explained
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", param(v)))
        .collect();
    println!(
        "trial {number} of {campaign}: {} · {}",
        explained.state,
        params.join(" ")
    );
    println!("proposed by: {}", explained.proposer);
    println!("why: {}", explained.rationale);
    if let Some(origin) = explained.retry_of {
        println!("retry of: trial {origin}");
    }
    println!("allowed by: {}", explained.policy);
    let agent = &explained.agent;
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
    for h in &explained.ledger {
        println!(
            "  seq {:<6} {:<16} {}",
            h["seq"],
            h["kind"].as_str().unwrap_or_default(),
            h["at"].as_str().unwrap_or_default()
        );
    }
    println!(
        "inclusion of seq {} in the tree of {} entries (root {}), against {}: {}",
        proof.seq,
        proof.tree_size,
        proof.root,
        proof.against,
        if verified { "verified" } else { "NOT verified" }
    );
    Ok(if verified { 0 } else { 4 })
}

/// Prints the campaign's lineage as a table or JSON.
pub(crate) async fn lineage(cli: &Cli, campaign: &str) -> CommandResult {
    let app = app(cli).await?;
    let lineage = app.lineage(campaign).await?;
    let mut rows = vec![
        [
            "generation",
            "state",
            "trials",
            "from",
            "teacher",
            "champion",
            "value",
            "gates",
            "decided by",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let text = |v: &Value| match v {
        Value::Null => String::new(),
        Value::Number(n) => n.as_f64().map(number).unwrap_or_default(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for g in &lineage.generations {
        let gates = match g["gates"]["passed"].as_bool() {
            None => String::new(),
            Some(true) => "passed".to_string(),
            Some(false) => "failed".to_string(),
        };
        let decided = match (&g["request"], g["decided_by"].as_array()) {
            (Value::String(id), Some(names)) if !names.is_empty() => {
                let names: Vec<String> = names.iter().map(text).collect();
                format!("{} ({id})", names.join(", "))
            }
            (Value::String(id), _) => id.clone(),
            _ if g["promoted"].is_boolean() => "gates".to_string(),
            _ => String::new(),
        };
        rows.push(vec![
            text(&g["generation"]),
            text(&g["state"]),
            format!("{} of {}", text(&g["finished"]), text(&g["trials"])),
            text(&g["from"]),
            text(&g["teacher"]),
            text(&g["champion"]),
            text(&g["value"]),
            gates,
            decided,
        ]);
    }
    print_rows(cli.format, &rows, &json!(lineage));
    Ok(0)
}

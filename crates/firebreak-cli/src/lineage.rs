//! `lineage CAMPAIGN`: a campaign's generations as its ledger records them —
//! each one's space, where it started from, its teacher, its trials, its
//! champion with the gate results, and whether (and on whose decision) the
//! champion was promoted. Read from the verified ledger, never from columns.

use anyhow::anyhow;
use firebreak_core::Trial;
use firebreak_ledger::Request;
use firebreak_store::Store;
use serde_json::{Value, json};

use crate::commands::{open, stored_spec};
use crate::output::{number, print_rows};
use crate::{Cli, CommandResult, Failure};

/// One generation as the ledger says it went.
fn generation_json(
    started: &Value,
    gated: Option<&Value>,
    closed: Option<&Value>,
    requests: &[Request],
    trials: &[Trial],
) -> Value {
    let generation = started["generation"].as_u64().unwrap_or_default();
    let request = closed
        .and_then(|c| c["request"].as_str())
        .and_then(|id| requests.iter().find(|r| r.body.id == id));
    let decided_by: Vec<&str> = request
        .map(|r| r.decisions.iter().map(|d| d.by.as_str()).collect())
        .unwrap_or_default();
    let mine: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.generation.map(u64::from) == Some(generation))
        .collect();
    let state = match closed {
        None => "open",
        Some(c) if c["promoted"] == true => "promoted",
        Some(_) => "not promoted",
    };
    json!({
        "generation": generation,
        "state": state,
        "space": started["space"],
        "from": started["from"],
        "teacher": started["teacher"],
        "parent": started["parent"].as_bool().unwrap_or(false),
        "trials": mine.len(),
        "finished": mine.iter().filter(|t| t.state.is_finished()).count(),
        "champion": gated.map_or(Value::Null, |g| g["champion"].clone()),
        "value": gated.map_or(Value::Null, |g| g["value"].clone()),
        "previous": gated.map_or(Value::Null, |g| g["previous"].clone()),
        "gates": gated.map_or(Value::Null, |g| json!({
            "passed": g["passed"],
            "reevals": g["reevals"],
            "reasons": g["reasons"],
        })),
        "promoted": closed.map_or(Value::Null, |c| c["promoted"].clone()),
        "request": closed.map_or(Value::Null, |c| c["request"].clone()),
        "decided_by": decided_by,
        "reason": closed.map_or(Value::Null, |c| c["reason"].clone()),
        "cpu_seconds": mine.iter().filter_map(|t| t.cpu_seconds).sum::<f64>(),
    })
}

/// Each generation of `campaign` as its ledger entries (`rows`) record it.
pub fn generations(
    rows: &[firebreak_ledger::Entry],
    campaign: &str,
    requests: &[Request],
    trials: &[Trial],
) -> Vec<Value> {
    let events: Vec<(String, Value)> = rows
        .iter()
        .filter(|e| e.campaign == campaign && e.kind.starts_with("generation_"))
        .filter_map(|e| {
            let payload: Value = serde_json::from_str(&e.payload).ok()?;
            Some((e.kind.clone(), payload["data"].clone()))
        })
        .collect();
    let of = |kind: &str, generation: &Value| {
        events
            .iter()
            .rev()
            .find(|(k, d)| k == kind && &d["generation"] == generation)
            .map(|(_, d)| d)
    };
    events
        .iter()
        .filter(|(k, _)| k == "generation_started")
        .map(|(_, started)| {
            let g = &started["generation"];
            generation_json(
                started,
                of("generation_gated", g),
                of("generation_closed", g),
                requests,
                trials,
            )
        })
        .collect()
}

/// The `## Generations` section of `audit report`: each generation's champion,
/// gate verdicts and promotion, with who decided it; empty without generations.
pub fn report_section(generations: &[Value]) -> String {
    use std::fmt::Write as _;
    if generations.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "## Generations\n\n| generation | state | from | teacher | champion | value | gates | promotion |\n|---|---|---|---|---|---|---|---|\n",
    );
    let text = |v: &Value| match v {
        Value::Null => "—".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for g in generations {
        let gates = g["gates"]["reasons"]
            .as_array()
            .map(|r| r.iter().map(text).collect::<Vec<_>>().join("; "))
            .unwrap_or_default();
        let decided = g["decided_by"]
            .as_array()
            .map(|n| n.iter().map(text).collect::<Vec<_>>().join(", "))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {}{} |",
            text(&g["generation"]),
            text(&g["state"]),
            text(&g["from"]),
            text(&g["teacher"]),
            text(&g["champion"]),
            text(&g["value"]),
            gates.replace('|', "/"),
            text(&g["reason"]).replace('|', "/"),
            if decided.is_empty() {
                String::new()
            } else {
                format!(" (decided by {decided})")
            }
        );
    }
    out.push('\n');
    out
}

/// Prints the campaign's lineage as a table or JSON.
pub async fn lineage(cli: &Cli, campaign: &str) -> CommandResult {
    let store = open(cli).await?;
    let spec = stored_spec(&store, campaign).await?;
    if spec.spec.generations.is_none() {
        return Err(Failure::new(
            2,
            anyhow!(
                "campaign {campaign} has no [generations]; its lineage is its trials' retry links"
            ),
        ));
    }
    // The ledger is checked first: a lineage is only worth what the record is.
    firebreak_runner::verify_ledger(&store).await?;
    let ledger = store.ledger().await?;
    let requests = store.requests(Some(campaign)).await?;
    let trials = store.trials(campaign).await?;
    let generations = generations(&ledger, campaign, &requests, &trials);
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
    for g in &generations {
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
    let json = json!({
        "campaign": campaign,
        "generations": generations,
    });
    print_rows(cli.format, &rows, &json);
    Ok(0)
}

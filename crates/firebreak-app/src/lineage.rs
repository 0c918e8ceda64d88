//! A campaign's lineage: its generations as its ledger records them — each
//! one's space, where it started from, its teacher, its trials, its champion
//! with the gate results, and whether (and on whose decision) the champion was
//! promoted. Read from the verified ledger, never from columns.

use firebreak_core::Trial;
use firebreak_ledger::{Entry, Request};
use firebreak_store::Store;
use serde::Serialize;
use serde_json::{Value, json};

use crate::{App, AppError};

/// A campaign's generations, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    /// The campaign's name.
    pub campaign: String,
    /// One object per generation: `generation`, `state`, `space`, `from`,
    /// `teacher`, `parent`, `trials`, `finished`, `champion`, `value`,
    /// `previous`, `gates`, `promoted`, `request`, `decided_by`, `reason`,
    /// `cpu_seconds`.
    pub generations: Vec<Value>,
}

impl<S: Store> App<S> {
    /// The generations of `campaign` (an error for one without
    /// `[generations]`), after the ledger verifies: a lineage is only worth
    /// what the record is.
    pub async fn lineage(&self, campaign: &str) -> Result<Lineage, AppError> {
        let spec = self.spec(campaign).await?;
        if spec.spec.generations.is_none() {
            return Err(AppError::Invalid(format!(
                "campaign {campaign} has no [generations]; its lineage is its trials' retry links"
            )));
        }
        firebreak_runner::verify_ledger(&self.store).await?;
        let ledger = self.store.ledger().await?;
        let requests = self.store.requests(Some(campaign)).await?;
        let trials = self.store.trials(campaign).await?;
        Ok(Lineage {
            campaign: campaign.to_string(),
            generations: generations(&ledger, campaign, &requests, &trials),
        })
    }
}

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
pub(crate) fn generations(
    rows: &[Entry],
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
pub(crate) fn report_section(generations: &[Value]) -> String {
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

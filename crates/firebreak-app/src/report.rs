//! `audit report`: a Markdown report of one campaign for auditors — its spec,
//! the ledger's verification, governance (constraint history, firebreaks with
//! who decided them, tripwires fired, refused actions), generations, budgets
//! used, runs, proposals per proposer, re-queues, the champion and the signed
//! checkpoints.

use std::fmt::Write as _;

use firebreak_core::format_rfc3339;
use firebreak_ledger::{Entry, Request, RequestKind, audit};
use firebreak_spec::CampaignSpec;
use firebreak_store::{Store, StoreError};
use serde_json::Value;

use crate::format::format_number;
use crate::{App, AppError};

/// Objectives in words: `loss (minimize), accuracy (maximize)`.
pub(crate) fn objectives_text(objectives: &firebreak_core::Objectives) -> String {
    objectives
        .metrics
        .iter()
        .zip(&objectives.directions)
        .map(|(m, d)| format!("{m} ({})", format!("{d:?}").to_lowercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ledger's verification, in words.
pub(crate) fn verdict(rows: &[Entry], state: &firebreak_ledger::StateSnapshot) -> String {
    match audit(rows, state) {
        Ok(replayed) => format!(
            "passed ({} entries; chain, canonical form, governance rules and state agree)",
            replayed.entries
        ),
        Err(v) => format!(
            "**FAILED** at seq {}: {}",
            v.seq.map_or("-".into(), |s| s.to_string()),
            v.reason
        ),
    }
}

impl<S: Store> App<S> {
    /// The Markdown audit report of `campaign`: its spec, verification, governance
    /// (constraint history, firebreaks, tripwires, refusals), generations,
    /// budgets used, runs, proposals per proposer, re-queues, champion and
    /// signed checkpoints.
    pub async fn report(&self, campaign: &str) -> Result<String, AppError> {
        let store = &self.store;
        let record = store
            .campaign(campaign)
            .await?
            .ok_or_else(|| StoreError::NoCampaign(campaign.to_string()))?;
        if record.spec["kind"] == "optuna" {
            return self.report_optuna(&record).await;
        }
        let spec = CampaignSpec::from_canonical(&record.spec, campaign)?;
        let trials = store.trials(campaign).await?;
        let runs = store.runs(campaign).await?;
        let (rows, state) = store.ledger_and_snapshot().await?;
        let verdict = verdict(&rows, &state);
        let mut out = String::new();
        let c = &spec.spec.constraints;
        // `+ 0.0` turns the empty sum's -0.0 into 0.0.
        let cpu: f64 = trials.iter().filter_map(|t| t.cpu_seconds).sum::<f64>() + 0.0;
        let wall: f64 = runs
            .iter()
            .map(|r| (r.ended_at.unwrap_or(r.heartbeat_at) - r.started_at).max(0) as f64 / 1000.0)
            .sum();
        let limit = |v: Option<String>| v.unwrap_or_else(|| "no limit".into());
        let _ = writeln!(out, "# Audit report: campaign `{campaign}`\n");
        let _ = writeln!(
            out,
            "- created {} with spec hash `{}`",
            format_rfc3339(record.created_at),
            record.spec_hash
        );
        let _ = writeln!(out, "- objective: {}", objectives_text(&spec.objectives));
        let _ = writeln!(
            out,
            "- proposer `{}`, scheduler `{}`, n_trials {}, parallelism {}",
            spec.spec.search.sampler,
            spec.spec.search.scheduler,
            spec.spec.search.n_trials,
            spec.spec.search.parallelism
        );
        let _ = writeln!(out, "- ledger verification: {verdict}\n");
        let requests = store.requests(Some(campaign)).await?;
        out.push_str(&report_sections(&rows, campaign, &requests));
        out.push_str(&crate::lineage::report_section(
            &crate::lineage::generations(&rows, campaign, &requests, &trials),
        ));
        let _ = writeln!(out, "## Budgets\n\n| limit | set | used |\n|---|---|---|");
        let _ = writeln!(
            out,
            "| trials | max_trials {} | {} finished |",
            limit(c.max_trials.map(|m| m.to_string())),
            trials.iter().filter(|t| t.state.is_finished()).count()
        );
        let _ = writeln!(
            out,
            "| wall time | {} | {:.1} s over {} runs |",
            limit(c.max_wall_time.map(|d| d.to_string())),
            wall,
            runs.len()
        );
        let _ = writeln!(
            out,
            "| CPU time | {} | {cpu:.1} s |",
            limit(c.max_cpu_time.map(|d| d.to_string()))
        );
        let _ = writeln!(
            out,
            "| energy | {} | {:.6} kWh at {} W per core |\n",
            limit(c.max_energy_kwh.map(|e| format!("{e} kWh"))),
            cpu * c.watts_per_core / 3.6e6,
            c.watts_per_core
        );
        let _ = writeln!(
            out,
            "## Runs\n\n| run | by | host | pid | started | ended | why |\n|---|---|---|---|---|---|---|"
        );
        for r in &runs {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id,
                r.info.os_user,
                r.info.host,
                r.info.pid,
                format_rfc3339(r.started_at),
                r.ended_at
                    .map(format_rfc3339)
                    .unwrap_or_else(|| "— (died)".into()),
                r.end_reason.as_deref().unwrap_or("—")
            );
        }
        let mut by_proposer: std::collections::BTreeMap<&str, [usize; 5]> = Default::default();
        for t in &trials {
            let slot = match t.state {
                firebreak_core::TrialState::Complete => 0,
                firebreak_core::TrialState::Pruned => 1,
                firebreak_core::TrialState::Failed => 2,
                firebreak_core::TrialState::Running => 3,
                _ => 4,
            };
            by_proposer.entry(t.proposer.as_str()).or_default()[slot] += 1;
        }
        let _ = writeln!(
            out,
            "\n## Proposals\n\n| proposer | complete | pruned | failed | running | queued |\n|---|---|---|---|---|---|"
        );
        for (proposer, n) in &by_proposer {
            let _ = writeln!(
                out,
                "| {proposer} | {} | {} | {} | {} | {} |",
                n[0], n[1], n[2], n[3], n[4]
            );
        }
        let requeues: Vec<String> = rows
            .iter()
            .filter(|e| e.campaign == campaign && e.kind == "trial_requeued")
            .filter_map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.payload)
                    .ok()
                    .map(|p| (e.seq, p))
            })
            .map(|(seq, p)| {
                format!(
                    "- seq {seq}: trial {} — {}",
                    p["data"]["number"],
                    p["data"]["reason"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(out, "\n## Re-queued trials\n");
        let _ = writeln!(
            out,
            "{}",
            if requeues.is_empty() {
                "None.".to_string()
            } else {
                requeues.join("\n")
            }
        );
        let _ = writeln!(out, "\n## Champion\n");
        match spec.objectives.best(&trials).first() {
            Some(t) => {
                let metrics: Vec<String> = t
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k}={}", format_number(*v)))
                    .collect();
                let _ = writeln!(
                    out,
                    "Trial {} ({}), proposed by `{}`: {}",
                    t.number,
                    metrics.join(" "),
                    t.proposer,
                    t.rationale
                );
            }
            None => {
                let _ = writeln!(out, "No complete trial yet.");
            }
        }
        let checkpoints = store.checkpoints().await?;
        let _ = writeln!(out, "\n## Signed checkpoints\n");
        if checkpoints.is_empty() {
            let _ = writeln!(out, "None.");
        }
        for cp in checkpoints {
            let _ = writeln!(
                out,
                "- tree size {}, root `{}`, signed {} by `{}`",
                cp.tree_size, cp.root, cp.at, cp.key
            );
        }
        Ok(out)
    }
}

/// The governance sections of `audit report`: constraint history, firebreaks with
/// who decided them, tripwires fired, refusals.
fn report_sections(rows: &[Entry], campaign: &str, requests: &[Request]) -> String {
    let mut out = String::new();
    let payloads: Vec<(u64, Value)> = rows
        .iter()
        .filter(|e| e.campaign == campaign)
        .filter_map(|e| Some((e.seq, serde_json::from_str::<Value>(&e.payload).ok()?)))
        .collect();
    let _ = writeln!(out, "## Constraint history\n");
    let changes: Vec<&(u64, Value)> = payloads
        .iter()
        .filter(|(_, p)| p["kind"] == "spec_changed")
        .collect();
    if changes.is_empty() {
        let _ = writeln!(
            out,
            "The spec has not changed since the campaign was created.\n"
        );
    } else {
        let _ = writeln!(
            out,
            "| seq | at | by | request | change |\n|---|---|---|---|---|"
        );
        for (seq, p) in changes {
            let data = &p["data"];
            let ops: Vec<String> = data["diff"]
                .as_array()
                .map(|ops| {
                    ops.iter()
                        .map(|op| {
                            format!(
                                "{} `{}` = `{}`",
                                op["op"].as_str().unwrap_or_default(),
                                op["path"].as_str().unwrap_or_default(),
                                op["value"]
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {seq} | {} | {} | {} | {} |",
                p["at"].as_str().unwrap_or_default(),
                data["by"].as_str().unwrap_or_default(),
                data["request"].as_str().unwrap_or("— (outside governance)"),
                ops.join("; ")
            );
        }
        out.push('\n');
    }
    let _ = writeln!(out, "## Firebreaks\n");
    if requests.is_empty() {
        let _ = writeln!(out, "No change was requested.\n");
    } else {
        let _ = writeln!(
            out,
            "| request | kind | asked by | why | state | decisions |\n|---|---|---|---|---|---|"
        );
        for r in requests {
            let decisions: Vec<String> = r
                .decisions
                .iter()
                .map(|d| {
                    let why = if d.reason.trim().is_empty() {
                        String::new()
                    } else {
                        format!(": {}", d.reason.replace('|', "/").replace('\n', " "))
                    };
                    format!(
                        "{} by {} (signed, key {}){why}",
                        d.decision.as_str(),
                        d.by,
                        d.key
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                r.body.id,
                r.body.kind,
                r.body.requested_by,
                r.body.reason.replace('|', "/"),
                r.state,
                if decisions.is_empty() {
                    "—".to_string()
                } else {
                    decisions.join("; ")
                }
            );
        }
        out.push('\n');
    }
    let trips: Vec<&Request> = requests
        .iter()
        .filter(|r| r.body.kind == RequestKind::Tripwire)
        .collect();
    let _ = writeln!(out, "## Tripwires fired\n");
    if trips.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        for r in trips {
            let _ = writeln!(out, "- {} ({}): {}", r.body.id, r.state, r.body.reason);
        }
        out.push('\n');
    }
    let mut refusals: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for (_, p) in payloads.iter().filter(|(_, p)| p["kind"] == "denied") {
        let key = (
            p["data"]["principal"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            p["data"]["action"].as_str().unwrap_or_default().to_string(),
        );
        *refusals.entry(key).or_default() += 1;
    }
    let _ = writeln!(out, "## Refused actions\n");
    if refusals.is_empty() {
        let _ = writeln!(out, "None.\n");
    } else {
        let _ = writeln!(out, "| principal | action | times |\n|---|---|---|");
        for ((principal, action), n) in refusals {
            let _ = writeln!(out, "| {principal} | {action} | {n} |");
        }
        out.push('\n');
    }
    out
}

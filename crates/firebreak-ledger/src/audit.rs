//! Checking a ledger: the hash chain on its own, then a replay of every event
//! compared with the state tables, so an edit, deletion, reordering or insertion in
//! either is caught and located at the first bad sequence number.

use std::collections::BTreeMap;

use firebreak_core::{Metrics, Params, Trial, TrialState};
use serde::Deserialize;

use crate::entry::{Entry, Event, FORMAT_VERSION, GENESIS, Hash, canonical_json, hex, leaf_hash};

/// The state tables as the store holds them, for comparison with the ledger.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// Campaign name to its stored canonical spec.
    pub campaigns: BTreeMap<String, serde_json::Value>,
    /// Every trial with its campaign's name.
    pub trials: Vec<(String, Trial)>,
}

/// Where and why a check failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {reason}", seq.map_or("state".to_string(), |s| format!("seq {s}")))]
pub struct Violation {
    /// The first entry that is wrong or that the state contradicts.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

fn violation(seq: u64, reason: impl Into<String>) -> Violation {
    Violation {
        seq: Some(seq),
        reason: reason.into(),
    }
}

#[derive(Deserialize)]
struct Header {
    v: u32,
    seq: u64,
    prev: String,
    campaign: String,
    kind: String,
}

/// Checks sequence numbers, `prev` links, canonical form, the columns against the
/// payload and every hash. Returns the number of entries.
pub fn verify_chain(rows: &[Entry]) -> Result<u64, Violation> {
    let mut prev: Hash = GENESIS;
    for (index, row) in rows.iter().enumerate() {
        let seq = index as u64;
        if row.seq != seq {
            return Err(violation(
                seq,
                format!(
                    "expected entry {seq}, found entry {} (a gap or reordering)",
                    row.seq
                ),
            ));
        }
        let header: Header = serde_json::from_str(&row.payload)
            .map_err(|e| violation(seq, format!("payload is not a ledger entry: {e}")))?;
        let value: serde_json::Value = serde_json::from_str(&row.payload)
            .map_err(|e| violation(seq, format!("payload is not JSON: {e}")))?;
        if canonical_json(&value).ok().as_deref() != Some(row.payload.as_str()) {
            return Err(violation(
                seq,
                "payload is not in canonical (RFC 8785) form",
            ));
        }
        if header.v != FORMAT_VERSION {
            return Err(violation(
                seq,
                format!("unknown format version {}", header.v),
            ));
        }
        if header.seq != seq {
            return Err(violation(seq, format!("payload says seq {}", header.seq)));
        }
        if header.prev != hex(&prev) {
            return Err(violation(
                seq,
                "prev does not match the previous entry's hash",
            ));
        }
        if header.campaign != row.campaign || header.kind != row.kind {
            return Err(violation(
                seq,
                "campaign or kind column disagrees with the payload",
            ));
        }
        let hash = leaf_hash(row.payload.as_bytes());
        if hash != row.hash {
            return Err(violation(seq, "hash does not match the payload"));
        }
        prev = hash;
    }
    Ok(rows.len() as u64)
}

/// What the ledger says one trial is.
#[derive(Debug)]
struct Expected {
    state: TrialState,
    params: Params,
    proposer: String,
    rationale: String,
    retry_of: Option<u64>,
    metrics: Metrics,
    error: Option<String>,
    reports: Vec<(u64, Metrics)>,
    last_seq: u64,
}

#[derive(Deserialize)]
struct Body {
    #[serde(flatten)]
    event: Event,
}

/// Verifies the chain, replays every event and compares the result with `state`.
/// Returns the number of entries, or the violation with the smallest `seq`.
pub fn audit(rows: &[Entry], state: &StateSnapshot) -> Result<u64, Violation> {
    let entries = verify_chain(rows)?;
    let mut campaigns: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut trials: BTreeMap<(String, u64), Expected> = BTreeMap::new();
    for row in rows {
        let seq = row.seq;
        let body: Body = serde_json::from_str(&row.payload)
            .map_err(|e| violation(seq, format!("unknown event: {e}")))?;
        let campaign = row.campaign.clone();
        if !matches!(body.event, Event::CampaignCreated { .. })
            && !campaigns.contains_key(&campaign)
        {
            return Err(violation(
                seq,
                format!("campaign {campaign:?} was never created"),
            ));
        }
        let transition = |trials: &mut BTreeMap<(String, u64), Expected>,
                          number: u64,
                          from: &[TrialState]|
         -> Result<(), Violation> {
            let Some(t) = trials.get_mut(&(campaign.clone(), number)) else {
                return Err(violation(seq, format!("trial {number} was never proposed")));
            };
            if !from.contains(&t.state) {
                return Err(violation(
                    seq,
                    format!(
                        "trial {number} is {} here, which allows no {}",
                        t.state, row.kind
                    ),
                ));
            }
            t.last_seq = seq;
            Ok(())
        };
        match body.event {
            Event::CampaignCreated { spec, .. } => {
                let spec = canonical_json(&spec).unwrap_or_default();
                if campaigns.insert(campaign.clone(), (spec, seq)).is_some() {
                    return Err(violation(
                        seq,
                        format!("campaign {campaign:?} created twice"),
                    ));
                }
            }
            Event::RunStarted { .. } | Event::RunEnded { .. } => {}
            Event::TrialProposed {
                number,
                params,
                proposer,
                rationale,
                retry_of,
            } => {
                let key = (campaign.clone(), number);
                if trials.contains_key(&key) {
                    return Err(violation(seq, format!("trial {number} proposed twice")));
                }
                trials.insert(
                    key,
                    Expected {
                        state: TrialState::Queued,
                        params,
                        proposer,
                        rationale,
                        retry_of,
                        metrics: Metrics::new(),
                        error: None,
                        reports: Vec::new(),
                        last_seq: seq,
                    },
                );
            }
            Event::TrialStarted { number, .. } => {
                transition(&mut trials, number, &[TrialState::Queued])?;
                set_state(&mut trials, &campaign, number, TrialState::Running);
            }
            Event::TrialRequeued { number, .. } => {
                transition(&mut trials, number, &[TrialState::Running])?;
                set_state(&mut trials, &campaign, number, TrialState::Queued);
            }
            Event::TrialReported {
                number,
                step,
                metrics,
            } => {
                transition(&mut trials, number, &[TrialState::Running])?;
                if let Some(t) = trials.get_mut(&(campaign.clone(), number)) {
                    t.reports.retain(|(s, _)| *s != step);
                    t.reports.push((step, metrics));
                }
            }
            Event::TrialFinished {
                number,
                state,
                metrics,
                error,
                ..
            } => {
                transition(&mut trials, number, &[TrialState::Running])?;
                if !state.is_finished() {
                    return Err(violation(
                        seq,
                        format!("trial {number} finished as {state}"),
                    ));
                }
                if let Some(t) = trials.get_mut(&(campaign.clone(), number)) {
                    t.state = state;
                    t.metrics = metrics;
                    t.error = error;
                }
            }
        }
    }
    compare(entries, &campaigns, &trials, state)?;
    Ok(entries)
}

fn set_state(
    trials: &mut BTreeMap<(String, u64), Expected>,
    campaign: &str,
    number: u64,
    state: TrialState,
) {
    if let Some(t) = trials.get_mut(&(campaign.to_string(), number)) {
        t.state = state;
    }
}

fn compare(
    entries: u64,
    campaigns: &BTreeMap<String, (String, u64)>,
    trials: &BTreeMap<(String, u64), Expected>,
    state: &StateSnapshot,
) -> Result<(), Violation> {
    let mut problems: Vec<Violation> = Vec::new();
    for (name, (spec, seq)) in campaigns {
        match state.campaigns.get(name) {
            None => problems.push(violation(
                *seq,
                format!("campaign {name:?} is missing from the state"),
            )),
            Some(stored) if canonical_json(stored).ok().as_deref() != Some(spec.as_str()) => {
                problems.push(violation(
                    *seq,
                    format!("campaign {name:?}: stored spec differs from the ledger"),
                ));
            }
            Some(_) => {}
        }
    }
    for name in state
        .campaigns
        .keys()
        .filter(|n| !campaigns.contains_key(*n))
    {
        problems.push(violation(
            entries,
            format!("campaign {name:?} has no ledger entry"),
        ));
    }
    let mut seen = 0usize;
    for (campaign, trial) in &state.trials {
        let Some(expected) = trials.get(&(campaign.clone(), trial.number)) else {
            problems.push(violation(
                entries,
                format!(
                    "campaign {campaign:?} trial {} has no ledger entry",
                    trial.number
                ),
            ));
            continue;
        };
        seen += 1;
        if let Some(reason) = differs(expected, trial) {
            problems.push(violation(
                expected.last_seq,
                format!("campaign {campaign:?} trial {}: {reason}", trial.number),
            ));
        }
    }
    if seen < trials.len() {
        let stored: std::collections::BTreeSet<(&str, u64)> = state
            .trials
            .iter()
            .map(|(c, t)| (c.as_str(), t.number))
            .collect();
        for ((campaign, number), expected) in trials {
            if !stored.contains(&(campaign.as_str(), *number)) {
                problems.push(violation(
                    expected.last_seq,
                    format!("campaign {campaign:?} trial {number} is missing from the state"),
                ));
            }
        }
    }
    match problems.into_iter().min_by_key(|v| v.seq) {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn metrics_equal(a: &Metrics, b: &Metrics) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && close(*va, *vb))
}

fn differs(expected: &Expected, trial: &Trial) -> Option<String> {
    if expected.state != trial.state {
        return Some(format!(
            "state is {} but the ledger says {}",
            trial.state, expected.state
        ));
    }
    let params_equal = expected.params.len() == trial.params.len()
        && expected
            .params
            .iter()
            .zip(&trial.params)
            .all(|((ka, va), (kb, vb))| ka == kb && va.matches(vb));
    if !params_equal {
        return Some("params differ from the ledger".into());
    }
    if expected.proposer != trial.proposer || expected.rationale != trial.rationale {
        return Some("proposer or rationale differs from the ledger".into());
    }
    if expected.retry_of != trial.retry_of {
        return Some("retry link differs from the ledger".into());
    }
    if !metrics_equal(&expected.metrics, &trial.metrics) {
        return Some("metrics differ from the ledger".into());
    }
    if expected.error != trial.error {
        return Some("error text differs from the ledger".into());
    }
    let mut reports = expected.reports.clone();
    reports.sort_by_key(|(step, _)| *step);
    let same_reports = reports.len() == trial.intermediate.len()
        && reports
            .iter()
            .zip(&trial.intermediate)
            .all(|((step, m), r)| *step == r.step && metrics_equal(m, &r.metrics));
    if !same_reports {
        return Some("intermediate reports differ from the ledger".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(events: &[Event]) -> Vec<Entry> {
        let mut prev = GENESIS;
        let mut rows = Vec::new();
        for (seq, event) in events.iter().enumerate() {
            let entry = Entry::seal(seq as u64, &prev, "c", 0, event).expect("sealed");
            prev = entry.hash;
            rows.push(entry);
        }
        rows
    }

    fn created() -> Event {
        Event::CampaignCreated {
            spec: serde_json::json!({"x": 1}),
            spec_hash: String::new(),
        }
    }

    #[test]
    fn an_edited_payload_is_caught_at_its_seq() {
        let mut rows = chain(&[created(), created(), created()]);
        assert!(verify_chain(&rows).is_ok());
        rows[1].payload = rows[1].payload.replace("\"x\":1", "\"x\":2");
        assert_eq!(verify_chain(&rows).expect_err("tampered").seq, Some(1));
    }

    #[test]
    fn a_state_that_disagrees_is_caught() {
        let rows = chain(&[
            created(),
            Event::TrialProposed {
                number: 0,
                params: Params::new(),
                proposer: "random".into(),
                rationale: String::new(),
                retry_of: None,
            },
        ]);
        let mut state = StateSnapshot::default();
        state
            .campaigns
            .insert("c".into(), serde_json::json!({"x": 1}));
        let mut trial = Trial::queued(0, Params::new(), "random", "");
        state.trials.push(("c".into(), trial.clone()));
        assert_eq!(audit(&rows, &state), Ok(2));
        trial.state = TrialState::Complete;
        state.trials[0].1 = trial;
        assert_eq!(audit(&rows, &state).expect_err("disagrees").seq, Some(1));
    }
}

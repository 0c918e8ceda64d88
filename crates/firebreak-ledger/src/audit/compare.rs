//! The replayed state against the stored one: campaigns' specs, trials (their
//! CPU and wall seconds included, since budgets are computed from them), runs
//! (their times feed `max_wall_time`), requests with every decision, and the
//! champions' test results. The first disagreement, by ledger position, wins.

use firebreak_core::{Metrics, Trial};

use super::replay::{ExpectedTrial, Replay};
use super::{StateSnapshot, Violation, violation};
use crate::entry::canonical_json;

/// Every comparison; the violation with the smallest `seq`.
pub(super) fn all(entries: u64, replay: &Replay, state: &StateSnapshot) -> Result<(), Violation> {
    let mut problems: Vec<Violation> = Vec::new();
    campaigns(entries, replay, state, &mut problems);
    trials(entries, replay, state, &mut problems);
    requests(entries, replay, state, &mut problems);
    runs(entries, replay, state, &mut problems);
    tests(entries, replay, state, &mut problems);
    agent_texts(replay, state, &mut problems);
    match problems.into_iter().min_by_key(|v| v.seq) {
        Some(first) => Err(first),
        // Reported only when nothing is located: a located edit says more.
        None if state.ledger_writable => Err(Violation {
            seq: None,
            reason: "the ledger's append-only guards (triggers) are missing, so its rows can be \
                     updated or deleted; the next `run` restores them"
                .to_string(),
        }),
        None => Ok(()),
    }
}

fn campaigns(entries: u64, replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    for (name, expected) in &replay.campaigns {
        match state.campaigns.get(name) {
            None => out.push(violation(
                expected.seq,
                format!("campaign {name:?} is missing from the state"),
            )),
            Some(stored)
                if canonical_json(stored).ok().as_deref() != Some(expected.canonical.as_str()) =>
            {
                out.push(violation(
                    expected.seq,
                    format!("campaign {name:?}: stored spec differs from the ledger"),
                ));
            }
            Some(_) => {}
        }
        let current = expected.generations.current;
        let stored = state.generations.get(name).copied();
        if stored != (current > 0).then_some(i64::from(current)) {
            out.push(violation(
                expected.seq,
                format!(
                    "campaign {name:?}: stored current generation {stored:?} differs from the \
                     ledger's {current}"
                ),
            ));
        }
    }
    for name in state
        .campaigns
        .keys()
        .filter(|n| !replay.campaigns.contains_key(*n))
    {
        out.push(violation(
            entries,
            format!("campaign {name:?} has no ledger entry"),
        ));
    }
}

fn trials(entries: u64, replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    let mut seen = 0usize;
    for (campaign, trial) in &state.trials {
        let Some(expected) = replay.trials.get(&(campaign.clone(), trial.number)) else {
            out.push(violation(
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
            out.push(violation(
                expected.last_seq,
                format!("campaign {campaign:?} trial {}: {reason}", trial.number),
            ));
        }
    }
    if seen < replay.trials.len() {
        let stored: std::collections::BTreeSet<(&str, u64)> = state
            .trials
            .iter()
            .map(|(c, t)| (c.as_str(), t.number))
            .collect();
        for ((campaign, number), expected) in &replay.trials {
            if !stored.contains(&(campaign.as_str(), *number)) {
                out.push(violation(
                    expected.last_seq,
                    format!("campaign {campaign:?} trial {number} is missing from the state"),
                ));
            }
        }
    }
}

fn requests(entries: u64, replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    for (id, expected) in &replay.requests {
        // Compared in canonical form: the ledger's text writes `2.0` as `2`, so a
        // float read back from it may come back as an integer.
        let same = state.requests.get(id).is_some_and(|stored| {
            let canonical = |r: &crate::request::Request| canonical_json(r).ok();
            canonical(stored).is_some() && canonical(stored) == canonical(&expected.request)
        });
        if !same {
            out.push(violation(
                expected.last_seq,
                format!(
                    "request {id} differs from the ledger (its body, state or decisions), or is \
                     missing"
                ),
            ));
        }
    }
    for id in state
        .requests
        .keys()
        .filter(|id| !replay.requests.contains_key(*id))
    {
        out.push(violation(
            entries,
            format!("request {id} has no ledger entry"),
        ));
    }
}

fn runs(entries: u64, replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    let mut seen = 0usize;
    for (campaign, row) in &state.runs {
        let Some(expected) = replay.runs.get(&(campaign.clone(), row.id)) else {
            out.push(violation(
                entries,
                format!("campaign {campaign:?} run {} has no ledger entry", row.id),
            ));
            continue;
        };
        seen += 1;
        let same = expected.started_at == row.started_at
            && expected.ended_at == row.ended_at
            && expected.end_reason == row.end_reason;
        if !same {
            out.push(violation(
                expected.last_seq,
                format!(
                    "campaign {campaign:?} run {}: its start, end or end reason differs from \
                     the ledger",
                    row.id
                ),
            ));
        }
    }
    if seen < replay.runs.len() {
        for ((campaign, id), expected) in &replay.runs {
            if !state.runs.iter().any(|(c, r)| c == campaign && r.id == *id) {
                out.push(violation(
                    expected.started_seq,
                    format!("campaign {campaign:?} run {id} is missing from the state"),
                ));
            }
        }
    }
}

fn tests(entries: u64, replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    for ((campaign, number), (metrics, seq)) in &replay.tests {
        if !state
            .tests
            .get(&(campaign.clone(), *number))
            .is_some_and(|stored| metrics_equal(stored, metrics))
        {
            out.push(violation(
                *seq,
                format!(
                    "campaign {campaign:?} trial {number}: test result differs from the ledger, \
                     or is missing"
                ),
            ));
        }
    }
    for (campaign, number) in state.tests.keys() {
        if !replay.tests.contains_key(&(campaign.clone(), *number)) {
            out.push(violation(
                entries,
                format!("campaign {campaign:?} trial {number}: test result has no ledger entry"),
            ));
        }
    }
}

/// Equal up to the rounding of a double's text form.
pub(crate) fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
}

fn metrics_equal(a: &Metrics, b: &Metrics) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((ka, va), (kb, vb))| ka == kb && close(*va, *vb))
}

fn seconds_equal(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => close(a, b),
        _ => false,
    }
}

fn differs(expected: &ExpectedTrial, trial: &Trial) -> Option<String> {
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
    if expected.proposer_state != trial.proposer_state {
        return Some("proposer state differs from the ledger".into());
    }
    if expected.retry_of != trial.retry_of {
        return Some("retry link differs from the ledger".into());
    }
    if expected.generation != trial.generation {
        return Some("generation differs from the ledger".into());
    }
    if !metrics_equal(&expected.metrics, &trial.metrics) {
        return Some("metrics differ from the ledger".into());
    }
    if expected.error != trial.error {
        return Some("error text differs from the ledger".into());
    }
    if !seconds_equal(expected.cpu_seconds, trial.cpu_seconds)
        || !seconds_equal(expected.wall_seconds, trial.wall_seconds)
    {
        return Some("CPU or wall seconds differ from the ledger".into());
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

/// Every agent request and answer the ledger names is stored, and stored as it
/// was: its body still hashes to the name. (Texts nothing names are harmless:
/// a crash between storing them and appending their entry leaves such.)
fn agent_texts(replay: &Replay, state: &StateSnapshot, out: &mut Vec<Violation>) {
    for (seq, hash) in &replay.agent_texts {
        match state.agent_texts.get(hash) {
            None => out.push(violation(
                *seq,
                format!("the agent text {hash} this entry names is missing"),
            )),
            Some(actual) if actual != hash => out.push(violation(
                *seq,
                format!("the agent text stored as {hash} was edited (its body hashes to {actual})"),
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use firebreak_core::Params;

    use crate::audit::{StateSnapshot, audit};
    use crate::entry::{Entry, Event, GENESIS};

    /// A campaign whose one trial was proposed with `state`, and the stored trial.
    fn proposed_with(state: serde_json::Value) -> (Vec<Entry>, StateSnapshot) {
        let events = [
            Event::CampaignCreated {
                spec: serde_json::json!({"x": 1}),
                spec_hash: String::new(),
            },
            Event::TrialProposed {
                number: 0,
                params: Params::new(),
                proposer: "cmaes".into(),
                rationale: "cmaes: generation 2".into(),
                retry_of: None,
                policy: None,
                exploit: None,
                state: Some(state.clone()),
            },
        ];
        let mut prev = GENESIS;
        let rows: Vec<Entry> = events
            .iter()
            .enumerate()
            .map(|(seq, event)| {
                let entry = Entry::seal(seq as u64, &prev, "c", 0, event).expect("sealed");
                prev = entry.hash;
                entry
            })
            .collect();
        let mut snapshot = StateSnapshot::default();
        snapshot
            .campaigns
            .insert("c".into(), serde_json::json!({"x": 1}));
        let mut trial =
            firebreak_core::Trial::queued(0, Params::new(), "cmaes", "cmaes: generation 2");
        trial.proposer_state = Some(state);
        snapshot.trials.push(("c".into(), trial));
        (rows, snapshot)
    }

    #[test]
    fn an_edited_or_dropped_proposer_state_is_caught_like_an_edited_rationale() {
        let state = serde_json::json!({"v": 1, "cmaes": {"generation": 2, "restart": 0}});
        let (rows, snapshot) = proposed_with(state);
        assert_eq!(audit(&rows, &snapshot).map(|r| r.entries), Ok(2));
        let mut edited = snapshot.clone();
        edited.trials[0].1.proposer_state =
            Some(serde_json::json!({"v": 1, "cmaes": {"generation": 0, "restart": 0}}));
        let caught = audit(&rows, &edited).expect_err("edited");
        assert_eq!(caught.seq, Some(1));
        assert!(
            caught.reason.contains("proposer state"),
            "{}",
            caught.reason
        );
        let mut dropped = snapshot;
        dropped.trials[0].1.proposer_state = None;
        assert_eq!(audit(&rows, &dropped).expect_err("dropped").seq, Some(1));
    }
}

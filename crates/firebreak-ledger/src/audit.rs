//! Checking a ledger: the hash chain on its own, then a replay of every event
//! compared with the state tables, so an edit, deletion, reordering or insertion in
//! either is caught and located at the first bad sequence number.

use std::collections::BTreeMap;

use firebreak_core::{Metrics, Params, Trial, TrialState};
use serde::Deserialize;

use crate::entry::{Entry, Event, FORMAT_VERSION, GENESIS, Hash, canonical_json, hex, leaf_hash};
use crate::patch::apply_patch;
use crate::request::{RequestState, SignedDecision, Verdict};

mod canonical;

/// The state tables as the store holds them, for comparison with the ledger.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// Campaign name to its stored canonical spec.
    pub campaigns: BTreeMap<String, serde_json::Value>,
    /// Every trial with its campaign's name.
    pub trials: Vec<(String, Trial)>,
    /// Every change request: id to (campaign, state, number of decisions).
    pub requests: BTreeMap<String, (String, RequestState, usize)>,
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

/// Entries per thread below which `verify_chain` does not split the work.
const MIN_ENTRIES_PER_THREAD: usize = 4_096;

/// Checks sequence numbers, `prev` links, canonical form, the columns against the
/// payload and every hash. Returns the number of entries.
///
/// The entries are checked in contiguous chunks on every available core: entry
/// `n`'s `prev` is compared with the stored hash of entry `n - 1`, which equals
/// the recomputed one whenever entry `n - 1` passed, so the first violation found
/// (lowest chunk, first within it) is exactly the one a sequential pass reports.
pub fn verify_chain(rows: &[Entry]) -> Result<u64, Violation> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.len() / MIN_ENTRIES_PER_THREAD)
        .max(1);
    let chunk = rows.len().div_ceil(threads).max(1);
    let check_range = |start: usize| -> Result<(), Violation> {
        let end = (start + chunk).min(rows.len());
        let mut prev = if start == 0 {
            &GENESIS
        } else {
            &rows[start - 1].hash
        };
        for (index, row) in rows[start..end].iter().enumerate() {
            check_entry((start + index) as u64, row, prev)?;
            prev = &row.hash;
        }
        Ok(())
    };
    let results: Vec<Result<(), Violation>> = if threads == 1 {
        vec![check_range(0)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let check_range = &check_range;
                    scope.spawn(move || check_range(t * chunk))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    };
    results.into_iter().collect::<Result<(), _>>()?;
    Ok(rows.len() as u64)
}

/// Checks one entry whose predecessor's stored hash is `prev`.
fn check_entry(seq: u64, row: &Entry, prev: &Hash) -> Result<(), Violation> {
    if row.seq != seq {
        return Err(violation(
            seq,
            format!(
                "expected entry {seq}, found entry {} (a gap or reordering)",
                row.seq
            ),
        ));
    }
    let header = match fast_header(&row.payload) {
        Some(header) => header,
        None => plain_header(seq, &row.payload)?,
    };
    if header.v != FORMAT_VERSION {
        return Err(violation(
            seq,
            format!("unknown format version {}", header.v),
        ));
    }
    if header.seq != seq {
        return Err(violation(seq, format!("payload says seq {}", header.seq)));
    }
    if !hex_equals(&header.prev, prev) {
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
    if leaf_hash(row.payload.as_bytes()) != row.hash {
        return Err(violation(seq, "hash does not match the payload"));
    }
    Ok(())
}

/// The header of a payload proved canonical in one pass (see `canonical`), or
/// `None` when that proof fails or a member is missing or of another type.
fn fast_header(payload: &str) -> Option<Header> {
    let (mut v, mut seq, mut prev, mut campaign, mut kind) = (None, None, None, None, None);
    canonical::canonical_object(payload, |key, span| match key {
        "v" => v = Some(span),
        "seq" => seq = Some(span),
        "prev" => prev = Some(span),
        "campaign" => campaign = Some(span),
        "kind" => kind = Some(span),
        _ => {}
    })?;
    let text = |span: Option<&str>| -> Option<String> {
        let span = span?;
        match canonical::plain_string(span) {
            Some(plain) => Some(plain.to_string()),
            None => serde_json::from_str(span).ok(),
        }
    };
    Some(Header {
        v: v?.parse().ok()?,
        seq: seq?.parse().ok()?,
        prev: text(prev)?,
        campaign: text(campaign)?,
        kind: text(kind)?,
    })
}

/// The plain check: parse the header, parse the whole payload, serialize it
/// canonically and compare. It decides every payload the one-pass proof does not
/// accept, and names what is wrong.
fn plain_header(seq: u64, payload: &str) -> Result<Header, Violation> {
    let header: Header = serde_json::from_str(payload)
        .map_err(|e| violation(seq, format!("payload is not a ledger entry: {e}")))?;
    let value: serde_json::Value = serde_json::from_str(payload)
        .map_err(|e| violation(seq, format!("payload is not JSON: {e}")))?;
    if canonical_json(&value).ok().as_deref() != Some(payload) {
        return Err(violation(
            seq,
            "payload is not in canonical (RFC 8785) form",
        ));
    }
    Ok(header)
}

/// `text == hex(hash)`, without allocating.
fn hex_equals(text: &str, hash: &Hash) -> bool {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    text.len() == 64
        && text
            .as_bytes()
            .chunks_exact(2)
            .zip(hash)
            .all(|(pair, byte)| {
                pair[0] == DIGITS[usize::from(byte >> 4)]
                    && pair[1] == DIGITS[usize::from(byte & 15)]
            })
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

/// What the ledger says one change request is.
#[derive(Debug)]
struct ExpectedRequest {
    campaign: String,
    state: RequestState,
    hash: String,
    diff: serde_json::Value,
    requested_by: String,
    decisions: Vec<SignedDecision>,
    last_seq: u64,
}

/// A campaign as the replay knows it.
#[derive(Debug)]
struct ExpectedCampaign {
    spec: serde_json::Value,
    canonical: String,
    seq: u64,
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// The quorum and the approvers (name, key) of a canonical spec's governance.
fn governance_of(spec: &serde_json::Value) -> (usize, Vec<(String, String)>) {
    let governance = &spec["governance"];
    let approvers: Vec<(String, String)> = governance["approvers"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|a| matches!(a["role"].as_str(), None | Some("approver" | "admin")))
                .filter_map(|a| {
                    Some((
                        a["name"].as_str()?.to_string(),
                        a["key"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let quorum = governance["quorum"]
        .as_u64()
        .map_or(1, |q| usize::try_from(q).unwrap_or(usize::MAX));
    (quorum, approvers)
}

/// Checks one decision against the request and the campaign's governance.
fn check_decision(
    seq: u64,
    request: &ExpectedRequest,
    decision: &SignedDecision,
    spec: &serde_json::Value,
) -> Result<(), Violation> {
    decision
        .verify(&request.hash)
        .map_err(|e| violation(seq, format!("decision on request: {e}")))?;
    let (_, approvers) = governance_of(spec);
    if !approvers
        .iter()
        .any(|(name, key)| *name == decision.by && *key == decision.key)
    {
        return Err(violation(
            seq,
            format!(
                "{} with key {} is not an approver of the campaign",
                decision.by, decision.key
            ),
        ));
    }
    if decision.by == request.requested_by {
        return Err(violation(
            seq,
            format!("{} decided their own request", decision.by),
        ));
    }
    if request.decisions.iter().any(|d| d.by == decision.by) {
        return Err(violation(seq, format!("{} decided twice", decision.by)));
    }
    Ok(())
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
    let mut campaigns: BTreeMap<String, ExpectedCampaign> = BTreeMap::new();
    let mut trials: BTreeMap<(String, u64), Expected> = BTreeMap::new();
    let mut requests: BTreeMap<String, ExpectedRequest> = BTreeMap::new();
    let mut bodies = parse_bodies(rows).into_iter();
    for row in rows {
        let seq = row.seq;
        let body: Body = bodies
            .next()
            .unwrap_or_else(|| serde_json::from_str(&row.payload))
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
                let canonical = canonical_json(&spec).unwrap_or_default();
                let expected = ExpectedCampaign {
                    spec,
                    canonical,
                    seq,
                };
                if campaigns.insert(campaign.clone(), expected).is_some() {
                    return Err(violation(
                        seq,
                        format!("campaign {campaign:?} created twice"),
                    ));
                }
            }
            Event::RunStarted { .. }
            | Event::RunEnded { .. }
            | Event::Denied { .. }
            | Event::TrialReevaluated { .. } => {}
            Event::RequestFiled { request, hash, .. } => {
                if request.campaign != campaign {
                    return Err(violation(seq, "request names another campaign"));
                }
                if request.hash() != hash {
                    return Err(violation(
                        seq,
                        format!("request {}: hash does not match its body", request.id),
                    ));
                }
                if requests.contains_key(&request.id) {
                    return Err(violation(
                        seq,
                        format!("request {} filed twice", request.id),
                    ));
                }
                requests.insert(
                    request.id.clone(),
                    ExpectedRequest {
                        campaign: campaign.clone(),
                        state: RequestState::Pending,
                        hash,
                        diff: request.diff,
                        requested_by: request.requested_by,
                        decisions: Vec::new(),
                        last_seq: seq,
                    },
                );
            }
            Event::RequestDecided { id, decision, .. } => {
                let request = open_request(&mut requests, seq, &id, &campaign)?;
                let spec = campaigns.get(&campaign).map(|c| &c.spec);
                check_decision(
                    seq,
                    request,
                    &decision,
                    spec.unwrap_or(&serde_json::Value::Null),
                )?;
                request.decisions.push(decision);
                request.last_seq = seq;
            }
            Event::RequestClosed { id, state, .. } => {
                let spec = campaigns.get(&campaign).map(|c| c.spec.clone());
                let request = open_request(&mut requests, seq, &id, &campaign)?;
                let (quorum, _) = governance_of(spec.as_ref().unwrap_or(&serde_json::Value::Null));
                let count = |verdict: Verdict| {
                    request
                        .decisions
                        .iter()
                        .filter(|d| d.decision == verdict)
                        .count()
                };
                let ok = match state {
                    RequestState::Approved => count(Verdict::Approve) >= quorum.max(1),
                    RequestState::Rejected => count(Verdict::Reject) > 0,
                    RequestState::Expired | RequestState::Superseded => true,
                    RequestState::Pending => false,
                };
                if !ok {
                    return Err(violation(
                        seq,
                        format!("request {id} closed as {state} without the decisions for it"),
                    ));
                }
                request.state = state;
                request.last_seq = seq;
            }
            Event::SpecChanged {
                spec,
                spec_hash,
                diff,
                request,
                ..
            } => {
                let Some(current) = campaigns.get_mut(&campaign) else {
                    return Err(violation(seq, "spec change of an unknown campaign"));
                };
                let canonical = canonical_json(&spec).unwrap_or_default();
                if sha256_hex(&canonical) != spec_hash {
                    return Err(violation(seq, "spec_hash does not match the spec"));
                }
                if apply_patch(&current.spec, &diff).ok().as_ref() != Some(&spec) {
                    return Err(violation(
                        seq,
                        "the patch applied to the spec in effect does not give the new spec",
                    ));
                }
                if let Some(id) = request {
                    let approved = requests.get(&id).is_some_and(|r| {
                        r.state == RequestState::Approved
                            && r.campaign == campaign
                            && r.diff == diff
                    });
                    if !approved {
                        return Err(violation(
                            seq,
                            format!(
                                "spec changed under request {id}, which is not an approved request for this change"
                            ),
                        ));
                    }
                }
                *current = ExpectedCampaign {
                    spec,
                    canonical,
                    seq,
                };
            }
            Event::TrialProposed {
                number,
                params,
                proposer,
                rationale,
                retry_of,
                ..
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
            Event::TrialResumed { number, .. } => {
                transition(&mut trials, number, &[TrialState::Pruned])?;
                if let Some(t) = trials.get_mut(&(campaign.clone(), number)) {
                    t.state = TrialState::Running;
                    t.error = None;
                    t.metrics = Metrics::new();
                }
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
            Event::TrialTested { number, metrics } => {
                transition(&mut trials, number, &[TrialState::Complete])?;
                if let Some(t) = trials.get_mut(&(campaign.clone(), number)) {
                    t.metrics.extend(metrics);
                }
            }
        }
    }
    compare(entries, &campaigns, &trials, state)?;
    compare_requests(entries, &requests, state)?;
    Ok(entries)
}

/// Every payload parsed as an event, in order, on every available core (parsing
/// is most of the replay's time; the replay itself stays sequential).
fn parse_bodies(rows: &[Entry]) -> Vec<serde_json::Result<Body>> {
    let parse = |rows: &[Entry]| -> Vec<serde_json::Result<Body>> {
        rows.iter()
            .map(|row| serde_json::from_str(&row.payload))
            .collect()
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(rows.len() / MIN_ENTRIES_PER_THREAD)
        .max(1);
    if threads == 1 {
        return parse(rows);
    }
    let chunk = rows.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(chunk)
            .map(|part| scope.spawn(move || parse(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

fn open_request<'a>(
    requests: &'a mut BTreeMap<String, ExpectedRequest>,
    seq: u64,
    id: &str,
    campaign: &str,
) -> Result<&'a mut ExpectedRequest, Violation> {
    match requests.get_mut(id) {
        Some(r) if r.campaign == campaign && r.state == RequestState::Pending => Ok(r),
        Some(r) if r.campaign == campaign => Err(violation(
            seq,
            format!("request {id} is already {}", r.state),
        )),
        _ => Err(violation(seq, format!("request {id} was never filed"))),
    }
}

fn compare_requests(
    entries: u64,
    requests: &BTreeMap<String, ExpectedRequest>,
    state: &StateSnapshot,
) -> Result<(), Violation> {
    let mut problems: Vec<Violation> = Vec::new();
    for (id, expected) in requests {
        let stored = state.requests.get(id);
        let fine = stored.is_some_and(|(campaign, state, decisions)| {
            *campaign == expected.campaign
                && *state == expected.state
                && *decisions == expected.decisions.len()
        });
        if !fine {
            problems.push(violation(
                expected.last_seq,
                format!("request {id} differs from the ledger (or is missing)"),
            ));
        }
    }
    for id in state
        .requests
        .keys()
        .filter(|id| !requests.contains_key(*id))
    {
        problems.push(violation(
            entries,
            format!("request {id} has no ledger entry"),
        ));
    }
    match problems.into_iter().min_by_key(|v| v.seq) {
        Some(first) => Err(first),
        None => Ok(()),
    }
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
    campaigns: &BTreeMap<String, ExpectedCampaign>,
    trials: &BTreeMap<(String, u64), Expected>,
    state: &StateSnapshot,
) -> Result<(), Violation> {
    let mut problems: Vec<Violation> = Vec::new();
    for (
        name,
        ExpectedCampaign {
            canonical: spec,
            seq,
            ..
        },
    ) in campaigns
    {
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
    fn the_first_violation_is_found_when_the_chain_is_checked_in_parallel() {
        let events: Vec<Event> = (0..20_000).map(|_| created()).collect();
        let rows = chain(&events);
        assert_eq!(verify_chain(&rows), Ok(20_000));
        let mut late = rows.clone();
        late[19_000].payload = late[19_000].payload.replace("\"x\":1", "\"x\": 1");
        let found = verify_chain(&late).expect_err("tampered");
        assert_eq!(found.seq, Some(19_000));
        assert_eq!(found.reason, "payload is not in canonical (RFC 8785) form");
        let mut both = late.clone();
        both[3_000].hash[0] ^= 1;
        // Entry 3000's own hash is wrong; entry 3001's prev no longer matches either.
        let found = verify_chain(&both).expect_err("tampered");
        assert_eq!(found, violation(3_000, "hash does not match the payload"));
        let mut swapped = rows.clone();
        swapped.swap(12_000, 12_001);
        assert_eq!(
            verify_chain(&swapped).expect_err("swapped").seq,
            Some(12_000)
        );
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
                policy: None,
                exploit: None,
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

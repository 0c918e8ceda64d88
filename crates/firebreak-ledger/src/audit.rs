//! Checking a ledger: the hash chain on its own, then a replay of every event
//! compared with the state tables, so an edit, deletion, reordering or insertion in
//! either is caught and located at the first bad sequence number.

use std::collections::BTreeMap;

use firebreak_core::{Metrics, Timestamp, Trial, parse_rfc3339};
use serde::Deserialize;

use crate::entry::{Entry, Event, FORMAT_VERSION, GENESIS, Hash, canonical_json, leaf_hash};
use crate::request::Request;
pub use generations::GenerationState;
use replay::Replay;

mod canonical;
mod compare;
mod generations;
mod replay;

/// The state tables as the store holds them, for comparison with the ledger:
/// every column the engine reads to decide anything (a limit, a tripwire, a
/// scheduler, a proposer, a decision) is here and compared.
#[derive(Debug, Clone, Default)]
pub struct StateSnapshot {
    /// Campaign name to its stored canonical spec.
    pub campaigns: BTreeMap<String, serde_json::Value>,
    /// Every trial with its campaign's name.
    pub trials: Vec<(String, Trial)>,
    /// Every change request as stored, by id.
    pub requests: BTreeMap<String, Request>,
    /// Every run with its campaign's name.
    pub runs: Vec<(String, RunRow)>,
    /// The champions' test-split results: (campaign, trial number) to metrics.
    pub tests: BTreeMap<(String, u64), Metrics>,
    /// The agents' stored requests and answers: the key each is stored under to
    /// the SHA-256 of its body as stored now.
    pub agent_texts: BTreeMap<String, String>,
    /// Campaign name to its current generation as stored (campaigns with
    /// `[generations]` that have started one).
    pub generations: BTreeMap<String, i64>,
    /// True when the database would let a ledger row be updated or deleted
    /// (its append-only guards were dropped).
    pub ledger_writable: bool,
}

/// A run as its row stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Its id.
    pub id: u64,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended, if it ended cleanly.
    pub ended_at: Option<Timestamp>,
    /// Why it ended.
    pub end_reason: Option<String>,
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

/// An entry's time and event, read from its payload.
struct Body {
    at: String,
    event: Event,
}

/// Reads `at` and the event of a payload. The event is deserialized from the
/// whole payload (serde skips the chain's members), not through a
/// `#[serde(flatten)]` wrapper, which buffers every value first and cost a
/// third of the replay; `at`, the first member of a canonical payload, is
/// sliced out directly.
fn parse_body(payload: &str) -> serde_json::Result<Body> {
    #[derive(Deserialize)]
    struct At {
        at: String,
    }
    let event: Event = serde_json::from_str(payload)?;
    let sliced = payload
        .strip_prefix("{\"at\":\"")
        .and_then(|rest| rest.split_once('"'))
        .map(|(at, _)| at)
        .filter(|at| !at.contains('\\'));
    let at = match sliced {
        Some(at) => at.to_string(),
        None => serde_json::from_str::<At>(payload)?.at,
    };
    Ok(Body { at, event })
}

/// What a verified ledger says each campaign's governed state is: what the
/// engine acts on, so that `run`, a worker or a decision never acts on a value
/// the ledger does not back.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Replayed {
    /// The number of entries.
    pub entries: u64,
    /// Each campaign by name.
    pub campaigns: BTreeMap<String, ReplayedCampaign>,
    /// The Optuna studies, as `serve-optuna` acts on them.
    pub optuna: crate::optuna::Studies,
}

/// One campaign as its ledger entries describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplayedCampaign {
    /// The canonical spec in effect.
    pub spec: serde_json::Value,
    /// The tripwire request that halts the campaign: the latest one filed, while
    /// no tripwire request has been approved since it tripped.
    pub halted_by: Option<String>,
    /// Trial CPU seconds so far, re-evaluations and test refits included.
    pub cpu_seconds: f64,
    /// Tokens the campaign's language-model agents used, over every run.
    pub llm_tokens: u64,
    /// Wall seconds of every run so far: from its `run_started` to its
    /// `run_ended`, or to its campaign's last entry while it was the latest run.
    pub wall_seconds: f64,
    /// Its generations (`[generations]`).
    pub generations: GenerationState,
}

/// Verifies the chain, replays every event (checking the governance rules as
/// they stood at each entry) and compares the result with `state`. Returns what
/// the ledger says, or the violation with the smallest `seq`.
pub fn audit(rows: &[Entry], state: &StateSnapshot) -> Result<Replayed, Violation> {
    let (entries, replay) = replay(rows)?;
    compare::all(entries, &replay, state)?;
    let mut campaigns: BTreeMap<String, ReplayedCampaign> = replay
        .campaigns
        .iter()
        .map(|(name, c)| {
            let replayed = ReplayedCampaign {
                spec: c.spec.clone(),
                halted_by: c.halted_since.and(c.tripwire_request.clone()),
                cpu_seconds: c.cpu_seconds,
                llm_tokens: c.llm_tokens,
                wall_seconds: 0.0,
                generations: c.generations.clone(),
            };
            (name.clone(), replayed)
        })
        .collect();
    for ((campaign, _), run) in &replay.runs {
        if let Some(c) = campaigns.get_mut(campaign) {
            let end = run.ended_at.unwrap_or(run.last_at);
            c.wall_seconds += (end - run.started_at).max(0) as f64 / 1000.0;
        }
    }
    Ok(Replayed {
        entries,
        campaigns,
        optuna: replay.optuna,
    })
}

/// The chain checked and every event replayed, before any comparison.
fn replay(rows: &[Entry]) -> Result<(u64, Replay), Violation> {
    let entries = verify_chain(rows)?;
    let mut replay = Replay::default();
    let mut bodies = parse_bodies(rows).into_iter();
    for row in rows {
        let seq = row.seq;
        let body: Body = bodies
            .next()
            .unwrap_or_else(|| parse_body(&row.payload))
            .map_err(|e| violation(seq, format!("unknown event: {e}")))?;
        let at = parse_rfc3339(&body.at)
            .ok_or_else(|| violation(seq, format!("at {:?} is not an RFC 3339 time", body.at)))?;
        replay.apply(row, at, body.event)?;
    }
    Ok((entries, replay))
}

/// Every payload parsed as an event, in order, on every available core (parsing
/// is most of the replay's time; the replay itself stays sequential).
fn parse_bodies(rows: &[Entry]) -> Vec<serde_json::Result<Body>> {
    let parse = |rows: &[Entry]| -> Vec<serde_json::Result<Body>> {
        rows.iter().map(|row| parse_body(&row.payload)).collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use firebreak_core::{Params, TrialState};

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
                state: None,
            },
        ]);
        let mut state = StateSnapshot::default();
        state
            .campaigns
            .insert("c".into(), serde_json::json!({"x": 1}));
        let mut trial = Trial::queued(0, Params::new(), "random", "");
        state.trials.push(("c".into(), trial.clone()));
        assert_eq!(audit(&rows, &state).map(|r| r.entries), Ok(2));
        trial.state = TrialState::Complete;
        state.trials[0].1 = trial;
        assert_eq!(audit(&rows, &state).expect_err("disagrees").seq, Some(1));
    }
}

/// The governance rules of the replay, each broken the way an attacker with
/// write access to the database (and no key) would break it: a correctly
/// chained entry that the engine would never have written.
#[cfg(test)]
mod governance_tests {
    use super::*;
    use crate::checkpoint::{SigningKey, public_key_string};
    use crate::request::{RequestBody, RequestKind, RequestState, SignedDecision, Verdict};
    use serde_json::json;

    const DAY: Timestamp = 86_400_000;
    const T0: Timestamp = 1_795_000_000_000;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn spec(approvers: serde_json::Value, quorum: u64) -> serde_json::Value {
        json!({
            "campaign": {"name": "c", "seed": 0},
            "search": {"n_trials": 10, "sampler": "tpe"},
            "space": {"x": {"type": "float", "low": 0.0, "high": 1.0}},
            "governance": {"approvers": approvers, "quorum": quorum}
        })
    }

    fn people() -> serde_json::Value {
        json!([
            {"name": "alice", "key": public_key_string(&key(1).verifying_key()), "os_user": "ann"},
            {"name": "bob", "key": public_key_string(&key(2).verifying_key())}
        ])
    }

    /// A ledger under construction: events of campaign "c", each at a time.
    struct Ledger {
        rows: Vec<Entry>,
    }

    impl Ledger {
        fn new(spec: serde_json::Value) -> Ledger {
            let mut ledger = Ledger { rows: Vec::new() };
            let spec_hash = String::new();
            ledger.push(T0, Event::CampaignCreated { spec, spec_hash });
            ledger
        }

        fn push(&mut self, at: Timestamp, event: Event) -> u64 {
            let seq = self.rows.len() as u64;
            let prev = self.rows.last().map_or(GENESIS, |r| r.hash);
            self.rows
                .push(Entry::seal(seq, &prev, "c", at, &event).expect("sealed"));
            seq
        }

        fn file(&mut self, at: Timestamp, id: &str, kind: RequestKind, by: &str) -> Request {
            let diff = match kind {
                RequestKind::Tripwire => json!([]),
                _ => json!([{"op": "replace", "path": "/search/n_trials", "value": 50}]),
            };
            let request = Request::new(RequestBody {
                v: 1,
                id: id.into(),
                campaign: "c".into(),
                kind,
                diff,
                base_spec_hash: String::new(),
                requested_by: by.into(),
                reason: "test".into(),
                created_at: firebreak_core::format_rfc3339(at),
                expires_at: firebreak_core::format_rfc3339(at + DAY),
                evidence: None,
            })
            .expect("a request body canonicalises");
            self.push(
                at,
                Event::RequestFiled {
                    request: request.body.clone(),
                    hash: request.hash.clone(),
                    diff_hash: request.diff_hash.clone(),
                    policy: None,
                },
            );
            request
        }

        fn decide(&mut self, at: Timestamp, request: &Request, seed: u8, by: &str) -> u64 {
            let decision =
                SignedDecision::sign(&key(seed), by, Verdict::Approve, &request.hash, "");
            let id = request.body.id.clone();
            self.push(
                at,
                Event::RequestDecided {
                    id,
                    decision,
                    policy: crate::Authorization {
                        decision: "allow".into(),
                        policies: vec![],
                    },
                },
            )
        }

        fn close(&mut self, at: Timestamp, id: &str, state: RequestState) -> u64 {
            let (id, reason) = (id.to_string(), String::new());
            self.push(at, Event::RequestClosed { id, state, reason })
        }

        fn change(
            &mut self,
            at: Timestamp,
            path: &str,
            value: serde_json::Value,
            request: Option<&str>,
        ) -> u64 {
            let current = self.spec_in_effect();
            let diff = json!([{"op": "replace", "path": path, "value": value}]);
            let spec = crate::apply_patch(&current, &diff).expect("applies");
            let spec_hash = crate::entry::hex(&{
                use sha2::Digest as _;
                sha2::Sha256::digest(canonical_json(&spec).expect("canonical").as_bytes())
            });
            let request = request.map(str::to_string);
            let by = "x".to_string();
            self.push(
                at,
                Event::SpecChanged {
                    spec,
                    spec_hash,
                    diff,
                    request,
                    by,
                },
            )
        }

        fn spec_in_effect(&self) -> serde_json::Value {
            replay(&self.rows).expect("replays").1.campaigns["c"]
                .spec
                .clone()
        }

        /// The replay's verdict: `None` when it accepts, else the seq and reason.
        fn verdict(&self) -> Option<(Option<u64>, String)> {
            replay(&self.rows).err().map(|v| (v.seq, v.reason))
        }
    }

    fn refused_at(ledger: &Ledger, seq: u64, words: &str) {
        let (at, reason) = ledger.verdict().expect("the replay refuses it");
        assert_eq!(at, Some(seq), "{reason}");
        assert!(reason.contains(words), "{reason:?} does not say {words:?}");
    }

    #[test]
    fn a_request_less_spec_change_of_a_governed_setting_is_a_violation() {
        let mut ledger = Ledger::new(spec(people(), 1));
        ledger.change(T0 + 1, "/search/sampler", json!("random"), None);
        assert_eq!(ledger.verdict(), None, "a free change needs no request");
        let forged = ledger.change(T0 + 2, "/search/n_trials", json!(1000), None);
        refused_at(&ledger, forged, "no approved request");
        for (path, value) in [
            ("/space/x/high", json!(100.0)),
            ("/governance/quorum", json!(1)),
            (
                "/governance/approvers",
                json!([{"name": "eve", "key": "ed25519:AAAA", "role": "admin"}]),
            ),
            ("/governance", json!({})),
        ] {
            let mut ledger = Ledger::new(spec(people(), 2));
            let forged = ledger.change(T0 + 2, path, value, None);
            refused_at(&ledger, forged, "governed setting");
        }
    }

    #[test]
    fn an_approved_request_carries_only_changes_of_its_own_kind() {
        let mut ledger = Ledger::new(spec(people(), 1));
        let request = ledger.file(T0 + 1, "R1", RequestKind::Budget, "local:root");
        ledger.decide(T0 + 2, &request, 2, "bob");
        ledger.close(T0 + 2, "R1", RequestState::Approved);
        ledger.change(T0 + 2, "/search/n_trials", json!(50), Some("R1"));
        assert_eq!(ledger.verdict(), None);
        // One approval carries its change out once.
        let twice = ledger.change(T0 + 3, "/search/n_trials", json!(50), Some("R1"));
        refused_at(&ledger, twice, "carried out already");
        // The same approval cannot carry a space change.
        let mut other = Ledger::new(spec(people(), 1));
        let mut body = request.body.clone();
        body.kind = RequestKind::Budget;
        body.diff = json!([{"op": "replace", "path": "/space/x/high", "value": 9.0}]);
        let filed = Request::new(body).expect("a request body canonicalises");
        other.push(
            T0 + 1,
            Event::RequestFiled {
                request: filed.body.clone(),
                hash: filed.hash.clone(),
                diff_hash: filed.diff_hash.clone(),
                policy: None,
            },
        );
        other.decide(T0 + 2, &filed, 2, "bob");
        other.close(T0 + 2, "R1", RequestState::Approved);
        let forged = other.change(T0 + 2, "/space/x/high", json!(9.0), Some("R1"));
        refused_at(&other, forged, "approved a budget change");
    }

    #[test]
    fn closing_a_request_needs_what_the_close_claims() {
        let mut ledger = Ledger::new(spec(people(), 1));
        ledger.file(T0, "R1", RequestKind::Tripwire, "tripwire:0");
        let early = ledger.close(T0 + 1, "R1", RequestState::Expired);
        refused_at(&ledger, early, "does not expire until");

        let mut ledger = Ledger::new(spec(people(), 1));
        ledger.file(T0, "R1", RequestKind::Tripwire, "tripwire:0");
        let alone = ledger.close(T0 + 1, "R1", RequestState::Superseded);
        refused_at(&ledger, alone, "no newer tripwire request");

        let mut ledger = Ledger::new(spec(people(), 1));
        ledger.file(T0, "R1", RequestKind::Budget, "alice");
        ledger.file(T0 + 1, "R2", RequestKind::Budget, "agent:tpe");
        let by_agent = ledger.close(T0 + 1, "R1", RequestState::Superseded);
        refused_at(&ledger, by_agent, "never closes a person's request");

        let mut ledger = Ledger::new(spec(people(), 1));
        ledger.file(T0, "R1", RequestKind::Budget, "alice");
        ledger.file(T0 + 1, "R2", RequestKind::Budget, "bob");
        ledger.close(T0 + 1, "R1", RequestState::Superseded);
        ledger.close(T0 + 2 * DAY, "R2", RequestState::Expired);
        assert_eq!(ledger.verdict(), None);
    }

    #[test]
    fn decisions_follow_the_rules_of_deciding() {
        let mut ledger = Ledger::new(spec(people(), 1));
        let request = ledger.file(T0, "R1", RequestKind::Budget, "local:ann");
        let own = ledger.decide(T0 + 1, &request, 1, "alice");
        refused_at(&ledger, own, "their own request");

        let mut ledger = Ledger::new(spec(people(), 1));
        let request = ledger.file(T0, "R1", RequestKind::Budget, "local:root");
        let late = ledger.decide(T0 + 2 * DAY, &request, 2, "bob");
        refused_at(&ledger, late, "after it expired");

        // One key listed under two names decides once, so a quorum of two is
        // never reached with it.
        let mut twice = people();
        twice
            .as_array_mut()
            .expect("list")
            .push(json!({"name": "dave", "key": public_key_string(&key(2).verifying_key())}));
        let mut ledger = Ledger::new(spec(twice, 2));
        let request = ledger.file(T0, "R1", RequestKind::Budget, "local:root");
        ledger.decide(T0 + 1, &request, 2, "bob");
        let again = ledger.decide(T0 + 2, &request, 2, "dave");
        refused_at(&ledger, again, "twice");
    }

    #[test]
    fn a_tripped_campaign_starts_nothing_in_a_later_run_until_a_tripwire_request_is_approved() {
        let start = |ledger: &mut Ledger, at: Timestamp, run: u64, number: u64| {
            ledger.push(
                at,
                Event::RunStarted {
                    run,
                    version: String::new(),
                    os_user: String::new(),
                    sandbox: None,
                    host: String::new(),
                    pid: 0,
                },
            );
            ledger.push(
                at,
                Event::TrialProposed {
                    number,
                    params: firebreak_core::Params::new(),
                    proposer: "tpe".into(),
                    rationale: String::new(),
                    retry_of: None,
                    policy: None,
                    exploit: None,
                    state: None,
                },
            );
            ledger.push(
                at,
                Event::TrialStarted {
                    number,
                    run,
                    worker: 0,
                    policy: None,
                },
            )
        };
        let mut ledger = Ledger::new(spec(people(), 1));
        start(&mut ledger, T0, 1, 0);
        let request = ledger.file(T0 + 1, "R1", RequestKind::Tripwire, "tripwire:0");
        let decision = SignedDecision::sign(&key(2), "bob", Verdict::Reject, &request.hash, "no");
        ledger.push(
            T0 + 2,
            Event::RequestDecided {
                id: "R1".into(),
                decision,
                policy: crate::Authorization {
                    decision: "allow".into(),
                    policies: vec![],
                },
            },
        );
        ledger.close(T0 + 2, "R1", RequestState::Rejected);
        let started = start(&mut ledger, T0 + 3, 2, 1);
        refused_at(&ledger, started, "halted the campaign");

        let mut ledger = Ledger::new(spec(people(), 1));
        start(&mut ledger, T0, 1, 0);
        let request = ledger.file(T0 + 1, "R1", RequestKind::Tripwire, "tripwire:0");
        ledger.decide(T0 + 2, &request, 2, "bob");
        ledger.close(T0 + 2, "R1", RequestState::Approved);
        start(&mut ledger, T0 + 3, 2, 1);
        assert_eq!(ledger.verdict(), None);
    }
}

//! The storage conformance suite: one generic set of checks that every [`Store`]
//! implementation must pass, run here against SQLite and PostgreSQL (a throwaway
//! server started by `firebreak-pgtest`), and racing real processes on both: a
//! shared queue claimed by four, and (on PostgreSQL) one ledger appended to by
//! eight for `FIREBREAK_APPEND_SECS` seconds (10 by default), which must stay one
//! gap-free hash chain that the audit replays to the state tables.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use firebreak_core::{Metrics, ParamValue, Params, Report, TrialState};
use firebreak_ledger::{
    Authorization, Event, RequestKind, RequestState, SignedDecision, SigningKey, Verdict, audit,
};
use firebreak_store::{
    Closing, NewTrial, Outcome, PgStore, ProcessInfo, RequestDraft, RunInfo, SpecUpdate,
    SqliteStore, Start, Store, StoreError, TokenRecord,
};

fn new_trial(x: i64, priority: i64) -> NewTrial {
    let mut params = Params::new();
    params.insert("x".into(), ParamValue::Int(x));
    NewTrial {
        params,
        proposer: "test".into(),
        rationale: format!("x = {x}"),
        retry_of: None,
        priority,
        number: None,
        policy: None,
        exploit: None,
        state: None,
    }
}

/// A start on `run`/`worker` with no policy decision and no slot limit.
fn start(run: u64, worker: u32) -> Start {
    Start {
        run,
        worker,
        policy: None,
        slots: None,
    }
}

fn complete(value: f64) -> Outcome {
    let mut metrics = Metrics::new();
    metrics.insert("y".into(), value);
    Outcome {
        state: TrialState::Complete,
        metrics,
        error: None,
        cpu_seconds: Some(0.5),
        wall_seconds: Some(1.0),
        log: Some("done\n".into()),
    }
}

fn info() -> RunInfo {
    RunInfo {
        version: "test".into(),
        os_user: "tester".into(),
        sandbox: None,
        host: "localhost".into(),
        pid: std::process::id(),
        lease_ms: None,
    }
}

/// The check `firebreak audit verify` makes, on both ways of reading.
async fn audited<S: Store>(store: &S) {
    let rows = store.ledger().await.expect("ledger");
    let state = store.snapshot().await.expect("snapshot");
    audit(&rows, &state).expect("ledger and state agree");
    let (rows, state) = store.ledger_and_snapshot().await.expect("one instant");
    audit(&rows, &state).expect("ledger and state agree");
}

async fn campaigns_are_unique<S: Store>(store: &S) {
    let spec = serde_json::json!({"campaign": {"name": "a"}});
    store.create_campaign("a", &spec).await.expect("created");
    assert!(matches!(
        store.create_campaign("a", &spec).await,
        Err(StoreError::CampaignExists(_))
    ));
    let record = store.campaign("a").await.expect("read").expect("exists");
    assert_eq!(record.spec, spec);
    assert!(store.campaign("nope").await.expect("read").is_none());
    audited(store).await;
}

async fn numbers_queue_order_and_claims<S: Store>(store: &S) {
    store
        .create_campaign("q", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("q", &info()).await.expect("run");
    assert_eq!(
        store
            .enqueue("q", &new_trial(0, 0))
            .await
            .expect("enqueued"),
        0
    );
    assert_eq!(
        store
            .enqueue("q", &new_trial(1, 0))
            .await
            .expect("enqueued"),
        1
    );
    // A person's configuration goes first in line.
    assert_eq!(
        store
            .enqueue("q", &new_trial(2, 1))
            .await
            .expect("enqueued"),
        2
    );
    let first = store
        .claim_queued("q", &start(run, 0))
        .await
        .expect("claim")
        .expect("one");
    assert_eq!((first.number, first.state), (2, TrialState::Running));
    let second = store
        .claim_queued("q", &start(run, 0))
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(second.number, 0);
    let started = store
        .propose_and_start("q", &new_trial(3, 0), &start(run, 1))
        .await
        .expect("started");
    assert_eq!((started.number, started.state), (3, TrialState::Running));
    let counts = store.counts("q").await.expect("counts");
    assert_eq!((counts.queued, counts.running), (1, 3));
    audited(store).await;
}

async fn finishing_is_a_compare_and_set<S: Store>(store: &S) {
    store
        .create_campaign("f", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("f", &info()).await.expect("run");
    let trial = store
        .propose_and_start("f", &new_trial(5, 0), &start(run, 0))
        .await
        .expect("started");
    let report = Report {
        step: 1,
        metrics: [("y".to_string(), 0.25), ("nan".to_string(), f64::NAN)]
            .into_iter()
            .collect(),
    };
    assert!(
        store
            .report("f", trial.number, run, &report)
            .await
            .expect("reported")
    );
    assert!(
        store
            .finish("f", trial.number, run, &complete(0.5))
            .await
            .expect("finished")
    );
    // Finished trials are immutable: a second finish loses.
    assert!(
        !store
            .finish("f", trial.number, run, &complete(0.9))
            .await
            .expect("no-op")
    );
    let trials = store.trials("f").await.expect("trials");
    assert_eq!(trials[0].metrics.get("y"), Some(&0.5));
    assert_eq!(trials[0].intermediate.len(), 1);
    assert!(!trials[0].intermediate[0].metrics.contains_key("nan"));
    assert_eq!(
        store.log("f", 0).await.expect("log").as_deref(),
        Some("done\n")
    );
    // Queued trials cannot be finished either.
    store
        .enqueue("f", &new_trial(6, 0))
        .await
        .expect("enqueued");
    assert!(
        !store
            .finish("f", 1, run, &complete(0.1))
            .await
            .expect("no-op")
    );
    // Reports of a finished trial are refused and leave no entry.
    assert!(
        !store
            .report("f", trial.number, run, &report)
            .await
            .expect("refused")
    );
    audited(store).await;
}

/// A run's heartbeat is its lease: once it runs out the trial is re-queued, and
/// the old holder's late report and finish are refused (the run is the fence).
async fn leases_expire_and_fence_the_old_holder<S: Store>(store: &S) {
    store
        .create_campaign("l", &serde_json::json!({}))
        .await
        .expect("created");
    let short = RunInfo {
        lease_ms: Some(150),
        ..info()
    };
    let old = store.start_run("l", &short).await.expect("run");
    let trial = store
        .propose_and_start("l", &new_trial(4, 0), &start(old, 0))
        .await
        .expect("started");
    let other = store.start_run("l", &info()).await.expect("run");
    // A live lease keeps the trial.
    let kept = store
        .requeue_expired("l", "lease expired")
        .await
        .expect("checked");
    assert!(kept.is_empty(), "{kept:?}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    store.heartbeat(other).await.expect("beat");
    let requeued = store
        .requeue_expired("l", "lease expired")
        .await
        .expect("requeued");
    assert_eq!(
        requeued.iter().map(|r| r.number).collect::<Vec<_>>(),
        [trial.number]
    );
    let again = store
        .claim_queued("l", &start(other, 0))
        .await
        .expect("claim")
        .expect("the re-queued trial");
    assert_eq!((again.number, &again.params), (trial.number, &trial.params));
    let report = Report {
        step: 1,
        metrics: [("y".to_string(), 1.0)].into_iter().collect(),
    };
    assert!(
        !store
            .report("l", trial.number, old, &report)
            .await
            .expect("fenced")
    );
    assert!(
        !store
            .finish("l", trial.number, old, &complete(0.1))
            .await
            .expect("fenced")
    );
    assert!(
        store
            .report("l", trial.number, other, &report)
            .await
            .expect("held")
    );
    assert!(
        store
            .finish("l", trial.number, other, &complete(0.2))
            .await
            .expect("held")
    );
    let trials = store.trials("l").await.expect("trials");
    assert_eq!(trials[0].metrics.get("y"), Some(&0.2));
    // The other run's lease (the default, 60 s) is live: nothing else moves.
    assert!(
        store
            .requeue_expired("l", "lease expired")
            .await
            .expect("checked")
            .is_empty()
    );
    audited(store).await;
}

/// A start asking for `slots` is refused once that many trials are running or
/// finished, in the same transaction as the count.
async fn starts_past_the_slots_are_refused<S: Store>(store: &S) {
    store
        .create_campaign("n", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("n", &info()).await.expect("run");
    let limited = |worker| Start {
        slots: Some(2),
        ..start(run, worker)
    };
    let first = store
        .propose_and_start("n", &new_trial(1, 0), &limited(0))
        .await
        .expect("first slot");
    store.enqueue("n", &new_trial(2, 0)).await.expect("queued");
    store
        .claim_queued("n", &limited(1))
        .await
        .expect("second slot")
        .expect("the queued trial");
    assert!(matches!(
        store
            .propose_and_start("n", &new_trial(3, 0), &limited(2))
            .await,
        Err(StoreError::NoSlot)
    ));
    store.enqueue("n", &new_trial(4, 0)).await.expect("queued");
    assert!(
        store
            .finish("n", first.number, run, &complete(1.0))
            .await
            .expect("finished")
    );
    // A finished trial keeps its slot.
    assert!(matches!(
        store.claim_queued("n", &limited(2)).await,
        Err(StoreError::NoSlot)
    ));
    assert_eq!(store.counts("n").await.expect("counts").queued, 1);
    audited(store).await;
}

async fn requeue_keeps_number_and_params<S: Store>(store: &S) {
    store
        .create_campaign("r", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("r", &info()).await.expect("run");
    let trial = store
        .propose_and_start("r", &new_trial(7, 0), &start(run, 0))
        .await
        .expect("started");
    let process = ProcessInfo {
        host: "h".into(),
        pid: 4242,
    };
    store
        .set_process("r", trial.number, &process)
        .await
        .expect("process");
    // A run's own re-queue leaves another run's trial alone.
    let other = store.start_run("r", &info()).await.expect("run");
    let others = store
        .propose_and_start("r", &new_trial(8, 0), &start(other, 0))
        .await
        .expect("started");
    let own = store
        .requeue_run("r", other, "run 2 was interrupted")
        .await
        .expect("requeued");
    assert_eq!(
        own.iter().map(|r| r.number).collect::<Vec<_>>(),
        [others.number]
    );
    let requeued = store
        .requeue_running("r", "run 1 died")
        .await
        .expect("requeued");
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].number, trial.number);
    // The process it had, so that its leftovers can be killed.
    assert_eq!(requeued[0].process.as_ref(), Some(&process));
    let again = store
        .claim_queued("r", &start(run + 1, 0))
        .await
        .expect("claim")
        .expect("one");
    assert_eq!((again.number, &again.params), (trial.number, &trial.params));
    store.end_run("r", run, "done").await.expect("ended");
    audited(store).await;
}

async fn racing_claimers_never_share_a_trial<S: Store + Clone>(store: &S) {
    store
        .create_campaign("race", &serde_json::json!({}))
        .await
        .expect("created");
    for x in 0..200 {
        store
            .enqueue("race", &new_trial(x, 0))
            .await
            .expect("enqueued");
    }
    let mut tasks = Vec::new();
    for worker in 0..8u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(t) = store
                .claim_queued("race", &start(1, worker))
                .await
                .expect("claim")
            {
                got.push(t.number);
                tokio::task::yield_now().await;
            }
            got
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("joined"));
    }
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (200, 200));
    audited(store).await;
}

async fn checkpoints_round_trip<S: Store>(store: &S) {
    let key = firebreak_ledger::SigningKey::from_bytes(&[3u8; 32]);
    let leaves: Vec<_> = store
        .ledger()
        .await
        .expect("ledger")
        .iter()
        .map(|e| e.hash)
        .collect();
    let checkpoint = firebreak_ledger::Checkpoint::sign(
        &key,
        leaves.len() as u64,
        &firebreak_ledger::root(&leaves),
        0,
    );
    store.add_checkpoint(&checkpoint).await.expect("stored");
    assert_eq!(
        store.checkpoints().await.expect("read").last(),
        Some(&checkpoint)
    );
}

async fn tokens_are_stored_hashed_and_revoked_once<S: Store>(store: &S) {
    let token = TokenRecord {
        id: "a1b2c3".into(),
        name: "audrey".into(),
        role: "auditor".into(),
        hash: "ab".repeat(32),
        created_at: 1_000,
        expires_at: Some(2_000),
        revoked_at: None,
    };
    store.add_token(&token).await.expect("stored");
    assert!(
        store.add_token(&token).await.is_err(),
        "an id is issued once"
    );
    assert_eq!(
        store.token("a1b2c3").await.expect("read"),
        Some(token.clone())
    );
    assert_eq!(store.token("nope").await.expect("read"), None);
    assert!(store.revoke_token("a1b2c3", 1_500).await.expect("revoked"));
    assert!(!store.revoke_token("a1b2c3", 1_600).await.expect("once"));
    assert!(!store.revoke_token("nope", 1_600).await.expect("unknown"));
    let listed = store.tokens().await.expect("listed");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(1_500));
    // Tokens are not ledgered state: issuing one leaves the audit as it was.
    audited(store).await;
}

/// The ledger read a page at a time: from any seq, at most a limit, in order.
async fn ledger_pages_match_the_whole_ledger<S: Store>(store: &S) {
    let whole = store.ledger().await.expect("ledger");
    assert!(whole.len() > 10, "the suite has written entries by now");
    let page = store.ledger_range(3, 5).await.expect("page");
    assert_eq!(page, whole[3..8].to_vec());
    let tail = store
        .ledger_range(whole.len() as u64 - 2, 100)
        .await
        .expect("tail");
    assert_eq!(tail, whole[whole.len() - 2..].to_vec());
    assert!(
        store
            .ledger_range(whole.len() as u64, 10)
            .await
            .expect("end")
            .is_empty()
    );
}

fn draft(n_trials: u64, by: &str) -> RequestDraft {
    RequestDraft {
        campaign: "g".into(),
        kind: RequestKind::Budget,
        diff: serde_json::json!([{"op": "replace", "path": "/search/n_trials", "value": n_trials}]),
        base_spec_hash: String::new(),
        requested_by: by.into(),
        reason: "more".into(),
        ttl_ms: 60_000,
        policy: Some(Authorization {
            decision: "allow".into(),
            policies: vec!["anyone-may-ask".into()],
        }),
        evidence: None,
    }
}

async fn requests_supersede_reuse_and_decide_by_compare_and_set<S: Store>(store: &S) {
    let key = SigningKey::from_bytes(&[9; 32]);
    let public = firebreak_ledger::public_key_string(&key.verifying_key());
    let spec = serde_json::json!({
        "campaign": {"name": "g"},
        "search": {"n_trials": 10},
        "governance": {"quorum": 1, "approvers": [{"name": "bob", "key": public, "role": "approver"}]}
    });
    store.create_campaign("g", &spec).await.expect("created");
    let (first, reused) = store
        .file_request(&draft(20, "agent:tpe"))
        .await
        .expect("filed");
    assert!(!reused);
    let (again, reused) = store
        .file_request(&draft(20, "agent:tpe"))
        .await
        .expect("filed");
    assert!(reused, "an identical pending change is reused");
    assert_eq!(again.body.id, first.body.id);
    let (second, _) = store
        .file_request(&draft(40, "alice"))
        .await
        .expect("filed");
    let states: Vec<(String, RequestState)> = store
        .requests(Some("g"))
        .await
        .expect("requests")
        .into_iter()
        .map(|r| (r.body.id, r.state))
        .collect();
    assert_eq!(
        states,
        [
            (first.body.id.clone(), RequestState::Superseded),
            (second.body.id.clone(), RequestState::Pending)
        ]
    );
    let decision = SignedDecision::sign(&key, "bob", Verdict::Approve, &second.hash, "");
    let allow = draft(0, "").policy.expect("a policy decision");
    let stale = store
        .decide_request(&second.body.id, &decision, &allow, 1, None)
        .await
        .expect_err("a stale decision count is refused");
    assert!(matches!(stale, StoreError::RequestChanged(_)), "{stale}");
    let new_spec = firebreak_ledger::apply_patch(&spec, &second.body.diff).expect("applies");
    let closing = Closing {
        state: RequestState::Approved,
        reason: "approved by bob".into(),
        spec: Some(SpecUpdate {
            spec: new_spec.clone(),
            submitted: Some(new_spec.clone()),
            diff: second.body.diff.clone(),
            by: "alice".into(),
        }),
    };
    let decided = store
        .decide_request(&second.body.id, &decision, &allow, 0, Some(&closing))
        .await
        .expect("decided");
    assert_eq!(decided.state, RequestState::Approved);
    let record = store.campaign("g").await.expect("read").expect("exists");
    assert_eq!(record.spec["search"]["n_trials"], 40);
    assert!(
        !store
            .close_request(&second.body.id, RequestState::Expired, "late")
            .await
            .expect("closed"),
        "a closed request stays closed"
    );
    audited(store).await;
}

async fn proposer_state_is_stored_and_ledgered<S: Store>(store: &S) {
    store
        .create_campaign("s", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("s", &info()).await.expect("run");
    let state = serde_json::json!({"v": 1, "sobol": {"point": 3, "seed": "00000000000000ff"}});
    let with_state = |x| NewTrial {
        state: Some(state.clone()),
        ..new_trial(x, 0)
    };
    store.enqueue("s", &with_state(0)).await.expect("enqueued");
    let started = store
        .propose_and_start("s", &with_state(1), &start(run, 0))
        .await
        .expect("started");
    assert_eq!(started.proposer_state.as_ref(), Some(&state));
    store
        .enqueue("s", &new_trial(2, 0))
        .await
        .expect("enqueued");
    let stored: Vec<_> = store
        .trials("s")
        .await
        .expect("trials")
        .into_iter()
        .map(|t| t.proposer_state)
        .collect();
    assert_eq!(stored, [Some(state.clone()), Some(state), None]);
    let proposed: Vec<bool> = store
        .ledger()
        .await
        .expect("ledger")
        .iter()
        .filter(|e| e.kind == "trial_proposed" && e.payload.contains("\"campaign\":\"s\""))
        .map(|e| {
            e.payload
                .contains(r#""state":{"sobol":{"point":3,"seed":"00000000000000ff"},"v":1}"#)
        })
        .collect();
    assert_eq!(proposed, [true, true, false]);
    audited(store).await;
}

/// An ended run's trials go back to the queue whatever its lease.
async fn an_ended_runs_trials_are_requeued<S: Store>(store: &S) {
    store
        .create_campaign("e", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("e", &info()).await.expect("run");
    let trial = store
        .propose_and_start("e", &new_trial(0, 0), &start(run, 0))
        .await
        .expect("started");
    let kept = store
        .requeue_expired("e", "lease ran out")
        .await
        .expect("none expired");
    assert!(kept.is_empty(), "{kept:?}");
    store.end_run("e", run, "done").await.expect("ended");
    let requeued = store
        .requeue_expired("e", "run ended")
        .await
        .expect("requeued");
    let numbers: Vec<u64> = requeued.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [trial.number]);
    audited(store).await;
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    firebreak_ledger::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// The methods the other checks leave out, each as a user would notice it, and
/// the whole replayed by the audit: notes and generations, heartbeats, process
/// ids, logs, pausing and resuming, test-split results, agent texts, free spec
/// changes and expiring requests.
async fn every_other_method_round_trips_and_audits<S: Store>(store: &S) {
    let spec = serde_json::json!({
        "generations": {"count": 2},
        "search": {"n_trials": 10},
        "space": {}
    });
    store.create_campaign("x", &spec).await.expect("created");
    let denied = Event::Denied {
        action: "propose_trial".into(),
        principal: "agent:tpe".into(),
        reason: "outside the space".into(),
        policy: None,
        subject: Some(serde_json::json!({"x": 1})),
    };
    store.record_note("x", &denied).await.expect("noted");
    let not_a_note = Event::RunEnded {
        run: 1,
        reason: "no".into(),
    };
    assert!(matches!(
        store.record_note("x", &not_a_note).await,
        Err(StoreError::Corrupt(_))
    ));
    let generation = Event::GenerationStarted {
        generation: 1,
        space: serde_json::json!({}),
        from: None,
        teacher: None,
        parent: false,
    };
    store.record_note("x", &generation).await.expect("noted");
    let run = store.start_run("x", &info()).await.expect("run");
    store.heartbeat(run).await.expect("beat");
    let runs = store.runs("x").await.expect("runs");
    assert_eq!(
        runs.iter().map(|r| (r.id, r.ended_at)).collect::<Vec<_>>(),
        [(run, None)]
    );
    assert!(runs[0].heartbeat_at >= runs[0].started_at);
    assert!(!store.has_queued("x").await.expect("read"));
    let first = store
        .propose_and_start("x", &new_trial(1, 0), &start(run, 0))
        .await
        .expect("started");
    let queued = store.enqueue("x", &new_trial(2, 0)).await.expect("queued");
    assert!(store.has_queued("x").await.expect("read"));
    let claimed = store
        .claim_queued("x", &start(run, 1))
        .await
        .expect("claim")
        .expect("one");
    assert_eq!(claimed.generation, Some(1));
    let process = ProcessInfo {
        host: "h".into(),
        pid: 4242,
    };
    store
        .set_process("x", first.number, &process)
        .await
        .expect("recorded");
    let mut done = complete(0.5);
    done.log = Some("a\0b\n".into());
    assert!(
        store
            .finish("x", first.number, run, &done)
            .await
            .expect("finished")
    );
    assert_eq!(
        store.log("x", first.number).await.expect("log").as_deref(),
        Some("a\u{fffd}b\n")
    );
    assert!(matches!(
        store.log("x", 99).await,
        Err(StoreError::NoTrial { number: 99, .. })
    ));
    // A scheduler pauses a trial and resumes it later, once.
    let pruned = Outcome {
        state: TrialState::Pruned,
        error: Some("paused at step 1".into()),
        ..complete(0.9)
    };
    assert!(
        store
            .finish("x", claimed.number, run, &pruned)
            .await
            .expect("pruned")
    );
    let resumed = store
        .resume_paused("x", claimed.number, run, 1, "promoted")
        .await
        .expect("resumed")
        .expect("it was paused");
    assert_eq!(
        (resumed.number, resumed.state, resumed.error),
        (queued, TrialState::Running, None)
    );
    assert!(
        store
            .resume_paused("x", claimed.number, run, 1, "promoted")
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .finish("x", claimed.number, run, &complete(0.7))
            .await
            .expect("finished")
    );
    let trials = store.trials("x").await.expect("trials");
    assert_eq!(
        trials.iter().map(|t| t.generation).collect::<Vec<_>>(),
        [Some(1), Some(1)]
    );
    // The champion's one test-split result.
    let test_metrics: Metrics = [("test_accuracy".to_string(), 0.75)].into();
    assert!(
        store
            .record_test("x", first.number, &test_metrics, Some(1.5))
            .await
            .expect("tested")
    );
    assert!(
        !store
            .record_test("x", first.number, &test_metrics, None)
            .await
            .expect("once only")
    );
    assert!(
        !store
            .record_test("x", 99, &test_metrics, None)
            .await
            .expect("no such trial")
    );
    assert_eq!(
        store.tests("x").await.expect("tests"),
        [(first.number, test_metrics)].into()
    );
    // An agent's exchange, its texts kept whole by their hashes.
    let (request, answer) = ("{\"model\":\"m\"}", "{\"choices\":[]}");
    let answered = Event::AgentAnswered {
        model: "m".into(),
        mode: "config".into(),
        request_sha256: sha256_hex(request),
        response_sha256: Some(sha256_hex(answer)),
        files: None,
        prompt_tokens: 10,
        completion_tokens: 5,
        attempts: 1,
        outcome: "error".into(),
        reason: Some("no proposal".into()),
    };
    let texts = [
        (sha256_hex(request), request.to_string()),
        (sha256_hex(answer), answer.to_string()),
    ];
    store
        .record_agent_exchange("x", &answered, &texts)
        .await
        .expect("recorded");
    store
        .record_agent_exchange("x", &answered, &texts)
        .await
        .expect("texts kept once");
    assert_eq!(
        store
            .agent_text(&sha256_hex(answer))
            .await
            .expect("read")
            .as_deref(),
        Some(answer)
    );
    assert_eq!(store.agent_text("00").await.expect("read"), None);
    // A free setting changes without a request.
    let diff = serde_json::json!([{"op": "add", "path": "/search/proposer", "value": "tpe"}]);
    let changed = firebreak_ledger::apply_patch(&spec, &diff).expect("applies");
    let update = SpecUpdate {
        spec: changed.clone(),
        submitted: None,
        diff,
        by: "alice".into(),
    };
    store.change_spec("x", &update).await.expect("changed");
    let record = store.campaign("x").await.expect("read").expect("exists");
    assert_eq!(record.spec, changed);
    assert!(matches!(
        store.change_spec("nope", &update).await,
        Err(StoreError::NoCampaign(_))
    ));
    // A request nobody decided expires, once.
    let (filed, _) = store
        .file_request(&RequestDraft {
            campaign: "x".into(),
            ttl_ms: 0,
            ..draft(20, "agent:tpe")
        })
        .await
        .expect("filed");
    // Past its expiry (the clock's millisecond must move on).
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(
        store
            .close_request(&filed.body.id, RequestState::Expired, "nobody decided")
            .await
            .expect("closed")
    );
    assert!(
        !store
            .close_request(&filed.body.id, RequestState::Expired, "nobody decided")
            .await
            .expect("closed already")
    );
    assert!(matches!(
        store
            .close_request("R999", RequestState::Expired, "?")
            .await,
        Err(StoreError::NoRequest(_))
    ));
    let listed = store.campaigns().await.expect("campaigns");
    let x = listed
        .iter()
        .find(|c| c.campaign.name == "x")
        .expect("listed");
    assert_eq!((x.counts.complete, x.counts.finished()), (2, 2));
    assert_eq!(x.last_run.as_ref().map(|r| r.id), Some(run));
    store.end_run("x", run, "done").await.expect("ended");
    audited(store).await;
}

/// Polls `check` until it holds, for up to five seconds: a PostgreSQL lock's
/// description and release are written by its own task a moment later.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn campaign_locks_are_exclusive<S: Store>(store: &S) {
    assert_eq!(store.lock_holder("l").await.expect("holder"), None);
    let mut lock = store.lock_campaign("l", "first").await.expect("locked");
    assert_eq!(
        store.lock_holder("l").await.expect("holder").as_deref(),
        Some("first")
    );
    match store.lock_campaign("l", "second").await {
        Err(StoreError::Locked { campaign, holder }) => {
            assert_eq!((campaign.as_str(), holder.as_str()), ("l", "first"));
        }
        other => panic!("a second lock: {other:?}"),
    }
    // Another campaign's lock is another lock.
    let other = store.lock_campaign("m", "other").await.expect("locked");
    lock.describe("run 1, pid 7").expect("described");
    eventually("the new description is seen", || async {
        store.lock_holder("l").await.expect("holder").as_deref() == Some("run 1, pid 7")
    })
    .await;
    drop(lock);
    let again = store
        .lock_campaign("l", "third")
        .await
        .expect("free once dropped");
    assert_eq!(
        store.lock_holder("l").await.expect("holder").as_deref(),
        Some("third")
    );
    drop(again);
    drop(other);
    eventually("both locks are released", || async {
        store.lock_holder("l").await.expect("holder").is_none()
            && store.lock_holder("m").await.expect("holder").is_none()
    })
    .await;
}

async fn suite<S: Store + Clone>(store: S) {
    requests_supersede_reuse_and_decide_by_compare_and_set(&store).await;
    campaigns_are_unique(&store).await;
    numbers_queue_order_and_claims(&store).await;
    finishing_is_a_compare_and_set(&store).await;
    requeue_keeps_number_and_params(&store).await;
    racing_claimers_never_share_a_trial(&store).await;
    checkpoints_round_trip(&store).await;
    proposer_state_is_stored_and_ledgered(&store).await;
    leases_expire_and_fence_the_old_holder(&store).await;
    starts_past_the_slots_are_refused(&store).await;
    an_ended_runs_trials_are_requeued(&store).await;
    every_other_method_round_trips_and_audits(&store).await;
    campaign_locks_are_exclusive(&store).await;
    tokens_are_stored_hashed_and_revoked_once(&store).await;
    ledger_pages_match_the_whole_ledger(&store).await;
}

fn sqlite_url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/db.sqlite", dir.path().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&sqlite_url(&dir)).await.expect("opened");
    suite(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_on_postgres() {
    let url = firebreak_pgtest::fresh_database().await;
    let store = PgStore::open(&url).await.expect("opened");
    suite(store).await;
}

/// Runs `body` with the store `url` names: a child process learns which kind
/// from its URL alone.
macro_rules! with_store {
    ($url:expr, |$store:ident| $body:expr) => {{
        let url: &str = $url;
        if url.starts_with("sqlite://") {
            let $store = SqliteStore::open(url).await.expect("opened");
            $body
        } else {
            let $store = PgStore::open(url).await.expect("opened");
            $body
        }
    }};
}

/// Starts `n` copies of this test binary running only `helper`, each with
/// `FIREBREAK_TEST_URL`, `FIREBREAK_TEST_WORKER` and `env`, and returns the
/// numbers each printed after `prefix`.
fn run_helpers(
    helper: &str,
    n: u32,
    url: &str,
    env: &[(&str, String)],
    prefix: &str,
) -> Vec<Vec<u64>> {
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..n)
        .map(|worker| {
            std::process::Command::new(&exe)
                .args(["--exact", helper, "--nocapture", "--test-threads=1"])
                .env("FIREBREAK_TEST_URL", url)
                .env("FIREBREAK_TEST_WORKER", worker.to_string())
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawned")
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let output = child.wait_with_output().expect("waited");
            let text = String::from_utf8_lossy(&output.stdout);
            assert!(output.status.success(), "{helper} failed:\n{text}");
            text.lines()
                .filter_map(|l| l.split(prefix).nth(1))
                .map(|n| n.trim().parse::<u64>().expect("number"))
                .collect()
        })
        .collect()
}

/// The helper's store and worker, or `None` when the test runs on its own
/// (not as a child of a racing test).
fn helper_env() -> Option<(String, u32)> {
    let url = std::env::var("FIREBREAK_TEST_URL").ok()?;
    let worker = std::env::var("FIREBREAK_TEST_WORKER")
        .expect("worker")
        .parse()
        .expect("number");
    Some((url, worker))
}

#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Several real processes claim from one queue: each trial is claimed exactly
/// once. The child processes are this test binary itself, re-run with an
/// environment variable that makes `claim_helper` do the claiming.
async fn racing_processes_never_share_a_trial(url: &str) {
    with_store!(url, |store| {
        store
            .create_campaign("p", &serde_json::json!({}))
            .await
            .expect("created");
        for x in 0..120 {
            store
                .enqueue("p", &new_trial(x, 0))
                .await
                .expect("enqueued");
        }
        let all: Vec<u64> = run_helpers("claim_helper", 4, url, &[], "claimed ")
            .into_iter()
            .flatten()
            .collect();
        let unique: BTreeSet<u64> = all.iter().copied().collect();
        assert_eq!((all.len(), unique.len()), (120, 120));
        audited(&store).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_processes_never_share_a_trial_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    racing_processes_never_share_a_trial(&sqlite_url(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_processes_never_share_a_trial_on_postgres() {
    racing_processes_never_share_a_trial(&firebreak_pgtest::fresh_database().await).await;
}

async fn claim_all<S: Store>(store: S, worker: u32) {
    while let Some(t) = store
        .claim_queued("p", &start(100 + u64::from(worker), worker))
        .await
        .expect("claim")
    {
        say(&format!("claimed {}", t.number));
    }
}

#[tokio::test]
async fn claim_helper() {
    let Some((url, worker)) = helper_env() else {
        return; // Only acts as a child of `racing_processes_never_share_a_trial_*`.
    };
    with_store!(&url, |store| claim_all(store, worker).await)
}

/// How long each appending process runs: `FIREBREAK_APPEND_SECS`, 10 s by
/// default (a minute shows it for longer).
fn append_seconds() -> u64 {
    std::env::var("FIREBREAK_APPEND_SECS")
        .ok()
        .map(|v| v.parse().expect("FIREBREAK_APPEND_SECS: whole seconds"))
        .unwrap_or(10)
}

/// Eight processes append to one ledger at once, each through real state
/// changes (its own campaign and run, and trials proposed, reported and
/// finished in its own campaign and in one they share): the ledger stays one
/// chain with no gaps, every entry any process committed is in it, trial
/// numbers in the shared campaign are handed out once each, and the audit
/// replays it to the state tables.
///
/// Run on PostgreSQL only: on SQLite, eight processes' single-operation group
/// commits each read the ledger head before taking the write lock
/// (`sqlite/fast.rs`), and one of them soon loses that race sixteen times in a
/// row and fails with "lost the race for the ledger head too often".
async fn eight_processes_append_to_one_chain(url: &str) {
    with_store!(url, |store| {
        store
            .create_campaign("shared", &serde_json::json!({}))
            .await
            .expect("created");
        let began = Instant::now();
        let counts = run_helpers(
            "append_helper",
            8,
            url,
            &[("FIREBREAK_APPEND_SECS", append_seconds().to_string())],
            "appended ",
        );
        let appended: u64 = counts.iter().flatten().sum();
        let rows = store.ledger().await.expect("ledger");
        say(&format!(
            "{} entries from 8 processes in {:.1} s",
            rows.len(),
            began.elapsed().as_secs_f64()
        ));
        assert_eq!(rows.len() as u64, 1 + appended, "every committed entry");
        assert_eq!(firebreak_ledger::verify_chain(&rows), Ok(rows.len() as u64));
        let gaps: Vec<u64> = rows
            .iter()
            .enumerate()
            .filter(|(i, e)| e.seq != *i as u64)
            .map(|(i, _)| i as u64)
            .collect();
        assert_eq!(gaps, Vec::<u64>::new(), "seq runs 0, 1, 2, …");
        let shared: Vec<u64> = store
            .trials("shared")
            .await
            .expect("trials")
            .iter()
            .map(|t| t.number)
            .collect();
        assert_eq!(shared, (0..shared.len() as u64).collect::<Vec<_>>());
        assert!(shared.len() >= 8, "every process started shared trials");
        audited(&store).await;
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_append_to_one_chain_on_postgres() {
    eight_processes_append_to_one_chain(&firebreak_pgtest::fresh_database().await).await;
}

/// One appending process: prints how many ledger entries it committed.
async fn append_for<S: Store>(store: S, worker: u32, seconds: u64) {
    let own = format!("w{worker}");
    store
        .create_campaign(&own, &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run(&own, &info()).await.expect("run");
    let mut appended = 2;
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut x = 0;
    while Instant::now() < deadline || x < 2 {
        // Alternately in its own campaign and in the shared one.
        let campaign = if x % 2 == 0 { own.as_str() } else { "shared" };
        let trial = store
            .propose_and_start(campaign, &new_trial(x, 0), &start(run, worker))
            .await
            .expect("started");
        let report = Report {
            step: 1,
            metrics: [("y".to_string(), x as f64)].into_iter().collect(),
        };
        assert!(
            store
                .report(campaign, trial.number, run, &report)
                .await
                .expect("reported")
        );
        assert!(
            store
                .finish(campaign, trial.number, run, &complete(x as f64))
                .await
                .expect("finished")
        );
        appended += 4;
        x += 1;
    }
    say(&format!("appended {appended}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_helper() {
    let Some((url, worker)) = helper_env() else {
        return; // Only acts as a child of `eight_processes_append_to_one_chain_*`.
    };
    with_store!(&url, |store| append_for(store, worker, append_seconds())
        .await)
}

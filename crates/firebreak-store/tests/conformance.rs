//! The storage conformance suite: one generic set of checks that every [`Store`]
//! implementation must pass, run here against SQLite (and against PostgreSQL once
//! that store exists, by adding one line to `suite_on_every_store`).

use std::collections::BTreeSet;
use std::sync::Arc;

use firebreak_core::{Metrics, ParamValue, Params, Report, TrialState};
use firebreak_ledger::{
    Authorization, RequestKind, RequestState, SignedDecision, SigningKey, Verdict, audit,
};
use firebreak_store::{
    Closing, NewTrial, Outcome, RequestDraft, RunInfo, SpecUpdate, SqliteStore, Start, Store,
    StoreError,
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

fn start(run: u64, worker: u32) -> Start {
    Start {
        run,
        worker,
        policy: None,
        slots: None,
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

async fn audited<S: Store>(store: &S) {
    let rows = store.ledger().await.expect("ledger");
    let state = store.snapshot().await.expect("snapshot");
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
    store
        .report("f", trial.number, run, &report)
        .await
        .expect("reported");
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
    let requeued = store
        .requeue_running("r", "run 1 died")
        .await
        .expect("requeued");
    assert_eq!(requeued.len(), 1);
    assert_eq!(requeued[0].number, trial.number);
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

async fn suite<S: Store + Clone>(store: S) {
    requests_supersede_reuse_and_decide_by_compare_and_set(&store).await;
    campaigns_are_unique(&store).await;
    numbers_queue_order_and_claims(&store).await;
    finishing_is_a_compare_and_set(&store).await;
    requeue_keeps_number_and_params(&store).await;
    leases_expire_and_fence_the_old_holder(&store).await;
    starts_past_the_slots_are_refused(&store).await;
    racing_claimers_never_share_a_trial(&store).await;
    checkpoints_round_trip(&store).await;
    proposer_state_is_stored_and_ledgered(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn suite_on_every_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&format!("sqlite://{}/db.sqlite", dir.path().display()))
        .await
        .expect("opened");
    suite(store).await;
}

/// Several real processes claim from one queue: each trial is claimed exactly once.
/// The child processes are this test binary itself, re-run with an environment
/// variable that makes `claim_helper` do the claiming.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_processes_never_share_a_trial() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let store = SqliteStore::open(&url).await.expect("opened");
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
    let exe = std::env::current_exe().expect("test binary");
    let children: Vec<_> = (0..4)
        .map(|worker| {
            std::process::Command::new(&exe)
                .args(["--exact", "claim_helper", "--nocapture", "--test-threads=1"])
                .env("FIREBREAK_TEST_CLAIM_URL", &url)
                .env("FIREBREAK_TEST_CLAIM_WORKER", worker.to_string())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("spawned")
        })
        .collect();
    let mut all = Vec::new();
    for child in children {
        let output = child.wait_with_output().expect("waited");
        assert!(output.status.success());
        let text = String::from_utf8_lossy(&output.stdout);
        all.extend(
            text.lines()
                .filter_map(|l| l.split("claimed ").nth(1))
                .map(|n| n.parse::<u64>().expect("number")),
        );
    }
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!((all.len(), unique.len()), (120, 120));
    audited(&store).await;
}

#[tokio::test]
async fn claim_helper() {
    let Ok(url) = std::env::var("FIREBREAK_TEST_CLAIM_URL") else {
        return; // Only acts as a child of `racing_processes_never_share_a_trial`.
    };
    let worker: u32 = std::env::var("FIREBREAK_TEST_CLAIM_WORKER")
        .expect("worker")
        .parse()
        .expect("number");
    let store = Arc::new(SqliteStore::open(&url).await.expect("opened"));
    while let Some(t) = store
        .claim_queued("p", &start(100 + u64::from(worker), worker))
        .await
        .expect("claim")
    {
        #[allow(clippy::print_stdout)]
        {
            println!("claimed {}", t.number);
        }
    }
}

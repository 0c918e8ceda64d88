//! The ledger at scale: builds a SQLite database of N real ledger entries (default
//! 1,000,000) through `SqliteStore::append_batch`, then measures what
//! `firebreak audit verify` does on it (read the rows, check the chain, build the
//! Merkle tree, verify checkpoint signatures against roots) less the state
//! snapshot and the replay, and inclusion proofs at that size. The replay needs
//! state tables the engine wrote: `verify DB` below, on a database the engine made.
//!
//! Run: `cargo run --release -p firebreak-store --example ledger_scale -- [ENTRIES] [DB]`
//! (`bench/ledger.sh` runs it and writes `bench/results/ledger.md`).
//!
//! `ledger_scale verify DB` instead times, on an existing database, the steps of
//! `firebreak audit verify` one by one (the ledger and state snapshot read in one
//! transaction, the chain, the replay with its governance rules and the
//! comparison with the state, the Merkle tree, the stored checkpoints), as
//! `bench/ledger.sh` does for the whole command, to show where its time goes.

use std::time::Instant;

use firebreak_core::{Metrics, ParamValue, Params, Report, Trial, TrialState};
use firebreak_ledger::{Authorization, Checkpoint, Event, MerkleTree, SigningKey};
use firebreak_store::{SqliteStore, Store};

const CAMPAIGN: &str = "scale";
/// Entries per transaction.
const BATCH: usize = 1_000;
/// Runs of each read-side measurement; the median is reported.
const RUNS: usize = 3;

/// A small deterministic generator for realistic values.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn allow(policy: &str) -> Option<Authorization> {
    Some(Authorization {
        decision: "allow".into(),
        policies: vec![policy.into()],
    })
}

fn spec() -> serde_json::Value {
    serde_json::json!({
        "name": CAMPAIGN,
        "objective": {"metric": "val_accuracy", "direction": "maximize"},
        "n_trials": 1_000_000,
        "space": {
            "lr": {"type": "float", "low": 1e-5, "high": 0.1, "log": true},
            "layers": {"type": "int", "low": 1, "high": 8},
            "dropout": {"type": "float", "low": 0.0, "high": 0.5},
            "activation": {"type": "categorical", "choices": ["relu", "gelu", "tanh"]}
        },
        "sampler": {"name": "tpe"},
        "governance": {"quorum": 1, "approvers": []}
    })
}

/// The four entries of one trial's life, and the trial as the state tables hold it.
fn trial_events(number: u64, rng: &mut Lcg) -> ([Event; 4], Trial) {
    let mut params = Params::new();
    params.insert(
        "lr".into(),
        ParamValue::Float(1e-5 * 10f64.powf(4.0 * rng.next())),
    );
    params.insert(
        "layers".into(),
        ParamValue::Int(1 + (rng.next() * 8.0) as i64),
    );
    params.insert("dropout".into(), ParamValue::Float(0.5 * rng.next()));
    let activation = ["relu", "gelu", "tanh"][(rng.next() * 3.0) as usize % 3];
    params.insert("activation".into(), ParamValue::Str(activation.into()));
    let accuracy = 0.5 + 0.49 * rng.next();
    let report: Metrics = [("val_accuracy".to_string(), accuracy * 0.9)].into();
    let metrics: Metrics = [
        ("val_accuracy".to_string(), accuracy),
        ("val_loss".to_string(), 1.0 - accuracy + 0.1 * rng.next()),
    ]
    .into();
    let rationale = format!(
        "tpe: expected improvement {:.6} over the best of {number} trials",
        rng.next() * 0.01
    );
    let events = [
        // Built from its JSON form, which leaves optional members to their defaults.
        serde_json::from_value(serde_json::json!({
            "kind": "trial_proposed",
            "data": {
                "number": number,
                "params": params,
                "proposer": "tpe",
                "rationale": rationale,
                "policy": allow("default-propose"),
            }
        }))
        .expect("a trial_proposed event"),
        Event::TrialStarted {
            number,
            run: 1,
            worker: (number % 8) as u32,
            policy: allow("default-start"),
        },
        Event::TrialReported {
            number,
            step: 1,
            metrics: report.clone(),
        },
        Event::TrialFinished {
            number,
            state: TrialState::Complete,
            metrics: metrics.clone(),
            error: None,
            cpu_seconds: Some(1.0 + rng.next()),
            wall_seconds: Some(1.5 + rng.next()),
        },
    ];
    let mut trial = Trial::queued(number, params, "tpe", &rationale);
    trial.state = TrialState::Complete;
    trial.metrics = metrics;
    trial.intermediate = vec![Report {
        step: 1,
        metrics: report,
    }];
    (events, trial)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

type Failure = Box<dyn std::error::Error>;

#[allow(clippy::print_stdout)] // a benchmark reports on stdout
#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("verify") {
        let db = args.nth(1).ok_or("usage: ledger_scale verify DB")?;
        return verify_steps(&db).await;
    }
    let entries: u64 = args.next().map_or(Ok(1_000_000), |a| a.parse())?;
    let db = args
        .next()
        .unwrap_or_else(|| "/tmp/firebreak-ledger-scale.db".into());
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{db}{suffix}"));
    }
    let store = SqliteStore::open(&db).await?;

    // Components, per entry, on one core.
    let components = {
        let mut rng = Lcg(7);
        let events: Vec<Event> = (0..2_500)
            .flat_map(|n| trial_events(n, &mut rng).0)
            .collect();
        let t0 = Instant::now();
        let mut prev = firebreak_ledger::GENESIS;
        let mut sealed = Vec::with_capacity(events.len());
        for (seq, event) in events.iter().enumerate() {
            let entry = firebreak_ledger::Entry::seal(seq as u64, &prev, CAMPAIGN, 0, event)?;
            prev = entry.hash;
            sealed.push(entry);
        }
        let seal = t0.elapsed().as_secs_f64() / events.len() as f64;
        let t0 = Instant::now();
        for entry in &sealed {
            std::hint::black_box(firebreak_ledger::leaf_hash(entry.payload.as_bytes()));
        }
        let leaf = t0.elapsed().as_secs_f64() / sealed.len() as f64;
        let t0 = Instant::now();
        let mut h = prev;
        for _ in 0..100_000 {
            h = firebreak_ledger::node_hash(&h, &prev);
        }
        std::hint::black_box(h);
        let node = t0.elapsed().as_secs_f64() / 100_000.0;
        let t0 = Instant::now();
        firebreak_ledger::verify_chain(&sealed).map_err(|v| v.to_string())?;
        let chain = t0.elapsed().as_secs_f64() / sealed.len() as f64;
        let bytes = sealed.iter().map(|e| e.payload.len()).sum::<usize>() / sealed.len();
        println!(
            "components: payload {bytes} bytes; seal {:.2} µs, leaf hash {:.2} µs, node hash {:.2} µs, verify_chain {:.2} µs per entry",
            seal * 1e6,
            leaf * 1e6,
            node * 1e6,
            chain * 1e6
        );
        (seal, leaf, node, bytes)
    };

    // Append: campaign_created, run_started, then four entries per trial, in
    // transactions of BATCH entries. The time of each third is kept.
    let mut rng = Lcg(42);
    let mut pending = vec![
        Event::CampaignCreated {
            spec: spec(),
            spec_hash: String::new(),
        },
        Event::RunStarted {
            run: 1,
            version: "bench".into(),
            os_user: "bench".into(),
            sandbox: None,
            host: "bench".into(),
            pid: 1,
        },
    ];
    let mut appended = 0u64;
    let mut number = 0u64;
    let mut thirds = Vec::new();
    let mut third_start = (Instant::now(), 0u64);
    let mut appending = 0.0f64;
    while appended < entries {
        while (pending.len() as u64) < (BATCH as u64).min(entries - appended) {
            let (events, _) = trial_events(number, &mut rng);
            number += 1;
            pending.extend(events);
        }
        let take = pending.len().min((entries - appended) as usize);
        let batch: Vec<Event> = pending.drain(..take).collect();
        let started = Instant::now();
        appended += store.append_batch(CAMPAIGN, &batch).await?;
        appending += started.elapsed().as_secs_f64();
        if appended * 3 >= entries * (thirds.len() as u64 + 1) {
            thirds.push((appended - third_start.1) as f64 / appending.max(1e-9));
            third_start = (Instant::now(), appended);
            appending = 0.0;
        }
    }
    let _ = third_start.0;
    let append_rate = median(thirds.clone());
    println!("append: {appended} entries in batches of {BATCH}; entries/s per third {thirds:.0?}");

    // Checkpoints signed at a quarter, half, three quarters and the whole ledger.
    let key = SigningKey::from_bytes(&[7u8; 32]);
    {
        let tree = MerkleTree::new(store.ledger_hashes().await?);
        for quarter in 1..=4u64 {
            let size = entries * quarter / 4;
            let root = tree.root(size).ok_or("no root")?;
            store
                .add_checkpoint(&Checkpoint::sign(&key, size, &root, 0))
                .await?;
        }
    }

    // Verify: what `audit verify` does, less the replay.
    let (mut read, mut chain, mut tree_s, mut sigs, mut total) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let rows = store.ledger().await?;
        let t1 = Instant::now();
        let n = firebreak_ledger::verify_chain(&rows).map_err(|v| v.to_string())?;
        assert_eq!(n, entries);
        let t2 = Instant::now();
        let tree = MerkleTree::new(rows.iter().map(|e| e.hash).collect());
        let root = tree.root(tree.len());
        let t3 = Instant::now();
        for checkpoint in store.checkpoints().await? {
            checkpoint.verify_signature()?;
            let at = tree
                .root(checkpoint.tree_size)
                .ok_or("checkpoint beyond the ledger")?;
            if firebreak_ledger::hex(&at) != checkpoint.root {
                return Err("checkpoint root differs".into());
            }
        }
        let t4 = Instant::now();
        std::hint::black_box(root);
        read.push((t1 - t0).as_secs_f64());
        chain.push((t2 - t1).as_secs_f64());
        tree_s.push((t3 - t2).as_secs_f64());
        sigs.push((t4 - t3).as_secs_f64());
        total.push((t4 - t0).as_secs_f64());
    }

    // Inclusion proofs at the full size: the median of RUNS rounds of 100 proofs
    // (store path: leaf hashes of two blocks and the Merkle cache), each checked.
    let mut proofs = Vec::new();
    let mut rng = Lcg(99);
    for _ in 0..RUNS {
        let t0 = Instant::now();
        for _ in 0..100 {
            let seq = (rng.next() * entries as f64) as u64;
            let proof = store
                .inclusion_proof(seq, entries)
                .await?
                .ok_or("no proof")?;
            assert!(firebreak_ledger::verify_inclusion(
                &proof.leaf,
                seq,
                entries,
                &proof.path,
                &proof.root
            ));
        }
        proofs.push(t0.elapsed().as_secs_f64() / 100.0);
    }
    // For comparison: a proof from every leaf hash (the fallback path).
    let t0 = Instant::now();
    let tree = MerkleTree::new(store.ledger_hashes().await?);
    std::hint::black_box(tree.inclusion_proof(entries / 3, entries));
    let full_proof = t0.elapsed().as_secs_f64();

    let (verify_s, proof_s) = (median(total), median(proofs));
    println!("| measure | median of {RUNS} | target | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| append, entries/s (batches of {BATCH}) | {append_rate:.0} | ≥ 100000 | {:.2} |",
        append_rate / 100_000.0
    );
    println!("| verify: read rows, s | {:.3} | | |", median(read));
    println!("| verify: chain, s | {:.3} | | |", median(chain));
    println!("| verify: Merkle tree, s | {:.3} | | |", median(tree_s));
    println!("| verify: 4 checkpoints, s | {:.3} | | |", median(sigs));
    println!(
        "| chain, tree and signatures only (no snapshot read, no replay: not the whole command), s | {verify_s:.3} | | |"
    );
    println!(
        "| inclusion proof at {entries}, ms | {:.3} | ≤ 1 | {:.2} |",
        proof_s * 1e3,
        proof_s * 1e3
    );
    println!(
        "| inclusion proof from every leaf hash (fallback), ms | {:.1} | | |",
        full_proof * 1e3
    );
    let (seal, leaf, node, bytes) = components;
    println!(
        "| components: seal / leaf hash / node hash, µs ({bytes}-byte payloads) | {:.2} / {:.2} / {:.2} | | |",
        seal * 1e6,
        leaf * 1e6,
        node * 1e6
    );
    Ok(())
}

/// The steps of `firebreak audit verify` on the database at `db`, each timed
/// (median of RUNS); prints a table.
#[allow(clippy::print_stdout)] // a benchmark reports on stdout
async fn verify_steps(db: &str) -> Result<(), Failure> {
    let store = SqliteStore::open_existing(db).await?;
    let mut times: [Vec<f64>; 6] = Default::default();
    let (mut entries, mut bytes) = (0, 0);
    for _ in 0..RUNS {
        let t0 = Instant::now();
        let (rows, state) = store.ledger_and_snapshot().await?;
        let t1 = Instant::now();
        let tree = MerkleTree::new(rows.iter().map(|e| e.hash).collect());
        let t2 = Instant::now();
        firebreak_ledger::verify_chain(&rows).map_err(|v| v.to_string())?;
        let t3 = Instant::now();
        firebreak_ledger::audit(&rows, &state).map_err(|v| v.to_string())?;
        let t4 = Instant::now();
        for checkpoint in store.checkpoints().await? {
            checkpoint.verify_signature()?;
            let at = tree
                .root(checkpoint.tree_size)
                .ok_or("checkpoint beyond the ledger")?;
            if firebreak_ledger::hex(&at) != checkpoint.root {
                return Err("checkpoint root differs".into());
            }
        }
        let t5 = Instant::now();
        entries = rows.len();
        bytes = rows.iter().map(|e| e.payload.len()).sum::<usize>() / rows.len().max(1);
        let t6 = Instant::now();
        drop((rows, state, tree));
        for (slot, (a, b)) in times.iter_mut().zip([
            (t0, t1),
            (t1, t2),
            (t2, t3),
            (t3, t4),
            (t4, t5),
            (t6, Instant::now()),
        ]) {
            slot.push((b - a).as_secs_f64());
        }
    }
    let [read, tree, chain, audit, checkpoints, free] = times.map(median);
    println!(
        "| step of `audit verify` ({entries} entries, {bytes}-byte payloads) | s, median of {RUNS} |"
    );
    println!("|---|---|");
    println!("| read: ledger rows and state snapshot, one transaction | {read:.3} |");
    println!("| Merkle tree of every leaf | {tree:.3} |");
    println!("| audit: chain, parse, governance replay, comparison with the state | {audit:.3} |");
    println!("| of which the chain alone (`verify_chain`, timed on its own) | {chain:.3} |");
    println!("| stored checkpoints: signatures and roots | {checkpoints:.3} |");
    println!("| freeing rows, state and tree | {free:.3} |");
    println!(
        "| sum (the command also starts, opens the database and exits) | {:.3} |",
        read + tree + audit + checkpoints + free
    );
    Ok(())
}

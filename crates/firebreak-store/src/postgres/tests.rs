//! Tests of what only the PostgreSQL store has, or what needs its insides: an
//! abort between the state and the ledger write, schema versions, the
//! append-only guards, batches and proofs. Each test gets a fresh database on
//! the throwaway server of `firebreak-pgtest`.

use std::sync::atomic::Ordering;

use firebreak_core::Params;
use firebreak_ledger::MerkleTree;

use super::*;

fn new_trial() -> NewTrial {
    NewTrial {
        params: Params::new(),
        proposer: "test".into(),
        rationale: String::new(),
        retry_of: None,
        priority: 0,
        number: None,
        policy: None,
        exploit: None,
        state: None,
    }
}

fn start(run: u64) -> Start {
    Start {
        run,
        worker: 0,
        policy: None,
        slots: None,
    }
}

async fn audited(store: &PgStore) {
    let (rows, state) = store.ledger_and_snapshot().await.expect("read");
    firebreak_ledger::audit(&rows, &state).expect("consistent");
}

async fn fresh() -> (PgStore, String) {
    let url = firebreak_pgtest::fresh_database().await;
    (PgStore::open(&url).await.expect("opened"), url)
}

#[test]
fn the_begin_takes_the_ledger_lock() {
    assert!(BEGIN_LOCKED.ends_with(&format!("pg_advisory_xact_lock({LEDGER_NAMESPACE}, 0)")));
}

#[tokio::test]
async fn an_abort_between_state_and_ledger_write_leaves_neither() {
    let (store, _) = fresh().await;
    store
        .create_campaign("c", &serde_json::json!({}))
        .await
        .expect("created");
    let started = store
        .propose_and_start("c", &new_trial(), &start(1))
        .await
        .expect("started");
    let before = (
        store.ledger().await.expect("ledger"),
        store.trials("c").await.expect("trials"),
    );
    store
        .inner
        .fault_after_state_write
        .store(true, Ordering::SeqCst);
    let outcome = Outcome::complete(Metrics::new());
    // Each fails after its state statement ran (with its ledger entry, where the
    // two are one statement), before the commit.
    assert!(matches!(
        store.finish("c", started.number, 1, &outcome).await,
        Err(StoreError::Injected)
    ));
    assert!(matches!(
        store.enqueue("c", &new_trial()).await,
        Err(StoreError::Injected)
    ));
    assert!(matches!(
        store.propose_and_start("c", &new_trial(), &start(1)).await,
        Err(StoreError::Injected)
    ));
    assert!(matches!(
        store.start_run("c", &run_info()).await,
        Err(StoreError::Injected)
    ));
    store
        .inner
        .fault_after_state_write
        .store(false, Ordering::SeqCst);
    let after = (
        store.ledger().await.expect("ledger"),
        store.trials("c").await.expect("trials"),
    );
    assert_eq!(before, after);
    assert!(store.runs("c").await.expect("runs").is_empty());
    audited(&store).await;
    // The connections are usable again, and the lock was released: the failed
    // transactions rolled back.
    assert!(
        store
            .finish("c", started.number, 1, &outcome)
            .await
            .expect("finished")
    );
    assert_eq!(store.start_run("c", &run_info()).await.expect("run"), 1);
    audited(&store).await;
}

fn run_info() -> RunInfo {
    RunInfo {
        version: "test".into(),
        os_user: "tester".into(),
        host: "localhost".into(),
        pid: 1,
        sandbox: None,
        lease_ms: None,
    }
}

#[tokio::test]
async fn missing_empty_old_and_foreign_databases_are_refused() {
    let url = firebreak_pgtest::fresh_database().await;
    // An empty database is no database for commands that only read.
    assert!(matches!(
        PgStore::open_existing(&url).await,
        Err(StoreError::NoDatabase(_))
    ));
    let missing = format!("{}_nope", url);
    assert!(matches!(
        PgStore::open_existing(&missing).await,
        Err(StoreError::NoDatabase(_))
    ));
    let error = PgStore::open(&missing).await.expect_err("no such database");
    assert!(
        error
            .to_string()
            .contains("does not exist\nhint: create it"),
        "{error}"
    );
    assert!(matches!(
        PgStore::open("sqlite://x.db").await,
        Err(StoreError::Url { .. })
    ));
    // An older version is refused until upgraded; PostgreSQL has none to upgrade from.
    let store = PgStore::open(&url).await.expect("created");
    assert_eq!(store.schema_version().await.expect("v"), SCHEMA_VERSION);
    PgStore::open_existing(&url).await.expect("exists now");
    sqlx::query("UPDATE meta SET value = '8' WHERE key = 'schema_version'")
        .execute(&store.inner.pool)
        .await
        .expect("set back");
    let error = PgStore::open(&url).await.expect_err("refused");
    assert_eq!(
        error.to_string(),
        format!(
            "the database schema is version 8; this binary needs version {SCHEMA_VERSION}\n\
             hint: run `firebreak storage upgrade` (it never rewrites ledger rows)"
        )
    );
    let error = PgStore::upgrade(&url)
        .await
        .expect_err("nothing to upgrade from");
    assert!(
        error
            .to_string()
            .contains("older than any PostgreSQL schema")
    );
    sqlx::query("UPDATE meta SET value = $1 WHERE key = 'schema_version'")
        .bind(SCHEMA_VERSION.to_string())
        .execute(&store.inner.pool)
        .await
        .expect("set back");
    let (_, before) = PgStore::upgrade(&url).await.expect("current");
    assert_eq!(before, SCHEMA_VERSION);
    // A database with other tables is not taken over.
    let foreign = firebreak_pgtest::fresh_database().await;
    let mut conn = PgConnection::connect(&foreign).await.expect("connected");
    sqlx::query("CREATE TABLE accounts (id BIGINT)")
        .execute(&mut conn)
        .await
        .expect("created");
    let error = PgStore::open(&foreign).await.expect_err("foreign");
    assert!(
        error.to_string().contains("not a firebreak database"),
        "{error}"
    );
    let (fresh_store, before) = PgStore::upgrade(&firebreak_pgtest::fresh_database().await)
        .await
        .expect("a new database");
    assert_eq!(before, 0);
    assert_eq!(
        fresh_store.schema_version().await.expect("v"),
        SCHEMA_VERSION
    );
}

#[tokio::test]
async fn concurrent_opens_of_a_new_database_create_it_once() {
    let url = firebreak_pgtest::fresh_database().await;
    let opens: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::open(&url).await })
        })
        .collect();
    for open in opens {
        open.await.expect("joined").expect("opened");
    }
}

#[tokio::test]
async fn ledger_rows_cannot_be_changed_and_missing_guards_are_reported_and_restored() {
    let (store, _) = fresh().await;
    store
        .create_campaign("c", &serde_json::json!({}))
        .await
        .expect("created");
    assert!(!store.restore_guards().await.expect("present"));
    for sql in [
        "UPDATE ledger SET kind = 'x'",
        "DELETE FROM ledger",
        "TRUNCATE ledger",
    ] {
        let error = sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&store.inner.pool)
            .await
            .expect_err(sql);
        assert!(
            error.to_string().contains("ledger rows are append-only"),
            "{sql}: {error}"
        );
    }
    // Each way of switching a guard off is seen by the audit and undone.
    for sabotage in [
        "DROP TRIGGER ledger_append_only_delete ON ledger",
        "ALTER TABLE ledger DISABLE TRIGGER ledger_append_only_update",
        "ALTER TABLE ledger ENABLE REPLICA TRIGGER ledger_append_only_truncate",
        "CREATE OR REPLACE FUNCTION firebreak_ledger_append_only() RETURNS trigger \
         LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END; $$",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sabotage))
            .execute(&store.inner.pool)
            .await
            .expect(sabotage);
        let state = store.snapshot().await.expect("snapshot");
        assert!(state.ledger_writable, "{sabotage}");
        let rows = store.ledger().await.expect("ledger");
        let violation = firebreak_ledger::audit(&rows, &state).expect_err(sabotage);
        assert!(
            violation.reason.contains("append-only guards"),
            "{violation}"
        );
        assert!(
            store.restore_guards().await.expect("restored"),
            "{sabotage}"
        );
        audited(&store).await;
    }
}

#[tokio::test]
async fn batches_chain_and_proofs_match_the_merkle_tree() {
    let (store, _) = fresh().await;
    assert_eq!(store.ledger_size().await.expect("size"), 0);
    assert_eq!(store.append_batch("c", &[]).await.expect("none"), 0);
    let events: Vec<Event> = (0..1_500)
        .map(|i| Event::Denied {
            action: "start".into(),
            principal: format!("agent:{i}"),
            reason: "é \u{0} \"quoted\"".into(),
            policy: None,
            subject: Some(serde_json::json!({"n": i})),
        })
        .collect();
    for part in [&events[..1], &events[1..1_200], &events[1_200..]] {
        store.append_batch("c", part).await.expect("appended");
    }
    let rows = store.ledger().await.expect("ledger");
    assert_eq!(rows.len(), 1_500);
    assert_eq!(firebreak_ledger::verify_chain(&rows), Ok(1_500));
    assert_eq!(store.ledger_size().await.expect("size"), 1_500);
    let hashes = store.ledger_hashes().await.expect("hashes");
    assert_eq!(hashes, rows.iter().map(|e| e.hash).collect::<Vec<_>>());
    let tree = MerkleTree::new(hashes.clone());
    for (seq, size) in [
        (0, 1),
        (0, 1_500),
        (1_499, 1_500),
        (700, 1_024),
        (511, 1_000),
    ] {
        let proof = store
            .inclusion_proof(seq, size)
            .await
            .expect("proof")
            .expect("some");
        assert_eq!(proof.leaf, hashes[seq as usize]);
        assert_eq!(Some(proof.root), tree.root(size));
        assert_eq!(Some(proof.path), tree.inclusion_proof(seq, size));
    }
    assert_eq!(store.inclusion_proof(5, 5).await.expect("none"), None);
    assert_eq!(store.inclusion_proof(5, 9_999).await.expect("none"), None);
    // The batches kept the cache current: five complete blocks of 256.
    assert_eq!(store.cached_merkle_blocks().await.expect("blocks"), 5);
    // A cache built by a proof, after entries appended one by one by state
    // changes, agrees too.
    let (plain, _) = fresh().await;
    plain
        .create_campaign("c", &serde_json::json!({}))
        .await
        .expect("created");
    for _ in 0..600 {
        plain.enqueue("c", &new_trial()).await.expect("enqueued");
    }
    assert_eq!(plain.cached_merkle_blocks().await.expect("blocks"), 0);
    let hashes = plain.ledger_hashes().await.expect("hashes");
    let tree = MerkleTree::new(hashes);
    for (seq, size) in [(300, 601), (0, 512), (599, 600)] {
        let proof = plain
            .inclusion_proof(seq, size)
            .await
            .expect("proof")
            .expect("some");
        assert_eq!(Some(proof.root), tree.root(size));
        assert_eq!(Some(proof.path), tree.inclusion_proof(seq, size));
    }
    assert_eq!(plain.cached_merkle_blocks().await.expect("blocks"), 2);
}

#[tokio::test]
async fn a_requeued_trial_names_the_process_it_had() {
    let (store, _) = fresh().await;
    store
        .create_campaign("c", &serde_json::json!({}))
        .await
        .expect("created");
    let run = store.start_run("c", &run_info()).await.expect("run");
    let trial = store
        .propose_and_start("c", &new_trial(), &start(run))
        .await
        .expect("started");
    let process = ProcessInfo {
        host: "h".into(),
        pid: 42,
    };
    store
        .set_process("c", trial.number, &process)
        .await
        .expect("recorded");
    let requeued = store
        .requeue_running("c", "run died")
        .await
        .expect("requeued");
    assert_eq!(
        requeued,
        [Requeued {
            number: trial.number,
            process: Some(process),
        }]
    );
    audited(&store).await;
}

/// A certificate of no server here, valid until 2126: a root of trust that
/// does not vouch for the test server.
const OTHER_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIIBlDCCATmgAwIBAgIUZBHhdmvy9Jc22v5GHML9zF9UI7kwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTbm90LXRoZS10ZXN0LXNlcnZlcjAgFw0yNjEyMDYwMzAyNDJa
GA8yMTI2MTExMjAzMDI0MlowHjEcMBoGA1UEAwwTbm90LXRoZS10ZXN0LXNlcnZl
cjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABL9wChygUMKdaK+z76dY9kSCZvVB
LArnuvDVsnzfvfbDB1rTDRFFojPZ+tLjBi2hLj4o3gMf8SUVTRsPz2UkMEmjUzBR
MB0GA1UdDgQWBBRnOsTpGaP9tdGkRpiZXUd17OHgrDAfBgNVHSMEGDAWgBRnOsTp
GaP9tdGkRpiZXUd17OHgrDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA
MEYCIQCq2xpfyxz3jNvg412h0NA5bMVAgwXcHsP0EmNff7BN7wIhAKNh203+cTcb
x088e5BsZskLmoVukmb1chRkYZybetqx
-----END CERTIFICATE-----
";

/// TLS: with `sslmode=verify-full` and the server's certificate as the root,
/// the store works over an encrypted connection (the server says so in
/// `pg_stat_ssl`); with a root that does not vouch for the server, it refuses
/// to connect.
#[tokio::test]
async fn tls_connections_are_encrypted_and_verified() {
    let url = firebreak_pgtest::fresh_database().await;
    let root = firebreak_pgtest::server().certificate();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={}", root.display());
    let store = PgStore::open(&verified).await.expect("opened over TLS");
    store
        .create_campaign("c", &serde_json::json!({}))
        .await
        .expect("written over TLS");
    let mut conn = connect(&options_of(&verified).expect("options"))
        .await
        .expect("connected");
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .expect("pg_stat_ssl");
    assert!(encrypted);
    let folder = tempfile::tempdir().expect("folder");
    let other = folder.path().join("other.crt");
    std::fs::write(&other, OTHER_ROOT).expect("written");
    let untrusted = format!("{url}?sslmode=verify-full&sslrootcert={}", other.display());
    let refused = PgStore::open(&untrusted).await;
    assert!(
        refused.is_err(),
        "connected to a server the root does not vouch for"
    );
}

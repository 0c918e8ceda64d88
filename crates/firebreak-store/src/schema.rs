//! The SQLite schema as numbered migrations. Migrations only ever add; none
//! rewrites a ledger row. The database records its version in `meta`.

/// The schema version this binary reads and writes.
pub const SCHEMA_VERSION: u32 = 10;

/// Migration `i` (1-based) brings a database from version `i - 1` to `i`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: campaigns, runs, trials and the ledger.
    r#"
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE campaigns (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    spec_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    info TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT
);
CREATE TABLE trials (
    campaign TEXT NOT NULL,
    number INTEGER NOT NULL,
    state TEXT NOT NULL,
    params TEXT NOT NULL,
    metrics TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    proposer TEXT NOT NULL,
    rationale TEXT NOT NULL,
    retry_of INTEGER,
    priority INTEGER NOT NULL DEFAULT 0,
    run INTEGER,
    worker INTEGER,
    process TEXT,
    started_at INTEGER,
    finished_at INTEGER,
    cpu_seconds REAL,
    wall_seconds REAL,
    log TEXT,
    PRIMARY KEY (campaign, number)
);
CREATE TABLE ledger (
    seq INTEGER PRIMARY KEY,
    campaign TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    hash BLOB NOT NULL
);
CREATE TRIGGER ledger_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END;
CREATE TRIGGER ledger_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END;
"#,
    // 2: intermediate reports and the queue index.
    r#"
CREATE TABLE reports (
    campaign TEXT NOT NULL,
    number INTEGER NOT NULL,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (campaign, number, step)
);
CREATE INDEX trials_queue ON trials (campaign, state, priority DESC, number);
"#,
    // 3: signed checkpoints of the ledger's Merkle tree.
    r#"
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    payload TEXT NOT NULL
);
"#,
    // 4: governance: change requests, and the spec as people submitted it.
    r#"
ALTER TABLE campaigns ADD COLUMN submitted TEXT;
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL UNIQUE,
    campaign TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    diff_hash TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX requests_campaign ON requests (campaign, state);
"#,
    // 5: a cache of the Merkle tree: the hash of every complete perfect subtree of
    // 2^level ledger entries (level >= 8), so an inclusion proof reads a few dozen
    // rows instead of every leaf hash. Derived data: never trusted by a verifier.
    r#"
CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
"#,
    // 6: the champions' test-split results, a record of their own: before, they
    // were merged into the trial's metrics, where proposers saw them. Moved out
    // of the trials they were merged into (ledger rows untouched).
    r#"
CREATE TABLE trial_tests (
    campaign TEXT NOT NULL,
    number INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    PRIMARY KEY (campaign, number)
);
INSERT OR IGNORE INTO trial_tests (campaign, number, metrics)
    SELECT campaign, CAST(json_extract(payload, '$.data.number') AS INTEGER),
           json_extract(payload, '$.data.metrics')
    FROM ledger WHERE kind = 'trial_tested';
UPDATE trials SET metrics = json_remove(metrics, '$.test_accuracy', '$.test_loss',
                                        '$.refit_cpu_seconds')
    WHERE EXISTS (SELECT 1 FROM trial_tests t
                  WHERE t.campaign = trials.campaign AND t.number = trials.number);
"#,
    // 7: the proposer's structured state of each proposal (JSON; the `state` of
    // its `trial_proposed` entry), which proposers read back instead of parsing
    // rationales. NULL for older trials (their ledger entries have none) and for
    // proposers without state.
    r#"
ALTER TABLE trials ADD COLUMN proposer_state TEXT;
"#,
    // 8: language-model agents' requests and answers, whole, by the hex SHA-256
    // their `agent_answered` entries name (the audit re-hashes every body).
    r#"
CREATE TABLE agent_texts (
    sha256 TEXT PRIMARY KEY,
    campaign TEXT NOT NULL,
    body TEXT NOT NULL
) WITHOUT ROWID;
"#,
    // 9: generations: the campaign's current generation (set with its
    // `generation_started` entry) and the generation that first started each
    // trial. NULL for campaigns without `[generations]`.
    r#"
ALTER TABLE campaigns ADD COLUMN generation INTEGER;
ALTER TABLE trials ADD COLUMN generation INTEGER;
"#,
    // 10: the server's API tokens, by public id; only the SHA-256 of each token.
    r#"
CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER,
    revoked_at INTEGER
) WITHOUT ROWID;
"#,
];

/// The guards that make ledger rows append-only; `run` puts them back if they
/// were dropped, and `audit verify` reports their absence.
pub(crate) const LEDGER_GUARDS: &str = r#"
CREATE TRIGGER IF NOT EXISTS ledger_append_only_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END;
CREATE TRIGGER IF NOT EXISTS ledger_append_only_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger rows are append-only'); END;
"#;

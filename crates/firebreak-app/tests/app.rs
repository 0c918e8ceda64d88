//! The application layer over a store type it is given (`SqliteStore`, not
//! `AnyStore`): what a face gets back from listing, enqueue's rules, explain,
//! verify and proofs with and without signed checkpoints. The CLI's end-to-end
//! tests check the printed forms.

use firebreak_app::{App, AppError, ErrorKind};
use firebreak_core::{ParamValue, Params};
use firebreak_govern::Principal;
use firebreak_ledger::{Checkpoint, SigningKey};
use firebreak_runner::Campaign;
use firebreak_spec::CampaignSpec;
use firebreak_store::{SqliteStore, Store};

const SPEC: &str = r#"
[campaign]
name = "toy"
seed = 1

[objective]
metric = "loss"
direction = "minimize"

[space]
lr = { type = "float", low = 0.001, high = 0.1, log = true }
momentum = { type = "float", low = 0.0, high = 1.0 }
layers = { type = "int", low = 1, high = 4 }

[search]
sampler = "random"
n_trials = 4

[task]
kind = "command"
command = ["true"]
"#;

/// An app over a fresh SQLite store holding the closed campaign `toy`.
async fn app(dir: &tempfile::TempDir) -> App<SqliteStore> {
    let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
    let store = SqliteStore::open(&url).await.expect("store");
    let spec = CampaignSpec::parse(SPEC, "toy.toml").expect("valid spec");
    let campaign = Campaign::open(store.clone(), spec).await.expect("campaign");
    campaign.close("test").await.expect("closed");
    drop(campaign);
    App::new(store, dir.path().join("checkpoints"))
}

fn params(lr: ParamValue, momentum: ParamValue) -> Params {
    [
        ("lr".to_string(), lr),
        ("momentum".to_string(), momentum),
        ("layers".to_string(), ParamValue::Int(2)),
    ]
    .into_iter()
    .collect()
}

fn person() -> Principal {
    Principal::Local {
        user: "tester".into(),
    }
}

#[tokio::test]
async fn a_face_gets_plain_answers_and_classed_errors() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let app = app(&dir).await;

    let list = app.campaigns().await.expect("campaigns");
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].name.as_str(), list[0].n_trials), ("toy", 4));
    assert_eq!(list[0].state, "stopped (test)");

    // Out of range: the person's mistake, named with a hint.
    let refused = app
        .enqueue(
            "toy",
            &person(),
            params(ParamValue::Float(0.5), ParamValue::Int(1)),
        )
        .await
        .expect_err("lr out of range");
    assert_eq!(refused.kind(), ErrorKind::Usage);
    assert!(
        refused
            .to_string()
            .contains("hint: give every active parameter")
    );

    // An integer given for a float parameter is a float.
    let number = app
        .enqueue(
            "toy",
            &person(),
            params(ParamValue::Float(0.01), ParamValue::Int(1)),
        )
        .await
        .expect("queued");
    let trials = app.trials("toy", None).await.expect("trials");
    let queued = trials
        .trials
        .iter()
        .find(|t| t.number == number)
        .expect("the queued trial");
    assert_eq!(queued.params["momentum"], ParamValue::Float(1.0));
    assert!(matches!(
        app.trials("toy", Some(1)).await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        app.best("toy", None).await,
        Err(AppError::NoCompleteTrial)
    ));
    assert!(matches!(
        app.status("nope").await,
        Err(AppError::Store(firebreak_store::StoreError::NoCampaign(_)))
    ));

    // No checkpoint is signed yet: the ledger verifies, but no proof does.
    let verified = app.verify(Some("toy"), None).await.expect("verify");
    assert!(verified.ok, "{:?}", verified.reason);
    assert_eq!(verified.checkpoints, 0);
    let explained = app.explain("toy", number).await.expect("explain");
    assert!(!explained.proposal_inclusion.verified);
    assert!(
        explained
            .proposal_inclusion
            .against
            .starts_with("no signed checkpoint")
    );
    let proof = app.prove(0).await.expect("proof of the first entry");
    assert!(!proof.verified);
    assert!(matches!(
        app.prove(verified.entries as u64).await,
        Err(AppError::NoEntry { .. })
    ));
}

/// Signs and stores a checkpoint of the whole ledger with a test key (the
/// engine key lives outside the test), as `audit checkpoint` would.
async fn sign_now(app: &App<SqliteStore>) -> u64 {
    let leaves: Vec<_> = app
        .store()
        .ledger()
        .await
        .expect("ledger")
        .iter()
        .map(|e| e.hash)
        .collect();
    let key = SigningKey::from_bytes(&[9; 32]);
    let checkpoint = Checkpoint::sign(
        &key,
        leaves.len() as u64,
        &firebreak_ledger::root(&leaves),
        0,
    );
    app.store()
        .add_checkpoint(&checkpoint)
        .await
        .expect("stored");
    leaves.len() as u64
}

#[tokio::test]
async fn proofs_verify_against_signed_checkpoints_only() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let app = app(&dir).await;
    let old = sign_now(&app).await;
    let first = app.prove(0).await.expect("inclusion proof");
    assert!(first.verified, "{}", first.against);
    assert_eq!(first.tree_size, old);

    app.enqueue(
        "toy",
        &person(),
        params(ParamValue::Float(0.02), ParamValue::Float(0.5)),
    )
    .await
    .expect("queued");
    let unsigned = app
        .prove_consistency(old, old + 1)
        .await
        .expect("consistency proof");
    assert!(
        !unsigned.verified,
        "the larger tree has no signed checkpoint yet"
    );
    assert!(unsigned.old_checkpoint.is_some());

    let new = sign_now(&app).await;
    assert!(new > old);
    let extended = app
        .prove_consistency(old, new)
        .await
        .expect("consistency proof");
    assert!(extended.verified);
    assert!(!extended.proof.is_empty());
    assert!(matches!(
        app.prove_consistency(new, old).await,
        Err(AppError::Invalid(_))
    ));
    assert!(matches!(
        app.prove_consistency(old, new + 1).await,
        Err(AppError::NoEntry { .. })
    ));
    let verified = app.verify(None, None).await.expect("verify");
    assert!(verified.ok, "{:?}", verified.reason);
    assert_eq!(verified.checkpoints, 2);
}

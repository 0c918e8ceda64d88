//! The server's faces on the command line: `serve` (the HTTP API and the
//! dashboard, `firebreak_server`), `serve-optuna` (Optuna's storage API,
//! `firebreak_optuna`), `tokens new|list|revoke` (its API tokens)
//! and `sign` (a decision's signature, to paste into the dashboard or the API).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::anyhow;
use firebreak_app::Role;
use firebreak_core::format_rfc3339;
use firebreak_ledger::Verdict;
use firebreak_store::{AnyStore, Store};
use serde_json::json;

use crate::commands::app;
use crate::output::print_rows;
use crate::{Cli, CommandResult, Failure, TokensCommand};

/// `firebreak serve`.
pub(crate) async fn serve(
    cli: &Cli,
    bind: SocketAddr,
    tls: Option<(PathBuf, PathBuf)>,
    insecure_bind: bool,
) -> CommandResult {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let options = firebreak_server::Options {
        tls,
        insecure_bind,
        ..firebreak_server::Options::new(bind)
    };
    let refused = |e: firebreak_server::ServerError| {
        let code = if matches!(e, firebreak_server::ServerError::InsecureBind(_)) {
            2
        } else {
            1
        };
        Failure::new(code, e)
    };
    options.check().map_err(refused)?;
    let app = app(cli).await?;
    let log: firebreak_server::Log = Arc::new(|line: &str| eprintln!("firebreak serve: {line}"));
    let quiet = cli.quiet;
    firebreak_server::serve(app, options, log, move |at| {
        if !quiet {
            eprintln!(
                "serving the dashboard at {scheme}://{at}/ and the API at {scheme}://{at}/api/v1 (Ctrl-C stops)\n\
                 sign in with a token from `firebreak tokens new NAME --role ROLE`"
            );
        }
        // The bound address on stdout, for scripts that asked for port 0.
        println!("{scheme}://{at}");
    })
    .await
    .map_err(refused)?;
    Ok(0)
}

/// `firebreak serve-optuna`.
pub(crate) async fn serve_optuna(
    cli: &Cli,
    bind: SocketAddr,
    require_token: bool,
) -> CommandResult {
    let options = firebreak_optuna::Options {
        bind,
        local: (!require_token).then(|| format!("local:{}", firebreak_runner::os_user())),
    };
    options.check().map_err(|e| Failure::new(2, e))?;
    // An Optuna user starts with no database: make one, as `run` does.
    let app = crate::commands::app_of(AnyStore::open(&cli.storage).await?);
    let quiet = cli.quiet;
    firebreak_optuna::serve(app, options, move |at| {
        if !quiet {
            eprintln!(
                "serving Optuna's storage API at {at} (Ctrl-C stops); in Python:\n  \
                 optuna.storages.GrpcStorageProxy(host=\"{}\", port={})",
                at.ip(),
                at.port()
            );
        }
        // The bound address on stdout, for scripts that asked for port 0.
        println!("{at}");
    })
    .await
    .map_err(|e| Failure::new(1, e))?;
    Ok(0)
}

/// `firebreak govern STUDY --spec FILE`.
pub(crate) async fn govern(cli: &Cli, study: &str, file: &Path) -> CommandResult {
    let shown = file.display().to_string();
    let source = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(2, anyhow!("{shown}: cannot read the constraints file: {e}")))?;
    let spec =
        firebreak_optuna::governed_spec(study, &source, &shown).map_err(|e| Failure::new(2, e))?;
    let store = AnyStore::open(&cli.storage).await?;
    match store.create_campaign(study, &spec).await {
        Ok(_) => {
            if !cli.quiet {
                eprintln!(
                    "study {study:?} is governed: `optuna.create_study(study_name=\"{study}\", storage=GrpcStorageProxy(...))` opens it under these constraints"
                );
            }
            Ok(0)
        }
        Err(firebreak_store::StoreError::CampaignExists(_)) => Err(Failure::new(
            2,
            anyhow!(
                "campaign {study:?} exists already\nhint: constraints are fixed when a study's campaign is created; govern a new study name"
            ),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `firebreak import optuna --from SOURCE [--study NAME]`.
pub(crate) async fn import_optuna(cli: &Cli, from: &str, study: Option<&str>) -> CommandResult {
    let app = crate::commands::app_of(AnyStore::open(&cli.storage).await?);
    let principal = format!("local:{}", firebreak_runner::os_user());
    let done = firebreak_optuna::import(&app, from, study, &principal)
        .await
        .map_err(|e| Failure::new(1, e))?;
    if !cli.quiet {
        eprintln!(
            "imported study {:?} ({} trials, source sha256 {}) as campaign {:?}",
            done.study, done.trials, done.sha256, done.campaign
        );
    }
    println!("{}", done.campaign);
    Ok(0)
}

/// `firebreak export optuna CAMPAIGN --out FILE`.
pub(crate) async fn export_optuna(cli: &Cli, campaign: &str, out: &Path) -> CommandResult {
    let app = app(cli).await?;
    let journal = firebreak_optuna::export_journal(app.store(), campaign)
        .await
        .map_err(|e| Failure::new(1, e))?;
    std::fs::write(out, journal)
        .map_err(|e| Failure::new(1, anyhow!("{}: cannot write: {e}", out.display())))?;
    if !cli.quiet {
        eprintln!("wrote {}", out.display());
    }
    Ok(0)
}

/// `firebreak tokens …`.
pub(crate) async fn tokens(cli: &Cli, command: &TokensCommand) -> CommandResult {
    let app = app(cli).await?;
    match command {
        TokensCommand::New {
            name,
            role,
            expires,
        } => {
            let role = Role::parse(role)?;
            let lifetime = expires.map(|d| d.as_millis().min(i64::MAX as u128) as i64);
            let issued = app.new_token(name, role, lifetime).await?;
            println!("{}", issued.token);
            eprintln!(
                "token {} for {name} ({}), {}; shown once: only its hash is stored",
                issued.record.id,
                role.as_str(),
                issued
                    .record
                    .expires_at
                    .map_or("valid until revoked".to_string(), |at| format!(
                        "valid until {}",
                        format_rfc3339(at)
                    )),
            );
        }
        TokensCommand::List => {
            let all = app.tokens().await?;
            let when = |at: Option<i64>| at.map(format_rfc3339).unwrap_or_default();
            let mut rows = vec![vec![
                "id".into(),
                "name".into(),
                "role".into(),
                "created".into(),
                "expires".into(),
                "revoked".into(),
            ]];
            rows.extend(all.iter().map(|t| {
                vec![
                    t.id.clone(),
                    t.name.clone(),
                    t.role.clone(),
                    format_rfc3339(t.created_at),
                    when(t.expires_at),
                    when(t.revoked_at),
                ]
            }));
            print_rows(cli.format, &rows, &json!(all));
        }
        TokensCommand::Revoke { id } => {
            app.revoke_token(id).await?;
            println!("token {id} revoked");
        }
    }
    Ok(0)
}

/// `firebreak sign`.
pub(crate) async fn sign(
    cli: &Cli,
    id: &str,
    key: &Path,
    reject: bool,
    reason: &str,
) -> CommandResult {
    if reject && reason.trim().is_empty() {
        return Err(Failure::new(2, anyhow!("a rejection needs --reason")));
    }
    let verdict = if reject {
        Verdict::Reject
    } else {
        Verdict::Approve
    };
    let app = app(cli).await?;
    let (by, signature) = app.sign_decision(id, key, verdict, reason).await?;
    println!("{signature}");
    eprintln!(
        "{by}'s signature of '{}' on request {id}{}: paste it with the name {by}",
        verdict.as_str(),
        if reason.is_empty() {
            String::new()
        } else {
            format!(" (reason: {reason})")
        }
    );
    Ok(0)
}

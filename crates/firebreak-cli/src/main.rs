//! The `firebreak` command-line program: parses arguments, opens the store, calls
//! the application layer (`firebreak_app`; the runner for `run`, `worker` and
//! `launch`, which drive processes and signals) and prints. It is the only crate
//! that writes to the terminal, and it holds no rule: governance, decision and
//! verification rules live in `firebreak_app` and below.
//!
//! Exit codes (`contract.md`): 0 done; 1 runtime error; 2 usage or spec error;
//! 3 halted before `n_trials` (a firebreak: a pending request or a tripped
//! tripwire; or a limit in `[constraints]`); 4 audit verification failed;
//! 130 interrupted.

#![allow(clippy::print_stdout, clippy::print_stderr)] // the one crate that prints

mod audit;
mod commands;
mod governance;
mod k8s;
mod launch;
mod output;
mod progress;
mod serve;
mod show;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Automated research with oversight built in: search, schedule and record every
/// decision in a tamper-evident ledger.
#[derive(Debug, Parser)]
#[command(name = "firebreak", version, about)]
pub struct Cli {
    /// Where campaigns live: `sqlite://PATH` or `postgres://USER[:PASS]@HOST[:PORT]/DB`.
    #[arg(
        long,
        global = true,
        env = "FIREBREAK_STORAGE",
        default_value = "sqlite://.firebreak/firebreak.db"
    )]
    storage: String,
    /// Print only results and errors: no progress display.
    #[arg(long, global = true)]
    quiet: bool,
    /// Output format of listings.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

/// Output formats of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
    /// Comma-separated values for spreadsheets.
    Csv,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a commented example spec.
    Init {
        /// Where to write it.
        #[arg(default_value = "campaign.toml")]
        path: PathBuf,
    },
    /// Check a spec; run nothing.
    Validate {
        /// The spec file.
        spec: PathBuf,
    },
    /// Create or resume the campaign the spec names and run it.
    Run {
        /// The spec file.
        spec: PathBuf,
        /// Act as this person (a name in `[governance] approvers`); needs --key.
        #[arg(long = "as", requires = "key")]
        as_name: Option<String>,
        /// The person's private key (PKCS#8 PEM), proving who they are.
        #[arg(long)]
        key: Option<PathBuf>,
        /// When a rejected or expired tripwire request keeps the campaign
        /// halted, file a new tripwire request asking to go on.
        #[arg(long)]
        ask_to_resume: bool,
        /// File a request again for an edit identical to one that was
        /// rejected or expired (without it, such an edit is reported, not filed).
        #[arg(long)]
        ask_again: bool,
    },
    /// Join campaigns other processes run too (through a shared store) and run
    /// their trials: claims with a lease its heartbeat renews; exits 0 when they
    /// are done, 3 when one halts.
    Worker {
        /// A campaign to serve (repeatable); default: every unfinished one.
        #[arg(long = "campaign")]
        campaigns: Vec<String>,
        /// Trials run at once (default: the campaign's `parallelism`).
        #[arg(long)]
        slots: Option<u32>,
        /// The lease on a claimed trial ("60s", "2m"), renewed every third of it;
        /// a worker silent for longer loses its trials to the queue.
        #[arg(long, default_value = "60s", value_parser = duration)]
        lease: std::time::Duration,
        /// Exit after this long with no trial to run ("30s"); default: wait
        /// until the campaigns are done.
        #[arg(long, value_parser = duration)]
        idle_exit: Option<std::time::Duration>,
    },
    /// Create or resume a campaign and start its workers on a cluster's scheduler.
    #[command(subcommand)]
    Launch(LaunchCommand),
    /// List change requests (governed changes waiting for approval, and past ones).
    Requests {
        /// Only this campaign's.
        campaign: Option<String>,
    },
    /// Sign an approval of a change request.
    Approve {
        #[command(flatten)]
        decider: Decider,
    },
    /// Sign a rejection of a change request (one rejection rejects).
    Reject {
        #[command(flatten)]
        decider: Decider,
        /// Why (required).
        #[arg(long)]
        reason: String,
    },
    /// List campaigns with state and progress.
    Campaigns,
    /// State, progress and best so far of one campaign (or all).
    Status {
        /// The campaign's name.
        campaign: Option<String>,
    },
    /// Every trial of a campaign.
    Trials {
        /// The campaign's name.
        campaign: String,
        /// Only the trials of this generation (`[generations]`).
        #[arg(long)]
        generation: Option<u32>,
    },
    /// The best trial (several objectives: the Pareto set).
    Best {
        /// The campaign's name.
        campaign: String,
        /// The best of this generation (`[generations]`).
        #[arg(long)]
        generation: Option<u32>,
    },
    /// A campaign's generations: each one's space, teacher, champion, gate
    /// results and promotion, and who decided it.
    Lineage {
        /// The campaign's name.
        campaign: String,
    },
    /// The stored log tail of one trial.
    Logs {
        /// The campaign's name.
        campaign: String,
        /// The trial's number.
        number: u64,
    },
    /// Why a trial was proposed, what allowed it, its ledger entries and the
    /// inclusion proof of its proposal.
    Explain {
        /// The campaign's name.
        campaign: String,
        /// The trial's number.
        number: u64,
    },
    /// Queue a configuration chosen by a person; it runs before new proposals.
    Enqueue {
        /// The campaign's name.
        campaign: String,
        /// The parameters as a JSON object, e.g. '{"lr": 0.01, "layers": 2}'.
        #[arg(long)]
        params: String,
    },
    /// Check the ledger.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Manage the database.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Manage Ed25519 keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Serve the HTTP API under /api/v1 (OpenAPI at /api/v1/openapi.json, live
    /// events at /api/v1/events) and the dashboard at /, until Ctrl-C.
    Serve {
        /// The address to listen on; a non-loopback one needs TLS (or --insecure-bind).
        #[arg(long, default_value = "127.0.0.1:8650")]
        bind: std::net::SocketAddr,
        /// The certificate chain to serve HTTPS with (PEM).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Serve plain HTTP on a non-loopback address anyway.
        #[arg(long)]
        insecure_bind: bool,
    },
    /// Serve Optuna's gRPC storage API (`optuna.storages.GrpcStorageProxy`)
    /// over this database, until Ctrl-C: each study a campaign of kind
    /// `optuna`, every call ledgered and checked (docs/optuna.md).
    ServeOptuna {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:13000")]
        bind: std::net::SocketAddr,
        /// Refuse calls without `authorization: Bearer TOKEN` (needed to
        /// listen beyond loopback); without it, calls act as the local user.
        #[arg(long)]
        require_token: bool,
    },
    /// Give an Optuna study constraints before it opens: a trial budget, a time
    /// budget, approved parameter ranges (docs/optuna.md). Its campaign is
    /// created with them; Optuna's `create_study` then opens it.
    Govern {
        /// The Optuna study name (also the campaign's).
        study: String,
        /// The constraints file (TOML).
        #[arg(long)]
        spec: PathBuf,
    },
    /// Copy another tool's history into a new campaign.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write a campaign in another tool's format.
    #[command(subcommand)]
    Export(ExportCommand),
    /// API tokens of the server (shown once, stored hashed).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Print the base64 signature of a decision on a change request, made with
    /// your key here, to paste into the dashboard or the API elsewhere.
    Sign {
        /// The request's id (`R3`).
        id: String,
        /// Your private key (PKCS#8 PEM).
        #[arg(long)]
        key: PathBuf,
        /// Sign a rejection (default: an approval).
        #[arg(long)]
        reject: bool,
        /// Why (required to reject; signed with the verdict).
        #[arg(long, default_value = "")]
        reason: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// An Optuna study (trials, values, intermediate values, attributes), each
    /// trial ledgered as imported; the campaign's spec names the source and
    /// its SHA-256.
    Optuna {
        /// `sqlite:///PATH` (Optuna's RDB storage) or a journal file.
        #[arg(long)]
        from: String,
        /// The study to copy (needed when the source holds several).
        #[arg(long)]
        study: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    /// An Optuna study's campaign as an Optuna journal file
    /// (`JournalStorage(JournalFileBackend(FILE))` loads it).
    Optuna {
        /// The campaign.
        campaign: String,
        /// Where to write the journal.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Issue a token; it is printed once and only its hash is stored.
    New {
        /// Who or what will use it.
        name: String,
        /// auditor (reads), researcher (reads, queues, asks), approver (reads,
        /// submits signed decisions) or admin (all).
        #[arg(long)]
        role: String,
        /// How long it is valid ("30d", "12h"); default: until revoked.
        #[arg(long, value_parser = duration)]
        expires: Option<std::time::Duration>,
    },
    /// Every token issued (no secrets).
    List,
    /// Revoke a token by its id.
    Revoke {
        /// The token's id (`tokens list`).
        id: String,
    },
}

/// Who decides on a request, and how the decision is signed.
#[derive(Debug, Args)]
pub struct Decider {
    /// The request's id (`R3`).
    pub id: String,
    /// Your private key; or give --as NAME --signature SIG signed elsewhere.
    #[arg(long, required_unless_present = "signature")]
    pub key: Option<PathBuf>,
    /// Your name in the campaign's approvers.
    #[arg(long = "as")]
    pub as_name: Option<String>,
    /// A base64 Ed25519 signature over the decision message (docs/ledger-format.md).
    #[arg(long, requires = "as_name")]
    pub signature: Option<String>,
}

#[derive(Debug, Subcommand)]
enum LaunchCommand {
    /// Submit N `firebreak worker`s as one Slurm job array; prints the job id.
    /// The storage must be one every node reaches (PostgreSQL, or SQLite on a
    /// shared file system for a single node), and the spec's folder shared.
    Slurm {
        /// The spec file.
        spec: PathBuf,
        /// Array tasks, one worker each.
        #[arg(long)]
        workers: u32,
        /// The partition (`sbatch --partition`).
        #[arg(long)]
        partition: Option<String>,
        /// The time limit of each task (`sbatch --time`, e.g. "2:00:00").
        #[arg(long)]
        time: Option<String>,
        /// A further sbatch option for every task (repeatable), e.g. `--mem=4G`.
        #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
        sbatch_args: Vec<String>,
        /// Trials each worker runs at once (default: the spec's `parallelism`).
        #[arg(long)]
        slots: Option<u32>,
        /// Each worker's lease ("60s").
        #[arg(long, default_value = "60s", value_parser = duration)]
        lease: std::time::Duration,
    },
    /// Start N workers as one Kubernetes Indexed Job (`kubectl apply`); the pods
    /// read the storage URL from the Secret `firebreak-storage` (key `url`).
    K8s {
        /// The spec file.
        spec: PathBuf,
        /// Pods, one worker each.
        #[arg(long)]
        workers: u32,
        /// The worker image (`deploy/Dockerfile` builds one).
        #[arg(long)]
        image: String,
        /// The namespace (default: kubectl's context's).
        #[arg(long)]
        namespace: Option<String>,
        /// Print the manifest; create nothing.
        #[arg(long)]
        dry_run: bool,
        /// Each worker's lease ("60s").
        #[arg(long, default_value = "60s", value_parser = duration)]
        lease: std::time::Duration,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new Ed25519 key pair; writes the private key (PKCS#8 PEM, mode 0600)
    /// and prints the public key as `ed25519:…`.
    New {
        /// Whose key it is (printed with the public key).
        name: String,
        /// Where to write the private key; must not exist.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain, check the state tables against the ledger and the
    /// ledger against its signed checkpoints.
    Verify {
        /// Report on one campaign (the whole chain is always checked).
        #[arg(long)]
        campaign: Option<String>,
        /// A checkpoint file kept outside the database, or the engine's public key
        /// (`ed25519:…`) that stored checkpoints must be signed with.
        #[arg(long)]
        trusted: Option<String>,
    },
    /// Sign a checkpoint of the ledger now with the engine key, store it, print it.
    Checkpoint {
        /// Also write it to this file (to keep outside the machine).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The ledger as JSON lines (entries, then stored checkpoints), for independent
    /// verifiers such as tools/verify_ledger.py.
    Export {
        /// Only this campaign's entries in full; the others as their hashes alone.
        #[arg(long)]
        campaign: Option<String>,
    },
    /// A Markdown report of one campaign for auditors: its spec, runs, budgets
    /// used, proposals per proposer, outcomes, re-queues, checkpoints, verification.
    Report {
        /// The campaign's name.
        campaign: String,
    },
    /// The inclusion proof of ledger entry SEQ.
    Proof {
        /// The entry's sequence number.
        seq: u64,
    },
}

#[derive(Debug, Subcommand)]
enum StorageCommand {
    /// Migrate the database schema to this binary's version (never rewrites ledger rows).
    Upgrade,
}

/// A duration argument: "90", "90s", "10m", "2h".
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let parsed = firebreak_spec::Duration::parse(text)?;
    if parsed.0 == 0 {
        return Err("must be at least 1s".into());
    }
    Ok(parsed.as_std())
}

/// An error with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    error: anyhow::Error,
}

impl Failure {
    /// A failure with an explicit exit code.
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Failure {
            code,
            error: error.into(),
        }
    }
}

impl Failure {
    /// The one mapping of the application layer's errors to exit codes: lower
    /// crates' errors as they are (so messages and codes stay theirs), the
    /// layer's own by their kind.
    fn from_app(error: firebreak_app::AppError) -> Self {
        use firebreak_app::{AppError as A, ErrorKind};
        match error {
            A::Store(e) => e.into(),
            A::Spec(e) => e.into(),
            A::Runner(e) => e.into(),
            A::Ledger(e) => e.into(),
            other => {
                let code = match other.kind() {
                    ErrorKind::Usage => 2,
                    ErrorKind::Tampered => 4,
                    ErrorKind::Halted => 3,
                    _ => 1,
                };
                Failure::new(code, other)
            }
        }
    }
}

/// An error and its causes as one line, `anyhow`'s `{:#}`: "what: why: why".
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        let error: anyhow::Error = error.into();
        let error = match error.downcast::<firebreak_app::AppError>() {
            Ok(app) => return Failure::from_app(app),
            Err(error) => error,
        };
        use firebreak_runner::RunnerError as R;
        let spec_error = error.downcast_ref::<firebreak_spec::SpecError>().is_some()
            || matches!(
                error.downcast_ref::<R>(),
                Some(R::Spec(_) | R::Ungoverned { .. } | R::TaskUnavailable(_) | R::Table { .. })
            );
        let halted = matches!(error.downcast_ref::<R>(), Some(R::Halted { .. }));
        let tampered = matches!(error.downcast_ref::<R>(), Some(R::Tampered(_)));
        let code = if spec_error {
            2
        } else if tampered {
            4
        } else if halted {
            3
        } else {
            1
        };
        Failure { code, error }
    }
}

/// What a command hands back: an exit code on success paths too (3, 130).
pub type CommandResult = Result<u8, Failure>;

fn main() -> ExitCode {
    // A closed pipe (`firebreak trials X | head -3`) ends the process quietly, as
    // it ends every Unix tool, instead of a panic in `println!`. Rust's runtime
    // ignores SIGPIPE; this puts back the default. `run` prints only after it has
    // closed its run, so its trials and ledger are consistent when it ends so.
    // SAFETY: called first thing in `main`, before any thread exists, with a
    // valid signal number and the default disposition.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.code)
        }
    }
}

//! The application layer's one error enum, [`AppError`].
//!
//! Lower crates' errors are wrapped transparently, so a face shows their
//! messages as they are; the layer's own refusals say what was wrong with the
//! value given and, where there is one, end with a `hint:` line. Faces map the
//! variants to their own codes (the CLI to exit codes, the server to HTTP
//! statuses) in one place each; [`AppError::kind`] says which class a variant is.

use std::path::PathBuf;

use firebreak_govern::GovernError;
use firebreak_ledger::LedgerError;
use firebreak_runner::RunnerError;
use firebreak_spec::SpecError;
use firebreak_store::StoreError;

/// Errors of the application layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppError {
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A stored or given spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The runner (opening, governance, the ledger's verification) failed or refused.
    #[error(transparent)]
    Runner(#[from] RunnerError),
    /// A ledger value could not be built or read.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// What the person asked for is not well formed or does not apply
    /// (the message names the value and gives a hint).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be read or written.
    #[error("{context}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds something other than what it must.
    #[error("{}: {reason}", path.display())]
    BadFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A checkpoint file that is not one.
    #[error("{} is not a checkpoint", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// There is no place for the engine key.
    #[error(
        "cannot place the engine key: neither FIREBREAK_ENGINE_KEY, XDG_CONFIG_HOME nor HOME is set\nhint: set FIREBREAK_ENGINE_KEY to a file path"
    )]
    NoEngineKeyPlace,
    /// `best` of a campaign without a complete trial.
    #[error("no complete trial yet")]
    NoCompleteTrial,
    /// The ledger has no entry of this sequence number.
    #[error("the ledger has no entry {seq} (it has {entries})")]
    NoEntry {
        /// The number asked for.
        seq: u64,
        /// How many entries the ledger has.
        entries: usize,
    },
    /// A trial without its `trial_proposed` entry.
    #[error(
        "trial {0} has no trial_proposed entry in the ledger\nhint: run `firebreak audit verify`"
    )]
    NoProposal(u64),
    /// A decision refused by the policy or by the rules of deciding (it is ledgered as `denied`).
    #[error("refused: {0}")]
    Refused(GovernError),
    /// An approved request cannot be carried out on the spec in effect.
    #[error("{0}")]
    Inapplicable(String),
    /// A stored record does not match what the ledger backs.
    #[error("{0}")]
    Tampered(String),
    /// The caller presented no valid credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The caller's role does not allow what they asked for.
    #[error("{0}")]
    Forbidden(String),
    /// The checkpoints published outside the database could not be read, so
    /// the ledger cannot be checked against them.
    #[error(transparent)]
    Unpublished(Box<AppError>),
}

/// The class of an [`AppError`], for a face to map to its codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input (arguments, a spec) is wrong.
    Usage,
    /// The operation failed or was refused.
    Failed,
    /// The ledger, or a record it backs, does not verify.
    Tampered,
    /// The campaign is halted at a firebreak: a request must be decided first.
    Halted,
    /// What was asked for does not exist.
    NotFound,
    /// No valid credentials were presented.
    Unauthenticated,
    /// The caller may not do this.
    Forbidden,
}

impl AppError {
    /// Which class this error is: what the person gave, what happened, what
    /// the ledger says, or a firebreak in the way (the classes of the CLI's
    /// exit codes 2, 1, 4 and 3).
    pub fn kind(&self) -> ErrorKind {
        use RunnerError as R;
        match self {
            AppError::Spec(_)
            | AppError::Invalid(_)
            | AppError::Runner(
                R::Spec(_) | R::Ungoverned { .. } | R::TaskUnavailable(_) | R::Table { .. },
            ) => ErrorKind::Usage,
            AppError::Tampered(_) | AppError::Unpublished(_) | AppError::Runner(R::Tampered(_)) => {
                ErrorKind::Tampered
            }
            AppError::Runner(R::Halted { .. }) => ErrorKind::Halted,
            AppError::Store(
                StoreError::NoCampaign(_) | StoreError::NoTrial { .. } | StoreError::NoRequest(_),
            )
            | AppError::NoEntry { .. } => ErrorKind::NotFound,
            AppError::Unauthenticated(_) => ErrorKind::Unauthenticated,
            AppError::Forbidden(_) => ErrorKind::Forbidden,
            _ => ErrorKind::Failed,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        AppError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(error: AppError, expected: ErrorKind) {
        assert_eq!(error.kind(), expected, "{error}");
    }

    #[test]
    fn errors_are_classed_as_the_faces_map_them() {
        check(AppError::Invalid("bad --params".into()), ErrorKind::Usage);
        check(AppError::NoCompleteTrial, ErrorKind::Failed);
        check(
            AppError::Store(StoreError::NoCampaign("x".into())),
            ErrorKind::NotFound,
        );
        check(
            AppError::Unauthenticated("no".into()),
            ErrorKind::Unauthenticated,
        );
        check(AppError::Forbidden("no".into()), ErrorKind::Forbidden);
        check(AppError::Tampered("request R1".into()), ErrorKind::Tampered);
        check(
            AppError::Unpublished(Box::new(AppError::io(
                "reading x",
                std::io::Error::other("denied"),
            ))),
            ErrorKind::Tampered,
        );
        check(
            AppError::Runner(RunnerError::Halted {
                request: "R1".into(),
                reason: "tripwire".into(),
            }),
            ErrorKind::Halted,
        );
        check(
            AppError::Runner(RunnerError::TaskUnavailable("no table".into())),
            ErrorKind::Usage,
        );
    }

    #[test]
    fn an_io_error_reads_as_its_context_then_its_cause() {
        let error = AppError::io("reading key k.pem", std::io::Error::other("denied"));
        assert_eq!(error.to_string(), "reading key k.pem");
        assert_eq!(
            std::error::Error::source(&error).map(|e| e.to_string()),
            Some("denied".to_string())
        );
    }
}

//! The store's error enum.

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database driver failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// SQLite itself failed, on a path that calls its C API directly.
    #[error("database error: SQLite code {code}: {message}")]
    Sqlite {
        /// SQLite's extended result code.
        code: i32,
        /// SQLite's message.
        message: String,
    },
    /// The storage URL is not understood.
    #[error(
        "unsupported storage URL {url:?}\nhint: use sqlite://PATH (e.g. sqlite://.firebreak/firebreak.db) or postgres://USER[:PASS]@HOST[:PORT]/DB"
    )]
    Url {
        /// The URL given.
        url: String,
    },
    /// The database's schema and this binary disagree.
    #[error("{message}\nhint: {hint}")]
    Schema {
        /// What disagrees.
        message: String,
        /// The command that fixes it.
        hint: String,
    },
    /// A command that only reads found no database.
    #[error(
        "no firebreak database at {0}\nhint: `firebreak run SPEC` creates one; --storage or FIREBREAK_STORAGE points elsewhere"
    )]
    NoDatabase(String),
    /// A campaign of this name exists already.
    #[error("campaign {0:?} already exists")]
    CampaignExists(String),
    /// No campaign of this name.
    #[error(
        "no campaign named {0:?}\nhint: `firebreak campaigns` lists the campaigns in this database"
    )]
    NoCampaign(String),
    /// No trial of this number.
    #[error("campaign {campaign:?} has no trial {number}")]
    NoTrial {
        /// The campaign.
        campaign: String,
        /// The number asked for.
        number: u64,
    },
    /// Another live process holds the campaign.
    #[error(
        "campaign {campaign:?} is being run by another process ({holder})\nhint: wait for it to finish or stop it; a dead run releases the campaign at once"
    )]
    Locked {
        /// The campaign.
        campaign: String,
        /// Who holds it, as recorded by the holder.
        holder: String,
    },
    /// The trial number asked for is taken (by a trial another process queued).
    #[error("trial number {0} is taken")]
    NumberTaken(u64),
    /// Every slot of the limit a start asked for is taken (`n_trials` trials
    /// running or finished).
    #[error("no slot left: the campaign's trials are all started")]
    NoSlot,
    /// No request has this id.
    #[error("no change request {0}")]
    NoRequest(String),
    /// A request changed between reading and deciding (another decision landed
    /// first, or it left the pending state); read it again.
    #[error("request {0} changed meanwhile; read it again")]
    RequestChanged(String),
    /// A stored value could not be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Building a ledger entry failed.
    #[error(transparent)]
    Ledger(#[from] firebreak_ledger::LedgerError),
    /// File-system error (lock files, database folder).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A fault injected by a test.
    #[error("injected fault")]
    Injected,
}

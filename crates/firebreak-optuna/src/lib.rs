//! firebreak's Optuna face: the gRPC storage API of Optuna's `GrpcStorageProxy`
//! (`firebreak serve-optuna`), served over the store, so that an unchanged Optuna
//! script keeps its samplers and pruners while every call is ledgered, checked
//! against the study's constraints, and verifiable with `audit verify`.
//!
//! Principal items: [`Options`], [`serve`], [`governed_spec`] (the constraints
//! file of `firebreak govern`), [`OptunaError`].
//!
//! The ledger is the study's only record. At start the server audits the whole
//! ledger (refusing to serve a ledger that fails) and takes its Optuna studies
//! from the replay ([`firebreak_ledger::optuna::Studies`]); after that it checks
//! each change with the same rules the replay applies, appends it (one store
//! transaction) and only then applies it and answers. Reads are answered from
//! that state. One server serves a database: the state is kept in this process.
//!
//! `proto` is generated from `proto/storage.proto` by
//! `scripts/gen-optuna-proto.sh` and committed, so no protobuf compiler runs at
//! build time. `docs/optuna.md` is the outside description.

mod convert;
mod govern;
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms
)]
mod proto;
mod service;
mod transfer;

use std::net::SocketAddr;
use std::sync::Arc;

use firebreak_app::App;
use firebreak_store::Store;
pub use govern::governed_spec;
use proto::storage_service_server::StorageServiceServer;
pub use transfer::{Imported, export_journal, import};

/// Why the Optuna server cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OptunaError {
    /// A non-loopback address without tokens being required is refused.
    #[error(
        "{0} is not a loopback address: calls without a token would act as the local user for anyone who can reach it; pass --require-token (clients then send `authorization: Bearer TOKEN`) or bind 127.0.0.1"
    )]
    OpenBind(SocketAddr),
    /// The ledger does not verify, so nothing it says is acted on.
    #[error("the ledger does not verify, so no study is served from it: {0}")]
    Ledger(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] firebreak_store::StoreError),
    /// The address could not be bound or served.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A constraints file is wrong.
    #[error("{file}: {key}{}{message}\nhint: {hint}", if key.is_empty() { "" } else { ": " })]
    Spec {
        /// The file, with the line where known.
        file: String,
        /// The key (`space.lr`), when one is at fault.
        key: String,
        /// What is wrong.
        message: String,
        /// What would be right.
        hint: String,
    },
    /// An operation broke a rule of the study (see `firebreak_ledger::optuna`).
    #[error("{0}")]
    Refused(#[from] firebreak_ledger::optuna::OptunaError),
    /// An import's source could not be read or ledgered.
    #[error("{0}")]
    Import(String),
    /// The gRPC server failed.
    #[error("gRPC: {0}")]
    Transport(String),
}

/// The lock (beside the campaigns' run locks) that one writer of Optuna
/// studies holds: a server, or an import. Not a campaign name (those never
/// start with `.`).
pub const WRITER_LOCK: &str = ".optuna";

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to listen.
    pub bind: SocketAddr,
    /// The principal of calls that carry no token (`local:USER`); `None` makes
    /// every call carry a token.
    pub local: Option<String>,
}

impl Options {
    /// Refuses an address beyond loopback where calls need no token.
    pub fn check(&self) -> Result<(), OptunaError> {
        if self.local.is_some() && !self.bind.ip().is_loopback() {
            return Err(OptunaError::OpenBind(self.bind));
        }
        Ok(())
    }
}

/// Serves Optuna's storage API at `options.bind` until Ctrl-C; `ready` is told
/// the bound address (the port, when 0 was asked for).
pub async fn serve<S: Store>(
    app: App<S>,
    options: Options,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), OptunaError> {
    options.check()?;
    let _writer = app
        .store()
        .lock_campaign(WRITER_LOCK, "firebreak serve-optuna")
        .await?;
    let service = service::Storage::open(Arc::new(app), options.local.clone()).await?;
    let listener = tokio::net::TcpListener::bind(options.bind).await?;
    let bound = listener.local_addr()?;
    ready(bound);
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tonic::transport::Server::builder()
        .add_service(StorageServiceServer::new(service).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| OptunaError::Transport(e.to_string()))
}

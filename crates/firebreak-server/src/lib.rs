//! firebreak's HTTP face: `firebreak serve`. A JSON API under `/api/v1` with
//! its OpenAPI document at `/api/v1/openapi.json` (derived from the handlers'
//! types), live ledger events over server-sent events at `/api/v1/events`, and
//! the dashboard at `/`: campaigns, plots, trials, the ledger, and the
//! approvals inbox where people sign decisions in their browser.
//!
//! Principal items: [`serve`] (bind, TLS, run until Ctrl-C), [`router`] (the
//! whole application as an axum `Router`, for tests and embedding),
//! [`Options`], [`ServerError`].
//!
//! Boundaries: this crate is the only one that speaks HTTP, and it holds no
//! rule: every handler authenticates the caller, checks their role where the
//! call changes something, makes one call into [`firebreak_app::App`] and
//! renders what comes back. A token lets a caller in; it never decides a
//! change request: a decision carries the approver's Ed25519 signature over
//! the bytes `docs/ledger-format.md` gives, checked by the application layer
//! exactly as for the CLI. The server never prints: failures whose detail must
//! not reach a caller go to the [`Log`] the face gives.
//!
//! Bounds: request bodies to 64 KiB, event clients to [`Options::max_event_clients`],
//! a trial page to 1,000 trials, a ledger page to 1,000 entries.

mod api;
mod auth;
mod dashboard;
mod error;
mod events;
mod jobs;
mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use firebreak_app::{App, Trials};
use firebreak_store::Store;
use tokio::sync::{Semaphore, watch};

pub use error::ServerError;

use crate::error::{ApiError, Incident};

/// Where the server's log lines go (the CLI prints them to stderr).
pub type Log = Arc<dyn Fn(&str) + Send + Sync>;

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    /// The address to listen on (`127.0.0.1:8650` by default in the CLI).
    pub bind: SocketAddr,
    /// A certificate chain and private key (PEM files) to serve HTTPS with.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Serve plain HTTP on a non-loopback address anyway.
    pub insecure_bind: bool,
    /// Event-stream clients connected at once, at most.
    pub max_event_clients: usize,
}

impl Options {
    /// Refuses a non-loopback address without TLS, unless `insecure_bind`.
    pub fn check(&self) -> Result<(), ServerError> {
        if !self.bind.ip().is_loopback() && self.tls.is_none() && !self.insecure_bind {
            return Err(ServerError::InsecureBind(self.bind));
        }
        Ok(())
    }

    /// Plain HTTP on `bind`, defaults otherwise.
    pub fn new(bind: SocketAddr) -> Self {
        Options {
            bind,
            tls: None,
            insecure_bind: false,
            max_event_clients: 256,
        }
    }
}

/// How long a value read from the store is served after the ledger has grown.
/// Every change the pages and the API show is a ledger entry, so an unchanged
/// ledger means an unchanged value; while a campaign runs at full speed the
/// ledger grows every millisecond, and without this bound every request would
/// re-read every trial. The event stream is never delayed by it.
const FRESH: std::time::Duration = std::time::Duration::from_millis(250);

/// A value kept by [`Shared::kept`]: the ledger size and the time it was read at.
type KeptValue = (
    u64,
    std::time::Instant,
    Arc<dyn std::any::Any + Send + Sync>,
);

/// What every handler shares.
pub(crate) struct Shared<S> {
    app: App<S>,
    sessions: Arc<auth::Sessions>,
    jobs: jobs::Jobs,
    ledger: watch::Receiver<Arc<events::Recent>>,
    event_slots: Arc<Semaphore>,
    /// Values read from the store (a campaign's trials, the campaign list, a
    /// campaign's state), by what they are.
    kept: Arc<Mutex<HashMap<String, KeptValue>>>,
    /// Whether cookies are marked `Secure` (under TLS).
    secure: bool,
    log: Log,
}

impl<S: Clone> Clone for Shared<S> {
    fn clone(&self) -> Self {
        Shared {
            app: self.app.clone(),
            sessions: self.sessions.clone(),
            jobs: self.jobs.clone(),
            ledger: self.ledger.clone(),
            event_slots: self.event_slots.clone(),
            kept: self.kept.clone(),
            secure: self.secure,
            log: self.log.clone(),
        }
    }
}

impl<S: Store + Clone> Shared<S> {
    /// The value kept under `key`, read again with `read` when the ledger has
    /// grown since it was read and it is older than [`FRESH`].
    async fn kept<T, Fut>(
        &self,
        key: String,
        read: impl FnOnce() -> Fut,
    ) -> Result<Arc<T>, ApiError>
    where
        T: Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<T, ApiError>>,
    {
        let size = self.app.store().ledger_size().await?;
        let lock = || self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let found = lock().get(&key).and_then(|(at, when, value)| {
            (*at == size || when.elapsed() < FRESH).then(|| value.clone())
        });
        if let Some(value) = found.and_then(|v| v.downcast::<T>().ok()) {
            return Ok(value);
        }
        let value = Arc::new(read().await?);
        let mut kept = lock();
        if kept.len() > 256 {
            kept.clear();
        }
        kept.insert(key, (size, std::time::Instant::now(), value.clone()));
        Ok(value)
    }

    /// A campaign's trials, with their test results.
    async fn trials(&self, campaign: &str) -> Result<Arc<Trials>, ApiError> {
        self.kept(format!("trials/{campaign}"), || async {
            Ok(self.app.trials(campaign, None).await?)
        })
        .await
    }
}

/// The whole application: the API, the events, the dashboard.
pub async fn router<S: Store + Clone>(
    app: App<S>,
    options: &Options,
    log: Log,
) -> Result<Router, ServerError> {
    let ledger = events::watch_ledger(app.store().clone())
        .await
        .map_err(|e| ServerError::Start(format!("{:?}", e)))?;
    let shared = Shared {
        app,
        sessions: Arc::default(),
        jobs: jobs::Jobs::default(),
        ledger,
        event_slots: Arc::new(Semaphore::new(options.max_event_clients)),
        kept: Arc::default(),
        secure: options.tls.is_some(),
        log,
    };
    let api = Router::new()
        .route("/health", get(api::health))
        .route("/me", get(api::whoami))
        .route(
            "/openapi.json",
            get(|| async { axum::Json(api::openapi_json()) }),
        )
        .route("/campaigns", get(api::campaigns::<S>))
        .route("/campaigns/{name}", get(api::campaign::<S>))
        .route("/campaigns/{name}/trials", get(api::trials::<S>))
        .route("/campaigns/{name}/trials/{number}", get(api::trial::<S>))
        .route(
            "/campaigns/{name}/trials/{number}/log",
            get(api::trial_log::<S>),
        )
        .route("/campaigns/{name}/enqueue", post(api::enqueue::<S>))
        .route("/campaigns/{name}/lineage", get(api::lineage::<S>))
        .route("/campaigns/{name}/importance", get(api::importance::<S>))
        .route("/ledger", get(api::ledger::<S>))
        .route("/ledger/{seq}/proof", get(api::proof::<S>))
        .route("/checkpoints", get(api::checkpoints::<S>))
        .route("/requests", get(api::requests::<S>))
        .route("/requests/{id}", get(api::request::<S>))
        .route("/requests/{id}/decision", post(api::decide::<S>))
        .route("/verify", post(api::start_verify::<S>))
        .route("/verify/{job}", get(api::verify_job::<S>))
        .route("/events", get(events::events::<S>))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) });
    let log_layer = {
        let log = shared.log.clone();
        axum::middleware::from_fn(move |request: Request, next: Next| {
            let log = log.clone();
            async move {
                let api = request.uri().path().starts_with("/api/");
                let mut response: Response = next.run(request).await;
                if let Some(Incident(line)) = response.extensions_mut().remove::<Incident>() {
                    log(&line);
                }
                if api {
                    response = as_json_error(response).await;
                }
                harden(&mut response);
                response
            }
        })
    };
    Ok(Router::new()
        .nest("/api/v1", api)
        .merge(dashboard::routes::<S>())
        .layer(log_layer)
        .layer(DefaultBodyLimit::max(64 * 1024))
        .with_state(shared))
}

/// An API error answered in plain text by axum itself (a body, path or query
/// that does not parse, a method the path does not take) in the API's JSON
/// error shape, so every API answer is what the OpenAPI document says.
async fn as_json_error(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !status.is_client_error() || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_string()
    } else {
        text
    };
    let mut answer = (status, axum::Json(error::ErrorBody { error: message })).into_response();
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(value) = parts.headers.get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// Headers every answer carries: no framing, no sniffing, and a content
/// security policy that lets pages run only the server's own scripts.
fn harden(response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
}

/// Serves `app` until Ctrl-C: refuses a non-loopback address without TLS
/// (unless `insecure_bind`), binds, calls `ready` with the bound address,
/// then answers requests.
pub async fn serve<S: Store + Clone>(
    app: App<S>,
    options: Options,
    log: Log,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    options.check()?;
    let tls = options
        .tls
        .as_ref()
        .map(|(cert, key)| tls::acceptor(cert, key))
        .transpose()?;
    let router = router(app, &options, log).await?;
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| ServerError::Io {
            context: format!("binding {}", options.bind),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Io {
        context: "reading the bound address".into(),
        source,
    })?;
    ready(local);
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let served = match tls {
        None => {
            tokio::select! {
                r = axum::serve(listener, router) => r,
                () = stop => Ok(()),
            }
        }
        Some(acceptor) => {
            tokio::select! {
                r = axum::serve(tls::Listener::new(listener, acceptor), router) => r,
                () = stop => Ok(()),
            }
        }
    };
    served.map_err(|source| ServerError::Io {
        context: format!("serving on {local}"),
        source,
    })
}

//! Live events: every ledger entry, in order, as a server-sent event whose
//! `id` is the entry's sequence number and whose `event` is its kind
//! (`trial_started`, `trial_reported`, `trial_finished`, `request_filed`,
//! `request_decided`, `tripwire_tripped`, …). A client that reconnects with
//! `Last-Event-ID` resumes right after that entry, so it misses nothing; a
//! new client starts at the ledger's end, or at `?from=SEQ`.
//!
//! One watcher task polls the ledger's size and keeps the newest entries in a
//! window that every client reads; a client that falls behind the window reads
//! the store from where it is. Nothing is dropped for a slow client: it is
//! simply further behind. The number of clients is bounded.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use firebreak_ledger::Entry;
use firebreak_store::Store;
use futures_util::Stream;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, watch};
use utoipa::IntoParams;

use crate::Shared;
use crate::auth::Auth;
use crate::error::ApiError;

/// How often the watcher looks at the ledger.
const POLL: Duration = Duration::from_millis(150);
/// Entries kept in the shared window.
const WINDOW: usize = 8192;
/// Entries one client reads from the store at once when behind the window.
const PAGE: u64 = 512;

/// The newest ledger entries: `entries[i].seq == from + i`, `size` the ledger's.
#[derive(Debug, Default)]
pub(crate) struct Recent {
    size: u64,
    from: u64,
    entries: Vec<Entry>,
}

/// Starts the watcher over `store`; the receiver sees every new window.
pub(crate) async fn watch_ledger<S: Store + Clone>(
    store: S,
) -> Result<watch::Receiver<Arc<Recent>>, ApiError> {
    let size = store.ledger_size().await?;
    let (tx, rx) = watch::channel(Arc::new(Recent {
        size,
        from: size,
        entries: Vec::new(),
    }));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if tx.is_closed() {
                return;
            }
            let current = tx.borrow().clone();
            // A failed read is tried again at the next tick.
            let Ok(size) = store.ledger_size().await else {
                continue;
            };
            if size <= current.size {
                continue;
            }
            let Ok(new) = store.ledger_range(current.size, size - current.size).await else {
                continue;
            };
            let mut entries = current.entries.clone();
            let mut next = current.size;
            for entry in new {
                if entry.seq != next {
                    break;
                }
                next += 1;
                entries.push(entry);
            }
            let drop = entries.len().saturating_sub(WINDOW);
            entries.drain(..drop);
            let from = next - entries.len() as u64;
            tx.send_replace(Arc::new(Recent {
                size: next,
                from,
                entries,
            }));
        }
    });
    Ok(rx)
}

/// Where a client starts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// The first sequence number to send (default: the ledger's end; a
    /// `Last-Event-ID` header takes precedence).
    from: Option<u64>,
    /// Only this campaign's entries.
    campaign: Option<String>,
}

struct Client<S> {
    next: u64,
    rx: watch::Receiver<Arc<Recent>>,
    store: S,
    campaign: Option<String>,
    pending: VecDeque<Entry>,
    _slot: OwnedSemaphorePermit,
}

fn to_event(entry: &Entry) -> Event {
    let text = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    // The payload is canonical JSON already: embedded as it is.
    let data = format!(
        r#"{{"seq":{},"campaign":{},"kind":{},"payload":{}}}"#,
        entry.seq,
        text(&entry.campaign),
        text(&entry.kind),
        entry.payload
    );
    Event::default()
        .id(entry.seq.to_string())
        .event(&entry.kind)
        .data(data)
}

/// The live event stream.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    tag = "events",
    params(EventsQuery, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this sequence number")),
    responses(
        (status = 200, description = "Server-sent events: `id` the ledger seq, `event` the entry's kind, `data` {seq, campaign, kind, payload}", content_type = "text/event-stream", body = String),
        (status = 401, body = crate::error::ErrorBody),
        (status = 503, description = "Too many event clients", body = crate::error::ErrorBody),
    ),
    security(("token" = []))
)]
pub(crate) async fn events<S: Store + Clone>(
    State(shared): State<Shared<S>>,
    _auth: Auth,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let slot = shared
        .event_slots
        .clone()
        .try_acquire_owned()
        .map_err(|_| ApiError::Busy("too many event clients; try again later".into()))?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|seq| seq + 1);
    let rx = shared.ledger.clone();
    let next = resume.or(query.from).unwrap_or_else(|| rx.borrow().size);
    let client = Client {
        next,
        rx,
        store: shared.app.store().clone(),
        campaign: query.campaign,
        pending: VecDeque::new(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(client, |mut client| async move {
        loop {
            if let Some(entry) = client.pending.pop_front() {
                client.next = entry.seq + 1;
                if client
                    .campaign
                    .as_ref()
                    .is_some_and(|c| *c != entry.campaign)
                {
                    continue;
                }
                return Some((Ok(to_event(&entry)), client));
            }
            let recent = client.rx.borrow_and_update().clone();
            if client.next < recent.size {
                if client.next >= recent.from {
                    let start = (client.next - recent.from) as usize;
                    client
                        .pending
                        .extend(recent.entries[start..].iter().cloned());
                } else {
                    match client.store.ledger_range(client.next, PAGE).await {
                        Ok(entries) if !entries.is_empty() => client.pending.extend(entries),
                        _ => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
                continue;
            }
            if client.rx.changed().await.is_err() {
                return None;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

//! Who is calling: an `Authorization: Bearer` API token, or the dashboard's
//! session cookie (`HttpOnly`, `SameSite=Strict`; `Secure` under TLS) made by
//! signing in with a token. A request that changes anything through the cookie
//! must also carry the session's CSRF token in `X-CSRF-Token`, which only the
//! dashboard's own pages can read.
//!
//! Sessions live in the server's memory (a restart signs everyone out) and
//! keep the token they were made with, so revoking a token ends its sessions
//! at their next request.

use std::collections::HashMap;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use firebreak_app::{AppError, Caller, Role, random_hex};
use firebreak_core::{Clock, SystemClock, Timestamp};
use firebreak_store::Store;

use crate::Shared;
use crate::error::ApiError;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "firebreak_session";
/// The header that carries the CSRF token.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
const SESSION_MS: i64 = 12 * 3600 * 1000;
/// Sessions kept at most (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    token: String,
    csrf: String,
    expires_at: Timestamp,
}

/// The dashboard's sessions, by cookie value.
#[derive(Debug, Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A new session for `token`: its cookie value and CSRF token.
    pub(crate) fn open(&self, token: &str) -> Result<(String, String), ApiError> {
        let id = random_hex(false)?;
        let csrf = random_hex(false)?;
        let now = SystemClock.now();
        let mut sessions = self.lock();
        sessions.retain(|_, s| s.expires_at > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                token: token.to_string(),
                csrf: csrf.clone(),
                expires_at: now + SESSION_MS,
            },
        );
        Ok((id, csrf))
    }

    /// Ends a session.
    pub(crate) fn close(&self, id: &str) {
        self.lock().remove(id);
    }

    fn get(&self, id: &str, now: Timestamp) -> Option<Session> {
        self.lock().get(id).filter(|s| s.expires_at > now).cloned()
    }
}

/// The value of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// An authenticated caller; `csrf` is the session's CSRF token when the caller
/// came with the session cookie (the dashboard's pages embed it).
#[derive(Debug, Clone)]
pub(crate) struct Auth {
    pub caller: Caller,
    pub csrf: Option<String>,
}

impl Auth {
    /// Refuses unless the caller's role may run and ask.
    pub(crate) fn may_run(&self) -> Result<(), ApiError> {
        if self.caller.role.may_run() {
            Ok(())
        } else {
            Err(forbidden(
                self.caller.role,
                "queue trials or ask for changes",
            ))
        }
    }

    /// Refuses unless the caller's role may submit decisions.
    pub(crate) fn may_decide(&self) -> Result<(), ApiError> {
        if self.caller.role.may_decide() {
            Ok(())
        } else {
            Err(forbidden(self.caller.role, "submit decisions"))
        }
    }
}

fn forbidden(role: Role, what: &str) -> ApiError {
    ApiError::App(AppError::Forbidden(format!(
        "a token with role '{}' may not {what}",
        role.as_str()
    )))
}

impl<S: Store + Clone> FromRequestParts<Shared<S>> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared<S>) -> Result<Self, ApiError> {
        let now = SystemClock.now();
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(token) = bearer {
            let caller = state.app.authenticate(token.trim(), now).await?;
            return Ok(Auth { caller, csrf: None });
        }
        let unauthenticated = || {
            ApiError::App(AppError::Unauthenticated("a valid API token is needed: send `Authorization: Bearer TOKEN` (`firebreak tokens new`)".into()))
        };
        let session = cookie(parts, COOKIE)
            .and_then(|id| state.sessions.get(id, now))
            .ok_or_else(unauthenticated)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
        if !safe && sent != Some(session.csrf.as_str()) {
            return Err(ApiError::App(AppError::Forbidden(
                "a change through the dashboard's session needs its CSRF token in X-CSRF-Token"
                    .into(),
            )));
        }
        let caller = state.app.authenticate(&session.token, now).await?;
        Ok(Auth {
            caller,
            csrf: Some(session.csrf),
        })
    }
}

//! Background jobs: `audit verify` over the whole ledger takes seconds on a
//! large one, so the API starts it and answers at once; the caller polls the
//! job. One verification runs at a time (asking again while one runs returns
//! that one); the newest few results are kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use firebreak_app::App;
use firebreak_store::Store;
use serde_json::Value;

use crate::error::ApiError;

/// Finished jobs kept.
const KEEP: usize = 16;

/// Where a job stands.
#[derive(Debug, Clone)]
pub(crate) enum JobState {
    Running,
    Done(Value),
    Failed(String),
}

/// A job.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub state: JobState,
}

/// The server's jobs, by id.
#[derive(Debug, Default, Clone)]
pub(crate) struct Jobs(Arc<Mutex<(u64, BTreeMap<u64, Job>)>>);

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, BTreeMap<u64, Job>)> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a verification of the whole ledger, or returns the one running.
    pub(crate) fn start<S: Store + Clone>(&self, app: App<S>) -> Result<(u64, Job), ApiError> {
        let id = {
            let mut jobs = self.lock();
            if let Some((id, job)) = jobs
                .1
                .iter()
                .find(|(_, j)| matches!(j.state, JobState::Running))
            {
                return Ok((*id, job.clone()));
            }
            jobs.0 += 1;
            let id = jobs.0;
            jobs.1.insert(
                id,
                Job {
                    state: JobState::Running,
                },
            );
            while jobs.1.len() > KEEP {
                jobs.1.pop_first();
            }
            id
        };
        let jobs = self.clone();
        tokio::spawn(async move {
            let state = match app.verify(None, None).await {
                Ok(v) => JobState::Done(serde_json::to_value(&v).unwrap_or(Value::Null)),
                Err(e) => JobState::Failed(e.to_string()),
            };
            if let Some(job) = jobs.lock().1.get_mut(&id) {
                job.state = state;
            }
        });
        Ok((
            id,
            Job {
                state: JobState::Running,
            },
        ))
    }

    /// Job `id`.
    pub(crate) fn get(&self, id: u64) -> Option<Job> {
        self.lock().1.get(&id).cloned()
    }
}

//! Change requests, decisions and spec changes in SQLite: each in one
//! transaction with its ledger entries.

use firebreak_core::format_rfc3339;
use firebreak_ledger::{
    Authorization, Event, Request, RequestBody, RequestState, SignedDecision, canonical_json,
    diff_hash, hex,
};
use sqlx::Row;

use super::{SqliteStore, Tx, json, parse, sha256};
use crate::{Closing, RequestDraft, SpecUpdate, StoreError};

impl SqliteStore {
    async fn load_request(&self, w: &mut Tx, id: &str) -> Result<Request, StoreError> {
        let row = sqlx::query("SELECT record FROM requests WHERE id = ?")
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::NoRequest(id.to_string()))?;
        parse(&row.try_get::<String, _>(0)?)
    }

    async fn save_request(&self, w: &mut Tx, request: &Request) -> Result<(), StoreError> {
        sqlx::query("UPDATE requests SET state = ?, record = ? WHERE id = ?")
            .bind(request.state.as_str())
            .bind(json(request))
            .bind(&request.body.id)
            .execute(&mut *w.tx)
            .await?;
        Ok(())
    }

    async fn close(
        &self,
        w: &mut Tx,
        request: &mut Request,
        state: RequestState,
        reason: &str,
    ) -> Result<(), StoreError> {
        request.state = state;
        self.save_request(w, request).await?;
        let event = Event::RequestClosed {
            id: request.body.id.clone(),
            state,
            reason: reason.to_string(),
        };
        self.append(w, &request.body.campaign, &event).await
    }

    async fn update_spec(
        &self,
        w: &mut Tx,
        campaign: &str,
        update: &SpecUpdate,
        request: Option<&str>,
    ) -> Result<(), StoreError> {
        let canonical = canonical_json(&update.spec)?;
        let spec_hash = hex(&sha256(canonical.as_bytes()));
        let changed = sqlx::query(
            "UPDATE campaigns SET spec = ?, spec_hash = ?, submitted = COALESCE(?, submitted) \
             WHERE name = ?",
        )
        .bind(&canonical)
        .bind(&spec_hash)
        .bind(update.submitted.as_ref().map(json))
        .bind(campaign)
        .execute(&mut *w.tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NoCampaign(campaign.to_string()));
        }
        let event = Event::SpecChanged {
            spec: update.spec.clone(),
            spec_hash,
            diff: update.diff.clone(),
            request: request.map(str::to_string),
            by: update.by.clone(),
        };
        self.append(w, campaign, &event).await
    }

    pub(super) async fn gov_file_request(
        &self,
        draft: &RequestDraft,
    ) -> Result<(Request, bool), StoreError> {
        let mut w = self.begin().await?;
        let pending = sqlx::query(
            "SELECT record FROM requests WHERE campaign = ? AND kind = ? AND state = 'pending' \
             ORDER BY seq",
        )
        .bind(&draft.campaign)
        .bind(draft.kind.as_str())
        .fetch_all(&mut *w.tx)
        .await?;
        let hash = diff_hash(&draft.diff)?;
        let mut older = Vec::new();
        for row in pending {
            let request: Request = parse(&row.try_get::<String, _>(0)?)?;
            if request.diff_hash == hash {
                return Ok((request, true)); // the empty transaction rolls back
            }
            older.push(request);
        }
        let n: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) + 1 FROM requests")
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
        let now = self.now();
        let request = Request::new(RequestBody {
            v: 1,
            id: format!("R{n}"),
            campaign: draft.campaign.clone(),
            kind: draft.kind,
            diff: draft.diff.clone(),
            base_spec_hash: draft.base_spec_hash.clone(),
            requested_by: draft.requested_by.clone(),
            reason: draft.reason.clone(),
            created_at: format_rfc3339(now),
            expires_at: format_rfc3339(now.saturating_add(draft.ttl_ms)),
            evidence: draft.evidence.clone(),
        })?;
        sqlx::query(
            "INSERT INTO requests (id, seq, campaign, kind, state, diff_hash, record) \
             VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(&request.body.id)
        .bind(n)
        .bind(&draft.campaign)
        .bind(draft.kind.as_str())
        .bind(&request.diff_hash)
        .bind(json(&request))
        .execute(&mut *w.tx)
        .await?;
        let event = Event::RequestFiled {
            request: request.body.clone(),
            hash: request.hash.clone(),
            diff_hash: request.diff_hash.clone(),
            policy: draft.policy.clone(),
        };
        self.append(&mut w, &draft.campaign, &event).await?;
        // The newer request is in the ledger before the older ones close, so the
        // replay can check that each `superseded` names a request that exists.
        for mut old in older {
            let why = format!("superseded by {}", request.body.id);
            self.close(&mut w, &mut old, RequestState::Superseded, &why)
                .await?;
        }
        self.commit(w).await?;
        Ok((request, false))
    }

    pub(super) async fn gov_requests(
        &self,
        campaign: Option<&str>,
    ) -> Result<Vec<Request>, StoreError> {
        let rows = sqlx::query(
            "SELECT record FROM requests WHERE ?1 IS NULL OR campaign = ?1 ORDER BY seq",
        )
        .bind(campaign)
        .fetch_all(&self.inner.readers)
        .await?;
        rows.iter()
            .map(|row| parse(&row.try_get::<String, _>(0)?))
            .collect()
    }

    pub(super) async fn gov_decide(
        &self,
        id: &str,
        decision: &SignedDecision,
        policy: &Authorization,
        decisions_seen: usize,
        closing: Option<&Closing>,
    ) -> Result<Request, StoreError> {
        let mut w = self.begin().await?;
        let mut request = self.load_request(&mut w, id).await?;
        if request.state != RequestState::Pending || request.decisions.len() != decisions_seen {
            return Err(StoreError::RequestChanged(id.to_string()));
        }
        request.decisions.push(decision.clone());
        self.save_request(&mut w, &request).await?;
        let campaign = request.body.campaign.clone();
        let event = Event::RequestDecided {
            id: id.to_string(),
            decision: decision.clone(),
            policy: policy.clone(),
        };
        self.append(&mut w, &campaign, &event).await?;
        if let Some(closing) = closing {
            self.close(&mut w, &mut request, closing.state, &closing.reason)
                .await?;
            if let Some(update) = &closing.spec {
                self.update_spec(&mut w, &campaign, update, Some(id))
                    .await?;
            }
        }
        self.commit(w).await?;
        Ok(request)
    }

    pub(super) async fn gov_close(
        &self,
        id: &str,
        state: RequestState,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut w = self.begin().await?;
        let mut request = self.load_request(&mut w, id).await?;
        if request.state != RequestState::Pending {
            return Ok(false);
        }
        self.close(&mut w, &mut request, state, reason).await?;
        self.commit(w).await?;
        Ok(true)
    }

    pub(super) async fn gov_change_spec(
        &self,
        campaign: &str,
        update: &SpecUpdate,
    ) -> Result<(), StoreError> {
        let mut w = self.begin().await?;
        self.update_spec(&mut w, campaign, update, None).await?;
        self.commit(w).await
    }

    pub(super) async fn gov_record_note(
        &self,
        campaign: &str,
        note: &Event,
    ) -> Result<(), StoreError> {
        if !matches!(
            note,
            Event::Denied { .. }
                | Event::Optuna { .. }
                | Event::TrialReevaluated { .. }
                | Event::GenerationStarted { .. }
                | Event::GenerationGated { .. }
                | Event::GenerationClosed { .. }
        ) {
            return Err(StoreError::Corrupt(format!(
                "record_note takes a `denied`, `optuna`, `trial_reevaluated` or `generation_*` event, not {}",
                note.kind()
            )));
        }
        let Event::GenerationStarted { generation, .. } = note else {
            // A note that changes no table is one ledger row: group-committed
            // with the hot path's other writes, one round trip (what
            // `serve-optuna` appends on every Optuna call).
            return self.fast_note(campaign, note).await;
        };
        // Trials started from now on are this generation's.
        let mut w = self.begin().await?;
        sqlx::query("UPDATE campaigns SET generation = ? WHERE name = ?")
            .bind(i64::from(*generation))
            .bind(campaign)
            .execute(&mut *w.tx)
            .await?;
        self.append(&mut w, campaign, note).await?;
        self.commit(w).await
    }
}

//! A campaign with `[generations]`: a sequence of searches. Each generation
//! searches its own space (the approved one, narrowed around the last promoted
//! champion or not) with a fresh proposer that sees only its own trials; when
//! its `budget` of trials has finished, its champion is re-evaluated with fresh
//! seeds and judged by the gates, then promoted (by the gates alone, or by a
//! signed `promotion` request) or not, and the next generation starts from the
//! last promoted champion: as its teacher, its first trial, or its space's
//! centre.
//!
//! Every step reads where the generations stand from the verified ledger
//! (`GenerationState`), never from a column, and writes its result to the
//! ledger before acting on it, so a run killed at any moment resumes at the
//! same step: a generation is never started twice and a gate never decided
//! again.

use std::collections::BTreeMap;

use firebreak_core::{Params, SearchSpace, Trial, TrialState};
use firebreak_ledger::{Event, GenerationState, RequestKind, RequestState};
use firebreak_spec::{GenerationsSpec, OnGateFailure, ParamSpec, Promotion, SeedNext};
use firebreak_store::{NewTrial, RequestDraft, Store};
use serde_json::json;
use tokio::sync::watch;

use super::{Campaign, State};
use crate::command::{Attempt, Ended};
use crate::run::{Executor, RunEvent, Stop};
use crate::{RunnerError, governance};

/// The proposer name of a generation's first trial: its parent's configuration.
pub const PARENT: &str = "parent";

/// The generation a campaign is in, as this process holds it.
#[derive(Debug, Clone)]
pub(crate) struct Gen {
    /// 1-based.
    pub number: u32,
    /// The space it searches.
    pub space: SearchSpace,
    /// Its teacher: the promoted champion's number and configuration.
    pub teacher: Option<(u64, Params)>,
}

/// Counts a gate's re-evaluation CPU seconds against the run's budgets.
pub(crate) type AddCpu<'a> = &'a (dyn Fn(Option<f64>) + Send + Sync);
/// Tells the run's owner about a generation starting or closing.
pub(crate) type Notify<'a> = &'a (dyn Fn(RunEvent) + Send + Sync);

/// What a run does next at a generation boundary.
#[derive(Debug)]
pub(crate) enum Step {
    /// Search the open generation: `finished` of its `budget` trials are done.
    Search {
        /// Finished trials of the generation.
        finished: u64,
        /// Its budget.
        budget: u64,
    },
    /// Stop the run.
    Stop(Stop),
}

/// A champion's gate verdict.
struct Verdict {
    passed: bool,
    reasons: Vec<String>,
    reevals: Vec<f64>,
}

impl<S: Store> Campaign<S> {
    /// The campaign's `[generations]`, when it has them.
    pub fn generations(&self) -> Option<&GenerationsSpec> {
        self.spec.spec.generations.as_ref()
    }

    /// The generation trials start in now, when the campaign has generations.
    pub async fn generation(&self) -> Option<u32> {
        self.state
            .lock()
            .await
            .generation
            .as_ref()
            .map(|g| g.number)
    }

    /// The current generation's teacher: the promoted champion's number and
    /// configuration.
    pub(crate) async fn teacher(&self) -> Option<(u64, Params)> {
        let state = self.state.lock().await;
        state.generation.as_ref().and_then(|g| g.teacher.clone())
    }

    /// The generation `g` as the ledger records it: its space built from the
    /// recorded table (so a resumed run searches exactly that space).
    pub(super) fn gen_of(&self, g: &GenerationState, trials: &[Trial]) -> Result<Gen, RunnerError> {
        let table: BTreeMap<String, ParamSpec> =
            serde_json::from_value(g.space.clone()).map_err(|e| {
                RunnerError::Tampered(firebreak_ledger::Violation {
                    seq: None,
                    reason: format!(
                        "generation {}'s recorded space cannot be read: {e}",
                        g.current
                    ),
                })
            })?;
        let space = self.spec.generation_space(&table)?;
        let teacher = g.teacher.map(|number| {
            let params = trials
                .iter()
                .find(|t| t.number == number)
                .map(|t| t.params.clone())
                .unwrap_or_default();
            (number, params)
        });
        Ok(Gen {
            number: g.current,
            space,
            teacher,
        })
    }

    /// Brings the campaign to its next step at a generation boundary: starts
    /// the first or the next generation, gates a generation whose budget has
    /// finished, decides or files its promotion, and says whether to search or
    /// stop. `add_cpu` counts the gates' re-evaluations against the budgets.
    pub(crate) async fn boundary(
        &self,
        executor: &Executor,
        (add_cpu, notify): (AddCpu<'_>, Notify<'_>),
        interrupt: &watch::Receiver<bool>,
    ) -> Result<Step, RunnerError> {
        let settings = self
            .generations()
            .cloned()
            .expect("boundary is called for campaigns with generations");
        loop {
            if let Some(halt) = self.halted().await {
                return Ok(Step::Stop(Stop::Firebreak {
                    requests: vec![halt.request],
                    reason: halt.reason,
                }));
            }
            if *interrupt.borrow() {
                return Ok(Step::Stop(Stop::Interrupted {
                    requeued: Vec::new(),
                }));
            }
            let replayed = governance::verify_ledger(&self.store).await?;
            let g = replayed
                .campaigns
                .get(self.name())
                .map(|c| c.generations.clone())
                .unwrap_or_default();
            if g.current == 0 {
                self.begin(&settings, 1, &g).await?;
                notify(RunEvent::Generation {
                    generation: 1,
                    promoted: None,
                });
                continue;
            }
            if !g.open {
                if g.current >= settings.count {
                    return Ok(Step::Stop(Stop::Done));
                }
                if !g.last_promoted && settings.on_gate_failure == OnGateFailure::Stop {
                    return Ok(Step::Stop(Stop::Limit(format!(
                        "generation {}'s champion was not promoted and on_gate_failure = \"stop\"",
                        g.current
                    ))));
                }
                self.begin(&settings, g.current + 1, &g).await?;
                notify(RunEvent::Generation {
                    generation: g.current + 1,
                    promoted: None,
                });
                continue;
            }
            let Some((champion, passed)) = g.gated else {
                self.ensure_parent(&g).await?;
                let finished = self.generation_finished(g.current).await;
                if finished < settings.budget {
                    return Ok(Step::Search {
                        finished,
                        budget: settings.budget,
                    });
                }
                if let Some(stop) = self
                    .gate(&settings, &g, executor, add_cpu, interrupt)
                    .await?
                {
                    return Ok(Step::Stop(stop));
                }
                continue;
            };
            match self.promote(&settings, &g, champion, passed).await? {
                Err(stop) => return Ok(Step::Stop(stop)),
                Ok(promoted) => notify(RunEvent::Generation {
                    generation: g.current,
                    promoted: Some(promoted),
                }),
            }
        }
    }

    /// Finished trials of generation `number`.
    async fn generation_finished(&self, number: u32) -> u64 {
        let state = self.state.lock().await;
        state
            .history
            .iter()
            .filter(|t| t.generation == Some(number) && t.state.is_finished())
            .count() as u64
    }

    /// Starts generation `number`: its space (the approved one, narrowed
    /// around the last promoted champion with `narrow`), its teacher
    /// (`teacher`), its first trial (`parent`), all recorded before any of its
    /// trials starts.
    async fn begin(
        &self,
        settings: &GenerationsSpec,
        number: u32,
        g: &GenerationState,
    ) -> Result<(), RunnerError> {
        let all = self.store.trials(self.name()).await?;
        let promoted = g
            .promoted
            .and_then(|n| all.iter().find(|t| t.number == n))
            .cloned();
        let base = if number > 1 && !settings.next_space.is_empty() {
            settings.next_space.clone()
        } else {
            self.spec.spec.space.clone()
        };
        let base_space = self.spec.generation_space(&base)?;
        let hands_on = |way: SeedNext| settings.seed_next.contains(&way);
        let fits = promoted
            .as_ref()
            .filter(|p| base_space.validate(&p.params).is_ok());
        let table = match fits {
            Some(p) if hands_on(SeedNext::Narrow) => {
                narrow(&base, &p.params, settings.narrow_factor)
            }
            _ => base,
        };
        let space_json = firebreak_spec::CampaignSpec::table_json(&table);
        let table: BTreeMap<String, ParamSpec> =
            serde_json::from_value(space_json.clone()).unwrap_or(table);
        let space = self.spec.generation_space(&table)?;
        let teacher = promoted
            .as_ref()
            .filter(|_| hands_on(SeedNext::Teacher))
            .map(|p| (p.number, p.params.clone()));
        let parent = promoted
            .as_ref()
            .filter(|p| hands_on(SeedNext::Parent) && space.validate(&p.params).is_ok());
        let event = Event::GenerationStarted {
            generation: number,
            space: space_json,
            from: promoted.as_ref().map(|p| p.number),
            teacher: teacher.as_ref().map(|t| t.0),
            parent: parent.is_some(),
        };
        self.store.record_note(self.name(), &event).await?;
        {
            let mut state = self.state.lock().await;
            self.enter(
                &mut state,
                Gen {
                    number,
                    space,
                    teacher,
                },
            )?;
        }
        if let Some(parent) = parent {
            self.enqueue_parent(number, parent).await?;
        }
        Ok(())
    }

    /// Queues generation `number`'s first trial: the configuration of `parent`,
    /// the champion it starts from.
    async fn enqueue_parent(&self, number: u32, parent: &Trial) -> Result<(), RunnerError> {
        let new = NewTrial {
            params: parent.params.clone(),
            proposer: PARENT.to_string(),
            rationale: format!(
                "generation {number} starts from the last promoted champion, trial {}",
                parent.number
            ),
            retry_of: None,
            priority: 2,
            number: None,
            policy: None,
            exploit: None,
            state: None,
        };
        let queued = self.store.enqueue(self.name(), &new).await?;
        let trial = Trial::queued(queued, new.params, PARENT, &new.rationale);
        self.state.lock().await.upsert(trial);
        Ok(())
    }

    /// A run killed between a generation's start and the queueing of its parent
    /// left it without one: queued now (the history holds the generation's
    /// trials and those not started yet).
    async fn ensure_parent(&self, g: &GenerationState) -> Result<(), RunnerError> {
        let has_parent = {
            let state = self.state.lock().await;
            state.history.iter().any(|t| t.proposer == PARENT)
        };
        if !g.parent || has_parent {
            return Ok(());
        }
        let trials = self.store.trials(self.name()).await?;
        if let Some(parent) = g
            .promoted
            .and_then(|n| trials.iter().find(|t| t.number == n))
        {
            self.enqueue_parent(g.current, parent).await?;
        }
        Ok(())
    }

    /// Makes `gen` the generation this process searches: a fresh proposer over
    /// its space; the history keeps only trials that have not started (they
    /// join it when they do).
    pub(super) fn enter(&self, state: &mut State, gen_: Gen) -> Result<(), RunnerError> {
        let mut derived = self.spec.clone();
        derived.space = gen_.space.clone();
        let (proposer, _) = super::components(&derived)?;
        state.proposer = proposer;
        let (now, earlier): (Vec<Trial>, Vec<Trial>) = std::mem::take(&mut state.history)
            .into_iter()
            .partition(|t| t.generation.is_none_or(|g| g == gen_.number));
        let before = super::counts_of(&earlier);
        state.earlier.queued += before.queued;
        state.earlier.running += before.running;
        state.earlier.complete += before.complete;
        state.earlier.pruned += before.pruned;
        state.earlier.failed += before.failed;
        state.queued = now.iter().filter(|t| t.state == TrialState::Queued).count();
        state.history = now;
        state.tripwires = crate::governance::Gov::tripwires(&self.spec);
        state.generation = Some(gen_);
        Ok(())
    }

    /// Judges generation `g`'s champion: re-evaluated from scratch with fresh
    /// seeds, compared with the last promoted champion, and checked against the
    /// per-generation rate tripwires. Records the verdict; a tripped rate files
    /// its request and halts (`Some`).
    async fn gate(
        &self,
        settings: &GenerationsSpec,
        g: &GenerationState,
        executor: &Executor,
        add_cpu: AddCpu<'_>,
        interrupt: &watch::Receiver<bool>,
    ) -> Result<Option<Stop>, RunnerError> {
        let metric = self.spec.objectives.metrics[0].clone();
        let direction = self.spec.objectives.directions[0];
        let champion = {
            let state = self.state.lock().await;
            let mine: Vec<Trial> = state
                .history
                .iter()
                .filter(|t| t.generation == Some(g.current))
                .cloned()
                .collect();
            self.spec
                .objectives
                .best(&mine)
                .first()
                .map(|t| (*t).clone())
        };
        let previous = match g.promoted {
            Some(number) => self
                .store
                .trials(self.name())
                .await?
                .iter()
                .find(|t| t.number == number)
                .and_then(|t| t.metrics.get(&metric).copied()),
            None => None,
        };
        let Some(champion) = champion else {
            let event = Event::GenerationGated {
                generation: g.current,
                champion: None,
                value: None,
                previous,
                reevals: Vec::new(),
                passed: false,
                reasons: vec![format!("no trial of generation {} completed", g.current)],
            };
            self.store.record_note(self.name(), &event).await?;
            return Ok(None);
        };
        let value = champion.metrics.get(&metric).copied();
        let mut verdict = Verdict {
            passed: true,
            reasons: Vec::new(),
            reevals: Vec::new(),
        };
        let gates = &settings.gates;
        for k in 0..gates.reeval_seeds {
            let attempt = Attempt::Gate(k);
            let ended = executor
                .evaluate(self, &champion, attempt, interrupt.clone())
                .await?;
            let Ended::Finished(again) = ended else {
                return Ok(Some(Stop::Interrupted {
                    requeued: Vec::new(),
                }));
            };
            add_cpu(again.cpu_seconds);
            let event = Event::TrialReevaluated {
                number: champion.number,
                seed: self.attempt_seed(champion.number, attempt),
                metrics: again.metrics.clone(),
                error: again.error.clone(),
                cpu_seconds: again.cpu_seconds.filter(|s| s.is_finite()),
            };
            self.store.record_note(self.name(), &event).await?;
            match again.metrics.get(&metric) {
                Some(v) if again.state == TrialState::Complete && v.is_finite() => {
                    verdict.reevals.push(*v);
                }
                _ => {
                    verdict.passed = false;
                    verdict.reasons.push(format!(
                        "re-evaluation {} of trial {} gave no {metric}: {}",
                        k + 1,
                        champion.number,
                        again.error.as_deref().unwrap_or("no result")
                    ));
                }
            }
        }
        if let (Some(value), false) = (value, verdict.reevals.is_empty()) {
            let mean = verdict.reevals.iter().sum::<f64>() / verdict.reevals.len() as f64;
            let gap = (mean - value).abs();
            if gap > gates.reeval_tolerance {
                verdict.passed = false;
                verdict.reasons.push(format!(
                    "reeval: trial {} reported {metric} = {value}, its {} fresh re-evaluations \
                     average {mean:.6}, {gap:.6} apart (reeval_tolerance = {})",
                    champion.number,
                    verdict.reevals.len(),
                    gates.reeval_tolerance
                ));
            } else {
                verdict.reasons.push(format!(
                    "reeval: passed, {} fresh re-evaluations average {mean:.6} against {value} \
                     (within {})",
                    verdict.reevals.len(),
                    gates.reeval_tolerance
                ));
            }
        }
        let mut trip = None;
        match (value, previous) {
            (Some(value), Some(previous)) => {
                let gain = if direction == firebreak_core::Direction::Maximize {
                    value - previous
                } else {
                    previous - value
                };
                if gain < gates.min_improvement {
                    verdict.passed = false;
                    verdict.reasons.push(format!(
                        "improvement: {metric} = {value} against the last promoted champion's \
                         {previous}, a gain of {gain:.6}, below min_improvement = {}",
                        gates.min_improvement
                    ));
                } else {
                    verdict.reasons.push(format!(
                        "improvement: passed, a gain of {gain:.6} over the last promoted \
                         champion's {previous} (min_improvement = {})",
                        gates.min_improvement
                    ));
                }
                let state = self.state.lock().await;
                trip = state
                    .tripwires
                    .generation_rate(g.current, &metric, previous, value);
            }
            (Some(_), None) => verdict
                .reasons
                .push("improvement: no promoted champion before this one".into()),
            (None, _) => {
                verdict.passed = false;
                verdict
                    .reasons
                    .push(format!("the champion reported no {metric}"));
            }
        }
        if let Some(trip) = &trip {
            verdict.reasons.push(trip.reason.clone());
        }
        let event = Event::GenerationGated {
            generation: g.current,
            champion: Some(champion.number),
            value,
            previous,
            reevals: verdict.reevals,
            passed: verdict.passed,
            reasons: verdict.reasons,
        };
        self.store.record_note(self.name(), &event).await?;
        if let Some(trip) = trip {
            let halt = governance::file_trip(&self.store, &self.record, &self.gov, trip).await?;
            let stop = Stop::Firebreak {
                requests: vec![halt.request.clone()],
                reason: halt.reason.clone(),
            };
            self.state.lock().await.halt = Some(halt);
            return Ok(Some(stop));
        }
        Ok(None)
    }

    /// Closes generation `g` on its gate verdict: a failed gate is not
    /// promoted; `auto` promotes; `approve` files a `promotion` request (and
    /// halts: `Err`) or carries out its decision. `Ok(promoted)` once closed.
    async fn promote(
        &self,
        settings: &GenerationsSpec,
        g: &GenerationState,
        champion: Option<u64>,
        passed: bool,
    ) -> Result<Result<bool, Stop>, RunnerError> {
        let close =
            |promoted: bool, request: Option<String>, reason: String| Event::GenerationClosed {
                generation: g.current,
                champion,
                promoted,
                request,
                reason,
            };
        let event = if !passed {
            close(
                false,
                None,
                "its gates did not pass (see generation_gated)".into(),
            )
        } else if settings.promotion == Promotion::Auto {
            close(true, None, "its gates passed; promotion = \"auto\"".into())
        } else {
            let requests = self.store.requests(Some(self.name())).await?;
            let ours = requests.into_iter().rev().find(|r| {
                r.body.kind == RequestKind::Promotion
                    && r.body
                        .evidence
                        .as_ref()
                        .and_then(|e| e["generation"].as_u64())
                        == Some(u64::from(g.current))
            });
            match ours {
                None => {
                    let request = self.file_promotion(g, champion).await?;
                    return Ok(Err(promotion_halt(&request.body.id, &request.body.reason)));
                }
                Some(r) if r.state == RequestState::Pending => {
                    return Ok(Err(promotion_halt(&r.body.id, &r.body.reason)));
                }
                Some(r) if r.state == RequestState::Approved => close(
                    true,
                    Some(r.body.id.clone()),
                    format!("promotion request {} approved", r.body.id),
                ),
                Some(r) => close(
                    false,
                    Some(r.body.id.clone()),
                    format!("promotion request {} is {}", r.body.id, r.state),
                ),
            }
        };
        self.store.record_note(self.name(), &event).await?;
        Ok(Ok(matches!(
            event,
            Event::GenerationClosed { promoted: true, .. }
        )))
    }

    /// Files generation `g`'s `promotion` request, with the evidence the
    /// approvers decide on: the gate verdict, the champion, and its changes from
    /// the configuration it started from.
    async fn file_promotion(
        &self,
        g: &GenerationState,
        champion: Option<u64>,
    ) -> Result<firebreak_ledger::Request, RunnerError> {
        let gated = self
            .store
            .ledger()
            .await?
            .into_iter()
            .rev()
            .filter(|e| e.campaign == self.name() && e.kind == "generation_gated")
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(&e.payload).ok())
            .map(|payload| payload["data"].clone())
            .find(|data| data["generation"].as_u64() == Some(u64::from(g.current)));
        let trials = self.store.trials(self.name()).await?;
        let find = |n: Option<u64>| n.and_then(|n| trials.iter().find(|t| t.number == n));
        let trial = find(champion);
        let parent = find(g.promoted);
        let changes: BTreeMap<String, serde_json::Value> = match (&trial, &parent) {
            (Some(t), Some(p)) => t
                .params
                .iter()
                .filter(|(k, v)| p.params.get(*k).is_none_or(|pv| !pv.matches(v)))
                .map(|(k, v)| (k.clone(), json!({"from": p.params.get(k), "to": v})))
                .collect(),
            _ => BTreeMap::new(),
        };
        let metric = &self.spec.objectives.metrics[0];
        let evidence = json!({
            "generation": g.current,
            "champion": trial.as_ref().map(|t| json!({
                "number": t.number,
                "params": t.params,
                "metrics": t.metrics,
            })),
            "previous": parent.as_ref().map(|p| json!({
                "number": p.number,
                "params": p.params,
                "metrics": p.metrics,
            })),
            "changes": changes,
            "gates": gated,
        });
        let reason = format!(
            "generation {}'s champion, trial {}, asks to be promoted ({metric} = {})",
            g.current,
            champion.map_or_else(|| "none".to_string(), |n| n.to_string()),
            trial
                .as_ref()
                .and_then(|t| t.metrics.get(metric))
                .map_or_else(|| "none".to_string(), |v| v.to_string())
        );
        let draft = RequestDraft {
            campaign: self.name().to_string(),
            kind: RequestKind::Promotion,
            diff: json!([]),
            base_spec_hash: self.record.spec_hash.clone(),
            requested_by: format!("generation:{}", g.current),
            reason,
            ttl_ms: self.gov.ttl_ms,
            // The engine files it at every boundary, whatever a policy says.
            policy: None,
            evidence: Some(evidence),
        };
        Ok(self.store.file_request(&draft).await?.0)
    }
}

/// The stop of a campaign waiting for a promotion's decision.
fn promotion_halt(id: &str, reason: &str) -> Stop {
    Stop::Firebreak {
        requests: vec![id.to_string()],
        reason: format!(
            "{reason}; promotion = \"approve\": decide with `firebreak approve {id} --key FILE` \
             (or reject), then run again"
        ),
    }
}

/// `table` re-centred on `centre` and narrowed to `factor` of each numeric
/// range (on the log scale for `log` parameters), shifted to stay inside the
/// range; categorical and stepped parameters, and parameters `centre` lacks,
/// stay as they are. Always inside `table`.
pub(crate) fn narrow(
    table: &BTreeMap<String, ParamSpec>,
    centre: &Params,
    factor: f64,
) -> BTreeMap<String, ParamSpec> {
    use firebreak_spec::{Number, ParamKind};
    let mut out = table.clone();
    for (name, p) in &mut out {
        let (Some(low), Some(high), None) = (p.low, p.high, p.step) else {
            continue;
        };
        let Some(v) = centre.get(name).and_then(|v| v.as_f64()) else {
            continue;
        };
        let (lo, hi) = (low.as_f64(), high.as_f64());
        let scale = |x: f64| if p.log { x.ln() } else { x };
        let unscale = |x: f64| if p.log { x.exp() } else { x };
        let (a, b, c) = (scale(lo), scale(hi), scale(v.clamp(lo, hi)));
        let width = (b - a) * factor;
        let start = (c - width / 2.0).clamp(a, b - width);
        let (new_lo, new_hi) = (unscale(start).max(lo), unscale(start + width).min(hi));
        match p.kind {
            ParamKind::Float => {
                p.low = Some(Number::Float(new_lo));
                p.high = Some(Number::Float(new_hi.max(new_lo)));
            }
            ParamKind::Int => {
                let v = v.round();
                let new_lo = new_lo.floor().clamp(lo, v);
                let new_hi = new_hi.ceil().clamp(v, hi);
                p.low = Some(Number::Int(new_lo as i64));
                p.high = Some(Number::Int(new_hi as i64));
            }
            ParamKind::Categorical => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use firebreak_core::ParamValue;
    use firebreak_spec::{Number, ParamKind, ParamSpec};

    use super::*;

    fn bound(n: Option<Number>) -> f64 {
        n.expect("a numeric bound").as_f64()
    }

    fn numeric(kind: ParamKind, low: Number, high: Number, log: bool) -> ParamSpec {
        ParamSpec {
            kind,
            low: Some(low),
            high: Some(high),
            log,
            step: None,
            choices: None,
            when: None,
        }
    }

    #[test]
    fn narrowing_re_centres_inside_the_approved_range() {
        let table: BTreeMap<String, ParamSpec> = [
            (
                "lr".to_string(),
                numeric(
                    ParamKind::Float,
                    Number::Float(1e-4),
                    Number::Float(1e-1),
                    true,
                ),
            ),
            (
                "width".to_string(),
                numeric(ParamKind::Int, Number::Int(16), Number::Int(256), false),
            ),
        ]
        .into();
        let centre: Params = [
            ("lr".to_string(), ParamValue::Float(1e-3)),
            ("width".to_string(), ParamValue::Int(250)),
        ]
        .into();
        let out = narrow(&table, &centre, 0.5);
        let (lo, hi) = (bound(out["lr"].low), bound(out["lr"].high));
        // Half of three decades, centred on 1e-3 in log space.
        assert!(
            (lo.log10() + 3.75).abs() < 1e-9 && (hi.log10() + 2.25).abs() < 1e-9,
            "{lo} {hi}"
        );
        // 250 near the top: the window of 120 shifts down to stay inside.
        assert_eq!(out["width"].low, Some(Number::Int(136)));
        assert_eq!(out["width"].high, Some(Number::Int(256)));
        for factor in [0.01, 0.3, 1.0] {
            let out = narrow(&table, &centre, factor);
            for (name, p) in &out {
                assert!(bound(p.low) >= bound(table[name].low));
                assert!(bound(p.high) <= bound(table[name].high));
                assert!(bound(p.low) <= bound(p.high));
            }
        }
    }
}

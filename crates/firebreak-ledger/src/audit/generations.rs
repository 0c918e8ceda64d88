//! The replay's rules for `[generations]`: generations start one after another,
//! each closed before the next; a generation's space never widens the approved
//! one; a gate verdict is given once, on a complete trial of that generation,
//! with the value that trial reported; a champion is promoted only when its
//! gates passed and either the spec says `promotion = "auto"` or a `promotion`
//! request for that generation was approved; the next generation starts from
//! (and is taught by) the last promoted champion and no other; and each trial
//! belongs to the generation open when it first started.

use firebreak_core::TrialState;

use super::replay::Replay;
use super::{Violation, violation};
use crate::entry::Event;
use crate::request::{RequestKind, RequestState};

/// Where a campaign's generations stand, as its ledger says: what the runner
/// acts on at a generation boundary.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GenerationState {
    /// The latest generation started (0: none yet).
    pub current: u32,
    /// True while `current` has started and not closed.
    pub open: bool,
    /// `current`'s space (a `[space]` table as canonical JSON).
    pub space: serde_json::Value,
    /// `current`'s teacher, if it has one.
    pub teacher: Option<u64>,
    /// Whether `current` starts with its parent's configuration.
    pub parent: bool,
    /// `current`'s gate verdict: its champion and whether every gate passed.
    pub gated: Option<(Option<u64>, bool)>,
    /// The last promoted champion.
    pub promoted: Option<u64>,
    /// Whether the latest generation closed promoted its champion.
    pub last_promoted: bool,
}

impl Replay {
    /// Applies a `generation_*` event of `campaign`.
    pub(super) fn generation_event(
        &mut self,
        seq: u64,
        campaign: &str,
        event: Event,
    ) -> Result<(), Violation> {
        let c = &self.campaigns[campaign];
        let settings = &c.spec["generations"];
        if settings.is_null() {
            return Err(violation(
                seq,
                format!("{}: the campaign's spec has no [generations]", event.kind()),
            ));
        }
        let g = &c.generations;
        match event {
            Event::GenerationStarted {
                generation,
                space,
                from,
                teacher,
                parent,
            } => {
                if g.open || generation != g.current + 1 {
                    return Err(violation(
                        seq,
                        format!(
                            "generation {generation} started while generation {} is {}",
                            g.current,
                            if g.open { "open" } else { "the latest" }
                        ),
                    ));
                }
                let count = settings["count"].as_u64().unwrap_or(0);
                if u64::from(generation) > count {
                    return Err(violation(
                        seq,
                        format!(
                            "generation {generation} started, but the spec has count = {count}"
                        ),
                    ));
                }
                for (role, trial) in [("from", from), ("teacher", teacher)] {
                    if trial.is_some() && trial != g.promoted {
                        return Err(violation(
                            seq,
                            format!(
                                "generation {generation} names trial {} as its {role}, but the last \
                                 promoted champion is {}",
                                trial.unwrap_or_default(),
                                g.promoted
                                    .map_or_else(|| "none".to_string(), |n| format!("trial {n}"))
                            ),
                        ));
                    }
                }
                let next = &settings["next_space"];
                let approved = if generation > 1 && next.as_object().is_some_and(|m| !m.is_empty())
                {
                    next
                } else {
                    &c.spec["space"]
                };
                if let Err(why) = contained(&space, approved) {
                    return Err(violation(
                        seq,
                        format!("generation {generation}'s space widens the approved space: {why}"),
                    ));
                }
                let g = &mut self.campaigns.get_mut(campaign).expect("known").generations;
                g.current = generation;
                g.open = true;
                g.gated = None;
                g.space = space;
                g.teacher = teacher;
                g.parent = parent;
                Ok(())
            }
            Event::GenerationGated {
                generation,
                champion,
                value,
                passed,
                ..
            } => {
                if !g.open || generation != g.current || g.gated.is_some() {
                    return Err(violation(
                        seq,
                        format!(
                            "generation {generation} gated while it is not the open, ungated \
                             generation"
                        ),
                    ));
                }
                if let Some(number) = champion {
                    let metric = c.spec["objective"]["metric"].as_str().unwrap_or_default();
                    let trial = self.trials.get(&(campaign.to_string(), number));
                    let fits = trial.is_some_and(|t| {
                        t.state == TrialState::Complete
                            && t.generation == Some(generation)
                            && t.metrics.get(metric).copied() == value
                    });
                    if !fits {
                        return Err(violation(
                            seq,
                            format!(
                                "generation {generation}'s champion, trial {number}, is not a \
                                 complete trial of that generation with {metric} = {value:?}"
                            ),
                        ));
                    }
                }
                let g = &mut self.campaigns.get_mut(campaign).expect("known").generations;
                g.gated = Some((champion, passed));
                Ok(())
            }
            Event::GenerationClosed {
                generation,
                champion,
                promoted,
                request,
                ..
            } => {
                let gated = g.gated.filter(|_| g.open && generation == g.current);
                let Some((judged, passed)) = gated else {
                    return Err(violation(
                        seq,
                        format!("generation {generation} closed before its gates were recorded"),
                    ));
                };
                if judged != champion {
                    return Err(violation(
                        seq,
                        format!("generation {generation} closed on another champion than it gated"),
                    ));
                }
                if promoted {
                    self.check_promotion(seq, campaign, generation, passed, request.as_deref())?;
                }
                let g = &mut self.campaigns.get_mut(campaign).expect("known").generations;
                g.open = false;
                g.last_promoted = promoted;
                if promoted {
                    g.promoted = champion;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A promotion needs passed gates and either `promotion = "auto"` or an
    /// approved `promotion` request of this campaign for this generation.
    fn check_promotion(
        &self,
        seq: u64,
        campaign: &str,
        generation: u32,
        passed: bool,
        request: Option<&str>,
    ) -> Result<(), Violation> {
        let refuse = |why: String| {
            Err(violation(
                seq,
                format!("generation {generation}'s champion promoted, but {why}"),
            ))
        };
        if !passed {
            return refuse("its gates did not pass".into());
        }
        let mode = self.campaigns[campaign].spec["generations"]["promotion"]
            .as_str()
            .unwrap_or("approve");
        let Some(id) = request else {
            return if mode == "auto" {
                Ok(())
            } else {
                refuse(format!(
                    "promotion = {mode:?} and no approved request is named"
                ))
            };
        };
        let Some(r) = self.requests.get(id) else {
            return refuse(format!("request {id} was never filed"));
        };
        let body = &r.request.body;
        let for_this = body.campaign == campaign
            && body.kind == RequestKind::Promotion
            && body
                .evidence
                .as_ref()
                .and_then(|e| e["generation"].as_u64())
                == Some(u64::from(generation));
        if !for_this {
            return refuse(format!(
                "request {id} is not a promotion request for this generation"
            ));
        }
        if r.request.state != RequestState::Approved {
            return refuse(format!("request {id} is {}", r.request.state));
        }
        Ok(())
    }

    /// The generation a trial of `campaign` first started in joins it: a
    /// violation when the campaign has generations and none is open.
    pub(super) fn trial_generation(
        &self,
        seq: u64,
        campaign: &str,
        number: u64,
    ) -> Result<Option<u32>, Violation> {
        let g = &self.campaigns[campaign].generations;
        if g.current == 0 {
            return Ok(None);
        }
        if !g.open {
            return Err(violation(
                seq,
                format!(
                    "trial {number} started after generation {} closed and before another began",
                    g.current
                ),
            ));
        }
        Ok(Some(g.current))
    }
}

/// `Ok` when every parameter of `space` (a `[space]` table as canonical JSON)
/// is in `approved` with the same type, scale and condition, and no wider: its
/// bounds inside, its choices among the approved ones.
fn contained(space: &serde_json::Value, approved: &serde_json::Value) -> Result<(), String> {
    let (Some(space), Some(approved)) = (space.as_object(), approved.as_object()) else {
        return Err("a space is not a table".into());
    };
    for (name, p) in space {
        let Some(a) = approved.get(name) else {
            return Err(format!("`{name}` is not an approved parameter"));
        };
        for key in ["type", "log", "when", "step"] {
            if p[key] != a[key] {
                return Err(format!("`{name}` changes its `{key}`"));
            }
        }
        let number = |v: &serde_json::Value| v.as_f64();
        match (number(&p["low"]), number(&a["low"])) {
            (Some(low), Some(approved_low)) if low < approved_low => {
                return Err(format!("`{name}` low = {low} is below {approved_low}"));
            }
            (None, Some(_)) | (Some(_), None) => return Err(format!("`{name}` changes `low`")),
            _ => {}
        }
        match (number(&p["high"]), number(&a["high"])) {
            (Some(high), Some(approved_high)) if high > approved_high => {
                return Err(format!("`{name}` high = {high} is above {approved_high}"));
            }
            (None, Some(_)) | (Some(_), None) => return Err(format!("`{name}` changes `high`")),
            _ => {}
        }
        if let Some(choices) = p["choices"].as_array() {
            let allowed = a["choices"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            if let Some(extra) = choices.iter().find(|c| !allowed.contains(c)) {
                return Err(format!("`{name}` adds the choice {extra}"));
            }
        } else if !a["choices"].is_null() {
            return Err(format!("`{name}` drops its choices"));
        }
    }
    // A parameter the approved space has and this one lacks would take the
    // trainer's default: only allowed for conditional parameters.
    if let Some(missing) = approved
        .iter()
        .find(|(name, a)| !space.contains_key(*name) && a["when"].is_null())
    {
        return Err(format!("`{}` is missing", missing.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::contained;

    #[test]
    fn a_narrowed_space_is_contained_and_a_widened_one_is_not() {
        let approved = json!({
            "lr": {"type": "float", "low": 0.001, "high": 0.1, "log": true},
            "act": {"type": "categorical", "choices": ["relu", "tanh"], "log": false},
        });
        let narrowed = json!({
            "lr": {"type": "float", "low": 0.005, "high": 0.02, "log": true},
            "act": {"type": "categorical", "choices": ["relu"], "log": false},
        });
        assert_eq!(contained(&narrowed, &approved), Ok(()));
        let wider = json!({
            "lr": {"type": "float", "low": 0.0001, "high": 0.02, "log": true},
            "act": {"type": "categorical", "choices": ["relu"], "log": false},
        });
        assert!(
            contained(&wider, &approved)
                .expect_err("refused")
                .contains("below")
        );
        let more_choices = json!({
            "lr": {"type": "float", "low": 0.005, "high": 0.02, "log": true},
            "act": {"type": "categorical", "choices": ["relu", "gelu"], "log": false},
        });
        assert!(
            contained(&more_choices, &approved)
                .expect_err("refused")
                .contains("gelu")
        );
        let linear = json!({
            "lr": {"type": "float", "low": 0.005, "high": 0.02, "log": false},
            "act": {"type": "categorical", "choices": ["relu"], "log": false},
        });
        assert!(
            contained(&linear, &approved)
                .expect_err("refused")
                .contains("log")
        );
        let fewer = json!({"lr": {"type": "float", "low": 0.005, "high": 0.02, "log": true}});
        assert!(
            contained(&fewer, &approved)
                .expect_err("refused")
                .contains("missing")
        );
    }
}

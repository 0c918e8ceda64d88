//! Between Optuna's messages and the ledger's records: states, directions,
//! trials and times.

use std::collections::HashMap;

use firebreak_core::{Timestamp, format_rfc3339};
use firebreak_ledger::optuna::{F64, OptunaParam, OptunaState, OptunaTrial, Study};
use tonic::Status;

use crate::proto;

/// An Optuna trial state from its number: the wire's, which is also Optuna's
/// own `TrialState` (RUNNING 0, COMPLETE 1, PRUNED 2, FAIL 3, WAITING 4), as
/// its journal files write it.
pub(crate) fn state_of_number(state: i64) -> Option<OptunaState> {
    let wire = proto::TrialState::try_from(i32::try_from(state).ok()?).ok()?;
    Some(match wire {
        proto::TrialState::Running => OptunaState::Running,
        proto::TrialState::Complete => OptunaState::Complete,
        proto::TrialState::Pruned => OptunaState::Pruned,
        proto::TrialState::Fail => OptunaState::Fail,
        proto::TrialState::Waiting => OptunaState::Waiting,
    })
}

/// The number of a trial state (see [`state_of_number`]).
pub(crate) fn state_number(state: OptunaState) -> i32 {
    let wire = match state {
        OptunaState::Running => proto::TrialState::Running,
        OptunaState::Complete => proto::TrialState::Complete,
        OptunaState::Pruned => proto::TrialState::Pruned,
        OptunaState::Fail => proto::TrialState::Fail,
        OptunaState::Waiting => proto::TrialState::Waiting,
    };
    wire as i32
}

/// An Optuna trial state from its wire number.
pub(crate) fn state_from_wire(state: i32) -> Result<OptunaState, Status> {
    state_of_number(i64::from(state))
        .ok_or_else(|| Status::invalid_argument(format!("unknown trial state {state}")))
}

/// Directions as the ledger names them.
pub(crate) fn directions_from_wire(directions: &[i32]) -> Result<Vec<String>, Status> {
    directions
        .iter()
        .map(|d| match proto::StudyDirection::try_from(*d) {
            Ok(proto::StudyDirection::Minimize) => Ok("minimize".to_string()),
            Ok(proto::StudyDirection::Maximize) => Ok("maximize".to_string()),
            Err(_) => Err(Status::invalid_argument(format!("unknown direction {d}"))),
        })
        .collect()
}

pub(crate) fn directions_to_wire(directions: &[String]) -> Vec<i32> {
    directions
        .iter()
        .map(|d| {
            if d == "maximize" {
                proto::StudyDirection::Maximize as i32
            } else {
                proto::StudyDirection::Minimize as i32
            }
        })
        .collect()
}

/// A time as Optuna's servicer writes one: ISO 8601 in UTC with microseconds.
pub(crate) fn iso(at: Timestamp) -> String {
    let rfc = format_rfc3339(at);
    format!("{}000+00:00", rfc.trim_end_matches('Z'))
}

fn attrs(map: &std::collections::BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

pub(crate) fn study_to_wire(study: &Study) -> proto::Study {
    proto::Study {
        study_id: study.id as i64,
        study_name: study.name.clone(),
        directions: directions_to_wire(&study.directions),
        user_attributes: attrs(&study.user_attrs),
        system_attributes: attrs(&study.system_attrs),
    }
}

pub(crate) fn trial_to_wire(trial: &OptunaTrial) -> proto::Trial {
    proto::Trial {
        trial_id: trial.trial_id as i64,
        number: trial.number as i64,
        state: state_number(trial.state),
        values: trial.values.iter().map(|v| v.0).collect(),
        datetime_start: trial.datetime_start.clone(),
        datetime_complete: trial.datetime_complete.clone(),
        params: trial
            .params
            .iter()
            .map(|(k, p)| (k.clone(), p.value.0))
            .collect(),
        distributions: trial
            .params
            .iter()
            .map(|(k, p)| (k.clone(), p.distribution.clone()))
            .collect(),
        user_attributes: attrs(&trial.user_attrs),
        system_attributes: attrs(&trial.system_attrs),
        intermediate_values: trial.intermediate.iter().map(|(k, v)| (*k, v.0)).collect(),
    }
}

/// A template trial (`enqueue_trial`, `add_trial`) as the record it becomes,
/// with its new id and number.
pub(crate) fn trial_from_wire(
    template: proto::Trial,
    trial_id: u64,
    number: u64,
) -> Result<OptunaTrial, Status> {
    let mut distributions = template.distributions;
    let params = template
        .params
        .into_iter()
        .map(|(name, value)| {
            let distribution = distributions.remove(&name).ok_or_else(|| {
                Status::invalid_argument(format!("parameter {name:?} has no distribution"))
            })?;
            Ok((
                name,
                OptunaParam {
                    value: F64(value),
                    distribution,
                },
            ))
        })
        .collect::<Result<_, Status>>()?;
    Ok(OptunaTrial {
        trial_id,
        number,
        state: state_from_wire(template.state)?,
        values: template.values.into_iter().map(F64).collect(),
        datetime_start: template.datetime_start,
        datetime_complete: template.datetime_complete,
        params,
        user_attrs: template.user_attributes.into_iter().collect(),
        system_attrs: template.system_attributes.into_iter().collect(),
        intermediate: template
            .intermediate_values
            .into_iter()
            .map(|(k, v)| (k, F64(v)))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_read_as_python_writes_them() {
        assert_eq!(
            super::iso(1_765_000_000_123),
            "2025-12-06T05:46:40.123000+00:00"
        );
    }
}

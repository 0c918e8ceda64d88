//! The 19 calls of Optuna's storage service over the store: reads from the
//! studies the ledger describes, changes checked, ledgered, then applied.

use std::collections::HashMap;
use std::sync::Arc;

use firebreak_app::App;
use firebreak_core::{Clock, SystemClock, Timestamp};
use firebreak_ledger::optuna::{F64, OptunaError, OptunaOp, OptunaParam, OptunaState, Studies};
use firebreak_ledger::{Authorization, Event};
use firebreak_store::{Store, StoreError};
use tokio::sync::Mutex;
use tonic::{Request, Response, Status};

use crate::convert::{
    directions_from_wire, directions_to_wire, iso, state_from_wire, study_to_wire, trial_from_wire,
    trial_to_wire,
};
use crate::proto::storage_service_server::StorageService;
use crate::proto::*;

/// What the server acts on: the studies, and the spec of every Optuna campaign.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) studies: Studies,
    pub(crate) specs: HashMap<String, serde_json::Value>,
}

/// The studies and Optuna campaigns a verified ledger describes.
pub(crate) async fn replayed<S: Store>(store: &S) -> Result<State, crate::OptunaError> {
    let (rows, snapshot) = store.ledger_and_snapshot().await?;
    let replayed = firebreak_ledger::audit(&rows, &snapshot)
        .map_err(|v| crate::OptunaError::Ledger(v.to_string()))?;
    let specs = replayed
        .campaigns
        .into_iter()
        .filter(|(_, c)| c.spec["kind"] == "optuna")
        .map(|(name, c)| (name, c.spec))
        .collect();
    Ok(State {
        studies: replayed.optuna,
        specs,
    })
}

/// Checks `op` on `campaign` by the replay's rules, appends it (one
/// transaction), then applies it. A refusal by the study's constraints is
/// ledgered too (`denied`), then returned.
pub(crate) async fn commit_as<S: Store>(
    store: &S,
    state: &mut State,
    campaign: &str,
    principal: &str,
    op: OptunaOp,
) -> Result<(), crate::OptunaError> {
    let spec = state
        .specs
        .get(campaign)
        .ok_or_else(|| OptunaError::NotFound(format!("no Optuna campaign {campaign:?}")))?;
    if let Err(e) = state.studies.check(campaign, spec, SystemClock.now(), &op) {
        if let OptunaError::Refused { policy, .. } = &e {
            let denied = Event::Denied {
                action: action(&op).to_string(),
                principal: principal.to_string(),
                reason: e.to_string(),
                policy: Some(Authorization {
                    decision: "deny".into(),
                    policies: vec![policy.clone()],
                }),
                subject: serde_json::to_value(&op).ok(),
            };
            store.record_note(campaign, &denied).await?;
        }
        return Err(e.into());
    }
    let event = Event::Optuna {
        principal: principal.to_string(),
        op: op.clone(),
    };
    store.record_note(campaign, &event).await?;
    state.studies.apply(campaign, spec, op);
    Ok(())
}

/// The service.
#[derive(Debug)]
pub(crate) struct Storage<S> {
    app: Arc<App<S>>,
    state: Mutex<State>,
    /// The principal of calls without a token; `None`: a token is required.
    local: Option<String>,
}

type Answer<T> = Result<Response<T>, Status>;

fn status(e: &OptunaError) -> Status {
    let text = e.to_string();
    match e {
        OptunaError::NotFound(_) => Status::not_found(text),
        OptunaError::Exists(_) => Status::already_exists(text),
        OptunaError::Finished(_) => Status::failed_precondition(text),
        OptunaError::Invalid(_) => Status::invalid_argument(text),
        OptunaError::Refused { .. } => Status::permission_denied(text),
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(format!("firebreak store: {e}"))
}

fn id(value: i64, what: &str) -> Result<u64, Status> {
    u64::try_from(value)
        .map_err(|_| Status::not_found(format!("No {what} with {what}_id {value} exists.")))
}

/// True for a name `firebreak` accepts as a campaign's.
fn campaign_name_ok(name: &str) -> bool {
    firebreak_spec::campaign_name_problem(name).is_none()
}

/// Creates the campaign of a new study called `name` with `spec`: named after
/// the study where that name is allowed and free, else `optuna-ID` (the id the
/// study will get), `optuna-ID-K` after that.
pub(crate) async fn new_campaign<S: Store>(
    store: &S,
    state: &mut State,
    name: &str,
    spec: serde_json::Value,
) -> Result<String, crate::OptunaError> {
    let next = state.studies.next_study;
    let candidates = std::iter::once(name.to_string())
        .filter(|n| campaign_name_ok(n))
        .chain(std::iter::once(format!("optuna-{next}")))
        .chain((1..100).map(|k| format!("optuna-{next}-{k}")));
    for campaign in candidates {
        match store.create_campaign(&campaign, &spec).await {
            Ok(_) => {
                state.specs.insert(campaign.clone(), spec);
                return Ok(campaign);
            }
            Err(StoreError::CampaignExists(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(crate::OptunaError::Import(format!(
        "no free campaign name for study {name:?}"
    )))
}

/// The name of the operation, as a refusal records it.
fn action(op: &OptunaOp) -> &'static str {
    match op {
        OptunaOp::StudyOpened { .. } => "optuna_create_study",
        OptunaOp::StudyAttr { .. } => "optuna_set_study_attr",
        OptunaOp::StudyDeleted => "optuna_delete_study",
        OptunaOp::TrialCreated { .. } => "optuna_create_trial",
        OptunaOp::TrialParam { .. } => "optuna_set_trial_param",
        OptunaOp::TrialState { .. } => "optuna_set_trial_state",
        OptunaOp::TrialIntermediate { .. } => "optuna_report",
        OptunaOp::TrialAttr { .. } => "optuna_set_trial_attr",
    }
}

impl<S: Store> Storage<S> {
    /// Audits the ledger and takes its studies; a ledger that fails is refused.
    pub(crate) async fn open(
        app: Arc<App<S>>,
        local: Option<String>,
    ) -> Result<Self, crate::OptunaError> {
        let state = replayed(app.store()).await?;
        Ok(Storage {
            app,
            state: Mutex::new(state),
            local,
        })
    }

    fn now() -> Timestamp {
        SystemClock.now()
    }

    /// Who is calling: the token's holder, or the local user where calls need
    /// none. Changes need a token of a role that may change things.
    async fn principal<T>(&self, request: &Request<T>, changes: bool) -> Result<String, Status> {
        let Some(header) = request.metadata().get("authorization") else {
            return self.local.clone().ok_or_else(|| {
                Status::unauthenticated(
                    "this server needs a token: send `authorization: Bearer TOKEN` (firebreak tokens new NAME --role researcher)",
                )
            });
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer TOKEN`"))?;
        let caller = self
            .app
            .authenticate(token, Self::now())
            .await
            .map_err(|e| Status::unauthenticated(e.to_string()))?;
        if changes && !caller.role.may_run() {
            return Err(Status::permission_denied(format!(
                "token {} ({}) may read only: changing a study needs the researcher or admin role",
                caller.token,
                caller.role.as_str()
            )));
        }
        Ok(format!("token:{}", caller.token))
    }

    /// [`commit_as`], answered as gRPC.
    async fn commit(
        &self,
        state: &mut State,
        campaign: &str,
        principal: String,
        op: OptunaOp,
    ) -> Result<(), Status> {
        commit_as(self.app.store(), state, campaign, &principal, op)
            .await
            .map_err(|e| match e {
                crate::OptunaError::Refused(rule) => status(&rule),
                other => internal(other),
            })
    }

    /// Makes the change `op` to study `study_id`, as the caller of `request`.
    async fn change_study<T>(
        &self,
        request: &Request<T>,
        study_id: i64,
        op: OptunaOp,
    ) -> Result<(), Status> {
        let principal = self.principal(request, true).await?;
        let mut state = self.state.lock().await;
        let campaign = Self::campaign_of(&state, study_id)?;
        self.commit(&mut state, &campaign, principal, op).await
    }

    /// Makes the change `op` builds (from the trial's id) to trial `trial_id`,
    /// as the caller of `request`.
    async fn change_trial<T>(
        &self,
        request: &Request<T>,
        trial_id: i64,
        op: impl FnOnce(u64) -> OptunaOp,
    ) -> Result<(), Status> {
        let principal = self.principal(request, true).await?;
        let mut state = self.state.lock().await;
        let (trial_id, campaign) = Self::campaign_of_trial(&state, trial_id)?;
        self.commit(&mut state, &campaign, principal, op(trial_id))
            .await
    }

    /// Setting a trial attribute, once the trial's id is known.
    fn trial_attr(system: bool, key: &str, value: &str) -> impl FnOnce(u64) -> OptunaOp {
        let (key, value) = (key.to_string(), value.to_string());
        move |trial_id| OptunaOp::TrialAttr {
            trial_id,
            system,
            key,
            value,
        }
    }

    /// Answers `read` of study `study_id`, for the caller of `request`.
    async fn read_study<T, R>(
        &self,
        request: &Request<T>,
        study_id: i64,
        read: impl FnOnce(&firebreak_ledger::optuna::Study) -> R,
    ) -> Answer<R> {
        self.principal(request, false).await?;
        let state = self.state.lock().await;
        let study = state
            .studies
            .study(id(study_id, "study")?)
            .map_err(|e| status(&e))?;
        Ok(Response::new(read(study)))
    }

    /// The campaign of study `study_id`.
    fn campaign_of(state: &State, study_id: i64) -> Result<String, Status> {
        let study = state
            .studies
            .study(id(study_id, "study")?)
            .map_err(|e| status(&e))?;
        Ok(study.campaign.clone())
    }

    /// The campaign of trial `trial_id`.
    fn campaign_of_trial(state: &State, trial_id: i64) -> Result<(u64, String), Status> {
        let trial = id(trial_id, "trial")?;
        let (study, _) = state.studies.trial(trial).map_err(|e| status(&e))?;
        let campaign = state
            .studies
            .study(*study)
            .map_err(|e| status(&e))?
            .campaign
            .clone();
        Ok((trial, campaign))
    }

    /// The campaign `firebreak govern` prepared for a study called `name`.
    fn prepared(state: &State, name: &str) -> Option<String> {
        state
            .specs
            .iter()
            .find(|(campaign, spec)| {
                spec["study"] == name
                    && !state.studies.by_campaign.contains_key(*campaign)
                    && !state.studies.deleted.contains(*campaign)
            })
            .map(|(campaign, _)| campaign.clone())
    }

    /// A campaign for a new study called `name`: the one `firebreak govern`
    /// prepared for it, or a new one named after it where that name is free
    /// and allowed, else `optuna-ID`.
    async fn campaign_for(&self, state: &mut State, name: &str) -> Result<String, Status> {
        if let Some(campaign) = Self::prepared(state, name) {
            return Ok(campaign);
        }
        if campaign_name_ok(name)
            && !state.specs.contains_key(name)
            && self
                .app
                .store()
                .campaign(name)
                .await
                .map_err(internal)?
                .is_some()
        {
            // Prepared since this server started, or another campaign: only
            // the ledger says which.
            *state = replayed(self.app.store()).await.map_err(internal)?;
            if let Some(campaign) = Self::prepared(state, name) {
                return Ok(campaign);
            }
        }
        let spec = serde_json::json!({"kind": "optuna", "study": name});
        new_campaign(self.app.store(), state, name, spec)
            .await
            .map_err(internal)
    }
}

#[tonic::async_trait]
impl<S: Store> StorageService for Storage<S> {
    async fn create_new_study(
        &self,
        request: Request<CreateNewStudyRequest>,
    ) -> Answer<CreateNewStudyReply> {
        let principal = self.principal(&request, true).await?;
        let request = request.into_inner();
        let directions = directions_from_wire(&request.directions)?;
        let mut state = self.state.lock().await;
        let name = request.study_name;
        if state.studies.by_name.contains_key(&name) {
            return Err(Status::already_exists(format!(
                "Another study with name '{name}' already exists."
            )));
        }
        let campaign = self.campaign_for(&mut state, &name).await?;
        let study_id = state.studies.next_study;
        let op = OptunaOp::StudyOpened {
            study_id,
            directions,
            at: Self::now(),
        };
        self.commit(&mut state, &campaign, principal, op).await?;
        Ok(Response::new(CreateNewStudyReply {
            study_id: study_id as i64,
        }))
    }

    async fn delete_study(&self, request: Request<DeleteStudyRequest>) -> Answer<DeleteStudyReply> {
        let study_id = request.get_ref().study_id;
        self.change_study(&request, study_id, OptunaOp::StudyDeleted)
            .await?;
        Ok(Response::new(DeleteStudyReply {}))
    }

    async fn set_study_user_attribute(
        &self,
        request: Request<SetStudyUserAttributeRequest>,
    ) -> Answer<SetStudyUserAttributeReply> {
        let r = request.get_ref();
        let op = OptunaOp::StudyAttr {
            system: false,
            key: r.key.clone(),
            value: r.value.clone(),
        };
        self.change_study(&request, r.study_id, op).await?;
        Ok(Response::new(SetStudyUserAttributeReply {}))
    }

    async fn set_study_system_attribute(
        &self,
        request: Request<SetStudySystemAttributeRequest>,
    ) -> Answer<SetStudySystemAttributeReply> {
        let r = request.get_ref();
        let op = OptunaOp::StudyAttr {
            system: true,
            key: r.key.clone(),
            value: r.value.clone(),
        };
        self.change_study(&request, r.study_id, op).await?;
        Ok(Response::new(SetStudySystemAttributeReply {}))
    }

    async fn get_study_id_from_name(
        &self,
        request: Request<GetStudyIdFromNameRequest>,
    ) -> Answer<GetStudyIdFromNameReply> {
        self.principal(&request, false).await?;
        let state = self.state.lock().await;
        let name = &request.get_ref().study_name;
        let study_id = state
            .studies
            .by_name
            .get(name)
            .ok_or_else(|| Status::not_found(format!("No such study {name}.")))?;
        Ok(Response::new(GetStudyIdFromNameReply {
            study_id: *study_id as i64,
        }))
    }

    async fn get_study_name_from_id(
        &self,
        request: Request<GetStudyNameFromIdRequest>,
    ) -> Answer<GetStudyNameFromIdReply> {
        let study_id = request.get_ref().study_id;
        self.read_study(&request, study_id, |s| GetStudyNameFromIdReply {
            study_name: s.name.clone(),
        })
        .await
    }

    async fn get_study_directions(
        &self,
        request: Request<GetStudyDirectionsRequest>,
    ) -> Answer<GetStudyDirectionsReply> {
        let study_id = request.get_ref().study_id;
        self.read_study(&request, study_id, |s| GetStudyDirectionsReply {
            directions: directions_to_wire(&s.directions),
        })
        .await
    }

    async fn get_study_user_attributes(
        &self,
        request: Request<GetStudyUserAttributesRequest>,
    ) -> Answer<GetStudyUserAttributesReply> {
        let study_id = request.get_ref().study_id;
        self.read_study(&request, study_id, |s| GetStudyUserAttributesReply {
            user_attributes: study_to_wire(s).user_attributes,
        })
        .await
    }

    async fn get_study_system_attributes(
        &self,
        request: Request<GetStudySystemAttributesRequest>,
    ) -> Answer<GetStudySystemAttributesReply> {
        let study_id = request.get_ref().study_id;
        self.read_study(&request, study_id, |s| GetStudySystemAttributesReply {
            system_attributes: study_to_wire(s).system_attributes,
        })
        .await
    }

    async fn get_all_studies(
        &self,
        request: Request<GetAllStudiesRequest>,
    ) -> Answer<GetAllStudiesReply> {
        self.principal(&request, false).await?;
        let state = self.state.lock().await;
        Ok(Response::new(GetAllStudiesReply {
            studies: state.studies.studies.values().map(study_to_wire).collect(),
        }))
    }

    async fn create_new_trial(
        &self,
        request: Request<CreateNewTrialRequest>,
    ) -> Answer<CreateNewTrialReply> {
        let principal = self.principal(&request, true).await?;
        let r = request.into_inner();
        let mut state = self.state.lock().await;
        let campaign = Self::campaign_of(&state, r.study_id)?;
        let trial_id = state.studies.next_trial;
        let number = state
            .studies
            .of_campaign(&campaign)
            .map_or(0, |s| s.trials.len() as u64);
        let now = Self::now();
        let trial = match r.template_trial.filter(|_| !r.template_trial_is_none) {
            Some(template) => trial_from_wire(template, trial_id, number)?,
            None => firebreak_ledger::optuna::OptunaTrial {
                trial_id,
                number,
                state: OptunaState::Running,
                values: Vec::new(),
                datetime_start: iso(now),
                datetime_complete: String::new(),
                params: Default::default(),
                user_attrs: Default::default(),
                system_attrs: Default::default(),
                intermediate: Default::default(),
            },
        };
        let op = OptunaOp::TrialCreated { trial, at: now };
        self.commit(&mut state, &campaign, principal, op).await?;
        Ok(Response::new(CreateNewTrialReply {
            trial_id: trial_id as i64,
        }))
    }

    async fn set_trial_parameter(
        &self,
        request: Request<SetTrialParameterRequest>,
    ) -> Answer<SetTrialParameterReply> {
        let r = request.get_ref();
        let param = OptunaParam {
            value: F64(r.param_value_internal),
            distribution: r.distribution.clone(),
        };
        let name = r.param_name.clone();
        self.change_trial(&request, r.trial_id, |trial_id| OptunaOp::TrialParam {
            trial_id,
            name,
            param,
        })
        .await?;
        Ok(Response::new(SetTrialParameterReply {}))
    }

    async fn get_trial_id_from_study_id_trial_number(
        &self,
        request: Request<GetTrialIdFromStudyIdTrialNumberRequest>,
    ) -> Answer<GetTrialIdFromStudyIdTrialNumberReply> {
        self.principal(&request, false).await?;
        let r = request.get_ref();
        let state = self.state.lock().await;
        let study = state
            .studies
            .study(id(r.study_id, "study")?)
            .map_err(|e| status(&e))?;
        let trial_id = usize::try_from(r.trial_number)
            .ok()
            .and_then(|n| study.trials.get(n))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "No trial with trial number {} exists in study with study_id {}.",
                    r.trial_number, r.study_id
                ))
            })?;
        Ok(Response::new(GetTrialIdFromStudyIdTrialNumberReply {
            trial_id: *trial_id as i64,
        }))
    }

    async fn set_trial_state_values(
        &self,
        request: Request<SetTrialStateValuesRequest>,
    ) -> Answer<SetTrialStateValuesReply> {
        let principal = self.principal(&request, true).await?;
        let r = request.into_inner();
        let new_state = state_from_wire(r.state)?;
        let mut state = self.state.lock().await;
        let (trial_id, campaign) = Self::campaign_of_trial(&state, r.trial_id)?;
        let (_, trial) = state.studies.trial(trial_id).map_err(|e| status(&e))?;
        if trial.state.is_finished() {
            return Err(Status::failed_precondition(format!(
                "Trial#{} has already finished and can not be updated.",
                trial.number
            )));
        }
        // Optuna's rule: only a waiting trial starts running; a second worker
        // asking to run the same trial is told it lost.
        if new_state == OptunaState::Running && trial.state != OptunaState::Waiting {
            return Ok(Response::new(SetTrialStateValuesReply {
                trial_updated: false,
            }));
        }
        let op = OptunaOp::TrialState {
            trial_id,
            state: new_state,
            values: (!r.values.is_empty()).then(|| r.values.into_iter().map(F64).collect()),
            datetime: iso(Self::now()),
        };
        self.commit(&mut state, &campaign, principal, op).await?;
        Ok(Response::new(SetTrialStateValuesReply {
            trial_updated: true,
        }))
    }

    async fn set_trial_intermediate_value(
        &self,
        request: Request<SetTrialIntermediateValueRequest>,
    ) -> Answer<SetTrialIntermediateValueReply> {
        let r = request.get_ref();
        let (step, value) = (r.step, F64(r.intermediate_value));
        self.change_trial(&request, r.trial_id, |trial_id| {
            OptunaOp::TrialIntermediate {
                trial_id,
                step,
                value,
            }
        })
        .await?;
        Ok(Response::new(SetTrialIntermediateValueReply {}))
    }

    async fn set_trial_user_attribute(
        &self,
        request: Request<SetTrialUserAttributeRequest>,
    ) -> Answer<SetTrialUserAttributeReply> {
        let r = request.get_ref();
        let op = Self::trial_attr(false, &r.key, &r.value);
        self.change_trial(&request, r.trial_id, op).await?;
        Ok(Response::new(SetTrialUserAttributeReply {}))
    }

    async fn set_trial_system_attribute(
        &self,
        request: Request<SetTrialSystemAttributeRequest>,
    ) -> Answer<SetTrialSystemAttributeReply> {
        let r = request.get_ref();
        let op = Self::trial_attr(true, &r.key, &r.value);
        self.change_trial(&request, r.trial_id, op).await?;
        Ok(Response::new(SetTrialSystemAttributeReply {}))
    }

    async fn get_trial(&self, request: Request<GetTrialRequest>) -> Answer<GetTrialReply> {
        self.principal(&request, false).await?;
        let state = self.state.lock().await;
        let (_, trial) = state
            .studies
            .trial(id(request.get_ref().trial_id, "trial")?)
            .map_err(|e| status(&e))?;
        Ok(Response::new(GetTrialReply {
            trial: Some(trial_to_wire(trial)),
        }))
    }

    async fn get_trials(&self, request: Request<GetTrialsRequest>) -> Answer<GetTrialsReply> {
        self.principal(&request, false).await?;
        let r = request.get_ref();
        let state = self.state.lock().await;
        let study = state
            .studies
            .study(id(r.study_id, "study")?)
            .map_err(|e| status(&e))?;
        // Ids grow with numbers inside a study: the trials after the client's
        // last finished one are a tail, and the unfinished ones it still
        // watches are looked up one by one.
        let start = study
            .trials
            .partition_point(|t| (*t as i64) <= r.trial_id_greater_than);
        let mut watched: Vec<&firebreak_ledger::optuna::OptunaTrial> = r
            .included_trial_ids
            .iter()
            .filter(|t| **t <= r.trial_id_greater_than)
            .filter_map(|t| u64::try_from(*t).ok())
            .filter_map(|t| state.studies.trials.get(&t))
            .filter(|(owner, _)| *owner == study.id)
            .map(|(_, t)| t)
            .collect();
        watched.sort_by_key(|t| t.number);
        watched.dedup_by_key(|t| t.number);
        let tail = study.trials[start..]
            .iter()
            .filter_map(|t| state.studies.trials.get(t))
            .map(|(_, t)| t);
        let trials = watched.into_iter().chain(tail).map(trial_to_wire).collect();
        Ok(Response::new(GetTrialsReply { trials }))
    }
}

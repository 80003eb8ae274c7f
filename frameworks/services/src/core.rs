//! The scheduler core: a pure, deterministic state machine. Offers, status updates, API
//! changes and the time come in; what to persist, what to do at the master (launch,
//! decline, kill, revive) and which events to publish come out as an [`Output`].
//!
//! It owns apps (with their versions), instances, deployments and the launch queue
//! (backoff and the last offers' refusal reasons). Every input ends with [`Core::converge`]
//! deciding, per app, what to kill and how many instances to launch:
//! - without a deployment, or once only current-configuration instances are left: keep
//!   exactly `instances` live ones (launch the missing, kill the surplus per
//!   `killSelection`);
//! - during a rolling deployment (instances of an older configuration still run): kill old
//!   instances only while the ready (running and healthy) ones stay at or above
//!   `ceil(instances * minimumHealthCapacity)`, and launch new ones only while the total stays at
//!   or below `instances + floor(instances * maximumOverCapacity)`. A deployment succeeds
//!   when exactly `instances` instances run the current configuration, all ready, and
//!   nothing else of the app remains.
//!
//! It must never do I/O, read a clock or draw randomness: the daemon applies the output
//! (persist first, then talk to the master) and the time is an argument. Ids are derived
//! from the time and a counter.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::IpAddr;

use agora_resources::Resources;
use agora_sdk::placement::{Placement, offer_placement};
use agora_sdk::proto::{Offer, TaskInfo, TaskState, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use crate::app::{AppDefinition, KillSelection, UpgradeKind, Violation, parent_groups};
use crate::autoscale::{
    Bound, Decision, Hold, Input as AutoscaleInput, Sample, decide, utilisation,
};
use crate::instance::{Instance, Phase, Step, state_text, transition};
use crate::launch::{Refusal, TaskSpec, task_info, try_fit};
use crate::time::{Millis, iso8601};

/// Refuse seconds when an offer is declined while some app waits for one (short, so the
/// offer comes back soon after the cluster changes).
pub const DEMAND_DECLINE_SECONDS: f64 = 2.0;
/// Refuse seconds when nothing waits to launch (a revive clears it as soon as something
/// does).
pub const IDLE_DECLINE_SECONDS: f64 = 30.0;
/// Offers remembered per app for `/v2/queue`.
pub const OFFER_LOG_MAX: usize = 64;
/// Versions kept per app (older ones are dropped from the versions table).
pub const VERSIONS_KEPT_MAX: usize = 50;

/// An app and its version times (milliseconds; shown as ISO 8601).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppRecord {
    /// The definition.
    pub def: AppDefinition,
    /// This version (any change).
    pub version_ms: Millis,
    /// The last change of configuration (what instances must run).
    pub config_ms: Millis,
    /// The last change of `instances`.
    pub scaling_ms: Millis,
}

/// Marathon's deployment actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeploymentAction {
    /// A new app.
    StartApplication,
    /// Only `instances` changed.
    ScaleApplication,
    /// The configuration changed (or a restart): instances are replaced rolling.
    RestartApplication,
    /// The app was deleted.
    StopApplication,
}

/// A change of one app in progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Id.
    pub id: String,
    /// The app.
    pub app_id: String,
    /// What it does.
    pub action: DeploymentAction,
    /// The app version it deploys.
    pub version_ms: Millis,
    /// The app as it was before (what a cancel rolls back to); `None` for a new app.
    pub from: Option<AppRecord>,
    /// When it started.
    pub started_ms: Millis,
    /// Blue/green: when discovery switched to the new version (the old one stops
    /// `keepOldSeconds` later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switched_ms: Option<Millis>,
}

/// A durable change the daemon writes before acting on the rest of the output.
#[derive(Clone, Debug, PartialEq)]
pub enum Persist {
    /// Store the app (and this version of it).
    App(AppRecord),
    /// Remove the app and its versions.
    DeleteApp(String),
    /// Store an instance.
    Instance(Instance),
    /// Remove an instance.
    DeleteInstance(String),
    /// Store a deployment.
    Deployment(Deployment),
    /// Remove a deployment.
    DeleteDeployment(String),
}

/// A call to the master.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Launch these tasks on this offer.
    Launch {
        /// The offer.
        offer_id: String,
        /// Its agent.
        agent_id: String,
        /// The tasks.
        tasks: Vec<TaskInfo>,
    },
    /// Decline offers.
    Decline {
        /// The offers.
        offer_ids: Vec<String>,
        /// Filter duration.
        refuse_seconds: f64,
    },
    /// Kill a task.
    Kill {
        /// The task.
        task_id: String,
        /// Its agent.
        agent_id: String,
        /// Grace between SIGTERM and SIGKILL, seconds.
        grace_seconds: Option<f64>,
    },
    /// Clear decline filters: something waits to launch.
    Revive,
}

/// Everything one input produced, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Output {
    /// Write these first (one atomic batch).
    pub persist: Vec<Persist>,
    /// Then make these calls.
    pub actions: Vec<Action>,
    /// And publish these events (Marathon's event bus shapes).
    pub events: Vec<Json>,
}

/// Why an API change was refused. A refused change changes nothing.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CoreError {
    /// No such app, task or deployment.
    #[error("{0}")]
    NotFound(String),
    /// The app is locked by a deployment (retry with force), or already exists.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The deployments in the way.
        deployments: Vec<String>,
    },
    /// The change is invalid.
    #[error("invalid")]
    Invalid(Vec<Violation>),
}

/// An offer as the core reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferIn {
    /// Offer id.
    pub id: String,
    /// Agent id.
    pub agent_id: String,
    /// Agent hostname.
    pub host: String,
    /// The role offered to.
    pub role: String,
    /// The resources (validated).
    pub resources: Resources,
    /// Hostname and attributes.
    pub placement: Placement,
}

impl OfferIn {
    /// From the wire; `None` when its resources do not validate.
    pub fn from_proto(offer: &Offer) -> Option<OfferIn> {
        Some(OfferIn {
            id: offer.id.clone(),
            agent_id: offer.agent_id.clone(),
            host: offer.hostname.clone(),
            role: offer.role.clone(),
            resources: agora_sdk::offer_resources(offer).ok()?,
            placement: offer_placement(offer),
        })
    }
}

/// Launch delay state of one app.
#[derive(Clone, Debug, Default, PartialEq)]
struct Backoff {
    delay_ms: Millis,
    not_before: Millis,
    last_failure: Option<Millis>,
}

/// One offer as seen by one app.
#[derive(Clone, Debug, PartialEq)]
pub struct OfferSeen {
    /// Offer id.
    pub offer_id: String,
    /// Agent id.
    pub agent_id: String,
    /// Hostname.
    pub host: String,
    /// When.
    pub at: Millis,
    /// Why it was not used; `None`: it was used.
    pub refusal: Option<Refusal>,
}

/// An app's launch queue state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueEntry {
    backoff: Backoff,
    /// Instances waiting to launch right now.
    pub wanted: usize,
    /// Since when the app waits.
    pub since: Millis,
    /// The last offers it saw.
    pub offers: VecDeque<OfferSeen>,
    /// All offers it processed.
    pub processed_total: u64,
    /// Offers it could not use.
    pub unused_total: u64,
}

impl Output {
    /// Append `other` (for changes made of several core calls).
    pub fn extend(&mut self, other: Output) {
        self.persist.extend(other.persist);
        self.actions.extend(other.actions);
        self.events.extend(other.events);
    }
}

impl QueueEntry {
    /// Remaining launch delay at `now` (0: none).
    pub fn delay_left_ms(&self, now: Millis) -> Millis {
        self.backoff.not_before.saturating_sub(now)
    }

    fn record(&mut self, seen: OfferSeen) {
        self.processed_total += 1;
        if seen.refusal.is_some() {
            self.unused_total += 1;
        }
        if self.offers.len() >= OFFER_LOG_MAX {
            self.offers.pop_front();
        }
        self.offers.push_back(seen);
    }
}

/// A status update as the core reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusIn {
    /// Task id.
    pub task_id: String,
    /// Agent id.
    pub agent_id: String,
    /// State.
    pub state: TaskState,
    /// Health, when the update carries it.
    pub healthy: Option<bool>,
    /// Message.
    pub message: String,
    /// The master does not know the task (reconciliation's TASK_UNKNOWN reason).
    pub unknown_to_master: bool,
    /// Why the state changed.
    pub reason: agora_sdk::proto::StatusReason,
}

impl StatusIn {
    /// From the wire.
    pub fn from_proto(s: &TaskStatus) -> StatusIn {
        StatusIn {
            task_id: s.task_id.clone(),
            agent_id: s.agent_id.clone(),
            state: s.state(),
            healthy: s.healthy,
            message: s.message.clone(),
            unknown_to_master: s.reason() == agora_sdk::proto::StatusReason::TaskUnknown,
            reason: s.reason(),
        }
    }
}

/// What the daemon learnt about one agent from the master's Operator API.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentFacts {
    /// Agent id.
    pub id: String,
    /// Its hostname.
    pub hostname: String,
    /// Its address for service discovery (from its advertised address or hostname).
    pub ip: Option<IpAddr>,
    /// It is being drained: its tasks are killed when the drain's grace ends.
    pub draining: bool,
}

/// One look at the cluster: the agents and the latest usage of this framework's tasks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterView {
    /// Every agent the master knows.
    pub agents: Vec<AgentFacts>,
    /// `(task id, sample)` of this framework's containers.
    pub usage: Vec<(String, Sample)>,
}

/// The autoscaler's latest word on one app (for the API and to report a bound once).
#[derive(Clone, Debug, PartialEq)]
pub struct AutoscaleStatus {
    /// The decision.
    pub decision: Decision,
    /// When it was made.
    pub at: Millis,
    /// The mean utilisation it read (`None`: no data).
    pub utilisation: Option<f64>,
    /// The bound reported last, until the app leaves it.
    pub at_bound: Option<Bound>,
}

/// The state machine. See the [module documentation](self).
#[derive(Debug)]
pub struct Core {
    role: String,
    apps: BTreeMap<String, AppRecord>,
    instances: BTreeMap<String, Instance>,
    deployments: BTreeMap<String, Deployment>,
    queue: BTreeMap<String, QueueEntry>,
    seq: u64,
    launchable: bool,
    /// Agents as the last cluster view showed them.
    agents: BTreeMap<String, AgentFacts>,
    /// Agents being drained (from the last cluster view).
    draining: BTreeSet<String>,
    /// The latest usage sample per task.
    samples: BTreeMap<String, Sample>,
    /// The latest utilisation per task (of its app's autoscale metric).
    utilisations: BTreeMap<String, f64>,
    /// The autoscaler's latest decision per app.
    autoscale: BTreeMap<String, AutoscaleStatus>,
}

fn ms(seconds: f64) -> Millis {
    (seconds.max(0.0) * 1000.0).round() as Millis
}

fn is_terminal(state: TaskState) -> bool {
    matches!(transition(Phase::Running, state, false), Step::Gone { .. })
}

impl Core {
    /// An empty core for a framework subscribed as `role`.
    pub fn new(role: impl Into<String>) -> Core {
        Core {
            role: role.into(),
            apps: BTreeMap::new(),
            instances: BTreeMap::new(),
            deployments: BTreeMap::new(),
            queue: BTreeMap::new(),
            seq: 0,
            launchable: false,
            agents: BTreeMap::new(),
            draining: BTreeSet::new(),
            samples: BTreeMap::new(),
            utilisations: BTreeMap::new(),
            autoscale: BTreeMap::new(),
        }
    }

    /// A core holding what the store held at start.
    pub fn recover(
        role: impl Into<String>,
        apps: Vec<AppRecord>,
        instances: Vec<Instance>,
        deployments: Vec<Deployment>,
    ) -> Core {
        let mut core = Core::new(role);
        for a in apps {
            core.apps.insert(a.def.id.clone(), a);
        }
        for i in instances {
            core.instances.insert(i.task_id.clone(), i);
        }
        for d in deployments {
            core.deployments.insert(d.id.clone(), d);
        }
        core
    }

    // ---- reading -------------------------------------------------------------------

    /// The framework's role.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// All apps by id.
    pub fn apps(&self) -> &BTreeMap<String, AppRecord> {
        &self.apps
    }

    /// One app.
    pub fn app(&self, id: &str) -> Option<&AppRecord> {
        self.apps.get(id)
    }

    /// All instances by task id.
    pub fn instances(&self) -> &BTreeMap<String, Instance> {
        &self.instances
    }

    /// The instances of one app.
    pub fn instances_of(&self, app_id: &str) -> impl Iterator<Item = &Instance> + '_ {
        let app_id = app_id.to_string();
        self.instances.values().filter(move |i| i.app_id == app_id)
    }

    /// All deployments by id.
    pub fn deployments(&self) -> &BTreeMap<String, Deployment> {
        &self.deployments
    }

    /// The deployment of an app, if one runs.
    pub fn deployment_of(&self, app_id: &str) -> Option<&Deployment> {
        self.deployments.values().find(|d| d.app_id == app_id)
    }

    /// The launch queue by app id.
    pub fn queue(&self) -> &BTreeMap<String, QueueEntry> {
        &self.queue
    }

    /// What the last cluster view said about an agent.
    pub fn agent(&self, id: &str) -> Option<&AgentFacts> {
        self.agents.get(id)
    }

    /// Whether the instance's agent is being drained.
    pub fn on_draining_agent(&self, i: &Instance) -> bool {
        self.draining.contains(&i.agent_id)
    }

    /// The latest utilisation of an instance (of its app's autoscale metric).
    pub fn utilisation_of(&self, task_id: &str) -> Option<f64> {
        self.utilisations.get(task_id).copied()
    }

    /// The autoscaler's latest decision for an app.
    pub fn autoscale_status(&self, app_id: &str) -> Option<&AutoscaleStatus> {
        self.autoscale.get(app_id)
    }

    /// Whether a blue/green deployment of the app switched discovery to the new version.
    pub fn switched(&self, app_id: &str) -> bool {
        self.deployment_of(app_id)
            .is_some_and(|d| d.switched_ms.is_some())
    }

    /// `(task id, agent id)` of every instance, for explicit reconciliation.
    pub fn known_tasks(&self) -> Vec<(String, String)> {
        self.instances
            .values()
            .map(|i| (i.task_id.clone(), i.agent_id.clone()))
            .collect()
    }

    fn role_of(&self, def: &AppDefinition) -> String {
        def.role.clone().unwrap_or_else(|| self.role.clone())
    }

    fn next_id(&mut self, prefix: &str, now: Millis) -> String {
        self.seq += 1;
        format!("{prefix}{now:x}-{}", self.seq)
    }

    /// A version time after every earlier version of the app.
    fn next_version(&self, app_id: &str, now: Millis) -> Millis {
        let last = self.apps.get(app_id).map_or(0, |a| a.version_ms);
        let dep_last = self.deployment_of(app_id).map_or(0, |d| d.version_ms);
        now.max(last.saturating_add(1))
            .max(dep_last.saturating_add(1))
    }

    // ---- API changes ---------------------------------------------------------------

    fn lock_check(&self, app_id: &str, force: bool) -> Result<(), CoreError> {
        match self.deployment_of(app_id) {
            Some(d) if !force => Err(CoreError::Conflict {
                message: format!(
                    "App is locked by one or more deployments. Override with the option \
                     '?force=true'. View details at '/v2/deployments/{}'.",
                    d.id
                ),
                deployments: vec![d.id.clone()],
            }),
            _ => Ok(()),
        }
    }

    /// Drop the app's running deployment (forced over): it ends as failed.
    fn supersede(&mut self, app_id: &str, out: &mut Output) {
        if let Some(d) = self.deployment_of(app_id).cloned() {
            self.deployments.remove(&d.id);
            out.persist.push(Persist::DeleteDeployment(d.id.clone()));
            out.events.push(json!({
                "eventType": "deployment_failed",
                "id": d.id,
                "plan": deployment_json(&d),
                "reason": "superseded by a forced change",
            }));
        }
    }

    fn start_deployment(
        &mut self,
        app_id: &str,
        action: DeploymentAction,
        version_ms: Millis,
        from: Option<AppRecord>,
        now: Millis,
        out: &mut Output,
    ) -> Deployment {
        let d = Deployment {
            id: self.next_id("d-", now),
            app_id: app_id.to_string(),
            action,
            version_ms,
            from,
            started_ms: now,
            switched_ms: None,
        };
        self.deployments.insert(d.id.clone(), d.clone());
        out.persist.push(Persist::Deployment(d.clone()));
        out.events.push(json!({
            "eventType": "deployment_info",
            "plan": deployment_json(&d),
            "currentStep": {"actions": [{"action": action_name(action), "app": app_id}]},
            "timestamp": iso8601(now),
        }));
        d
    }

    fn set_app(&mut self, record: AppRecord, out: &mut Output) {
        out.persist.push(Persist::App(record.clone()));
        self.apps.insert(record.def.id.clone(), record);
    }

    fn check_tree(&self, id: &str) -> Result<(), CoreError> {
        let clash = self.apps.keys().find(|other| {
            parent_groups(id).iter().any(|g| g == *other)
                || parent_groups(other).iter().any(|g| g == id)
        });
        match clash {
            Some(other) => Err(CoreError::Conflict {
                message: format!(
                    "{id} and the app {other} cannot both exist: one would be a group of the other"
                ),
                deployments: Vec::new(),
            }),
            None => Ok(()),
        }
    }

    /// Create an app (POST /v2/apps). Refused if it exists.
    pub fn create_app(
        &mut self,
        def: AppDefinition,
        now: Millis,
    ) -> Result<(Output, Deployment), CoreError> {
        if self.apps.contains_key(&def.id) {
            return Err(CoreError::Conflict {
                message: format!("An app with id [{}] already exists.", def.id),
                deployments: Vec::new(),
            });
        }
        self.check_tree(&def.id)?;
        let mut out = Output::default();
        // A stop of an earlier app of this id may still run: it is replaced.
        self.supersede(&def.id, &mut out);
        let v = self.next_version(&def.id, now);
        let id = def.id.clone();
        self.set_app(
            AppRecord {
                def,
                version_ms: v,
                config_ms: v,
                scaling_ms: v,
            },
            &mut out,
        );
        self.queue.remove(&id);
        let d = self.start_deployment(
            &id,
            DeploymentAction::StartApplication,
            v,
            None,
            now,
            &mut out,
        );
        self.converge(now, &mut out);
        Ok((out, d))
    }

    /// Replace an app's definition (PUT /v2/apps/{id}), creating it if absent. Refused
    /// while a deployment runs unless `force`.
    pub fn put_app(
        &mut self,
        def: AppDefinition,
        now: Millis,
        force: bool,
    ) -> Result<(Output, Deployment), CoreError> {
        let Some(prev) = self.apps.get(&def.id).cloned() else {
            return self.create_app(def, now);
        };
        let (mut out, v) = self.begin_change(&def.id, now, force)?;
        let config_changed = AppDefinition {
            instances: 0,
            ..prev.def.clone()
        } != AppDefinition {
            instances: 0,
            ..def.clone()
        };
        let scaled = prev.def.instances != def.instances;
        let id = def.id.clone();
        self.set_app(
            AppRecord {
                def,
                version_ms: v,
                config_ms: if config_changed { v } else { prev.config_ms },
                scaling_ms: if scaled { v } else { prev.scaling_ms },
            },
            &mut out,
        );
        if config_changed {
            self.queue.remove(&id);
        }
        let action = if config_changed {
            DeploymentAction::RestartApplication
        } else {
            DeploymentAction::ScaleApplication
        };
        let d = self.start_deployment(&id, action, v, Some(prev), now, &mut out);
        self.converge(now, &mut out);
        Ok((out, d))
    }

    /// The app as it is now, or NotFound.
    fn existing(&self, id: &str) -> Result<AppRecord, CoreError> {
        self.apps
            .get(id)
            .cloned()
            .ok_or_else(|| CoreError::NotFound(format!("App '{id}' does not exist")))
    }

    /// How every change to an existing app starts: refused while a deployment runs unless
    /// `force`, the running deployment superseded, and the new version's time.
    fn begin_change(
        &mut self,
        id: &str,
        now: Millis,
        force: bool,
    ) -> Result<(Output, Millis), CoreError> {
        self.lock_check(id, force)?;
        let mut out = Output::default();
        self.supersede(id, &mut out);
        let v = self.next_version(id, now);
        Ok((out, v))
    }

    /// Restart every instance rolling (POST /v2/apps/{id}/restart).
    pub fn restart_app(
        &mut self,
        id: &str,
        now: Millis,
        force: bool,
    ) -> Result<(Output, Deployment), CoreError> {
        let prev = self.existing(id)?;
        let (mut out, v) = self.begin_change(id, now, force)?;
        self.set_app(
            AppRecord {
                def: prev.def.clone(),
                version_ms: v,
                config_ms: v,
                scaling_ms: prev.scaling_ms,
            },
            &mut out,
        );
        self.queue.remove(id);
        let d = self.start_deployment(
            id,
            DeploymentAction::RestartApplication,
            v,
            Some(prev),
            now,
            &mut out,
        );
        self.converge(now, &mut out);
        Ok((out, d))
    }

    /// Delete an app (DELETE /v2/apps/{id}): its instances are killed.
    pub fn delete_app(
        &mut self,
        id: &str,
        now: Millis,
        force: bool,
    ) -> Result<(Output, Deployment), CoreError> {
        let prev = self.existing(id)?;
        let (mut out, v) = self.begin_change(id, now, force)?;
        self.apps.remove(id);
        self.queue.remove(id);
        out.persist.push(Persist::DeleteApp(id.to_string()));
        let d = self.start_deployment(
            id,
            DeploymentAction::StopApplication,
            v,
            Some(prev),
            now,
            &mut out,
        );
        self.converge(now, &mut out);
        Ok((out, d))
    }

    /// Kill instances by task id (of `app_id` when given). With `scale`, the app's
    /// `instances` shrinks by the number of live instances killed (a new version, a
    /// ScaleApplication deployment); without, they are replaced. Unknown ids are skipped.
    /// Returns the killed instances as they were.
    pub fn kill_tasks(
        &mut self,
        app_id: Option<&str>,
        task_ids: &[String],
        scale: bool,
        force: bool,
        now: Millis,
    ) -> Result<(Output, Vec<Instance>, Option<Deployment>), CoreError> {
        if let Some(a) = app_id
            && !self.apps.contains_key(a)
        {
            return Err(CoreError::NotFound(format!("App '{a}' does not exist")));
        }
        let targets: Vec<Instance> = task_ids
            .iter()
            .filter_map(|t| self.instances.get(t))
            .filter(|i| app_id.is_none_or(|a| i.app_id == a))
            .cloned()
            .collect();
        if scale {
            for i in &targets {
                if self.apps.contains_key(&i.app_id) {
                    self.lock_check(&i.app_id, force)?;
                }
            }
        }
        let mut out = Output::default();
        let mut per_app: BTreeMap<String, u32> = BTreeMap::new();
        for i in &targets {
            let inactive = self
                .apps
                .get(&i.app_id)
                .and_then(|a| a.def.unreachable_strategy.inactive_after_seconds())
                .map(ms);
            if i.live(now, inactive) {
                *per_app.entry(i.app_id.clone()).or_default() += 1;
            }
            self.request_kill(&i.task_id, &mut out);
        }
        let mut deployment = None;
        if scale {
            for (app, n) in per_app {
                let Some(prev) = self.apps.get(&app).cloned() else {
                    continue;
                };
                self.scale_app(&prev, prev.def.instances.saturating_sub(n), now, &mut out);
                deployment = self.deployment_of(&app).cloned();
            }
        }
        self.converge(now, &mut out);
        Ok((out, targets, deployment))
    }

    /// Cancel a deployment (DELETE /v2/deployments/{id}). Without `force` the app rolls
    /// back to what it was before (a new deployment, returned); with `force` the
    /// deployment is only dropped and the app stays as it is.
    pub fn cancel_deployment(
        &mut self,
        id: &str,
        force: bool,
        now: Millis,
    ) -> Result<(Output, Option<Deployment>), CoreError> {
        let d =
            self.deployments.get(id).cloned().ok_or_else(|| {
                CoreError::NotFound(format!("DeploymentPlan {id} does not exist"))
            })?;
        let mut out = Output::default();
        self.deployments.remove(id);
        out.persist.push(Persist::DeleteDeployment(id.to_string()));
        out.events.push(json!({
            "eventType": "deployment_failed",
            "id": d.id,
            "plan": deployment_json(&d),
            "reason": if force { "cancelled (forced, no rollback)" } else { "cancelled, rolling back" },
        }));
        if force {
            self.converge(now, &mut out);
            return Ok((out, None));
        }
        let current = self.apps.get(&d.app_id).cloned();
        let v = self.next_version(&d.app_id, now);
        let rollback = match d.from.clone() {
            Some(prev) => {
                // The old configuration's instances are current again: they stay, and the
                // new ones are replaced by them.
                self.set_app(
                    AppRecord {
                        def: prev.def,
                        version_ms: v,
                        config_ms: prev.config_ms,
                        scaling_ms: v,
                    },
                    &mut out,
                );
                let action = if current.is_none() {
                    DeploymentAction::StartApplication
                } else {
                    DeploymentAction::RestartApplication
                };
                self.start_deployment(&d.app_id, action, v, current, now, &mut out)
            }
            None => {
                self.apps.remove(&d.app_id);
                self.queue.remove(&d.app_id);
                out.persist.push(Persist::DeleteApp(d.app_id.clone()));
                self.start_deployment(
                    &d.app_id,
                    DeploymentAction::StopApplication,
                    v,
                    current,
                    now,
                    &mut out,
                )
            }
        };
        self.converge(now, &mut out);
        Ok((out, Some(rollback)))
    }

    /// Forget an app's launch delay (DELETE /v2/queue/{app}/delay): it launches on the
    /// next offer.
    pub fn reset_delay(&mut self, app_id: &str, now: Millis) -> Result<Output, CoreError> {
        if !self.apps.contains_key(app_id) {
            return Err(CoreError::NotFound(format!(
                "App '{app_id}' does not exist"
            )));
        }
        if let Some(q) = self.queue.get_mut(app_id) {
            q.backoff = Backoff::default();
        }
        let mut out = Output::default();
        self.converge(now, &mut out);
        Ok(out)
    }

    // ---- master events -------------------------------------------------------------

    /// A (re-)subscription: offers held before are void and decline filters may hold
    /// resources back, so revive if anything waits.
    pub fn subscribed(&mut self, now: Millis) -> Output {
        self.launchable = false;
        self.tick(now)
    }

    /// The time passed: deployments progress, backoffs end, unreachable instances are
    /// replaced or forgotten.
    pub fn tick(&mut self, now: Millis) -> Output {
        let mut out = Output::default();
        self.converge(now, &mut out);
        out
    }

    /// Offers arrived: each is used for waiting instances or declined.
    pub fn offers(&mut self, offers: Vec<OfferIn>, now: Millis) -> Output {
        let mut out = Output::default();
        self.converge(now, &mut out);
        for offer in offers {
            self.use_offer(offer, now, &mut out);
        }
        out
    }

    /// A new look at the cluster: agents (draining ones stop counting their instances,
    /// whose replacements start at once) and usage (utilisations, then each autoscaled
    /// app's decision).
    pub fn cluster(&mut self, view: ClusterView, now: Millis) -> Output {
        let mut out = Output::default();
        self.draining = view
            .agents
            .iter()
            .filter(|a| a.draining)
            .map(|a| a.id.clone())
            .collect();
        self.agents = view.agents.into_iter().map(|a| (a.id.clone(), a)).collect();
        for (task_id, sample) in view.usage {
            let Some(inst) = self.instances.get(&task_id) else {
                continue;
            };
            let prev = self.samples.get(&task_id);
            if prev.is_some_and(|p| p.at_ms >= sample.at_ms) {
                // The same report again (the agent reports less often than we look).
                continue;
            }
            if let Some(def) = self.apps.get(&inst.app_id).map(|a| &a.def)
                && let Some(policy) = &def.autoscale
            {
                match utilisation(policy.metric, prev, &sample, def.cpus, def.mem) {
                    Some(u) => self.utilisations.insert(task_id.clone(), u),
                    None => self.utilisations.remove(&task_id),
                };
            }
            self.samples.insert(task_id, sample);
        }
        let instances = &self.instances;
        self.samples.retain(|t, _| instances.contains_key(t));
        self.utilisations.retain(|t, _| instances.contains_key(t));
        let apps = &self.apps;
        self.autoscale
            .retain(|a, _| apps.get(a).is_some_and(|a| a.def.autoscale.is_some()));
        self.converge(now, &mut out);
        let scaled: Vec<String> = self
            .apps
            .values()
            .filter(|a| a.def.autoscale.is_some())
            .map(|a| a.def.id.clone())
            .collect();
        let mut changed = false;
        for id in scaled {
            changed |= self.autoscale_app(&id, now, &mut out);
        }
        if changed {
            self.converge(now, &mut out);
        }
        out
    }

    /// Run the autoscaling policy for one app; true when it changed `instances`.
    fn autoscale_app(&mut self, app_id: &str, now: Millis, out: &mut Output) -> bool {
        let Some(app) = self.apps.get(app_id).cloned() else {
            return false;
        };
        let Some(policy) = app.def.autoscale.clone() else {
            return false;
        };
        let hc = app.def.has_health_checks();
        let utils: Vec<f64> = self
            .instances_of(app_id)
            .filter(|i| i.config_ms == app.config_ms && i.ready(hc))
            .filter_map(|i| self.utilisations.get(&i.task_id).copied())
            .collect();
        let mean = (!utils.is_empty()).then(|| utils.iter().sum::<f64>() / utils.len() as f64);
        let decision = decide(
            &policy,
            &AutoscaleInput {
                current: app.def.instances,
                utilisations: &utils,
                deploying: self.deployment_of(app_id).is_some(),
                last_scaling_ms: app.scaling_ms,
                now,
            },
        );
        let previous_bound = self.autoscale.get(app_id).and_then(|s| s.at_bound);
        // The fields both autoscaling events carry, and the ones each adds.
        let event = |kind: &str, fields: Json| {
            let mut e = json!({
                "eventType": kind,
                "timestamp": iso8601(now),
                "appId": app_id,
                "metric": policy.metric,
                "target": policy.target,
                "min": policy.min,
                "max": policy.max,
            });
            if let (Some(e), Json::Object(f)) = (e.as_object_mut(), fields) {
                e.extend(f);
            }
            e
        };
        let mut at_bound = previous_bound;
        let mut changed = false;
        match decision {
            Decision::Scale {
                to,
                desired,
                utilisation,
            } => {
                out.events.push(event(
                    "autoscale_event",
                    json!({"from": app.def.instances, "to": to, "desired": desired,
                           "utilisation": utilisation}),
                ));
                self.scale_app(&app, to, now, out);
                at_bound = None;
                changed = true;
            }
            Decision::AtBound {
                bound,
                desired,
                utilisation,
            } => {
                if previous_bound != Some(bound) {
                    out.events.push(event(
                        "autoscale_bound_event",
                        json!({"bound": bound, "instances": app.def.instances,
                               "desired": desired, "utilisation": utilisation}),
                    ));
                }
                at_bound = Some(bound);
            }
            Decision::Hold(Hold::OnTarget) => at_bound = None,
            Decision::Hold(_) => {}
        }
        self.autoscale.insert(
            app_id.to_string(),
            AutoscaleStatus {
                decision,
                at: now,
                utilisation: mean,
                at_bound,
            },
        );
        changed
    }

    /// Set an app's `instances` as a new version with a ScaleApplication deployment.
    fn scale_app(&mut self, prev: &AppRecord, instances: u32, now: Millis, out: &mut Output) {
        let id = prev.def.id.clone();
        self.supersede(&id, out);
        let v = self.next_version(&id, now);
        let mut def = prev.def.clone();
        def.instances = instances;
        self.set_app(
            AppRecord {
                def,
                version_ms: v,
                config_ms: prev.config_ms,
                scaling_ms: v,
            },
            out,
        );
        self.start_deployment(
            &id,
            DeploymentAction::ScaleApplication,
            v,
            Some(prev.clone()),
            now,
            out,
        );
    }

    /// The instances service discovery lists for an app: the ready ones, except during a
    /// blue/green deployment, where only the old version's are listed until discovery
    /// switches, and only the new version's after (in one step).
    pub fn discoverable(&self, app_id: &str) -> Vec<&Instance> {
        let Some(app) = self.apps.get(app_id) else {
            return Vec::new();
        };
        let hc = app.def.has_health_checks();
        let ready: Vec<&Instance> = self.instances_of(app_id).filter(|i| i.ready(hc)).collect();
        let blue_green = app.def.upgrade_strategy.kind == UpgradeKind::BlueGreen;
        match self.deployment_of(app_id) {
            Some(d) if blue_green && d.switched_ms.is_some() => ready
                .into_iter()
                .filter(|i| i.config_ms == app.config_ms)
                .collect(),
            Some(_) if blue_green => {
                let old: Vec<&Instance> = ready
                    .iter()
                    .copied()
                    .filter(|i| i.config_ms != app.config_ms)
                    .collect();
                // A new app (or one whose old version is all gone) has only the new.
                if old.is_empty() { ready } else { old }
            }
            _ => ready,
        }
    }

    fn waiting_apps(&self, now: Millis) -> Vec<String> {
        let mut ids: Vec<(&Millis, &String)> = self
            .queue
            .iter()
            .filter(|(id, q)| {
                q.wanted > 0 && q.backoff.not_before <= now && self.apps.contains_key(*id)
            })
            .map(|(id, q)| (&q.since, id))
            .collect();
        ids.sort();
        ids.into_iter().map(|(_, id)| id.clone()).collect()
    }

    fn use_offer(&mut self, offer: OfferIn, now: Millis, out: &mut Output) {
        let mut available = offer.resources.clone();
        let mut tasks = Vec::new();
        for app_id in self.waiting_apps(now) {
            let Some(record) = self.apps.get(&app_id).cloned() else {
                continue;
            };
            let constraints = record.def.parsed_constraints();
            let app_role = self.role_of(&record.def);
            loop {
                let wanted = self.queue.get(&app_id).map_or(0, |q| q.wanted);
                if wanted == 0 {
                    break;
                }
                let placed: Vec<&Placement> =
                    self.instances_of(&app_id).map(|i| &i.placement).collect();
                let fit = try_fit(
                    &record.def,
                    &constraints,
                    &app_role,
                    &offer.role,
                    &available,
                    &offer.placement,
                    &placed,
                );
                let seen = |refusal| OfferSeen {
                    offer_id: offer.id.clone(),
                    agent_id: offer.agent_id.clone(),
                    host: offer.host.clone(),
                    at: now,
                    refusal,
                };
                let fit = match fit {
                    Ok(fit) => fit,
                    Err(refusal) => {
                        if let Some(q) = self.queue.get_mut(&app_id) {
                            q.record(seen(Some(refusal)));
                        }
                        break;
                    }
                };
                let Ok(rest) = available.checked_sub(&fit.resources) else {
                    break;
                };
                available = rest;
                if let Some(q) = self.queue.get_mut(&app_id) {
                    q.record(seen(None));
                    q.wanted -= 1;
                }
                let task_id = self.next_id(&format!("{}.", app_key(&app_id)), now);
                let instance = Instance {
                    task_id: task_id.clone(),
                    app_id: app_id.clone(),
                    version_ms: record.version_ms,
                    config_ms: record.config_ms,
                    agent_id: offer.agent_id.clone(),
                    host: offer.host.clone(),
                    placement: offer.placement.clone(),
                    ports: fit.ports.clone(),
                    phase: Phase::Launching,
                    healthy: None,
                    staged_at: now,
                    started_at: None,
                    unreachable_since: None,
                    kill_requested: false,
                    last_state: "TASK_STAGING".into(),
                    message: String::new(),
                };
                tasks.push(task_info(
                    &record.def,
                    &TaskSpec {
                        task_id: &task_id,
                        agent_id: &offer.agent_id,
                        host: &offer.host,
                        version_ms: record.version_ms,
                        fit: &fit,
                    },
                ));
                out.persist.push(Persist::Instance(instance.clone()));
                self.instances.insert(task_id, instance);
            }
        }
        if tasks.is_empty() {
            let waiting = self.queue.values().any(|q| q.wanted > 0);
            out.actions.push(Action::Decline {
                offer_ids: vec![offer.id],
                refuse_seconds: if waiting {
                    DEMAND_DECLINE_SECONDS
                } else {
                    IDLE_DECLINE_SECONDS
                },
            });
        } else {
            out.actions.push(Action::Launch {
                offer_id: offer.id,
                agent_id: offer.agent_id,
                tasks,
            });
        }
    }

    /// The master refused a launch: its instances never existed (they are launched again
    /// on a later offer, without backoff).
    pub fn launch_failed(&mut self, task_ids: &[String], now: Millis) -> Output {
        let mut out = Output::default();
        for t in task_ids {
            if self.instances.remove(t).is_some() {
                out.persist.push(Persist::DeleteInstance(t.clone()));
            }
        }
        self.converge(now, &mut out);
        out
    }

    /// A status update.
    pub fn status(&mut self, s: StatusIn, now: Millis) -> Output {
        let mut out = Output::default();
        let Some(inst) = self.instances.get(&s.task_id).cloned() else {
            // Not ours (forgotten after an expunge, or from before a lost record): a live
            // one is killed so no unaccounted copy runs.
            if !is_terminal(s.state) && s.state != TaskState::Unspecified {
                out.actions.push(Action::Kill {
                    task_id: s.task_id.clone(),
                    agent_id: s.agent_id.clone(),
                    grace_seconds: None,
                });
            }
            return out;
        };
        let has_hc = self
            .apps
            .get(&inst.app_id)
            .is_some_and(|a| a.def.has_health_checks());
        let step = transition(inst.phase, s.state, inst.kill_requested);
        out.events.push(json!({
            "eventType": "status_update_event",
            "timestamp": iso8601(now),
            "slaveId": s.agent_id,
            "taskId": s.task_id,
            "taskStatus": state_text(s.state),
            "message": s.message,
            "appId": inst.app_id,
            "host": inst.host,
            "ports": inst.ports,
            "version": iso8601(inst.version_ms),
        }));
        match step {
            Step::Ignore => {}
            Step::Gone { failed } => {
                // A launch recorded but never seen by the master (the daemon died before
                // sending it, or the master lost it) is not a crash of the app.
                // Nor is a kill someone else asked for (an operator, or the master
                // draining the agent): the app did not crash, so no backoff.
                let killed_by_someone = s.state == TaskState::Killed
                    && matches!(
                        s.reason,
                        agora_sdk::proto::StatusReason::KilledByFramework
                            | agora_sdk::proto::StatusReason::KilledByOperator
                    );
                let failed = failed
                    && !killed_by_someone
                    && !(s.unknown_to_master && inst.phase == Phase::Launching);
                self.instances.remove(&s.task_id);
                out.persist.push(Persist::DeleteInstance(s.task_id.clone()));
                if failed {
                    self.back_off(&inst.app_id, now);
                }
            }
            Step::Phase(phase) => {
                let mut next = inst.clone();
                next.phase = phase;
                next.last_state = state_text(s.state);
                next.message = s.message.clone();
                if !s.agent_id.is_empty() {
                    next.agent_id = s.agent_id.clone();
                }
                if phase == Phase::Running && next.started_at.is_none() {
                    next.started_at = Some(now);
                }
                next.unreachable_since = match phase {
                    Phase::Unreachable => inst.unreachable_since.or(Some(now)),
                    _ => None,
                };
                if let Some(h) = s.healthy
                    && has_hc
                {
                    next.healthy = Some(h);
                }
                if next.healthy != inst.healthy {
                    out.events.push(json!({
                        "eventType": "health_status_changed_event",
                        "timestamp": iso8601(now),
                        "appId": inst.app_id,
                        "taskId": inst.task_id,
                        "instanceId": inst.task_id,
                        "version": iso8601(inst.version_ms),
                        "alive": next.healthy == Some(true),
                    }));
                }
                if next != inst {
                    out.persist.push(Persist::Instance(next.clone()));
                    self.instances.insert(s.task_id.clone(), next);
                }
            }
        }
        self.converge(now, &mut out);
        out
    }

    fn back_off(&mut self, app_id: &str, now: Millis) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let base = ms(app.def.backoff_seconds);
        let max = ms(app.def.max_launch_delay_seconds);
        let factor = app.def.backoff_factor;
        let q = self
            .queue
            .entry(app_id.to_string())
            .or_insert_with(|| QueueEntry {
                since: now,
                ..Default::default()
            });
        let b = &mut q.backoff;
        b.delay_ms = if b.delay_ms == 0 {
            base.min(max)
        } else {
            ((b.delay_ms as f64 * factor) as Millis).min(max)
        };
        b.not_before = now.saturating_add(b.delay_ms);
        b.last_failure = Some(now);
    }

    fn request_kill(&mut self, task_id: &str, out: &mut Output) {
        let Some(inst) = self.instances.get_mut(task_id) else {
            return;
        };
        if inst.kill_requested {
            return;
        }
        inst.kill_requested = true;
        let grace_seconds = self
            .apps
            .get(&inst.app_id)
            .and_then(|a| a.def.task_kill_grace_period_seconds);
        out.persist.push(Persist::Instance(inst.clone()));
        out.actions.push(Action::Kill {
            task_id: inst.task_id.clone(),
            agent_id: inst.agent_id.clone(),
            grace_seconds,
        });
    }

    /// Kill what must go and count what must launch, for every app; finish deployments
    /// that reached their goal; revive offers when something became launchable.
    pub fn converge(&mut self, now: Millis, out: &mut Output) {
        let mut app_ids: Vec<String> = self.apps.keys().cloned().collect();
        for i in self.instances.values() {
            if !self.apps.contains_key(&i.app_id) {
                app_ids.push(i.app_id.clone());
            }
        }
        for d in self.deployments.values() {
            app_ids.push(d.app_id.clone());
        }
        app_ids.sort();
        app_ids.dedup();
        for id in app_ids {
            self.converge_app(&id, now, out);
        }
        let launchable = !self.waiting_apps(now).is_empty();
        if launchable && !self.launchable {
            out.actions.push(Action::Revive);
        }
        self.launchable = launchable;
    }

    fn converge_app(&mut self, app_id: &str, now: Millis, out: &mut Output) {
        let Some(app) = self.apps.get(app_id).cloned() else {
            // A deleted app: every instance goes, then its stop deployment ends.
            let left: Vec<String> = self
                .instances_of(app_id)
                .map(|i| i.task_id.clone())
                .collect();
            for t in &left {
                self.request_kill(t, out);
            }
            self.expunge(app_id, None, now, out);
            if self.instances_of(app_id).next().is_none() {
                self.finish_deployment(app_id, now, out);
            }
            return;
        };
        let def = &app.def;
        let hc = def.has_health_checks();
        let inactive = def.unreachable_strategy.inactive_after_seconds().map(ms);
        self.expunge(app_id, Some(def), now, out);
        let target = def.instances as usize;
        let selection = def.kill_selection;
        // Instances on a draining agent still run (and serve) until the drain kills them,
        // but no longer count: their replacements start elsewhere now, before the
        // drain's grace ends.
        let live: Vec<Instance> = self
            .instances_of(app_id)
            .filter(|i| i.live(now, inactive) && !self.on_draining_agent(i))
            .cloned()
            .collect();
        let (new, old): (Vec<Instance>, Vec<Instance>) =
            live.into_iter().partition(|i| i.config_ms == app.config_ms);
        let deploying = self.deployment_of(app_id).is_some();
        let mut kills: Vec<String> = Vec::new();
        let wanted = if deploying
            && !old.is_empty()
            && def.upgrade_strategy.kind == UpgradeKind::BlueGreen
        {
            // Blue/green: the new version starts at full size beside the old one, which
            // is left alone (and keeps serving) until every new instance is ready; then
            // discovery switches in one step and the old one stops keepOldSeconds later.
            let new_ready = new.iter().filter(|i| i.ready(hc)).count();
            let switched = match self.deployment_of(app_id).and_then(|d| d.switched_ms) {
                Some(at) => Some(at),
                None if new_ready >= target => {
                    let mut d = self.deployment_of(app_id).cloned().expect("deploying");
                    d.switched_ms = Some(now);
                    out.persist.push(Persist::Deployment(d.clone()));
                    out.events.push(json!({
                        "eventType": "blue_green_switch_event",
                        "timestamp": iso8601(now),
                        "appId": app_id,
                        "deploymentId": d.id,
                        "version": iso8601(app.config_ms),
                    }));
                    self.deployments.insert(d.id.clone(), d);
                    Some(now)
                }
                None => None,
            };
            let keep_ms = ms(def.upgrade_strategy.keep_old_seconds);
            if switched.is_some_and(|at| now >= at.saturating_add(keep_ms)) {
                kills.extend(old.iter().map(|i| i.task_id.clone()));
            }
            target.saturating_sub(new.len())
        } else if deploying && !old.is_empty() {
            let u = &def.upgrade_strategy;
            let min_healthy = ((target as f64) * u.minimum_health_capacity - 1e-9)
                .ceil()
                .max(0.0) as usize;
            let max_total =
                target + ((target as f64) * u.maximum_over_capacity + 1e-9).floor() as usize;
            let (mut old_ready, old_unready): (Vec<Instance>, Vec<Instance>) =
                old.into_iter().partition(|i| i.ready(hc));
            kills.extend(old_unready.iter().map(|i| i.task_id.clone()));
            let new_ready = new.iter().filter(|i| i.ready(hc)).count();
            let mut budget = (old_ready.len() + new_ready).saturating_sub(min_healthy);
            sort_for_kill(&mut old_ready, selection);
            let mut old_left = old_ready.len();
            for i in &old_ready {
                if budget == 0 {
                    break;
                }
                kills.push(i.task_id.clone());
                budget -= 1;
                old_left -= 1;
            }
            target
                .saturating_sub(new.len())
                .min(max_total.saturating_sub(old_left + new.len()))
        } else {
            let mut all: Vec<Instance> = new.into_iter().chain(old).collect();
            if all.len() > target {
                // Older configurations first, then the least ready, then per killSelection.
                sort_for_kill(&mut all, selection);
                all.sort_by_key(|i| (i.config_ms == app.config_ms, i.ready(hc)));
                kills.extend(
                    all.iter()
                        .take(all.len() - target)
                        .map(|i| i.task_id.clone()),
                );
            }
            target.saturating_sub(all.len())
        };
        for t in &kills {
            self.request_kill(t, out);
        }
        let q = self
            .queue
            .entry(app_id.to_string())
            .or_insert_with(|| QueueEntry {
                since: now,
                ..Default::default()
            });
        if q.wanted == 0 && wanted > 0 {
            q.since = now;
        }
        q.wanted = wanted;
        if q.backoff.last_failure.is_some()
            && now
                >= q.backoff
                    .not_before
                    .saturating_add(ms(def.max_launch_delay_seconds))
        {
            // Quiet for a whole maximum delay after the last delay ended: the next failure
            // starts from backoffSeconds again.
            q.backoff = Backoff::default();
        }
        if wanted == 0 && q.backoff.last_failure.is_none() {
            self.queue.remove(app_id);
        }
        let done = {
            let mine: Vec<&Instance> = self
                .instances_of(app_id)
                .filter(|i| i.live(now, inactive) || i.kill_requested || i.phase == Phase::Killing)
                .collect();
            mine.len() == target
                && mine
                    .iter()
                    .all(|i| i.config_ms == app.config_ms && i.ready(hc))
        };
        if done {
            self.finish_deployment(app_id, now, out);
        }
    }

    /// Forget instances unreachable for longer than the app's expunge time (or any
    /// unreachable instance of a deleted app).
    fn expunge(
        &mut self,
        app_id: &str,
        def: Option<&AppDefinition>,
        now: Millis,
        out: &mut Output,
    ) {
        let expunge_ms = match def.map(|d| &d.unreachable_strategy) {
            Some(crate::app::UnreachableStrategy::Enabled {
                expunge_after_seconds,
                ..
            }) => Some(ms(*expunge_after_seconds)),
            Some(_) => None,
            None => Some(0),
        };
        let Some(expunge_ms) = expunge_ms else {
            return;
        };
        let gone: Vec<String> = self
            .instances_of(app_id)
            .filter(|i| {
                i.phase == Phase::Unreachable
                    && i.unreachable_since
                        .is_some_and(|s| now >= s.saturating_add(expunge_ms))
            })
            .map(|i| i.task_id.clone())
            .collect();
        for t in gone {
            self.instances.remove(&t);
            out.persist.push(Persist::DeleteInstance(t));
        }
    }

    fn finish_deployment(&mut self, app_id: &str, now: Millis, out: &mut Output) {
        if let Some(d) = self.deployment_of(app_id).cloned() {
            self.deployments.remove(&d.id);
            out.persist.push(Persist::DeleteDeployment(d.id.clone()));
            out.events.push(json!({
                "eventType": "deployment_success",
                "id": d.id,
                "plan": deployment_json(&d),
                "timestamp": iso8601(now),
            }));
        }
    }
}

/// Kill order per `killSelection` (first = killed first).
fn sort_for_kill(v: &mut [Instance], selection: KillSelection) {
    match selection {
        KillSelection::YoungestFirst => v.sort_by(|a, b| {
            b.staged_at
                .cmp(&a.staged_at)
                .then(b.task_id.cmp(&a.task_id))
        }),
        KillSelection::OldestFirst => v.sort_by(|a, b| {
            a.staged_at
                .cmp(&b.staged_at)
                .then(a.task_id.cmp(&b.task_id))
        }),
    }
}

/// An app id as a task id prefix: `/group/app` -> `group_app`.
pub fn app_key(app_id: &str) -> String {
    app_id.trim_start_matches('/').replace('/', "_")
}

/// Marathon's name of a deployment action.
pub fn action_name(a: DeploymentAction) -> &'static str {
    match a {
        DeploymentAction::StartApplication => "StartApplication",
        DeploymentAction::ScaleApplication => "ScaleApplication",
        DeploymentAction::RestartApplication => "RestartApplication",
        DeploymentAction::StopApplication => "StopApplication",
    }
}

/// A deployment in Marathon's `/v2/deployments` shape.
pub fn deployment_json(d: &Deployment) -> Json {
    let action = json!({"action": action_name(d.action), "app": d.app_id});
    json!({
        "id": d.id,
        "version": iso8601(d.version_ms),
        "affectedApps": [d.app_id],
        "affectedPods": [],
        "steps": [{"actions": [action.clone()]}],
        "currentActions": [{"action": action_name(d.action), "app": d.app_id, "readinessCheckResults": []}],
        "currentStep": 1,
        "totalSteps": 1,
    })
}

#[cfg(test)]
mod tests;

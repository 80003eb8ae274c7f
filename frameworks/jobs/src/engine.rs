//! The jobs engine: every job, schedule, run and dependency in one synchronous state
//! machine. API calls, offers, status updates and clock ticks go in (each with `now`);
//! out come answers, the store [`Batch`] that makes the change durable, and [`Out`]
//! effects (kills, revive, events) to carry out *after* the batch is committed.
//!
//! Owns the rules: validation against other jobs (parents, cycles), schedule evaluation
//! with starting deadlines, concurrency policies, Chronos's dependency rule and blocking,
//! cascades (a job and its descendants in order), history limits, offer placement, and
//! recovery from the store. Pure: no I/O, no clock, no async. It must never change a run
//! except through [`run::transition`], and never change anything on a refused call.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agora_sdk::TaskBuilder;
use agora_sdk::proto::{TaskInfo, TaskState, Uri};
use agora_sdk::resources::{Attributes, Resources};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::dag::{Dag, DagError, GraphExport};
use crate::run::{self, Effect, Illegal, Input, KillCause, Phase, Policy, TaskRef};
use crate::schedule::{Schedule, ScheduleSpec};
use crate::spec::{ConcurrencyPolicy, ConstraintOperator, Invalid, JobSpec};
use crate::store::Batch;

/// Store table of job definitions and their dependency state.
pub const T_JOBS: &str = "jobs";
/// Store table of schedules and their last tick.
pub const T_SCHEDULES: &str = "schedules";
/// Store table of runs.
pub const T_RUNS: &str = "runs";
/// Store table of counters and the framework id.
pub const T_META: &str = "meta";
/// Most jobs one daemon holds.
pub const MAX_JOBS: usize = 100_000;
/// Most schedules one job has.
pub const MAX_SCHEDULES_PER_JOB: usize = 16;
/// Most runs one offer carries.
pub const MAX_TASKS_PER_OFFER: usize = 64;

/// A refused API call: HTTP status, the field (422) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub field: Option<String>,
    pub message: String,
}

impl ApiError {
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 404,
            field: None,
            message: message.into(),
        }
    }
    fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: 409,
            field: None,
            message: message.into(),
        }
    }
}

impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> ApiError {
        ApiError {
            status: 422,
            field: Some(e.field.clone()),
            message: e.to_string(),
        }
    }
}

fn dag_error(e: DagError) -> ApiError {
    let field = match &e {
        DagError::UnknownParent { index, .. } | DagError::Cycle { index, .. } => {
            format!("dependencies[{index}]")
        }
        DagError::HasChildren { .. } => return ApiError::conflict(e.to_string()),
    };
    Invalid::new(field, e.to_string()).into()
}

/// Configuration the engine validates against.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The roles the daemon subscribes with; the first is a run's default.
    pub roles: Vec<String>,
}

/// Why a run exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Trigger {
    /// A schedule tick at `scheduledAt`.
    Schedule {
        schedule_id: String,
        scheduled_ms: i64,
    },
    /// Started through the API.
    Manual,
    /// Every parent succeeded since the job's last run.
    Dependency,
    /// Part of a manual trigger of `root_run` and its descendants.
    Cascade { root_run: String },
}

/// What one attempt did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: u32,
    pub task_id: String,
    pub agent_id: String,
    pub launched_ms: i64,
    #[serde(default)]
    pub running_ms: Option<i64>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// Latest task state seen.
    pub state: String,
    #[serde(default)]
    pub message: String,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub id: String,
    pub job_id: String,
    pub seq: u64,
    pub trigger: Trigger,
    pub created_ms: i64,
    #[serde(default)]
    pub first_launch_ms: Option<i64>,
    #[serde(default)]
    pub finished_ms: Option<i64>,
    /// The current attempt, 1-based.
    pub attempt: u32,
    /// Launches sent (the task id's last part).
    pub launches: u32,
    pub phase: Phase,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// For a skipped record standing for several missed ticks: how many.
    #[serde(default)]
    pub skipped_ticks: u32,
}

/// Per job: what the dependency rule needs, and counters. Sequence numbers come from one
/// counter, so "after" never depends on clock resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobState {
    #[serde(default)]
    pub last_run_seq: u64,
    #[serde(default)]
    pub last_success_seq: u64,
    #[serde(default)]
    pub last_failure_seq: u64,
    #[serde(default)]
    pub last_success_ms: Option<i64>,
    #[serde(default)]
    pub last_failure_ms: Option<i64>,
    #[serde(default)]
    pub success_count: u64,
    #[serde(default)]
    pub failure_count: u64,
}

impl JobState {
    /// The latest finished run failed (and none succeeded since).
    pub fn failed(&self) -> bool {
        self.last_failure_seq > self.last_success_seq
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRecord {
    spec: JobSpec,
    state: JobState,
}

/// [`JobRecord`] as written, without copying the spec.
#[derive(Serialize)]
struct JobRecordRef<'a> {
    spec: &'a JobSpec,
    state: &'a JobState,
}

/// [`ScheduleRecord`] as written, without copying the spec.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRecordRef<'a> {
    spec: &'a ScheduleSpec,
    last_tick_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScheduleRecord {
    spec: ScheduleSpec,
    /// The last tick accounted for (started or skipped), ms.
    last_tick_ms: i64,
}

struct ScheduleEntry {
    spec: ScheduleSpec,
    compiled: Schedule,
    last_tick_ms: i64,
    next_due_ms: Option<i64>,
}

struct JobEntry {
    spec: JobSpec,
    state: JobState,
    schedules: BTreeMap<String, ScheduleEntry>,
    /// Every retained run, by sequence.
    runs: BTreeMap<u64, String>,
    /// Runs not finished.
    live: BTreeSet<String>,
}

/// An event for subscribers and metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    JobCreated {
        job: String,
    },
    JobUpdated {
        job: String,
    },
    JobDeleted {
        job: String,
    },
    RunCreated {
        job: String,
        run: String,
        trigger: Trigger,
    },
    RunLaunched {
        job: String,
        run: String,
        task: String,
        agent: String,
        /// Scheduled time -> launch sent, for the first launch of a scheduled run.
        lateness_ms: Option<i64>,
    },
    RunRunning {
        job: String,
        run: String,
    },
    RunFinished {
        job: String,
        run: String,
        status: String,
        message: String,
    },
    RunSkipped {
        job: String,
        run: String,
        ticks: u32,
        reason: String,
    },
}

/// Work for the daemon, after the batch is committed.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Kill {
        task: TaskRef,
        grace_seconds: Option<f64>,
    },
    /// Runs are waiting for offers.
    Revive,
    Event(Event),
}

/// An offer, as placement reads it.
#[derive(Debug, Clone)]
pub struct OfferView {
    pub id: String,
    pub agent_id: String,
    pub role: String,
    pub resources: Resources,
    pub attributes: Attributes,
}

/// Tasks to launch on one offer.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchPlan {
    pub offer_id: String,
    pub agent_id: String,
    pub tasks: Vec<TaskInfo>,
    pub run_ids: Vec<String>,
}

/// A job as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    #[serde(flatten)]
    pub spec: JobSpec,
    pub status: String,
    pub blocked_by: Vec<String>,
    pub active_runs: usize,
    pub history: HistorySummary,
}

/// Counters of a job's finished runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistorySummary {
    pub success_count: u64,
    pub failure_count: u64,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
}

/// A run as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunView {
    pub id: String,
    pub job_id: String,
    pub status: String,
    pub trigger: Trigger,
    pub created_at: String,
    pub scheduled_at: Option<String>,
    pub completed_at: Option<String>,
    pub attempt: u32,
    pub message: String,
    pub skipped_ticks: u32,
    pub tasks: Vec<Attempt>,
}

/// A job's dependencies as the API shows them.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyView {
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub blocked: bool,
    /// Parents whose latest run failed.
    pub blocked_by: Vec<String>,
}

/// Schedule plus its runtime facts.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleView {
    #[serde(flatten)]
    pub spec: ScheduleSpec,
    pub next_run_at: Option<String>,
    pub last_tick_at: Option<String>,
}

/// Formats milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// What the engine loads from the store.
#[derive(Debug, Default)]
pub struct Loaded {
    pub jobs: Vec<(String, Vec<u8>)>,
    pub schedules: Vec<(String, Vec<u8>)>,
    pub runs: Vec<(String, Vec<u8>)>,
    pub seq: u64,
}

/// The engine. See the module documentation.
pub struct Engine {
    config: EngineConfig,
    jobs: BTreeMap<String, JobEntry>,
    dag: Dag,
    runs: HashMap<String, Run>,
    /// Runs waiting for an offer, in creation order.
    pending: BTreeSet<(u64, String)>,
    /// Task id -> run id, for runs that have a task at the master.
    tasks: HashMap<String, String>,
    /// (next due ms, job, schedule) of every enabled schedule with a next tick.
    due: BTreeSet<(i64, String, String)>,
    seq: u64,
    batch: Batch,
    /// Records changed since the last batch was taken.
    dirty: Dirty,
    out: Vec<Out>,
}

/// Keys of the records changed since the last batch (serialized when it is taken).
#[derive(Default)]
struct Dirty {
    // Ordered sets: the batch is the same for the same inputs.
    jobs: BTreeSet<String>,
    schedules: BTreeSet<(String, String)>,
    runs: BTreeSet<String>,
    seq: bool,
}

fn to_json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing plain data structs with string keys cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn run_id(now_ms: i64, seq: u64) -> String {
    let stamp = Timestamp::from_millisecond(now_ms)
        .map(|t| t.strftime("%Y%m%d%H%M%S").to_string())
        .unwrap_or_default();
    format!("{stamp}-{seq:06}")
}

impl Engine {
    /// An empty engine.
    pub fn new(config: EngineConfig) -> Engine {
        Engine {
            config,
            jobs: BTreeMap::new(),
            dag: Dag::new(),
            runs: HashMap::new(),
            pending: BTreeSet::new(),
            tasks: HashMap::new(),
            due: BTreeSet::new(),
            seq: 0,
            batch: Batch::default(),
            dirty: Dirty::default(),
            out: Vec::new(),
        }
    }

    /// Rebuild from the store. Records that no longer parse or validate are skipped with
    /// a returned warning each, never half-loaded.
    pub fn restore(config: EngineConfig, loaded: Loaded, now_ms: i64) -> (Engine, Vec<String>) {
        let mut e = Engine::new(config);
        let mut warnings = Vec::new();
        e.seq = loaded.seq;
        let mut records = Vec::new();
        for (key, bytes) in loaded.jobs {
            match serde_json::from_slice::<JobRecord>(&bytes) {
                Ok(r) => records.push(r),
                Err(err) => warnings.push(format!("job {key}: unreadable record: {err}")),
            }
        }
        for r in &records {
            e.dag.set_parents(&r.spec.id, &[]).ok();
        }
        for r in records {
            if let Err(err) = e.dag.set_parents(&r.spec.id, &r.spec.dependencies) {
                warnings.push(format!("job {}: dependencies dropped: {err}", r.spec.id));
            }
            e.jobs.insert(
                r.spec.id.clone(),
                JobEntry {
                    spec: r.spec,
                    state: r.state,
                    schedules: BTreeMap::new(),
                    runs: BTreeMap::new(),
                    live: BTreeSet::new(),
                },
            );
        }
        for (key, bytes) in loaded.schedules {
            let Some((job, _)) = key.split_once('/') else {
                warnings.push(format!("schedule {key}: bad key"));
                continue;
            };
            let rec = match serde_json::from_slice::<ScheduleRecord>(&bytes) {
                Ok(r) => r,
                Err(err) => {
                    warnings.push(format!("schedule {key}: unreadable record: {err}"));
                    continue;
                }
            };
            let compiled = match Schedule::compile(&rec.spec) {
                Ok(c) => c,
                Err(err) => {
                    warnings.push(format!("schedule {key}: {err}"));
                    continue;
                }
            };
            if !e.jobs.contains_key(job) {
                warnings.push(format!("schedule {key}: its job is gone"));
                continue;
            }
            e.insert_schedule(job, rec.spec, compiled, rec.last_tick_ms);
        }
        for (key, bytes) in loaded.runs {
            let run = match serde_json::from_slice::<Run>(&bytes) {
                Ok(r) => r,
                Err(err) => {
                    warnings.push(format!("run {key}: unreadable record: {err}"));
                    continue;
                }
            };
            let Some(job) = e.jobs.get_mut(&run.job_id) else {
                warnings.push(format!("run {key}: its job is gone"));
                continue;
            };
            e.seq = e.seq.max(run.seq);
            job.runs.insert(run.seq, run.id.clone());
            if !run.phase.is_terminal() {
                job.live.insert(run.id.clone());
            }
            if run.phase == Phase::Initial {
                e.pending.insert((run.seq, run.id.clone()));
            }
            if let Some(t) = run.phase.task() {
                e.tasks.insert(t.task_id.clone(), run.id.clone());
            }
            e.runs.insert(run.id.clone(), run);
        }
        if !e.pending.is_empty() {
            e.out.push(Out::Revive);
        }
        let _ = now_ms;
        (e, warnings)
    }

    /// The sequence counter to persist (also stored with every batch that moves it).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.dirty.seq = true;
        self.seq
    }

    /// The store changes made since the last call; commit them before acting on
    /// [`take_out`](Self::take_out). Records changed several times since the last call
    /// are serialized once, as they are now; deletions come first, so a record deleted
    /// and created again in the same batch ends up stored.
    pub fn take_batch(&mut self) -> Batch {
        let mut batch = std::mem::take(&mut self.batch);
        let dirty = std::mem::take(&mut self.dirty);
        // A dirty record no longer in memory was deleted after it changed: its deletion
        // is in the batch already.
        for id in dirty.jobs {
            if let Some(j) = self.jobs.get(&id) {
                let rec = JobRecordRef {
                    spec: &j.spec,
                    state: &j.state,
                };
                batch.put_bytes(T_JOBS, id, to_json(&rec));
            }
        }
        for (job, sid) in dirty.schedules {
            if let Some(s) = self.jobs.get(&job).and_then(|j| j.schedules.get(&sid)) {
                let rec = ScheduleRecordRef {
                    spec: &s.spec,
                    last_tick_ms: s.last_tick_ms,
                };
                batch.put_bytes(T_SCHEDULES, format!("{job}/{sid}"), to_json(&rec));
            }
        }
        for id in dirty.runs {
            if let Some(r) = self.runs.get(&id) {
                batch.put_bytes(T_RUNS, id, to_json(r));
            }
        }
        if dirty.seq {
            batch.put_bytes(T_META, "seq", self.seq.to_string().into_bytes());
        }
        batch
    }

    /// Effects to carry out once the batch is durable.
    pub fn take_out(&mut self) -> Vec<Out> {
        std::mem::take(&mut self.out)
    }

    fn default_role(&self) -> String {
        self.config
            .roles
            .first()
            .cloned()
            .unwrap_or_else(|| "default".into())
    }

    // ---- persistence helpers ---------------------------------------------------------

    // Saving marks a record dirty; `take_batch` serializes it once per batch.

    fn save_job(&mut self, id: &str) {
        if !self.dirty.jobs.contains(id) {
            self.dirty.jobs.insert(id.to_string());
        }
    }

    fn save_schedule(&mut self, job: &str, sid: &str) {
        self.dirty
            .schedules
            .insert((job.to_string(), sid.to_string()));
    }

    fn save_run(&mut self, id: &str) {
        if !self.dirty.runs.contains(id) {
            self.dirty.runs.insert(id.to_string());
        }
    }

    // ---- schedules index -------------------------------------------------------------

    fn insert_schedule(
        &mut self,
        job: &str,
        spec: ScheduleSpec,
        compiled: Schedule,
        last_tick_ms: i64,
    ) {
        let sid = spec.id.clone();
        self.unindex_schedule(job, &sid);
        let next_due_ms = if spec.enabled {
            Timestamp::from_millisecond(last_tick_ms)
                .ok()
                .and_then(|t| compiled.next_after(t))
                .map(|t| t.as_millisecond())
        } else {
            None
        };
        if let Some(d) = next_due_ms {
            self.due.insert((d, job.to_string(), sid.clone()));
        }
        if let Some(j) = self.jobs.get_mut(job) {
            j.schedules.insert(
                sid,
                ScheduleEntry {
                    spec,
                    compiled,
                    last_tick_ms,
                    next_due_ms,
                },
            );
        }
    }

    fn unindex_schedule(&mut self, job: &str, sid: &str) {
        if let Some(d) = self
            .jobs
            .get(job)
            .and_then(|j| j.schedules.get(sid))
            .and_then(|s| s.next_due_ms)
        {
            self.due.remove(&(d, job.to_string(), sid.to_string()));
        }
    }

    // ---- jobs ------------------------------------------------------------------------

    fn validate_job(&self, spec: &JobSpec) -> Result<Vec<(ScheduleSpec, Schedule)>, ApiError> {
        spec.validate(&self.config.roles)?;
        self.dag
            .check_parents(&spec.id, &spec.dependencies)
            .map_err(dag_error)?;
        if spec.schedules.len() > MAX_SCHEDULES_PER_JOB {
            return Err(Invalid::new(
                "schedules",
                format!("more than {MAX_SCHEDULES_PER_JOB} schedules"),
            )
            .into());
        }
        let mut compiled = Vec::new();
        for (i, s) in spec.schedules.iter().enumerate() {
            let c = Schedule::compile(s)
                .map_err(|e| Invalid::new(format!("schedules[{i}].{}", e.field), e.message))?;
            compiled.push((s.clone(), c));
        }
        Ok(compiled)
    }

    /// Create a job (and the schedules given with it).
    pub fn create_job(&mut self, mut spec: JobSpec, now_ms: i64) -> Result<JobView, ApiError> {
        if self.jobs.contains_key(&spec.id) {
            return Err(ApiError::conflict(format!(
                "job {:?} already exists",
                spec.id
            )));
        }
        if self.jobs.len() >= MAX_JOBS {
            return Err(ApiError::conflict(format!(
                "this daemon holds {MAX_JOBS} jobs already"
            )));
        }
        let schedules = self.validate_job(&spec)?;
        spec.schedules.clear();
        let id = spec.id.clone();
        // Validated above, so this cannot fail; it is the first change made.
        self.dag
            .set_parents(&id, &spec.dependencies)
            .map_err(dag_error)?;
        self.jobs.insert(
            id.clone(),
            JobEntry {
                spec,
                state: JobState::default(),
                schedules: BTreeMap::new(),
                runs: BTreeMap::new(),
                live: BTreeSet::new(),
            },
        );
        self.save_job(&id);
        for (s, c) in schedules {
            let sid = s.id.clone();
            self.insert_schedule(&id, s, c, now_ms);
            self.save_schedule(&id, &sid);
        }
        self.out
            .push(Out::Event(Event::JobCreated { job: id.clone() }));
        self.job_view(&id)
    }

    /// Replace a job's definition. Schedules given replace the job's; none keeps them.
    pub fn update_job(
        &mut self,
        id: &str,
        mut spec: JobSpec,
        now_ms: i64,
    ) -> Result<JobView, ApiError> {
        if !self.jobs.contains_key(id) {
            return Err(ApiError::not_found(format!("job {id:?} does not exist")));
        }
        if spec.id != id {
            return Err(
                Invalid::new("id", format!("must be {id:?}, the job being replaced")).into(),
            );
        }
        let schedules = self.validate_job(&spec)?;
        let replace_schedules = !spec.schedules.is_empty();
        spec.schedules.clear();
        self.dag
            .set_parents(id, &spec.dependencies)
            .map_err(dag_error)?;
        if let Some(j) = self.jobs.get_mut(id) {
            j.spec = spec;
        }
        self.save_job(id);
        if replace_schedules {
            let old: Vec<String> = self.jobs[id].schedules.keys().cloned().collect();
            for sid in old {
                self.unindex_schedule(id, &sid);
                if let Some(j) = self.jobs.get_mut(id) {
                    j.schedules.remove(&sid);
                }
                self.batch.delete(T_SCHEDULES, format!("{id}/{sid}"));
            }
            for (s, c) in schedules {
                let sid = s.id.clone();
                self.insert_schedule(id, s, c, now_ms);
                self.save_schedule(id, &sid);
            }
        }
        self.out.push(Out::Event(Event::JobUpdated {
            job: id.to_string(),
        }));
        self.job_view(id)
    }

    /// Delete a job with its schedules and history. Refused while it has unfinished runs
    /// or other jobs depend on it.
    pub fn delete_job(&mut self, id: &str) -> Result<(), ApiError> {
        let Some(j) = self.jobs.get(id) else {
            return Err(ApiError::not_found(format!("job {id:?} does not exist")));
        };
        if !j.live.is_empty() {
            return Err(ApiError::conflict(format!(
                "job {id:?} has unfinished runs ({}); stop them first",
                j.live.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        let children = self.dag.children(id);
        if !children.is_empty() {
            return Err(ApiError::conflict(format!(
                "jobs {} depend on {id:?}; change their dependencies first",
                children.join(", ")
            )));
        }
        self.dag.remove(id).map_err(dag_error)?;
        let sids: Vec<String> = self.jobs[id].schedules.keys().cloned().collect();
        for sid in sids {
            self.unindex_schedule(id, &sid);
            self.batch.delete(T_SCHEDULES, format!("{id}/{sid}"));
        }
        if let Some(j) = self.jobs.remove(id) {
            for run in j.runs.values() {
                self.runs.remove(run);
                self.batch.delete(T_RUNS, run.clone());
            }
        }
        self.batch.delete(T_JOBS, id);
        self.out.push(Out::Event(Event::JobDeleted {
            job: id.to_string(),
        }));
        Ok(())
    }

    fn blocked_by(&self, id: &str) -> Vec<String> {
        self.dag
            .parents(id)
            .into_iter()
            .filter(|p| self.jobs.get(p).is_some_and(|j| j.state.failed()))
            .collect()
    }

    fn job_status(&self, id: &str) -> String {
        let Some(j) = self.jobs.get(id) else {
            return "UNKNOWN".into();
        };
        if !j.live.is_empty() {
            "ACTIVE"
        } else if !self.blocked_by(id).is_empty() {
            "BLOCKED"
        } else if j.state.failed() {
            "FAILED"
        } else if j.state.last_success_seq > 0 {
            "SUCCESS"
        } else {
            "IDLE"
        }
        .into()
    }

    /// One job.
    pub fn job_view(&self, id: &str) -> Result<JobView, ApiError> {
        let j = self
            .jobs
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("job {id:?} does not exist")))?;
        let mut spec = j.spec.clone();
        spec.schedules = j.schedules.values().map(|s| s.spec.clone()).collect();
        Ok(JobView {
            spec,
            status: self.job_status(id),
            blocked_by: self.blocked_by(id),
            active_runs: j.live.len(),
            history: HistorySummary {
                success_count: j.state.success_count,
                failure_count: j.state.failure_count,
                last_success_at: j.state.last_success_ms.map(rfc3339),
                last_failure_at: j.state.last_failure_ms.map(rfc3339),
            },
        })
    }

    /// Every job, sorted by id.
    pub fn list_jobs(&self) -> Vec<JobView> {
        self.jobs
            .keys()
            .filter_map(|id| self.job_view(id).ok())
            .collect()
    }

    // ---- dependencies ----------------------------------------------------------------

    /// A job's parents, children and whether a failed parent blocks it.
    pub fn dependencies(&self, id: &str) -> Result<DependencyView, ApiError> {
        if !self.jobs.contains_key(id) {
            return Err(ApiError::not_found(format!("job {id:?} does not exist")));
        }
        let blocked_by = self.blocked_by(id);
        Ok(DependencyView {
            parents: self.dag.parents(id),
            children: self.dag.children(id),
            blocked: !blocked_by.is_empty(),
            blocked_by,
        })
    }

    /// Replace a job's parents.
    pub fn set_dependencies(
        &mut self,
        id: &str,
        parents: Vec<String>,
        now_ms: i64,
    ) -> Result<DependencyView, ApiError> {
        let Some(j) = self.jobs.get(id) else {
            return Err(ApiError::not_found(format!("job {id:?} does not exist")));
        };
        let mut spec = j.spec.clone();
        spec.dependencies = parents;
        self.update_job(id, spec, now_ms)?;
        self.dependencies(id)
    }

    /// The graph as JSON.
    pub fn graph(&self) -> GraphExport {
        self.dag.export(|id| self.job_status(id))
    }

    /// The graph as Graphviz DOT.
    pub fn graph_dot(&self) -> String {
        self.dag.to_dot(|id| self.job_status(id))
    }

    // ---- schedules -------------------------------------------------------------------

    fn schedule_view(s: &ScheduleEntry) -> ScheduleView {
        ScheduleView {
            spec: s.spec.clone(),
            next_run_at: s.next_due_ms.map(rfc3339),
            last_tick_at: Some(rfc3339(s.last_tick_ms)),
        }
    }

    /// A job's schedules.
    pub fn schedules(&self, job: &str) -> Result<Vec<ScheduleView>, ApiError> {
        let j = self
            .jobs
            .get(job)
            .ok_or_else(|| ApiError::not_found(format!("job {job:?} does not exist")))?;
        Ok(j.schedules.values().map(Engine::schedule_view).collect())
    }

    /// One schedule.
    pub fn schedule(&self, job: &str, sid: &str) -> Result<ScheduleView, ApiError> {
        let j = self
            .jobs
            .get(job)
            .ok_or_else(|| ApiError::not_found(format!("job {job:?} does not exist")))?;
        let s = j
            .schedules
            .get(sid)
            .ok_or_else(|| ApiError::not_found(format!("job {job:?} has no schedule {sid:?}")))?;
        Ok(Engine::schedule_view(s))
    }

    /// Create (`create = true`, refused if it exists) or replace a schedule. A new or
    /// resumed schedule counts from `now`: ticks before it existed (or while it was
    /// paused) are not missed runs.
    pub fn put_schedule(
        &mut self,
        job: &str,
        sid: Option<&str>,
        spec: ScheduleSpec,
        now_ms: i64,
    ) -> Result<ScheduleView, ApiError> {
        let Some(j) = self.jobs.get(job) else {
            return Err(ApiError::not_found(format!("job {job:?} does not exist")));
        };
        let compiled = Schedule::compile(&spec)?;
        let existing = j.schedules.get(&spec.id);
        let last_tick_ms = match (sid, existing) {
            (None, Some(_)) => {
                return Err(ApiError::conflict(format!(
                    "job {job:?} already has a schedule {:?}",
                    spec.id
                )));
            }
            (None, None) => {
                if j.schedules.len() >= MAX_SCHEDULES_PER_JOB {
                    return Err(Invalid::new(
                        "id",
                        format!("a job has at most {MAX_SCHEDULES_PER_JOB} schedules"),
                    )
                    .into());
                }
                now_ms
            }
            (Some(want), _) if want != spec.id => {
                return Err(Invalid::new(
                    "id",
                    format!("must be {want:?}, the schedule being replaced"),
                )
                .into());
            }
            (Some(want), None) => {
                return Err(ApiError::not_found(format!(
                    "job {job:?} has no schedule {want:?}"
                )));
            }
            (Some(_), Some(old)) => {
                let same_rule = old.spec.cron == spec.cron
                    && old.spec.interval == spec.interval
                    && old.spec.timezone == spec.timezone;
                if old.spec.enabled && spec.enabled && same_rule {
                    old.last_tick_ms
                } else {
                    now_ms.max(old.last_tick_ms)
                }
            }
        };
        let sid = spec.id.clone();
        self.insert_schedule(job, spec, compiled, last_tick_ms);
        self.save_schedule(job, &sid);
        self.out.push(Out::Event(Event::JobUpdated {
            job: job.to_string(),
        }));
        self.schedule(job, &sid)
    }

    /// Pause (`enabled = false`) or resume a schedule.
    pub fn set_schedule_enabled(
        &mut self,
        job: &str,
        sid: &str,
        enabled: bool,
        now_ms: i64,
    ) -> Result<ScheduleView, ApiError> {
        let mut spec = self.schedule(job, sid)?.spec;
        spec.enabled = enabled;
        self.put_schedule(job, Some(sid), spec, now_ms)
    }

    /// Delete a schedule.
    pub fn delete_schedule(&mut self, job: &str, sid: &str) -> Result<(), ApiError> {
        self.schedule(job, sid)?;
        self.unindex_schedule(job, sid);
        if let Some(j) = self.jobs.get_mut(job) {
            j.schedules.remove(sid);
        }
        self.batch.delete(T_SCHEDULES, format!("{job}/{sid}"));
        self.out.push(Out::Event(Event::JobUpdated {
            job: job.to_string(),
        }));
        Ok(())
    }

    // ---- runs ------------------------------------------------------------------------

    fn new_run(&mut self, job: &str, trigger: Trigger, phase: Phase, now_ms: i64) -> String {
        let seq = self.next_seq();
        let id = run_id(now_ms, seq);
        let run = Run {
            id: id.clone(),
            job_id: job.to_string(),
            seq,
            trigger: trigger.clone(),
            created_ms: now_ms,
            first_launch_ms: None,
            finished_ms: phase.is_terminal().then_some(now_ms),
            attempt: 1,
            launches: 0,
            phase: phase.clone(),
            attempts: Vec::new(),
            skipped_ticks: 0,
        };
        self.runs.insert(id.clone(), run);
        if let Some(j) = self.jobs.get_mut(job) {
            j.runs.insert(seq, id.clone());
            if !phase.is_terminal() {
                j.live.insert(id.clone());
                j.state.last_run_seq = seq;
            }
        }
        if phase == Phase::Initial {
            self.pending.insert((seq, id.clone()));
            self.out.push(Out::Revive);
            self.out.push(Out::Event(Event::RunCreated {
                job: job.to_string(),
                run: id.clone(),
                trigger,
            }));
        }
        self.save_run(&id);
        self.save_job(job);
        id
    }

    fn skip(
        &mut self,
        job: &str,
        trigger: Trigger,
        ticks: u32,
        reason: String,
        now_ms: i64,
    ) -> String {
        let id = self.new_run(
            job,
            trigger,
            Phase::Skipped {
                reason: reason.clone(),
            },
            now_ms,
        );
        if let Some(r) = self.runs.get_mut(&id) {
            r.skipped_ticks = ticks;
        }
        self.save_run(&id);
        self.out.push(Out::Event(Event::RunSkipped {
            job: job.to_string(),
            run: id.clone(),
            ticks,
            reason,
        }));
        self.prune(job);
        id
    }

    /// Start a run of `job` under `policy`. `Err` carries the skip reason (FORBID).
    fn start(
        &mut self,
        job: &str,
        trigger: Trigger,
        policy: ConcurrencyPolicy,
        now_ms: i64,
    ) -> Result<String, String> {
        let live: Vec<String> = self
            .jobs
            .get(job)
            .map(|j| j.live.iter().cloned().collect())
            .unwrap_or_default();
        if !live.is_empty() {
            match policy {
                ConcurrencyPolicy::Allow => {}
                ConcurrencyPolicy::Forbid => {
                    return Err(format!(
                        "concurrency policy FORBID: run {} is still active",
                        live.join(", ")
                    ));
                }
                ConcurrencyPolicy::Replace => {
                    for r in live {
                        // A run in a phase that cannot be stopped is already ending.
                        let _ = self.drive(
                            &r,
                            Input::Stop {
                                cause: KillCause::Replaced,
                            },
                            now_ms,
                        );
                    }
                }
            }
        }
        Ok(self.new_run(job, trigger, Phase::Initial, now_ms))
    }

    /// Start a run through the API; with `descendants`, every job downstream runs after
    /// it, in dependency order (parents outside the cascade are not waited for).
    pub fn start_manual(
        &mut self,
        job: &str,
        descendants: bool,
        now_ms: i64,
    ) -> Result<RunView, ApiError> {
        let Some(j) = self.jobs.get(job) else {
            return Err(ApiError::not_found(format!("job {job:?} does not exist")));
        };
        let policy = j.spec.concurrency_policy;
        // The run's own id is the cascade's; the trigger names it once known.
        let id = self
            .start(job, Trigger::Manual, policy, now_ms)
            .map_err(ApiError::conflict)?;
        if descendants && let Some(r) = self.runs.get_mut(&id) {
            r.trigger = Trigger::Cascade {
                root_run: id.clone(),
            };
            self.save_run(&id);
        }
        self.run_view(job, &id)
    }

    /// Stop a run (operator).
    pub fn stop_run(&mut self, job: &str, run: &str, now_ms: i64) -> Result<RunView, ApiError> {
        self.run_view(job, run)?;
        self.drive(
            run,
            Input::Stop {
                cause: KillCause::Stopped,
            },
            now_ms,
        )
        .map_err(|e| ApiError::conflict(e.to_string()))?;
        self.run_view(job, run)
    }

    /// A job's runs: unfinished ones only (Metronome's `/runs`), or all kept.
    pub fn list_runs(&self, job: &str, all: bool) -> Result<Vec<RunView>, ApiError> {
        let j = self
            .jobs
            .get(job)
            .ok_or_else(|| ApiError::not_found(format!("job {job:?} does not exist")))?;
        Ok(j.runs
            .values()
            .filter(|id| all || j.live.contains(*id))
            .filter_map(|id| self.run_view(job, id).ok())
            .collect())
    }

    /// One run.
    pub fn run_view(&self, job: &str, id: &str) -> Result<RunView, ApiError> {
        let r = self
            .runs
            .get(id)
            .filter(|r| r.job_id == job)
            .ok_or_else(|| ApiError::not_found(format!("job {job:?} has no run {id:?}")))?;
        let message = match &r.phase {
            Phase::Failed { message, .. } => message.clone(),
            Phase::Skipped { reason } => reason.clone(),
            _ => String::new(),
        };
        let scheduled_at = match &r.trigger {
            Trigger::Schedule { scheduled_ms, .. } => Some(rfc3339(*scheduled_ms)),
            _ => None,
        };
        Ok(RunView {
            id: r.id.clone(),
            job_id: r.job_id.clone(),
            status: r.phase.status().into(),
            trigger: r.trigger.clone(),
            created_at: rfc3339(r.created_ms),
            scheduled_at,
            completed_at: r.finished_ms.map(rfc3339),
            attempt: r.attempt,
            message,
            skipped_ticks: r.skipped_ticks,
            tasks: r.attempts.clone(),
        })
    }

    /// Feed `input` to run `id` through the one transition function, then record and
    /// act on the result.
    fn drive(&mut self, id: &str, input: Input, now_ms: i64) -> Result<(), Illegal> {
        let Some(run) = self.runs.get(id) else {
            return Ok(());
        };
        let Some(job) = self.jobs.get(&run.job_id) else {
            return Ok(());
        };
        let policy = Policy {
            restart: job.spec.run.restart.clone(),
            deadline_ms: run
                .first_launch_ms
                .zip(job.spec.run.active_deadline_seconds)
                .map(|(t, d)| t.saturating_add((d as i64).saturating_mul(1000))),
        };
        let grace = job.spec.run.task_kill_grace_period_seconds;
        let (phase, effects) = run::transition(&run.phase, &input, run.attempt, &policy, now_ms)?;
        if phase == run.phase && effects.is_empty() && !matches!(input, Input::Task { .. }) {
            return Ok(());
        }
        let job_id = run.job_id.clone();
        let old = run.phase.clone();
        let Some(run) = self.runs.get_mut(id) else {
            return Ok(());
        };
        match &input {
            Input::Launched { task } => {
                run.launches += 1;
                run.first_launch_ms.get_or_insert(now_ms);
                run.attempts.push(Attempt {
                    attempt: run.attempt,
                    task_id: task.task_id.clone(),
                    agent_id: task.agent_id.clone(),
                    launched_ms: now_ms,
                    running_ms: None,
                    finished_ms: None,
                    state: TaskState::Staging.as_str_name().into(),
                    message: String::new(),
                });
            }
            Input::Task { state, message, .. } => {
                if let Some(a) = run.attempts.last_mut() {
                    a.state = state.as_str_name().into();
                    if !message.is_empty() {
                        a.message = message.clone();
                    }
                    if *state == TaskState::Running {
                        a.running_ms.get_or_insert(now_ms);
                    }
                    if state.is_terminal() {
                        a.finished_ms.get_or_insert(now_ms);
                    }
                }
            }
            Input::LaunchFailed { message } => {
                if let Some(a) = run.attempts.last_mut() {
                    a.state = "LAUNCH_FAILED".into();
                    a.message = message.clone();
                    a.finished_ms = Some(now_ms);
                }
            }
            _ => {}
        }
        if matches!(old, Phase::RetryWait { .. }) && phase == Phase::Initial {
            run.attempt += 1;
        }
        if phase.is_terminal() {
            run.finished_ms = Some(now_ms);
        }
        // Indexes follow the phase.
        if let Some(t) = old.task()
            && phase.task().is_none_or(|n| n.task_id != t.task_id)
        {
            self.tasks.remove(&t.task_id);
        }
        if let Some(t) = phase.task() {
            self.tasks.insert(t.task_id.clone(), id.to_string());
        }
        let seq = run.seq;
        if old == Phase::Initial && phase != Phase::Initial {
            self.pending.remove(&(seq, id.to_string()));
        }
        let launched = match (&input, &phase) {
            (Input::Launched { task }, _) => Some(task.clone()),
            _ => None,
        };
        run.phase = phase.clone();
        let first_launch = run.launches == 1 && launched.is_some();
        let lateness_ms = match &run.trigger {
            Trigger::Schedule { scheduled_ms, .. } if first_launch => Some(now_ms - scheduled_ms),
            _ => None,
        };
        self.save_run(id);
        if let Some(task) = launched {
            self.out.push(Out::Event(Event::RunLaunched {
                job: job_id.clone(),
                run: id.to_string(),
                task: task.task_id,
                agent: task.agent_id,
                lateness_ms,
            }));
        }
        for effect in effects {
            match effect {
                Effect::NeedOffer => {
                    self.pending.insert((seq, id.to_string()));
                    self.out.push(Out::Revive);
                }
                Effect::Kill { task } => self.out.push(Out::Kill {
                    task,
                    grace_seconds: grace,
                }),
                Effect::Running => self.out.push(Out::Event(Event::RunRunning {
                    job: job_id.clone(),
                    run: id.to_string(),
                })),
                Effect::Finished => self.finished(&job_id, id, now_ms),
            }
        }
        Ok(())
    }

    /// A run ended: counters, the dependency rule, cascades, history limit.
    fn finished(&mut self, job: &str, id: &str, now_ms: i64) {
        let Some(run) = self.runs.get(id).cloned() else {
            return;
        };
        let success = run.phase == Phase::Success;
        let seq = self.next_seq();
        if let Some(j) = self.jobs.get_mut(job) {
            j.live.remove(id);
            if success {
                j.state.last_success_seq = seq;
                j.state.last_success_ms = Some(now_ms);
                j.state.success_count += 1;
            } else {
                j.state.last_failure_seq = seq;
                j.state.last_failure_ms = Some(now_ms);
                j.state.failure_count += 1;
            }
        }
        self.save_job(job);
        let (status, message) = match &run.phase {
            Phase::Failed { message, .. } => ("FAILED", message.clone()),
            _ => ("SUCCESS", String::new()),
        };
        self.out.push(Out::Event(Event::RunFinished {
            job: job.to_string(),
            run: id.to_string(),
            status: status.into(),
            message,
        }));
        if success {
            self.trigger_children(job, &run, now_ms);
        }
        self.prune(job);
    }

    fn trigger_children(&mut self, job: &str, run: &Run, now_ms: i64) {
        let cascade = match &run.trigger {
            Trigger::Cascade { root_run } => self
                .runs
                .get(root_run)
                .map(|r| (root_run.clone(), r.job_id.clone())),
            _ => None,
        };
        let members: BTreeSet<String> = cascade
            .as_ref()
            .map(|(_, root_job)| {
                let mut m: BTreeSet<String> = self
                    .dag
                    .descendants_in_order(root_job)
                    .into_iter()
                    .collect();
                m.insert(root_job.clone());
                m
            })
            .unwrap_or_default();
        for child in self.dag.children(job) {
            let Some(c) = self.jobs.get(&child) else {
                continue;
            };
            let policy = c.spec.concurrency_policy;
            if let Some((root_run, _)) = &cascade
                && members.contains(&child)
            {
                // In a cascade: run once every parent inside the cascade succeeded in it.
                let ready = self
                    .dag
                    .parents(&child)
                    .iter()
                    .filter(|p| members.contains(*p))
                    .all(|p| self.cascade_succeeded(root_run, p));
                let already = self.jobs[&child].runs.values().any(|r| {
                    self.runs.get(r).is_some_and(
                        |r| matches!(&r.trigger, Trigger::Cascade { root_run: x } if x == root_run),
                    )
                });
                if ready && !already {
                    let trigger = Trigger::Cascade {
                        root_run: root_run.clone(),
                    };
                    if let Err(reason) = self.start(&child, trigger.clone(), policy, now_ms) {
                        self.skip(&child, trigger, 1, reason, now_ms);
                    }
                }
                continue;
            }
            // Chronos's rule: every parent succeeded since the child's last run.
            let since = c.state.last_run_seq;
            let ready = self.dag.parents(&child).iter().all(|p| {
                self.jobs
                    .get(p)
                    .is_some_and(|pj| pj.state.last_success_seq > since && !pj.state.failed())
            });
            if ready && let Err(reason) = self.start(&child, Trigger::Dependency, policy, now_ms) {
                self.skip(&child, Trigger::Dependency, 1, reason, now_ms);
            }
        }
    }

    fn cascade_succeeded(&self, root_run: &str, job: &str) -> bool {
        if self
            .runs
            .get(root_run)
            .is_some_and(|r| r.job_id == job && r.phase == Phase::Success)
        {
            return true;
        }
        self.jobs.get(job).is_some_and(|j| {
            j.runs.values().any(|r| {
                self.runs.get(r).is_some_and(|r| {
                    r.phase == Phase::Success
                        && matches!(&r.trigger, Trigger::Cascade { root_run: x } if x == root_run)
                })
            })
        })
    }

    /// Forget the oldest finished runs beyond the job's history limit.
    fn prune(&mut self, job: &str) {
        let Some(j) = self.jobs.get(job) else { return };
        let limit = j.spec.history_limit as usize;
        let finished: Vec<(u64, String)> = j
            .runs
            .iter()
            .filter(|(_, id)| !j.live.contains(*id))
            .map(|(s, id)| (*s, id.clone()))
            .collect();
        if finished.len() <= limit {
            return;
        }
        let drop = finished.len() - limit;
        for (seq, id) in finished.into_iter().take(drop) {
            if let Some(j) = self.jobs.get_mut(job) {
                j.runs.remove(&seq);
            }
            self.runs.remove(&id);
            self.batch.delete(T_RUNS, id);
        }
    }

    // ---- time ------------------------------------------------------------------------

    /// Evaluate due schedules and run deadlines / retry waits at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) {
        let Ok(now) = Timestamp::from_millisecond(now_ms) else {
            return;
        };
        while let Some((due_ms, job, sid)) = self.due.first().cloned() {
            if due_ms > now_ms {
                break;
            }
            self.due.pop_first();
            self.evaluate(&job, &sid, now, now_ms);
        }
        let waiting: Vec<String> = self
            .jobs
            .values()
            .flat_map(|j| j.live.iter())
            .filter(|id| self.needs_tick(id, now_ms))
            .cloned()
            .collect();
        for id in waiting {
            let _ = self.drive(&id, Input::Tick, now_ms);
        }
    }

    fn needs_tick(&self, id: &str, now_ms: i64) -> bool {
        let Some(r) = self.runs.get(id) else {
            return false;
        };
        if let Phase::RetryWait { until_ms } = r.phase
            && until_ms <= now_ms
        {
            return true;
        }
        let deadline = self
            .jobs
            .get(&r.job_id)
            .and_then(|j| j.spec.run.active_deadline_seconds)
            .zip(r.first_launch_ms)
            .map(|(d, t)| t + d as i64 * 1000);
        matches!(
            r.phase,
            Phase::Starting { .. } | Phase::Active { .. } | Phase::RetryWait { .. }
        ) && deadline.is_some_and(|d| d <= now_ms)
    }

    fn evaluate(&mut self, job: &str, sid: &str, now: Timestamp, now_ms: i64) {
        let Some(s) = self.jobs.get(job).and_then(|j| j.schedules.get(sid)) else {
            return;
        };
        if !s.spec.enabled {
            return;
        }
        let Ok(last) = Timestamp::from_millisecond(s.last_tick_ms) else {
            return;
        };
        let due = s.compiled.due(last, now);
        let deadline_s = s.spec.starting_deadline_seconds;
        let policy = s
            .spec
            .concurrency_policy
            .unwrap_or(self.jobs[job].spec.concurrency_policy);
        if let Some(m) = due.missed {
            let reason = format!(
                "{}{} tick(s) from {} to {} missed by more than the starting deadline of {deadline_s} s",
                if m.more { "at least " } else { "" },
                m.count,
                m.first,
                m.last
            );
            let trigger = Trigger::Schedule {
                schedule_id: sid.to_string(),
                scheduled_ms: m.last.as_millisecond(),
            };
            self.skip(job, trigger, m.count, reason, now_ms);
        }
        let blocked = self.blocked_by(job);
        for t in due.start {
            let trigger = Trigger::Schedule {
                schedule_id: sid.to_string(),
                scheduled_ms: t.as_millisecond(),
            };
            if !blocked.is_empty() {
                let reason = format!("blocked: parent {} failed", blocked.join(", "));
                self.skip(job, trigger, 1, reason, now_ms);
                continue;
            }
            if let Err(reason) = self.start(job, trigger.clone(), policy, now_ms) {
                self.skip(job, trigger, 1, reason, now_ms);
            }
        }
        let Some(entry) = self
            .jobs
            .get_mut(job)
            .and_then(|j| j.schedules.get_mut(sid))
        else {
            return;
        };
        if let Some(t) = due.last_tick {
            entry.last_tick_ms = t.as_millisecond();
        }
        let from = Timestamp::from_millisecond(entry.last_tick_ms).unwrap_or(now);
        entry.next_due_ms = entry.compiled.next_after(from).map(|t| t.as_millisecond());
        if let Some(d) = entry.next_due_ms {
            self.due.insert((d, job.to_string(), sid.to_string()));
        }
        self.save_schedule(job, sid);
    }

    /// When the next schedule tick is due (ms), to sleep until then.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.due.first().map(|(d, _, _)| *d)
    }

    // ---- the master ------------------------------------------------------------------

    /// Whether runs wait for offers.
    pub fn wants_offers(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Place waiting runs on `offers` (oldest run first). Runs placed are STARTING and
    /// recorded; send the launches after committing the batch.
    pub fn place(&mut self, offers: Vec<OfferView>, now_ms: i64) -> Vec<LaunchPlan> {
        let mut plans = Vec::new();
        let mut offers: Vec<(OfferView, Vec<(TaskInfo, String)>)> =
            offers.into_iter().map(|o| (o, Vec::new())).collect();
        let waiting: Vec<(u64, String)> = self.pending.iter().cloned().collect();
        for (_, run_id) in waiting {
            let Some(run) = self.runs.get(&run_id) else {
                continue;
            };
            let Some(job) = self.jobs.get(&run.job_id) else {
                continue;
            };
            let spec = &job.spec.run;
            let Ok(shape) = Resources::parse(&spec.resources_text()) else {
                continue;
            };
            let role = spec.role.clone().unwrap_or_else(|| self.default_role());
            let task_id = format!("{}.{}.{}", run.job_id, run.id, run.launches + 1);
            let mut placed = None;
            for (offer, tasks) in offers.iter_mut() {
                if offer.role != role
                    || tasks.len() >= MAX_TASKS_PER_OFFER
                    || !constraints_hold(&spec.placement.constraints, &offer.attributes)
                {
                    continue;
                }
                if let Some(resources) = agora_sdk::take(&mut offer.resources, &shape) {
                    let info = build_task(&job.spec, run, &task_id, &offer.agent_id, resources);
                    tasks.push((info, run_id.clone()));
                    placed = Some(offer.agent_id.clone());
                    break;
                }
            }
            if let Some(agent_id) = placed {
                let _ = self.drive(
                    &run_id,
                    Input::Launched {
                        task: TaskRef { task_id, agent_id },
                    },
                    now_ms,
                );
            }
        }
        for (offer, tasks) in offers {
            if tasks.is_empty() {
                continue;
            }
            let (tasks, run_ids) = tasks.into_iter().unzip();
            plans.push(LaunchPlan {
                offer_id: offer.id,
                agent_id: offer.agent_id,
                tasks,
                run_ids,
            });
        }
        plans
    }

    /// The master refused a launch: the runs wait for another offer.
    pub fn launch_failed(&mut self, run_ids: &[String], message: &str, now_ms: i64) {
        for id in run_ids {
            let _ = self.drive(
                id,
                Input::LaunchFailed {
                    message: message.to_string(),
                },
                now_ms,
            );
        }
    }

    /// A status update. Updates for tasks no run owns (left over from a deleted job or
    /// a forgotten run) that are still alive are killed.
    pub fn status(
        &mut self,
        task_id: &str,
        agent_id: &str,
        state: TaskState,
        message: &str,
        unknown: bool,
        now_ms: i64,
    ) {
        let Some(run_id) = self.tasks.get(task_id).cloned() else {
            if !state.is_terminal() {
                self.out.push(Out::Kill {
                    task: TaskRef {
                        task_id: task_id.to_string(),
                        agent_id: agent_id.to_string(),
                    },
                    grace_seconds: None,
                });
            }
            return;
        };
        let input = Input::Task {
            state,
            message: message.to_string(),
            unknown,
        };
        if let Err(e) = self.drive(&run_id, input, now_ms) {
            tracing::debug!(task = task_id, error = %e, "status update ignored");
        }
    }

    /// Tasks to ask the master about after (re-)subscribing.
    pub fn tasks_to_reconcile(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .runs
            .values()
            .filter_map(|r| r.phase.task())
            .map(|t| (t.task_id.clone(), t.agent_id.clone()))
            .collect();
        v.sort();
        v
    }

    /// Kills to send again after (re-)subscribing (a kill sent while disconnected is lost).
    pub fn kills_to_resend(&self) -> Vec<(TaskRef, Option<f64>)> {
        self.runs
            .values()
            .filter_map(|r| match &r.phase {
                Phase::Killing { task, .. } => Some((
                    task.clone(),
                    self.jobs
                        .get(&r.job_id)
                        .and_then(|j| j.spec.run.task_kill_grace_period_seconds),
                )),
                _ => None,
            })
            .collect()
    }

    /// Number of jobs.
    pub fn job_count(&self) -> usize {
        self.jobs.len()
    }
}

fn constraints_hold(constraints: &[crate::spec::Constraint], attrs: &Attributes) -> bool {
    constraints.iter().all(|c| {
        let value = attrs.get(&c.attribute).map(|v| v.to_string());
        match c.operator {
            ConstraintOperator::Exists => value.is_some(),
            ConstraintOperator::Eq => value.as_deref() == Some(c.value.as_str()),
            ConstraintOperator::Like | ConstraintOperator::Unlike => {
                let matches = regex::Regex::new(&format!("^(?:{})$", c.value))
                    .ok()
                    .zip(value)
                    .is_some_and(|(re, v)| re.is_match(&v));
                matches == (c.operator == ConstraintOperator::Like)
            }
        }
    })
}

fn build_task(
    spec: &JobSpec,
    run: &Run,
    task_id: &str,
    agent_id: &str,
    resources: Resources,
) -> TaskInfo {
    let r = &spec.run;
    let builder = match &r.cmd {
        Some(cmd) => TaskBuilder::shell(cmd.clone()),
        // Validated non-empty; a shell `false` would only hide a bug.
        None => TaskBuilder::argv(r.args.clone()).unwrap_or_else(|_| TaskBuilder::shell("false")),
    };
    let mut builder = builder
        .name(format!("{}.{}", spec.id, run.id))
        .resources(resources)
        .env("AGORA_JOB_ID", spec.id.clone())
        .env("AGORA_JOB_RUN_ID", run.id.clone())
        .env("AGORA_JOB_ATTEMPT", run.attempt.to_string())
        .label("agora-jobs/job", spec.id.clone())
        .label("agora-jobs/run", run.id.clone());
    for (k, v) in &r.env {
        builder = builder.env(k.clone(), v.clone());
    }
    if let Some(user) = &r.user {
        builder = builder.user(user.clone());
    }
    if let Some(g) = r.task_kill_grace_period_seconds
        && let Ok(d) = std::time::Duration::try_from_secs_f64(g)
    {
        builder = builder.kill_grace(d);
    }
    let mut info = builder.build(task_id, agent_id);
    if let Some(cmd) = info.command.as_mut() {
        cmd.uris = r
            .artifacts
            .iter()
            .map(|a| Uri {
                value: a.uri.clone(),
                executable: a.executable,
                extract: a.extract,
                cache: a.cache,
                output_file: String::new(),
            })
            .collect();
    }
    info
}

#[cfg(test)]
mod tests;

//! State shared by every emulated agent and framework of one run: counters, the agents'
//! ground truth of what they run, the "resources freed" instants that offer latency is
//! measured from, the frameworks' measurements, and the stop signal.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::stats::{PerSecond, Samples};

/// Event counters; every field is a plain total.
#[derive(Default)]
pub struct Counters {
    pub agent_registrations: AtomicU64,
    pub agent_reregistrations: AtomicU64,
    pub agent_register_errors: AtomicU64,
    pub agent_streams_lost: AtomicU64,
    pub heartbeats: AtomicU64,
    pub heartbeat_errors: AtomicU64,
    pub run_task: AtomicU64,
    pub kill_task: AtomicU64,
    pub kills_of_unknown: AtomicU64,
    pub updates_sent: AtomicU64,
    pub update_resends: AtomicU64,
    pub update_errors: AtomicU64,
    /// Updates the master refused for now (UNAVAILABLE: their framework was behind); they
    /// are re-sent.
    pub updates_deferred: AtomicU64,
    pub acks_to_agents: AtomicU64,
    pub subscriptions: AtomicU64,
    pub resubscriptions: AtomicU64,
    pub framework_streams_lost: AtomicU64,
    pub offers: AtomicU64,
    pub offers_declined: AtomicU64,
    pub rescinds: AtomicU64,
    pub accepts: AtomicU64,
    pub accept_errors: AtomicU64,
    pub tasks_launched: AtomicU64,
    pub running: AtomicU64,
    pub finished: AtomicU64,
    pub killed: AtomicU64,
    /// Terminal states the harness did not cause (LOST, DROPPED, FAILED, ERROR, GONE, ...).
    pub lost_or_failed: AtomicU64,
    pub updates_received: AtomicU64,
    pub acks_sent: AtomicU64,
    pub ack_errors: AtomicU64,
    pub kills_sent: AtomicU64,
    pub reconcile_answers: AtomicU64,
    /// Terminal updates for a task whose end was already counted (relayed again).
    pub duplicate_ends: AtomicU64,
}

/// Snapshot of `Counters` for the report.
pub type CounterMap = std::collections::BTreeMap<&'static str, u64>;

macro_rules! snapshot {
    ($c:expr, $($f:ident),*) => {{
        let mut m = CounterMap::new();
        $( m.insert(stringify!($f), $c.$f.load(Ordering::Relaxed)); )*
        m
    }};
}

impl Counters {
    pub fn snapshot(&self) -> CounterMap {
        snapshot!(
            self,
            agent_registrations,
            agent_reregistrations,
            agent_register_errors,
            agent_streams_lost,
            heartbeats,
            heartbeat_errors,
            run_task,
            kill_task,
            kills_of_unknown,
            updates_sent,
            update_resends,
            update_errors,
            updates_deferred,
            acks_to_agents,
            subscriptions,
            resubscriptions,
            framework_streams_lost,
            offers,
            offers_declined,
            rescinds,
            accepts,
            accept_errors,
            tasks_launched,
            running,
            finished,
            killed,
            lost_or_failed,
            updates_received,
            acks_sent,
            ack_errors,
            kills_sent,
            reconcile_answers,
            duplicate_ends
        )
    }
}

/// What the frameworks measured.
pub struct Measurements {
    /// ACCEPT sent -> RUNNING received, per task.
    pub launch_latency: Samples,
    /// Terminal update sent by the agent (resources freed) -> next offer of that agent.
    pub offer_latency: Samples,
    pub running_per_sec: PerSecond,
    pub launched_per_sec: PerSecond,
    pub ended_per_sec: PerSecond,
}

/// Registrations seen per master id (a restarted master has a new id).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Registrations {
    pub agents: u64,
    pub frameworks: u64,
    /// Seconds since the run started, of the latest registration / subscription.
    pub last_agent_at: f64,
    pub last_framework_at: f64,
}

pub struct Shared {
    pub start: Instant,
    pub counters: Counters,
    /// Tasks the harness may still launch (all frameworks draw from it).
    pub budget: AtomicI64,
    /// Bumped when the budget grows, so idle frameworks revive.
    pub budget_epoch: watch::Sender<u64>,
    /// Stop launching; frameworks then decline offers.
    pub launching: watch::Sender<bool>,
    /// Everything stops.
    pub stop: watch::Sender<bool>,
    /// (framework id, task id) of every live (non-terminal) task, per the agents.
    live: Mutex<HashSet<(String, String)>>,
    /// Agent id -> when an agent last sent a terminal update (its resources freed).
    freed: Mutex<HashMap<String, Instant>>,
    measurements: Mutex<Measurements>,
    registrations: Mutex<HashMap<String, Seen>>,
    /// Why calls and streams failed, by "where: code: message" (messages cut short), so a
    /// run's report says what broke rather than only how often.
    errors: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Who registered with one master, by emulator index.
#[derive(Default)]
struct Seen {
    agents: HashSet<usize>,
    frameworks: HashSet<usize>,
    last_agent_at: f64,
    last_framework_at: f64,
    agent_times: Vec<f64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking holder cannot leave these maps inconsistent in a way that matters for
    // measurement; keep going with what is there.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn new(budget: i64) -> Self {
        let start = Instant::now();
        Self {
            start,
            counters: Counters::default(),
            budget: AtomicI64::new(budget),
            budget_epoch: watch::channel(0).0,
            launching: watch::channel(true).0,
            stop: watch::channel(false).0,
            live: Mutex::new(HashSet::new()),
            freed: Mutex::new(HashMap::new()),
            measurements: Mutex::new(Measurements {
                launch_latency: Samples::default(),
                offer_latency: Samples::default(),
                running_per_sec: PerSecond::new(start),
                launched_per_sec: PerSecond::new(start),
                ended_per_sec: PerSecond::new(start),
            }),
            registrations: Mutex::new(HashMap::new()),
            errors: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Count one failure of kind `place` (e.g. "heartbeat") with its status.
    pub fn note_error(&self, place: &str, status: &tonic::Status) {
        // Ids and addresses vary per call; keep the first words, enough to tell causes apart.
        let mut msg = String::new();
        let mut quoted = false;
        for ch in status.message().chars().take(120) {
            // Quoted parts are ids ('agent-123'); one kind per message shape, not per id.
            if ch == '\'' {
                quoted = !quoted;
                msg.push_str(if quoted { "'…" } else { "'" });
            } else if !quoted {
                msg.push(ch);
            }
        }
        let key = format!("{place}: {:?}: {msg}", status.code());
        let mut e = lock(&self.errors);
        // A bounded map: past 200 kinds, new ones are lumped together.
        if e.len() >= 200 && !e.contains_key(&key) {
            *e.entry(format!("{place}: other")).or_default() += 1;
        } else {
            *e.entry(key).or_default() += 1;
        }
    }

    /// The failure histogram so far.
    pub fn error_kinds(&self) -> std::collections::BTreeMap<String, u64> {
        lock(&self.errors).clone()
    }

    pub fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.start).as_secs_f64()
    }

    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Take up to `want` tasks from the launch budget.
    pub fn take_budget(&self, want: u64) -> u64 {
        if want == 0 || !*self.launching.borrow() {
            return 0;
        }
        let want = want as i64;
        let mut cur = self.budget.load(Ordering::Relaxed);
        loop {
            if cur <= 0 {
                return 0;
            }
            let take = cur.min(want);
            match self.budget.compare_exchange_weak(
                cur,
                cur - take,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take as u64,
                Err(now) => cur = now,
            }
        }
    }

    pub fn give_back_budget(&self, n: u64) {
        self.budget.fetch_add(n as i64, Ordering::Relaxed);
    }

    pub fn add_budget(&self, n: u64) {
        self.budget.fetch_add(n as i64, Ordering::Relaxed);
        self.budget_epoch.send_modify(|e| *e += 1);
    }

    pub fn task_started(&self, key: (String, String)) {
        lock(&self.live).insert(key);
    }

    pub fn task_ended(&self, key: &(String, String), agent_id: &str, at: Instant) {
        lock(&self.live).remove(key);
        lock(&self.freed).insert(agent_id.to_string(), at);
    }

    pub fn live_tasks(&self) -> HashSet<(String, String)> {
        lock(&self.live).clone()
    }

    pub fn live_count(&self) -> usize {
        lock(&self.live).len()
    }

    pub fn offer_received(&self, agent_id: &str, at: Instant) {
        let freed = lock(&self.freed).remove(agent_id);
        if let Some(t) = freed {
            lock(&self.measurements)
                .offer_latency
                .record(at.saturating_duration_since(t));
        }
    }

    pub fn launched(&self, n: u64, at: Instant) {
        self.counters.tasks_launched.fetch_add(n, Ordering::Relaxed);
        let mut m = lock(&self.measurements);
        for _ in 0..n {
            m.launched_per_sec.bump(at);
        }
    }

    pub fn running(&self, latency: Option<Duration>, at: Instant) {
        self.counters.running.fetch_add(1, Ordering::Relaxed);
        let mut m = lock(&self.measurements);
        m.running_per_sec.bump(at);
        if let Some(l) = latency {
            m.launch_latency.record(l);
        }
    }

    pub fn ended(&self, at: Instant) {
        lock(&self.measurements).ended_per_sec.bump(at);
    }

    pub fn with_measurements<R>(&self, f: impl FnOnce(&Measurements) -> R) -> R {
        f(&lock(&self.measurements))
    }

    /// Forget what was measured so far (a scenario's warm-up).
    pub fn reset_latencies(&self) {
        let mut m = lock(&self.measurements);
        m.launch_latency = Samples::default();
        m.offer_latency = Samples::default();
    }

    pub fn agent_registered(&self, master_id: &str, index: usize, at: Instant) {
        let t = self.secs(at);
        let mut r = lock(&self.registrations);
        let e = r.entry(master_id.to_string()).or_default();
        if e.agents.insert(index) {
            e.last_agent_at = e.last_agent_at.max(t);
            e.agent_times.push(t);
        }
    }

    pub fn framework_subscribed(&self, master_id: &str, index: usize, at: Instant) {
        let t = self.secs(at);
        let mut r = lock(&self.registrations);
        let e = r.entry(master_id.to_string()).or_default();
        if e.frameworks.insert(index) {
            e.last_framework_at = e.last_framework_at.max(t);
        }
    }

    /// Distinct agents and frameworks that registered with the master `master_id`.
    pub fn registrations(&self, master_id: &str) -> Registrations {
        lock(&self.registrations)
            .get(master_id)
            .map(|e| Registrations {
                agents: e.agents.len() as u64,
                frameworks: e.frameworks.len() as u64,
                last_agent_at: e.last_agent_at,
                last_framework_at: e.last_framework_at,
            })
            .unwrap_or_default()
    }

    /// When each distinct agent first registered with `master_id` (seconds since start).
    pub fn agent_times(&self, master_id: &str) -> Vec<f64> {
        lock(&self.registrations)
            .get(master_id)
            .map(|e| e.agent_times.clone())
            .unwrap_or_default()
    }
}

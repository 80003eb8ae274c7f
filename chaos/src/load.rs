//! The load: a real framework on the scheduler SDK, over real gRPC, that keeps a number of
//! short shell tasks running while launching is on, and records every status update it
//! receives, in arrival order, for the checks.
//!
//! Owns only what the framework saw (`Seen`, shared with the harness under a mutex). It
//! never decides whether anything is right: `check` does.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agora_proto::TaskState;
use agora_sdk::proto::{FrameworkInfo, Offer, StatusSource, TaskStatus};
use agora_sdk::{Driver, Resources, Scheduler, Subscribed, TaskBuilder};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One update as the framework received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub state: TaskState,
    pub uuid: String,
    /// Made by the master (LOST, UNREACHABLE, reconciliation answers), not by an agent.
    pub from_master: bool,
    pub message: String,
}

/// Everything the framework saw and did.
#[derive(Debug, Default)]
pub struct Seen {
    /// Launches go on while this is set.
    pub launching: bool,
    /// Tasks the master accepted, with their agent.
    pub launched: BTreeMap<String, String>,
    /// Tasks whose launch call failed without an answer (a timeout, a lost connection):
    /// they may or may not exist; they are reconciled at the end like the others.
    pub uncertain: BTreeMap<String, String>,
    /// Every update received, per task, in arrival order.
    pub received: BTreeMap<String, Vec<Received>>,
    pub subscriptions: u64,
    pub framework_id: Option<String>,
    next_task: u64,
}

impl Seen {
    /// The task's last state, ignoring reconciliation answers' view of it.
    pub fn last_state(&self, task: &str) -> Option<TaskState> {
        self.received.get(task)?.last().map(|u| u.state)
    }

    /// Launched tasks not known to have ended.
    pub fn live(&self) -> usize {
        self.launched
            .keys()
            .filter(|t| !self.last_state(t).is_some_and(reported_end))
            .count()
    }
}

/// A state after which a task runs no more (LOST included: it ends the task for a
/// framework that is not partition-aware, though real updates may follow it).
pub fn reported_end(state: TaskState) -> bool {
    state.is_terminal() || matches!(state, TaskState::Unreachable | TaskState::Unknown)
}

pub type Shared = Arc<Mutex<Seen>>;

pub fn lock(seen: &Shared) -> MutexGuard<'_, Seen> {
    seen.lock().unwrap_or_else(|e| e.into_inner())
}

/// The framework's scheduler.
pub struct Load {
    pub seen: Shared,
    pub prefix: String,
    /// Live tasks the framework keeps while launching.
    pub live_target: usize,
    pub rng: SmallRng,
    pub shape: Resources,
}

impl Load {
    pub fn new(seen: Shared, seed: u64, live_target: usize) -> anyhow::Result<Load> {
        Ok(Load {
            seen,
            prefix: format!("chaos-{seed}"),
            live_target,
            rng: SmallRng::seed_from_u64(seed ^ 0x10ad),
            shape: agora_sdk::cpus_mem(0.1, 16.0)?,
        })
    }

    pub fn framework_info() -> FrameworkInfo {
        FrameworkInfo {
            name: "agora-chaos".into(),
            // Survives every master restart and partition of a run.
            failover_timeout_seconds: 3600.0,
            // Agents keep the tasks across their own restarts.
            checkpoint: true,
            ..Default::default()
        }
    }
}

impl Scheduler for Load {
    async fn subscribed(&mut self, _driver: &Driver, info: Subscribed) {
        let mut seen = lock(&self.seen);
        seen.subscriptions += 1;
        seen.framework_id = Some(info.framework_id);
    }

    async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
        for offer in offers {
            let mut tasks = Vec::new();
            {
                let mut seen = lock(&self.seen);
                let mut available = agora_sdk::offer_resources(&offer).unwrap_or_default();
                let mut want = if seen.launching {
                    self.live_target.saturating_sub(seen.live())
                } else {
                    0
                };
                while want > 0 {
                    let Some(resources) = agora_sdk::take(&mut available, &self.shape) else {
                        break;
                    };
                    seen.next_task += 1;
                    let id = format!("{}-{}", self.prefix, seen.next_task);
                    // Short tasks, most of them succeeding, some failing.
                    let millis = self.rng.random_range(300..4_000);
                    let exit = if self.rng.random_bool(0.1) { 3 } else { 0 };
                    let command =
                        format!("sleep {}.{:03}; exit {exit}", millis / 1000, millis % 1000);
                    tasks.push(
                        TaskBuilder::shell(command)
                            .resources(resources)
                            .build(id, &offer.agent_id),
                    );
                    want -= 1;
                }
            }
            if tasks.is_empty() {
                let _ = driver.decline(vec![offer.id], Some(1.0)).await;
                continue;
            }
            let ids: Vec<String> = tasks.iter().map(|t| t.task_id.clone()).collect();
            let answer = driver.launch(offer.id, tasks, Some(1.0)).await;
            let mut seen = lock(&self.seen);
            match answer {
                Ok(launched) => {
                    for id in launched {
                        seen.launched.insert(id, offer.agent_id.clone());
                    }
                }
                // No answer (a timeout, a broken connection): the launch may have happened.
                Err(e) if launch_unanswered(&e) => {
                    for id in ids {
                        seen.uncertain.insert(id, offer.agent_id.clone());
                    }
                }
                // Refused as a whole (the offer was rescinded, ...) or never sent.
                Err(_) => {}
            }
        }
    }

    async fn status_update(&mut self, _driver: &Driver, status: TaskStatus) {
        let received = Received {
            state: status.state(),
            uuid: status.uuid.clone(),
            from_master: status.source() == StatusSource::SourceMaster,
            message: status.message.clone(),
        };
        lock(&self.seen)
            .received
            .entry(status.task_id)
            .or_default()
            .push(received);
    }
}

/// Whether a failed launch may still have reached the master.
fn launch_unanswered(e: &agora_sdk::SdkError) -> bool {
    use tonic::Code;
    match e {
        agora_sdk::SdkError::Timeout { .. } => true,
        _ => matches!(
            e.code(),
            Some(Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal)
        ),
    }
}

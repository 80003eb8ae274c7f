//! A simulated framework: subscribes (again with its id after a failover or a master
//! restart), launches small tasks on the offers it gets, declines the rest, kills a task now
//! and then, acknowledges every update that carries a uuid, and records every update it
//! receives for the checks.
//!
//! Owns only its own simulated state; it talks to the master only through the commands
//! the world hands to the actor.

use std::collections::{BTreeMap, BTreeSet};

use agora_master::actor::Subscription;
use agora_proto::TaskState;
use agora_proto::v1::{self, event::Event as Ev};
use agora_resources::Resources;
use rand::Rng;
use rand::rngs::SmallRng;

/// What one task asks for.
pub const TASK_RESOURCES: &str = "cpus:0.5;mem:64";
/// Tasks a framework keeps running at most.
pub const MAX_ACTIVE_TASKS: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    Up,
    /// Disconnected (scheduler process failing over) until the step.
    FailingOver {
        until: u64,
    },
}

/// One update as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub state: TaskState,
    pub uuid: String,
    pub source_master: bool,
}

pub struct SimFramework {
    pub name: String,
    pub role: String,
    pub partition_aware: bool,
    pub id: Option<String>,
    pub sub: Option<Subscription>,
    pub life: Life,
    pub subscribing: bool,
    pub subscribe_at: u64,
    next_task: u64,
    /// Tasks the master said it launched.
    pub launched: BTreeSet<String>,
    /// The agent each task was launched on (for explicit reconciliation).
    pub placed: BTreeMap<String, String>,
    /// Every update received, by task, in order.
    pub received: BTreeMap<String, Vec<Received>>,
    /// Set when launching stops (the settle phase).
    pub quiet: bool,
    /// An update that came after its task's final state, noticed on arrival (the world
    /// fails the run at that step, with its trace).
    pub out_of_order: Option<String>,
}

/// A call the framework wants made.
pub enum Call {
    Subscribe(Box<v1::SubscribeRequest>),
    Accept(v1::AcceptRequest),
    Decline(v1::DeclineRequest),
    Acknowledge(v1::AcknowledgeRequest),
    Kill(v1::KillRequest),
    Reconcile(v1::ReconcileRequest),
    StreamClosed { framework_id: String, epoch: u64 },
}

/// A task state after which a task never runs again: terminal, except LOST, which an agent
/// coming back may follow with the task's real updates.
pub fn is_final(state: TaskState) -> bool {
    state.is_terminal() && state != TaskState::Lost
}

impl SimFramework {
    pub fn new(index: usize, partition_aware: bool) -> Self {
        SimFramework {
            name: format!("sim-fw-{index}"),
            role: format!("role-{}", index % 2),
            partition_aware,
            id: None,
            sub: None,
            life: Life::Up,
            subscribing: false,
            subscribe_at: 0,
            next_task: 0,
            launched: BTreeSet::new(),
            placed: BTreeMap::new(),
            received: BTreeMap::new(),
            quiet: false,
            out_of_order: None,
        }
    }

    pub fn info(&self) -> v1::FrameworkInfo {
        let mut capabilities = Vec::new();
        if self.partition_aware {
            capabilities.push(v1::FrameworkCapability::PartitionAware as i32);
        }
        v1::FrameworkInfo {
            id: self.id.clone().unwrap_or_default(),
            name: self.name.clone(),
            roles: vec![self.role.clone()],
            capabilities,
            failover_timeout_seconds: 3600.0,
            checkpoint: true,
            ..Default::default()
        }
    }

    pub fn subscribe(&self) -> Call {
        Call::Subscribe(Box::new(v1::SubscribeRequest {
            framework: Some(self.info()),
            ..Default::default()
        }))
    }

    /// The scheduler process dies; the master sees its stream close.
    pub fn fail_over(&mut self, until: u64) -> Option<Call> {
        self.life = Life::FailingOver { until };
        self.subscribing = false;
        let sub = self.sub.take()?;
        Some(Call::StreamClosed {
            framework_id: sub.framework_id,
            epoch: sub.epoch,
        })
    }

    /// Tasks received as running and not yet final (by the framework's own record).
    fn active(&self) -> usize {
        self.received
            .values()
            .filter(|r| r.last().is_some_and(|u| !is_final(u.state)))
            .count()
    }

    /// Reads events and answers them; returns the calls to make and whether the stream
    /// ended.
    pub fn read_events(&mut self, step: u64, rng: &mut SmallRng) -> (Vec<Call>, bool) {
        let mut events = Vec::new();
        let mut ended = false;
        if let Some(sub) = self.sub.as_mut() {
            loop {
                match sub.events.try_recv() {
                    Ok(Ok(e)) => events.push(e),
                    Ok(Err(_)) => {
                        ended = true;
                        break;
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => break,
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                        ended = true;
                        break;
                    }
                }
            }
        }
        let mut calls = Vec::new();
        for event in events {
            self.event(event, &mut calls, rng);
        }
        if ended {
            self.sub = None;
            self.subscribe_at = step + 3;
        }
        if !self.quiet && rng.random_bool(0.005) {
            // Kill one of the tasks it believes runs.
            let running: Vec<&String> = self
                .received
                .iter()
                .filter(|(_, r)| r.last().is_some_and(|u| u.state == TaskState::Running))
                .map(|(t, _)| t)
                .collect();
            if let (Some(id), false) = (&self.id, running.is_empty()) {
                let task = running[rng.random_range(0..running.len())].clone();
                calls.push(Call::Kill(v1::KillRequest {
                    framework_id: id.clone(),
                    task_id: task,
                    ..Default::default()
                }));
            }
        }
        if rng.random_bool(0.003) {
            calls.extend(self.reconcile(rng.random_bool(0.5)));
        }
        (calls, ended)
    }

    /// Implicit reconciliation (every task the master knows), or explicit: the tasks this
    /// framework placed and has not seen end, as a framework does after a failover.
    pub fn reconcile(&self, explicit: bool) -> Option<Call> {
        let id = self.id.clone()?;
        let tasks = if explicit {
            self.placed
                .iter()
                .filter(|(t, _)| {
                    self.received
                        .get(*t)
                        .and_then(|r| r.last())
                        .is_none_or(|u| !is_final(u.state))
                })
                .map(|(t, a)| v1::reconcile_request::Task {
                    task_id: t.clone(),
                    agent_id: a.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Some(Call::Reconcile(v1::ReconcileRequest {
            framework_id: id,
            tasks,
        }))
    }

    fn event(&mut self, event: v1::Event, calls: &mut Vec<Call>, rng: &mut SmallRng) {
        let Some(fw_id) = self.id.clone() else {
            return;
        };
        match event.event {
            Some(Ev::Offers(offers)) => {
                for offer in offers.offers {
                    let launch = !self.quiet && self.active() < MAX_ACTIVE_TASKS;
                    let tasks = if launch {
                        self.tasks_for(&offer, rng)
                    } else {
                        Vec::new()
                    };
                    if tasks.is_empty() {
                        calls.push(Call::Decline(v1::DeclineRequest {
                            framework_id: fw_id.clone(),
                            offer_ids: vec![offer.id],
                            filters: Some(v1::Filters {
                                refuse_seconds: Some(if self.quiet { 60.0 } else { 1.0 }),
                            }),
                        }));
                    } else {
                        calls.push(Call::Accept(v1::AcceptRequest {
                            framework_id: fw_id.clone(),
                            offer_ids: vec![offer.id],
                            operations: vec![v1::Operation {
                                operation: Some(v1::operation::Operation::Launch(
                                    v1::operation::Launch { tasks },
                                )),
                            }],
                            filters: Some(v1::Filters {
                                refuse_seconds: Some(0.5),
                            }),
                        }));
                    }
                }
            }
            Some(Ev::Update(update)) => {
                let Some(status) = update.status else {
                    return;
                };
                let state = TaskState::try_from(status.state).unwrap_or(TaskState::Unknown);
                let final_before = self.received.get(&status.task_id).and_then(|r| {
                    r.iter()
                        .find(|u| !u.uuid.is_empty() && is_final(u.state))
                        .map(|u| (u.state, u.uuid.clone()))
                });
                if let Some((f, uuid)) = final_before
                    && !status.uuid.is_empty()
                    && state != f
                    && self.out_of_order.is_none()
                {
                    self.out_of_order = Some(format!(
                        "{} task {}: {state:?} ({}, reason {:?}) after its final {f:?} ({uuid})",
                        self.name,
                        status.task_id,
                        status.uuid,
                        status.reason()
                    ));
                }
                self.received
                    .entry(status.task_id.clone())
                    .or_default()
                    .push(Received {
                        state,
                        uuid: status.uuid.clone(),
                        source_master: status.source == v1::StatusSource::SourceMaster as i32,
                    });
                if !status.uuid.is_empty() {
                    calls.push(Call::Acknowledge(v1::AcknowledgeRequest {
                        framework_id: fw_id,
                        agent_id: status.agent_id,
                        task_id: status.task_id,
                        uuid: status.uuid,
                    }));
                }
            }
            _ => {}
        }
    }

    fn tasks_for(&mut self, offer: &v1::Offer, rng: &mut SmallRng) -> Vec<v1::TaskInfo> {
        let Ok(mut left) = Resources::from_proto(&offer.resources) else {
            return Vec::new();
        };
        let Ok(one) = Resources::parse(TASK_RESOURCES) else {
            return Vec::new();
        };
        let mut tasks = Vec::new();
        let want = rng.random_range(1..=3);
        while tasks.len() < want && left.allocatable_to(&self.role).contains(&one) {
            let Ok(rest) = left.checked_sub(&one) else {
                break;
            };
            left = rest;
            self.next_task += 1;
            let task_id = format!("{}-t{}", self.name, self.next_task);
            self.placed.insert(task_id.clone(), offer.agent_id.clone());
            tasks.push(v1::TaskInfo {
                task_id,
                name: "sim".to_string(),
                agent_id: offer.agent_id.clone(),
                resources: one.to_proto(),
                command: Some(v1::CommandInfo {
                    run: Some(v1::command_info::Run::Shell("true".to_string())),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        tasks
    }
}

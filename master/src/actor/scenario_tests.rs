//! Scenario tests of the actor: commands in through `Master::handle`, the batch committed
//! to the in-memory registry, then replies, events and stored state out. They pin the
//! rules of the life cycles, of replies after commit and of recovery after a restart,
//! including the refused calls that must change nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::service::Error;
use agora_proto::TaskState;
use agora_proto::v1::{self, FrameworkCapability};
use agora_resources::Resources;
use tokio::sync::oneshot;
use tonic::Code;

use super::{AgentStream, Command, MaintenanceOp, Master, SchedulerCall, Subscription};
use crate::clock::ManualClock;
use crate::config::MasterConfig;
use crate::registry::{MemRegistry, RegistryState};
use crate::state::agent::{AgentStatus, Maintenance};
use crate::state::framework::FrameworkStatus;

const AGENT_RESOURCES: &str = "cpus:4;mem:1024;cpus(b):2";

struct Scenario {
    m: Master,
    clock: ManualClock,
    registry: MemRegistry,
    frameworks: HashMap<String, Subscription>,
    agents: HashMap<String, AgentStream>,
}

fn res(text: &str) -> Resources {
    Resources::parse(text).expect("resources")
}

impl Scenario {
    fn new() -> Self {
        Self::on(MemRegistry::new(), ManualClock::new(1_000_000))
    }

    /// A master starting on what `registry` holds.
    fn on(registry: MemRegistry, clock: ManualClock) -> Self {
        // The scenarios accept with `refuse_seconds: 0` and take the leftovers in the next
        // offer at once: no minimum re-offer delay (e2e_scheduling tests the delay).
        let (m, _handle, _rx) = Master::new(
            MasterConfig {
                min_refuse_ms: 0,
                ..MasterConfig::default()
            },
            Arc::new(clock.clone()),
            Box::new(registry.clone()),
            registry.state(),
        )
        .expect("master");
        Scenario {
            m,
            clock,
            registry,
            frameworks: HashMap::new(),
            agents: HashMap::new(),
        }
    }

    /// The same registry, a new master (a restart).
    fn restart(self) -> Self {
        Self::on(self.registry, self.clock)
    }

    /// One command as its own batch: handled, committed, its reply read.
    async fn call<T>(
        &mut self,
        make: impl FnOnce(oneshot::Sender<Result<T, Error>>) -> Command,
    ) -> Result<T, Error> {
        let (tx, mut rx) = oneshot::channel();
        self.m.handle(make(tx));
        let _ = self.m.commit().await;
        rx.try_recv().expect("answered once the batch is committed")
    }

    async fn subscribe(&mut self, info: v1::FrameworkInfo) -> Result<String, Error> {
        let sub = self
            .call(|reply| Command::Subscribe {
                request: v1::SubscribeRequest {
                    framework: Some(info),
                    ..Default::default()
                },
                reply,
            })
            .await?;
        let id = sub.framework_id.clone();
        self.frameworks.insert(id.clone(), sub);
        Ok(id)
    }

    async fn register(
        &mut self,
        id: &str,
        tasks: Vec<v1::RunningTask>,
        frameworks: Vec<v1::FrameworkInfo>,
    ) -> Result<String, Error> {
        let stream = self
            .call(|reply| Command::RegisterAgent {
                request: v1::RegisterAgentRequest {
                    info: Some(v1::AgentInfo {
                        id: id.to_string(),
                        hostname: format!("host-{id}"),
                        resources: res(AGENT_RESOURCES).to_proto(),
                        ..Default::default()
                    }),
                    tasks,
                    frameworks,
                    ..Default::default()
                },
                reply,
            })
            .await?;
        let id = stream.agent_id.clone();
        self.agents.insert(id.clone(), stream);
        Ok(id)
    }

    async fn scheduler(&mut self, call: SchedulerCall) -> Result<(), Error> {
        self.call(|reply| Command::Scheduler { call, reply }).await
    }

    async fn maintenance(&mut self, op: MaintenanceOp) -> Result<(), Error> {
        self.call(|reply| Command::Maintenance { op, reply }).await
    }

    async fn reconcile(&mut self, fw: &str, tasks: &[(&str, &str)]) -> Vec<v1::TaskStatus> {
        self.events(fw);
        let tasks = tasks
            .iter()
            .map(|(t, a)| v1::reconcile_request::Task {
                task_id: t.to_string(),
                agent_id: a.to_string(),
            })
            .collect();
        self.scheduler(SchedulerCall::Reconcile(v1::ReconcileRequest {
            framework_id: fw.to_string(),
            tasks,
        }))
        .await
        .expect("reconcile");
        self.events(fw)
            .into_iter()
            .filter_map(|e| match e {
                v1::event::Event::Update(u) => u.status,
                _ => None,
            })
            .collect()
    }

    /// The events a framework has been sent since last asked.
    fn events(&mut self, fw: &str) -> Vec<v1::event::Event> {
        let mut out = Vec::new();
        if let Some(sub) = self.frameworks.get_mut(fw) {
            while let Ok(Ok(e)) = sub.events.try_recv() {
                out.extend(e.event);
            }
        }
        out
    }

    fn offers(&mut self, fw: &str) -> Vec<v1::Offer> {
        self.m.allocate();
        self.events(fw)
            .into_iter()
            .flat_map(|e| match e {
                v1::event::Event::Offers(o) => o.offers,
                _ => Vec::new(),
            })
            .collect()
    }

    /// Commands an agent has been sent since last asked.
    fn agent_commands(&mut self, agent: &str) -> Vec<v1::agent_command::Command> {
        let mut out = Vec::new();
        if let Some(a) = self.agents.get_mut(agent) {
            while let Ok(Ok(c)) = a.commands.try_recv() {
                out.extend(c.command);
            }
        }
        out
    }

    /// cpus the allocator counts as allocated to `role` (tasks, executors and offers).
    fn allocated_cpus(&self, role: &str) -> f64 {
        self.m
            .allocator
            .role_shares()
            .into_iter()
            .find(|s| s.role == role)
            .map_or(0.0, |s| s.allocated.scalar("cpus").as_f64())
    }

    async fn tick(&mut self, advance: Duration) {
        self.clock.advance_ms(advance.as_millis() as u64);
        self.m.on_tick();
        let _ = self.m.commit().await;
    }
}

fn framework(name: &str, roles: &[&str]) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        failover_timeout_seconds: 10.0,
        ..Default::default()
    }
}

fn partition_aware(mut info: v1::FrameworkInfo) -> v1::FrameworkInfo {
    info.capabilities
        .push(FrameworkCapability::PartitionAware as i32);
    info
}

// ---------------------------------------------------------------------------------
// Replies after commit
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_change_is_answered_only_once_its_registry_write_is_durable() {
    let mut s = Scenario::new();
    let (tx, mut rx) = oneshot::channel();
    s.m.handle(Command::UpdateWeights {
        weights: vec![("a".into(), 2.0)],
        reply: tx,
    });
    assert!(rx.try_recv().is_err(), "no answer before the write");
    assert!(s.registry.state().weights.is_empty());
    s.m.commit().await.expect("write");
    assert!(rx.try_recv().expect("answered").is_ok());
    assert_eq!(s.registry.state().weights["a"], 2.0);
    // A query in a batch that writes nothing is answered at once.
    let (tx, mut rx) = oneshot::channel();
    s.m.handle(Command::Ping { reply: tx });
    assert!(rx.try_recv().is_ok());
}

#[tokio::test]
async fn a_failed_write_fails_the_calls_of_its_batch_and_stores_nothing() {
    let mut s = Scenario::new();
    s.registry.fail_writes(Some("disk full"));
    let (sub_tx, mut sub_rx) = oneshot::channel();
    s.m.handle(Command::Subscribe {
        request: v1::SubscribeRequest {
            framework: Some(framework("f", &["a"])),
            ..Default::default()
        },
        reply: sub_tx,
    });
    // A refused call in the same batch keeps its own error.
    let (bad_tx, mut bad_rx) = oneshot::channel();
    s.m.handle(Command::UpdateWeights {
        weights: vec![("a".into(), -1.0)],
        reply: bad_tx,
    });
    let err = s.m.commit().await.expect_err("the write fails");
    assert!(err.to_string().contains("disk full"), "{err}");
    let Err(e) = sub_rx.try_recv().expect("answered") else {
        panic!("the subscription succeeded although its write failed");
    };
    assert_eq!(e.code(), Code::Unavailable);
    assert!(
        e.message().contains("registry write failed") && e.message().contains("disk full"),
        "{e:?}"
    );
    let e = bad_rx.try_recv().expect("answered").expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(s.registry.state(), RegistryState::default());
    assert_eq!(s.m.metrics.registry_write_errors, 1);
}

#[tokio::test]
async fn the_run_loop_stops_on_a_failed_write_and_closes_every_stream() {
    let registry = MemRegistry::new();
    let (m, handle, rx) = Master::new(
        MasterConfig::default(),
        Arc::new(ManualClock::new(1_000)),
        Box::new(registry.clone()),
        RegistryState::default(),
    )
    .expect("master");
    let actor = tokio::spawn(m.run(rx));
    let mut sub = handle
        .ask(|reply| Command::Subscribe {
            request: v1::SubscribeRequest {
                framework: Some(framework("f", &["a"])),
                ..Default::default()
            },
            reply,
        })
        .await
        .expect("sent")
        .expect("subscribed");
    registry.fail_writes(Some("io error"));
    let r = handle
        .ask(|reply| Command::UpdateWeights {
            weights: vec![("a".into(), 3.0)],
            reply,
        })
        .await
        .expect("sent");
    assert_eq!(r.expect_err("failed").code(), Code::Unavailable);
    let ended = actor.await.expect("actor task");
    assert!(ended.is_err(), "the actor stops");
    // The framework's stream ends without an ERROR: it sees a lost master.
    let mut last = None;
    while let Some(e) = sub.events.recv().await {
        last = Some(e);
    }
    assert!(
        !matches!(
            last,
            Some(Ok(v1::Event {
                event: Some(v1::event::Event::Error(_))
            }))
        ),
        "{last:?}"
    );
    assert!(registry.state().weights.is_empty());
}

// ---------------------------------------------------------------------------------
// Framework life cycle
// ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_refused_resubscription_changes_nothing() {
    let mut s = Scenario::new();
    let _agent = s.register("", vec![], vec![]).await.expect("agent");
    let mut info = framework("f", &["a"]);
    info.principal = "alice".into();
    let fw = s.subscribe(info.clone()).await.expect("subscribed");
    let offers = s.offers(&fw);
    assert_eq!(offers.len(), 1);
    let stored = s.registry.state();
    info.id = fw.clone();
    info.principal = "bob".into();
    let epoch = s.m.frameworks[&fw].epoch;
    let (tx, mut rx) = oneshot::channel();
    s.m.handle(Command::Subscribe {
        request: v1::SubscribeRequest {
            framework: Some(info),
            ..Default::default()
        },
        reply: tx,
    });
    s.m.commit().await.expect("nothing to write");
    assert_eq!(
        rx.try_recv().expect("answered").err().map(|e| e.code()),
        Some(Code::PermissionDenied)
    );
    // The offer is still outstanding, the old stream still open and unaware.
    assert!(s.m.offers.contains_key(&offers[0].id));
    assert_eq!(s.m.frameworks[&fw].status, FrameworkStatus::Active);
    assert_eq!(s.m.frameworks[&fw].epoch, epoch);
    assert!(s.events(&fw).is_empty());
    assert_eq!(s.registry.state(), stored);
}

/// Data-driven: each row drives one framework through calls and names the status it
/// must end in and the code of the last call.
#[tokio::test]
async fn framework_life_cycle_scenarios() {
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Teardown,
        OperatorTeardown,
        StreamLost,
        /// Advance the clock past the failover timeout and tick.
        Expire,
        Resubscribe,
        Restart,
    }
    use Step::*;
    let rows: &[(&[Step], FrameworkStatus, Option<Code>)] = &[
        (&[StreamLost], FrameworkStatus::Disconnected, None),
        (&[StreamLost, Resubscribe], FrameworkStatus::Active, None),
        (
            &[StreamLost, Expire],
            FrameworkStatus::FailoverExpired,
            None,
        ),
        (
            &[StreamLost, Expire, Resubscribe],
            FrameworkStatus::FailoverExpired,
            Some(Code::FailedPrecondition),
        ),
        (&[Teardown], FrameworkStatus::TornDown, None),
        (
            &[Teardown, Resubscribe],
            FrameworkStatus::TornDown,
            Some(Code::FailedPrecondition),
        ),
        (
            &[Teardown, OperatorTeardown],
            FrameworkStatus::TornDown,
            Some(Code::FailedPrecondition),
        ),
        (&[Restart], FrameworkStatus::Inactive, None),
        (&[Restart, Resubscribe], FrameworkStatus::Active, None),
        (&[Restart, Expire], FrameworkStatus::FailoverExpired, None),
        (
            &[Teardown, Restart, Resubscribe],
            FrameworkStatus::TornDown,
            Some(Code::FailedPrecondition),
        ),
        // An active framework's failover timeout does not run.
        (&[Expire], FrameworkStatus::Active, None),
    ];
    for (steps, end, code) in rows {
        let mut s = Scenario::new();
        let info = framework("f", &["a"]);
        let fw = s.subscribe(info.clone()).await.expect("subscribed");
        let mut last: Option<Code> = None;
        for step in *steps {
            last = match step {
                Teardown => s
                    .scheduler(SchedulerCall::Teardown(v1::TeardownRequest {
                        framework_id: fw.clone(),
                    }))
                    .await
                    .err()
                    .map(|e| e.code()),
                OperatorTeardown => s
                    .call(|reply| Command::OperatorTeardown {
                        framework_id: fw.clone(),
                        reply,
                    })
                    .await
                    .err()
                    .map(|e| e.code()),
                StreamLost => {
                    let epoch = s.m.frameworks[&fw].epoch;
                    s.m.handle(Command::FrameworkStreamClosed {
                        framework_id: fw.clone(),
                        epoch,
                    });
                    None
                }
                Expire => {
                    s.tick(Duration::from_secs(11)).await;
                    None
                }
                Resubscribe => s
                    .subscribe(v1::FrameworkInfo {
                        id: fw.clone(),
                        ..info.clone()
                    })
                    .await
                    .err()
                    .map(|e| e.code()),
                Restart => {
                    s = s.restart();
                    None
                }
            };
        }
        assert_eq!(s.m.frameworks[&fw].status, *end, "{steps:?}");
        assert_eq!(last, *code, "{steps:?}");
        // Retired ids are stored as retired, and only they.
        assert_eq!(
            s.registry.state().torn_down.contains(&fw),
            end.is_retired(),
            "{steps:?}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Agent life cycle
// ---------------------------------------------------------------------------------

/// Data-driven: operator calls on one agent, each with the code it must get and the
/// status it must leave; a refused call leaves status, allocator and registry as they
/// were.
#[tokio::test]
async fn agent_maintenance_scenarios() {
    let deactivate = |id: &str| MaintenanceOp::Deactivate {
        agent_id: id.into(),
    };
    let reactivate = |id: &str| MaintenanceOp::Reactivate {
        agent_id: id.into(),
    };
    let drain = |id: &str| MaintenanceOp::Drain {
        agent_id: id.into(),
        grace_period_seconds: 1.0,
        mark_gone: false,
    };
    let gone = |id: &str| MaintenanceOp::MarkGone {
        agent_id: id.into(),
    };
    type Op = fn(&str) -> MaintenanceOp;
    let rows: Vec<(Vec<Op>, Option<Code>, &str)> = vec![
        (vec![deactivate], None, "deactivated"),
        (
            vec![reactivate],
            Some(Code::FailedPrecondition),
            "registered",
        ),
        (vec![deactivate, reactivate], None, "registered"),
        (vec![deactivate, deactivate], None, "deactivated"),
        // No task to wait for: the drain ends at once, the agent stays deactivated.
        (vec![drain], None, "deactivated"),
        (vec![drain, reactivate], None, "registered"),
        (vec![gone], None, "removed"),
        (
            vec![gone, reactivate],
            Some(Code::FailedPrecondition),
            "removed",
        ),
        (
            vec![gone, deactivate],
            Some(Code::FailedPrecondition),
            "removed",
        ),
    ];
    for (ops, code, end) in rows {
        let mut s = Scenario::new();
        let a = s.register("", vec![], vec![]).await.expect("agent");
        let mut last = None;
        for op in &ops {
            let before = (
                s.m.agents[&a].status,
                s.registry.state(),
                s.m.agent_in_allocator(&a),
            );
            last = s.maintenance(op(&a)).await.err().map(|e| e.code());
            if last.is_some() {
                let after = (
                    s.m.agents[&a].status,
                    s.registry.state(),
                    s.m.agent_in_allocator(&a),
                );
                assert_eq!(before, after, "a refused call changed something");
            }
        }
        assert_eq!(last, code, "{end}");
        let status = s.m.agents[&a].status;
        assert_eq!(status.name(), end);
        assert_eq!(s.m.agent_in_allocator(&a), status.is_schedulable());
        let stored = s.registry.state();
        assert_eq!(
            stored.deactivated_agents.contains(&a),
            status.is_deactivated()
        );
        assert_eq!(
            stored.removed_agents.contains(&a),
            status == AgentStatus::Removed
        );
        assert_eq!(
            stored.admitted_agents.contains_key(&a),
            status != AgentStatus::Removed
        );
    }
}

#[tokio::test]
async fn a_removed_agent_is_told_to_shut_down_and_its_frameworks_hear_a_failure() {
    let mut s = Scenario::new();
    let fw = s.subscribe(framework("f", &["a"])).await.expect("fw");
    let a = s.register("", vec![], vec![]).await.expect("agent");
    s.events(&fw);
    s.maintenance(MaintenanceOp::MarkGone {
        agent_id: a.clone(),
    })
    .await
    .expect("gone");
    assert!(s.events(&fw).iter().any(|e| matches!(
        e,
        v1::event::Event::Failure(f) if f.agent_id == a && f.executor_id.is_empty()
    )));
    // Also after a restart: the registry remembers it.
    let mut s = s.restart();
    s.register(&a, vec![], vec![]).await.expect("answered");
    assert!(
        s.agent_commands(&a)
            .iter()
            .any(|c| matches!(c, v1::agent_command::Command::Shutdown(_)))
    );
    assert_eq!(s.m.agents[&a].status, AgentStatus::Removed);
}

#[tokio::test]
async fn a_deactivated_agent_stays_out_of_the_allocator_across_reconnection_and_restart() {
    let mut s = Scenario::new();
    let a = s.register("", vec![], vec![]).await.expect("agent");
    s.maintenance(MaintenanceOp::Deactivate {
        agent_id: a.clone(),
    })
    .await
    .expect("deactivated");
    let epoch = s.m.agents[&a].epoch;
    s.m.handle(Command::AgentStreamClosed {
        agent_id: a.clone(),
        epoch,
    });
    assert_eq!(s.m.agents[&a].status.name(), "deactivated");
    s.register(&a, vec![], vec![]).await.expect("re-registered");
    assert!(!s.m.agent_in_allocator(&a));
    let mut s = s.restart();
    assert_eq!(
        s.m.agents[&a].status,
        AgentStatus::Recovering(Maintenance::Deactivated)
    );
    s.register(&a, vec![], vec![]).await.expect("re-registered");
    assert!(s.m.agents[&a].status.is_connected() && !s.m.agent_in_allocator(&a));
}

// ---------------------------------------------------------------------------------
// Recovery after a master restart
// ---------------------------------------------------------------------------------

fn running(fw: &str, task: &str, resources: &str) -> v1::RunningTask {
    v1::RunningTask {
        task: Some(v1::TaskInfo {
            name: task.into(),
            task_id: task.into(),
            resources: res(resources).to_proto(),
            command: Some(v1::CommandInfo {
                run: Some(v1::command_info::Run::Shell("sleep 100".into())),
                ..Default::default()
            }),
            ..Default::default()
        }),
        framework_id: fw.into(),
        state: TaskState::Running as i32,
    }
}

#[tokio::test]
async fn after_a_restart_reconciliation_waits_for_admitted_agents_then_reports_them_unreachable() {
    for aware in [true, false] {
        let mut s = Scenario::new();
        let info = if aware {
            partition_aware(framework("f", &["a"]))
        } else {
            framework("f", &["a"])
        };
        let info = v1::FrameworkInfo {
            failover_timeout_seconds: 3600.0,
            ..info
        };
        let fw = s.subscribe(info.clone()).await.expect("fw");
        let a1 = s.register("", vec![], vec![]).await.expect("a1");
        let a2 = s.register("", vec![], vec![]).await.expect("a2");
        assert!(s.registry.state().admitted_agents.contains_key(&a1));

        let mut s = s.restart();
        s.subscribe(v1::FrameworkInfo {
            id: fw.clone(),
            ..info.clone()
        })
        .await
        .expect("re-subscribed");
        assert_eq!(s.m.agents[&a1].status.name(), "recovering");
        // Neither a task named on a recovering agent nor one without an agent is LOST.
        assert!(
            s.reconcile(&fw, &[("t1", &a1), ("t9", "")])
                .await
                .is_empty()
        );
        // a2 comes back with its task: adopted, booked under its own role, answered.
        s.register(&a2, vec![running(&fw, "t2", "cpus:1")], vec![info.clone()])
            .await
            .expect("a2 back");
        let got = s.reconcile(&fw, &[("t2", &a2)]).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].state, TaskState::Running as i32);
        assert!(s.reconcile(&fw, &[("t1", &a1)]).await.is_empty());

        // Just before the timeout nothing changes; at it a1 is unreachable.
        s.tick(Duration::from_secs(599)).await;
        assert_eq!(s.m.agents[&a1].status.name(), "recovering");
        s.events(&fw);
        s.tick(Duration::from_secs(1)).await;
        assert_eq!(s.m.agents[&a1].status.name(), "unreachable");
        assert!(s.events(&fw).iter().any(|e| matches!(
            e,
            v1::event::Event::Failure(f) if f.agent_id == a1
        )));
        let got = s.reconcile(&fw, &[("t1", &a1), ("t9", "")]).await;
        let expect = if aware {
            TaskState::Unreachable
        } else {
            TaskState::Lost
        };
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].state, expect as i32, "aware: {aware}");
        assert_eq!(
            got[1].state,
            if aware {
                TaskState::Unknown
            } else {
                TaskState::Lost
            } as i32
        );
        // a1 may still come back.
        s.register(&a1, vec![], vec![]).await.expect("a1 back");
        assert!(s.m.agents[&a1].status.is_connected());
    }
}

#[tokio::test]
async fn recovered_tasks_are_booked_under_their_own_role() {
    let mut s = Scenario::new();
    let info = framework("f", &["a", "b"]);
    let fw = s.subscribe(info.clone()).await.expect("fw");
    let a = s.register("", vec![], vec![]).await.expect("agent");
    let mut s = s.restart();
    s.register(
        &a,
        vec![
            running(&fw, "on-b", "cpus(b):1"),
            running(&fw, "any", "cpus:1"),
        ],
        vec![v1::FrameworkInfo {
            id: fw.clone(),
            ..info
        }],
    )
    .await
    .expect("back");
    assert_eq!(s.m.tasks[&(fw.clone(), "on-b".to_string())].role, "b");
    assert_eq!(s.allocated_cpus("b"), 1.0);
    assert_eq!(s.allocated_cpus("a"), 1.0);
}

/// The master writes the offer's role into each task it launches; after a restart the
/// agent's copy of that `TaskInfo` says where to book the task again, also for unreserved
/// resources of a framework's second role (which the resources alone cannot tell), and a
/// role the framework does not hold is not believed.
#[tokio::test]
async fn the_role_written_at_launch_books_a_recovered_task() {
    let mut s = Scenario::new();
    let info = framework("f", &["a", "b"]);
    let fw = s.subscribe(info.clone()).await.expect("fw");
    let a = s.register("", vec![], vec![]).await.expect("agent");
    let offer = s.offers(&fw).into_iter().next().expect("an offer");
    let launch = v1::Operation {
        operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
            tasks: vec![v1::TaskInfo {
                role: "not-the-offers".into(),
                ..running(&fw, "t", "cpus:1").task.expect("task")
            }],
        })),
    };
    accept(&mut s, &fw, &offer.id, vec![launch])
        .await
        .expect("launched");
    let sent: Vec<v1::TaskInfo> = s
        .agent_commands(&a)
        .into_iter()
        .filter_map(|c| match c {
            v1::agent_command::Command::RunTask(r) => r.task,
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].role, offer.role,
        "the master's role replaces the framework's"
    );

    let with_role = |task: &str, role: &str| v1::RunningTask {
        task: Some(v1::TaskInfo {
            role: role.into(),
            ..running(&fw, task, "cpus:1").task.expect("task")
        }),
        ..running(&fw, task, "cpus:1")
    };
    let mut s = s.restart();
    s.register(
        &a,
        vec![with_role("on-b", "b"), with_role("claims-c", "c")],
        vec![v1::FrameworkInfo {
            id: fw.clone(),
            ..info
        }],
    )
    .await
    .expect("back");
    assert_eq!(s.m.tasks[&(fw.clone(), "on-b".to_string())].role, "b");
    assert_eq!(s.m.tasks[&(fw.clone(), "claims-c".to_string())].role, "a");
    assert_eq!(s.allocated_cpus("b"), 1.0);
    assert_eq!(s.allocated_cpus("a"), 1.0);
    assert_eq!(s.allocated_cpus("c"), 0.0);
}

// ---------------------------------------------------------------------------------
// Executors
// ---------------------------------------------------------------------------------

fn executor_launch(task: &str, executor: &v1::ExecutorInfo) -> v1::Operation {
    v1::Operation {
        operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
            tasks: vec![v1::TaskInfo {
                name: task.into(),
                task_id: task.into(),
                resources: res("cpus:1").to_proto(),
                executor: Some(executor.clone()),
                ..Default::default()
            }],
        })),
    }
}

async fn accept(
    s: &mut Scenario,
    fw: &str,
    offer: &str,
    ops: Vec<v1::Operation>,
) -> Result<(), Error> {
    let request = Box::new(v1::AcceptRequest {
        framework_id: fw.into(),
        offer_ids: vec![offer.into()],
        operations: ops,
        filters: Some(v1::Filters {
            refuse_seconds: Some(0.0),
        }),
    });
    s.call(|reply| Command::Accept { request, reply })
        .await
        .map(|_| ())
}

async fn status(s: &mut Scenario, agent: &str, fw: &str, task: &str, state: TaskState, uuid: &str) {
    s.call(|reply| Command::StatusUpdate {
        request: v1::StatusUpdateRequest {
            agent_id: agent.into(),
            status: Some(v1::TaskStatus {
                task_id: task.into(),
                framework_id: fw.into(),
                agent_id: agent.into(),
                state: state as i32,
                uuid: uuid.into(),
                ..Default::default()
            }),
            latest_state: state as i32,
        },
        reply,
    })
    .await
    .expect("update taken");
}

#[tokio::test]
async fn a_running_executor_is_booked_once_and_freed_only_when_it_exits() {
    let mut s = Scenario::new();
    let fw = s.subscribe(framework("f", &["a"])).await.expect("fw");
    let a = s.register("", vec![], vec![]).await.expect("agent");
    let executor = v1::ExecutorInfo {
        executor_id: "e".into(),
        name: "e".into(),
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Shell("exec my-executor".into())),
            ..Default::default()
        }),
        resources: res("cpus:1").to_proto(),
        ..Default::default()
    };
    let o = s.offers(&fw).remove(0);
    accept(&mut s, &fw, &o.id, vec![executor_launch("t1", &executor)])
        .await
        .expect("first launch");
    assert_eq!(s.allocated_cpus("a"), 2.0, "task 1 + executor");

    // A second ACCEPT on the running executor books only its task.
    let o = s.offers(&fw).remove(0);
    let mut other = executor.clone();
    other.resources = res("cpus:2").to_proto();
    let e = accept(&mut s, &fw, &o.id, vec![executor_launch("t2", &other)])
        .await
        .expect_err("described differently");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(s.m.offers.contains_key(&o.id), "refused: the offer stays");
    accept(&mut s, &fw, &o.id, vec![executor_launch("t2", &executor)])
        .await
        .expect("second launch");
    assert_eq!(s.allocated_cpus("a"), 3.0, "two tasks + the executor once");

    // Its first task ending frees the task's resources, none of the executor's.
    status(&mut s, &a, &fw, "t1", TaskState::Finished, "u1").await;
    assert_eq!(s.allocated_cpus("a"), 2.0);
    status(&mut s, &a, &fw, "t2", TaskState::Finished, "u2").await;
    assert_eq!(s.allocated_cpus("a"), 1.0, "the executor still lives");

    // Rebuilt from re-registration: booked once again, not per task.
    let task = |id: &str| v1::RunningTask {
        task: Some(v1::TaskInfo {
            task_id: id.into(),
            name: id.into(),
            resources: res("cpus:1").to_proto(),
            executor: Some(executor.clone()),
            ..Default::default()
        }),
        framework_id: fw.clone(),
        state: TaskState::Running as i32,
    };
    s.register(&a, vec![task("t3"), task("t4")], vec![])
        .await
        .expect("re-registered");
    assert_eq!(s.allocated_cpus("a"), 3.0, "two tasks + the executor once");

    s.call(|reply| Command::ExecutorExited {
        request: v1::ExecutorExitedRequest {
            agent_id: a.clone(),
            framework_id: fw.clone(),
            executor_id: "e".into(),
            exit_code: Some(0),
        },
        reply,
    })
    .await
    .expect("exited");
    assert_eq!(
        s.allocated_cpus("a"),
        2.0,
        "the executor's resources are free"
    );
    assert!(s.m.executors.is_empty());
}

/// A task that ended while the master was away (a restart, a leader failover): its agent
/// reports it ended when it re-registers and re-sends the terminal update. Until that
/// update reaches the framework, reconciliation must not answer LOST (the framework would
/// give the task up although it finished); afterwards it answers as usual.
#[tokio::test]
async fn a_task_that_ended_while_the_master_was_away_is_not_reported_lost() {
    let mut s = Scenario::new();
    let info = v1::FrameworkInfo {
        failover_timeout_seconds: 3600.0,
        ..framework("f", &["a"])
    };
    let fw = s.subscribe(info.clone()).await.expect("fw");
    let a1 = s.register("", vec![], vec![]).await.expect("a1");

    let mut s = s.restart();
    let mut ended = running(&fw, "t1", "cpus:1");
    ended.state = TaskState::Finished as i32;
    s.register(&a1, vec![ended], vec![info.clone()])
        .await
        .expect("a1 back");
    // The framework is not back yet: the agent's re-sent update is kept back.
    status(&mut s, &a1, &fw, "t1", TaskState::Finished, "u1").await;
    s.subscribe(v1::FrameworkInfo {
        id: fw.clone(),
        ..info.clone()
    })
    .await
    .expect("re-subscribed");
    let answered = s.reconcile(&fw, &[("t1", &a1)]).await;
    assert!(
        answered
            .iter()
            .all(|st| st.state != TaskState::Lost as i32 && st.state != TaskState::Unknown as i32),
        "no LOST for a task whose FINISHED is on its way: {answered:?}"
    );
    // The re-sent update reaches the framework.
    status(&mut s, &a1, &fw, "t1", TaskState::Finished, "u1").await;
    let relayed = s.events(&fw);
    assert!(relayed.iter().any(|e| matches!(
        e,
        v1::event::Event::Update(u) if u.status.as_ref().is_some_and(|st| st.task_id == "t1"
            && st.state == TaskState::Finished as i32)
    )));
}

//! Scenario tests of the pure core: a small simulated cluster (agents that offer their
//! free resources, tasks that start, turn healthy or fail as the test says) and exact
//! checks of what the core launches, kills and reports.

use std::collections::BTreeMap;

use agora_resources::{Attributes, Resources};
use agora_sdk::proto::{Offer, TaskState};
use serde_json::json;

use super::*;
use crate::app::parse_app_value;

const AGENT: &str = "cpus:4;mem:1024;disk:1024;ports:[31000-31099]";

/// A simulated cluster around a core: agents with free resources, the tasks the core
/// launched, and a durable-state mirror the persist effects are applied to.
struct Sim {
    core: Core,
    now: Millis,
    agents: Vec<(String, Resources)>,
    /// task id -> (agent index, resources)
    tasks: BTreeMap<String, (usize, Resources)>,
    apps: BTreeMap<String, AppRecord>,
    instances: BTreeMap<String, Instance>,
    deployments: BTreeMap<String, Deployment>,
    events: Vec<Json>,
    kills: Vec<String>,
    declines: usize,
    revives: usize,
}

fn app(v: serde_json::Value) -> AppDefinition {
    parse_app_value(v, None).expect("valid app")
}

impl Sim {
    fn new(agents: usize) -> Sim {
        Sim {
            core: Core::new("*"),
            now: 1_000_000,
            agents: (0..agents)
                .map(|i| (format!("A{i}"), Resources::parse(AGENT).unwrap()))
                .collect(),
            tasks: BTreeMap::new(),
            apps: BTreeMap::new(),
            instances: BTreeMap::new(),
            deployments: BTreeMap::new(),
            events: Vec::new(),
            kills: Vec::new(),
            declines: 0,
            revives: 0,
        }
    }

    fn apply(&mut self, out: Output) {
        for p in out.persist {
            match p {
                Persist::App(a) => {
                    self.apps.insert(a.def.id.clone(), a);
                }
                Persist::DeleteApp(id) => {
                    self.apps.remove(&id);
                }
                Persist::Instance(i) => {
                    self.instances.insert(i.task_id.clone(), i);
                }
                Persist::DeleteInstance(id) => {
                    self.instances.remove(&id);
                }
                Persist::Deployment(d) => {
                    self.deployments.insert(d.id.clone(), d);
                }
                Persist::DeleteDeployment(id) => {
                    self.deployments.remove(&id);
                }
            }
        }
        for a in out.actions {
            match a {
                Action::Launch {
                    agent_id, tasks, ..
                } => {
                    let ix = self
                        .agents
                        .iter()
                        .position(|(id, _)| *id == agent_id)
                        .unwrap();
                    for t in tasks {
                        let r = Resources::from_proto(&t.resources).unwrap();
                        let free = self.agents[ix]
                            .1
                            .checked_sub(&r)
                            .expect("launch fits the agent");
                        self.agents[ix].1 = free;
                        self.tasks.insert(t.task_id.clone(), (ix, r));
                    }
                }
                Action::Decline { .. } => self.declines += 1,
                Action::Kill { task_id, .. } => self.kills.push(task_id),
                Action::Revive => self.revives += 1,
            }
        }
        self.events.extend(out.events);
    }

    fn offer_all(&mut self) {
        let offers: Vec<OfferIn> = self
            .agents
            .iter()
            .enumerate()
            .map(|(i, (id, free))| {
                let offer = Offer {
                    id: format!("O{}-{i}", self.now),
                    agent_id: id.clone(),
                    hostname: format!("h{i}"),
                    role: "*".into(),
                    resources: free.to_proto(),
                    attributes: Attributes::parse(&format!("rack:r{}", i % 2))
                        .unwrap()
                        .to_proto(),
                    ..Default::default()
                };
                OfferIn::from_proto(&offer).unwrap()
            })
            .collect();
        let out = self.core.offers(offers, self.now);
        self.apply(out);
    }

    fn status(&mut self, task: &str, state: TaskState, healthy: Option<bool>) {
        let agent = self
            .tasks
            .get(task)
            .map(|(ix, _)| self.agents[*ix].0.clone())
            .unwrap_or_default();
        if matches!(transition(Phase::Running, state, false), Step::Gone { .. })
            && let Some((ix, r)) = self.tasks.remove(task)
        {
            self.agents[ix].1 = self.agents[ix].1.checked_add(&r).unwrap();
        }
        let out = self.core.status(
            StatusIn {
                task_id: task.into(),
                agent_id: agent,
                state,
                healthy,
                message: String::new(),
                unknown_to_master: false,
                reason: agora_sdk::proto::StatusReason::Unspecified,
            },
            self.now,
        );
        self.apply(out);
    }

    /// Every launched task of `app` not yet running starts, healthy as given.
    fn start_all(&mut self, app_id: &str, healthy: Option<bool>) {
        let ids: Vec<String> = self
            .core
            .instances_of(app_id)
            .filter(|i| matches!(i.phase, Phase::Launching | Phase::Staging | Phase::Starting))
            .map(|i| i.task_id.clone())
            .collect();
        for t in ids {
            self.status(&t, TaskState::Running, healthy);
        }
    }

    /// The agents carry out every requested kill.
    fn do_kills(&mut self) {
        for t in std::mem::take(&mut self.kills) {
            if self.tasks.contains_key(&t) {
                self.status(&t, TaskState::Killed, None);
            }
        }
    }

    fn tick(&mut self, ms: Millis) {
        self.now += ms;
        let out = self.core.tick(self.now);
        self.apply(out);
    }

    fn running(&self, app_id: &str) -> Vec<&Instance> {
        self.core
            .instances_of(app_id)
            .filter(|i| i.phase == Phase::Running && !i.kill_requested)
            .collect()
    }

    fn event_types(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| e["eventType"].as_str())
            .filter(|t| *t != "status_update_event" && *t != "health_status_changed_event")
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn a_new_app_launches_its_instances_and_its_deployment_succeeds() {
    let mut sim = Sim::new(1);
    let (out, d) = sim
        .core
        .create_app(
            app(
                json!({"id": "/web", "cmd": "serve", "instances": 3, "cpus": 0.5, "mem": 64,
                                "portDefinitions": [{}]}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    assert_eq!(sim.revives, 1, "something waits: offers are revived");
    sim.offer_all();
    assert_eq!(sim.tasks.len(), 3);
    assert_eq!(sim.instances.len(), 3, "launches are persisted");
    sim.start_all("/web", None);
    assert!(sim.core.deployments().is_empty());
    assert_eq!(
        sim.event_types(),
        vec!["deployment_info", "deployment_success"]
    );
    assert_eq!(sim.events[0]["plan"]["id"], d.id.as_str());
    // Ports are distinct.
    let mut ports: Vec<u16> = sim
        .core
        .instances()
        .values()
        .flat_map(|i| i.ports.clone())
        .collect();
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 3);
    // Nothing more launches; the next offers are declined idle.
    sim.offer_all();
    assert_eq!(sim.tasks.len(), 3);
    assert_eq!(sim.declines, 1);
}

#[test]
fn failed_instances_are_replaced_after_a_growing_backoff() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/crash", "cmd": "x", "instances": 1, "cpus": 0.1, "mem": 8,
            "backoffSeconds": 10, "backoffFactor": 2, "maxLaunchDelaySeconds": 30}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    let mut delays = Vec::new();
    for _ in 0..4 {
        sim.offer_all();
        let t = sim
            .core
            .instances_of("/crash")
            .next()
            .unwrap()
            .task_id
            .clone();
        sim.status(&t, TaskState::Running, None);
        sim.status(&t, TaskState::Failed, None);
        let left = sim.core.queue()["/crash"].delay_left_ms(sim.now);
        delays.push(left);
        // While the delay runs, offers are declined.
        sim.offer_all();
        assert_eq!(sim.core.instances_of("/crash").count(), 0);
        sim.tick(left);
    }
    assert_eq!(delays, vec![10_000, 20_000, 30_000, 30_000]);
    sim.offer_all();
    assert_eq!(
        sim.core.instances_of("/crash").count(),
        1,
        "replaced once the delay ended"
    );
}

#[test]
fn backoff_resets_after_a_quiet_maximum_delay_and_on_a_new_config() {
    let mut sim = Sim::new(1);
    let def = app(json!({"id": "/a", "cmd": "x", "cpus": 0.1, "mem": 8,
        "backoffSeconds": 1, "backoffFactor": 3, "maxLaunchDelaySeconds": 100}));
    let (out, _) = sim.core.create_app(def.clone(), sim.now).unwrap();
    sim.apply(out);
    let fail = |sim: &mut Sim| {
        sim.offer_all();
        let t = sim.core.instances_of("/a").next().unwrap().task_id.clone();
        sim.status(&t, TaskState::Failed, None);
        sim.core.queue()["/a"].delay_left_ms(sim.now)
    };
    assert_eq!(fail(&mut sim), 1000);
    sim.tick(1000);
    assert_eq!(fail(&mut sim), 3000);
    sim.tick(103_000);
    assert_eq!(
        fail(&mut sim),
        1000,
        "quiet for maxLaunchDelaySeconds: reset"
    );
    let (out, _) = sim
        .core
        .put_app(
            AppDefinition {
                cmd: Some("y".into()),
                ..def
            },
            sim.now,
            true,
        )
        .unwrap();
    sim.apply(out);
    assert!(
        sim.core
            .queue()
            .get("/a")
            .is_none_or(|q| q.delay_left_ms(sim.now) == 0)
    );
}

#[test]
fn scale_three_six_two_kills_the_youngest() {
    let mut sim = Sim::new(2);
    let def = app(json!({"id": "/s", "cmd": "x", "instances": 3, "cpus": 0.1, "mem": 8}));
    let (out, _) = sim.core.create_app(def.clone(), sim.now).unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/s", None);
    sim.now += 1000;
    let (out, d) = sim
        .core
        .put_app(
            AppDefinition {
                instances: 6,
                ..def.clone()
            },
            sim.now,
            false,
        )
        .unwrap();
    assert_eq!(d.action, DeploymentAction::ScaleApplication);
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/s", None);
    assert_eq!(sim.running("/s").len(), 6);
    let first_three: Vec<String> = {
        let mut v: Vec<&Instance> = sim.running("/s");
        v.sort_by_key(|i| i.staged_at);
        v.iter().take(3).map(|i| i.task_id.clone()).collect()
    };
    sim.now += 1000;
    let (out, _) = sim
        .core
        .put_app(
            AppDefinition {
                instances: 2,
                ..def
            },
            sim.now,
            false,
        )
        .unwrap();
    sim.apply(out);
    assert_eq!(sim.kills.len(), 4);
    assert!(
        !sim.core.deployments().is_empty(),
        "done only when the kills are"
    );
    sim.do_kills();
    let left: Vec<String> = sim
        .running("/s")
        .iter()
        .map(|i| i.task_id.clone())
        .collect();
    assert_eq!(left.len(), 2);
    assert!(
        left.iter().all(|t| first_three.contains(t)),
        "the youngest went first"
    );
    assert!(sim.core.deployments().is_empty());
}

#[test]
fn unique_hostname_leaves_the_fourth_waiting_with_its_reason() {
    let mut sim = Sim::new(3);
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/u", "cmd": "x", "instances": 4, "cpus": 0.1, "mem": 8,
            "constraints": [["hostname", "UNIQUE"]]}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/u", None);
    assert_eq!(sim.running("/u").len(), 3);
    let hosts: std::collections::BTreeSet<&str> =
        sim.running("/u").iter().map(|i| i.host.as_str()).collect();
    assert_eq!(hosts.len(), 3);
    sim.offer_all();
    let q = &sim.core.queue()["/u"];
    assert_eq!(q.wanted, 1);
    let last: Vec<Option<Refusal>> = q.offers.iter().rev().take(3).map(|o| o.refusal).collect();
    assert_eq!(last, vec![Some(Refusal::UnfulfilledConstraint); 3]);
}

#[test]
fn group_by_spreads_over_racks() {
    let mut sim = Sim::new(4);
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/g", "cmd": "x", "instances": 4, "cpus": 0.1, "mem": 8,
            "constraints": [["rack", "GROUP_BY", "2"]]}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    for _ in 0..4 {
        sim.offer_all();
    }
    let mut per_rack: BTreeMap<String, usize> = BTreeMap::new();
    for i in sim.core.instances_of("/g") {
        *per_rack.entry(i.placement["rack"].clone()).or_default() += 1;
    }
    assert_eq!(per_rack.values().copied().collect::<Vec<_>>(), vec![2, 2]);
}

/// Run a rolling upgrade to completion, checking after every step that the ready
/// instances never drop below the floor and the total never exceeds the ceiling.
fn roll(
    sim: &mut Sim,
    app_id: &str,
    min_ready: usize,
    max_total: usize,
    healthy_new: bool,
) -> usize {
    let mut steps = 0;
    while sim.core.deployment_of(app_id).is_some() && steps < 50 {
        steps += 1;
        sim.offer_all();
        let total = sim
            .core
            .instances_of(app_id)
            .filter(|i| !i.kill_requested)
            .count();
        assert!(
            total <= max_total,
            "{total} instances over the ceiling {max_total}"
        );
        sim.start_all(app_id, Some(healthy_new));
        let ready = sim
            .core
            .instances_of(app_id)
            .filter(|i| i.ready(true))
            .count();
        assert!(ready >= min_ready, "only {ready} ready, floor {min_ready}");
        sim.do_kills();
        let ready = sim
            .core
            .instances_of(app_id)
            .filter(|i| i.ready(true))
            .count();
        assert!(
            ready >= min_ready,
            "only {ready} ready after kills, floor {min_ready}"
        );
        sim.tick(100);
    }
    steps
}

fn healthy_app(cmd: &str, mhc: f64, moc: f64) -> AppDefinition {
    app(
        json!({"id": "/r", "cmd": cmd, "instances": 4, "cpus": 0.1, "mem": 8,
        "portDefinitions": [{}],
        "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "path": "/"}],
        "upgradeStrategy": {"minimumHealthCapacity": mhc, "maximumOverCapacity": moc}}),
    )
}

#[test]
fn rolling_upgrade_honours_health_capacity_bounds() {
    for (mhc, moc) in [(1.0, 0.5), (0.5, 0.0), (0.75, 0.25), (0.0, 1.0), (0.5, 1.0)] {
        let mut sim = Sim::new(3);
        let (out, _) = sim
            .core
            .create_app(healthy_app("v1", mhc, moc), sim.now)
            .unwrap();
        sim.apply(out);
        sim.offer_all();
        sim.start_all("/r", Some(true));
        assert!(sim.core.deployments().is_empty());
        sim.now += 1000;
        let (out, _) = sim
            .core
            .put_app(healthy_app("v2", mhc, moc), sim.now, false)
            .unwrap();
        sim.apply(out);
        let floor = (4.0 * mhc).ceil() as usize;
        let ceiling = 4 + (4.0 * moc).floor() as usize;
        let steps = roll(&mut sim, "/r", floor, ceiling, true);
        assert!(
            steps < 50,
            "mhc {mhc} moc {moc}: the deployment never ended"
        );
        let v2 = sim.core.app("/r").unwrap().config_ms;
        let now: Vec<&Instance> = sim.core.instances_of("/r").collect();
        assert_eq!(now.len(), 4);
        assert!(now.iter().all(|i| i.config_ms == v2 && i.ready(true)));
    }
}

#[test]
fn unhealthy_new_version_keeps_the_old_serving_and_cancel_rolls_back() {
    let mut sim = Sim::new(3);
    let (out, _) = sim
        .core
        .create_app(healthy_app("v1", 0.5, 0.5), sim.now)
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/r", Some(true));
    let v1 = sim.core.app("/r").unwrap().config_ms;
    sim.now += 1000;
    let (out, d) = sim
        .core
        .put_app(healthy_app("v2", 0.5, 0.5), sim.now, false)
        .unwrap();
    sim.apply(out);
    for _ in 0..10 {
        sim.offer_all();
        sim.start_all("/r", Some(false));
        sim.do_kills();
        sim.tick(100);
        let ready = sim
            .core
            .instances_of("/r")
            .filter(|i| i.ready(true))
            .count();
        assert!(ready >= 2, "v1 keeps serving at the floor: {ready}");
    }
    assert!(
        sim.core.deployments().contains_key(&d.id),
        "stays in progress"
    );
    // Another change is refused while it runs.
    assert!(matches!(
        sim.core
            .put_app(healthy_app("v3", 0.5, 0.5), sim.now, false),
        Err(CoreError::Conflict { .. })
    ));
    let (out, rollback) = sim.core.cancel_deployment(&d.id, false, sim.now).unwrap();
    sim.apply(out);
    let rollback = rollback.unwrap();
    assert_eq!(sim.core.app("/r").unwrap().def.cmd.as_deref(), Some("v1"));
    assert_eq!(sim.core.app("/r").unwrap().config_ms, v1);
    let steps = roll(&mut sim, "/r", 2, 6, true);
    assert!(steps < 50);
    assert!(!sim.core.deployments().contains_key(&rollback.id));
    let all: Vec<&Instance> = sim.core.instances_of("/r").collect();
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|i| i.config_ms == v1));
    assert!(sim.event_types().contains(&"deployment_failed".to_string()));
}

#[test]
fn force_replaces_a_running_deployment_and_force_cancel_keeps_the_state() {
    let mut sim = Sim::new(1);
    let def = app(json!({"id": "/f", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8}));
    let (out, d1) = sim.core.create_app(def.clone(), sim.now).unwrap();
    sim.apply(out);
    let (out, d2) = sim
        .core
        .put_app(
            AppDefinition {
                instances: 3,
                ..def.clone()
            },
            sim.now,
            true,
        )
        .unwrap();
    sim.apply(out);
    assert!(!sim.core.deployments().contains_key(&d1.id));
    assert!(sim.core.deployments().contains_key(&d2.id));
    let (out, none) = sim.core.cancel_deployment(&d2.id, true, sim.now).unwrap();
    sim.apply(out);
    assert!(none.is_none());
    assert_eq!(sim.core.app("/f").unwrap().def.instances, 3);
    assert!(sim.core.deployments().is_empty());
    assert!(matches!(
        sim.core.cancel_deployment("nope", false, sim.now),
        Err(CoreError::NotFound(_))
    ));
}

#[test]
fn cancelling_a_start_removes_the_app() {
    let mut sim = Sim::new(1);
    let (out, d) = sim
        .core
        .create_app(
            app(
                json!({"id": "/n", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8,
            "healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"}}]}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/n", Some(false));
    let (out, stop) = sim.core.cancel_deployment(&d.id, false, sim.now).unwrap();
    sim.apply(out);
    assert_eq!(stop.unwrap().action, DeploymentAction::StopApplication);
    assert!(sim.core.app("/n").is_none());
    sim.do_kills();
    assert_eq!(sim.core.instances_of("/n").count(), 0);
    assert!(sim.core.deployments().is_empty());
}

#[test]
fn delete_kills_everything_and_ends_when_all_are_gone() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/d", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/d", None);
    let (out, d) = sim.core.delete_app("/d", sim.now, false).unwrap();
    sim.apply(out);
    assert_eq!(d.action, DeploymentAction::StopApplication);
    assert_eq!(sim.kills.len(), 2);
    assert!(sim.apps.is_empty(), "the delete is persisted");
    assert!(!sim.core.deployments().is_empty());
    sim.do_kills();
    assert!(sim.core.deployments().is_empty());
    assert!(sim.instances.is_empty());
    assert!(matches!(
        sim.core.delete_app("/d", sim.now, false),
        Err(CoreError::NotFound(_))
    ));
}

#[test]
fn kill_with_scale_shrinks_the_app_and_without_replaces() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/k", "cmd": "x", "instances": 3, "cpus": 0.1, "mem": 8})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/k", None);
    let ids: Vec<String> = sim
        .core
        .instances_of("/k")
        .map(|i| i.task_id.clone())
        .collect();
    let (out, killed, dep) = sim
        .core
        .kill_tasks(Some("/k"), &ids[..1], false, false, sim.now)
        .unwrap();
    sim.apply(out);
    assert_eq!(killed.len(), 1);
    assert!(dep.is_none());
    sim.do_kills();
    sim.offer_all();
    sim.start_all("/k", None);
    assert_eq!(sim.running("/k").len(), 3, "replaced");
    let ids: Vec<String> = sim
        .running("/k")
        .iter()
        .map(|i| i.task_id.clone())
        .collect();
    let (out, _, dep) = sim
        .core
        .kill_tasks(Some("/k"), &ids[..2], true, false, sim.now)
        .unwrap();
    sim.apply(out);
    assert!(dep.is_some());
    assert_eq!(sim.core.app("/k").unwrap().def.instances, 1);
    sim.do_kills();
    sim.offer_all();
    assert_eq!(sim.running("/k").len(), 1);
    assert!(sim.core.deployments().is_empty());
}

#[test]
fn unknown_running_tasks_are_killed() {
    let mut sim = Sim::new(1);
    let out = sim.core.status(
        StatusIn {
            task_id: "stranger".into(),
            agent_id: "A0".into(),
            state: TaskState::Running,
            healthy: None,
            message: String::new(),
            unknown_to_master: false,
            reason: agora_sdk::proto::StatusReason::Unspecified,
        },
        sim.now,
    );
    assert_eq!(
        out.actions,
        vec![Action::Kill {
            task_id: "stranger".into(),
            agent_id: "A0".into(),
            grace_seconds: None
        }]
    );
}

#[test]
fn unreachable_instances_are_replaced_after_inactive_and_forgotten_after_expunge() {
    let mut sim = Sim::new(2);
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/p", "cmd": "x", "instances": 1, "cpus": 0.1, "mem": 8,
            "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20}}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/p", None);
    let t = sim.core.instances_of("/p").next().unwrap().task_id.clone();
    sim.status(&t, TaskState::Unreachable, None);
    sim.offer_all();
    assert_eq!(
        sim.core.instances_of("/p").count(),
        1,
        "not replaced before inactiveAfter"
    );
    sim.tick(10_000);
    sim.offer_all();
    assert_eq!(
        sim.core.instances_of("/p").count(),
        2,
        "replacement launched"
    );
    sim.tick(10_000);
    assert_eq!(
        sim.core.instances_of("/p").count(),
        1,
        "forgotten after expunge"
    );
    assert!(!sim.core.instances().contains_key(&t));
}

#[test]
fn a_refused_launch_is_retried_without_backoff() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/l", "cmd": "x", "cpus": 0.1, "mem": 8})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    let ids: Vec<String> = sim
        .core
        .instances_of("/l")
        .map(|i| i.task_id.clone())
        .collect();
    let out = sim.core.launch_failed(&ids, sim.now);
    sim.apply(out);
    assert!(sim.instances.is_empty());
    sim.tasks.clear();
    sim.agents[0].1 = Resources::parse(AGENT).unwrap();
    sim.offer_all();
    assert_eq!(sim.core.instances_of("/l").count(), 1);
}

#[test]
fn offers_for_another_role_are_refused_with_the_reason() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/o", "cmd": "x", "cpus": 0.1, "mem": 8, "role": "web"})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    assert_eq!(
        sim.core.queue()["/o"].offers.back().unwrap().refusal,
        Some(Refusal::UnfulfilledRole)
    );
}

#[test]
fn a_recovered_core_adopts_its_instances_without_duplicates() {
    let mut sim = Sim::new(2);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/x", "cmd": "x", "instances": 3, "cpus": 0.1, "mem": 8})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/x", None);
    // A second app mid-deployment.
    let (out, d) = sim
        .core
        .create_app(
            app(json!({"id": "/y", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    // The daemon dies; a new core starts from the durable mirror.
    sim.core = Core::recover(
        "*",
        sim.apps.values().cloned().collect(),
        sim.instances.values().cloned().collect(),
        sim.deployments.values().cloned().collect(),
    );
    assert_eq!(sim.core.known_tasks().len(), 3);
    let out = sim.core.subscribed(sim.now);
    sim.apply(out);
    sim.offer_all();
    assert_eq!(
        sim.core.instances_of("/x").count(),
        3,
        "no duplicates of /x"
    );
    assert_eq!(
        sim.core.instances_of("/y").count(),
        2,
        "the deployment resumed"
    );
    sim.start_all("/y", None);
    assert!(!sim.core.deployments().contains_key(&d.id));
}

#[test]
fn the_core_is_deterministic() {
    let run = || {
        let mut sim = Sim::new(3);
        let (out, _) = sim
            .core
            .create_app(healthy_app("v1", 0.5, 0.5), sim.now)
            .unwrap();
        sim.apply(out);
        sim.offer_all();
        sim.start_all("/r", Some(true));
        let (out, _) = sim
            .core
            .put_app(healthy_app("v2", 0.5, 0.5), sim.now + 5, false)
            .unwrap();
        sim.apply(out);
        roll(&mut sim, "/r", 2, 6, true);
        (sim.events, sim.instances)
    };
    assert_eq!(run(), run());
}

#[test]
fn app_ids_may_not_nest_inside_apps() {
    let mut core = Core::new("*");
    core.create_app(app(json!({"id": "/a/b", "cmd": "x"})), 1)
        .unwrap();
    assert!(matches!(
        core.create_app(app(json!({"id": "/a", "cmd": "x"})), 2),
        Err(CoreError::Conflict { .. })
    ));
    assert!(matches!(
        core.create_app(app(json!({"id": "/a/b/c", "cmd": "x"})), 2),
        Err(CoreError::Conflict { .. })
    ));
    assert!(matches!(
        core.create_app(app(json!({"id": "/a/b", "cmd": "x"})), 2),
        Err(CoreError::Conflict { .. })
    ));
}

// ---- cluster view: autoscaling, draining agents, discovery ------------------------------

use crate::autoscale::Sample;

impl Sim {
    /// A cluster view, one second on, in which every instance of `app_id` used `util` of
    /// its cpus since its last sample (agents `draining` as given).
    fn usage(&mut self, app_id: &str, util: f64, cpus: f64, draining: &[&str]) {
        self.now += 1000;
        let samples: Vec<(String, Sample)> = self
            .core
            .instances_of(app_id)
            .map(|i| {
                let (prev, since) = self
                    .core
                    .samples
                    .get(&i.task_id)
                    .map_or((0, self.now - 1000), |s| (s.cpu_time_ns, s.at_ms));
                let wall_s = (self.now - since) as f64 / 1000.0;
                (
                    i.task_id.clone(),
                    Sample {
                        cpu_time_ns: prev + (util * cpus * wall_s * 1e9) as u64,
                        memory_bytes: 0,
                        memory_limit_bytes: 0,
                        at_ms: self.now,
                    },
                )
            })
            .collect();
        let agents = self
            .agents
            .iter()
            .map(|(id, _)| AgentFacts {
                id: id.clone(),
                hostname: id.to_lowercase(),
                ip: None,
                draining: draining.contains(&id.as_str()),
            })
            .collect();
        let out = self.core.cluster(
            ClusterView {
                agents,
                usage: samples,
            },
            self.now,
        );
        self.apply(out);
    }

    fn events_of(&self, kind: &str) -> Vec<&Json> {
        self.events
            .iter()
            .filter(|e| e["eventType"] == kind)
            .collect()
    }
}

#[test]
fn autoscaling_follows_the_load_within_its_bounds_and_reports_them_once() {
    let mut sim = Sim::new(2);
    let (out, _) = sim
        .core
        .create_app(app(json!({"id": "/hog", "cmd": "x", "instances": 1, "cpus": 0.1, "mem": 8,
            "autoscale": {"min": 1, "max": 3, "metric": "cpu", "target": 0.5, "cooldownSeconds": 5}})), sim.now)
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/hog", None);
    // The first view has no earlier sample: no data, nothing changes.
    sim.usage("/hog", 1.0, 0.1, &[]);
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 1);
    // Hot: 1 x 1.0 / 0.5 = 2, but the app was created less than 5 s ago.
    sim.usage("/hog", 1.0, 0.1, &[]);
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 1);
    assert!(matches!(
        sim.core.autoscale_status("/hog").unwrap().decision,
        Decision::Hold(Hold::Cooldown { .. })
    ));
    sim.now += 5000;
    sim.usage("/hog", 1.0, 0.1, &[]);
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 2);
    assert_eq!(sim.events_of("autoscale_event").len(), 1);
    let e = sim.events_of("autoscale_event")[0];
    assert_eq!((e["from"].as_u64(), e["to"].as_u64()), (Some(1), Some(2)));
    // The scale is a deployment: until it ends, the autoscaler holds.
    sim.usage("/hog", 1.0, 0.1, &[]);
    assert_eq!(
        sim.core.autoscale_status("/hog").unwrap().decision,
        Decision::Hold(Hold::Deploying)
    );
    sim.offer_all();
    sim.start_all("/hog", None);
    assert!(sim.core.deployments().is_empty());
    // Still hot: 2 x 2 = 4, clamped to max 3.
    sim.now += 5000;
    sim.usage("/hog", 1.0, 0.1, &[]);
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 3);
    sim.offer_all();
    sim.start_all("/hog", None);
    // At max and hot: one bound event, however often it is seen.
    for _ in 0..3 {
        sim.now += 5000;
        sim.usage("/hog", 1.0, 0.1, &[]);
    }
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 3);
    let bounds = sim.events_of("autoscale_bound_event");
    assert_eq!(bounds.len(), 1, "{bounds:?}");
    assert_eq!(bounds[0]["bound"], "max");
    assert_eq!(bounds[0]["desired"], 6);
    // Idle: down to min in one step, then the min bound is reported once.
    sim.now += 5000;
    sim.usage("/hog", 0.0, 0.1, &[]);
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 1);
    sim.do_kills();
    assert_eq!(sim.running("/hog").len(), 1);
    for _ in 0..3 {
        sim.now += 5000;
        sim.usage("/hog", 0.0, 0.1, &[]);
    }
    let bounds = sim.events_of("autoscale_bound_event");
    assert_eq!(bounds.len(), 2);
    assert_eq!(bounds[1]["bound"], "min");
    assert_eq!(sim.events_of("autoscale_event").len(), 3);
    // Never outside the bounds.
    for a in sim.events_of("autoscale_event") {
        let to = a["to"].as_u64().unwrap();
        assert!((1..=3).contains(&to), "{a}");
    }
    // Every change was a new version with a ScaleApplication deployment.
    assert_eq!(sim.core.app("/hog").unwrap().def.instances, 1);
}

#[test]
fn instances_on_a_draining_agent_are_replaced_before_the_drain_kills_them() {
    let mut sim = Sim::new(2);
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/d", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8,
            "constraints": [["hostname", "CLUSTER", "h0"]], "backoffSeconds": 60}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/d", None);
    assert_eq!(sim.running("/d").len(), 2);
    // Let the app go anywhere, without a new configuration: a fresh core would, but here
    // the constraint keeps it on A0; use a second app that may run anywhere instead.
    let (out, _) = sim
        .core
        .create_app(
            app(
                json!({"id": "/e", "cmd": "x", "instances": 2, "cpus": 0.1, "mem": 8,
            "backoffSeconds": 60}),
            ),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    // Offer only A0 so both land there.
    let a0 = sim.agents[0].clone();
    let offer = Offer {
        id: "only-a0".into(),
        agent_id: a0.0.clone(),
        hostname: "h0".into(),
        role: "*".into(),
        resources: a0.1.to_proto(),
        ..Default::default()
    };
    let out = sim
        .core
        .offers(vec![OfferIn::from_proto(&offer).unwrap()], sim.now);
    sim.apply(out);
    sim.start_all("/e", None);
    let old: Vec<String> = sim
        .running("/e")
        .iter()
        .map(|i| i.task_id.clone())
        .collect();
    assert_eq!(old.len(), 2);
    assert!(sim.core.instances_of("/e").all(|i| i.agent_id == "A0"));
    // A0 drains: /e's instances stop counting and are replaced on A1 at once, while the
    // old ones still run (nothing is killed by the framework).
    sim.usage("/e", 0.0, 0.1, &["A0"]);
    assert!(sim.kills.is_empty(), "the drain kills them, not us");
    // Only A1 offers now (a drained agent is deactivated).
    sim.agents[0].1 = Resources::parse("cpus:0;mem:0").unwrap();
    sim.offer_all();
    sim.start_all("/e", None);
    let on_a1 = sim
        .core
        .instances_of("/e")
        .filter(|i| i.agent_id == "A1" && i.phase == Phase::Running)
        .count();
    assert_eq!(on_a1, 2, "replacements run before the old ones end");
    assert_eq!(sim.core.instances_of("/e").count(), 4);
    // The drain's kill ends the old ones (KILLED by the master): no backoff, no relaunch.
    for t in &old {
        let out = sim.core.status(
            StatusIn {
                task_id: t.clone(),
                agent_id: "A0".into(),
                state: TaskState::Killed,
                healthy: None,
                message: "drained".into(),
                unknown_to_master: false,
                reason: agora_sdk::proto::StatusReason::KilledByFramework,
            },
            sim.now,
        );
        sim.apply(out);
    }
    assert_eq!(sim.core.instances_of("/e").count(), 2);
    assert_eq!(
        sim.core
            .queue()
            .get("/e")
            .map_or(0, |q| q.delay_left_ms(sim.now)),
        0
    );
    // /d is pinned to h0 by its constraint: its replacements wait, with the reason.
    assert_eq!(sim.core.queue()["/d"].wanted, 2);
}

#[test]
fn blue_green_switches_discovery_in_one_step_and_back_on_cancel() {
    let bg = |cmd: &str| {
        app(
            json!({"id": "/bg", "cmd": cmd, "instances": 3, "cpus": 0.1, "mem": 8,
            "portDefinitions": [{}],
            "healthChecks": [{"protocol": "HTTP", "portIndex": 0, "path": "/"}],
            "upgradeStrategy": {"type": "BLUE_GREEN", "keepOldSeconds": 10}}),
        )
    };
    let mut sim = Sim::new(2);
    let (out, _) = sim.core.create_app(bg("v1"), sim.now).unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/bg", Some(true));
    let v1 = sim.core.app("/bg").unwrap().config_ms;
    let served = |sim: &Sim| -> Vec<Millis> {
        let mut v: Vec<Millis> = sim
            .core
            .discoverable("/bg")
            .iter()
            .map(|i| i.config_ms)
            .collect();
        v.sort();
        v
    };
    assert_eq!(served(&sim), vec![v1; 3]);
    sim.now += 1000;
    let (out, d) = sim.core.put_app(bg("v2"), sim.now, false).unwrap();
    sim.apply(out);
    let v2 = sim.core.app("/bg").unwrap().config_ms;
    // The new version starts at full size beside the old one; discovery stays on v1.
    sim.offer_all();
    assert_eq!(sim.core.instances_of("/bg").count(), 6);
    let new: Vec<String> = sim
        .core
        .instances_of("/bg")
        .filter(|i| i.config_ms == v2)
        .map(|i| i.task_id.clone())
        .collect();
    sim.status(&new[0], TaskState::Running, Some(true));
    sim.status(&new[1], TaskState::Running, Some(true));
    assert_eq!(
        served(&sim),
        vec![v1; 3],
        "two of three new ready: still v1"
    );
    sim.status(&new[2], TaskState::Running, Some(true));
    // All new ready: one step to v2, the old still running (for keepOldSeconds).
    assert_eq!(served(&sim), vec![v2; 3]);
    assert!(sim.core.switched("/bg"));
    assert_eq!(sim.events_of("blue_green_switch_event").len(), 1);
    assert!(sim.kills.is_empty());
    // Cancel within keepOldSeconds: discovery switches back to v1 at once.
    sim.tick(2000);
    let (out, rollback) = sim.core.cancel_deployment(&d.id, false, sim.now).unwrap();
    sim.apply(out);
    assert_eq!(served(&sim), vec![v1; 3]);
    assert_eq!(sim.core.app("/bg").unwrap().config_ms, v1);
    // The v2 instances stop after keepOldSeconds; the rollback then ends.
    sim.tick(5000);
    assert!(sim.kills.is_empty());
    sim.tick(6000);
    assert_eq!(sim.kills.len(), 3);
    sim.do_kills();
    sim.tick(100);
    assert!(!sim.core.deployments().contains_key(&rollback.unwrap().id));
    assert_eq!(sim.core.instances_of("/bg").count(), 3);
    assert_eq!(served(&sim), vec![v1; 3]);
    // A second upgrade that is left alone finishes: v2 at full size, then v1 stops.
    sim.now += 1000;
    let (out, _) = sim.core.put_app(bg("v3"), sim.now, false).unwrap();
    sim.apply(out);
    let v3 = sim.core.app("/bg").unwrap().config_ms;
    sim.offer_all();
    sim.start_all("/bg", Some(true));
    assert_eq!(served(&sim), vec![v3; 3]);
    sim.tick(10_000);
    sim.do_kills();
    sim.tick(100);
    assert!(sim.core.deployments().is_empty());
    assert_eq!(served(&sim), vec![v3; 3]);
    assert_eq!(sim.core.instances_of("/bg").count(), 3);
}

#[test]
fn a_kill_by_someone_else_is_not_a_crash() {
    let mut sim = Sim::new(1);
    let (out, _) = sim
        .core
        .create_app(
            app(json!({"id": "/k", "cmd": "x", "cpus": 0.1, "mem": 8, "backoffSeconds": 30})),
            sim.now,
        )
        .unwrap();
    sim.apply(out);
    sim.offer_all();
    sim.start_all("/k", None);
    let t = sim.running("/k")[0].task_id.clone();
    for (reason, backoff) in [
        (agora_sdk::proto::StatusReason::KilledByOperator, 0),
        (agora_sdk::proto::StatusReason::CommandSignaled, 30_000),
    ] {
        let t = sim
            .core
            .instances_of("/k")
            .next()
            .map_or(t.clone(), |i| i.task_id.clone());
        sim.status(&t, TaskState::Running, None);
        if let Some((ix, r)) = sim.tasks.remove(&t) {
            sim.agents[ix].1 = sim.agents[ix].1.checked_add(&r).unwrap();
        }
        let out = sim.core.status(
            StatusIn {
                task_id: t.clone(),
                agent_id: "A0".into(),
                state: TaskState::Killed,
                healthy: None,
                message: String::new(),
                unknown_to_master: false,
                reason,
            },
            sim.now,
        );
        sim.apply(out);
        assert_eq!(
            sim.core.queue()["/k"].delay_left_ms(sim.now),
            backoff,
            "{reason:?}"
        );
        sim.tick(backoff);
        sim.offer_all();
    }
}

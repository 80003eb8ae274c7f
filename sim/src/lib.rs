//! Deterministic simulation of an Agora cluster: the real master actor (`Master::handle`,
//! `end_batch` and `tick`, on its in-memory registry and a manual clock), simulated
//! agents and frameworks that follow the real protocols, one seeded event loop, and
//! injected faults: lost, duplicated and delayed agent messages, agent crashes (tasks
//! surviving or dying) and restarts from their checkpoint, partitions long enough for the
//! master to mark an agent unreachable, master crashes and restarts from the registry,
//! and framework failovers.
//!
//! After every step the cluster's invariants are checked against the master's state
//! (`check::cluster`); after the run, faults stop, the cluster settles and the end-to-end
//! promises are checked against what agents generated and frameworks received
//! (`check::histories`). A failure carries a one-line reproduction.
//!
//! Determinism: everything the simulation decides comes from one seeded RNG and the
//! manual clock. The master itself keeps some state in hash maps whose iteration order is
//! per-process; a seed therefore replays the same faults and decisions, though the master
//! may break ties differently between processes (documented in docs/reliability.md).
//!
//! This crate holds no product logic: it only drives the master's public actor API.

mod agent;
pub mod check;
mod framework;

use std::collections::VecDeque;
use std::sync::Arc;

use agora_master::actor::{AgentStream, Command, Master, SchedulerCall, Subscription};
use agora_master::clock::ManualClock;
use agora_master::config::MasterConfig;
use agora_master::registry::MemRegistry;
use agora_master::service::Error;
use agora_proto::v1;
use agora_resources::Resources;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

pub use agent::SimAgent;
pub use framework::SimFramework;

/// Simulated time per step.
pub const STEP_MS: u64 = 100;
/// Steps between the master's periodic ticks (its allocation interval, 1 s).
const TICK_STEPS: u64 = 10;
/// Longest the settle phase may take before the run fails as not settled (simulated
/// 20 minutes: longer than every timeout the master applies).
const MAX_SETTLE_STEPS: u64 = 12_000;
/// Steps between checks of the master's state while faults are injected.
const CHECK_STEPS: u64 = 5;
/// Steps the final explicit reconciliation is given to be answered.
const RECONCILE_STEPS: u64 = 20;
/// Resources of each simulated agent.
const AGENT_RESOURCES: &str = "cpus:4;mem:2048";

/// Fault rates, per thousand steps (cluster-wide) or per thousand messages.
#[derive(Debug, Clone)]
pub struct Faults {
    pub drop_per_mille: u32,
    pub duplicate_per_mille: u32,
    pub delay_per_mille: u32,
    pub agent_crash_per_mille: u32,
    pub partition_per_mille: u32,
    pub master_crash_per_mille: u32,
    pub failover_per_mille: u32,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            drop_per_mille: 50,
            duplicate_per_mille: 50,
            delay_per_mille: 100,
            agent_crash_per_mille: 4,
            partition_per_mille: 2,
            master_crash_per_mille: 1,
            failover_per_mille: 3,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Steps with faults (each `STEP_MS` of simulated time), before the settle phase.
    pub steps: u64,
    pub agents: usize,
    pub frameworks: usize,
    pub faults: Faults,
}

impl Config {
    pub fn new(seed: u64) -> Self {
        Config {
            seed,
            steps: 3_000,
            agents: 4,
            frameworks: 3,
            faults: Faults::default(),
        }
    }

    /// The command that replays this run.
    pub fn reproduction(&self) -> String {
        format!(
            "cargo run -p agora-sim -- --seed {} --steps {} --agents {} --frameworks {}",
            self.seed, self.steps, self.agents, self.frameworks
        )
    }
}

/// What one run did.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub steps: u64,
    pub simulated_ms: u64,
    pub tasks_launched: u64,
    pub updates_generated: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    pub messages_delayed: u64,
    pub agent_crashes: u64,
    pub partitions: u64,
    pub master_crashes: u64,
    pub failovers: u64,
}

impl Report {
    pub fn faults(&self) -> u64 {
        self.messages_dropped
            + self.messages_duplicated
            + self.messages_delayed
            + self.agent_crashes
            + self.partitions
            + self.master_crashes
            + self.failovers
    }
}

/// A broken invariant, with where and how to reproduce it.
#[derive(Debug, thiserror::Error)]
#[error("seed {seed}, step {step}: {violation}\n  reproduce: {reproduction}\n  last events:\n    {}", .trace.join("\n    "))]
pub struct Failure {
    pub seed: u64,
    pub step: u64,
    pub violation: String,
    pub reproduction: String,
    /// The last notable events before the failure, oldest first.
    pub trace: Vec<String>,
}

/// Notable events kept for a failure's report.
const TRACE_EVENTS: usize = 30;

/// A message from an agent on its way to the master.
struct InFlight {
    deliver_at: u64,
    agent: usize,
    message: agent::Outgoing,
}

/// A reply to read once the batch is committed.
enum Pending {
    Subscribe(usize, oneshot::Receiver<Result<Subscription, Error>>),
    Register(usize, oneshot::Receiver<Result<AgentStream, Error>>),
    Accept(usize, oneshot::Receiver<Result<v1::AcceptResponse, Error>>),
    Unit(oneshot::Receiver<Result<(), Error>>),
    Refusals(oneshot::Receiver<Result<Vec<v1::batch_response::Refused>, Error>>),
}

struct World {
    config: Config,
    rng: SmallRng,
    clock: ManualClock,
    registry: MemRegistry,
    master: Option<Master>,
    master_up_at: u64,
    agents: Vec<SimAgent>,
    frameworks: Vec<SimFramework>,
    network: VecDeque<InFlight>,
    pending: Vec<Pending>,
    step: u64,
    faults_on: bool,
    report: Report,
    trace: VecDeque<String>,
    /// A violation noticed while the step ran, reported at its end.
    violation: Option<String>,
}

/// Runs one seed: the fault phase, the settle phase, then the end-to-end checks.
pub async fn run(config: Config) -> Result<Report, Failure> {
    let mut world = World::new(config)?;
    for _ in 0..world.config.steps {
        world.step().await?;
    }
    world.settle().await?;
    world.report.steps = world.step;
    world.report.simulated_ms = world.step * STEP_MS;
    world.report.updates_generated = world
        .agents
        .iter()
        .map(|a| a.generated.values().map(Vec::len).sum::<usize>() as u64)
        .sum();
    check::histories(&world.agents, &world.frameworks).map_err(|v| world.failure(v))?;
    Ok(world.report)
}

impl World {
    fn new(config: Config) -> Result<World, Failure> {
        let resources = Resources::parse(AGENT_RESOURCES).map_err(|e| Failure {
            seed: config.seed,
            step: 0,
            violation: format!("agent resources: {e}"),
            reproduction: config.reproduction(),
            trace: Vec::new(),
        })?;
        let agents = (0..config.agents)
            .map(|i| SimAgent::new(i, resources.clone()))
            .collect();
        let frameworks = (0..config.frameworks)
            .map(|i| SimFramework::new(i, i % 2 == 0))
            .collect();
        let mut world = World {
            rng: SmallRng::seed_from_u64(config.seed),
            clock: ManualClock::new(1_000_000),
            registry: MemRegistry::new(),
            master: None,
            master_up_at: 0,
            agents,
            frameworks,
            network: VecDeque::new(),
            pending: Vec::new(),
            step: 0,
            faults_on: true,
            report: Report::default(),
            trace: VecDeque::new(),
            violation: None,
            config,
        };
        world.start_master()?;
        Ok(world)
    }

    fn failure(&self, violation: String) -> Failure {
        Failure {
            seed: self.config.seed,
            step: self.step,
            violation,
            reproduction: self.config.reproduction(),
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn note(&mut self, event: String) {
        if self.trace.len() == TRACE_EVENTS {
            self.trace.pop_front();
        }
        self.trace.push_back(format!("step {}: {event}", self.step));
    }

    fn master_config(&self) -> MasterConfig {
        MasterConfig {
            allocator_seed: self.config.seed,
            ..MasterConfig::default()
        }
    }

    fn start_master(&mut self) -> Result<(), Failure> {
        let created = Master::new(
            self.master_config(),
            Arc::new(self.clock.clone()),
            Box::new(self.registry.clone()),
            self.registry.state(),
        );
        match created {
            Ok((master, _handle, _rx)) => {
                self.master = Some(master);
                Ok(())
            }
            Err(e) => {
                Err(self.failure(format!("the master does not start from its registry: {e}")))
            }
        }
    }

    fn chance(&mut self, per_mille: u32) -> bool {
        self.faults_on && self.rng.random_range(0..1000) < per_mille
    }

    /// One step: faults, agents, network, frameworks, the master's batch, checks.
    async fn step(&mut self) -> Result<(), Failure> {
        self.step += 1;
        let step = self.step;
        self.inject_faults();
        if self.master.is_none() && step >= self.master_up_at {
            self.start_master()?;
            self.note("master restarted from its registry".to_string());
        }
        self.run_agents();
        self.deliver_network();
        self.run_frameworks();
        self.end_batch().await?;
        if step.is_multiple_of(TICK_STEPS)
            && let Some(m) = self.master.as_mut()
        {
            m.tick();
            self.end_batch().await?;
        }
        self.clock.advance_ms(STEP_MS);
        if let Some(v) = self.violation.take() {
            return Err(self.failure(v));
        }
        // The master's whole state each simulated second: a step-by-step check costs more
        // than the rest of the simulation together.
        if step.is_multiple_of(CHECK_STEPS) {
            self.check_cluster().await?;
        }
        Ok(())
    }

    fn inject_faults(&mut self) {
        let step = self.step;
        if self.chance(self.config.faults.master_crash_per_mille) && self.master.is_some() {
            // Everything the master held in memory is gone; the registry stays.
            self.master = None;
            self.pending.clear();
            self.network.clear();
            self.master_up_at = step + self.rng.random_range(5..50);
            self.report.master_crashes += 1;
            self.note(format!(
                "master crashed, back at step {}",
                self.master_up_at
            ));
        }
        if self.chance(self.config.faults.agent_crash_per_mille) && !self.agents.is_empty() {
            let i = self.rng.random_range(0..self.agents.len());
            if self.agents[i].is_up() {
                let until = step + self.rng.random_range(5..100);
                let kill = self.rng.random_bool(0.3);
                if let Some(closed) = self.agents[i].crash(until, kill, step) {
                    self.send_now(i, closed);
                }
                self.report.agent_crashes += 1;
                let name = self.agents[i].hostname.clone();
                self.note(format!(
                    "{name} crashed until step {until} (tasks killed: {kill})"
                ));
            }
        }
        if self.chance(self.config.faults.partition_per_mille) && !self.agents.is_empty() {
            let i = self.rng.random_range(0..self.agents.len());
            if self.agents[i].is_up() {
                // Up to two minutes: long enough, sometimes, for the master to give up.
                let until = step + self.rng.random_range(50..1_200);
                self.agents[i].life = agent::Life::Partitioned { until };
                self.report.partitions += 1;
                let name = self.agents[i].hostname.clone();
                self.note(format!("{name} partitioned until step {until}"));
            }
        }
        if self.chance(self.config.faults.failover_per_mille) && !self.frameworks.is_empty() {
            let i = self.rng.random_range(0..self.frameworks.len());
            if self.frameworks[i].life == framework::Life::Up {
                let until = step + self.rng.random_range(5..100);
                if let Some(call) = self.frameworks[i].fail_over(until) {
                    self.call(i, call);
                }
                self.report.failovers += 1;
                let name = self.frameworks[i].name.clone();
                self.note(format!("{name} failing over until step {until}"));
            }
        }
    }

    fn run_agents(&mut self) {
        let step = self.step;
        for i in 0..self.agents.len() {
            let recovered = match self.agents[i].life {
                agent::Life::Crashed { until } | agent::Life::Partitioned { until }
                    if until <= step =>
                {
                    Some(self.agents[i].recover(step))
                }
                _ => None,
            };
            if let Some(Some(closed)) = recovered {
                self.send_now(i, closed);
            }
            if !self.agents[i].is_up() {
                continue;
            }
            self.agents[i].read_commands(step, &mut self.rng);
            if !self.agents[i].is_up() {
                continue;
            }
            self.agents[i].run_tasks(step);
            if self.agents[i].stream.is_none() {
                if !self.agents[i].registering
                    && self.agents[i].register_at <= step
                    && self.master.is_some()
                {
                    let request = self.agents[i].registration();
                    self.agents[i].registering = true;
                    self.send_now(i, agent::Outgoing::Register(request));
                }
                continue;
            }
            for message in self.agents[i].outgoing(step) {
                self.send_faulty(i, message);
            }
        }
    }

    /// Through the faulty network: lost, duplicated or delayed.
    fn send_faulty(&mut self, agent: usize, message: agent::Outgoing) {
        let drop = self.chance(self.config.faults.drop_per_mille);
        if drop {
            self.report.messages_dropped += 1;
            return;
        }
        let mut deliver_at = self.step;
        if self.chance(self.config.faults.delay_per_mille) {
            deliver_at += self.rng.random_range(1..30);
            self.report.messages_delayed += 1;
        }
        if self.chance(self.config.faults.duplicate_per_mille)
            && let agent::Outgoing::Updates { agent_id, updates } = &message
        {
            let copy_at = self.step + self.rng.random_range(0..30);
            self.network.push_back(InFlight {
                deliver_at: copy_at,
                agent,
                message: agent::Outgoing::Updates {
                    agent_id: agent_id.clone(),
                    updates: updates.clone(),
                },
            });
            self.report.messages_duplicated += 1;
        }
        self.network.push_back(InFlight {
            deliver_at,
            agent,
            message,
        });
    }

    /// On the connection itself (registration, the stream closing): never lost.
    fn send_now(&mut self, agent: usize, message: agent::Outgoing) {
        self.deliver(agent, message);
    }

    fn deliver_network(&mut self) {
        let step = self.step;
        let mut later = VecDeque::new();
        while let Some(m) = self.network.pop_front() {
            if m.deliver_at <= step {
                self.deliver(m.agent, m.message);
            } else {
                later.push_back(m);
            }
        }
        self.network = later;
    }

    fn deliver(&mut self, agent: usize, message: agent::Outgoing) {
        let Some(master) = self.master.as_mut() else {
            if let agent::Outgoing::Register(_) = message {
                self.agents[agent].registering = false;
            }
            return;
        };
        match message {
            agent::Outgoing::Register(request) => {
                let (reply, rx) = oneshot::channel();
                master.handle(Command::RegisterAgent { request, reply });
                self.pending.push(Pending::Register(agent, rx));
            }
            agent::Outgoing::Updates { agent_id, updates } => {
                let (reply, rx) = oneshot::channel();
                master.handle(Command::StatusUpdates {
                    agent_id,
                    updates,
                    reply,
                });
                self.pending.push(Pending::Refusals(rx));
            }
            agent::Outgoing::Heartbeat(agent_id) => {
                let (reply, rx) = oneshot::channel();
                master.handle(Command::AgentHeartbeat { agent_id, reply });
                self.pending.push(Pending::Unit(rx));
            }
            agent::Outgoing::StreamClosed { agent_id, epoch } => {
                master.handle(Command::AgentStreamClosed { agent_id, epoch });
            }
        }
    }

    fn run_frameworks(&mut self) {
        let step = self.step;
        for i in 0..self.frameworks.len() {
            if let framework::Life::FailingOver { until } = self.frameworks[i].life {
                if until > step {
                    continue;
                }
                self.frameworks[i].life = framework::Life::Up;
                self.frameworks[i].subscribe_at = step;
            }
            let (calls, _ended) = self.frameworks[i].read_events(step, &mut self.rng);
            if let Some(v) = self.frameworks[i].out_of_order.take() {
                self.violation = Some(v);
            }
            for call in calls {
                self.call(i, call);
            }
            let fw = &self.frameworks[i];
            if fw.sub.is_none()
                && !fw.subscribing
                && fw.subscribe_at <= step
                && self.master.is_some()
            {
                let call = fw.subscribe();
                self.frameworks[i].subscribing = true;
                self.call(i, call);
            }
        }
    }

    fn call(&mut self, fw: usize, call: framework::Call) {
        let Some(master) = self.master.as_mut() else {
            if let framework::Call::Subscribe(_) = call {
                self.frameworks[fw].subscribing = false;
            }
            return;
        };
        let unit = |master: &mut Master, call: SchedulerCall| {
            let (reply, rx) = oneshot::channel();
            master.handle(Command::Scheduler { call, reply });
            Pending::Unit(rx)
        };
        let pending = match call {
            framework::Call::Subscribe(request) => {
                let (reply, rx) = oneshot::channel();
                master.handle(Command::Subscribe {
                    request: *request,
                    reply,
                });
                Pending::Subscribe(fw, rx)
            }
            framework::Call::Accept(request) => {
                let (reply, rx) = oneshot::channel();
                master.handle(Command::Accept {
                    request: Box::new(request),
                    reply,
                });
                Pending::Accept(fw, rx)
            }
            framework::Call::Decline(r) => unit(master, SchedulerCall::Decline(r)),
            framework::Call::Acknowledge(r) => unit(master, SchedulerCall::Acknowledge(r)),
            framework::Call::Kill(r) => unit(master, SchedulerCall::Kill(r)),
            framework::Call::Reconcile(r) => unit(master, SchedulerCall::Reconcile(r)),
            framework::Call::StreamClosed {
                framework_id,
                epoch,
            } => {
                master.handle(Command::FrameworkStreamClosed {
                    framework_id,
                    epoch,
                });
                return;
            }
        };
        self.pending.push(pending);
    }

    /// Commits the master's batch (allocating if due) and reads every reply it released.
    async fn end_batch(&mut self) -> Result<(), Failure> {
        let Some(master) = self.master.as_mut() else {
            return Ok(());
        };
        if let Err(e) = master.end_batch().await {
            return Err(self.failure(format!("the in-memory registry refused a write: {e}")));
        }
        for pending in std::mem::take(&mut self.pending) {
            self.read_reply(pending)?;
        }
        Ok(())
    }

    fn read_reply(&mut self, pending: Pending) -> Result<(), Failure> {
        fn answered<T>(
            rx: &mut oneshot::Receiver<Result<T, Error>>,
        ) -> Result<Result<T, Error>, String> {
            rx.try_recv()
                .map_err(|e| format!("a call was not answered after its batch committed: {e}"))
        }
        match pending {
            Pending::Subscribe(i, mut rx) => {
                let answer = answered(&mut rx).map_err(|v| self.failure(v))?;
                let outcome = match &answer {
                    Ok(s) => format!("subscribed as {}", s.framework_id),
                    Err(e) => format!("subscription refused: {}", e.message()),
                };
                let name = self.frameworks[i].name.clone();
                self.note(format!("{name} {outcome}"));
                let fw = &mut self.frameworks[i];
                fw.subscribing = false;
                match answer {
                    Ok(sub) => {
                        fw.id = Some(sub.framework_id.clone());
                        fw.sub = Some(sub);
                    }
                    Err(_) => fw.subscribe_at = self.step + 10,
                }
            }
            Pending::Register(i, mut rx) => {
                let answer = answered(&mut rx).map_err(|v| self.failure(v))?;
                let outcome = match &answer {
                    Ok(s) => format!("registered as {}", s.agent_id),
                    Err(e) => format!("registration refused: {}", e.message()),
                };
                let tasks = self.agents[i].tasks.len();
                let name = self.agents[i].hostname.clone();
                self.note(format!("{name} ({tasks} tasks) {outcome}"));
                let agent = &mut self.agents[i];
                agent.registering = false;
                match answer {
                    Ok(stream) => {
                        agent.id = Some(stream.agent_id.clone());
                        agent.stream = Some(stream);
                        // Everything unacknowledged goes again on the new connection.
                        let keys: Vec<_> = agent.updates.keys().cloned().collect();
                        for key in keys {
                            agent.resend_at.insert(key, self.step);
                        }
                    }
                    Err(_) => agent.register_at = self.step + 10,
                }
            }
            Pending::Accept(i, mut rx) => {
                let answer = answered(&mut rx).map_err(|v| self.failure(v))?;
                if let Ok(r) = answer {
                    self.report.tasks_launched += r.launched_task_ids.len() as u64;
                    self.frameworks[i].launched.extend(r.launched_task_ids);
                }
            }
            // A refusal is not a violation: the agent re-sends, the framework carries on.
            Pending::Unit(mut rx) => {
                let _refused = answered(&mut rx).map_err(|v| self.failure(v))?;
            }
            Pending::Refusals(mut rx) => {
                let answer = answered(&mut rx).map_err(|v| self.failure(v))?;
                match answer {
                    Ok(refused) => {
                        if let Some(r) = refused.first() {
                            self.note(format!(
                                "{} status updates refused, e.g. {}",
                                refused.len(),
                                r.message
                            ));
                        }
                    }
                    Err(e) => self.note(format!("status updates refused: {}", e.message())),
                }
            }
        }
        Ok(())
    }

    async fn check_cluster(&mut self) -> Result<(), Failure> {
        let Some(master) = self.master.as_mut() else {
            return Ok(());
        };
        let (reply, mut rx) = oneshot::channel();
        master.handle(Command::State { reply });
        if let Err(e) = master.commit().await {
            return Err(self.failure(format!("commit: {e}")));
        }
        let state = rx
            .try_recv()
            .map_err(|e| self.failure(format!("the state query was not answered: {e}")))?;
        check::cluster(&state).map_err(|v| self.failure(v))
    }

    /// Faults stop, everything heals, frameworks stop launching; steps run until every
    /// task has ended and every update is acknowledged.
    async fn settle(&mut self) -> Result<(), Failure> {
        self.faults_on = false;
        for fw in &mut self.frameworks {
            fw.quiet = true;
        }
        let start = self.step;
        loop {
            self.step().await?;
            let agents_done = self
                .agents
                .iter()
                .filter(|a| a.life != agent::Life::Removed)
                .all(|a| a.stream.is_some() && a.active_tasks() == 0 && a.unacknowledged() == 0);
            let frameworks_done = self.frameworks.iter().all(|f| f.sub.is_some());
            if agents_done && frameworks_done && self.network.is_empty() {
                // A framework's last word: ask about every task it has not seen end, and
                // give the answers time to arrive.
                for i in 0..self.frameworks.len() {
                    if let Some(call) = self.frameworks[i].reconcile(true) {
                        self.call(i, call);
                    }
                }
                for _ in 0..RECONCILE_STEPS {
                    self.step().await?;
                }
                return Ok(());
            }
            if self.step - start > MAX_SETTLE_STEPS {
                let detail: Vec<String> = self
                    .agents
                    .iter()
                    .map(|a| {
                        format!(
                            "{} ({:?}, connected {}): {} active tasks, {} unacknowledged updates",
                            a.hostname,
                            a.life,
                            a.stream.is_some(),
                            a.active_tasks(),
                            a.unacknowledged()
                        )
                    })
                    .collect();
                let stuck: Vec<String> = self
                    .agents
                    .iter()
                    .flat_map(|a| a.updates.iter().map(move |(k, q)| (a, k, q)))
                    .take(3)
                    .map(|(a, (fw, task), queue)| {
                        let heard = self
                            .frameworks
                            .iter()
                            .find(|f| f.id.as_deref() == Some(fw.as_str()))
                            .and_then(|f| f.received.get(task))
                            .map(|r| {
                                r.iter()
                                    .map(|u| format!("{:?}", u.state))
                                    .collect::<Vec<_>>()
                            });
                        format!(
                            "{} task {task}: waiting {:?}, its framework heard {heard:?}",
                            a.hostname,
                            queue
                                .iter()
                                .map(|s| (s.state(), s.uuid.clone()))
                                .collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                return Err(self.failure(format!(
                    "the cluster did not settle within {MAX_SETTLE_STEPS} steps after the faults stopped: {}; for example {}",
                    detail.join("; "),
                    stuck.join("; ")
                )));
            }
        }
    }
}

//! Chaos on real processes across hosts: a real `agora-master` and real `agora-agent`s,
//! each agent in its own network namespace joined to the master's by a bridge, under the
//! load of a real framework (the scheduler SDK over gRPC), while seeded faults hit them:
//! partitions (an agent's bridge port goes down, then up), `kill -9` of the master and of
//! agents and their restart, a full work directory (each agent's is a small tmpfs), and
//! clock steps (every incarnation runs in a time namespace of its own whose monotonic and
//! boot clocks jump by a seeded offset; see docs/reliability.md for why not wall time).
//!
//! During the run, the master's state is checked every second for resources booked twice
//! (`agora_sim::check::cluster`). Then faults stop, everything heals, launches stop, the
//! cluster settles and `check` compares the master's state, each agent's checkpoint and
//! every update the framework received.
//!
//! The binary (`agora-chaos`) sets up the hosts as root and re-executes itself inside the
//! master's namespace (`inner`), where the harness can reach every process.

pub mod check;
pub mod load;
pub mod net;
pub mod procs;

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agora_proto::v1;
use agora_proto::v1::operator_client::OperatorClient;
use anyhow::Context;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::load::{Load, Shared, lock};
use crate::net::{MASTER_IP, MASTER_PORT, Names};
use crate::procs::Proc;

/// Resources of each agent: room for 20 of the framework's tasks.
pub const AGENT_RESOURCES: &str = "cpus:2;mem:512;disk:32;ports:[31000-31009]";
/// Live tasks the framework keeps per agent while launching.
const LIVE_TASKS_PER_AGENT: usize = 4;
/// Longest the cluster may take to settle once faults stop.
const SETTLE: Duration = Duration::from_secs(150);
/// Largest clock step of a restarted process (30 days).
const MAX_CLOCK_STEP_S: u64 = 30 * 86_400;
/// A heartbeat each second, four missed: an agent cut off for more than about 4 s is
/// marked unreachable, so partitions of a few seconds take both paths.
const MASTER_FLAGS: &[&str] = &[
    "--allocation-interval-ms",
    "200",
    "--agent-heartbeat-seconds",
    "1",
    "--agent-max-missed-heartbeats",
    "4",
    "--agent-reregistration-timeout-seconds",
    "20",
    "--framework-heartbeat-seconds",
    "2",
];

#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// Seconds of faults under load.
    pub seconds: u64,
    pub agents: usize,
    /// Where agora-master and agora-agent are.
    pub bin_dir: PathBuf,
    /// The run's directory (logs, master data, the agents' tmpfs mount points).
    pub dir: PathBuf,
    /// The run's name (namespaces are named after it).
    pub run: String,
}

/// Faults injected, by kind.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    pub partitions: u64,
    pub agent_kills: u64,
    pub master_kills: u64,
    pub full_disks: u64,
    pub clock_steps: u64,
}

impl Faults {
    pub fn total(&self) -> u64 {
        self.partitions + self.agent_kills + self.master_kills + self.full_disks
    }
}

/// What a run did and found.
#[derive(Debug, Default)]
pub struct Report {
    pub seed: u64,
    pub seconds: u64,
    pub faults: Faults,
    pub tasks_launched: usize,
    pub tasks_uncertain: usize,
    pub updates_received: usize,
    /// Tasks by the last state the framework heard.
    pub ended: std::collections::BTreeMap<String, usize>,
    pub settle_seconds: f64,
    pub violations: Vec<String>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fa = &self.faults;
        writeln!(f, "seed: {}", self.seed)?;
        writeln!(f, "fault seconds: {}", self.seconds)?;
        writeln!(
            f,
            "faults injected: {} ({} partitions, {} agent kills, {} master kills, {} full disks; {} clock steps with the restarts)",
            fa.total(),
            fa.partitions,
            fa.agent_kills,
            fa.master_kills,
            fa.full_disks,
            fa.clock_steps
        )?;
        writeln!(f, "tasks launched: {}", self.tasks_launched)?;
        writeln!(
            f,
            "launches without an answer (reconciled): {}",
            self.tasks_uncertain
        )?;
        writeln!(f, "updates received: {}", self.updates_received)?;
        let ended: Vec<String> = self.ended.iter().map(|(s, n)| format!("{s} {n}")).collect();
        writeln!(f, "tasks by last state: {}", ended.join(", "))?;
        writeln!(f, "settled in: {:.1} s", self.settle_seconds)?;
        writeln!(f, "violations: {}", self.violations.len())?;
        for v in &self.violations {
            writeln!(f, "  {v}")?;
        }
        Ok(())
    }
}

/// A fault in progress, undone at `until`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Active {
    None,
    Partitioned { until: Instant },
    Down { until: Instant },
    DiskFull { until: Instant },
}

struct Cluster {
    config: Config,
    names: Names,
    master: Proc,
    master_back: Option<Instant>,
    agents: Vec<Proc>,
    active: Vec<Active>,
    rng: SmallRng,
    faults: Faults,
    log: std::fs::File,
    started: Instant,
}

fn master_uri() -> String {
    format!("http://{MASTER_IP}:{MASTER_PORT}")
}

impl Cluster {
    fn note(&mut self, what: &str) {
        let at = self.started.elapsed().as_secs_f64();
        let _ = writeln!(self.log, "{at:8.2}s {what}");
    }

    fn clock_step(&mut self) -> u64 {
        self.faults.clock_steps += 1;
        self.rng.random_range(0..MAX_CLOCK_STEP_S)
    }

    fn work_dir(&self, i: usize) -> PathBuf {
        net::agent_work_dir(&self.config.dir, i)
    }

    fn fill_path(&self, i: usize) -> PathBuf {
        self.work_dir(i).join("chaos-fill")
    }

    /// One new fault, chosen by the seed among those that can happen now.
    fn inject(&mut self, now: Instant) -> anyhow::Result<()> {
        let i = self.rng.random_range(0..self.agents.len());
        let kind = self.rng.random_range(0..10);
        if kind == 0 {
            if self.master_back.is_none() {
                self.master.kill9();
                let back = now + Duration::from_millis(self.rng.random_range(300..3_000));
                self.master_back = Some(back);
                self.faults.master_kills += 1;
                self.note("kill -9 master");
            }
            return Ok(());
        }
        if self.active[i] != Active::None {
            return Ok(());
        }
        let name = self.agents[i].name.clone();
        match kind {
            1..=3 => {
                let secs = self.rng.random_range(1_000..10_000);
                net::set_partitioned(&self.names, i, true)?;
                self.active[i] = Active::Partitioned {
                    until: now + Duration::from_millis(secs),
                };
                self.faults.partitions += 1;
                self.note(&format!("partition {name} for {secs} ms"));
            }
            4..=6 => {
                self.agents[i].kill9();
                let ms = self.rng.random_range(300..3_000);
                self.active[i] = Active::Down {
                    until: now + Duration::from_millis(ms),
                };
                self.faults.agent_kills += 1;
                self.note(&format!("kill -9 {name}, back in {ms} ms"));
            }
            _ => {
                let ms = self.rng.random_range(2_000..8_000);
                let written = fill(&self.fill_path(i));
                self.active[i] = Active::DiskFull {
                    until: now + Duration::from_millis(ms),
                };
                self.faults.full_disks += 1;
                self.note(&format!(
                    "fill {name}'s work directory ({written} bytes) for {ms} ms"
                ));
            }
        }
        Ok(())
    }

    /// Undoes the faults that are due (all of them with `all`).
    fn heal(&mut self, now: Instant, all: bool) -> anyhow::Result<()> {
        if let Some(back) = self.master_back
            && (all || back <= now)
        {
            let step = self.clock_step();
            self.master.start(step)?;
            self.master_back = None;
            self.note(&format!("master restarted, clocks +{step} s"));
        }
        for i in 0..self.agents.len() {
            let due = |until: Instant| all || until <= now;
            let name = self.agents[i].name.clone();
            match self.active[i] {
                Active::None => {}
                Active::Partitioned { until } if due(until) => {
                    net::set_partitioned(&self.names, i, false)?;
                    self.active[i] = Active::None;
                    self.note(&format!("heal {name}"));
                }
                Active::Down { until } if due(until) => {
                    let step = self.clock_step();
                    self.agents[i].start(step)?;
                    self.active[i] = Active::None;
                    self.note(&format!("{name} restarted, clocks +{step} s"));
                }
                Active::DiskFull { until } if due(until) => {
                    let _ = std::fs::remove_file(self.fill_path(i));
                    self.active[i] = Active::None;
                    self.note(&format!("{name}'s work directory has room again"));
                }
                _ => {}
            }
        }
        // A process that died by itself (none should) is restarted and reported.
        if self.master_back.is_none() && !self.master.is_running() {
            self.note("the master exited by itself; restarting it");
            self.master.start(0)?;
        }
        for i in 0..self.agents.len() {
            if !matches!(self.active[i], Active::Down { .. }) && !self.agents[i].is_running() {
                let name = self.agents[i].name.clone();
                self.note(&format!("{name} exited by itself; restarting it"));
                self.agents[i].start(0)?;
            }
        }
        Ok(())
    }
}

/// Writes zeros to `path` until the file system is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::create(path) else {
        return 0;
    };
    let block = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    let _ = f.sync_all();
    written
}

/// The master's whole state, if it answers within a second or two.
async fn master_state() -> Option<v1::ClusterState> {
    let endpoint = tonic::transport::Endpoint::from_shared(master_uri())
        .ok()?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(2));
    let channel = endpoint.connect().await.ok()?;
    OperatorClient::new(channel)
        .get_state(v1::Empty {})
        .await
        .ok()
        .map(|r| r.into_inner())
}

/// Runs the harness inside the master's network namespace: start, load, faults, settle,
/// checks.
pub async fn run_inner(config: Config) -> anyhow::Result<Report> {
    let names = Names::new(&config.run, config.agents);
    let bin = |name: &str| -> anyhow::Result<PathBuf> {
        let p = config.bin_dir.join(name);
        anyhow::ensure!(
            p.exists(),
            "{} is missing: build it first (cargo build -p agora-master -p agora-agent --bins)",
            p.display()
        );
        Ok(p)
    };
    let mut master_args = vec![
        "--listen".to_string(),
        format!("{MASTER_IP}:{MASTER_PORT}"),
        "--data-dir".to_string(),
        config.dir.join("master").display().to_string(),
        "--allocator-seed".to_string(),
        config.seed.to_string(),
    ];
    master_args.extend(MASTER_FLAGS.iter().map(|s| s.to_string()));
    let master = Proc::new(
        "master",
        &names.master_ns(),
        &bin("agora-master")?,
        master_args,
        config.dir.join("master.log"),
    );
    let agent_bin = bin("agora-agent")?;
    let agents = (0..config.agents)
        .map(|i| {
            let args = vec![
                "--master".to_string(),
                format!("{MASTER_IP}:{MASTER_PORT}"),
                "--work-dir".to_string(),
                net::agent_work_dir(&config.dir, i).display().to_string(),
                "--resources".to_string(),
                AGENT_RESOURCES.to_string(),
                "--hostname".to_string(),
                format!("chaos-agent-{i}"),
                "--isolation".to_string(),
                "process".to_string(),
                "--usage-interval".to_string(),
                "0".to_string(),
            ];
            Proc::new(
                &format!("agent-{i}"),
                &names.agent_ns(i),
                &agent_bin,
                args,
                config.dir.join(format!("agent-{i}.log")),
            )
        })
        .collect();
    let log = std::fs::File::create(config.dir.join("faults.log")).context("faults.log")?;
    let mut cluster = Cluster {
        names,
        master,
        master_back: None,
        agents,
        active: vec![Active::None; config.agents],
        rng: SmallRng::seed_from_u64(config.seed),
        faults: Faults::default(),
        log,
        started: Instant::now(),
        config: config.clone(),
    };
    cluster.master.start(0)?;
    for a in &mut cluster.agents {
        a.start(0)?;
    }
    let up = Instant::now() + Duration::from_secs(30);
    while master_state().await.is_none() {
        anyhow::ensure!(
            Instant::now() < up,
            "the master did not answer within 30 s:\n{}",
            cluster.master.log_tail(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let seen: Shared = Default::default();
    lock(&seen).launching = true;
    let scheduler = Load::new(
        seen.clone(),
        config.seed,
        LIVE_TASKS_PER_AGENT * config.agents,
    )?;
    let driver = agora_sdk::Driver::new(agora_sdk::DriverConfig::new(vec![master_uri()]));
    let framework = tokio::spawn(driver.clone().run(Load::framework_info(), scheduler));

    let mut report = Report {
        seed: config.seed,
        seconds: config.seconds,
        ..Default::default()
    };
    // Faults under load, the master's state checked every second.
    let end = Instant::now() + Duration::from_secs(config.seconds);
    let mut next_fault = Instant::now() + Duration::from_secs(3);
    let mut next_check = Instant::now();
    while Instant::now() < end {
        let now = Instant::now();
        cluster.heal(now, false)?;
        if now >= next_fault {
            cluster.inject(now)?;
            next_fault = now + Duration::from_millis(cluster.rng.random_range(500..2_500));
        }
        if now >= next_check {
            next_check = now + Duration::from_secs(1);
            if let Some(state) = master_state().await
                && let Err(v) = agora_sim::check::cluster(&state)
            {
                report
                    .violations
                    .push(format!("during the run, master state: {v}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Settle: everything heals, launches stop, every task ends and every update is
    // acknowledged.
    cluster.note("faults stop");
    cluster.heal(Instant::now(), true)?;
    lock(&seen).launching = false;
    let settle_start = Instant::now();
    let mut last_reconcile = Instant::now();
    let settled = loop {
        let checkpoints: Vec<check::AgentCheckpoint> = (0..config.agents)
            .map(|i| check::read_checkpoint(&format!("agent-{i}"), &cluster.work_dir(i)))
            .collect();
        let state = master_state().await;
        let quiet_agents = checkpoints
            .iter()
            .all(|c| c.pending_updates == 0 && c.task_records == 0);
        let quiet_master = state.as_ref().is_some_and(|s| {
            s.tasks.iter().all(|t| t.state().is_terminal())
                && s.agents.iter().filter(|a| a.status == "registered").count() >= config.agents
        });
        let (live, to_reconcile) = {
            let s = lock(&seen);
            let open: Vec<(String, String)> = s
                .launched
                .iter()
                .chain(s.uncertain.iter())
                .filter(|(t, _)| !s.last_state(t).is_some_and(load::reported_end))
                .map(|(t, a)| (t.clone(), a.clone()))
                .collect();
            (s.live(), open)
        };
        if quiet_agents && quiet_master && to_reconcile.is_empty() {
            break true;
        }
        // Tasks whose launch may have been lost: ask the master about them.
        if !to_reconcile.is_empty() && last_reconcile.elapsed() > Duration::from_secs(5) {
            last_reconcile = Instant::now();
            let _ = driver.reconcile(to_reconcile.clone()).await;
        }
        if settle_start.elapsed() > SETTLE {
            report.violations.push(format!(
                "the cluster did not settle within {} s: {live} live tasks at the framework, \
                 not ended {:?}; agents' checkpoints {checkpoints:?}; master answered: {}, its live tasks: {:?}",
                SETTLE.as_secs(),
                to_reconcile.iter().take(5).collect::<Vec<_>>(),
                state.is_some(),
                state.as_ref().map(|s| s
                    .tasks
                    .iter()
                    .filter(|t| !t.state().is_terminal())
                    .map(|t| (t.task.as_ref().map(|i| i.task_id.clone()), t.state()))
                    .take(5)
                    .collect::<Vec<_>>())
            ));
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    report.settle_seconds = settle_start.elapsed().as_secs_f64();
    // The framework's last word: an explicit reconciliation of every task, answered by the
    // master's view; then the checks.
    if settled {
        let _ = driver.reconcile(Vec::new()).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let checkpoints: Vec<check::AgentCheckpoint> = (0..config.agents)
            .map(|i| check::read_checkpoint(&format!("agent-{i}"), &cluster.work_dir(i)))
            .collect();
        report.violations.extend(check::checkpoints(&checkpoints));
        match master_state().await {
            Some(state) => report
                .violations
                .extend(check::master(&state, &lock(&seen))),
            None => report
                .violations
                .push("the master did not answer after settling".to_string()),
        }
    }
    {
        let s = lock(&seen);
        report.violations.extend(check::histories(&s));
        report.tasks_launched = s.launched.len();
        report.tasks_uncertain = s.uncertain.len();
        report.updates_received = s.received.values().map(Vec::len).sum();
        for task in s.launched.keys().chain(s.uncertain.keys()) {
            let last = s
                .last_state(task)
                .map_or("none".to_string(), |st| st.as_str_name().to_string());
            *report.ended.entry(last).or_default() += 1;
        }
    }
    report.faults = cluster.faults.clone();
    driver.stop();
    let _ = tokio::time::timeout(Duration::from_secs(5), framework).await;
    if !report.violations.is_empty() {
        for p in std::iter::once(&cluster.master).chain(cluster.agents.iter()) {
            eprintln!("--- last lines of {}'s log:\n{}", p.name, p.log_tail(15));
        }
    }
    Ok(report)
}

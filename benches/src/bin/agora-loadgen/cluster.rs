//! One run's cluster: the master (spawned or given), the shared measurement state, the
//! master sampler, and the emulated agents (multiplexed over a few HTTP/2 connections) and
//! frameworks (one connection each). Dropping it stops the emulators and kills the master.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_proto::v1;
use agora_resources::{Attributes, Resources};
use anyhow::{Context, bail};
use tonic::transport::{Channel, Endpoint};

use crate::Common;
use crate::agent::{self, AgentSpec};
use crate::framework::{self, FrameworkSpec};
use crate::master::{self, Master, MasterSpawn, Sampler};
use crate::shared::Shared;

pub struct Cluster {
    pub master: Master,
    pub master_id: String,
    pub shared: Arc<Shared>,
    pub sampler: Sampler,
    common: Common,
    agent_resources: Vec<v1::Resource>,
    agent_channels: Vec<Channel>,
    agents: Vec<tokio::task::JoinHandle<()>>,
    frameworks: Vec<tokio::task::JoinHandle<()>>,
    /// When the next agent may start registering.
    next_agent_start: tokio::time::Instant,
    pub default_task: Duration,
}

/// A lazily connecting channel to the master.
///
/// h2 closes a connection (GOAWAY ENHANCE_YOUR_CALM) after 1,024 streams it had to reset
/// itself over the connection's lifetime, and it resets one each time an answer arrives
/// for a call it has already forgotten: a call the emulator gave up on (timeout) is
/// remembered only among the last 10 reset streams by default. Under load, hundreds of
/// emulators time out calls on one connection, so the harness closed its own connections
/// (the h2 warning "locally-reset streams reached limit (1024)", 14 to 75 times per
/// 10,000-agent run), failing every call and stream on them at once. Reset streams are
/// remembered longer and the lifetime cap (a guard against hostile servers) is lifted.
pub fn channel(addr: std::net::SocketAddr) -> anyhow::Result<Channel> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .context("master address")?
        .http2_max_concurrent_reset_streams(50_000)
        .http2_max_local_error_reset_streams(None)
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .initial_connection_window_size(Some(16 << 20))
        .initial_stream_window_size(Some(4 << 20))
        .connect_lazy())
}

/// The master's id from `GET /health`.
pub async fn master_id(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let (code, body) = master::http_get(addr, "/health", Duration::from_secs(10)).await?;
    if code != 200 {
        bail!("GET /health: {code} {body}");
    }
    let v: serde_json::Value = serde_json::from_str(&body).context("/health is not JSON")?;
    v["master_id"]
        .as_str()
        .map(str::to_string)
        .context("/health has no master_id")
}

impl Cluster {
    /// Start (or attach to) the master; `dir` holds its data directory and logs.
    pub async fn start(common: &Common, dir: &Path, budget: i64) -> anyhow::Result<Self> {
        let mut m = match common.master {
            Some(addr) => Master::external(addr),
            None => Master::spawn(MasterSpawn {
                bin: common
                    .master_bin
                    .clone()
                    .unwrap_or_else(master::default_bin),
                addr: master::free_addr()?,
                data_dir: dir.join("master-data"),
                log_dir: dir.to_path_buf(),
                log_level: common.master_log.clone(),
                args: common.master_args.clone(),
            })?,
        };
        m.wait_healthy(Duration::from_secs(30)).await?;
        let master_id = master_id(m.addr).await?;
        let shared = Arc::new(Shared::new(budget));
        let sampler = Sampler::start(
            m.addr,
            m.pid(),
            shared.start,
            Duration::from_secs_f64(common.sample_secs),
        );
        let agent_resources = Resources::parse(&common.agent_resources)
            .with_context(|| format!("--agent-resources '{}'", common.agent_resources))?
            .to_proto();
        Ok(Self {
            master: m,
            master_id,
            shared,
            sampler,
            common: common.clone(),
            agent_resources,
            agent_channels: Vec::new(),
            agents: Vec::new(),
            frameworks: Vec::new(),
            next_agent_start: tokio::time::Instant::now(),
            default_task: Duration::from_secs(30),
        })
    }

    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    pub fn connections(&self) -> usize {
        self.agent_channels.len() + self.frameworks.len()
    }

    /// Add `n` agents, starting at `--register-rate` per second.
    pub fn add_agents(&mut self, n: usize) -> anyhow::Result<()> {
        let per = self.common.agents_per_channel.max(1);
        let gap = Duration::from_secs_f64(1.0 / self.common.register_rate.max(1.0));
        let now = tokio::time::Instant::now();
        if self.next_agent_start < now {
            self.next_agent_start = now;
        }
        for _ in 0..n {
            let i = self.agents.len();
            if i / per >= self.agent_channels.len() {
                self.agent_channels.push(channel(self.master.addr)?);
            }
            let attributes = Attributes::parse(&format!("rack:r{};zone:z{}", i % 40, i % 3))
                .map(|a| a.to_proto())
                .unwrap_or_default();
            let spec = AgentSpec {
                index: i,
                hostname: format!("lg-agent-{i}"),
                resources: self.agent_resources.clone(),
                attributes,
                default_task: self.default_task,
                reconnect_max: Duration::from_millis(self.common.reconnect_max_ms),
                skip_starting: self.common.skip_starting,
                start_at: self.next_agent_start,
            };
            self.next_agent_start += gap;
            let ch = self.agent_channels[i / per].clone();
            self.agents
                .push(agent::spawn(spec, ch, self.shared.clone()));
        }
        Ok(())
    }

    pub fn add_framework(&mut self, mut spec: FrameworkSpec) -> anyhow::Result<()> {
        spec.index = self.frameworks.len();
        spec.reconnect_max = Duration::from_millis(self.common.reconnect_max_ms);
        let ch = framework::channel(self.master.addr)?;
        self.frameworks
            .push(framework::spawn(spec, ch, self.shared.clone()));
        Ok(())
    }

    /// Wait until `n` distinct agents and `f` frameworks registered with the current master.
    pub async fn wait_registered(
        &mut self,
        n: usize,
        f: usize,
        timeout: Duration,
    ) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        loop {
            let r = self.shared.registrations(&self.master_id);
            if r.agents as usize >= n && r.frameworks as usize >= f {
                return Ok(t0.elapsed());
            }
            self.master.check_alive()?;
            if t0.elapsed() > timeout {
                bail!(
                    "only {} of {n} agents and {} of {f} frameworks registered in {timeout:?}",
                    r.agents,
                    r.frameworks
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sleep `d`, checking the master is alive and logging progress every `every`.
    pub async fn run_for(&mut self, d: Duration, label: &str) -> anyhow::Result<()> {
        let t0 = Instant::now();
        let mut last = Instant::now();
        while t0.elapsed() < d {
            tokio::time::sleep(Duration::from_millis(200).min(d.saturating_sub(t0.elapsed())))
                .await;
            self.master.check_alive()?;
            if last.elapsed() >= Duration::from_secs(5) {
                last = Instant::now();
                self.progress(label);
            }
        }
        Ok(())
    }

    pub fn progress(&self, label: &str) {
        let c = self.shared.counters.snapshot();
        let s = self.sampler.take();
        let last = s.last();
        tracing::info!(
            "{label} t={:.0}s launched={} running={} live={} lost={} accept_err={} queue={:?} rss_mib={:?} cpu={:?} harness_cpu={:?} resends={}",
            self.shared.secs(Instant::now()),
            c["tasks_launched"],
            c["running"],
            self.shared.live_count(),
            c["lost_or_failed"],
            c["accept_errors"],
            last.and_then(|s| s.queue_depth),
            last.and_then(|s| s.rss_kib).map(|k| k / 1024),
            last.and_then(|s| s.cpu_cores)
                .map(|c| (c * 100.0).round() / 100.0),
            last.and_then(|s| s.harness_cpu_cores)
                .map(|c| (c * 100.0).round() / 100.0),
            c["update_resends"],
        );
        let errors = self.shared.error_kinds();
        if !errors.is_empty() {
            tracing::info!("{label} failures so far: {errors:?}");
        }
    }

    /// Stop every emulator and wait briefly for them; the master is killed on drop.
    pub async fn stop(&mut self) {
        self.shared.stop.send_replace(true);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        for h in self.agents.drain(..).chain(self.frameworks.drain(..)) {
            let _ = tokio::time::timeout_at(deadline, h).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shared.stop.send_replace(true);
        for h in self.agents.iter().chain(self.frameworks.iter()) {
            h.abort();
        }
    }
}

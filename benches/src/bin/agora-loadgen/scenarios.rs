//! The four scenarios. Each one is bounded (durations, counts, deadlines), builds fresh
//! clusters as it needs them, and writes `report.json` plus SVG charts to the results
//! directory. Figures are computed here from what the emulators measured and what the
//! master sampler saw.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use agora_resources::Resources;
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tracing::info;

use crate::cluster::{self, Cluster};
use crate::framework::FrameworkSpec;
use crate::master::{self, Sample};
use crate::report::{Chart, ResultsDir, Style};
use crate::shared::Shared;
use crate::stats::{linear_fit, peak_window};
use crate::{Cli, Common, Scenario};

#[derive(Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Agent counts, comma-separated (one fresh master each).
    #[arg(long, default_value = "1000", value_delimiter = ',')]
    pub agents: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    /// Resources of one task.
    #[arg(long, default_value = "cpus:1;mem:1024")]
    pub task_shape: String,
    #[arg(long, default_value_t = 30.0)]
    pub task_secs: f64,
    #[arg(long, default_value_t = 10.0)]
    pub task_jitter_secs: f64,
    /// Measured time per size, after every agent registered.
    #[arg(long, default_value_t = 60.0)]
    pub duration_secs: f64,
    /// Most tasks launched per size.
    #[arg(long, default_value_t = 10_000_000)]
    pub max_tasks: u64,
    /// Fraction of tasks the frameworks kill before they end.
    #[arg(long, default_value_t = 0.0)]
    pub kill_fraction: f64,
}

#[derive(Args, Debug, Clone)]
pub struct OfferArgs {
    #[arg(long, default_value = "1000,10000", value_delimiter = ',')]
    pub agents: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub frameworks: usize,
    /// Resources of one task [default: a whole agent, so each freed agent is one offer].
    #[arg(long)]
    pub task_shape: Option<String>,
    #[arg(long, default_value_t = 5.0)]
    pub task_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    pub task_jitter_secs: f64,
    #[arg(long, default_value_t = 30.0)]
    pub duration_secs: f64,
    /// Samples from this first part of the run are dropped (the initial fill).
    #[arg(long, default_value_t = 8.0)]
    pub warmup_secs: f64,
}

#[derive(Args, Debug, Clone)]
pub struct MemoryArgs {
    /// Agent counts to measure at, ascending.
    #[arg(long, default_value = "0,1000,2000,5000,10000", value_delimiter = ',')]
    pub agents: Vec<usize>,
    /// Task counts to measure at (on the largest agent count), ascending.
    #[arg(
        long,
        default_value = "0,10000,20000,50000,100000",
        value_delimiter = ','
    )]
    pub tasks: Vec<usize>,
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    #[arg(long, default_value = "cpus:0.1;mem:64")]
    pub task_shape: String,
    /// Wait after each step before reading the master's memory.
    #[arg(long, default_value_t = 3.0)]
    pub settle_secs: f64,
    /// Longest wait for one step.
    #[arg(long, default_value_t = 300.0)]
    pub step_timeout_secs: f64,
}

#[derive(Args, Debug, Clone)]
pub struct FailoverArgs {
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    #[arg(long, default_value_t = 10)]
    pub frameworks: usize,
    /// Tasks running when the master is killed.
    #[arg(long, default_value_t = 10_000)]
    pub tasks: usize,
    #[arg(long, default_value = "cpus:0.1;mem:64")]
    pub task_shape: String,
    /// Frameworks ask for all task states after re-subscribing.
    #[arg(long)]
    pub reconcile: bool,
    /// After recovery, wait this long for late LOST updates before checking.
    #[arg(long, default_value_t = 3.0)]
    pub settle_secs: f64,
    /// Longest wait to reach the load, and to recover.
    #[arg(long, default_value_t = 300.0)]
    pub step_timeout_secs: f64,
    /// Tasks the frameworks may launch per second while building the load (0: all at
    /// once). The figure is the recovery; a paced launch keeps a contended machine out of
    /// overload (every update re-sent after its 5 s timeout) while reaching it.
    #[arg(long, default_value_t = 0.0)]
    pub launch_rate: f64,
}

/// Grow the launch budget by `rate` tasks per second up to `total`, in 100 ms steps; ends
/// when all is granted or the run stops.
pub(crate) fn pace_budget(
    shared: Arc<Shared>,
    total: u64,
    rate: f64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let step = Duration::from_millis(100);
        let t0 = Instant::now();
        let mut granted = 0u64;
        while granted < total && !shared.stopped() {
            let due = ((t0.elapsed().as_secs_f64() * rate) as u64).clamp(1, total);
            if due > granted {
                shared.add_budget(due - granted);
                granted = due;
            }
            tokio::time::sleep(step).await;
        }
    })
}

pub async fn run(cli: &Cli, results: PathBuf) -> anyhow::Result<PathBuf> {
    let dir = ResultsDir::create(results)?;
    let common = &cli.common;
    let figures = match &cli.scenario {
        Scenario::Launch(a) => launch(common, a, &dir).await?,
        Scenario::OfferLatency(a) => offer_latency(common, a, &dir).await?,
        Scenario::Memory(a) => memory(common, a, &dir).await?,
        Scenario::Failover(a) => failover(common, a, &dir).await?,
        Scenario::UiOverview(a) => crate::ui::ui_overview(common, a, &dir).await?,
    };
    let report = json!({
        "scenario": format!("{:?}", cli.scenario),
        "command": std::env::args().collect::<Vec<_>>().join(" "),
        "machine": machine(),
        "figures": figures,
    });
    dir.write_json("report.json", &report)?;
    println!(
        "{}",
        serde_json::to_string_pretty(&report["figures"]["summary"]).unwrap_or_default()
    );
    Ok(dir.path)
}

/// The machine the figures ran on.
fn machine() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    json!({
        "cpu": cpu,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "mem_gib": (mem_kib as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "loadavg_at_end": read("/proc/loadavg").trim(),
    })
}

pub(crate) fn shape(text: &str) -> anyhow::Result<Resources> {
    let r = Resources::parse(text).with_context(|| format!("task shape '{text}'"))?;
    if r.is_empty() {
        bail!("task shape '{text}' is empty");
    }
    Ok(r)
}

/// Tasks of `shape` that fit on one agent of `agent`.
pub(crate) fn per_agent(agent: &str, shape: &Resources) -> anyhow::Result<u64> {
    let a = Resources::parse(agent).with_context(|| format!("agent resources '{agent}'"))?;
    Ok(shape
        .names()
        .into_iter()
        .filter(|n| shape.scalar(n).thousandths() > 0)
        .map(|n| a.scalar(n).thousandths() / shape.scalar(n).thousandths())
        .min()
        .unwrap_or(0))
}

pub(crate) fn fw_spec(
    shape: Resources,
    secs: f64,
    jitter: f64,
    kill_fraction: f64,
    reconcile: bool,
) -> FrameworkSpec {
    FrameworkSpec {
        index: 0,
        name: "loadgen".into(),
        role: "loadgen".into(),
        shape,
        duration: Duration::from_secs_f64(secs.max(0.0)),
        jitter: Duration::from_secs_f64(jitter.max(0.0)),
        refuse_seconds: 1.0,
        idle_refuse_seconds: 3600.0,
        kill_fraction,
        max_tasks_per_offer: 1024,
        reconcile_on_resubscribe: reconcile,
        reconnect_max: Duration::from_secs(1),
    }
}

fn samples_json(s: &[Sample]) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn max_of(s: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    s.iter().filter_map(f).reduce(f64::max)
}

fn mean_of(s: &[Sample], f: impl Fn(&Sample) -> Option<f64>) -> Option<f64> {
    let v: Vec<f64> = s.iter().filter_map(f).collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

fn round(v: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (v * p).round() / p
}

/// Where one size's master lives.
fn size_dir(dir: &ResultsDir, tag: &str) -> PathBuf {
    dir.path.join(tag)
}

/// Figures common to launch-style runs of one size.
struct SizeRun {
    json: Value,
    running_series: Vec<(f64, f64)>,
    samples: Vec<Sample>,
    offer_cdf: Vec<(f64, f64)>,
}

/// Start a cluster of `agents`, add frameworks, run for `duration`, and collect.
#[allow(clippy::too_many_arguments)]
async fn churn_run(
    common: &Common,
    dir: &ResultsDir,
    tag: &str,
    agents: usize,
    frameworks: usize,
    spec: FrameworkSpec,
    duration: Duration,
    warmup: Duration,
    max_tasks: u64,
) -> anyhow::Result<SizeRun> {
    let mut c = Cluster::start(common, &size_dir(dir, tag), max_tasks as i64).await?;
    if frameworks == 0 {
        // Agents only, for a real framework outside the harness: its tasks (which carry no
        // duration label) run for --task-secs.
        c.default_task = spec.duration;
    }
    let per = per_agent(&common.agent_resources, &spec.shape)?;
    info!("{tag}: registering {agents} agents");
    c.add_agents(agents)?;
    let reg_timeout =
        Duration::from_secs_f64(30.0 + agents as f64 / common.register_rate.max(1.0) * 3.0);
    let reg = c.wait_registered(agents, 0, reg_timeout).await?;
    info!(
        "{tag}: {agents} agents registered in {:.2}s over {} connections",
        reg.as_secs_f64(),
        c.connections()
    );
    let t_fw = c.shared.secs(Instant::now());
    for _ in 0..frameworks {
        c.add_framework(spec.clone())?;
    }
    if !warmup.is_zero() {
        c.run_for(warmup, tag).await?;
        c.shared.reset_latencies();
    }
    c.run_for(duration, tag).await?;
    c.shared.launching.send_replace(false);
    c.progress(tag);
    let t_end = c.shared.secs(Instant::now());
    let counters = c.shared.counters.snapshot();
    let samples = c.sampler.take();
    c.stop().await;

    let (launch, offer, running, offer_cdf, launch_cdf) = c.shared.with_measurements(|m| {
        (
            m.launch_latency.summary(),
            m.offer_latency.summary(),
            m.running_per_sec.clone(),
            m.offer_latency.cdf(200),
            m.launch_latency.cdf(200),
        )
    });
    let first = t_fw.floor() as usize;
    let counts: Vec<u64> = running.counts().iter().copied().skip(first).collect();
    let measured = (t_end - t_fw).max(1e-9);
    let total_running: u64 = counts.iter().sum();
    let capacity = per * agents as u64;
    // Seconds from the frameworks' start until 95% of the capacity was RUNNING at once
    // (approximated by cumulative RUNNING, which is exact while nothing has ended yet).
    let mut cum = 0;
    let fill = counts.iter().position(|&n| {
        cum += n;
        cum as f64 >= 0.95 * capacity.min(max_tasks) as f64
    });
    let peak5 = peak_window(&counts, 5);
    let steady_from = counts.len() / 2;
    let steady = if counts.len() > steady_from + 1 {
        counts[steady_from..counts.len() - 1].iter().sum::<u64>() as f64
            / (counts.len() - 1 - steady_from) as f64
    } else {
        0.0
    };
    let series: Vec<(f64, f64)> = counts
        .iter()
        .enumerate()
        .map(|(i, &n)| (i as f64, n as f64))
        .collect();
    let json = json!({
        "agents": agents,
        "frameworks": frameworks,
        "connections": c.connections(),
        "capacity_tasks": capacity,
        "registration_secs": round(reg.as_secs_f64(), 3),
        "measured_secs": round(measured, 2),
        "running_total": total_running,
        "running_per_s_mean": round(total_running as f64 / measured, 1),
        "running_per_s_peak_5s": round(peak5, 1),
        "running_per_s_second_half": round(steady, 1),
        "fill_95pct_secs": fill.map(|s| s + 1),
        "launch_latency_ms": launch,
        "offer_latency_ms": offer,
        "master": {
            "rss_mib_max": max_of(&samples, |s| s.rss_kib.map(|k| k as f64 / 1024.0)).map(|v| round(v, 1)),
            "cpu_cores_mean": mean_of(&samples, |s| s.cpu_cores).map(|v| round(v, 2)),
            "harness_cpu_cores_mean": mean_of(&samples, |s| s.harness_cpu_cores).map(|v| round(v, 2)),
            "queue_depth_max": max_of(&samples, |s| s.queue_depth),
            "alloc_cycle_ms_mean": master::mean_cycle_ms(&samples).map(|v| round(v, 2)),
            "metrics_ms_max": max_of(&samples, |s| s.metrics_ms).map(|v| round(v, 1)),
        },
        "counters": counters,
        "error_kinds": c.shared.error_kinds(),
        "running_per_s": counts,
        "launch_latency_cdf_ms": launch_cdf,
        "offer_latency_cdf_ms": offer_cdf,
        "samples": samples_json(&samples),
    });
    info!(
        "{tag}: {}",
        serde_json::to_string(&json!({
            "running_per_s_peak_5s": json["running_per_s_peak_5s"],
            "running_per_s_mean": json["running_per_s_mean"],
            "launch_p50_ms": json["launch_latency_ms"]["p50_ms"],
            "launch_p99_ms": json["launch_latency_ms"]["p99_ms"],
            "offer_p50_ms": json["offer_latency_ms"]["p50_ms"],
            "offer_p99_ms": json["offer_latency_ms"]["p99_ms"],
        }))
        .unwrap_or_default()
    );
    Ok(SizeRun {
        json,
        running_series: series,
        samples,
        offer_cdf,
    })
}

fn master_charts(dir: &ResultsDir, runs: &[(String, Vec<Sample>)]) -> anyhow::Result<()> {
    let mut cpu = Chart::new(
        "CPU use (master, and the harness beside it)",
        "seconds since start",
        "cores",
        Style::Line,
    );
    let mut queue = Chart::new(
        "Master actor queue depth",
        "seconds since start",
        "commands waiting",
        Style::Line,
    );
    let mut rss = Chart::new(
        "Master resident memory",
        "seconds since start",
        "MiB",
        Style::Line,
    );
    for (name, s) in runs {
        cpu = cpu.with(
            name,
            s.iter().filter_map(|x| Some((x.t, x.cpu_cores?))).collect(),
        );
        queue = queue.with(
            name,
            s.iter()
                .filter_map(|x| Some((x.t, x.queue_depth?)))
                .collect(),
        );
        rss = rss.with(
            name,
            s.iter()
                .filter_map(|x| Some((x.t, x.rss_kib? as f64 / 1024.0)))
                .collect(),
        );
    }
    dir.write_chart("master-cpu.svg", &cpu)?;
    dir.write_chart("master-queue.svg", &queue)?;
    dir.write_chart("master-rss.svg", &rss)?;
    Ok(())
}

async fn launch(common: &Common, a: &LaunchArgs, dir: &ResultsDir) -> anyhow::Result<Value> {
    let shape = shape(&a.task_shape)?;
    let spec = fw_spec(
        shape,
        a.task_secs,
        a.task_jitter_secs,
        a.kill_fraction,
        false,
    );
    let mut sizes = Vec::new();
    let mut thr = Chart::new(
        "Tasks reaching RUNNING per second",
        "seconds since frameworks started",
        "tasks/s",
        Style::Line,
    );
    let mut masters = Vec::new();
    for &n in &a.agents {
        let tag = format!("agents-{n}");
        let r = churn_run(
            common,
            dir,
            &tag,
            n,
            a.frameworks,
            spec.clone(),
            Duration::from_secs_f64(a.duration_secs),
            Duration::ZERO,
            a.max_tasks,
        )
        .await?;
        thr = thr.with(&format!("{n} agents"), r.running_series.clone());
        masters.push((format!("{n} agents"), r.samples.clone()));
        sizes.push(r.json);
    }
    dir.write_chart("running-per-second.svg", &thr)?;
    let xs = |k: &str, f: &str| -> Vec<(f64, f64)> {
        sizes
            .iter()
            .filter_map(|s| Some((s["agents"].as_f64()?, s[k][f].as_f64()?)))
            .collect()
    };
    let lat = Chart::new(
        "Launch latency (ACCEPT sent -> RUNNING received)",
        "agents",
        "ms",
        Style::Line,
    )
    .with("p50", xs("launch_latency_ms", "p50_ms"))
    .with("p99", xs("launch_latency_ms", "p99_ms"));
    dir.write_chart("launch-latency-vs-agents.svg", &lat)?;
    let peak: Vec<(f64, f64)> = sizes
        .iter()
        .filter_map(|s| Some((s["agents"].as_f64()?, s["running_per_s_peak_5s"].as_f64()?)))
        .collect();
    let mean: Vec<(f64, f64)> = sizes
        .iter()
        .filter_map(|s| Some((s["agents"].as_f64()?, s["running_per_s_mean"].as_f64()?)))
        .collect();
    dir.write_chart(
        "throughput-vs-agents.svg",
        &Chart::new(
            "Launch throughput",
            "agents",
            "tasks to RUNNING per second",
            Style::Line,
        )
        .with("peak 5 s window", peak)
        .with("mean over run", mean),
    )?;
    master_charts(dir, &masters)?;
    let summary: Vec<Value> = sizes
        .iter()
        .map(|s| {
            json!({
                "agents": s["agents"], "frameworks": s["frameworks"],
                "running_per_s_peak_5s": s["running_per_s_peak_5s"],
                "running_per_s_mean": s["running_per_s_mean"],
                "launch_p50_ms": s["launch_latency_ms"]["p50_ms"],
                "launch_p99_ms": s["launch_latency_ms"]["p99_ms"],
                "offer_p50_ms": s["offer_latency_ms"]["p50_ms"],
                "offer_p99_ms": s["offer_latency_ms"]["p99_ms"],
                "lost_or_failed": s["counters"]["lost_or_failed"],
                "master_cpu_cores_mean": s["master"]["cpu_cores_mean"],
                "harness_cpu_cores_mean": s["master"]["harness_cpu_cores_mean"],
                "update_resends": s["counters"]["update_resends"],
                "master_queue_depth_max": s["master"]["queue_depth_max"],
                "alloc_cycle_ms_mean": s["master"]["alloc_cycle_ms_mean"],
            })
        })
        .collect();
    Ok(json!({ "summary": summary, "sizes": sizes }))
}

async fn offer_latency(common: &Common, a: &OfferArgs, dir: &ResultsDir) -> anyhow::Result<Value> {
    let shape = shape(a.task_shape.as_deref().unwrap_or(&common.agent_resources))?;
    let spec = fw_spec(shape, a.task_secs, a.task_jitter_secs, 0.0, false);
    let mut sizes = Vec::new();
    let mut cdf = Chart::new(
        "Offer latency CDF (freed -> offered)",
        "ms",
        "fraction",
        Style::Line,
    );
    let mut masters = Vec::new();
    for &n in &a.agents {
        let tag = format!("agents-{n}");
        let r = churn_run(
            common,
            dir,
            &tag,
            n,
            a.frameworks,
            spec.clone(),
            Duration::from_secs_f64(a.duration_secs),
            Duration::from_secs_f64(a.warmup_secs),
            u64::MAX / 4,
        )
        .await?;
        cdf = cdf.with(&format!("{n} agents"), r.offer_cdf.clone());
        masters.push((format!("{n} agents"), r.samples.clone()));
        sizes.push(r.json);
    }
    dir.write_chart("offer-latency-cdf.svg", &cdf)?;
    let xs = |f: &str| -> Vec<(f64, f64)> {
        sizes
            .iter()
            .filter_map(|s| Some((s["agents"].as_f64()?, s["offer_latency_ms"][f].as_f64()?)))
            .collect()
    };
    dir.write_chart(
        "offer-latency-vs-agents.svg",
        &Chart::new(
            "Offer latency (resources freed -> offer received)",
            "agents",
            "ms",
            Style::Line,
        )
        .with("p50", xs("p50_ms"))
        .with("p99", xs("p99_ms")),
    )?;
    master_charts(dir, &masters)?;
    let summary: Vec<Value> = sizes
        .iter()
        .map(|s| {
            json!({
                "agents": s["agents"],
                "offer_latency_ms": s["offer_latency_ms"],
                "frees_per_s": s["running_per_s_second_half"],
                "alloc_cycle_ms_mean": s["master"]["alloc_cycle_ms_mean"],
                "master_queue_depth_max": s["master"]["queue_depth_max"],
            })
        })
        .collect();
    Ok(json!({ "summary": summary, "sizes": sizes }))
}

/// Mean of three RSS reads 300 ms apart, KiB.
async fn rss_now(c: &Cluster) -> anyhow::Result<f64> {
    let pid = c
        .master
        .pid()
        .context("memory needs a master the harness spawned (no --master)")?;
    let mut v = Vec::new();
    for _ in 0..3 {
        v.push(master::rss_kib(pid).context("reading the master's VmRSS")? as f64);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(v.iter().sum::<f64>() / v.len() as f64)
}

/// Wait until `n` tasks reached RUNNING, or all `n` were launched and each reached RUNNING
/// or ended otherwise (a task lost while the load builds up is never RUNNING again, and
/// waiting for it would only end at the timeout).
pub(crate) async fn wait_running(
    c: &mut Cluster,
    n: u64,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut last = Instant::now();
    let done = |c: &Cluster| {
        let k = &c.shared.counters;
        let running = k.running.load(Ordering::Relaxed);
        running >= n
            || (k.tasks_launched.load(Ordering::Relaxed) >= n
                && running + k.lost_or_failed.load(Ordering::Relaxed) >= n)
    };
    while !done(c) {
        c.master.check_alive()?;
        if last.elapsed() >= Duration::from_secs(5) {
            last = Instant::now();
            c.progress("launching");
        }
        if t0.elapsed() > timeout {
            c.progress("launching");
            bail!(
                "only {} of {n} tasks RUNNING after {timeout:?}",
                c.shared.counters.running.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(t0.elapsed())
}

async fn memory(common: &Common, a: &MemoryArgs, dir: &ResultsDir) -> anyhow::Result<Value> {
    if common.master.is_some() {
        bail!("memory needs a master the harness spawns; drop --master");
    }
    let shape = shape(&a.task_shape)?;
    let max_agents = a.agents.iter().copied().max().unwrap_or(0);
    let per = per_agent(&common.agent_resources, &shape)?;
    let max_tasks = a.tasks.iter().copied().max().unwrap_or(0) as u64;
    if max_tasks > per * max_agents as u64 {
        bail!("{max_tasks} tasks do not fit on {max_agents} agents ({per} each)");
    }
    let settle = Duration::from_secs_f64(a.settle_secs);
    let step_timeout = Duration::from_secs_f64(a.step_timeout_secs);
    let mut c = Cluster::start(common, &size_dir(dir, "cluster"), 0).await?;
    c.default_task = Duration::from_secs(86_400);
    let mut agent_pts = Vec::new();
    for &n in &a.agents {
        let add = n.saturating_sub(c.agent_count());
        c.add_agents(add)?;
        c.wait_registered(n, 0, step_timeout).await?;
        tokio::time::sleep(settle).await;
        let rss = rss_now(&c).await?;
        info!("memory: {n} agents, master RSS {:.1} MiB", rss / 1024.0);
        agent_pts.push((n as f64, rss));
    }
    let spec = fw_spec(shape, 86_400.0, 0.0, 0.0, false);
    for _ in 0..a.frameworks {
        c.add_framework(spec.clone())?;
    }
    c.wait_registered(max_agents, a.frameworks, step_timeout)
        .await?;
    let mut task_pts = Vec::new();
    let mut have = 0u64;
    for &t in &a.tasks {
        let t = t as u64;
        c.shared.add_budget(t.saturating_sub(have));
        have = have.max(t);
        wait_running(&mut c, t, step_timeout).await?;
        tokio::time::sleep(settle).await;
        let rss = rss_now(&c).await?;
        info!(
            "memory: {t} tasks on {max_agents} agents, master RSS {:.1} MiB",
            rss / 1024.0
        );
        task_pts.push((t as f64, rss));
    }
    let counters = c.shared.counters.snapshot();
    let samples = c.sampler.take();
    c.stop().await;
    let per_agent_kib = linear_fit(&agent_pts).map(|(m, _)| round(m, 2));
    let per_task_kib = linear_fit(&task_pts).map(|(m, _)| round(m, 3));
    let mib =
        |p: &[(f64, f64)]| -> Vec<(f64, f64)> { p.iter().map(|&(x, y)| (x, y / 1024.0)).collect() };
    dir.write_chart(
        "rss-vs-agents.svg",
        &Chart::new(
            "Master RSS against agents (no tasks)",
            "agents",
            "MiB",
            Style::ScatterFit,
        )
        .with(
            &format!("{} KiB/agent", per_agent_kib.unwrap_or(f64::NAN)),
            mib(&agent_pts),
        ),
    )?;
    dir.write_chart(
        "rss-vs-tasks.svg",
        &Chart::new(
            &format!("Master RSS against running tasks ({max_agents} agents)"),
            "tasks",
            "MiB",
            Style::ScatterFit,
        )
        .with(
            &format!("{} KiB/task", per_task_kib.unwrap_or(f64::NAN)),
            mib(&task_pts),
        ),
    )?;
    master_charts(dir, &[("memory".into(), samples.clone())])?;
    Ok(json!({
        "summary": {
            "kib_per_agent": per_agent_kib,
            "kib_per_task": per_task_kib,
            "agents_max": max_agents,
            "tasks_max": max_tasks,
            "rss_mib_at_max": task_pts.last().or(agent_pts.last()).map(|p| round(p.1 / 1024.0, 1)),
        },
        "rss_kib_vs_agents": agent_pts,
        "rss_kib_vs_tasks": task_pts,
        "counters": counters,
        "error_kinds": c.shared.error_kinds(),
        "samples": samples_json(&samples),
    }))
}

/// Live (non-terminal) tasks in the master's state endpoint.
async fn master_live_tasks(
    addr: std::net::SocketAddr,
) -> anyhow::Result<HashSet<(String, String)>> {
    let (code, body) = master::http_get(addr, "/api/v1/state", Duration::from_secs(120)).await?;
    if code != 200 {
        bail!("GET /api/v1/state: {code}");
    }
    let v: Value = serde_json::from_str(&body).context("state is not JSON")?;
    const TERMINAL: [&str; 8] = [
        "FINISHED",
        "FAILED",
        "KILLED",
        "ERROR",
        "LOST",
        "DROPPED",
        "GONE",
        "GONE_BY_OPERATOR",
    ];
    Ok(v["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| !TERMINAL.contains(&t["state"].as_str().unwrap_or("")))
                .filter_map(|t| {
                    Some((
                        t["framework_id"].as_str()?.to_string(),
                        t["id"].as_str()?.to_string(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn failover(common: &Common, a: &FailoverArgs, dir: &ResultsDir) -> anyhow::Result<Value> {
    if common.master.is_some() {
        bail!("failover needs a master the harness spawns; drop --master");
    }
    let shape = shape(&a.task_shape)?;
    let per = per_agent(&common.agent_resources, &shape)?;
    if a.tasks as u64 > per * a.agents as u64 {
        bail!(
            "{} tasks do not fit on {} agents ({per} each)",
            a.tasks,
            a.agents
        );
    }
    let step_timeout = Duration::from_secs_f64(a.step_timeout_secs);
    let paced = a.launch_rate > 0.0;
    let budget = if paced { 0 } else { a.tasks as i64 };
    let mut c = Cluster::start(common, &size_dir(dir, "cluster"), budget).await?;
    c.default_task = Duration::from_secs(86_400);
    c.add_agents(a.agents)?;
    let reg = c.wait_registered(a.agents, 0, step_timeout).await?;
    info!(
        "failover: {} agents registered in {:.2}s",
        a.agents,
        reg.as_secs_f64()
    );
    let spec = fw_spec(shape, 86_400.0, 0.0, 0.0, a.reconcile);
    for _ in 0..a.frameworks {
        c.add_framework(spec.clone())?;
    }
    let pacer = paced.then(|| pace_budget(c.shared.clone(), a.tasks as u64, a.launch_rate));
    let load = wait_running(&mut c, a.tasks as u64, step_timeout).await;
    if let Some(p) = pacer {
        p.abort();
    }
    let load = load?;
    info!(
        "failover: {} tasks RUNNING after {:.2}s",
        a.tasks,
        load.as_secs_f64()
    );
    c.shared.launching.send_replace(false);
    // Let the last acknowledgements reach the agents.
    let mut last = u64::MAX;
    for _ in 0..100 {
        let acks = c.shared.counters.acks_to_agents.load(Ordering::Relaxed);
        if acks == last {
            break;
        }
        last = acks;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let before = c.shared.live_tasks();
    let lost_before = c.shared.counters.lost_or_failed.load(Ordering::Relaxed);
    let rss_before = c.master.pid().and_then(master::rss_kib);
    let old_id = c.master_id.clone();

    info!(
        "failover: kill -9 the master ({} tasks live on the agents)",
        before.len()
    );
    let t_kill = Instant::now();
    let kill_at = c.shared.secs(t_kill);
    c.master.kill9()?;
    c.master.restart()?;
    let healthy = c.master.wait_healthy(step_timeout).await?;
    let t_healthy = t_kill.elapsed();
    let new_id = cluster::master_id(c.master.addr).await?;
    if new_id == old_id {
        bail!("the restarted master has the old id {old_id}");
    }
    c.master_id = new_id.clone();
    let _ = healthy;
    let sampler_restart = master::Sampler::start(
        c.master.addr,
        c.master.pid(),
        c.shared.start,
        Duration::from_secs_f64(common.sample_secs),
    );
    let rec = c
        .wait_registered(a.agents, a.frameworks, step_timeout)
        .await;
    let r = c.shared.registrations(&new_id);
    let recovered = rec.is_ok();
    let agents_secs = r.last_agent_at - kill_at;
    let frameworks_secs = r.last_framework_at - kill_at;
    info!(
        "failover: healthy after {:.2}s; {} agents re-registered by {:.2}s, {} frameworks re-subscribed by {:.2}s after the kill",
        t_healthy.as_secs_f64(),
        r.agents,
        agents_secs,
        r.frameworks,
        frameworks_secs
    );
    tokio::time::sleep(Duration::from_secs_f64(a.settle_secs)).await;
    let after = c.shared.live_tasks();
    let lost_updates = c.shared.counters.lost_or_failed.load(Ordering::Relaxed) - lost_before;
    let in_master = master_live_tasks(c.master.addr).await?;
    let missing: Vec<&(String, String)> = after.difference(&in_master).collect();
    let unknown: Vec<&(String, String)> = in_master.difference(&after).collect();
    let gone_from_agents = before.difference(&after).count();
    let zero_lost = recovered && missing.is_empty() && lost_updates == 0 && gone_from_agents == 0;
    let counters = c.shared.counters.snapshot();
    let mut samples = c.sampler.take();
    samples.extend(sampler_restart.take());
    c.stop().await;

    let times = c.shared.agent_times(&new_id);
    let mut sorted: Vec<f64> = times.iter().map(|t| t - kill_at).collect();
    sorted.sort_by(f64::total_cmp);
    let curve: Vec<(f64, f64)> = sorted
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, (i + 1) as f64))
        .collect();
    dir.write_chart(
        "reregistration.svg",
        &Chart::new(
            "Agents re-registered after kill -9",
            "seconds since the kill",
            "agents",
            Style::Line,
        )
        .with("agents", curve),
    )?;
    master_charts(dir, &[("master".into(), samples.clone())])?;
    let summary = json!({
        "agents": a.agents,
        "frameworks": a.frameworks,
        "tasks": a.tasks,
        "launch_rate": a.launch_rate,
        "load_running_secs": round(load.as_secs_f64(), 2),
        "recovered": recovered,
        "master_healthy_secs": round(t_healthy.as_secs_f64(), 3),
        "all_agents_reregistered_secs": round(agents_secs, 3),
        "all_frameworks_resubscribed_secs": round(frameworks_secs, 3),
        "tasks_live_on_agents_before": before.len(),
        "tasks_live_on_agents_after": after.len(),
        "tasks_live_in_master_after": in_master.len(),
        "tasks_missing_in_master": missing.len(),
        "tasks_unknown_to_agents": unknown.len(),
        "lost_or_failed_updates": lost_updates,
        "zero_tasks_lost": zero_lost,
        "master_rss_mib_before": rss_before.map(|k| round(k as f64 / 1024.0, 1)),
    });
    info!("failover: {summary}");
    Ok(json!({
        "summary": summary,
        "registration_error": rec.err().map(|e| e.to_string()),
        "missing_examples": missing.iter().take(10).map(|k| format!("{}/{}", k.0, k.1)).collect::<Vec<_>>(),
        "counters": counters,
        "error_kinds": c.shared.error_kinds(),
        "samples": samples_json(&samples),
    }))
}

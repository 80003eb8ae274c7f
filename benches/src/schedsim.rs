//! The scheduling-quality simulator: a discrete-event simulation of hours of work over the
//! pure allocator (`agora-allocator` alone, no master, no network), to measure how good
//! its decisions are rather than how fast.
//!
//! Owns: synthetic workloads shaped like the Mesos paper's macrobenchmark (Hadoop-like
//! jobs of many short tasks, MPI-like gangs that need all their tasks at once, Spark-like
//! iterative jobs in waves, long-running web services, and one framework needing a whole
//! agent for one task), with heavy-tailed task durations like published cluster traces;
//! the frameworks' behaviour on offers (first fit, all-or-nothing for gangs, decline with
//! a filter, suppress when idle and revive on new work); three policies (static
//! partitioning, plain weighted DRF, Agora's DRF with declared demands and holds); and the
//! figures (CPU and memory utilisation, job completion times, the wait of the largest
//! jobs, distance from the DRF ideal). Must never read a clock or draw randomness other
//! than from its seeded RNG: one seed, one result.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use agora_allocator::{
    Allocation, Allocator, AllocatorConfig, Demand, DrfAllocator, FrameworkSpec,
};
use agora_resources::Resources;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Length of an allocation cycle in simulated milliseconds.
pub const CYCLE_MS: u64 = 1000;
/// Filter a framework puts on what it declines.
pub const REFUSE_MS: u64 = 5000;

/// What kind of work a framework runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// Jobs of many short independent tasks.
    Hadoop,
    /// Gangs: every task of a job at once, or none.
    Mpi,
    /// Iterative jobs: waves of tasks, the next wave after the previous ends.
    Spark,
    /// Long-running services.
    Web,
    /// One task needing a whole agent.
    Big,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hadoop => "hadoop",
            Kind::Mpi => "mpi",
            Kind::Spark => "spark",
            Kind::Web => "web",
            Kind::Big => "big",
        }
    }
}

/// One job: `tasks` tasks per wave of (`cpus_milli`, `mem_mb`), `waves` waves.
#[derive(Clone, Debug)]
pub struct Job {
    pub arrival_ms: u64,
    pub tasks: u32,
    pub cpus_milli: u64,
    pub mem_mb: u64,
    /// Per task, its duration (a wave's tasks draw their own).
    pub durations_ms: Vec<u64>,
    pub waves: u32,
    pub gang: bool,
}

#[derive(Clone, Debug)]
pub struct FrameworkDef {
    pub name: String,
    pub kind: Kind,
    pub jobs: Vec<Job>,
}

#[derive(Clone, Debug)]
pub struct Workload {
    pub agents: usize,
    pub agent_cpus: u64,
    pub agent_mem_mb: u64,
    pub duration_ms: u64,
    pub frameworks: Vec<FrameworkDef>,
}

/// Heavy-tailed duration (Pareto, shape 1.5) with a floor and a cap, as task durations in
/// published cluster traces: most tasks short, a few very long.
fn pareto_ms(rng: &mut SmallRng, min_ms: u64, cap_ms: u64) -> u64 {
    let u: f64 = rng.random_range(1e-9..1.0);
    ((min_ms as f64) * u.powf(-1.0 / 1.5)).min(cap_ms as f64) as u64
}

/// The macrobenchmark-like mix on `agents` agents of 16 cpus and 64 GiB for `hours`.
pub fn mesos_mix(seed: u64, agents: usize, hours: u64) -> Workload {
    let mut rng = SmallRng::seed_from_u64(seed);
    let duration_ms = hours * 3_600_000;
    let mut frameworks = Vec::new();
    let every = |rng: &mut SmallRng, mean_ms: u64| -> u64 {
        // Exponential inter-arrival times.
        let u: f64 = rng.random_range(1e-9..1.0);
        (-(u.ln()) * mean_ms as f64) as u64
    };
    for h in 0..2 {
        let mut jobs = Vec::new();
        let mut t = 0;
        while t < duration_ms {
            let tasks = rng.random_range(20..120);
            jobs.push(Job {
                arrival_ms: t,
                tasks,
                cpus_milli: 1000,
                mem_mb: 2048,
                durations_ms: (0..tasks)
                    .map(|_| pareto_ms(&mut rng, 10_000, 900_000))
                    .collect(),
                waves: 1,
                gang: false,
            });
            t += every(&mut rng, 15_000);
        }
        frameworks.push(FrameworkDef {
            name: format!("hadoop-{h}"),
            kind: Kind::Hadoop,
            jobs,
        });
    }
    let mut jobs = Vec::new();
    let mut t = 0;
    while t < duration_ms {
        jobs.push(Job {
            arrival_ms: t,
            tasks: 8,
            cpus_milli: 2000,
            mem_mb: 8192,
            durations_ms: vec![pareto_ms(&mut rng, 120_000, 1_200_000); 8],
            waves: 1,
            gang: true,
        });
        t += every(&mut rng, 180_000);
    }
    frameworks.push(FrameworkDef {
        name: "mpi".into(),
        kind: Kind::Mpi,
        jobs,
    });
    let mut jobs = Vec::new();
    let mut t = 0;
    while t < duration_ms {
        jobs.push(Job {
            arrival_ms: t,
            tasks: 40,
            cpus_milli: 1000,
            mem_mb: 4096,
            durations_ms: (0..40).map(|_| rng.random_range(20_000..60_000)).collect(),
            waves: 10,
            gang: false,
        });
        t += every(&mut rng, 600_000);
    }
    frameworks.push(FrameworkDef {
        name: "spark".into(),
        kind: Kind::Spark,
        jobs,
    });
    frameworks.push(FrameworkDef {
        name: "web".into(),
        kind: Kind::Web,
        jobs: vec![Job {
            arrival_ms: 0,
            tasks: 24,
            cpus_milli: 2000,
            mem_mb: 1024,
            durations_ms: vec![u64::MAX / 4; 24],
            waves: 1,
            gang: false,
        }],
    });
    let mut jobs = Vec::new();
    let mut t = 60_000;
    while t < duration_ms {
        jobs.push(Job {
            arrival_ms: t,
            tasks: 1,
            cpus_milli: 16_000,
            mem_mb: 32_768,
            durations_ms: vec![600_000],
            waves: 1,
            gang: false,
        });
        t += 1_800_000;
    }
    frameworks.push(FrameworkDef {
        name: "big".into(),
        kind: Kind::Big,
        jobs,
    });
    Workload {
        agents,
        agent_cpus: 16,
        agent_mem_mb: 65_536,
        duration_ms,
        frameworks,
    }
}

/// How the cluster is shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Each framework gets its own equal slice of the agents, for good.
    Static,
    /// One weighted-DRF allocator, no declared demands.
    PlainDrf,
    /// Agora's allocator: DRF with declared demands (gangs and the whole-agent task),
    /// holds and no crumbs.
    Demands,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::Static => "static partitioning",
            Policy::PlainDrf => "plain wDRF",
            Policy::Demands => "Agora (demands, holds)",
        }
    }
}

/// What one run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Time-averaged share of the cluster's cpus and memory used by running tasks.
    pub cpu_util: f64,
    pub mem_util: f64,
    /// Per kind: completion times (arrival to last task's end) of finished jobs, in s.
    pub completion_s: BTreeMap<&'static str, Vec<f64>>,
    /// Per kind: jobs that arrived and never finished.
    pub unfinished: BTreeMap<&'static str, usize>,
    /// Per kind: jobs that arrived and never started (starved).
    pub never_started: BTreeMap<&'static str, usize>,
    /// Per kind: waits (arrival to first start) in s; jobs never started count with the
    /// time they waited until the end.
    pub wait_s: BTreeMap<&'static str, Vec<f64>>,
    /// Mean over samples of the mean absolute difference between each framework's
    /// dominant share and its share in the DRF ideal for what it wanted then.
    pub drf_distance: f64,
    /// Offers made in all (the cost of declines).
    pub offers: u64,
}

pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[((s.len() - 1) as f64 * p).round() as usize]
}

struct JobState {
    def: Job,
    wave: u32,
    /// Tasks of the current wave not yet launched / still running.
    pending: u32,
    running: u32,
    started_ms: Option<u64>,
}

struct FwState {
    name: String,
    kind: Kind,
    /// Index of the partition allocator serving it.
    part: usize,
    jobs: Vec<JobState>,
    next_job: usize,
    suppressed: bool,
    running_cpus: u64,
    running_mem: u64,
}

impl FwState {
    fn wants(&self) -> bool {
        self.jobs.iter().any(|j| j.pending > 0)
    }
}

struct Running {
    fw: usize,
    job: usize,
    part: usize,
    agent: String,
    role: String,
    resources: Resources,
}

fn res(cpus_milli: u64, mem_mb: u64) -> Resources {
    let text = format!(
        "cpus:{}.{:03};mem:{mem_mb}",
        cpus_milli / 1000,
        cpus_milli % 1000
    );
    Resources::parse(&text).unwrap_or_else(|e| panic!("simulator resources '{text}': {e}"))
}

/// Run `workload` under `policy`.
pub fn run(workload: &Workload, policy: Policy, seed: u64) -> Report {
    let nf = workload.frameworks.len();
    let parts = if policy == Policy::Static { nf } else { 1 };
    let mut allocators: Vec<DrfAllocator> = (0..parts)
        .map(|_| {
            DrfAllocator::new(AllocatorConfig {
                seed,
                ..AllocatorConfig::default()
            })
        })
        .collect();
    let agent_res = res(workload.agent_cpus * 1000, workload.agent_mem_mb);
    for i in 0..workload.agents {
        let part = i % parts;
        allocators[part]
            .add_agent(&format!("agent-{i}"), agent_res.clone())
            .expect("fresh agent");
    }
    let mut fws: Vec<FwState> = Vec::new();
    for (i, def) in workload.frameworks.iter().enumerate() {
        let role = def.name.clone();
        let mut spec = FrameworkSpec {
            roles: vec![role.clone()],
            ..FrameworkSpec::default()
        };
        if policy == Policy::Demands {
            // The shape of the largest all-at-once need each framework has.
            if let Some(j) = def.jobs.iter().find(|j| j.gang || def.kind == Kind::Big) {
                spec.demands = vec![Demand {
                    role: role.clone(),
                    shape: res(j.cpus_milli, j.mem_mb),
                    count: if j.gang { j.tasks } else { 1 },
                    same_agent: false,
                }];
            }
        }
        let part = i % parts;
        allocators[part]
            .add_framework(&def.name, spec)
            .expect("fresh framework");
        allocators[part]
            .suppress(&def.name, &[])
            .expect("known framework");
        fws.push(FwState {
            name: def.name.clone(),
            kind: def.kind,
            part,
            jobs: Vec::new(),
            next_job: 0,
            suppressed: true,
            running_cpus: 0,
            running_mem: 0,
        });
    }
    let total_cpus = (workload.agents as u64 * workload.agent_cpus * 1000) as f64;
    let total_mem = (workload.agents as u64 * workload.agent_mem_mb) as f64;
    let mut ends: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut running: Vec<Option<Running>> = Vec::new();
    let mut report = Report::default();
    let (mut cpu_sum, mut mem_sum, mut dist_sum, mut samples) = (0.0, 0.0, 0.0, 0u64);
    let mut now = 0;
    while now < workload.duration_ms {
        now += CYCLE_MS;
        // Tasks ending.
        while let Some(Reverse((end, slot))) = ends.peek().copied() {
            if end > now {
                break;
            }
            ends.pop();
            let Some(r) = running.get_mut(slot).and_then(Option::take) else {
                continue;
            };
            allocators[r.part]
                .recover(&r.agent, &fws[r.fw].name, &r.role, &r.resources, None)
                .expect("a running task's resources come back");
            let f = &mut fws[r.fw];
            f.running_cpus -= r.resources.scalar("cpus").thousandths();
            f.running_mem -= r.resources.scalar("mem").thousandths() / 1000;
            let job = &mut f.jobs[r.job];
            job.running -= 1;
            if job.running == 0 && job.pending == 0 {
                job.wave += 1;
                if job.wave < job.def.waves {
                    job.pending = job.def.tasks;
                } else {
                    let kind = f.kind.name();
                    report
                        .completion_s
                        .entry(kind)
                        .or_default()
                        .push((end - job.def.arrival_ms) as f64 / 1000.0);
                }
            }
        }
        // Jobs arriving; frameworks with work revive.
        for (i, def) in workload.frameworks.iter().enumerate() {
            let f = &mut fws[i];
            while f.next_job < def.jobs.len() && def.jobs[f.next_job].arrival_ms <= now {
                let d = def.jobs[f.next_job].clone();
                f.jobs.push(JobState {
                    pending: d.tasks,
                    def: d,
                    wave: 0,
                    running: 0,
                    started_ms: None,
                });
                f.next_job += 1;
            }
            if f.suppressed && f.wants() {
                allocators[f.part].revive(&f.name, &[]).expect("known");
                f.suppressed = false;
            }
        }
        let mut offers: Vec<(usize, Allocation)> = Vec::new();
        for (p, a) in allocators.iter_mut().enumerate() {
            offers.extend(a.allocate(now).into_iter().map(|o| (p, o)));
        }
        report.offers += offers.len() as u64;
        let mut by_fw: BTreeMap<usize, Vec<(usize, Allocation)>> = BTreeMap::new();
        for (p, o) in offers {
            let i = fws
                .iter()
                .position(|f| f.name == o.framework)
                .expect("known");
            by_fw.entry(i).or_default().push((p, o));
        }
        for (i, offers) in by_fw {
            answer(
                &mut fws[i],
                i,
                offers,
                now,
                &mut allocators,
                &mut running,
                &mut ends,
            );
            let f = &mut fws[i];
            if !f.wants() && !f.suppressed {
                allocators[f.part].suppress(&f.name, &[]).expect("known");
                f.suppressed = true;
            }
        }
        // Samples.
        let used_cpus: u64 = fws.iter().map(|f| f.running_cpus).sum();
        let used_mem: u64 = fws.iter().map(|f| f.running_mem).sum();
        cpu_sum += used_cpus as f64 / total_cpus;
        mem_sum += used_mem as f64 / total_mem;
        dist_sum += drf_distance(&fws, total_cpus, total_mem);
        samples += 1;
    }
    report.cpu_util = cpu_sum / samples.max(1) as f64;
    report.mem_util = mem_sum / samples.max(1) as f64;
    report.drf_distance = dist_sum / samples.max(1) as f64;
    for f in &fws {
        let kind = f.kind.name();
        for j in &f.jobs {
            let wait = match j.started_ms {
                Some(s) => s - j.def.arrival_ms,
                None => {
                    *report.never_started.entry(kind).or_default() += 1;
                    now - j.def.arrival_ms
                }
            };
            report
                .wait_s
                .entry(kind)
                .or_default()
                .push(wait as f64 / 1000.0);
            if j.wave < j.def.waves && f.kind != Kind::Web {
                *report.unfinished.entry(kind).or_default() += 1;
            }
        }
    }
    report
}

/// A framework's answer to one cycle's offers: launch what fits (first fit; a gang only
/// when all its tasks fit in this cycle's offers), decline the rest with a filter.
fn answer(
    f: &mut FwState,
    fi: usize,
    offers: Vec<(usize, Allocation)>,
    now: u64,
    allocators: &mut [DrfAllocator],
    running: &mut Vec<Option<Running>>,
    ends: &mut BinaryHeap<Reverse<(u64, usize)>>,
) {
    // What is left of each offer, in thousandths of a cpu and MB.
    let mut left: Vec<(u64, u64)> = offers
        .iter()
        .map(|(_, o)| {
            (
                o.resources.scalar("cpus").thousandths(),
                o.resources.scalar("mem").thousandths() / 1000,
            )
        })
        .collect();
    let mut placed: Vec<Vec<(usize, u64, u64, u64)>> = vec![Vec::new(); offers.len()];
    for (ji, job) in f.jobs.iter_mut().enumerate() {
        if job.pending == 0 {
            continue;
        }
        let (c, m) = (job.def.cpus_milli, job.def.mem_mb);
        if job.def.gang {
            let fit: u64 = left.iter().map(|(lc, lm)| (lc / c).min(lm / m)).sum();
            if fit < u64::from(job.pending) {
                continue;
            }
        }
        for (k, l) in left.iter_mut().enumerate() {
            while job.pending > 0 && l.0 >= c && l.1 >= m {
                l.0 -= c;
                l.1 -= m;
                let t = (job.def.tasks - job.pending) as usize;
                let d = job
                    .def
                    .durations_ms
                    .get(t)
                    .copied()
                    .unwrap_or(60_000)
                    .max(1);
                placed[k].push((ji, c, m, d));
                job.pending -= 1;
                job.running += 1;
                job.started_ms.get_or_insert(now);
            }
        }
    }
    for (k, (p, o)) in offers.into_iter().enumerate() {
        let mut used = Resources::new();
        for (ji, c, m, d) in &placed[k] {
            let r = res(*c, *m);
            used = used.checked_add(&r).expect("task resources add up");
            f.running_cpus += c;
            f.running_mem += m;
            running.push(Some(Running {
                fw: fi,
                job: *ji,
                part: p,
                agent: o.agent.clone(),
                role: o.role.clone(),
                resources: r,
            }));
            ends.push(Reverse((now.saturating_add(*d), running.len() - 1)));
        }
        let rest = o
            .resources
            .checked_sub(&used)
            .expect("tasks fit in their offer");
        if !rest.is_empty() {
            allocators[p]
                .recover(
                    &o.agent,
                    &o.framework,
                    &o.role,
                    &rest,
                    Some(now + REFUSE_MS),
                )
                .expect("an offer's rest comes back");
        }
    }
}

/// Mean absolute difference between each framework's dominant share (of running tasks)
/// and its share in the DRF ideal (progressive filling of dominant shares, each
/// framework capped at what it wants now: running plus pending tasks).
fn drf_distance(fws: &[FwState], total_cpus: f64, total_mem: f64) -> f64 {
    let wants: Vec<(f64, f64)> = fws
        .iter()
        .map(|f| {
            let (mut c, mut m) = (f.running_cpus as f64, f.running_mem as f64);
            for j in &f.jobs {
                c += (j.pending as u64 * j.def.cpus_milli) as f64;
                m += (j.pending as u64 * j.def.mem_mb) as f64;
            }
            (c / total_cpus, m / total_mem)
        })
        .collect();
    let dom: Vec<f64> = wants.iter().map(|(c, m)| c.max(*m)).collect();
    // Largest common share level s at which the capped demands fit.
    let usage = |s: f64| -> (f64, f64) {
        wants
            .iter()
            .zip(&dom)
            .fold((0.0, 0.0), |(uc, um), ((c, m), d)| {
                if *d <= 0.0 {
                    return (uc, um);
                }
                let k = s.min(*d) / d;
                (uc + c * k, um + m * k)
            })
    };
    let (mut lo, mut hi) = (0.0f64, 1.0f64);
    for _ in 0..40 {
        let mid = (lo + hi) / 2.0;
        let (uc, um) = usage(mid);
        if uc <= 1.0 && um <= 1.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let n = fws.len().max(1) as f64;
    fws.iter()
        .zip(&dom)
        .map(|(f, d)| {
            let actual = (f.running_cpus as f64 / total_cpus).max(f.running_mem as f64 / total_mem);
            (actual - lo.min(*d)).abs()
        })
        .sum::<f64>()
        / n
}

/// A grouped bar chart as SVG: one group per label, one bar per series.
pub fn bar_chart_svg(
    title: &str,
    unit: &str,
    labels: &[&str],
    series: &[(&str, Vec<f64>)],
) -> String {
    let (w, h, left, top, bottom) = (860.0, 420.0, 80.0, 50.0, 360.0);
    let max = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|x| x.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.1;
    let colors = ["#4c72b0", "#dd8452", "#55a868", "#c44e52"];
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n<text x=\"{}\" y=\"28\" font-size=\"16\" text-anchor=\"middle\">{title}</text>\n",
        w / 2.0
    );
    for i in 0..=5 {
        let v = max * i as f64 / 5.0;
        let y = bottom - (bottom - top) * i as f64 / 5.0;
        s += &format!(
            "<line x1=\"{left}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.2}</text>\n",
            w - 20.0,
            left - 6.0,
            y + 4.0
        );
    }
    s += &format!(
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{unit}</text>\n",
        (top + bottom) / 2.0,
        (top + bottom) / 2.0
    );
    let group_w = (w - left - 20.0) / labels.len().max(1) as f64;
    let bar_w = group_w * 0.8 / series.len().max(1) as f64;
    for (g, label) in labels.iter().enumerate() {
        let gx = left + group_w * g as f64 + group_w * 0.1;
        for (k, (_, vals)) in series.iter().enumerate() {
            let v = vals.get(g).copied().unwrap_or(0.0);
            let v = if v.is_finite() { v } else { 0.0 };
            let bh = (bottom - top) * v / max;
            s += &format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"/>\n",
                gx + bar_w * k as f64,
                bottom - bh,
                bar_w * 0.95,
                colors[k % colors.len()]
            );
        }
        s += &format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{label}</text>\n",
            gx + group_w * 0.4,
            bottom + 18.0
        );
    }
    for (k, (name, _)) in series.iter().enumerate() {
        let x = left + 200.0 * k as f64;
        s += &format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">{name}</text>\n",
            bottom + 34.0,
            colors[k % colors.len()],
            x + 16.0,
            bottom + 44.0
        );
    }
    s += "</svg>\n";
    s
}

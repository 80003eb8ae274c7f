//! `agora-schedsim`: runs the scheduling-quality simulator (`agora_benches::schedsim`)
//! on the Mesos-macrobenchmark-like mix under static partitioning, plain weighted DRF and
//! Agora's DRF with demands and holds; prints the figures as a Markdown table and writes
//! bar charts (SVG) to `--out-dir`.

use std::path::PathBuf;

use agora_benches::schedsim::{self, Policy, median, percentile};
use anyhow::Context;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "agora-schedsim",
    about = "Scheduling-quality simulator over the pure allocator"
)]
struct Flags {
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value_t = 40)]
    agents: usize,
    #[arg(long, default_value_t = 4)]
    hours: u64,
    /// Where the SVG charts go (none written when absent).
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let workload = schedsim::mesos_mix(flags.seed, flags.agents, flags.hours);
    let policies = [Policy::Static, Policy::PlainDrf, Policy::Demands];
    let reports: Vec<_> = policies
        .iter()
        .map(|p| schedsim::run(&workload, *p, flags.seed))
        .collect();
    let kinds = ["hadoop", "mpi", "spark", "big"];
    println!(
        "| policy | cpu util | mem util | DRF distance | offers | {} | big wait max (s) | mpi wait max (s) | unfinished jobs |",
        kinds
            .iter()
            .map(|k| format!("{k} JCT median / p95 (s)"))
            .collect::<Vec<_>>()
            .join(" | "),
    );
    println!("|{}", "---|".repeat(8 + kinds.len()));
    for (p, r) in policies.iter().zip(&reports) {
        let jct: Vec<String> = kinds
            .iter()
            .map(|k| {
                let v = r.completion_s.get(k).cloned().unwrap_or_default();
                format!("{:.0} / {:.0}", median(&v), percentile(&v, 0.95))
            })
            .collect();
        let max_wait = |k: &str| {
            r.wait_s
                .get(k)
                .map(|v| v.iter().copied().fold(0.0f64, f64::max))
                .unwrap_or(0.0)
        };
        let unfinished: usize = r.unfinished.values().sum();
        let starved: usize = r.never_started.values().sum();
        println!(
            "| {} | {:.1}% | {:.1}% | {:.3} | {} | {} | {:.0} | {:.0} | {unfinished} ({starved} never started) |",
            p.name(),
            r.cpu_util * 100.0,
            r.mem_util * 100.0,
            r.drf_distance,
            r.offers,
            jct.join(" | "),
            max_wait("big"),
            max_wait("mpi"),
        );
    }
    if let Some(dir) = flags.out_dir {
        let names: Vec<&str> = policies.iter().map(|p| p.name()).collect();
        let util = schedsim::bar_chart_svg(
            "Utilisation by policy (time average)",
            "fraction of the cluster",
            &["cpu", "mem"],
            &names
                .iter()
                .zip(&reports)
                .map(|(n, r)| (*n, vec![r.cpu_util, r.mem_util]))
                .collect::<Vec<_>>(),
        );
        let jct = schedsim::bar_chart_svg(
            "Median job completion time by kind",
            "seconds",
            &kinds,
            &names
                .iter()
                .zip(&reports)
                .map(|(n, r)| {
                    (
                        *n,
                        kinds
                            .iter()
                            .map(|k| median(&r.completion_s.get(k).cloned().unwrap_or_default()))
                            .collect(),
                    )
                })
                .collect::<Vec<_>>(),
        );
        let wait = schedsim::bar_chart_svg(
            "Longest wait to start (starvation)",
            "seconds",
            &["big (16-cpu task)", "mpi (gang of 8)"],
            &names
                .iter()
                .zip(&reports)
                .map(|(n, r)| {
                    let max = |k: &str| {
                        r.wait_s
                            .get(k)
                            .map(|v| v.iter().copied().fold(0.0f64, f64::max))
                            .unwrap_or(0.0)
                    };
                    (*n, vec![max("big"), max("mpi")])
                })
                .collect::<Vec<_>>(),
        );
        for (file, svg) in [
            ("sim-utilisation.svg", util),
            ("sim-completion.svg", jct),
            ("sim-starvation.svg", wait),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, svg).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

//! `agora-sim`: runs seeds of the deterministic cluster simulation and reports what ran
//! (seeds, simulated time, faults injected) or the first failure with its reproduction.
//!
//!   agora-sim --seed 7                      one seed
//!   agora-sim --seeds 1000 --first 1        a soak over seeds 1..=1000

use std::process::ExitCode;
use std::time::Instant;

use agora_sim::{Config, Report};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Deterministic simulation of an Agora cluster under injected faults")]
struct Args {
    /// Run only this seed.
    #[arg(long)]
    seed: Option<u64>,
    /// How many consecutive seeds to run (a soak), starting at --first.
    #[arg(long, default_value_t = 20)]
    seeds: u64,
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Steps with faults per seed (100 ms of simulated time each).
    #[arg(long, default_value_t = 3_000)]
    steps: u64,
    #[arg(long, default_value_t = 4)]
    agents: usize,
    #[arg(long, default_value_t = 3)]
    frameworks: usize,
    /// Print the master's log lines at this level and above (e.g. `warn`, `debug`).
    #[arg(long)]
    log: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(level) = &args.log {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(std::io::stderr)
            .init();
    }
    let seeds: Vec<u64> = match args.seed {
        Some(s) => vec![s],
        None => (args.first..args.first.saturating_add(args.seeds)).collect(),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("agora-sim: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let mut total = Report::default();
    for &seed in &seeds {
        let config = Config {
            steps: args.steps,
            agents: args.agents,
            frameworks: args.frameworks,
            ..Config::new(seed)
        };
        match runtime.block_on(agora_sim::run(config)) {
            Ok(r) => {
                total.steps += r.steps;
                total.simulated_ms += r.simulated_ms;
                total.tasks_launched += r.tasks_launched;
                total.updates_generated += r.updates_generated;
                total.messages_dropped += r.messages_dropped;
                total.messages_duplicated += r.messages_duplicated;
                total.messages_delayed += r.messages_delayed;
                total.agent_crashes += r.agent_crashes;
                total.partitions += r.partitions;
                total.master_crashes += r.master_crashes;
                total.failovers += r.failovers;
            }
            Err(failure) => {
                eprintln!("FAILED {failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{} seeds passed in {:.1} s: {:.1} simulated hours, {} tasks launched, {} updates, {} faults \
         ({} dropped, {} duplicated, {} delayed messages; {} agent crashes, {} partitions, \
         {} master crashes, {} framework failovers)",
        seeds.len(),
        started.elapsed().as_secs_f64(),
        total.simulated_ms as f64 / 3_600_000.0,
        total.tasks_launched,
        total.updates_generated,
        total.faults(),
        total.messages_dropped,
        total.messages_duplicated,
        total.messages_delayed,
        total.agent_crashes,
        total.partitions,
        total.master_crashes,
        total.failovers,
    );
    ExitCode::SUCCESS
}

//! A minimal Agora framework: the scheduler SDK in about a hundred lines.
//!
//! It launches `--tasks N` copies of a shell command, each using `--cpus`/`--mem`, prints
//! every state change, and exits when all copies have ended (status 0 only if all
//! FINISHED). Offers it does not need are declined with a long filter so the master
//! offers those resources to other frameworks instead.
//!
//! ```text
//! agora-example-framework --master 127.0.0.1:5050 --tasks 3 --command 'echo hello from $AGORA_TASK_ID'
//! ```
//!
//! This is teaching material: it must stay short and obvious. Anything clever (timeouts,
//! retries, reconciliation) belongs in a real framework such as `agora run`.

use std::collections::BTreeMap;
use std::process::ExitCode;

use agora_sdk::proto::{FrameworkInfo, Offer, TaskState, TaskStatus};
use agora_sdk::{Driver, Resources, Scheduler, Subscribed, TaskBuilder};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Launch N shell tasks on an Agora cluster and wait for them")]
struct Args {
    /// Master address(es), comma separated.
    #[arg(long, default_value = "127.0.0.1:5050", value_delimiter = ',')]
    master: Vec<String>,
    /// How many tasks to launch.
    #[arg(long, default_value_t = 3)]
    tasks: u32,
    /// CPUs per task.
    #[arg(long, default_value_t = 0.1)]
    cpus: f64,
    /// Memory per task, in MB.
    #[arg(long, default_value_t = 32.0)]
    mem: f64,
    /// Shell command each task runs.
    #[arg(long, default_value = "echo hello from $AGORA_TASK_ID; sleep 1")]
    command: String,
}

/// The scheduler's whole state. The driver calls one callback at a time, so plain fields
/// (no locks) are enough.
struct Example {
    /// What one task needs.
    shape: Resources,
    /// The task every launch copies; only the id and the agent change.
    task: TaskBuilder,
    /// How many tasks are still to be launched.
    to_launch: u32,
    /// Latest state of every launched task.
    states: BTreeMap<String, TaskState>,
}

impl Scheduler for Example {
    async fn subscribed(&mut self, _driver: &Driver, info: Subscribed) {
        println!("registered as framework {}", info.framework_id);
    }

    async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
        for offer in offers {
            // Offers are untrusted input: skip one whose resources do not parse.
            let mut available = agora_sdk::offer_resources(&offer).unwrap_or_default();

            // Cut as many task-sized pieces out of the offer as we still need.
            let mut tasks = Vec::new();
            while self.to_launch > 0 {
                let Some(resources) = agora_sdk::take(&mut available, &self.shape) else {
                    break; // the rest of this offer is too small
                };
                let id = format!("example-{}", self.states.len() + tasks.len());
                tasks.push(
                    self.task
                        .clone()
                        .resources(resources)
                        .build(id, &offer.agent_id),
                );
                self.to_launch -= 1;
            }

            if tasks.is_empty() {
                // Nothing to do with this offer: hand it back and don't see it again for an
                // hour (the master re-offers it to others meanwhile).
                let _ = driver.decline(vec![offer.id], Some(3600.0)).await;
                continue;
            }

            let ids: Vec<String> = tasks.iter().map(|t| t.task_id.clone()).collect();
            match driver.launch(offer.id, tasks, None).await {
                Ok(_) => {
                    for id in ids {
                        self.states.insert(id, TaskState::Staging);
                    }
                }
                Err(e) => {
                    // The launch was refused as a whole; try again on a later offer.
                    eprintln!("launch refused: {e}");
                    self.to_launch += ids.len() as u32;
                }
            }
        }
    }

    async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
        println!(
            "{} is {} {}",
            status.task_id,
            status.state().as_str_name(),
            status.message
        );
        self.states.insert(status.task_id.clone(), status.state());
        // (The driver acknowledges the update for us once this callback returns.)

        let all_ended = self.to_launch == 0 && self.states.values().all(|s| s.is_terminal());
        if all_ended {
            // Remove the framework from the master; this also stops the driver.
            if driver.teardown().await.is_err() {
                driver.stop();
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if args.tasks == 0 {
        println!("nothing to launch");
        return Ok(ExitCode::SUCCESS);
    }

    let scheduler = Example {
        shape: agora_sdk::cpus_mem(args.cpus, args.mem)?,
        task: TaskBuilder::shell(args.command),
        to_launch: args.tasks,
        states: BTreeMap::new(),
    };
    let framework = FrameworkInfo {
        name: "agora-example-framework".into(),
        ..Default::default()
    };

    // Runs until the scheduler tears the framework down (or the master ends it).
    let finished = agora_sdk::run(args.master, framework, scheduler).await?;

    let states = &finished.scheduler.states;
    let all_finished = states.values().all(|s| *s == TaskState::Finished);
    Ok(if all_finished && finished.scheduler.to_launch == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

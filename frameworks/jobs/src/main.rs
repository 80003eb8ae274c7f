//! `agora-jobs`: the jobs framework daemon. Subscribes to the master with the framework id
//! it stored (so a restarted daemon fails over to its own tasks), serves the REST API, and
//! runs scheduled and dependent jobs. See `docs/jobs.md`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agora_jobs::clock::{Clock, SystemClock};
use agora_jobs::engine::EngineConfig;
use agora_jobs::store::Store;
use agora_jobs::{api, daemon};
use agora_sdk::proto::FrameworkInfo;
use agora_sdk::{Driver, DriverConfig};
use anyhow::Context;
use clap::Parser;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "Agora jobs: scheduled and dependent batch jobs with a REST API")]
struct Args {
    /// Master address(es), comma separated, tried in order.
    #[arg(
        long,
        env = "AGORA_MASTER",
        default_value = "127.0.0.1:5050",
        value_delimiter = ','
    )]
    master: Vec<String>,
    /// Address the REST API listens on.
    #[arg(long, default_value = "127.0.0.1:5060")]
    listen: SocketAddr,
    /// Directory of the daemon's store (jobs, schedules, run history, framework id).
    #[arg(long, default_value = "./.agora-jobs")]
    data_dir: PathBuf,
    /// Roles to subscribe with; a job's `run.role` must be one of them, the first is the
    /// default.
    #[arg(long, default_value = "default", value_delimiter = ',')]
    role: Vec<String>,
    /// Framework name.
    #[arg(long, default_value = "agora-jobs")]
    name: String,
    /// How long the master keeps the framework's tasks while the daemon is away.
    #[arg(long, default_value_t = 604_800.0)]
    failover_timeout_seconds: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let path = args.data_dir.join("jobs.redb");
    let store = Store::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = EngineConfig {
        roles: args.role.clone(),
    };
    let (engine, framework_id) = daemon::load(&store, config, clock.now_ms())
        .with_context(|| format!("cannot read {}", path.display()))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("listener address")?;

    let driver = Driver::new(DriverConfig::new(args.master.clone()));
    let (actor, handle, scheduler) =
        daemon::start(engine, store, driver.clone(), clock, framework_id.clone());
    let framework = FrameworkInfo {
        id: framework_id.clone().unwrap_or_default(),
        name: args.name.clone(),
        roles: args.role.clone(),
        failover_timeout_seconds: args.failover_timeout_seconds,
        checkpoint: true,
        webui_url: format!("http://{local}/"),
        ..Default::default()
    };
    match &framework_id {
        Some(id) => tracing::info!(framework = %id, "failing over as the stored framework"),
        None => tracing::info!("registering a new framework"),
    }
    let mut actor_task = tokio::spawn(actor.run());
    let mut driver_task = tokio::spawn(driver.clone().run(framework, scheduler));
    let app = api::router(handle);
    let mut http_task = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("agora-jobs listening on http://{local}");

    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    tokio::select! {
        _ = sigint.recv() => tracing::info!("SIGINT: stopping (the framework stays registered)"),
        _ = sigterm.recv() => tracing::info!("SIGTERM: stopping (the framework stays registered)"),
        r = &mut actor_task => {
            driver.stop();
            match r {
                Ok(Ok(())) => anyhow::bail!("the engine stopped"),
                Ok(Err(e)) => return Err(e).context("the store failed"),
                Err(e) => anyhow::bail!("the engine failed: {e}"),
            }
        }
        r = &mut driver_task => {
            match r {
                Ok(Ok(f)) => anyhow::bail!("the driver stopped: {:?}", f.reason),
                Ok(Err(e)) => return Err(e).context("the scheduler driver failed"),
                Err(e) => anyhow::bail!("the driver failed: {e}"),
            }
        }
        r = &mut http_task => anyhow::bail!("the HTTP server stopped: {r:?}"),
    }
    driver.stop();
    let _ = driver_task.await;
    Ok(())
}

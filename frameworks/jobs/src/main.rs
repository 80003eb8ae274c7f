//! `agora-jobs`: the jobs framework daemon. Subscribes to the master with the framework id
//! it stored (so a restarted daemon fails over to its own tasks), serves the REST API, and
//! runs scheduled and dependent jobs. See `docs/jobs.md`. With `--etcd-endpoints` it is one
//! of several instances: the state lives in etcd, and only the elected one acts
//! (`agora_framework_store::ha`); the others redirect REST calls to it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agora_jobs::clock::{Clock, SystemClock};
use agora_jobs::engine::EngineConfig;
use agora_jobs::store::Store;
use agora_jobs::store::ha::{self, EtcdFlags, Front, Leader};
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
    #[command(flatten)]
    etcd: EtcdFlags,
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
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let local = listener.local_addr().context("listener address")?;
    // With etcd: serve as a follower at once, and act only once elected.
    let mut http_task = None;
    let mut listener = Some(listener);
    let (store, front, leader, source): (Store, Option<Front>, Option<Leader>, String) = match args
        .etcd
        .config(&args.name, local)
        .context("--etcd-ca-file")?
    {
        None => {
            std::fs::create_dir_all(&args.data_dir)
                .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
            let path = args.data_dir.join("jobs.redb");
            let store =
                Store::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            (store, None, None, path.display().to_string())
        }
        Some(config) => {
            let front = Front::new(&config.advertise);
            let app = front.router();
            if let Some(l) = listener.take() {
                http_task = Some(tokio::spawn(async move { axum::serve(l, app).await }));
            }
            println!(
                "agora-jobs listening on http://{local} (following until elected through etcd)"
            );
            let leader = ha::campaign(&config, &front)
                .await
                .context("--etcd-endpoints")?;
            let store = leader
                .open_store()
                .await
                .context("opening the store in etcd")?;
            let source = format!("etcd {}/store", config.prefix);
            (store, Some(front), Some(leader), source)
        }
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let config = EngineConfig {
        roles: args.role.clone(),
    };
    let (engine, framework_id) = daemon::load(&store, config, clock.now_ms())
        .with_context(|| format!("cannot read {source}"))?;

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
    match (&front, listener) {
        (Some(front), _) => front.lead(app),
        (None, Some(l)) => {
            http_task = Some(tokio::spawn(async move { axum::serve(l, app).await }));
        }
        (None, None) => anyhow::bail!("the listener was handed to no server"),
    }
    let Some(mut http_task) = http_task else {
        anyhow::bail!("the HTTP server did not start");
    };
    println!("agora-jobs listening on http://{local}");
    let lost = async {
        match &leader {
            Some(l) => l.hold().await,
            None => std::future::pending().await,
        }
    };

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
        why = lost => {
            // Another instance may lead now: stop acting at once (the store refuses this
            // term's writes anyway) and start again as a follower.
            driver.stop();
            tracing::error!(reason = %why, "lost leadership; restarting as a follower");
            return Err(ha::restart_as_follower()).context("restarting as a follower");
        }
    }
    driver.stop();
    let _ = driver_task.await;
    if let Some(l) = &leader {
        l.resign().await;
    }
    Ok(())
}

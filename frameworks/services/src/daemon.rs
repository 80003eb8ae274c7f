//! The daemon's wiring: open the durable state, rebuild the core from it, start the
//! service actor and the HTTP API, then run the SDK driver with framework-id failover
//! (the id lives in the same store) until SIGINT/SIGTERM. With `--etcd-endpoints` the
//! state lives in etcd and the daemon is one of several instances: it serves as a follower
//! (redirecting to the leader) until elected, and stops acting the moment its term ends
//! (`agora_framework_store::ha`).
//!
//! A thin edge: it must never make scheduling decisions. The bridge below only forwards
//! the driver's callbacks to the actor and waits for it, so a status update is
//! acknowledged only after the actor persisted its effect.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use agora_framework_store::ha::{self, EtcdFlags, Front, Leader};
use agora_sdk::proto::{FrameworkCapability, FrameworkInfo, Offer, TaskStatus};
use agora_sdk::{Credential, Driver, DriverConfig, Reconciling, Scheduler, Subscribed, TlsOptions};
use anyhow::Context;

use crate::api::{ApiConfig, router};
use crate::core::Core;
use crate::service::Service;
use crate::state::ServicesState;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Master addresses.
    pub masters: Vec<String>,
    /// Where the API listens (port 0: any free port; the address is printed).
    pub listen: SocketAddr,
    /// Where the durable state lives.
    pub data_dir: PathBuf,
    /// The role the framework subscribes with (apps run in it).
    pub role: String,
    /// The framework name.
    pub name: String,
    /// How long the master keeps the framework's tasks after losing the daemon.
    pub failover_timeout_seconds: f64,
    /// Credential for secured masters.
    pub credential: Option<Credential>,
    /// TLS for `https://` masters.
    pub tls: Option<TlsOptions>,
    /// Several instances, one leader, the state in etcd (when endpoints are given).
    pub etcd: EtcdFlags,
    /// Serve service discovery DNS (UDP and TCP) on this address.
    pub dns_listen: Option<SocketAddr>,
    /// The domain apps are named under in DNS.
    pub dns_domain: String,
    /// How often agents and usage are read from the master (draining agents, addresses,
    /// autoscaling).
    pub cluster_interval: std::time::Duration,
}

/// Forwards the driver's callbacks to the service actor.
struct Bridge {
    service: Service,
}

impl Scheduler for Bridge {
    async fn subscribed(&mut self, driver: &Driver, info: Subscribed) {
        tracing::info!(
            framework = %info.framework_id,
            master = %info.master_address,
            resubscribed = info.resubscribed,
            "subscribed"
        );
        if self.service.subscribed().await.is_err() {
            driver.stop();
        }
    }

    async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
        if self.service.offers(offers).await.is_err() {
            driver.stop();
        }
    }

    async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
        // Persisted in bulk by `before_acknowledge`, before the SDK acknowledges it.
        if self.service.status_deferred(status).await.is_err() {
            driver.stop();
        }
    }

    async fn before_acknowledge(&mut self, driver: &Driver) {
        if self.service.flush().await.is_err() {
            // Not acknowledged in effect: the agent re-sends them to the next run.
            driver.stop();
        }
    }

    async fn disconnected(&mut self, _driver: &Driver) {
        self.service.disconnected().await;
    }
}

impl Reconciling for Bridge {
    async fn known_tasks(&mut self) -> Vec<(String, String)> {
        self.service.known_tasks().await.unwrap_or_default()
    }
}

/// Run until a signal or a fatal driver error.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr().context("listener address")?;
    let mut listener = Some(listener);
    let (state, front, leader): (ServicesState, Option<Front>, Option<Leader>) = match config
        .etcd
        .config(&config.name, address)
        .context("--etcd-ca-file")?
    {
        None => {
            let state = ServicesState::open(&config.data_dir)
                .with_context(|| format!("opening the state in {}", config.data_dir.display()))?;
            (state, None, None)
        }
        Some(ha) => {
            // Serve as a follower at once; act only once elected.
            let front = Front::new(&ha.advertise);
            let app = front.router();
            if let Some(l) = listener.take() {
                tokio::spawn(async move {
                    if let Err(e) = axum::serve(l, app).await {
                        tracing::error!(error = %e, "the HTTP API stopped");
                    }
                });
            }
            println!(
                "agora-services API listening on http://{address} (following until elected through etcd)"
            );
            let leader = ha::campaign(&ha, &front)
                .await
                .context("--etcd-endpoints")?;
            let store = leader
                .open_store()
                .await
                .context("opening the state in etcd")?;
            (ServicesState::on(store), Some(front), Some(leader))
        }
    };
    let loaded = state.load().context("loading the state")?;
    tracing::info!(
        apps = loaded.apps.len(),
        instances = loaded.instances.len(),
        deployments = loaded.deployments.len(),
        "state loaded"
    );
    let core = Core::recover(
        config.role.clone(),
        loaded.apps,
        loaded.instances,
        loaded.deployments,
    );
    let mut driver_config = DriverConfig::new(config.masters.clone());
    driver_config.credential = config.credential.clone();
    driver_config.tls = config.tls.clone();
    let driver = Driver::new(driver_config);
    let service = Service::start(
        core,
        state.clone(),
        driver.clone(),
        config.dns_listen.map(|_| config.dns_domain.clone()),
    );
    if let Some(dns) = config.dns_listen {
        let bound = crate::dns::start(dns, service.zone())
            .await
            .with_context(|| format!("binding the DNS server on {dns}"))?;
        println!(
            "agora-services DNS listening on {bound} (udp and tcp), domain {}",
            crate::discovery::fqdn(&config.dns_domain)
        );
    }
    tokio::spawn(crate::cluster::watch(
        driver.clone(),
        service.clone(),
        config.cluster_interval,
    ));

    let api = router(
        service.clone(),
        ApiConfig {
            name: config.name.clone(),
            masters: config.masters.clone(),
            http_address: address.to_string(),
            role: config.role.clone(),
        },
        driver.clone(),
    );
    match (&front, listener) {
        (Some(front), _) => front.lead(api),
        (None, Some(listener)) => {
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, api).await {
                    tracing::error!(error = %e, "the HTTP API stopped");
                }
            });
        }
        (None, None) => anyhow::bail!("the listener was handed to no server"),
    }
    println!("agora-services API listening on http://{address}");

    let framework = FrameworkInfo {
        name: config.name.clone(),
        roles: vec![config.role.clone()],
        failover_timeout_seconds: config.failover_timeout_seconds,
        checkpoint: true,
        webui_url: format!("http://{address}"),
        capabilities: vec![
            FrameworkCapability::PartitionAware as i32,
            FrameworkCapability::TaskKillingState as i32,
        ],
        ..Default::default()
    };
    let stopper = driver.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("stopping (the framework stays registered; its tasks keep running)");
        stopper.stop();
    });
    let lost_driver = driver.clone();
    let lost = async {
        match &leader {
            Some(l) => l.hold().await,
            None => std::future::pending().await,
        }
    };
    let finished = tokio::select! {
        r = agora_sdk::run_failover(driver, framework, Arc::new(state), Bridge { service }) => {
            r.context("the scheduler driver failed")?
        }
        why = lost => {
            // Another instance may lead now: stop acting at once (the store refuses this
            // term's writes anyway) and start again as a follower.
            lost_driver.stop();
            tracing::error!(reason = %why, "lost leadership; restarting as a follower");
            return Err(ha::restart_as_follower()).context("restarting as a follower");
        }
    };
    tracing::info!(reason = ?finished.reason, "driver stopped");
    if let Some(l) = &leader {
        l.resign().await;
    }
    Ok(())
}

//! `agora-master`: runs one master.

/// With the `mimalloc` feature: glibc's allocator spent a quarter of the master's time under
/// load in its own bookkeeping (free-list consolidation and chunk unlinking); mimalloc's
/// per-thread pages do not, at the price of more resident memory per agent (see
/// docs/performance.md). Without it, glibc is tuned by `malloc::tune`.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use agora_master::{MasterConfig, RunningMaster, clock::SystemClock};
use anyhow::{Context, bail};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "agora-master",
    version,
    about = "Agora master: allocates cluster resources to frameworks"
)]
struct Flags {
    /// Address for gRPC and HTTP.
    #[arg(long, default_value = "127.0.0.1:5050")]
    listen: SocketAddr,
    /// Directory for the master's persistent data.
    #[arg(long, default_value = "/tmp/agora-master")]
    data_dir: PathBuf,
    /// Allocation policy.
    #[arg(long, default_value = "drf")]
    allocator: String,
    /// Seed for the allocator's tie-breaking.
    #[arg(long, default_value_t = 0)]
    allocator_seed: u64,
    /// Period of the allocation cycle that expires filters (events allocate at once).
    #[arg(long, default_value_t = 1000)]
    allocation_interval_ms: u64,
    /// Minimum re-offer delay in ms: declined resources (also with `refuse_seconds: 0`) are
    /// not offered to the same framework on that agent again sooner (0 disables).
    #[arg(long, default_value_t = agora_master::config::DEFAULT_MIN_REFUSE_MS)]
    min_refuse_ms: u64,
    /// Minimum offer: alternatives separated by `|`, each a resource bag, e.g.
    /// `cpus:0.01;mem:32|gpus:1` (empty: no minimum). Frameworks may set their own.
    #[arg(long, default_value = agora_master::allocator::DEFAULT_MIN_ALLOCATABLE)]
    min_allocatable: String,
    /// Frameworks with a declared demand that may hold agents at one time (0: no holds).
    #[arg(long, default_value_t = 1)]
    hold_max_frameworks: usize,
    /// Agents one demanding framework may hold.
    #[arg(long, default_value_t = 16)]
    hold_max_agents_per_framework: usize,
    /// A hold ends after this many seconds, served or not.
    #[arg(long, default_value_t = 3600.0)]
    hold_max_seconds: f64,
    /// A hold ends after this many seconds without anything more freeing for it.
    #[arg(long, default_value_t = 600.0)]
    hold_stall_seconds: f64,
    /// Heartbeat interval agents must keep.
    #[arg(long, default_value_t = 15.0)]
    agent_heartbeat_seconds: f64,
    /// Missed heartbeats before an agent is unreachable.
    #[arg(long, default_value_t = 5)]
    agent_max_missed_heartbeats: u32,
    /// HEARTBEAT events to frameworks.
    #[arg(long, default_value_t = 15.0)]
    framework_heartbeat_seconds: f64,
    /// Seconds before an unanswered offer is rescinded (0 disables).
    #[arg(long, default_value_t = 60.0)]
    offer_timeout_seconds: f64,
    /// Events a framework may leave unread before it is disconnected (it re-subscribes and
    /// reconciles).
    #[arg(long, default_value_t = agora_master::config::DEFAULT_FRAMEWORK_QUEUE_CAPACITY as u32,
          value_parser = clap::value_parser!(u32).range(16..=4_194_304))]
    framework_queue_capacity: u32,
    /// Threads serving connections and the actor: 0 = one per core; 1 = everything on
    /// the main thread (no cross-thread hand-offs; the master then uses one core).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    worker_threads: u16,
    /// Role weights, e.g. `spark=2.5,marathon=1.5`.
    #[arg(long, default_value = "")]
    weights: String,
    /// JSON file of principals and secrets: `[{"principal": "p", "secret": "s"}]`.
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Scheduler API calls must carry valid credentials.
    #[arg(long)]
    authenticate_frameworks: bool,
    /// Agent API calls must carry valid credentials.
    #[arg(long)]
    authenticate_agents: bool,
    /// Operator API (gRPC) and HTTP endpoints (all but /health) must carry valid credentials.
    #[arg(long)]
    authenticate_http: bool,
    /// JSON file of ACLs (deny by default once given); see docs/operator-guide.md.
    #[arg(long)]
    acls: Option<PathBuf>,
    /// JSON file of per-principal scheduler call rate limits.
    #[arg(long)]
    rate_limits: Option<PathBuf>,
    /// PEM certificate chain: serve gRPC and HTTP over TLS only.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM CA certificates: require client certificates signed by one of them (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// PEM CA certificates that signed the agents' `--listen-tls-cert`: the sandbox proxy
    /// (`/api/v1/tasks/.../files/...`) then reaches agents over TLS only, verifying them.
    #[arg(long)]
    agent_tls_ca: Option<PathBuf>,
    /// Mark at most one agent unreachable per interval when many miss heartbeats at once,
    /// e.g. `1/20mins`, `1/30secs`, `1/1hrs` (default: no limit).
    #[arg(long)]
    agent_removal_rate: Option<String>,
    /// After a restart, seconds agents admitted before it may take to re-register: until
    /// then reconciliation says nothing about their tasks; afterwards they are marked
    /// unreachable.
    #[arg(long, default_value_t = 600.0)]
    agent_reregistration_timeout_seconds: f64,
    /// etcd client URLs, comma-separated (e.g. `http://10.0.0.1:2379,http://10.0.0.2:2379`):
    /// run as one of several masters, one leader elected through etcd, the registry in
    /// etcd. Without it: a single master on the file registry in --data-dir.
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Prefix of every etcd key of this cluster.
    #[arg(long, default_value = "/agora")]
    etcd_prefix: String,
    /// The leader's lease in seconds: a dead leader is replaced about this long after it
    /// stopped; a leader cut off from etcd steps down before it ends.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(2..=300))]
    etcd_lease_ttl_seconds: u64,
    /// HOST:PORT other masters send clients to when this one leads (default: the bound
    /// --listen address).
    #[arg(long, default_value = "")]
    advertise: String,
    /// CA certificate (PEM) of etcd's members, for `https://` etcd endpoints.
    #[arg(long)]
    etcd_ca_file: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for etcd members started with --client-cert-auth (with
    /// --etcd-key-file).
    #[arg(long, requires = "etcd_key_file", requires = "etcd_ca_file")]
    etcd_cert_file: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "etcd_cert_file")]
    etcd_key_file: Option<std::path::PathBuf>,
}

fn read(flag: &str, path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("--{flag}: cannot read {}", path.display()))
}

fn read_text(flag: &str, path: &std::path::Path) -> anyhow::Result<String> {
    String::from_utf8(read(flag, path)?)
        .with_context(|| format!("--{flag}: {} is not UTF-8 text", path.display()))
}

/// `1/20mins` -> 20 minutes. Units: secs, mins, hrs (singular forms too).
fn parse_removal_rate(text: &str) -> anyhow::Result<Duration> {
    let bad = || {
        format!(
            "--agent-removal-rate '{text}': expected 1/<number><unit> with unit secs, mins or hrs, e.g. 1/20mins"
        )
    };
    let Some(("1", period)) = text.trim().split_once('/') else {
        bail!(bad());
    };
    let split = period
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .with_context(bad)?;
    let (n, unit) = period.split_at(split);
    let n: f64 = n
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(bad)?;
    let unit_seconds = match unit {
        "sec" | "secs" | "s" => 1.0,
        "min" | "mins" | "m" => 60.0,
        "hr" | "hrs" | "h" => 3600.0,
        _ => bail!(bad()),
    };
    Ok(Duration::from_secs_f64(n * unit_seconds))
}

fn security(flags: &Flags) -> anyhow::Result<agora_master::auth::SecurityConfig> {
    use agora_master::auth::{Acls, Credentials, RateLimits, SecurityConfig, TlsFiles};
    let credentials = match &flags.credentials {
        Some(p) => Some(
            Credentials::parse(&read_text("credentials", p)?)
                .with_context(|| format!("--credentials {}", p.display()))?,
        ),
        None => None,
    };
    let acls = match &flags.acls {
        Some(p) => Some(
            Acls::parse(&read_text("acls", p)?)
                .with_context(|| format!("--acls {}", p.display()))?,
        ),
        None => None,
    };
    let rate_limits = match &flags.rate_limits {
        Some(p) => Some(
            RateLimits::parse(&read_text("rate-limits", p)?)
                .with_context(|| format!("--rate-limits {}", p.display()))?,
        ),
        None => None,
    };
    let tls = match (&flags.tls_cert, &flags.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert_pem: read("tls-cert", cert)?,
            key_pem: read("tls-key", key)?,
            client_ca_pem: flags
                .tls_client_ca
                .as_deref()
                .map(|p| read("tls-client-ca", p))
                .transpose()?,
        }),
        _ => None,
    };
    let agent_tls = match &flags.agent_tls_ca {
        Some(p) => Some(agora_master::auth::tls::client_config(
            "--agent-tls-ca",
            &read("agent-tls-ca", p)?,
        )?),
        None => None,
    };
    let config = SecurityConfig {
        credentials,
        authenticate_frameworks: flags.authenticate_frameworks,
        authenticate_agents: flags.authenticate_agents,
        authenticate_http: flags.authenticate_http,
        acls,
        rate_limits,
        tls,
        agent_tls,
    };
    config.check()?;
    if let Some(files) = &config.tls {
        // Fail at start-up, not at the first connection.
        agora_master::auth::tls::server_config(files)?;
    }
    Ok(config)
}

fn parse_weights(text: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((role, w)) = item.split_once('=') else {
            bail!("weight '{item}' is not ROLE=WEIGHT");
        };
        let w: f64 = w
            .trim()
            .parse()
            .with_context(|| format!("weight '{item}': not a number"))?;
        if !w.is_finite() || w <= 0.0 {
            bail!("weight '{item}': must be > 0");
        }
        agora_resources::validate_role(role.trim()).with_context(|| format!("weight '{item}'"))?;
        out.push((role.trim().to_string(), w));
    }
    Ok(out)
}

fn seconds(flag: &str, v: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 {
        bail!("--{flag} must be a positive number of seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

fn main() -> anyhow::Result<()> {
    #[cfg(not(feature = "mimalloc"))]
    malloc::tune();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let flags = Flags::parse();
    let mut runtime = match flags.worker_threads {
        // One thread runs the actor and every connection: no cross-thread wake-ups, which
        // on a small or virtual machine cost more than the work they hand over.
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                b.worker_threads(n as usize);
            }
            b
        }
    };
    let runtime = runtime
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run(flags))
}

async fn run(flags: Flags) -> anyhow::Result<()> {
    if flags.allocation_interval_ms == 0 {
        bail!("--allocation-interval-ms must be > 0");
    }
    if flags.agent_max_missed_heartbeats == 0 {
        bail!("--agent-max-missed-heartbeats must be > 0");
    }
    let security = security(&flags)?;
    let min_allocatable = agora_master::allocator::parse_min_allocatable(&flags.min_allocatable)
        .map_err(|e| anyhow::anyhow!("--min-allocatable: {e}"))?;
    let holds = agora_master::allocator::HoldConfig {
        max_frameworks: flags.hold_max_frameworks,
        max_agents_per_framework: flags.hold_max_agents_per_framework,
        max_ms: seconds("hold-max-seconds", flags.hold_max_seconds)?.as_millis() as u64,
        stall_ms: seconds("hold-stall-seconds", flags.hold_stall_seconds)?.as_millis() as u64,
        ..agora_master::allocator::HoldConfig::default()
    };
    let config = MasterConfig {
        min_refuse_ms: flags.min_refuse_ms,
        min_allocatable,
        holds,
        listen: flags.listen,
        data_dir: flags.data_dir,
        allocator: flags.allocator,
        allocator_seed: flags.allocator_seed,
        allocation_interval: Duration::from_millis(flags.allocation_interval_ms),
        agent_heartbeat: seconds("agent-heartbeat-seconds", flags.agent_heartbeat_seconds)?,
        agent_max_missed_heartbeats: flags.agent_max_missed_heartbeats,
        framework_heartbeat: seconds(
            "framework-heartbeat-seconds",
            flags.framework_heartbeat_seconds,
        )?,
        offer_timeout: match flags.offer_timeout_seconds {
            0.0 => None,
            s => Some(seconds("offer-timeout-seconds", s)?),
        },
        weights: parse_weights(&flags.weights)?,
        framework_queue_capacity: flags.framework_queue_capacity as usize,
        security,
        agent_removal_interval: flags
            .agent_removal_rate
            .as_deref()
            .map(parse_removal_rate)
            .transpose()?,
        agent_reregistration_timeout: seconds(
            "agent-reregistration-timeout-seconds",
            flags.agent_reregistration_timeout_seconds,
        )?,
        ..MasterConfig::default()
    };
    if flags.etcd_endpoints.is_empty() {
        let master = RunningMaster::start(config, Arc::new(SystemClock))
            .await
            .context("starting the master")?;
        tracing::info!(addr = %master.addr, master_id = %master.master_id, "agora-master listening (gRPC and HTTP)");
        println!(
            "agora-master listening on {} (gRPC, and HTTP at http://{}/)",
            master.addr, master.addr
        );
        master.serve(shutdown_signal()).await.context("serving")?;
        return Ok(());
    }
    let ha = agora_master::ha::HaConfig {
        endpoints: flags.etcd_endpoints.clone(),
        prefix: flags.etcd_prefix.clone(),
        lease_ttl: Duration::from_secs(flags.etcd_lease_ttl_seconds),
        advertise: flags.advertise.clone(),
        tls: match &flags.etcd_ca_file {
            Some(ca) => Some(
                agora_master::ha::etcd::EtcdTls::from_files(
                    ca,
                    flags.etcd_cert_file.as_deref(),
                    flags.etcd_key_file.as_deref(),
                )
                .context("--etcd-ca-file")?,
            ),
            None => None,
        },
    };
    let master = RunningMaster::start_ha(config, Arc::new(SystemClock), ha)
        .await
        .context("starting the master")?;
    tracing::info!(addr = %master.addr, etcd = %flags.etcd_endpoints.join(","), "agora-master listening as a follower until elected");
    println!(
        "agora-master listening on {} (gRPC, and HTTP at http://{}/); electing a leader through etcd",
        master.addr, master.addr
    );
    match master.serve(shutdown_signal()).await {
        Ok(()) => Ok(()),
        Err(e) => {
            // Fail-stop, then follow: a master that led and no longer may (lease lost,
            // fenced, registry write failed) drops every stream and call at once by
            // replacing itself with a fresh process, which starts as a follower.
            tracing::error!(error = %e, "stepping down: restarting as a follower");
            restart_as_follower()
        }
    }
}

/// Replace this process with a fresh `agora-master` with the same arguments (same pid:
/// supervisors and tests keep tracking it). Every socket closes on exec.
fn restart_as_follower() -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    // Not at once: a master that cannot reach etcd would otherwise spin.
    std::thread::sleep(RESTART_DELAY);
    let exe = std::env::current_exe().context("finding the agora-master executable")?;
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(err).context("re-executing agora-master as a follower")
}

/// Pause before a stepped-down master starts again.
const RESTART_DELAY: Duration = Duration::from_millis(500);

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; stopping only on Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

/// glibc malloc settings for a long-running server whose memory comes in bursts.
///
/// Measured with the load harness (memory scenario, 4,000 agents, 20,000 tasks): with
/// glibc's defaults the master's resident memory grew 8.0 KiB per task, with one or two
/// arenas 4.9 to 5.4 KiB, while its live heap grows about 1.2 KiB per task. Requests are
/// decoded, handled and answered on different runtime threads, and glibc gives each
/// thread an arena of its own (up to 8 per core) whose free memory no other thread
/// reuses: what a burst of launches or status updates freed in one arena stayed resident
/// while the next burst grew another.
#[cfg(not(feature = "mimalloc"))]
mod malloc {
    /// Arenas for all threads. Allocation stays lock-free on its fast path (glibc's
    /// per-thread caches); refills take an arena lock. Two rather than one: in the launch
    /// scenario (1,000 agents) one arena cost about 5% of the peak launch rate, two none
    /// measurable.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    const ARENAS: libc::c_int = 2;

    /// Set before the runtime starts its threads. An operator's `MALLOC_ARENA_MAX` wins.
    pub fn tune() {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only changes allocator parameters; it is called before any
            // other thread exists.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, ARENAS);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_parse() {
        assert_eq!(
            parse_weights("spark=2.5, marathon=1.5").expect("ok"),
            vec![("spark".into(), 2.5), ("marathon".into(), 1.5)]
        );
        assert!(parse_weights("").expect("ok").is_empty());
        assert!(parse_weights("spark").is_err());
        assert!(parse_weights("spark=0").is_err());
        assert!(parse_weights("spark=x").is_err());
    }

    #[test]
    fn removal_rate_parses() {
        assert_eq!(
            parse_removal_rate("1/20mins").expect("ok"),
            Duration::from_secs(1200)
        );
        assert_eq!(
            parse_removal_rate("1/30secs").expect("ok"),
            Duration::from_secs(30)
        );
        assert_eq!(
            parse_removal_rate("1/1hrs").expect("ok"),
            Duration::from_secs(3600)
        );
        assert_eq!(
            parse_removal_rate("1/1.5min").expect("ok"),
            Duration::from_secs(90)
        );
        for bad in [
            "", "20mins", "2/20mins", "1/mins", "1/0mins", "1/20days", "1/-3secs", "1/20",
        ] {
            let e = parse_removal_rate(bad).expect_err(bad).to_string();
            assert!(e.contains("expected 1/<number><unit>"), "{bad}: {e}");
        }
    }
}

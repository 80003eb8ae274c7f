//! `agora-services`: the daemon. See the crate documentation and docs/services.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Marathon-compatible long-running services on an Agora cluster")]
struct Args {
    /// Master address(es), comma separated.
    #[arg(long, default_value = "127.0.0.1:5050", value_delimiter = ',')]
    master: Vec<String>,
    /// Address of the REST API (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of the durable state (apps, versions, deployments, instances, framework id).
    #[arg(long, default_value = "./agora-services-data")]
    data_dir: PathBuf,
    /// Role the framework subscribes with; apps run in it (the master has no `*` role:
    /// unreserved resources are offered to every role).
    #[arg(long, default_value = "services")]
    role: String,
    /// Framework name.
    #[arg(long, default_value = "agora-services")]
    name: String,
    /// Seconds the master keeps the framework's tasks running without the daemon.
    #[arg(long, default_value_t = 7.0 * 86_400.0)]
    failover_timeout: f64,
    /// Principal for secured masters (with --secret-file).
    #[arg(long, requires = "secret_file")]
    principal: Option<String>,
    /// File holding the principal's secret.
    #[arg(long, requires = "principal")]
    secret_file: Option<PathBuf>,
    /// CA certificate (PEM) to verify `https://` masters.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for masters requiring one (with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    etcd: agora_framework_store::ha::EtcdFlags,
    /// Serve service discovery DNS (UDP and TCP) on this address (port 0: any free port,
    /// printed at start). Off unless given.
    #[arg(long)]
    dns_listen: Option<SocketAddr>,
    /// The DNS domain apps are named under (`/group/app` -> `app.group.<domain>.`).
    #[arg(long, default_value = agora_services::discovery::DEFAULT_DOMAIN)]
    dns_domain: String,
    /// Seconds between reads of the agents and their usage from the master (draining
    /// agents, agent addresses for DNS, autoscaling).
    #[arg(long, default_value_t = 5.0, value_parser = parse_interval)]
    cluster_interval: f64,
}

fn parse_interval(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|e| format!("not a number of seconds: {e}"))?;
    if v.is_finite() && (0.1..=3600.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("must be between 0.1 and 3600 seconds, got {v}"))
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agora-services: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let credential = match (&args.principal, &args.secret_file) {
        (Some(p), Some(f)) => Some(agora_sdk::connect::credential_from_file(p, f)?),
        _ => None,
    };
    let tls = match &args.tls_ca {
        Some(ca) => Some(agora_sdk::TlsOptions::from_files(
            ca,
            args.tls_cert.as_deref(),
            args.tls_key.as_deref(),
        )?),
        None => None,
    };
    agora_services::daemon::run(agora_services::daemon::Config {
        masters: args.master,
        listen: args.listen,
        data_dir: args.data_dir,
        role: args.role,
        name: args.name,
        failover_timeout_seconds: args.failover_timeout,
        credential,
        tls,
        etcd: args.etcd,
        dns_listen: args.dns_listen,
        dns_domain: args.dns_domain,
        cluster_interval: std::time::Duration::from_secs_f64(args.cluster_interval),
    })
    .await
}

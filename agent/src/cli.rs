//! The `agora-agent` command line.
//!
//! Owns the flags, their defaults and their translation into an [`AgentConfig`]
//! (validating them, creating the work directory, detecting missing resources). It must
//! never start anything: running is [`crate::run`]'s job.

use std::path::PathBuf;
use std::time::Duration;

use agora_resources::{Attributes, ResourceError, Resources};
use clap::Parser;

use crate::agent::{AddrError, AgentConfig, MasterAddr};
use crate::containerizer::IsolationKind;
use crate::containerizer::linux::{DEFAULT_PIDS_MAX, LinuxConfig};
use crate::detect::{self, DetectError};

/// Default work directory.
pub const DEFAULT_WORK_DIR: &str = "/tmp/agora-agent";

/// Offers this host's resources to an Agora master and runs the tasks it is sent.
#[derive(Clone, Debug, Parser)]
#[command(name = "agora-agent", version)]
pub struct AgentArgs {
    /// Masters to register with, tried in order (comma-separated, or repeat the flag).
    #[arg(
        long,
        value_name = "HOST:PORT[,HOST:PORT...]",
        value_delimiter = ',',
        required = true
    )]
    pub master: Vec<MasterAddr>,

    /// Work directory, created if missing. Task sandboxes live in
    /// `<DIR>/sandboxes/<framework_id>/<task_id>/`.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_WORK_DIR)]
    pub work_dir: PathBuf,

    /// Resources to offer, e.g. `cpus:4;mem:2048;ports:[31000-31100];cpus(spark):2`.
    /// cpus, mem, disk and ports not named here are detected from the host (mem and disk
    /// keep 1 GiB and 5 GiB, or half on small hosts, for the system; ports default to
    /// [31000-32000]).
    #[arg(long, value_name = "TEXT", value_parser = parse_resources)]
    pub resources: Option<Resources>,

    /// Attributes of this host, e.g. `rack:rack-2;datacenter:china;os:centosv7.2`.
    #[arg(long, value_name = "TEXT", value_parser = parse_attributes)]
    pub attributes: Option<Attributes>,

    /// Hostname reported to the master (default: the OS hostname).
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,

    /// `HOST:PORT` where the agent serves its HTTP endpoint (container usage, sandbox
    /// files), also reported to the master (`AgentInfo.address`).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<MasterAddr>,

    /// How tasks are isolated: `linux` (cgroups + namespaces, needs root) or `process`
    /// (plain process groups, no limits). Default: linux when cgroups are usable, else
    /// process (logged).
    #[arg(long, value_enum, value_name = "KIND")]
    pub isolation: Option<IsolationKind>,

    /// Enforce each task's `cpus` as a hard CFS quota, not only as a share.
    #[arg(long)]
    pub cgroups_cpu_hard_limit: bool,

    /// Seconds between container usage reports to the master (0: never).
    #[arg(long, value_name = "SECONDS", default_value_t = 15.0, value_parser = parse_interval)]
    pub usage_interval: f64,

    /// Most processes per container (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_PIDS_MAX)]
    pub pids_limit: u64,

    /// Containers' network (`--isolation linux` only): `host` shares the host's;
    /// `isolated` gives each its own namespace with only a loopback interface, its
    /// allocated ports forwarded from --publish-address by the agent.
    #[arg(long, value_enum, value_name = "MODE", default_value = "host")]
    pub network: crate::containerizer::linux::NetworkMode,

    /// Host address isolated containers' ports are published on.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub publish_address: std::net::IpAddr,

    /// Principal to authenticate as, for masters started with --authenticate-agents.
    #[arg(long, value_name = "NAME", requires = "secret_file")]
    pub principal: Option<String>,

    /// File holding the principal's secret (one trailing newline is ignored).
    #[arg(long, value_name = "FILE", requires = "principal")]
    pub secret_file: Option<PathBuf>,

    /// PEM CA certificate(s) to verify an https:// master with.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,

    /// PEM client certificate, for masters that require client certificates.
    #[arg(long, value_name = "FILE", requires = "tls_key", requires = "tls_ca")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// PEM certificate: serve the --listen endpoint over TLS (https).
    #[arg(
        long,
        value_name = "FILE",
        requires = "listen",
        requires = "listen_tls_key"
    )]
    pub listen_tls_cert: Option<PathBuf>,

    /// PEM private key of --listen-tls-cert.
    #[arg(long, value_name = "FILE", requires = "listen_tls_cert")]
    pub listen_tls_key: Option<PathBuf>,

    /// JSON file of principals and secrets (the master's format) the --listen endpoint
    /// checks `authorization` headers against.
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub http_credentials: Option<PathBuf>,

    /// Every request to the --listen endpoint but /health needs valid credentials.
    #[arg(long, requires = "http_credentials")]
    pub authenticate_http: bool,

    /// JSON ACL file (the master's format); its `access_sandbox` rules decide who may read
    /// which task's sandbox (object: the task's user). Deny by default once given.
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub http_acls: Option<PathBuf>,

    /// Mesos HTTP executors (`/api/v1/executor` on --listen) may call without the token
    /// the agent gave them (`Authorization: Bearer $MESOS_EXECUTOR_AUTHENTICATION_TOKEN`),
    /// as executors written for Mesos without executor authentication do. Off: such calls
    /// are refused 401. Any local process that knows an executor's ids can then act for it.
    #[arg(long, requires = "listen")]
    pub mesos_executors_without_token: bool,
    /// A custom executor that has not subscribed to the executor API this long after it
    /// started (or after it lost its connection) is killed and its tasks fail.
    #[arg(long, value_name = "SECONDS", default_value = "60", value_parser = parse_seconds)]
    pub executor_subscribe_timeout: Duration,

    /// Time between an executor's SHUTDOWN event and killing its container.
    #[arg(long, value_name = "SECONDS", default_value = "5", value_parser = parse_seconds)]
    pub executor_shutdown_grace: Duration,

    /// How long executors keep trying to reach a restarted agent before they exit.
    #[arg(long, value_name = "SECONDS", default_value = "900", value_parser = parse_seconds)]
    pub executor_recovery_timeout: Duration,

    /// User of tasks and executors that name no user, when the agent runs as root.
    #[arg(long, value_name = "USER", default_value = crate::prepare::DEFAULT_USER)]
    pub default_user: String,

    /// Let tasks run as root (uid 0), by their own user or --default-user. Off: such
    /// tasks fail to launch.
    #[arg(long)]
    pub allow_root_tasks: bool,

    /// A directory tasks may fetch local (`file://` or absolute path) URIs from, checked
    /// as the task's user (repeat the flag for several; default: none, local URIs fail).
    #[arg(long, value_name = "DIR")]
    pub fetcher_allowed_dir: Vec<PathBuf>,

    /// A directory holding container images (OCI layouts, OCI or docker-archive
    /// tarballs) tasks may name; repeat for several. Default: none, tasks naming an image
    /// fail. Images are read with the agent's privileges: list only directories whose
    /// every image any framework may run.
    #[arg(long, value_name = "DIR")]
    pub image_dir: Vec<PathBuf>,

    /// A character device handed out whole as one `gpus` unit (repeat for several, in
    /// index order); the agent advertises `gpus:<count>` unless --resources names gpus.
    /// With neither this nor --nvidia-gpus the agent has no GPUs.
    #[arg(long, value_name = "PATH")]
    pub gpu_device: Vec<PathBuf>,

    /// Find NVIDIA GPUs with `nvidia-smi` (`/dev/nvidia<minor>`); ignored with
    /// --gpu-device.
    #[arg(long)]
    pub nvidia_gpus: bool,

    /// PEM CA certificates https:// URIs are verified with (default: the system bundle
    /// /etc/ssl/certs/ca-certificates.crt when present, else https URIs fail).
    #[arg(long, value_name = "FILE")]
    pub fetcher_ca_file: Option<PathBuf>,

    /// A task (or executor) listening on a TCP port outside its `ports` resource:
    /// `report` logs it, `kill` fails the task (CONTAINER_LIMITATION_PORTS), `off`.
    #[arg(long, value_enum, value_name = "POLICY", default_value = "report")]
    pub ports_enforcement: crate::containerizer::limits::Enforcement,

    /// A sandbox holding more than its `disk` resource: `kill` fails the task
    /// (CONTAINER_LIMITATION_DISK), `report` logs it, `off`. Tasks with no `disk` are not
    /// limited.
    #[arg(long, value_enum, value_name = "POLICY", default_value = "kill")]
    pub disk_enforcement: crate::containerizer::limits::Enforcement,

    /// Time between two checks of a container's listening ports.
    #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds)]
    pub ports_watch_interval: Duration,

    /// Time between two measurements of a sandbox's disk use.
    #[arg(long, value_name = "SECONDS", default_value = "15", value_parser = parse_seconds)]
    pub disk_watch_interval: Duration,

    /// The default executor program (runs task groups whose executor names no command).
    /// Default: `agora-default-executor` next to this binary.
    #[arg(long, value_name = "PATH")]
    pub default_executor: Option<PathBuf>,

    /// How long the sandbox of an ended task or executor is kept after its last change
    /// before it is removed (default: one week). Live tasks' sandboxes are never removed.
    #[arg(long, value_name = "SECONDS", default_value = "604800", value_parser = parse_gc_delay)]
    pub gc_delay: Duration,

    /// Fraction of the work directory's disk above which ended sandboxes are removed
    /// sooner than --gc-delay: linearly down to at once when the disk is full.
    #[arg(long, value_name = "FRACTION", default_value_t = crate::gc::DEFAULT_DISK_WATERMARK, value_parser = parse_fraction)]
    pub gc_disk_watermark: f64,
}

fn parse_gc_delay(text: &str) -> Result<Duration, String> {
    const YEAR_S: f64 = 365.0 * 86_400.0;
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= YEAR_S => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!(
            "{text:?} is not a number of seconds in (0, {YEAR_S}]"
        )),
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!("{text:?} is not a fraction in (0, 1]")),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= 86_400.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 86400]")),
    }
}

impl AgentArgs {
    /// The GPUs the flags name (see [`crate::containerizer::gpus::discover`]).
    pub fn gpus(&self) -> Result<Vec<crate::containerizer::gpus::Gpu>, ConfigError> {
        crate::containerizer::gpus::discover(&self.gpu_device, self.nvidia_gpus)
            .map_err(ConfigError::Gpus)
    }

    /// The Linux containerizer's settings from the flags.
    pub fn linux_config(&self) -> Result<LinuxConfig, ConfigError> {
        Ok(LinuxConfig {
            gpus: self.gpus()?,
            cpu_hard_limit: self.cgroups_cpu_hard_limit,
            pids_max: self.pids_limit,
            agent_name: None,
            network: self.network,
            publish_address: self.publish_address,
            image_dirs: self
                .image_dir
                .iter()
                .filter_map(|dir| match std::fs::canonicalize(dir) {
                    Ok(real) if real.is_dir() => Some(real),
                    Ok(_) => {
                        tracing::error!(
                            "--image-dir {} is not a directory; ignored",
                            dir.display()
                        );
                        None
                    }
                    Err(e) => {
                        tracing::error!("--image-dir {}: {e}; ignored", dir.display());
                        None
                    }
                })
                .collect(),
        })
    }
}

fn parse_resources(text: &str) -> Result<Resources, ResourceError> {
    Resources::parse(text)
}

fn parse_interval(text: &str) -> Result<f64, String> {
    let v: f64 = text
        .parse()
        .map_err(|_| format!("'{text}' is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=86_400.0).contains(&v) {
        return Err(format!("'{text}' must be between 0 and 86400 seconds"));
    }
    if v > 0.0 && v < 0.1 {
        return Err(format!(
            "'{text}' is shorter than the 0.1 s minimum (0 turns reports off)"
        ));
    }
    Ok(v)
}

fn parse_attributes(text: &str) -> Result<Attributes, ResourceError> {
    Attributes::parse(text)
}

/// Flags that do not make a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The work directory cannot be created or resolved.
    #[error("cannot create work directory {path}: {error}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// Detecting a resource failed.
    #[error(transparent)]
    Detect(#[from] DetectError),
    /// An empty hostname.
    #[error("--hostname must not be empty")]
    EmptyHostname,
    /// A bad address.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// Unusable credential or TLS files.
    #[error("{0}")]
    Security(String),
    /// The GPUs named cannot be used.
    #[error("GPUs: {0}")]
    Gpus(String),
}

fn read_file(what: &str, path: &std::path::Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path)
        .map_err(|e| ConfigError::Security(format!("cannot read {what} {}: {e}", path.display())))
}

impl AgentArgs {
    /// The credential from --principal and --secret-file (one trailing newline dropped).
    pub fn credential(&self) -> Result<Option<agora_proto::auth::Credential>, ConfigError> {
        let (Some(principal), Some(file)) = (&self.principal, &self.secret_file) else {
            return Ok(None);
        };
        let text = String::from_utf8(read_file("--secret-file", file)?).map_err(|_| {
            ConfigError::Security(format!(
                "--secret-file {} is not UTF-8 text",
                file.display()
            ))
        })?;
        let secret = text
            .strip_suffix('\n')
            .map(|s| s.strip_suffix('\r').unwrap_or(s))
            .unwrap_or(&text)
            .to_string();
        let c = agora_proto::auth::Credential {
            principal: principal.clone(),
            secret,
        };
        agora_proto::auth::AuthInterceptor::new(Some(&c)).map_err(|e| {
            ConfigError::Security(format!(
                "credential of principal '{principal}' ({}): {e}",
                file.display()
            ))
        })?;
        Ok(Some(c))
    }

    /// The --listen endpoint's authentication and ACLs from their files.
    pub fn http_security(&self) -> Result<crate::http::HttpSecurity, ConfigError> {
        let text = |flag: &str, p: &PathBuf| {
            String::from_utf8(read_file(flag, p)?).map_err(|_| {
                ConfigError::Security(format!("{flag} {} is not UTF-8 text", p.display()))
            })
        };
        let credentials = match &self.http_credentials {
            Some(p) => Some(
                agora_auth::Credentials::parse(&text("--http-credentials", p)?).map_err(|e| {
                    ConfigError::Security(format!("--http-credentials {}: {e}", p.display()))
                })?,
            ),
            None => None,
        };
        let acls =
            match &self.http_acls {
                Some(p) => Some(agora_auth::Acls::parse(&text("--http-acls", p)?).map_err(
                    |e| ConfigError::Security(format!("--http-acls {}: {e}", p.display())),
                )?),
                None => None,
            };
        Ok(crate::http::HttpSecurity {
            credentials,
            authenticate: self.authenticate_http,
            acls,
            mesos_executors_without_token: self.mesos_executors_without_token,
        })
    }

    /// TLS settings from --tls-ca, --tls-cert and --tls-key.
    pub fn client_tls(&self) -> Result<Option<crate::master_link::ClientTls>, ConfigError> {
        let Some(ca) = &self.tls_ca else {
            return Ok(None);
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some((read_file("--tls-cert", c)?, read_file("--tls-key", k)?)),
            _ => None,
        };
        Ok(Some(crate::master_link::ClientTls {
            ca_pem: read_file("--tls-ca", ca)?,
            identity,
        }))
    }
}

impl AgentArgs {
    /// Validates the flags, creates the work directory and detects the resources not
    /// given.
    pub fn into_config(self) -> Result<AgentConfig, ConfigError> {
        let work_dir_err = |error| ConfigError::WorkDir {
            path: self.work_dir.clone(),
            error,
        };
        std::fs::create_dir_all(&self.work_dir).map_err(work_dir_err)?;
        let work_dir = std::path::absolute(&self.work_dir).map_err(work_dir_err)?;
        let hostname = match &self.hostname {
            Some(h) if h.trim().is_empty() => return Err(ConfigError::EmptyHostname),
            Some(h) => h.trim().to_string(),
            None => detect::hostname(),
        };
        let mut given = self.resources.clone().unwrap_or_default();
        let gpus = self.gpus()?.len() as u64;
        if gpus > 0 {
            let named = given.scalar("gpus").thousandths();
            if given.names().contains("gpus") {
                if named > gpus * 1000 {
                    return Err(ConfigError::Gpus(format!(
                        "--resources names more gpus than the agent's {gpus} GPU device(s)"
                    )));
                }
            } else {
                let count = agora_resources::Scalar::from_units(gpus)
                    .ok_or_else(|| ConfigError::Gpus(format!("{gpus} GPUs")))?;
                given
                    .push(agora_resources::Resource::new(
                        "gpus",
                        agora_resources::Value::Scalar(count),
                    ))
                    .map_err(|e| ConfigError::Gpus(e.to_string()))?;
            }
        }
        let resources = detect::complete(given, &detect::probe_for(&work_dir))?;
        let mut config = AgentConfig::new(
            self.master.clone(),
            work_dir,
            resources,
            self.attributes.clone().unwrap_or_default(),
            hostname,
        );
        config.advertise_address = self
            .listen
            .as_ref()
            .map(|a| a.authority().to_string())
            .unwrap_or_default();
        config.http_listen = self.listen.as_ref().map(|a| a.authority().to_string());
        config.link.usage_interval = (self.usage_interval > 0.0)
            .then(|| std::time::Duration::from_secs_f64(self.usage_interval));
        config.http_tls = match (&self.listen_tls_cert, &self.listen_tls_key) {
            (Some(c), Some(k)) => {
                let t = crate::http::HttpTls {
                    cert_pem: read_file("--listen-tls-cert", c)?,
                    key_pem: read_file("--listen-tls-key", k)?,
                };
                // Refuse unusable files now, not at the first connection.
                t.server_config().map_err(ConfigError::Security)?;
                Some(t)
            }
            _ => None,
        };
        config.http_security = self.http_security()?;
        config.link.credential = self.credential()?;
        config.link.tls = self.client_tls()?;
        if self.master.iter().any(|m| m.is_tls()) && config.link.tls.is_none() {
            return Err(ConfigError::Security(
                "an https:// master needs --tls-ca to verify it".into(),
            ));
        }
        config.gc = crate::gc::GcConfig {
            delay: self.gc_delay,
            disk_watermark: self.gc_disk_watermark,
        };
        config.executors.subscribe_timeout = self.executor_subscribe_timeout;
        config.executors.shutdown_grace = self.executor_shutdown_grace;
        config.executors.recovery_timeout = self.executor_recovery_timeout;
        if let Some(path) = &self.default_executor {
            config.executors.default_executor = path.clone();
        }
        if self.default_user.trim().is_empty() {
            return Err(ConfigError::Security(
                "--default-user must not be empty".into(),
            ));
        }
        config.limits = crate::containerizer::limits::LimitPolicy {
            ports: self.ports_enforcement,
            disk: self.disk_enforcement,
            ports_interval: self.ports_watch_interval.max(Duration::from_millis(10)),
            disk_interval: self.disk_watch_interval.max(Duration::from_millis(10)),
        };
        config.users = crate::prepare::UserPolicy {
            default_user: self.default_user.clone(),
            allow_root: self.allow_root_tasks,
        };
        for dir in &self.fetcher_allowed_dir {
            let real = std::fs::canonicalize(dir).map_err(|e| {
                ConfigError::Security(format!("--fetcher-allowed-dir {}: {e}", dir.display()))
            })?;
            if !real.is_dir() {
                return Err(ConfigError::Security(format!(
                    "--fetcher-allowed-dir {} is not a directory",
                    dir.display()
                )));
            }
            config.fetch.allowed_dirs.push(real);
        }
        let system_ca = std::path::Path::new(crate::fetcher::SYSTEM_CA_FILE);
        match &self.fetcher_ca_file {
            Some(file) => {
                config.fetch.tls = crate::fetcher::FetchTls::from_file(file)
                    .map_err(|e| ConfigError::Security(format!("--fetcher-ca-file {e}")))?;
            }
            None if system_ca.exists() => match crate::fetcher::FetchTls::from_file(system_ca) {
                Ok(tls) => config.fetch.tls = tls,
                Err(e) => tracing::warn!("https URIs will fail: system CA bundle {e}"),
            },
            None => {}
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<AgentArgs, clap::Error> {
        AgentArgs::try_parse_from(std::iter::once("agora-agent").chain(args.iter().copied()))
    }

    #[test]
    fn defaults() {
        let args = parse(&["--master", "m1:5050"]).expect("valid");
        assert_eq!(args.master.len(), 1);
        assert_eq!(args.work_dir, PathBuf::from("/tmp/agora-agent"));
        assert!(args.resources.is_none());
        assert!(args.hostname.is_none());
    }

    #[test]
    fn gc_flags() {
        let args = parse(&["--master", "m:1"]).expect("valid");
        assert_eq!(args.gc_delay, crate::gc::DEFAULT_DELAY);
        assert_eq!(args.gc_disk_watermark, crate::gc::DEFAULT_DISK_WATERMARK);
        let args = parse(&[
            "--master",
            "m:1",
            "--gc-delay",
            "2.5",
            "--gc-disk-watermark",
            "0.5",
        ])
        .expect("valid");
        assert_eq!(args.gc_delay, Duration::from_millis(2500));
        assert_eq!(args.gc_disk_watermark, 0.5);
        for bad in [
            ["--gc-delay", "0"],
            ["--gc-delay", "-1"],
            ["--gc-disk-watermark", "1.5"],
            ["--gc-disk-watermark", "0"],
        ] {
            assert!(
                parse(&["--master", "m:1", bad[0], bad[1]]).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn several_masters() {
        let args = parse(&["--master", "m1:5050,m2:5051", "--master", "m3:1"]).expect("valid");
        let got: Vec<String> = args.master.iter().map(ToString::to_string).collect();
        assert_eq!(got, ["m1:5050", "m2:5051", "m3:1"]);
    }

    #[test]
    fn master_is_required_and_validated() {
        assert!(parse(&[]).is_err());
        let err = parse(&["--master", "m1"]).expect_err("no port");
        assert!(err.to_string().contains("missing port"), "{err}");
    }

    #[test]
    fn bad_resources_and_attributes_are_refused() {
        let err = parse(&["--master", "m:1", "--resources", "cpus:-1"]).expect_err("negative");
        assert!(err.to_string().contains("cpus"), "{err}");
        assert!(parse(&["--master", "m:1", "--resources", "ports:[30-20]"]).is_err());
        assert!(parse(&["--master", "m:1", "--attributes", "rack:[9-1]"]).is_err());
    }

    #[test]
    fn usage_interval_is_validated() {
        let args = parse(&["--master", "m:1"]).expect("valid");
        assert_eq!(args.usage_interval, 15.0);
        let args = parse(&["--master", "m:1", "--usage-interval", "0"]).expect("off");
        assert_eq!(args.usage_interval, 0.0);
        for bad in ["-1", "abc", "0.01", "NaN", "1e9"] {
            let err = parse(&["--master", "m:1", "--usage-interval", bad]).expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn credentials_and_tls_flags() {
        let dir = std::env::temp_dir().join(format!("agora-agent-sec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let secret = dir.join("secret");
        std::fs::write(&secret, "s3cret\n").expect("write");
        let secret_arg = secret.to_string_lossy().into_owned();
        let args = parse(&[
            "--master",
            "m:1",
            "--principal",
            "agent",
            "--secret-file",
            &secret_arg,
        ])
        .expect("valid");
        let c = args.credential().expect("readable").expect("given");
        assert_eq!(
            (c.principal.as_str(), c.secret.as_str()),
            ("agent", "s3cret")
        );
        // Each needs the other.
        assert!(parse(&["--master", "m:1", "--principal", "agent"]).is_err());
        assert!(parse(&["--master", "m:1", "--secret-file", &secret_arg]).is_err());
        std::fs::write(&secret, "\n").expect("write");
        let e = args.credential().expect_err("empty secret");
        assert!(e.to_string().contains("empty secret"), "{e}");
        let missing = parse(&[
            "--master",
            "m:1",
            "--principal",
            "a",
            "--secret-file",
            "/nonexistent/x",
        ])
        .expect("valid flags");
        assert!(missing.credential().is_err());
        // https needs a CA; a client certificate needs its key.
        let https = parse(&[
            "--master",
            "https://m:1",
            "--work-dir",
            &dir.to_string_lossy(),
        ])
        .expect("valid");
        let e = https.into_config().expect_err("no CA");
        assert!(e.to_string().contains("needs --tls-ca"), "{e}");
        assert!(parse(&["--master", "m:1", "--tls-ca", "ca", "--tls-cert", "c"]).is_err());
        // The --listen endpoint's TLS: needs --listen and both files, usable ones.
        assert!(
            parse(&[
                "--master",
                "m:1",
                "--listen-tls-cert",
                "c",
                "--listen-tls-key",
                "k"
            ])
            .is_err()
        );
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "junk").expect("write");
        let junk = junk.to_string_lossy().into_owned();
        let dir_arg = dir.to_string_lossy().into_owned();
        let bad = parse(&[
            "--master",
            "m:1",
            "--work-dir",
            &dir_arg,
            "--listen",
            "127.0.0.1:7000",
            "--listen-tls-cert",
            &junk,
            "--listen-tls-key",
            &junk,
        ])
        .expect("valid flags");
        let e = bad.into_config().expect_err("junk PEM");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn into_config_detects_missing_kinds() {
        let dir = std::env::temp_dir().join(format!("agora-agent-cli-{}", std::process::id()));
        let dir_arg = dir.to_string_lossy().into_owned();
        let args = parse(&[
            "--master",
            "m:1",
            "--work-dir",
            &dir_arg,
            "--resources",
            "cpus:2;mem:100",
            "--attributes",
            "rack:r1",
            "--hostname",
            "h1",
            "--listen",
            "h1:7000",
        ])
        .expect("valid");
        let config = args.into_config().expect("config");
        assert!(dir.is_dir());
        assert_eq!(config.hostname, "h1");
        assert_eq!(config.advertise_address, "h1:7000");
        assert_eq!(config.resources.scalar("cpus").as_f64(), 2.0);
        assert_eq!(config.resources.scalar("mem").as_f64(), 100.0);
        assert!(config.resources.names().contains("disk"));
        assert!(config.resources.ranges("ports").contains_value(31000));
        assert!(config.attributes.get("rack").is_some());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

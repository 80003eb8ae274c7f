//! Task health checks: command, HTTP and TCP probes on a schedule.
//!
//! [`HealthSpec::from_proto`] validates a task's `HealthCheck`; [`run`] probes it until the
//! returned future is dropped: it waits `delay`, then every `interval` runs one probe
//! bounded by `timeout`, and reports through a callback each time the result changes
//! (the first result included) and once `consecutive_failures` probes in a row failed after
//! the grace period (the state actor then kills the task, reason HEALTH_CHECK_FAILED).
//! As in Mesos, a failure inside the grace period before the first success is ignored
//! altogether (not even reported as unhealthy): the task is still starting. After the
//! first success every failure counts.
//!
//! Probes: COMMAND runs `/bin/sh -c` (or argv) **inside the task's container** through
//! [`Container::run_check`] (its namespaces and cgroups, as the user owning its sandbox, i.e.
//! the task's user, never with the agent's privileges), with the sandbox as working
//! directory and `AGORA_SANDBOX` set, healthy on exit 0; HTTP GETs
//! `http://127.0.0.1:<port><path>`, healthy on a 2xx or 3xx status; TCP connects to
//! `127.0.0.1:<port>`. It must never change task state itself, and never run longer than
//! `timeout` per probe (a command probe is killed when it times out).

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1::{HealthCheck, command_info, health_check};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containerizer::Container;

/// Defaults (Mesos' values).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Default probe timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// Default failures before the task is killed.
pub const DEFAULT_CONSECUTIVE_FAILURES: u32 = 3;
/// Shortest interval honoured.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// Longest delay, interval, timeout or grace period honoured.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// What to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// A command; healthy on exit 0.
    Command {
        /// `sh -c` script, or argv.
        argv: Vec<String>,
    },
    /// An HTTP GET on the loopback.
    Http {
        /// The port.
        port: u16,
        /// The path (starts with '/').
        path: String,
    },
    /// A TCP connect on the loopback.
    Tcp {
        /// The port.
        port: u16,
    },
}

/// A validated health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthSpec {
    /// What to probe.
    pub probe: Probe,
    /// Before the first probe.
    pub delay: Duration,
    /// Between probes.
    pub interval: Duration,
    /// Per probe.
    pub timeout: Duration,
    /// Failures in a row that kill the task.
    pub consecutive_failures: u32,
    /// After the first probe, failures do not count for this long.
    pub grace_period: Duration,
}

fn seconds(what: &str, v: f64, default: Duration) -> Result<Duration, String> {
    if v == 0.0 {
        return Ok(default);
    }
    if !v.is_finite() || v < 0.0 {
        return Err(format!("health check {what} must be a non-negative number"));
    }
    Ok(Duration::try_from_secs_f64(v).map_or(MAX_DURATION, |d| d.min(MAX_DURATION)))
}

impl HealthSpec {
    /// Validates a task's health check.
    pub fn from_proto(h: &HealthCheck) -> Result<HealthSpec, String> {
        let port = || {
            u16::try_from(h.port)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("health check port {} is not a valid port", h.port))
        };
        let probe = match health_check::Type::try_from(h.r#type) {
            Ok(health_check::Type::Command) => {
                let command = h
                    .command
                    .as_ref()
                    .ok_or("COMMAND health check without a command")?;
                let argv = match &command.run {
                    Some(command_info::Run::Shell(s)) => {
                        vec!["/bin/sh".into(), "-c".into(), s.clone()]
                    }
                    Some(command_info::Run::Argv(a)) if !a.args.is_empty() => a.args.clone(),
                    _ => return Err("COMMAND health check has nothing to run".into()),
                };
                if argv.iter().any(|a| a.contains('\0')) {
                    return Err("health check command contains a NUL byte".into());
                }
                Probe::Command { argv }
            }
            Ok(health_check::Type::Http) => {
                let path = if h.path.is_empty() {
                    "/".to_string()
                } else if h.path.starts_with('/') && !h.path.contains(['\r', '\n', ' ', '\0']) {
                    h.path.clone()
                } else {
                    return Err(format!("health check path {:?} is invalid", h.path));
                };
                Probe::Http {
                    port: port()?,
                    path,
                }
            }
            Ok(health_check::Type::Tcp) => Probe::Tcp { port: port()? },
            _ => return Err("health check type must be COMMAND, HTTP or TCP".into()),
        };
        Ok(HealthSpec {
            probe,
            delay: seconds("delay", h.delay_seconds, Duration::ZERO)?,
            interval: seconds("interval", h.interval_seconds, DEFAULT_INTERVAL)?.max(MIN_INTERVAL),
            timeout: seconds("timeout", h.timeout_seconds, DEFAULT_TIMEOUT)?,
            consecutive_failures: if h.consecutive_failures == 0 {
                DEFAULT_CONSECUTIVE_FAILURES
            } else {
                h.consecutive_failures
            },
            grace_period: seconds("grace period", h.grace_period_seconds, Duration::ZERO)?,
        })
    }
}

/// What the checker reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// The result changed (or is the first one).
    Changed {
        /// Healthy now.
        healthy: bool,
    },
    /// `consecutive_failures` failures in a row: kill the task.
    Failed,
}

/// Extra time a command probe gets beyond its timeout before it is abandoned: the
/// container kills a command that outlives its timeout and needs a moment to reap it.
const COMMAND_REAP_SLACK: Duration = Duration::from_secs(5);

/// Runs one probe with the timeout; `Err` says why it failed.
pub async fn probe_once(spec: &HealthSpec, container: &dyn Container) -> Result<(), String> {
    let limit = match spec.probe {
        Probe::Command { .. } => spec.timeout + COMMAND_REAP_SLACK,
        _ => spec.timeout,
    };
    match tokio::time::timeout(limit, probe(&spec.probe, spec.timeout, container)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {:?}", spec.timeout)),
    }
}

async fn probe(p: &Probe, timeout: Duration, container: &dyn Container) -> Result<(), String> {
    match p {
        Probe::Command { argv } => container.run_check(argv.clone(), timeout).await,
        Probe::Tcp { port } => tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .map(|_| ())
            .map_err(|e| format!("cannot connect to port {port}: {e}")),
        Probe::Http { port, path } => {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", *port))
                .await
                .map_err(|e| format!("cannot connect to port {port}: {e}"))?;
            let req = format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: agora-health\r\nConnection: close\r\n\r\n"
            );
            s.write_all(req.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            let mut head = [0u8; 32];
            let mut n = 0;
            while n < 12 {
                let got = s.read(&mut head[n..]).await.map_err(|e| e.to_string())?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            let line = String::from_utf8_lossy(&head[..n]).into_owned();
            let status: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not an HTTP answer: {line:?}"))?;
            if (200..400).contains(&status) {
                Ok(())
            } else {
                Err(format!("HTTP status {status}"))
            }
        }
    }
}

/// Probes forever (until dropped), calling `report` on changes and on failure.
pub async fn run<F, Fut>(spec: HealthSpec, container: Arc<dyn Container>, mut report: F)
where
    F: FnMut(HealthEvent) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::sleep(spec.delay).await;
    let started = tokio::time::Instant::now();
    let mut last: Option<bool> = None;
    let mut failures = 0u32;
    let mut ever_healthy = false;
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let result = probe_once(&spec, container.as_ref()).await;
        let healthy = result.is_ok();
        if let Err(why) = &result {
            tracing::debug!(sandbox = %container.sandbox().display(), "health check failed: {why}");
        }
        if !healthy && !ever_healthy && started.elapsed() < spec.grace_period {
            continue;
        }
        ever_healthy |= healthy;
        if last != Some(healthy) {
            last = Some(healthy);
            if !report(HealthEvent::Changed { healthy }).await {
                return;
            }
        }
        // A failure reaching here counts: the task became healthy once, or the grace
        // period is over.
        if healthy {
            failures = 0;
        } else {
            failures += 1;
            if failures >= spec.consecutive_failures {
                let _ = report(HealthEvent::Failed).await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::CommandInfo;

    fn check(t: health_check::Type) -> HealthCheck {
        HealthCheck {
            r#type: t as i32,
            ..Default::default()
        }
    }

    #[test]
    fn validation_and_defaults() {
        let mut h = check(health_check::Type::Tcp);
        assert!(HealthSpec::from_proto(&h).is_err(), "port 0");
        h.port = 8080;
        let s = HealthSpec::from_proto(&h).expect("valid");
        assert_eq!(s.probe, Probe::Tcp { port: 8080 });
        assert_eq!(s.interval, DEFAULT_INTERVAL);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        assert_eq!(s.consecutive_failures, 3);
        h.port = 70000;
        assert!(HealthSpec::from_proto(&h).is_err());
        let mut http = check(health_check::Type::Http);
        http.port = 80;
        http.path = "x y".into();
        assert!(HealthSpec::from_proto(&http).is_err());
        http.path = String::new();
        assert!(matches!(
            HealthSpec::from_proto(&http).map(|s| s.probe),
            Ok(Probe::Http { path, .. }) if path == "/"
        ));
        let mut cmd = check(health_check::Type::Command);
        assert!(HealthSpec::from_proto(&cmd).is_err());
        cmd.command = Some(CommandInfo {
            run: Some(command_info::Run::Shell("true".into())),
            ..Default::default()
        });
        cmd.interval_seconds = 0.001;
        cmd.delay_seconds = -1.0;
        assert!(HealthSpec::from_proto(&cmd).is_err());
        cmd.delay_seconds = 0.5;
        let s = HealthSpec::from_proto(&cmd).expect("valid");
        assert_eq!(s.interval, MIN_INTERVAL);
        assert_eq!(s.delay, Duration::from_millis(500));
        assert!(HealthSpec::from_proto(&check(health_check::Type::Unspecified)).is_err());
    }

    #[tokio::test]
    async fn probes_against_real_endpoints() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let ok = String::from_utf8_lossy(&buf[..n]).starts_with("GET /ok ");
                let line = if ok { "200 OK" } else { "503 Unavailable" };
                let _ = s
                    .write_all(format!("HTTP/1.1 {line}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let spec = |probe| HealthSpec {
            probe,
            delay: Duration::ZERO,
            interval: MIN_INTERVAL,
            timeout: Duration::from_secs(2),
            consecutive_failures: 2,
            grace_period: Duration::ZERO,
        };
        let tmp = std::env::temp_dir().join(format!("agora-health-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let containerizer =
            crate::containerizer::process::ProcessContainerizer::new(&tmp).expect("work dir");
        let task: Arc<dyn Container> = crate::containerizer::Containerizer::launch(
            &containerizer,
            crate::containerizer::LaunchSpec {
                framework_id: "fw".into(),
                task_id: "t".into(),
                agent_id: "a".into(),
                program: crate::containerizer::Program::Shell("exec sleep 60".into()),
                environment: vec![],
                ports: vec![],
                user: None,
                resources: agora_resources::Resources::new(),
                uris: vec![],
                image: None,
                volumes: Vec::new(),
            },
        )
        .await
        .expect("launch");
        let c = task.as_ref();
        let http = |path: &str| {
            spec(Probe::Http {
                port,
                path: path.into(),
            })
        };
        assert!(probe_once(&http("/ok"), c).await.is_ok());
        let err = probe_once(&http("/bad"), c).await.expect_err("503");
        assert!(err.contains("503"), "{err}");
        assert!(probe_once(&spec(Probe::Tcp { port }), c).await.is_ok());
        let sh = |s: &str| {
            spec(Probe::Command {
                argv: vec!["/bin/sh".into(), "-c".into(), s.into()],
            })
        };
        assert!(probe_once(&sh("exit 0"), c).await.is_ok());
        // The check runs in the task's sandbox.
        assert!(
            probe_once(
                &sh("test -f stdout && test \"$PWD\" = \"$AGORA_SANDBOX\""),
                c
            )
            .await
            .is_ok()
        );
        assert!(probe_once(&sh("exit 1"), c).await.is_err());
        let mut slow = sh("sleep 5");
        slow.timeout = Duration::from_millis(100);
        let err = probe_once(&slow, c).await.expect_err("timeout");
        assert!(err.contains("timed out"), "{err}");

        // The loop reports the first result, changes, then the failure.
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&events);
        run(sh("exit 1"), Arc::clone(&task), move |e| {
            let log = std::sync::Arc::clone(&log);
            async move {
                if let Ok(mut l) = log.lock() {
                    l.push(e);
                }
                true
            }
        })
        .await;
        let got = events.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            got,
            vec![HealthEvent::Changed { healthy: false }, HealthEvent::Failed]
        );

        // Inside the grace period, failures before the first success are not reported;
        // after a success the grace period no longer hides anything.
        let dir = tmp.join(format!("agora-health-grace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let flag = dir.join("ready");
        let _ = std::fs::remove_file(&flag);
        let mut graced = sh(&format!("test -f {0} && rm {0}", flag.to_string_lossy()));
        graced.grace_period = Duration::from_secs(30);
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = std::sync::Arc::clone(&events);
        let touch = {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let _ = std::fs::write(&flag, b"");
            }
        };
        let probe = run(graced, Arc::clone(&task), move |e| {
            let log = std::sync::Arc::clone(&log);
            async move {
                if let Ok(mut l) = log.lock() {
                    l.push(e);
                }
                true
            }
        });
        // The probe succeeds once (it removes the file), then fails for good: after a
        // success the grace period no longer hides failures, so the loop ends with Failed.
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(touch, probe);
        })
        .await;
        let got = events.lock().map(|l| l.clone()).unwrap_or_default();
        assert_eq!(
            got,
            vec![
                HealthEvent::Changed { healthy: true },
                HealthEvent::Changed { healthy: false },
                HealthEvent::Failed
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
        task.kill(Duration::ZERO).await;
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

//! End-to-end support: a real `agora-master`, real `agora-agent`s (plain-process
//! isolation) and the real `agora-services` daemon on loopback, and a small blocking HTTP
//! client for the master's state and the services API.
//!
//! Every process is killed and every directory removed on drop, also when a test fails
//! (`AGORA_E2E_KEEP=1` keeps the directories). The master and agent binaries must be built
//! first (`cargo build -p agora-master -p agora-agent --bins`; scripts/test.sh builds all).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value as Json;

pub const WAIT: Duration = Duration::from_secs(60);

// Processes, temporary directories, free ports and the workspace's binaries: the master's
// end-to-end support, shared rather than copied (the jobs tests include it the same way).
#[path = "../../../../master/tests/support/mod.rs"]
mod master;
pub use master::{Proc, TempDir as Dir, free_port};
// The etcd cluster support (`master/tests/support/etcd.rs`, used by e2e_ha) needs it.
#[allow(unused_imports)]
pub use master::http_get;

pub fn binary(name: &str) -> PathBuf {
    if name == "agora-services" {
        return PathBuf::from(env!("CARGO_BIN_EXE_agora-services"));
    }
    master::binary(name)
}

/// Minimal HTTP/1.1 request; the body parsed as JSON (`Null` when empty or not JSON).
pub fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, Json) {
    let (code, text) = http_text(addr, method, path, body);
    (code, serde_json::from_str(&text).unwrap_or(Json::Null))
}

pub fn http_text(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    master::http_request(addr, method, path, body).unwrap_or((0, String::new()))
}

/// Poll `f` until it returns `Some`, or panic with `what` and `context()`.
pub fn wait_for<T>(
    what: &str,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn_master(dir: &Dir, addr: SocketAddr, n: usize) -> Proc {
    Proc::spawn(
        "agora-master",
        &binary("agora-master"),
        &[
            "--listen".into(),
            addr.to_string(),
            "--data-dir".into(),
            dir.0.join("master").display().to_string(),
            "--allocation-interval-ms".into(),
            "200".into(),
        ],
        dir.0.join(if n == 0 {
            "master.log".to_string()
        } else {
            format!("master-{n}.log")
        }),
    )
}

pub struct Cluster {
    pub dir: Dir,
    pub master_addr: SocketAddr,
    pub master: Proc,
    pub agents: Vec<Proc>,
    pub services: Option<Proc>,
    pub api: Option<SocketAddr>,
    /// Extra flags of the services daemon.
    pub services_args: Vec<String>,
    pub master_restarts: usize,
}

impl Cluster {
    /// A master and `agents` agents (`cpus:4;mem:1024;disk:1024;ports:[31000-31099]`,
    /// hostnames `e2e-agent-<i>`, attribute `rack:r<i>`).
    pub fn start(agents: usize) -> Cluster {
        Cluster::start_with(agents, |_| Vec::new())
    }

    /// As [`start`](Self::start), agent `i` with the extra flags `extra(i)`.
    pub fn start_with(agents: usize, extra: impl Fn(usize) -> Vec<String>) -> Cluster {
        let dir = Dir::new("cluster");
        let master_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let master = spawn_master(&dir, master_addr, 0);
        let mut c = Cluster {
            dir,
            master_addr,
            master,
            agents: Vec::new(),
            services: None,
            api: None,
            services_args: Vec::new(),
            master_restarts: 0,
        };
        wait_for(
            "the master",
            || c.logs(),
            || (http(c.master_addr, "GET", "/health", None).0 == 200).then_some(()),
        );
        for i in 0..agents {
            let mut args = vec![
                "--master".to_string(),
                c.master_addr.to_string(),
                "--work-dir".into(),
                c.dir.0.join(format!("agent-{i}")).display().to_string(),
                "--resources".into(),
                "cpus:4;mem:1024;disk:1024;ports:[31000-31099]".into(),
                "--attributes".into(),
                format!("rack:r{i}"),
                "--hostname".into(),
                format!("e2e-agent-{i}"),
            ];
            let more = extra(i);
            if !more.iter().any(|a| a == "--isolation") {
                args.extend(["--isolation".into(), "process".into()]);
            }
            args.extend(more);
            let log = c.dir.0.join(format!("agent-{i}.log"));
            c.agents.push(Proc::spawn(
                "agora-agent",
                &binary("agora-agent"),
                &args,
                log,
            ));
        }
        wait_for(
            "agents registered",
            || c.logs(),
            || {
                let s = c.master_state();
                let n = s["agents"].as_array().map_or(0, |a| {
                    a.iter().filter(|x| x["status"] == "registered").count()
                });
                (n >= agents).then_some(())
            },
        );
        c
    }

    /// `kill -9` the master, then start it again on the same address and data directory.
    pub fn restart_master(&mut self) {
        self.master.kill9();
        self.master_restarts += 1;
        self.master = spawn_master(&self.dir, self.master_addr, self.master_restarts);
        wait_for(
            "the master again",
            || self.logs(),
            || (http(self.master_addr, "GET", "/health", None).0 == 200).then_some(()),
        );
    }

    pub fn master_state(&self) -> Json {
        http(self.master_addr, "GET", "/api/v1/state", None).1
    }

    /// Start (or restart) the services daemon on its data directory; returns its API
    /// address once it is subscribed.
    pub fn start_services(&mut self) -> SocketAddr {
        let n = std::fs::read_dir(&self.dir.0)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with("services"))
                    .count()
            })
            .unwrap_or(0);
        let log = self.dir.0.join(format!("services-{n}.log"));
        let port = self.api.map_or_else(free_port, |a| a.port());
        let mut args = vec![
            "--master".into(),
            self.master_addr.to_string(),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
            "--data-dir".into(),
            self.dir.0.join("services-data").display().to_string(),
        ];
        args.extend(self.services_args.iter().cloned());
        let proc = Proc::spawn("agora-services", &binary("agora-services"), &args, log);
        self.services = Some(proc);
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        self.api = Some(addr);
        wait_for(
            "agora-services subscribed",
            || self.logs(),
            || {
                let (code, info) = http(addr, "GET", "/v2/info", None);
                (code == 200 && info["subscribed"] == true).then_some(())
            },
        );
        addr
    }

    pub fn api(&self) -> SocketAddr {
        self.api.expect("services started")
    }

    pub fn logs(&self) -> String {
        let mut s = format!("--- master ---\n{}\n", tail(&self.master.log_text()));
        for (i, a) in self.agents.iter().enumerate() {
            s += &format!("--- agent {i} ---\n{}\n", tail(&a.log_text()));
        }
        if let Some(p) = &self.services {
            s += &format!("--- services ---\n{}\n", tail(&p.log_text()));
        }
        s
    }

    /// The framework's tasks the master holds as not ended, by state.
    pub fn master_live_tasks(&self) -> Vec<(String, String)> {
        let s = self.master_state();
        s["tasks"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter(|t| {
                        matches!(
                            t["state"].as_str(),
                            Some("STAGING" | "STARTING" | "RUNNING" | "KILLING")
                        )
                    })
                    .map(|t| {
                        (
                            t["id"].as_str().unwrap_or("").to_string(),
                            t["state"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn get(&self, path: &str) -> Json {
        let (code, body) = http(self.api(), "GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }

    pub fn send(&self, method: &str, path: &str, body: &Json) -> (u16, Json) {
        http(self.api(), method, path, Some(&body.to_string()))
    }

    /// The app's tasks as the API lists them.
    pub fn tasks(&self, app: &str) -> Vec<Json> {
        self.get(&format!("/v2/apps{app}/tasks"))["tasks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The master's id of agent `i` (by its hostname `e2e-agent-<i>`).
    pub fn agent_id(&self, i: usize) -> String {
        let s = self.master_state();
        s["agents"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|x| x["hostname"] == format!("e2e-agent-{i}").as_str())
                    .and_then(|x| x["id"].as_str())
            })
            .unwrap_or_default()
            .to_string()
    }

    pub fn running(&self, app: &str) -> Vec<Json> {
        self.tasks(app)
            .into_iter()
            .filter(|t| t["state"] == "TASK_RUNNING")
            .collect()
    }

    pub fn deployments(&self) -> Vec<Json> {
        self.get("/v2/deployments")
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Wait until the app runs exactly `n` instances and no deployment is left.
    pub fn wait_settled(&self, app: &str, n: usize) {
        wait_for(
            &format!("{app} settled at {n} running"),
            || {
                format!(
                    "tasks: {:?}\ndeployments: {:?}\n{}",
                    self.tasks(app),
                    self.deployments(),
                    self.logs()
                )
            },
            || {
                (self.running(app).len() == n
                    && self.tasks(app).len() == n
                    && self.deployments().is_empty())
                .then_some(())
            },
        );
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(p) = &mut self.services {
            p.kill9();
        }
        for a in &mut self.agents {
            a.stop();
        }
        self.master.stop();
    }
}

//! End-to-end test support: starts real `agora-master` and `agora-agent` processes on
//! loopback, and drives a framework over real gRPC.
//!
//! Processes are killed and their directories removed when a `Cluster` is dropped, also
//! when a test fails. Binaries come from the same target directory as the test executable:
//! the test command builds them first (`cargo build --workspace --bins`).

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::auth::{AuthInterceptor, Credential};
use agora_proto::v1::{self, Event, scheduler_client::SchedulerClient};
use agora_resources::Resources;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Streaming};

pub const WAIT: Duration = Duration::from_secs(30);

/// The directory holding the workspace's binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

pub fn binary(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace binaries first (cargo build --workspace --bins)",
        p.display()
    );
    p
}

/// Whether the tests run as root (effective uid 0, read from /proc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "agora-e2e-{tag}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4()
        ));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // AGORA_E2E_KEEP=1 keeps logs and sandboxes for a post-mortem.
        if std::env::var_os("AGORA_E2E_KEEP").is_some() {
            eprintln!("keeping {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, bin: &Path, args: &[String], log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file clone");
        let child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        Proc {
            name: name.to_string(),
            child,
            log,
        }
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then SIGKILL if it lingers. Returns the exit status if it exited by itself.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        let pid = self.child.id() as i32;
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill9();
        None
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

pub struct Cluster {
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub master: Proc,
    pub agents: Vec<Proc>,
    pub master_args: Vec<String>,
    /// `authorization` header for the HTTP reads the helpers make (secured masters).
    pub http_auth: Option<String>,
}

pub const AGENT_RESOURCES: &str = "cpus:4;mem:1024;disk:1024;ports:[31000-31099]";

impl Cluster {
    pub fn start(agents: usize) -> Cluster {
        Self::start_with(agents, &[])
    }

    /// Start with extra `agora-master` flags (e.g. short heartbeat timeouts).
    pub fn start_with(agents: usize, extra: &[&str]) -> Cluster {
        Self::start_in(TempDir::new("cluster"), agents, extra, None, &[])
    }

    /// Start in `dir` (where a test may have written credential or certificate files),
    /// reading state with `http_auth` and starting agents with `agent_extra` flags.
    pub fn start_in(
        dir: TempDir,
        agents: usize,
        extra: &[&str],
        http_auth: Option<String>,
        agent_extra: &[&str],
    ) -> Cluster {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut master_args = vec![
            "--listen".to_string(),
            addr.to_string(),
            "--data-dir".to_string(),
            dir.0.join("master").display().to_string(),
            "--allocation-interval-ms".to_string(),
            "200".to_string(),
        ];
        master_args.extend(extra.iter().map(|a| a.to_string()));
        let master = Proc::spawn(
            "master",
            &binary("agora-master"),
            &master_args,
            dir.0.join("master.log"),
        );
        let mut c = Cluster {
            addr,
            dir,
            master,
            agents: Vec::new(),
            master_args,
            http_auth,
        };
        c.wait_healthy();
        for i in 0..agents {
            c.add_agent_with(i, agent_extra);
        }
        c.wait_agents(agents);
        c
    }

    pub fn add_agent(&mut self, i: usize) {
        self.add_agent_with(i, &[]);
    }

    /// Tests that SIGKILL an agent start it with `--isolation process`: Linux containers
    /// outlive a killed agent by design and would leave their cgroups behind.
    pub fn add_agent_with(&mut self, i: usize, extra: &[&str]) {
        self.add_agent_resources(i, AGENT_RESOURCES, extra);
    }

    /// `add_agent_with`, offering `resources` instead of `AGENT_RESOURCES`.
    pub fn add_agent_resources(&mut self, i: usize, resources: &str, extra: &[&str]) {
        let mut args = vec![
            "--master".to_string(),
            self.addr.to_string(),
            "--work-dir".to_string(),
            self.dir.0.join(format!("agent-{i}")).display().to_string(),
            "--resources".to_string(),
            resources.to_string(),
            "--attributes".to_string(),
            format!("rack:r{i};zone:test"),
            "--hostname".to_string(),
            format!("e2e-agent-{i}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let log = self.dir.0.join(format!("agent-{i}.log"));
        self.agents.push(Proc::spawn(
            &format!("agent-{i}"),
            &binary("agora-agent"),
            &args,
            log,
        ));
    }

    /// Restart the master on the same address and data directory.
    pub fn restart_master(&mut self) {
        let log = self.dir.0.join("master-2.log");
        self.master = Proc::spawn("master", &binary("agora-master"), &self.master_args, log);
        self.wait_healthy();
    }

    pub fn logs(&self) -> String {
        let mut s = format!("--- master log ---\n{}\n", self.master.log_text());
        for a in &self.agents {
            s += &format!("--- {} log ---\n{}\n", a.name, a.log_text());
        }
        s
    }

    pub fn wait_healthy(&self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.addr, "/health") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("master never became healthy\n{}", self.logs());
    }

    pub fn state(&self) -> serde_json::Value {
        let auth: Vec<(&str, &str)> = self
            .http_auth
            .as_deref()
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        let (code, body) = http_request_with(self.addr, "GET", "/api/v1/state", None, &auth)
            .expect("GET /api/v1/state");
        assert_eq!(code, 200, "state endpoint: {body}");
        serde_json::from_str(&body).expect("state is JSON")
    }

    pub fn wait_agents(&self, n: usize) {
        self.wait_until("agents registered", |s| {
            s["agents"]
                .as_array()
                .is_some_and(|a| a.iter().filter(|x| x["status"] == "registered").count() >= n)
        });
    }

    pub fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            let s = self.state();
            if pred(&s) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "timed out waiting for {what}\nstate: {}\n{}",
            self.state(),
            self.logs()
        );
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for a in &mut self.agents {
            a.stop();
        }
        self.master.stop();
    }
}

/// Minimal HTTP/1.1 GET over loopback (keeps the tests free of an HTTP client stack).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    http_request(addr, "GET", path, None)
}

/// The status code of a response head (0 when there is none).
fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A raw HTTP GET: (status, head in lowercase, body).
pub fn get_raw(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = status_of(head);
    (code, head.to_ascii_lowercase(), body.to_string())
}

/// Minimal HTTP/1.1 request with an optional JSON body.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    http_request_with(addr, method, path, body, &[])
}

/// `http_request` with extra headers (e.g. `authorization`).
pub fn http_request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.unwrap_or("");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = status_of(head);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((code, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// A framework speaking the scheduler API directly.
pub struct Framework {
    pub id: String,
    pub client: SchedulerClient<InterceptedService<Channel, AuthInterceptor>>,
    events: Streaming<Event>,
    /// Latest status per task id.
    pub statuses: HashMap<String, v1::TaskStatus>,
    pub history: Vec<v1::TaskStatus>,
    pub offers: Vec<v1::Offer>,
    pub rescinded: Vec<String>,
    /// Events the helpers do not handle (MESSAGE, FAILURE, ...), in order.
    pub others: Vec<v1::event::Event>,
    /// `pump` acknowledges every update it reads (default); off, the test does.
    pub auto_ack: bool,
}

pub fn res(text: &str) -> Resources {
    Resources::parse(text).expect("test resources parse")
}

pub fn shell_task(id: &str, resources: &str, cmd: &str) -> v1::TaskInfo {
    v1::TaskInfo {
        name: id.to_string(),
        task_id: id.to_string(),
        resources: res(resources).to_proto(),
        command: Some(v1::CommandInfo {
            run: Some(v1::command_info::Run::Shell(cmd.to_string())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn launch(tasks: Vec<v1::TaskInfo>) -> v1::Operation {
    v1::Operation {
        operation: Some(v1::operation::Operation::Launch(v1::operation::Launch {
            tasks,
        })),
    }
}

impl Framework {
    pub async fn subscribe(addr: SocketAddr, name: &str) -> Framework {
        Self::subscribe_info(
            addr,
            v1::FrameworkInfo {
                name: name.to_string(),
                roles: vec!["e2e".into()],
                failover_timeout_seconds: 60.0,
                ..Default::default()
            },
        )
        .await
    }

    pub async fn subscribe_info(addr: SocketAddr, info: v1::FrameworkInfo) -> Framework {
        Self::try_subscribe(addr, info, None)
            .await
            .expect("subscribe")
    }

    /// Subscribe sending `credential` with every call; the master's refusal as `Err`.
    pub async fn try_subscribe(
        addr: SocketAddr,
        info: v1::FrameworkInfo,
        credential: Option<Credential>,
    ) -> Result<Framework, tonic::Status> {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
            .expect("connect to master");
        let interceptor = AuthInterceptor::new(credential.as_ref()).expect("sendable credential");
        let mut client = SchedulerClient::with_interceptor(channel, interceptor);
        let mut events = client
            .subscribe(v1::SubscribeRequest {
                framework: Some(info),
                secret: String::new(),
            })
            .await?
            .into_inner();
        let first = tokio::time::timeout(WAIT, events.message())
            .await
            .expect("SUBSCRIBED in time")
            .expect("stream ok")
            .expect("an event");
        let id = match first.event {
            Some(v1::event::Event::Subscribed(s)) => s.framework_id,
            other => panic!("first event is not SUBSCRIBED: {other:?}"),
        };
        Ok(Framework {
            id,
            client,
            events,
            statuses: HashMap::new(),
            history: Vec::new(),
            offers: Vec::new(),
            rescinded: Vec::new(),
            others: Vec::new(),
            auto_ack: true,
        })
    }

    /// Handle one event (acknowledging updates). Returns false on timeout.
    pub async fn pump(&mut self, timeout: Duration) -> bool {
        let ev = match tokio::time::timeout(timeout, self.events.message()).await {
            Err(_) => return false,
            Ok(Ok(Some(ev))) => ev,
            Ok(other) => panic!("event stream ended: {other:?}"),
        };
        match ev.event {
            Some(v1::event::Event::Offers(o)) => self.offers.extend(o.offers),
            Some(v1::event::Event::Rescind(r)) => {
                self.offers.retain(|o| o.id != r.offer_id);
                self.rescinded.push(r.offer_id);
            }
            Some(v1::event::Event::Update(u)) => {
                let s = u.status.expect("update carries a status");
                if self.auto_ack && !s.uuid.is_empty() {
                    self.client
                        .acknowledge(v1::AcknowledgeRequest {
                            framework_id: self.id.clone(),
                            agent_id: s.agent_id.clone(),
                            task_id: s.task_id.clone(),
                            uuid: s.uuid.clone(),
                        })
                        .await
                        .expect("acknowledge");
                }
                self.history.push(s.clone());
                self.statuses.insert(s.task_id.clone(), s);
            }
            Some(other) => self.others.push(other),
            None => {}
        }
        true
    }

    /// Wait until at least `n` offers are held (on distinct agents when `distinct`).
    pub async fn wait_offers(&mut self, n: usize) -> Vec<v1::Offer> {
        let deadline = Instant::now() + WAIT;
        while self.offers.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} offers arrived",
                self.offers.len()
            );
            self.pump(Duration::from_millis(200)).await;
        }
        std::mem::take(&mut self.offers)
    }

    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&HashMap<String, v1::TaskStatus>) -> bool,
    ) {
        let deadline = Instant::now() + WAIT;
        while !pred(&self.statuses) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; statuses: {:?}",
                self.statuses
                    .values()
                    .map(|s| (s.task_id.clone(), state_of(s), s.message.clone()))
                    .collect::<Vec<_>>()
            );
            self.pump(Duration::from_millis(200)).await;
        }
    }

    pub async fn accept(
        &mut self,
        offer_ids: Vec<String>,
        ops: Vec<v1::Operation>,
        refuse_seconds: Option<f64>,
    ) -> Result<v1::AcceptResponse, tonic::Status> {
        self.client
            .accept(v1::AcceptRequest {
                framework_id: self.id.clone(),
                offer_ids,
                operations: ops,
                filters: Some(v1::Filters { refuse_seconds }),
            })
            .await
            .map(|r| r.into_inner())
    }

    pub async fn decline(&mut self, offer_ids: Vec<String>, refuse_seconds: f64) {
        self.client
            .decline(v1::DeclineRequest {
                framework_id: self.id.clone(),
                offer_ids,
                filters: Some(v1::Filters {
                    refuse_seconds: Some(refuse_seconds),
                }),
            })
            .await
            .expect("decline");
    }
}

pub fn state_of(s: &v1::TaskStatus) -> TaskState {
    TaskState::try_from(s.state).unwrap_or(TaskState::Unspecified)
}

pub fn assert_code<T: std::fmt::Debug>(r: Result<T, tonic::Status>, code: Code, needle: &str) {
    match r {
        Ok(v) => panic!("expected {code:?} containing {needle:?}, got Ok({v:?})"),
        Err(s) => {
            assert_eq!(s.code(), code, "status {s:?}");
            assert!(
                s.message().contains(needle),
                "message {:?} should contain {needle:?}",
                s.message()
            );
        }
    }
}

/// A scripted agent over raw gRPC registered with `resources`: its client, its command
/// stream (REGISTERED already read) and its id.
pub async fn scripted_agent(
    cluster: &Cluster,
    resources: &str,
) -> (
    v1::agent_api_client::AgentApiClient<Channel>,
    Streaming<v1::AgentCommand>,
    String,
) {
    let mut agent = v1::agent_api_client::AgentApiClient::connect(cluster.url())
        .await
        .expect("connect");
    let mut commands = agent
        .register(v1::RegisterAgentRequest {
            info: Some(v1::AgentInfo {
                hostname: "scripted".into(),
                resources: res(resources).to_proto(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("register")
        .into_inner();
    let agent_id = match commands.message().await.expect("stream").map(|c| c.command) {
        Some(Some(v1::agent_command::Command::Registered(r))) => r.agent_id,
        other => panic!("expected REGISTERED, got {other:?}"),
    };
    (agent, commands, agent_id)
}

/// The credential of `principal` in the security tests' credentials files: its secret is
/// `<principal>-secret`.
pub fn test_credential(principal: &str) -> Credential {
    Credential {
        principal: principal.to_string(),
        secret: format!("{principal}-secret"),
    }
}

/// The `authorization` header of `principal`'s test credential (HTTP Basic).
pub fn basic_auth(principal: &str) -> String {
    test_credential(principal).to_header()
}

/// An operator gRPC client sending `principal`'s test credential with every call.
pub type SecuredOperator =
    v1::operator_client::OperatorClient<InterceptedService<Channel, AuthInterceptor>>;

pub async fn secured_operator(addr: SocketAddr, principal: &str) -> SecuredOperator {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let c = test_credential(principal);
    v1::operator_client::OperatorClient::with_interceptor(
        channel,
        AuthInterceptor::new(Some(&c)).expect("sendable credential"),
    )
}

//! High availability with real processes: three `agora-master`s elect a leader through a
//! real 3-member etcd cluster on loopback (Debian's `etcd-server`), keep the registry in
//! it, and hand leadership over when the leader dies or is cut off from etcd; agents and
//! frameworks (`agora run`, on the SDK) follow the leader. Every test here is named
//! `needs_etcd_*`: `scripts/test.sh` filters them out (shown as skipped) where etcd is not
//! installed and cannot be.

#[path = "support/etcd.rs"]
mod etcd_cluster;
mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_master::ha::election::{Election, LeaderRecord, Outcome};
use agora_master::ha::etcd::EtcdClient;
use agora_master::registry::{EtcdRegistry, Fence, Registry, RegistryOp};
use agora_proto::v1;
use etcd_cluster::EtcdCluster;
use support::*;

/// The masters' lease: short, so failover tests are quick (etcd's minimum).
const TTL_S: u64 = 2;

struct Masters {
    dir: TempDir,
    etcd: EtcdCluster,
    addrs: Vec<SocketAddr>,
    args: Vec<Vec<String>>,
    procs: Vec<Option<Proc>>,
    agents: Vec<Proc>,
}

impl Masters {
    /// A 3-member etcd and `n` masters; master `i` uses the etcd members `endpoints(i)`.
    fn start(n: usize, endpoints: impl Fn(&EtcdCluster, usize) -> String) -> Masters {
        Self::start_ttl(n, TTL_S, endpoints)
    }

    /// `start` with a lease of `ttl_s` seconds.
    fn start_ttl(
        n: usize,
        ttl_s: u64,
        endpoints: impl Fn(&EtcdCluster, usize) -> String,
    ) -> Masters {
        let dir = TempDir::new("ha");
        let etcd = EtcdCluster::start(&dir.0, 3);
        let prefix = format!("/agora-test-{}", uuid::Uuid::new_v4());
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|_| format!("127.0.0.1:{}", free_port()).parse().expect("addr"))
            .collect();
        let args = (0..n)
            .map(|i| {
                vec![
                    "--listen".to_string(),
                    addrs[i].to_string(),
                    "--data-dir".to_string(),
                    dir.0.join(format!("master{i}")).display().to_string(),
                    "--allocation-interval-ms".to_string(),
                    "200".to_string(),
                    "--etcd-endpoints".to_string(),
                    endpoints(&etcd, i),
                    "--etcd-prefix".to_string(),
                    prefix.clone(),
                    "--etcd-lease-ttl-seconds".to_string(),
                    ttl_s.to_string(),
                    // Agents are back within the test's time or the test fails anyway.
                    "--agent-reregistration-timeout-seconds".to_string(),
                    "60".to_string(),
                ]
            })
            .collect();
        let mut m = Masters {
            dir,
            etcd,
            addrs,
            args,
            procs: (0..n).map(|_| None).collect(),
            agents: Vec::new(),
        };
        for i in 0..n {
            m.start_master(i);
        }
        m
    }

    fn start_master(&mut self, i: usize) {
        let log = self
            .dir
            .0
            .join(format!("master{i}-{}.log", uuid::Uuid::new_v4()));
        self.procs[i] = Some(Proc::spawn(
            &format!("master{i}"),
            &binary("agora-master"),
            &self.args[i],
            log,
        ));
    }

    fn kill9(&mut self, i: usize) {
        if let Some(p) = self.procs[i].as_mut() {
            p.kill9();
        }
    }

    fn master_list(&self) -> String {
        self.addrs
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn add_agent(&mut self, i: usize) {
        let args = vec![
            "--master".to_string(),
            self.master_list(),
            "--work-dir".to_string(),
            self.dir.0.join(format!("agent-{i}")).display().to_string(),
            "--resources".to_string(),
            AGENT_RESOURCES.to_string(),
            "--hostname".to_string(),
            format!("ha-agent-{i}"),
            "--isolation".to_string(),
            "process".to_string(),
        ];
        let log = self.dir.0.join(format!("agent-{i}.log"));
        self.agents.push(Proc::spawn(
            &format!("agent-{i}"),
            &binary("agora-agent"),
            &args,
            log,
        ));
    }

    /// `/health` of master `i`: (leading, leader named).
    fn health(&self, i: usize) -> Option<(bool, Option<String>)> {
        let (code, body) = http_get(self.addrs[i], "/health").ok()?;
        if code != 200 {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        Some((
            v["leading"].as_bool()?,
            v["leader"].as_str().map(str::to_string),
        ))
    }

    /// The masters that say they lead.
    fn leaders(&self) -> Vec<usize> {
        (0..self.addrs.len())
            .filter(|&i| self.procs[i].is_some() && matches!(self.health(i), Some((true, _))))
            .collect()
    }

    /// Wait until exactly one master of `among` leads and every other live one names it.
    fn wait_leader(&self, among: &[usize], within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let leaders = self.leaders();
            if let [l] = leaders[..]
                && among.contains(&l)
            {
                let named = self.addrs[l].to_string();
                let agreed = among
                    .iter()
                    .filter(|&&i| i != l)
                    .all(|&i| matches!(self.health(i), Some((false, Some(ref x))) if *x == named));
                if agreed {
                    return l;
                }
            }
            assert!(leaders.len() <= 1, "two masters lead at once: {leaders:?}");
            if Instant::now() > deadline {
                panic!(
                    "no single leader among {among:?} within {within:?} (leading: {leaders:?})\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for (i, p) in self.procs.iter().enumerate() {
            if let Some(p) = p {
                s += &format!("--- master{i} ---\n{}\n", tail(&p.log_text(), 40));
            }
        }
        for a in &self.agents {
            s += &format!("--- {} ---\n{}\n", a.name, tail(&a.log_text(), 40));
        }
        s + &self.etcd.logs()
    }

    fn state(&self, i: usize) -> serde_json::Value {
        let (code, body) = http_get(self.addrs[i], "/api/v1/state").expect("GET state");
        assert_eq!(code, 200, "state of master{i}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    fn wait_state(
        &self,
        i: usize,
        what: &str,
        within: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            if let Ok((200, body)) = http_get(self.addrs[i], "/api/v1/state")
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&body)
                && pred(&v)
            {
                return v;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what} on master{i}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Masters {
    fn drop(&mut self) {
        for a in &mut self.agents {
            a.stop();
        }
        for p in self.procs.iter_mut().flatten() {
            p.kill9();
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// One request with `extra` header lines (each ending in `\r\n`) and an empty JSON body;
/// (status, head, body).
fn request_raw(addr: SocketAddr, method: &str, path: &str, extra: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let body = if method == "GET" { "" } else { "{}" };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = String::new();
    s.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, head.to_string(), body.to_string())
}

fn weights(m: &Masters, i: usize) -> String {
    let (code, body) = http_get(m.addrs[i], "/api/v1/weights").expect("weights");
    assert_eq!(code, 200, "{body}");
    body
}

/// One leader, followers naming it on every transport (HTTP 307 to the same path, gRPC
/// UNAVAILABLE with the leader in its metadata, `/health` and `GetHealth` truthful); a
/// `kill -9` of the leader gives a new one within the lease TTL + 2 s that recovered the
/// registry from etcd; the old one restarted rejoins as a follower; a restart of every
/// master recovers everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_one_leader_followers_redirect_and_kill9_failover() {
    let mut m = Masters::start(3, |e, _| e.endpoints());
    let all = [0, 1, 2];
    let l = m.wait_leader(&all, Duration::from_secs(30));
    let leader = m.addrs[l].to_string();
    let f = (l + 1) % 3;

    let (code, head, body) = get_raw(m.addrs[f], "/api/v1/state?x=1");
    assert_eq!(code, 307, "{head}\n{body}");
    let location = format!("location: http://{leader}/api/v1/state?x=1");
    assert!(head.to_ascii_lowercase().contains(&location), "{head}");
    assert!(body.contains("not the leader"), "{body}");
    // A UI or any other page redirects the same way.
    let (code, head, _) = get_raw(m.addrs[f], "/ui/index.html");
    assert_eq!(code, 307, "{head}");
    // Mesos's `/master/redirect` on a follower names the leader itself (`http://HOST:PORT`,
    // the scheme served, as the leader's own answer does).
    for path in ["/master/redirect", "/redirect"] {
        let (code, head, _) = get_raw(m.addrs[f], path);
        assert_eq!(code, 307, "{path}: {head}");
        let location = format!("location: http://{leader}\r");
        assert!(
            head.to_ascii_lowercase().contains(&location),
            "{path}: {head}"
        );
    }
    // A page's own calls on a follower (a change with the page's Origin, a fetch) are not
    // redirected (the leader would refuse them as cross-origin): 503 naming the leader, for
    // the page to move itself there. Nothing changed.
    let origin = format!("Origin: http://{}\r\n", m.addrs[f]);
    let (code, head, body) = request_raw(m.addrs[f], "POST", "/api/v1/agents/none/drain", &origin);
    assert_eq!(code, 503, "{head}\n{body}");
    let head = head.to_ascii_lowercase();
    assert!(!head.contains("location:"), "{head}");
    assert!(head.contains(&format!("agora-leader: {leader}")), "{head}");
    assert!(body.contains("not the leader"), "{body}");
    let (code, head, _) = request_raw(
        m.addrs[f],
        "GET",
        "/api/v1/state",
        "Sec-Fetch-Mode: cors\r\n",
    );
    assert_eq!(code, 503, "{head}");
    let (code, _, _) = request_raw(
        m.addrs[f],
        "GET",
        "/api/v1/state",
        "Sec-Fetch-Mode: navigate\r\n",
    );
    assert_eq!(code, 307, "a navigation is redirected");

    let channel = tonic::transport::Channel::from_shared(format!("http://{}", m.addrs[f]))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut op = v1::operator_client::OperatorClient::new(channel.clone());
    let refused = op
        .get_state(v1::Empty {})
        .await
        .expect_err("follower refuses");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert_eq!(
        refused
            .metadata()
            .get("agora-leader")
            .and_then(|v| v.to_str().ok()),
        Some(leader.as_str())
    );
    assert!(refused.message().contains("not the leader"), "{refused:?}");
    let health = op
        .get_health(v1::Empty {})
        .await
        .expect("health")
        .into_inner();
    assert!(health.healthy && !health.leading && health.leader == leader);
    let mut sched = v1::scheduler_client::SchedulerClient::new(channel);
    let refused = sched
        .subscribe(v1::SubscribeRequest {
            framework: Some(v1::FrameworkInfo {
                name: "x".into(),
                ..Default::default()
            }),
            secret: String::new(),
        })
        .await
        .expect_err("follower refuses subscriptions");
    assert!(
        refused.metadata().get("agora-leader").is_some(),
        "{refused:?}"
    );

    // A change on the leader is in etcd.
    let (code, body) = http_request(
        m.addrs[l],
        "PUT",
        "/api/v1/weights",
        Some(r#"[{"role":"ha","weight":3.5}]"#),
    )
    .expect("PUT weights");
    assert_eq!(code, 200, "{body}");

    let killed = Instant::now();
    m.kill9(l);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let l2 = m.wait_leader(&others, Duration::from_secs(TTL_S + 2));
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(TTL_S + 2),
        "new leader after {took:?}"
    );
    assert!(weights(&m, l2).contains("3.5"), "{}", weights(&m, l2));

    // The old leader, restarted, follows.
    m.start_master(l);
    m.wait_leader(&all, Duration::from_secs(20));
    assert_eq!(m.leaders(), vec![l2], "the restarted master must follow");

    // Every master restarted: the registry comes back from etcd.
    for i in all {
        m.kill9(i);
    }
    for i in all {
        m.start_master(i);
    }
    let l3 = m.wait_leader(&all, Duration::from_secs(TTL_S + 20));
    assert!(weights(&m, l3).contains("3.5"), "{}", weights(&m, l3));

    // SIGTERM stops a follower (it has no actor to close streams on) and the leader.
    for i in all.iter().copied().filter(|&i| i != l3).chain([l3]) {
        let stopped = m.procs[i].as_mut().and_then(Proc::stop);
        assert!(stopped.is_some(), "master{i} ignored SIGTERM\n{}", m.logs());
    }
}

/// `kill -9` of the leader while tasks launch and status updates flow: agents and the
/// framework (`agora run` on the SDK) find the new leader by themselves, keeping their
/// ids and tasks; every task finishes and `agora run` (exit 0 only if each of its tasks
/// reported FINISHED) succeeds: no task and no status update lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_kill9_of_the_leader_under_load_loses_nothing() {
    let mut m = Masters::start(3, |e, _| e.endpoints());
    let all = [0, 1, 2];
    let l = m.wait_leader(&all, Duration::from_secs(30));
    for i in 0..2 {
        m.add_agent(i);
    }
    m.wait_state(l, "2 agents", WAIT, |s| {
        s["agents"].as_array().is_some_and(|a| a.len() == 2)
    });
    let agent_ids: Vec<String> = m.state(l)["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["id"].as_str().unwrap_or_default().to_string())
        .collect();
    // More than fit at once (2 agents x 4 cpus / 0.5): launches go on after the failover.
    const TASKS: usize = 40;
    let run_log = m.dir.0.join("agora-run.log");
    let out = std::fs::File::create(&run_log).expect("log");
    let mut run = Command::new(binary("agora"))
        .args([
            "run",
            "--master",
            &m.master_list(),
            "--instances",
            &TASKS.to_string(),
            "--cpus",
            "0.5",
            "--mem",
            "16",
            "--name",
            "ha-load",
            "--timeout",
            "90",
            "--",
            "sleep",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .spawn()
        .expect("agora run");
    // Kill the leader once tasks are running (launches and updates in flight).
    m.wait_state(l, "running tasks", WAIT, |s| {
        s["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().filter(|x| x["state"] == "RUNNING").count() >= 4)
    });
    let killed = Instant::now();
    m.kill9(l);
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let l2 = m.wait_leader(&others, Duration::from_secs(TTL_S + 2));
    assert!(killed.elapsed() <= Duration::from_secs(TTL_S + 2));
    // Agents are back on the new leader with their ids.
    m.wait_state(l2, "agents re-registered", WAIT, |s| {
        s["agents"].as_array().is_some_and(|a| {
            a.iter().filter(|x| x["status"] == "registered").count() == 2
                && a.iter()
                    .all(|x| agent_ids.iter().any(|id| x["id"] == id.as_str()))
        })
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = run.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!(
                "agora run did not finish\n{}\n{}",
                std::fs::read_to_string(&run_log).unwrap_or_default(),
                m.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&run_log).unwrap_or_default();
    assert!(
        status.success(),
        "agora run failed: {status}\n{text}\n{}",
        m.logs()
    );
    // Each task ran exactly once: none lost, none launched twice.
    let agent_logs: String = m.agents.iter().map(|a| a.log_text()).collect();
    for i in 0..TASKS {
        let ran = agent_logs
            .matches(&format!("/ha-load-{i} state=Finished"))
            .count();
        assert_eq!(ran, 1, "task ha-load-{i} finished {ran} times\n{text}");
    }
}

/// The loss of one etcd member is tolerated (masters move to another endpoint; the
/// leader keeps leading and writing); a leader cut off from etcd (its only endpoint
/// killed) steps down within the TTL and another master takes over with the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_member_loss_tolerated_and_a_cut_off_leader_steps_down() {
    // Master 0 reaches etcd only through member 0; the others through 2, then 1. The
    // lease is longer than etcd's own leader election (1 s timeout plus the vote): a
    // killed etcd member may have been etcd's leader, and while etcd elects another no
    // lease is refreshed; a 2 s lease would depose the master then.
    const TTL_S: u64 = 4;
    let mut m = Masters::start_ttl(1, TTL_S, |e, _| e.member_endpoints(&[0]));
    let l = m.wait_leader(&[0], Duration::from_secs(30));
    assert_eq!(l, 0);
    for _ in 1..3 {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut args = m.args[0].clone();
        args[1] = addr.to_string();
        args[3] = m
            .dir
            .0
            .join(format!("master{}", m.addrs.len()))
            .display()
            .to_string();
        args[7] = m.etcd.member_endpoints(&[2, 1]);
        m.addrs.push(addr);
        m.args.push(args);
        m.procs.push(None);
        let i = m.addrs.len() - 1;
        m.start_master(i);
    }
    let all = [0, 1, 2];
    assert_eq!(m.wait_leader(&all, Duration::from_secs(20)), 0);

    // One member lost: the followers move to member 1, the leader writes on.
    m.etcd.kill_member(2);
    std::thread::sleep(Duration::from_secs(TTL_S * 2));
    assert_eq!(m.wait_leader(&all, Duration::from_secs(10)), 0);
    let (code, body) = http_request(
        m.addrs[0],
        "PUT",
        "/api/v1/weights",
        Some(r#"[{"role":"cut","weight":2.5}]"#),
    )
    .expect("PUT weights");
    assert_eq!(code, 200, "{body}");
    m.etcd.start_member(2);
    m.etcd.wait_member(2);

    // The leader cut off from etcd.
    let cut = Instant::now();
    m.etcd.kill_member(0);
    let deadline = cut + Duration::from_secs(TTL_S);
    while let Some((true, _)) = m.health(0) {
        assert!(
            Instant::now() <= deadline,
            "the cut-off leader still leads after the TTL\n{}",
            m.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let l2 = m.wait_leader(&[1, 2], Duration::from_secs(TTL_S + 2));
    assert!(weights(&m, l2).contains("2.5"), "{}", weights(&m, l2));
    // The old leader stays a follower (it cannot reach etcd, so it names no leader).
    assert!(!matches!(m.health(0), Some((true, _))));
}

/// Fencing: a leader whose term ended (its lease gone, another master elected) cannot
/// write: its append fails naming the fence and nothing of it lands; the new leader
/// reads every write the old one was answered for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_a_deposed_leaders_write_is_refused() {
    let dir = TempDir::new("fence");
    let etcd = EtcdCluster::start(&dir.0, 3);
    let client = Arc::new(EtcdClient::new(&etcd.endpoint_list()).expect("client"));
    let prefix = format!("/fence-{}", uuid::Uuid::new_v4());
    let ttl = Duration::from_secs(TTL_S);
    let record = |id: &str| LeaderRecord {
        id: id.into(),
        addr: format!("{id}:5050"),
    };
    let a = Election::new(client.clone(), &prefix, record("a"), ttl);
    let b = Election::new(client.clone(), &prefix, record("b"), ttl);
    let Outcome::Elected(term_a) = a.try_lead().await.expect("campaign a") else {
        panic!("a must win an empty election");
    };
    let Outcome::Following(Some(leader)) = b.try_lead().await.expect("campaign b") else {
        panic!("b must follow a");
    };
    assert_eq!(leader, record("a"));
    let fence = |revision| Fence {
        key: a.key().to_vec(),
        revision,
    };
    let reg_a = EtcdRegistry::new(client.clone(), &prefix, fence(term_a.revision));
    reg_a.recover().await.expect("recover a");
    let weight = |role: &str| RegistryOp::SetWeight {
        role: role.into(),
        weight: 2.0,
    };
    reg_a.append(vec![weight("by-a")]).await.expect("a writes");

    // a's term ends (its lease is gone as if it expired) and b is elected.
    client.revoke(term_a.lease).await.expect("revoke");
    let held = tokio::time::timeout(Duration::from_secs(TTL_S + 2), a.hold(term_a))
        .await
        .expect("a notices within the TTL");
    assert!(
        held.contains("expired") || held.contains("deleted"),
        "{held}"
    );
    let Outcome::Elected(term_b) = b.try_lead().await.expect("campaign b") else {
        panic!("b must win once a is gone");
    };
    assert!(term_b.revision > term_a.revision);

    let err = reg_a
        .append(vec![weight("by-deposed-a")])
        .await
        .expect_err("a deposed leader's write is refused");
    assert!(err.to_string().contains("fenced"), "{err}");

    let reg_b = EtcdRegistry::new(client.clone(), &prefix, fence(term_b.revision));
    let state = reg_b.recover().await.expect("recover b");
    assert!(state.weights.contains_key("by-a"), "{state:?}");
    assert!(!state.weights.contains_key("by-deposed-a"), "{state:?}");
    reg_b.append(vec![weight("by-b")]).await.expect("b writes");
    let again = EtcdRegistry::new(client.clone(), &prefix, fence(term_b.revision))
        .recover()
        .await
        .expect("recover");
    assert!(again.weights.contains_key("by-b") && !again.weights.contains_key("by-deposed-a"));
}

/// A leader stopped with SIGTERM closes its streams and revokes its lease: another master
/// leads at once, long before the lease (10 s here) could have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_etcd_a_leader_stopped_with_sigterm_hands_over_at_once() {
    const LONG_TTL_S: u64 = 10;
    let mut m = Masters::start_ttl(3, LONG_TTL_S, |e, _| e.endpoints());
    let all = [0, 1, 2];
    let l = m.wait_leader(&all, Duration::from_secs(30));
    let stopping = Instant::now();
    let stopped = m.procs[l].as_mut().and_then(Proc::stop);
    assert!(stopped.is_some(), "master{l} ignored SIGTERM\n{}", m.logs());
    m.procs[l] = None;
    let others: Vec<usize> = all.iter().copied().filter(|&i| i != l).collect();
    let half_ttl = Duration::from_secs(LONG_TTL_S / 2);
    m.wait_leader(&others, half_ttl);
    let took = stopping.elapsed();
    assert!(
        took < half_ttl,
        "a new leader {took:?} after SIGTERM: the lease was not revoked"
    );
}

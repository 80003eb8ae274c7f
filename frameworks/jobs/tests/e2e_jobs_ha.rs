//! `agora-jobs` as two instances over a real 3-member etcd (Debian's `etcd-server`), one
//! leader: the follower redirects REST calls to it, and a `kill -9` of the leader loses no
//! job, schedule or run: the other instance takes over from etcd, adopts the running task
//! (it does not start it twice) and keeps the run history. Named `needs_etcd_*`:
//! `scripts/test.sh` shows it as skipped where etcd cannot be installed.

#[path = "../../../master/tests/support/etcd.rs"]
mod etcd_cluster;
#[path = "../../../master/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etcd_cluster::EtcdCluster;
use serde_json::{Value, json};
use support::*;

/// The instances' lease (etcd's minimum): a killed leader is replaced within about this.
const TTL_S: u64 = 2;
const JOBS_WAIT: Duration = Duration::from_secs(60);

struct Instance {
    proc: Option<Proc>,
    addr: SocketAddr,
    args: Vec<String>,
    starts: u32,
}

struct Instances {
    list: Vec<Instance>,
    dir: std::path::PathBuf,
}

impl Instances {
    fn start(c: &Cluster, etcd: &EtcdCluster, n: usize) -> Instances {
        let prefix = format!("/agora-jobs-test-{}", uuid::Uuid::new_v4());
        let mut list = Vec::new();
        for i in 0..n {
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
            let args = vec![
                "--master".to_string(),
                c.addr.to_string(),
                "--listen".to_string(),
                addr.to_string(),
                "--data-dir".to_string(),
                c.dir.0.join(format!("jobs{i}")).display().to_string(),
                "--etcd-endpoints".to_string(),
                etcd.endpoints(),
                "--etcd-prefix".to_string(),
                prefix.clone(),
                "--etcd-lease-ttl-seconds".to_string(),
                TTL_S.to_string(),
            ];
            list.push(Instance {
                proc: None,
                addr,
                args,
                starts: 0,
            });
        }
        let mut s = Instances {
            list,
            dir: c.dir.0.clone(),
        };
        for i in 0..n {
            s.spawn(i);
        }
        s
    }

    fn spawn(&mut self, i: usize) {
        let inst = &mut self.list[i];
        let log = self.dir.join(format!("jobs{i}-{}.log", inst.starts));
        inst.starts += 1;
        inst.proc = Some(Proc::spawn(
            &format!("jobs{i}"),
            &binary("agora-jobs"),
            &inst.args,
            log,
        ));
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut p) = self.list[i].proc.take() {
            p.kill9();
        }
    }

    /// `GET /leader` of instance `i`: (leading, leader named).
    fn leader_of(&self, i: usize) -> Option<(bool, Option<String>)> {
        let (code, body) = http_get(self.list[i].addr, "/leader").ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        (code == 200).then(|| {
            (
                v["leading"].as_bool().unwrap_or(false),
                v["leader"].as_str().map(str::to_string),
            )
        })
    }

    /// Wait until exactly one live instance leads and every other live one names it.
    fn wait_leader(&self, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        let live: Vec<usize> = (0..self.list.len())
            .filter(|&i| self.list[i].proc.is_some())
            .collect();
        loop {
            let leaders: Vec<usize> = live
                .iter()
                .copied()
                .filter(|&i| matches!(self.leader_of(i), Some((true, _))))
                .collect();
            assert!(leaders.len() <= 1, "two instances lead: {leaders:?}");
            if let [l] = leaders[..] {
                let named = self.list[l].addr.to_string();
                if live.iter().filter(|&&i| i != l).all(
                    |&i| matches!(self.leader_of(i), Some((false, Some(ref x))) if *x == named),
                ) {
                    return l;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no single leader within {within:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for (i, inst) in self.list.iter().enumerate() {
            if let Some(p) = &inst.proc {
                s += &format!("--- jobs{i} ---\n{}\n", p.log_text());
            }
        }
        s
    }

    fn call(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let (code, body) = http_request(self.list[i].addr, method, path, text.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()));
        (
            code,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        )
    }

    fn ok(&self, i: usize, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.call(i, method, path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {v}\n{}",
            self.logs()
        );
        v
    }

    fn runs(&self, i: usize, job: &str) -> Vec<Value> {
        self.ok(i, "GET", &format!("/v1/jobs/{job}/runs?all=true"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn wait_runs(&self, i: usize, job: &str, what: &str, pred: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + JOBS_WAIT;
        loop {
            let runs = self.runs(i, job);
            if pred(&runs) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; runs of {job}: {}\n{}",
                Value::Array(runs),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Instances {
    fn drop(&mut self) {
        for inst in &mut self.list {
            if let Some(p) = inst.proc.as_mut() {
                p.kill9();
            }
        }
    }
}

fn count(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

fn framework_ids(c: &Cluster) -> Vec<String> {
    c.state()["frameworks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn needs_etcd_jobs_two_instances_one_leader_kill9_loses_nothing() {
    let c = Cluster::start_in(
        TempDir::new("jobs-ha"),
        1,
        &[],
        None,
        &["--isolation", "process"],
    );
    let etcd = EtcdCluster::start(&c.dir.0, 3);
    let mut jobs = Instances::start(&c, &etcd, 2);
    let leader = jobs.wait_leader(JOBS_WAIT);
    let follower = 1 - leader;

    // The follower sends REST calls to the leader, with the leader's address.
    let (code, body) = jobs.call(follower, "GET", "/v1/jobs?x=1", None);
    assert_eq!(code, 307, "{body}");
    let named = jobs.list[leader].addr.to_string();
    assert!(
        body["message"].as_str().is_some_and(|m| m.contains(&named)),
        "{body}"
    );

    // A finished run, a running one (its command leaves a mark each time it starts), a
    // schedule, a dependency.
    let shared = c.dir.0.join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    std::fs::set_permissions(
        &shared,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("shared dir mode");
    let marker = shared.join("starts");
    jobs.ok(
        leader,
        "POST",
        "/v1/jobs",
        Some(json!({"id": "quick", "run": {"cmd": "true"}})),
    );
    jobs.ok(
        leader,
        "POST",
        "/v1/jobs",
        Some(json!({"id": "long", "run": {"cmd": format!("echo started >> {}; sleep 5", marker.display())}})),
    );
    jobs.ok(
        leader,
        "POST",
        "/v1/jobs/quick/schedules",
        Some(json!({"id": "nightly", "cron": "0 3 * * *", "enabled": false})),
    );
    jobs.ok(
        leader,
        "POST",
        "/v1/jobs",
        Some(json!({"id": "child", "run": {"cmd": "true"}, "dependencies": ["quick"]})),
    );
    jobs.ok(leader, "POST", "/v1/jobs/quick/runs", None);
    jobs.wait_runs(leader, "quick", "the quick run to succeed", |r| {
        count(r, "SUCCESS") == 1
    });
    jobs.ok(leader, "POST", "/v1/jobs/long/runs", None);
    jobs.wait_runs(leader, "long", "the long run to be active", |r| {
        count(r, "ACTIVE") == 1
    });
    let frameworks = framework_ids(&c);
    assert_eq!(frameworks.len(), 1, "{frameworks:?}");

    jobs.kill9(leader);
    let killed = Instant::now();
    let next = jobs.wait_leader(JOBS_WAIT);
    assert_eq!(next, follower);
    eprintln!("new leader after {:?}", killed.elapsed());

    // Everything is there, and the running task is adopted, not started again.
    let list = jobs.ok(next, "GET", "/v1/jobs", None);
    let ids: Vec<&str> = list
        .as_array()
        .map(|a| a.iter().filter_map(|j| j["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids.len(), 3, "{list}");
    let schedule = jobs.ok(next, "GET", "/v1/jobs/quick/schedules/nightly", None);
    assert_eq!(schedule["cron"], "0 3 * * *", "{schedule}");
    let deps = jobs.ok(next, "GET", "/v1/jobs/child/dependencies", None);
    assert!(deps.to_string().contains("quick"), "{deps}");
    assert_eq!(count(&jobs.runs(next, "quick"), "SUCCESS"), 1);
    jobs.wait_runs(next, "long", "the adopted run to succeed", |r| {
        count(r, "SUCCESS") == 1
    });
    assert_eq!(jobs.runs(next, "long").len(), 1);
    let starts = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(starts.lines().count(), 1, "the command ran once");
    assert_eq!(
        framework_ids(&c),
        frameworks,
        "the same framework failed over"
    );

    // The old leader, restarted, follows.
    jobs.spawn(leader);
    assert_eq!(jobs.wait_leader(JOBS_WAIT), next);
}

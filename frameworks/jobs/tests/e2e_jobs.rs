//! End-to-end tests of `agora-jobs` against real `agora-master` and `agora-agent`
//! processes on loopback: schedules, dependency graphs, blocking, deadlines, FORBID, and a
//! `kill -9` of the daemon during a run.
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`, as scripts/test.sh does).

#[path = "../../../master/tests/support/mod.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

const JOBS_WAIT: Duration = Duration::from_secs(60);

/// A running `agora-jobs` daemon.
struct Jobs {
    proc: Proc,
    addr: SocketAddr,
    args: Vec<String>,
    dir: PathBuf,
    starts: u32,
}

impl Jobs {
    fn start(cluster: &Cluster) -> Jobs {
        let dir = cluster.dir.0.join("jobs");
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let args = vec![
            "--master".to_string(),
            cluster.addr.to_string(),
            "--listen".to_string(),
            addr.to_string(),
            "--data-dir".to_string(),
            dir.display().to_string(),
        ];
        let proc = Proc::spawn(
            "agora-jobs",
            &binary("agora-jobs"),
            &args,
            cluster.dir.0.join("jobs-0.log"),
        );
        let mut j = Jobs {
            proc,
            addr,
            args,
            dir: cluster.dir.0.clone(),
            starts: 1,
        };
        j.wait_healthy();
        j
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok((200, _)) = http_get(self.addr, "/health") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("agora-jobs never answered\n{}", self.proc.log_text());
    }

    /// `kill -9`, then start again on the same store.
    fn crash_and_restart(&mut self) {
        self.proc.kill9();
        let log = self.dir.join(format!("jobs-{}.log", self.starts));
        self.starts += 1;
        self.proc = Proc::spawn("agora-jobs", &binary("agora-jobs"), &self.args, log);
        self.wait_healthy();
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let (code, body) = http_request(self.addr, method, path, text.as_deref())
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.proc.log_text()));
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (code, json)
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (code, v) = self.call(method, path, body);
        assert!(
            (200..300).contains(&code),
            "{method} {path}: {code} {v}\n{}",
            self.proc.log_text()
        );
        v
    }

    fn runs(&self, job: &str) -> Vec<Value> {
        self.ok("GET", &format!("/v1/jobs/{job}/runs?all=true"), None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    fn wait_runs(&self, job: &str, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + JOBS_WAIT;
        loop {
            let runs = self.runs(job);
            if pred(&runs) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; runs of {job}: {}\n--- agora-jobs log ---\n{}",
                Value::Array(runs),
                self.proc.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Jobs {
    fn drop(&mut self) {
        self.proc.stop();
    }
}

fn cluster() -> Cluster {
    Cluster::start_in(
        TempDir::new("jobs"),
        1,
        &[],
        None,
        &["--isolation", "process"],
    )
}

fn count(runs: &[Value], status: &str) -> usize {
    runs.iter().filter(|r| r["status"] == status).count()
}

fn ms(t: &Value) -> i64 {
    t.as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond())
        .unwrap_or_else(|| panic!("not a time: {t}"))
}

#[test]
fn a_job_every_2s_runs_n_times_with_the_right_history() {
    let c = cluster();
    let j = Jobs::start(&c);
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({
            "id": "every2",
            "run": {"cmd": "echo tick"},
            "historyLimit": 3,
            "schedules": [{"id": "s", "cron": "*/2 * * * * *"}]
        })),
    );
    let runs = j.wait_runs("every2", "4 successful runs", |r| {
        j.ok("GET", "/v1/jobs/every2", None)["history"]["successCount"]
            .as_u64()
            .unwrap_or(0)
            >= 4
            && count(r, "SUCCESS") >= 3
    });
    j.ok("POST", "/v1/jobs/every2/schedules/s/pause", None);
    // Three kept (historyLimit), each its own tick, two seconds apart, none skipped.
    let done: Vec<&Value> = runs.iter().filter(|r| r["status"] == "SUCCESS").collect();
    assert_eq!(done.len(), 3, "{runs:?}");
    let ticks: Vec<i64> = done.iter().map(|r| ms(&r["scheduledAt"])).collect();
    for w in ticks.windows(2) {
        assert_eq!(w[1] - w[0], 2000, "{ticks:?}");
    }
    for r in &done {
        assert_eq!(r["tasks"].as_array().map(Vec::len), Some(1), "{r}");
        assert_eq!(r["tasks"][0]["state"], "FINISHED", "{r}");
    }
    assert_eq!(count(&runs, "SKIPPED"), 0, "{runs:?}");
    let (_, metrics) = j.call("GET", "/metrics", None);
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(
        metrics.contains("agora_jobs_start_lateness_seconds_count"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("agora_jobs_runs_succeeded_total 0\n"),
        "{metrics}"
    );
}

fn chain(j: &Jobs, a_cmd: &str) {
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({"id": "a", "run": {"cmd": a_cmd}})),
    );
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({"id": "b", "run": {"cmd": "sleep 0.2"}, "dependencies": ["a"]})),
    );
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({"id": "c", "run": {"cmd": "sleep 0.2"}, "dependencies": ["b"]})),
    );
}

#[test]
fn a_dag_runs_in_order_and_refuses_a_cycle() {
    let c = cluster();
    let j = Jobs::start(&c);
    chain(&j, "sleep 0.2");
    let (code, err) = j.call(
        "PUT",
        "/v1/jobs/a",
        Some(json!({"id": "a", "run": {"cmd": "true"}, "dependencies": ["c"]})),
    );
    assert_eq!(code, 422, "{err}");
    assert_eq!(err["field"], "dependencies[0]", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a -> b -> c -> a"),
        "{err}"
    );
    j.ok("POST", "/v1/jobs/a/runs", None);
    let c_runs = j.wait_runs("c", "c to succeed", |r| count(r, "SUCCESS") == 1);
    let a = &j.runs("a")[0];
    let b = &j.runs("b")[0];
    let c_run = &c_runs[0];
    assert!(ms(&b["createdAt"]) >= ms(&a["completedAt"]), "{a} {b}");
    assert!(
        ms(&c_run["createdAt"]) >= ms(&b["completedAt"]),
        "{b} {c_run}"
    );
    let graph = j.ok("GET", "/v1/graph", None);
    assert_eq!(graph["edges"].as_array().map(Vec::len), Some(2), "{graph}");
    let (code, dot) = j.call("GET", "/v1/graph/dot", None);
    assert_eq!(code, 200);
    assert!(
        dot.as_str().unwrap_or_default().contains("digraph"),
        "{dot}"
    );
}

#[test]
fn a_failing_parent_blocks_its_children_until_a_retry_succeeds() {
    let c = cluster();
    let j = Jobs::start(&c);
    chain(&j, "exit 3");
    j.ok("POST", "/v1/jobs/a/runs", None);
    j.wait_runs("a", "a to fail", |r| count(r, "FAILED") == 1);
    let deps = j.ok("GET", "/v1/jobs/b/dependencies", None);
    assert_eq!(deps["blocked"], true, "{deps}");
    assert_eq!(deps["blockedBy"], json!(["a"]), "{deps}");
    assert_eq!(j.ok("GET", "/v1/jobs/b", None)["status"], "BLOCKED");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        j.runs("b").is_empty() && j.runs("c").is_empty(),
        "blocked children must not run"
    );
    // Fix a and run it again: b and c follow.
    j.ok(
        "PUT",
        "/v1/jobs/a",
        Some(json!({"id": "a", "run": {"cmd": "true"}})),
    );
    j.ok("POST", "/v1/jobs/a/runs", None);
    j.wait_runs("c", "c to succeed", |r| count(r, "SUCCESS") == 1);
    assert_eq!(count(&j.runs("b"), "SUCCESS"), 1);
    assert_eq!(
        j.ok("GET", "/v1/jobs/b/dependencies", None)["blocked"],
        false
    );
}

#[test]
fn a_deadline_kills_a_run() {
    let c = cluster();
    let j = Jobs::start(&c);
    j.ok(
        "POST",
        "/v1/jobs",
        Some(
            json!({"id": "slow", "run": {"cmd": "sleep 60", "activeDeadlineSeconds": 2,
            "taskKillGracePeriodSeconds": 0.5}}),
        ),
    );
    let started = Instant::now();
    j.ok("POST", "/v1/jobs/slow/runs", None);
    let runs = j.wait_runs("slow", "the run to fail", |r| count(r, "FAILED") == 1);
    assert!(started.elapsed() < Duration::from_secs(30));
    let run = &runs[0];
    assert!(
        run["message"]
            .as_str()
            .unwrap_or_default()
            .contains("deadline"),
        "{run}"
    );
    assert_eq!(run["tasks"][0]["state"], "KILLED", "{run}");
}

#[test]
fn forbid_skips_an_overlapping_run() {
    let c = cluster();
    let j = Jobs::start(&c);
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({
            "id": "long",
            "run": {"cmd": "sleep 5"},
            "concurrencyPolicy": "FORBID",
            "schedules": [{"id": "s", "cron": "*/2 * * * * *"}]
        })),
    );
    let runs = j.wait_runs("long", "a skipped tick", |r| count(r, "SKIPPED") >= 1);
    j.ok("POST", "/v1/jobs/long/schedules/s/pause", None);
    let skipped = runs
        .iter()
        .find(|r| r["status"] == "SKIPPED")
        .expect("skipped");
    assert!(
        skipped["message"]
            .as_str()
            .unwrap_or_default()
            .contains("FORBID"),
        "{skipped}"
    );
    let live = runs
        .iter()
        .filter(|r| !["SUCCESS", "FAILED", "SKIPPED"].contains(&r["status"].as_str().unwrap_or("")))
        .count();
    assert_eq!(live, 1, "never two at once: {runs:?}");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

#[test]
fn a_daemon_killed_during_a_run_adopts_it_and_does_not_start_it_twice() {
    let c = cluster();
    let mut j = Jobs::start(&c);
    // Tasks run as the agent's unprivileged default user: the marker lives in a directory
    // anyone may write (with the sticky bit, like /tmp).
    let shared = c.dir.0.join("shared");
    std::fs::create_dir_all(&shared).expect("shared dir");
    std::fs::set_permissions(
        &shared,
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .expect("shared dir mode");
    let marker = shared.join("starts");
    j.ok(
        "POST",
        "/v1/jobs",
        Some(json!({"id": "adopt", "run": {"cmd": format!("echo started >> {}; sleep 4", marker.display())}})),
    );
    j.ok("POST", "/v1/jobs/adopt/runs", None);
    j.wait_runs("adopt", "the run to be active", |r| count(r, "ACTIVE") == 1);
    let fw_before = c.state()["frameworks"].clone();
    j.crash_and_restart();
    let runs = j.wait_runs("adopt", "the adopted run to succeed", |r| {
        count(r, "SUCCESS") == 1
    });
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(
        runs[0]["tasks"].as_array().map(Vec::len),
        Some(1),
        "{}",
        runs[0]
    );
    assert_eq!(lines(&marker), 1, "the command ran once");
    // The restarted daemon failed over as the same framework.
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(ids(&c.state()["frameworks"]), ids(&fw_before));
}

#[test]
fn bad_definitions_get_422_naming_the_field_and_change_nothing() {
    let c = cluster();
    let j = Jobs::start(&c);
    for (body, field) in [
        (
            json!({"id": "x", "run": {"cmd": "true"}, "schedules": [{"id": "s", "cron": "* * *"}]}),
            "schedules[0].cron",
        ),
        (
            json!({"id": "x", "run": {"cmd": "true"}, "schedules": [{"id": "s", "cron": "* * * * *", "timezone": "Nowhere/Land"}]}),
            "schedules[0].timezone",
        ),
        (
            json!({"id": "x", "run": {"cmd": "true"}, "dependencies": ["ghost"]}),
            "dependencies[0]",
        ),
        (
            json!({"id": "x", "run": {"cmd": "true", "cpus": -1}}),
            "run.cpus",
        ),
        (
            json!({"id": "x", "run": {"cmd": "true", "mem": "lots"}}),
            "run.mem",
        ),
    ] {
        let (code, err) = j.call("POST", "/v1/jobs", Some(body.clone()));
        assert_eq!(code, 422, "{body}: {err}");
        assert_eq!(err["field"], field, "{body}: {err}");
    }
    assert_eq!(j.ok("GET", "/v1/jobs", None), json!([]));
    assert_eq!(j.call("GET", "/v1/jobs/x", None).0, 404);
}

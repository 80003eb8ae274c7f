//! End-to-end tests of agora-services with a real master, real agents and the real daemon
//! on loopback: self-healing, scaling, rolling upgrades gated on health (with a probe
//! that watches healthy capacity throughout), a failing upgrade and its rollback, UNIQUE
//! placement with the queue's reason, the daemon's own `kill -9`, and bad definitions.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value as Json, json};
use support::*;

fn app_version(c: &Cluster, id: &str) -> String {
    c.get(&format!("/v2/apps{id}"))["app"]["versionInfo"]["lastConfigChangeAt"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_killed_instance_is_replaced() {
    let mut c = Cluster::start(1);
    c.start_services();
    let pids = c.dir.0.join("pids");
    // Tasks may run as an unprivileged user: the file they append to is open to all.
    std::fs::write(&pids, "").unwrap();
    std::fs::set_permissions(&pids, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let cmd = format!("echo $$ >> {}; exec sleep 300", pids.display());
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/heal", "cmd": cmd, "instances": 2, "cpus": 0.1, "mem": 16,
                "backoffSeconds": 0.2}),
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["id"], "/heal");
    c.wait_settled("/heal", 2);
    let before: BTreeSet<String> = c
        .tasks("/heal")
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    // RUNNING is reported when the process starts, maybe before its shell wrote the pid.
    let pid = wait_for(
        "the instances' pids",
        || c.logs(),
        || {
            let text = std::fs::read_to_string(&pids).ok()?;
            (text.lines().count() >= 2)
                .then(|| text.lines().next().unwrap_or("").trim().to_string())
        },
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_for(
        "a replacement",
        || c.logs(),
        || {
            let now: BTreeSet<String> = c
                .running("/heal")
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_string())
                .collect();
            (now.len() == 2 && now != before).then_some(())
        },
    );
    c.wait_settled("/heal", 2);
    assert_eq!(c.master_live_tasks().len(), 2, "exactly two at the master");
}

#[test]
fn scale_three_six_two() {
    let mut c = Cluster::start(2);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/grp/scale", "cmd": "sleep 300", "instances": 3, "cpus": 0.1, "mem": 16}),
    );
    assert_eq!(code, 201);
    c.wait_settled("/grp/scale", 3);
    let (code, body) = c.send("PUT", "/v2/apps/grp/scale", &json!({"instances": 6}));
    assert_eq!(code, 200, "{body}");
    assert!(body["deploymentId"].is_string());
    c.wait_settled("/grp/scale", 6);
    let (code, _) = c.send("PATCH", "/v2/apps/grp/scale", &json!({"instances": 2}));
    assert_eq!(code, 200);
    c.wait_settled("/grp/scale", 2);
    wait_for(
        "the master at two",
        || c.logs(),
        || (c.master_live_tasks().len() == 2).then_some(()),
    );
    // The group view and the counts agree.
    let g = c.get("/v2/groups/grp");
    assert_eq!(g["apps"][0]["id"], "/grp/scale");
    assert_eq!(g["apps"][0]["tasksRunning"], 2);
    let list = c.get("/v2/apps?embed=apps.tasks");
    assert_eq!(list["apps"][0]["tasks"].as_array().unwrap().len(), 2);
}

fn checked_app(id: &str, cmd: &str, check: &str) -> Json {
    json!({"id": id, "cmd": cmd, "instances": 4, "cpus": 0.1, "mem": 16,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": check},
            "gracePeriodSeconds": 2, "intervalSeconds": 0.2, "timeoutSeconds": 2,
            "delaySeconds": 0, "maxConsecutiveFailures": 3}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        "backoffSeconds": 0.5})
}

/// A probe that reads the app's healthy task count as fast as it can until stopped and
/// records the smallest value it saw.
struct Probe {
    stop: Arc<AtomicBool>,
    min: Arc<AtomicUsize>,
    samples: Arc<AtomicUsize>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Probe {
    fn start(api: std::net::SocketAddr, app: &str) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let min = Arc::new(AtomicUsize::new(usize::MAX));
        let samples = Arc::new(AtomicUsize::new(0));
        let (s, m, n) = (stop.clone(), min.clone(), samples.clone());
        let path = format!("/v2/apps{app}/tasks");
        let handle = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let (code, body) = http(api, "GET", &path, None);
                if code == 200 {
                    let healthy = body["tasks"].as_array().map_or(0, |t| {
                        t.iter()
                            .filter(|t| {
                                t["state"] == "TASK_RUNNING"
                                    && t["healthCheckResults"][0]["alive"] == true
                            })
                            .count()
                    });
                    m.fetch_min(healthy, Ordering::SeqCst);
                    n.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Probe {
            stop,
            min,
            samples,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        (
            self.min.load(Ordering::SeqCst),
            self.samples.load(Ordering::SeqCst),
        )
    }
}

#[test]
fn rolling_upgrade_never_drops_below_minimum_health_capacity() {
    let mut c = Cluster::start(2);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &checked_app("/roll", "sleep 300", "true"),
    );
    assert_eq!(code, 201);
    wait_for(
        "v1 healthy",
        || c.logs(),
        || {
            let healthy = c.get("/v2/apps/roll")["app"]["tasksHealthy"].as_u64();
            (healthy == Some(4) && c.deployments().is_empty()).then_some(())
        },
    );
    let v1 = app_version(&c, "/roll");
    let probe = Probe::start(c.api(), "/roll");
    let (code, body) = c.send(
        "PUT",
        "/v2/apps/roll",
        &checked_app("/roll", "sleep 301", "true"),
    );
    assert_eq!(code, 200, "{body}");
    wait_for(
        "the upgrade to finish",
        || c.logs(),
        || {
            let app = &c.get("/v2/apps/roll")["app"];
            (c.deployments().is_empty() && app["tasksHealthy"].as_u64() == Some(4)).then_some(())
        },
    );
    let (min, samples) = probe.finish();
    assert!(samples >= 3, "the probe sampled only {samples} times");
    assert!(min >= 2, "healthy capacity fell to {min} (floor 2)");
    let v2 = app_version(&c, "/roll");
    assert_ne!(v1, v2);
    let tasks = c.tasks("/roll");
    assert_eq!(tasks.len(), 4);
    let versions = c.get("/v2/apps/roll/versions");
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(c.master_live_tasks().len(), 4);
}

#[test]
fn failing_health_keeps_v1_serving_and_cancel_rolls_back() {
    let mut c = Cluster::start(2);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &checked_app("/fail", "sleep 300", "true"),
    );
    assert_eq!(code, 201);
    wait_for(
        "v1 healthy",
        || c.logs(),
        || {
            let healthy = c.get("/v2/apps/fail")["app"]["tasksHealthy"].as_u64();
            (healthy == Some(4) && c.deployments().is_empty()).then_some(())
        },
    );
    let probe = Probe::start(c.api(), "/fail");
    let (code, body) = c.send(
        "PUT",
        "/v2/apps/fail",
        &checked_app("/fail", "sleep 302", "false"),
    );
    assert_eq!(code, 200, "{body}");
    let deployment = body["deploymentId"].as_str().unwrap().to_string();
    // New instances start, fail their checks, get killed and relaunched: the deployment
    // stays in progress, and v1 keeps serving at the floor.
    std::thread::sleep(Duration::from_secs(8));
    let deps = c.deployments();
    assert_eq!(deps.len(), 1, "{deps:?}");
    assert_eq!(deps[0]["id"], deployment.as_str());
    // Another change is refused while it runs.
    let (code, body) = c.send("PUT", "/v2/apps/fail", &json!({"instances": 5}));
    assert_eq!(code, 409, "{body}");
    assert_eq!(body["deployments"][0]["id"], deployment.as_str());
    let (code, body) = http(
        c.api(),
        "DELETE",
        &format!("/v2/deployments/{deployment}"),
        None,
    );
    assert_eq!(code, 200, "{body}");
    wait_for(
        "the rollback to finish",
        || c.logs(),
        || {
            let app = &c.get("/v2/apps/fail")["app"];
            (c.deployments().is_empty() && app["tasksHealthy"].as_u64() == Some(4)).then_some(())
        },
    );
    let (min, _) = probe.finish();
    assert!(min >= 2, "healthy capacity fell to {min} (floor 2)");
    let app = &c.get("/v2/apps/fail")["app"];
    assert_eq!(app["cmd"], "sleep 300", "rolled back to v1");
    assert_eq!(c.tasks("/fail").len(), 4);
}

#[test]
fn unique_hostname_spreads_and_the_fourth_waits_with_its_reason() {
    let mut c = Cluster::start(3);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/uniq", "cmd": "sleep 300", "instances": 4, "cpus": 0.1, "mem": 16,
                "constraints": [["hostname", "UNIQUE"]]}),
    );
    assert_eq!(code, 201);
    wait_for(
        "three running",
        || c.logs(),
        || (c.running("/uniq").len() == 3).then_some(()),
    );
    let hosts: BTreeSet<String> = c
        .running("/uniq")
        .iter()
        .map(|t| t["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hosts.len(), 3);
    let entry = wait_for(
        "the queue's reason",
        || c.logs(),
        || {
            let q = c.get("/v2/queue");
            let e = q["queue"].as_array()?.first()?.clone();
            let declined = e["processedOffersSummary"]["rejectSummaryLastOffers"]
                .as_array()?
                .iter()
                .find(|r| r["reason"] == "UnfulfilledConstraint")?["declined"]
                .as_u64()?;
            (declined > 0).then_some(e)
        },
    );
    assert_eq!(entry["count"], 1);
    assert_eq!(entry["app"]["id"], "/uniq");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        c.running("/uniq").len(),
        3,
        "never a second instance on one host"
    );
}

#[test]
fn kill_9_of_the_daemon_then_restart_keeps_exact_counts() {
    let mut c = Cluster::start(2);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/keep", "cmd": "sleep 300", "instances": 3, "cpus": 0.1, "mem": 16}),
    );
    assert_eq!(code, 201);
    c.wait_settled("/keep", 3);
    let framework = c.get("/v2/info")["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    // A deployment in flight when the daemon dies.
    let (code, _) = c.send("PUT", "/v2/apps/keep", &json!({"instances": 5}));
    assert_eq!(code, 200);
    if let Some(p) = &mut c.services {
        p.kill9();
    }
    c.start_services();
    assert_eq!(
        c.get("/v2/info")["frameworkId"],
        framework.as_str(),
        "same framework"
    );
    c.wait_settled("/keep", 5);
    wait_for(
        "the master at five",
        || c.logs(),
        || (c.master_live_tasks().len() == 5).then_some(()),
    );
    // And it stays exact: no late duplicates.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        c.master_live_tasks().len(),
        5,
        "{:?}",
        c.master_live_tasks()
    );
    assert_eq!(c.tasks("/keep").len(), 5);
    // A second kill -9 with nothing in flight: the same five are adopted.
    let before: BTreeSet<String> = c
        .master_live_tasks()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    if let Some(p) = &mut c.services {
        p.kill9();
    }
    c.start_services();
    std::thread::sleep(Duration::from_secs(3));
    let after: BTreeSet<String> = c
        .master_live_tasks()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(before, after, "the same instances, adopted");
    c.wait_settled("/keep", 5);
}

#[test]
fn kill_9_of_the_daemon_mid_rolling_upgrade_finishes_it_with_exact_counts() {
    let mut c = Cluster::start(2);
    c.start_services();
    // A health check that takes a while to pass, so the upgrade has steps to be caught in.
    let app = |cmd: &str| {
        let mut a = checked_app("/mid", cmd, "true");
        a["healthChecks"][0]["gracePeriodSeconds"] = json!(3);
        a["upgradeStrategy"] = json!({"minimumHealthCapacity": 0.75, "maximumOverCapacity": 0.25});
        a
    };
    let (code, _) = c.send("POST", "/v2/apps", &app("sleep 300"));
    assert_eq!(code, 201);
    wait_for(
        "v1 healthy",
        || c.logs(),
        || {
            let healthy = c.get("/v2/apps/mid")["app"]["tasksHealthy"].as_u64();
            (healthy == Some(4) && c.deployments().is_empty()).then_some(())
        },
    );
    let v1 = app_version(&c, "/mid");
    let (code, body) = c.send("PUT", "/v2/apps/mid", &app("sleep 301"));
    assert_eq!(code, 200, "{body}");
    let v2 = app_version(&c, "/mid");
    assert_ne!(v1, v2);
    // Mid-upgrade: a v2 instance exists and v1 ones still run.
    wait_for(
        "the upgrade under way",
        || c.logs(),
        || {
            let tasks = c.tasks("/mid");
            let new = tasks.iter().filter(|t| t["version"] == v2.as_str()).count();
            let old = tasks.iter().filter(|t| t["version"] == v1.as_str()).count();
            (new >= 1 && old >= 1 && !c.deployments().is_empty()).then_some(())
        },
    );
    if let Some(p) = &mut c.services {
        p.kill9();
    }
    c.start_services();
    // The deployment resumes and finishes: four healthy v2 instances, nothing else.
    wait_for(
        "the upgrade to finish after the restart",
        || c.logs(),
        || {
            let app = &c.get("/v2/apps/mid")["app"];
            let tasks = c.tasks("/mid");
            let all_v2 = tasks.iter().all(|t| t["version"] == v2.as_str());
            (c.deployments().is_empty()
                && app["tasksHealthy"].as_u64() == Some(4)
                && tasks.len() == 4
                && all_v2)
                .then_some(())
        },
    );
    wait_for(
        "the master at four",
        || c.logs(),
        || (c.master_live_tasks().len() == 4).then_some(()),
    );
    // And it stays exact: no late duplicate and no leftover v1 instance.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.master_live_tasks().len(),
        4,
        "{:?}",
        c.master_live_tasks()
    );
    assert_eq!(c.tasks("/mid").len(), 4);
}

#[test]
fn bad_definitions_get_422_with_the_path_and_change_nothing() {
    let mut c = Cluster::start(0);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/ok", "cmd": "sleep 1", "instances": 0}),
    );
    assert_eq!(code, 201);
    let before = c.get("/v2/apps");
    let bad: Vec<(Json, &str)> = vec![
        (json!({"id": "/b1"}), "/cmd"),
        (json!({"id": "/B", "cmd": "x"}), "/id"),
        (json!({"id": "/b", "cmd": "x", "args": ["y"]}), "/args"),
        (json!({"id": "/b", "cmd": "x", "cpus": -1}), "/cpus"),
        (json!({"id": "/b", "cmd": "x", "cpus": "many"}), "/cpus"),
        (json!({"id": "/b", "cmd": "x", "mem": -1}), "/mem"),
        (json!({"id": "/b", "cmd": "x", "disk": -1}), "/disk"),
        (
            json!({"id": "/b", "cmd": "x", "instances": -2}),
            "/instances",
        ),
        (json!({"id": "/b", "cmd": "x", "gpus": 1.5}), "/gpus"),
        (json!({"id": "/b", "cmd": "x", "env": {"A": 1}}), "/env/A"),
        (
            json!({"id": "/b", "cmd": "x", "portDefinitions": [{"port": 99999}]}),
            "/portDefinitions/0/port",
        ),
        (
            json!({"id": "/b", "cmd": "x", "constraints": [["hostname", "NEVER"]]}),
            "/constraints/0/1",
        ),
        (
            json!({"id": "/b", "cmd": "x", "constraints": [["rack", "MAX_PER"]]}),
            "/constraints/0/2",
        ),
        (
            json!({"id": "/b", "cmd": "x", "healthChecks": [{"protocol": "TCP"}]}),
            "/healthChecks/0/portIndex",
        ),
        (
            json!({"id": "/b", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]}),
            "/healthChecks/0/command",
        ),
        (
            json!({"id": "/b", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
            "/upgradeStrategy/minimumHealthCapacity",
        ),
        (
            json!({"id": "/b", "cmd": "x", "backoffFactor": 0}),
            "/backoffFactor",
        ),
        (
            json!({"id": "/b", "cmd": "x", "backoffSeconds": -5}),
            "/backoffSeconds",
        ),
        (
            json!({"id": "/b", "cmd": "x", "killSelection": "ANY"}),
            "/killSelection",
        ),
        (
            json!({"id": "/b", "cmd": "x", "taskKillGracePeriodSeconds": -1}),
            "/taskKillGracePeriodSeconds",
        ),
        (json!({"id": "/b", "cmd": "x", "role": "other"}), "/role"),
        (
            json!({"id": "/b", "cmd": "x", "unreachableStrategy": "never"}),
            "/unreachableStrategy",
        ),
        (
            json!({"id": "/b", "cmd": "x", "fetch": [{"uri": ""}]}),
            "/fetch/0/uri",
        ),
    ];
    assert!(bad.len() >= 20);
    for (body, path) in &bad {
        let (code, answer) = c.send("POST", "/v2/apps", body);
        assert_eq!(code, 422, "{body} -> {answer}");
        let paths: Vec<&str> = answer["details"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|d| d["path"].as_str())
            .collect();
        assert!(paths.contains(path), "{body}: {answer}");
    }
    // Updates are judged the same way and change nothing either.
    let (code, _) = c.send("PUT", "/v2/apps/ok", &json!({"cpus": -1}));
    assert_eq!(code, 422);
    let (code, _) = c.send("PATCH", "/v2/apps/ok", &json!({"instances": "three"}));
    assert_eq!(code, 422);
    let (code, _) = http(c.api(), "POST", "/v2/apps", Some("{not json"));
    assert_eq!(code, 422);
    assert_eq!(c.get("/v2/apps"), before, "nothing changed");
    assert!(c.deployments().is_empty());
    // Unknown fields are ignored.
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/extra", "cmd": "x", "instances": 0, "container": {"type": "DOCKER"}, "whatever": 1}),
    );
    assert_eq!(code, 201, "{body}");
    // Other endpoints answer.
    assert_eq!(
        http_text(c.api(), "GET", "/ping", None),
        (200, "pong".to_string())
    );
    let (code, metrics) = http_text(c.api(), "GET", "/metrics", None);
    assert_eq!(code, 200);
    assert!(metrics.contains("agora_services_apps 2"), "{metrics}");
    assert_eq!(c.get("/v2/leader")["leader"], c.api().to_string().as_str());
    let (code, _) = http(c.api(), "GET", "/v2/apps/nope", None);
    assert_eq!(code, 404);
}

// ---- draining agents, autoscaling, DNS discovery ----------------------------------------

/// The agents the drain test's instances run on, by task id.
fn task_hosts(c: &Cluster, app: &str) -> Vec<(String, String, String)> {
    c.tasks(app)
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap_or_default().to_string(),
                t["host"].as_str().unwrap_or_default().to_string(),
                t["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn instances_on_a_draining_agent_start_elsewhere_before_the_grace_ends() {
    let mut c = Cluster::start(2);
    c.services_args = vec!["--cluster-interval".into(), "0.3".into()];
    c.start_services();
    // The shell ignores SIGTERM: only the drain's SIGKILL at the end of its grace stops an
    // instance, so "before the grace ends" is observable.
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/drain", "cmd": "trap '' TERM; while true; do sleep 0.2; done",
                "instances": 3, "cpus": 0.1, "mem": 16, "backoffSeconds": 30}),
    );
    assert_eq!(code, 201, "{body}");
    c.wait_settled("/drain", 3);
    // Drain the agent that runs the most instances.
    let hosts = task_hosts(&c, "/drain");
    let on = |h: &str| hosts.iter().filter(|t| t.1 == h).count();
    let (drained_host, other_host) = if on("e2e-agent-0") >= on("e2e-agent-1") {
        ("e2e-agent-0", "e2e-agent-1")
    } else {
        ("e2e-agent-1", "e2e-agent-0")
    };
    let old: Vec<String> = hosts
        .iter()
        .filter(|t| t.1 == drained_host)
        .map(|t| t.0.clone())
        .collect();
    assert!(!old.is_empty());
    let agent = c.agent_id(if drained_host == "e2e-agent-0" { 0 } else { 1 });
    let grace_seconds = 15.0;
    let started = std::time::Instant::now();
    let (code, body) = http(
        c.master_addr,
        "POST",
        &format!("/api/v1/agents/{agent}/drain"),
        Some(&json!({"grace_period_seconds": grace_seconds}).to_string()),
    );
    assert!(code == 200 || code == 202, "drain: {code} {body}");
    // Replacements run on the other agent while every old instance still runs.
    wait_for(
        "replacements running beside the draining instances",
        || format!("{:?}\n{}", task_hosts(&c, "/drain"), c.logs()),
        || {
            let now = task_hosts(&c, "/drain");
            let old_running = now
                .iter()
                .filter(|t| old.contains(&t.0) && t.2 == "TASK_RUNNING")
                .count();
            let elsewhere = now
                .iter()
                .filter(|t| t.1 == other_host && t.2 == "TASK_RUNNING")
                .count();
            (old_running == old.len() && elsewhere == 3).then_some(())
        },
    );
    assert!(
        started.elapsed().as_secs_f64() < grace_seconds,
        "the replacements ran only after the grace"
    );
    // The API says which ones are on the draining agent.
    let flagged = c
        .tasks("/drain")
        .iter()
        .filter(|t| t["draining"] == true)
        .count();
    assert_eq!(flagged, old.len());
    // The drain ends them; what is left is exactly three, all elsewhere, with no launch
    // delay (a drain is not a crash).
    wait_for(
        "the drained instances gone",
        || format!("{:?}\n{}", task_hosts(&c, "/drain"), c.logs()),
        || {
            let now = task_hosts(&c, "/drain");
            (now.len() == 3 && now.iter().all(|t| t.1 == other_host)).then_some(())
        },
    );
    c.wait_settled("/drain", 3);
    let queue = c.get("/v2/queue");
    assert!(
        queue["queue"].as_array().is_none_or(|q| q.is_empty()),
        "{queue}"
    );
    assert_eq!(c.master_live_tasks().len(), 3);
}

/// Deletes an app and waits for its tasks to end, also when the test fails (Linux
/// containers outlive their agent).
struct AppGuard<'a> {
    cluster: &'a Cluster,
    app: &'static str,
}

impl Drop for AppGuard<'_> {
    fn drop(&mut self) {
        let _ = http(
            self.cluster.api(),
            "DELETE",
            &format!("/v2/apps{}?force=true", self.app),
            None,
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline && !self.cluster.master_live_tasks().is_empty() {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

#[test]
fn needs_root_autoscaling_follows_a_cpu_hog_within_min_and_max() {
    let mut c = Cluster::start_with(2, |_| {
        [
            "--isolation",
            "linux",
            "--cgroups-cpu-hard-limit",
            "--usage-interval",
            "0.5",
        ]
        .map(String::from)
        .to_vec()
    });
    c.services_args = vec!["--cluster-interval".into(), "0.5".into()];
    c.start_services();
    let flag = c.dir.0.join("hog");
    std::fs::write(&flag, "").unwrap();
    // Busy while the flag exists (capped at its 0.1 cpus by the CFS quota: utilisation
    // about 1, far above the target even on a loaded host), idle after (about 0.1).
    let cmd = format!(
        "while true; do if [ -e {} ]; then :; else sleep 1; fi; done",
        flag.display()
    );
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/hog", "cmd": cmd, "instances": 2, "cpus": 0.1, "mem": 32,
                "autoscale": {"min": 2, "max": 4, "metric": "cpu", "target": 0.3,
                              "cooldownSeconds": 1}}),
    );
    assert_eq!(code, 201, "{body}");
    let _guard = AppGuard {
        cluster: &c,
        app: "/hog",
    };
    let seen = std::cell::RefCell::new(BTreeSet::new());
    let instances = || {
        let n = c.get("/v2/apps/hog")["app"]["instances"]
            .as_u64()
            .unwrap_or(0);
        seen.borrow_mut().insert(n);
        n
    };
    // Up to max under load, and the bound is reported.
    wait_for(
        "scaled up to max 4 with the bound reported",
        || format!("{}\n{}", c.get("/v2/apps/hog"), c.logs()),
        || {
            let app = c.get("/v2/apps/hog")["app"].clone();
            (instances() == 4
                && app["tasksRunning"] == 4
                && app["autoscaleStatus"]["atBound"] == "max")
                .then_some(())
        },
    );
    let log = c.services.as_ref().unwrap().log_text();
    assert!(
        log.contains("autoscaling reached a bound"),
        "no log line for the bound"
    );
    // Stays at max while hot.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(instances(), 4, "{}", c.get("/v2/apps/hog"));
    // Idle: down to min (the load asks for fewer), and that bound is reported.
    std::fs::remove_file(&flag).unwrap();
    wait_for(
        "scaled down to min 2 with the bound reported",
        || format!("{}\n{}", c.get("/v2/apps/hog"), c.logs()),
        || {
            let app = c.get("/v2/apps/hog")["app"].clone();
            (instances() == 2
                && app["tasksRunning"] == 2
                && app["autoscaleStatus"]["atBound"] == "min")
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(instances(), 2);
    let seen = seen.into_inner();
    assert!(
        seen.iter().all(|n| (2..=4).contains(n)),
        "instances left the bounds: {seen:?}"
    );
    assert_eq!(c.master_live_tasks().len(), 2);
}

/// One DNS query over UDP; the answer's SRV records as (address, port), the targets'
/// addresses read from the additional section.
fn dns_srv(server: std::net::SocketAddr, name: &str) -> Option<BTreeSet<(String, u16)>> {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::{Name, RData, RecordType};
    let mut q = Message::new(0x4242, MessageType::Query, OpCode::Query);
    q.add_query(Query::query(Name::from_ascii(name).ok()?, RecordType::SRV));
    let mut edns = hickory_proto::op::Edns::new();
    edns.set_max_payload(4096);
    q.set_edns(edns);
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket.send_to(&q.to_vec().ok()?, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    let r = Message::from_vec(&buf[..n]).ok()?;
    assert_eq!(r.metadata.id, 0x4242);
    let mut address = std::collections::BTreeMap::new();
    for rec in &r.additionals {
        if let RData::A(a) = &rec.data {
            address.insert(rec.name.to_ascii(), a.0.to_string());
        }
    }
    Some(
        r.answers
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::SRV(s) => Some((
                    address
                        .get(&s.target.to_ascii())
                        .cloned()
                        .unwrap_or_default(),
                    s.port,
                )),
                _ => None,
            })
            .collect(),
    )
}

/// The app's healthy instances as the API lists them: running, health check alive, not
/// being killed; as (agent address, port, version).
fn healthy(c: &Cluster, app: &str) -> BTreeSet<(String, u16, String)> {
    c.tasks(app)
        .iter()
        .filter(|t| {
            t["state"] == "TASK_RUNNING"
                && t["healthCheckResults"][0]["alive"] == true
                && t["killing"] != true
        })
        .map(|t| {
            let host = t["host"].as_str().unwrap_or_default();
            let i: u8 = host.trim_start_matches("e2e-agent-").parse().unwrap_or(0);
            (
                format!("127.0.0.{}", 10 + i),
                t["ports"][0].as_u64().unwrap_or(0) as u16,
                t["version"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Watches DNS beside the API through a deployment: whenever two API reads around a DNS
/// query agree, DNS must list exactly the healthy instances (`exact`: all of them; else
/// those of one version, and never two versions at once). Returns how many such checks
/// were made.
fn watch_dns_through_deployment(
    c: &Cluster,
    dns: std::net::SocketAddr,
    app: &str,
    name: &str,
    exact: bool,
) -> usize {
    let mut checks = 0;
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let before = healthy(c, app);
        let answer = dns_srv(dns, name).expect("a DNS answer");
        let after = healthy(c, app);
        if before == after {
            checks += 1;
            let versions: BTreeSet<&String> = before
                .iter()
                .filter(|h| answer.contains(&(h.0.clone(), h.1)))
                .map(|h| &h.2)
                .collect();
            let expected: BTreeSet<(String, u16)> = before
                .iter()
                .filter(|h| exact || versions.contains(&h.2))
                .map(|h| (h.0.clone(), h.1))
                .collect();
            assert_eq!(
                answer, expected,
                "DNS differs from the healthy instances {before:?}"
            );
            if !exact {
                assert!(
                    versions.len() <= 1,
                    "DNS lists two versions at once: {answer:?}"
                );
            }
        }
        let done = c.deployments().is_empty();
        if done {
            return checks;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the deployment never ended\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn dns_lists_exactly_the_healthy_instances_through_rolling_and_blue_green_upgrades() {
    // Each agent advertises its own loopback address, so A records tell them apart.
    let mut c = Cluster::start_with(2, |i| {
        vec![
            "--listen".into(),
            format!("127.0.0.{}:{}", 10 + i, free_port()),
        ]
    });
    let dns: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    c.services_args = vec![
        "--dns-listen".into(),
        dns.to_string(),
        "--cluster-interval".into(),
        "0.3".into(),
    ];
    c.start_services();
    let app = |cmd: &str, kind: &str| {
        let mut a = checked_app("/dns/web", cmd, "true");
        a["instances"] = json!(3);
        a["portDefinitions"] = json!([{"port": 0, "name": "http"}]);
        a["upgradeStrategy"]["type"] = json!(kind);
        a
    };
    let (code, body) = c.send("POST", "/v2/apps", &app("sleep 300", "ROLLING"));
    assert_eq!(code, 201, "{body}");
    let name = "web.dns.agora.";
    wait_for(
        "three healthy instances in DNS",
        || c.logs(),
        || {
            let h = healthy(&c, "/dns/web");
            let answer = dns_srv(dns, name)?;
            // Addresses come with the next read of the agents (every 0.3 s here).
            let want: BTreeSet<(String, u16)> = h.iter().map(|h| (h.0.clone(), h.1)).collect();
            (h.len() == 3 && c.deployments().is_empty() && answer == want).then_some(())
        },
    );
    let expected: BTreeSet<(String, u16)> = healthy(&c, "/dns/web")
        .into_iter()
        .map(|h| (h.0, h.1))
        .collect();
    assert_eq!(dns_srv(dns, name).unwrap(), expected);
    // Both agents' addresses are known (from the Operator API), and named ports work.
    assert_eq!(dns_srv(dns, "_http._tcp.web.dns.agora.").unwrap(), expected);
    // Rolling: DNS follows every instance that turns healthy or goes.
    let (code, body) = c.send("PUT", "/v2/apps/dns/web", &app("sleep 301", "ROLLING"));
    assert_eq!(code, 200, "{body}");
    let checks = watch_dns_through_deployment(&c, dns, "/dns/web", name, true);
    assert!(checks >= 3, "only {checks} checks");
    // Blue/green: one version at a time in DNS, switched in one step.
    let v2 = app_version(&c, "/dns/web");
    let (code, body) = c.send("PUT", "/v2/apps/dns/web", &app("sleep 302", "BLUE_GREEN"));
    assert_eq!(code, 200, "{body}");
    let checks = watch_dns_through_deployment(&c, dns, "/dns/web", name, false);
    assert!(checks >= 3, "only {checks} checks");
    let v3 = app_version(&c, "/dns/web");
    assert_ne!(v2, v3);
    let last: BTreeSet<(String, u16)> = healthy(&c, "/dns/web")
        .into_iter()
        .filter(|h| h.2 == v3)
        .map(|h| (h.0, h.1))
        .collect();
    assert_eq!(last.len(), 3);
    assert_eq!(dns_srv(dns, name).unwrap(), last);
    // Not ours: refused; unknown names under the domain: no such name.
    assert_eq!(dns_srv(dns, "nothing.agora.").unwrap(), BTreeSet::new());
}

/// The SDK's driver failover against a restarted master: after the master's `kill -9` and
/// restart, the daemon subscribes again with its framework id, reconciles, adopts the
/// instances that kept running (no relaunch), and launches again when asked.
#[test]
fn kill_9_of_the_master_then_restart_keeps_the_framework_and_its_instances() {
    let mut c = Cluster::start(1);
    c.start_services();
    let (code, _) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/stay", "cmd": "sleep 300", "instances": 3, "cpus": 0.1, "mem": 16}),
    );
    assert_eq!(code, 201);
    c.wait_settled("/stay", 3);
    let framework = c.get("/v2/info")["frameworkId"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = |c: &Cluster| -> BTreeSet<String> {
        c.tasks("/stay")
            .iter()
            .map(|t| t["id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let before = ids(&c);
    c.restart_master();
    wait_for(
        "the daemon subscribed again, with the same framework",
        || c.logs(),
        || {
            let info = c.get("/v2/info");
            (info["subscribed"] == true && info["frameworkId"] == framework.as_str()).then_some(())
        },
    );
    wait_for(
        "the master knows the three instances again",
        || format!("{:?}\n{}", c.master_live_tasks(), c.logs()),
        || {
            let live: BTreeSet<String> = c
                .master_live_tasks()
                .into_iter()
                .filter(|(_, state)| state == "RUNNING")
                .map(|(id, _)| id)
                .collect();
            (live == before).then_some(())
        },
    );
    c.wait_settled("/stay", 3);
    assert_eq!(ids(&c), before, "adopted, not relaunched");
    // The new subscription works: a scale launches one more.
    let (code, _) = c.send("PATCH", "/v2/apps/stay", &json!({"instances": 4}));
    assert_eq!(code, 200);
    c.wait_settled("/stay", 4);
    assert!(ids(&c).is_superset(&before));
    assert_eq!(c.master_live_tasks().len(), 4);
}

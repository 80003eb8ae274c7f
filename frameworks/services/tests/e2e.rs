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

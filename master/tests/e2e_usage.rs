//! End-to-end: an agent forwards its containers' cgroup usage to the master, which serves
//! the latest report per agent over HTTP and the Operator API; bad reports are refused.

mod support;

use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::v1;
use agora_proto::v1::agent_api_client::AgentApiClient;
use agora_proto::v1::operator_client::OperatorClient;
use support::*;
use tonic::Code;

/// The latest usage report of `agent_id` once `pred` holds for it.
fn wait_usage(
    cluster: &Cluster,
    agent_id: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let (code, body) = http_get(cluster.addr, &format!("/api/v1/usage?agent_id={agent_id}"))
            .expect("GET usage");
        if code == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).expect("usage is JSON");
            if let Some(a) = v["agents"].get(0)
                && pred(a)
            {
                return a.clone();
            }
        }
        last = format!("{code} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "usage never matched; last answer: {last}\n{}",
        cluster.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_usage_reaches_the_master_and_bad_reports_are_refused() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(0, &["--usage-interval", "0.3"]);
    cluster.wait_agents(1);
    let state = cluster.state();
    let agent = &state["agents"][0];
    let agent_id = agent["id"].as_str().expect("agent id").to_string();
    let isolation = agent["isolation"].as_str().expect("isolation").to_string();
    assert!(
        isolation == "linux" || isolation == "process",
        "isolation reported: {isolation}"
    );

    let mut fw = Framework::subscribe(cluster.addr, "e2e-usage").await;
    let offers = fw.wait_offers(1).await;
    let task = shell_task("u1", "cpus:0.1;mem:32", "sleep 60");
    fw.accept(vec![offers[0].id.clone()], vec![launch(vec![task])], None)
        .await
        .expect("accept");
    fw.wait_for("u1 RUNNING", |s| {
        s.get("u1")
            .is_some_and(|st| state_of(st) == TaskState::Running)
    })
    .await;

    if isolation == "linux" {
        let report = wait_usage(&cluster, &agent_id, |a| {
            a["containers"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["task_id"] == "u1"))
        });
        assert_eq!(report["isolation"], "linux");
        assert_eq!(report["hostname"], "e2e-agent-0");
        let c = report["containers"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["task_id"] == "u1"))
            .expect("u1 listed");
        assert_eq!(c["framework_id"], fw.id.as_str());
        assert!(c["memory_bytes"].as_u64().is_some_and(|m| m > 0), "{c}");
        assert!(c["pids_current"].as_u64().is_some_and(|p| p >= 1), "{c}");
        let limit = c["memory_limit_bytes"].as_u64().expect("a memory limit");
        assert!(limit >= 32 << 20, "limit {limit} below mem:32");
        assert!(!c["container_id"].as_str().unwrap_or("").is_empty(), "{c}");
        // The CLI shows the same report.
        let out = std::process::Command::new(binary("agora"))
            .args(["usage", "--master", &cluster.addr.to_string()])
            .output()
            .expect("run agora usage");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "agora usage failed: {out:?}");
        assert!(text.starts_with("HOSTNAME"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.contains("e2e-agent-0") && l.contains("u1")),
            "{text}"
        );
        let out = std::process::Command::new(binary("agora"))
            .args(["usage", "--json", "--master", &cluster.addr.to_string()])
            .output()
            .expect("run agora usage --json");
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("agora usage --json is JSON");
        assert_eq!(v["agents"][0]["agent_id"], agent_id.as_str());
    } else {
        println!("skipping the cgroup usage assertions: the agent fell back to process isolation");
        wait_usage(&cluster, &agent_id, |a| a["isolation"] == "process");
    }

    // The Operator API serves the same reports.
    let mut op = OperatorClient::connect(cluster.url())
        .await
        .expect("operator");
    let usage = op
        .get_usage(v1::Empty {})
        .await
        .expect("GetUsage")
        .into_inner();
    assert_eq!(usage.agents.len(), 1);
    assert_eq!(usage.agents[0].agent_id, agent_id);
    assert!(usage.agents[0].reported_at_seconds > 1.6e9);

    // Once the task is killed, the next report no longer lists it.
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "u1".into(),
            agent_id: agent_id.clone(),
            kill_policy: None,
        })
        .await
        .expect("kill");
    fw.wait_for("u1 KILLED", |s| {
        s.get("u1")
            .is_some_and(|st| state_of(st) == TaskState::Killed)
    })
    .await;
    wait_usage(&cluster, &agent_id, |a| {
        a["containers"].as_array().is_some_and(|c| c.is_empty())
    });

    // Bad input: unknown agent over HTTP, bad reports over gRPC; nothing is stored.
    let (code, body) = http_get(cluster.addr, "/api/v1/usage?agent_id=nope").expect("GET");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("no usage report from agent 'nope'"), "{body}");
    let mut agent_api = AgentApiClient::connect(cluster.url())
        .await
        .expect("agent api");
    let container = v1::ContainerUsage {
        framework_id: "fw".into(),
        task_id: "t".into(),
        ..Default::default()
    };
    let report = |agent_id: &str, containers: Vec<v1::ContainerUsage>| v1::UsageReport {
        agent_id: agent_id.into(),
        containers,
        isolation: "linux".into(),
    };
    assert_code(
        agent_api.update_usage(report("", vec![])).await,
        Code::InvalidArgument,
        "agent id is empty",
    );
    assert_code(
        agent_api
            .update_usage(report("ghost", vec![container.clone()]))
            .await,
        Code::NotFound,
        "unknown agent id 'ghost'",
    );
    assert_code(
        agent_api
            .update_usage(report(
                &agent_id,
                vec![v1::ContainerUsage {
                    task_id: String::new(),
                    ..container.clone()
                }],
            ))
            .await,
        Code::InvalidArgument,
        "neither a task id nor an executor id",
    );
    let usage = op
        .get_usage(v1::Empty {})
        .await
        .expect("GetUsage")
        .into_inner();
    assert_eq!(usage.agents.len(), 1, "the refused reports stored nothing");
    assert!(
        usage.agents[0].containers.iter().all(|c| c.task_id != "t"),
        "a refused report replaced the agent's"
    );
}

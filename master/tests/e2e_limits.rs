//! End-to-end: ports and disk limits watched by a real `agora-agent`
//! (`--ports-enforcement kill`, `--disk-enforcement kill`): a task listening on a port it
//! was given runs on; one listening on another port, and one writing more than its `disk`,
//! fail with CONTAINER_LIMITATION_PORTS / _DISK and a message that says why.
//!
//! Needs the workspace binaries (`cargo build --workspace --bins`) and perl (Debian's
//! essential perl-base) for the listeners.

mod support;

use std::time::Duration;

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;

/// Listens on 127.0.0.1:`port` (a shell word: `$PORT0`, or 0 for any port) and sleeps.
fn listener(port: &str) -> String {
    format!(
        "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", \
         LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; \
         print $s->sockport, \"\\n\"; STDOUT->flush; sleep 300' {port}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_over_their_ports_or_disk_fail_and_say_why() {
    let mut cluster = Cluster::start(0);
    cluster.add_agent_with(
        0,
        &[
            "--isolation",
            "process",
            "--ports-enforcement",
            "kill",
            "--disk-enforcement",
            "kill",
            "--ports-watch-interval",
            "0.2",
            "--disk-watch-interval",
            "0.2",
        ],
    );
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-limits").await;
    let offer = fw.wait_offers(1).await.remove(0);
    fw.accept(
        vec![offer.id],
        vec![launch(vec![
            shell_task(
                "within",
                "cpus:0.1;mem:32;ports:[31000-31000]",
                &listener("$PORT0"),
            ),
            shell_task(
                "elsewhere",
                "cpus:0.1;mem:32;ports:[31001-31001]",
                &listener("0"),
            ),
            shell_task(
                "big",
                "cpus:0.1;mem:32;disk:1",
                "head -c 3145728 /dev/zero > blob; sleep 300",
            ),
        ])],
        Some(60.0),
    )
    .await
    .expect("accept");
    fw.wait_for("elsewhere and big FAILED", |s| {
        ["elsewhere", "big"]
            .iter()
            .all(|t| s.get(*t).is_some_and(|x| state_of(x) == TaskState::Failed))
    })
    .await;
    let elsewhere = &fw.statuses["elsewhere"];
    assert_eq!(
        elsewhere.reason,
        v1::StatusReason::ContainerLimitationPorts as i32,
        "{elsewhere:?}"
    );
    assert!(
        elsewhere
            .message
            .starts_with("listening on unallocated port ")
            && elsewhere.message.ends_with(" (allocated: 31001)"),
        "{elsewhere:?}"
    );
    let big = &fw.statuses["big"];
    assert_eq!(
        big.reason,
        v1::StatusReason::ContainerLimitationDisk as i32,
        "{big:?}"
    );
    assert!(big.message.contains("over its limit of 1.0 MB"), "{big:?}");
    // The task on its own port still runs, many checks later.
    fw.pump(Duration::from_secs(1)).await;
    assert_eq!(state_of(&fw.statuses["within"]), TaskState::Running);
    let agent_id = fw.statuses["within"].agent_id.clone();
    fw.client
        .kill(v1::KillRequest {
            framework_id: fw.id.clone(),
            task_id: "within".into(),
            agent_id,
            kill_policy: None,
        })
        .await
        .expect("kill");
    fw.wait_for("within KILLED", |s| {
        s.get("within")
            .is_some_and(|x| state_of(x) == TaskState::Killed)
    })
    .await;
}

/// A tiny HTTP server on 127.0.0.1:$PORT0 answering every request with 200 and `body`.
fn http_server(body: &str) -> String {
    format!(
        "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \
         \"127.0.0.1\", LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die \
         \"listen: $!\"; while ($c = $s->accept) {{ while (<$c>) {{ last if /^\\r?$/ }} \
         print $c \"HTTP/1.0 200 OK\\r\\nContent-Length: {}\\r\\n\\r\\n{body}\"; close $c }}' \
         $PORT0",
        body.len()
    )
}

/// `--network isolated`: a task in its own network namespace serves HTTP on its
/// allocated port, which the agent publishes on the host (here on 127.0.0.1); its HTTP
/// health check goes through the same published port and passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_root_isolated_task_serves_http_through_its_published_port() {
    assert!(is_root(), "Linux containers need root");
    let mut cluster = Cluster::start(0);
    let port = free_port();
    cluster.add_agent_resources(
        0,
        &format!("cpus:2;mem:512;disk:256;ports:[{port}-{port}]"),
        &[
            "--isolation",
            "linux",
            "--network",
            "isolated",
            "--publish-address",
            "127.0.0.1",
        ],
    );
    cluster.wait_agents(1);
    let mut fw = Framework::subscribe(cluster.addr, "e2e-netns").await;
    let offer = fw.wait_offers(1).await.remove(0);
    let mut task = shell_task(
        "web",
        &format!("cpus:0.1;mem:64;ports:[{port}-{port}]"),
        &http_server("hello from a namespace"),
    );
    task.health_check = Some(v1::HealthCheck {
        r#type: v1::health_check::Type::Http as i32,
        port: u32::from(port),
        path: "/".into(),
        interval_seconds: 0.2,
        timeout_seconds: 2.0,
        ..Default::default()
    });
    fw.accept(vec![offer.id], vec![launch(vec![task])], Some(60.0))
        .await
        .expect("accept");
    fw.wait_for("web RUNNING and healthy", |s| {
        s.get("web")
            .is_some_and(|x| state_of(x) == TaskState::Running && x.healthy == Some(true))
    })
    .await;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/"))
        .await
        .expect("join")
        .expect("GET through the published port");
    assert_eq!((status, body.as_str()), (200, "hello from a namespace"));
}

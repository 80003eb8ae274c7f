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

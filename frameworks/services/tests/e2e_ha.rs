//! `agora-services` as two instances over a real 3-member etcd (Debian's `etcd-server`),
//! one leader: the follower redirects REST calls to it, and a `kill -9` of the leader
//! loses no app, version or deployment: the other instance takes over from etcd and adopts
//! the running instances (none replaced, none doubled). Named `needs_etcd_*`:
//! `scripts/test.sh` shows it as skipped where etcd cannot be installed.

#[path = "../../../master/tests/support/etcd.rs"]
mod etcd_cluster;
mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use etcd_cluster::EtcdCluster;
use serde_json::json;
use support::*;

/// The instances' lease (etcd's minimum).
const TTL_S: u64 = 2;

fn leader_of(addr: SocketAddr) -> Option<(bool, Option<String>)> {
    let (code, v) = http(addr, "GET", "/leader", None);
    (code == 200).then(|| {
        (
            v["leading"].as_bool().unwrap_or(false),
            v["leader"].as_str().map(str::to_string),
        )
    })
}

/// Wait until exactly one of `live` leads and the others name it.
fn wait_leader(live: &[SocketAddr], logs: impl Fn() -> String) -> SocketAddr {
    let deadline = Instant::now() + WAIT;
    loop {
        let leaders: Vec<SocketAddr> = live
            .iter()
            .copied()
            .filter(|&a| matches!(leader_of(a), Some((true, _))))
            .collect();
        assert!(leaders.len() <= 1, "two instances lead: {leaders:?}");
        if let [l] = leaders[..] {
            let named = l.to_string();
            if live
                .iter()
                .filter(|&&a| a != l)
                .all(|&a| matches!(leader_of(a), Some((false, Some(ref x))) if *x == named))
            {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no single leader\n{}", logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn task_ids(c: &Cluster, app: &str) -> BTreeSet<String> {
    c.running(app)
        .iter()
        .filter_map(|t| t["id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn needs_etcd_services_two_instances_one_leader_kill9_loses_nothing() {
    let mut c = Cluster::start(1);
    let etcd = EtcdCluster::start(&c.dir.0, 3);
    let prefix = format!("/agora-services-test-{}", uuid::Uuid::new_v4());
    let (master, dir) = (c.master_addr, c.dir.0.clone());
    let addrs: Vec<SocketAddr> = (0..2)
        .map(|_| format!("127.0.0.1:{}", free_port()).parse().expect("addr"))
        .collect();
    let args = |i: usize| -> Vec<String> {
        vec![
            "--master".into(),
            master.to_string(),
            "--listen".into(),
            addrs[i].to_string(),
            "--data-dir".into(),
            dir.join(format!("services{i}-data")).display().to_string(),
            "--etcd-endpoints".into(),
            etcd.endpoints(),
            "--etcd-prefix".into(),
            prefix.clone(),
            "--etcd-lease-ttl-seconds".into(),
            TTL_S.to_string(),
        ]
    };
    let spawn = |i: usize, n: usize| {
        Proc::spawn(
            &format!("services{i}"),
            &binary("agora-services"),
            &args(i),
            dir.join(format!("services{i}-{n}.log")),
        )
    };
    let mut procs = vec![Some(spawn(0, 0)), Some(spawn(1, 0))];
    let logs = |procs: &[Option<Proc>]| {
        procs
            .iter()
            .flatten()
            .map(|p| format!("--- {} ---\n{}\n", p.name, p.log_text()))
            .collect::<String>()
    };
    let leader = wait_leader(&addrs, || logs(&procs));
    let li = addrs.iter().position(|&a| a == leader).expect("leader");
    let follower = addrs[1 - li];

    // The follower sends REST calls to the leader.
    let (code, body) = http(follower, "GET", "/v2/apps", None);
    assert_eq!(code, 307, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains(&leader.to_string())),
        "{body}"
    );

    c.api = Some(leader);
    wait_for(
        "the leader subscribed",
        || logs(&procs),
        || (c.get("/v2/info")["subscribed"] == true).then_some(()),
    );
    let framework = c.get("/v2/info")["frameworkId"].clone();
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/web", "cmd": "sleep 300", "instances": 2, "cpus": 0.1, "mem": 16}),
    );
    assert_eq!(code, 201, "{body}");
    c.wait_settled("/web", 2);
    // A second version of /web, and a deployment that cannot finish (no agent is that big).
    let (code, body) = c.send("PUT", "/v2/apps/web", &json!({"labels": {"v": "2"}}));
    assert!(code == 200 || code == 201, "{code} {body}");
    c.wait_settled("/web", 2);
    let (code, body) = c.send(
        "POST",
        "/v2/apps",
        &json!({"id": "/big", "cmd": "sleep 300", "instances": 1, "cpus": 64, "mem": 16}),
    );
    assert_eq!(code, 201, "{body}");
    let deployments: BTreeSet<String> = c
        .deployments()
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(deployments.len(), 1, "{deployments:?}");
    let versions = c.get("/v2/apps/web/versions");
    let tasks = task_ids(&c, "/web");
    assert_eq!(tasks.len(), 2);

    if let Some(mut p) = procs[li].take() {
        p.kill9();
    }
    let next = wait_leader(&[follower], || logs(&procs));
    assert_eq!(next, follower);
    c.api = Some(next);
    wait_for(
        "the new leader subscribed",
        || logs(&procs),
        || (c.get("/v2/info")["subscribed"] == true).then_some(()),
    );
    assert_eq!(
        c.get("/v2/info")["frameworkId"],
        framework,
        "same framework"
    );
    assert_eq!(
        c.get("/v2/apps/web/versions"),
        versions,
        "every version kept"
    );
    assert_eq!(c.get("/v2/apps/big")["app"]["id"], "/big");
    let after: BTreeSet<String> = c
        .deployments()
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(after, deployments, "the deployment in flight is kept");
    // The same two instances, adopted: none replaced, none added.
    wait_for(
        "/web running its two instances",
        || logs(&procs),
        || (c.running("/web").len() == 2).then_some(()),
    );
    assert_eq!(task_ids(&c, "/web"), tasks);
    std::thread::sleep(Duration::from_secs(2));
    let live: Vec<String> = c
        .master_live_tasks()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        live.iter().cloned().collect::<BTreeSet<_>>(),
        tasks,
        "the master runs exactly the adopted instances"
    );

    // The old leader, restarted, follows.
    procs[li] = Some(spawn(li, 1));
    assert_eq!(wait_leader(&addrs, || logs(&procs)), next);
}

//! Scheduling depth end to end (issue 18, item 0): a real master, real agents running
//! real tasks, and frameworks speaking the scheduler API.
//!
//! * Two frameworks declining the same resources with `refuse_seconds: 0` do not bounce
//!   them in a tight loop (the minimum re-offer delay, counted in a metric), while fresh
//!   resources are still offered at once.
//! * Starvation: a framework needing one 8-cpu task on agents kept full by 1-cpu tasks
//!   starts once it declares its demand, without an offer storm.
//! * Fragmentation with gangs: two frameworks each needing 4 x 1 cpu at once, two agents
//!   freeing 2 cpus each at the same moment: one gang starts, no livelock, no storm, and
//!   explain says in words why the other waits.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agora_proto::TaskState;
use agora_proto::v1;
use support::*;

fn metric(cluster: &Cluster, name: &str) -> f64 {
    let (code, body) = http_get(cluster.addr, "/metrics").expect("GET /metrics");
    assert_eq!(code, 200, "{body}");
    body.lines()
        .find_map(|l| {
            let mut it = l.split_whitespace();
            (it.next() == Some(name)).then(|| it.next()?.parse::<f64>().ok())?
        })
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

fn info(name: &str, role: &str, demand: Option<(&str, u32)>) -> v1::FrameworkInfo {
    v1::FrameworkInfo {
        name: name.to_string(),
        roles: vec![role.to_string()],
        failover_timeout_seconds: 60.0,
        demands: demand
            .map(|(shape, count)| {
                vec![v1::Demand {
                    role: role.to_string(),
                    task_shape: res(shape).to_proto(),
                    count,
                    same_agent: false,
                }]
            })
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn cpus(o: &v1::Offer) -> f64 {
    agora_resources::Resources::from_proto(&o.resources)
        .map(|r| r.scalar("cpus").thousandths() as f64 / 1000.0)
        .unwrap_or(0.0)
}

/// Read every event waiting for `fw` (up to `budget`), so its offers are current.
async fn drain(fw: &mut Framework, budget: Duration) {
    let until = Instant::now() + budget;
    while Instant::now() < until && fw.pump(Duration::from_millis(20)).await {}
}

fn explain_reasons(cluster: &Cluster, fw: &str) -> String {
    let (code, body) = http_get(
        cluster.addr,
        &format!("/api/v1/allocator/explain?framework={fw}"),
    )
    .expect("GET explain");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("explain JSON");
    v["reasons"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_filter_declines_do_not_loop_and_fresh_resources_go_out_at_once() {
    // A long minimum delay makes the difference between a delayed re-offer and a fresh
    // offer visible without timing anything.
    let mut cluster = Cluster::start_with(1, &["--min-refuse-ms", "30000"]);
    let mut a = Framework::subscribe(cluster.addr, "decliner-a").await;
    let mut b = Framework::subscribe(cluster.addr, "decliner-b").await;
    let sent_before = metric(&cluster, "agora_offers_sent_total");
    // For three seconds both decline whatever they get with refuse_seconds: 0.
    let until = Instant::now() + Duration::from_secs(3);
    let mut declined = 0;
    while Instant::now() < until {
        for fw in [&mut a, &mut b] {
            drain(fw, Duration::from_millis(50)).await;
            let ids: Vec<String> = fw.offers.drain(..).map(|o| o.id).collect();
            if !ids.is_empty() {
                declined += ids.len();
                fw.decline(ids, 0.0).await;
            }
        }
    }
    let sent = metric(&cluster, "agora_offers_sent_total") - sent_before;
    // One offer to each, then each is filtered for 30 s: nothing bounces.
    assert!(declined >= 1, "the agent was offered");
    assert!(
        sent <= 2.0,
        "{sent} offers in 3 s: the declined agent bounced"
    );
    assert!(metric(&cluster, "agora_decline_filters_raised_total") >= 1.0);
    // A fresh agent's resources are offered at once, filters or not.
    cluster.add_agent(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut fresh = 0;
    while fresh == 0 {
        assert!(
            Instant::now() < deadline,
            "the fresh agent was not offered; {}",
            cluster.logs()
        );
        for fw in [&mut a, &mut b] {
            drain(fw, Duration::from_millis(50)).await;
            fresh += fw.offers.len();
        }
    }
}

/// Launch 1-cpu tasks of `secs` seconds in every offer `fw` holds (as many as fit).
async fn fill(fw: &mut Framework, next: &mut usize, secs: &dyn Fn(usize) -> u32) -> usize {
    let mut launched = 0;
    for o in std::mem::take(&mut fw.offers) {
        let n = cpus(&o).floor() as usize;
        if n == 0 {
            fw.decline(vec![o.id], 5.0).await;
            continue;
        }
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let id = format!("small-{}", *next + i);
                shell_task(&id, "cpus:1;mem:32", &format!("sleep {}", secs(*next + i)))
            })
            .collect();
        *next += n;
        launched += n;
        fw.accept(vec![o.id], vec![launch(tasks)], Some(5.0))
            .await
            .expect("accept small tasks");
    }
    launched
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_task_with_a_demand_starts_on_agents_kept_full_by_small_ones_without_a_storm() {
    let mut cluster = Cluster::start_with(0, &[]);
    for i in 0..2 {
        cluster.add_agent_resources(i, "cpus:8;mem:4096;disk:1024;ports:[31000-31099]", &[]);
    }
    cluster.wait_agents(2);
    let mut small = Framework::subscribe_info(cluster.addr, info("small", "small", None)).await;
    // Keep both agents full with 1-cpu tasks of 1 to 3 seconds.
    let mut next = 0;
    let durations = |i: usize| 1 + (i % 3) as u32;
    let deadline = Instant::now() + Duration::from_secs(20);
    while next < 16 {
        assert!(
            Instant::now() < deadline,
            "small tasks did not fill the agents"
        );
        drain(&mut small, Duration::from_millis(100)).await;
        fill(&mut small, &mut next, &durations).await;
    }
    let sent_before = metric(&cluster, "agora_offers_sent_total");
    let started_at = Instant::now();
    let mut big = Framework::subscribe_info(
        cluster.addr,
        info("big", "big", Some(("cpus:8;mem:256", 1))),
    )
    .await;
    let mut big_declined = 0;
    let mut launched = false;
    while !launched {
        assert!(
            started_at.elapsed() < Duration::from_secs(60),
            "the 8-cpu task never started ({big_declined} offers declined); why: {}",
            explain_reasons(&cluster, &big.id)
        );
        drain(&mut small, Duration::from_millis(50)).await;
        fill(&mut small, &mut next, &durations).await;
        drain(&mut big, Duration::from_millis(50)).await;
        for o in std::mem::take(&mut big.offers) {
            if !launched && cpus(&o) >= 8.0 {
                let task = shell_task("big-0", "cpus:8;mem:256", "sleep 1");
                big.accept(vec![o.id], vec![launch(vec![task])], Some(5.0))
                    .await
                    .expect("accept the big task");
                launched = true;
            } else {
                big_declined += 1;
                big.decline(vec![o.id], 5.0).await;
            }
        }
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    big.wait_for("the big task runs", |s| {
        s.get("big-0")
            .is_some_and(|t| matches!(state_of(t), TaskState::Running | TaskState::Finished))
    })
    .await;
    let sent = metric(&cluster, "agora_offers_sent_total") - sent_before;
    // Without the hold's leftovers bouncing, offers follow the freed cpus: at most a few
    // per freed cpu (16 cpus, tasks of 1-3 s), never the thousand a second of a storm.
    assert!(
        sent <= 40.0 * elapsed.max(1.0),
        "{sent} offers in {elapsed:.1} s: an offer storm"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmentation_two_gangs_one_starts_without_livelock_or_storm() {
    let mut cluster = Cluster::start_with(0, &[]);
    for i in 0..2 {
        cluster.add_agent_resources(i, "cpus:4;mem:2048;disk:1024;ports:[31000-31099]", &[]);
    }
    cluster.wait_agents(2);
    // A busy framework: per agent two long tasks and two that end at the same moment.
    let mut busy = Framework::subscribe_info(cluster.addr, info("busy", "busy", None)).await;
    let mut placed = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while placed < 2 {
        assert!(Instant::now() < deadline, "busy tasks not placed");
        drain(&mut busy, Duration::from_millis(100)).await;
        for o in std::mem::take(&mut busy.offers) {
            if cpus(&o) < 4.0 {
                busy.decline(vec![o.id], 60.0).await;
                continue;
            }
            let tasks = (0..4)
                .map(|i| {
                    let cmd = if i < 2 { "sleep 600" } else { "sleep 6" };
                    shell_task(&format!("busy-{placed}-{i}"), "cpus:1;mem:64", cmd)
                })
                .collect();
            busy.accept(vec![o.id], vec![launch(tasks)], Some(600.0))
                .await
                .expect("accept busy");
            placed += 1;
        }
    }
    busy.client
        .suppress(v1::SuppressRequest {
            framework_id: busy.id.clone(),
            roles: vec![],
        })
        .await
        .expect("suppress busy");
    let sent_before = metric(&cluster, "agora_offers_sent_total");
    let mut gangs = Vec::new();
    for g in ["gang-a", "gang-b"] {
        gangs.push(
            Framework::subscribe_info(cluster.addr, info(g, g, Some(("cpus:1;mem:64", 4)))).await,
        );
    }
    let started_at = Instant::now();
    let mut started: HashMap<String, f64> = HashMap::new();
    let mut declined = 0;
    while started.is_empty() {
        assert!(
            started_at.elapsed() < Duration::from_secs(45),
            "no gang started ({declined} offers declined); why: {} / {}",
            explain_reasons(&cluster, &gangs[0].id),
            explain_reasons(&cluster, &gangs[1].id)
        );
        drain(&mut busy, Duration::from_millis(20)).await;
        for g in gangs.iter_mut() {
            drain(g, Duration::from_millis(50)).await;
            let total: f64 = g.offers.iter().map(cpus).sum();
            let offers = std::mem::take(&mut g.offers);
            if total >= 4.0 && !started.contains_key(&g.id) {
                let mut left = 4usize;
                for o in offers {
                    let n = (cpus(&o).floor() as usize).min(left);
                    let tasks = (0..n)
                        .map(|i| {
                            shell_task(
                                &format!("{}-{}", g.id, left - i),
                                "cpus:1;mem:64",
                                "sleep 600",
                            )
                        })
                        .collect();
                    left -= n;
                    g.accept(vec![o.id], vec![launch(tasks)], Some(0.0))
                        .await
                        .expect("accept the gang");
                }
                started.insert(g.id.clone(), started_at.elapsed().as_secs_f64());
            } else {
                // The client: decline with refuse_seconds 0.
                for o in offers {
                    declined += 1;
                    g.decline(vec![o.id], 0.0).await;
                }
            }
        }
    }
    // Let the other gang keep declining for a few seconds: still no storm.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for g in gangs.iter_mut() {
            drain(g, Duration::from_millis(50)).await;
            let ids: Vec<String> = g.offers.drain(..).map(|o| o.id).collect();
            if !ids.is_empty() {
                g.decline(ids, 0.0).await;
            }
        }
    }
    let elapsed = started_at.elapsed().as_secs_f64();
    let sent = metric(&cluster, "agora_offers_sent_total") - sent_before;
    assert!(
        sent <= 10.0 * elapsed.max(1.0),
        "{sent} offers in {elapsed:.1} s: a livelock or storm"
    );
    let waiting = gangs
        .iter()
        .find(|g| !started.contains_key(&g.id))
        .expect("one gang waits");
    let why = explain_reasons(&cluster, &waiting.id);
    assert!(
        why.contains("demand") && why.contains("gang of 4 tasks"),
        "explain says why the other gang waits: {why}"
    );
}

//! Marathon's JSON shapes of the core's state: apps (with counts, tasks, deployments),
//! tasks, the launch queue, groups, and the Prometheus metrics text.
//!
//! Pure formatting of what the core holds; this module must never change state, validate
//! input or decide policy.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value as Json, json};

use crate::app::parent_groups;
use crate::core::{AppRecord, Core, deployment_json};
use crate::instance::{Instance, Phase};
use crate::launch::Refusal;
use crate::time::{Millis, iso8601};

/// What to embed in an app's JSON.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Embed {
    /// `apps.tasks`: the app's tasks.
    pub tasks: bool,
    /// `apps.counts`: tasksStaged/Running/Healthy/Unhealthy (always included; Marathon
    /// clients read them without asking).
    pub counts: bool,
}

/// A task in Marathon's shape.
pub fn task_json(i: &Instance) -> Json {
    let mut t = json!({
        "id": i.task_id,
        "appId": i.app_id,
        "host": i.host,
        "ports": i.ports,
        "servicePorts": [],
        "slaveId": i.agent_id,
        "agentId": i.agent_id,
        "stagedAt": iso8601(i.staged_at),
        "startedAt": i.started_at.map(iso8601),
        "version": iso8601(i.version_ms),
        "state": i.last_state,
        "ipAddresses": [],
    });
    if let Some(h) = i.healthy {
        t["healthCheckResults"] = json!([{
            "alive": h,
            "taskId": i.task_id,
            "instanceId": i.task_id,
            "consecutiveFailures": if h { 0 } else { 1 },
        }]);
    }
    t
}

/// An app in Marathon's shape (the definition plus version info, deployments, counts and
/// optionally its tasks).
pub fn app_json(core: &Core, app: &AppRecord, embed: Embed) -> Json {
    let mut v = serde_json::to_value(&app.def).unwrap_or_else(|_| json!({}));
    let hc = app.def.has_health_checks();
    let tasks: Vec<&Instance> = core.instances_of(&app.def.id).collect();
    let count = |f: &dyn Fn(&Instance) -> bool| tasks.iter().filter(|i| f(i)).count();
    v["version"] = json!(iso8601(app.version_ms));
    v["versionInfo"] = json!({
        "lastScalingAt": iso8601(app.scaling_ms),
        "lastConfigChangeAt": iso8601(app.config_ms),
    });
    v["deployments"] = json!(
        core.deployment_of(&app.def.id)
            .map(|d| vec![json!({"id": d.id})])
            .unwrap_or_default()
    );
    v["tasksStaged"] = json!(count(&|i| matches!(
        i.phase,
        Phase::Launching | Phase::Staging | Phase::Starting
    )));
    v["tasksRunning"] = json!(count(&|i| i.phase == Phase::Running));
    v["tasksHealthy"] = json!(if hc {
        count(&|i| i.phase == Phase::Running && i.healthy == Some(true))
    } else {
        0
    });
    v["tasksUnhealthy"] = json!(if hc {
        count(&|i| i.phase == Phase::Running && i.healthy == Some(false))
    } else {
        0
    });
    if let Some(st) = core.autoscale_status(&app.def.id) {
        v["autoscaleStatus"] = json!({
            "decision": st.decision,
            "at": iso8601(st.at),
            "utilisation": st.utilisation,
            "atBound": st.at_bound,
        });
    }
    if embed.tasks {
        v["tasks"] = json!(
            tasks
                .iter()
                .map(|i| instance_json(core, i))
                .collect::<Vec<_>>()
        );
    }
    v
}

/// A task with what the core knows beyond Marathon's shape: whether the framework asked
/// for its end (`killing`), whether its agent is being drained, and its latest
/// utilisation.
pub fn instance_json(core: &Core, i: &Instance) -> Json {
    let mut t = task_json(i);
    if i.kill_requested || i.phase == Phase::Killing {
        t["killing"] = json!(true);
    }
    if core.on_draining_agent(i) {
        t["draining"] = json!(true);
    }
    if let Some(u) = core.utilisation_of(&i.task_id) {
        t["utilisation"] = json!(u);
    }
    t
}

/// `/v2/queue`: every app waiting to launch, its delay and why the last offers were not
/// used.
pub fn queue_json(core: &Core, now: Millis) -> Json {
    let mut entries = Vec::new();
    for (app_id, q) in core.queue() {
        let Some(app) = core.app(app_id) else {
            continue;
        };
        let left = q.delay_left_ms(now);
        if q.wanted == 0 && left == 0 {
            continue;
        }
        let processed = q.offers.len();
        let reasons: Vec<Json> = Refusal::ALL
            .iter()
            .map(|r| {
                json!({
                    "reason": r.name(),
                    "declined": q.offers.iter().filter(|o| o.refusal == Some(*r)).count(),
                    "processed": processed,
                })
            })
            .collect();
        let last_unused: Vec<Json> = q
            .offers
            .iter()
            .filter_map(|o| {
                o.refusal.map(|r| {
                    json!({
                        "offer": {"id": o.offer_id, "agentId": o.agent_id, "hostname": o.host},
                        "timestamp": iso8601(o.at),
                        "reason": [r.name()],
                    })
                })
            })
            .collect();
        let last_at = |used: bool| {
            q.offers
                .iter()
                .rev()
                .find(|o| o.refusal.is_none() == used)
                .map(|o| iso8601(o.at))
        };
        entries.push(json!({
            "app": app_json(core, app, Embed::default()),
            "count": q.wanted,
            "since": iso8601(q.since),
            "delay": {"timeLeftSeconds": left as f64 / 1000.0, "overdue": left == 0},
            "processedOffersSummary": {
                "processedOffersCount": q.processed_total,
                "unusedOffersCount": q.unused_total,
                "lastUnusedOfferAt": last_at(false),
                "lastUsedOfferAt": last_at(true),
                "rejectSummaryLastOffers": reasons,
            },
            "lastUnusedOffers": last_unused,
        }));
    }
    json!({ "queue": entries })
}

/// `/v2/groups[/id]`: the group `id` (`/` for the root) with its apps and nested groups.
/// `None` when no app lives under it.
pub fn group_json(core: &Core, id: &str, embed: Embed) -> Option<Json> {
    let id = if id == "/" {
        String::new()
    } else {
        id.to_string()
    };
    let under: Vec<&AppRecord> = core
        .apps()
        .values()
        .filter(|a| id.is_empty() || parent_groups(&a.def.id).contains(&id))
        .collect();
    if under.is_empty() && !id.is_empty() {
        return None;
    }
    let depth = id.split('/').filter(|s| !s.is_empty()).count();
    let mut apps = Vec::new();
    let mut children: BTreeMap<String, ()> = BTreeMap::new();
    for a in &under {
        let groups = parent_groups(&a.def.id);
        if groups.len() == depth {
            apps.push(app_json(core, a, embed));
        } else if let Some(child) = groups.get(depth) {
            children.insert(child.clone(), ());
        }
    }
    let groups: Vec<Json> = children
        .keys()
        .filter_map(|c| group_json(core, c, embed))
        .collect();
    let version = under.iter().map(|a| a.version_ms).max().unwrap_or(0);
    Some(json!({
        "id": if id.is_empty() { "/".to_string() } else { id },
        "apps": apps,
        "groups": groups,
        "dependencies": [],
        "version": iso8601(version),
    }))
}

/// `/v2/deployments`.
pub fn deployments_json(core: &Core) -> Json {
    json!(
        core.deployments()
            .values()
            .map(deployment_json)
            .collect::<Vec<_>>()
    )
}

/// Counters the service keeps besides the core's state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Offers received.
    pub offers_received: u64,
    /// Offers declined.
    pub offers_declined: u64,
    /// Tasks launched (accepted by the master).
    pub tasks_launched: u64,
    /// Launches the master refused.
    pub launches_refused: u64,
    /// Kills sent.
    pub kills_sent: u64,
    /// Status updates handled.
    pub status_updates: u64,
    /// Events published.
    pub events_published: u64,
}

/// `/metrics` in the Prometheus text format.
pub fn metrics_text(core: &Core, c: &Counters, subscribed: bool) -> String {
    let mut s = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(s, "# HELP agora_services_{name} {help}");
        let _ = writeln!(s, "# TYPE agora_services_{name} {kind}");
        let _ = writeln!(s, "agora_services_{name} {value}");
    };
    metric(
        "subscribed",
        "gauge",
        "1 while subscribed to a master",
        u64::from(subscribed),
    );
    metric("apps", "gauge", "Apps defined", core.apps().len() as u64);
    metric(
        "instances",
        "gauge",
        "Instances known (any phase)",
        core.instances().len() as u64,
    );
    metric(
        "instances_running",
        "gauge",
        "Instances running",
        core.instances()
            .values()
            .filter(|i| i.phase == Phase::Running)
            .count() as u64,
    );
    metric(
        "deployments",
        "gauge",
        "Deployments in progress",
        core.deployments().len() as u64,
    );
    metric(
        "queue_waiting",
        "gauge",
        "Instances waiting to launch",
        core.queue().values().map(|q| q.wanted as u64).sum(),
    );
    metric(
        "offers_received_total",
        "counter",
        "Offers received",
        c.offers_received,
    );
    metric(
        "offers_declined_total",
        "counter",
        "Offers declined",
        c.offers_declined,
    );
    metric(
        "tasks_launched_total",
        "counter",
        "Tasks launched",
        c.tasks_launched,
    );
    metric(
        "launches_refused_total",
        "counter",
        "Launches the master refused",
        c.launches_refused,
    );
    metric(
        "kills_sent_total",
        "counter",
        "Kill requests sent",
        c.kills_sent,
    );
    metric(
        "status_updates_total",
        "counter",
        "Status updates handled",
        c.status_updates,
    );
    metric(
        "events_published_total",
        "counter",
        "Events published",
        c.events_published,
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::parse_app_value;

    #[test]
    fn groups_nest_by_path() {
        let mut core = Core::new("*");
        for id in ["/a/x", "/a/b/y", "/c"] {
            let def = parse_app_value(json!({"id": id, "cmd": "x"}), None).unwrap();
            core.create_app(def, 1).unwrap();
        }
        let root = group_json(&core, "/", Embed::default()).unwrap();
        assert_eq!(root["apps"][0]["id"], "/c");
        assert_eq!(root["groups"][0]["id"], "/a");
        assert_eq!(root["groups"][0]["apps"][0]["id"], "/a/x");
        assert_eq!(root["groups"][0]["groups"][0]["id"], "/a/b");
        assert_eq!(root["groups"][0]["groups"][0]["apps"][0]["id"], "/a/b/y");
        assert!(group_json(&core, "/nope", Embed::default()).is_none());
    }

    #[test]
    fn metrics_are_prometheus_text() {
        let core = Core::new("*");
        let text = metrics_text(&core, &Counters::default(), true);
        assert!(text.contains("# TYPE agora_services_apps gauge\nagora_services_apps 0\n"));
        assert!(text.contains("agora_services_subscribed 1"));
    }
}

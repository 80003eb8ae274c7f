//! Matching one app against one offer (role, constraints, cpus, mem, disk, gpus, ports)
//! with the reason an offer was refused, and building the `TaskInfo` of an instance
//! (command, `PORT0`.. / `PORTS` environment, health check, fetch, kill grace).
//!
//! Pure; this module must never choose which app gets an offer (the core does) or talk to
//! the master.

use std::collections::BTreeMap;

use agora_resources::{Resource, Resources, Scalar, Value};
use agora_sdk::placement::{Constraint, Placement, pick_ports, ports_shape};
use agora_sdk::proto::command_info::{Argv, Run};
use agora_sdk::proto::{
    CommandInfo, EnvironmentVariable, HealthCheck, KillPolicy, Label, TaskInfo, Uri, health_check,
};
use serde::Serialize;

use crate::app::{AppDefinition, HealthProtocol, health_protocol};
use crate::time::iso8601;

/// Why an offer did not take an instance (Marathon's `/v2/queue` reason names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Refusal {
    /// The offer is for another role.
    UnfulfilledRole,
    /// A constraint does not allow the agent.
    UnfulfilledConstraint,
    /// Not enough CPUs.
    InsufficientCpus,
    /// Not enough memory.
    InsufficientMemory,
    /// Not enough disk.
    InsufficientDisk,
    /// Not enough GPUs.
    InsufficientGpus,
    /// Not enough (or not the required) ports.
    InsufficientPorts,
}

impl Refusal {
    /// Every reason, in the order offers are checked.
    pub const ALL: [Refusal; 7] = [
        Refusal::UnfulfilledRole,
        Refusal::UnfulfilledConstraint,
        Refusal::InsufficientCpus,
        Refusal::InsufficientMemory,
        Refusal::InsufficientDisk,
        Refusal::InsufficientGpus,
        Refusal::InsufficientPorts,
    ];

    /// The reason's name.
    pub fn name(self) -> &'static str {
        match self {
            Refusal::UnfulfilledRole => "UnfulfilledRole",
            Refusal::UnfulfilledConstraint => "UnfulfilledConstraint",
            Refusal::InsufficientCpus => "InsufficientCpus",
            Refusal::InsufficientMemory => "InsufficientMemory",
            Refusal::InsufficientDisk => "InsufficientDisk",
            Refusal::InsufficientGpus => "InsufficientGpus",
            Refusal::InsufficientPorts => "InsufficientPorts",
        }
    }
}

/// What an instance takes out of an offer.
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// The concrete resources (with reservations as offered), ports included.
    pub resources: Resources,
    /// Host ports in `portDefinitions` order.
    pub ports: Vec<u16>,
}

fn scalar(name: &str, amount: f64) -> Option<Resources> {
    let mut r = Resources::new();
    let s = Scalar::from_f64(amount)?;
    if !s.is_zero() {
        r.push(Resource::new(name, Value::Scalar(s))).ok()?;
    }
    Some(r)
}

/// Whether one instance of `app` fits in `available` on an agent with `placement`, given
/// the placements of the app's other instances. The first reason that refuses is
/// returned, checked in [`Refusal::ALL`] order.
pub fn try_fit(
    app: &AppDefinition,
    constraints: &[Constraint],
    app_role: &str,
    offer_role: &str,
    available: &Resources,
    placement: &Placement,
    placed: &[&Placement],
) -> Result<Fit, Refusal> {
    if app_role != offer_role {
        return Err(Refusal::UnfulfilledRole);
    }
    if !constraints.iter().all(|c| c.allows(placement, placed)) {
        return Err(Refusal::UnfulfilledConstraint);
    }
    let mut rest = available.clone();
    let mut picked = Resources::new();
    for (name, amount, refusal) in [
        ("cpus", app.cpus, Refusal::InsufficientCpus),
        ("mem", app.mem, Refusal::InsufficientMemory),
        ("disk", app.disk, Refusal::InsufficientDisk),
        ("gpus", f64::from(app.gpus), Refusal::InsufficientGpus),
    ] {
        let shape = scalar(name, amount).ok_or(refusal)?;
        let got = agora_sdk::take(&mut rest, &shape).ok_or(refusal)?;
        picked = picked.checked_add(&got).map_err(|_| refusal)?;
    }
    let required: Vec<u16> = if app.require_ports {
        app.port_definitions
            .iter()
            .filter_map(|p| u16::try_from(p.port).ok())
            .collect()
    } else {
        Vec::new()
    };
    let ports = pick_ports(&rest, app.port_definitions.len(), &required)
        .ok_or(Refusal::InsufficientPorts)?;
    let shape = ports_shape(&ports).map_err(|_| Refusal::InsufficientPorts)?;
    let got = agora_sdk::take(&mut rest, &shape).ok_or(Refusal::InsufficientPorts)?;
    picked = picked
        .checked_add(&got)
        .map_err(|_| Refusal::InsufficientPorts)?;
    Ok(Fit {
        resources: picked,
        ports,
    })
}

/// What a task needs besides the app: its ids, host, ports and version.
#[derive(Clone, Debug)]
pub struct TaskSpec<'a> {
    /// Task id.
    pub task_id: &'a str,
    /// Agent id.
    pub agent_id: &'a str,
    /// Agent hostname.
    pub host: &'a str,
    /// App version (ms).
    pub version_ms: u64,
    /// The fit taken from the offer.
    pub fit: &'a Fit,
}

/// The environment every instance gets on top of the app's `env`: `PORT0`.., `PORT`,
/// `PORTS`, `PORT_<NAME>`, `HOST`, `MARATHON_APP_ID`, `MARATHON_APP_VERSION`.
pub fn instance_env(app: &AppDefinition, spec: &TaskSpec<'_>) -> BTreeMap<String, String> {
    let mut env = app.env.clone();
    let ports = &spec.fit.ports;
    for (i, p) in ports.iter().enumerate() {
        env.insert(format!("PORT{i}"), p.to_string());
        if let Some(name) = app.port_definitions.get(i).and_then(|d| d.name.as_ref()) {
            env.insert(
                format!("PORT_{}", name.to_ascii_uppercase().replace('-', "_")),
                p.to_string(),
            );
        }
    }
    if let Some(first) = ports.first() {
        env.insert("PORT".into(), first.to_string());
    }
    env.insert(
        "PORTS".into(),
        ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
    );
    env.insert("HOST".into(), spec.host.to_string());
    env.insert("MARATHON_APP_ID".into(), app.id.clone());
    env.insert("MARATHON_APP_VERSION".into(), iso8601(spec.version_ms));
    env
}

/// The agent's health check for an instance, with the port resolved.
pub fn health_check(app: &AppDefinition, ports: &[u16]) -> Option<HealthCheck> {
    let h = app.health_checks.first()?;
    let protocol = health_protocol(&h.protocol)?;
    let port = h
        .port
        .or_else(|| {
            let ix = h.port_index.unwrap_or(0) as usize;
            ports.get(ix).map(|p| u32::from(*p))
        })
        .unwrap_or(0);
    let (kind, command, port, path) = match protocol {
        HealthProtocol::Http => (
            health_check::Type::Http,
            None,
            port,
            h.path.clone().unwrap_or_else(|| "/".into()),
        ),
        HealthProtocol::Tcp => (health_check::Type::Tcp, None, port, String::new()),
        HealthProtocol::Command => (
            health_check::Type::Command,
            h.command.as_ref().map(|c| CommandInfo {
                run: Some(Run::Shell(c.value.clone())),
                ..Default::default()
            }),
            0,
            String::new(),
        ),
    };
    Some(HealthCheck {
        r#type: kind as i32,
        command,
        port,
        path,
        delay_seconds: h.delay_seconds,
        interval_seconds: h.interval_seconds,
        timeout_seconds: h.timeout_seconds,
        // Marathon's 0 means "never kill"; the agent's 0 means its default.
        consecutive_failures: if h.max_consecutive_failures == 0 {
            u32::MAX
        } else {
            h.max_consecutive_failures
        },
        grace_period_seconds: h.grace_period_seconds,
    })
}

/// The `TaskInfo` launching one instance of `app`.
pub fn task_info(app: &AppDefinition, spec: &TaskSpec<'_>) -> TaskInfo {
    let run = match (&app.cmd, &app.args) {
        (Some(cmd), _) => Run::Shell(cmd.clone()),
        (None, Some(args)) => Run::Argv(Argv { args: args.clone() }),
        (None, None) => Run::Shell(String::new()),
    };
    let environment = instance_env(app, spec)
        .into_iter()
        .map(|(name, value)| EnvironmentVariable { name, value })
        .collect();
    let uris = app
        .fetch
        .iter()
        .map(|f| Uri {
            value: f.uri.clone(),
            executable: f.executable,
            extract: f.extract,
            cache: f.cache,
            output_file: f.output_file.clone().unwrap_or_default(),
        })
        .collect();
    TaskInfo {
        name: app.id.trim_start_matches('/').replace('/', "."),
        task_id: spec.task_id.to_string(),
        agent_id: spec.agent_id.to_string(),
        resources: spec.fit.resources.to_proto(),
        command: Some(CommandInfo {
            run: Some(run),
            environment,
            uris,
            user: app.user.clone().unwrap_or_default(),
        }),
        labels: app
            .labels
            .iter()
            .map(|(k, v)| Label {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        health_check: health_check(app, &spec.fit.ports),
        kill_policy: app.task_kill_grace_period_seconds.map(|g| KillPolicy {
            grace_period_seconds: g,
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::parse_app_value;
    use serde_json::json;

    fn app(v: serde_json::Value) -> AppDefinition {
        parse_app_value(v, None).unwrap()
    }

    fn r(t: &str) -> Resources {
        Resources::parse(t).unwrap()
    }

    fn host(h: &str) -> Placement {
        [("hostname".to_string(), h.to_string())]
            .into_iter()
            .collect()
    }

    #[test]
    fn each_missing_resource_is_named() {
        let a = app(
            json!({"id": "a", "cmd": "x", "cpus": 1, "mem": 64, "disk": 10, "gpus": 1,
                           "portDefinitions": [{}, {}]}),
        );
        let fit = |avail: &str| try_fit(&a, &[], "*", "*", &r(avail), &host("h"), &[]);
        assert_eq!(
            fit("cpus:0.5;mem:64;disk:10;gpus:1;ports:[1-2]"),
            Err(Refusal::InsufficientCpus)
        );
        assert_eq!(
            fit("cpus:1;mem:32;disk:10;gpus:1;ports:[1-2]"),
            Err(Refusal::InsufficientMemory)
        );
        assert_eq!(
            fit("cpus:1;mem:64;disk:1;gpus:1;ports:[1-2]"),
            Err(Refusal::InsufficientDisk)
        );
        assert_eq!(
            fit("cpus:1;mem:64;disk:10;ports:[1-2]"),
            Err(Refusal::InsufficientGpus)
        );
        assert_eq!(
            fit("cpus:1;mem:64;disk:10;gpus:1;ports:[1-1]"),
            Err(Refusal::InsufficientPorts)
        );
        let ok = fit("cpus:2;mem:64;disk:10;gpus:1;ports:[5-9]").unwrap();
        assert_eq!(ok.ports, vec![5, 6]);
        assert_eq!(ok.resources, r("cpus:1;mem:64;disk:10;gpus:1;ports:[5-6]"));
        assert_eq!(
            try_fit(&a, &[], "web", "*", &r("cpus:9"), &host("h"), &[]),
            Err(Refusal::UnfulfilledRole)
        );
    }

    #[test]
    fn required_ports_and_constraints() {
        let a = app(
            json!({"id": "a", "cmd": "x", "cpus": 0.1, "mem": 8, "requirePorts": true,
                           "portDefinitions": [{"port": 8080}], "constraints": [["hostname", "UNIQUE"]]}),
        );
        let cs = a.parsed_constraints();
        let avail = r("cpus:1;mem:100;ports:[8000-8100]");
        let ok = try_fit(&a, &cs, "*", "*", &avail, &host("h1"), &[]).unwrap();
        assert_eq!(ok.ports, vec![8080]);
        let h1 = host("h1");
        assert_eq!(
            try_fit(&a, &cs, "*", "*", &avail, &host("h1"), &[&h1]),
            Err(Refusal::UnfulfilledConstraint)
        );
        assert_eq!(
            try_fit(
                &a,
                &cs,
                "*",
                "*",
                &r("cpus:1;mem:100;ports:[9000-9100]"),
                &host("h2"),
                &[&h1]
            ),
            Err(Refusal::InsufficientPorts)
        );
    }

    #[test]
    fn task_info_carries_ports_env_health_and_kill_grace() {
        let a = app(
            json!({"id": "/g/web", "cmd": "serve", "cpus": 0.1, "mem": 8,
            "env": {"A": "1"}, "portDefinitions": [{"name": "http"}, {}],
            "healthChecks": [{"protocol": "HTTP", "portIndex": 1, "path": "/ok", "maxConsecutiveFailures": 0}],
            "taskKillGracePeriodSeconds": 2, "labels": {"team": "x"},
            "fetch": [{"uri": "http://x.invalid/a"}]}),
        );
        let fit = Fit {
            resources: r("cpus:0.1;mem:8;ports:[31000-31001]"),
            ports: vec![31000, 31001],
        };
        let t = task_info(
            &a,
            &TaskSpec {
                task_id: "g_web.1-0",
                agent_id: "A1",
                host: "h1",
                version_ms: 0,
                fit: &fit,
            },
        );
        assert_eq!(t.name, "g.web");
        let cmd = t.command.unwrap();
        let env: BTreeMap<_, _> = cmd
            .environment
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(env["PORT0"], "31000");
        assert_eq!(env["PORT1"], "31001");
        assert_eq!(env["PORT"], "31000");
        assert_eq!(env["PORTS"], "31000,31001");
        assert_eq!(env["PORT_HTTP"], "31000");
        assert_eq!(env["A"], "1");
        assert_eq!(env["HOST"], "h1");
        assert_eq!(env["MARATHON_APP_ID"], "/g/web");
        assert_eq!(cmd.uris.len(), 1);
        let h = t.health_check.unwrap();
        assert_eq!(h.port, 31001);
        assert_eq!(h.path, "/ok");
        assert_eq!(h.consecutive_failures, u32::MAX);
        assert_eq!(t.kill_policy.unwrap().grace_period_seconds, 2.0);
        assert_eq!(t.labels[0].key, "team");
    }
}

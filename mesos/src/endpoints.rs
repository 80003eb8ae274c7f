//! The JSON shapes of Mesos's read-only endpoints that the master's and the agent's
//! `/state` share: resource maps, attributes and commands as Mesos tools read them.
//!
//! Pure: values in, JSON out; it must never decide what is shown (the callers filter).

use std::collections::BTreeMap;

use agora_proto::v1;
use serde_json::{Map, Value, json};

use crate::translate::{role_to_mesos, state_name};

/// A task as Mesos's `/state` endpoints list it; `statuses` are its status entries.
pub fn task(info: &v1::TaskInfo, framework_id: &str, state: i32, statuses: Vec<Value>) -> Value {
    // The role the master launched it under; tasks recorded before it had one fall back
    // to their reservation's.
    let role = Some(info.role.clone())
        .filter(|r| !r.is_empty())
        .or_else(|| {
            info.resources
                .iter()
                .find_map(|r| r.reservation.as_ref().map(|x| x.role.clone()))
        });
    json!({
        "id": info.task_id,
        "name": info.name,
        "framework_id": framework_id,
        "executor_id": info.executor.as_ref().map(|e| e.executor_id.clone()).unwrap_or_default(),
        "slave_id": info.agent_id,
        "agent_id": info.agent_id,
        "state": state_name(state),
        "resources": resources(&info.resources),
        "role": role.map(|r| role_to_mesos(&r)).unwrap_or_else(|| "*".into()),
        "statuses": statuses,
    })
}

/// Mesos's resource map: scalars summed by name (cpus, mem, disk, gpus always present),
/// ranges as `"[a-b, c-d]"`, sets as `"{x, y}"`.
pub fn resources(rs: &[v1::Resource]) -> Value {
    let mut scalars: BTreeMap<String, u64> = ["cpus", "mem", "disk", "gpus"]
        .iter()
        .map(|n| (n.to_string(), 0))
        .collect();
    let mut ranges: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut sets: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rs {
        match &r.value {
            Some(v1::resource::Value::Scalar(s)) => {
                *scalars.entry(r.name.clone()).or_default() += s.thousandths;
            }
            Some(v1::resource::Value::Ranges(x)) => ranges
                .entry(r.name.clone())
                .or_default()
                .extend(x.range.iter().map(|r| format!("{}-{}", r.begin, r.end))),
            Some(v1::resource::Value::Set(x)) => sets
                .entry(r.name.clone())
                .or_default()
                .extend(x.item.iter().cloned()),
            None => {}
        }
    }
    let mut out = Map::new();
    for (k, v) in scalars {
        out.insert(k, json!(v as f64 / 1000.0));
    }
    for (k, v) in ranges {
        out.insert(k, json!(format!("[{}]", v.join(", "))));
    }
    for (k, v) in sets {
        out.insert(k, json!(format!("{{{}}}", v.join(", "))));
    }
    Value::Object(out)
}

/// Resources reserved per role (Mesos's `reserved_resources`).
pub fn reserved_by_role(rs: &[v1::Resource]) -> Value {
    let mut by: BTreeMap<String, Vec<v1::Resource>> = BTreeMap::new();
    for r in rs {
        if let Some(res) = &r.reservation {
            by.entry(res.role.clone()).or_default().push(r.clone());
        }
    }
    Value::Object(by.into_iter().map(|(k, v)| (k, resources(&v))).collect())
}

pub fn attributes(xs: &[v1::Attribute]) -> Value {
    let mut out = Map::new();
    for x in xs {
        let v = match &x.value {
            Some(v1::attribute::Value::Text(t)) => json!(t),
            Some(v1::attribute::Value::Scalar(s)) => json!(s.thousandths as f64 / 1000.0),
            Some(v1::attribute::Value::Ranges(r)) => json!(format!(
                "[{}]",
                r.range
                    .iter()
                    .map(|r| format!("{}-{}", r.begin, r.end))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Some(v1::attribute::Value::Set(s)) => json!(format!("{{{}}}", s.item.join(", "))),
            None => Value::Null,
        };
        out.insert(x.name.clone(), v);
    }
    Value::Object(out)
}

/// Mesos's `CommandInfo` JSON: `value` + `shell`, `arguments`, `uris`, `environment`.
pub fn command(c: &v1::CommandInfo) -> Value {
    let (value, shell, arguments) = match &c.run {
        Some(v1::command_info::Run::Shell(s)) => (s.clone(), true, Vec::new()),
        Some(v1::command_info::Run::Argv(a)) => (
            a.args.first().cloned().unwrap_or_default(),
            false,
            a.args.clone(),
        ),
        None => (String::new(), true, Vec::new()),
    };
    json!({
        "value": value,
        "shell": shell,
        "arguments": arguments,
        "uris": c.uris.iter().map(|u| json!({"value": u.value})).collect::<Vec<_>>(),
        "environment": {"variables": c.environment.iter()
            .map(|v| json!({"name": v.name, "type": "VALUE", "value": v.value}))
            .collect::<Vec<_>>()},
    })
}

//! Mesos <-> Agora translation of the shared types: ids, roles, resources, attributes,
//! framework descriptions, tasks, executors and task statuses.
//!
//! Owns the mapping only. Mesos's `"*"` role is Agora's default role (`"default"`);
//! scalars are doubles in Mesos and thousandths in Agora (rounded to the nearest); a
//! status update's uuid is 16 bytes in Mesos and its hyphenated text in Agora. What
//! Agora cannot express (reservation refinement, container images) is refused with the
//! field named. It must never decide whether a call is allowed.

pub mod executor;
pub mod scheduler;

use agora_proto::v1 as a;
use uuid::Uuid;

use crate::Refusal;
use crate::json::quote;
use crate::schema::v1 as m;

/// Agora's default role, which Mesos calls `"*"`.
pub const AGORA_DEFAULT_ROLE: &str = "default";
/// Mesos's default role.
pub const MESOS_DEFAULT_ROLE: &str = "*";
/// The Mesos version Agora answers as (`/version`, `MasterInfo.version`): the last
/// release whose v1 API it follows.
pub const MESOS_VERSION: &str = "1.11.0";

/// The Mesos id types: one string `value`.
pub trait Id: Sized {
    fn of(value: &str) -> Self;
    fn text(&self) -> &str;
}

macro_rules! ids {
    ($($t:ident),+) => {$(
        impl Id for m::$t {
            fn of(value: &str) -> Self {
                m::$t { value: Some(value.to_string()) }
            }
            fn text(&self) -> &str {
                self.value.as_deref().unwrap_or("")
            }
        }
    )+};
}
ids!(
    FrameworkId,
    OfferId,
    AgentId,
    TaskId,
    ExecutorId,
    ContainerId
);

/// The text of an optional id ("" when absent).
pub fn text<T: Id>(id: &Option<T>) -> String {
    id.as_ref()
        .map(|i| i.text().to_string())
        .unwrap_or_default()
}

/// An id to send, absent when empty.
pub fn some_id<T: Id>(value: &str) -> Option<T> {
    (!value.is_empty()).then(|| T::of(value))
}

/// A required id: present and not empty, or a 400 naming `field`.
pub fn required<T: Id>(field: &str, id: &Option<T>) -> Result<String, Refusal> {
    match id.as_ref().map(Id::text) {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(Refusal::bad_request(format!("'{field}' is required"))),
    }
}

pub fn role_to_agora(role: &str) -> String {
    if role == MESOS_DEFAULT_ROLE {
        AGORA_DEFAULT_ROLE.to_string()
    } else {
        role.to_string()
    }
}

pub fn role_to_mesos(role: &str) -> String {
    if role == AGORA_DEFAULT_ROLE {
        MESOS_DEFAULT_ROLE.to_string()
    } else {
        role.to_string()
    }
}

/// Agora's uuid text as Mesos's bytes: a UUID's 16 bytes, other text as its bytes.
pub fn uuid_to_mesos(uuid: &str) -> Option<Vec<u8>> {
    if uuid.is_empty() {
        return None;
    }
    Some(match Uuid::parse_str(uuid) {
        Ok(u) => u.as_bytes().to_vec(),
        Err(_) => uuid.as_bytes().to_vec(),
    })
}

/// Mesos's uuid bytes as Agora's text: 16 bytes are a UUID (hyphenated, as Agora writes
/// them); other bytes must be text.
pub fn uuid_to_agora(field: &str, bytes: &[u8]) -> Result<String, Refusal> {
    if let Ok(u) = Uuid::from_slice(bytes) {
        return Ok(u.hyphenated().to_string());
    }
    String::from_utf8(bytes.to_vec())
        .ok()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Refusal::bad_request(format!("'{field}' is not a valid UUID")))
}

fn seconds_of(d: &Option<m::DurationInfo>) -> Option<f64> {
    d.as_ref()
        .and_then(|d| d.nanoseconds)
        .map(|ns| ns as f64 / 1e9)
}

fn duration_of(seconds: f64) -> m::DurationInfo {
    m::DurationInfo {
        nanoseconds: Some((seconds * 1e9).round() as i64),
    }
}

fn labels_to_agora(l: &Option<m::Labels>) -> Vec<a::Label> {
    l.iter()
        .flat_map(|l| &l.labels)
        .map(|l| a::Label {
            key: l.key.clone().unwrap_or_default(),
            value: l.value.clone().unwrap_or_default(),
        })
        .collect()
}

fn labels_to_mesos(l: &[a::Label]) -> Option<m::Labels> {
    (!l.is_empty()).then(|| m::Labels {
        labels: l
            .iter()
            .map(|l| m::Label {
                key: Some(l.key.clone()),
                value: Some(l.value.clone()),
            })
            .collect(),
    })
}

fn thousandths(field: &str, v: f64) -> Result<u64, Refusal> {
    if !v.is_finite() || v < 0.0 || v > (u64::MAX / 1000) as f64 {
        return Err(Refusal::bad_request(format!(
            "'{field}' must be a finite, non-negative number, not {v}"
        )));
    }
    Ok((v * 1000.0).round() as u64)
}

fn scalar_of(t: u64) -> m::Scalar {
    m::Scalar {
        value: Some(t as f64 / 1000.0),
    }
}

fn ranges_to_mesos(r: &a::Ranges) -> m::Ranges {
    m::Ranges {
        range: r
            .range
            .iter()
            .map(|r| m::Range {
                begin: Some(r.begin),
                end: Some(r.end),
            })
            .collect(),
    }
}

fn ranges_to_agora(r: &m::Ranges) -> a::Ranges {
    a::Ranges {
        range: r
            .range
            .iter()
            .map(|r| a::Range {
                begin: r.begin.unwrap_or(0),
                end: r.end.unwrap_or(0),
            })
            .collect(),
    }
}

/// An Agora resource in Mesos's form; `allocated_to` is the role of the offer or task it
/// belongs to (Mesos's `allocation_info`).
pub fn resource_to_mesos(r: &a::Resource, allocated_to: Option<&str>) -> m::Resource {
    let mut out = m::Resource {
        name: Some(r.name.clone()),
        ..Default::default()
    };
    match &r.value {
        Some(a::resource::Value::Scalar(s)) => {
            out.r#type = m::ValueType::SCALAR.n();
            out.scalar = Some(scalar_of(s.thousandths));
        }
        Some(a::resource::Value::Ranges(rs)) => {
            out.r#type = m::ValueType::RANGES.n();
            out.ranges = Some(ranges_to_mesos(rs));
        }
        Some(a::resource::Value::Set(s)) => {
            out.r#type = m::ValueType::SET.n();
            out.set = Some(m::ValueSet {
                item: s.item.clone(),
            });
        }
        None => {}
    }
    match &r.reservation {
        None => out.role = Some(MESOS_DEFAULT_ROLE.to_string()),
        Some(res) => {
            let dynamic = res.r#type == a::reservation::Type::Dynamic as i32;
            out.role = Some(res.role.clone());
            if dynamic {
                out.reservation = Some(m::ReservationInfo {
                    principal: (!res.principal.is_empty()).then(|| res.principal.clone()),
                    labels: labels_to_mesos(&res.labels),
                    ..Default::default()
                });
            }
            out.reservations = vec![m::ReservationInfo {
                r#type: if dynamic {
                    m::ReservationType::DYNAMIC.n()
                } else {
                    m::ReservationType::STATIC.n()
                },
                role: Some(res.role.clone()),
                principal: (!res.principal.is_empty()).then(|| res.principal.clone()),
                labels: labels_to_mesos(&res.labels),
            }];
        }
    }
    if r.revocable {
        out.revocable = Some(m::RevocableInfo {});
    }
    if let Some(d) = &r.disk {
        out.disk = Some(m::DiskInfo {
            persistence: (!d.persistence_id.is_empty()).then(|| m::Persistence {
                id: Some(d.persistence_id.clone()),
                principal: (!d.principal.is_empty()).then(|| d.principal.clone()),
            }),
            volume: (!d.container_path.is_empty()).then(|| m::Volume {
                container_path: Some(d.container_path.clone()),
                host_path: None,
                mode: if d.read_only {
                    m::VolumeMode::RO.n()
                } else {
                    m::VolumeMode::RW.n()
                },
            }),
        });
    }
    if let Some(role) = allocated_to {
        out.allocation_info = Some(m::AllocationInfo {
            role: Some(role_to_mesos(role)),
        });
    }
    out
}

/// A Mesos resource in Agora's form.
pub fn resource_to_agora(field: &str, r: &m::Resource) -> Result<a::Resource, Refusal> {
    let name = r.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err(Refusal::bad_request(format!("'{field}.name' is required")));
    }
    let kind = r.r#type.unwrap_or(m::ValueType::SCALAR as i32);
    let value = if kind == m::ValueType::SCALAR as i32 {
        let v = r.scalar.as_ref().and_then(|s| s.value).ok_or_else(|| {
            Refusal::bad_request(format!("'{field}' of type SCALAR has no 'scalar.value'"))
        })?;
        a::resource::Value::Scalar(a::Scalar {
            thousandths: thousandths(&format!("{field}.scalar.value"), v)?,
        })
    } else if kind == m::ValueType::RANGES as i32 {
        a::resource::Value::Ranges(ranges_to_agora(r.ranges.as_ref().ok_or_else(|| {
            Refusal::bad_request(format!("'{field}' of type RANGES has no 'ranges'"))
        })?))
    } else if kind == m::ValueType::SET as i32 {
        a::resource::Value::Set(a::Set {
            item: r.set.as_ref().map(|s| s.item.clone()).unwrap_or_default(),
        })
    } else {
        return Err(Refusal::bad_request(format!(
            "'{field}.type' must be SCALAR, RANGES or SET"
        )));
    };
    let reservation = if r.reservations.len() > 1 {
        return Err(Refusal::bad_request(format!(
            "'{field}.reservations' refines a reservation; Agora supports one reservation per resource"
        )));
    } else if let Some(res) = r.reservations.first() {
        let dynamic = res.r#type == m::ReservationType::DYNAMIC.n();
        Some(a::Reservation {
            r#type: if dynamic {
                a::reservation::Type::Dynamic as i32
            } else {
                a::reservation::Type::Static as i32
            },
            role: res.role.clone().unwrap_or_default(),
            principal: res.principal.clone().unwrap_or_default(),
            labels: labels_to_agora(&res.labels),
        })
    } else {
        match r.role.as_deref() {
            None | Some(MESOS_DEFAULT_ROLE) => None,
            Some(role) => Some(a::Reservation {
                r#type: if r.reservation.is_some() {
                    a::reservation::Type::Dynamic as i32
                } else {
                    a::reservation::Type::Static as i32
                },
                role: role.to_string(),
                principal: r
                    .reservation
                    .as_ref()
                    .and_then(|x| x.principal.clone())
                    .unwrap_or_default(),
                labels: r
                    .reservation
                    .as_ref()
                    .map(|x| labels_to_agora(&x.labels))
                    .unwrap_or_default(),
            }),
        }
    };
    let disk = r.disk.as_ref().map(|d| a::DiskInfo {
        persistence_id: d
            .persistence
            .as_ref()
            .and_then(|p| p.id.clone())
            .unwrap_or_default(),
        principal: d
            .persistence
            .as_ref()
            .and_then(|p| p.principal.clone())
            .unwrap_or_default(),
        container_path: d
            .volume
            .as_ref()
            .and_then(|v| v.container_path.clone())
            .unwrap_or_default(),
        read_only: d
            .volume
            .as_ref()
            .is_some_and(|v| v.mode == m::VolumeMode::RO.n()),
    });
    Ok(a::Resource {
        name,
        value: Some(value),
        reservation,
        revocable: r.revocable.is_some(),
        disk,
    })
}

pub fn resources_to_agora(field: &str, rs: &[m::Resource]) -> Result<Vec<a::Resource>, Refusal> {
    rs.iter()
        .enumerate()
        .map(|(i, r)| resource_to_agora(&format!("{field}[{i}]"), r))
        .collect()
}

pub fn resources_to_mesos(rs: &[a::Resource], allocated_to: Option<&str>) -> Vec<m::Resource> {
    rs.iter()
        .map(|r| resource_to_mesos(r, allocated_to))
        .collect()
}

pub fn attribute_to_mesos(x: &a::Attribute) -> m::Attribute {
    let mut out = m::Attribute {
        name: Some(x.name.clone()),
        ..Default::default()
    };
    match &x.value {
        Some(a::attribute::Value::Text(t)) => {
            out.r#type = m::ValueType::TEXT.n();
            out.text = Some(m::Text {
                value: Some(t.clone()),
            });
        }
        Some(a::attribute::Value::Scalar(s)) => {
            out.r#type = m::ValueType::SCALAR.n();
            out.scalar = Some(scalar_of(s.thousandths));
        }
        Some(a::attribute::Value::Ranges(r)) => {
            out.r#type = m::ValueType::RANGES.n();
            out.ranges = Some(ranges_to_mesos(r));
        }
        Some(a::attribute::Value::Set(s)) => {
            out.r#type = m::ValueType::SET.n();
            out.set = Some(m::ValueSet {
                item: s.item.clone(),
            });
        }
        None => {}
    }
    out
}

const CAPABILITIES: [(m::CapabilityType, a::FrameworkCapability); 5] = [
    (
        m::CapabilityType::REVOCABLE_RESOURCES,
        a::FrameworkCapability::RevocableResources,
    ),
    (
        m::CapabilityType::GPU_RESOURCES,
        a::FrameworkCapability::GpuResources,
    ),
    (
        m::CapabilityType::PARTITION_AWARE,
        a::FrameworkCapability::PartitionAware,
    ),
    (
        m::CapabilityType::TASK_KILLING_STATE,
        a::FrameworkCapability::TaskKillingState,
    ),
    (
        m::CapabilityType::RESERVATION_REFINEMENT,
        a::FrameworkCapability::ReservationRefinement,
    ),
];

/// A Mesos framework description in Agora's form. Mesos's single `role` is used when
/// `roles` is empty; `"*"` is Agora's default role. Capabilities Agora has no use for
/// (MULTI_ROLE: every Agora framework may have several roles; SHARED_RESOURCES;
/// REGION_AWARE) are dropped.
pub fn framework_info_to_agora(f: &m::FrameworkInfo) -> a::FrameworkInfo {
    let roles: Vec<String> = if f.roles.is_empty() {
        f.role.iter().cloned().collect()
    } else {
        f.roles.clone()
    };
    let roles = roles
        .iter()
        .filter(|r| r.as_str() != MESOS_DEFAULT_ROLE)
        .cloned()
        .collect();
    a::FrameworkInfo {
        id: text(&f.id),
        name: f.name.clone().unwrap_or_default(),
        roles,
        principal: f.principal.clone().unwrap_or_default(),
        user: f.user.clone().unwrap_or_default(),
        capabilities: f
            .capabilities
            .iter()
            .filter_map(|c| {
                CAPABILITIES
                    .iter()
                    .find(|(mc, _)| c.r#type == Some(*mc as i32))
                    .map(|(_, ac)| *ac as i32)
            })
            .collect(),
        failover_timeout_seconds: f.failover_timeout.unwrap_or(0.0),
        checkpoint: f.checkpoint.unwrap_or(false),
        hostname: f.hostname.clone().unwrap_or_default(),
        webui_url: f.webui_url.clone().unwrap_or_default(),
        labels: labels_to_agora(&f.labels),
        ..Default::default()
    }
}

pub fn framework_info_to_mesos(f: &a::FrameworkInfo) -> m::FrameworkInfo {
    let roles: Vec<String> = f.roles.iter().map(|r| role_to_mesos(r)).collect();
    let mut capabilities: Vec<m::Capability> = f
        .capabilities
        .iter()
        .filter_map(|c| {
            CAPABILITIES
                .iter()
                .find(|(_, ac)| *ac as i32 == *c)
                .map(|(mc, _)| m::Capability { r#type: mc.n() })
        })
        .collect();
    capabilities.push(m::Capability {
        r#type: m::CapabilityType::MULTI_ROLE.n(),
    });
    m::FrameworkInfo {
        user: Some(f.user.clone()),
        name: Some(f.name.clone()),
        id: some_id(&f.id),
        failover_timeout: Some(f.failover_timeout_seconds),
        checkpoint: Some(f.checkpoint),
        role: None,
        roles,
        hostname: (!f.hostname.is_empty()).then(|| f.hostname.clone()),
        principal: (!f.principal.is_empty()).then(|| f.principal.clone()),
        webui_url: (!f.webui_url.is_empty()).then(|| f.webui_url.clone()),
        capabilities,
        labels: labels_to_mesos(&f.labels),
    }
}

fn command_to_agora(field: &str, c: &m::CommandInfo) -> Result<a::CommandInfo, Refusal> {
    let value = c.value.clone().unwrap_or_default();
    let run = if c.shell.unwrap_or(true) {
        if value.is_empty() {
            return Err(Refusal::bad_request(format!(
                "'{field}.value' is required for a shell command"
            )));
        }
        a::command_info::Run::Shell(value)
    } else {
        // Mesos runs `value` with argv `arguments` (argv[0] included); Agora's argv[0] is
        // the program.
        let mut args = c.arguments.clone();
        match (value.is_empty(), args.is_empty()) {
            (true, true) => {
                return Err(Refusal::bad_request(format!(
                    "'{field}' has neither 'value' nor 'arguments'"
                )));
            }
            (false, true) => args.push(value),
            (false, false) => args[0] = value,
            (true, false) => {}
        }
        a::command_info::Run::Argv(a::command_info::Argv { args })
    };
    Ok(a::CommandInfo {
        run: Some(run),
        environment: c
            .environment
            .iter()
            .flat_map(|e| &e.variables)
            .map(|v| a::EnvironmentVariable {
                name: v.name.clone().unwrap_or_default(),
                value: v.value.clone().unwrap_or_default(),
            })
            .collect(),
        uris: c
            .uris
            .iter()
            .map(|u| a::Uri {
                value: u.value.clone().unwrap_or_default(),
                executable: u.executable.unwrap_or(false),
                extract: u.extract.unwrap_or(true),
                cache: u.cache.unwrap_or(false),
                output_file: u.output_file.clone().unwrap_or_default(),
            })
            .collect(),
        user: c.user.clone().unwrap_or_default(),
    })
}

fn command_to_mesos(c: &a::CommandInfo) -> m::CommandInfo {
    let mut out = m::CommandInfo {
        user: (!c.user.is_empty()).then(|| c.user.clone()),
        environment: (!c.environment.is_empty()).then(|| m::Environment {
            variables: c
                .environment
                .iter()
                .map(|v| m::Variable {
                    name: Some(v.name.clone()),
                    value: Some(v.value.clone()),
                })
                .collect(),
        }),
        uris: c
            .uris
            .iter()
            .map(|u| m::Uri {
                value: Some(u.value.clone()),
                executable: Some(u.executable),
                extract: Some(u.extract),
                cache: Some(u.cache),
                output_file: (!u.output_file.is_empty()).then(|| u.output_file.clone()),
            })
            .collect(),
        ..Default::default()
    };
    match &c.run {
        Some(a::command_info::Run::Shell(s)) => {
            out.shell = Some(true);
            out.value = Some(s.clone());
        }
        Some(a::command_info::Run::Argv(argv)) => {
            out.shell = Some(false);
            out.value = argv.args.first().cloned();
            out.arguments = argv.args.clone();
        }
        None => {}
    }
    out
}

fn refuse_images(field: &str, c: &Option<m::ContainerInfo>) -> Result<(), Refusal> {
    if let Some(c) = c
        && (c.docker.is_some() || c.mesos.as_ref().is_some_and(|m| m.image.is_some()))
    {
        return Err(Refusal::bad_request(format!(
            "'{field}' asks for a container image; Agora runs commands in the host's file system only"
        )));
    }
    Ok(())
}

pub fn executor_to_agora(field: &str, e: &m::ExecutorInfo) -> Result<a::ExecutorInfo, Refusal> {
    refuse_images(&format!("{field}.container"), &e.container)?;
    let default = e.r#type == m::ExecutorType::DEFAULT.n();
    let command = match (&e.command, default) {
        (Some(c), false) => Some(command_to_agora(&format!("{field}.command"), c)?),
        (None, false) => {
            return Err(Refusal::bad_request(format!(
                "'{field}.command' is required for a CUSTOM executor"
            )));
        }
        (_, true) => None,
    };
    Ok(a::ExecutorInfo {
        executor_id: required(&format!("{field}.executor_id"), &e.executor_id)?,
        framework_id: text(&e.framework_id),
        name: e.name.clone().unwrap_or_default(),
        command,
        resources: resources_to_agora(&format!("{field}.resources"), &e.resources)?,
    })
}

pub fn executor_to_mesos(e: &a::ExecutorInfo) -> m::ExecutorInfo {
    m::ExecutorInfo {
        r#type: if e.command.is_some() {
            m::ExecutorType::CUSTOM.n()
        } else {
            m::ExecutorType::DEFAULT.n()
        },
        executor_id: some_id(&e.executor_id),
        framework_id: some_id(&e.framework_id),
        command: e.command.as_ref().map(command_to_mesos),
        resources: resources_to_mesos(&e.resources, None),
        name: (!e.name.is_empty()).then(|| e.name.clone()),
        ..Default::default()
    }
}

fn health_check_to_agora(field: &str, h: &m::HealthCheck) -> Result<a::HealthCheck, Refusal> {
    let kind = h.r#type.unwrap_or(0);
    let mut out = a::HealthCheck {
        delay_seconds: h.delay_seconds.unwrap_or(15.0),
        interval_seconds: h.interval_seconds.unwrap_or(10.0),
        timeout_seconds: h.timeout_seconds.unwrap_or(20.0),
        consecutive_failures: h.consecutive_failures.unwrap_or(3),
        grace_period_seconds: h.grace_period_seconds.unwrap_or(10.0),
        ..Default::default()
    };
    if kind == m::HealthCheckType::COMMAND as i32 {
        out.r#type = a::health_check::Type::Command as i32;
        let c = h.command.as_ref().ok_or_else(|| {
            Refusal::bad_request(format!("'{field}.command' is required for COMMAND"))
        })?;
        out.command = Some(command_to_agora(&format!("{field}.command"), c)?);
    } else if kind == m::HealthCheckType::HTTP as i32 {
        out.r#type = a::health_check::Type::Http as i32;
        let x = h
            .http
            .as_ref()
            .ok_or_else(|| Refusal::bad_request(format!("'{field}.http' is required for HTTP")))?;
        out.port = x.port.unwrap_or(0);
        out.path = x.path.clone().unwrap_or_default();
    } else if kind == m::HealthCheckType::TCP as i32 {
        out.r#type = a::health_check::Type::Tcp as i32;
        out.port = h.tcp.as_ref().and_then(|t| t.port).unwrap_or(0);
    } else {
        return Err(Refusal::bad_request(format!(
            "'{field}.type' must be COMMAND, HTTP or TCP"
        )));
    }
    Ok(out)
}

pub fn task_to_agora(field: &str, t: &m::TaskInfo) -> Result<a::TaskInfo, Refusal> {
    refuse_images(&format!("{field}.container"), &t.container)?;
    Ok(a::TaskInfo {
        name: t.name.clone().unwrap_or_default(),
        task_id: required(&format!("{field}.task_id"), &t.task_id)?,
        agent_id: text(&t.agent_id),
        // The master sets it from the accepted offers' role.
        role: String::new(),
        resources: resources_to_agora(&format!("{field}.resources"), &t.resources)?,
        command: t
            .command
            .as_ref()
            .map(|c| command_to_agora(&format!("{field}.command"), c))
            .transpose()?,
        executor: t
            .executor
            .as_ref()
            .map(|e| executor_to_agora(&format!("{field}.executor"), e))
            .transpose()?,
        labels: labels_to_agora(&t.labels),
        health_check: t
            .health_check
            .as_ref()
            .map(|h| health_check_to_agora(&format!("{field}.health_check"), h))
            .transpose()?,
        kill_policy: seconds_of(&t.kill_policy.as_ref().and_then(|k| k.grace_period.clone())).map(
            |s| a::KillPolicy {
                grace_period_seconds: s,
            },
        ),
        data: t.data.clone().unwrap_or_default(),
    })
}

pub fn task_to_mesos(t: &a::TaskInfo) -> m::TaskInfo {
    m::TaskInfo {
        name: Some(t.name.clone()),
        task_id: some_id(&t.task_id),
        agent_id: some_id(&t.agent_id),
        resources: resources_to_mesos(&t.resources, None),
        executor: t.executor.as_ref().map(executor_to_mesos),
        command: t.command.as_ref().map(command_to_mesos),
        kill_policy: t.kill_policy.as_ref().map(|k| m::KillPolicy {
            grace_period: Some(duration_of(k.grace_period_seconds)),
        }),
        data: (!t.data.is_empty()).then(|| t.data.clone()),
        labels: labels_to_mesos(&t.labels),
        ..Default::default()
    }
}

const STATES: [(a::TaskState, m::TaskState); 14] = [
    (a::TaskState::Staging, m::TaskState::TASK_STAGING),
    (a::TaskState::Starting, m::TaskState::TASK_STARTING),
    (a::TaskState::Running, m::TaskState::TASK_RUNNING),
    (a::TaskState::Killing, m::TaskState::TASK_KILLING),
    (a::TaskState::Finished, m::TaskState::TASK_FINISHED),
    (a::TaskState::Failed, m::TaskState::TASK_FAILED),
    (a::TaskState::Killed, m::TaskState::TASK_KILLED),
    (a::TaskState::Error, m::TaskState::TASK_ERROR),
    (a::TaskState::Lost, m::TaskState::TASK_LOST),
    (a::TaskState::Dropped, m::TaskState::TASK_DROPPED),
    (a::TaskState::Unreachable, m::TaskState::TASK_UNREACHABLE),
    (a::TaskState::Gone, m::TaskState::TASK_GONE),
    (
        a::TaskState::GoneByOperator,
        m::TaskState::TASK_GONE_BY_OPERATOR,
    ),
    (a::TaskState::Unknown, m::TaskState::TASK_UNKNOWN),
];

pub fn state_to_mesos(s: i32) -> m::TaskState {
    STATES
        .iter()
        .find(|(x, _)| *x as i32 == s)
        .map(|(_, y)| *y)
        .unwrap_or(m::TaskState::TASK_UNKNOWN)
}

pub fn state_to_agora(s: i32) -> Option<a::TaskState> {
    STATES.iter().find(|(_, y)| *y as i32 == s).map(|(x, _)| *x)
}

/// The Mesos name of an Agora state ("TASK_RUNNING").
pub fn state_name(s: i32) -> &'static str {
    use crate::json::MesosEnum;
    m::TaskState::name_of(state_to_mesos(s) as i32).unwrap_or("TASK_UNKNOWN")
}

const REASONS: [(a::StatusReason, m::TaskStatusReason); 20] = [
    (
        a::StatusReason::CommandExited,
        m::TaskStatusReason::REASON_COMMAND_EXECUTOR_FAILED,
    ),
    (
        a::StatusReason::CommandSignaled,
        m::TaskStatusReason::REASON_COMMAND_EXECUTOR_FAILED,
    ),
    (
        a::StatusReason::InvalidOffers,
        m::TaskStatusReason::REASON_INVALID_OFFERS,
    ),
    (
        a::StatusReason::TaskInvalid,
        m::TaskStatusReason::REASON_TASK_INVALID,
    ),
    (
        a::StatusReason::AgentRemoved,
        m::TaskStatusReason::REASON_AGENT_REMOVED,
    ),
    (
        a::StatusReason::AgentUnreachable,
        m::TaskStatusReason::REASON_AGENT_DISCONNECTED,
    ),
    (
        a::StatusReason::AgentRestarted,
        m::TaskStatusReason::REASON_AGENT_RESTARTED,
    ),
    (
        a::StatusReason::AgentDisconnected,
        m::TaskStatusReason::REASON_AGENT_DISCONNECTED,
    ),
    (
        a::StatusReason::ExecutorTerminated,
        m::TaskStatusReason::REASON_EXECUTOR_TERMINATED,
    ),
    (
        a::StatusReason::ContainerLaunchFailed,
        m::TaskStatusReason::REASON_CONTAINER_LAUNCH_FAILED,
    ),
    (
        a::StatusReason::ContainerLimitationMemory,
        m::TaskStatusReason::REASON_CONTAINER_LIMITATION_MEMORY,
    ),
    (
        a::StatusReason::ContainerLimitationDisk,
        m::TaskStatusReason::REASON_CONTAINER_LIMITATION_DISK,
    ),
    (
        a::StatusReason::ContainerLimitationPids,
        m::TaskStatusReason::REASON_CONTAINER_LIMITATION,
    ),
    (
        a::StatusReason::FetchFailed,
        m::TaskStatusReason::REASON_CONTAINER_LAUNCH_FAILED,
    ),
    (
        a::StatusReason::FrameworkRemoved,
        m::TaskStatusReason::REASON_FRAMEWORK_REMOVED,
    ),
    (
        a::StatusReason::Reconciliation,
        m::TaskStatusReason::REASON_RECONCILIATION,
    ),
    (
        a::StatusReason::TaskUnknown,
        m::TaskStatusReason::REASON_TASK_UNKNOWN,
    ),
    (
        a::StatusReason::HealthCheckFailed,
        m::TaskStatusReason::REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
    ),
    (
        a::StatusReason::SandboxFailed,
        m::TaskStatusReason::REASON_CONTAINER_LAUNCH_FAILED,
    ),
    (
        a::StatusReason::ResourcesRevoked,
        m::TaskStatusReason::REASON_CONTAINER_PREEMPTED,
    ),
];

fn reason_to_mesos(r: i32) -> Option<i32> {
    REASONS
        .iter()
        .find(|(x, _)| *x as i32 == r)
        .map(|(_, y)| *y as i32)
}

fn reason_to_agora(r: i32) -> i32 {
    REASONS
        .iter()
        .find(|(_, y)| *y as i32 == r)
        .map(|(x, _)| *x as i32)
        .unwrap_or(0)
}

const SOURCES: [(a::StatusSource, m::TaskStatusSource); 3] = [
    (
        a::StatusSource::SourceMaster,
        m::TaskStatusSource::SOURCE_MASTER,
    ),
    (
        a::StatusSource::SourceAgent,
        m::TaskStatusSource::SOURCE_AGENT,
    ),
    (
        a::StatusSource::SourceExecutor,
        m::TaskStatusSource::SOURCE_EXECUTOR,
    ),
];

pub fn status_to_mesos(s: &a::TaskStatus) -> m::TaskStatus {
    m::TaskStatus {
        task_id: some_id(&s.task_id),
        state: Some(state_to_mesos(s.state) as i32),
        message: (!s.message.is_empty()).then(|| s.message.clone()),
        source: SOURCES
            .iter()
            .find(|(x, _)| *x as i32 == s.source)
            .map(|(_, y)| *y as i32),
        reason: reason_to_mesos(s.reason),
        data: (!s.data.is_empty()).then(|| s.data.clone()),
        agent_id: some_id(&s.agent_id),
        executor_id: some_id(&s.executor_id),
        timestamp: Some(s.timestamp_ms as f64 / 1000.0),
        uuid: uuid_to_mesos(&s.uuid),
        healthy: s.healthy,
        ..Default::default()
    }
}

/// An executor's status update in Agora's form. The uuid is required (an executor's
/// updates are all acknowledged) and the state must be one Agora knows.
pub fn status_to_agora(field: &str, s: &m::TaskStatus) -> Result<a::TaskStatus, Refusal> {
    let state = s
        .state
        .and_then(state_to_agora)
        .ok_or_else(|| Refusal::bad_request(format!("'{field}.state' is required")))?;
    let uuid = match &s.uuid {
        Some(u) => uuid_to_agora(&format!("{field}.uuid"), u)?,
        None => return Err(Refusal::bad_request(format!("'{field}.uuid' is required"))),
    };
    Ok(a::TaskStatus {
        task_id: required(&format!("{field}.task_id"), &s.task_id)?,
        framework_id: String::new(),
        agent_id: text(&s.agent_id),
        executor_id: text(&s.executor_id),
        state: state as i32,
        reason: s.reason.map(reason_to_agora).unwrap_or(0),
        message: s.message.clone().unwrap_or_default(),
        source: SOURCES
            .iter()
            .find(|(_, y)| Some(*y as i32) == s.source)
            .map(|(x, _)| *x as i32)
            .unwrap_or(a::StatusSource::SourceExecutor as i32),
        timestamp_ms: s.timestamp.map(|t| (t * 1000.0) as i64).unwrap_or(0),
        uuid,
        exit_code: None,
        healthy: s.healthy,
        data: s.data.clone().unwrap_or_default(),
    })
}

/// An agent's description in Mesos's form.
pub fn agent_info_to_mesos(x: &a::AgentInfo) -> m::AgentInfo {
    let port = x.address.rsplit(':').next().and_then(|p| p.parse().ok());
    m::AgentInfo {
        hostname: Some(x.hostname.clone()),
        port,
        resources: resources_to_mesos(&x.resources, None),
        attributes: x.attributes.iter().map(attribute_to_mesos).collect(),
        id: some_id(&x.id),
    }
}

/// Quote `input` for a refusal.
pub fn q(input: &str) -> String {
    quote(input)
}

#[cfg(test)]
mod tests;

//! Edge validation of everything frameworks, agents and operators send: ids, roles,
//! framework info, task descriptions, resources, filters. Each check answers with a
//! precise, lowercase message naming the offending field and quoting at most a short,
//! escaped prefix of the value (`service::quote`).
//!
//! The limits are those of every component a name reaches, so the master never accepts
//! what an agent cannot apply: ids, role segments and volume ids become file names on
//! agents (at most `NAME_MAX_BYTES`), task and executor ids also name checkpoint files
//! (`<id>.pb`, hence `FILE_ID_MAX_BYTES`).
//!
//! Pure functions only; they never look at master state (the actor checks existence and
//! ownership) and never panic on any input.

use std::collections::BTreeSet;

use crate::service::Error;
use agora_proto::v1::{self, CommandInfo, FrameworkCapability, FrameworkInfo, TaskInfo};
use agora_resources::{Resources, validate_role};

use crate::service::quote;

/// Longest id or name accepted, in bytes.
pub const MAX_ID_BYTES: usize = 255;
/// Longest file name on the agents' file systems (Linux NAME_MAX), in bytes.
pub const NAME_MAX_BYTES: usize = 255;
/// Longest task or executor id, in bytes: the agent checkpoints each in a file named
/// `<id>.pb`.
pub const FILE_ID_MAX_BYTES: usize = NAME_MAX_BYTES - ".pb".len();
/// Longest role, in bytes: its segments are nested directories of a volume's path on the
/// agent (`<work-dir>/volumes/roles/<role>/<persistence id>`), which must stay well under
/// PATH_MAX (4096).
pub const ROLE_MAX_BYTES: usize = 1024;
/// Longest volume container path, in bytes (a path under the task's sandbox).
pub const CONTAINER_PATH_MAX_BYTES: usize = 1024;

/// Role used when a framework names none.
pub const DEFAULT_ROLE: &str = "default";

/// Ids are used as path segments on agents: no '/', no control characters or whitespace,
/// not "." or "..", at most 255 bytes.
pub fn id(kind: &str, value: &str) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid_argument(format!("{kind} is empty")));
    }
    if value.len() > MAX_ID_BYTES {
        return Err(Error::invalid_argument(format!(
            "{kind} '{}' is longer than {MAX_ID_BYTES} bytes",
            quote(value)
        )));
    }
    // The common case, checked a byte at a time: printable ASCII without '/'. Ids are
    // checked several times per status update, and the per-character Unicode tests below
    // showed in the master's profile.
    if value.bytes().all(|b| b.is_ascii_graphic() && b != b'/') && value != "." && value != ".." {
        return Ok(());
    }
    if value == "." || value == ".." {
        return Err(Error::invalid_argument(format!(
            "{kind} '{value}' is not allowed"
        )));
    }
    if let Some(c) = value
        .chars()
        .find(|c| *c == '/' || c.is_control() || c.is_whitespace())
    {
        return Err(Error::invalid_argument(format!(
            "{kind} '{}' contains the forbidden character {c:?}",
            quote(value)
        )));
    }
    Ok(())
}

/// An id that also names a checkpoint file on the agent (`<id>.pb`): task and executor
/// ids.
pub fn file_id(kind: &str, value: &str) -> Result<(), Error> {
    id(kind, value)?;
    if value.len() > FILE_ID_MAX_BYTES {
        return Err(Error::invalid_argument(format!(
            "{kind} '{}' is longer than {FILE_ID_MAX_BYTES} bytes (the agent stores it in a \
             file named after it)",
            quote(value)
        )));
    }
    Ok(())
}

/// A role: the grammar of `agora_resources::validate_role`, plus the limits of the
/// agents' file systems (each segment a directory name of at most `NAME_MAX_BYTES`, the
/// whole at most `ROLE_MAX_BYTES`). Lengths are checked first, so an oversized role is
/// never copied whole into a message.
pub fn role(field: &str, role: &str) -> Result<(), Error> {
    if role.len() > ROLE_MAX_BYTES {
        return Err(Error::invalid_argument(format!(
            "{field} '{}' is longer than {ROLE_MAX_BYTES} bytes",
            quote(role)
        )));
    }
    if let Some(seg) = role.split('/').find(|s| s.len() > NAME_MAX_BYTES) {
        return Err(Error::invalid_argument(format!(
            "{field} '{}' has a segment of {} bytes ('{}'); at most {NAME_MAX_BYTES} (it \
             becomes a directory name on agents)",
            quote(role),
            seg.len(),
            quote(seg)
        )));
    }
    validate_role(role).map_err(|e| {
        let reason = match e {
            agora_resources::ResourceError::InvalidRole { reason, .. } => reason,
            other => other.to_string(),
        };
        Error::invalid_argument(format!("{field} '{}' is invalid: {reason}", quote(role)))
    })
}

/// The names in resources that reach agents' file systems: each reservation's role and
/// each volume's persistence id and container path. `what` names the resources for the
/// message. The rest of their validation is `Resources::from_proto`'s.
pub fn resource_limits(what: &str, resources: &[v1::Resource]) -> Result<(), Error> {
    for (i, r) in resources.iter().enumerate() {
        if let Some(res) = &r.reservation
            && !res.role.is_empty()
        {
            role(&format!("{what}[{i}] reservation role"), &res.role)?;
        }
        if let Some(d) = &r.disk {
            if d.persistence_id.len() > NAME_MAX_BYTES {
                return Err(Error::invalid_argument(format!(
                    "{what}[{i}] volume persistence id '{}' is longer than {NAME_MAX_BYTES} \
                     bytes (it becomes a directory name on the agent)",
                    quote(&d.persistence_id)
                )));
            }
            let path = &d.container_path;
            let long_segment = path.split('/').any(|s| s.len() > NAME_MAX_BYTES);
            if path.len() > CONTAINER_PATH_MAX_BYTES || long_segment {
                return Err(Error::invalid_argument(format!(
                    "{what}[{i}] volume container path '{}' is longer than \
                     {CONTAINER_PATH_MAX_BYTES} bytes or has a segment longer than \
                     {NAME_MAX_BYTES}",
                    quote(path)
                )));
            }
        }
    }
    Ok(())
}

/// The limits of `resource_limits` on every operation of an ACCEPT that names resources
/// (the tasks of LAUNCH are checked with the rest of each task by the actor).
pub fn accept_limits(r: &v1::AcceptRequest) -> Result<(), Error> {
    use v1::operation::Operation as Op;
    for (i, op) in r.operations.iter().enumerate() {
        let (name, resources) = match &op.operation {
            Some(Op::Reserve(x)) => ("RESERVE", &x.resources),
            Some(Op::Unreserve(x)) => ("UNRESERVE", &x.resources),
            Some(Op::Create(x)) => ("CREATE", &x.volumes),
            Some(Op::Destroy(x)) => ("DESTROY", &x.volumes),
            _ => continue,
        };
        resource_limits(&format!("operations[{i}] {name}"), resources)?;
    }
    Ok(())
}

/// A finite, non-negative number of seconds.
pub fn seconds(field: &str, value: f64) -> Result<f64, Error> {
    if !value.is_finite() || value < 0.0 {
        return Err(Error::invalid_argument(format!(
            "{field} must be a finite number >= 0, got {value}"
        )));
    }
    Ok(value)
}

/// Checks a framework's description and fills defaults (role). Returns the roles.
pub fn framework_info(info: &mut FrameworkInfo) -> Result<(), Error> {
    if info.name.trim().is_empty() {
        return Err(Error::invalid_argument("framework name is empty"));
    }
    if info.name.len() > MAX_ID_BYTES {
        return Err(Error::invalid_argument(format!(
            "framework name is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if !info.id.is_empty() {
        id("framework id", &info.id)?;
    }
    if info.roles.is_empty() {
        info.roles.push(DEFAULT_ROLE.to_string());
    }
    let mut seen = BTreeSet::new();
    for role in &info.roles {
        self::role("framework role", role)?;
        if !seen.insert(role.as_str()) {
            return Err(Error::invalid_argument(format!(
                "framework role '{}' is listed twice",
                quote(role)
            )));
        }
    }
    seconds(
        "framework failover_timeout_seconds",
        info.failover_timeout_seconds,
    )?;
    for cap in &info.capabilities {
        match FrameworkCapability::try_from(*cap) {
            Ok(FrameworkCapability::Unspecified) | Err(_) => {
                return Err(Error::invalid_argument(format!(
                    "unknown framework capability {cap}"
                )));
            }
            Ok(_) => {}
        }
    }
    for (i, d) in info.demands.iter().enumerate() {
        if !info.roles.contains(&d.role) {
            return Err(Error::invalid_argument(format!(
                "framework demands[{i}] names role '{}' which the framework does not hold",
                quote(&d.role)
            )));
        }
        let shape = Resources::from_proto(&d.task_shape)
            .map_err(|e| Error::invalid_argument(format!("framework demands[{i}]: {e}")))?;
        if shape.is_empty() {
            return Err(Error::invalid_argument(format!(
                "framework demands[{i}] has an empty task shape"
            )));
        }
    }
    for (i, alt) in info.min_allocatable.iter().enumerate() {
        Resources::from_proto(&alt.resources)
            .map_err(|e| Error::invalid_argument(format!("framework min_allocatable[{i}]: {e}")))?;
    }
    Ok(())
}

pub fn has_capability(info: &FrameworkInfo, cap: FrameworkCapability) -> bool {
    info.capabilities.contains(&(cap as i32))
}

fn no_nul(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::invalid_argument(format!(
            "{field} contains a NUL byte"
        )));
    }
    Ok(())
}

pub fn command(task_id: &str, cmd: &CommandInfo) -> Result<(), Error> {
    let field = |f: &str| format!("task '{task_id}' command {f}");
    match &cmd.run {
        None => {
            return Err(Error::invalid_argument(format!(
                "task '{task_id}' command has neither a shell string nor argv"
            )));
        }
        Some(v1::command_info::Run::Shell(s)) => {
            if s.trim().is_empty() {
                return Err(Error::invalid_argument(field("shell string is empty")));
            }
            no_nul(&field("shell string"), s)?;
        }
        Some(v1::command_info::Run::Argv(argv)) => {
            match argv.args.first() {
                None => return Err(Error::invalid_argument(field("argv is empty"))),
                Some(p) if p.is_empty() => {
                    return Err(Error::invalid_argument(field("argv[0] is empty")));
                }
                Some(_) => {}
            }
            for (i, a) in argv.args.iter().enumerate() {
                no_nul(&field(&format!("argv[{i}]")), a)?;
            }
        }
    }
    for var in &cmd.environment {
        if var.name.is_empty() || var.name.contains('=') {
            return Err(Error::invalid_argument(format!(
                "task '{task_id}' environment variable name '{}' is empty or contains '='",
                quote(&var.name)
            )));
        }
        no_nul(&field(&format!("environment {}", var.name)), &var.name)?;
        no_nul(&field(&format!("environment {}", var.name)), &var.value)?;
    }
    if cmd.uris.len() > MAX_URIS {
        return Err(Error::invalid_argument(format!(
            "task '{task_id}' has {} URIs; at most {MAX_URIS} are allowed",
            cmd.uris.len()
        )));
    }
    for uri in &cmd.uris {
        let v = uri.value.as_str();
        let known = ["http://", "https://", "file://"]
            .iter()
            .any(|scheme| v.len() > scheme.len() && v.starts_with(scheme))
            || v.starts_with('/');
        if !known {
            return Err(Error::invalid_argument(format!(
                "task '{task_id}' URI '{}' must be http://, https://, file:// or an absolute path",
                quote(v)
            )));
        }
        no_nul(&field("URI"), v)?;
        if !uri.output_file.is_empty() {
            id(
                &format!("task '{task_id}' URI output_file"),
                &uri.output_file,
            )?;
        }
    }
    if cmd.user.len() > 32 || cmd.user.contains(['/', ':', '\0']) {
        return Err(Error::invalid_argument(format!(
            "task '{task_id}' command user '{}' is not a valid user name",
            quote(&cmd.user)
        )));
    }
    Ok(())
}

/// URIs a task may fetch into its sandbox.
pub const MAX_URIS: usize = 64;

fn health_check(tid: &str, hc: &v1::HealthCheck) -> Result<(), Error> {
    use v1::health_check::Type;
    let field = |f: &str| format!("task '{tid}' health_check {f}");
    for (name, v) in [
        ("delay_seconds", hc.delay_seconds),
        ("interval_seconds", hc.interval_seconds),
        ("timeout_seconds", hc.timeout_seconds),
        ("grace_period_seconds", hc.grace_period_seconds),
    ] {
        seconds(&field(name), v)?;
    }
    match Type::try_from(hc.r#type) {
        Ok(Type::Command) => match &hc.command {
            Some(cmd) => command(tid, cmd),
            None => Err(Error::invalid_argument(field(
                "of type COMMAND has no command",
            ))),
        },
        Ok(Type::Http | Type::Tcp) => {
            if hc.port == 0 || hc.port > 65535 {
                return Err(Error::invalid_argument(format!(
                    "{} {} is not a TCP port (1-65535)",
                    field("port"),
                    hc.port
                )));
            }
            if !hc.path.is_empty() && !hc.path.starts_with('/') {
                return Err(Error::invalid_argument(format!(
                    "{} '{}' must start with '/'",
                    field("path"),
                    quote(&hc.path)
                )));
            }
            Ok(())
        }
        Ok(Type::Unspecified) | Err(_) => Err(Error::invalid_argument(format!(
            "{} {} is not COMMAND, HTTP or TCP",
            field("type"),
            hc.r#type
        ))),
    }
}

/// Checks one task of a LAUNCH and returns its resources. Existence and fit against the
/// offer are the caller's business.
pub fn task(task: &TaskInfo, offer_agent: &str) -> Result<Resources, Error> {
    file_id("task id", &task.task_id)?;
    let tid = &task.task_id;
    if task.name.len() > MAX_ID_BYTES {
        return Err(Error::invalid_argument(format!(
            "task '{tid}' name is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if !task.agent_id.is_empty() && task.agent_id != offer_agent {
        return Err(Error::invalid_argument(format!(
            "task '{tid}' names agent '{}' but the offer is for agent '{offer_agent}'",
            task.agent_id
        )));
    }
    resource_limits(&format!("task '{tid}' resources"), &task.resources)?;
    let resources = Resources::from_proto(&task.resources)
        .map_err(|e| Error::invalid_argument(format!("task '{tid}' resources: {e}")))?;
    if resources.is_empty() {
        return Err(Error::invalid_argument(format!(
            "task '{tid}' asks for no resources"
        )));
    }
    match (&task.command, &task.executor) {
        (Some(cmd), None) => command(tid, cmd)?,
        (None, None) => {
            return Err(Error::invalid_argument(format!(
                "task '{tid}' has neither a command nor an executor"
            )));
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid_argument(format!(
                "task '{tid}' has both a command and an executor; give exactly one"
            )));
        }
        (None, Some(e)) => {
            if e.command.is_none() {
                return Err(Error::invalid_argument(format!(
                    "task '{tid}' executor '{}' has no command (the default executor runs task groups only)",
                    e.executor_id
                )));
            }
        }
    }
    if let Some(hc) = &task.health_check {
        health_check(tid, hc)?;
    }
    if let Some(kp) = &task.kill_policy {
        seconds(
            &format!("task '{tid}' kill_policy grace_period_seconds"),
            kp.grace_period_seconds,
        )?;
    }
    Ok(resources)
}

/// Checks an executor of a LAUNCH or LAUNCH_GROUP and returns its resources (possibly
/// none). `framework_id`: the accepting framework.
pub fn executor(e: &v1::ExecutorInfo, framework_id: &str) -> Result<Resources, Error> {
    file_id("executor id", &e.executor_id)?;
    let eid = &e.executor_id;
    if !e.framework_id.is_empty() && e.framework_id != framework_id {
        return Err(Error::invalid_argument(format!(
            "executor '{eid}' names framework '{}' but the call is from '{framework_id}'",
            e.framework_id
        )));
    }
    if e.name.len() > MAX_ID_BYTES {
        return Err(Error::invalid_argument(format!(
            "executor '{eid}' name is longer than {MAX_ID_BYTES} bytes"
        )));
    }
    if let Some(cmd) = &e.command {
        command(&format!("executor {eid}"), cmd)?;
    }
    Resources::from_proto(&e.resources)
        .map_err(|err| Error::invalid_argument(format!("executor '{eid}' resources: {err}")))
}

/// Checks one task of a LAUNCH_GROUP run by executor `executor_id` and returns its
/// resources: a command is required, and a task's own executor (if any) must be the
/// group's.
pub fn group_task(
    task: &TaskInfo,
    offer_agent: &str,
    executor_id: &str,
) -> Result<Resources, Error> {
    let tid = &task.task_id;
    if let Some(own) = &task.executor
        && own.executor_id != executor_id
    {
        return Err(Error::invalid_argument(format!(
            "task '{tid}' names executor '{}' but its group runs on executor '{executor_id}'",
            own.executor_id
        )));
    }
    if task.command.is_none() {
        id("task id", tid)?;
        return Err(Error::invalid_argument(format!(
            "task '{tid}' of a task group has no command"
        )));
    }
    let mut plain = task.clone();
    plain.executor = None;
    self::task(&plain, offer_agent)
}

/// Decline filter duration in ms, defaulted and capped.
pub fn refuse_ms(
    filters: Option<&v1::Filters>,
    default_seconds: f64,
    max_seconds: f64,
) -> Result<u64, Error> {
    let secs = match filters.and_then(|f| f.refuse_seconds) {
        None => default_seconds,
        Some(s) => seconds("filters refuse_seconds", s)?,
    };
    Ok((secs.min(max_seconds) * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::command_info::{Argv, Run};

    fn msg(r: Result<impl std::fmt::Debug, Error>) -> String {
        r.expect_err("should fail").message().to_string()
    }

    #[test]
    fn ids() {
        assert!(id("task id", "web-1.a_b:c@d").is_ok());
        assert_eq!(msg(id("task id", "")), "task id is empty");
        assert!(msg(id("task id", "a/b")).contains("forbidden character '/'"));
        assert!(msg(id("task id", "a b")).contains("forbidden character ' '"));
        assert!(msg(id("task id", "..")).contains("not allowed"));
        assert!(msg(id("task id", &"x".repeat(256))).contains("longer than 255"));
        assert!(msg(id("task id", "a\0b")).contains("forbidden"));
    }

    #[test]
    fn roles_within_the_agents_limits() {
        assert!(role("r", "eng/ml").is_ok());
        let segment = "s".repeat(NAME_MAX_BYTES);
        assert!(role("r", &format!("eng/{segment}")).is_ok());
        let m = msg(role("quota role", &format!("eng/{segment}x")));
        assert!(m.contains("segment of 256 bytes"), "{m}");
        let huge = "r".repeat(20_000);
        let m = msg(role("quota role", &huge));
        assert!(
            m.contains("longer than 1024 bytes") && m.contains("(20000 bytes)"),
            "{m}"
        );
        assert!(m.len() < 200, "{m}");
        let m = msg(role("r", &format!("{}\n!", "x/".repeat(300))));
        assert!(m.contains("letters, digits") && m.len() < 300, "{m}");
        assert!(msg(role("r", "*")).contains("unreserved"));
    }

    #[test]
    fn task_and_executor_ids_fit_their_checkpoint_file() {
        let fits = "t".repeat(FILE_ID_MAX_BYTES);
        assert!(file_id("task id", &fits).is_ok());
        let m = msg(file_id("task id", &format!("{fits}x")));
        assert!(m.contains("longer than 252 bytes"), "{m}");
        let t = shell_task(&format!("{fits}x"), "cpus:1");
        assert!(msg(task(&t, "a1")).contains("longer than 252"));
    }

    #[test]
    fn resource_names_within_the_agents_limits() {
        let reserved = |role: &str, pid: &str, path: &str| {
            let mut r = Resources::parse("disk:10").expect("valid").to_proto();
            r[0].reservation = Some(v1::Reservation {
                r#type: v1::reservation::Type::Dynamic as i32,
                role: role.into(),
                principal: String::new(),
                labels: vec![],
            });
            if !pid.is_empty() {
                r[0].disk = Some(v1::DiskInfo {
                    persistence_id: pid.into(),
                    container_path: path.into(),
                    ..Default::default()
                });
            }
            r
        };
        assert!(resource_limits("x", &reserved("db", "v1", "data")).is_ok());
        let long = format!("db/{}", "s".repeat(300));
        assert!(msg(resource_limits("x", &reserved(&long, "", ""))).contains("segment of 300"));
        let m = msg(resource_limits(
            "x",
            &reserved("db", &"p".repeat(256), "data"),
        ));
        assert!(m.contains("persistence id"), "{m}");
        let m = msg(resource_limits(
            "x",
            &reserved("db", "v", &"d".repeat(2000)),
        ));
        assert!(m.contains("container path"), "{m}");
        let accept = v1::AcceptRequest {
            operations: vec![v1::Operation {
                operation: Some(v1::operation::Operation::Create(v1::operation::Create {
                    volumes: reserved(&long, "v1", "data"),
                })),
            }],
            ..Default::default()
        };
        assert!(msg(accept_limits(&accept)).starts_with("operations[0] CREATE[0]"));
    }

    #[test]
    fn messages_quote_a_short_prefix() {
        let m = msg(id("task id", &"x".repeat(10_000)));
        assert!(m.len() < 200, "{m}");
        let mut cmd = CommandInfo {
            run: Some(Run::Shell("true".into())),
            ..Default::default()
        };
        cmd.uris.push(v1::Uri {
            value: "ftp://".repeat(5_000),
            ..Default::default()
        });
        let m = msg(command("t", &cmd));
        assert!(m.len() < 300, "{m}");
    }

    #[test]
    fn framework_info_defaults_and_errors() {
        let mut info = FrameworkInfo {
            name: "f".into(),
            ..Default::default()
        };
        framework_info(&mut info).expect("valid");
        assert_eq!(info.roles, vec![DEFAULT_ROLE.to_string()]);

        let mut bad = FrameworkInfo::default();
        assert_eq!(msg(framework_info(&mut bad)), "framework name is empty");
        let mut bad = FrameworkInfo {
            name: "f".into(),
            roles: vec!["a".into(), "a".into()],
            ..Default::default()
        };
        assert!(msg(framework_info(&mut bad)).contains("listed twice"));
        let mut bad = FrameworkInfo {
            name: "f".into(),
            roles: vec!["*".into()],
            ..Default::default()
        };
        assert!(msg(framework_info(&mut bad)).contains("role"));
        let mut bad = FrameworkInfo {
            name: "f".into(),
            failover_timeout_seconds: -1.0,
            ..Default::default()
        };
        assert!(msg(framework_info(&mut bad)).contains("failover_timeout_seconds"));
        let mut bad = FrameworkInfo {
            name: "f".into(),
            capabilities: vec![99],
            ..Default::default()
        };
        assert!(msg(framework_info(&mut bad)).contains("unknown framework capability 99"));
    }

    fn shell_task(id: &str, res: &str) -> TaskInfo {
        TaskInfo {
            task_id: id.into(),
            resources: Resources::parse(res).expect("parse").to_proto(),
            command: Some(CommandInfo {
                run: Some(Run::Shell("true".into())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn tasks() {
        let r = task(&shell_task("t", "cpus:1;mem:32"), "a1").expect("valid");
        assert_eq!(r, Resources::parse("cpus:1;mem:32").expect("parse"));
        assert_eq!(
            msg(task(&shell_task("", "cpus:1"), "a1")),
            "task id is empty"
        );
        assert!(msg(task(&shell_task("t", "cpus:0"), "a1")).contains("asks for no resources"));
        let mut t = shell_task("t", "cpus:1");
        t.agent_id = "a2".into();
        assert!(msg(task(&t, "a1")).contains("offer is for agent 'a1'"));
        let mut t = shell_task("t", "cpus:1");
        t.command = None;
        assert!(msg(task(&t, "a1")).contains("neither a command nor an executor"));
        let mut t = shell_task("t", "cpus:1");
        t.command = Some(CommandInfo {
            run: Some(Run::Argv(Argv { args: vec![] })),
            ..Default::default()
        });
        assert!(msg(task(&t, "a1")).contains("argv is empty"));
        let mut t = shell_task("t", "cpus:1");
        t.resources[0].name = String::new();
        assert!(msg(task(&t, "a1")).contains("task 't' resources"));
    }

    #[test]
    fn uris_and_health_checks() {
        let mut t = shell_task("t", "cpus:1");
        if let Some(c) = t.command.as_mut() {
            c.uris.push(v1::Uri {
                value: "ftp://x/y".into(),
                ..Default::default()
            });
        }
        assert!(msg(task(&t, "a1")).contains("must be http://, https://, file://"));
        if let Some(c) = t.command.as_mut() {
            c.uris[0].value = "http://example.invalid/a.tgz".into();
            c.uris[0].output_file = "../x".into();
        }
        assert!(msg(task(&t, "a1")).contains("output_file"));
        if let Some(c) = t.command.as_mut() {
            c.uris[0].output_file = "a.tgz".into();
        }
        assert!(task(&t, "a1").is_ok());

        let mut t = shell_task("t", "cpus:1");
        t.health_check = Some(v1::HealthCheck {
            r#type: v1::health_check::Type::Http as i32,
            port: 0,
            ..Default::default()
        });
        assert!(msg(task(&t, "a1")).contains("is not a TCP port"));
        t.health_check = Some(v1::HealthCheck {
            r#type: v1::health_check::Type::Tcp as i32,
            port: 8080,
            interval_seconds: -1.0,
            ..Default::default()
        });
        assert!(msg(task(&t, "a1")).contains("interval_seconds"));
        t.health_check = Some(v1::HealthCheck {
            r#type: v1::health_check::Type::Command as i32,
            ..Default::default()
        });
        assert!(msg(task(&t, "a1")).contains("has no command"));
        t.health_check = Some(v1::HealthCheck {
            r#type: 0,
            ..Default::default()
        });
        assert!(msg(task(&t, "a1")).contains("is not COMMAND, HTTP or TCP"));
        t.health_check = Some(v1::HealthCheck {
            r#type: v1::health_check::Type::Http as i32,
            port: 8080,
            path: "/health".into(),
            interval_seconds: 1.0,
            ..Default::default()
        });
        assert!(task(&t, "a1").is_ok());
    }

    #[test]
    fn refuse_filters() {
        assert_eq!(refuse_ms(None, 5.0, 3600.0).expect("ok"), 5_000);
        let f = v1::Filters {
            refuse_seconds: Some(1e9),
        };
        assert_eq!(refuse_ms(Some(&f), 5.0, 3600.0).expect("ok"), 3_600_000);
        let f = v1::Filters {
            refuse_seconds: Some(f64::NAN),
        };
        assert!(msg(refuse_ms(Some(&f), 5.0, 3600.0)).contains("refuse_seconds"));
    }

    #[test]
    fn executors_and_group_tasks() {
        let exec = |id: &str| v1::ExecutorInfo {
            executor_id: id.into(),
            resources: Resources::parse("cpus:0.1;mem:32")
                .expect("resources")
                .to_proto(),
            ..Default::default()
        };
        let mem = executor(&exec("e1"), "fw").map(|r| r.scalar("mem").as_f64());
        assert!(matches!(mem, Ok(m) if m == 32.0), "{mem:?}");
        assert!(msg(executor(&exec(""), "fw")).contains("executor id"));
        let mut other_fw = exec("e1");
        other_fw.framework_id = "fw2".into();
        assert!(msg(executor(&other_fw, "fw")).contains("names framework 'fw2'"));
        let mut bad_res = exec("e1");
        bad_res.resources = vec![v1::Resource {
            name: "cpus".into(),
            ..Default::default()
        }];
        assert!(msg(executor(&bad_res, "fw")).contains("executor 'e1' resources"));

        let mut t = TaskInfo {
            task_id: "t1".into(),
            resources: Resources::parse("cpus:1").expect("resources").to_proto(),
            command: Some(CommandInfo {
                run: Some(v1::command_info::Run::Shell("true".into())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(group_task(&t, "a1", "e1").is_ok());
        t.executor = Some(exec("e1"));
        assert!(
            group_task(&t, "a1", "e1").is_ok(),
            "its own group executor is fine"
        );
        t.executor = Some(exec("e2"));
        assert!(msg(group_task(&t, "a1", "e1")).contains("names executor 'e2'"));
        t.executor = None;
        t.command = None;
        assert!(msg(group_task(&t, "a1", "e1")).contains("of a task group has no command"));
        // A LAUNCH task naming an executor without a program.
        let launch_task = TaskInfo {
            command: None,
            executor: Some(exec("e1")),
            ..t.clone()
        };
        assert!(msg(task(&launch_task, "a1")).contains("has no command"));
    }
}

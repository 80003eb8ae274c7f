//! The app model in Marathon's v2 field names, and its validation.
//!
//! [`parse_app`] turns a request body into an [`AppDefinition`] or a list of
//! [`Violation`]s (JSON path + message, answered as 422): first the types (serde, with the
//! path of the first wrong one), then every rule [`AppDefinition::validate`] checks, all
//! reported at once. Unknown fields are ignored, as Marathon ignores them (clients send
//! back what they read, including read-only fields such as `version` or `tasksRunning`).
//!
//! Pure: no I/O, no clock. This module must never accept a definition the scheduler core
//! cannot run: everything the core relies on (a command, finite non-negative resources,
//! parseable constraints, health checks naming a real port, sane backoff) is checked here.

use std::collections::BTreeMap;

use agora_sdk::placement::Constraint;
use serde::{Deserialize, Serialize};

/// Most instances one app may ask for.
pub const MAX_INSTANCES: u32 = 100_000;
/// Most port definitions per app.
pub const MAX_PORT_DEFINITIONS: usize = 64;
/// Most constraints per app.
pub const MAX_CONSTRAINTS: usize = 64;
/// Largest duration (seconds) any timing field accepts: a week.
pub const MAX_SECONDS: f64 = 7.0 * 86_400.0;

/// One rule broken: where (`/cpus`, `/portDefinitions/0/port`) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// JSON pointer of the offending field (`/` for the whole object).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn violation(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

/// Which instances go first when an app scales down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KillSelection {
    /// The most recently started first (Marathon's default).
    #[default]
    YoungestFirst,
    /// The longest running first.
    OldestFirst,
}

/// A port the app needs (Marathon's `portDefinitions` entry).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PortDefinition {
    /// With `requirePorts`, the host port to use; otherwise 0 (any offered port).
    pub port: u32,
    /// `tcp`, `udp` or `udp,tcp`.
    #[serde(default = "tcp")]
    pub protocol: String,
    /// Optional name; also exported as `PORT_<NAME>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free-form labels.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn tcp() -> String {
    "tcp".to_string()
}

/// The command of a COMMAND health check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandCheck {
    /// Shell command; healthy on exit 0.
    pub value: String,
}

/// A health check (Marathon's `healthChecks` entry). Run by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HealthCheckDef {
    /// `HTTP`, `TCP` or `COMMAND` (`MESOS_HTTP`, `MESOS_TCP` are read as HTTP, TCP).
    pub protocol: String,
    /// HTTP path (starts with `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Index into the task's ports for HTTP/TCP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_index: Option<u32>,
    /// A fixed port for HTTP/TCP instead of `portIndex`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// For COMMAND.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandCheck>,
    /// Failures before the first success are ignored for this long.
    pub grace_period_seconds: f64,
    /// Between probes.
    pub interval_seconds: f64,
    /// Per probe.
    pub timeout_seconds: f64,
    /// Failures in a row that kill the instance.
    pub max_consecutive_failures: u32,
    /// Before the first probe.
    pub delay_seconds: f64,
}

impl Default for HealthCheckDef {
    fn default() -> HealthCheckDef {
        HealthCheckDef {
            protocol: "HTTP".into(),
            path: None,
            port_index: None,
            port: None,
            command: None,
            grace_period_seconds: 300.0,
            interval_seconds: 60.0,
            timeout_seconds: 20.0,
            max_consecutive_failures: 3,
            delay_seconds: 15.0,
        }
    }
}

/// How a deployment replaces the instances of an older configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UpgradeKind {
    /// Replace a few at a time within `minimumHealthCapacity` / `maximumOverCapacity`
    /// (Marathon's only strategy).
    #[default]
    Rolling,
    /// Start the new version at full size beside the old, switch discovery to it in one
    /// step once all of it is healthy, then stop the old (after `keepOldSeconds`).
    BlueGreen,
}

/// How a deployment replaces instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UpgradeStrategy {
    /// Share of `instances` that must stay healthy during a rolling deployment (0..=1).
    pub minimum_health_capacity: f64,
    /// Share of `instances` that may run on top of `instances` during a rolling deployment
    /// (0..=1).
    pub maximum_over_capacity: f64,
    /// `ROLLING` (default) or `BLUE_GREEN` (an Agora extension; Marathon ignores it).
    #[serde(rename = "type")]
    pub kind: UpgradeKind,
    /// Blue/green only: seconds the old version keeps running after discovery switched to
    /// the new one; a cancel within them switches back to it at once.
    pub keep_old_seconds: f64,
}

impl Default for UpgradeStrategy {
    fn default() -> UpgradeStrategy {
        UpgradeStrategy {
            minimum_health_capacity: 1.0,
            maximum_over_capacity: 1.0,
            kind: UpgradeKind::Rolling,
            keep_old_seconds: 0.0,
        }
    }
}

/// What autoscaling measures, per instance, as a share of what the instance was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoscaleMetric {
    /// CPU time used per second of wall time, over `cpus`.
    Cpu,
    /// Memory in use, over the memory limit (`mem`).
    Mem,
}

/// Built-in autoscaling (`autoscale`, an Agora extension): keep the mean utilisation of the
/// app's ready instances near `target` by changing `instances` within `min..=max`, at most
/// once per `cooldownSeconds`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Autoscale {
    /// Fewest instances (at least 1: with none running there is no usage to read).
    #[serde(default = "one")]
    pub min: u32,
    /// Most instances.
    pub max: u32,
    /// `cpu` or `mem`.
    pub metric: AutoscaleMetric,
    /// Wanted mean utilisation, in (0, 1].
    pub target: f64,
    /// Least time between two changes of `instances` (of any origin).
    #[serde(default = "cooldown_default")]
    pub cooldown_seconds: f64,
}

fn one() -> u32 {
    1
}

fn cooldown_default() -> f64 {
    60.0
}

/// When an unreachable instance is replaced, and when it is forgotten.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UnreachableStrategy {
    /// `"disabled"`: never replaced while unreachable.
    Disabled(String),
    /// Replace after `inactiveAfterSeconds`, forget after `expungeAfterSeconds`.
    Enabled {
        /// Seconds unreachable before a replacement starts.
        #[serde(rename = "inactiveAfterSeconds", default = "inactive_default")]
        inactive_after_seconds: f64,
        /// Seconds unreachable before the instance is forgotten (and killed if it returns).
        #[serde(rename = "expungeAfterSeconds", default = "expunge_default")]
        expunge_after_seconds: f64,
    },
}

fn inactive_default() -> f64 {
    0.0
}
fn expunge_default() -> f64 {
    0.0
}

impl Default for UnreachableStrategy {
    fn default() -> UnreachableStrategy {
        UnreachableStrategy::Enabled {
            inactive_after_seconds: 0.0,
            expunge_after_seconds: 0.0,
        }
    }
}

impl UnreachableStrategy {
    /// Seconds after which an unreachable instance is replaced; `None` when disabled.
    pub fn inactive_after_seconds(&self) -> Option<f64> {
        match self {
            UnreachableStrategy::Disabled(_) => None,
            UnreachableStrategy::Enabled {
                inactive_after_seconds,
                ..
            } => Some(*inactive_after_seconds),
        }
    }
}

/// An artifact fetched into the sandbox before the command starts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct FetchUri {
    /// The URI.
    pub uri: String,
    /// Make it executable.
    pub executable: bool,
    /// Unpack archives.
    pub extract: bool,
    /// Use the agent's fetch cache.
    pub cache: bool,
    /// File name in the sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_file: Option<String>,
}

/// An app as clients write it (Marathon's v2 `App`, the fields Agora runs). Defaults are
/// Marathon's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AppDefinition {
    /// Absolute path, `/group/app` (a relative one is read from the root).
    pub id: String,
    /// Shell command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// Program and arguments, run without a shell.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Unix user the command runs as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Environment of the command.
    pub env: BTreeMap<String, String>,
    /// How many instances to keep running.
    pub instances: u32,
    /// CPUs per instance.
    pub cpus: f64,
    /// Memory per instance, MB.
    pub mem: f64,
    /// Disk per instance, MB.
    pub disk: f64,
    /// GPUs per instance.
    pub gpus: u32,
    /// Ports per instance.
    pub port_definitions: Vec<PortDefinition>,
    /// Use the ports of `portDefinitions` as host ports exactly.
    pub require_ports: bool,
    /// `[field, operator, value?]` triples.
    pub constraints: Vec<Vec<String>>,
    /// At most one (the agent runs one check per task).
    pub health_checks: Vec<HealthCheckDef>,
    /// Rolling deployment bounds.
    pub upgrade_strategy: UpgradeStrategy,
    /// First launch delay after a failure.
    pub backoff_seconds: f64,
    /// Growth of the delay per further failure.
    pub backoff_factor: f64,
    /// Largest launch delay.
    pub max_launch_delay_seconds: f64,
    /// Which instances go first when scaling down.
    pub kill_selection: KillSelection,
    /// Time between SIGTERM and SIGKILL when an instance is killed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
    /// Free-form labels, passed on to tasks.
    pub labels: BTreeMap<String, String>,
    /// The role whose offers the app uses (default: the framework's role).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Artifacts fetched before the command starts.
    pub fetch: Vec<FetchUri>,
    /// When unreachable instances are replaced.
    pub unreachable_strategy: UnreachableStrategy,
    /// Built-in autoscaling, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<Autoscale>,
}

impl Default for AppDefinition {
    fn default() -> AppDefinition {
        AppDefinition {
            id: String::new(),
            cmd: None,
            args: None,
            user: None,
            env: BTreeMap::new(),
            instances: 1,
            cpus: 1.0,
            mem: 128.0,
            disk: 0.0,
            gpus: 0,
            port_definitions: Vec::new(),
            require_ports: false,
            constraints: Vec::new(),
            health_checks: Vec::new(),
            upgrade_strategy: UpgradeStrategy::default(),
            backoff_seconds: 1.0,
            backoff_factor: 1.15,
            max_launch_delay_seconds: 300.0,
            kill_selection: KillSelection::default(),
            task_kill_grace_period_seconds: None,
            labels: BTreeMap::new(),
            role: None,
            fetch: Vec::new(),
            unreachable_strategy: UnreachableStrategy::default(),
            autoscale: None,
        }
    }
}

/// Parse a request body as an app. `id_from_path`, when the URL names the app, fills or
/// must equal the body's `id`. Type errors carry the path of the field; rule violations
/// are all listed.
pub fn parse_app(body: &[u8], id_from_path: Option<&str>) -> Result<AppDefinition, Vec<Violation>> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| vec![violation("/", format!("invalid JSON: {e}"))])?;
    parse_app_value(value, id_from_path)
}

/// [`parse_app`] on an already decoded JSON value.
pub fn parse_app_value(
    value: serde_json::Value,
    id_from_path: Option<&str>,
) -> Result<AppDefinition, Vec<Violation>> {
    if !value.is_object() {
        return Err(vec![violation("/", "an app must be a JSON object")]);
    }
    let mut app: AppDefinition = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = pointer(&e.path().to_string());
        vec![violation(path, e.inner().to_string())]
    })?;
    if let Some(id) = id_from_path {
        let id = normalize_id(id);
        if app.id.is_empty() {
            app.id = id;
        } else if normalize_id(&app.id) != id {
            return Err(vec![violation(
                "/id",
                format!("the id {:?} differs from the id in the URL {id:?}", app.id),
            )]);
        }
    }
    app.id = normalize_id(&app.id);
    let violations = app.validate();
    if violations.is_empty() {
        Ok(app)
    } else {
        Err(violations)
    }
}

/// serde_path_to_error's `a.b[0].c` as a JSON pointer `/a/b/0/c`.
fn pointer(path: &str) -> String {
    if path == "." || path.is_empty() {
        return "/".into();
    }
    let mut out = String::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            out.push('/');
            out.push_str(&rest[..i]);
            rest = &rest[i..];
            while let Some(end) = rest.find(']') {
                out.push('/');
                out.push_str(&rest[1..end]);
                rest = &rest[end + 1..];
            }
        } else {
            out.push('/');
            out.push_str(rest);
        }
    }
    out
}

/// `a/b`, `/a/b/`, `//a//b` -> `/a/b`. Validation then checks each segment.
pub fn normalize_id(id: &str) -> String {
    let segments: Vec<&str> = id.split('/').filter(|s| !s.is_empty()).collect();
    format!("/{}", segments.join("/"))
}

/// A path segment as Marathon allows it: lower-case letters, digits, `-` and `.` inside,
/// starting and ending with a letter or digit.
fn valid_segment(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && s != "."
        && s != ".."
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

fn check_seconds(out: &mut Vec<Violation>, path: &str, v: f64, min: f64) {
    if !v.is_finite() || v < min || v > MAX_SECONDS {
        out.push(violation(
            path,
            format!("must be a number of seconds between {min} and {MAX_SECONDS}, got {v}"),
        ));
    }
}

impl AppDefinition {
    /// Every rule the definition breaks (empty: valid). `id` must already be normalised.
    pub fn validate(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        self.validate_identity(&mut out);
        self.validate_resources(&mut out);
        self.validate_ports(&mut out);
        for (i, c) in self.constraints.iter().enumerate() {
            if self.constraints.len() > MAX_CONSTRAINTS {
                out.push(violation(
                    "/constraints",
                    format!("at most {MAX_CONSTRAINTS} constraints"),
                ));
                break;
            }
            if let Err(e) = Constraint::parse(c) {
                out.push(violation(
                    format!("/constraints/{i}/{}", e.index),
                    e.message,
                ));
            }
        }
        self.validate_health(&mut out);
        self.validate_timing(&mut out);
        out
    }

    fn validate_identity(&self, out: &mut Vec<Violation>) {
        if self.id == "/" || self.id.is_empty() {
            out.push(violation("/id", "an app needs an id such as /group/app"));
        } else if let Some(bad) = self.id.split('/').skip(1).find(|s| !valid_segment(s)) {
            out.push(violation(
                "/id",
                format!(
                    "path segment {bad:?} must be lower-case letters, digits, '-' or '.', \
                     starting and ending with a letter or digit"
                ),
            ));
        }
        match (&self.cmd, &self.args) {
            (None, None) => out.push(violation("/cmd", "an app needs either cmd or args")),
            (Some(_), Some(_)) => out.push(violation("/args", "give either cmd or args, not both")),
            (Some(c), None) if c.trim().is_empty() => {
                out.push(violation("/cmd", "must not be empty"))
            }
            (None, Some(a)) if a.first().is_none_or(|p| p.is_empty()) => {
                out.push(violation("/args", "must name a program as its first item"))
            }
            _ => {}
        }
        if self.user.as_deref().is_some_and(str::is_empty) {
            out.push(violation("/user", "must not be empty"));
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                out.push(violation(
                    format!("/env/{name}"),
                    "an environment variable name must be non-empty without '=' or NUL",
                ));
            }
        }
        for key in self.labels.keys() {
            if key.is_empty() {
                out.push(violation("/labels", "label keys must not be empty"));
            }
        }
        if let Some(role) = &self.role
            && (role.is_empty()
                || role == "."
                || role == ".."
                || role.starts_with('-')
                || role.chars().any(|c| c.is_whitespace() || c == '/'))
        {
            out.push(violation("/role", format!("invalid role name {role:?}")));
        }
        for (i, f) in self.fetch.iter().enumerate() {
            if f.uri.trim().is_empty() {
                out.push(violation(format!("/fetch/{i}/uri"), "must not be empty"));
            }
        }
    }

    fn validate_resources(&self, out: &mut Vec<Violation>) {
        for (name, v) in [("cpus", self.cpus), ("mem", self.mem), ("disk", self.disk)] {
            if !v.is_finite() || !(0.0..=1e9).contains(&v) {
                out.push(violation(
                    format!("/{name}"),
                    format!("must be a non-negative number, got {v}"),
                ));
            }
        }
        if self.cpus == 0.0 && self.mem == 0.0 {
            out.push(violation(
                "/cpus",
                "an instance needs some cpus or mem (both are 0)",
            ));
        }
        if self.instances > MAX_INSTANCES {
            out.push(violation(
                "/instances",
                format!("at most {MAX_INSTANCES} instances, got {}", self.instances),
            ));
        }
        if self.gpus > 1024 {
            out.push(violation("/gpus", "at most 1024 GPUs per instance"));
        }
    }

    fn validate_ports(&self, out: &mut Vec<Violation>) {
        if self.port_definitions.len() > MAX_PORT_DEFINITIONS {
            out.push(violation(
                "/portDefinitions",
                format!("at most {MAX_PORT_DEFINITIONS} ports"),
            ));
        }
        let mut seen_ports = Vec::new();
        let mut seen_names = Vec::new();
        for (i, p) in self.port_definitions.iter().enumerate() {
            if p.port > 65_535 {
                out.push(violation(
                    format!("/portDefinitions/{i}/port"),
                    format!("must be a port number 0..65535, got {}", p.port),
                ));
            }
            if p.port != 0 {
                if seen_ports.contains(&p.port) {
                    out.push(violation(
                        format!("/portDefinitions/{i}/port"),
                        format!("port {} is defined twice", p.port),
                    ));
                }
                seen_ports.push(p.port);
            } else if self.require_ports {
                out.push(violation(
                    format!("/portDefinitions/{i}/port"),
                    "requirePorts needs a non-zero port",
                ));
            }
            if !matches!(p.protocol.as_str(), "tcp" | "udp" | "udp,tcp" | "tcp,udp") {
                out.push(violation(
                    format!("/portDefinitions/{i}/protocol"),
                    format!("must be tcp, udp or udp,tcp, got {:?}", p.protocol),
                ));
            }
            if let Some(name) = &p.name {
                let ok = !name.is_empty()
                    && name
                        .bytes()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
                if !ok {
                    out.push(violation(
                        format!("/portDefinitions/{i}/name"),
                        "must be lower-case letters, digits and '-'",
                    ));
                } else if seen_names.contains(name) {
                    out.push(violation(
                        format!("/portDefinitions/{i}/name"),
                        format!("port name {name:?} is used twice"),
                    ));
                }
                seen_names.push(name.clone());
            }
        }
    }

    fn validate_health(&self, out: &mut Vec<Violation>) {
        if self.health_checks.len() > 1 {
            out.push(violation(
                "/healthChecks",
                "at most one health check per app (the agent runs one per task)",
            ));
        }
        for (i, h) in self.health_checks.iter().enumerate() {
            let at = |f: &str| format!("/healthChecks/{i}/{f}");
            match health_protocol(&h.protocol) {
                None => out.push(violation(
                    at("protocol"),
                    format!("must be HTTP, TCP or COMMAND, got {:?}", h.protocol),
                )),
                Some(HealthProtocol::Command) => {
                    if h.command.as_ref().is_none_or(|c| c.value.trim().is_empty()) {
                        out.push(violation(at("command"), "COMMAND needs command.value"));
                    }
                }
                Some(_) => match (h.port_index, h.port) {
                    (Some(_), Some(_)) => {
                        out.push(violation(at("port"), "give portIndex or port, not both"))
                    }
                    (Some(ix), None) if ix as usize >= self.port_definitions.len() => {
                        out.push(violation(
                            at("portIndex"),
                            format!(
                                "portIndex {ix} names no port: the app defines {}",
                                self.port_definitions.len()
                            ),
                        ))
                    }
                    (None, Some(p)) if p == 0 || p > 65_535 => {
                        out.push(violation(at("port"), "must be a port number 1..65535"))
                    }
                    (None, None) if self.port_definitions.is_empty() => out.push(violation(
                        at("portIndex"),
                        "an HTTP or TCP check needs a port: define portDefinitions or give port",
                    )),
                    _ => {}
                },
            }
            if let Some(path) = &h.path
                && !path.starts_with('/')
            {
                out.push(violation(at("path"), "must start with '/'"));
            }
            check_seconds(out, &at("gracePeriodSeconds"), h.grace_period_seconds, 0.0);
            check_seconds(out, &at("intervalSeconds"), h.interval_seconds, 0.1);
            check_seconds(out, &at("timeoutSeconds"), h.timeout_seconds, 0.1);
            check_seconds(out, &at("delaySeconds"), h.delay_seconds, 0.0);
        }
    }

    fn validate_timing(&self, out: &mut Vec<Violation>) {
        let u = &self.upgrade_strategy;
        for (name, v) in [
            ("minimumHealthCapacity", u.minimum_health_capacity),
            ("maximumOverCapacity", u.maximum_over_capacity),
        ] {
            if !(0.0..=1.0).contains(&v) {
                out.push(violation(
                    format!("/upgradeStrategy/{name}"),
                    format!("must be between 0 and 1, got {v}"),
                ));
            }
        }
        if u.kind == UpgradeKind::Rolling
            && u.minimum_health_capacity == 1.0
            && u.maximum_over_capacity == 0.0
        {
            out.push(violation(
                "/upgradeStrategy/maximumOverCapacity",
                "with minimumHealthCapacity 1 a deployment needs room over capacity (> 0)",
            ));
        }
        check_seconds(
            out,
            "/upgradeStrategy/keepOldSeconds",
            u.keep_old_seconds,
            0.0,
        );
        if u.keep_old_seconds > 0.0 && u.kind != UpgradeKind::BlueGreen {
            out.push(violation(
                "/upgradeStrategy/keepOldSeconds",
                "only a BLUE_GREEN strategy keeps the old version",
            ));
        }
        if let Some(a) = &self.autoscale {
            self.validate_autoscale(a, out);
        }
        check_seconds(out, "/backoffSeconds", self.backoff_seconds, 0.0);
        check_seconds(
            out,
            "/maxLaunchDelaySeconds",
            self.max_launch_delay_seconds,
            0.0,
        );
        if !self.backoff_factor.is_finite() || !(1.0..=100.0).contains(&self.backoff_factor) {
            out.push(violation(
                "/backoffFactor",
                format!("must be between 1 and 100, got {}", self.backoff_factor),
            ));
        }
        if let Some(g) = self.task_kill_grace_period_seconds {
            check_seconds(out, "/taskKillGracePeriodSeconds", g, 0.0);
        }
        match &self.unreachable_strategy {
            UnreachableStrategy::Disabled(s) if s != "disabled" => out.push(violation(
                "/unreachableStrategy",
                format!("must be \"disabled\" or an object, got {s:?}"),
            )),
            UnreachableStrategy::Disabled(_) => {}
            UnreachableStrategy::Enabled {
                inactive_after_seconds,
                expunge_after_seconds,
            } => {
                check_seconds(
                    out,
                    "/unreachableStrategy/inactiveAfterSeconds",
                    *inactive_after_seconds,
                    0.0,
                );
                check_seconds(
                    out,
                    "/unreachableStrategy/expungeAfterSeconds",
                    *expunge_after_seconds,
                    0.0,
                );
                if expunge_after_seconds < inactive_after_seconds {
                    out.push(violation(
                        "/unreachableStrategy/expungeAfterSeconds",
                        "must not be less than inactiveAfterSeconds",
                    ));
                }
            }
        }
    }

    fn validate_autoscale(&self, a: &Autoscale, out: &mut Vec<Violation>) {
        if a.min < 1 {
            out.push(violation(
                "/autoscale/min",
                "must be at least 1 (with no instance running there is no usage to scale on)",
            ));
        }
        if a.max > MAX_INSTANCES {
            out.push(violation(
                "/autoscale/max",
                format!("at most {MAX_INSTANCES} instances, got {}", a.max),
            ));
        }
        if a.min > a.max {
            out.push(violation(
                "/autoscale/max",
                format!("must not be less than min ({}), got {}", a.min, a.max),
            ));
        }
        if !a.target.is_finite() || a.target <= 0.0 || a.target > 1.0 {
            out.push(violation(
                "/autoscale/target",
                format!("must be a utilisation in (0, 1], got {}", a.target),
            ));
        }
        check_seconds(out, "/autoscale/cooldownSeconds", a.cooldown_seconds, 0.0);
        let allotted = match a.metric {
            AutoscaleMetric::Cpu => self.cpus,
            AutoscaleMetric::Mem => self.mem,
        };
        if allotted <= 0.0 {
            out.push(violation(
                "/autoscale/metric",
                "the app is given none of this resource: its utilisation is undefined",
            ));
        }
    }

    /// The parsed constraints. Call only on a validated definition (invalid ones are
    /// skipped).
    pub fn parsed_constraints(&self) -> Vec<Constraint> {
        self.constraints
            .iter()
            .filter_map(|c| Constraint::parse(c).ok())
            .collect()
    }

    /// Whether the app's instances report health.
    pub fn has_health_checks(&self) -> bool {
        !self.health_checks.is_empty()
    }
}

/// A health check protocol, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthProtocol {
    /// HTTP GET.
    Http,
    /// TCP connect.
    Tcp,
    /// A command.
    Command,
}

/// The protocol named by Marathon's text (`None`: unknown).
pub fn health_protocol(text: &str) -> Option<HealthProtocol> {
    match text {
        "HTTP" | "MESOS_HTTP" => Some(HealthProtocol::Http),
        "TCP" | "MESOS_TCP" => Some(HealthProtocol::Tcp),
        "COMMAND" => Some(HealthProtocol::Command),
        _ => None,
    }
}

/// The group ids containing `app_id`, outermost first, without the root
/// (`/a/b/c` -> `/a`, `/a/b`).
pub fn parent_groups(app_id: &str) -> Vec<String> {
    let segments: Vec<&str> = app_id.split('/').filter(|s| !s.is_empty()).collect();
    (1..segments.len())
        .map(|n| format!("/{}", segments[..n].join("/")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<AppDefinition, Vec<Violation>> {
        parse_app_value(v, None)
    }

    #[test]
    fn a_minimal_app_gets_marathons_defaults() {
        let app = parse(json!({"id": "web", "cmd": "sleep 100"})).unwrap();
        assert_eq!(app.id, "/web");
        assert_eq!(app.instances, 1);
        assert_eq!(app.cpus, 1.0);
        assert_eq!(app.mem, 128.0);
        assert_eq!(app.backoff_factor, 1.15);
        assert_eq!(app.kill_selection, KillSelection::YoungestFirst);
        assert_eq!(app.upgrade_strategy, UpgradeStrategy::default());
    }

    #[test]
    fn unknown_and_read_only_fields_are_ignored() {
        let app = parse(json!({
            "id": "/g/web", "cmd": "x", "version": "2020-01-01T00:00:00.000Z",
            "tasksRunning": 3, "container": null, "somethingNew": {"a": 1}
        }))
        .unwrap();
        assert_eq!(app.id, "/g/web");
    }

    #[test]
    fn full_definition_round_trips() {
        let app = parse(json!({
            "id": "/prod/web", "cmd": "python3 -m http.server $PORT0", "instances": 3,
            "cpus": 0.25, "mem": 64, "disk": 10, "gpus": 0,
            "env": {"A": "1"}, "labels": {"team": "x"},
            "portDefinitions": [{"port": 0, "name": "http"}],
            "constraints": [["hostname", "UNIQUE"], ["rack", "GROUP_BY", "2"]],
            "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0,
                              "gracePeriodSeconds": 5, "intervalSeconds": 1,
                              "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
            "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
            "backoffSeconds": 2, "backoffFactor": 2, "maxLaunchDelaySeconds": 60,
            "killSelection": "OLDEST_FIRST", "taskKillGracePeriodSeconds": 2,
            "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 20},
            "fetch": [{"uri": "http://example.invalid/a.tgz", "extract": true}],
            "autoscale": {"min": 2, "max": 6, "metric": "cpu", "target": 0.6, "cooldownSeconds": 30}
        }))
        .unwrap();
        let again = parse(serde_json::to_value(&app).unwrap()).unwrap();
        assert_eq!(app, again);
        assert_eq!(app.parsed_constraints().len(), 2);
        let disabled =
            parse(json!({"id": "a", "cmd": "x", "unreachableStrategy": "disabled"})).unwrap();
        assert_eq!(disabled.unreachable_strategy.inactive_after_seconds(), None);
    }

    #[test]
    fn the_url_id_fills_or_must_match_the_body() {
        let app = parse_app_value(json!({"cmd": "x"}), Some("a/b")).unwrap();
        assert_eq!(app.id, "/a/b");
        assert!(parse_app_value(json!({"id": "/a/b", "cmd": "x"}), Some("/a/b")).is_ok());
        let e = parse_app_value(json!({"id": "/a/c", "cmd": "x"}), Some("/a/b")).unwrap_err();
        assert_eq!(e[0].path, "/id");
    }

    /// At least twenty bad definitions, each answered with the path of the field at fault.
    #[test]
    fn bad_definitions_name_the_field() {
        let cases: Vec<(serde_json::Value, &str)> = vec![
            (json!([1, 2]), "/"),
            (json!({"id": "web"}), "/cmd"),
            (json!({"id": "", "cmd": "x"}), "/id"),
            (json!({"id": "/Web", "cmd": "x"}), "/id"),
            (json!({"id": "/a/-b", "cmd": "x"}), "/id"),
            (json!({"id": "/a/../b", "cmd": "x"}), "/id"),
            (json!({"id": "a", "cmd": "x", "args": ["y"]}), "/args"),
            (json!({"id": "a", "args": []}), "/args"),
            (json!({"id": "a", "cmd": "  "}), "/cmd"),
            (json!({"id": "a", "cmd": "x", "cpus": -1}), "/cpus"),
            (json!({"id": "a", "cmd": "x", "cpus": "lots"}), "/cpus"),
            (json!({"id": "a", "cmd": "x", "mem": -5}), "/mem"),
            (json!({"id": "a", "cmd": "x", "disk": -0.5}), "/disk"),
            (json!({"id": "a", "cmd": "x", "cpus": 0, "mem": 0}), "/cpus"),
            (
                json!({"id": "a", "cmd": "x", "instances": -1}),
                "/instances",
            ),
            (
                json!({"id": "a", "cmd": "x", "instances": 1.5}),
                "/instances",
            ),
            (
                json!({"id": "a", "cmd": "x", "instances": 1_000_000}),
                "/instances",
            ),
            (json!({"id": "a", "cmd": "x", "gpus": "one"}), "/gpus"),
            (json!({"id": "a", "cmd": "x", "env": {"A": 1}}), "/env/A"),
            (
                json!({"id": "a", "cmd": "x", "env": {"A=B": "1"}}),
                "/env/A=B",
            ),
            (
                json!({"id": "a", "cmd": "x", "portDefinitions": [{"port": 70000}]}),
                "/portDefinitions/0/port",
            ),
            (
                json!({"id": "a", "cmd": "x", "portDefinitions": [{"port": 80}, {"port": 80}]}),
                "/portDefinitions/1/port",
            ),
            (
                json!({"id": "a", "cmd": "x", "requirePorts": true, "portDefinitions": [{"port": 0}]}),
                "/portDefinitions/0/port",
            ),
            (
                json!({"id": "a", "cmd": "x", "portDefinitions": [{"protocol": "sctp"}]}),
                "/portDefinitions/0/protocol",
            ),
            (
                json!({"id": "a", "cmd": "x", "portDefinitions": [{"name": "A B"}]}),
                "/portDefinitions/0/name",
            ),
            (
                json!({"id": "a", "cmd": "x", "constraints": [["hostname", "SOMETIMES"]]}),
                "/constraints/0/1",
            ),
            (
                json!({"id": "a", "cmd": "x", "constraints": [["hostname"]]}),
                "/constraints/0/0",
            ),
            (
                json!({"id": "a", "cmd": "x", "constraints": [["rack", "MAX_PER", "zero"]]}),
                "/constraints/0/2",
            ),
            (
                json!({"id": "a", "cmd": "x", "constraints": [["rack", "LIKE", "[a-"]]}),
                "/constraints/0/2",
            ),
            (
                json!({"id": "a", "cmd": "x", "constraints": "hostname:UNIQUE"}),
                "/constraints",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "GOPHER", "portIndex": 0}],
                    "portDefinitions": [{}]}),
                "/healthChecks/0/protocol",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "HTTP", "portIndex": 1}],
                    "portDefinitions": [{}]}),
                "/healthChecks/0/portIndex",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "TCP"}]}),
                "/healthChecks/0/portIndex",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND"}]}),
                "/healthChecks/0/command",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"},
                    "intervalSeconds": 0}]}),
                "/healthChecks/0/intervalSeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [{"protocol": "HTTP", "port": 80, "path": "health"}]}),
                "/healthChecks/0/path",
            ),
            (
                json!({"id": "a", "cmd": "x", "healthChecks": [
                {"protocol": "COMMAND", "command": {"value": "true"}},
                {"protocol": "COMMAND", "command": {"value": "true"}}]}),
                "/healthChecks",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}}),
                "/upgradeStrategy/minimumHealthCapacity",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"maximumOverCapacity": -0.1}}),
                "/upgradeStrategy/maximumOverCapacity",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 0}}),
                "/upgradeStrategy/maximumOverCapacity",
            ),
            (
                json!({"id": "a", "cmd": "x", "backoffSeconds": -1}),
                "/backoffSeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "backoffFactor": 0.5}),
                "/backoffFactor",
            ),
            (
                json!({"id": "a", "cmd": "x", "maxLaunchDelaySeconds": 1e12}),
                "/maxLaunchDelaySeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "killSelection": "RANDOM"}),
                "/killSelection",
            ),
            (
                json!({"id": "a", "cmd": "x", "taskKillGracePeriodSeconds": -3}),
                "/taskKillGracePeriodSeconds",
            ),
            (json!({"id": "a", "cmd": "x", "role": "a b"}), "/role"),
            (json!({"id": "a", "cmd": "x", "user": ""}), "/user"),
            (
                json!({"id": "a", "cmd": "x", "fetch": [{"uri": ""}]}),
                "/fetch/0/uri",
            ),
            (
                json!({"id": "a", "cmd": "x", "unreachableStrategy": "sometimes"}),
                "/unreachableStrategy",
            ),
            (
                json!({"id": "a", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 10, "expungeAfterSeconds": 5}}),
                "/unreachableStrategy/expungeAfterSeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "labels": {"": "v"}}),
                "/labels",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"max": 3, "metric": "cpu"}}),
                "/autoscale",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"max": 3, "metric": "disk", "target": 0.5}}),
                "/autoscale/metric",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"min": 0, "max": 3, "metric": "cpu", "target": 0.5}}),
                "/autoscale/min",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"min": 4, "max": 3, "metric": "cpu", "target": 0.5}}),
                "/autoscale/max",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"max": 3, "metric": "mem", "target": 1.5}}),
                "/autoscale/target",
            ),
            (
                json!({"id": "a", "cmd": "x", "autoscale": {"max": 3, "metric": "cpu", "target": 0.5, "cooldownSeconds": -1}}),
                "/autoscale/cooldownSeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "cpus": 0, "autoscale": {"max": 3, "metric": "cpu", "target": 0.5}}),
                "/autoscale/metric",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"type": "CANARY"}}),
                "/upgradeStrategy/type",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"keepOldSeconds": 5}}),
                "/upgradeStrategy/keepOldSeconds",
            ),
            (
                json!({"id": "a", "cmd": "x", "upgradeStrategy": {"type": "BLUE_GREEN", "keepOldSeconds": -5}}),
                "/upgradeStrategy/keepOldSeconds",
            ),
        ];
        assert!(cases.len() >= 20);
        for (body, path) in cases {
            let text = body.to_string();
            match parse(body) {
                Ok(app) => panic!("{text} was accepted as {app:?}"),
                Err(v) => assert!(
                    v.iter().any(|v| v.path == path),
                    "{text}: expected a violation at {path}, got {v:?}"
                ),
            }
        }
    }

    #[test]
    fn all_violations_are_reported_at_once() {
        let v = parse(json!({"id": "a", "cmd": "x", "cpus": -1, "mem": -1, "backoffFactor": 0}))
            .unwrap_err();
        let paths: Vec<&str> = v.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(paths, vec!["/cpus", "/mem", "/backoffFactor"]);
    }

    #[test]
    fn pointers_from_serde_paths() {
        assert_eq!(pointer("cpus"), "/cpus");
        assert_eq!(
            pointer("portDefinitions[0].port"),
            "/portDefinitions/0/port"
        );
        assert_eq!(pointer("constraints[1][2]"), "/constraints/1/2");
        assert_eq!(pointer("."), "/");
    }

    #[test]
    fn groups_of_an_id() {
        assert_eq!(parent_groups("/a/b/c"), vec!["/a", "/a/b"]);
        assert!(parent_groups("/a").is_empty());
    }

    fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            "[a-zA-Z0-9 /._=-]{0,12}".prop_map(serde_json::Value::from),
        ]
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        json_leaf().prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const FIELDS: &[&str] = &[
        "id",
        "cmd",
        "args",
        "user",
        "env",
        "instances",
        "cpus",
        "mem",
        "disk",
        "gpus",
        "portDefinitions",
        "requirePorts",
        "constraints",
        "healthChecks",
        "upgradeStrategy",
        "backoffSeconds",
        "backoffFactor",
        "maxLaunchDelaySeconds",
        "killSelection",
        "taskKillGracePeriodSeconds",
        "labels",
        "role",
        "fetch",
        "unreachableStrategy",
        "autoscale",
    ];

    proptest! {
        /// Whatever a client sends under the known field names, parsing never panics, and
        /// what it accepts is valid and survives a round trip through its JSON form.
        #[test]
        fn arbitrary_bodies_are_judged_without_panic(
            fields in prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..8),
            cmd in prop::option::of("[a-z ]{1,10}"),
        ) {
            let mut obj = serde_json::Map::new();
            obj.insert("id".into(), "/p/app".into());
            if let Some(c) = cmd { obj.insert("cmd".into(), c.into()); }
            for (k, v) in fields { obj.insert(k.to_string(), v); }
            if let Ok(app) = parse(serde_json::Value::Object(obj)) {
                prop_assert!(app.validate().is_empty());
                let again = parse(serde_json::to_value(&app).unwrap());
                prop_assert_eq!(Ok(app), again);
            }
        }

        /// Valid numeric settings are accepted and kept exactly.
        #[test]
        fn valid_numbers_are_kept(
            instances in 0u32..1000, cpus in 0.01f64..64.0, mem in 1.0f64..65536.0,
            mhc in 0.0f64..1.0, moc in 0.01f64..1.0, factor in 1.0f64..10.0,
        ) {
            let app = parse(serde_json::json!({
                "id": "a", "cmd": "x", "instances": instances, "cpus": cpus, "mem": mem,
                "backoffFactor": factor,
                "upgradeStrategy": {"minimumHealthCapacity": mhc, "maximumOverCapacity": moc},
            })).unwrap();
            prop_assert_eq!(app.instances, instances);
            prop_assert_eq!(app.cpus, cpus);
            prop_assert_eq!(app.upgrade_strategy.minimum_health_capacity, mhc);
        }
    }
}

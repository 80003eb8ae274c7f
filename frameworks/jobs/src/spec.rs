//! Job definitions: what a job runs, with which resources, where, how it restarts, how long
//! it may run, what it depends on, and how many past runs are kept. The JSON shape follows
//! Metronome's v1 job (`id`, `description`, `labels`, `run { cmd | args, env, cpus, mem,
//! disk, gpus, user, artifacts, placement.constraints, restart }`) plus Chronos's parents
//! (`dependencies`).
//!
//! Owns the shape and its validation. Pure: no I/O, no clock. It must never check anything
//! that needs other jobs (unknown parents, cycles: the engine and `dag` do that) and never
//! accept a definition it could not launch.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::schedule::ScheduleSpec;

/// Longest job id, in bytes.
pub const MAX_JOB_ID_BYTES: usize = 64;
/// Most labels on one job.
pub const MAX_LABELS: usize = 64;
/// Most parents of one job.
pub const MAX_PARENTS: usize = 64;
/// Most retries a restart policy may ask for.
pub const MAX_RETRIES: u32 = 100;
/// Longest backoff between retries, in seconds.
pub const MAX_BACKOFF_SECONDS: f64 = 86_400.0;
/// Longest active deadline, in seconds (30 days).
pub const MAX_ACTIVE_DEADLINE_SECONDS: u64 = 30 * 86_400;
/// Most finished runs a job may keep.
pub const MAX_HISTORY_LIMIT: u32 = 1_000;
/// Longest kill grace period, in seconds.
pub const MAX_KILL_GRACE_SECONDS: f64 = 300.0;
/// Largest amount of one scalar resource a run may ask for.
pub const MAX_SCALAR: f64 = 1_000_000.0;

/// A definition refused: the JSON path of the offending field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// JSON path, e.g. `run.cpus` or `dependencies[1]`.
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
}

impl Invalid {
    /// A refusal of `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// What a scheduled tick does when runs of the job are still active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConcurrencyPolicy {
    /// Start another run next to the active ones.
    #[default]
    Allow,
    /// Skip the new run (recorded as skipped).
    Forbid,
    /// Stop the active runs, then start the new one.
    Replace,
}

/// Whether a failed attempt is retried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RestartPolicyKind {
    /// A failed attempt fails the run.
    #[default]
    Never,
    /// Retry a failed attempt up to `retries` times, with exponential backoff.
    OnFailure,
}

/// Retries of a failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartSpec {
    /// NEVER or ON_FAILURE.
    #[serde(default)]
    pub policy: RestartPolicyKind,
    /// Retries after the first attempt (ON_FAILURE only).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Delay before the first retry.
    #[serde(default = "default_backoff")]
    pub backoff_seconds: f64,
    /// Each further retry waits this many times longer.
    #[serde(default = "default_backoff_factor")]
    pub backoff_factor: f64,
    /// The longest wait between retries.
    #[serde(default = "default_max_backoff")]
    pub max_backoff_seconds: f64,
}

fn default_retries() -> u32 {
    3
}
fn default_backoff() -> f64 {
    1.0
}
fn default_backoff_factor() -> f64 {
    2.0
}
fn default_max_backoff() -> f64 {
    300.0
}
fn default_history_limit() -> u32 {
    20
}
fn default_cpus() -> f64 {
    0.1
}
fn default_mem() -> f64 {
    32.0
}

impl Default for RestartSpec {
    fn default() -> RestartSpec {
        RestartSpec {
            policy: RestartPolicyKind::Never,
            retries: default_retries(),
            backoff_seconds: default_backoff(),
            backoff_factor: default_backoff_factor(),
            max_backoff_seconds: default_max_backoff(),
        }
    }
}

impl RestartSpec {
    /// How many attempts a run may make in all (1 with NEVER).
    pub fn max_attempts(&self) -> u32 {
        match self.policy {
            RestartPolicyKind::Never => 1,
            RestartPolicyKind::OnFailure => self.retries.saturating_add(1),
        }
    }

    /// The wait, in milliseconds, before attempt `next_attempt` (2 = the first retry).
    pub fn backoff_ms(&self, next_attempt: u32) -> i64 {
        let exponent = next_attempt.saturating_sub(2).min(64) as i32;
        let secs = self.backoff_seconds * self.backoff_factor.powi(exponent);
        let secs = secs.min(self.max_backoff_seconds).max(0.0);
        (secs * 1000.0).round() as i64
    }
}

/// A file the agent fetches into the sandbox before the command starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Artifact {
    /// `http(s)://`, `file://` or an absolute path.
    pub uri: String,
    #[serde(default)]
    pub executable: bool,
    #[serde(default)]
    pub extract: bool,
    #[serde(default)]
    pub cache: bool,
}

/// How a constraint compares an agent attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConstraintOperator {
    /// The attribute's text equals `value`.
    Eq,
    /// The attribute's text fully matches the regular expression `value`.
    Like,
    /// The attribute is absent or does not fully match `value`.
    Unlike,
    /// The attribute is present (any value).
    Exists,
}

/// A condition on the attributes of the agent a run lands on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Constraint {
    pub attribute: String,
    pub operator: ConstraintOperator,
    #[serde(default)]
    pub value: String,
}

/// Where runs may go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    #[serde(default)]
    pub constraints: Vec<Constraint>,
}

/// What one run executes and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunSpec {
    /// A shell command (`/bin/sh -c`). Exactly one of `cmd` and `args`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<String>,
    /// A program and its arguments, run without a shell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default = "default_cpus")]
    pub cpus: f64,
    /// Memory in MB.
    #[serde(default = "default_mem")]
    pub mem: f64,
    /// Disk in MB.
    #[serde(default)]
    pub disk: f64,
    #[serde(default)]
    pub gpus: f64,
    /// Unix user to run as; default: the framework's user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Fetch URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<Artifact>,
    /// The role whose resources runs use; default: the daemon's first role.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default)]
    pub placement: Placement,
    #[serde(default)]
    pub restart: RestartSpec,
    /// A run still going after this long is killed and recorded as failed by deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<u64>,
    /// Time between SIGTERM and SIGKILL when a run is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_kill_grace_period_seconds: Option<f64>,
}

/// A job: the unit the API creates, schedules and runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobSpec {
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub run: RunSpec,
    /// Parent jobs (Chronos's rule: this job runs when every parent has succeeded since
    /// its own last run).
    #[serde(default)]
    pub dependencies: Vec<String>,
    #[serde(default)]
    pub concurrency_policy: ConcurrencyPolicy,
    /// Finished runs kept in the history; older ones are forgotten.
    #[serde(default = "default_history_limit")]
    pub history_limit: u32,
    /// Schedules given with the definition (also managed under `/schedules`). Never
    /// stored here: the engine keeps them beside the job.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedules: Vec<ScheduleSpec>,
}

impl fmt::Display for ConcurrencyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConcurrencyPolicy::Allow => "ALLOW",
            ConcurrencyPolicy::Forbid => "FORBID",
            ConcurrencyPolicy::Replace => "REPLACE",
        })
    }
}

/// Parse a job from JSON, naming the path of a field of the wrong type or an unknown one.
pub fn parse_job(body: &[u8]) -> Result<JobSpec, Invalid> {
    parse_json(body)
}

/// Deserialize `body`, turning serde's error into an [`Invalid`] naming the JSON path.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return Invalid::new("body", format!("not JSON: {message}"));
        }
        // A missing or unknown field is named in serde's message, not in the path.
        let named = field_in_message(&message);
        let field = match (path.as_str(), named) {
            ("." | "", Some(f)) => f,
            ("." | "", None) => "body".to_string(),
            (p, Some(f)) if !p.ends_with(f.as_str()) => format!("{p}.{f}"),
            (p, _) => p.to_string(),
        };
        Invalid::new(field, strip_position(&message))
    })
}

fn field_in_message(message: &str) -> Option<String> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    None
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Metronome's id rule: dot-separated segments of lowercase letters, digits and dashes,
/// each starting and ending with a letter or digit.
pub fn check_job_id(field: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    if id.len() > MAX_JOB_ID_BYTES {
        return Err(Invalid::new(
            field,
            format!("is longer than {MAX_JOB_ID_BYTES} bytes"),
        ));
    }
    for segment in id.split('.') {
        let ok = !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !segment.starts_with('-')
            && !segment.ends_with('-');
        if !ok {
            return Err(Invalid::new(
                field,
                format!(
                    "{id:?} is not a job id: use dot-separated segments of lowercase letters, digits and dashes, each starting and ending with a letter or digit"
                ),
            ));
        }
    }
    Ok(())
}

fn check_scalar(field: &str, value: f64, positive: bool) -> Result<(), Invalid> {
    if !value.is_finite() {
        return Err(Invalid::new(field, "must be a finite number"));
    }
    if positive && value <= 0.0 {
        return Err(Invalid::new(field, format!("must be > 0, got {value}")));
    }
    if value < 0.0 {
        return Err(Invalid::new(field, format!("must be >= 0, got {value}")));
    }
    if value > MAX_SCALAR {
        return Err(Invalid::new(
            field,
            format!("must be at most {MAX_SCALAR}, got {value}"),
        ));
    }
    Ok(())
}

fn check_token(field: &str, value: &str, what: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::new(field, format!("{what} must not be empty")));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(Invalid::new(
            field,
            format!("{what} {value:?} contains whitespace or control characters"),
        ));
    }
    Ok(())
}

impl RunSpec {
    /// The resources one run asks for, in the agent flag syntax.
    pub fn resources_text(&self) -> String {
        let mut parts = vec![format!("cpus:{}", self.cpus), format!("mem:{}", self.mem)];
        if self.disk > 0.0 {
            parts.push(format!("disk:{}", self.disk));
        }
        if self.gpus > 0.0 {
            parts.push(format!("gpus:{}", self.gpus));
        }
        parts.join(";")
    }

    fn validate(&self) -> Result<(), Invalid> {
        match (&self.cmd, self.args.is_empty()) {
            (Some(_), false) => {
                return Err(Invalid::new("run.cmd", "give either cmd or args, not both"));
            }
            (None, true) => return Err(Invalid::new("run.cmd", "give cmd or args")),
            (Some(cmd), true) if cmd.trim().is_empty() => {
                return Err(Invalid::new("run.cmd", "must not be empty"));
            }
            (None, false) if self.args[0].is_empty() => {
                return Err(Invalid::new("run.args[0]", "the program must not be empty"));
            }
            _ => {}
        }
        for name in self.env.keys() {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(Invalid::new(
                    format!("run.env.{name}"),
                    "an environment variable name must be non-empty without '=' or NUL",
                ));
            }
        }
        check_scalar("run.cpus", self.cpus, true)?;
        check_scalar("run.mem", self.mem, true)?;
        check_scalar("run.disk", self.disk, false)?;
        check_scalar("run.gpus", self.gpus, false)?;
        if self.gpus.fract() != 0.0 {
            return Err(Invalid::new("run.gpus", "must be a whole number"));
        }
        agora_sdk::Resources::parse(&self.resources_text())
            .map_err(|e| Invalid::new("run.cpus", format!("unusable resources: {e}")))?;
        if let Some(user) = &self.user {
            check_token("run.user", user, "a user")?;
        }
        if let Some(role) = &self.role {
            check_token("run.role", role, "a role")?;
        }
        for (i, a) in self.artifacts.iter().enumerate() {
            let field = format!("run.artifacts[{i}].uri");
            check_token(&field, &a.uri, "a uri")?;
            let ok = a.uri.starts_with('/')
                || ["http://", "https://", "file://"]
                    .iter()
                    .any(|s| a.uri.starts_with(s));
            if !ok {
                return Err(Invalid::new(
                    field,
                    format!("{:?} is not http(s)://, file:// or an absolute path", a.uri),
                ));
            }
        }
        for (i, c) in self.placement.constraints.iter().enumerate() {
            let field = format!("run.placement.constraints[{i}]");
            check_token(&format!("{field}.attribute"), &c.attribute, "an attribute")?;
            match c.operator {
                ConstraintOperator::Like | ConstraintOperator::Unlike => {
                    regex::Regex::new(&format!("^(?:{})$", c.value)).map_err(|e| {
                        Invalid::new(
                            format!("{field}.value"),
                            format!("not a regular expression: {e}"),
                        )
                    })?;
                }
                ConstraintOperator::Eq if c.value.is_empty() => {
                    return Err(Invalid::new(format!("{field}.value"), "EQ needs a value"));
                }
                _ => {}
            }
        }
        let r = &self.restart;
        if r.retries > MAX_RETRIES {
            return Err(Invalid::new(
                "run.restart.retries",
                format!("must be at most {MAX_RETRIES}"),
            ));
        }
        for (field, v) in [
            ("run.restart.backoffSeconds", r.backoff_seconds),
            ("run.restart.maxBackoffSeconds", r.max_backoff_seconds),
        ] {
            if !v.is_finite() || !(0.0..=MAX_BACKOFF_SECONDS).contains(&v) {
                return Err(Invalid::new(
                    field,
                    format!("must be between 0 and {MAX_BACKOFF_SECONDS} seconds"),
                ));
            }
        }
        if !r.backoff_factor.is_finite() || !(1.0..=10.0).contains(&r.backoff_factor) {
            return Err(Invalid::new(
                "run.restart.backoffFactor",
                "must be between 1 and 10",
            ));
        }
        if let Some(d) = self.active_deadline_seconds
            && !(1..=MAX_ACTIVE_DEADLINE_SECONDS).contains(&d)
        {
            return Err(Invalid::new(
                "run.activeDeadlineSeconds",
                format!("must be between 1 and {MAX_ACTIVE_DEADLINE_SECONDS}"),
            ));
        }
        if let Some(g) = self.task_kill_grace_period_seconds
            && (!g.is_finite() || !(0.0..=MAX_KILL_GRACE_SECONDS).contains(&g))
        {
            return Err(Invalid::new(
                "run.taskKillGracePeriodSeconds",
                format!("must be between 0 and {MAX_KILL_GRACE_SECONDS}"),
            ));
        }
        Ok(())
    }
}

impl JobSpec {
    /// Everything that can be checked on this definition alone. `roles`: the roles the
    /// daemon subscribed with (a run's role must be one of them).
    pub fn validate(&self, roles: &[String]) -> Result<(), Invalid> {
        check_job_id("id", &self.id)?;
        if self.description.len() > 4096 {
            return Err(Invalid::new("description", "is longer than 4096 bytes"));
        }
        if self.labels.len() > MAX_LABELS {
            return Err(Invalid::new(
                "labels",
                format!("more than {MAX_LABELS} labels"),
            ));
        }
        for (k, v) in &self.labels {
            if k.is_empty() || k.len() > 128 || v.len() > 1024 {
                return Err(Invalid::new(
                    format!("labels.{k}"),
                    "a label key must have 1 to 128 bytes and its value at most 1024",
                ));
            }
        }
        self.run.validate()?;
        if let Some(role) = &self.run.role
            && !roles.iter().any(|r| r == role)
        {
            return Err(Invalid::new(
                "run.role",
                format!(
                    "role {role:?} is not one of this daemon's roles ({})",
                    roles.join(", ")
                ),
            ));
        }
        if self.dependencies.len() > MAX_PARENTS {
            return Err(Invalid::new(
                "dependencies",
                format!("more than {MAX_PARENTS} parents"),
            ));
        }
        let mut seen = BTreeSet::new();
        for (i, p) in self.dependencies.iter().enumerate() {
            let field = format!("dependencies[{i}]");
            check_job_id(&field, p)?;
            if *p == self.id {
                return Err(Invalid::new(field, "a job cannot depend on itself"));
            }
            if !seen.insert(p) {
                return Err(Invalid::new(field, format!("{p:?} is listed twice")));
            }
        }
        if self.history_limit > MAX_HISTORY_LIMIT {
            return Err(Invalid::new(
                "historyLimit",
                format!("must be at most {MAX_HISTORY_LIMIT}"),
            ));
        }
        let mut ids = BTreeSet::new();
        for (i, s) in self.schedules.iter().enumerate() {
            s.validate()
                .map_err(|e| Invalid::new(format!("schedules[{i}].{}", e.field), e.message))?;
            if !ids.insert(&s.id) {
                return Err(Invalid::new(
                    format!("schedules[{i}].id"),
                    format!("{:?} is listed twice", s.id),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn job(id: &str) -> JobSpec {
        parse_job(format!(r#"{{"id":"{id}","run":{{"cmd":"true"}}}}"#).as_bytes()).unwrap()
    }

    fn roles() -> Vec<String> {
        vec!["default".into()]
    }

    fn refused(json: &str) -> Invalid {
        match parse_job(json.as_bytes()) {
            Err(e) => e,
            Ok(j) => j.validate(&roles()).expect_err("should be refused"),
        }
    }

    #[test]
    fn minimal_job_gets_defaults() {
        let j = job("nightly.report");
        assert!(j.validate(&roles()).is_ok());
        assert_eq!(j.run.cpus, 0.1);
        assert_eq!(j.run.mem, 32.0);
        assert_eq!(j.history_limit, 20);
        assert_eq!(j.concurrency_policy, ConcurrencyPolicy::Allow);
        assert_eq!(j.run.restart.max_attempts(), 1);
    }

    #[test]
    fn a_full_metronome_style_job_parses() {
        let j = parse_job(
            br#"{"id":"etl","description":"d","labels":{"team":"data"},
            "run":{"args":["/bin/echo","hi"],"env":{"A":"1"},"cpus":0.5,"mem":64,"disk":10,"gpus":1,
              "user":"nobody","artifacts":[{"uri":"https://x/y.tgz","extract":true}],
              "role":"default","placement":{"constraints":[{"attribute":"rack","operator":"LIKE","value":"r[0-9]"}]},
              "restart":{"policy":"ON_FAILURE","retries":2,"backoffSeconds":0.5},
              "activeDeadlineSeconds":60,"taskKillGracePeriodSeconds":2},
            "dependencies":["extract"],"concurrencyPolicy":"FORBID","historyLimit":5}"#,
        )
        .unwrap();
        j.validate(&roles()).unwrap();
        assert_eq!(j.run.restart.max_attempts(), 3);
        assert_eq!(j.run.resources_text(), "cpus:0.5;mem:64;disk:10;gpus:1");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (r#"{"id":"Bad_Id","run":{"cmd":"x"}}"#, "id"),
            (r#"{"id":"a","run":{"cmd":"x","cpus":0}}"#, "run.cpus"),
            (r#"{"id":"a","run":{"cmd":"x","mem":-1}}"#, "run.mem"),
            (r#"{"id":"a","run":{"cmd":"x","gpus":0.5}}"#, "run.gpus"),
            (r#"{"id":"a","run":{"cmd":"x","cpus":"lots"}}"#, "run.cpus"),
            (r#"{"id":"a","run":{}}"#, "run.cmd"),
            (r#"{"id":"a","run":{"cmd":"x","args":["y"]}}"#, "run.cmd"),
            (r#"{"id":"a","run":{"args":[""]}}"#, "run.args[0]"),
            (r#"{"id":"a"}"#, "run"),
            (r#"{"id":"a","run":{"cmd":"x"},"bogus":1}"#, "bogus"),
            (r#"{"id":"a","run":{"cmd":"x","bogus":1}}"#, "run.bogus"),
            (r#"{"id":"a","run":{"cmd":"x","role":"other"}}"#, "run.role"),
            (
                r#"{"id":"a","run":{"cmd":"x","placement":{"constraints":[{"attribute":"r","operator":"LIKE","value":"("}]}}}"#,
                "run.placement.constraints[0].value",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x","restart":{"policy":"ON_FAILURE","retries":1000}}}"#,
                "run.restart.retries",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x","restart":{"policy":"SOMETIMES"}}}"#,
                "run.restart.policy",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x","activeDeadlineSeconds":0}}"#,
                "run.activeDeadlineSeconds",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x","artifacts":[{"uri":"ftp://x"}]}}"#,
                "run.artifacts[0].uri",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x"},"dependencies":["a"]}"#,
                "dependencies[0]",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x"},"dependencies":["b","b"]}"#,
                "dependencies[1]",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x"},"historyLimit":100000}"#,
                "historyLimit",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x"},"schedules":[{"id":"s","cron":"not a cron"}]}"#,
                "schedules[0].cron",
            ),
            (
                r#"{"id":"a","run":{"cmd":"x"},"schedules":[{"id":"s","cron":"* * * * *","timezone":"Mars/Olympus"}]}"#,
                "schedules[0].timezone",
            ),
            ("{not json", "body"),
        ];
        for (json, field) in cases {
            let e = refused(json);
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn ids_follow_metronome_rules() {
        for ok in ["a", "a-b", "a.b-c.d9", "0"] {
            assert!(check_job_id("id", ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a..b", "A", "a_b", "a/b", &"x".repeat(65)] {
            assert!(check_job_id("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = RestartSpec {
            policy: RestartPolicyKind::OnFailure,
            retries: 10,
            backoff_seconds: 1.0,
            backoff_factor: 2.0,
            max_backoff_seconds: 5.0,
        };
        let waits: Vec<i64> = (2..=6).map(|a| r.backoff_ms(a)).collect();
        assert_eq!(waits, vec![1000, 2000, 4000, 5000, 5000]);
        assert_eq!(r.max_attempts(), 11);
    }
}

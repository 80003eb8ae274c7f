//! Mesos's agent `/state` (also at `/slave(1)/state`, where Mesos tools read it) on the
//! agent's `--listen` endpoint, so tools that find a task's sandbox through the agent
//! (its executor's `directory`, then `/files/read?path=...`) work against Agora.
//!
//! The shape: `id`, `pid`, `hostname`, `resources`, `attributes`, `flags`, `frameworks`
//! (each with `executors`, each with `tasks`, `queued_tasks`, `completed_tasks` and its
//! sandbox `directory`), `completed_frameworks`, as Mesos's agent answers it. A command
//! task is shown as Mesos shows it: run by its own command executor whose id is the
//! task's id. Ended executors come from the sandboxes still on disk (the agent forgets
//! ended tasks once their last update is delivered): `completed_executors` name their id
//! and `directory` only.
//!
//! Owns nothing: the live view comes from the state actor ([`AgentState::describe`]),
//! the rest from the agent's configuration ([`AgentFacts`]) and the sandboxes' directory.
//! It must never change state, and shows under `--http-acls` only the frameworks
//! (`view_frameworks`) and tasks (`view_tasks`) the caller may view.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agora_mesos::endpoints::{attributes, resources, task as task_json};
use agora_mesos::translate::{MESOS_VERSION, role_to_mesos};
use agora_proto::v1::{self, FrameworkInfo, TaskInfo, TaskState};
use axum::extract::{Extension, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::containerizer::executor_sandbox_name;
use crate::state::{AgentState, Description};

/// Most frameworks `completed_frameworks` lists (Mesos's `--max_completed_frameworks`
/// default).
pub const COMPLETED_FRAMEWORKS_MAX: usize = 50;
/// Most ended executors listed per framework (Mesos's
/// `--max_completed_executors_per_framework` default).
pub const COMPLETED_EXECUTORS_MAX_PER_FRAMEWORK: usize = 150;
/// Most sandbox directories read per framework while looking for ended executors.
pub const SANDBOXES_SCANNED_MAX_PER_FRAMEWORK: usize = 10_000;
/// Most framework directories read while looking for ended executors.
pub const FRAMEWORK_DIRS_SCANNED_MAX: usize = 1_000;

/// What the agent's configuration says about it, fixed at start.
#[derive(Clone, Debug, Default)]
pub struct AgentFacts {
    pub hostname: String,
    /// The `--listen` address (`HOST:PORT`), empty without one.
    pub address: String,
    pub resources: Vec<v1::Resource>,
    pub attributes: Vec<v1::Attribute>,
    /// The masters' addresses, in the order the agent tries them.
    pub masters: Vec<String>,
    /// Mesos's `flags` object: Agora's settings by Mesos's names where one exists.
    pub flags: BTreeMap<String, String>,
    /// When the agent started, in seconds since the epoch.
    pub start_time_s: f64,
}

impl AgentFacts {
    /// The facts of an agent started with `config` whose containerizer isolates with
    /// `isolation`.
    pub fn of(config: &crate::agent::AgentConfig, isolation: &str) -> AgentFacts {
        let masters: Vec<String> = config.masters.iter().map(ToString::to_string).collect();
        let work_dir =
            std::fs::canonicalize(&config.work_dir).unwrap_or_else(|_| config.work_dir.clone());
        let port = config
            .advertise_address
            .rsplit_once(':')
            .map(|(_, p)| p.to_string())
            .unwrap_or_default();
        let flags: BTreeMap<String, String> = [
            ("master", masters.join(",")),
            ("work_dir", work_dir.to_string_lossy().into_owned()),
            ("hostname", config.hostname.clone()),
            ("advertise_address", config.advertise_address.clone()),
            ("port", port),
            ("resources", config.resources.to_string()),
            ("isolation", isolation.to_string()),
            ("gc_delay", format!("{}secs", config.gc.delay.as_secs())),
            ("default_user", config.users.default_user.clone()),
            ("allow_root_tasks", config.users.allow_root.to_string()),
            (
                "authenticate_http_readonly",
                config.http_security.authenticate.to_string(),
            ),
            (
                "mesos_executors_without_token",
                config
                    .http_security
                    .mesos_executors_without_token
                    .to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let start_time_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        AgentFacts {
            hostname: config.hostname.clone(),
            address: config.advertise_address.clone(),
            resources: config.resources.to_proto(),
            attributes: config.attributes.to_proto(),
            masters,
            flags,
            start_time_s,
        }
    }
}

/// The caller's verified principal (set by the HTTP guard), for the view ACLs.
#[derive(Clone, Debug, Default)]
pub struct Principal(pub Option<String>);

#[derive(Clone)]
pub(crate) struct Ctx {
    pub state: AgentState,
    /// Canonical: the `directory` shown is the path `/files/*` take.
    pub work_dir: PathBuf,
    pub facts: Arc<AgentFacts>,
    pub acls: Option<agora_auth::Acls>,
}

/// Who may view what: without ACLs everything.
struct View<'a> {
    acls: Option<&'a agora_auth::Acls>,
    principal: Option<&'a str>,
}

impl View<'_> {
    fn allows(&self, action: agora_auth::Action, user: &str) -> bool {
        self.acls
            .is_none_or(|a| a.decide(self.principal, action, user).allowed())
    }
}

pub(crate) async fn state(
    State(ctx): State<Ctx>,
    principal: Option<Extension<Principal>>,
) -> Response {
    let described = ctx.state.describe().await;
    let live = live_sandboxes(&described);
    let work_dir = ctx.work_dir.clone();
    let ended = tokio::task::spawn_blocking(move || ended_sandboxes(&work_dir, &live))
        .await
        .unwrap_or_default();
    let principal = principal.and_then(|Extension(Principal(p))| p);
    let view = View {
        acls: ctx.acls.as_ref(),
        principal: principal.as_deref(),
    };
    axum::Json(render(&ctx.work_dir, &ctx.facts, &described, &ended, &view)).into_response()
}

/// (framework id, sandbox name) of every live executor and command task.
fn live_sandboxes(d: &Description) -> HashSet<(String, String)> {
    let mut live: HashSet<(String, String)> = d
        .executors
        .iter()
        .map(|e| {
            (
                e.framework_id.clone(),
                executor_sandbox_name(&e.info.executor_id),
            )
        })
        .collect();
    for t in &d.snapshot.tasks {
        if let Some(info) = &t.task {
            live.insert((t.framework_id.clone(), info.task_id.clone()));
        }
    }
    live
}

/// Per framework id, the sandboxes on disk that no live executor or task owns, newest
/// first, at most [`COMPLETED_EXECUTORS_MAX_PER_FRAMEWORK`] each.
fn ended_sandboxes(
    work_dir: &Path,
    live: &HashSet<(String, String)>,
) -> BTreeMap<String, Vec<(String, PathBuf)>> {
    let mut out = BTreeMap::new();
    let Ok(frameworks) = std::fs::read_dir(work_dir.join("sandboxes")) else {
        return out;
    };
    for fw in frameworks
        .flatten()
        .take(SANDBOXES_SCANNED_MAX_PER_FRAMEWORK)
    {
        let fw_id = fw.file_name().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir(fw.path()) else {
            continue;
        };
        let mut ended: Vec<(std::time::SystemTime, String, PathBuf)> = entries
            .flatten()
            .take(SANDBOXES_SCANNED_MAX_PER_FRAMEWORK)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let modified = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (modified, name, e.path())
            })
            .filter(|(_, name, _)| !live.contains(&(fw_id.clone(), name.clone())))
            .collect();
        ended.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        ended.truncate(COMPLETED_EXECUTORS_MAX_PER_FRAMEWORK);
        if !ended.is_empty() {
            out.insert(fw_id, ended.into_iter().map(|(_, n, p)| (n, p)).collect());
        }
    }
    out
}

fn framework_json(f: &FrameworkInfo) -> Value {
    let roles: Vec<String> = f.roles.iter().map(|r| role_to_mesos(r)).collect();
    json!({
        "id": f.id,
        "name": f.name,
        "user": f.user,
        "hostname": f.hostname,
        "principal": f.principal,
        "role": roles.first().cloned().unwrap_or_else(|| "*".into()),
        "roles": roles,
        "failover_timeout": f.failover_timeout_seconds,
        "checkpoint": f.checkpoint,
    })
}

/// An executor object; `tasks` are (info, state) of its tasks.
#[allow(clippy::too_many_arguments)]
fn executor_json(
    id: &str,
    name: &str,
    kind: &str,
    framework_id: &str,
    directory: &Path,
    executor_resources: &[v1::Resource],
    tasks: &[(&TaskInfo, TaskState)],
) -> Value {
    let (done, live): (Vec<_>, Vec<_>) = tasks.iter().partition(|(_, s)| s.is_terminal());
    let render = |ts: Vec<&(&TaskInfo, TaskState)>| {
        ts.into_iter()
            .map(|(info, s)| task_json(info, framework_id, *s as i32, Vec::new()))
            .collect::<Vec<_>>()
    };
    let role = tasks
        .iter()
        .flat_map(|(t, _)| t.resources.iter())
        .chain(executor_resources)
        .find_map(|r| r.reservation.as_ref().map(|x| role_to_mesos(&x.role)))
        .unwrap_or_else(|| "*".into());
    json!({
        "id": id,
        "name": name,
        "source": id,
        "container": "",
        "type": kind,
        "framework_id": framework_id,
        "directory": directory.to_string_lossy(),
        "resources": resources(executor_resources),
        "role": role,
        "tasks": render(live),
        "queued_tasks": [],
        "completed_tasks": render(done),
    })
}

fn ended_executor_json(framework_id: &str, sandbox: &str, directory: &Path) -> Value {
    let id = sandbox.strip_prefix("executor.").unwrap_or(sandbox);
    executor_json(id, "", "UNKNOWN", framework_id, directory, &[], &[])
}

fn render(
    work_dir: &Path,
    facts: &AgentFacts,
    d: &Description,
    ended: &BTreeMap<String, Vec<(String, PathBuf)>>,
    view: &View,
) -> Value {
    use agora_auth::Action;
    let sandbox = |fw: &str, name: &str| work_dir.join("sandboxes").join(fw).join(name);
    let executor_tasks: HashSet<(&str, &str)> = d
        .executors
        .iter()
        .flat_map(|e| {
            e.tasks
                .iter()
                .map(move |(t, _)| (e.framework_id.as_str(), t.task_id.as_str()))
        })
        .collect();
    let mut frameworks = Vec::new();
    let mut shown: HashSet<&str> = HashSet::new();
    for f in &d.snapshot.frameworks {
        if !view.allows(Action::ViewFrameworks, &f.user) {
            continue;
        }
        shown.insert(f.id.as_str());
        let task_visible =
            |t: &TaskInfo| view.allows(Action::ViewTasks, agora_auth::task_user(t, &f.user));
        let mut executors = Vec::new();
        // Command tasks: each its own command executor, as in Mesos.
        for t in d.snapshot.tasks.iter().filter(|t| t.framework_id == f.id) {
            let Some(info) = &t.task else { continue };
            if executor_tasks.contains(&(f.id.as_str(), info.task_id.as_str()))
                || !task_visible(info)
            {
                continue;
            }
            let state = TaskState::try_from(t.state).unwrap_or(TaskState::Staging);
            executors.push(executor_json(
                &info.task_id,
                &format!("Command Executor (Task: {})", info.task_id),
                "COMMAND",
                &f.id,
                &sandbox(&f.id, &info.task_id),
                &info.resources,
                &[(info, state)],
            ));
        }
        for e in d.executors.iter().filter(|e| e.framework_id == f.id) {
            let tasks: Vec<(&TaskInfo, TaskState)> = e
                .tasks
                .iter()
                .filter(|(t, _)| task_visible(t))
                .map(|(t, s)| (t, *s))
                .collect();
            executors.push(executor_json(
                &e.info.executor_id,
                &e.info.name,
                if e.info.command.is_some() {
                    "CUSTOM"
                } else {
                    "DEFAULT"
                },
                &f.id,
                &sandbox(&f.id, &executor_sandbox_name(&e.info.executor_id)),
                &e.info.resources,
                &tasks,
            ));
        }
        let completed: Vec<Value> = ended
            .get(&f.id)
            .into_iter()
            .flatten()
            .map(|(name, dir)| ended_executor_json(&f.id, name, dir))
            .collect();
        let mut v = framework_json(f);
        if let Some(o) = v.as_object_mut() {
            o.insert("executors".into(), Value::Array(executors));
            o.insert("completed_executors".into(), Value::Array(completed));
        }
        frameworks.push(v);
    }
    // Frameworks with nothing live here: known only by their sandboxes (user unknown,
    // so viewable where the ACLs allow the object "").
    let live_ids: HashSet<&str> = d
        .snapshot
        .frameworks
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    let completed_frameworks: Vec<Value> = if view.allows(Action::ViewFrameworks, "") {
        ended
            .iter()
            .filter(|(id, _)| !live_ids.contains(id.as_str()) && !shown.contains(id.as_str()))
            .take(COMPLETED_FRAMEWORKS_MAX)
            .map(|(id, sandboxes)| {
                json!({
                    "id": id,
                    "executors": [],
                    "completed_executors": sandboxes
                        .iter()
                        .map(|(name, dir)| ended_executor_json(id, name, dir))
                        .collect::<Vec<_>>(),
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    let master_hostname = facts
        .masters
        .first()
        .map(|m| m.rsplit_once(':').map_or(m.as_str(), |(h, _)| h))
        .unwrap_or("")
        .trim_matches(|c| c == '[' || c == ']')
        .to_string();
    json!({
        "version": MESOS_VERSION,
        "agora_version": env!("CARGO_PKG_VERSION"),
        "git_sha": option_env!("AGORA_GIT_SHA").unwrap_or(""),
        "build_date": "",
        "build_time": 0,
        "build_user": "",
        "start_time": facts.start_time_s,
        "id": d.agent_id,
        "pid": format!("slave(1)@{}", facts.address),
        "hostname": facts.hostname,
        "capabilities": ["MULTI_ROLE", "RESERVATION_REFINEMENT"],
        "resources": resources(&facts.resources),
        "reserved_resources": agora_mesos::endpoints::reserved_by_role(&facts.resources),
        "unreserved_resources": resources(
            &facts.resources.iter().filter(|r| r.reservation.is_none()).cloned().collect::<Vec<_>>()
        ),
        "attributes": attributes(&facts.attributes),
        "master_hostname": master_hostname,
        "log_dir": "",
        "flags": facts.flags,
        "frameworks": frameworks,
        "completed_frameworks": completed_frameworks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::DescribedExecutor;

    fn framework(id: &str, user: &str) -> FrameworkInfo {
        FrameworkInfo {
            id: id.into(),
            user: user.into(),
            name: format!("{id}-name"),
            ..Default::default()
        }
    }

    fn task(id: &str) -> TaskInfo {
        TaskInfo {
            task_id: id.into(),
            name: id.into(),
            agent_id: "A1".into(),
            ..Default::default()
        }
    }

    fn described() -> Description {
        Description {
            agent_id: "A1".into(),
            snapshot: crate::state::Snapshot {
                tasks: vec![
                    v1::RunningTask {
                        task: Some(task("cmd")),
                        framework_id: "F1".into(),
                        state: TaskState::Running as i32,
                    },
                    v1::RunningTask {
                        task: Some(task("in-exec")),
                        framework_id: "F1".into(),
                        state: TaskState::Running as i32,
                    },
                    v1::RunningTask {
                        task: Some(task("bobs")),
                        framework_id: "F2".into(),
                        state: TaskState::Staging as i32,
                    },
                ],
                frameworks: vec![framework("F1", "alice"), framework("F2", "bob")],
            },
            executors: vec![DescribedExecutor {
                framework_id: "F1".into(),
                info: v1::ExecutorInfo {
                    executor_id: "E1".into(),
                    name: "custom".into(),
                    command: Some(v1::CommandInfo::default()),
                    ..Default::default()
                },
                tasks: vec![
                    (task("in-exec"), TaskState::Running),
                    (task("done"), TaskState::Finished),
                ],
            }],
        }
    }

    fn facts() -> AgentFacts {
        AgentFacts {
            hostname: "h1".into(),
            address: "10.0.0.1:5051".into(),
            masters: vec!["m1:5050".into()],
            ..Default::default()
        }
    }

    #[test]
    fn shows_command_tasks_as_command_executors_and_custom_executors_with_their_tasks() {
        let ended = BTreeMap::from([
            (
                "F1".to_string(),
                vec![("old".to_string(), PathBuf::from("/w/sandboxes/F1/old"))],
            ),
            (
                "F9".to_string(),
                vec![(
                    "executor.x".to_string(),
                    PathBuf::from("/w/sandboxes/F9/executor.x"),
                )],
            ),
        ]);
        let all = View {
            acls: None,
            principal: None,
        };
        let v = render(Path::new("/w"), &facts(), &described(), &ended, &all);
        assert_eq!(v["id"], "A1");
        assert_eq!(v["pid"], "slave(1)@10.0.0.1:5051");
        assert_eq!(v["master_hostname"], "m1");
        let f1 = &v["frameworks"][0];
        assert_eq!(f1["id"], "F1");
        let executors = f1["executors"].as_array().expect("executors");
        assert_eq!(executors.len(), 2, "{f1}");
        assert_eq!(executors[0]["id"], "cmd");
        assert_eq!(executors[0]["type"], "COMMAND");
        assert_eq!(executors[0]["directory"], "/w/sandboxes/F1/cmd");
        assert_eq!(executors[0]["tasks"][0]["state"], "TASK_RUNNING");
        assert_eq!(executors[1]["id"], "E1");
        assert_eq!(executors[1]["directory"], "/w/sandboxes/F1/executor.E1");
        assert_eq!(executors[1]["tasks"][0]["id"], "in-exec");
        assert_eq!(executors[1]["completed_tasks"][0]["id"], "done");
        assert_eq!(f1["completed_executors"][0]["id"], "old");
        assert_eq!(v["completed_frameworks"][0]["id"], "F9");
        assert_eq!(
            v["completed_frameworks"][0]["completed_executors"][0]["id"],
            "x"
        );
        assert_eq!(v["frameworks"][1]["executors"][0]["id"], "bobs");
    }

    #[test]
    fn acls_hide_frameworks_and_tasks_the_caller_may_not_view() {
        let acls = agora_auth::Acls::parse(
            r#"{"view_frameworks": [{"principals": ["ops"], "objects": ["alice"]}],
                "view_tasks": [{"principals": ["ops"], "objects": "ANY"}]}"#,
        )
        .expect("acls");
        let ended = BTreeMap::from([(
            "F9".to_string(),
            vec![("t".to_string(), PathBuf::from("/w/sandboxes/F9/t"))],
        )]);
        let ops = View {
            acls: Some(&acls),
            principal: Some("ops"),
        };
        let v = render(Path::new("/w"), &facts(), &described(), &ended, &ops);
        let ids: Vec<&str> = v["frameworks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["id"].as_str())
            .collect();
        assert_eq!(ids, ["F1"], "{v}");
        assert_eq!(v["completed_frameworks"], json!([]), "{v}");
        let nobody = View {
            acls: Some(&acls),
            principal: None,
        };
        let v = render(Path::new("/w"), &facts(), &described(), &ended, &nobody);
        assert_eq!(v["frameworks"], json!([]), "{v}");
    }
}

//! `agora state`, `agora agents`, `agora frameworks`, `agora tasks`: read the master's
//! `GetState` over the Operator gRPC API and print it as tables or JSON.
//!
//! Read-only: this module must never call an Operator method that changes anything. The
//! formatting functions are pure (they take a `ClusterState`) and unit-tested. JSON comes
//! from `agora-views`, the master's HTTP API's own shapes, never from here.

use std::collections::BTreeMap;
use std::time::Duration;

use agora_proto::v1::operator_client::OperatorClient;
use agora_proto::v1::{ClusterState, Empty, UsageResponse};
use agora_resources::{Attributes, Resources};
use agora_views::state as views;
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::table;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Which view to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    State,
    Agents,
    Frameworks,
    Tasks,
}

/// Fetch the cluster state from the first master that answers.
pub async fn fetch(
    masters: &[String],
    security: &crate::args::SecurityArgs,
) -> anyhow::Result<ClusterState> {
    first_answer(masters, security, "GetState", |mut c| async move {
        c.get_state(Empty {}).await.map(|r| r.into_inner())
    })
    .await
}

/// Fetch every agent's latest usage report from the first master that answers.
pub async fn fetch_usage(
    masters: &[String],
    security: &crate::args::SecurityArgs,
) -> anyhow::Result<UsageResponse> {
    first_answer(masters, security, "GetUsage", |mut c| async move {
        c.get_usage(Empty {}).await.map(|r| r.into_inner())
    })
    .await
}

type Client = OperatorClient<InterceptedService<Channel, agora_sdk::connect::AuthInterceptor>>;

/// The answer of `call` from the first master that answers it.
async fn first_answer<T, F, Fut>(
    masters: &[String],
    security: &crate::args::SecurityArgs,
    name: &str,
    call: F,
) -> anyhow::Result<T>
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let (credential, tls) = security.load()?;
    let interceptor = agora_sdk::connect::interceptor(credential.as_ref())?;
    let mut errors = Vec::new();
    let mut queue: std::collections::VecDeque<String> = masters.iter().cloned().collect();
    let mut redirects = 0;
    while let Some(address) = queue.pop_front() {
        let mut leader = None;
        let answer = match connect(&address, tls.as_ref(), interceptor.clone()).await {
            Ok(client) => call(client).await.map_err(|status| {
                leader = agora_sdk::leader_named_by(&status, &address);
                format!("{name} failed: {:?}: {}", status.code(), status.message())
            }),
            Err(e) => Err(e),
        };
        match answer {
            Ok(value) => return Ok(value),
            Err(e) => errors.push(format!("{address}: {e}")),
        }
        // A master that is not the leader names it: ask the leader next.
        if let Some(leader) = leader.filter(|l| *l != address)
            && redirects < agora_sdk::MAX_LEADER_REDIRECTS
        {
            redirects += 1;
            queue.push_front(leader);
        }
    }
    anyhow::bail!(
        "cannot reach the master ({}); is it running? (`agora local` starts a local cluster)",
        errors.join("; ")
    )
}

async fn connect(
    address: &str,
    tls: Option<&agora_sdk::TlsOptions>,
    interceptor: agora_sdk::connect::AuthInterceptor,
) -> Result<Client, String> {
    let uri = agora_sdk::master_uri(address).map_err(|e| e.to_string())?;
    let endpoint = agora_sdk::connect::endpoint(&uri, tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Err(_) => Err("connection timed out".into()),
        Ok(Err(e)) => Err(error_chain(&e)),
        Ok(Ok(c)) => Ok(OperatorClient::with_interceptor(c, interceptor)),
    }
}

/// An error and its sources, joined by ": ".
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// The text to print for `view`.
pub fn render(state: &ClusterState, view: View, as_json: bool) -> String {
    if as_json {
        let v = match view {
            View::State => views::state_json(state),
            View::Agents => Value::Array(state.agents.iter().map(views::agent_json).collect()),
            View::Frameworks => {
                Value::Array(state.frameworks.iter().map(views::framework_json).collect())
            }
            View::Tasks => Value::Array(state.tasks.iter().map(views::task_json).collect()),
        };
        // Serialising a `Value` cannot fail.
        let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
        s.push('\n');
        return s;
    }
    match view {
        View::Agents => agents_table(state),
        View::Frameworks => frameworks_table(state),
        View::Tasks => tasks_table(state),
        View::State => {
            let mut out = summary(state);
            for (title, body) in [
                ("ROLES", roles_table(state)),
                ("AGENTS", agents_table(state)),
                ("FRAMEWORKS", frameworks_table(state)),
                ("TASKS", tasks_table(state)),
            ] {
                out.push('\n');
                out.push_str(&format!("{title}\n"));
                out.push_str(&body);
            }
            out
        }
    }
}

// ---- text ----------------------------------------------------------------------------

fn dash(s: &str) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s.to_string()
    }
}

/// Resources in the flag syntax (`cpus:2;mem:1024`), `-` when empty.
pub fn resources_text(items: &[agora_proto::v1::Resource]) -> String {
    match Resources::from_proto(items) {
        Ok(r) if r.is_empty() => "-".into(),
        Ok(r) => r.to_string(),
        Err(e) => format!("<invalid: {e}>"),
    }
}

fn attributes_text(items: &[agora_proto::v1::Attribute]) -> String {
    match Attributes::from_proto(items) {
        Ok(a) if a.is_empty() => "-".into(),
        Ok(a) => a
            .iter()
            .map(|attr| format!("{}:{}", attr.name, attr.value))
            .collect::<Vec<_>>()
            .join(";"),
        Err(e) => format!("<invalid: {e}>"),
    }
}

fn counts<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    for i in items {
        *m.entry(if i.is_empty() { "unknown" } else { i })
            .or_default() += 1;
    }
    m.iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn with_counts(n: usize, detail: String) -> String {
    if n == 0 {
        "0".into()
    } else {
        format!("{n} ({detail})")
    }
}

/// A few lines: master id and counts.
pub fn summary(state: &ClusterState) -> String {
    let rows = vec![
        vec!["master".to_string(), dash(&state.master_id)],
        vec![
            "agents".into(),
            with_counts(
                state.agents.len(),
                counts(state.agents.iter().map(|a| a.status.as_str())),
            ),
        ],
        vec![
            "frameworks".into(),
            with_counts(
                state.frameworks.len(),
                counts(state.frameworks.iter().map(|f| f.status.as_str())),
            ),
        ],
        vec![
            "tasks".into(),
            with_counts(
                state.tasks.len(),
                counts(state.tasks.iter().map(|t| t.state().as_str_name())),
            ),
        ],
        vec![
            "offers".into(),
            format!("{} outstanding", state.offers.len()),
        ],
    ];
    // No header line for the summary: drop the first (empty) line of the table.
    let t = table::render(&["", ""], &rows);
    t.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

pub fn agents_table(state: &ClusterState) -> String {
    let rows: Vec<Vec<String>> = state
        .agents
        .iter()
        .map(|a| {
            let info = a.info.clone().unwrap_or_default();
            vec![
                dash(&info.id),
                dash(&info.hostname),
                dash(&info.address),
                dash(&a.status),
                resources_text(&a.total),
                resources_text(&a.allocated),
                resources_text(&a.offered),
                attributes_text(&info.attributes),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "HOSTNAME",
            "ADDRESS",
            "STATUS",
            "TOTAL",
            "ALLOCATED",
            "OFFERED",
            "ATTRIBUTES",
        ],
        &rows,
    )
}

/// One row per container of every agent's latest usage report.
pub fn usage_table(usage: &UsageResponse) -> String {
    let mib = |b: u64| format!("{:.1}", b as f64 / f64::from(1u32 << 20));
    let rows: Vec<Vec<String>> = usage
        .agents
        .iter()
        .flat_map(|a| {
            a.containers.iter().map(move |c| {
                let throttled = if c.cpu_periods > 0 {
                    format!(
                        "{:.1}%",
                        100.0 * c.cpu_throttled_periods as f64 / c.cpu_periods as f64
                    )
                } else {
                    "-".to_string()
                };
                vec![
                    dash(&a.hostname),
                    dash(&c.framework_id),
                    dash(if c.task_id.is_empty() {
                        &c.executor_id
                    } else {
                        &c.task_id
                    }),
                    format!("{:.2}", c.cpu_time_ns as f64 / 1e9),
                    throttled,
                    mib(c.memory_bytes),
                    c.memory_limit_bytes.map_or_else(|| "-".to_string(), mib),
                    c.pids_current.to_string(),
                    c.oom_kills.to_string(),
                ]
            })
        })
        .collect();
    table::render(
        &[
            "HOSTNAME",
            "FRAMEWORK",
            "TASK",
            "CPU_SECONDS",
            "THROTTLED",
            "MEM_MIB",
            "LIMIT_MIB",
            "PIDS",
            "OOM_KILLS",
        ],
        &rows,
    )
}

pub fn frameworks_table(state: &ClusterState) -> String {
    let rows: Vec<Vec<String>> = state
        .frameworks
        .iter()
        .map(|f| {
            let info = f.info.clone().unwrap_or_default();
            vec![
                dash(&info.id),
                dash(&info.name),
                dash(&info.roles.join(",")),
                dash(&f.status),
                f.active_tasks.to_string(),
                resources_text(&f.allocated),
                resources_text(&f.offered),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "NAME",
            "ROLES",
            "STATUS",
            "TASKS",
            "ALLOCATED",
            "OFFERED",
        ],
        &rows,
    )
}

pub fn tasks_table(state: &ClusterState) -> String {
    let rows: Vec<Vec<String>> = state
        .tasks
        .iter()
        .map(|t| {
            let info = t.task.clone().unwrap_or_default();
            let message = t
                .latest_status
                .as_ref()
                .map(|s| s.message.clone())
                .unwrap_or_default();
            vec![
                dash(&info.task_id),
                dash(&info.name),
                dash(&t.framework_id),
                dash(agora_views::state::task_agent(t)),
                t.state().as_str_name().to_string(),
                resources_text(&info.resources),
                dash(&message),
            ]
        })
        .collect();
    table::render(
        &[
            "ID",
            "NAME",
            "FRAMEWORK",
            "AGENT",
            "STATE",
            "RESOURCES",
            "MESSAGE",
        ],
        &rows,
    )
}

pub fn roles_table(state: &ClusterState) -> String {
    let rows: Vec<Vec<String>> = state
        .roles
        .iter()
        .map(|r| {
            vec![
                dash(&r.name),
                format!("{}", r.weight),
                resources_text(&r.allocated),
                format!("{:.2}%", r.dominant_share * 100.0),
                dash(&r.frameworks.join(",")),
            ]
        })
        .collect();
    table::render(
        &[
            "ROLE",
            "WEIGHT",
            "ALLOCATED",
            "DOMINANT SHARE",
            "FRAMEWORKS",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{
        AgentInfo, AgentState, CommandInfo, FrameworkCapability, FrameworkInfo, FrameworkState,
        RoleState, TaskInfo, TaskRecord, TaskState, TaskStatus, command_info,
    };

    fn res(text: &str) -> Vec<agora_proto::v1::Resource> {
        Resources::parse(text).unwrap().to_proto()
    }

    fn sample() -> ClusterState {
        let mut task = TaskRecord {
            task: Some(TaskInfo {
                task_id: "job-0".into(),
                name: "job".into(),
                agent_id: "a1".into(),
                resources: res("cpus:0.5;mem:32"),
                command: Some(CommandInfo {
                    run: Some(command_info::Run::Argv(command_info::Argv {
                        args: vec!["sleep".into(), "1".into()],
                    })),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            framework_id: "fw1".into(),
            latest_status: Some(TaskStatus {
                task_id: "job-0".into(),
                agent_id: "a1".into(),
                message: "command exited with status 3".into(),
                exit_code: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        };
        task.set_state(TaskState::Failed);
        ClusterState {
            master_id: "m1".into(),
            agents: vec![AgentState {
                info: Some(AgentInfo {
                    id: "a1".into(),
                    hostname: "local-agent-1".into(),
                    address: "127.0.0.1:5051".into(),
                    attributes: Attributes::parse("rack:r1").unwrap().to_proto(),
                    ..Default::default()
                }),
                status: "registered".into(),
                total: res("cpus:4;mem:1024"),
                allocated: res("cpus:0.5;mem:32"),
                ..Default::default()
            }],
            frameworks: vec![FrameworkState {
                info: Some(FrameworkInfo {
                    id: "fw1".into(),
                    name: "agora-run".into(),
                    roles: vec!["eng".into()],
                    capabilities: vec![FrameworkCapability::PartitionAware as i32, 999],
                    ..Default::default()
                }),
                status: "connected".into(),
                active_tasks: 1,
                ..Default::default()
            }],
            tasks: vec![task],
            offers: vec![],
            roles: vec![RoleState {
                name: "eng".into(),
                weight: 2.5,
                dominant_share: 0.125,
                frameworks: vec!["fw1".into()],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn usage_table_has_a_row_per_container_with_units() {
        let usage = UsageResponse {
            agents: vec![agora_proto::v1::AgentUsage {
                agent_id: "a1".into(),
                hostname: "h1".into(),
                containers: vec![
                    agora_proto::v1::ContainerUsage {
                        framework_id: "f".into(),
                        task_id: "t1".into(),
                        cpu_time_ns: 1_500_000_000,
                        cpu_periods: 10,
                        cpu_throttled_periods: 5,
                        memory_bytes: 3 << 20,
                        memory_limit_bytes: Some(64 << 20),
                        pids_current: 2,
                        ..Default::default()
                    },
                    agora_proto::v1::ContainerUsage {
                        framework_id: "f".into(),
                        executor_id: "e1".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        };
        let t = usage_table(&usage);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("HOSTNAME"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            ["h1", "f", "t1", "1.50", "50.0%", "3.0", "64.0", "2", "0"]
        );
        let cells: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(cells, ["h1", "f", "e1", "0.00", "-", "0.0", "-", "0", "0"]);
    }

    #[test]
    fn agents_table_shows_resources_in_flag_syntax() {
        let t = agents_table(&sample());
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID  HOSTNAME"), "{t}");
        assert!(lines[1].contains("local-agent-1"), "{t}");
        assert!(lines[1].contains("registered"), "{t}");
        assert!(lines[1].contains("cpus:4;mem:1024"), "{t}");
        assert!(lines[1].contains("rack:r1"), "{t}");
        assert!(lines[1].contains("  -  "), "offered is empty: {t}");
    }

    #[test]
    fn tasks_and_frameworks_tables() {
        let s = sample();
        let t = tasks_table(&s);
        assert!(t.lines().nth(1).unwrap().contains("FAILED"), "{t}");
        assert!(t.contains("command exited with status 3"), "{t}");
        let f = frameworks_table(&s);
        assert!(f.lines().nth(1).unwrap().contains("agora-run"), "{f}");
        assert!(f.contains("connected"), "{f}");
    }

    #[test]
    fn summary_counts_by_status() {
        let s = summary(&sample());
        assert!(s.contains("master      m1"), "{s}");
        assert!(s.contains("agents      1 (1 registered)"), "{s}");
        assert!(s.contains("tasks       1 (1 FAILED)"), "{s}");
        assert!(s.contains("offers      0 outstanding"), "{s}");
        let empty = summary(&ClusterState::default());
        assert!(empty.contains("agents      0"), "{empty}");
    }

    #[test]
    fn full_state_has_every_section() {
        let out = render(&sample(), View::State, false);
        for section in ["ROLES", "AGENTS", "FRAMEWORKS", "TASKS"] {
            assert!(out.contains(&format!("\n{section}\n")), "{out}");
        }
        assert!(out.contains("12.50%"), "{out}");
    }

    #[test]
    fn invalid_resources_are_shown_not_hidden() {
        let bad = vec![agora_proto::v1::Resource::default()];
        assert!(resources_text(&bad).starts_with("<invalid: "));
        assert_eq!(resources_text(&[]), "-");
    }

    #[test]
    fn json_views() {
        let s = sample();
        let v: Value = serde_json::from_str(&render(&s, View::State, true)).unwrap();
        assert_eq!(v, views::state_json(&s), "the CLI prints the views' shape");
        assert_eq!(v["master_id"], "m1");
        assert_eq!(v["tasks"][0]["state"], "FAILED");
        assert_eq!(v["tasks"][0]["agent_id"], "a1");
        assert_eq!(v["tasks"][0]["command"]["argv"][0], "sleep");
        assert_eq!(v["tasks"][0]["status"]["exit_code"], 3);
        assert_eq!(v["frameworks"][0]["capabilities"][0], "PARTITION_AWARE");
        assert!(v["frameworks"][0]["capabilities"][1].is_null());
        assert_eq!(v["agents"][0]["attributes"]["rack"], "r1");
        assert_eq!(v["roles"][0]["weight"], 2.5);
        let agents: Value = serde_json::from_str(&render(&s, View::Agents, true)).unwrap();
        assert_eq!(agents[0]["hostname"], "local-agent-1");
        assert_eq!(
            agents[0]["resources"],
            Resources::parse("cpus:4;mem:1024").unwrap().to_json()
        );
    }

    #[test]
    fn error_chain_joins_sources() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("transport error")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(error_chain(&e), "transport error: connection refused");
    }

    #[tokio::test]
    async fn unreachable_master_is_a_clear_error() {
        // Port 1 on localhost: nothing listens there.
        let e = fetch(&["127.0.0.1:1".into()], &Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot reach the master"), "{e}");
        assert!(e.contains("127.0.0.1:1"), "{e}");
        let e = fetch(&["ftp://x".into()], &Default::default())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported scheme"), "{e}");
    }
}

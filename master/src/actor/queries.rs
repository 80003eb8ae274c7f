//! Narrow reads of the master's state: one framework, one agent, the agent and framework
//! lists, roles, weights, and tasks filtered by framework, agent and state with paging.
//! Each query carries its own typed reply, so callers that need one field no longer build
//! the whole `ClusterState` (megabytes at 10,000 agents); that stays for `/api/v1/state`.
//!
//! Read-only: a query must never change state, and answers copies, never references.

use agora_proto::TaskState;
use agora_proto::v1;
use tokio::sync::oneshot;

use super::{Master, TaskEntry};
use crate::state::framework::FrameworkStatus;

/// Tasks in one page when the caller names no limit.
pub const TASKS_PAGE_DEFAULT: usize = 100;
/// Most tasks in one page.
pub const TASKS_PAGE_MAX: usize = 1000;

/// What the master knows of one framework id.
#[derive(Clone, Debug, Default)]
pub struct FrameworkLookup {
    /// Whether the master knows the framework (retired ids included while remembered).
    pub known: bool,
    /// The framework's state, if the master knows it and it was asked for.
    pub state: Option<v1::FrameworkState>,
    /// Whether it is subscribed now (its calls are accepted).
    pub connected: bool,
    /// Whether the id was torn down (retired for good).
    pub torn_down: bool,
}

/// Which tasks a `Tasks` query selects (all given conditions hold) and which page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub framework_id: Option<String>,
    pub agent_id: Option<String>,
    pub state: Option<TaskState>,
    /// Only the task with this id (with `framework_id`, found without a scan).
    pub task_id: Option<String>,
    /// Only tasks whose id or name contains this text.
    pub name: Option<String>,
    /// Matching tasks skipped, in (framework id, task id) order.
    pub offset: usize,
    /// Tasks in the page, at most `TASKS_PAGE_MAX`.
    pub limit: usize,
}

/// Which agents or frameworks a list query selects (all given conditions hold) and which
/// page, in id order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only items with this status name (e.g. `registered`, `draining`, `connected`).
    pub status: Option<String>,
    /// Agents whose hostname, frameworks whose name, contains this text.
    pub text: Option<String>,
    /// Matching items skipped.
    pub offset: usize,
    /// Items in the page (`usize::MAX`: all).
    pub limit: usize,
}

/// One page of matching agents or frameworks, with how many match in all.
#[derive(Clone, Debug, Default)]
pub struct ListPage<T> {
    pub items: Vec<T>,
    pub total: usize,
}

/// One page of matching tasks, live and recently ended, in (framework id, task id) order.
#[derive(Clone, Debug, Default)]
pub struct TaskPage {
    pub tasks: Vec<v1::TaskRecord>,
    /// How many tasks match in all.
    pub total: usize,
}

/// One live custom executor as the master books it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecutorView {
    pub agent_id: String,
    pub framework_id: String,
    pub info: v1::ExecutorInfo,
}

/// A read of part of the state; each variant answers on its own typed channel.
pub enum Query {
    Framework {
        id: String,
        /// Build the framework's whole state (its tasks and usage): `O(its tasks)`, so
        /// calls that only need its standing (every batch call) leave it out.
        with_state: bool,
        reply: oneshot::Sender<FrameworkLookup>,
    },
    Frameworks {
        reply: oneshot::Sender<Vec<v1::FrameworkState>>,
    },
    Agent {
        id: String,
        reply: oneshot::Sender<Option<v1::AgentState>>,
    },
    Agents {
        reply: oneshot::Sender<Vec<v1::AgentState>>,
    },
    /// The agents `filter` selects, one page of them built (the rest only counted).
    AgentPage {
        filter: ListFilter,
        reply: oneshot::Sender<ListPage<v1::AgentState>>,
    },
    /// The frameworks `filter` selects, one page of them built.
    FrameworkPage {
        filter: ListFilter,
        reply: oneshot::Sender<ListPage<v1::FrameworkState>>,
    },
    /// One agent's latest usage report (`None`: none received, or unknown agent).
    AgentUsage {
        id: String,
        reply: oneshot::Sender<Option<v1::AgentUsage>>,
    },
    Roles {
        reply: oneshot::Sender<Vec<v1::RoleState>>,
    },
    /// Every known role with its weight (1 unless set).
    Weights {
        reply: oneshot::Sender<Vec<(String, f64)>>,
    },
    Tasks {
        filter: TaskFilter,
        reply: oneshot::Sender<TaskPage>,
    },
    /// Every live custom executor, in (agent, framework, executor id) order.
    Executors {
        reply: oneshot::Sender<Vec<ExecutorView>>,
    },
}

fn by_id<T>(items: &mut [T], id: impl Fn(&T) -> Option<&String>) {
    items.sort_by(|a, b| id(a).cmp(&id(b)));
}

/// The page `filter` selects of the matching `ids`, in id order: only the page's items
/// are built.
fn page_of<'a, T>(
    ids: impl Iterator<Item = &'a String>,
    filter: &ListFilter,
    build: impl Fn(&str) -> Option<T>,
) -> ListPage<T> {
    let mut ids: Vec<&String> = ids.collect();
    ids.sort_unstable();
    ListPage {
        total: ids.len(),
        items: ids
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .filter_map(|id| build(id))
            .collect(),
    }
}

impl Master {
    /// Answer one query (held, like every answer, until the batch's registry write is
    /// durable, so a read never shows what may yet be lost). A caller that went away is
    /// not an error.
    pub(super) fn answer_read(&mut self, query: Query) {
        match query {
            Query::Framework {
                id,
                with_state,
                reply,
            } => {
                let value = self.framework_lookup(&id, with_state);
                self.answer_query(reply, value);
            }
            Query::Frameworks { reply } => {
                let mut all: Vec<_> = self
                    .frameworks
                    .keys()
                    .filter_map(|id| self.framework_state(id))
                    .collect();
                by_id(&mut all, |f| f.info.as_ref().map(|i| &i.id));
                self.answer_query(reply, all);
            }
            Query::Agent { id, reply } => {
                let value = self.agent_state(&id);
                self.answer_query(reply, value);
            }
            Query::Agents { reply } => {
                let mut all: Vec<_> = self
                    .agents
                    .keys()
                    .filter_map(|id| self.agent_state(id))
                    .collect();
                by_id(&mut all, |a| a.info.as_ref().map(|i| &i.id));
                self.answer_query(reply, all);
            }
            Query::AgentPage { filter, reply } => {
                let ids = self.agents.iter().filter(|(_, a)| {
                    filter
                        .status
                        .as_deref()
                        .is_none_or(|s| a.status.name() == s)
                        && filter
                            .text
                            .as_deref()
                            .is_none_or(|t| a.info.hostname.contains(t))
                });
                let page = page_of(ids.map(|(id, _)| id), &filter, |id| self.agent_state(id));
                self.answer_query(reply, page);
            }
            Query::FrameworkPage { filter, reply } => {
                let ids = self.frameworks.iter().filter(|(_, f)| {
                    filter
                        .status
                        .as_deref()
                        .is_none_or(|s| f.status.name() == s)
                        && filter
                            .text
                            .as_deref()
                            .is_none_or(|t| f.info.name.contains(t))
                });
                let page = page_of(ids.map(|(id, _)| id), &filter, |id| {
                    self.framework_state(id)
                });
                self.answer_query(reply, page);
            }
            Query::AgentUsage { id, reply } => {
                let value = self.agent_usage_report(&id);
                self.answer_query(reply, value);
            }
            Query::Roles { reply } => {
                let value = self.roles();
                self.answer_query(reply, value);
            }
            Query::Weights { reply } => {
                let weights = self
                    .allocator
                    .role_shares()
                    .into_iter()
                    .map(|s| (s.role, s.weight))
                    .collect();
                self.answer_query(reply, weights);
            }
            Query::Tasks { filter, reply } => {
                let value = self.task_page(&filter);
                self.answer_query(reply, value);
            }
            Query::Executors { reply } => {
                let mut all: Vec<ExecutorView> = self
                    .executors
                    .iter()
                    .map(|((agent, framework, _), e)| ExecutorView {
                        agent_id: agent.clone(),
                        framework_id: framework.clone(),
                        info: e.info.clone(),
                    })
                    .collect();
                all.sort_by(|a, b| {
                    (&a.agent_id, &a.framework_id, &a.info.executor_id).cmp(&(
                        &b.agent_id,
                        &b.framework_id,
                        &b.info.executor_id,
                    ))
                });
                self.answer_query(reply, all);
            }
        }
    }

    fn framework_lookup(&self, id: &str, with_state: bool) -> FrameworkLookup {
        FrameworkLookup {
            known: self.frameworks.contains_key(id),
            state: if with_state {
                self.framework_state(id)
            } else {
                None
            },
            connected: self
                .frameworks
                .get(id)
                .is_some_and(|f| f.status == FrameworkStatus::Active),
            torn_down: self
                .frameworks
                .get(id)
                .is_some_and(|f| f.status.is_retired()),
        }
    }

    /// The page of tasks `filter` selects. Live tasks come from the framework's or the
    /// agent's own index when the filter names one, so a page for one framework does not
    /// walk every task of the cluster.
    fn task_page(&self, filter: &TaskFilter) -> TaskPage {
        let wanted = |t: &TaskEntry| {
            filter
                .framework_id
                .as_ref()
                .is_none_or(|f| *f == t.framework_id)
                && filter.agent_id.as_ref().is_none_or(|a| *a == t.agent_id)
                && filter.state.is_none_or(|s| s == t.state)
                && filter
                    .task_id
                    .as_ref()
                    .is_none_or(|id| *id == t.info.task_id)
                && filter.name.as_ref().is_none_or(|n| {
                    // The name is stored encoded: decoded only when the id does not match.
                    t.info.task_id.contains(n.as_str())
                        || t.info.to_proto().name.contains(n.as_str())
                })
        };
        let mut live: Vec<&TaskEntry> = match (&filter.framework_id, &filter.agent_id) {
            (Some(f), _) if filter.task_id.is_some() => {
                let key = (f.clone(), filter.task_id.clone().unwrap_or_default());
                self.tasks
                    .get(&key)
                    .filter(|t| wanted(t))
                    .into_iter()
                    .collect()
            }
            (Some(f), _) => match self.frameworks.get(f) {
                Some(fw) => fw
                    .tasks
                    .iter()
                    .filter_map(|t| self.tasks.get(&(f.clone(), t.clone())))
                    .filter(|t| wanted(t))
                    .collect(),
                None => self.tasks.values().filter(|t| wanted(t)).collect(),
            },
            (None, Some(a)) => match self.agents.get(a) {
                Some(agent) => agent
                    .tasks
                    .iter()
                    .filter_map(|k| self.tasks.get(k))
                    .filter(|t| wanted(t))
                    .collect(),
                None => self.tasks.values().filter(|t| wanted(t)).collect(),
            },
            (None, None) => self.tasks.values().filter(|t| wanted(t)).collect(),
        };
        live.extend(self.completed.iter().filter(|t| wanted(t)));
        // The order of `ClusterState`'s task list.
        live.sort_by(|a, b| {
            (&a.framework_id, &a.info.task_id).cmp(&(&b.framework_id, &b.info.task_id))
        });
        let limit = filter.limit.clamp(1, TASKS_PAGE_MAX);
        TaskPage {
            total: live.len(),
            tasks: live
                .into_iter()
                .skip(filter.offset)
                .take(limit)
                .map(super::snapshot::task_record)
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agora_proto::v1;
    use tokio::sync::oneshot;

    use super::*;
    use crate::clock::ManualClock;
    use crate::config::MasterConfig;
    use crate::registry::{MemRegistry, RegistryState};

    fn master() -> (Master, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("agora-queries-{}", uuid::Uuid::new_v4()));
        let config = MasterConfig {
            data_dir: dir.clone(),
            ..MasterConfig::default()
        };
        let (m, _handle, _rx) = Master::new(
            config,
            Arc::new(ManualClock::new(1_000)),
            Box::new(MemRegistry::default()),
            RegistryState::default(),
        )
        .expect("master");
        (m, dir)
    }

    /// A read is answered at once when nothing is waiting for the registry, and only
    /// after the batch's write otherwise.
    fn ask<T>(m: &mut Master, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> T {
        let (tx, mut rx) = oneshot::channel();
        m.answer_read(make(tx));
        rx.try_recv().expect("answered at once")
    }

    #[tokio::test]
    async fn a_read_after_a_change_waits_for_its_write() {
        let (mut m, dir) = master();
        let sub = m
            .subscribe(v1::SubscribeRequest {
                framework: Some(v1::FrameworkInfo {
                    name: "w".into(),
                    roles: vec!["eng".into()],
                    ..Default::default()
                }),
                secret: String::new(),
            })
            .expect("subscribe");
        let (tx, mut rx) = oneshot::channel();
        m.answer_read(Query::Framework {
            id: sub.framework_id.clone(),
            with_state: true,
            reply: tx,
        });
        assert!(
            rx.try_recv().is_err(),
            "held while the subscription's write is pending"
        );
        m.commit().await.expect("write");
        let found = rx.try_recv().expect("answered after the write");
        assert!(found.connected);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn one_framework_the_list_roles_and_weights() {
        let (mut m, dir) = master();
        let mut ids = Vec::new();
        for (name, role) in [("b", "eng"), ("a", "ops")] {
            let sub = m
                .subscribe(v1::SubscribeRequest {
                    framework: Some(v1::FrameworkInfo {
                        name: name.into(),
                        roles: vec![role.into()],
                        ..Default::default()
                    }),
                    secret: String::new(),
                })
                .expect("subscribe");
            ids.push(sub.framework_id);
        }
        m.commit().await.expect("the subscriptions' write");
        let found = ask(&mut m, |reply| Query::Framework {
            id: ids[0].clone(),
            with_state: true,
            reply,
        });
        assert!(found.known && found.connected && !found.torn_down);
        let standing = ask(&mut m, |reply| Query::Framework {
            id: ids[0].clone(),
            with_state: false,
            reply,
        });
        assert!(standing.known && standing.connected && standing.state.is_none());
        assert_eq!(
            found.state.and_then(|f| f.info).map(|i| i.name),
            Some("b".into())
        );
        let unknown = ask(&mut m, |reply| Query::Framework {
            id: "nope".into(),
            with_state: false,
            reply,
        });
        assert!(
            !unknown.known && unknown.state.is_none() && !unknown.connected && !unknown.torn_down
        );

        let all = ask(&mut m, |reply| Query::Frameworks { reply });
        let listed: Vec<String> = all
            .iter()
            .filter_map(|f| f.info.as_ref())
            .map(|i| i.id.clone())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(listed, sorted, "ordered by id");

        let roles = ask(&mut m, |reply| Query::Roles { reply });
        assert_eq!(
            roles,
            m.cluster_state().roles,
            "the state's roles, without the state"
        );
        let weights = ask(&mut m, |reply| Query::Weights { reply });
        assert!(weights.contains(&("eng".to_string(), 1.0)), "{weights:?}");
        assert!(ask(&mut m, |reply| Query::Agents { reply }).is_empty());
        // Frameworks by page: only the page is built, the total counts every match.
        let page = |m: &mut Master, filter: ListFilter| {
            let p = ask(m, |reply| Query::FrameworkPage { filter, reply });
            let names: Vec<String> = p
                .items
                .iter()
                .filter_map(|f| f.info.as_ref())
                .map(|i| i.name.clone())
                .collect();
            (names, p.total)
        };
        let first = all
            .first()
            .and_then(|f| f.info.as_ref())
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let second = all
            .get(1)
            .and_then(|f| f.info.as_ref())
            .map(|i| i.name.clone())
            .unwrap_or_default();
        let everything = ListFilter {
            limit: usize::MAX,
            ..Default::default()
        };
        assert_eq!(
            page(&mut m, everything.clone()),
            (vec![first.clone(), second.clone()], 2)
        );
        let one = ListFilter {
            offset: 1,
            limit: 1,
            ..everything.clone()
        };
        assert_eq!(page(&mut m, one), (vec![second], 2));
        let named = ListFilter {
            text: Some("a".into()),
            ..everything.clone()
        };
        assert_eq!(page(&mut m, named), (vec!["a".to_string()], 1));
        let status = ListFilter {
            status: Some("connected".into()),
            limit: 0,
            ..Default::default()
        };
        assert_eq!(page(&mut m, status), (vec![], 2), "limit 0: the count only");
        let none = ListFilter {
            status: Some("torn_down".into()),
            ..everything.clone()
        };
        assert_eq!(page(&mut m, none), (vec![], 0));
        let agents = ask(&mut m, |reply| Query::AgentPage {
            filter: everything,
            reply,
        });
        assert_eq!((agents.items.len(), agents.total), (0, 0));
        assert!(
            ask(&mut m, |reply| Query::AgentUsage {
                id: "a".into(),
                reply
            })
            .is_none()
        );
        assert!(
            ask(&mut m, |reply| Query::Agent {
                id: "a".into(),
                reply
            })
            .is_none()
        );
        let page = ask(&mut m, |reply| Query::Tasks {
            filter: TaskFilter {
                framework_id: Some(ids[0].clone()),
                limit: 10,
                ..Default::default()
            },
            reply,
        });
        assert_eq!((page.total, page.tasks.len()), (0, 0));
        let _ = std::fs::remove_dir_all(dir);
    }
}

//! The latest resource-usage report of each agent (agents send one every usage interval).
//!
//! Owns only the usage map; it never changes allocation, tasks or agents. A report replaces
//! the previous one of its agent, so memory is bounded by agents x containers per report,
//! and an agent that stops being reachable loses its report (stale usage would mislead
//! oversubscription and autoscaling more than no usage).

use crate::service::Error;
use agora_proto::v1;

use super::Master;
use crate::clock::Millis;
use crate::validate;

/// Containers one report may list; an agent runs far fewer.
pub const MAX_CONTAINERS_PER_REPORT: usize = 10_000;
/// Longest isolation name accepted.
const MAX_ISOLATION_BYTES: usize = 64;

/// One agent's latest report.
pub(crate) struct UsageEntry {
    pub received_at: Millis,
    pub isolation: String,
    pub containers: Vec<v1::ContainerUsage>,
}

/// Checks a report before anything is stored.
pub fn validate_report(r: &v1::UsageReport) -> Result<(), Error> {
    validate::id("agent id", &r.agent_id)?;
    if r.containers.len() > MAX_CONTAINERS_PER_REPORT {
        return Err(Error::invalid_argument(format!(
            "usage report lists {} containers; at most {MAX_CONTAINERS_PER_REPORT} are accepted",
            r.containers.len()
        )));
    }
    if r.isolation.len() > MAX_ISOLATION_BYTES {
        return Err(Error::invalid_argument(format!(
            "isolation name is longer than {MAX_ISOLATION_BYTES} bytes"
        )));
    }
    for (i, c) in r.containers.iter().enumerate() {
        validate::id("container usage framework id", &c.framework_id)
            .map_err(|s| Error::invalid_argument(format!("container {i}: {}", s.message())))?;
        if c.task_id.is_empty() && c.executor_id.is_empty() {
            return Err(Error::invalid_argument(format!(
                "container {i}: neither a task id nor an executor id"
            )));
        }
        for (what, v) in [
            ("task id", &c.task_id),
            ("executor id", &c.executor_id),
            ("container id", &c.container_id),
        ] {
            if !v.is_empty() {
                validate::id(what, v).map_err(|s| {
                    Error::invalid_argument(format!("container {i}: {}", s.message()))
                })?;
            }
        }
    }
    Ok(())
}

impl Master {
    /// Stores a report the gRPC edge already checked with [`validate_report`].
    pub(super) fn update_usage(&mut self, r: v1::UsageReport) -> Result<(), Error> {
        match self.agents.get(&r.agent_id) {
            Some(a) if !a.status.is_registered() || a.tx.is_none() => {
                return Err(Error::not_found(format!(
                    "agent '{}' is not registered with this master; register again",
                    r.agent_id
                )));
            }
            Some(_) => {}
            None => {
                return Err(Error::not_found(format!(
                    "unknown agent id '{}'",
                    r.agent_id
                )));
            }
        }
        let now = self.now();
        self.usage.insert(
            r.agent_id,
            UsageEntry {
                received_at: now,
                isolation: r.isolation,
                containers: r.containers,
            },
        );
        Ok(())
    }

    pub(super) fn forget_usage(&mut self, agent_id: &str) {
        self.usage.remove(agent_id);
    }

    /// One agent's latest report, if it sent one.
    pub(super) fn agent_usage_report(&self, id: &str) -> Option<v1::AgentUsage> {
        let u = self.usage.get(id)?;
        Some(v1::AgentUsage {
            agent_id: id.to_string(),
            hostname: self
                .agents
                .get(id)
                .map(|a| a.info.hostname.clone())
                .unwrap_or_default(),
            isolation: u.isolation.clone(),
            reported_at_seconds: u.received_at as f64 / 1000.0,
            containers: u.containers.clone(),
        })
    }

    pub(super) fn usage_view(&self) -> v1::UsageResponse {
        let mut agents: Vec<v1::AgentUsage> = self
            .usage
            .keys()
            .filter_map(|id| self.agent_usage_report(id))
            .collect();
        agents.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        v1::UsageResponse { agents }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(task: &str) -> v1::ContainerUsage {
        v1::ContainerUsage {
            framework_id: "fw".into(),
            task_id: task.into(),
            memory_bytes: 4096,
            ..Default::default()
        }
    }

    #[test]
    fn a_valid_report_passes() {
        let r = v1::UsageReport {
            agent_id: "a1".into(),
            containers: vec![container("t1"), container("t2")],
            isolation: "linux/cgroups-v1".into(),
        };
        assert!(validate_report(&r).is_ok());
    }

    #[test]
    fn bad_reports_are_refused_with_the_reason() {
        let base = v1::UsageReport {
            agent_id: "a1".into(),
            containers: vec![container("t1")],
            isolation: String::new(),
        };
        let cases: Vec<(v1::UsageReport, &str)> = vec![
            (
                v1::UsageReport {
                    agent_id: String::new(),
                    ..base.clone()
                },
                "agent id is empty",
            ),
            (
                v1::UsageReport {
                    containers: vec![container("")],
                    ..base.clone()
                },
                "neither a task id nor an executor id",
            ),
            (
                v1::UsageReport {
                    containers: vec![v1::ContainerUsage {
                        framework_id: String::new(),
                        ..container("t")
                    }],
                    ..base.clone()
                },
                "framework id is empty",
            ),
            (
                v1::UsageReport {
                    containers: vec![container(".."); 1],
                    ..base.clone()
                },
                "not allowed",
            ),
            (
                v1::UsageReport {
                    containers: vec![container("t"); MAX_CONTAINERS_PER_REPORT + 1],
                    ..base.clone()
                },
                "at most",
            ),
            (
                v1::UsageReport {
                    isolation: "x".repeat(65),
                    ..base.clone()
                },
                "isolation name",
            ),
        ];
        for (r, want) in cases {
            let e = validate_report(&r).expect_err(want);
            assert_eq!(e.code(), tonic::Code::InvalidArgument);
            assert!(e.message().contains(want), "{} lacks {want}", e.message());
        }
    }
}

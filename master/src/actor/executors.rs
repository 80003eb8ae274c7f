//! The actor's book of custom executors, one entry per (agent, framework, executor id):
//! an executor's resources are booked once, when the first launch that names it is
//! accepted, stay booked while it lives (whatever its tasks do), and are freed when its
//! agent reports it exited or its framework is removed. A re-registering agent's
//! executors are rebuilt from the tasks it reports.
//!
//! Invariant kept here: an executor's resources are booked in the allocator exactly
//! while its entry exists and its agent is schedulable, and never more than once.

use agora_proto::v1;
use agora_resources::Resources;
use tracing::{debug, warn};

use super::Master;

/// (agent id, framework id, executor id).
pub(crate) type ExecutorKey = (String, String, String);

pub(crate) struct ExecutorEntry {
    pub info: v1::ExecutorInfo,
    /// The role its resources are booked under (that of the launch that started it).
    pub role: String,
    pub resources: Resources,
    /// Whether the allocator counts its resources as used.
    pub booked: bool,
}

fn key(agent: &str, framework: &str, executor: &str) -> ExecutorKey {
    (
        agent.to_string(),
        framework.to_string(),
        executor.to_string(),
    )
}

impl Master {
    /// The description of a live executor of `framework` on `agent`.
    pub(super) fn live_executor(
        &self,
        agent: &str,
        framework: &str,
        executor: &str,
    ) -> Option<&v1::ExecutorInfo> {
        if self.executors.is_empty() {
            return None;
        }
        self.executors
            .get(&key(agent, framework, executor))
            .map(|e| &e.info)
    }

    /// Record an executor a launch starts; its resources were taken from the accepted
    /// offer, so they are booked already when `booked`.
    pub(super) fn add_executor(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        info: v1::ExecutorInfo,
        resources: Resources,
        booked: bool,
    ) {
        let k = key(agent, framework, &info.executor_id);
        if let Some(a) = self.agents.get_mut(agent) {
            a.executors.insert((k.1.clone(), k.2.clone()));
        }
        self.executors.insert(
            k,
            ExecutorEntry {
                info,
                role: role.to_string(),
                resources,
                booked,
            },
        );
    }

    /// Forget an executor, returning its resources if they are booked.
    pub(super) fn release_executor(&mut self, agent: &str, framework: &str, executor: &str) {
        let k = key(agent, framework, executor);
        let Some(e) = self.executors.remove(&k) else {
            return;
        };
        if let Some(a) = self.agents.get_mut(agent) {
            a.executors.remove(&(k.1, k.2));
        }
        if e.booked {
            if let Err(err) = self
                .allocator
                .recover(agent, framework, &e.role, &e.resources, None)
            {
                debug!(error = %err, "recovering executor resources");
            }
            self.needs_allocation = true;
        }
    }

    /// Forget every executor of a framework being removed.
    pub(super) fn release_framework_executors(&mut self, framework: &str) {
        if self.executors.is_empty() {
            return;
        }
        let keys: Vec<ExecutorKey> = self
            .executors
            .keys()
            .filter(|k| k.1 == framework)
            .cloned()
            .collect();
        for (a, f, e) in keys {
            self.release_executor(&a, &f, &e);
        }
    }

    /// The agent left the allocator: its executors are no longer booked there.
    pub(super) fn unbook_executors(&mut self, agent: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        for (f, e) in &a.executors {
            if let Some(x) = self.executors.get_mut(&key(agent, f, e)) {
                x.booked = false;
            }
        }
    }

    /// The agent is in the allocator (again): book its executors.
    pub(super) fn book_executors(&mut self, agent: &str) {
        let Some(a) = self.agents.get(agent) else {
            return;
        };
        if !a.status.is_schedulable() {
            return;
        }
        let keys: Vec<(String, String)> = a.executors.iter().cloned().collect();
        for (f, e) in keys {
            let Some(x) = self.executors.get_mut(&key(agent, &f, &e)) else {
                continue;
            };
            if x.booked {
                continue;
            }
            match self
                .allocator
                .add_allocated(agent, &f, &x.role, &x.resources)
            {
                Ok(()) => x.booked = true,
                Err(err) => warn!(error = %err, executor = %e, "booking an executor"),
            }
        }
    }

    /// Forget every executor of an agent (it re-registers with what it runs now, or it
    /// is removed); their resources left the allocator with the agent already.
    pub(super) fn forget_agent_executors(&mut self, agent: &str) {
        let Some(a) = self.agents.get_mut(agent) else {
            return;
        };
        for (f, e) in std::mem::take(&mut a.executors) {
            self.executors.remove(&key(agent, &f, &e));
        }
    }
}

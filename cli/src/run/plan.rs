//! The bookkeeping of `agora run`, as pure functions: which pending tasks an offer can
//! take (packing), what to do when a launch is refused, which status updates are worth a
//! line, and whether the run is over and succeeded.
//!
//! No I/O, no clock, no driver: `run::framework` feeds this module events and performs the
//! actions it returns. It must never print or talk to the master itself.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use agora_proto::v1::{StatusReason, TaskState, TaskStatus};
use agora_resources::Resources;

/// How long declined resources stay away once every task is launched (the master caps it).
pub const LONG_REFUSE_SECONDS: f64 = 3600.0;

/// One task of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskEntry {
    /// Handed to the master (possibly not yet confirmed by an update).
    pub launched: bool,
    /// Last known state; `Unspecified` while pending.
    pub state: TaskState,
    pub agent_id: String,
    pub message: String,
    pub reason: StatusReason,
}

impl TaskEntry {
    /// Terminal for the run: the state can no longer change into FINISHED. UNKNOWN (the
    /// master has never heard of the task) counts as terminal here.
    pub fn is_done(&self) -> bool {
        self.state.is_terminal() || self.state == TaskState::Unknown
    }
}

/// A state change worth a line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub task_id: String,
    pub agent_id: String,
    pub state: TaskState,
    pub message: String,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let agent = if self.agent_id.is_empty() {
            "-"
        } else {
            &self.agent_id
        };
        write!(
            f,
            "{}  {}  {}",
            self.task_id,
            agent,
            self.state.as_str_name()
        )?;
        if !self.message.is_empty() {
            write!(f, "  {}", self.message)?;
        }
        Ok(())
    }
}

/// What to do with one offer.
#[derive(Debug, Clone, PartialEq)]
pub enum OfferAction {
    /// Launch these tasks (id, concrete resources taken from the offer); the unused rest is
    /// filtered for `refuse_seconds` (`None`: the master's default).
    Launch {
        tasks: Vec<(String, Resources)>,
        refuse_seconds: Option<f64>,
    },
    /// Nothing fits or nothing is needed.
    Decline { refuse_seconds: Option<f64> },
}

/// A task that did not finish, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub task_id: String,
    pub state: TaskState,
    pub reason: StatusReason,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = if self.state == TaskState::Unspecified {
            "NOT LAUNCHED"
        } else {
            self.state.as_str_name()
        };
        write!(f, "{} {state}", self.task_id)?;
        match (self.message.is_empty(), self.reason) {
            (false, _) => write!(f, ": {}", self.message),
            (true, StatusReason::Unspecified) => Ok(()),
            (true, reason) => write!(f, ": {}", reason.as_str_name()),
        }
    }
}

/// The state of a whole run.
#[derive(Debug, Clone)]
pub struct Tracker {
    /// Task ids waiting for an offer, in launch order.
    pending: VecDeque<String>,
    tasks: BTreeMap<String, TaskEntry>,
}

impl Tracker {
    /// `instances` tasks named `{name}-0`, `{name}-1`, ...
    pub fn new(name: &str, instances: usize) -> Tracker {
        let mut pending = VecDeque::with_capacity(instances);
        let mut tasks = BTreeMap::new();
        for i in 0..instances {
            let id = format!("{name}-{i}");
            pending.push_back(id.clone());
            tasks.insert(
                id,
                TaskEntry {
                    launched: false,
                    state: TaskState::Unspecified,
                    agent_id: String::new(),
                    message: String::new(),
                    reason: StatusReason::Unspecified,
                },
            );
        }
        Tracker { pending, tasks }
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn task(&self, id: &str) -> Option<&TaskEntry> {
        self.tasks.get(id)
    }

    /// Pack as many pending tasks of `shape` as fit into an offer's resources. Pure: the
    /// tasks stay pending until [`launched`](Self::launched).
    pub fn plan_offer(&self, available: &Resources, shape: &Resources) -> OfferAction {
        if self.pending.is_empty() {
            return OfferAction::Decline {
                refuse_seconds: Some(LONG_REFUSE_SECONDS),
            };
        }
        let (taken, _rest) = agora_sdk::take_many(available, shape, self.pending.len());
        if taken.is_empty() {
            return OfferAction::Decline {
                refuse_seconds: None,
            };
        }
        let all_placed = taken.len() == self.pending.len();
        let tasks: Vec<(String, Resources)> = self.pending.iter().cloned().zip(taken).collect();
        OfferAction::Launch {
            tasks,
            refuse_seconds: all_placed.then_some(LONG_REFUSE_SECONDS),
        }
    }

    /// The master accepted the launch of `ids` on `agent_id`.
    pub fn launched(&mut self, ids: &[String], agent_id: &str) {
        for id in ids {
            self.pending.retain(|p| p != id);
            if let Some(t) = self.tasks.get_mut(id)
                && !t.launched
            {
                t.launched = true;
                t.state = TaskState::Staging;
                t.agent_id = agent_id.to_string();
            }
        }
    }

    /// The master refused a launch. When the refusal is about the request itself
    /// (`permanent`), the tasks would be refused again on any offer: they end as ERROR with
    /// the master's message, returned as changes to print. Otherwise (offer gone, master
    /// busy, ...) they stay pending for the next offer.
    pub fn launch_refused(
        &mut self,
        ids: &[String],
        permanent: bool,
        message: &str,
    ) -> Vec<Change> {
        if !permanent {
            return Vec::new();
        }
        let mut changes = Vec::new();
        for id in ids {
            self.pending.retain(|p| p != id);
            if let Some(t) = self.tasks.get_mut(id) {
                t.state = TaskState::Error;
                t.reason = StatusReason::TaskInvalid;
                t.message = format!("launch refused by the master: {message}");
                changes.push(Change {
                    task_id: id.clone(),
                    agent_id: t.agent_id.clone(),
                    state: t.state,
                    message: t.message.clone(),
                });
            }
        }
        changes
    }

    /// Record a status update. Returns the change to print, or `None` for an update about
    /// a task of another run, or one that repeats the known state (e.g. a reconciliation
    /// answer). A terminal state is final: later updates for the task are ignored.
    pub fn update(&mut self, status: &TaskStatus) -> Option<Change> {
        let t = self.tasks.get_mut(&status.task_id)?;
        let state = status.state();
        if t.is_done() || state == TaskState::Unspecified {
            return None;
        }
        // An update for a task still pending means an earlier launch we believed failed
        // (e.g. timed out) did reach the master.
        if !t.launched {
            t.launched = true;
            self.pending.retain(|p| p != &status.task_id);
        }
        let changed = t.state != state;
        t.state = state;
        t.reason = status.reason();
        t.message = status.message.clone();
        if !status.agent_id.is_empty() {
            t.agent_id = status.agent_id.clone();
        }
        changed.then(|| Change {
            task_id: status.task_id.clone(),
            agent_id: t.agent_id.clone(),
            state,
            message: status.message.clone(),
        })
    }

    /// Every task has reached a terminal state.
    pub fn all_done(&self) -> bool {
        self.tasks.values().all(TaskEntry::is_done)
    }

    /// Launched tasks not yet terminal, as (task id, agent id): what to kill or reconcile.
    pub fn outstanding(&self) -> Vec<(String, String)> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.launched && !t.is_done())
            .map(|(id, t)| (id.clone(), t.agent_id.clone()))
            .collect()
    }

    /// Every task that did not finish, in id order (empty: success).
    pub fn failures(&self) -> Vec<Failure> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.state != TaskState::Finished)
            .map(|(id, t)| Failure {
                task_id: id.clone(),
                state: t.state,
                reason: t.reason,
                message: if t.launched || !t.message.is_empty() {
                    t.message.clone()
                } else {
                    "no offer fitted the task".into()
                },
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

/// Why a task of `shape` can never be placed on any of these agents (their whole
/// resources, as far as the run's role may use them), with the numbers: "needs cpus:8;
/// the largest agent has cpus:2". `None` when one agent could hold it, or when there are
/// no agents yet (more may register).
pub fn never_fits(shape: &Resources, agents: &[Resources]) -> Option<String> {
    if agents.is_empty() || agents.iter().any(|a| fits_whole(a, shape)) {
        return None;
    }
    let mut short = Vec::new();
    let mut largest = Vec::new();
    for name in shape.names() {
        let need = shape.scalar(name);
        if need.is_zero() {
            continue;
        }
        let most = agents
            .iter()
            .map(|a| a.scalar(name))
            .max()
            .unwrap_or_default();
        if most < need {
            short.push(format!("{name}:{need}"));
            largest.push(format!("{name}:{most}"));
        }
    }
    if short.is_empty() {
        // Every kind fits on some agent, but never all of them on one.
        return Some(format!(
            "needs {shape} on one agent; no agent has all of it ({} agent(s))",
            agents.len()
        ));
    }
    Some(format!(
        "needs {}; the largest agent has {}",
        short.join(";"),
        largest.join(";")
    ))
}

/// Whether `agent` holds at least every scalar of `shape`.
fn fits_whole(agent: &Resources, shape: &Resources) -> bool {
    shape
        .names()
        .into_iter()
        .all(|n| agent.scalar(n) >= shape.scalar(n))
}

/// What a refused launch means for its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The offer is gone or the master could not act now: try again on a later offer.
    Retry,
    /// The request itself is wrong: it would be refused on any offer.
    Permanent,
    /// The task ids already exist: an earlier launch whose answer was lost did reach the
    /// master. Treat the tasks as launched and reconcile them.
    AlreadyLaunched,
}

/// Classify a refused launch by its gRPC status code.
pub fn classify_refusal(code: Option<tonic::Code>) -> Refusal {
    match code {
        Some(
            tonic::Code::InvalidArgument
            | tonic::Code::PermissionDenied
            | tonic::Code::Unauthenticated
            | tonic::Code::Unimplemented,
        ) => Refusal::Permanent,
        Some(tonic::Code::AlreadyExists) => Refusal::AlreadyLaunched,
        _ => Refusal::Retry,
    }
}

/// A task's output as it streams in, cut into whole lines each prefixed `[TASK_ID] `
/// (runs of more than one task), or passed on as it comes (one task). Bounded: after
/// `max_bytes` it passes nothing more and says so once.
#[derive(Debug, Clone)]
pub struct OutputLines {
    prefix: Option<String>,
    partial: String,
    passed_bytes: usize,
    max_bytes: usize,
    cut: bool,
}

impl OutputLines {
    pub fn new(prefix: Option<String>, max_bytes: usize) -> OutputLines {
        OutputLines {
            prefix,
            partial: String::new(),
            passed_bytes: 0,
            max_bytes,
            cut: false,
        }
    }

    /// What to print of the next `chunk` (possibly nothing yet: a line without its end).
    pub fn push(&mut self, chunk: &str) -> String {
        if self.cut {
            return String::new();
        }
        let room = self.max_bytes.saturating_sub(self.passed_bytes);
        let mut take = chunk.len().min(room);
        while !chunk.is_char_boundary(take) {
            take -= 1;
        }
        self.passed_bytes += take;
        let mut out = match &self.prefix {
            None => chunk[..take].to_string(),
            Some(p) => {
                self.partial.push_str(&chunk[..take]);
                let mut out = String::new();
                while let Some(end) = self.partial.find('\n') {
                    out.push_str(p);
                    out.extend(self.partial.drain(..=end));
                }
                out
            }
        };
        if take < chunk.len() {
            self.cut = true;
            out.push_str(&self.finish());
            out.push_str(&format!("[output cut at {} bytes]\n", self.max_bytes));
        }
        out
    }

    /// The last line, when the output ended without a newline.
    pub fn finish(&mut self) -> String {
        match &self.prefix {
            Some(p) if !self.partial.is_empty() => {
                let mut out = format!("{p}{}", self.partial);
                self.partial.clear();
                out.push('\n');
                out
            }
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn output_lines_are_prefixed_whole_and_bounded() {
        let mut plain = OutputLines::new(None, 100);
        assert_eq!(plain.push("par"), "par");
        assert_eq!(plain.push("tial\nx"), "tial\nx");
        assert_eq!(plain.finish(), "");
        let mut p = OutputLines::new(Some("[t1] ".into()), 100);
        assert_eq!(p.push("a\nb"), "[t1] a\n");
        assert_eq!(p.push("c\n\nd"), "[t1] bc\n[t1] \n");
        assert_eq!(p.finish(), "[t1] d\n");
        assert_eq!(p.finish(), "");
        let mut small = OutputLines::new(Some("[t] ".into()), 5);
        assert_eq!(
            small.push("abc\ndefg\n"),
            "[t] abc\n[t] d\n[output cut at 5 bytes]\n"
        );
        assert_eq!(small.push("more\n"), "");
        // Never cut inside a character.
        let mut utf = OutputLines::new(None, 2);
        assert_eq!(utf.push("\u{e9}\u{e9}"), "\u{e9}[output cut at 2 bytes]\n");
    }

    use super::*;

    fn r(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    fn status(id: &str, state: TaskState, msg: &str) -> TaskStatus {
        let mut s = TaskStatus {
            task_id: id.into(),
            agent_id: "a1".into(),
            message: msg.into(),
            ..Default::default()
        };
        s.set_state(state);
        s
    }

    fn ids(action: &OfferAction) -> Vec<String> {
        match action {
            OfferAction::Launch { tasks, .. } => tasks.iter().map(|(id, _)| id.clone()).collect(),
            OfferAction::Decline { .. } => vec![],
        }
    }

    #[test]
    fn packs_as_many_tasks_as_fit_and_filters_leftovers_briefly() {
        let t = Tracker::new("job", 5);
        let shape = r("cpus:0.5;mem:32");
        let action = t.plan_offer(&r("cpus:1.2;mem:1000"), &shape);
        assert_eq!(ids(&action), vec!["job-0", "job-1"]);
        let OfferAction::Launch {
            tasks,
            refuse_seconds,
        } = action
        else {
            unreachable!()
        };
        assert_eq!(tasks[0].1, shape);
        assert_eq!(refuse_seconds, None, "more tasks to place: short filter");
    }

    #[test]
    fn last_tasks_placed_get_a_long_filter() {
        let t = Tracker::new("job", 2);
        let action = t.plan_offer(&r("cpus:4;mem:1000"), &r("cpus:0.5;mem:32"));
        assert_eq!(ids(&action), vec!["job-0", "job-1"]);
        assert!(matches!(
            action,
            OfferAction::Launch {
                refuse_seconds: Some(LONG_REFUSE_SECONDS),
                ..
            }
        ));
    }

    #[test]
    fn declines_what_does_not_fit_briefly_and_what_is_not_needed_for_long() {
        let mut t = Tracker::new("job", 1);
        let shape = r("cpus:1;mem:32");
        assert_eq!(
            t.plan_offer(&r("cpus:0.5;mem:1000"), &shape),
            OfferAction::Decline {
                refuse_seconds: None
            }
        );
        t.launched(&["job-0".into()], "a1");
        assert_eq!(
            t.plan_offer(&r("cpus:8;mem:1000"), &shape),
            OfferAction::Decline {
                refuse_seconds: Some(LONG_REFUSE_SECONDS)
            }
        );
    }

    #[test]
    fn launched_tasks_leave_the_pending_queue() {
        let mut t = Tracker::new("job", 3);
        t.launched(&["job-1".into()], "a1");
        assert_eq!(t.pending(), 2);
        let action = t.plan_offer(&r("cpus:8;mem:1000"), &r("cpus:1;mem:1"));
        assert_eq!(ids(&action), vec!["job-0", "job-2"]);
        assert_eq!(t.task("job-1").unwrap().state, TaskState::Staging);
        assert_eq!(t.outstanding(), vec![("job-1".into(), "a1".into())]);
    }

    #[test]
    fn updates_report_changes_once_and_terminal_is_final() {
        let mut t = Tracker::new("job", 1);
        t.launched(&["job-0".into()], "a1");
        let c = t.update(&status("job-0", TaskState::Running, "")).unwrap();
        assert_eq!(c.to_string(), "job-0  a1  RUNNING");
        assert_eq!(t.update(&status("job-0", TaskState::Running, "")), None);
        let c = t
            .update(&status(
                "job-0",
                TaskState::Failed,
                "command exited with status 3",
            ))
            .unwrap();
        assert_eq!(
            c.to_string(),
            "job-0  a1  FAILED  command exited with status 3"
        );
        assert_eq!(t.update(&status("job-0", TaskState::Running, "")), None);
        assert!(t.all_done());
        assert_eq!(t.task("job-0").unwrap().state, TaskState::Failed);
    }

    #[test]
    fn updates_for_unknown_tasks_are_ignored() {
        let mut t = Tracker::new("job", 1);
        assert_eq!(t.update(&status("other-0", TaskState::Running, "")), None);
    }

    #[test]
    fn an_update_for_a_pending_task_marks_it_launched() {
        let mut t = Tracker::new("job", 2);
        t.update(&status("job-1", TaskState::Running, "")).unwrap();
        assert_eq!(t.pending(), 1);
        assert!(t.task("job-1").unwrap().launched);
    }

    #[test]
    fn all_done_needs_every_task_terminal_and_success_needs_finished() {
        let mut t = Tracker::new("job", 2);
        assert!(!t.all_done());
        t.launched(&["job-0".into(), "job-1".into()], "a1");
        t.update(&status("job-0", TaskState::Finished, "")).unwrap();
        assert!(!t.all_done());
        t.update(&status("job-1", TaskState::Finished, "")).unwrap();
        assert!(t.all_done());
        assert!(t.failures().is_empty());
    }

    #[test]
    fn failures_name_each_task_with_state_and_why() {
        let mut t = Tracker::new("job", 4);
        t.launched(&["job-0".into(), "job-1".into(), "job-2".into()], "a1");
        t.update(&status("job-0", TaskState::Finished, "")).unwrap();
        t.update(&status(
            "job-1",
            TaskState::Failed,
            "command exited with status 3",
        ))
        .unwrap();
        let mut lost = status("job-2", TaskState::Lost, "");
        lost.set_reason(StatusReason::AgentRemoved);
        t.update(&lost).unwrap();
        let f: Vec<String> = t.failures().iter().map(ToString::to_string).collect();
        assert_eq!(
            f,
            vec![
                "job-1 FAILED: command exited with status 3",
                "job-2 LOST: AGENT_REMOVED",
                "job-3 NOT LAUNCHED: no offer fitted the task",
            ]
        );
        assert!(!t.all_done());
    }

    #[test]
    fn permanent_launch_refusals_end_the_tasks_others_keep_them_pending() {
        let mut t = Tracker::new("job", 2);
        let all = vec!["job-0".to_string(), "job-1".to_string()];
        assert!(t.launch_refused(&all, false, "offer gone").is_empty());
        assert_eq!(t.pending(), 2);
        let changes = t.launch_refused(&all[..1], true, "bad command");
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].state, TaskState::Error);
        assert_eq!(t.pending(), 1);
        assert_eq!(
            t.failures()[0].to_string(),
            "job-0 ERROR: launch refused by the master: bad command"
        );
        assert_eq!(
            classify_refusal(Some(tonic::Code::InvalidArgument)),
            Refusal::Permanent
        );
        assert_eq!(
            classify_refusal(Some(tonic::Code::NotFound)),
            Refusal::Retry
        );
        assert_eq!(classify_refusal(None), Refusal::Retry);
        assert_eq!(
            classify_refusal(Some(tonic::Code::AlreadyExists)),
            Refusal::AlreadyLaunched
        );
    }

    #[test]
    fn a_task_bigger_than_every_agent_is_named_with_numbers() {
        let agents = vec![r("cpus:2;mem:1024"), r("cpus:1;mem:4096")];
        assert_eq!(
            never_fits(&r("cpus:8;mem:32"), &agents).as_deref(),
            Some("needs cpus:8; the largest agent has cpus:2")
        );
        assert_eq!(
            never_fits(&r("cpus:4;mem:8192"), &agents).as_deref(),
            Some("needs cpus:4;mem:8192; the largest agent has cpus:2;mem:4096")
        );
        let split = never_fits(&r("cpus:2;mem:4096"), &agents).unwrap();
        assert!(split.contains("no agent has all of it"), "{split}");
        assert_eq!(never_fits(&r("cpus:1;mem:4096"), &agents), None);
        assert_eq!(never_fits(&r("cpus:64"), &[]), None, "no agents yet: wait");
    }

    #[test]
    fn unknown_counts_as_done() {
        let mut t = Tracker::new("job", 1);
        t.launched(&["job-0".into()], "a1");
        t.update(&status("job-0", TaskState::Unknown, "")).unwrap();
        assert!(t.all_done());
        assert!(t.outstanding().is_empty());
        assert_eq!(t.failures().len(), 1);
    }
}

//! Scenario tests of the engine on a manual clock: schedules, missed ticks, concurrency
//! policies, dependencies, cascades, deadlines, history limits and recovery from the
//! batches it wrote.

use std::collections::BTreeMap;

use super::*;
use crate::clock::{Clock, ManualClock};
use crate::spec::parse_job;
use crate::store::Change;

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

/// The store as the engine's batches leave it.
#[derive(Default)]
struct Mem(BTreeMap<(&'static str, String), Vec<u8>>);

impl Mem {
    fn apply(&mut self, b: &Batch) {
        for c in b.changes() {
            match c {
                Change::Put { table, key, value } => {
                    self.0.insert((table, key.clone()), value.clone());
                }
                Change::Delete { table, key } => {
                    self.0.remove(&(*table, key.clone()));
                }
                Change::DeletePrefix { table, prefix } => {
                    self.0
                        .retain(|(t, k), _| t != table || !k.starts_with(prefix.as_str()));
                }
            }
        }
    }

    fn table(&self, t: &str) -> Vec<(String, Vec<u8>)> {
        self.0
            .iter()
            .filter(|((tt, _), _)| *tt == t)
            .map(|((_, k), v)| (k.clone(), v.clone()))
            .collect()
    }

    fn loaded(&self) -> Loaded {
        Loaded {
            jobs: self.table(T_JOBS),
            schedules: self.table(T_SCHEDULES),
            runs: self.table(T_RUNS),
            seq: self
                .0
                .get(&(T_META, "seq".to_string()))
                .and_then(|v| String::from_utf8_lossy(v).parse().ok())
                .unwrap_or(0),
        }
    }
}

struct World {
    e: Engine,
    mem: Mem,
    clock: ManualClock,
    out: Vec<Out>,
}

fn config() -> EngineConfig {
    EngineConfig {
        roles: vec!["default".into()],
    }
}

impl World {
    fn new() -> World {
        World {
            e: Engine::new(config()),
            mem: Mem::default(),
            clock: ManualClock::at(T0),
            out: Vec::new(),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Commit what the engine wrote, collect its effects.
    fn flush(&mut self) {
        let b = self.e.take_batch();
        self.mem.apply(&b);
        self.out.extend(self.e.take_out());
    }

    fn job(&mut self, json: &str) -> JobView {
        let spec = parse_job(json.as_bytes()).unwrap();
        let now = self.now();
        let v = self.e.create_job(spec, now).unwrap();
        self.flush();
        v
    }

    fn tick_at(&mut self, ms: i64) {
        self.clock.set(ms);
        self.e.tick(ms);
        self.flush();
    }

    fn offer(&mut self) -> Vec<LaunchPlan> {
        let offer = OfferView {
            id: format!("o{}", self.now()),
            agent_id: "agent-1".into(),
            role: "default".into(),
            resources: Resources::parse("cpus:4;mem:4096").unwrap(),
            attributes: Attributes::parse("rack:r1").unwrap(),
        };
        let now = self.now();
        let plans = self.e.place(vec![offer], now);
        self.flush();
        plans
    }

    fn update(&mut self, task: &str, state: TaskState) {
        let now = self.now();
        self.e.status(task, "agent-1", state, "", false, now);
        self.flush();
    }

    /// Launch every waiting run and drive each launched task to `end`.
    fn run_all(&mut self, end: TaskState) -> Vec<String> {
        let tasks: Vec<String> = self
            .offer()
            .into_iter()
            .flat_map(|p| p.tasks.into_iter().map(|t| t.task_id))
            .collect();
        for t in &tasks {
            self.update(t, TaskState::Running);
            self.update(t, end);
        }
        tasks
    }

    fn runs(&self, job: &str) -> Vec<RunView> {
        self.e.list_runs(job, true).unwrap()
    }

    fn statuses(&self, job: &str) -> Vec<String> {
        self.runs(job).into_iter().map(|r| r.status).collect()
    }

    fn restart(&mut self) {
        let (e, warnings) = Engine::restore(config(), self.mem.loaded(), self.now());
        assert!(warnings.is_empty(), "{warnings:?}");
        self.e = e;
        self.out.clear();
        self.flush();
    }
}

fn every_2s(id: &str, extra: &str) -> String {
    format!(
        r#"{{"id":"{id}","run":{{"cmd":"true"}},"schedules":[{{"id":"s","cron":"*/2 * * * * *","startingDeadlineSeconds":10}}]{extra}}}"#
    )
}

#[test]
fn a_job_every_2s_runs_each_tick_with_history() {
    let mut w = World::new();
    w.job(&every_2s("tick", r#","historyLimit":3"#));
    for k in 1..=5 {
        w.tick_at(T0 + k * 2000);
        let tasks = w.run_all(TaskState::Finished);
        assert_eq!(tasks.len(), 1, "tick {k}");
    }
    let v = w.e.job_view("tick").unwrap();
    assert_eq!(v.history.success_count, 5);
    assert_eq!(v.status, "SUCCESS");
    // Only the last three finished runs are kept, and their scheduled times are exact.
    let runs = w.runs("tick");
    assert_eq!(runs.len(), 3);
    let scheduled: Vec<_> = runs
        .iter()
        .map(|r| r.scheduled_at.clone().unwrap())
        .collect();
    assert_eq!(
        scheduled,
        vec![
            "2026-01-01T00:00:06Z",
            "2026-01-01T00:00:08Z",
            "2026-01-01T00:00:10Z"
        ]
    );
    assert_eq!(
        w.mem.table(T_RUNS).len(),
        3,
        "pruned runs are deleted from the store"
    );
    // Lateness is measured from the scheduled time to the launch.
    assert!(w.out.iter().any(|o| matches!(
        o,
        Out::Event(Event::RunLaunched {
            lateness_ms: Some(0),
            ..
        })
    )));
}

#[test]
fn missed_ticks_are_skipped_and_recorded_and_recent_ones_start() {
    let mut w = World::new();
    w.job(&every_2s("m", ""));
    // Down for 60 s: ticks more than 10 s late are skipped (one record), the rest start.
    w.tick_at(T0 + 60_000);
    let runs = w.runs("m");
    let skipped: Vec<_> = runs.iter().filter(|r| r.status == "SKIPPED").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].skipped_ticks, 24, "02 .. 48 s");
    assert!(
        skipped[0].message.contains("starting deadline"),
        "{}",
        skipped[0].message
    );
    let started: Vec<_> = runs.iter().filter(|r| r.status == "INITIAL").collect();
    assert_eq!(started.len(), 6, "50 .. 60 s are within 10 s");
    // The same instant evaluated again starts nothing more.
    w.tick_at(T0 + 60_000);
    assert_eq!(w.runs("m").len(), 7);
}

#[test]
fn forbid_skips_overlapping_ticks_and_replace_stops_the_old_run() {
    let mut w = World::new();
    w.job(&every_2s("f", r#","concurrencyPolicy":"FORBID""#));
    w.tick_at(T0 + 2000);
    let first = w.offer()[0].tasks[0].task_id.clone();
    w.update(&first, TaskState::Running);
    w.tick_at(T0 + 4000);
    assert_eq!(w.statuses("f"), vec!["ACTIVE", "SKIPPED"]);
    assert!(w.runs("f")[1].message.contains("FORBID"));
    // A manual start is refused the same way, and changes nothing.
    let now = w.now();
    let err = w.e.start_manual("f", false, now).unwrap_err();
    assert_eq!(err.status, 409);
    assert!(w.e.take_batch().is_empty());

    w.job(&every_2s("r", r#","concurrencyPolicy":"REPLACE""#));
    w.tick_at(T0 + 6000);
    let plans = w.offer();
    let r_task = plans
        .iter()
        .flat_map(|p| &p.tasks)
        .find(|t| t.task_id.starts_with("r."))
        .unwrap()
        .task_id
        .clone();
    w.update(&r_task, TaskState::Running);
    w.out.clear();
    w.tick_at(T0 + 8000);
    assert!(
        w.out
            .iter()
            .any(|o| matches!(o, Out::Kill { task, .. } if task.task_id == r_task)),
        "{:?}",
        w.out
    );
    w.update(&r_task, TaskState::Killed);
    let runs = w.runs("r");
    assert_eq!(runs[0].status, "FAILED");
    assert!(runs[0].message.contains("replaced"), "{}", runs[0].message);
    assert_eq!(runs[1].status, "INITIAL");
}

fn chain(w: &mut World) {
    w.job(r#"{"id":"a","run":{"cmd":"true"}}"#);
    w.job(r#"{"id":"b","run":{"cmd":"true"},"dependencies":["a"]}"#);
    w.job(r#"{"id":"c","run":{"cmd":"true"},"dependencies":["b"]}"#);
}

#[test]
fn a_dag_runs_in_order() {
    let mut w = World::new();
    chain(&mut w);
    let now = w.now();
    w.e.start_manual("a", false, now).unwrap();
    w.flush();
    let order: Vec<String> = (0..3)
        .flat_map(|_| w.run_all(TaskState::Finished))
        .map(|t| t.split('.').next().unwrap().to_string())
        .collect();
    assert_eq!(order, vec!["a", "b", "c"]);
    assert_eq!(w.e.job_view("c").unwrap().history.success_count, 1);
    assert!(
        w.run_all(TaskState::Finished).is_empty(),
        "nothing more runs"
    );
}

#[test]
fn a_failed_parent_blocks_children_until_it_succeeds() {
    let mut w = World::new();
    chain(&mut w);
    let now = w.now();
    w.e.start_manual("a", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Failed);
    assert!(w.run_all(TaskState::Finished).is_empty(), "b must not run");
    let deps = w.e.dependencies("b").unwrap();
    assert!(deps.blocked);
    assert_eq!(deps.blocked_by, vec!["a"]);
    assert_eq!(w.e.job_view("b").unwrap().status, "BLOCKED");
    let g = w.e.graph();
    let status = |id: &str| g.nodes.iter().find(|n| n.id == id).unwrap().status.clone();
    assert_eq!(status("a"), "FAILED");
    assert_eq!(status("b"), "BLOCKED");
    assert!(w.e.graph_dot().contains("color=red"));
    // A successful retry of a unblocks b, which then runs, then c.
    let now = w.now();
    w.e.start_manual("a", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Finished);
    assert!(!w.e.dependencies("b").unwrap().blocked);
    assert_eq!(w.run_all(TaskState::Finished).len(), 1, "b");
    assert_eq!(w.run_all(TaskState::Finished).len(), 1, "c");
    assert_eq!(w.e.job_view("c").unwrap().status, "SUCCESS");
}

#[test]
fn a_scheduled_tick_of_a_blocked_job_is_skipped() {
    let mut w = World::new();
    w.job(r#"{"id":"a","run":{"cmd":"true"}}"#);
    w.job(&every_2s("b", r#","dependencies":["a"]"#));
    let now = w.now();
    w.e.start_manual("a", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Failed);
    w.tick_at(T0 + 2000);
    let runs = w.runs("b");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, "SKIPPED");
    assert!(runs[0].message.contains("blocked"), "{}", runs[0].message);
}

#[test]
fn chronos_rule_waits_for_every_parent() {
    let mut w = World::new();
    w.job(r#"{"id":"p1","run":{"cmd":"true"}}"#);
    w.job(r#"{"id":"p2","run":{"cmd":"true"}}"#);
    w.job(r#"{"id":"kid","run":{"cmd":"true"},"dependencies":["p1","p2"]}"#);
    for p in ["p1", "p1"] {
        let now = w.now();
        w.e.start_manual(p, false, now).unwrap();
        w.flush();
        w.run_all(TaskState::Finished);
    }
    assert!(w.runs("kid").is_empty(), "p2 has not succeeded yet");
    let now = w.now();
    w.e.start_manual("p2", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Finished);
    assert_eq!(w.runs("kid").len(), 1);
    w.run_all(TaskState::Finished);
    // p2 again: p1 has not succeeded since kid's last run.
    let now = w.now();
    w.e.start_manual("p2", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Finished);
    assert_eq!(w.runs("kid").len(), 1);
}

#[test]
fn a_cascade_runs_a_job_and_its_descendants_in_order() {
    let mut w = World::new();
    chain(&mut w);
    w.job(r#"{"id":"x","run":{"cmd":"true"}}"#);
    w.job(r#"{"id":"d","run":{"cmd":"true"},"dependencies":["b","x"]}"#);
    let now = w.now();
    let root = w.e.start_manual("b", true, now).unwrap();
    w.flush();
    assert!(matches!(root.trigger, Trigger::Cascade { .. }));
    let first = w.run_all(TaskState::Finished);
    assert_eq!(first.len(), 1);
    let next: Vec<String> = w
        .run_all(TaskState::Finished)
        .iter()
        .map(|t| t.split('.').next().unwrap().to_string())
        .collect();
    assert_eq!(
        next,
        vec!["c", "d"],
        "d does not wait for x outside the cascade"
    );
    assert!(w.runs("a").is_empty(), "upstream jobs are not part of it");
    assert!(w.run_all(TaskState::Finished).is_empty());
}

#[test]
fn cycles_and_unknown_parents_are_refused_and_change_nothing() {
    let mut w = World::new();
    chain(&mut w);
    let before = w.e.graph();
    let mut spec = parse_job(br#"{"id":"a","run":{"cmd":"true"},"dependencies":["c"]}"#).unwrap();
    let now = w.now();
    let err = w.e.update_job("a", spec.clone(), now).unwrap_err();
    assert_eq!(err.status, 422);
    assert_eq!(err.field.as_deref(), Some("dependencies[0]"));
    assert!(err.message.contains("a -> b -> c -> a"), "{}", err.message);
    assert!(w.e.take_batch().is_empty());
    assert!(w.e.take_out().is_empty());
    assert_eq!(w.e.graph(), before);
    assert!(w.e.job_view("a").unwrap().spec.dependencies.is_empty());
    spec.id = "new".into();
    spec.dependencies = vec!["ghost".into()];
    let err = w.e.create_job(spec, now).unwrap_err();
    assert_eq!(
        (err.status, err.field.as_deref()),
        (422, Some("dependencies[0]"))
    );
    assert!(w.e.job_view("new").is_err());
    let err = w.e.delete_job("a").unwrap_err();
    assert_eq!(err.status, 409);
}

#[test]
fn a_deadline_kills_the_run_and_fails_it_by_deadline() {
    let mut w = World::new();
    w.job(r#"{"id":"slow","run":{"cmd":"sleep 100","activeDeadlineSeconds":3,"restart":{"policy":"ON_FAILURE","retries":5}}}"#);
    let now = w.now();
    w.e.start_manual("slow", false, now).unwrap();
    w.flush();
    let task = w.offer()[0].tasks[0].task_id.clone();
    w.update(&task, TaskState::Running);
    w.out.clear();
    w.tick_at(T0 + 2_999);
    assert!(w.out.iter().all(|o| !matches!(o, Out::Kill { .. })));
    w.tick_at(T0 + 3_000);
    assert!(
        w.out
            .iter()
            .any(|o| matches!(o, Out::Kill { task: t, .. } if t.task_id == task))
    );
    w.update(&task, TaskState::Killed);
    let run = &w.runs("slow")[0];
    assert_eq!(run.status, "FAILED");
    assert!(run.message.contains("deadline"), "{}", run.message);
    assert!(w.offer().is_empty(), "no retry after a deadline");
}

#[test]
fn failed_attempts_retry_after_backoff() {
    let mut w = World::new();
    w.job(r#"{"id":"flaky","run":{"cmd":"x","restart":{"policy":"ON_FAILURE","retries":1,"backoffSeconds":5}}}"#);
    let now = w.now();
    w.e.start_manual("flaky", false, now).unwrap();
    w.flush();
    w.run_all(TaskState::Failed);
    assert_eq!(w.statuses("flaky"), vec!["RETRY_WAIT"]);
    assert!(w.offer().is_empty(), "waiting out the backoff");
    w.tick_at(T0 + 5_000);
    let tasks = w.run_all(TaskState::Finished);
    assert_eq!(tasks.len(), 1);
    assert!(
        tasks[0].ends_with(".2"),
        "a new task id per launch: {tasks:?}"
    );
    let run = &w.runs("flaky")[0];
    assert_eq!(
        (run.status.as_str(), run.attempt, run.tasks.len()),
        ("SUCCESS", 2, 2)
    );
}

#[test]
fn after_a_restart_no_tick_runs_twice_and_none_within_the_deadline_is_lost() {
    let mut w = World::new();
    w.job(&every_2s("r", ""));
    w.tick_at(T0 + 2_000);
    let task = w.offer()[0].tasks[0].task_id.clone();
    w.update(&task, TaskState::Running);
    // Crash (only what was committed survives), and come back 5 s later.
    w.clock.set(T0 + 7_000);
    w.restart();
    assert_eq!(
        w.e.tasks_to_reconcile(),
        vec![(task.clone(), "agent-1".to_string())]
    );
    w.tick_at(T0 + 7_000);
    let runs = w.runs("r");
    let scheduled: Vec<_> = runs
        .iter()
        .map(|r| r.scheduled_at.clone().unwrap())
        .collect();
    assert_eq!(
        scheduled,
        vec![
            "2026-01-01T00:00:02Z",
            "2026-01-01T00:00:04Z",
            "2026-01-01T00:00:06Z"
        ],
        "each tick once"
    );
    // Reconciliation says the first run's task is still running: it is adopted.
    let now = w.now();
    w.e.status(&task, "agent-1", TaskState::Running, "", true, now);
    w.flush();
    w.update(&task, TaskState::Finished);
    assert_eq!(w.statuses("r")[0], "SUCCESS");
}

#[test]
fn a_launch_lost_in_a_crash_is_launched_again() {
    let mut w = World::new();
    w.job(r#"{"id":"l","run":{"cmd":"true"}}"#);
    let now = w.now();
    w.e.start_manual("l", false, now).unwrap();
    w.flush();
    let task = w.offer()[0].tasks[0].task_id.clone();
    w.restart();
    let now = w.now();
    // The master never got the launch.
    w.e.status(&task, "agent-1", TaskState::Lost, "unknown", true, now);
    w.flush();
    let again = w.run_all(TaskState::Finished);
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], task);
    assert_eq!(w.statuses("l"), vec!["SUCCESS"]);
}

#[test]
fn tasks_no_run_owns_are_killed() {
    let mut w = World::new();
    let now = w.now();
    w.e.status("stray.1.1", "agent-9", TaskState::Running, "", false, now);
    w.flush();
    assert!(matches!(&w.out[..], [Out::Kill { task, .. }] if task.task_id == "stray.1.1"));
}

#[test]
fn constraints_and_roles_steer_placement() {
    let mut w = World::new();
    w.job(r#"{"id":"r2","run":{"cmd":"true","placement":{"constraints":[{"attribute":"rack","operator":"EQ","value":"r2"}]}}}"#);
    let now = w.now();
    w.e.start_manual("r2", false, now).unwrap();
    w.flush();
    assert!(w.offer().is_empty(), "the offer is on rack r1");
    let offer = OfferView {
        id: "o2".into(),
        agent_id: "agent-2".into(),
        role: "default".into(),
        resources: Resources::parse("cpus:1;mem:128").unwrap(),
        attributes: Attributes::parse("rack:r2").unwrap(),
    };
    let plans = w.e.place(vec![offer], now);
    assert_eq!(plans.len(), 1);
    assert_eq!(plans[0].agent_id, "agent-2");
    let t = &plans[0].tasks[0];
    let env: Vec<_> = t
        .command
        .as_ref()
        .unwrap()
        .environment
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert!(env.contains(&"AGORA_JOB_RUN_ID".to_string()));
}

#[test]
fn paused_schedules_do_not_tick_and_resume_from_now() {
    let mut w = World::new();
    w.job(&every_2s("p", ""));
    let now = w.now();
    w.e.set_schedule_enabled("p", "s", false, now).unwrap();
    w.flush();
    w.tick_at(T0 + 20_000);
    assert!(w.runs("p").is_empty());
    let now = w.now();
    let v = w.e.set_schedule_enabled("p", "s", true, now).unwrap();
    w.flush();
    assert_eq!(v.next_run_at.as_deref(), Some("2026-01-01T00:00:22Z"));
    w.tick_at(T0 + 22_000);
    assert_eq!(
        w.statuses("p"),
        vec!["INITIAL"],
        "no missed-run records for the pause"
    );
}

#[test]
fn stopping_runs() {
    let mut w = World::new();
    w.job(r#"{"id":"s","run":{"cmd":"sleep 9"}}"#);
    let now = w.now();
    let r = w.e.start_manual("s", false, now).unwrap();
    w.flush();
    let v = w.e.stop_run("s", &r.id, now).unwrap();
    assert_eq!(v.status, "FAILED");
    let err = w.e.stop_run("s", &r.id, now).unwrap_err();
    assert_eq!(err.status, 409, "a finished run cannot be stopped");
    assert_eq!(w.e.stop_run("s", "nope", now).unwrap_err().status, 404);
    assert!(w.e.delete_job("s").is_ok());
    w.flush();
    assert!(w.mem.table(T_RUNS).is_empty());
    assert!(w.mem.table(T_JOBS).is_empty());
}

#[test]
fn one_batch_for_many_changes_stores_each_record_once_as_it_ends() {
    // The daemon applies a burst of status updates and commits them in one batch: the
    // batch must hold each changed record once, in its final state, and deletions made
    // after a change (history pruning, a deleted job) must win.
    let mut w = World::new();
    w.job(&every_2s("burst", r#","historyLimit":1"#));
    w.job(&every_2s("gone", ""));
    let now = T0 + 2000;
    w.clock.set(now);
    w.e.tick(now);
    let offer = OfferView {
        id: "o1".into(),
        agent_id: "agent-1".into(),
        role: "default".into(),
        resources: Resources::parse("cpus:4;mem:4096").unwrap(),
        attributes: Attributes::default(),
    };
    let plans = w.e.place(vec![offer], now);
    let tasks: Vec<String> = plans
        .iter()
        .flat_map(|p| p.tasks.iter().map(|t| t.task_id.clone()))
        .collect();
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        w.e.status(t, "agent-1", TaskState::Running, "", false, now);
        w.e.status(t, "agent-1", TaskState::Finished, "", false, now);
    }
    w.e.delete_job("gone").unwrap();
    let batch = w.e.take_batch();
    let puts: Vec<(&str, &str)> = batch
        .changes()
        .iter()
        .filter_map(|c| match c {
            Change::Put { table, key, .. } => Some((*table, key.as_str())),
            _ => None,
        })
        .collect();
    let mut unique = puts.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(puts.len(), unique.len(), "a record written twice: {puts:?}");
    assert!(
        !puts.iter().any(|(t, k)| *t == T_JOBS && *k == "gone"),
        "a deleted job was written back: {puts:?}"
    );
    w.mem.apply(&batch);
    w.out.extend(w.e.take_out());
    assert!(w.e.take_batch().is_empty(), "nothing left after the batch");
    // What the one batch stored is what the engine holds.
    w.restart();
    let v = w.e.job_view("burst").unwrap();
    assert_eq!(v.history.success_count, 1);
    assert_eq!(w.statuses("burst"), vec!["SUCCESS".to_string()]);
    assert!(w.e.job_view("gone").is_err());
    assert_eq!(
        w.mem.table(T_RUNS).len(),
        1,
        "only the kept run of `burst` is stored"
    );
}

//! Unit tests of the state actor with a fake containerizer: no root, no process, no
//! master. The fake records launches and lets a test end containers, fail launches and
//! answer command checks; the status update manager (real, not connected) keeps every
//! update the actor produced, in order.

use std::sync::Mutex;

use agora_proto::v1::{CommandInfo, HealthCheck, KillPolicy, command_info, health_check};
use futures::future::BoxFuture;
use tokio::sync::watch;

use super::*;
use crate::fetcher::FetchError;
use crate::status_update::UpdateConfig;

/// One fake container: ends when the test says so, or when killed.
struct FakeContainer {
    pid: u32,
    sandbox: std::path::PathBuf,
    tx: watch::Sender<Option<Termination>>,
    kills: Mutex<Vec<Duration>>,
    /// What command checks answer.
    check: Mutex<Result<(), String>>,
}

impl FakeContainer {
    fn end(&self, t: Termination) {
        self.tx.send_if_modified(|slot| {
            if slot.is_none() {
                *slot = Some(t);
                true
            } else {
                false
            }
        });
    }
}

impl Container for FakeContainer {
    fn pid(&self) -> u32 {
        self.pid
    }

    fn sandbox(&self) -> &std::path::Path {
        &self.sandbox
    }

    fn wait(&self) -> BoxFuture<'static, Termination> {
        let mut rx = self.tx.subscribe();
        Box::pin(async move { crate::containerizer::wait_termination(&mut rx).await })
    }

    fn kill(&self, grace: Duration) -> BoxFuture<'static, Termination> {
        if let Ok(mut k) = self.kills.lock() {
            k.push(grace);
        }
        self.end(Termination::Signaled(libc::SIGTERM));
        self.wait()
    }

    fn run_check(
        &self,
        _argv: Vec<String>,
        _timeout: Duration,
    ) -> BoxFuture<'static, Result<(), String>> {
        let answer = self
            .check
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|_| Err("poisoned".into()));
        Box::pin(async move { answer })
    }
}

/// Launches succeed (or fail with what `fail` holds) at once.
#[derive(Default)]
struct FakeContainerizer {
    launched: Mutex<Vec<(LaunchSpec, Arc<FakeContainer>)>>,
    fail: Mutex<Option<fn() -> LaunchError>>,
    /// Fetches into running containers: sandbox and URIs.
    fetched: Mutex<Vec<(std::path::PathBuf, Vec<String>)>>,
}

impl FakeContainerizer {
    fn container(&self, task_id: &str) -> Arc<FakeContainer> {
        self.launched
            .lock()
            .ok()
            .and_then(|l| {
                l.iter()
                    .find(|(s, _)| s.task_id == task_id)
                    .map(|(_, c)| Arc::clone(c))
            })
            .unwrap_or_else(|| panic!("{task_id} was not launched"))
    }
}

impl Containerizer for FakeContainerizer {
    fn launch(
        &self,
        spec: LaunchSpec,
    ) -> BoxFuture<'static, Result<Arc<dyn Container>, LaunchError>> {
        if let Some(fail) = self.fail.lock().ok().and_then(|f| *f) {
            return Box::pin(async move { Err(fail()) });
        }
        let mut launched = self.launched.lock().unwrap_or_else(|e| e.into_inner());
        let (tx, _) = watch::channel(None);
        let c = Arc::new(FakeContainer {
            pid: 1000 + launched.len() as u32,
            sandbox: std::path::PathBuf::from("/fake").join(&spec.task_id),
            tx,
            kills: Mutex::new(Vec::new()),
            check: Mutex::new(Ok(())),
        });
        launched.push((spec, Arc::clone(&c)));
        Box::pin(async move { Ok(c as Arc<dyn Container>) })
    }

    fn fetch_into(
        &self,
        sandbox: std::path::PathBuf,
        uris: Vec<crate::fetcher::FetchUri>,
    ) -> BoxFuture<'static, Result<(), LaunchError>> {
        if let Ok(mut f) = self.fetched.lock() {
            f.push((sandbox, uris.iter().map(|u| u.value.clone()).collect()));
        }
        let fail = uris.iter().any(|u| u.value.contains("missing"));
        Box::pin(async move {
            if fail {
                return Err(LaunchError::Fetch(FetchError {
                    uri: "http://x/missing".into(),
                    reason: "HTTP status 404".into(),
                }));
            }
            Ok(())
        })
    }
}

struct Harness {
    state: AgentState,
    updates: StatusUpdates,
    fake: Arc<FakeContainerizer>,
}

fn harness() -> Harness {
    let fake = Arc::new(FakeContainerizer::default());
    let (updates, _) = StatusUpdates::spawn(UpdateConfig::default());
    let (state, _) = AgentState::spawn(fake.clone(), updates.clone());
    Harness {
        state,
        updates,
        fake,
    }
}

fn framework() -> FrameworkInfo {
    FrameworkInfo {
        id: "fw".into(),
        ..Default::default()
    }
}

fn task(id: &str) -> TaskInfo {
    TaskInfo {
        task_id: id.into(),
        command: Some(CommandInfo {
            run: Some(command_info::Run::Shell("true".into())),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl Harness {
    async fn run(&self, task: TaskInfo) {
        self.state
            .command(Command::RunTask(agent_command::RunTask {
                framework: Some(framework()),
                task: Some(task),
            }))
            .await;
    }

    async fn kill(&self, id: &str) {
        self.state
            .command(Command::KillTask(agent_command::KillTask {
                framework_id: "fw".into(),
                task_id: id.into(),
                kill_policy: Some(KillPolicy {
                    grace_period_seconds: 3.0,
                }),
            }))
            .await;
    }

    /// The (state, reason) of every update produced for `id` so far.
    async fn states(&self, id: &str) -> Vec<(TaskState, StatusReason)> {
        let key = TaskKey::new("fw".to_string(), id.to_string());
        self.updates
            .pending()
            .await
            .into_iter()
            .filter(|(k, _)| *k == key)
            .flat_map(|(_, s)| s)
            .map(|s| {
                (
                    TaskState::try_from(s.state).unwrap_or(TaskState::Unspecified),
                    StatusReason::try_from(s.reason).unwrap_or(StatusReason::Unspecified),
                )
            })
            .collect()
    }

    /// Waits until `id`'s updates are `want` (at most 10 s).
    async fn expect(&self, id: &str, want: &[(TaskState, StatusReason)]) {
        for _ in 0..1000 {
            if self.states(id).await == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(self.states(id).await, want, "updates of {id}");
    }
}

const STARTING: (TaskState, StatusReason) = (TaskState::Starting, StatusReason::Unspecified);
const RUNNING: (TaskState, StatusReason) = (TaskState::Running, StatusReason::Unspecified);

#[tokio::test]
async fn a_task_runs_and_its_end_is_reported() {
    let h = harness();
    h.run(task("t")).await;
    h.expect("t", &[STARTING, RUNNING]).await;
    h.fake.container("t").end(Termination::Exited(0));
    h.expect(
        "t",
        &[
            STARTING,
            RUNNING,
            (TaskState::Finished, StatusReason::CommandExited),
        ],
    )
    .await;
    // The task left the map: the same id may run again, a kill for it is answered LOST.
    assert!(h.state.snapshot().await.tasks.is_empty());
}

#[tokio::test]
async fn launch_failures_and_invalid_tasks_are_reported() {
    let h = harness();
    if let Ok(mut f) = h.fake.fail.lock() {
        *f = Some(|| {
            LaunchError::Fetch(FetchError {
                uri: "http://x/y".into(),
                reason: "HTTP status 404".into(),
            })
        });
    }
    h.run(task("fetch")).await;
    h.expect(
        "fetch",
        &[STARTING, (TaskState::Failed, StatusReason::FetchFailed)],
    )
    .await;
    if let Ok(mut f) = h.fake.fail.lock() {
        *f = Some(|| LaunchError::UnknownUser("alice".into()));
    }
    h.run(task("user")).await;
    h.expect(
        "user",
        &[
            STARTING,
            (TaskState::Failed, StatusReason::ContainerLaunchFailed),
        ],
    )
    .await;
    let mut no_command = task("bad");
    no_command.command = None;
    h.run(no_command).await;
    h.expect("bad", &[(TaskState::Failed, StatusReason::TaskInvalid)])
        .await;
}

#[tokio::test]
async fn kills_duplicates_and_unknown_tasks() {
    let h = harness();
    h.run(task("t")).await;
    h.expect("t", &[STARTING, RUNNING]).await;
    h.run(task("t")).await;
    h.kill("t").await;
    let c = h.fake.container("t");
    h.expect(
        "t",
        &[
            STARTING,
            RUNNING,
            (TaskState::Failed, StatusReason::TaskInvalid),
            (TaskState::Killed, StatusReason::KilledByFramework),
        ],
    )
    .await;
    assert_eq!(
        c.kills.lock().map(|k| k.clone()).unwrap_or_default(),
        vec![Duration::from_secs(3)],
        "killed once, with the kill policy's grace"
    );
    h.kill("ghost").await;
    h.expect("ghost", &[(TaskState::Lost, StatusReason::TaskUnknown)])
        .await;
}

#[tokio::test]
async fn a_failing_command_check_kills_the_task() {
    let h = harness();
    let mut t = task("sick");
    t.health_check = Some(HealthCheck {
        r#type: health_check::Type::Command as i32,
        command: Some(CommandInfo {
            run: Some(command_info::Run::Shell("exit 1".into())),
            ..Default::default()
        }),
        interval_seconds: 0.1,
        consecutive_failures: 2,
        ..Default::default()
    });
    h.run(t).await;
    for _ in 0..1000 {
        if h.states("sick").await.contains(&RUNNING) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let c = h.fake.container("sick");
    if let Ok(mut check) = c.check.lock() {
        *check = Err("command exited with status 1".into());
    }
    for _ in 0..1000 {
        let states = h.states("sick").await;
        if states.last() == Some(&(TaskState::Failed, StatusReason::HealthCheckFailed)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let states = h.states("sick").await;
    assert_eq!(
        states.last(),
        Some(&(TaskState::Failed, StatusReason::HealthCheckFailed)),
        "{states:?}"
    );
    assert_eq!(c.kills.lock().map(|k| k.len()).unwrap_or(0), 1);
}

/// A harness whose agent runs custom executors (the socket is never served: the fake
/// containerizer starts nothing).
fn executor_harness() -> Harness {
    let fake = Arc::new(FakeContainerizer::default());
    let (updates, _) = StatusUpdates::spawn(UpdateConfig::default());
    let mut support = ExecutorSupport::disabled();
    support.config.socket = Some(std::path::PathBuf::from("/fake/executor.sock"));
    let (state, _) = AgentState::spawn_with(
        fake.clone(),
        updates.clone(),
        None,
        "agent".into(),
        Vec::new(),
        support,
    );
    Harness {
        state,
        updates,
        fake,
    }
}

fn executor_task(id: &str, uri: &str) -> TaskInfo {
    let mut t = task(id);
    if let Some(c) = t.command.as_mut() {
        c.uris.push(agora_proto::v1::Uri {
            value: uri.into(),
            ..Default::default()
        });
    }
    t.executor = Some(agora_proto::v1::ExecutorInfo {
        executor_id: "e1".into(),
        command: Some(CommandInfo {
            run: Some(command_info::Run::Shell("run-executor".into())),
            ..Default::default()
        }),
        ..Default::default()
    });
    t
}

#[tokio::test]
async fn uris_of_executor_tasks_are_fetched_with_their_executor() {
    let h = executor_harness();
    h.run(executor_task("t1", "http://example.invalid/app.tar.gz"))
        .await;
    for _ in 0..1000 {
        if h.fake
            .launched
            .lock()
            .map(|l| !l.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let uris: Vec<String> = h
        .fake
        .launched
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(s, _)| s.task_id == "executor.e1")
                .flat_map(|(s, _)| s.uris.iter().map(|u| u.value.clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(uris, vec!["http://example.invalid/app.tar.gz".to_string()]);

    // A fetch that fails fails the executor's tasks with FETCH_FAILED.
    let h = executor_harness();
    if let Ok(mut f) = h.fake.fail.lock() {
        *f = Some(|| {
            LaunchError::Fetch(FetchError {
                uri: "http://x/y".into(),
                reason: "HTTP status 404".into(),
            })
        });
    }
    h.run(executor_task("t2", "http://x/y")).await;
    h.expect("t2", &[(TaskState::Failed, StatusReason::FetchFailed)])
        .await;

    // A URI that cannot be fetched refuses the launch.
    let h = executor_harness();
    h.run(executor_task("t3", "ftp://x/y")).await;
    h.expect("t3", &[(TaskState::Failed, StatusReason::TaskInvalid)])
        .await;
    assert!(
        h.fake
            .launched
            .lock()
            .map(|l| l.is_empty())
            .unwrap_or(false)
    );
}

#[tokio::test]
async fn uris_of_tasks_for_a_running_executor_are_fetched_into_its_sandbox() {
    let h = executor_harness();
    h.run(executor_task("t1", "http://example.invalid/first"))
        .await;
    // Wait until the actor knows the executor's container runs.
    for _ in 0..1000 {
        let containers = h.state.containers().await;
        if containers.iter().any(|(k, _)| k.task_id == "executor.e1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.run(executor_task("t2", "http://example.invalid/second"))
        .await;
    for _ in 0..1000 {
        if h.fake
            .fetched
            .lock()
            .map(|f| !f.is_empty())
            .unwrap_or(false)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let fetched = h.fake.fetched.lock().map(|f| f.clone()).unwrap_or_default();
    assert_eq!(
        fetched,
        vec![(
            std::path::PathBuf::from("/fake/executor.e1"),
            vec!["http://example.invalid/second".to_string()]
        )]
    );
    // Only one executor was launched: t2 went to the running one.
    assert_eq!(h.fake.launched.lock().map(|l| l.len()).unwrap_or(0), 1);
    // A fetch that fails fails the task, not the executor.
    h.run(executor_task("t3", "http://x/missing")).await;
    h.expect("t3", &[(TaskState::Failed, StatusReason::FetchFailed)])
        .await;
    assert!(h.states("t2").await.is_empty(), "t2 is with its executor");
}

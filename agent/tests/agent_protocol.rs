//! The agent (in-process, with the real process containerizer) against a scripted master
//! speaking real gRPC on loopback.

mod common;

use std::time::Duration;

use agora_agent::agent::run_with_process_containerizer;
use agora_agent::{AgentConfig, AgentError, AgentExit, MasterAddr};
use agora_proto::v1::agent_command::{self, Command};
use agora_proto::v1::{CommandInfo, StatusReason, StatusSource, TaskInfo, TaskState, command_info};
use agora_resources::{Attributes, Resources};
use common::{AGENT_ID, TempDir, TestMaster, shell_task, state_of};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct RunningAgent {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<AgentExit, AgentError>>,
    dir: TempDir,
}

impl RunningAgent {
    fn start(masters: &[String], name: &str) -> RunningAgent {
        let dir = TempDir::new(name);
        let masters: Vec<MasterAddr> = masters
            .iter()
            .map(|m| m.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let resources = Resources::parse("cpus:2;mem:256;ports:[31000-31009]")
            .unwrap_or_else(|e| panic!("{e}"));
        let attributes = Attributes::parse("rack:r1").unwrap_or_else(|e| panic!("{e}"));
        let mut config = AgentConfig::new(masters, &dir.0, resources, attributes, "test-host");
        config.link.initial_backoff = Duration::from_millis(50);
        config.link.max_backoff = Duration::from_millis(200);
        config.updates.initial_backoff = Duration::from_millis(200);
        config.updates.max_backoff = Duration::from_millis(800);
        config.updates.taken_resend = Duration::from_millis(200);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(run_with_process_containerizer(config, async move {
            let _ = stopped.await;
        }));
        RunningAgent {
            stop: Some(stop),
            handle,
            dir,
        }
    }

    async fn exit(&mut self) -> AgentExit {
        match tokio::time::timeout(Duration::from_secs(15), &mut self.handle).await {
            Ok(Ok(Ok(exit))) => exit,
            Ok(Ok(Err(e))) => panic!("agent failed: {e}"),
            Ok(Err(e)) => panic!("agent panicked: {e}"),
            Err(_) => panic!("agent did not stop within 15 s"),
        }
    }

    async fn stop(&mut self) -> AgentExit {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.exit().await
    }

    fn sandbox(&self, framework_id: &str, task_id: &str) -> std::path::PathBuf {
        self.dir
            .0
            .join("sandboxes")
            .join(framework_id)
            .join(task_id)
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

fn argv_task(task_id: &str, args: &[&str]) -> TaskInfo {
    TaskInfo {
        name: task_id.into(),
        task_id: task_id.into(),
        command: Some(CommandInfo {
            run: Some(command_info::Run::Argv(command_info::Argv {
                args: args.iter().map(|s| s.to_string()).collect(),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn reason_of(status: &agora_proto::v1::TaskStatus) -> StatusReason {
    StatusReason::try_from(status.reason).unwrap_or(StatusReason::Unspecified)
}

fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn pid_in(path: &std::path::Path) -> u32 {
    for _ in 0..250 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pid in {}", path.display());
}

#[tokio::test]
async fn registers_runs_a_task_and_resends_until_acknowledged() {
    let mut master = TestMaster::start().await;
    // The first master is unreachable; the agent moves on to the second.
    let mut agent = RunningAgent::start(&["127.0.0.1:1".into(), master.address()], "happy");

    let reg = master.next_registration().await;
    let info = reg.info.unwrap_or_default();
    assert_eq!(info.id, "");
    assert_eq!(info.hostname, "test-host");
    assert!(reg.tasks.is_empty());
    assert!(!reg.version.is_empty());
    let resources = Resources::from_proto(&info.resources).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resources.scalar("cpus").as_f64(), 2.0);
    assert_eq!(resources.scalar("mem").as_f64(), 256.0);
    let attributes = Attributes::from_proto(&info.attributes).unwrap_or_else(|e| panic!("{e}"));
    assert!(attributes.get("rack").is_some());

    master
        .run_task("fw-1", shell_task("t1", "echo hello; echo oops >&2"))
        .await;
    let starting = master.next_update().await;
    assert_eq!(state_of(&starting), TaskState::Starting);
    assert_eq!(starting.agent_id, AGENT_ID);
    assert_eq!(starting.framework_id, "fw-1");
    assert_eq!(starting.source, StatusSource::SourceAgent as i32);
    assert!(uuid::Uuid::parse_str(&starting.uuid).is_ok());
    assert!(starting.timestamp_ms > 0);
    // Not acknowledged: the same update comes again.
    let again = master.next_update().await;
    assert_eq!(again.uuid, starting.uuid);
    master.ack(&starting).await;

    let mut seen = vec![starting.uuid.clone()];
    master
        .expect_and_ack(&mut seen, "t1", TaskState::Running)
        .await;
    let finished = master
        .expect_and_ack(&mut seen, "t1", TaskState::Finished)
        .await;
    assert_eq!(finished.exit_code, Some(0));
    assert_eq!(reason_of(&finished), StatusReason::CommandExited);

    let sandbox = agent.sandbox("fw-1", "t1");
    assert_eq!(
        std::fs::read_to_string(sandbox.join("stdout")).unwrap_or_default(),
        "hello\n"
    );
    assert_eq!(
        std::fs::read_to_string(sandbox.join("stderr")).unwrap_or_default(),
        "oops\n"
    );

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(master.heartbeats() >= 1, "no heartbeat");
    assert_eq!(agent.stop().await, AgentExit::Stopped);
}

#[tokio::test]
async fn failures_kills_duplicates_and_unknown_tasks() {
    let mut master = TestMaster::start().await;
    let mut agent = RunningAgent::start(&[master.address()], "failures");
    master.next_registration().await;
    let mut seen = Vec::new();

    master
        .run_task("fw-1", shell_task("t-exit", "exit 3"))
        .await;
    master
        .expect_and_ack(&mut seen, "t-exit", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t-exit", TaskState::Running)
        .await;
    let failed = master
        .expect_and_ack(&mut seen, "t-exit", TaskState::Failed)
        .await;
    assert_eq!(failed.exit_code, Some(3));
    assert_eq!(reason_of(&failed), StatusReason::CommandExited);
    assert_eq!(failed.message, "command exited with status 3");

    master
        .run_task(
            "fw-1",
            argv_task("t-missing", &["agora-no-such-program-xyz"]),
        )
        .await;
    master
        .expect_and_ack(&mut seen, "t-missing", TaskState::Starting)
        .await;
    let failed = master
        .expect_and_ack(&mut seen, "t-missing", TaskState::Failed)
        .await;
    assert_eq!(reason_of(&failed), StatusReason::ContainerLaunchFailed);
    assert!(
        failed.message.contains("No such file or directory"),
        "{}",
        failed.message
    );

    master.run_task("fw-1", shell_task("a/b", "true")).await;
    let invalid = master
        .expect_and_ack(&mut seen, "a/b", TaskState::Failed)
        .await;
    assert_eq!(reason_of(&invalid), StatusReason::TaskInvalid);

    master
        .run_task(
            "fw-1",
            shell_task("t-sleep", "echo $$ > pid; exec sleep 60"),
        )
        .await;
    master
        .expect_and_ack(&mut seen, "t-sleep", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t-sleep", TaskState::Running)
        .await;
    let pid = pid_in(&agent.sandbox("fw-1", "t-sleep").join("pid")).await;

    // The same id again fails, and leaves the first one alone.
    master
        .run_task("fw-1", shell_task("t-sleep", "exit 0"))
        .await;
    let duplicate = master
        .expect_and_ack(&mut seen, "t-sleep", TaskState::Failed)
        .await;
    assert_eq!(duplicate.message, "task id already running");
    assert!(!is_gone(pid));

    master.kill_task("fw-1", "t-sleep", 2.0).await;
    let killed = master
        .expect_and_ack(&mut seen, "t-sleep", TaskState::Killed)
        .await;
    assert_eq!(reason_of(&killed), StatusReason::KilledByFramework);
    assert!(killed.message.contains("SIGTERM"), "{}", killed.message);
    assert!(is_gone(pid));

    master.kill_task("fw-1", "ghost", 1.0).await;
    let lost = master
        .expect_and_ack(&mut seen, "ghost", TaskState::Lost)
        .await;
    assert_eq!(reason_of(&lost), StatusReason::TaskUnknown);

    assert_eq!(agent.stop().await, AgentExit::Stopped);
}

#[tokio::test]
async fn reregisters_with_its_id_and_live_tasks() {
    let mut master = TestMaster::start().await;
    let mut agent = RunningAgent::start(&[master.address()], "rereg");
    master.next_registration().await;
    let mut seen = Vec::new();

    master
        .run_task("fw-1", shell_task("t-live", "echo $$ > pid; exec sleep 60"))
        .await;
    master
        .expect_and_ack(&mut seen, "t-live", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t-live", TaskState::Running)
        .await;
    let pid = pid_in(&agent.sandbox("fw-1", "t-live").join("pid")).await;

    // Stream loss: re-register with the same id, listing the running task.
    master.drop_stream();
    let reg = master.next_registration().await;
    assert_eq!(reg.info.as_ref().map(|i| i.id.as_str()), Some(AGENT_ID));
    assert_eq!(reg.tasks.len(), 1);
    let running = &reg.tasks[0];
    assert_eq!(running.framework_id, "fw-1");
    assert_eq!(running.state, TaskState::Running as i32);
    assert_eq!(
        running.task.as_ref().map(|t| t.task_id.as_str()),
        Some("t-live")
    );
    assert_eq!(reg.frameworks.len(), 1);
    assert_eq!(reg.frameworks[0].id, "fw-1");

    // A heartbeat answered NOT_FOUND: re-register too.
    master.forget_agent();
    let reg = master.next_registration().await;
    assert_eq!(reg.info.as_ref().map(|i| i.id.as_str()), Some(AGENT_ID));
    assert_eq!(reg.tasks.len(), 1);

    // Reconciliation: the latest state of known tasks, sent once with a fresh uuid;
    // unknown ids get no answer (there is no framework id to report them under).
    master
        .send(Command::ReconcileTasks(agent_command::ReconcileTasks {
            task_ids: vec!["ghost".into(), "t-live".into()],
        }))
        .await;
    let answer = loop {
        let s = master.next_update().await;
        if reason_of(&s) == StatusReason::Reconciliation {
            break s;
        }
    };
    assert_eq!(answer.task_id, "t-live");
    assert_eq!(answer.framework_id, "fw-1");
    assert_eq!(state_of(&answer), TaskState::Running);
    assert!(!seen.contains(&answer.uuid) && !answer.uuid.is_empty());
    // Its acknowledgement matches no pending update and is ignored.
    master.ack(&answer).await;

    // Updates refused by the master are re-sent until accepted.
    master.reject_updates(true);
    master.run_task("fw-2", shell_task("t-quick", "true")).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    master.reject_updates(false);
    master
        .expect_and_ack(&mut seen, "t-quick", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t-quick", TaskState::Running)
        .await;
    master
        .expect_and_ack(&mut seen, "t-quick", TaskState::Finished)
        .await;

    // Stopping the agent kills the task and still reports it.
    if let Some(stop) = agent.stop.take() {
        let _ = stop.send(());
    }
    let killed = master.next_new_update(&mut seen).await;
    assert_eq!(killed.task_id, "t-live");
    assert_eq!(state_of(&killed), TaskState::Killed);
    assert_eq!(reason_of(&killed), StatusReason::KilledByOperator);
    assert_eq!(agent.exit().await, AgentExit::Stopped);
    assert!(is_gone(pid));
}

#[tokio::test]
async fn master_shutdown_kills_everything_and_ends_the_agent() {
    let mut master = TestMaster::start().await;
    let mut agent = RunningAgent::start(&[master.address()], "shutdown");
    master.next_registration().await;
    let mut seen = Vec::new();
    master
        .run_task(
            "fw-1",
            shell_task("t", "sleep 60 & echo $! > child; echo $$ > pid; wait"),
        )
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Running)
        .await;
    let pid = pid_in(&agent.sandbox("fw-1", "t").join("pid")).await;
    let child = pid_in(&agent.sandbox("fw-1", "t").join("child")).await;

    master
        .send(Command::Shutdown(agent_command::Shutdown {
            reason: "decommissioned".into(),
        }))
        .await;
    assert_eq!(
        agent.exit().await,
        AgentExit::RemovedByMaster {
            reason: "decommissioned".into()
        }
    );
    assert!(is_gone(pid));
    assert!(is_gone(child));
}

#[tokio::test]
async fn keeps_trying_until_a_master_appears() {
    // Reserve a port, free it, and start the master there only later.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr()
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut agent = RunningAgent::start(&[format!("127.0.0.1:{port}")], "late");
    tokio::time::sleep(Duration::from_millis(400)).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await;
    if listener.is_err() {
        eprintln!("skipped: port {port} was taken in between");
        return;
    }
    drop(listener);
    let mut master = TestMaster::start_on(port).await;
    let reg = master.next_registration().await;
    assert_eq!(reg.info.map(|i| i.id), Some(String::new()));
    assert_eq!(agent.stop().await, AgentExit::Stopped);
}

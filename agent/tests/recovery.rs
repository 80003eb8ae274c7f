//! Agent restarts against the real binary: `kill -9` the agent while tasks run, start it
//! again with the same work directory, and check what it tells the master.
//!
//! The `--isolation linux` tests need root and cgroups: they are named `needs_root`, and
//! scripts/test.sh filters them out (shown as skipped) where those are missing. Every such
//! test purges its agent's cgroups in a drop guard. The `--isolation process` test runs
//! anywhere.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use agora_agent::checkpoint::Checkpoint;
use agora_agent::containerizer::cgroups::Cgroups;
use agora_agent::containerizer::linux::agent_cgroup_name;
use agora_proto::v1::TaskState;
use common::{AGENT_ID, TempDir, TestMaster, shell_task, state_of};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command as Process};

const BIN: &str = env!("CARGO_BIN_EXE_agora-agent");
const RESOURCES: &str = "cpus:2;mem:256;disk:64;ports:[31000-31001]";

/// A work directory whose agent cgroups are purged on drop.
struct Work {
    dir: TempDir,
    cgroups: Cgroups,
}

impl Work {
    fn path(&self) -> String {
        self.dir.0.to_string_lossy().into_owned()
    }

    fn agent_name(&self) -> String {
        agent_cgroup_name(&self.dir.0)
    }
}

impl Drop for Work {
    fn drop(&mut self) {
        if let Err(e) = self.cgroups.purge_agent(&self.agent_name()) {
            eprintln!("cleanup failed: {e}");
        }
    }
}

fn work(test: &str) -> Work {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "{test}: needs root"
    );
    let cgroups = Cgroups::detect().unwrap_or_else(|e| panic!("{test}: {e}"));
    let dir = TempDir::new(test);
    let _ = std::fs::create_dir_all(&dir.0);
    // The agent resolves the same absolute path.
    let dir = TempDir(std::path::absolute(&dir.0).unwrap_or_else(|_| PathBuf::from(&dir.0)));
    Work { dir, cgroups }
}

fn agent(master: &str, work: &str, resources: &str) -> Child {
    Process::new(BIN)
        .args([
            "--master",
            master,
            "--work-dir",
            work,
            "--resources",
            resources,
            "--isolation",
            "linux",
        ])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"))
}

async fn sigkill(child: &mut Child) {
    let pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    assert!(pid > 1);
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap_or_else(|e| panic!("kill: {e}"));
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
}

#[tokio::test]
async fn needs_root_tasks_survive_a_killed_agent_and_are_recovered() {
    let work = work("recover");
    let mut master = TestMaster::start().await;
    let addr = master.address();
    let mut first = agent(&addr, &work.path(), RESOURCES);
    let reg = master.next_registration().await;
    assert!(reg.info.as_ref().is_some_and(|i| i.id.is_empty()));

    let mut seen = Vec::new();
    master
        .run_task("fw-1", shell_task("long", "exec sleep 60"))
        .await;
    master
        .expect_and_ack(&mut seen, "long", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "long", TaskState::Running)
        .await;
    // Ends while the agent is down.
    master
        .run_task("fw-1", shell_task("short", "sleep 1; exit 4"))
        .await;
    master
        .expect_and_ack(&mut seen, "short", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "short", TaskState::Running)
        .await;
    // Unacknowledged when the agent dies: must be re-sent after the restart.
    master
        .run_task("fw-1", shell_task("unacked", "exec sleep 60"))
        .await;
    let unacked_starting = master.next_new_update(&mut seen).await;
    assert_eq!(state_of(&unacked_starting), TaskState::Starting);
    // Wait until its container is checkpointed.
    let record = work.dir.0.join("meta/tasks/fw-1/unacked.pb");
    let cp = Checkpoint::new(&work.dir.0);
    for _ in 0..250 {
        let (tasks, _) = cp.read_tasks();
        if tasks
            .iter()
            .any(|(k, r)| k.task_id == "unacked" && !r.container_id.is_empty())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(record.exists());

    sigkill(&mut first).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        work.cgroups
            .list_containers(&work.agent_name())
            .unwrap_or_default()
            .len(),
        3,
        "containers outlive the agent (the ended one is cleaned up after the restart)"
    );

    let mut second = agent(&addr, &work.path(), RESOURCES);
    let reg = master.next_registration().await;
    assert_eq!(reg.info.as_ref().map(|i| i.id.as_str()), Some(AGENT_ID));
    let listed: Vec<String> = reg
        .tasks
        .iter()
        .filter_map(|t| t.task.as_ref().map(|t| t.task_id.clone()))
        .collect();
    assert!(listed.contains(&"long".to_string()), "{listed:?}");
    assert!(listed.contains(&"unacked".to_string()), "{listed:?}");

    // The unacknowledged STARTING comes again (same uuid), then the rest in order; the
    // task that ended meanwhile gets its terminal update.
    let mut got_short = None;
    let mut unacked_states = Vec::new();
    for _ in 0..40 {
        if got_short.is_some() && unacked_states.len() >= 2 {
            break;
        }
        let s = master.next_update().await;
        match s.task_id.as_str() {
            "short" if state_of(&s) == TaskState::Failed => {
                master.ack(&s).await;
                got_short = Some(s);
            }
            "unacked" => {
                if unacked_states.is_empty() {
                    assert_eq!(s.uuid, unacked_starting.uuid, "re-sent with its uuid");
                }
                if !unacked_states.contains(&s.uuid) {
                    unacked_states.push(s.uuid.clone());
                }
                master.ack(&s).await;
            }
            _ => {}
        }
    }
    let short = got_short.unwrap_or_else(|| panic!("no terminal update for the short task"));
    assert_eq!(short.exit_code, Some(4), "{short:?}");
    assert!(
        unacked_states.len() >= 2,
        "STARTING then RUNNING re-sent in order"
    );

    // The re-attached task can still be killed, and nothing is left afterwards.
    let mut seen = Vec::new();
    master.kill_task("fw-1", "long", 1.0).await;
    master.kill_task("fw-1", "unacked", 1.0).await;
    let mut killed = 0;
    for _ in 0..20 {
        let s = master.next_new_update(&mut seen).await;
        if state_of(&s) == TaskState::Killed {
            master.ack(&s).await;
            killed += 1;
            if killed == 2 {
                break;
            }
        }
    }
    assert_eq!(killed, 2);
    let left = work
        .cgroups
        .list_containers(&work.agent_name())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    sigkill(&mut second).await;
}

#[tokio::test]
async fn needs_root_changed_resources_are_refused_and_a_reboot_registers_anew() {
    let work = work("refuse");
    let mut master = TestMaster::start().await;
    let addr = master.address();
    let mut first = agent(&addr, &work.path(), RESOURCES);
    master.next_registration().await;
    // The id is checkpointed once registered.
    let cp = Checkpoint::new(&work.dir.0);
    for _ in 0..100 {
        if cp
            .read_agent()
            .ok()
            .flatten()
            .is_some_and(|m| m.agent_id == AGENT_ID)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sigkill(&mut first).await;

    let refused = agent(
        &addr,
        &work.path(),
        "cpus:1;mem:256;disk:64;ports:[31000-31001]",
    );
    let out = tokio::time::timeout(Duration::from_secs(20), refused.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("refused agent did not exit"))
        .unwrap_or_else(|e| panic!("wait: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("--resources"), "{stderr}");
    assert!(stderr.contains(AGENT_ID), "{stderr}");

    // A different boot id means the host rebooted: a new agent.
    let mut meta = cp
        .read_agent()
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no agent checkpoint"));
    meta.boot_id = "another-boot".into();
    cp.write_agent(&meta)
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut third = agent(&addr, &work.path(), RESOURCES);
    let reg = master.next_registration().await;
    assert_eq!(reg.info.as_ref().map(|i| i.id.as_str()), Some(""));
    sigkill(&mut third).await;
}

/// `--isolation process`: a restarted agent re-attaches to its tasks' processes instead of
/// reporting them ended while they still run; a task that ended while the agent was down
/// is reported ended (its exit status is lost), and a re-attached task can be killed.
#[tokio::test]
async fn process_isolation_reattaches_after_a_restart() {
    let dir = TempDir::new("process-recover");
    std::fs::create_dir_all(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.0.to_string_lossy().into_owned();
    let start = |addr: &str| {
        Process::new(BIN)
            .args([
                "--master",
                addr,
                "--work-dir",
                &path,
                "--resources",
                RESOURCES,
                "--isolation",
                "process",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn: {e}"))
    };
    let mut master = TestMaster::start().await;
    let addr = master.address();
    let mut first = start(&addr);
    master.next_registration().await;
    let mut seen = Vec::new();
    for (id, script) in [
        ("long", "echo $$ > pid; exec sleep 60"),
        ("short", "sleep 1; exit 4"),
    ] {
        master.run_task("fw-1", shell_task(id, script)).await;
        master
            .expect_and_ack(&mut seen, id, TaskState::Starting)
            .await;
        master
            .expect_and_ack(&mut seen, id, TaskState::Running)
            .await;
    }
    let cp = Checkpoint::new(&dir.0);
    for _ in 0..250 {
        let (tasks, _) = cp.read_tasks();
        if tasks.iter().filter(|(_, r)| r.pid != 0).count() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid_file = dir.0.join("sandboxes/fw-1/long/pid");
    let long_pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{e}"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    sigkill(&mut first).await;
    // The short task ends while the agent is down.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        kill(Pid::from_raw(long_pid), None).is_ok(),
        "the long task outlives the agent"
    );

    let mut second = start(&addr);
    let reg = master.next_registration().await;
    let listed: Vec<(String, i32)> = reg
        .tasks
        .iter()
        .filter_map(|t| t.task.as_ref().map(|x| (x.task_id.clone(), t.state)))
        .collect();
    assert!(
        listed.contains(&("long".to_string(), TaskState::Running as i32)),
        "{listed:?}"
    );
    let mut short = None;
    for _ in 0..20 {
        let s = master.next_update().await;
        master.ack(&s).await;
        assert!(
            !(s.task_id == "long" && state_of(&s).is_terminal()),
            "the running task was reported ended: {s:?}"
        );
        if s.task_id == "short" && state_of(&s).is_terminal() {
            short = Some(s);
            break;
        }
    }
    let short = short.unwrap_or_else(|| panic!("no terminal update for the short task"));
    assert_eq!(state_of(&short), TaskState::Failed, "{short:?}");
    assert!(short.message.contains("exit status is lost"), "{short:?}");

    // The re-attached task is killed for real.
    let mut seen = Vec::new();
    master.kill_task("fw-1", "long", 1.0).await;
    loop {
        let s = master.next_new_update(&mut seen).await;
        master.ack(&s).await;
        if s.task_id == "long" && state_of(&s) == TaskState::Killed {
            break;
        }
    }
    let gone = (0..250).any(|_| {
        let alive = std::fs::read_to_string(format!("/proc/{long_pid}/stat")).is_ok_and(|s| {
            !s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        });
        if alive {
            std::thread::sleep(Duration::from_millis(20));
        }
        !alive
    });
    assert!(gone, "the killed task's process {long_pid} still runs");
    sigkill(&mut second).await;
}

//! Health checks through the real binary: results in RUNNING updates, and a task whose
//! check keeps failing is killed and ends FAILED with HEALTH_CHECK_FAILED.

mod common;

use std::process::Stdio;

use agora_proto::v1::{
    CommandInfo, HealthCheck, StatusReason, TaskState, command_info, health_check,
};
use common::{TempDir, TestMaster, shell_task, state_of};

const BIN: &str = env!("CARGO_BIN_EXE_agora-agent");

fn command_check(script: &str) -> HealthCheck {
    HealthCheck {
        r#type: health_check::Type::Command as i32,
        command: Some(CommandInfo {
            run: Some(command_info::Run::Shell(script.into())),
            ..Default::default()
        }),
        interval_seconds: 0.1,
        timeout_seconds: 2.0,
        consecutive_failures: 2,
        ..Default::default()
    }
}

#[tokio::test]
async fn results_are_reported_and_failing_tasks_are_killed() {
    let mut master = TestMaster::start().await;
    let dir = TempDir::new("health");
    let mut child = tokio::process::Command::new(BIN)
        .args([
            "--master",
            &master.address(),
            "--work-dir",
            &dir.0.to_string_lossy(),
            "--resources",
            "cpus:1;mem:64;disk:64;ports:[31000-31001]",
            "--isolation",
            "process",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    master.next_registration().await;
    let mut seen = Vec::new();

    // Healthy once the file exists (the check runs in the sandbox).
    let mut ok = shell_task("ok", "touch ready; exec sleep 30");
    // A probe may run before `touch`: the grace period hides failures until the first
    // success.
    ok.health_check = Some(HealthCheck {
        grace_period_seconds: 10.0,
        ..command_check("test -f ready")
    });
    master.run_task("fw-1", ok).await;
    master
        .expect_and_ack(&mut seen, "ok", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "ok", TaskState::Running)
        .await;
    let s = master.next_new_update(&mut seen).await;
    master.ack(&s).await;
    assert_eq!(state_of(&s), TaskState::Running);
    assert_eq!(s.healthy, Some(true), "{s:?}");

    let mut bad = shell_task("bad", "exec sleep 30");
    bad.health_check = Some(HealthCheck {
        r#type: health_check::Type::Tcp as i32,
        port: 1,
        interval_seconds: 0.1,
        consecutive_failures: 2,
        ..Default::default()
    });
    master.run_task("fw-1", bad).await;
    let mut states = Vec::new();
    let terminal = loop {
        let s = master.next_new_update(&mut seen).await;
        master.ack(&s).await;
        if s.task_id != "bad" {
            continue;
        }
        states.push((state_of(&s), s.healthy));
        if state_of(&s) == TaskState::Failed {
            break s;
        }
    };
    assert!(
        states.contains(&(TaskState::Running, Some(false))),
        "{states:?}"
    );
    assert_eq!(
        terminal.reason,
        StatusReason::HealthCheckFailed as i32,
        "{terminal:?}"
    );
    // Tasks outlive a killed agent: stop the healthy one first.
    master.kill_task("fw-1", "ok", 0.5).await;
    loop {
        let s = master.next_new_update(&mut seen).await;
        master.ack(&s).await;
        if s.task_id == "ok" && state_of(&s) == TaskState::Killed {
            break;
        }
    }
    let _ = child.kill().await;
}

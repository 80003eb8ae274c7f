//! The `agora-agent` binary: flag errors, SIGTERM, and the master's Shutdown.

mod common;

use std::process::Stdio;
use std::time::Duration;

use agora_proto::v1::TaskState;
use agora_proto::v1::agent_command::{self, Command};
use common::{TempDir, TestMaster, shell_task};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command as Process};

const BIN: &str = env!("CARGO_BIN_EXE_agora-agent");
const RESOURCES: &str = "cpus:1;mem:64;disk:64;ports:[31000-31001]";

fn agent(args: &[&str]) -> Process {
    let mut cmd = Process::new(BIN);
    cmd.args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn finish(child: Child) -> (i32, String) {
    let out = match tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => panic!("wait: {e}"),
        Err(_) => panic!("agent did not exit within 20 s"),
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run_to_end(args: &[&str]) -> (i32, String) {
    let child = agent(args).spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    finish(child).await
}

#[tokio::test]
async fn invalid_flags_exit_non_zero_with_the_error() {
    let dir = TempDir::new("bin-flags");
    let work = dir.0.to_string_lossy().into_owned();
    for (args, needle) in [
        (
            vec![
                "--master",
                "127.0.0.1:1",
                "--work-dir",
                &work,
                "--resources",
                "cpus:-1",
            ],
            "cpus",
        ),
        (
            vec![
                "--master",
                "127.0.0.1:1",
                "--work-dir",
                &work,
                "--resources",
                "ports:[30-20]",
            ],
            "ports",
        ),
        (
            vec![
                "--master",
                "127.0.0.1:1",
                "--work-dir",
                &work,
                "--attributes",
                "rack:[9-1]",
            ],
            "rack",
        ),
        (
            vec!["--master", "nohost", "--work-dir", &work],
            "missing port",
        ),
        (vec!["--work-dir", &work], "--master"),
    ] {
        let (code, stderr) = run_to_end(&args).await;
        assert_ne!(code, 0, "{args:?} exited 0");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn sigterm_kills_tasks_and_exits_zero() {
    let mut master = TestMaster::start().await;
    let dir = TempDir::new("bin-sigterm");
    let work = dir.0.to_string_lossy().into_owned();
    let addr = master.address();
    let child = agent(&[
        "--master",
        &addr,
        "--work-dir",
        &work,
        "--resources",
        RESOURCES,
        // The task's pid below is read from inside the task: host pids need no pid
        // namespace (the Linux containerizer's kill is tested in linux_isolation.rs).
        "--isolation",
        "process",
    ])
    .spawn()
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    let reg = master.next_registration().await;
    let info = reg.info.unwrap_or_default();
    assert!(!info.hostname.is_empty());

    let mut seen = Vec::new();
    master
        .run_task("fw-1", shell_task("t", "echo $$ > pid; exec sleep 60"))
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "t", TaskState::Running)
        .await;
    let pid_file = dir.0.join("sandboxes/fw-1/t/pid");
    let mut pid = None;
    for _ in 0..250 {
        pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        if pid.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let task_pid = pid.unwrap_or_else(|| panic!("no pid file"));

    let agent_pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    assert!(agent_pid > 1);
    kill(Pid::from_raw(agent_pid), Signal::SIGTERM).unwrap_or_else(|e| panic!("kill: {e}"));
    let killed = master.next_new_update(&mut seen).await;
    assert_eq!(common::state_of(&killed), TaskState::Killed);
    let (code, stderr) = finish(child).await;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !std::path::Path::new(&format!("/proc/{task_pid}")).exists() || {
            let stat =
                std::fs::read_to_string(format!("/proc/{task_pid}/stat")).unwrap_or_default();
            stat.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        }
    );
}

#[tokio::test]
async fn master_shutdown_exits_non_zero_with_the_reason() {
    let mut master = TestMaster::start().await;
    let dir = TempDir::new("bin-shutdown");
    let work = dir.0.to_string_lossy().into_owned();
    let addr = master.address();
    let child = agent(&[
        "--master",
        &addr,
        "--work-dir",
        &work,
        "--resources",
        RESOURCES,
    ])
    .spawn()
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    master.next_registration().await;
    master
        .send(Command::Shutdown(agent_command::Shutdown {
            reason: "agent removed by operator".into(),
        }))
        .await;
    let (code, stderr) = finish(child).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("agent removed by operator"), "{stderr}");
}

#[path = "support/oci.rs"]
mod oci;

/// The flags end to end: `--image-dir` and `--gpu-device` (a mknod'ed character device
/// standing for a GPU). The agent advertises `gpus:1`; a task naming the busybox image and
/// one GPU runs in the image's root with that device in its `/dev`; a task naming an image
/// outside `--image-dir` fails with the reason.
#[tokio::test]
async fn needs_root_image_and_gpu_flags_end_to_end() {
    let mut master = TestMaster::start().await;
    let dir = TempDir::new("bin-image");
    let images = dir.0.join("images");
    oci::busybox_image(&images.join("busybox"));
    let gpu = dir.0.join("gpu0");
    nix::sys::stat::mknod(
        &gpu,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 7),
    )
    .unwrap_or_else(|e| panic!("mknod: {e}"));
    let work = dir.0.join("work").to_string_lossy().into_owned();
    let addr = master.address();
    let child = agent(&[
        "--master",
        &addr,
        "--work-dir",
        &work,
        "--resources",
        RESOURCES,
        "--isolation",
        "linux",
        "--image-dir",
        &images.to_string_lossy(),
        "--gpu-device",
        &gpu.to_string_lossy(),
    ])
    .spawn()
    .unwrap_or_else(|e| panic!("spawn: {e}"));
    let reg = master.next_registration().await;
    let resources = agora_resources::Resources::from_proto(&reg.info.unwrap_or_default().resources)
        .unwrap_or_else(|e| panic!("resources: {e}"));
    assert_eq!(resources.scalar("gpus").thousandths(), 1000);

    let mut seen = Vec::new();
    let mut task = shell_task(
        "img",
        "cat /etc/motd; echo \"$AGORA_GPUS\"; ls /dev | grep gpu; test ! -e /usr",
    );
    task.resources = agora_resources::Resources::parse("cpus:0.1;mem:32;gpus:1")
        .unwrap_or_else(|e| panic!("{e}"))
        .to_proto();
    task.container = Some(agora_proto::v1::ContainerInfo {
        image: Some(agora_proto::v1::Image {
            path: images.join("busybox").to_string_lossy().into_owned(),
        }),
    });
    master.run_task("fw-1", task).await;
    master
        .expect_and_ack(&mut seen, "img", TaskState::Starting)
        .await;
    master
        .expect_and_ack(&mut seen, "img", TaskState::Running)
        .await;
    let done = master
        .expect_and_ack(&mut seen, "img", TaskState::Finished)
        .await;
    let stdout = std::fs::read_to_string(dir.0.join("work/sandboxes/fw-1/img/stdout"))
        .unwrap_or_else(|e| panic!("stdout: {e} ({done:?})"));
    assert_eq!(stdout, format!("from the image\n{}\ngpu0\n", gpu.display()));

    let mut outside = shell_task("outside", "true");
    outside.container = Some(agora_proto::v1::ContainerInfo {
        image: Some(agora_proto::v1::Image {
            path: "/etc".into(),
        }),
    });
    master.run_task("fw-1", outside).await;
    master
        .expect_and_ack(&mut seen, "outside", TaskState::Starting)
        .await;
    let failed = master
        .expect_and_ack(&mut seen, "outside", TaskState::Failed)
        .await;
    assert!(
        failed.message.contains("not below an --image-dir"),
        "{failed:?}"
    );
    let agent_pid = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
    kill(Pid::from_raw(agent_pid), Signal::SIGTERM).unwrap_or_else(|e| panic!("kill: {e}"));
    let (code, stderr) = finish(child).await;
    assert_eq!(code, 0, "{stderr}");
}

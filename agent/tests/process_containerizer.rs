//! The plain-process containerizer against real processes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agora_agent::containerizer::Program;
use agora_agent::{
    Container, Containerizer, LaunchError, LaunchSpec, ProcessContainerizer, Termination,
};
use agora_resources::Resources;

/// A unique work directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("agora-agent-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spec(task_id: &str, program: Program) -> LaunchSpec {
    LaunchSpec {
        framework_id: "fw-1".into(),
        task_id: task_id.into(),
        agent_id: "agent-1".into(),
        program,
        environment: vec![],
        ports: vec![],
        user: None,
        resources: Resources::new(),
        uris: vec![],
        image: None,
        volumes: Vec::new(),
    }
}

fn shell(script: &str) -> Program {
    Program::Shell(script.into())
}

fn argv(args: &[&str]) -> Program {
    Program::Argv(args.iter().map(|s| s.to_string()).collect())
}

async fn launch(dir: &TempDir, spec: LaunchSpec) -> Result<Arc<dyn Container>, LaunchError> {
    let containerizer = match ProcessContainerizer::new(&dir.0) {
        Ok(c) => c,
        Err(e) => panic!("containerizer: {e}"),
    };
    containerizer.launch(spec).await
}

async fn started(dir: &TempDir, spec: LaunchSpec) -> Arc<dyn Container> {
    match launch(dir, spec).await {
        Ok(c) => c,
        Err(e) => panic!("launch failed: {e}"),
    }
}

async fn wait(container: &Arc<dyn Container>) -> Termination {
    match tokio::time::timeout(Duration::from_secs(10), container.wait()).await {
        Ok(t) => t,
        Err(_) => panic!("task did not end within 10 s"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// True when the process no longer runs (absent, or a zombie waiting for init).
fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn assert_gone_soon(pid: u32) {
    for _ in 0..100 {
        if is_gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("process {pid} still runs");
}

/// Waits for a file a task writes (e.g. a pid) and returns its trimmed content.
async fn wait_for_file(path: &Path) -> String {
    for _ in 0..250 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{} never appeared", path.display());
}

async fn pid_in(path: &Path) -> u32 {
    let text = wait_for_file(path).await;
    text.parse()
        .unwrap_or_else(|e| panic!("bad pid {text:?} in {}: {e}", path.display()))
}

#[tokio::test]
async fn true_exits_zero() {
    let dir = TempDir::new("true");
    let c = started(&dir, spec("t", argv(&["/bin/true"]))).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    // Waiting again gives the same answer.
    assert_eq!(wait(&c).await, Termination::Exited(0));
    let sandbox = dir.0.join("sandboxes/fw-1/t");
    assert_eq!(c.sandbox(), sandbox);
    assert!(sandbox.join("stdout").is_file());
    assert!(sandbox.join("stderr").is_file());
}

#[tokio::test]
async fn argv_is_looked_up_in_path() {
    let dir = TempDir::new("path");
    let c = started(
        &dir,
        spec("t", argv(&["sh", "-c", "echo \"$0 $1\"", "a", "b"])),
    )
    .await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    assert_eq!(read(&c.sandbox().join("stdout")), "a b\n");
}

#[tokio::test]
async fn exit_code_is_reported() {
    let dir = TempDir::new("exit3");
    let c = started(&dir, spec("t", shell("exit 3"))).await;
    let t = wait(&c).await;
    assert_eq!(t, Termination::Exited(3));
    assert_eq!(t.to_string(), "command exited with status 3");
}

#[tokio::test]
async fn signal_is_reported() {
    let dir = TempDir::new("segv");
    let c = started(&dir, spec("t", shell("kill -SEGV $$"))).await;
    let t = wait(&c).await;
    assert_eq!(t, Termination::Signaled(11));
    assert_eq!(t.to_string(), "terminated by signal SIGSEGV");
}

#[tokio::test]
async fn output_lands_in_sandbox_files() {
    let dir = TempDir::new("output");
    let c = started(&dir, spec("t", shell("echo to-out; echo to-err >&2; pwd"))).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    let sandbox = c.sandbox().to_path_buf();
    assert!(sandbox.is_absolute());
    assert_eq!(
        read(&sandbox.join("stdout")),
        format!("to-out\n{}\n", sandbox.display())
    );
    assert_eq!(read(&sandbox.join("stderr")), "to-err\n");
}

#[tokio::test]
async fn stdin_is_dev_null() {
    let dir = TempDir::new("stdin");
    let c = started(&dir, spec("t", shell("cat; echo done"))).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    assert_eq!(read(&c.sandbox().join("stdout")), "done\n");
}

#[tokio::test]
async fn environment_is_set() {
    let dir = TempDir::new("env");
    let mut s = spec("task-env", shell("env"));
    s.ports = vec![31000, 31005];
    s.environment = vec![
        ("FOO".into(), "bar baz".into()),
        // The agent's own variables win over the command's.
        ("AGORA_TASK_ID".into(), "spoofed".into()),
    ];
    let c = started(&dir, s).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    let out = read(&c.sandbox().join("stdout"));
    let sandbox = c.sandbox().display().to_string();
    for expected in [
        "AGORA_TASK_ID=task-env".to_string(),
        "AGORA_FRAMEWORK_ID=fw-1".to_string(),
        "AGORA_AGENT_ID=agent-1".to_string(),
        format!("AGORA_SANDBOX={sandbox}"),
        "PORT0=31000".to_string(),
        "PORT1=31005".to_string(),
        "PORTS=31000,31005".to_string(),
        "FOO=bar baz".to_string(),
    ] {
        assert!(
            out.lines().any(|l| l == expected),
            "{expected} missing in:\n{out}"
        );
    }
    assert!(!out.contains("spoofed"), "{out}");
    // The agent's environment (PATH) is passed on.
    assert!(out.lines().any(|l| l.starts_with("PATH=")), "{out}");
}

#[tokio::test]
async fn kill_stops_sleep_within_grace() {
    let dir = TempDir::new("kill-sleep");
    let c = started(&dir, spec("t", argv(&["sleep", "60"]))).await;
    let pid = c.pid();
    assert!(!is_gone(pid));
    let begin = Instant::now();
    let t = c.kill(Duration::from_secs(3)).await;
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "{:?}",
        begin.elapsed()
    );
    assert_eq!(t, Termination::Signaled(15));
    assert_eq!(wait(&c).await, Termination::Signaled(15));
    assert_gone_soon(pid).await;
    // Killing again just returns the termination.
    assert_eq!(
        c.kill(Duration::from_secs(3)).await,
        Termination::Signaled(15)
    );
}

#[tokio::test]
async fn kill_reaches_children_of_a_shell() {
    let dir = TempDir::new("kill-tree");
    let c = started(
        &dir,
        spec("t", shell("sleep 60 & echo $! > child.pid; wait")),
    )
    .await;
    let child = pid_in(&c.sandbox().join("child.pid")).await;
    assert!(!is_gone(child));
    let begin = Instant::now();
    let t = c.kill(Duration::from_secs(3)).await;
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "{:?}",
        begin.elapsed()
    );
    assert_eq!(t, Termination::Signaled(15));
    assert_gone_soon(c.pid()).await;
    assert_gone_soon(child).await;
}

#[tokio::test]
async fn sigkill_after_grace_when_sigterm_is_ignored() {
    let dir = TempDir::new("kill-stubborn");
    let script = "trap '' TERM; sleep 60 & echo $! > child.pid; wait";
    let c = started(&dir, spec("t", shell(script))).await;
    let child = pid_in(&c.sandbox().join("child.pid")).await;
    let begin = Instant::now();
    let t = c.kill(Duration::from_millis(500)).await;
    let took = begin.elapsed();
    assert!(took >= Duration::from_millis(500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(t, Termination::Signaled(9));
    assert_gone_soon(c.pid()).await;
    assert_gone_soon(child).await;
}

#[tokio::test]
async fn leftovers_die_with_the_main_process() {
    let dir = TempDir::new("leftovers");
    let c = started(&dir, spec("t", shell("sleep 60 & echo $! > child.pid"))).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    let child = pid_in(&c.sandbox().join("child.pid")).await;
    assert_gone_soon(child).await;
}

#[tokio::test]
async fn bad_ids_are_refused() {
    let dir = TempDir::new("bad-ids");
    let long = "x".repeat(256);
    for (fw, task) in [
        ("fw-1", ""),
        ("fw-1", "."),
        ("fw-1", ".."),
        ("fw-1", "../escape"),
        ("fw-1", "a\0b"),
        ("fw-1", long.as_str()),
        ("..", "t"),
        ("", "t"),
        ("a/b", "t"),
    ] {
        let mut s = spec(task, argv(&["/bin/true"]));
        s.framework_id = fw.into();
        match launch(&dir, s).await {
            Err(LaunchError::InvalidId(_)) => {}
            Err(e) => panic!("{fw:?}/{task:?}: wrong error {e}"),
            Ok(_) => panic!("{fw:?}/{task:?} accepted"),
        }
    }
    // Nothing was created, inside the work dir or next to it.
    assert!(!dir.0.join("sandboxes").exists());
    assert!(!dir.0.join("escape").exists());
}

#[tokio::test]
async fn missing_program_fails_to_launch() {
    let dir = TempDir::new("missing");
    for program in ["/nonexistent/agora-prog", "agora-no-such-program-xyz"] {
        let err = match launch(&dir, spec("t", argv(&[program]))).await {
            Err(e) => e,
            Ok(_) => panic!("{program} launched"),
        };
        let text = err.to_string();
        assert!(matches!(err, LaunchError::Spawn { .. }), "{text}");
        assert!(text.contains(program), "{text}");
        assert!(text.contains("No such file or directory"), "{text}");
    }
}

#[tokio::test]
async fn unknown_user_fails_to_launch() {
    let dir = TempDir::new("nouser");
    let mut s = spec("t", argv(&["/bin/true"]));
    s.user = Some("agora-no-such-user".into());
    match launch(&dir, s).await {
        Err(LaunchError::UnknownUser(u)) => assert_eq!(u, "agora-no-such-user"),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("launched"),
    }
}

#[tokio::test]
async fn needs_root_runs_as_another_user() {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let dir = TempDir::new("user");
    // Let `nobody` traverse to its sandbox.
    std::fs::create_dir_all(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let mut s = spec("t", shell("id -u; id -G; echo ok > own-file"));
    s.user = Some("nobody".into());
    let c = started(&dir, s).await;
    assert_eq!(wait(&c).await, Termination::Exited(0));
    let out = read(&c.sandbox().join("stdout"));
    let uid = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .map(|u| u.uid.as_raw())
        .unwrap_or(65534);
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(uid.to_string().as_str()), "{out}");
    // No supplementary group of root leaked.
    assert!(
        !lines.next().unwrap_or("").split(' ').any(|g| g == "0"),
        "{out}"
    );
    assert_eq!(read(&c.sandbox().join("own-file")), "ok\n");
}

/// A command check of a process container runs as the task's user (the sandbox's owner),
/// not as the agent (root): what root could do, the check cannot.
#[tokio::test]
async fn needs_root_command_checks_run_as_the_task_user() {
    assert!(nix::unistd::Uid::effective().is_root(), "needs root");
    let dir = TempDir::new("check-user");
    std::fs::create_dir_all(&dir.0).unwrap_or_else(|e| panic!("{e}"));
    let mut s = spec("t", shell("exec sleep 60"));
    s.user = Some("nobody".into());
    let c = started(&dir, s).await;
    let sh = |script: String| {
        c.run_check(
            vec!["/bin/sh".into(), "-c".into(), script],
            Duration::from_secs(10),
        )
    };
    sh("test \"$(id -u)\" = 65534 && test \"$PWD\" = \"$AGORA_SANDBOX\"".into())
        .await
        .unwrap_or_else(|e| panic!("check: {e}"));
    let leak = dir.0.join("leak");
    let err = sh(format!("touch {}", leak.display()))
        .await
        .expect_err("the check must not write as root");
    assert!(err.contains("exit status: 1"), "{err}");
    assert!(!leak.exists());
    assert!(sh("cat /etc/shadow".into()).await.is_err());
    c.kill(Duration::ZERO).await;
}

#[tokio::test]
async fn relaunch_never_writes_through_a_planted_symlink() {
    let dir = TempDir::new("symlink");
    // A first run of the task plants links where the agent will write the output.
    let victim = dir.0.join("victim");
    let first = started(
        &dir,
        spec(
            "t",
            shell(&format!(
                "echo precious > {v}; rm stdout; ln -s {v} stdout",
                v = victim.display()
            )),
        ),
    )
    .await;
    assert_eq!(wait(&first).await, Termination::Exited(0));
    assert!(first.sandbox().join("stdout").is_symlink());

    // The same task id again: fresh files, the link's target untouched.
    let second = started(&dir, spec("t", shell("echo second"))).await;
    assert_eq!(wait(&second).await, Termination::Exited(0));
    let stdout = second.sandbox().join("stdout");
    assert!(!stdout.is_symlink());
    assert_eq!(read(&stdout), "second\n");
    assert_eq!(read(&victim), "precious\n");
}

//! Ports and disk watched from outside the container ([`agora_agent::containerizer::limits`]),
//! against real processes: a task listening on a port it was not given, and a task writing
//! more than its `disk`, are killed (or only reported) and say why; a task within its
//! allocation runs on. Plain processes need no root; the Linux-container variant does.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use agora_agent::containerizer::Program;
use agora_agent::containerizer::limits::{Enforcement, LimitPolicy, LimitingContainerizer};
use agora_agent::{Container, Containerizer, LaunchSpec, ProcessContainerizer, Termination};
use agora_resources::Resources;

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "agora-agent-limits-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn policy(ports: Enforcement, disk: Enforcement) -> LimitPolicy {
    LimitPolicy {
        ports,
        disk,
        ports_interval: Duration::from_millis(100),
        disk_interval: Duration::from_millis(100),
    }
}

fn spec(task_id: &str, script: &str, resources: &str) -> LaunchSpec {
    let resources = Resources::parse(resources).unwrap_or_else(|e| panic!("{e}"));
    LaunchSpec {
        framework_id: "fw-1".into(),
        task_id: task_id.into(),
        agent_id: "agent-1".into(),
        program: Program::Shell(script.into()),
        environment: vec![],
        ports: resources
            .ranges("ports")
            .iter()
            .flat_map(|(lo, hi)| lo..=hi)
            .collect(),
        user: None,
        resources,
        uris: vec![],
        image: None,
        volumes: Vec::new(),
    }
}

/// Listens on 127.0.0.1:`port` (0: any), writes the port to `port`, then sleeps.
fn listener(port: u16) -> String {
    format!(
        "exec perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \"127.0.0.1\", \
         LocalPort => {port}, Listen => 5, ReuseAddr => 1) or die \"listen: $!\"; \
         open(my $f, \">\", \"port.tmp\") or die; print $f $s->sockport; close $f; \
         rename(\"port.tmp\", \"port\"); sleep 60'"
    )
}

async fn launch(
    inner: Arc<dyn Containerizer>,
    dir: &TempDir,
    policy: LimitPolicy,
    spec: LaunchSpec,
) -> Arc<dyn Container> {
    let c = LimitingContainerizer::new(inner, &dir.0, policy);
    c.launch(spec)
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"))
}

fn process(dir: &TempDir) -> Arc<dyn Containerizer> {
    Arc::new(ProcessContainerizer::new(&dir.0).unwrap_or_else(|e| panic!("{e}")))
}

async fn ended_within(c: &Arc<dyn Container>, secs: u64) -> Option<Termination> {
    tokio::time::timeout(Duration::from_secs(secs), c.wait())
        .await
        .ok()
}

async fn wait_port_file(c: &Arc<dyn Container>) -> u16 {
    let file = c.sandbox().join("port");
    for _ in 0..200 {
        if let Some(p) = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "the task never listened; stderr: {}",
        std::fs::read_to_string(c.sandbox().join("stderr")).unwrap_or_default()
    );
}

/// A port nothing listens on right now (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn unallocated_port_kills_the_task_and_names_the_port() {
    let dir = TempDir::new("port-kill");
    let c = launch(
        process(&dir),
        &dir,
        policy(Enforcement::Kill, Enforcement::Off),
        spec("t", &listener(0), "cpus:0.1;ports:[1-1]"),
    )
    .await;
    let port = wait_port_file(&c).await;
    let t = ended_within(&c, 10)
        .await
        .unwrap_or_else(|| panic!("a task on unallocated port {port} was not killed"));
    assert_eq!(
        t,
        Termination::PortLimit(format!(
            "listening on unallocated port {port} (allocated: 1)"
        ))
    );
    // The listener is gone with its container.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    // Its checkpoint went with it.
    let left: Vec<_> = std::fs::read_dir(dir.0.join("limits"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn allocated_port_runs_on_and_report_only_never_kills() {
    let dir = TempDir::new("port-ok");
    let port = free_port();
    let ok = launch(
        process(&dir),
        &dir,
        policy(Enforcement::Kill, Enforcement::Off),
        spec("ok", &listener(port), &format!("ports:[{port}-{port}]")),
    )
    .await;
    assert_eq!(wait_port_file(&ok).await, port);
    let reported = launch(
        process(&dir),
        &dir,
        policy(Enforcement::Report, Enforcement::Off),
        spec("reported", &listener(0), "ports:[1-1]"),
    )
    .await;
    wait_port_file(&reported).await;
    // Many check intervals later, both still run.
    assert_eq!(ended_within(&ok, 1).await, None);
    assert_eq!(ended_within(&reported, 1).await, None);
    ok.kill(Duration::ZERO).await;
    assert_eq!(
        reported.kill(Duration::ZERO).await,
        Termination::Signaled(15)
    );
}

#[tokio::test]
async fn sandbox_over_its_disk_is_killed_and_says_by_how_much() {
    let dir = TempDir::new("disk");
    // disk:1 is 1 MB; the task writes 3 MB (real blocks, not a sparse file).
    let c = launch(
        process(&dir),
        &dir,
        policy(Enforcement::Off, Enforcement::Kill),
        spec(
            "big",
            "head -c 3145728 /dev/zero > blob; sync; sleep 60",
            "cpus:0.1;disk:1",
        ),
    )
    .await;
    let t = ended_within(&c, 10)
        .await
        .unwrap_or_else(|| panic!("a task over its disk was not killed"));
    let Termination::DiskLimit(message) = &t else {
        panic!("{t:?}");
    };
    // The check may catch the file half written: any use over 1 MB, and the excess right.
    let numbers: Vec<f64> = message
        .split_whitespace()
        .filter_map(|w| w.trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        message.starts_with("disk limit exceeded: the sandbox uses ")
            && message.ends_with(" over its limit of 1.0 MB"),
        "{message}"
    );
    let [used, over, limit] = numbers[..] else {
        panic!("{message}");
    };
    assert!(used > 1.0 && limit == 1.0, "{message}");
    assert!((used - limit - over).abs() < 0.11, "{message}");
    // Within its disk, a task runs on.
    let small = launch(
        process(&dir),
        &dir,
        policy(Enforcement::Off, Enforcement::Kill),
        spec(
            "small",
            "head -c 100000 /dev/zero > blob; sleep 60",
            "disk:1",
        ),
    )
    .await;
    assert_eq!(ended_within(&small, 1).await, None);
    small.kill(Duration::ZERO).await;
}

#[tokio::test]
async fn a_reattached_container_is_watched_again() {
    let dir = TempDir::new("recover");
    // The first agent run only reports (it still checkpoints what the container may use).
    let first_run = LimitingContainerizer::new(
        process(&dir),
        &dir.0,
        policy(Enforcement::Off, Enforcement::Report),
    );
    let c = first_run
        .launch(spec(
            "t",
            "sleep 1; head -c 3145728 /dev/zero > blob; sleep 60",
            "disk:1",
        ))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let Some(reference) = c.reference() else {
        panic!("process containers have references");
    };
    assert!(dir.0.join("limits").join(&reference.container_id).exists());
    // A restarted agent that kills re-attaches from the checkpoint and watches again.
    let second_run = LimitingContainerizer::new(
        process(&dir),
        &dir.0,
        policy(Enforcement::Off, Enforcement::Kill),
    );
    let Some(again) = second_run.recover(reference).await else {
        panic!("not re-attached");
    };
    let t = ended_within(&again, 10)
        .await
        .unwrap_or_else(|| panic!("the re-attached container was not watched"));
    assert!(matches!(t, Termination::DiskLimit(_)), "{t:?}");
    assert!(ended_within(&c, 5).await.is_some());
}

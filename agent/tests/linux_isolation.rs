//! The Linux containerizer against the real kernel (cgroups + namespaces), as root.
//!
//! Every test runs with its own agent cgroup root (`<hierarchy>/agora/test-<pid>-<n>`),
//! purged by a drop guard even when the test fails. Every test is named `needs_root`:
//! scripts/test.sh filters them out (nextest shows them as skipped) where the host has no
//! cgroups or the tests do not run as root; run anyway, they fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use agora_agent::containerizer::Program;
use agora_agent::containerizer::cgroups::Cgroups;
use agora_agent::{
    Container, Containerizer, LaunchSpec, LinuxConfig, LinuxContainerizer, Termination,
};
use agora_resources::Resources;

/// A work directory and an agent cgroup root, both removed on drop.
struct Fixture {
    dir: PathBuf,
    name: String,
    cgroups: Cgroups,
    containerizer: LinuxContainerizer,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = self.cgroups.purge_agent(&self.name) {
            eprintln!("cleanup of test cgroups {} failed: {e}", self.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(test: &str, config: LinuxConfig) -> Fixture {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "{test}: the Linux containerizer needs root"
    );
    let cgroups = Cgroups::detect().unwrap_or_else(|e| panic!("{test}: {e}"));
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("test-{}-{n}", std::process::id());
    let dir = std::env::temp_dir().join(format!("agora-linux-it-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    let config = LinuxConfig {
        agent_name: Some(name.clone()),
        ..config
    };
    // The guard exists before anything is created, so a failing `new` is cleaned too.
    let containerizer = match LinuxContainerizer::new(&dir, config) {
        Ok(c) => c,
        Err(e) => {
            let _ = cgroups.purge_agent(&name);
            panic!("linux containerizer: {e}");
        }
    };
    Fixture {
        dir,
        name,
        cgroups,
        containerizer,
    }
}

fn spec(task_id: &str, script: &str, resources: &str) -> LaunchSpec {
    LaunchSpec {
        framework_id: "fw-1".into(),
        task_id: task_id.into(),
        agent_id: "agent-1".into(),
        program: Program::Shell(script.into()),
        environment: vec![],
        ports: vec![],
        user: None,
        resources: Resources::parse(resources)
            .unwrap_or_else(|e| panic!("resources {resources}: {e}")),
        uris: vec![],
        image: None,
        volumes: Vec::new(),
    }
}

async fn start(f: &Fixture, spec: LaunchSpec) -> Arc<dyn Container> {
    match f.containerizer.launch(spec).await {
        Ok(c) => c,
        Err(e) => panic!("launch failed: {e}"),
    }
}

async fn wait(container: &Arc<dyn Container>, secs: u64) -> Termination {
    match tokio::time::timeout(Duration::from_secs(secs), container.wait()).await {
        Ok(t) => t,
        Err(_) => panic!("container did not end within {secs} s"),
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn is_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

async fn wait_for_file(path: &Path) -> String {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text.trim().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{} never appeared", path.display());
}

fn mount_count() -> usize {
    read(Path::new("/proc/self/mountinfo")).lines().count()
}

/// Nothing of the agent's containers is left: no cgroup, no run directory.
fn assert_clean(f: &Fixture) {
    let left = f
        .containerizer
        .existing_containers()
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
    let runs: Vec<_> = std::fs::read_dir(f.dir.join("containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(runs.is_empty(), "run directories left behind: {runs:?}");
}

#[tokio::test]
async fn needs_root_exit_status_output_and_cleanup() {
    let f = fixture("exit_status_output_and_cleanup", LinuxConfig::default());
    let c = start(
        &f,
        spec("t1", "echo out; echo err >&2; exit 3", "cpus:0.1;mem:32"),
    )
    .await;
    assert_eq!(wait(&c, 10).await, Termination::Exited(3));
    assert_eq!(read(&c.sandbox().join("stdout")), "out\n");
    assert_eq!(read(&c.sandbox().join("stderr")), "err\n");
    assert!(is_gone(c.pid()));
    assert_clean(&f);

    let c = start(&f, spec("t2", "kill -SEGV $$", "cpus:0.1")).await;
    assert_eq!(wait(&c, 10).await, Termination::Signaled(11));

    let mut bad = spec("t3", "", "cpus:0.1");
    bad.program = Program::Argv(vec!["no-such-program-xyz".into()]);
    let err = f
        .containerizer
        .launch(bad)
        .await
        .err()
        .unwrap_or_else(|| panic!("a missing program must not launch"));
    assert!(err.to_string().contains("no-such-program-xyz"), "{err}");
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_own_pid_namespace_proc_hostname_and_environment() {
    let f = fixture("own_pid_namespace", LinuxConfig::default());
    let host_name = read(Path::new("/proc/sys/kernel/hostname"));
    let script = "echo $$; for p in /proc/[0-9]*; do echo $p; done; \
                  echo changed > /proc/sys/kernel/hostname; cat /proc/sys/kernel/hostname; \
                  echo $AGORA_TASK_ID; pwd";
    let c = start(&f, spec("ns", script, "cpus:0.1")).await;
    assert_eq!(wait(&c, 10).await, Termination::Exited(0));
    let out = read(&c.sandbox().join("stdout"));
    let lines: Vec<&str> = out.lines().collect();
    // The shell is pid 2 (its init is 1) and sees only the container's processes.
    assert_eq!(lines[0], "2", "{out}");
    assert_eq!(lines[1..3], ["/proc/1", "/proc/2"], "{out}");
    assert_eq!(lines[3], "changed", "{out}");
    assert_eq!(lines[4], "ns");
    assert_eq!(Path::new(lines[5]), c.sandbox());
    // The host's hostname did not change.
    assert_eq!(read(Path::new("/proc/sys/kernel/hostname")), host_name);
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_a_task_cannot_see_or_signal_other_tasks_or_the_agent() {
    let f = fixture("cannot_signal", LinuxConfig::default());
    let victim = start(&f, spec("victim", "sleep 30", "cpus:0.1")).await;
    let agent = std::process::id();
    let script = format!(
        "kill -0 {} 2>/dev/null && echo saw-victim; kill -0 {agent} 2>/dev/null && echo saw-agent; \
         kill -9 {} 2>/dev/null && echo killed-victim; echo done",
        victim.pid(),
        victim.pid()
    );
    let attacker = start(&f, spec("attacker", &script, "cpus:0.1")).await;
    assert_eq!(wait(&attacker, 10).await, Termination::Exited(0));
    let out = read(&attacker.sandbox().join("stdout"));
    assert_eq!(out, "done\n", "the attacker reached another pid: {out}");
    assert!(!is_gone(victim.pid()), "victim died");
    let t = victim.kill(Duration::from_secs(2)).await;
    assert_eq!(t, Termination::Signaled(15));
    assert!(is_gone(victim.pid()));
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_memory_hog_is_oom_killed_in_its_own_cgroup() {
    let f = fixture("memory_hog", LinuxConfig::default());
    let neighbour = start(&f, spec("neighbour", "sleep 30", "cpus:0.1;mem:32")).await;
    // `tail` buffers /dev/zero looking for a newline: it grows until the limit.
    let hog = start(&f, spec("hog", "tail /dev/zero", "cpus:0.1;mem:32")).await;
    let t = wait(&hog, 30).await;
    let Termination::MemoryLimit(message) = &t else {
        panic!("expected an OOM kill, got {t:?}");
    };
    assert!(message.contains("32 MB"), "{message}");
    assert!(message.contains("OOM-killed"), "{message}");
    // The neighbour, in its own cgroup, is untouched.
    assert!(!is_gone(neighbour.pid()));
    assert!(neighbour.usage().is_some_and(|u| u.oom_kills == 0));
    neighbour.kill(Duration::from_secs(1)).await;
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_fork_bomb_stops_at_the_pids_limit() {
    let config = LinuxConfig {
        pids_max: 32,
        ..LinuxConfig::default()
    };
    let f = fixture("fork_bomb", config);
    let bomb = start(
        &f,
        spec("bomb", "b() { b | b & }; b; sleep 30", "cpus:0.2;mem:64"),
    )
    .await;
    let mut peak = 0;
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(u) = bomb.usage() {
            peak = peak.max(u.pids_current);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(peak > 1, "the bomb never forked");
    assert!(peak <= 32, "pids exceeded the limit: {peak}");
    let init = bomb.pid();
    bomb.kill(Duration::from_millis(200)).await;
    assert!(is_gone(init));
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_cpu_hog_with_half_a_cpu_is_held_to_half_a_core() {
    let config = LinuxConfig {
        cpu_hard_limit: true,
        ..LinuxConfig::default()
    };
    let f = fixture("cpu_hog", config);
    let hog = start(&f, spec("hog", "while :; do :; done", "cpus:0.5;mem:32")).await;
    // The limit as the kernel holds it: half of each CFS period (v1 cfs_quota_us /
    // cfs_period_us, v2 "quota period" in cpu.max).
    let Some(reference) = hog.reference() else {
        panic!("a Linux container has a reference");
    };
    let cgroup = f
        .containerizer
        .container_cgroup(&reference.container_id)
        .unwrap_or_else(|e| panic!("cgroup: {e}"));
    let (quota, period) = cgroup
        .dirs()
        .into_iter()
        .find_map(|d| {
            if d.join("cpu.max").exists() {
                let text = read(&d.join("cpu.max"));
                let mut it = text.split_whitespace();
                Some((
                    it.next()?.parse::<u64>().ok()?,
                    it.next()?.parse::<u64>().ok()?,
                ))
            } else if d.join("cpu.cfs_quota_us").exists() {
                Some((
                    read(&d.join("cpu.cfs_quota_us")).trim().parse().ok()?,
                    read(&d.join("cpu.cfs_period_us")).trim().parse().ok()?,
                ))
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("no cpu quota in {:?}", cgroup.dirs()));
    assert_eq!(quota * 2, period, "quota {quota} of period {period}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = hog.usage().unwrap_or_else(|| panic!("no usage"));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = hog.usage().unwrap_or_else(|| panic!("no usage"));
    let wall = t0.elapsed().as_secs_f64();
    let cpu = (after.cpu_time_ns - before.cpu_time_ns) as f64 / 1e9;
    let share = cpu / wall;
    eprintln!(
        "cpu hog: {share:.3} cores over {wall:.2} s; throttled {} of {} periods",
        after.cpu_throttled_periods, after.cpu_periods
    );
    // Never more than the quota (with a margin for accounting at period edges). The share
    // it gets below that depends on how busy the machine is, so it is not asserted; a hog
    // that got near its quota was throttled to stay there.
    assert!(share <= 0.65, "got {share:.3} cores");
    if share >= 0.4 {
        assert!(after.cpu_throttled_periods > 0, "{after:?}");
        assert!(after.cpu_throttled_ns > before.cpu_throttled_ns);
    }
    hog.kill(Duration::from_millis(200)).await;
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_kill_leaves_no_process_and_sigkills_after_grace() {
    let f = fixture("kill", LinuxConfig::default());
    // Children in the background, one that ignores SIGTERM and one in a new session.
    let script = "trap '' TERM; sleep 60 & setsid sleep 60 & echo $! > pids; sleep 60";
    let c = start(&f, spec("stubborn", script, "cpus:0.1")).await;
    wait_for_file(&c.sandbox().join("pids")).await;
    let cgroup = f
        .containerizer
        .existing_containers()
        .unwrap_or_else(|e| panic!("list: {e}"));
    assert_eq!(cgroup.len(), 1);
    let t0 = Instant::now();
    let t = c.kill(Duration::from_millis(300)).await;
    assert!(t0.elapsed() >= Duration::from_millis(300));
    assert!(matches!(t, Termination::Signaled(9)), "{t:?}");
    assert!(is_gone(c.pid()));
    assert_clean(&f);
}

#[tokio::test]
async fn needs_root_many_launches_leave_nothing_behind() {
    let f = fixture("many", LinuxConfig::default());
    let mounts = mount_count();
    let t0 = Instant::now();
    for i in 0..100 {
        let c = start(
            &f,
            spec(&format!("t{i}"), "exec /bin/true", "cpus:0.01;mem:32"),
        )
        .await;
        assert_eq!(wait(&c, 10).await, Termination::Exited(0));
    }
    eprintln!("100 sequential launches: {:?}", t0.elapsed());
    assert_clean(&f);
    assert_eq!(
        mount_count(),
        mounts,
        "mounts leaked into the agent's namespace"
    );
}

#[tokio::test]
async fn needs_root_executor_container_limits_follow_its_tasks() {
    let f = fixture("resize", LinuxConfig::default());
    let c = start(&f, spec("executor.e1", "sleep 30", "cpus:0.5;mem:64")).await;
    let Some(reference) = c.reference() else {
        panic!("a Linux container has a reference");
    };
    let cgroup = f
        .containerizer
        .container_cgroup(&reference.container_id)
        .unwrap_or_else(|e| panic!("cgroup: {e}"));
    let Some(mem_file) = cgroup
        .dirs()
        .into_iter()
        .flat_map(|d| [d.join("memory.limit_in_bytes"), d.join("memory.max")])
        .find(|p| p.exists())
    else {
        panic!("no memory limit file in {:?}", cgroup.dirs());
    };
    assert_eq!(read(&mem_file).trim(), (64u64 << 20).to_string());
    let grown = Resources::parse("cpus:1;mem:128").unwrap_or_default();
    c.update_resources(&grown)
        .unwrap_or_else(|e| panic!("grow: {e}"));
    assert_eq!(read(&mem_file).trim(), (128u64 << 20).to_string());
    let shrunk = Resources::parse("cpus:0.5;mem:96").unwrap_or_default();
    c.update_resources(&shrunk)
        .unwrap_or_else(|e| panic!("shrink: {e}"));
    assert_eq!(read(&mem_file).trim(), (96u64 << 20).to_string());
    c.kill(Duration::ZERO).await;
    wait(&c, 10).await;
    assert_clean(&f);
}

/// A command health check runs inside the task's container (its pid and mount namespaces,
/// its cgroup) as the task's user, not on the host as the agent (root): what root could do
/// there, the check cannot.
#[tokio::test]
async fn needs_root_command_checks_run_in_the_container_as_the_task_user() {
    use agora_agent::fetcher::FetchConfig;
    use agora_agent::prepare::{PreparingContainerizer, UserPolicy};
    let f = fixture("command_checks", LinuxConfig::default());
    let prepared = PreparingContainerizer::new(
        Arc::new(f.containerizer.clone()),
        &f.dir,
        UserPolicy::default(),
        FetchConfig::new(&f.dir),
    );
    let script = "readlink /proc/self/ns/pid > pidns.tmp && mv pidns.tmp pidns; exec sleep 60";
    let c = prepared
        .launch(spec("checked", script, "cpus:0.1;mem:32"))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    let task_ns = wait_for_file(&c.sandbox().join("pidns")).await;
    let host_ns = std::fs::read_link("/proc/self/ns/pid")
        .unwrap_or_else(|e| panic!("{e}"))
        .display()
        .to_string();
    assert_ne!(task_ns, host_ns);
    let container_id = c
        .reference()
        .unwrap_or_else(|| panic!("a linux container has a reference"))
        .container_id;
    let check = |script: String| {
        c.run_check(
            vec!["/bin/sh".into(), "-c".into(), script],
            Duration::from_secs(10),
        )
    };
    // In the task's pid namespace (it sees the task's init as pid 1), cgroup and sandbox,
    // as the default user.
    let inside = format!(
        "test \"$(readlink /proc/self/ns/pid)\" = \"$(cat pidns)\" && test -d /proc/1 && \
         grep -q {container_id} /proc/self/cgroup && test \"$(id -u)\" = 65534 && \
         test \"$PWD\" = \"$AGORA_SANDBOX\" && test \"$USER\" = nobody"
    );
    check(inside).await.unwrap_or_else(|e| panic!("check: {e}"));
    // The former leak: the check ran as the agent's root on the host. Now root's powers
    // are gone: no write to /etc, no read of /etc/shadow, no view of the agent's processes.
    let leak = f.dir.join("leak");
    let err = check(format!("touch {}", leak.display()))
        .await
        .expect_err("the check must not write as root");
    assert!(err.contains("exited with status 1"), "{err}");
    assert!(!leak.exists());
    assert!(check("cat /etc/shadow".into()).await.is_err());
    let agent_pid = std::process::id();
    assert!(
        check(format!(
            "test -e /proc/{agent_pid}/status && test {agent_pid} -gt 2"
        ))
        .await
        .is_err(),
        "the agent's pid {agent_pid} is visible in the check's pid namespace"
    );
    // A check outliving its timeout is killed, with its processes.
    let slow = c
        .run_check(
            vec!["/bin/sh".into(), "-c".into(), "sleep 30 & sleep 30".into()],
            Duration::from_millis(200),
        )
        .await
        .expect_err("timeout");
    assert!(slow.contains("timed out"), "{slow}");
    c.kill(Duration::ZERO).await;
    wait(&c, 10).await;
    assert_clean(&f);
}

/// A listener that is not the container's main process (a child of its shell) on a port
/// outside the allocation: found through the container's cgroup and killed, with the
/// whole container.
#[tokio::test]
async fn needs_root_child_listening_on_an_unallocated_port_kills_the_container() {
    use agora_agent::containerizer::limits::{Enforcement, LimitPolicy, LimitingContainerizer};
    let f = fixture("ports", LinuxConfig::default());
    let limited = LimitingContainerizer::new(
        Arc::new(f.containerizer.clone()),
        &f.dir,
        LimitPolicy {
            ports: Enforcement::Kill,
            disk: Enforcement::Off,
            ports_interval: Duration::from_millis(100),
            disk_interval: Duration::from_secs(60),
        },
    );
    let script = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \
                  \"127.0.0.1\", LocalPort => 0, Listen => 5) or die; open(my $f, \">\", \
                  \"port.tmp\") or die; print $f $s->sockport, \"\\n\"; close $f; \
                  rename(\"port.tmp\", \"port\"); sleep 60' & wait";
    let c = limited
        .launch(spec("l", script, "cpus:0.1;mem:64;ports:[1-1]"))
        .await
        .unwrap_or_else(|e| panic!("launch: {e}"));
    let port = wait_for_file(&c.sandbox().join("port")).await;
    let t = wait(&c, 10).await;
    assert_eq!(
        t,
        Termination::PortLimit(format!(
            "listening on unallocated port {port} (allocated: 1)"
        ))
    );
    assert!(is_gone(c.pid()));
    assert_clean(&f);
}

/// A port nothing listens on right now on the host's loopback (bound and released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A task serving `name` on each of `ports` on its 127.0.0.1 (a file `ready-<port>` once
/// listening), after probing whether it can reach 127.0.0.1:`probe` (the host's listener
/// when it shares the host's network) into the file `probe`.
fn banner_task(name: &str, ports: &[u16], probe: u16) -> String {
    let serve = "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(LocalAddr => \
                 \"127.0.0.1\", LocalPort => $ARGV[0], Listen => 5, ReuseAddr => 1) or die \
                 \"listen $ARGV[0]: $!\"; open(F, \">\", \"ready-$ARGV[0]\"); close F; \
                 while ($c = $s->accept) { print $c \"$ARGV[1]\\n\"; close $c }'";
    let mut script = format!(
        "perl -MIO::Socket::INET -e '$c = IO::Socket::INET->new(PeerAddr => \"127.0.0.1\", \
         PeerPort => $ARGV[0], Timeout => 2); print(($c ? \"reached\" : \"unreachable\"), \
         \"\\n\")' {probe} > probe.tmp; mv probe.tmp probe; "
    );
    for p in ports {
        script.push_str(&format!("{serve} {p} {name} & "));
    }
    script.push_str("wait");
    script
}

fn read_banner(port: u16) -> std::io::Result<String> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out.trim().to_string())
}

/// `--network isolated`: each container has its own network namespace. Both tasks listen
/// on the same inner port (possible only apart); each one's allocated port is published
/// on the host and reaches that task; the shared inner port, not allocated, is reachable
/// from nowhere; neither task reaches the host's loopback listener nor the other task.
#[tokio::test]
async fn needs_root_isolated_network_publishes_only_allocated_ports() {
    use agora_agent::containerizer::linux::NetworkMode;
    let f = fixture(
        "netns",
        LinuxConfig {
            network: NetworkMode::Isolated,
            publish_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ..LinuxConfig::default()
        },
    );
    let host = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let host_port = host.local_addr().map(|a| a.port()).unwrap_or(0);
    let (pa, pb, shared) = (free_port(), free_port(), free_port());
    assert!(
        pa != pb && pa != shared && pb != shared,
        "port collision; rerun"
    );
    let spec_of = |id: &str, port: u16, probe: u16| {
        let mut s = spec(
            id,
            &banner_task(id, &[port, shared], probe),
            &format!("cpus:0.1;mem:64;ports:[{port}-{port}]"),
        );
        s.ports = vec![u64::from(port)];
        s
    };
    let a = start(&f, spec_of("a", pa, host_port)).await;
    let b = start(&f, spec_of("b", pb, pa)).await;
    for (c, p) in [(&a, pa), (&a, shared), (&b, pb), (&b, shared)] {
        let ready = c.sandbox().join(format!("ready-{p}"));
        for _ in 0..500 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(
            ready.exists(),
            "{} never listened on {p}: {}",
            c.sandbox().display(),
            std::fs::read_to_string(c.sandbox().join("stderr")).unwrap_or_default()
        );
    }
    let banner = |p| tokio::task::spawn_blocking(move || read_banner(p));
    assert_eq!(
        banner(pa).await.ok().and_then(Result::ok).as_deref(),
        Some("a")
    );
    assert_eq!(
        banner(pb).await.ok().and_then(Result::ok).as_deref(),
        Some("b")
    );
    assert!(
        banner(shared).await.ok().is_some_and(|r| r.is_err()),
        "an unallocated port was reachable from the host"
    );
    assert_eq!(
        wait_for_file(&a.sandbox().join("probe")).await,
        "unreachable"
    );
    assert_eq!(
        wait_for_file(&b.sandbox().join("probe")).await,
        "unreachable"
    );
    drop(host);
    a.kill(Duration::ZERO).await;
    b.kill(Duration::ZERO).await;
    // Its forwarding ends with the container.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", pa)).is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", pa)).is_err());
    assert_clean(&f);
}

/// A restarted agent re-attaching to a container of `--network isolated` publishes its
/// port again (the first agent's forwarding went with it).
#[test]
fn needs_root_reattached_isolated_container_is_published_again() {
    use agora_agent::containerizer::linux::NetworkMode;
    let config = LinuxConfig {
        network: NetworkMode::Isolated,
        publish_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        ..LinuxConfig::default()
    };
    let f = fixture("netns_recover", config.clone());
    let port = free_port();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // The first agent run: launch, check the port, then the whole runtime goes (as the
    // agent's process would), the container stays.
    let first = runtime();
    let (reference, sandbox) = first.block_on(async {
        let mut s = spec("r", &banner_task("r", &[port], 1), "cpus:0.1;mem:64");
        s.ports = vec![u64::from(port)];
        let c = start(&f, s).await;
        wait_for_file(&c.sandbox().join("probe")).await;
        let ready = c.sandbox().join(format!("ready-{port}"));
        for _ in 0..500 {
            if ready.exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let got = tokio::task::spawn_blocking(move || read_banner(port)).await;
        assert_eq!(got.ok().and_then(Result::ok).as_deref(), Some("r"));
        let Some(reference) = c.reference() else {
            panic!("a Linux container has a reference");
        };
        (reference, c.sandbox().to_path_buf())
    });
    drop(first);
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the first run's forwarding outlived it"
    );
    let second = runtime();
    second.block_on(async {
        let again = LinuxContainerizer::new(
            &f.dir,
            LinuxConfig {
                agent_name: Some(f.name.clone()),
                ..config
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let Some(c) = again.recover(reference).await else {
            panic!("not re-attached");
        };
        assert_eq!(c.sandbox(), sandbox.as_path());
        let got = tokio::task::spawn_blocking(move || read_banner(port)).await;
        assert_eq!(got.ok().and_then(Result::ok).as_deref(), Some("r"));
        c.kill(Duration::ZERO).await;
    });
    assert_clean(&f);
}

/// Short tasks of `--network isolated` with a port: one that ends before its port could be
/// published still launches and reports its own exit (the publisher finds it ended).
#[tokio::test]
async fn needs_root_short_isolated_tasks_with_ports_launch_and_exit() {
    use agora_agent::containerizer::linux::NetworkMode;
    let f = fixture(
        "netns_short",
        LinuxConfig {
            network: NetworkMode::Isolated,
            publish_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            ..LinuxConfig::default()
        },
    );
    let port = free_port();
    for i in 0..50 {
        let mut s = spec(&format!("s{i}"), "exec /bin/true", "cpus:0.01;mem:32");
        s.program = Program::Argv(vec!["/bin/true".into()]);
        s.ports = vec![u64::from(port)];
        let c = start(&f, s).await;
        assert_eq!(wait(&c, 10).await, Termination::Exited(0));
    }
    assert_clean(&f);
}

#[path = "support/oci.rs"]
mod oci;

/// A directory of test images, removed on drop.
struct Images(PathBuf);

impl Drop for Images {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fixture whose agent runs images from a directory holding the busybox image (see
/// `support/oci.rs`) at `busybox`.
fn image_fixture(test: &str) -> (Fixture, Images) {
    let dir = std::env::temp_dir().join(format!(
        "agora-linux-it-images-{test}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    oci::busybox_image(&dir.join("busybox"));
    let images = Images(std::fs::canonicalize(&dir).unwrap_or_else(|e| panic!("{e}")));
    let f = fixture(
        test,
        LinuxConfig {
            image_dirs: vec![images.0.clone()],
            ..LinuxConfig::default()
        },
    );
    (f, images)
}

fn image_spec(task_id: &str, script: &str, image: &Path) -> LaunchSpec {
    LaunchSpec {
        image: Some(image.to_path_buf()),
        ..spec(task_id, script, "cpus:0.1;mem:64")
    }
}

/// The task's root is the image's (host files unseen; the upper layer's whiteout hides a
/// lower file), with its own /proc, a minimal /dev, a tmpfs /tmp and the sandbox at
/// /mnt/mesos/sandbox; what it writes to its root is gone with the container.
#[tokio::test]
async fn needs_root_image_task_runs_in_its_image_root() {
    let (f2, images) = image_fixture("image_root");
    let image = images.0.join("busybox");
    let script = "set -e; \
        test ! -e /usr/bin/env; test ! -e /etc/passwd; \
        cat /etc/motd; \
        test ! -e /etc/removed && echo whiteout-hides; \
        echo \"var=$IMAGE_VAR sandbox=$MESOS_SANDBOX pwd=$PWD\"; \
        test -e /proc/1/status && test ! -e /proc/$AGENT_PID && echo own-proc; \
        echo discard > /dev/null; echo \"zero=$(head -c 3 /dev/zero | wc -c)\"; \
        echo \"devs=$(ls /dev | wc -l)\"; \
        touch /tmp/t /written-in-root; \
        grep -q ' /tmp tmpfs ' /proc/mounts && echo tmp-tmpfs; \
        echo out > /mnt/mesos/sandbox/from-container";
    let mut s = image_spec("img", script, &image);
    s.environment = vec![("AGENT_PID".into(), std::process::id().to_string())];
    let c = start(&f2, s).await;
    let t = wait(&c, 20).await;
    let stdout = std::fs::read_to_string(c.sandbox().join("stdout")).unwrap_or_default();
    let stderr = std::fs::read_to_string(c.sandbox().join("stderr")).unwrap_or_default();
    assert_eq!(
        t,
        Termination::Exited(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let expected = "from the image\nwhiteout-hides\n\
        var=from-config sandbox=/mnt/mesos/sandbox pwd=/mnt/mesos/sandbox\n\
        own-proc\nzero=3\ndevs=10\ntmp-tmpfs\n";
    assert_eq!(stdout, expected, "stderr: {stderr}");
    assert_eq!(read(&c.sandbox().join("from-container")), "out\n");
    // What the task wrote to its root stayed in its upper layer, gone with it.
    let layers = f2.dir.join("images/layers/sha256");
    for layer in std::fs::read_dir(&layers)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        assert!(!layer.path().join("written-in-root").exists());
    }
    assert_clean(&f2);
    // The next task starts from the image again.
    let c = start(
        &f2,
        image_spec("img2", "test ! -e /written-in-root", &image),
    )
    .await;
    assert_eq!(wait(&c, 20).await, Termination::Exited(0));
    assert_clean(&f2);
}

/// As the task's user, a command check in the image's root, volumes bind-mounted; an
/// image whose mount point is a symlink is refused before anything runs.
#[tokio::test]
async fn needs_root_image_task_user_checks_volumes_and_symlinked_mount_points() {
    let (f2, images) = image_fixture("image_user");
    let images = images.0.clone();
    let volume = f2.dir.join("volume");
    std::fs::create_dir_all(&volume).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(volume.join("hello"), "kept\n").unwrap_or_else(|e| panic!("{e}"));
    let nobody = nix::unistd::User::from_name("nobody")
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("user nobody"));
    nix::unistd::chown(&volume, Some(nobody.uid), Some(nobody.gid))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut s = image_spec(
        "img-user",
        "cat data/hello; echo new > data/new; echo \"uid=$(id -u)\"; exec sleep 60",
        &images.join("busybox"),
    );
    s.user = Some("nobody".into());
    s.volumes = vec![agora_agent::containerizer::VolumeMount {
        host_path: volume.clone(),
        container_path: "data".into(),
    }];
    let c = start(&f2, s).await;
    let out = wait_for_file(&c.sandbox().join("stdout")).await;
    assert!(out.starts_with("kept"), "{out}");
    for _ in 0..500 {
        if read(&c.sandbox().join("stdout")).contains("uid=") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(read(&c.sandbox().join("stdout")), "kept\nuid=65534\n");
    assert_eq!(read(&volume.join("new")), "new\n");
    let check = |script: &str| {
        c.run_check(
            vec!["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(10),
        )
    };
    check("test -f /etc/motd && test ! -e /etc/passwd && test \"$(id -u)\" = 65534 && test \"$PWD\" = /mnt/mesos/sandbox")
        .await
        .unwrap_or_else(|e| panic!("check in the image: {e}"));
    assert!(check("test -e /usr/bin/env").await.is_err());
    c.kill(Duration::ZERO).await;
    wait(&c, 10).await;
    assert_clean(&f2);

    // An image with /tmp a symlink to the host's /etc.
    let evil = images.join("evil");
    let mut entries = oci::busybox_entries();
    entries.push(oci::Entry::Symlink("tmp", "/etc"));
    oci::oci_layout(&evil, &[oci::layer(&entries)], false, &[]);
    let err = f2
        .containerizer
        .launch(image_spec("evil", "true", &evil))
        .await
        .err()
        .unwrap_or_else(|| panic!("a symlinked mount point must be refused"));
    assert!(
        err.to_string().contains("/tmp is a symlink in the image"),
        "{err}"
    );
    assert_clean(&f2);
    // An image outside the agent's image directories.
    let err = f2
        .containerizer
        .launch(image_spec("outside", "true", Path::new("/etc")))
        .await
        .err()
        .unwrap_or_else(|| panic!("an image outside --image-dir must be refused"));
    assert!(
        err.to_string().contains("not below an --image-dir"),
        "{err}"
    );
}

/// GPUs without a GPU: two ordinary character devices (the majors and minors of
/// /dev/full and /dev/random) stand for them. A task given one opens it and not the
/// other; a task given none opens neither; a busy pool refuses; an image task finds only its own device in its /dev.
#[tokio::test]
async fn needs_root_gpus_are_whole_devices_only_their_holder_opens() {
    use agora_agent::containerizer::gpus;
    let (base, images) = image_fixture("gpus_images");
    drop(base);
    let dev_dir = std::env::temp_dir().join(format!("agora-linux-it-gpus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dev_dir);
    std::fs::create_dir_all(&dev_dir).unwrap_or_else(|e| panic!("{e}"));
    let _cleanup = Images(dev_dir.clone());
    let mut paths = Vec::new();
    for (name, minor) in [("gpu0", 7), ("gpu1", 8)] {
        let path = dev_dir.join(name);
        nix::sys::stat::mknod(
            &path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::makedev(1, minor),
        )
        .unwrap_or_else(|e| panic!("mknod {}: {e}", path.display()));
        paths.push(path);
    }
    let pool = gpus::discover(&paths, false).unwrap_or_else(|e| panic!("{e}"));
    let f = fixture(
        "gpus",
        LinuxConfig {
            gpus: pool,
            image_dirs: vec![images.0.clone()],
            ..LinuxConfig::default()
        },
    );
    let g0 = paths[0].display().to_string();
    let g1 = paths[1].display().to_string();
    let opens = |path: &str| {
        format!("if head -c 1 {path} > /dev/null 2>&1; then echo open; else echo denied; fi")
    };
    let script = format!(
        "echo \"$AGORA_GPUS $NVIDIA_VISIBLE_DEVICES\"; {}; {}; exec sleep 60",
        opens(&g0),
        opens(&g1)
    );
    let holder = start(&f, spec("holder", &script, "cpus:0.1;mem:32;gpus:1")).await;
    for _ in 0..500 {
        if read(&holder.sandbox().join("stdout")).lines().count() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        read(&holder.sandbox().join("stdout")),
        format!("{g0} 0\nopen\ndenied\n")
    );
    let script = format!("{}; {}", opens(&g0), opens(&g1));
    let none = start(&f, spec("none", &script, "cpus:0.1;mem:32")).await;
    assert_eq!(wait(&none, 10).await, Termination::Exited(0));
    assert_eq!(read(&none.sandbox().join("stdout")), "denied\ndenied\n");
    // The second device goes to the next task; then none is free.
    let second = start(&f, spec("second", &script, "cpus:0.1;mem:32;gpus:1")).await;
    assert_eq!(wait(&second, 10).await, Termination::Exited(0));
    assert_eq!(read(&second.sandbox().join("stdout")), "denied\nopen\n");
    let both = start(&f, spec("both", "sleep 60", "cpus:0.1;gpus:1")).await;
    let err = f
        .containerizer
        .launch(spec("third", "true", "cpus:0.1;gpus:1"))
        .await
        .err()
        .unwrap_or_else(|| panic!("no GPU is free"));
    assert_eq!(
        err.to_string(),
        "1 GPU(s) asked for, 0 free of 2 on this agent"
    );
    both.kill(Duration::ZERO).await;
    wait(&both, 10).await;
    // An image task: its /dev holds its device, not the other.
    let mut s = spec(
        "imaged",
        "ls /dev | grep gpu; head -c 1 /dev/gpu1 | wc -c",
        "cpus:0.1;mem:32;gpus:1",
    );
    s.image = Some(images.0.join("busybox"));
    let imaged = start(&f, s).await;
    assert_eq!(wait(&imaged, 10).await, Termination::Exited(0));
    assert_eq!(read(&imaged.sandbox().join("stdout")), "gpu1\n1\n");
    holder.kill(Duration::ZERO).await;
    wait(&holder, 10).await;
    assert_clean(&f);
}

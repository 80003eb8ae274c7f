//! Agent container launch: N sequential `/bin/true` containers through the agent's Linux
//! containerizer (cgroups + pid/mount/uts/ipc namespaces), then the same with a network
//! namespace of its own and one published port (`--network isolated`), then with an image
//! of its own (an OCI layout holding `/bin/true` and its libraries, built here: overlay
//! root, `/proc`, `/dev`, `/tmp`, the sandbox bind-mounted, `pivot_root`), side by side
//! with `runc run` of the same command in the same run.
//!
//! Run as root: `cargo bench -p agora-benches --bench container_launch` (env `LAUNCHES`,
//! default 1000; `RUNC_LAUNCHES`, default the same). Installs Debian's `runc` with apt-get
//! when it is missing. Prints total time, median launch (until the program executes) and
//! median full cycle (launch, exit, teardown of cgroup and run directory); checks that no
//! cgroup, process or mount is left behind. Every cgroup it creates is removed by a drop
//! guard, also on failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agora_agent::containerizer::Program;
use agora_agent::containerizer::cgroups::Cgroups;
use agora_agent::{Containerizer, LaunchSpec, LinuxConfig, LinuxContainerizer, Termination};
use agora_resources::Resources;

struct Guard {
    cgroups: Cgroups,
    name: String,
    dir: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(e) = self.cgroups.purge_agent(&self.name) {
            eprintln!("cleanup of {} failed: {e}", self.name);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn count_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mounts() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// Which containers the agora run launches.
#[derive(Clone, Debug)]
enum Mode {
    Plain,
    Isolated,
    /// With the OCI image layout at this path (below its parent, the image dir).
    Image(PathBuf),
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `/bin/true` and the libraries `ldd` names, as (path in the root, host path).
fn true_and_libraries() -> Result<Vec<(String, PathBuf)>, String> {
    let mut files = vec![("bin/true".to_string(), PathBuf::from("/bin/true"))];
    let ldd = Command::new("ldd")
        .arg("/bin/true")
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') {
            files.push((
                word.trim_start_matches('/').to_string(),
                PathBuf::from(word),
            ));
        }
    }
    Ok(files)
}

/// An OCI image layout at `dir` with one uncompressed layer: `/bin/true`, its libraries
/// and the container's mount points.
fn oci_image(dir: &Path) -> Result<(), String> {
    let mut b = tar::Builder::new(Vec::new());
    let mut dirs: Vec<String> = [
        "proc",
        "dev",
        "tmp",
        "mnt",
        "mnt/mesos",
        "mnt/mesos/sandbox",
    ]
    .iter()
    .map(|d| d.to_string())
    .collect();
    let files = true_and_libraries()?;
    for (inside, _) in &files {
        let mut p = Path::new(inside).parent();
        while let Some(parent) = p.filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(parent.to_string_lossy().into_owned());
            p = parent.parent();
        }
    }
    dirs.sort();
    dirs.dedup();
    for d in &dirs {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(0);
        b.append_data(&mut h, d, std::io::empty())
            .map_err(|e| format!("tar {d}: {e}"))?;
    }
    for (inside, host) in &files {
        let data = std::fs::read(host).map_err(|e| format!("{}: {e}", host.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, inside, data.as_slice())
            .map_err(|e| format!("tar {inside}: {e}"))?;
    }
    let layer = b.into_inner().map_err(|e| e.to_string())?;
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let put = |bytes: &[u8]| -> Result<String, String> {
        let hex = sha256_hex(bytes);
        std::fs::write(blobs.join(&hex), bytes).map_err(|e| e.to_string())?;
        Ok(format!("sha256:{hex}"))
    };
    let layer_digest = put(&layer)?;
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .map_err(|e| e.to_string())?;
    let config_digest = put(&config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    }))
    .map_err(|e| e.to_string())?;
    let manifest_digest = put(&manifest)?;
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json",
         "digest": manifest_digest, "size": manifest.len()}]});
    std::fs::write(dir.join("index.json"), index.to_string()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .map_err(|e| e.to_string())
}

async fn agora(n: usize, mode: Mode) -> Result<(Duration, Duration, Duration), String> {
    use agora_agent::containerizer::linux::NetworkMode;
    let isolated = matches!(mode, Mode::Isolated);
    let image = match &mode {
        Mode::Image(path) => Some(path.clone()),
        _ => None,
    };
    let cgroups = Cgroups::detect().map_err(|e| e.to_string())?;
    let name = format!("bench-{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("agora-bench-{name}"));
    let guard = Guard {
        cgroups,
        name: name.clone(),
        dir: dir.clone(),
    };
    let containerizer = LinuxContainerizer::new(
        &dir,
        LinuxConfig {
            agent_name: Some(name),
            network: if isolated {
                NetworkMode::Isolated
            } else {
                NetworkMode::Host
            },
            publish_address: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            image_dirs: image
                .iter()
                .filter_map(|p| p.parent().map(Path::to_path_buf))
                .collect(),
            ..LinuxConfig::default()
        },
    )
    .map_err(|e| e.to_string())?;
    // Isolated: one published port per container (bound on the host's loopback).
    let ports: Vec<u64> = if isolated {
        // Below the kernel's ephemeral range (32768-60999 by default), so that no
        // outgoing connection of another process takes it between two launches.
        let port = (20_000u16..32_000)
            .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
            .ok_or("no free port in 20000-31999")?;
        vec![u64::from(port)]
    } else {
        vec![]
    };
    let resources = Resources::parse("cpus:0.1;mem:32").map_err(|e| e.to_string())?;
    let mounts_before = mounts();
    let mut launch = Vec::with_capacity(n);
    let mut cycle = Vec::with_capacity(n);
    let total = Instant::now();
    for i in 0..n {
        let spec = LaunchSpec {
            framework_id: "bench".into(),
            task_id: format!("t{i}"),
            agent_id: "bench".into(),
            program: Program::Argv(vec!["/bin/true".into()]),
            environment: vec![],
            ports: ports.clone(),
            user: None,
            resources: resources.clone(),
            uris: vec![],
            image: image.clone(),
            volumes: Vec::new(),
        };
        let t0 = Instant::now();
        let c = containerizer
            .launch(spec)
            .await
            .map_err(|e| format!("launch {i}: {e}"))?;
        launch.push(t0.elapsed());
        let t = c.wait().await;
        cycle.push(t0.elapsed());
        if t != Termination::Exited(0) {
            return Err(format!("launch {i}: {t}"));
        }
    }
    let total = total.elapsed();
    let left = containerizer
        .existing_containers()
        .map_err(|e| e.to_string())?;
    if !left.is_empty() {
        return Err(format!("{} cgroups left behind", left.len()));
    }
    if mounts() != mounts_before {
        return Err("mounts leaked into the host namespace".into());
    }
    let runs = std::fs::read_dir(dir.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    if runs != 0 {
        return Err(format!("{runs} run directories left behind"));
    }
    drop(guard);
    Ok((total, median(&mut launch), median(&mut cycle)))
}

fn ensure_runc() -> Result<(), String> {
    if Command::new("runc").arg("--version").output().is_ok() {
        return Ok(());
    }
    eprintln!("runc missing: apt-get install -y runc");
    let ok = Command::new("apt-get")
        .args(["install", "-y", "-q", "runc"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get: {e}"))?
        .success();
    if ok {
        Ok(())
    } else {
        Err("apt-get install runc failed".into())
    }
}

/// A bundle whose rootfs holds /bin/true and the libraries it needs.
fn runc_bundle(dir: &Path) -> Result<(), String> {
    let rootfs = dir.join("rootfs");
    for d in ["bin", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(rootfs.join(d)).map_err(|e| e.to_string())?;
    }
    for (inside, host) in true_and_libraries()? {
        let dest = rootfs.join(inside);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        std::fs::copy(&host, &dest).map_err(|e| format!("{}: {e}", host.display()))?;
    }
    let spec = Command::new("runc")
        .args(["spec", "--bundle"])
        .arg(dir)
        .status()
        .map_err(|e| e.to_string())?;
    if !spec.success() {
        return Err("runc spec failed".into());
    }
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let mut config: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    config["process"]["terminal"] = serde_json::Value::Bool(false);
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())
}

fn runc(n: usize) -> Result<(Duration, Duration), String> {
    ensure_runc()?;
    let dir = std::env::temp_dir().join(format!("agora-bench-runc-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let result = (|| {
        runc_bundle(&dir)?;
        let mut each = Vec::with_capacity(n);
        let total = Instant::now();
        for i in 0..n {
            let id = format!("agora-bench-{}-{i}", std::process::id());
            let t0 = Instant::now();
            let out = Command::new("runc")
                .args(["run", "--bundle"])
                .arg(&dir)
                .arg(&id)
                .output()
                .map_err(|e| e.to_string())?;
            each.push(t0.elapsed());
            if !out.status.success() {
                return Err(format!(
                    "runc run failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        Ok((total.elapsed(), median(&mut each)))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("container_launch: bench");
        return;
    }
    if !nix_root() {
        eprintln!("SKIPPED container_launch: needs root");
        return;
    }
    let n = count_env("LAUNCHES", 1000);
    let runc_n = count_env("RUNC_LAUNCHES", n);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "== Agent container launch: {n} x /bin/true (cgroups + pid/mount/uts/ipc namespaces) =="
    );
    let image_dir = std::env::temp_dir().join(format!("agora-bench-image-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&image_dir);
    let image = match oci_image(&image_dir.join("true"))
        .and_then(|()| std::fs::canonicalize(image_dir.join("true")).map_err(|e| e.to_string()))
    {
        Ok(path) => path,
        Err(e) => {
            eprintln!("cannot build the bench image: {e}");
            std::process::exit(1);
        }
    };
    let modes = [
        ("agora-agent ", Mode::Plain),
        ("+ netns/port", Mode::Isolated),
        ("+ image     ", Mode::Image(image)),
    ];
    for (label, mode) in modes {
        let result = rt.block_on(agora(n, mode));
        match result {
            Ok((total, launch, cycle)) => {
                println!(
                    "{label} total {:>10.3} s   median launch {}   median launch+exit+teardown {}",
                    total.as_secs_f64(),
                    ms(launch),
                    ms(cycle)
                );
            }
            Err(e) => {
                eprintln!("agora launch failed ({label}): {e}");
                let _ = std::fs::remove_dir_all(&image_dir);
                std::process::exit(1);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&image_dir);
    match runc(runc_n) {
        Ok((total, each)) => println!(
            "runc run     total {:>10.3} s   median run (create+start+exit+delete) {}   ({runc_n} runs)",
            total.as_secs_f64(),
            ms(each)
        ),
        Err(e) => println!("runc: not measured: {e}"),
    }
}

fn nix_root() -> bool {
    // The effective uid from /proc (keeps this file free of unsafe).
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

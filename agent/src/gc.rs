//! Sandbox garbage collection: the sandboxes of ended tasks and executors
//! (`<work-dir>/sandboxes/<framework>/<task or executor.ID>/`) are removed once they have
//! been left alone for `--gc-delay`, sooner when the work directory's disk is fuller than
//! `--gc-disk-watermark` (as Mesos's `--gc_delay` and its disk headroom do).
//!
//! - **Live sandboxes are never touched.** A sandbox is live while the checkpoint holds
//!   its task's or executor's record: the state actor writes it before the sandbox is
//!   created and removes it only when the task or executor has ended. Liveness is checked
//!   again right before each removal.
//! - **The delay counts from the last change.** A sandbox's age is the time since the
//!   newest modification of the directory or any entry directly in it (`stdout` and
//!   `stderr` are written until the end), so a framework can read what a task left for at
//!   least the delay after it ended (less only under disk pressure).
//! - **Restarts lose nothing.** The schedule is the file system itself (records and
//!   modification times), rescanned every pass, so a restarted agent collects exactly
//!   what it would have.
//!
//! [`allowed_age`] and [`due`] are pure; [`scan`] and [`collect`] do the I/O. Removal never
//! follows symlinks (a persistent volume linked into a sandbox survives). This module must
//! never remove anything outside `<work-dir>/sandboxes/`, and never decide liveness other
//! than from the checkpoint.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::checkpoint::Checkpoint;

/// Default `--gc-delay`: one week, as Mesos.
pub const DEFAULT_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default `--gc-disk-watermark`: sandboxes are kept the whole delay until the disk is
/// this full.
pub const DEFAULT_DISK_WATERMARK: f64 = 0.9;
/// Sandboxes removed per pass at most (the rest wait for the next pass).
pub const REMOVALS_PER_PASS_MAX: usize = 1000;
/// Bounds of the time between passes (a quarter of the delay, within these).
pub const PASS_INTERVAL_MIN: Duration = Duration::from_millis(250);
pub const PASS_INTERVAL_MAX: Duration = Duration::from_secs(60);
/// A framework directory emptied by collection is removed only when it has not changed
/// for this long (a launch may be creating a sandbox in it).
pub const EMPTY_FRAMEWORK_DIR_AGE: Duration = Duration::from_secs(60);
/// Prefix of executor sandbox names (`containerizer::executor_sandbox_name`).
const EXECUTOR_PREFIX: &str = "executor.";

/// The collector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GcConfig {
    /// How long an ended task's or executor's sandbox is kept after its last change.
    pub delay: Duration,
    /// Fraction of the work directory's disk (0 < w <= 1) above which sandboxes are kept
    /// for less than `delay`: linearly down to nothing at a full disk.
    pub disk_watermark: f64,
}

impl Default for GcConfig {
    fn default() -> Self {
        GcConfig {
            delay: DEFAULT_DELAY,
            disk_watermark: DEFAULT_DISK_WATERMARK,
        }
    }
}

impl GcConfig {
    /// Time between passes: a quarter of the delay, within the bounds.
    pub fn pass_interval(&self) -> Duration {
        (self.delay / 4).clamp(PASS_INTERVAL_MIN, PASS_INTERVAL_MAX)
    }
}

/// How old an ended sandbox may get when the disk is `usage` full (0..=1): the whole
/// `delay` up to the watermark, then linearly less, none at a full disk.
pub fn allowed_age(delay: Duration, watermark: f64, usage: f64) -> Duration {
    let usage = if usage.is_finite() {
        usage.clamp(0.0, 1.0)
    } else {
        0.0
    };
    if usage <= watermark || watermark >= 1.0 {
        return delay;
    }
    let left = ((1.0 - usage) / (1.0 - watermark)).clamp(0.0, 1.0);
    delay.mul_f64(left)
}

/// One sandbox as a pass sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub path: PathBuf,
    /// Its task or executor still has a checkpoint record.
    pub live: bool,
    /// The newest modification of the directory or an entry directly in it.
    pub changed_at: SystemTime,
}

/// The sandboxes to remove now: not live, unchanged for at least `max_age`; oldest first,
/// at most [`REMOVALS_PER_PASS_MAX`].
pub fn due(sandboxes: &[Sandbox], now: SystemTime, max_age: Duration) -> Vec<&Sandbox> {
    let mut out: Vec<&Sandbox> = sandboxes
        .iter()
        .filter(|s| !s.live)
        .filter(|s| now.duration_since(s.changed_at).unwrap_or_default() >= max_age)
        .collect();
    out.sort_by_key(|s| s.changed_at);
    out.truncate(REMOVALS_PER_PASS_MAX);
    out
}

/// The newest modification time of `dir` and the entries directly in it (links not
/// followed).
fn changed_at(dir: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::symlink_metadata(dir).ok()?.modified().ok()?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(t) = e.metadata().and_then(|m| m.modified()) {
                newest = newest.max(t);
            }
        }
    }
    Some(newest)
}

/// Whether the sandbox `name` of `framework` belongs to a task or executor that has a
/// checkpoint record.
fn is_live(checkpoint: &Checkpoint, framework: &str, name: &str) -> bool {
    match name.strip_prefix(EXECUTOR_PREFIX) {
        Some(executor) => checkpoint.has_executor_record(framework, executor),
        None => checkpoint.has_task_record(framework, name),
    }
}

/// Every sandbox under `<work_dir>/sandboxes/`.
pub fn scan(work_dir: &Path) -> Vec<Sandbox> {
    let checkpoint = Checkpoint::new(work_dir);
    let root = work_dir.join("sandboxes");
    let mut out = Vec::new();
    let Ok(frameworks) = std::fs::read_dir(&root) else {
        return out;
    };
    for fw in frameworks.flatten() {
        if !fw.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let framework = fw.file_name().to_string_lossy().into_owned();
        let Ok(entries) = std::fs::read_dir(fw.path()) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let Some(changed) = changed_at(&path) else {
                continue;
            };
            out.push(Sandbox {
                live: is_live(&checkpoint, &framework, &name),
                path,
                changed_at: changed,
            });
        }
    }
    out
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassReport {
    pub removed: Vec<PathBuf>,
    pub kept_live: usize,
    pub failed: usize,
}

/// One pass: scan, remove what is due at disk `usage`. Blocking I/O.
pub fn collect(work_dir: &Path, config: &GcConfig, usage: f64, now: SystemTime) -> PassReport {
    let max_age = allowed_age(config.delay, config.disk_watermark, usage);
    let all = scan(work_dir);
    let checkpoint = Checkpoint::new(work_dir);
    let mut report = PassReport {
        kept_live: all.iter().filter(|s| s.live).count(),
        ..Default::default()
    };
    for s in due(&all, now, max_age) {
        // Checked again: a task with this id may have been launched since the scan.
        let (Some(framework), Some(name)) = (
            s.path
                .parent()
                .and_then(Path::file_name)
                .map(|n| n.to_string_lossy().into_owned()),
            s.path.file_name().map(|n| n.to_string_lossy().into_owned()),
        ) else {
            continue;
        };
        if is_live(&checkpoint, &framework, &name) {
            continue;
        }
        match std::fs::remove_dir_all(&s.path) {
            Ok(()) => {
                tracing::info!(
                    sandbox = %s.path.display(),
                    age_s = now.duration_since(s.changed_at).unwrap_or_default().as_secs(),
                    disk_usage = usage,
                    "removed the sandbox of an ended task"
                );
                report.removed.push(s.path.clone());
                if let Some(parent) = s.path.parent() {
                    remove_if_empty_and_old(parent, now);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                report.failed += 1;
                tracing::warn!(sandbox = %s.path.display(), "cannot remove a sandbox: {e}");
            }
        }
    }
    report
}

fn remove_if_empty_and_old(dir: &Path, now: SystemTime) {
    let old = std::fs::symlink_metadata(dir)
        .and_then(|m| m.modified())
        .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= EMPTY_FRAMEWORK_DIR_AGE);
    if old {
        // Fails (and is left) when not empty.
        let _ = std::fs::remove_dir(dir);
    }
}

/// How full the file system holding `path` is (0..=1).
pub fn disk_usage(path: &Path) -> std::io::Result<f64> {
    let s = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    let total = s.blocks() as f64;
    if total <= 0.0 {
        return Ok(0.0);
    }
    Ok((1.0 - s.blocks_available() as f64 / total).clamp(0.0, 1.0))
}

/// How a pass learns the disk usage (the real one reads the file system; tests simulate
/// a full disk).
pub type UsageProbe = Box<dyn Fn(&Path) -> std::io::Result<f64> + Send + Sync>;

/// Collect every pass interval until `stop` resolves.
pub async fn run(
    config: GcConfig,
    work_dir: PathBuf,
    usage: UsageProbe,
    stop: impl std::future::Future<Output = ()>,
) {
    let usage = std::sync::Arc::new(usage);
    tokio::pin!(stop);
    tracing::info!(
        delay_s = config.delay.as_secs_f64(),
        disk_watermark = config.disk_watermark,
        "sandbox garbage collection on"
    );
    loop {
        let (c, dir, probe) = (config.clone(), work_dir.clone(), usage.clone());
        let pass = tokio::task::spawn_blocking(move || {
            let u = match probe(&dir) {
                Ok(u) => u,
                Err(e) => {
                    tracing::warn!("cannot read the work directory's disk usage: {e}");
                    0.0
                }
            };
            collect(&dir, &c, u, SystemTime::now())
        });
        tokio::select! {
            _ = &mut stop => return,
            r = pass => if let Err(e) = r {
                tracing::error!("a garbage collection pass failed: {e}");
            },
        }
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(config.pass_interval()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{ExecutorRecord, TaskRecord};
    use crate::executor::ExecutorKey;
    use crate::task::TaskKey;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_whole_delay_below_the_watermark_less_above_none_when_full() {
        assert_eq!(allowed_age(HOUR, 0.9, 0.0), HOUR);
        assert_eq!(allowed_age(HOUR, 0.9, 0.9), HOUR);
        assert_eq!(allowed_age(HOUR, 0.9, 0.95), HOUR / 2);
        assert_eq!(allowed_age(HOUR, 0.9, 1.0), Duration::ZERO);
        assert_eq!(
            allowed_age(HOUR, 1.0, 1.0),
            HOUR,
            "watermark 1: never sooner"
        );
        assert_eq!(allowed_age(HOUR, 0.5, f64::NAN), HOUR);
        assert_eq!(
            allowed_age(HOUR, 0.5, 7.0),
            Duration::ZERO,
            "clamped to full"
        );
    }

    #[test]
    fn due_skips_live_and_young_sandboxes_oldest_first() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10 * 3600);
        let sb = |name: &str, live: bool, hours_ago: u64| Sandbox {
            path: PathBuf::from(name),
            live,
            changed_at: now - Duration::from_secs(hours_ago * 3600),
        };
        let all = vec![
            sb("young", false, 0),
            sb("old", false, 2),
            sb("older", false, 5),
            sb("live-old", true, 9),
        ];
        let names: Vec<&str> = due(&all, now, HOUR)
            .iter()
            .map(|s| s.path.to_str().unwrap())
            .collect();
        assert_eq!(names, ["older", "old"]);
        assert_eq!(
            due(&all, now, Duration::ZERO).len(),
            3,
            "never the live one"
        );
    }

    #[test]
    fn pass_interval_is_bounded() {
        let c = |s: u64| GcConfig {
            delay: Duration::from_secs(s),
            ..Default::default()
        };
        assert_eq!(c(1).pass_interval(), PASS_INTERVAL_MIN);
        assert_eq!(c(8).pass_interval(), Duration::from_secs(2));
        assert_eq!(GcConfig::default().pass_interval(), PASS_INTERVAL_MAX);
    }

    struct Work(PathBuf);

    impl Work {
        fn new(tag: &str) -> Work {
            let d = std::env::temp_dir().join(format!(
                "agora-gc-{tag}-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4()
            ));
            std::fs::create_dir_all(&d).expect("work dir");
            Work(d)
        }

        fn sandbox(&self, fw: &str, name: &str) -> PathBuf {
            let p = self.0.join("sandboxes").join(fw).join(name);
            std::fs::create_dir_all(&p).expect("sandbox");
            std::fs::write(p.join("stdout"), "out\n").expect("stdout");
            p
        }
    }

    impl Drop for Work {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn later(d: Duration) -> SystemTime {
        SystemTime::now() + d
    }

    #[test]
    fn ended_sandboxes_go_after_the_delay_live_ones_and_volumes_stay() {
        let w = Work::new("delay");
        let cp = Checkpoint::new(&w.0);
        let ended = w.sandbox("f1", "done");
        let running = w.sandbox("f1", "running");
        let executor = w.sandbox("f1", "executor.e1");
        let ended_executor = w.sandbox("f2", "executor.e2");
        cp.write_task(&TaskKey::new("f1", "running"), &TaskRecord::default())
            .expect("record");
        cp.write_executor(
            &ExecutorKey {
                framework_id: "f1".into(),
                executor_id: "e1".into(),
            },
            &ExecutorRecord::default(),
        )
        .expect("record");
        // A persistent volume linked into the ended sandbox must survive its removal.
        let volume = w.0.join("volumes").join("pg");
        std::fs::create_dir_all(&volume).expect("volume");
        std::fs::write(volume.join("data"), "keep").expect("volume data");
        std::os::unix::fs::symlink(&volume, ended.join("data")).expect("link");

        let config = GcConfig {
            delay: HOUR,
            disk_watermark: 0.9,
        };
        // Within the delay nothing goes.
        let r = collect(&w.0, &config, 0.1, later(Duration::from_secs(60)));
        assert!(r.removed.is_empty(), "{r:?}");
        assert_eq!(r.kept_live, 2);
        // After it, only the ended ones.
        let r = collect(&w.0, &config, 0.1, later(2 * HOUR));
        let mut removed = r.removed.clone();
        removed.sort();
        let mut expected = vec![ended.clone(), ended_executor.clone()];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(running.exists() && executor.exists());
        assert!(!ended.exists() && !ended_executor.exists());
        assert_eq!(
            std::fs::read_to_string(volume.join("data")).expect("volume kept"),
            "keep"
        );
        // An emptied framework directory that has not changed for a while goes too.
        assert!(!w.0.join("sandboxes/f2").exists());
        assert!(w.0.join("sandboxes/f1").exists());
    }

    #[test]
    fn a_fuller_disk_than_the_watermark_collects_sooner() {
        let w = Work::new("watermark");
        let done = w.sandbox("f1", "done");
        let config = GcConfig {
            delay: HOUR,
            disk_watermark: 0.8,
        };
        let at = later(Duration::from_secs(20 * 60));
        // 20 minutes after: kept at 50 % disk, removed at 95 % (15 minutes allowed).
        assert!(collect(&w.0, &config, 0.5, at).removed.is_empty());
        assert!(done.exists());
        assert_eq!(collect(&w.0, &config, 0.95, at).removed, vec![done.clone()]);
        assert!(!done.exists());
    }

    #[tokio::test]
    async fn the_collector_runs_until_stopped_and_reads_the_simulated_usage() {
        let w = Work::new("run");
        let done = w.sandbox("f1", "done");
        let config = GcConfig {
            delay: HOUR,
            disk_watermark: 0.5,
        };
        // A full disk: everything ended goes at once, whatever the delay.
        let probe: UsageProbe = Box::new(|_| Ok(1.0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(config, w.0.clone(), probe, async move {
            let _ = rx.await;
        }));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while done.exists() {
            assert!(std::time::Instant::now() < deadline, "never collected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = tx.send(());
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("stops")
            .expect("no panic");
    }

    #[test]
    fn the_real_disk_usage_is_a_fraction() {
        let u = disk_usage(&std::env::temp_dir()).expect("statvfs");
        assert!((0.0..=1.0).contains(&u), "{u}");
    }
}

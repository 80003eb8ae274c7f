//! The status update log on a full disk (found by agora-chaos, docs/reliability.md): a
//! failed append must not leave a torn record that later records follow (replay stops at
//! it and loses them), and the updates and acknowledgements that could not be written are
//! in the log once the disk has room again, so a restarted agent re-sends exactly what
//! was never acknowledged.
//!
//! Needs root: the disk is a 256 KiB tmpfs mounted for the test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use agora_agent::checkpoint::{UpdateLog, replay};
use agora_agent::status_update::UpdateQueues;
use agora_agent::task::TaskKey;
use agora_proto::v1::{TaskState, TaskStatus};

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(kib: u32) -> Tmpfs {
        let dir = std::env::temp_dir().join(format!("agora-full-disk-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("running mount");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).expect("fill file");
    let block = vec![0u8; 4096];
    while let Ok(n) = f.write(&block) {
        if n == 0 {
            break;
        }
    }
}

fn status(task: &str, n: u32, state: TaskState) -> TaskStatus {
    TaskStatus {
        framework_id: "fw".into(),
        task_id: task.into(),
        uuid: format!("{task}-u{n}"),
        state: state as i32,
        // A few hundred bytes, so an append can be cut in the middle of a record.
        message: "x".repeat(300),
        ..Default::default()
    }
}

/// What the log on disk says is pending, per task: uuids in order.
fn on_disk(path: &Path) -> (Vec<(String, Vec<String>)>, bool) {
    let bytes = std::fs::read(path).expect("log");
    let (pending, _, valid) = replay(&bytes);
    let mut all: Vec<(String, Vec<String>)> = pending
        .into_iter()
        .map(|(k, q)| (k.task_id, q.into_iter().map(|s| s.uuid).collect()))
        .collect();
    all.sort();
    (all, valid == bytes.len())
}

fn in_memory(queues: &UpdateQueues) -> Vec<(String, Vec<String>)> {
    let mut all: Vec<(String, Vec<String>)> = queues
        .snapshot()
        .into_iter()
        .map(|(k, q)| (k.task_id, q.into_iter().map(|s| s.uuid).collect()))
        .collect();
    all.sort();
    all
}

#[test]
fn needs_root_update_log_recovers_from_a_full_disk() {
    let disk = Tmpfs::mount(256);
    let path = disk.0.join("meta/updates.log");
    let (log, pending) = UpdateLog::open(&path).expect("open");
    let mut queues = UpdateQueues::recover(log, pending, 100);
    let a = TaskKey::new("fw", "a");
    queues
        .push(status("a", 1, TaskState::Starting))
        .expect("push");
    queues
        .push(status("a", 2, TaskState::Running))
        .expect("push");
    queues
        .push(status("b", 1, TaskState::Starting))
        .expect("push");

    // The disk fills: the writes fail, the updates are still queued in memory.
    let filler = disk.0.join("fill");
    fill(&filler);
    // The log's last page still has room: push until a write fails.
    let mut n = 3;
    while !queues.log_stale() && n < 100 {
        queues
            .push(status("a", n, TaskState::Running))
            .expect("queued in memory");
        n += 1;
    }
    queues
        .push(status("c", 1, TaskState::Starting))
        .expect("queued");
    queues.pop_front(&a); // a-u1 acknowledged: the record cannot be written
    assert!(queues.log_stale(), "a failed write must be noticed");
    let (_, whole) = on_disk(&path);
    assert!(whole, "a failed append left a torn record in the log");

    // Room again: the log is rewritten from the queues, by the repair or the next write.
    std::fs::remove_file(&filler).expect("free the disk");
    assert!(
        queues.repair_log(),
        "the log is rewritten once there is room"
    );
    assert!(!queues.log_stale());
    queues
        .push(status("b", 2, TaskState::Running))
        .expect("push");
    queues.pop_front(&a); // a-u2
    let (logged, whole) = on_disk(&path);
    assert!(whole);
    assert_eq!(logged, in_memory(&queues));
    assert_eq!(
        logged,
        vec![
            ("a".to_string(), (3..n).map(|n| format!("a-u{n}")).collect()),
            (
                "b".to_string(),
                vec!["b-u1".to_string(), "b-u2".to_string()]
            ),
            ("c".to_string(), vec!["c-u1".to_string()]),
        ]
    );

    // A restarted agent replays exactly that.
    drop(queues);
    let (_, pending) = UpdateLog::open(&path).expect("reopen");
    let mut replayed: Vec<(String, Vec<String>)> = pending
        .into_iter()
        .map(|(k, q)| (k.task_id, q.into_iter().map(|s| s.uuid).collect()))
        .collect();
    replayed.sort();
    assert_eq!(replayed, logged);
}

#[test]
fn needs_root_a_full_disk_with_no_later_write_is_repaired_alone() {
    let disk = Tmpfs::mount(256);
    let path = disk.0.join("updates.log");
    let (log, pending) = UpdateLog::open(&path).expect("open");
    let mut queues = UpdateQueues::recover(log, pending, 100);
    let a = TaskKey::new("fw", "a");
    for n in 1..4 {
        queues
            .push(status("a", n, TaskState::Running))
            .expect("push");
    }
    let filler = disk.0.join("fill");
    fill(&filler);
    // Updates until the log's last page is full and a write fails.
    let mut n = 4;
    while !queues.log_stale() && n < 100 {
        queues
            .push(status("a", n, TaskState::Running))
            .expect("push");
        n += 1;
    }
    assert!(queues.log_stale(), "the disk never filled");
    queues.pop_front(&a);
    assert!(queues.log_stale());
    assert!(!queues.repair_log(), "no room yet");
    std::fs::remove_file(&filler).expect("free the disk");
    assert!(queues.repair_log());
    let (logged, whole) = on_disk(&path);
    assert!(whole);
    assert_eq!(
        logged,
        in_memory(&queues),
        "the log holds what is pending, no more, no less"
    );
    assert_eq!(
        logged[0].1.len(),
        n as usize - 2,
        "a-u1 acknowledged, a-u2.. pending"
    );
}

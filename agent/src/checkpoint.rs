//! The agent's on-disk checkpoint, under `<work-dir>/meta/`:
//!
//! - `agent.pb`: [`AgentMeta`]: the agent id the master assigned, the boot id of the host
//!   when it was written, and the configuration a restart must match (resources,
//!   attributes, isolation).
//! - `tasks/<framework_id>/<task_id>.pb`: one [`TaskRecord`] per launched task that has not
//!   ended: its `FrameworkInfo`, `TaskInfo` and the container to re-attach to.
//! - `updates.log`: the status update manager's write-ahead log ([`UpdateLog`]): every
//!   update is appended (and synced) before it is sent, every acknowledgement after it
//!   arrives; replaying it gives the unacknowledged updates per task, in order.
//!
//! Records are protobuf (prost) messages; whole files are replaced atomically (written to
//! a temporary file, synced, renamed). The log is length-prefixed; a torn last record (a
//! crash mid-append) is ignored on replay.
//!
//! This module owns file formats and paths only. It must never decide what to recover or
//! kill (the agent's recovery does), and it never builds a path from an id that
//! [`crate::sandbox::validate_id`] has not accepted.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use agora_proto::v1::{Attribute, FrameworkInfo, Resource, TaskInfo, TaskStatus};
use prost::Message;

use crate::containerizer::ContainerRef;
use crate::executor::ExecutorKey;
use crate::sandbox::{IdKind, InvalidId, validate_id};
use crate::task::TaskKey;

/// Where the host's boot id is read.
pub const BOOT_ID_PATH: &str = "/proc/sys/kernel/random/boot_id";
/// Largest record accepted when replaying the log (a corrupt length stops the replay).
pub const MAX_RECORD_BYTES: usize = 16 * 1024 * 1024;
/// The log is compacted once it holds this many records more than live updates.
pub const COMPACT_AFTER_RECORDS: usize = 4096;

/// A checkpoint operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file operation failed.
    #[error("checkpoint {path}: {error}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// A file that does not decode.
    #[error("checkpoint {path} is corrupt: {error}")]
    Decode {
        /// The path.
        path: PathBuf,
        /// The decoder's error.
        error: prost::DecodeError,
    },
    /// An id that cannot be a path component.
    #[error(transparent)]
    Id(#[from] InvalidId),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// Who this agent is and what it was started with.
#[derive(Clone, PartialEq, Message)]
pub struct AgentMeta {
    /// The id the master assigned (empty before the first registration).
    #[prost(string, tag = "1")]
    pub agent_id: String,
    /// The host's boot id when this was written.
    #[prost(string, tag = "2")]
    pub boot_id: String,
    /// `--resources` after detection.
    #[prost(message, repeated, tag = "3")]
    pub resources: Vec<Resource>,
    /// `--attributes`.
    #[prost(message, repeated, tag = "4")]
    pub attributes: Vec<Attribute>,
    /// `linux` or `process`.
    #[prost(string, tag = "5")]
    pub isolation: String,
}

/// A launched task that has not ended.
#[derive(Clone, PartialEq, Message)]
pub struct TaskRecord {
    /// Its framework.
    #[prost(message, optional, tag = "1")]
    pub framework: Option<FrameworkInfo>,
    /// The task as the master sent it.
    #[prost(message, optional, tag = "2")]
    pub task: Option<TaskInfo>,
    /// The containerizer's id of its container.
    #[prost(string, tag = "3")]
    pub container_id: String,
    /// Pid of the container's first process.
    #[prost(uint32, tag = "4")]
    pub pid: u32,
    /// Its start time, in clock ticks after boot.
    #[prost(uint64, tag = "5")]
    pub start_time: u64,
    /// The sandbox directory.
    #[prost(string, tag = "6")]
    pub sandbox: String,
}

impl TaskRecord {
    /// The container to re-attach to.
    pub fn container(&self) -> ContainerRef {
        ContainerRef {
            container_id: self.container_id.clone(),
            pid: self.pid,
            start_time: self.start_time,
            sandbox: PathBuf::from(&self.sandbox),
        }
    }
}

/// A launched custom executor that has not ended, with its tasks.
#[derive(Clone, PartialEq, Message)]
pub struct ExecutorRecord {
    /// Its framework.
    #[prost(message, optional, tag = "1")]
    pub framework: Option<FrameworkInfo>,
    /// The executor as the master sent it.
    #[prost(message, optional, tag = "2")]
    pub executor: Option<agora_proto::v1::ExecutorInfo>,
    /// The containerizer's id of its container (empty before the launch settled).
    #[prost(string, tag = "3")]
    pub container_id: String,
    /// Pid of the container's first process.
    #[prost(uint32, tag = "4")]
    pub pid: u32,
    /// Its start time, in clock ticks after boot.
    #[prost(uint64, tag = "5")]
    pub start_time: u64,
    /// The sandbox directory.
    #[prost(string, tag = "6")]
    pub sandbox: String,
    /// Its tasks (terminal ones too, until the executor ends).
    #[prost(message, repeated, tag = "7")]
    pub tasks: Vec<ExecutorTaskRecord>,
    /// The secret the executor authenticates its calls with.
    #[prost(string, tag = "8")]
    pub token: String,
}

impl ExecutorRecord {
    /// The container to re-attach to.
    pub fn container(&self) -> ContainerRef {
        ContainerRef {
            container_id: self.container_id.clone(),
            pid: self.pid,
            start_time: self.start_time,
            sandbox: PathBuf::from(&self.sandbox),
        }
    }
}

/// A task of a custom executor.
#[derive(Clone, PartialEq, Message)]
pub struct ExecutorTaskRecord {
    /// The task.
    #[prost(message, optional, tag = "1")]
    pub task: Option<TaskInfo>,
    /// Its task group (0: launched alone).
    #[prost(uint64, tag = "2")]
    pub group: u64,
    /// The latest state reported for it (STAGING before the executor reported any).
    #[prost(int32, tag = "3")]
    pub state: i32,
    /// The framework asked to kill it.
    #[prost(bool, tag = "4")]
    pub kill_requested: bool,
}

/// One entry of the update log.
#[derive(Clone, PartialEq, Message)]
pub struct UpdateRecord {
    /// 1: a new update (`status`); 2: an acknowledgement (`framework_id`, `task_id`,
    /// `uuid`).
    #[prost(uint32, tag = "1")]
    pub kind: u32,
    /// The update (kind 1).
    #[prost(message, optional, tag = "2")]
    pub status: Option<TaskStatus>,
    /// The acknowledged task's framework (kind 2).
    #[prost(string, tag = "3")]
    pub framework_id: String,
    /// The acknowledged task (kind 2).
    #[prost(string, tag = "4")]
    pub task_id: String,
    /// The acknowledged update (kind 2).
    #[prost(string, tag = "5")]
    pub uuid: String,
}

const KIND_PUSH: u32 = 1;
const KIND_ACK: u32 = 2;

/// The host's boot id (changes on every reboot).
pub fn boot_id() -> std::io::Result<String> {
    Ok(std::fs::read_to_string(BOOT_ID_PATH)?.trim().to_string())
}

/// Removes a file; one that is already gone is fine.
fn remove_if_present(path: &Path) -> Result<(), CheckpointError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_data().map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// The checkpoint directory of one work directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    meta: PathBuf,
}

impl Checkpoint {
    /// The checkpoint under `<work_dir>/meta`.
    pub fn new(work_dir: &Path) -> Checkpoint {
        Checkpoint {
            meta: work_dir.join("meta"),
        }
    }

    /// The `meta` directory.
    pub fn dir(&self) -> &Path {
        &self.meta
    }

    fn agent_path(&self) -> PathBuf {
        self.meta.join("agent.pb")
    }

    /// The update log's path.
    pub fn update_log_path(&self) -> PathBuf {
        self.meta.join("updates.log")
    }

    fn task_path(&self, key: &TaskKey) -> Result<PathBuf, CheckpointError> {
        validate_id(IdKind::Framework, &key.framework_id)?;
        validate_id(IdKind::Task, &key.task_id)?;
        Ok(self
            .meta
            .join("tasks")
            .join(&key.framework_id)
            .join(format!("{}.pb", key.task_id)))
    }

    fn executor_path(&self, key: &ExecutorKey) -> Result<PathBuf, CheckpointError> {
        validate_id(IdKind::Framework, &key.framework_id)?;
        validate_id(IdKind::Executor, &key.executor_id)?;
        Ok(self
            .meta
            .join("executors")
            .join(&key.framework_id)
            .join(format!("{}.pb", key.executor_id)))
    }

    /// Records a launched executor (rewritten whenever its tasks change).
    pub fn write_executor(
        &self,
        key: &ExecutorKey,
        record: &ExecutorRecord,
    ) -> Result<(), CheckpointError> {
        write_atomic(&self.executor_path(key)?, &record.encode_to_vec())
    }

    /// Whether a task of `framework_id` has a record (it has not ended). An id that cannot
    /// be a path component has none.
    pub fn has_task_record(&self, framework_id: &str, task_id: &str) -> bool {
        self.task_path(&TaskKey::new(framework_id, task_id))
            .is_ok_and(|p| p.exists())
    }

    /// Whether an executor of `framework_id` has a record (it has not ended).
    pub fn has_executor_record(&self, framework_id: &str, executor_id: &str) -> bool {
        let key = ExecutorKey {
            framework_id: framework_id.to_string(),
            executor_id: executor_id.to_string(),
        };
        self.executor_path(&key).is_ok_and(|p| p.exists())
    }

    /// Forgets an ended executor.
    pub fn remove_executor(&self, key: &ExecutorKey) -> Result<(), CheckpointError> {
        remove_if_present(&self.executor_path(key)?)
    }

    /// Every executor record, sorted by key; undecodable ones as errors.
    pub fn read_executors(&self) -> (Vec<(ExecutorKey, ExecutorRecord)>, Vec<CheckpointError>) {
        let (records, errors) = self.read_records::<ExecutorRecord>("executors");
        let out = records
            .into_iter()
            .map(|(fw, id, r)| (ExecutorKey::new(fw, id), r))
            .collect();
        (out, errors)
    }

    /// Every `<dir>/<framework_id>/<id>.pb` record under the meta directory, sorted by
    /// (framework id, id); records that do not decode are reported as errors next to the
    /// good ones, and a missing directory means none.
    fn read_records<M: Message + Default>(
        &self,
        dir: &str,
    ) -> (Vec<(String, String, M)>, Vec<CheckpointError>) {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        let Ok(frameworks) = std::fs::read_dir(self.meta.join(dir)) else {
            return (out, errors);
        };
        for fw in frameworks.flatten() {
            let Some(framework_id) = fw.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Ok(files) = std::fs::read_dir(fw.path()) else {
                continue;
            };
            for file in files.flatten() {
                let path = file.path();
                let Some(id) = file
                    .file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".pb"))
                    .map(str::to_string)
                else {
                    continue;
                };
                match std::fs::read(&path) {
                    Ok(bytes) => match M::decode(bytes.as_slice()) {
                        Ok(r) => out.push((framework_id.clone(), id, r)),
                        Err(error) => errors.push(CheckpointError::Decode { path, error }),
                    },
                    Err(e) => errors.push(io_err(&path)(e)),
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        (out, errors)
    }

    /// The agent's meta, if one was written.
    pub fn read_agent(&self) -> Result<Option<AgentMeta>, CheckpointError> {
        let path = self.agent_path();
        match std::fs::read(&path) {
            Ok(bytes) => AgentMeta::decode(bytes.as_slice())
                .map(Some)
                .map_err(|error| CheckpointError::Decode { path, error }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// Replaces the agent's meta.
    pub fn write_agent(&self, meta: &AgentMeta) -> Result<(), CheckpointError> {
        write_atomic(&self.agent_path(), &meta.encode_to_vec())
    }

    /// Records a launched task.
    pub fn write_task(&self, key: &TaskKey, record: &TaskRecord) -> Result<(), CheckpointError> {
        write_atomic(&self.task_path(key)?, &record.encode_to_vec())
    }

    /// Forgets an ended task.
    pub fn remove_task(&self, key: &TaskKey) -> Result<(), CheckpointError> {
        remove_if_present(&self.task_path(key)?)
    }

    /// Every task record, sorted by key. Records that do not decode are reported as
    /// errors next to the good ones.
    pub fn read_tasks(&self) -> (Vec<(TaskKey, TaskRecord)>, Vec<CheckpointError>) {
        let (records, errors) = self.read_records::<TaskRecord>("tasks");
        let tasks = records
            .into_iter()
            .map(|(fw, id, r)| (TaskKey::new(fw, id), r))
            .collect();
        (tasks, errors)
    }

    /// Removes the whole checkpoint (the agent starts as a new agent).
    pub fn clear(&self) -> Result<(), CheckpointError> {
        match std::fs::remove_dir_all(&self.meta) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&self.meta)(e)),
        }
    }
}

/// The status update write-ahead log.
#[derive(Debug)]
pub struct UpdateLog {
    path: PathBuf,
    file: File,
    records: usize,
    /// Length of the file's whole records: a failed append is cut back to it, so a full
    /// disk never leaves a torn record that later appends would follow (replay stops at
    /// the first torn record and would lose them).
    bytes: u64,
}

/// Unacknowledged updates per task, each queue oldest first, tasks in first-seen order.
pub type PendingUpdates = Vec<(TaskKey, VecDeque<TaskStatus>)>;

impl UpdateLog {
    /// Opens (creating) the log and replays it.
    pub fn open(path: &Path) -> Result<(UpdateLog, PendingUpdates), CheckpointError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let mut bytes = Vec::new();
        match File::open(path) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes).map_err(io_err(path))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(path)(e)),
        }
        let (pending, records, valid_len) = replay(&bytes);
        if valid_len < bytes.len() {
            tracing::warn!(path = %path.display(), "ignoring a torn record at the end of the update log");
        }
        let mut log = UpdateLog {
            path: path.to_path_buf(),
            file: OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(io_err(path))?,
            records,
            bytes: 0,
        };
        // Rewrite without the torn tail and the acknowledged updates.
        log.compact(pending.iter().flat_map(|(_, q)| q.iter()))?;
        Ok((log, pending))
    }

    fn append(&mut self, record: &UpdateRecord) -> Result<(), CheckpointError> {
        let body = record.encode_to_vec();
        let mut frame = Vec::with_capacity(body.len() + 4);
        let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&body);
        let written = self
            .file
            .write_all(&frame)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: if even this fails the log is rewritten whole (`compact`) once
            // the disk has room again.
            let _ = self.file.set_len(self.bytes);
            return Err(io_err(&self.path)(e));
        }
        self.bytes += frame.len() as u64;
        self.records += 1;
        Ok(())
    }

    /// Appends a new update (synced before returning).
    pub fn push(&mut self, status: &TaskStatus) -> Result<(), CheckpointError> {
        self.append(&UpdateRecord {
            kind: KIND_PUSH,
            status: Some(status.clone()),
            ..Default::default()
        })
    }

    /// Appends an acknowledgement.
    pub fn ack(&mut self, key: &TaskKey, uuid: &str) -> Result<(), CheckpointError> {
        self.append(&UpdateRecord {
            kind: KIND_ACK,
            status: None,
            framework_id: key.framework_id.clone(),
            task_id: key.task_id.clone(),
            uuid: uuid.to_string(),
        })
    }

    /// Number of records in the file.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Rewrites the log with only `live` updates (in order).
    pub fn compact<'a>(
        &mut self,
        live: impl Iterator<Item = &'a TaskStatus>,
    ) -> Result<(), CheckpointError> {
        let mut bytes = Vec::new();
        let mut records = 0;
        for status in live {
            let body = UpdateRecord {
                kind: KIND_PUSH,
                status: Some(status.clone()),
                ..Default::default()
            }
            .encode_to_vec();
            bytes.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
            bytes.extend_from_slice(&body);
            records += 1;
        }
        write_atomic(&self.path, &bytes)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        self.records = records;
        self.bytes = bytes.len() as u64;
        Ok(())
    }
}

/// Replays log bytes: the pending updates, the number of whole records and the length of
/// the valid prefix.
pub fn replay(bytes: &[u8]) -> (PendingUpdates, usize, usize) {
    let mut pending: PendingUpdates = Vec::new();
    let mut at = 0;
    let mut records = 0;
    while let Some(len_bytes) = bytes.get(at..at + 4) {
        let len =
            u32::from_le_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]) as usize;
        if len > MAX_RECORD_BYTES {
            break;
        }
        let Some(body) = bytes.get(at + 4..at + 4 + len) else {
            break;
        };
        let Ok(record) = UpdateRecord::decode(body) else {
            break;
        };
        at += 4 + len;
        records += 1;
        match (record.kind, record.status) {
            (KIND_PUSH, Some(status)) => {
                let key = TaskKey::new(status.framework_id.clone(), status.task_id.clone());
                match pending.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, q)) => q.push_back(status),
                    None => pending.push((key, VecDeque::from([status]))),
                }
            }
            (KIND_ACK, _) => {
                let key = TaskKey::new(record.framework_id, record.task_id);
                if let Some(i) = pending.iter().position(|(k, _)| *k == key) {
                    let q = &mut pending[i].1;
                    q.retain(|s| s.uuid != record.uuid);
                    if q.is_empty() {
                        pending.remove(i);
                    }
                }
            }
            _ => {}
        }
    }
    (pending, records, at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::TaskState;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("agora-checkpoint-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn executor_records_round_trip_and_are_removed() {
        let dir = temp("executors");
        let cp = Checkpoint::new(&dir);
        let key = ExecutorKey::new("fw", "e1");
        let record = ExecutorRecord {
            executor: Some(agora_proto::v1::ExecutorInfo {
                executor_id: "e1".into(),
                ..Default::default()
            }),
            container_id: "c1".into(),
            pid: 42,
            start_time: 7,
            sandbox: "/w/s".into(),
            tasks: vec![ExecutorTaskRecord {
                task: Some(TaskInfo {
                    task_id: "t1".into(),
                    ..Default::default()
                }),
                group: 3,
                state: TaskState::Running as i32,
                kill_requested: true,
            }],
            ..Default::default()
        };
        cp.write_executor(&key, &record).expect("write");
        let (read, errors) = cp.read_executors();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(read, vec![(key.clone(), record.clone())]);
        assert_eq!(record.container().pid, 42);
        // A corrupt record is reported, not fatal.
        let bad = dir.join("meta/executors/fw/bad.pb");
        std::fs::write(&bad, b"\xff\xff\xff").expect("write garbage");
        let (read, errors) = cp.read_executors();
        assert_eq!(read.len(), 1);
        assert_eq!(errors.len(), 1);
        cp.remove_executor(&key).expect("remove");
        cp.remove_executor(&key).expect("removing twice is fine");
        assert!(
            cp.write_executor(&ExecutorKey::new("fw", "a/b"), &record)
                .is_err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn status(task: &str, state: TaskState, uuid: &str) -> TaskStatus {
        TaskStatus {
            framework_id: "fw".into(),
            task_id: task.into(),
            state: state as i32,
            uuid: uuid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn log_replays_unacknowledged_updates_in_order() {
        let dir = temp("log");
        let path = dir.join("updates.log");
        {
            let (mut log, pending) = UpdateLog::open(&path).expect("open");
            assert!(pending.is_empty());
            log.push(&status("a", TaskState::Starting, "1"))
                .expect("push");
            log.push(&status("a", TaskState::Running, "2"))
                .expect("push");
            log.push(&status("b", TaskState::Starting, "3"))
                .expect("push");
            log.ack(&TaskKey::new("fw", "a"), "1").expect("ack");
            log.push(&status("a", TaskState::Finished, "4"))
                .expect("push");
            log.ack(&TaskKey::new("fw", "b"), "3").expect("ack");
        }
        // A torn record at the end (a crash mid-append) is ignored.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        std::fs::write(&path, &bytes).expect("write");
        let (log, pending) = UpdateLog::open(&path).expect("reopen");
        assert_eq!(pending.len(), 1);
        let (key, q) = &pending[0];
        assert_eq!(*key, TaskKey::new("fw", "a"));
        let uuids: Vec<&str> = q.iter().map(|s| s.uuid.as_str()).collect();
        assert_eq!(uuids, ["2", "4"]);
        // Reopening compacted it to the live updates.
        assert_eq!(log.records(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn garbage_replays_to_nothing() {
        let (pending, records, valid) = replay(&[0xff, 0xff, 0xff, 0xff, 1]);
        assert!(pending.is_empty());
        assert_eq!((records, valid), (0, 0));
    }

    #[test]
    fn agent_and_task_records_round_trip() {
        let dir = temp("records");
        let cp = Checkpoint::new(&dir);
        assert_eq!(cp.read_agent().expect("read"), None);
        let meta = AgentMeta {
            agent_id: "a1".into(),
            boot_id: "b".into(),
            isolation: "linux".into(),
            ..Default::default()
        };
        cp.write_agent(&meta).expect("write");
        assert_eq!(cp.read_agent().expect("read"), Some(meta));
        let key = TaskKey::new("fw", "t1");
        let record = TaskRecord {
            container_id: "c".into(),
            pid: 42,
            start_time: 7,
            sandbox: "/s".into(),
            ..Default::default()
        };
        cp.write_task(&key, &record).expect("write");
        let (tasks, errors) = cp.read_tasks();
        assert!(errors.is_empty());
        assert_eq!(tasks, vec![(key.clone(), record)]);
        assert!(
            cp.write_task(&TaskKey::new("..", "t"), &TaskRecord::default())
                .is_err()
        );
        cp.remove_task(&key).expect("remove");
        assert!(cp.read_tasks().0.is_empty());
        cp.clear().expect("clear");
        assert!(!dir.join("meta").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn boot_id_is_readable() {
        assert!(!boot_id().expect("boot id").is_empty());
    }
}

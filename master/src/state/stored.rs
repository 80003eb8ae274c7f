//! Compact forms of what the master keeps for every task, chosen for memory: a master with
//! 100,000 tasks holds 100,000 of these.

use agora_proto::v1;
use prost::Message;

/// A task's `TaskInfo` as the master stores it: the fields the master reads on its own
/// paths (the id; the kill policy, on KILL) as fields, the rest protobuf-encoded and
/// decoded only when someone asks for the whole task (state endpoint, operator events).
///
/// Why: a decoded `TaskInfo` is 640 bytes inline (optional sub-messages such as the
/// executor, container and health check sit inline even when absent) plus one allocation
/// per string, resource and label; the encoding of a typical task is about 150 bytes.
/// Round-tripping through the encoding is lossless for every field the master knows
/// (unknown fields were already dropped when the request was decoded).
#[derive(Clone, Debug, PartialEq)]
pub struct StoredTaskInfo {
    pub task_id: String,
    pub kill_policy: Option<v1::KillPolicy>,
    /// The `TaskInfo` without `task_id` and `kill_policy`, encoded.
    rest: Box<[u8]>,
}

impl From<v1::TaskInfo> for StoredTaskInfo {
    fn from(mut info: v1::TaskInfo) -> Self {
        let task_id = std::mem::take(&mut info.task_id);
        let kill_policy = info.kill_policy.take();
        StoredTaskInfo {
            task_id,
            kill_policy,
            rest: info.encode_to_vec().into_boxed_slice(),
        }
    }
}

impl StoredTaskInfo {
    /// The whole `TaskInfo` again.
    pub fn to_proto(&self) -> v1::TaskInfo {
        // `rest` is our own encoding of a valid message, so decoding cannot fail; should
        // it ever, the id and kill policy still come back rather than nothing.
        let mut info = v1::TaskInfo::decode(&self.rest[..]).unwrap_or_default();
        info.task_id.clone_from(&self.task_id);
        info.kill_policy = self.kill_policy;
        info
    }
}

/// A status as a task keeps it (latest and history): without the task, framework and
/// agent ids, which are always the task's own (the master refuses an update naming
/// another agent, and makes its own updates from the task). Three strings of about 40
/// bytes per status, two or three statuses per task.
pub fn status_without_ids(status: &v1::TaskStatus) -> v1::TaskStatus {
    let mut s = status.clone();
    s.task_id = String::new();
    s.framework_id = String::new();
    s.agent_id = String::new();
    s
}

/// A stored status with its task's ids put back.
pub fn status_with_ids(
    stored: &v1::TaskStatus,
    task_id: &str,
    framework_id: &str,
    agent_id: &str,
) -> v1::TaskStatus {
    let mut s = stored.clone();
    s.task_id = task_id.to_string();
    s.framework_id = framework_id.to_string();
    s.agent_id = agent_id.to_string();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_lose_and_regain_their_ids() {
        let status = v1::TaskStatus {
            task_id: "t".into(),
            framework_id: "f".into(),
            agent_id: "a".into(),
            state: agora_proto::TaskState::Running as i32,
            message: "m".into(),
            uuid: "u".into(),
            exit_code: Some(3),
            timestamp_ms: 42,
            ..v1::TaskStatus::default()
        };
        let stored = status_without_ids(&status);
        assert!(stored.task_id.is_empty() && stored.framework_id.is_empty());
        assert!(stored.agent_id.is_empty());
        assert_eq!(stored.uuid, "u");
        assert_eq!(status_with_ids(&stored, "t", "f", "a"), status);
    }

    fn full_task() -> v1::TaskInfo {
        v1::TaskInfo {
            name: "web".into(),
            task_id: "t-1".into(),
            agent_id: "a-1".into(),
            resources: vec![v1::Resource {
                name: "cpus".into(),
                ..v1::Resource::default()
            }],
            command: Some(v1::CommandInfo {
                run: Some(v1::command_info::Run::Shell("sleep 3".into())),
                ..v1::CommandInfo::default()
            }),
            labels: vec![v1::Label {
                key: "k".into(),
                value: "v".into(),
            }],
            kill_policy: Some(v1::KillPolicy::default()),
            data: b"payload".to_vec(),
            ..v1::TaskInfo::default()
        }
    }

    #[test]
    fn round_trips_every_field() {
        let info = full_task();
        let stored = StoredTaskInfo::from(info.clone());
        assert_eq!(stored.task_id, "t-1");
        assert_eq!(stored.kill_policy, info.kill_policy);
        assert_eq!(stored.to_proto(), info);
        let empty = v1::TaskInfo::default();
        assert_eq!(StoredTaskInfo::from(empty.clone()).to_proto(), empty);
    }

    #[test]
    fn is_much_smaller_than_the_decoded_message() {
        // Inline size: what every task costs in the task table before any allocation.
        assert!(std::mem::size_of::<StoredTaskInfo>() <= 64);
        assert!(std::mem::size_of::<v1::TaskInfo>() >= 4 * 64);
    }
}

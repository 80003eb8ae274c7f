//! Compact forms of what the master keeps for every task, chosen for memory: a master with
//! 100,000 tasks holds 100,000 of these. Owns the representations and their exact
//! conversions to and from the protocol and resource types; no policy.
//!
//! Every form converts back to exactly what went in (unit and property tests below): the
//! state endpoint, operator events, reconciliation and the dedupe of re-sent updates read
//! them and must not see a difference.

use agora_proto::v1;
#[cfg(test)]
use agora_resources::Resources;
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

/// An agent's `AgentInfo` as the master stores it: what it reads on its own paths (the
/// hostname and attributes go into every offer) as fields, the rest (id, address,
/// isolation and the resources as registered, which only the state endpoint shows)
/// protobuf-encoded. The decoded resources were about 600 of the master's ~9 KiB per
/// agent; their encoding is about 50 bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredAgentInfo {
    pub hostname: String,
    pub attributes: Vec<v1::Attribute>,
    /// The `AgentInfo` without `hostname` and `attributes`, encoded.
    rest: Box<[u8]>,
}

impl From<v1::AgentInfo> for StoredAgentInfo {
    fn from(mut info: v1::AgentInfo) -> Self {
        let hostname = std::mem::take(&mut info.hostname);
        let attributes = std::mem::take(&mut info.attributes);
        StoredAgentInfo {
            hostname,
            attributes,
            rest: info.encode_to_vec().into_boxed_slice(),
        }
    }
}

impl StoredAgentInfo {
    /// The whole `AgentInfo` again.
    pub fn to_proto(&self) -> v1::AgentInfo {
        // `rest` is our own encoding of a valid message, so decoding cannot fail; should
        // it ever, the hostname and attributes still come back rather than nothing.
        let mut info = v1::AgentInfo::decode(&self.rest[..]).unwrap_or_default();
        info.hostname.clone_from(&self.hostname);
        info.attributes.clone_from(&self.attributes);
        info
    }
}

/// A status update's uuid as the master keeps it. Agents send canonical UUIDs (36
/// characters, lowercase, hyphenated), which are kept as their 16 bytes instead of a
/// 36-byte string on the heap; anything else is kept as it came.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredUuid {
    Empty,
    Canonical([u8; 16]),
    Other(Box<str>),
}

impl StoredUuid {
    pub fn new(s: &str) -> StoredUuid {
        if s.is_empty() {
            return StoredUuid::Empty;
        }
        // Only the exact canonical text may be kept as bytes: `parse_str` also reads
        // uppercase, braced, urn and unhyphenated forms, which must come back as sent.
        if s.len() == uuid::fmt::Hyphenated::LENGTH
            && let Ok(u) = uuid::Uuid::try_parse(s)
            && *u
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                == *s
        {
            return StoredUuid::Canonical(u.into_bytes());
        }
        StoredUuid::Other(s.into())
    }

    /// Whether this is the uuid `s` (no allocation).
    pub fn is(&self, s: &str) -> bool {
        match self {
            StoredUuid::Empty => s.is_empty(),
            StoredUuid::Canonical(b) => {
                *uuid::Uuid::from_bytes(*b)
                    .hyphenated()
                    .encode_lower(&mut uuid::Uuid::encode_buffer())
                    == *s
            }
            StoredUuid::Other(o) => **o == *s,
        }
    }

    pub fn to_text(&self) -> String {
        match self {
            StoredUuid::Empty => String::new(),
            StoredUuid::Canonical(b) => uuid::Uuid::from_bytes(*b).hyphenated().to_string(),
            StoredUuid::Other(o) => o.to_string(),
        }
    }
}

/// `stored == status.uuid`, so comparisons read as they did with a `String`.
impl PartialEq<String> for StoredUuid {
    fn eq(&self, other: &String) -> bool {
        self.is(other)
    }
}

/// A status as a task keeps it (latest and history): without the task, framework and
/// agent ids, which are always the task's own (the master refuses an update naming
/// another agent, and makes its own updates from the task), with the uuid as bytes, and
/// the fields that are nearly always empty (executor id, message, data) behind one
/// pointer. 64 bytes and usually no allocation, where a `TaskStatus` is 232 bytes inline
/// plus a 36-byte uuid (and formerly three ids) on the heap.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredStatus {
    pub timestamp_ms: i64,
    pub uuid: StoredUuid,
    pub exit_code: Option<i32>,
    /// The protocol's enum values as received (an unknown value is kept, not mapped).
    pub state: i32,
    pub reason: i32,
    pub source: i32,
    pub healthy: Option<bool>,
    rare: Option<Box<RareStatusFields>>,
}

#[derive(Clone, Debug, Default, PartialEq)]
struct RareStatusFields {
    executor_id: String,
    message: String,
    data: Vec<u8>,
}

impl StoredStatus {
    /// The status without its ids (see the type).
    pub fn new(status: &v1::TaskStatus) -> StoredStatus {
        let rare = (!status.executor_id.is_empty()
            || !status.message.is_empty()
            || !status.data.is_empty())
        .then(|| {
            Box::new(RareStatusFields {
                executor_id: status.executor_id.clone(),
                message: status.message.clone(),
                data: status.data.clone(),
            })
        });
        StoredStatus {
            timestamp_ms: status.timestamp_ms,
            uuid: StoredUuid::new(&status.uuid),
            exit_code: status.exit_code,
            state: status.state,
            reason: status.reason,
            source: status.source,
            healthy: status.healthy,
            rare,
        }
    }

    pub fn message(&self) -> &str {
        self.rare.as_ref().map_or("", |r| r.message.as_str())
    }

    /// The whole status again, with its task's ids.
    pub fn to_status(&self, task_id: &str, framework_id: &str, agent_id: &str) -> v1::TaskStatus {
        let rare = self.rare.as_deref();
        v1::TaskStatus {
            task_id: task_id.to_string(),
            framework_id: framework_id.to_string(),
            agent_id: agent_id.to_string(),
            executor_id: rare.map(|r| r.executor_id.clone()).unwrap_or_default(),
            state: self.state,
            reason: self.reason,
            message: rare.map(|r| r.message.clone()).unwrap_or_default(),
            source: self.source,
            timestamp_ms: self.timestamp_ms,
            uuid: self.uuid.to_text(),
            exit_code: self.exit_code,
            healthy: self.healthy,
            data: rare.map(|r| r.data.clone()).unwrap_or_default(),
        }
    }
}

/// A task's status history and latest status. The latest is nearly always the last
/// entry of the history (a re-sent update, same uuid, is recorded once), so it is kept
/// apart only when it differs from it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusLog {
    history: Vec<StoredStatus>,
    latest: Latest,
}

#[derive(Clone, Debug, Default, PartialEq)]
enum Latest {
    #[default]
    None,
    LastOfHistory,
    Own(Box<StoredStatus>),
}

impl StatusLog {
    /// Record a received status: appended to the history (keeping at most `max_history`
    /// entries) unless it re-sends the last one (same non-empty uuid); it becomes the
    /// latest either way.
    pub fn record(&mut self, status: &v1::TaskStatus, max_history: usize) {
        let stored = StoredStatus::new(status);
        if self
            .history
            .last()
            .is_none_or(|h| !h.uuid.is(&status.uuid) || status.uuid.is_empty())
        {
            if self.history.len() >= max_history.max(1) {
                self.history.remove(0);
            }
            // Grow by one: most tasks see two or three updates, and a first push would
            // reserve room for four.
            self.history.reserve_exact(1);
            self.history.push(stored);
            self.latest = Latest::LastOfHistory;
        } else if self.history.last() == Some(&stored) {
            self.latest = Latest::LastOfHistory;
        } else {
            self.latest = Latest::Own(Box::new(stored));
        }
    }

    pub fn latest(&self) -> Option<&StoredStatus> {
        match &self.latest {
            Latest::None => None,
            Latest::LastOfHistory => self.history.last(),
            Latest::Own(s) => Some(s),
        }
    }

    pub fn history(&self) -> &[StoredStatus] {
        &self.history
    }

    /// Whether an update with this uuid was recorded and a newer one has followed.
    pub fn superseded(&self, uuid: &str) -> bool {
        self.history.iter().rev().skip(1).any(|h| h.uuid.is(uuid))
    }
}

/// A task's resources as the master keeps them: the compact form, shared with the
/// allocator's decline filters (defined and tested in `agora-resources`).
pub use agora_resources::CompactResources as StoredResources;

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> v1::TaskStatus {
        v1::TaskStatus {
            task_id: "t".into(),
            framework_id: "f".into(),
            agent_id: "a".into(),
            state: agora_proto::TaskState::Running as i32,
            uuid: "0b6a5f5e-8f5b-4c1e-9d2a-3c4b5a697887".into(),
            exit_code: Some(3),
            timestamp_ms: 42,
            ..v1::TaskStatus::default()
        }
    }

    #[test]
    fn statuses_lose_and_regain_their_ids() {
        let mut s = status();
        let stored = StoredStatus::new(&s);
        assert!(matches!(stored.uuid, StoredUuid::Canonical(_)));
        assert!(stored.rare.is_none(), "nothing rare to keep");
        assert_eq!(stored.to_status("t", "f", "a"), s);
        s.message = "m".into();
        s.executor_id = "e".into();
        s.data = b"d".to_vec();
        s.healthy = Some(false);
        let stored = StoredStatus::new(&s);
        assert_eq!(stored.message(), "m");
        assert_eq!(stored.to_status("t", "f", "a"), s);
    }

    #[test]
    fn stored_statuses_are_small() {
        assert!(std::mem::size_of::<StoredStatus>() <= 64);
        assert!(std::mem::size_of::<v1::TaskStatus>() >= 3 * 64);
    }

    #[test]
    fn only_canonical_uuids_become_bytes() {
        let canonical = "0b6a5f5e-8f5b-4c1e-9d2a-3c4b5a697887";
        for (text, bytes) in [
            (canonical, true),
            ("0B6A5F5E-8F5B-4C1E-9D2A-3C4B5A697887", false),
            ("0b6a5f5e8f5b4c1e9d2a3c4b5a697887", false),
            ("{0b6a5f5e-8f5b-4c1e-9d2a-3c4b5a697887}", false),
            ("urn:uuid:0b6a5f5e-8f5b-4c1e-9d2a-3c4b5a697887", false),
            ("u-1", false),
            ("", false),
        ] {
            let u = StoredUuid::new(text);
            assert_eq!(matches!(u, StoredUuid::Canonical(_)), bytes, "{text}");
            assert_eq!(u.to_text(), text);
            assert!(u.is(text) && u == text.to_string());
            assert!(!u.is("other"));
        }
        assert!(!StoredUuid::new(canonical).is(""));
        assert!(!StoredUuid::new("").is(canonical));
    }

    #[test]
    fn the_latest_status_is_the_last_recorded_unless_a_resend_differs() {
        let mut log = StatusLog::default();
        assert!(log.latest().is_none());
        let mut s = status();
        s.state = agora_proto::TaskState::Starting as i32;
        log.record(&s, 16);
        let mut r = status();
        r.uuid = "r".into();
        log.record(&r, 16);
        assert_eq!(log.history().len(), 2);
        assert_eq!(log.latest(), log.history().last());
        assert!(matches!(log.latest, Latest::LastOfHistory));
        assert!(log.superseded(&s.uuid) && !log.superseded(&r.uuid));
        // The same update again: recorded once, still the latest.
        log.record(&r, 16);
        assert_eq!(log.history().len(), 2);
        assert!(matches!(log.latest, Latest::LastOfHistory));
        // A re-send under the same uuid that differs becomes the latest on its own.
        let mut r2 = r.clone();
        r2.message = "again".into();
        log.record(&r2, 16);
        assert_eq!(log.history().len(), 2);
        assert_eq!(log.latest(), Some(&StoredStatus::new(&r2)));
        assert_eq!(log.history()[1], StoredStatus::new(&r));
        // Empty uuids (master-made updates) are always recorded; the history is bounded.
        let mut m = status();
        m.uuid = String::new();
        for _ in 0..5 {
            log.record(&m, 3);
        }
        assert_eq!(log.history().len(), 3);
        assert_eq!(log.latest(), Some(&StoredStatus::new(&m)));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn any_status() -> impl Strategy<Value = v1::TaskStatus> {
            (
                (any::<i32>(), any::<i32>(), any::<i32>(), any::<i64>()),
                prop_oneof![
                    Just(String::new()),
                    any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).to_string()),
                    any::<u128>().prop_map(|u| uuid::Uuid::from_u128(u).simple().to_string()),
                    "[ -~]{0,40}",
                ],
                (any::<Option<i32>>(), any::<Option<bool>>()),
                (
                    "[a-z]{0,3}",
                    "[ -~]{0,8}",
                    proptest::collection::vec(any::<u8>(), 0..4),
                ),
            )
                .prop_map(
                    |((state, reason, source, ts), uuid, (exit_code, healthy), (e, m, d))| {
                        v1::TaskStatus {
                            task_id: "t".into(),
                            framework_id: "f".into(),
                            agent_id: "a".into(),
                            executor_id: e,
                            state,
                            reason,
                            message: m,
                            source,
                            timestamp_ms: ts,
                            uuid,
                            exit_code,
                            healthy,
                            data: d,
                        }
                    },
                )
        }

        proptest! {
            #[test]
            fn any_status_round_trips(s in any_status()) {
                let stored = StoredStatus::new(&s);
                prop_assert_eq!(stored.to_status("t", "f", "a"), s.clone());
                prop_assert!(stored.uuid.is(&s.uuid));
                prop_assert_eq!(stored.message(), s.message.as_str());
            }

            #[test]
            fn uuids_match_only_themselves(a in "[ -~]{0,40}", b in "[ -~]{0,40}") {
                prop_assert_eq!(StoredUuid::new(&a).is(&b), a == b);
                prop_assert_eq!(StoredUuid::new(&a).to_text(), a);
            }

        }
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
    fn agent_infos_round_trip() {
        let info = v1::AgentInfo {
            id: "a-1".into(),
            hostname: "h".into(),
            address: "10.0.0.1:5051".into(),
            resources: Resources::parse("cpus:8;mem:1024;ports:[31000-32000]")
                .expect("valid")
                .to_proto(),
            attributes: vec![v1::Attribute {
                name: "rack".into(),
                ..v1::Attribute::default()
            }],
            isolation: "process".into(),
        };
        let stored = StoredAgentInfo::from(info.clone());
        assert_eq!(stored.hostname, "h");
        assert_eq!(stored.attributes, info.attributes);
        assert_eq!(stored.to_proto(), info);
        let empty = v1::AgentInfo::default();
        assert_eq!(StoredAgentInfo::from(empty.clone()).to_proto(), empty);
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

//! The operator event stream's payloads: `GET /api/v1/events` on the master (server-sent
//! events, one JSON object per event) and `agora events`. Each event has a kind, sent as
//! the SSE `event:` field, and a JSON payload, sent as its `data:` field. Fields are
//! documented in docs/api.md.
//!
//! Pure formatting and parsing of the wire form: it must never fetch, filter by ACLs or
//! decide which events a client gets.

use agora_proto::v1::operator_event::{self, Event};
use agora_proto::v1::{TaskState, TaskStatus};
use serde_json::{Map, Value, json};

use crate::state::{agent_json, framework_json, state_json, status_json, task_json};

/// Every kind of event on the stream, by its SSE `event:` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// The whole state as the caller may view it (the `/api/v1/state` shape), first on a
    /// stream asked for with `snapshot=true`.
    Snapshot,
    FrameworkAdded,
    FrameworkUpdated,
    FrameworkRemoved,
    AgentAdded,
    /// Status or maintenance changed (disconnected, unreachable, draining, ...).
    AgentUpdated,
    AgentRemoved,
    TaskAdded,
    /// A task's new latest status.
    TaskUpdated,
    /// Counters and totals, sent when the stream opens and then periodically.
    Stats,
    /// The last event of a stream the master ends (a client too slow to keep up, the
    /// master stopping); the client subscribes again.
    Error,
}

impl EventKind {
    pub const ALL: [EventKind; 11] = [
        EventKind::Snapshot,
        EventKind::FrameworkAdded,
        EventKind::FrameworkUpdated,
        EventKind::FrameworkRemoved,
        EventKind::AgentAdded,
        EventKind::AgentUpdated,
        EventKind::AgentRemoved,
        EventKind::TaskAdded,
        EventKind::TaskUpdated,
        EventKind::Stats,
        EventKind::Error,
    ];

    /// The SSE `event:` name.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Snapshot => "snapshot",
            EventKind::FrameworkAdded => "framework_added",
            EventKind::FrameworkUpdated => "framework_updated",
            EventKind::FrameworkRemoved => "framework_removed",
            EventKind::AgentAdded => "agent_added",
            EventKind::AgentUpdated => "agent_updated",
            EventKind::AgentRemoved => "agent_removed",
            EventKind::TaskAdded => "task_added",
            EventKind::TaskUpdated => "task_updated",
            EventKind::Stats => "stats",
            EventKind::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// One protocol event as (kind, payload); `None` for an event with a missing body.
pub fn event_json(event: &Event) -> Option<(EventKind, Value)> {
    Some(match event {
        Event::Snapshot(s) => (EventKind::Snapshot, state_json(s)),
        Event::FrameworkAdded(operator_event::FrameworkAdded { framework }) => (
            EventKind::FrameworkAdded,
            framework_json(framework.as_ref()?),
        ),
        Event::FrameworkUpdated(operator_event::FrameworkUpdated { framework }) => (
            EventKind::FrameworkUpdated,
            framework_json(framework.as_ref()?),
        ),
        Event::FrameworkRemoved(r) => (
            EventKind::FrameworkRemoved,
            json!({ "framework_id": r.framework_id }),
        ),
        Event::AgentAdded(operator_event::AgentAdded { agent }) => {
            (EventKind::AgentAdded, agent_json(agent.as_ref()?))
        }
        Event::AgentUpdated(operator_event::AgentUpdated { agent }) => {
            (EventKind::AgentUpdated, agent_json(agent.as_ref()?))
        }
        Event::AgentRemoved(r) => (EventKind::AgentRemoved, json!({ "agent_id": r.agent_id })),
        Event::TaskAdded(operator_event::TaskAdded { task }) => {
            (EventKind::TaskAdded, task_json(task.as_ref()?))
        }
        Event::TaskUpdated(u) => (
            EventKind::TaskUpdated,
            task_updated_json(&u.framework_id, u.status.as_ref()?),
        ),
    })
}

/// `{"framework_id", "task_id", "agent_id", "state", "status"}`.
pub fn task_updated_json(framework_id: &str, status: &TaskStatus) -> Value {
    let state = TaskState::try_from(status.state)
        .map(|s| Value::String(s.as_str_name().to_string()))
        .unwrap_or(Value::Null);
    json!({
        "framework_id": framework_id,
        "task_id": status.task_id,
        "agent_id": status.agent_id,
        "state": state,
        "status": status_json(status),
    })
}

/// The framework and agent an event is about, for filtering by them: (framework id,
/// agent id), each `None` when the event is not about one. Reads the JSON payload, so
/// it works the same on the master and in a client.
pub fn event_subjects(kind: EventKind, payload: &Value) -> (Option<&str>, Option<&str>) {
    let field = |name: &str| payload.get(name).and_then(Value::as_str);
    match kind {
        EventKind::FrameworkAdded | EventKind::FrameworkUpdated => (field("id"), None),
        EventKind::FrameworkRemoved => (field("framework_id"), None),
        EventKind::AgentAdded | EventKind::AgentUpdated => (None, field("id")),
        EventKind::AgentRemoved => (None, field("agent_id")),
        EventKind::TaskAdded | EventKind::TaskUpdated => (field("framework_id"), field("agent_id")),
        EventKind::Snapshot | EventKind::Stats | EventKind::Error => (None, None),
    }
}

/// One resource kind's cluster totals, in units.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourceTotals {
    pub kind: String,
    pub total: f64,
    pub allocated: f64,
    pub offered: f64,
}

/// One role's share of the cluster.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoleShare {
    pub role: String,
    pub dominant_share: f64,
    pub weight: f64,
}

/// The payload of a `stats` event: counters since the master started and current totals.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub master_id: String,
    pub offers_sent: u64,
    pub offers_accepted: u64,
    pub offers_declined: u64,
    pub offers_rescinded: u64,
    pub offers_outstanding: u64,
    pub tasks_launched: u64,
    pub status_updates: u64,
    pub allocation_cycles: u64,
    pub allocation_seconds_sum: f64,
    pub agents_by_status: Vec<(String, u64)>,
    pub frameworks_by_status: Vec<(String, u64)>,
    pub tasks_by_state: Vec<(String, u64)>,
    pub resources: Vec<ResourceTotals>,
    pub roles: Vec<RoleShare>,
}

fn counts(items: &[(String, u64)]) -> Value {
    Value::Object(
        items
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(*v)))
            .collect(),
    )
}

/// `{"master_id", "offers": {sent, accepted, declined, rescinded, outstanding}, "tasks_launched",
/// "status_updates", "allocation": {cycles, seconds_sum}, "agents": {status: n},
/// "frameworks": {status: n}, "tasks": {STATE: n}, "resources": {kind: {total,
/// allocated, offered}}, "roles": {role: {dominant_share, weight}}}`.
pub fn stats_json(s: &Stats) -> Value {
    let resources: Map<String, Value> = s
        .resources
        .iter()
        .map(|r| {
            (
                r.kind.clone(),
                json!({ "total": r.total, "allocated": r.allocated, "offered": r.offered }),
            )
        })
        .collect();
    let roles: Map<String, Value> = s
        .roles
        .iter()
        .map(|r| {
            (
                r.role.clone(),
                json!({ "dominant_share": r.dominant_share, "weight": r.weight }),
            )
        })
        .collect();
    json!({
        "master_id": s.master_id,
        "offers": {
            "sent": s.offers_sent,
            "accepted": s.offers_accepted,
            "declined": s.offers_declined,
            "rescinded": s.offers_rescinded,
            "outstanding": s.offers_outstanding,
        },
        "tasks_launched": s.tasks_launched,
        "status_updates": s.status_updates,
        "allocation": {
            "cycles": s.allocation_cycles,
            "seconds_sum": s.allocation_seconds_sum,
        },
        "agents": counts(&s.agents_by_status),
        "frameworks": counts(&s.frameworks_by_status),
        "tasks": counts(&s.tasks_by_state),
        "resources": resources,
        "roles": roles,
    })
}

/// `{"error": message}`: the payload of an `error` event.
pub fn error_json(message: &str) -> Value {
    json!({ "error": message })
}

/// One server-sent event as read off the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseFrame {
    /// The `event:` field ("message" when absent, as the SSE standard says).
    pub event: String,
    /// The `data:` lines joined with newlines.
    pub data: String,
}

/// Most bytes of one event held while it is incomplete; a longer one is an error (a
/// snapshot of a very large cluster needs a raised limit, see `SseDecoder::with_limit`).
pub const SSE_EVENT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Splits a server-sent-event byte stream into frames (comments and `id:`/`retry:`
/// fields are skipped). Feed it chunks as they arrive; it keeps an incomplete event.
#[derive(Debug)]
pub struct SseDecoder {
    buffer: Vec<u8>,
    limit_bytes: usize,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::with_limit(SSE_EVENT_MAX_BYTES)
    }
}

impl SseDecoder {
    pub fn with_limit(limit_bytes: usize) -> Self {
        SseDecoder {
            buffer: Vec::new(),
            limit_bytes,
        }
    }

    /// The frames completed by `chunk`, or an error when one event exceeds the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseFrame>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut frames = Vec::new();
        loop {
            let end = find_blank_line(&self.buffer);
            let Some((at, sep)) = end else { break };
            let raw: Vec<u8> = self.buffer.drain(..at + sep).collect();
            let text = String::from_utf8_lossy(&raw[..at]);
            if let Some(frame) = parse_frame(&text) {
                frames.push(frame);
            }
        }
        if self.buffer.len() > self.limit_bytes {
            return Err(format!(
                "an event longer than {} bytes on the stream",
                self.limit_bytes
            ));
        }
        Ok(frames)
    }
}

/// Where the first event ends: (index of the blank line, length of the separator).
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] == b'\n' && b[i + 1] == b'\n' {
            return Some((i, 2));
        }
        if b[i] == b'\r' && b[i + 1] == b'\n' && b.get(i + 2..i + 4) == Some(b"\r\n") {
            return Some((i, 4));
        }
        i += 1;
    }
    None
}

fn parse_frame(text: &str) -> Option<SseFrame> {
    let mut event = None;
    let mut data: Option<String> = None;
    for line in text.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
    // A block of comments only (a keep-alive) is no event.
    let data = data?;
    Some(SseFrame {
        event: event.unwrap_or_else(|| "message".into()),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1::{self, AgentInfo, AgentState};

    #[test]
    fn kinds_round_trip_by_name() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_name(k.name()), Some(k));
        }
        assert_eq!(EventKind::from_name("nope"), None);
    }

    #[test]
    fn events_render_with_their_subjects() {
        let agent = Event::AgentUpdated(operator_event::AgentUpdated {
            agent: Some(AgentState {
                info: Some(AgentInfo {
                    id: "a1".into(),
                    ..Default::default()
                }),
                status: "draining".into(),
                ..Default::default()
            }),
        });
        let (kind, v) = event_json(&agent).expect("rendered");
        assert_eq!(kind, EventKind::AgentUpdated);
        assert_eq!(v["status"], "draining");
        assert_eq!(event_subjects(kind, &v), (None, Some("a1")));

        let update = Event::TaskUpdated(operator_event::TaskUpdated {
            framework_id: "f1".into(),
            status: Some(v1::TaskStatus {
                task_id: "t1".into(),
                agent_id: "a1".into(),
                state: TaskState::Running as i32,
                ..Default::default()
            }),
        });
        let (kind, v) = event_json(&update).expect("rendered");
        assert_eq!(kind, EventKind::TaskUpdated);
        assert_eq!(v["state"], "RUNNING");
        assert_eq!(v["status"]["state"], "RUNNING");
        assert_eq!(event_subjects(kind, &v), (Some("f1"), Some("a1")));

        let empty = Event::AgentAdded(operator_event::AgentAdded { agent: None });
        assert!(event_json(&empty).is_none());
    }

    #[test]
    fn stats_have_their_fields() {
        let s = Stats {
            offers_sent: 3,
            tasks_by_state: vec![("RUNNING".into(), 2)],
            resources: vec![ResourceTotals {
                kind: "cpus".into(),
                total: 4.0,
                allocated: 1.5,
                offered: 0.5,
            }],
            roles: vec![RoleShare {
                role: "eng".into(),
                dominant_share: 0.25,
                weight: 2.0,
            }],
            ..Default::default()
        };
        let v = stats_json(&s);
        assert_eq!(v["offers"]["sent"], 3);
        assert_eq!(v["tasks"]["RUNNING"], 2);
        assert_eq!(v["resources"]["cpus"]["allocated"], 1.5);
        assert_eq!(v["roles"]["eng"]["weight"], 2.0);
    }

    #[test]
    fn the_decoder_splits_frames_across_chunks() {
        let mut d = SseDecoder::default();
        assert!(d.push(b":keep-alive\n\nevent: st").expect("ok").is_empty());
        let frames = d
            .push(b"ats\ndata: {\"a\":1}\n\ndata: x\ndata: y\r\n\r\n")
            .expect("ok");
        assert_eq!(
            frames,
            vec![
                SseFrame {
                    event: "stats".into(),
                    data: "{\"a\":1}".into()
                },
                SseFrame {
                    event: "message".into(),
                    data: "x\ny".into()
                }
            ]
        );
        let mut small = SseDecoder::with_limit(8);
        assert!(small.push(b"data: 0123456789").is_err());
    }
}

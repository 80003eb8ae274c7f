//! `agora logs` and `agora events`, and the task output `agora run` prints: a task's
//! sandbox files read through the master's sandbox proxy
//! (`GET /api/v1/tasks/{framework}/{task}/files/read?path=stdout&offset=N&length=L`,
//! answered `{"offset": N, "data": "..."}` like Mesos's `/files/read`), and the master's
//! event stream (`GET /api/v1/events`, server-sent events).
//!
//! Read-only: this module must never change the cluster. Chunk sizes and poll intervals
//! are bounded constants.

use std::time::Duration;

use serde_json::Value;
use tonic::codegen::http::Method;

use agora_views::events::{SseDecoder, SseFrame};

use crate::args::{EventsArgs, LogsArgs, validate_masters};
use crate::client::{ApiError, Master, encode, next_chunk};
use crate::output;
use crate::resolve::{self, ResolveError};

/// Bytes asked for per read.
pub const READ_CHUNK_BYTES: u64 = 64 * 1024;
/// How often `logs -f` looks for new output.
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// One read of a sandbox file: the data from `offset` (empty at the end).
pub async fn read_chunk(
    master: &Master,
    framework_id: &str,
    task_id: &str,
    file: &str,
    offset: u64,
) -> Result<String, ApiError> {
    let v = master
        .get(&format!(
            "/api/v1/tasks/{}/{}/files/read?path={}&offset={offset}&length={READ_CHUNK_BYTES}",
            encode(framework_id),
            encode(task_id),
            encode(file)
        ))
        .await?;
    v.get("data")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| ApiError::Protocol("a file read without 'data'".into()))
}

/// Everything in a sandbox file from `offset` on, chunk by chunk, handed to `sink` (which
/// returns `false` to stop). Returns the offset after the last byte read.
pub async fn copy_from(
    master: &Master,
    framework_id: &str,
    task_id: &str,
    file: &str,
    mut offset: u64,
    sink: &mut (dyn FnMut(&str) -> bool + Send),
) -> Result<u64, ApiError> {
    loop {
        let data = read_chunk(master, framework_id, task_id, file, offset).await?;
        if data.is_empty() {
            return Ok(offset);
        }
        offset += data.len() as u64;
        if !sink(&data) {
            return Ok(offset);
        }
    }
}

/// Whether the task has ended (terminal state), by the master's one-task query (a task
/// the master no longer lists ended long ago).
async fn task_ended(master: &Master, framework_id: &str, task_id: &str) -> Result<bool, ApiError> {
    let page = master
        .get(&format!(
            "/api/v1/tasks?framework_id={}&task_id={}&limit=1",
            encode(framework_id),
            encode(task_id)
        ))
        .await?;
    let state = page
        .get("tasks")
        .and_then(Value::as_array)
        .and_then(|t| t.first())
        .and_then(|t| t.get("state").and_then(Value::as_str))
        .unwrap_or("")
        .to_string();
    Ok(matches!(
        state.as_str(),
        "FINISHED"
            | "FAILED"
            | "KILLED"
            | "ERROR"
            | "LOST"
            | "DROPPED"
            | "GONE"
            | "GONE_BY_OPERATOR"
    ) || state.is_empty())
}

/// `agora logs`.
pub async fn logs(a: LogsArgs) -> anyhow::Result<()> {
    let list = validate_masters(&a.master.master).map_err(ResolveError)?;
    let master = Master::connect(&list, &a.master.security, false).await?;
    let (framework_id, task_id) = resolve::task(&master, &a.task, a.framework.as_deref()).await?;
    let file = if a.stderr { "stderr" } else { "stdout" };
    let mut open = true;
    let mut sink = |text: &str| {
        open = output::out(text);
        open
    };
    let mut offset = copy_from(&master, &framework_id, &task_id, file, 0, &mut sink).await?;
    if !a.follow {
        return Ok(());
    }
    loop {
        // Whether it ended is asked before the last read, so nothing written just before
        // the end is missed.
        let ended = task_ended(&master, &framework_id, &task_id).await?;
        let mut sink = |text: &str| output::out(text);
        let before = offset;
        offset = copy_from(&master, &framework_id, &task_id, file, offset, &mut sink).await?;
        if ended && offset == before {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_POLL) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// A one-line summary of an event: its type and the ids, names and states it carries.
pub fn event_line(ev: &SseFrame) -> String {
    let mut parts = vec![if ev.event.is_empty() {
        "message".to_string()
    } else {
        ev.event.clone()
    }];
    if let Ok(v) = serde_json::from_str::<Value>(&ev.data) {
        let mut fields = Vec::new();
        collect_fields(&v, &mut fields, 0);
        parts.extend(fields);
    } else if !ev.data.is_empty() {
        parts.push(ev.data.clone());
    }
    parts.join("  ")
}

/// `key=value` for the identifying fields of an event, depth-first, at most a few levels.
fn collect_fields(v: &Value, out: &mut Vec<String>, depth: usize) {
    const KEYS: [&str; 9] = [
        "id",
        "framework_id",
        "agent_id",
        "task_id",
        "name",
        "hostname",
        "state",
        "status",
        "message",
    ];
    let Value::Object(map) = v else {
        return;
    };
    for (k, val) in map {
        match val {
            Value::String(s) if KEYS.contains(&k.as_str()) && !s.is_empty() => {
                out.push(format!("{k}={s}"));
            }
            Value::Object(_) if depth < 2 => collect_fields(val, out, depth + 1),
            _ => {}
        }
    }
}

/// `agora events`: follow the stream until it ends or Ctrl-C.
pub async fn events(a: EventsArgs) -> anyhow::Result<()> {
    let list = validate_masters(&a.master.master).map_err(ResolveError)?;
    let master = Master::connect(&list, &a.master.security, true).await?;
    let mut query = Vec::new();
    if a.snapshot {
        query.push("snapshot=true".to_string());
    }
    if let Some(t) = &a.types {
        query.push(format!("types={}", encode(t)));
    }
    if let Some(f) = &a.framework {
        query.push(format!(
            "framework_id={}",
            encode(&resolve::framework_id(&master, f).await?)
        ));
    }
    if let Some(g) = &a.agent {
        query.push(format!(
            "agent_id={}",
            encode(&resolve::agent_id(&master, g).await?)
        ));
    }
    let path = if query.is_empty() {
        "/api/v1/events".to_string()
    } else {
        format!("/api/v1/events?{}", query.join("&"))
    };
    let response = master.request(Method::GET, &path, None).await?;
    let mut body = response.into_body();
    let mut parser = SseDecoder::default();
    loop {
        let chunk = tokio::select! {
            c = next_chunk(&mut body) => c?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let Some(bytes) = chunk else {
            anyhow::bail!("the master ended the event stream");
        };
        for ev in parser.push(&bytes).map_err(ApiError::Protocol)? {
            let text = if a.json {
                let data: Value =
                    serde_json::from_str(&ev.data).unwrap_or(Value::String(ev.data.clone()));
                serde_json::json!({"event": ev.event, "data": data}).to_string()
            } else {
                event_line(&ev)
            };
            if !output::line(&text) {
                return Ok(());
            }
            if ev.event == "error" {
                anyhow::bail!("the master ended the event stream: {}", ev.data);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_in_one_line_names_its_subjects() {
        let ev = SseFrame {
            event: "task_updated".into(),
            data:
                r#"{"framework_id":"f1","status":{"task_id":"t1","state":"RUNNING","message":""}}"#
                    .into(),
        };
        assert_eq!(
            event_line(&ev),
            "task_updated  framework_id=f1  state=RUNNING  task_id=t1"
        );
        let plain = SseFrame {
            event: String::new(),
            data: "hello".into(),
        };
        assert_eq!(event_line(&plain), "message  hello");
    }
}

//! The bodies of Agora's fuzz targets, one function per decoder that takes bytes from a
//! peer, a client or the disk.
//!
//! Two drivers share them: the cargo-fuzz harness in `fuzz/` (libFuzzer, nightly, coverage
//! guided; `scripts/fuzz.sh`) and the stable replay in `tests/corpus.rs`, which runs every
//! checked-in corpus and regression input plus a bounded number of seeded mutations of them
//! in the ordinary test command. A crash found by either becomes a file under
//! `fuzz/regressions/<target>/`, replayed by the test for ever after.
//!
//! Each target states its oracle: never panic; where a value is accepted, it reads back to
//! itself (parsers); where input is refused, it is refused as the client's fault (4xx,
//! INVALID_ARGUMENT and friends), never as the server's (5xx, INTERNAL, UNKNOWN).
//!
//! This crate must never hold product logic: it only calls the product's own entry points.

use std::sync::OnceLock;

use agora_proto::v1;
use agora_resources::{Attributes, Resources};
use prost::Message;

pub mod master_api;

/// One fuzz target: its name (the directory of its corpus) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "resources_text",
        run: resources_text,
    },
    Target {
        name: "resources_json",
        run: resources_json,
    },
    Target {
        name: "registry_log",
        run: registry_log,
    },
    Target {
        name: "agent_checkpoint",
        run: agent_checkpoint,
    },
    Target {
        name: "agent_command",
        run: agent_command,
    },
    Target {
        name: "master_api",
        run: master_api::run,
    },
    Target {
        name: "mesos_recordio",
        run: mesos_recordio,
    },
];

/// The resource and attribute text parsers (`cpus:2;mem:1024;ports:[31000-32000]`, `rack:a`):
/// whatever they accept prints back to text they read as the same value.
pub fn resources_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = Resources::parse(text) {
        let printed = parsed.to_string();
        match Resources::parse(&printed) {
            Ok(again) => assert_eq!(again, parsed, "{text:?} printed as {printed:?}"),
            Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
        }
    }
    if let Ok(parsed) = Attributes::parse(text) {
        let printed = parsed.to_string();
        match Attributes::parse(&printed) {
            Ok(again) => assert_eq!(again, parsed, "{text:?} printed as {printed:?}"),
            Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e}"),
        }
    }
}

/// The JSON form of resources (HTTP bodies and views): an accepted document writes back to
/// JSON that reads as the same value, and its text form agrees.
pub fn resources_json(data: &[u8]) {
    let Ok(parsed) = serde_json::from_slice::<Resources>(data) else {
        return;
    };
    let written = match serde_json::to_string(&parsed) {
        Ok(w) => w,
        Err(e) => panic!("{parsed} was accepted but cannot be written as JSON: {e}"),
    };
    match serde_json::from_str::<Resources>(&written) {
        Ok(again) => assert_eq!(again, parsed, "written as {written}"),
        Err(e) => panic!("{parsed} written as {written}, which does not read back: {e}"),
    }
    match Resources::parse(&parsed.to_string()) {
        Ok(text) => assert_eq!(text, parsed, "JSON and text forms disagree"),
        Err(e) => panic!("{parsed} read from JSON has a text form that does not parse: {e}"),
    }
}

/// A line of the master's file registry log (`[op, ...]` or one op) or its snapshot,
/// replayed onto a state: no panic, and the state it leads to is written and read back.
pub fn registry_log(data: &[u8]) {
    use agora_master::registry::{RegistryOp, RegistryState};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut state = RegistryState::default();
    let line = text.trim();
    if line.starts_with('[') {
        if let Ok(ops) = serde_json::from_str::<Vec<RegistryOp>>(line) {
            ops.iter().for_each(|op| state.apply(op));
        }
    } else if let Ok(op) = serde_json::from_str::<RegistryOp>(line) {
        state.apply(&op);
    } else if let Ok(snapshot) = serde_json::from_str::<RegistryState>(line) {
        state = snapshot;
    }
    let written = match serde_json::to_string(&state) {
        Ok(w) => w,
        Err(e) => panic!("a replayed registry state cannot be written: {e}"),
    };
    match serde_json::from_str::<RegistryState>(&written) {
        Ok(back) => assert_eq!(back, state, "snapshot {written}"),
        Err(e) => panic!("a written registry snapshot does not read back: {e}: {written}"),
    }
}

/// The agent's checkpoint files: the first byte picks the format (the status update log,
/// a task record, an executor record, the agent's own record); the rest is the file.
pub fn agent_checkpoint(data: &[u8]) {
    use agora_agent::checkpoint::{AgentMeta, ExecutorRecord, TaskRecord, replay};
    use agora_agent::sandbox::{IdKind, validate_id};
    let Some((&kind, file)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            let (pending, records, valid) = replay(file);
            assert!(
                valid <= file.len(),
                "valid prefix {valid} of {}",
                file.len()
            );
            let updates: usize = pending.iter().map(|(_, q)| q.len()).sum();
            assert!(
                updates <= records,
                "{updates} pending from {records} records"
            );
        }
        1 => {
            if let Ok(record) = TaskRecord::decode(file) {
                if let Some(fw) = &record.framework {
                    let _ = validate_id(IdKind::Framework, &fw.id);
                }
                if let Some(task) = &record.task {
                    let _ = validate_id(IdKind::Task, &task.task_id);
                }
            }
        }
        2 => {
            if let Ok(record) = ExecutorRecord::decode(file)
                && let Some(executor) = &record.executor
            {
                let _ = validate_id(IdKind::Executor, &executor.executor_id);
            }
        }
        _ => {
            let _ = AgentMeta::decode(file);
        }
    }
}

/// A command from the master on the agent's stream: it decodes or is refused, and the
/// resources in a decoded command that convert at all convert back to the same protobuf
/// value (the agent books and checkpoints them in that form).
pub fn agent_command(data: &[u8]) {
    let Ok(command) = v1::AgentCommand::decode(data) else {
        return;
    };
    let resources = |rs: &[v1::Resource]| {
        if let Ok(parsed) = Resources::from_proto(rs) {
            match Resources::from_proto(&parsed.to_proto()) {
                Ok(again) => assert_eq!(again, parsed, "protobuf round trip"),
                Err(e) => panic!("{parsed} does not read back from its own protobuf: {e}"),
            }
        }
    };
    use v1::agent_command::Command;
    match command.command {
        Some(Command::RunTask(run)) => {
            if let Some(task) = &run.task {
                resources(&task.resources);
                if let Some(e) = &task.executor {
                    resources(&e.resources);
                }
            }
        }
        Some(Command::RunTaskGroup(run)) => {
            if let Some(group) = &run.task_group {
                group.tasks.iter().for_each(|t| resources(&t.resources));
            }
        }
        _ => {}
    }
}

/// A process-wide value built once (the fuzzing process runs millions of inputs).
pub(crate) fn once<T>(cell: &'static OnceLock<T>, make: impl FnOnce() -> T) -> &'static T {
    cell.get_or_init(make)
}

/// The Mesos v1 API's RecordIO framing and the scheduler calls it carries: the first byte
/// says where the stream is cut in two; decoding it whole or in two parts gives the same
/// records (or both fail); a record that decodes as a protobuf `Call` encodes back to bytes
/// that decode and encode to the same bytes; JSON decoding never panics.
pub fn mesos_recordio(data: &[u8]) {
    use agora_mesos::Format;
    use agora_mesos::recordio::Decoder;
    use agora_mesos::schema::scheduler::Call;
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let at = (usize::from(cut) * stream.len()) / 255;
    let whole = Decoder::new().feed(stream);
    let mut decoder = Decoder::new();
    let parts = decoder.feed(&stream[..at]).and_then(|mut first| {
        first.extend(decoder.feed(&stream[at..])?);
        Ok(first)
    });
    let records = match (whole, parts) {
        (Ok(a), Ok(b)) => {
            assert_eq!(a, b, "records differ when the stream is cut at {at}");
            a
        }
        (Err(_), Err(_)) => return,
        (a, b) => panic!("cut at {at}: whole stream {a:?}, in two parts {b:?}"),
    };
    for record in records {
        if let Ok(call) = Format::Protobuf.decode::<Call>(&record) {
            let bytes = Format::Protobuf.encode(&call);
            // Compared as bytes: a NaN (e.g. `refuse_seconds`) is unequal to itself as a
            // value but keeps its bits (fuzz/regressions/mesos_recordio/nan-refuse-seconds).
            match Format::Protobuf.decode::<Call>(&bytes) {
                Ok(again) => assert_eq!(
                    Format::Protobuf.encode(&again),
                    bytes,
                    "protobuf round trip of {call:?}"
                ),
                Err(e) => panic!("a decoded call does not decode after encoding: {e:?}"),
            }
        }
        let _ = Format::Json.decode::<Call>(&record);
    }
}

//! Translation tables and round trips.

use super::scheduler::{SchedulerCall, call_to_agora, event_to_mesos, master_info};
use super::*;
use crate::Format;
use crate::schema::scheduler as s;

fn call(json: &str) -> Result<SchedulerCall, Refusal> {
    let c: s::Call = Format::Json.decode(json.as_bytes())?;
    call_to_agora(&c)
}

#[test]
fn subscribe_maps_the_default_role_and_capabilities() {
    let c = call(
        r#"{"type":"SUBSCRIBE","subscribe":{"framework_info":{"user":"u","name":"fw",
        "role":"*","capabilities":[{"type":"MULTI_ROLE"},{"type":"PARTITION_AWARE"}]}}}"#,
    )
    .unwrap();
    let SchedulerCall::Subscribe(r) = c else {
        panic!("{c:?}")
    };
    let f = r.framework.unwrap();
    assert_eq!(f.name, "fw");
    assert!(f.roles.is_empty(), "'*' is Agora's default role");
    assert_eq!(
        f.capabilities,
        vec![a::FrameworkCapability::PartitionAware as i32]
    );
}

#[test]
fn calls_check_their_shape() {
    let e = call(r#"{"type":"KILL","kill":{"task_id":{"value":"t"}}}"#).unwrap_err();
    assert_eq!(
        (e.status, e.message.as_str()),
        (400, "Expecting 'framework_id' to be present")
    );
    let e = call(r#"{"framework_id":{"value":"f"}}"#).unwrap_err();
    assert_eq!(e.message, "Expecting 'type' to be present");
    let e = call(r#"{"type":"ACCEPT","framework_id":{"value":"f"}}"#).unwrap_err();
    assert_eq!(e.message, "Expecting 'accept' to be present");
    let e = call(
        r#"{"type":"SUBSCRIBE","framework_id":{"value":"a"},
        "subscribe":{"framework_info":{"name":"x","user":"u","id":{"value":"b"}}}}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("differs"), "{}", e.message);
    let e = call(r#"{"type":"RECONCILE_OPERATIONS","framework_id":{"value":"f"}}"#).unwrap_err();
    assert_eq!(e.status, 501);
}

#[test]
fn accept_translates_launches() {
    let c = call(
        r#"{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{
        "offer_ids":[{"value":"o1"}],"filters":{"refuse_seconds":1},
        "operations":[{"type":"LAUNCH","launch":{"task_infos":[{"name":"t",
          "task_id":{"value":"t1"},"agent_id":{"value":"a1"},
          "resources":[{"name":"cpus","type":"SCALAR","scalar":{"value":0.1},"role":"*"},
                       {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":31001}]}}],
          "command":{"value":"echo hi"}}]}}]}}"#,
    )
    .unwrap();
    let SchedulerCall::Accept(r) = c else {
        panic!("{c:?}")
    };
    assert_eq!(r.offer_ids, vec!["o1"]);
    assert_eq!(r.filters.unwrap().refuse_seconds, Some(1.0));
    let Some(a::operation::Operation::Launch(l)) = &r.operations[0].operation else {
        panic!()
    };
    let t = &l.tasks[0];
    assert_eq!(t.task_id, "t1");
    assert_eq!(
        t.resources[0].value,
        Some(a::resource::Value::Scalar(a::Scalar { thousandths: 100 }))
    );
    assert!(t.resources[0].reservation.is_none());
    assert_eq!(
        t.command.as_ref().unwrap().run,
        Some(a::command_info::Run::Shell("echo hi".into()))
    );
}

#[test]
fn unsupported_inputs_are_refused_with_the_field() {
    let e = call(
        r#"{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"operations":[
        {"type":"LAUNCH","launch":{"task_infos":[{"name":"t","task_id":{"value":"t1"},
        "agent_id":{"value":"a"},"container":{"type":"DOCKER","docker":{"image":"x"}},
        "command":{"value":"true"}}]}}]}}"#,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("accept.operations[0].launch.task_infos[0].container"),
        "{}",
        e.message
    );
    let e = call(
        r#"{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"operations":[
        {"type":"GROW_VOLUME"}]}}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("GROW_VOLUME"), "{}", e.message);
    let e = call(
        r#"{"type":"ACCEPT","framework_id":{"value":"f"},"accept":{"operations":[
        {"type":"RESERVE","reserve":{"resources":[{"name":"cpus","type":"SCALAR",
        "scalar":{"value":-1}}]}}]}}"#,
    )
    .unwrap_err();
    assert!(e.message.contains("non-negative"), "{}", e.message);
}

#[test]
fn acknowledge_uuid_round_trips() {
    let agora = "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    let bytes = uuid_to_mesos(agora).unwrap();
    assert_eq!(bytes.len(), 16);
    assert_eq!(uuid_to_agora("u", &bytes).unwrap(), agora);
    assert!(uuid_to_agora("u", b"").is_err());
}

#[test]
fn resources_round_trip() {
    let r = a::Resource {
        name: "disk".into(),
        value: Some(a::resource::Value::Scalar(a::Scalar { thousandths: 1500 })),
        reservation: Some(a::Reservation {
            r#type: a::reservation::Type::Dynamic as i32,
            role: "r".into(),
            principal: "p".into(),
            labels: vec![],
        }),
        revocable: false,
        disk: Some(a::DiskInfo {
            persistence_id: "v1".into(),
            principal: "p".into(),
            container_path: "data".into(),
            read_only: false,
        }),
    };
    let m = resource_to_mesos(&r, Some("r"));
    assert_eq!(m.scalar.as_ref().unwrap().value, Some(1.5));
    assert_eq!(resource_to_agora("r", &m).unwrap(), r);
}

#[test]
fn events_carry_mesos_names() {
    let master = master_info("m", "localhost", "127.0.0.1".parse().unwrap(), 5050);
    let e = a::Event {
        event: Some(a::event::Event::Update(a::event::Update {
            status: Some(a::TaskStatus {
                task_id: "t".into(),
                state: a::TaskState::Running as i32,
                uuid: "6f1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d".into(),
                source: a::StatusSource::SourceExecutor as i32,
                ..Default::default()
            }),
        })),
    };
    let json =
        String::from_utf8(Format::Json.encode(&event_to_mesos(&e, &master).unwrap())).unwrap();
    assert!(json.contains(r#""type":"UPDATE""#), "{json}");
    assert!(json.contains(r#""state":"TASK_RUNNING""#), "{json}");
    assert!(json.contains(r#""source":"SOURCE_EXECUTOR""#), "{json}");
    assert!(
        json.contains(r#""uuid":"bxssPU5fSmuMfZ4PGis8TQ==""#),
        "{json}"
    );
    let hb = a::Event {
        event: Some(a::event::Event::Heartbeat(a::event::Heartbeat {})),
    };
    assert_eq!(
        String::from_utf8(Format::Json.encode(&event_to_mesos(&hb, &master).unwrap())).unwrap(),
        r#"{"type":"HEARTBEAT"}"#
    );
}

#[test]
fn every_agora_state_has_a_mesos_name() {
    for s in 1..=14 {
        assert_ne!(state_name(s), "", "{s}");
        assert_eq!(
            state_to_agora(state_to_mesos(s) as i32).map(|x| x as i32),
            Some(s)
        );
    }
}

mod never_panics {
    use super::*;
    use crate::schema::executor as x;
    use proptest::prelude::*;

    proptest! {
        /// Whatever bytes arrive, decoding and translating answers a value or a refusal.
        #[test]
        fn on_any_protobuf_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let Ok(c) = Format::Protobuf.decode::<s::Call>(&bytes) {
                let _ = call_to_agora(&c);
            }
            if let Ok(c) = Format::Protobuf.decode::<x::Call>(&bytes) {
                let _ = super::super::executor::call_to_agora(&c);
            }
        }

        #[test]
        fn on_any_json_text(text in "\\PC{0,200}") {
            if let Ok(c) = Format::Json.decode::<s::Call>(text.as_bytes()) {
                let _ = call_to_agora(&c);
            }
        }

        /// Structured JSON calls with arbitrary values in the fields translation reads.
        #[test]
        fn on_calls_with_odd_values(
            kind in prop_oneof![Just("SUBSCRIBE"), Just("ACCEPT"), Just("KILL"), Just("ACKNOWLEDGE"), Just("RECONCILE"), Just("UPDATE_FRAMEWORK")],
            value in prop_oneof![Just(serde_json::json!(-1.0)), Just(serde_json::json!(1e300)), Just(serde_json::json!("")), Just(serde_json::json!(null))],
        ) {
            let body = serde_json::json!({
                "type": kind,
                "framework_id": {"value": "f"},
                "subscribe": {"framework_info": {"name": "n", "user": "u", "failover_timeout": value}},
                "accept": {"operations": [{"type": "LAUNCH", "launch": {"task_infos": [{
                    "name": "t", "task_id": {"value": "t"}, "agent_id": {"value": "a"},
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": value}}]}]}}]},
                "kill": {"task_id": {"value": value}},
                "acknowledge": {"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": value},
                "update_framework": {"framework_info": {"name": value, "user": "u"}},
            });
            if let Ok(c) = Format::Json.decode::<s::Call>(body.to_string().as_bytes()) {
                let _ = call_to_agora(&c);
            }
        }
    }
}

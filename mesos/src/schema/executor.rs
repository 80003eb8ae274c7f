//! Messages of package `mesos.v1.executor`: the executor API's `Call` and `Event`.
//!
//! Written for Agora from the published field names and numbers of Mesos's v1 protocol
//! (facts of the wire format). Generated once from a compact field list; every
//! field is `optional` or `repeated` as in Mesos's proto2 schema, so presence survives
//! the protobuf wire and absent JSON fields stay absent.

#![allow(missing_docs)]

use super::v1::*;
use crate::json::mesos_enum;

mesos_enum!(EventType { UNKNOWN = 0, SUBSCRIBED = 1, LAUNCH = 2, LAUNCH_GROUP = 8, KILL = 3, ACKNOWLEDGED = 4, MESSAGE = 5, ERROR = 6, SHUTDOWN = 7, HEARTBEAT = 9 });

mesos_enum!(CallType { UNKNOWN = 0, SUBSCRIBE = 1, UPDATE = 2, MESSAGE = 3, HEARTBEAT = 4 });

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Subscribed {
    #[prost(message, optional, tag = "1")]
    pub executor_info: Option<ExecutorInfo>,
    #[prost(message, optional, tag = "2")]
    pub framework_info: Option<FrameworkInfo>,
    #[prost(message, optional, tag = "3")]
    pub agent_info: Option<AgentInfo>,
    #[prost(message, optional, tag = "4")]
    pub container_id: Option<ContainerId>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Launch {
    #[prost(message, optional, tag = "1")]
    pub task: Option<TaskInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct LaunchGroup {
    #[prost(message, optional, tag = "1")]
    pub task_group: Option<TaskGroupInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Kill {
    #[prost(message, optional, tag = "1")]
    pub task_id: Option<TaskId>,
    #[prost(message, optional, tag = "2")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Acknowledged {
    #[prost(message, optional, tag = "1")]
    pub task_id: Option<TaskId>,
    #[prost(bytes = "vec", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub uuid: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Message {
    #[prost(bytes = "vec", optional, tag = "1")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Error {
    #[prost(string, optional, tag = "1")]
    pub message: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Event {
    #[prost(enumeration = "EventType", optional, tag = "1")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<EventType, _>",
        deserialize_with = "crate::json::enum_de::<EventType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "2")]
    pub subscribed: Option<Subscribed>,
    #[prost(message, optional, tag = "3")]
    pub acknowledged: Option<Acknowledged>,
    #[prost(message, optional, tag = "4")]
    pub launch: Option<Launch>,
    #[prost(message, optional, tag = "8")]
    pub launch_group: Option<LaunchGroup>,
    #[prost(message, optional, tag = "5")]
    pub kill: Option<Kill>,
    #[prost(message, optional, tag = "6")]
    pub message: Option<Message>,
    #[prost(message, optional, tag = "7")]
    pub error: Option<Error>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Subscribe {
    #[prost(message, repeated, tag = "1")]
    pub unacknowledged_tasks: Vec<TaskInfo>,
    #[prost(message, repeated, tag = "2")]
    pub unacknowledged_updates: Vec<Update>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Update {
    #[prost(message, optional, tag = "1")]
    pub status: Option<TaskStatus>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct CallMessage {
    #[prost(bytes = "vec", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Call {
    #[prost(message, optional, tag = "1")]
    pub executor_id: Option<ExecutorId>,
    #[prost(message, optional, tag = "2")]
    pub framework_id: Option<FrameworkId>,
    #[prost(enumeration = "CallType", optional, tag = "3")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<CallType, _>",
        deserialize_with = "crate::json::enum_de::<CallType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "4")]
    pub subscribe: Option<Subscribe>,
    #[prost(message, optional, tag = "5")]
    pub update: Option<Update>,
    #[prost(message, optional, tag = "6")]
    pub message: Option<CallMessage>,
}

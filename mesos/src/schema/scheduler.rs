//! Messages of package `mesos.v1.scheduler`: the scheduler API's `Call` and `Event`.
//!
//! Written for Agora from the published field names and numbers of Mesos's v1 protocol
//! (facts of the wire format). Generated once from a compact field list; every
//! field is `optional` or `repeated` as in Mesos's proto2 schema, so presence survives
//! the protobuf wire and absent JSON fields stay absent.

#![allow(missing_docs)]

use super::v1::*;
use crate::json::mesos_enum;

mesos_enum!(EventType { UNKNOWN = 0, SUBSCRIBED = 1, OFFERS = 2, INVERSE_OFFERS = 9, RESCIND = 3, RESCIND_INVERSE_OFFER = 10, UPDATE = 4, UPDATE_OPERATION_STATUS = 11, MESSAGE = 5, FAILURE = 6, ERROR = 7, HEARTBEAT = 8 });

mesos_enum!(CallType { UNKNOWN = 0, SUBSCRIBE = 1, TEARDOWN = 2, ACCEPT = 3, DECLINE = 4, ACCEPT_INVERSE_OFFERS = 13, DECLINE_INVERSE_OFFERS = 14, REVIVE = 5, KILL = 6, SHUTDOWN = 7, ACKNOWLEDGE = 8, ACKNOWLEDGE_OPERATION_STATUS = 15, RECONCILE = 9, RECONCILE_OPERATIONS = 16, MESSAGE = 10, REQUEST = 11, SUPPRESS = 12, UPDATE_FRAMEWORK = 17 });

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Subscribed {
    #[prost(message, optional, tag = "1")]
    pub framework_id: Option<FrameworkId>,
    #[prost(double, optional, tag = "2")]
    pub heartbeat_interval_seconds: Option<f64>,
    #[prost(message, optional, tag = "3")]
    pub master_info: Option<MasterInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Offers {
    #[prost(message, repeated, tag = "1")]
    pub offers: Vec<Offer>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Rescind {
    #[prost(message, optional, tag = "1")]
    pub offer_id: Option<OfferId>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Update {
    #[prost(message, optional, tag = "1")]
    pub status: Option<TaskStatus>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Message {
    #[prost(message, optional, tag = "1")]
    pub agent_id: Option<AgentId>,
    #[prost(message, optional, tag = "2")]
    pub executor_id: Option<ExecutorId>,
    #[prost(bytes = "vec", optional, tag = "3")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Failure {
    #[prost(message, optional, tag = "1")]
    pub agent_id: Option<AgentId>,
    #[prost(message, optional, tag = "2")]
    pub executor_id: Option<ExecutorId>,
    #[prost(int32, optional, tag = "3")]
    pub status: Option<i32>,
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
    pub offers: Option<Offers>,
    #[prost(message, optional, tag = "4")]
    pub rescind: Option<Rescind>,
    #[prost(message, optional, tag = "5")]
    pub update: Option<Update>,
    #[prost(message, optional, tag = "6")]
    pub message: Option<Message>,
    #[prost(message, optional, tag = "7")]
    pub failure: Option<Failure>,
    #[prost(message, optional, tag = "8")]
    pub error: Option<Error>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Subscribe {
    #[prost(message, optional, tag = "1")]
    pub framework_info: Option<FrameworkInfo>,
    #[prost(string, repeated, tag = "2")]
    pub suppressed_roles: Vec<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Accept {
    #[prost(message, repeated, tag = "1")]
    pub offer_ids: Vec<OfferId>,
    #[prost(message, repeated, tag = "2")]
    pub operations: Vec<Operation>,
    #[prost(message, optional, tag = "3")]
    pub filters: Option<Filters>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Decline {
    #[prost(message, repeated, tag = "1")]
    pub offer_ids: Vec<OfferId>,
    #[prost(message, optional, tag = "2")]
    pub filters: Option<Filters>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct InverseOffersReply {
    #[prost(message, repeated, tag = "1")]
    pub inverse_offer_ids: Vec<OfferId>,
    #[prost(message, optional, tag = "2")]
    pub filters: Option<Filters>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Roles {
    #[prost(string, repeated, tag = "1")]
    pub roles: Vec<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Kill {
    #[prost(message, optional, tag = "1")]
    pub task_id: Option<TaskId>,
    #[prost(message, optional, tag = "2")]
    pub agent_id: Option<AgentId>,
    #[prost(message, optional, tag = "3")]
    pub kill_policy: Option<KillPolicy>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Shutdown {
    #[prost(message, optional, tag = "1")]
    pub executor_id: Option<ExecutorId>,
    #[prost(message, optional, tag = "2")]
    pub agent_id: Option<AgentId>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Acknowledge {
    #[prost(message, optional, tag = "1")]
    pub agent_id: Option<AgentId>,
    #[prost(message, optional, tag = "2")]
    pub task_id: Option<TaskId>,
    #[prost(bytes = "vec", optional, tag = "3")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub uuid: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ReconcileTask {
    #[prost(message, optional, tag = "1")]
    pub task_id: Option<TaskId>,
    #[prost(message, optional, tag = "2")]
    pub agent_id: Option<AgentId>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Reconcile {
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<ReconcileTask>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Requests {
    #[prost(message, repeated, tag = "1")]
    pub requests: Vec<Request>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct UpdateFramework {
    #[prost(message, optional, tag = "1")]
    pub framework_info: Option<FrameworkInfo>,
    #[prost(string, repeated, tag = "2")]
    pub suppressed_roles: Vec<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Call {
    #[prost(message, optional, tag = "1")]
    pub framework_id: Option<FrameworkId>,
    #[prost(enumeration = "CallType", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<CallType, _>",
        deserialize_with = "crate::json::enum_de::<CallType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub subscribe: Option<Subscribe>,
    #[prost(message, optional, tag = "4")]
    pub accept: Option<Accept>,
    #[prost(message, optional, tag = "5")]
    pub decline: Option<Decline>,
    #[prost(message, optional, tag = "13")]
    pub accept_inverse_offers: Option<InverseOffersReply>,
    #[prost(message, optional, tag = "14")]
    pub decline_inverse_offers: Option<InverseOffersReply>,
    #[prost(message, optional, tag = "15")]
    pub revive: Option<Roles>,
    #[prost(message, optional, tag = "6")]
    pub kill: Option<Kill>,
    #[prost(message, optional, tag = "7")]
    pub shutdown: Option<Shutdown>,
    #[prost(message, optional, tag = "8")]
    pub acknowledge: Option<Acknowledge>,
    #[prost(message, optional, tag = "9")]
    pub reconcile: Option<Reconcile>,
    #[prost(message, optional, tag = "10")]
    pub message: Option<Message>,
    #[prost(message, optional, tag = "11")]
    pub request: Option<Requests>,
    #[prost(message, optional, tag = "16")]
    pub suppress: Option<Roles>,
    #[prost(message, optional, tag = "19")]
    pub update_framework: Option<UpdateFramework>,
}

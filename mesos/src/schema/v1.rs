//! Messages of package `mesos.v1` (Mesos's common types), as much of them as Agora
//! translates. Unknown fields are skipped on both wires, so richer messages still decode.
//!
//! Written for Agora from the published field names and numbers of Mesos's v1 protocol
//! (facts of the wire format). Generated once from a compact field list; every
//! field is `optional` or `repeated` as in Mesos's proto2 schema, so presence survives
//! the protobuf wire and absent JSON fields stay absent.

#![allow(missing_docs)]

use crate::json::mesos_enum;

mesos_enum!(TaskState { TASK_STAGING = 6, TASK_STARTING = 0, TASK_RUNNING = 1, TASK_KILLING = 8, TASK_FINISHED = 2, TASK_FAILED = 3, TASK_KILLED = 4, TASK_ERROR = 7, TASK_LOST = 5, TASK_DROPPED = 9, TASK_UNREACHABLE = 10, TASK_GONE = 11, TASK_GONE_BY_OPERATOR = 12, TASK_UNKNOWN = 13 });

mesos_enum!(TaskStatusSource { SOURCE_MASTER = 0, SOURCE_AGENT = 1, SOURCE_EXECUTOR = 2 });

mesos_enum!(TaskStatusReason { REASON_COMMAND_EXECUTOR_FAILED = 0, REASON_CONTAINER_LAUNCH_FAILED = 21, REASON_CONTAINER_LIMITATION = 19, REASON_CONTAINER_LIMITATION_DISK = 20, REASON_CONTAINER_LIMITATION_MEMORY = 8, REASON_CONTAINER_PREEMPTED = 17, REASON_CONTAINER_UPDATE_FAILED = 22, REASON_EXECUTOR_REGISTRATION_TIMEOUT = 23, REASON_EXECUTOR_REREGISTRATION_TIMEOUT = 24, REASON_EXECUTOR_TERMINATED = 1, REASON_EXECUTOR_UNREGISTERED = 2, REASON_FRAMEWORK_REMOVED = 3, REASON_GC_ERROR = 4, REASON_INVALID_FRAMEWORKID = 5, REASON_INVALID_OFFERS = 6, REASON_IO_SWITCHBOARD_EXITED = 27, REASON_MASTER_DISCONNECTED = 7, REASON_RECONCILIATION = 9, REASON_RESOURCES_UNKNOWN = 18, REASON_AGENT_DISCONNECTED = 10, REASON_AGENT_REMOVED = 11, REASON_AGENT_REMOVED_BY_OPERATOR = 31, REASON_AGENT_REREGISTERED = 32, REASON_AGENT_RESTARTED = 12, REASON_AGENT_UNKNOWN = 13, REASON_TASK_KILLED_DURING_LAUNCH = 30, REASON_TASK_CHECK_STATUS_UPDATED = 28, REASON_TASK_HEALTH_CHECK_STATUS_UPDATED = 29, REASON_TASK_GROUP_INVALID = 25, REASON_TASK_GROUP_UNAUTHORIZED = 26, REASON_TASK_INVALID = 14, REASON_TASK_UNAUTHORIZED = 15, REASON_TASK_UNKNOWN = 16 });

mesos_enum!(ValueType { SCALAR = 0, RANGES = 1, SET = 2, TEXT = 3 });

mesos_enum!(CapabilityType { UNKNOWN = 0, REVOCABLE_RESOURCES = 1, TASK_KILLING_STATE = 2, GPU_RESOURCES = 3, SHARED_RESOURCES = 4, PARTITION_AWARE = 5, MULTI_ROLE = 6, RESERVATION_REFINEMENT = 7, REGION_AWARE = 8 });

mesos_enum!(ReservationType { UNKNOWN = 0, STATIC = 1, DYNAMIC = 2 });

mesos_enum!(VolumeMode { RW = 1, RO = 2 });

mesos_enum!(OperationType { UNKNOWN = 0, LAUNCH = 1, LAUNCH_GROUP = 6, RESERVE = 2, UNRESERVE = 3, CREATE = 4, DESTROY = 5, GROW_VOLUME = 11, SHRINK_VOLUME = 12, CREATE_DISK = 13, DESTROY_DISK = 14 });

mesos_enum!(ExecutorType { UNKNOWN = 0, DEFAULT = 1, CUSTOM = 2 });

mesos_enum!(ContainerType { DOCKER = 1, MESOS = 2 });

mesos_enum!(HealthCheckType { UNKNOWN = 0, COMMAND = 1, HTTP = 2, TCP = 3 });

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct FrameworkId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct OfferId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct AgentId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TaskId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ExecutorId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ContainerId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct DurationInfo {
    #[prost(int64, optional, tag = "1")]
    pub nanoseconds: Option<i64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TimeInfo {
    #[prost(int64, optional, tag = "1")]
    pub nanoseconds: Option<i64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Label {
    #[prost(string, optional, tag = "1")]
    pub key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Labels {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Scalar {
    #[prost(double, optional, tag = "1")]
    pub value: Option<f64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Range {
    #[prost(uint64, optional, tag = "1")]
    pub begin: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub end: Option<u64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Ranges {
    #[prost(message, repeated, tag = "1")]
    pub range: Vec<Range>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ValueSet {
    #[prost(string, repeated, tag = "1")]
    pub item: Vec<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Text {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Attribute {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(enumeration = "ValueType", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<ValueType, _>",
        deserialize_with = "crate::json::enum_de::<ValueType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub scalar: Option<Scalar>,
    #[prost(message, optional, tag = "4")]
    pub ranges: Option<Ranges>,
    #[prost(message, optional, tag = "6")]
    pub set: Option<ValueSet>,
    #[prost(message, optional, tag = "5")]
    pub text: Option<Text>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct AllocationInfo {
    #[prost(string, optional, tag = "1")]
    pub role: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ReservationInfo {
    #[prost(enumeration = "ReservationType", optional, tag = "4")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<ReservationType, _>",
        deserialize_with = "crate::json::enum_de::<ReservationType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(string, optional, tag = "3")]
    pub role: Option<String>,
    #[prost(string, optional, tag = "1")]
    pub principal: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub labels: Option<Labels>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Persistence {
    #[prost(string, optional, tag = "1")]
    pub id: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub principal: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Volume {
    #[prost(string, optional, tag = "1")]
    pub container_path: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub host_path: Option<String>,
    #[prost(enumeration = "VolumeMode", optional, tag = "3")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<VolumeMode, _>",
        deserialize_with = "crate::json::enum_de::<VolumeMode, _>"
    )]
    pub mode: Option<i32>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct DiskInfo {
    #[prost(message, optional, tag = "1")]
    pub persistence: Option<Persistence>,
    #[prost(message, optional, tag = "2")]
    pub volume: Option<Volume>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct RevocableInfo {}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Resource {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(enumeration = "ValueType", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<ValueType, _>",
        deserialize_with = "crate::json::enum_de::<ValueType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub scalar: Option<Scalar>,
    #[prost(message, optional, tag = "4")]
    pub ranges: Option<Ranges>,
    #[prost(message, optional, tag = "5")]
    pub set: Option<ValueSet>,
    #[prost(string, optional, tag = "6")]
    pub role: Option<String>,
    #[prost(message, optional, tag = "11")]
    pub allocation_info: Option<AllocationInfo>,
    #[prost(message, optional, tag = "8")]
    pub reservation: Option<ReservationInfo>,
    #[prost(message, repeated, tag = "13")]
    pub reservations: Vec<ReservationInfo>,
    #[prost(message, optional, tag = "7")]
    pub disk: Option<DiskInfo>,
    #[prost(message, optional, tag = "9")]
    pub revocable: Option<RevocableInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Capability {
    #[prost(enumeration = "CapabilityType", optional, tag = "1")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<CapabilityType, _>",
        deserialize_with = "crate::json::enum_de::<CapabilityType, _>"
    )]
    pub r#type: Option<i32>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct FrameworkInfo {
    #[prost(string, optional, tag = "1")]
    pub user: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "3")]
    pub id: Option<FrameworkId>,
    #[prost(double, optional, tag = "4")]
    pub failover_timeout: Option<f64>,
    #[prost(bool, optional, tag = "5")]
    pub checkpoint: Option<bool>,
    #[prost(string, optional, tag = "6")]
    pub role: Option<String>,
    #[prost(string, repeated, tag = "12")]
    pub roles: Vec<String>,
    #[prost(string, optional, tag = "7")]
    pub hostname: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub principal: Option<String>,
    #[prost(string, optional, tag = "9")]
    pub webui_url: Option<String>,
    #[prost(message, repeated, tag = "10")]
    pub capabilities: Vec<Capability>,
    #[prost(message, optional, tag = "11")]
    pub labels: Option<Labels>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Address {
    #[prost(string, optional, tag = "1")]
    pub hostname: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub ip: Option<String>,
    #[prost(int32, optional, tag = "3")]
    pub port: Option<i32>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct MasterInfo {
    #[prost(string, optional, tag = "1")]
    pub id: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    pub ip: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub port: Option<u32>,
    #[prost(string, optional, tag = "6")]
    pub pid: Option<String>,
    #[prost(string, optional, tag = "7")]
    pub hostname: Option<String>,
    #[prost(string, optional, tag = "8")]
    pub version: Option<String>,
    #[prost(message, optional, tag = "9")]
    pub address: Option<Address>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct AgentInfo {
    #[prost(string, optional, tag = "1")]
    pub hostname: Option<String>,
    #[prost(int32, optional, tag = "8")]
    pub port: Option<i32>,
    #[prost(message, repeated, tag = "3")]
    pub resources: Vec<Resource>,
    #[prost(message, repeated, tag = "5")]
    pub attributes: Vec<Attribute>,
    #[prost(message, optional, tag = "6")]
    pub id: Option<AgentId>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Uri {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
    #[prost(bool, optional, tag = "2")]
    pub executable: Option<bool>,
    #[prost(bool, optional, tag = "3")]
    pub extract: Option<bool>,
    #[prost(bool, optional, tag = "4")]
    pub cache: Option<bool>,
    #[prost(string, optional, tag = "5")]
    pub output_file: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Variable {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Environment {
    #[prost(message, repeated, tag = "1")]
    pub variables: Vec<Variable>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct CommandInfo {
    #[prost(message, repeated, tag = "1")]
    pub uris: Vec<Uri>,
    #[prost(message, optional, tag = "2")]
    pub environment: Option<Environment>,
    #[prost(bool, optional, tag = "6")]
    pub shell: Option<bool>,
    #[prost(string, optional, tag = "3")]
    pub value: Option<String>,
    #[prost(string, repeated, tag = "7")]
    pub arguments: Vec<String>,
    #[prost(string, optional, tag = "5")]
    pub user: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct DockerInfo {
    #[prost(string, optional, tag = "1")]
    pub image: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Image {}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct MesosInfo {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ContainerInfo {
    #[prost(enumeration = "ContainerType", optional, tag = "1")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<ContainerType, _>",
        deserialize_with = "crate::json::enum_de::<ContainerType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "3")]
    pub docker: Option<DockerInfo>,
    #[prost(message, optional, tag = "5")]
    pub mesos: Option<MesosInfo>,
    #[prost(string, optional, tag = "4")]
    pub hostname: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct KillPolicy {
    #[prost(message, optional, tag = "1")]
    pub grace_period: Option<DurationInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct HttpCheckInfo {
    #[prost(uint32, optional, tag = "1")]
    pub port: Option<u32>,
    #[prost(string, optional, tag = "2")]
    pub path: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TcpCheckInfo {
    #[prost(uint32, optional, tag = "1")]
    pub port: Option<u32>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    #[prost(enumeration = "HealthCheckType", optional, tag = "8")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<HealthCheckType, _>",
        deserialize_with = "crate::json::enum_de::<HealthCheckType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "5")]
    pub command: Option<CommandInfo>,
    #[prost(message, optional, tag = "1")]
    pub http: Option<HttpCheckInfo>,
    #[prost(message, optional, tag = "7")]
    pub tcp: Option<TcpCheckInfo>,
    #[prost(double, optional, tag = "2")]
    pub delay_seconds: Option<f64>,
    #[prost(double, optional, tag = "3")]
    pub interval_seconds: Option<f64>,
    #[prost(double, optional, tag = "4")]
    pub timeout_seconds: Option<f64>,
    #[prost(uint32, optional, tag = "6")]
    pub consecutive_failures: Option<u32>,
    #[prost(double, optional, tag = "10")]
    pub grace_period_seconds: Option<f64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct ExecutorInfo {
    #[prost(enumeration = "ExecutorType", optional, tag = "15")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<ExecutorType, _>",
        deserialize_with = "crate::json::enum_de::<ExecutorType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "1")]
    pub executor_id: Option<ExecutorId>,
    #[prost(message, optional, tag = "8")]
    pub framework_id: Option<FrameworkId>,
    #[prost(message, optional, tag = "7")]
    pub command: Option<CommandInfo>,
    #[prost(message, optional, tag = "11")]
    pub container: Option<ContainerInfo>,
    #[prost(message, repeated, tag = "5")]
    pub resources: Vec<Resource>,
    #[prost(string, optional, tag = "9")]
    pub name: Option<String>,
    #[prost(string, optional, tag = "10")]
    pub source: Option<String>,
    #[prost(bytes = "vec", optional, tag = "4")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "13")]
    pub shutdown_grace_period: Option<DurationInfo>,
    #[prost(message, optional, tag = "14")]
    pub labels: Option<Labels>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TaskInfo {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub task_id: Option<TaskId>,
    #[prost(message, optional, tag = "3")]
    pub agent_id: Option<AgentId>,
    #[prost(message, repeated, tag = "4")]
    pub resources: Vec<Resource>,
    #[prost(message, optional, tag = "5")]
    pub executor: Option<ExecutorInfo>,
    #[prost(message, optional, tag = "7")]
    pub command: Option<CommandInfo>,
    #[prost(message, optional, tag = "9")]
    pub container: Option<ContainerInfo>,
    #[prost(message, optional, tag = "8")]
    pub health_check: Option<HealthCheck>,
    #[prost(message, optional, tag = "12")]
    pub kill_policy: Option<KillPolicy>,
    #[prost(bytes = "vec", optional, tag = "6")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "10")]
    pub labels: Option<Labels>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TaskGroupInfo {
    #[prost(message, repeated, tag = "1")]
    pub tasks: Vec<TaskInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct TaskStatus {
    #[prost(message, optional, tag = "1")]
    pub task_id: Option<TaskId>,
    #[prost(enumeration = "TaskState", optional, tag = "2")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<TaskState, _>",
        deserialize_with = "crate::json::enum_de::<TaskState, _>"
    )]
    pub state: Option<i32>,
    #[prost(string, optional, tag = "4")]
    pub message: Option<String>,
    #[prost(enumeration = "TaskStatusSource", optional, tag = "9")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<TaskStatusSource, _>",
        deserialize_with = "crate::json::enum_de::<TaskStatusSource, _>"
    )]
    pub source: Option<i32>,
    #[prost(enumeration = "TaskStatusReason", optional, tag = "10")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<TaskStatusReason, _>",
        deserialize_with = "crate::json::enum_de::<TaskStatusReason, _>"
    )]
    pub reason: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub data: Option<Vec<u8>>,
    #[prost(message, optional, tag = "5")]
    pub agent_id: Option<AgentId>,
    #[prost(message, optional, tag = "7")]
    pub executor_id: Option<ExecutorId>,
    #[prost(double, optional, tag = "6")]
    pub timestamp: Option<f64>,
    #[prost(bytes = "vec", optional, tag = "11")]
    #[serde(
        serialize_with = "crate::json::bytes_ser",
        deserialize_with = "crate::json::bytes_de"
    )]
    pub uuid: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "8")]
    pub healthy: Option<bool>,
    #[prost(message, optional, tag = "12")]
    pub labels: Option<Labels>,
    #[prost(message, optional, tag = "14")]
    pub unreachable_time: Option<TimeInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Filters {
    #[prost(double, optional, tag = "1")]
    pub refuse_seconds: Option<f64>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Offer {
    #[prost(message, optional, tag = "1")]
    pub id: Option<OfferId>,
    #[prost(message, optional, tag = "2")]
    pub framework_id: Option<FrameworkId>,
    #[prost(message, optional, tag = "3")]
    pub agent_id: Option<AgentId>,
    #[prost(string, optional, tag = "4")]
    pub hostname: Option<String>,
    #[prost(message, optional, tag = "8")]
    pub url: Option<Url>,
    #[prost(message, repeated, tag = "5")]
    pub resources: Vec<Resource>,
    #[prost(message, repeated, tag = "7")]
    pub attributes: Vec<Attribute>,
    #[prost(message, repeated, tag = "6")]
    pub executor_ids: Vec<ExecutorId>,
    #[prost(message, optional, tag = "10")]
    pub allocation_info: Option<AllocationInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Url {
    #[prost(string, optional, tag = "1")]
    pub scheme: Option<String>,
    #[prost(message, optional, tag = "2")]
    pub address: Option<Address>,
    #[prost(string, optional, tag = "3")]
    pub path: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct OperationId {
    #[prost(string, optional, tag = "1")]
    pub value: Option<String>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Launch {
    #[prost(message, repeated, tag = "1")]
    pub task_infos: Vec<TaskInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct LaunchGroup {
    #[prost(message, optional, tag = "1")]
    pub executor: Option<ExecutorInfo>,
    #[prost(message, optional, tag = "2")]
    pub task_group: Option<TaskGroupInfo>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Reserve {
    #[prost(message, repeated, tag = "1")]
    pub resources: Vec<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub source: Vec<Resource>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Unreserve {
    #[prost(message, repeated, tag = "1")]
    pub resources: Vec<Resource>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Create {
    #[prost(message, repeated, tag = "1")]
    pub volumes: Vec<Resource>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Destroy {
    #[prost(message, repeated, tag = "1")]
    pub volumes: Vec<Resource>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Operation {
    #[prost(enumeration = "OperationType", optional, tag = "1")]
    #[serde(
        serialize_with = "crate::json::enum_ser::<OperationType, _>",
        deserialize_with = "crate::json::enum_de::<OperationType, _>"
    )]
    pub r#type: Option<i32>,
    #[prost(message, optional, tag = "12")]
    pub id: Option<OperationId>,
    #[prost(message, optional, tag = "2")]
    pub launch: Option<Launch>,
    #[prost(message, optional, tag = "7")]
    pub launch_group: Option<LaunchGroup>,
    #[prost(message, optional, tag = "3")]
    pub reserve: Option<Reserve>,
    #[prost(message, optional, tag = "4")]
    pub unreserve: Option<Unreserve>,
    #[prost(message, optional, tag = "5")]
    pub create: Option<Create>,
    #[prost(message, optional, tag = "6")]
    pub destroy: Option<Destroy>,
}

#[derive(Clone, PartialEq, ::prost::Message, ::serde::Serialize, ::serde::Deserialize)]
#[serde(default)]
pub struct Request {
    #[prost(message, optional, tag = "1")]
    pub agent_id: Option<AgentId>,
    #[prost(message, repeated, tag = "2")]
    pub resources: Vec<Resource>,
}

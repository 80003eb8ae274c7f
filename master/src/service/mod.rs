//! The service layer: one function per scheduler, agent and operator call. Each checks the
//! caller against the `Gate` (ACLs, framework and agent ownership), validates the input
//! at the edge against every component's limits (`crate::validate`), sends the actor one
//! typed command and returns a typed reply or an [`Error`].
//!
//! gRPC (`crate::grpc`) and HTTP/JSON (`crate::http`), and later the web UI and a Mesos
//! adapter, only translate to and from these functions: they hold no service logic, and a
//! call means the same on every transport.
//!
//! Owns: the order authorize -> validate -> command, and which
//! narrow query answers which read. It must never hold or mutate master state (only the
//! actor does), and never reach into a transport's types.

pub mod agent;
pub mod error;
pub mod leader;
pub mod operator;
pub mod scheduler;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1;
use tokio::sync::oneshot;

pub use error::{Error, LEADER_HEADER, quote};
pub use leader::{Leadership, Role};

use crate::actor::queries::FrameworkLookup;
use crate::actor::{Command, MasterHandle, Query};
use crate::auth::{Caller, Gate};

pub type Result<T> = std::result::Result<T, Error>;

/// A read the actor does not answer within this time is answered `UNAVAILABLE`: a wedged
/// or swamped actor shows up as such instead of holding every reader.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A framework id a call names: the actor's message for an empty one, the edge limits
/// (and a short quote) for the rest.
fn framework_id(id: &str) -> Result<()> {
    if id.is_empty() {
        return Err(Error::invalid("framework_id is empty"));
    }
    crate::validate::id("framework id", id)
}

/// What every call needs: the actor, the security gate and the start-up flags. Cheap to
/// clone; one per master, shared by all transports.
#[derive(Clone)]
pub struct Service {
    handle: MasterHandle,
    gate: Arc<Gate>,
    flags: Arc<HashMap<String, String>>,
    leadership: Leadership,
}

impl Service {
    pub fn new(handle: MasterHandle, gate: Arc<Gate>, flags: HashMap<String, String>) -> Self {
        Self {
            handle,
            gate,
            flags: Arc::new(flags),
            leadership: Leadership::single(),
        }
    }

    /// The same service gated by `leadership` (a master in an etcd-elected group).
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    pub fn handle(&self) -> &MasterHandle {
        &self.handle
    }

    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }

    /// Send a command whose handler answers `Result<T, Error>` and await it.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<std::result::Result<T, Error>>) -> Command,
    ) -> Result<T> {
        self.leadership.require()?;
        self.handle.ask(make).await?
    }

    /// Send a read and await it within `READ_TIMEOUT`.
    async fn read<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        self.leadership.require()?;
        match tokio::time::timeout(READ_TIMEOUT, self.handle.ask(make)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(Error::unavailable(format!(
                "the master did not answer within {} s",
                READ_TIMEOUT.as_secs()
            ))),
        }
    }

    /// A narrow query (`actor/queries.rs`).
    async fn query<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Query) -> Result<T> {
        self.read(|reply| Command::Query(make(reply))).await
    }

    /// What the master knows of framework `id`.
    pub async fn framework_lookup(&self, id: &str) -> Result<FrameworkLookup> {
        let id = id.to_string();
        self.query(|reply| Query::Framework {
            id,
            with_state: true,
            reply,
        })
        .await
    }

    /// Whether framework `id` is known, subscribed or torn down, without its state (which
    /// costs `O(its tasks)` on the actor).
    async fn framework_standing(&self, id: &str) -> Result<FrameworkLookup> {
        let id = id.to_string();
        self.query(|reply| Query::Framework {
            id,
            with_state: false,
            reply,
        })
        .await
    }

    /// The framework must be known and subscribed: the whole call is refused otherwise,
    /// with the answers every single call gives (`NOT_FOUND`, `FAILED_PRECONDITION`).
    async fn require_connected(&self, id: &str) -> Result<()> {
        framework_id(id)?;
        let f = self.framework_standing(id).await?;
        match (f.known, f.connected) {
            (_, true) => Ok(()),
            (false, false) if f.torn_down => Err(Error::FailedPrecondition(format!(
                "framework '{id}' was torn down"
            ))),
            (false, false) => Err(Error::not_found(format!("unknown framework id '{id}'"))),
            (true, false) => Err(Error::FailedPrecondition(format!(
                "framework '{id}' is not subscribed; subscribe first"
            ))),
        }
    }

    /// The part of `frameworks` (and, given, of `tasks` and `roles`' framework lists) that
    /// `caller` may view: the gate's one state filter applied to a partial state.
    fn visible(
        &self,
        caller: &Caller,
        frameworks: Vec<v1::FrameworkState>,
        tasks: Vec<v1::TaskRecord>,
        roles: Vec<v1::RoleState>,
    ) -> v1::ClusterState {
        self.gate.filter_state(
            caller,
            v1::ClusterState {
                frameworks,
                tasks,
                roles,
                ..Default::default()
            },
        )
    }
}

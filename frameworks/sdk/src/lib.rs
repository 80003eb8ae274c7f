//! Agora scheduler SDK: what a framework links to talk to the master.
//!
//! - [`Scheduler`]: the callbacks a framework implements (generic async, no `dyn`).
//! - [`Driver`] / [`run`]: subscribes to the first reachable master of a list, dispatches
//!   events in order, acknowledges status updates after their callback (a burst of them
//!   in one `AcknowledgeBatch` call), reconnects with
//!   bounded exponential backoff and re-subscribes as the same framework. The `Driver`
//!   handle (cheap to clone) makes every scheduler call: accept/launch (`accept_batch` for
//!   many agents at once), decline, revive,
//!   suppress, kill, shutdown, acknowledge, reconcile, message, update_framework, teardown,
//!   and `stop`.
//! - [`task`]: building `TaskInfo`s from a shell string or an argv plus resources.
//! - [`offer`]: reading offers and taking task shapes out of them.
//! - [`placement`]: ports out of offers (`PORT0`..), an offer's hostname and attributes,
//!   and Marathon-style attribute constraints (UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE,
//!   MAX_PER, IS).
//! - [`failover`]: persist and reuse the framework id ([`FrameworkIdStore`]) and reconcile
//!   after every (re-)subscription ([`run_failover`]).
//! - [`connect`]: secured masters: [`DriverConfig::credential`] is sent on every call
//!   (`authorization: Basic ...`), [`DriverConfig::tls`] verifies `https://` masters (and
//!   presents a client certificate for mutual TLS).
//!
//! The SDK owns the client side of `proto/agora/v1/scheduler.proto` and nothing else: it
//! must never make scheduling decisions for the framework, never hide a master error, and
//! never panic on what the network sends.
//!
//! ```no_run
//! use agora_sdk::proto::{FrameworkInfo, Offer, TaskStatus};
//! use agora_sdk::{Driver, Scheduler, TaskBuilder, cpus_mem, offer_resources, take};
//!
//! struct Hello {
//!     launched: bool,
//! }
//!
//! impl Scheduler for Hello {
//!     async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
//!         let Ok(shape) = cpus_mem(0.1, 32.0) else { return };
//!         for offer in offers {
//!             let mut available = offer_resources(&offer).unwrap_or_default();
//!             match take(&mut available, &shape) {
//!                 Some(resources) if !self.launched => {
//!                     let task = TaskBuilder::shell("echo hello")
//!                         .resources(resources)
//!                         .build("hello", offer.agent_id.clone());
//!                     self.launched = driver.launch(offer.id, vec![task], None).await.is_ok();
//!                 }
//!                 _ => {
//!                     let _ = driver.decline(vec![offer.id], Some(3600.0)).await;
//!                 }
//!             }
//!         }
//!     }
//!
//!     async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
//!         println!("{} {}", status.task_id, status.state().as_str_name());
//!         if status.state().is_terminal() {
//!             let _ = driver.teardown().await;
//!         }
//!     }
//! }
//!
//! # async fn example() -> Result<(), agora_sdk::SdkError> {
//! let info = FrameworkInfo { name: "hello".into(), ..Default::default() };
//! let finished = agora_sdk::run(vec!["127.0.0.1:5050".into()], info, Hello { launched: false }).await?;
//! println!("stopped: {:?}", finished.reason);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod connect;
mod driver;
mod error;
pub mod failover;
pub mod offer;
pub mod placement;
mod scheduler;
mod session;
pub mod task;

pub use connect::{Credential, TlsOptions};
pub use driver::{
    AcceptItem, Driver, DriverConfig, Finished, MAX_ACCEPTS_PER_CALL, MAX_LEADER_REDIRECTS,
    StopReason, run,
};
pub use error::SdkError;
pub use failover::{FileIdStore, FrameworkIdStore, Reconciling, run_failover};
pub use offer::{cpus_mem, fits, offer_resources, pick, take, take_many};
pub use scheduler::{Scheduler, Subscribed};
pub use session::{LEADER_METADATA, leader_named_by};

/// Turn a master address as operators write it (`host:port`, `http://host:port`,
/// `https://host:port`) into the URI a gRPC client connects to (`http://host:port`, or
/// `https://host:port` kept as is).
pub fn master_uri(address: &str) -> Result<String, SdkError> {
    session::normalize_address(address).map_err(|reason| SdkError::InvalidAddress {
        address: address.to_string(),
        reason,
    })
}
pub use task::{TaskBuilder, argv_task, shell_task};

/// The wire types (`agora_proto::v1`), re-exported so a framework needs no other import.
pub use agora_proto::v1 as proto;
/// The resource model, re-exported.
pub use agora_resources as resources;
pub use agora_resources::Resources;

//! Agora scheduler SDK: what a framework links to talk to the master.
//!
//! - [`Scheduler`]: the callbacks a framework implements (generic async, no `dyn`).
//! - [`Driver`] / [`run`]: subscribes to the first reachable master of a list, dispatches
//!   events in order, acknowledges status updates after their callback, reconnects with
//!   bounded exponential backoff and re-subscribes as the same framework. The `Driver`
//!   handle (cheap to clone) makes every scheduler call: accept/launch, decline, revive,
//!   suppress, kill, shutdown, acknowledge, reconcile, message, update_framework, teardown,
//!   and `stop`.
//! - [`task`]: building `TaskInfo`s from a shell string or an argv plus resources.
//! - [`offer`]: reading offers and taking task shapes out of them.
//!
//! The SDK owns the client side of `proto/agora/v1/scheduler.proto` and nothing else: it
//! must never make scheduling decisions for the framework, never hide a master error, and
//! never panic on what the network sends.
//!
//! ```ignore
//! struct Hello { launched: bool }
//!
//! impl Scheduler for Hello {
//!     async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
//!         for offer in offers {
//!             let Ok(mut available) = offer_resources(&offer) else { continue };
//!             let shape = cpus_mem(0.1, 32.0).expect("valid shape");
//!             match (self.launched, take(&mut available, &shape)) {
//!                 (false, Some(resources)) => {
//!                     let task = TaskBuilder::shell("echo hello").resources(resources)
//!                         .build("hello", &offer.agent_id);
//!                     self.launched = driver.launch(offer.id, vec![task], None).await.is_ok();
//!                 }
//!                 _ => { let _ = driver.decline(vec![offer.id], Some(3600.0)).await; }
//!             }
//!         }
//!     }
//!     async fn status_update(&mut self, driver: &Driver, status: TaskStatus) {
//!         if status.state().is_terminal() { driver.stop(); }
//!     }
//! }
//!
//! let finished = agora_sdk::run(vec!["127.0.0.1:5050".into()], info, Hello { launched: false }).await?;
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod driver;
mod error;
pub mod offer;
mod scheduler;
mod session;
pub mod task;

pub use driver::{Driver, DriverConfig, Finished, StopReason, run};
pub use error::SdkError;
pub use offer::{cpus_mem, fits, offer_resources, pick, take, take_many};
pub use scheduler::{Scheduler, Subscribed};
pub use task::{TaskBuilder, argv_task, shell_task};

/// The wire types (`agora_proto::v1`), re-exported so a framework needs no other import.
pub use agora_proto::v1 as proto;
/// The resource model, re-exported.
pub use agora_resources as resources;
pub use agora_resources::Resources;

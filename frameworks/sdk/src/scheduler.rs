//! The [`Scheduler`] trait: the callbacks a framework implements.
//!
//! Owns only the callback surface. It must never do I/O itself; the driver calls these
//! methods one at a time, in event order, and a callback talks to the master only through
//! the [`Driver`] handle it is given.
//!
//! # Shape
//!
//! Every callback takes `&mut self` (the driver owns the scheduler and never calls two
//! callbacks at once, so scheduler state needs no locks) and returns
//! `impl Future<Output = ()> + Send`. That is plain generic async — no `dyn`, no boxing, no
//! `async_trait` — and an implementation simply writes `async fn`:
//!
//! ```no_run
//! # use agora_sdk::{Driver, Scheduler};
//! # use agora_sdk::proto::{Offer, TaskStatus};
//! # struct MyScheduler;
//! impl Scheduler for MyScheduler {
//!     async fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) {
//!         let ids = offers.into_iter().map(|o| o.id).collect();
//!         let _ = driver.decline(ids, Some(60.0)).await;
//!     }
//!     async fn status_update(&mut self, _driver: &Driver, status: TaskStatus) {
//!         println!("{} is {:?}", status.task_id, status.state());
//!     }
//! }
//! ```
//!
//! The returned futures must be `Send` (so `run` can be spawned on a multi-threaded
//! runtime); the compiler checks that at the `impl`. `offers` and `status_update` are
//! required: a framework that ignores offers would hoard them, and one that ignores status
//! updates cannot know what it runs. Every other callback has a no-op default.
//!
//! A callback that blocks for long delays every later event (and the acknowledgement of
//! the update it is handling); spawn long work and keep callbacks short.

use std::future::Future;
use std::time::Duration;

use agora_proto::v1::{Offer, TaskStatus};

use crate::driver::Driver;

/// What the master said when it accepted a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribed {
    /// The framework's id. Equal to the id the driver re-subscribed with, after a failover.
    pub framework_id: String,
    /// The master that accepted the subscription.
    pub master_id: String,
    /// The address (as given to the driver) of that master.
    pub master_address: String,
    /// How often the master sends heartbeats; zero if it sends none.
    pub heartbeat_interval: Duration,
    /// `true` when this is a re-subscription of an already registered framework (after a
    /// lost connection, or because `FrameworkInfo::id` was set).
    pub resubscribed: bool,
}

/// The callbacks of a framework scheduler. See the [module documentation](self).
pub trait Scheduler: Send {
    /// The master accepted the subscription (first time, or again after a reconnection).
    /// A good place to reconcile tasks after `resubscribed`.
    fn subscribed(&mut self, driver: &Driver, info: Subscribed) -> impl Future<Output = ()> + Send {
        let _ = (driver, info);
        async {}
    }

    /// New offers. Each stays outstanding until accepted, declined or rescinded: a scheduler
    /// should answer every offer, declining what it does not need.
    fn offers(&mut self, driver: &Driver, offers: Vec<Offer>) -> impl Future<Output = ()> + Send;

    /// An offer is no longer valid (agent gone, resources needed elsewhere, ...).
    fn rescinded(
        &mut self,
        driver: &Driver,
        offer_id: String,
        reason: String,
    ) -> impl Future<Output = ()> + Send {
        let _ = (driver, offer_id, reason);
        async {}
    }

    /// A task changed state. The driver acknowledges the update (when it carries a uuid)
    /// after this callback returns, so an update is never lost to a crash mid-callback.
    fn status_update(
        &mut self,
        driver: &Driver,
        status: TaskStatus,
    ) -> impl Future<Output = ()> + Send;

    /// The driver is about to acknowledge the status updates of the events just
    /// dispatched (a burst of updates is acknowledged in one call, after its last
    /// callback). Once acknowledged, an update is gone from the agent: a scheduler that
    /// defers making updates durable past [`status_update`](Self::status_update) (to write
    /// a burst in one transaction) must finish that here; one that cannot stops the
    /// driver ([`Driver::stop`]) here, and the updates are not acknowledged (the agent
    /// sends them again to the next subscription). Called only when there is something to
    /// acknowledge.
    fn before_acknowledge(&mut self, driver: &Driver) -> impl Future<Output = ()> + Send {
        let _ = driver;
        async {}
    }

    /// Opaque bytes from an executor.
    fn message(
        &mut self,
        driver: &Driver,
        agent_id: String,
        executor_id: String,
        data: Vec<u8>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (driver, agent_id, executor_id, data);
        async {}
    }

    /// An agent was removed (`executor_id` empty) or an executor terminated.
    fn failure(
        &mut self,
        driver: &Driver,
        agent_id: String,
        executor_id: String,
        exit_code: Option<i32>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (driver, agent_id, executor_id, exit_code);
        async {}
    }

    /// The master ended the subscription with an error (torn down, replaced by a newer
    /// subscription of the same framework, ...). The driver stops after this callback and
    /// `run` returns [`StopReason::MasterError`](crate::StopReason::MasterError).
    fn error(&mut self, driver: &Driver, message: String) -> impl Future<Output = ()> + Send {
        let _ = (driver, message);
        async {}
    }

    /// The connection to the master was lost. Calls fail with
    /// [`SdkError::NotSubscribed`](crate::SdkError::NotSubscribed) until `subscribed` is
    /// called again; offers received before are void.
    fn disconnected(&mut self, driver: &Driver) -> impl Future<Output = ()> + Send {
        let _ = driver;
        async {}
    }
}

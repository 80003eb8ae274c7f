//! The [`Executor`] trait: the callbacks a custom executor implements.
//!
//! Owns only the callback surface. It must never do I/O itself; the driver calls these
//! methods one at a time, in event order, and a callback talks to the agent only through
//! the [`ExecutorHandle`] it is given. Like the scheduler SDK, callbacks are plain generic
//! async (`impl Future + Send`): an implementation writes `async fn`.
//!
//! A callback that blocks delays every later event; spawn long work (a task's process)
//! and keep callbacks short.

use std::future::Future;
use std::time::Duration;

use agora_proto::v1::{
    AgentInfo, ExecutorInfo, FrameworkInfo, KillPolicy, TaskGroupInfo, TaskInfo,
};

use crate::driver::ExecutorHandle;

/// What the agent said when it accepted the subscription.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subscribed {
    /// This executor.
    pub executor: ExecutorInfo,
    /// Its framework.
    pub framework: FrameworkInfo,
    /// The agent.
    pub agent: AgentInfo,
    /// `true` after a reconnection (e.g. the agent restarted).
    pub resubscribed: bool,
}

/// The callbacks of a custom executor.
pub trait Executor: Send + 'static {
    /// The agent accepted the (re-)subscription.
    fn registered(
        &mut self,
        handle: &ExecutorHandle,
        subscribed: Subscribed,
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, subscribed);
        async {}
    }

    /// Run this task; report its states with [`ExecutorHandle::update`].
    fn launch_task(
        &mut self,
        handle: &ExecutorHandle,
        task: TaskInfo,
    ) -> impl Future<Output = ()> + Send;

    /// Run these tasks together. The default launches each one with
    /// [`Executor::launch_task`]; executors with group semantics override it.
    fn launch_group(
        &mut self,
        handle: &ExecutorHandle,
        group: TaskGroupInfo,
    ) -> impl Future<Output = ()> + Send {
        async move {
            for task in group.tasks {
                self.launch_task(handle, task).await;
            }
        }
    }

    /// Kill this task (report KILLED once it is gone).
    fn kill_task(
        &mut self,
        handle: &ExecutorHandle,
        task_id: String,
        kill_policy: Option<KillPolicy>,
    ) -> impl Future<Output = ()> + Send;

    /// The framework acknowledged an update (the driver already forgot it).
    fn acknowledged(
        &mut self,
        handle: &ExecutorHandle,
        task_id: String,
        uuid: String,
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, task_id, uuid);
        async {}
    }

    /// A message from the framework.
    fn message(
        &mut self,
        handle: &ExecutorHandle,
        data: Vec<u8>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, data);
        async {}
    }

    /// The agent asks the executor to end its tasks and exit within `grace`. The driver
    /// returns once this callback returns.
    fn shutdown(
        &mut self,
        handle: &ExecutorHandle,
        grace: Duration,
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, grace);
        async {}
    }

    /// The agent reported an error.
    fn error(
        &mut self,
        handle: &ExecutorHandle,
        message: String,
    ) -> impl Future<Output = ()> + Send {
        let _ = (handle, message);
        async {}
    }
}

//! gRPC front ends of the master: they translate calls into actor commands and replies
//! into responses. They hold no state of their own beyond a `MasterHandle`, and must never
//! decide anything the actor should decide.

pub mod agent;
pub mod operator;
pub mod scheduler;

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;
use tonic::Status;

use crate::actor::{Command, MasterHandle};

/// Most items in one batched call (`UpdateStatuses`, `AcknowledgeBatch`, `AcceptBatch`):
/// one call is one actor command, and a command must stay short so others are not held
/// up behind it.
pub const MAX_BATCH: usize = 10_000;

/// Check a batch's size and that every item names the batch's owner or nobody (then it is
/// filled in): `what` names the items, `owner` the field ("agent id", "framework id").
pub fn check_batch<T>(
    what: &str,
    owner_kind: &str,
    owner: &str,
    items: &mut [T],
    field: impl Fn(&mut T) -> &mut String,
) -> Result<(), Status> {
    if items.len() > MAX_BATCH {
        return Err(Status::invalid_argument(format!(
            "{} {what} in one call; at most {MAX_BATCH}",
            items.len()
        )));
    }
    for (i, item) in items.iter_mut().enumerate() {
        let f = field(item);
        if f.is_empty() {
            f.push_str(owner);
        } else if f != owner {
            return Err(Status::invalid_argument(format!(
                "{what} #{i} names {owner_kind} '{f}', not the batch's '{owner}'"
            )));
        }
    }
    Ok(())
}

/// A response stream that tells the actor when the peer goes away (tonic drops the stream
/// when the client disconnects), so the actor can mark the framework or agent disconnected.
pub struct ClosingStream<T> {
    rx: Source<T>,
    on_close: Option<(MasterHandle, Command)>,
}

/// Where the items come from: a queue of items, or of boxed items (see `boxed`).
enum Source<T> {
    Plain(mpsc::Receiver<Result<T, Status>>),
    Boxed(mpsc::Receiver<Result<Box<T>, Status>>),
}

impl<T> ClosingStream<T> {
    pub fn new(
        rx: mpsc::Receiver<Result<T, Status>>,
        handle: MasterHandle,
        on_close: Command,
    ) -> Self {
        Self {
            rx: Source::Plain(rx),
            on_close: Some((handle, on_close)),
        }
    }

    /// For queues of boxed items. A bounded tokio queue allocates its slots 32 at a time
    /// when it is created, each the size of the item; a peer queue per agent of 944-byte
    /// `AgentCommand`s cost 30 KiB of address space per agent, touched as commands pass.
    pub fn boxed(
        rx: mpsc::Receiver<Result<Box<T>, Status>>,
        handle: MasterHandle,
        on_close: Command,
    ) -> Self {
        Self {
            rx: Source::Boxed(rx),
            on_close: Some((handle, on_close)),
        }
    }
}

impl<T> Stream for ClosingStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.rx {
            Source::Plain(rx) => rx.poll_recv(cx),
            Source::Boxed(rx) => rx.poll_recv(cx).map(|item| item.map(|r| r.map(|b| *b))),
        }
    }
}

impl<T> Drop for ClosingStream<T> {
    fn drop(&mut self) {
        if let Some((handle, cmd)) = self.on_close.take() {
            handle.notify(cmd);
        }
    }
}

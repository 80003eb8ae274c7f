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

/// A response stream that tells the actor when the peer goes away (tonic drops the stream
/// when the client disconnects), so the actor can mark the framework or agent disconnected.
pub struct ClosingStream<T> {
    rx: mpsc::Receiver<Result<T, Status>>,
    on_close: Option<(MasterHandle, Command)>,
}

impl<T> ClosingStream<T> {
    pub fn new(
        rx: mpsc::Receiver<Result<T, Status>>,
        handle: MasterHandle,
        on_close: Command,
    ) -> Self {
        Self {
            rx,
            on_close: Some((handle, on_close)),
        }
    }
}

impl<T> Stream for ClosingStream<T> {
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> Drop for ClosingStream<T> {
    fn drop(&mut self) {
        if let Some((handle, cmd)) = self.on_close.take() {
            handle.notify(cmd);
        }
    }
}

//! `agora run`: a built-in framework that launches N copies of a command, streams their
//! state changes, and reports whether every copy finished.
//!
//! `plan` holds the decisions as pure, tested functions; `framework` wires them to the SDK
//! driver, the clock and the terminal. This module must never bypass the SDK to talk to
//! the master.

pub mod framework;
pub mod plan;

pub use framework::execute;

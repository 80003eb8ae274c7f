//! Life cycles of the objects the master tracks, each an explicit enum with one transition
//! function. These modules hold rules only: they never touch channels, clocks or I/O.

pub mod agent;
pub mod framework;
pub mod offer;
pub mod task;

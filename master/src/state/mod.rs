//! Life cycles of the objects the master tracks, each an explicit enum with one transition
//! function, and (`stored`) the compact forms the actor keeps them in. These modules hold
//! rules and representations only: they never touch channels, clocks or I/O.

pub mod agent;
pub mod framework;
pub mod offer;
pub mod stored;
pub mod task;

//! The allocator seam: the `Allocator` trait every policy implements, the events it is
//! driven by, and the factory that picks a policy by name.
//!
//! An allocator is pure: it never does I/O, never reads a clock (time arrives as an
//! argument), never spawns tasks, and draws randomness only from a seeded RNG. It holds its
//! own book of what is allocated where; the master keeps it in step by sending every event.
//! Offered resources count as allocated until they are recovered.

mod drf;

pub use drf::DrfAllocator;

use agora_resources::Resources;
use thiserror::Error;

use crate::clock::Millis;

/// What the allocator needs to know about a framework.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FrameworkSpec {
    pub roles: Vec<String>,
    /// Declared REVOCABLE_RESOURCES: may be offered revocable resources.
    pub revocable: bool,
    /// Declared GPU_RESOURCES: may be offered gpus.
    pub gpus: bool,
    /// Alternatives of minimum offer size; empty means the allocator's default.
    pub min_allocatable: Vec<Resources>,
}

/// One decision: offer `resources` on `agent` to `framework` under `role`.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    pub framework: String,
    pub agent: String,
    pub role: String,
    pub resources: Resources,
}

/// A role's standing, for state endpoints and metrics.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleShare {
    pub role: String,
    pub weight: f64,
    pub dominant_share: f64,
    pub allocated: Resources,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum AllocatorError {
    #[error("unknown agent '{0}'")]
    UnknownAgent(String),
    #[error("agent '{0}' is already known")]
    DuplicateAgent(String),
    #[error("unknown framework '{0}'")]
    UnknownFramework(String),
    #[error("framework '{0}' is already known")]
    DuplicateFramework(String),
    #[error("framework '{framework}' is not subscribed to role '{role}'")]
    RoleNotSubscribed { framework: String, role: String },
    #[error("invalid weight {weight} for role '{role}': weights must be finite and > 0")]
    InvalidWeight { role: String, weight: f64 },
    #[error("resource accounting on agent '{agent}': {reason}")]
    Accounting { agent: String, reason: String },
    #[error("unknown allocator policy '{0}' (known: drf)")]
    UnknownPolicy(String),
}

/// An allocation policy, driven by events and asked for offers.
///
/// Implementations must stay deterministic for a given seed and event sequence.
pub trait Allocator: Send {
    fn policy(&self) -> &'static str;

    fn add_agent(&mut self, agent: &str, total: Resources) -> Result<(), AllocatorError>;
    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError>;

    fn add_framework(&mut self, framework: &str, spec: FrameworkSpec)
    -> Result<(), AllocatorError>;
    fn update_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError>;
    /// Forget a framework. Its allocations must have been recovered first.
    fn remove_framework(&mut self, framework: &str) -> Result<(), AllocatorError>;
    /// Inactive frameworks (disconnected) keep their allocations but get no offers.
    fn set_framework_active(&mut self, framework: &str, active: bool)
    -> Result<(), AllocatorError>;

    /// Account resources already in use (tasks a re-registering agent reports).
    fn add_allocated(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
    ) -> Result<(), AllocatorError>;

    /// Return allocated resources. With `refuse_until`, the framework is not offered the same
    /// (or fewer) resources on that agent before then.
    fn recover(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Option<Millis>,
    ) -> Result<(), AllocatorError>;

    /// Stop offers to the framework's `roles` (all its roles when empty).
    fn suppress(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError>;
    /// Clear the framework's filters and un-suppress `roles` (all when empty).
    fn revive(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError>;

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError>;
    fn weights(&self) -> Vec<(String, f64)>;

    /// Decide offers for everything allocatable at `now`.
    fn allocate(&mut self, now: Millis) -> Vec<Allocation>;

    fn role_shares(&self) -> Vec<RoleShare>;
}

/// Configuration common to policies.
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    pub seed: u64,
    /// Resource names left out of dominant-share computation.
    pub excluded_from_shares: Vec<String>,
    /// Default minimum allocatable alternatives (any one suffices).
    pub min_allocatable: Vec<Resources>,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        let mut min = Vec::new();
        // These literals are known-good; a parse failure here would be a bug in the resource
        // crate, and an empty alternative list then simply means "no minimum".
        for text in ["cpus:0.01", "mem:32"] {
            if let Ok(r) = Resources::parse(text) {
                min.push(r);
            }
        }
        Self {
            seed: 0,
            excluded_from_shares: vec!["gpus".to_string()],
            min_allocatable: min,
        }
    }
}

/// Build a policy by the name the master's configuration gives.
pub fn by_name(name: &str, config: AllocatorConfig) -> Result<Box<dyn Allocator>, AllocatorError> {
    match name {
        "drf" => Ok(Box::new(DrfAllocator::new(config))),
        other => Err(AllocatorError::UnknownPolicy(other.to_string())),
    }
}

//! Agora's allocator: the `Allocator` trait every policy implements, the events it is
//! driven by, the types it answers with, the factory that picks a policy by name, and the
//! "drf" policy ([`DrfAllocator`]).
//!
//! Owns: the policy-independent vocabulary (framework specs with demands and offer
//! constraints, quotas, allocations, role shares, explanations), `by_name`, and each
//! policy's own book of what is allocated where. The master keeps the book in step by
//! sending every event; offered resources count as allocated until they are recovered.
//!
//! **Invariant: pure and deterministic.** Nothing here does I/O, reads a clock (time
//! arrives as an argument, [`Millis`]), spawns threads or tasks, or draws randomness other
//! than from the seeded RNG: for one seed and one event sequence the answers are always
//! the same. Cargo keeps most of that: the crate depends on `agora-resources`, `rand`,
//! `regex`, `serde` and `thiserror` only, so no async runtime or I/O crate can be named.
//! What `std` itself still offers (clock, files, sockets, threads, processes, environment,
//! OS entropy) is kept out by the `purity` test.
//!
//! The "drf" policy's exact semantics (hierarchical weighted DRF, reservations, quota,
//! filters, holds and gangs) are documented in `drf/mod.rs` and in `docs/allocator.md`.

#![forbid(unsafe_code)]

mod constraints;
mod drf;
mod kinds;
#[cfg(test)]
mod purity;
pub mod reclaim;
#[cfg(test)]
mod tests;
mod tree;

pub use constraints::{AttributeConstraint, Predicate, RoleConstraints};
pub use drf::DrfAllocator;

use agora_resources::{Attributes, Resources};
use serde::Serialize;
use thiserror::Error;

/// Milliseconds since the Unix epoch: the allocator's only notion of time, always an
/// argument (the master's `Clock` supplies it).
pub type Millis = u64;

/// What a framework needs at once (proto `Demand`): `count` tasks of `shape` under
/// `role`, all on one agent when `same_agent`, otherwise possibly across agents, in which
/// case the framework is offered all of it in one cycle or nothing (a gang).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Demand {
    /// Empty: the framework's first role.
    pub role: String,
    /// Resources of one task.
    pub shape: Resources,
    /// Tasks wanted at once; 0 and 1 both mean one.
    pub count: u32,
    pub same_agent: bool,
}

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
    /// Per role, the agents it may be offered (by attributes); a role not listed is
    /// unconstrained.
    pub offer_constraints: Vec<RoleConstraints>,
    /// Shapes the framework needs at once (starvation, fragmentation, gangs).
    pub demands: Vec<Demand>,
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

/// A role's standing as the metrics show it: [`RoleShare`] with the scalar amounts only,
/// cheap enough for every `/metrics` scrape.
#[derive(Clone, Debug, PartialEq)]
pub struct RoleGauge {
    pub role: String,
    pub weight: f64,
    pub dominant_share: f64,
    /// (name, thousandths) of every scalar kind allocated (offered or used) to the role's
    /// own frameworks, by name; kinds with nothing allocated are left out.
    pub allocated: Vec<(String, u64)>,
}

impl RoleGauge {
    /// The gauge of a role share (what [`Allocator::role_gauges`] must equal).
    pub fn of(share: RoleShare) -> RoleGauge {
        let mut allocated = Vec::new();
        for name in share.allocated.names() {
            let t = share.allocated.scalar(name).thousandths();
            if t > 0 {
                allocated.push((name.to_string(), t));
            }
        }
        RoleGauge {
            role: share.role,
            weight: share.weight,
            dominant_share: share.dominant_share,
            allocated,
        }
    }
}

/// A role's quota as set by the operator, with what the role consumes now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaStatus {
    pub role: String,
    /// Scalars the role gets even above its fair share.
    pub guarantee: Resources,
    /// Scalars the role never exceeds; `None` = no limit.
    pub limit: Option<Resources>,
    /// Allocated (offered or used) plus unallocated reservations of the role's subtree.
    pub consumed: Resources,
}

/// What to explain: a role or a framework.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExplainTarget {
    Role(String),
    Framework(String),
}

/// One active decline filter.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FilterInfo {
    pub agent: String,
    pub role: String,
    pub refused: Resources,
    /// Milliseconds since the epoch at which the filter expires.
    pub until_ms: Millis,
}

/// Resources held back on an agent for a demanding framework.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HoldInfo {
    pub agent: String,
    pub framework: String,
    pub role: String,
    /// What the hold waits for on this agent (the demand's shape, times count when
    /// `same_agent`).
    pub needed: Resources,
    /// What is free on the agent for the framework now.
    pub free_now: Resources,
    pub since_ms: Millis,
    /// The hold is dropped at this time at the latest.
    pub expires_ms: Millis,
}

/// Quota standing of a role.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuotaExplain {
    pub guarantee: Resources,
    pub limit: Option<Resources>,
    pub consumed: Resources,
    /// Guarantee not yet consumed (what the allocator still owes the role).
    pub unmet_guarantee: Resources,
    /// How much more the role may consume before its limit; `None` = unlimited.
    pub headroom_to_limit: Option<Resources>,
    /// Every limited kind is reached: the role is offered nothing unreserved.
    pub at_limit: bool,
}

/// Why a role or a framework is or is not getting offers.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RoleExplain {
    pub role: String,
    pub weight: f64,
    /// Largest fraction of any counted resource kind the role's subtree consumes.
    pub dominant_share: f64,
    /// `dominant_share / weight`: the sort key (lower is offered first).
    pub weighted_share: f64,
    pub allocated: Resources,
    /// Reservations for the role's subtree (allocated or not).
    pub reserved: Resources,
    pub quota: Option<QuotaExplain>,
    /// Frameworks subscribed to the role that may receive offers now.
    pub eligible_frameworks: usize,
    pub suppressed_frameworks: usize,
}

/// Per role of a framework.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameworkRoleExplain {
    pub role: String,
    /// The framework's own dominant share under this role.
    pub dominant_share: f64,
    pub allocated: Resources,
    pub suppressed: bool,
    /// Subscribed (a role dropped by an update keeps its allocation but gets no offers).
    pub subscribed: bool,
    /// Active filters, at most `EXPLAIN_LIST_MAX`; `filters_total` counts all.
    pub filters: Vec<FilterInfo>,
    pub filters_total: usize,
    /// Agents whose attributes fail the role's offer constraints (at most
    /// `EXPLAIN_LIST_MAX`); `constraint_mismatches_total` counts all.
    pub constraint_mismatches: Vec<String>,
    pub constraint_mismatches_total: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FrameworkExplain {
    pub framework: String,
    pub active: bool,
    pub capabilities: Vec<&'static str>,
    pub min_allocatable: Vec<Resources>,
    pub roles: Vec<FrameworkRoleExplain>,
    pub demands: Vec<DemandExplain>,
    pub holds: Vec<HoldInfo>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DemandExplain {
    pub role: String,
    pub shape: Resources,
    pub count: u32,
    pub same_agent: bool,
}

/// The answer of [`Allocator::explain`], serialised as JSON by the master.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Explanation {
    /// `"role"` or `"framework"`.
    pub kind: &'static str,
    pub at_ms: Millis,
    /// Present for a role target, and for each role of a framework target.
    pub roles: Vec<RoleExplain>,
    pub framework: Option<FrameworkExplain>,
    /// Held resources that concern the target (holds for it, or inside the role).
    pub holds: Vec<HoldInfo>,
    /// Plain-language reasons, most important first (e.g. "suppressed", "at quota
    /// limit", "filtered on 12 agents").
    pub reasons: Vec<String>,
}

/// Longest list an explanation carries (filters, mismatching agents).
pub const EXPLAIN_LIST_MAX: usize = 50;

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
    #[error("unknown role '{0}'")]
    UnknownRole(String),
    #[error("framework '{framework}' is not subscribed to role '{role}'")]
    RoleNotSubscribed { framework: String, role: String },
    #[error("invalid weight {weight} for role '{role}': weights must be finite and > 0")]
    InvalidWeight { role: String, weight: f64 },
    #[error("invalid role '{role}': {reason}")]
    InvalidRole { role: String, reason: String },
    #[error("invalid quota for role '{role}': {reason}")]
    InvalidQuota { role: String, reason: String },
    #[error("invalid offer constraint of framework '{framework}': {reason}")]
    InvalidConstraint { framework: String, reason: String },
    #[error("resource accounting on agent '{agent}': {reason}")]
    Accounting { agent: String, reason: String },
    #[error("unknown allocator policy '{0}' (known: drf)")]
    UnknownPolicy(String),
    #[error("the '{policy}' policy does not support {what}")]
    Unsupported {
        policy: &'static str,
        what: &'static str,
    },
}

/// An allocation policy, driven by events and asked for offers.
///
/// Implementations must stay deterministic for a given seed and event sequence.
pub trait Allocator: Send {
    fn policy(&self) -> &'static str;

    fn add_agent(&mut self, agent: &str, total: Resources) -> Result<(), AllocatorError>;
    /// `add_agent` with the agent's attributes, which offer constraints match against.
    fn add_agent_with_attributes(
        &mut self,
        agent: &str,
        total: Resources,
        attributes: Attributes,
    ) -> Result<(), AllocatorError> {
        let _ = attributes;
        self.add_agent(agent, total)
    }
    fn remove_agent(&mut self, agent: &str) -> Result<(), AllocatorError>;

    fn add_framework(&mut self, framework: &str, spec: FrameworkSpec)
    -> Result<(), AllocatorError>;
    fn update_framework(
        &mut self,
        framework: &str,
        spec: FrameworkSpec,
    ) -> Result<(), AllocatorError>;
    /// Forget a framework; anything still booked to it goes back to its agents.
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
    /// (or fewer) resources on that agent under that role before then.
    fn recover(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Option<Millis>,
    ) -> Result<(), AllocatorError>;

    /// An offer the master rescinded because the framework left it unanswered past the
    /// offer timeout (greed): the resources come back and the framework is filtered on
    /// that agent until `refuse_until`. The default is a `recover` with that filter.
    fn recover_rescinded(
        &mut self,
        agent: &str,
        framework: &str,
        role: &str,
        resources: &Resources,
        refuse_until: Millis,
    ) -> Result<(), AllocatorError> {
        self.recover(agent, framework, role, resources, Some(refuse_until))
    }

    /// Replace `from` by `to` in an agent's resources (RESERVE, UNRESERVE, CREATE,
    /// DESTROY): `to` holds the same amounts as `from` under another reservation or
    /// volume. With `allocated_to = Some((framework, role))` the resources are part of
    /// that member's allocation (an accepted offer) and stay allocated to it; otherwise
    /// they must be free on the agent. The agent's total changes accordingly, so what was
    /// reserved is from then on offered only to its role. Nothing changes on error.
    fn convert_resources(
        &mut self,
        agent: &str,
        allocated_to: Option<(&str, &str)>,
        from: &Resources,
        to: &Resources,
    ) -> Result<(), AllocatorError> {
        let _ = (agent, allocated_to, from, to);
        Err(AllocatorError::Unsupported {
            policy: self.policy(),
            what: "reservations and volumes",
        })
    }

    /// Stop offers to the framework's `roles` (all its roles when empty).
    fn suppress(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError>;
    /// Clear the framework's filters and un-suppress `roles` (all when empty).
    fn revive(&mut self, framework: &str, roles: &[String]) -> Result<(), AllocatorError>;

    fn set_weight(&mut self, role: &str, weight: f64) -> Result<(), AllocatorError>;
    fn weights(&self) -> Vec<(String, f64)>;

    /// Set (or replace in place) a role's quota: `guarantee` <= `limit` (`None` = no
    /// limit), scalar unreserved non-revocable resources only; see the policy for the
    /// hierarchy rules. A guarantee above the cluster's total is refused unless `force`.
    fn set_quota(
        &mut self,
        role: &str,
        guarantee: Resources,
        limit: Option<Resources>,
        force: bool,
    ) -> Result<(), AllocatorError> {
        let _ = (role, guarantee, limit, force);
        Err(AllocatorError::Unsupported {
            policy: self.policy(),
            what: "quota",
        })
    }
    fn remove_quota(&mut self, role: &str) -> Result<(), AllocatorError> {
        let _ = role;
        Err(AllocatorError::Unsupported {
            policy: self.policy(),
            what: "quota",
        })
    }
    fn quotas(&self) -> Vec<QuotaStatus> {
        Vec::new()
    }

    /// Decide offers for everything allocatable at `now`.
    fn allocate(&mut self, now: Millis) -> Vec<Allocation>;

    fn role_shares(&self) -> Vec<RoleShare>;

    /// [`role_shares`](Allocator::role_shares) as the metrics show it (scalars only). A
    /// policy overrides it when it can answer without walking every agent; the answer
    /// must equal the default's.
    fn role_gauges(&self) -> Vec<RoleGauge> {
        self.role_shares().into_iter().map(RoleGauge::of).collect()
    }

    /// Why `target` is or is not getting offers, as of `now`.
    fn explain(&self, target: &ExplainTarget, now: Millis) -> Result<Explanation, AllocatorError> {
        let _ = (target, now);
        Err(AllocatorError::Unsupported {
            policy: self.policy(),
            what: "explain",
        })
    }

    /// Check the policy's internal books (for tests): `Err` names the first broken one.
    fn check_invariants(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Refuse a spec the allocator could not use (an offer constraint whose pattern does not
/// compile), before the master changes anything.
pub fn check_spec(spec: &FrameworkSpec) -> Result<(), String> {
    for rc in &spec.offer_constraints {
        constraints::CompiledConstraints::compile(rc)
            .map_err(|e| format!("offer constraint for role '{}': {e}", rc.role))?;
    }
    Ok(())
}

/// Configuration common to policies.
#[derive(Clone, Debug)]
pub struct AllocatorConfig {
    pub seed: u64,
    /// Resource names left out of dominant-share computation.
    pub excluded_from_shares: Vec<String>,
    /// Default minimum allocatable alternatives (any one suffices; empty: no minimum).
    /// Default: `cpus:0.01` (no CPU-less crumbs).
    pub min_allocatable: Vec<Resources>,
    /// Bounds of holds for demanding frameworks (see `drf.rs`).
    pub holds: HoldConfig,
}

/// Bounds of the resources held back for a demanding framework.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HoldConfig {
    /// Frameworks (most under-served first) that may hold agents at one time; 0 disables
    /// holds (demands are still served when they fit).
    pub max_frameworks: usize,
    /// Agents one framework may hold (a gang holds up to its task count, capped by this).
    pub max_agents_per_framework: usize,
    /// A hold is dropped after this long, fulfilled or not.
    pub max_ms: Millis,
    /// A hold is dropped when nothing more became free on the agent for this long.
    pub stall_ms: Millis,
    /// After a dropped hold the same framework may not hold the same agent for this long.
    pub cooldown_ms: Millis,
    /// Demanding frameworks examined per cycle (bounds the cost of the demand pass).
    pub max_demands_per_cycle: usize,
}

impl Default for HoldConfig {
    fn default() -> Self {
        Self {
            max_frameworks: 1,
            max_agents_per_framework: 16,
            max_ms: 60 * 60 * 1000,
            stall_ms: 10 * 60 * 1000,
            cooldown_ms: 5 * 60 * 1000,
            max_demands_per_cycle: 8,
        }
    }
}

/// The default minimum offer (`DEFAULT_MIN_ALLOCATABLE`): some CPU. A task cannot run on
/// memory, disk or ports alone, so an offer of only those (the "crumbs" left beside
/// another framework's allocation or hold) would only be declined, again and again.
pub fn default_min_allocatable() -> Vec<Resources> {
    // A known-good literal; a parse failure would be a bug in the resource crate, and an
    // empty alternative list then simply means "no minimum".
    parse_min_allocatable(DEFAULT_MIN_ALLOCATABLE).unwrap_or_default()
}

/// Text of the default minimum offer, in the form `parse_min_allocatable` reads.
pub const DEFAULT_MIN_ALLOCATABLE: &str = "cpus:0.01";

/// Parse minimum-offer alternatives as Mesos's `--min_allocatable_resources` writes them:
/// alternatives separated by `|`, each a resource bag (`cpus:0.01;mem:32|gpus:1`); an offer
/// must hold all of at least one alternative. Empty text: no minimum.
pub fn parse_min_allocatable(text: &str) -> Result<Vec<Resources>, String> {
    let mut out = Vec::new();
    for alt in text.split('|').map(str::trim).filter(|t| !t.is_empty()) {
        let r = Resources::parse(alt).map_err(|e| format!("minimum allocatable '{alt}': {e}"))?;
        if r.iter()
            .any(|e| !matches!(e.value, agora_resources::Value::Scalar(_)))
        {
            return Err(format!(
                "minimum allocatable '{alt}': only scalar resources can be a minimum"
            ));
        }
        out.push(r);
    }
    Ok(out)
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            excluded_from_shares: vec!["gpus".to_string()],
            min_allocatable: default_min_allocatable(),
            holds: HoldConfig::default(),
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

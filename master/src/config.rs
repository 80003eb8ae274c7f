//! The master's configuration, with documented defaults. Built by the binary from flags;
//! tests build it directly. Holds values only, never reads files or the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct MasterConfig {
    /// gRPC and HTTP on one port.
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Allocation policy by name (`drf`).
    pub allocator: String,
    /// Seed of the allocator's tie-breaking RNG.
    pub allocator_seed: u64,
    /// Allocation also runs on this period (filter expiry); events trigger it promptly.
    pub allocation_interval: Duration,
    /// HEARTBEAT events to frameworks.
    pub framework_heartbeat: Duration,
    /// How often agents must heartbeat.
    pub agent_heartbeat: Duration,
    /// Missed heartbeats before an agent is marked unreachable.
    pub agent_max_missed_heartbeats: u32,
    /// Decline filter when the framework gives none.
    pub default_refuse_seconds: f64,
    /// Upper bound of any decline filter.
    pub max_refuse_seconds: f64,
    /// Minimum re-offer delay: declined resources (a DECLINE, or what an ACCEPT leaves
    /// over) are not offered to the same framework on the same agent again for at least
    /// this long, even when it asked for `refuse_seconds: 0`. Two frameworks declining the
    /// same leftover with a zero filter otherwise bounce it between them as fast as the
    /// master can send (3,000 offers a second); Mesos waits for its next allocation
    /// interval. Resources that free up are still offered at once. 0 disables.
    pub min_refuse_ms: u64,
    /// Minimum offer alternatives (`AllocatorConfig::min_allocatable`); frameworks may
    /// give their own. Default `cpus:0.01`: no CPU-less crumbs.
    pub min_allocatable: Vec<agora_resources::Resources>,
    /// Bounds of holds for declared demands (frameworks, agents, time).
    pub holds: crate::allocator::HoldConfig,
    /// Offers unanswered this long are rescinded and the framework is filtered from their
    /// resources for `default_refuse_seconds` (a framework must not sit on resources).
    /// `None` disables the timeout.
    pub offer_timeout: Option<Duration>,
    /// Role weights at start-up.
    pub weights: Vec<(String, f64)>,
    /// Terminal tasks kept for the state endpoint.
    pub max_completed_tasks: usize,
    /// Capacity of each framework's and agent's outgoing event queue. A peer that lets its
    /// queue fill is disconnected rather than growing the master's memory.
    pub peer_queue_capacity: usize,
    /// Capacity of each framework's event queue (the same rule: a framework that lets it
    /// fill is disconnected and re-subscribes). A framework with many tasks gets two or
    /// three updates per task in a launch burst; a larger queue avoids the cut-off but holds
    /// the backlog in the master's memory (docs/performance.md has both measured).
    pub framework_queue_capacity: usize,
    /// Authentication, ACLs, rate limits and TLS (all off by default).
    pub security: crate::auth::SecurityConfig,
    /// At most one agent is marked unreachable per this interval when many miss their
    /// heartbeats at once (a network split must not wipe the cluster). `None`: no limit.
    pub agent_removal_interval: Option<Duration>,
    /// After a master restart, how long agents admitted before it may take to
    /// re-register. Until then reconciliation says nothing about their tasks; after it,
    /// those still away are marked unreachable (Mesos: `--agent_reregister_timeout`,
    /// 10 minutes).
    pub agent_reregistration_timeout: Duration,
}

/// Default [`MasterConfig::framework_queue_capacity`]. Large enough that a burst of
/// launches on a big cluster (10,000 STARTING updates per framework at once) does not
/// push frameworks into deferral (status updates refused while the queue is three
/// quarters full) and the agents' re-sends that follow; memory is held only for events
/// actually waiting. 4,096 deferred 230,000 updates of a 100,000-task burst on 50,000
/// agents, 65,536 none.
pub const DEFAULT_FRAMEWORK_QUEUE_CAPACITY: usize = 65_536;

/// Default [`MasterConfig::min_refuse_ms`]: one allocation interval, as Mesos.
pub const DEFAULT_MIN_REFUSE_MS: u64 = 1000;

impl Default for MasterConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5050)),
            data_dir: PathBuf::from("/tmp/agora-master"),
            allocator: "drf".to_string(),
            allocator_seed: 0,
            allocation_interval: Duration::from_secs(1),
            framework_heartbeat: Duration::from_secs(15),
            agent_heartbeat: Duration::from_secs(15),
            agent_max_missed_heartbeats: 5,
            default_refuse_seconds: 5.0,
            max_refuse_seconds: 3600.0,
            min_refuse_ms: DEFAULT_MIN_REFUSE_MS,
            min_allocatable: crate::allocator::default_min_allocatable(),
            holds: crate::allocator::HoldConfig::default(),
            offer_timeout: Some(Duration::from_secs(60)),
            weights: Vec::new(),
            max_completed_tasks: 1000,
            peer_queue_capacity: 4096,
            framework_queue_capacity: DEFAULT_FRAMEWORK_QUEUE_CAPACITY,
            security: crate::auth::SecurityConfig::default(),
            agent_removal_interval: None,
            agent_reregistration_timeout: Duration::from_secs(600),
        }
    }
}

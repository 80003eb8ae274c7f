//! The agent removal rate limit (`MasterConfig::agent_removal_interval`) with a manual
//! clock: agents that all go silent at once are marked unreachable one per interval.

use std::sync::Arc;
use std::time::Duration;

use agora_proto::v1;
use agora_resources::Resources;

use super::{AgentStream, Master};
use crate::clock::{Clock, ManualClock};
use crate::config::MasterConfig;
use crate::registry::{MemRegistry, RegistryState};
use crate::state::agent::AgentStatus;

struct Fixture {
    master: Master,
    clock: ManualClock,
    ids: Vec<String>,
    // Held so the agents' streams stay open.
    _streams: Vec<AgentStream>,
    dir: std::path::PathBuf,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn fixture(agents: usize, interval: Option<Duration>) -> Fixture {
    let dir = std::env::temp_dir().join(format!("agora-removal-{}", uuid::Uuid::new_v4()));
    let clock = ManualClock::new(1_000_000);
    let config = MasterConfig {
        data_dir: dir.clone(),
        agent_heartbeat: Duration::from_secs(1),
        agent_max_missed_heartbeats: 2,
        agent_removal_interval: interval,
        ..MasterConfig::default()
    };
    let registry = Box::new(MemRegistry::new());
    let (mut master, _handle, _rx) = Master::new(
        config,
        Arc::new(clock.clone()),
        registry,
        RegistryState::default(),
    )
    .expect("master");
    let mut ids = Vec::new();
    let mut streams = Vec::new();
    for i in 0..agents {
        let s = master
            .register_agent(v1::RegisterAgentRequest {
                info: Some(v1::AgentInfo {
                    hostname: format!("h{i}"),
                    resources: Resources::parse("cpus:1;mem:64").expect("res").to_proto(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .expect("register");
        ids.push(s.agent_id.clone());
        streams.push(s);
    }
    Fixture {
        master,
        clock,
        ids,
        _streams: streams,
        dir,
    }
}

impl Fixture {
    fn unreachable(&self) -> usize {
        self.master
            .agents
            .values()
            .filter(|a| matches!(a.status, AgentStatus::Unreachable(_)))
            .count()
    }

    fn tick(&mut self, advance_ms: u64) {
        self.clock.advance_ms(advance_ms);
        let now = self.clock.now_ms();
        self.master.check_agent_timeouts(now);
    }
}

#[test]
fn a_split_marks_one_agent_per_interval() {
    let mut f = fixture(4, Some(Duration::from_secs(20 * 60)));
    // All four miss their heartbeats at once (limit: 2 x 1 s).
    f.tick(2_500);
    assert_eq!(f.unreachable(), 1);
    f.tick(60_000);
    assert_eq!(f.unreachable(), 1, "the next one waits for the interval");
    f.tick(20 * 60_000 - 60_000 - 1);
    assert_eq!(f.unreachable(), 1);
    f.tick(1);
    assert_eq!(f.unreachable(), 2);
    // An agent that heartbeats again before its turn is never marked.
    let survivor = f
        .ids
        .iter()
        .find(|id| !matches!(f.master.agents[*id].status, AgentStatus::Unreachable(_)))
        .cloned()
        .expect("a live agent");
    for _ in 0..3 {
        f.clock.advance_ms(20 * 60_000);
        f.master.agent_heartbeat(&survivor).expect("heartbeat");
        f.tick(0);
    }
    assert_eq!(f.unreachable(), 3);
    assert!(f.master.agents[&survivor].status.is_connected());
}

#[test]
fn without_a_limit_all_silent_agents_go_at_once() {
    let mut f = fixture(4, None);
    f.tick(1_500);
    assert_eq!(f.unreachable(), 0, "within the heartbeat allowance");
    f.tick(1_000);
    assert_eq!(f.unreachable(), 4);
}

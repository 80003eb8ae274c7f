//! High availability: several masters, one leader elected through etcd, the registry in
//! etcd (`registry::EtcdRegistry`).
//!
//! A master started with `--etcd-endpoints` serves from the start, as a follower: the
//! service layer refuses every call with "not the leader; the leader is ADDR" (see
//! `service::leader`). `run` campaigns (`election.rs`); once elected it recovers the
//! registry from etcd (fenced by its term), builds the actor on the queue the service
//! already holds, and says it leads. It holds the term while the actor runs; when the
//! term ends (lease expired or not confirmed in time, key gone) it says so at once, so
//! every call is refused, drops the actor (every stream ends) and returns
//! `LostLeadership`: the binary then starts afresh as a follower. A leader whose registry
//! write fails stops the same way.
//!
//! Owns the sequence follower -> leader -> stepped down. It must never act as leader
//! before the election and the recovery both succeeded, nor after the term ended.

pub mod election;
pub mod etcd;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actor::{Command, Master, MasterHandle};
use crate::clock::Clock;
use crate::config::MasterConfig;
use crate::registry::{EtcdRegistry, Fence, Registry};
use crate::server::ServerError;
use crate::service::{Leadership, Role};
use election::{Election, LeaderRecord, Outcome};

/// How a master finds etcd and its peers.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// etcd client URLs (`http://HOST:PORT`).
    pub endpoints: Vec<String>,
    /// Every key of this Agora cluster starts with it (several clusters can share etcd).
    pub prefix: String,
    /// The leader's lease: a killed leader is replaced about this long after it died.
    pub lease_ttl: Duration,
    /// `HOST:PORT` other masters and clients are told to reach this master at.
    pub advertise: String,
}

/// Shortest lease etcd grants with its default timing (it raises shorter ones).
pub const LEASE_TTL_MIN: Duration = Duration::from_secs(2);

/// How often a follower looks whether the leader key is free.
pub fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 4).min(Duration::from_millis(500))
}

/// Campaign, lead, and return when leadership ends (never `Ok`).
pub async fn run(
    config: MasterConfig,
    clock: Arc<dyn Clock>,
    ha: HaConfig,
    leadership: Leadership,
    handle: MasterHandle,
    rx: mpsc::Receiver<Command>,
) -> Result<(), ServerError> {
    let client = Arc::new(etcd::EtcdClient::new(&ha.endpoints)?);
    let me = LeaderRecord {
        id: uuid::Uuid::new_v4().to_string(),
        addr: ha.advertise.clone(),
    };
    let election = Election::new(client.clone(), &ha.prefix, me, ha.lease_ttl);
    let poll = poll_interval(ha.lease_ttl);
    let term = loop {
        match election.try_lead().await {
            Ok(Outcome::Elected(term)) => break term,
            Ok(Outcome::Following(leader)) => {
                let leader = leader.map(|r| r.addr);
                if leadership.role()
                    != (Role::Following {
                        leader: leader.clone(),
                    })
                {
                    tracing::info!(leader = ?leader, "following");
                }
                leadership.set(Role::Following { leader });
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach etcd to find the leader");
                leadership.set(Role::Following { leader: None });
            }
        }
        tokio::time::sleep(poll).await;
    };
    tracing::info!(
        term = term.revision,
        "elected leader; recovering the registry from etcd"
    );
    let fence = Fence {
        key: election.key().to_vec(),
        revision: term.revision,
    };
    let lead = async {
        let registry = EtcdRegistry::new(client.clone(), &ha.prefix, fence);
        let recovered = registry.recover().await?;
        let master = Master::on_channel(config, clock, Box::new(registry), recovered, handle)?;
        leadership.set(Role::Leading);
        tracing::info!(master_id = %master.master_id(), "leading");
        master.run(rx).await.map_err(ServerError::Registry)
    };
    let ended = tokio::select! {
        why = election.hold(term) => {
            leadership.set(Role::SteppedDown);
            tracing::error!(reason = %why, "lost leadership; stepping down");
            Err(ServerError::LostLeadership(why))
        }
        r = lead => {
            leadership.set(Role::SteppedDown);
            election.resign(term).await;
            match r {
                Err(e) => Err(e),
                Ok(()) => Err(ServerError::LostLeadership("the master actor stopped".into())),
            }
        }
    };
    ended
}

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

// The client and the election live in `agora-etcd` (shared with the framework daemons);
// re-exported under their old paths.
pub use agora_etcd::{client as etcd, election};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::actor::{Command, Master, MasterHandle};
use crate::clock::Clock;
use crate::config::MasterConfig;
use crate::registry::{EtcdRegistry, Fence, Registry};
use crate::server::ServerError;
use crate::service::{Leadership, Role};
use election::{Election, LeaderRecord, Outcome};

/// How a master finds etcd and its peers (`advertise`: where the others send clients).
pub use agora_etcd::HaConfig;

/// Shortest lease etcd grants with its default timing (it raises shorter ones).
pub const LEASE_TTL_MIN: Duration = Duration::from_secs(2);

pub use election::{POLL_MAX_MS, poll_interval};

/// Campaign, lead, and return when leadership ends: `Ok` only when `resign` fired (the
/// master is shutting down; a term held is given up by revoking its lease).
pub async fn run(
    config: MasterConfig,
    clock: Arc<dyn Clock>,
    ha: HaConfig,
    leadership: Leadership,
    handle: MasterHandle,
    rx: mpsc::Receiver<Command>,
    resign: oneshot::Receiver<()>,
) -> Result<(), ServerError> {
    let mut resign = resign;
    let client = Arc::new(etcd::EtcdClient::with_tls(&ha.endpoints, ha.tls.as_ref())?);
    let me = LeaderRecord {
        id: uuid::Uuid::new_v4().to_string(),
        addr: ha.advertise.clone(),
    };
    let election = Election::new(client.clone(), &ha.prefix, me, ha.lease_ttl);
    let poll = poll_interval(ha.lease_ttl);
    let term = loop {
        let attempt = tokio::select! {
            r = election.try_lead() => r,
            _ = &mut resign => return Ok(()),
        };
        match attempt {
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
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            _ = &mut resign => return Ok(()),
        }
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
        _ = &mut resign => {
            // Shutdown (SIGTERM): the server closed the streams already; give the term up
            // so a follower is elected now rather than when the lease expires.
            leadership.set(Role::SteppedDown);
            election.resign(term).await;
            tracing::info!("resigned leadership at shutdown (lease revoked)");
            Ok(())
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

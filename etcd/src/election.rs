//! Leader election through etcd: a compare-and-swap on one leased key.
//!
//! `<prefix>/leader` holds the leader's record (`{"id", "addr"}`) under a lease of
//! `--etcd-lease-ttl-seconds`. A candidate creates it only if it does not exist (one
//! transaction: `create_revision == 0` -> put with its lease), so at most one master holds
//! it; the key's create revision names the term and fences every registry write of that
//! leader (`registry::EtcdRegistry`). The leader refreshes its lease every third of the
//! TTL and checks the key is still its own; it gives up leadership when the lease
//! expired, the key is gone or replaced, or etcd has not confirmed the lease for the TTL
//! less a margin: by then the lease may have expired at etcd and another master may be
//! elected, so the old one must already have stopped.
//!
//! Owns the election protocol only; what a master does when elected or deposed belongs to
//! `ha::run`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::client::{self as kv, EtcdClient, EtcdError};

/// The value of the leader key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderRecord {
    /// The leading process's instance id.
    pub id: String,
    /// Its advertised `HOST:PORT` (gRPC and HTTP).
    pub addr: String,
}

/// A term of leadership: the lease and the leader key's create revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Term {
    pub lease: i64,
    /// The create revision of the leader key: the fence of this leader's writes.
    pub revision: i64,
    /// When the lease was last known alive at etcd (the send time of the request that
    /// confirmed it).
    pub confirmed: Instant,
}

pub enum Outcome {
    Elected(Term),
    /// Another master leads (its record; `None` if its value did not parse).
    Following(Option<LeaderRecord>),
}

pub struct Election {
    client: Arc<EtcdClient>,
    key: Vec<u8>,
    me: LeaderRecord,
    ttl: Duration,
}

/// The leader key under `prefix`.
pub fn leader_key(prefix: &str) -> Vec<u8> {
    format!("{}/leader", prefix.trim_end_matches('/')).into_bytes()
}

/// How often a follower looks whether the leader key is free. Failover takes the lease's
/// expiry (at most the TTL after the last refresh), etcd's revocation of it (its lessor
/// looks every 500 ms), then a follower's next look: at 500 ms, and another 500 ms for the
/// last follower to name the new leader, a kill -9 under load came close to TTL + 2 s.
/// A look is one linearizable read: every 200 ms per master is cheap for etcd.
pub fn poll_interval(ttl: Duration) -> Duration {
    (ttl / 10).min(Duration::from_millis(POLL_MAX_MS))
}

/// The longest pause between a follower's looks at the leader key.
pub const POLL_MAX_MS: u64 = 200;

/// How long before the lease could have expired a leader gives up.
fn margin(ttl: Duration) -> Duration {
    (ttl / 4).min(Duration::from_secs(1))
}

impl Election {
    pub fn new(client: Arc<EtcdClient>, prefix: &str, me: LeaderRecord, ttl: Duration) -> Self {
        Self {
            client,
            key: leader_key(prefix),
            me,
            ttl,
        }
    }

    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current leader's record, if any.
    pub async fn leader(&self) -> Result<Option<LeaderRecord>, EtcdError> {
        Ok(self
            .client
            .get(&self.key)
            .await?
            .and_then(|kv| serde_json::from_slice(&kv.value).ok()))
    }

    /// One attempt: take the leader key if it is free, else say who holds it.
    pub async fn try_lead(&self) -> Result<Outcome, EtcdError> {
        if let Some(kv) = self.client.get(&self.key).await? {
            return Ok(Outcome::Following(serde_json::from_slice(&kv.value).ok()));
        }
        let started = Instant::now();
        let ttl_seconds = self.ttl.as_secs().max(1) as i64;
        let lease = self.client.grant(ttl_seconds).await?;
        let value = serde_json::to_vec(&self.me).unwrap_or_default();
        let txn = agora_proto::etcd::TxnRequest {
            compare: vec![kv::created_at(&self.key, 0)],
            success: vec![kv::put(&self.key, value, lease)],
            failure: vec![kv::get_op(&self.key)],
        };
        match self.client.txn(txn).await {
            Ok(r) if r.succeeded => {
                let revision = r.header.map(|h| h.revision).unwrap_or_default();
                Ok(Outcome::Elected(Term {
                    lease,
                    revision,
                    confirmed: started,
                }))
            }
            Ok(r) => {
                let _ = self.client.revoke(lease).await;
                Ok(Outcome::Following(
                    kv::first_range_kv(&r).and_then(|kv| serde_json::from_slice(&kv.value).ok()),
                ))
            }
            Err(e) => {
                let _ = self.client.revoke(lease).await;
                Err(e)
            }
        }
    }

    /// Keep the term alive; returns (why) when leadership is lost. Never returns while
    /// etcd confirms the lease and the key.
    pub async fn hold(&self, term: Term) -> String {
        let refresh = self.ttl / 3;
        let retry = Duration::from_millis(200).min(refresh);
        let deadline_of =
            |confirmed: Instant| confirmed + self.ttl.saturating_sub(margin(self.ttl));
        let mut confirmed = term.confirmed;
        let mut next = confirmed + refresh;
        loop {
            let deadline = deadline_of(confirmed);
            tokio::time::sleep_until(next.min(deadline)).await;
            if Instant::now() >= deadline {
                return format!(
                    "etcd has not confirmed the lease for {} ms",
                    confirmed.elapsed().as_millis()
                );
            }
            let sent = Instant::now();
            let checked = tokio::time::timeout_at(deadline, async {
                let ttl = self.client.keep_alive(term.lease).await?;
                let key = self.client.get(&self.key).await?;
                Ok::<_, EtcdError>((ttl, key))
            })
            .await;
            match checked {
                Ok(Ok((ttl, _))) if ttl <= 0 => return "the lease expired".to_string(),
                Ok(Ok((_, key)))
                    if key.as_ref().map(|k| k.create_revision) != Some(term.revision) =>
                {
                    return "the leader key was deleted or replaced".to_string();
                }
                Ok(Ok(_)) => {
                    confirmed = sent;
                    next = sent + refresh;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "cannot refresh the leader lease; retrying");
                    next = Instant::now() + retry;
                }
                Err(_) => {} // the deadline passed: the loop returns
            }
        }
    }

    /// Give up leadership at once (shutdown): the lease and the key go.
    pub async fn resign(&self, term: Term) {
        if let Err(e) = self.client.revoke(term.lease).await {
            tracing::warn!(error = %e, "cannot revoke the leader lease; it expires by itself");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_stops_before_its_lease_can_expire() {
        assert_eq!(margin(Duration::from_secs(2)), Duration::from_millis(500));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(1));
        assert_eq!(leader_key("/agora/"), b"/agora/leader");
        assert_eq!(
            poll_interval(Duration::from_secs(2)),
            Duration::from_millis(200)
        );
        assert_eq!(
            poll_interval(Duration::from_secs(1)),
            Duration::from_millis(100)
        );
    }
}

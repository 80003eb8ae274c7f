//! The registry: what the master persists because it cannot rebuild it from agents and
//! frameworks: framework descriptions (so a framework with no running task survives a
//! master restart), retired framework ids, the admitted and the removed agents, role
//! weights and quota, and each agent's dynamic reservations and persistent volumes.
//!
//! `Registry` is the seam, asynchronous so a replicated store (etcd) can fill it: the
//! production implementation is `FileRegistry` (a local snapshot plus an append-only log),
//! the one test double is `MemRegistry`. The master is handed one at start and writes one
//! batch of `RegistryOp`s per actor batch, answering the batch's calls only once the write
//! has resolved. This module owns only the data and its encoding; it never decides
//! anything about the cluster.

mod etcd;
mod file;
mod mem;

pub use etcd::{EtcdRegistry, Fence};
pub use file::FileRegistry;
pub use mem::MemRegistry;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Everything the registry holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryState {
    /// Framework id -> its `FrameworkInfo`, protobuf-encoded, hex.
    pub frameworks: BTreeMap<String, String>,
    /// Ids of frameworks torn down: they may never subscribe again.
    pub torn_down: BTreeSet<String>,
    /// Agents removed for good: if one comes back it is told to shut down.
    pub removed_agents: BTreeSet<String>,
    /// Agents admitted to the cluster and not removed: id -> hostname. After a restart
    /// the master waits for these to re-register before it answers for their tasks.
    /// Older registries lack it: empty.
    pub admitted_agents: BTreeMap<String, String>,
    /// Agents in maintenance: nothing on them is offered.
    pub deactivated_agents: BTreeSet<String>,
    pub weights: BTreeMap<String, f64>,
    /// Role -> (guarantee, limit) in the resource flag syntax.
    pub quotas: BTreeMap<String, (String, Option<String>)>,
    /// Agent id -> its dynamically reserved resources and persistent volumes, in the
    /// resource flag syntax (absent: none). Older registries lack it: empty.
    pub agent_resources: BTreeMap<String, String>,
}

/// One change, in the order the master made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RegistryOp {
    /// Add or replace a framework's description.
    PutFramework {
        id: String,
        info: String,
    },
    /// Retire a framework id.
    TearDownFramework {
        id: String,
    },
    /// Admit an agent (first registration) or record its new hostname.
    AdmitAgent {
        id: String,
        hostname: String,
    },
    RemoveAgent {
        id: String,
    },
    DeactivateAgent {
        id: String,
    },
    ReactivateAgent {
        id: String,
    },
    SetQuota {
        role: String,
        guarantee: String,
        limit: Option<String>,
    },
    RemoveQuota {
        role: String,
    },
    SetWeight {
        role: String,
        weight: f64,
    },
    /// Replace an agent's dynamic reservations and volumes (flag syntax; empty: none).
    SetAgentResources {
        id: String,
        resources: String,
    },
}

impl RegistryState {
    pub fn apply(&mut self, op: &RegistryOp) {
        match op {
            RegistryOp::PutFramework { id, info } => {
                self.frameworks.insert(id.clone(), info.clone());
            }
            RegistryOp::TearDownFramework { id } => {
                self.frameworks.remove(id);
                self.torn_down.insert(id.clone());
            }
            RegistryOp::DeactivateAgent { id } => {
                self.deactivated_agents.insert(id.clone());
            }
            RegistryOp::ReactivateAgent { id } => {
                self.deactivated_agents.remove(id);
            }
            RegistryOp::AdmitAgent { id, hostname } => {
                self.admitted_agents.insert(id.clone(), hostname.clone());
            }
            RegistryOp::RemoveAgent { id } => {
                self.deactivated_agents.remove(id);
                self.admitted_agents.remove(id);
                // A removed agent never comes back: its reservations and volumes go too.
                self.agent_resources.remove(id);
                self.removed_agents.insert(id.clone());
            }
            RegistryOp::SetQuota {
                role,
                guarantee,
                limit,
            } => {
                self.quotas
                    .insert(role.clone(), (guarantee.clone(), limit.clone()));
            }
            RegistryOp::RemoveQuota { role } => {
                self.quotas.remove(role);
            }
            RegistryOp::SetWeight { role, weight } => {
                self.weights.insert(role.clone(), *weight);
            }
            RegistryOp::SetAgentResources { id, resources } => {
                if resources.is_empty() {
                    self.agent_resources.remove(id);
                } else {
                    self.agent_resources.insert(id.clone(), resources.clone());
                }
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("registry {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("registry {path} line {line}: {reason}")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
    /// The store refused or could not take the write (a test double's injected failure,
    /// a replicated store without quorum, an earlier write that left it unknown).
    #[error("registry unavailable: {0}")]
    Unavailable(String),
}

/// What a registry call resolves to.
pub type RegistryFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, RegistryError>> + Send + 'a>>;

/// Durable storage of the registry. Calls never block the caller's thread: an
/// implementation doing blocking I/O moves it off the async runtime.
pub trait Registry: Send + Sync {
    /// Read what was stored (empty on first start).
    fn recover(&self) -> RegistryFuture<'_, RegistryState>;
    /// Store one batch of changes durably and in order: resolved `Ok` once all of it is
    /// durable; on error none of it is stored (a batch is atomic, also across a crash).
    fn append(&self, ops: Vec<RegistryOp>) -> RegistryFuture<'_, ()>;
}

/// Hex of protobuf bytes (framework descriptions in the registry).
pub fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_input() {
        let bytes = vec![0u8, 1, 0xab, 0xff];
        assert_eq!(to_hex(&bytes), "0001abff");
        assert_eq!(from_hex("0001abff"), Some(bytes));
        assert_eq!(from_hex("abc"), None);
        assert_eq!(from_hex("zz"), None);
    }

    #[test]
    fn ops_apply_in_order() {
        let mut s = RegistryState::default();
        s.apply(&RegistryOp::PutFramework {
            id: "f".into(),
            info: "00".into(),
        });
        s.apply(&RegistryOp::SetWeight {
            role: "r".into(),
            weight: 2.5,
        });
        s.apply(&RegistryOp::TearDownFramework { id: "f".into() });
        s.apply(&RegistryOp::AdmitAgent {
            id: "a".into(),
            hostname: "h".into(),
        });
        s.apply(&RegistryOp::AdmitAgent {
            id: "b".into(),
            hostname: "h".into(),
        });
        assert_eq!(s.admitted_agents.len(), 2);
        s.apply(&RegistryOp::RemoveAgent { id: "a".into() });
        assert_eq!(s.admitted_agents.keys().collect::<Vec<_>>(), ["b"]);
        assert!(s.frameworks.is_empty());
        assert!(s.torn_down.contains("f"));
        assert!(s.removed_agents.contains("a"));
        assert_eq!(s.weights["r"], 2.5);
    }

    #[test]
    fn agent_resources_replace_and_clear_and_old_records_still_read() {
        let mut s = RegistryState::default();
        let set = |r: &str| RegistryOp::SetAgentResources {
            id: "a".into(),
            resources: r.into(),
        };
        s.apply(&set("cpus(db,dynamic):1"));
        s.apply(&set("cpus(db,dynamic):2"));
        assert_eq!(s.agent_resources["a"], "cpus(db,dynamic):2");
        s.apply(&set(""));
        assert!(s.agent_resources.is_empty());
        s.apply(&set("cpus(db,dynamic):2"));
        s.apply(&RegistryOp::RemoveAgent { id: "a".into() });
        assert!(s.agent_resources.is_empty());
        // A snapshot and a log line written before the field existed.
        let old: RegistryState = serde_json::from_str(r#"{"weights":{"r":1.0}}"#).unwrap();
        assert!(old.agent_resources.is_empty());
        let line =
            r#"{"op":"set_agent_resources","id":"a","resources":"disk(db,volume=v,path=d):5"}"#;
        let op: RegistryOp = serde_json::from_str(line).unwrap();
        assert_eq!(op, set("disk(db,volume=v,path=d):5"));
    }
}

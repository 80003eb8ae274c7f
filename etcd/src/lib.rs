//! etcd for Agora's high availability: a small etcd v3 client ([`client`]) and leader
//! election by compare-and-swap on a leased key ([`election`]).
//!
//! Shared by the masters (`agora-master`'s `ha` module and its etcd registry) and the
//! framework daemons (`agora-framework-store`'s etcd store and election), so a framework
//! does not depend on the master.
//!
//! Architecture invariant: nothing here knows what a master or a framework stores; keys
//! and values mean something only to the callers. No process-level effects (signals,
//! exit, exec) either: what a process does when it wins or loses belongs to it.

#![forbid(unsafe_code)]

pub mod client;
pub mod election;
pub mod log;

pub use client::{EtcdClient, EtcdError, EtcdTls};

/// How one of several instances (a master, a framework daemon) finds etcd and tells the
/// others where it is.
#[derive(Clone, Debug)]
pub struct HaConfig {
    /// etcd client URLs (`http://HOST:PORT`, or `https://` with `tls`).
    pub endpoints: Vec<String>,
    /// Every key of these instances starts with it (several clusters can share etcd).
    pub prefix: String,
    /// The leader's lease: a killed leader is replaced about this long after it died.
    pub lease_ttl: std::time::Duration,
    /// `HOST:PORT` the other instances send clients to when this one leads.
    pub advertise: String,
    /// TLS to etcd (`https://` endpoints).
    pub tls: Option<EtcdTls>,
}

//! Registry write latency and throughput: `FileRegistry` (snapshot + fsync'd log in a
//! temporary directory) beside `EtcdRegistry` (fenced transactions on the etcd cluster at
//! `--etcd`), one batch at a time as the master writes them (one append per actor batch).
//!
//! ```sh
//! cargo run -p agora-master --example registry_bench -- \
//!   --etcd http://127.0.0.1:2379,http://127.0.0.1:22379,http://127.0.0.1:32379 \
//!   --batches 1000 --ops 1
//! ```
//! Prints one line per store: batches, ops per batch, median and p99 latency, batches/s.
//! Bounded: `--batches` at most 100,000.

use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_master::ha::election::{Election, LeaderRecord, Outcome};
use agora_master::ha::etcd::EtcdClient;
use agora_master::registry::{EtcdRegistry, Fence, FileRegistry, Registry, RegistryOp};

const BATCHES_MAX: usize = 100_000;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn batch(i: usize, ops: usize) -> Vec<RegistryOp> {
    (0..ops)
        .map(|k| RegistryOp::AdmitAgent {
            id: format!("bench-agent-{i}-{k}"),
            hostname: format!("host-{i}-{k}.example"),
        })
        .collect()
}

async fn measure(name: &str, registry: &dyn Registry, batches: usize, ops: usize) {
    registry.recover().await.expect("recover");
    let mut latencies = Vec::with_capacity(batches);
    let started = Instant::now();
    for i in 0..batches {
        let t = Instant::now();
        registry.append(batch(i, ops)).await.expect("append");
        latencies.push(t.elapsed());
    }
    let total = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name:>5}: {batches} batches x {ops} ops: median {:.2} ms, p99 {:.2} ms, {:.0} batches/s",
        ms(pct(0.5)),
        ms(pct(0.99)),
        batches as f64 / total.as_secs_f64()
    );
}

#[tokio::main]
async fn main() {
    let batches: usize = arg("--batches")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .min(BATCHES_MAX);
    let ops: usize = arg("--ops").and_then(|v| v.parse().ok()).unwrap_or(1);
    let dir = std::env::temp_dir().join(format!("agora-registry-bench-{}", uuid::Uuid::new_v4()));
    measure("file", &FileRegistry::new(&dir), batches, ops).await;
    let _ = std::fs::remove_dir_all(&dir);

    let Some(endpoints) = arg("--etcd") else {
        println!(" etcd: skipped (no --etcd)");
        return;
    };
    let endpoints: Vec<String> = endpoints.split(',').map(str::to_string).collect();
    let client = Arc::new(EtcdClient::new(&endpoints).expect("endpoints"));
    let prefix = format!("/agora-bench-{}", uuid::Uuid::new_v4());
    let election = Election::new(
        client.clone(),
        &prefix,
        LeaderRecord {
            id: "bench".into(),
            addr: "bench:0".into(),
        },
        Duration::from_secs(60),
    );
    let Outcome::Elected(term) = election.try_lead().await.expect("campaign") else {
        panic!("a fresh prefix has no leader");
    };
    let fence = Fence {
        key: election.key().to_vec(),
        revision: term.revision,
    };
    let registry = EtcdRegistry::new(client.clone(), &prefix, fence);
    measure("etcd", &registry, batches, ops).await;
    election.resign(term).await;
}

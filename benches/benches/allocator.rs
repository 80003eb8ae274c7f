//! Allocation cycle time of the allocator ("drf" policy). One iteration is one full
//! allocation cycle; only `allocate` is timed.
//!
//! * `decline_offers/{agents}x{frameworks}`: the Mesos DeclineOffers loop (see
//!   `agora_benches::DeclineLoop`): every offer of a cycle is declined with a very long
//!   filter before the next; when every framework has declined every agent the frameworks
//!   revive. Sizes from `AGORA_BENCH_SIZES` (e.g. `1000x100,10000x1000`), default
//!   `1000x100,2000x200`.
//! * `suppressed/{agents}x{frameworks}`: the same with 99% of the frameworks suppressed.
//!   Sizes from `AGORA_BENCH_SUPPRESSED_SIZES`, default `10000x1000`.
//! * `quota/{agents}`: Mesos LargeAndSmallQuota, the first cycle of a fresh cluster
//!   (cloned per iteration, untimed). `AGORA_BENCH_QUOTA` = `small,large` roles, default
//!   `2500,500` (3000 agents).
//!
//! `AGORA_BENCH_CLOCK=cpu` times with this thread's CPU time (from
//! `/proc/thread-self/schedstat`) instead of the wall clock, so figures taken while other
//! processes compete for the cores are not inflated by waiting for a core.

use std::hint::black_box;
use std::time::{Duration, Instant};

use agora_allocator::Allocator;
use criterion::{Criterion, criterion_group, criterion_main};

fn sizes(var: &str, default: &str) -> Vec<(usize, usize)> {
    let spec = std::env::var(var).unwrap_or_else(|_| default.into());
    spec.split(',')
        .filter_map(|s| {
            let (a, f) = s.trim().split_once('x')?;
            Some((a.parse().ok()?, f.parse().ok()?))
        })
        .collect()
}

/// CPU time this thread has run, in nanoseconds (Linux), if readable.
fn thread_cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn use_cpu_clock() -> bool {
    std::env::var("AGORA_BENCH_CLOCK").is_ok_and(|v| v == "cpu") && thread_cpu_ns().is_some()
}

/// Time `f` by the chosen clock.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    if use_cpu_clock() {
        let start = thread_cpu_ns().unwrap_or(0);
        let out = f();
        let end = thread_cpu_ns().unwrap_or(start);
        (out, Duration::from_nanos(end.saturating_sub(start)))
    } else {
        let start = Instant::now();
        let out = f();
        (out, start.elapsed())
    }
}

fn decline_group(c: &mut Criterion, group: &str, var: &str, default: &str, suppressed: usize) {
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for (agents, frameworks) in sizes(var, default) {
        let mut lp = agora_benches::decline_offers_with(agents, frameworks, suppressed);
        g.bench_function(format!("{agents}x{frameworks}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let (offers, took) = timed(|| black_box(lp.allocate()));
                    spent += took;
                    lp.decline(offers);
                }
                spent
            })
        });
    }
    g.finish();
}

fn decline_offers(c: &mut Criterion) {
    decline_group(
        c,
        "decline_offers",
        "AGORA_BENCH_SIZES",
        "1000x100,2000x200",
        0,
    );
}

fn suppressed(c: &mut Criterion) {
    decline_group(
        c,
        "suppressed",
        "AGORA_BENCH_SUPPRESSED_SIZES",
        "10000x1000",
        99,
    );
}

fn quota(c: &mut Criterion) {
    let spec = std::env::var("AGORA_BENCH_QUOTA").unwrap_or_else(|_| "2500,500".into());
    let (small, large) = spec
        .split_once(',')
        .and_then(|(s, l)| Some((s.trim().parse().ok()?, l.trim().parse().ok()?)))
        .unwrap_or((2500, 500));
    let base = agora_benches::large_and_small_quota(small, large);
    let mut g = c.benchmark_group("quota");
    g.sample_size(10);
    g.bench_function(format!("{}", small / 5 + large * 5), |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let mut a = base.clone();
                let (offers, took) = timed(|| black_box(a.allocate(1)));
                spent += took;
                drop(offers);
            }
            spent
        })
    });
    g.finish();
}

criterion_group!(benches, decline_offers, suppressed, quota);
criterion_main!(benches);

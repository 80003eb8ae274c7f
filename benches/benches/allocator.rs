//! Allocation cycle time of the allocator ("drf" policy).
//!
//! `decline_offers/{agents}x{frameworks}`: the Mesos DeclineOffers set-up (see
//! `agora_benches::decline_offers`); one iteration is one full allocation cycle over a
//! cluster whose every offer was declined with a long filter. Sizes come from
//! `AGORA_BENCH_SIZES` (e.g. `1000x100,10000x1000`), default `1000x100,2000x200`.

use std::hint::black_box;

use agora_master::allocator::Allocator;
use criterion::{Criterion, criterion_group, criterion_main};

fn sizes() -> Vec<(usize, usize)> {
    let spec = std::env::var("AGORA_BENCH_SIZES").unwrap_or_else(|_| "1000x100,2000x200".into());
    spec.split(',')
        .filter_map(|s| {
            let (a, f) = s.trim().split_once('x')?;
            Some((a.parse().ok()?, f.parse().ok()?))
        })
        .collect()
}

fn decline_offers(c: &mut Criterion) {
    let mut group = c.benchmark_group("decline_offers");
    group.sample_size(10);
    for (agents, frameworks) in sizes() {
        let mut alloc = agora_benches::decline_offers(agents, frameworks);
        let mut now = 1;
        group.bench_function(format!("{agents}x{frameworks}"), |b| {
            b.iter(|| {
                now += 1;
                black_box(alloc.allocate(now))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decline_offers);
criterion_main!(benches);

//! Resource model hot paths the allocator and master lean on: parsing the agent flag
//! syntax, and add / subtract / contains on a typical agent's resources.

use std::hint::black_box;

use agora_resources::Resources;
use criterion::{Criterion, criterion_group, criterion_main};

const AGENT: &str = "cpus:24;mem:4096;disk:4096;ports:[31000-32000];cpus(spark):8;mem(spark):4096";
const TASK: &str = "cpus:1.5;mem:256;ports:[31000-31001]";

fn resources(c: &mut Criterion) {
    let agent = Resources::parse(AGENT).unwrap_or_default();
    let task = Resources::parse(TASK).unwrap_or_default();
    c.bench_function("resources/parse_agent_flags", |b| {
        b.iter(|| black_box(Resources::parse(black_box(AGENT))))
    });
    c.bench_function("resources/subtract_task", |b| {
        b.iter(|| black_box(agent.checked_sub(black_box(&task))))
    });
    c.bench_function("resources/add_task", |b| {
        b.iter(|| black_box(agent.checked_add(black_box(&task))))
    });
    c.bench_function("resources/contains_task", |b| {
        b.iter(|| black_box(agent.contains(black_box(&task))))
    });
}

criterion_group!(benches, resources);
criterion_main!(benches);

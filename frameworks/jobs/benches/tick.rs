//! The cost of the engine's scheduling tick with 10,000 scheduled jobs (issue 14, item 9).
//!
//! Every job runs once a minute at second `i % 60`, so about 167 runs fall due each
//! second. `idle_tick`: a tick between two seconds (nothing due, every live run checked
//! for deadlines). `due_second`: one second's worth of due ticks, creating ~167 runs and
//! placing them on offers, and serializing the store batch they make. Figures go to
//! docs/performance.md.

use agora_jobs::engine::{Engine, EngineConfig, OfferView};
use agora_jobs::spec::parse_job;
use agora_sdk::resources::{Attributes, Resources};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const JOBS: usize = 10_000;

fn engine() -> Engine {
    let mut e = Engine::new(EngineConfig {
        roles: vec!["default".into()],
    });
    for i in 0..JOBS {
        let json = format!(
            r#"{{"id":"job-{i}","run":{{"cmd":"true"}},"schedules":[{{"id":"s","cron":"{} * * * * *"}}]}}"#,
            i % 60
        );
        let spec = parse_job(json.as_bytes()).expect("bench job");
        e.create_job(spec, T0).expect("create");
    }
    e.take_batch();
    e.take_out();
    e
}

fn offers(n: usize) -> Vec<OfferView> {
    (0..n)
        .map(|i| OfferView {
            id: format!("o{i}"),
            agent_id: format!("agent-{i}"),
            role: "default".into(),
            resources: Resources::parse("cpus:64;mem:65536").expect("offer"),
            attributes: Attributes::default(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("jobs_tick_10k");
    g.sample_size(20);
    let mut idle = engine();
    idle.tick(T0 + 500);
    g.bench_function("idle_tick", |b| {
        b.iter(|| {
            idle.tick(T0 + 500);
            idle.take_batch();
            idle.take_out();
        })
    });
    g.bench_function("due_second_tick_and_place", |b| {
        b.iter_batched(
            engine,
            |mut e| {
                e.tick(T0 + 1_000);
                let plans = e.place(offers(4), T0 + 1_000);
                let batch = e.take_batch();
                e.take_out();
                // The engine is returned so that dropping its 10,000 jobs falls outside
                // the measurement (criterion drops outputs after timing).
                (plans.len(), batch.len(), e)
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

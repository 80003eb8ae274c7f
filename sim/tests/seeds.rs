//! A bounded number of seeds of the cluster simulation in the ordinary test command (the
//! soak is `cargo run -p agora-sim --release -- --seeds N`).

use agora_sim::{Config, Faults};

/// Seeds run by the test (each 200 simulated seconds with faults, then settling).
const SEEDS: u64 = 6;
/// Steps with faults per seed.
const STEPS: u64 = 2_000;

#[tokio::test]
async fn seeded_runs_with_faults_keep_every_invariant() {
    let mut faults_seen = 0;
    for seed in 1..=SEEDS {
        let config = Config {
            steps: STEPS,
            ..Config::new(seed)
        };
        match agora_sim::run(config).await {
            Ok(report) => {
                assert!(
                    report.tasks_launched > 0,
                    "seed {seed} launched nothing: {report:?}"
                );
                faults_seen += report.faults();
            }
            Err(failure) => panic!("{failure}"),
        }
    }
    assert!(faults_seen > 0, "no fault was injected in {SEEDS} seeds");
}

/// Without faults every launched task finishes and every update arrives: the checks are
/// not satisfied vacuously by a cluster that never ran anything.
#[tokio::test]
async fn a_run_without_faults_launches_and_finishes_tasks() {
    let config = Config {
        faults: Faults {
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            delay_per_mille: 0,
            agent_crash_per_mille: 0,
            partition_per_mille: 0,
            master_crash_per_mille: 0,
            failover_per_mille: 0,
        },
        steps: 1_000,
        ..Config::new(42)
    };
    let report = agora_sim::run(config)
        .await
        .unwrap_or_else(|f| panic!("{f}"));
    assert_eq!(report.faults(), 0);
    assert!(report.tasks_launched >= 20, "{report:?}");
    assert!(
        report.updates_generated >= 2 * report.tasks_launched,
        "{report:?}"
    );
}

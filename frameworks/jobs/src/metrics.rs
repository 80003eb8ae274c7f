//! Counters the daemon exports at `/metrics` in the Prometheus text format: runs started,
//! succeeded, failed and skipped, and the start lateness of scheduled runs (scheduled time
//! to launch sent) as a histogram.
//!
//! Owns the numbers and their rendering. It must never decide anything; it only counts the
//! engine's events.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::engine::Event;

/// Upper bounds of the lateness histogram buckets, in seconds.
pub const LATENESS_BUCKETS_SECONDS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// The daemon's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    runs_created: AtomicU64,
    runs_started: AtomicU64,
    runs_succeeded: AtomicU64,
    runs_failed: AtomicU64,
    ticks_skipped: AtomicU64,
    lateness_buckets: [AtomicU64; 12],
    lateness_count: AtomicU64,
    lateness_sum_ms: AtomicU64,
    jobs: AtomicU64,
}

impl Metrics {
    /// Count one engine event.
    pub fn observe(&self, e: &Event) {
        let inc = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match e {
            Event::RunCreated { .. } => inc(&self.runs_created, 1),
            Event::RunLaunched { lateness_ms, .. } => {
                inc(&self.runs_started, 1);
                if let Some(ms) = lateness_ms {
                    let ms = (*ms).max(0) as u64;
                    let secs = ms as f64 / 1000.0;
                    for (i, bound) in LATENESS_BUCKETS_SECONDS.iter().enumerate() {
                        if secs <= *bound {
                            inc(&self.lateness_buckets[i], 1);
                        }
                    }
                    inc(&self.lateness_count, 1);
                    inc(&self.lateness_sum_ms, ms);
                }
            }
            Event::RunFinished { status, .. } if status == "SUCCESS" => {
                inc(&self.runs_succeeded, 1)
            }
            Event::RunFinished { .. } => inc(&self.runs_failed, 1),
            Event::RunSkipped { ticks, .. } => inc(&self.ticks_skipped, u64::from(*ticks)),
            _ => {}
        }
    }

    /// Set the number of jobs held.
    pub fn set_jobs(&self, n: usize) {
        self.jobs.store(n as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = String::new();
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        counter(
            "agora_jobs_runs_created_total",
            "Runs created (manual, scheduled, dependency).",
            get(&self.runs_created),
        );
        counter(
            "agora_jobs_runs_started_total",
            "Launches sent (first attempts and retries).",
            get(&self.runs_started),
        );
        counter(
            "agora_jobs_runs_succeeded_total",
            "Runs that finished successfully.",
            get(&self.runs_succeeded),
        );
        counter(
            "agora_jobs_runs_failed_total",
            "Runs that failed for good (after retries, by deadline, stopped).",
            get(&self.runs_failed),
        );
        counter(
            "agora_jobs_runs_skipped_total",
            "Schedule ticks skipped (missed starting deadline, FORBID, blocked).",
            get(&self.ticks_skipped),
        );
        let _ = writeln!(
            s,
            "# HELP agora_jobs_jobs Jobs held.\n# TYPE agora_jobs_jobs gauge\nagora_jobs_jobs {}",
            get(&self.jobs)
        );
        let name = "agora_jobs_start_lateness_seconds";
        let _ = writeln!(
            s,
            "# HELP {name} Scheduled time to launch sent, for scheduled runs.\n# TYPE {name} histogram"
        );
        for (i, bound) in LATENESS_BUCKETS_SECONDS.iter().enumerate() {
            let _ = writeln!(
                s,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                get(&self.lateness_buckets[i])
            );
        }
        let count = get(&self.lateness_count);
        let _ = writeln!(s, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            s,
            "{name}_sum {}",
            get(&self.lateness_sum_ms) as f64 / 1000.0
        );
        let _ = writeln!(s, "{name}_count {count}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_events_and_renders_prometheus_text() {
        let m = Metrics::default();
        let launched = |lateness_ms| Event::RunLaunched {
            job: "j".into(),
            run: "r".into(),
            task: "t".into(),
            agent: "a".into(),
            lateness_ms,
        };
        m.observe(&launched(Some(30)));
        m.observe(&launched(Some(1_500)));
        m.observe(&launched(None));
        let finished = |status: &str| Event::RunFinished {
            job: "j".into(),
            run: "r".into(),
            status: status.into(),
            message: String::new(),
        };
        m.observe(&finished("SUCCESS"));
        m.observe(&finished("FAILED"));
        m.observe(&Event::RunSkipped {
            job: "j".into(),
            run: "r".into(),
            ticks: 4,
            reason: String::new(),
        });
        let text = m.render();
        for line in [
            "agora_jobs_runs_started_total 3",
            "agora_jobs_runs_succeeded_total 1",
            "agora_jobs_runs_failed_total 1",
            "agora_jobs_runs_skipped_total 4",
            "agora_jobs_start_lateness_seconds_bucket{le=\"0.05\"} 1",
            "agora_jobs_start_lateness_seconds_bucket{le=\"2\"} 2",
            "agora_jobs_start_lateness_seconds_bucket{le=\"+Inf\"} 2",
            "agora_jobs_start_lateness_seconds_sum 1.53",
            "agora_jobs_start_lateness_seconds_count 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}

//! Counters and gauges the master exports at `/metrics`, and their Prometheus text form.
//!
//! The actor owns the one `Metrics` value and updates it in place; readers get a copy. This
//! module never locks, never does I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// Upper bounds (seconds) of the allocation cycle histogram buckets.
const CYCLE_BUCKETS: [f64; 10] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub offers_sent: u64,
    pub offers_accepted: u64,
    pub offers_declined: u64,
    /// Declines (and accepts leaving resources over) whose filter was raised to the
    /// minimum re-offer delay (`--min-refuse-ms`).
    pub decline_filters_raised: u64,
    pub offers_rescinded: u64,
    pub offers_timed_out: u64,
    pub tasks_launched: u64,
    /// Terminal tasks by state name.
    pub tasks_terminal: BTreeMap<&'static str, u64>,
    pub status_updates: u64,
    /// Re-sent updates dropped because a newer update of the task had already arrived.
    pub stale_status_updates: u64,
    /// Re-sent updates not relayed because the same update was relayed moments ago.
    pub duplicate_status_updates: u64,
    /// Updates refused (UNAVAILABLE) because their framework was behind on its events.
    pub status_updates_deferred: u64,
    pub invalid_calls: u64,
    pub frameworks_disconnected_slow: u64,
    pub registry_write_errors: u64,
    cycle_buckets: [u64; CYCLE_BUCKETS.len()],
    cycle_count: u64,
    cycle_sum_seconds: f64,
}

impl Metrics {
    /// Allocation cycles run, and the seconds they took in all.
    pub fn cycles(&self) -> (u64, f64) {
        (self.cycle_count, self.cycle_sum_seconds)
    }

    pub fn observe_cycle(&mut self, took: Duration) {
        let s = took.as_secs_f64();
        for (i, bound) in CYCLE_BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.cycle_buckets[i] += 1;
            }
        }
        self.cycle_count += 1;
        self.cycle_sum_seconds += s;
    }
}

/// Point-in-time values that come from state rather than counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Gauges {
    pub agents_by_status: BTreeMap<&'static str, u64>,
    pub frameworks_by_status: BTreeMap<&'static str, u64>,
    pub tasks_by_state: BTreeMap<&'static str, u64>,
    pub offers_outstanding: u64,
    /// (kind, total, allocated, offered) in units.
    pub resources: Vec<(String, f64, f64, f64)>,
    /// (role, kind, allocated) in units.
    pub role_allocated: Vec<(String, String, f64)>,
    pub role_shares: Vec<(String, f64, f64)>,
    pub command_queue_depth: u64,
    pub operator_subscribers: u64,
    pub operator_subscribers_dropped_slow: u64,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus text exposition format 0.0.4.
pub fn render(m: &Metrics, g: &Gauges) -> String {
    let mut o = String::new();
    let counter = |o: &mut String, name: &str, help: &str, v: u64| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
    };
    counter(
        &mut o,
        "agora_offers_sent_total",
        "Offers sent to frameworks.",
        m.offers_sent,
    );
    counter(
        &mut o,
        "agora_offers_accepted_total",
        "Offers accepted.",
        m.offers_accepted,
    );
    counter(
        &mut o,
        "agora_offers_declined_total",
        "Offers declined.",
        m.offers_declined,
    );
    counter(
        &mut o,
        "agora_decline_filters_raised_total",
        "Declines whose filter was raised to the minimum re-offer delay (--min-refuse-ms).",
        m.decline_filters_raised,
    );
    counter(
        &mut o,
        "agora_offers_rescinded_total",
        "Offers rescinded by the master.",
        m.offers_rescinded,
    );
    counter(
        &mut o,
        "agora_offers_timed_out_total",
        "Offers rescinded because nobody answered them in time (counted in rescinded too).",
        m.offers_timed_out,
    );
    counter(
        &mut o,
        "agora_tasks_launched_total",
        "Tasks sent to agents.",
        m.tasks_launched,
    );
    counter(
        &mut o,
        "agora_status_updates_total",
        "Task status updates received from agents.",
        m.status_updates,
    );
    counter(
        &mut o,
        "agora_stale_status_updates_total",
        "Re-sent status updates dropped because a newer update of the task had arrived.",
        m.stale_status_updates,
    );
    counter(
        &mut o,
        "agora_duplicate_status_updates_total",
        "Re-sent status updates not relayed again because they were relayed moments ago.",
        m.duplicate_status_updates,
    );
    counter(
        &mut o,
        "agora_status_updates_deferred_total",
        "Status updates refused for now (the agent re-sends) because their framework was behind on its events.",
        m.status_updates_deferred,
    );
    counter(
        &mut o,
        "agora_invalid_calls_total",
        "Scheduler calls refused as invalid.",
        m.invalid_calls,
    );
    counter(
        &mut o,
        "agora_frameworks_disconnected_slow_total",
        "Frameworks cut off because their event queue was full.",
        m.frameworks_disconnected_slow,
    );
    counter(
        &mut o,
        "agora_registry_write_errors_total",
        "Registry batches that could not be written durably.",
        m.registry_write_errors,
    );
    let _ = writeln!(
        o,
        "# HELP agora_tasks_terminal_total Tasks that reached a terminal state.\n# TYPE agora_tasks_terminal_total counter"
    );
    for (state, v) in &m.tasks_terminal {
        let _ = writeln!(o, "agora_tasks_terminal_total{{state=\"{state}\"}} {v}");
    }
    let _ = writeln!(
        o,
        "# HELP agora_allocation_cycle_seconds Time of one allocation cycle.\n# TYPE agora_allocation_cycle_seconds histogram"
    );
    for (bound, v) in CYCLE_BUCKETS.iter().zip(m.cycle_buckets) {
        let _ = writeln!(
            o,
            "agora_allocation_cycle_seconds_bucket{{le=\"{bound}\"}} {v}"
        );
    }
    let _ = writeln!(
        o,
        "agora_allocation_cycle_seconds_bucket{{le=\"+Inf\"}} {}\nagora_allocation_cycle_seconds_sum {}\nagora_allocation_cycle_seconds_count {}",
        m.cycle_count, m.cycle_sum_seconds, m.cycle_count
    );

    let gauge_header = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge_header(&mut o, "agora_agents", "Agents by status.");
    for (s, v) in &g.agents_by_status {
        let _ = writeln!(o, "agora_agents{{status=\"{s}\"}} {v}");
    }
    gauge_header(&mut o, "agora_frameworks", "Frameworks by status.");
    for (s, v) in &g.frameworks_by_status {
        let _ = writeln!(o, "agora_frameworks{{status=\"{s}\"}} {v}");
    }
    gauge_header(&mut o, "agora_tasks", "Tasks the master tracks, by state.");
    for (s, v) in &g.tasks_by_state {
        let _ = writeln!(o, "agora_tasks{{state=\"{s}\"}} {v}");
    }
    gauge_header(
        &mut o,
        "agora_offers_outstanding",
        "Offers not yet answered.",
    );
    let _ = writeln!(o, "agora_offers_outstanding {}", g.offers_outstanding);
    gauge_header(
        &mut o,
        "agora_resources",
        "Cluster resources in units, by kind and use (total, allocated, offered).",
    );
    for (kind, total, allocated, offered) in &g.resources {
        let k = escape(kind);
        let _ = writeln!(o, "agora_resources{{kind=\"{k}\",use=\"total\"}} {total}");
        let _ = writeln!(
            o,
            "agora_resources{{kind=\"{k}\",use=\"allocated\"}} {allocated}"
        );
        let _ = writeln!(
            o,
            "agora_resources{{kind=\"{k}\",use=\"offered\"}} {offered}"
        );
    }
    gauge_header(
        &mut o,
        "agora_role_allocated",
        "Resources allocated (offered or used) per role, in units.",
    );
    for (role, kind, v) in &g.role_allocated {
        let _ = writeln!(
            o,
            "agora_role_allocated{{role=\"{}\",kind=\"{}\"}} {v}",
            escape(role),
            escape(kind)
        );
    }
    gauge_header(
        &mut o,
        "agora_role_dominant_share",
        "Dominant share per role.",
    );
    for (role, share, weight) in &g.role_shares {
        let _ = writeln!(
            o,
            "agora_role_dominant_share{{role=\"{}\",weight=\"{weight}\"}} {share}",
            escape(role)
        );
    }
    gauge_header(
        &mut o,
        "agora_event_queue_depth",
        "Commands waiting for the master actor.",
    );
    let _ = writeln!(o, "agora_event_queue_depth {}", g.command_queue_depth);
    gauge_header(
        &mut o,
        "agora_operator_subscribers",
        "Operator event stream subscribers.",
    );
    let _ = writeln!(o, "agora_operator_subscribers {}", g.operator_subscribers);
    let _ = writeln!(
        o,
        "# HELP agora_operator_subscribers_dropped_slow_total Operator subscribers cut off for falling behind.\n# TYPE agora_operator_subscribers_dropped_slow_total counter\nagora_operator_subscribers_dropped_slow_total {}",
        g.operator_subscribers_dropped_slow
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histogram_and_gauges() {
        let mut m = Metrics {
            offers_sent: 3,
            ..Metrics::default()
        };
        m.tasks_terminal.insert("FINISHED", 2);
        m.observe_cycle(Duration::from_micros(300));
        let mut g = Gauges::default();
        g.agents_by_status.insert("registered", 2);
        g.resources.push(("cpus".into(), 8.0, 1.5, 2.0));
        let text = render(&m, &g);
        assert!(text.contains("agora_offers_sent_total 3\n"));
        assert!(text.contains("agora_tasks_terminal_total{state=\"FINISHED\"} 2\n"));
        assert!(text.contains("agora_allocation_cycle_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("agora_allocation_cycle_seconds_bucket{le=\"0.0001\"} 0\n"));
        assert!(text.contains("agora_allocation_cycle_seconds_count 1\n"));
        assert!(text.contains("agora_agents{status=\"registered\"} 2\n"));
        assert!(text.contains("agora_resources{kind=\"cpus\",use=\"allocated\"} 1.5\n"));
    }
}

//! The autoscaling policy: from the utilisation of an app's instances to how many
//! instances it should run, within its bounds and its cooldown.
//!
//! Two pure functions, tested against tables: [`utilisation`] turns two usage samples of
//! one instance (the agents' cgroup counters, as the master's usage API serves them) into
//! a share of what the instance was given, and [`decide`] turns the mean of those shares
//! into a [`Decision`]. The rule is target tracking (Kubernetes' horizontal autoscaler
//! uses the same): `desired = ceil(current * mean / target)`, no change while the mean is
//! within [`TOLERANCE`] of the target, the result clamped to `min..=max`.
//!
//! This module must never read a clock, do I/O or remember anything: the core keeps the
//! samples and the last decision, the daemon fetches the usage, and the time is an
//! argument.

use serde::Serialize;

use crate::app::{Autoscale, AutoscaleMetric};
use crate::time::Millis;

/// No change while `|mean / target - 1|` is at most this (damps flapping around the target).
pub const TOLERANCE: f64 = 0.1;

/// One usage reading of one instance's container.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// CPU time used since the container started, nanoseconds.
    pub cpu_time_ns: u64,
    /// Memory in use, bytes.
    pub memory_bytes: u64,
    /// The container's memory limit, bytes (0: unknown).
    pub memory_limit_bytes: u64,
    /// When the reading was taken (the master's receipt of the report), ms.
    pub at_ms: Millis,
}

/// The utilisation of one instance given `cpus` and `mem_mb`: for `cpu`, the CPU time used
/// between `prev` and `cur` per second of wall time, over `cpus`; for `mem`, the memory in
/// use at `cur` over the limit (`mem_mb` when the report has none). `None` when it cannot
/// be known: no earlier sample or no time between them (cpu), a counter that went back
/// (another container), or nothing allotted.
pub fn utilisation(
    metric: AutoscaleMetric,
    prev: Option<&Sample>,
    cur: &Sample,
    cpus: f64,
    mem_mb: f64,
) -> Option<f64> {
    match metric {
        AutoscaleMetric::Cpu => {
            let prev = prev?;
            let wall_ms = cur.at_ms.checked_sub(prev.at_ms).filter(|d| *d > 0)?;
            let used_ns = cur.cpu_time_ns.checked_sub(prev.cpu_time_ns)?;
            (cpus > 0.0).then(|| used_ns as f64 / (wall_ms as f64 * 1e6) / cpus)
        }
        AutoscaleMetric::Mem => {
            let limit = if cur.memory_limit_bytes > 0 {
                cur.memory_limit_bytes as f64
            } else {
                mem_mb * 1024.0 * 1024.0
            };
            (limit > 0.0).then(|| cur.memory_bytes as f64 / limit)
        }
    }
}

/// A bound of the autoscaling range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bound {
    /// `min`.
    Min,
    /// `max`.
    Max,
}

/// Why nothing changes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "reason")]
pub enum Hold {
    /// A deployment of the app runs (its own, or one of ours not finished yet).
    Deploying,
    /// No instance has a utilisation yet.
    NoData,
    /// The mean is within [`TOLERANCE`] of the target.
    OnTarget,
    /// The last change of `instances` was less than `cooldownSeconds` ago.
    Cooldown {
        /// Milliseconds until another change may be made.
        left_ms: Millis,
    },
}

/// What the policy says for one app.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// Keep `instances` as it is.
    Hold(Hold),
    /// Set `instances` to `to` (`desired` before clamping to the bounds).
    Scale {
        /// The new instance count.
        to: u32,
        /// What the utilisation asked for, unclamped (equal to `to` inside the bounds).
        desired: u32,
        /// The mean utilisation it was computed from (`None` when only the bounds moved it).
        utilisation: Option<f64>,
    },
    /// The app runs at a bound and the utilisation asks to go past it: a human may need to
    /// widen the range or add capacity.
    AtBound {
        /// Which bound.
        bound: Bound,
        /// What the utilisation asked for.
        desired: u32,
        /// The mean utilisation.
        utilisation: f64,
    },
}

/// What [`decide`] reads about one app.
#[derive(Clone, Debug, PartialEq)]
pub struct Input<'a> {
    /// The app's `instances`.
    pub current: u32,
    /// Utilisations of its ready instances of the current configuration.
    pub utilisations: &'a [f64],
    /// A deployment of the app runs.
    pub deploying: bool,
    /// When `instances` last changed (by anyone), ms.
    pub last_scaling_ms: Millis,
    /// Now, ms.
    pub now: Millis,
}

/// The decision for one app (see the module documentation for the rule). Order: a
/// deployment holds everything; a count outside the bounds is brought inside at once
/// (not waiting for data or the cooldown); then the utilisation decides, and the cooldown
/// delays a change but not the report of a bound.
pub fn decide(policy: &Autoscale, input: &Input<'_>) -> Decision {
    if input.deploying {
        return Decision::Hold(Hold::Deploying);
    }
    let current = input.current;
    let bounded = current.clamp(policy.min, policy.max);
    if bounded != current {
        return Decision::Scale {
            to: bounded,
            desired: bounded,
            utilisation: None,
        };
    }
    if input.utilisations.is_empty() {
        return Decision::Hold(Hold::NoData);
    }
    let mean = input.utilisations.iter().sum::<f64>() / input.utilisations.len() as f64;
    let ratio = mean / policy.target;
    if (ratio - 1.0).abs() <= TOLERANCE {
        return Decision::Hold(Hold::OnTarget);
    }
    // A tiny epsilon keeps exact products (4 x 0.5 / 0.5) from rounding up by one.
    let wanted = (f64::from(current) * ratio - 1e-9).ceil().max(0.0);
    let desired = if wanted >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        wanted as u32
    };
    let to = desired.clamp(policy.min, policy.max);
    if to == current {
        return match desired.cmp(&current) {
            std::cmp::Ordering::Greater => Decision::AtBound {
                bound: Bound::Max,
                desired,
                utilisation: mean,
            },
            std::cmp::Ordering::Less => Decision::AtBound {
                bound: Bound::Min,
                desired,
                utilisation: mean,
            },
            std::cmp::Ordering::Equal => Decision::Hold(Hold::OnTarget),
        };
    }
    let cooldown_ms = (policy.cooldown_seconds.max(0.0) * 1000.0).round() as Millis;
    let free_at = input.last_scaling_ms.saturating_add(cooldown_ms);
    if input.now < free_at {
        return Decision::Hold(Hold::Cooldown {
            left_ms: free_at - input.now,
        });
    }
    Decision::Scale {
        to,
        desired,
        utilisation: Some(mean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32, target: f64, cooldown_seconds: f64) -> Autoscale {
        Autoscale {
            min,
            max,
            metric: AutoscaleMetric::Cpu,
            target,
            cooldown_seconds,
        }
    }

    fn sample(cpu_time_ns: u64, at_ms: Millis) -> Sample {
        Sample {
            cpu_time_ns,
            memory_bytes: 0,
            memory_limit_bytes: 0,
            at_ms,
        }
    }

    #[test]
    fn utilisation_table() {
        use AutoscaleMetric::{Cpu, Mem};
        let mem = |bytes: u64, limit: u64| Sample {
            cpu_time_ns: 0,
            memory_bytes: bytes,
            memory_limit_bytes: limit,
            at_ms: 0,
        };
        // (metric, prev, cur, cpus, mem_mb, expected)
        #[rustfmt::skip]
        #[allow(clippy::type_complexity)]
        let cases: Vec<(AutoscaleMetric, Option<Sample>, Sample, f64, f64, Option<f64>)> = vec![
            // Half a core for a second, given one cpu: 0.5.
            (Cpu, Some(sample(0, 1000)), sample(500_000_000, 2000), 1.0, 0.0, Some(0.5)),
            // A tenth of a core over two seconds, given 0.1 cpus: 1.0.
            (Cpu, Some(sample(1_000_000_000, 0)), sample(1_200_000_000, 2000), 0.1, 0.0, Some(1.0)),
            // Idle.
            (Cpu, Some(sample(7, 0)), sample(7, 1000), 0.5, 0.0, Some(0.0)),
            // No earlier sample, no time between, a counter that went back: unknown.
            (Cpu, None, sample(5, 1000), 1.0, 0.0, None),
            (Cpu, Some(sample(0, 1000)), sample(5, 1000), 1.0, 0.0, None),
            (Cpu, Some(sample(9, 0)), sample(5, 1000), 1.0, 0.0, None),
            (Cpu, Some(sample(0, 0)), sample(5, 1000), 0.0, 0.0, None),
            // Memory over the reported limit, else over `mem`.
            (Mem, None, mem(256 << 20, 512 << 20), 1.0, 128.0, Some(0.5)),
            (Mem, None, mem(32 << 20, 0), 1.0, 128.0, Some(0.25)),
            (Mem, None, mem(32 << 20, 0), 1.0, 0.0, None),
        ];
        for (i, (metric, prev, cur, cpus, mem_mb, want)) in cases.into_iter().enumerate() {
            let got = utilisation(metric, prev.as_ref(), &cur, cpus, mem_mb);
            match (got, want) {
                (Some(g), Some(w)) => assert!((g - w).abs() < 1e-9, "case {i}: {g} != {w}"),
                (g, w) => assert_eq!(g, w, "case {i}"),
            }
        }
    }

    #[test]
    fn decision_table() {
        let scale = |to, desired, u| Decision::Scale {
            to,
            desired,
            utilisation: u,
        };
        let at = |bound, desired, utilisation| Decision::AtBound {
            bound,
            desired,
            utilisation,
        };
        let hold = Decision::Hold;
        // (min, max, target, cooldown s, current, utilisations, deploying, last scaling ms,
        //  now ms, expected)
        #[rustfmt::skip]
        #[allow(clippy::type_complexity)]
        let cases: Vec<(u32, u32, f64, f64, u32, Vec<f64>, bool, Millis, Millis, Decision)> = vec![
            // Twice the target: twice the instances.
            (1, 10, 0.5, 0.0, 2, vec![1.0, 1.0], false, 0, 10_000, scale(4, 4, Some(1.0))),
            // Uneven load: the mean counts. 3 x 0.75 / 0.5 = 4.5 -> 5.
            (1, 10, 0.5, 0.0, 3, vec![1.0, 0.75, 0.5], false, 0, 10_000, scale(5, 5, Some(0.75))),
            // Idle: down to what the load needs, at least min.
            (1, 10, 0.5, 0.0, 4, vec![0.1], false, 0, 10_000, scale(1, 1, Some(0.1))),
            (2, 10, 0.5, 0.0, 4, vec![0.0; 4], false, 0, 10_000, scale(2, 0, Some(0.0))),
            // Within the tolerance: hold (0.54 / 0.5 = 1.08).
            (1, 10, 0.5, 0.0, 4, vec![0.54], false, 0, 10_000, hold(Hold::OnTarget)),
            // Just outside it: 4 x 0.56 / 0.5 = 4.48 -> 5.
            (1, 10, 0.5, 0.0, 4, vec![0.56], false, 0, 10_000, scale(5, 5, Some(0.56))),
            // Exact products do not round up by one: 4 x 0.75 / 0.5 = 6.
            (1, 10, 0.5, 0.0, 4, vec![0.75], false, 0, 10_000, scale(6, 6, Some(0.75))),
            // Over max: clamped.
            (1, 5, 0.5, 0.0, 3, vec![1.0; 3], false, 0, 10_000, scale(5, 6, Some(1.0))),
            // At max and still hot: the bound is reported, nothing changes.
            (1, 5, 0.5, 0.0, 5, vec![1.0; 5], false, 0, 10_000, at(Bound::Max, 10, 1.0)),
            // At min and still idle.
            (2, 5, 0.5, 0.0, 2, vec![0.0; 2], false, 0, 10_000, at(Bound::Min, 0, 0.0)),
            // At min, lightly loaded, but what the load needs is min itself: no bound.
            (1, 5, 0.5, 0.0, 1, vec![0.2], false, 0, 10_000, hold(Hold::OnTarget)),
            // Cooldown: 30 s after a change at 100 s, at 110 s: 20 s left.
            (1, 10, 0.5, 30.0, 2, vec![1.0; 2], false, 100_000, 110_000,
                hold(Hold::Cooldown { left_ms: 20_000 })),
            // ... and once it has passed, the change goes through.
            (1, 10, 0.5, 30.0, 2, vec![1.0; 2], false, 100_000, 130_000, scale(4, 4, Some(1.0))),
            // The cooldown does not hide a bound.
            (1, 2, 0.5, 30.0, 2, vec![1.0; 2], false, 100_000, 110_000, at(Bound::Max, 4, 1.0)),
            // A deployment holds everything, even a count outside the bounds.
            (1, 10, 0.5, 0.0, 2, vec![1.0; 2], true, 0, 10_000, hold(Hold::Deploying)),
            (3, 10, 0.5, 0.0, 1, vec![], true, 0, 10_000, hold(Hold::Deploying)),
            // No data: hold.
            (1, 10, 0.5, 0.0, 2, vec![], false, 0, 10_000, hold(Hold::NoData)),
            // Outside the bounds: brought inside at once, with no data and in the cooldown.
            (3, 10, 0.5, 60.0, 1, vec![], false, 9_000, 10_000, scale(3, 3, None)),
            (1, 4, 0.5, 60.0, 9, vec![0.5; 9], false, 9_000, 10_000, scale(4, 4, None)),
            // A huge ratio saturates instead of overflowing.
            (1, 100_000, 0.01, 0.0, 100_000, vec![1e300], false, 0, 1,
                at(Bound::Max, u32::MAX, 1e300)),
        ];
        for (i, (min, max, target, cool, current, utils, deploying, last, now, want)) in
            cases.into_iter().enumerate()
        {
            let got = decide(
                &policy(min, max, target, cool),
                &Input {
                    current,
                    utilisations: &utils,
                    deploying,
                    last_scaling_ms: last,
                    now,
                },
            );
            assert_eq!(got, want, "case {i}");
        }
    }
}

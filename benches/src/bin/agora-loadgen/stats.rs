//! Measurement primitives: latency samples with exact percentiles, per-second event
//! series, and least-squares slopes. Everything here is plain data, merged by the scenarios
//! and serialised by the report.

use std::time::{Duration, Instant};

use serde::Serialize;

/// Most samples one `Samples` keeps; later ones are counted but not stored, so a very long
/// run cannot grow the harness without bound.
const MAX_SAMPLES: usize = 20_000_000;

/// Latency samples in microseconds. Kept exactly (4 bytes each): percentiles are exact.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    micros: Vec<u32>,
    dropped: u64,
}

/// Percentiles of a `Samples`, in milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Samples {
    pub fn record(&mut self, d: Duration) {
        if self.micros.len() >= MAX_SAMPLES {
            self.dropped += 1;
            return;
        }
        self.micros
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    pub fn summary(&self) -> Summary {
        if self.micros.is_empty() {
            return Summary::default();
        }
        let mut v = self.micros.clone();
        v.sort_unstable();
        let pick = |q: f64| {
            // Nearest-rank percentile.
            let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
            f64::from(v[rank - 1]) / 1000.0
        };
        let sum: u64 = v.iter().map(|&x| u64::from(x)).sum();
        Summary {
            count: v.len() as u64 + self.dropped,
            mean_ms: sum as f64 / v.len() as f64 / 1000.0,
            p50_ms: pick(0.50),
            p90_ms: pick(0.90),
            p99_ms: pick(0.99),
            p999_ms: pick(0.999),
            max_ms: f64::from(v[v.len() - 1]) / 1000.0,
        }
    }

    /// The empirical CDF at up to `points` quantiles: (latency ms, fraction).
    pub fn cdf(&self, points: usize) -> Vec<(f64, f64)> {
        if self.micros.is_empty() || points == 0 {
            return Vec::new();
        }
        let mut v = self.micros.clone();
        v.sort_unstable();
        let n = v.len();
        (1..=points)
            .map(|i| {
                let q = i as f64 / points as f64;
                let idx = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
                (f64::from(v[idx]) / 1000.0, q)
            })
            .collect()
    }
}

/// Events counted per whole second since a start instant.
#[derive(Clone, Debug)]
pub struct PerSecond {
    start: Instant,
    counts: Vec<u64>,
}

impl PerSecond {
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            counts: Vec::new(),
        }
    }

    pub fn bump(&mut self, at: Instant) {
        let s = at.saturating_duration_since(self.start).as_secs() as usize;
        if s >= self.counts.len() {
            self.counts.resize(s + 1, 0);
        }
        self.counts[s] += 1;
    }

    pub fn counts(&self) -> &[u64] {
        &self.counts
    }
}

/// Highest average rate over any window of `w` whole seconds (events/s) of per-second
/// counts.
pub fn peak_window(counts: &[u64], w: usize) -> f64 {
    if counts.is_empty() || w == 0 {
        return 0.0;
    }
    let w = w.min(counts.len());
    counts
        .windows(w)
        .map(|x| x.iter().sum::<u64>() as f64 / w as f64)
        .fold(0.0, f64::max)
}

/// Least-squares fit y = slope * x + intercept. None with fewer than two distinct x.
pub fn linear_fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    Some((slope, my - slope * mx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100u64 {
            s.record(Duration::from_millis(ms));
        }
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.p50_ms, 50.0);
        assert_eq!(sum.p99_ms, 99.0);
        assert_eq!(sum.max_ms, 100.0);
        assert!((sum.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn windows_and_rates() {
        let t0 = Instant::now();
        let mut p = PerSecond::new(t0);
        for (sec, n) in [(1u64, 10), (2, 30), (3, 20)] {
            for _ in 0..n {
                p.bump(t0 + Duration::from_secs(sec) + Duration::from_millis(5));
            }
        }
        assert_eq!(p.counts(), &[0, 10, 30, 20]);
        assert_eq!(peak_window(p.counts(), 2), 25.0);
        assert_eq!(peak_window(p.counts(), 9), 15.0);
    }

    #[test]
    fn fit_recovers_a_line() {
        let pts: Vec<(f64, f64)> = (0..5).map(|x| (x as f64, 3.0 * x as f64 + 7.0)).collect();
        let (m, b) = linear_fit(&pts).expect("fit");
        assert!((m - 3.0).abs() < 1e-9 && (b - 7.0).abs() < 1e-9);
        assert!(linear_fit(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}

//! Per-principal rate limits on scheduler calls (`--rate-limits`): the file format and a
//! token bucket per principal, driven by explicit times so tests control the clock.
//!
//! Owns the limits and the buckets. It must never sleep or read a clock itself (the
//! caller passes `now_ms`), and never block a call: over the limit it answers "no" at once.

use std::collections::HashMap;

use thiserror::Error;

use crate::clock::Millis;

/// One principal's allowance: `qps` calls per second on average, bursts up to `burst`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub qps: f64,
    pub burst: f64,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum RateLimitError {
    #[error("rate limits: not valid: {0}")]
    Json(String),
    #[error("rate limits: {what}: qps must be a finite number > 0, got {qps}")]
    Qps { what: String, qps: String },
    #[error("rate limits: {what}: burst must be a finite number >= 1, got {burst}")]
    Burst { what: String, burst: String },
    #[error("rate limits: principal '{0}' is listed twice")]
    Duplicate(String),
    #[error("rate limits: entry {0} has an empty principal")]
    EmptyPrincipal(usize),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitEntry {
    principal: String,
    qps: f64,
    #[serde(default)]
    burst: Option<f64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DefaultEntry {
    qps: f64,
    #[serde(default)]
    burst: Option<f64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    limits: Vec<LimitEntry>,
    #[serde(default)]
    default: Option<DefaultEntry>,
}

/// Limits per principal, and the one for everybody else (unauthenticated callers count
/// as the principal "").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateLimits {
    pub per_principal: HashMap<String, Limit>,
    pub default: Option<Limit>,
}

fn limit(what: String, qps: f64, burst: Option<f64>) -> Result<Limit, RateLimitError> {
    if !qps.is_finite() || qps <= 0.0 {
        return Err(RateLimitError::Qps {
            what,
            qps: qps.to_string(),
        });
    }
    // Without a burst, one second's worth of calls (at least one call).
    let burst = burst.unwrap_or(qps.max(1.0));
    if !burst.is_finite() || burst < 1.0 {
        return Err(RateLimitError::Burst {
            what,
            burst: burst.to_string(),
        });
    }
    Ok(Limit { qps, burst })
}

impl RateLimits {
    /// `{"limits": [{"principal": "p", "qps": 100, "burst": 200}], "default": {"qps": 10}}`.
    pub fn parse(text: &str) -> Result<RateLimits, RateLimitError> {
        let f: File =
            serde_json::from_str(text).map_err(|e| RateLimitError::Json(e.to_string()))?;
        let mut out = RateLimits::default();
        for (i, e) in f.limits.into_iter().enumerate() {
            if e.principal.is_empty() {
                return Err(RateLimitError::EmptyPrincipal(i));
            }
            let l = limit(format!("principal '{}'", e.principal), e.qps, e.burst)?;
            if out.per_principal.insert(e.principal.clone(), l).is_some() {
                return Err(RateLimitError::Duplicate(e.principal));
            }
        }
        if let Some(d) = f.default {
            out.default = Some(limit("default".into(), d.qps, d.burst)?);
        }
        Ok(out)
    }

    pub fn limit_for(&self, principal: &str) -> Option<Limit> {
        self.per_principal.get(principal).copied().or(self.default)
    }
}

/// Tokens refill at `qps` per second up to `burst`; a call takes one.
#[derive(Clone, Copy, Debug)]
pub struct Bucket {
    tokens: f64,
    last_ms: Millis,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: Limit, now_ms: Millis) -> Bucket {
        Bucket {
            tokens: limit.burst,
            last_ms: now_ms,
        }
    }

    /// Take a token if one is there. A clock that moved backwards refills nothing.
    pub fn try_take(&mut self, limit: Limit, now_ms: Millis) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * limit.qps).min(limit.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The buckets of every principal that has called.
#[derive(Debug, Default)]
pub struct Limiter {
    limits: RateLimits,
    buckets: HashMap<String, Bucket>,
}

impl Limiter {
    pub fn new(limits: RateLimits) -> Limiter {
        Limiter {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// `Ok` if the call may go ahead; `Err(limit)` with the limit it exceeded.
    pub fn check(&mut self, principal: &str, now_ms: Millis) -> Result<(), Limit> {
        let Some(limit) = self.limits.limit_for(principal) else {
            return Ok(());
        };
        let bucket = self
            .buckets
            .entry(principal.to_string())
            .or_insert_with(|| Bucket::new(limit, now_ms));
        if bucket.try_take(limit, now_ms) {
            Ok(())
        } else {
            Err(limit)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let l = Limit {
            qps: 2.0,
            burst: 3.0,
        };
        let mut b = Bucket::new(l, 1_000);
        assert!(b.try_take(l, 1_000));
        assert!(b.try_take(l, 1_000));
        assert!(b.try_take(l, 1_000));
        assert!(!b.try_take(l, 1_000));
        // 2 per second: one token after 500 ms, not before.
        assert!(!b.try_take(l, 1_499));
        assert!(b.try_take(l, 1_500));
        assert!(!b.try_take(l, 1_500));
        // A long pause refills only up to the burst.
        for _ in 0..3 {
            assert!(b.try_take(l, 100_000));
        }
        assert!(!b.try_take(l, 100_000));
        // A clock going backwards gives nothing.
        assert!(!b.try_take(l, 50_000));
    }

    #[test]
    fn limiter_keeps_principals_apart_and_uses_the_default() {
        let limits = RateLimits::parse(
            r#"{"limits": [{"principal": "slow", "qps": 1, "burst": 1}], "default": {"qps": 1, "burst": 2}}"#,
        )
        .expect("valid");
        let mut l = Limiter::new(limits);
        assert!(l.check("slow", 0).is_ok());
        assert_eq!(
            l.check("slow", 0),
            Err(Limit {
                qps: 1.0,
                burst: 1.0
            })
        );
        assert!(l.check("other", 0).is_ok());
        assert!(l.check("other", 0).is_ok());
        assert!(l.check("other", 0).is_err());
        assert!(
            l.check("", 0).is_ok(),
            "unauthenticated callers have their own bucket"
        );
        assert!(l.check("slow", 1_000).is_ok());

        let mut unlimited = Limiter::new(
            RateLimits::parse(r#"{"limits": [{"principal": "a", "qps": 1}]}"#).expect("valid"),
        );
        for _ in 0..1000 {
            assert!(unlimited.check("b", 0).is_ok());
        }
    }

    #[test]
    fn bad_files_are_refused_precisely() {
        let err = |t: &str| RateLimits::parse(t).expect_err(t).to_string();
        assert!(err("x").starts_with("rate limits: not valid"));
        assert!(err(r#"{"limits": [{"principal": "a"}]}"#).contains("missing field `qps`"));
        assert!(err(r#"{"limit": []}"#).contains("unknown field"));
        assert_eq!(
            err(r#"{"limits": [{"principal": "a", "qps": 0}]}"#),
            "rate limits: principal 'a': qps must be a finite number > 0, got 0"
        );
        assert_eq!(
            err(r#"{"limits": [{"principal": "a", "qps": 5, "burst": 0.5}]}"#),
            "rate limits: principal 'a': burst must be a finite number >= 1, got 0.5"
        );
        assert_eq!(
            err(r#"{"default": {"qps": -1}}"#),
            "rate limits: default: qps must be a finite number > 0, got -1"
        );
        assert_eq!(
            err(r#"{"limits": [{"principal": "a", "qps": 1}, {"principal": "a", "qps": 2}]}"#),
            "rate limits: principal 'a' is listed twice"
        );
        assert_eq!(
            err(r#"{"limits": [{"principal": "", "qps": 1}]}"#),
            "rate limits: entry 0 has an empty principal"
        );
        let defaults =
            RateLimits::parse(r#"{"limits": [{"principal": "a", "qps": 0.5}]}"#).expect("valid");
        assert_eq!(
            defaults.limit_for("a"),
            Some(Limit {
                qps: 0.5,
                burst: 1.0
            })
        );
        assert_eq!(defaults.limit_for("b"), None);
    }

    proptest::proptest! {
        /// Whatever the call times, a bucket never lets through more than
        /// `burst + qps * elapsed` calls, and never panics.
        #[test]
        fn bucket_never_exceeds_burst_plus_rate(
            qps in 0.1f64..1000.0,
            burst in 1.0f64..500.0,
            steps in proptest::collection::vec(0u64..2_000, 1..300),
        ) {
            let limit = Limit { qps, burst };
            let start = 1_000_000;
            let mut now = start;
            let mut bucket = Bucket::new(limit, now);
            let mut allowed = 0u64;
            for step in steps {
                now += step;
                if bucket.try_take(limit, now) {
                    allowed += 1;
                }
            }
            let bound = burst + qps * (now - start) as f64 / 1000.0;
            proptest::prop_assert!(allowed as f64 <= bound + 1e-6, "{allowed} > {bound}");
        }

        #[test]
        fn parser_never_panics(text in "\\PC{0,120}") {
            let _ = RateLimits::parse(&text);
        }
    }
}

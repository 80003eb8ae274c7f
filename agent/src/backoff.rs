//! Bounded exponential backoff.
//!
//! Owns nothing but its own counter. It must never sleep or read a clock itself: callers
//! ask for the next delay and wait with `tokio::time`, so tests control time.

use std::time::Duration;

/// First delay of the agent's retry loops (reconnecting, re-sending status updates).
pub const INITIAL_DELAY: Duration = Duration::from_millis(500);
/// Smallest delay a [`Backoff`] ever returns.
pub const MIN_DELAY: Duration = Duration::from_millis(1);
/// Largest delay of the agent's retry loops.
pub const MAX_DELAY: Duration = Duration::from_secs(10);

/// Delays that start at `initial` and double on every call, capped at `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (`max` wins if it is smaller). Delays
    /// are at least [`MIN_DELAY`], so a retry loop can never spin.
    pub fn new(initial: Duration, max: Duration) -> Backoff {
        let max = max.max(MIN_DELAY);
        let initial = initial.clamp(MIN_DELAY, max);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The agent's standard backoff: 0.5 s doubling, capped at 10 s.
    pub fn standard() -> Backoff {
        Backoff::new(INITIAL_DELAY, MAX_DELAY)
    }

    /// The delay to wait now; the following call returns twice as much (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Start again from the initial delay.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn doubles_and_caps() {
        let mut b = Backoff::standard();
        let got: Vec<_> = (0..8).map(|_| b.next_delay()).collect();
        assert_eq!(
            got,
            [
                ms(500),
                ms(1000),
                ms(2000),
                ms(4000),
                ms(8000),
                ms(10_000),
                ms(10_000),
                ms(10_000)
            ]
        );
    }

    #[test]
    fn reset_starts_over() {
        let mut b = Backoff::standard();
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), ms(500));
    }

    #[test]
    fn initial_above_max_is_capped() {
        let mut b = Backoff::new(ms(50), ms(20));
        assert_eq!(b.next_delay(), ms(20));
        assert_eq!(b.next_delay(), ms(20));
    }

    #[test]
    fn zero_is_raised_to_the_minimum() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(b.next_delay(), MIN_DELAY);
        assert_eq!(b.next_delay(), MIN_DELAY);
    }

    #[test]
    fn huge_values_do_not_overflow() {
        let mut b = Backoff::new(Duration::MAX / 2, Duration::MAX);
        b.next_delay();
        b.next_delay();
        assert_eq!(b.next_delay(), Duration::MAX);
    }
}

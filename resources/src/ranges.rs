//! [`Ranges`]: a set of `u64` values held as sorted, coalesced, disjoint inclusive ranges
//! (ports are the usual example).
//!
//! Owns: the normal form (sorted by begin, no overlap, no two ranges touching: `[1-2,3-4]`
//! is `[1-4]`), set operations on it and its text form `[80,21000-29000]`.
//! Must never: hold a range with begin > end, expose a way to break the normal form,
//! overflow at `u64::MAX`, or panic on any input.

use std::fmt;

use crate::error::ResourceError;

/// Sorted, coalesced, disjoint inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Builds the normal form of the given inclusive ranges, in any order, overlapping or
    /// not. A range with `begin > end` is an error.
    pub fn new(iter: impl IntoIterator<Item = (u64, u64)>) -> Result<Ranges, ResourceError> {
        let mut v = Vec::new();
        for (begin, end) in iter {
            if begin > end {
                return Err(ResourceError::ReversedRange { begin, end });
            }
            v.push((begin, end));
        }
        Ok(Ranges(normalize(v)))
    }

    /// The ranges, ascending, as inclusive `(begin, end)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().copied()
    }

    /// Number of values covered (saturating at `u64::MAX` for `[0-18446744073709551615]`).
    pub fn count(&self) -> u64 {
        self.0.iter().fold(0u64, |acc, &(b, e)| {
            acc.saturating_add((e - b).saturating_add(1))
        })
    }

    /// Whether no value is covered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every value of `other` is in `self`.
    pub fn contains(&self, other: &Ranges) -> bool {
        other.0.iter().all(|&(b, e)| self.covers(b, e))
    }

    /// Whether `v` is in `self`.
    pub fn contains_value(&self, v: u64) -> bool {
        self.covers(v, v)
    }

    /// Every value in `self` or `other`.
    pub fn union(&self, other: &Ranges) -> Ranges {
        let mut v = Vec::with_capacity(self.0.len() + other.0.len());
        v.extend_from_slice(&self.0);
        v.extend_from_slice(&other.0);
        Ranges(normalize(v))
    }

    /// `self` without the values of `other`, or `None` if `other` is not contained.
    pub fn checked_sub(&self, other: &Ranges) -> Option<Ranges> {
        self.contains(other).then(|| self.difference(other))
    }

    /// The `n` lowest values, if at least `n` are held (`n == 0` gives the empty ranges).
    pub fn take_first(&self, n: u64) -> Option<Ranges> {
        let mut out = Vec::new();
        let mut remaining = n;
        for &(b, e) in &self.0 {
            if remaining == 0 {
                break;
            }
            let span_minus_one = e - b;
            if remaining - 1 <= span_minus_one {
                out.push((b, b + (remaining - 1)));
                remaining = 0;
            } else {
                out.push((b, e));
                remaining -= span_minus_one + 1;
            }
        }
        (remaining == 0).then_some(Ranges(out))
    }

    /// Every value in both `self` and `other`.
    pub fn intersection(&self, other: &Ranges) -> Ranges {
        self.difference(&self.difference(other))
    }

    /// `self` without the values of `other` (whether contained or not).
    pub fn difference(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        let mut first = 0usize;
        for &(b, e) in &self.0 {
            // Skip the ranges of `other` that end before this one starts.
            while other.0.get(first).is_some_and(|&(_, oe)| oe < b) {
                first += 1;
            }
            let mut cur = b;
            let mut exhausted = false;
            for &(ob, oe) in other.0.iter().skip(first) {
                if ob > e {
                    break;
                }
                if ob > cur {
                    out.push((cur, ob - 1));
                }
                if oe >= e {
                    exhausted = true;
                    break;
                }
                // oe < e, so this cannot overflow.
                cur = cur.max(oe + 1);
            }
            if !exhausted {
                out.push((cur, e));
            }
        }
        Ranges(normalize(out))
    }

    /// Whether `[b, e]` lies inside one range of `self` (ranges are coalesced, so a
    /// contained range is always inside a single one).
    fn covers(&self, b: u64, e: u64) -> bool {
        let i = self.0.partition_point(|&(_, re)| re < b);
        self.0.get(i).is_some_and(|&(rb, re)| rb <= b && e <= re)
    }
}

/// Sorts and merges overlapping or touching ranges. Input ranges must have begin <= end.
fn normalize(mut v: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (b, e) in v {
        match out.last_mut() {
            Some(last) if b <= last.1.saturating_add(1) => last.1 = last.1.max(e),
            _ => out.push((b, e)),
        }
    }
    out
}

impl fmt::Display for Ranges {
    /// `[80,21000-29000]`; a single value is printed alone; the empty ranges is `[]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, &(b, e)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if b == e {
                write!(f, "{b}")?;
            } else {
                write!(f, "{b}-{e}")?;
            }
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(u64, u64)]) -> Ranges {
        Ranges::new(v.iter().copied()).unwrap()
    }

    #[test]
    fn normalises() {
        assert_eq!(
            r(&[(3, 4), (1, 2)]).iter().collect::<Vec<_>>(),
            vec![(1, 4)]
        );
        assert_eq!(
            r(&[(10, 20), (1, 2), (15, 30), (40, 40)])
                .iter()
                .collect::<Vec<_>>(),
            vec![(1, 2), (10, 30), (40, 40)]
        );
        assert_eq!(
            r(&[(u64::MAX, u64::MAX), (0, u64::MAX - 1)])
                .iter()
                .collect::<Vec<_>>(),
            vec![(0, u64::MAX)]
        );
    }

    #[test]
    fn reversed_is_an_error() {
        let e = Ranges::new([(30, 20)]).unwrap_err().to_string();
        assert!(
            e.contains("30-20") && e.contains("begin is greater than end"),
            "{e}"
        );
    }

    #[test]
    fn counts() {
        assert_eq!(r(&[(80, 80), (21000, 29000)]).count(), 8002);
        assert_eq!(r(&[(0, u64::MAX)]).count(), u64::MAX);
        assert_eq!(Ranges::default().count(), 0);
    }

    #[test]
    fn containment() {
        let a = r(&[(80, 80), (21000, 29000)]);
        assert!(a.contains(&r(&[(80, 80), (22000, 22010)])));
        assert!(!a.contains(&r(&[(80, 81)])));
        assert!(a.contains(&Ranges::default()));
        assert!(a.contains_value(21000) && !a.contains_value(81));
    }

    #[test]
    fn subtraction() {
        let a = r(&[(1, 10)]);
        assert_eq!(
            a.checked_sub(&r(&[(3, 4), (10, 10)])),
            Some(r(&[(1, 2), (5, 9)]))
        );
        assert_eq!(a.checked_sub(&r(&[(9, 11)])), None);
        assert_eq!(a.difference(&r(&[(0, 2), (9, 11)])), r(&[(3, 8)]));
        assert_eq!(
            a.intersection(&r(&[(0, 2), (9, 11)])),
            r(&[(1, 2), (9, 10)])
        );
        assert_eq!(
            r(&[(0, u64::MAX)]).difference(&r(&[(5, 5)])),
            r(&[(0, 4), (6, u64::MAX)])
        );
    }

    #[test]
    fn takes_lowest_values() {
        let a = r(&[(80, 80), (21000, 29000)]);
        assert_eq!(a.take_first(0), Some(Ranges::default()));
        assert_eq!(a.take_first(3), Some(r(&[(80, 80), (21000, 21001)])));
        assert_eq!(a.take_first(8002), Some(a.clone()));
        assert_eq!(a.take_first(8003), None);
        assert_eq!(
            r(&[(0, u64::MAX)]).take_first(u64::MAX),
            Some(r(&[(0, u64::MAX - 1)]))
        );
    }

    #[test]
    fn displays() {
        assert_eq!(
            r(&[(80, 80), (21000, 29000)]).to_string(),
            "[80,21000-29000]"
        );
        assert_eq!(Ranges::default().to_string(), "[]");
    }
}

//! [`Value`]: the three kinds of resource value (scalar, ranges, set) and the arithmetic
//! of two values of one resource.
//!
//! Owns: per-value add / subtract / contains, the value type names used in messages
//! ("scalar", "ranges", "set") and the value's text form (`1.5`, `[80,1000-2000]`,
//! `{a,b}`).
//! Must never: combine values of different types, overflow past `Scalar::MAX`, or know
//! about names, reservations or the bag.

use std::collections::BTreeSet;
use std::fmt;

use crate::ranges::Ranges;
use crate::scalar::Scalar;

/// The value of one resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Value {
    /// An amount (cpus, gpus, mem, disk, custom scalars).
    Scalar(Scalar),
    /// A set of integers held as ranges (ports).
    Ranges(Ranges),
    /// A set of words (e.g. `bugs:{a,b,c}`).
    Set(BTreeSet<String>),
}

/// Why two values could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AddError {
    /// The values are of different types.
    Mixed,
    /// The scalar sum exceeds `Scalar::MAX`.
    Overflow,
}

impl Value {
    /// "scalar", "ranges" or "set".
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Ranges(_) => "ranges",
            Value::Set(_) => "set",
        }
    }

    /// Whether the value holds nothing (zero scalar, empty ranges, empty set).
    pub fn is_empty(&self) -> bool {
        match self {
            Value::Scalar(s) => s.is_zero(),
            Value::Ranges(r) => r.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }

    /// Whether both values are of the same type.
    pub(crate) fn same_type(&self, other: &Value) -> bool {
        self.type_name() == other.type_name()
    }

    /// Sum (scalars) or union (ranges, sets).
    pub(crate) fn checked_add(&self, other: &Value) -> Result<Value, AddError> {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => a
                .checked_add(*b)
                .map(Value::Scalar)
                .ok_or(AddError::Overflow),
            (Value::Ranges(a), Value::Ranges(b)) => Ok(Value::Ranges(a.union(b))),
            (Value::Set(a), Value::Set(b)) => Ok(Value::Set(a.union(b).cloned().collect())),
            _ => Err(AddError::Mixed),
        }
    }

    /// Whether `other` is held by `self` (an empty `other` is held by anything).
    pub(crate) fn contains(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => b <= a,
            (Value::Ranges(a), Value::Ranges(b)) => a.contains(b),
            (Value::Set(a), Value::Set(b)) => b.is_subset(a),
            _ => other.is_empty(),
        }
    }

    /// `self - other` if `other` is held, otherwise the part of `other` that is missing.
    pub(crate) fn checked_sub(&self, other: &Value) -> Result<Value, Value> {
        match (self, other) {
            (Value::Scalar(a), Value::Scalar(b)) => match a.checked_sub(*b) {
                Some(d) => Ok(Value::Scalar(d)),
                None => Err(Value::Scalar(Scalar::from_thousandths(
                    b.thousandths() - a.thousandths(),
                ))),
            },
            (Value::Ranges(a), Value::Ranges(b)) => match a.checked_sub(b) {
                Some(d) => Ok(Value::Ranges(d)),
                None => Err(Value::Ranges(b.difference(a))),
            },
            (Value::Set(a), Value::Set(b)) => {
                if b.is_subset(a) {
                    Ok(Value::Set(a.difference(b).cloned().collect()))
                } else {
                    Err(Value::Set(b.difference(a).cloned().collect()))
                }
            }
            _ if other.is_empty() => Ok(self.clone()),
            _ => Err(other.clone()),
        }
    }
}

impl From<Scalar> for Value {
    fn from(s: Scalar) -> Value {
        Value::Scalar(s)
    }
}

impl From<Ranges> for Value {
    fn from(r: Ranges) -> Value {
        Value::Ranges(r)
    }
}

impl From<BTreeSet<String>> for Value {
    fn from(s: BTreeSet<String>) -> Value {
        Value::Set(s)
    }
}

/// Writes a set as `{a,b,c}` (items in sorted order).
pub(crate) fn fmt_set(set: &BTreeSet<String>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    f.write_str("{")?;
    for (i, item) in set.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        f.write_str(item)?;
    }
    f.write_str("}")
}

impl fmt::Display for Value {
    /// The value as in the flag syntax: `1.5`, `[80,1000-2000]`, `{a,b}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Scalar(s) => s.fmt(f),
            Value::Ranges(r) => r.fmt(f),
            Value::Set(s) => fmt_set(s, f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> Value {
        Value::Set(items.iter().map(|s| s.to_string()).collect())
    }

    fn sc(t: u64) -> Value {
        Value::Scalar(Scalar::from_thousandths(t))
    }

    #[test]
    fn adds() {
        assert_eq!(sc(1500).checked_add(&sc(500)), Ok(sc(2000)));
        assert_eq!(
            Value::Scalar(Scalar::MAX).checked_add(&sc(1)),
            Err(AddError::Overflow)
        );
        assert_eq!(sc(1).checked_add(&set(&["a"])), Err(AddError::Mixed));
        assert_eq!(set(&["a"]).checked_add(&set(&["b"])), Ok(set(&["a", "b"])));
    }

    #[test]
    fn subtracts_or_names_the_missing_part() {
        assert_eq!(sc(3000).checked_sub(&sc(1000)), Ok(sc(2000)));
        assert_eq!(sc(1000).checked_sub(&sc(3000)), Err(sc(2000)));
        assert_eq!(
            set(&["a", "b"]).checked_sub(&set(&["b", "c"])),
            Err(set(&["c"]))
        );
        assert_eq!(set(&["a", "b"]).checked_sub(&set(&["b"])), Ok(set(&["a"])));
        assert_eq!(sc(1000).checked_sub(&set(&["x"])), Err(set(&["x"])));
        let r = |v: &[(u64, u64)]| Value::Ranges(Ranges::new(v.iter().copied()).unwrap());
        assert_eq!(r(&[(1, 5)]).checked_sub(&r(&[(4, 7)])), Err(r(&[(6, 7)])));
    }

    #[test]
    fn contains_and_displays() {
        assert!(sc(2000).contains(&sc(2000)));
        assert!(!sc(2000).contains(&sc(2001)));
        assert!(sc(1).contains(&set(&[])));
        assert_eq!(set(&["b", "a"]).to_string(), "{a,b}");
        assert_eq!(sc(1500).to_string(), "1.5");
        assert_eq!(sc(1500).type_name(), "scalar");
    }
}

//! [`Resources`]: the normalised bag of resources and its arithmetic.
//!
//! Owns: the bag's invariants (every entry valid; at most one entry per name,
//! reservation, revocability and volume; one value type per name across the bag; no zero or
//! empty entries; entries in canonical order, so `==` is semantic equality), checked
//! addition and subtraction, containment, and the filters the allocator needs.
//! Must never: hold an entry that breaks those invariants, lose or invent resources
//! silently, or panic on any input. Text, JSON and protobuf forms live in `parse`, `json`
//! and `proto`; this module only delegates to them.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::ResourceError;
use crate::ranges::Ranges;
use crate::resource::Resource;
use crate::role::is_self_or_ancestor;
use crate::scalar::Scalar;
use crate::value::{AddError, Value};

/// A normalised bag: at most one entry per (name, reservation, revocable, volume, value type),
/// no zero or empty entries, entries in a canonical order (so `==` is semantic equality).
///
/// Canonical order: unreserved entries first, then reserved ones by role (static before
/// dynamic, then principal, then labels); within that, non-revocable before revocable;
/// then by name: `cpus`, `gpus`, `mem`, `disk`, `ports`, then other names in byte order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Resources(Vec<Resource>);

/// Why an entry could not be merged into a bag (turned into a [`ResourceError`] naming
/// the item by the caller, so the item's text is only built on failure).
enum MergeError {
    Mixed { existing: &'static str },
    Overflow,
}

impl Resources {
    /// The empty bag.
    pub fn new() -> Resources {
        Resources(Vec::new())
    }

    /// Parses the agent flag syntax (see the crate documentation).
    pub fn parse(text: &str) -> Result<Resources, ResourceError> {
        crate::parse::parse_resources(text)
    }

    /// Parses the JSON form (see the crate documentation), validating like [`Resources::parse`].
    pub fn from_json(text: &str) -> Result<Resources, ResourceError> {
        crate::json::resources_from_json(text)
    }

    /// The JSON form (see the crate documentation).
    pub fn to_json(&self) -> serde_json::Value {
        crate::json::resources_to_json(self)
    }

    /// Converts untrusted protobuf resources, validating every entry like
    /// [`Resources::parse`]; entries of one slot add up.
    pub fn from_proto(items: &[agora_proto::v1::Resource]) -> Result<Resources, ResourceError> {
        let mut out = Resources::new();
        for item in items {
            out.push(Resource::from_proto(item)?)?;
        }
        Ok(out)
    }

    /// The protobuf form, one message per entry, in canonical order.
    pub fn to_proto(&self) -> Vec<agora_proto::v1::Resource> {
        self.0.iter().map(Resource::to_proto).collect()
    }

    /// Validates `r` and adds it to the bag (merging with the entry of the same slot).
    /// A zero or empty value is accepted and adds nothing.
    pub fn push(&mut self, r: Resource) -> Result<(), ResourceError> {
        r.validate()?;
        self.merge_valid(r, None)
    }

    /// [`Resources::push`] naming `item` (the caller's text of the resource) in errors.
    pub(crate) fn push_item(&mut self, r: Resource, item: &str) -> Result<(), ResourceError> {
        r.check()
            .map_err(|reason| ResourceError::resource(item, reason))?;
        self.merge_valid(r, Some(item))
    }

    /// Merges an already validated entry; errors name `item`, or the entry's text.
    fn merge_valid(&mut self, r: Resource, item: Option<&str>) -> Result<(), ResourceError> {
        if r.value.is_empty() {
            return Ok(());
        }
        self.merge(r).map_err(|failed| {
            let (e, r) = *failed;
            let item = item.map_or_else(|| r.to_string(), str::to_string);
            match e {
                MergeError::Mixed { existing } => ResourceError::MixedTypes {
                    item,
                    added: r.value.type_name(),
                    name: r.name,
                    existing,
                },
                MergeError::Overflow => ResourceError::Overflow {
                    item,
                    max: Scalar::MAX,
                },
            }
        })
    }

    /// Merges a valid, non-empty entry into its slot; on failure hands the entry back
    /// (so the error can name it) and leaves the bag unchanged.
    fn merge(&mut self, r: Resource) -> Result<(), Box<(MergeError, Resource)>> {
        if let Some(existing) = self
            .0
            .iter()
            .find(|e| e.name == r.name && !e.value.same_type(&r.value))
        {
            let existing = existing.value.type_name();
            return Err(Box::new((MergeError::Mixed { existing }, r)));
        }
        match self.0.binary_search_by(|e| e.slot_cmp(&r)) {
            Ok(i) => {
                if let Some(e) = self.0.get_mut(i) {
                    match e.value.checked_add(&r.value) {
                        Ok(sum) => e.value = sum,
                        Err(AddError::Overflow) => return Err(Box::new((MergeError::Overflow, r))),
                        Err(AddError::Mixed) => {
                            let existing = e.value.type_name();
                            return Err(Box::new((MergeError::Mixed { existing }, r)));
                        }
                    }
                }
            }
            Err(i) => self.0.insert(i, r),
        }
        Ok(())
    }

    /// The entries, in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &Resource> {
        self.0.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the bag holds nothing.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `self + other`: scalars add, ranges and sets unite. Errors on a scalar total above
    /// [`Scalar::MAX`] or a name held with two value types.
    pub fn checked_add(&self, other: &Resources) -> Result<Resources, ResourceError> {
        let mut out = self.clone();
        for r in &other.0 {
            out.merge_valid(r.clone(), None)?;
        }
        Ok(out)
    }

    /// `self - other`. Errors unless `other` is contained, naming everything missing
    /// (in the flag syntax).
    pub fn checked_sub(&self, other: &Resources) -> Result<Resources, ResourceError> {
        let mut out = self.clone();
        let mut missing: Vec<Resource> = Vec::new();
        for want in &other.0 {
            let held = out
                .0
                .binary_search_by(|e| e.slot_cmp(want))
                .ok()
                .and_then(|i| out.0.get_mut(i));
            match held {
                Some(e) => match e.value.checked_sub(&want.value) {
                    Ok(rest) => e.value = rest,
                    Err(lacking) => missing.push(Resource {
                        value: lacking,
                        ..want.clone()
                    }),
                },
                None => missing.push(want.clone()),
            }
        }
        if !missing.is_empty() {
            let missing: Vec<String> = missing.iter().map(Resource::to_string).collect();
            return Err(ResourceError::NotContained {
                missing: missing.join(";"),
            });
        }
        out.0.retain(|e| !e.value.is_empty());
        Ok(out)
    }

    /// Whether every entry of `other` is held by `self`.
    pub fn contains(&self, other: &Resources) -> bool {
        other.0.iter().all(|want| {
            self.0
                .binary_search_by(|e| e.slot_cmp(want))
                .ok()
                .and_then(|i| self.0.get(i))
                .is_some_and(|e| e.value.contains(&want.value))
        })
    }

    /// The entries for which `keep` is true.
    pub fn filter(&self, keep: impl Fn(&Resource) -> bool) -> Resources {
        Resources(self.0.iter().filter(|r| keep(r)).cloned().collect())
    }

    /// The unreserved entries (revocable or not).
    pub fn unreserved(&self) -> Resources {
        self.filter(|r| r.reservation.is_none())
    }

    /// The entries reserved for exactly `role` (static or dynamic).
    pub fn reserved_for(&self, role: &str) -> Resources {
        self.filter(|r| r.reservation.as_ref().is_some_and(|res| res.role == role))
    }

    /// What a framework of `role` may be offered: unreserved, plus reservations for `role`
    /// or any ancestor of it (`eng` is an ancestor of `eng/ml`). Revocable entries included.
    pub fn allocatable_to(&self, role: &str) -> Resources {
        self.filter(|r| {
            r.reservation
                .as_ref()
                .is_none_or(|res| is_self_or_ancestor(&res.role, role))
        })
    }

    /// The revocable entries.
    pub fn revocable(&self) -> Resources {
        self.filter(|r| r.revocable)
    }

    /// The non-revocable entries.
    pub fn non_revocable(&self) -> Resources {
        self.filter(|r| !r.revocable)
    }

    /// Sum of the scalar entries named `name`, over every reservation and revocability
    /// (saturating, though a sum beyond `u64` thousandths needs thousands of entries).
    pub fn scalar(&self, name: &str) -> Scalar {
        let t = self
            .0
            .iter()
            .filter(|r| r.name == name)
            .filter_map(|r| match r.value {
                Value::Scalar(s) => Some(s.thousandths()),
                _ => None,
            })
            .fold(0u64, u64::saturating_add);
        Scalar::from_thousandths(t)
    }

    /// Union of the ranges entries named `name`, over every reservation and revocability.
    pub fn ranges(&self, name: &str) -> Ranges {
        self.0
            .iter()
            .filter(|r| r.name == name)
            .fold(Ranges::default(), |acc, r| match &r.value {
                Value::Ranges(x) => acc.union(x),
                _ => acc,
            })
    }

    /// The names held.
    pub fn names(&self) -> BTreeSet<&str> {
        self.0.iter().map(|r| r.name.as_str()).collect()
    }
}

impl fmt::Display for Resources {
    /// The flag syntax, entries in canonical order joined by `;` (empty bag: empty text).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            r.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Resources {
    type Err = ResourceError;

    /// Same as [`Resources::parse`].
    fn from_str(s: &str) -> Result<Resources, ResourceError> {
        Resources::parse(s)
    }
}

impl<'a> IntoIterator for &'a Resources {
    type Item = &'a Resource;
    type IntoIter = std::slice::Iter<'a, Resource>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reservation::{Reservation, ReservationKind};

    fn r(s: &str) -> Resources {
        Resources::parse(s).unwrap()
    }

    #[test]
    fn adds_and_subtracts() {
        let a = r("cpus:1.5;mem:1024;ports:[80,1000-2000];bugs:{a}");
        let b = r("cpus:0.5;mem:1024;ports:[81];bugs:{b}");
        let sum = a.checked_add(&b).unwrap();
        assert_eq!(sum, r("cpus:2;mem:2048;ports:[80-81,1000-2000];bugs:{a,b}"));
        assert_eq!(sum.checked_sub(&b).unwrap(), a);
        assert_eq!(sum.checked_sub(&sum).unwrap(), Resources::new());
        assert!(sum.contains(&a) && sum.contains(&b) && !a.contains(&b));
    }

    #[test]
    fn subtracting_more_than_held_names_what_is_missing() {
        let held = r("cpus:1;mem:10;ports:[80]");
        let e = held
            .checked_sub(&r("cpus:3;mem:5;ports:[80-81];gpus:1"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot subtract resources that are not held: missing 'cpus:2;gpus:1;ports:[81]'"
        );
        let e = held
            .checked_sub(&r("cpus(spark):1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing 'cpus(spark):1'"), "{e}");
    }

    #[test]
    fn addition_overflow_is_an_error() {
        let big = r("cpus:999999999999");
        let e = big.checked_add(&big).unwrap_err().to_string();
        assert!(
            e.contains("'cpus:999999999999'") && e.contains("overflows"),
            "{e}"
        );
    }

    #[test]
    fn addition_of_mixed_types_is_an_error() {
        let e = r("foo:1")
            .checked_add(&r("foo:[1-2]"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'foo:[1-2]'") && e.contains("scalar") && e.contains("ranges"),
            "{e}"
        );
    }

    #[test]
    fn push_validates_and_merges() {
        let mut b = Resources::new();
        b.push(Resource::new("cpus", Scalar::from_thousandths(1000)))
            .unwrap();
        b.push(Resource::new("cpus", Scalar::from_thousandths(500)))
            .unwrap();
        b.push(Resource::new("mem", Scalar::ZERO)).unwrap();
        assert_eq!(b, r("cpus:1.5"));
        let e = b
            .push(Resource::new("gpus", Scalar::from_thousandths(1500)))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid resource 'gpus:1.5': gpus must be a whole number"
        );
        let e = b
            .push(Resource::new("cpus", Scalar::from_thousandths(u64::MAX)))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflows"), "{e}");
        let e = b
            .push(Resource::new("cpus", Scalar::MAX))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overflows"), "{e}");
        assert_eq!(b, r("cpus:1.5"), "a failed push leaves the bag unchanged");
    }

    #[test]
    fn filters() {
        let all = r(
            "cpus:1;cpus(eng):2;cpus(eng/ml):3;cpus(eng/ml2):4;cpus(eng/ml/x):5;\
                     cpus(*,revocable):6;cpus(other,dynamic,principal=p):7",
        );
        assert_eq!(all.unreserved(), r("cpus:1;cpus(*,revocable):6"));
        assert_eq!(all.reserved_for("eng"), r("cpus(eng):2"));
        assert_eq!(
            all.allocatable_to("eng/ml"),
            r("cpus:1;cpus(*,revocable):6;cpus(eng):2;cpus(eng/ml):3")
        );
        assert_eq!(all.allocatable_to("*"), all.unreserved());
        assert_eq!(all.revocable(), r("cpus(*,revocable):6"));
        assert_eq!(all.non_revocable().len(), 6);
        assert_eq!(all.scalar("cpus"), Scalar::from_units(28).unwrap());
        assert_eq!(all.scalar("mem"), Scalar::ZERO);
    }

    #[test]
    fn ranges_and_names() {
        let b = r("ports:[80];ports(web):[81-90];mem:1;bugs:{x}");
        assert_eq!(b.ranges("ports"), Ranges::new([(80, 90)]).unwrap());
        assert_eq!(b.ranges("mem"), Ranges::default());
        assert_eq!(
            b.names().into_iter().collect::<Vec<_>>(),
            ["bugs", "mem", "ports"]
        );
    }

    #[test]
    fn slots_are_distinct() {
        let mut b = r("cpus:1");
        let dynamic = Reservation::new(ReservationKind::Dynamic, "spark");
        b.push(Resource::new("cpus", Scalar::from_units(1).unwrap()).reserved(dynamic))
            .unwrap();
        b.push(
            Resource::new("cpus", Scalar::from_units(1).unwrap())
                .reserved(Reservation::new(ReservationKind::Static, "spark")),
        )
        .unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.to_string(), "cpus:1;cpus(spark):1;cpus(spark,dynamic):1");
    }
}

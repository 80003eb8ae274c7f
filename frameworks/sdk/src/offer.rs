//! Matching task shapes against offers: read an offer's resources, check whether a shape
//! fits, and take the concrete resources a task will use out of what is left.
//!
//! A *shape* says how much a task needs (`cpus:0.5;mem:64`) without caring which
//! reservation pays for it. An offer to role `r` may hold the same resource several times:
//! unreserved, statically or dynamically reserved for `r` (or an ancestor role). The task
//! must name the concrete entries it uses, with their reservations, or the master refuses
//! the launch; [`pick`] and [`take`] do that translation.
//!
//! Pure functions over `agora_resources`; this module must never talk to the master.

use std::collections::BTreeSet;

use agora_proto::v1::Offer;
use agora_resources::{Ranges, Resource, Resources, Scalar, Value};

use crate::error::SdkError;

/// The offer's resources, validated (an offer is untrusted input).
pub fn offer_resources(offer: &Offer) -> Result<Resources, SdkError> {
    Ok(Resources::from_proto(&offer.resources)?)
}

/// A shape of `cpus` CPUs and `mem_mb` MB of memory (unreserved, non-revocable). Refuses
/// negative, NaN or too large amounts; a zero amount is simply left out.
pub fn cpus_mem(cpus: f64, mem_mb: f64) -> Result<Resources, SdkError> {
    let mut shape = Resources::new();
    for (name, amount) in [("cpus", cpus), ("mem", mem_mb)] {
        let scalar = Scalar::from_f64(amount).ok_or_else(|| {
            SdkError::InvalidTask(format!(
                "{name} must be a non-negative number, got {amount}"
            ))
        })?;
        if !scalar.is_zero() {
            shape.push(Resource::new(name, Value::Scalar(scalar)))?;
        }
    }
    Ok(shape)
}

/// Whether `available` can pay for `shape` (see [`pick`]).
pub fn fits(available: &Resources, shape: &Resources) -> bool {
    pick(available, shape).is_some()
}

/// Choose concrete resources in `available` that satisfy `shape`, or `None` if it does not
/// fit.
///
/// For each entry of `shape`:
/// - with a reservation: only entries of `available` with that same reservation count;
/// - without one (the usual case): any entry of the same name counts, reserved ones first
///   (a framework should use what is reserved for it before the shared pool), then
///   unreserved.
///
/// Revocability must match. Scalars may be paid from several entries; ranges and sets must
/// be covered value by value (e.g. `ports:[8080]` needs port 8080). The result is
/// contained in `available` and subtracting it is always possible.
pub fn pick(available: &Resources, shape: &Resources) -> Option<Resources> {
    let mut rest = available.clone();
    let mut picked = Resources::new();
    for want in shape.iter() {
        let part = pick_entry(&rest, want)?;
        rest = rest.checked_sub(&part).ok()?;
        picked = picked.checked_add(&part).ok()?;
    }
    Some(picked)
}

/// [`pick`], then remove the picked resources from `available`.
pub fn take(available: &mut Resources, shape: &Resources) -> Option<Resources> {
    let picked = pick(available, shape)?;
    *available = available.checked_sub(&picked).ok()?;
    Some(picked)
}

/// How many copies of `shape` fit in `available`, taking them one after another (at most
/// `limit`). Returns the concrete resources of each copy and what is left.
pub fn take_many(
    available: &Resources,
    shape: &Resources,
    limit: usize,
) -> (Vec<Resources>, Resources) {
    let mut rest = available.clone();
    let mut out = Vec::new();
    // Bounded by `limit`: an empty shape fits any number of times.
    while out.len() < limit {
        match take(&mut rest, shape) {
            Some(r) => out.push(r),
            None => break,
        }
    }
    (out, rest)
}

fn candidates<'a>(rest: &'a Resources, want: &'a Resource) -> Vec<&'a Resource> {
    let mut c: Vec<&Resource> = rest
        .iter()
        // A volume is only ever picked when asked for by name: plain disk never takes a
        // slice of one (the task would see the volume).
        .filter(|r| r.name == want.name && r.revocable == want.revocable && r.volume == want.volume)
        .filter(|r| match &want.reservation {
            Some(w) => r.reservation.as_ref() == Some(w),
            None => true,
        })
        .collect();
    // Reserved before unreserved; stable, so the canonical order decides among equals.
    c.sort_by_key(|r| r.reservation.is_none());
    c
}

fn piece(from: &Resource, value: Value) -> Resource {
    let mut p = from.clone();
    p.value = value;
    p
}

fn pick_entry(rest: &Resources, want: &Resource) -> Option<Resources> {
    let mut out = Resources::new();
    match &want.value {
        Value::Scalar(amount) => {
            let mut missing = *amount;
            for c in candidates(rest, want) {
                if missing.is_zero() {
                    break;
                }
                let Value::Scalar(have) = c.value else {
                    continue;
                };
                let used = have.min(missing);
                if used.is_zero() {
                    continue;
                }
                out.push(piece(c, Value::Scalar(used))).ok()?;
                missing = missing.checked_sub(used)?;
            }
            missing.is_zero().then_some(out)
        }
        Value::Ranges(wanted) => {
            let mut missing: Vec<(u64, u64)> = wanted.iter().collect();
            for c in candidates(rest, want) {
                if missing.is_empty() {
                    break;
                }
                let Value::Ranges(have) = &c.value else {
                    continue;
                };
                let have: Vec<(u64, u64)> = have.iter().collect();
                let common = intersect(&missing, &have);
                if common.is_empty() {
                    continue;
                }
                let common_ranges = Ranges::new(common.iter().copied()).ok()?;
                out.push(piece(c, Value::Ranges(common_ranges))).ok()?;
                missing = subtract(&missing, &common);
            }
            missing.is_empty().then_some(out)
        }
        Value::Set(wanted) => {
            let mut missing: BTreeSet<String> = wanted.clone();
            for c in candidates(rest, want) {
                if missing.is_empty() {
                    break;
                }
                let Value::Set(have) = &c.value else {
                    continue;
                };
                let common: BTreeSet<String> = missing.intersection(have).cloned().collect();
                if common.is_empty() {
                    continue;
                }
                missing.retain(|i| !common.contains(i));
                out.push(piece(c, Value::Set(common))).ok()?;
            }
            missing.is_empty().then_some(out)
        }
    }
}

/// Intersection of two sorted, disjoint lists of inclusive ranges.
fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        if lo <= hi {
            out.push((lo, hi));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// `a` minus `b`, both sorted, disjoint lists of inclusive ranges.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for &(mut lo, hi) in a {
        let mut gone = false;
        for &(blo, bhi) in b {
            if bhi < lo || blo > hi {
                continue;
            }
            if blo > lo {
                out.push((lo, blo - 1));
            }
            if bhi >= hi {
                gone = true;
                break;
            }
            lo = bhi + 1;
        }
        if !gone {
            out.push((lo, hi));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn offer_resources_round_trip_and_reject_garbage() {
        let offer = Offer {
            resources: r("cpus:2;mem:1024").to_proto(),
            ..Default::default()
        };
        assert_eq!(offer_resources(&offer).unwrap(), r("cpus:2;mem:1024"));
        let bad = Offer {
            resources: vec![agora_proto::v1::Resource {
                name: String::new(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(offer_resources(&bad).is_err());
    }

    #[test]
    fn cpus_mem_builds_shapes_and_refuses_nonsense() {
        assert_eq!(cpus_mem(0.1, 32.0).unwrap(), r("cpus:0.1;mem:32"));
        assert_eq!(cpus_mem(1.0, 0.0).unwrap(), r("cpus:1"));
        assert!(cpus_mem(-1.0, 32.0).is_err());
        assert!(cpus_mem(f64::NAN, 32.0).is_err());
        assert!(cpus_mem(1.0, f64::INFINITY).is_err());
    }

    #[test]
    fn plain_disk_never_takes_a_slice_of_a_volume() {
        let avail = r("disk(db):10;disk(db,volume=v,path=d):100");
        assert_eq!(pick(&avail, &r("disk:50")), None);
        assert_eq!(pick(&avail, &r("disk:5")), Some(r("disk(db):5")));
        let vol = r("disk(db,volume=v,path=d):100");
        assert_eq!(pick(&avail, &vol), Some(vol));
    }

    #[test]
    fn fits_and_take_on_unreserved() {
        let mut avail = r("cpus:1;mem:100");
        let shape = r("cpus:0.4;mem:40");
        assert!(fits(&avail, &shape));
        assert_eq!(take(&mut avail, &shape), Some(shape.clone()));
        assert_eq!(take(&mut avail, &shape), Some(shape.clone()));
        assert_eq!(avail, r("cpus:0.2;mem:20"));
        assert!(!fits(&avail, &shape));
        assert_eq!(take(&mut avail, &shape), None);
        assert_eq!(avail, r("cpus:0.2;mem:20"), "a failed take changes nothing");
    }

    #[test]
    fn missing_resource_kind_does_not_fit() {
        assert!(!fits(&r("cpus:4"), &r("cpus:1;mem:1")));
        assert!(!fits(&r("cpus:4;mem:10"), &r("cpus:1;gpus:1")));
    }

    #[test]
    fn reserved_resources_are_used_first_and_keep_their_reservation() {
        let avail = r("cpus:2;cpus(spark):1;mem:100");
        let got = pick(&avail, &r("cpus:1.5;mem:10")).unwrap();
        assert_eq!(got, r("cpus(spark):1;cpus:0.5;mem:10"));
        assert!(avail.contains(&got));
    }

    #[test]
    fn a_reserved_shape_only_matches_that_reservation() {
        let avail = r("cpus:4;cpus(spark):1");
        assert!(fits(&avail, &r("cpus(spark):1")));
        assert!(!fits(&avail, &r("cpus(spark):2")));
        assert!(!fits(&r("cpus:4"), &r("cpus(spark):1")));
    }

    #[test]
    fn revocable_must_match() {
        assert!(!fits(&r("cpus(*,revocable):4"), &r("cpus:1")));
        assert!(fits(&r("cpus(*,revocable):4"), &r("cpus(*,revocable):1")));
    }

    #[test]
    fn ranges_and_sets_are_covered_value_by_value() {
        let avail = r("ports:[8000-8010];ports(web):[9000-9001];bugs:{a,b}");
        let got = pick(&avail, &r("ports:[8005,9000];bugs:{b}")).unwrap();
        assert_eq!(got, r("ports(web):[9000];ports:[8005];bugs:{b}"));
        assert!(!fits(&avail, &r("ports:[7000]")));
        assert!(!fits(&avail, &r("bugs:{c}")));
    }

    #[test]
    fn take_many_packs_as_many_as_fit() {
        let (tasks, rest) = take_many(&r("cpus:1;mem:100"), &r("cpus:0.3;mem:30"), 10);
        assert_eq!(tasks.len(), 3);
        assert_eq!(rest, r("cpus:0.1;mem:10"));
        let (tasks, _) = take_many(&r("cpus:1;mem:100"), &r("cpus:0.3;mem:30"), 2);
        assert_eq!(tasks.len(), 2);
    }

    #[test]
    fn range_helpers() {
        assert_eq!(intersect(&[(1, 10)], &[(5, 15)]), vec![(5, 10)]);
        assert_eq!(
            intersect(&[(1, 3), (7, 9)], &[(2, 8)]),
            vec![(2, 3), (7, 8)]
        );
        assert_eq!(
            subtract(&[(1, 10)], &[(3, 4), (8, 10)]),
            vec![(1, 2), (5, 7)]
        );
        assert_eq!(subtract(&[(1, 10)], &[(0, 20)]), vec![]);
        assert_eq!(subtract(&[(1, 2), (5, 6)], &[]), vec![(1, 2), (5, 6)]);
    }
}

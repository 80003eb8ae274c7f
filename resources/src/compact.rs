//! The compact form of a resource bag, for what is kept in large numbers (a master's
//! tasks, an allocator's decline filters): four plain scalars as four numbers, anything
//! else as the bag. Owns the form and its exact conversions; every form converts back to
//! exactly what went in (unit and property tests below), and `contains` answers exactly
//! as `Resources::contains` would on the bag.

use crate::{Resource, Resources, Scalar, Value};

/// A bag of resources in the form that costs least to keep by the hundred thousand (the
/// master's tasks, the allocator's decline filters). Nearly every task asks for
/// unreserved, non-revocable scalars among cpus, gpus, mem and disk; those are kept as four
/// numbers (32 bytes) instead of a bag of 192-byte entries with a heap string each (about
/// 450 bytes for cpus and mem). Anything else is kept as the bag itself.
#[derive(Clone, Debug, PartialEq)]
pub enum CompactResources {
    /// Thousandths of cpus, gpus, mem, disk; zero for absent (a bag holds no zero entry).
    Plain([u64; 4]),
    /// Anything else: the bag itself.
    Other(Box<Resources>),
}

/// The names of `CompactResources::Plain`, in its order.
pub const PLAIN_NAMES: [&str; 4] = ["cpus", "gpus", "mem", "disk"];

impl From<&Resources> for CompactResources {
    fn from(r: &Resources) -> Self {
        let mut amounts = [0u64; 4];
        let mut plain = true;
        for e in r.iter() {
            let slot = PLAIN_NAMES.iter().position(|n| *n == e.name);
            match (slot, &e.value) {
                (Some(i), Value::Scalar(v))
                    if e.reservation.is_none() && !e.revocable && e.volume.is_none() =>
                {
                    amounts[i] = v.thousandths();
                }
                _ => plain = false,
            }
        }
        let stored = CompactResources::Plain(amounts);
        // The check makes the conversion exact whatever the bag's rules become.
        if plain && stored.to_resources() == *r {
            stored
        } else {
            CompactResources::Other(Box::new(r.clone()))
        }
    }
}

impl CompactResources {
    /// The bag again.
    pub fn to_resources(&self) -> Resources {
        match self {
            CompactResources::Plain(amounts) => {
                let mut r = Resources::new();
                for (name, t) in PLAIN_NAMES.iter().zip(amounts) {
                    if *t > 0 {
                        // Each amount came out of a valid bag, so the push cannot fail; if
                        // it ever did the amount would be missing, never invented.
                        let _ = r.push(Resource::new(*name, Scalar::from_thousandths(*t)));
                    }
                }
                r
            }
            CompactResources::Other(r) => (**r).clone(),
        }
    }

    /// `self.to_resources().contains(other)` without building the bag (the allocator
    /// asks this of every filter on an agent whenever more becomes free there).
    pub fn contains(&self, other: &Resources) -> bool {
        match self {
            CompactResources::Plain(amounts) => other.iter().all(|want| {
                // The entry `want` needs exists in a plain bag only if `want` is plain
                // (unreserved, non-revocable, no volume) and named like one of its four
                // with an amount; then it holds `want` if `want` is a scalar no larger.
                // `Resources::contains` also counts an empty value of another type as
                // held; a bag never has an empty entry, but the rule is kept.
                let slot = (want.reservation.is_none() && !want.revocable && want.volume.is_none())
                    .then(|| PLAIN_NAMES.iter().position(|n| *n == want.name))
                    .flatten();
                match slot.and_then(|i| amounts.get(i)).filter(|have| **have > 0) {
                    Some(have) => match &want.value {
                        Value::Scalar(v) => v.thousandths() <= *have,
                        other => other.is_empty(),
                    },
                    None => false,
                }
            }),
            CompactResources::Other(r) => r.contains(other),
        }
    }

    /// Calls `f` with (name, thousandths) of every scalar entry, without building the
    /// bag (the metrics gauges sum these over every task on each scrape).
    pub fn for_each_scalar<'a>(&'a self, mut f: impl FnMut(&'a str, u64)) {
        match self {
            CompactResources::Plain(amounts) => {
                for (name, t) in PLAIN_NAMES.iter().zip(amounts) {
                    if *t > 0 {
                        f(name, *t);
                    }
                }
            }
            CompactResources::Other(r) => {
                for e in r.iter() {
                    if let Value::Scalar(v) = e.value {
                        f(e.name.as_str(), v.thousandths());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agora_proto::v1;
    use proptest::prelude::*;

    #[test]
    fn compact_resources_are_small() {
        assert!(std::mem::size_of::<CompactResources>() <= 40);
    }

    #[test]
    fn resources_round_trip_plain_or_not() {
        for text in [
            "",
            "cpus:0.1;mem:64",
            "cpus:1;gpus:2;mem:3;disk:4",
            "disk:10",
            "cpus:1;ports:[31000-31005]",
            "cpus(spark):1;mem:10",
            "bugs:{a,b};cpus:1",
            "foo:3",
        ] {
            let r = Resources::parse(text).expect(text);
            let stored = CompactResources::from(&r);
            let plain = !text.contains(['(', '[', '{', 'f']);
            assert_eq!(
                matches!(stored, CompactResources::Plain(_)),
                plain,
                "{text}"
            );
            assert_eq!(stored.to_resources(), r, "{text}");
            let mut scalars = Vec::new();
            stored.for_each_scalar(|n, t| scalars.push((n.to_string(), t)));
            let mut want: Vec<_> = r
                .iter()
                .filter_map(|e| match e.value {
                    Value::Scalar(v) => Some((e.name.clone(), v.thousandths())),
                    _ => None,
                })
                .collect();
            scalars.sort();
            want.sort();
            assert_eq!(scalars, want, "{text}");
        }
        let revocable = Resources::from_proto(&[v1::Resource {
            revocable: true,
            ..Resources::parse("cpus:1")
                .expect("cpus")
                .to_proto()
                .remove(0)
        }])
        .expect("revocable");
        let stored = CompactResources::from(&revocable);
        assert!(matches!(stored, CompactResources::Other(_)));
        assert_eq!(stored.to_resources(), revocable);
    }

    #[test]
    fn containment_matches_the_bag() {
        let bags = [
            "",
            "cpus:1;mem:64",
            "cpus:1;gpus:1;mem:64;disk:10",
            "mem:64",
            "cpus(spark):1",
            "cpus:1;ports:[1-2]",
        ];
        for have in bags {
            let have = Resources::parse(have).expect("valid");
            let stored = CompactResources::from(&have);
            for want in bags
                .iter()
                .chain(&["cpus:0.5", "cpus:2", "mem:64;cpus:1", "foo:1"])
            {
                let want = Resources::parse(want).expect("valid");
                assert_eq!(
                    stored.contains(&want),
                    have.contains(&want),
                    "{have} >= {want}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn plain_containment_matches_the_bag(
            mut have in proptest::array::uniform4(0u64..3_000),
            mut want in proptest::array::uniform4(0u64..3_000),
            extra in proptest::option::of(prop_oneof![
                Just("cpus(spark):1"),
                Just("cpus(*,revocable):1"),
                Just("ports:[1-2]"),
                Just("foo:1"),
                Just("bugs:{a}"),
            ]),
        ) {
            have[1] -= have[1] % 1000;
            want[1] -= want[1] % 1000;
            let bag = |amounts: [u64; 4]| {
                let mut r = Resources::new();
                for (n, t) in PLAIN_NAMES.iter().zip(amounts) {
                    r.push(Resource::new(*n, Scalar::from_thousandths(t))).expect("valid");
                }
                r
            };
            let have = bag(have);
            let mut want = bag(want);
            if let Some(e) = extra {
                want = want.checked_add(&Resources::parse(e).expect("valid")).expect("adds");
            }
            let stored = CompactResources::from(&have);
            prop_assert!(matches!(stored, CompactResources::Plain(_)));
            prop_assert_eq!(stored.contains(&want), have.contains(&want));
        }

        #[test]
        fn any_plain_amounts_round_trip(mut amounts in proptest::array::uniform4(0u64..2_000_000)) {
            // gpus come whole.
            amounts[1] -= amounts[1] % 1000;
            let mut r = Resources::new();
            for (n, t) in PLAIN_NAMES.iter().zip(amounts) {
                r.push(Resource::new(*n, Scalar::from_thousandths(t))).expect("valid");
            }
            let stored = CompactResources::from(&r);
            prop_assert!(matches!(stored, CompactResources::Plain(_)));
            prop_assert_eq!(stored.to_resources(), r);
        }
    }
}

//! Property tests of the resource model: arithmetic laws, round trips through every
//! external form (text, protobuf, JSON), the normal form of ranges, and exact scalar text.

use std::collections::{BTreeMap, BTreeSet};

use agora_resources::{
    Attribute, AttributeValue, Attributes, Ranges, Reservation, ReservationKind, Resource,
    ResourceError, Resources, Scalar, Value, Volume,
};
use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;

/// Which part of the value space a generator draws ranges and set items from, so that
/// bags drawn from `A` and `B` never share a port or a set item.
#[derive(Clone, Copy, Debug)]
enum Side {
    A,
    B,
    Any,
}

/// Largest generated scalar: a dozen of them summed stay far below `Scalar::MAX`.
const MAX_GEN: u64 = 50_000_000_000_000;

fn role() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("spark".to_string()),
        Just("eng".to_string()),
        Just("eng/ml".to_string()),
        "[a-z][a-z0-9_.-]{0,4}(/[a-z0-9_][a-z0-9_.-]{0,3}){0,2}",
    ]
}

fn reservation() -> impl Strategy<Value = Option<Reservation>> {
    let principal = proptest::option::of("[a-z][a-z0-9@.+/_-]{0,6}");
    let labels = btree_map("[a-z][a-z0-9_]{0,4}", "[a-z0-9_.-]{0,4}", 0..3);
    prop_oneof![
        2 => Just(None),
        1 => role().prop_map(|r| Some(Reservation::new(ReservationKind::Static, r))),
        1 => (role(), principal, labels).prop_map(|(role, principal, labels)| {
            Some(Reservation {
                kind: ReservationKind::Dynamic,
                role,
                principal,
                labels,
            })
        }),
    ]
}

fn ranges(side: Side) -> impl Strategy<Value = Ranges> {
    let (lo, hi) = match side {
        Side::A => (0u64, 10_000u64),
        Side::B => (10_000, 20_000),
        Side::Any => (0, u64::MAX),
    };
    let pair = (lo..hi, 0u64..50).prop_map(move |(b, len)| {
        let e = b.saturating_add(len).min(hi - 1).max(b);
        (b, e)
    });
    let edges = prop_oneof![
        Just((u64::MAX - 3, u64::MAX)),
        Just((0, 0)),
        Just((u64::MAX, u64::MAX))
    ];
    let pairs = match side {
        Side::Any => vec(prop_oneof![4 => pair, 1 => edges], 0..5).boxed(),
        _ => vec(pair, 0..5).boxed(),
    };
    pairs.prop_map(|p| Ranges::new(p).expect("generated ranges are ordered"))
}

fn set(side: Side) -> impl Strategy<Value = BTreeSet<String>> {
    let item = match side {
        Side::A => "a[a-z0-9]{0,3}",
        Side::B => "b[a-z0-9]{0,3}",
        Side::Any => "[a-zA-Z0-9_./@+-]{1,6}",
    };
    btree_set(item, 0..4)
}

fn scalar_for(name: &'static str) -> impl Strategy<Value = Scalar> {
    let whole = name == "gpus";
    (0..=MAX_GEN).prop_map(move |t| {
        let t = if whole { t / 1000 * 1000 } else { t };
        Scalar::from_thousandths(t)
    })
}

/// One valid resource. Each name always has the same value type, so bags never mix.
fn resource(side: Side) -> impl Strategy<Value = Resource> {
    let value = prop_oneof![
        scalar_for("cpus").prop_map(|s| ("cpus", Value::Scalar(s))),
        scalar_for("gpus").prop_map(|s| ("gpus", Value::Scalar(s))),
        scalar_for("mem").prop_map(|s| ("mem", Value::Scalar(s))),
        scalar_for("disk").prop_map(|s| ("disk", Value::Scalar(s))),
        scalar_for("custom.s").prop_map(|s| ("custom.s", Value::Scalar(s))),
        ranges(side).prop_map(|r| ("ports", Value::Ranges(r))),
        ranges(side).prop_map(|r| ("x-ranges", Value::Ranges(r))),
        set(side).prop_map(|s| ("bugs", Value::Set(s))),
    ];
    let volume =
        proptest::option::of(("[a-z0-9_.-]{1,4}x", "[a-z0-9]{1,4}(/[a-z0-9_-]{1,3}){0,2}"));
    (value, reservation(), any::<bool>(), volume).prop_map(
        |((name, value), reservation, revocable, volume)| {
            // A volume is only valid on reserved, non-revocable disk.
            let volume = volume
                .filter(|_| name == "disk" && reservation.is_some() && !revocable)
                .map(|(id, path)| Volume::new(id, path));
            Resource {
                name: name.to_string(),
                value,
                reservation,
                revocable,
                volume,
            }
        },
    )
}

fn resources(side: Side) -> impl Strategy<Value = Resources> {
    vec(resource(side), 0..6).prop_map(|items| {
        let mut out = Resources::new();
        for r in items {
            out.push(r).expect("generated resources are valid");
        }
        out
    })
}

fn attributes() -> impl Strategy<Value = Attributes> {
    let value = prop_oneof![
        "[a-zA-Z][a-zA-Z0-9_./@+-]{0,6}".prop_map(AttributeValue::Text),
        (0..=MAX_GEN).prop_map(|t| AttributeValue::Scalar(Scalar::from_thousandths(t))),
        ranges(Side::Any).prop_map(AttributeValue::Ranges),
        set(Side::Any).prop_map(AttributeValue::Set),
    ];
    btree_map("[a-zA-Z0-9_.-]{1,6}", value, 0..5).prop_map(|m: BTreeMap<String, _>| {
        let mut out = Attributes::default();
        for (name, value) in m {
            out.insert(Attribute { name, value })
                .expect("generated attributes are valid");
        }
        out
    })
}

/// Ranges are sorted, each begin <= end, and neighbours neither overlap nor touch.
fn assert_normal(r: &Ranges) -> Result<(), TestCaseError> {
    let v: Vec<(u64, u64)> = r.iter().collect();
    for &(b, e) in &v {
        prop_assert!(b <= e, "reversed range in {r}");
    }
    for w in v.windows(2) {
        let ((_, e0), (b1, _)) = (w[0], w[1]);
        prop_assert!(e0 < u64::MAX && b1 > e0 + 1, "not coalesced/sorted: {r}");
    }
    Ok(())
}

/// Interesting values to probe membership with: every endpoint and its neighbours.
fn probes(rs: &[&Ranges]) -> Vec<u64> {
    let mut out = vec![0, u64::MAX];
    for r in rs {
        for (b, e) in r.iter() {
            out.extend([b.saturating_sub(1), b, e, e.saturating_add(1)]);
        }
    }
    out
}

proptest! {
    #[test]
    fn add_then_sub_is_identity(a in resources(Side::A), b in resources(Side::B)) {
        let sum = a.checked_add(&b).unwrap();
        prop_assert_eq!(sum.checked_sub(&b).unwrap(), a.clone());
        prop_assert_eq!(sum.checked_sub(&a).unwrap(), b.clone());
        prop_assert_eq!(b.checked_add(&a).unwrap(), sum);
    }

    #[test]
    fn sum_contains_both(a in resources(Side::Any), b in resources(Side::Any)) {
        let sum = a.checked_add(&b).unwrap();
        prop_assert!(sum.contains(&a));
        prop_assert!(sum.contains(&b));
        prop_assert!(sum.contains(&Resources::new()));
        prop_assert_eq!(sum.checked_sub(&sum).unwrap(), Resources::new());
        for r in sum.iter() {
            prop_assert!(!r.value.is_empty());
        }
    }

    #[test]
    fn subtracting_more_than_held_is_an_error(
        a in resources(Side::A),
        b in resources(Side::B).prop_filter("non-empty", |b| !b.is_empty()),
    ) {
        let more = a.checked_add(&b).unwrap();
        prop_assert!(!a.contains(&more));
        let err = a.checked_sub(&more).unwrap_err();
        // Exactly `b` is missing, named in the flag syntax.
        prop_assert_eq!(err, ResourceError::NotContained { missing: b.to_string() });
    }

    #[test]
    fn text_round_trip(x in resources(Side::Any)) {
        let text = x.to_string();
        prop_assert_eq!(Resources::parse(&text), Ok(x.clone()), "{}", text);
        // Canonical text formats back to itself.
        prop_assert_eq!(Resources::parse(&text).unwrap().to_string(), text);
    }

    #[test]
    fn proto_round_trip(x in resources(Side::Any)) {
        prop_assert_eq!(Resources::from_proto(&x.to_proto()), Ok(x));
    }

    #[test]
    fn json_round_trip(x in resources(Side::Any)) {
        let text = serde_json::to_string(&x).unwrap();
        prop_assert_eq!(Resources::from_json(&text), Ok(x.clone()), "{}", text);
        prop_assert_eq!(serde_json::from_str::<Resources>(&text).unwrap(), x.clone());
        prop_assert_eq!(serde_json::from_value::<Resources>(x.to_json()).unwrap(), x);
    }

    #[test]
    fn attributes_round_trip(x in attributes()) {
        prop_assert_eq!(Attributes::parse(&x.to_string()), Ok(x.clone()));
        prop_assert_eq!(Attributes::from_proto(&x.to_proto()), Ok(x.clone()));
        let json = serde_json::to_string(&x).unwrap();
        prop_assert_eq!(serde_json::from_str::<Attributes>(&json).unwrap(), x);
    }

    #[test]
    fn ranges_stay_normal(a in ranges(Side::Any), b in ranges(Side::Any), n in 0u64..200) {
        let u = a.union(&b);
        assert_normal(&u)?;
        let d = a.difference(&b);
        assert_normal(&d)?;
        let i = a.intersection(&b);
        assert_normal(&i)?;
        for v in probes(&[&a, &b]) {
            let (in_a, in_b) = (a.contains_value(v), b.contains_value(v));
            prop_assert_eq!(u.contains_value(v), in_a || in_b);
            prop_assert_eq!(d.contains_value(v), in_a && !in_b);
            prop_assert_eq!(i.contains_value(v), in_a && in_b);
        }
        prop_assert!(u.contains(&a) && u.contains(&b));
        let back = u.checked_sub(&b).unwrap();
        assert_normal(&back)?;
        prop_assert_eq!(back.union(&b), u.clone());
        prop_assert_eq!(a.checked_sub(&b).is_some(), a.contains(&b));
        if let Some(first) = u.take_first(n) {
            assert_normal(&first)?;
            prop_assert_eq!(first.count(), n);
            prop_assert!(u.contains(&first));
        } else {
            prop_assert!(u.count() < n);
        }
    }

    #[test]
    fn scalar_text_round_trip(t in 0..=Scalar::MAX.thousandths()) {
        let s = Scalar::from_thousandths(t);
        prop_assert_eq!(s.to_string().parse::<Scalar>(), Ok(s));
    }

    #[test]
    fn scalar_parse_rounds_half_up(int in 0u64..1_000_000_000_000, frac in "[0-9]{0,8}") {
        let text = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
        // Oracle in exact integer arithmetic: round(x / y) half-up = (2x + y) / 2y.
        let k = u32::try_from(frac.len()).unwrap();
        let y = 10u128.pow(k);
        let value = u128::from(int) * y + frac.parse::<u128>().unwrap_or(0);
        let expected = (2 * value * 1000 + y) / (2 * y);
        let parsed = text.parse::<Scalar>();
        if expected <= u128::from(Scalar::MAX.thousandths()) {
            prop_assert_eq!(parsed.map(Scalar::thousandths), Ok(u64::try_from(expected).unwrap()));
        } else {
            prop_assert!(parsed.unwrap_err().to_string().contains("overflows"));
        }
    }

    #[test]
    fn parsers_never_panic(text in "[a-z0-9:;,()\\[\\]{}=*. /-]{0,40}") {
        let _ = Resources::parse(&text);
        let _ = Attributes::parse(&text);
        let _ = Resources::from_json(&text);
    }

    #[test]
    fn allocatable_is_unreserved_plus_ancestor_reservations(x in resources(Side::Any), r in role()) {
        let alloc = x.allocatable_to(&r);
        prop_assert!(x.contains(&alloc));
        prop_assert!(alloc.contains(&x.unreserved()));
        prop_assert!(alloc.contains(&x.reserved_for(&r)));
        for e in alloc.iter() {
            if let Some(res) = &e.reservation {
                prop_assert!(
                    r == res.role || r.starts_with(&format!("{}/", res.role)),
                    "{} offered to {}", e, r
                );
            }
        }
    }
}

//! Conversions between this crate's types and the generated protobuf types of
//! `agora-proto` (`agora.v1.Resource`, `Reservation`, `Ranges`, `Set`).
//!
//! Owns: the mapping of every field (reservation type enum <-> [`ReservationKind`], empty
//! principal <-> `None`, labels list <-> map) and the validation of untrusted messages
//! (unknown or unspecified reservation type, reversed ranges, duplicate set items or
//! label keys, then every rule of [`Resource::validate`]).
//! Must never: trust a message (everything from the wire is checked), silently drop a
//! value, or panic on any input. The `disk` field maps to [`Volume`]
//! (`persistence_id`, `container_path`); its `principal` is not kept and a read-only
//! volume is refused (not supported).

use std::collections::{BTreeMap, BTreeSet};

use agora_proto::v1 as pb;

use crate::error::ResourceError;
use crate::ranges::Ranges;
use crate::reservation::{Reservation, ReservationKind};
use crate::resource::Resource;
use crate::scalar::Scalar;
use crate::value::Value;
use crate::volume::Volume;

/// Protobuf ranges into the normal form; a reversed range is an error.
pub(crate) fn ranges_from_proto(r: &pb::Ranges) -> Result<Ranges, String> {
    Ranges::new(r.range.iter().map(|x| (x.begin, x.end))).map_err(|_| {
        let bad = r
            .range
            .iter()
            .find(|x| x.begin > x.end)
            .map(|x| format!("{}-{}", x.begin, x.end))
            .unwrap_or_default();
        format!("range '{bad}' is reversed: begin is greater than end")
    })
}

pub(crate) fn ranges_to_proto(r: &Ranges) -> pb::Ranges {
    pb::Ranges {
        range: r
            .iter()
            .map(|(begin, end)| pb::Range { begin, end })
            .collect(),
    }
}

/// Protobuf set items into a set; a repeated item is an error.
pub(crate) fn set_from_proto(s: &pb::Set) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for item in &s.item {
        if !out.insert(item.clone()) {
            return Err(format!("duplicate set item '{item}'"));
        }
    }
    Ok(out)
}

fn reservation_from_proto(r: &pb::Reservation) -> Result<Reservation, String> {
    use pb::reservation::Type;
    let kind = match Type::try_from(r.r#type) {
        Ok(Type::Static) => ReservationKind::Static,
        Ok(Type::Dynamic) => ReservationKind::Dynamic,
        Ok(Type::Unspecified) => {
            return Err("reservation type is unspecified (expected STATIC or DYNAMIC)".to_string());
        }
        Err(_) => {
            return Err(format!(
                "unknown reservation type {} (expected STATIC or DYNAMIC)",
                r.r#type
            ));
        }
    };
    let mut labels = BTreeMap::new();
    for l in &r.labels {
        if labels.insert(l.key.clone(), l.value.clone()).is_some() {
            return Err(format!("duplicate label '{}'", l.key));
        }
    }
    Ok(Reservation {
        kind,
        role: r.role.clone(),
        principal: (!r.principal.is_empty()).then(|| r.principal.clone()),
        labels,
    })
}

fn reservation_to_proto(r: &Reservation) -> pb::Reservation {
    use pb::reservation::Type;
    let kind = match r.kind {
        ReservationKind::Static => Type::Static,
        ReservationKind::Dynamic => Type::Dynamic,
    };
    pb::Reservation {
        r#type: kind as i32,
        role: r.role.clone(),
        principal: r.principal.clone().unwrap_or_default(),
        labels: r
            .labels
            .iter()
            .map(|(k, v)| pb::Label {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
    }
}

impl Resource {
    /// Converts one untrusted protobuf resource, validating it like the text parser.
    /// The zero value is accepted (a bag drops it). `disk` info becomes the volume.
    pub fn from_proto(p: &pb::Resource) -> Result<Resource, ResourceError> {
        use pb::resource::Value as V;
        let fail = |reason: String| ResourceError::resource(&p.name, reason);
        let value = match &p.value {
            None => {
                return Err(fail(
                    "missing value (one of scalar, ranges, set)".to_string(),
                ));
            }
            Some(V::Scalar(s)) => Value::Scalar(Scalar::from_thousandths(s.thousandths)),
            Some(V::Ranges(r)) => Value::Ranges(ranges_from_proto(r).map_err(fail)?),
            Some(V::Set(s)) => Value::Set(set_from_proto(s).map_err(fail)?),
        };
        let reservation = match &p.reservation {
            None => None,
            Some(r) => Some(reservation_from_proto(r).map_err(fail)?),
        };
        let volume = match &p.disk {
            None => None,
            Some(d) if d.read_only => {
                return Err(fail("read-only volumes are not supported".to_string()));
            }
            Some(d) if d.persistence_id.is_empty() && d.container_path.is_empty() => None,
            Some(d) => Some(Volume::new(
                d.persistence_id.clone(),
                d.container_path.clone(),
            )),
        };
        let r = Resource {
            name: p.name.clone(),
            value,
            reservation,
            revocable: p.revocable,
            volume,
        };
        r.validate()?;
        Ok(r)
    }

    /// The protobuf form (`disk` set for a volume).
    pub fn to_proto(&self) -> pb::Resource {
        use pb::resource::Value as V;
        let value = match &self.value {
            Value::Scalar(s) => V::Scalar(pb::Scalar {
                thousandths: s.thousandths(),
            }),
            Value::Ranges(r) => V::Ranges(ranges_to_proto(r)),
            Value::Set(s) => V::Set(pb::Set {
                item: s.iter().cloned().collect(),
            }),
        };
        pb::Resource {
            name: self.name.clone(),
            value: Some(value),
            reservation: self.reservation.as_ref().map(reservation_to_proto),
            revocable: self.revocable,
            disk: self.volume.as_ref().map(|v| pb::DiskInfo {
                persistence_id: v.persistence_id.clone(),
                principal: String::new(),
                container_path: v.container_path.clone(),
                read_only: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Resources;

    fn scalar(name: &str, t: u64) -> pb::Resource {
        pb::Resource {
            name: name.into(),
            value: Some(pb::resource::Value::Scalar(pb::Scalar { thousandths: t })),
            ..Default::default()
        }
    }

    fn err(items: &[pb::Resource]) -> String {
        Resources::from_proto(items).unwrap_err().to_string()
    }

    #[test]
    fn round_trips_the_examples() {
        for text in [
            "cpus:30;gpus:2;mem:122880;disk:921600;ports:[80,21000-29000];bugs:{a,b,c}",
            "cpus:4;mem:2048;cpus(spark):8;mem(spark):4096",
            "cpus(spark,dynamic,principal=ops,label=team=ml):4;cpus(*,revocable):2",
        ] {
            let r = Resources::parse(text).unwrap();
            assert_eq!(Resources::from_proto(&r.to_proto()).unwrap(), r);
        }
    }

    #[test]
    fn maps_fields() {
        let r = Resources::parse("cpus(spark,dynamic,principal=ops,label=team=ml,revocable):1.5")
            .unwrap();
        let p = r.to_proto();
        let [p] = p.as_slice() else {
            panic!("one entry expected: {p:?}")
        };
        assert_eq!(p.name, "cpus");
        assert!(p.revocable);
        assert_eq!(
            p.value,
            Some(pb::resource::Value::Scalar(pb::Scalar {
                thousandths: 1500
            }))
        );
        let res = p.reservation.as_ref().unwrap();
        assert_eq!(res.r#type, pb::reservation::Type::Dynamic as i32);
        assert_eq!(
            (res.role.as_str(), res.principal.as_str()),
            ("spark", "ops")
        );
        assert_eq!(
            res.labels,
            vec![pb::Label {
                key: "team".into(),
                value: "ml".into()
            }]
        );
    }

    #[test]
    fn merges_and_normalises_untrusted_input() {
        let ranges = pb::Resource {
            name: "ports".into(),
            value: Some(pb::resource::Value::Ranges(pb::Ranges {
                range: vec![
                    pb::Range { begin: 3, end: 4 },
                    pb::Range { begin: 1, end: 2 },
                ],
            })),
            ..Default::default()
        };
        let r = Resources::from_proto(&[
            scalar("cpus", 1000),
            scalar("cpus", 500),
            scalar("mem", 0),
            ranges,
        ])
        .unwrap();
        assert_eq!(r.to_string(), "cpus:1.5;ports:[1-4]");
    }

    #[test]
    fn refuses_invalid_messages() {
        assert_eq!(
            err(&[scalar("gpus", 1500)]),
            "invalid resource 'gpus:1.5': gpus must be a whole number"
        );
        assert!(err(&[scalar("cpus", u64::MAX)]).contains("overflows"));
        assert!(
            err(&[scalar("cpus", 1_000_000_000_000_000), scalar("cpus", 1)]).contains("overflows")
        );
        assert!(err(&[scalar("", 1)]).contains("empty name"));
        assert!(err(&[scalar("a b", 1)]).contains("invalid name 'a b'"));
        let none = pb::Resource {
            name: "cpus".into(),
            ..Default::default()
        };
        assert!(err(&[none]).contains("invalid resource 'cpus': missing value"));
        let rev = pb::Resource {
            name: "ports".into(),
            value: Some(pb::resource::Value::Ranges(pb::Ranges {
                range: vec![pb::Range { begin: 30, end: 20 }],
            })),
            ..Default::default()
        };
        assert!(err(&[rev]).contains("range '30-20' is reversed"));
        let dup = pb::Resource {
            name: "bugs".into(),
            value: Some(pb::resource::Value::Set(pb::Set {
                item: vec!["a".into(), "a".into()],
            })),
            ..Default::default()
        };
        assert!(err(&[dup]).contains("duplicate set item 'a'"));
        let mixed = pb::Resource {
            name: "foo".into(),
            value: Some(pb::resource::Value::Set(pb::Set {
                item: vec!["a".into()],
            })),
            ..Default::default()
        };
        assert!(
            err(&[scalar("foo", 1), mixed]).contains("'foo' mixes value types (already scalar")
        );
    }

    #[test]
    fn refuses_invalid_reservations() {
        let reserved = |t: i32, role: &str, principal: &str, labels: &[(&str, &str)]| {
            let mut p = scalar("cpus", 1000);
            p.reservation = Some(pb::Reservation {
                r#type: t,
                role: role.into(),
                principal: principal.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| pb::Label {
                        key: (*k).into(),
                        value: (*v).into(),
                    })
                    .collect(),
            });
            p
        };
        assert!(err(&[reserved(0, "spark", "", &[])]).contains("unspecified"));
        assert!(err(&[reserved(9, "spark", "", &[])]).contains("unknown reservation type 9"));
        assert!(err(&[reserved(1, "", "", &[])]).contains("invalid role ''"));
        assert!(err(&[reserved(1, "*", "", &[])]).contains("invalid role '*'"));
        assert!(err(&[reserved(1, "spark", "ops", &[])]).contains("static reservation"));
        assert!(err(&[reserved(1, "spark", "", &[("a", "b")])]).contains("static reservation"));
        assert!(
            err(&[reserved(2, "spark", "", &[("a", "b"), ("a", "c")])])
                .contains("duplicate label 'a'")
        );
        assert!(err(&[reserved(2, "spark", "o p", &[])]).contains("invalid principal 'o p'"));
        let ok = Resources::from_proto(&[reserved(2, "spark", "ops", &[("a", "")])]).unwrap();
        assert_eq!(
            ok.to_string(),
            "cpus(spark,dynamic,principal=ops,label=a=):1"
        );
    }

    #[test]
    fn disk_info_is_a_volume_on_reserved_disk_only() {
        let mut p = scalar("disk", 1000);
        p.disk = Some(pb::DiskInfo {
            persistence_id: "v1".into(),
            container_path: "data".into(),
            ..Default::default()
        });
        let e = Resources::from_proto(std::slice::from_ref(&p))
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs reserved disk"), "{e}");
        p.reservation = Some(pb::Reservation {
            r#type: pb::reservation::Type::Static as i32,
            role: "db".into(),
            ..Default::default()
        });
        let r = Resources::from_proto(&[p]).unwrap();
        assert_eq!(r.to_string(), "disk(db,volume=v1,path=data):1");
        // An empty DiskInfo is no volume.
        let mut q = scalar("disk", 1000);
        q.disk = Some(pb::DiskInfo::default());
        let r = Resources::from_proto(&[q]).unwrap();
        assert_eq!(r.to_proto()[0].disk, None);
    }
}

//! [`Resource`]: one named value, possibly reserved, possibly revocable.
//!
//! Owns: the rules a single resource must follow (valid name; built-in names have their
//! type: `cpus`, `gpus`, `mem`, `disk` are scalars and `ports` is ranges; gpus are whole;
//! scalars at most `Scalar::MAX`; set items are words of the text syntax; a valid
//! reservation), the single item's text form (`cpus(spark,revocable):4`) and the
//! canonical position of a name (built-ins first).
//! Must never: merge resources, drop zero values (that is the bag's job) or panic.

use std::cmp::Ordering;
use std::fmt;

use crate::error::ResourceError;
use crate::names::{check_name, check_token};
use crate::reservation::Reservation;
use crate::scalar::Scalar;
use crate::value::Value;
use crate::volume::Volume;

/// The built-in resource names, in canonical order, with their required value type.
pub(crate) const BUILT_INS: [(&str, &str); 5] = [
    ("cpus", "scalar"),
    ("gpus", "scalar"),
    ("mem", "scalar"),
    ("disk", "scalar"),
    ("ports", "ranges"),
];

/// One named value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Resource {
    /// `cpus`, `gpus`, `mem` (MB), `disk` (MB), `ports`, or a custom name
    /// (`[A-Za-z0-9_.-]+`).
    pub name: String,
    /// The amount, ranges or set.
    pub value: Value,
    /// `None` = unreserved (`*`).
    pub reservation: Option<Reservation>,
    /// Revocable (oversubscribed) resources may be taken back at any time.
    pub revocable: bool,
    /// A persistent volume (only on reserved, non-revocable `disk`); `None` for plain
    /// resources. A volume's disk never merges with plain disk or another volume.
    pub volume: Option<Volume>,
}

impl Resource {
    /// An unreserved, non-revocable resource. Not validated until it is pushed into a
    /// [`crate::Resources`] (or [`Resource::validate`] is called).
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Resource {
        Resource {
            name: name.into(),
            value: value.into(),
            reservation: None,
            revocable: false,
            volume: None,
        }
    }

    /// The same resource reserved by `reservation`.
    pub fn reserved(mut self, reservation: Reservation) -> Resource {
        self.reservation = Some(reservation);
        self
    }

    /// The same resource carrying `volume` (valid only on reserved `disk`).
    pub fn with_volume(mut self, volume: Volume) -> Resource {
        self.volume = Some(volume);
        self
    }

    /// The same resource marked revocable.
    pub fn into_revocable(mut self) -> Resource {
        self.revocable = true;
        self
    }

    /// Checks every rule of a single resource; the error names the resource (in the flag
    /// syntax) and the reason.
    pub fn validate(&self) -> Result<(), ResourceError> {
        self.check()
            .map_err(|reason| ResourceError::resource(self.to_string(), reason))
    }

    /// Checks every rule of a single resource, returning the bare reason.
    pub(crate) fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        if let Some((_, wanted)) = BUILT_INS.iter().find(|(n, _)| *n == self.name)
            && *wanted != self.value.type_name()
        {
            let article = if *wanted == "scalar" { "a " } else { "" };
            return Err(format!("{} must be {article}{wanted}", self.name));
        }
        match &self.value {
            Value::Scalar(s) => {
                if *s > Scalar::MAX {
                    return Err(format!("value {s} overflows the maximum {}", Scalar::MAX));
                }
                if self.name == "gpus" && !s.is_whole() {
                    return Err("gpus must be a whole number".to_string());
                }
            }
            Value::Ranges(_) => {}
            Value::Set(items) => {
                for item in items {
                    check_token("set item", item)?;
                }
            }
        }
        if let Some(r) = &self.reservation {
            r.check()?;
        }
        if let Some(v) = &self.volume {
            if self.name != "disk" {
                return Err("only disk can be a persistent volume".to_string());
            }
            if self.reservation.is_none() {
                return Err("a persistent volume needs reserved disk (a role)".to_string());
            }
            if self.revocable {
                return Err("a persistent volume cannot be revocable".to_string());
            }
            v.check()?;
        }
        Ok(())
    }

    /// The canonical order of entries in a [`crate::Resources`], which hold at most one
    /// entry per slot (name, reservation, revocability, volume) and one value type per name:
    /// unreserved first, then by reservation (role, static before dynamic, principal,
    /// labels); then non-revocable before revocable; then by name (built-ins `cpus`,
    /// `gpus`, `mem`, `disk`, `ports` first, then others in byte order); then plain before
    /// volumes, volumes by persistence id and container path.
    pub(crate) fn slot_cmp(&self, other: &Resource) -> Ordering {
        let reservation = match (&self.reservation, &other.reservation) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(a), Some(b)) => a.canonical_cmp(b),
        };
        reservation
            .then(self.revocable.cmp(&other.revocable))
            .then_with(|| name_key(&self.name).cmp(&name_key(&other.name)))
            .then_with(|| self.volume.cmp(&other.volume))
    }
}

fn name_key(name: &str) -> (usize, &str) {
    let rank = BUILT_INS
        .iter()
        .position(|(n, _)| *n == name)
        .unwrap_or(BUILT_INS.len());
    (rank, name)
}

impl fmt::Display for Resource {
    /// One item of the flag syntax: `cpus:4`, `cpus(spark):8`, `cpus(*,revocable):2`,
    /// `cpus(spark,dynamic,principal=ops,label=team=ml,revocable):4`, `ports:[80]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match (&self.reservation, self.revocable) {
            (None, false) => {}
            (None, true) => f.write_str("(*,revocable)")?,
            (Some(r), revocable) => {
                write!(f, "({r}")?;
                if let Some(v) = &self.volume {
                    write!(f, ",{v}")?;
                }
                if revocable {
                    f.write_str(",revocable")?;
                }
                f.write_str(")")?;
            }
        }
        write!(f, ":{}", self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranges::Ranges;
    use crate::reservation::ReservationKind;

    fn cpus(t: u64) -> Resource {
        Resource::new("cpus", Scalar::from_thousandths(t))
    }

    #[test]
    fn displays_items() {
        assert_eq!(cpus(4000).to_string(), "cpus:4");
        assert_eq!(
            cpus(2000).into_revocable().to_string(),
            "cpus(*,revocable):2"
        );
        let spark = Reservation::new(ReservationKind::Static, "spark");
        assert_eq!(
            cpus(8000).reserved(spark.clone()).to_string(),
            "cpus(spark):8"
        );
        assert_eq!(
            cpus(8000).reserved(spark).into_revocable().to_string(),
            "cpus(spark,revocable):8"
        );
    }

    #[test]
    fn validates() {
        let e = Resource::new("gpus", Scalar::from_thousandths(1500))
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "invalid resource 'gpus:1.5': gpus must be a whole number"
        );
        let e = Resource::new("ports", Scalar::from_thousandths(1000))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'ports:1'") && e.contains("ports must be ranges"),
            "{e}"
        );
        let e = Resource::new("cpus", Ranges::new([(1, 2)]).unwrap())
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("cpus must be a scalar"), "{e}");
        let e = cpus(u64::MAX).validate().unwrap_err().to_string();
        assert!(e.contains("overflows"), "{e}");
        let e = Resource::new("", Scalar::ZERO)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty name"), "{e}");
        let e = cpus(1)
            .reserved(Reservation::new(ReservationKind::Static, "a b"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid role 'a b'"), "{e}");
        assert!(
            Resource::new("gpus", Scalar::from_thousandths(2000))
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn canonical_order() {
        let spark = Reservation::new(ReservationKind::Static, "spark");
        let mut v = [
            Resource::new("bugs", Scalar::ZERO),
            cpus(1).reserved(spark.clone()),
            cpus(1).into_revocable(),
            Resource::new("ports", Scalar::ZERO),
            Resource::new("mem", Scalar::ZERO),
            Resource::new("aaa", Scalar::ZERO),
            cpus(1),
        ];
        v.sort_by(|a, b| a.slot_cmp(b));
        let s: Vec<String> = v.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            s,
            [
                "cpus:0.001",
                "mem:0",
                "ports:0",
                "aaa:0",
                "bugs:0",
                "cpus(*,revocable):0.001",
                "cpus(spark):0.001"
            ]
        );
    }
}

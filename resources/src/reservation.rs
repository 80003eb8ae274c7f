//! [`Reservation`] and [`ReservationKind`]: who a reserved resource is set aside for.
//!
//! Owns: the reservation's rules (a valid role; a static reservation has no principal
//! and no labels; principal and labels use the text syntax's word characters), its
//! qualifier text (`spark`, `spark,dynamic,principal=ops,label=team=ml`) and its place in
//! the canonical order (by role, then static before dynamic, then principal, then labels).
//! Must never: represent "unreserved" (that is the absence of a reservation) or accept
//! the role `*`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use crate::names::{check_token, check_token_chars};
use crate::role::validate_role;

/// How a reservation was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReservationKind {
    /// From the agent's `--resources` flag (`cpus(spark):8`); never unreserved.
    Static,
    /// Made at run time by a framework or an operator; may carry principal and labels.
    Dynamic,
}

/// Resources set aside for one role.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reservation {
    /// Static or dynamic.
    pub kind: ReservationKind,
    /// The role the resources are reserved for (never `*`).
    pub role: String,
    /// Who made a dynamic reservation. Always `None` for static ones.
    pub principal: Option<String>,
    /// Free-form labels of a dynamic reservation. Always empty for static ones.
    pub labels: BTreeMap<String, String>,
}

impl Reservation {
    /// A reservation of `kind` for `role`, without principal or labels.
    pub fn new(kind: ReservationKind, role: impl Into<String>) -> Reservation {
        Reservation {
            kind,
            role: role.into(),
            principal: None,
            labels: BTreeMap::new(),
        }
    }

    /// Checks the reservation's rules; the reason names the offending part.
    pub(crate) fn check(&self) -> Result<(), String> {
        validate_role(&self.role).map_err(|e| e.to_string())?;
        if self.kind == ReservationKind::Static
            && (self.principal.is_some() || !self.labels.is_empty())
        {
            return Err(
                "a static reservation cannot have a principal or labels (add 'dynamic')"
                    .to_string(),
            );
        }
        if let Some(p) = &self.principal {
            check_token("principal", p)?;
        }
        for (k, v) in &self.labels {
            check_token("label key", k)?;
            check_token_chars("label value", v)?;
        }
        Ok(())
    }

    /// The canonical order of reservations: role, then static before dynamic, then
    /// principal (none first), then labels.
    pub(crate) fn canonical_cmp(&self, other: &Reservation) -> Ordering {
        self.role
            .cmp(&other.role)
            .then(self.kind.cmp(&other.kind))
            .then_with(|| self.principal.cmp(&other.principal))
            .then_with(|| self.labels.cmp(&other.labels))
    }
}

impl fmt::Display for Reservation {
    /// The qualifiers of the flag syntax, without parentheses:
    /// `spark` or `spark,dynamic,principal=ops,label=team=ml`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.role)?;
        if self.kind == ReservationKind::Dynamic {
            f.write_str(",dynamic")?;
        }
        if let Some(p) = &self.principal {
            write!(f, ",principal={p}")?;
        }
        for (k, v) in &self.labels {
            write!(f, ",label={k}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_reservations_have_no_principal_or_labels() {
        let mut r = Reservation::new(ReservationKind::Static, "spark");
        assert!(r.check().is_ok());
        r.principal = Some("ops".into());
        assert!(r.check().unwrap_err().contains("static reservation"));
        r.kind = ReservationKind::Dynamic;
        assert!(r.check().is_ok());
        r.labels.insert("k".into(), "a b".into());
        assert!(r.check().unwrap_err().contains("'a b'"));
    }

    #[test]
    fn role_is_validated() {
        let r = Reservation::new(ReservationKind::Dynamic, "*");
        assert!(r.check().unwrap_err().contains("invalid role '*'"));
    }

    #[test]
    fn displays_qualifiers() {
        let mut r = Reservation::new(ReservationKind::Dynamic, "spark");
        r.principal = Some("ops".into());
        r.labels.insert("team".into(), "ml".into());
        assert_eq!(r.to_string(), "spark,dynamic,principal=ops,label=team=ml");
        assert_eq!(
            Reservation::new(ReservationKind::Static, "eng/ml").to_string(),
            "eng/ml"
        );
    }
}

//! Offer-matching helpers every framework needs beyond plain shapes: the ports a task takes
//! out of an offer's `ports` ranges, an offer's placement facts (hostname and attributes as
//! text), and attribute constraints in the Marathon style (`[field, operator, value]` with
//! UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER, IS) judged against where a framework's
//! other tasks already run.
//!
//! Pure functions over `agora_resources` and the offer; this module must never talk to the
//! master, and never decide which offer a framework uses: it only answers "does it fit".

use std::collections::BTreeMap;
use std::fmt;

use agora_proto::v1::Offer;
use agora_resources::{Attributes, Ranges, Resource, Resources, Value};

use crate::error::SdkError;

/// The placement facts of an agent: `hostname` and each attribute by name, as text
/// (scalars as decimals, ranges as `[a-b]`, sets as `{a,b}`).
pub type Placement = BTreeMap<String, String>;

/// The placement facts of the agent an offer comes from. Attributes that do not validate
/// (an offer is untrusted input) are left out rather than failing the whole offer.
pub fn offer_placement(offer: &Offer) -> Placement {
    let mut p = Placement::new();
    if let Ok(attributes) = Attributes::from_proto(&offer.attributes) {
        for a in attributes.iter() {
            p.insert(a.name.clone(), a.value.to_string());
        }
    }
    // The hostname is a fact of its own and wins over an attribute of that name.
    p.insert("hostname".to_string(), offer.hostname.clone());
    p
}

/// Ports for one task from the `ports` ranges of `available`: the `required` ports exactly
/// (each must be offered), then `count - required.len()` more, lowest first, none repeated.
/// `None` when the offer does not hold enough.
pub fn pick_ports(available: &Resources, count: usize, required: &[u16]) -> Option<Vec<u16>> {
    let offered = available.ranges("ports");
    let mut out: Vec<u16> = Vec::with_capacity(count.max(required.len()));
    for &p in required {
        if !offered.contains_value(u64::from(p)) || out.contains(&p) {
            return None;
        }
        out.push(p);
    }
    'ranges: for (begin, end) in offered.iter() {
        let mut port = begin;
        while port <= end {
            if out.len() >= count {
                break 'ranges;
            }
            let p = u16::try_from(port).ok()?;
            if !out.contains(&p) {
                out.push(p);
            }
            port += 1;
        }
    }
    (out.len() >= count).then_some(out)
}

/// The `ports` shape holding exactly `ports` (empty when there are none), for
/// [`crate::offer::take`].
pub fn ports_shape(ports: &[u16]) -> Result<Resources, SdkError> {
    let mut shape = Resources::new();
    if ports.is_empty() {
        return Ok(shape);
    }
    let ranges = Ranges::new(ports.iter().map(|&p| (u64::from(p), u64::from(p))))?;
    shape.push(Resource::new("ports", Value::Ranges(ranges)))?;
    Ok(shape)
}

/// A constraint operator.
#[derive(Clone, Debug)]
pub enum Operator {
    /// No two tasks share a value of the field.
    Unique,
    /// Every task on the same value: the given one, or (none given) the first task's.
    Cluster(Option<String>),
    /// Spread evenly over the field's values; optionally over at least this many values.
    GroupBy(Option<u32>),
    /// The value fully matches the regular expression.
    Like(regex::Regex),
    /// The value does not fully match the regular expression.
    Unlike(regex::Regex),
    /// At most this many tasks per value.
    MaxPer(u32),
    /// The value equals the given text.
    Is(String),
}

/// One attribute constraint: `field` (`hostname` or an attribute name) and its operator.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// `hostname` or an attribute name.
    pub field: String,
    /// What must hold of the field's value.
    pub operator: Operator,
}

impl PartialEq for Constraint {
    fn eq(&self, other: &Constraint) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Why a constraint could not be parsed; `index` is the position in the triple
/// (0 field, 1 operator, 2 value) the problem is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConstraintError {
    /// Position in the `[field, operator, value]` triple.
    pub index: usize,
    /// What is wrong.
    pub message: String,
}

fn bad(index: usize, message: impl Into<String>) -> ConstraintError {
    ConstraintError {
        index,
        message: message.into(),
    }
}

/// A regular expression matching whole values only.
fn anchored(index: usize, pattern: &str) -> Result<regex::Regex, ConstraintError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        bad(
            index,
            format!("invalid regular expression {pattern:?}: {e}"),
        )
    })
}

impl Constraint {
    /// Parse `[field, operator]` or `[field, operator, value]` (operators upper case, as
    /// Marathon writes them).
    pub fn parse(parts: &[String]) -> Result<Constraint, ConstraintError> {
        if !(2..=3).contains(&parts.len()) {
            return Err(bad(
                0,
                format!(
                    "a constraint is [field, operator] or [field, operator, value], got {} item(s)",
                    parts.len()
                ),
            ));
        }
        let field = parts[0].trim();
        if field.is_empty() {
            return Err(bad(0, "the field must not be empty"));
        }
        let value = parts.get(2).map(String::as_str);
        let positive = |what: &str| -> Result<u32, ConstraintError> {
            let v = value.ok_or_else(|| bad(2, format!("{what} needs a value")))?;
            match v.trim().parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(bad(
                    2,
                    format!("{what} needs a positive integer value, got {v:?}"),
                )),
            }
        };
        let operator = match parts[1].as_str() {
            "UNIQUE" => match value {
                None => Operator::Unique,
                Some(_) => return Err(bad(2, "UNIQUE takes no value")),
            },
            "CLUSTER" => Operator::Cluster(value.filter(|v| !v.is_empty()).map(str::to_string)),
            "GROUP_BY" => match value {
                None => Operator::GroupBy(None),
                Some(_) => Operator::GroupBy(Some(positive("GROUP_BY")?)),
            },
            "LIKE" | "UNLIKE" => {
                let v = value.ok_or_else(|| bad(2, format!("{} needs a value", parts[1])))?;
                let re = anchored(2, v)?;
                if parts[1] == "LIKE" {
                    Operator::Like(re)
                } else {
                    Operator::Unlike(re)
                }
            }
            "MAX_PER" => Operator::MaxPer(positive("MAX_PER")?),
            "IS" => match value {
                Some(v) if !v.is_empty() => Operator::Is(v.to_string()),
                _ => return Err(bad(2, "IS needs a value")),
            },
            other => {
                return Err(bad(
                    1,
                    format!(
                        "unknown operator {other:?}: expected one of UNIQUE, CLUSTER, GROUP_BY, \
                         LIKE, UNLIKE, MAX_PER, IS"
                    ),
                ));
            }
        };
        Ok(Constraint {
            field: field.to_string(),
            operator,
        })
    }

    /// Whether a task may go to `candidate` given the placements of the tasks already
    /// placed (running or about to be launched). A candidate without the field never
    /// satisfies a constraint on it, except UNLIKE (nothing to match).
    pub fn allows(&self, candidate: &Placement, placed: &[&Placement]) -> bool {
        let value = candidate.get(&self.field);
        let Some(value) = value else {
            return matches!(self.operator, Operator::Unlike(_));
        };
        let same = || {
            placed
                .iter()
                .filter(|p| p.get(&self.field) == Some(value))
                .count()
        };
        match &self.operator {
            Operator::Unique => same() == 0,
            Operator::Cluster(Some(v)) | Operator::Is(v) => value == v,
            Operator::Cluster(None) => placed
                .iter()
                .filter_map(|p| p.get(&self.field))
                .all(|v| v == value),
            Operator::Like(re) => re.is_match(value),
            Operator::Unlike(re) => !re.is_match(value),
            Operator::MaxPer(n) => same() < *n as usize,
            Operator::GroupBy(min_values) => {
                let mut counts: BTreeMap<&String, usize> = BTreeMap::new();
                for v in placed.iter().filter_map(|p| p.get(&self.field)) {
                    *counts.entry(v).or_default() += 1;
                }
                let mine = counts.get(value).copied().unwrap_or(0);
                let known_values = counts.len() + usize::from(mine == 0);
                // Values not seen yet count as holding zero tasks while fewer than the
                // declared number of values are known.
                let fewest = if min_values.is_some_and(|n| known_values < n as usize) {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                mine <= fewest
            }
        }
    }
}

impl fmt::Display for Constraint {
    /// `field:OPERATOR[:value]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = &self.field;
        match &self.operator {
            Operator::Unique => write!(f, "{field}:UNIQUE"),
            Operator::Cluster(None) => write!(f, "{field}:CLUSTER"),
            Operator::Cluster(Some(v)) => write!(f, "{field}:CLUSTER:{v}"),
            Operator::GroupBy(None) => write!(f, "{field}:GROUP_BY"),
            Operator::GroupBy(Some(n)) => write!(f, "{field}:GROUP_BY:{n}"),
            Operator::Like(re) => write!(f, "{field}:LIKE:{}", unanchor(re)),
            Operator::Unlike(re) => write!(f, "{field}:UNLIKE:{}", unanchor(re)),
            Operator::MaxPer(n) => write!(f, "{field}:MAX_PER:{n}"),
            Operator::Is(v) => write!(f, "{field}:IS:{v}"),
        }
    }
}

fn unanchor(re: &regex::Regex) -> &str {
    let s = re.as_str();
    s.strip_prefix("^(?:")
        .and_then(|s| s.strip_suffix(")$"))
        .unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(parts: &[&str]) -> Constraint {
        Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .expect("valid constraint")
    }

    fn at(host: &str, rack: &str) -> Placement {
        [("hostname", host), ("rack", rack)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn r(text: &str) -> Resources {
        Resources::parse(text).unwrap()
    }

    #[test]
    fn ports_come_lowest_first_and_required_ones_exactly() {
        let avail = r("cpus:1;ports:[31000-31002,31010-31011]");
        assert_eq!(pick_ports(&avail, 2, &[]), Some(vec![31000, 31001]));
        assert_eq!(
            pick_ports(&avail, 4, &[]),
            Some(vec![31000, 31001, 31002, 31010])
        );
        assert_eq!(pick_ports(&avail, 6, &[]), None);
        assert_eq!(pick_ports(&avail, 1, &[31011]), Some(vec![31011]));
        assert_eq!(pick_ports(&avail, 2, &[31011]), Some(vec![31011, 31000]));
        assert_eq!(pick_ports(&avail, 1, &[8080]), None);
        assert_eq!(pick_ports(&avail, 2, &[31000, 31000]), None);
        assert_eq!(pick_ports(&r("cpus:1"), 0, &[]), Some(vec![]));
        assert_eq!(pick_ports(&r("cpus:1"), 1, &[]), None);
    }

    #[test]
    fn ports_shape_takes_exactly_those_ports() {
        let mut avail = r("ports:[31000-31005]");
        let shape = ports_shape(&[31001, 31004]).unwrap();
        crate::offer::take(&mut avail, &shape).expect("ports fit");
        assert_eq!(avail, r("ports:[31000-31000,31002-31003,31005-31005]"));
        assert!(ports_shape(&[]).unwrap().is_empty());
    }

    #[test]
    fn offer_placement_has_hostname_and_attribute_text() {
        let offer = Offer {
            hostname: "h1".into(),
            attributes: Attributes::parse("rack:r1;cores:8;zones:{a,b}")
                .unwrap()
                .to_proto(),
            ..Default::default()
        };
        let p = offer_placement(&offer);
        assert_eq!(p["hostname"], "h1");
        assert_eq!(p["rack"], "r1");
        assert_eq!(p["cores"], "8");
        assert_eq!(p["zones"], "{a,b}");
    }

    #[test]
    fn parse_refuses_bad_triples_naming_the_position() {
        let parse = |parts: &[&str]| {
            Constraint::parse(&parts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(parse(&["hostname"]).unwrap_err().index, 0);
        assert_eq!(parse(&["", "UNIQUE"]).unwrap_err().index, 0);
        assert_eq!(parse(&["hostname", "unique"]).unwrap_err().index, 1);
        assert_eq!(parse(&["hostname", "UNIQUE", "x"]).unwrap_err().index, 2);
        assert_eq!(parse(&["rack", "MAX_PER"]).unwrap_err().index, 2);
        assert_eq!(parse(&["rack", "MAX_PER", "0"]).unwrap_err().index, 2);
        assert_eq!(parse(&["rack", "LIKE", "("]).unwrap_err().index, 2);
        assert_eq!(parse(&["rack", "IS"]).unwrap_err().index, 2);
        assert_eq!(parse(&["rack", "GROUP_BY", "x"]).unwrap_err().index, 2);
        assert_eq!(parse(&["a", "b", "c", "d"]).unwrap_err().index, 0);
    }

    #[test]
    fn display_round_trips_through_parse() {
        for parts in [
            vec!["hostname", "UNIQUE"],
            vec!["rack", "CLUSTER", "r1"],
            vec!["rack", "GROUP_BY", "3"],
            vec!["rack", "LIKE", "r[12]"],
            vec!["rack", "UNLIKE", "r3"],
            vec!["rack", "MAX_PER", "2"],
            vec!["rack", "IS", "r1"],
        ] {
            let k = c(&parts);
            assert_eq!(k.to_string(), parts.join(":"));
        }
    }

    #[test]
    fn unique_cluster_like_unlike_is_and_max_per() {
        let placed = [at("h1", "r1"), at("h2", "r1")];
        let placed: Vec<&Placement> = placed.iter().collect();
        assert!(!c(&["hostname", "UNIQUE"]).allows(&at("h1", "r2"), &placed));
        assert!(c(&["hostname", "UNIQUE"]).allows(&at("h3", "r2"), &placed));
        assert!(c(&["rack", "CLUSTER", "r1"]).allows(&at("h3", "r1"), &placed));
        assert!(!c(&["rack", "CLUSTER", "r1"]).allows(&at("h3", "r2"), &placed));
        assert!(c(&["rack", "CLUSTER"]).allows(&at("h3", "r1"), &placed));
        assert!(!c(&["rack", "CLUSTER"]).allows(&at("h3", "r2"), &placed));
        assert!(c(&["rack", "CLUSTER"]).allows(&at("h3", "r9"), &[]));
        assert!(c(&["hostname", "LIKE", "h[0-9]"]).allows(&at("h3", "r"), &[]));
        assert!(!c(&["hostname", "LIKE", "h"]).allows(&at("h3", "r"), &[]));
        assert!(!c(&["hostname", "UNLIKE", "h[0-9]"]).allows(&at("h3", "r"), &[]));
        assert!(c(&["hostname", "UNLIKE", "h"]).allows(&at("h3", "r"), &[]));
        assert!(c(&["rack", "IS", "r2"]).allows(&at("h3", "r2"), &placed));
        assert!(!c(&["rack", "IS", "r2"]).allows(&at("h3", "r1"), &placed));
        assert!(!c(&["rack", "MAX_PER", "2"]).allows(&at("h3", "r1"), &placed));
        assert!(c(&["rack", "MAX_PER", "3"]).allows(&at("h3", "r1"), &placed));
        // A missing field satisfies only UNLIKE.
        assert!(!c(&["zone", "IS", "a"]).allows(&at("h3", "r1"), &[]));
        assert!(c(&["zone", "UNLIKE", "a"]).allows(&at("h3", "r1"), &[]));
    }

    #[test]
    fn group_by_spreads_evenly() {
        let placed = [at("h1", "r1"), at("h2", "r1"), at("h3", "r2")];
        let placed: Vec<&Placement> = placed.iter().collect();
        let g = c(&["rack", "GROUP_BY"]);
        assert!(!g.allows(&at("h4", "r1"), &placed));
        assert!(g.allows(&at("h4", "r2"), &placed));
        assert!(g.allows(&at("h4", "r3"), &placed), "a new value holds zero");
        // With three values declared and two known, only an unseen value is accepted.
        let g3 = c(&["rack", "GROUP_BY", "3"]);
        let two = [at("h1", "r1"), at("h2", "r2")];
        let two: Vec<&Placement> = two.iter().collect();
        assert!(!g3.allows(&at("h4", "r1"), &two));
        assert!(g3.allows(&at("h4", "r3"), &two));
    }
}

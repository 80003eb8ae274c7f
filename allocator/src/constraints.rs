//! Offer constraints: which agents (by attributes) a framework's role may be offered.
//!
//! Owns the constraint vocabulary of `FrameworkSpec` and its evaluation against an agent's
//! [`Attributes`]. Groups are alternatives (any one suffices); the constraints of a group
//! must all hold. Values compare against the attribute's text form (`rack-2`, `8`,
//! `[1-4]`, `{a,b}`); regular expressions must match that text entirely. Patterns are
//! compiled once, with a size limit, when the allocator learns the spec. Must never do
//! I/O or panic on any pattern.

use agora_resources::Attributes;
use regex::{Regex, RegexBuilder};

/// The compiled form of a pattern may be this large at most (bytes), so an untrusted
/// pattern cannot make the allocator's memory or matching time explode.
const REGEX_SIZE_LIMIT: usize = 1 << 16;

/// One condition on one attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Predicate {
    Exists,
    NotExists,
    Equals(String),
    NotEquals(String),
    /// Full match of a regular expression over the attribute's text form.
    Matches(String),
    NotMatches(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeConstraint {
    pub attribute: String,
    pub predicate: Predicate,
}

/// The constraints of one role: any one group suffices; an empty list matches every agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoleConstraints {
    pub role: String,
    pub groups: Vec<Vec<AttributeConstraint>>,
}

#[derive(Clone, Debug)]
enum Compiled {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    Matches(String, Regex),
    NotMatches(String, Regex),
}

/// Constraints of one role, ready to evaluate.
#[derive(Clone, Debug, Default)]
pub(crate) struct CompiledConstraints {
    groups: Vec<Vec<Compiled>>,
}

fn compile_pattern(pattern: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("pattern '{pattern}': {e}"))
}

impl CompiledConstraints {
    pub(crate) fn compile(rc: &RoleConstraints) -> Result<CompiledConstraints, String> {
        let mut groups = Vec::with_capacity(rc.groups.len());
        for g in &rc.groups {
            let mut out = Vec::with_capacity(g.len());
            for c in g {
                let a = c.attribute.clone();
                out.push(match &c.predicate {
                    Predicate::Exists => Compiled::Exists(a),
                    Predicate::NotExists => Compiled::NotExists(a),
                    Predicate::Equals(v) => Compiled::Equals(a, v.clone()),
                    Predicate::NotEquals(v) => Compiled::NotEquals(a, v.clone()),
                    Predicate::Matches(p) => Compiled::Matches(a, compile_pattern(p)?),
                    Predicate::NotMatches(p) => Compiled::NotMatches(a, compile_pattern(p)?),
                });
            }
            groups.push(out);
        }
        Ok(CompiledConstraints { groups })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether an agent with `attrs` may be offered.
    pub(crate) fn matches(&self, attrs: &Attributes) -> bool {
        self.groups.is_empty()
            || self
                .groups
                .iter()
                .any(|g| g.iter().all(|c| Self::holds(c, attrs)))
    }

    fn holds(c: &Compiled, attrs: &Attributes) -> bool {
        let text = |name: &str| attrs.get(name).map(|v| v.to_string());
        match c {
            Compiled::Exists(a) => attrs.get(a).is_some(),
            Compiled::NotExists(a) => attrs.get(a).is_none(),
            Compiled::Equals(a, v) => text(a).is_some_and(|t| t == *v),
            Compiled::NotEquals(a, v) => text(a).is_none_or(|t| t != *v),
            Compiled::Matches(a, re) => text(a).is_some_and(|t| re.is_match(&t)),
            Compiled::NotMatches(a, re) => text(a).is_none_or(|t| !re.is_match(&t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(attribute: &str, predicate: Predicate) -> AttributeConstraint {
        AttributeConstraint {
            attribute: attribute.into(),
            predicate,
        }
    }

    #[test]
    fn predicates_and_groups() {
        let attrs = Attributes::parse("rack:rack-2;cores:8;zones:{a,b}").unwrap();
        let one = |p: AttributeConstraint| {
            CompiledConstraints::compile(&RoleConstraints {
                role: "r".into(),
                groups: vec![vec![p]],
            })
            .unwrap()
            .matches(&attrs)
        };
        assert!(one(c("rack", Predicate::Exists)));
        assert!(!one(c("gpu", Predicate::Exists)));
        assert!(one(c("gpu", Predicate::NotExists)));
        assert!(one(c("rack", Predicate::Equals("rack-2".into()))));
        assert!(one(c("cores", Predicate::Equals("8".into()))));
        assert!(!one(c("rack", Predicate::NotEquals("rack-2".into()))));
        assert!(one(c("rack", Predicate::NotEquals("rack-3".into()))));
        assert!(one(c("rack", Predicate::Matches("rack-[0-9]".into()))));
        assert!(
            !one(c("rack", Predicate::Matches("rack".into()))),
            "full match"
        );
        assert!(one(c("rack", Predicate::NotMatches("rack-[3-9]".into()))));
        assert!(one(c("zones", Predicate::Equals("{a,b}".into()))));
        let any = CompiledConstraints::compile(&RoleConstraints {
            role: "r".into(),
            groups: vec![
                vec![c("rack", Predicate::Equals("rack-9".into()))],
                vec![c("cores", Predicate::Exists)],
            ],
        })
        .unwrap();
        assert!(any.matches(&attrs));
        assert!(CompiledConstraints::default().matches(&attrs));
        assert!(
            CompiledConstraints::compile(&RoleConstraints {
                role: "r".into(),
                groups: vec![vec![c("rack", Predicate::Matches("(".into()))]],
            })
            .is_err()
        );
    }
}

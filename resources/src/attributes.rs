//! Agent attributes: [`AttributeValue`], [`Attribute`] and the sorted, name-unique
//! [`Attributes`].
//!
//! Owns: the attribute rules (valid name, one attribute per name; text values are words
//! of the text syntax; scalars at most `Scalar::MAX`; set items are words), the text form
//! (`rack:rack-2;cores:8;slots:[1-4];zones:{a,b}`), and protobuf conversion.
//! Must never: take part in arithmetic or allocation (attributes are facts, not
//! resources), or panic on any input.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use agora_proto::v1 as pb;

use crate::error::ResourceError;
use crate::names::{check_name, check_token};
use crate::ranges::Ranges;
use crate::scalar::Scalar;
use crate::value::fmt_set;

/// The value of an attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum AttributeValue {
    /// A word, e.g. `rack-2`. The text parser reads a word that looks like a decimal
    /// (`8`, `1.5`) as a scalar, so such text (possible from protobuf or JSON) prints
    /// the same as a scalar.
    Text(String),
    /// A non-negative decimal.
    Scalar(Scalar),
    /// Integer ranges, e.g. `[1-4]`.
    Ranges(Ranges),
    /// A set of words, e.g. `{a,b}`.
    Set(BTreeSet<String>),
}

impl AttributeValue {
    /// "text", "scalar", "ranges" or "set".
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::Text(_) => "text",
            AttributeValue::Scalar(_) => "scalar",
            AttributeValue::Ranges(_) => "ranges",
            AttributeValue::Set(_) => "set",
        }
    }
}

impl fmt::Display for AttributeValue {
    /// The text form as in the flag syntax: `rack-2`, `1.5`, `[1-4]`, `{a,b}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttributeValue::Text(t) => f.write_str(t),
            AttributeValue::Scalar(s) => s.fmt(f),
            AttributeValue::Ranges(r) => r.fmt(f),
            AttributeValue::Set(s) => fmt_set(s, f),
        }
    }
}

/// A named fact about an agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attribute {
    /// `[A-Za-z0-9_.-]+`.
    pub name: String,
    /// The value.
    pub value: AttributeValue,
}

impl Attribute {
    /// Checks the attribute's rules; the error names it (`name:value`) and the reason.
    pub fn validate(&self) -> Result<(), ResourceError> {
        self.check()
            .map_err(|reason| ResourceError::attribute(self.to_string(), reason))
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        match &self.value {
            AttributeValue::Text(t) => check_token("text value", t),
            AttributeValue::Scalar(s) if *s > Scalar::MAX => {
                Err(format!("value {s} overflows the maximum {}", Scalar::MAX))
            }
            AttributeValue::Scalar(_) | AttributeValue::Ranges(_) => Ok(()),
            AttributeValue::Set(items) => items
                .iter()
                .try_for_each(|item| check_token("set item", item)),
        }
    }

    /// Converts an untrusted protobuf attribute, validating it.
    pub fn from_proto(p: &pb::Attribute) -> Result<Attribute, ResourceError> {
        use pb::attribute::Value as V;
        let value = match &p.value {
            None => {
                return Err(ResourceError::attribute(
                    &p.name,
                    "missing value (one of text, scalar, ranges, set)",
                ));
            }
            Some(V::Text(t)) => AttributeValue::Text(t.clone()),
            Some(V::Scalar(s)) => AttributeValue::Scalar(Scalar::from_thousandths(s.thousandths)),
            Some(V::Ranges(r)) => AttributeValue::Ranges(
                crate::proto::ranges_from_proto(r)
                    .map_err(|reason| ResourceError::attribute(&p.name, reason))?,
            ),
            Some(V::Set(s)) => AttributeValue::Set(
                crate::proto::set_from_proto(s)
                    .map_err(|reason| ResourceError::attribute(&p.name, reason))?,
            ),
        };
        let a = Attribute {
            name: p.name.clone(),
            value,
        };
        a.validate()?;
        Ok(a)
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> pb::Attribute {
        use pb::attribute::Value as V;
        let value = match &self.value {
            AttributeValue::Text(t) => V::Text(t.clone()),
            AttributeValue::Scalar(s) => V::Scalar(pb::Scalar {
                thousandths: s.thousandths(),
            }),
            AttributeValue::Ranges(r) => V::Ranges(crate::proto::ranges_to_proto(r)),
            AttributeValue::Set(s) => V::Set(pb::Set {
                item: s.iter().cloned().collect(),
            }),
        };
        pb::Attribute {
            name: self.name.clone(),
            value: Some(value),
        }
    }
}

impl fmt::Display for Attribute {
    /// `name:value`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.value)
    }
}

/// An agent's attributes: sorted by name, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes(Vec<Attribute>);

impl Attributes {
    /// Parses the `--attributes` flag syntax: `rack:rack-2;datacenter:china`. A value is
    /// ranges if `[..]`, a set if `{..}`, a scalar if it is a non-negative decimal,
    /// otherwise text. A repeated name is an error.
    pub fn parse(text: &str) -> Result<Attributes, ResourceError> {
        crate::parse::parse_attributes(text)
    }

    /// Converts untrusted protobuf attributes, validating each; a repeated name is an error.
    pub fn from_proto(items: &[pb::Attribute]) -> Result<Attributes, ResourceError> {
        let mut out = Attributes::default();
        for p in items {
            out.insert(Attribute::from_proto(p)?)?;
        }
        Ok(out)
    }

    /// The protobuf form, sorted by name.
    pub fn to_proto(&self) -> Vec<pb::Attribute> {
        self.0.iter().map(Attribute::to_proto).collect()
    }

    /// The value of the attribute `name`.
    pub fn get(&self, name: &str) -> Option<&AttributeValue> {
        self.0
            .binary_search_by(|a| a.name.as_str().cmp(name))
            .ok()
            .and_then(|i| self.0.get(i))
            .map(|a| &a.value)
    }

    /// The attributes, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &Attribute> {
        self.0.iter()
    }

    /// Number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Validates and adds an attribute; a name already present is an error.
    pub fn insert(&mut self, a: Attribute) -> Result<(), ResourceError> {
        let item = a.to_string();
        self.insert_item(a, &item)
    }

    /// [`Attributes::insert`] naming `item` (the caller's text) in errors.
    pub(crate) fn insert_item(&mut self, a: Attribute, item: &str) -> Result<(), ResourceError> {
        a.check()
            .map_err(|reason| ResourceError::attribute(item, reason))?;
        match self.0.binary_search_by(|x| x.name.cmp(&a.name)) {
            Ok(_) => Err(ResourceError::attribute(
                item,
                format!("duplicate attribute '{}'", a.name),
            )),
            Err(i) => {
                self.0.insert(i, a);
                Ok(())
            }
        }
    }
}

impl fmt::Display for Attributes {
    /// The flag syntax, sorted by name, joined by `;`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            a.fmt(f)?;
        }
        Ok(())
    }
}

impl FromStr for Attributes {
    type Err = ResourceError;

    /// Same as [`Attributes::parse`].
    fn from_str(s: &str) -> Result<Attributes, ResourceError> {
        Attributes::parse(s)
    }
}

impl<'a> IntoIterator for &'a Attributes {
    type Item = &'a Attribute;
    type IntoIter = std::slice::Iter<'a, Attribute>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mission_example_round_trips_through_text_and_proto() {
        let a = Attributes::parse("rack:rack-2;datacenter:china;os:centosv7.2").unwrap();
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|x| matches!(x.value, AttributeValue::Text(_))));
        assert_eq!(Attributes::parse(&a.to_string()).unwrap(), a);
        assert_eq!(Attributes::from_proto(&a.to_proto()).unwrap(), a);
    }

    #[test]
    fn from_proto_validates() {
        let text = |name: &str, t: &str| pb::Attribute {
            name: name.into(),
            value: Some(pb::attribute::Value::Text(t.into())),
        };
        let e = |items: &[pb::Attribute]| Attributes::from_proto(items).unwrap_err().to_string();
        assert_eq!(
            e(&[text("rack", "a"), text("rack", "b")]),
            "invalid attribute 'rack:b': duplicate attribute 'rack'"
        );
        assert!(e(&[text("", "a")]).contains("empty name"));
        assert!(e(&[text("r", "a b")]).contains("invalid text value 'a b'"));
        assert!(e(&[text("r", "")]).contains("empty text value"));
        let missing = e(&[none_attr()]);
        assert!(
            missing.contains("'r'") && missing.contains("missing value"),
            "{missing}"
        );
        let big = pb::Attribute {
            name: "r".into(),
            value: Some(pb::attribute::Value::Scalar(pb::Scalar {
                thousandths: u64::MAX,
            })),
        };
        assert!(e(&[big]).contains("overflows"));
        let rev = pb::Attribute {
            name: "r".into(),
            value: Some(pb::attribute::Value::Ranges(pb::Ranges {
                range: vec![pb::Range { begin: 5, end: 1 }],
            })),
        };
        assert!(e(&[rev]).contains("reversed"));
        let dup = pb::Attribute {
            name: "r".into(),
            value: Some(pb::attribute::Value::Set(pb::Set {
                item: vec!["a".into(), "a".into()],
            })),
        };
        assert!(e(&[dup]).contains("duplicate set item 'a'"));
    }

    fn none_attr() -> pb::Attribute {
        pb::Attribute {
            name: "r".into(),
            value: None,
        }
    }

    #[test]
    fn insert_keeps_names_sorted_and_unique() {
        let mut a = Attributes::default();
        a.insert(Attribute {
            name: "z".into(),
            value: AttributeValue::Scalar(Scalar::from_units(8).unwrap()),
        })
        .unwrap();
        a.insert(Attribute {
            name: "a".into(),
            value: AttributeValue::Text("x".into()),
        })
        .unwrap();
        assert_eq!(a.to_string(), "a:x;z:8");
        assert!(
            a.insert(Attribute {
                name: "a".into(),
                value: AttributeValue::Text("y".into()),
            })
            .is_err()
        );
    }
}

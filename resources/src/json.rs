//! The JSON form of [`Resources`], [`Resource`], [`Attributes`] and [`Attribute`]
//! (serde `Serialize` / `Deserialize`), documented on the crate root.
//!
//! Owns: the JSON shape (an array of objects such as `{"name":"cpus","scalar":1.5}`),
//! exact reading of JSON numbers (through their decimal text, never `f64` arithmetic),
//! and routing every deserialised item through the same validating constructors as the
//! text parser.
//! Must never: accept a document the text parser would refuse, build a value without
//! validation, or write a scalar that does not read back to the same thousandths.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value as Json};

use crate::attributes::{Attribute, AttributeValue, Attributes};
use crate::error::ResourceError;
use crate::ranges::Ranges;
use crate::reservation::{Reservation, ReservationKind};
use crate::resource::Resource;
use crate::resources::Resources;
use crate::scalar::{Scalar, parse_decimal_with_exponent};
use crate::value::Value;
use crate::volume::Volume;

/// A resource object as read, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceIn {
    name: String,
    #[serde(default)]
    scalar: Option<Number>,
    #[serde(default)]
    ranges: Option<Vec<(u64, u64)>>,
    #[serde(default)]
    set: Option<Vec<String>>,
    #[serde(default)]
    reservation: Option<ReservationIn>,
    #[serde(default)]
    revocable: bool,
    #[serde(default)]
    volume: Option<VolumeIn>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VolumeIn {
    persistence_id: String,
    container_path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReservationIn {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    role: String,
    #[serde(default)]
    principal: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// An attribute object as read, before validation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttributeIn {
    name: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    scalar: Option<Number>,
    #[serde(default)]
    ranges: Option<Vec<(u64, u64)>>,
    #[serde(default)]
    set: Option<Vec<String>>,
}

/// Reads a JSON number exactly: through its decimal text, rounding half-up on the 4th
/// decimal like the text syntax.
fn scalar_from_json(n: &Number) -> Result<Scalar, String> {
    let text = n.to_string();
    parse_decimal_with_exponent(&text).map_err(|e| e.reason(&text))
}

/// Writes a scalar as a JSON number: an integer when whole, otherwise the float whose
/// shortest decimal form is the exact value (exact for every value up to `Scalar::MAX`).
fn scalar_to_json(s: Scalar) -> Json {
    if s.is_whole() {
        Json::from(s.thousandths() / 1000)
    } else {
        Number::from_f64(s.as_f64()).map_or(Json::Null, Json::Number)
    }
}

fn ranges_from_json(name: &str, pairs: &[(u64, u64)]) -> Result<Ranges, ResourceError> {
    Ranges::new(pairs.iter().copied()).map_err(|e| match e {
        ResourceError::ReversedRange { begin, end } => ResourceError::resource(
            format!("{name}:[{begin}-{end}]"),
            format!("range '{begin}-{end}' is reversed: begin is greater than end"),
        ),
        other => other,
    })
}

fn set_from_json(items: Vec<String>) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for item in items {
        if out.contains(&item) {
            return Err(format!("duplicate set item '{item}'"));
        }
        out.insert(item);
    }
    Ok(out)
}

fn exactly_one(present: &[bool], which: &str) -> Result<(), String> {
    match present.iter().filter(|p| **p).count() {
        1 => Ok(()),
        0 => Err(format!("missing value (one of {which})")),
        _ => Err(format!("more than one value (only one of {which})")),
    }
}

impl ResourceIn {
    /// Builds the resource and checks every rule, naming the item in errors.
    fn into_resource(self) -> Result<Resource, ResourceError> {
        let name = self.name;
        let fail = |item: &str, reason: String| ResourceError::resource(item, reason);
        exactly_one(
            &[
                self.scalar.is_some(),
                self.ranges.is_some(),
                self.set.is_some(),
            ],
            "'scalar', 'ranges', 'set'",
        )
        .map_err(|r| fail(&name, r))?;
        let value = if let Some(n) = &self.scalar {
            Value::Scalar(scalar_from_json(n).map_err(|r| fail(&format!("{name}:{n}"), r))?)
        } else if let Some(pairs) = &self.ranges {
            Value::Ranges(ranges_from_json(&name, pairs)?)
        } else {
            let items = self.set.unwrap_or_default();
            let shown = format!("{name}:{{{}}}", items.join(","));
            Value::Set(set_from_json(items).map_err(|r| fail(&shown, r))?)
        };
        let reservation = match self.reservation {
            None => None,
            Some(r) => {
                let kind = match r.kind.as_deref() {
                    None | Some("static") => ReservationKind::Static,
                    Some("dynamic") => ReservationKind::Dynamic,
                    Some(other) => {
                        return Err(fail(
                            &name,
                            format!(
                                "unknown reservation type '{other}' (expected 'static' or 'dynamic')"
                            ),
                        ));
                    }
                };
                Some(Reservation {
                    kind,
                    role: r.role,
                    principal: r.principal,
                    labels: r.labels,
                })
            }
        };
        let r = Resource {
            name,
            value,
            reservation,
            revocable: self.revocable,
            volume: self
                .volume
                .map(|v| Volume::new(v.persistence_id, v.container_path)),
        };
        r.validate()?;
        Ok(r)
    }
}

impl AttributeIn {
    fn into_attribute(self) -> Result<Attribute, ResourceError> {
        let name = self.name;
        let fail = |item: &str, reason: String| ResourceError::attribute(item, reason);
        exactly_one(
            &[
                self.text.is_some(),
                self.scalar.is_some(),
                self.ranges.is_some(),
                self.set.is_some(),
            ],
            "'text', 'scalar', 'ranges', 'set'",
        )
        .map_err(|r| fail(&name, r))?;
        let value = if let Some(t) = self.text {
            AttributeValue::Text(t)
        } else if let Some(n) = &self.scalar {
            AttributeValue::Scalar(
                scalar_from_json(n).map_err(|r| fail(&format!("{name}:{n}"), r))?,
            )
        } else if let Some(pairs) = &self.ranges {
            AttributeValue::Ranges(
                Ranges::new(pairs.iter().copied()).map_err(|e| fail(&name, e.to_string()))?,
            )
        } else {
            let items = self.set.unwrap_or_default();
            let shown = format!("{name}:{{{}}}", items.join(","));
            AttributeValue::Set(set_from_json(items).map_err(|r| fail(&shown, r))?)
        };
        let a = Attribute { name, value };
        a.validate()?;
        Ok(a)
    }
}

fn ranges_to_json(r: &Ranges) -> Json {
    Json::Array(
        r.iter()
            .map(|(b, e)| Json::Array(vec![Json::from(b), Json::from(e)]))
            .collect(),
    )
}

fn set_to_json(s: &BTreeSet<String>) -> Json {
    Json::Array(s.iter().map(|i| Json::String(i.clone())).collect())
}

/// One resource as a JSON object.
pub(crate) fn resource_to_json(r: &Resource) -> Json {
    let mut m = Map::new();
    m.insert("name".into(), Json::String(r.name.clone()));
    match &r.value {
        Value::Scalar(s) => m.insert("scalar".into(), scalar_to_json(*s)),
        Value::Ranges(x) => m.insert("ranges".into(), ranges_to_json(x)),
        Value::Set(s) => m.insert("set".into(), set_to_json(s)),
    };
    if let Some(res) = &r.reservation {
        let mut o = Map::new();
        let kind = match res.kind {
            ReservationKind::Static => "static",
            ReservationKind::Dynamic => "dynamic",
        };
        o.insert("type".into(), Json::from(kind));
        o.insert("role".into(), Json::String(res.role.clone()));
        if let Some(p) = &res.principal {
            o.insert("principal".into(), Json::String(p.clone()));
        }
        if !res.labels.is_empty() {
            let labels = res
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), Json::String(v.clone())))
                .collect();
            o.insert("labels".into(), Json::Object(labels));
        }
        m.insert("reservation".into(), Json::Object(o));
    }
    if r.revocable {
        m.insert("revocable".into(), Json::Bool(true));
    }
    if let Some(v) = &r.volume {
        let mut o = Map::new();
        o.insert(
            "persistence_id".into(),
            Json::String(v.persistence_id.clone()),
        );
        o.insert(
            "container_path".into(),
            Json::String(v.container_path.clone()),
        );
        m.insert("volume".into(), Json::Object(o));
    }
    Json::Object(m)
}

pub(crate) fn resources_to_json(r: &Resources) -> Json {
    Json::Array(r.iter().map(resource_to_json).collect())
}

fn attribute_to_json(a: &Attribute) -> Json {
    let mut m = Map::new();
    m.insert("name".into(), Json::String(a.name.clone()));
    match &a.value {
        AttributeValue::Text(t) => m.insert("text".into(), Json::String(t.clone())),
        AttributeValue::Scalar(s) => m.insert("scalar".into(), scalar_to_json(*s)),
        AttributeValue::Ranges(x) => m.insert("ranges".into(), ranges_to_json(x)),
        AttributeValue::Set(s) => m.insert("set".into(), set_to_json(s)),
    };
    Json::Object(m)
}

fn attributes_to_json(a: &Attributes) -> Json {
    Json::Array(a.iter().map(attribute_to_json).collect())
}

fn json_error(e: serde_json::Error) -> ResourceError {
    ResourceError::Json {
        reason: e.to_string(),
    }
}

/// Builds a validated bag from raw objects, exactly like the text parser would.
fn resources_from_raw(raw: Vec<ResourceIn>) -> Result<Resources, ResourceError> {
    let mut out = Resources::new();
    for r in raw {
        out.push(r.into_resource()?)?;
    }
    Ok(out)
}

fn attributes_from_raw(raw: Vec<AttributeIn>) -> Result<Attributes, ResourceError> {
    let mut out = Attributes::default();
    for a in raw {
        out.insert(a.into_attribute()?)?;
    }
    Ok(out)
}

pub(crate) fn resources_from_json(text: &str) -> Result<Resources, ResourceError> {
    resources_from_raw(serde_json::from_str(text).map_err(json_error)?)
}

impl Attributes {
    /// Parses the JSON form of attributes, validating like [`Attributes::parse`].
    pub fn from_json(text: &str) -> Result<Attributes, ResourceError> {
        attributes_from_raw(serde_json::from_str(text).map_err(json_error)?)
    }

    /// The JSON form of attributes.
    pub fn to_json(&self) -> Json {
        attributes_to_json(self)
    }
}

impl Resource {
    /// The JSON object of this resource.
    pub fn to_json(&self) -> Json {
        resource_to_json(self)
    }
}

impl Serialize for Resources {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        resources_to_json(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Resources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Resources, D::Error> {
        resources_from_raw(Vec::<ResourceIn>::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for Resource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        resource_to_json(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Resource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Resource, D::Error> {
        ResourceIn::deserialize(d)?
            .into_resource()
            .map_err(D::Error::custom)
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        attributes_to_json(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attributes, D::Error> {
        attributes_from_raw(Vec::<AttributeIn>::deserialize(d)?).map_err(D::Error::custom)
    }
}

impl Serialize for Attribute {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        attribute_to_json(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Attribute {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Attribute, D::Error> {
        AttributeIn::deserialize(d)?
            .into_attribute()
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Resources {
        Resources::parse(s).unwrap()
    }

    fn err(json: &str) -> String {
        Resources::from_json(json).unwrap_err().to_string()
    }

    #[test]
    fn writes_the_documented_shape() {
        let r = parse("cpus:1.5;ports:[80,21000-29000];bugs:{a,b}");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"[{"name":"cpus","scalar":1.5},{"name":"ports","ranges":[[80,80],[21000,29000]]},{"name":"bugs","set":["a","b"]}]"#
        );
        let r = parse("cpus(spark,dynamic,principal=ops,label=team=ml,revocable):4");
        assert_eq!(
            r.to_json(),
            serde_json::json!([{
                "name": "cpus",
                "scalar": 4,
                "reservation": {"type": "dynamic", "role": "spark", "principal": "ops", "labels": {"team": "ml"}},
                "revocable": true
            }])
        );
        assert_eq!(
            parse("mem(spark):2").to_json(),
            serde_json::json!([{"name": "mem", "scalar": 2, "reservation": {"type": "static", "role": "spark"}}])
        );
    }

    #[test]
    fn reads_and_round_trips() {
        for text in [
            "cpus:30;gpus:2;mem:122880;disk:921600;ports:[80,21000-29000];bugs:{a,b,c}",
            "cpus:4;mem:2048;cpus(spark):8;mem(spark):4096",
            "cpus(spark,dynamic,principal=ops,label=team=ml):4;cpus(*,revocable):2",
            "cpus:999999999999.999;mem:0.001;disk:123456789.123",
        ] {
            let r = parse(text);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(Resources::from_json(&json).unwrap(), r, "{json}");
            assert_eq!(serde_json::from_str::<Resources>(&json).unwrap(), r);
        }
    }

    #[test]
    fn reads_numbers_exactly() {
        let r = Resources::from_json(
            r#"[{"name":"cpus","scalar":1.5123},{"name":"mem","scalar":1.0005},{"name":"disk","scalar":2e3}]"#,
        )
        .unwrap();
        assert_eq!(r.to_string(), "cpus:1.512;mem:1.001;disk:2000");
        let r = Resources::from_json(
            r#"[{"name":"cpus","scalar":1},{"name":"cpus","scalar":2,"reservation":{"role":"a"}}]"#,
        )
        .unwrap();
        assert_eq!(r.to_string(), "cpus:1;cpus(a):2");
    }

    #[test]
    fn validates_like_the_text_parser() {
        assert_eq!(
            err(r#"[{"name":"gpus","scalar":1.5}]"#),
            "invalid resource 'gpus:1.5': gpus must be a whole number"
        );
        assert!(err(r#"[{"name":"cpus","scalar":-1}]"#).contains("'cpus:-1'"));
        assert!(err(r#"[{"name":"cpus","scalar":-1}]"#).contains("negative"));
        assert!(err(r#"[{"name":"cpus","scalar":1e13}]"#).contains("overflows"));
        assert!(err(r#"[{"name":"cpus","scalar":18446744073709551615}]"#).contains("overflows"));
        assert!(err(r#"[{"name":"ports","ranges":[[30,20]]}]"#).contains("'ports:[30-20]'"));
        assert!(err(r#"[{"name":"bugs","set":["a","a"]}]"#).contains("duplicate set item 'a'"));
        assert!(err(r#"[{"name":"bugs","set":["a b"]}]"#).contains("invalid set item 'a b'"));
        assert!(err(r#"[{"name":"","scalar":1}]"#).contains("empty name"));
        assert!(err(r#"[{"name":"cpus"}]"#).contains("missing value"));
        assert!(err(r#"[{"name":"cpus","scalar":1,"set":[]}]"#).contains("more than one value"));
        assert!(
            err(r#"[{"name":"foo","scalar":1},{"name":"foo","set":["a"]}]"#)
                .contains("mixes value types (already scalar, now set)")
        );
        assert!(
            err(r#"[{"name":"cpus","scalar":1,"reservation":{"role":"s","principal":"p"}}]"#)
                .contains("static reservation")
        );
        assert!(
            err(r#"[{"name":"cpus","scalar":1,"reservation":{"type":"odd","role":"s"}}]"#)
                .contains("unknown reservation type 'odd'")
        );
        assert!(
            err(r#"[{"name":"cpus","scalar":1,"reservation":{"role":"*"}}]"#)
                .contains("invalid role '*'")
        );
        assert!(
            err(r#"[{"name":"cpus","scalar":999999999999},{"name":"cpus","scalar":999999999999}]"#)
                .contains("overflows")
        );
        assert!(
            err(r#"[{"name":"cpus","scalar":1,"color":"red"}]"#)
                .starts_with("invalid json: unknown field `color`")
        );
        assert!(err(r#"{"name":"cpus"}"#).starts_with("invalid json"));
        assert!(err("[").starts_with("invalid json"));
        assert!(err(r#"[{"name":"cpus","scalar":"1"}]"#).starts_with("invalid json"));
        let e = serde_json::from_str::<Resources>(r#"[{"name":"gpus","scalar":0.5}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gpus must be a whole number"), "{e}");
        let e = serde_json::from_str::<Resource>(r#"{"name":"ports","scalar":1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ports must be ranges"), "{e}");
    }

    #[test]
    fn single_resource_form() {
        let r: Resource = serde_json::from_str(r#"{"name":"cpus","scalar":0}"#).unwrap();
        assert_eq!(r.to_string(), "cpus:0");
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"name":"cpus","scalar":0}"#
        );
    }

    #[test]
    fn attributes_round_trip() {
        let a = Attributes::parse("rack:rack-2;cores:8.5;slots:[1-4];zones:{a,b}").unwrap();
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(
            json,
            r#"[{"name":"cores","scalar":8.5},{"name":"rack","text":"rack-2"},{"name":"slots","ranges":[[1,4]]},{"name":"zones","set":["a","b"]}]"#
        );
        assert_eq!(serde_json::from_str::<Attributes>(&json).unwrap(), a);
        assert_eq!(Attributes::from_json(&json).unwrap(), a);
        let e = Attributes::from_json(r#"[{"name":"r","text":"a"},{"name":"r","text":"b"}]"#)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid attribute 'r:b': duplicate attribute 'r'");
        let e = Attributes::from_json(r#"[{"name":"r","text":"a","scalar":1}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than one value"), "{e}");
    }
}

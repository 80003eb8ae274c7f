//! The agent flag syntax: parsing `--resources` and `--attributes` text.
//!
//! Owns: the grammar documented on the crate root (items separated by `;`, qualifiers in
//! parentheses, values as scalar / `[ranges]` / `{set}`), whitespace tolerance around
//! tokens, and errors that quote the offending item as written.
//! Must never: accept text that the `Display` impls would not produce an equivalent of,
//! parse numbers through floating point, or panic on any input (it only uses
//! `split_once`, `strip_prefix` and friends, never byte indexing).

use std::collections::{BTreeMap, BTreeSet};

use crate::attributes::{Attribute, AttributeValue, Attributes};
use crate::error::ResourceError;
use crate::names::{check_name, check_token};
use crate::ranges::Ranges;
use crate::reservation::{Reservation, ReservationKind};
use crate::resource::Resource;
use crate::resources::Resources;
use crate::role::validate_role;
use crate::scalar::{is_decimal_syntax, parse_decimal};
use crate::value::Value;
use crate::volume::Volume;

/// The characters that open or close a group; outside their place they are unbalanced.
const BRACKETS: [char; 6] = ['[', ']', '{', '}', '(', ')'];

/// The non-empty items of `text`, trimmed (empty items, e.g. after a trailing `;`, are
/// skipped).
fn items(text: &str) -> impl Iterator<Item = &str> {
    text.split(';').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses `--resources` text into a bag.
pub(crate) fn parse_resources(text: &str) -> Result<Resources, ResourceError> {
    let mut out = Resources::new();
    for item in items(text) {
        let r =
            parse_resource_item(item).map_err(|reason| ResourceError::resource(item, reason))?;
        out.push_item(r, item)?;
    }
    Ok(out)
}

/// Parses `--attributes` text.
pub(crate) fn parse_attributes(text: &str) -> Result<Attributes, ResourceError> {
    let mut out = Attributes::default();
    for item in items(text) {
        let a =
            parse_attribute_item(item).map_err(|reason| ResourceError::attribute(item, reason))?;
        out.insert_item(a, item)?;
    }
    Ok(out)
}

/// `name [ '(' qualifiers ')' ] ':' value`, not yet checked against the resource rules
/// (the bag does that when the resource is pushed).
fn parse_resource_item(item: &str) -> Result<Resource, String> {
    let (name, qualifiers, value) = split_item(item)?;
    let name = name.trim();
    if let Some(c) = name.chars().find(|c| BRACKETS.contains(c)) {
        return Err(format!("unbalanced '{c}'"));
    }
    check_name(name)?;
    let (reservation, revocable, volume) = match qualifiers {
        Some(q) => parse_qualifiers(q)?,
        None => (None, false, None),
    };
    let value = match lex_value(value)? {
        RawValue::Ranges(r) => Value::Ranges(r),
        RawValue::Set(s) => Value::Set(s),
        RawValue::Plain(v) => Value::Scalar(parse_decimal(v).map_err(|e| e.reason(v))?),
    };
    Ok(Resource {
        name: name.to_string(),
        value,
        reservation,
        revocable,
        volume,
    })
}

/// Splits an item into name, optional qualifier text and value text.
fn split_item(item: &str) -> Result<(&str, Option<&str>, &str), String> {
    let colon = item.find(':');
    let paren = item.find('(');
    let paren_first = match (paren, colon) {
        (Some(p), Some(c)) => p < c,
        (Some(_), None) => true,
        _ => false,
    };
    if paren_first {
        let Some((name, rest)) = item.split_once('(') else {
            return Err("unbalanced '('".to_string());
        };
        let Some((qualifiers, after)) = rest.split_once(')') else {
            return Err("unbalanced '('".to_string());
        };
        if qualifiers.contains('(') {
            return Err("unbalanced '('".to_string());
        }
        let after = after.trim_start();
        let Some(value) = after.strip_prefix(':') else {
            return Err(if after.is_empty() {
                "missing ':' and value".to_string()
            } else {
                format!("expected ':' after ')', found '{after}'")
            });
        };
        Ok((name, Some(qualifiers), value))
    } else {
        match item.split_once(':') {
            Some((name, value)) => Ok((name, None, value)),
            None => Err("missing ':' between name and value".to_string()),
        }
    }
}

/// What the qualifiers of one item say: reservation (`None` for `*`), revocability and
/// persistent volume.
type Qualifiers = (Option<Reservation>, bool, Option<Volume>);

/// `role ( ',' qualifier )*` into the reservation (`None` for `*`), revocability and
/// volume (`volume=ID` and `path=P` come together).
fn parse_qualifiers(text: &str) -> Result<Qualifiers, String> {
    let mut parts = text.split(',').map(str::trim);
    let role = parts.next().unwrap_or_default();
    if role.is_empty() {
        return Err("missing role in qualifiers (use '*' for unreserved)".to_string());
    }
    let mut dynamic = false;
    let mut revocable = false;
    let mut principal: Option<String> = None;
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    let mut volume_id: Option<String> = None;
    let mut volume_path: Option<String> = None;
    for q in parts {
        match q {
            "" => return Err("empty qualifier".to_string()),
            "dynamic" if dynamic => return Err("duplicate qualifier 'dynamic'".to_string()),
            "dynamic" => dynamic = true,
            "revocable" if revocable => {
                return Err("duplicate qualifier 'revocable'".to_string());
            }
            "revocable" => revocable = true,
            _ => match q.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("principal", p)) => {
                    if principal.is_some() {
                        return Err("duplicate qualifier 'principal'".to_string());
                    }
                    check_token("principal", p)?;
                    principal = Some(p.to_string());
                }
                Some(("volume", id)) => {
                    if volume_id.replace(id.to_string()).is_some() {
                        return Err("duplicate qualifier 'volume'".to_string());
                    }
                }
                Some(("path", path)) => {
                    if volume_path.replace(path.to_string()).is_some() {
                        return Err("duplicate qualifier 'path'".to_string());
                    }
                }
                Some(("label", kv)) => {
                    let Some((k, v)) = kv.split_once('=') else {
                        return Err(format!("label '{kv}' must be written label=key=value"));
                    };
                    let (k, v) = (k.trim(), v.trim());
                    if labels.insert(k.to_string(), v.to_string()).is_some() {
                        return Err(format!("duplicate label '{k}'"));
                    }
                }
                _ => return Err(format!("unknown qualifier '{q}'")),
            },
        }
    }
    let volume = match (volume_id, volume_path) {
        (None, None) => None,
        (Some(id), Some(path)) => Some(Volume::new(id, path)),
        _ => return Err("'volume=' and 'path=' must be given together".to_string()),
    };
    if role == "*" {
        if volume.is_some() {
            return Err("a persistent volume needs reserved disk (a role)".to_string());
        }
        if dynamic {
            return Err("'*' (unreserved) cannot be dynamically reserved".to_string());
        }
        if principal.is_some() || !labels.is_empty() {
            return Err("principal and labels need a reserved role, not '*'".to_string());
        }
        return Ok((None, revocable, None));
    }
    validate_role(role).map_err(|e| e.to_string())?;
    if !dynamic && (principal.is_some() || !labels.is_empty()) {
        return Err(
            "principal and labels are only allowed on a dynamic reservation (add 'dynamic')"
                .to_string(),
        );
    }
    let kind = if dynamic {
        ReservationKind::Dynamic
    } else {
        ReservationKind::Static
    };
    Ok((
        Some(Reservation {
            kind,
            role: role.to_string(),
            principal,
            labels,
        }),
        revocable,
        volume,
    ))
}

/// A value as written: ranges and sets are fully parsed; anything else is left as text
/// for the caller to read as a scalar (or, for attributes, as text).
enum RawValue<'a> {
    Ranges(Ranges),
    Set(BTreeSet<String>),
    Plain(&'a str),
}

fn no_brackets(s: &str) -> Result<(), String> {
    match s.chars().find(|c| BRACKETS.contains(c)) {
        Some(c) => Err(format!("unbalanced '{c}'")),
        None => Ok(()),
    }
}

fn lex_value(text: &str) -> Result<RawValue<'_>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("missing value".to_string());
    }
    if let Some(rest) = text.strip_prefix('[') {
        let inner = rest.strip_suffix(']').ok_or("unbalanced '['")?;
        no_brackets(inner)?;
        return parse_ranges(inner).map(RawValue::Ranges);
    }
    if let Some(rest) = text.strip_prefix('{') {
        let inner = rest.strip_suffix('}').ok_or("unbalanced '{'")?;
        no_brackets(inner)?;
        return parse_set(inner).map(RawValue::Set);
    }
    no_brackets(text)?;
    Ok(RawValue::Plain(text))
}

/// `range ( ',' range )*` (or nothing), `range := N | N '-' N`.
fn parse_ranges(inner: &str) -> Result<Ranges, String> {
    if inner.trim().is_empty() {
        return Ok(Ranges::default());
    }
    let mut pairs = Vec::new();
    for part in inner.split(',').map(str::trim) {
        if part.is_empty() {
            return Err("empty range".to_string());
        }
        let (b, e) = match part.split_once('-') {
            Some((b, e)) => (parse_bound(part, b)?, parse_bound(part, e)?),
            None => {
                let v = parse_bound(part, part)?;
                (v, v)
            }
        };
        if b > e {
            return Err(format!(
                "range '{part}' is reversed: begin is greater than end"
            ));
        }
        pairs.push((b, e));
    }
    Ranges::new(pairs).map_err(|e| e.to_string())
}

fn parse_bound(range: &str, bound: &str) -> Result<u64, String> {
    let bound = bound.trim();
    if bound.is_empty() {
        return Err(format!("range '{range}' is missing a number"));
    }
    if !bound.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "range '{range}': '{bound}' is not a non-negative integer"
        ));
    }
    bound
        .parse::<u64>()
        .map_err(|_| format!("range '{range}': '{bound}' overflows {}", u64::MAX))
}

/// `item ( ',' item )*` (or nothing); a repeated item is an error.
fn parse_set(inner: &str) -> Result<BTreeSet<String>, String> {
    let mut set = BTreeSet::new();
    if inner.trim().is_empty() {
        return Ok(set);
    }
    for item in inner.split(',').map(str::trim) {
        check_token("set item", item)?;
        if !set.insert(item.to_string()) {
            return Err(format!("duplicate set item '{item}'"));
        }
    }
    Ok(set)
}

/// `name ':' value` where value is ranges, a set, a scalar if it looks like a
/// non-negative decimal, otherwise text.
fn parse_attribute_item(item: &str) -> Result<Attribute, String> {
    let Some((name, value)) = item.split_once(':') else {
        return Err("missing ':' between name and value".to_string());
    };
    let name = name.trim();
    check_name(name)?;
    let value = match lex_value(value)? {
        RawValue::Ranges(r) => AttributeValue::Ranges(r),
        RawValue::Set(s) => AttributeValue::Set(s),
        RawValue::Plain(v) if is_decimal_syntax(v) => {
            AttributeValue::Scalar(parse_decimal(v).map_err(|e| e.reason(v))?)
        }
        RawValue::Plain(v) => {
            check_token("text value", v)?;
            AttributeValue::Text(v.to_string())
        }
    };
    Ok(Attribute {
        name: name.to_string(),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scalar::Scalar;

    fn err(text: &str) -> String {
        Resources::parse(text).unwrap_err().to_string()
    }

    fn units(u: u64) -> Value {
        Value::Scalar(Scalar::from_units(u).unwrap())
    }

    const MISSION: &str =
        "cpus:30;gpus:2;mem:122880;disk:921600;ports:[80,21000-29000];bugs:{a,b,c}";

    #[test]
    fn mission_example_parses_and_formats_back() {
        let r = Resources::parse(MISSION).unwrap();
        let v: Vec<&Resource> = r.iter().collect();
        assert_eq!(v.len(), 6);
        assert_eq!(r.scalar("cpus"), Scalar::from_units(30).unwrap());
        assert_eq!(r.scalar("gpus"), Scalar::from_units(2).unwrap());
        assert_eq!(r.scalar("mem"), Scalar::from_units(122_880).unwrap());
        assert_eq!(r.scalar("disk"), Scalar::from_units(921_600).unwrap());
        assert_eq!(
            r.ranges("ports"),
            Ranges::new([(80, 80), (21000, 29000)]).unwrap()
        );
        assert!(v.iter().all(|x| x.reservation.is_none() && !x.revocable));
        assert_eq!(
            v.last().map(|x| &x.value),
            Some(&Value::Set(["a", "b", "c"].map(String::from).into()))
        );
        assert_eq!(r.to_string(), MISSION);
    }

    #[test]
    fn static_reservation_example() {
        let text = "cpus:4;mem:2048;cpus(spark):8;mem(spark):4096";
        let r = Resources::parse(text).unwrap();
        assert_eq!(r.to_string(), text);
        let spark = r.reserved_for("spark");
        assert_eq!(spark.len(), 2);
        for x in spark.iter() {
            assert_eq!(
                x.reservation,
                Some(Reservation::new(ReservationKind::Static, "spark"))
            );
        }
        assert_eq!(r.unreserved(), Resources::parse("cpus:4;mem:2048").unwrap());
    }

    #[test]
    fn canonical_strings_format_back_exactly() {
        for s in [
            "",
            "cpus:1.5",
            "cpus:0.001;mem:1",
            "cpus(spark,dynamic,principal=ops,label=team=ml):4",
            "cpus(*,revocable):2",
            "cpus:1;cpus(*,revocable):2;cpus(spark):3;cpus(spark,revocable):4",
            "cpus(a):1;cpus(a,dynamic):1;cpus(a,dynamic,principal=p):1;cpus(b):1",
            "cpus(spark,dynamic,label=a=,label=b=c):1",
            "ports:[0-18446744073709551615]",
            "gpus:1;ports:[1,3,5-6];a.b-c_d:2;bugs:{dev/nvidia0,x@y+z}",
            "cpus(eng/ml):1",
            "mem:1000000000000",
        ] {
            assert_eq!(Resources::parse(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn reorders_and_normalises() {
        for (input, canonical) in [
            ("bugs:{c,a};cpus:1", "cpus:1;bugs:{a,c}"),
            ("ports:[3-4,1-2]", "ports:[1-4]"),
            ("ports:[1-2];ports:[3-4]", "ports:[1-4]"),
            ("ports:[5,1-10]", "ports:[1-10]"),
            ("cpus:1;cpus:2.5", "cpus:3.5"),
            ("cpus:1.5123", "cpus:1.512"),
            ("cpus:1.5125", "cpus:1.513"),
            ("cpus:0;mem:0.0001;ports:[];bugs:{}", ""),
            (
                " cpus ( spark , dynamic , principal = ops ) : 4 ; mem : 1 ;",
                "mem:1;cpus(spark,dynamic,principal=ops):4",
            ),
            ("cpus(*):1", "cpus:1"),
            (
                "cpus(spark,revocable,dynamic):1",
                "cpus(spark,dynamic,revocable):1",
            ),
            (
                "cpus(spark,label=b=1,dynamic,label=a=2):1",
                "cpus(spark,dynamic,label=a=2,label=b=1):1",
            ),
            ("mem:007.50", "mem:7.5"),
            ("ports:[ 80 , 1000 - 2000 ]", "ports:[80,1000-2000]"),
            ("cpus:4;;cpus:1", "cpus:5"),
        ] {
            assert_eq!(
                Resources::parse(input).unwrap().to_string(),
                canonical,
                "{input}"
            );
        }
    }

    #[test]
    fn qualifiers_build_reservations() {
        let r = Resources::parse("cpus(spark,dynamic,principal=ops,label=team=ml):4").unwrap();
        let e = r.iter().next().unwrap();
        let res = e.reservation.as_ref().unwrap();
        assert_eq!(res.kind, ReservationKind::Dynamic);
        assert_eq!(res.role, "spark");
        assert_eq!(res.principal.as_deref(), Some("ops"));
        assert_eq!(res.labels.get("team").map(String::as_str), Some("ml"));
        assert_eq!(e.value, units(4));
        let r = Resources::parse("cpus(*,revocable):2").unwrap();
        let e = r.iter().next().unwrap();
        assert!(e.reservation.is_none() && e.revocable);
    }

    #[track_caller]
    fn assert_err(text: &str, parts: &[&str]) {
        let e = err(text);
        for p in parts {
            assert!(e.contains(p), "error for {text:?} lacks {p:?}: {e}");
        }
        assert_eq!(e, e.to_lowercase(), "error not lowercase: {e}");
    }

    #[test]
    fn bad_values_are_named() {
        assert_err("cpus:-1", &["invalid resource 'cpus:-1'", "negative"]);
        assert_err(
            "ports:[30-20]",
            &["'ports:[30-20]'", "reversed", "begin is greater than end"],
        );
        assert_eq!(
            err("gpus:1.5"),
            "invalid resource 'gpus:1.5': gpus must be a whole number"
        );
        assert_err("mem:abc", &["'mem:abc'", "'abc' is not a number"]);
        assert_err("bugs:{a,a}", &["'bugs:{a,a}'", "duplicate set item 'a'"]);
        assert_err("mem:1.5e3", &["'mem:1.5e3'", "not a number"]);
        assert_err(
            "ports:[a-2]",
            &["'ports:[a-2]'", "'a' is not a non-negative integer"],
        );
        assert_err("ports:[-1]", &["'ports:[-1]'", "missing a number"]);
        assert_err("ports:[1,]", &["'ports:[1,]'", "empty range"]);
        assert_err("bugs:{a,}", &["'bugs:{a,}'", "empty set item"]);
        assert_err("bugs:{a b}", &["'bugs:{a b}'", "invalid set item 'a b'"]);
        assert_err("mem:", &["'mem:'", "missing value"]);
    }

    #[test]
    fn unbalanced_brackets_are_named() {
        assert_err("ports:[1-2", &["'ports:[1-2'", "unbalanced '['"]);
        assert_err("ports:1-2]", &["'ports:1-2]'", "unbalanced ']'"]);
        assert_err("ports:[[1-2]]", &["'ports:[[1-2]]'", "unbalanced '['"]);
        assert_err("bugs:{a,b", &["'bugs:{a,b'", "unbalanced '{'"]);
        assert_err("bugs:{a}}", &["'bugs:{a}}'", "unbalanced '}'"]);
        assert_err("bugs:{a,b]", &["unbalanced '{'"]);
        assert_err("cpus(spark:1", &["'cpus(spark:1'", "unbalanced '('"]);
        assert_err("cpusspark):1", &["'cpusspark):1'", "unbalanced ')'"]);
        assert_err("cpus((spark)):1", &["unbalanced '('"]);
        assert_err("cpus(spark))):1", &["expected ':' after ')'"]);
        assert_err("cpus:(1)", &["'cpus:(1)'", "unbalanced '('"]);
    }

    #[test]
    fn bad_names_are_named() {
        assert_err(":5", &["invalid resource ':5'", "empty name"]);
        assert_err("(spark):5", &["invalid resource '(spark):5'", "empty name"]);
        assert_err("c pus:5", &["'c pus:5'", "invalid name 'c pus'"]);
        assert_err("cpus", &["'cpus'", "missing ':'"]);
        assert_err("cpus(spark)", &["'cpus(spark)'", "missing ':'"]);
    }

    #[test]
    fn overflow_is_named() {
        assert_err("cpus:1000000000001", &["'cpus:1000000000001'", "overflows"]);
        assert_err("mem:99999999999999999999999999", &["overflows"]);
        assert_err(
            "ports:[1-99999999999999999999]",
            &["'ports:[1-99999999999999999999]'", "overflows"],
        );
        assert_err(
            "cpus:999999999999;cpus:999999999999",
            &["'cpus:999999999999'", "overflows"],
        );
        assert_err(
            "cpus:999999999999;cpus(*,revocable):999999999999;cpus:1.001",
            &["'cpus:1.001'", "overflows"],
        );
    }

    #[test]
    fn mixed_types_are_an_error() {
        assert_err(
            "cpus:1;cpus:[1-2]",
            &["'cpus:[1-2]'", "cpus must be a scalar"],
        );
        assert_err("ports:1", &["'ports:1'", "ports must be ranges"]);
        assert_err(
            "foo:1;foo:[1-2]",
            &[
                "'foo:[1-2]'",
                "'foo' mixes value types (already scalar",
                "ranges",
            ],
        );
        assert_err(
            "foo(spark):{a};foo:[1-2]",
            &["'foo:[1-2]'", "set", "ranges"],
        );
    }

    #[test]
    fn bad_qualifiers_are_named() {
        assert_err("cpus(a b):1", &["'cpus(a b):1'", "invalid role 'a b'"]);
        assert_err("cpus(/x):1", &["invalid role '/x'"]);
        assert_err("cpus():1", &["'cpus():1'", "missing role"]);
        assert_err(
            "cpus(spark,fast):1",
            &["'cpus(spark,fast):1'", "unknown qualifier 'fast'"],
        );
        assert_err("cpus(spark,foo=bar):1", &["unknown qualifier 'foo=bar'"]);
        assert_err("cpus(spark,):1", &["empty qualifier"]);
        assert_err(
            "cpus(spark,principal=ops):1",
            &["'cpus(spark,principal=ops):1'", "dynamic"],
        );
        assert_err(
            "cpus(spark,label=a=b):1",
            &["only allowed on a dynamic reservation"],
        );
        assert_err(
            "cpus(*,dynamic):1",
            &["'*'", "cannot be dynamically reserved"],
        );
        assert_err("cpus(*,principal=ops):1", &["need a reserved role"]);
        assert_err(
            "cpus(spark,dynamic,dynamic):1",
            &["duplicate qualifier 'dynamic'"],
        );
        assert_err(
            "cpus(*,revocable,revocable):1",
            &["duplicate qualifier 'revocable'"],
        );
        assert_err(
            "cpus(s,dynamic,principal=a,principal=b):1",
            &["duplicate qualifier 'principal'"],
        );
        assert_err(
            "cpus(s,dynamic,label=a=1,label=a=2):1",
            &["duplicate label 'a'"],
        );
        assert_err(
            "cpus(s,dynamic,label=a):1",
            &["label 'a' must be written label=key=value"],
        );
        assert_err("cpus(s,dynamic,label==1):1", &["empty label key"]);
        assert_err("cpus(s,dynamic,principal=):1", &["empty principal"]);
        assert_err(
            "cpus(s,dynamic,label=a=b c):1",
            &["invalid label value 'b c'"],
        );
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            ":",
            "::",
            ";;;",
            "a:b:c",
            "ports:[1-2-3]",
            "x:{",
            "x:[",
            "é:1",
            "cpus:1é",
            "cpus(é):1",
            "cpus(\u{0}):1",
            "ports:[18446744073709551615]",
            "cpus:\u{661}",
            "cpus(spark",
            "cpus(",
            "cpus)",
            "cpus(:1)",
            "x:{a:b}",
            "x:{(}",
        ] {
            let _ = Resources::parse(s);
            let _ = Attributes::parse(s);
        }
        assert!(Resources::parse("ports:[1-2-3]").is_err());
        assert!(Resources::parse("a:b:c").is_err());
    }

    #[test]
    fn attributes_parse_into_typed_values() {
        let a = Attributes::parse("rack:rack-2;datacenter:china;os:centosv7.2").unwrap();
        assert_eq!(a.get("rack"), Some(&AttributeValue::Text("rack-2".into())));
        assert_eq!(
            a.get("datacenter"),
            Some(&AttributeValue::Text("china".into()))
        );
        assert_eq!(
            a.get("os"),
            Some(&AttributeValue::Text("centosv7.2".into()))
        );
        assert_eq!(a.to_string(), "datacenter:china;os:centosv7.2;rack:rack-2");
        let a = Attributes::parse("cores:1.5123;zones:{b,a};slots:[1-3,5];floor:-1").unwrap();
        assert_eq!(
            a.get("cores"),
            Some(&AttributeValue::Scalar(Scalar::from_thousandths(1512)))
        );
        assert_eq!(
            a.get("zones").map(ToString::to_string).as_deref(),
            Some("{a,b}")
        );
        assert_eq!(
            a.get("slots").map(ToString::to_string).as_deref(),
            Some("[1-3,5]")
        );
        assert_eq!(a.get("floor"), Some(&AttributeValue::Text("-1".into())));
        assert_eq!(a.get("nope"), None);
    }

    #[test]
    fn bad_attributes_are_named() {
        let e = |s: &str| Attributes::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("rack:a;rack:b"),
            "invalid attribute 'rack:b': duplicate attribute 'rack'"
        );
        assert!(e("rack").contains("'rack'") && e("rack").contains("missing ':'"));
        assert!(e(":x").contains("empty name"));
        assert!(e("r:a b").contains("invalid text value 'a b'"));
        assert!(e("r:{a,a}").contains("duplicate set item 'a'"));
        assert!(e("r:[2-1]").contains("reversed"));
        assert!(e("r:[1").contains("unbalanced '['"));
        assert!(e("r:99999999999999999").contains("overflows"));
        assert!(e("r:").contains("missing value"));
        assert!(e("r(x):1").contains("invalid name 'r(x)'"));
    }
}

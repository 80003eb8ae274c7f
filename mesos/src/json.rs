//! How Mesos's messages look in JSON: field names as in the schema, enums by name, bytes
//! in base64, absent optional fields and empty repeated fields left out.
//!
//! Owns the serde helpers the schema modules name in their attributes and the
//! `mesos_enum!` macro that gives each enum its wire numbers and its names. It must never
//! know what a message means.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serializer};

/// An enum of Mesos's schema: its numbers on the protobuf wire and its names in JSON.
pub trait MesosEnum: Sized + Copy {
    /// The name of wire number `n`, if it is one of the enum's.
    fn name_of(n: i32) -> Option<&'static str>;
    /// The wire number of `name`, if it is one of the enum's.
    fn number_of(name: &str) -> Option<i32>;
    /// The enum's name in messages ("TaskState").
    const ENUM: &'static str;
}

/// Declares a Mesos enum: a `prost::Enumeration` with the given wire numbers, plus its
/// names for JSON.
macro_rules! mesos_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $num:expr),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::prost::Enumeration)]
        #[repr(i32)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum $name { $($variant = $num),+ }

        impl $crate::json::MesosEnum for $name {
            fn name_of(n: i32) -> Option<&'static str> {
                match n { $($num => Some(stringify!($variant)),)+ _ => None }
            }
            fn number_of(name: &str) -> Option<i32> {
                match name { $(stringify!($variant) => Some($num),)+ _ => None }
            }
            const ENUM: &'static str = stringify!($name);
        }

        impl $name {
            /// The wire number, as prost stores it in messages.
            pub fn n(self) -> Option<i32> {
                Some(self as i32)
            }
        }
    };
}
pub(crate) use mesos_enum;

/// Serializes an optional enum field by name (an unknown number as the number).
pub fn enum_ser<E: MesosEnum, S: Serializer>(v: &Option<i32>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(n) => match E::name_of(*n) {
            Some(name) => s.serialize_str(name),
            None => s.serialize_i32(*n),
        },
    }
}

/// Deserializes an optional enum field from its name (or, as Mesos's parser also takes,
/// its number).
pub fn enum_de<'de, E: MesosEnum, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NameOrNumber {
        Name(String),
        Number(i64),
    }
    let Some(v) = Option::<NameOrNumber>::deserialize(d)? else {
        return Ok(None);
    };
    match v {
        NameOrNumber::Name(name) => E::number_of(&name).map(Some).ok_or_else(|| {
            serde::de::Error::custom(format!("unknown {} value '{}'", E::ENUM, quote(&name)))
        }),
        NameOrNumber::Number(n) => i32::try_from(n)
            .ok()
            .filter(|n| E::name_of(*n).is_some())
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown {} value {n}", E::ENUM))),
    }
}

/// Serializes optional bytes as base64.
pub fn bytes_ser<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(b) => s.serialize_str(&STANDARD.encode(b)),
    }
}

/// Deserializes optional bytes from base64.
pub fn bytes_de<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    STANDARD
        .decode(text.as_bytes())
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("bytes field is not base64: {e}")))
}

/// Most characters of an input quoted in an error message.
const QUOTE_MAX_CHARS: usize = 64;

/// A short, escaped form of `input` for messages.
pub fn quote(input: &str) -> String {
    let mut out: String = input
        .chars()
        .take(QUOTE_MAX_CHARS)
        .flat_map(char::escape_debug)
        .collect();
    if input.chars().count() > QUOTE_MAX_CHARS {
        out.push_str("...");
    }
    out
}

/// Drops `null`s and empty arrays from a serialized message: in Mesos's JSON an absent
/// optional field and an empty repeated one are simply not there.
pub fn prune(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|_, x| !(x.is_null() || x.as_array().is_some_and(|a| a.is_empty())));
            map.values_mut().for_each(prune);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(prune),
        _ => {}
    }
}

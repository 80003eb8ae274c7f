//! Content negotiation and decoding as Mesos does it: `Content-Type` picks how the body
//! is read (`application/json` or `application/x-protobuf`; another is 415, none is
//! 400), `Accept` how answers and events are written (none or `*/*`: JSON; neither
//! type: 406), and a body that does not decode is 400 with the reason and, for JSON,
//! the path of the offending field.
//!
//! Owns only the bytes <-> message step; it must never look at what a message asks.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Refusal;

pub const JSON: &str = "application/json";
pub const PROTOBUF: &str = "application/x-protobuf";

/// How a body is encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    Protobuf,
}

/// The media type of a header value, without parameters, lowercase.
fn media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::Protobuf => PROTOBUF,
        }
    }

    /// The format of a request body from its `Content-Type`.
    pub fn of_content_type(header: Option<&str>) -> Result<Format, Refusal> {
        let Some(header) = header else {
            return Err(Refusal::bad_request(
                "Expecting 'Content-Type' to be present",
            ));
        };
        match media_type(header).as_str() {
            JSON => Ok(Format::Json),
            PROTOBUF => Ok(Format::Protobuf),
            other => Err(Refusal::new(
                415,
                format!(
                    "Expecting 'Content-Type' of {JSON} or {PROTOBUF}, not '{}'",
                    crate::json::quote(other)
                ),
            )),
        }
    }

    /// The format answers are written in, from the request's `Accept`.
    pub fn of_accept(header: Option<&str>) -> Result<Format, Refusal> {
        let Some(header) = header else {
            return Ok(Format::Json);
        };
        let types: Vec<String> = header.split(',').map(media_type).collect();
        if types
            .iter()
            .any(|t| t == JSON || t == "*/*" || t == "application/*")
        {
            Ok(Format::Json)
        } else if types.iter().any(|t| t == PROTOBUF) {
            Ok(Format::Protobuf)
        } else {
            Err(Refusal::new(
                406,
                format!(
                    "Expecting 'Accept' to allow {JSON} or {PROTOBUF}, not '{}'",
                    crate::json::quote(header)
                ),
            ))
        }
    }

    /// Decodes a message of type `T` from `body`.
    pub fn decode<T>(self, body: &[u8]) -> Result<T, Refusal>
    where
        T: prost::Message + Default + DeserializeOwned,
    {
        match self {
            Format::Protobuf => T::decode(body).map_err(|e| {
                Refusal::bad_request(format!("Failed to parse body into a protobuf message: {e}"))
            }),
            Format::Json => {
                let mut de = serde_json::Deserializer::from_slice(body);
                let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    if inner.is_syntax() || inner.is_eof() {
                        Refusal::bad_request(format!("Failed to parse body into JSON: {inner}"))
                    } else {
                        Refusal::bad_request(format!(
                            "Failed to convert JSON into a message: field '{path}': {inner}"
                        ))
                    }
                })?;
                de.end().map_err(|e| {
                    Refusal::bad_request(format!("Failed to parse body into JSON: {e}"))
                })?;
                Ok(value)
            }
        }
    }

    /// Encodes `message`.
    pub fn encode<T>(self, message: &T) -> Vec<u8>
    where
        T: prost::Message + Serialize,
    {
        match self {
            Format::Protobuf => message.encode_to_vec(),
            Format::Json => {
                // A message of plain fields always serializes; `Null` would be a bug.
                let mut v = serde_json::to_value(message).unwrap_or(serde_json::Value::Null);
                crate::json::prune(&mut v);
                v.to_string().into_bytes()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::scheduler::{Call, CallType};

    #[test]
    fn negotiation_follows_mesos() {
        assert_eq!(Format::of_content_type(None).unwrap_err().status, 400);
        assert_eq!(
            Format::of_content_type(Some("text/plain"))
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(
            Format::of_content_type(Some("application/json; charset=utf-8")).unwrap(),
            Format::Json
        );
        assert_eq!(Format::of_accept(None).unwrap(), Format::Json);
        assert_eq!(
            Format::of_accept(Some("application/x-protobuf")).unwrap(),
            Format::Protobuf
        );
        assert_eq!(
            Format::of_accept(Some("text/html")).unwrap_err().status,
            406
        );
    }

    #[test]
    fn json_and_protobuf_carry_the_same_call() {
        let body = br#"{"type":"DECLINE","framework_id":{"value":"f1"},
            "decline":{"offer_ids":[{"value":"o1"}],"filters":{"refuse_seconds":2.5}}}"#;
        let call: Call = Format::Json.decode(body).unwrap();
        assert_eq!(call.r#type, Some(CallType::DECLINE as i32));
        let again: Call = Format::Protobuf
            .decode(&Format::Protobuf.encode(&call))
            .unwrap();
        assert_eq!(again, call);
        let json = String::from_utf8(Format::Json.encode(&call)).unwrap();
        assert!(json.contains(r#""type":"DECLINE""#), "{json}");
        assert!(!json.contains("null"), "{json}");
    }

    #[test]
    fn bad_bodies_name_the_problem() {
        let e = Format::Json.decode::<Call>(b"{not json").unwrap_err();
        assert_eq!(e.status, 400);
        assert!(e.message.contains("JSON"), "{}", e.message);
        let e = Format::Json
            .decode::<Call>(br#"{"type":"FLY"}"#)
            .unwrap_err();
        assert!(
            e.message.contains("unknown CallType value 'FLY'"),
            "{}",
            e.message
        );
        let e = Format::Json
            .decode::<Call>(br#"{"type":"KILL","kill":{"task_id":{"value":7}}}"#)
            .unwrap_err();
        assert!(e.message.contains("kill.task_id.value"), "{}", e.message);
        let e = Format::Protobuf
            .decode::<Call>(b"\xff\xff\xff")
            .unwrap_err();
        assert_eq!(e.status, 400);
    }
}

//! The crate's single error type, [`ResourceError`].
//!
//! Owns: the wording of every error. Each message is lowercase, names the offending item
//! (quoted in its text form, e.g. `'cpus:-1'`) and says why it was refused.
//! Must never: hold behaviour, or carry a message that does not name the offending item.

use crate::scalar::Scalar;

/// Everything that can go wrong when building, parsing, converting or combining resources
/// and attributes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// A resource item (from text, JSON, protobuf or [`crate::Resources::push`]) is invalid.
    /// `item` is the item's text (the flag syntax, or the name when nothing else is known).
    #[error("invalid resource '{item}': {reason}")]
    InvalidResource {
        /// The offending item.
        item: String,
        /// Why it was refused.
        reason: String,
    },
    /// An attribute item is invalid.
    #[error("invalid attribute '{item}': {reason}")]
    InvalidAttribute {
        /// The offending item.
        item: String,
        /// Why it was refused.
        reason: String,
    },
    /// A role name does not follow the role rules (see [`crate::validate_role`]).
    #[error("invalid role '{role}': {reason}")]
    InvalidRole {
        /// The offending role.
        role: String,
        /// Why it was refused.
        reason: String,
    },
    /// A decimal text given to `Scalar::from_str` is not an acceptable scalar.
    #[error("invalid scalar '{text}': {reason}")]
    InvalidScalar {
        /// The offending text.
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// A range whose begin lies after its end (given to [`crate::Ranges::new`]).
    #[error("invalid range '{begin}-{end}': begin is greater than end")]
    ReversedRange {
        /// The range's begin.
        begin: u64,
        /// The range's end.
        end: u64,
    },
    /// One resource name was given two value types (e.g. `foo:1;foo:[1-2]`).
    #[error(
        "invalid resource '{item}': '{name}' mixes value types (already {existing}, now {added})"
    )]
    MixedTypes {
        /// The item that introduced the second type.
        item: String,
        /// The resource name.
        name: String,
        /// The type already held ("scalar", "ranges" or "set").
        existing: &'static str,
        /// The type of the item ("scalar", "ranges" or "set").
        added: &'static str,
    },
    /// Adding an item would push a scalar total above [`Scalar::MAX`].
    #[error("adding '{item}' overflows: the total would exceed the maximum {max}")]
    Overflow {
        /// The item being added.
        item: String,
        /// The largest total allowed.
        max: Scalar,
    },
    /// A subtraction asked for more than is held; `missing` is what is lacking, in the
    /// flag syntax (e.g. `cpus:2;ports:[81]`).
    #[error("cannot subtract resources that are not held: missing '{missing}'")]
    NotContained {
        /// What is lacking.
        missing: String,
    },
    /// A JSON document is not well-formed or does not have the documented shape.
    #[error("invalid json: {reason}")]
    Json {
        /// The JSON parser's complaint, with its position.
        reason: String,
    },
}

impl ResourceError {
    pub(crate) fn resource(item: impl Into<String>, reason: impl Into<String>) -> Self {
        ResourceError::InvalidResource {
            item: item.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn attribute(item: impl Into<String>, reason: impl Into<String>) -> Self {
        ResourceError::InvalidAttribute {
            item: item.into(),
            reason: reason.into(),
        }
    }
}

//! [`MessageError`]: why a TTLV tree is not a valid KMIP message or payload.
//!
//! Errors name tags and types, never values: a value may be key material or a
//! password, and errors end up in logs and in Result Messages.

use std::fmt;

use super::enums::ResultReason;
use super::tag::tag_label;
use crate::ttlv::{ItemType, Tag};

/// A KMIP message, payload, attribute or object that does not follow the
/// specification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageError {
    /// A structure has the wrong tag (a RequestMessage that is something else).
    UnexpectedTag { expected: Tag, found: Tag },
    /// A required field is absent.
    Missing { parent: Tag, tag: Tag },
    /// A field that may appear once appears more than once.
    Duplicate { parent: Tag, tag: Tag },
    /// A field has the wrong TTLV type.
    WrongType {
        tag: Tag,
        expected: ItemType,
        found: ItemType,
    },
    /// A field has the right type but a value the specification does not allow.
    InvalidValue { tag: Tag, reason: &'static str },
    /// The header's Batch Count differs from the number of Batch Items.
    BatchCountMismatch { declared: i32, actual: usize },
    /// More batch items than [`crate::limits::MAX_BATCH_ITEMS`].
    TooManyBatchItems { count: usize, max: usize },
    /// An attribute value of the wrong shape for the attribute's name.
    InvalidAttributeValue { name: String, reason: &'static str },
    /// An attribute name that is neither standard nor custom (`x-`, `y-`).
    UnknownAttribute { name: String },
    /// An attribute the client may not set, modify or delete.
    AttributeNotClientSettable { name: String },
    /// A valid construct this implementation does not handle.
    Unsupported { what: &'static str },
    /// More fields tagged `tag` in one structure than the bound in
    /// [`crate::limits`] allows (Attribute Names, template attributes, Locate
    /// filters).
    TooMany {
        parent: Tag,
        tag: Tag,
        count: usize,
        max: usize,
    },
}

impl MessageError {
    /// The Result Reason a response carries for this error (KMIP 1.4 §11).
    pub fn result_reason(&self) -> ResultReason {
        match self {
            MessageError::UnexpectedTag { .. }
            | MessageError::Missing { .. }
            | MessageError::Duplicate { .. }
            | MessageError::WrongType { .. }
            | MessageError::BatchCountMismatch { .. } => ResultReason::INVALID_MESSAGE,
            // One request fanning out too far: the same reason a too-large
            // message would get, the client can split it.
            MessageError::TooManyBatchItems { .. } => ResultReason::INVALID_MESSAGE,
            // A request field the server will not take as given (KMIP 1.4 §11:
            // Invalid Field); Response Too Large is about answers, not requests.
            MessageError::InvalidValue { .. }
            | MessageError::TooMany { .. }
            | MessageError::InvalidAttributeValue { .. }
            | MessageError::UnknownAttribute { .. } => ResultReason::INVALID_FIELD,
            MessageError::AttributeNotClientSettable { .. } => ResultReason::PERMISSION_DENIED,
            MessageError::Unsupported { .. } => ResultReason::FEATURE_NOT_SUPPORTED,
        }
    }

    pub(crate) fn wrong_type(tag: Tag, expected: ItemType, found: ItemType) -> Self {
        MessageError::WrongType { tag, expected, found }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::UnexpectedTag { expected, found } => {
                write!(
                    f,
                    "expected {}, found {}",
                    tag_label(*expected),
                    tag_label(*found)
                )
            }
            MessageError::Missing { parent, tag } => {
                write!(
                    f,
                    "{} is missing its required {}",
                    tag_label(*parent),
                    tag_label(*tag)
                )
            }
            MessageError::Duplicate { parent, tag } => {
                write!(
                    f,
                    "{} holds {} more than once",
                    tag_label(*parent),
                    tag_label(*tag)
                )
            }
            MessageError::WrongType { tag, expected, found } => {
                write!(
                    f,
                    "{} must be of type {}, found {}",
                    tag_label(*tag),
                    expected.name(),
                    found.name()
                )
            }
            MessageError::InvalidValue { tag, reason } => {
                write!(f, "invalid {}: {reason}", tag_label(*tag))
            }
            MessageError::BatchCountMismatch { declared, actual } => {
                write!(
                    f,
                    "Batch Count says {declared} but the message holds {actual} batch items"
                )
            }
            MessageError::TooManyBatchItems { count, max } => {
                write!(f, "{count} batch items exceed the limit of {max}")
            }
            MessageError::InvalidAttributeValue { name, reason } => {
                write!(f, "invalid value for attribute {name:?}: {reason}")
            }
            MessageError::UnknownAttribute { name } => write!(f, "unknown attribute {name:?}"),
            MessageError::AttributeNotClientSettable { name } => {
                write!(f, "attribute {name:?} is not set by clients")
            }
            MessageError::Unsupported { what } => write!(f, "not supported: {what}"),
            MessageError::TooMany {
                parent,
                tag,
                count,
                max,
            } => write!(
                f,
                "{} holds {count} {} fields; at most {max} are accepted",
                tag_label(*parent),
                tag_label(*tag)
            ),
        }
    }
}

impl std::error::Error for MessageError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::tags;

    #[test]
    fn reasons_and_text() {
        let e = MessageError::Missing {
            parent: tags::BATCH_ITEM,
            tag: tags::OPERATION,
        };
        assert_eq!(e.result_reason(), ResultReason::INVALID_MESSAGE);
        assert_eq!(e.to_string(), "BatchItem is missing its required Operation");
        let e = MessageError::InvalidValue {
            tag: tags::BATCH_COUNT,
            reason: "negative",
        };
        assert_eq!(e.result_reason(), ResultReason::INVALID_FIELD);
        let e = MessageError::wrong_type(
            tags::CRYPTOGRAPHIC_LENGTH,
            ItemType::Integer,
            ItemType::TextString,
        );
        assert_eq!(
            e.to_string(),
            "CryptographicLength must be of type Integer, found TextString"
        );
        let e = MessageError::AttributeNotClientSettable { name: "State".into() };
        assert_eq!(e.result_reason(), ResultReason::PERMISSION_DENIED);
        assert_eq!(
            MessageError::Unsupported { what: "x" }.result_reason(),
            ResultReason::FEATURE_NOT_SUPPORTED
        );
    }
}

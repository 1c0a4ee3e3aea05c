//! Decoder errors: what went wrong, where (byte offset), and under which tags.

use std::fmt;

use super::value::{ItemType, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ends inside an item header or value.
    Truncated { needed: usize, available: usize },
    /// An item's length runs past the end of the structure that holds it.
    LengthOverrun { length: u64, available: usize },
    /// A type byte that TTLV does not define.
    UnknownType(u8),
    /// A fixed-size type with the wrong length, a Big Integer whose length is not
    /// a non-zero multiple of 8, or a Structure whose length is not a multiple of 8.
    BadLength { item_type: ItemType, length: u32 },
    /// Padding bytes after a value that are not zero.
    NonZeroPadding,
    /// A Text String that is not UTF-8.
    InvalidUtf8,
    /// A Boolean other than 0 or 1.
    InvalidBoolean(u64),
    /// Structures nested deeper than the limit.
    TooDeep { max: usize },
    /// A structure, or the whole message, holds more items than the limit.
    TooManyItems { max: usize },
    /// The message is longer than the limit.
    MessageTooLarge { length: usize, max: usize },
    /// Bytes left over after the top-level item.
    TrailingBytes { count: usize },
}

/// A decoding failure: its kind, the byte offset of the item where it happened and
/// the tags of the structures above it (outermost first, the item's own tag last
/// when it was read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub kind: DecodeErrorKind,
    pub offset: usize,
    pub path: Vec<Tag>,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize, path: &[Tag]) -> Self {
        DecodeError {
            kind,
            offset,
            path: path.to_vec(),
        }
    }

    /// The message with the tag path rendered by `name` (for example KMIP tag names).
    pub fn describe(&self, name: &dyn Fn(Tag) -> Option<&'static str>) -> String {
        let path: Vec<String> = self
            .path
            .iter()
            .map(|t| name(*t).map(str::to_owned).unwrap_or_else(|| t.to_string()))
            .collect();
        let path = if path.is_empty() {
            "(top)".to_owned()
        } else {
            path.join("/")
        };
        format!("at offset {} ({}): {}", self.offset, path, self.kind)
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeErrorKind::Truncated { needed, available } => {
                write!(f, "truncated: needs {needed} bytes, {available} left")
            }
            DecodeErrorKind::LengthOverrun { length, available } => write!(
                f,
                "length {length} runs past the end of its structure ({available} bytes left)"
            ),
            DecodeErrorKind::UnknownType(b) => write!(f, "unknown item type 0x{b:02X}"),
            DecodeErrorKind::BadLength { item_type, length } => {
                write!(f, "length {length} is not valid for {}", item_type.name())
            }
            DecodeErrorKind::NonZeroPadding => f.write_str("padding bytes are not zero"),
            DecodeErrorKind::InvalidUtf8 => f.write_str("text string is not valid UTF-8"),
            DecodeErrorKind::InvalidBoolean(v) => write!(f, "boolean value {v} is not 0 or 1"),
            DecodeErrorKind::TooDeep { max } => write!(f, "structures nested deeper than {max}"),
            DecodeErrorKind::TooManyItems { max } => write!(f, "more than {max} items"),
            DecodeErrorKind::MessageTooLarge { length, max } => {
                write!(f, "message of {length} bytes exceeds the limit of {max}")
            }
            DecodeErrorKind::TrailingBytes { count } => {
                write!(f, "{count} bytes left over after the message")
            }
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(&|_| None))
    }
}

impl std::error::Error for DecodeError {}

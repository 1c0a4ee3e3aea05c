//! TTLV: the Tag-Type-Length-Value encoding KMIP uses on the wire.
//!
//! This module turns bytes into a tree of [`Item`]s and back. It knows nothing of
//! KMIP (tag names, enumerations and secrecy come in through [`Schema`]) and does
//! no I/O. The decoder is strict — every byte it accepts has exactly one meaning —
//! so that [`encode`] ∘ [`decode`] is the identity on every input it accepts.

mod decode;
mod encode;
mod error;
mod frame;
mod print;
mod value;

pub use decode::{Decoder, decode, decode_with};
pub use encode::{encode, encode_to_vec, encoded_len};
pub use error::{DecodeError, DecodeErrorKind};
pub use frame::{FrameError, HEADER_LEN, frame_len};
pub use print::{NoSchema, Schema, TreePrinter};
pub use value::{Item, ItemType, Tag, Value};

/// Bounds the decoder enforces. Defaults come from [`crate::limits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    pub max_message_bytes: usize,
    pub max_depth: usize,
    pub max_items_per_structure: usize,
    pub max_items_per_message: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: crate::limits::MAX_MESSAGE_BYTES,
            max_depth: crate::limits::MAX_DEPTH,
            max_items_per_structure: crate::limits::MAX_ITEMS_PER_STRUCTURE,
            max_items_per_message: crate::limits::MAX_ITEMS_PER_MESSAGE,
        }
    }
}

//! KMIP vocabulary on top of [`crate::ttlv`]: tag and enumeration names, the
//! [`Schema`](crate::ttlv::Schema) that tells the generic TTLV code about them,
//! and the OASIS XML and JSON encodings of TTLV trees.
//!
//! No I/O and no logging here: these are pure functions over [`crate::ttlv::Item`].

pub mod attribute;
#[macro_use]
pub mod enums;
pub mod error;
pub mod fields;
mod generated;
pub mod json;
pub mod message;
pub mod names;
pub mod object;
pub mod payload;
pub mod placeholders;
pub mod redact;
pub mod request;
pub mod schema;
pub mod tag;
mod text;
pub mod v2;
pub mod xml;

pub use enums::*;
pub use error::MessageError;
pub use placeholders::Placeholders;
pub use redact::WriteOptions;
pub use schema::KmipSchema;
pub use tag::{KmipTagExt, tag_by_name, tag_name, tags};

//! Typed request and response payloads, one file per operation (KMIP 1.4 §4).
//!
//! Each file holds a `Request` and a `Response`, both implementing [`Payload`]:
//! `from_payload` reads a Request/Response Payload structure, `to_payload`
//! writes it in specification order. Fields a payload does not model are kept
//! in `extra` and written back after the known ones.
//!
//! A Unique Identifier that a request may omit is an `Option`: absent means
//! "the ID Placeholder", which the server resolves.

use super::enums::Operation;
use super::error::MessageError;
use crate::ttlv::{Item, Tag};

pub mod activate;
pub mod add_attribute;
pub mod check;
pub mod create;
pub mod create_key_pair;
pub mod crypt;
pub mod delete_attribute;
pub mod destroy;
pub mod discover_versions;
pub mod get;
pub mod get_attribute_list;
pub mod get_attributes;
pub mod interop;
pub mod locate;
pub mod modify_attribute;
pub mod proof;
pub mod query;
pub mod register;
pub mod rekey;
pub mod revoke;

/// A request or response payload of one operation.
pub trait Payload: Sized {
    /// The operation this payload belongs to.
    const OPERATION: Operation;
    /// `RequestPayload` or `ResponsePayload`.
    const TAG: Tag;
    fn from_payload(item: &Item) -> Result<Self, MessageError>;
    fn to_payload(&self) -> Item;
    /// Fields the payload held that this model does not know (a server may
    /// refuse them: KMIP 1.4 §11 says Invalid Message).
    fn extra(&self) -> &[Item];
}

/// Payloads carrying only a Unique Identifier (Activate, Destroy, and the
/// responses of several operations).
macro_rules! id_only_payloads {
    ($op:expr) => {
        use crate::kmip::error::MessageError;
        use crate::kmip::fields::{Builder, Fields};
        use crate::kmip::payload::Payload;
        use crate::kmip::tags;
        use crate::ttlv::{Item, Tag};

        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Request {
            /// Absent: the ID Placeholder.
            pub unique_identifier: Option<String>,
            pub extra: Vec<Item>,
        }

        impl Payload for Request {
            const OPERATION: crate::kmip::Operation = $op;
            const TAG: Tag = tags::REQUEST_PAYLOAD;

            fn extra(&self) -> &[Item] {
                &self.extra
            }

            fn from_payload(item: &Item) -> Result<Self, MessageError> {
                let mut f = Fields::of(item, Self::TAG)?;
                Ok(Request {
                    unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
                    extra: f.rest(),
                })
            }

            fn to_payload(&self) -> Item {
                Builder::new()
                    .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
                    .items(&self.extra)
                    .finish(Self::TAG)
            }
        }

        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Response {
            pub unique_identifier: String,
            pub extra: Vec<Item>,
        }

        impl Payload for Response {
            const OPERATION: crate::kmip::Operation = $op;
            const TAG: Tag = tags::RESPONSE_PAYLOAD;

            fn extra(&self) -> &[Item] {
                &self.extra
            }

            fn from_payload(item: &Item) -> Result<Self, MessageError> {
                let mut f = Fields::of(item, Self::TAG)?;
                Ok(Response {
                    unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
                    extra: f.rest(),
                })
            }

            fn to_payload(&self) -> Item {
                Builder::new()
                    .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
                    .items(&self.extra)
                    .finish(Self::TAG)
            }
        }
    };
}
pub(crate) use id_only_payloads;

/// Payloads of Add Attribute and Modify Attribute: an identifier and one
/// attribute, both ways.
macro_rules! one_attribute_payloads {
    ($op:expr) => {
        use crate::kmip::attribute::Attribute;
        use crate::kmip::error::MessageError;
        use crate::kmip::fields::{Builder, Fields};
        use crate::kmip::payload::Payload;
        use crate::kmip::tags;
        use crate::ttlv::{Item, Tag};

        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Request {
            /// Absent: the ID Placeholder.
            pub unique_identifier: Option<String>,
            pub attribute: Attribute,
            pub extra: Vec<Item>,
        }

        impl Payload for Request {
            const OPERATION: crate::kmip::Operation = $op;
            const TAG: Tag = tags::REQUEST_PAYLOAD;

            fn extra(&self) -> &[Item] {
                &self.extra
            }

            fn from_payload(item: &Item) -> Result<Self, MessageError> {
                let mut f = Fields::of(item, Self::TAG)?;
                Ok(Request {
                    unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
                    attribute: Attribute::from_item(f.req_item(tags::ATTRIBUTE)?)?,
                    extra: f.rest(),
                })
            }

            fn to_payload(&self) -> Item {
                Builder::new()
                    .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
                    .push(self.attribute.to_item())
                    .items(&self.extra)
                    .finish(Self::TAG)
            }
        }

        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Response {
            pub unique_identifier: String,
            /// The attribute as now stored (with its index).
            pub attribute: Attribute,
            pub extra: Vec<Item>,
        }

        impl Payload for Response {
            const OPERATION: crate::kmip::Operation = $op;
            const TAG: Tag = tags::RESPONSE_PAYLOAD;

            fn extra(&self) -> &[Item] {
                &self.extra
            }

            fn from_payload(item: &Item) -> Result<Self, MessageError> {
                let mut f = Fields::of(item, Self::TAG)?;
                Ok(Response {
                    unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
                    attribute: Attribute::from_item(f.req_item(tags::ATTRIBUTE)?)?,
                    extra: f.rest(),
                })
            }

            fn to_payload(&self) -> Item {
                Builder::new()
                    .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
                    .push(self.attribute.to_item())
                    .items(&self.extra)
                    .finish(Self::TAG)
            }
        }
    };
}
pub(crate) use one_attribute_payloads;

#[cfg(test)]
pub(crate) mod test_support {
    use super::Payload;
    use std::fmt::Debug;

    /// to_payload → from_payload gives back the same value, and the tree
    /// re-encodes to itself.
    pub(crate) fn round_trip<P: Payload + PartialEq + Debug>(p: &P) {
        let item = p.to_payload();
        assert_eq!(item.tag, P::TAG);
        let back = P::from_payload(&item).unwrap();
        assert_eq!(&back, p);
        assert_eq!(back.to_payload(), item);
    }
}

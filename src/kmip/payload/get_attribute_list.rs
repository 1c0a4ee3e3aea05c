//! Get Attribute List (KMIP 1.4 §4.13): the names of an object's attributes.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::GET_ATTRIBUTE_LIST;
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
    pub attribute_names: Vec<String>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::GET_ATTRIBUTE_LIST;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            attribute_names: f.all(tags::ATTRIBUTE_NAME)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .all(tags::ATTRIBUTE_NAME, &self.attribute_names)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn round_trips() {
        round_trip(&Request::default());
        round_trip(&Request {
            unique_identifier: Some("k1".into()),
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k1".into(),
            attribute_names: vec!["State".into(), "x-Vendor".into()],
            extra: vec![],
        });
    }
}

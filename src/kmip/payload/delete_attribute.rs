//! Delete Attribute (KMIP 1.4 §4.15), 1.x form: Attribute Name + Attribute Index.

use crate::kmip::attribute::Attribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::names::collapse_whitespace;
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub attribute_name: String,
    /// Absent: index 0.
    pub attribute_index: Option<i32>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::DELETE_ATTRIBUTE;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        let unique_identifier = f.opt(tags::UNIQUE_IDENTIFIER)?;
        let name: String = f.req(tags::ATTRIBUTE_NAME)?;
        let attribute_index: Option<i32> = f.opt(tags::ATTRIBUTE_INDEX)?;
        if attribute_index.is_some_and(|i| i < 0) {
            return Err(MessageError::InvalidValue {
                tag: tags::ATTRIBUTE_INDEX,
                reason: "negative",
            });
        }
        Ok(Request {
            unique_identifier,
            attribute_name: collapse_whitespace(&name).into_owned(),
            attribute_index,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .put(tags::ATTRIBUTE_NAME, &self.attribute_name)
            .opt(tags::ATTRIBUTE_INDEX, &self.attribute_index)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub unique_identifier: String,
    /// The attribute that was deleted.
    pub attribute: Attribute,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::DELETE_ATTRIBUTE;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        round_trip(&Request {
            unique_identifier: None,
            attribute_name: "x-a".into(),
            attribute_index: Some(1),
            extra: vec![],
        });
        round_trip(&Request {
            unique_identifier: Some("k".into()),
            attribute_name: "Name".into(),
            ..Request::default()
        });
        round_trip(&Response {
            unique_identifier: "k".into(),
            attribute: Attribute::new("x-a", Value::TextString("v".into())),
            extra: vec![],
        });
    }
}

//! Get Attributes (KMIP 1.4 §4.12). vCenter names one attribute at a time; an
//! attribute the object does not have is left out of a successful response,
//! so an empty attribute list is a normal answer.

use crate::kmip::attribute::Attribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, FieldValue, Fields};
use crate::kmip::names::collapse_whitespace;
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    /// Empty: all attributes. Runs of white space are collapsed.
    pub attribute_names: Vec<String>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::GET_ATTRIBUTES;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        let unique_identifier = f.opt(tags::UNIQUE_IDENTIFIER)?;
        let attribute_names = f
            .all_items_at_most(
                tags::ATTRIBUTE_NAME,
                crate::limits::MAX_ATTRIBUTE_NAMES_PER_REQUEST,
            )?
            .into_iter()
            .map(|item| String::from_field(item).map(|n| collapse_whitespace(&n).into_owned()))
            .collect::<Result<_, _>>()?;
        Ok(Request {
            unique_identifier,
            attribute_names,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .all(tags::ATTRIBUTE_NAME, &self.attribute_names)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub unique_identifier: String,
    pub attributes: Vec<Attribute>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::GET_ATTRIBUTES;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            attributes: f
                .all_items(tags::ATTRIBUTE)
                .into_iter()
                .map(Attribute::from_item)
                .collect::<Result<_, _>>()?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier);
        for a in &self.attributes {
            b.push(a.to_item());
        }
        b.items(&self.extra).finish(Self::TAG)
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
            unique_identifier: Some("k1".into()),
            attribute_names: vec!["State".into()],
            extra: vec![],
        });
        round_trip(&Request::default());
        round_trip(&Response {
            unique_identifier: "k1".into(),
            attributes: vec![Attribute::new("State", Value::Enumeration(1))],
            extra: vec![],
        });
        // An unset attribute: Success with no attribute at all.
        let empty = Response {
            unique_identifier: "k1".into(),
            attributes: vec![],
            extra: vec![],
        };
        round_trip(&empty);
        assert_eq!(empty.to_payload().children().len(), 1);
    }

    #[test]
    fn names_collapse_white_space() {
        let p = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Item::new(
                tags::ATTRIBUTE_NAME,
                Value::TextString("Cryptographic   Length".into()),
            )],
        );
        assert_eq!(
            Request::from_payload(&p).unwrap().attribute_names,
            ["Cryptographic Length"]
        );
    }
}

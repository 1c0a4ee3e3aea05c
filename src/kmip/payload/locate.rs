//! Locate (KMIP 1.4 §4.9): identifiers of objects whose attributes match.

use crate::kmip::attribute::Attribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{ObjectGroupMember, Operation, StorageStatusMask, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub maximum_items: Option<i32>,
    /// KMIP 1.3.
    pub offset_items: Option<i32>,
    pub storage_status_mask: Option<StorageStatusMask>,
    /// KMIP 1.1.
    pub object_group_member: Option<ObjectGroupMember>,
    pub attributes: Vec<Attribute>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::LOCATE;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        let r = Request {
            maximum_items: f.opt(tags::MAXIMUM_ITEMS)?,
            offset_items: f.opt(tags::OFFSET_ITEMS)?,
            storage_status_mask: f.opt(tags::STORAGE_STATUS_MASK)?,
            object_group_member: f.opt(tags::OBJECT_GROUP_MEMBER)?,
            attributes: f
                .all_items_at_most(tags::ATTRIBUTE, crate::limits::MAX_LOCATE_FILTER_ATTRIBUTES)?
                .into_iter()
                .map(Attribute::from_item)
                .collect::<Result<_, _>>()?,
            extra: f.rest(),
        };
        if r.maximum_items.is_some_and(|n| n < 0) {
            return Err(MessageError::InvalidValue {
                tag: tags::MAXIMUM_ITEMS,
                reason: "negative",
            });
        }
        if r.offset_items.is_some_and(|n| n < 0) {
            return Err(MessageError::InvalidValue {
                tag: tags::OFFSET_ITEMS,
                reason: "negative",
            });
        }
        Ok(r)
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.opt(tags::MAXIMUM_ITEMS, &self.maximum_items)
            .opt(tags::OFFSET_ITEMS, &self.offset_items)
            .opt(tags::STORAGE_STATUS_MASK, &self.storage_status_mask)
            .opt(tags::OBJECT_GROUP_MEMBER, &self.object_group_member);
        for a in &self.attributes {
            b.push(a.to_item());
        }
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// KMIP 1.3: how many objects matched in all (before Maximum Items).
    pub located_items: Option<i32>,
    pub unique_identifiers: Vec<String>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::LOCATE;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            located_items: f.opt(tags::LOCATED_ITEMS)?,
            unique_identifiers: f.all(tags::UNIQUE_IDENTIFIER)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::LOCATED_ITEMS, &self.located_items)
            .all(tags::UNIQUE_IDENTIFIER, &self.unique_identifiers)
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
        round_trip(&Request::default());
        round_trip(&Request {
            maximum_items: Some(10),
            offset_items: Some(5),
            storage_status_mask: Some(StorageStatusMask(1)),
            object_group_member: Some(ObjectGroupMember(1)),
            attributes: vec![Attribute::new("x-Identifier", Value::TextString("vm-1".into()))],
            extra: vec![],
        });
        round_trip(&Response {
            located_items: Some(2),
            unique_identifiers: vec!["a".into(), "b".into()],
            extra: vec![],
        });
        round_trip(&Response::default());
        let neg = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Item::new(tags::MAXIMUM_ITEMS, Value::Integer(-1))],
        );
        assert!(Request::from_payload(&neg).is_err());
    }
}

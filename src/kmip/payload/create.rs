//! Create (KMIP 1.4 §4.1). vCenter: Symmetric Key with a template of exactly
//! Cryptographic Algorithm, Cryptographic Usage Mask (Integer) and
//! Cryptographic Length.

use crate::kmip::attribute::TemplateAttribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{ObjectType, Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub object_type: ObjectType,
    pub template_attribute: TemplateAttribute,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::CREATE;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            object_type: f.req(tags::OBJECT_TYPE)?,
            template_attribute: TemplateAttribute::from_item(
                f.req_item(tags::TEMPLATE_ATTRIBUTE)?,
                tags::TEMPLATE_ATTRIBUTE,
            )?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::OBJECT_TYPE, &self.object_type)
            .push(self.template_attribute.to_item(tags::TEMPLATE_ATTRIBUTE))
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub object_type: ObjectType,
    pub unique_identifier: String,
    /// Attributes the server set implicitly and the client did not ask for.
    pub template_attribute: Option<TemplateAttribute>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::CREATE;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            object_type: f.req(tags::OBJECT_TYPE)?,
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            template_attribute: f
                .opt_item(tags::TEMPLATE_ATTRIBUTE)?
                .map(|t| TemplateAttribute::from_item(t, tags::TEMPLATE_ATTRIBUTE))
                .transpose()?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.put(tags::OBJECT_TYPE, &self.object_type)
            .put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier);
        if let Some(t) = &self.template_attribute {
            b.push(t.to_item(tags::TEMPLATE_ATTRIBUTE));
        }
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::attribute::{Attribute, attr};
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        let template = TemplateAttribute::new(vec![
            Attribute::new(attr::CRYPTOGRAPHIC_ALGORITHM, Value::Enumeration(3)),
            Attribute::new(attr::CRYPTOGRAPHIC_USAGE_MASK, Value::Integer(12)),
            Attribute::new(attr::CRYPTOGRAPHIC_LENGTH, Value::Integer(256)),
        ]);
        round_trip(&Request {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: template.clone(),
            extra: vec![],
        });
        round_trip(&Request {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::default(),
            extra: vec![],
        });
        round_trip(&Response {
            object_type: ObjectType::SYMMETRIC_KEY,
            unique_identifier: "k1".into(),
            template_attribute: None,
            extra: vec![],
        });
        round_trip(&Response {
            object_type: ObjectType::SYMMETRIC_KEY,
            unique_identifier: "k1".into(),
            template_attribute: Some(template),
            extra: vec![],
        });
    }

    #[test]
    fn template_is_required() {
        let p = Item::structure(
            tags::REQUEST_PAYLOAD,
            vec![Item::new(tags::OBJECT_TYPE, Value::Enumeration(2))],
        );
        assert!(matches!(
            Request::from_payload(&p),
            Err(MessageError::Missing { .. })
        ));
    }
}

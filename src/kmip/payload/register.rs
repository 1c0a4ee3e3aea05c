//! Register (KMIP 1.4 §4.3): a client-supplied object and its attributes.

use crate::kmip::attribute::TemplateAttribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::object::{ManagedObject, take_object};
use crate::kmip::payload::Payload;
use crate::kmip::{ObjectType, Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub object_type: ObjectType,
    pub template_attribute: TemplateAttribute,
    pub object: ManagedObject,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::REGISTER;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        let object_type = f.req(tags::OBJECT_TYPE)?;
        let template_attribute =
            TemplateAttribute::from_item(f.req_item(tags::TEMPLATE_ATTRIBUTE)?, tags::TEMPLATE_ATTRIBUTE)?;
        let object = take_object(&mut f)?.ok_or(MessageError::Missing {
            parent: Self::TAG,
            tag: crate::kmip::object::object_tag(object_type).unwrap_or(tags::SYMMETRIC_KEY),
        })?;
        if object.object_type() != object_type {
            return Err(MessageError::InvalidValue {
                tag: tags::OBJECT_TYPE,
                reason: "does not match the object",
            });
        }
        Ok(Request {
            object_type,
            template_attribute,
            object,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::OBJECT_TYPE, &self.object_type)
            .push(self.template_attribute.to_item(tags::TEMPLATE_ATTRIBUTE))
            .push(self.object.to_item())
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub unique_identifier: String,
    pub template_attribute: Option<TemplateAttribute>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::REGISTER;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
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
        b.put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier);
        if let Some(t) = &self.template_attribute {
            b.push(t.to_item(tags::TEMPLATE_ATTRIBUTE));
        }
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::CryptographicAlgorithm;
    use crate::kmip::object::KeyBlock;
    use crate::kmip::payload::test_support::round_trip;
    use crate::secret::SecretBytes;

    #[test]
    fn round_trips() {
        let object = ManagedObject::SymmetricKey {
            key_block: KeyBlock::raw(CryptographicAlgorithm::AES, SecretBytes::new(vec![7; 16])),
        };
        let req = Request {
            object_type: ObjectType::SYMMETRIC_KEY,
            template_attribute: TemplateAttribute::default(),
            object,
            extra: vec![],
        };
        round_trip(&req);
        round_trip(&Response {
            unique_identifier: "k1".into(),
            template_attribute: None,
            extra: vec![],
        });
        let mut wrong = req.to_payload();
        if let crate::ttlv::Value::Structure(items) = &mut wrong.value {
            items[0] = Item::new(tags::OBJECT_TYPE, crate::ttlv::Value::Enumeration(7));
        }
        assert!(matches!(
            Request::from_payload(&wrong),
            Err(MessageError::InvalidValue { .. })
        ));
    }
}

//! Create Key Pair (KMIP 1.4 §4.2): attributes common to both keys and for
//! each of them; the two new identifiers back.

use crate::kmip::attribute::TemplateAttribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    pub common: TemplateAttribute,
    pub private_key: TemplateAttribute,
    pub public_key: TemplateAttribute,
    pub extra: Vec<Item>,
}

fn template(f: &mut Fields<'_>, tag: Tag) -> Result<TemplateAttribute, MessageError> {
    Ok(match f.opt_item(tag)? {
        Some(item) => TemplateAttribute::from_item(item, tag)?,
        None => TemplateAttribute::default(),
    })
}

fn push_template(b: &mut Builder, t: &TemplateAttribute, tag: Tag) {
    if !t.names.is_empty() || !t.attributes.is_empty() {
        b.push(t.to_item(tag));
    }
}

impl Payload for Request {
    const OPERATION: Operation = Operation::CREATE_KEY_PAIR;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            common: template(&mut f, tags::COMMON_TEMPLATE_ATTRIBUTE)?,
            private_key: template(&mut f, tags::PRIVATE_KEY_TEMPLATE_ATTRIBUTE)?,
            public_key: template(&mut f, tags::PUBLIC_KEY_TEMPLATE_ATTRIBUTE)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        push_template(&mut b, &self.common, tags::COMMON_TEMPLATE_ATTRIBUTE);
        push_template(&mut b, &self.private_key, tags::PRIVATE_KEY_TEMPLATE_ATTRIBUTE);
        push_template(&mut b, &self.public_key, tags::PUBLIC_KEY_TEMPLATE_ATTRIBUTE);
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub private_key_unique_identifier: String,
    pub public_key_unique_identifier: String,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::CREATE_KEY_PAIR;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            private_key_unique_identifier: f.req(tags::PRIVATE_KEY_UNIQUE_IDENTIFIER)?,
            public_key_unique_identifier: f.req(tags::PUBLIC_KEY_UNIQUE_IDENTIFIER)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(
                tags::PRIVATE_KEY_UNIQUE_IDENTIFIER,
                &self.private_key_unique_identifier,
            )
            .put(
                tags::PUBLIC_KEY_UNIQUE_IDENTIFIER,
                &self.public_key_unique_identifier,
            )
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::attribute::Attribute;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn payloads_round_trip() {
        round_trip(&Request {
            common: TemplateAttribute::new(vec![Attribute::new(
                "Cryptographic Length",
                Value::Integer(2048),
            )]),
            private_key: TemplateAttribute::default(),
            public_key: TemplateAttribute::new(vec![Attribute::new(
                "x-use",
                Value::TextString("tls".into()),
            )]),
            extra: Vec::new(),
        });
        round_trip(&Response {
            private_key_unique_identifier: "priv".into(),
            public_key_unique_identifier: "pub".into(),
            extra: Vec::new(),
        });
    }
}

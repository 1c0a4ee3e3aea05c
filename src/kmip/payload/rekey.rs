//! Re-key (KMIP 1.4 §4.4): a new key replacing an existing symmetric key.

use crate::kmip::attribute::TemplateAttribute;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields, Interval};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

fn template(f: &mut Fields<'_>) -> Result<Option<TemplateAttribute>, MessageError> {
    f.opt_item(tags::TEMPLATE_ATTRIBUTE)?
        .map(|t| TemplateAttribute::from_item(t, tags::TEMPLATE_ATTRIBUTE))
        .transpose()
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    /// Time from the new key's Initial Date to its Activation Date.
    pub offset: Option<Interval>,
    pub template_attribute: Option<TemplateAttribute>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::RE_KEY;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            offset: f.opt(tags::OFFSET)?,
            template_attribute: template(&mut f)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .opt(tags::OFFSET, &self.offset);
        if let Some(t) = &self.template_attribute {
            b.push(t.to_item(tags::TEMPLATE_ATTRIBUTE));
        }
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// The new key's identifier.
    pub unique_identifier: String,
    pub template_attribute: Option<TemplateAttribute>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::RE_KEY;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            template_attribute: template(&mut f)?,
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
    use crate::kmip::attribute::Attribute;
    use crate::kmip::payload::test_support::round_trip;
    use crate::ttlv::Value;

    #[test]
    fn round_trips() {
        round_trip(&Request::default());
        round_trip(&Request {
            unique_identifier: Some("k".into()),
            offset: Some(Interval(3600)),
            template_attribute: Some(TemplateAttribute::new(vec![Attribute::new(
                "Activation Date",
                Value::DateTime(1),
            )])),
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k2".into(),
            template_attribute: None,
            extra: vec![],
        });
    }
}

//! Check (KMIP 1.4 §4.10): would the object allow this use?

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields, Interval};
use crate::kmip::payload::Payload;
use crate::kmip::{CryptographicUsageMask, Operation, tags};
use crate::ttlv::{Item, Tag};

/// The fields Check requests and responses share.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckFields {
    pub usage_limits_count: Option<i64>,
    pub cryptographic_usage_mask: Option<CryptographicUsageMask>,
    pub lease_time: Option<Interval>,
}

impl CheckFields {
    fn read(f: &mut Fields<'_>) -> Result<Self, MessageError> {
        Ok(CheckFields {
            usage_limits_count: f.opt(tags::USAGE_LIMITS_COUNT)?,
            cryptographic_usage_mask: f.opt(tags::CRYPTOGRAPHIC_USAGE_MASK)?,
            lease_time: f.opt(tags::LEASE_TIME)?,
        })
    }

    fn write(&self, b: &mut Builder) {
        b.opt(tags::USAGE_LIMITS_COUNT, &self.usage_limits_count)
            .opt(tags::CRYPTOGRAPHIC_USAGE_MASK, &self.cryptographic_usage_mask)
            .opt(tags::LEASE_TIME, &self.lease_time);
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub check: CheckFields,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::CHECK;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            check: CheckFields::read(&mut f)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier);
        self.check.write(&mut b);
        b.items(&self.extra).finish(Self::TAG)
    }
}

/// A successful Check echoes nothing but the identifier; a failed one (Result
/// Status Operation Failed) carries the field that failed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub unique_identifier: String,
    pub check: CheckFields,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::CHECK;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            unique_identifier: f.req(tags::UNIQUE_IDENTIFIER)?,
            check: CheckFields::read(&mut f)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        let mut b = Builder::new();
        b.put(tags::UNIQUE_IDENTIFIER, &self.unique_identifier);
        self.check.write(&mut b);
        b.items(&self.extra).finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn round_trips() {
        round_trip(&Request::default());
        let check = CheckFields {
            usage_limits_count: Some(500),
            cryptographic_usage_mask: Some(CryptographicUsageMask::ENCRYPT),
            lease_time: Some(Interval(60)),
        };
        round_trip(&Request {
            unique_identifier: Some("k".into()),
            check: check.clone(),
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k".into(),
            check,
            extra: vec![],
        });
    }
}

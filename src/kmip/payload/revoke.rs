//! Revoke (KMIP 1.4 §4.20).

use crate::kmip::attribute::RevocationReason;
use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, DateTime, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Absent: the ID Placeholder.
    pub unique_identifier: Option<String>,
    pub revocation_reason: RevocationReason,
    /// Only for the Key Compromise / CA Compromise reasons.
    pub compromise_occurrence_date: Option<DateTime>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::REVOKE;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            unique_identifier: f.opt(tags::UNIQUE_IDENTIFIER)?,
            revocation_reason: RevocationReason::from_value(f.req_item(tags::REVOCATION_REASON)?)?,
            compromise_occurrence_date: f.opt(tags::COMPROMISE_OCCURRENCE_DATE)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .opt(tags::UNIQUE_IDENTIFIER, &self.unique_identifier)
            .push(self.revocation_reason.to_value(tags::REVOCATION_REASON))
            .opt(tags::COMPROMISE_OCCURRENCE_DATE, &self.compromise_occurrence_date)
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
    const OPERATION: Operation = Operation::REVOKE;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::RevocationReasonCode;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn round_trips() {
        round_trip(&Request {
            unique_identifier: Some("k".into()),
            revocation_reason: RevocationReason {
                code: RevocationReasonCode::KEY_COMPROMISE,
                message: Some("lost".into()),
            },
            compromise_occurrence_date: Some(DateTime(1_700_000_000)),
            extra: vec![],
        });
        round_trip(&Request {
            unique_identifier: None,
            revocation_reason: RevocationReason {
                code: RevocationReasonCode::CESSATION_OF_OPERATION,
                message: None,
            },
            compromise_occurrence_date: None,
            extra: vec![],
        });
        round_trip(&Response {
            unique_identifier: "k".into(),
            extra: vec![],
        });
    }
}

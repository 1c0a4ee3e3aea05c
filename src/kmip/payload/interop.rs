//! Interop and Log (KMIP 2.0 §6.1.27, §6.1.30): the test-harness operations
//! the OASIS 2.x profiles' test cases open, close and annotate each case with.
//! Both answer with an empty payload.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::payload::Payload;
use crate::kmip::{InteropFunction, Operation, tags};
use crate::ttlv::{Item, Tag};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InteropRequest {
    pub function: InteropFunction,
    pub identifier: Option<String>,
    pub extra: Vec<Item>,
}

impl Payload for InteropRequest {
    const OPERATION: Operation = Operation::INTEROP;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(InteropRequest {
            function: f.req(tags::INTEROP_FUNCTION)?,
            identifier: f.opt(tags::INTEROP_IDENTIFIER)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::INTEROP_FUNCTION, &self.function)
            .opt(tags::INTEROP_IDENTIFIER, &self.identifier)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRequest {
    pub message: String,
    pub extra: Vec<Item>,
}

impl Payload for LogRequest {
    const OPERATION: Operation = Operation::LOG;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(LogRequest {
            message: f.req(tags::LOG_MESSAGE)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        Builder::new()
            .put(tags::LOG_MESSAGE, &self.message)
            .items(&self.extra)
            .finish(Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn payloads_round_trip() {
        round_trip(&InteropRequest {
            function: InteropFunction::BEGIN,
            identifier: Some("BL-M-1-21".into()),
            extra: Vec::new(),
        });
        round_trip(&LogRequest {
            message: "Registered a symmetric key.".into(),
            extra: Vec::new(),
        });
    }
}

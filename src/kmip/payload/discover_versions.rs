//! Discover Versions (KMIP 1.4 §4.26). vCenter opens every connection with it,
//! payload empty.

use crate::kmip::error::MessageError;
use crate::kmip::fields::{Builder, Fields};
use crate::kmip::message::ProtocolVersion;
use crate::kmip::payload::Payload;
use crate::kmip::{Operation, tags};
use crate::ttlv::{Item, Tag};

fn versions(f: &mut Fields<'_>) -> Result<Vec<ProtocolVersion>, MessageError> {
    f.all_items(tags::PROTOCOL_VERSION)
        .into_iter()
        .map(ProtocolVersion::from_item)
        .collect()
}

fn write(versions: &[ProtocolVersion], extra: &[Item], tag: Tag) -> Item {
    let mut b = Builder::new();
    for v in versions {
        b.push(v.to_item());
    }
    b.items(extra).finish(tag)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Versions the client supports, preferred first; empty: "tell me all".
    pub protocol_versions: Vec<ProtocolVersion>,
    pub extra: Vec<Item>,
}

impl Payload for Request {
    const OPERATION: Operation = Operation::DISCOVER_VERSIONS;
    const TAG: Tag = tags::REQUEST_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Request {
            protocol_versions: versions(&mut f)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        write(&self.protocol_versions, &self.extra, Self::TAG)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    /// Versions the server supports (of those asked for), preferred first.
    pub protocol_versions: Vec<ProtocolVersion>,
    pub extra: Vec<Item>,
}

impl Payload for Response {
    const OPERATION: Operation = Operation::DISCOVER_VERSIONS;
    const TAG: Tag = tags::RESPONSE_PAYLOAD;

    fn extra(&self) -> &[Item] {
        &self.extra
    }

    fn from_payload(item: &Item) -> Result<Self, MessageError> {
        let mut f = Fields::of(item, Self::TAG)?;
        Ok(Response {
            protocol_versions: versions(&mut f)?,
            extra: f.rest(),
        })
    }

    fn to_payload(&self) -> Item {
        write(&self.protocol_versions, &self.extra, Self::TAG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kmip::payload::test_support::round_trip;

    #[test]
    fn round_trips() {
        round_trip(&Request::default());
        round_trip(&Request {
            protocol_versions: vec![ProtocolVersion::V1_1],
            extra: vec![],
        });
        round_trip(&Response {
            protocol_versions: vec![
                ProtocolVersion::V1_4,
                ProtocolVersion::V1_1,
                ProtocolVersion::V1_0,
            ],
            extra: vec![],
        });
        let empty = Request::from_payload(&Item::structure(tags::REQUEST_PAYLOAD, vec![])).unwrap();
        assert!(empty.protocol_versions.is_empty());
    }
}
